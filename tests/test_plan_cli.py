"""``gatewayd plan JOURNAL`` (freee-mapping.md section 8) on small hand-written journals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gatewayd.cli import main

ZERO_METHODS = "CASH=0;CREDIT=0;EMONEY=0;QR=0;GIFT=0;POINT=0;OTHER=0"


def journal(*rows: str, start: int = 1) -> bytes:
    """Rows with fields separated by spaces (no field holds a space here) → CP932 lines."""
    out = []
    for i, row in enumerate(rows, start=start):
        out.append("\t".join([str(i), *row.split(" ")]))
    return ("\n".join(out) + "\n").encode("cp932")


# day 1 (records 1-13): two classes, split payment, a TRAINING receipt, a movement, short by 100
DAY1 = [
    "O 20250110 20250110090000 S01 30000",
    "T 1 SALE - 20250110100000 S01 IN",
    "L 1 1 01 A1 ボールペン 1 1100 1100 10",
    "L 1 2 02 B1 おにぎり 3 180 540 8R",
    "X 1 10 1100 100 1100",
    "X 1 8R 540 40 540",
    "P 1 CASH - 1000 1000 0",
    "P 1 CREDIT VISA 640 640 0",
    "E 1 1640 140",
    "T 2 TRAINING - 20250110110000 S01 IN",
    "L 2 1 01 A1 ボールペン 1 1100 1100 10",
    "X 2 10 1100 100 1100",
    "P 2 CASH - 1100 1100 0",
    "E 2 1100 100",
    "M 1 IN R02 - 5000 20250110120000 S01",
    "C 36000 35900 -100",
    "Z 20250110 1 20250110220000 1 1640 10=1100;8R=540;0=0;EX=0 "
    "CASH=1000;CREDIT=640;EMONEY=0;QR=0;GIFT=0;POINT=0;OTHER=0 IN=5000;OUT=0 -100 1",
]


def day(date: str, first: int, gross: int = 0, zgross: int | None = None) -> list[str]:
    """A day with one CASH sale of ``gross`` (class EX), records from ``first``."""
    z = gross if zgross is None else zgross
    return [
        f"O {date} {date}090000 S01 0",
        f"T {first} SALE - {date}100000 S01 IN",
        f"L {first} 1 09 S1 切手 1 {gross} {gross} EX",
        f"X {first} EX {gross} 0 {gross}",
        f"P {first} CASH - {gross} {gross} 0",
        f"E {first} {gross} 0",
        f"C {gross} {gross} 0",
        f"Z {date} 1 {date}220000 1 {z} 10=0;8R=0;0=0;EX={z} "
        f"CASH={gross};CREDIT=0;EMONEY=0;QR=0;GIFT=0;POINT=0;OTHER=0 IN=0;OUT=0 0 FIRST",
    ]


def numbered(rows: list[str]) -> list[str]:
    """Fill each day's first_record_no (FIRST) with the number of its O."""
    out, o_no = [], 0
    for i, row in enumerate(rows, start=1):
        if row.startswith("O "):
            o_no = i
        out.append(row.replace(" FIRST", f" {o_no}"))
    return out


RECLOSE_OLD = (
    "Z 20241231 2 20250111085000 12 98765 10=50000;8R=48765;0=0;EX=0 "
    "CASH=60000;CREDIT=38765;EMONEY=0;QR=0;GIFT=0;POINT=0;OTHER=0 IN=0;OUT=0 0 777"
)
RECLOSE_DAY1 = (
    "Z 20250110 2 20250111085500 1 1640 10=1100;8R=540;0=0;EX=0 "
    "CASH=1000;CREDIT=640;EMONEY=0;QR=0;GIFT=0;POINT=0;OTHER=0 IN=5000;OUT=0 -100 1"
)

CONFIG = """
[mapping]
section = "本店"

[mapping.movements.R02]
walletable = "普通預金"

[[registers]]
store_code = "0001"
terminal_no = "01"
port = "/dev/ttyUSB0"
section = "渋谷店"
tags = ["POS"]
"""


def run_plan(tmp_path: Path, rows: list[str], *args: str, config: str | None = None) -> Any:
    path = tmp_path / "journal.txt"
    path.write_bytes(journal(*rows))
    argv = ["plan", str(path), *args]
    if config is not None:
        cfg = tmp_path / "gatewayd.toml"
        cfg.write_text(config, encoding="utf-8")
        argv += ["--config", str(cfg)]
    return main(argv)


def output(capsys: pytest.CaptureFixture[str]) -> Any:
    return json.loads(capsys.readouterr().out)


def detail(
    account: str, tax: str, amount: int, vat: int | None, item: str | None, text: str
) -> Any:
    return {
        "account_item": account,
        "tax": tax,
        "amount": amount,
        "vat": vat,
        "item": item,
        "section": "渋谷店",
        "tags": ["POS"],
        "description": text,
    }


DAY1_PLAN = {
    "store_code": "0001",
    "terminal_no": "01",
    "business_date": "2025-01-10",
    "close_no": 1,
    "status": "ready",
    "reason": None,
    "granularity": "summary",
    "totals": {
        "gross": 1640,
        "tax": 140,
        "by_class": {"10": 1100, "8R": 540, "0": 0, "EX": 0},
        "by_method": {
            "CASH": 1000,
            "CREDIT": 640,
            "EMONEY": 0,
            "QR": 0,
            "GIFT": 0,
            "POINT": 0,
            "OTHER": 0,
        },
    },
    "postings": [
        {
            "ref_number": "POS-0001-01-20250110-S-CASH",
            "kind": "deal",
            "type": "income",
            "issue_date": "2025-01-10",
            "due_date": None,
            "partner": None,
            "details": [
                detail(
                    "売上高", "課税売上10%", 671, 61, "【POS Regi】現金", "店舗0001 2025-01-10 現金"
                ),
                detail(
                    "売上高",
                    "課税売上8%（軽）",
                    329,
                    24,
                    "【POS Regi】現金",
                    "店舗0001 2025-01-10 現金",
                ),
            ],
            "payments": [{"date": "2025-01-10", "walletable": "現金", "amount": 1000}],
            "transfer": None,
        },
        {
            "ref_number": "POS-0001-01-20250110-S-CREDIT",
            "kind": "deal",
            "type": "income",
            "issue_date": "2025-01-10",
            "due_date": None,
            "partner": None,
            "details": [
                detail(
                    "売上高",
                    "課税売上10%",
                    429,
                    39,
                    "【POS Regi】クレジット",
                    "店舗0001 2025-01-10 クレジット",
                ),
                detail(
                    "売上高",
                    "課税売上8%（軽）",
                    211,
                    16,
                    "【POS Regi】クレジット",
                    "店舗0001 2025-01-10 クレジット",
                ),
            ],
            "payments": [],
            "transfer": None,
        },
        {
            "ref_number": "POS-0001-01-20250110-D",
            "kind": "deal",
            "type": "expense",
            "issue_date": "2025-01-10",
            "due_date": None,
            "partner": None,
            "details": [detail("雑損失", "対象外", 100, 0, None, "店舗0001 現金過不足")],
            "payments": [{"date": "2025-01-10", "walletable": "現金", "amount": 100}],
            "transfer": None,
        },
        {
            "ref_number": "POS-0001-01-20250110-M1",
            "kind": "transfer",
            "type": None,
            "issue_date": "2025-01-10",
            "due_date": None,
            "partner": None,
            "details": [],
            "payments": [],
            "transfer": {
                "date": "2025-01-10",
                "from": "普通預金",
                "to": "現金",
                "amount": 5000,
                "description": "R02 POS-0001-01-20250110-M1",
            },
        },
    ],
}


def test_small_journal_section_8_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_plan(tmp_path, DAY1, config=CONFIG) == 0
    assert output(capsys) == [DAY1_PLAN]


def test_dates_in_order_of_first_close_with_held_and_not_in_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = numbered(
        [
            *DAY1,
            RECLOSE_OLD,  # a day whose records are not in the file
            RECLOSE_DAY1,  # day 1 closed again: close_no 2
            *day("20250111", 3, 500),
            *day("20250112", 4, 700, zgross=701),  # Z disagrees: check 3
            *day("20250110", 5, 100),  # 2025-01-10 closed again with close_no 1: check 1
        ]
    )
    assert run_plan(tmp_path, rows, config=CONFIG) == 0
    plans = output(capsys)
    assert [(p["business_date"], p["close_no"], p["status"]) for p in plans] == [
        ("2025-01-10", 2, "ready"),
        ("2024-12-31", 2, "held"),
        ("2025-01-11", 1, "ready"),
        ("2025-01-12", 1, "held"),
    ]
    assert plans[0] == {**DAY1_PLAN, "close_no": 2}
    old = plans[1]
    assert old["reason"] == "records not in this file" and old["postings"] == []
    assert old["granularity"] == "summary"
    assert old["totals"] == {
        "gross": 98765,
        "tax": None,
        "by_class": {"10": 50000, "8R": 48765, "0": 0, "EX": 0},
        "by_method": {
            "CASH": 60000,
            "CREDIT": 38765,
            "EMONEY": 0,
            "QR": 0,
            "GIFT": 0,
            "POINT": 0,
            "OTHER": 0,
        },
    }
    assert [q["ref_number"] for q in plans[2]["postings"]] == ["POS-0001-01-20250111-S-CASH"]
    held = plans[3]
    assert held["reason"].startswith("check 3") and held["postings"] == []
    assert held["totals"]["gross"] == 700 and held["totals"]["tax"] == 0


def test_unfinished_day_has_no_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = numbered([*DAY1, "O 20250111 20250111090000 S01 0", *day("20250112", 2, 300)])
    assert run_plan(tmp_path, rows, "--store", "0001", "--terminal", "01") == 0
    plans = output(capsys)
    # the unfinished day (an O before its Z) is held but has no object; the next day is fine
    assert [(p["business_date"], p["status"]) for p in plans] == [
        ("2025-01-10", "ready"),
        ("2025-01-12", "ready"),
    ]
    assert "2025-01-11" not in {p["business_date"] for p in plans}


def test_defaults_without_config_and_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_plan(tmp_path, DAY1, "--store", "S9", "--terminal", "T1") == 0
    (plan,) = output(capsys)
    assert plan["store_code"] == "S9" and plan["terminal_no"] == "T1"
    refs = [q["ref_number"] for q in plan["postings"]]
    assert refs[-1] == "POS-S9-T1-20250110-M1"
    m1 = plan["postings"][-1]
    assert m1["kind"] == "deal" and m1["details"][0]["account_item"] == "仮受金"
    assert m1["details"][0]["section"] is None


def test_mapping_only_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = '[mapping]\ngranularity = "day"\nsection = "本店"\n'
    assert run_plan(tmp_path, DAY1, "--store", "0001", "--terminal", "01", config=config) == 0
    (plan,) = output(capsys)
    assert plan["granularity"] == "day"
    # the cash difference and the IN movement (default rule: 仮受金, 対象外) fold into S
    (deal,) = plan["postings"]
    assert deal["ref_number"] == "POS-0001-01-20250110-S"
    assert deal["details"][0]["section"] == "本店"
    assert [
        (d["account_item"], d["tax"], d["amount"], d["vat"], d["item"], d["description"])
        for d in deal["details"][-2:]
    ] == [
        ("雑損失", "対象外", -100, 0, None, "店舗0001 現金過不足"),
        ("仮受金", "対象外", 5000, 0, None, "R02"),
    ]
    assert all(d["section"] == "本店" for d in deal["details"])
    assert sum(d["amount"] for d in deal["details"]) == 1640 - 100 + 5000
    # CASH 1000 + difference −100 + IN 5000 into the drawer; CREDIT stays unsettled
    assert deal["payments"] == [{"date": "2025-01-10", "walletable": "現金", "amount": 5900}]


def test_options_pick_the_configured_register_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two = (
        CONFIG + '\n[[registers]]\nstore_code = "0002"\nterminal_no = "01"\nport = "/dev/ttyUSB1"\n'
    )
    assert run_plan(tmp_path, DAY1, "--store", "0002", "--terminal", "01", config=two) == 0
    (plan,) = output(capsys)
    assert plan["postings"][0]["details"][0]["section"] == "本店"
    assert plan["postings"][0]["details"][0]["tags"] == []


@pytest.mark.parametrize(
    ("args", "config", "words"),
    [
        ((), None, "give --store CODE --terminal NO"),
        (("--store", "0001"), None, "give both or neither"),
        (("--terminal", "01"), CONFIG, "give both or neither"),
        ((), '[mapping]\ngranularity = "day"\n', "give --store CODE --terminal NO"),
        (
            (),
            CONFIG + '\n[[registers]]\nstore_code = "2"\nterminal_no = "1"\nport = "/dev/x"\n',
            "the configuration has 2 registers",
        ),
        (("--store", "00-1", "--terminal", "01"), None, "1 to 8 ASCII letters or digits"),
        ((), '[mapping]\ngranularity = "hourly"\n', "mapping.granularity"),
        ((), "[mapping]\n[other]\n", "registers"),
    ],
)
def test_clear_errors(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    config: str | None,
    words: str,
) -> None:
    assert run_plan(tmp_path, DAY1, *args, config=config) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert words in captured.err


def test_missing_journal_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", str(tmp_path / "nope.txt"), "--store", "1", "--terminal", "1"])
    assert code == 2
    assert "cannot read the journal" in capsys.readouterr().err


def test_file_starting_inside_a_day(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The first records belong to a day whose O is not in the file: its close is held."""
    path = tmp_path / "tail.txt"
    tail = DAY1[-3:]  # M, C, Z of day 1, numbered 15-17 as in the full journal
    nxt = [r.replace(" FIRST", " 18") for r in day("20250111", 2, 250)]
    path.write_bytes(journal(*tail, *nxt, start=15))
    assert main(["plan", str(path), "--store", "0001", "--terminal", "01"]) == 0
    first, second = output(capsys)
    assert (first["business_date"], first["status"], first["reason"]) == (
        "2025-01-10",
        "held",
        "records not in this file",
    )
    assert first["totals"]["gross"] == 1640 and first["totals"]["tax"] is None
    assert (second["business_date"], second["status"]) == ("2025-01-11", "ready")
