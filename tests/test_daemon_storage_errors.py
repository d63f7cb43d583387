"""A full disk while records arrive: no K, and the page's recent errors say why."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from gatewayd.backend import DaemonBackend
from gatewayd.config import load_settings
from gatewayd.daemon import Gateway
from gatewayd.errors import DiskFull
from gatewayd.sim.journal_gen import generate_journal
from gatewayd.sim.register import RegisterSimulator
from gatewayd.web.model import ErrorSource

CONFIG = """
state_dir = "state"
poll_interval = 0.1
[[registers]]
store_code = "0001"
terminal_no = "01"
port = "{port}"
"""


def wait(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_disk_full_holds_commits_and_shows_on_the_page(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    journal = generate_journal(2, 1, date(2025, 6, 2), receipts_per_day=5)
    sim = RegisterSimulator(journal)
    sim.start_pty(tmp_path / "register")
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG.format(port=tmp_path / "register"), encoding="utf-8")
    gateway = Gateway(load_settings(cfg), sync_factory=lambda s, g: None, web=False)
    real_store = gateway.store.store_records

    def full(*args: Any, **kwargs: Any) -> Any:
        raise DiskFull("state/journal.sqlite: disk full: database or disk is full")

    monkeypatch.setattr(gateway.store, "store_records", full)
    gateway.start()
    try:
        backend = DaemonBackend(gateway)
        assert wait(lambda: any(e.source is ErrorSource.STORAGE
                                for e in backend.overview().errors))
        entry = next(e for e in backend.overview().errors if e.source is ErrorSource.STORAGE)
        assert entry.register_id == "0001-01" and "disk full" in entry.message
        assert "いっぱい" in entry.staff_message
        assert sim.committed == 0 and not sim.events_named("K")  # the register keeps them

        monkeypatch.setattr(gateway.store, "store_records", real_store)  # space is back
        assert wait(lambda: sim.committed == len(journal))
        assert wait(lambda: not any(e.source is ErrorSource.STORAGE and e.register_id
                                    for e in backend.overview().errors))
        assert gateway.store.record_count("0001-01") == len(journal)
    finally:
        gateway.stop()
        sim.stop()
