"""``SyncService``: the one object the daemon, the status page and the CLI use for freee.

The daemon calls ``day_accepted`` / ``day_held`` / ``reclose`` from its register loop (fast:
outbox writes only) and runs ``step(now)`` in its sync thread: ``step`` does the work that is
due — gate checks, look-ups, sends, re-syncs — and returns the seconds until more is due, so
long outages wait on the outbox's next-attempt times, not in a sleeping retry loop.

``now`` (the step's start) only says what is due. Every deadline the step writes — a next
attempt, a look-up time, a pause, a recheck, a link-problem recheck — and the wait it returns
are computed from the clock read at the moment they are about (the failure, the end of the
step): time spent earlier in the step never shortens a wait (docs/freee-sync.md).

One delivery worker at a time across processes (``flock`` on ``sync-worker.lock``): a
``gatewayd resend`` beside the running daemon queues its request in the outbox and the daemon
carries it out; without a daemon the command does the work itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx

from gatewayd.config import RegisterSettings, Settings
from gatewayd.errors import (
    ConfigError,
    FreeeFixSetting,
    FreeePermission,
    FreeeRateLimited,
    FreeeRelink,
    FreeeRetryLater,
    GatewayError,
)
from gatewayd.protocol.records import BusinessDay
from gatewayd.store.db import make_private_dir
from gatewayd.sync.delivery import CompanyPause, Deliverer, MasterService, StepCache, backoff
from gatewayd.sync.freee_client import ApiCounters, FreeeClient, make_http
from gatewayd.sync.freee_settings import FreeeSettings, freee_from_settings
from gatewayd.sync.freee_views import named_view
from gatewayd.sync.link import LinkFlow, LinkStart, UnlinkResult
from gatewayd.sync.mapping import plan_day
from gatewayd.sync.mapping_settings import MappingSettings, mapping_from_settings
from gatewayd.sync.masters import MasterCache
from gatewayd.sync.outbox import DayRow, Gate, HoldKind, Outbox, PostingRow, PostingState
from gatewayd.sync.plan import DayPlan, folded_amount
from gatewayd.sync.resync import DayReport, Resyncer
from gatewayd.sync.spread import send_delay
from gatewayd.sync.status import SyncSnapshot, TokenTimes
from gatewayd.sync.tokens import Clock, LinkState, LinkStatus, TokenManager, utcnow
from gatewayd.web.model import (
    Attempt,
    AttemptOutcome,
    DayDetail,
    DayStatus,
    DaySummary,
    EditedPosting,
    ErrorEntry,
    ErrorSource,
    FreeeLink,
    HeldCause,
    HeldReason,
    PostingRecord,
    QueueStatus,
    ResolveChoice,
)
from gatewayd.web.model import LinkState as PageLinkState
from gatewayd.web.model import PostingState as PagePostingState

log = logging.getLogger(__name__)

WORKER_LOCK = "sync-worker.lock"
STEP_BUDGET = 20.0  # seconds of work per step before returning to the daemon
IDLE_WAIT = 300.0  # longest sleep when nothing is due
STANDBY_WAIT = 5.0  # another process holds the worker lock: look again soon

_CAUSE_OF_HOLD = {
    HoldKind.DAY_CHECK: HeldCause.DAY_CHECK,
    HoldKind.NO_RECORDS: HeldCause.DAY_CHECK,
    HoldKind.FISCAL_YEAR: HeldCause.FISCAL_YEAR,
    HoldKind.MISSING_MASTER: HeldCause.MISSING_MASTER,
    HoldKind.EDITED: HeldCause.EDITED_IN_FREEE,
    HoldKind.CONFLICT: HeldCause.NEEDS_REVIEW,
    HoldKind.REFUSED: HeldCause.REFUSED,
}


class DaySource(Protocol):
    """What the journal store offers the sync side."""

    def get_day(self, register_id: str, business_date: date) -> BusinessDay | None: ...


@dataclass
class ResendReport:
    """The outcome of a resend: one report per day of the range."""

    register_id: str
    start: date
    end: date
    days: list[DayReport] = field(default_factory=list)
    request_id: int | None = None  # set when queued for the running daemon

    @property
    def days_queued(self) -> int:
        return sum(1 for d in self.days if d.status == "queued")

    @property
    def writes(self) -> int:
        return sum(d.writes for d in self.days)

    def to_json(self) -> dict[str, Any]:
        return {
            "register_id": self.register_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": [d.to_json() for d in self.days],
        }


def _day_range(start: date, end: date) -> list[date]:
    if end < start:
        start, end = end, start
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


class SyncService:
    """The freee side of the gateway (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        state_dir: Path,
        day_source: DaySource,
        *,
        clock: Clock = utcnow,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        freee: FreeeSettings | None = None,
        mapping: MappingSettings | None = None,
        after_request: Callable[[str, PostingRow], None] | None = None,
    ) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.day_source = day_source
        self.clock = clock
        self.freee = freee if freee is not None else freee_from_settings(settings)
        self.mapping = mapping if mapping is not None else mapping_from_settings(settings)
        make_private_dir(state_dir)  # 0700, as the stores make it
        self.counters = ApiCounters()
        self.http = make_http(self.freee, transport)
        self.tokens = TokenManager(
            self.freee, state_dir, self.http, clock=clock, on_token_call=self.counters.count_token
        )
        self.client = FreeeClient(
            self.freee, self.tokens, self.http, counters=self.counters, sleep=sleep
        )
        self.master_cache = MasterCache(state_dir, ref_form=self.freee.ref_number_form)
        self.masters = MasterService(self.master_cache, self.client, self.tokens, clock=clock)
        self.outbox = Outbox.in_state_dir(state_dir)
        self.deliverer = Deliverer(
            self.outbox,
            self.client,
            self.masters,
            self.freee,
            item_prefix=lambda: self.mapping.item_prefix,
            wanted_items=self._wanted_items,
            after_request=after_request,
            clock=clock,
        )
        self.resyncer = Resyncer(self.outbox, self.client, self.masters, self.deliverer)
        self.link_flow = LinkFlow(
            self.freee,
            self.tokens,
            self.client,
            self.master_cache,
            self.http,
            clock=clock,
            prepare=self.deliverer.prepare_items,
        )
        self._work = threading.RLock()
        self._interrupt = threading.Event()  # set by interrupt(): the daemon is stopping
        self._worker_fd: int | None = None
        self._standby = False
        self._started = False
        self._requests_due_at: datetime | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._work:
            if self._worker_fd is not None:
                os.close(self._worker_fd)
                self._worker_fd = None
            self.outbox.close()
            self.http.close()

    def _now(self, now: datetime | None) -> datetime:
        return now if now is not None else self.clock()

    def _take_worker(self) -> bool:
        if self._worker_fd is not None:
            return True
        fd = os.open(self.state_dir / WORKER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            self._standby = True
            return False
        self._worker_fd = fd
        self._standby = False
        return True

    def is_worker(self) -> bool:
        """Take the delivery role if free; False while another process holds it."""
        with self._work:
            return self._take_worker()

    # -- plans --------------------------------------------------------------------------------

    def _register(self, register_id: str) -> RegisterSettings:
        return self.settings.register(register_id)

    def settings_hash(self, reg: RegisterSettings) -> str:
        text = repr(self.mapping.for_register(reg))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _wanted_items(self) -> set[str]:
        names: set[str] = set()
        for reg in self.settings.registers:
            names |= self.mapping.for_register(reg).names_used()["items"]
        return names

    def plan_for(self, reg: RegisterSettings, day: BusinessDay) -> DayPlan:
        return plan_day(day, reg.store_code, reg.terminal_no, self.mapping.for_register(reg))

    # -- what the daemon reports --------------------------------------------------------------

    def day_accepted(self, register: RegisterSettings, day: BusinessDay) -> None:
        """A closed day passed the checks: queue its postings (or re-sync it if sent)."""
        now = self.clock()
        plan = self.plan_for(register, day)
        rid = register.register_id
        existing = self.outbox.day(rid, plan.business_date)
        rows = self.outbox.postings_of(rid, plan.business_date)
        sent = [r for r in rows if r.freee_id is not None or r.state is PostingState.SENDING]
        if existing is not None and sent:
            if existing.plan == plan.to_json() and existing.gate is not Gate.HELD:
                return  # the same day again (daemon restart): nothing new
            self.outbox.add_request("resync", rid, plan.business_date, plan.business_date, now)
            log.info("day %s %s accepted again with changes: re-sync queued", rid, day)
            return
        if (
            existing is not None
            and existing.plan == plan.to_json()
            and existing.gate
            in (
                Gate.OPEN,
                Gate.CHECK,
            )
        ):
            return
        # boxes of one company do not all send in the same second after their closes
        delay = send_delay(rid, self.freee.send_spread)
        self.resyncer.replace_unsent(
            rid, plan, self.settings_hash(register), now, not_before=now + timedelta(seconds=delay)
        )
        log.info(
            "day %s %s queued: %d postings, sent in %.0f s",
            rid,
            plan.business_date,
            len(plan.postings),
            delay,
        )

    def day_held(self, register: RegisterSettings, business_date: date, reason: str) -> None:
        """A day failed the register checks: show it held; nothing of it is sent."""
        now = self.clock()
        with self.outbox.tx() as conn:
            self.outbox.upsert_day(
                conn,
                register_id=register.register_id,
                business_date=business_date,
                store_code=register.store_code,
                terminal_no=register.terminal_no,
                close_no=1,
                gate=Gate.HELD,
                plan=None,
                settings_hash=None,
                now=now,
                hold_kind=HoldKind.DAY_CHECK,
                hold_reason=reason,
            )

    def reclose(self, register: RegisterSettings, business_date: date, close_no: int) -> None:
        """The register closed the day again: make freee agree with it (section 7)."""
        now = self.clock()
        self.outbox.add_request("resync", register.register_id, business_date, business_date, now)
        log.info(
            "re-close %d of %s %s: re-sync queued", close_no, register.register_id, business_date
        )

    # -- resend -------------------------------------------------------------------------------

    def request_resend(self, register_id: str, start: date, end: date) -> int:
        """Queue a resend for whichever process delivers (returns the request id)."""
        self._register(register_id)
        return self.outbox.add_request("resync", register_id, start, end, self.clock())

    def resend(
        self,
        register_id: str,
        start: date,
        end: date,
        *,
        progress: Callable[[int, int, DayReport], None] | None = None,
    ) -> ResendReport:
        """Re-sync the days start..end now (reads freee, queues what must change).

        When another process is the delivery worker, the request is queued for it instead
        (``request_id`` set, ``days`` empty).
        """
        reg = self._register(register_id)
        report = ResendReport(register_id, min(start, end), max(start, end))
        with self._work:
            if not self._take_worker():
                report.request_id = self.request_resend(register_id, start, end)
                return report
            dates = _day_range(start, end)
            cache = StepCache()
            for i, day in enumerate(dates):
                try:
                    day_report = self._resync_one(reg, day, self.clock(), cache)
                except CompanyPause as pause:
                    self._pause(self.clock(), pause)
                    raise pause.cause from None
                report.days.append(day_report)
                if progress is not None:
                    progress(i + 1, len(dates), day_report)
        return report

    def _resync_one(
        self, reg: RegisterSettings, day: date, now: datetime, cache: StepCache
    ) -> DayReport:
        bday = self.day_source.get_day(reg.register_id, day)
        if bday is None:
            return DayReport(reg.register_id, day, "no_day", reason="no closed day in the journal")
        plan = self.plan_for(reg, bday)
        return self.resyncer.resync_day(reg.register_id, plan, self.settings_hash(reg), now, cache)

    # -- resolving a day edited in freee ------------------------------------------------------

    def resolve_edited(self, register_id: str, business_date: date, choice: ResolveChoice) -> None:
        if choice == "keep_freee":
            self.keep_freee(register_id, business_date)
        else:
            self.post_ours(register_id, business_date)

    def _edited_detail(self, register_id: str, business_date: date) -> list[dict[str, Any]]:
        day = self.outbox.day(register_id, business_date)
        if day is None or day.hold_kind not in (HoldKind.EDITED, HoldKind.CONFLICT):
            raise FreeeFixSetting(
                f"day {register_id} {business_date} is not held for an edit in freee",
                staff_message="この日は freee会計での編集による保留ではありません。",
            )
        detail = day.hold_detail
        return list(detail) if isinstance(detail, list) else []

    def keep_freee(self, register_id: str, business_date: date) -> None:
        """Keep freee's version of each edited posting: the gateway stops managing its
        content (it is never changed again by a re-sync); the rest of the day is synced."""
        with self._work:
            now = self.clock()  # after waiting for a running step, not before
            detail = self._edited_detail(register_id, business_date)
            with self.outbox.tx() as conn:
                for entry in detail:
                    row = self.outbox.posting_by_ref(entry["ref_number"])
                    if row is None or row.freee_id is None:
                        continue
                    views = entry.get("theirs_views") or []
                    if views:
                        self.outbox.update_posting(
                            conn, row.id, freee_view=views[0], freee_owned=True, updated_at=now
                        )
                    else:
                        self.outbox.update_posting(
                            conn, row.id, state=PostingState.REMOVED, updated_at=now
                        )
                    self.outbox.add_attempt(
                        conn, row.id, now, "resolve", "unchanged", None, "kept freee's version"
                    )
                self.outbox.set_gate(conn, register_id, business_date, Gate.OPEN, now)
            self.outbox.add_request("resync", register_id, business_date, business_date, now)

    def post_ours(self, register_id: str, business_date: date) -> None:
        """Overwrite freee's edits with the gateway's plan (PUT, or delete and post)."""
        with self._work:
            now = self.clock()  # after waiting for a running step, not before
            detail = self._edited_detail(register_id, business_date)
            with self.outbox.tx() as conn:
                for entry in detail:
                    row = self.outbox.posting_by_ref(entry["ref_number"])
                    if row is None or row.freee_id is None:
                        continue
                    views = entry.get("theirs_views") or []
                    self.outbox.update_posting(
                        conn,
                        row.id,
                        freee_view=views[0] if views else None,
                        freee_owned=False,
                        sent_plan=None,
                        updated_at=now,
                    )
                    self.outbox.add_attempt(
                        conn, row.id, now, "resolve", "retry", None, "post ours over freee's edit"
                    )
                self.outbox.set_gate(conn, register_id, business_date, Gate.OPEN, now)
            self.outbox.add_request("resync", register_id, business_date, business_date, now)

    # -- link ---------------------------------------------------------------------------------

    def link_start(self, redirect_uri: str | None = None) -> LinkStart:
        return self.link_flow.start(redirect_uri)

    def link_finish(self, code: str, state: str) -> LinkStatus:
        status = self.link_flow.finish(code, state)
        self.outbox.set_kv("link_problem", None)
        return status

    def unlink(self) -> UnlinkResult:
        return self.link_flow.unlink()

    # -- the worker ---------------------------------------------------------------------------

    def step(self, now: datetime | None = None) -> float:
        """Do the work that is due; return the seconds until more is due."""
        now = self._now(now)
        with self._work:
            if not self._take_worker():
                return STANDBY_WAIT
            # each failure below: its pause counts from the moment it happened (``at``)
            try:
                return self._step(now)
            except CompanyPause as pause:
                at = self.clock()
                self._pause(at, pause)
                return max(0.0, (pause.until - at).total_seconds())
            except FreeeRateLimited as exc:
                at = self.clock()
                wait = (
                    exc.retry_after if exc.retry_after is not None else self.freee.rate_limit_pause
                )
                until = at + timedelta(seconds=max(wait, 1.0))
                self._error(at, exc)
                self.outbox.set_kv(
                    "pause", {"until": until.isoformat(), "reason": str(exc), "rate_limited": True}
                )
                return max(wait, 1.0)
            except FreeeRetryLater as exc:
                at = self.clock()
                delay = backoff(self.freee, int(self.outbox.get_kv("fail_streak") or 0) + 1)
                self.outbox.set_kv("fail_streak", int(self.outbox.get_kv("fail_streak") or 0) + 1)
                until = at + timedelta(seconds=delay)
                self._error(at, exc)
                self.outbox.set_kv(
                    "pause", {"until": until.isoformat(), "reason": str(exc), "rate_limited": False}
                )
                return delay
            except (FreeeRelink, FreeePermission, FreeeFixSetting, ConfigError) as exc:
                # ConfigError: e.g. the client secret cannot be read for a refresh
                at = self.clock()
                self._link_problem(at, exc)
                return self._until_link_recheck(at)

    def _pause(self, now: datetime, pause: CompanyPause) -> None:
        self._error(now, pause.cause)
        self.outbox.set_kv(
            "pause",
            {
                "until": pause.until.isoformat(),
                "reason": str(pause.cause),
                "rate_limited": isinstance(pause.cause, FreeeRateLimited),
            },
        )

    def _step(self, now: datetime) -> float:
        if self.tokens.usable():
            # first, whatever else waits: the 90-day refresh token must never lapse
            self.tokens.keepalive(now)
        if not self._link_ok(now):
            return self._until_link_recheck(now)
        pause = self.outbox.get_kv("pause")
        if pause is not None:
            until = datetime.fromisoformat(pause["until"])
            if until > now:
                return (until - now).total_seconds()
            self.outbox.set_kv("pause", None)
        if not self._started:
            self._started = True
            self._replan_changed_settings(now)
        deadline = time.monotonic() + STEP_BUDGET
        cache = StepCache()
        # re-syncs asked for (re-close, resend from another process, resolutions)
        self._requests_due_at = None
        for request in self.outbox.open_requests():
            try:
                reg = self._register(request.register_id)
            except GatewayError as exc:
                self.outbox.finish_request(request.id, now, [{"error": str(exc)}])
                continue
            reports = []
            busy_until: datetime | None = None
            for day in _day_range(request.start, request.end):
                day_report = self._resync_one(reg, day, now, cache)
                if day_report.status == "busy":
                    busy_until = day_report.retry_at or self.clock() + timedelta(seconds=1)
                    break
                reports.append(day_report.to_json())
            if busy_until is not None:
                # a posting of the day is in flight: this request waits for it
                wake = max(busy_until, self.clock() + timedelta(seconds=1))
                if self._requests_due_at is None or wake < self._requests_due_at:
                    self._requests_due_at = wake
                continue
            self.outbox.finish_request(request.id, self.clock(), reports)
            if self._out_of_time(deadline):
                return 0.0
        self._release_refused()
        for due_day in self.outbox.days_due(now):
            self.deliverer.gate(due_day.register_id, due_day.business_date, now)
            if self._out_of_time(deadline):
                return 0.0
        while not self._out_of_time(deadline):
            due = self.outbox.due_postings(now, limit=20)
            if not due:
                break
            for row in due:
                self.deliverer.deliver(row, cache)
                if self._out_of_time(deadline):
                    return 0.0
        self.outbox.set_kv("fail_streak", None)
        return self._next_wait(self.clock())  # from the end of the step: what is left to wait

    def interrupt(self) -> None:
        """Make a running step return after its current request (the daemon is stopping)."""
        self._interrupt.set()

    def _out_of_time(self, deadline: float) -> bool:
        return self._interrupt.is_set() or time.monotonic() > deadline

    def _next_wait(self, now: datetime) -> float:
        candidates = [now + timedelta(seconds=IDLE_WAIT)]
        for when in (
            self.outbox.next_due(),
            self.outbox.next_recheck(),
            self.tokens.next_refresh_at(),
        ):
            if when is not None:
                candidates.append(when)
        if self.outbox.open_requests():
            candidates.append(self._requests_due_at or now)
        return max(0.0, (min(candidates) - now).total_seconds())

    def _replan_changed_settings(self, now: datetime) -> None:
        """Days none of whose postings reached freee follow the current settings."""
        for day in self.outbox.days():
            if day.gate is Gate.HELD and day.hold_kind in (HoldKind.DAY_CHECK, HoldKind.EDITED):
                continue
            try:
                reg = self._register(day.register_id)
            except GatewayError:
                continue
            if day.settings_hash == self.settings_hash(reg):
                continue
            rows = self.outbox.postings_of(day.register_id, day.business_date)
            if any(r.freee_id is not None or r.state is PostingState.SENDING for r in rows):
                continue
            bday = self.day_source.get_day(day.register_id, day.business_date)
            if bday is None:
                continue
            plan = self.plan_for(reg, bday)
            self.resyncer.replace_unsent(day.register_id, plan, self.settings_hash(reg), now)
            log.info(
                "day %s %s planned again (settings changed)", day.register_id, day.business_date
            )

    def _release_refused(self) -> None:
        """A posting freee refused goes again once the masters changed (fixed in freee)."""
        now = self.clock()
        masters = self.masters.cached()
        if masters is None:
            return
        fingerprint = masters.fingerprint()
        for row in self.outbox.postings_in_state(PostingState.HELD):
            if row.hold_kind is HoldKind.REFUSED and row.masters_fp != fingerprint:
                with self.outbox.tx() as conn:
                    self.outbox.update_posting(
                        conn,
                        row.id,
                        state=PostingState.PENDING,
                        hold_kind=None,
                        hold_reason=None,
                        next_attempt_at=now,
                        updated_at=now,
                    )

    # -- link problems ------------------------------------------------------------------------

    def _token_signature(self) -> str | None:
        record = self.tokens.load()
        return None if record is None else f"{record.linked_at.isoformat()}/{record.state.value}"

    def _link_ok(self, now: datetime) -> bool:
        if not self.tokens.usable():
            return False
        problem = self.outbox.get_kv("link_problem")
        if problem is None:
            return True
        if problem.get("token") != self._token_signature():
            self.outbox.set_kv("link_problem", None)  # linked again since
            return True
        if datetime.fromisoformat(problem["until"]) <= now:
            self.outbox.set_kv("link_problem", None)  # try again
            return True
        return False

    def _until_link_recheck(self, now: datetime) -> float:
        problem = self.outbox.get_kv("link_problem")
        if problem is not None:
            until = datetime.fromisoformat(problem["until"])
            refresh = self.tokens.next_refresh_at()
            if refresh is not None:
                until = min(until, refresh)
            return max(STANDBY_WAIT, min((until - now).total_seconds(), IDLE_WAIT))
        return STANDBY_WAIT  # not linked: look for a new token file soon

    def _link_problem(self, now: datetime, exc: GatewayError) -> None:
        self._error(now, exc)
        if isinstance(exc, FreeeRelink) and self.tokens.usable():
            # freee refuses the link itself (e.g. re_authorization_required): relink
            record = self.tokens.load()
            if record is not None:
                self.tokens.store_link(
                    replace(
                        record,
                        state=LinkState.EXPIRED,
                        expired_at=now,
                        expired_reason=getattr(exc, "freee_message", None) or str(exc),
                    )
                )
        kind = (
            "permission"
            if isinstance(exc, FreeePermission)
            else "fix_setting"
            if isinstance(exc, FreeeFixSetting | ConfigError)
            else "relink"
        )
        self.outbox.set_kv(
            "link_problem",
            {
                "kind": kind,
                "message": str(exc),
                "staff": exc.staff_message,
                "freee_message": getattr(exc, "freee_message", None),
                "until": (now + timedelta(seconds=self.freee.recheck_interval)).isoformat(),
                "token": self._token_signature(),
            },
        )

    def _error(self, now: datetime, exc: GatewayError) -> None:
        log.warning("freee: %s", exc)
        self.outbox.add_error(now, type(exc).__name__, str(exc), exc.staff_message)

    # -- status -------------------------------------------------------------------------------

    def link_view(self) -> FreeeLink:
        status = self.tokens.status()
        problem = self.outbox.get_kv("link_problem")
        if status.state is LinkState.MISSING:
            state = PageLinkState.MISSING
        elif status.state is LinkState.EXPIRED:
            state = PageLinkState.EXPIRED
        elif problem is not None and problem.get("kind") == "permission":
            state = PageLinkState.NO_PERMISSION
        elif problem is not None:
            state = PageLinkState.FAILING
        else:
            state = PageLinkState.LINKED
        last_error = None
        if problem is not None:
            last_error = problem.get("message")
        elif status.expired_reason:
            last_error = status.expired_reason
        return FreeeLink(
            state=state,
            company_name=status.company_name,
            company_id=self.tokens.company_id(),
            refreshed_at=status.refreshed_at,
            expires_at=status.refresh_expires_at,
            last_error=last_error,
        )

    def _day_summary(self, day: DayRow, rows: list[PostingRow], link: FreeeLink) -> DaySummary:
        live = [r for r in rows if r.state is not PostingState.REMOVED and r.plan is not None]
        done = [r for r in live if r.state is PostingState.DONE]
        held_rows = [r for r in rows if r.state is PostingState.HELD]
        waiting = [r for r in rows if r.state in (PostingState.PENDING, PostingState.SENDING)]
        plan = day.plan or {}
        totals = plan.get("totals") or {}
        held: HeldReason | None = None
        if day.gate is Gate.HELD and day.hold_kind is not None:
            held = HeldReason(_CAUSE_OF_HOLD[day.hold_kind], day.hold_reason or "")
        elif held_rows:
            r = held_rows[0]
            cause = _CAUSE_OF_HOLD.get(r.hold_kind or HoldKind.REFUSED, HeldCause.REFUSED)
            held = HeldReason(cause, f"{r.ref_number}: {r.hold_reason}", r.freee_message)
        elif waiting and link.state is not PageLinkState.LINKED:
            held = HeldReason(HeldCause.LINK, link.last_error or f"freee link {link.state.value}")
        if held is not None:
            status = DayStatus.HELD
        elif waiting or day.gate is Gate.CHECK:
            status = DayStatus.SENDING
        else:
            status = DayStatus.SYNCED
        sales = [r for r in done if _is_sales(r.ref_number) and r.freee_view is not None]
        freee_total = (
            sum(
                int((r.freee_view or {}).get("amount") or 0) - folded_amount(r.sent_plan or r.plan)
                for r in sales
            )
            if sales
            else None
        )  # a `day` deal's cash lines are not sales
        attempts_at = [r.updated_at for r in rows if r.attempts]
        next_at = [r.next_attempt_at for r in waiting if r.next_attempt_at is not None]
        return DaySummary(
            register_id=day.register_id,
            business_date=day.business_date,
            status=status,
            register_total=totals.get("gross"),
            freee_total=freee_total,
            postings=len(live),
            postings_done=len(done),
            close_no=day.close_no,
            closed_at=day.accepted_at,
            held=held,
            last_attempt_at=max(attempts_at) if attempts_at else None,
            next_attempt_at=min(next_at) if next_at else None,
        )

    def snapshot(self, *, days: int = 62) -> SyncSnapshot:
        """The sync side's status (no call to freee)."""
        now = self.clock()
        link = self.link_view()
        status = self.tokens.status()
        summaries = []
        for day in self.outbox.days(limit=days, newest_first=True):
            rows = self.outbox.postings_of(
                day.register_id, day.business_date, include_removed=False
            )
            summaries.append(self._day_summary(day, rows, link))
        waiting_rows = self.outbox.postings_in_state(PostingState.PENDING, PostingState.SENDING)
        pause = self.outbox.get_kv("pause")
        paused_until = None
        if pause is not None and datetime.fromisoformat(pause["until"]) > now:
            paused_until = datetime.fromisoformat(pause["until"])
        next_due = self.outbox.next_due()
        counts = self.outbox.counts()
        last_sync = self.outbox.last_done_at()
        errors = tuple(
            ErrorEntry(at=at, source=ErrorSource.FREEE, message=msg, staff_message=staff or "")
            for at, _kind, msg, staff in self.outbox.recent_errors()
        )
        if self._worker_fd is not None:
            worker = "active"
        elif self._standby:
            worker = "standby"
        else:
            worker = "idle"
        return SyncSnapshot(
            generated_at=now,
            link=link,
            tokens=TokenTimes(
                refreshed_at=status.refreshed_at,
                access_expires_at=status.access_expires_at,
                refresh_expires_at=status.refresh_expires_at,
                next_refresh_at=self.tokens.next_refresh_at(),
            ),
            days=tuple(summaries),
            queue=QueueStatus(
                waiting=len(waiting_rows),
                held=counts.get("held", 0),
                next_attempt_at=None if next_due is None or next_due.year == 1 else next_due,
                oldest_waiting_since=min((r.updated_at for r in waiting_rows), default=None),
                paused_until=paused_until,
            ),
            errors=errors,
            last_sync_at=last_sync,
            postings_by_state=counts,
            api_calls=self.counters.snapshot(),
            worker=worker,
        )

    def day_detail(self, register_id: str, business_date: date) -> DayDetail | None:
        """The day page: plan, postings, attempt history, and both versions of edits."""
        day = self.outbox.day(register_id, business_date)
        if day is None:
            return None
        rows = self.outbox.postings_of(register_id, business_date, include_removed=True)
        summary = self._day_summary(
            day, [r for r in rows if r.state is not PostingState.REMOVED], self.link_view()
        )
        postings = tuple(
            PostingRecord(
                ref_number=r.ref_number,
                kind=r.kind,
                amount=_amount(r),
                state=PagePostingState(r.state.value),
                freee_id=r.freee_id,
                updated_at=r.updated_at,
            )
            for r in rows
            if r.state is not PostingState.REMOVED
        )
        attempts = []
        for r in rows:
            for a in self.outbox.attempts(r.id):
                try:
                    outcome = AttemptOutcome(a.outcome)
                except ValueError:
                    outcome = AttemptOutcome.RETRY
                attempts.append(
                    Attempt(
                        at=a.at,
                        ref_number=r.ref_number,
                        action=a.action,
                        outcome=outcome,
                        http_status=a.http_status,
                        message=a.message,
                    )
                )
        attempts.sort(key=lambda a: a.at)
        edited: list[EditedPosting] = []
        if day.hold_kind in (HoldKind.EDITED, HoldKind.CONFLICT) and isinstance(
            day.hold_detail, list
        ):
            for entry in day.hold_detail:
                theirs = entry.get("theirs") or []
                edited.append(
                    EditedPosting(
                        ref_number=entry["ref_number"],
                        freee_id=entry.get("freee_id"),
                        ours=entry.get("ours") or {},
                        theirs=theirs[0] if theirs else None,
                        edited_at=day.updated_at,
                    )
                )
        store = self._store_name(register_id)
        return DayDetail(
            summary=summary,
            store_name=store,
            plan=day.plan,
            postings=postings,
            attempts=tuple(attempts),
            edited=tuple(edited),
        )

    def _store_name(self, register_id: str) -> str | None:
        try:
            reg = self._register(register_id)
        except GatewayError:
            return None
        return self.mapping.for_register(reg).store_label(reg.store_code)

    def freee_version(self, ref_number: str) -> dict[str, Any] | None:
        """What the outbox last saw in freee for a posting, in the plan's shape."""
        row = self.outbox.posting_by_ref(ref_number)
        if row is None or row.freee_view is None:
            return None
        return named_view(row.freee_view, self.masters.cached())

    @contextlib.contextmanager
    def working(self) -> Iterator[None]:
        """Hold the service's work lock (tests, CLI)."""
        with self._work:
            yield


def _is_sales(ref: str) -> bool:
    suffix = ref.split("-", 4)[-1] if ref.count("-") >= 4 else ref
    return suffix == "S" or suffix.startswith("S-")


def _amount(row: PostingRow) -> int:
    plan = row.plan or row.sent_plan
    if not plan:
        return int((row.freee_view or {}).get("amount") or 0)
    if plan.get("transfer"):
        return int(plan["transfer"]["amount"])
    return sum(int(d["amount"]) for d in plan.get("details") or [])
