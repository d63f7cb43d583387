"""A SIGKILL of the daemon in the middle of a transfer, then a restart: every record once.

The daemon runs as a real process (``gatewayd run``) against the register simulator on a
pseudo-terminal; the test kills it with SIGKILL while records are still arriving, starts it
again, and checks the store and the register's commit point afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from gatewayd.sim.journal_gen import generate_journal
from gatewayd.sim.register import RegisterSimulator
from gatewayd.store.journal import JournalStore

CONFIG = """
state_dir = "state"
poll_interval = 0.1
[logging]
level = "warning"
[[registers]]
store_code = "0001"
terminal_no = "01"
port = "{port}"
[web]
port = 0
"""


def start_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, NOTIFY_SOCKET="")
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "gatewayd", "run", "--config",
                                 str(config)], stdout=out, stderr=out, env=env)


def stored(state: Path) -> int:
    if not (state / "journal.sqlite").exists():
        return 0
    store = JournalStore.in_state_dir(state)
    try:
        return store.record_count("0001-01")
    finally:
        store.close()


def test_sigkill_mid_transfer_then_restart_keeps_every_record_once(tmp_path: Path) -> None:
    journal = generate_journal(5, 2, date(2025, 3, 3), receipts_per_day=60)
    # a real line rate (57600 baud) so that the transfer lasts long enough to be cut
    sim = RegisterSimulator(journal, line_rate=57600)
    sim.start_pty(tmp_path / "register")
    config = tmp_path / "gatewayd.toml"
    config.write_text(CONFIG.format(port=tmp_path / "register"), encoding="utf-8")
    state = tmp_path / "state"
    log = tmp_path / "daemon.log"
    total = len(journal)
    proc: subprocess.Popen[bytes] | None = None
    try:
        for round_ in range(2):
            proc = start_daemon(config, log)
            floor = stored(state)
            deadline = time.monotonic() + 60
            while stored(state) < floor + total // 5 and time.monotonic() < deadline:
                time.sleep(0.05)
                assert proc.poll() is None, log.read_text(errors="replace")
            assert stored(state) < total, f"round {round_}: the transfer ended before the kill"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        proc = start_daemon(config, log)
        deadline = time.monotonic() + 90
        while sim.committed < total and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text(errors="replace")
    finally:
        if proc is not None and proc.poll() is None:  # a failed assertion: no orphan daemon
            proc.kill()
            proc.wait()
        sim.stop()
    store = JournalStore.in_state_dir(state)
    records = store.records("0001-01")
    assert [n for n, _ in records] == list(range(1, total + 1))
    assert [raw.decode("cp932") for _, raw in records] == journal
    assert store.conflicts("0001-01") == []
    assert sim.committed == total
    # K never ran ahead of the store: every K names a record already stored at that time
    commits = [int(str(e[1])) for e in sim.events_named("K")]
    assert commits == sorted(commits)
    assert [d.status for d in store.days("0001-01")] == ["accepted", "accepted"]
