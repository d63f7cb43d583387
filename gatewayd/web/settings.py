"""The ``[web]`` table: where the status page listens and how it guards itself.

```toml
[web]
address = "127.0.0.1"          # an IP address; anything but loopback needs `gatewayd passwd`
port = 8080                    # 0 picks a free port (tests)
# metrics_token = "…"          # bearer token for /metrics and /api/status (≥ 24 characters)
session_lifetime_minutes = 30  # a session ends this long after its last request, or at logout
# public_url = "http://192.168.1.20:8080"   # how staff reach the page (slip QR, OAuth callback)
# hostnames = ["gateway.local"]             # extra Host names the page answers to
```
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote, urlsplit

from gatewayd.errors import ConfigError
from gatewayd.settings_reader import PartTables, TableReader

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_SESSION_MINUTES = 30
TOKEN_PATTERN = r"[A-Za-z0-9._~+/=-]{24,256}"
HOSTNAME_PATTERN = r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*"


class Secret:
    """A string that never prints: ``repr``/``str`` give ``********`` (Mopidy's ``Secret``)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The status page's settings, checked at start."""

    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT
    metrics_token: Secret | None = None
    session_lifetime_minutes: int = DEFAULT_SESSION_MINUTES
    public_url: str | None = None  # no trailing slash
    hostnames: tuple[str, ...] = ()

    @property
    def loopback_only(self) -> bool:
        """True when the address only accepts connections from the box itself."""
        return is_loopback(self.address)


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _address(reader: TableReader) -> str:
    value = reader.str("address", DEFAULT_ADDRESS)
    if value == "localhost":
        return "127.0.0.1"
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(
            "not an IP address",
            key=reader.key("address"),
            value=value,
            expected='an IP address such as "127.0.0.1", "0.0.0.0" or "192.168.1.20"',
        ) from None
    return value


def _public_url(reader: TableReader) -> str | None:
    value = reader.opt_str("public_url")
    if value is None:
        return None
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
    ):
        raise ConfigError(
            "not a plain http(s) URL",
            key=reader.key("public_url"),
            value=value,
            expected='a URL such as "http://192.168.1.20:8080" (no query, no user)',
        )
    return value.rstrip("/")


def parse_web(reader: TableReader) -> WebSettings:
    """Read the ``[web]`` table (every key optional)."""
    address = _address(reader)
    port = reader.int("port", DEFAULT_PORT, minimum=0, maximum=65535)
    token = reader.opt_str("metrics_token", pattern=TOKEN_PATTERN)
    minutes = reader.int(
        "session_lifetime_minutes", DEFAULT_SESSION_MINUTES, minimum=5, maximum=24 * 60
    )
    public_url = _public_url(reader)
    hostnames = reader.str_list("hostnames")
    for name in hostnames:
        if re.fullmatch(HOSTNAME_PATTERN, name) is None:
            raise ConfigError(
                "not a host name",
                key=reader.key("hostnames"),
                value=name,
                expected="host names such as gateway.local",
            )
    reader.finish()
    return WebSettings(
        address=address,
        port=port,
        metrics_token=None if token is None else Secret(token),
        session_lifetime_minutes=minutes,
        public_url=public_url,
        hostnames=tuple(h.lower() for h in hostnames),
    )


def web_from_settings(settings: PartTables) -> WebSettings:
    """The ``[web]`` table of the loaded configuration (defaults when absent)."""
    return parse_web(TableReader(settings.extra.get("web", {}), "web"))


def day_url(base_url: str, register_id: str, business_date: date) -> str:
    """The day page's address under ``base_url`` (``public_url``): for the close slip's QR."""
    return f"{base_url.rstrip('/')}/day/{quote(register_id, safe='')}/{business_date.isoformat()}"
