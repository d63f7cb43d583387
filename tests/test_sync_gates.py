"""When a day may go (freee-mapping.md §4) and resolving names (§5), against the emulator."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
from sync_fixtures import MAIN_COMPANY, REGISTER, Harness, link, make_days

from gatewayd.sync.service import SyncService
from gatewayd.web.model import HeldCause

pytest_plugins = ["sync_fixtures"]


def accept(harness: Harness, svc: SyncService, days: list[Any]) -> None:
    for day in days:
        harness.source.add(REGISTER.register_id, day)
        svc.day_accepted(REGISTER, day)


def test_day_outside_the_fiscal_years_is_held_then_sent_once_a_year_exists(
    harness: Harness,
) -> None:
    svc = harness.service()
    link(svc)  # creates the prefixed 品目 (the only writes before a day is sent)
    linked = harness.transport.writes()
    assert {w for w in linked} == {("POST", "/api/1/items")}
    days = make_days(2, date(2027, 1, 4))  # the seed company has 2025 and 2026 only
    accept(harness, svc, days)
    harness.run(svc)
    snap = svc.snapshot()
    assert [d.status.value for d in snap.days] == ["held", "held"]
    held = snap.days[0].held
    assert held is not None and held.cause is HeldCause.FISCAL_YEAR
    assert "会計年度" in held.detail and "2027-01-0" in held.detail
    assert harness.transport.writes() == linked and harness.deals() == []
    # the accountant opens 2027 in freee: the held days leave by themselves
    harness.emulator.control.add_fiscal_year("2027-01-01", "2027-12-31")
    harness.clock.advance(svc.freee.recheck_interval + 1)
    harness.run(svc)
    snap = svc.snapshot()
    assert [d.status.value for d in snap.days] == ["synced", "synced"]
    refs = [d["ref_number"] for d in harness.deals()]
    assert len(refs) == len(set(refs)) and refs


def test_closed_year_and_month_end_hold(harness: Harness) -> None:
    svc = harness.service()
    year = harness.emulator.control.fiscal_year_of("2025-05-10")
    harness.emulator.control.set_fiscal_year(year["id"], month_end_date="2025-05-10")
    link(svc)  # reads the masters (fiscal years with them) once
    days = make_days(2, date(2025, 5, 10))
    accept(harness, svc, days)
    harness.run(svc)
    snap = svc.snapshot()
    by_date = {d.business_date: d for d in snap.days}
    assert by_date[date(2025, 5, 10)].held is not None
    assert by_date[date(2025, 5, 10)].held.cause is HeldCause.FISCAL_YEAR  # type: ignore[union-attr]
    assert by_date[date(2025, 5, 11)].status.value == "synced"  # after the 本締め date
    harness.emulator.control.set_fiscal_year(year["id"], month_end_date=None, is_closed=True)
    later = make_days(1, date(2025, 6, 1), seed=3)
    accept(harness, svc, later)
    harness.clock.advance(svc.freee.recheck_interval + 1)
    harness.run(svc)
    closed = svc.snapshot().day(REGISTER.register_id, date(2025, 6, 1))
    assert closed is not None and closed.held is not None
    assert "締め済み" in closed.held.detail


def test_missing_master_holds_with_its_name_until_it_exists(harness: Harness) -> None:
    harness.mapping = {"tax_names": {"0": "非課売上"}, "section": "池袋店"}
    svc = harness.service()
    link(svc)
    days = make_days(1, date(2025, 3, 3))
    accept(harness, svc, days)
    harness.run(svc)
    day = svc.snapshot().days[0]
    assert day.held is not None and day.held.cause is HeldCause.MISSING_MASTER
    assert "部門「池袋店」" in day.held.detail
    assert harness.deals() == []
    # someone creates the 部門 in freee
    tokens = harness.emulator.obtain_tokens()
    answer = httpx.post(
        f"{harness.emulator.base_url}/api/1/sections",
        json={"company_id": MAIN_COMPANY, "name": "池袋店"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert answer.status_code == 201
    section_id = answer.json()["section"]["id"]
    harness.clock.advance(svc.freee.recheck_interval + 1)
    harness.run(svc)
    assert svc.snapshot().days[0].status.value == "synced"
    for deal in harness.deals():
        assert all(d.get("section_id") == section_id for d in deal["details"])


def test_unavailable_default_tax_name_holds_with_the_name(harness: Harness) -> None:
    harness.mapping = {"tax_names": {"10": "課税売上10%（存在しない）"}}
    svc = harness.service()
    link(svc)
    accept(harness, svc, make_days(1, date(2025, 3, 3)))
    harness.run(svc)
    held = svc.snapshot().days[0].held
    assert held is not None and "税区分「課税売上10%（存在しない）」" in held.detail


def test_vat_only_where_the_tax_takes_it_and_transfers_carry_the_ref(harness: Harness) -> None:
    harness.mapping = {
        "tax_names": {"0": "非課売上"},
        "movement_defaults": {"OUT": {"walletable": "普通預金"}},
    }
    svc = harness.service()
    link(svc)
    days = make_days(3, date(2025, 7, 1), seed=11)
    accept(harness, svc, days)
    # a dropped connection after a transfer was stored: found by the transfer look-up
    harness.emulator.control.add_fault(
        "drop_after", method="POST", path="/api/1/transfers", times=1
    )
    harness.run(svc)
    masters = svc.masters.cached()
    assert masters is not None
    no_rate = {t.code for t in masters.taxes.values() if t.display_category is None}
    bodies = [r.sent_body for r in svc.outbox.postings_in_state(*_all_states()) if r.sent_body]
    lines = [d for b in bodies for d in b.get("details", [])]
    assert any(d["tax_code"] in no_rate for d in lines)
    assert all("vat" not in d for d in lines if d["tax_code"] in no_rate)
    assert any("vat" in d for d in lines if d["tax_code"] not in no_rate)
    transfers = harness.transfers()
    planned = [
        p.ref_number
        for d in days
        for p in svc.plan_for(REGISTER, d).postings
        if p.kind.value == "transfer"
    ]
    assert planned, "the generated days should have OUT movements"
    described = [row["description"] for t in transfers for row in t["to_walletables"]]
    assert sorted(x.rsplit(" ", 1)[-1] for x in described) == sorted(planned)
    assert all(len(t["to_walletables"]) == 1 for t in transfers)
    assert [d.status.value for d in svc.snapshot().days] == ["synced"] * 3


def _all_states() -> list[Any]:
    from gatewayd.sync.outbox import PostingState

    return list(PostingState)


def test_prefix_items_are_created_once(harness: Harness) -> None:
    svc = harness.service()
    link(svc)
    accept(harness, svc, make_days(3, date(2025, 3, 3)))
    harness.run(svc)
    posts = [p for m, p in harness.transport.requests if m == "POST" and p == "/api/1/items"]
    names = set(harness.emulator.control.company(MAIN_COMPANY)["items"])
    prefixed = {n for n in names if n.startswith("【POS Regi】")}
    assert len(posts) == len(prefixed) > 0
    harness.clock.advance(timedelta(days=1).total_seconds())
    accept(harness, svc, make_days(1, date(2025, 3, 10), seed=5))
    harness.run(svc)
    again = [p for m, p in harness.transport.requests if m == "POST" and p == "/api/1/items"]
    prefixed2 = {
        n
        for n in harness.emulator.control.company(MAIN_COMPANY)["items"]
        if n.startswith("【POS Regi】")
    }
    assert len(again) == len(prefixed2)  # one POST per new label, never one for a known name


def test_a_fixed_setting_releases_the_held_day_after_restart(harness: Harness) -> None:
    harness.mapping = {"tax_names": {"0": "非課売上"}, "cash_walletable": "レジ現金"}
    svc = harness.service()
    link(svc)
    accept(harness, svc, make_days(1, date(2025, 3, 3)))
    harness.run(svc)
    held = svc.snapshot().days[0].held
    assert held is not None and "口座「レジ現金」" in held.detail
    svc.close()
    harness.services.remove(svc)
    harness.mapping = {"tax_names": {"0": "非課売上"}}  # the installer fixes the file
    svc = harness.service()
    harness.run(svc)  # planned again with the new settings, then sent
    assert svc.snapshot().days[0].status.value == "synced"
    assert harness.deals()


def test_outbox_schema_version_and_reopen(harness: Harness) -> None:
    import sqlite3

    svc = harness.service()
    link(svc)
    accept(harness, svc, make_days(1, date(2025, 3, 3)))
    svc.close()
    harness.services.remove(svc)
    with sqlite3.connect(harness.state_dir / "outbox.sqlite") as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = harness.service()
    harness.run(again)  # nothing lost across the restart
    assert again.snapshot().days[0].status.value == "synced"
