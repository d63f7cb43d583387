"""From one accepted business day to its plan of freee postings (freee-mapping.md §3).

Pure: no I/O, no clock. ``plan_day`` is deterministic, so the same day and settings always
give the same postings under the same ref_numbers — the basis of exactly-once delivery and
of re-sync. Money is integer yen throughout; every split is exact (floor + largest remainder).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from gatewayd.protocol.records import (
    METHOD_ORDER,
    TAX_CLASS_ORDER,
    BusinessDay,
    Close,
    Direction,
    Method,
    Movement,
    TaxClass,
    Transaction,
)
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

MAX_DEAL_LINES = 100  # freee: 明細行は最大100行
RECORDS_NOT_IN_FILE = "records not in this file"

_CLASS_RANK = {c: i for i, c in enumerate(TAX_CLASS_ORDER)}


# ---------------------------------------------------------------------------------------------
# 3.1 allocation


def split_amount(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights``: floor, then the missing yen one each to the
    largest fractional parts, ties to the earlier. Weights summing to 0 → all to the first.

    Exact for any signs: the parts always sum to ``total``.
    """
    if not weights:
        raise ValueError("nothing to split over")
    den = sum(weights)
    if den == 0:
        return [total] + [0] * (len(weights) - 1)
    sign = 1 if den > 0 else -1
    den *= sign
    nums = [total * w * sign for w in weights]
    parts = [n // den for n in nums]
    remainders = [n % den for n in nums]  # fractional part × den, in [0, den)
    missing = total - sum(parts)
    if not 0 <= missing < len(weights):  # pragma: no cover - arithmetic invariant
        raise AssertionError("largest-remainder invariant broken")
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:missing]:
        parts[i] += 1
    return parts


@dataclass(frozen=True, slots=True)
class Share:
    """The part of one receipt's class (gross and tax) that one of its payments settles."""

    tax_class: TaxClass
    payment_index: int  # position among the receipt's P records
    method: Method
    gross: int
    tax: int


def _allocate_positive(
    classes: Sequence[tuple[int, int]], payments: Sequence[int]
) -> list[list[tuple[int, int]]]:
    """Per class, per payment (gross share, tax share), by §3.1 steps 1-3."""
    remaining = list(payments)
    out: list[list[tuple[int, int]]] = []
    for gross, tax in classes:
        if sum(remaining) == 0:
            shares = [gross] + [0] * (len(remaining) - 1)
        else:
            shares = split_amount(gross, remaining)
        taxes = split_amount(tax, shares)
        remaining = [r - s for r, s in zip(remaining, shares, strict=True)]
        out.append(list(zip(shares, taxes, strict=True)))
    return out


def allocate_receipt(tx: Transaction) -> tuple[Share, ...]:
    """Allocate one receipt's classes (gross and tax) to its payments (§3.1).

    A receipt whose total is 0 (or that has no E) gives nothing. A negative total is the
    negation of the allocation of the negated receipt. Shares are in class order, then payment
    record order; zero shares are kept (callers drop lines that stay zero).
    """
    if tx.end is None or tx.end.total == 0 or not tx.payments:
        return ()
    taxes = sorted(tx.taxes, key=lambda x: _CLASS_RANK[x.tax_class])
    sign = 1 if tx.end.total > 0 else -1
    grid = _allocate_positive(
        [(sign * x.gross, sign * x.tax) for x in taxes],
        [sign * p.amount for p in tx.payments],
    )
    shares: list[Share] = []
    for x, row in zip(taxes, grid, strict=True):
        for i, (p, (gross, tax)) in enumerate(zip(tx.payments, row, strict=True)):
            shares.append(Share(x.tax_class, i, p.method, sign * gross, sign * tax))
    return tuple(shares)


# ---------------------------------------------------------------------------------------------
# totals


def _zero_classes() -> dict[TaxClass, int]:
    return dict.fromkeys(TAX_CLASS_ORDER, 0)


def _zero_methods() -> dict[Method, int]:
    return dict.fromkeys(METHOD_ORDER, 0)


def day_totals(day: BusinessDay) -> DayTotals:
    """Sums of the day's records as they stand, TRAINING excluded (section 8 ``totals``)."""
    by_class = _zero_classes()
    by_method = _zero_methods()
    gross = tax = 0
    for tx in day.transactions:
        if not tx.counted:
            continue
        for x in tx.taxes:
            by_class[x.tax_class] += x.gross
        for p in tx.payments:
            by_method[p.method] += p.amount
        if tx.end is not None:
            gross += tx.end.total
            tax += tx.end.tax_total
    return DayTotals(gross=gross, tax=tax, by_class=by_class, by_method=by_method)


def close_totals(close: Close) -> DayTotals:
    """The Z's own figures, tax unknown (a re-close whose records are not at hand)."""
    by_class = _zero_classes()
    by_class.update(close.class_totals)
    by_method = _zero_methods()
    by_method.update(close.method_totals)
    return DayTotals(gross=close.gross_total, tax=None, by_class=by_class, by_method=by_method)


# ---------------------------------------------------------------------------------------------
# 3.2 sales


@dataclass(slots=True)
class _Amount:
    gross: int = 0
    tax: int = 0

    def add(self, gross: int, tax: int) -> None:
        self.gross += gross
        self.tax += tax

    @property
    def nonzero(self) -> bool:
        return self.gross != 0 or self.tax != 0


@dataclass(frozen=True, slots=True)
class _Context:
    store_code: str
    terminal_no: str
    business_date: date
    settings: MappingSettings

    def ref(self, suffix: str) -> str:
        return ref_number(self.store_code, self.terminal_no, self.business_date, suffix)

    @property
    def store_label(self) -> str:
        return self.settings.store_label(self.store_code)

    def line(
        self,
        account: str,
        tax: str,
        amount: int,
        vat: int | None,
        description: str,
        item: str | None = None,
    ) -> DetailLine:
        return DetailLine(
            account_item=account,
            tax=tax,
            amount=amount,
            vat=vat,
            item=item,
            section=self.settings.section,
            tags=self.settings.tags,
            description=description,
        )

    def sales_line(
        self, method: Method, cls: TaxClass, amt: _Amount, description: str
    ) -> DetailLine:
        s = self.settings
        return self.line(
            s.sales_account, s.tax_names[cls], amt.gross, amt.tax, description, s.item_name(method)
        )

    def method_description(self, method: Method) -> str:
        label = self.settings.method_labels[method]
        return f"{self.store_label} {self.business_date.isoformat()} {label}"

    def deal(
        self,
        suffix: str,
        type_: DealType,
        details: Sequence[DetailLine],
        payments: Sequence[PaymentLine] = (),
        partner: str | None = None,
        due_date: date | None = None,
    ) -> Posting:
        return Posting(
            ref_number=self.ref(suffix),
            kind=PostingKind.DEAL,
            type=type_,
            issue_date=self.business_date,
            due_date=due_date,
            partner=partner,
            details=tuple(details),
            payments=tuple(payments),
            transfer=None,
        )

    def method_deal(self, suffix: str, method: Method, details: Sequence[DetailLine]) -> Posting:
        """A sales deal of one method (summary, receipt): settlement, partner, due date."""
        rule = self.settings.method_rule(method)
        total = sum(d.amount for d in details)
        payments: tuple[PaymentLine, ...] = ()
        due: date | None = None
        if rule.walletable is not None:
            if total != 0:
                payments = (PaymentLine(self.business_date, rule.walletable, total),)
        elif rule.due_days is not None:
            due = self.business_date + timedelta(days=rule.due_days)
        return self.deal(suffix, DealType.INCOME, details, payments, rule.partner, due)


def _day_shares(day: BusinessDay) -> list[tuple[Transaction, tuple[Share, ...]]]:
    return [(tx, allocate_receipt(tx)) for tx in day.transactions if tx.counted]


def _by_method_class(
    shares: Iterable[tuple[Transaction, tuple[Share, ...]]],
) -> dict[Method, dict[TaxClass, _Amount]]:
    acc = {m: {c: _Amount() for c in TAX_CLASS_ORDER} for m in METHOD_ORDER}
    for _tx, tx_shares in shares:
        for s in tx_shares:
            acc[s.method][s.tax_class].add(s.gross, s.tax)
    return acc


def _summary_lines(
    ctx: _Context, acc: dict[Method, dict[TaxClass, _Amount]], method: Method
) -> list[DetailLine]:
    description = ctx.method_description(method)
    return [
        ctx.sales_line(method, cls, amt, description)
        for cls, amt in acc[method].items()
        if amt.nonzero
    ]


def _sales_summary(ctx: _Context, acc: dict[Method, dict[TaxClass, _Amount]]) -> list[Posting]:
    postings = []
    for method in METHOD_ORDER:
        lines = _summary_lines(ctx, acc, method)
        if lines:
            postings.append(ctx.method_deal(f"S-{method.value}", method, lines))
    return postings


def _sales_receipt(
    ctx: _Context, shares: Sequence[tuple[Transaction, tuple[Share, ...]]]
) -> list[Posting]:
    postings = []
    for method in METHOD_ORDER:
        lines: list[DetailLine] = []
        for tx, tx_shares in shares:
            per_class = {c: _Amount() for c in TAX_CLASS_ORDER}
            for s in tx_shares:
                if s.method is method:
                    per_class[s.tax_class].add(s.gross, s.tax)
            description = f"レシート {tx.receipt_no}"
            lines.extend(
                ctx.sales_line(method, cls, amt, description)
                for cls, amt in per_class.items()
                if amt.nonzero
            )
        for n, start in enumerate(range(0, len(lines), MAX_DEAL_LINES), start=1):
            chunk = lines[start : start + MAX_DEAL_LINES]
            postings.append(ctx.method_deal(f"S-{method.value}-{n}", method, chunk))
    return postings


def _sales_day(
    ctx: _Context,
    acc: dict[Method, dict[TaxClass, _Amount]],
    folded: Sequence[DetailLine] = (),
) -> tuple[list[Posting], str | None]:
    """One deal for all methods, or ([], reason) when one deal cannot express the day.

    ``folded``: the cash difference and movement lines carried after the sales lines (§3.2
    ``day``); their net goes into the cash walletable's payment. A day without sales lines
    gives ([], None) whatever is folded.
    """
    s = ctx.settings
    lines: list[DetailLine] = []
    settled: list[tuple[str, int, Method]] = []
    for method in METHOD_ORDER:
        method_lines = _summary_lines(ctx, acc, method)
        lines.extend(method_lines)
        walletable = s.settlement_walletable(method)
        if walletable is not None:
            settled.append((walletable, sum(d.amount for d in method_lines), method))
    if not lines:
        return [], None
    lines.extend(folded)
    if len(lines) > MAX_DEAL_LINES:
        return [], f"day: {len(lines)} lines exceed freee's {MAX_DEAL_LINES}"
    total = sum(d.amount for d in lines)
    if total <= 0:
        return [], f"day: the deal total {total} is not above 0"
    for _w, amount, method in settled:
        if amount < 0:
            return [], f"day: settled method {method.value} totals {amount}, below 0"
    net = sum(d.amount for d in folded)
    payments = [(walletable, amount) for walletable, amount, _m in settled]
    cash_into_drawer = s.settlement_walletable(Method.CASH) == s.cash_walletable
    if folded:
        if cash_into_drawer:
            index = next(i for i, (_w, _a, m) in enumerate(settled) if m is Method.CASH)
            payments[index] = (s.cash_walletable, payments[index][1] + net)
            cash = payments[index][1]
        else:
            payments.append((s.cash_walletable, net))
            cash = net
        if cash < 0:
            return [], f"day: the cash payment {cash} is below 0"
    settled_sum = sum(amount for _w, amount in payments)
    if settled_sum > total:
        return [], f"day: settled totals {settled_sum} exceed the deal total {total}"
    paid = [
        PaymentLine(ctx.business_date, walletable, amount)
        for walletable, amount in payments
        if amount != 0
    ]
    return [ctx.deal("S", DealType.INCOME, lines, paid)], None


def _foldable(ctx: _Context, difference: int, movements: Sequence[Movement]) -> tuple[
    list[DetailLine], list[Movement]
]:
    """The lines the ``day`` deal carries for the cash difference and the movements whose
    rule is a deal with the EX tax name (§3.2), and those movements (numeric order)."""
    s = ctx.settings
    lines: list[DetailLine] = []
    if difference != 0:
        account = s.cash_over_account if difference > 0 else s.cash_short_account
        lines.append(
            ctx.line(account, s.ex_tax_name, difference, 0, f"{ctx.store_label} 現金過不足")
        )
    taken: list[Movement] = []
    for mv in sorted(movements, key=lambda m: m.movement_no):
        rule = s.movement_rule(movement_reason_code(mv), mv.direction)
        if rule.kind is not PostingKind.DEAL or rule.tax != s.ex_tax_name:
            continue
        if rule.account is None:  # pragma: no cover - guaranteed by the parser
            raise ValueError("deal rule without account")
        amount = mv.amount if mv.direction is Direction.IN else -mv.amount
        lines.append(ctx.line(rule.account, rule.tax, amount, 0, movement_description(mv)))
        taken.append(mv)
    return lines, taken


# ---------------------------------------------------------------------------------------------
# 3.3 cash difference, 3.4 movements


def _cash_difference(ctx: _Context, difference: int) -> list[Posting]:
    if difference == 0:
        return []
    s = ctx.settings
    amount = abs(difference)
    type_, account = (
        (DealType.INCOME, s.cash_over_account)
        if difference > 0
        else (DealType.EXPENSE, s.cash_short_account)
    )
    line = ctx.line(account, s.ex_tax_name, amount, 0, f"{ctx.store_label} 現金過不足")
    payment = PaymentLine(ctx.business_date, s.cash_walletable, amount)
    return [ctx.deal("D", type_, [line], [payment])]


def movement_description(mv: Movement) -> str:
    """reason_name, or reason_code when reason_name is ``-`` (the parser reads ``-`` as ``""``)."""
    for text in (mv.reason_name, mv.reason_code):
        if text not in ("", "-"):
            return text
    return "-"


def movement_reason_code(mv: Movement) -> str:
    """The key of a movement's rule: its reason_code, ``-`` when empty."""
    return mv.reason_code or "-"


def _movement(ctx: _Context, mv: Movement) -> Posting:
    s = ctx.settings
    rule = s.movement_rule(movement_reason_code(mv), mv.direction)
    suffix = f"M{mv.movement_no}"
    text = movement_description(mv)
    if rule.kind is PostingKind.TRANSFER:
        if rule.walletable is None:  # pragma: no cover - guaranteed by the parser
            raise ValueError("transfer rule without walletable")
        ref = ctx.ref(suffix)
        source, target = (
            (rule.walletable, s.cash_walletable)
            if mv.direction is Direction.IN
            else (s.cash_walletable, rule.walletable)
        )
        return Posting(
            ref_number=ref,
            kind=PostingKind.TRANSFER,
            type=None,
            issue_date=ctx.business_date,
            due_date=None,
            partner=None,
            details=(),
            payments=(),
            transfer=TransferPlan(ctx.business_date, source, target, mv.amount, f"{text} {ref}"),
        )
    if rule.account is None or rule.tax is None:  # pragma: no cover - guaranteed by the parser
        raise ValueError("deal rule without account or tax")
    vat = 0 if rule.tax == s.ex_tax_name else None
    line = ctx.line(rule.account, rule.tax, mv.amount, vat, text)
    type_ = DealType.INCOME if mv.direction is Direction.IN else DealType.EXPENSE
    payment = PaymentLine(ctx.business_date, s.cash_walletable, mv.amount)
    return ctx.deal(suffix, type_, [line], [payment])


# ---------------------------------------------------------------------------------------------
# the day


def plan_day(
    day: BusinessDay, store_code: str, terminal_no: str, settings: MappingSettings
) -> DayPlan:
    """The ready plan of an accepted day (it passed register-link.md section 6).

    ``settings`` are the register's (``MappingSettings.for_register``). Postings: sales
    (methods in order, chunks in order), cash difference, movements in record order.
    """
    ctx = _Context(store_code, terminal_no, day.business_date, settings)
    shares = _day_shares(day)
    granularity = settings.granularity
    fallback: str | None = None
    difference = day.cash_count.difference if day.cash_count else day.close.cash_difference
    folded_ids: set[int] = set()
    sales: list[Posting] = []
    if granularity is Granularity.RECEIPT:
        sales = _sales_receipt(ctx, shares)
    else:
        acc = _by_method_class(shares)
        if granularity is Granularity.DAY:
            fold_lines, fold_movements = _foldable(ctx, difference, day.movements)
            if fold_lines:
                sales, refused = _sales_day(ctx, acc, fold_lines)
                if sales and refused is None:
                    folded_ids = {id(mv) for mv in fold_movements}
                    difference = 0
                else:
                    sales = []
            if not sales:
                sales, fallback = _sales_day(ctx, acc)
            if fallback is not None:
                granularity = Granularity.SUMMARY
                sales = _sales_summary(ctx, acc)
        else:
            sales = _sales_summary(ctx, acc)
    postings = [
        *sales,
        *_cash_difference(ctx, difference),
        *(_movement(ctx, mv) for mv in day.movements if id(mv) not in folded_ids),
    ]
    return DayPlan(
        store_code=store_code,
        terminal_no=terminal_no,
        business_date=day.business_date,
        close_no=day.close_no,
        status=PlanStatus.READY,
        reason=None,
        granularity=granularity,
        totals=day_totals(day),
        postings=tuple(postings),
        fallback=fallback,
    )


def held_plan(
    store_code: str,
    terminal_no: str,
    business_date: date,
    close_no: int,
    reason: str,
    totals: DayTotals,
    settings: MappingSettings,
) -> DayPlan:
    """A held day: its reason and totals, no postings, the configured granularity."""
    return DayPlan(
        store_code=store_code,
        terminal_no=terminal_no,
        business_date=business_date,
        close_no=close_no,
        status=PlanStatus.HELD,
        reason=reason,
        granularity=settings.granularity,
        totals=totals,
        postings=(),
    )


def held_day_plan(
    day: BusinessDay, store_code: str, terminal_no: str, settings: MappingSettings, reason: str
) -> DayPlan:
    """A held assembled day: totals summed from its records as they stand."""
    return held_plan(
        store_code,
        terminal_no,
        day.business_date,
        day.close_no,
        reason,
        day_totals(day),
        settings,
    )


def records_not_here_plan(
    close: Close, store_code: str, terminal_no: str, settings: MappingSettings, close_no: int
) -> DayPlan:
    """A re-close of a day whose records are not at hand: held, Z figures, tax null."""
    return held_plan(
        store_code,
        terminal_no,
        close.business_date,
        close_no,
        RECORDS_NOT_IN_FILE,
        close_totals(close),
        settings,
    )
