"""freee's business rules for deals, payments and transfers, and their response shapes.

Pure: functions take the company's masters (a ``Book``) and a request body that already
passed the schema, and either return rows to store or raise ``ApiError`` (400) with every
problem found, as freee lists several validation messages at once.

Rules (issue 3; notes/freee-api.md §2-3): unknown ids; a tax code not available or not valid
on the date; an issue date outside every fiscal year, in a closed year, or on or before its
month_end_date; more than 100 lines; a 現金・預金 account on a line of an unsettled deal or of
a taxed line; payments over the deal amount. A line with a negative amount is a 控除・マイナス行
(schema: "マイナスの値を指定した場合、控除・マイナス行として登録されます"), on income and expense
deals alike: it lowers the deal amount and keeps the deal's entry_side; a computed vat has the
amount's sign.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from gatewayd.sim.freee import errors, seed
from gatewayd.sim.freee import facts as fact_rules
from gatewayd.sim.freee.facts import FactSwitches
from gatewayd.sim.freee.storage import Db, Row

MAX_DETAILS = 100
DEAL_ORIGIN_NAME = "API"
WRITABLE_ROLES = frozenset({"admin", "simple_accounting", "self_only"})
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class Book:
    """The masters of one company, read in the transaction that uses them."""

    company_id: int
    profile: Row
    fiscal_years: list[Row]
    taxes: dict[int, Row]
    account_items: dict[int, Row]
    walletables: dict[int, Row]
    items: dict[int, Row]
    sections: dict[int, Row]
    tags: dict[int, Row]
    partners: dict[int, Row]
    facts: FactSwitches = field(default_factory=FactSwitches)

    @classmethod
    def load(cls, db: Db, company_id: int, switches: FactSwitches | None = None) -> Book:
        profile = db.company_profile(company_id) or {}
        return cls(
            company_id=company_id,
            profile=profile,
            fiscal_years=db.fiscal_years(company_id),
            taxes={t["code"]: t for t in db.taxes(company_id)},
            account_items={a["id"]: a for a in db.account_items(company_id)},
            walletables={w["id"]: w for w in db.walletables(company_id)},
            items={m["id"]: m for m in db.masters(company_id, "item")},
            sections={m["id"]: m for m in db.masters(company_id, "section")},
            tags={m["id"]: m for m in db.masters(company_id, "tag")},
            partners={m["id"]: m for m in db.masters(company_id, "partner")},
            facts=switches or FactSwitches(),
        )

    def tax_fraction(self, day: str) -> int:
        year = self.fiscal_year_of(day)
        return int(year.get("tax_fraction", 0)) if year else 0

    def fiscal_year_of(self, day: str) -> Row | None:
        return next(
            (y for y in self.fiscal_years if y["start_date"] <= day <= y["end_date"]), None
        )


def parse_date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or not _DATE.match(value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def date_message(label: str) -> str:
    return f"{label} は不正な日付フォーマットです。入力例：2019-12-17"


def period_messages(book: Book, day: str, label: str) -> list[str]:
    """Why ``day`` may not be booked: outside every fiscal year, closed year, month close."""
    year = book.fiscal_year_of(day)
    if year is None:
        if not book.facts["deal_outside_fiscal_years_refused"]:
            return []
        return [f"{label} ({day}) はいずれの会計年度にも含まれません。会計年度を確認してください。"]
    if year["is_closed"]:
        return [
            f"{label} ({day}) は締め済みの会計年度 ({year['start_date']}〜{year['end_date']}) "
            "に含まれるため、登録・更新・削除できません。"
        ]
    month_end = year.get("month_end_date")
    if month_end and day <= month_end:
        return [
            f"{label} ({day}) は月締め済みの期間 ({month_end} まで) に含まれるため、"
            "登録・更新・削除できません。"
        ]
    return []


def tax_amount(amount: int, rate: int, fraction: int) -> int:
    """Consumption tax inside a tax-inclusive amount (fraction 0 floor, 1 ceil, 2 round)."""
    if rate == 0:
        return 0
    numerator = abs(amount) * rate
    denominator = 100 + rate
    if fraction == 1:
        value = -(-numerator // denominator)
    elif fraction == 2:
        value = (2 * numerator + denominator) // (2 * denominator)
    else:
        value = numerator // denominator
    return value if amount >= 0 else -value


def _tax_rate(tax: Row) -> int:
    return seed.TaxSeed(
        tax["code"], tax["name"], tax["name_ja"], tax["display_category"], tax["available"]
    ).rate


# -- deals --------------------------------------------------------------------------------


@dataclass
class DealPlan:
    """What to store for a deal: its row, lines and (on create) payments."""

    deal: Row
    details: list[Row]
    payments: list[Row]


def build_deal(book: Book, body: Row, existing: Row | None = None) -> DealPlan:
    """Check a create (``existing`` None) or update body and return what to store."""
    messages: list[str] = []
    issue_date = body["issue_date"]
    if parse_date(issue_date) is None:
        messages.append(date_message("issue_date"))
    else:
        messages += period_messages(book, issue_date, "issue_date")
    if existing is not None:
        messages += period_messages(book, existing["issue_date"], "更新前の issue_date")
        if existing["type"] != body["type"]:
            messages.append("収支区分 (type) は変更できません。取引を削除して作り直してください。")
    due_date = body.get("due_date")
    if due_date is not None and parse_date(due_date) is None:
        messages.append(date_message("due_date"))
    partner_id = _deal_partner(book, body, messages)
    if body.get("receipt_ids"):
        messages += [f"receipt_ids ({r}) のファイルボックスが見つかりません。"
                     for r in body["receipt_ids"]]

    lines = body.get("details", [])
    if len(lines) > MAX_DETAILS:
        messages.append(f"明細行 (details) は最大{MAX_DETAILS}行までです（{len(lines)}行）。")
    if not lines:
        messages.append("明細行 (details) を1行以上指定してください。")
    side = "credit" if body["type"] == "income" else "debit"
    day = issue_date if parse_date(issue_date) else None
    existing_line_ids = {d["id"] for d in existing["details"]} if existing else set()
    details = [
        _detail(book, index, line, side, day, existing_line_ids, messages)
        for index, line in enumerate(lines)
    ]
    amount = sum(d["amount"] for d in details)

    if existing is None:
        payments = [_payment(book, f"payments[{i}]", p, messages)
                    for i, p in enumerate(body.get("payments") or [])]
    else:
        payments = [dict(p) for p in existing["payments"]]
    paid = sum(p["amount"] for p in payments)
    messages += _paid_messages(paid, amount)
    messages += _cash_account_messages(book, details, paid, amount)
    messages += fact_rules.deal_messages(book.facts, body, details, payments, amount)
    if messages:
        raise errors.bad_request(*messages)
    deal = {
        "company_id": book.company_id,
        "issue_date": issue_date,
        "due_date": due_date,
        "type": body["type"],
        "partner_id": partner_id,
        "ref_number": body.get("ref_number"),
        "amount": amount,
    }
    return DealPlan(deal, details, payments)


def _deal_partner(book: Book, body: Row, messages: list[str]) -> int | None:
    partner_id = body.get("partner_id")
    if partner_id is not None and body.get("partner_code") is not None:
        messages.append("partner_id と partner_code は同時に指定できません。")
    if body.get("partner_code") is not None:
        if not book.profile.get("use_partner_code"):
            messages.append("取引先コードが有効になっていないため partner_code は使用できません。")
        else:
            code = body["partner_code"]
            match = [p["id"] for p in book.partners.values() if p["code"] == code]
            if not match:
                messages.append(f"partner_code ({code}) の取引先が見つかりません。")
            return match[0] if match else None
    if partner_id is not None and partner_id not in book.partners:
        messages.append(f"partner_id ({partner_id}) の取引先が見つかりません。")
    return int(partner_id) if partner_id is not None else None


def _detail(
    book: Book,
    index: int,
    line: Row,
    side: str,
    day: str | None,
    existing_line_ids: set[int],
    messages: list[str],
) -> Row:
    where = f"details[{index}]"
    line_id = line.get("id")
    if line_id is not None and line_id not in existing_line_ids:
        messages.append(f"{where}.id ({line_id}) の明細行がこの取引に見つかりません。")
        line_id = None
    account_id = line.get("account_item_id")
    if line.get("account_item_code") is not None:
        if account_id is not None:
            messages.append(
                f"{where}: account_item_id と account_item_code はどちらか一方を指定してください。"
            )
        else:
            messages.append(
                f"{where}.account_item_code: 勘定科目コードが有効になっていないため使用できません。"
            )
    elif account_id is None:
        messages.append(f"{where}: account_item_id か account_item_code を指定してください。")
    elif account_id not in book.account_items:
        messages.append(f"{where}.account_item_id ({account_id}) の勘定科目が見つかりません。")
    elif not book.account_items[account_id]["available"]:
        messages.append(f"{where}.account_item_id ({account_id}) は使用しない設定の勘定科目です。")

    tax_code = line["tax_code"]
    tax = book.taxes.get(tax_code)
    vat = line.get("vat")
    if tax is None:
        messages.append(f"{where}.tax_code ({tax_code}) の税区分が見つかりません。")
    elif not tax["available"]:
        messages.append(
            f"{where}.tax_code ({tax_code} {tax['name_ja']}) は利用できない税区分です。"
        )
    elif day is not None and not _tax_valid_on(tax, day):
        messages.append(
            f"{where}.tax_code ({tax_code} {tax['name_ja']}): "
            "この日付で有効な税区分ではありません。"
        )
    amount = int(line["amount"])
    rate = _tax_rate(tax) if tax else 0
    if tax is not None and tax["display_category"] is None and vat is not None:
        messages.append(
            f"{where}.vat: 税区分 {tax['name_ja']} には消費税額 (vat) を指定できません。"
        )
    if (
        vat is not None
        and abs(vat) > abs(amount)
        and not fact_rules.vat_allowed_over_amount(book.facts, amount, vat)
    ):
        messages.append(f"{where}.vat ({vat}) が金額 ({amount}) を超えています。")
    if vat is None:
        vat = tax_amount(amount, rate, book.tax_fraction(day or ""))

    for key, table, label in (("item_id", book.items, "品目"),
                              ("section_id", book.sections, "部門")):
        value = line.get(key)
        if value is not None and value not in table:
            messages.append(f"{where}.{key} ({value}) の{label}が見つかりません。")
    for key, label in (("item_code", "品目"), ("section_code", "部門")):
        if line.get(key) is not None:
            messages.append(f"{where}.{key}: {label}コードが有効になっていないため使用できません。")
    partner = line.get("partner_id")
    if partner not in (None, 0) and partner not in book.partners:
        messages.append(f"{where}.partner_id ({partner}) の取引先が見つかりません。")
    if line.get("partner_code") is not None and not book.profile.get("use_partner_code"):
        messages.append(
            f"{where}.partner_code: 取引先コードが有効になっていないため使用できません。"
        )
    for tag in line.get("tag_ids") or []:
        if tag not in book.tags:
            messages.append(f"{where}.tag_ids ({tag}) のメモタグが見つかりません。")
    for n in (1, 2, 3):
        if line.get(f"segment_{n}_tag_id") is not None or line.get(f"segment_{n}_tag_code"):
            messages.append(
                f"{where}.segment_{n}_tag: ご利用のプランではセグメントタグを利用できません。"
            )
    return {
        "id": line_id,
        "account_item_id": account_id,
        "tax_code": tax_code,
        "amount": amount,
        "vat": int(vat),
        "item_id": line.get("item_id"),
        "section_id": line.get("section_id"),
        "partner_id": partner or None,
        "tag_ids": list(line.get("tag_ids") or []),
        "description": line.get("description") or "",
        "entry_side": side,
    }


def _tax_valid_on(tax: Row, day: str) -> bool:
    if tax.get("valid_from") and day < tax["valid_from"]:
        return False
    return not (tax.get("valid_to") and day > tax["valid_to"])


def _payment(book: Book, where: str, payment: Row, messages: list[str]) -> Row:
    if parse_date(payment["date"]) is None:
        messages.append(date_message(f"{where}.date"))
    else:
        messages += period_messages(book, payment["date"], f"{where}.date")
    kind = payment["from_walletable_type"]
    target = payment["from_walletable_id"]
    if kind == "private_account_item":
        account = book.account_items.get(target)
        if account is None or account["account_category_id"] == seed.CASH_CATEGORY_ID:
            messages.append(f"{where}.from_walletable_id ({target}) の勘定科目が見つかりません。")
    else:
        wallet = book.walletables.get(target)
        if wallet is None or wallet["type"] != kind:
            messages.append(
                f"{where}.from_walletable_id ({target}) の口座 ({kind}) が見つかりません。"
            )
    if payment["amount"] == 0:
        messages.append(f"{where}.amount は0以外の金額を指定してください。")
    return {
        "date": payment["date"],
        "from_walletable_type": kind,
        "from_walletable_id": target,
        "amount": int(payment["amount"]),
    }


def _paid_messages(paid: int, amount: int) -> list[str]:
    """Payments may not exceed the deal amount (same sign, not larger in size)."""
    if paid == 0:
        return []
    if (paid > 0) != (amount > 0) or abs(paid) > abs(amount):
        return [f"支払金額の合計 ({paid:,}円) が取引金額 ({amount:,}円) を超えています。"]
    return []


def _cash_account_messages(book: Book, details: list[Row], paid: int, amount: int) -> list[str]:
    """news/5930: a 現金・預金 account on a line needs a settled deal and untaxed lines."""
    cash_lines = [
        d for d in details
        if (book.account_items.get(d["account_item_id"]) or {}).get("account_category_id")
        == seed.CASH_CATEGORY_ID
    ]
    if not cash_lines:
        return []
    names = "・".join(
        sorted({book.account_items[d["account_item_id"]]["name"] for d in cash_lines})
    )
    messages = []
    if paid != amount:
        messages.append(
            f"現金・預金の勘定科目 ({names}) を明細行に使う取引は、未決済・一部決済にできません。"
        )
    if any(d["tax_code"] not in seed.CASH_LINE_TAX_CODES or d["vat"] != 0 for d in details):
        messages.append(
            f"現金・預金の勘定科目 ({names}) を明細行に使う取引では、すべての明細行の税区分を"
            "対象外・不課税にし、消費税額を0にしてください。"
        )
    return messages


def check_payment(book: Book, deal: Row, body: Row, replacing: int | None = None) -> Row:
    """A payment added to (or replacing one of) a stored deal."""
    messages: list[str] = []
    messages += period_messages(book, deal["issue_date"], "取引の issue_date")
    payment = _payment(book, "payment", body, messages)
    others = sum(p["amount"] for p in deal["payments"] if p["id"] != replacing)
    messages += _paid_messages(others + payment["amount"], deal["amount"])
    if messages:
        raise errors.bad_request(*messages)
    return payment


def check_payment_removal(book: Book, deal: Row, payment_id: int) -> None:
    messages = period_messages(book, deal["issue_date"], "取引の issue_date")
    remaining = sum(p["amount"] for p in deal["payments"] if p["id"] != payment_id)
    messages += _cash_account_messages(book, deal["details"], remaining, deal["amount"])
    if messages:
        raise errors.bad_request(*messages)


def check_deal_removal(book: Book, deal: Row) -> None:
    messages = period_messages(book, deal["issue_date"], "issue_date")
    if messages:
        raise errors.bad_request(*messages)


def deal_status(deal: Row) -> tuple[str, int]:
    due = deal["amount"] - sum(p["amount"] for p in deal["payments"])
    return ("settled" if due == 0 else "unsettled"), due


def deal_json(deal: Row) -> Row:
    """A stored deal in freee's ``deal`` shape (codes are off in the seed, so no *_code)."""
    status, due = deal_status(deal)
    body: Row = {
        "id": deal["id"],
        "company_id": deal["company_id"],
        "issue_date": deal["issue_date"],
        "due_date": deal["due_date"],
        "amount": deal["amount"],
        "due_amount": due,
        "type": deal["type"],
        "partner_id": deal["partner_id"],
        "partner_code": None,
        "ref_number": deal["ref_number"],
        "status": status,
        "deal_origin_name": DEAL_ORIGIN_NAME,
        "details": [
            {
                "id": line["id"],
                "account_item_id": line["account_item_id"],
                "tax_code": line["tax_code"],
                "partner_id": line["partner_id"],
                "partner_code": None,
                "item_id": line["item_id"],
                "section_id": line["section_id"],
                "tag_ids": line["tag_ids"],
                "amount": line["amount"],
                "vat": line["vat"],
                "description": line["description"],
                "entry_side": line["entry_side"],
            }
            for line in deal["details"]
        ],
        "receipts": [],
    }
    if deal["payments"]:
        body["payments"] = [
            {
                "id": p["id"],
                "date": p["date"],
                "from_walletable_type": p["from_walletable_type"],
                "from_walletable_id": p["from_walletable_id"],
                "amount": p["amount"],
            }
            for p in deal["payments"]
        ]
    return body


# -- transfers ----------------------------------------------------------------------------


def build_transfer(book: Book, body: Row) -> Row:
    """Check a transfer body; the single-destination fields become one destination row."""
    messages: list[str] = []
    day = body["date"]
    if parse_date(day) is None:
        messages.append(date_message("date"))
    else:
        messages += period_messages(book, day, "date")
    source = (body["from_walletable_type"], body["from_walletable_id"])
    if not _wallet_matches(book, *source):
        messages.append(
            f"from_walletable_id ({source[1]}) の口座 ({source[0]}) が見つかりません。"
        )
    single = [body.get(k) for k in ("to_walletable_type", "to_walletable_id", "amount")]
    rows = body.get("to_walletables")
    destinations: list[Row] = []
    messages += fact_rules.transfer_messages(book.facts, body)
    if rows is not None and any(v is not None for v in single):
        messages.append(
            "to_walletables と to_walletable_type/to_walletable_id/amount は同時に指定できません。"
        )
    elif rows is not None:
        destinations = [
            {"type": r["type"], "id": r["id"], "amount": r["amount"],
             "description": r.get("description")
             if book.facts["transfer_row_description"] else None}
            for r in rows
        ]
    elif all(v is not None for v in single):
        destinations = [
            {"type": single[0], "id": single[1], "amount": single[2],
             "description": body.get("description")}
        ]
    else:
        messages.append("振替先の口座 (to_walletables) を指定してください。")
    for index, row in enumerate(destinations):
        where = f"to_walletables[{index}]"
        if not _wallet_matches(book, row["type"], row["id"]):
            messages.append(f"{where}.id ({row['id']}) の口座 ({row['type']}) が見つかりません。")
        elif (row["type"], row["id"]) == source:
            messages.append(f"{where}: 振替元と同じ口座には振り替えられません。")
        if row["amount"] <= 0:
            messages.append(f"{where}.amount は1以上の金額を指定してください。")
    if messages:
        raise errors.bad_request(*messages)
    return {
        "company_id": book.company_id,
        "date": day,
        "from_walletable_type": source[0],
        "from_walletable_id": source[1],
        "destinations": destinations,
    }


def _wallet_matches(book: Book, kind: str, wallet_id: int) -> bool:
    wallet = book.walletables.get(wallet_id)
    return wallet is not None and wallet["type"] == kind


def transfer_json(row: Row) -> Row:
    first = row["destinations"][0]
    return {
        "id": row["id"],
        "company_id": row["company_id"],
        "amount": sum(d["amount"] for d in row["destinations"]),
        "date": row["date"],
        "from_walletable_type": row["from_walletable_type"],
        "from_walletable_id": row["from_walletable_id"],
        "to_walletable_type": first["type"],
        "to_walletable_id": first["id"],
        "description": first.get("description"),
        "to_walletables": [
            {"type": d["type"], "id": d["id"], "amount": d["amount"],
             "description": d.get("description")}
            for d in row["destinations"]
        ],
    }


def walletable_balances(deals: list[Row], transfers: list[Row]) -> dict[int, int]:
    """Balance of each walletable from payments (income in, expense out) and transfers."""
    balances: dict[int, int] = {}
    for deal in deals:
        sign = 1 if deal["type"] == "income" else -1
        for payment in deal["payments"]:
            if payment["from_walletable_type"] != "private_account_item":
                wallet = payment["from_walletable_id"]
                balances[wallet] = balances.get(wallet, 0) + sign * payment["amount"]
    for transfer in transfers:
        for dest in transfer["destinations"]:
            source = transfer["from_walletable_id"]
            balances[source] = balances.get(source, 0) - dest["amount"]
            balances[dest["id"]] = balances.get(dest["id"], 0) + dest["amount"]
    return balances
