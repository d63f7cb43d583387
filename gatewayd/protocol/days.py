"""Business days of one terminal's journal and the acceptance checks (register-link.md 5, 6).

Pure: journal lines in, a ``JournalAnalysis`` out. The analysis splits the records into
business days (O … Z with close_no 1), re-close events (Z with close_no ≥ 2), stray records
between days and gaps, and decides for every day: ``accepted``, ``held`` (with the reason of
section 6: failures that start with ``format``, ``check 1``, ``check 2`` or ``check 3``, name
their records, are joined by ``; `` in check order then record order) or ``open`` (the trailing
day, no Z yet). The messages, one per rule, are listed in docs/day-checks.md.

Incremental use: the daemon keeps a ``JournalAssembler`` per terminal (records are parsed once
as they arrive) or calls ``analyze_journal`` over the records since the last accepted day's Z,
passing ``after_record_no`` (that Z's number), ``closed_dates`` (every business date an earlier
Z closed) and ``known_closes`` (those Zs, to compare re-closes with).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from gatewayd.protocol.journal_parser import Malformed, read_record
from gatewayd.protocol.records import (
    DIRECTION_ORDER,
    METHOD_ORDER,
    TAX_CLASS_ORDER,
    BusinessDay,
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
    Transaction,
    TransactionEnd,
    TransactionStart,
)

FORMAT = "format"
CHECK_1 = "check 1"
CHECK_2 = "check 2"
CHECK_3 = "check 3"
CHECKS = (FORMAT, CHECK_1, CHECK_2, CHECK_3)
_RANK = {name: rank for rank, name in enumerate(CHECKS)}

DayStatus = Literal["accepted", "held", "open"]
RecloseStatus = Literal["same", "held", "unmatched"]

_LETTER: dict[type, str] = {
    OpenDay: "O", TransactionStart: "T", ItemLine: "L", ReceiptTax: "X", Payment: "P",
    TransactionEnd: "E", Movement: "M", CashCount: "C", Close: "Z",
}
_PHASE = {"L": 0, "X": 1, "P": 2, "E": 3}
_CLASS_RANK = {cls: rank for rank, cls in enumerate(TAX_CLASS_ORDER)}


# --- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """One broken rule: ``message`` starts with the check's name and names ``records``."""

    check: str
    message: str
    records: tuple[int, ...]

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class OutOfPlace:
    """A record the journal store kept aside (register-link.md section 4): its number was
    already used or lies below a stored one. It came after record ``after`` and stands there
    for the sequence check only: a check 1 failure of the day it stands in, no part of it."""

    number: int
    raw: bytes
    after: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One input line: its number (from the store, else field 1), the raw bytes, and the
    record or why it is malformed. ``after`` is set for a record kept aside (``OutOfPlace``)."""

    number: int | None
    raw: bytes
    record: Record | None
    malformed: Malformed | None
    after: int | None = None

    @property
    def aside(self) -> bool:
        return self.after is not None

    @property
    def record_type(self) -> str | None:
        if self.record is not None:
            return _LETTER[type(self.record)]
        return self.malformed.record_type if self.malformed is not None else None


@dataclass(frozen=True, slots=True)
class DayTotals:
    """Sums of a day's records, TRAINING excluded (gross = ΣE.total, tax = ΣE.tax_total,
    by_class = ΣX.gross, by_method = ΣP.amount, by_direction = ΣM.amount, ΣC.difference)."""

    receipt_count: int
    gross: int
    tax: int
    by_class: dict[TaxClass, int]
    by_method: dict[Method, int]
    by_direction: dict[Direction, int]
    cash_difference: int

    def to_json(self) -> dict[str, object]:
        """The ``totals`` object of the plan (freee-mapping.md section 8)."""
        return {
            "gross": self.gross,
            "tax": self.tax,
            "by_class": {c.value: self.by_class[c] for c in TAX_CLASS_ORDER},
            "by_method": {m.value: self.by_method[m] for m in METHOD_ORDER},
        }


@dataclass(frozen=True, slots=True)
class RecloseResult:
    """A re-close Z (close_no ≥ 2) and whether it repeats its day's figures.

    ``status``: ``same`` (figures repeated: make freee agree with the day again), ``held``
    (malformed, or figures differ: a check 3 failure of that day) or ``unmatched`` (the day's
    close is neither in these records nor in ``known_closes``). ``target_record_no`` is the
    number of the day's close (None when unmatched).
    """

    number: int
    business_date: date | None
    close_no: int | None
    close: Close | None
    target_record_no: int | None
    status: RecloseStatus
    failures: tuple[Failure, ...]

    @property
    def same_figures(self) -> bool | None:
        return None if self.status == "unmatched" or self.close is None else (
            self.status == "same")

    @property
    def reason(self) -> str | None:
        return "; ".join(f.message for f in self.failures) or None


@dataclass(frozen=True, slots=True)
class DayResult:
    """One business day: from its O to its Z (close_no 1), or unfinished.

    ``status`` is ``accepted``, ``held`` or ``open`` (the trailing day without Z: its
    ``failures`` are those already certain, the verdict comes with its Z). ``unfinished`` marks
    a day held because an O came before its Z. ``day`` is built whenever every record of the
    day is well-formed and it has its Z (also when held). ``recloses`` are the re-close Zs of
    this day found in the same records.
    """

    business_date: date | None
    status: DayStatus
    failures: tuple[Failure, ...]
    first_record_no: int
    last_record_no: int
    open_record_no: int
    close_record_no: int | None
    unfinished: bool
    day: BusinessDay | None
    totals: DayTotals
    recloses: tuple[RecloseResult, ...]

    @property
    def reason(self) -> str | None:
        if self.status != "held":
            return None
        return "; ".join(f.message for f in self.failures)

    @property
    def close_no(self) -> int | None:
        """The highest close number seen for this day (None without a readable Z)."""
        numbers = [r.close_no for r in self.recloses if r.close_no is not None]
        if self.day is not None:
            numbers.append(self.day.close.close_no)
        elif self.close_record_no is not None:
            numbers.append(1)
        return max(numbers) if numbers else None


@dataclass(frozen=True, slots=True)
class SequenceBreak:
    """Record ``number`` follows ``previous`` instead of ``previous + 1``."""

    previous: int
    number: int

    @property
    def missing(self) -> int:
        return max(0, self.number - self.previous - 1)


@dataclass(frozen=True, slots=True)
class JournalAnalysis:
    """Everything the assembler found in one terminal's records, in record order.

    ``days`` holds closed days, unfinished (held) days and, last, the open day if any.
    ``strays`` are records between a close and the next open (other than re-closes);
    ``pending`` are the check 1 failures that will hold the next day once it opens.
    ``head`` is the record range of a leading fragment (records of a day whose O precedes the
    input, only when the input's context is unknown); ``head_close`` its Z. ``closes`` is every
    well-formed Z in record order.
    """

    entries: tuple[Entry, ...]
    days: tuple[DayResult, ...]
    recloses: tuple[RecloseResult, ...]
    breaks: tuple[SequenceBreak, ...]
    strays: tuple[int, ...]
    pending: tuple[Failure, ...]
    head: tuple[int, int] | None
    head_close: Close | None
    closes: tuple[Close, ...]

    @property
    def open_day(self) -> DayResult | None:
        if self.days and self.days[-1].status == "open":
            return self.days[-1]
        return None

    @property
    def malformed(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.malformed is not None)

    def day_closing(self, business_date: date) -> DayResult | None:
        """The first day whose close (close_no 1) names this date."""
        for day in self.days:
            if day.close_record_no is not None and day.business_date == business_date:
                return day
        return None

    def close_dates_in_order(self) -> list[date]:
        """Business dates in the order of each date's first close (any close_no)."""
        seen: dict[date, None] = {}
        for close in self.closes:
            seen.setdefault(close.business_date, None)
        return list(seen)


# --- totals --------------------------------------------------------------------------------


class _Sums:
    """Running sums of records as they stand (check 3, totals); TRAINING excluded."""

    __slots__ = ("by_class", "by_direction", "by_method", "cash_difference", "current_kind",
                 "current_no", "gross", "kinds", "receipt_count", "tax")

    def __init__(self) -> None:
        self.receipt_count = 0
        self.gross = 0
        self.tax = 0
        self.by_class = dict.fromkeys(TAX_CLASS_ORDER, 0)
        self.by_method = dict.fromkeys(METHOD_ORDER, 0)
        self.by_direction = dict.fromkeys(DIRECTION_ORDER, 0)
        self.cash_difference = 0
        self.kinds: dict[int, Kind] = {}
        self.current_no: int | None = None
        self.current_kind: Kind | None = None

    def _training(self, receipt_no: int) -> bool:
        """A part belongs to the latest T of its receipt_no (else to the first such T)."""
        if receipt_no == self.current_no:
            return self.current_kind is Kind.TRAINING
        return self.kinds.get(receipt_no) is Kind.TRAINING

    def add(self, r: Record) -> None:
        t = type(r)
        if t is TransactionStart:
            assert isinstance(r, TransactionStart)
            self.kinds.setdefault(r.receipt_no, r.kind)
            self.current_no, self.current_kind = r.receipt_no, r.kind
            if r.kind is not Kind.TRAINING:
                self.receipt_count += 1
        elif t is ReceiptTax:
            assert isinstance(r, ReceiptTax)
            if not self._training(r.receipt_no):
                self.by_class[r.tax_class] += r.gross
        elif t is Payment:
            assert isinstance(r, Payment)
            if not self._training(r.receipt_no):
                self.by_method[r.method] += r.amount
        elif t is TransactionEnd:
            assert isinstance(r, TransactionEnd)
            if not self._training(r.receipt_no):
                self.gross += r.total
                self.tax += r.tax_total
        elif t is Movement:
            assert isinstance(r, Movement)
            self.by_direction[r.direction] += r.amount
        elif t is CashCount:
            assert isinstance(r, CashCount)
            self.cash_difference += r.difference

    def totals(self) -> DayTotals:
        return DayTotals(self.receipt_count, self.gross, self.tax, dict(self.by_class),
                         dict(self.by_method), dict(self.by_direction), self.cash_difference)


def totals_of(records: Iterable[Record]) -> DayTotals:
    """Sums of records as they stand (a day's, in record order), TRAINING excluded.

    A receipt's kind comes from its T; records of a receipt whose T is not among them count.
    O and Z records are ignored.
    """
    sums = _Sums()
    for r in records:
        sums.add(r)
    return sums.totals()


def day_totals(day: BusinessDay) -> DayTotals:
    """Sums of an assembled day (equal to ``totals_of`` its records when it was accepted)."""
    sums = _Sums()
    for tx in day.transactions:
        if not tx.counted:
            continue
        sums.receipt_count += 1
        for x in tx.taxes:
            sums.by_class[x.tax_class] += x.gross
        for p in tx.payments:
            sums.by_method[p.method] += p.amount
        if tx.end is not None:
            sums.gross += tx.end.total
            sums.tax += tx.end.tax_total
    for m in day.movements:
        sums.by_direction[m.direction] += m.amount
    if day.cash_count is not None:
        sums.cash_difference = day.cash_count.difference
    return sums.totals()


# --- naming --------------------------------------------------------------------------------


def _names(numbers: Iterable[int]) -> str:
    """``record 5`` / ``records 4411, 4418`` / ``records 301–350, 400`` (sorted, runs joined)."""
    nums = sorted(set(numbers))
    if len(nums) == 1:
        return f"record {nums[0]}"
    parts: list[str] = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{nums[i]}–{nums[j]}")
        else:
            parts.extend(str(n) for n in nums[i:j + 1])
        i = j + 1
    if len(parts) > 12:
        parts = [*parts[:10], f"… ({len(nums)} records)"]
    return "records " + ", ".join(parts)


def _stand(numbers: list[int]) -> str:
    return "stands" if len(numbers) == 1 else "stand"


def _fail(check: str, text: str, records: Iterable[int]) -> Failure:
    nums = tuple(sorted(set(records)))
    suffix = f" ({_names(nums)})" if nums else ""
    return Failure(check, f"{check}: {text}{suffix}", nums)


def _format_failure(malformed: Malformed, number: int) -> Failure:
    """The parser's message already names the record."""
    return Failure(FORMAT, f"{FORMAT}: {malformed.message}", (number,))


def _ordered(failures: Iterable[Failure]) -> tuple[Failure, ...]:
    """Check order, then record order (the first record each names), stable otherwise."""
    return tuple(sorted(failures, key=lambda f: (_RANK[f.check],
                                                 f.records[0] if f.records else 0)))


def _iso(d: date | None) -> str:
    return d.isoformat() if d is not None else "?"


# --- segmentation --------------------------------------------------------------------------


@dataclass(slots=True)
class _DayBuild:
    open_index: int
    items: list[int] = field(default_factory=list)  # entry indexes from O to Z, inclusive
    close_index: int | None = None
    unfinished: bool = False
    next_open_no: int | None = None
    check1: list[Failure] = field(default_factory=list)
    extra_format: list[Failure] = field(default_factory=list)
    recloses: list[int] = field(default_factory=list)  # indexes into the recloses list
    reclose_failures: list[Failure] = field(default_factory=list)


@dataclass(slots=True)
class _RecloseBuild:
    index: int
    number: int
    business_date: date | None
    close_no: int | None
    close: Close | None
    external: Close | None = None
    day: _DayBuild | None = None


def _close_no_of(entry: Entry) -> int | None:
    if entry.record is not None:
        assert isinstance(entry.record, Close)
        return entry.record.close_no
    assert entry.malformed is not None
    return entry.malformed.close_no


def _date_of(entry: Entry) -> date | None:
    r = entry.record
    if isinstance(r, (OpenDay, Close)):
        return r.business_date
    return entry.malformed.business_date if entry.malformed is not None else None


def _figures_differ(close: Close, original: Close) -> list[str]:
    out = []
    for name in ("receipt_count", "gross_total", "cash_difference", "first_record_no"):
        a, b = getattr(close, name), getattr(original, name)
        if a != b:
            out.append(f"{name} {a} ≠ {b}")
    for name, keys in (("class_totals", TAX_CLASS_ORDER), ("method_totals", METHOD_ORDER),
                       ("movement_totals", DIRECTION_ORDER)):
        mine: Mapping[object, int] = getattr(close, name)
        theirs: Mapping[object, int] = getattr(original, name)
        for k in keys:
            if mine.get(k, 0) != theirs.get(k, 0):
                out.append(f"{name} {k} {mine.get(k, 0)} ≠ {theirs.get(k, 0)}")
    return out


class _Analyzer:
    """One pass to split records into days, strays and re-closes; then the checks per day."""

    def __init__(self, entries: list[Entry], after_record_no: int | None,
                 closed_dates: Iterable[date], known_closes: Iterable[Close]) -> None:
        self.entries = entries
        self.after = after_record_no
        self.known: dict[date, Close] = {}
        for z in known_closes:
            if z.close_no == 1:
                self.known.setdefault(z.business_date, z)
        # date -> number of the first Z that closed it (0: closed before these records)
        self.closed: dict[date, int] = dict.fromkeys(closed_dates, 0)
        for d in self.known:
            self.closed.setdefault(d, 0)
        self.numbers: list[int] = []
        self.days: list[_DayBuild] = []
        self.recloses: list[_RecloseBuild] = []
        self.breaks: list[SequenceBreak] = []
        self.strays: list[int] = []
        self.pending: list[Failure] = []
        self.first_day_of: dict[date, _DayBuild] = {}
        self.head: tuple[int, int] | None = None
        self.head_close: Close | None = None

    # numbers: unreadable ones (raw lines only) are taken as the previous + 1

    def _assign_numbers(self) -> None:
        prev = self.after
        for e in self.entries:
            n = e.number if e.number is not None else (prev + 1 if prev is not None else 1)
            self.numbers.append(n)
            if not e.aside:
                prev = n

    def segment(self) -> None:
        self._assign_numbers()
        entries, numbers = self.entries, self.numbers
        context_known = self.after is not None or (bool(numbers) and numbers[0] == 1)
        state = "out" if context_known else "head"
        cur: _DayBuild | None = None
        prev = self.after
        if prev is None and context_known:
            prev = 0
        last_close_no: int | None = None  # the Z that ended the last day (for messages)
        for i, e in enumerate(entries):
            n = numbers[i]
            if e.aside:
                # kept aside by the store: only the sequence check sees it, where it came
                if prev is not None:
                    aside_fail = _fail(CHECK_1, f"record {n} comes after record {prev}, "
                                                "numbers must grow by 1", (prev, n))
                    if state == "day":
                        assert cur is not None
                        cur.check1.append(aside_fail)
                    elif state == "out":
                        self.pending.append(aside_fail)
                continue
            letter = e.record_type
            seq_fail: Failure | None = None
            if prev is not None and n != prev + 1:
                self.breaks.append(SequenceBreak(prev, n))
                if n > prev + 1:
                    missing = (f"record {prev + 1} is" if n == prev + 2
                               else f"records {prev + 1}–{n - 1} are")
                    seq_fail = _fail(CHECK_1, f"{missing} missing",
                                     (prev, n) if prev else (n,))
                else:
                    seq_fail = _fail(CHECK_1, f"record {n} comes after record {prev}, numbers "
                                              "must grow by 1", (prev, n))
            prev = n
            if letter == "Z":
                close_no = _close_no_of(e)
                zdate = _date_of(e)
                if close_no is not None and close_no >= 2:
                    self._reclose(i, n, zdate, close_no, e)
                    if state == "day":
                        assert cur is not None
                        cur.items.append(i)
                        if seq_fail:
                            cur.check1.append(seq_fail)
                    elif seq_fail and state == "out":
                        self.pending.append(seq_fail)
                    continue
                if state == "day":
                    assert cur is not None
                    cur.items.append(i)
                    if seq_fail:
                        cur.check1.append(seq_fail)
                    cur.close_index = i
                    self._closed_day(cur, zdate, n)
                    state, cur, last_close_no = "out", None, n
                    continue
                if zdate is not None:
                    self.closed.setdefault(zdate, n)
                if state == "head":
                    self.head = (numbers[0], n)
                    self.head_close = e.record if isinstance(e.record, Close) else None
                    state, last_close_no = "out", n
                    continue
                self._stray(i, n, seq_fail)
                continue
            if letter == "O":
                if state == "head":
                    self.head = (numbers[0], numbers[i - 1]) if i else None
                if state == "day":
                    assert cur is not None
                    cur.unfinished = True
                    cur.next_open_no = n
                new = _DayBuild(i, [i])
                new.check1.extend(self.pending)
                self._strays_before(new, n, last_close_no)
                self.pending = []
                if seq_fail:
                    new.check1.append(seq_fail)
                self.days.append(new)
                cur, state = new, "day"
                continue
            if state == "day":
                assert cur is not None
                cur.items.append(i)
                if seq_fail:
                    cur.check1.append(seq_fail)
            elif state == "out":
                self._stray(i, n, seq_fail)
            # (in the head fragment a gap belongs to a day that is not in these records)
        if state == "head" and entries:
            self.head = (numbers[0], numbers[-1])

    def _stray(self, index: int, number: int, seq_fail: Failure | None) -> None:
        del index
        self.strays.append(number)
        self._stray_run.append(number)
        if seq_fail:
            self.pending.append(seq_fail)

    _stray_run: list[int]

    def _strays_before(self, day: _DayBuild, open_no: int, last_close_no: int | None) -> None:
        run = self._stray_run
        if run:
            names = [*run, open_no] + ([last_close_no] if last_close_no is not None else [])
            day.check1.append(_fail(CHECK_1, f"{_names(run)} {_stand(run)} between a close and "
                                             "the next open", names))
            self._stray_run = []

    def _closed_day(self, day: _DayBuild, zdate: date | None, z_no: int) -> None:
        open_entry = self.entries[day.open_index]
        odate = _date_of(open_entry)
        o_no = self.numbers[day.open_index]
        for d in dict.fromkeys(x for x in (odate, zdate) if x is not None):
            earlier = self.closed.get(d)
            if earlier is not None:
                by = (f"by record {earlier}" if earlier else "before these records")
                names = [o_no, z_no] + ([earlier] if earlier else [])
                day.check1.append(_fail(CHECK_1, f"business date {d.isoformat()} already "
                                                 f"closed {by}", names))
        if zdate is not None:
            self.closed.setdefault(zdate, z_no)
            self.first_day_of.setdefault(zdate, day)
        if odate is not None and zdate is not None and odate != zdate:
            day.check1.append(_fail(CHECK_1, f"close date {zdate.isoformat()} ≠ open date "
                                             f"{odate.isoformat()}", (o_no, z_no)))
        z_entry = self.entries[day.close_index] if day.close_index is not None else None
        first = None
        if z_entry is not None:
            if isinstance(z_entry.record, Close):
                first = z_entry.record.first_record_no
            elif z_entry.malformed is not None:
                first = z_entry.malformed.first_record_no
        if first is not None and first != o_no:
            day.check1.append(_fail(CHECK_1, f"close first_record_no {first} ≠ open record "
                                             f"{o_no}", (o_no, z_no)))

    def _reclose(self, index: int, number: int, zdate: date | None, close_no: int,
                 entry: Entry) -> None:
        close = entry.record if isinstance(entry.record, Close) else None
        build = _RecloseBuild(index, number, zdate, close_no, close)
        if zdate is not None:
            if zdate in self.known:
                build.external = self.known[zdate]
            elif zdate in self.first_day_of:
                build.day = self.first_day_of[zdate]
                build.day.recloses.append(len(self.recloses))
            self.closed.setdefault(zdate, number)
        self.recloses.append(build)

    # --- results -----------------------------------------------------------------------

    def run(self) -> JournalAnalysis:
        self._stray_run = []
        self.segment()
        reclose_results = [self._reclose_result(r) for r in self.recloses]
        day_results = [self._day_result(d, reclose_results) for d in self.days]
        closes = tuple(e.record for e in self.entries
                       if isinstance(e.record, Close) and not e.aside)
        return JournalAnalysis(
            entries=tuple(self.entries), days=tuple(day_results),
            recloses=tuple(reclose_results), breaks=tuple(self.breaks),
            strays=tuple(self.strays),
            pending=_ordered([*self.pending, *self._pending_strays()]),
            head=self.head, head_close=self.head_close, closes=closes)

    def _pending_strays(self) -> list[Failure]:
        if not self._stray_run:
            return []
        run = self._stray_run
        return [_fail(CHECK_1, f"{_names(run)} {_stand(run)} between a close and the next open",
                      run)]

    def _reclose_result(self, r: _RecloseBuild) -> RecloseResult:
        entry = self.entries[r.index]
        failures: list[Failure] = []
        target: Close | None = None
        if r.external is not None:
            target = r.external
        elif r.day is not None and r.day.close_index is not None:
            z = self.entries[r.day.close_index].record
            target = z if isinstance(z, Close) else None
        target_no = (r.external.number if r.external is not None
                     else self.numbers[r.day.close_index]
                     if r.day is not None and r.day.close_index is not None else None)
        status: RecloseStatus
        if entry.malformed is not None:
            failures.append(_format_failure(entry.malformed, r.number))
            if r.day is not None:
                r.day.extra_format.append(failures[-1])
            status = "held"
        elif target_no is None:
            status = "unmatched"
        elif target is None:
            status = "held"  # the day's own close is malformed: nothing to compare with
            failures.append(_fail(CHECK_3, f"re-close {r.close_no} of {_iso(r.business_date)} "
                                           "cannot be compared: its close is malformed",
                                  (target_no, r.number)))
        else:
            assert r.close is not None
            diffs = _figures_differ(r.close, target)
            if diffs:
                failures.append(_fail(
                    CHECK_3, f"re-close {r.close_no} of {_iso(r.business_date)} (record "
                             f"{r.number}) does not repeat the close (record {target.number}): "
                             + ", ".join(diffs), (target.number, r.number)))
                status = "held"
            else:
                status = "same"
        if r.day is not None and failures and entry.malformed is None:
            r.day.reclose_failures.extend(failures)
        return RecloseResult(r.number, r.business_date, r.close_no, r.close, target_no, status,
                             tuple(failures))

    def _day_result(self, d: _DayBuild, recloses: list[RecloseResult]) -> DayResult:
        entries, numbers = self.entries, self.numbers
        failures: list[Failure] = list(d.check1)
        reclose_idx = {r.index for r in self.recloses}
        records: list[Record] = []
        malformed = False
        for i in d.items:
            e = entries[i]
            if i in reclose_idx:
                continue
            if e.malformed is not None:
                malformed = True
                failures.append(_format_failure(e.malformed, numbers[i]))
            elif e.record is not None:
                records.append(e.record)
        if d.extra_format:
            malformed = True
            failures.extend(d.extra_format)
        closed = d.close_index is not None
        o_no = numbers[d.open_index]
        if d.unfinished:
            assert d.next_open_no is not None
            failures.append(_fail(CHECK_1, f"day opened at record {o_no} has no close before "
                                           "the next open",
                                  (o_no, d.next_open_no)))
        sums = _Sums()
        for r in records:
            sums.add(r)
        totals = sums.totals()
        business_day: BusinessDay | None = None
        if not malformed:
            in_order: list[Record | int] = []
            for i in d.items:
                rec = entries[i].record
                if i in reclose_idx:
                    in_order.append(numbers[i])  # stands in the way, belongs to another day
                elif rec is not None:
                    in_order.append(rec)
            end_note = ("the close" if closed else "the next open" if d.unfinished else None)
            end_no = (numbers[d.close_index] if d.close_index is not None
                      else d.next_open_no)
            transactions, c2 = _check_receipts(in_order, end_note, end_no)
            failures.extend(c2)
            if closed:
                z = records[-1]
                assert isinstance(z, Close)
                failures.extend(_check_close(records, in_order, totals))
                failures.extend(d.reclose_failures)
                opening = records[0]
                assert isinstance(opening, OpenDay)
                counts = [r for r in records if isinstance(r, CashCount)]
                cash = counts[-1] if counts else None
                if len(records) >= 2 and isinstance(records[-2], CashCount):
                    cash = records[-2]
                mine = tuple(recloses[k].close for k in d.recloses
                             if recloses[k].close is not None)
                business_day = BusinessDay(
                    opening, tuple(transactions),
                    tuple(r for r in records if isinstance(r, Movement)), cash, z,
                    tuple(c for c in mine if c is not None))
        status: DayStatus = ("open" if not closed and not d.unfinished
                             else "held" if failures else "accepted")
        bdate = _date_of(entries[d.close_index]) if d.close_index is not None else None
        if bdate is None:
            bdate = _date_of(entries[d.open_index])
        last = d.items[-1]
        return DayResult(
            business_date=bdate, status=status, failures=_ordered(failures),
            first_record_no=o_no, last_record_no=numbers[last], open_record_no=o_no,
            close_record_no=numbers[d.close_index] if d.close_index is not None else None,
            unfinished=d.unfinished, day=business_day, totals=totals,
            recloses=tuple(recloses[k] for k in d.recloses))


# --- check 2 -------------------------------------------------------------------------------


class _Receipt:
    __slots__ = ("end", "first_of_phase", "interrupted", "last_x", "lines", "open", "payments",
                 "phase", "start", "taxes")

    def __init__(self, start: TransactionStart) -> None:
        self.start = start
        self.lines: list[ItemLine] = []
        self.taxes: list[ReceiptTax] = []
        self.payments: list[Payment] = []
        self.end: TransactionEnd | None = None
        self.phase = 0
        self.first_of_phase: dict[int, int] = {}
        self.last_x: ReceiptTax | None = None
        self.interrupted = False
        self.open = True


_PHASE_NAME = ("L", "X", "P", "E")


def _check_receipts(in_order: list[Record | int], end_note: str | None,
                    end_no: int | None) -> tuple[list[Transaction], list[Failure]]:
    """Order of section 5 within each transaction, receipt_no unique, per-receipt sums."""
    fails: list[Failure] = []
    receipts: list[_Receipt] = []
    seen: dict[int, int] = {}
    cur: _Receipt | None = None

    def interrupt(number: int, what: str) -> None:
        assert cur is not None
        if not cur.interrupted:
            cur.interrupted = True
            fails.append(_fail(CHECK_2, f"receipt {cur.start.receipt_no} is interrupted by "
                                        f"{what} record {number} before its E",
                               (cur.start.number, number)))

    for item in in_order:
        if isinstance(item, int):  # a re-close Z of another day
            if cur is not None and cur.open:
                interrupt(item, "re-close Z")
            continue
        t = type(item)
        if t is TransactionStart:
            assert isinstance(item, TransactionStart)
            if cur is not None and cur.open:
                fails.append(_fail(CHECK_2, f"receipt {cur.start.receipt_no} has no E before "
                                            f"the next T (record {item.number})",
                                   (cur.start.number, item.number)))
                cur.open = False
            earlier = seen.get(item.receipt_no)
            if earlier is not None:
                fails.append(_fail(CHECK_2, f"receipt {item.receipt_no} appears twice in the "
                                            "day", (earlier, item.number)))
            else:
                seen[item.receipt_no] = item.number
            cur = _Receipt(item)
            receipts.append(cur)
        elif t is ItemLine or t is ReceiptTax or t is Payment or t is TransactionEnd:
            assert isinstance(item, (ItemLine, ReceiptTax, Payment, TransactionEnd))
            letter = _LETTER[t]
            if cur is None or not cur.open or item.receipt_no != cur.start.receipt_no:
                inside = (f" (inside receipt {cur.start.receipt_no})"
                          if cur is not None and cur.open else "")
                fails.append(_fail(CHECK_2, f"{letter} record {item.number} of receipt "
                                            f"{item.receipt_no} stands outside its "
                                            f"transaction{inside}", (item.number,)))
                if cur is not None and cur.open:
                    interrupt(item.number, letter)
                continue
            phase = _PHASE[letter]
            if phase < cur.phase:
                later = cur.first_of_phase[cur.phase]
                fails.append(_fail(CHECK_2, f"receipt {cur.start.receipt_no} {letter} record "
                                            f"{item.number} comes after its "
                                            f"{_PHASE_NAME[cur.phase]} record {later}",
                                   (later, item.number)))
            else:
                if phase > cur.phase or phase not in cur.first_of_phase:
                    cur.first_of_phase.setdefault(phase, item.number)
                cur.phase = phase
            if isinstance(item, ItemLine):
                cur.lines.append(item)
            elif isinstance(item, ReceiptTax):
                last = cur.last_x
                if last is not None:
                    a, b = _CLASS_RANK[last.tax_class], _CLASS_RANK[item.tax_class]
                    if a == b:
                        fails.append(_fail(CHECK_2, f"receipt {cur.start.receipt_no} has two X "
                                                    f"records for class {item.tax_class}",
                                           (last.number, item.number)))
                    elif b < a:
                        fails.append(_fail(CHECK_2, f"receipt {cur.start.receipt_no} X class "
                                                    f"{item.tax_class} comes after class "
                                                    f"{last.tax_class} (order 10, 8R, 0, EX)",
                                           (last.number, item.number)))
                cur.last_x = item
                cur.taxes.append(item)
            elif isinstance(item, Payment):
                cur.payments.append(item)
            else:
                assert isinstance(item, TransactionEnd)
                cur.end = item
                cur.open = False
        else:
            letter = _LETTER[t]
            if cur is not None and cur.open:
                if t is Close:
                    continue  # reported below as "no E before the close"
                interrupt(item.number, letter)
    if cur is not None and cur.open and end_note is not None and end_no is not None:
        fails.append(_fail(CHECK_2, f"receipt {cur.start.receipt_no} has no E before "
                                    f"{end_note} (record {end_no})",
                           (cur.start.number, end_no)))
    in_progress = cur if cur is not None and cur.open and end_note is None else None
    for receipt in receipts:
        if receipt is not in_progress:  # an open day's last receipt may still be written
            fails.extend(_check_amounts(receipt))
    transactions = [Transaction(r.start, tuple(r.lines), tuple(r.taxes), tuple(r.payments),
                                r.end) for r in receipts]
    return transactions, fails


def _check_amounts(r: _Receipt) -> list[Failure]:
    fails: list[Failure] = []
    no = r.start.receipt_no
    head = f"receipt {no}"
    line_classes: dict[TaxClass, list[ItemLine]] = {}
    for ln in r.lines:
        line_classes.setdefault(ln.tax_class, []).append(ln)
    x_classes = {x.tax_class for x in r.taxes}
    if x_classes != set(line_classes):
        def show(classes: Iterable[TaxClass]) -> str:
            listed = [c.value for c in TAX_CLASS_ORDER if c in set(classes)]
            return ", ".join(listed) if listed else "none"
        fails.append(_fail(CHECK_2, f"{head} X classes {show(x_classes)} ≠ L classes "
                                    f"{show(line_classes)}",
                           [r.start.number, *(x.number for x in r.taxes)]))
    for x in r.taxes:
        lines = line_classes.get(x.tax_class, [])
        line_sum = sum(ln.amount for ln in lines)
        if x.base != line_sum:
            fails.append(_fail(CHECK_2, f"{head} class {x.tax_class} base {x.base} ≠ L sum "
                                        f"{line_sum}", [x.number, *(ln.number for ln in lines)]))
        if r.start.tax_mode is TaxMode.IN:
            if x.gross != x.base:
                fails.append(_fail(CHECK_2, f"{head} class {x.tax_class} gross {x.gross} ≠ "
                                            f"base {x.base} (IN)", (x.number,)))
        elif x.gross != x.base + x.tax:
            fails.append(_fail(CHECK_2, f"{head} class {x.tax_class} gross {x.gross} ≠ base "
                                        f"{x.base} + tax {x.tax} (OUT)", (x.number,)))
        if x.tax != 0 and x.tax_class in (TaxClass.EXEMPT, TaxClass.OUT_OF_SCOPE):
            fails.append(_fail(CHECK_2, f"{head} class {x.tax_class} tax {x.tax} ≠ 0",
                               (x.number,)))
        elif x.tax != 0 and x.gross == 0:
            fails.append(_fail(CHECK_2, f"{head} class {x.tax_class} tax {x.tax} ≠ 0 with "
                                        "gross 0", (x.number,)))
    e = r.end
    if e is not None:
        bounds = (r.start.number, e.number)
        gross = sum(x.gross for x in r.taxes)
        if gross != e.total:
            fails.append(_fail(CHECK_2, f"{head} X gross {gross} ≠ total {e.total}", bounds))
        paid = sum(p.amount for p in r.payments)
        if paid != e.total:
            fails.append(_fail(CHECK_2, f"{head} payments {paid} ≠ total {e.total}", bounds))
        tax = sum(x.tax for x in r.taxes)
        if tax != e.tax_total:
            fails.append(_fail(CHECK_2, f"{head} X tax {tax} ≠ tax_total {e.tax_total}",
                               bounds))
        if e.total == 0:
            nonzero = [x.number for x in r.taxes if x.gross or x.tax]
            nonzero += [p.number for p in r.payments if p.amount]
            if nonzero:
                fails.append(_fail(CHECK_2, f"{head} total 0 has nonzero X or P amounts",
                                   nonzero))
    for p in r.payments:
        if p.amount != p.tendered - p.change:
            fails.append(_fail(CHECK_2, f"{head} payment amount {p.amount} ≠ tendered "
                                        f"{p.tendered} − change {p.change}", (p.number,)))
        if p.method is Method.CASH:
            if p.change < 0:
                fails.append(_fail(CHECK_2, f"{head} CASH change {p.change} < 0", (p.number,)))
        elif p.change != 0:
            fails.append(_fail(CHECK_2, f"{head} {p.method} change {p.change} ≠ 0",
                               (p.number,)))
        if p.amount < 0 and (p.tendered != p.amount or p.change != 0):
            fails.append(_fail(CHECK_2, f"{head} refund {p.amount} has tendered {p.tendered} "
                                        f"and change {p.change} (must be {p.amount} and 0)",
                               (p.number,)))
    return fails


# --- check 3 -------------------------------------------------------------------------------


def _check_close(records: list[Record], in_order: list[Record | int],
                 totals: DayTotals) -> list[Failure]:
    fails: list[Failure] = []
    opening = records[0]
    z = records[-1]
    assert isinstance(opening, OpenDay) and isinstance(z, Close)
    counts = [r for r in records if isinstance(r, CashCount)]
    if not counts:
        fails.append(_fail(CHECK_3, "no cash count C before the close", (z.number,)))
    elif len(counts) > 1:
        fails.append(_fail(CHECK_3, f"{len(counts)} cash counts C in the day",
                           [c.number for c in counts]))
    if counts and not (len(in_order) >= 2 and in_order[-2] is counts[-1]):
        c = counts[-1]
        fails.append(_fail(CHECK_3, f"cash count C (record {c.number}) is not just before the "
                                    "close", (c.number, z.number)))
    cash = totals.by_method[Method.CASH]
    m_in, m_out = totals.by_direction[Direction.IN], totals.by_direction[Direction.OUT]
    expected = opening.opening_cash + cash + m_in - m_out
    for c in counts:
        if c.expected_cash != expected:
            fails.append(_fail(CHECK_3, f"C expected_cash {c.expected_cash} ≠ opening "
                                        f"{opening.opening_cash} + CASH {cash} + IN {m_in} − "
                                        f"OUT {m_out} = {expected}", (opening.number, c.number)))
        if c.difference != c.counted_cash - c.expected_cash:
            fails.append(_fail(CHECK_3, f"C difference {c.difference} ≠ counted "
                                        f"{c.counted_cash} − expected {c.expected_cash}",
                               (c.number,)))
    seen: dict[int, int] = {}
    for m in records:
        if isinstance(m, Movement):
            if m.amount <= 0:
                fails.append(_fail(CHECK_3, f"movement {m.movement_no} amount {m.amount} is "
                                            "not positive", (m.number,)))
            if m.movement_no in seen:
                fails.append(_fail(CHECK_3, f"movement {m.movement_no} appears twice in the "
                                            "day", (seen[m.movement_no], m.number)))
            else:
                seen[m.movement_no] = m.number
    zn = (z.number,)
    if z.receipt_count != totals.receipt_count:
        fails.append(_fail(CHECK_3, f"Z receipt_count {z.receipt_count} ≠ "
                                    f"{totals.receipt_count} T records (TRAINING excluded)", zn))
    if z.gross_total != totals.gross:
        fails.append(_fail(CHECK_3, f"Z gross_total {z.gross_total} ≠ {totals.gross}, the sum "
                                    "of E.total", zn))
    for cls in TAX_CLASS_ORDER:
        if z.class_totals.get(cls, 0) != totals.by_class[cls]:
            fails.append(_fail(CHECK_3, f"Z class total {cls} {z.class_totals.get(cls, 0)} ≠ "
                                        f"{totals.by_class[cls]}, the sum of X.gross", zn))
    for method in METHOD_ORDER:
        if z.method_totals.get(method, 0) != totals.by_method[method]:
            fails.append(_fail(CHECK_3, f"Z method total {method} "
                                        f"{z.method_totals.get(method, 0)} ≠ "
                                        f"{totals.by_method[method]}, the sum of P.amount", zn))
    for direction in DIRECTION_ORDER:
        if z.movement_totals.get(direction, 0) != totals.by_direction[direction]:
            fails.append(_fail(CHECK_3, f"Z movement total {direction} "
                                        f"{z.movement_totals.get(direction, 0)} ≠ "
                                        f"{totals.by_direction[direction]}, the sum of M.amount",
                               zn))
    if z.cash_difference != totals.cash_difference:
        fails.append(_fail(CHECK_3, f"Z cash_difference {z.cash_difference} ≠ "
                                    f"{totals.cash_difference}, the C difference", zn))
    return fails


# --- entry points --------------------------------------------------------------------------

Line = bytes | str | tuple[int, bytes | str] | OutOfPlace


def _entry(line: Line) -> Entry:
    if isinstance(line, OutOfPlace):
        result = read_record(line.raw)
        if isinstance(result, Malformed):
            return Entry(line.number, line.raw, None, result, line.after)
        return Entry(line.number, line.raw, result, None, line.after)
    number: int | None = None
    if isinstance(line, tuple):
        number, raw_in = line
    else:
        raw_in = line
    if isinstance(raw_in, str):
        try:
            raw = raw_in.encode("cp932")
        except UnicodeEncodeError:
            raw = raw_in.encode("utf-8")
    else:
        raw = raw_in
    result = read_record(raw)
    if isinstance(result, Malformed):
        if number is None:
            number = result.number
        elif result.number is not None and result.number != number:
            kind = f" ({result.record_type})" if result.record_type else ""
            result = Malformed(number, result.record_type,
                               f"record {number}{kind}: field 1 says {result.number}, and "
                               + result.message.split(": ", 1)[-1],
                               result.business_date, result.close_no, result.first_record_no)
        return Entry(number, raw, None, result)
    if number is not None and result.number != number:
        letter = _LETTER[type(result)]
        bad = Malformed(number, letter,
                        f"record {number} ({letter}): field 1 (record number) says "
                        f"{result.number}")
        return Entry(number, raw, None, bad)
    return Entry(result.number, raw, result, None)


def analyze_journal(lines: Iterable[Line], *, after_record_no: int | None = None,
                    closed_dates: Iterable[date] = (),
                    known_closes: Iterable[Close] = ()) -> JournalAnalysis:
    """Split one terminal's records into days and check them (section 6).

    ``lines``: raw record lines (bytes, CP932, LF optional; or str), or ``(record_no, line)``
    pairs from the store, with ``OutOfPlace`` records (kept aside by the store) where they
    came. ``after_record_no``: the number of the record just before these
    (the last accepted day's Z, or 0 at the journal's start); None when unknown (a file), in
    which case records before the first O belong to a day that began earlier, unless the
    first record is number 1. ``closed_dates``: business dates closed by Zs before these
    records; ``known_closes``: those Zs (close_no 1), to compare re-closes of their days.
    """
    return _Analyzer([_entry(x) for x in lines], after_record_no, closed_dates,
                     known_closes).run()


class JournalAssembler:
    """Incremental assembly for the daemon: parse each record once, analyze when asked.

    ``add`` records as they are stored; ``analyze`` checks everything held; ``forget_through``
    drops the records of accepted days (up to their Z), remembering their dates and closes so
    later days and re-closes are still checked against them.
    """

    def __init__(self, *, after_record_no: int | None = 0, closed_dates: Iterable[date] = (),
                 known_closes: Iterable[Close] = ()) -> None:
        self.after_record_no = after_record_no
        self.closed_dates: set[date] = set(closed_dates)
        self.known_closes: dict[date, Close] = {}
        for z in known_closes:
            if z.close_no == 1:
                self.known_closes.setdefault(z.business_date, z)
        self._entries: list[Entry] = []
        self._cached: JournalAnalysis | None = None

    def add(self, line: Line) -> Entry:
        entry = _entry(line)
        self._entries.append(entry)
        self._cached = None
        return entry

    def extend(self, lines: Iterable[Line]) -> None:
        for line in lines:
            self.add(line)

    def __len__(self) -> int:
        return len(self._entries)

    def analyze(self) -> JournalAnalysis:
        """Check everything held; the same analysis again while nothing changed."""
        if self._cached is None:
            self._cached = _Analyzer(list(self._entries), self.after_record_no,
                                     self.closed_dates, self.known_closes.values()).run()
        return self._cached

    def forget_through(self, record_no: int) -> None:
        """Drop records numbered ``record_no`` or lower (the Z of the last accepted day)."""
        keep: list[Entry] = []
        for e in self._entries:
            if e.after is not None:  # kept aside: it stands after record ``after``
                if e.after >= record_no:
                    keep.append(e)
            elif e.number is not None and e.number <= record_no:
                if isinstance(e.record, Close):
                    self.closed_dates.add(e.record.business_date)
                    if e.record.close_no == 1:
                        self.known_closes.setdefault(e.record.business_date, e.record)
                elif e.malformed is not None and e.malformed.business_date is not None \
                        and e.malformed.record_type == "Z":
                    self.closed_dates.add(e.malformed.business_date)
            else:
                keep.append(e)
        self._entries = keep
        self.after_record_no = record_no
        self._cached = None
