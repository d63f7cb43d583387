"""Small hand-written journals for the parser, day-check and decode tests.

``small_day(first, business_date)`` is one valid day of 21 records (a sale in 内税 with two
classes, a 外税 sale by card, a cash movement out, a TRAINING receipt paid in cash, the C and
the Z). Tests change one field with ``set_field`` and expect exactly the check that rule
belongs to. Lines are str without LF, fields TAB-separated, as ``generate_journal`` returns.
"""

from __future__ import annotations

from datetime import date

SMALL_DAY_RECORDS = 21

# fields after the record number; "{date}" and "{first}" are filled in by small_day
_SMALL_DAY = [
    "O\t{date}\t{date}090000\t1001\t30000",
    "T\t{r1}\tSALE\t-\t{date}100000\t1001\tIN",
    "L\t{r1}\t1\t01\t4900000000001\tおにぎり 鮭\t2\t150\t300\t8R",
    "L\t{r1}\t2\t07\t4900000000025\tボールペン 黒\t1\t110\t110\t10",
    "X\t{r1}\t10\t110\t10\t110",
    "X\t{r1}\t8R\t300\t22\t300",
    "P\t{r1}\tCASH\t-\t1000\t410\t590",
    "E\t{r1}\t410\t32",
    "T\t{r2}\tSALE\t-\t{date}110000\t1002\tOUT",
    "L\t{r2}\t1\t07\t4900000000026\t単三電池 4本\t1\t1000\t1000\t10",
    "X\t{r2}\t10\t1000\t100\t1100",
    "P\t{r2}\tCREDIT\tVISA\t1100\t1100\t0",
    "E\t{r2}\t1100\t100",
    "M\t{m1}\tOUT\t22\t小口支払 文具\t540\t{date}120000\t1001",
    "T\t{r3}\tTRAINING\t-\t{date}130000\t2001\tIN",
    "L\t{r3}\t1\t06\t4900000000022\t日本酒 300ml\t1\t500\t500\t10",
    "X\t{r3}\t10\t500\t45\t500",
    "P\t{r3}\tCASH\t-\t500\t500\t0",
    "E\t{r3}\t500\t45",
    "C\t29870\t29870\t0",
    "Z\t{date}\t1\t{date}213000\t2\t1510\t10=1210;8R=300;0=0;EX=0"
    "\tCASH=410;CREDIT=1100;EMONEY=0;QR=0;GIFT=0;POINT=0;OTHER=0\tIN=0;OUT=540\t0\t{first}",
]

SMALL_DAY_CLOSE = ("2\t1510\t10=1210;8R=300;0=0;EX=0"
                   "\tCASH=410;CREDIT=1100;EMONEY=0;QR=0;GIFT=0;POINT=0;OTHER=0\tIN=0;OUT=540\t0")


def small_day(first: int = 1, business_date: date = date(2025, 1, 10), receipt: int = 1,
              movement: int = 1) -> list[str]:
    """One valid day numbered from ``first``; receipts ``receipt``.. and one movement."""
    d = business_date.strftime("%Y%m%d")
    values = {"date": d, "first": str(first), "r1": str(receipt), "r2": str(receipt + 1),
              "r3": str(receipt + 2), "m1": str(movement)}
    return [f"{first + i}\t{template.format(**values)}" for i, template in enumerate(_SMALL_DAY)]


def two_days() -> list[str]:
    """Two valid consecutive days, records 1–42."""
    return small_day(1) + small_day(22, date(2025, 1, 11), receipt=4, movement=2)


def reclose_line(number: int, business_date: date = date(2025, 1, 10), close_no: int = 2,
                 first: int = 1, figures: str = SMALL_DAY_CLOSE) -> str:
    d = business_date.strftime("%Y%m%d")
    return f"{number}\tZ\t{d}\t{close_no}\t{d}220000\t{figures}\t{first}"


def fields(line: str) -> list[str]:
    return line.split("\t")


def set_field(lines: list[str], number: int, field_no: int, value: str) -> list[str]:
    """A copy of ``lines`` where record ``number`` has field ``field_no`` (1-based) = value."""
    out = list(lines)
    for i, line in enumerate(out):
        f = line.split("\t")
        if f[0] == str(number):
            f[field_no - 1] = value
            out[i] = "\t".join(f)
            return out
    raise KeyError(number)


def renumber(lines: list[str], first: int = 1) -> list[str]:
    """Give the lines contiguous numbers from ``first`` (Z first_record_no follows its O)."""
    out: list[str] = []
    open_no = first
    for i, line in enumerate(lines):
        f = line.split("\t")
        f[0] = str(first + i)
        if f[1] == "O":
            open_no = first + i
        if f[1] == "Z" and f[3] == "1":
            f[11] = str(open_no)
        out.append("\t".join(f))
    return out


def find(lines: list[str], record_type: str, nth: int = 0) -> int:
    """The record number of the ``nth`` record of this type."""
    matches = [int(line.split("\t")[0]) for line in lines if line.split("\t")[1] == record_type]
    return matches[nth]


def as_bytes(lines: list[str]) -> bytes:
    return b"".join(line.encode("cp932") + b"\n" for line in lines)


def recompute_close(lines: list[str]) -> list[str]:
    """Rewrite the C and Z of one day (its lines, O first) so they agree with its records.

    Written independently of gatewayd.protocol.days: sums by plain field arithmetic,
    TRAINING receipts excluded, so a test can break one receipt rule and expect only that.
    """
    kinds: dict[str, str] = {}
    count = gross = cash = m_in = m_out = 0
    by_class = {"10": 0, "8R": 0, "0": 0, "EX": 0}
    by_method = {k: 0 for k in ("CASH", "CREDIT", "EMONEY", "QR", "GIFT", "POINT", "OTHER")}
    opening = 0
    for line in lines:
        f = line.split("\t")
        kind = f[1]
        if kind == "O":
            opening = int(f[5])
        elif kind == "T":
            kinds[f[2]] = f[3]
            count += f[3] != "TRAINING"
        elif kind in "XPE" and kinds.get(f[2]) == "TRAINING":
            continue
        elif kind == "X":
            by_class[f[3]] += int(f[6])
        elif kind == "P":
            by_method[f[3]] += int(f[6])
            cash += int(f[6]) if f[3] == "CASH" else 0
        elif kind == "E":
            gross += int(f[3])
        elif kind == "M":
            if f[3] == "IN":
                m_in += int(f[6])
            else:
                m_out += int(f[6])
    expected = opening + cash + m_in - m_out
    out = []
    for line in lines:
        f = line.split("\t")
        if f[1] == "C":
            f[2], f[3], f[4] = str(expected), str(expected), "0"
        elif f[1] == "Z" and f[3] == "1":
            f[5], f[6] = str(count), str(gross)
            f[7] = ";".join(f"{k}={v}" for k, v in by_class.items())
            f[8] = ";".join(f"{k}={v}" for k, v in by_method.items())
            f[9] = f"IN={m_in};OUT={m_out}"
            f[10] = "0"
        out.append("\t".join(f))
    return out


def replace_records(lines: list[str], number: int, new: list[str], count: int = 1) -> list[str]:
    """Replace ``count`` records from record ``number`` by ``new`` (record-less lines: type
    first), then renumber everything from the first line's number."""
    first = int(lines[0].split("\t")[0])
    index = next(i for i, ln in enumerate(lines) if ln.split("\t")[0] == str(number))
    body = [f"0\t{x}" for x in new]
    return renumber(lines[:index] + body + lines[index + count:], first)
