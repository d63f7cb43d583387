"""The whole box, end to end: register simulator on a pty → daemon → freee emulator, printer.

This is the demo rig with small figures: generated business days close one after another on
the simulated register, reach freee exactly once with the register's totals, and each close
gets its slip on the simulated printer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest

from gatewayd.cli.demo import DEMO_PASSWORD, DemoOptions, DemoRig
from gatewayd.cli.status import collect, render_text
from gatewayd.protocol.days import analyze_journal
from gatewayd.staff_dates import staff_date
from gatewayd.web.model import DayStatus


@pytest.fixture()
def rig(tmp_path: Path, today: date) -> Iterator[DemoRig]:
    # three days around the suite's "today" (yesterday, today, tomorrow): under the dates
    # step these cross a month's end and the year's (two fiscal years in freee)
    opts = DemoOptions(directory=tmp_path / "demo", days=3, receipts=12, day_interval=0.8,
                       web_port=0, seed=11, start_date=today - timedelta(days=1))
    with DemoRig(opts) as rig:
        yield rig


@pytest.mark.dates
def test_days_flow_from_register_to_freee_once(rig: DemoRig) -> None:
    assert rig.wait_finished(90), rig.day_states()
    assert rig.gateway is not None and rig.register is not None and rig.emulator is not None
    dates = [rig.start_date + timedelta(days=i) for i in range(3)]
    assert all(rig.day_states()[d] is DayStatus.SYNCED for d in dates)

    # every record of the register stored exactly once, and committed back to the register
    store = rig.gateway.store
    records = store.records("0001-01")
    assert [n for n, _ in records] == list(range(1, rig.register.last_record_no + 1))
    assert rig.register.committed == rig.register.last_record_no

    # freee holds each ref_number once, and the sales per day equal the register's Z
    deals = rig.emulator.control.deals()
    refs = Counter(d["ref_number"] for d in deals)
    assert refs and max(refs.values()) == 1, refs
    analysis = analyze_journal(records, after_record_no=0)
    for day in dates:
        result = analysis.day_closing(day)
        assert result is not None and result.day is not None
        stamp = day.strftime("%Y%m%d")
        sales = sum(d["amount"] for d in deals
                    if d["ref_number"].startswith(f"POS-0001-01-{stamp}-S-"))
        assert sales == result.day.close.gross_total

    # one slip per close outcome, with the totals and the freee result
    assert rig.printer is not None
    wanted = [staff_date(day) for day in dates]
    assert rig.printer.printer.wait_for(
        lambda p: all(w in p.decoded().text for w in wanted), timeout=30)
    text = rig.slip_text()
    for day in dates:
        assert f"営業日　{staff_date(day)}" in text
    assert text.count("【送信済】") >= 3

    # gatewayd status reads the same from the stores
    rig.gateway.publish()
    assert rig.settings is not None
    status = collect(rig.settings)
    days = {d["business_date"]: d for d in status["registers"][0]["days"]}
    for day in dates:
        assert days[day.isoformat()]["status"] == "accepted"
        assert days[day.isoformat()]["freee"]["state"] == "synced"
    text = render_text(status)
    assert "printer serial" in text and "ready" in text  # device states reach the status
    assert "link up" in text


def test_status_page_and_metrics_serve_the_live_daemon(rig: DemoRig) -> None:
    assert rig.wait_finished(90)
    assert rig.gateway is not None and rig.gateway.web is not None
    base = rig.gateway.web.url
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/healthz").status_code == 200
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert "gatewayd" in metrics.text
        login = http.get("/login")
        assert login.status_code == 200
        assert DEMO_PASSWORD not in login.text
