"""The ref_number freee sees: the full key, or a short form of at most 20 characters.

The exactly-once key of a posting is its full ref_number
``POS-{store_code}-{terminal_no}-{YYYYMMDD}-{suffix}`` (freee-mapping.md section 3): up to
~44 characters. freee documents no limit for a deal's 管理番号, only 20 characters for manual
journals (issue 15). With ``[freee] ref_number_form = "short"`` the deal carries instead

    P{register digest: 4}{YYMMDD}-{suffix: ≤ 8}        e.g. PLTR3250110-SCA  (≤ 20)

and the full key is appended to the first line's 備考 (description), so the short form's
rare collisions (two registers with the same digest) are told apart. The look-up accepts a
deal in either form, so a switch of the setting never posts a day twice. Pure.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from typing import Any

FULL = "full"
SHORT = "short"
FORMS = (FULL, SHORT)
SHORT_MAX = 20

_FULL_RE = re.compile(r"^POS-([A-Za-z0-9]+)-([A-Za-z0-9]+)-(\d{8})-(.+)$")
_METHOD_CODES = {
    "CASH": "CA", "CREDIT": "CR", "EMONEY": "EM", "QR": "QR",
    "GIFT": "GI", "POINT": "PT", "OTHER": "OT",
}
_SUFFIX_MAX = 8


def _digest(text: str, size: int) -> str:
    raw = hashlib.sha256(text.encode("utf-8")).digest()
    return base64.b32encode(raw).decode("ascii")[:size]


def _compact_suffix(suffix: str) -> str:
    parts = suffix.split("-")
    if parts[0] == "S" and len(parts) >= 2 and parts[1] in _METHOD_CODES:
        compact = "S" + _METHOD_CODES[parts[1]] + "".join(parts[2:])
    else:
        compact = suffix.replace("-", "")
    if len(compact) > _SUFFIX_MAX or not compact:
        compact = "#" + _digest(suffix, _SUFFIX_MAX - 1)
    return compact


def short_ref(full: str) -> str:
    """The short form of a full ref_number (deterministic, ≤ 20 ASCII characters)."""
    match = _FULL_RE.match(full)
    if match is None:
        return "#" + _digest(full, SHORT_MAX - 1)
    store, terminal, day, suffix = match.groups()
    return f"P{_digest(f'{store}-{terminal}', 4)}{day[2:]}-{_compact_suffix(suffix)}"


def sent_ref(full: str, form: str) -> str:
    return short_ref(full) if form == SHORT else full


def with_form(body: dict[str, Any], full: str, form: str) -> dict[str, Any]:
    """A deal body in the chosen form (a transfer body, which has no ref_number, as is)."""
    if form != SHORT or "details" not in body:
        return body
    out = dict(body)
    out["ref_number"] = short_ref(full)
    details = [dict(d) for d in body.get("details") or []]
    if details:
        text = str(details[0].get("description") or "")
        details[0]["description"] = f"{text} {full}" if text else full
    out["details"] = details
    return out


def as_form(body: dict[str, Any], full: str, form: str) -> dict[str, Any]:
    """A deal body (in either form) turned into ``form``: to compare it with a deal that
    freee holds in the other form (a switch of the setting)."""
    if "details" not in body or body.get("ref_number") == sent_ref(full, form):
        return body
    if form == SHORT:
        return with_form(body, full, SHORT)
    out = dict(body)
    out["ref_number"] = full
    details = [dict(d) for d in body.get("details") or []]
    if details:
        text = str(details[0].get("description") or "")
        details[0]["description"] = text.removesuffix(full).rstrip(" ")
    out["details"] = details
    return out


def form_of(deal: Mapping[str, Any], full: str) -> str:
    return SHORT if deal.get("ref_number") == short_ref(full) else FULL


def carries_ref(deal: Mapping[str, Any], full: str) -> bool:
    """Does freee's ``deal`` hold the posting ``full``, in either form?"""
    ref = deal.get("ref_number")
    if ref == full:
        return True
    if ref != short_ref(full):
        return False
    return any(full in str(d.get("description") or "") for d in deal.get("details") or [])
