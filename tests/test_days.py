"""Day assembly and the acceptance checks of register-link.md section 6, rule by rule.

Each test breaks one rule of a small valid day (journal_fixtures.small_day) and expects the
held reason to start with that rule's check and to name the records involved.
"""

from __future__ import annotations

import time
from datetime import date

import pytest
from journal_fixtures import (
    SMALL_DAY_CLOSE,
    as_bytes,
    reclose_line,
    recompute_close,
    renumber,
    replace_records,
    set_field,
    small_day,
    two_days,
)

from gatewayd.protocol.days import (
    DayResult,
    JournalAnalysis,
    JournalAssembler,
    Line,
    OutOfPlace,
    analyze_journal,
    day_totals,
    totals_of,
)
from gatewayd.protocol.journal_parser import parse_record, split_records
from gatewayd.protocol.records import Close, Direction, Kind, Method, TaxClass
from gatewayd.sim.journal_gen import generate_journal

D1 = date(2025, 1, 10)
D2 = date(2025, 1, 11)


def only_day(lines: list[str], **kw: object) -> DayResult:
    analysis = analyze_journal(lines, **kw)  # type: ignore[arg-type]
    assert len(analysis.days) == 1, analysis.days
    return analysis.days[0]


def held(lines: list[str], **kw: object) -> str:
    day = only_day(lines, **kw)
    assert day.status == "held", day
    assert day.reason is not None
    return day.reason


def checks_of(reason: str) -> list[str]:
    return [part.split(":", 1)[0] for part in reason.split("; ")]


# --- accepted days, totals, assembled BusinessDay ---------------------------------------------


def test_small_day_is_accepted_with_its_totals() -> None:
    day = only_day(small_day())
    assert day.status == "accepted" and day.reason is None and day.failures == ()
    assert (day.business_date, day.first_record_no, day.last_record_no) == (D1, 1, 21)
    assert day.totals.to_json() == {
        "gross": 1510, "tax": 132,
        "by_class": {"10": 1210, "8R": 300, "0": 0, "EX": 0},
        "by_method": {"CASH": 410, "CREDIT": 1100, "EMONEY": 0, "QR": 0, "GIFT": 0, "POINT": 0,
                      "OTHER": 0},
    }
    assert day.totals.receipt_count == 2
    assert day.totals.by_direction == {Direction.IN: 0, Direction.OUT: 540}
    bd = day.day
    assert bd is not None
    assert [t.receipt_no for t in bd.transactions] == [1, 2, 3]
    assert [t.counted for t in bd.transactions] == [True, True, False]
    assert bd.transactions[2].start.kind is Kind.TRAINING
    assert len(bd.transactions[0].lines) == 2 and len(bd.transactions[0].taxes) == 2
    assert bd.movements[0].amount == 540 and bd.cash_count is not None
    assert bd.close.close_no == 1 and bd.close_no == 1 and day.close_no == 1
    assert day_totals(bd) == day.totals
    records = [parse_record(line.encode("cp932")) for line in small_day()]
    assert totals_of(records) == day.totals


def test_inputs_bytes_str_and_numbered_pairs_agree() -> None:
    lines = two_days()
    by_str = analyze_journal(lines)
    by_bytes = analyze_journal(split_records(as_bytes(lines)))
    by_pairs = analyze_journal((i + 1, line.encode("cp932")) for i, line in enumerate(lines))
    for a in (by_str, by_bytes, by_pairs):
        assert [(d.business_date, d.status) for d in a.days] == [(D1, "accepted"),
                                                                 (D2, "accepted")]


def test_numbered_pair_whose_field_1_disagrees_is_malformed() -> None:
    lines = small_day()
    pairs = [(i + 1, line) for i, line in enumerate(lines)]
    pairs[4] = (5, lines[5])  # the store says 5, the line says 6
    reason = held([p for p in pairs], )  # type: ignore[arg-type]
    assert reason.startswith("format: record 5 (X): field 1 (record number) says 6")


# --- format ----------------------------------------------------------------------------------


def test_format_failure_names_record_field_and_rule() -> None:
    reason = held(set_field(small_day(), 10, 10, "01000"))
    assert reason == ("format: record 10 (L): field 10 (amount) '01000' is not money (0, or "
                      "digits without leading zero, - when negative, never -0)")


def test_format_suppresses_checks_2_and_3_but_not_check_1() -> None:
    lines = set_field(small_day(), 10, 10, "01000")
    lines = set_field(lines, 8, 5, "999")      # check 2 would fail: tax_total
    lines = set_field(lines, 21, 6, "7")       # check 3 would fail: receipt_count
    lines = set_field(lines, 21, 3, "20250111")  # check 1: close date ≠ open date
    reason = held(lines)
    assert checks_of(reason) == ["format", "check 1"]
    assert "close date 2025-01-11 ≠ open date 2025-01-10 (records 1, 21)" in reason


def test_every_malformed_record_is_listed_in_record_order() -> None:
    lines = set_field(small_day(), 12, 4, "CARD")
    lines = set_field(lines, 3, 8, "-0")
    reason = held(lines)
    assert checks_of(reason) == ["format", "format"]
    assert reason.index("record 3 (L)") < reason.index("record 12 (P)")


def test_malformed_z_with_unreadable_close_no_still_ends_the_day() -> None:
    lines = set_field(two_days(), 21, 4, "one")
    analysis = analyze_journal(lines)
    assert [d.status for d in analysis.days] == ["held", "accepted"]
    assert analysis.days[0].reason is not None
    assert analysis.days[0].reason.startswith("format: record 21 (Z): field 4 (close_no)")
    assert analysis.days[0].day is None
    assert analysis.strays == ()


def test_record_with_unreadable_type_inside_a_day_is_a_format_failure() -> None:
    reason = held(set_field(small_day(), 14, 2, "Q"))
    assert reason.startswith("format: record 14: field 2 (type) 'Q'")


# --- check 1: sequence -----------------------------------------------------------------------


def test_check1_gap_inside_a_day_holds_that_day() -> None:
    lines = [ln for ln in small_day() if not ln.startswith("14\t")]  # the M record
    reason = held(lines)
    assert reason.startswith("check 1: record 14 is missing (records 13, 15)")


def test_check1_gap_of_several_records() -> None:
    lines = [ln for ln in small_day() if ln.split("\t")[0] not in ("14", "15", "16")]
    reason = held(lines)
    assert reason.startswith("check 1: records 14–16 are missing (records 13, 17)")


def test_check1_gap_between_days_holds_the_day_after() -> None:
    lines = small_day() + small_day(23, D2, receipt=4, movement=2)
    analysis = analyze_journal(lines)
    assert [d.status for d in analysis.days] == ["accepted", "held"]
    assert analysis.days[1].reason == "check 1: record 22 is missing (records 21, 23)"
    assert [(b.previous, b.number, b.missing) for b in analysis.breaks] == [(21, 23, 1)]


def test_check1_records_out_of_order() -> None:
    lines = small_day()
    lines[9], lines[10] = lines[10], lines[9]  # records 10 and 11 swapped, numbers kept
    reason = held(lines)
    assert "check 1: record 10 comes after record 11, numbers must grow by 1 (records 10, 11)" \
        in reason
    assert checks_of(reason)[0] == "check 1"


def test_check1_repeated_record() -> None:
    lines = small_day()
    lines.insert(14, lines[13])  # record 14 twice
    reason = held(lines)
    assert "check 1: record 14 comes after record 14" in reason


def stored(lines: list[str]) -> list[tuple[int, bytes]]:
    """Lines as the journal store gives them: under their own number."""
    return [(int(ln.split("\t", 1)[0]), ln.encode("cp932")) for ln in lines]


def test_check1_record_kept_aside_holds_the_day_it_came_in() -> None:
    lines = small_day()
    other = lines[13].replace("\t20250110", "\t20250111", 1).encode("cp932")
    pairs: list[Line] = list(stored(lines))
    pairs.insert(15, OutOfPlace(14, other, 15))  # 14 again, other bytes, after 15 was stored
    day = only_day(pairs)  # type: ignore[arg-type]
    assert day.status == "held"
    assert day.reason == ("check 1: record 14 comes after record 15, numbers must grow by 1 "
                          "(records 14, 15)")
    # no part of the day: the figures are the day's own
    assert day.totals == only_day(stored(lines)).totals  # type: ignore[arg-type]


def test_check1_record_kept_aside_between_days_holds_the_next_day() -> None:
    lines = small_day() + small_day(22, D2, receipt=4, movement=2)
    pairs: list[Line] = list(stored(lines))
    pairs.insert(21, OutOfPlace(3, b"3\tT\tgarbage", 21))  # after the first day's Z
    analysis = analyze_journal(pairs)
    assert [d.status for d in analysis.days] == ["accepted", "held"]
    assert analysis.days[1].reason == ("check 1: record 3 comes after record 21, numbers "
                                       "must grow by 1 (records 3, 21)")
    assert analysis.closes == tuple(d.day.close for d in analysis.days if d.day)


def test_assembler_keeps_an_aside_after_the_last_forgotten_record() -> None:
    lines = small_day() + small_day(22, D2, receipt=4, movement=2)
    asm = JournalAssembler()
    asm.extend(stored(lines[:21]))
    asm.extend([OutOfPlace(5, b"5\tX", 21), OutOfPlace(6, b"6\tX", 20)])
    asm.forget_through(21)  # the first day's Z: the aside that came after it stays
    asm.extend(stored(lines[21:]))
    [day] = asm.analyze().days
    assert day.reason == ("check 1: record 5 comes after record 21, numbers must grow by 1 "
                          "(records 5, 21)")


def test_gap_in_stored_numbers_reads_as_decode_reads_the_file() -> None:
    lines = [ln for ln in small_day() if not ln.startswith("14\t")]
    assert only_day(stored(lines)).reason == held(lines)  # type: ignore[arg-type]


def test_check1_close_date_must_be_the_open_date() -> None:
    reason = held(set_field(small_day(), 21, 3, "20250111"))
    assert reason == "check 1: close date 2025-01-11 ≠ open date 2025-01-10 (records 1, 21)"


def test_check1_close_first_record_no_must_name_the_open() -> None:
    reason = held(set_field(small_day(), 21, 12, "2"))
    assert reason == "check 1: close first_record_no 2 ≠ open record 1 (records 1, 21)"


def test_check1_open_before_close_holds_the_unfinished_day() -> None:
    lines = small_day()[:19] + small_day(20, D2, receipt=4, movement=2)
    analysis = analyze_journal(lines)
    first, second = analysis.days
    assert first.status == "held" and first.unfinished and first.close_record_no is None
    assert first.reason == ("check 1: day opened at record 1 has no close before the next open "
                            "(records 1, 20)")
    assert second.status == "accepted"
    assert analysis.day_closing(D1) is None and analysis.day_closing(D2) is second


def test_check1_date_closed_earlier_in_the_journal() -> None:
    lines = small_day() + small_day(22, D1, receipt=4, movement=2)
    analysis = analyze_journal(lines)
    assert [d.status for d in analysis.days] == ["accepted", "held"]
    assert analysis.days[1].reason == ("check 1: business date 2025-01-10 already closed by "
                                       "record 21 (records 21, 22, 42)")
    assert analysis.day_closing(D1) is analysis.days[0]
    assert analysis.close_dates_in_order() == [D1]


def test_check1_date_closed_in_the_gateway_store() -> None:
    reason = held(small_day(), closed_dates={D1})
    assert reason == ("check 1: business date 2025-01-10 already closed before these records "
                      "(records 1, 21)")
    assert only_day(small_day(), closed_dates={D2}).status == "accepted"


def test_check1_only_the_close_date_already_closed() -> None:
    reason = held(set_field(small_day(), 21, 3, "20250109"), closed_dates={date(2025, 1, 9)})
    assert checks_of(reason) == ["check 1", "check 1"]
    assert "already closed before these records" in reason and "≠ open date" in reason


def test_check1_records_between_a_close_and_the_next_open_hold_the_day_after() -> None:
    stray = "22\tM\t9\tIN\t11\t釣銭補充\t10000\t20250111080000\t1001"
    lines = [*small_day(), stray, *small_day(23, D2, receipt=4, movement=2)]
    analysis = analyze_journal(lines)
    assert [d.status for d in analysis.days] == ["accepted", "held"]
    assert analysis.days[1].reason == ("check 1: record 22 stands between a close and the next "
                                       "open (records 21–23)")
    assert analysis.strays == (22,)


def test_check1_stray_close_z_between_days() -> None:
    z = small_day()[20].split("\t")
    z[0] = "22"
    lines = [*small_day(), "\t".join(z), *small_day(23, D2, receipt=4, movement=2)]
    analysis = analyze_journal(lines)
    assert [d.status for d in analysis.days] == ["accepted", "held"]
    assert checks_of(analysis.days[1].reason or "") == ["check 1"]


def test_check1_strays_after_the_last_close_are_pending() -> None:
    stray = "22\tT\t4\tSALE\t-\t20250111080000\t1001\tIN"
    analysis = analyze_journal([*small_day(), stray])
    assert [d.status for d in analysis.days] == ["accepted"]
    assert [f.message for f in analysis.pending] == [
        "check 1: record 22 stands between a close and the next open (record 22)"]


def test_check1_records_before_the_first_open_of_a_journal() -> None:
    stray = "1\tM\t9\tIN\t11\t釣銭補充\t10000\t20250110080000\t1001"
    lines = renumber([stray, *small_day()])
    reason = held(lines)
    assert reason == "check 1: record 1 stands between a close and the next open (records 1, 2)"


def test_check1_gap_before_the_first_record_after_the_last_accepted_close() -> None:
    lines = small_day(23, D2, receipt=4, movement=2)
    reason = held(lines, after_record_no=21)
    assert reason == "check 1: record 22 is missing (records 21, 23)"
    assert only_day(lines, after_record_no=22).status == "accepted"


# --- check 2: receipts -----------------------------------------------------------------------


def check2_only(lines: list[str]) -> str:
    reason = held(recompute_close(lines))
    assert set(checks_of(reason)) == {"check 2"}, reason
    return reason


def test_check2_lines_after_taxes() -> None:
    lines = small_day()
    lines[3], lines[4] = lines[4], lines[3]
    reason = check2_only(renumber(lines))
    assert reason == "check 2: receipt 1 L record 5 comes after its X record 4 (records 4, 5)"


def test_check2_taxes_after_payments() -> None:
    lines = small_day()
    lines[5], lines[6] = lines[6], lines[5]
    reason = check2_only(renumber(lines))
    assert reason == "check 2: receipt 1 X record 7 comes after its P record 6 (records 6, 7)"


def test_check2_tax_classes_in_class_order() -> None:
    lines = small_day()
    lines[4], lines[5] = lines[5], lines[4]
    reason = check2_only(renumber(lines))
    assert reason == ("check 2: receipt 1 X class 10 comes after class 8R (order 10, 8R, 0, EX) "
                      "(records 5, 6)")


def test_check2_two_taxes_for_one_class() -> None:
    lines = replace_records(small_day(), 6, ["X\t1\t8R\t300\t22\t300", "X\t1\t8R\t0\t0\t0"])
    reason = check2_only(lines)
    assert "check 2: receipt 1 has two X records for class 8R (records 6, 7)" in reason


def test_check2_payment_after_end_is_outside_its_transaction() -> None:
    lines = small_day()
    lines[6], lines[7] = lines[7], lines[6]
    reason = check2_only(renumber(lines))
    assert reason == ("check 2: receipt 1 payments 0 ≠ total 410 (records 2, 7); "
                      "check 2: P record 8 of receipt 1 stands outside its transaction (record 8)")


def test_check2_part_of_another_receipt_inside_a_transaction() -> None:
    reason = held(set_field(small_day(), 10, 3, "7"))
    assert ("check 2: L record 10 of receipt 7 stands outside its transaction (inside receipt 2)"
            " (record 10)") in reason
    assert "check 2: receipt 2 is interrupted by L record 10 before its E (records 9, 10)" \
        in reason


def test_check2_end_missing_before_the_next_transaction() -> None:
    lines = [ln for ln in small_day() if not ln.startswith("8\t")]
    reason = check2_only(renumber(lines))
    assert reason == "check 2: receipt 1 has no E before the next T (record 8) (records 2, 8)"


def test_check2_end_missing_before_the_close() -> None:
    lines = small_day()
    del lines[18]  # E of the TRAINING receipt 3
    reason = check2_only(renumber(lines))
    assert reason == ("check 2: receipt 3 is interrupted by C record 19 before its E "
                      "(records 15, 19); check 2: receipt 3 has no E before the close (record 20)"
                      " (records 15, 20)")


def test_check2_movement_inside_a_transaction() -> None:
    lines = small_day()
    movement = lines.pop(13)
    lines.insert(11, movement)  # between X and P of receipt 2
    reason = check2_only(renumber(lines))
    assert reason == "check 2: receipt 2 is interrupted by M record 12 before its E (records 9, 12)"


def test_check2_receipt_no_unique_within_the_day() -> None:
    lines = small_day()
    for number in range(9, 14):
        lines = set_field(lines, number, 3, "1")
    reason = check2_only(lines)
    assert reason == "check 2: receipt 1 appears twice in the day (records 2, 9)"


def test_check2_tax_classes_are_the_line_classes() -> None:
    lines = replace_records(small_day(), 6, ["X\t1\t8R\t300\t22\t300", "X\t1\t0\t0\t0\t0"])
    reason = check2_only(lines)
    assert reason == "check 2: receipt 1 X classes 10, 8R, 0 ≠ L classes 10, 8R (records 2, 5–7)"


def test_check2_base_is_the_sum_of_the_class_lines() -> None:
    reason = check2_only(set_field(small_day(), 4, 10, "120"))
    assert reason == "check 2: receipt 1 class 10 base 110 ≠ L sum 120 (records 4, 5)"


def test_check2_gross_is_base_in_tax_mode_in() -> None:
    lines = set_field(small_day(), 5, 7, "111")
    lines = set_field(lines, 8, 4, "411")
    lines = set_field(lines, 7, 7, "411")
    lines = set_field(lines, 7, 8, "589")
    reason = check2_only(lines)
    assert reason == "check 2: receipt 1 class 10 gross 111 ≠ base 110 (IN) (record 5)"


def test_check2_gross_is_base_plus_tax_in_tax_mode_out() -> None:
    lines = set_field(small_day(), 11, 7, "1000")
    lines = set_field(lines, 13, 4, "1000")
    lines = set_field(lines, 12, 6, "1000")
    lines = set_field(lines, 12, 7, "1000")
    reason = check2_only(lines)
    assert reason == ("check 2: receipt 2 class 10 gross 1000 ≠ base 1000 + tax 100 (OUT) "
                      "(record 11)")


def test_check2_no_tax_for_exempt_and_out_of_scope_classes() -> None:
    lines = set_field(small_day(), 3, 11, "EX")
    lines = set_field(lines, 6, 4, "EX")
    reason = check2_only(lines)
    assert reason == "check 2: receipt 1 class EX tax 22 ≠ 0 (record 6)"
    lines = set_field(set_field(small_day(), 3, 11, "0"), 6, 4, "0")
    assert check2_only(lines) == "check 2: receipt 1 class 0 tax 22 ≠ 0 (record 6)"


def test_check2_no_tax_where_gross_is_zero() -> None:
    lines = replace_records(small_day(), 3, [
        "L\t1\t1\t07\t4900000000025\tボールペン 黒\t1\t110\t110\t10",
        "L\t1\t2\t01\t4900000000001\tおにぎり 鮭\t1\t150\t150\t8R",
        "L\t1\t3\t01\t-\t無料引換券\t1\t-150\t-150\t8R",
        "X\t1\t10\t110\t10\t110",
        "X\t1\t8R\t0\t1\t0",
        "P\t1\tCASH\t-\t110\t110\t0",
        "E\t1\t110\t11",
    ], count=6)
    reason = check2_only(lines)
    assert reason == "check 2: receipt 1 class 8R tax 1 ≠ 0 with gross 0 (record 7)"


def test_check2_tax_gross_sum_is_the_total() -> None:
    lines = set_field(small_day(), 8, 4, "400")
    lines = set_field(lines, 7, 7, "400")
    lines = set_field(lines, 7, 8, "600")
    reason = check2_only(lines)
    assert reason == "check 2: receipt 1 X gross 410 ≠ total 400 (records 2, 8)"


def test_check2_payments_sum_is_the_total_as_in_the_spec_example() -> None:
    lines = set_field(set_field(small_day(), 7, 7, "400"), 7, 8, "600")
    reason = check2_only(lines)
    assert reason == "check 2: receipt 1 payments 400 ≠ total 410 (records 2, 8)"


def test_check2_tax_sum_is_the_tax_total() -> None:
    reason = check2_only(set_field(small_day(), 8, 5, "33"))
    assert reason == "check 2: receipt 1 X tax 32 ≠ tax_total 33 (records 2, 8)"


def test_check2_payment_amount_is_tendered_minus_change() -> None:
    reason = check2_only(set_field(small_day(), 7, 8, "580"))
    assert reason == ("check 2: receipt 1 payment amount 410 ≠ tendered 1000 − change 580 "
                      "(record 7)")


def test_check2_cash_change_is_not_negative() -> None:
    lines = set_field(set_field(small_day(), 7, 6, "400"), 7, 8, "-10")
    assert check2_only(lines) == "check 2: receipt 1 CASH change -10 < 0 (record 7)"


def test_check2_change_only_for_cash() -> None:
    lines = set_field(set_field(small_day(), 12, 6, "1200"), 12, 8, "100")
    assert check2_only(lines) == "check 2: receipt 2 CREDIT change 100 ≠ 0 (record 12)"


def test_check2_refund_has_tendered_equal_to_amount_and_no_change() -> None:
    lines = replace_records(small_day(), 9, [
        "T\t2\tRETURN\t1\t20250110110000\t1002\tOUT",
        "L\t2\t1\t07\t4900000000026\t単三電池 4本\t-1\t1000\t-1000\t10",
        "X\t2\t10\t-1000\t-100\t-1100",
        "P\t2\tCASH\t-\t-1000\t-1100\t100",
        "E\t2\t-1100\t-100",
    ], count=5)
    reason = check2_only(lines)
    assert reason == ("check 2: receipt 2 refund -1100 has tendered -1000 and change 100 (must be"
                      " -1100 and 0) (record 12)")


def test_check2_zero_total_has_only_zero_parts() -> None:
    lines = replace_records(small_day(), 3, [
        "L\t1\t1\t07\t4900000000025\tボールペン 黒\t1\t100\t100\t10",
        "L\t1\t2\t01\t-\t値引\t1\t-100\t-100\t8R",
        "X\t1\t10\t100\t9\t100",
        "X\t1\t8R\t-100\t-7\t-100",
        "P\t1\tCASH\t-\t100\t100\t0",
        "P\t1\tPOINT\tポイント\t-100\t-100\t0",
        "E\t1\t0\t2",
    ], count=6)
    reason = check2_only(lines)
    assert reason == "check 2: receipt 1 total 0 has nonzero X or P amounts (records 5–8)"


def test_check2_zero_total_without_payment_is_accepted() -> None:
    lines = replace_records(small_day(), 3, [
        "L\t1\t1\t01\t4900000000001\tおにぎり 鮭\t1\t150\t150\t8R",
        "L\t1\t2\t01\t-\t無料引換券\t1\t-150\t-150\t8R",
        "X\t1\t8R\t0\t0\t0",
        "E\t1\t0\t0",
    ], count=6)
    assert only_day(recompute_close(lines)).status == "accepted"


def test_check2_training_receipts_are_checked_too() -> None:
    reason = check2_only(set_field(small_day(), 19, 5, "44"))
    assert reason == "check 2: receipt 3 X tax 45 ≠ tax_total 44 (records 15, 19)"


# --- check 3: close --------------------------------------------------------------------------


def check3_only(lines: list[str]) -> str:
    reason = held(lines)
    assert set(checks_of(reason)) == {"check 3"}, reason
    return reason


def test_check3_cash_count_missing() -> None:
    lines = [ln for ln in small_day() if not ln.startswith("20\t")]
    reason = check3_only(renumber(lines))
    assert reason == "check 3: no cash count C before the close (record 20)"


def test_check3_two_cash_counts() -> None:
    lines = small_day()
    lines.insert(19, lines[19])
    reason = check3_only(renumber(lines))
    assert reason == "check 3: 2 cash counts C in the day (records 20, 21)"


def test_check3_cash_count_just_before_the_close() -> None:
    lines = small_day()
    count = lines.pop(19)
    lines.insert(13, count)
    reason = check3_only(renumber(lines))
    assert reason == ("check 3: cash count C (record 14) is not just before the close "
                      "(records 14, 21)")


def test_check3_expected_cash() -> None:
    lines = set_field(set_field(small_day(), 20, 3, "29871"), 20, 4, "29871")
    reason = check3_only(lines)
    assert reason == ("check 3: C expected_cash 29871 ≠ opening 30000 + CASH 410 + IN 0 − OUT 540"
                      " = 29870 (records 1, 20)")


def test_check3_difference_and_the_z_cash_difference() -> None:
    lines = set_field(set_field(small_day(), 20, 4, "29860"), 20, 5, "10")
    reason = check3_only(lines)
    assert reason == ("check 3: C difference 10 ≠ counted 29860 − expected 29870 (record 20); "
                      "check 3: Z cash_difference 0 ≠ 10, the C difference (record 21)")


def test_check3_cash_difference_agreeing_everywhere_is_accepted() -> None:
    lines = set_field(set_field(small_day(), 20, 4, "29860"), 20, 5, "-10")
    assert only_day(set_field(lines, 21, 11, "-10")).status == "accepted"


def test_check3_movement_amount_positive() -> None:
    lines = set_field(small_day(), 14, 7, "0")
    lines = set_field(set_field(lines, 20, 3, "30410"), 20, 4, "30410")
    lines = set_field(lines, 21, 10, "IN=0;OUT=0")
    reason = check3_only(lines)
    assert reason == "check 3: movement 1 amount 0 is not positive (record 14)"


def test_check3_movement_no_unique_within_the_day() -> None:
    lines = replace_records(small_day(), 14, [
        "M\t1\tOUT\t22\t小口支払 文具\t540\t20250110120000\t1001",
        "M\t1\tIN\t11\t釣銭補充\t10000\t20250110121000\t1001",
    ])
    reason = check3_only(recompute_close(lines))
    assert reason == "check 3: movement 1 appears twice in the day (records 14, 15)"


@pytest.mark.parametrize(("field_no", "value", "message"), [
    (6, "3", "Z receipt_count 3 ≠ 2 T records (TRAINING excluded)"),
    (7, "1500", "Z gross_total 1500 ≠ 1510, the sum of E.total"),
    (8, "10=1210;8R=301;0=0;EX=0", "Z class total 8R 301 ≠ 300, the sum of X.gross"),
    (9, "CASH=410;CREDIT=1000;EMONEY=100;QR=0;GIFT=0;POINT=0;OTHER=0",
     "Z method total CREDIT 1000 ≠ 1100, the sum of P.amount; check 3: Z method total EMONEY "
     "100 ≠ 0, the sum of P.amount"),
    (10, "IN=540;OUT=540", "Z movement total IN 540 ≠ 0, the sum of M.amount"),
    (11, "5", "Z cash_difference 5 ≠ 0, the C difference"),
])
def test_check3_z_figures(field_no: int, value: str, message: str) -> None:
    reason = check3_only(set_field(small_day(), 21, field_no, value))
    assert reason == f"check 3: {message} (record 21)".replace(
        "the sum of P.amount; check 3", "the sum of P.amount (record 21); check 3")


def test_check3_training_is_excluded_from_every_sum() -> None:
    reason = held(set_field(small_day(), 15, 4, "SALE"))
    assert set(checks_of(reason)) == {"check 3"}
    for part in ("C expected_cash 29870", "Z receipt_count 2 ≠ 3", "Z gross_total 1510 ≠ 2010",
                 "Z class total 10 1210 ≠ 1710", "Z method total CASH 410 ≠ 910"):
        assert part in reason


def test_check3_receipt_without_end_adds_its_parts_but_no_gross() -> None:
    lines = small_day()
    del lines[12]  # E of receipt 2 (OUT, 1100 by card)
    lines = renumber(lines)
    reason = held(lines)
    assert "check 3: Z gross_total 1510 ≠ 410, the sum of E.total (record 20)" in reason
    assert "Z method total" not in reason and "Z class total" not in reason


# --- re-close ------------------------------------------------------------------------------


def test_reclose_between_days_with_the_same_figures() -> None:
    lines = [*small_day(), reclose_line(22), *small_day(23, D2, receipt=4, movement=2)]
    analysis = analyze_journal(lines)
    assert [d.status for d in analysis.days] == ["accepted", "accepted"]
    (reclose,) = analysis.recloses
    assert (reclose.number, reclose.business_date, reclose.close_no, reclose.status,
            reclose.target_record_no, reclose.same_figures) == (22, D1, 2, "same", 21, True)
    first = analysis.days[0]
    assert first.recloses == (reclose,) and first.close_no == 2
    assert first.day is not None and first.day.close_no == 2
    assert [z.number for z in first.day.recloses] == [22]
    assert analysis.close_dates_in_order() == [D1, D2]
    assert analysis.strays == ()


def test_reclose_inside_a_day_between_transactions() -> None:
    day2 = small_day(22, D2, receipt=4, movement=2)
    lines = small_day() + renumber([*day2[:8], reclose_line(0), *day2[8:]], 22)
    analysis = analyze_journal(lines)
    assert [d.status for d in analysis.days] == ["accepted", "accepted"]
    assert analysis.recloses[0].status == "same" and analysis.recloses[0].number == 30
    assert analysis.days[1].day is not None
    assert analysis.days[1].day.recloses == ()


def test_reclose_inside_a_transaction_holds_that_day() -> None:
    day2 = small_day(22, D2, receipt=4, movement=2)
    lines = small_day() + renumber([*day2[:3], reclose_line(0), *day2[3:]], 22)
    analysis = analyze_journal(lines)
    assert analysis.days[1].reason == ("check 2: receipt 4 is interrupted by re-close Z record 25 "
                                       "before its E (records 23, 25)")
    assert analysis.recloses[0].status == "same"


def test_reclose_with_other_figures_holds_its_day() -> None:
    figures = SMALL_DAY_CLOSE.replace("\t1510\t", "\t1511\t")
    lines = [*small_day(), reclose_line(22, figures=figures)]
    analysis = analyze_journal(lines)
    assert analysis.days[0].reason == (
        "check 3: re-close 2 of 2025-01-10 (record 22) does not repeat the close (record 21): "
        "gross_total 1511 ≠ 1510 (records 21, 22)")
    assert analysis.recloses[0].status == "held" and analysis.recloses[0].same_figures is False


def test_reclose_of_a_day_in_the_gateway_store() -> None:
    close = parse_record(small_day()[20].encode("cp932"))
    assert isinstance(close, Close)
    same = analyze_journal([reclose_line(22)], after_record_no=21, known_closes=[close])
    assert same.recloses[0].status == "same" and same.recloses[0].target_record_no == 21
    assert same.days == () and same.strays == () and same.pending == ()
    figures = SMALL_DAY_CLOSE.replace("OUT=540", "OUT=550")
    other = analyze_journal([reclose_line(22, figures=figures)], after_record_no=21,
                            known_closes=[close])
    assert other.recloses[0].status == "held"
    assert other.recloses[0].reason == (
        "check 3: re-close 2 of 2025-01-10 (record 22) does not repeat the close (record 21): "
        "movement_totals OUT 550 ≠ 540 (records 21, 22)")


def test_reclose_of_a_day_not_in_the_records() -> None:
    analysis = analyze_journal([reclose_line(22)], after_record_no=21)
    assert analysis.recloses[0].status == "unmatched"
    assert analysis.recloses[0].target_record_no is None
    assert analysis.close_dates_in_order() == [D1]


def test_malformed_reclose_holds_its_day_with_format() -> None:
    lines = [*small_day(), reclose_line(22).replace("\t1510\t", "\t01510\t")]
    analysis = analyze_journal(lines)
    assert analysis.recloses[0].status == "held"
    assert analysis.days[0].reason is not None
    assert analysis.days[0].reason.startswith("format: record 22 (Z): field 7 (gross_total)")


def test_date_named_by_a_reclose_counts_as_closed() -> None:
    day = renumber(small_day(2, D2, receipt=4, movement=2), 2)
    lines = [reclose_line(1, business_date=D2, first=5), *day]
    analysis = analyze_journal(lines)
    assert analysis.recloses[0].status == "unmatched"
    assert analysis.days[0].reason == ("check 1: business date 2025-01-11 already closed by "
                                       "record 1 (records 1, 2, 22)")


# --- several failures ------------------------------------------------------------------------


def test_failures_in_check_order_then_record_order() -> None:
    lines = set_field(small_day(), 21, 6, "3")          # check 3, record 21
    lines = set_field(lines, 13, 5, "101")              # check 2, receipt 2 (records 9, 13)
    lines = set_field(lines, 8, 5, "33")                # check 2, receipt 1 (records 2, 8)
    lines = set_field(lines, 21, 12, "2")               # check 1, records 1, 21
    reason = held(lines)
    assert reason == "; ".join([
        "check 1: close first_record_no 2 ≠ open record 1 (records 1, 21)",
        "check 2: receipt 1 X tax 32 ≠ tax_total 33 (records 2, 8)",
        "check 2: receipt 2 X tax 100 ≠ tax_total 101 (records 9, 13)",
        "check 3: Z receipt_count 3 ≠ 2 T records (TRAINING excluded) (record 21)",
    ])
    failures = only_day(lines).failures
    assert [f.check for f in failures] == ["check 1", "check 2", "check 2", "check 3"]
    assert failures[1].records == (2, 8)


# --- open days, fragments, incremental use ---------------------------------------------------


def test_trailing_day_without_close_is_open() -> None:
    analysis = analyze_journal(two_days()[:30])
    assert [d.status for d in analysis.days] == ["accepted", "open"]
    day = analysis.open_day
    assert day is not None and day.reason is None and day.failures == ()
    assert day.business_date == D2 and day.close_record_no is None and day.day is None
    assert day.totals.gross == 410 and day.totals.receipt_count == 2  # T of receipt 5 counts


def test_open_day_shows_failures_already_certain() -> None:
    lines = set_field(two_days()[:30], 29, 5, "33")
    day = analyze_journal(lines).open_day
    assert day is not None and day.status == "open" and day.reason is None
    assert [f.check for f in day.failures] == ["check 2"]


def test_file_starting_inside_a_day_has_a_head_fragment() -> None:
    lines = two_days()[5:]
    analysis = analyze_journal(lines)
    assert analysis.head == (6, 21)
    assert analysis.head_close is not None and analysis.head_close.business_date == D1
    assert [(d.business_date, d.status) for d in analysis.days] == [(D2, "accepted")]
    assert analysis.close_dates_in_order() == [D1, D2]
    assert analysis.day_closing(D1) is None


def test_same_records_with_known_context_are_strays() -> None:
    analysis = analyze_journal(two_days()[5:], after_record_no=5)
    assert analysis.head is None
    assert analysis.days[0].status == "held"
    assert analysis.days[0].reason == ("check 1: records 6–21 stand between a close and the next "
                                       "open (records 6–22)")


def test_assembler_incremental_matches_one_shot() -> None:
    lines = two_days() + small_day(43, D1, receipt=7, movement=3)
    assembler = JournalAssembler()
    assembler.extend(lines[:21])
    first = assembler.analyze()
    assert [d.status for d in first.days] == ["accepted"]
    assembler.forget_through(first.days[0].last_record_no)
    assert len(assembler) == 0
    assembler.extend(lines[21:30])
    assert [d.status for d in assembler.analyze().days] == ["open"]
    assembler.extend(lines[30:])
    later = assembler.analyze()
    assert [d.status for d in later.days] == ["accepted", "held"]
    assert later.days[1].reason == ("check 1: business date 2025-01-10 already closed before "
                                    "these records (records 43, 63)")
    one_shot = analyze_journal(lines)
    assert [d.status for d in one_shot.days] == ["accepted", "accepted", "held"]


def test_assembler_forgotten_close_still_compares_recloses() -> None:
    assembler = JournalAssembler()
    assembler.extend(small_day())
    assembler.forget_through(21)
    figures = SMALL_DAY_CLOSE.replace("OUT=540\t0", "OUT=540\t1")
    assert figures != SMALL_DAY_CLOSE
    assembler.add(reclose_line(22, figures=figures))
    analysis = assembler.analyze()
    assert analysis.recloses[0].status == "held" and analysis.recloses[0].target_record_no == 21


def test_assembler_gap_after_forgotten_records() -> None:
    assembler = JournalAssembler()
    assembler.extend(small_day())
    assembler.forget_through(21)
    assembler.extend(small_day(23, D2, receipt=4, movement=2))
    assert assembler.analyze().days[0].reason == "check 1: record 22 is missing (records 21, 23)"


def test_assemble_and_check_a_5000_receipt_day_fast() -> None:
    lines = generate_journal(7, 1, D1, receipts_per_day=5000)
    raw = [line.encode("cp932") for line in lines]
    assert len(raw) > 35000
    started = time.perf_counter()
    analysis: JournalAnalysis = analyze_journal(raw)
    elapsed = time.perf_counter() - started
    assert [d.status for d in analysis.days] == ["accepted"]
    assert analysis.days[0].totals.receipt_count > 4800
    assert elapsed < 2.0, f"{len(raw)} records took {elapsed:.2f} s"


def test_totals_of_records_by_class_and_method() -> None:
    records = [parse_record(line.encode("cp932")) for line in small_day()]
    totals = totals_of(records)
    assert totals.by_class[TaxClass.STANDARD] == 1210
    assert totals.by_method[Method.CREDIT] == 1100
    assert totals.cash_difference == 0 and totals.tax == 132


def test_malformed_open_still_opens_its_day() -> None:
    analysis = analyze_journal(set_field(two_days(), 1, 6, "30,000"))
    assert [d.status for d in analysis.days] == ["held", "accepted"]
    assert analysis.days[0].reason == (
        "format: record 1 (O): field 6 (opening_cash) '30,000' is not money (0, or digits "
        "without leading zero, - when negative, never -0)")
    assert analysis.days[0].business_date == D1 and analysis.strays == ()


def test_unreadable_record_number_takes_the_next_number() -> None:
    lines = set_field(small_day(), 10, 1, "1O")
    day = only_day(lines)
    assert day.status == "held"
    assert day.reason is not None and day.reason.startswith(
        "format: record ? (L): field 1 (record number) '1O' is not a record number")
    assert day.failures[0].records == (10,)
    assert analyze_journal(lines).breaks == ()


def test_empty_line_in_a_file_is_a_malformed_record() -> None:
    data = as_bytes(small_day()).replace(b"\n14\t", b"\n\n15\t", 1)
    day = only_day(split_records(data))
    assert day.reason is not None and day.reason.startswith("format: record ?: field 1")
