"""``gatewayd tap learn`` and ``gatewayd plan --template``: a template drafted from one capture
passes on other captures of the same layout; a capture's days as plan JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatewayd.cli import main
from gatewayd.sim.print_layouts import day_stream, report_bytes
from gatewayd.tap.capture import read_capture, z_jobs
from gatewayd.tap.checks import Verdict
from gatewayd.tap.learn import field_for_label
from gatewayd.tap.template import parse_template
from tests.tap_fixtures import LAYOUTS, TEMPLATES_DIR, days


def _captures(tmp_path: Path, layout: str, n: int = 3, seed: int = 21) -> list[Path]:
    paths = []
    for i, day in enumerate(days(seed=seed, n=n)):
        path = tmp_path / f"{layout}-{i}.bin"
        path.write_bytes(b"".join(day_stream(layout, day)))
        paths.append(path)
    return paths


@pytest.mark.parametrize(
    ("label", "name"),
    [("現金", "method.CASH"), ("クレジット", "method.CREDIT"), ("10%対象", "base.10"),
     ("8%対象", "base.8R"), ("消費税10%", "tax.10"), ("内消費税(軽減)", "tax.8R"),
     ("合計", "gross"), ("返品", "returns"), ("取消", "voids"), ("入金", "cash_in"),
     ("出金", "cash_out"), ("過不足", "cash_difference"), ("現金過不足", "cash_difference"),
     ("客数", "receipt_count"), ("領収書", None)],
)
def test_labels_installers_see(label: str, name: str | None) -> None:
    assert field_for_label(label) == name


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_template_drafted_from_one_capture_passes_on_the_others(
    layout: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    captures = _captures(tmp_path, layout)
    draft = tmp_path / "draft.toml"
    code = main(["tap", "learn", "--write", str(draft), "--name", "shop1",
                 *map(str, captures)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "   1  " in out  # the decoded report with line numbers
    template = parse_template(draft.read_text(encoding="utf-8"), "draft")
    for name in ("gross", "base.10", "tax.10", "base.8R", "tax.8R", "method.CASH",
                 "method.CREDIT", "returns", "voids", "cash_in", "cash_out", "cash_difference"):
        assert name in template.fields, name
    generated = days(seed=21, n=3)
    for path, day in zip(captures, generated, strict=True):
        (z,) = z_jobs(read_capture(path.read_bytes(), template))
        assert z.judgement.verdict is Verdict.ACCEPTED, z.judgement.reason
        assert z.judgement.report is not None
        assert z.judgement.report.gross == day.gross
        assert f"{path} job" in out and f"{day.business_date.isoformat()} Z {day.z_counter} "\
            "accepted" in out


def test_learn_checks_a_template_and_names_a_held_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = "en-suffix"
    day = days(seed=8, n=1)[0]
    bad = tmp_path / "bad.bin"
    data = report_bytes(layout, day)
    bad.write_bytes(data.replace(f"{day.gross:,}円".encode("cp932"), b"1\x89\x7e", 1))
    code = main(["tap", "learn", "--template", str(TEMPLATES_DIR / f"{layout}.toml"), str(bad)])
    out = capsys.readouterr().out
    assert code == 1
    assert "held" in out and "methods: payment methods sum to" in out


def test_learn_without_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "receipts.bin"
    path.write_bytes(b"\x1b@hello\n\x1dVB\x00")
    assert main(["tap", "learn", str(path)]) == 1
    assert "no job looks like a Z report" in capsys.readouterr().err


def test_plan_reads_a_capture_with_a_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layout = "net-columns"
    generated = days(seed=13, n=2)
    capture = tmp_path / "cap.bin"
    capture.write_bytes(b"".join(j for d in generated for j in day_stream(layout, d)))
    code = main(["plan", str(capture), "--template", str(TEMPLATES_DIR / f"{layout}.toml"),
                 "--store", "0007", "--terminal", "02"])
    assert code == 0
    plans = json.loads(capsys.readouterr().out)
    assert [p["business_date"] for p in plans] == [d.business_date.isoformat() for d in generated]
    for plan, day in zip(plans, generated, strict=True):
        assert plan["status"] == "ready" and plan["granularity"] == "day"
        assert plan["totals"]["gross"] == day.gross
        sales = plan["postings"][0]
        assert sales["ref_number"] == f"POS-0007-02-{day.business_date:%Y%m%d}-S"
        assert sum(d["amount"] for d in sales["details"]) == day.gross
