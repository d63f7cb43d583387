"""The first-boot status slip reaches the configured printer, with the page's address."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewayd.config import load_settings
from gatewayd.firstboot import SetupSlip, print_status_slip
from gatewayd.sim.printer import PtyPrinterSimulator

CONFIG = """
state_dir = "state"
[[registers]]
store_code = "0001"
terminal_no = "01"
port = "/dev/null"
[printer]
device = "{device}"
"""

SLIP = SetupSlip(ok=True, title="ゲートウェイ設定完了", lines=("設定を読み込みました。",),
                 page_urls=("http://gw-0001.local:8080/",))


def test_setup_slip_printed_with_qr(tmp_path: Path) -> None:
    with PtyPrinterSimulator(link=tmp_path / "printer") as sim:
        cfg = tmp_path / "gatewayd.toml"
        cfg.write_text(CONFIG.format(device=tmp_path / "printer"), encoding="utf-8")
        assert print_status_slip(SLIP, load_settings(cfg)) is True
        assert sim.printer.wait_for(lambda p: "http://gw-0001.local:8080/" in p.decoded().text,
                                    timeout=5)
        decoded = sim.printer.decoded()
    assert "ゲートウェイ設定完了" in decoded.text
    assert "設定を読み込みました。" in decoded.text
    assert decoded.qr_codes == ["http://gw-0001.local:8080/"]
    assert decoded.cuts == 1


@pytest.mark.parametrize("state", [{"paper_out": True}, {"silent": True}])
def test_printer_not_ready_is_reported_not_fatal(tmp_path: Path, state: dict[str, bool]
                                                 ) -> None:
    with PtyPrinterSimulator(link=tmp_path / "printer") as sim:
        sim.printer.set(**state)
        cfg = tmp_path / "gatewayd.toml"
        cfg.write_text(CONFIG.format(device=tmp_path / "printer"), encoding="utf-8")
        assert print_status_slip(SLIP, load_settings(cfg)) is False
        assert sim.printer.decoded().text == ""


def test_no_printer_configured(tmp_path: Path) -> None:
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG.split("[printer]")[0], encoding="utf-8")
    assert print_status_slip(SLIP, load_settings(cfg)) is False
    assert print_status_slip(SLIP, None) is False
