"""One tap's bytes → stored → jobs → judged Z reports → plans, for the daemon.

``heard`` stores a chunk durably first (``TapStore.append``), then splits; every finished job
is read, judged and saved with the tap's progress in one transaction, and only then is the
listener told about a Z report's plan. A restart resumes from the stored progress: the bytes
after the last saved job are fed again with their stored arrival times, so the same jobs come
out. ``replay()`` tells the listener every saved plan again (the listener is idempotent), so a
crash between saving and telling loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from gatewayd.store.taps import TO_PRINTER, NewJob, TapStore
from gatewayd.sync.mapping_settings import MappingSettings
from gatewayd.sync.plan import DayPlan
from gatewayd.tap.capture import CapturedJob, plan_of
from gatewayd.tap.checks import TapHistory, judge
from gatewayd.tap.escpos import Job, JobSplitter
from gatewayd.tap.report import read_job
from gatewayd.tap.settings import TapSettings
from gatewayd.tap.template import Template

log = logging.getLogger(__name__)


class TapListener(Protocol):
    def tap_day(self, tap: TapSettings, plan: DayPlan) -> None: ...


class TapIngest:
    """Thread-safe: transports call ``heard`` from their threads, the daemon ``tick``."""

    def __init__(
        self,
        tap: TapSettings,
        template: Template,
        store: TapStore,
        mapping: MappingSettings,
        listener: TapListener | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tap = tap
        self.template = template
        self.store = store
        self.mapping = mapping
        self.listener = listener
        self.clock = clock
        self._lock = threading.Lock()
        store.ensure_tap(tap.tap_id, tap.store_code, tap.terminal_no)
        consumed, history = store.progress(tap.tap_id)
        self._history = TapHistory.from_json(history) if history else TapHistory()
        self._consumed = consumed
        self._splitter = JobSplitter(idle_gap=tap.idle_gap)
        pending: list[Job] = []
        for chunk in store.chunks_from(tap.tap_id, consumed):
            pending += self._splitter.feed(chunk.received, chunk.data)
        self._read(pending)

    def heard(self, data: bytes, now: float | None = None, direction: str = TO_PRINTER) -> None:
        """Bytes the register sent to the printer (or, direction P, the printer's answers)."""
        if not data:
            return
        when = self.clock() if now is None else now
        with self._lock:
            self.store.append(self.tap.tap_id, data, when, direction)
            if direction == TO_PRINTER:
                self._read(self._splitter.feed(when, data))

    def tick(self, now: float | None = None) -> None:
        """End the pending job when the idle gap has passed."""
        with self._lock:
            self._read(self._splitter.idle(self.clock() if now is None else now))

    def end_of_job(self) -> None:
        """The register closed its connection (TCP): what it sent is one job."""
        with self._lock:
            self._read(self._splitter.finish())

    def _read(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        new: list[NewJob] = []
        plans: list[DayPlan] = []
        for job in jobs:
            reading = read_job(self.template, job.data)
            judgement = judge(reading, self.template, self._history)
            self._history = judgement.history
            captured = CapturedJob(0, job, reading, judgement)
            plan = plan_of(captured, self.template, self.tap.store_code, self.tap.terminal_no,
                           self.mapping)
            report = judgement.report
            start = self._consumed
            self._consumed += len(job.data)
            new.append(NewJob(
                start_offset=start, end_offset=self._consumed, started=job.started,
                ended=job.ended, kind=reading.kind.value, verdict=judgement.verdict.value,
                reason=judgement.reason,
                business_date=None if report is None or report.business_date is None
                else report.business_date.isoformat(),
                z_counter=None if report is None else report.z_counter,
                close_no=judgement.close_no or None,
                text="\n".join(ln.text for ln in reading.lines),
                plan=None if plan is None else plan.to_json(),
            ))
            if plan is not None:
                plans.append(plan)
                log.info("tap %s: Z %s of %s %s%s", self.tap.tap_id,
                         report.z_counter if report else "?", plan.business_date,
                         judgement.verdict.value, f" ({judgement.reason})"
                         if judgement.reason else "")
        self.store.save_jobs(self.tap.tap_id, new, self._history.to_json())
        if self.listener is not None:
            for plan in plans:
                self.listener.tap_day(self.tap, plan)

    def replay(self) -> int:
        """Tell the listener every stored plan again, in order; returns how many."""
        if self.listener is None:
            return 0
        n = 0
        for row in self.store.jobs(self.tap.tap_id, kind="z_report"):
            if row.plan is not None:
                self.listener.tap_day(self.tap, DayPlan.from_json(row.plan))
                n += 1
        return n
