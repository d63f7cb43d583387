"""Journal record lines of REGLINK/1 (register-link.md section 5) to typed records, and back.

Pure: bytes in, records out. Every form rule of section 5 is enforced here, so that the day
checks (``days``) only ever see well-formed records; a line that breaks a rule raises
``RecordFormatError`` whose message names the record number (when field 1 is readable), the
field and the rule. ``read_record`` never raises: it returns a ``Malformed`` that keeps what
could still be read (type, and for ``O``/``Z`` the fields that decide day boundaries), because
section 6 lets a Z with an unreadable close_no still end a day.

Text fields (codes and names) hold ``""`` where the line has ``-`` (section 5: ``-`` stands
for an empty field); ``format_record`` writes ``-`` back.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from gatewayd.errors import RecordFormatError
from gatewayd.protocol.records import (
    DIRECTION_ORDER,
    METHOD_ORDER,
    TAX_CLASS_ORDER,
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
    Record,
    TaxClass,
    TaxMode,
    TransactionEnd,
    TransactionStart,
)

MAX_RECORD_BYTES = 4096
"""A record line with its LF is at most this many bytes."""

RECORD_TYPES = "OTLXPEMCZ"

_RECORD_NO = re.compile(r"[1-9][0-9]{0,14}")
_SERIAL = re.compile(r"[1-9][0-9]{0,9}")
_COUNT = re.compile(r"0|[1-9][0-9]*")
_MONEY = re.compile(r"0|-?[1-9][0-9]*")
_QTY = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_DATE = re.compile(r"[0-9]{8}")
_TIMESTAMP = re.compile(r"[0-9]{14}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "O": ("business_date", "timestamp", "staff_code", "opening_cash"),
    "T": ("receipt_no", "kind", "ref_receipt_no", "timestamp", "staff_code", "tax_mode"),
    "L": ("receipt_no", "line_no", "dept_code", "item_code", "name", "qty", "unit_price",
          "amount", "tax_class"),
    "X": ("receipt_no", "tax_class", "base", "tax", "gross"),
    "P": ("receipt_no", "method", "brand", "tendered", "amount", "change"),
    "E": ("receipt_no", "total", "tax_total"),
    "M": ("movement_no", "direction", "reason_code", "reason_name", "amount", "timestamp",
          "staff_code"),
    "C": ("expected_cash", "counted_cash", "difference"),
    "Z": ("business_date", "close_no", "timestamp", "receipt_count", "gross_total",
          "class_totals", "method_totals", "movement_totals", "cash_difference",
          "first_record_no"),
}
"""Field names after the number and the type, per record type (section 5's table)."""


@dataclass(frozen=True, slots=True)
class Malformed:
    """A line that breaks a form rule, with what could still be read.

    ``number`` is field 1 when readable; ``record_type`` is field 2 when it is one of the nine
    types. For ``O`` and ``Z`` the day-boundary fields are kept when their own field is
    well-formed and the field count is right, so the assembler can still find day ends.
    """

    number: int | None
    record_type: str | None
    message: str
    business_date: date | None = None
    close_no: int | None = None
    first_record_no: int | None = None

    def error(self) -> RecordFormatError:
        return RecordFormatError(self.message, record_no=self.number)


class _Bad(Exception):
    """Internal: one field broke its form (turned into RecordFormatError with context)."""

    def __init__(self, field_index: int, text: str) -> None:
        self.field_index = field_index
        self.text = text
        super().__init__(text)


def _show(value: str) -> str:
    """A value as it appears in a message: quoted, escapes visible, long values cut."""
    if len(value) > 40:
        value = value[:40] + "…"
    return repr(value)


# --- field forms -----------------------------------------------------------------------
# Each takes the raw text and the 1-based field index (for the message) and returns the value.


def _record_no(v: str, i: int) -> int:
    if _RECORD_NO.fullmatch(v) is None:
        raise _Bad(i, f"{_show(v)} is not a record number (1 to 15 digits, no leading zero)")
    return int(v)


def _serial(v: str, i: int) -> int:
    if _SERIAL.fullmatch(v) is None:
        raise _Bad(i, f"{_show(v)} is not a number of 1 to 10 digits without leading zero")
    return int(v)


def _count(v: str, i: int) -> int:
    if _COUNT.fullmatch(v) is None:
        raise _Bad(i, f"{_show(v)} is not a count (0, or digits without leading zero)")
    return int(v)


def _money(v: str, i: int) -> int:
    if _MONEY.fullmatch(v) is None:
        raise _Bad(i, f"{_show(v)} is not money (0, or digits without leading zero, "
                      "- when negative, never -0)")
    return int(v)


def _qty(v: str, i: int) -> Decimal:
    if _QTY.fullmatch(v) is None:
        raise _Bad(i, f"{_show(v)} is not a quantity (integer or decimal, no leading zero)")
    q = Decimal(v)
    if v[0] == "-" and q == 0:
        raise _Bad(i, f"{_show(v)} is a negative zero")
    return q


def _date(v: str, i: int) -> date:
    if _DATE.fullmatch(v) is not None:
        try:
            return date(int(v[0:4]), int(v[4:6]), int(v[6:8]))
        except ValueError:
            raise _Bad(i, f"{_show(v)} is not a real date (YYYYMMDD)") from None
    raise _Bad(i, f"{_show(v)} is not a date (YYYYMMDD)")


def _timestamp(v: str, i: int) -> datetime:
    if _TIMESTAMP.fullmatch(v) is not None:
        try:
            return datetime(int(v[0:4]), int(v[4:6]), int(v[6:8]),
                            int(v[8:10]), int(v[10:12]), int(v[12:14]))
        except ValueError:
            raise _Bad(i, f"{_show(v)} is not a real timestamp (YYYYMMDDhhmmss)") from None
    raise _Bad(i, f"{_show(v)} is not a timestamp (YYYYMMDDhhmmss)")


def _text(v: str, i: int) -> str:
    if v == "-":
        return ""
    if _CONTROL.search(v) is not None:
        raise _Bad(i, f"{_show(v)} contains a control character")
    return v


def _ref(v: str, i: int) -> int | None:
    if v == "-":
        return None
    if _SERIAL.fullmatch(v) is None:
        raise _Bad(i, f"{_show(v)} is not - or a receipt number (1 to 10 digits, "
                      "no leading zero)")
    return int(v)


def _enum_parser(values: tuple[str, ...]) -> Callable[[str, int], str]:
    allowed = frozenset(values)
    listing = ", ".join(values)

    def parse(v: str, i: int) -> str:
        if v not in allowed:
            raise _Bad(i, f"{_show(v)} is not one of {listing}")
        return v

    return parse


_kind = _enum_parser(tuple(Kind))
_tax_mode = _enum_parser(tuple(TaxMode))
_tax_class = _enum_parser(tuple(TAX_CLASS_ORDER))
_method = _enum_parser(tuple(METHOD_ORDER))
_direction = _enum_parser(tuple(DIRECTION_ORDER))


def _totals_parser(keys: tuple[str, ...]) -> Callable[[str, int], dict[str, int]]:
    shape = ";".join(f"{k}=…" for k in keys)

    def parse(v: str, i: int) -> dict[str, int]:
        parts = v.split(";")
        if len(parts) != len(keys):
            raise _Bad(i, f"{_show(v)} is not {shape} (every key, in this order)")
        out: dict[str, int] = {}
        for key, part in zip(keys, parts, strict=True):
            k, sep, amount = part.partition("=")
            if not sep or k != key:
                raise _Bad(i, f"{_show(v)} is not {shape} (every key, in this order)")
            if _MONEY.fullmatch(amount) is None:
                raise _Bad(i, f"{_show(v)}: {key} value {_show(amount)} is not money "
                              "(0, or digits without leading zero, - when negative, never -0)")
            out[key] = int(amount)
        return out

    return parse


_class_totals = _totals_parser(tuple(TAX_CLASS_ORDER))
_method_totals = _totals_parser(tuple(METHOD_ORDER))
_movement_totals = _totals_parser(tuple(DIRECTION_ORDER))


# --- records -----------------------------------------------------------------------------
# f holds all fields (f[0] number, f[1] type); field index i is 1-based, so f[i - 1].


def _o(n: int, f: list[str]) -> OpenDay:
    return OpenDay(n, _date(f[2], 3), _timestamp(f[3], 4), _text(f[4], 5), _money(f[5], 6))


def _t(n: int, f: list[str]) -> TransactionStart:
    return TransactionStart(n, _serial(f[2], 3), Kind(_kind(f[3], 4)), _ref(f[4], 5),
                            _timestamp(f[5], 6), _text(f[6], 7), TaxMode(_tax_mode(f[7], 8)))


def _l(n: int, f: list[str]) -> ItemLine:
    return ItemLine(n, _serial(f[2], 3), _serial(f[3], 4), _text(f[4], 5), _text(f[5], 6),
                    _text(f[6], 7), _qty(f[7], 8), _money(f[8], 9), _money(f[9], 10),
                    TaxClass(_tax_class(f[10], 11)))


def _x(n: int, f: list[str]) -> ReceiptTax:
    return ReceiptTax(n, _serial(f[2], 3), TaxClass(_tax_class(f[3], 4)), _money(f[4], 5),
                      _money(f[5], 6), _money(f[6], 7))


def _p(n: int, f: list[str]) -> Payment:
    return Payment(n, _serial(f[2], 3), Method(_method(f[3], 4)), _text(f[4], 5),
                   _money(f[5], 6), _money(f[6], 7), _money(f[7], 8))


def _e(n: int, f: list[str]) -> TransactionEnd:
    return TransactionEnd(n, _serial(f[2], 3), _money(f[3], 4), _money(f[4], 5))


def _m(n: int, f: list[str]) -> Movement:
    return Movement(n, _serial(f[2], 3), Direction(_direction(f[3], 4)), _text(f[4], 5),
                    _text(f[5], 6), _money(f[6], 7), _timestamp(f[7], 8), _text(f[8], 9))


def _c(n: int, f: list[str]) -> CashCount:
    return CashCount(n, _money(f[2], 3), _money(f[3], 4), _money(f[4], 5))


def _z(n: int, f: list[str]) -> Close:
    return Close(
        n, _date(f[2], 3), _serial(f[3], 4), _timestamp(f[4], 5), _count(f[5], 6),
        _money(f[6], 7),
        {TaxClass(k): v for k, v in _class_totals(f[7], 8).items()},
        {Method(k): v for k, v in _method_totals(f[8], 9).items()},
        {Direction(k): v for k, v in _movement_totals(f[9], 10).items()},
        _money(f[10], 11), _record_no(f[11], 12),
    )


_BUILDERS: dict[str, Callable[[int, list[str]], Record]] = {
    "O": _o, "T": _t, "L": _l, "X": _x, "P": _p, "E": _e, "M": _m, "C": _c, "Z": _z,
}
_FIELD_COUNT = {t: len(names) + 2 for t, names in FIELD_NAMES.items()}


def _field_label(rtype: str | None, i: int) -> str:
    if i == 1:
        return "field 1 (record number)"
    if i == 2:
        return "field 2 (type)"
    names = FIELD_NAMES.get(rtype or "")
    if names is not None and i - 3 < len(names):
        return f"field {i} ({names[i - 3]})"
    return f"field {i}"


def _fail(number: int | None, rtype: str | None, text: str) -> Malformed:
    where = f"record {number}" if number is not None else "record ?"
    if rtype is not None:
        where += f" ({rtype})"
    return Malformed(number, rtype, f"{where}: {text}")


def _partial(number: int | None, rtype: str, fields: list[str], message: str) -> Malformed:
    """Keep the day-boundary fields of a malformed O or Z that are well-formed themselves."""
    bdate: date | None = None
    close_no: int | None = None
    first: int | None = None
    if len(fields) == _FIELD_COUNT[rtype] + 1 and fields[-1] == "":
        fields = fields[:-1]  # a trailing TAB does not make the other fields unreadable
    if len(fields) == _FIELD_COUNT[rtype]:
        with contextlib.suppress(_Bad):
            bdate = _date(fields[2], 3)
        if rtype == "Z":
            with contextlib.suppress(_Bad):
                close_no = _serial(fields[3], 4)
            with contextlib.suppress(_Bad):
                first = _record_no(fields[11], 12)
    return Malformed(number, rtype, message, bdate, close_no, first)


def read_record(line: bytes) -> Record | Malformed:
    """Parse one record line (CP932, with or without its LF); never raises."""
    body = line[:-1] if line.endswith(b"\n") else line
    try:
        text = body.decode("ascii") if body.isascii() else body.decode("cp932")
    except UnicodeDecodeError as exc:
        text = body[: exc.start].decode("cp932", "replace")
        fields = text.split("\t")
        number = int(fields[0]) if len(fields) > 1 and _RECORD_NO.fullmatch(fields[0]) else None
        rtype = fields[1] if len(fields) > 2 and fields[1] in _BUILDERS else None
        return _fail(number, rtype, f"byte {exc.start + 1} is not CP932 text "
                                    f"({body[exc.start:exc.end].hex(' ')})")
    fields = text.split("\t")
    first = fields[0]
    number = int(first) if _RECORD_NO.fullmatch(first) is not None else None
    rtype = fields[1] if len(fields) > 1 and fields[1] in _BUILDERS else None
    if len(body) + 1 > MAX_RECORD_BYTES:
        return _fail(number, rtype, f"{len(body) + 1} bytes with its LF, more than "
                                    f"{MAX_RECORD_BYTES}")
    if number is None:
        return _fail(None, rtype, f"field 1 (record number) {_show(first)} is not a record "
                                  "number (1 to 15 digits, no leading zero)")
    if len(fields) == 1:
        return _fail(number, None, "field 2 (type) is missing")
    if fields[-1] == "":
        message = _fail(number, rtype, "ends with a TAB").message
        return _partial(number, rtype, fields, message) if rtype else Malformed(
            number, None, message)
    if rtype is None:
        return _fail(number, None, f"field 2 (type) {_show(fields[1])} is not one of "
                                   + ", ".join(RECORD_TYPES))
    for i, value in enumerate(fields, start=1):
        if value == "":
            return _partial(number, rtype, fields, _fail(
                number, rtype, f"{_field_label(rtype, i)} is empty (use - for empty)").message)
    expected = _FIELD_COUNT[rtype]
    if len(fields) != expected:
        return _fail(number, rtype, f"has {len(fields)} fields, a {rtype} record has {expected}")
    try:
        return _BUILDERS[rtype](number, fields)
    except _Bad as bad:
        bad_field = _fail(number, rtype, f"{_field_label(rtype, bad.field_index)} {bad.text}")
        if rtype in "OZ":
            return _partial(number, rtype, fields, bad_field.message)
        return bad_field


def parse_record(line: bytes) -> Record:
    """Parse one record line (CP932, with or without its LF); RecordFormatError if malformed."""
    result = read_record(line)
    if isinstance(result, Malformed):
        raise result.error()
    return result


def split_records(data: bytes, *, require_final_lf: bool = False) -> list[bytes]:
    """Split a J response or a journal file into record lines (without their LF).

    A J response carries whole records, each ending in LF: with ``require_final_lf`` a last
    line without LF raises RecordFormatError. A file may lack the final LF. Empty lines are
    kept (they are malformed records, reported as such).
    """
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    elif require_final_lf:
        raise RecordFormatError(
            f"J response does not end in LF (last {min(len(lines[-1]), 40)} bytes: "
            f"{lines[-1][-40:]!r})")
    return lines


# --- formatting (the inverse, for the simulator, fixtures and tests) -------------------------


def _fmt_text(v: str) -> str:
    return v if v else "-"


def _fmt_date(d: date) -> str:
    return d.strftime("%Y%m%d")


def _fmt_ts(t: datetime) -> str:
    return t.strftime("%Y%m%d%H%M%S")


def _fmt_qty(q: Decimal) -> str:
    text = format(q, "f")
    return "0" if q == 0 and text.startswith("-") else text


def _fmt_totals(values: dict[TaxClass, int] | dict[Method, int] | dict[Direction, int],
                keys: tuple[str, ...]) -> str:
    by_key = {str(k): v for k, v in values.items()}
    return ";".join(f"{k}={by_key.get(k, 0)}" for k in keys)


def record_fields(record: Record) -> list[str]:
    """The fields of a record as section 5 writes them (number and type first)."""
    r = record
    if isinstance(r, OpenDay):
        return [str(r.number), "O", _fmt_date(r.business_date), _fmt_ts(r.timestamp),
                _fmt_text(r.staff_code), str(r.opening_cash)]
    if isinstance(r, TransactionStart):
        ref = "-" if r.ref_receipt_no is None else str(r.ref_receipt_no)
        return [str(r.number), "T", str(r.receipt_no), r.kind.value, ref, _fmt_ts(r.timestamp),
                _fmt_text(r.staff_code), r.tax_mode.value]
    if isinstance(r, ItemLine):
        return [str(r.number), "L", str(r.receipt_no), str(r.line_no), _fmt_text(r.dept_code),
                _fmt_text(r.item_code), _fmt_text(r.name), _fmt_qty(r.qty), str(r.unit_price),
                str(r.amount), r.tax_class.value]
    if isinstance(r, ReceiptTax):
        return [str(r.number), "X", str(r.receipt_no), r.tax_class.value, str(r.base),
                str(r.tax), str(r.gross)]
    if isinstance(r, Payment):
        return [str(r.number), "P", str(r.receipt_no), r.method.value, _fmt_text(r.brand),
                str(r.tendered), str(r.amount), str(r.change)]
    if isinstance(r, TransactionEnd):
        return [str(r.number), "E", str(r.receipt_no), str(r.total), str(r.tax_total)]
    if isinstance(r, Movement):
        return [str(r.number), "M", str(r.movement_no), r.direction.value,
                _fmt_text(r.reason_code), _fmt_text(r.reason_name), str(r.amount),
                _fmt_ts(r.timestamp), _fmt_text(r.staff_code)]
    if isinstance(r, CashCount):
        return [str(r.number), "C", str(r.expected_cash), str(r.counted_cash),
                str(r.difference)]
    return [str(r.number), "Z", _fmt_date(r.business_date), str(r.close_no),
            _fmt_ts(r.timestamp), str(r.receipt_count), str(r.gross_total),
            _fmt_totals(r.class_totals, tuple(TAX_CLASS_ORDER)),
            _fmt_totals(r.method_totals, tuple(METHOD_ORDER)),
            _fmt_totals(r.movement_totals, tuple(DIRECTION_ORDER)),
            str(r.cash_difference), str(r.first_record_no)]


def format_record(record: Record) -> str:
    """One record as its line text (TAB-separated, no LF)."""
    return "\t".join(record_fields(record))


def encode_record(record: Record) -> bytes:
    """One record as the bytes a J response carries: CP932, ending in LF."""
    return format_record(record).encode("cp932") + b"\n"
