"""Re-sync (freee-mapping.md section 7): make freee agree with a day's current plan.

Run on a re-close, on ``gatewayd resend`` and from the status page. It reads freee (that
date's deals, one call per 100; that date's transfers when the day has any) and decides per
ref_number, comparing three things: the new plan, what the gateway last sent (plan and
freee's view of it, kept in the outbox), and what freee holds now:

- freee lacks it (never sent, or deleted in freee) → post;
- freee still equals what was sent and the plan is unchanged → leave (no write call);
- the plan changed → PUT in place when freee allows (same type, same payments), else delete
  and post again under the same ref_number;
- the plan no longer holds it → delete (deletions go first when sending);
- freee's version differs from what was sent → edited in freee: never touched; the whole
  day is held with both versions until resolved (keep freee's / post ours).

Nothing is written to freee here: decisions become outbox actions in one transaction, and
the delivery worker carries them out exactly once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from gatewayd.sync.delivery import Deliverer, MasterService, StepCache
from gatewayd.sync.freee_client import FreeeClient
from gatewayd.sync.freee_errors import FreeeNotFound
from gatewayd.sync.freee_views import (
    body_matches,
    deal_view,
    edited,
    plan_json_of_freee,
    settled_in_freee,
    transfer_matches,
    view_of,
)
from gatewayd.sync.masters import Masters
from gatewayd.sync.outbox import (
    Action,
    Gate,
    HoldKind,
    NewPosting,
    Outbox,
    PostingRow,
    PostingState,
    dumps,
)
from gatewayd.sync.plan import DayPlan, Posting, PostingKind
from gatewayd.sync.refs import as_form, carries_ref, form_of

log = logging.getLogger(__name__)


@dataclass
class DayReport:
    """What a re-sync decided for one day (refs per decision)."""

    register_id: str
    business_date: date
    status: str  # synced | queued | held | busy | no_day
    post: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    update: list[str] = field(default_factory=list)
    recreate: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)
    reason: str | None = None
    retry_at: datetime | None = None  # busy: when the in-flight posting is due again

    @property
    def writes(self) -> int:
        return len(self.post) + len(self.update) + 2 * len(self.recreate) + len(self.delete)

    def to_json(self) -> dict[str, Any]:
        return {
            "register_id": self.register_id,
            "business_date": self.business_date.isoformat(),
            "status": self.status,
            "post": self.post,
            "unchanged": self.unchanged,
            "update": self.update,
            "recreate": self.recreate,
            "delete": self.delete,
            "adopted": self.adopted,
            "edited": self.edited,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DayReport:
        return cls(
            register_id=data["register_id"],
            business_date=date.fromisoformat(data["business_date"]),
            status=data["status"],
            post=list(data.get("post") or []),
            unchanged=list(data.get("unchanged") or []),
            update=list(data.get("update") or []),
            recreate=list(data.get("recreate") or []),
            delete=list(data.get("delete") or []),
            adopted=list(data.get("adopted") or []),
            edited=list(data.get("edited") or []),
            reason=data.get("reason"),
        )


@dataclass
class _Decision:
    ref: str
    what: str  # post | unchanged | update | recreate | delete | remove | adopt
    posting: Posting | None = None
    row: PostingRow | None = None
    found: Mapping[str, Any] | None = None
    body: dict[str, Any] | None = None


def _payments_of_body(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(deal_view({"payments": body.get("payments") or []})["payments"])


def can_put(posting: Posting, body: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """PUT replaces a deal's lines, but not its payments nor its type (section 7)."""
    if posting.kind is not PostingKind.DEAL or posting.type is None:
        return False
    have = deal_view(current)
    same_type: bool = have["type"] == posting.type.value
    return same_type and have["payments"] == _payments_of_body(body)


class Resyncer:
    """Decides a day's re-sync and queues it in the outbox."""

    def __init__(
        self,
        outbox: Outbox,
        client: FreeeClient,
        masters: MasterService,
        deliverer: Deliverer,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.masters = masters
        self.deliverer = deliverer

    def resync_day(
        self,
        register_id: str,
        plan: DayPlan,
        settings_hash: str | None,
        now: datetime,
        cache: StepCache,
    ) -> DayReport:
        day = plan.business_date
        report = DayReport(register_id, day, "queued")
        # ``now`` (the step's time) says what is due; what is written reads the clock then
        clock = self.deliverer.clock
        # 1. in-flight postings are settled first (look-up), so decisions rest on facts
        for row in self.outbox.postings_of(register_id, day):
            due = row.next_attempt_at is None or row.next_attempt_at <= now
            if (row.state is PostingState.SENDING or row.lookup) and due:
                self.deliverer.deliver(row, cache)
        rows = self.outbox.postings_of(register_id, day)
        if any(r.state is PostingState.SENDING or r.lookup for r in rows):
            report.status = "busy"
            report.reason = "a posting of the day is still in flight"
            waits = [r.next_attempt_at for r in rows if r.next_attempt_at is not None]
            at = clock()
            report.retry_at = max(min(waits), at) if waits else at
            return report
        day_row = self.outbox.day(register_id, day)
        if day_row is not None and not any(r.freee_id is not None for r in rows):
            # nothing of it ever reached freee: queue the plan as it is now
            self.replace_unsent(register_id, plan, settings_hash, clock())
            report.post = [p.ref_number for p in plan.postings]
            report.status = "queued" if plan.postings else "synced"
            return report
        # 2. the day's gate (fiscal year, masters) for the new plan
        problem = self.deliverer.check_postings(list(plan.postings), day, now)
        masters = self.masters.current()
        company = self.masters.company_id()
        # 3. what freee holds for the date
        read_at = clock()
        deals = self.client.list_deals(company, day)
        cache.deals[(day, None)] = deals
        cache.read_at[(day, None)] = read_at
        need_transfers = any(p.kind is PostingKind.TRANSFER for p in plan.postings) or any(
            r.freee_kind == "transfer" for r in rows
        )
        transfers = self.client.list_transfers(company, day) if need_transfers else []
        objects: dict[tuple[str, int], Mapping[str, Any]] = {}
        for d in deals:
            objects[("deal", int(d["id"]))] = d
        for t in transfers:
            objects[("transfer", int(t["id"]))] = t
        # 4. decide
        decisions, edits = self._decide(plan, rows, masters, company, deals, transfers, objects)
        if edits:
            conflict = any(e["why"] == "conflict" for e in edits)
            kind = HoldKind.CONFLICT if conflict else HoldKind.EDITED
            refs = [e["ref_number"] for e in edits]
            reason = (
                "freee会計に同じ管理番号の取引が複数あるか、内容が異なります: "
                if conflict
                else "freee会計で編集された取引があります: "
            ) + "、".join(refs)
            self._hold(register_id, plan, settings_hash, clock(), kind, reason, edits)
            report.status = "held"
            report.edited = refs
            report.reason = reason
            return report
        writes = [d for d in decisions if d.what in ("post", "update", "recreate")]
        if problem is not None and writes:
            kind, reason, detail = problem
            self._hold(
                register_id, plan, settings_hash, clock(), kind, reason, detail, recheck=True
            )
            report.status = "held"
            report.reason = reason
            return report
        self._apply(register_id, plan, settings_hash, decisions, clock())
        for dec in decisions:
            bucket = {
                "post": report.post,
                "unchanged": report.unchanged,
                "update": report.update,
                "recreate": report.recreate,
                "delete": report.delete,
                "adopt": report.adopted,
            }.get(dec.what)
            if bucket is not None:
                bucket.append(dec.ref)
        report.status = "queued" if report.writes else "synced"
        log.info(
            "re-sync %s %s: post %d, update %d, recreate %d, delete %d, unchanged %d",
            register_id,
            day,
            len(report.post),
            len(report.update),
            len(report.recreate),
            len(report.delete),
            len(report.unchanged),
        )
        return report

    # -- deciding -----------------------------------------------------------------------------

    def _current(
        self, row: PostingRow, objects: Mapping[tuple[str, int], Mapping[str, Any]], company: int
    ) -> Mapping[str, Any] | None:
        assert row.freee_id is not None
        kind = row.freee_kind or "deal"
        found = objects.get((kind, row.freee_id))
        if found is not None:
            return found
        # not on that date any more: moved to another date in freee, or deleted
        try:
            if kind == "transfer":
                return self.client.get_transfer(company, row.freee_id)
            return self.client.get_deal(company, row.freee_id)
        except FreeeNotFound:
            return None

    def _decide(
        self,
        plan: DayPlan,
        rows: list[PostingRow],
        masters: Masters,
        company: int,
        deals: list[dict[str, Any]],
        transfers: list[dict[str, Any]],
        objects: Mapping[tuple[str, int], Mapping[str, Any]],
    ) -> tuple[list[_Decision], list[dict[str, Any]]]:
        by_ref = {r.ref_number: r for r in rows}
        decisions: list[_Decision] = []
        edits: list[dict[str, Any]] = []
        for p in plan.postings:
            row = by_ref.pop(p.ref_number, None)
            body, _missing = masters.resolve(p, company_id=company)
            if row is None or row.freee_id is None:
                if p.kind is PostingKind.TRANSFER:
                    hits: list[Mapping[str, Any]] = (
                        [t for t in transfers if transfer_matches(body, t, p.ref_number)]
                        if body is not None
                        else []
                    )
                else:
                    hits = [d for d in deals if carries_ref(d, p.ref_number)]
                if not hits:
                    decisions.append(_Decision(p.ref_number, "post", p, row))
                elif (
                    len(hits) == 1
                    and body is not None
                    and body_matches(
                        p.kind.value,
                        as_form(body, p.ref_number, form_of(hits[0], p.ref_number)),
                        hits[0],
                    )
                ):
                    decisions.append(_Decision(p.ref_number, "adopt", p, row, hits[0], body))
                else:
                    edits.append(
                        self._edit(p.ref_number, None, p.to_json(), hits, "conflict", masters)
                    )
                continue
            current = self._current(row, objects, company)
            if current is None:
                decisions.append(_Decision(p.ref_number, "post", p, row))
                continue
            kind = row.freee_kind or "deal"
            now_view = view_of(kind, current)
            if row.freee_view is not None and edited(row.freee_view, now_view):
                edits.append(
                    self._edit(p.ref_number, row, row.sent_plan, [current], "edited", masters)
                )
                continue
            if row.freee_owned or row.sent_plan == p.to_json():
                decisions.append(_Decision(p.ref_number, "unchanged", p, row))
                continue
            if row.freee_view is not None and settled_in_freee(row.freee_view, now_view):
                # settled (消込) in freee: changing it would undo the accountant's work
                edits.append(
                    self._edit(p.ref_number, row, row.sent_plan, [current], "settled", masters)
                )
                continue
            if kind == p.kind.value and body is not None and can_put(p, body, current):
                decisions.append(_Decision(p.ref_number, "update", p, row))
            else:
                decisions.append(_Decision(p.ref_number, "recreate", p, row))
        for row in by_ref.values():
            if row.freee_id is None:
                decisions.append(_Decision(row.ref_number, "remove", None, row))
                continue
            current = self._current(row, objects, company)
            if current is None or row.freee_owned:
                decisions.append(_Decision(row.ref_number, "remove", None, row))
                continue
            if row.freee_view is not None and edited(
                row.freee_view, view_of(row.freee_kind or "deal", current)
            ):
                edits.append(
                    self._edit(row.ref_number, row, row.sent_plan, [current], "edited", masters)
                )
                continue
            decisions.append(_Decision(row.ref_number, "delete", None, row))
        return decisions, edits

    def _edit(
        self,
        ref: str,
        row: PostingRow | None,
        ours: Any,
        theirs: list[Mapping[str, Any]],
        why: str,
        masters: Masters,
    ) -> dict[str, Any]:
        kind = (row.freee_kind if row is not None else None) or (ours or {}).get("kind", "deal")
        return {
            "ref_number": ref,
            "why": why,
            "freee_id": None if row is None else row.freee_id,
            "freee_kind": kind,
            "ours": ours,
            "theirs": [plan_json_of_freee(kind, t, masters, ref) for t in theirs],
            "theirs_views": [view_of(kind, t) for t in theirs],
        }

    # -- writing ------------------------------------------------------------------------------

    def _hold(
        self,
        register_id: str,
        plan: DayPlan,
        settings_hash: str | None,
        now: datetime,
        kind: HoldKind,
        reason: str,
        detail: Any,
        *,
        recheck: bool = False,
    ) -> None:
        recheck_at = (
            now + timedelta(seconds=self.deliverer.settings.recheck_interval) if recheck else None
        )
        with self.outbox.tx() as conn:
            self.outbox.upsert_plan(
                conn,
                register_id,
                plan,
                settings_hash,
                now,
                gate=Gate.HELD,
                hold_kind=kind,
                hold_reason=reason,
                hold_detail=detail,
                recheck_at=recheck_at,
            )
        log.warning("re-sync %s %s held: %s", register_id, plan.business_date, reason)

    def replace_unsent(
        self,
        register_id: str,
        plan: DayPlan,
        settings_hash: str | None,
        now: datetime,
        *,
        not_before: datetime | None = None,
    ) -> None:
        """Queue a day none of whose postings reached freee: its rows become the plan's.
        ``not_before``: the day is checked and sent from then on (the spread after a close)."""
        with self.outbox.tx() as conn:
            self.outbox.upsert_plan(
                conn,
                register_id,
                plan,
                settings_hash,
                now,
                gate=Gate.CHECK,
                recheck_at=not_before,
            )
            wanted = {p.ref_number for p in plan.postings}
            for row in self.outbox.postings_of(register_id, plan.business_date):
                if row.ref_number not in wanted:
                    self.outbox.update_posting(
                        conn, row.id, state=PostingState.REMOVED, updated_at=now
                    )
            for seq, p in enumerate(plan.postings):
                self.outbox.insert_posting(
                    conn,
                    register_id,
                    plan.business_date,
                    NewPosting(p.ref_number, seq, p.kind.value, p.to_json()),
                    now,
                )

    def _apply(
        self,
        register_id: str,
        plan: DayPlan,
        settings_hash: str | None,
        decisions: list[_Decision],
        now: datetime,
    ) -> None:
        seqs = {p.ref_number: i for i, p in enumerate(plan.postings)}
        with self.outbox.tx() as conn:
            self.outbox.upsert_plan(
                conn,
                register_id,
                plan,
                settings_hash,
                now,
                gate=Gate.OPEN,
            )
            for d in decisions:
                row = d.row
                if d.what == "remove":
                    assert row is not None
                    self.outbox.update_posting(
                        conn, row.id, state=PostingState.REMOVED, updated_at=now
                    )
                    continue
                if d.what == "delete":
                    assert row is not None
                    self.outbox.update_posting(
                        conn,
                        row.id,
                        plan=None,
                        state=PostingState.PENDING,
                        action=Action.DELETE,
                        next_attempt_at=now,
                        updated_at=now,
                    )
                    continue
                p = d.posting
                assert p is not None
                seq = seqs[p.ref_number]
                if row is None or row.state is PostingState.REMOVED:
                    self.outbox.insert_posting(
                        conn,
                        register_id,
                        plan.business_date,
                        NewPosting(p.ref_number, seq, p.kind.value, p.to_json()),
                        now,
                    )
                    fresh = self.outbox.posting_by_ref(p.ref_number)
                    assert fresh is not None
                    row_id = fresh.id
                else:
                    row_id = row.id
                if d.what == "post":
                    self.outbox.update_posting(
                        conn,
                        row_id,
                        seq=seq,
                        kind=p.kind.value,
                        plan=p.to_json(),
                        state=PostingState.PENDING,
                        action=Action.CREATE,
                        lookup=False,
                        freee_id=None,
                        freee_kind=None,
                        freee_view=None,
                        hold_kind=None,
                        hold_reason=None,
                        next_attempt_at=now,
                        updated_at=now,
                    )
                elif d.what == "adopt":
                    assert d.found is not None and d.body is not None
                    self.outbox.update_posting(
                        conn,
                        row_id,
                        seq=seq,
                        kind=p.kind.value,
                        plan=p.to_json(),
                        state=PostingState.DONE,
                        action=Action.CREATE,
                        lookup=False,
                        freee_id=int(d.found["id"]),
                        freee_kind=p.kind.value,
                        sent_plan=p.to_json(),
                        sent_body=d.body,
                        freee_view=view_of(p.kind.value, d.found),
                        done_at=now,
                        updated_at=now,
                    )
                    self.outbox.add_attempt(
                        conn,
                        row_id,
                        now,
                        "GET (re-sync)",
                        "found",
                        None,
                        f"freee id {d.found['id']} already holds it",
                    )
                elif d.what == "unchanged":
                    self.outbox.update_posting(
                        conn,
                        row_id,
                        seq=seq,
                        plan=p.to_json() if not (row and row.freee_owned) else row.plan,
                        state=PostingState.DONE,
                        action=Action.CREATE,
                        hold_kind=None,
                        hold_reason=None,
                        next_attempt_at=None,
                        updated_at=now,
                    )
                    self.outbox.add_attempt(conn, row_id, now, "GET (re-sync)", "unchanged")
                else:  # update | recreate
                    self.outbox.update_posting(
                        conn,
                        row_id,
                        seq=seq,
                        kind=p.kind.value,
                        plan=p.to_json(),
                        state=PostingState.PENDING,
                        action=Action.UPDATE if d.what == "update" else Action.RECREATE,
                        lookup=False,
                        hold_kind=None,
                        hold_reason=None,
                        next_attempt_at=now,
                        updated_at=now,
                    )


def plans_equal(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    return dumps(a) == dumps(b)
