"""freee-mapping.md §3.2 `day`: the cash difference and 対象外 movements fold into the S deal.

A store-day is then one call in the usual case; a day whose folded deal could not be
expressed folds nothing and posts `D` and `M{n}` as in §3.3–3.4. `summary` and `receipt` keep
their own postings.
"""

from __future__ import annotations

from typing import Any

import pytest
from mapping_fixtures import DayBuilder

from gatewayd.protocol.records import Method, TaxClass
from gatewayd.settings_reader import TableReader
from gatewayd.sync.mapping import plan_day
from gatewayd.sync.mapping_settings import MappingSettings, parse_mapping
from gatewayd.sync.plan import DayPlan, DealType, Granularity, PostingKind

C10 = TaxClass.STANDARD
CASH, CREDIT = Method.CASH, Method.CREDIT
REF = "POS-0001-01-20250110-"
RULES = {
    "movements": {
        "R02": {"walletable": "普通預金"},  # a transfer: never folds
        "R05": {"account": "消耗品費", "tax": "課対仕入10%"},  # another 税区分: never folds
        "R07": {"account": "雑費"},  # no tax: the EX name, so it folds
    }
}


def mapping(**table: Any) -> MappingSettings:
    return parse_mapping(TableReader({"granularity": "day", **RULES, **table}, "mapping"))


def plan(b: DayBuilder, difference: int, settings: MappingSettings) -> DayPlan:
    return plan_day(b.build(difference), "0001", "01", settings)


def suffixes(p: DayPlan) -> list[str]:
    return [q.ref_number.removeprefix(REF) for q in p.postings]


def folded(p: DayPlan) -> list[tuple[str, int, str]]:
    return [(d.account_item, d.amount, d.description) for d in p.postings[0].details if not d.item]


def busy_day() -> DayBuilder:
    b = DayBuilder()
    b.receipt([(C10, 11000, 1000)], [(CASH, 8000), (CREDIT, 3000)])
    b.movement("IN", 5000, "R01", "釣銭準備")  # 1: default IN rule, 仮受金 対象外 → folds
    b.movement("OUT", 2000, "R02", "銀行入金")  # 2: transfer
    b.movement("OUT", 700, "R05", "文具")  # 3: taxed deal
    b.movement("OUT", 300, "R07", "-")  # 4: deal without tax → folds, described by its code
    return b


def test_difference_and_ex_movements_become_signed_lines_settled_through_cash() -> None:
    p = plan(busy_day(), -150, mapping())
    assert p.granularity is Granularity.DAY and p.fallback is None
    assert suffixes(p) == ["S", "M2", "M3"]
    deal = p.postings[0]
    assert deal.type is DealType.INCOME
    assert [d.item is None for d in deal.details] == [False, False, True, True, True]
    assert folded(p) == [
        ("雑損失", -150, "店舗0001 現金過不足"),  # a minus line (控除・マイナス行)
        ("仮受金", 5000, "釣銭準備"),
        ("雑費", -300, "R07"),
    ]
    assert all(
        d.tax == "対象外" and d.vat == 0 and d.section is None
        for d in deal.details
        if d.item is None
    )
    assert deal.amount == 11000 - 150 + 5000 - 300
    # CASH 8000 − 150 + 5000 − 300 into the drawer; CREDIT's 3000 stays unsettled
    assert [(x.walletable, x.amount) for x in deal.payments] == [("現金", 12550)]
    # the movements that do not fold keep their own postings, as in §3.4
    transfer, taxed = p.postings[1:]
    assert transfer.kind is PostingKind.TRANSFER and transfer.amount == 2000
    assert taxed.details[0].tax == "課対仕入10%" and taxed.details[0].vat is None


def test_cash_over_is_a_plus_line_on_the_over_account() -> None:
    b = DayBuilder()
    b.receipt([(C10, 1100, 100)], [(CASH, 1100)])
    p = plan(b, 80, mapping(section="渋谷店", tags=["POS"]))
    assert suffixes(p) == ["S"]
    (line,) = [d for d in p.postings[0].details if d.item is None]
    assert line.to_json() == {
        "account_item": "雑収入",
        "tax": "対象外",
        "amount": 80,
        "vat": 0,
        "item": None,
        "section": "渋谷店",
        "tags": ["POS"],
        "description": "店舗0001 現金過不足",
    }
    assert [x.amount for x in p.postings[0].payments] == [1180]


def test_movements_fold_in_numeric_movement_no_order() -> None:
    b = DayBuilder()
    b.receipt([(C10, 1100, 100)], [(CASH, 1100)])
    b.next_movement = 10
    b.movement("IN", 300, "R01", "十")
    b.next_movement = 9
    b.movement("IN", 200, "R01", "九")
    p = plan(b, 0, mapping())
    assert [desc for _a, _n, desc in folded(p)] == ["九", "十"]


def test_cash_not_settled_into_the_drawer_gets_its_own_payment_after_the_methods() -> None:
    b = DayBuilder()
    b.receipt([(C10, 2200, 200)], [(CASH, 1000), (CREDIT, 1200)])
    b.movement("IN", 400, "R01", "両替")
    settings = mapping(
        methods={
            "CASH": {"settlement": "walletable:レジ精算"},
            "CREDIT": {"settlement": "walletable:カード入金"},
        }
    )
    p = plan(b, 0, settings)
    assert suffixes(p) == ["S"]
    assert [(x.walletable, x.amount) for x in p.postings[0].payments] == [
        ("レジ精算", 1000),
        ("カード入金", 1200),
        ("現金", 400),
    ]
    # a net going out of the drawer would be a payment below 0: nothing folds
    b.movement("OUT", 900, "R01", "両替")
    assert suffixes(plan(b, 0, settings)) == ["S", "M1", "M2"]


def test_unsettled_cash_with_a_positive_net_pays_the_net_into_the_drawer() -> None:
    b = DayBuilder()
    b.receipt([(C10, 2200, 200)], [(CASH, 2200)])
    b.movement("IN", 500, "R01", "両替")
    p = plan(b, 0, mapping(methods={"CASH": {"settlement": "unsettled"}}))
    assert suffixes(p) == ["S"]
    assert [(x.walletable, x.amount) for x in p.postings[0].payments] == [("現金", 500)]


def test_a_zero_cash_payment_is_left_out() -> None:
    b = DayBuilder()
    b.receipt([(C10, 3000, 272)], [(CASH, 1000), (CREDIT, 2000)])
    b.movement("OUT", 1000, "R01", "両替")
    p = plan(b, 0, mapping())
    assert suffixes(p) == ["S"]
    assert p.postings[0].payments == () and p.postings[0].amount == 2000


def unfolded(b: DayBuilder, difference: int, settings: MappingSettings) -> DayPlan:
    """The same day planned with nothing to fold (no difference, no movements)."""
    bare = DayBuilder()
    bare.transactions = list(b.transactions)
    return plan(bare, 0, settings)


@pytest.mark.parametrize(
    ("make", "difference"),
    [
        # the cash payment would be below 0: CASH 1000 − OUT 1500
        (lambda b: b.movement("OUT", 1500, "R01", "両替"), 0),
        # the deal total would not be above 0: 1100 − 1100 short
        (lambda b: None, -1100),
    ],
)
def test_a_deal_that_cannot_be_expressed_folds_nothing(make: Any, difference: int) -> None:
    b = DayBuilder()
    b.receipt([(C10, 1100, 100)], [(CASH, 1000), (CREDIT, 100)])
    make(b)
    settings = mapping()
    p = plan(b, difference, settings)
    assert p.granularity is Granularity.DAY
    assert p.postings[0].details == unfolded(b, difference, settings).postings[0].details
    assert p.postings[0].payments == unfolded(b, difference, settings).postings[0].payments
    assert suffixes(p)[1:] == (["D"] if difference else ["M1"])


def test_more_than_100_lines_fold_nothing() -> None:
    b = DayBuilder()
    b.receipt([(C10, 110000, 10000)], [(CASH, 110000)])
    for _ in range(100):
        b.movement("IN", 10, "R01", "両替")
    p = plan(b, 0, mapping())
    assert suffixes(p) == ["S", *(f"M{n}" for n in range(1, 101))]
    assert all(d.item for d in p.postings[0].details)


def test_without_sales_lines_nothing_folds() -> None:
    b = DayBuilder()
    b.movement("IN", 500, "R01", "両替")
    p = plan(b, -20, mapping())
    assert suffixes(p) == ["D", "M1"]


@pytest.mark.parametrize("granularity", ["summary", "receipt"])
def test_summary_and_receipt_keep_their_own_postings(granularity: str) -> None:
    p = plan(busy_day(), -150, mapping(granularity=granularity))
    assert [s.split("-")[0] for s in suffixes(p)] == ["S", "S", "D", "M1", "M2", "M3", "M4"]
    assert all(d.item for q in p.postings if q.ref_number.split("-")[4] == "S" for d in q.details)


def test_fallback_to_summary_is_judged_on_the_sales_and_folds_nothing() -> None:
    b = DayBuilder()
    b.receipt([(C10, -1100, -100)], [(CASH, -1100)])  # refunds only: summary
    b.movement("IN", 5000, "R01", "両替")
    p = plan(b, 0, mapping())
    assert p.granularity is Granularity.SUMMARY and p.fallback is not None
    assert suffixes(p) == ["S-CASH", "M1"]
