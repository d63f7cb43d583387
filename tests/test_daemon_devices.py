"""The daemon watches the printer and drawer: states in its status, alerts in its errors."""

from __future__ import annotations

import time
from pathlib import Path

from gatewayd.config import load_settings
from gatewayd.daemon import Gateway
from gatewayd.errors import DeviceError
from gatewayd.sim.printer import PtyPrinterSimulator

CONFIG = """
state_dir = "state"
poll_interval = 0.2
[[registers]]
store_code = "0001"
terminal_no = "01"
port = "{register}"
[printer]
device = "{printer}"
poll_interval = 0.1
[drawer]
open_level = "high"
alert_after = 1.0
"""


def test_drawer_open_too_long_reaches_errors_and_status(tmp_path: Path) -> None:
    with PtyPrinterSimulator(link=tmp_path / "printer") as sim:
        cfg = tmp_path / "gatewayd.toml"
        cfg.write_text(CONFIG.format(register=tmp_path / "no-register", printer=sim.path),
                       encoding="utf-8")
        gateway = Gateway(load_settings(cfg), sync_factory=lambda s, g: None, web=False)
        gateway.start()
        try:
            sim.printer.set(drawer_open=True)
            deadline = time.monotonic() + 10
            while not gateway.errors and time.monotonic() < deadline:
                time.sleep(0.1)
            assert gateway.errors, "no drawer alert"
            _, error = gateway.errors[-1]
            assert isinstance(error, DeviceError) and "drawer open" in str(error)
            assert "ドロワー" in error.staff_message
            devices = gateway.status_data()["devices"]
            assert devices["drawer"]["state"] == "open" and devices["drawer"]["alerting"]
            # the register is absent: its link is down, with the reason
            register = gateway.status_data()["registers"]["0001-01"]
            assert register["link"] == "down" and register["last_error"]
        finally:
            gateway.stop()
