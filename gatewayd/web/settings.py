"""The ``[web]`` table: where the status page listens and how it guards itself.

```toml
[web]
address = "127.0.0.1"          # an IP address; anything but loopback needs `gatewayd passwd`
port = 8080                    # 0 picks a free port (tests)
# metrics_token = "…"          # bearer token for /metrics and /api/status (≥ 32 characters,
                               # `gatewayd passwd --metrics-token` makes one)
session_lifetime_minutes = 30  # a session ends this long after its last request, or at logout
# public_url = "https://192.168.1.20:8080"  # how staff reach the page (slip QR, OAuth callback)
# hostnames = ["gateway.local"]             # extra Host names the page answers to
# tls = "auto"                 # auto: HTTPS beyond loopback, plain HTTP on loopback; on; off
# tls_cert = "/etc/gatewayd/web.crt"        # bring your own (both or neither); default: the
# tls_key = "/etc/gatewayd/web.key"         # box's self-signed one in {state_dir}/web-tls
# trusted_proxies = ["127.0.0.1"]           # reverse proxies whose X-Forwarded-For is believed
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
TOKEN_PATTERN = r"[A-Za-z0-9._~+/=-]{32,256}"
EXAMPLE_TOKEN = "replace-with-32-random-characters"  # etc/gatewayd.toml's placeholder
TLS_MODES = ("auto", "on", "off")
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
    tls: str = "auto"
    tls_cert: str | None = None
    tls_key: str | None = None
    trusted_proxies: tuple[str, ...] = ()  # IP addresses or networks

    @property
    def serves_tls(self) -> bool:
        """HTTPS on the listening port (``auto``: whenever it is reachable from the LAN)."""
        return self.tls == "on" or (self.tls == "auto" and not self.loopback_only)

    @property
    def loopback_only(self) -> bool:
        """True when the address only accepts connections from the box itself."""
        return is_loopback(self.address)


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback  # "::ffff:127.0.0.1": an IPv4 client on "::"
    return ip.is_loopback


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
    if token == EXAMPLE_TOKEN:
        raise ConfigError(
            "the example's placeholder is not a token",
            key=reader.key("metrics_token"),
            value="(the placeholder)",
            expected="a random token: run `gatewayd passwd --metrics-token` and paste its line",
        )
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
    tls = reader.str("tls", "auto", choices=TLS_MODES)
    tls_cert = reader.opt_str("tls_cert")
    tls_key = reader.opt_str("tls_key")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError(
            "tls_cert and tls_key go together",
            key=reader.key("tls_cert" if tls_cert is None else "tls_key"),
            value="missing",
            expected="both paths (certificate and private key), or neither",
        )
    proxies = reader.str_list("trusted_proxies")
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(
                "not an IP address or network",
                key=reader.key("trusted_proxies"),
                value=proxy,
                expected='addresses of your reverse proxies, such as "127.0.0.1"',
            ) from None
    reader.finish()
    return WebSettings(
        address=address,
        port=port,
        metrics_token=None if token is None else Secret(token),
        session_lifetime_minutes=minutes,
        public_url=public_url,
        hostnames=tuple(h.lower() for h in hostnames),
        tls=tls,
        tls_cert=tls_cert,
        tls_key=tls_key,
        trusted_proxies=proxies,
    )


def web_from_settings(settings: PartTables) -> WebSettings:
    """The ``[web]`` table of the loaded configuration (defaults when absent)."""
    return parse_web(TableReader(settings.extra.get("web", {}), "web"))


def day_url(base_url: str, register_id: str, business_date: date) -> str:
    """The day page's address under ``base_url`` (``public_url``): for the close slip's QR."""
    return f"{base_url.rstrip('/')}/day/{quote(register_id, safe='')}/{business_date.isoformat()}"
