"""`gatewayd status` shows per register the last record and per day status, totals, reason."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from gatewayd.cli import main
from gatewayd.config import load_settings
from gatewayd.ingest import RegisterIngest
from gatewayd.protocol.records import BusinessDay
from gatewayd.sim.journal_gen import generate_journal
from gatewayd.status_cli import render_text
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
