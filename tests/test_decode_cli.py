"""``gatewayd decode FILE``: typed records, days with their checks and totals, as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from journal_fixtures import as_bytes, set_field, small_day, two_days

from gatewayd.cli import main
from gatewayd.sim.journal_gen import generate_journal

DATA = Path(__file__).parent / "data"


def decode(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["decode", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def write(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "journal.txt"
    path.write_bytes(as_bytes(lines))
    return str(path)


def test_three_day_file_records_days_recloses(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = decode(capsys, str(DATA / "journal_three_days.txt"))
    assert code == 1  # day 2 is held
    assert [(d["business_date"], d["status"]) for d in out["days"]] == [
        ("2025-01-10", "accepted"), ("2025-01-11", "held"), ("2025-01-12", "open")]
    first, second, third = out["days"]
    assert first["close_no"] == 2 and first["recloses"] == [22]
    assert first["totals"]["gross"] == 1510 and first["totals"]["tax"] == 132
    assert first["totals"]["by_class"] == {"10": 1210, "8R": 300, "0": 0, "EX": 0}
    assert first["totals"]["by_method"]["CREDIT"] == 1100
    assert first["totals"]["by_direction"] == {"IN": 0, "OUT": 540}
    assert second["reason"] == "check 2: receipt 4 X tax 32 ≠ tax_total 33 (records 24, 30)"
    assert second["failures"] == [{"check": "check 2", "message": second["reason"],
                                   "records": [24, 30]}]
    assert third["reason"] is None and third["failures"] == []
    assert out["recloses"] == [{"number": 22, "business_date": "2025-01-10", "close_no": 2,
                                "status": "same", "target_record_no": 21, "reason": None,
                                "failures": []}]
    assert out["summary"] == {"records": 53, "malformed": 0,
                              "days": {"accepted": 1, "held": 1, "open": 1}}
    records = out["records"]
    assert len(records) == 53
    assert records[0] == {"line": 1, "number": 1, "type": "O", "business_date": "2025-01-10",
                          "timestamp": "2025-01-10T09:00:00", "staff_code": "1001",
                          "opening_cash": 30000}
    assert records[2]["name"] == "おにぎり 鮭" and records[2]["qty"] == "2"
    assert records[2]["tax_class"] == "8R"
    assert records[6] == {"line": 7, "number": 7, "type": "P", "receipt_no": 1,
                          "method": "CASH", "brand": "", "tendered": 1000, "amount": 410,
                          "change": 590}
    z = records[20]
    assert z["type"] == "Z" and z["class_totals"] == {"10": 1210, "8R": 300, "0": 0, "EX": 0}
    assert z["movement_totals"] == {"IN": 0, "OUT": 540}


def test_all_accepted_exits_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out = decode(capsys, write(tmp_path, two_days()), "--days-only")
    assert code == 0
    assert "records" not in out
    assert [d["status"] for d in out["days"]] == ["accepted", "accepted"]


def test_malformed_record_is_shown_with_its_error(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    lines = set_field(small_day(), 12, 4, "CARD")
    code, out = decode(capsys, write(tmp_path, lines))
    assert code == 1
    bad = out["records"][11]
    assert bad == {"line": 12, "number": 12, "type": "P",
                   "error": "record 12 (P): field 4 (method) 'CARD' is not one of CASH, "
                            "CREDIT, EMONEY, QR, GIFT, POINT, OTHER",
                   "raw": lines[11]}
    assert out["days"][0]["reason"].startswith("format: record 12 (P)")
    assert out["summary"]["malformed"] == 1


def test_closed_dates_option(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write(tmp_path, small_day())
    code, out = decode(capsys, path, "--closed", "2025-01-10", "--closed", "20250109")
    assert code == 1
    assert out["days"][0]["reason"] == ("check 1: business date 2025-01-10 already closed "
                                        "before these records (records 1, 21)")


def test_after_option_and_head_fragment(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    path = write(tmp_path, two_days()[5:])
    code, out = decode(capsys, path, "--days-only")
    assert code == 0
    assert out["head"] == {"first_record_no": 6, "last_record_no": 21,
                           "business_date": "2025-01-10"}
    code, out = decode(capsys, path, "--days-only", "--after", "5")
    assert code == 1 and out["head"] is None and out["strays"][:2] == [6, 7]


def test_gap_is_listed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    lines = [ln for ln in two_days() if not ln.startswith("22\t")]
    code, out = decode(capsys, write(tmp_path, lines), "--days-only")
    assert code == 1
    assert out["breaks"] == [{"previous": 21, "number": 23, "missing": 1}]


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["decode", str(tmp_path / "nope.txt")]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "ジャーナルファイル" in err


def test_bad_closed_date_is_an_argument_error(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["decode", write(tmp_path, small_day()), "--closed", "2025-02-30"])
    assert info.value.code == 2
    assert "not a date" in capsys.readouterr().err


def test_command_line_reads_stdin_and_writes_utf8(tmp_path: Path) -> None:
    journal = generate_journal(4, 2, date(2025, 3, 1), receipts_per_day=30)
    done = subprocess.run([sys.executable, "-m", "gatewayd", "decode", "-"],
                          input=as_bytes(journal), capture_output=True, timeout=60,
                          env={"PYTHONIOENCODING": "ascii", "PATH": "/usr/bin:/bin"},
                          check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.decode("utf-8"))
    assert [d["status"] for d in out["days"]] == ["accepted", "accepted"]
    names = {r.get("name") for r in out["records"] if r["type"] == "L"}
    assert any(name and any(ord(c) > 0x3000 for c in name) for name in names)
