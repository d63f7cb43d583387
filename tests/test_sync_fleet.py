"""Many boxes of one freee company (issue 14): 品目 once at link time, one narrow read for a
品目 another box made, a deterministic spread of the sends after a close."""

from __future__ import annotations

from datetime import date
from typing import Any

from sync_fixtures import (
    MAIN_COMPANY,
    REGISTER,
    Harness,
    freee_settings,
    gateway_settings,
    link,
    make_days,
)

from gatewayd.sync.service import SyncService
from gatewayd.sync.spread import send_delay

pytest_plugins = ["sync_fixtures"]

PREFIXED = "【POS Regi】"


def box(harness: Harness, name: str, mapping: dict[str, Any] | None = None) -> SyncService:
    """Another gateway box (its own state directory) on the harness's emulator and clock."""
    state = harness.state_dir.parent / name
    svc = SyncService(
        gateway_settings(state, mapping if mapping is not None else harness.mapping),
        state,
        harness.source,
        transport=harness.transport,
        freee=freee_settings(harness.emulator.base_url, **harness.freee_overrides),
        clock=harness.clock,
        sleep=lambda _s: None,
    )
    harness.services.append(svc)
    return svc


def api_calls(harness: Harness, since: int) -> list[tuple[str, str]]:
    calls = [(m, p) for m, p in harness.transport.requests[since:] if p.startswith("/api/1/")]
    return [
        (m, "/".join("{id}" if x.isdigit() and len(x) > 3 else x for x in p.split("/")))
        for m, p in calls
    ]


def accept(harness: Harness, svc: SyncService, day: Any) -> None:
    harness.source.add(REGISTER.register_id, day)
    svc.day_accepted(REGISTER, day)


def test_prefixed_items_are_created_once_at_link_time(harness: Harness) -> None:
    first = box(harness, "a")
    mark = len(harness.transport.requests)
    link(first)
    calls = api_calls(harness, mark)
    assert calls[:2] == [("GET", "/api/1/companies/{id}"), ("GET", "/api/1/taxes/companies/{id}")]
    assert calls[2:] == [("POST", "/api/1/items")] * 7  # one per method label
    items = harness.emulator.control.company(MAIN_COMPANY)["items"]
    assert sum(1 for n in items if n.startswith(PREFIXED)) == 7
    # a box linked later finds them in the same two reads
    second = box(harness, "b")
    mark = len(harness.transport.requests)
    link(second)
    assert api_calls(harness, mark) == [
        ("GET", "/api/1/companies/{id}"),
        ("GET", "/api/1/taxes/companies/{id}"),
    ]
    # and its first evening costs one call per posting: no master read, no 品目 made
    (day,) = make_days(1, date(2025, 3, 3))
    mark = len(harness.transport.requests)
    accept(harness, second, day)
    harness.run(second)
    postings = len(second.plan_for(REGISTER, day).postings)
    assert api_calls(harness, mark) == [("POST", "/api/1/deals")] * postings
    assert second.masters.cached() is not None and first.masters.cached() is not None


def test_an_item_another_box_created_is_found_by_one_narrow_read(harness: Harness) -> None:
    old = box(harness, "a")
    link(old)  # creates the 【POS Regi】 品目
    # the chain moves to another prefix: one box (linked with it) creates the new 品目 ...
    renamed = {**(harness.mapping or {}), "item_prefix": "【POS2】"}
    link(box(harness, "b", renamed))
    # ... and the first box, restarted with it, lacks them in its cached masters
    old.close()
    harness.clock.advance(600)
    restarted = box(harness, "a", renamed)
    (day,) = make_days(1, date(2025, 3, 3))
    mark = len(harness.transport.requests)
    accept(harness, restarted, day)
    harness.run(restarted)
    postings = len(restarted.plan_for(REGISTER, day).postings)
    assert api_calls(harness, mark) == [("GET", "/api/1/items")] + [
        ("POST", "/api/1/deals")
    ] * postings
    assert [d.status.value for d in restarted.snapshot().days] == ["synced"]
    masters = restarted.masters.cached()
    assert masters is not None and "【POS2】現金" in masters.items


def test_an_item_nobody_made_is_read_for_once_then_created_from_the_answer(
    harness: Harness,
) -> None:
    svc = box(harness, "a")
    link(svc)
    svc.close()
    harness.clock.advance(600)
    renamed = box(harness, "a", {**(harness.mapping or {}), "item_prefix": "【新】"})
    (day,) = make_days(1, date(2025, 3, 3))
    mark = len(harness.transport.requests)
    accept(harness, renamed, day)
    harness.run(renamed)
    calls = api_calls(harness, mark)
    postings = len(renamed.plan_for(REGISTER, day).postings)
    assert calls == [("GET", "/api/1/items")] + [("POST", "/api/1/items")] * 7 + [
        ("POST", "/api/1/deals")
    ] * postings  # the created 品目 go into the cache from freee's answers: no read after


def test_a_rate_limited_link_still_links(harness: Harness) -> None:
    harness.emulator.control.set_config(daily_quota=0)
    svc = box(harness, "a")
    link(svc)
    assert svc.tokens.usable() and svc.masters.cached() is None
    harness.emulator.control.set_config(daily_quota=3000)
    (day,) = make_days(1, date(2025, 3, 3))
    accept(harness, svc, day)
    harness.clock.advance(svc.freee.rate_limit_pause + 1)
    harness.run(svc)
    assert [d.status.value for d in svc.snapshot().days] == ["synced"]


# -- the spread after a close ------------------------------------------------------------------


def test_send_delay_is_derived_from_the_identity_and_bounded() -> None:
    ids = [f"{n:04d}-01" for n in range(1000)]
    delays = [send_delay(i, 120.0) for i in ids]
    assert delays == [send_delay(i, 120.0) for i in ids]  # the same every evening
    assert all(0.0 <= d < 120.0 for d in delays)
    # spread over the whole window: every 12-second slot holds some of 1,000 boxes
    slots = {int(d // 12) for d in delays}
    assert slots == set(range(10))
    assert len(set(delays)) == len(delays)
    assert send_delay("0001-01", 0.0) == 0.0
    assert send_delay("0001-01", 60.0) == send_delay("0001-01", 120.0) / 2


def test_a_closed_day_waits_its_part_of_the_spread(harness: Harness) -> None:
    harness.freee_overrides["send_spread"] = 300.0
    svc = box(harness, "a")
    link(svc)
    delay = send_delay(REGISTER.register_id, 300.0)
    assert 1.0 < delay < 299.0  # the fixture's register: a delay worth testing
    (day,) = make_days(1, date(2025, 3, 3))
    mark = len(harness.transport.requests)
    accept(harness, svc, day)
    wait = svc.step()
    assert api_calls(harness, mark) == []
    assert abs(wait - delay) < 0.01  # the daemon sleeps until then
    assert [d.status.value for d in svc.snapshot().days] == ["sending"]
    harness.clock.advance(wait)
    harness.run(svc)
    assert [d.status.value for d in svc.snapshot().days] == ["synced"]
    assert len(harness.deals()) == len(svc.plan_for(REGISTER, day).postings)
