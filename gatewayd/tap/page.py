"""What the status page shows of each print tap: its last captured Z report and the day's
sync status (one call from ``gatewayd.backend``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from gatewayd.web.model import TapOverview


def tap_overviews(runner: Any, snap: Any) -> tuple[TapOverview, ...]:
    """``runner``: the daemon's ``TapRunner`` or None; ``snap``: the sync snapshot or None."""
    if runner is None:
        return ()
    out = []
    for tap in runner.taps:
        last = runner.store.last_report(tap.tap_id)
        if last is None:
            out.append(TapOverview(tap.tap_id, tap.store_name, tap.transport))
            continue
        day = date.fromisoformat(last.business_date) if last.business_date else None
        summary = snap.day(tap.tap_id, day) if snap is not None and day is not None else None
        out.append(TapOverview(
            tap_id=tap.tap_id, store_name=tap.store_name, transport=tap.transport,
            business_date=day, z_counter=last.z_counter, verdict=last.verdict,
            reason=last.reason, text=last.text, captured_at=last.stored_at, day=summary,
        ))
    return tuple(out)
