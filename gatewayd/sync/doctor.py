"""``gatewayd doctor`` checks of the freee side: the link, and the masters the settings name.

Both are read-only (a doctor run must not change the box): the link check never refreshes
the tokens (a refresh rotates them; that is the daemon's job) and calls freee only while the
access token is valid; the masters check uses the cached masters, or reads them once with
the valid access token. Each finding says how to fix it, in Japanese and English.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from gatewayd.doctor import CheckResult, DoctorContext
from gatewayd.errors import ConfigError, FreeeError
from gatewayd.sync.freee_errors import error_from_response, error_from_transport
from gatewayd.sync.freee_settings import FreeeSettings, freee_from_settings
from gatewayd.sync.mapping_settings import mapping_from_settings
from gatewayd.sync.masters import KIND_LABELS, MasterCache, Masters
from gatewayd.sync.tokens import LinkState, TokenManager, TokenRecord

TIMEOUT = httpx.Timeout(5.0)


def _setup(ctx: DoctorContext) -> tuple[FreeeSettings, TokenRecord | None] | CheckResult:
    if ctx.settings is None:
        return CheckResult.skip("configuration invalid")
    try:
        freee = freee_from_settings(ctx.settings)
    except ConfigError as exc:
        return CheckResult.fail(
            f"[freee] table: {exc}",
            "設定ファイルの [freee] を直してください。",
            "Fix the [freee] table of the configuration file.",
        )
    with httpx.Client(timeout=TIMEOUT) as http:
        record = TokenManager(freee, ctx.state_dir, http).load()
    return freee, record


def _usable_token(record: TokenRecord) -> str | None:
    """The access token if it stays valid for the check (never refreshed here)."""
    if record.expires_at - datetime.now(UTC) > timedelta(seconds=60):
        return record.access_token
    return None


def _get(
    freee: FreeeSettings, token: str, path: str, params: Mapping[str, str] | None = None
) -> Any:
    with httpx.Client(timeout=TIMEOUT) as http:
        try:
            resp = http.get(
                freee.api_base_url + path,
                params=params,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except httpx.TransportError as exc:
            raise error_from_transport(exc, f"GET {path}") from exc
    if resp.status_code >= 400:
        raise error_from_response(resp)
    return resp.json()


def check_link(ctx: DoctorContext) -> CheckResult:
    """Linked, not expired, and freee answers for the company."""
    setup = _setup(ctx)
    if isinstance(setup, CheckResult):
        return setup
    freee, record = setup
    if record is None:
        return CheckResult.fail(
            "freee is not linked",
            "`sudo -u gatewayd gatewayd link` かステータス画面で freee会計と連携してください。",
            "Run `sudo -u gatewayd gatewayd link` (or link on the status page).",
        )
    if record.state is LinkState.EXPIRED:
        return CheckResult.fail(
            f"freee link expired: {record.expired_reason or 'refresh refused'}",
            "freee会計との連携が切れています。もう一度連携してください（送信待ちの日は失われません）。",
            "The link expired: link again; waiting days are kept and sent afterwards.",
        )
    company = freee.company_id or record.company_id
    lapse = record.refresh_expires_at
    details = [
        f"company {company} {record.company_name or ''}".rstrip(),
        f"tokens refreshed {record.refreshed_at:%Y-%m-%d %H:%M}, link lapses unless refreshed "
        f"by {lapse:%Y-%m-%d}",
    ]
    token = _usable_token(record)
    if token is None or company is None:
        return CheckResult.ok("linked (the daemon refreshes the access token)", details)
    try:
        data = _get(freee, token, f"/api/1/companies/{company}")
    except FreeeError as exc:
        return CheckResult.fail(
            f"freee refuses the link: {exc}",
            exc.staff_message,
            "Check the app's permissions and the user's role in freee, or link again.",
            details,
        )
    role = (data.get("company") or {}).get("role")
    if role in ("read_only",):
        return CheckResult.fail(
            f"the linked user's role is {role}: it cannot post deals",
            "freee会計で連携ユーザーに取引登録の権限を付けてください。",
            "Give the linked freee user a role that may register deals.",
            details,
        )
    return CheckResult.ok(f"linked to company {company} (role {role})", details)


def _masters(
    ctx: DoctorContext, freee: FreeeSettings, record: TokenRecord
) -> Masters | CheckResult:
    company = freee.company_id or record.company_id
    cached = MasterCache(ctx.state_dir).get(company)
    if cached is not None:
        return cached
    token = _usable_token(record)
    if token is None or company is None:
        return CheckResult.skip("masters not cached yet and no valid access token to read them")
    try:
        details = _get(freee, token, f"/api/1/companies/{company}", {"details": "true"})
        taxes = _get(freee, token, f"/api/1/taxes/companies/{company}")
    except FreeeError as exc:
        return CheckResult.skip(f"masters could not be read: {exc}")
    return Masters(details["company"], taxes.get("taxes") or [], datetime.now(UTC))


def check_masters(ctx: DoctorContext) -> CheckResult:
    """Every master the settings name exists in the company (品目 with the prefix aside)."""
    setup = _setup(ctx)
    if isinstance(setup, CheckResult):
        return setup
    freee, record = setup
    if record is None or record.state is not LinkState.LINKED or ctx.settings is None:
        return CheckResult.skip("freee not linked")
    try:
        mapping = mapping_from_settings(ctx.settings)
    except ConfigError as exc:
        return CheckResult.skip(f"[mapping] invalid: {exc}")
    masters = _masters(ctx, freee, record)
    if isinstance(masters, CheckResult):
        return masters
    missing: list[str] = []
    created: set[str] = set()
    for reg in ctx.settings.registers:
        used = mapping.for_register(reg).names_used()
        for kind, names in used.items():
            for name in sorted(names):
                table: Mapping[str, Any]
                if kind == "taxes":
                    table = masters.taxes
                elif kind == "walletables":
                    table = masters.walletables
                else:
                    table = getattr(masters, kind)
                if name in table:
                    continue
                if kind == "items" and name.startswith(mapping.item_prefix):
                    created.add(name)
                    continue
                label = f"{KIND_LABELS.get(kind, kind)}「{name}」"
                if label not in missing:
                    missing.append(label)
    today = datetime.now(UTC).astimezone().date()
    fiscal = masters.fiscal_problem(today)
    details = (
        [f"品目 created by the gateway (at link time, or when a day needs them): "
         f"{', '.join(sorted(created))}"]
        if created
        else []
    )
    if fiscal is not None:
        details.append(f"today: {fiscal}")
    if missing:
        return CheckResult.fail(
            f"freee lacks masters the settings name: {'、'.join(missing)}",
            "freee会計でこれらを作成するか、設定ファイルの [mapping] の名前を直してください。"
            "直すまで日は保留になり、直ると自動で送信します。",
            "Create them in freee, or fix the names in [mapping]; held days go by themselves.",
            details,
        )
    if fiscal is not None:
        return CheckResult.warn(
            f"masters ok; {fiscal}",
            "freee会計で今日を含む会計年度を作成してください。",
            "Open a fiscal year for today's date in freee.",
            details,
        )
    return CheckResult.ok(
        f"every master the settings name exists in {masters.company_name}", details
    )
