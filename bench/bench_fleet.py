"""Benchmark: a chain of 1,000 stores (one freee company) closing within 10 minutes.

    .venv/bin/python bench/bench_fleet.py [--stores 1000] [--window 600] [--granularity day]
        [--movements none|realistic] [--rate 3] [--quota 3000] [--latency 0.05] [--seed 1]
        [--links-per-day 1000]

Every store has its own gateway box: its own ``SyncService`` (own state directory, outbox,
token pair, master cache), linked to the same company through the real OAuth flow the day
before. All boxes talk to one freee emulator (one app, so one daily quota of ``--quota``
calls per company and a per-second limit of ``--rate`` calls) over loopback HTTP. Linking
reads the masters and creates the prefixed 品目 (two calls a box, the first box seven more):
at most ``--links-per-day`` boxes are linked per JST day before the first evening, one a
second.

Time is simulated, for the boxes and for the emulator alike: one clock drives every
``SyncService.step(now)`` and the emulator's clock (token lifetimes, the per-second window,
the JST quota day). Each store closes at a random moment of the window (from 21:30 JST); each
API request advances the clock by ``--latency`` (requests do not overlap: a pessimistic
single queue), and the client's short waits (a 429's reset time) advance it too. Each box
sends a closed day after its part of ``freee.send_spread`` (default 120 s). The first
evening (the masters and 品目 from link time) and the second (steady state) are both
simulated. Printed: API calls per evening against the quota, calls
per store-day, 429 answers, when the last day was done after the last close, and the verdict
— every evening within the quota, every day in freee within 30 minutes of the last close,
none twice, none missing.
"""

from __future__ import annotations

import argparse
import heapq
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gatewayd.cli.demo import approve  # noqa: E402
from gatewayd.config import RegisterSettings, Settings  # noqa: E402
from gatewayd.protocol.days import analyze_journal  # noqa: E402
from gatewayd.protocol.records import BusinessDay  # noqa: E402
from gatewayd.sim.freee import MAIN_COMPANY_ID  # noqa: E402
from gatewayd.sim.freee.config import Clock  # noqa: E402
from gatewayd.sim.freee.server import ControlClient, EmulatorServer  # noqa: E402
from gatewayd.sim.journal_gen import GeneratorOptions, generate_journal  # noqa: E402
from gatewayd.sync.freee_settings import FreeeSettings  # noqa: E402
from gatewayd.sync.outbox import PostingState  # noqa: E402
from gatewayd.sync.service import SyncService  # noqa: E402

CLIENT_ID, CLIENT_SECRET = "gatewayd-fleet", "gatewayd-fleet-secret"
JST = timedelta(hours=9)
FIRST_DAY = date(2025, 10, 6)  # a Monday in the emulator's open fiscal year 2025


class SimClock:
    """The one clock of the simulation (UTC)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def at_least(self, moment: datetime) -> None:
        self.now = max(self.now, moment)


class EmulatorClock(Clock):
    """The emulator's clock, following the simulation instead of the wall."""

    def __init__(self, sim: SimClock) -> None:
        super().__init__()
        self.sim = sim

    def now(self) -> float:
        return self.sim.now.timestamp()


class LatencyTransport(httpx.BaseTransport):
    """Each request costs ``latency`` simulated seconds; counts answers by status."""

    def __init__(self, sim: SimClock, latency: float) -> None:
        self.inner = httpx.HTTPTransport()
        self.sim = sim
        self.latency = latency
        self.statuses: Counter[int] = Counter()
        self.endpoints: Counter[str] = Counter()  # API calls that count (not 429) by route
        self.api_calls = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.sim.advance(self.latency)
        self.statuses[response.status_code] += 1
        if request.url.path.startswith("/api/1/"):
            self.api_calls += 1
            if response.status_code != 429:
                route = re.sub(r"/\d{4,}", "/{id}", request.url.path)
                self.endpoints[f"{request.method} {route} {response.status_code}"] += 1
        return response

    def close(self) -> None:
        pass  # shared by every box: closed once, at the end

    def really_close(self) -> None:
        self.inner.close()


@dataclass
class Store:
    index: int
    register: RegisterSettings
    service: SyncService
    days: dict[date, BusinessDay] = field(default_factory=dict)
    done_at: dict[date, datetime] = field(default_factory=dict)

    def get_day(self, register_id: str, business_date: date) -> BusinessDay | None:
        return self.days.get(business_date)


def store_days(index: int, seed: int, receipts: int, movements: bool) -> list[BusinessDay]:
    options = GeneratorOptions() if movements else GeneratorOptions(movements=(0, 0))
    lines = generate_journal(seed, 2, FIRST_DAY, f"{index:04d}", "01",
                             receipts_per_day=receipts, options=options)
    analysis = analyze_journal(lines, after_record_no=0)
    days = [d.day for d in analysis.days if d.day is not None and d.status == "accepted"]
    assert len(days) == 2
    return days


def jst_evening(day: date) -> datetime:
    """21:30 JST of ``day`` as UTC."""
    return datetime(day.year, day.month, day.day, 21, 30, tzinfo=UTC) - JST


def waiting(svc: SyncService, now: datetime) -> bool:
    return bool(svc.outbox.postings_in_state(PostingState.PENDING, PostingState.SENDING)
                or svc.outbox.days_due(now) or svc.outbox.open_requests())


def evening(stores: list[Store], day: date, args: argparse.Namespace, sim: SimClock,
            transport: LatencyTransport, rng_seed: int) -> dict[str, Any]:
    """Every store closes ``day`` in the window; run until every box is idle."""
    import random

    rng = random.Random(rng_seed)
    start = jst_evening(day)
    sim.at_least(start)
    events: list[tuple[datetime, int, int]] = []
    for store in stores:
        close = start + timedelta(seconds=rng.uniform(0, args.window))
        heapq.heappush(events, (close, store.index, 0))
    api_before = transport.api_calls
    statuses_before = Counter(transport.statuses)
    endpoints_before = Counter(transport.endpoints)
    closed: set[int] = set()
    last_close = max(when for when, _i, _n in events) if events else start
    steps = 0
    wall = time.perf_counter()
    by_minute: Counter[int] = Counter()
    while events:
        when, index, _n = heapq.heappop(events)
        sim.at_least(when)
        store = stores[index]
        now = sim.now
        if index not in closed:
            closed.add(index)
            store.service.day_accepted(store.register, store.days[day])
        calls = transport.api_calls
        wait = store.service.step(now)
        steps += 1
        by_minute[int((now - start).total_seconds() // 60)] += transport.api_calls - calls
        if waiting(store.service, sim.now):
            heapq.heappush(events, (sim.now + timedelta(seconds=max(wait, 0.05)), index,
                                    steps))
        else:
            store.done_at[day] = sim.now
        if sim.now - start > timedelta(days=2):
            raise RuntimeError("the fleet did not drain within two simulated days")
    statuses = Counter(transport.statuses)
    statuses.subtract(statuses_before)
    done = [s.done_at[day] for s in stores if day in s.done_at]
    endpoints = Counter(transport.endpoints)
    endpoints.subtract(endpoints_before)
    return {
        "endpoints": {k: v for k, v in sorted(endpoints.items()) if v},
        "api_calls": transport.api_calls - api_before,
        "statuses": {k: v for k, v in statuses.items() if v},
        "last_done": max(done) if done else None,
        "start": start,
        "last_close": last_close,
        "steps": steps,
        "wall": time.perf_counter() - wall,
        "peak_minute": max(by_minute.values()) if by_minute else 0,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=1000)
    parser.add_argument("--window", type=float, default=600.0, help="seconds of closes")
    parser.add_argument("--granularity", choices=("summary", "receipt", "day"), default="day")
    parser.add_argument("--movements", choices=("none", "realistic"), default="none",
                        help="cash movements of the days (the generator's 1-3 a day)")
    parser.add_argument("--receipts", type=int, default=30, help="receipts per store-day")
    parser.add_argument("--rate", type=int, default=3, help="emulator requests/s (0: none)")
    parser.add_argument("--quota", type=int, default=3000, help="emulator daily quota")
    parser.add_argument("--latency", type=float, default=0.05, help="simulated s/request")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--links-per-day", type=int, default=1000,
                        help="boxes linked per JST day before the first evening (2 calls each)")
    parser.add_argument("--state", type=Path, default=None,
                        help="where the boxes' state goes (default: a tmpfs under /dev/shm)")
    args = parser.parse_args(argv)

    per_day = max(args.links_per_day, 1)
    link_days = -(-args.stores // per_day)
    sim = SimClock(jst_evening(FIRST_DAY - timedelta(days=link_days)) - timedelta(hours=10))
    base = args.state or (Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
    # freee names its reset times in its own clock: here the simulated one, so the client
    # reads them against the simulated clock too (on a box both are the wall clock)
    import gatewayd.sync.freee_client as freee_client

    plain = freee_client.error_from_response
    freee_client.error_from_response = (  # type: ignore[assignment]
        lambda resp, now=None: plain(resp, now=now or sim.now))
    tmp = Path(tempfile.mkdtemp(prefix="gatewayd-fleet-", dir=base))
    transport = LatencyTransport(sim, args.latency)
    t0 = time.perf_counter()
    stores: list[Store] = []
    try:
        with EmulatorServer(tmp / "freee.sqlite", client_id=CLIENT_ID,
                            client_secret=CLIENT_SECRET, auto_approve=True,
                            daily_quota=args.quota,
                            rate_per_second=args.rate or None) as freee:
            freee.emulator.clock = EmulatorClock(sim)
            mapping = {"granularity": args.granularity}
            print(f"{args.stores} stores, one company, closes within {args.window:.0f} s from "
                  f"21:30 JST; granularity {args.granularity}; movements {args.movements}; "
                  f"emulator quota {args.quota}/day, rate {args.rate or 'unlimited'}/s; "
                  f"{args.latency * 1000:.0f} ms per request")
            for i in range(args.stores):
                register = RegisterSettings(store_code=f"{i:04d}", terminal_no="01",
                                            port="loop://")
                state = tmp / f"box{i:04d}"
                settings = Settings(state_dir=state, registers=(register,),
                                    extra={"mapping": mapping})
                freee_settings = FreeeSettings(
                    api_base_url=freee.base_url, auth_base_url=freee.base_url,
                    client_id=CLIENT_ID, client_secret=CLIENT_SECRET, retry_initial=0.5,
                    lookup_delay=5.0)
                store = Store(i, register, None)  # type: ignore[arg-type]
                store.service = SyncService(settings, state, store, clock=sim,
                                            transport=transport, freee=freee_settings,
                                            sleep=sim.advance)
                for day in store_days(i, args.seed, args.receipts, args.movements == "realistic"):
                    store.days[day.business_date] = day
                stores.append(store)
            for n, store in enumerate(stores):
                batch, k = divmod(n, per_day)
                if k == 0:  # 11:30 JST, link_days - batch days before the first evening
                    sim.at_least(jst_evening(FIRST_DAY - timedelta(days=link_days - batch))
                                 - timedelta(hours=10))
                start = store.service.link_start()
                store.service.link_finish(approve(start.url), start.state)
                sim.advance(1.0)  # an installer links one box after the other
            linked = sum(1 for s in stores if s.service.masters.cached() is not None)
            print(f"set up and linked {len(stores)} boxes over {link_days} day(s) before, in "
                  f"{time.perf_counter() - t0:.0f} s ({transport.api_calls} API calls then; "
                  f"{linked} boxes hold the masters and 品目)")
            results = []
            for n, day in enumerate((FIRST_DAY, FIRST_DAY + timedelta(days=1))):
                result = evening(stores, day, args, sim, transport, args.seed * 100 + n)
                results.append((day, result))
                last = result["last_done"]
                print(f"evening {day}: {sum(result['endpoints'].values())} calls that count, "
                      f"{result['statuses']}, last done "
                      f"{(last - result['last_close']).total_seconds() / 60:.1f} min after the "
                      f"last close", flush=True)
            control = ControlClient(freee.base_url, timeout=600.0)  # large listings, busy host
            quota = control.quota()
            deals = control.deals(MAIN_COMPANY_ID)
            transfers = control.transfers(MAIN_COMPANY_ID)
            control.close()
    finally:
        for store in stores:
            store.service.close()
        transport.really_close()
        shutil.rmtree(tmp, ignore_errors=True)

    refs: Counter[str] = Counter(str(d.get("ref_number")) for d in deals)
    for t in transfers:
        for row in t.get("to_walletables") or []:
            refs[str(row.get("description", "")).rsplit(" ", 1)[-1]] += 1
    planned: list[str] = []
    postings_per_day: list[int] = []
    for store in stores:
        for day in store.days.values():
            plan = store.service.plan_for(store.register, day)
            planned += [p.ref_number for p in plan.postings]
            postings_per_day.append(len(plan.postings))
    duplicates = sum(n - 1 for n in refs.values() if n > 1)
    missing = [r for r in planned if r not in refs]
    unplanned = [r for r in refs if r not in set(planned)]
    used = {row["day"]: row.get("count", row.get("used", 0)) for row in quota.get("counts", [])}

    labels = ("first evening (after the roll-out)", "second evening (steady)")
    for (day, r), label in zip(results, labels, strict=True):
        last = r["last_done"]
        span = (last - r["start"]).total_seconds() if last else float("nan")
        after_close = (last - r["last_close"]).total_seconds() if last else float("nan")
        r["after_close"] = after_close
        jst_day = (r["start"] + JST).date().isoformat()
        print(f"\n[{label}] business date {day}")
        counted = sum(r["endpoints"].values())
        print(f"  API calls that count toward the quota: {counted} "
              f"({counted / len(stores):.2f} per store-day); all requests incl. 429: "
              f"{r['api_calls']}")
        print(f"  emulator's quota count for {jst_day} (JST): {used.get(jst_day, '?')} of "
              f"{args.quota} (a JST day also holds the previous evening's calls after "
              "midnight)")
        print(f"  answers: {dict(sorted(r['statuses'].items()))}; busiest minute "
              f"{r['peak_minute']} calls (a 429 does not count toward the quota)")
        print(f"  calls that count, by route: {r['endpoints']}")
        print(f"  every store done {span / 60:.1f} simulated minutes after 21:30 JST, "
              f"{after_close / 60:.1f} after the last close "
              f"({r['steps']} steps, {r['wall']:.0f} s of real time)")
        r["counted"] = counted
    print(f"\npostings planned: {len(planned)} ({statistics.mean(postings_per_day):.2f} per "
          f"store-day); in freee: {sum(refs.values())}")
    print(f"duplicates: {duplicates}")
    print(f"missing: {len(missing)}{' e.g. ' + ', '.join(missing[:3]) if missing else ''}")
    print(f"in freee but not planned: {len(unplanned)}")
    within = all(int(v) <= args.quota for v in used.values() if isinstance(v, int))
    within = within and all(r["counted"] <= args.quota for _d, r in results)
    print(f"within the daily quota every day and every evening: {'yes' if within else 'NO'}")
    prompt = all(r["after_close"] <= 30 * 60 for _d, r in results)
    print(f"every day in freee within 30 min of the last close: {'yes' if prompt else 'NO'}")
    ok = duplicates == 0 and not missing and not unplanned
    print("all days in freee, none twice: " + ("yes" if ok else "NO"))
    return 0 if ok and within and prompt else 1


if __name__ == "__main__":
    raise SystemExit(main())
