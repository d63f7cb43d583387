"""Builders of BusinessDay values for the mapping tests, and a hypothesis strategy for days.

Records are built consistently (L/X/P/E, C and Z figures match), so the days would pass
register-link.md section 6; the mapping itself never looks at L records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from gatewayd.protocol.records import (
    METHOD_ORDER,
    TAX_CLASS_ORDER,
    BusinessDay,
    CashCount,
    Close,
    Direction,
    ItemLine,
    Kind,
    Method,
    Movement,
    OpenDay,
    Payment,
    ReceiptTax,
    TaxClass,
    TaxMode,
    Transaction,
    TransactionEnd,
    TransactionStart,
)
from gatewayd.settings_reader import TableReader
from gatewayd.sync.mapping import MAX_DEAL_LINES
from gatewayd.sync.mapping_settings import MappingSettings, parse_mapping
from gatewayd.sync.plan import DayPlan, DealType, Granularity, PostingKind

BUSINESS_DATE = date(2025, 1, 10)

ClassSpec = Sequence[tuple[TaxClass | str, int, int]]  # (class, gross, tax)
PaymentSpec = Sequence[tuple[Method | str, int]]  # (method, amount)


@dataclass
class DayBuilder:
    """Appends records with contiguous numbers; ``build()`` adds the C and Z."""

    business_date: date = BUSINESS_DATE
    opening_cash: int = 30000
    first_no: int = 1
    next_receipt: int = 1
    next_movement: int = 1
    _no: int = 0
    _opening: OpenDay | None = None
    transactions: list[Transaction] = field(default_factory=list)
    movements: list[Movement] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._no = self.first_no
        self._opening = OpenDay(self._no, self.business_date, self._ts(), "S01", self.opening_cash)

    def _ts(self) -> datetime:
        return datetime.combine(self.business_date, time(10, 0))

    def _num(self) -> int:
        self._no += 1
        return self._no

    def receipt(
        self,
        classes: ClassSpec,
        payments: PaymentSpec,
        kind: Kind | str = Kind.SALE,
        ref: int | None = None,
        receipt_no: int | None = None,
    ) -> Transaction:
        """A receipt in IN tax mode: one L per class (amount = gross)."""
        rno = self.next_receipt if receipt_no is None else receipt_no
        self.next_receipt = max(self.next_receipt, rno + 1)
        start = TransactionStart(self._num(), rno, Kind(kind), ref, self._ts(), "S01", TaxMode.IN)
        cls_sorted = sorted(
            ((TaxClass(c), g, t) for c, g, t in classes),
            key=lambda x: TAX_CLASS_ORDER.index(x[0]),
        )
        lines = tuple(
            ItemLine(self._num(), rno, i, "D1", f"I{i}", "品", Decimal(1), g, g, c)
            for i, (c, g, _t) in enumerate(cls_sorted, start=1)
        )
        taxes = tuple(ReceiptTax(self._num(), rno, c, g, t, g) for c, g, t in cls_sorted)
        pays = tuple(Payment(self._num(), rno, Method(m), "-", a, a, 0) for m, a in payments)
        end = TransactionEnd(
            self._num(), rno, sum(g for _c, g, _t in cls_sorted), sum(t for *_x, t in cls_sorted)
        )
        tx = Transaction(start, lines, taxes, pays, end)
        self.transactions.append(tx)
        return tx

    def void(self, original: Transaction) -> Transaction:
        """A VOID of ``original``: every amount negated."""
        return self.receipt(
            [(x.tax_class, -x.gross, -x.tax) for x in original.taxes],
            [(p.method, -p.amount) for p in original.payments],
            kind=Kind.VOID,
            ref=original.receipt_no,
        )

    def movement(
        self,
        direction: Direction | str,
        amount: int,
        reason_code: str = "R99",
        reason_name: str = "両替",
    ) -> Movement:
        mv = Movement(
            self._num(),
            self.next_movement,
            Direction(direction),
            reason_code,
            reason_name,
            amount,
            self._ts(),
            "S01",
        )
        self.next_movement += 1
        self.movements.append(mv)
        return mv

    def build(self, difference: int = 0) -> BusinessDay:
        counted = [t for t in self.transactions if t.counted]
        by_class = dict.fromkeys(TAX_CLASS_ORDER, 0)
        by_method = dict.fromkeys(METHOD_ORDER, 0)
        for t in counted:
            for x in t.taxes:
                by_class[x.tax_class] += x.gross
            for p in t.payments:
                by_method[p.method] += p.amount
        moves = {d: sum(m.amount for m in self.movements if m.direction is d) for d in Direction}
        expected = (
            self.opening_cash + by_method[Method.CASH] + moves[Direction.IN] - moves[Direction.OUT]
        )
        cash = CashCount(self._num(), expected, expected + difference, difference)
        assert self._opening is not None
        close = Close(
            self._num(),
            self.business_date,
            1,
            self._ts(),
            len(counted),
            sum(t.end.total for t in counted if t.end is not None),
            by_class,
            by_method,
            moves,
            difference,
            self._opening.number,
        )
        # transactions and movements interleave in the journal; the day keeps each in order
        return BusinessDay(
            self._opening, tuple(self.transactions), tuple(self.movements), cash, close
        )


def tax_of(cls: TaxClass, gross: int) -> int:
    """A register-like tax for an IN-mode gross (rounded down, sign kept)."""
    rate = {TaxClass.STANDARD: 10, TaxClass.REDUCED: 8}.get(cls, 0)
    magnitude = abs(gross) * rate // (100 + rate)
    return magnitude if gross >= 0 else -magnitude


# ---------------------------------------------------------------------------------------------
# hypothesis


@dataclass(frozen=True)
class ReceiptDraft:
    classes: tuple[tuple[TaxClass, int, int], ...]
    payments: tuple[tuple[Method, int], ...]
    kind: Kind


methods_st = st.sampled_from(METHOD_ORDER)


@st.composite
def receipt_drafts(draw: st.DrawFn) -> ReceiptDraft:
    """A receipt: mixed classes (some negative, discount-like), split and mixed-sign
    payments, negative receipts (RETURN), zero totals, TRAINING."""
    shape = draw(st.sampled_from(["sale", "sale", "sale", "return", "zero", "training"]))
    classes_present = draw(
        st.lists(st.sampled_from(TAX_CLASS_ORDER), min_size=1, max_size=4, unique=True)
    )
    classes: list[tuple[TaxClass, int, int]] = []
    for c in classes_present:
        if shape == "zero":
            g = 0
        else:
            g = draw(
                st.one_of(
                    st.integers(0, 30000),
                    st.integers(-3000, 30000),
                    st.integers(1, 9),
                )
            )
        classes.append((c, g, tax_of(c, g)))
    total = sum(g for _c, g, _t in classes)
    if shape == "return":
        classes = [(c, -g, -t) for c, g, t in classes]
        total = -total
    n_pay = draw(st.integers(0 if total == 0 else 1, 4))
    payments: list[tuple[Method, int]] = []
    rest = total
    for i in range(n_pay):
        m = draw(methods_st)
        if i == n_pay - 1:
            amount = rest
        elif total == 0:
            amount = 0
        else:
            amount = draw(
                st.one_of(
                    st.integers(0, max(abs(total), 1)),
                    st.integers(-abs(total), abs(total)),
                )
            )
            if total < 0:
                amount = -amount
        payments.append((m, amount))
        rest -= amount
    kind = {"return": Kind.RETURN, "training": Kind.TRAINING}.get(shape, Kind.SALE)
    return ReceiptDraft(tuple(classes), tuple(payments), kind)


@st.composite
def business_days(draw: st.DrawFn, max_receipts: int = 25) -> BusinessDay:
    """A whole accepted day: receipts (with some VOIDs of earlier ones), movements, C, Z."""
    b = DayBuilder()
    drafts = draw(st.lists(receipt_drafts(), max_size=max_receipts))
    done: list[Transaction] = []
    for d in drafts:
        done.append(b.receipt(d.classes, d.payments, d.kind))
        if draw(st.integers(0, 9)) == 0:
            original = draw(st.sampled_from(done))
            if original.start.kind is Kind.SALE:
                b.void(original)
        if draw(st.integers(0, 7)) == 0:
            b.movement(
                draw(st.sampled_from(list(Direction))),
                draw(st.integers(1, 50000)),
                draw(st.sampled_from(["R01", "R02", "R99"])),
                draw(st.sampled_from(["釣銭補充", "-", "銀行入金"])),
            )
    difference = draw(st.one_of(st.just(0), st.integers(-2000, 2000)))
    return b.build(difference)


# ---------------------------------------------------------------------------------------------
# plan invariants (shared by the property tests)


@st.composite
def mapping_settings(draw: st.DrawFn) -> MappingSettings:
    methods: dict[str, Any] = {}
    for m in METHOD_ORDER:
        choice = draw(st.sampled_from(["default", "unsettled", "wallet", "due"]))
        if choice == "unsettled":
            methods[m.value] = {"settlement": "unsettled", "partner": f"P-{m.value}"}
        elif choice == "wallet":
            methods[m.value] = {"settlement": f"walletable:W-{m.value}"}
        elif choice == "due":
            methods[m.value] = {"due_days": draw(st.integers(0, 60))}
    table = {
        "granularity": draw(st.sampled_from([g.value for g in Granularity])),
        "methods": methods,
        "movements": {"R02": {"walletable": "普通預金"}, "R01": {"account": "消耗品費"}},
    }
    return parse_mapping(TableReader(table, "mapping"))


def check_plan(day: BusinessDay, s: MappingSettings, p: DayPlan) -> None:
    class_of = {s.tax_names[c]: c for c in TAX_CLASS_ORDER}
    method_of = {s.item_name(m): m for m in METHOD_ORDER}
    sales = [q for q in p.postings if q.ref_number.split("-")[4] == "S"]
    by_class: Counter[Any] = Counter()
    by_method: Counter[Any] = Counter()
    vat = 0
    folded = [d for q in sales for d in q.details if d.item is None]  # §3.2 day: cash lines
    for q in sales:
        assert q.kind is PostingKind.DEAL and q.type is DealType.INCOME
        assert 1 <= len(q.details) <= MAX_DEAL_LINES
        for d in q.details:
            if d.item is None:
                continue
            assert d.amount != 0 or d.vat != 0
            by_class[class_of[d.tax]] += d.amount
            by_method[method_of[d.item or ""]] += d.amount
            assert d.vat is not None
            vat += d.vat
    z = day.close
    assert {c: by_class[c] for c in TAX_CLASS_ORDER} == z.class_totals
    assert {m: by_method[m] for m in METHOD_ORDER} == z.method_totals
    assert vat == p.totals.tax
    assert p.totals.gross == z.gross_total
    assert dict(p.totals.by_class) == z.class_totals
    assert dict(p.totals.by_method) == z.method_totals

    if p.granularity is Granularity.DAY:
        assert len(sales) <= 1
        for q in sales:
            assert q.ref_number.endswith("-S") and q.partner is None and q.due_date is None
            assert q.amount > 0 and 0 <= q.paid <= q.amount
            assert all(x.amount > 0 for x in q.payments)
    else:
        if s.granularity is Granularity.DAY:
            assert p.granularity is Granularity.SUMMARY and p.fallback is not None
        for q in sales:
            method = method_of[q.details[0].item or ""]
            assert all(method_of[d.item or ""] is method for d in q.details)
            rule = s.method_rule(method)
            assert q.partner == rule.partner
            if rule.walletable is not None:
                expected = [(rule.walletable, q.amount)] if q.amount != 0 else []
                assert [(x.walletable, x.amount) for x in q.payments] == expected
                assert q.due_date is None
            else:
                assert q.payments == ()
                assert (q.due_date is None) == (rule.due_days is None)
        if p.granularity is Granularity.RECEIPT:
            for method in METHOD_ORDER:
                chunks = [q for q in sales if method_of[q.details[0].item or ""] is method]
                assert [len(q.details) for q in chunks[:-1]] == [100] * (len(chunks) - 1)
                assert [q.ref_number.rsplit("-", 1)[1] for q in chunks] == [
                    str(i) for i in range(1, len(chunks) + 1)
                ]

    # cash difference and movements, in order, after sales (or folded into the day's deal)
    own_moves = list(day.movements)
    if folded:
        assert p.granularity is Granularity.DAY
        (deal,) = sales
        assert deal.details[: len(deal.details) - len(folded)] == tuple(
            d for d in deal.details if d.item is not None
        )  # folded lines come after the sales lines
        expect = []
        if z.cash_difference != 0:
            account = s.cash_over_account if z.cash_difference > 0 else s.cash_short_account
            expect.append((account, z.cash_difference))
        taken = []
        for m in sorted(day.movements, key=lambda m: m.movement_no):
            rule = s.movement_rule(m.reason_code or "-", m.direction)
            if rule.kind is PostingKind.DEAL and rule.tax == s.ex_tax_name:
                taken.append(m)
                expect.append((rule.account, m.amount if m.direction.value == "IN" else -m.amount))
        assert [(d.account_item, d.amount) for d in folded] == expect
        assert all(d.tax == s.ex_tax_name and d.vat == 0 for d in folded)
        own_moves = [m for m in day.movements if m not in taken]
        cash = [x.amount for x in deal.payments if x.walletable == s.cash_walletable]
        assert all(a > 0 for a in cash)
    rest = p.postings[len(sales) :]
    diff = [q for q in rest if q.ref_number.endswith("-D")]
    assert len(diff) == (1 if z.cash_difference != 0 and not folded else 0)
    moves = rest[len(diff) :]
    assert [q.ref_number.rsplit("-", 1)[1] for q in moves] == [
        f"M{m.movement_no}" for m in own_moves
    ]
    for q, m in zip(moves, own_moves, strict=True):
        assert q.amount == m.amount
        if q.kind is PostingKind.DEAL:
            assert q.paid == m.amount and q.payments[0].walletable == s.cash_walletable
    assert all(q.issue_date == day.business_date for q in p.postings)
    assert len({q.ref_number for q in p.postings}) == len(p.postings)
    assert DayPlan.from_json(p.to_json()).to_json() == p.to_json()
