"""gatewayd doctor: checks, fixes in both languages, registry and the command."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import pty
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatewayd import doctor
from gatewayd.cli import doctor as doctor_cli
from gatewayd.cli import main
from gatewayd.config import load_settings

CONFIG = """\
state_dir = "{state}"

[[registers]]
store_code = "0001"
terminal_no = "01"
port = "{port}"
"""


@pytest.fixture
def pty_port() -> Iterator[str]:
    master, slave = pty.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def _ctx(tmp_path: Path, port: str, **kw: object) -> doctor.DoctorContext:
    state = tmp_path / "state"
    state.mkdir(mode=0o700, exist_ok=True)
    os.chmod(state, 0o700)
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG.format(state=state, port=port))
    ctx = doctor_cli.make_context(cfg, boot_dir=tmp_path / "boot",
                                  service_user=getpass.getuser(),
                                  credentials_dir=tmp_path / "credstore")
    for key, value in kw.items():
        setattr(ctx, key, value)
    return ctx


def test_good_box_has_no_failures(tmp_path: Path, pty_port: str) -> None:
    ctx = _ctx(tmp_path, pty_port)
    checks = [c for c in doctor.CHECKS if c.name in (
        "configuration", "configured devices", "state directory", "disk space",
        "state storage")]
    results = dict(doctor.run_checks(ctx, checks))
    assert {n: r.status for n, r in results.items()} == {
        "configuration": "ok", "configured devices": "ok", "state directory": "ok",
        "disk space": "ok", "state storage": "ok"}
    assert pty_port in results["configured devices"].details[0]


def test_every_problem_has_a_fix_in_both_languages(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[[registers]]\nstore_code = '0001'\n")
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "gatewayd-freee.txt").write_text("secret")
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    os.chmod(state, 0o755)
    ctx = doctor.DoctorContext(cfg, None, "registers[0].terminal_no: missing", state,
                               "no-such-user-gw", boot, tmp_path / "cred")
    results = dict(doctor.run_checks(ctx))
    assert results["configuration"].status == "fail"
    assert "terminal_no" in results["configuration"].message
    assert results["state directory"].status == "fail"
    assert "0755" in results["state directory"].message
    assert results["boot partition"].status == "fail"
    assert results["service user"].status == "fail"
    assert results["freee client secret"].status == "warn"
    for name, res in results.items():
        if res.status in ("warn", "fail"):
            assert res.fix_ja and res.fix_en, name
            assert any("\u3040" <= ch <= "\u30ff" for ch in res.fix_ja), name  # kana


def test_missing_and_unreadable_devices_fail(tmp_path: Path, pty_port: str) -> None:
    ctx = _ctx(tmp_path, "/dev/gatewayd/no-such-register")
    res = doctor.check_configured_devices(ctx)
    assert res.status == "fail" and "does not exist" in res.message
    assert res.fix_ja and res.fix_en

    plain = tmp_path / "not-a-tty"
    plain.write_text("")
    res = doctor.check_configured_devices(_ctx(tmp_path, str(plain)))
    assert res.status == "fail" and "not a character device" in res.message

    os.chmod(pty_port, 0o600)  # only its owner may open it
    ctx = _ctx(tmp_path, pty_port, service_user="nobody")
    if doctor.service_user_info("nobody") is None or os.stat(pty_port).st_uid == \
            doctor.service_user_info("nobody").uid:  # type: ignore[union-attr]
        pytest.skip("no separate 'nobody' user here")
    res = doctor.check_configured_devices(ctx)
    assert res.status == "fail" and "not read-write for nobody" in res.message


def test_user_access_by_group(tmp_path: Path) -> None:
    node = tmp_path / "node"
    node.write_text("")
    os.chmod(node, 0o660)
    st = node.stat()
    member = doctor.UserInfo("svc", st.st_uid + 1000, frozenset({st.st_gid}))
    stranger = doctor.UserInfo("other", st.st_uid + 1000, frozenset({st.st_gid + 1000}))
    assert doctor.user_access(node, member) == (True, True)
    assert doctor.user_access(node, stranger) == (False, False)


def test_simulator_urls_are_not_devices(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "loop://")
    res = doctor.check_configured_devices(ctx)
    assert res.status == "ok" and "not a device" in res.details[0]


MOUNTINFO = """\
22 1 179:2 / / ro,noatime shared:1 - overlay overlayroot rw,lowerdir=/media/root-ro
25 22 179:3 / /data rw,noatime shared:5 - ext4 /dev/mmcblk0p3 rw
26 22 179:3 /gatewayd /var/lib/gatewayd rw,noatime shared:5 - ext4 /dev/mmcblk0p3 rw
27 22 0:5 / /run rw,nosuid shared:6 - tmpfs tmpfs rw
28 22 0:6 / /mnt/with\\040space rw - tmpfs tmpfs rw
"""


def test_mountinfo_parsing_and_lookup() -> None:
    entries = doctor.parse_mountinfo(MOUNTINFO)
    assert [e.fstype for e in entries] == ["overlay", "ext4", "ext4", "tmpfs", "tmpfs"]
    assert entries[4].mount_point == "/mnt/with space"
    def fstype(path: str) -> str | None:
        entry = doctor.mount_of(Path(path), entries)
        return None if entry is None else f"{entry.mount_point} {entry.fstype}"

    assert fstype("/var/lib/gatewayd/journal.db") == "/var/lib/gatewayd ext4"
    assert fstype("/var/lib/gatewayd") == "/var/lib/gatewayd ext4"
    assert fstype("/var/lib/gatewayd2") == "/ overlay"
    assert fstype("/run/x") == "/run tmpfs"


@pytest.mark.parametrize(
    ("mountinfo", "cmdline", "state", "expected"),
    [
        (MOUNTINFO, "console=tty1 overlayroot=tmpfs", "/var/lib/gatewayd", "ok"),
        (MOUNTINFO, "console=tty1 overlayroot=tmpfs", "/var/lib/elsewhere", "warn"),
        ("1 0 8:1 / / rw - ext4 /dev/root rw\n", "boot=overlay", "/var/lib/gatewayd", "warn"),
        ("1 0 8:1 / / rw - ext4 /dev/root rw\n", "quiet", "/var/lib/gatewayd", "ok"),
        ("1 0 8:1 / / rw - ext4 /dev/root rw\n2 1 0:1 / /var/lib rw - tmpfs tmpfs rw\n",
         "quiet", "/var/lib/gatewayd", "warn"),
    ],
)
def test_state_on_ram_backed_storage_warns(
    tmp_path: Path, mountinfo: str, cmdline: str, state: str, expected: str
) -> None:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self/mountinfo").write_text(mountinfo)
    (proc / "cmdline").write_text(cmdline)
    ctx = doctor.DoctorContext(tmp_path / "x.toml", None, None, Path(state), "gatewayd",
                               proc_dir=proc)
    res = doctor.check_state_storage(ctx)
    assert res.status == expected, res.message
    if expected == "warn":
        assert "persistent" in res.fix_en


def test_clock(tmp_path: Path) -> None:
    ctx = doctor.DoctorContext(tmp_path / "x.toml", None, None, tmp_path, "gatewayd")
    now = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    assert doctor.check_clock(ctx, now=lambda: now, ntp=lambda: "yes").status == "ok"
    assert doctor.check_clock(ctx, now=lambda: now, ntp=lambda: "no").status == "warn"
    assert doctor.check_clock(ctx, now=lambda: now, ntp=lambda: None).status == "skip"
    old = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert doctor.check_clock(ctx, now=lambda: old, ntp=lambda: "yes").status == "fail"


def test_disk_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = doctor.DoctorContext(tmp_path / "x.toml", None, None, tmp_path / "state", "gatewayd")
    for free, expected in ((10 << 20, "fail"), (100 << 20, "warn"), (1 << 30, "ok")):
        usage = shutil._ntuple_diskusage(1 << 34, (1 << 34) - free, free)
        monkeypatch.setattr(shutil, "disk_usage", lambda _p, u=usage: u)
        assert doctor.check_disk_space(ctx).status == expected


def test_secret_permissions(tmp_path: Path) -> None:
    cred = tmp_path / "cred"
    cred.mkdir()
    secret = cred / doctor.FREEE_CREDENTIAL
    secret.write_text("x")
    ctx = doctor.DoctorContext(tmp_path / "x.toml", None, None, tmp_path, "gatewayd",
                               credentials_dir=cred)
    os.chmod(secret, 0o644)
    assert doctor.check_freee_secret(ctx).status == "fail"
    os.chmod(secret, 0o600)
    expected = "ok" if os.geteuid() == 0 else "fail"  # must be root's
    assert doctor.check_freee_secret(ctx).status == expected


def test_registry_external_and_crashing_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(doctor, "CHECKS", [])
    monkeypatch.setattr(doctor, "EXTERNAL_CHECKS", {"freee link": "gatewayd.nowhere:check"})

    def crash(ctx: doctor.DoctorContext) -> doctor.CheckResult:
        raise RuntimeError("boom")

    doctor.register_check("drawer calibration", lambda ctx: doctor.CheckResult.warn(
        "not calibrated", "較正してください", "calibrate"))
    doctor.register_check("crashy", crash)
    doctor.register_check("drawer calibration",  # same name replaces
                          lambda ctx: doctor.CheckResult.ok("calibrated"))
    ctx = doctor.DoctorContext(tmp_path / "x.toml", None, None, tmp_path, "gatewayd")
    results = doctor.run_checks(ctx)
    assert [(n, r.status) for n, r in results] == [
        ("drawer calibration", "ok"), ("crashy", "fail"), ("freee link", "skip")]
    assert "boom" in results[1][1].message


def test_command_json_and_exit_code(
    tmp_path: Path, pty_port: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG.format(state=state, port=pty_port))
    assert load_settings(cfg).registers[0].port == pty_port
    keep = {"configuration", "configured devices", "state directory"}
    monkeypatch.setattr(doctor, "CHECKS", [c for c in doctor.CHECKS if c.name in keep])
    monkeypatch.setattr(doctor, "EXTERNAL_CHECKS", {})
    argv = ["doctor", "--config", str(cfg), "--json", "--user", getpass.getuser(),
            "--boot-dir", str(tmp_path / "boot")]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True
    assert {c["name"]: c["status"] for c in data["checks"]} == dict.fromkeys(keep, "ok")

    cfg.write_text(CONFIG.format(state=state, port="/dev/nope"))
    assert main(argv) == 1
    text_argv = [a for a in argv if a != "--json"]
    assert main(text_argv) == 1
    out = capsys.readouterr().out
    assert "[FAIL] configured devices" in out and "修正:" in out and "fix:" in out


def test_boot_partition_reports_imagers_refused_settings_and_a_waiting_sysconf(
        tmp_path: Path) -> None:
    """The image's gatewayd-sysconf leaves imager-settings.error.txt beside a refused Imager
    file: the installer's doctor run says so, with the reason from the file."""
    from gatewayd.cli.imager_settings import convert

    ctx = _ctx(tmp_path, "/dev/null")
    boot = ctx.boot_dir
    boot.mkdir()
    assert doctor.check_boot_partition(ctx).status == "ok"
    (boot / "sysconf.txt").write_text("hostname=shop-gw\n")
    res = doctor.check_boot_partition(ctx)
    assert res.status == "warn" and "sysconf.txt" in res.message
    (boot / "sysconf.txt").unlink()
    (boot / "user-data").write_text("hostname: bad_name!\n")
    assert convert(boot, dt.datetime(2026, 3, 10, tzinfo=dt.UTC))[0] == 1
    res = doctor.check_boot_partition(ctx)
    assert res.status == "fail" and "Imager" in res.message
    assert any("user-data.hostname" in line for line in res.details)
    assert res.fix_ja and res.fix_en
