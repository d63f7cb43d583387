"""Control and inspection endpoints under ``/_emulator/`` (outside freee's paths).

No authentication: the emulator binds 127.0.0.1 only. Bodies and answers are JSON; a bad
control request gets 400 ``{"error": "..."}``. See docs/freee-emulator.md for the list.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gatewayd.sim.freee import books, oauth, seed
from gatewayd.sim.freee.accounting import Book, deal_json, parse_date, transfer_json
from gatewayd.sim.freee.config import EmulatorConfig
from gatewayd.sim.freee.core import Emulator
from gatewayd.sim.freee.faults import FaultRule

ROLES = ("admin", "simple_accounting", "self_only", "read_only", "workflow")


class ControlError(Exception):
    """A control request that cannot be done (answered 400)."""


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ControlError(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ControlError("body must be a JSON object")
    return data


Endpoint = Callable[[Emulator, Request], Awaitable[Any]]


def _route(path: str, endpoint: Endpoint, emu: Emulator, methods: list[str]) -> Route:
    async def handle(request: Request) -> Response:
        try:
            result = await endpoint(emu, request)
        except (ControlError, ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    return Route(path, handle, methods=methods)


def _int_arg(request: Request, name: str, default: int | None = None) -> int:
    text = request.path_params.get(name) or request.query_params.get(name)
    if text is None:
        if default is None:
            raise ControlError(f"{name} is required")
        return default
    try:
        return int(text)
    except ValueError as exc:
        raise ControlError(f"{name} must be an integer") from exc


# -- inspection ---------------------------------------------------------------------------


async def index(emu: Emulator, request: Request) -> Any:
    return {
        "emulator": "freee会計 API (accounting v2020_06_15)",
        "state": str(emu.store.path),
        "client_id": emu.config.client_id,
        "main_company_id": seed.MAIN_COMPANY_ID,
        "endpoints": sorted({str(getattr(r, "path", "")) for r in routes(emu)}),
    }


async def list_deals(emu: Emulator, request: Request) -> Any:
    company = request.query_params.get("company_id")
    deals = emu.store.read().deals(int(company) if company else None)
    return {"deals": [deal_json(d) for d in deals]}


async def list_transfers(emu: Emulator, request: Request) -> Any:
    company = request.query_params.get("company_id")
    rows = emu.store.read().transfers(int(company) if company else None)
    return {"transfers": [transfer_json(t) for t in rows]}


async def companies(emu: Emulator, request: Request) -> Any:
    """Every company with its masters by name (ids for tests and scripts)."""
    db = emu.store.read()
    result = []
    for member in db.memberships(seed.USER_ID):
        cid = member["company_id"]
        with emu.store.transaction() as tx:
            book = Book.load(tx, cid)
        result.append({
            "id": cid,
            "name": book.profile.get("display_name"),
            "role": member["role"],
            "fiscal_years": book.fiscal_years,
            "account_items": {a["name"]: a["id"] for a in book.account_items.values()},
            "taxes": {t["name_ja"]: t["code"] for t in book.taxes.values()},
            "walletables": {w["name"]: {"id": w["id"], "type": w["type"]}
                            for w in book.walletables.values()},
            "items": {m["name"]: i for i, m in book.items.items()},
            "sections": {m["name"]: i for i, m in book.sections.items()},
            "tags": {m["name"]: i for i, m in book.tags.items()},
            "partners": {m["name"]: i for i, m in book.partners.items()},
        })
    return {"companies": result}


async def request_counts(emu: Emulator, request: Request) -> Any:
    if request.method == "DELETE":
        with emu.store.transaction() as db:
            db.execute("DELETE FROM request_counts")
        emu.clear_request_log()
        return {"cleared": True}
    endpoints: dict[str, dict[str, Any]] = {}
    total = 0
    for row in emu.store.read().request_counts():
        entry = endpoints.setdefault(row["endpoint"], {"total": 0, "by_status": {}})
        entry["total"] += row["count"]
        entry["by_status"][row["status"]] = row["count"]
        total += row["count"]
    return {"total": total, "endpoints": endpoints}


async def request_log(emu: Emulator, request: Request) -> Any:
    """Each request (newest 10,000) with its times: ``at`` received, ``done_at`` answered,
    dropped or stored late, ``gave_up_at`` (commit_late: the client gave up), in seconds of
    the emulator's clock; ``outcome`` as in the counts; ``ref_number`` of a JSON body."""
    return {"requests": emu.request_log(_int_arg(request, "since", 0))}


async def quota(emu: Emulator, request: Request) -> Any:
    if request.method == "DELETE":
        with emu.store.transaction() as db:
            db.execute("DELETE FROM quota_counts")
        return {"cleared": True}
    rows = emu.store.read().all("SELECT * FROM quota_counts ORDER BY day, company_id")
    return {"daily_quota": emu.config.daily_quota, "counts": rows}


async def books_page(emu: Emulator, request: Request) -> Response:
    company_id = _int_arg(request, "company_id", seed.MAIN_COMPANY_ID)
    refresh = request.query_params.get("refresh")
    with emu.store.transaction() as db:
        if db.company_profile(company_id) is None:
            raise ControlError(f"no company {company_id}")
        book = Book.load(db, company_id)
        deals = db.deals(company_id)
        transfers = db.transfers(company_id)
        names = [(cid, (db.company_profile(cid) or {}).get("display_name", str(cid)))
                 for cid in db.company_ids()]
    page = books.render(book, deals, transfers, names,
                        int(refresh) if refresh and refresh.isdigit() else None)
    return HTMLResponse(page)


# -- control ------------------------------------------------------------------------------


async def reset(emu: Emulator, request: Request) -> Any:
    body = await _json_body(request)
    emu.reset(tokens=bool(body.get("tokens", False)))
    return {"reset": True, "tokens": bool(body.get("tokens", False))}


async def faults(emu: Emulator, request: Request) -> Any:
    if request.method == "GET":
        return {"faults": emu.faults.rules()}
    if request.method == "DELETE":
        emu.faults.clear()
        return {"faults": []}
    body = await _json_body(request)
    if request.method == "PUT":
        rules = [FaultRule.from_json(item) for item in body.get("faults", [])]
        emu.faults.replace(rules)
        return {"faults": emu.faults.rules()}
    rule = emu.faults.add(FaultRule.from_json(body))
    return JSONResponse(rule.to_json(), status_code=201)


async def delete_fault(emu: Emulator, request: Request) -> Any:
    removed = emu.faults.remove(_int_arg(request, "rule_id"))
    return {"removed": removed}


async def expire_tokens(emu: Emulator, request: Request) -> Any:
    body = await _json_body(request)
    return {"expired": oauth.expire_access_tokens(emu, body.get("token"))}


async def revoke_refresh(emu: Emulator, request: Request) -> Any:
    body = await _json_body(request)
    return {"revoked": oauth.revoke_refresh_tokens(emu, body.get("token"))}


async def tokens(emu: Emulator, request: Request) -> Any:
    return {"tokens": oauth.token_summary(emu)}


async def config(emu: Emulator, request: Request) -> Any:
    if request.method == "PATCH":
        body = await _json_body(request)
        for key, value in body.items():
            kinds = EmulatorConfig.MUTABLE.get(key)
            if kinds is None:
                raise ControlError(f"{key} cannot be changed; changeable: "
                                   f"{', '.join(EmulatorConfig.MUTABLE)}")
            if not isinstance(value, kinds) or (isinstance(value, bool) and kinds is int):
                raise ControlError(f"{key} has the wrong type")
            setattr(emu.config, key, value)
    return emu.config.public()


async def facts(emu: Emulator, request: Request) -> Any:
    """The fact rules (facts.py): GET lists them, PATCH {"name": bool} switches them."""
    if request.method == "PATCH":
        emu.facts.update(await _json_body(request))
    return {"facts": emu.facts.describe()}


async def clock(emu: Emulator, request: Request) -> Any:
    if request.method == "POST":
        body = await _json_body(request)
        seconds = body.get("advance")
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
            raise ControlError("advance (seconds) is required")
        emu.clock.advance(float(seconds))
    return {"now": emu.clock.iso(), "offset_seconds": emu.clock.offset}


async def fiscal_years(emu: Emulator, request: Request) -> Any:
    company_id = _int_arg(request, "company_id")
    if request.method in {"POST", "PATCH"}:
        body = await _json_body(request)
        allowed = {"start_date", "end_date", "is_closed", "month_end_date",
                   "temp_month_end_date"}
        unknown = set(body) - allowed
        if unknown:
            raise ControlError(f"unknown fields: {', '.join(sorted(unknown))}")
        for key in ("start_date", "end_date", "month_end_date", "temp_month_end_date"):
            if body.get(key) is not None and parse_date(body[key]) is None:
                raise ControlError(f"{key} must be yyyy-mm-dd or null")
        if "is_closed" in body and not isinstance(body["is_closed"], bool):
            raise ControlError("is_closed must be true or false")
        with emu.store.transaction() as db:
            if db.company_profile(company_id) is None:
                raise ControlError(f"no company {company_id}")
            if request.method == "POST":
                if "start_date" not in body or "end_date" not in body:
                    raise ControlError("start_date and end_date are required")
                template = dict(seed.COMPANIES[0].fiscal_years[0])
                db.insert_fiscal_year(company_id, {**template, **body})
            elif not db.update_fiscal_year(company_id, _int_arg(request, "fiscal_year_id"),
                                           body):
                raise ControlError("no such fiscal year")
    return {"fiscal_years": emu.store.read().fiscal_years(company_id)}


async def role(emu: Emulator, request: Request) -> Any:
    company_id = _int_arg(request, "company_id")
    body = await _json_body(request)
    value = body.get("role")
    if value not in ROLES:
        raise ControlError(f"role must be one of {', '.join(ROLES)}")
    with emu.store.transaction() as db:
        if db.company_profile(company_id) is None:
            raise ControlError(f"no company {company_id}")
        db.set_role(seed.USER_ID, company_id, value)
    return {"company_id": company_id, "role": value}


async def tax(emu: Emulator, request: Request) -> Any:
    company_id = _int_arg(request, "company_id")
    code = _int_arg(request, "code")
    body = await _json_body(request)
    if not isinstance(body.get("available"), bool):
        raise ControlError("available must be true or false")
    with emu.store.transaction() as db:
        if not db.set_tax_available(company_id, code, body["available"]):
            raise ControlError(f"no tax {code} in company {company_id}")
    return {"company_id": company_id, "code": code, "available": body["available"]}


async def client(emu: Emulator, request: Request) -> Any:
    client_id = request.path_params["client_id"]
    body = await _json_body(request)
    scopes = body.get("scopes")
    if isinstance(scopes, list):
        scopes = " ".join(str(s) for s in scopes)
    if not isinstance(scopes, str) or not set(scopes.split()) <= {"read", "write"}:
        raise ControlError('scopes must be "read", "write" or "read write"')
    with emu.store.transaction() as db:
        if not db.set_client_scopes(client_id, scopes):
            raise ControlError(f"no client {client_id}")
    return {"client_id": client_id, "scopes": scopes}


def routes(emu: Emulator) -> list[Route]:
    table: list[tuple[str, Endpoint, list[str]]] = [
        ("/", index, ["GET"]),
        ("/deals", list_deals, ["GET"]),
        ("/transfers", list_transfers, ["GET"]),
        ("/companies", companies, ["GET"]),
        ("/requests", request_counts, ["GET", "DELETE"]),
        ("/requests/log", request_log, ["GET"]),
        ("/quota", quota, ["GET", "DELETE"]),
        ("/books", books_page, ["GET"]),
        ("/reset", reset, ["POST"]),
        ("/faults", faults, ["GET", "POST", "PUT", "DELETE"]),
        ("/faults/{rule_id}", delete_fault, ["DELETE"]),
        ("/tokens", tokens, ["GET"]),
        ("/tokens/expire", expire_tokens, ["POST"]),
        ("/tokens/revoke_refresh", revoke_refresh, ["POST"]),
        ("/config", config, ["GET", "PATCH"]),
        ("/facts", facts, ["GET", "PATCH"]),
        ("/clock", clock, ["GET", "POST"]),
        ("/companies/{company_id}/fiscal_years", fiscal_years, ["GET", "POST"]),
        ("/companies/{company_id}/fiscal_years/{fiscal_year_id}", fiscal_years, ["PATCH"]),
        ("/companies/{company_id}/role", role, ["PUT"]),
        ("/companies/{company_id}/taxes/{code}", tax, ["PATCH"]),
        ("/clients/{client_id}", client, ["PATCH"]),
    ]
    return [_route(path, endpoint, emu, methods) for path, endpoint, methods in table]
