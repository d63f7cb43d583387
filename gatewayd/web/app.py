"""The status page as a Starlette application (server-rendered, no JavaScript).

Routes (everything that changes state is a POST behind login and a CSRF token):

    GET  /                      overview                               login
    GET  /day/{register}/{date} one day: plan, postings, attempts       login
    POST /resend                resend one day or a range               login + CSRF
    POST /day/{r}/{d}/resolve   keep freee's / post ours (edited day)   login + CSRF
    POST /devices/test-slip     print a test slip                       login + CSRF
    POST /devices/drawer        open the drawer                         login + CSRF
    POST /link/start            begin the freee OAuth link              login + CSRF
    GET  /link                  the link page (authorize button, code)  login
    GET  /link/callback         freee's redirect (state-checked)        state
    POST /link/finish           paste the code (oob)                    login + CSRF
    GET  /login  POST /login  POST /logout
    GET  /healthz               liveness, no data                       open
    GET  /api/status            the overview as JSON                    login or bearer
    GET  /metrics               Prometheus text                         loopback or bearer
    GET  /static/style.css, /static/icon.svg (also as /favicon.ico)

Why the OAuth callback needs no session: freee redirects from another site, and a
SameSite=Strict cookie is not sent on such a navigation. The ``state`` it carries was issued
by this page to a logged-in session moments before, is single use and expires; that is the
anti-forgery check of RFC 6749 §10.12.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatewayd.errors import GatewayError
from gatewayd.web import i18n
from gatewayd.web.guard import client_address, client_key
from gatewayd.web.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gatewayd.web.metrics import render_metrics
from gatewayd.web.model import (
    RESOLVE_CHOICES,
    DayStatus,
    ErrorEntry,
    ErrorSource,
    GatewayBackend,
    HeldCause,
    Overview,
    ResolveChoice,
)
from gatewayd.web.password import StoredPassword, read_password, verify_password
from gatewayd.web.security import (
    Clock,
    LoginLimiter,
    LoginTokens,
    Session,
    SessionStore,
    same_token,
)
from gatewayd.web.settings import WebSettings, is_loopback
from gatewayd.web.views import (
    attention_count,
    diff_rows,
    fmt_date,
    fmt_time,
    overview_json,
    redact,
    sending_count,
    yen,
)

log = logging.getLogger(__name__)

SESSION_COOKIE = "gatewayd_session"
LOGIN_COOKIE = "gatewayd_login"  # the login form's nonce (signed double submit)
LANG_COOKIE = "gatewayd_lang"
VERIFY_WAIT = 3.0  # seconds a login waits for the one argon2 check slot, then 429
LOCKOUT_EVENTS = 20  # locked-out clients shown in recent errors
FORWARDED_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip")
OOB_REDIRECT = "urn:ietf:wg:oauth:2.0:oob"
LINK_STATE_LIFETIME = 10 * 60.0
MAX_RESEND_DAYS = 366
MAX_BODY = 16 * 1024
EXPIRY_WARNING_DAYS = 14
OVERVIEW_REFRESH_SECONDS = 60
REGISTER_ID = re.compile(r"[A-Za-z0-9]{1,8}-[A-Za-z0-9]{1,8}")

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
)
STATUS_ICON = {"synced": "✓", "sending": "…", "held": "!", "open": "–"}


def _template_env() -> jinja2.Environment:
    path = resources.files("gatewayd.web").joinpath("templates")
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(path)),
        autoescape=True,  # every variable is escaped (ASVS 3.2.2)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _static(name: str) -> bytes:
    return resources.files("gatewayd.web").joinpath("static", name).read_bytes()


class PasswordSource:
    """The password file, re-read only when it changes (``gatewayd passwd`` runs elsewhere)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: tuple[int, int, int] | None = None
        self._value: StoredPassword | None = None

    def current(self) -> StoredPassword | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._key, self._value = None, None
            return None
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if key != self._key:
            self._value = read_password(self.path)
            self._key = key
        return self._value


def default_hostnames() -> tuple[str, ...]:
    name = socket.gethostname().lower()
    return ("localhost", name, f"{name}.local")


class GuardMiddleware:
    """Security headers on every response; requests for an unknown Host are refused.

    It wraps the whole Starlette app (outside Starlette's own body limit and error
    middleware), so their 413 and 500 answers get the same headers and Host check.
    The Host check stops DNS-rebinding pages from talking to the box under a name of their
    own; IP literals, localhost, the box's host name and the configured names are accepted.
    With TLS on the port (``redirect_http``), every plain-HTTP request is sent to the same
    URL over https (308), loopback included: plain HTTP carries nothing but that redirect.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        hostnames: frozenset[str],
        https: bool,
        redirect_http: bool = False,
    ) -> None:
        self.app = app
        self.hostnames = hostnames
        self.https = https
        self.redirect_http = redirect_http

    def _host_ok(self, host: str) -> bool:
        host = host.strip().lower()
        if host.startswith("["):  # [v6]:port
            return "]" in host
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if name in self.hostnames:
            return True
        return re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", name) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope.get("headers", []):
            if name == b"host":
                host = value.decode("latin-1")
                break
        path: str = scope.get("path", "")
        secure = self.https or scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS:
                    headers[key] = value
                if not path.startswith("/static/"):
                    headers["cache-control"] = "no-store"
                if secure:
                    headers["strict-transport-security"] = "max-age=31536000"
            await send(message)

        if not self._host_ok(host):
            response = Response("invalid Host header\n", status_code=400, media_type="text/plain")
            await response(scope, receive, send_with_headers)
            return
        if self.redirect_http and scope.get("scheme") == "http":
            query = scope.get("query_string", b"").decode("latin-1")
            target = f"https://{host.strip()}{quote(path)}" + (f"?{query}" if query else "")
            response = RedirectResponse(target, status_code=308)
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def _safe_next(value: str | None) -> str:
    """A local path to go to after login, never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if re.fullmatch(r"/[A-Za-z0-9/_.\-%]*", value) is None:
        return "/"
    return value


def _parse_date(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _form_str(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


class StatusPage:
    """Builds the Starlette app around one backend; holds sessions and the login limiter."""

    def __init__(
        self,
        settings: WebSettings,
        backend: GatewayBackend,
        *,
        password_file: Path,
        clock: Clock = time.monotonic,
        timezone: tzinfo | None = None,
        limiter: LoginLimiter | None = None,
        https: bool = False,
        tls_fingerprint: str | None = None,
        verify_wait: float = VERIFY_WAIT,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.backend = backend
        self.passwords = PasswordSource(password_file)
        self.clock = clock
        self.timezone = timezone
        self.sessions = SessionStore(settings.session_lifetime_minutes * 60.0, clock=clock)
        self.limiter = limiter or LoginLimiter(clock=clock)
        self.login_tokens = LoginTokens(clock=clock)
        self.tls_fingerprint = tls_fingerprint
        self.verify_wait = verify_wait
        self.wall_clock = wall_clock
        self._verify_slot: asyncio.Semaphore | None = None  # made on the server's loop
        self.lockouts: OrderedDict[str, tuple[datetime, int]] = OrderedDict()
        self._proxies = [ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies]
        self.https = https or (settings.public_url or "").startswith("https://")
        self._pending_links: dict[str, tuple[str, float]] = {}  # state → (session id, issued)
        self._link_views: dict[str, tuple[str, str, str]] = {}  # session id → (url, state, mode)
        self._env = _template_env()
        self._css = _static("style.css")
        self._icon = _static("icon.svg")
        hostnames = set(default_hostnames()) | set(settings.hostnames)
        if settings.public_url:
            public_host = urlsplit(settings.public_url).hostname
            if public_host:
                hostnames.add(public_host.lower())
        self.app = GuardMiddleware(
            Starlette(
                routes=self._routes(),
                exception_handlers={HTTPException: self._http_error},
                max_body_size=MAX_BODY,
            ),
            hostnames=frozenset(hostnames),
            https=self.https,
            redirect_http=settings.serves_tls,
        )

    # ---- plumbing --------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/", self.overview, methods=["GET"]),
            Route("/day/{register_id}/{business_date}", self.day, methods=["GET"]),
            Route("/day/{register_id}/{business_date}/resolve", self.resolve, methods=["POST"]),
            Route("/resend", self.resend, methods=["POST"]),
            Route("/devices/test-slip", self.test_slip, methods=["POST"]),
            Route("/devices/drawer", self.kick_drawer, methods=["POST"]),
            Route("/link/start", self.link_start, methods=["POST"]),
            Route("/link", self.link_page, methods=["GET"]),
            Route("/link/callback", self.link_callback, methods=["GET"]),
            Route("/link/finish", self.link_finish, methods=["POST"]),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/api/status", self.api_status, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            Route("/static/style.css", self.stylesheet, methods=["GET"]),
            Route("/static/icon.svg", self.icon, methods=["GET"]),
            Route("/favicon.ico", self.icon, methods=["GET"]),
        ]

    def _lang(self, request: Request) -> str:
        return i18n.pick_lang(request.query_params.get("lang"), request.cookies.get(LANG_COOKIE))

    def _t(self, request: Request) -> Callable[..., str]:
        lang = self._lang(request)

        def t(key: str, **params: object) -> str:
            return i18n.translate(lang, key, **params)

        return t

    def _secure(self, request: Request) -> bool:
        return self.https or request.url.scheme == "https"

    def _set_cookie(
        self, request: Request, response: Response, name: str, value: str
    ) -> None:
        response.set_cookie(
            name, value, path="/", httponly=True, samesite="strict", secure=self._secure(request)
        )

    def _render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        *,
        session: Session | None = None,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        lang = self._lang(request)
        flash: list[tuple[str, str]] = []
        if session is not None and session.flash:
            flash, session.flash = session.flash, []
        ctx: dict[str, Any] = {
            "lang": lang,
            "other_lang": "en" if lang == "ja" else "ja",
            "t": self._t(request),
            "csrf": session.csrf if session is not None else "",
            "logged_in": session is not None and session.user,
            "flash": flash,
            "yen": yen,
            "fmt_time": lambda v: fmt_time(v, self.timezone),
            "fmt_date": fmt_date,
            "redact": redact,
            "status_icon": STATUS_ICON,
            "refresh": None,
            "generated_at": None,
            "version": "",
            "tls_fingerprint": self.tls_fingerprint if self._secure(request) else None,
        }
        ctx.update(context)
        body = self._env.get_template(template).render(ctx)
        response = HTMLResponse(body, status_code=status_code, headers=headers)
        query_lang = request.query_params.get("lang")
        if query_lang in i18n.LANGS:
            self._set_cookie(request, response, LANG_COOKIE, query_lang)
        return response

    def _message(
        self,
        request: Request,
        heading_key: str,
        message: str,
        *,
        status_code: int,
        level: str = "error",
        detail: str | None = None,
        session: Session | None = None,
    ) -> HTMLResponse:
        t = self._t(request)
        return self._render(
            request,
            "message.html",
            {"heading": t(heading_key), "message": message, "level": level, "detail": detail},
            session=session,
            status_code=status_code,
        )

    async def _http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        t = self._t(request)
        key = "error.not_found" if exc.status_code == 404 else "error.bad_request"
        if exc.status_code == 413:
            return Response("request too large\n", status_code=413, media_type="text/plain")
        return self._message(request, "error.title", t(key), status_code=exc.status_code)

    def _user(self, request: Request) -> Session | None:
        """The logged-in session of this request, if any and still valid."""
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None or not session.user:
            return None
        stored = self.passwords.current()
        if stored is None or stored.stamp != session.password_stamp:
            self.sessions.delete(session.id)  # the password changed: log everyone out
            return None
        return session

    def _to_login(self, request: Request) -> RedirectResponse:
        target = request.url.path
        return RedirectResponse("/login?next=" + quote(target, safe="/"), status_code=303)

    async def _guarded_post(self, request: Request) -> tuple[Session, FormData] | Response:
        """Login and a valid CSRF token, or a refusal (403)."""
        t = self._t(request)
        try:
            form = await request.form(max_files=0, max_fields=20)
        except HTTPException:
            raise
        except Exception:
            return self._message(request, "error.title", t("error.bad_request"), status_code=400)
        session = self._user(request)
        if session is None:
            return self._message(request, "error.title", t("error.login_required"), status_code=403)
        origin = request.headers.get("origin")
        if origin not in (None, "null") and urlsplit(origin).netloc.lower() != (
            request.headers.get("host", "").lower()
        ):
            return self._message(request, "error.title", t("error.csrf"), status_code=403)
        if not session.check_csrf(_form_str(form, "csrf")):
            return self._message(
                request, "error.title", t("error.csrf"), status_code=403, session=session
            )
        return session, form

    async def _call(
        self,
        request: Request,
        session: Session,
        fn: Callable[..., Any],
        *args: Any,
    ) -> tuple[bool, Any]:
        """Run a backend action in a worker thread; failures become a flash message."""
        try:
            return True, await run_in_threadpool(fn, *args)
        except GatewayError as exc:
            log.warning("web action %s failed: %s", getattr(fn, "__name__", fn), exc)
            session.flash.append(("error", redact(exc.staff_message) or ""))
            return False, None
        except Exception:
            log.exception("web action %s crashed", getattr(fn, "__name__", fn))
            session.flash.append(("error", self._t(request)("error.generic")))
            return False, None

    async def _read(self, request: Request, fn: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        try:
            return True, await run_in_threadpool(fn, *args)
        except Exception:
            log.exception("web read %s failed", getattr(fn, "__name__", fn))
            return False, None

    def _read_failed(self, request: Request, session: Session) -> HTMLResponse:
        t = self._t(request)
        return self._message(
            request, "error.title", t("error.generic"), status_code=500, session=session
        )

    def _bearer_ok(self, request: Request) -> bool:
        token = self.settings.metrics_token
        header = request.headers.get("authorization", "")
        if token is None or not header.lower().startswith("bearer "):
            return False
        return same_token(header[7:].strip(), token.reveal())

    def _trusted_proxy(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._proxies)

    def _client(self, request: Request) -> str:
        """The client's address: the peer's (IPv4-mapped IPv6 unwrapped), or behind a
        ``trusted_proxies`` proxy the nearest untrusted ``X-Forwarded-For`` entry."""
        peer = client_address(request.client.host) if request.client is not None else ""
        if not self._trusted_proxy(peer):
            return peer
        hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",")]
        for hop in reversed([h for h in hops if h]):
            hop = client_address(hop)
            if not self._trusted_proxy(hop):
                return hop
        return peer

    def _from_loopback(self, request: Request) -> bool:
        """A client on the box itself. A request that says it was forwarded, through a
        proxy not in ``trusted_proxies``, is never loopback: it comes from elsewhere."""
        client = self._client(request)
        if not is_loopback(client):
            return False
        peer = client_address(request.client.host) if request.client is not None else ""
        if self._trusted_proxy(peer):
            return True
        return not any(name in FORWARDED_HEADERS for name, _ in request.scope["headers"])

    # ---- pages -------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        session = self._user(request)
        if session is None:
            return self._to_login(request)
        ok, ov = await self._read(request, self.backend.overview)
        if not ok:
            return self._read_failed(request, session)
        assert isinstance(ov, Overview)
        if self.lockouts:
            errors = sorted([*self.lockout_errors(), *ov.errors], key=lambda e: e.at, reverse=True)
            ov = replace(ov, errors=tuple(errors))
        expires_in: int | None = None
        if ov.link.expires_at is not None:
            left = ov.link.expires_at - ov.generated_at
            if timedelta(0) <= left <= timedelta(days=EXPIRY_WARNING_DAYS):
                expires_in = max(1, left.days)
        today = ov.registers[0].today.business_date if ov.registers else None
        return self._render(
            request,
            "overview.html",
            {
                "ov": ov,
                "attention": attention_count(ov),
                "sending": sending_count(ov),
                "expires_in_days": expires_in,
                "default_start": today.isoformat() if today else "",
                "default_end": today.isoformat() if today else "",
                "refresh": OVERVIEW_REFRESH_SECONDS,
                "generated_at": ov.generated_at,
                "version": ov.version,
            },
            session=session,
        )

    def _day_key(self, request: Request) -> tuple[str, date] | None:
        register_id = request.path_params.get("register_id", "")
        business_date = _parse_date(request.path_params.get("business_date"))
        if REGISTER_ID.fullmatch(register_id) is None or business_date is None:
            return None
        return register_id, business_date

    async def day(self, request: Request) -> Response:
        session = self._user(request)
        if session is None:
            return self._to_login(request)
        t = self._t(request)
        key = self._day_key(request)
        if key is None:
            return self._message(
                request, "error.title", t("error.not_found"), status_code=404, session=session
            )
        ok, detail = await self._read(request, self.backend.day, *key)
        if not ok:
            return self._read_failed(request, session)
        if detail is None:
            return self._message(
                request, "error.title", t("day.not_found"), status_code=404, session=session
            )
        register_id, business_date = key
        edited = [
            {
                "ref_number": e.ref_number,
                "freee_id": e.freee_id,
                "deleted": e.theirs is None,
                "rows": rows,
                "changed": [r for r in rows if r.differs],
            }
            for e, rows in ((e, diff_rows(e.ours, e.theirs)) for e in detail.edited)
        ]
        held = detail.summary.held
        can_resend = detail.summary.status is not DayStatus.OPEN and (
            held is None or held.cause not in (HeldCause.DAY_CHECK, HeldCause.EDITED_IN_FREEE)
        )
        plan_json = (
            json.dumps(detail.plan, ensure_ascii=False, indent=2, default=str)
            if detail.plan is not None
            else ""
        )
        path = f"/day/{register_id}/{business_date.isoformat()}"
        return self._render(
            request,
            "day.html",
            {
                "detail": detail,
                "heading": t("day.title", date=business_date.isoformat(), register=register_id),
                "edited": edited,
                "plan": detail.plan,
                "plan_json": plan_json,
                "back": path,
                "resolve_action": path + "/resolve",
                "can_resend": can_resend,
            },
            session=session,
        )

    # ---- actions -----------------------------------------------------------------------

    async def resend(self, request: Request) -> Response:
        guarded = await self._guarded_post(request)
        if isinstance(guarded, Response):
            return guarded
        session, form = guarded
        t = self._t(request)
        back = _safe_next(_form_str(form, "back"))
        register_id = _form_str(form, "register_id") or ""
        start = _parse_date(form.get("start"))
        end = _parse_date(form.get("end"))
        if (
            REGISTER_ID.fullmatch(register_id) is None
            or start is None
            or end is None
            or start > end
            or (end - start).days >= MAX_RESEND_DAYS
        ):
            session.flash.append(("error", t("resend.bad_range", max=MAX_RESEND_DAYS)))
            return RedirectResponse(back, status_code=303)
        ok, days = await self._call(request, session, self.backend.resend, register_id, start, end)
        if ok:
            if days:
                session.flash.append(("ok", t("resend.done", days=days)))
            else:
                session.flash.append(("warning", t("resend.none")))
        return RedirectResponse(back, status_code=303)

    async def resolve(self, request: Request) -> Response:
        guarded = await self._guarded_post(request)
        if isinstance(guarded, Response):
            return guarded
        session, form = guarded
        t = self._t(request)
        key = self._day_key(request)
        choice = _form_str(form, "choice")
        if key is None or choice not in RESOLVE_CHOICES:
            return self._message(
                request, "error.title", t("error.bad_request"), status_code=400, session=session
            )
        resolved: ResolveChoice = "keep_freee" if choice == "keep_freee" else "post_ours"
        ok, _ = await self._call(request, session, self.backend.resolve_edited, *key, resolved)
        if ok:
            session.flash.append(("ok", t("resolved." + resolved)))
        return RedirectResponse(f"/day/{key[0]}/{key[1].isoformat()}", status_code=303)

    async def test_slip(self, request: Request) -> Response:
        return await self._device_action(request, self.backend.print_test_slip, "done.test_slip")

    async def kick_drawer(self, request: Request) -> Response:
        return await self._device_action(request, self.backend.kick_drawer, "done.kick_drawer")

    async def _device_action(
        self, request: Request, fn: Callable[[], None], done_key: str
    ) -> Response:
        guarded = await self._guarded_post(request)
        if isinstance(guarded, Response):
            return guarded
        session, _ = guarded
        ok, _ = await self._call(request, session, fn)
        if ok:
            session.flash.append(("ok", self._t(request)(done_key)))
        return RedirectResponse("/#devices", status_code=303)

    # ---- freee link --------------------------------------------------------------------

    def _base_url(self, request: Request) -> str:
        if self.settings.public_url:
            return self.settings.public_url
        return f"{request.url.scheme}://{request.headers.get('host', '')}"

    def _prune_links(self) -> None:
        now = self.clock()
        for state, (_, issued) in list(self._pending_links.items()):
            if now - issued > LINK_STATE_LIFETIME:
                del self._pending_links[state]

    async def link_start(self, request: Request) -> Response:
        guarded = await self._guarded_post(request)
        if isinstance(guarded, Response):
            return guarded
        session, form = guarded
        t = self._t(request)
        mode = "oob" if _form_str(form, "mode") == "oob" else "callback"
        redirect_uri = OOB_REDIRECT if mode == "oob" else self._base_url(request) + "/link/callback"
        ok, url = await self._call(request, session, self.backend.link_start, redirect_uri)
        if not ok:
            return RedirectResponse("/#freee", status_code=303)
        parts = urlsplit(url if isinstance(url, str) else "")
        state_values = parse_qs(parts.query).get("state", [])
        if parts.scheme not in ("http", "https") or not parts.netloc or len(state_values) != 1:
            log.error("link_start returned an unusable authorize URL")
            session.flash.append(("error", t("link.failed")))
            return RedirectResponse("/#freee", status_code=303)
        state = state_values[0]
        self._prune_links()
        for old_state, (sid, _) in list(self._pending_links.items()):
            if sid == session.id:  # only the newest link of a session stays valid
                del self._pending_links[old_state]
        now = self.clock()
        self._pending_links[state] = (session.id, now)
        session.link_states = {state: now}
        self._link_views[session.id] = (url, state, mode)
        return RedirectResponse("/link", status_code=303)

    async def link_page(self, request: Request) -> Response:
        session = self._user(request)
        if session is None:
            return self._to_login(request)
        view = self._link_views.get(session.id)
        state_ok = view is not None and view[1] in self._pending_links
        if view is None or not state_ok:
            t = self._t(request)
            return self._message(
                request, "link.title", t("link.state_invalid"), status_code=400, session=session
            )
        url, state, mode = view
        return self._render(
            request,
            "link.html",
            {"authorize_url": url, "state": state, "mode": mode},
            session=session,
        )

    async def _finish_link(
        self, request: Request, code: str | None, state: str | None, session: Session | None
    ) -> Response:
        t = self._t(request)
        self._prune_links()
        pending = self._pending_links.pop(state, None) if state else None
        if pending is None or state is None or not code or len(code) > 512:
            return self._message(
                request, "link.title", t("link.state_invalid"), status_code=400, session=session
            )
        self._link_views.pop(pending[0], None)
        try:
            link = await run_in_threadpool(self.backend.link_finish, code, state)
        except GatewayError as exc:
            log.warning("freee link failed: %s", exc)
            return self._message(
                request,
                "link.title",
                t("link.failed"),
                detail=redact(exc.staff_message),
                status_code=502,
                session=session,
            )
        except Exception:
            log.exception("freee link crashed")
            return self._message(
                request, "link.title", t("link.failed"), status_code=500, session=session
            )
        company = link.company_name or (str(link.company_id) if link.company_id else "—")
        return self._message(
            request,
            "link.title",
            t("link.done", company=company),
            level="ok",
            status_code=200,
            session=session,
        )

    async def link_callback(self, request: Request) -> Response:
        session = self._user(request)  # may be None: the cookie is not sent cross-site
        params = request.query_params
        if params.get("error"):
            state = params.get("state")
            if state:
                self._pending_links.pop(state, None)
            t = self._t(request)
            return self._message(
                request, "link.title", t("link.denied"), status_code=400, session=session
            )
        return await self._finish_link(request, params.get("code"), params.get("state"), session)

    async def link_finish(self, request: Request) -> Response:
        guarded = await self._guarded_post(request)
        if isinstance(guarded, Response):
            return guarded
        session, form = guarded
        state = _form_str(form, "state")
        if state is None or state not in session.link_states:
            t = self._t(request)
            return self._message(
                request, "link.title", t("link.state_invalid"), status_code=400, session=session
            )
        code = (_form_str(form, "code") or "").strip()
        return await self._finish_link(request, code, state, session)

    # ---- login -------------------------------------------------------------------------

    def _login_response(
        self,
        request: Request,
        *,
        next_path: str,
        message: str | None = None,
        level: str = "error",
        status_code: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """The login form with a fresh stateless token (nothing is stored server-side)."""
        nonce = request.cookies.get(LOGIN_COOKIE) or ""
        if not re.fullmatch(r"[A-Za-z0-9_-]{43}", nonce):
            nonce = secrets.token_urlsafe(32)
        response = self._render(
            request,
            "login.html",
            {
                "next": next_path,
                "message": message,
                "message_level": level,
                "no_password": self.passwords.current() is None,
                "csrf": self.login_tokens.issue(nonce),
            },
            status_code=status_code,
            headers=headers,
        )
        self._set_cookie(request, response, LOGIN_COOKIE, nonce)
        return response

    async def login_page(self, request: Request) -> Response:
        if self._user(request) is not None:
            return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
        bye = request.query_params.get("bye") == "1"
        return self._login_response(
            request,
            next_path=_safe_next(request.query_params.get("next")),
            message=self._t(request)("logout.done") if bye else None,
            level="ok",
        )

    def _locked_out(self, request: Request, client: str, wait: float) -> Response:
        minutes = max(1, int(wait // 60) + (1 if wait % 60 else 0))
        self.lockouts[client] = (self.wall_clock(), self.limiter.attempts(client_key(client)))
        self.lockouts.move_to_end(client)
        while len(self.lockouts) > LOCKOUT_EVENTS:
            self.lockouts.popitem(last=False)
        log.warning("status page: login refused, %s locked out for %.0f s", client, wait)
        return self._login_response(
            request,
            next_path="/",
            message=self._t(request)("login.limited", minutes=minutes),
            status_code=429,
            headers={"retry-after": str(int(wait) + 1)},
        )

    async def _verify(self, stored: StoredPassword, password: str) -> bool | None:
        """One argon2 check at a time (each takes 64 MiB); None when the slot stayed busy."""
        if self._verify_slot is None:
            self._verify_slot = asyncio.Semaphore(1)
        try:
            await asyncio.wait_for(self._verify_slot.acquire(), self.verify_wait)
        except TimeoutError:
            return None
        try:
            return await run_in_threadpool(verify_password, stored.hash, password)
        finally:
            self._verify_slot.release()

    async def login(self, request: Request) -> Response:
        t = self._t(request)
        client = self._client(request)
        key = client_key(client)
        loopback = self._from_loopback(request)
        wait = self.limiter.retry_after(key)
        if wait is not None:  # refused before the body is read
            return self._locked_out(request, client, wait)
        try:
            form = await request.form(max_files=0, max_fields=5)
        except HTTPException:
            raise
        except Exception:
            return self._message(request, "error.title", t("error.bad_request"), status_code=400)
        next_path = _safe_next(_form_str(form, "next"))
        if not self.login_tokens.check(request.cookies.get(LOGIN_COOKIE), _form_str(form, "csrf")):
            return self._login_response(
                request, next_path=next_path, message=t("login.expired"), status_code=403
            )
        stored = self.passwords.current()
        if stored is None:
            return self._login_response(request, next_path=next_path, status_code=403)
        wait = self.limiter.acquire(key, loopback=loopback)  # counted before the check
        if wait is not None:
            return self._locked_out(request, client, wait)
        password = _form_str(form, "password") or ""
        ok = await self._verify(stored, password[:1024])
        if ok is None:
            self.limiter.refund(key)
            return self._login_response(
                request,
                next_path=next_path,
                message=t("login.busy"),
                status_code=429,
                headers={"retry-after": "2"},
            )
        if not ok:
            log.warning("status page: failed login from %s", client)
            return self._login_response(
                request, next_path=next_path, message=t("login.failed"), status_code=401
            )
        self.limiter.success(key)
        session = self.sessions.create(user=True, password_stamp=stored.stamp)
        log.info("status page: login from %s", client)
        response = RedirectResponse(next_path, status_code=303)
        self._set_cookie(request, response, SESSION_COOKIE, session.id)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        guarded = await self._guarded_post(request)
        if isinstance(guarded, Response):
            return guarded
        session, _ = guarded
        self.sessions.delete(session.id)
        self._link_views.pop(session.id, None)
        response = RedirectResponse("/login?bye=1", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def lockout_errors(self) -> list[ErrorEntry]:
        """Locked-out login clients, newest first, for the overview's recent errors."""
        return [
            ErrorEntry(
                at=at,
                source=ErrorSource.GATEWAY,
                message=f"status page: logins from {client} locked out after {count} attempts",
                staff_message=(
                    f"{client} からのログイン失敗が続いたため、一時的にログインを止めています"
                    f"（{count}回）。心当たりがなければ設置担当者に連絡してください。"
                ),
            )
            for client, (at, count) in reversed(self.lockouts.items())
        ]

    # ---- machine interfaces ------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        ok, _ = await self._read(request, self.backend.metrics)
        return JSONResponse({"status": "ok" if ok else "error"}, status_code=200 if ok else 503)

    async def api_status(self, request: Request) -> Response:
        if self._user(request) is None and not self._bearer_ok(request):
            return JSONResponse(
                {"error": "login or bearer token required"},
                status_code=401,
                headers={"www-authenticate": 'Bearer realm="gatewayd"'},
            )
        ok, ov = await self._read(request, self.backend.overview)
        if not ok:
            return JSONResponse({"error": "backend unavailable"}, status_code=503)
        return JSONResponse(overview_json(ov))

    async def metrics(self, request: Request) -> Response:
        if not (self._from_loopback(request) or self._bearer_ok(request)):
            return Response(
                "metrics: loopback or bearer token only\n",
                status_code=401,
                media_type="text/plain",
                headers={"www-authenticate": 'Bearer realm="gatewayd"'},
            )
        ok, body = await self._read(request, render_metrics, self.backend)
        if not ok:
            return Response("backend unavailable\n", status_code=503, media_type="text/plain")
        return Response(body, media_type=METRICS_CONTENT_TYPE)

    async def icon(self, request: Request) -> Response:
        return Response(
            self._icon, media_type="image/svg+xml", headers={"cache-control": "max-age=86400"}
        )

    async def stylesheet(self, request: Request) -> Response:
        return Response(
            self._css,
            media_type="text/css; charset=utf-8",
            headers={"cache-control": "max-age=3600"},
        )


def create_app(
    settings: WebSettings,
    backend: GatewayBackend,
    *,
    password_file: Path,
    clock: Clock = time.monotonic,
    timezone: tzinfo | None = None,
    limiter: LoginLimiter | None = None,
    **options: Any,
) -> StatusPage:
    """The page and its ASGI app (``.app``); used by ``WebServer`` and by tests."""
    return StatusPage(
        settings,
        backend,
        password_file=password_file,
        clock=clock,
        timezone=timezone,
        limiter=limiter,
        **options,
    )
