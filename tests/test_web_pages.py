"""What the status page shows and what its actions do, over HTTP against a real server.

The backend is the fake shop of tests/web_fixtures.py; the freee link goes through the freee
emulator's real consent page and token endpoint.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from web_fixtures import TODAY, FakeBackend, login, running_server

from gatewayd.errors import GatewayError
from gatewayd.sim.freee import MAIN_COMPANY_ID, SECOND_COMPANY_ID, EmulatorServer
from gatewayd.web.model import DayStatus, PaperState
from gatewayd.web.server import WebServer


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def server(tmp_path: Path, backend: FakeBackend) -> Iterator[WebServer]:
    with running_server(tmp_path, backend) as srv:
        yield srv


@pytest.fixture
def client(server: WebServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def flashes(page: str) -> list[str]:
    return [
        html.unescape(m)
        for m in re.findall(r'<p class="flash [a-z]+" role="status">(.*?)</p>', page)
    ]


def text(page: str) -> str:
    """The visible text, roughly: tags dropped, entities decoded, spaces squeezed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


# ---- overview ------------------------------------------------------------------------------


def test_overview_answers_did_today_go_through(client: httpx.Client) -> None:
    login(client)
    page = text(client.get("/").text)
    assert "対応が必要な日が3日あります" in page
    assert "レジ 0001-01 渋谷店 レジ1" in page
    assert "本日 2025-01-15 ✓ 送信済 freee会計に届いています。" in page
    assert "レジ売上 ¥392,500 freee登録済 ¥392,500" in page
    assert "本日 2025-01-15 – 未閉局" in page  # register 2 has not closed yet
    assert "… 送信中" in page


def test_overview_shows_held_reasons_with_the_step_that_fixes_them(client: httpx.Client) -> None:
    login(client)
    page = text(client.get("/").text)
    assert "レジの精算データに不整合があります" in page
    assert "レジで再精算（再閉局）してください" in page
    assert "check 2: receipt 123 payments 1500 ≠ total 1600 (records 4411, 4418)" in page
    assert "送信後にfreee会計で取引が編集されました" in page
    assert "「freeeの内容を残す」か「ゲートウェイの内容で送り直す」" in page
    assert "設定にある勘定科目・税区分・口座などがfreee会計にありません" in page
    assert "freeeのメッセージ: 指定された取引先が見つかりません。" in page


def test_overview_marks_freee_totals_that_differ(client: httpx.Client) -> None:
    login(client)
    page = text(client.get("/").text)
    # 01-12: sent, but its EMONEY deal was deleted in freee
    assert "2025-01-12 ✓ 送信済 レジ売上 ¥330,700 freee登録済 ¥290,000 ≠ 金額が一致しません" in page
    assert "2025-01-11 ✓ 送信済 レジ売上 ¥269,650 freee登録済 ¥269,650 2025-01-10" in page


def test_overview_shows_link_devices_queue_and_errors(client: httpx.Client) -> None:
    login(client)
    page = text(client.get("/").text)
    assert "状態 連携中 事業所 株式会社サンプル商店 (ID 1234567)" in page
    assert "トークン更新 2025-01-15 21:05 連携の期限 2025-01-25 02:10" in page
    assert "あと9日で連携が切れます。再連携してください。" in page
    assert "レシートプリンター 注意 用紙残りわずか" in page
    assert "ドロワー 正常 閉まっています" in page
    assert "送信待ちの取引 3 保留中の取引 2 次の送信 2025-01-15 23:15" in page
    assert "freee会計に接続できません。自動で再送します。" in page
    assert (
        "token refresh failed: invalid_grant (refresh_token=[秘匿], client_secret=[秘匿])" in page
    )


def test_english_on_request_and_remembered(client: httpx.Client) -> None:
    login(client)
    page = text(client.get("/?lang=en").text)
    assert "3 day(s) need attention." in page
    assert "Today 2025-01-15 ✓ Sent" in page
    assert "Close the day again on the register (re-close)." in page
    assert 'lang="en"' in client.get("/").text  # the cookie keeps it
    assert "送信済" in client.get("/?lang=ja").text


def test_overview_refreshes_itself_without_javascript(client: httpx.Client) -> None:
    login(client)
    page = client.get("/").text
    assert '<meta http-equiv="refresh" content="60">' in page
    assert "<script" not in page


# ---- day page ------------------------------------------------------------------------------


def test_day_page_shows_the_plan_json_ids_and_history(
    client: httpx.Client, backend: FakeBackend
) -> None:
    login(client)
    page = client.get("/day/0001-01/2025-01-14").text
    shown = json.loads(html.unescape(re.search(r'<pre class="json">(.*?)</pre>', page, re.S)[1]))
    detail = backend.day("0001-01", TODAY.replace(day=14))
    assert detail is not None
    assert shown == detail.plan  # the section 8 JSON, exactly
    assert shown["postings"][0]["ref_number"] == "POS-0001-01-20250114-S-CASH"
    visible = text(page)
    for posting in detail.postings:
        assert f"{posting.ref_number} 取引 ¥{posting.amount:,} 送信済 {posting.freee_id}" in visible
    assert "POST /api/1/deals 登録済 (201)" in visible
    assert "課税売上8%（軽）" in visible
    assert "決済: 現金 ¥167,300" in visible and "決済: 未決済" in visible


def test_edited_day_shows_both_versions_side_by_side(client: httpx.Client) -> None:
    login(client)
    page = text(client.get("/day/0001-01/2025-01-13").text)
    assert "freee会計で編集された取引" in page
    assert "項目 ゲートウェイの内容 freee会計の現在の内容" in page
    assert "partner カード会社 ≠ 三井住友カード" in page
    assert "details[0].amount 108450 ≠ 103450" in page
    assert "details[0].description 渋谷店 2025-01-13 クレジット ≠ カード売上（手修正）" in page
    assert "account_item 売上高 売上高" in page  # unchanged fields in the full comparison
    assert "freeeの内容を残す" in page and "ゲートウェイの内容で送り直す" in page
    assert "この日を再送" not in page  # a resend cannot fix it; the choice does


def test_unknown_day_and_bad_paths(client: httpx.Client) -> None:
    login(client)
    assert client.get("/day/0001-01/1999-01-01").status_code == 404
    assert client.get("/day/0001-09/2025-01-13").status_code == 404
    assert client.get("/day/0001-01/2025-13-40").status_code == 404
    assert client.get("/day/..%2f..%2fetc/2025-01-13").status_code == 404
    assert client.get("/nowhere").status_code == 404


def test_open_day_has_no_plan_yet(client: httpx.Client) -> None:
    login(client)
    page = text(client.get("/day/0001-02/2025-01-15").text)
    assert "閉局前のため、送信内容はまだありません。" in page
    assert "この日を再送" not in page


# ---- actions -------------------------------------------------------------------------------


def test_resend_a_day_whose_deal_was_deleted_in_freee(
    client: httpx.Client, backend: FakeBackend
) -> None:
    token = login(client)
    resp = client.post(
        "/resend",
        data={
            "csrf": token,
            "register_id": "0001-01",
            "start": "2025-01-12",
            "end": "2025-01-12",
            "back": "/day/0001-01/2025-01-12",
        },
    )
    assert resp.status_code == 303
    assert resp.headers["location"] == "/day/0001-01/2025-01-12"
    page = client.get("/day/0001-01/2025-01-12").text
    assert "1日分を再送の対象にしました。自動で送信されます。" in flashes(page)
    visible = text(page)
    assert "freee登録済 ¥330,700" in visible and "≠" not in visible
    assert "POS-0001-01-20250112-S-CASH GET /api/1/deals (re-sync) 変更なし" in visible
    assert (
        "POS-0001-01-20250112-S-EMONEY GET /api/1/deals (look-up) freeeになし（送信へ）" in visible
    )
    # the flash shows once
    assert flashes(client.get("/day/0001-01/2025-01-12").text) == []


def test_resend_a_range(client: httpx.Client, backend: FakeBackend) -> None:
    token = login(client)
    client.post(
        "/resend",
        data={"csrf": token, "register_id": "0001-02", "start": "2025-01-01", "end": "2025-01-31"},
    )
    assert ("resend", "0001-02", TODAY.replace(day=1), TODAY.replace(day=31)) in backend.calls
    page = client.get("/").text
    assert "3日分を再送の対象にしました。自動で送信されます。" in flashes(page)
    # the day held for a missing master was released and sent
    assert "設定にある勘定科目" not in text(page)


@pytest.mark.parametrize(
    ("start", "end"),
    [("2025-01-13", "2025-01-12"), ("2024-01-01", "2025-01-13"), ("yesterday", "2025-01-13")],
)
def test_resend_refuses_bad_ranges(
    client: httpx.Client, backend: FakeBackend, start: str, end: str
) -> None:
    token = login(client)
    client.post(
        "/resend", data={"csrf": token, "register_id": "0001-01", "start": start, "end": end}
    )
    assert not [c for c in backend.calls if c[0] == "resend"]
    assert any("日付の範囲が正しくありません" in f for f in flashes(client.get("/").text))


def test_resend_of_a_range_without_days(client: httpx.Client) -> None:
    token = login(client)
    client.post(
        "/resend",
        data={"csrf": token, "register_id": "0001-01", "start": "2024-06-01", "end": "2024-06-30"},
    )
    assert "その期間にゲートウェイが保存している日はありません。" in flashes(client.get("/").text)


@pytest.mark.parametrize(
    ("choice", "flash", "freee_total"),
    [
        ("keep_freee", "freee会計の内容を残しました。", "¥326,100"),
        ("post_ours", "ゲートウェイの内容で送り直します。", "¥331,100"),
    ],
)
def test_resolve_an_edited_day(
    client: httpx.Client, backend: FakeBackend, choice: str, flash: str, freee_total: str
) -> None:
    token = login(client)
    resp = client.post("/day/0001-01/2025-01-13/resolve", data={"csrf": token, "choice": choice})
    assert resp.status_code == 303
    page = client.get("/day/0001-01/2025-01-13").text
    assert flash in flashes(page)
    visible = text(page)
    assert "✓ 送信済" in visible
    assert f"freee登録済 {freee_total}" in visible
    assert ("resolve_edited", "0001-01", TODAY.replace(day=13), choice) in backend.calls


def test_resolve_with_an_unknown_choice_is_refused(
    client: httpx.Client, backend: FakeBackend
) -> None:
    token = login(client)
    resp = client.post("/day/0001-01/2025-01-13/resolve", data={"csrf": token, "choice": "both"})
    assert resp.status_code == 400
    assert not [c for c in backend.calls if c[0] == "resolve_edited"]


def test_a_refused_action_shows_the_staff_message(
    client: httpx.Client, backend: FakeBackend
) -> None:
    token = login(client)
    client.post("/day/0001-01/2025-01-14/resolve", data={"csrf": token, "choice": "keep_freee"})
    assert "この日は「freeeで編集」による保留ではありません。" in flashes(
        client.get("/day/0001-01/2025-01-14").text
    )


def test_print_a_test_slip_and_kick_the_drawer(client: httpx.Client, backend: FakeBackend) -> None:
    token = login(client)
    assert client.post("/devices/test-slip", data={"csrf": token}).status_code == 303
    assert backend.test_slips == 1
    assert "テスト印刷を送りました。" in flashes(client.get("/").text)
    client.post("/devices/drawer", data={"csrf": token})
    page = client.get("/")
    assert "ドロワーを開きました。" in flashes(page.text)
    assert "ドロワー 正常 開いています" in text(page.text)


def test_printer_out_of_paper_is_said_in_japanese(
    client: httpx.Client, backend: FakeBackend
) -> None:
    backend.printer = replace(backend.printer, paper=PaperState.OUT)
    token = login(client)
    client.post("/devices/test-slip", data={"csrf": token})
    page = client.get("/").text
    assert "レシートプリンターと通信できません。電源とケーブルを確認してください。" in flashes(page)
    assert "レシートプリンター 異常 用紙切れ" in text(page)


def test_a_crashing_backend_gives_a_generic_page(
    client: httpx.Client, backend: FakeBackend
) -> None:
    login(client)

    def broken() -> None:
        raise RuntimeError("database is locked: /var/lib/gatewayd/journal.sqlite3")

    backend.overview = broken  # type: ignore[assignment,method-assign]
    resp = client.get("/")
    assert resp.status_code == 500
    assert "エラーが発生しました" in resp.text
    assert "journal.sqlite3" not in resp.text
    assert client.get("/healthz").status_code == 200  # healthz reads metrics()


# ---- freee link through the emulator -------------------------------------------------------


@pytest.fixture
def freee(tmp_path: Path) -> Iterator[EmulatorServer]:
    with EmulatorServer(tmp_path / "freee.sqlite3") as emu:
        yield emu


@pytest.fixture
def linked_client(
    tmp_path: Path, freee: EmulatorServer
) -> Iterator[tuple[httpx.Client, FakeBackend]]:
    backend = FakeBackend(freee_base_url=freee.base_url)
    with running_server(tmp_path, backend) as srv, httpx.Client(base_url=srv.url) as c:
        yield c, backend


def _authorize_url(client: httpx.Client, token: str, mode: str) -> str:
    resp = client.post("/link/start", data={"csrf": token, "mode": mode})
    assert resp.status_code == 303 and resp.headers["location"] == "/link"
    page = client.get("/link").text
    match = re.search(r'id="authorize" href="([^"]+)"', page)
    assert match
    return html.unescape(match[1])


def _approve(url: str, company_id: int) -> httpx.Response:
    """Press 許可する on the emulator's consent page (as obtain_code does)."""
    with httpx.Client() as http:
        page = http.get(url)
        assert page.status_code == 200 and "許可する" in page.text
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        base = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
        return http.post(
            f"{base}/public_api/authorize",
            data={**query, "action": "approve", "company_id": str(company_id)},
        )


def test_relink_through_the_consent_page_and_callback(
    linked_client: tuple[httpx.Client, FakeBackend],
) -> None:
    client, backend = linked_client
    token = login(client)
    url = _authorize_url(client, token, "callback")
    params = parse_qs(urlsplit(url).query)
    assert params["redirect_uri"] == [str(client.base_url).rstrip("/") + "/link/callback"]
    assert params["code_challenge_method"] == ["S256"]
    redirect = _approve(url, SECOND_COMPANY_ID)
    assert redirect.status_code == 302
    callback = redirect.headers["location"]
    assert callback.startswith(str(client.base_url).rstrip("/") + "/link/callback?")
    # freee's redirect comes from another site: SameSite=Strict sends no cookie with it
    with httpx.Client() as cookieless:
        done = cookieless.get(callback)
    assert done.status_code == 200, done.text
    assert backend.link.company_id == SECOND_COMPANY_ID
    assert f"freee会計（{backend.link.company_name}）と連携しました。" in text(done.text)
    assert backend.access_token not in done.text and backend.refresh_token not in done.text
    # the state was single use
    again = client.get(urlsplit(callback).path + "?" + urlsplit(callback).query)
    assert again.status_code == 400
    assert "連携の手続きが無効か期限切れです" in again.text
    overview = text(client.get("/").text)
    assert f"事業所 {backend.link.company_name} (ID {SECOND_COMPANY_ID})" in overview
    assert "あと9日で連携が切れます" not in overview


def test_link_with_a_pasted_code(linked_client: tuple[httpx.Client, FakeBackend]) -> None:
    client, backend = linked_client
    token = login(client)
    url = _authorize_url(client, token, "oob")
    assert parse_qs(urlsplit(url).query)["redirect_uri"] == ["urn:ietf:wg:oauth:2.0:oob"]
    shown = _approve(url, MAIN_COMPANY_ID)
    code = re.search(r'id="authorization-code">([^<]+)<', shown.text)
    assert code
    state = parse_qs(urlsplit(url).query)["state"][0]
    done = client.post("/link/finish", data={"csrf": token, "state": state, "code": code[1]})
    assert done.status_code == 200
    assert "と連携しました。" in done.text
    assert backend.link.company_id == MAIN_COMPANY_ID


def test_callback_with_a_forged_state_is_refused(
    linked_client: tuple[httpx.Client, FakeBackend],
) -> None:
    client, backend = linked_client
    token = login(client)
    _authorize_url(client, token, "callback")
    resp = client.get("/link/callback?code=stolen&state=made-up")
    assert resp.status_code == 400
    assert not [c for c in backend.calls if c[0] == "link_finish"]


def test_a_refused_code_is_reported(linked_client: tuple[httpx.Client, FakeBackend]) -> None:
    client, _ = linked_client
    token = login(client)
    url = _authorize_url(client, token, "callback")
    state = parse_qs(urlsplit(url).query)["state"][0]
    resp = client.get(f"/link/callback?code=not-a-real-code&state={state}")
    assert resp.status_code == 502
    assert "連携できませんでした。" in resp.text
    assert "freee会計との連携に失敗しました。もう一度やり直してください。" in resp.text


def test_denied_consent_is_reported(linked_client: tuple[httpx.Client, FakeBackend]) -> None:
    client, _ = linked_client
    token = login(client)
    url = _authorize_url(client, token, "callback")
    state = parse_qs(urlsplit(url).query)["state"][0]
    resp = client.get(f"/link/callback?error=access_denied&state={state}")
    assert resp.status_code == 400
    assert "freee会計で許可されませんでした" in resp.text


def test_link_page_without_a_started_link(client: httpx.Client) -> None:
    login(client)
    assert client.get("/link").status_code == 400


def test_link_start_failure_is_shown(client: httpx.Client, backend: FakeBackend) -> None:
    def refuse(redirect_uri: str) -> str:
        raise GatewayError("no client id", staff_message="freeeアプリの設定がありません。")

    backend.link_start = refuse  # type: ignore[method-assign]
    token = login(client)
    resp = client.post("/link/start", data={"csrf": token, "mode": "callback"})
    assert resp.headers["location"] == "/#freee"
    assert "freeeアプリの設定がありません。" in flashes(client.get("/").text)


# ---- machine interfaces --------------------------------------------------------------------


def test_api_status_json(client: httpx.Client) -> None:
    login(client)
    data = client.get("/api/status").json()
    assert data["attention"] == 3
    reg = data["registers"][0]
    assert reg["today"]["status"] == "synced"
    assert reg["today"]["register_total"] == 392_500
    assert reg["recent"][1]["held"]["cause"] == "edited_in_freee"
    assert data["link"]["state"] == "linked"
    assert data["link"]["expires_at"] == "2025-01-25T02:10:00+09:00"
    assert data["devices"]["printer"]["paper"] == "near_end"
    assert "[秘匿]" in data["errors"][2]["message"]


def test_metrics_in_prometheus_text_format(client: httpx.Client, backend: FakeBackend) -> None:
    body = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(body)}
    days = {s.labels["status"]: s.value for s in families["gatewayd_days"].samples}
    assert days == {"synced": 5, "sending": 1, "held": 3, "open": 1}
    postings = {s.labels["state"]: s.value for s in families["gatewayd_postings"].samples}
    assert postings == {"pending": 3, "sending": 0, "done": 18, "held": 2}
    link = {s.labels["state"]: s.value for s in families["gatewayd_freee_link_state"].samples}
    assert link["linked"] == 1 and link["expired"] == 0
    expiry = families["gatewayd_freee_token_expiry_timestamp_seconds"].samples[0].value
    assert expiry == backend.link.expires_at.timestamp()  # type: ignore[union-attr]
    assert families["gatewayd_last_sync_timestamp_seconds"].samples[0].value > 0
    up = {
        (s.labels["device"], s.labels["id"]): s.value
        for s in families["gatewayd_device_up"].samples
    }
    assert up == {
        ("register", "0001-01"): 1,
        ("register", "0001-02"): 1,
        ("printer", "printer"): 1,
        ("drawer", "drawer"): 1,
    }
    paper = {s.labels["state"]: s.value for s in families["gatewayd_printer_paper"].samples}
    assert paper["near_end"] == 1
    link_errors = {
        s.labels["register"]: s.value
        for s in families["gatewayd_register_link_errors"].samples
        if s.name.endswith("_total")
    }
    assert link_errors == {"0001-01": 0, "0001-02": 4}
    freee_errors = {
        s.labels["kind"]: s.value
        for s in families["gatewayd_freee_errors"].samples
        if s.name.endswith("_total")
    }
    assert freee_errors == {"FreeeRefused": 1, "FreeeRetryLater": 3}


def test_metrics_follow_the_backend(client: httpx.Client, backend: FakeBackend) -> None:
    token = login(client)
    client.post(
        "/resend",
        data={"csrf": token, "register_id": "0001-01", "start": "2025-01-12", "end": "2025-01-12"},
    )
    client.get("/")  # the fake delivers on the next read
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    postings = {s.labels["state"]: s.value for s in families["gatewayd_postings"].samples}
    assert postings["done"] == 18  # a resend of a sent day posts the missing deal in place
    assert backend.day("0001-01", TODAY.replace(day=12)).summary.status is DayStatus.SYNCED  # type: ignore[union-attr]


def test_only_the_newest_link_request_counts(client: httpx.Client, backend: FakeBackend) -> None:
    from web_fixtures import consent_code

    token = login(client)
    first = parse_qs(urlsplit(_authorize_url(client, token, "callback")).query)["state"][0]
    second = parse_qs(urlsplit(_authorize_url(client, token, "callback")).query)["state"][0]
    stale = client.get(f"/link/callback?code={consent_code(first)}&state={first}")
    assert stale.status_code == 400
    fresh = client.get(f"/link/callback?code={consent_code(second)}&state={second}")
    assert fresh.status_code == 200
    assert "freee会計（株式会社サンプル商店）と連携しました。" in text(fresh.text)
