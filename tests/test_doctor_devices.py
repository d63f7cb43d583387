"""Doctor's printer and drawer checks, against the printer simulator on a pty."""

from __future__ import annotations

import threading
from pathlib import Path

from gatewayd.cli.doctor import make_context
from gatewayd.doctor import DoctorContext
from gatewayd.drivers.doctor_checks import calibrate, check_drawer, check_printer
from gatewayd.sim.printer import PtyPrinterSimulator

CONFIG = """
state_dir = "state"
[[registers]]
store_code = "0001"
terminal_no = "01"
port = "/dev/null"
[printer]
device = "{device}"
{drawer}
"""


def context(tmp_path: Path, drawer: str = "") -> DoctorContext:
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG.format(device=tmp_path / "printer", drawer=drawer), encoding="utf-8")
    return make_context(cfg)


def test_printer_states(tmp_path: Path) -> None:
    with PtyPrinterSimulator(link=tmp_path / "printer") as sim:
        ctx = context(tmp_path)
        assert check_printer(ctx).status == "ok"
        sim.printer.set(paper_out=True)
        result = check_printer(ctx)
        assert result.status == "warn" and result.fix_ja
        sim.printer.set(paper_out=False, silent=True)
        result = check_printer(ctx)
        assert result.status == "fail" and "offline" in result.message


def test_drawer_calibration_finds_the_open_level(tmp_path: Path) -> None:
    with PtyPrinterSimulator(link=tmp_path / "printer") as sim:
        ctx = context(tmp_path)
        assert check_drawer(ctx).status == "warn"
        said: list[str] = []

        def staff_opens_drawer(text: str) -> None:
            said.append(text)
            if "開けて" in text:
                threading.Timer(0.3, lambda: sim.printer.set(drawer_open=True)).start()

        found = calibrate(ctx, say=staff_opens_drawer)
        assert found is not None and found.ok, found
        assert found.setting_line is not None
        calibrated = context(tmp_path, "[drawer]\n" + found.setting_line)
        assert check_drawer(calibrated).status == "ok"
