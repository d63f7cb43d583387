"""The status snapshot reaches the SD card only when it says something new.

bench/sd_writes.py measured an idle box writing ~650 MiB a day to its card, nearly all of it
the snapshot: rewritten and fsync'd every 5 s, each fsync an ext4 journal commit. Now it is
written when it changed (the printer's ``last_poll`` aside) or every SNAPSHOT_REFRESH
seconds, without fsync, and a power cut's leftover temporary files are removed at start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import gatewayd.daemon as daemon_module
import gatewayd.store.snapshot as snapshot_module
from gatewayd.config import load_settings
from gatewayd.daemon import SNAPSHOT_REFRESH, Gateway
from gatewayd.store.snapshot import read_snapshot, remove_stale_temps, write_snapshot

CONFIG = """
state_dir = "state"
[[registers]]
store_code = "0001"
terminal_no = "01"
port = "{port}"
"""


def gateway_at(tmp_path: Path) -> Gateway:
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG.format(port=tmp_path / "no-register"), encoding="utf-8")
    return Gateway(load_settings(cfg), sync_factory=lambda s, g: None, web=False)


def test_snapshot_is_written_when_it_changes_or_its_refresh_is_due(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = gateway_at(tmp_path)
    clock = [1000.0]
    gateway.monotonic = lambda: clock[0]
    data: dict[str, Any] = {"registers": {}, "n": 1,
                            "devices": {"condition": "ready", "last_poll": "t0"}}
    monkeypatch.setattr(gateway, "status_data", lambda: dict(data))
    writes: list[dict[str, Any]] = []
    real = daemon_module.write_snapshot

    def counted(state_dir: Path, snapshot: dict[str, Any]) -> None:
        writes.append(snapshot)
        real(state_dir, snapshot)

    monkeypatch.setattr(daemon_module, "write_snapshot", counted)
    try:
        gateway.publish()
        assert len(writes) == 1 and read_snapshot(gateway.state_dir)["n"] == 1
        clock[0] += 5
        data["devices"] = {"condition": "ready", "last_poll": "t1"}  # only the poll time
        gateway.publish()
        assert len(writes) == 1
        clock[0] += 5
        data["devices"] = {"condition": "offline", "last_poll": "t2"}  # news
        gateway.publish()
        assert len(writes) == 2
        assert read_snapshot(gateway.state_dir)["devices"]["condition"] == "offline"
        clock[0] += SNAPSHOT_REFRESH - 0.5
        gateway.publish()
        assert len(writes) == 2
        clock[0] += 0.5  # the refresh is due: "time" must show the daemon alive
        gateway.publish()
        assert len(writes) == 3
    finally:
        gateway.store.close()


def test_snapshot_write_does_not_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr(snapshot_module.os, "fsync", lambda fd: synced.append(fd))
    write_snapshot(tmp_path, {"n": 1})
    assert synced == [] and read_snapshot(tmp_path)["n"] == 1


def test_a_power_cuts_temporary_files_are_removed_at_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    for name in (".status.a1b2c3.tmp", ".status.zz.tmp"):
        (state / name).write_text('{"half": ', encoding="utf-8")
    (state / "status.json").write_text('{"n": 1}', encoding="utf-8")
    (state / "other.tmp").write_text("not ours", encoding="utf-8")
    gateway = gateway_at(tmp_path)
    gateway.start()
    try:
        names = sorted(os.listdir(state))
        assert not [n for n in names if n.startswith(".status.")]
        assert "other.tmp" in names
    finally:
        gateway.stop()
    assert remove_stale_temps(state) == 0
