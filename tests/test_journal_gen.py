"""Generated journals: always accepted, realistic, deterministic; mutations are held."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from journal_fixtures import renumber

from gatewayd.protocol.days import analyze_journal
from gatewayd.protocol.journal_parser import parse_record
from gatewayd.protocol.records import Close, ItemLine, Kind, Method, TaxClass, TaxMode
from gatewayd.sim.journal_gen import (
    FAULT_CHECKS,
    GeneratorOptions,
    Reclose,
    generate_day,
    generate_journal,
    generate_reclose,
    inject_fault,
    new_generator,
    skip_number,
    tax_of,
)

START = date(2025, 1, 10)
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def statuses(lines: list[str], **kw: object) -> list[str]:
    return [d.status for d in analyze_journal(lines, **kw).days]  # type: ignore[arg-type]


def checks_of(reason: str | None) -> list[str]:
    assert reason is not None
    return [part.split(":", 1)[0] for part in reason.split("; ")]


# --- every generated day is accepted ---------------------------------------------------------


@MANY
@given(seed=st.integers(0, 2**32), days=st.integers(1, 3), receipts=st.integers(0, 60),
       start=st.dates(date(2019, 1, 1), date(2035, 12, 1)),
       first_record_no=st.integers(1, 10**14), first_receipt_no=st.integers(1, 10**9),
       tax_mode=st.sampled_from(["IN", "OUT", "MIXED"]))
def test_generated_days_are_always_accepted(seed: int, days: int, receipts: int, start: date,
                                            first_record_no: int, first_receipt_no: int,
                                            tax_mode: str) -> None:
    lines = generate_journal(seed, days, start, receipts_per_day=receipts,
                             first_record_no=first_record_no, first_receipt_no=first_receipt_no,
                             options=GeneratorOptions(tax_mode=tax_mode))
    analysis = analyze_journal(lines, after_record_no=first_record_no - 1)
    assert [(d.status, d.reason) for d in analysis.days] == [("accepted", None)] * days
    assert [d.business_date for d in analysis.days] == [start + timedelta(days=i)
                                                        for i in range(days)]
    assert analysis.strays == () and analysis.breaks == () and analysis.pending == ()
    assert int(lines[0].split("\t")[0]) == first_record_no
    for day in analysis.days:
        assert day.day is not None
        assert len(day.day.transactions) == receipts


@FAST
@given(seed=st.integers(0, 2**32), inside=st.booleans())
def test_generated_recloses_repeat_the_figures(seed: int, inside: bool) -> None:
    recloses = [Reclose(0, 2, inside), Reclose(1, 3, False), Reclose(0, 3, False)]
    lines = generate_journal(seed, 3, START, receipts_per_day=15, recloses=recloses)
    analysis = analyze_journal(lines)
    assert [d.status for d in analysis.days] == ["accepted"] * 3
    assert [(r.business_date, r.close_no, r.status) for r in analysis.recloses] == [
        (START, 2, "same"), (START + timedelta(days=1), 2, "same"), (START, 3, "same")]
    assert analysis.days[0].close_no == 3 and analysis.days[1].close_no == 2


def test_reclose_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="not possible"):
        generate_journal(1, 2, START, recloses=[Reclose(1, 1)])
    with pytest.raises(ValueError, match="not possible"):
        generate_journal(1, 2, START, recloses=[Reclose(0, 2, inside=True)])
    state = new_generator(1, START)
    with pytest.raises(ValueError, match="no close of"):
        generate_reclose(state, START)


# --- mutations are held with the right check -------------------------------------------------


@MANY
@given(seed=st.integers(0, 2**32), fault=st.sampled_from(sorted(FAULT_CHECKS)),
       reclose=st.booleans())
def test_injected_faults_hold_the_day_with_their_check(seed: int, fault: str,
                                                       reclose: bool) -> None:
    recloses = [Reclose(0, 1)] if reclose else []
    lines = generate_journal(seed, 2, START, receipts_per_day=12, recloses=recloses)
    analysis = analyze_journal(inject_fault(lines, fault, seed))
    first, last = analysis.days
    assert first.status == "accepted"
    assert last.status == "held"
    assert checks_of(last.reason)[0] == FAULT_CHECKS[fault]
    if fault == "format":
        assert set(checks_of(last.reason)) == {"format"}
    if fault == "duplicate_date":
        assert "already closed by record" in (last.reason or "")
    if fault in ("gap", "gap_before_open"):  # nothing lost: the missing number is all
        assert checks_of(last.reason) == ["check 1"] and " is missing (" in (last.reason or "")


def test_skip_number_shifts_the_rest_and_the_z_that_names_them() -> None:
    lines = generate_journal(4, 3, START, receipts_per_day=3, recloses=[Reclose(1, 2)])
    second_open = [i for i, ln in enumerate(lines) if ln.split("\t")[1] == "O"][1]
    skipped = int(lines[second_open].split("\t")[0])
    out = skip_number(lines, second_open)
    numbers = [int(ln.split("\t")[0]) for ln in out]
    assert numbers == [*range(1, skipped), *range(skipped + 1, len(lines) + 2)]
    assert [ln.split("\t", 1)[1] for ln in out] != [ln.split("\t", 1)[1] for ln in lines]
    for before, after in zip(lines, out, strict=True):  # only numbers moved
        b, a = before.split("\t"), after.split("\t")
        if b[1] == "Z":
            first = int(b[11])
            assert int(a[11]) == (first + 1 if first >= skipped else first)
            b[11] = a[11]
        assert b[1:] == a[1:]
    days = analyze_journal(out).days
    assert [d.status for d in days] == ["accepted", "held", "accepted"]
    assert days[1].reason == f"check 1: record {skipped} is missing (records {skipped - 1}, " \
        f"{skipped + 1})"


@FAST
@given(seed=st.integers(0, 2**32), delta=st.sampled_from([-10, -1, 1, 7]))
def test_changed_payment_amount_is_check_2(seed: int, delta: int) -> None:
    lines = generate_journal(seed, 1, START, receipts_per_day=10)
    index = next(i for i, ln in enumerate(lines) if ln.split("\t")[1] == "P")
    f = lines[index].split("\t")
    f[6] = str(int(f[6]) + delta)
    f[5] = str(int(f[5]) + delta)  # keep amount = tendered − change: only the sum breaks
    lines[index] = "\t".join(f)
    (day,) = analyze_journal(lines).days
    assert day.status == "held"
    assert checks_of(day.reason)[0] == "check 2"
    assert "payments" in (day.reason or "")


@FAST
@given(seed=st.integers(0, 2**32), data=st.data())
def test_swapped_records_renumbered_break_check_2_or_3(seed: int, data: st.DataObject) -> None:
    lines = generate_journal(seed, 1, START, receipts_per_day=10)
    types = [ln.split("\t")[1] for ln in lines]
    pairs = [i for i in range(1, len(lines) - 2) if types[i] != types[i + 1]]
    i = data.draw(st.sampled_from(pairs))
    lines[i], lines[i + 1] = lines[i + 1], lines[i]
    (day,) = analyze_journal(renumber(lines)).days
    assert day.status == "held"
    assert set(checks_of(day.reason)) <= {"check 2", "check 3"}


@FAST
@given(seed=st.integers(0, 2**32), data=st.data())
def test_any_changed_z_figure_is_check_3(seed: int, data: st.DataObject) -> None:
    lines = generate_journal(seed, 1, START, receipts_per_day=10)
    f = lines[-1].split("\t")
    field_no = data.draw(st.sampled_from([6, 7, 8, 9, 10, 11]))
    if field_no in (6, 7, 11):
        f[field_no - 1] = str(int(f[field_no - 1]) + 1)
    else:
        parts = f[field_no - 1].split(";")
        k = data.draw(st.integers(0, len(parts) - 1))
        key, value = parts[k].split("=")
        parts[k] = f"{key}={int(value) + 1}"
        f[field_no - 1] = ";".join(parts)
    lines[-1] = "\t".join(f)
    (day,) = analyze_journal(lines).days
    assert day.status == "held" and set(checks_of(day.reason)) == {"check 3"}


def test_dropped_record_names_the_gap() -> None:
    lines = generate_journal(3, 1, START, receipts_per_day=10)
    del lines[10]
    (day,) = analyze_journal(lines).days
    assert (day.reason or "").startswith("check 1: record 11 is missing (records 10, 12)")


def test_unknown_fault_and_too_few_days() -> None:
    lines = generate_journal(3, 1, START, receipts_per_day=3)
    with pytest.raises(ValueError, match="unknown fault"):
        inject_fault(lines, "flood")
    with pytest.raises(ValueError, match="two days"):
        inject_fault(lines, "duplicate_date")


# --- realistic content -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def week() -> list[str]:
    return generate_journal(20250110, 7, START, receipts_per_day=250)


def records_of(lines: list[str]) -> list[object]:
    return [parse_record(line.encode("cp932")) for line in lines]


def test_every_kind_method_mode_and_class_appears(week: list[str]) -> None:
    records = records_of(week)
    starts = [r for r in records if r.__class__.__name__ == "TransactionStart"]
    kinds = Counter(t.kind for t in starts)  # type: ignore[attr-defined]
    assert set(kinds) == set(Kind)
    assert kinds[Kind.SALE] > 0.9 * len(starts)
    assert {t.tax_mode for t in starts} == set(TaxMode)  # type: ignore[attr-defined]
    payments = [r for r in records if r.__class__.__name__ == "Payment"]
    assert {p.method for p in payments} == set(Method)  # type: ignore[attr-defined]
    brands = {p.brand for p in payments}  # type: ignore[attr-defined]
    assert {"VISA", "Mastercard", "JCB", "交通系IC", "WAON", "nanaco", "PayPay",
            "楽天ペイ"} <= brands
    assert any(p.method is Method.CASH and p.change > 0 for p in payments)  # type: ignore[attr-defined]
    per_receipt = Counter(p.receipt_no for p in payments)  # type: ignore[attr-defined]
    assert any(n >= 2 for n in per_receipt.values())  # split payments
    lines = [r for r in records if isinstance(r, ItemLine)]
    classes = Counter(ln.tax_class for ln in lines)
    assert set(classes) == set(TaxClass)
    rare = classes[TaxClass.EXEMPT] + classes[TaxClass.OUT_OF_SCOPE]
    assert 0 < rare < 0.05 * len(lines)
    assert classes[TaxClass.REDUCED] > classes[TaxClass.STANDARD] > rare
    assert any(ln.amount < 0 and ln.qty > 0 for ln in lines)  # discounts
    assert any(ln.qty != ln.qty.to_integral_value() for ln in lines)  # weighed goods
    assert any("鮭" in ln.name for ln in lines)


def test_voids_corrections_and_returns_name_earlier_receipts(week: list[str]) -> None:
    records = records_of(week)
    day_of_receipt: dict[int, int] = {}
    day = -1
    voids_of_earlier_days = corrections = returns = 0
    previous = None
    for r in records:
        name = r.__class__.__name__
        if name == "OpenDay":
            day += 1
        if name != "TransactionStart":
            continue
        day_of_receipt[r.receipt_no] = day  # type: ignore[attr-defined]
        ref = r.ref_receipt_no  # type: ignore[attr-defined]
        if r.kind is Kind.VOID:  # type: ignore[attr-defined]
            assert ref in day_of_receipt and ref < r.receipt_no  # type: ignore[attr-defined]
            voids_of_earlier_days += day_of_receipt[ref] < day
        if r.kind is Kind.SALE and ref is not None:  # type: ignore[attr-defined]
            assert previous is not None and previous.kind is Kind.VOID
            assert previous.ref_receipt_no == ref
            corrections += 1
        if r.kind is Kind.RETURN:  # type: ignore[attr-defined]
            assert ref in day_of_receipt
            returns += 1
        previous = r
    assert voids_of_earlier_days > 0 and corrections > 0 and returns > 0


def test_void_negates_the_original(week: list[str]) -> None:
    by_receipt: dict[int, list[list[str]]] = {}
    for line in week:
        f = line.split("\t")
        if f[1] in "TLXPE":
            by_receipt.setdefault(int(f[2]), []).append(f)
    checked = 0
    for fields in by_receipt.values():
        t = fields[0]
        if t[3] != "VOID":
            continue
        original = by_receipt[int(t[4])]
        assert [x[3:] for x in fields if x[1] == "X"] == [
            [x[3], str(-int(x[4])), str(-int(x[5])), str(-int(x[6]))]
            for x in original if x[1] == "X"]
        refunds = [x for x in fields if x[1] == "P"]
        assert all(int(p[5]) == int(p[6]) < 0 and p[7] == "0" for p in refunds)
        e, oe = fields[-1], original[-1]
        assert int(e[3]) == -int(oe[3]) and int(e[4]) == -int(oe[4])
        checked += 1
    assert checked > 0


def test_tax_is_rounded_down_once_per_receipt_and_class(week: list[str]) -> None:
    modes: dict[str, TaxMode] = {}
    kinds: dict[str, str] = {}
    checked = 0
    for line in week:
        f = line.split("\t")
        if f[1] == "T":
            modes[f[2]], kinds[f[2]] = TaxMode(f[7]), f[3]
        elif f[1] == "X" and kinds[f[2]] in ("SALE", "TRAINING"):
            base, tax = int(f[4]), int(f[5])
            assert tax == tax_of(base, TaxClass(f[3]), modes[f[2]])
            if base > 0 and f[3] == "10" and modes[f[2]] is TaxMode.IN:
                assert tax == base * 10 // 110
            checked += 1
    assert checked > 1000
    assert tax_of(105 * 3, TaxClass.STANDARD, TaxMode.OUT) == 31  # not 3 × 10 per line
    assert tax_of(-1000, TaxClass.REDUCED, TaxMode.IN) == -74


def test_movements_and_cash_counts(week: list[str]) -> None:
    movements = [ln.split("\t") for ln in week if ln.split("\t")[1] == "M"]
    assert {m[3] for m in movements} == {"IN", "OUT"}
    assert all(int(m[6]) > 0 for m in movements)
    assert {"釣銭補充", "売上金中間回収"} <= {m[5] for m in movements}
    numbers = [int(m[2]) for m in movements]
    assert numbers == list(range(1, len(numbers) + 1))
    counts = [ln.split("\t") for ln in week if ln.split("\t")[1] == "C"]
    assert len(counts) == 7
    assert any(c[4] != "0" for c in counts)


def test_deterministic_and_varied_by_seed_store_and_terminal() -> None:
    a = generate_journal(5, 2, START, receipts_per_day=20)
    assert a == generate_journal(5, 2, START, receipts_per_day=20)
    assert a != generate_journal(6, 2, START, receipts_per_day=20)
    assert a != generate_journal(5, 2, START, store_code="0002", receipts_per_day=20)
    assert a != generate_journal(5, 2, START, terminal_no="02", receipts_per_day=20)


def test_day_by_day_state_continues_the_same_journal() -> None:
    whole = generate_journal(9, 3, START, receipts_per_day=15, first_record_no=101,
                             first_receipt_no=5001)
    state = new_generator(9, START, first_record_no=101, first_receipt_no=5001)
    pieces = [generate_day(state, 15) for _ in range(3)]
    assert [line for piece in pieces for line in piece] == whole
    assert state.next_record_no == 101 + len(whole)
    t = next(ln for ln in whole if ln.split("\t")[1] == "T")
    assert t.split("\t")[2] == "5001"
    z = generate_reclose(state, START + timedelta(days=1))
    close = parse_record(z.encode("cp932"))
    assert isinstance(close, Close) and close.close_no == 2
    assert close.number == 101 + len(whole)
    lines = [*whole, z]
    analysis = analyze_journal(lines, after_record_no=100)
    assert [r.status for r in analysis.recloses] == ["same"]


def test_generated_lines_are_cp932_without_lf_and_round_trip(week: list[str]) -> None:
    for line in week[:3000]:
        assert "\n" not in line and not line.endswith("\t")
        raw = line.encode("cp932")
        assert len(raw) < 4096
        record = parse_record(raw)
        assert record.number == int(line.split("\t")[0])
