"""From stored records to checked days, for one register: the hand-over after the store.

``RegisterIngest`` is the host's ``JournalSink`` (it stores each ``J`` batch in the journal
store and returns only after the commit) and, on the daemon's main loop, the day assembler:
``process()`` reads the records stored since its last look, assembles and checks days when
a close arrived, saves each day (accepted, or held with its reason) and tells the listener
(the freee sync) about accepted days, held days and re-closes.

The listener is told *before* the day is saved as processed, so a crash in between makes
the day be told again after the restart: listeners must be idempotent (the outbox is keyed
by ref_number). Everything here is derived from the raw records and can be rebuilt.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Protocol

from gatewayd.config import RegisterSettings
from gatewayd.protocol.days import (
    DayResult,
    DayTotals,
    JournalAnalysis,
    JournalAssembler,
    Line,
    OutOfPlace,
    analyze_journal,
)
from gatewayd.protocol.journal_parser import read_record
from gatewayd.protocol.records import BusinessDay, Close
from gatewayd.store.journal import CloseRow, DayRow, JournalStore

logger = logging.getLogger("gatewayd.ingest")

_Z = b"\tZ\t"
# While a day runs, its receipt count and sales for the page are re-summed at most this
# often (a full analysis of a 40,000-record day takes a noticeable share of a Pi's core).
OPEN_DAY_REFRESH = 10.0


class DayListener(Protocol):
    """Who hears about days: the freee sync. Every call must be idempotent."""

    def day_accepted(self, register: RegisterSettings, day: BusinessDay) -> None: ...

    def day_held(self, register: RegisterSettings, business_date: date, reason: str) -> None: ...

    def reclose(self, register: RegisterSettings, business_date: date, close_no: int) -> None: ...


@dataclass(frozen=True, slots=True)
class OpenDayInfo:
    """The day in progress (no Z yet), for the status page (未閉局)."""

    business_date: date | None
    first_record_no: int
    last_record_no: int
    receipt_count: int
    gross: int


class StoredAssembler(JournalAssembler):
    """The day assembler fed from the journal store.

    Records the store kept aside (a number already used, or below a stored one) are put back
    where they came — after the record that was the highest stored then — as ``OutOfPlace``
    lines, so the day they came in is held by check 1. An aside is taken only once the
    records up to where it came have been read.
    """

    def __init__(self, store: JournalStore, register_id: str, *, after_record_no: int,
                 closed_dates: Iterable[date], known_closes: Iterable[Close]) -> None:
        super().__init__(after_record_no=after_record_no, closed_dates=closed_dates,
                         known_closes=known_closes)
        self._store = store
        self._register_id = register_id
        self._aside_id = 0  # the last aside taken in

    def extend(self, lines: Iterable[Line]) -> None:
        batch = list(lines)
        top = max((_number(x) for x in batch), default=None)
        if top is None:
            return
        floor = self.after_record_no or 0
        asides: list[OutOfPlace] = []
        for aside in self._store.asides(self._register_id, self._aside_id):
            if aside.after > top:
                break  # came after records not read yet: taken in with them
            self._aside_id = aside.id
            if aside.after >= floor:  # below: it stood in a day already processed
                asides.append(OutOfPlace(aside.number, aside.raw, aside.after))
        super().extend(_merge(batch, asides) if asides else batch)


def _number(line: Line) -> int:
    if isinstance(line, OutOfPlace):
        return line.after
    assert isinstance(line, tuple), "the store gives (record_no, raw) pairs"
    return line[0]


def _merge(batch: list[Line], asides: list[OutOfPlace]) -> list[Line]:
    """Each aside right after the record numbered its ``after`` (first when that came before)."""
    out: list[Line] = []
    pending = list(asides)
    for line in batch:
        while pending and pending[0].after < _number(line):
            out.append(pending.pop(0))
        out.append(line)
    out.extend(pending)
    return out


class RegisterIngest:
    """Journal sink and day assembler of one register."""

    def __init__(
        self, store: JournalStore, register: RegisterSettings, listener: DayListener
    ) -> None:
        self.store = store
        self.register = register
        self.listener = listener
        self.register_id = register.register_id
        store.ensure_register(self.register_id, register.store_code, register.terminal_no)
        self._close_arrived = threading.Event()
        # held for a whole process() (tell the listeners, then save) and by get_day(): a
        # day read back from another thread never misses what a told re-close saves
        self._lock = threading.RLock()
        boundary = store.processed_through(self.register_id)
        self._assembler = StoredAssembler(
            store,
            self.register_id,
            after_record_no=boundary,
            closed_dates=store.closed_dates(self.register_id),
            known_closes=self._known_closes(),
        )
        self._seen_recloses = {c.record_no for c in store.closes(self.register_id)}
        self._read_through = boundary
        self.open_day: OpenDayInfo | None = None
        self._open_day_at = 0.0
        self.last_analysis_failures: tuple[str, ...] = ()
        self._close_arrived.set()  # analyse once at start: records may await since a crash

    # --- JournalSink (register host thread) ----------------------------------------------

    def last_stored_record(self) -> int:
        return self.store.last_stored_record(self.register_id)

    def store_records(self, records: Sequence[tuple[int, bytes]]) -> int:
        result = self.store.store_records(self.register_id, records)
        if result.conflicts:
            logger.error(
                "register sent %d record(s) under a number already used or below the last"
                " stored; kept aside, the day they came in is held (check 1)",
                result.conflicts,
                extra={"register": self.register_id},
            )
        if any(_Z in raw for _, raw in records):
            self._close_arrived.set()  # after the commit: see process()
        return result.last_record_no

    # --- main loop ------------------------------------------------------------------------

    def process(self, *, force: bool = False) -> bool:
        """Take in new records; assemble and check when a close arrived. True if work done."""
        with self._lock:
            # The flag is taken (tested and cleared) *before* the read: the host commits a
            # batch and only then sets the flag, so a close whose flag this clears is already
            # committed and in the read below; a close committed after the read sets it again
            # for the next turn. Reading first would let a Z committed between the read and
            # the clear use up its flag on an analysis without it (issue 11, section 3).
            closing = self._take_close_flag() or force
            new = self.store.records(self.register_id, self._read_through + 1)
            if new:
                self._assembler.extend(new)
                self._read_through = new[-1][0]
            if not closing:
                if new and time.monotonic() - self._open_day_at >= OPEN_DAY_REFRESH:
                    self._update_open_day(None)
                return bool(new)
            analysis = self._assembler.analyze()
            self._take(analysis)
            return True

    def _take_close_flag(self) -> bool:
        """True (and cleared) when a close arrived since the last take."""
        if not self._close_arrived.is_set():
            return False
        self._close_arrived.clear()
        return True

    def _take(self, analysis: JournalAnalysis) -> None:
        finished = [d for d in analysis.days if d.status != "open"]
        accepted_now = {d.business_date for d in finished if d.status == "accepted"}
        rows: list[DayRow] = []
        for result in finished:
            rows.append(self._tell_day(result, accepted_now))
        closes: list[CloseRow] = []
        for reclose in analysis.recloses:
            if reclose.number in self._seen_recloses:
                continue
            note: str | None = reclose.status if reclose.status != "same" else None
            if reclose.status == "same" and reclose.business_date and reclose.close_no:
                self.listener.reclose(self.register, reclose.business_date, reclose.close_no)
            elif reclose.status == "held" and reclose.business_date:
                reason = reclose.reason or "check 3: re-close does not repeat the figures"
                note = reason
                self.listener.day_held(self.register, reclose.business_date, reason)
            elif reclose.status == "unmatched":
                logger.warning(
                    "re-close of %s: the day's records are not in this gateway",
                    reclose.business_date,
                    extra={"register": self.register_id},
                )
            closes.append(
                CloseRow(
                    self.register_id, reclose.number, reclose.business_date, reclose.close_no, note
                )
            )
        boundary = max((d.last_record_no for d in finished), default=None)
        if boundary is not None or closes:
            through = (
                boundary if boundary is not None else self.store.processed_through(self.register_id)
            )
            self.store.save_analysis(self.register_id, rows, closes, through)
            for reclose in analysis.recloses:
                if reclose.status == "same" and reclose.target_record_no and reclose.close_no:
                    self.store.set_close_no(
                        self.register_id, reclose.target_record_no, reclose.close_no
                    )
            self._seen_recloses.update(c.record_no for c in closes)
            if boundary is not None:
                self._assembler.forget_through(boundary)
        self._update_open_day(analysis)

    def _tell_day(self, result: DayResult, accepted_now: set[date | None]) -> DayRow:
        when = result.business_date
        if result.status == "accepted" and result.day is not None:
            self.listener.day_accepted(self.register, result.day)
            logger.info(
                "day %s accepted (records %d..%d)",
                when,
                result.first_record_no,
                result.last_record_no,
                extra={"register": self.register_id, "business_date": str(when)},
            )
        else:
            reason = result.reason or "held"
            if when is not None and (when in accepted_now or self._accepted(when)):
                # a later close of a date already accepted (check 1): the listener keys days
                # by date, and that date is the accepted day's; this one is kept (held, with
                # its reason) in the journal store only
                logger.warning(
                    "day %s held as a second close of an accepted date; the accepted day stands",
                    when,
                    extra={"register": self.register_id, "business_date": str(when)},
                )
            elif when is not None:
                self.listener.day_held(self.register, when, reason)
            logger.warning(
                "day %s held: %s",
                when,
                reason,
                extra={"register": self.register_id, "business_date": str(when)},
            )
        totals = result.totals
        return DayRow(
            register_id=self.register_id,
            business_date=when,
            first_record_no=result.first_record_no,
            close_record_no=result.close_record_no or result.last_record_no,
            status="accepted" if result.status == "accepted" else "held",
            reason=result.reason,
            close_no=result.close_no or 1,
            gross=totals.gross,
            tax=totals.tax,
            receipt_count=totals.receipt_count,
        )

    def _accepted(self, business_date: date) -> bool:
        row = self.store.day(self.register_id, business_date)
        return row is not None and row.status == "accepted"

    def _update_open_day(self, analysis: JournalAnalysis | None) -> None:
        self._open_day_at = time.monotonic()
        if analysis is None:
            analysis = self._assembler.analyze()
        day = analysis.open_day
        if day is None:
            self.open_day = None
            return
        self.open_day = OpenDayInfo(
            day.business_date,
            day.first_record_no,
            day.last_record_no,
            day.totals.receipt_count,
            day.totals.gross,
        )

    # --- reading days back (the sync's DaySource) ----------------------------------------

    def _known_closes(self) -> list[Close]:
        closes: list[Close] = []
        for row in self.store.days(self.register_id, limit=100_000):
            for _, raw in self.store.records(
                self.register_id, row.close_record_no, row.close_record_no
            ):
                record = read_record(raw)
                if isinstance(record, Close):
                    closes.append(record)
        return closes

    def get_day(self, business_date: date) -> BusinessDay | None:
        """Rebuild an accepted day from its raw records (for resend and re-close).

        Waits for a process() under way: the listeners hear of a re-close before it is
        saved (see the module's docstring), and the sync thread may act on that news at
        once; without the wait it would rebuild the day without the re-close.
        """
        with self._lock:
            return rebuild_day(self.store, self.register_id, business_date)


def day_totals_of(store: JournalStore, register_id: str, business_date: date) -> DayTotals | None:
    """The sums of a stored day's records (held days too: for its slip and page)."""
    row = store.day(register_id, business_date)
    if row is None:
        return None
    lines = store.records(register_id, row.first_record_no, row.close_record_no)
    result = analyze_journal(lines, after_record_no=row.first_record_no - 1).day_closing(
        business_date
    )
    return result.totals if result is not None else None


def rebuild_day(store: JournalStore, register_id: str, business_date: date) -> BusinessDay | None:
    """The accepted day of that date, rebuilt from the raw records, with its re-closes."""
    row = store.day(register_id, business_date)
    if row is None or row.status != "accepted":
        return None
    lines = store.records(register_id, row.first_record_no, row.close_record_no)
    analysis = analyze_journal(lines, after_record_no=row.first_record_no - 1)
    result = analysis.day_closing(business_date)
    if result is None or result.day is None:
        return None
    recloses: list[Close] = []
    for close in store.closes(register_id):
        if close.business_date == business_date and close.note is None:
            for _, raw in store.records(register_id, close.record_no, close.record_no):
                record = read_record(raw)
                if isinstance(record, Close):
                    recloses.append(record)
    return replace(result.day, recloses=tuple(recloses))
