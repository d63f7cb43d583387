"""The status page of the REAL daemon in headless Chromium (Debian's, through Playwright).

The demo rig runs: register simulator → daemon → freee emulator. Staff log in, see the
synced days and the held day with its reason and fix, and resend a synced day — which
sends nothing to freee, since freee already agrees with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from gatewayd.cli.demo import DEMO_PASSWORD, DemoOptions, DemoRig
from gatewayd.web.model import DayStatus

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="python package playwright missing")


@pytest.fixture()
def rig(tmp_path: Path, today: date) -> Iterator[DemoRig]:
    opts = DemoOptions(directory=tmp_path / "demo", days=3, receipts=10, day_interval=0.6,
                       web_port=0, seed=5, hold_last_day=True,
                       start_date=today - timedelta(days=4))
    with DemoRig(opts) as rig:
        assert rig.wait_finished(90), rig.day_states()
        yield rig


@pytest.fixture()
def page() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP")
        context.set_default_timeout(10_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()


def text_of(page: Any) -> str:
    return re.sub(r"\s+", " ", page.inner_text("body"))


def test_staff_see_synced_and_held_days_and_resend(rig: DemoRig, page: Any) -> None:
    assert rig.gateway is not None and rig.gateway.web is not None
    assert rig.emulator is not None
    url = rig.gateway.web.url
    first, last = rig.start_date, rig.start_date + timedelta(days=2)
    assert rig.day_states()[last] is DayStatus.HELD

    page.goto(url + "/")
    page.get_by_label("パスワード").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url(url + "/")
    text = text_of(page)
    assert "送信済" in text and "保留" in text
    assert "check 2" in text  # the held day's reason, as the checks wrote it
    assert "レジ" in text  # and the step that fixes it

    page.goto(f"{url}/day/0001-01/{last.isoformat()}")
    held = text_of(page)
    assert "保留" in held and "check 2: receipt" in held

    posts_before = rig.emulator.control.count("POST /api/1/deals")
    reads_before = rig.emulator.control.count("GET /api/1/deals")
    page.goto(f"{url}/day/0001-01/{first.isoformat()}")
    assert "POS-0001-01-" in text_of(page)  # the plan and its ref_numbers
    page.get_by_role("button", name="この日を再送").click()
    page.wait_for_url(re.compile(re.escape(url) + "/day/.*"))
    assert "再送の対象にしました" in text_of(page)
    # the sync thread carries the request out: it reads freee's deals of that day
    for _ in range(100):
        if rig.emulator.control.count("GET /api/1/deals") > reads_before:
            break
        page.wait_for_timeout(100)
    assert rig.emulator.control.count("GET /api/1/deals") > reads_before, "resend not done"
    page.wait_for_timeout(500)
    writes = sum(rig.emulator.control.count(f"{m} /api/1/deals") for m in ("POST", "PUT"))
    assert rig.emulator.control.count("POST /api/1/deals") == posts_before
    assert writes == posts_before  # no PUT either: a resend of a synced day writes nothing
    assert rig.day_states()[first] is DayStatus.SYNCED
