"""Property tests: over hundreds of generated days and every granularity, the plan adds up.

Per tax class and per method, the sales lines sum to the Z totals; vat sums to the day's tax;
settlement, chunking and ordering rules hold; the plan survives its JSON round trip.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mapping_fixtures import business_days

from gatewayd.protocol.records import METHOD_ORDER, TAX_CLASS_ORDER, BusinessDay
from gatewayd.settings_reader import TableReader
from gatewayd.sync.mapping import MAX_DEAL_LINES, allocate_receipt, plan_day
from gatewayd.sync.mapping_settings import MappingSettings, parse_mapping
from gatewayd.sync.plan import DayPlan, DealType, Granularity, PostingKind


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
    for q in sales:
        assert q.kind is PostingKind.DEAL and q.type is DealType.INCOME
        assert 1 <= len(q.details) <= MAX_DEAL_LINES
        for d in q.details:
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

    # cash difference and movements, in order, after sales
    rest = p.postings[len(sales) :]
    diff = [q for q in rest if q.ref_number.endswith("-D")]
    assert len(diff) == (1 if z.cash_difference != 0 else 0)
    moves = rest[len(diff) :]
    assert [q.ref_number.rsplit("-", 1)[1] for q in moves] == [
        f"M{m.movement_no}" for m in day.movements
    ]
    for q, m in zip(moves, day.movements, strict=True):
        assert q.amount == m.amount
        if q.kind is PostingKind.DEAL:
            assert q.paid == m.amount and q.payments[0].walletable == s.cash_walletable
    assert all(q.issue_date == day.business_date for q in p.postings)
    assert len({q.ref_number for q in p.postings}) == len(p.postings)
    assert DayPlan.from_json(p.to_json()).to_json() == p.to_json()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(business_days(), mapping_settings())
def test_plans_add_up_to_the_z(day: BusinessDay, s: MappingSettings) -> None:
    p = plan_day(day, "0001", "01", s)
    check_plan(day, s, p)
    assert plan_day(day, "0001", "01", s) == p  # deterministic


@settings(max_examples=150, deadline=None)
@given(business_days(), st.sampled_from(list(Granularity)))
def test_every_granularity_on_the_same_day(day: BusinessDay, g: Granularity) -> None:
    s = parse_mapping(TableReader({"granularity": g.value}, "mapping"))
    check_plan(day, s, plan_day(day, "0001", "01", s))


@settings(max_examples=200, deadline=None)
@given(business_days())
def test_day_allocation_per_receipt(day: BusinessDay) -> None:
    for tx in day.transactions:
        shares = allocate_receipt(tx)
        assert tx.end is not None
        if tx.end.total == 0:
            assert shares == ()
            continue
        for i, pay in enumerate(tx.payments):
            assert sum(s.gross for s in shares if s.payment_index == i) == pay.amount
            assert all(s.method is pay.method for s in shares if s.payment_index == i)
        for x in tx.taxes:
            assert sum(s.gross for s in shares if s.tax_class is x.tax_class) == x.gross
            assert sum(s.tax for s in shares if s.tax_class is x.tax_class) == x.tax
