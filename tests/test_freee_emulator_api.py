"""Contract tests of the emulated /api/1/ endpoints: shapes, filters, paging, CRUD."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatewayd.sim.freee import MAIN_COMPANY_ID
from gatewayd.sim.freee.testing import validation_messages

if TYPE_CHECKING:
    from freee_emulator_fixtures import Freee

pytest_plugins = ["freee_emulator_fixtures"]


def test_companies_list_and_detail_with_masters(freee: Freee):
    listed = freee.http.get("/api/1/companies")
    assert listed.status_code == 200
    assert listed.headers["x-freee-request-id"]
    (company,) = listed.json()["companies"]
    assert company["id"] == MAIN_COMPANY_ID and company["role"] == "admin"

    plain = freee.http.get(f"/api/1/companies/{MAIN_COMPANY_ID}").json()["company"]
    assert "account_items" not in plain
    years = plain["fiscal_years"]
    assert [(y["start_date"], y["end_date"], y["is_closed"]) for y in years] == [
        ("2025-01-01", "2025-12-31", False), ("2026-01-01", "2026-12-31", False)]
    assert plain["org_code"] == 1  # 法人

    full = freee.http.get(f"/api/1/companies/{MAIN_COMPANY_ID}", params={"details": "true"})
    detail = full.json()["company"]
    accounts = {a["name"] for a in detail["account_items"]}
    assert {"売上高", "雑収入", "雑損失", "仮受金", "仮払金", "売掛金", "消耗品費", "現金",
            "普通預金"} <= accounts
    assert {(w["name"], w["type"]) for w in detail["walletables"]} == {
        ("現金", "wallet"), ("普通預金", "bank_account")}
    taxes = {t["name_ja"]: t["code"] for t in detail["tax_codes"]}
    assert taxes["課税売上10%"] == 129 and taxes["課税売上8%（軽）"] == 156
    only_taxes = freee.http.get(f"/api/1/companies/{MAIN_COMPANY_ID}",
                                params={"taxes": "true"}).json()["company"]
    assert "tax_codes" in only_taxes and "account_items" not in only_taxes
    # "false" is not allowed for these switches (schema enum [true])
    assert freee.http.get(f"/api/1/companies/{MAIN_COMPANY_ID}",
                          params={"details": "false"}).status_code == 400


def test_users_me(freee: Freee):
    me = freee.http.get("/api/1/users/me", params={"companies": "true"}).json()["user"]
    assert me["companies"] == [{"id": MAIN_COMPANY_ID, "display_name": "株式会社サンプル商店",
                                "role": "admin", "use_custom_role": False}]


def test_account_items(freee: Freee):
    response = freee.http.get("/api/1/account_items", params={"company_id": freee.company_id})
    items = {a["name"]: a for a in response.json()["account_items"]}
    assert items["現金"]["account_category"] == "現金・預金"
    assert items["現金"]["account_category_id"] == 36
    assert items["現金"]["walletable_id"] == freee.wallet("現金")
    assert items["売上高"]["default_tax_code"] == 129
    missing = freee.http.get("/api/1/account_items")
    assert missing.status_code == 400
    assert validation_messages(missing) == ["company_id は必須です。"]


def test_taxes_of_company_with_filters(freee: Freee):
    url = f"/api/1/taxes/companies/{freee.company_id}"
    taxes = {t["name_ja"]: t for t in freee.http.get(url).json()["taxes"]}
    assert {"課税売上10%", "課税売上8%（軽）", "非課売上", "対象外", "課対仕入10%"} <= set(taxes)
    assert taxes["課税売上10%"] == {"code": 129, "name": "sales_with_tax_10",
                                   "name_ja": "課税売上10%", "display_category": "tax_10",
                                   "available": True}
    assert taxes["対象外"]["display_category"] is None
    reduced = freee.http.get(url, params={"display_category": "tax_r8"}).json()["taxes"]
    assert {t["code"] for t in reduced} == {156, 163}
    unavailable = freee.http.get(url, params={"available": "false"}).json()["taxes"]
    assert [t["name_ja"] for t in unavailable] == ["輸出売上"]


def test_items_unique_names_of_at_most_30_characters(freee: Freee):
    name = "【POS Regi】現金"
    created = freee.http.post("/api/1/items", json={"company_id": freee.company_id,
                                                    "name": name})
    assert created.status_code == 201
    item = created.json()["item"]
    assert item["name"] == name and item["available"] is True and "code" not in item
    duplicate = freee.http.post("/api/1/items", json={"company_id": freee.company_id,
                                                      "name": name})
    assert duplicate.status_code == 400
    assert validation_messages(duplicate) == [f"name ({name}) はすでに使用されています。"]
    too_long = freee.http.post("/api/1/items", json={"company_id": freee.company_id,
                                                     "name": "あ" * 31})
    assert validation_messages(too_long) == ["name は30文字以内で入力してください。"]
    # form-urlencoded bodies are accepted as the schema allows
    form = freee.http.post("/api/1/items", data={"company_id": str(freee.company_id),
                                                 "name": "【POS Regi】クレジット"})
    assert form.status_code == 201

    listed = freee.http.get("/api/1/items", params={"company_id": freee.company_id})
    names = [i["name"] for i in listed.json()["items"]]
    assert names == ["店頭販売", name, "【POS Regi】クレジット"]
    page = freee.http.get("/api/1/items", params={"company_id": freee.company_id,
                                                  "offset": 1, "limit": 1})
    assert [i["name"] for i in page.json()["items"]] == [name]
    one = freee.http.get(f"/api/1/items/{item['id']}", params={"company_id": freee.company_id})
    assert one.json()["item"]["id"] == item["id"]
    assert freee.http.get("/api/1/items/999", params={"company_id": freee.company_id}
                          ).status_code == 404


def test_sections_tags_partners(freee: Freee):
    cid = freee.company_id
    sections = freee.http.get("/api/1/sections", params={"company_id": cid}).json()["sections"]
    assert [s["name"] for s in sections] == ["渋谷店", "新宿店"]
    new = freee.http.post("/api/1/sections", json={"company_id": cid, "name": "池袋店"})
    assert new.status_code == 201 and new.json()["section"]["name"] == "池袋店"
    tags = freee.http.get("/api/1/tags", params={"company_id": cid}).json()["tags"]
    assert [t["name"] for t in tags] == ["POS"]
    assert freee.http.post("/api/1/tags", json={"company_id": cid, "name": "イベント"}
                           ).status_code == 201
    partners = freee.http.get("/api/1/partners", params={"company_id": cid,
                                                         "keyword": "カード"}).json()["partners"]
    assert [p["name"] for p in partners] == ["カード会社"]
    created = freee.http.post("/api/1/partners", json={"company_id": cid, "name": "電子マネー会社"})
    assert created.status_code == 201 and created.json()["partner"]["code"] is None


def test_walletables_with_type_and_balance(freee: Freee):
    cid = freee.company_id
    wallets = freee.http.get("/api/1/walletables", params={"company_id": cid, "type": "wallet"})
    assert [w["name"] for w in wallets.json()["walletables"]] == ["現金"]
    assert wallets.json()["walletables"][0]["bank_id"] is None
    assert freee.post_deal(freee.sale(5500)).status_code == 201
    balances = freee.http.get("/api/1/walletables",
                              params={"company_id": cid, "with_balance": "true"}).json()
    by_name = {w["name"]: w["walletable_balance"] for w in balances["walletables"]}
    assert by_name == {"現金": 5500, "普通預金": 0}


def test_deal_create_get_update_delete(freee: Freee):
    body = freee.sale(11000)
    body["details"].append({"account_item_id": freee.account("売上高"), "tax_code": 156,
                            "amount": 1080, "tag_ids": [freee.masters["tags"]["POS"]],
                            "section_id": freee.masters["sections"]["渋谷店"]})
    body["payments"][0]["amount"] = 12080
    created = freee.post_deal(body)
    assert created.status_code == 201
    deal = created.json()["deal"]
    assert deal["amount"] == 12080 and deal["due_amount"] == 0 and deal["status"] == "settled"
    assert deal["ref_number"] == body["ref_number"]
    assert deal["id"] > 2**31  # ids beyond int32, as freee's
    lines = deal["details"]
    assert [(d["tax_code"], d["amount"], d["vat"], d["entry_side"]) for d in lines] == [
        (129, 11000, 1000, "credit"), (156, 1080, 80, "credit")]
    assert lines[1]["tag_ids"] == [freee.masters["tags"]["POS"]]
    assert deal["payments"][0]["from_walletable_id"] == freee.wallet("現金")

    fetched = freee.http.get(f"/api/1/deals/{deal['id']}", params={"company_id": freee.company_id})
    assert fetched.json()["deal"] == deal

    # PUT replaces the lines: the kept line keeps its id, the omitted one is deleted
    update = {"company_id": freee.company_id, "issue_date": "2025-01-10", "type": "income",
              "ref_number": body["ref_number"],
              "details": [{"id": lines[0]["id"], "account_item_id": freee.account("売上高"),
                           "tax_code": 129, "amount": 12080}]}
    updated = freee.http.put(f"/api/1/deals/{deal['id']}", json=update)
    assert updated.status_code == 200
    after = updated.json()["deal"]
    assert [(d["id"], d["amount"], d["vat"]) for d in after["details"]] == [
        (lines[0]["id"], 12080, 1098)]
    assert after["status"] == "settled"  # payments untouched by PUT
    update["details"].append({"account_item_id": freee.account("雑収入"), "tax_code": 2,
                              "amount": 100})
    grown = freee.http.put(f"/api/1/deals/{deal['id']}", json=update).json()["deal"]
    assert grown["amount"] == 12180 and grown["status"] == "unsettled"
    assert grown["due_amount"] == 100 and len(grown["details"]) == 2

    deleted = freee.http.delete(f"/api/1/deals/{deal['id']}",
                                params={"company_id": freee.company_id})
    assert deleted.status_code == 204 and deleted.content == b""
    gone = freee.http.get(f"/api/1/deals/{deal['id']}", params={"company_id": freee.company_id})
    assert gone.status_code == 404
    assert gone.json()["errors"][0] == {"type": "status",
                                        "messages": ["リソースが見つかりません。"]}


def test_unsettled_deal_and_payments(freee: Freee):
    deal = freee.post_deal(freee.sale(3300, settled=False, due_date="2025-02-10")).json()["deal"]
    assert (deal["status"], deal["due_amount"], deal["due_date"]) == ("unsettled", 3300,
                                                                      "2025-02-10")
    assert "payments" not in deal
    url = f"/api/1/deals/{deal['id']}/payments"
    payment = {"company_id": freee.company_id, "date": "2025-01-31",
               "from_walletable_type": "bank_account",
               "from_walletable_id": freee.wallet("普通預金"), "amount": 3000}
    partial = freee.http.post(url, json=payment)
    assert partial.status_code == 201
    assert partial.json()["deal"]["due_amount"] == 300
    assert partial.json()["deal"]["status"] == "unsettled"
    over = freee.http.post(url, json={**payment, "amount": 301})
    assert over.status_code == 400
    assert validation_messages(over) == [
        "支払金額の合計 (3,301円) が取引金額 (3,300円) を超えています。"]
    below_one = freee.http.post(url, json={**payment, "amount": 0})
    assert validation_messages(below_one) == ["amount は1以上の値を指定してください。"]
    settled = freee.http.post(url, json={**payment, "amount": 300}).json()["deal"]
    assert settled["status"] == "settled"

    payment_id = settled["payments"][0]["id"]
    changed = freee.http.put(f"{url}/{payment_id}", json={**payment, "amount": 2000})
    assert changed.status_code == 200 and changed.json()["deal"]["due_amount"] == 1000
    removed = freee.http.delete(f"{url}/{payment_id}", params={"company_id": freee.company_id})
    assert removed.status_code == 204
    final = freee.http.get(f"/api/1/deals/{deal['id']}", params={"company_id": freee.company_id})
    assert final.json()["deal"]["due_amount"] == 3000
    assert freee.http.delete(f"{url}/1", params={"company_id": freee.company_id}
                             ).status_code == 404


def test_negative_deal_with_negative_payment(freee: Freee):
    refund = freee.post_deal(freee.sale(-1100))
    assert refund.status_code == 201
    deal = refund.json()["deal"]
    assert (deal["amount"], deal["details"][0]["vat"], deal["status"]) == (-1100, -100, "settled")


def test_deal_list_filters_paging_and_total_count(freee: Freee):
    for day in ("2025-01-10", "2025-01-11", "2025-01-11", "2025-01-12"):
        assert freee.post_deal(freee.sale(1000, day=day)).status_code == 201
    assert freee.post_deal(freee.sale(500, day="2025-01-11", settled=False)).status_code == 201
    expense = freee.sale(770, day="2025-01-11", type="expense")
    expense["details"][0].update(account_item_id=freee.account("消耗品費"), tax_code=136)
    assert freee.post_deal(expense).status_code == 201

    def listing(**params: object) -> dict:
        response = freee.http.get("/api/1/deals",
                                  params={"company_id": freee.company_id, **params})
        assert response.status_code == 200, response.text
        return response.json()

    one_day = listing(start_issue_date="2025-01-11", end_issue_date="2025-01-11")
    assert one_day["meta"]["total_count"] == 4
    assert listing(start_issue_date="2025-01-11", end_issue_date="2025-01-11",
                   type="income")["meta"]["total_count"] == 3
    assert listing(status="unsettled")["meta"]["total_count"] == 1
    assert listing(account_item_id=freee.account("消耗品費"))["meta"]["total_count"] == 1
    everything = listing()
    assert everything["meta"]["total_count"] == 6
    assert len(everything["deals"]) == 6
    dates = [d["issue_date"] for d in everything["deals"]]
    assert dates == sorted(dates, reverse=True)  # newest first
    first, second = listing(limit=4), listing(limit=4, offset=4)
    ids = [d["id"] for d in first["deals"] + second["deals"]]
    assert len(ids) == 6 == len(set(ids))
    assert first["meta"]["total_count"] == second["meta"]["total_count"] == 6
    too_many = freee.http.get("/api/1/deals", params={"company_id": freee.company_id,
                                                      "limit": 101})
    assert validation_messages(too_many) == ["limit は100以下の値を指定してください。"]
    bad_date = freee.http.get("/api/1/deals", params={"company_id": freee.company_id,
                                                      "start_issue_date": "2025/01/11"})
    assert validation_messages(bad_date) == [
        "start_issue_date は不正な日付フォーマットです。入力例：2019-12-17"]


def test_transfers(freee: Freee):
    cid = freee.company_id
    body = {"company_id": cid, "date": "2025-01-10", "from_walletable_type": "wallet",
            "from_walletable_id": freee.wallet("現金"),
            "to_walletables": [{"type": "bank_account", "id": freee.wallet("普通預金"),
                                "amount": 50000,
                                "description": "銀行入金 POS-0001-01-20250110-M1"}]}
    created = freee.http.post("/api/1/transfers", json=body)
    assert created.status_code == 201
    transfer = created.json()["transfer"]
    assert transfer["amount"] == 50000 and transfer["to_walletable_id"] == freee.wallet("普通預金")
    assert transfer["to_walletables"][0]["description"].endswith("M1")
    legacy = {k: v for k, v in body.items() if k != "to_walletables"}
    legacy.update(to_walletable_type="bank_account", to_walletable_id=freee.wallet("普通預金"),
                  amount=100, date="2025-01-12")
    assert freee.http.post("/api/1/transfers", json=legacy).status_code == 201

    listed = freee.http.get("/api/1/transfers", params={"company_id": cid,
                                                        "start_date": "2025-01-10",
                                                        "end_date": "2025-01-10"})
    assert [t["id"] for t in listed.json()["transfers"]] == [transfer["id"]]
    one = freee.http.get(f"/api/1/transfers/{transfer['id']}", params={"company_id": cid})
    assert one.json()["transfer"] == transfer

    same = {**body, "to_walletables": [{"type": "wallet", "id": freee.wallet("現金"),
                                        "amount": 1}]}
    assert validation_messages(freee.http.post("/api/1/transfers", json=same)) == [
        "to_walletables[0]: 振替元と同じ口座には振り替えられません。"]
    zero = {**body, "to_walletables": [{**body["to_walletables"][0], "amount": 0}]}
    assert validation_messages(freee.http.post("/api/1/transfers", json=zero)) == [
        "to_walletables[0].amount は1以上の金額を指定してください。"]
    wrong_type = {**body, "from_walletable_type": "bank_account"}
    assert freee.http.post("/api/1/transfers", json=wrong_type).status_code == 400

    deleted = freee.http.delete(f"/api/1/transfers/{transfer['id']}", params={"company_id": cid})
    assert deleted.status_code == 204
    assert [t["date"] for t in freee.control.transfers()] == ["2025-01-12"]


def test_unknown_paths_and_unemulated_operations_are_404(freee: Freee):
    nowhere = freee.http.get("/api/1/nowhere")
    assert nowhere.status_code == 404
    assert nowhere.json()["errors"][0]["messages"] == ["リソースが見つかりません。"]
    journals = freee.http.get("/api/1/manual_journals", params={"company_id": freee.company_id})
    assert journals.status_code == 404


def test_invalid_json_body(freee: Freee):
    response = freee.http.post("/api/1/deals", content=b"{not json",
                               headers={"content-type": "application/json"})
    assert validation_messages(response) == ["JSONの形式が不正です。"]


def test_form_urlencoded_deal_with_nested_lines(freee: Freee):
    form = {
        "company_id": str(freee.company_id), "issue_date": "2025-01-10", "type": "income",
        "details[0][account_item_id]": str(freee.account("売上高")),
        "details[0][tax_code]": "129", "details[0][amount]": "1100",
        "details[0][tag_ids][]": str(freee.masters["tags"]["POS"]),
        "details[1][account_item_id]": str(freee.account("売上高")),
        "details[1][tax_code]": "156", "details[1][amount]": "1080",
    }
    created = freee.http.post("/api/1/deals", data=form)
    assert created.status_code == 201, created.text
    deal = created.json()["deal"]
    assert [(d["tax_code"], d["amount"], d["vat"]) for d in deal["details"]] == [
        (129, 1100, 100), (156, 1080, 80)]
    assert deal["details"][0]["tag_ids"] == [freee.masters["tags"]["POS"]]
    bad = freee.http.post("/api/1/deals", data={**form, "details[1][amount]": "abc"})
    assert validation_messages(bad) == ["details[1].amount は整数で指定してください。"]
