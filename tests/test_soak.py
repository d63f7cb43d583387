"""The soak in the normal suite, at a small bounded size, and the bugs it found pinned down.

``bench/soak.py`` drives many business days through the real daemon (a ``gatewayd run``
process that is SIGKILLed and restarted), the register simulator on a pty and the freee
emulator, under every fault it knows; here it runs six days in about a minute. Long runs:
``python bench/soak.py --days 200 --seed S``.

Below it, one test per bug the soak found, each reproducing it deterministically:
- a second close of an accepted business date (check 1 holds it) held the *accepted* day in
  the outbox too, so its postings were never sent;
- two access-token refusals in a row (the second right after a successful refresh) marked
  the freee link expired, so nothing was sent again until someone relinked the box.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest
from sync_fixtures import MAIN_COMPANY, REGISTER, Harness, link, make_days

from gatewayd.cli.demo import approve
from gatewayd.config import parse_settings
from gatewayd.daemon import Gateway
from gatewayd.sim.freee.server import EmulatorServer
from gatewayd.sim.journal_gen import generate_journal, inject_fault
from gatewayd.sim.register import RegisterSimulator
from gatewayd.sync.outbox import Gate
from gatewayd.sync.tokens import LinkState

ROOT = Path(__file__).resolve().parents[1]


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gatewayd_bench_soak", ROOT / "bench/soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.soak
@pytest.mark.timeout(150)
def test_soak_small(tmp_path: Path) -> None:
    soak = load_soak()
    lines: list[str] = []
    opts = soak.SoakOptions(
        days=10, seed=20250, receipts=10, day_gap=2.0, chaos=1.5, held_fraction=0.3,
        reclose_every=3, settle_timeout=60.0, workdir=tmp_path / "soak", log=lines.append,
    )
    report = soak.run_soak(opts)
    print("\n".join(report.lines()))
    assert report.ok, "\n".join(report.lines())
    assert report.duplicates == 0 and report.losses == 0
    assert report.accepted >= 3 and report.held >= 1
    assert report.records > 0 and report.postings > 0
    injected = {name for name, n in report.faults.items() if n}
    # every class of fault happened at least once
    for kind in ("daemon SIGKILL", "daemon restart", "unplugged", "line noise", "line one-shot",
                 "freee ", "rate limit", "freee outage"):
        assert any(kind in name for name in injected), (kind, sorted(injected))


# --- found by the soak -------------------------------------------------------------------------


def test_second_close_of_an_accepted_date_leaves_the_accepted_day_to_post(
    tmp_path: Path,
) -> None:
    """Day 2 of the register carries day 1's business date (check 1 holds it). Both closes
    reach the gateway before it may send anything (not linked yet). Day 1 must still be
    sent, exactly once; day 2 stays held with its reason, in the journal store."""
    lines = generate_journal(17, 2, date(2025, 5, 12), receipts_per_day=8)
    lines = inject_fault(lines, "duplicate_date")
    with EmulatorServer(tmp_path / "freee.sqlite", auto_approve=True) as freee:
        sim = RegisterSimulator(lines)
        sim.start_pty(tmp_path / "register")
        settings = parse_settings({
            "state_dir": str(tmp_path / "state"),
            "poll_interval": 0.05,
            "registers": [{"store_code": "0001", "terminal_no": "01",
                           "port": str(tmp_path / "register")}],
            "mapping": {"tax_names": {"0": "非課売上"}},
            "freee": {"api_base_url": freee.base_url, "auth_base_url": freee.base_url,
                      "client_id": "gatewayd-emulator-client",
                      "client_secret": "gatewayd-emulator-secret",
                      "send_spread": 0.0},
        })
        gateway = Gateway(settings, web=False)
        gateway.start()
        loop = threading.Thread(target=gateway.run, daemon=True)
        loop.start()
        try:
            deadline = time.monotonic() + 30
            while len(gateway.store.days("0001-01")) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            rows = gateway.store.days("0001-01")
            assert sorted(r.status for r in rows) == ["accepted", "held"]
            held = next(r for r in rows if r.status == "held")
            assert held.reason is not None and held.reason.startswith("check 1")
            assert gateway.sync is not None
            start = gateway.sync.link_start()
            gateway.sync.link_finish(approve(start.url), start.state)
            gateway.wake_sync.set()
            day_one = date(2025, 5, 12)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                deals = freee.control.deals(MAIN_COMPANY)
                summary = gateway.sync.snapshot().day("0001-01", day_one)
                if deals and summary is not None and summary.status.value == "synced":
                    break
                time.sleep(0.1)
            outbox_day = gateway.sync.outbox.day("0001-01", day_one)
            assert outbox_day is not None and outbox_day.gate is Gate.OPEN, outbox_day
            refs = Counter(d["ref_number"] for d in freee.control.deals(MAIN_COMPANY))
            assert refs and max(refs.values()) == 1
            assert all(r.startswith("POS-0001-01-20250512-") for r in refs)
            plan = gateway.sync.plan_for(REGISTER, gateway.get_day("0001-01", day_one))  # type: ignore[arg-type]
            assert {p.ref_number for p in plan.postings if p.kind.value == "deal"} == set(refs)
        finally:
            gateway.stop_event.set()
            loop.join(5)
            gateway.stop()
            sim.stop()


def test_access_token_refused_twice_in_a_row_does_not_unlink(harness: Harness) -> None:
    """freee refuses the access token, the gateway refreshes, and freee refuses the new one
    too (a race, a clock skew): a transient failure to retry, not a link to renew by hand —
    only a refresh refused with invalid_grant expires the link (freee-mapping.md section 6)."""
    svc = harness.service()
    link(svc)
    days = make_days(2, date(2025, 3, 1))
    for day in days:
        harness.source.add(REGISTER.register_id, day)
        svc.day_accepted(REGISTER, day)
    harness.emulator.control.add_fault("expire_access_token", method="POST",
                                       path="/api/1/deals", times=2)
    harness.run(svc)
    record = svc.tokens.load()
    assert record is not None and record.state is LinkState.LINKED
    refs = Counter(d["ref_number"] for d in harness.deals())
    planned = [p.ref_number for day in days for p in svc.plan_for(REGISTER, day).postings
               if p.kind.value == "deal"]
    assert sorted(refs) == sorted(planned) and max(refs.values()) == 1


def test_stop_does_not_wait_for_a_long_sync_step(tmp_path: Path) -> None:
    """freee answers slowly and many postings wait: a sync step may run for its whole
    budget (20 s) and more. SIGTERM (``Gateway.stop``) must not wait for it — systemd kills
    the daemon after TimeoutStopSec=30s. Found by the soak: stops of 35 s and more, the main
    thread blocked in ``SyncService.close`` on the step's lock."""
    lines = generate_journal(23, 3, date(2025, 5, 12), receipts_per_day=40)
    with EmulatorServer(tmp_path / "freee.sqlite", auto_approve=True) as freee:
        freee.control.add_fault("latency", method="POST", path="/api/1/deals", ms=700)
        sim = RegisterSimulator(lines)
        sim.start_pty(tmp_path / "register")
        settings = parse_settings({
            "state_dir": str(tmp_path / "state"),
            "poll_interval": 0.05,
            "registers": [{"store_code": "0001", "terminal_no": "01",
                           "port": str(tmp_path / "register")}],
            "mapping": {"tax_names": {"0": "非課売上"}, "granularity": "receipt"},
            "freee": {"api_base_url": freee.base_url, "auth_base_url": freee.base_url,
                      "client_id": "gatewayd-emulator-client",
                      "client_secret": "gatewayd-emulator-secret",
                      "send_spread": 0.0},
        })
        gateway = Gateway(settings, web=False)
        gateway.start()
        assert gateway.sync is not None
        start = gateway.sync.link_start()
        gateway.sync.link_finish(approve(start.url), start.state)
        loop = threading.Thread(target=gateway.run, daemon=True)
        loop.start()
        try:
            deadline = time.monotonic() + 30
            while not freee.control.deals(MAIN_COMPANY) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert freee.control.deals(MAIN_COMPANY), "the sync never started posting"
        finally:
            began = time.monotonic()
            gateway.stop_event.set()
            loop.join(5)
            gateway.stop()
            took = time.monotonic() - began
            sim.stop()
        assert took < 8.0, f"stop took {took:.1f} s"
