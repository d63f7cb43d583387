"""The first-boot status slip: printed straight to the configured printer.

``gatewayd firstboot`` runs before the daemon, so it cannot queue through the daemon's
printer monitor; it opens the printer once, checks it answers online, prints, and closes.
A printer that is absent or not ready is reported (the slip text is also in the journal and
beside the configuration on the boot partition), never fatal to the import.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from gatewayd.config import Settings
from gatewayd.drivers.printer import PrinterDriver
from gatewayd.drivers.printer_settings import device_settings_from
from gatewayd.drivers.slip import render_notice
from gatewayd.errors import GatewayError, PrinterUnavailable

log = logging.getLogger(__name__)


def fingerprint_lines(settings: Settings) -> list[str]:
    """The status page certificate's SHA-256 on the slip, so staff can check the browser's.

    Made here when missing (firstboot runs before the daemon); none when the page stays on
    loopback or serves plain HTTP.
    """
    from gatewayd.web.server import WebServer
    from gatewayd.web.settings import web_from_settings
    from gatewayd.web.tls import fingerprint_lines as split

    try:
        web = web_from_settings(settings)
        if not web.serves_tls:
            return []
        cert = WebServer.certificate_for(web, settings.state_dir)
    except GatewayError as exc:
        log.warning("no certificate fingerprint on the slip: %s", exc)
        return []
    return ["証明書 SHA-256:", *split(cert.fingerprint)]


class SetupSlipLike(Protocol):
    """What is printed of ``gatewayd.firstboot.SetupSlip`` (the driver does not import it)."""

    @property
    def title(self) -> str: ...

    @property
    def lines(self) -> Sequence[str]: ...

    @property
    def page_urls(self) -> Sequence[str]: ...

    @property
    def error(self) -> str | None: ...


def print_setup_slip(slip: SetupSlipLike, settings: Settings | None) -> None:
    """``firstboot.SLIP_HOOK``: print ``slip`` or raise why it could not be printed."""
    if settings is None:
        raise PrinterUnavailable("no valid configuration: the printer is unknown")
    printer, _drawer, slip_settings = device_settings_from(settings)
    if printer is None:
        raise PrinterUnavailable("no [printer] in the configuration")
    lines = list(slip.lines)
    if slip.error:
        lines.append(slip.error)
    driver = PrinterDriver(printer)
    try:
        status = driver.poll()
        if not status.can_print:
            raise PrinterUnavailable(f"printer not ready: {status.describe()}",
                                     staff_message=status.staff_message)
        # only on a box with its printer: never makes a key while building an image
        lines += fingerprint_lines(settings)
        body = render_notice(slip.title, lines, urls=slip.page_urls, columns=printer.columns,
                             qr_size=slip_settings.qr_size)
        driver.write(body)
    finally:
        driver.close()
