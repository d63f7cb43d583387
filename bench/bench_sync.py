"""Benchmark: the freee sync against the emulator over loopback.

    .venv/bin/python bench/bench_sync.py [--days 30] [--backlog 90] [--receipts 60] [--seed 1]

Prints three figures:

1. API calls per store-day in steady state (masters cached, 品目 created): the goal is one
   call per posting and nothing else; with granularity ``day`` and a day without movements
   at most 2 (the sales deal, and the cash difference when there is one).
2. Time from an accepted day (the Z stored) to all its postings done in freee, per day.
3. The drain of a backlog (days closed while freee was not linked): time and calls.

Everything runs in this process: the emulator on a thread (uvicorn on 127.0.0.1), the
gateway's ``SyncService`` stepping in a loop with the real clock.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gatewayd.config import RegisterSettings, Settings
from gatewayd.protocol.days import analyze_journal
from gatewayd.protocol.records import BusinessDay
from gatewayd.sim.freee.server import EmulatorServer
from gatewayd.sim.journal_gen import GeneratorOptions, generate_journal
from gatewayd.sync.freee_settings import FreeeSettings
from gatewayd.sync.outbox import PostingState
from gatewayd.sync.service import SyncService

REGISTER = RegisterSettings(store_code="0001", terminal_no="01", port="loop://")
CLIENT_ID = "gatewayd-emulator-client"
CLIENT_SECRET = "gatewayd-emulator-secret"
CODE = re.compile(r'id="authorization-code">([^<]+)<')


@dataclass
class Days:
    days: dict[tuple[str, date], BusinessDay] = field(default_factory=dict)

    def get_day(self, register_id: str, business_date: date) -> BusinessDay | None:
        return self.days.get((register_id, business_date))


def make_days(count: int, start: date, seed: int, receipts: int, movements: bool) -> list[Any]:
    options = GeneratorOptions() if movements else GeneratorOptions(movements=(0, 0))
    lines = generate_journal(seed, count, start, receipts_per_day=receipts, options=options)
    analysis = analyze_journal(lines, after_record_no=0)
    return [d.day for d in analysis.days if d.day is not None and d.status == "accepted"]


def service(emu: EmulatorServer, state: Path, source: Days, mapping: dict[str, Any]) -> SyncService:
    settings = Settings(state_dir=state, registers=(REGISTER,), extra={"mapping": mapping})
    freee = FreeeSettings(
        api_base_url=emu.base_url,
        auth_base_url=emu.base_url,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        retry_initial=0.05,
    )
    return SyncService(settings, state, source, freee=freee)


def link(svc: SyncService) -> None:
    start = svc.link_start()
    page = httpx.get(start.url, timeout=10)  # the emulator runs with auto-approve
    match = CODE.search(page.text)
    assert match is not None, page.text[:200]
    svc.link_finish(match.group(1), start.state)


def waiting(svc: SyncService) -> int:
    return len(svc.outbox.postings_in_state(PostingState.PENDING, PostingState.SENDING)) + len(
        svc.outbox.days_due(svc.clock())
    )


def drain(svc: SyncService, timeout: float = 600.0) -> float:
    """Step until nothing waits; returns the seconds it took."""
    t0 = time.perf_counter()
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        wait = svc.step()
        if waiting(svc) == 0:
            return time.perf_counter() - t0
        if wait > 0:
            time.sleep(min(wait, 0.05))
    raise RuntimeError("the sync did not drain in time")


def api_calls(svc: SyncService) -> dict[str, int]:
    return {k: v for k, v in svc.counters.snapshot().items() if not k.startswith("token ")}


def diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def steady(
    emu: EmulatorServer, tmp: Path, args: argparse.Namespace, granularity: str, movements: bool
) -> None:
    source = Days()
    mapping = {"tax_names": {"0": "非課売上"}, "granularity": granularity}
    svc = service(emu, tmp / f"state-{granularity}-{movements}", source, mapping)
    link(svc)
    start = date(2025, 4, 1) if movements else date(2025, 6, 1)
    days = make_days(args.days + 1, start, args.seed, args.receipts, movements)
    calls_per_day: list[int] = []
    postings_per_day: list[int] = []
    latency: list[float] = []
    others: dict[str, int] = {}
    for i, day in enumerate(days):
        source.days[(REGISTER.register_id, day.business_date)] = day
        before = api_calls(svc)
        t0 = time.perf_counter()
        svc.day_accepted(REGISTER, day)
        drain(svc)
        elapsed = time.perf_counter() - t0
        if i == 0:
            continue  # warm-up: masters read once, 品目 created
        spent = diff(api_calls(svc), before)
        for key, n in spent.items():
            if not key.startswith(("POST /api/1/deals", "POST /api/1/transfers")):
                others[key] = others.get(key, 0) + n
        calls_per_day.append(sum(spent.values()))
        postings_per_day.append(len(svc.plan_for(REGISTER, day).postings))
        latency.append(elapsed)
    extra = sum(c - p for c, p in zip(calls_per_day, postings_per_day, strict=True))
    label = f"granularity {granularity}, {'with' if movements else 'without'} movements"
    print(f"\n[{label}] {len(calls_per_day)} store-days after warm-up")
    print(
        f"  API calls per store-day: mean {statistics.mean(calls_per_day):.2f}, "
        f"max {max(calls_per_day)}; postings per day: mean "
        f"{statistics.mean(postings_per_day):.2f}"
    )
    print(f"  calls beyond one per posting: {extra} (goal 0) {others or ''}")
    if granularity == "day" and not movements:
        print(f"  day granularity, no movements: max {max(calls_per_day)} calls/day (goal ≤ 2)")
    lat = sorted(latency)
    print(
        f"  accepted day → all postings done: median {statistics.median(lat) * 1000:.0f} ms, "
        f"p95 {lat[int(0.95 * (len(lat) - 1))] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms"
    )
    svc.close()


def backlog(emu: EmulatorServer, tmp: Path, args: argparse.Namespace) -> None:
    source = Days()
    svc = service(emu, tmp / "state-backlog", source, {"tax_names": {"0": "非課売上"}})
    days = make_days(args.backlog, date(2025, 1, 2), args.seed + 1, args.receipts, True)
    for day in days:  # closed while freee was not linked: queued, nothing lost
        source.days[(REGISTER.register_id, day.business_date)] = day
        svc.day_accepted(REGISTER, day)
    postings = len(svc.outbox.postings_in_state(PostingState.PENDING))
    link(svc)
    before = api_calls(svc)
    seconds = drain(svc, timeout=1800)
    spent = diff(api_calls(svc), before)
    synced = sum(1 for d in svc.snapshot(days=args.backlog + 5).days if d.status.value == "synced")
    print(f"\n[backlog] {len(days)} days, {postings} postings queued while unlinked")
    print(
        f"  drained in {seconds:.1f} s ({postings / seconds:.1f} postings/s), "
        f"{sum(spent.values())} API calls: {dict(sorted(spent.items()))}"
    )
    print(f"  days synced: {synced}/{len(days)}")
    svc.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="steady-state store-days")
    parser.add_argument("--backlog", type=int, default=90, help="backlog days")
    parser.add_argument("--receipts", type=int, default=60, help="receipts per day")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        with EmulatorServer(tmp / "freee.sqlite3", auto_approve=True, daily_quota=1_000_000) as emu:
            print(f"freee emulator at {emu.base_url}")
            steady(emu, tmp, args, "summary", True)
            steady(emu, tmp, args, "day", False)
            backlog(emu, tmp, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
