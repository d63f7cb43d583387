"""``gatewayd decode FILE``: a journal file to JSON, with every day's checks and totals.

For installers and support: what the register wrote, record by record (typed fields, or why a
record is malformed), and how the gateway splits and judges the days (register-link.md
section 6), exactly as the daemon would. The file holds record lines as ``J`` responses carry
them (CP932, each ending in LF); ``-`` reads standard input.

Exit code: 0 when every day is accepted (or still open) and nothing is held, 1 when a day or a
re-close is held or records wait between days, 2 when the file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from gatewayd.protocol.days import (
    DayResult,
    Failure,
    JournalAnalysis,
    RecloseResult,
    analyze_journal,
)
from gatewayd.protocol.journal_parser import FIELD_NAMES, split_records
from gatewayd.protocol.records import Record

_LETTERS = {"OpenDay": "O", "TransactionStart": "T", "ItemLine": "L", "ReceiptTax": "X",
            "Payment": "P", "TransactionEnd": "E", "Movement": "M", "CashCount": "C",
            "Close": "Z"}


def _business_date(text: str) -> date:
    for fmt in ("%Y-%m-%d", "%Y%m%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD or YYYYMMDD): {text!r}")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="journal file (CP932 record lines), or - for stdin")
    parser.add_argument("--closed", type=_business_date, action="append", default=[],
                        metavar="DATE",
                        help="a business date already closed before this file (repeatable)")
    parser.add_argument("--after", type=int, default=None, metavar="RECORD_NO",
                        help="the record number just before the file's first record (0 at the "
                             "journal's start); without it a file starting inside a day is fine")
    parser.add_argument("--days-only", action="store_true",
                        help="leave out the records, print only days and re-closes")


def _value(v: object) -> Any:
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, dict):
        return {str(_value(k)): _value(x) for k, x in v.items()}
    return v


def record_json(record: Record) -> dict[str, Any]:
    """A typed record as JSON: number, type and its named fields (section 5)."""
    letter = _LETTERS[type(record).__name__]
    out: dict[str, Any] = {"number": record.number, "type": letter}
    for name in FIELD_NAMES[letter]:
        out[name] = _value(getattr(record, name))
    return out


def _failure(f: Failure) -> dict[str, Any]:
    return {"check": f.check, "message": f.message, "records": list(f.records)}


def _reclose(r: RecloseResult) -> dict[str, Any]:
    return {
        "number": r.number, "business_date": _value(r.business_date), "close_no": r.close_no,
        "status": r.status, "target_record_no": r.target_record_no, "reason": r.reason,
        "failures": [_failure(f) for f in r.failures],
    }


def _day(d: DayResult) -> dict[str, Any]:
    totals = d.totals
    return {
        "business_date": _value(d.business_date),
        "status": d.status,
        "reason": d.reason,
        "failures": [_failure(f) for f in d.failures],
        "first_record_no": d.first_record_no,
        "last_record_no": d.last_record_no,
        "close_record_no": d.close_record_no,
        "close_no": d.close_no,
        "unfinished": d.unfinished,
        "receipts": len(d.day.transactions) if d.day is not None else None,
        "totals": {**totals.to_json(), "receipt_count": totals.receipt_count,
                   "by_direction": _value(totals.by_direction),
                   "cash_difference": totals.cash_difference},
        "recloses": [r.number for r in d.recloses],
    }


def analysis_json(analysis: JournalAnalysis, *, records: bool = True) -> dict[str, Any]:
    """The whole analysis as plain JSON data (the output of ``gatewayd decode``)."""
    out: dict[str, Any] = {}
    if records:
        rows: list[dict[str, Any]] = []
        for line_no, entry in enumerate(analysis.entries, start=1):
            if entry.record is not None:
                rows.append({"line": line_no, **record_json(entry.record)})
            else:
                assert entry.malformed is not None
                rows.append({"line": line_no, "number": entry.number,
                             "type": entry.record_type, "error": entry.malformed.message,
                             "raw": entry.raw.decode("cp932", "replace")})
        out["records"] = rows
    out["days"] = [_day(d) for d in analysis.days]
    out["recloses"] = [_reclose(r) for r in analysis.recloses]
    out["breaks"] = [{"previous": b.previous, "number": b.number, "missing": b.missing}
                     for b in analysis.breaks]
    out["strays"] = list(analysis.strays)
    out["pending"] = [_failure(f) for f in analysis.pending]
    out["head"] = None if analysis.head is None else {
        "first_record_no": analysis.head[0], "last_record_no": analysis.head[1],
        "business_date": _value(analysis.head_close.business_date
                                if analysis.head_close is not None else None)}
    out["summary"] = {
        "records": len(analysis.entries),
        "malformed": len(analysis.malformed),
        "days": {status: sum(d.status == status for d in analysis.days)
                 for status in ("accepted", "held", "open")},
    }
    return out


def _all_good(analysis: JournalAnalysis) -> bool:
    return (all(d.status != "held" for d in analysis.days)
            and all(r.status != "held" for r in analysis.recloses)
            and not analysis.pending)


def run(args: argparse.Namespace) -> int:
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"gatewayd: error: cannot read {args.file}: {exc.strerror or exc}",
              file=sys.stderr)
        print("gatewayd: ジャーナルファイルを読み込めません。", file=sys.stderr)
        return 2
    analysis = analyze_journal(split_records(data), after_record_no=args.after,
                               closed_dates=args.closed)
    text = json.dumps(analysis_json(analysis, records=not args.days_only), ensure_ascii=False,
                      indent=1)
    out = getattr(sys.stdout, "buffer", None)
    if out is not None:
        sys.stdout.flush()
        out.write(text.encode("utf-8") + b"\n")
        out.flush()
    else:
        sys.stdout.write(text + "\n")
    return 0 if _all_good(analysis) else 1
