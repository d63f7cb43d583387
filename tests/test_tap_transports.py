"""The tap's transports over ptys and TCP on 127.0.0.1: every byte stored in order, passed
through unchanged, status queries answered, the printer side unplugged and replugged."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from gatewayd.sim.print_layouts import day_stream
from gatewayd.sim.print_register import PtyPrintRegister, TcpPrinterSim, print_over_tcp
from gatewayd.sim.printer import PtyPrinterSimulator, SimPrinter, SimState
from gatewayd.store.taps import TO_PRINTER, TO_REGISTER, TapStore
from gatewayd.sync.mapping_settings import MappingSettings
from gatewayd.sync.plan import DayPlan
from gatewayd.tap.ingest import TapIngest
from gatewayd.tap.settings import TapSettings
from gatewayd.tap.transports import PassiveSerialTap, SerialPassThrough, TcpPassThrough
from tests.tap_fixtures import days, shipped_template


class RecordingPrinter(SimPrinter):
    """The printer model, keeping every raw byte it was sent."""

    def __init__(self, state: SimState | None = None) -> None:
        super().__init__(state)
        self.raw = bytearray()

    def receive(self, data: bytes) -> bytes:
        self.raw += data
        return super().receive(data)


class Plans:
    def __init__(self) -> None:
        self.plans: list[DayPlan] = []

    def tap_day(self, tap: TapSettings, plan: DayPlan) -> None:
        self.plans.append(plan)


def wait(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _ingest(tmp_path: Path, tap: TapSettings, layout: str) -> tuple[TapIngest, Plans, TapStore]:
    store = TapStore(tmp_path / "taps.sqlite")
    plans = Plans()
    ingest = TapIngest(tap, shipped_template(layout), store, MappingSettings(), plans)
    return ingest, plans, store


def test_passive_serial_stores_every_byte_and_reads_each_day(tmp_path: Path) -> None:
    layout = "en-suffix"
    register = PtyPrintRegister()
    tap = TapSettings("0001", "01", layout, "passive-serial", port=register.port)
    ingest, plans, store = _ingest(tmp_path, tap, layout)
    generated = days(seed=31, n=2)
    sent = b"".join(j for d in generated for j in day_stream(layout, d))
    listener = PassiveSerialTap(tap, lambda data, d: ingest.heard(data, direction=d),
                                backoff=(0.05, 0.2)).start()
    try:
        assert wait(lambda: listener.ports[0][0].port is not None)
        register.send(sent, chunk=97)
        assert wait(lambda: store.stream_length("0001-01") == len(sent))
        assert store.stream("0001-01") == sent
        ingest.end_of_job()
        assert [p.business_date for p in plans.plans] == [d.business_date for d in generated]
        assert all(p.ready for p in plans.plans)
        assert [p.totals.gross for p in plans.plans] == [d.gross for d in generated]
    finally:
        listener.stop()
        register.close()


def test_serial_pass_through_forwards_unchanged_and_answers_status(tmp_path: Path) -> None:
    layout = "label-yen"
    register = PtyPrintRegister()
    printer = RecordingPrinter()
    # behind a stable symlink, as udev's by-id name: a replugged pty may get another number
    with PtyPrinterSimulator(printer, link=tmp_path / "printer") as psim:
        tap = TapSettings("0001", "02", layout, "serial-pass-through", port=register.port,
                          printer_port=psim.path)
        ingest, plans, store = _ingest(tmp_path, tap, layout)
        bridge = SerialPassThrough(tap, lambda data, d: ingest.heard(data, direction=d),
                                   backoff=(0.05, 0.2)).start()
        try:
            assert wait(lambda: bridge.register.port is not None
                        and bridge.printer.port is not None)
            direct = SimPrinter().receive(b"\x10\x04\x01")
            assert register.status(1) == direct  # DLE EOT through the box
            day = days(seed=32, n=1)[0]
            sent = b"".join(day_stream(layout, day))
            register.send(sent, chunk=128)
            assert wait(lambda: len(printer.raw) == len(sent) + 3)
            assert bytes(printer.raw) == b"\x10\x04\x01" + sent  # unchanged, in order
            assert wait(lambda: store.stream("0001-02") == b"\x10\x04\x01" + sent)
            assert store.stream("0001-02", TO_REGISTER) == direct
            assert wait(lambda: len(plans.plans) == 1)
            assert plans.plans[0].totals.gross == day.gross
            # printer unplugged: no answer, as without the box; the tap still hears
            psim.unplug()
            register.send(b"\x10\x04\x01")
            assert register.read(0.5) == b""
            register.send(b"lost while unplugged\n")
            assert wait(lambda: store.stream("0001-02").endswith(b"lost while unplugged\n"))
            psim.replug()
            assert wait(lambda: bridge.printer.port is not None, 5.0)
            time.sleep(0.1)
            assert register.status(1) == direct
        finally:
            bridge.stop()
            register.close()


def test_tcp_pass_through_forwards_stores_and_refuses_when_the_printer_is_off(
    tmp_path: Path,
) -> None:
    layout = "net-columns"
    printer = TcpPrinterSim(RecordingPrinter())
    host, port = printer.address
    tap = TapSettings("0001", "03", layout, "tcp-pass-through", listen="127.0.0.1:0",
                      printer=f"{host}:{port}")
    ingest, plans, store = _ingest(tmp_path, tap, layout)
    box = TcpPassThrough(tap, lambda data, d: ingest.heard(data, direction=d),
                         ingest.end_of_job, connect_timeout=0.5).start()
    try:
        generated = days(seed=33, n=2)
        jobs = [j for d in generated for j in day_stream(layout, d)]
        for job in jobs:
            ok, _ = print_over_tcp(box.address, job)
            assert ok
        sent = b"".join(jobs)
        assert wait(lambda: bytes(printer.received) == sent)
        assert wait(lambda: store.stream("0001-03") == sent)
        assert wait(lambda: len(plans.plans) == 2)
        assert [p.totals.gross for p in plans.plans] == [d.gross for d in generated]
        ok, answer = print_over_tcp(box.address, b"\x10\x04\x01", answer_wait=1.0)
        assert ok and answer == SimPrinter().receive(b"\x10\x04\x01")
        printer.unplug()
        before = box.refused
        print_over_tcp(box.address, b"job while the printer is off\n")
        assert wait(lambda: box.refused == before + 1)
        assert b"while the printer is off" not in bytes(printer.received)
        printer.replug()
        box.printer = printer.address
        ok, _ = print_over_tcp(box.address, b"after\n\x1dVB\x00")
        assert ok
        assert wait(lambda: bytes(printer.received).endswith(b"after\n\x1dVB\x00"))
        assert store.stream("0001-03", TO_PRINTER).endswith(b"after\n\x1dVB\x00")
    finally:
        box.stop()
        printer.stop()


def test_a_restart_resumes_from_the_stored_bytes(tmp_path: Path) -> None:
    layout = "label-yen"
    tap = TapSettings("0001", "04", layout, "passive-serial", port="unused")
    generated = days(seed=34, n=2)
    stream = b"".join(j for d in generated for j in day_stream(layout, d))
    ingest, plans, store = _ingest(tmp_path, tap, layout)
    half = len(stream) * 2 // 3
    ingest.heard(stream[:half], now=100.0)
    first = len(plans.plans)
    store.close()
    ingest2, plans2, store2 = _ingest(tmp_path, tap, layout)  # a new process
    ingest2.heard(stream[half:], now=101.0)
    ingest2.end_of_job()
    assert first + len(plans2.plans) == 2
    assert store2.stream("0001-04") == stream
    zs = store2.jobs("0001-04", kind="z_report")
    assert [z.business_date for z in zs] == [d.business_date.isoformat() for d in generated]
    assert all(z.verdict == "accepted" for z in zs)
    assert ingest2.replay() == 2
    last = store2.last_report("0001-04")
    assert last is not None and "精算レポート" in last.text


def test_sim_printer_register_prints_days_over_tcp(tmp_path: Path) -> None:
    from gatewayd.cli import main

    printer = TcpPrinterSim()
    host, port = printer.address
    try:
        code = main(["sim", "printer-register", "--layout", "net-columns", "--days", "1",
                     "--receipts", "3", "--tcp", f"{host}:{port}", "--interval", "0",
                     "--reprint", "--training-z"])
        assert code == 0
        from gatewayd.tap.capture import read_capture

        kinds = [c.reading.kind.value for c in read_capture(
            bytes(printer.received), shipped_template("net-columns"))]
        assert kinds.count("z_report") == 1
        assert "reprint" in kinds and "training" in kinds and "x_report" in kinds
    finally:
        printer.stop()
