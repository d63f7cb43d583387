"""OAuth 2.0 as freee's accounts host does it (notes/freee-api.md §1).

- ``GET /public_api/authorize``: a consent page (事業所 picker with ``prompt=select_company``)
  whose button posts back; ``--auto-approve`` skips the page. Redirects: the out-of-band
  ``urn:ietf:wg:oauth:2.0:oob`` (the code is shown on a page) and loopback URIs
  (``http://127.0.0.1:<any port>/...``, ``localhost``, ``[::1]``) as RFC 8252 allows.
  PKCE: ``S256`` only, alongside the client secret.
- ``POST /public_api/token``: ``authorization_code`` and ``refresh_token`` grants. Codes
  live 10 minutes and are single use (a reused code revokes what it issued). Refresh
  tokens are single use and rotate; the previous access token dies with the refresh. A
  reused, revoked or expired refresh token, a bad code, a redirect_uri or PKCE mismatch:
  401 ``{"error": "invalid_grant", ...}`` with freee's description.
- ``POST /public_api/revoke``: RFC 7009; revoking either token of a pair revokes both.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from gatewayd.sim.freee import errors, seed
from gatewayd.sim.freee.config import AUTH_CODE_TTL
from gatewayd.sim.freee.core import Emulator
from gatewayd.sim.freee.storage import Db, Row

OOB_REDIRECT = "urn:ietf:wg:oauth:2.0:oob"
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


@dataclass(frozen=True)
class TokenInfo:
    """What an access token grants."""

    token: str
    client_id: str
    user_id: int
    company_id: int | None
    scopes: frozenset[str]


def redirect_allowed(uri: str) -> bool:
    """The out-of-band URI, or a loopback URI on any port (RFC 8252 §7.3)."""
    if uri == OOB_REDIRECT:
        return True
    parts = urlsplit(uri)
    return parts.scheme in {"http", "https"} and (parts.hostname or "") in _LOOPBACK_HOSTS


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _new_token() -> str:
    return secrets.token_urlsafe(32)


# -- authorize ----------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;color:#222}}
.box{{border:1px solid #ccc;border-radius:6px;padding:1em 1.5em}}
button{{font-size:1.1em;padding:.4em 1.5em;margin-right:1em}}
code{{font-size:1.3em;background:#f4f4f4;padding:.2em .4em}}</style></head>
<body><p>freee会計 エミュレータ（gatewayd のテスト用。本物の freee ではありません）</p>
<div class="box">{body}</div></body></html>"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status)


def _error_page(message: str) -> HTMLResponse:
    return _page("エラー", f"<h1>エラー</h1><p>{html.escape(message)}</p>", 400)


def _redirect_with(redirect_uri: str, params: dict[str, str]) -> RedirectResponse:
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return RedirectResponse(redirect_uri + separator + urlencode(params), status_code=302)


async def authorize(emu: Emulator, request: Request) -> Response:
    """GET: the consent page (or, with auto-approve, the code at once). POST: the button."""
    if request.method == "POST":
        form = await request.form()
        params = {k: str(v) for k, v in form.items()}
    else:
        params = dict(request.query_params)
    client_id = params.get("client_id", "")
    redirect_uri = params.get("redirect_uri", "")
    state = params.get("state")
    with emu.store.transaction() as db:
        client = db.client(client_id)
    if client is None:
        return _error_page("指定されたアプリケーションが見つかりません（client_id が不正です）。")
    if not redirect_allowed(redirect_uri) or (
        redirect_uri == OOB_REDIRECT and not emu.facts["oauth_oob_redirect"]
    ):
        return _error_page("リダイレクトURIが登録されているコールバックURLと一致しません。")

    def refuse(error: str, description: str) -> Response:
        if redirect_uri == OOB_REDIRECT:
            return _error_page(f"{error}: {description}")
        extra = {"error": error, "error_description": description}
        if state is not None:
            extra["state"] = state
        return _redirect_with(redirect_uri, extra)

    if params.get("response_type") != "code":
        return refuse("unsupported_response_type", "response_type は code を指定してください。")
    challenge = params.get("code_challenge") or None
    method = params.get("code_challenge_method") or None
    if challenge is not None and method != "S256":
        return refuse("invalid_request", "code_challenge_method は S256 を指定してください。")
    if method is not None and challenge is None:
        return refuse("invalid_request", "code_challenge を指定してください。")
    select_company = params.get("prompt") == "select_company"
    memberships = emu.store.read().memberships(seed.USER_ID)

    if request.method == "GET" and not emu.config.auto_approve:
        names = {
            m["company_id"]: (emu.store.read().company_profile(m["company_id"]) or {}).get(
                "display_name", str(m["company_id"])
            )
            for m in memberships
        }
        return _consent_page(client, params, memberships, names, select_company)
    if request.method == "POST" and params.get("action") != "approve":
        return refuse("access_denied", "ユーザーがアクセスを拒否しました。")
    company_id: int | None = None
    if select_company:
        choice = params.get("company_id") or str(memberships[0]["company_id"])
        if not choice.isdigit() or int(choice) not in {m["company_id"] for m in memberships}:
            return refuse("invalid_request", "事業所の選択が不正です。")
        company_id = int(choice)
    code = secrets.token_urlsafe(24)
    with emu.store.transaction() as db:
        db.execute(
            "INSERT INTO auth_codes(code, client_id, user_id, company_id, redirect_uri, scope,"
            " code_challenge, code_challenge_method, expires_at) VALUES(?,?,?,?,?,?,?,?,?)",
            (code, client_id, seed.USER_ID, company_id, redirect_uri, client["scopes"],
             challenge, method, emu.clock.now() + AUTH_CODE_TTL),
        )
    if redirect_uri == OOB_REDIRECT:
        return _page(
            "認可コード",
            "<h1>認可コード</h1><p>以下のコードをアプリケーションに入力してください"
            "（有効期限10分）。</p>"
            f'<p><code id="authorization-code">{html.escape(code)}</code></p>',
        )
    result = {"code": code}
    if state is not None:
        result["state"] = state
    return _redirect_with(redirect_uri, result)


def _consent_page(
    client: dict[str, Any], params: dict[str, str], memberships: list[dict[str, Any]],
    names: dict[int, str], select_company: bool,
) -> HTMLResponse:
    store_names = []
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in params.items()
        if k not in {"action", "company_id"}
    )
    for index, member in enumerate(memberships):
        cid = member["company_id"]
        checked = " checked" if index == 0 else ""
        store_names.append(
            f'<label><input type="radio" name="company_id" value="{cid}"{checked}> '
            f"{html.escape(names.get(cid, str(cid)))}（権限: {html.escape(member['role'])}）"
            "</label><br>"
        )
    picker = (
        "<h2>事業所の選択</h2>" + "".join(store_names)
        if select_company
        else "<p>所属するすべての事業所へのアクセスを許可します。</p>"
    )
    scopes = html.escape(client["scopes"])
    body = (
        f"<h1>{html.escape(client['name'])} にアクセスを許可しますか？</h1>"
        f"<p>このアプリケーションは freee会計 のデータにアクセスします（権限: {scopes}）。</p>"
        f'<form method="post" action="/public_api/authorize">{hidden}{picker}'
        '<p><button type="submit" name="action" value="approve" id="approve">許可する</button>'
        '<button type="submit" name="action" value="deny" id="deny">拒否する</button></p>'
        "</form>"
    )
    return _page("アプリ連携の確認", body)


# -- token --------------------------------------------------------------------------------


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip()).decode("utf-8")
        except ValueError as exc:
            raise errors.invalid_client() from exc
        client_id, _, secret = decoded.partition(":")
        return unquote_plus(client_id), unquote_plus(secret)
    return form.get("client_id", ""), form.get("client_secret", "")


def _issue_pair(
    emu: Emulator, db: Db, client_id: str, user_id: int, company_id: int | None, scope: str,
    grant_id: str,
) -> dict[str, Any]:
    now = emu.clock.now()
    access, refresh = _new_token(), _new_token()
    ttl = emu.config.access_token_ttl
    for token, kind, expires, pair in (
        (access, "access", now + ttl, refresh),
        (refresh, "refresh", now + emu.config.refresh_token_ttl, access),
    ):
        db.execute(
            "INSERT INTO tokens(token, kind, client_id, user_id, company_id, scope, grant_id,"
            " issued_at, expires_at, pair) VALUES(?,?,?,?,?,?,?,?,?,?)",
            (token, kind, client_id, user_id, company_id, scope, grant_id, now, expires, pair),
        )
    return {
        "access_token": access,
        "token_type": "bearer",
        "expires_in": ttl,
        "refresh_token": refresh,
        "scope": scope,
        "created_at": int(now),
        # freee's reference shows company_id as a string ("123"); null without a pick.
        "company_id": str(company_id) if company_id is not None else None,
        "external_cid": f"{company_id:010d}" if company_id is not None else None,
    }


async def token(emu: Emulator, request: Request) -> Response:
    form_data = await request.form()
    form = {k: str(v) for k, v in form_data.items()}
    try:
        body = _token(emu, request, form)
    except errors.OAuthError as exc:
        return JSONResponse(exc.body, status_code=exc.status,
                            headers={"Cache-Control": "no-store"})
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _token(emu: Emulator, request: Request, form: dict[str, str]) -> dict[str, Any]:
    client_id, secret = _client_credentials(request, form)
    grant_type = form.get("grant_type", "")
    with emu.store.transaction() as db:
        # A refusal still commits what it burnt (a code tried once is used).
        try:
            client = db.client(client_id)
            if client is None or not secrets.compare_digest(client["client_secret"], secret):
                raise errors.invalid_client()
            if grant_type == "authorization_code":
                return _exchange_code(emu, db, client_id, form)
            if grant_type == "refresh_token":
                return _refresh(emu, db, client_id, form)
            raise errors.unsupported_grant_type()
        except errors.OAuthError as exc:
            refusal = exc
    raise refusal


def _exchange_code(emu: Emulator, db: Db, client_id: str, form: dict[str, str]) -> dict[str, Any]:
    for name in ("code", "redirect_uri"):
        if not form.get(name):
            raise errors.invalid_request(f"{name} を指定してください。")
    row = db.one("SELECT * FROM auth_codes WHERE code=?", (form["code"],))
    if row is None or row["client_id"] != client_id:
        raise errors.invalid_grant()
    if row["used"]:
        # RFC 6749 4.1.2: a reused code revokes the tokens it issued.
        db.execute("UPDATE tokens SET revoked=1 WHERE grant_id=?", (row["code"],))
        raise errors.invalid_grant()
    db.execute("UPDATE auth_codes SET used=1 WHERE code=?", (row["code"],))
    if row["expires_at"] <= emu.clock.now() or row["redirect_uri"] != form["redirect_uri"]:
        raise errors.invalid_grant()
    verifier = form.get("code_verifier")
    if row["code_challenge"] is not None:
        if not verifier or not _VERIFIER.match(verifier) or s256(verifier) != row["code_challenge"]:
            raise errors.invalid_grant()
    elif verifier:
        raise errors.invalid_grant()
    return _issue_pair(
        emu, db, client_id, row["user_id"], row["company_id"], row["scope"], row["code"]
    )


def _refresh(emu: Emulator, db: Db, client_id: str, form: dict[str, str]) -> dict[str, Any]:
    presented = form.get("refresh_token")
    if not presented:
        raise errors.invalid_request("refresh_token を指定してください。")
    row = db.one("SELECT * FROM tokens WHERE token=? AND kind='refresh'", (presented,))
    if (
        row is None
        or row["client_id"] != client_id
        or row["used"]
        or row["revoked"]
        or row["expires_at"] <= emu.clock.now()
    ):
        raise errors.invalid_grant()
    # Refreshing invalidates the previous access token (freee 40x-checkpoint).
    db.execute("UPDATE tokens SET revoked=1 WHERE token=?", (row["pair"],))
    client = db.client(client_id)
    scope = client["scopes"] if client else row["scope"]
    if not emu.facts["oauth_refresh_rotates"]:
        return _reissue_access(emu, db, row, scope)  # facts.py: rotation switched off
    db.execute("UPDATE tokens SET used=1 WHERE token=?", (presented,))
    return _issue_pair(
        emu, db, client_id, row["user_id"], row["company_id"], scope, row["grant_id"]
    )


def _reissue_access(emu: Emulator, db: Db, refresh_row: Row, scope: str) -> dict[str, Any]:
    """A refresh that keeps its refresh token (rule ``oauth_refresh_rotates`` off)."""
    body = _issue_pair(emu, db, refresh_row["client_id"], refresh_row["user_id"],
                       refresh_row["company_id"], scope, refresh_row["grant_id"])
    db.execute("DELETE FROM tokens WHERE token=?", (body["refresh_token"],))
    db.execute("UPDATE tokens SET pair=? WHERE token=?",
               (refresh_row["token"], body["access_token"]))
    db.execute("UPDATE tokens SET pair=? WHERE token=?",
               (body["access_token"], refresh_row["token"]))
    body["refresh_token"] = refresh_row["token"]
    return body


async def revoke(emu: Emulator, request: Request) -> Response:
    form_data = await request.form()
    form = {k: str(v) for k, v in form_data.items()}
    client_id, secret = _client_credentials(request, form)
    with emu.store.transaction() as db:
        client = db.client(client_id)
        if client is None or not secrets.compare_digest(client["client_secret"], secret):
            exc = errors.invalid_client()
            return JSONResponse(exc.body, status_code=exc.status)
        presented = form.get("token", "")
        row = db.one("SELECT * FROM tokens WHERE token=?", (presented,))
        if row is not None and row["client_id"] == client_id:
            db.execute("UPDATE tokens SET revoked=1 WHERE token IN (?, ?)",
                       (row["token"], row["pair"]))
    return JSONResponse({})


# -- bearer tokens on the API -------------------------------------------------------------


def authenticate(emu: Emulator, header: str | None) -> TokenInfo:
    """The access token of an ``Authorization: Bearer`` header, or 401 expired_access_token
    (freee merged invalid_access_token into it in Dec 2024)."""
    if not header or not header.lower().startswith("bearer "):
        raise errors.expired_token()
    presented = header[7:].strip()
    row = emu.store.read().one(
        "SELECT * FROM tokens WHERE token=? AND kind='access'", (presented,)
    )
    if row is None or row["revoked"] or row["expires_at"] <= emu.clock.now():
        raise errors.expired_token()
    return TokenInfo(
        token=presented,
        client_id=row["client_id"],
        user_id=row["user_id"],
        company_id=row["company_id"],
        scopes=frozenset(row["scope"].split()),
    )


def expire_access_tokens(emu: Emulator, token: str | None = None) -> int:
    """Expire now the given access token, or every live one."""
    with emu.store.transaction() as db:
        now = emu.clock.now()
        if token is not None:
            return db.execute(
                "UPDATE tokens SET expires_at=? WHERE token=? AND kind='access'", (now - 1, token)
            )
        return db.execute(
            "UPDATE tokens SET expires_at=? WHERE kind='access' AND expires_at>?", (now - 1, now)
        )


def revoke_refresh_tokens(emu: Emulator, token: str | None = None,
                          client_id: str | None = None) -> int:
    """Revoke the given refresh token, or every live one (of ``client_id`` if given)."""
    with emu.store.transaction() as db:
        if token is not None:
            return db.execute(
                "UPDATE tokens SET revoked=1 WHERE token=? AND kind='refresh'", (token,)
            )
        if client_id is not None:
            return db.execute(
                "UPDATE tokens SET revoked=1 WHERE kind='refresh' AND used=0 AND revoked=0"
                " AND client_id=?",
                (client_id,),
            )
        return db.execute(
            "UPDATE tokens SET revoked=1 WHERE kind='refresh' AND used=0 AND revoked=0"
        )


def token_summary(emu: Emulator) -> list[dict[str, Any]]:
    """Tokens without their secrets, for inspection (last 8 characters only)."""
    now = emu.clock.now()
    rows = emu.store.read().all(
        "SELECT token, kind, client_id, company_id, scope, issued_at, expires_at, revoked, used"
        " FROM tokens ORDER BY issued_at, kind"
    )
    return [
        {
            "token_tail": r["token"][-8:],
            "kind": r["kind"],
            "client_id": r["client_id"],
            "company_id": r["company_id"],
            "scope": r["scope"],
            "issued_at": emu.clock.iso(r["issued_at"]),
            "expires_at": emu.clock.iso(r["expires_at"]),
            "live": not r["revoked"] and not r["used"] and r["expires_at"] > now,
            "revoked": bool(r["revoked"]),
            "used": bool(r["used"]),
        }
        for r in rows
    ]
