"""Fixtures for the sync tests: the freee emulator over loopback, a gateway linked to it,
generated business days, and a transport that checks every request against freee's schema.

The schema check is independent of the emulator (which validates too): each request the
gateway sends to ``/api/1/`` is matched to its operation in the official OpenAPI file and its
query parameters and JSON body are validated with jsonschema; token-endpoint requests are
checked for the fields freee requires. A test fails at teardown if any request broke it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from gatewayd.config import RegisterSettings, Settings
from gatewayd.protocol.days import analyze_journal
from gatewayd.protocol.records import BusinessDay
from gatewayd.sim.freee.server import EmulatorServer
from gatewayd.sim.freee.testing import (  # noqa: F401 - fixtures used by pytest
    freee_response_audit,
    freee_response_audit_session,
)
from gatewayd.sim.journal_gen import generate_journal
from gatewayd.sync.freee_settings import FreeeSettings
from gatewayd.sync.service import SyncService

SCHEMA_PATH = Path("/work/shared/freee-api-schema/accounting-v2020_06_15-api-schema.json")
PACKAGED_SCHEMA = Path(__file__).resolve().parents[1] / "gatewayd/sim/freee/schema"
CLIENT_ID = "gatewayd-emulator-client"
CLIENT_SECRET = "gatewayd-emulator-secret"
MAIN_COMPANY = 3_100_001


# -- request validation against the official schema ------------------------------------------


def _schema_file() -> Path:
    if SCHEMA_PATH.is_file():
        return SCHEMA_PATH
    found = sorted(PACKAGED_SCHEMA.glob("*.json"))
    assert found, "freee's schema file is missing"
    return found[0]


@cache
def _document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_schema_file().read_text(encoding="utf-8"))
    return data


@cache
def _operations() -> list[tuple[str, re.Pattern[str], dict[str, Any], str]]:
    ops = []
    for template, item in _document()["paths"].items():
        regex = re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", template) + "$")
        for method, op in item.items():
            if method in ("get", "post", "put", "delete", "patch"):
                ops.append((method.upper(), regex, op, template))
    return ops


def _validator(schema: dict[str, Any]) -> Draft4Validator:
    resource = Resource(contents=_document(), specification=DRAFT4)
    registry: Registry[Any] = Registry().with_resource("urn:freee", resource)
    return Draft4Validator(_rebase(schema), registry=registry)


def _rebase(node: Any) -> Any:
    """Point ``#/components/...`` refs at the whole document."""
    if isinstance(node, dict):
        return {
            k: (
                "urn:freee" + v
                if k == "$ref" and isinstance(v, str) and v.startswith("#")
                else _rebase(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            return value
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    return value


def check_api_request(request: httpx.Request) -> list[str]:
    """Problems of one ``/api/1/`` request against the official schema (empty: valid)."""
    path = request.url.path
    where = f"{request.method} {path}"
    op = next(
        (o for m, regex, o, _t in _operations() if m == request.method and regex.match(path)),
        None,
    )
    if op is None:
        return [f"{where}: no such operation in freee's schema"]
    problems: list[str] = []
    query = parse_qs(
        request.url.query.decode() if isinstance(request.url.query, bytes) else request.url.query
    )
    params = {p["name"]: p for p in op.get("parameters", []) if p.get("in") == "query"}
    for name in query:
        if name not in params:
            problems.append(f"{where}: query parameter {name} is not in the schema")
    for name, param in params.items():
        if param.get("required") and name not in query:
            problems.append(f"{where}: required query parameter {name} missing")
        if name in query:
            value = _coerce(query[name][-1], param.get("schema", {}))
            for err in _validator(param.get("schema", {})).iter_errors(value):
                problems.append(f"{where}: query {name}={value!r}: {err.message}")
    body_spec = op.get("requestBody")
    content = request.content
    if body_spec is not None:
        media = body_spec.get("content", {}).get("application/json")
        if media is None:
            return problems
        try:
            body = json.loads(content or b"{}")
        except ValueError:
            return [*problems, f"{where}: body is not JSON"]
        for err in _validator(media["schema"]).iter_errors(body):
            location = "/".join(str(p) for p in err.absolute_path)
            problems.append(f"{where}: body {location}: {err.message}")
        problems += _no_unknown_fields(body, media["schema"], where, "")
    elif content:
        problems.append(f"{where}: a body where the schema has none")
    return problems


def _deref(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = _document()
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _no_unknown_fields(body: Any, schema: dict[str, Any], where: str, at: str) -> list[str]:
    """freee ignores or refuses fields it does not know: the gateway sends none."""
    schema = _deref(schema)
    problems: list[str] = []
    if isinstance(body, dict) and "properties" in schema:
        for key, value in body.items():
            if key not in schema["properties"]:
                problems.append(f"{where}: body {at}{key} is not in the schema")
            else:
                problems += _no_unknown_fields(
                    value, schema["properties"][key], where, f"{at}{key}."
                )
            prop = _deref(schema["properties"].get(key, {}))
            if prop.get("deprecated"):
                problems.append(f"{where}: body {at}{key} is deprecated in the schema")
    if isinstance(body, list) and "items" in schema:
        for i, item in enumerate(body):
            problems += _no_unknown_fields(item, schema["items"], where, f"{at}{i}.")
    return problems


TOKEN_FIELDS = {
    "authorization_code": {"grant_type", "code", "redirect_uri", "client_id", "client_secret"},
    "refresh_token": {"grant_type", "refresh_token", "client_id", "client_secret"},
}


def check_token_request(request: httpx.Request) -> list[str]:
    form = {k: v[-1] for k, v in parse_qs(request.content.decode()).items()}
    grant = form.get("grant_type", "")
    needed = TOKEN_FIELDS.get(grant)
    if needed is None:
        return [f"token request with grant_type {grant!r}"]
    missing = needed - set(form)
    return [f"token request ({grant}) lacks {sorted(missing)}"] if missing else []


class SchemaCheckingTransport(httpx.BaseTransport):
    """Passes requests on; records every request and every schema problem."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self.inner = inner or httpx.HTTPTransport()
        self.problems: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.statuses: list[int] = []
        self.hooks: list[Callable[[httpx.Request, httpx.Response | None], None]] = []
        self.pre_hooks: list[Callable[[httpx.Request], None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        path = request.url.path
        if path.startswith("/api/1/"):
            self.problems += check_api_request(request)
        elif path == "/public_api/token":
            self.problems += check_token_request(request)
        self.requests.append((request.method, path))
        for pre in list(self.pre_hooks):
            pre(request)
        response = self.inner.handle_request(request)
        self.statuses.append(response.status_code)
        for hook in list(self.hooks):
            hook(request, response)
        return response

    def close(self) -> None:
        self.inner.close()

    def writes(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests if m != "GET" and p.startswith("/api/1/")]


# -- clock, days, day source --------------------------------------------------------------


class FakeClock:
    """Wall time that tests move forward (pauses, backoffs, token expiry)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class DictDaySource:
    days: dict[tuple[str, date], BusinessDay] = field(default_factory=dict)

    def get_day(self, register_id: str, business_date: date) -> BusinessDay | None:
        return self.days.get((register_id, business_date))

    def add(self, register_id: str, day: BusinessDay) -> None:
        self.days[(register_id, day.business_date)] = day


REGISTER = RegisterSettings(store_code="0001", terminal_no="01", port="loop://")


def make_days(count: int, start: date, *, seed: int = 7, receipts: int = 12) -> list[BusinessDay]:
    """Generated, checked business days of one terminal."""
    lines = generate_journal(
        seed, count, start, REGISTER.store_code, REGISTER.terminal_no, receipts_per_day=receipts
    )
    analysis = analyze_journal(lines, after_record_no=0)
    days = [d.day for d in analysis.days if d.day is not None and d.status == "accepted"]
    assert len(days) == count, [(d.business_date, d.status, d.reason) for d in analysis.days]
    return days


def gateway_settings(state_dir: Path, mapping: dict[str, Any] | None = None) -> Settings:
    extra: dict[str, Any] = {}
    if mapping is not None:
        extra["mapping"] = mapping
    return Settings(state_dir=state_dir, registers=(REGISTER,), extra=extra)


def freee_settings(base_url: str, **overrides: Any) -> FreeeSettings:
    values: dict[str, Any] = {
        "api_base_url": base_url,
        "auth_base_url": base_url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "retry_initial": 0.01,
        "retry_max": 30.0,
        "lookup_delay": 2.0,
        "send_spread": 0.0,  # the spread after a close has its own tests
        "connect_timeout": 2.0,
        "read_timeout": 5.0,
    }
    values.update(overrides)
    return FreeeSettings(**values)


# -- OAuth against the emulator ----------------------------------------------------------------

_CODE = re.compile(r'id="authorization-code">([^<]+)<')


def approve(url: str, company_id: int = MAIN_COMPANY) -> str:
    """Press 許可する on the emulator's consent page for ``url``; return the code."""
    with httpx.Client(follow_redirects=False, timeout=10) as http:
        page = http.get(url)
        if page.status_code == 200 and "authorization-code" not in page.text:
            form = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
            form.update({"action": "approve", "company_id": str(company_id)})
            page = http.post(url.split("?")[0], data=form)
    if page.status_code in (302, 303):
        return parse_qs(urlsplit(page.headers["location"]).query)["code"][0]
    match = _CODE.search(page.text)
    assert match is not None, page.text[:300]
    return match.group(1)


def link(service: SyncService, company_id: int = MAIN_COMPANY) -> None:
    start = service.link_start()
    code = approve(start.url, company_id)
    service.link_finish(code, start.state)


# -- the gateway under test ----------------------------------------------------------------------


@dataclass
class Harness:
    emulator: EmulatorServer
    state_dir: Path
    source: DictDaySource
    clock: FakeClock
    transport: SchemaCheckingTransport
    mapping: dict[str, Any] | None = field(default_factory=lambda: {"tax_names": {"0": "非課売上"}})
    services: list[SyncService] = field(default_factory=list)
    freee_overrides: dict[str, Any] = field(default_factory=dict)

    def service(self, **kwargs: Any) -> SyncService:
        kwargs.setdefault("sleep", lambda _s: None)
        kwargs.setdefault("clock", self.clock)
        svc = SyncService(
            gateway_settings(self.state_dir, self.mapping),
            self.state_dir,
            self.source,
            transport=self.transport,
            freee=freee_settings(self.emulator.base_url, **self.freee_overrides),
            **kwargs,
        )
        self.services.append(svc)
        return svc

    def run(self, service: SyncService, *, max_steps: int = 200, idle: float = 60.0) -> int:
        """Step until nothing is due within ``idle`` seconds; moves the fake clock."""
        for n in range(max_steps):
            wait = service.step()
            if wait >= idle:
                return n + 1
            self.clock.advance(max(wait, 0.001))
        raise AssertionError("the sync did not settle")

    def deals(self) -> list[dict[str, Any]]:
        return self.emulator.control.deals(MAIN_COMPANY)

    def transfers(self) -> list[dict[str, Any]]:
        return self.emulator.control.transfers(MAIN_COMPANY)

    def close(self) -> None:
        for svc in self.services:
            svc.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """A freee emulator (auto-approve) and the pieces of a gateway; the schema audit of the
    emulator's answers is autouse (imported above)."""
    with EmulatorServer(tmp_path / "freee.sqlite3", auto_approve=True) as emu:
        h = Harness(
            emulator=emu,
            state_dir=tmp_path / "state",
            source=DictDaySource(),
            clock=FakeClock(),
            transport=SchemaCheckingTransport(),
        )
        try:
            yield h
        finally:
            h.close()
        assert not h.transport.problems, "requests that break freee's schema:\n" + "\n".join(
            h.transport.problems[:30]
        )
