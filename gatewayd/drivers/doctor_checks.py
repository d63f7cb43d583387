"""``gatewayd doctor`` checks of the receipt printer and the cash drawer.

The printer is asked once for its status (DLE EOT); the drawer check says whether the
drawer's polarity was calibrated, and ``calibrate`` runs the interactive step ("open the
drawer now") that finds it.
"""

from __future__ import annotations

from collections.abc import Callable

from gatewayd.doctor import CheckResult, DoctorContext
from gatewayd.drivers.drawer import DrawerCalibration
from gatewayd.drivers.printer import calibrate_drawer_on, read_status_once
from gatewayd.drivers.printer_settings import device_settings_from
from gatewayd.errors import GatewayError


def check_printer(ctx: DoctorContext) -> CheckResult:
    if ctx.settings is None:
        return CheckResult.skip("configuration invalid")
    printer, _drawer, _slip = device_settings_from(ctx.settings)
    if printer is None:
        return CheckResult.skip("no [printer] configured (close slips off)")
    try:
        status = read_status_once(printer)
    except GatewayError as exc:
        return CheckResult.fail(
            f"printer {printer.describe()}: {exc}",
            "プリンターの電源とケーブル、[printer] の device を確認してください。",
            "Check the printer's power and cable, and [printer] device.")
    if not status.answered:
        return CheckResult.fail(
            f"printer {printer.describe()} does not answer (offline)",
            "プリンターの電源とケーブルを確認してください。",
            "Check the printer's power and cable (a silent printer is offline).")
    if not status.can_print:
        return CheckResult.warn(
            f"printer {printer.describe()}: {status.describe()}", status.staff_message,
            "Close the cover / load paper; slips wait until the printer is ready.")
    return CheckResult.ok(f"printer {printer.describe()}: online")


def check_drawer(ctx: DoctorContext) -> CheckResult:
    if ctx.settings is None:
        return CheckResult.skip("configuration invalid")
    printer, drawer, _slip = device_settings_from(ctx.settings)
    if printer is None:
        return CheckResult.skip("no printer: the drawer is wired to it")
    if drawer.open_level is None:
        return CheckResult.warn(
            "drawer polarity not calibrated: open/closed unknown, no open-too-long alert",
            "「gatewayd doctor --calibrate-drawer」を実行し、"
            "表示された設定を [drawer] に書いてください。",
            "Run `gatewayd doctor --calibrate-drawer` and put the printed line under [drawer].")
    return CheckResult.ok(f"drawer: open when pin 3 is {drawer.open_level.value}")


def calibrate(ctx: DoctorContext, *, say: Callable[[str], None] = print,
              ready: Callable[[], None] | None = None) -> DrawerCalibration | None:
    """The interactive step; None when no printer is configured."""
    if ctx.settings is None:
        return None
    printer, _drawer, _slip = device_settings_from(ctx.settings)
    if printer is None:
        return None
    return calibrate_drawer_on(printer, say=say, ready=ready)
