"""The ``/api/1/`` endpoints the gateway uses, behind freee's access checks.

Order of checks for every request (after faults, see app.py): the operation exists (404);
a live bearer token (401 expired_access_token); the app's permissions unchanged since the
token (401 re_authorization_required) and covering the method (403); the per-second limit
(429); the company's daily quota (403 with the rate-limit body); the schema (400); the
company reachable by the token (401 company_not_found) and the user's role (401
user_do_not_have_permission); then the business rules of accounting.py (400/404).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gatewayd.sim.freee import errors, openapi, seed
from gatewayd.sim.freee.accounting import (
    WRITABLE_ROLES,
    Book,
    build_deal,
    build_transfer,
    check_deal_removal,
    check_payment,
    check_payment_removal,
    date_message,
    deal_json,
    parse_date,
    transfer_json,
    walletable_balances,
)
from gatewayd.sim.freee.core import Emulator
from gatewayd.sim.freee.oauth import TokenInfo, authenticate
from gatewayd.sim.freee.storage import Db, Row


@dataclass
class Ctx:
    """One checked API request."""

    emu: Emulator
    db: Db
    op: openapi.Operation
    token: TokenInfo
    company_id: int | None
    query: dict[str, Any]
    path: dict[str, Any]
    body: dict[str, Any]

    @property
    def today(self) -> str:
        return self.emu.clock.today()


Handler = Callable[[Ctx], tuple[int, Any]]
HANDLERS: dict[str, Handler] = {}


def handles(key: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        HANDLERS[key] = func
        return func

    return register


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    if status == 204:
        return Response(status_code=204, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


def _error(exc: errors.ApiError) -> Response:
    return _json(exc.status, exc.body, exc.headers)


async def dispatch(emu: Emulator, request: Request) -> Response:
    """Serve one ``/api/1/...`` request."""
    found = openapi.find_operation(request.method, request.url.path)
    if found is None:
        if openapi.path_exists(request.url.path):
            return _error(errors.not_found("このメソッドには対応していません。"))
        return _error(errors.not_found())
    op, raw_path = found
    raw_body = await request.body()
    try:
        return _serve(emu, request, op, raw_path, raw_body)
    except errors.ApiError as exc:
        return _error(exc)


def _serve(
    emu: Emulator, request: Request, op: openapi.Operation, raw_path: dict[str, str],
    raw_body: bytes,
) -> Response:
    token = authenticate(emu, request.headers.get("authorization"))
    writes = op.method != "GET"
    client = emu.store.read().client(token.client_id)
    if client is None or frozenset(client["scopes"].split()) != token.scopes:
        raise errors.ApiError(
            401,
            {"message": "アプリの権限設定が変更されました。再度認可を行ってください。",
             "code": "re_authorization_required"},
        )
    if ("write" if writes else "read") not in token.scopes:
        raise errors.app_no_permission()
    quota_company = token.company_id or _company_hint(request, raw_path) or 0
    allowed, reset = emu.within_rate(token.client_id, quota_company)
    if not allowed:
        raise errors.too_many_requests(emu.config.rate_per_second or 0, reset)
    with emu.store.transaction() as db:
        used = db.bump_quota(quota_company, token.client_id, emu.clock.today())
    if used > emu.config.daily_quota:
        raise errors.rate_limited(emu.config.daily_quota, emu.clock.next_jst_midnight())

    query = {k: request.query_params.getlist(k) for k in request.query_params}
    check = openapi.check_request(
        op, query, raw_path, request.headers.get("content-type", ""), raw_body
    )
    if check.messages:
        raise errors.bad_request(*check.messages)
    body = check.body or {}
    company_id = _company_of(op, check.query, check.path, body)
    handler = HANDLERS.get(op.key)
    with emu.store.transaction() as db:
        if company_id is not None:
            _check_company(db, token, company_id, writes)
        if handler is None:
            raise errors.not_found("この API はエミュレータでは提供していません。")
        status, payload = handler(Ctx(emu, db, op, token, company_id, check.query,
                                      check.path, body))
    return _json(status, payload)


def _company_hint(request: Request, raw_path: dict[str, str]) -> int | None:
    text = request.query_params.get("company_id") or raw_path.get("company_id")
    return int(text) if text and text.isdigit() else None


def _company_of(
    op: openapi.Operation, query: dict[str, Any], path: dict[str, Any], body: dict[str, Any]
) -> int | None:
    if op.template.startswith("/api/1/companies/"):
        return int(path["id"])
    for source in (path, query, body):
        value = source.get("company_id")
        if isinstance(value, int):
            return value
    return None


def _check_company(db: Db, token: TokenInfo, company_id: int, writes: bool) -> None:
    role = db.role(token.user_id, company_id)
    if role is None or (token.company_id is not None and token.company_id != company_id):
        raise errors.company_not_found()
    if writes and role not in WRITABLE_ROLES:
        raise errors.user_no_permission()
    if not writes and role == "workflow":
        raise errors.user_no_permission()


def _page(rows: list[Any], query: dict[str, Any], default_limit: int) -> list[Any]:
    offset = int(query.get("offset", 0))
    limit = int(query.get("limit", default_limit))
    return rows[offset : offset + limit]


def _updated_between(rows: list[Row], query: dict[str, Any]) -> list[Row]:
    messages = []
    for key in ("start_update_date", "end_update_date"):
        if key in query and parse_date(query[key]) is None:
            messages.append(date_message(key))
    if messages:
        raise errors.bad_request(*messages)
    start, end = query.get("start_update_date"), query.get("end_update_date")
    return [
        r for r in rows
        if (start is None or r["update_date"] >= start) and (end is None or r["update_date"] <= end)
    ]


# -- companies and users ------------------------------------------------------------------


def _visible_companies(ctx: Ctx) -> list[Row]:
    members = ctx.db.memberships(ctx.token.user_id)
    return [
        m for m in members
        if ctx.token.company_id is None or m["company_id"] == ctx.token.company_id
    ]


@handles("GET /api/1/companies")
def list_companies(ctx: Ctx) -> tuple[int, Any]:
    companies = []
    for member in _visible_companies(ctx):
        profile = ctx.db.company_profile(member["company_id"]) or {}
        companies.append({
            "id": member["company_id"],
            "name": profile.get("name"),
            "name_kana": profile.get("name_kana"),
            "display_name": profile.get("display_name"),
            "company_number": profile.get("company_number", ""),
            "role": member["role"],
        })
    return 200, {"companies": companies}


@handles("GET /api/1/companies/{id}")
def get_company(ctx: Ctx) -> tuple[int, Any]:
    assert ctx.company_id is not None
    book = Book.load(ctx.db, ctx.company_id, ctx.emu.facts)
    cash = next((w["id"] for w in book.walletables.values() if w["name"] == "現金"), None)
    company: Row = {
        "id": ctx.company_id,
        **book.profile,
        "role": ctx.db.role(ctx.token.user_id, ctx.company_id),
        "default_wallet_account_id": cash,
        "fiscal_years": book.fiscal_years,
    }
    wanted = {k for k in ("account_items", "taxes", "items", "partners", "sections", "tags",
                          "walletables") if ctx.query.get(k) is True or ctx.query.get("details")}
    if "account_items" in wanted:
        company["account_items"] = [
            {"id": a["id"], "name": a["name"], "shortcut": a["shortcut"],
             "categories": a["categories"]}
            for a in book.account_items.values()
        ]
    if "taxes" in wanted:
        company["tax_codes"] = [
            {"code": t["code"], "name": t["name"], "name_ja": t["name_ja"]}
            for t in book.taxes.values()
        ]
    for key, table in (("items", book.items), ("partners", book.partners),
                       ("sections", book.sections), ("tags", book.tags)):
        if key in wanted:
            company[key] = [_master_summary(key, m) for m in table.values()]
    if "walletables" in wanted:
        company["walletables"] = [
            {"id": w["id"], "name": w["name"], "type": w["type"]}
            for w in book.walletables.values()
        ]
    return 200, {"company": company}


def _master_summary(kind: str, row: Row) -> Row:
    summary: Row = {"id": row["id"], "name": row["name"], "shortcut1": row["shortcut1"],
                    "shortcut2": row["shortcut2"]}
    if kind == "partners":
        summary["code"] = row["code"]
    if kind == "sections":
        summary["indent_count"] = 0
        summary["parent_id"] = row["extra"].get("parent_id")
    return summary


@handles("GET /api/1/users/me")
def get_me(ctx: Ctx) -> tuple[int, Any]:
    user = dict(seed.USER_PROFILE)
    if "companies" in ctx.query:
        user["companies"] = [
            {
                "id": m["company_id"],
                "display_name": (ctx.db.company_profile(m["company_id"]) or {}).get(
                    "display_name", ""
                ),
                "role": m["role"],
                "use_custom_role": False,
            }
            for m in _visible_companies(ctx)
        ]
    return 200, {"user": user}


# -- masters ------------------------------------------------------------------------------


def _company(ctx: Ctx) -> int:
    assert ctx.company_id is not None
    return ctx.company_id


def _book(ctx: Ctx) -> Book:
    """The company's masters, with the emulator's fact rules (facts.py)."""
    return Book.load(ctx.db, _company(ctx), ctx.emu.facts)


@handles("GET /api/1/account_items")
def list_account_items(ctx: Ctx) -> tuple[int, Any]:
    rows = _updated_between(ctx.db.account_items(_company(ctx)), ctx.query)
    if "base_date" in ctx.query and parse_date(ctx.query["base_date"]) is None:
        raise errors.bad_request(date_message("base_date"))
    items = [
        {
            "id": a["id"],
            "name": a["name"],
            "tax_code": a["tax_code"],
            "default_tax_code": a["tax_code"],
            "shortcut": a["shortcut"],
            "shortcut_num": a["shortcut_num"],
            "account_category": a["account_category"],
            "account_category_id": a["account_category_id"],
            "categories": a["categories"],
            "available": a["available"],
            "walletable_id": a["walletable_id"],
            "group_name": a["group_name"],
            "group_id": None,
            "corresponding_income_name": None,
            "corresponding_income_id": None,
            "corresponding_expense_name": None,
            "corresponding_expense_id": None,
            "update_date": a["update_date"],
        }
        for a in rows
    ]
    return 200, {"account_items": items}


@handles("GET /api/1/taxes/companies/{company_id}")
def list_taxes(ctx: Ctx) -> tuple[int, Any]:
    taxes = [
        {"code": t["code"], "name": t["name"], "name_ja": t["name_ja"],
         "display_category": t["display_category"], "available": t["available"]}
        for t in ctx.db.taxes(_company(ctx))
    ]
    if "display_category" in ctx.query:
        taxes = [t for t in taxes if t["display_category"] == ctx.query["display_category"]]
    if "available" in ctx.query:
        taxes = [t for t in taxes if t["available"] is ctx.query["available"]]
    return 200, {"taxes": taxes}


def _item_json(row: Row) -> Row:
    return {"id": row["id"], "company_id": row["company_id"], "name": row["name"],
            "update_date": row["update_date"], "available": row["available"],
            "shortcut1": row["shortcut1"], "shortcut2": row["shortcut2"]}


def _section_json(row: Row) -> Row:
    return {"id": row["id"], "company_id": row["company_id"], "name": row["name"],
            "available": row["available"], "long_name": row["extra"].get("long_name"),
            "shortcut1": row["shortcut1"], "shortcut2": row["shortcut2"],
            "indent_count": 1 if row["extra"].get("parent_id") else 0,
            "parent_id": row["extra"].get("parent_id"), "update_date": row["update_date"]}


def _tag_json(row: Row) -> Row:
    return {"id": row["id"], "company_id": row["company_id"], "name": row["name"],
            "update_date": row["update_date"], "shortcut1": row["shortcut1"],
            "shortcut2": row["shortcut2"]}


def _partner_json(row: Row) -> Row:
    extra = row["extra"]
    return {"id": row["id"], "code": row["code"], "company_id": row["company_id"],
            "name": row["name"], "update_date": row["update_date"],
            "available": row["available"], "shortcut1": row["shortcut1"],
            "shortcut2": row["shortcut2"], "org_code": extra.get("org_code"),
            "country_code": extra.get("country_code", "JP"),
            "long_name": extra.get("long_name"), "name_kana": extra.get("name_kana")}


_MASTERS: dict[str, tuple[str, str, Callable[[Row], Row], int | None]] = {
    # path noun -> (kind, response key, shape, default limit or None for no paging)
    "items": ("item", "item", _item_json, 50),
    "sections": ("section", "section", _section_json, None),
    "tags": ("tag", "tag", _tag_json, 50),
    "partners": ("partner", "partner", _partner_json, 50),
}


def _list_masters(noun: str) -> Handler:
    kind, _key, shape, default_limit = _MASTERS[noun]

    def handler(ctx: Ctx) -> tuple[int, Any]:
        rows = _updated_between(ctx.db.masters(_company(ctx), kind), ctx.query)
        if noun == "partners" and ctx.query.get("keyword"):
            word = ctx.query["keyword"]
            rows = [r for r in rows if word in r["name"] or word in (r["code"] or "")]
        if default_limit is not None:
            rows = _page(rows, ctx.query, default_limit)
        return 200, {noun: [shape(r) for r in rows]}

    return handler


def _create_master(noun: str) -> Handler:
    kind, key, shape, _limit = _MASTERS[noun]

    def handler(ctx: Ctx) -> tuple[int, Any]:
        company_id = _company(ctx)
        fields = dict(ctx.body)
        profile = ctx.db.company_profile(company_id) or {}
        if kind == "partner" and not profile.get("use_partner_code"):
            fields.pop("code", None)
        if kind in {"item", "section"}:
            fields.pop("code", None)  # 品目/部門コード are off in the seed company
        parent = fields.get("parent_id")
        if parent is not None and parent not in {m["id"] for m in ctx.db.masters(company_id, kind)}:
            raise errors.bad_request(f"parent_id ({parent}) の部門が見つかりません。")
        try:
            new_id = ctx.db.insert_master(company_id, kind, fields, ctx.today)
        except sqlite3.IntegrityError as exc:
            raise errors.bad_request(f"name ({fields['name']}) はすでに使用されています。") from exc
        row = next(m for m in ctx.db.masters(company_id, kind) if m["id"] == new_id)
        return 201, {key: shape(row)}

    return handler


for _noun in _MASTERS:
    HANDLERS[f"GET /api/1/{_noun}"] = _list_masters(_noun)
    HANDLERS[f"POST /api/1/{_noun}"] = _create_master(_noun)


@handles("GET /api/1/items/{id}")
def get_item(ctx: Ctx) -> tuple[int, Any]:
    row = next((m for m in ctx.db.masters(_company(ctx), "item") if m["id"] == ctx.path["id"]),
               None)
    if row is None:
        raise errors.not_found()
    return 200, {"item": _item_json(row)}


@handles("GET /api/1/walletables")
def list_walletables(ctx: Ctx) -> tuple[int, Any]:
    company_id = _company(ctx)
    rows = _updated_between(ctx.db.walletables(company_id), ctx.query)
    if "type" in ctx.query:
        rows = [w for w in rows if w["type"] == ctx.query["type"]]
    balances = (
        walletable_balances(ctx.db.deals(company_id), ctx.db.transfers(company_id))
        if ctx.query.get("with_balance")
        else {}
    )
    result = []
    for wallet in rows:
        entry: Row = {"id": wallet["id"], "name": wallet["name"], "bank_id": wallet["bank_id"],
                      "type": wallet["type"], "update_date": wallet["update_date"]}
        if ctx.query.get("with_balance"):
            entry["walletable_balance"] = balances.get(wallet["id"], 0)
            entry["last_balance"] = balances.get(wallet["id"], 0)
        if ctx.query.get("with_sync_status"):
            entry["sync_status"] = "disabled"
        if ctx.query.get("with_last_synced_at"):
            entry["last_synced_at"] = None
        result.append(entry)
    return 200, {"walletables": result, "meta": {"up_to_date": True}}


# -- deals --------------------------------------------------------------------------------


def _stored_deal(ctx: Ctx, deal_id: int) -> Row:
    deal = ctx.db.deal(_company(ctx), deal_id)
    if deal is None:
        raise errors.not_found(f"取引 (id: {deal_id}) が見つかりません。")
    return deal


@handles("GET /api/1/deals")
def list_deals(ctx: Ctx) -> tuple[int, Any]:
    q = ctx.query
    bad = [date_message(k) for k in ("start_issue_date", "end_issue_date", "start_due_date",
                                     "end_due_date", "start_renew_date", "end_renew_date")
           if k in q and parse_date(q[k]) is None]
    if bad:
        raise errors.bad_request(*bad)
    where, params = ["d.company_id=?"], [_company(ctx)]
    for key, column, op in (("start_issue_date", "issue_date", ">="),
                            ("end_issue_date", "issue_date", "<="),
                            ("start_due_date", "due_date", ">="),
                            ("end_due_date", "due_date", "<="),
                            ("type", "type", "="), ("partner_id", "partner_id", "=")):
        if key == "type" and not ctx.emu.facts["deals_list_filters"]:
            continue  # issue 15: the look-up's filter, switchable
        if key in q:
            where.append(f"d.{column} {op} ?")
            params.append(q[key])
    if "start_renew_date" in q or "end_renew_date" in q:
        where.append("0")  # the emulator stores no renews (+更新)
    if "partner_code" in q:
        where.append("0")  # 取引先コード is off in the seed company
    deals = ctx.db.deals_where(" AND ".join(where), params)
    if "account_item_id" in q:
        deals = [d for d in deals
                 if any(x["account_item_id"] == q["account_item_id"] for x in d["details"])]
    shaped = [deal_json(d) for d in deals]
    if "status" in q:
        shaped = [d for d in shaped if d["status"] == q["status"]]
    # freee lists newest first; ties by id, newest first.
    shaped.sort(key=lambda d: (d["issue_date"], d["id"]), reverse=True)
    return 200, {"deals": _page(shaped, q, 20), "meta": {"total_count": len(shaped)}}


@handles("GET /api/1/deals/{id}")
def get_deal(ctx: Ctx) -> tuple[int, Any]:
    return 200, {"deal": deal_json(_stored_deal(ctx, ctx.path["id"]))}


@handles("POST /api/1/deals")
def create_deal(ctx: Ctx) -> tuple[int, Any]:
    book = _book(ctx)
    plan = build_deal(book, ctx.body)
    deal_id = ctx.db.insert_deal(plan.deal, plan.details, plan.payments, ctx.emu.clock.iso())
    return 201, {"deal": deal_json(_stored_deal(ctx, deal_id))}


@handles("PUT /api/1/deals/{id}")
def update_deal(ctx: Ctx) -> tuple[int, Any]:
    existing = _stored_deal(ctx, ctx.path["id"])
    book = _book(ctx)
    plan = build_deal(book, ctx.body, existing)
    ctx.db.update_deal(existing["id"], plan.deal, plan.details, ctx.emu.clock.iso())
    return 200, {"deal": deal_json(_stored_deal(ctx, existing["id"]))}


@handles("DELETE /api/1/deals/{id}")
def delete_deal(ctx: Ctx) -> tuple[int, Any]:
    deal = _stored_deal(ctx, ctx.path["id"])
    check_deal_removal(_book(ctx), deal)
    ctx.db.delete_deal(deal["id"])
    return 204, None


@handles("POST /api/1/deals/{id}/payments")
def add_payment(ctx: Ctx) -> tuple[int, Any]:
    deal = _stored_deal(ctx, ctx.path["id"])
    payment = check_payment(_book(ctx), deal, ctx.body)
    ctx.db.insert_payment(deal["id"], payment)
    return 201, {"deal": deal_json(_stored_deal(ctx, deal["id"]))}


def _stored_payment(ctx: Ctx, deal: Row) -> int:
    payment_id = int(ctx.path["payment_id"])
    if payment_id not in {p["id"] for p in deal["payments"]}:
        raise errors.not_found(f"支払行 (id: {payment_id}) が見つかりません。")
    return payment_id


@handles("PUT /api/1/deals/{id}/payments/{payment_id}")
def update_payment(ctx: Ctx) -> tuple[int, Any]:
    deal = _stored_deal(ctx, ctx.path["id"])
    payment_id = _stored_payment(ctx, deal)
    payment = check_payment(_book(ctx), deal, ctx.body, payment_id)
    ctx.db.update_payment(payment_id, payment)
    return 200, {"deal": deal_json(_stored_deal(ctx, deal["id"]))}


@handles("DELETE /api/1/deals/{id}/payments/{payment_id}")
def delete_payment(ctx: Ctx) -> tuple[int, Any]:
    deal = _stored_deal(ctx, ctx.path["id"])
    payment_id = _stored_payment(ctx, deal)
    check_payment_removal(_book(ctx), deal, payment_id)
    ctx.db.delete_payment(payment_id)
    return 204, None


# -- transfers ----------------------------------------------------------------------------


def _stored_transfer(ctx: Ctx) -> Row:
    found = next((t for t in ctx.db.transfers(_company(ctx)) if t["id"] == ctx.path["id"]), None)
    if found is None:
        raise errors.not_found(f"振替 (id: {ctx.path['id']}) が見つかりません。")
    return found


@handles("GET /api/1/transfers")
def list_transfers(ctx: Ctx) -> tuple[int, Any]:
    q = ctx.query
    bad = [date_message(k) for k in ("start_date", "end_date")
           if k in q and parse_date(q[k]) is None]
    if bad:
        raise errors.bad_request(*bad)
    rows = [
        t for t in ctx.db.transfers(_company(ctx))
        if ("start_date" not in q or t["date"] >= q["start_date"])
        and ("end_date" not in q or t["date"] <= q["end_date"])
    ]
    rows.sort(key=lambda t: (t["date"], t["id"]), reverse=True)
    return 200, {"transfers": [transfer_json(t) for t in _page(rows, q, 20)]}


@handles("GET /api/1/transfers/{id}")
def get_transfer(ctx: Ctx) -> tuple[int, Any]:
    return 200, {"transfer": transfer_json(_stored_transfer(ctx))}


@handles("POST /api/1/transfers")
def create_transfer(ctx: Ctx) -> tuple[int, Any]:
    row = build_transfer(_book(ctx), ctx.body)
    new_id = ctx.db.insert_transfer(row, ctx.emu.clock.iso())
    stored = next(t for t in ctx.db.transfers(_company(ctx)) if t["id"] == new_id)
    return 201, {"transfer": transfer_json(stored)}


@handles("DELETE /api/1/transfers/{id}")
def delete_transfer(ctx: Ctx) -> tuple[int, Any]:
    transfer = _stored_transfer(ctx)
    from gatewayd.sim.freee.accounting import period_messages

    messages = period_messages(_book(ctx), transfer["date"], "date")
    if messages:
        raise errors.bad_request(*messages)
    ctx.db.delete_transfer(transfer["id"])
    return 204, None
