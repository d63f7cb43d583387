"""Templates, Z report fields, checks and the tapped day's plan, on the three layouts."""

from __future__ import annotations

import dataclasses

import pytest

from gatewayd.errors import ConfigError
from gatewayd.protocol.records import Method, TaxClass
from gatewayd.sim.print_layouts import PrintDay, day_stream, report_bytes
from gatewayd.sync.mapping_settings import MappingSettings, MethodRule
from gatewayd.sync.plan import DayPlan, PostingKind
from gatewayd.tap.amounts import parse_amount
from gatewayd.tap.checks import TapHistory, Verdict, judge
from gatewayd.tap.escpos import split_jobs
from gatewayd.tap.posting import plan_report
from gatewayd.tap.report import JobKind, read_job
from gatewayd.tap.template import Template, parse_template
from tests.tap_fixtures import LAYOUTS, days, shipped_template


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("¥1,234", 1234), ("1,234円", 1234), ("-1,234", -1234), ("△1,234", -1234),
        ("▲1,234円", -1234), ("-¥1,234", -1234), ("¥-1,234", -1234), ("1,234-", -1234),
        ("(1,234)", -1234), ("￥１，２３４", 1234), ("0", 0), ("12", 12), ("1234567", 1234567),
        ("abc", None), ("1,23", None), ("", None), ("¥", None), ("1,2345", None),
    ],
)
def test_amount_forms(text: str, value: int | None) -> None:
    assert parse_amount(text) == value


def _judge_all(template: Template, stream: bytes, history: TapHistory | None = None):  # type: ignore[no-untyped-def]
    h = history or TapHistory()
    out = []
    for job in split_jobs([(0.0, stream)]):
        reading = read_job(template, job.data)
        j = judge(reading, template, h)
        h = j.history
        out.append((reading, j))
    return out, h


def _expect_figures(day: PrintDay, plan: DayPlan) -> None:
    t = plan.totals
    assert t.gross == day.gross
    assert t.by_class[TaxClass.STANDARD] == day.class_gross(TaxClass.STANDARD)
    assert t.by_class[TaxClass.REDUCED] == day.class_gross(TaxClass.REDUCED)
    assert t.tax == day.class_tax(TaxClass.STANDARD) + day.class_tax(TaxClass.REDUCED)
    for m in (Method.CASH, Method.CREDIT, Method.EMONEY, Method.QR):
        assert t.by_method[m] == day.method_total(m)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_reads_every_z_and_ignores_the_rest(layout: str) -> None:
    template = shipped_template(layout)
    generated = days(seed=11)
    stream = b"".join(job for d in generated for job in day_stream(layout, d))
    results, history = _judge_all(template, stream)
    z = [(r, j) for r, j in results if r.kind is JobKind.Z_REPORT]
    assert len(z) == len(generated)
    kinds = {r.kind for r, _ in results}
    assert JobKind.X_REPORT in kinds and JobKind.TRAINING in kinds and JobKind.OTHER in kinds
    settings = MappingSettings(methods={Method.CREDIT: MethodRule(walletable="カード売掛")})
    for day, (_r, j) in zip(generated, z, strict=True):
        assert j.verdict is Verdict.ACCEPTED, j.reason
        assert j.report is not None
        assert j.report.business_date == day.business_date
        assert j.report.z_counter == day.z_counter
        plan = plan_report(j.report, template, "0001", "01", settings, j.close_no)
        assert plan.ready and plan.close_no == 1
        _expect_figures(day, plan)
        sales = plan.postings[0]
        assert sales.ref_number == f"POS-0001-01-{day.business_date:%Y%m%d}-S"
        assert sales.amount == day.gross  # every yen of the printed report
        vat = sum(d.vat or 0 for d in sales.details)
        assert vat == plan.totals.tax
        paid = {p.walletable: p.amount for p in sales.payments}
        assert paid.get("現金", 0) == day.method_total(Method.CASH)
        assert paid.get("カード売掛", 0) == day.method_total(Method.CREDIT)
        assert sum(paid.values()) == day.method_total(Method.CASH) + day.method_total(Method.CREDIT)
        others = {p.ref_number.rsplit("-", 1)[1]: p for p in plan.postings[1:]}
        if day.cash_difference:
            assert others["D"].amount == abs(day.cash_difference)
        if day.cash_out:
            assert others["MOUT"].amount == day.cash_out
        if day.cash_in:
            assert others["MIN"].amount == day.cash_in
        assert all(p.kind is PostingKind.DEAL for p in plan.postings)
        assert DayPlan.from_json(plan.to_json()).to_json() == plan.to_json()
    assert history.last_counter == generated[-1].z_counter


def _tamper(data: bytes, old: str, new: str) -> bytes:
    encoded = old.replace("¥", "\\").encode("cp932")
    assert encoded in data
    return data.replace(encoded, new.replace("¥", "\\").encode("cp932"), 1)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_tampered_total_is_held_quoting_the_line(layout: str) -> None:
    template = shipped_template(layout)
    day = days(seed=3, n=1)[0]
    gross = {"label-yen": f"¥{day.gross:,}", "en-suffix": f"{day.gross:,}円",
             "net-columns": f"{day.gross:,}"}[layout]
    bad = {"label-yen": f"¥{day.gross + 10:,}", "en-suffix": f"{day.gross + 10:,}円",
           "net-columns": f"{day.gross + 10:,}"}[layout]
    data = _tamper(report_bytes(layout, day), gross, bad)
    (results, _h) = _judge_all(template, data)
    (_r, j), = results
    assert j.verdict is Verdict.HELD
    assert j.reason is not None
    assert f"methods: payment methods sum to {day.gross} ≠ gross {day.gross + 10}" in j.reason
    assert "rates: tax rates sum to" in j.reason
    gross_line = next(r for r in _r.lines if bad in r.text)
    assert f'(line {gross_line.number}: "{gross_line.text.strip()}"' in j.reason


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_missing_rate_line_is_held_naming_it(layout: str) -> None:
    template = shipped_template(layout)
    day = days(seed=5, n=1)[0]
    data = report_bytes(layout, day)
    label = {"label-yen": "8%対象", "en-suffix": "軽減税率対象", "net-columns": "課税8%"}[layout]
    data = _tamper(data, label, "????")
    (results, _h) = _judge_all(template, data)
    (_r, j), = results
    assert j.verdict is Verdict.HELD
    assert j.reason == "fields: no line for base.8R"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_printed_twice_training_and_reprint(layout: str) -> None:
    template = shipped_template(layout)
    day = days(seed=9, n=1)[0]
    z = report_bytes(layout, day)
    stream = (
        report_bytes(layout, day, training=True) + z + z + report_bytes(layout, day, reprint=True)
    )
    results, history = _judge_all(template, stream)
    verdicts = [(r.kind, j.verdict) for r, j in results]
    assert verdicts == [
        (JobKind.TRAINING, Verdict.IGNORED),
        (JobKind.Z_REPORT, Verdict.ACCEPTED),
        (JobKind.Z_REPORT, Verdict.IGNORED),
        (JobKind.REPRINT, Verdict.IGNORED),
    ]
    assert results[0][1].reason is not None and "training" in results[0][1].reason
    assert results[2][1].reason == (
        f"printed twice: Z {day.z_counter} of {day.business_date.isoformat()} "
        "was already read with the same figures"
    )
    assert "reprint" in (results[3][1].reason or "")
    assert history.last_counter == day.z_counter


def test_counter_gap_and_a_date_twice_are_held_and_a_reclose_is_not() -> None:
    layout = "label-yen"
    template = shipped_template(layout)
    d1, d2, d3 = days(seed=4, n=3)
    skipped = report_bytes(layout, d1) + report_bytes(layout, d3)
    results, _h = _judge_all(template, skipped)
    j = results[1][1]
    assert j.verdict is Verdict.HELD
    assert j.reason == (
        f'counter: Z counter {d3.z_counter} ≠ last {d1.z_counter} + 1 '
        f'(line 4: "精算No.{d3.z_counter:04d}")'
    )
    again = dataclasses.replace(d2, business_date=d1.business_date)
    results, _h = _judge_all(template, report_bytes(layout, d1) + report_bytes(layout, again))
    j = results[1][1]
    assert j.verdict is Verdict.HELD and j.reason is not None
    assert j.reason.startswith(
        f"date: business date {d1.business_date.isoformat()} already closed by Z 1 "
        "and this report is not a re-close"
    )
    results, _h = _judge_all(
        template, report_bytes(layout, d1) + report_bytes(layout, again, reclose=True)
    )
    j = results[1][1]
    assert j.verdict is Verdict.ACCEPTED and j.close_no == 2


def test_a_tax_off_by_more_than_rounding_is_held() -> None:
    layout = "label-yen"
    template = shipped_template(layout)
    day = days(seed=2, n=1, receipts=3)[0]
    tax = day.class_tax(TaxClass.STANDARD)
    data = report_bytes(layout, day)
    rendered = data.decode("cp932")
    line = next(ln for ln in rendered.splitlines() if ln.startswith("10%税額"))
    new_line = line.replace(f"\\{tax:,}", f"\\{tax + 50:,}")
    assert new_line != line
    results, _h = _judge_all(template, data.replace(line.encode("cp932"), new_line.encode("cp932")))
    j = results[0][1]
    assert j.verdict is Verdict.HELD and j.reason is not None
    assert j.reason.startswith(f"tax: class 10 tax {tax + 50} is not within 3 of ")


_DATE = "business_date = '(?P<year>\\d+)/(?P<month>\\d+)/(?P<day>\\d+)'\n"


def test_template_errors_name_the_key() -> None:
    head = 'name = "t"\n[match]\nz_report = ["Z"]\n[fields]\n'
    counter = "z_counter = '(?P<value>\\d+)'\n"
    with pytest.raises(ConfigError, match=r"t.toml.fields.gross: pattern has no named group"):
        parse_template(head + _DATE + counter + "gross = 'x'\n", "t.toml")
    with pytest.raises(ConfigError, match=r"t.toml.fields.typo: unknown key"):
        parse_template(head + _DATE + counter + "gross = '(?P<amount>.*)'\ntypo = 'x'\n",
                       "t.toml")
    with pytest.raises(ConfigError, match=r"t.toml.fields.gross: missing"):
        parse_template(head + _DATE + counter, "t.toml")
    with pytest.raises(ConfigError, match=r"t.toml.fields.gross: not a regular expression"):
        parse_template(head + _DATE + counter + "gross = '(?P<amount>'\n", "t.toml")
    ok = parse_template(head + _DATE + counter + "gross = '(?P<amount>.*)'\n", "t.toml")
    assert set(ok.fields) == {"business_date", "z_counter", "gross"}


def test_a_day_one_deal_cannot_express_is_held_with_the_reason() -> None:
    layout = "label-yen"
    template = shipped_template(layout)
    day = days(seed=6, n=1)[0]
    (results, _h) = _judge_all(template, report_bytes(layout, day))
    report = results[0][1].report
    assert report is not None
    methods = dict(report.methods)
    methods[Method.CREDIT] += methods[Method.CASH] + 500
    methods[Method.CASH] = -500  # more refunded in cash than taken
    bad = dataclasses.replace(report, methods=methods)
    plan = plan_report(bad, template, "0001", "01", MappingSettings())
    assert not plan.ready and plan.postings == ()
    assert plan.reason == "posting: settled method CASH totals -500, below 0"
    assert plan.totals.gross == day.gross


def test_an_unreadable_amount_is_held_quoting_its_line() -> None:
    layout = "en-suffix"
    template = shipped_template(layout)
    day = days(seed=12, n=1)[0]
    data = _tamper(report_bytes(layout, day), f"{day.gross:,}円", "不明")
    (results, _h) = _judge_all(template, data)
    (_r, j), = results
    assert j.verdict is Verdict.HELD
    assert j.reason is not None and j.reason.startswith("fields: line ")
    assert j.reason.endswith('不明" has no amount for gross')
