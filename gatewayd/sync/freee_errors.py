"""freee's error answers → the gateway's error tree, keeping freee's own words.

freee answers errors in two shapes (freee-api.md §4): ``{"status_code", "errors": [{"type",
"messages": [...], "codes"?: [...]}]}`` for 400/404/500 (and some 401s), and
``{"message", "code"?}`` / ``{"message", "messages"}`` for 401/403. The token endpoint answers
``{"error": "invalid_grant", "error_description"}``. Every one is parsed here into the class
that says who acts; ``freee_message`` keeps freee's text for the status page.

Transport failures are split by whether the request can have reached freee: a refused or
timed-out *connect* never did (``FreeeNotSent``: resend as is); anything later may have
(``FreeeRetryLater`` with ``ambiguous``: look the posting up before sending again).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from gatewayd.errors import (
    FreeeError,
    FreeeFixSetting,
    FreeePermission,
    FreeeRateLimited,
    FreeeRefused,
    FreeeRelink,
    FreeeRetryLater,
)


class FreeeNotSent(FreeeRetryLater):
    """The request surely never reached freee (connection refused, connect timeout)."""


class FreeeAmbiguous(FreeeRetryLater):
    """The request may have reached freee (read timeout, dropped connection, 5xx)."""


class FreeeTokenExpired(FreeeRelink):
    """401 ``expired_access_token``: refresh once and repeat the request."""


class FreeeNotFound(FreeeRefused):
    """404: the deal or transfer is not (or no longer) in freee."""


RATE_LIMIT_WORDS = re.compile(r"上限|制限|過度|rate.?limit|too many|limit", re.IGNORECASE)
PERMISSION_CODES = {
    "user_do_not_have_permission",
    "freee_plan_limit",
    "source_ip_address_limit",
    "not_available_plan_limited_app",
}
ACCESS_TOKEN_CODES = {"expired_access_token", "invalid_access_token"}

_STAFF_RATE = "freee会計の利用回数の上限に達しました。時間をおいて自動で再送します。"


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def parse_error_body(body: object) -> tuple[list[str], list[str]]:
    """(codes, messages) from either of freee's error shapes (or the token endpoint's)."""
    codes: list[str] = []
    messages: list[str] = []
    if not isinstance(body, dict):
        return codes, messages
    codes += _as_list(body.get("code"))
    codes += _as_list(body.get("error"))
    messages += _as_list(body.get("message"))
    messages += _as_list(body.get("messages"))
    messages += _as_list(body.get("error_description"))
    errors = body.get("errors")
    if isinstance(errors, list):
        # validation details first: they say what to fix; the status line says little
        ordered = sorted(
            (e for e in errors if isinstance(e, dict)), key=lambda e: e.get("type") != "validation"
        )
        for err in ordered:
            codes += _as_list(err.get("codes"))
            codes += _as_list(err.get("code"))
            messages += _as_list(err.get("messages"))
    return codes, [m for m in messages if m]


def _json_body(resp: httpx.Response) -> object:
    try:
        return resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


def retry_after_seconds(resp: httpx.Response, now: datetime | None = None) -> float | None:
    """The wait freee names: ``Retry-After`` (seconds or date), ``x-ratelimit-reset``, or the
    body's ``meta.reset``; None when it names none."""
    now = now or datetime.now(UTC)
    header = resp.headers.get("retry-after")
    if header:
        header = header.strip()
        if header.isdigit():
            return float(header)
        try:
            when = parsedate_to_datetime(header)
            return max(0.0, (when - now).total_seconds())
        except (TypeError, ValueError):
            pass
    candidates: list[object] = [resp.headers.get("x-ratelimit-reset")]
    body = _json_body(resp)
    if isinstance(body, dict) and isinstance(body.get("meta"), dict):
        candidates.append(body["meta"].get("reset"))
    for value in candidates:
        seconds = _reset_seconds(value, now)
        if seconds is not None:
            return seconds
    return None


def _reset_seconds(value: object, now: datetime) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        # epoch seconds when large, else a delay
        return max(0.0, value - now.timestamp()) if value > 10**9 else float(value)
    text = str(value).strip()
    if not text:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return _reset_seconds(float(text), now)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def request_id(resp: httpx.Response) -> str | None:
    value: str | None = resp.headers.get("x-freee-request-id")
    return value


def is_rate_limit_403(body: object, messages: list[str], codes: list[str]) -> bool:
    """freee's 403 for excessive access vs. a 403 for missing app permission."""
    if any(RATE_LIMIT_WORDS.search(c) for c in codes):
        return True
    if isinstance(body, dict):
        meta = body.get("meta")
        if isinstance(meta, dict) and ("limit" in meta or "reset" in meta):
            return True
    return any(RATE_LIMIT_WORDS.search(m) for m in messages) and not any(
        "権限" in m for m in messages
    )


def error_from_response(resp: httpx.Response, *, now: datetime | None = None) -> FreeeError:
    """The typed error for a non-2xx answer of freee's API or token endpoint."""
    status = resp.status_code
    body = _json_body(resp)
    codes, messages = parse_error_body(body)
    text = " / ".join(messages) or (resp.text[:200] if body is None else "") or resp.reason_phrase
    rid = request_id(resp)
    where = f"{resp.request.method} {resp.request.url.path}" if resp.request else "freee"
    base = f"{where}: HTTP {status}" + (f" ({', '.join(codes)})" if codes else "")
    base += f": {text}" + (f" [request id {rid}]" if rid else "")
    kw: dict[str, Any] = {"status_code": status, "freee_message": text or None}
    if status == 429 or (status == 403 and is_rate_limit_403(body, messages, codes)):
        return FreeeRateLimited(
            base, retry_after=retry_after_seconds(resp, now), staff_message=_STAFF_RATE, **kw
        )
    if status == 401 or (status == 400 and "invalid_grant" in codes):
        if PERMISSION_CODES.intersection(codes):
            return FreeePermission(base, **kw)
        if "company_not_found" in codes:
            return FreeeFixSetting(
                base,
                staff_message="freee会計の事業所が見つかりません。事業所を選び直して再連携してください。",
                **kw,
            )
        if status == 401 and (ACCESS_TOKEN_CODES.intersection(codes) or not codes):
            # refresh once and repeat; a second 401 is a relink
            return FreeeTokenExpired(base, **kw)
        return FreeeRelink(base, **kw)
    if status == 403:
        return FreeePermission(
            base,
            staff_message=(
                "freee会計へのアクセス権限がありません。アプリの権限設定と"
                "ユーザーの権限を確認してください。"
            ),
            **kw,
        )
    if status == 404:
        return FreeeNotFound(base, **kw)
    if status >= 500 or status in (408, 425):
        return FreeeAmbiguous(base, **kw)
    return FreeeRefused(base, **kw)


def error_from_transport(exc: httpx.TransportError, what: str) -> FreeeRetryLater:
    """A transport failure: ``FreeeNotSent`` only when the request surely never left."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return FreeeNotSent(f"{what}: not sent: {type(exc).__name__}: {exc}")
    return FreeeAmbiguous(f"{what}: no answer: {type(exc).__name__}: {exc}")
