"""The checks of ``gatewayd doctor`` and the kit every part's checks are written with.

Each check is a function ``check(ctx: DoctorContext) -> CheckResult`` returning ``ok``,
``warn``, ``fail`` or ``skip`` with a one-line finding, the fix in both languages and optional
detail lines (the device listing that helps fill in the configuration). The command
(``gatewayd.cli.doctor``) prints them and exits 1 when any check fails.

Adding a check (freee link and masters, drawer calibration, ...):

- in your own module write ``def check_freee_link(ctx: DoctorContext) -> CheckResult`` and
  add ONE line to ``EXTERNAL_CHECKS`` below: ``"freee link": "gatewayd.sync.doctor:check_link"``.
  It is imported only when doctor runs; an import error shows as ``skip``, an exception
  raised by the check as ``fail`` — one broken check never hides the others;
- or, from code (tests, plugins), ``register_check("name", func)``.

A check must finish within a few seconds (bound your network calls) and must not change the
box. ``ctx.settings`` is None when the configuration is invalid: return
``CheckResult.skip("configuration invalid")`` if you need it.
"""

from __future__ import annotations

import datetime as dt
import grp
import importlib
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatewayd.config import Settings

SERVICE_USER = "gatewayd"
# Given to the service by SupplementaryGroups= in gatewayd.service (whatever /etc/group says).
SERVICE_GROUPS = ("dialout", "plugdev", "lp")
DEFAULT_STATE_DIR = Path("/var/lib/gatewayd")
DEFAULT_CREDENTIALS_DIR = Path("/etc/credstore")
FREEE_CREDENTIAL = "gatewayd.freee-client-secret"
RAM_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "overlay", "zram", "squashfs"})
# No box can be configured before this date: a clock behind it was never set.
EARLIEST_PLAUSIBLE = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
DISK_FAIL_BYTES = 50 * 1024 * 1024
DISK_WARN_BYTES = 200 * 1024 * 1024

STATUSES = ("ok", "warn", "fail", "skip")


@dataclass(frozen=True)
class CheckResult:
    status: str  # ok | warn | fail | skip
    message: str
    fix_ja: str = ""
    fix_en: str = ""
    details: tuple[str, ...] = ()

    @classmethod
    def ok(cls, message: str, details: Iterable[str] = ()) -> CheckResult:
        return cls("ok", message, details=tuple(details))

    @classmethod
    def warn(cls, message: str, fix_ja: str, fix_en: str, details: Iterable[str] = ()
             ) -> CheckResult:
        return cls("warn", message, fix_ja, fix_en, tuple(details))

    @classmethod
    def fail(cls, message: str, fix_ja: str, fix_en: str, details: Iterable[str] = ()
             ) -> CheckResult:
        return cls("fail", message, fix_ja, fix_en, tuple(details))

    @classmethod
    def skip(cls, message: str) -> CheckResult:
        return cls("skip", message)


@dataclass
class DoctorContext:
    """What every check may look at. Built once by ``make_context``."""

    config_path: Path
    settings: Settings | None
    config_error: str | None
    state_dir: Path
    service_user: str = SERVICE_USER
    boot_dir: Path = Path("/boot/firmware")
    credentials_dir: Path = DEFAULT_CREDENTIALS_DIR
    proc_dir: Path = Path("/proc")
    cache: dict[str, Any] = field(default_factory=dict)  # shared between checks


CheckFunc = Callable[[DoctorContext], CheckResult]


@dataclass(frozen=True)
class Check:
    name: str
    func: CheckFunc


CHECKS: list[Check] = []

# Checks owned by other parts of gatewayd: name -> "module:function" (imported lazily).
EXTERNAL_CHECKS: dict[str, str] = {
    "freee link": "gatewayd.sync.doctor:check_link",
    "freee masters": "gatewayd.sync.doctor:check_masters",
    "printer": "gatewayd.drivers.doctor_checks:check_printer",
    "drawer": "gatewayd.drivers.doctor_checks:check_drawer",
}


def register_check(name: str, func: CheckFunc) -> CheckFunc:
    """Add (or replace, by name) a check; returns ``func`` so it can decorate."""
    for i, check in enumerate(CHECKS):
        if check.name == name:
            CHECKS[i] = Check(name, func)
            break
    else:
        CHECKS.append(Check(name, func))
    return func


def _external(name: str, target: str) -> Check:
    module_name, _, func_name = target.partition(":")

    def run(ctx: DoctorContext) -> CheckResult:
        try:
            func: CheckFunc = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError) as exc:
            return CheckResult.skip(f"check not available ({target}: {exc})")
        return func(ctx)

    return Check(name, run)


def all_checks() -> list[Check]:
    return [*CHECKS, *(_external(n, t) for n, t in EXTERNAL_CHECKS.items())]


def run_checks(ctx: DoctorContext, checks: Iterable[Check] | None = None
               ) -> list[tuple[str, CheckResult]]:
    """Run checks in order; a check that raises is reported as ``fail``, never propagated."""
    results: list[tuple[str, CheckResult]] = []
    for check in all_checks() if checks is None else checks:
        try:
            result = check.func(ctx)
            if result.status not in STATUSES:
                raise ValueError(f"unknown status {result.status!r}")
        except Exception as exc:
            result = CheckResult.fail(
                f"the check itself failed: {type(exc).__name__}: {exc}",
                "このチェックが異常終了しました。開発担当者に連絡してください。",
                "This check crashed; report it to the developers (with this output).")
        results.append((check.name, result))
    return results


# --------------------------------------------------------------------------- helpers

@dataclass(frozen=True)
class UserInfo:
    name: str
    uid: int
    gids: frozenset[int]


def service_user_info(name: str) -> UserInfo | None:
    """The user and the groups it has when systemd runs the service."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    gids = {pw.pw_gid}
    for group in grp.getgrall():
        if name in group.gr_mem or group.gr_name in SERVICE_GROUPS:
            gids.add(group.gr_gid)
    return UserInfo(name, pw.pw_uid, frozenset(gids))


def user_access(path: Path, user: UserInfo) -> tuple[bool, bool]:
    """(readable, writable) of ``path`` for ``user`` by owner/group/other mode bits."""
    st = path.stat()
    if user.uid == 0:
        return True, True
    if st.st_uid == user.uid:
        return bool(st.st_mode & stat.S_IRUSR), bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid in user.gids:
        return bool(st.st_mode & stat.S_IRGRP), bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IROTH), bool(st.st_mode & stat.S_IWOTH)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@dataclass(frozen=True)
class MountEntry:
    mount_point: str
    fstype: str
    source: str


def _unescape_mount(text: str) -> str:
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Entries of /proc/self/mountinfo (proc(5)): mount point, fs type, source."""
    entries = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, rest = left.split(), right.split()
        if len(fields) < 5 or len(rest) < 2:
            continue
        entries.append(MountEntry(_unescape_mount(fields[4]), rest[0], rest[1]))
    return entries


def mount_of(path: Path, entries: list[MountEntry]) -> MountEntry | None:
    """The mount holding ``path`` (the last, longest matching mount point wins)."""
    best: MountEntry | None = None
    target = str(path)
    for entry in entries:
        mp = entry.mount_point
        inside = target == mp or target.startswith(mp.rstrip("/") + "/") or mp == "/"
        if inside and (best is None or len(mp) >= len(best.mount_point)):
            best = entry
    return best


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def configured_devices(settings: Settings) -> list[tuple[str, str]]:
    """(what, port) of every device named in the configuration."""
    found = [(f"register {r.register_id}", r.port) for r in settings.registers]
    printer = settings.extra.get("printer")
    if isinstance(printer, dict):
        if isinstance(printer.get("device"), str):
            found.append(("printer", printer["device"]))
        if isinstance(printer.get("usb"), str):
            usb = "usb:" + printer["usb"]
            if isinstance(printer.get("usb_serial"), str):
                usb += ":" + printer["usb_serial"]
            found.append(("printer", usb))
    return found


@dataclass(frozen=True)
class UsbDevice:
    vendor: int
    product: int
    bus: int | None = None
    address: int | None = None
    manufacturer: str = ""
    name: str = ""
    serial: str = ""

    @property
    def ids(self) -> str:
        return f"{self.vendor:04x}:{self.product:04x}"

    @property
    def node(self) -> Path | None:
        if self.bus is None or self.address is None:
            return None
        return Path(f"/dev/bus/usb/{self.bus:03d}/{self.address:03d}")

    def describe(self) -> str:
        text = self.ids
        label = " ".join(x for x in (self.manufacturer, self.name) if x)
        if label:
            text += f" {label}"
        if self.serial:
            text += f" serial={self.serial}"
        if self.node:
            text += f" ({self.node})"
        return text


def _sysfs_usb(root: Path = Path("/sys/bus/usb/devices")) -> dict[tuple[int, int], dict[str, str]]:
    """Strings of USB devices from sysfs by (bus, address): no device access needed."""
    out: dict[tuple[int, int], dict[str, str]] = {}
    if not root.is_dir():
        return out
    for dev in root.iterdir():
        try:
            attrs = {name: (dev / name).read_text().strip()
                     for name in ("busnum", "devnum", "idVendor", "idProduct")}
        except OSError:
            continue
        extra = {}
        for name in ("manufacturer", "product", "serial"):
            try:
                extra[name] = (dev / name).read_text().strip()
            except OSError:
                extra[name] = ""
        out[(int(attrs["busnum"]), int(attrs["devnum"]))] = {**attrs, **extra}
    return out


def list_usb_devices() -> tuple[list[UsbDevice], str | None]:
    """USB devices via pyusb (strings from sysfs); (devices, problem or None)."""
    strings = _sysfs_usb()
    try:
        import usb.core

        found = list(usb.core.find(find_all=True) or [])
    except Exception as exc:  # NoBackendError: libusb-1.0-0 missing
        devices = [UsbDevice(int(s["idVendor"], 16), int(s["idProduct"], 16), bus, addr,
                             s["manufacturer"], s["product"], s["serial"])
                   for (bus, addr), s in sorted(strings.items())]
        return devices, f"pyusb cannot list devices ({exc}); listed from sysfs"
    devices = []
    for dev in found:
        bus, addr = int(dev.bus), int(dev.address)
        s = strings.get((bus, addr), {})
        devices.append(UsbDevice(int(dev.idVendor), int(dev.idProduct), bus, addr,
                                 s.get("manufacturer", ""), s.get("product", ""),
                                 s.get("serial", "")))
    return devices, None


def _usb_devices(ctx: DoctorContext) -> tuple[list[UsbDevice], str | None]:
    if "usb" not in ctx.cache:
        ctx.cache["usb"] = list_usb_devices()
    result: tuple[list[UsbDevice], str | None] = ctx.cache["usb"]
    return result


# --------------------------------------------------------------------------- built-in checks

def check_configuration(ctx: DoctorContext) -> CheckResult:
    if ctx.settings is None:
        return CheckResult.fail(
            ctx.config_error or "configuration not loaded",
            f"設定ファイル {ctx.config_path} の上記の項目を直し、"
            "sudo systemctl restart gatewayd を実行してください。",
            f"Correct the key named above in {ctx.config_path}, then "
            "`sudo systemctl restart gatewayd`. etc/gatewayd.toml documents every key.")
    regs = ", ".join(r.register_id for r in ctx.settings.registers)
    return CheckResult.ok(f"{ctx.config_path} is valid; registers: {regs}")


def check_service_user(ctx: DoctorContext) -> CheckResult:
    try:
        pw = pwd.getpwnam(ctx.service_user)
    except KeyError:
        return CheckResult.fail(
            f"user {ctx.service_user} does not exist",
            "インストーラ (sudo ./install.sh) をもう一度実行してください。",
            "Run the installer again (`sudo ./install.sh`); it creates the user with "
            "systemd-sysusers.")
    member = sorted(g.gr_name for g in grp.getgrall() if ctx.service_user in g.gr_mem)
    missing = [g for g in SERVICE_GROUPS if g not in member]
    if missing:
        return CheckResult.warn(
            f"user {ctx.service_user} (uid {pw.pw_uid}) is not in {', '.join(missing)} in "
            "/etc/group (the unit adds them with SupplementaryGroups=, so the service works; "
            "`sudo -u gatewayd` tests do not)",
            "インストーラ (sudo ./install.sh) をもう一度実行してください。",
            "Run the installer again to add the memberships (systemd-sysusers).")
    return CheckResult.ok(f"user {ctx.service_user} (uid {pw.pw_uid}) in {', '.join(member)}")


def check_serial_ports(ctx: DoctorContext) -> CheckResult:
    from serial.tools import list_ports

    ports = sorted(list_ports.comports(), key=lambda p: p.device)
    links: dict[str, list[str]] = {}
    for folder in (Path("/dev/gatewayd"), Path("/dev/serial/by-id")):
        if folder.is_dir():
            for link in sorted(folder.iterdir()):
                links.setdefault(os.path.realpath(link), []).append(str(link))
    details = []
    for port in ports:
        line = f"{port.device}: {port.description}"
        if port.vid is not None and port.pid is not None:
            line += f" [{port.vid:04x}:{port.pid:04x}"
            line += f" serial={port.serial_number}]" if port.serial_number else "]"
        for alias in links.get(os.path.realpath(port.device), []):
            line += f"\n    = {alias}"
        details.append(line)
    usb_ports = [p for p in ports if p.vid is not None]
    if not usb_ports:
        return CheckResult.warn(
            f"no USB serial port found ({len(ports)} other)",
            "レジのUSBケーブル(変換アダプタ)が差さっているか確認してください。",
            "Check that the register's USB(-serial) cable is plugged in.", details)
    return CheckResult.ok(f"{len(usb_ports)} USB serial port(s)", details)


def check_usb_devices(ctx: DoctorContext) -> CheckResult:
    devices, problem = _usb_devices(ctx)
    details = [d.describe() for d in devices]
    if problem:
        return CheckResult.warn(
            problem,
            "sudo apt install libusb-1.0-0 を実行してください(USBプリンタに必要)。",
            "Install libusb: `sudo apt install libusb-1.0-0` (needed for USB printers).",
            details)
    return CheckResult.ok(f"{len(devices)} USB device(s) (vendor:product)", details)


def check_configured_devices(ctx: DoctorContext) -> CheckResult:
    if ctx.settings is None:
        return CheckResult.skip("configuration invalid")
    user = service_user_info(ctx.service_user)
    problems: list[str] = []
    details: list[str] = []
    for what, port in configured_devices(ctx.settings):
        if port.startswith("usb:"):
            ids = port[4:].lower().split(":")
            devices, _ = _usb_devices(ctx)
            match = [d for d in devices if d.ids == ":".join(ids[:2])
                     and (len(ids) < 3 or d.serial.lower() == ids[2])]
            if not match:
                problems.append(f"{what}: USB device {port[4:]} not found")
                continue
            node = match[0].node
            if user is not None and node is not None and node.exists():
                readable, writable = user_access(node, user)
                if not (readable and writable):
                    problems.append(f"{what}: {node} not read-write for {user.name}")
                    continue
            details.append(f"{what}: {port} = {match[0].describe()}")
            continue
        if "://" in port:
            details.append(f"{what}: {port} (not a device: simulator or network)")
            continue
        path = Path(port)
        if not path.exists():
            problems.append(f"{what}: {port} does not exist")
            continue
        real = Path(os.path.realpath(path))
        if not stat.S_ISCHR(real.stat().st_mode):
            problems.append(f"{what}: {port} is not a character device")
            continue
        st = real.stat()
        if user is not None:
            readable, writable = user_access(real, user)
            if not (readable and writable):
                problems.append(
                    f"{what}: {port} ({real}, {_user_name(st.st_uid)}:{_group_name(st.st_gid)} "
                    f"{stat.S_IMODE(st.st_mode):04o}) is not read-write for {user.name}")
                continue
        details.append(f"{what}: {port} -> {real} ok")
    if problems:
        return CheckResult.fail(
            "; ".join(problems),
            "ケーブルを確認し、gatewayd doctor の一覧にあるデバイス名を設定ファイルの port に"
            "書いてください。権限の問題は /etc/udev/rules.d/99-gatewayd.rules を確認してください。",
            "Check the cables; put a device listed above (serial ports / USB devices) into "
            "the configuration's port; for permissions check "
            "/etc/udev/rules.d/99-gatewayd.rules (GROUP dialout/plugdev, MODE 0660) and "
            "`sudo udevadm trigger`.", details)
    return CheckResult.ok("configured devices present and accessible", details)


def check_state_directory(ctx: DoctorContext) -> CheckResult:
    path = ctx.state_dir
    fix_ja = (f"sudo chown {ctx.service_user}: {path} && sudo chmod 0700 {path} を実行するか、"
              "サービスを一度起動してください(systemd が作成します)。")
    fix_en = (f"`sudo chown {ctx.service_user}: {path} && sudo chmod 0700 {path}`, or start "
              "the service once (systemd's StateDirectory= creates and fixes it).")
    if not path.exists():
        return CheckResult.warn(f"{path} does not exist yet", fix_ja, fix_en)
    if not path.is_dir():
        return CheckResult.fail(f"{path} is not a directory", fix_ja, fix_en)
    st = path.stat()
    problems = []
    mode = stat.S_IMODE(st.st_mode)
    if mode != 0o700:
        problems.append(f"mode {mode:04o} (expected 0700)")
    user = service_user_info(ctx.service_user)
    if user is None:
        problems.append(f"user {ctx.service_user} does not exist")
    elif st.st_uid != user.uid:
        problems.append(f"owner {_user_name(st.st_uid)} (expected {user.name})")
    if os.geteuid() in (0, st.st_uid):
        probe = path / f".doctor-{os.getpid()}"
        try:
            probe.write_bytes(b"x")
            probe.unlink()
        except OSError as exc:
            problems.append(f"not writable: {exc.strerror}")
    if problems:
        return CheckResult.fail(f"{path}: " + "; ".join(problems), fix_ja, fix_en)
    return CheckResult.ok(f"{path}: 0700, owner {_user_name(st.st_uid)}, writable")


def check_state_storage(ctx: DoctorContext) -> CheckResult:
    """The state directory must survive a reboot: not on tmpfs or an overlay's RAM layer."""
    try:
        entries = parse_mountinfo((ctx.proc_dir / "self/mountinfo").read_text())
    except OSError as exc:
        return CheckResult.skip(f"cannot read mountinfo: {exc.strerror}")
    path = Path(os.path.realpath(ctx.state_dir))  # resolves the existing part's symlinks
    mount = mount_of(path, entries)
    if mount is None:
        return CheckResult.skip(f"no mount found for {path}")
    try:
        cmdline = (ctx.proc_dir / "cmdline").read_text()
    except OSError:
        cmdline = ""
    overlay_boot = "boot=overlay" in cmdline.split() or "overlayroot=" in cmdline
    fix_ja = ("読み取り専用ルート(オーバーレイ)では /var/lib/gatewayd を永続パーティションに"
              "置いてください(docs/install.md「読み取り専用ルート」参照)。"
              "このままでは再起動でレジのデータが消えます。")
    fix_en = ("With a read-only root (overlay) /var/lib/gatewayd must be on a persistent "
              "partition: bind-mount e.g. /data/gatewayd there (docs/install.md, 'Read-only "
              "root'). As it is, a reboot loses the journal and the freee tokens.")
    where = f"{path} is on {mount.mount_point} ({mount.fstype}, {mount.source})"
    if mount.fstype in RAM_FILESYSTEMS:
        return CheckResult.warn(f"{where}: RAM-backed, lost at reboot", fix_ja, fix_en)
    if overlay_boot and mount.mount_point == "/":
        return CheckResult.warn(f"{where} and the root is an overlay (boot=overlay)",
                                fix_ja, fix_en)
    return CheckResult.ok(where)


def _timedatectl() -> str | None:
    exe = shutil.which("timedatectl")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "show", "-p", "NTPSynchronized", "--value"],
                             capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def check_clock(ctx: DoctorContext, *, now: Callable[[], dt.datetime] | None = None,
                ntp: Callable[[], str | None] = _timedatectl) -> CheckResult:
    current = (now or (lambda: dt.datetime.now(dt.UTC)))()
    if current < EARLIEST_PLAUSIBLE:
        return CheckResult.fail(
            f"system time {current.isoformat(timespec='seconds')} is not plausible",
            "時計が合っていません。ネットワーク接続を確認してください(NTPで自動設定されます)。",
            "The clock was never set: connect the box to a network with Internet access "
            "(systemd-timesyncd sets it), or set it with `sudo date -s`.")
    synced = ntp()
    stamp = current.astimezone().isoformat(timespec="seconds")
    if synced is None:
        return CheckResult.skip(f"time {stamp}; NTP state unknown (no timedatectl)")
    if synced != "yes":
        return CheckResult.warn(
            f"time {stamp} is not synchronised with NTP",
            "ネットワーク接続を確認してください。営業日の日付がずれるおそれがあります。",
            "Check the network (NTP: `timedatectl timesync-status`). The Pi has no "
            "battery clock; a wrong time can date a day wrongly.")
    return CheckResult.ok(f"time {stamp}, synchronised with NTP")


def check_disk_space(ctx: DoctorContext) -> CheckResult:
    path = _existing(ctx.state_dir)
    usage = shutil.disk_usage(path)
    free_mib = usage.free // (1024 * 1024)
    text = f"{free_mib} MiB free on the file system of {ctx.state_dir}"
    fix_ja = "不要なファイルを削除するか、より大きいSDカードに交換してください。"
    fix_en = ("Free space (`sudo journalctl --vacuum-size=50M`, `sudo apt clean`) or move "
              "to a larger card.")
    if usage.free < DISK_FAIL_BYTES:
        return CheckResult.fail(text, fix_ja, fix_en)
    if usage.free < DISK_WARN_BYTES:
        return CheckResult.warn(text, fix_ja, fix_en)
    return CheckResult.ok(text)


def check_freee_secret(ctx: DoctorContext) -> CheckResult:
    path = ctx.credentials_dir / FREEE_CREDENTIAL
    freee = ctx.settings.extra.get("freee") if ctx.settings is not None else None
    in_config = isinstance(freee, dict) and any(k in freee for k in ("client_secret",
                                                                     "client_secret_file"))
    if path.is_file():
        st = path.stat()
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077 or st.st_uid != 0:
            return CheckResult.fail(
                f"{path} is {_user_name(st.st_uid)} {mode:04o} (expected root 0600)",
                f"sudo chown root: {path} && sudo chmod 0600 {path} を実行してください。",
                f"`sudo chown root: {path} && sudo chmod 0600 {path}`.")
        return CheckResult.ok(f"client secret in {path} (LoadCredential=)")
    if in_config:
        return CheckResult.ok("client secret set in the configuration [freee]")
    return CheckResult.warn(
        f"no freee client secret ({path} missing)",
        "freeeアプリのクライアントシークレットを gatewayd-freee.txt としてカードに置き、"
        "再起動してください。",
        f"Put the freee app's client secret in {path} (root 0600), or drop "
        "gatewayd-freee.txt on the boot partition and reboot (gatewayd firstboot).")


def check_boot_partition(ctx: DoctorContext) -> CheckResult:
    boot = ctx.boot_dir
    if not boot.is_dir():
        return CheckResult.skip(f"{boot} not mounted")
    secret = boot / "gatewayd-freee.txt"
    error = boot / "gatewayd.toml.error.txt"
    pending = boot / "gatewayd.toml"
    if secret.exists():
        return CheckResult.fail(
            f"{secret} holds a secret on the FAT partition",
            "sudo gatewayd firstboot を実行してください(秘密情報を安全な場所へ移します)。",
            "Run `sudo gatewayd firstboot` (moves the secret to /etc/credstore and scrubs it "
            "from the card).")
    imager_error = boot / "imager-settings.error.txt"
    if imager_error.exists():
        text = imager_error.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return CheckResult.fail(
            f"Raspberry Pi Imager's settings on {boot} were not applied (see {imager_error})",
            "Imager でカードを書き直すか sysconf.txt を使って再起動し、カードの user-data と "
            "network-config を消してください(Wi-Fi の鍵が入っています)。",
            "Write the card again with Imager, or use sysconf.txt, and reboot; delete "
            "user-data and network-config from the card (they hold the Wi-Fi key).",
            text[:12])
    sysconf = boot / "sysconf.txt"
    if sysconf.exists():
        return CheckResult.warn(
            f"{sysconf} is waiting to be applied (it may hold the Wi-Fi passphrase)",
            "再起動してください(適用後にカードから消えます)。",
            "Reboot: the image applies it and removes it from the card (docs/install.md).")
    if error.exists():
        text = error.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return CheckResult.fail(
            f"{pending} was not imported (see {error})",
            "カードの gatewayd.toml を直し、sudo gatewayd firstboot を実行してください。",
            "Correct gatewayd.toml on the boot partition, then `sudo gatewayd firstboot`.",
            text[:12])
    if pending.exists():
        return CheckResult.warn(
            f"{pending} is waiting to be imported",
            "sudo gatewayd firstboot を実行するか、再起動してください。",
            "Run `sudo gatewayd firstboot` or reboot.")
    return CheckResult.ok(f"nothing pending on {boot}")


for _name, _func in (
    ("configuration", check_configuration),
    ("service user", check_service_user),
    ("serial ports", check_serial_ports),
    ("USB devices", check_usb_devices),
    ("configured devices", check_configured_devices),
    ("state directory", check_state_directory),
    ("state storage", check_state_storage),
    ("clock", check_clock),
    ("disk space", check_disk_space),
    ("freee client secret", check_freee_secret),
    ("boot partition", check_boot_partition),
):
    register_check(_name, _func)
