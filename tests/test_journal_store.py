"""The journal store keeps every record's exact bytes once, durably, and names disk failures."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest

from gatewayd.errors import DiskFull, StorageError, StoreCorrupt
from gatewayd.store.journal import MIGRATIONS, CloseRow, DayRow, JournalStore, record_number

REG = "0001-01"


def line(n: int, rest: str = "O\t20250110\t20250110090000\tS01\t30000") -> bytes:
    return f"{n}\t{rest}".encode("cp932")


def own(lines: list[bytes]) -> list[tuple[int, bytes]]:
    """Records under their own number (field 1), as the host hands them over."""
    out = []
    for raw in lines:
        number = record_number(raw)
        assert number is not None
        out.append((number, raw))
    return out


@pytest.fixture()
def store(tmp_path: Path) -> JournalStore:
    s = JournalStore.in_state_dir(tmp_path)
    s.ensure_register(REG, "0001", "01")
    return s


def test_pragmas_are_durable(store: JournalStore) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    # synchronous is per connection: check the store's own connection
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_records_stored_once_with_exact_bytes(store: JournalStore) -> None:
    lines = [line(1), line(2, "T\t1\tSALE\t-\t20250110091000\tS01\tIN"), line(3, "名前\t")]
    r1 = store.store_records(REG, own(lines))
    assert (r1.stored, r1.duplicates, r1.last_record_no) == (3, 0, 3)
    # a repeat after a lost K: the same records again, plus one new
    r2 = store.store_records(REG, own([*lines[1:], line(4)]))
    assert (r2.stored, r2.duplicates, r2.conflicts, r2.last_record_no) == (1, 2, 0, 4)
    assert store.records(REG) == [(1, lines[0]), (2, lines[1]), (3, lines[2]), (4, line(4))]
    assert store.record_count(REG) == 4


def test_conflicting_repeat_is_kept_not_dropped(store: JournalStore) -> None:
    store.store_records(REG, own([line(1)]))
    other = line(1, "O\t20250111\t20250111090000\tS01\t30000")
    result = store.store_records(REG, own([other]))
    assert result.conflicts == 1 and result.stored == 0
    assert store.records(REG) == [(1, line(1))]
    assert store.conflicts(REG) == [(1, other)]
    assert [(a.number, a.raw, a.after) for a in store.asides(REG)] == [(1, other, 1)]


def test_records_kept_under_their_own_numbers_with_holes(store: JournalStore) -> None:
    r = store.store_records(REG, own([line(1), line(3), line(4)]))
    assert (r.stored, r.last_record_no) == (3, 4)
    assert [n for n, _ in store.records(REG)] == [1, 3, 4]  # 2 stays a hole
    assert store.record_count(REG) == 3 and store.last_stored_record(REG) == 4


def test_numbers_only_grow_late_records_are_kept_aside(store: JournalStore) -> None:
    store.store_records(REG, own([line(1), line(3)]))
    # 2 comes late (below 3, the highest stored), 3 again with its bytes, 1 with others, 5 new
    late = line(2, "T")
    other = line(1, "T")
    r = store.store_records(REG, own([late, line(3), other, line(5)]))
    assert (r.stored, r.duplicates, r.conflicts, r.last_record_no) == (1, 1, 2, 5)
    assert [n for n, _ in store.records(REG)] == [1, 3, 5], "the hole at 2 is never filled"
    asides = store.asides(REG)
    assert [(a.number, a.raw, a.after) for a in asides] == [(2, late, 3), (1, other, 3)]
    assert store.asides(REG, after_id=asides[0].id) == asides[1:]


def test_record_number_form() -> None:
    assert record_number(b"x\tgarbled") is None
    assert record_number(b"0012\tO") is None
    assert record_number(b"12\tO") == 12


def test_schema_v2_store_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    for migrate in MIGRATIONS[:2]:
        migrate(conn)
    conn.execute("PRAGMA user_version=2")
    conn.execute("INSERT INTO registers VALUES (?, '0001', '01')", (REG,))
    conn.execute("INSERT INTO record_conflicts (register_id, record_no, raw, seen_at)"
                 " VALUES (?, 7, x'37', 'then')", (REG,))
    conn.close()
    s = JournalStore(path)
    assert s.conflicts(REG) == [(7, b"7")]
    assert s.asides(REG) == []  # an old row does not know where it came
    s.store_records(REG, own([line(1), line(1, "T")]))
    assert [(a.number, a.after) for a in s.asides(REG)] == [(1, 1)]


def test_days_and_closed_dates(store: JournalStore) -> None:
    day = DayRow(REG, date(2025, 1, 10), 1, 40, "accepted", None, 1, 1000, 90, 3)
    held = DayRow(REG, date(2025, 1, 11), 41, 80, "held", "check 3: x (records 79, 80)", 1,
                  None, None, None)
    store.save_analysis(REG, [day, held], [CloseRow(REG, 40, date(2025, 1, 10), 1, None)], 80)
    assert store.processed_through(REG) == 80
    assert store.closed_dates(REG) == {date(2025, 1, 10), date(2025, 1, 11)}
    assert [d.business_date for d in store.days(REG)] == [date(2025, 1, 11), date(2025, 1, 10)]
    assert store.day(REG, date(2025, 1, 11)) == held
    store.set_close_no(REG, 40, 2)
    got = store.day(REG, date(2025, 1, 10))
    assert got is not None and got.close_no == 2
    assert store.closes(REG)[0].record_no == 40


def test_data_survives_reopen(tmp_path: Path, store: JournalStore) -> None:
    store.store_records(REG, own([line(1), line(2)]))
    store.close()
    again = JournalStore.in_state_dir(tmp_path)
    assert again.last_stored_record(REG) == 2


def test_full_disk_is_named_and_nothing_half_written(store: JournalStore) -> None:
    store.store_records(REG, own([line(1)]))
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count={pages}")
    with pytest.raises(DiskFull):
        store.store_records(REG, own([line(n, "X" * 3000) for n in range(2, 40)]))
    assert store.last_stored_record(REG) == 1
    store._conn.execute("PRAGMA max_page_count=1073741823")
    assert store.store_records(REG, own([line(2)])).stored == 1


def test_corrupted_file_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    s = JournalStore(path)
    s.ensure_register(REG, "0001", "01")
    s.store_records(REG, own([line(n) for n in range(1, 500)]))
    s._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    data = bytearray(path.read_bytes())
    for i in range(4096 * 2, len(data), 97):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt) as info:
        JournalStore(path)
    assert "corrupt" in str(info.value)
    assert path.exists(), "the damaged file is never deleted"


def test_sigkill_during_writes_keeps_all_or_nothing(tmp_path: Path) -> None:
    """A writer killed at a random point loses no committed record and leaves no half."""
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from gatewayd.store.journal import JournalStore
        s = JournalStore.in_state_dir(Path({str(tmp_path)!r}))
        s.ensure_register("{REG}", "0001", "01")
        n = s.last_stored_record("{REG}") + 1
        while True:
            batch = [f"{{k}}\\tO\\t20250110\\t20250110090000\\tS01\\t{{k}}".encode()
                     for k in range(n, n + 20)]
            s.store_records("{REG}", list(enumerate(batch, start=n)))
            print(n + 19, flush=True)
            n += 20
        """
    )
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout is not None
        acknowledged = 0
        for _ in range(15):
            acknowledged = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        store = JournalStore.in_state_dir(tmp_path)
        records = store.records(REG)
        numbers = [n for n, _ in records]
        assert numbers == list(range(1, len(numbers) + 1))
        assert len(numbers) % 20 == 0, "a transaction is all or nothing"
        assert len(numbers) >= acknowledged, "every acknowledged record is kept"
        store.close()


def test_two_processes_creating_the_store_at_once(tmp_path: Path) -> None:
    """The daemon and `gatewayd status` may open a new file at the same moment."""
    script = (
        "import sys; from pathlib import Path; from gatewayd.store.journal import JournalStore;"
        f"JournalStore.in_state_dir(Path({str(tmp_path)!r})).ensure_register('{REG}', '0001', '01')"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
             for _ in range(6)]
    errors = [p.communicate()[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    assert JournalStore.in_state_dir(tmp_path).register_ids() == [REG]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    store = JournalStore.in_state_dir(tmp_path)
    store._conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    store.close()
    with pytest.raises(StorageError, match="newer than this gatewayd"):
        JournalStore.in_state_dir(tmp_path)


def test_state_dir_and_the_parents_we_make_are_private(tmp_path: Path) -> None:
    """Outside systemd too: 0700 whatever the umask; directories that exist stay as they are."""
    tmp_path.chmod(0o755)
    state = tmp_path / "var" / "lib" / "gatewayd"
    old = os.umask(0o022)
    try:
        JournalStore.in_state_dir(state).close()
    finally:
        os.umask(old)
    for directory in (tmp_path / "var", tmp_path / "var" / "lib", state):
        assert directory.stat().st_mode & 0o777 == 0o700, directory
    assert tmp_path.stat().st_mode & 0o777 == 0o755


def test_the_daemon_makes_its_state_dir_private(tmp_path: Path) -> None:
    from gatewayd.config import load_settings
    from gatewayd.daemon import Gateway

    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text('state_dir = "run/state"\n[[registers]]\nstore_code = "0001"\n'
                   'terminal_no = "01"\nport = "/dev/null"\n', encoding="utf-8")
    old = os.umask(0o022)
    try:
        gateway = Gateway(load_settings(cfg), web=False)
    finally:
        os.umask(old)
    try:
        for directory in (tmp_path / "run", tmp_path / "run" / "state"):
            assert directory.stat().st_mode & 0o777 == 0o700, directory
    finally:
        gateway.store.close()


def test_linking_first_makes_the_state_dir_private(tmp_path: Path) -> None:
    """``gatewayd link`` before the daemon ever ran: the sync side makes the directory."""
    from gatewayd.config import load_settings
    from gatewayd.sync.service import SyncService

    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text('state_dir = "fresh/state"\n[[registers]]\nstore_code = "0001"\n'
                   'terminal_no = "01"\nport = "/dev/null"\n[freee]\nclient_id = "x"\n'
                   'client_secret = "y"\n', encoding="utf-8")
    settings = load_settings(cfg)
    old = os.umask(0o022)
    try:
        service = SyncService(settings, settings.state_dir, None)  # type: ignore[arg-type]
    finally:
        os.umask(old)
    try:
        for directory in (tmp_path / "fresh", tmp_path / "fresh" / "state"):
            assert directory.stat().st_mode & 0o777 == 0o700, directory
    finally:
        service.close()
