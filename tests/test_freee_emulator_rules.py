"""Business rules and schema validation of deals, with freee's 400 body."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gatewayd.sim.freee.testing import validation_messages

if TYPE_CHECKING:
    from freee_emulator_fixtures import Freee

pytest_plugins = ["freee_emulator_fixtures"]


def test_schema_violations_are_listed_with_freee_body(freee: Freee):
    body = {"company_id": freee.company_id, "issue_date": "2025-01-10", "type": "sale",
            "details": [{"tax_code": "129", "amount": 1.5}],
            "payments": [{"amount": 1, "date": "2025-01-10"}]}
    response = freee.post_deal(body)
    assert response.status_code == 400
    assert validation_messages(response) == [
        "details[0].amount は整数で指定してください。",
        "details[0].tax_code は整数で指定してください。",
        "payments[0].from_walletable_id, payments[0].from_walletable_type は必須です。",
        'type は次のいずれかを指定してください: "income", "expense"',
    ]
    empty = freee.post_deal({})
    assert validation_messages(empty) == ["company_id, details, issue_date, type は必須です。"]
    assert freee.control.deals() == []


def test_bad_date_format(freee: Freee):
    response = freee.post_deal(freee.sale(day="2025-02-30"))
    messages = validation_messages(response)
    assert "issue_date は不正な日付フォーマットです。入力例：2019-12-17" in messages


def test_unknown_ids_are_refused(freee: Freee):
    body = freee.sale()
    body["partner_id"] = 1
    body["details"][0].update(account_item_id=1, item_id=2, section_id=3, tag_ids=[4])
    body["payments"][0]["from_walletable_id"] = 5
    body["receipt_ids"] = [6]
    messages = validation_messages(freee.post_deal(body))
    assert messages == [
        "partner_id (1) の取引先が見つかりません。",
        "receipt_ids (6) のファイルボックスが見つかりません。",
        "details[0].account_item_id (1) の勘定科目が見つかりません。",
        "details[0].item_id (2) の品目が見つかりません。",
        "details[0].section_id (3) の部門が見つかりません。",
        "details[0].tag_ids (4) のメモタグが見つかりません。",
        "payments[0].from_walletable_id (5) の口座 (wallet) が見つかりません。",
    ]
    wrong_type = freee.sale()
    wrong_type["payments"][0]["from_walletable_type"] = "bank_account"
    assert validation_messages(freee.post_deal(wrong_type)) == [
        f"payments[0].from_walletable_id ({freee.wallet('現金')}) の口座 (bank_account) "
        "が見つかりません。"]
    unknown_tax = freee.sale()
    unknown_tax["details"][0]["tax_code"] = 9999
    assert validation_messages(freee.post_deal(unknown_tax)) == [
        "details[0].tax_code (9999) の税区分が見つかりません。"]


def test_tax_not_available_and_not_valid_on_the_date(freee: Freee):
    export = freee.sale(tax="輸出売上")
    assert validation_messages(freee.post_deal(export)) == [
        "details[0].tax_code (22 輸出売上) は利用できない税区分です。"]
    freee.control.set_tax_available(129, False)
    assert validation_messages(freee.post_deal(freee.sale())) == [
        "details[0].tax_code (129 課税売上10%) は利用できない税区分です。"]
    freee.control.set_tax_available(129, True)
    old_rate = freee.sale(tax="課税売上8%")
    assert validation_messages(freee.post_deal(old_rate)) == [
        "details[0].tax_code (101 課税売上8%): この日付で有効な税区分ではありません。"]


def test_vat_is_computed_or_taken_and_refused_on_untaxed_codes(freee: Freee):
    computed = freee.post_deal(freee.sale(10800, tax="課税売上8%（軽）")).json()["deal"]
    assert computed["details"][0]["vat"] == 800
    given = freee.sale(11000)
    given["details"][0]["vat"] = 999
    assert freee.post_deal(given).json()["deal"]["details"][0]["vat"] == 999
    untaxed = freee.sale(500, tax="対象外")
    untaxed["details"][0]["vat"] = 0
    assert validation_messages(freee.post_deal(untaxed)) == [
        "details[0].vat: 税区分 対象外 には消費税額 (vat) を指定できません。"]


def test_issue_date_outside_every_fiscal_year(freee: Freee):
    for day in ("2024-12-31", "2027-01-01"):
        messages = validation_messages(freee.post_deal(freee.sale(day=day)))
        assert (f"issue_date ({day}) はいずれの会計年度にも含まれません。"
                "会計年度を確認してください。") in messages
    assert freee.post_deal(freee.sale(day="2026-12-31")).status_code == 201


def test_closed_fiscal_year_refuses_create_update_and_delete(freee: Freee):
    deal = freee.post_deal(freee.sale(day="2025-06-30")).json()["deal"]
    year = freee.control.fiscal_year_of("2025-06-30")
    freee.control.set_fiscal_year(year["id"], is_closed=True)
    company = freee.http.get(f"/api/1/companies/{freee.company_id}").json()["company"]
    assert [y["is_closed"] for y in company["fiscal_years"]] == [True, False]
    refused = freee.post_deal(freee.sale(day="2025-07-01", settled=False))
    assert validation_messages(refused) == [
        "issue_date (2025-07-01) は締め済みの会計年度 (2025-01-01〜2025-12-31) に含まれるため、"
        "登録・更新・削除できません。"]
    removal = freee.http.delete(f"/api/1/deals/{deal['id']}",
                                params={"company_id": freee.company_id})
    assert removal.status_code == 400
    assert freee.post_deal(freee.sale(day="2026-01-05")).status_code == 201
    freee.control.set_fiscal_year(year["id"], is_closed=False)
    assert freee.post_deal(freee.sale(day="2025-07-01")).status_code == 201


def test_month_end_date_refuses_on_and_before_it(freee: Freee):
    year = freee.control.fiscal_year_of("2026-03-01")
    freee.control.set_fiscal_year(year["id"], month_end_date="2026-03-31")
    for day in ("2026-01-01", "2026-03-31"):
        assert validation_messages(freee.post_deal(freee.sale(day=day, settled=False))) == [
            f"issue_date ({day}) は月締め済みの期間 (2026-03-31 まで) に含まれるため、"
            "登録・更新・削除できません。"]
    assert freee.post_deal(freee.sale(day="2026-04-01")).status_code == 201
    # a payment dated in the closed months is refused as well
    late = freee.sale(day="2026-04-01")
    late["payments"][0]["date"] = "2026-03-31"
    assert validation_messages(freee.post_deal(late)) == [
        "payments[0].date (2026-03-31) は月締め済みの期間 (2026-03-31 まで) に含まれるため、"
        "登録・更新・削除できません。"]


def test_new_fiscal_year_opens_dates(freee: Freee):
    assert freee.post_deal(freee.sale(day="2027-01-04")).status_code == 400
    freee.control.add_fiscal_year("2027-01-01", "2027-12-31")
    assert freee.post_deal(freee.sale(day="2027-01-04")).status_code == 201


def test_at_most_100_lines(freee: Freee):
    body = freee.sale(100)
    line = body["details"][0]
    body["details"] = [dict(line, amount=1) for _ in range(100)]
    ok = freee.post_deal(body)
    assert ok.status_code == 201 and len(ok.json()["deal"]["details"]) == 100
    body["details"].append(dict(line, amount=1))
    body["payments"][0]["amount"] = 101
    assert validation_messages(freee.post_deal(body)) == [
        "明細行 (details) は最大100行までです（101行）。"]
    deal_id = ok.json()["deal"]["id"]
    update = {k: body[k] for k in ("company_id", "issue_date", "type")}
    update["details"] = [{"account_item_id": line["account_item_id"], "tax_code": 129,
                          "amount": 1}] * 101
    assert freee.http.put(f"/api/1/deals/{deal_id}", json=update).status_code == 400


def test_cash_account_lines_need_a_settled_deal_and_untaxed_lines(freee: Freee):
    cash_line = {"account_item_id": freee.account("現金"), "tax_code": 2, "amount": 1000}
    unsettled = freee.sale(settled=False)
    unsettled["details"] = [cash_line]
    assert validation_messages(freee.post_deal(unsettled)) == [
        "現金・預金の勘定科目 (現金) を明細行に使う取引は、未決済・一部決済にできません。"]
    taxed = freee.sale(1000)
    taxed["details"] = [dict(cash_line, account_item_id=freee.account("普通預金"), tax_code=129)]
    assert validation_messages(freee.post_deal(taxed)) == [
        "現金・預金の勘定科目 (普通預金) を明細行に使う取引では、すべての明細行の税区分を"
        "対象外・不課税にし、消費税額を0にしてください。"]
    mixed = freee.sale(1000)
    mixed["details"] = [dict(cash_line, amount=500),
                        {"account_item_id": freee.account("売上高"), "tax_code": 129,
                         "amount": 500}]
    assert len(validation_messages(freee.post_deal(mixed))) == 1
    allowed = freee.sale(1000)
    allowed["details"] = [cash_line]
    deal = freee.post_deal(allowed)
    assert deal.status_code == 201
    # removing its payment would leave it unsettled: refused
    payment_id = deal.json()["deal"]["payments"][0]["id"]
    removal = freee.http.delete(f"/api/1/deals/{deal.json()['deal']['id']}/payments/{payment_id}",
                                params={"company_id": freee.company_id})
    assert removal.status_code == 400


def test_payments_over_the_deal_amount(freee: Freee):
    over = freee.sale(1000)
    over["payments"][0]["amount"] = 1001
    assert validation_messages(freee.post_deal(over)) == [
        "支払金額の合計 (1,001円) が取引金額 (1,000円) を超えています。"]
    split = freee.sale(1000)
    split["payments"] = [dict(split["payments"][0], amount=600),
                         dict(split["payments"][0], amount=500)]
    assert freee.post_deal(split).status_code == 400
    wrong_sign = freee.sale(-1000)
    wrong_sign["payments"][0]["amount"] = 1000
    assert freee.post_deal(wrong_sign).status_code == 400
    zero = freee.sale(1000)
    zero["payments"][0]["amount"] = 0
    assert validation_messages(freee.post_deal(zero)) == [
        "payments[0].amount は0以外の金額を指定してください。"]
    partly = freee.sale(1000)
    partly["payments"][0]["amount"] = 400
    deal = freee.post_deal(partly).json()["deal"]
    assert (deal["status"], deal["due_amount"]) == ("unsettled", 600)
    # a PUT that lowers the amount below the payments is refused too
    update = {k: partly[k] for k in ("company_id", "issue_date", "type")}
    update["details"] = [{"account_item_id": freee.account("売上高"), "tax_code": 129,
                          "amount": 300}]
    assert validation_messages(freee.http.put(f"/api/1/deals/{deal['id']}", json=update)) == [
        "支払金額の合計 (400円) が取引金額 (300円) を超えています。"]


def test_put_may_not_switch_income_and_expense_or_use_foreign_line_ids(freee: Freee):
    deal = freee.post_deal(freee.sale(1000)).json()["deal"]
    update = {"company_id": freee.company_id, "issue_date": "2025-01-10", "type": "expense",
              "details": [{"id": 1, "account_item_id": freee.account("売上高"), "tax_code": 129,
                           "amount": 1000}]}
    assert validation_messages(freee.http.put(f"/api/1/deals/{deal['id']}", json=update)) == [
        "収支区分 (type) は変更できません。取引を削除して作り直してください。",
        "details[0].id (1) の明細行がこの取引に見つかりません。"]


def test_codes_and_segments_are_off_in_the_seed_company(freee: Freee):
    body = freee.sale()
    body["details"][0] = {"account_item_code": "511", "tax_code": 129, "amount": 11000,
                          "segment_1_tag_id": 1}
    assert validation_messages(freee.post_deal(body)) == [
        "details[0].account_item_code: 勘定科目コードが有効になっていないため使用できません。",
        "details[0].segment_1_tag: ご利用のプランではセグメントタグを利用できません。"]
    both = freee.sale()
    both["partner_code"] = "C1"
    both["partner_id"] = freee.masters["partners"]["カード会社"]
    assert validation_messages(freee.post_deal(both)) == [
        "partner_id と partner_code は同時に指定できません。",
        "取引先コードが有効になっていないため partner_code は使用できません。"]


def test_minus_lines_on_an_income_deal_are_deduction_lines(freee: Freee):
    """A `day` deal of the gateway: sales, a cash-short minus line, an OUT movement minus line
    (対象外, vat omitted), settled through cash by the net (schema: a negative amount is a
    控除・マイナス行)."""
    body = freee.sale(11000)
    ex = {"account_item_id": freee.account("雑損失"), "tax_code": 2, "amount": -150}
    out = {"account_item_id": freee.account("仮払金"), "tax_code": 2, "amount": -300}
    taxed = {"account_item_id": freee.account("売上高"), "tax_code": 129, "amount": -1100}
    body["details"] += [ex, out, taxed]
    body["payments"][0]["amount"] = 11000 - 150 - 300 - 1100
    deal = freee.post_deal(body).json()["deal"]
    assert deal["amount"] == 9450 and deal["status"] == "settled"
    assert [(d["amount"], d["vat"], d["entry_side"]) for d in deal["details"]] == [
        (11000, 1000, "credit"),
        (-150, 0, "credit"),
        (-300, 0, "credit"),
        (-1100, -100, "credit"),  # computed vat has the minus line's sign
    ]
    assert "（控除・マイナス行）" in freee.server.control.books_html()
    # the payments still may not exceed the net amount
    body["payments"][0]["amount"] = 9451
    assert validation_messages(freee.post_deal(body)) == [
        "支払金額の合計 (9,451円) が取引金額 (9,450円) を超えています。"]
