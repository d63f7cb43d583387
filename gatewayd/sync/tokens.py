"""freee OAuth tokens on disk, and the one refresher that rotates them.

freee's refresh token is single use (a refresh returns a new one and burns the old) and lives
90 days; the access token lives 6 hours (freee-api.md §1). So:

- the token file (``freee-token.json`` in the state directory, mode 0600) is replaced by
  write → fsync → atomic rename → fsync of the directory, *before* the new access token is
  used: a crash after freee rotated the pair never leaves us holding only the burned token;
- one refresher at a time, across threads (a lock) and processes (``flock`` on
  ``freee-token.lock``); after taking the lock the file is read again, so a refresh another
  process just did is used, not repeated;
- a refresh refused with ``invalid_grant`` marks the link *expired* (the file keeps the
  company and the reason; the status page asks for a new link); nothing queued is touched;
- a refresh whose answer is lost is not repeated blindly: the next attempt (later) uses the
  same refresh token; if freee had consumed it, that attempt gets ``invalid_grant`` → expired.

Tokens are never logged or printed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_token_request

from gatewayd.errors import FreeeFixSetting, FreeeRelink, FreeeRetryLater, StorageError
from gatewayd.sync.freee_errors import (
    error_from_response,
    error_from_transport,
    parse_error_body,
)
from gatewayd.sync.freee_settings import FreeeSettings

log = logging.getLogger(__name__)

TOKEN_FILE = "freee-token.json"
LOCK_FILE = "freee-token.lock"
REFRESH_TOKEN_LIFETIME = timedelta(days=90)
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class LinkState(StrEnum):
    MISSING = "missing"  # never linked, or unlinked
    LINKED = "linked"
    EXPIRED = "expired"  # a refresh was refused: link again


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """The token file's content."""

    state: LinkState
    company_id: int | None
    company_name: str | None
    access_token: str
    refresh_token: str
    expires_at: datetime  # access token
    refreshed_at: datetime  # when this pair was issued (refresh token's 90 days start here)
    linked_at: datetime
    scope: str = ""
    expired_at: datetime | None = None
    expired_reason: str | None = None
    refresh_count: int = 0

    @property
    def refresh_expires_at(self) -> datetime:
        return self.refreshed_at + REFRESH_TOKEN_LIFETIME

    def __repr__(self) -> str:  # never show tokens
        return (
            f"TokenRecord(state={self.state.value}, company_id={self.company_id}, "
            f"expires_at={self.expires_at.isoformat()})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "state": self.state.value,
            "company_id": self.company_id,
            "company_name": self.company_name,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at.isoformat(),
            "refreshed_at": self.refreshed_at.isoformat(),
            "linked_at": self.linked_at.isoformat(),
            "scope": self.scope,
            "expired_at": None if self.expired_at is None else self.expired_at.isoformat(),
            "expired_reason": self.expired_reason,
            "refresh_count": self.refresh_count,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenRecord:
        def when(key: str) -> datetime:
            return datetime.fromisoformat(str(data[key]))

        return cls(
            state=LinkState(data["state"]),
            company_id=None if data.get("company_id") is None else int(data["company_id"]),
            company_name=data.get("company_name"),
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]),
            expires_at=when("expires_at"),
            refreshed_at=when("refreshed_at"),
            linked_at=when("linked_at"),
            scope=str(data.get("scope") or ""),
            expired_at=None if not data.get("expired_at") else when("expired_at"),
            expired_reason=data.get("expired_reason"),
            refresh_count=int(data.get("refresh_count") or 0),
        )


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` durably with mode 0600: temp file, fsync, rename, fsync the directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StorageError(f"{path}: cannot write: {exc}") from exc


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _thread_lock(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _thread_locks_guard:
        return _thread_locks.setdefault(key, threading.Lock())


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """One holder at a time across threads and processes (thread lock + ``flock``)."""
    with _thread_lock(lock_path):
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock


def parse_token_response(data: object, now: datetime, previous: TokenRecord | None) -> TokenRecord:
    """A token endpoint answer → a linked record (company from the answer or the previous)."""
    if not isinstance(data, dict) or not data.get("access_token") or not data.get("refresh_token"):
        raise FreeeRelink("token endpoint answer lacks access_token or refresh_token")
    expires_in = float(data.get("expires_in") or 21600)
    company: int | None = None
    if data.get("company_id") not in (None, ""):
        company = int(data["company_id"])
    elif previous is not None:
        company = previous.company_id
    return TokenRecord(
        state=LinkState.LINKED,
        company_id=company,
        company_name=None if previous is None else previous.company_name,
        access_token=str(data["access_token"]),
        refresh_token=str(data["refresh_token"]),
        expires_at=now + timedelta(seconds=expires_in),
        refreshed_at=now,
        linked_at=now if previous is None else previous.linked_at,
        scope=str(data.get("scope") or ""),
        refresh_count=0 if previous is None else previous.refresh_count + 1,
    )


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """What the status page shows about the link (no tokens)."""

    state: LinkState
    company_id: int | None = None
    company_name: str | None = None
    linked_at: datetime | None = None
    refreshed_at: datetime | None = None
    access_expires_at: datetime | None = None
    refresh_expires_at: datetime | None = None
    expired_reason: str | None = None


class TokenManager:
    """Reads, refreshes and stores the tokens; safe to share between threads and processes."""

    def __init__(
        self,
        settings: FreeeSettings,
        state_dir: Path,
        http: httpx.Client,
        *,
        clock: Clock = utcnow,
        on_token_call: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.path = state_dir / TOKEN_FILE
        self.lock_path = state_dir / LOCK_FILE
        self.http = http
        self.clock = clock
        self._on_token_call = on_token_call
        self._cache: tuple[tuple[int, int, int], TokenRecord | None] | None = None

    # -- file -------------------------------------------------------------------------------

    def load(self) -> TokenRecord | None:
        """The current record (None: not linked); re-read only when the file changed."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._cache = None
            return None
        sig = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._cache is not None and self._cache[0] == sig:
            return self._cache[1]
        try:
            record: TokenRecord | None = TokenRecord.from_json(
                json.loads(self.path.read_text(encoding="utf-8"))
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("token file %s unreadable (%s): link freee again", self.path, exc)
            record = None
        self._cache = (sig, record)
        return record

    def save(self, record: TokenRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private_file(
            self.path, json.dumps(record.to_json(), ensure_ascii=False, indent=1).encode()
        )
        self._cache = None

    def delete(self) -> None:
        with exclusive(self.lock_path):
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._cache = None

    def store_link(self, record: TokenRecord) -> None:
        """Store a freshly linked pair (link flow), under the refresher's lock."""
        with exclusive(self.lock_path):
            self.save(record)

    def set_company_name(self, name: str | None) -> None:
        with exclusive(self.lock_path):
            record = self.load()
            if record is not None and record.company_name != name:
                self.save(replace(record, company_name=name))

    # -- state ------------------------------------------------------------------------------

    def status(self) -> LinkStatus:
        record = self.load()
        if record is None:
            return LinkStatus(LinkState.MISSING)
        return LinkStatus(
            state=record.state,
            company_id=record.company_id,
            company_name=record.company_name,
            linked_at=record.linked_at,
            refreshed_at=record.refreshed_at,
            access_expires_at=record.expires_at,
            refresh_expires_at=record.refresh_expires_at,
            expired_reason=record.expired_reason,
        )

    def usable(self) -> bool:
        record = self.load()
        return record is not None and record.state is LinkState.LINKED

    def company_id(self) -> int | None:
        """The company to post into: the setting, else the one chosen at link time."""
        if self.settings.company_id is not None:
            return self.settings.company_id
        record = self.load()
        return None if record is None else record.company_id

    def _require(self) -> TokenRecord:
        record = self.load()
        if record is None:
            raise FreeeRelink(
                "freee is not linked",
                staff_message=(
                    "freee会計と連携していません。"
                    "`gatewayd link` またはステータス画面で連携してください。"
                ),
            )
        if record.state is LinkState.EXPIRED:
            raise FreeeRelink(
                f"freee link expired: {record.expired_reason or 'refresh refused'}",
                freee_message=record.expired_reason,
            )
        return record

    def needs_refresh(self, record: TokenRecord, now: datetime) -> bool:
        left = (record.expires_at - now).total_seconds()
        return left < self.settings.refresh_margin

    def access_token(self, now: datetime | None = None) -> str:
        """A valid access token, refreshed first when it is close to expiry."""
        now = now or self.clock()
        record = self._require()
        if self.needs_refresh(record, now):
            record = self.refresh(now)
        return record.access_token

    def next_refresh_at(self) -> datetime | None:
        """When ``keepalive`` will next refresh (idle days included); None when not linked."""
        record = self.load()
        if record is None or record.state is not LinkState.LINKED:
            return None
        idle_due = record.refreshed_at + timedelta(seconds=self.settings.idle_refresh)
        return idle_due

    def keepalive(self, now: datetime | None = None) -> None:
        """Refresh on idle days too, so the 90-day refresh token never lapses."""
        now = now or self.clock()
        due = self.next_refresh_at()
        if due is not None and now >= due:
            self.refresh(now, min_age=self.settings.idle_refresh)

    # -- refresh ----------------------------------------------------------------------------

    def refresh(
        self,
        now: datetime | None = None,
        *,
        rejected_access: str | None = None,
        min_age: float | None = None,
    ) -> TokenRecord:
        """Rotate the pair under the lock; a no-op when another holder already did.

        ``rejected_access``: freee refused this access token (401); refresh unless the file
        already holds a different one. ``min_age``: refresh only if the pair is that old.
        """
        with exclusive(self.lock_path):
            self._cache = None
            now = now or self.clock()
            record = self._require()
            if rejected_access is not None:
                if record.access_token != rejected_access:
                    return record  # someone refreshed meanwhile
            elif min_age is not None:
                if (now - record.refreshed_at).total_seconds() < min_age:
                    return record
            elif not self.needs_refresh(record, now):
                return record
            return self._refresh_locked(record)

    def _refresh_locked(self, record: TokenRecord) -> TokenRecord:
        body = prepare_token_request(
            "refresh_token",
            refresh_token=record.refresh_token,
            client_id=self.settings.require_client_id(),
            client_secret=self.settings.read_client_secret(),
        )
        if self._on_token_call is not None:
            self._on_token_call("refresh")
        # the pair's lifetimes count from the moment the request goes out (freee issues it
        # then or a little later: never later than freee thinks), not from a caller's ``now``
        now = self.clock()
        try:
            resp = self.http.post(self.settings.token_url, content=body, headers=FORM)
        except httpx.TransportError as exc:
            err = error_from_transport(exc, "token refresh")
            log.warning("token refresh failed (%s); will try again with the same token", err)
            raise err from exc
        if resp.status_code >= 400:
            error = error_from_response(resp)
            codes, _ = parse_error_body(_json_or_none(resp))
            if "invalid_grant" in codes:
                reason = error.freee_message or str(error)
                self.save(
                    replace(record, state=LinkState.EXPIRED, expired_at=now, expired_reason=reason)
                )
                log.error("freee refused the token refresh: link expired (%s)", reason)
                raise FreeeRelink(
                    f"token refresh refused: {reason}",
                    status_code=resp.status_code,
                    freee_message=error.freee_message,
                ) from None
            if resp.status_code in (400, 401):
                # invalid_client & co.: the app's id or secret is wrong; the token is intact
                raise FreeeFixSetting(
                    f"token refresh refused ({', '.join(codes) or resp.status_code}): {error}",
                    status_code=resp.status_code,
                    freee_message=error.freee_message,
                    staff_message=(
                        "freee会計アプリのクライアントIDまたはシークレットが正しくありません。"
                        "設定を確認してください。"
                    ),
                ) from None
            if isinstance(error, FreeeRetryLater):
                raise error
            raise FreeeRetryLater(str(error), status_code=resp.status_code) from None
        try:
            data = resp.json()
        except ValueError as exc:
            raise FreeeRetryLater(f"token refresh: answer is not JSON: {exc}") from None
        new = parse_token_response(data, now, record)
        # durable before first use: a crash from here on still finds the new pair
        self.save(new)
        log.info("freee tokens refreshed (access token valid until %s)", new.expires_at)
        return new


def _json_or_none(resp: httpx.Response) -> object:
    try:
        return resp.json()
    except ValueError:
        return None
