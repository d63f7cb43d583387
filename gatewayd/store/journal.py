"""The journal store: the exact bytes of every register record, kept once, durably.

This is the first hand-over of the data path. ``store_records`` commits one transaction
(WAL, ``synchronous=FULL``) and only then returns, so the host may send ``K`` for those
records. Each record is kept under its own number (field 1, register-link.md section 4), and
``records`` only ever grows upwards: a number the register skipped stays a hole (the day
checks hold its day by check 1), and a record whose number is not above every stored one is
either the same bytes again (a repeat, stored once) or kept aside in ``record_conflicts``
with the number it followed — never dropped, never stored twice, never overwriting.

Days assembled from the records (accepted or held with their reason) and close events are
kept here too, but they are derived data: they can always be rebuilt from the raw records.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from gatewayd.errors import StorageError
from gatewayd.store.db import StoreFile, run_script

FILE_NAME = "journal.sqlite"


def _schema_v1(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE registers (
            register_id TEXT PRIMARY KEY,
            store_code TEXT NOT NULL,
            terminal_no TEXT NOT NULL
        );
        CREATE TABLE records (
            register_id TEXT NOT NULL REFERENCES registers(register_id),
            record_no INTEGER NOT NULL,
            raw BLOB NOT NULL,
            stored_at TEXT NOT NULL,
            PRIMARY KEY (register_id, record_no)
        ) WITHOUT ROWID;
        CREATE TABLE record_conflicts (
            id INTEGER PRIMARY KEY,
            register_id TEXT NOT NULL REFERENCES registers(register_id),
            record_no INTEGER NOT NULL,
            raw BLOB NOT NULL,
            seen_at TEXT NOT NULL
        );
        CREATE TABLE days (
            register_id TEXT NOT NULL REFERENCES registers(register_id),
            close_record_no INTEGER NOT NULL,
            business_date TEXT,
            first_record_no INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('accepted', 'held')),
            reason TEXT,
            close_no INTEGER NOT NULL DEFAULT 1,
            gross INTEGER,
            tax INTEGER,
            receipt_count INTEGER,
            assembled_at TEXT NOT NULL,
            PRIMARY KEY (register_id, close_record_no)
        );
        CREATE INDEX days_by_date ON days (register_id, business_date);
        CREATE TABLE closes (
            register_id TEXT NOT NULL REFERENCES registers(register_id),
            record_no INTEGER NOT NULL,
            business_date TEXT,
            close_no INTEGER,
            day_close_record_no INTEGER,
            note TEXT,
            PRIMARY KEY (register_id, record_no)
        );
        CREATE TABLE progress (
            register_id TEXT PRIMARY KEY REFERENCES registers(register_id),
            processed_through INTEGER NOT NULL DEFAULT 0
        );
        """,
    )


def _schema_v2(conn: sqlite3.Connection) -> None:
    """Closes that await their slip (printed once the freee outcome is known)."""
    run_script(
        conn,
        """
        CREATE TABLE notices (
            register_id TEXT NOT NULL REFERENCES registers(register_id),
            business_date TEXT NOT NULL,
            close_no INTEGER NOT NULL,
            last_status TEXT,
            done INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            PRIMARY KEY (register_id, business_date, close_no)
        )
        """,
    )


def _schema_v3(conn: sqlite3.Connection) -> None:
    """Where a record kept aside arrived: after which stored record (for the day checks)."""
    run_script(conn, "ALTER TABLE record_conflicts ADD COLUMN after_record_no INTEGER")


MIGRATIONS = (_schema_v1, _schema_v2, _schema_v3)

NOTICE_DAYS = 14  # a close whose outcome is unknown this long gets no slip any more


@dataclass(frozen=True, slots=True)
class Notice:
    """A close that awaits its slip; ``last_status`` is the result already printed."""

    register_id: str
    business_date: date
    close_no: int
    last_status: str | None


@dataclass(frozen=True, slots=True)
class StoreResult:
    """What one ``store_records`` call did."""

    stored: int
    duplicates: int
    conflicts: int
    last_record_no: int


@dataclass(frozen=True, slots=True)
class Aside:
    """A record kept aside: ``number`` (its field 1) was stored already or lies below the
    highest stored number, which was ``after`` when it came."""

    id: int
    number: int
    raw: bytes
    after: int


@dataclass(frozen=True, slots=True)
class DayRow:
    """A day as the store knows it (derived from the records)."""

    register_id: str
    business_date: date | None
    first_record_no: int
    close_record_no: int
    status: str
    reason: str | None
    close_no: int
    gross: int | None
    tax: int | None
    receipt_count: int | None


@dataclass(frozen=True, slots=True)
class CloseRow:
    register_id: str
    record_no: int
    business_date: date | None
    close_no: int | None
    note: str | None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record_number(line: bytes) -> int | None:
    """The record number of a raw line (field 1), or None when it is not a number."""
    head = line.split(b"\t", 1)[0]
    if head.isdigit() and len(head) <= 15 and not head.startswith(b"0"):
        return int(head)
    return None


class JournalStore(StoreFile):
    """The SQLite journal of every register this box reads; safe to share between threads."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        super().__init__(path, MIGRATIONS, read_only=read_only)

    @classmethod
    def in_state_dir(cls, state_dir: Path, *, read_only: bool = False) -> JournalStore:
        """``read_only``: for commands that only look; raises ``StoreMissing`` if absent."""
        return cls(state_dir / FILE_NAME, read_only=read_only)

    # --- registers and raw records -------------------------------------------------------

    def ensure_register(self, register_id: str, store_code: str, terminal_no: str) -> None:
        with self.tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO registers VALUES (?, ?, ?)",
                (register_id, store_code, terminal_no),
            )
            conn.execute("INSERT OR IGNORE INTO progress VALUES (?, 0)", (register_id,))

    def register_ids(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT register_id FROM registers ORDER BY 1")]

    def last_stored_record(self, register_id: str) -> int:
        rows = self.rows("SELECT max(record_no) FROM records WHERE register_id = ?", (register_id,))
        return int(rows[0][0] or 0)

    def store_records(
        self, register_id: str, records: Sequence[tuple[int, bytes]]
    ) -> StoreResult:
        """Store ``(number, raw)`` records of one ``J`` answer, in the order sent.

        A number above every stored one is inserted (numbers skipped below it stay holes);
        any other is a repeat when its bytes equal the stored record's, else it is kept in
        ``record_conflicts`` with the highest number stored when it came. Returns only after
        the transaction is durably committed.
        """
        stored = duplicates = conflicts = 0
        now = _now()
        with self.tx() as conn:
            top = int(conn.execute(
                "SELECT max(record_no) FROM records WHERE register_id = ?", (register_id,)
            ).fetchone()[0] or 0)
            for number, raw in records:
                if number > top:
                    conn.execute(
                        "INSERT INTO records VALUES (?, ?, ?, ?)",
                        (register_id, number, bytes(raw), now),
                    )
                    stored += 1
                    top = number
                    continue
                row = conn.execute(
                    "SELECT raw FROM records WHERE register_id = ? AND record_no = ?",
                    (register_id, number),
                ).fetchone()
                if row is not None and bytes(row[0]) == bytes(raw):
                    duplicates += 1
                    continue
                conn.execute(
                    "INSERT INTO record_conflicts (register_id, record_no, raw, seen_at,"
                    " after_record_no) VALUES (?, ?, ?, ?, ?)",
                    (register_id, number, bytes(raw), now, top),
                )
                conflicts += 1
        return StoreResult(stored, duplicates, conflicts, top)

    def records(
        self, register_id: str, start: int = 1, end: int | None = None
    ) -> list[tuple[int, bytes]]:
        """Raw records ``start..end`` (inclusive) in record order."""
        rows = self.rows(
            "SELECT record_no, raw FROM records WHERE register_id = ? AND record_no >= ?"
            " AND record_no <= ? ORDER BY record_no",
            (register_id, start, end if end is not None else 2**62),
        )
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def record_count(self, register_id: str) -> int:
        return int(
            self.rows("SELECT count(*) FROM records WHERE register_id = ?", (register_id,))[0][0]
        )

    def conflicts(self, register_id: str) -> list[tuple[int, bytes]]:
        rows = self.rows(
            "SELECT record_no, raw FROM record_conflicts WHERE register_id = ? ORDER BY id",
            (register_id,),
        )
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def asides(self, register_id: str, after_id: int = 0) -> list[Aside]:
        """Records kept aside (``record_conflicts``) with an id above ``after_id``, in order.

        Rows from before schema v3 do not know where they came and are left out.
        """
        rows = self.rows(
            "SELECT id, record_no, raw, after_record_no FROM record_conflicts"
            " WHERE register_id = ? AND id > ? AND after_record_no IS NOT NULL ORDER BY id",
            (register_id, after_id),
        )
        return [Aside(int(r[0]), int(r[1]), bytes(r[2]), int(r[3])) for r in rows]

    # --- derived: days and closes ----------------------------------------------------------

    def processed_through(self, register_id: str) -> int:
        rows = self.rows(
            "SELECT processed_through FROM progress WHERE register_id = ?", (register_id,)
        )
        return int(rows[0][0]) if rows else 0

    def save_analysis(
        self,
        register_id: str,
        days: Sequence[DayRow],
        closes: Sequence[CloseRow],
        processed_through: int,
    ) -> None:
        """Record assembled days and close events, and how far the records were analysed."""
        now = _now()
        with self.tx() as conn:
            for day in days:
                conn.execute(
                    "INSERT OR REPLACE INTO days VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        register_id,
                        day.close_record_no,
                        day.business_date.isoformat() if day.business_date else None,
                        day.first_record_no,
                        day.status,
                        day.reason,
                        day.close_no,
                        day.gross,
                        day.tax,
                        day.receipt_count,
                        now,
                    ),
                )
            for close in closes:
                conn.execute(
                    "INSERT OR IGNORE INTO closes VALUES (?, ?, ?, ?, NULL, ?)",
                    (
                        register_id,
                        close.record_no,
                        close.business_date.isoformat() if close.business_date else None,
                        close.close_no,
                        close.note,
                    ),
                )
            conn.execute(
                "UPDATE progress SET processed_through = ? WHERE register_id = ?",
                (processed_through, register_id),
            )

    def set_close_no(self, register_id: str, close_record_no: int, close_no: int) -> None:
        with self.tx() as conn:
            conn.execute(
                "UPDATE days SET close_no = max(close_no, ?) WHERE register_id = ?"
                " AND close_record_no = ?",
                (close_no, register_id, close_record_no),
            )

    def days(self, register_id: str | None = None, limit: int = 1000) -> list[DayRow]:
        """Days, newest business date first."""
        where, args = ("WHERE register_id = ?", [register_id]) if register_id else ("", [])
        rows = self.rows(
            "SELECT register_id, business_date, first_record_no, close_record_no, status,"
            " reason, close_no, gross, tax, receipt_count FROM days "
            + where
            + " ORDER BY business_date DESC, close_record_no DESC LIMIT ?",
            [*args, limit],
        )
        return [_day_row(r) for r in rows]

    def day(self, register_id: str, business_date: date) -> DayRow | None:
        """The accepted day of that date, else the latest held one."""
        rows = self.rows(
            "SELECT register_id, business_date, first_record_no, close_record_no, status,"
            " reason, close_no, gross, tax, receipt_count FROM days WHERE register_id = ?"
            " AND business_date = ? ORDER BY status = 'accepted' DESC, close_record_no DESC",
            (register_id, business_date.isoformat()),
        )
        return _day_row(rows[0]) if rows else None

    def closed_dates(self, register_id: str) -> set[date]:
        """Business dates already closed by a Z in this store (for check 1 across runs)."""
        rows = self.rows(
            "SELECT DISTINCT business_date FROM days WHERE register_id = ? AND"
            " business_date IS NOT NULL",
            (register_id,),
        )
        return {date.fromisoformat(r[0]) for r in rows}

    def closes(self, register_id: str) -> list[CloseRow]:
        rows = self.rows(
            "SELECT record_no, business_date, close_no, note FROM closes"
            " WHERE register_id = ? ORDER BY record_no",
            (register_id,),
        )
        return [
            CloseRow(register_id, int(r[0]), date.fromisoformat(r[1]) if r[1] else None, r[2], r[3])
            for r in rows
        ]

    # --- slips awaiting the outcome of a close ---------------------------------------------

    def add_notice(self, register_id: str, business_date: date, close_no: int) -> None:
        with self.tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO notices VALUES (?, ?, ?, NULL, 0, ?)",
                (register_id, business_date.isoformat(), close_no, _now()),
            )

    def open_notices(self) -> list[Notice]:
        """Closes whose final slip (送信済) is not printed yet, from the last few days."""
        since = (datetime.now(UTC) - timedelta(days=NOTICE_DAYS)).isoformat(timespec="seconds")
        rows = self.rows(
            "SELECT register_id, business_date, close_no, last_status FROM notices"
            " WHERE done = 0 AND created_at >= ? ORDER BY created_at",
            (since,),
        )
        return [_notice(r) for r in rows]

    def close_notice(
        self, register_id: str, business_date: date, close_no: int, status: str
    ) -> None:
        """Record the printed result; a 送信済 slip ends the watch, a 保留 one keeps it."""
        with self.tx() as conn:
            conn.execute(
                "UPDATE notices SET last_status = ?, done = ? WHERE register_id = ?"
                " AND business_date = ? AND close_no = ?",
                (
                    status,
                    1 if status == "sent" else 0,
                    register_id,
                    business_date.isoformat(),
                    close_no,
                ),
            )


def _notice(r: Any) -> Notice:
    return Notice(
        str(r[0]), date.fromisoformat(str(r[1])), int(r[2]), None if r[3] is None else str(r[3])
    )


def _day_row(r: Any) -> DayRow:
    return DayRow(
        register_id=str(r[0]),
        business_date=date.fromisoformat(str(r[1])) if r[1] else None,
        first_record_no=int(r[2]),
        close_record_no=int(r[3]),
        status=str(r[4]),
        reason=None if r[5] is None else str(r[5]),
        close_no=int(r[6]),
        gross=None if r[7] is None else int(r[7]),
        tax=None if r[8] is None else int(r[8]),
        receipt_count=None if r[9] is None else int(r[9]),
    )


__all__ = [
    "Aside",
    "CloseRow",
    "DayRow",
    "JournalStore",
    "Notice",
    "StorageError",
    "StoreResult",
    "record_number",
]
