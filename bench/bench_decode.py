"""Benchmark: split, parse and check one generated 5,000-receipt business day.

    .venv/bin/python bench/bench_decode.py [--receipts 5000] [--repeat 5] [--seed 1]

Measures, on the journal bytes as ``J`` responses carry them (CP932, LF-terminated):
split into lines, parse every record (``journal_parser``), and assemble + check the day
(``days.analyze_journal``); then re-analysis from already-parsed records (what the daemon's
``JournalAssembler`` does at each close). Prints records/s and bytes/s next to the line rate
of the register link at 115200 baud 8N1 (11,520 bytes/s): the checks must never be what
limits the gateway.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gatewayd.protocol.days import JournalAssembler, analyze_journal
from gatewayd.protocol.journal_parser import read_record, split_records
from gatewayd.sim.journal_gen import generate_journal

LINE_BYTES_PER_SECOND = 115200 / 10  # 8N1: ten bit times per byte


def _best(samples: list[float]) -> str:
    return f"best {min(samples) * 1000:7.1f} ms, median {statistics.median(samples) * 1000:7.1f} ms"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--receipts", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    lines = generate_journal(args.seed, 1, date(2025, 1, 10), receipts_per_day=args.receipts)
    data = b"".join(line.encode("cp932") + b"\n" for line in lines)
    n = len(lines)
    print(f"journal: {args.receipts} receipts, {n} records, {len(data):,} bytes "
          f"({len(data) / n:.1f} bytes/record)")

    split_t, parse_t, full_t, reanalyze_t = [], [], [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        raw = split_records(data, require_final_lf=True)
        t1 = time.perf_counter()
        for line in raw:
            read_record(line)
        t2 = time.perf_counter()
        analysis = analyze_journal(split_records(data, require_final_lf=True))
        t3 = time.perf_counter()
        split_t.append(t1 - t0)
        parse_t.append(t2 - t1)
        full_t.append(t3 - t2)
        assert [d.status for d in analysis.days] == ["accepted"], analysis.days[0].reason
        assembler = JournalAssembler()
        assembler.extend(raw)
        t4 = time.perf_counter()
        assembler.analyze()
        reanalyze_t.append(time.perf_counter() - t4)

    best = min(full_t)
    print(f"split                 {_best(split_t)}")
    print(f"parse                 {_best(parse_t)}")
    print(f"split+parse+checks    {_best(full_t)}")
    print(f"checks only (parsed)  {_best(reanalyze_t)}")
    print(f"decode+parse+checks: {n / best:,.0f} records/s, {len(data) / best:,.0f} bytes/s")
    line_time = len(data) / LINE_BYTES_PER_SECOND
    print(f"115200 baud line rate: {LINE_BYTES_PER_SECOND:,.0f} bytes/s "
          f"(~{LINE_BYTES_PER_SECOND / (len(data) / n):,.0f} records/s); "
          f"this day takes {line_time:,.1f} s on the wire, "
          f"{line_time / best:,.0f}× the checking time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
