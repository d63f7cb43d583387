"""``gatewayd sim printer`` as the demo runs it: a subprocess on a pty, driven from stdin,
showing each printed slip as text."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from printer_fixtures import sample_content

from gatewayd.drivers.escpos_status import PrinterCondition
from gatewayd.drivers.printer import PrinterDriver
from gatewayd.drivers.printer_settings import PrinterSettings
from gatewayd.drivers.slip import SlipStatus, render_slip


def _read_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 10.0) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting {prefix!r}")


def test_sim_printer_command(tmp_path: Path) -> None:
    link = tmp_path / "printer0"
    output = tmp_path / "printed.txt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatewayd", "sim", "printer", "--state", "paper_out",
         "--link", str(link), "--output", str(output)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert proc.stdin is not None
    driver = None
    try:
        _read_line(proc, "printer simulator on")
        assert _read_line(proc, "state:").strip() == "state: paper_out"
        assert link.is_symlink()
        driver = PrinterDriver(PrinterSettings(device=str(link), status_timeout=0.2))
        assert driver.poll().condition is PrinterCondition.PAPER_END
        proc.stdin.write("paper-in\n")
        proc.stdin.flush()
        assert _read_line(proc, "state:").strip() == "state: ready"
        assert driver.poll().condition is PrinterCondition.READY
        driver.write(render_slip(sample_content(SlipStatus.HELD)))
        _read_line(proc, "[CUT]")
        text = output.read_text(encoding="utf-8")
        assert "freee会計: 保留" in text and "[QR: http://192.168.10.5:8080/status]" in text
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=10) == 0
    finally:
        if driver is not None:
            driver.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert not link.exists()
