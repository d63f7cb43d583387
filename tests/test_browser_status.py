"""The status page in a real browser: Debian's headless Chromium driven by Playwright.

No browser is downloaded: Playwright launches /usr/bin/chromium. The tests log in, read a
synced and a held day, resend a day, relink freee through the freee emulator's consent page,
log out, and save the screenshots docs/status-page.md shows (docs/screenshots/).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from web_fixtures import PASSWORD, SECRETS, FakeBackend, running_server

from gatewayd.sim.freee import SECOND_COMPANY_ID, EmulatorServer
from gatewayd.web.server import WebServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
FOREIGN_ORIGINS: list[str] = []  # pages not ours (the emulator): their console is not checked

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"
    ),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="python package playwright missing")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(
        viewport=PHONE, locale="ja-JP", timezone_id="Asia/Tokyo", device_scale_factor=1
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems: list[tuple[str, str]] = []
    page.on(
        "console",
        lambda msg: (
            problems.append((msg.text, msg.location.get("url", "")))
            if msg.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda exc: problems.append((str(exc), page.url)))
    try:
        yield page
    finally:
        context.close()
    # a CSP violation (a blocked stylesheet, say) or a missing file shows on the console
    ours = [p for p in problems if not any(p[1].startswith(o) for o in FOREIGN_ORIGINS)]
    assert ours == []


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def server(tmp_path: Path, backend: FakeBackend) -> Iterator[WebServer]:
    with running_server(tmp_path, backend) as srv:
        yield srv


def log_in(page: Any, url: str) -> None:
    page.goto(url + "/")
    assert page.url.startswith(url + "/login?next=")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url(url + "/")


def body_text(page: Any) -> str:
    return re.sub(r"\s+", " ", page.inner_text("body"))


def test_log_in_and_see_a_synced_day_and_a_held_day(page: Any, server: WebServer) -> None:
    log_in(page, server.url)
    text = body_text(page)
    assert "対応が必要な日が3日あります。" in text
    today = page.locator("#reg-0001-01 .today")
    assert "送信済" in today.inner_text() and "¥392,500" in today.inner_text()
    held = page.locator("#reg-0001-01 li.dayrow.s-held").first
    assert "2025-01-13" in held.inner_text()
    assert "送信後にfreee会計で取引が編集されました" in held.inner_text()
    assert "「freeeの内容を残す」か" in held.inner_text()
    # the stylesheet loaded under the CSP: the header is dark
    colour = page.eval_on_selector("header.top", "e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(32, 38, 46)"
    # nothing wider than a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)

    page.locator("#reg-0001-01 li.dayrow.s-held a.date").first.click()
    page.wait_for_url(server.url + "/day/0001-01/2025-01-13")
    text = body_text(page)
    assert "! 保留" in text
    assert "partner カード会社 ≠ 三井住友カード" in text
    assert page.get_by_role("button", name="freeeの内容を残す").is_visible()
    assert page.get_by_role("button", name="ゲートウェイの内容で送り直す").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "held-day.png"), full_page=True)
    for secret in SECRETS:
        assert secret not in page.content()


def test_resend_a_day(page: Any, server: WebServer, backend: FakeBackend) -> None:
    log_in(page, server.url)
    page.goto(server.url + "/day/0001-01/2025-01-12")
    assert "≠ 金額が一致しません" in body_text(page)
    page.get_by_role("button", name="この日を再送").click()
    page.wait_for_url(server.url + "/day/0001-01/2025-01-12")
    text = body_text(page)
    assert "1日分を再送の対象にしました。自動で送信されます。" in text
    assert "≠" not in text
    assert "freee登録済 ¥330,700" in text
    assert "POS-0001-01-20250112-S-EMONEY POST /api/1/deals 登録済 (201)" in text
    day = date(2025, 1, 12)
    assert [c for c in backend.calls if c[0] == "resend"] == [("resend", "0001-01", day, day)]


def test_relink_through_the_emulator_consent_page(page: Any, tmp_path: Path) -> None:
    with EmulatorServer(tmp_path / "freee.sqlite3") as freee:
        FOREIGN_ORIGINS.append(freee.base_url)
        backend = FakeBackend(freee_base_url=freee.base_url)
        with running_server(tmp_path, backend) as server:
            log_in(page, server.url)
            page.get_by_role("button", name="freee会計と再連携する").click()
            page.wait_for_url(server.url + "/link")
            page.get_by_role("link", name="freee会計で許可する").click()
            page.wait_for_url(re.compile(re.escape(freee.base_url) + "/public_api/authorize.*"))
            assert "許可する" in body_text(page)
            page.check(f"input[name=company_id][value='{SECOND_COMPANY_ID}']")
            page.click("#approve")
            page.wait_for_url(re.compile(re.escape(server.url) + "/link/callback.*"))
            assert "と連携しました。" in body_text(page)
            page.get_by_role("link", name="状況の画面へ戻る").click()
            page.wait_for_url(server.url + "/")
            text = body_text(page)
            assert f"(ID {SECOND_COMPANY_ID})" in text
            assert "あと9日で連携が切れます" not in text
            assert backend.link.company_id == SECOND_COMPANY_ID
            assert backend.access_token not in page.content()


def test_log_out(page: Any, server: WebServer) -> None:
    log_in(page, server.url)
    page.get_by_role("button", name="ログアウト").click()
    page.wait_for_url(server.url + "/login?bye=1")
    assert "ログアウトしました。" in body_text(page)
    page.goto(server.url + "/day/0001-01/2025-01-13")
    assert page.url.startswith(server.url + "/login?next=")


def test_english_on_a_click(page: Any, server: WebServer) -> None:
    log_in(page, server.url)
    page.get_by_role("link", name="English").click()
    assert "3 day(s) need attention." in body_text(page)
    page.goto(server.url + "/day/0001-01/2025-01-10")
    assert "Close the day again on the register (re-close)." in body_text(page)
