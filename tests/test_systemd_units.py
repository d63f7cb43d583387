"""The systemd units: `systemd-analyze verify`, the security exposure threshold, and the
settings that must stay (serial access, watchdog, credentials), plus the udev rules' syntax."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNITS = REPO / "systemd"
SERVICES = sorted(p.name for p in UNITS.glob("*.service"))
ALL_UNITS = SERVICES + sorted(p.name for p in UNITS.glob("*.timer"))
MAX_EXPOSURE = 2.0  # systemd-analyze security, 0.0 (safe) .. 10.0 (unsafe)
EXEC_PATH = "/opt/gatewayd/venv/bin/gatewayd"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed on this machine")


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def _section(text: str, name: str) -> list[str]:
    """The ``key=value`` lines of one [section] of a unit file."""
    lines, current = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
        elif current == name:
            lines.append(line)
    return lines


def _values(text: str, section: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in _section(text, section)
            if line.split("=", 1)[0] == key]


@needs_analyze
def test_units_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` with ExecStart pointed at a stand-in executable (verify
    insists that the binary exists; /opt/gatewayd is only there after install.sh)."""
    fake = tmp_path / "bin/gatewayd"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    copies = []
    for name in ALL_UNITS:
        text = (UNITS / name).read_text().replace(EXEC_PATH, str(fake))
        (tmp_path / name).write_text(text)
        copies.append(str(tmp_path / name))
    proc = _analyze("verify", *copies)
    ours = [line for line in (proc.stdout + proc.stderr).splitlines()
            if any(name in line for name in ALL_UNITS)]
    assert proc.returncode == 0 and ours == [], proc.stdout + proc.stderr


@needs_analyze
def test_verify_catches_mistakes(tmp_path: Path) -> None:
    """The check above can fail: an unknown key and a missing binary are reported."""
    text = (UNITS / "gatewayd.service").read_text()
    text = text.replace("Type=notify", "Type=notify\nWatchDogSec=1")
    (tmp_path / "gatewayd.service").write_text(text)
    proc = _analyze("verify", str(tmp_path / "gatewayd.service"))
    assert "WatchDogSec" in proc.stderr
    assert EXEC_PATH in proc.stderr and proc.returncode != 0


@needs_analyze
@pytest.mark.parametrize("name", SERVICES)
def test_security_exposure_at_most_2(name: str) -> None:
    threshold = str(int(MAX_EXPOSURE * 10))  # --threshold takes tenths
    proc = _analyze("security", "--offline=yes", f"--threshold={threshold}", "--no-pager",
                    str(UNITS / name))
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    exposure = float(match.group(1))
    assert proc.returncode == 0 and exposure <= MAX_EXPOSURE, \
        f"{name}: exposure {exposure} > {MAX_EXPOSURE}\n{proc.stdout}"


@needs_analyze
def test_security_threshold_fails_above_limit(tmp_path: Path) -> None:
    bare = tmp_path / "bare.service"
    bare.write_text("[Service]\nExecStart=/bin/true\n")
    proc = _analyze("security", "--offline=yes", "--threshold=20", str(bare))
    assert proc.returncode != 0


def test_service_keeps_serial_usb_and_watchdog_settings() -> None:
    text = (UNITS / "gatewayd.service").read_text()
    service = dict(line.split("=", 1) for line in _section(text, "Service")
                   if not line.startswith(("DeviceAllow", "SystemCallFilter", "ExecStart")))
    unit = dict(line.split("=", 1) for line in _section(text, "Unit")
                if not line.startswith(("After", "Wants")))
    assert service["Type"] == "notify"
    assert service["WatchdogSec"] == "60s"
    assert service["Restart"] == "on-failure"
    assert "StartLimitIntervalSec" in unit and "StartLimitBurst" in unit  # [Unit], not [Service]
    assert "StartLimitBurst" not in service
    assert service["StateDirectory"] == "gatewayd" and service["StateDirectoryMode"] == "0700"
    # the status snapshot's 30 s refresh goes to /run (tmpfs), not the SD card
    assert service["RuntimeDirectory"] == "gatewayd"
    assert service["RuntimeDirectoryMode"] == "0700"
    assert service["RuntimeDirectoryPreserve"] == "yes"
    assert service["ConfigurationDirectory"] == "gatewayd"
    assert service["LoadCredential"].startswith("freee-client-secret:")
    assert service["User"] == "gatewayd"
    assert {"dialout", "plugdev"} <= set(service["SupplementaryGroups"].split())
    assert _values(text, "Service", "ExecStart") == [
        f"{EXEC_PATH} run --config /etc/gatewayd/gatewayd.toml"]
    allowed = " ".join(_values(text, "Service", "DeviceAllow"))
    assert "char-ttyUSB rw" in allowed and "char-ttyACM rw" in allowed
    assert "char-usb_device rw" in allowed
    # Options that break serial or USB access (docs/systemd.md).
    assert service.get("PrivateDevices", "no") == "no"
    assert service.get("PrivateUsers", "no") == "no"
    assert service.get("DynamicUser", "no") == "no"
    assert "IPAddressDeny" not in service  # freee must stay reachable
    families = service["RestrictAddressFamilies"].split()
    assert {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"} <= set(families)


def test_firstboot_unit_runs_before_the_daemon() -> None:
    text = (UNITS / "gatewayd-firstboot.service").read_text()
    assert "gatewayd.service" in _values(text, "Unit", "Before")
    assert _values(text, "Service", "Type") == ["oneshot"]
    conditions = _values(text, "Unit", "ConditionPathExists")
    assert "|/boot/firmware/gatewayd.toml" in conditions
    assert any("firstboot" in cmd for cmd in _values(text, "Service", "ExecStart"))


UDEV_ASSIGN = re.compile(
    r'^(?:[A-Z]+(?:\{[A-Za-z_]+\})?)(?:==|!=|\+=|=|:=)"[^"]*"$')


def test_udev_rules_syntax_and_names() -> None:
    text = (REPO / "etc/udev/99-gatewayd.rules").read_text()
    labels, gotos = set(), set()
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        for part in parts:
            assert UDEV_ASSIGN.match(part), f"bad udev token {part!r} in: {line}"
            if part.startswith("LABEL="):
                labels.add(part.split('"')[1])
            if part.startswith("GOTO="):
                gotos.add(part.split('"')[1])
        rules.append(line)
    assert gotos <= labels
    register = [r for r in rules if 'SYMLINK+="gatewayd/register"' in r]
    assert register and all('GROUP="dialout"' in r and 'MODE="0660"' in r for r in register)
    assert all("idVendor" in r and "idProduct" in r for r in register)
    vendors = {m for r in register for m in re.findall(r'idVendor}=="([0-9a-f]{4})"', r)}
    assert {"0403", "067b", "1a86"} <= vendors  # FTDI, Prolific, CH340
    printers = [r for r in rules if "gatewayd/printer" in r]
    assert any('"04b8"' in r for r in printers) and any('"0519"' in r for r in printers)
    assert all('GROUP="plugdev"' in r for r in printers if 'SUBSYSTEM=="tty"' not in r)


def _expand(name: str) -> set[str]:
    """A syscall or @group as systemd expands it (nested groups included)."""
    if not name.startswith("@"):
        return {name}
    out = _analyze("syscall-filter", name)
    assert out.returncode == 0, out.stderr
    calls: set[str] = set()
    for line in out.stdout.splitlines()[1:]:
        word = line.strip()
        if word and not word.startswith("#"):
            calls |= _expand(word)
    return calls


def _allowed_syscalls(text: str) -> set[str]:
    """The unit's effective allow-list: SystemCallFilter= lines applied in order (an allow
    line adds, a ~ line takes away), as systemd does when the first line is an allow-list."""
    allowed: set[str] = set()
    for value in _values(text, "Service", "SystemCallFilter"):
        deny = value.startswith("~")
        names = set().union(*(_expand(n) for n in value.lstrip("~").split()))
        allowed = allowed - names if deny else allowed | names
    return allowed


@needs_analyze
def test_firstboot_filter_allows_the_chown_of_the_imported_config() -> None:
    # found by booting the box (scripts/system-test.sh): ~@privileged also removed fchown, so
    # the imported gatewayd.toml stayed root:root 0640 and the daemon could not read it
    source = (REPO / "gatewayd" / "firstboot.py").read_text()
    assert "os.fchown(" in source  # what the import does to give the file to the daemon
    allowed = _allowed_syscalls((UNITS / "gatewayd-firstboot.service").read_text())
    assert "fchown" in allowed
    assert "reboot" not in allowed and "mount" not in allowed  # still a tight filter
