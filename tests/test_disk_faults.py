"""The box's own disk fails: full, read-only, corrupted. No record may be lost or invented.

The register keeps every record the host has not committed (``K``), so the rule is simple:
while the state directory cannot take a commit, the host sends no ``K``, says why on the
status, and carries on by itself once the disk is usable again.

- Full disk: the state directory is a small tmpfs (root only; CI runs as root), filled with a
  file until ENOSPC while the daemon runs; then the file is deleted.
- Read-only while running: ``mount -o remount,ro`` is refused while the daemon holds its
  database open for writing (the kernel answers EBUSY; a real SD card that fails goes
  read-only under the daemon via ext4 ``errors=remount-ro``, which a test cannot trigger
  safely). The store's own connection is switched to ``PRAGMA query_only`` instead: SQLite
  then refuses writes with the same "readonly" error the daemon would get.
- Read-only at start: the tmpfs really is remounted read-only before ``gatewayd run``.
- Corrupted database at start: ``gatewayd run`` (a real process) exits non-zero naming the
  file; the file is left untouched for the installer, nothing is committed to the register.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

from gatewayd.backend import DaemonBackend
from gatewayd.config import Settings, parse_settings
from gatewayd.daemon import Gateway
from gatewayd.sim.journal_gen import generate_journal
from gatewayd.sim.register import RegisterSimulator
from gatewayd.store.journal import JournalStore

REGISTER_ID = "0001-01"
MOUNT_SIZE = "2m"


# --- a small disk of our own -------------------------------------------------------------------


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = MOUNT_SIZE) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` at ``path`` for the block; always unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the state directory needs root (CI runs as root)")
    result = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield path
    finally:
        if _run("umount", str(path)).returncode != 0:
            _run("umount", "-l", str(path))


def fill(directory: Path) -> Path:
    """Write one file until the filesystem is full (ENOSPC); returns the file."""
    filler = directory / "filler.bin"
    with filler.open("wb", buffering=0) as out:
        for chunk in (b"\0" * 65536, b"\0" * 4096, b"\0" * 512):
            while True:
                try:
                    out.write(chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
        with contextlib.suppress(OSError):
            os.fsync(out.fileno())
    return filler


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# --- the daemon in this process (its status is inspected directly) --------------------------------


def settings_for(state: Path, port: Path) -> Settings:
    return parse_settings({
        "state_dir": str(state),
        "poll_interval": 0.05,
        "logging": {"level": "warning"},
        "registers": [{"store_code": "0001", "terminal_no": "01", "port": str(port)}],
    })


class Box:
    """A register simulator on a pty and the daemon (no freee, no web) around one state dir."""

    def __init__(self, tmp: Path, state: Path, days: int = 3) -> None:
        self.journal = generate_journal(3, days, date(2025, 4, 7), receipts_per_day=25)
        self.sim = RegisterSimulator(self.journal, visible_days=1)
        self.port = tmp / "register"
        self.sim.start_pty(self.port)
        self.gateway = Gateway(settings_for(state, self.port), sync_factory=lambda s, g: None,
                               web=False)
        self.gateway.start()
        self._loop = threading.Thread(target=self.gateway.run, daemon=True)
        self._loop.start()

    @property
    def host_state(self) -> object:
        return self.gateway.hosts[REGISTER_ID].snapshot()

    def stored(self) -> int:
        return self.gateway.store.last_stored_record(REGISTER_ID)

    def settled(self) -> bool:
        """Everything the register shows is stored and committed back."""
        last = self.sim.last_record_no
        return self.stored() == last and self.sim.committed == last

    def stop(self) -> None:
        self.gateway.stop_event.set()
        self._loop.join(5)
        self.gateway.stop()
        self.sim.stop()

    def check_journal_complete(self) -> None:
        records = self.gateway.store.records(REGISTER_ID)
        assert [n for n, _ in records] == list(range(1, len(self.journal) + 1))
        assert [raw.decode("cp932") for _, raw in records] == self.journal
        assert self.gateway.store.conflicts(REGISTER_ID) == []
        assert [d.status for d in self.gateway.store.days(REGISTER_ID)] == ["accepted"] * 3


def assert_stalled_without_k(box: Box, committed: int, words: str) -> None:
    """No record past ``committed`` is stored or committed, the register still holds them, and
    the status names the cause."""
    host = box.gateway.hosts[REGISTER_ID]
    failures = host.snapshot().counters.store_failures
    wait_for(lambda: host.snapshot().counters.store_failures >= failures + 3, 15,
             "the host to try (and fail) to store several times")
    assert box.stored() == committed
    assert box.sim.committed == committed, "K sent for records that are not on disk"
    assert box.sim.last_record_no > committed  # the register keeps them
    state = host.snapshot()
    assert state.current_error is not None and words in state.current_error
    assert words in (box.gateway.status_data()["registers"][REGISTER_ID]["last_error"] or "")
    page = DaemonBackend(box.gateway).overview().devices.registers[0]
    assert page.detail is not None and words in page.detail


def test_full_disk_stops_commits_and_resumes_when_space_returns(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state") as state:
        box = Box(tmp_path, state)
        try:
            wait_for(box.settled, 20, "day 1 stored and committed")
            committed = box.sim.committed
            filler = fill(state)
            box.sim.reveal_next_day()
            assert_stalled_without_k(box, committed, "disk full")

            filler.unlink()  # space returns: everything resumes by itself
            wait_for(box.settled, 20, "day 2 stored and committed after space returned")
            box.sim.reveal_next_day()
            wait_for(box.settled, 20, "day 3 stored and committed")
            wait_for(lambda: len(box.gateway.store.days(REGISTER_ID)) == 3, 10, "3 days")
            wait_for(lambda: box.gateway.hosts[REGISTER_ID].snapshot().current_error is None,
                     5, "the error to clear after a clean cycle")
            box.check_journal_complete()
            commits = [int(str(e[1])) for e in box.sim.events_named("K")]
            assert commits == sorted(commits)
        finally:
            box.stop()


def test_read_only_store_stops_commits_and_resumes(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state") as state:
        box = Box(tmp_path, state)
        try:
            wait_for(box.settled, 20, "day 1 stored and committed")
            committed = box.sim.committed
            # the real remount is refused while the daemon holds the file open for writing
            remount = _run("mount", "-o", "remount,ro", str(state))
            if remount.returncode == 0:  # a kernel that allows it: the real thing
                restore: Callable[[], object] = lambda: _run(  # noqa: E731
                    "mount", "-o", "remount,rw", str(state))
            else:
                assert "busy" in remount.stderr
                conn = box.gateway.store._conn
                with box.gateway.store._lock:
                    conn.execute("PRAGMA query_only=1")

                def restore() -> object:
                    with box.gateway.store._lock:
                        return conn.execute("PRAGMA query_only=0")

            box.sim.reveal_next_day()
            assert_stalled_without_k(box, committed, "read-only")
            restore()
            wait_for(box.settled, 20, "day 2 stored and committed once writable again")
            box.sim.reveal_next_day()
            wait_for(box.settled, 20, "day 3 stored and committed")
            wait_for(lambda: len(box.gateway.store.days(REGISTER_ID)) == 3, 10, "3 days")
            box.check_journal_complete()
        finally:
            box.stop()


# --- the daemon as a real process ------------------------------------------------------------


CONFIG = """
state_dir = "{state}"
poll_interval = 0.05
[logging]
level = "warning"
[[registers]]
store_code = "0001"
terminal_no = "01"
port = "{port}"
[web]
port = 0
"""


def gatewayd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "gatewayd", *args, "--config", str(config)]


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, NOTIFY_SOCKET="")
    with log.open("ab") as out:
        return subprocess.Popen(gatewayd(config, "run"), stdout=out, stderr=out, env=env)


def stop_daemon(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.terminate()
    assert proc.wait(20) == 0, log.read_text(errors="replace")


def stored_records(state: Path) -> int:
    store = JournalStore.in_state_dir(state)
    try:
        return store.record_count(REGISTER_ID)
    finally:
        store.close()


@pytest.fixture()
def register(tmp_path: Path) -> Iterator[RegisterSimulator]:
    journal = generate_journal(5, 2, date(2025, 4, 7), receipts_per_day=15)
    sim = RegisterSimulator(journal, visible_days=1)
    sim.start_pty(tmp_path / "register")
    yield sim
    sim.stop()


def write_config(tmp_path: Path, state: Path) -> Path:
    config = tmp_path / "gatewayd.toml"
    config.write_text(CONFIG.format(state=state, port=tmp_path / "register"), encoding="utf-8")
    return config


def run_day_one(config: Path, sim: RegisterSimulator, state: Path, log: Path) -> None:
    proc = start_daemon(config, log)
    try:
        wait_for(lambda: sim.committed == sim.last_record_no > 0, 30, "day 1 committed")
    finally:
        stop_daemon(proc, log)
    assert stored_records(state) == sim.committed


def test_read_only_state_dir_at_start_exits_clearly_then_runs(
    tmp_path: Path, register: RegisterSimulator
) -> None:
    with tmpfs(tmp_path / "state") as state:
        config = write_config(tmp_path, state)
        log = tmp_path / "daemon.log"
        run_day_one(config, register, state, log)
        committed = register.committed
        register.reveal_next_day()
        assert _run("mount", "-o", "remount,ro", str(state)).returncode == 0
        try:
            result = subprocess.run(gatewayd(config, "run"), capture_output=True, text=True,
                                    timeout=60, env=dict(os.environ, NOTIFY_SOCKET=""))
        finally:
            assert _run("mount", "-o", "remount,rw", str(state)).returncode == 0
        assert result.returncode != 0
        assert str(state / "journal.sqlite") in result.stderr
        assert "read-only" in result.stderr
        assert "書き込めません" in result.stderr  # the staff line
        assert register.committed == committed  # nothing committed, the register keeps it all

        proc = start_daemon(config, log)
        try:
            wait_for(lambda: register.committed == register.last_record_no, 30, "day 2 in")
        finally:
            stop_daemon(proc, log)
        assert stored_records(state) == register.last_record_no


def corrupt_page(path: Path) -> None:
    """Overwrite the middle of the file (b-tree pages, the header intact)."""
    size = path.stat().st_size
    assert size >= 4 * 4096, "the store should span several pages"
    with path.open("r+b") as fh:
        fh.seek(2 * 4096)
        fh.write(b"\xa5" * 4096)


def corrupt_header(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.write(b"this is not an SQLite file")


@pytest.mark.parametrize(
    ("file_name", "damage"),
    [("journal.sqlite", corrupt_page), ("journal.sqlite", corrupt_header),
     ("outbox.sqlite", corrupt_header)],
    ids=["journal-page", "journal-header", "outbox-header"],
)
def test_corrupted_database_is_refused_at_start_and_kept(
    tmp_path: Path, register: RegisterSimulator, file_name: str,
    damage: Callable[[Path], None],
) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path, state)
    log = tmp_path / "daemon.log"
    run_day_one(config, register, state, log)
    target = state / file_name
    damage(target)
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    committed = register.committed
    register.reveal_next_day()  # the register has new records waiting for the host

    result = subprocess.run(gatewayd(config, "run"), capture_output=True, text=True,
                            timeout=60, env=dict(os.environ, NOTIFY_SOCKET=""))
    assert result.returncode != 0
    assert str(target) in result.stderr, result.stderr
    assert "corrupt" in result.stderr.lower() or "not a database" in result.stderr
    assert "壊れています" in result.stderr  # the staff line says what happened
    # the damaged file is kept as it was, for the installer (never deleted, never rewritten)
    assert target.exists()
    assert hashlib.sha256(target.read_bytes()).hexdigest() == before
    # no K: the register still holds every record of day 2
    assert register.committed == committed < register.last_record_no
    time.sleep(0.3)
    assert register.committed == committed
