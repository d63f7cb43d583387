"""The outbox: every posting of every accepted day, and where it stands with freee.

Its own SQLite file (``outbox.sqlite`` in the state directory; WAL, ``synchronous=FULL``,
schema version + migrations through ``gatewayd.store.db``). Each change of state is one
transaction, together with its line in the attempt history. freee-mapping.md section 6:

    pending ──claim (committed before the request)──▶ sending ──▶ done (freee id, body, view)
       ▲                                                 │
       └──── surely not sent (connect failed) ◀──────────┤
                                                         ├──▶ sending + lookup (no answer:
                                                         │    look freee up before resending,
                                                         │    twice, lookup_delay apart)
                                                         └──▶ held (reason, freee's message)

A posting's ``action`` says what ``sending`` does: ``create`` (POST), ``update`` (PUT the
deal), ``delete`` and ``recreate`` (DELETE, then POST again under the same ref_number).
Rows removed from a plan are kept as ``removed`` for their history. Days carry a gate:
``check`` (to be checked: fiscal year, masters), ``open`` (may send) or ``held`` (reason).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from gatewayd.store.db import StoreFile, run_script
from gatewayd.sync.plan import DayPlan

OUTBOX_FILE = "outbox.sqlite"
MAX_ERRORS = 200

# the ``lookup`` column: which look-up a posting whose request may be in freee waits for
LOOKUP_NONE = 0  # none (a row found ``sending`` with it was cut short: looked up first)
LOOKUP_FIRST = 1  # the first, ``lookup_delay`` after the request failed
LOOKUP_CONFIRM = 2  # the first found nothing: this one, ``lookup_delay`` later, decides


class PostingState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DONE = "done"
    HELD = "held"
    REMOVED = "removed"


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    RECREATE = "recreate"


class Gate(StrEnum):
    CHECK = "check"
    OPEN = "open"
    HELD = "held"


class HoldKind(StrEnum):
    DAY_CHECK = "day_check"  # failed register-link.md section 6 checks
    FISCAL_YEAR = "fiscal_year"
    MISSING_MASTER = "missing_master"
    EDITED = "edited_in_freee"  # edited in freee since sent (differences stored)
    CONFLICT = "needs_review"  # freee holds the ref_number twice, or with other figures
    REFUSED = "refused"  # freee refused the posting (4xx): its message
    NO_RECORDS = "no_records"  # the journal lacks the day's records


_V1 = """
CREATE TABLE days (
  register_id TEXT NOT NULL,
  business_date TEXT NOT NULL,
  store_code TEXT NOT NULL,
  terminal_no TEXT NOT NULL,
  close_no INTEGER NOT NULL,
  gate TEXT NOT NULL,
  hold_kind TEXT,
  hold_reason TEXT,
  hold_detail TEXT,
  recheck_at TEXT,
  plan_json TEXT,
  settings_hash TEXT,
  accepted_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (register_id, business_date)
);
CREATE TABLE postings (
  id INTEGER PRIMARY KEY,
  register_id TEXT NOT NULL,
  business_date TEXT NOT NULL,
  ref_number TEXT NOT NULL UNIQUE,
  seq INTEGER NOT NULL,
  kind TEXT NOT NULL,
  plan_json TEXT,
  state TEXT NOT NULL,
  action TEXT NOT NULL,
  lookup INTEGER NOT NULL DEFAULT 0,
  freee_kind TEXT,
  freee_id INTEGER,
  sent_plan_json TEXT,
  sent_body TEXT,
  sent_hash TEXT,
  freee_view TEXT,
  freee_owned INTEGER NOT NULL DEFAULT 0,
  hold_kind TEXT,
  hold_reason TEXT,
  freee_message TEXT,
  masters_fp TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT,
  sending_since TEXT,
  done_at TEXT,
  updated_at TEXT NOT NULL,
  FOREIGN KEY (register_id, business_date) REFERENCES days (register_id, business_date)
);
CREATE INDEX postings_state ON postings (state, next_attempt_at);
CREATE INDEX postings_day ON postings (register_id, business_date);
CREATE TABLE attempts (
  id INTEGER PRIMARY KEY,
  posting_id INTEGER NOT NULL REFERENCES postings (id),
  at TEXT NOT NULL,
  action TEXT NOT NULL,
  outcome TEXT NOT NULL,
  http_status INTEGER,
  message TEXT
);
CREATE INDEX attempts_posting ON attempts (posting_id);
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE errors (
  id INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  kind TEXT NOT NULL,
  message TEXT NOT NULL,
  staff_message TEXT
);
CREATE TABLE requests (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  register_id TEXT NOT NULL,
  start_date TEXT NOT NULL,
  end_date TEXT NOT NULL,
  requested_at TEXT NOT NULL,
  done_at TEXT,
  report TEXT
)
"""


def _v1(conn: sqlite3.Connection) -> None:
    run_script(conn, _V1)


MIGRATIONS = (_v1,)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def dumps(value: Any) -> str:
    """Canonical JSON (sorted keys): equal values give equal text."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class DayRow:
    register_id: str
    business_date: date
    store_code: str
    terminal_no: str
    close_no: int
    gate: Gate
    hold_kind: HoldKind | None
    hold_reason: str | None
    hold_detail: Any
    recheck_at: datetime | None
    plan: dict[str, Any] | None
    settings_hash: str | None
    accepted_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PostingRow:
    id: int
    register_id: str
    business_date: date
    ref_number: str
    seq: int
    kind: str
    plan: dict[str, Any] | None
    state: PostingState
    action: Action
    lookup: int  # LOOKUP_NONE / LOOKUP_FIRST / LOOKUP_CONFIRM
    freee_kind: str | None
    freee_id: int | None
    sent_plan: dict[str, Any] | None
    sent_body: dict[str, Any] | None
    freee_view: dict[str, Any] | None
    freee_owned: bool
    hold_kind: HoldKind | None
    hold_reason: str | None
    freee_message: str | None
    masters_fp: str | None
    attempts: int
    next_attempt_at: datetime | None
    sending_since: datetime | None
    done_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Attempt:
    posting_id: int
    at: datetime
    action: str
    outcome: str
    http_status: int | None
    message: str | None


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    kind: str
    register_id: str
    start: date
    end: date
    requested_at: datetime
    done_at: datetime | None
    report: Any


@dataclass(frozen=True, slots=True)
class NewPosting:
    """A posting to put in the outbox (from a plan)."""

    ref_number: str
    seq: int
    kind: str
    plan: dict[str, Any]


def _day(r: sqlite3.Row) -> DayRow:
    return DayRow(
        register_id=r["register_id"],
        business_date=date.fromisoformat(r["business_date"]),
        store_code=r["store_code"],
        terminal_no=r["terminal_no"],
        close_no=int(r["close_no"]),
        gate=Gate(r["gate"]),
        hold_kind=None if r["hold_kind"] is None else HoldKind(r["hold_kind"]),
        hold_reason=r["hold_reason"],
        hold_detail=_loads(r["hold_detail"]),
        recheck_at=_dt(r["recheck_at"]),
        plan=_loads(r["plan_json"]),
        settings_hash=r["settings_hash"],
        accepted_at=datetime.fromisoformat(r["accepted_at"]),
        updated_at=datetime.fromisoformat(r["updated_at"]),
    )


def _posting(r: sqlite3.Row) -> PostingRow:
    return PostingRow(
        id=int(r["id"]),
        register_id=r["register_id"],
        business_date=date.fromisoformat(r["business_date"]),
        ref_number=r["ref_number"],
        seq=int(r["seq"]),
        kind=r["kind"],
        plan=_loads(r["plan_json"]),
        state=PostingState(r["state"]),
        action=Action(r["action"]),
        lookup=int(r["lookup"]),
        freee_kind=r["freee_kind"],
        freee_id=r["freee_id"],
        sent_plan=_loads(r["sent_plan_json"]),
        sent_body=_loads(r["sent_body"]),
        freee_view=_loads(r["freee_view"]),
        freee_owned=bool(r["freee_owned"]),
        hold_kind=None if r["hold_kind"] is None else HoldKind(r["hold_kind"]),
        hold_reason=r["hold_reason"],
        freee_message=r["freee_message"],
        masters_fp=r["masters_fp"],
        attempts=int(r["attempts"]),
        next_attempt_at=_dt(r["next_attempt_at"]),
        sending_since=_dt(r["sending_since"]),
        done_at=_dt(r["done_at"]),
        updated_at=datetime.fromisoformat(r["updated_at"]),
    )


# postings of these actions go first within a day: deletions before posts (section 7)
ACTION_ORDER = (
    "CASE action WHEN 'delete' THEN 0 WHEN 'recreate' THEN 1 WHEN 'update' THEN 2 ELSE 3 END"
)


class Outbox(StoreFile):
    """The outbox file; safe to share between threads (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, MIGRATIONS)
        self._conn.row_factory = sqlite3.Row

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> Outbox:
        return cls(state_dir / OUTBOX_FILE)

    def _rows(self, sql: str, args: Sequence[object] = ()) -> list[sqlite3.Row]:
        return self.rows(sql, args)

    # -- days -------------------------------------------------------------------------------

    def day(self, register_id: str, business_date: date) -> DayRow | None:
        rows = self._rows(
            "SELECT * FROM days WHERE register_id=? AND business_date=?",
            (register_id, business_date.isoformat()),
        )
        return _day(rows[0]) if rows else None

    def days(
        self, *, gate: Gate | None = None, limit: int = 10000, newest_first: bool = False
    ) -> list[DayRow]:
        order = "DESC" if newest_first else "ASC"
        if gate is None:
            rows = self._rows(
                f"SELECT * FROM days ORDER BY business_date {order}, register_id LIMIT ?",
                (limit,),
            )
        else:
            rows = self._rows(
                f"SELECT * FROM days WHERE gate=? ORDER BY business_date {order}, register_id"
                " LIMIT ?",
                (gate.value, limit),
            )
        return [_day(r) for r in rows]

    def days_in(self, register_id: str, start: date, end: date) -> list[DayRow]:
        rows = self._rows(
            "SELECT * FROM days WHERE register_id=? AND business_date BETWEEN ? AND ?"
            " ORDER BY business_date",
            (register_id, start.isoformat(), end.isoformat()),
        )
        return [_day(r) for r in rows]

    def upsert_plan(
        self,
        conn: sqlite3.Connection,
        register_id: str,
        plan: DayPlan,
        settings_hash: str | None,
        now: datetime,
        *,
        gate: Gate,
        **hold: Any,
    ) -> None:
        """``upsert_day`` for a planned day: its identity and plan come from ``plan``."""
        self.upsert_day(
            conn,
            register_id=register_id,
            business_date=plan.business_date,
            store_code=plan.store_code,
            terminal_no=plan.terminal_no,
            close_no=plan.close_no,
            gate=gate,
            plan=plan.to_json(),
            settings_hash=settings_hash,
            now=now,
            **hold,
        )

    def upsert_day(
        self,
        conn: sqlite3.Connection,
        *,
        register_id: str,
        business_date: date,
        store_code: str,
        terminal_no: str,
        close_no: int,
        gate: Gate,
        plan: dict[str, Any] | None,
        settings_hash: str | None,
        now: datetime,
        hold_kind: HoldKind | None = None,
        hold_reason: str | None = None,
        hold_detail: Any = None,
        recheck_at: datetime | None = None,
    ) -> None:
        conn.execute(
            """INSERT INTO days (register_id, business_date, store_code, terminal_no, close_no,
                 gate, hold_kind, hold_reason, hold_detail, recheck_at, plan_json,
                 settings_hash, accepted_at, updated_at)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT (register_id, business_date) DO UPDATE SET
                 close_no=excluded.close_no, gate=excluded.gate,
                 hold_kind=excluded.hold_kind, hold_reason=excluded.hold_reason,
                 hold_detail=excluded.hold_detail, recheck_at=excluded.recheck_at,
                 plan_json=COALESCE(excluded.plan_json, days.plan_json),
                 settings_hash=COALESCE(excluded.settings_hash, days.settings_hash),
                 updated_at=excluded.updated_at""",
            (
                register_id,
                business_date.isoformat(),
                store_code,
                terminal_no,
                close_no,
                gate.value,
                None if hold_kind is None else hold_kind.value,
                hold_reason,
                None if hold_detail is None else dumps(hold_detail),
                _iso(recheck_at),
                None if plan is None else dumps(plan),
                settings_hash,
                _utc(now),
                _utc(now),
            ),
        )

    def set_gate(
        self,
        conn: sqlite3.Connection,
        register_id: str,
        business_date: date,
        gate: Gate,
        now: datetime,
        *,
        hold_kind: HoldKind | None = None,
        hold_reason: str | None = None,
        hold_detail: Any = None,
        recheck_at: datetime | None = None,
    ) -> None:
        conn.execute(
            """UPDATE days SET gate=?, hold_kind=?, hold_reason=?, hold_detail=?, recheck_at=?,
                 updated_at=? WHERE register_id=? AND business_date=?""",
            (
                gate.value,
                None if hold_kind is None else hold_kind.value,
                hold_reason,
                None if hold_detail is None else dumps(hold_detail),
                _iso(recheck_at),
                _utc(now),
                register_id,
                business_date.isoformat(),
            ),
        )

    def days_due(self, now: datetime) -> list[DayRow]:
        """Days to check now: new ones, and held ones whose recheck time has come."""
        rows = self._rows(
            """SELECT * FROM days
               WHERE (gate='check' AND (recheck_at IS NULL OR recheck_at <= ?))
                  OR (gate='held' AND recheck_at IS NOT NULL AND recheck_at <= ?)
               ORDER BY business_date, register_id""",
            (_iso(now), _iso(now)),
        )
        return [_day(r) for r in rows]

    # -- postings ---------------------------------------------------------------------------

    def posting(self, posting_id: int) -> PostingRow:
        return _posting(self._rows("SELECT * FROM postings WHERE id=?", (posting_id,))[0])

    def posting_by_ref(self, ref: str) -> PostingRow | None:
        rows = self._rows("SELECT * FROM postings WHERE ref_number=?", (ref,))
        return _posting(rows[0]) if rows else None

    def postings_of(
        self, register_id: str, business_date: date, *, include_removed: bool = False
    ) -> list[PostingRow]:
        sql = "SELECT * FROM postings WHERE register_id=? AND business_date=?"
        if not include_removed:
            sql += " AND state != 'removed'"
        rows = self._rows(sql + " ORDER BY seq, id", (register_id, business_date.isoformat()))
        return [_posting(r) for r in rows]

    def postings_in_state(self, *states: PostingState) -> list[PostingRow]:
        marks = ",".join("?" for _ in states)
        rows = self._rows(
            f"SELECT * FROM postings WHERE state IN ({marks}) ORDER BY business_date, seq",
            [s.value for s in states],
        )
        return [_posting(r) for r in rows]

    def due_postings(self, now: datetime, limit: int = 50) -> list[PostingRow]:
        """Pending or sending postings of open days whose time has come; deletions first."""
        rows = self._rows(
            f"""SELECT p.* FROM postings p JOIN days d
                  ON d.register_id=p.register_id AND d.business_date=p.business_date
                WHERE p.state IN ('pending','sending') AND d.gate='open'
                  AND (p.next_attempt_at IS NULL OR p.next_attempt_at <= ?)
                ORDER BY p.business_date, p.register_id, {ACTION_ORDER}, p.seq
                LIMIT ?""",
            (_iso(now), limit),
        )
        return [_posting(r) for r in rows]

    def next_due(self) -> datetime | None:
        rows = self._rows(
            """SELECT MIN(COALESCE(p.next_attempt_at, '')) FROM postings p JOIN days d
                  ON d.register_id=p.register_id AND d.business_date=p.business_date
               WHERE p.state IN ('pending','sending') AND d.gate='open'"""
        )
        value = rows[0][0]
        if value is None:
            return None
        return datetime.min.replace(tzinfo=UTC) if value == "" else datetime.fromisoformat(value)

    def next_recheck(self) -> datetime | None:
        """When the next day is due for its gate check (a new day: now)."""
        rows = self._rows(
            "SELECT MIN(COALESCE(recheck_at, '')) FROM days WHERE gate='check'"
            " OR (gate='held' AND recheck_at IS NOT NULL)"
        )
        value = rows[0][0]
        if value is None:
            return None
        return datetime.min.replace(tzinfo=UTC) if value == "" else datetime.fromisoformat(value)

    def insert_posting(
        self,
        conn: sqlite3.Connection,
        register_id: str,
        business_date: date,
        new: NewPosting,
        now: datetime,
    ) -> None:
        """Add a posting, or bring back a removed row of the same ref_number."""
        existing = conn.execute(
            "SELECT id, state FROM postings WHERE ref_number=?", (new.ref_number,)
        ).fetchone()
        if existing is not None:
            conn.execute(
                """UPDATE postings SET seq=?, kind=?, plan_json=?, state='pending',
                     action='create', lookup=0, freee_kind=NULL, freee_id=NULL,
                     hold_kind=NULL, hold_reason=NULL, freee_message=NULL, next_attempt_at=NULL,
                     updated_at=? WHERE id=?""",
                (new.seq, new.kind, dumps(new.plan), _utc(now), existing["id"]),
            )
            return
        conn.execute(
            """INSERT INTO postings (register_id, business_date, ref_number, seq, kind,
                 plan_json, state, action, updated_at)
               VALUES (?,?,?,?,?,?,'pending','create',?)""",
            (
                register_id,
                business_date.isoformat(),
                new.ref_number,
                new.seq,
                new.kind,
                dumps(new.plan),
                _utc(now),
            ),
        )

    def update_posting(self, conn: sqlite3.Connection, posting_id: int, **fields: Any) -> None:
        """Set columns of one posting (values converted: enums, datetimes, JSON)."""
        cols = []
        values: list[object] = []
        for name, value in fields.items():
            column = {"plan": "plan_json", "sent_plan": "sent_plan_json"}.get(name, name)
            if isinstance(value, StrEnum):
                value = value.value
            elif isinstance(value, datetime):
                value = _utc(value)
            elif column in ("plan_json", "sent_plan_json", "sent_body", "freee_view"):
                value = None if value is None else dumps(value)
            elif isinstance(value, bool):
                value = int(value)
            cols.append(f"{column}=?")
            values.append(value)
        conn.execute(f"UPDATE postings SET {', '.join(cols)} WHERE id=?", [*values, posting_id])

    def add_attempt(
        self,
        conn: sqlite3.Connection,
        posting_id: int,
        now: datetime,
        action: str,
        outcome: str,
        http_status: int | None = None,
        message: str | None = None,
    ) -> None:
        conn.execute(
            """INSERT INTO attempts (posting_id, at, action, outcome, http_status, message)
               VALUES (?,?,?,?,?,?)""",
            (posting_id, _utc(now), action, outcome, http_status, message),
        )

    def attempts(self, posting_id: int) -> list[Attempt]:
        rows = self._rows("SELECT * FROM attempts WHERE posting_id=? ORDER BY id", (posting_id,))
        return [
            Attempt(
                posting_id=int(r["posting_id"]),
                at=datetime.fromisoformat(r["at"]),
                action=r["action"],
                outcome=r["outcome"],
                http_status=r["http_status"],
                message=r["message"],
            )
            for r in rows
        ]

    def last_done_at(self) -> datetime | None:
        return _dt(self._rows("SELECT MAX(done_at) FROM postings")[0][0])

    def counts(self) -> dict[str, int]:
        rows = self._rows("SELECT state, COUNT(*) FROM postings GROUP BY state")
        return {r[0]: int(r[1]) for r in rows}

    # -- key/value, errors, requests ---------------------------------------------------------

    def get_kv(self, key: str) -> Any:
        rows = self._rows("SELECT value FROM kv WHERE key=?", (key,))
        return _loads(rows[0][0]) if rows else None

    def set_kv(self, key: str, value: Any) -> None:
        with self.tx() as conn:
            if value is None:
                conn.execute("DELETE FROM kv WHERE key=?", (key,))
            else:
                conn.execute(
                    "INSERT INTO kv (key, value) VALUES (?,?) "
                    "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                    (key, dumps(value)),
                )

    def add_error(self, now: datetime, kind: str, message: str, staff: str | None) -> None:
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO errors (at, kind, message, staff_message) VALUES (?,?,?,?)",
                (_utc(now), kind, message, staff),
            )
            conn.execute(
                "DELETE FROM errors WHERE id <= (SELECT MAX(id) FROM errors) - ?", (MAX_ERRORS,)
            )

    def recent_errors(self, limit: int = 20) -> list[tuple[datetime, str, str, str | None]]:
        rows = self._rows("SELECT * FROM errors ORDER BY id DESC LIMIT ?", (limit,))
        return [
            (datetime.fromisoformat(r["at"]), r["kind"], r["message"], r["staff_message"])
            for r in rows
        ]

    def add_request(
        self, kind: str, register_id: str, start: date, end: date, now: datetime
    ) -> int:
        with self.tx() as conn:
            cur = conn.execute(
                """INSERT INTO requests (kind, register_id, start_date, end_date, requested_at)
                   VALUES (?,?,?,?,?)""",
                (kind, register_id, start.isoformat(), end.isoformat(), _utc(now)),
            )
            return int(cur.lastrowid or 0)

    def open_requests(self) -> list[Request]:
        rows = self._rows("SELECT * FROM requests WHERE done_at IS NULL ORDER BY id")
        return [_request(r) for r in rows]

    def request(self, request_id: int) -> Request | None:
        rows = self._rows("SELECT * FROM requests WHERE id=?", (request_id,))
        return _request(rows[0]) if rows else None

    def finish_request(self, request_id: int, now: datetime, report: Any) -> None:
        with self.tx() as conn:
            conn.execute(
                "UPDATE requests SET done_at=?, report=? WHERE id=?",
                (_utc(now), dumps(report), request_id),
            )


def _request(r: sqlite3.Row) -> Request:
    return Request(
        id=int(r["id"]),
        kind=r["kind"],
        register_id=r["register_id"],
        start=date.fromisoformat(r["start_date"]),
        end=date.fromisoformat(r["end_date"]),
        requested_at=datetime.fromisoformat(r["requested_at"]),
        done_at=_dt(r["done_at"]),
        report=_loads(r["report"]),
    )
