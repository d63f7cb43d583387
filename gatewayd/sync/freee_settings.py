"""The ``[freee]`` table: where freee is, who the gateway is to it, and how patient to be.

``parse_freee(reader)`` reads the table (every key optional; unknown keys rejected) into a
frozen ``FreeeSettings``. The client secret is never kept in the settings' repr: it is read
when needed, first from systemd's credential (``$CREDENTIALS_DIRECTORY/freee-client-secret``,
set by ``LoadCredential=``), then from ``client_secret_file``, then from ``client_secret``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from gatewayd.errors import ConfigError
from gatewayd.settings_reader import PartTables, TableReader
from gatewayd.sync.refs import FORMS as REF_FORMS
from gatewayd.sync.spread import DEFAULT_SEND_SPREAD

CREDENTIAL_NAME = "freee-client-secret"
OOB_REDIRECT = "urn:ietf:wg:oauth:2.0:oob"
REDIRECT_MODES = ("oob", "loopback")
DEFAULT_API_BASE = "https://api.freee.co.jp"
DEFAULT_AUTH_BASE = "https://accounts.secure.freee.co.jp"


@dataclass(frozen=True, slots=True)
class FreeeSettings:
    """Everything the freee side needs, with freee's production hosts as defaults."""

    api_base_url: str = DEFAULT_API_BASE
    auth_base_url: str = DEFAULT_AUTH_BASE
    company_id: int | None = None  # None: the company chosen at link time
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    client_secret_file: Path | None = None
    redirect: str = "oob"  # oob | loopback
    loopback_port: int = 48765
    refresh_margin: float = 3600.0  # refresh when the access token has less left than this
    idle_refresh: float = 86400.0  # refresh at least this often, so the 90-day token never lapses
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    rate_limit_pause: float = 600.0  # when freee names no time
    recheck_interval: float = 3600.0  # held days (fiscal year, masters) are checked again
    retry_initial: float = 1.0  # first short-retry wait; doubles, with jitter
    retry_max: float = 1800.0  # cap of the outbox's next-attempt backoff
    lookup_delay: float = 60.0  # after a send without answer, wait before looking it up
    send_spread: float = DEFAULT_SEND_SPREAD  # a closed day waits a part of this (spread.py)
    ref_number_form: str = "full"  # full | short (≤ 20 characters; refs.py, issue 15)

    @property
    def authorize_url(self) -> str:
        return self.auth_base_url.rstrip("/") + "/public_api/authorize"

    @property
    def token_url(self) -> str:
        return self.auth_base_url.rstrip("/") + "/public_api/token"

    @property
    def revoke_url(self) -> str:
        return self.auth_base_url.rstrip("/") + "/public_api/revoke"

    def redirect_uri(self, port: int | None = None) -> str:
        """The redirect_uri sent in both OAuth requests (freee compares them exactly)."""
        if self.redirect == "oob":
            return OOB_REDIRECT
        return f"http://127.0.0.1:{self.loopback_port if port is None else port}/callback"

    def require_client_id(self) -> str:
        if not self.client_id:
            raise ConfigError(
                "missing: the app's client id is needed to link freee",
                key="freee.client_id",
                expected="the Client ID of the freee app (アプリストア > 開発 > アプリ詳細)",
            )
        return self.client_id

    def read_client_secret(self) -> str:
        """The client secret: systemd credential, else the file, else the setting."""
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if cred_dir:
            cred = Path(cred_dir) / CREDENTIAL_NAME
            if cred.is_file():
                return _read_secret(cred, "$CREDENTIALS_DIRECTORY/" + CREDENTIAL_NAME)
        if self.client_secret_file is not None:
            return _read_secret(self.client_secret_file, "freee.client_secret_file")
        if self.client_secret:
            return self.client_secret
        raise ConfigError(
            "missing: no client secret found",
            key="freee.client_secret",
            expected=(
                "LoadCredential=freee-client-secret:<file> in the unit, "
                "freee.client_secret_file, or freee.client_secret"
            ),
        )


def _read_secret(path: Path, key: str) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the secret file: {exc.strerror}", key=key, value=str(path)
        ) from None
    if not text:
        raise ConfigError("the secret file is empty", key=key, value=str(path))
    return text


def _url(reader: TableReader, name: str, default: str) -> str:
    value = reader.str(name, default)
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query:
        raise ConfigError(
            "not a base URL", key=reader.key(name), value=value, expected="https://host[:port]"
        )
    if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(
            "plain http is only allowed on loopback (the emulator)",
            key=reader.key(name),
            value=value,
            expected="an https:// URL",
        )
    return value.rstrip("/")


def parse_freee(reader: TableReader) -> FreeeSettings:
    """Read the ``[freee]`` table; a wrong key or value is a ``ConfigError`` naming it."""
    secret_file = reader.opt_str("client_secret_file")
    settings = FreeeSettings(
        api_base_url=_url(reader, "api_base_url", DEFAULT_API_BASE),
        auth_base_url=_url(reader, "auth_base_url", DEFAULT_AUTH_BASE),
        company_id=reader.opt_int("company_id", minimum=1),
        client_id=reader.opt_str("client_id"),
        client_secret=reader.opt_str("client_secret"),
        client_secret_file=None if secret_file is None else Path(secret_file),
        redirect=reader.str("redirect", "oob", choices=REDIRECT_MODES),
        loopback_port=reader.int("loopback_port", 48765, minimum=1024, maximum=65535),
        refresh_margin=reader.float("refresh_margin", 3600.0, minimum=60.0, maximum=18000.0),
        idle_refresh=reader.float("idle_refresh", 86400.0, minimum=600.0, maximum=30 * 86400.0),
        connect_timeout=reader.float("connect_timeout", 5.0, minimum=0.1, maximum=120.0),
        read_timeout=reader.float("read_timeout", 30.0, minimum=0.1, maximum=600.0),
        rate_limit_pause=reader.float("rate_limit_pause", 600.0, minimum=1.0, maximum=86400.0),
        recheck_interval=reader.float("recheck_interval", 3600.0, minimum=1.0, maximum=86400.0),
        retry_initial=reader.float("retry_initial", 1.0, minimum=0.0, maximum=60.0),
        retry_max=reader.float("retry_max", 1800.0, minimum=1.0, maximum=86400.0),
        lookup_delay=reader.float("lookup_delay", 60.0, minimum=0.0, maximum=3600.0),
        send_spread=reader.float(
            "send_spread", DEFAULT_SEND_SPREAD, minimum=0.0, maximum=900.0
        ),
        ref_number_form=reader.str("ref_number_form", "full", choices=REF_FORMS),
    )
    if settings.client_secret is not None and settings.client_secret_file is not None:
        raise ConfigError(
            "both client_secret and client_secret_file are set",
            key=reader.key("client_secret_file"),
            value=secret_file,
            expected="one of them (or a systemd credential)",
        )
    reader.finish()
    return settings


def freee_from_settings(settings: PartTables) -> FreeeSettings:
    """The ``[freee]`` table of a loaded configuration (absent: all defaults)."""
    raw = settings.extra.get("freee")
    return parse_freee(TableReader({} if raw is None else raw, "freee"))
