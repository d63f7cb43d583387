"""Benchmark: drain one 5,000-receipt business day from the simulated register over a pty.

    .venv/bin/python bench/bench_link.py [--receipts 5000] [--baud 115200] [--pace] [--fsync]

The host (``RegisterHost``, real pyserial on a pseudo-terminal) reads the day with S/J/K
into a sink. A pty moves bytes far faster than a serial line, so the script prints both
the measured time and the theoretical time of the same bytes on a real line (8N1: ten bit
times per byte, both directions). ``--pace`` makes the simulator send at the line rate, so
the measured time is what a real cable would take; ``--fsync`` makes the sink append to a
file and fsync it per J batch, as the journal store does.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gatewayd.drivers.register_host import HostConfig, RegisterHost
from gatewayd.sim.register import RegisterSimulator


def make_journal(receipts: int, seed: int) -> tuple[list[str], str]:
    try:
        from gatewayd.sim.journal_gen import generate_journal
    except ImportError:
        generate_journal = None  # type: ignore[assignment]
    if generate_journal is not None:
        return generate_journal(seed, 1, date(2024, 4, 1), "0001", "01", receipts), "journal_gen"
    lines, n = [], 1
    lines.append(f"{n}\tO\t20240401\t20240401090000\t1001\t30000")
    for r in range(1, receipts + 1):
        for rec in (f"T\t{r}\tSALE\t-\t20240401100000\t1001\tIN",
                    f"L\t{r}\t1\tD1\t4901\tおにぎり\t1\t150\t150\t8R",
                    f"X\t{r}\t8R\t150\t11\t150", f"P\t{r}\tCASH\t-\t200\t150\t50",
                    f"E\t{r}\t150\t11"):
            n += 1
            lines.append(f"{n}\t{rec}")
    return lines, "synthetic"


class BenchSink:
    def __init__(self, path: Path | None) -> None:
        self.last = 0
        self.batches = 0
        self.done = threading.Event()
        self.target = 0
        self._file = open(path, "ab") if path else None  # noqa: SIM115

    def last_stored_record(self) -> int:
        return self.last

    def store_records(self, records: Sequence[tuple[int, bytes]]) -> int:
        if self._file is not None:
            self._file.write(b"".join(line + b"\n" for _, line in records))
            self._file.flush()
            os.fsync(self._file.fileno())
        self.last = max(self.last, *(n for n, _ in records))
        self.batches += 1
        if self.last >= self.target:
            self.done.set()
        return self.last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=5000)
    parser.add_argument("--baud", type=int, default=115200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pace", action="store_true", help="send at the line rate")
    parser.add_argument("--fsync", action="store_true", help="fsync every batch to a file")
    args = parser.parse_args()

    journal, source = make_journal(args.receipts, args.seed)
    record_bytes = sum(len(line.encode("cp932")) + 1 for line in journal)
    with tempfile.TemporaryDirectory() as tmp:
        sim = RegisterSimulator(journal, line_rate=args.baud if args.pace else None)
        link = sim.start_pty(Path(tmp) / "register")
        sink = BenchSink(Path(tmp) / "journal.txt" if args.fsync else None)
        sink.target = len(journal)
        host = RegisterHost(HostConfig("bench", link.path, baudrate=args.baud,
                                       poll_interval=0.01), sink)
        start = time.perf_counter()
        host.start()
        finished = sink.done.wait(3600)
        elapsed = time.perf_counter() - start
        host.stop()
        sim.stop()
    counters = host.snapshot().counters
    wire = counters.bytes_sent + counters.bytes_received
    line_time = wire * 10 / args.baud
    print(f"journal: {source}, {args.receipts} receipts, {len(journal)} records, "
          f"{record_bytes / 1024:.0f} KiB")
    print(f"transfer: {'complete' if finished else 'INCOMPLETE'} in {elapsed:.2f} s, "
          f"{len(journal) / elapsed:,.0f} records/s, {sink.batches} J/K batches, "
          f"{counters.resends} resends")
    print(f"on the wire: {wire / 1024:.0f} KiB both ways "
          f"(framing overhead {100 * (wire - record_bytes) / record_bytes:.1f} %)")
    print(f"theoretical line time at {args.baud} baud (8N1): {line_time:.2f} s "
          f"= {len(journal) / line_time:,.0f} records/s")
    ratio = elapsed / line_time
    if args.pace:
        print(f"measured / theoretical (paced like the line): {ratio:.2f}x "
              f"({100 * (ratio - 1):+.0f} % for turnarounds, J/K round trips and the sink)")
    else:
        print(f"measured / theoretical (pty, unpaced): {ratio:.3f}x — the pty moved it "
              f"{1 / ratio:,.0f}x faster than a {args.baud} baud line; run --pace for the line")
    return 0 if finished else 1


if __name__ == "__main__":
    raise SystemExit(main())
