"""The emulator's fact rules (facts.py) and the two transfer divergences of issue 15."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

from gatewayd.sim.freee.facts import RULES, FactSwitches, parse_fact_spec
from gatewayd.sim.freee.testing import validation_messages

if TYPE_CHECKING:
    from freee_emulator_fixtures import Freee

pytest_plugins = ["freee_emulator_fixtures"]


def _transfer(freee: Freee, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "company_id": freee.company_id, "date": "2025-01-10", "from_walletable_type": "wallet",
        "from_walletable_id": freee.wallet("現金"),
        "to_walletables": [{"type": "bank_account", "id": freee.wallet("普通預金"),
                            "amount": 5000, "description": "銀行入金 POS-0001-01-20250110-M1"}],
    }
    body.update(extra)
    return body


def _post_transfer(freee: Freee, body: dict[str, Any]) -> httpx.Response:
    return freee.http.post("/api/1/transfers", json=body)


def test_transfer_rows_with_a_top_level_description_are_refused(freee: Freee):
    # schema: description cannot be given together with to_walletables (was accepted)
    response = _post_transfer(freee, _transfer(freee, description="備考"))
    assert validation_messages(response) == [
        "to_walletables と description (単一振替先の備考) は同時に指定できません。"]
    assert freee.control.transfers() == []
    freee.control.set_facts(transfer_rows_with_description_refused=False)
    assert _post_transfer(freee, _transfer(freee, description="備考")).status_code == 201


def test_two_rows_to_the_same_walletable_are_refused(freee: Freee):
    row = {"type": "bank_account", "id": freee.wallet("普通預金"), "amount": 100}
    response = _post_transfer(freee, _transfer(freee, to_walletables=[row, dict(row, amount=5)]))
    assert validation_messages(response) == ["複数行で同一の振替先口座は指定できません。"]
    assert freee.control.transfers() == []
    freee.control.set_facts(transfer_duplicate_destination_refused=False)
    twice = _post_transfer(freee, _transfer(freee, to_walletables=[row, dict(row, amount=5)]))
    assert twice.status_code == 201 and twice.json()["transfer"]["amount"] == 105


def test_the_box_way_of_sending_a_transfer_is_still_accepted(freee: Freee):
    created = _post_transfer(freee, _transfer(freee))
    assert created.status_code == 201
    assert created.json()["transfer"]["to_walletables"][0]["description"].endswith("M1")
    freee.control.set_facts(transfer_row_description=False)
    dropped = _post_transfer(freee, _transfer(freee))
    assert dropped.json()["transfer"]["to_walletables"][0].get("description") is None


def test_control_lists_switches_and_reset_restores_the_defaults(freee: Freee):
    facts = freee.control.facts()
    assert set(facts) == {r.name for r in RULES}
    assert all(f["status"] == "assumed, not yet confirmed" for f in facts.values())
    assert facts["zero_amount_line_vat"]["value"] is False
    freee.control.set_facts(deal_ref_number_unlimited=False)
    assert freee.control.facts()["deal_ref_number_unlimited"]["value"] is False
    freee.control.reset()
    assert freee.control.facts()["deal_ref_number_unlimited"]["value"] is True
    with pytest.raises(RuntimeError, match="unknown fact rule"):
        freee.control.set_facts(no_such_rule=True)


def test_ref_number_limit_rule(freee: Freee):
    long_ref = "POS-ABCDEFGH-12345678-20250110-S-EMONEY"
    assert freee.post_deal(freee.sale(ref_number=long_ref)).status_code == 201
    freee.control.set_facts(deal_ref_number_unlimited=False)
    assert validation_messages(freee.post_deal(freee.sale(ref_number=long_ref))) == [
        "ref_number は20文字以内で入力してください。"]
    assert freee.post_deal(freee.sale(ref_number="X" * 20)).status_code == 201


def test_zero_amount_line_with_vat_rule(freee: Freee):
    body = freee.sale(1100)
    body["details"].append(dict(body["details"][0], amount=0, vat=1))
    assert "details[1].vat (1) が金額 (0) を超えています。" in validation_messages(
        freee.post_deal(body))
    freee.control.set_facts(zero_amount_line_vat=True)
    stored = freee.post_deal(body)
    assert stored.status_code == 201
    assert [(d["amount"], d["vat"]) for d in stored.json()["deal"]["details"]] == [
        (1100, 100), (0, 1)]


def test_switches_parse_and_refuse_unknown_names():
    assert parse_fact_spec("zero_total_deal=off") == ("zero_total_deal", False)
    with pytest.raises(ValueError):
        parse_fact_spec("zero_total_deal=maybe")
    switches = FactSwitches({"zero_total_deal": False})
    assert switches["zero_total_deal"] is False
    with pytest.raises(TypeError):
        switches.update({"zero_total_deal": "no"})
