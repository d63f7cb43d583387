"""Does a Z report add up, and does it follow the last one? (docs/tap.md, "Checks").

Pure. Each failure is one message that starts with the check's name and quotes the printed
line it is about, in the style of the journal's check reasons (docs/day-checks.md):
``methods: methods 12000 ≠ gross 12100 (line 14: "売上合計 ¥12,100")``. A held report's reason
joins them with ``; `` in check order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Any

from gatewayd.protocol.records import METHOD_ORDER, TAX_CLASS_ORDER, TaxClass
from gatewayd.tap.escpos import Line
from gatewayd.tap.report import JobKind, JobReading, ZReport
from gatewayd.tap.template import RATE_PERCENT, Template, method_field, rate_field

CHECK_ORDER = ("fields", "methods", "rates", "tax", "counter", "date")


def quote(line: Line | None) -> str:
    return "" if line is None else f'line {line.number}: "{line.text.strip()}"'


def _numbers(lines: list[Line | None]) -> str:
    nums = sorted({ln.number for ln in lines if ln is not None})
    return ", ".join(map(str, nums))


def class_gross(report: ZReport, template: Template, cls: TaxClass) -> int:
    """The tax-included sales of one class: 対象額, plus its tax when 対象額 is printed net."""
    base = report.bases[cls]
    return base if template.tax_included else base + report.taxes[cls]


def expected_tax(base: int, percent: int, tax_included: bool) -> int:
    """The tax of ``base`` at ``percent`` %, rounded down (the registers' usual rounding)."""
    if percent == 0:
        return 0
    den = 100 + percent if tax_included else 100
    value = abs(base) * percent // den
    return value if base >= 0 else -value


def figure_checks(report: ZReport, template: Template) -> list[str]:
    """fields, methods, rates, tax: the report against itself."""
    out = [f"fields: {p.message}" for p in report.problems]
    if out:
        return out  # sums over missing or unreadable lines would only repeat the problem
    gross_line = report.line_of("gross")
    methods = sum(report.methods.values())
    if methods != report.gross:
        method_lines = [report.line_of(method_field(m)) for m in METHOD_ORDER]
        out.append(
            f"methods: payment methods sum to {methods} ≠ gross {report.gross} "
            f"({quote(gross_line)}; methods on lines {_numbers(method_lines) or 'none'})"
        )
    rates = sum(class_gross(report, template, c) for c in TAX_CLASS_ORDER)
    if rates != report.gross:
        rate_lines = [report.line_of(rate_field("base", c)) for c in TAX_CLASS_ORDER]
        out.append(
            f"rates: tax rates sum to {rates} ≠ gross {report.gross} "
            f"({quote(gross_line)}; rates on lines {_numbers(rate_lines) or 'none'})"
        )
    for cls in TAX_CLASS_ORDER:
        tax = report.taxes[cls]
        base = report.bases[cls]
        percent = RATE_PERCENT[cls]
        want = expected_tax(base, percent, template.tax_included)
        tolerance = _tolerance(report, template)
        if abs(tax - want) > (tolerance if percent else 0):
            line = report.line_of(rate_field("tax", cls)) or report.line_of(rate_field("base", cls))
            out.append(
                f"tax: class {cls.value} tax {tax} is not within {tolerance if percent else 0} "
                f"of {base} × {percent}/{100 + percent if template.tax_included else 100} "
                f"= {want} ({quote(line)})"
            )
    return out


def _tolerance(report: ZReport, template: Template) -> int:
    """Tax is rounded per receipt: the day's sum may be off by up to one yen per receipt."""
    if template.tax_tolerance is not None:
        return template.tax_tolerance
    if report.receipt_count is not None:
        return max(report.receipt_count, 1)
    return 1


@dataclass(frozen=True, slots=True)
class ReadClose:
    """A Z already read: its counter and a key of its figures (to tell a repeat)."""

    z_counter: int
    business_date: date
    figures: str


def figures_key(report: ZReport) -> str:
    """The report's figures as one JSON text (kept in the tap store, compared for repeats)."""
    return json.dumps(
        [
            None if report.business_date is None else report.business_date.isoformat(),
            report.z_counter,
            report.gross,
            sorted((c.value, v) for c, v in report.bases.items()),
            sorted((c.value, v) for c, v in report.taxes.items()),
            sorted((m.value, v) for m, v in report.methods.items()),
            report.cash_in,
            report.cash_out,
            report.cash_difference,
        ],
        ensure_ascii=False,
    )


@dataclass(frozen=True, slots=True)
class TapHistory:
    """What one tap has read before: the last Z counter and every close by date."""

    last_counter: int | None = None
    closes: Mapping[date, tuple[ReadClose, ...]] = field(default_factory=dict)

    def after(self, report: ZReport) -> TapHistory:
        """The history once ``report`` is read (held or accepted alike: it was printed)."""
        if report.z_counter is None or report.business_date is None:
            return self
        closes = dict(self.closes)
        closes[report.business_date] = (
            *closes.get(report.business_date, ()),
            ReadClose(report.z_counter, report.business_date, figures_key(report)),
        )
        last = report.z_counter if self.last_counter is None else max(
            self.last_counter, report.z_counter
        )
        return replace(self, last_counter=last, closes=closes)

    def to_json(self) -> dict[str, Any]:
        return {
            "last_counter": self.last_counter,
            "closes": [
                {"date": c.business_date.isoformat(), "z_counter": c.z_counter,
                 "figures": c.figures}
                for closes in self.closes.values()
                for c in closes
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TapHistory:
        closes: dict[date, tuple[ReadClose, ...]] = {}
        for c in data.get("closes", ()):
            d = date.fromisoformat(c["date"])
            closes[d] = (*closes.get(d, ()), ReadClose(int(c["z_counter"]), d, str(c["figures"])))
        last = data.get("last_counter")
        return cls(last_counter=None if last is None else int(last), closes=closes)

    def close_no(self, report: ZReport) -> int:
        """1 for the first close of its date, 2 for the first re-close, …"""
        if report.business_date is None:
            return 1
        return len(self.closes.get(report.business_date, ())) + 1

    def repeat_of(self, report: ZReport) -> ReadClose | None:
        """The close this report repeats figure for figure (printed twice), if any."""
        if report.business_date is None:
            return None
        key = figures_key(report)
        for close in self.closes.get(report.business_date, ()):
            if close.figures == key:
                return close
        return None


def sequence_checks(report: ZReport, history: TapHistory) -> list[str]:
    """counter and date: the report against the ones read before."""
    out: list[str] = []
    counter_line = report.line_of("z_counter")
    if (
        report.z_counter is not None
        and history.last_counter is not None
        and report.z_counter != history.last_counter + 1
    ):
        out.append(
            f"counter: Z counter {report.z_counter} ≠ last {history.last_counter} + 1 "
            f"({quote(counter_line)})"
        )
    bd = report.business_date
    if bd is not None and bd in history.closes and not report.reclose:
        before = history.closes[bd][-1]
        out.append(
            f"date: business date {bd.isoformat()} already closed by Z "
            f"{before.z_counter} and this report is not a re-close "
            f"({quote(report.line_of('business_date'))})"
        )
    return out


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    HELD = "held"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class Judgement:
    """What becomes of one job: accepted (post it), held (reason), ignored (reason)."""

    verdict: Verdict
    reason: str | None
    report: ZReport | None
    close_no: int
    history: TapHistory  # the history after this job


_IGNORED_KINDS = {
    JobKind.TRAINING: "training print (トレーニング): not a sale",
    JobKind.REPRINT: "reprint (再発行): the original was read",
    JobKind.X_REPORT: "X report (点検): the day is not closed",
    JobKind.OTHER: "not a Z report",
}


def judge(reading: JobReading, template: Template, history: TapHistory) -> Judgement:
    """Accept, hold or ignore one job, and the history after it."""
    report = reading.report
    if reading.kind is not JobKind.Z_REPORT or report is None:
        return Judgement(Verdict.IGNORED, _IGNORED_KINDS[reading.kind], None, 0, history)
    repeat = history.repeat_of(report)
    if repeat is not None:
        return Judgement(
            Verdict.IGNORED,
            f"printed twice: Z {repeat.z_counter} of {repeat.business_date.isoformat()} "
            f"was already read with the same figures",
            report,
            0,
            history,
        )
    failures = figure_checks(report, template) + sequence_checks(report, history)
    close_no = history.close_no(report)
    after = history.after(report)
    if failures:
        return Judgement(Verdict.HELD, "; ".join(failures), report, close_no, after)
    return Judgement(Verdict.ACCEPTED, None, report, close_no, after)
