"""A tapped day's plan into the same outbox the REGLINK days go through (``SyncService``).

The same rules as ``SyncService.day_accepted``/``day_held``, fed a plan instead of a
``BusinessDay``: a ready plan replaces the day's unsent postings (the same plan again is a
no-op, so ``TapIngest.replay`` at start is safe); a held plan shows the day held with its
reason. A tapped day whose postings already reached freee and whose plan changes (a re-close
with other figures) is held with that reason: the outbox's re-sync rebuilds a day from
journal records, which a tap does not have (docs/tap.md, "Limits").
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from gatewayd.sync.outbox import Gate, HoldKind, PostingState
from gatewayd.sync.plan import DayPlan
from gatewayd.sync.service import SyncService
from gatewayd.tap.settings import TapSettings

log = logging.getLogger(__name__)

RECLOSE_AFTER_SENT = (
    "re-close {close_no} of a tapped day whose postings are already in freee: "
    "fix the day in freee (the tap cannot re-sync a day it has no receipts of)"
)


class TapSync:
    """``TapListener`` that queues tapped days in the sync's outbox."""

    def __init__(self, service: SyncService, wake: Callable[[], None] = lambda: None) -> None:
        self.service = service
        self.wake = wake

    def _hash(self, tap: TapSettings) -> str:
        return hashlib.sha256(repr((tap, self.service.mapping)).encode()).hexdigest()[:16]

    def tap_day(self, tap: TapSettings, plan: DayPlan) -> None:
        service = self.service
        outbox = service.outbox
        now = service.clock()
        rid = tap.tap_id
        existing = outbox.day(rid, plan.business_date)
        if plan.ready:
            rows = outbox.postings_of(rid, plan.business_date)
            sent = [r for r in rows if r.freee_id is not None or r.state is PostingState.SENDING]
            if existing is not None and existing.plan == plan.to_json():
                return  # the same day again (replay at start)
            if sent:
                self._hold(tap, plan, RECLOSE_AFTER_SENT.format(close_no=plan.close_no))
                return
            with service.working():
                service.resyncer.replace_unsent(rid, plan, self._hash(tap), now)
            log.info("tapped day %s %s queued: %d postings", rid, plan.business_date,
                     len(plan.postings))
            self.wake()
            return
        if existing is not None and existing.plan is not None and existing.gate is not Gate.HELD:
            rows = outbox.postings_of(rid, plan.business_date)
            if any(r.freee_id is not None for r in rows):
                log.warning("tapped day %s %s: a held re-close after posting: %s", rid,
                            plan.business_date, plan.reason)
        self._hold(tap, plan, plan.reason or "held")

    def _hold(self, tap: TapSettings, plan: DayPlan, reason: str) -> None:
        service = self.service
        with service.outbox.tx() as conn:
            service.outbox.upsert_day(
                conn,
                register_id=tap.tap_id,
                business_date=plan.business_date,
                store_code=tap.store_code,
                terminal_no=tap.terminal_no,
                close_no=plan.close_no,
                gate=Gate.HELD,
                plan=None,
                settings_hash=None,
                now=service.clock(),
                hold_kind=HoldKind.DAY_CHECK,
                hold_reason=reason,
            )
