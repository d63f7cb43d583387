"""Opening gatewayd's SQLite files the one durable way, and naming their failures.

Every store file is opened in WAL mode with ``synchronous=FULL`` (a commit is on the card
before we tell the register ``K``), foreign keys on, and a schema version kept in
``PRAGMA user_version`` and advanced by ordered migrations. SQLite's errors are translated
into the error tree: a full disk, a read-only directory and a corrupted file each say what
the installer should do.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gatewayd.errors import DiskFull, StorageError, StoreCorrupt, StoreMissing

Migration = Callable[[sqlite3.Connection], None]


def storage_error(exc: BaseException, path: Path) -> StorageError:
    """Map an ``sqlite3``/``OSError`` failure to the error the operator can act on."""
    text = str(exc).lower()
    if "full" in text or getattr(exc, "errno", None) == 28:
        return DiskFull(f"{path}: disk full: {exc}")
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return StoreCorrupt(f"{path}: database file is corrupted: {exc}")
    if (
        "readonly" in text
        or "read-only" in text
        or getattr(exc, "errno", None) in (13, 30)
        or _on_read_only_filesystem(path)  # SQLite says only "unable to open database file"
    ):
        return StorageError(
            f"{path}: cannot write (read-only or permission denied): {exc}",
            staff_message="ゲートウェイの記憶領域に書き込めません。設置担当者に連絡してください。",
        )
    return StorageError(f"{path}: storage failure: {exc}")


def _on_read_only_filesystem(path: Path) -> bool:
    """True when the file (or, if it does not exist, its directory) is on a read-only mount."""
    for candidate in (path, path.parent):
        try:
            return bool(os.statvfs(candidate).f_flag & os.ST_RDONLY)
        except OSError:
            continue
    return False


def make_private_dir(path: Path) -> None:
    """Create ``path`` and each missing parent with mode 0700, whatever the umask.

    The state directory holds the sales journal and the freee tokens: outside systemd
    (whose ``StateDirectoryMode=0700`` does the same) nobody else may list or read it.
    Directories that already exist are left as they are.
    """
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made meanwhile by another process: not ours to change
        os.chmod(directory, 0o700)


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated DDL inside the caller's transaction (``executescript`` would commit)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def open_database(
    path: Path, migrations: Sequence[Migration], *, check: bool = True, read_only: bool = False
) -> sqlite3.Connection:
    """Open (creating if needed) a store file, check it, and bring its schema up to date.

    ``check`` runs ``PRAGMA quick_check`` so that a corrupted file is refused at start with a
    clear message instead of failing later in the middle of a transfer. ``read_only`` is for
    commands that only look (``gatewayd status``): see ``open_read_only``.
    """
    if read_only:
        return open_read_only(path, len(migrations))
    try:
        make_private_dir(path.parent)
        conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    except (sqlite3.Error, OSError) as exc:
        raise storage_error(exc, path) from exc
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        if check:
            result = conn.execute("PRAGMA quick_check").fetchone()
            if result is None or result[0] != "ok":
                raise StoreCorrupt(f"{path}: integrity check failed: {result!r}")
        _migrate(conn, migrations)
    except sqlite3.Error as exc:
        conn.close()
        raise storage_error(exc, path) from exc
    except StorageError:
        conn.close()
        raise
    return conn


def open_read_only(path: Path, schema_version: int) -> sqlite3.Connection:
    """Open an existing store file so that nothing can change it: not a byte, not its mtime.

    SQLite's ``mode=ro`` URI (no directory is made, no journal mode is set, no migration
    runs) plus ``PRAGMA query_only``. Works beside the running daemon (WAL: a reader may
    create the empty ``-wal``/``-shm`` companions when they are absent, as any reader does)
    and on a read-only copy or mount: there, with no ``-wal`` beside it (nothing can be
    writing), the file is opened ``immutable``. A schema other than ``schema_version`` is
    refused: only the daemon migrates.
    """
    if not path.is_file():
        raise StoreMissing(f"{path}: no store yet (the daemon has not run)")
    base = path.resolve().as_uri()
    wal = path.with_name(path.name + "-wal")
    try:
        try:
            conn = _connect_ro(f"{base}?mode=ro")
        except sqlite3.OperationalError:
            # read-only place without the -shm a WAL reader needs (SQLite: CANTOPEN)
            if wal.exists():
                raise
            conn = _connect_ro(f"{base}?mode=ro&immutable=1")
    except sqlite3.Error as exc:
        raise storage_error(exc, path) from exc
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version != schema_version:
            raise StorageError(
                f"{path}: schema version {version}, this gatewayd reads {schema_version}"
                " (start the daemon once to upgrade it, or update gatewayd)",
                staff_message="データベースの版が違います。gatewayd を起動するか更新してください。",
            )
    except sqlite3.Error as exc:
        conn.close()
        raise storage_error(exc, path) from exc
    except StorageError:
        conn.close()
        raise
    return conn


def _connect_ro(uri: str) -> sqlite3.Connection:
    conn = sqlite3.connect(uri, uri=True, timeout=10.0, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute("PRAGMA query_only=ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the file now
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
    """Apply the missing migrations, each in its own write transaction.

    The version is read inside the transaction, so two processes opening a new file at once
    (the daemon and ``gatewayd status``) never both apply the same migration.
    """
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > len(migrations):
                raise StorageError(
                    f"schema version {version} is newer than this gatewayd knows"
                    f" ({len(migrations)})",
                    staff_message="データベースが新しい版のものです。gatewayd を更新してください。",
                )
            if version == len(migrations):
                conn.execute("COMMIT")
                return
            migrations[version](conn)
            conn.execute(f"PRAGMA user_version={version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


class StoreFile:
    """One store file shared between threads: one connection, one lock, and the two ways in.

    ``tx()`` is one write transaction (``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any
    error; refused when opened ``read_only``); ``rows()`` is a read. Both turn SQLite's
    failures into ``StorageError``s, so every store reports a full disk or a corrupted file
    the same way.
    """

    def __init__(self, path: Path, migrations: Sequence[Migration], *,
                 read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._conn = open_database(path, migrations, read_only=read_only)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        if self.read_only:
            raise StorageError(f"{self.path}: opened read-only, refusing a write")
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise storage_error(exc, self.path) from exc
            try:
                yield self._conn
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise storage_error(exc, self.path) from exc
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise storage_error(exc, self.path) from exc

    def rows(self, sql: str, args: Sequence[object] = ()) -> list[Any]:
        with self._lock:
            try:
                return list(self._conn.execute(sql, args).fetchall())
            except sqlite3.Error as exc:
                raise storage_error(exc, self.path) from exc
