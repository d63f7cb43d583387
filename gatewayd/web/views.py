"""Pure helpers of the page: redaction, formatting, the side-by-side diff, the JSON view.

No I/O here: everything takes model values and returns strings, rows or JSON values.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from enum import Enum
from typing import Any

from gatewayd.web.model import DayStatus, DaySummary, Overview

REDACTED = "[秘匿]"

# key=value / key: value forms of OAuth secrets, and Authorization headers
_SECRET_PAIR = re.compile(
    r"(?i)\b(access_token|refresh_token|id_token|client_secret|code_verifier|password|"
    r"authorization|token|secret|code)(\"?\s*[:=]\s*\"?)(bearer\s+)?[^\s\"',;&)]+"
)
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")
# long opaque runs with mixed case and digits look like tokens; ref numbers (POS-…) do not
_OPAQUE = re.compile(r"(?<![A-Za-z0-9._~+/=-])[A-Za-z0-9._~+/=-]{32,}(?![A-Za-z0-9._~+/=-])")


def _looks_opaque(run: str) -> bool:
    if run.startswith("POS-"):
        return False
    classes = sum(
        (
            any(c.islower() for c in run),
            any(c.isupper() for c in run),
            any(c.isdigit() for c in run),
        )
    )
    return classes >= 2 and not run.replace("-", "").isdigit()


def redact(text: str | None) -> str | None:
    """Mask anything token-like in free text from the gateway (defence in depth)."""
    if text is None:
        return None
    text = _BEARER.sub("Bearer " + REDACTED, text)
    text = _SECRET_PAIR.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    return _OPAQUE.sub(lambda m: REDACTED if _looks_opaque(m.group(0)) else m.group(0), text)


def yen(value: int | None) -> str:
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    return f"{sign}¥{abs(value):,}"


def fmt_time(value: datetime | None, tz: tzinfo | None) -> str:
    if value is None:
        return "—"
    local = value.astimezone(tz) if value.tzinfo is not None else value
    return local.strftime("%Y-%m-%d %H:%M")


def fmt_date(value: date | None) -> str:
    return "—" if value is None else value.isoformat()


# ---- the side-by-side diff of an edited posting ---------------------------------------


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"details[0].amount": 1000, …}``: one entry per leaf, lists by index."""
    out: dict[str, Any] = {}
    if isinstance(value, Mapping):
        if not value and prefix:
            out[prefix] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list | tuple):
        if not value and prefix:
            out[prefix] = []
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
    else:
        out[prefix] = value
    return out


@dataclass(frozen=True, slots=True)
class DiffRow:
    field: str
    ours: str
    theirs: str
    differs: bool


def _cell(value: Any, present: bool) -> str:
    if not present:
        return "—"
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def diff_rows(ours: Mapping[str, Any], theirs: Mapping[str, Any] | None) -> list[DiffRow]:
    """Rows of both versions in our field order, then fields only freee has."""
    left = flatten(ours)
    right = flatten(theirs) if theirs is not None else {}
    keys = list(left) + [k for k in right if k not in left]
    rows = []
    for key in keys:
        in_left, in_right = key in left, key in right
        differs = theirs is not None and (in_left != in_right or left.get(key) != right.get(key))
        rows.append(
            DiffRow(
                key,
                _cell(left.get(key), in_left),
                _cell(right.get(key), in_right) if theirs is not None else "—",
                differs,
            )
        )
    return rows


# ---- overview summaries ----------------------------------------------------------------


def all_days(overview: Overview) -> Iterable[DaySummary]:
    for reg in overview.registers:
        yield reg.today
        yield from reg.recent


def attention_count(overview: Overview) -> int:
    return sum(1 for d in all_days(overview) if d.status is DayStatus.HELD)


def sending_count(overview: Overview) -> int:
    return sum(1 for d in all_days(overview) if d.status is DayStatus.SENDING)


# ---- JSON for /api/status ----------------------------------------------------------------

FREE_TEXT_KEYS = frozenset({"detail", "message", "staff_message", "last_error", "freee_message"})


def to_jsonable(value: Any, key: str | None = None) -> Any:
    """Model values → JSON values; dates ISO, enums by value, free text redacted."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_jsonable(getattr(value, f.name), f.name) for f in dataclasses.fields(value)
        }
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {
            str(k.value if isinstance(k, Enum) else k): to_jsonable(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, str) and key in FREE_TEXT_KEYS:
        return redact(value)
    return value


def overview_json(overview: Overview) -> dict[str, Any]:
    data: dict[str, Any] = to_jsonable(overview)
    data["attention"] = attention_count(overview)
    return data
