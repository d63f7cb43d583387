"""The daemon with a ``[[taps]]`` table: a network register prints through the box, the day
reaches the freee emulator, and the status page shows the last captured report."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from gatewayd.backend import DaemonBackend
from gatewayd.config import parse_settings
from gatewayd.daemon import Gateway
from gatewayd.sim.print_layouts import day_stream
from gatewayd.sim.print_register import TcpPrinterSim, print_over_tcp
from gatewayd.tap.transports import TcpPassThrough
from tests.sync_fixtures import Harness, harness, link  # noqa: F401 - fixture
from tests.tap_fixtures import days
from tests.web_fixtures import login, running_server


def wait(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_tapped_day_goes_through_the_daemon_to_freee_and_the_page(
    harness: Harness, tmp_path: Path  # noqa: F811
) -> None:
    printer = TcpPrinterSim()
    host, port = printer.address
    settings = parse_settings({
        "state_dir": str(harness.state_dir),
        "taps": [{"store_code": "0003", "terminal_no": "01", "template": "en-suffix",
                  "transport": "tcp-pass-through", "listen": "127.0.0.1:0",
                  "printer": f"{host}:{port}", "store_name": "駅前店"}],
        "mapping": {"tax_names": {"0": "非課売上"}},
    })
    svc = harness.service()
    link(svc)
    gateway = Gateway(settings, sync_factory=lambda _s, _g: svc,
                      printer_factory=lambda _s, _a: None, web=False)
    gateway.start()
    try:
        box = gateway.taps.transports["0003-01"]
        assert isinstance(box, TcpPassThrough)
        day = days(seed=61, n=1)[0]
        jobs = day_stream("en-suffix", day)
        for job in jobs:
            assert print_over_tcp(box.address, job)[0]
        assert wait(lambda: len(printer.received) == sum(map(len, jobs)))
        ref = f"POS-0003-01-{day.business_date:%Y%m%d}-S"
        assert wait(lambda: any(d["ref_number"] == ref for d in harness.deals()), 30)
        sales = [d for d in harness.deals() if d["ref_number"] == ref]
        assert len(sales) == 1 and sales[0]["amount"] == day.gross
        status = gateway.status_data()["taps"]["0003-01"]
        assert status["last_report"]["verdict"] == "accepted"
        assert status["last_report"]["business_date"] == day.business_date.isoformat()
        (tmp_path / "web").mkdir()
        with running_server(tmp_path / "web", DaemonBackend(gateway)) as server, \
                httpx.Client(base_url=server.url, timeout=10) as client:
            login(client)
            page = html.unescape(re.sub(r"<[^>]+>", " ", client.get("/").text))
            assert "印字タップ 0003-01" in page and "駅前店" in page
            assert "読み取りOK" in page
            assert f"純売上                            {day.gross:,}円" in page
    finally:
        gateway.stop_event.set()
        gateway.stop()
        printer.stop()
