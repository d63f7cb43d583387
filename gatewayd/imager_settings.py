"""Raspberry Pi Imager's OS customisation, read from the files it writes on the boot partition.

Imager writes its settings (host name, user, SSH, Wi-Fi, time zone, keyboard) as cloud-init
files on the FAT partition when it does not know an image (1.8/1.9 "Use custom" falls back to
cloud-init) or when an OS list names the image's ``init_format: cloudinit`` (Imager 2). The
gateway image has no cloud-init: this module reads the subset Imager writes and turns it into
the image's own ``sysconf.txt`` lines, which ``gatewayd-sysconf`` applies at boot.

Pure: text in, text out. What Imager writes (both generations) is pinned in
tests/test_imager_settings.py; anything else in the files is reported as not applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs

from gatewayd.errors import ConfigError

USER_DATA = "user-data"
NETWORK_CONFIG = "network-config"

_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_HASH = re.compile(r"^\$[0-9a-z]+\$[^\s:]+$")  # crypt(3): $5$salt$hash, $6$..., $y$...
_KEY = re.compile(r"^(ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\n\r]*)?$")
_HEX_PSK = re.compile(r"^[0-9a-fA-F]{64}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_TZ = re.compile(r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$")
_REGDOM = re.compile(r"(?:^|\s)cfg80211\.ieee80211_regdom=([A-Za-z]{2})(?:\s|$)")

# what Imager writes that a headless gateway does not need or applies itself
_IGNORED_TOP = {"manage_etc_hosts", "manage_resolv_conf", "packages", "apt", "runcmd",
                "preserve_hostname", "rpi", "write_files"}


@dataclass
class ImagerSettings:
    """What the installer set in Imager, checked; ``skipped`` says what was not applied."""

    hostname: str | None = None
    timezone: str | None = None
    keyboard: str | None = None
    user: str | None = None
    password_hash: str | None = None
    sudo_nopasswd: bool = False
    ssh_keys: list[str] = field(default_factory=list)
    ssh: bool = False
    ssh_pwauth: bool | None = None
    wifi_ssid: bytes | None = None
    wifi_psk: str | None = None  # 64 hex digits (Imager derives it) or a passphrase
    wifi_hidden: bool = False
    wifi_country: str | None = None
    skipped: list[str] = field(default_factory=list)

    def sysconf_lines(self) -> list[str]:
        """``key=value`` lines for gatewayd-sysconf (one per line, no newline in a value)."""
        out = []
        if self.hostname:
            out.append(f"hostname={self.hostname}")
        if self.timezone:
            out.append(f"timezone={self.timezone}")
        if self.wifi_ssid is not None:
            out.append(f"wifi_ssid_hex={self.wifi_ssid.hex()}")
            if self.wifi_psk:
                out.append(f"wifi_psk={self.wifi_psk}")
            if self.wifi_hidden:
                out.append("wifi_hidden=yes")
        if self.wifi_country:
            out.append(f"wifi_country={self.wifi_country}")
        if self.user:
            out.append(f"user={self.user}")
            if self.password_hash:
                out.append(f"user_password_hash={self.password_hash}")
            if self.sudo_nopasswd:
                out.append("user_sudo_nopasswd=yes")
            out.extend(f"ssh_authorized_key={k}" for k in self.ssh_keys)
        if self.ssh:
            out.append("ssh=yes")
        if self.ssh_pwauth is not None:
            out.append(f"ssh_pwauth={'yes' if self.ssh_pwauth else 'no'}")
        return out


def _load(text: str, name: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}",
                          key=name) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping at the top", key=name,
                          value=type(data).__name__)
    return data


def _text(value: object, key: str, pattern: re.Pattern[str], expected: str) -> str:
    text = str(value).strip() if isinstance(value, (str, int)) else ""
    if not pattern.match(text):
        raise ConfigError("not accepted", key=key, value=value, expected=expected)
    return text


def parse(user_data: str | None, network_config: str | None,
          cmdline: str = "") -> ImagerSettings:
    """Imager's ``user-data`` and ``network-config`` (either may be absent) and the boot
    partition's ``cmdline.txt`` (Imager 1.x puts the Wi-Fi country there only)."""
    s = ImagerSettings()
    if user_data is not None:
        _user_data(s, _load(user_data, USER_DATA))
    if network_config is not None:
        _network(s, _load(network_config, NETWORK_CONFIG))
    if s.wifi_country is None:
        found = _REGDOM.search(cmdline)
        if found:
            s.wifi_country = found.group(1).upper()
    return s


def _user_data(s: ImagerSettings, data: dict[str, Any]) -> None:
    for key in sorted(set(data) - _IGNORED_TOP - {
            "hostname", "timezone", "keyboard", "user", "users", "ssh_pwauth", "enable_ssh"}):
        s.skipped.append(f"{USER_DATA}: {key}")
    if "hostname" in data:
        s.hostname = _text(data["hostname"], f"{USER_DATA}.hostname", _HOST,
                           "a host name (letters, digits, '-', at most 63)")
    if "timezone" in data:
        s.timezone = _text(data["timezone"], f"{USER_DATA}.timezone", _TZ,
                           "a time zone such as Asia/Tokyo")
    keyboard = data.get("keyboard")
    if isinstance(keyboard, dict) and keyboard.get("layout"):
        s.keyboard = str(keyboard["layout"])
        s.skipped.append(f"{USER_DATA}: keyboard (layout {s.keyboard}: the image has no "
                         "console keymap; the box is headless)")
    users: list[Any] = []
    if isinstance(data.get("user"), dict):
        users.append(data["user"])  # Imager 2: singular user:
    if isinstance(data.get("users"), list):
        users.extend(u for u in data["users"] if u != "default")  # Imager 1.x: users: list
    if users:
        first = users[0]
        if not isinstance(first, dict):
            raise ConfigError("expected a mapping with name:", key=f"{USER_DATA}.users",
                              value=first)
        _user(s, first)
        for extra in users[1:]:
            name = extra.get("name") if isinstance(extra, dict) else extra
            s.skipped.append(f"{USER_DATA}: user {name!r} (only the first user is made)")
    if "ssh_pwauth" in data:
        s.ssh_pwauth = bool(data["ssh_pwauth"])
        s.ssh = s.ssh or s.ssh_pwauth
    runcmd = data.get("runcmd")
    if isinstance(runcmd, list) and any("ssh" in str(c) and "enable" in str(c) for c in runcmd):
        s.ssh = True  # Imager 2 enables sshd through runcmd


def _user(s: ImagerSettings, entry: dict[str, Any]) -> None:
    key = f"{USER_DATA}.user"
    s.user = _text(entry.get("name", ""), f"{key}.name", _USER,
                   "a Linux user name (lower case, at most 32)")
    if s.user in ("root", "gatewayd"):
        raise ConfigError("is reserved on the gateway", key=f"{key}.name", value=s.user,
                          expected="another user name")
    passwd = entry.get("passwd")
    if passwd and not entry.get("lock_passwd", False):
        if not _HASH.match(str(passwd).strip()):  # never echo what may be a password
            raise ConfigError("not accepted", key=f"{key}.passwd", value="(hidden)",
                              expected="a crypt(3) hash as Imager writes ($5$...)")
        s.password_hash = str(passwd).strip()
    keys = entry.get("ssh_authorized_keys") or []
    if not isinstance(keys, list):
        raise ConfigError("expected a list", key=f"{key}.ssh_authorized_keys", value=keys)
    for i, k in enumerate(keys):
        s.ssh_keys.append(_text(k, f"{key}.ssh_authorized_keys[{i}]", _KEY,
                                "an OpenSSH public key line (ssh-ed25519 AAAA... comment)"))
    if s.ssh_keys:
        s.ssh = True
    sudo = entry.get("sudo")
    s.sudo_nopasswd = isinstance(sudo, str) and "NOPASSWD" in sudo


def _network(s: ImagerSettings, data: dict[str, Any]) -> None:
    net = data.get("network", data)  # Imager 2 nests under network:, 1.x does not
    if not isinstance(net, dict):
        raise ConfigError("expected a mapping", key=f"{NETWORK_CONFIG}.network")
    wifis = net.get("wifis") or {}
    if not isinstance(wifis, dict):
        raise ConfigError("expected a mapping", key=f"{NETWORK_CONFIG}.wifis")
    for name, wifi in wifis.items():
        if name == "renderer" or not isinstance(wifi, dict):
            continue  # Imager 1.x writes "renderer: networkd" among the interfaces
        if name != "wlan0":
            s.skipped.append(f"{NETWORK_CONFIG}: wifis.{name} (only wlan0)")
            continue
        dom = wifi.get("regulatory-domain")
        if dom:
            s.wifi_country = _text(str(dom).upper(), f"{NETWORK_CONFIG}.regulatory-domain",
                                   _COUNTRY, "a two-letter country code such as JP")
        points = wifi.get("access-points") or {}
        if not isinstance(points, dict) or not points:
            raise ConfigError("no access point", key=f"{NETWORK_CONFIG}.wifis.wlan0")
        ssid, point = next(iter(points.items()))
        _access_point(s, str(ssid), point if isinstance(point, dict) else {})
        if len(points) > 1:
            s.skipped.append(f"{NETWORK_CONFIG}: {len(points) - 1} more access point(s)")
    if net.get("ethernets"):
        s.skipped.append(f"{NETWORK_CONFIG}: ethernets (the image's eth0 is DHCP already)")


def _access_point(s: ImagerSettings, ssid: str, point: dict[str, Any]) -> None:
    key = f"{NETWORK_CONFIG}.access-points"
    # Imager escapes each byte above 0x7f of a UTF-8 SSID as \xHH; YAML reads that as one
    # code point per byte: back to bytes through latin-1. A plain UTF-8 SSID stays UTF-8.
    try:
        raw = ssid.encode("latin-1")
    except UnicodeEncodeError:
        raw = ssid.encode("utf-8")
    if not 1 <= len(raw) <= 32:
        raise ConfigError("an SSID is 1 to 32 bytes", key=key, value=ssid)
    s.wifi_ssid = raw
    s.wifi_hidden = bool(point.get("hidden", False))
    password = point.get("password")
    auth = point.get("auth")
    if password is None and isinstance(auth, dict):
        password = auth.get("password")
    if password is None or password == "":
        s.wifi_psk = None  # open network (auth: key-management: none)
        return
    text = str(password)
    if _HEX_PSK.match(text):
        s.wifi_psk = text.lower()
    elif 8 <= len(text) <= 63 and text.isprintable() and '"' not in text:
        s.wifi_psk = text
    else:
        raise ConfigError("not a WPA passphrase (8 to 63 characters) or a 64-hex key",
                          key=f"{key}.password", value="(hidden)")
