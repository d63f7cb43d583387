"""Delivering one posting exactly once (freee-mapping.md section 6), and the day gate (§4–5).

freee has no idempotency key and cannot filter deals by ref_number, so exactly once rests on
three rules, each enforced here:

1. the move to ``sending`` is committed before the request goes out;
2. only a request that surely never left (connect refused / connect timeout) is repeated as
   is; after any other failure — and for every row found in ``sending`` (a crash) — the
   posting is first looked up in freee (that date's deals of that type, paged by 100,
   matching ref_number and amount; or that date's transfers, matching amount, both
   walletables and a description ending in the ref_number); found → done; not found → one
   more look-up ``lookup_delay`` later (freee may commit a request late), and only if that
   one finds nothing either → send;
3. a posting found twice, or found with other figures, is never sent or deleted again: the
   day is held for review.

Every state change is one outbox transaction with its line in the attempt history. Every
time written — a next attempt, a pause, a look-up time, a recheck, an attempt line — comes
from the clock read at the moment it is about (the failure, the answer), never from the
``now`` a step started with: time spent earlier in the step must not shorten a wait.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from gatewayd.errors import (
    FreeeError,
    FreeeFixSetting,
    FreeePermission,
    FreeeRateLimited,
    FreeeRefused,
    FreeeRelink,
    FreeeRetryLater,
)
from gatewayd.sync.freee_client import FreeeClient
from gatewayd.sync.freee_errors import FreeeNotFound, FreeeNotSent
from gatewayd.sync.freee_settings import FreeeSettings
from gatewayd.sync.freee_views import (
    body_matches,
    edited,
    transfer_matches,
    view_of,
)
from gatewayd.sync.masters import MasterCache, Masters
from gatewayd.sync.outbox import (
    LOOKUP_CONFIRM,
    LOOKUP_FIRST,
    LOOKUP_NONE,
    Action,
    Gate,
    HoldKind,
    Outbox,
    PostingRow,
    PostingState,
)
from gatewayd.sync.plan import Posting, PostingKind
from gatewayd.sync.refs import carries_ref
from gatewayd.sync.tokens import Clock, TokenManager, utcnow

log = logging.getLogger(__name__)

FRESH_MASTERS = 60.0  # a cache younger than this is not fetched again for a missing name


class CompanyPause(Exception):
    """Stop sending for the company until ``until`` (rate limit or freee unreachable)."""

    def __init__(self, until: datetime, cause: FreeeError) -> None:
        super().__init__(str(cause))
        self.until = until
        self.cause = cause


def backoff(settings: FreeeSettings, attempts: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter for the outbox's next attempt, capped."""
    base = max(settings.retry_initial, 0.05) * (2 ** max(attempts - 1, 0))
    capped = min(base, settings.retry_max)
    jitter: float = (rng or random.Random()).random()
    return float(capped * (0.5 + 0.5 * jitter))


class MasterService:
    """The cached masters of the linked company; fetched (two calls) only when needed."""

    def __init__(
        self,
        cache: MasterCache,
        client: FreeeClient,
        tokens: TokenManager,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self.cache = cache
        self.client = client
        self.tokens = tokens
        self.clock = clock

    def company_id(self) -> int:
        company = self.tokens.company_id()
        if company is None:
            raise FreeeFixSetting(
                "no company: the link did not name one and freee.company_id is not set",
                staff_message=(
                    "freee会計の事業所が決まっていません。"
                    "再連携するか company_id を設定してください。"
                ),
            )
        return company

    def current(self) -> Masters:
        company = self.company_id()
        masters = self.cache.get(company)
        if masters is None:
            masters = self.refresh()
        return masters

    def cached(self) -> Masters | None:
        return self.cache.get(self.tokens.company_id())

    def age(self) -> float:
        masters = self.cached()
        if masters is None:
            return float("inf")
        return (self.clock() - masters.fetched_at).total_seconds()

    def refresh(self) -> Masters:
        company = self.company_id()
        fetched_at = self.clock()  # freee's masters as they were at this moment, or later
        details = self.client.company(company, details=True)
        taxes = self.client.taxes(company)
        masters = self.cache.put(details, taxes, fetched_at)
        if masters.company_name:
            self.tokens.set_company_name(masters.company_name)
        log.info("freee masters of company %s read again", company)
        return masters

    def refresh_if_older(self, seconds: float) -> Masters:
        if self.age() > seconds:
            return self.refresh()
        return self.current()

    def refresh_items(self) -> Masters:
        """Read only the 品目 list (one call): what another box of the company created."""
        company = self.company_id()
        fetched_at = self.clock()  # the list as it was at this moment, or later
        masters = self.cache.with_items(company, self.client.list_items(company), fetched_at)
        log.info("freee 品目 of company %s read again", company)
        return masters if masters is not None else self.refresh()

    def create_items(self, names: list[str]) -> Masters:
        """Create 品目; each one freee makes goes into the cache from its answer. A refused
        create (the name exists: another box was quicker) ends with one read of the list."""
        company = self.company_id()
        refused = False
        for name in names:
            try:
                item = self.client.create_item(company, name)
            except FreeeRefused as exc:
                log.warning("creating 品目 %s refused: %s", name, exc.freee_message)
                refused = True
                continue
            log.info("created 品目 %s in freee", name)
            self.cache.add_item(company, item)
        return self.refresh_items() if refused else self.current()


@dataclass
class StepCache:
    """freee listings read during one step, shared by the look-ups of that step; each with
    the moment it was asked for, so a look-up never rests on a listing older than its own
    earliest time (``read_since``)."""

    deals: dict[tuple[date, str | None], list[dict[str, Any]]] = field(default_factory=dict)
    transfers: dict[date, list[dict[str, Any]]] = field(default_factory=dict)
    read_at: dict[object, datetime] = field(default_factory=dict)

    def forget(self, day: date) -> None:
        for key in [k for k in self.deals if k[0] == day]:
            del self.deals[key]
            self.read_at.pop(key, None)
        self.transfers.pop(day, None)
        self.read_at.pop(day, None)

    def read_since(self, key: object, moment: datetime | None) -> bool:
        """A listing under ``key`` was asked for at ``moment`` or later (None: any)."""
        at = self.read_at.get(key)
        return at is not None and (moment is None or at >= moment)


@dataclass(frozen=True, slots=True)
class LookupResult:
    found: Mapping[str, Any] | None = None
    conflict: str | None = None  # held for review


class Deliverer:
    """Sends due postings; every outcome is written to the outbox before the next request."""

    def __init__(
        self,
        outbox: Outbox,
        client: FreeeClient,
        masters: MasterService,
        settings: FreeeSettings,
        *,
        item_prefix: Callable[[], str],
        wanted_items: Callable[[], set[str]] = set,
        after_request: Callable[[str, PostingRow], None] | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.masters = masters
        self.settings = settings
        self.item_prefix = item_prefix
        self.wanted_items = wanted_items  # every prefixed 品目 the settings can name
        self.after_request = after_request  # test hook: called once freee answered a write
        self.clock = clock  # read at each failure, answer and decision (module docstring)

    # -- the day gate (section 4 and 5) -------------------------------------------------------

    def check_postings(
        self, postings: list[Posting], business_date: date, now: datetime
    ) -> tuple[HoldKind, str, Any] | None:
        """Section 4–5 before sending: fiscal year, then names (品目 with the prefix are
        created). Returns why the day may not go, or None. ``now``: the step's time; masters
        read before it may miss 品目 made since (read again before creating any)."""
        masters = self.masters.current()
        problem = masters.fiscal_problem(business_date)
        if problem is not None:
            masters = self.masters.refresh_if_older(FRESH_MASTERS)
            problem = masters.fiscal_problem(business_date)
        if problem is not None:
            return HoldKind.FISCAL_YEAR, problem, None
        missing = masters.missing_names(postings)
        if missing and all(m.kind == "items" for m in missing):
            # only 品目 lack: another box of the company may have made them (one narrow read)
            if masters.items_fetched_at < now:
                masters = self.masters.refresh_items()
        elif missing:
            masters = self.masters.refresh_if_older(FRESH_MASTERS)
        missing = masters.missing_names(postings)
        prefix = self.item_prefix()
        creatable = [m for m in missing if m.kind == "items" and m.name.startswith(prefix)]
        if creatable and masters.items_fetched_at < now:
            # an earlier try of ours cut short (a rate limit) may have made them: read the
            # list first (a refused create costs a call)
            masters = self.masters.refresh_items()
            missing = masters.missing_names(postings)
            creatable = [m for m in missing if m.kind == "items" and m.name.startswith(prefix)]
        if creatable:
            # create the other methods' 品目 too, so a later day never pays for it
            items = {m.name for m in creatable}
            items |= {n for n in self.wanted_items() if n.startswith(prefix)} - set(masters.items)
            masters = self.masters.create_items(sorted(items))
            missing = masters.missing_names(postings)
        if missing:
            names = "、".join(m.label() for m in missing)
            detail = [{"kind": m.kind, "name": m.name, "note": m.note} for m in missing]
            return HoldKind.MISSING_MASTER, f"freee会計に見つかりません: {names}", detail
        return None

    def gate(self, register_id: str, business_date: date, now: datetime) -> bool:
        """Check a day before anything of it is sent; open it, or hold it with the reason."""
        rows = [
            r
            for r in self.outbox.postings_of(register_id, business_date)
            if r.plan is not None and r.state is not PostingState.DONE
        ]
        postings = [Posting.from_json(r.plan) for r in rows if r.plan is not None]
        problem = self.check_postings(postings, business_date, now)
        if problem is not None:
            kind, reason, detail = problem
            self.hold_day(register_id, business_date, kind, reason, detail, recheck=True)
            return False
        with self.outbox.tx() as conn:
            self.outbox.set_gate(conn, register_id, business_date, Gate.OPEN, self.clock())
        return True

    def prepare_items(self, now: datetime) -> None:
        """At link time: read the masters and create the prefixed 品目 the settings name, so
        that no evening pays for them (boxes linked later find them in that same read).
        `now` is the link's time; the reads take their own times from the clock."""
        del now
        masters = self.masters.refresh()
        prefix = self.item_prefix()
        wanted = {n for n in self.wanted_items() if n.startswith(prefix)} - set(masters.items)
        if wanted:
            self.masters.create_items(sorted(wanted))

    def hold_day(
        self,
        register_id: str,
        business_date: date,
        kind: HoldKind,
        reason: str,
        detail: Any,
        *,
        recheck: bool,
    ) -> None:
        now = self.clock()  # the recheck interval counts from the decision, not the step
        recheck_at = now + timedelta(seconds=self.settings.recheck_interval) if recheck else None
        with self.outbox.tx() as conn:
            self.outbox.set_gate(
                conn,
                register_id,
                business_date,
                Gate.HELD,
                now,
                hold_kind=kind,
                hold_reason=reason,
                hold_detail=detail,
                recheck_at=recheck_at,
            )
        log.warning("day %s %s held (%s): %s", register_id, business_date, kind.value, reason)

    # -- look-up ------------------------------------------------------------------------------

    def lookup(
        self, row: PostingRow, posting: Posting, body: Mapping[str, Any], cache: StepCache
    ) -> LookupResult:
        """Does freee hold this posting already? (section 6)

        The listing must have been asked for no sooner than the row's look-up time: one read
        earlier in the step (for another posting) is read again rather than trusted."""
        company = self.masters.company_id()
        day = posting.issue_date
        since = row.next_attempt_at if row.lookup else None
        if posting.kind is PostingKind.TRANSFER:
            if day not in cache.transfers or not cache.read_since(day, since):
                at = self.clock()
                cache.transfers[day] = self.client.list_transfers(company, day)
                cache.read_at[day] = at
            hits = [
                t for t in cache.transfers[day] if transfer_matches(body, t, posting.ref_number)
            ]
            if len(hits) > 1:
                return LookupResult(conflict=f"freee holds {len(hits)} transfers for this posting")
            return LookupResult(found=hits[0] if hits else None)
        deal_type = None if posting.type is None else posting.type.value
        key = (day, deal_type)
        if key not in cache.deals or not cache.read_since(key, since):
            at = self.clock()
            cache.deals[key] = self.client.list_deals(company, day, deal_type)
            cache.read_at[key] = at
        hits = [d for d in cache.deals[key] if carries_ref(d, posting.ref_number)]
        if not hits:
            return LookupResult()
        if len(hits) > 1:
            return LookupResult(conflict=f"freee holds {len(hits)} deals with this ref_number")
        if int(hits[0].get("amount") or 0) != posting.amount:
            return LookupResult(
                conflict=(
                    f"freee holds this ref_number with amount {hits[0].get('amount')}, "
                    f"the plan says {posting.amount}"
                )
            )
        return LookupResult(found=hits[0])

    # -- delivery -----------------------------------------------------------------------------

    def deliver(self, row: PostingRow, cache: StepCache) -> None:
        """Move one due posting forward. Raises ``CompanyPause`` and link-level errors."""
        if row.action in (Action.DELETE, Action.RECREATE):
            self._delete(row, cache)
        elif row.action is Action.UPDATE:
            self._update(row, cache)
        else:
            self._create(row, cache)

    def _resolve(self, row: PostingRow) -> tuple[Posting, dict[str, Any]] | None:
        assert row.plan is not None
        posting = Posting.from_json(row.plan)
        masters = self.masters.current()
        body, missing = masters.resolve(posting, company_id=self.masters.company_id())
        if body is None:
            # a master vanished since the gate: check the day again
            with self.outbox.tx() as conn:
                self.outbox.set_gate(
                    conn, row.register_id, row.business_date, Gate.CHECK, self.clock()
                )
            log.warning("%s: %s missing; day checked again", row.ref_number, missing)
            return None
        return posting, body

    def _claim(self, row: PostingRow) -> bool:
        """Committed before the request goes out (rule 1). False when the row changed since
        it was read (a re-plan by another thread): it is left for the next step. The look-up
        stage starts over: a row found ``sending`` later was cut short in this request."""
        at = self.clock().astimezone(UTC).isoformat()
        with self.outbox.tx() as conn:
            cur = conn.execute(
                """UPDATE postings SET state='sending', sending_since=?, attempts=attempts+1,
                     lookup=0, updated_at=?
                   WHERE id=? AND updated_at=? AND state IN ('pending','sending')""",
                (at, at, row.id, row.updated_at.astimezone(UTC).isoformat()),
            )
            claimed = cur.rowcount == 1
        if not claimed:
            log.info("%s changed while being sent: left for the next step", row.ref_number)
        return claimed

    def _create(self, row: PostingRow, cache: StepCache) -> None:
        resolved = self._resolve(row)
        if resolved is None:
            return
        posting, body = resolved
        kind = posting.kind.value
        if row.state is PostingState.SENDING or row.lookup:
            try:
                result = self.lookup(row, posting, body, cache)
            except FreeeRetryLater as exc:
                stage = max(row.lookup, LOOKUP_FIRST)
                self._retry_later(row, exc, "GET (look-up)", lookup=stage)
                raise
            if result.conflict is not None:
                self._hold_conflict(row, result.conflict)
                return
            if result.found is not None:
                self._done(row, posting, body, result.found, "found", "GET (look-up)")
                return
            if row.lookup != LOOKUP_CONFIRM and self.settings.lookup_delay > 0:
                self._look_again_later(row)
                return
            with self.outbox.tx() as conn:
                self.outbox.add_attempt(conn, row.id, self.clock(), "GET (look-up)", "not_found")
        if not self._claim(row):
            return
        what = f"POST /api/1/{'transfers' if kind == 'transfer' else 'deals'}"
        try:
            if posting.kind is PostingKind.TRANSFER:
                obj = self.client.create_transfer(body)
            else:
                obj = self.client.create_deal(body)
        except FreeeError as exc:
            cache.forget(posting.issue_date)
            self._failed(row, exc, what, body)
            return
        cache.forget(posting.issue_date)
        if self.after_request is not None:
            self.after_request(what, row)
        self._done(row, posting, body, obj, "sent", what, http_status=201)

    def _look_again_later(self, row: PostingRow) -> None:
        """Not found, but freee may still commit the lost request: look once more
        ``lookup_delay`` after this look-up; only if that finds nothing either is it sent."""
        at = self.clock()
        again = at + timedelta(seconds=self.settings.lookup_delay)
        with self.outbox.tx() as conn:
            self.outbox.update_posting(
                conn,
                row.id,
                state=PostingState.SENDING,
                lookup=LOOKUP_CONFIRM,
                next_attempt_at=again,
                updated_at=at,
            )
            self.outbox.add_attempt(
                conn,
                row.id,
                at,
                "GET (look-up)",
                "not_found",
                None,
                f"looked up again at {again.isoformat(timespec='seconds')} before sending",
            )
        log.info("%s not in freee yet: looked up again at %s", row.ref_number, again)

    def _update(self, row: PostingRow, cache: StepCache) -> None:
        resolved = self._resolve(row)
        if resolved is None:
            return
        posting, body = resolved
        assert row.freee_id is not None
        company = self.masters.company_id()
        put_body = {k: v for k, v in body.items() if k != "payments"}
        if row.state is PostingState.SENDING or row.lookup:
            try:
                current = self.client.get_deal(company, row.freee_id)
            except FreeeNotFound:
                self._gone(row)
                return
            except FreeeRetryLater as exc:
                self._retry_later(row, exc, "GET (look-up)", lookup=LOOKUP_FIRST)
                raise
            if body_matches("deal", put_body, current):
                self._done(row, posting, body, current, "found", "GET (look-up)")
                return
            if row.freee_view is not None and edited(row.freee_view, view_of("deal", current)):
                self._hold_conflict(row, "edited in freee while an update was in flight")
                return
        if not self._claim(row):
            return
        what = f"PUT /api/1/deals/{row.freee_id}"
        try:
            obj = self.client.update_deal(row.freee_id, put_body)
        except FreeeNotFound:
            self._gone(row)
            return
        except FreeeError as exc:
            cache.forget(posting.issue_date)
            self._failed(row, exc, what, put_body)
            return
        cache.forget(posting.issue_date)
        if self.after_request is not None:
            self.after_request(what, row)
        self._done(row, posting, body, obj, "sent", what, http_status=200)

    def _delete(self, row: PostingRow, cache: StepCache) -> None:
        company = self.masters.company_id()
        if row.freee_id is None:
            self._deleted(row, "nothing to delete")
            return
        if not self._claim(row):
            return
        plural = "transfers" if row.freee_kind == "transfer" else "deals"
        what = f"DELETE /api/1/{plural}/{row.freee_id}"
        try:
            if row.freee_kind == "transfer":
                self.client.delete_transfer(company, row.freee_id)
            else:
                self.client.delete_deal(company, row.freee_id)
        except FreeeNotFound:
            pass  # gone already (a repeated DELETE, or deleted in freee)
        except FreeeError as exc:
            cache.forget(row.business_date)
            # a DELETE may be repeated: no look-up needed, just try again
            self._failed(row, exc, what, None, lookup=False)
            return
        cache.forget(row.business_date)
        if self.after_request is not None:
            self.after_request(what, row)
        self._deleted(row, what)

    # -- outcomes (each reads the clock when it happens) ---------------------------------------

    def _done(
        self,
        row: PostingRow,
        posting: Posting,
        body: Mapping[str, Any],
        obj: Mapping[str, Any],
        outcome: str,
        what: str,
        *,
        http_status: int | None = None,
    ) -> None:
        kind = posting.kind.value
        at = self.clock()
        with self.outbox.tx() as conn:
            self.outbox.update_posting(
                conn,
                row.id,
                state=PostingState.DONE,
                action=Action.CREATE,
                lookup=LOOKUP_NONE,
                freee_kind=kind,
                freee_id=int(obj["id"]),
                sent_plan=row.plan,
                sent_body=dict(body),
                freee_view=view_of(kind, obj),
                hold_kind=None,
                hold_reason=None,
                freee_message=None,
                next_attempt_at=None,
                done_at=at,
                updated_at=at,
            )
            self.outbox.add_attempt(
                conn, row.id, at, what, outcome, http_status, f"freee id {obj['id']}"
            )
        log.info("%s %s: freee id %s", row.ref_number, outcome, obj["id"])

    def _deleted(self, row: PostingRow, what: str) -> None:
        at = self.clock()
        with self.outbox.tx() as conn:
            if row.action is Action.RECREATE:
                fields: dict[str, Any] = {
                    "state": PostingState.PENDING,
                    "action": Action.CREATE,
                    "next_attempt_at": None,
                }
            else:
                fields = {"state": PostingState.REMOVED}
            self.outbox.update_posting(
                conn,
                row.id,
                lookup=LOOKUP_NONE,
                freee_kind=None,
                freee_id=None,
                sent_plan=None,
                sent_body=None,
                freee_view=None,
                freee_owned=False,
                updated_at=at,
                **fields,
            )
            self.outbox.add_attempt(
                conn, row.id, at, what, "deleted", 204, f"freee id {row.freee_id} deleted"
            )

    def _gone(self, row: PostingRow) -> None:
        """The deal to update is no longer in freee: post it again."""
        at = self.clock()
        with self.outbox.tx() as conn:
            self.outbox.update_posting(
                conn,
                row.id,
                state=PostingState.PENDING,
                action=Action.CREATE,
                lookup=LOOKUP_NONE,
                freee_id=None,
                freee_kind=None,
                freee_view=None,
                next_attempt_at=None,
                updated_at=at,
            )
            self.outbox.add_attempt(
                conn, row.id, at, "GET (look-up)", "not_found", 404, "deleted in freee"
            )

    def _retry_later(self, row: PostingRow, exc: FreeeError, what: str, *, lookup: int) -> None:
        at = self.clock()
        delay = backoff(self.settings, row.attempts + 1)
        with self.outbox.tx() as conn:
            self.outbox.update_posting(
                conn,
                row.id,
                lookup=lookup,
                next_attempt_at=at + timedelta(seconds=delay),
                updated_at=at,
            )
            self.outbox.add_attempt(conn, row.id, at, what, "retry", exc.status_code, str(exc))

    def _hold_conflict(self, row: PostingRow, why: str) -> None:
        at = self.clock()
        with self.outbox.tx() as conn:
            self.outbox.update_posting(
                conn,
                row.id,
                state=PostingState.HELD,
                hold_kind=HoldKind.CONFLICT,
                hold_reason=why,
                updated_at=at,
            )
            self.outbox.add_attempt(conn, row.id, at, "GET (look-up)", "refused", None, why)
            self.outbox.set_gate(
                conn,
                row.register_id,
                row.business_date,
                Gate.HELD,
                at,
                hold_kind=HoldKind.CONFLICT,
                hold_reason=f"{row.ref_number}: {why}",
            )
        log.error("%s held for review: %s", row.ref_number, why)

    def _failed(
        self,
        row: PostingRow,
        exc: FreeeError,
        what: str,
        body: Mapping[str, Any] | None,
        *,
        lookup: bool = True,
    ) -> None:
        """Record a failed write; raise what stops the whole company. Every wait counts
        from this moment (the failure), not from when the step began."""
        at = self.clock()
        attempts = row.attempts + 1
        if isinstance(exc, FreeeRateLimited):
            wait = (
                exc.retry_after if exc.retry_after is not None else self.settings.rate_limit_pause
            )
            until = at + timedelta(seconds=max(wait, 1.0))
            self._back_to(row, at, PostingState.PENDING, until, what, "retry", exc)
            raise CompanyPause(until, exc)
        if isinstance(exc, FreeeNotSent):
            until = at + timedelta(seconds=backoff(self.settings, attempts))
            self._back_to(row, at, PostingState.PENDING, until, what, "retry", exc)
            raise CompanyPause(until, exc)
        if isinstance(exc, FreeeRetryLater):
            # it may have reached freee — and may still be in progress there: look it up
            # (after a settling delay) before sending again
            wait = backoff(self.settings, attempts)
            if lookup:
                wait = max(wait, self.settings.lookup_delay)
            until = at + timedelta(seconds=wait)
            stage = LOOKUP_FIRST if lookup else LOOKUP_NONE
            self._back_to(
                row, at, PostingState.SENDING, until, what, "ambiguous", exc, lookup=stage
            )
            raise CompanyPause(until, exc)
        if isinstance(exc, FreeeRelink | FreeePermission | FreeeFixSetting):
            # 401/403: freee did not process it
            self._back_to(row, at, PostingState.PENDING, at, what, "retry", exc)
            raise exc
        # 4xx: perhaps an id of a stale cache (section 5): read the masters again once
        if body is not None and row.plan is not None and self._stale_masters(row, body):
            return
        # refused as it stands: held with freee's own message
        at = self.clock()
        with self.outbox.tx() as conn:
            self.outbox.update_posting(
                conn,
                row.id,
                state=PostingState.HELD,
                hold_kind=HoldKind.REFUSED,
                hold_reason=exc.freee_message or str(exc),
                freee_message=exc.freee_message,
                masters_fp=self._fingerprint(),
                updated_at=at,
            )
            self.outbox.add_attempt(
                conn, row.id, at, what, "refused", exc.status_code, exc.freee_message or str(exc)
            )
        log.error("%s refused by freee: %s", row.ref_number, exc)

    def _stale_masters(self, row: PostingRow, body: Mapping[str, Any]) -> bool:
        """After a refusal: if fresh masters change the request (or the day's standing), put
        the posting back to be sent again instead of holding it."""
        if self.masters.age() <= FRESH_MASTERS:
            return False
        assert row.plan is not None
        masters = self.masters.refresh()
        posting = Posting.from_json(row.plan)
        new_body, missing = masters.resolve(posting, company_id=self.masters.company_id())
        if new_body is not None and "payments" not in body:
            new_body.pop("payments", None)
        fiscal = masters.fiscal_problem(row.business_date)
        if fiscal is None and not missing and new_body == dict(body):
            return False
        at = self.clock()
        with self.outbox.tx() as conn:
            self.outbox.update_posting(
                conn, row.id, state=PostingState.PENDING, next_attempt_at=at, updated_at=at
            )
            self.outbox.add_attempt(
                conn,
                row.id,
                at,
                "GET /api/1/companies/{id}",
                "retry",
                None,
                "refused; masters read again changed the request: sending again",
            )
            if fiscal is not None or missing:
                self.outbox.set_gate(conn, row.register_id, row.business_date, Gate.CHECK, at)
        return True

    def _fingerprint(self) -> str | None:
        masters = self.masters.cached()
        return None if masters is None else masters.fingerprint()

    def _back_to(
        self,
        row: PostingRow,
        at: datetime,
        state: PostingState,
        next_at: datetime,
        what: str,
        outcome: str,
        exc: FreeeError,
        *,
        lookup: int = LOOKUP_NONE,
    ) -> None:
        with self.outbox.tx() as conn:
            self.outbox.update_posting(
                conn,
                row.id,
                state=state,
                lookup=lookup,
                next_attempt_at=next_at,
                updated_at=at,
            )
            self.outbox.add_attempt(conn, row.id, at, what, outcome, exc.status_code, str(exc))
        log.warning("%s: %s → %s until %s (%s)", row.ref_number, what, state.value, next_at, exc)
