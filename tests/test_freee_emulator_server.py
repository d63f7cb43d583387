"""Running the emulator: restarts keep the data, port 0, the CLI, control and inspection,
the books page, and the schema audit itself."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from gatewayd.sim.freee import MAIN_COMPANY_ID, ControlClient, EmulatorProcess, EmulatorServer
from gatewayd.sim.freee.openapi import schema_bytes
from gatewayd.sim.freee.server import LISTENING_PREFIX, bind_socket, obtain_tokens
from gatewayd.sim.freee.testing import ResponseAudit, check_record

if TYPE_CHECKING:
    from freee_emulator_fixtures import Freee

pytest_plugins = ["freee_emulator_fixtures"]


def post_sale(base_url: str, token: str, masters: dict[str, Any], ref: str) -> httpx.Response:
    body = {"company_id": MAIN_COMPANY_ID, "issue_date": "2025-03-01", "type": "income",
            "ref_number": ref,
            "details": [{"account_item_id": masters["account_items"]["売上高"],
                         "tax_code": 129, "amount": 2200}]}
    return httpx.post(f"{base_url}/api/1/deals", json=body,
                      headers={"Authorization": f"Bearer {token}"})


def test_restart_keeps_data_and_tokens(tmp_path: Path, freee_response_audit: Any):
    state = tmp_path / "freee.sqlite3"
    with EmulatorServer(state) as first:
        tokens = first.obtain_tokens()
        masters = first.control.company()
        assert post_sale(first.base_url, tokens["access_token"], masters, "R-1").status_code == 201
        first_port = first.port
    with EmulatorServer(state) as second:
        assert [d["ref_number"] for d in second.control.deals()] == ["R-1"]
        assert second.control.company() == masters  # same seeded ids
        assert post_sale(second.base_url, tokens["access_token"], masters, "R-2"
                         ).status_code == 201
        assert [d["id"] for d in second.control.deals()] == [2_200_000_001, 2_200_000_002]
    # the file is plain SQLite in WAL mode: another process can read it
    with sqlite3.connect(state) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT ref_number FROM deals ORDER BY id").fetchall() == [
            ("R-1",), ("R-2",)]
    assert first_port > 0


def test_port_zero_gives_distinct_free_ports(tmp_path: Path, freee_response_audit: Any):
    with (EmulatorServer(tmp_path / "a.sqlite3") as one,
          EmulatorServer(tmp_path / "b.sqlite3") as two):
        assert one.port != two.port
        assert httpx.get(f"{one.base_url}/_emulator/").json()["state"].endswith("a.sqlite3")
        assert httpx.get(f"{two.base_url}/_emulator/").json()["state"].endswith("b.sqlite3")


def test_cli_prints_its_port_survives_kill_and_refuses_a_taken_port(
    tmp_path: Path, freee_response_audit: Any
):
    state = tmp_path / "cli.sqlite3"
    process = EmulatorProcess(state, "--auto-approve", "--access-token-ttl", "600").start()
    try:
        assert process.base_url == f"http://127.0.0.1:{process.port}"
        tokens = obtain_tokens(process.base_url)
        assert tokens["expires_in"] == 600
        control = ControlClient(process.base_url)
        masters = control.company()
        assert post_sale(process.base_url, tokens["access_token"], masters, "C-1"
                         ).status_code == 201
        control.close()
        port = process.port
    finally:
        process.kill()  # SIGKILL: no clean shutdown
    again = EmulatorProcess(state, port=port).start()
    try:
        assert again.port == port
        control = ControlClient(again.base_url)
        assert [d["ref_number"] for d in control.deals()] == ["C-1"]
        control.close()
        taken = subprocess.run(
            [sys.executable, "-m", "gatewayd", "sim", "freee", "--port", str(port),
             "--state", str(tmp_path / "other.sqlite3")],
            capture_output=True, text=True, timeout=30,
        )
        assert taken.returncode == 2
        assert "cannot listen" in taken.stderr
        assert LISTENING_PREFIX not in taken.stdout
    finally:
        again.stop()


def test_cli_rejects_a_bad_fault_spec(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "gatewayd", "sim", "freee", "--state", str(tmp_path / "x.db"),
         "--fault", "explode:times=1"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "--fault" in result.stderr and "障害指定" in result.stderr


def test_bind_socket_refuses_a_port_in_use():
    first = bind_socket(0)
    try:
        port = first.getsockname()[1]
        try:
            bind_socket(port).close()
        except OSError:
            pass
        else:
            raise AssertionError("a second listener got the same port")
    finally:
        first.close()


def test_reset_restores_the_seed_and_keeps_tokens(freee: Freee):
    assert freee.post_deal(freee.sale()).status_code == 201
    freee.control.set_config(daily_quota=1)
    freee.control.add_fault("latency", ms=5)
    freee.control.reset()
    assert freee.control.deals() == [] and freee.control.faults() == []
    assert freee.control.config()["daily_quota"] == 3000
    assert freee.http.get("/api/1/companies").status_code == 200  # token kept
    freee.control.reset(tokens=True)
    assert freee.http.get("/api/1/companies").status_code == 401


def test_inspection_lists_deals_and_transfers_of_every_company(freee: Freee):
    freee.post_deal(freee.sale(1000))
    freee.http.post("/api/1/transfers", json={
        "company_id": freee.company_id, "date": "2025-01-10", "from_walletable_type": "wallet",
        "from_walletable_id": freee.wallet("現金"),
        "to_walletables": [{"type": "bank_account", "id": freee.wallet("普通預金"),
                            "amount": 700}]})
    deals = httpx.get(f"{freee.server.base_url}/_emulator/deals").json()["deals"]
    assert [(d["amount"], d["status"]) for d in deals] == [(1000, "settled")]
    assert freee.control.transfers(freee.company_id)[0]["amount"] == 700
    assert {c["name"] for c in freee.control.companies()} == {"株式会社サンプル商店",
                                                               "合同会社サンプル閲覧"}
    tokens = freee.control.tokens()
    assert tokens and all(len(t["token_tail"]) == 8 for t in tokens)


def test_control_refuses_bad_requests(freee: Freee):
    base = f"{freee.server.base_url}/_emulator"
    assert httpx.patch(f"{base}/config", json={"client_secret": "x"}).status_code == 400
    assert httpx.patch(f"{base}/config", json={"daily_quota": "many"}).status_code == 400
    assert httpx.put(f"{base}/companies/{MAIN_COMPANY_ID}/role",
                     json={"role": "owner"}).status_code == 400
    assert httpx.patch(f"{base}/companies/{MAIN_COMPANY_ID}/fiscal_years/1",
                       json={"is_closed": True}).status_code == 400
    assert httpx.post(f"{base}/clock", content=b"[1]").status_code == 400


def test_books_page_lists_deals_by_date_with_lines_payments_and_status(freee: Freee):
    freee.post_deal(freee.sale(11000, day="2025-01-11"))
    unsettled = freee.sale(5500, day="2025-01-10", settled=False)
    unsettled["details"][0]["description"] = "カード売上 <b>"
    freee.post_deal(unsettled)
    page = freee.control.books_html()
    assert '<html lang="ja">' in page
    assert page.index('id="day-2025-01-10"') < page.index('id="day-2025-01-11"')
    assert "決済済み" in page and "未決済（残 5,500円）" in page
    assert "売上高" in page and "課税売上10%" in page and "11,000円" in page
    assert "現金" in page  # the payment's walletable
    assert "カード売上 &lt;b&gt;" in page  # escaped
    assert httpx.get(f"{freee.server.base_url}/books", follow_redirects=True).status_code == 200


def test_schema_ships_as_package_data_with_its_licence():
    data = schema_bytes()
    assert json.loads(data)["info"]["title"] == "freee会計 API"
    licence = Path(__file__).parents[1] / "gatewayd/sim/freee/schema/MIT-LICENCE"
    assert "freee K.K." in licence.read_text()


def test_the_audit_catches_responses_outside_the_schema(tmp_path: Path):
    good = {"method": "GET", "path": "/api/1/deals", "operation": "GET /api/1/deals",
            "status": 200, "has_body": True, "request_id": "r",
            "body": {"deals": [], "meta": {"total_count": 0}}}
    assert check_record(good) == []
    broken = dict(good, body={"deals": [{"id": 1}], "meta": {}})
    problems = check_record(broken)
    assert any("'total_count' is a required property" in p for p in problems)
    assert any("'company_id' is a required property" in p for p in problems)
    assert check_record(dict(good, status=418)) != []
    assert check_record(dict(good, request_id=None)) != []
    token_error = {"method": "POST", "path": "/public_api/token", "operation": None,
                   "status": 400, "has_body": True, "request_id": "r",
                   "body": {"error": "invalid_grant", "error_description": "x"}}
    assert any("must be answered 401" in p for p in check_record(token_error))
    # the audit reads what emulators wrote, incrementally
    (tmp_path / "x.jsonl").write_text(json.dumps(broken) + "\n" + json.dumps(good) + "\n")
    audit = ResponseAudit(tmp_path)
    assert audit.new_problems() != [] and audit.checked == 2
    assert audit.new_problems() == []


def test_the_audit_sees_this_suites_responses(freee: Freee, freee_response_audit: ResponseAudit):
    before = freee_response_audit.checked
    freee.http.get("/api/1/companies")
    freee_response_audit.new_problems()
    assert freee_response_audit.checked > before


def test_custom_client_credentials(tmp_path: Path, freee_response_audit: Any):
    with EmulatorServer(tmp_path / "c.sqlite3", client_id="pos-app", client_secret="s3cret",
                        auto_approve=True) as server:
        tokens = server.obtain_tokens()
        assert tokens["company_id"] == str(MAIN_COMPANY_ID)
        refused = httpx.get(f"{server.base_url}/public_api/authorize", params={
            "response_type": "code", "client_id": "gatewayd-emulator-client",
            "redirect_uri": "urn:ietf:wg:oauth:2.0:oob"})
        assert refused.status_code == 400
