"""The ref_number's short form (refs.py, ``[freee] ref_number_form``), also against the
emulator with its 20-character limit rule on (issue 15)."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import pytest
from sync_fixtures import REGISTER, Harness, link, make_days

from gatewayd.errors import ConfigError
from gatewayd.protocol.records import BusinessDay
from gatewayd.settings_reader import TableReader
from gatewayd.sync.freee_settings import parse_freee
from gatewayd.sync.outbox import HoldKind, PostingState
from gatewayd.sync.plan import ref_number
from gatewayd.sync.refs import FULL, SHORT, as_form, carries_ref, short_ref, with_form
from gatewayd.sync.service import SyncService

pytest_plugins = ["sync_fixtures"]

START = date(2025, 3, 1)
SUFFIXES = ["S-CASH", "S-CREDIT", "S-EMONEY", "S-QR", "S-GIFT", "S-POINT", "S-OTHER",
            "S-CASH-1", "S-EMONEY-123", "S-EMONEY-1234567", "S", "D", "M1", "M9999999",
            "M1234567890"]


def test_short_form_fits_20_characters_and_keeps_refs_apart() -> None:
    day = date(2025, 1, 10)
    shorts = set()
    for store, terminal in (("0001", "01"), ("ABCDEFGH", "12345678"), ("0002", "01")):
        for suffix in SUFFIXES:
            full = ref_number(store, terminal, day, suffix)
            short = short_ref(full)
            assert len(short) <= 20 and short.isascii(), (full, short)
            assert short == short_ref(full)  # deterministic
            shorts.add(short)
    assert len(shorts) == 3 * len(SUFFIXES)
    assert short_ref("POS-0001-01-20250110-S-CASH").endswith("250110-SCA")
    assert short_ref("POS-0001-01-20250111-S-CASH") != short_ref("POS-0001-01-20250110-S-CASH")


def test_a_deal_carries_its_ref_in_either_form_and_only_its_own() -> None:
    full = "POS-ABCDEFGH-12345678-20250110-S-EMONEY"
    body = {"ref_number": full, "details": [{"amount": 1, "description": "店舗 現金"}]}
    short_body = with_form(body, full, SHORT)
    assert short_body["ref_number"] == short_ref(full)
    assert short_body["details"][0]["description"] == f"店舗 現金 {full}"
    assert body["details"][0]["description"] == "店舗 現金"  # not changed in place
    assert carries_ref(body, full) and carries_ref(short_body, full)
    other = "POS-ABCDEFGH-12345678-20250110-S-QR"
    assert not carries_ref(short_body, other)
    # a short ref without the full key in a description (a digest collision) is not ours
    assert not carries_ref({"ref_number": short_ref(full), "details": [{}]}, full)
    assert as_form(short_body, full, FULL) == body
    assert as_form(body, full, SHORT) == short_body
    assert with_form({"to_walletables": []}, full, SHORT) == {"to_walletables": []}


def test_setting_is_read_and_checked() -> None:
    assert parse_freee(TableReader({}, "freee")).ref_number_form == FULL
    assert parse_freee(TableReader({"ref_number_form": "short"}, "freee")).ref_number_form == SHORT
    with pytest.raises(ConfigError, match="ref_number_form"):
        parse_freee(TableReader({"ref_number_form": "tiny"}, "freee"))


def _accept(harness: Harness, svc: SyncService, days: list[BusinessDay]) -> None:
    for day in days:
        harness.source.add(REGISTER.register_id, day)
        svc.day_accepted(REGISTER, day)


def _planned(svc: SyncService, days: list[BusinessDay]) -> list[Any]:
    return [p for d in days for p in svc.plan_for(REGISTER, d).postings]


def _deal_refs(harness: Harness, planned: list[Any]) -> Counter[str]:
    """How often each planned deal's full ref is carried by a deal in freee (either form)."""
    deals = harness.deals()
    return Counter(p.ref_number for p in planned if p.kind.value == "deal"
                   for d in deals if carries_ref(d, p.ref_number))


def test_full_form_is_held_when_freee_limits_ref_number_to_20(harness: Harness) -> None:
    harness.emulator.control.set_facts(deal_ref_number_unlimited=False)
    svc = harness.service()
    link(svc)
    days = make_days(1, START)
    _accept(harness, svc, days)
    harness.run(svc)
    rows = [r for r in svc.outbox.postings_of(REGISTER.register_id, days[0].business_date)
            if r.kind == "deal"]
    assert rows and all(r.state is PostingState.HELD and r.hold_kind is HoldKind.REFUSED
                        for r in rows)
    assert harness.deals() == []


def test_short_form_posts_exactly_once_under_the_limit_and_a_lost_answer(
    harness: Harness,
) -> None:
    harness.emulator.control.set_facts(deal_ref_number_unlimited=False)
    harness.freee_overrides["ref_number_form"] = SHORT
    svc = harness.service()
    link(svc)
    days = make_days(2, START)
    _accept(harness, svc, days)
    # the 2nd POST is stored by freee but its answer lost: the look-up must find it
    harness.emulator.control.add_fault("drop_after", method="POST", path="/api/1/deals",
                                       skip=1, times=1)
    harness.run(svc)
    planned = _planned(svc, days)
    counts = _deal_refs(harness, planned)
    deal_refs = [p.ref_number for p in planned if p.kind.value == "deal"]
    assert sorted(counts) == sorted(deal_refs) and set(counts.values()) == {1}
    assert all(len(d["ref_number"]) <= 20 for d in harness.deals())
    assert len(harness.deals()) == len(deal_refs)
    outcomes = Counter(a.outcome.value for d in days
                       for a in svc.day_detail(REGISTER.register_id, d.business_date).attempts)
    assert outcomes["found"] >= 1


@pytest.mark.parametrize(("first", "then"), [(FULL, SHORT), (SHORT, FULL)])
def test_switching_forms_mid_send_never_posts_twice(
    harness: Harness, first: str, then: str
) -> None:
    harness.freee_overrides["ref_number_form"] = first
    svc = harness.service()
    link(svc)
    days = make_days(1, START)
    _accept(harness, svc, days)
    # the first POST is stored but its answer lost, then the box is restarted with the
    # other form; the look-up must recognise the deal in the form it was sent in
    harness.emulator.control.add_fault("drop_after", method="POST", path="/api/1/deals",
                                       times=1)
    svc.step()
    assert len(harness.deals()) == 1
    assert (len(harness.deals()[0]["ref_number"]) <= 20) == (first == SHORT)
    svc.close()
    harness.freee_overrides["ref_number_form"] = then
    other = harness.service()
    harness.run(other)
    planned = _planned(other, days)
    counts = _deal_refs(harness, planned)
    assert set(counts.values()) == {1}
    assert len(harness.deals()) == sum(1 for p in planned if p.kind.value == "deal")
    forms = Counter(len(d["ref_number"]) <= 20 for d in harness.deals())
    assert forms[first == SHORT] == 1 and forms[then == SHORT] == len(harness.deals()) - 1
    # a resend of the day with the other form: freee already agrees, nothing is written
    before = harness.emulator.control.request_counts()["endpoints"]
    report = other.resend(REGISTER.register_id, days[0].business_date, days[0].business_date)
    harness.run(other)
    after = harness.emulator.control.request_counts()["endpoints"]
    writes = {k: v["total"] - before.get(k, {"total": 0})["total"]
              for k, v in after.items() if not k.startswith("GET ")}
    assert report.writes == 0 and not any(writes.values()), writes


def test_a_lost_outbox_adopts_deals_in_the_other_form(harness: Harness) -> None:
    harness.freee_overrides["ref_number_form"] = SHORT
    svc = harness.service()
    link(svc)
    days = make_days(1, START)
    _accept(harness, svc, days)
    harness.run(svc)
    sent = len(harness.deals())
    svc.close()
    # the outbox is lost and the box comes back with the full form: a resend adopts
    (harness.state_dir / "outbox.sqlite").unlink()
    for extra in ("outbox.sqlite-wal", "outbox.sqlite-shm"):
        (harness.state_dir / extra).unlink(missing_ok=True)
    harness.services.remove(svc)
    harness.freee_overrides["ref_number_form"] = FULL
    fresh = harness.service()
    report = fresh.resend(REGISTER.register_id, days[0].business_date, days[0].business_date)
    harness.run(fresh)
    assert report.days[0].adopted and not report.days[0].post
    assert len(harness.deals()) == sent
