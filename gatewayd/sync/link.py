"""Linking the gateway to a freee company: OAuth 2.0 authorization code + PKCE (S256).

Callable as functions, so both ``gatewayd link`` (terminal) and the status page drive it:
``start()`` gives freee's authorize URL (with ``prompt=select_company`` and a fresh
``state``), ``finish(code, state)`` exchanges the code for the first token pair, stores it
(mode 0600, fsync + rename, before first use) and records the company. The redirect is
freee's out-of-band one (the code is shown on freee's page and pasted) or a loopback
``http://127.0.0.1:PORT/callback`` caught by ``catch_loopback_code``. ``unlink()`` revokes the
refresh token at freee and deletes the local tokens and master cache.
"""

from __future__ import annotations

import html
import http.server
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from gatewayd.errors import FreeeError, FreeeFixSetting, FreeeRelink, FreeeRetryLater
from gatewayd.sync.freee_client import FreeeClient
from gatewayd.sync.freee_errors import error_from_response, error_from_transport
from gatewayd.sync.freee_settings import FreeeSettings
from gatewayd.sync.masters import MasterCache
from gatewayd.sync.tokens import (
    FORM,
    Clock,
    LinkStatus,
    TokenManager,
    parse_token_response,
    utcnow,
)

log = logging.getLogger(__name__)

PENDING_TTL = timedelta(minutes=10)  # freee's authorization code lives 10 minutes


@dataclass(frozen=True, slots=True)
class LinkStart:
    """What the installer opens: freee's consent page, and the state to finish with."""

    url: str
    state: str
    redirect_uri: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class _Pending:
    verifier: str
    redirect_uri: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class UnlinkResult:
    revoked: bool
    message: str


class LinkFlow:
    """Start and finish links; pending starts live in memory for 10 minutes."""

    def __init__(
        self,
        settings: FreeeSettings,
        tokens: TokenManager,
        client: FreeeClient,
        masters: MasterCache,
        http: httpx.Client,
        *,
        clock: Clock = utcnow,
        prepare: Callable[[datetime], None] | None = None,
    ) -> None:
        self.settings = settings
        # after a link: read the masters and create the prefixed 品目 (Deliverer.prepare_items)
        self.prepare = prepare
        self.tokens = tokens
        self.client = client
        self.masters = masters
        self.http = http
        self.clock = clock
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def start(self, redirect_uri: str | None = None) -> LinkStart:
        """freee's authorize URL with PKCE S256 and ``prompt=select_company``."""
        client_id = self.settings.require_client_id()
        redirect = redirect_uri or self.settings.redirect_uri()
        verifier = generate_token(64)
        state = secrets.token_urlsafe(24)
        url = prepare_grant_uri(
            self.settings.authorize_url,
            client_id,
            "code",
            redirect_uri=redirect,
            state=state,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
            prompt="select_company",
        )
        now = self.clock()
        expires = now + PENDING_TTL
        with self._lock:
            self._pending = {k: v for k, v in self._pending.items() if v.expires_at > now}
            self._pending[state] = _Pending(verifier, redirect, expires)
        return LinkStart(url=str(url), state=state, redirect_uri=redirect, expires_at=expires)

    def finish(self, code: str, state: str) -> LinkStatus:
        """Exchange the code, store the pair, record the company; returns the new link."""
        now = self.clock()
        with self._lock:
            pending = self._pending.pop(state, None)
        if pending is None or pending.expires_at < now:
            raise FreeeRelink(
                "unknown or expired link state: start the link again",
                staff_message="連携の有効期限が切れました。もう一度最初から連携してください。",
            )
        code = code.strip()
        if not code:
            raise FreeeRelink("empty authorization code", staff_message="認可コードが空です。")
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=pending.redirect_uri,
            client_id=self.settings.require_client_id(),
            client_secret=self.settings.read_client_secret(),
            code_verifier=pending.verifier,
        )
        try:
            resp = self.http.post(self.settings.token_url, content=body, headers=FORM)
        except httpx.TransportError as exc:
            raise error_from_transport(exc, "token exchange") from exc
        if resp.status_code >= 400:
            error = error_from_response(resp)
            raise FreeeRelink(
                f"freee refused the authorization code: {error}",
                status_code=resp.status_code,
                freee_message=error.freee_message,
                staff_message="freee会計が認可コードを受け付けませんでした。もう一度連携してください。",
            )
        try:
            data = resp.json()
        except ValueError as exc:
            raise FreeeRetryLater("token exchange: answer is not JSON") from exc
        record = parse_token_response(data, now, None)
        if (
            self.settings.company_id is not None
            and record.company_id is not None
            and record.company_id != self.settings.company_id
        ):
            raise FreeeFixSetting(
                f"the company chosen at freee ({record.company_id}) is not freee.company_id "
                f"({self.settings.company_id})",
                staff_message=(
                    "freee会計で選んだ事業所が設定の company_id と異なります。"
                    "正しい事業所を選んで連携し直してください。"
                ),
            )
        self.tokens.store_link(record)
        if record.company_id is None and self.settings.company_id is None:
            company = self._only_company()
            self.tokens.store_link(replace(record, company_id=company))
        self._prepare(now)
        log.info("freee linked (company %s)", self.tokens.company_id())
        return self.tokens.status()

    def _only_company(self) -> int:
        companies = self.client.companies()
        if len(companies) == 1:
            return int(companies[0]["id"])
        names = ", ".join(
            f"{c.get('id')} {c.get('display_name') or c.get('name')}" for c in companies
        )
        self.tokens.delete()
        raise FreeeFixSetting(
            f"freee named no company and the user has {len(companies)}: {names}; "
            "set freee.company_id",
            staff_message=(
                "事業所を特定できません。設定の company_id を指定して連携し直してください。"
            ),
        )

    def _prepare(self, now: datetime) -> None:
        """Masters and 品目 once, at link time; best effort: the link stands without them
        (a rate limit, say), and the first day to send reads what it needs."""
        if self.prepare is None or self.tokens.company_id() is None:
            self._record_company_name()
            return
        try:
            self.prepare(now)
        except FreeeError as exc:
            log.warning("after the link, reading masters or creating 品目 failed: %s", exc)

    def _record_company_name(self) -> None:
        company = self.tokens.company_id()
        if company is None:
            return
        try:
            data = self.client.company(company, details=False)
        except FreeeError as exc:
            log.warning("could not read the company's name: %s", exc)
            return
        self.tokens.set_company_name(data.get("display_name") or data.get("name"))

    def unlink(self) -> UnlinkResult:
        """Revoke the refresh token at freee (best effort) and delete the local link."""
        record = self.tokens.load()
        revoked = False
        message = "not linked"
        if record is not None:
            body = prepare_token_request(
                "refresh_token",
                refresh_token=record.refresh_token,
                client_id=self.settings.client_id or "",
                client_secret=self._secret_or_empty(),
            )
            # the revoke endpoint takes token= (RFC 7009), not refresh_token=
            form = body.replace("grant_type=refresh_token&refresh_token=", "token=", 1)
            form += "&token_type_hint=refresh_token"
            try:
                resp = self.http.post(self.settings.revoke_url, content=form, headers=FORM)
                revoked = resp.status_code < 400
                message = (
                    "revoked at freee"
                    if revoked
                    else f"freee answered {resp.status_code} to the revoke: {resp.text[:200]}"
                )
            except httpx.TransportError as exc:
                message = f"could not reach freee to revoke ({exc}); deleted locally"
        self.tokens.delete()
        self.masters.forget()
        return UnlinkResult(revoked=revoked, message=message)

    def _secret_or_empty(self) -> str:
        try:
            return self.settings.read_client_secret()
        except FreeeError:
            return ""
        except Exception:
            return ""


_PAGE = """<!doctype html><html lang="ja"><meta charset="utf-8"><title>gatewayd</title>
<body style="font-family:sans-serif"><h1>{title}</h1><p>{text}</p></body></html>"""


def catch_loopback_code(
    port: int, state: str, *, timeout: float = 600.0, ready: threading.Event | None = None
) -> str:
    """Serve ``http://127.0.0.1:PORT/callback`` once and return the code freee sends.

    Only a request carrying the expected ``state`` is accepted; anything else is answered
    and ignored. Raises ``FreeeRelink`` on an error redirect or a timeout.
    """
    result: dict[str, str] = {}
    done = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if parts.path != "/callback" or query.get("state", [""])[0] != state:
                self._answer(404, "見つかりません", "このアドレスは連携の戻り先ではありません。")
                return
            if "code" in query:
                result["code"] = query["code"][0]
                self._answer(200, "連携しました", "この画面を閉じて端末に戻ってください。")
            else:
                result["error"] = query.get("error", ["unknown"])[0]
                self._answer(400, "連携できませんでした", html.escape(result["error"]))
            done.set()

        def _answer(self, status: int, title: str, text: str) -> None:
            page = _PAGE.format(title=title, text=text).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("loopback: " + format, *args)

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    server.timeout = 0.5
    try:
        if ready is not None:
            ready.set()
        waited = 0.0
        while not done.is_set() and waited < timeout:
            server.handle_request()
            waited += server.timeout
    finally:
        server.server_close()
    if "code" in result:
        return result["code"]
    if "error" in result:
        raise FreeeRelink(
            f"freee redirected with error {result['error']}",
            staff_message="freee会計で連携が許可されませんでした。",
        )
    raise FreeeRelink("no answer from freee's consent page in time", staff_message="時間切れです。")
