"""The README's first command: `gatewayd demo` runs the whole box and reports the days."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path


def test_demo_command_closes_days_and_prints_the_result(tmp_path: Path, today: date) -> None:
    start = today - timedelta(days=1)
    proc = subprocess.run(
        [sys.executable, "-m", "gatewayd", "demo", "--dir", str(tmp_path / "demo"),
         "--days", "3", "--receipts", "8", "--day-interval", "0.5", "--port", "0",
         "--start-date", start.isoformat(), "--exit-when-done", "--timeout", "90"],
        capture_output=True, text=True, timeout=150, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "/_emulator/books" in out and "status page : http://127.0.0.1:" in out
    assert out.count("送信済 synced") >= 2 and "保留 held" in out
    assert "reason: check 2" in out  # gatewayd status shows the held day's reason
    assert "【送信済】" in out and "【保留】" in out  # the close slips, decoded
    assert f"  {start.isoformat()}  送信済 synced" in out  # the days asked for, not today's
    assert (tmp_path / "demo.log").read_text(encoding="utf-8").count("accepted") >= 2
