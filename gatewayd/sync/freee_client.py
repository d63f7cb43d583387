"""A small typed client for the part of freee会計's API the gateway uses.

httpx with explicit timeouts; every non-2xx answer becomes a typed error
(``freee_errors``), freee's own message kept. A 401 for an expired access token refreshes
once (under the token lock) and repeats the request once. Calls are counted per endpoint for
the status page, ``/metrics`` and the bench. Short in-process retries use tenacity and are
bounded; long waits belong to the outbox (``next_attempt_at``), not to a sleeping loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from gatewayd.errors import FreeeRateLimited, FreeeRetryLater
from gatewayd.sync.freee_errors import (
    FreeeNotSent,
    FreeeTokenExpired,
    error_from_response,
    error_from_transport,
)
from gatewayd.sync.freee_settings import FreeeSettings
from gatewayd.sync.tokens import TokenManager

log = logging.getLogger(__name__)

T = TypeVar("T")
PAGE = 100  # GET /api/1/deals: limit max 100
ITEMS_PAGE = 3000  # GET /api/1/items: limit max 3000
SHORT_RETRY_AFTER_CAP = 30.0  # a Retry-After longer than this pauses the company instead


def make_http(
    settings: FreeeSettings, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """The one httpx client of the sync side (API and token hosts; absolute URLs)."""
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.read_timeout,
        write=settings.read_timeout,
        pool=settings.connect_timeout,
    )
    return httpx.Client(
        timeout=timeout,
        transport=transport,
        headers={"User-Agent": "gatewayd/0.1"},
        follow_redirects=False,
    )


class ApiCounters:
    """API calls per ``METHOD /route`` and token-endpoint calls; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.api: Counter[str] = Counter()
        self.token: Counter[str] = Counter()

    def count_api(self, key: str) -> None:
        with self._lock:
            self.api[key] += 1

    def count_token(self, key: str) -> None:
        with self._lock:
            self.token[key] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            out = dict(self.api)
            out.update({f"token {k}": v for k, v in self.token.items()})
            return out

    def total_api(self) -> int:
        with self._lock:
            return sum(self.api.values())

    def writes(self) -> int:
        with self._lock:
            return sum(v for k, v in self.api.items() if not k.startswith("GET "))


def _route(method: str, path: str) -> str:
    """``GET /api/1/deals/{id}``: ids folded so counts group by endpoint."""
    parts = path.split("/")
    parts = [p if i < 3 or not p.isdigit() else "{id}" for i, p in enumerate(parts)]
    return f"{method} {'/'.join(parts)}"


class FreeeClient:
    """freee's API with the gateway's token manager; methods return freee's JSON."""

    def __init__(
        self,
        settings: FreeeSettings,
        tokens: TokenManager,
        http: httpx.Client,
        *,
        counters: ApiCounters | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.http = http
        self.counters = counters or ApiCounters()
        self.sleep = sleep
        self.base = settings.api_base_url.rstrip("/")

    # -- plumbing ---------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """One request (plus one repeat after refreshing an expired access token)."""
        for attempt in (1, 2):
            token = self.tokens.access_token()
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            self.counters.count_api(_route(method, path))
            try:
                resp = self.http.request(
                    method, self.base + path, params=params, json=json, headers=headers
                )
            except httpx.TransportError as exc:
                raise error_from_transport(exc, f"{method} {path}") from exc
            if resp.status_code < 300:
                if resp.status_code == 204 or not resp.content:
                    return None
                try:
                    return resp.json()
                except ValueError as exc:
                    raise FreeeRetryLater(f"{method} {path}: answer is not JSON") from exc
            error = error_from_response(resp)
            if isinstance(error, FreeeTokenExpired):
                if attempt == 1:
                    log.info("access token refused (%s): refreshing once", error)
                    self.tokens.refresh(rejected_access=token)
                    continue
                # refused again right after a successful refresh (a race, clock skew): not
                # processed, so a retry later is safe; only a refresh refused with
                # invalid_grant expires the link (freee-mapping.md section 6)
                raise FreeeNotSent(
                    f"{error} (again after a refresh)",
                    status_code=401,
                    freee_message=error.freee_message,
                )
            raise error
        raise AssertionError("unreachable")

    def retrying(self, *, reads: bool = True) -> Retrying:
        """Short, bounded retries: reads retry any transient failure; writes only those that
        surely never reached freee. A long Retry-After is not slept: it pauses the company."""

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, FreeeRateLimited):
                return exc.retry_after is not None and exc.retry_after <= SHORT_RETRY_AFTER_CAP
            if isinstance(exc, FreeeNotSent):
                return True
            return reads and isinstance(exc, FreeeRetryLater)

        backoff = wait_random_exponential(
            multiplier=self.settings.retry_initial, max=max(self.settings.retry_initial * 8, 0.0)
        )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, FreeeRateLimited) and exc.retry_after is not None:
                # freee names reset times to the second: never less than one second
                return min(max(exc.retry_after, 1.0), SHORT_RETRY_AFTER_CAP)
            return float(backoff(state))

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("freee: %s; retry %d", exc, state.attempt_number)

        return Retrying(
            stop=stop_after_attempt(3) | stop_after_delay(60),
            wait=wait,
            retry=retry_if_exception(retryable),
            reraise=True,
            sleep=self.sleep,
            before_sleep=before_sleep,
        )

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        return self.read(lambda: self.call("GET", path, params=params))

    def read(self, fn: Callable[[], T]) -> T:
        """Run a read with short retries."""
        result: T = self.retrying(reads=True)(fn)
        return result

    # -- companies and masters --------------------------------------------------------------

    def companies(self) -> list[dict[str, Any]]:
        data = self.read(lambda: self.call("GET", "/api/1/companies"))
        return list(data.get("companies") or [])

    def company(self, company_id: int, *, details: bool = True) -> dict[str, Any]:
        params = {"details": "true"} if details else None
        data = self.read(lambda: self.call("GET", f"/api/1/companies/{company_id}", params=params))
        return dict(data["company"])

    def taxes(self, company_id: int) -> list[dict[str, Any]]:
        data = self.read(lambda: self.call("GET", f"/api/1/taxes/companies/{company_id}"))
        return list(data.get("taxes") or [])

    def list_items(self, company_id: int) -> list[dict[str, Any]]:
        """Every 品目 of the company: one call up to freee's page of 3,000."""
        out: list[dict[str, Any]] = []
        while True:
            params = {"company_id": company_id, "limit": ITEMS_PAGE, "offset": len(out)}
            page = list(self._get("/api/1/items", params).get("items") or [])
            out.extend(page)
            if len(page) < ITEMS_PAGE:
                return out

    def create_item(self, company_id: int, name: str) -> dict[str, Any]:
        body = {"company_id": company_id, "name": name}
        data = self.retrying(reads=False)(lambda: self.call("POST", "/api/1/items", json=body))
        return dict(data["item"])

    # -- deals ------------------------------------------------------------------------------

    def list_deals(
        self, company_id: int, day: date, deal_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Every deal of one issue date (and type), paging by 100."""
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            params: dict[str, Any] = {
                "company_id": company_id,
                "start_issue_date": day.isoformat(),
                "end_issue_date": day.isoformat(),
                "limit": PAGE,
                "offset": offset,
            }
            if deal_type is not None:
                params["type"] = deal_type
            data = self._get("/api/1/deals", params)
            page = list(data.get("deals") or [])
            out.extend(page)
            total = int((data.get("meta") or {}).get("total_count", len(out)))
            offset += len(page)
            if not page or offset >= total:
                return out

    def get_deal(self, company_id: int, deal_id: int) -> dict[str, Any]:
        params = {"company_id": company_id}
        data = self.read(lambda: self.call("GET", f"/api/1/deals/{deal_id}", params=params))
        return dict(data["deal"])

    def create_deal(self, body: dict[str, Any]) -> dict[str, Any]:
        data = self.retrying(reads=False)(lambda: self.call("POST", "/api/1/deals", json=body))
        return dict(data["deal"])

    def update_deal(self, deal_id: int, body: dict[str, Any]) -> dict[str, Any]:
        # only a PUT that surely never left is repeated here; else the caller looks it up
        data = self.retrying(reads=False)(
            lambda: self.call("PUT", f"/api/1/deals/{deal_id}", json=body)
        )
        return dict(data["deal"])

    def delete_deal(self, company_id: int, deal_id: int) -> None:
        params = {"company_id": company_id}
        self.retrying(reads=False)(
            lambda: self.call("DELETE", f"/api/1/deals/{deal_id}", params=params)
        )

    # -- transfers --------------------------------------------------------------------------

    def list_transfers(self, company_id: int, day: date) -> list[dict[str, Any]]:
        """Every transfer of one date (the list has no total: page until a short page)."""
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            params: dict[str, Any] = {
                "company_id": company_id,
                "start_date": day.isoformat(),
                "end_date": day.isoformat(),
                "limit": PAGE,
                "offset": offset,
            }
            data = self._get("/api/1/transfers", params)
            page = list(data.get("transfers") or [])
            out.extend(page)
            offset += len(page)
            if len(page) < PAGE:
                return out

    def get_transfer(self, company_id: int, transfer_id: int) -> dict[str, Any]:
        params = {"company_id": company_id}
        data = self.read(lambda: self.call("GET", f"/api/1/transfers/{transfer_id}", params=params))
        return dict(data["transfer"])

    def create_transfer(self, body: dict[str, Any]) -> dict[str, Any]:
        data = self.retrying(reads=False)(lambda: self.call("POST", "/api/1/transfers", json=body))
        return dict(data["transfer"])

    def delete_transfer(self, company_id: int, transfer_id: int) -> None:
        params = {"company_id": company_id}
        self.retrying(reads=False)(
            lambda: self.call("DELETE", f"/api/1/transfers/{transfer_id}", params=params)
        )
