"""install.sh into a scratch root prefix: twice (the second run changes nothing), uninstall."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "install.sh"
SECRET = "installer-test-secret-0123456789"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash missing")


def probe_wheel(out_dir: Path, version: str = "1.0") -> Path:
    """A tiny dependency wheel: the locked set that install.sh must install (offline)."""
    dist = f"gatewayd_lock_probe-{version}.dist-info"
    files = {
        "gatewayd_lock_probe.py": b"LOCKED = True\n",
        f"{dist}/METADATA": (f"Metadata-Version: 2.1\nName: gatewayd-lock-probe\n"
                             f"Version: {version}\n").encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test_installer\n"
                         b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{name},," for name in files] + [f"{dist}/RECORD,,"]
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"gatewayd_lock_probe-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0)), data)
    return wheel


def write_lock(checkout: Path, wheel: Path, *, digest: str | None = None) -> None:
    """Replace the checkout's requirements.lock by one that pins the probe wheel."""
    digest = digest or hashlib.sha256(wheel.read_bytes()).hexdigest()
    (checkout / "requirements.lock").write_text(
        f"gatewayd-lock-probe==1.0 \\\n    --hash=sha256:{digest}\n")


def build_wheel(out_dir: Path, src: Path = REPO) -> Path:
    """A wheel of the checkout's gatewayd package, built offline (no build backend needed)."""
    version = "0.1.0"
    dist = f"gatewayd-{version}.dist-info"
    files: dict[str, bytes] = {}
    for path in sorted((src / "gatewayd").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files[path.relative_to(src).as_posix()] = path.read_bytes()
    files[f"{dist}/METADATA"] = (f"Metadata-Version: 2.1\nName: gatewayd\nVersion: {version}\n"
                                 ).encode()
    files[f"{dist}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: test_installer\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    files[f"{dist}/entry_points.txt"] = b"[console_scripts]\ngatewayd = gatewayd.cli:main\n"
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = out_dir / f"gatewayd-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))
            zf.writestr(info, data)
    return wheel


def snapshot(root: Path) -> dict[str, str]:
    """A checksum listing of the prefix: path -> type, mode and content hash or link target."""
    listing: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                listing[rel] = "link " + os.readlink(path)
            elif stat.S_ISDIR(st.st_mode):
                listing[rel] = f"dir {stat.S_IMODE(st.st_mode):o}"
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                listing[rel] = f"file {stat.S_IMODE(st.st_mode):o} {digest}"
    return listing


def run_installer(*args: str, script: Path = INSTALL) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHON=sys.executable, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                          env=env, timeout=240, check=False)
    assert proc.returncode == 0, f"install.sh {args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A frozen copy of the checkout: others edit the shared tree while the tests run."""
    dest = tmp_path_factory.mktemp("checkout")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for item in ("gatewayd", "systemd", "etc", "docs"):
        shutil.copytree(REPO / item, dest / item, ignore=ignore)
    for item in ("install.sh", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / item, dest / item)
    write_lock(dest, probe_wheel(dest.parent / "wheelhouse"))  # offline stand-in for the lock
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory, checkout: Path) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"), checkout)


def test_install_twice_then_uninstall(tmp_path: Path, wheel: Path, checkout: Path) -> None:
    if shutil.which("systemctl") is None:
        pytest.skip("systemctl missing: cannot enable units in a prefix")
    root = tmp_path / "root"
    boot = root / "boot/firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text("# pi\n")
    (boot / "gatewayd.toml").write_text(
        (checkout / "etc/gatewayd.toml").read_text().replace(
            "[freee]\n", f'[freee]\nclient_secret = "{SECRET}"\n', 1))
    wheelhouse = checkout.parent / "wheelhouse"
    args = ("--root", str(root), "--wheel", str(wheel),
            "--pip-args", f"--no-index --find-links {wheelhouse}")
    script = checkout / "install.sh"

    first = run_installer(*args, script=script)
    assert "no changes" not in first.stdout
    site = next((root / "opt/gatewayd/venv/lib").glob("python3*/site-packages"))
    assert (site / "gatewayd_lock_probe.py").is_file(), "the locked dependencies were installed"

    units = root / "etc/systemd/system"
    for unit in ("gatewayd.service", "gatewayd-firstboot.service", "gatewayd-retry.timer"):
        assert (units / unit).read_bytes() == (checkout / "systemd" / unit).read_bytes()
    assert os.readlink(units / "multi-user.target.wants/gatewayd.service") == \
        "/etc/systemd/system/gatewayd.service"
    assert (units / "timers.target.wants/gatewayd-retry.timer").is_symlink()
    assert (root / "etc/udev/rules.d/99-gatewayd.rules").is_file()
    assert "gatewayd:" in (root / "etc/passwd").read_text()
    assert "dialout:" in (root / "etc/group").read_text()
    assert stat.S_IMODE((root / "var/lib/gatewayd").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "etc/credstore").stat().st_mode) == 0o700
    gatewayd = root / "opt/gatewayd/venv/bin/gatewayd"
    assert gatewayd.is_file()
    # The boot partition's configuration was imported, its secret moved to the credstore.
    conf = root / "etc/gatewayd/gatewayd.toml"
    assert "[freee]" in conf.read_text() and SECRET not in conf.read_text()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert (root / "etc/credstore/gatewayd.freee-client-secret").read_text() == SECRET
    assert not (boot / "gatewayd.toml").exists()
    assert all(SECRET.encode() not in p.read_bytes() for p in boot.iterdir())

    before = snapshot(root)
    second = run_installer(*args, script=script)
    assert "install.sh: no changes" in second.stdout, second.stdout
    assert snapshot(root) == before

    # The installer's own configuration is kept on an update.
    conf.write_text(conf.read_text() + "# edited by the installer\n")
    third = run_installer(*args, script=script)
    assert "no changes" in third.stdout and "edited by the installer" in conf.read_text()

    removed = run_installer("--root", str(root), "--uninstall")
    assert "no changes" not in removed.stdout
    assert not (units / "gatewayd.service").exists()
    assert not (units / "multi-user.target.wants/gatewayd.service").exists()
    assert not (root / "opt/gatewayd").exists()
    assert not (root / "etc/udev/rules.d/99-gatewayd.rules").exists()
    assert (root / "var/lib/gatewayd").is_dir(), "uninstall must keep the state directory"
    assert conf.is_file() and (root / "etc/credstore/gatewayd.freee-client-secret").is_file()
    assert "no changes" in run_installer("--root", str(root), "--uninstall").stdout

    run_installer("--root", str(root), "--uninstall", "--purge")
    assert not (root / "var/lib/gatewayd").exists()
    assert not (root / "etc/gatewayd").exists()
    assert not (root / "etc/credstore").exists()


CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=abcd-02 rootfstype=ext4 rootwait\n"
IMAGER_FIRSTRUN = """#!/bin/bash
set +e
/usr/lib/raspberrypi-sys-mods/imager_custom enable_ssh
rm -f /boot/firstrun.sh
sed -i 's| systemd.run.*||g' /boot/cmdline.txt
exit 0
"""


def test_prepare_boot_partition_once(tmp_path: Path, checkout: Path) -> None:
    boot = tmp_path / "bootfs"
    boot.mkdir()
    (boot / "cmdline.txt").write_text(CMDLINE)
    script = checkout / "install.sh"
    first = run_installer("--prepare-boot", str(boot), script=script)
    assert "no changes" not in first.stdout
    assert (boot / "gatewayd-installer/install.sh").is_file()
    assert (boot / "gatewayd-installer/gatewayd/firstboot.py").is_file()
    assert (boot / "gatewayd-installer/systemd/gatewayd.service").is_file()
    cmdline = (boot / "cmdline.txt").read_text()
    assert cmdline.count("systemd.run=") == 1 and cmdline.count("\n") == 1
    assert cmdline.startswith(CMDLINE.strip() + " systemd.run=/boot/firmware/firstrun.sh")
    assert "gatewayd-installer/bootstrap.sh" in (boot / "firstrun.sh").read_text()
    subprocess.run(["bash", "-n", str(boot / "gatewayd-installer/bootstrap.sh")], check=True)
    subprocess.run(["bash", "-n", str(boot / "firstrun.sh")], check=True)

    before = snapshot(boot)
    assert "no changes" in run_installer("--prepare-boot", str(boot), script=script).stdout
    assert snapshot(boot) == before


def test_prepare_boot_hooks_into_imager_firstrun(tmp_path: Path, checkout: Path) -> None:
    boot = tmp_path / "bootfs"
    boot.mkdir()
    (boot / "cmdline.txt").write_text(
        CMDLINE.strip() + " systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot"
        " systemd.unit=kernel-command-line.target\n")
    (boot / "firstrun.sh").write_text(IMAGER_FIRSTRUN)
    run_installer("--prepare-boot", str(boot), script=checkout / "install.sh")
    run_installer("--prepare-boot", str(boot), script=checkout / "install.sh")
    lines = (boot / "firstrun.sh").read_text().splitlines()
    hooks = [i for i, line in enumerate(lines) if "gatewayd-installer/bootstrap.sh" in line]
    assert len(hooks) == 1
    assert lines[hooks[0] + 1] == "rm -f /boot/firstrun.sh"  # before Imager removes itself
    assert "enable_ssh" in lines[2]
    assert (boot / "cmdline.txt").read_text().count("systemd.run=") == 1


def test_installer_refuses_a_dependency_whose_hash_differs(
    tmp_path: Path, wheel: Path, checkout: Path
) -> None:
    """A tampered file in the wheel source (or a swapped mirror) stops the install."""
    copy = tmp_path / "checkout"
    shutil.copytree(checkout, copy)
    wheelhouse = checkout.parent / "wheelhouse"
    write_lock(copy, next(wheelhouse.glob("*.whl")), digest="0" * 64)
    env = dict(os.environ, PYTHON=sys.executable, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(
        ["bash", str(copy / "install.sh"), "--root", str(tmp_path / "root"), "--wheel",
         str(wheel), "--pip-args", f"--no-index --find-links {wheelhouse}"],
        capture_output=True, text=True, env=env, timeout=240, check=False)
    assert proc.returncode != 0
    assert "hash" in proc.stderr.lower(), proc.stderr
    assert not (tmp_path / "root/opt/gatewayd/venv/bin/gatewayd").exists()


def test_installer_installs_only_with_hashes() -> None:
    """install.sh's dependency step is pip --require-hashes on the lock, nothing else."""
    text = INSTALL.read_text()
    pip_lines = [ln for ln in text.splitlines() if "-m pip install" in ln]
    assert pip_lines, "no pip install in install.sh"
    joined = text.replace("\\\n", " ")
    assert "--require-hashes --no-deps $PIP_ARGS -r \"$SRC/requirements.lock\"" in joined
    assert "--force-reinstall --no-deps" in joined  # gatewayd itself: no dependency resolution


def test_lock_file_pins_every_dependency_with_hashes() -> None:
    """requirements.lock (scripts/lock.sh) covers pyproject's dependencies, all hashed."""
    import re
    import tomllib

    lock = (REPO / "requirements.lock").read_text()
    assert "uv" in lock.splitlines()[0]  # made by the standard tool, not by hand
    entry = (r"^([A-Za-z0-9_.-]+)==(\S+)(?: ;[^\\\n]*)?"
             r"((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})+)")
    entries = re.findall(entry, lock, flags=re.M)
    pinned = {name.lower().replace("_", "-") for name, _, _ in entries}
    requirement_lines = [ln for ln in lock.splitlines() if re.match(r"^[A-Za-z0-9]", ln)]
    assert len(entries) == len(requirement_lines), "a requirement without hashes"
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        name = re.match(r"[A-Za-z0-9_.-]+", dep)
        assert name is not None
        assert name.group(0).lower().replace("_", "-") in pinned, f"{dep} not in the lock"
