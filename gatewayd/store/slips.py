"""The close-slip queue: a tiny durable SQLite file (``slips.sqlite`` in the state directory).

A slip is queued as its finished ESC/POS bytes, waits while the printer is offline or out of
paper, and is printed when the printer is back. Rows go ``pending`` → ``printed`` (or
``failed`` after ``max_attempts`` unconfirmed tries). The ``key`` (store/terminal/date/close/
result) is unique, so queueing the same result twice — e.g. after a daemon restart — is a no-op.

"Not twice" with a crash between the write and the mark: a printer cannot tell us what it has
put on paper, so exactly-once is not possible. Each attempt is counted and committed *before*
the bytes go out; the row becomes ``printed`` only after the write returned and the printer
answered a status poll with nothing wrong. A row that is still ``pending`` with ``attempts > 0``
was interrupted (crash, unplug, paper end during the print): it is printed again, with a
"再印刷" banner saying it may be a duplicate. So a slip is never lost, and never silently
printed twice: a second copy is always marked as one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gatewayd.errors import StorageError
from gatewayd.store.db import StoreFile, run_script

FILE_NAME = "slips.sqlite"


def _v1(conn: sqlite3.Connection) -> None:
    run_script(
        conn,
        """
        CREATE TABLE slips (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL,
            body BLOB NOT NULL,
            created_at TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'printed', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_attempt_at TEXT,
            printed_at TEXT,
            last_error TEXT
        );
        CREATE INDEX slips_by_state ON slips (state, id)
    """,
    )


MIGRATIONS = (_v1,)


@dataclass(frozen=True, slots=True)
class QueuedSlip:
    id: int
    key: str
    title: str
    body: bytes
    created_at: datetime
    state: str
    attempts: int
    last_error: str | None

    @property
    def interrupted(self) -> bool:
        """An earlier attempt may have printed part or all of it."""
        return self.state == "pending" and self.attempts > 0


@dataclass(frozen=True, slots=True)
class SlipCounts:
    pending: int
    printed: int
    failed: int
    last_printed_at: datetime | None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SlipQueue(StoreFile):
    """The queue file; every method is one committed transaction and is thread-safe."""

    def __init__(self, state_dir: Path, *, now: Callable[[], datetime] = _utc_now) -> None:
        super().__init__(Path(state_dir) / FILE_NAME, MIGRATIONS)
        self._now = now

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        with self.tx() as conn:
            return conn.execute(sql, params).rowcount

    def _read(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        return self.rows(sql, params)

    def enqueue(self, key: str, title: str, body: bytes) -> bool:
        """Queue a slip; False when a slip with this key was queued before (no duplicate)."""
        return (
            self._write(
                "INSERT OR IGNORE INTO slips (key, title, body, created_at) VALUES (?, ?, ?, ?)",
                (key, title, body, self._now().isoformat()),
            )
            == 1
        )

    def pending(self) -> list[QueuedSlip]:
        """Slips waiting to be printed, oldest first."""
        rows = self._read(
            "SELECT id, key, title, body, created_at, state, attempts, last_error FROM slips"
            " WHERE state = 'pending' ORDER BY id"
        )
        return [_slip(row) for row in rows]

    def get(self, slip_id: int) -> QueuedSlip:
        rows = self._read(
            "SELECT id, key, title, body, created_at, state, attempts, last_error FROM slips"
            " WHERE id = ?",
            (slip_id,),
        )
        if not rows:
            raise StorageError(f"{self.path}: no slip {slip_id}")
        return _slip(rows[0])

    def begin_attempt(self, slip_id: int) -> None:
        """Count an attempt, durably, before any byte goes to the printer."""
        self._write(
            "UPDATE slips SET attempts = attempts + 1, last_attempt_at = ?"
            " WHERE id = ? AND state = 'pending'",
            (self._now().isoformat(), slip_id),
        )

    def mark_printed(self, slip_id: int) -> None:
        self._write(
            "UPDATE slips SET state = 'printed', printed_at = ?, last_error = NULL"
            " WHERE id = ? AND state = 'pending'",
            (self._now().isoformat(), slip_id),
        )

    def note_failure(self, slip_id: int, error: str, *, give_up: bool) -> None:
        """An attempt was not confirmed; ``give_up`` moves the slip to ``failed``."""
        self._write(
            "UPDATE slips SET last_error = ?, state = CASE WHEN ? THEN 'failed'"
            " ELSE state END WHERE id = ? AND state = 'pending'",
            (error, give_up, slip_id),
        )

    def requeue(self, slip_id: int) -> bool:
        """Put a failed slip back (an explicit staff action, e.g. from the status page)."""
        return (
            self._write(
                "UPDATE slips SET state = 'pending' WHERE id = ? AND state = 'failed'", (slip_id,)
            )
            == 1
        )

    def counts(self) -> SlipCounts:
        rows = self._read("SELECT state, COUNT(*), MAX(printed_at) FROM slips GROUP BY state")
        by_state = {str(state): (int(str(count)), last) for state, count, last in rows}
        last = by_state.get("printed", (0, None))[1]
        return SlipCounts(
            pending=by_state.get("pending", (0, None))[0],
            printed=by_state.get("printed", (0, None))[0],
            failed=by_state.get("failed", (0, None))[0],
            last_printed_at=datetime.fromisoformat(str(last)) if last else None,
        )

    def prune(self, *, older_than: timedelta = timedelta(days=90)) -> int:
        """Forget printed slips older than ``older_than`` (pending and failed stay)."""
        cutoff = (self._now() - older_than).isoformat()
        return self._write(
            "DELETE FROM slips WHERE state = 'printed' AND printed_at < ?", (cutoff,)
        )


def _slip(row: tuple[object, ...]) -> QueuedSlip:
    slip_id, key, title, body, created, state, attempts, error = row
    assert isinstance(body, bytes)
    return QueuedSlip(
        id=int(str(slip_id)),
        key=str(key),
        title=str(title),
        body=body,
        created_at=datetime.fromisoformat(str(created)),
        state=str(state),
        attempts=int(str(attempts)),
        last_error=None if error is None else str(error),
    )
