"""freee-mapping.md §3.3 cash difference, §3.4 movements, and the order of postings."""

from __future__ import annotations

from datetime import date
from typing import Any

from mapping_fixtures import DayBuilder

from gatewayd.protocol.records import Method, TaxClass
from gatewayd.settings_reader import TableReader
from gatewayd.sync.mapping import plan_day
from gatewayd.sync.mapping_settings import MappingSettings, parse_mapping
from gatewayd.sync.plan import DayPlan, DealType, PostingKind

D = date(2025, 1, 10)


def mapping(**table: Any) -> MappingSettings:
    return parse_mapping(TableReader(table, "mapping"))


def plan(b: DayBuilder, difference: int = 0, settings: MappingSettings | None = None) -> DayPlan:
    return plan_day(b.build(difference), "0001", "01", settings or MappingSettings())


def test_cash_over_is_income_on_the_over_account() -> None:
    p = plan(DayBuilder(), difference=120, settings=mapping(section="渋谷店", tags=["POS"]))
    (d,) = p.postings
    assert d.to_json() == {
        "ref_number": "POS-0001-01-20250110-D",
        "kind": "deal",
        "type": "income",
        "issue_date": "2025-01-10",
        "due_date": None,
        "partner": None,
        "details": [
            {
                "account_item": "雑収入",
                "tax": "対象外",
                "amount": 120,
                "vat": 0,
                "item": None,
                "section": "渋谷店",
                "tags": ["POS"],
                "description": "店舗0001 現金過不足",
            }
        ],
        "payments": [{"date": "2025-01-10", "walletable": "現金", "amount": 120}],
        "transfer": None,
    }


def test_cash_short_is_expense_for_the_absolute_value() -> None:
    settings = mapping(cash_short_account="現金過不足損", cash_walletable="レジ現金")
    (d,) = plan(DayBuilder(), difference=-35, settings=settings).postings
    assert d.type is DealType.EXPENSE
    assert [(x.account_item, x.amount, x.vat, x.tax) for x in d.details] == [
        ("現金過不足損", 35, 0, "対象外")
    ]
    assert [(x.walletable, x.amount) for x in d.payments] == [("レジ現金", 35)]


def test_no_difference_no_posting() -> None:
    assert plan(DayBuilder(), difference=0).postings == ()


def test_movement_defaults_are_deals_settled_against_cash() -> None:
    b = DayBuilder()
    b.movement("IN", 10000, "R77", "釣銭補充")
    b.movement("OUT", 3000, "R78", "-")
    p = plan(b)
    m1, m2 = p.postings
    assert m1.ref_number == "POS-0001-01-20250110-M1"
    assert (m1.kind, m1.type) == (PostingKind.DEAL, DealType.INCOME)
    assert [
        (x.account_item, x.tax, x.amount, x.vat, x.item, x.description) for x in m1.details
    ] == [("仮受金", "対象外", 10000, 0, None, "釣銭補充")]
    assert [(x.date, x.walletable, x.amount) for x in m1.payments] == [(D, "現金", 10000)]
    assert m2.type is DealType.EXPENSE
    assert m2.details[0].account_item == "仮払金"
    assert m2.details[0].description == "R78"  # reason_name '-': the reason_code


def test_movement_deal_rule_with_a_taxed_account_leaves_vat_to_freee() -> None:
    settings = mapping(
        tax_names={"EX": "不課税"},
        movements={"R01": {"kind": "deal", "account": "消耗品費", "tax": "課対仕入10%"}},
    )
    b = DayBuilder()
    b.movement("OUT", 1100, "R01", "電池購入")
    b.movement("OUT", 500, "R09", "-")
    m1, m2 = plan(b, settings=settings).postings
    assert [(x.account_item, x.tax, x.vat) for x in m1.details] == [
        ("消耗品費", "課対仕入10%", None)
    ]
    # default rule takes the configured EX tax name, and vat 0 with it
    assert [(x.account_item, x.tax, x.vat) for x in m2.details] == [("仮払金", "不課税", 0)]


def test_movement_transfer_directions_and_description() -> None:
    settings = mapping(movements={"R02": {"walletable": "普通預金"}})
    b = DayBuilder()
    b.movement("OUT", 50000, "R02", "銀行入金")
    b.movement("IN", 20000, "R02", "-")
    m1, m2 = plan(b, settings=settings).postings
    assert m1.to_json() == {
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
            "from": "現金",
            "to": "普通預金",
            "amount": 50000,
            "description": "銀行入金 POS-0001-01-20250110-M1",
        },
    }
    assert m2.transfer is not None
    assert (m2.transfer.from_walletable, m2.transfer.to_walletable) == ("普通預金", "現金")
    assert m2.transfer.description == "R02 POS-0001-01-20250110-M2"


def test_movement_default_may_be_a_transfer() -> None:
    settings = mapping(movement_defaults={"IN": {"kind": "transfer", "walletable": "金庫"}})
    b = DayBuilder()
    b.movement("IN", 100, "X", "補充")
    b.movement("OUT", 100, "X", "出金")
    m1, m2 = plan(b, settings=settings).postings
    assert m1.kind is PostingKind.TRANSFER and m2.kind is PostingKind.DEAL


def test_postings_order_sales_then_difference_then_movements() -> None:
    b = DayBuilder()
    b.movement("IN", 100, "R1", "a")
    b.receipt([(TaxClass.STANDARD, 1100, 100)], [(Method.QR, 600), (Method.CASH, 500)])
    b.movement("OUT", 100, "R1", "b")
    b.receipt([(TaxClass.EXEMPT, 300, 0)], [(Method.OTHER, 300)])
    b.movement("IN", 7, "R1", "c")
    p = plan(b, difference=-1)
    assert [q.ref_number.removeprefix("POS-0001-01-20250110-") for q in p.postings] == [
        "S-CASH",
        "S-QR",
        "S-OTHER",
        "D",
        "M1",
        "M2",
        "M3",
    ]
    assert all(q.issue_date == D for q in p.postings)


def test_ref_numbers_use_store_terminal_and_business_date() -> None:
    b = DayBuilder(business_date=date(2024, 12, 31))
    b.movement("IN", 1)
    p = plan_day(b.build(), "ST9", "T2", MappingSettings())
    assert p.postings[0].ref_number == "POS-ST9-T2-20241231-M1"
    assert (p.store_code, p.terminal_no, p.close_no) == ("ST9", "T2", 1)


def test_parsed_dash_fields_read_as_empty_text() -> None:
    """The journal parser turns ``-`` into ``""``: the description rule still applies."""
    settings = mapping(movements={"-": {"walletable": "金庫"}})
    b = DayBuilder()
    b.movement("OUT", 10, "R5", "")
    b.movement("IN", 20, "", "")
    m1, m2 = plan(b, settings=settings).postings
    assert m1.details[0].description == "R5"
    assert m2.transfer is not None and m2.transfer.from_walletable == "金庫"
    assert m2.transfer.description == "- POS-0001-01-20250110-M2"


def test_held_day_plan_keeps_totals_and_configured_granularity() -> None:
    from gatewayd.sync.mapping import held_day_plan

    b = DayBuilder()
    b.receipt([(TaxClass.STANDARD, 1100, 100)], [(Method.CREDIT, 1100)])
    b.receipt([(TaxClass.STANDARD, 500, 45)], [(Method.CASH, 500)], "TRAINING")
    b.movement("IN", 100)
    p = held_day_plan(
        b.build(), "0001", "01", mapping(granularity="day"), "check 3: Z gross_total 1 ≠ 1100"
    )
    assert p.to_json() == {
        "store_code": "0001",
        "terminal_no": "01",
        "business_date": "2025-01-10",
        "close_no": 1,
        "status": "held",
        "reason": "check 3: Z gross_total 1 ≠ 1100",
        "granularity": "day",
        "totals": {
            "gross": 1100,
            "tax": 100,
            "by_class": {"10": 1100, "8R": 0, "0": 0, "EX": 0},
            "by_method": {
                "CASH": 0,
                "CREDIT": 1100,
                "EMONEY": 0,
                "QR": 0,
                "GIFT": 0,
                "POINT": 0,
                "OTHER": 0,
            },
        },
        "postings": [],
    }
