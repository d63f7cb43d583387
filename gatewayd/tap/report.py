"""Decoded lines → what a job is (receipt, Z, X, reprint, training) and a Z report's fields.

Pure. Lines are NFKC-folded before matching, so full-width digits, ￥ and spaces read as their
ASCII forms; a field's first matching line wins and is kept, so a check can quote it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from gatewayd.protocol.records import METHOD_ORDER, TAX_CLASS_ORDER, Method, TaxClass
from gatewayd.tap.amounts import normalize, parse_amount
from gatewayd.tap.escpos import Line, job_lines
from gatewayd.tap.template import Template, group_of, method_field, rate_field


class JobKind(StrEnum):
    Z_REPORT = "z_report"
    X_REPORT = "x_report"
    REPRINT = "reprint"
    TRAINING = "training"
    OTHER = "other"  # receipts and anything else: not read


def folded(lines: Sequence[Line]) -> list[Line]:
    return [Line(ln.number, normalize(ln.text), ln.double) for ln in lines]


def classify(template: Template, lines: Sequence[Line]) -> JobKind:
    """Training and reprint marks win over everything; then X, then Z; else OTHER."""
    texts = [ln.text for ln in lines]

    def any_match(kind: str) -> bool:
        return any(p.search(t) for p in template.markers[kind] for t in texts)

    if any_match("training"):
        return JobKind.TRAINING
    if any_match("reprint"):
        return JobKind.REPRINT
    if any_match("x_report"):
        return JobKind.X_REPORT
    if any_match("z_report"):
        return JobKind.Z_REPORT
    return JobKind.OTHER


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """A field that is required but has no line, or whose line does not read."""

    field: str
    line: Line | None
    message: str


@dataclass(frozen=True, slots=True)
class ZReport:
    """A Z report's figures as printed. Absent optional amounts are 0; ``lines`` maps each
    found field to its line (for quoting)."""

    business_date: date | None
    z_counter: int | None
    store: str | None
    terminal: str | None
    reclose: bool
    receipt_count: int | None
    gross: int
    bases: Mapping[TaxClass, int]
    taxes: Mapping[TaxClass, int]
    methods: Mapping[Method, int]
    returns: int
    voids: int
    cash_in: int
    cash_out: int
    cash_difference: int
    lines: Mapping[str, Line]
    all_lines: tuple[Line, ...]
    problems: tuple[FieldProblem, ...] = field(default=())

    def line_of(self, name: str) -> Line | None:
        return self.lines.get(name)


def _read_date(groups: Mapping[str, str | None]) -> date | None:
    try:
        year = int(groups["year"] or "")
        month = int(groups["month"] or "")
        day = int(groups["day"] or "")
        return date(year + 2000 if year < 100 else year, month, day)
    except (ValueError, KeyError):
        return None


def extract(template: Template, lines: Sequence[Line]) -> ZReport:
    """Read every field of ``template`` from ``lines`` (already folded or not)."""
    lines = folded(lines)
    found: dict[str, Line] = {}
    values: dict[str, object] = {}
    problems: list[FieldProblem] = []
    for name, pattern in template.fields.items():
        for ln in lines:
            m = pattern.search(ln.text)
            if m is None:
                continue
            found[name] = ln
            group = group_of(name)
            raw = m.groupdict()
            if group == "year":
                value: object = _read_date(raw)
                what = "date"
            elif group == "amount":
                value = parse_amount(raw.get("amount") or "")
                what = "amount"
            elif name in ("z_counter", "receipt_count"):
                digits = (raw.get("value") or "").strip()
                value = int(digits) if digits.isdigit() else None
                what = "number"
            else:
                value = (raw.get("value") or "").strip() or None
                what = "value"
            if value is None:
                problems.append(
                    FieldProblem(name, ln, f"line {ln.number} \"{ln.text.strip()}\" has no "
                                 f"{what} for {name}")
                )
            else:
                values[name] = value
            break
        else:
            if template.required(name):
                problems.append(FieldProblem(name, None, f"no line for {name}"))

    def amount(name: str) -> int:
        v = values.get(name, 0)
        return v if isinstance(v, int) else 0

    def opt_int(name: str) -> int | None:
        v = values.get(name)
        return v if isinstance(v, int) else None

    def opt_str(name: str) -> str | None:
        v = values.get(name)
        return v if isinstance(v, str) else None

    bd = values.get("business_date")
    texts = [ln.text for ln in lines]
    reclose = any(p.search(t) for p in template.markers["reclose"] for t in texts)
    return ZReport(
        business_date=bd if isinstance(bd, date) else None,
        z_counter=opt_int("z_counter"),
        store=opt_str("store"),
        terminal=opt_str("terminal"),
        reclose=reclose,
        receipt_count=opt_int("receipt_count"),
        gross=amount("gross"),
        bases={c: amount(rate_field("base", c)) for c in TAX_CLASS_ORDER},
        taxes={c: amount(rate_field("tax", c)) for c in TAX_CLASS_ORDER},
        methods={m: amount(method_field(m)) for m in METHOD_ORDER},
        returns=amount("returns"),
        voids=amount("voids"),
        cash_in=amount("cash_in"),
        cash_out=amount("cash_out"),
        cash_difference=amount("cash_difference"),
        lines=found,
        all_lines=tuple(lines),
        problems=tuple(problems),
    )


@dataclass(frozen=True, slots=True)
class JobReading:
    """A job read through a template: its kind, lines and (for a Z) its report."""

    kind: JobKind
    lines: tuple[Line, ...]
    report: ZReport | None


def read_job(template: Template, data: bytes) -> JobReading:
    lines = folded(job_lines(data, always_kanji=template.always_kanji))
    kind = classify(template, lines)
    report = extract(template, lines) if kind is JobKind.Z_REPORT else None
    return JobReading(kind, tuple(lines), report)
