"""Raspberry Pi Imager's OS customisation on the gateway image (no cloud-init there).

The samples are what Imager writes, line for line: 1.8/1.9 (OptionsPopup.qml, "Use custom"
falls back to cloud-init) and 2.x (CustomisationGenerator, init_format cloudinit). The bash
half (image/files/gatewayd-sysconf) runs here against a directory standing for / with the
system commands replaced by recorders.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gatewayd.cli.imager_settings import ERROR_FILE, convert
from gatewayd.errors import ConfigError
from gatewayd.imager_settings import parse

REPO = Path(__file__).resolve().parents[1]
HASH = "$5$O8ZJ2bW9qk3nH7tJ$0e6yZfWJ3o4Y5t9zC0m8bq8oQ1kQ3n8bX9n4V2m1Jk7"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTestsOnly0000000000000000000 tanaka@laptop"
PSK = "9c1a0a3b5f0d0e6c2e4a8b7d6f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c"
NOW = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)

# Imager 1.9.6, OptionsPopup.qml: user + public key + Wi-Fi + locale
USER_DATA_1X = f"""#cloud-config
hostname: shibuya-gw
manage_etc_hosts: true
packages:
- avahi-daemon
apt:
  conf: |
    Acquire {{
      Check-Date "false";
    }};

users:
- name: tanaka
  groups: users,adm,dialout,audio,netdev,video,plugdev,cdrom,games,input,gpio,spi,i2c,render,sudo
  shell: /bin/bash
  lock_passwd: false
  passwd: {HASH}
  ssh_authorized_keys:
    - {KEY}
  sudo: ALL=(ALL) NOPASSWD:ALL

timezone: Asia/Tokyo
keyboard:
  model: pc105
  layout: "jp"
"""
NETWORK_1X = f"""version: 2
wifis:
  renderer: networkd
  wlan0:
    dhcp4: true
    optional: true
    access-points:
      "shop-wifi":
        password: "{PSK}"
"""
CMDLINE_1X = ("console=serial0,115200 console=tty1 root=LABEL=rootfs rootwait "
              "cfg80211.ieee80211_regdom=JP\n")

# Imager 2.x, CustomisationGenerator: singular user:, runcmd enables ssh, network: nesting
USER_DATA_2X = f"""#cloud-config
manage_resolv_conf: false

hostname: umeda-gw
manage_etc_hosts: true
packages:
- avahi-daemon
apt:
  preserve_sources_list: true
  conf: |
    Acquire {{
      Check-Date "false";
    }};
timezone: Europe/London
user:
  name: ops
  shell: /bin/bash
  lock_passwd: false
  passwd: "{HASH}"
  sudo: null

ssh_pwauth: true

runcmd:
  - [ systemctl, enable, --now, ssh ]
"""
NETWORK_2X = f"""network:
  version: 2
  ethernets:
    eth0:
      dhcp4: true
      dhcp6: true
      optional: true
  wifis:
    wlan0:
      dhcp4: true
      regulatory-domain: "GB"
      access-points:
        "caf\\xc3\\xa9 2.4":
          hidden: true
          password: "{PSK}"
      optional: true
"""


def test_imager_1x_settings_become_sysconf_lines() -> None:
    s = parse(USER_DATA_1X, NETWORK_1X, CMDLINE_1X)
    assert s.sysconf_lines() == [
        "hostname=shibuya-gw",
        "timezone=Asia/Tokyo",
        f"wifi_ssid_hex={b'shop-wifi'.hex()}",
        f"wifi_psk={PSK}",
        "wifi_country=JP",  # Imager 1.x writes it on cmdline.txt only
        "user=tanaka",
        f"user_password_hash={HASH}",
        "user_sudo_nopasswd=yes",
        f"ssh_authorized_key={KEY}",
        "ssh=yes",
    ]
    assert any("keyboard" in item for item in s.skipped)


def test_imager_2x_settings_become_sysconf_lines() -> None:
    s = parse(USER_DATA_2X, NETWORK_2X)
    lines = s.sysconf_lines()
    assert "hostname=umeda-gw" in lines and "timezone=Europe/London" in lines
    # the UTF-8 SSID Imager escaped byte by byte comes back as the same bytes
    assert f"wifi_ssid_hex={'café 2.4'.encode().hex()}" in lines
    assert "wifi_hidden=yes" in lines and "wifi_country=GB" in lines
    assert "user=ops" in lines and "user_sudo_nopasswd=yes" not in lines
    assert "ssh=yes" in lines and "ssh_pwauth=yes" in lines
    assert not [x for x in lines if x.startswith("ssh_authorized_key=")]
    assert any("ethernets" in item for item in s.skipped)


def test_open_network_and_key_only_user() -> None:
    net = NETWORK_2X.replace(f'          password: "{PSK}"\n',
                             "          auth:\n            key-management: none\n")
    user = f"""user:
  name: ops
  lock_passwd: true
  ssh_authorized_keys:
    - "{KEY}"
ssh_pwauth: false
"""
    s = parse(user, net)
    lines = s.sysconf_lines()
    assert not [x for x in lines if x.startswith(("wifi_psk=", "user_password_hash="))]
    assert f"ssh_authorized_key={KEY}" in lines and "ssh_pwauth=no" in lines
    assert "ssh=yes" in lines  # a key means SSH is wanted


@pytest.mark.parametrize(("user_data", "network", "key"), [
    ("hostname: [not, a, name]\n", None, "user-data.hostname"),
    ("hostname: bad_name!\n", None, "user-data.hostname"),
    ("users:\n- name: Root Admin\n", None, "user-data.user.name"),
    ("user:\n  name: gatewayd\n", None, "user-data.user.name"),
    ("user:\n  name: ops\n  passwd: hunter2\n", None, "user-data.user.passwd"),
    ("user:\n  name: ops\n  ssh_authorized_keys: ['rm -rf /']\n", None,
     "user-data.user.ssh_authorized_keys[0]"),
    ("timezone: ../../etc/shadow\n", None, "user-data.timezone"),
    ("hostname: a\n  b: [\n", None, "user-data"),
    ("- a list\n", None, "user-data"),
    (None, 'wifis:\n  wlan0:\n    access-points:\n      "x":\n        password: "short"\n',
     "network-config.access-points.password"),
    (None, 'wifis:\n  wlan0:\n    access-points:\n      "' + "x" * 33 + '": {}\n',
     "network-config.access-points"),
])
def test_a_wrong_value_is_refused_naming_its_key(user_data: str | None, network: str | None,
                                                  key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(user_data, network)
    assert err.value.key == key
    assert "short" not in str(err.value) and "hunter2" not in str(err.value)  # never echoed


def test_convert_writes_sysconf_first_keeps_the_installers_lines_and_scrubs(
        tmp_path: Path) -> None:
    (tmp_path / "user-data").write_text(USER_DATA_1X, encoding="utf-8")
    (tmp_path / "network-config").write_text(NETWORK_1X, encoding="utf-8")
    (tmp_path / "meta-data").write_text("instance-id: x\n", encoding="utf-8")
    (tmp_path / "cmdline.txt").write_text(CMDLINE_1X, encoding="utf-8")
    (tmp_path / "sysconf.txt").write_text("hostname=own-name", encoding="utf-8")
    code, out = convert(tmp_path, NOW)
    assert code == 0, out
    text = (tmp_path / "sysconf.txt").read_text(encoding="utf-8")
    # the installer's own line comes after Imager's: it wins (last line of a key wins)
    assert text.index("hostname=shibuya-gw") < text.index("hostname=own-name")
    assert text.endswith("hostname=own-name\n")
    assert not (tmp_path / "user-data").exists() and not (tmp_path / "network-config").exists()
    assert (tmp_path / "meta-data").exists() and (tmp_path / "cmdline.txt").exists()
    assert any("keyboard" in line for line in out)


def test_convert_refuses_a_broken_file_and_leaves_it_on_the_card(tmp_path: Path) -> None:
    (tmp_path / "user-data").write_text("user:\n  name: ops\n  passwd: hunter2\n",
                                        encoding="utf-8")
    code, out = convert(tmp_path, NOW)
    assert code == 1 and "refused" in out[0]
    assert (tmp_path / "user-data").exists() and not (tmp_path / "sysconf.txt").exists()
    err = (tmp_path / ERROR_FILE).read_text(encoding="utf-8")
    assert "user-data.user.passwd" in err and "適用されませんでした" in err
    assert "hunter2" not in err  # a password is never echoed onto the card
    # fixed on the laptop, the next boot applies it and removes the stale error file
    (tmp_path / "user-data").write_text(USER_DATA_2X, encoding="utf-8")
    assert convert(tmp_path, NOW)[0] == 0 and not (tmp_path / ERROR_FILE).exists()


def test_nothing_from_imager_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "sysconf.txt").write_text("hostname=x\n", encoding="utf-8")
    assert convert(tmp_path, NOW)[0] == 0
    assert (tmp_path / "sysconf.txt").read_text(encoding="utf-8") == "hostname=x\n"


# --------------------------------------------------------------------------- the bash half

@pytest.fixture
def fake_root(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A directory standing for /, a boot partition, and recorders for system commands."""
    root = tmp_path / "root"
    for d in ("etc/wpa_supplicant", "etc/sudoers.d", "usr/share/zoneinfo/Asia", "home"):
        (root / d).mkdir(parents=True)
    (root / "usr/share/zoneinfo/Asia/Tokyo").write_bytes(b"TZif")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tgatewayd\n")
    (root / "etc/hostname").write_text("gatewayd\n")
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/bash\n")
    (root / "etc/group").write_text("adm:x:4:\ndialout:x:20:\nsudo:x:27:\n")
    boot = tmp_path / "boot"
    boot.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for cmd in ("hostname", "systemctl", "useradd", "usermod", "chown", "getent"):
        script = bin_dir / cmd
        script.write_text(f'#!/bin/sh\necho "{cmd} $*" >> "{log}"\n'
                          + (f'mkdir -p "{root}/home/$(eval echo \\${{$#}})"\n'
                             if cmd == "useradd" else ""))
        script.chmod(0o755)
    return root, boot, bin_dir


def run_sysconf(root: Path, boot: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    gatewayd = shutil.which("gatewayd") or str(Path(sys.executable).parent / "gatewayd")
    env = dict(os.environ, GATEWAYD_SYSCONF_ROOT=str(root), GATEWAYD_BIN=gatewayd,
               PATH=f"{bin_dir}:{os.environ['PATH']}")
    return subprocess.run(["bash", str(REPO / "image/files/gatewayd-sysconf"),
                           str(boot / "sysconf.txt")], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_gatewayd_sysconf_applies_imagers_settings(fake_root: tuple[Path, Path, Path]) -> None:
    root, boot, bin_dir = fake_root
    (boot / "user-data").write_text(USER_DATA_1X, encoding="utf-8")
    (boot / "network-config").write_text(NETWORK_2X, encoding="utf-8")
    proc = run_sysconf(root, boot, bin_dir)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert (root / "etc/hostname").read_text() == "shibuya-gw\n"
    assert "127.0.1.1\tshibuya-gw" in (root / "etc/hosts").read_text()
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Asia/Tokyo"
    wpa = root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
    conf = wpa.read_text()
    assert f"ssid={'café 2.4'.encode().hex()}\n" in conf  # hex: the exact SSID bytes
    assert f"psk={PSK}\n" in conf and "scan_ssid=1" in conf and "country=GB" in conf
    assert oct(wpa.stat().st_mode & 0o777) == "0o600"
    calls = (bin_dir.parent / "calls.log").read_text()
    assert "useradd -m -s /bin/bash -G adm,dialout,sudo tanaka" in calls
    assert f"usermod -p {HASH} tanaka" in calls
    assert "systemctl enable ssh.service" in calls
    keys = root / "home/tanaka/.ssh/authorized_keys"
    assert keys.read_text() == KEY + "\n" and oct(keys.stat().st_mode & 0o777) == "0o600"
    sudoers = root / "etc/sudoers.d/010_tanaka-nopasswd"
    assert sudoers.read_text() == "tanaka ALL=(ALL) NOPASSWD:ALL\n"
    # nothing secret stays on the card
    assert sorted(p.name for p in boot.iterdir()) == []


def test_gatewayd_sysconf_leaves_a_refused_imager_file_and_still_applies_sysconf(
        fake_root: tuple[Path, Path, Path]) -> None:
    root, boot, bin_dir = fake_root
    (boot / "user-data").write_text("hostname: bad_name!\n", encoding="utf-8")
    (boot / "sysconf.txt").write_text(
        "timezone=Asia/Tokyo\nwifi_ssid=shop\nwifi_psk=pass phrase1\n")
    proc = run_sysconf(root, boot, bin_dir)
    assert proc.returncode == 0, proc.stderr
    assert "not applied" in proc.stderr
    assert (boot / "user-data").exists() and (boot / ERROR_FILE).exists()
    assert not (boot / "sysconf.txt").exists()
    assert (root / "etc/hostname").read_text() == "gatewayd\n"
    conf = (root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf").read_text()
    assert 'ssid="shop"' in conf and 'psk="pass phrase1"' in conf and "country=JP" in conf


def test_the_os_list_beside_the_image_validates_against_imagers_schema(tmp_path: Path) -> None:
    """Imager 2 offers customisation only through an OS list naming init_format."""
    import json

    import jsonschema

    from gatewayd.imager_oslist import main as os_list_main

    raw = tmp_path / "gatewayd-0.1.0-arm64.img"
    raw.write_bytes(b"\0" * 4096 + b"card")
    xz = tmp_path / "gatewayd-0.1.0-arm64.img.xz"
    xz.write_bytes(b"xz-bytes")
    out = tmp_path / "os-list.json"
    proc = subprocess.run(
        [sys.executable, "-m", "gatewayd.imager_oslist", str(raw), str(xz),
         f"file://{xz}", "2026-03-10"], capture_output=True, text=True, check=True, timeout=60)
    out.write_text(proc.stdout, encoding="utf-8")
    data = json.loads(proc.stdout)
    schema = json.loads((REPO / "tests/data/rpi-imager/os-list-schema.json").read_text())
    jsonschema.validate(data, schema)
    entry = data["os_list"][0]
    assert entry["init_format"] == "cloudinit" and entry["extract_size"] == 4100
    assert entry["extract_sha256"] == hashlib.sha256(raw.read_bytes()).hexdigest()
    assert entry["image_download_size"] == 8 and entry["url"] == f"file://{xz}"
    assert {"pi4-64bit", "pi5-64bit"} <= set(entry["devices"])
    # a broken entry is caught by the same schema (the check can fail)
    del entry["extract_sha256"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
    assert os_list_main([]) == 2
