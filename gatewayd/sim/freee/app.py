"""The ASGI application: one server playing both of freee's hosts, plus ``/_emulator/``.

``FreeeFront`` wraps the Starlette routes for everything that is not a control request:
it injects faults (before and after processing, or processing late after the client gave
up), drops connections, adds ``X-Freee-Request-ID``, counts requests per endpoint, logs each
request with its times (``Emulator.request_log``) and records API/token responses for the
schema audit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatewayd.sim.freee import api, control, errors, oauth, openapi
from gatewayd.sim.freee.core import Emulator
from gatewayd.sim.freee.faults import AFTER_KINDS, BEFORE_KINDS, LATE_KINDS, FaultRule

log = logging.getLogger("gatewayd.sim.freee")

REQUEST_ID_HEADER = "X-Freee-Request-ID"
_RECORDED_PREFIXES = ("/api/", "/public_api/token", "/public_api/revoke")
HOLD_LIMIT = 600.0  # commit_late: a client that never gives up is cut off after this (s)


def build_app(emu: Emulator) -> ASGIApp:
    async def authorize(request: Request) -> Response:
        return await oauth.authorize(emu, request)

    async def token(request: Request) -> Response:
        return await oauth.token(emu, request)

    async def revoke(request: Request) -> Response:
        return await oauth.revoke(emu, request)

    async def api_request(request: Request) -> Response:
        return await api.dispatch(emu, request)

    async def home(request: Request) -> Response:
        return HTMLResponse(
            '<!doctype html><html lang="ja"><meta charset="utf-8"><title>freee会計 エミュレータ'
            "</title><h1>freee会計 エミュレータ</h1><ul>"
            '<li><a href="/_emulator/books">帳簿（取引一覧）</a></li>'
            '<li><a href="/_emulator/">制御用エンドポイント一覧 (JSON)</a></li></ul></html>'
        )

    async def books_redirect(request: Request) -> Response:
        return RedirectResponse("/_emulator/books", status_code=302)

    starlette = Starlette(
        routes=[
            Route("/", home),
            Route("/books", books_redirect),
            Route("/public_api/authorize", authorize, methods=["GET", "POST"]),
            Route("/public_api/token", token, methods=["POST"]),
            Route("/public_api/revoke", revoke, methods=["POST"]),
            Route("/api/{rest:path}", api_request,
                  methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
            Mount("/_emulator", routes=control.routes(emu)),
        ]
    )
    return FreeeFront(emu, starlette)


class FreeeFront:
    """Faults, request ids, counting and recording around the emulated hosts."""

    def __init__(self, emu: Emulator, app: ASGIApp) -> None:
        self.emu = emu
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_emulator"):
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        found = openapi.find_operation(method, path) if path.startswith("/api/") else None
        op = found[0] if found else None
        template = op.template if op else None
        endpoint = f"{method} {template or path}"
        request_id = uuid.uuid4().hex
        # The whole request is read first: faults (latency) act on a received request, so a
        # client that gives up while the emulator is slow does not stop it from storing.
        client_receive = receive
        request_body = await _read_body(receive)
        if request_body is None:
            return  # the client left before sending its request
        receive = _replay(request_body)
        entry = self.emu.log_request(method, path, scope.get("query_string", b"").decode(),
                                     request_body)

        before = self.emu.faults.fire(BEFORE_KINDS + LATE_KINDS, method, path, template)
        await self._sleep(before, "latency")
        self._token_faults(before, scope)
        terminal = next((r for r in before if r.kind in {"http_500", "http_503", "drop_before",
                                                         *LATE_KINDS}), None)
        if terminal is not None and terminal.kind == "drop_before":
            self._count(endpoint, "dropped_before")
            self.emu.end_request(entry, "dropped_before")
            await self._drop(send)
            return
        if terminal is not None and terminal.kind in LATE_KINDS:
            await self._commit_late(terminal, scope, client_receive, request_body, send,
                                    endpoint, entry)
            return
        if terminal is not None:
            error = errors.internal_error() if terminal.kind == "http_500" else (
                errors.service_unavailable())
            self.emu.end_request(entry, str(error.status), error.status)
            await self._respond(send, scope, op, endpoint, request_id, error.status,
                                [(b"content-type", b"application/json")],
                                json.dumps(error.body, ensure_ascii=False).encode())
            return

        messages: list[Message] = []
        bug: str | None = None

        async def capture(message: Message) -> None:
            messages.append(message)

        try:
            await self.app(scope, receive, capture)
        except Exception as exc:  # an emulator bug: answer as freee would, and say so
            log.exception("emulator failed on %s %s", method, path)
            bug = f"{method} {path}: {exc!r}"
            self.emu.internal_errors.append(bug)
            error = errors.internal_error()
            messages = [
                {"type": "http.response.start", "status": 500,
                 "headers": [(b"content-type", b"application/json")]},
                {"type": "http.response.body",
                 "body": json.dumps(error.body, ensure_ascii=False).encode()},
            ]
        start = next(m for m in messages if m["type"] == "http.response.start")
        status: int = start["status"]
        headers: list[tuple[bytes, bytes]] = list(start.get("headers", []))
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        if 200 <= status < 300:
            after = self.emu.faults.fire(AFTER_KINDS, method, path, template)
            await self._sleep(after, "latency_after")
            if any(r.kind == "drop_after" for r in after):
                self._count(endpoint, "dropped_after")
                self.emu.end_request(entry, "dropped_after", status)
                await self._drop(send)
                return
            if any(r.kind == "http_500_after" for r in after):
                error = errors.internal_error()
                status = error.status
                headers = [(b"content-type", b"application/json")]
                body = json.dumps(error.body, ensure_ascii=False).encode()
        self.emu.end_request(entry, str(status), status)
        await self._respond(send, scope, op, endpoint, request_id, status, headers, body, bug)

    async def _commit_late(
        self, rule: FaultRule, scope: Scope, client_receive: Receive, request_body: bytes,
        send: Send, endpoint: str, entry: dict[str, Any],
    ) -> None:
        """No answer: drop the connection at once (``drop_commit_late``) or hold it until the
        client gives up (``commit_late``); process the request ``ms`` after that."""
        if rule.kind == "drop_commit_late":
            await self._drop(send)
        else:
            try:
                await asyncio.wait_for(_until_disconnect(client_receive), HOLD_LIMIT)
            except TimeoutError:
                await self._drop(send)
        gave_up_at = self.emu.clock.now()
        await asyncio.sleep(rule.ms / 1000)
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        try:
            await self.app(scope, _replay(request_body, then_wait=True), capture)
        except Exception as exc:  # an emulator bug; nobody is there to get the 500
            log.exception("emulator failed on a late %s %s", scope["method"], scope["path"])
            self.emu.internal_errors.append(f"{scope['method']} {scope['path']}: {exc!r}")
        start = next((m for m in messages if m["type"] == "http.response.start"), None)
        status = None if start is None else int(start["status"])
        self._count(endpoint, "committed_late")
        self.emu.end_request(entry, "committed_late", status, gave_up_at=gave_up_at)

    async def _sleep(self, rules: list[FaultRule], kind: str) -> None:
        total = sum(r.ms for r in rules if r.kind == kind)
        if total:
            await asyncio.sleep(total / 1000)

    def _token_faults(self, rules: list[FaultRule], scope: Scope) -> None:
        for rule in rules:
            if rule.kind == "expire_access_token":
                header = dict(scope.get("headers", [])).get(b"authorization", b"").decode()
                if header.lower().startswith("bearer "):
                    oauth.expire_access_tokens(self.emu, header[7:].strip())
            elif rule.kind == "revoke_refresh_token":
                oauth.revoke_refresh_tokens(self.emu)

    def _count(self, endpoint: str, outcome: str) -> None:
        with self.emu.store.transaction() as db:
            db.count_request(endpoint, outcome)

    async def _drop(self, send: Send) -> None:
        """Close the TCP connection without a byte of answer (uvicorn's h11 cycle)."""
        cycle: Any = getattr(send, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:
            raise RuntimeError("cannot reach the connection to drop it")
        transport.abort()
        cycle.disconnected = True  # uvicorn must not answer 500 on the dead connection
        await asyncio.sleep(0)

    async def _respond(
        self, send: Send, scope: Scope, op: openapi.Operation | None, endpoint: str,
        request_id: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes,
        bug: str | None = None,
    ) -> None:
        headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
        # Counted and recorded before the answer leaves, so a client that has the answer
        # also sees it in the counts and the audit.
        self._count(endpoint, str(status))
        self._record(scope, op, status, headers, body, request_id, bug)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _record(
        self, scope: Scope, op: openapi.Operation | None, status: int,
        headers: list[tuple[bytes, bytes]], body: bytes, request_id: str, bug: str | None,
    ) -> None:
        recorder = self.emu.recorder
        path: str = scope["path"]
        if recorder is None or not path.startswith(_RECORDED_PREFIXES):
            return
        content_type = dict(headers).get(b"content-type", b"").decode()
        parsed: Any = None
        if body and content_type.startswith("application/json"):
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = {"__unparseable__": body.decode("utf-8", "replace")}
        recorder.record({
            "method": scope["method"],
            "path": path,
            "operation": op.key if op else None,
            "status": status,
            "content_type": content_type,
            "has_body": bool(body),
            "body": parsed,
            "request_id": request_id,
            "emulator_error": bug,
        })


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, *, then_wait: bool = False) -> Receive:
    """The request already read; then a disconnect (or, ``then_wait``, nothing ever: the
    late processing of an abandoned request runs as if its client were still there)."""
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        if then_wait:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    return receive


async def _until_disconnect(receive: Receive) -> None:
    """Wait until the client closes the connection (its request was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass
