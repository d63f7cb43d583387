"""Benchmark: the print tap's pass-through — added latency per job, bytes/s, and no byte lost
or reordered over many jobs with the printer side unplugged and replugged.

    .venv/bin/python bench/bench_tap.py [--jobs 10000] [--paced-jobs 20] [--skip-tcp]

Serial: a simulated register on a pty → ``SerialPassThrough`` → a simulated printer on a pty
(behind a stable symlink, so it can be unplugged and replugged), every chunk stored in a real
``TapStore`` (WAL, synchronous=FULL) by ``TapIngest``. Paced at 115200 baud, the latency is the
time from the last byte of a job leaving the register to the printer having it all. TCP: a
network register → ``TcpPassThrough`` → a TCP printer, against printing to the printer
directly. The loss check sends ``--jobs`` jobs unpaced, unplugging the printer every
``--unplug-every`` jobs and printing a few jobs while it is out, then checks: the tap store
holds every byte the register sent, in order; the printer got exactly the bytes of the jobs
sent while it was plugged, in order.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gatewayd.sim.print_layouts import generate_print_day, receipt_bytes
from gatewayd.sim.print_register import PtyPrintRegister, TcpPrinterSim, print_over_tcp
from gatewayd.sim.printer import PtyPrinterSimulator, SimPrinter
from gatewayd.store.taps import TapStore
from gatewayd.sync.mapping_settings import MappingSettings
from gatewayd.tap.ingest import TapIngest
from gatewayd.tap.settings import TapSettings
from gatewayd.tap.template import parse_template
from gatewayd.tap.transports import SerialPassThrough, TcpPassThrough

TEMPLATE = Path(__file__).resolve().parents[1] / "etc" / "templates" / "label-yen.toml"


class RawPrinter(SimPrinter):
    def __init__(self) -> None:
        super().__init__()
        self.raw = bytearray()

    def receive(self, data: bytes) -> bytes:
        self.raw += data
        return super().receive(data)


def wait(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.0005)
    return predicate()


def jobs_of(n: int) -> list[bytes]:
    day = generate_print_day(1, date(2026, 11, 2), 1, receipts=50)
    base = [receipt_bytes("label-yen", day, r) for r in day.receipts]
    return [base[i % len(base)].replace(b"No.", f"#{i:06d}".encode(), 1) for i in range(n)]


def ingest_for(tmp: Path, tap: TapSettings) -> TapIngest:
    template = parse_template(TEMPLATE.read_text(encoding="utf-8"), str(TEMPLATE))
    return TapIngest(tap, template, TapStore(tmp / f"{tap.tap_id}.sqlite"), MappingSettings())


def serial_bench(tmp: Path, args: argparse.Namespace) -> None:
    link = tmp / "printer"
    printer = RawPrinter()
    psim = PtyPrinterSimulator(printer, link=link).start()
    register = PtyPrintRegister()
    tap = TapSettings("0001", "01", "label-yen", "serial-pass-through", port=register.port,
                      printer_port=str(link))
    ingest = ingest_for(tmp, tap)
    bridge = SerialPassThrough(tap, lambda d, w: ingest.heard(d, direction=w),
                               backoff=(0.02, 0.2)).start()
    assert wait(lambda: bridge.register.port is not None and bridge.printer.port is not None)
    # paced: latency and throughput at 115200 baud
    latencies = []
    jobs = jobs_of(args.paced_jobs)
    started = time.monotonic()
    for job in jobs:
        want = len(printer.raw) + len(job)
        register.send(job, chunk=64, baudrate=115200)
        sent_at = time.monotonic()
        assert wait(lambda want=want: len(printer.raw) >= want)
        latencies.append(time.monotonic() - sent_at)
    elapsed = time.monotonic() - started
    total = sum(map(len, jobs))
    print(f"serial 115200 paced: {len(jobs)} jobs, {total} bytes in {elapsed:.2f} s = "
          f"{total / elapsed:,.0f} bytes/s (line maximum 11,520); added latency per job: "
          f"median {statistics.median(latencies) * 1000:.1f} ms, "
          f"max {max(latencies) * 1000:.1f} ms")
    # unpaced, with unplug/replug
    loss_check(args, "serial", register.send, printer_raw=lambda: bytes(printer.raw),
               unplug=psim.unplug,
               replug=lambda: (psim.replug(), wait(lambda: bridge.printer.port is not None)),
               ingest=ingest, tap_id=tap.tap_id, prefix=bytes(printer.raw),
               settle=lambda want: wait(lambda: len(printer.raw) >= want))
    bridge.stop()
    psim.stop()
    register.close()


def loss_check(args: argparse.Namespace, name: str, send: Callable[[bytes], object], *,
               printer_raw: Callable[[], bytes], unplug: Callable[[], object],
               replug: Callable[[], object], ingest: TapIngest, tap_id: str, prefix: bytes,
               settle: Callable[[int], bool], hears_while_out: bool = True) -> None:
    """``hears_while_out``: serial taps hear what the register sends with the printer out;
    the TCP box refuses those connections, so nothing of them is sent or stored."""
    jobs = jobs_of(args.jobs)
    before_store = ingest.store.stream_length(tap_id)
    expected_printer = bytearray(prefix)
    sent = bytearray()
    unplugs = dropped_jobs = 0
    started = time.monotonic()
    for i, job in enumerate(jobs):
        if i and i % args.unplug_every == 0:
            assert settle(len(expected_printer)), f"{name}: printer behind before unplug"
            unplug()
            unplugs += 1
            for k in range(args.jobs_while_out):
                out = f"\x1b@OUT {i}-{k}\n\x1dVB\x00".encode()
                send(out)
                if hears_while_out:
                    sent += out
                dropped_jobs += 1
            time.sleep(0.05)
            replug()
        send(job)
        sent += job
        expected_printer += job
        if i % 50 == 0:
            settle(len(expected_printer))
    assert settle(len(expected_printer)), f"{name}: printer did not get everything"
    assert wait(lambda: ingest.store.stream_length(tap_id) >= before_store + len(sent), 60)
    elapsed = time.monotonic() - started
    stored = ingest.store.stream(tap_id)[before_store:]
    got = printer_raw()
    ok_store = stored == bytes(sent)
    ok_printer = got == bytes(expected_printer)
    print(f"{name} unplug/replug: {len(jobs)} jobs ({len(sent):,} bytes) in {elapsed:.1f} s, "
          f"{unplugs} unplugs, {dropped_jobs} jobs printed while out; tap store has every "
          f"byte in order: {ok_store}; printer got exactly the jobs sent while plugged, in "
          f"order: {ok_printer}")
    if not (ok_store and ok_printer):
        raise SystemExit(1)


def tcp_bench(tmp: Path, args: argparse.Namespace) -> None:
    printer = TcpPrinterSim(RawPrinter())
    host, port = printer.address
    tap = TapSettings("0001", "02", "label-yen", "tcp-pass-through", listen="127.0.0.1:0",
                      printer=f"{host}:{port}")
    ingest = ingest_for(tmp, tap)
    box = TcpPassThrough(tap, lambda d, w: ingest.heard(d, direction=w), ingest.end_of_job,
                         connect_timeout=0.5).start()
    jobs = jobs_of(args.paced_jobs * 5)

    def run(address: tuple[str, int]) -> tuple[list[float], float]:
        times = []
        start = time.monotonic()
        for job in jobs:
            want = len(printer.received) + len(job)
            t0 = time.monotonic()
            print_over_tcp(address, job)
            wait(lambda want=want: len(printer.received) >= want)
            times.append(time.monotonic() - t0)
        return times, time.monotonic() - start

    direct, d_elapsed = run(printer.address)
    through, t_elapsed = run(box.address)
    total = sum(map(len, jobs))
    print(f"tcp: {len(jobs)} jobs of ~{total // len(jobs)} bytes; per job direct median "
          f"{statistics.median(direct) * 1000:.2f} ms, through the box "
          f"{statistics.median(through) * 1000:.2f} ms (added "
          f"{(statistics.median(through) - statistics.median(direct)) * 1000:.2f} ms); "
          f"{total / t_elapsed:,.0f} bytes/s through the box vs {total / d_elapsed:,.0f} direct")
    prefix = bytes(printer.received)

    def send(job: bytes) -> None:
        print_over_tcp(box.address, job)

    def replug() -> None:
        printer.replug()
        box.printer = printer.address

    loss_check(args, "tcp", send, printer_raw=lambda: bytes(printer.received),
               unplug=printer.unplug, replug=replug, ingest=ingest, tap_id=tap.tap_id,
               prefix=prefix, settle=lambda want: wait(lambda: len(printer.received) >= want),
               hears_while_out=False)
    box.stop()
    printer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--paced-jobs", type=int, default=20)
    parser.add_argument("--unplug-every", type=int, default=1000)
    parser.add_argument("--jobs-while-out", type=int, default=3)
    parser.add_argument("--skip-tcp", action="store_true")
    parser.add_argument("--skip-serial", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        if not args.skip_serial:
            serial_bench(Path(d), args)
        if not args.skip_tcp:
            tcp_bench(Path(d), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
