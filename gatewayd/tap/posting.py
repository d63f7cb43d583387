"""A checked Z report → the ``DayPlan`` the REGLINK path feeds to the outbox (docs/tap.md).

Pure. A Z report has totals, not receipts, so the class × payment-method split that
``summary`` and ``receipt`` need does not exist. A tapped day therefore always posts in the
``day`` form, whatever ``[mapping] granularity`` says:

- ``S``: one income deal, one line per tax class printed (amount = the class's tax-included
  sales, vat = the printed tax), and one payment per settled method (its printed total into its
  口座); unsettled methods stay 未決済 in the same deal;
- ``D``: the printed cash difference (雑収入 / 雑損失, as ``gatewayd.sync.mapping``);
- ``MIN`` / ``MOUT``: the printed cash in / out totals, each by the rule for reason code ``-``
  (the report does not list the single movements).

Every yen is the printed report's: the deal's lines sum to the printed gross (the ``rates``
check), its payments to the settled methods' printed totals. A day one deal cannot express
(gross ≤ 0, a settled method below 0, settled totals above the gross) is held with the reason.
"""

from __future__ import annotations

from datetime import date

from gatewayd.protocol.records import METHOD_ORDER, TAX_CLASS_ORDER, Direction, TaxClass
from gatewayd.sync.mapping_settings import MappingSettings
from gatewayd.sync.plan import (
    DayPlan,
    DayTotals,
    DealType,
    DetailLine,
    Granularity,
    PaymentLine,
    PlanStatus,
    Posting,
    PostingKind,
    TransferPlan,
    ref_number,
)
from gatewayd.tap.checks import class_gross
from gatewayd.tap.report import ZReport
from gatewayd.tap.template import Template

CLASS_LABELS = {
    TaxClass.STANDARD: "10%対象",
    TaxClass.REDUCED: "8%対象(軽減)",
    TaxClass.EXEMPT: "非課税",
    TaxClass.OUT_OF_SCOPE: "不課税",
}


def report_totals(report: ZReport, template: Template) -> DayTotals:
    """The plan's ``totals``: the printed figures (tax = Σ printed tax)."""
    return DayTotals(
        gross=report.gross,
        tax=sum(report.taxes.values()),
        by_class={c: class_gross(report, template, c) for c in TAX_CLASS_ORDER},
        by_method={m: report.methods[m] for m in METHOD_ORDER},
    )


class _Builder:
    def __init__(
        self, store_code: str, terminal_no: str, business_date: date, settings: MappingSettings
    ) -> None:
        self.store_code = store_code
        self.terminal_no = terminal_no
        self.date = business_date
        self.s = settings

    def ref(self, suffix: str) -> str:
        return ref_number(self.store_code, self.terminal_no, self.date, suffix)

    def line(self, account: str, tax: str, amount: int, vat: int | None, text: str) -> DetailLine:
        return DetailLine(account, tax, amount, vat, None, self.s.section, self.s.tags, text)

    def deal(
        self, suffix: str, type_: DealType, lines: list[DetailLine], payments: list[PaymentLine]
    ) -> Posting:
        return Posting(
            ref_number=self.ref(suffix),
            kind=PostingKind.DEAL,
            type=type_,
            issue_date=self.date,
            due_date=None,
            partner=None,
            details=tuple(lines),
            payments=tuple(payments),
            transfer=None,
        )

    @property
    def label(self) -> str:
        return self.s.store_label(self.store_code)


def _sales(b: _Builder, report: ZReport, template: Template) -> tuple[Posting | None, str | None]:
    lines = []
    for cls in TAX_CLASS_ORDER:
        amount = class_gross(report, template, cls)
        tax = report.taxes[cls]
        if amount == 0 and tax == 0:
            continue
        text = f"{b.label} {b.date.isoformat()} {CLASS_LABELS[cls]}"
        lines.append(b.line(b.s.sales_account, b.s.tax_names[cls], amount, tax, text))
    if not lines:
        return None, None
    total = sum(d.amount for d in lines)
    if total <= 0:
        return None, f"posting: the day's deal total {total} is not above 0"
    payments: list[PaymentLine] = []
    for method in METHOD_ORDER:
        walletable = b.s.settlement_walletable(method)
        amount = report.methods[method]
        if walletable is None or amount == 0:
            continue
        if amount < 0:
            return None, f"posting: settled method {method.value} totals {amount}, below 0"
        payments.append(PaymentLine(b.date, walletable, amount))
    settled = sum(p.amount for p in payments)
    if settled > total:
        return None, f"posting: settled totals {settled} exceed the deal total {total}"
    return b.deal("S", DealType.INCOME, lines, payments), None


def _cash_difference(b: _Builder, difference: int) -> list[Posting]:
    if difference == 0:
        return []
    s = b.s
    amount = abs(difference)
    type_, account = (
        (DealType.INCOME, s.cash_over_account)
        if difference > 0
        else (DealType.EXPENSE, s.cash_short_account)
    )
    line = b.line(account, s.ex_tax_name, amount, 0, f"{b.label} 現金過不足")
    return [b.deal("D", type_, [line], [PaymentLine(b.date, s.cash_walletable, amount)])]


def _movement(b: _Builder, direction: Direction, amount: int) -> list[Posting]:
    if amount == 0:
        return []
    s = b.s
    amount = abs(amount)
    rule = s.movement_rule("-", direction)
    suffix = f"M{direction.value}"
    text = f"{b.label} {'入金' if direction is Direction.IN else '出金'}"
    if rule.kind is PostingKind.TRANSFER and rule.walletable is not None:
        source, target = (
            (rule.walletable, s.cash_walletable)
            if direction is Direction.IN
            else (s.cash_walletable, rule.walletable)
        )
        ref = b.ref(suffix)
        return [
            Posting(
                ref_number=ref,
                kind=PostingKind.TRANSFER,
                type=None,
                issue_date=b.date,
                due_date=None,
                partner=None,
                details=(),
                payments=(),
                transfer=TransferPlan(b.date, source, target, amount, f"{text} {ref}"),
            )
        ]
    account = rule.account or s.cash_over_account
    tax = rule.tax or s.ex_tax_name
    vat = 0 if tax == s.ex_tax_name else None
    type_ = DealType.INCOME if direction is Direction.IN else DealType.EXPENSE
    line = b.line(account, tax, amount, vat, text)
    return [b.deal(suffix, type_, [line], [PaymentLine(b.date, s.cash_walletable, amount)])]


def plan_report(
    report: ZReport,
    template: Template,
    store_code: str,
    terminal_no: str,
    settings: MappingSettings,
    close_no: int = 1,
    held_reason: str | None = None,
) -> DayPlan:
    """The plan of a tapped day: ready, or held with ``held_reason`` / a posting reason."""
    if report.business_date is None:
        raise ValueError("a report without a business date has no plan")
    b = _Builder(store_code, terminal_no, report.business_date, settings)
    totals = report_totals(report, template)
    postings: list[Posting] = []
    reason = held_reason
    if reason is None:
        sales, reason = _sales(b, report, template)
        if sales is not None:
            postings.append(sales)
        postings += _cash_difference(b, report.cash_difference)
        postings += _movement(b, Direction.IN, report.cash_in)
        postings += _movement(b, Direction.OUT, report.cash_out)
    held = reason is not None
    return DayPlan(
        store_code=store_code,
        terminal_no=terminal_no,
        business_date=report.business_date,
        close_no=close_no,
        status=PlanStatus.HELD if held else PlanStatus.READY,
        reason=reason,
        granularity=Granularity.DAY,
        totals=totals,
        postings=() if held else tuple(postings),
    )

