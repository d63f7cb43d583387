"""The look-up after a send without answer: scheduled from the moment of the failure, and
never early enough to miss a request freee commits late (issue 11, section 0).

- the emulator's ``commit_late`` / ``drop_commit_late`` faults and its request log;
- deterministic tests on a fake clock: time spent earlier in the step shortens neither the
  look-up delay, nor a rate-limit pause, nor a held day's recheck; a date's listing read
  before a look-up's time does not answer that look-up;
- loopback trials on the real clock against a freee that commits N seconds after the client
  gave up, N just inside and just outside ``lookup_delay``: no ref_number is ever posted twice,
  and the look-up comes no sooner than ``lookup_delay`` after the failure (from the emulator's
  request log).
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sync_fixtures import REGISTER, FakeClock, Harness, link, make_days

from gatewayd.protocol.records import BusinessDay
from gatewayd.sync.delivery import Deliverer, StepCache
from gatewayd.sync.freee_settings import FreeeSettings
from gatewayd.sync.outbox import (
    LOOKUP_CONFIRM,
    LOOKUP_FIRST,
    LOOKUP_NONE,
    Gate,
    PostingState,
)
from gatewayd.sync.plan import PostingKind
from gatewayd.sync.service import SyncService
from gatewayd.sync.tokens import LinkState, TokenManager, TokenRecord, utcnow

if TYPE_CHECKING:
    from freee_emulator_fixtures import Freee

pytest_plugins = ["sync_fixtures", "freee_emulator_fixtures"]

START = date(2025, 3, 1)
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- the emulator's faults ------------------------------------------------------------------


def test_commit_late_holds_until_the_client_gives_up_then_stores(freee: Freee) -> None:
    freee.control.add_fault("commit_late", method="POST", path="/api/1/deals", times=1, ms=400)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        freee.http.post("/api/1/deals", json=freee.sale(), timeout=0.3)
    assert time.monotonic() - started >= 0.3  # held: no answer before the read timeout
    time.sleep(0.2)
    assert freee.control.deals() == []  # not yet: 0.4 s after the client gave up
    wait_for(lambda: len(freee.control.deals()) == 1)
    (entry,) = [e for e in freee.control.request_log() if e["path"] == "/api/1/deals"]
    assert entry["outcome"] == "committed_late" and entry["status"] == 201
    assert entry["gave_up_at"] > entry["at"]  # held until the client gave up
    assert entry["done_at"] - entry["gave_up_at"] >= 0.4
    assert freee.control.count("POST /api/1/deals") == 1
    assert freee.control.faults() == []


def test_drop_commit_late_drops_at_once_then_stores(freee: Freee) -> None:
    freee.control.add_fault(
        "drop_commit_late", method="POST", path="/api/1/deals", times=1, ms=300
    )
    started = time.monotonic()
    with pytest.raises(DROPPED):
        freee.http.post("/api/1/deals", json=freee.sale(), timeout=5)
    assert time.monotonic() - started < 0.3
    assert freee.control.deals() == []
    wait_for(lambda: len(freee.control.deals()) == 1)
    (entry,) = [e for e in freee.control.request_log() if e["path"] == "/api/1/deals"]
    assert entry["outcome"] == "committed_late"
    assert entry["done_at"] - entry["gave_up_at"] >= 0.3
    assert entry["ref_number"] == freee.sale()["ref_number"]


def test_request_log_has_times_and_is_cleared_with_the_counts(freee: Freee) -> None:
    assert freee.post_deal(freee.sale()).status_code == 201
    freee.http.get("/api/1/deals", params={"company_id": freee.company_id})
    log = freee.control.request_log()
    assert [(e["method"], e["outcome"]) for e in log][-2:] == [("POST", "201"), ("GET", "200")]
    assert log[-2]["at"] <= log[-2]["done_at"] <= log[-1]["at"]
    assert "company_id=" in log[-1]["query"]
    assert freee.control.request_log(since=log[-1]["id"]) == []
    freee.control.clear_request_counts()
    assert freee.control.request_log() == []


# -- deterministic: a fake clock that moves with every request ------------------------------


class SlowFreee(httpx.BaseTransport):
    """Every API request costs ``per_request`` seconds of the fake clock; records when each
    request went out and when each one failed (no answer), in fake time."""

    def __init__(self, inner: httpx.BaseTransport, harness: Harness, per_request: float) -> None:
        self.inner = inner
        self.clock = harness.clock
        self.per_request = per_request
        self.sent: list[tuple[str, str, Any]] = []
        self.failed: list[tuple[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if not path.startswith("/api/1/"):
            return self.inner.handle_request(request)
        self.sent.append((request.method, path, self.clock.now))
        self.clock.advance(self.per_request)
        try:
            return self.inner.handle_request(request)
        except httpx.TransportError:
            self.failed.append((path, self.clock.now))
            raise

    def close(self) -> None:
        self.inner.close()


def accept(harness: Harness, svc: SyncService, days: list[BusinessDay]) -> None:
    for day in days:
        harness.source.add(REGISTER.register_id, day)
        svc.day_accepted(REGISTER, day)


def run_like_the_daemon(harness: Harness, svc: SyncService, *, tick: float = 1.0) -> None:
    """Step, then wait what the step asks but at most ``tick`` (the daemon wakes at least
    every few seconds, and whenever a day comes in), until nothing waits."""
    for _ in range(1000):
        wait = svc.step()
        if svc.snapshot().queue.waiting == 0:
            return
        harness.clock.advance(min(max(wait, 0.001), tick))
    raise AssertionError("the sync did not settle")


def test_lookup_waits_lookup_delay_from_the_failure_not_from_the_step(harness: Harness) -> None:
    """Each request costs 2 s and the third POST of the step gets no answer (stored by
    freee): its look-up comes ``lookup_delay`` after the failure, not after the start of the
    step, and the posting is not sent again."""
    harness.freee_overrides.update(lookup_delay=20.0)
    slow = SlowFreee(harness.transport.inner, harness, per_request=2.0)
    harness.transport.inner = slow
    svc = harness.service()
    link(svc)
    days = make_days(2, START)
    accept(harness, svc, days[:1])
    run_like_the_daemon(harness, svc)  # masters read, 品目 made: the next step only posts
    accept(harness, svc, days[1:])
    harness.emulator.control.add_fault(
        "drop_after", method="POST", path="/api/1/deals", skip=2, times=1
    )
    step_start = harness.clock.now
    svc.step()
    ((_path, failed_at),) = slow.failed
    assert (failed_at - step_start).total_seconds() >= 6  # three requests of 2 s each
    (row,) = [r for r in svc.outbox.postings_in_state(PostingState.SENDING) if r.lookup]
    assert row.next_attempt_at is not None
    assert (row.next_attempt_at - failed_at).total_seconds() >= 20
    run_like_the_daemon(harness, svc)
    lookups = [at for m, p, at in slow.sent if m == "GET" and p == "/api/1/deals"]
    assert lookups, "no look-up"
    assert (lookups[0] - failed_at).total_seconds() >= 20
    refs = Counter(d["ref_number"] for d in harness.deals())
    assert refs[row.ref_number] == 1 and all(n == 1 for n in refs.values())
    posts = [r for r in harness.emulator.control.request_log() if r["method"] == "POST"]
    assert Counter(r["ref_number"] for r in posts)[row.ref_number] == 1  # never sent again


class RateLimitedFreee(SlowFreee):
    """As ``SlowFreee``; the ``nth`` POST of a deal is answered 429 with a long Retry-After
    (nothing stored), as freee does when the app is over its limit."""

    def __init__(self, inner: httpx.BaseTransport, harness: Harness, nth: int) -> None:
        super().__init__(inner, harness, per_request=2.0)
        self.posts_left = nth

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/api/1/deals":
            self.posts_left -= 1
            if self.posts_left == 0:
                self.clock.advance(self.per_request)
                self.failed.append((request.url.path, self.clock.now))
                body = {"status_code": 429, "errors": [{"type": "status", "messages": ["x"]}]}
                return httpx.Response(429, headers={"Retry-After": "100"}, json=body)
        return super().handle_request(request)


def test_rate_limit_pause_counts_from_the_refusal(harness: Harness) -> None:
    """freee says wait 100 s, 6 s into the step: the company waits 100 s from then."""
    svc = harness.service()
    link(svc)
    days = make_days(2, START)
    accept(harness, svc, days[:1])
    run_like_the_daemon(harness, svc)
    limited = RateLimitedFreee(harness.transport.inner, harness, nth=3)
    harness.transport.inner = limited
    accept(harness, svc, days[1:])
    step_start = harness.clock.now
    wait = svc.step()
    ((_path, refused_at),) = limited.failed
    assert (refused_at - step_start).total_seconds() >= 6
    pause = svc.snapshot().queue.paused_until
    assert pause is not None and (pause - refused_at).total_seconds() >= 100
    assert wait >= 100 - 1e-6
    (refused,) = [r for r in svc.outbox.postings_in_state(PostingState.PENDING) if r.attempts]
    assert refused.next_attempt_at is not None
    assert (refused.next_attempt_at - refused_at).total_seconds() >= 100
    writes = len(harness.transport.writes())
    harness.clock.advance(99)
    svc.step()
    assert len(harness.transport.writes()) == writes  # still paused 99 s after the refusal


def test_held_day_recheck_counts_from_the_decision(harness: Harness) -> None:
    """A day outside every fiscal year is held after the masters were read (2 s a request):
    it is checked again ``recheck_interval`` after that decision, not after the step began."""
    slow = SlowFreee(harness.transport.inner, harness, per_request=2.0)
    harness.transport.inner = slow
    svc = harness.service()
    link(svc)
    svc.master_cache.forget()  # the link read them; this step must read them again
    day = make_days(1, date(2027, 1, 4))[0]  # the seed company has 2025 and 2026 only
    accept(harness, svc, [day])
    step_start = harness.clock.now
    svc.step()
    decided_at = harness.clock.now  # nothing is requested after the decision
    assert (decided_at - step_start).total_seconds() >= 4  # company and taxes read
    held = svc.outbox.day(REGISTER.register_id, day.business_date)
    assert held is not None and held.gate is Gate.HELD and held.recheck_at is not None
    assert (held.recheck_at - decided_at).total_seconds() >= svc.freee.recheck_interval


def test_a_listing_read_before_a_lookups_time_is_not_trusted_for_it() -> None:
    """One listing of a date serves the look-ups of a step, but only those whose time came
    before it was read: a look-up due later reads freee again."""
    clock = FakeClock(datetime(2026, 1, 5, 3, 0, tzinfo=UTC))
    reads: list[datetime] = []

    class Client:
        def list_deals(self, company: int, day: date, deal_type: str | None) -> list[Any]:
            reads.append(clock.now)
            return []

    class Masters:
        def company_id(self) -> int:
            return 1

    deliverer = Deliverer(
        None,  # type: ignore[arg-type]  # the look-up writes nothing
        Client(),  # type: ignore[arg-type]
        Masters(),  # type: ignore[arg-type]
        FreeeSettings(),
        item_prefix=lambda: "",
        clock=clock,
    )
    posting = SimpleNamespace(
        issue_date=START, kind=PostingKind.DEAL, type=SimpleNamespace(value="income"),
        ref_number="POS-0001-01-20250301-S-CASH", amount=1000,
    )
    cache = StepCache()
    t0 = clock.now

    def look(lookup: int, due: datetime) -> None:
        row = SimpleNamespace(lookup=lookup, next_attempt_at=due)
        assert deliverer.lookup(row, posting, {}, cache).found is None  # type: ignore[arg-type]

    look(LOOKUP_FIRST, t0)
    assert reads == [t0]
    clock.advance(5)
    look(LOOKUP_CONFIRM, t0 - timedelta(seconds=1))  # due before the listing: it serves
    look(LOOKUP_NONE, t0 + timedelta(seconds=3))  # found ``sending`` (a crash): any listing
    assert reads == [t0]
    look(LOOKUP_CONFIRM, t0 + timedelta(seconds=3))  # due after the listing: read again
    assert reads == [t0, t0 + timedelta(seconds=5)]


def test_token_lifetimes_count_from_the_refresh_request(tmp_path: Path) -> None:
    """A refresh asked for with a ``now`` from earlier (a step's start) still dates the new
    pair from the moment its request went out: not earlier (the ``now`` given), not later
    (the answer, 3 s after: freee issued it before that)."""
    clock = FakeClock(datetime(2026, 1, 5, 3, 0, tzinfo=UTC))
    sent: list[datetime] = []

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now)
        clock.advance(3)
        return httpx.Response(
            200,
            json={"access_token": "a1", "refresh_token": "r1", "token_type": "bearer",
                  "expires_in": 21600, "scope": "read write", "company_id": "7"},
        )

    settings = FreeeSettings(
        auth_base_url="https://auth.test", client_id="cid", client_secret="secret"
    )
    http = httpx.Client(transport=httpx.MockTransport(token_endpoint))
    tokens = TokenManager(settings, tmp_path, http, clock=clock)
    tokens.store_link(
        TokenRecord(
            state=LinkState.LINKED, company_id=7, company_name=None, access_token="a0",
            refresh_token="r0", expires_at=clock.now + timedelta(hours=1),
            refreshed_at=clock.now - timedelta(days=2), linked_at=clock.now - timedelta(days=9),
        )
    )
    step_start = clock.now
    clock.advance(20)
    record = tokens.refresh(step_start, min_age=0)
    assert sent == [step_start + timedelta(seconds=20)]
    assert record.refreshed_at == sent[0]
    assert record.expires_at == sent[0] + timedelta(seconds=21600)
    http.close()


# -- loopback, real clock: a freee that commits N seconds after the client gave up ----------

LOOKUP_DELAY = 1.5
READ_TIMEOUT = 0.5
SLOW_FIRST = 300  # ms: the step's first POST is slow, so the failure comes well into the step
TOLERANCE = 0.2  # s: the emulator sees the client give up a moment after it did
TRIALS = 2

LATE = [
    pytest.param("commit_late", 1.1, id="held-commits-just-inside-lookup_delay"),
    pytest.param("commit_late", 1.8, id="held-commits-just-past-lookup_delay"),
    pytest.param("drop_commit_late", 1.1, id="dropped-commits-just-inside-lookup_delay"),
]


@pytest.mark.parametrize(("kind", "late"), LATE)
def test_a_late_commit_is_found_never_posted_twice(
    harness: Harness, kind: str, late: float
) -> None:
    """Per trial, a new day: its first POST is slow, its second gets no answer and freee
    stores it ``late`` seconds after the client gave up. The look-up comes no sooner than
    ``lookup_delay`` after that, and the posting is never sent again (a commit later than
    the first look-up is caught by the second, ``lookup_delay`` later)."""
    harness.freee_overrides.update(read_timeout=READ_TIMEOUT, lookup_delay=LOOKUP_DELAY)
    svc = harness.service(clock=utcnow, sleep=time.sleep)
    link(svc)
    control = harness.emulator.control
    days = make_days(TRIALS + 1, START, receipts=4)
    accept(harness, svc, days[:1])
    run_on_the_real_clock(svc, lambda: True)  # masters, 品目: later steps only post
    for day in days[1:]:
        since = control.request_log()[-1]["id"]
        control.add_fault("latency", method="POST", path="/api/1/deals", times=1, ms=SLOW_FIRST)
        control.add_fault(
            kind, method="POST", path="/api/1/deals", skip=1, times=1, ms=int(late * 1000)
        )
        accept(harness, svc, [day])

        def landed(since: int = since) -> bool:
            return any(
                e["outcome"] == "committed_late" and e["done_at"] is not None
                for e in harness.emulator.emulator.request_log(since)
            )

        run_on_the_real_clock(svc, landed)
        log = control.request_log(since)
        (late_post,) = [e for e in log if e["outcome"] == "committed_late"]
        assert late_post["status"] == 201
        posts = Counter(e["ref_number"] for e in log if e["method"] == "POST")
        assert posts[late_post["ref_number"]] == 1, f"sent again: {late_post['ref_number']}"
        assert all(n == 1 for n in posts.values()), posts
        lookups = [
            e
            for e in log
            if e["method"] == "GET" and e["path"] == "/api/1/deals" and e["at"] > late_post["at"]
        ]
        assert lookups, "never looked up"
        waited = lookups[0]["at"] - late_post["gave_up_at"]
        assert waited >= LOOKUP_DELAY - TOLERANCE, f"looked up {waited:.2f} s after the failure"
    refs = Counter(d["ref_number"] for d in harness.deals())
    planned = [p.ref_number for d in days for p in svc.plan_for(REGISTER, d).postings]
    assert sorted(refs) == sorted(planned)
    assert all(n == 1 for n in refs.values()), [r for r, n in refs.items() if n != 1]
    assert control.faults() == []


def run_on_the_real_clock(svc: SyncService, done: Any, budget: float = 20.0) -> None:
    """Step like the daemon (it wakes often: new days, its 5 s cap) until nothing waits and
    ``done()``; bounded."""
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        wait = svc.step()
        if svc.snapshot().queue.waiting == 0 and done():
            return
        time.sleep(min(max(wait, 0.01), 0.05))
    raise AssertionError("the sync did not settle in time")
