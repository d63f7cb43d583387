"""The status page's guards: login, sessions, CSRF, rate limit, headers, secrets, binding.

Every test talks HTTP to a real ``WebServer`` on 127.0.0.1 over the fake backend
(tests/web_fixtures.py) and checks that a refused action never reached the backend.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_fixtures import (
    ACCESS_TOKEN,
    CLIENT_SECRET,
    METRICS_TOKEN,
    PASSWORD,
    REFRESH_TOKEN,
    SECRETS,
    FakeBackend,
    FakeClock,
    consent_code,
    csrf_of,
    fast_hash,
    login,
    running_server,
)

from gatewayd.errors import ConfigError
from gatewayd.web.app import CSP, LOGIN_COOKIE, SESSION_COOKIE
from gatewayd.web.password import password_path, write_password
from gatewayd.web.security import ABSOLUTE_LIFETIME, LoginLimiter
from gatewayd.web.server import WebServer, check_bind_allowed
from gatewayd.web.settings import Secret, WebSettings

ACTIONS = [
    ("/resend", {"register_id": "0001-01", "start": "2025-01-12", "end": "2025-01-12"}),
    ("/day/0001-01/2025-01-13/resolve", {"choice": "keep_freee"}),
    ("/devices/test-slip", {}),
    ("/devices/drawer", {}),
    ("/link/start", {"mode": "callback"}),
    ("/link/finish", {"code": "x", "state": "y"}),
    ("/logout", {}),
]
ACTION_CALLS = {"resend", "resolve_edited", "print_test_slip", "kick_drawer", "link_start"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def server(tmp_path: Path, backend: FakeBackend, clock: FakeClock) -> Iterator[WebServer]:
    with running_server(tmp_path, backend, clock=clock) as srv:
        yield srv


@pytest.fixture
def client(server: WebServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def action_calls(backend: FakeBackend) -> list[tuple[Any, ...]]:
    return [c for c in backend.calls if c[0] in ACTION_CALLS]


# ---- login required ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/day/0001-01/2025-01-13", "/link"])
def test_pages_without_login_go_to_the_login_page(client: httpx.Client, path: str) -> None:
    resp = client.get(path)
    assert resp.status_code == 303
    assert resp.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize(("path", "data"), ACTIONS)
def test_post_without_login_is_refused(
    client: httpx.Client, backend: FakeBackend, path: str, data: dict[str, str]
) -> None:
    page = client.get("/login")  # an anonymous session with a real CSRF token
    resp = client.post(path, data={**data, "csrf": csrf_of(page.text)})
    assert resp.status_code == 403
    assert "ログインしていないため操作できません" in resp.text
    assert action_calls(backend) == []


def test_api_status_needs_login_or_bearer(client: httpx.Client) -> None:
    resp = client.get("/api/status")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    wrong = client.get("/api/status", headers={"authorization": "Bearer " + "x" * 30})
    assert wrong.status_code == 401
    ok = client.get("/api/status", headers={"authorization": "Bearer " + METRICS_TOKEN})
    assert ok.status_code == 200
    assert ok.json()["registers"][0]["register_id"] == "0001-01"
    login(client)
    assert client.get("/api/status").status_code == 200


def test_healthz_is_open_and_says_nothing_else(client: httpx.Client) -> None:
    resp = client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


def test_metrics_from_a_remote_client_needs_the_token(server: WebServer) -> None:
    """Loopback may scrape; a client on the shop network needs the bearer token."""

    async def scrape(headers: dict[str, str]) -> httpx.Response:
        transport = httpx.ASGITransport(app=server.page.app, client=("192.168.1.50", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://192.168.1.20") as c:
            return await c.get("/metrics", headers=headers)

    refused = asyncio.run(scrape({}))
    assert refused.status_code == 401
    wrong = asyncio.run(scrape({"authorization": "Bearer not-the-token-at-all-xxxxxxx"}))
    assert wrong.status_code == 401
    allowed = asyncio.run(scrape({"authorization": "Bearer " + METRICS_TOKEN}))
    assert allowed.status_code == 200
    assert "gatewayd_days" in allowed.text


def test_metrics_from_loopback_needs_no_token(client: httpx.Client) -> None:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")


# ---- CSRF ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "data"), ACTIONS)
def test_post_without_csrf_is_refused(
    client: httpx.Client, backend: FakeBackend, path: str, data: dict[str, str]
) -> None:
    login(client)
    resp = client.post(path, data=data)
    assert resp.status_code == 403
    assert action_calls(backend) == []
    assert client.get("/").status_code == 200  # still logged in (logout needs the token too)


@pytest.mark.parametrize(("path", "data"), ACTIONS)
def test_post_with_a_wrong_csrf_is_refused(
    client: httpx.Client, backend: FakeBackend, path: str, data: dict[str, str]
) -> None:
    token = login(client)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    resp = client.post(path, data={**data, "csrf": forged})
    assert resp.status_code == 403
    assert "送信を受け付けられませんでした" in resp.text
    assert action_calls(backend) == []


def test_csrf_token_of_another_session_is_refused(server: WebServer, backend: FakeBackend) -> None:
    with (
        httpx.Client(base_url=server.url) as alice,
        httpx.Client(base_url=server.url) as mallory,
    ):
        alice_token = login(alice)
        login(mallory)
        resp = mallory.post("/devices/drawer", data={"csrf": alice_token})
        assert resp.status_code == 403
        assert action_calls(backend) == []


def test_cross_origin_post_is_refused_even_with_a_token(
    client: httpx.Client, backend: FakeBackend
) -> None:
    token = login(client)
    resp = client.post(
        "/devices/drawer", data={"csrf": token}, headers={"origin": "http://evil.example"}
    )
    assert resp.status_code == 403
    assert action_calls(backend) == []


def test_post_with_login_and_csrf_is_done(client: httpx.Client, backend: FakeBackend) -> None:
    token = login(client)
    resp = client.post("/devices/drawer", data={"csrf": token})
    assert resp.status_code == 303
    assert action_calls(backend) == [("kick_drawer",)]


def test_login_form_needs_its_csrf_token(client: httpx.Client) -> None:
    client.get("/login")
    resp = client.post("/login", data={"password": PASSWORD, "csrf": "forged"})
    assert resp.status_code == 403
    assert client.get("/").status_code == 303  # not logged in


# ---- sessions ------------------------------------------------------------------------------


def test_logout_ends_the_session_server_side(
    server: WebServer, client: httpx.Client, backend: FakeBackend
) -> None:
    token = login(client)
    old_cookie = client.cookies[SESSION_COOKIE]
    resp = client.post("/logout", data={"csrf": token})
    assert resp.status_code == 303
    assert resp.headers["location"] == "/login?bye=1"
    assert "ログアウトしました" in client.get(resp.headers["location"]).text
    assert client.get("/").status_code == 303
    # replaying the old cookie and token after logout: refused
    with httpx.Client(base_url=server.url, cookies={SESSION_COOKIE: old_cookie}) as replay:
        assert replay.get("/").status_code == 303
        assert replay.get("/api/status").status_code == 401
        refused = replay.post("/devices/drawer", data={"csrf": token})
        assert refused.status_code == 403
    assert action_calls(backend) == []


def test_login_issues_a_fresh_session_id(client: httpx.Client) -> None:
    planted = "planted-by-an-attacker-" + "x" * 30
    page = client.get("/login")
    resp = client.post(
        "/login",
        data={"csrf": csrf_of(page.text), "password": PASSWORD},
        headers={"cookie": f"{LOGIN_COOKIE}={page.cookies[LOGIN_COOKIE]}; "
                 f"{SESSION_COOKIE}={planted}"},
    )
    assert resp.status_code == 303
    after = resp.cookies[SESSION_COOKIE]
    assert after != planted
    assert len(after) >= 40  # 256-bit token_urlsafe


def test_session_expires_after_its_idle_lifetime(client: httpx.Client, clock: FakeClock) -> None:
    login(client)
    clock.advance(29 * 60)
    assert client.get("/").status_code == 200  # activity keeps it alive
    clock.advance(29 * 60)
    assert client.get("/").status_code == 200
    clock.advance(30 * 60 + 1)
    assert client.get("/").status_code == 303


def test_session_ends_after_the_absolute_lifetime(client: httpx.Client, clock: FakeClock) -> None:
    login(client)
    step = 20 * 60
    alive = 0.0
    while client.get("/").status_code == 200 and alive < 2 * ABSOLUTE_LIFETIME:
        clock.advance(step)
        alive += step
    assert ABSOLUTE_LIFETIME <= alive <= ABSOLUTE_LIFETIME + step


def test_a_new_password_ends_every_session(tmp_path: Path, client: httpx.Client) -> None:
    login(client)
    write_password(password_path(tmp_path), fast_hash("another-password-9"))
    assert client.get("/").status_code == 303
    assert login(client, "another-password-9")


def test_cookies_are_httponly_and_samesite_strict(client: httpx.Client) -> None:
    resp = client.get("/login")
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith(LOGIN_COOKIE + "=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    lang = client.get("/login?lang=en").headers.get_list("set-cookie")
    assert any("gatewayd_lang=en" in c and "HttpOnly" in c for c in lang)
    resp = client.post("/login", data={"csrf": csrf_of(resp.text), "password": PASSWORD})
    session = next(c for c in resp.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in session and "samesite=strict" in session.lower()
    assert "secure" not in session.lower()  # plain HTTP on loopback


def test_login_redirect_never_leaves_the_site(client: httpx.Client) -> None:
    page = client.get("/login?next=//evil.example/x")
    resp = client.post(
        "/login",
        data={"csrf": csrf_of(page.text), "password": PASSWORD, "next": "//evil.example/x"},
    )
    assert resp.status_code == 303
    assert resp.headers["location"] == "/"


# ---- rate limit ----------------------------------------------------------------------------


def _try(client: httpx.Client, password: str) -> httpx.Response:
    page = client.get("/login")
    return client.post("/login", data={"csrf": csrf_of(page.text), "password": password})


def test_login_rate_limit_per_client_holds(client: httpx.Client, clock: FakeClock) -> None:
    for _ in range(5):
        assert _try(client, "wrong-password").status_code == 401
    blocked = _try(client, PASSWORD)  # even the right password waits
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "ログインの試行が多すぎます" in blocked.text
    assert client.get("/").status_code == 303
    clock.advance(20)
    assert _try(client, PASSWORD).status_code == 429  # loopback waits at most 30 s
    clock.advance(11)
    assert _try(client, PASSWORD).status_code == 303
    assert client.get("/").status_code == 200


def test_a_success_clears_the_client_failures(client: httpx.Client) -> None:
    for _ in range(4):
        assert _try(client, "wrong-password").status_code == 401
    assert _try(client, PASSWORD).status_code == 303
    client.cookies.clear()  # same address, logged out again
    for _ in range(4):
        assert _try(client, "wrong-password").status_code == 401
    assert _try(client, PASSWORD).status_code == 303


def test_lockout_is_per_client_with_backoff() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(free=5, base=60, max_wait=3600, clock=clock)
    for i in range(30):  # a spray: five attempts each from 30 addresses
        for _ in range(5):
            assert limiter.acquire(f"10.0.0.{i}") is None
    assert limiter.acquire("10.0.0.200") is None  # a fresh address is not locked out
    assert limiter.acquire("127.0.0.1", loopback=True) is None  # nor the installer
    waits = []
    for _ in range(8):  # one address keeps trying: each lockout doubles, up to an hour
        wait = limiter.retry_after("10.0.0.1")
        assert wait is not None
        waits.append(wait)
        assert limiter.acquire("10.0.0.1") == wait  # refused, not counted
        clock.advance(wait)
        assert limiter.acquire("10.0.0.1") is None
    assert waits[:4] == [60, 120, 240, 480]
    assert waits[-1] == 3600


# ---- headers -------------------------------------------------------------------------------


def _assert_guard_headers(resp: httpx.Response) -> None:
    h = resp.headers
    assert h["content-security-policy"] == CSP, resp.url
    assert "frame-ancestors 'none'" in h["content-security-policy"]
    assert "script-src" not in h["content-security-policy"]  # default-src 'none' covers it
    assert h["x-content-type-options"] == "nosniff"
    assert h["referrer-policy"] == "no-referrer"
    assert h["x-frame-options"] == "DENY"
    assert "server" not in h


def test_security_headers_on_every_kind_of_response(
    server: WebServer, client: httpx.Client
) -> None:
    anonymous = [
        client.get("/login"),
        client.get("/"),
        client.get("/healthz"),
        client.get("/metrics"),
        client.get("/api/status"),
        client.get("/static/style.css"),
        client.get("/no/such/page"),
        client.post("/devices/drawer", data={}),
        client.get("/", headers={"host": "rebinding.evil.example"}),
    ]
    token = login(client)
    logged_in = [
        client.get("/"),
        client.get("/day/0001-01/2025-01-13"),
        client.get("/day/0001-01/1999-01-01"),
        client.post("/resend", data={"csrf": token, "register_id": "bad"}),
    ]
    for resp in anonymous + logged_in:
        _assert_guard_headers(resp)
    assert client.get("/").headers["cache-control"] == "no-store"


def test_unknown_host_names_are_refused(client: httpx.Client) -> None:
    """A DNS-rebinding page reaches the box under its own name: refused."""
    resp = client.get("/login", headers={"host": "rebinding.evil.example"})
    assert resp.status_code == 400
    assert client.get("/login", headers={"host": "localhost:8080"}).status_code == 200


def test_pages_are_autoescaped(client: httpx.Client, backend: FakeBackend) -> None:
    from dataclasses import replace

    backend.link = replace(backend.link, company_name='<script>alert("x")</script>')
    login(client)
    page = client.get("/").text
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


# ---- secrets -------------------------------------------------------------------------------


def test_the_fake_really_carries_secrets(backend: FakeBackend) -> None:
    """So that the scan below can fail: the backend's texts hold tokens a page could leak."""
    texts = [e.message for e in backend.overview().errors]
    detail = backend.day("0001-02", date(2025, 1, 14))
    assert detail is not None
    texts += [a.message or "" for a in detail.attempts]
    joined = "\n".join(texts)
    assert REFRESH_TOKEN in joined and CLIENT_SECRET in joined and ACCESS_TOKEN in joined


def _crawl(client: httpx.Client, start: str) -> dict[str, httpx.Response]:
    """Every same-site GET link reachable from ``start`` (no actions: they are POSTs)."""
    seen: dict[str, httpx.Response] = {}
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        resp = client.get(path)
        seen[path] = resp
        if "text/html" in resp.headers.get("content-type", ""):
            for href in re.findall(r'href="([^"]+)"', resp.text):
                href = href.replace("&amp;", "&")
                if href.startswith("?"):
                    href = path.split("?")[0] + href
                if href.startswith("/") and not href.startswith("//") and href not in seen:
                    todo.append(href.split("#")[0])
    return seen


def _assert_no_secret(resp: httpx.Response) -> None:
    body = resp.text
    for secret in (*SECRETS, PASSWORD):
        assert secret not in body, f"{secret[:8]}… leaked in {resp.request.method} {resp.url}"
        for name, value in resp.headers.items():
            if name != "set-cookie":
                assert secret not in value, f"{secret[:8]}… leaked in header {name}"


def test_no_token_appears_in_any_response(server: WebServer, backend: FakeBackend) -> None:
    with httpx.Client(base_url=server.url) as client:
        responses = list(_crawl(client, "/login").values())
        token = login(client)
        responses += _crawl(client, "/").values()
        responses += _crawl(client, "/?lang=en").values()
        assert any("/day/0001-02/2025-01-14" in str(r.url) for r in responses)
        responses.append(client.get("/api/status"))
        responses.append(client.get("/metrics"))
        responses.append(
            client.get("/api/status", headers={"authorization": "Bearer " + METRICS_TOKEN})
        )
        for path, data in ACTIONS[:-1]:
            responses.append(client.post(path, data={**data, "csrf": token}))
            responses.append(client.get("/"))
        link = client.post("/link/start", data={"csrf": token, "mode": "oob"})
        responses.append(link)
        link_page = client.get("/link")
        responses.append(link_page)
        state = re.search(r'name="state" value="([^"]+)"', link_page.text)
        assert state is not None
        responses.append(
            client.post(
                "/link/finish",
                data={"csrf": token, "state": state.group(1), "code": consent_code(state.group(1))},
            )
        )
        responses.append(client.get("/"))
        responses.append(client.post("/logout", data={"csrf": token}))
        responses.append(client.get("/login"))
    assert backend.access_token != ACCESS_TOKEN  # the link rotated the tokens …
    for resp in responses:
        _assert_no_secret(resp)
        for fresh in (backend.access_token, backend.refresh_token):  # … and those stay hidden
            assert fresh not in resp.text
    assert len(responses) > 25


def test_settings_never_print_the_metrics_token() -> None:
    settings = WebSettings(metrics_token=Secret(METRICS_TOKEN))
    assert METRICS_TOKEN not in repr(settings)
    assert METRICS_TOKEN not in str(settings.metrics_token)


# ---- binding -------------------------------------------------------------------------------


def test_binding_beyond_loopback_without_a_password_is_refused(tmp_path: Path) -> None:
    server = WebServer(WebSettings(address="0.0.0.0", port=0), FakeBackend(), state_dir=tmp_path)
    with pytest.raises(ConfigError) as err:
        server.start()
    assert "gatewayd passwd" in str(err.value)
    assert "web.address" in str(err.value)
    assert "パスワード" in err.value.staff_message
    assert server._thread is None  # nothing was started


def test_binding_beyond_loopback_is_allowed_once_a_password_is_set(tmp_path: Path) -> None:
    settings = WebSettings(address="0.0.0.0", port=0)
    with pytest.raises(ConfigError):
        check_bind_allowed(settings, password_path(tmp_path))
    write_password(password_path(tmp_path), fast_hash(PASSWORD))
    check_bind_allowed(settings, password_path(tmp_path))  # no error
    check_bind_allowed(WebSettings(address="::1"), tmp_path / "missing")  # loopback: fine


def test_loopback_serves_without_a_password_but_nobody_can_log_in(tmp_path: Path) -> None:
    with (
        running_server(tmp_path, password=None) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        page = client.get("/login")
        assert page.status_code == 200
        assert "gatewayd passwd" in page.text
        assert 'type="password"' not in page.text
        resp = client.post("/login", data={"csrf": "x", "password": "anything-at-all"})
        assert resp.status_code == 403
        assert client.get("/").status_code == 303


def test_a_busy_port_is_a_clear_config_error(tmp_path: Path) -> None:
    with running_server(tmp_path) as first:
        second = WebServer(WebSettings(port=first.port), FakeBackend(), state_dir=tmp_path)
        with pytest.raises(ConfigError) as err:
            second.start()
        assert "web.port" in str(err.value)
