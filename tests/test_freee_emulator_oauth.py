"""OAuth of the freee emulator: consent, code exchange, PKCE, refresh rotation, expiry, revoke."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gatewayd.sim.freee import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    MAIN_COMPANY_ID,
    OOB_REDIRECT,
    SECOND_COMPANY_ID,
    EmulatorServer,
    obtain_code,
    pkce_pair,
)
from gatewayd.sim.freee.errors import INVALID_GRANT_DESCRIPTION
from gatewayd.sim.freee.server import authorize_url, tls_context

if TYPE_CHECKING:
    from freee_emulator_fixtures import Freee

pytest_plugins = ["freee_emulator_fixtures"]

INVALID_GRANT = {"error": "invalid_grant", "error_description": INVALID_GRANT_DESCRIPTION}
LOOPBACK = "http://127.0.0.1:54321/callback"
http = httpx.Client(timeout=10, verify=tls_context())  # one client: building one costs ~40 ms


@pytest.fixture
def server(tmp_path: Path, freee_response_audit: Any) -> Any:
    with EmulatorServer(tmp_path / "freee.sqlite3") as running:
        yield running


def token_request(server: EmulatorServer, **form: str) -> httpx.Response:
    data = {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET, **form}
    return http.post(f"{server.base_url}/public_api/token", data=data)


def exchange(server: EmulatorServer, code: str, redirect_uri: str = OOB_REDIRECT,
             verifier: str | None = None) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        form["code_verifier"] = verifier
    return token_request(server, **form)


def refresh(server: EmulatorServer, refresh_token: str) -> httpx.Response:
    return token_request(server, grant_type="refresh_token", refresh_token=refresh_token)


def companies(server: EmulatorServer, access_token: str) -> httpx.Response:
    return http.get(f"{server.base_url}/api/1/companies",
                     headers={"Authorization": f"Bearer {access_token}"})


def test_consent_page_has_company_picker_and_button_and_oob_shows_code(server: EmulatorServer):
    verifier, challenge = pkce_pair()
    url = authorize_url(server.base_url, code_challenge=challenge, state="s1")
    page = http.get(url)
    assert page.status_code == 200
    assert 'id="approve"' in page.text and "許可する" in page.text
    assert "株式会社サンプル商店" in page.text and "合同会社サンプル閲覧" in page.text
    form = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    form.update(action="approve", company_id=str(MAIN_COMPANY_ID))
    shown = http.post(f"{server.base_url}/public_api/authorize", data=form)
    assert shown.status_code == 200
    code = re.search(r'id="authorization-code">([^<]+)<', shown.text)
    assert code is not None

    response = exchange(server, code.group(1), verifier=verifier)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 21600
    assert body["scope"] == "read write"
    assert body["company_id"] == str(MAIN_COMPANY_ID)
    assert body["access_token"] != body["refresh_token"]
    assert companies(server, body["access_token"]).status_code == 200


def test_loopback_redirect_carries_code_and_state(server: EmulatorServer):
    verifier, challenge = pkce_pair()
    url = authorize_url(server.base_url, redirect_uri=LOOPBACK, state="xyz",
                        code_challenge=challenge)
    form = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    form.update(action="approve", company_id=str(MAIN_COMPANY_ID))
    answer = http.post(f"{server.base_url}/public_api/authorize", data=form)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == LOOPBACK
    query = parse_qs(location.query)
    assert query["state"] == ["xyz"]
    assert exchange(server, query["code"][0], LOOPBACK, verifier).status_code == 200


def test_deny_redirects_with_access_denied(server: EmulatorServer):
    url = authorize_url(server.base_url, redirect_uri=LOOPBACK, state="st")
    form = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    answer = http.post(f"{server.base_url}/public_api/authorize", data={**form, "action": "deny"})
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["st"]


def test_authorize_refuses_unknown_client_foreign_redirect_and_plain_pkce(server: EmulatorServer):
    bad_client = http.get(authorize_url(server.base_url, client_id="nobody"))
    assert bad_client.status_code == 400
    foreign = http.get(authorize_url(server.base_url, redirect_uri="https://evil.example/cb"))
    assert foreign.status_code == 400
    plain = http.get(
        authorize_url(server.base_url, redirect_uri=LOOPBACK)
        + "&code_challenge=abc&code_challenge_method=plain"
    )
    assert plain.status_code == 302
    assert parse_qs(urlsplit(plain.headers["location"]).query)["error"] == ["invalid_request"]


def test_auto_approve_gives_code_at_once(tmp_path: Path, freee_response_audit: Any):
    with EmulatorServer(tmp_path / "s.sqlite3", auto_approve=True) as server:
        page = http.get(authorize_url(server.base_url))
        assert 'id="authorization-code"' in page.text
        redirect = http.get(authorize_url(server.base_url, redirect_uri=LOOPBACK, state="a"))
        assert redirect.status_code == 302
        assert "code=" in redirect.headers["location"]
        tokens = server.obtain_tokens()
        assert tokens["company_id"] == str(MAIN_COMPANY_ID)


def test_code_exchange_refusals_are_invalid_grant_401(server: EmulatorServer):
    verifier, challenge = pkce_pair()
    code = obtain_code(server.base_url, code_challenge=challenge)
    wrong_verifier = exchange(server, code, verifier=pkce_pair()[0])
    assert (wrong_verifier.status_code, wrong_verifier.json()) == (401, INVALID_GRANT)
    # the code was burnt by the failed attempt: single use
    assert exchange(server, code, verifier=verifier).status_code == 401

    code = obtain_code(server.base_url, code_challenge=challenge)
    missing = exchange(server, code)
    assert (missing.status_code, missing.json()) == (401, INVALID_GRANT)

    code = obtain_code(server.base_url)
    mismatch = exchange(server, code, redirect_uri=LOOPBACK)
    assert (mismatch.status_code, mismatch.json()) == (401, INVALID_GRANT)

    code = obtain_code(server.base_url)
    first = exchange(server, code)
    assert first.status_code == 200
    reused = exchange(server, code)
    assert (reused.status_code, reused.json()) == (401, INVALID_GRANT)
    # a reused code revokes what it issued (RFC 6749 4.1.2)
    assert companies(server, first.json()["access_token"]).status_code == 401


def test_code_expires_after_ten_minutes(server: EmulatorServer):
    code = obtain_code(server.base_url)
    server.control.advance_clock(601)
    response = exchange(server, code)
    assert (response.status_code, response.json()) == (401, INVALID_GRANT)


def test_client_authentication(server: EmulatorServer):
    code = obtain_code(server.base_url)
    wrong = http.post(f"{server.base_url}/public_api/token", data={
        "grant_type": "authorization_code", "client_id": DEFAULT_CLIENT_ID,
        "client_secret": "wrong", "code": code, "redirect_uri": OOB_REDIRECT})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    basic = base64.b64encode(f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}".encode()).decode()
    code = obtain_code(server.base_url)
    ok = http.post(f"{server.base_url}/public_api/token",
                    headers={"Authorization": f"Basic {basic}"},
                    data={"grant_type": "authorization_code", "code": code,
                          "redirect_uri": OOB_REDIRECT})
    assert ok.status_code == 200
    unsupported = token_request(server, grant_type="client_credentials")
    assert unsupported.status_code == 400
    assert unsupported.json()["error"] == "unsupported_grant_type"


def test_refresh_rotates_and_kills_the_previous_access_token(freee: Freee):
    first = freee.tokens
    response = refresh(freee.server, first["refresh_token"])
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    assert second["company_id"] == first["company_id"]
    assert companies(freee.server, first["access_token"]).status_code == 401
    assert companies(freee.server, second["access_token"]).status_code == 200
    third = refresh(freee.server, second["refresh_token"])
    assert third.status_code == 200


def test_reused_refresh_token_is_refused(freee: Freee):
    old = freee.tokens["refresh_token"]
    assert refresh(freee.server, old).status_code == 200
    again = refresh(freee.server, old)
    assert again.status_code == 401
    assert again.json() == INVALID_GRANT


def test_access_token_expires_after_its_ttl(tmp_path: Path, freee_response_audit: Any):
    with EmulatorServer(tmp_path / "s.sqlite3", access_token_ttl=120) as server:
        tokens = server.obtain_tokens()
        assert tokens["expires_in"] == 120
        assert companies(server, tokens["access_token"]).status_code == 200
        server.control.advance_clock(119)
        assert companies(server, tokens["access_token"]).status_code == 200
        server.control.advance_clock(2)
        expired = companies(server, tokens["access_token"])
        assert expired.status_code == 401
        assert expired.json() == {"message": "アクセスする権限がありません",
                                  "code": "expired_access_token"}
        # the refresh token (90 days) still works after the access token expired
        assert refresh(server, tokens["refresh_token"]).status_code == 200


def test_refresh_token_expires_after_90_days(freee: Freee):
    freee.control.advance_clock(90 * 86400 + 1)
    response = refresh(freee.server, freee.tokens["refresh_token"])
    assert (response.status_code, response.json()) == (401, INVALID_GRANT)


def test_revoke_endpoint(freee: Freee):
    url = f"{freee.server.base_url}/public_api/revoke"
    creds = {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}
    answer = http.post(url, data={**creds, "token": freee.tokens["refresh_token"]})
    assert answer.status_code == 200
    assert refresh(freee.server, freee.tokens["refresh_token"]).json() == INVALID_GRANT
    assert companies(freee.server, freee.tokens["access_token"]).status_code == 401

    tokens = freee.server.obtain_tokens()
    http.post(url, data={**creds, "token": tokens["access_token"]})
    assert companies(freee.server, tokens["access_token"]).status_code == 401
    # revoking the access token before the refresh makes the refresh fail (freee FAQ)
    assert refresh(freee.server, tokens["refresh_token"]).status_code == 401


def test_without_select_company_the_token_reaches_every_company(server: EmulatorServer):
    tokens = server.obtain_tokens(select_company=False)
    assert tokens["company_id"] is None
    listed = companies(server, tokens["access_token"]).json()["companies"]
    assert {c["id"] for c in listed} == {MAIN_COMPANY_ID, SECOND_COMPANY_ID}
    picked = server.obtain_tokens(company_id=SECOND_COMPANY_ID)
    listed = companies(server, picked["access_token"]).json()["companies"]
    assert [c["id"] for c in listed] == [SECOND_COMPANY_ID]
