"""freee-mapping.md §3.1: allocation of payments to tax classes, hand-checked figures."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st
from mapping_fixtures import DayBuilder, ReceiptDraft, receipt_drafts

from gatewayd.protocol.records import Kind, Method, TaxClass
from gatewayd.sync.mapping import Share, allocate_receipt, split_amount

C10, C8, C0, CEX = TaxClass.STANDARD, TaxClass.REDUCED, TaxClass.EXEMPT, TaxClass.OUT_OF_SCOPE
CASH, CREDIT, QR = Method.CASH, Method.CREDIT, Method.QR


def grid(shares: tuple[Share, ...]) -> dict[tuple[str, int], tuple[int, int]]:
    return {(s.tax_class.value, s.payment_index): (s.gross, s.tax) for s in shares}


def test_split_floor_and_largest_remainder() -> None:
    assert split_amount(1100, [1000, 640]) == [671, 429]  # 670.73 / 429.27
    assert split_amount(40, [329, 211]) == [24, 16]  # 24.37 / 15.63
    assert split_amount(10, [1, 1, 1]) == [4, 3, 3]  # tie: the earliest gets the yen
    assert split_amount(2, [1, 1, 1]) == [1, 1, 0]
    assert split_amount(0, [5, 7]) == [0, 0]
    assert split_amount(7, [0, 0]) == [7, 0]  # weights sum to 0: all to the first
    assert split_amount(100, [150, -50]) == [150, -50]  # mixed signs stay exact
    assert split_amount(5, [-1, -1]) == [3, 2]  # negative weights: same rule


def test_two_classes_two_payments() -> None:
    b = DayBuilder()
    tx = b.receipt([(C10, 1100, 100), (C8, 540, 40)], [(CASH, 1000), (CREDIT, 640)])
    assert grid(allocate_receipt(tx)) == {
        # class 10: 1100·1000/1640 = 670.73, 1100·640/1640 = 429.27 → 671, 429
        ("10", 0): (671, 61),  # tax 100·671/1100 = 61.0
        ("10", 1): (429, 39),
        # class 8R takes what remains: 1000-671 = 329, 640-429 = 211
        ("8R", 0): (329, 24),  # tax 40·329/540 = 24.37 → 24
        ("8R", 1): (211, 16),  # 40·211/540 = 15.63 → 15, +1 (largest fraction)
    }


def test_tie_goes_to_the_earlier_payment() -> None:
    b = DayBuilder()
    tx = b.receipt([(C10, 101, 9), (C0, 99, 0)], [(CASH, 100), (QR, 100)])
    assert grid(allocate_receipt(tx)) == {
        ("10", 0): (51, 5),  # 50.5 / 50.5 → the earlier gets the yen; tax 4.54 / 4.46 → 5, 4
        ("10", 1): (50, 4),
        ("0", 0): (49, 0),
        ("0", 1): (50, 0),
    }


def test_class_order_not_record_order() -> None:
    """Classes are taken 10, 8R, 0, EX even if X records were listed otherwise."""
    b = DayBuilder()
    tx = b.receipt([(CEX, 50, 0), (C10, 101, 9)], [(CASH, 76), (QR, 75)])
    # 10 first: 101·76/151 = 50.83, 101·75/151 = 50.17 → 51, 50; EX takes 25, 25
    assert grid(allocate_receipt(tx)) == {
        ("10", 0): (51, 5),
        ("10", 1): (50, 4),
        ("EX", 0): (25, 0),
        ("EX", 1): (25, 0),
    }


def test_remaining_zero_gives_the_class_to_the_first_payment() -> None:
    b = DayBuilder()
    tx = b.receipt([(C10, 1000, 90), (C8, 300, 22), (CEX, -300, 0)], [(CASH, 600), (CREDIT, 400)])
    assert grid(allocate_receipt(tx)) == {
        ("10", 0): (600, 54),
        ("10", 1): (400, 36),
        ("8R", 0): (300, 22),  # R = 0 → the whole class (and its tax) to the first payment
        ("8R", 1): (0, 0),
        ("EX", 0): (-300, 0),  # the last class takes exactly what remains
        ("EX", 1): (0, 0),
    }


def test_negative_receipt_is_the_negated_allocation() -> None:
    b = DayBuilder()
    tx = b.receipt([(C10, -101, -9), (C0, -99, 0)], [(CASH, -100), (QR, -100)], Kind.RETURN)
    # a naive floor on negatives would give CASH -50, QR -51; the rule negates the positive case
    assert grid(allocate_receipt(tx)) == {
        ("10", 0): (-51, -5),
        ("10", 1): (-50, -4),
        ("0", 0): (-49, 0),
        ("0", 1): (-50, 0),
    }


def test_void_is_exact_negation_of_its_original() -> None:
    b = DayBuilder()
    orig = b.receipt([(C10, 1100, 100), (C8, 540, 40)], [(CASH, 1000), (CREDIT, 640)])
    void = b.void(orig)
    assert grid(allocate_receipt(void)) == {
        k: (-g, -t) for k, (g, t) in grid(allocate_receipt(orig)).items()
    }


def test_zero_total_receipt_gives_nothing() -> None:
    b = DayBuilder()
    assert allocate_receipt(b.receipt([(C10, 0, 0)], [(CASH, 0)])) == ()
    assert allocate_receipt(b.receipt([(C10, 0, 0), (C0, 0, 0)], [])) == ()


def test_mixed_sign_payments_stay_exact() -> None:
    b = DayBuilder()
    tx = b.receipt([(C10, 1000, 90), (C8, 500, 37)], [(CASH, 2000), (CREDIT, -500)])
    shares = allocate_receipt(tx)
    assert sum(s.gross for s in shares if s.payment_index == 0) == 2000
    assert sum(s.gross for s in shares if s.payment_index == 1) == -500
    assert sum(s.tax for s in shares if s.tax_class is C10) == 90
    assert sum(s.tax for s in shares if s.tax_class is C8) == 37


@given(st.integers(-(10**9), 10**9), st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=6))
def test_split_sums_and_stays_within_one_yen(total: int, weights: list[int]) -> None:
    parts = split_amount(total, weights)
    assert sum(parts) == total
    den = sum(weights)
    if den != 0:
        for p, w in zip(parts, weights, strict=True):
            exact = Fraction(total * w, den)
            assert abs(p - exact) < 1


@given(receipt_drafts())
def test_allocation_rules_hold_exactly(draft: ReceiptDraft) -> None:
    b = DayBuilder()
    tx = b.receipt(draft.classes, draft.payments, draft.kind)
    shares = allocate_receipt(tx)
    if sum(g for _c, g, _t in draft.classes) == 0:
        assert shares == ()
        return
    for i, (_m, amount) in enumerate(draft.payments):
        assert sum(s.gross for s in shares if s.payment_index == i) == amount
    for cls, gross, tax in draft.classes:
        assert sum(s.gross for s in shares if s.tax_class is cls) == gross
        assert sum(s.tax for s in shares if s.tax_class is cls) == tax
    void = b.void(tx)
    assert [(s.tax_class, s.payment_index, -s.gross, -s.tax) for s in shares] == [
        (s.tax_class, s.payment_index, s.gross, s.tax) for s in allocate_receipt(void)
    ]
