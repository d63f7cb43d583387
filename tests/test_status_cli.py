"""`gatewayd status` shows per register the last record and per day status, totals, reason."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from gatewayd.cli import main
from gatewayd.cli.status import render_text
from gatewayd.config import load_settings
from gatewayd.errors import StorageError
from gatewayd.ingest import RegisterIngest
from gatewayd.protocol.records import BusinessDay
from gatewayd.sim.journal_gen import generate_journal
from gatewayd.store.journal import JournalStore

CONFIG = """
state_dir = "state"
[[registers]]
store_code = "0001"
terminal_no = "01"
store_name = "渋谷店"
port = "/dev/null"
"""


class Quiet:
    def day_accepted(self, register: object, day: BusinessDay) -> None: ...

    def day_held(self, register: object, business_date: date, reason: str) -> None: ...

    def reclose(self, register: object, business_date: date, close_no: int) -> None: ...


def test_status_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    settings = load_settings(cfg)
    lines = generate_journal(3, 2, date(2025, 1, 10), receipts_per_day=8)
    # break the second day's Z total: held with a check 3 reason
    z = max(i for i, line in enumerate(lines) if "\tZ\t" in line)
    fields = lines[z].split("\t")
    fields[6] = str(int(fields[6]) + 5)
    lines[z] = "\t".join(fields)
    store = JournalStore.in_state_dir(settings.state_dir)
    ingest = RegisterIngest(store, settings.registers[0], Quiet())  # type: ignore[arg-type]
    ingest.store_records(list(enumerate((line.encode("cp932") for line in lines), start=1)))
    ingest.process()
    store.close()

    assert main(["status", "--config", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert f"last record {len(lines)}" in text
    assert "2025-01-10  受付済" in text
    assert "2025-01-11  保留" in text and "reason: check 3" in text

    assert main(["status", "--config", str(cfg), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    reg = data["registers"][0]
    assert reg["last_record_no"] == len(lines)
    days = {d["business_date"]: d for d in reg["days"]}
    assert days["2025-01-10"]["status"] == "accepted" and days["2025-01-10"]["gross"] > 0
    assert days["2025-01-11"]["status"] == "held"
    assert days["2025-01-11"]["reason"].startswith("check 3")


def test_status_with_a_broken_config_says_so(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG.replace('"0001"', '"00 01"'), encoding="utf-8")
    assert main(["status", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "registers[0].store_code" in err and "設定ファイル" in err


def test_stale_snapshot_is_flagged() -> None:
    old = {"snapshot_time": "2025-01-10T10:00:00+00:00", "daemon": "running", "registers": []}
    assert "STALE" in render_text(old)
    from datetime import UTC, datetime

    fresh = dict(old, snapshot_time=datetime.now(UTC).isoformat(timespec="seconds"))
    assert "STALE" not in render_text(fresh)


def _stored_state(tmp_path: Path) -> Path:
    """A config with two registers, only the first of which has anything stored."""
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG + CONFIG[CONFIG.index("[[registers]]"):].replace('"01"', '"02"'),
                   encoding="utf-8")
    settings = load_settings(cfg)
    store = JournalStore.in_state_dir(settings.state_dir)
    ingest = RegisterIngest(store, settings.registers[0], Quiet())  # type: ignore[arg-type]
    lines = generate_journal(3, 1, date(2025, 1, 10), receipts_per_day=5)
    ingest.store_records(list(enumerate([line.encode("cp932") for line in lines], start=1)))
    ingest.process()
    store.close()
    return cfg


def _files(directory: Path) -> dict[str, tuple[bytes, int, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
            for p in sorted(directory.iterdir())}


def _assert_unchanged(directory: Path, before: dict[str, tuple[bytes, int, int]]) -> None:
    """Every file as it was (bytes, mtime, mode); new files only SQLite's companions that
    any reader of a WAL database creates when absent, with no data in the -wal."""
    after = _files(directory)
    for name, was in before.items():
        assert after.get(name) == was, name
    new = set(after) - set(before)
    assert new <= {"journal.sqlite-wal", "journal.sqlite-shm"}, new
    assert not after.get("journal.sqlite-wal", (b"",))[0]


def test_status_changes_nothing_in_the_state_dir(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _stored_state(tmp_path)
    state = tmp_path / "state"
    before = _files(state)
    assert main(["status", "--config", str(cfg)]) == 0
    assert main(["status", "--config", str(cfg), "--json"]) == 0
    out = capsys.readouterr().out
    assert "register 0001-02" in out and "no closed day yet" in out
    _assert_unchanged(state, before)  # not even a register row added for 0001-02


def test_status_before_the_daemon_ever_ran_creates_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    assert main(["status", "--config", str(cfg)]) == 0
    assert "no closed day yet" in capsys.readouterr().out
    assert not (tmp_path / "state").exists()


def _read_only_command(directory: Path, command: list[str]) -> list[str]:
    """``command`` with ``directory`` unwritable even for root: a read-only bind mount in a
    private mount namespace; for other users the write bits are enough."""
    for path in directory.rglob("*"):
        path.chmod(0o555 if path.is_dir() else 0o444)
    directory.chmod(0o555)
    if os.geteuid() != 0:
        return command
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("root without mount namespaces: cannot make a read-only copy")
    return ["unshare", "-m", "sh", "-c",
            'mount --bind -o ro "$0" "$0" && touch "$0/probe" 2>/dev/null && exit 99; exec "$@"',
            str(directory), *command]


def test_status_reads_a_read_only_copy(tmp_path: Path) -> None:
    cfg = _stored_state(tmp_path)
    top = tmp_path / "copy"
    copy = top / "state"
    shutil.copytree(tmp_path / "state", copy)
    ro_cfg = top / "gatewayd.toml"
    ro_cfg.write_text(cfg.read_text(encoding="utf-8").replace('"state"', f'"{copy}"'),
                      encoding="utf-8")
    command = _read_only_command(top, [sys.executable, "-m", "gatewayd", "status",
                                       "--config", str(ro_cfg)])
    before = _files(copy)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        assert "2025-01-10  受付済" in proc.stdout
        assert _files(copy) == before  # and not even SQLite's companions could be made
    finally:
        for path in (top, *top.rglob("*")):
            path.chmod(0o755)


def test_a_read_only_store_refuses_writes(tmp_path: Path) -> None:
    cfg = _stored_state(tmp_path)
    store = JournalStore.in_state_dir(load_settings(cfg).state_dir, read_only=True)
    try:
        with pytest.raises(StorageError):
            store.ensure_register("0001-03", "0001", "03")
        assert store.register_ids() == ["0001-01"]
    finally:
        store.close()


def test_status_reads_the_snapshot_through_the_runtime_link_and_after_a_reboot_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under systemd the snapshot sits in /run/gatewayd, linked from the state directory: a
    reboot empties /run, and until the daemon writes again the link leads nowhere."""
    from gatewayd.store.snapshot import link_snapshot, write_snapshot

    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    settings = load_settings(cfg)
    run = tmp_path / "run"
    run.mkdir()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    link_snapshot(settings.state_dir, run)

    assert main(["status", "--config", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "daemon snapshot: none since the box started" in text
    assert "has not run yet" not in text

    write_snapshot(run, {"daemon": "running", "registers": {"0001-01": {"link": "up"}}})
    assert main(["status", "--config", str(cfg), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["snapshot_linked"] is True and data["daemon"] == "running"
    assert data["registers"][0]["link"] == "up"
