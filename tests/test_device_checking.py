"""Right after a start, before the first poll, every device reads 確認中 (checking) — never
offline, unknown or a fault — on the page, in /metrics and in ``gatewayd status``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from web_fixtures import login, running_server

from gatewayd.backend import DaemonBackend
from gatewayd.cli.status import collect, render_text
from gatewayd.config import load_settings
from gatewayd.daemon import Gateway
from gatewayd.drivers.printer import PrinterMonitor
from gatewayd.drivers.printer_settings import DrawerSettings, PinLevel, PrinterSettings
from gatewayd.drivers.register_host import HostConfig, RegisterHost
from gatewayd.ingest import RegisterIngest
from gatewayd.store.snapshot import write_snapshot
from gatewayd.web.metrics import render_metrics
from gatewayd.web.model import Health


@dataclass
class Started:
    gateway: Gateway
    backend: DaemonBackend
    printer: PrinterMonitor


@pytest.fixture()
def started(tmp_path: Path) -> Iterator[Started]:
    """A daemon's parts as ``Gateway.start`` makes them, before any of them polled."""
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text('state_dir = "state"\n[[registers]]\nstore_code = "0001"\n'
                   'terminal_no = "01"\nport = "/dev/null"\n'
                   '[printer]\ndevice = "/dev/null"\n', encoding="utf-8")
    gateway = Gateway(load_settings(cfg), web=False, sync_factory=lambda s, g: None)
    reg = gateway.settings.registers[0]
    ingest = RegisterIngest(gateway.store, reg, gateway.listener)
    gateway.ingests[reg.register_id] = ingest
    gateway.hosts[reg.register_id] = RegisterHost(
        HostConfig(register_id=reg.register_id, port=reg.port), ingest)
    printer = PrinterMonitor(PrinterSettings(device="/dev/null"),
                             DrawerSettings(open_level=PinLevel.HIGH))
    gateway.printer = printer
    try:
        yield Started(gateway, DaemonBackend(gateway), printer)
    finally:
        printer.stop()
        gateway.store.close()


def test_model_says_checking_for_every_device(started: Started) -> None:
    devices = started.backend.overview().devices
    assert devices.registers[0].health is Health.CHECKING
    assert devices.printer.health is Health.CHECKING
    assert devices.drawer.health is Health.CHECKING
    started.printer.poll_once()  # /dev/null answers nothing: now it is a fault
    devices = started.backend.overview().devices
    assert devices.printer.health is Health.ERROR
    assert devices.drawer.health is Health.UNKNOWN  # polled, but the printer was silent


def test_metrics_say_checking_and_not_down(started: Started) -> None:
    text = render_metrics(started.backend).decode()
    for device in ("register", "printer", "drawer"):
        assert re.search(rf'gatewayd_device_state{{device="{device}",id="[^"]+",'
                         r'state="checking"} 1\.0', text), device
        assert f'gatewayd_device_up{{device="{device}"' not in text  # neither up nor down
    started.printer.poll_once()
    text = render_metrics(started.backend).decode()
    assert 'gatewayd_device_up{device="printer",id="printer"} 0.0' in text


def test_page_says_checking(started: Started, tmp_path: Path) -> None:
    with (running_server(tmp_path, started.backend) as server,  # type: ignore[arg-type]
          httpx.Client(base_url=server.url, timeout=10) as client):
        login(client)
        page = re.sub(r"<[^>]+>", " ", client.get("/").text)
    devices = re.sub(r"\s+", " ", page[page.index("レシートプリンター"):])
    assert devices.startswith("レシートプリンター 確認中")
    assert "ドロワー 確認中" in devices
    for fault in ("異常", "不明", "オフライン", "用紙状態不明"):
        assert fault not in devices[:devices.index("ドロワー") + 12], fault


def test_gatewayd_status_says_checking(started: Started) -> None:
    settings = started.gateway.settings
    write_snapshot(settings.state_dir, started.gateway.status_data())
    status = collect(settings)
    assert status["devices"]["condition"] == "checking"
    assert status["devices"]["drawer"]["state"] == "checking"
    text = render_text(status)
    assert "printer serial /dev/null: checking  確認中です" in text
    assert "drawer: checking" in text and "link checking" in text
    assert "offline" not in text and "応答しません" not in text and "unknown" not in text
