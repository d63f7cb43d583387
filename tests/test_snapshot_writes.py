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


def test_under_systemd_the_snapshot_is_written_to_the_runtime_dir_and_read_through_the_link(
    tmp_path: Path,
) -> None:
    """The 30 s refresh goes to /run (tmpfs, RuntimeDirectory=), off the card; readers of
    the state directory (``gatewayd status``) still find it."""
    run = tmp_path / "run"
    run.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    (state / "status.json").write_text('{"n": "old file from before"}', encoding="utf-8")
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG.format(port=tmp_path / "no-register"), encoding="utf-8")
    gateway = Gateway(load_settings(cfg), sync_factory=lambda s, g: None, web=False,
                      runtime_dir=run)
    gateway.start()
    try:
        gateway.publish()
        assert (state / "status.json").is_symlink()
        assert os.readlink(state / "status.json") == str(run / "status.json")
        assert (run / "status.json").is_file() and not (run / "status.json").is_symlink()
        assert read_snapshot(state)["registers"].keys() == {"0001-01"}
        assert sorted(os.listdir(state)).count("status.json") == 1
        assert not [n for n in os.listdir(state) if n.startswith(".status.")]
    finally:
        gateway.stop()


def test_the_link_is_made_once_and_a_reboot_leaves_no_snapshot_not_an_error(
    tmp_path: Path,
) -> None:
    run, state = tmp_path / "run", tmp_path / "state"
    run.mkdir()
    state.mkdir()
    assert snapshot_module.link_snapshot(state, run) is True
    before = os.lstat(state / "status.json")
    assert snapshot_module.link_snapshot(state, run) is False  # next start: no write
    assert os.lstat(state / "status.json").st_ino == before.st_ino
    # /run is empty after a reboot: the link leads nowhere until the daemon writes
    assert read_snapshot(state) == {}
    assert snapshot_module.snapshot_is_linked(state)
    write_snapshot(run, {"n": 3})
    assert read_snapshot(state)["n"] == 3
    # a cut between making the link aside and renaming it leaves a link named like a temp
    os.symlink(run / "status.json", state / ".status.link.tmp")
    assert remove_stale_temps(state) == 1
    assert not os.path.lexists(state / ".status.link.tmp")


def test_a_runtime_dir_that_cannot_be_linked_keeps_the_snapshot_in_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG.format(port=tmp_path / "no-register"), encoding="utf-8")
    gateway = Gateway(load_settings(cfg), sync_factory=lambda s, g: None, web=False,
                      runtime_dir=run)

    def refuse(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(snapshot_module.os, "symlink", refuse)
    gateway.start()
    try:
        gateway.publish()
        state = gateway.state_dir
        assert gateway.snapshot_dir == state
        assert (state / "status.json").is_file() and not (state / "status.json").is_symlink()
        assert read_snapshot(state)["registers"].keys() == {"0001-01"}
        assert not (run / "status.json").exists()
    finally:
        gateway.stop()


def test_runtime_directory_comes_from_systemds_environment() -> None:
    from gatewayd.cli.run import runtime_directory

    assert runtime_directory({}) is None
    assert runtime_directory({"RUNTIME_DIRECTORY": ""}) is None
    assert runtime_directory({"RUNTIME_DIRECTORY": "/run/gatewayd"}) == Path("/run/gatewayd")
    assert runtime_directory({"RUNTIME_DIRECTORY": "/run/a:/run/b"}) == Path("/run/a")
