"""``gatewayd freee conformance``: settle the undocumented freee facts against a test company.

Issue 15. Against the linked company — only when the command line names it as a test
company — the run creates, reads back and deletes one probe deal or transfer per fact
(``conformance_probes.py``), every one tagged (メモタグ ``gatewayd-probe``) and described
(``gatewayd probe: …``) as a probe, dated in an open fiscal year. It never leaves a probe
behind: a cleanup pass by tag and description runs at the start (what a killed run left) and
at the end, over every date the run noted in ``freee-conformance.json`` (state directory)
before posting on it. Calls are paced (default one per second: a run costs about 50 of the
3,000 calls of freee's daily quota). Every exchange is kept, secrets removed, for the JSON
file that goes with a bug report.

This module holds the plumbing (paced API, recorder, journal, cleanup, report); the probes
and their verdicts are in ``conformance_probes.py``.
"""

from __future__ import annotations

import json
import logging
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from gatewayd.errors import ConfigError, FreeeError
from gatewayd.sync.freee_errors import (
    FreeeTokenExpired,
    error_from_response,
    error_from_transport,
    parse_error_body,
)
from gatewayd.sync.freee_settings import FreeeSettings
from gatewayd.sync.masters import Masters
from gatewayd.sync.tokens import TokenManager, write_private_file

log = logging.getLogger(__name__)

PROBE_TAG = "gatewayd-probe"  # メモタグ on every line of every probe deal
PROBE_MARK = "gatewayd probe"  # in every probe's description (deal lines, transfer rows)
JOURNAL_FILE = "freee-conformance.json"  # dates a run may have left probes on
PAGE = 100
MAX_PAGES = 50  # a cleanup listing never pages further than this per date
KEPT_HEADERS = (
    "x-freee-request-id",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "retry-after",
    "location",
    "content-type",
)
SECRET_KEYS = frozenset(
    {"access_token", "refresh_token", "client_secret", "code", "code_verifier", "authorization"}
)
REMOVED = "[removed]"


class Verdict(StrEnum):
    AGREE = "agree"
    DISAGREE = "disagree"
    NOT_CHECKED = "not checked"


@dataclass
class FactResult:
    """One row of the table."""

    fact: str
    title: str
    assumes: str
    answered: str
    verdict: Verdict
    rule: str | None = None  # the emulator's rule (gatewayd/sim/freee/facts.py)
    advice: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        return data


@dataclass
class Answer:
    """freee's answer to one probe request (status 0: no answer)."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def messages(self) -> list[str]:
        _codes, messages = parse_error_body(self.body)
        return messages

    def summary(self) -> str:
        """``400: message / message`` or ``201`` (for the table)."""
        if self.status == 0:
            return f"no answer ({self.error})"
        text = " / ".join(self.messages())
        return f"{self.status}" + (f": {text}" if text else "")


# -- recorder ---------------------------------------------------------------------------------


class Recorder:
    """Every exchange of the run, for the JSON file; secrets are removed when written."""

    def __init__(self) -> None:
        self.exchanges: list[dict[str, Any]] = []
        self.secrets: set[str] = set()

    def add_secret(self, *values: str | None) -> None:
        self.secrets.update(v for v in values if v and len(v) >= 8)

    def record(self, entry: dict[str, Any]) -> None:
        self.exchanges.append(entry)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {
                k: REMOVED if str(k).lower() in SECRET_KEYS else self.scrub(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, REMOVED)
            return value
        return value

    def document(self, meta: Mapping[str, Any], results: Iterable[FactResult]) -> dict[str, Any]:
        document: dict[str, Any] = self.scrub(
            {
                "meta": dict(meta),
                "facts": [r.to_json() for r in results],
                "exchanges": self.exchanges,
            }
        )
        return document


# -- paced API --------------------------------------------------------------------------------


class ProbeApi:
    """freee's API for probes: raw answers (status, body, headers), paced, recorded.

    Unlike ``FreeeClient`` nothing is retried (a probe wants freee's first answer), except one
    repeat after refreshing an expired access token.
    """

    def __init__(
        self,
        settings: FreeeSettings,
        tokens: TokenManager,
        http: httpx.Client,
        recorder: Recorder,
        *,
        pace: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.http = http
        self.recorder = recorder
        self.pace = max(pace, 0.0)
        self.sleep = sleep
        self.monotonic = monotonic
        self.base = settings.api_base_url.rstrip("/")
        self.calls = 0
        self._last: float | None = None
        self.headers_seen: dict[str, str] = {}  # rate-limit headers freee sent, last value

    def _wait_turn(self) -> None:
        now = self.monotonic()
        if self._last is not None and now - self._last < self.pace:
            self.sleep(self.pace - (now - self._last))
        self._last = self.monotonic()

    def call(
        self,
        fact: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Answer:
        """One API request; 401 expired → refresh once and repeat."""
        for attempt in (1, 2):
            self._wait_turn()
            token = self.tokens.access_token()
            self.recorder.add_secret(token)
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            self.calls += 1
            try:
                resp = self.http.request(
                    method, self.base + path, params=dict(params or {}), json=json,
                    headers=headers,
                )
            except httpx.TransportError as exc:
                err = error_from_transport(exc, f"{method} {path}")
                answer = Answer(0, None, error=str(err))
                self._record(fact, method, path, params, json, answer)
                return answer
            answer = self._answer(resp)
            self._record(fact, method, path, params, json, answer)
            if (
                attempt == 1
                and resp.status_code == 401
                and isinstance(error_from_response(resp), FreeeTokenExpired)
            ):
                self.tokens.refresh(rejected_access=token)
                continue
            return answer
        raise AssertionError("unreachable")

    def get_page(self, fact: str, url: str, params: Mapping[str, Any]) -> Answer:
        """An unauthenticated GET of a browser page (freee's authorize URL): status and
        headers only, redirects not followed."""
        self._wait_turn()
        try:
            resp = self.http.get(url, params=dict(params), follow_redirects=False)
        except httpx.TransportError as exc:
            answer = Answer(0, None, error=str(error_from_transport(exc, f"GET {url}")))
        else:
            answer = Answer(resp.status_code, None, self._headers(resp))
        kept = dict(answer.headers)
        if "location" in kept:
            kept["location"] = _without_secrets(kept["location"])
        self._record(fact, "GET", url, params, None,
                     Answer(answer.status, None, kept, answer.error))
        return answer

    def _headers(self, resp: httpx.Response) -> dict[str, str]:
        kept = {k: resp.headers[k] for k in KEPT_HEADERS if k in resp.headers}
        for key in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                    "retry-after"):
            if key in kept:
                self.headers_seen[key] = kept[key]
        return kept

    def _answer(self, resp: httpx.Response) -> Answer:
        body: Any = None
        if resp.content:
            try:
                body = resp.json()
            except ValueError:
                body = resp.text[:500]
        return Answer(resp.status_code, body, self._headers(resp))

    def _record(
        self,
        fact: str,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Any,
        answer: Answer,
    ) -> None:
        self.recorder.record(
            {
                "fact": fact,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "request": {"method": method, "path": path, "params": dict(params or {}),
                            "body": body},
                "response": {"status": answer.status, "headers": answer.headers,
                             "body": answer.body, "error": answer.error},
            }
        )


def _without_secrets(url: str) -> str:
    """A redirect URL with its OAuth code (and any other secret parameter) removed."""
    parts = urlsplit(url)
    query = [(k, REMOVED if k.lower() in SECRET_KEYS else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="[]")))


# -- journal of dates -------------------------------------------------------------------------


class Journal:
    """Dates that may hold probes, noted (durably) before a probe is posted on them."""

    def __init__(self, state_dir: Path, company_id: int) -> None:
        self.path = state_dir / JOURNAL_FILE
        self.company_id = company_id

    def dates(self) -> set[date]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return set()
        if not isinstance(data, dict) or data.get("company_id") != self.company_id:
            return set()
        return {date.fromisoformat(d) for d in data.get("dates") or []}

    def note(self, day: date) -> None:
        known = self.dates()
        if day in known:
            return
        self._write(known | {day})

    def clear(self) -> None:
        self._write(set())

    def _write(self, days: set[date]) -> None:
        payload = {"company_id": self.company_id, "dates": sorted(d.isoformat() for d in days)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private_file(self.path, json.dumps(payload).encode())


# -- probes' common ground --------------------------------------------------------------------


def is_probe_deal(deal: Mapping[str, Any], tag_id: int | None) -> bool:
    for line in deal.get("details") or []:
        if tag_id is not None and tag_id in (line.get("tag_ids") or []):
            return True
        if PROBE_MARK in str(line.get("description") or ""):
            return True
    return False


def is_probe_transfer(transfer: Mapping[str, Any]) -> bool:
    texts = [transfer.get("description")]
    texts += [r.get("description") for r in transfer.get("to_walletables") or []]
    return any(PROBE_MARK in str(t or "") for t in texts)


def probe_date(masters: Masters, today: date) -> date:
    """Today when it may be booked, else the first bookable day of the latest open year."""
    bookable: list[tuple[date, date]] = []
    for fy in masters.fiscal_years:
        if fy.is_closed:
            continue
        first = fy.start_date
        if fy.month_end_date is not None and fy.month_end_date >= first:
            first = fy.month_end_date + timedelta(days=1)
        if first <= fy.end_date:
            bookable.append((first, fy.end_date))
    for first, last in bookable:
        if first <= today <= last:
            return today
    if not bookable:
        raise ConfigError(
            "no open fiscal year: the probes need a date freee accepts",
            key="fiscal_years",
            staff_message="freee会計のテスト事業所に開いている会計年度がありません。",
        )
    return max(bookable)[0]


def outside_date(masters: Masters) -> date | None:
    """The day before the earliest fiscal year: outside every one."""
    if not masters.fiscal_years:
        return None
    return min(fy.start_date for fy in masters.fiscal_years) - timedelta(days=1)


@dataclass
class Company:
    """What the probes need of the linked test company."""

    id: int
    name: str
    masters: Masters
    day: date
    tag_id: int


class Cleaner:
    """Deletes every probe (by tag and description) on the given dates."""

    def __init__(self, api: ProbeApi, company: Company) -> None:
        self.api = api
        self.company = company

    def _pages(self, path: str, params: dict[str, Any], key: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in range(MAX_PAGES):
            answer = self.api.call(
                "cleanup", "GET", path, params={**params, "limit": PAGE, "offset": page * PAGE}
            )
            if not answer.ok or not isinstance(answer.body, dict):
                raise FreeeCleanupError(f"GET {path}: {answer.summary()}")
            rows = list(answer.body.get(key) or [])
            out.extend(rows)
            if len(rows) < PAGE:
                break
        return out

    def sweep(self, days: Iterable[date]) -> tuple[int, list[str]]:
        """(probes deleted, problems) over ``days``."""
        cid = self.company.id
        deleted = 0
        problems: list[str] = []
        for day in sorted(set(days)):
            text = day.isoformat()
            deals = self._pages(
                "/api/1/deals",
                {"company_id": cid, "start_issue_date": text, "end_issue_date": text},
                "deals",
            )
            for deal in deals:
                if is_probe_deal(deal, self.company.tag_id):
                    deleted += self._delete("deals", int(deal["id"]), problems)
            transfers = self._pages(
                "/api/1/transfers",
                {"company_id": cid, "start_date": text, "end_date": text},
                "transfers",
            )
            for transfer in transfers:
                if is_probe_transfer(transfer):
                    deleted += self._delete("transfers", int(transfer["id"]), problems)
        return deleted, problems

    def _delete(self, kind: str, ident: int, problems: list[str]) -> int:
        answer = self.api.call(
            "cleanup", "DELETE", f"/api/1/{kind}/{ident}", params={"company_id": self.company.id}
        )
        if answer.ok or answer.status == 404:
            return 1 if answer.ok else 0
        problems.append(f"DELETE /api/1/{kind}/{ident}: {answer.summary()}")
        return 0


class FreeeCleanupError(FreeeError):
    """A cleanup listing failed: probes may remain (the next run removes them)."""


# -- the table --------------------------------------------------------------------------------


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if _width(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for char in word:  # a word longer than the column (Japanese has no spaces)
                if _width(line + char) > width:
                    lines.append(line)
                    line = ""
                line += char
        lines.append(line)
    return lines or [""]


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - _width(text), 0)


COLUMNS = (("fact", 30), ("box assumes", 36), ("freee answered", 36), ("verdict", 11))


def table(results: Iterable[FactResult]) -> str:
    """The report as a plain-text table (wide characters count double)."""
    rule = "+".join("-" * (w + 2) for _, w in COLUMNS)
    out = [rule, "|".join(f" {_pad(name, w)} " for name, w in COLUMNS), rule]
    for r in results:
        cells = [
            _wrap(f"{r.title} ({r.fact})", COLUMNS[0][1]),
            _wrap(r.assumes, COLUMNS[1][1]),
            _wrap(r.answered, COLUMNS[2][1]),
            _wrap(r.verdict.value.upper(), COLUMNS[3][1]),
        ]
        for i in range(max(len(c) for c in cells)):
            out.append(
                "|".join(
                    f" {_pad(c[i] if i < len(c) else '', w)} "
                    for c, (_, w) in zip(cells, COLUMNS, strict=True)
                )
            )
        out.append(rule)
    return "\n".join(out)


def write_document(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_file(path, json.dumps(document, ensure_ascii=False, indent=1).encode())
