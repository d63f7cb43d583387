"""Faults on request: latency, 500/503, dropped connections before and after storing,
token faults; by control endpoint and by option; request counts per endpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from gatewayd.sim.freee import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EmulatorServer
from gatewayd.sim.freee.faults import FaultPlan, FaultRule, parse_spec

if TYPE_CHECKING:
    from freee_emulator_fixtures import Freee

pytest_plugins = ["freee_emulator_fixtures"]

# A dropped connection reaches the client as a close (no answer) or a reset.
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError)


def test_latency(freee: Freee):
    freee.control.add_fault("latency", ms=300, path="/api/1/companies", times=1)
    started = time.monotonic()
    assert freee.http.get("/api/1/companies").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    freee.http.get("/api/1/companies")
    assert time.monotonic() - started < 0.3  # times=1: used up


def test_latency_beyond_the_clients_timeout_still_stores(freee: Freee):
    freee.control.add_fault("latency", ms=500, method="POST", path="/api/1/deals", times=1)
    with pytest.raises(httpx.ReadTimeout):
        freee.http.post("/api/1/deals", json=freee.sale(), timeout=0.1)
    deadline = time.monotonic() + 5
    while not freee.control.deals() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(freee.control.deals()) == 1


def test_500_and_503_bodies_and_nothing_stored(freee: Freee):
    freee.control.add_fault("http_500", method="POST", path="/api/1/deals", times=1)
    freee.control.add_fault("http_503", method="POST", path="/api/1/deals", times=1)
    first = freee.post_deal(freee.sale())
    assert first.status_code == 500
    assert first.json() == {"status_code": 500,
                            "errors": [{"type": "status", "messages": ["エラーが発生しました。"]}]}
    assert first.headers["x-freee-request-id"]
    second = freee.post_deal(freee.sale())
    assert second.status_code == 503
    assert second.json()["errors"][0]["type"] == "error"
    assert freee.control.deals() == []
    assert freee.post_deal(freee.sale()).status_code == 201


def test_drop_before_processing_stores_nothing(freee: Freee):
    freee.control.add_fault("drop_before", method="POST", path="/api/1/deals", times=1)
    with pytest.raises(DROPPED):
        freee.post_deal(freee.sale())
    assert freee.control.deals() == []
    counts = freee.control.request_counts()["endpoints"]["POST /api/1/deals"]
    assert counts["by_status"] == {"dropped_before": 1}


def test_drop_after_storing_a_deal_the_client_cannot_know(freee: Freee):
    freee.control.add_fault("drop_after", method="POST", path="/api/1/deals", times=1)
    body = freee.sale(ref_number="POS-0001-01-20250110-S-CASH")
    with pytest.raises(DROPPED):
        freee.post_deal(body)
    stored = freee.control.deals()
    assert [d["ref_number"] for d in stored] == ["POS-0001-01-20250110-S-CASH"]
    # the recovery the gateway does: list the date and match ref_number
    listed = freee.http.get("/api/1/deals", params={
        "company_id": freee.company_id, "start_issue_date": "2025-01-10",
        "end_issue_date": "2025-01-10", "type": "income", "limit": 100})
    assert [d["ref_number"] for d in listed.json()["deals"]] == [body["ref_number"]]
    counts = freee.control.request_counts()["endpoints"]["POST /api/1/deals"]["by_status"]
    assert counts == {"dropped_after": 1}


def test_drop_after_waits_for_a_success(freee: Freee):
    freee.control.add_fault("drop_after", method="POST", path="/api/1/deals", times=1)
    refused = freee.post_deal(freee.sale(day="2024-01-01"))
    assert refused.status_code == 400  # failures pass through and do not use the fault up
    with pytest.raises(DROPPED):
        freee.post_deal(freee.sale())
    assert len(freee.control.deals()) == 1


def test_500_after_storing(freee: Freee):
    freee.control.add_fault("http_500_after", method="POST", path="/api/1/deals", times=1)
    assert freee.post_deal(freee.sale()).status_code == 500
    assert len(freee.control.deals()) == 1


def test_skip_and_times(freee: Freee):
    freee.control.add_fault("http_503", path="/api/1/companies", skip=2, times=2)
    statuses = [freee.http.get("/api/1/companies").status_code for _ in range(5)]
    assert statuses == [200, 200, 503, 503, 200]
    assert freee.control.faults() == []


def test_fault_control_endpoints(freee: Freee):
    rule = freee.control.add_fault("http_500", path="/api/1/deals/{id}", method="GET")
    assert rule["id"] >= 1 and rule["kind"] == "http_500"
    assert [f["id"] for f in freee.control.faults()] == [rule["id"]]
    replaced = freee.control.set_faults([{"kind": "latency", "ms": 10},
                                         {"kind": "drop_before", "probability": 0.5}])
    assert [f["kind"] for f in replaced] == ["latency", "drop_before"]
    assert freee.control.remove_fault(replaced[0]["id"]) is True
    freee.control.clear_faults()
    assert freee.control.faults() == []
    bad = httpx.post(f"{freee.server.base_url}/_emulator/faults", json={"kind": "explode"})
    assert bad.status_code == 400 and "unknown fault kind" in bad.json()["error"]


def test_expire_access_token_now_by_control_and_by_fault(freee: Freee):
    assert freee.control.expire_access_tokens() == 1
    expired = freee.http.get("/api/1/companies")
    assert expired.status_code == 401 and expired.json()["code"] == "expired_access_token"
    freee.use_token(freee.server.obtain_tokens()["access_token"])
    freee.control.add_fault("expire_access_token", path="/api/1/deals", times=1)
    assert freee.post_deal(freee.sale()).status_code == 401
    assert freee.http.get("/api/1/companies").status_code == 401  # that token stays expired


def refresh(server: EmulatorServer, token: str) -> httpx.Response:
    return httpx.post(f"{server.base_url}/public_api/token", data={
        "grant_type": "refresh_token", "refresh_token": token,
        "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET})


def test_revoke_refresh_token_by_control_and_by_fault(freee: Freee):
    assert freee.control.revoke_refresh_tokens() >= 1
    assert refresh(freee.server, freee.tokens["refresh_token"]).json()["error"] == "invalid_grant"
    tokens = freee.server.obtain_tokens()
    freee.control.add_fault("revoke_refresh_token", times=1)
    assert refresh(freee.server, tokens["refresh_token"]).status_code == 401


def test_drop_after_on_the_token_endpoint_burns_the_refresh_token(freee: Freee):
    freee.control.add_fault("drop_after", path="/public_api/token", times=1)
    with pytest.raises(DROPPED):
        refresh(freee.server, freee.tokens["refresh_token"])
    again = refresh(freee.server, freee.tokens["refresh_token"])
    assert again.status_code == 401 and again.json()["error"] == "invalid_grant"


def test_request_counts_per_endpoint(freee: Freee):
    freee.control.clear_request_counts()
    freee.http.get("/api/1/companies")
    freee.http.get("/api/1/companies")
    deal = freee.post_deal(freee.sale()).json()["deal"]
    freee.http.get(f"/api/1/deals/{deal['id']}", params={"company_id": freee.company_id})
    freee.post_deal(freee.sale(day="1999-01-01"))
    counts = freee.control.request_counts()
    assert counts["total"] == 5
    assert counts["endpoints"]["GET /api/1/companies"] == {"total": 2, "by_status": {"200": 2}}
    assert counts["endpoints"]["POST /api/1/deals"]["by_status"] == {"201": 1, "400": 1}
    assert freee.control.count("GET /api/1/deals/{id}") == 1


def test_faults_by_option(tmp_path: Path, freee_response_audit: Any):
    faults = ["http_503:path=/api/1/companies,times=1", {"kind": "latency", "ms": 1}]
    with EmulatorServer(tmp_path / "s.sqlite3", faults=faults) as server:
        tokens = server.obtain_tokens()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        url = f"{server.base_url}/api/1/companies"
        assert httpx.get(url, headers=headers).status_code == 503
        assert httpx.get(url, headers=headers).status_code == 200


def test_fault_specs_and_seeded_probability():
    rule = parse_spec("drop_after:method=post,path=/api/1/deals,times=2,skip=1")
    assert (rule.kind, rule.method, rule.path, rule.times, rule.skip) == (
        "drop_after", "POST", "/api/1/deals", 2, 1)
    with pytest.raises(ValueError):
        parse_spec("latency")  # needs ms
    with pytest.raises(ValueError):
        parse_spec("http_500:times=0")

    def pattern(seed: int) -> list[bool]:
        plan = FaultPlan([FaultRule("http_500", probability=0.5)], seed=seed)
        return [bool(plan.fire(("http_500",), "GET", "/api/1/deals", None)) for _ in range(40)]

    assert pattern(7) == pattern(7)
    assert 5 < sum(pattern(7)) < 35
    plan = FaultPlan([FaultRule("http_500")])
    assert plan.fire(("http_500",), "POST", "/public_api/token", None) == []  # API paths only
    assert len(plan.fire(("http_500",), "GET", "/api/1/deals/5", "/api/1/deals/{id}")) == 1
