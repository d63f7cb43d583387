"""End to end: a printing register → each transport → tap store → checks → outbox → the freee
emulator, for every shipped layout; exactly once, every yen as printed; broken reports held
or ignored with the reason named."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gatewayd.protocol.records import Method
from gatewayd.sim.print_layouts import PrintDay, day_stream, report_bytes
from gatewayd.sim.print_register import PtyPrintRegister, TcpPrinterSim, print_over_tcp
from gatewayd.sim.printer import PtyPrinterSimulator
from gatewayd.store.taps import TapStore
from gatewayd.sync.mapping_settings import mapping_from_table
from gatewayd.sync.outbox import Gate
from gatewayd.tap.ingest import TapIngest
from gatewayd.tap.settings import TapSettings
from gatewayd.tap.sync_bridge import TapSync
from gatewayd.tap.transports import PassiveSerialTap, SerialPassThrough, TcpPassThrough
from tests.sync_fixtures import Harness, harness, link  # noqa: F401 - fixture
from tests.tap_fixtures import LAYOUTS, days, shipped_template

TRANSPORTS = ("passive-serial", "serial-pass-through", "tcp-pass-through")


def wait(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _print_through(transport: str, tap: TapSettings, ingest: TapIngest,
                   jobs: list[bytes]) -> None:
    """Send ``jobs`` from a simulated register through ``transport`` into ``ingest``."""
    def heard(data: bytes, direction: str) -> None:
        ingest.heard(data, direction=direction)

    total = sum(len(j) for j in jobs)
    if transport == "tcp-pass-through":
        printer = TcpPrinterSim()
        host, port = printer.address
        tap = dataclasses.replace(tap, transport=transport, listen="127.0.0.1:0",
                                  printer=f"{host}:{port}")
        box = TcpPassThrough(tap, heard, ingest.end_of_job).start()
        try:
            for job in jobs:
                assert print_over_tcp(box.address, job)[0]
            assert wait(lambda: len(printer.received) == total)
            assert wait(lambda: ingest.store.stream_length(tap.tap_id) >= total)
        finally:
            box.stop()
            printer.stop()
        return
    register = PtyPrintRegister()
    try:
        if transport == "passive-serial":
            t = dataclasses.replace(tap, transport=transport, port=register.port)
            listener = PassiveSerialTap(t, heard, backoff=(0.05, 0.2)).start()
            ready = lambda: listener.ports[0][0].port is not None  # noqa: E731
            stop: Callable[[], None] = listener.stop
        else:
            psim = PtyPrinterSimulator().start()
            t = dataclasses.replace(tap, transport=transport, port=register.port,
                                    printer_port=psim.port)
            bridge = SerialPassThrough(t, heard, backoff=(0.05, 0.2)).start()
            ready = lambda: bridge.register.port is not None and bridge.printer.port is not None  # noqa: E731

            def stop() -> None:
                bridge.stop()
                psim.stop()
        try:
            assert wait(ready)
            for job in jobs:
                register.send(job, chunk=200)
            assert wait(lambda: ingest.store.stream_length(tap.tap_id) >= total)
        finally:
            stop()
        ingest.end_of_job()
    finally:
        register.close()


def _deals_by_ref(h: Harness) -> dict[str, dict[str, Any]]:
    deals = h.deals()
    refs = Counter(d["ref_number"] for d in deals)
    assert not refs or max(refs.values()) == 1, refs  # exactly once
    return {d["ref_number"]: d for d in deals}


def _check_posted(h: Harness, tap: TapSettings, generated: list[PrintDay]) -> None:
    deals = _deals_by_ref(h)
    transfers = h.transfers()
    for day in generated:
        stamp = f"{day.business_date:%Y%m%d}"
        sales = deals[f"POS-{tap.store_code}-{tap.terminal_no}-{stamp}-S"]
        assert sales["amount"] == day.gross  # to the yen of the printed report
        assert sales["issue_date"] == day.business_date.isoformat()
        paid = sum(p["amount"] for p in sales.get("payments", []))
        assert paid == day.method_total(Method.CASH)  # cash settles, the rest stays 未決済
        if day.cash_difference:
            assert deals[f"POS-{tap.store_code}-{tap.terminal_no}-{stamp}-D"]["amount"] == \
                abs(day.cash_difference)
        if day.cash_out:
            ref = f"POS-{tap.store_code}-{tap.terminal_no}-{stamp}-MOUT"
            assert deals[ref]["amount"] == day.cash_out
    assert not transfers


def _setup(h: Harness, tmp_path: Path, layout: str, terminal: str
           ) -> tuple[TapSettings, TapIngest, Any]:
    svc = h.service()
    link(svc)
    tap = TapSettings("0002", terminal, layout, "passive-serial", port="unused")
    mapping = mapping_from_table(h.mapping)
    ingest = TapIngest(tap, shipped_template(layout), TapStore(tmp_path / "taps.sqlite"),
                       mapping, TapSync(svc))
    return tap, ingest, svc


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_days_reach_freee_once_through_each_transport(
    harness: Harness, tmp_path: Path, layout: str, transport: str  # noqa: F811
) -> None:
    tap, ingest, svc = _setup(harness, tmp_path, layout, "05")
    generated = days(seed=41 + LAYOUTS.index(layout), n=2)
    jobs = [j for d in generated for j in day_stream(layout, d)]
    _print_through(transport, tap, ingest, jobs)
    harness.run(svc)
    _check_posted(harness, tap, generated)
    before = len(harness.deals())
    # a restart replays every stored plan: nothing is posted twice
    ingest.store.close()
    again = TapIngest(tap, shipped_template(layout), TapStore(tmp_path / "taps.sqlite"),
                      ingest.mapping, TapSync(svc))
    assert again.replay() == 2
    harness.run(svc)
    assert len(harness.deals()) == before
    _check_posted(harness, tap, generated)


def test_broken_reports_are_held_or_ignored_with_the_reason(
    harness: Harness, tmp_path: Path  # noqa: F811
) -> None:
    layout = "label-yen"
    tap, ingest, svc = _setup(harness, tmp_path, layout, "06")
    d1, d2, d3, d4 = days(seed=51, n=4)
    tampered = report_bytes(layout, d2).replace(
        f"¥{d2.gross:,}".replace("¥", "\\").encode(),
        f"¥{d2.gross + 100:,}".replace("¥", "\\").encode(), 1)
    missing_rate = report_bytes(layout, d3).replace("8%対象".encode("cp932"), b"", 1)
    jobs = [
        report_bytes(layout, d1, training=True),  # training: ignored
        report_bytes(layout, d1),
        report_bytes(layout, d1),  # printed twice: ignored
        tampered,
        missing_rate,
        report_bytes(layout, d4),
    ]
    ingest.heard(b"".join(jobs), now=1.0)
    ingest.end_of_job()
    harness.run(svc)
    deals = _deals_by_ref(harness)
    sales = {ref for ref in deals if ref.endswith("-S")}
    assert sales == {f"POS-0002-06-{d.business_date:%Y%m%d}-S" for d in (d1, d4)}
    outbox = svc.outbox
    held2 = outbox.day(tap.tap_id, d2.business_date)
    held3 = outbox.day(tap.tap_id, d3.business_date)
    assert held2 is not None and held2.gate is Gate.HELD
    assert held2.hold_reason is not None and "methods: payment methods sum to" in held2.hold_reason
    assert held3 is not None and held3.gate is Gate.HELD
    assert held3.hold_reason is not None and "fields: no line for base.8R" in held3.hold_reason
    ignored = [(j.verdict, j.reason) for j in ingest.store.jobs(tap.tap_id)
               if j.verdict == "ignored" and j.kind != "other"]
    assert ("ignored", "training print (トレーニング): not a sale") in ignored
    assert any(r and r.startswith("printed twice: Z 1 of") for _v, r in ignored)
