"""Access: tokens, app permissions (scopes), user roles, companies, daily quota, 429."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from gatewayd.sim.freee import SECOND_COMPANY_ID

if TYPE_CHECKING:
    from freee_emulator_fixtures import Freee

pytest_plugins = ["freee_emulator_fixtures"]

EXPIRED = {"message": "アクセスする権限がありません", "code": "expired_access_token"}


def test_missing_or_unknown_token_gets_401(freee: Freee):
    bare = httpx.get(f"{freee.server.base_url}/api/1/companies")
    assert (bare.status_code, bare.json()) == (401, EXPIRED)
    freee.use_token("not-a-token")
    assert freee.http.get("/api/1/companies").json() == EXPIRED


def test_app_without_write_permission_gets_403(freee: Freee):
    freee.control.set_client_scopes("read")
    # the app's permissions changed: the old token must be re-authorized
    changed = freee.http.get("/api/1/companies")
    assert changed.status_code == 401
    assert changed.json()["code"] == "re_authorization_required"
    tokens = freee.server.obtain_tokens()
    assert tokens["scope"] == "read"
    freee.use_token(tokens["access_token"])
    assert freee.http.get("/api/1/companies").status_code == 200
    refused = freee.post_deal(freee.sale())
    assert refused.status_code == 403
    assert refused.json()["code"] == "app_do_not_have_permission"
    assert "アクセス権限がありません" in refused.json()["message"]
    assert freee.control.deals() == []


def test_read_only_user_may_read_but_not_post(freee: Freee):
    freee.control.set_role("read_only")
    assert freee.http.get("/api/1/deals", params={"company_id": freee.company_id}
                          ).status_code == 200
    refused = freee.post_deal(freee.sale())
    assert refused.status_code == 401
    assert refused.json() == {
        "message": "このAPIにアクセスしたい場合、事業所の管理者にご確認ください。",
        "code": "user_do_not_have_permission"}
    freee.control.set_role("self_only")
    assert freee.post_deal(freee.sale()).status_code == 201


def test_second_company_is_read_only_and_other_companies_are_not_found(freee: Freee):
    other = freee.server.obtain_tokens(company_id=SECOND_COMPANY_ID)
    freee.use_token(other["access_token"])
    body = freee.sale()  # names ids of the main company, posted to the second
    body["company_id"] = SECOND_COMPANY_ID
    assert freee.post_deal(body).json()["code"] == "user_do_not_have_permission"
    # the token was issued for the second company only: the main one is unreachable
    response = freee.http.get("/api/1/deals", params={"company_id": freee.company_id})
    assert response.status_code == 401
    assert response.json()["errors"][0]["codes"] == ["company_not_found"]
    nowhere = freee.http.get("/api/1/companies/42")
    assert nowhere.status_code == 401


def test_daily_quota_then_403_until_the_next_day(freee: Freee):
    freee.control.set_config(daily_quota=5)
    for _ in range(5):
        assert freee.http.get("/api/1/companies").status_code == 200
    limited = freee.http.get("/api/1/companies")
    assert limited.status_code == 403
    assert limited.json()["code"] == "api_rate_limit_exceeded"
    assert limited.headers["x-ratelimit-limit"] == "5"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert limited.headers["x-ratelimit-reset"].endswith("T00:00:00+09:00")
    assert freee.post_deal(freee.sale()).status_code == 403
    assert freee.control.deals() == []
    quota = freee.control.quota()
    assert quota["counts"][0]["count"] == 7
    freee.control.advance_clock(86400)  # JST midnight passes: a new day, a new quota
    freee.use_token(freee.server.obtain_tokens()["access_token"])  # the old one expired
    assert freee.http.get("/api/1/companies").status_code == 200


def test_per_second_limit_answers_429(freee: Freee):
    freee.control.set_config(rate_per_second=3)
    statuses = [freee.http.get("/api/1/companies").status_code for _ in range(4)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3] == 429
    limited = freee.http.get("/api/1/companies")
    body = limited.json()
    assert body["status_code"] == 429
    assert (body["meta"]["limit"], body["meta"]["period"], body["meta"]["remaining"]) == (3, 1, 0)
    assert limited.headers["x-ratelimit-remaining"] == "0"
    freee.control.advance_clock(1.5)
    assert freee.http.get("/api/1/companies").status_code == 200


def test_rate_limited_requests_do_not_reach_the_books(freee: Freee):
    freee.control.set_config(rate_per_second=1)
    first = freee.post_deal(freee.sale())
    second = freee.post_deal(freee.sale())
    assert (first.status_code, second.status_code) == (201, 429)
    assert len(freee.control.deals()) == 1
