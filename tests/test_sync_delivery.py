"""Delivery against the freee emulator over loopback: each ref_number exactly once.

Every test runs the real gateway code against the emulator; every request the gateway sends
is checked against freee's official schema (``SchemaCheckingTransport``), every response the
emulator gives against the schema's responses (``freee_response_audit``).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sync_fixtures import MAIN_COMPANY, REGISTER, Harness, link, make_days

from gatewayd.protocol.records import BusinessDay
from gatewayd.sync.outbox import PostingState
from gatewayd.sync.service import SyncService
from gatewayd.sync.tokens import utcnow

pytest_plugins = ["sync_fixtures"]

START = date(2025, 3, 1)


def accept(harness: Harness, svc: SyncService, days: list[BusinessDay]) -> None:
    for day in days:
        harness.source.add(REGISTER.register_id, day)
        svc.day_accepted(REGISTER, day)


def assert_exactly_once(harness: Harness, svc: SyncService, days: list[BusinessDay]) -> None:
    """Every planned ref_number is in freee exactly once, and freee's sales per day equal
    the register's gross (the Z), transfers included in the count."""
    deals = harness.deals()
    transfers = harness.transfers()
    refs = Counter(d["ref_number"] for d in deals)
    for t in transfers:
        for row in t.get("to_walletables") or []:
            refs[str(row.get("description", "")).rsplit(" ", 1)[-1]] += 1
    planned = []
    for day in days:
        plan = svc.plan_for(REGISTER, day)
        planned += [p.ref_number for p in plan.postings]
        sales = sum(
            d["amount"]
            for d in deals
            if d["issue_date"] == day.business_date.isoformat()
            and "-S" in d["ref_number"].split(f"{day.business_date:%Y%m%d}")[1][:2]
        )
        assert sales == day.close.gross_total, day.business_date
    assert sorted(refs) == sorted(planned)
    assert all(n == 1 for n in refs.values()), [r for r, n in refs.items() if n != 1]


def test_days_post_once_and_totals_match(harness: Harness) -> None:
    svc = harness.service()
    link(svc)
    days = make_days(3, START)
    accept(harness, svc, days)
    harness.run(svc)
    assert_exactly_once(harness, svc, days)
    snap = svc.snapshot()
    assert [d.status.value for d in snap.days] == ["synced"] * 3
    assert all(d.register_total == d.freee_total for d in snap.days)
    assert snap.queue.waiting == 0


def test_steady_state_costs_one_call_per_posting(harness: Harness) -> None:
    svc = harness.service()
    link(svc)
    days = make_days(4, START)
    accept(harness, svc, days[:1])
    harness.run(svc)  # first day: masters read, 品目 created
    before = svc.counters.snapshot()
    accept(harness, svc, days[1:])
    harness.run(svc)
    after = svc.counters.snapshot()
    calls = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    calls = {k: v for k, v in calls.items() if v and not k.startswith("token ")}
    postings = sum(len(svc.plan_for(REGISTER, d).postings) for d in days[1:])
    assert sum(calls.values()) == postings, calls
    assert set(calls) <= {"POST /api/1/deals", "POST /api/1/transfers"}


FAULTS = [
    pytest.param({"kind": "http_500", "times": 2}, id="500"),
    pytest.param({"kind": "http_503", "times": 2}, id="503"),
    pytest.param({"kind": "drop_before", "times": 2}, id="dropped-before-stored"),
    pytest.param({"kind": "drop_after", "times": 2}, id="dropped-after-stored"),
    pytest.param({"kind": "http_500_after", "times": 2}, id="500-after-stored"),
    pytest.param({"kind": "latency_after", "ms": 1200, "times": 2}, id="timeout-after-stored"),
]


@pytest.mark.parametrize("fault", FAULTS)
def test_exactly_once_under_fault(harness: Harness, fault: dict[str, Any]) -> None:
    harness.freee_overrides["read_timeout"] = 0.6
    svc = harness.service()
    link(svc)
    days = make_days(2, START)
    accept(harness, svc, days)
    # fault the 2nd and 5th POST of a deal (skip some so faults land mid-day)
    harness.emulator.control.add_fault(method="POST", path="/api/1/deals", skip=1, **fault)
    for _ in range(200):
        wait = svc.step()
        if wait >= 60:
            break
        harness.clock.advance(max(wait, 0.001))
    assert_exactly_once(harness, svc, days)
    assert harness.emulator.control.faults() == []  # every fault fired
    outcomes = Counter(
        a.outcome.value
        for d in days
        for a in svc.day_detail(REGISTER.register_id, d.business_date).attempts
    )
    if fault["kind"] in ("drop_after", "http_500_after", "latency_after"):
        assert outcomes["found"] >= 1  # the look-up found what freee had stored
    if fault["kind"] in ("http_500", "http_503", "drop_after", "http_500_after", "latency_after"):
        assert outcomes["ambiguous"] >= 1


def test_rate_limit_pauses_the_company(harness: Harness) -> None:
    svc = harness.service()
    link(svc)
    days = make_days(3, START)
    accept(harness, svc, days[:1])
    harness.run(svc)
    counts = harness.emulator.control.quota()["counts"]
    used = sum(int(c.get("count", 0)) for c in counts if c.get("company_id") == MAIN_COMPANY)
    harness.emulator.control.set_config(daily_quota=used + 1)  # one more call today
    accept(harness, svc, days[1:])
    wait = svc.step()
    snap = svc.snapshot()
    assert snap.queue.paused_until is not None
    assert wait >= 60  # paused for the time freee names (or 10 minutes), not retried at once
    assert any(
        "過度" in (e.staff_message + e.message) or "上限" in e.staff_message for e in snap.errors
    )
    writes = len(harness.transport.writes())
    harness.clock.advance(30)
    svc.step()
    assert len(harness.transport.writes()) == writes  # nothing sent while paused
    harness.emulator.control.set_config(daily_quota=3000)
    harness.emulator.control.clear_quota()
    harness.clock.advance(wait)
    harness.run(svc)
    assert_exactly_once(harness, svc, days)


def test_429_honours_retry_time(harness: Harness) -> None:
    svc = harness.service(sleep=time.sleep)  # the short retries really wait what freee names
    link(svc)
    days = make_days(1, START)
    accept(harness, svc, days)
    harness.emulator.control.set_config(rate_per_second=3)
    harness.run(svc)
    harness.emulator.control.set_config(rate_per_second=None)
    assert 429 in harness.transport.statuses  # the limit was hit, and waited out
    assert_exactly_once(harness, svc, days)


def test_freee_down_waits_on_next_attempt_not_a_loop(harness: Harness) -> None:
    harness.freee_overrides["lookup_delay"] = 0.0  # show the backoff itself
    svc = harness.service()
    link(svc)
    days = make_days(1, START)
    accept(harness, svc, days)
    harness.emulator.control.add_fault("http_503", method="POST", path="/api/1/deals")
    requests_before = len(harness.transport.requests)
    waits = []
    for _ in range(6):
        waits.append(svc.step())
        harness.clock.advance(waits[-1])
    # a handful of requests per step (short bounded retries), growing waits between steps
    posts = [r for r in harness.transport.requests[requests_before:] if r[0] == "POST"]
    assert len(posts) <= 6 * 3  # at most a short burst per step: no tight loop
    assert waits[-1] > waits[0] > 0
    snap = svc.snapshot()
    assert snap.queue.waiting > 0 and snap.errors
    harness.emulator.control.clear_faults()
    harness.clock.advance(3600)
    harness.run(svc)
    assert_exactly_once(harness, svc, days)


CHILD = Path(__file__).with_name("sync_worker_child.py")


def test_sigkill_between_sending_and_recording(harness: Harness) -> None:
    """A worker process is killed right after freee answered a POST and before the outbox
    recorded it; the next worker finds the row in ``sending``, looks it up, and does not
    post it again."""
    svc = harness.service()
    link(svc)
    days = make_days(2, START)
    svc.close()
    harness.services.clear()
    path = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    proc = subprocess.run(
        [sys.executable, str(CHILD), harness.emulator.base_url, str(harness.state_dir), "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    deals_before = harness.deals()
    assert len(deals_before) == 3
    again = harness.service()
    for day in days:
        harness.source.add(REGISTER.register_id, day)
    assert len(again.outbox.postings_in_state(PostingState.SENDING)) == 1
    accept(harness, again, days)  # the daemon reports its days again after a restart
    harness.run(again)
    assert_exactly_once(harness, again, days)
    found = [
        a
        for d in days
        for a in again.day_detail(REGISTER.register_id, d.business_date).attempts
        if a.outcome.value == "found"
    ]
    assert len(found) == 1


def test_company_masters_resolved_by_name(harness: Harness) -> None:
    svc = harness.service()
    link(svc)
    days = make_days(1, START)
    accept(harness, svc, days)
    harness.run(svc)
    company = harness.emulator.control.company(MAIN_COMPANY)
    names = set(company.get("items") or {})
    assert "【POS Regi】現金" in names


def test_move_to_sending_is_committed_before_the_request(harness: Harness) -> None:
    """Seen from another connection (another process) while each POST is in flight, the
    posting is already ``sending`` on disk, with one more attempt counted."""
    svc = harness.service()
    link(svc)
    days = make_days(1, START)
    accept(harness, svc, days)
    seen: list[tuple[str, int]] = []

    def inspect(request: httpx.Request) -> None:
        if request.method == "POST" and request.url.path == "/api/1/deals":
            ref = json.loads(request.content)["ref_number"]
            with sqlite3.connect(harness.state_dir / "outbox.sqlite") as conn:
                row = conn.execute(
                    "SELECT state, attempts FROM postings WHERE ref_number=?", (ref,)
                ).fetchone()
            seen.append(row)

    harness.transport.pre_hooks.append(inspect)
    harness.run(svc)
    assert seen and all(state == "sending" and attempts >= 1 for state, attempts in seen)


def test_timeout_while_freee_still_works_on_the_request(
    harness: Harness, freee_response_audit: Any
) -> None:
    """freee is slow; the gateway's read timeout fires while freee still works on the POST.
    The look-up waits ``lookup_delay`` (real time here) so it sees the outcome, whichever
    it is: stored (found) or abandoned (not found, sent again) — once either way."""
    harness.freee_overrides.update(read_timeout=0.4, lookup_delay=1.5)
    svc = harness.service(clock=utcnow, sleep=time.sleep)
    link(svc)
    days = make_days(1, START)
    accept(harness, svc, days)
    harness.emulator.control.add_fault(
        "latency", method="POST", path="/api/1/deals", skip=1, times=1, ms=900
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        wait = svc.step()
        if svc.snapshot().queue.waiting == 0:
            break
        time.sleep(min(max(wait, 0.01), 0.2))
    assert_exactly_once(harness, svc, days)
    outcomes = Counter(
        a.outcome.value for a in svc.day_detail(REGISTER.register_id, START).attempts
    )
    assert outcomes["ambiguous"] == 1 and outcomes["found"] + outcomes["not_found"] == 1
    # an abandoned request may be logged by the emulator as its own error
    # (ClientDisconnect); nothing else may be wrong with its answers
    problems = freee_response_audit.new_problems()
    assert all("ClientDisconnect" in p for p in problems), problems
