"""Every form rule of register-link.md section 5, valid and invalid, and the splitter."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from journal_fixtures import small_day

from gatewayd.errors import RecordFormatError
from gatewayd.protocol.journal_parser import (
    Malformed,
    encode_record,
    format_record,
    parse_record,
    read_record,
    split_records,
)
from gatewayd.protocol.records import (
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
    TransactionEnd,
    TransactionStart,
)

O_ = "1\tO\t20250110\t20250110090000\t1001\t30000"
T = "2\tT\t1\tSALE\t-\t20250110100000\t1001\tIN"
L = "3\tL\t1\t1\t01\t4900000000001\tおにぎり 鮭\t2\t150\t300\t8R"
X = "4\tX\t1\t8R\t300\t22\t300"
P = "5\tP\t1\tCASH\t-\t1000\t300\t700"
E = "6\tE\t1\t300\t22"
M = "7\tM\t1\tOUT\t22\t小口支払 文具\t540\t20250110120000\t1001"
C = "8\tC\t29870\t29870\t0"
Z = ("9\tZ\t20250110\t1\t20250110213000\t1\t300\t10=0;8R=300;0=0;EX=0"
     "\tCASH=300;CREDIT=0;EMONEY=0;QR=0;GIFT=0;POINT=0;OTHER=0\tIN=0;OUT=540\t0\t1")
ALL = {"O": O_, "T": T, "L": L, "X": X, "P": P, "E": E, "M": M, "C": C, "Z": Z}


def b(text: str) -> bytes:
    return text.encode("cp932")


def with_field(line: str, field_no: int, value: str) -> bytes:
    f = line.split("\t")
    f[field_no - 1] = value
    return b("\t".join(f))


def error_of(line: bytes) -> RecordFormatError:
    with pytest.raises(RecordFormatError) as info:
        parse_record(line)
    return info.value


# --- every type parses into its typed record -------------------------------------------------


def test_each_type_parses_to_its_record() -> None:
    o = parse_record(b(O_) + b"\n")
    assert o == OpenDay(1, date(2025, 1, 10), datetime(2025, 1, 10, 9), "1001", 30000)
    t = parse_record(b(T))
    assert t == TransactionStart(2, 1, Kind.SALE, None, datetime(2025, 1, 10, 10), "1001",
                                 TaxMode.IN)
    line = parse_record(b(L))
    assert line == ItemLine(3, 1, 1, "01", "4900000000001", "おにぎり 鮭", Decimal(2), 150, 300,
                            TaxClass.REDUCED)
    assert parse_record(b(X)) == ReceiptTax(4, 1, TaxClass.REDUCED, 300, 22, 300)
    assert parse_record(b(P)) == Payment(5, 1, Method.CASH, "", 1000, 300, 700)
    assert parse_record(b(E)) == TransactionEnd(6, 1, 300, 22)
    assert parse_record(b(M)) == Movement(7, 1, Direction.OUT, "22", "小口支払 文具", 540,
                                          datetime(2025, 1, 10, 12), "1001")
    assert parse_record(b(C)) == CashCount(8, 29870, 29870, 0)
    z = parse_record(b(Z))
    assert isinstance(z, Close)
    assert z.business_date == date(2025, 1, 10) and z.close_no == 1 and z.first_record_no == 1
    assert z.class_totals == {TaxClass.STANDARD: 0, TaxClass.REDUCED: 300,
                              TaxClass.EXEMPT: 0, TaxClass.OUT_OF_SCOPE: 0}
    assert list(z.method_totals) == list(Method)
    assert z.movement_totals == {Direction.IN: 0, Direction.OUT: 540}


@pytest.mark.parametrize("line", [*ALL.values(), *small_day()])
def test_format_is_the_inverse_of_parse(line: str) -> None:
    record = parse_record(b(line))
    assert format_record(record) == line
    assert encode_record(record) == b(line) + b"\n"


def test_dash_is_the_empty_text_field_and_ref_none() -> None:
    t = parse_record(b("2\tT\t5\tVOID\t3\t20250110100000\t-\tOUT"))
    assert isinstance(t, TransactionStart)
    assert t.staff_code == "" and t.ref_receipt_no == 3 and t.kind is Kind.VOID


# --- record number (field 1) -----------------------------------------------------------------


@pytest.mark.parametrize("good", ["1", "9", "10", "123456789012345"])
def test_record_number_valid(good: str) -> None:
    assert parse_record(with_field(C, 1, good)).number == int(good)


@pytest.mark.parametrize("bad", ["0", "01", "-1", "+1", "1234567890123456", "1a", " 1", "１"])
def test_record_number_invalid_has_no_record_no(bad: str) -> None:
    err = error_of(with_field(C, 1, bad))
    assert err.record_no is None
    assert "field 1 (record number)" in str(err)


# --- framing of a line -----------------------------------------------------------------------


def test_type_unknown_or_missing() -> None:
    err = error_of(b"5\tQ\t1")
    assert err.record_no == 5 and "field 2 (type) 'Q'" in str(err)
    assert "field 2 (type) is missing" in str(error_of(b"5"))
    assert "field 2 (type) is missing" in str(error_of(b"5\n"))


def test_lf_is_optional_but_only_one() -> None:
    assert parse_record(b(C) + b"\n") == parse_record(b(C))
    assert "field 5 (difference)" in str(error_of(b(C) + b"\n\n"))  # an LF inside a field


def test_trailing_tab_is_refused() -> None:
    err = error_of(b(C) + b"\t")
    assert err.record_no == 8 and "ends with a TAB" in str(err)


def test_empty_field_is_refused() -> None:
    err = error_of(with_field(M, 5, ""))
    assert "field 5 (reason_code) is empty" in str(err)


@pytest.mark.parametrize(("rtype", "count"), [("O", 6), ("T", 8), ("L", 11), ("X", 7), ("P", 8),
                                              ("E", 5), ("M", 9), ("C", 5), ("Z", 12)])
def test_exact_field_count_per_type(rtype: str, count: int) -> None:
    line = ALL[rtype]
    assert len(line.split("\t")) == count
    more = error_of(b(line + "\t0"))
    assert f"has {count + 1} fields, a {rtype} record has {count}" in str(more)
    fewer = error_of(b(line.rsplit("\t", 1)[0]))
    assert f"has {count - 1} fields" in str(fewer)


def test_4096_bytes_with_lf_is_the_limit() -> None:
    head = "3\tL\t1\t1\t01\t4900000000001\t"
    tail = "\t2\t150\t300\t8R"
    room = 4096 - 1 - len(b(head + tail))
    exact = head + "あ" * (room // 2) + "a" * (room % 2) + tail
    assert len(b(exact)) + 1 == 4096
    assert isinstance(parse_record(b(exact) + b"\n"), ItemLine)
    over = head + "あ" * (room // 2) + "a" * (room % 2) + "a" + tail
    err = error_of(b(over))
    assert "4097 bytes with its LF, more than 4096" in str(err) and err.record_no == 3


def test_bytes_that_are_not_cp932() -> None:
    err = error_of(b"3\tL\t1\t1\t01\t49\t\x82\t2\t150\t300\t8R")
    assert err.record_no == 3 and "is not CP932 text" in str(err)


def test_cp932_extensions_and_katakana_are_text() -> None:
    line = "3\tL\t1\t1\t01\t-\t①髙～ｱｲｳ\t1\t100\t100\t10"
    record = parse_record(line.encode("cp932"))
    assert isinstance(record, ItemLine) and record.name == "①髙～ｱｲｳ" and record.item_code == ""


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x1f", "\x7f", "\r"])
@pytest.mark.parametrize(("rtype", "field_no", "name"), [
    ("O", 5, "staff_code"), ("L", 5, "dept_code"), ("L", 6, "item_code"), ("L", 7, "name"),
    ("P", 5, "brand"), ("M", 5, "reason_code"), ("M", 6, "reason_name"), ("T", 7, "staff_code"),
])
def test_no_control_characters_in_codes_and_names(char: str, rtype: str, field_no: int,
                                                  name: str) -> None:
    err = error_of(with_field(ALL[rtype], field_no, "ab" + char))
    assert f"field {field_no} ({name})" in str(err) and "control character" in str(err)


# --- number forms ----------------------------------------------------------------------------


@pytest.mark.parametrize(("rtype", "field_no"), [("T", 3), ("L", 3), ("L", 4), ("X", 3),
                                                 ("P", 3), ("E", 3), ("M", 3), ("Z", 4)])
@pytest.mark.parametrize(("value", "ok"), [("1", True), ("9999999999", True), ("0", False),
                                           ("01", False), ("10000000000", False), ("-1", False),
                                           ("1.0", False), ("-", False)])
def test_serial_numbers(rtype: str, field_no: int, value: str, ok: bool) -> None:
    line = with_field(ALL[rtype], field_no, value)
    if ok:
        parse_record(line)
    else:
        assert "1 to 10 digits" in str(error_of(line))


@pytest.mark.parametrize(("value", "ok"), [("0", True), ("7", True), ("12345", True),
                                           ("00", False), ("01", False), ("-1", False),
                                           ("-", False)])
def test_receipt_count(value: str, ok: bool) -> None:
    line = with_field(Z, 6, value)
    if ok:
        assert parse_record(line).receipt_count == int(value)  # type: ignore[union-attr]
    else:
        assert "field 6 (receipt_count)" in str(error_of(line))


MONEY_FIELDS = [("O", 6), ("L", 9), ("L", 10), ("X", 5), ("X", 6), ("X", 7), ("P", 6), ("P", 7),
                ("P", 8), ("E", 4), ("E", 5), ("M", 7), ("C", 3), ("C", 4), ("C", 5), ("Z", 7),
                ("Z", 11)]


@pytest.mark.parametrize(("rtype", "field_no"), MONEY_FIELDS)
@pytest.mark.parametrize(("value", "ok"), [
    ("0", True), ("5", True), ("-5", True), ("1234567", True), ("-1000", True),
    ("-0", False), ("00", False), ("05", False), ("-05", False), ("+5", False), ("5.0", False),
    ("1,000", False), ("-", False), ("1e3", False), (" 5", False),
])
def test_money_form(rtype: str, field_no: int, value: str, ok: bool) -> None:
    line = with_field(ALL[rtype], field_no, value)
    if ok:
        parse_record(line)
    else:
        assert "is not money" in str(error_of(line))


@pytest.mark.parametrize(("value", "expected"), [("2", Decimal(2)), ("-1", Decimal(-1)),
                                                 ("0.35", Decimal("0.35")), ("0", Decimal(0)),
                                                 ("-0.5", Decimal("-0.5")), ("12.000", Decimal(12)),
                                                 ("0.0", Decimal(0))])
def test_qty_valid(value: str, expected: Decimal) -> None:
    line = parse_record(with_field(L, 8, value))
    assert isinstance(line, ItemLine) and line.qty == expected


@pytest.mark.parametrize(("value", "why"), [("-0", "negative zero"), ("-0.0", "negative zero"),
                                            ("-0.000", "negative zero"), ("01", "not a quantity"),
                                            (".5", "not a quantity"), ("1.", "not a quantity"),
                                            ("1,5", "not a quantity"), ("+1", "not a quantity"),
                                            ("1e2", "not a quantity"), ("-", "not a quantity")])
def test_qty_invalid(value: str, why: str) -> None:
    err = error_of(with_field(L, 8, value))
    assert "field 8 (qty)" in str(err) and why in str(err)


def test_ref_receipt_no_dash_or_receipt_number() -> None:
    assert parse_record(with_field(T, 5, "-")).ref_receipt_no is None  # type: ignore[union-attr]
    assert parse_record(with_field(T, 5, "42")).ref_receipt_no == 42  # type: ignore[union-attr]
    for bad in ("0", "042", "", "x"):
        assert "field 5 (ref_receipt_no)" in str(error_of(with_field(T, 5, bad)))


@pytest.mark.parametrize(("value", "ok"), [("1", True), ("123456789012345", True),
                                           ("0", False), ("012", False),
                                           ("1234567890123456", False)])
def test_first_record_no(value: str, ok: bool) -> None:
    line = with_field(Z, 12, value)
    if ok:
        parse_record(line)
    else:
        assert "field 12 (first_record_no)" in str(error_of(line))


# --- dates and timestamps --------------------------------------------------------------------


@pytest.mark.parametrize(("value", "ok"), [("20240229", True), ("20250228", True),
                                           ("20250229", False), ("20251301", False),
                                           ("20250100", False), ("00000101", False),
                                           ("2025011", False), ("2025-01-10", False),
                                           ("202501100", False)])
@pytest.mark.parametrize(("rtype", "field_no"), [("O", 3), ("Z", 3)])
def test_business_dates_are_real(value: str, ok: bool, rtype: str, field_no: int) -> None:
    line = with_field(ALL[rtype], field_no, value)
    if ok:
        parse_record(line)
    else:
        assert f"field {field_no} (business_date)" in str(error_of(line))


@pytest.mark.parametrize(("value", "ok"), [("20250110000000", True), ("20250110235959", True),
                                           ("20250110240000", False), ("20250110126000", False),
                                           ("20250110120060", False), ("20250231120000", False),
                                           ("2025011012000", False), ("20250110 12000", False)])
@pytest.mark.parametrize(("rtype", "field_no"), [("O", 4), ("T", 6), ("M", 8), ("Z", 5)])
def test_timestamps_are_real(value: str, ok: bool, rtype: str, field_no: int) -> None:
    line = with_field(ALL[rtype], field_no, value)
    if ok:
        parse_record(line)
    else:
        assert f"field {field_no} (timestamp)" in str(error_of(line))


# --- enums -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("rtype", "field_no", "values", "bad"), [
    ("T", 4, ["SALE", "VOID", "RETURN", "TRAINING"], ["sale", "CANCEL", "-"]),
    ("T", 8, ["IN", "OUT"], ["in", "INCL", "-"]),
    ("L", 11, ["10", "8R", "0", "EX"], ["8", "8r", "08", "-"]),
    ("X", 4, ["10", "8R", "0", "EX"], ["5", "ex"]),
    ("P", 4, ["CASH", "CREDIT", "EMONEY", "QR", "GIFT", "POINT", "OTHER"], ["CARD", "cash"]),
    ("M", 4, ["IN", "OUT"], ["OUTS", "-"]),
])
def test_enum_values(rtype: str, field_no: int, values: list[str], bad: list[str]) -> None:
    for value in values:
        parse_record(with_field(ALL[rtype], field_no, value))
    for value in bad:
        assert "is not one of" in str(error_of(with_field(ALL[rtype], field_no, value)))


# --- Z totals --------------------------------------------------------------------------------


@pytest.mark.parametrize(("field_no", "bad"), [
    (8, "8R=300;10=0;0=0;EX=0"),            # wrong order
    (8, "10=0;8R=300;0=0"),                 # a key missing
    (8, "10=0;8R=300;0=0;EX=0;"),           # trailing separator
    (8, "10=0;8R=300;0=0;EX=00"),           # value not money
    (8, "10=0;8R=-0;0=0;EX=0"),
    (8, "10=0;8R=300;0=0;EX"),
    (8, "10:0;8R=300;0=0;EX=0"),
    (9, "CASH=300;CREDIT=0;EMONEY=0;QR=0;GIFT=0;POINT=0"),
    (9, "CREDIT=0;CASH=300;EMONEY=0;QR=0;GIFT=0;POINT=0;OTHER=0"),
    (10, "OUT=540;IN=0"),
    (10, "IN=0;OUT=540;X=0"),
    (10, "IN=0"),
])
def test_totals_need_every_key_in_order(field_no: int, bad: str) -> None:
    err = error_of(with_field(Z, field_no, bad))
    assert err.record_no == 9 and f"field {field_no}" in str(err)


def test_negative_totals_are_money() -> None:
    z = parse_record(with_field(Z, 8, "10=-110;8R=300;0=0;EX=0"))
    assert isinstance(z, Close) and z.class_totals[TaxClass.STANDARD] == -110


# --- malformed records keep what the assembler needs ----------------------------------------


def test_malformed_z_keeps_readable_boundary_fields() -> None:
    bad = read_record(with_field(Z, 7, "01"))
    assert isinstance(bad, Malformed)
    assert (bad.number, bad.record_type, bad.business_date, bad.close_no,
            bad.first_record_no) == (9, "Z", date(2025, 1, 10), 1, 1)
    unreadable = read_record(with_field(Z, 4, "x"))
    assert isinstance(unreadable, Malformed) and unreadable.close_no is None
    trailing = read_record(b(Z.replace("\t1\t2025", "\t2\t2025", 1) + "\t"))
    assert isinstance(trailing, Malformed) and trailing.close_no == 2


def test_error_message_names_record_field_and_rule() -> None:
    err = error_of(with_field(L, 10, "012"))
    assert err.record_no == 3
    assert str(err).startswith("record 3 (L): field 10 (amount) '012' is not money")


# --- splitter --------------------------------------------------------------------------------


def test_split_records_of_a_j_response_and_a_file() -> None:
    data = b(O_) + b"\n" + b(T) + b"\n"
    assert split_records(data, require_final_lf=True) == [b(O_), b(T)]
    assert split_records(data[:-1]) == [b(O_), b(T)]
    assert split_records(b"") == []
    with pytest.raises(RecordFormatError, match="does not end in LF"):
        split_records(data[:-1], require_final_lf=True)
    assert split_records(b(O_) + b"\n\n" + b(T)) == [b(O_), b"", b(T)]
    assert isinstance(read_record(b""), Malformed)


def test_split_never_cuts_a_double_byte_character() -> None:
    # CP932 trail bytes are 0x40–0xFC without 0x7F: never LF or TAB
    name = "".join(chr(c) for c in range(0x3041, 0x3094))
    line = f"3\tL\t1\t1\t01\t-\t{name}\t1\t100\t100\t10"
    data = b(line) + b"\n"
    assert split_records(data) == [b(line)]
    assert parse_record(split_records(data)[0]).name == name  # type: ignore[union-attr]
