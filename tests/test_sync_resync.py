"""Re-sync (freee-mapping.md §7) against the emulator: leave, update, recreate, delete, hold."""

from __future__ import annotations

import argparse
import io
import threading
from datetime import date
from typing import Any

import httpx
import pytest
from sync_fixtures import MAIN_COMPANY, REGISTER, Harness, link, make_days

from gatewayd.cli.resend import resend as resend_command
from gatewayd.sync.service import SyncService
from gatewayd.web.model import HeldCause

pytest_plugins = ["sync_fixtures"]

DAY = date(2025, 8, 1)
BASE_MAPPING = {"tax_names": {"0": "非課売上"}}


def synced(harness: Harness, count: int = 1, **mapping: Any) -> tuple[SyncService, list[Any]]:
    harness.mapping = {**BASE_MAPPING, **mapping}
    svc = harness.service()
    link(svc)
    days = make_days(count, DAY, seed=21)
    for day in days:
        harness.source.add(REGISTER.register_id, day)
        svc.day_accepted(REGISTER, day)
    harness.run(svc)
    assert {d.status.value for d in svc.snapshot().days} == {"synced"}
    return svc, days


def restart(harness: Harness, old: SyncService, **mapping: Any) -> SyncService:
    """The daemon restarts with other settings."""
    old.close()
    harness.services.remove(old)
    harness.mapping = {**BASE_MAPPING, **mapping}
    return harness.service()


def freee_put(harness: Harness, deal: dict[str, Any], **changes: Any) -> None:
    """Someone edits a deal in freee (its first line)."""
    tokens = harness.emulator.obtain_tokens()
    details = []
    for i, d in enumerate(deal["details"]):
        line = {k: d[k] for k in ("id", "tax_code", "account_item_id", "amount")}
        for k in ("item_id", "section_id", "description"):
            if d.get(k) is not None:
                line[k] = d[k]
        if i == 0:
            line.update(changes)
        details.append(line)
    body = {
        "company_id": MAIN_COMPANY,
        "issue_date": deal["issue_date"],
        "type": deal["type"],
        "ref_number": deal["ref_number"],
        "details": details,
    }
    answer = httpx.put(
        f"{harness.emulator.base_url}/api/1/deals/{deal['id']}",
        json=body,
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert answer.status_code == 200, answer.text


def writes_during(harness: Harness, fn: Any) -> list[tuple[str, str]]:
    before = len(harness.transport.requests)
    fn()
    return [
        (m, p)
        for m, p in harness.transport.requests[before:]
        if m != "GET" and p.startswith("/api/1/")
    ]


def test_resend_of_a_synced_day_makes_no_write_call(harness: Harness) -> None:
    svc, days = synced(harness, 2)
    before = {d["id"]: d for d in harness.deals()}
    writes = writes_during(
        harness,
        lambda: (svc.resend(REGISTER.register_id, DAY, days[-1].business_date), harness.run(svc)),
    )
    assert writes == []
    assert {d["id"]: d for d in harness.deals()} == before
    report = svc.resend(REGISTER.register_id, DAY, DAY)
    assert report.days[0].status == "synced" and report.days[0].unchanged
    assert report.writes == 0


def test_settings_change_updates_in_place(harness: Harness) -> None:
    svc, _days = synced(harness)
    ids = {d["ref_number"]: d["id"] for d in harness.deals()}
    svc = restart(harness, svc, section="渋谷店")
    report = svc.resend(REGISTER.register_id, DAY, DAY)
    assert report.days[0].update and not report.days[0].recreate
    writes = writes_during(harness, lambda: harness.run(svc))
    assert writes and all(m == "PUT" for m, _ in writes)
    after = harness.deals()
    assert {d["ref_number"]: d["id"] for d in after} == ids  # same deals, updated
    sections = {s for d in after for s in (line.get("section_id") for line in d["details"])}
    assert len(sections) == 1 and None not in sections
    assert svc.snapshot().days[0].status.value == "synced"
    assert writes_during(harness, lambda: svc.resend(REGISTER.register_id, DAY, DAY)) == []


def test_payment_change_deletes_and_posts_again_under_the_same_ref(harness: Harness) -> None:
    svc, _days = synced(harness)
    old = {d["ref_number"]: d for d in harness.deals()}
    credit = [r for r in old if "-S-" in r and not r.endswith("-S-CASH")][:1]
    assert credit, "the generated day should have non-cash sales"
    method = credit[0].rsplit("-", 1)[-1]
    assert old[credit[0]]["status"] == "unsettled"
    svc = restart(harness, svc, methods={method: {"settlement": "walletable:普通預金"}})
    report = svc.resend(REGISTER.register_id, DAY, DAY)
    assert report.days[0].recreate == credit
    writes = writes_during(harness, lambda: harness.run(svc))
    assert [m for m, _ in writes] == ["DELETE", "POST"]
    new = {d["ref_number"]: d for d in harness.deals()}
    assert set(new) == set(old)
    assert new[credit[0]]["id"] != old[credit[0]]["id"]
    assert new[credit[0]]["status"] == "settled"


def test_granularity_change_deletes_first_then_posts(harness: Harness) -> None:
    svc, _days = synced(harness)
    old = {d["ref_number"] for d in harness.deals()}
    svc = restart(harness, svc, granularity="day")
    plan = svc.plan_for(REGISTER, _days[0])
    report = svc.resend(REGISTER.register_id, DAY, DAY)
    assert plan.granularity.value == "day"  # this generated day fits one deal
    # the sales deals go, and so do the cash postings the day deal now carries (§3.2)
    gone = sorted(old - {p.ref_number for p in plan.postings})
    assert {r.split("-")[4][0] for r in gone} >= {"S"}
    assert sorted(report.days[0].delete) == gone
    writes = writes_during(harness, lambda: harness.run(svc))
    methods = [m for m, _ in writes]
    assert methods == ["DELETE"] * len(gone) + ["POST"]  # deletions go first
    refs = sorted(d["ref_number"] for d in harness.deals())
    assert refs == sorted(p.ref_number for p in plan.postings)


def test_edited_in_freee_is_never_touched_and_held_with_both_versions(harness: Harness) -> None:
    svc, _days = synced(harness)
    deal = next(d for d in harness.deals() if d["ref_number"].endswith("-S-CASH"))
    freee_put(harness, deal, description="税理士が修正")
    svc = restart(harness, svc, section="渋谷店")  # and the settings changed too
    writes = writes_during(
        harness, lambda: (svc.resend(REGISTER.register_id, DAY, DAY), harness.run(svc))
    )
    assert writes == []  # not the edited deal, and nothing else of the held day
    summary = svc.snapshot().days[0]
    assert summary.held is not None and summary.held.cause is HeldCause.EDITED_IN_FREEE
    assert deal["ref_number"] in summary.held.detail
    detail = svc.day_detail(REGISTER.register_id, DAY)
    assert detail is not None and len(detail.edited) == 1
    edited = detail.edited[0]
    assert edited.ref_number == deal["ref_number"]
    assert edited.theirs is not None
    assert edited.theirs["details"][0]["description"] == "税理士が修正"
    assert edited.ours["details"][0]["description"] != "税理士が修正"
    # "keep freee's": the rest of the day follows the settings, the edited deal stays
    svc.resolve_edited(REGISTER.register_id, DAY, "keep_freee")
    writes = writes_during(harness, lambda: harness.run(svc))
    assert writes and all(p != f"/api/1/deals/{deal['id']}" for _, p in writes)
    kept = next(d for d in harness.deals() if d["id"] == deal["id"])
    assert kept["details"][0]["description"] == "税理士が修正"
    assert svc.snapshot().days[0].status.value == "synced"
    assert (
        writes_during(
            harness, lambda: (svc.resend(REGISTER.register_id, DAY, DAY), harness.run(svc))
        )
        == []
    )


def test_post_ours_overwrites_the_edit(harness: Harness) -> None:
    svc, _days = synced(harness)
    deal = next(d for d in harness.deals() if d["ref_number"].endswith("-S-CASH"))
    freee_put(harness, deal, description="手で直した")
    svc.resend(REGISTER.register_id, DAY, DAY)
    assert svc.snapshot().days[0].held is not None
    svc.resolve_edited(REGISTER.register_id, DAY, "post_ours")
    writes = writes_during(harness, lambda: harness.run(svc))
    assert writes == [("PUT", f"/api/1/deals/{deal['id']}")]
    ours = next(d for d in harness.deals() if d["id"] == deal["id"])
    assert ours["details"][0]["description"] != "手で直した"
    assert svc.snapshot().days[0].status.value == "synced"


def test_deleted_in_freee_is_posted_again(harness: Harness) -> None:
    svc, _days = synced(harness)
    deal = harness.deals()[0]
    tokens = harness.emulator.obtain_tokens()
    httpx.delete(
        f"{harness.emulator.base_url}/api/1/deals/{deal['id']}",
        params={"company_id": MAIN_COMPANY},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    ).raise_for_status()
    report = svc.resend(REGISTER.register_id, DAY, DAY)
    assert report.days[0].post == [deal["ref_number"]]
    writes = writes_during(harness, lambda: harness.run(svc))
    assert writes == [("POST", "/api/1/deals")]
    refs = [d["ref_number"] for d in harness.deals()]
    assert sorted(refs) == sorted(set(refs)) and deal["ref_number"] in refs


def test_reclose_resyncs_in_the_worker(harness: Harness) -> None:
    svc, _days = synced(harness)
    svc = restart(harness, svc, tags=["POS"])
    svc.reclose(REGISTER, DAY, 2)
    writes = writes_during(harness, lambda: harness.run(svc))
    assert writes and all(m == "PUT" for m, _ in writes)
    assert all(line.get("tag_ids") for d in harness.deals() for line in d["details"])


def test_lost_outbox_adopts_what_freee_holds(harness: Harness) -> None:
    """The state directory was replaced: a resend finds the day's deals by ref_number and
    adopts them instead of posting duplicates."""
    svc, _days = synced(harness)
    svc.close()
    harness.services.remove(svc)
    (harness.state_dir / "outbox.sqlite").unlink()
    for extra in harness.state_dir.glob("outbox.sqlite-*"):
        extra.unlink()
    svc = harness.service()
    report = svc.resend(REGISTER.register_id, DAY, DAY)
    assert report.days[0].adopted and not report.days[0].post
    assert writes_during(harness, lambda: harness.run(svc)) == []


def args(**kw: Any) -> argparse.Namespace:
    return argparse.Namespace(timeout=30.0, no_wait=False, **kw)


def test_resend_command_with_and_without_a_running_daemon(harness: Harness) -> None:
    svc, _days = synced(harness)
    svc = restart(harness, svc, section="新宿店")
    out, err = io.StringIO(), io.StringIO()
    # no daemon: the command does the work itself, with a progress bar
    code = resend_command(svc, svc.settings, [REGISTER.register_id], DAY, DAY, args(), out, err)
    assert code == 0
    assert "再同期 days [" in err.getvalue() and "update" in out.getvalue()
    assert svc.snapshot().days[0].status.value == "synced"
    # a daemon holds the worker role: the command hands the request over and follows it
    daemon = restart(harness, svc, section="渋谷店")
    daemon.step()
    cli = harness.service()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            daemon.step()
            stop.wait(0.05)

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    try:
        out = io.StringIO()
        code = resend_command(
            cli, cli.settings, [REGISTER.register_id], DAY, DAY, args(), out, io.StringIO()
        )
    finally:
        stop.set()
        worker.join(5)
    assert code == 0, out.getvalue()
    assert "handed to the running daemon" in out.getvalue()
    names = {line.get("section_id") for d in harness.deals() for line in d["details"]}
    assert len(names) == 1
    assert daemon.snapshot().days[0].status.value == "synced"


@pytest.mark.parametrize("fault", ["drop_after", "http_500_after"])
def test_update_that_loses_its_answer_is_not_repeated_blindly(harness: Harness, fault: str) -> None:
    svc, _days = synced(harness)
    svc = restart(harness, svc, section="渋谷店")
    svc.resend(REGISTER.register_id, DAY, DAY)
    harness.emulator.control.add_fault(fault, method="PUT", path="/api/1/deals/{id}", times=1)
    harness.run(svc)
    assert svc.snapshot().days[0].status.value == "synced"
    puts = [p for m, p in harness.transport.requests if m == "PUT"]
    n_deals = len(harness.deals())
    assert len(puts) == n_deals  # the one without answer was looked up, found done


def test_resync_waits_for_a_posting_in_flight(harness: Harness) -> None:
    harness.mapping = dict(BASE_MAPPING)
    harness.freee_overrides["lookup_delay"] = 30.0
    svc = harness.service()
    link(svc)
    day = make_days(1, DAY, seed=21)[0]
    harness.source.add(REGISTER.register_id, day)
    svc.day_accepted(REGISTER, day)
    harness.emulator.control.add_fault("drop_after", method="POST", path="/api/1/deals", times=1)
    svc.step()  # the first POST loses its answer: looked up in 30 s, not before
    svc.reclose(REGISTER, DAY, 2)
    wait = svc.step()
    assert wait >= 1.0  # the re-sync waits for the look-up; no busy loop
    assert len(svc.outbox.open_requests()) == 1
    harness.run(svc)
    assert svc.outbox.open_requests() == []
    refs = [d["ref_number"] for d in harness.deals()]
    planned = [p.ref_number for p in svc.plan_for(REGISTER, day).postings]
    assert sorted(refs) == sorted(planned)
