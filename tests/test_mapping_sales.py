"""freee-mapping.md §3.2: sales deals for each granularity, with hand-checked figures."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from mapping_fixtures import DayBuilder

from gatewayd.protocol.records import BusinessDay, Kind, Method, TaxClass
from gatewayd.settings_reader import TableReader
from gatewayd.sync.mapping import plan_day
from gatewayd.sync.mapping_settings import MappingSettings, parse_mapping
from gatewayd.sync.plan import DayPlan, Granularity

C10, C8, C0, CEX = TaxClass.STANDARD, TaxClass.REDUCED, TaxClass.EXEMPT, TaxClass.OUT_OF_SCOPE
CASH, CREDIT, EMONEY, QR = Method.CASH, Method.CREDIT, Method.EMONEY, Method.QR


def mapping(**table: Any) -> MappingSettings:
    return parse_mapping(TableReader(table, "mapping"))


def plan(day: BusinessDay, settings: MappingSettings | None = None) -> DayPlan:
    return plan_day(day, "0001", "01", settings or MappingSettings())


def small_day() -> BusinessDay:
    b = DayBuilder()
    b.receipt([(C10, 1100, 100), (C8, 540, 40)], [(CASH, 1000), (CREDIT, 640)])  # receipt 1
    r2 = b.receipt([(C10, 2200, 200)], [(CASH, 2200)])  # receipt 2
    b.receipt([(C10, 500, 45)], [(CASH, 500)], Kind.TRAINING)  # receipt 3: counts nowhere
    b.void(r2)  # receipt 4
    b.receipt([(C8, 324, 24)], [(EMONEY, 324)])  # receipt 5
    return b.build()


def line(amount: int, vat: int, tax: str, item: str, description: str) -> dict[str, Any]:
    return {
        "account_item": "売上高",
        "tax": tax,
        "amount": amount,
        "vat": vat,
        "item": item,
        "section": None,
        "tags": [],
        "description": description,
    }


T10, T8 = "課税売上10%", "課税売上8%（軽）"
I_CASH, I_CREDIT, I_EMONEY = "【POS Regi】現金", "【POS Regi】クレジット", "【POS Regi】電子マネー"
D_CASH = "店舗0001 2025-01-10 現金"
D_CREDIT = "店舗0001 2025-01-10 クレジット"
D_EMONEY = "店舗0001 2025-01-10 電子マネー"


def test_summary_one_deal_per_method_one_line_per_class() -> None:
    p = plan(small_day())
    assert p.granularity is Granularity.SUMMARY
    js = p.to_json()
    assert js["totals"] == {
        "gross": 1964,
        "tax": 164,
        "by_class": {"10": 1100, "8R": 864, "0": 0, "EX": 0},
        "by_method": {
            "CASH": 1000,
            "CREDIT": 640,
            "EMONEY": 324,
            "QR": 0,
            "GIFT": 0,
            "POINT": 0,
            "OTHER": 0,
        },
    }
    assert js["postings"] == [
        {
            "ref_number": "POS-0001-01-20250110-S-CASH",
            "kind": "deal",
            "type": "income",
            "issue_date": "2025-01-10",
            "due_date": None,
            "partner": None,
            "details": [
                line(671, 61, T10, I_CASH, D_CASH),  # 671 + 2200 − 2200
                line(329, 24, T8, I_CASH, D_CASH),
            ],
            "payments": [{"date": "2025-01-10", "walletable": "現金", "amount": 1000}],
            "transfer": None,
        },
        {
            "ref_number": "POS-0001-01-20250110-S-CREDIT",
            "kind": "deal",
            "type": "income",
            "issue_date": "2025-01-10",
            "due_date": None,
            "partner": None,
            "details": [
                line(429, 39, T10, I_CREDIT, D_CREDIT),
                line(211, 16, T8, I_CREDIT, D_CREDIT),
            ],
            "payments": [],  # unsettled: 未決済
            "transfer": None,
        },
        {
            "ref_number": "POS-0001-01-20250110-S-EMONEY",
            "kind": "deal",
            "type": "income",
            "issue_date": "2025-01-10",
            "due_date": None,
            "partner": None,
            "details": [line(324, 24, T8, I_EMONEY, D_EMONEY)],
            "payments": [],
            "transfer": None,
        },
    ]


def test_receipt_one_line_per_receipt_class_method() -> None:
    p = plan(small_day(), mapping(granularity="receipt"))
    assert p.granularity is Granularity.RECEIPT
    cash = p.postings[0]
    assert cash.ref_number == "POS-0001-01-20250110-S-CASH-1"
    assert [(d.description, d.tax, d.amount, d.vat) for d in cash.details] == [
        ("レシート 1", T10, 671, 61),
        ("レシート 1", T8, 329, 24),
        ("レシート 2", T10, 2200, 200),
        ("レシート 4", T10, -2200, -200),  # the VOID, its own line
    ]
    assert cash.details[0].item == I_CASH
    assert [pay.amount for pay in cash.payments] == [1000]
    assert [q.ref_number for q in p.postings] == [
        "POS-0001-01-20250110-S-CASH-1",
        "POS-0001-01-20250110-S-CREDIT-1",
        "POS-0001-01-20250110-S-EMONEY-1",
    ]


def test_receipt_two_payments_of_one_method_make_one_line() -> None:
    b = DayBuilder()
    b.receipt([(C10, 1100, 100), (C0, 200, 0)], [(CASH, 500), (CREDIT, 300), (CASH, 500)])
    p = plan(b.build(), mapping(granularity="receipt"))
    cash = p.postings[0]
    # class 10: 1100·500/1300 = 423.08, 253.85, 423.08 → 423, 254, 423 (fractions .08 .85 .08)
    assert [(d.tax, d.amount, d.vat) for d in cash.details] == [
        (T10, 423 + 423, 39 + 38),  # tax 100: 38.45, 23.09, 38.45 → 39, 23, 38 (tie: earlier)
        ("非課売上", 77 + 77, 0),
    ]
    assert sum(d.amount for d in p.postings[1].details) == 300


@pytest.mark.parametrize(
    ("receipts", "sizes"),
    [(100, [100]), (101, [100, 1]), (201, [100, 100, 1])],
)
def test_receipt_chunks_of_at_most_100_lines(receipts: int, sizes: list[int]) -> None:
    b = DayBuilder()
    for i in range(receipts):
        b.receipt([(C10, 100 + i, 9)], [(CASH, 100 + i)])
    b.receipt([(C10, 1000, 90)], [(CREDIT, 1000)])
    p = plan(b.build(), mapping(granularity="receipt", methods={"CREDIT": {"partner": "カード"}}))
    cash = [q for q in p.postings if "S-CASH" in q.ref_number]
    assert [len(q.details) for q in cash] == sizes
    assert [q.ref_number[-8:] for q in cash] == [f"S-CASH-{n}" for n in range(1, len(sizes) + 1)]
    # each chunk settles its own total; lines keep record order across chunks
    for q in cash:
        assert [pay.amount for pay in q.payments] == [sum(d.amount for d in q.details)]
    flat = [d.description for q in cash for d in q.details]
    assert flat == [f"レシート {i}" for i in range(1, receipts + 1)]
    assert p.postings[-1].ref_number.endswith("S-CREDIT-1")
    assert p.postings[-1].partner == "カード"


def test_receipt_lines_may_fall_into_two_deals() -> None:
    b = DayBuilder()
    b.receipt([(C10, 110, 10)], [(CASH, 110)])
    for _ in range(50):
        b.receipt([(C10, 110, 10), (C8, 108, 8)], [(CASH, 218)])
    p = plan(b.build(), mapping(granularity="receipt"))
    first, second = p.postings
    assert len(first.details) == 100 and len(second.details) == 1
    assert first.details[-1].description == "レシート 51" and first.details[-1].tax == T10
    assert second.details[0].description == "レシート 51" and second.details[0].tax == T8
    assert first.payments[0].amount == 110 + 49 * 218 + 110
    assert second.payments[0].amount == 108


def test_day_one_deal_with_payments_per_settled_method() -> None:
    settings = mapping(
        granularity="day",
        methods={"EMONEY": {"settlement": "walletable:電子マネー入金", "partner": "X"}},
    )
    p = plan(small_day(), settings)
    assert p.granularity is Granularity.DAY
    (deal,) = p.postings
    assert deal.ref_number == "POS-0001-01-20250110-S"
    assert deal.partner is None and deal.due_date is None
    assert [(d.item, d.tax, d.amount, d.vat, d.description) for d in deal.details] == [
        (I_CASH, T10, 671, 61, D_CASH),
        (I_CASH, T8, 329, 24, D_CASH),
        (I_CREDIT, T10, 429, 39, D_CREDIT),
        (I_CREDIT, T8, 211, 16, D_CREDIT),
        (I_EMONEY, T8, 324, 24, D_EMONEY),
    ]
    assert [(x.walletable, x.amount) for x in deal.payments] == [
        ("現金", 1000),
        ("電子マネー入金", 324),
    ]  # CREDIT's 640 stays unsettled (partly paid)


def test_day_settled_totals_may_equal_the_deal_total() -> None:
    b = DayBuilder()
    b.receipt([(C10, 1100, 100)], [(CASH, 1100)])
    b.receipt([(C10, 0, 0)], [])
    p = plan(b.build(), mapping(granularity="day"))
    assert p.granularity is Granularity.DAY
    assert [x.amount for x in p.postings[0].payments] == [1100]


def test_day_skips_a_settled_method_whose_total_is_zero() -> None:
    b = DayBuilder()
    b.receipt([(C10, 1100, 100)], [(CREDIT, 1100)])
    r = b.receipt([(C10, 550, 50)], [(CASH, 550)])
    b.void(r)
    p = plan(b.build(), mapping(granularity="day"))
    assert p.granularity is Granularity.DAY
    assert p.postings[0].payments == ()  # CASH nets to 0: no lines, no payment
    assert [d.item for d in p.postings[0].details] == [I_CREDIT]


def refunds_only() -> BusinessDay:
    b = DayBuilder()
    b.receipt([(C10, -1100, -100)], [(CASH, -1100)], Kind.RETURN)
    return b.build()


def settled_negative() -> BusinessDay:
    b = DayBuilder()
    b.receipt([(C10, -500, -45)], [(CASH, -500)], Kind.RETURN)
    b.receipt([(C10, 2000, 181)], [(CREDIT, 2000)])
    return b.build()


def settled_exceeds() -> BusinessDay:
    b = DayBuilder()
    b.receipt([(C10, 1000, 90)], [(CASH, 1000)])
    b.receipt([(C10, -600, -54)], [(CREDIT, -600)], Kind.RETURN)
    return b.build()


def zero_total() -> BusinessDay:
    b = DayBuilder()
    b.receipt([(C10, 1000, 90)], [(CREDIT, 1000)])
    b.receipt([(C10, -1000, -90)], [(QR, -1000)], Kind.RETURN)
    return b.build()


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (refunds_only, "not above 0"),
        (zero_total, "not above 0"),
        (settled_negative, "below 0"),
        (settled_exceeds, "exceed"),
    ],
)
def test_day_falls_back_to_summary(make: Any, why: str) -> None:
    day = make()
    p = plan(day, mapping(granularity="day"))
    assert p.granularity is Granularity.SUMMARY
    assert p.fallback is not None and why in p.fallback
    assert p.to_json()["granularity"] == "summary"
    assert p.postings == plan(day).postings  # exactly the summary plan


def test_day_without_sales_lines_posts_no_sales_and_stays_day() -> None:
    b = DayBuilder()
    b.receipt([(C10, 0, 0)], [(CASH, 0)])
    r = b.receipt([(C10, 1100, 100)], [(CASH, 1100)])
    b.void(r)
    b.movement("IN", 5000)
    p = plan(b.build(), mapping(granularity="day"))
    assert p.granularity is Granularity.DAY and p.fallback is None
    assert [q.ref_number for q in p.postings] == ["POS-0001-01-20250110-M1"]


def test_summary_line_exists_where_gross_or_tax_is_not_zero() -> None:
    b = DayBuilder()
    b.receipt([(C10, 1100, 100), (C8, 108, 8)], [(CASH, 1208)])
    b.receipt([(C8, -108, -8)], [(CASH, -108)], Kind.RETURN)
    b.receipt([(CEX, 300, 0)], [(CASH, 300)])
    b.receipt([(CEX, -300, 0)], [(CASH, -300)], Kind.RETURN)
    p = plan(b.build())
    assert [(d.tax, d.amount) for d in p.postings[0].details] == [(T10, 1100)]


def test_settlement_variants() -> None:
    settings = mapping(
        methods={
            "CASH": {"settlement": "unsettled"},
            "CREDIT": {"settlement": "walletable:カード未収", "partner": "JCB", "due_days": 30},
            "EMONEY": {"partner": "交通系", "due_days": 45},
        }
    )
    p = plan(small_day(), settings)
    cash, credit, emoney = p.postings
    assert cash.payments == () and cash.due_date is None
    assert [(x.walletable, x.amount, x.date) for x in credit.payments] == [
        ("カード未収", 640, date(2025, 1, 10))
    ]
    assert credit.partner == "JCB" and credit.due_date is None  # due days: unsettled only
    assert emoney.payments == () and emoney.partner == "交通系"
    assert emoney.due_date == date(2025, 2, 24)


def test_negative_settled_deal_pays_out_and_zero_deal_has_no_payment() -> None:
    b = DayBuilder()
    b.receipt([(C10, -1100, -100)], [(CASH, -1100)], Kind.RETURN)
    # a QR deal that nets to 0 over two receipts
    b.receipt([(C10, 540, 49)], [(QR, 540)])
    b.receipt([(C8, -540, -40)], [(QR, -540)], Kind.RETURN)
    settings = mapping(methods={"QR": {"settlement": "walletable:QR入金"}})
    p = plan(b.build(), settings)
    cash, qr = p.postings
    assert [x.amount for x in cash.payments] == [-1100]  # refunds leave the drawer
    assert sum(d.amount for d in qr.details) == 0
    assert qr.payments == ()


def test_section_tags_and_store_name_from_settings() -> None:
    settings = mapping(store_name="{store_code}号店", section="渋谷店", tags=["POS", "レジ"])
    p = plan(small_day(), settings)
    d = p.postings[0].details[0]
    assert d.section == "渋谷店" and d.tags == ("POS", "レジ")
    assert d.description == "0001号店 2025-01-10 現金"


def test_labels_and_tax_names_from_settings() -> None:
    settings = mapping(
        method_labels={"CASH": "げんきん"},
        tax_names={"10": "課売10"},
        item_prefix="POS:",
        sales_account="売上",
    )
    d = plan(small_day(), settings).postings[0].details[0]
    assert (d.item, d.tax, d.account_item) == ("POS:げんきん", "課売10", "売上")
    assert d.description.endswith(" げんきん")


def test_training_counts_nowhere() -> None:
    b = DayBuilder()
    b.receipt([(C10, 500, 45)], [(CASH, 500)], Kind.TRAINING)
    p = plan(b.build())
    assert p.postings == ()
    assert p.totals.gross == 0 and p.totals.tax == 0
    assert all(v == 0 for v in p.totals.by_method.values())
