"""The tap store: every byte a print tap hears, kept durably before anything is parsed.

The same "store first" rule as the journal: ``append`` commits the bytes (WAL,
``synchronous=FULL``) and only then returns; splitting into jobs and reading reports come
after, and can always be done again from the stored bytes. A separate file (``taps.sqlite``)
so the journal store's schema is untouched.

Per tap: ``chunks`` (register→printer bytes with their arrival time and their offset in the
stream; printer→register answers too, direction ``P``), ``jobs`` (derived: each job's offsets,
kind, verdict, reason, decoded text and plan) and ``progress`` (how many stream bytes are in
jobs, and the tap's history of Z reports, so a restart resumes exactly).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gatewayd.store.db import StoreFile, run_script

FILE_NAME = "taps.sqlite"
TO_PRINTER = "R"  # register → printer
TO_REGISTER = "P"  # printer → register


def _schema_v1(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE taps (
            tap_id TEXT PRIMARY KEY,
            store_code TEXT NOT NULL,
            terminal_no TEXT NOT NULL
        );
        CREATE TABLE chunks (
            tap_id TEXT NOT NULL REFERENCES taps(tap_id),
            seq INTEGER NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('R', 'P')),
            stream_offset INTEGER NOT NULL,
            received REAL NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (tap_id, seq)
        );
        CREATE INDEX chunks_by_offset ON chunks (tap_id, direction, stream_offset);
        CREATE TABLE jobs (
            tap_id TEXT NOT NULL REFERENCES taps(tap_id),
            job_no INTEGER NOT NULL,
            start_offset INTEGER NOT NULL,
            end_offset INTEGER NOT NULL,
            started REAL NOT NULL,
            ended REAL NOT NULL,
            kind TEXT NOT NULL,
            verdict TEXT NOT NULL,
            reason TEXT,
            business_date TEXT,
            z_counter INTEGER,
            close_no INTEGER,
            text TEXT NOT NULL,
            plan_json TEXT,
            stored_at TEXT NOT NULL,
            PRIMARY KEY (tap_id, job_no)
        );
        CREATE TABLE progress (
            tap_id TEXT PRIMARY KEY REFERENCES taps(tap_id),
            consumed INTEGER NOT NULL,
            history_json TEXT NOT NULL
        )
        """,
    )


MIGRATIONS = (_schema_v1,)


@dataclass(frozen=True, slots=True)
class Chunk:
    seq: int
    offset: int
    received: float
    data: bytes


@dataclass(frozen=True, slots=True)
class JobRow:
    tap_id: str
    job_no: int
    start_offset: int
    end_offset: int
    kind: str
    verdict: str
    reason: str | None
    business_date: str | None
    z_counter: int | None
    close_no: int | None
    text: str
    plan: dict[str, Any] | None
    stored_at: str


@dataclass(frozen=True, slots=True)
class NewJob:
    """What the tap read from one job (the store adds its number)."""

    start_offset: int
    end_offset: int
    started: float
    ended: float
    kind: str
    verdict: str
    reason: str | None
    business_date: str | None
    z_counter: int | None
    close_no: int | None
    text: str
    plan: dict[str, Any] | None


class TapStore(StoreFile):
    """The SQLite file of every tap; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, MIGRATIONS)

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> TapStore:
        return cls(state_dir / FILE_NAME)

    def ensure_tap(self, tap_id: str, store_code: str, terminal_no: str) -> None:
        with self.tx() as conn:
            conn.execute("INSERT OR IGNORE INTO taps VALUES (?, ?, ?)",
                         (tap_id, store_code, terminal_no))
            conn.execute("INSERT OR IGNORE INTO progress VALUES (?, 0, '{}')", (tap_id,))

    def append(self, tap_id: str, data: bytes, received: float,
               direction: str = TO_PRINTER) -> int:
        """Store one chunk durably; returns its stream offset (bytes before it, same direction)."""
        with self.tx() as conn:
            row = conn.execute(
                "SELECT max(seq), (SELECT coalesce(max(stream_offset + length(data)), 0) "
                "FROM chunks WHERE tap_id = ? AND direction = ?) FROM chunks WHERE tap_id = ?",
                (tap_id, direction, tap_id),
            ).fetchone()
            seq = int(row[0] or 0) + 1
            offset = int(row[1] or 0)
            conn.execute(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)",
                (tap_id, seq, direction, offset, received, bytes(data)),
            )
        return offset

    def stream_length(self, tap_id: str, direction: str = TO_PRINTER) -> int:
        rows = self.rows(
            "SELECT coalesce(max(stream_offset + length(data)), 0) FROM chunks "
            "WHERE tap_id = ? AND direction = ?",
            (tap_id, direction),
        )
        return int(rows[0][0])

    def chunks_from(self, tap_id: str, offset: int, direction: str = TO_PRINTER) -> list[Chunk]:
        """The chunks that hold stream bytes at or after ``offset``, the first one trimmed."""
        rows = self.rows(
            "SELECT seq, stream_offset, received, data FROM chunks WHERE tap_id = ? "
            "AND direction = ? AND stream_offset + length(data) > ? ORDER BY seq",
            (tap_id, direction, offset),
        )
        out = []
        for seq, start, received, data in rows:
            data = bytes(data)
            if start < offset:
                data, start = data[offset - start:], offset
            out.append(Chunk(int(seq), int(start), float(received), data))
        return out

    def stream(self, tap_id: str, direction: str = TO_PRINTER) -> bytes:
        return b"".join(c.data for c in self.chunks_from(tap_id, 0, direction))

    def progress(self, tap_id: str) -> tuple[int, dict[str, Any]]:
        rows = self.rows("SELECT consumed, history_json FROM progress WHERE tap_id = ?", (tap_id,))
        if not rows:
            return 0, {}
        return int(rows[0][0]), json.loads(rows[0][1])

    def save_jobs(self, tap_id: str, jobs: Sequence[NewJob], history: dict[str, Any]) -> None:
        """Jobs read, and the progress after them, in one transaction."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self.tx() as conn:
            row = conn.execute("SELECT max(job_no) FROM jobs WHERE tap_id = ?", (tap_id,))
            job_no = int(row.fetchone()[0] or 0)
            consumed = None
            for job in jobs:
                job_no += 1
                conn.execute(
                    "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (tap_id, job_no, job.start_offset, job.end_offset, job.started, job.ended,
                     job.kind, job.verdict, job.reason, job.business_date, job.z_counter,
                     job.close_no, job.text,
                     None if job.plan is None else json.dumps(job.plan, ensure_ascii=False),
                     now),
                )
                consumed = job.end_offset
            if consumed is not None:
                conn.execute(
                    "UPDATE progress SET consumed = ?, history_json = ? WHERE tap_id = ?",
                    (consumed, json.dumps(history, ensure_ascii=False), tap_id),
                )

    def jobs(self, tap_id: str, *, kind: str | None = None, limit: int = 1000) -> list[JobRow]:
        sql = "SELECT * FROM jobs WHERE tap_id = ?"
        args: list[object] = [tap_id]
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        rows = self.rows(sql + " ORDER BY job_no DESC LIMIT ?", (*args, limit))
        return [_job_row(r) for r in reversed(rows)]

    def last_report(self, tap_id: str) -> JobRow | None:
        """The last Z report this tap captured (accepted, held or a repeat)."""
        found = self.jobs(tap_id, kind="z_report", limit=1)
        return found[0] if found else None


def _job_row(r: Any) -> JobRow:
    return JobRow(
        tap_id=r[0], job_no=int(r[1]), start_offset=int(r[2]), end_offset=int(r[3]),
        kind=r[6], verdict=r[7], reason=r[8], business_date=r[9],
        z_counter=None if r[10] is None else int(r[10]),
        close_no=None if r[11] is None else int(r[11]), text=r[12],
        plan=None if r[13] is None else json.loads(r[13]), stored_at=r[14],
    )
