"""Boot smoke test of the arm64 card image in qemu-system-aarch64 (TCG): it boots, the
root partition grows to the card, the card's configuration, Raspberry Pi Imager's OS
customisation (host name, time zone, a user with an SSH key, Wi-Fi: its cloud-init files) and
``sysconf.txt`` are applied, the unit reaches READY, the page answers. Before booting, the
files each Raspberry Pi model boots from are checked on the card. Prints the time of each
step.

    sudo .venv/bin/python bench/image_smoke.py dist/gatewayd-0.1.0-arm64.img

The image is copied (never changed) and the copy made 4 GiB larger, as a card bigger than the
image is. Its boot partition gets what an installer drops there (``gatewayd.toml``, with the
page on 0.0.0.0 so that QEMU's ``hostfwd`` reaches it), its root partition the page's
password file as ``gatewayd passwd`` writes it (through ``debugfs``: no mount, no loop
device). QEMU's ``virt`` board is not a Raspberry Pi: the kernel and initrd that Debian's
raspi-firmware put on the boot partition are booted directly, with the whole card as the
virtio disk; that checks the partitions, the root file system's growth, systemd, the units
and gatewayd on arm64, not the Pi's firmware.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from cryptography import x509

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))

from vm import VM, VMConfig, free_port

from gatewayd.web.password import hash_password

PASSWORD = "smoke-test-pass-01"
CONFIG = """state_dir = "/var/lib/gatewayd"
[[registers]]
store_code = "0001"
terminal_no = "01"
port = "/dev/gatewayd/register"
[freee]
client_id = "smoke-test"
[web]
address = "0.0.0.0"
port = 8080
"""

# What Raspberry Pi Imager 2 writes for its OS customisation (CustomisationGenerator with
# init_format cloudinit): host name, time zone, a user with a password and an SSH key, Wi-Fi
# (the key derived from the passphrase), and a bootfs/sysconf.txt the installer added by hand,
# whose line wins over Imager's (docs/install.md, step 3).
USER_HASH = "$5$smokesalt$NLrVfgnyY6cWrPjXWqsFzcWg9tCeWKLv6CfdKUv9GBC"  # openssl passwd -5
SSH_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNtb2tlLXRlc3Qta2V5LW5vdC1hLXJlYWwtb25lISE"
           " smoke@laptop")
WIFI_KEY = "bc966cc4f1f02df3f1c6d36cde0caa0bba83721c0c60ee6a0698163a9eabf010"  # smoke-pass-123
USER_DATA = f"""#cloud-config
manage_resolv_conf: false

hostname: smoke-gw
manage_etc_hosts: true
packages:
- avahi-daemon
timezone: Europe/London
keyboard:
  model: pc105
  layout: "jp"
user:
  name: ops
  shell: /bin/bash
  lock_passwd: false
  passwd: "{USER_HASH}"
  ssh_authorized_keys:
    - "{SSH_KEY}"
  sudo: null

ssh_pwauth: false

runcmd:
  - [ systemctl, enable, --now, ssh ]
"""
NETWORK_CONFIG = f"""network:
  version: 2
  ethernets:
    eth0:
      dhcp4: true
      optional: true
  wifis:
    wlan0:
      dhcp4: true
      regulatory-domain: "GB"
      access-points:
        "smoke-shop":
          password: "{WIFI_KEY}"
      optional: true
"""
SYSCONF = """# smoke test: the installer's own line wins over Imager's
wifi_country=JP
"""


def run(*cmd: str, **kw: object) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout  # type: ignore[call-overload, no-any-return]


def partitions(image: Path) -> list[tuple[int, int]]:
    table = json.loads(run("sfdisk", "-J", str(image)))["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    return [(p["start"] * sector, p["size"] * sector) for p in table["partitions"]]


def console_text(vm: VM) -> str:
    """The serial console without its colour codes (systemd colours the unit names)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", vm.console.read_text("utf-8", "replace"))


ALLOWED_FAILURES: set[str] = set()  # --allow-failed


def failed(vm: VM) -> None:
    """Fail at once when the console says a unit failed to start (gatewayd's or any)."""
    # the console shortens long names ("ssh.servic…"): a known unit's name starts so
    names = set(re.findall(r"Failed to start ([\w@.:-]+)", console_text(vm)))
    failures = sorted(n for n in names if not any(a.startswith(n) for a in ALLOWED_FAILURES))
    if failures:
        vm.fail(f"units failed to start: {', '.join(failures)}")


def extract(image: Path, start: int, size: int, dest: Path) -> None:
    run("dd", f"if={image}", f"of={dest}", "bs=1M", f"skip={start}", f"count={size}",
        "iflag=skip_bytes,count_bytes", "conv=sparse", "status=none")


# What each Raspberry Pi model's firmware looks for on the boot partition (docs/install.md,
# "Models"), and what the kernel must bring for the Pi 5's USB ports (its RP1 south bridge).
PI_BOOT_FILES = {
    "3B+": ["bootcode.bin", "start.elf", "fixup.dat", "bcm2837-rpi-3-b-plus.dtb"],
    "4/400": ["start4.elf", "fixup4.dat", "bcm2711-rpi-4-b.dtb", "bcm2711-rpi-400.dtb"],
    "5": ["bcm2712-rpi-5-b.dtb", "bcm2712-d-rpi-5-b.dtb", "bcm2712d0-rpi-5-b.dtb"],
}
PI5_MODULES = ["rp1_pci", "clk-rp1", "pinctrl-rp1", "dwc3", "ftdi_sio"]
PI5_DT_NODES = [b"usb@40200000", b"usb@40300000"]  # RP1's two USB controllers


def check_pi_boot(fat: str, root: Path, kernel: str, work: Path) -> list[str]:
    """The files a real Pi boots from, which QEMU's virt board does not read: what is missing."""
    missing: list[str] = []
    listing = set(run("mdir", "-b", "-i", fat, "::").split())
    present = {name.rsplit("/", 1)[-1] for name in listing}
    for model, files in PI_BOOT_FILES.items():
        missing += [f"{f} (Pi {model})" for f in files if f not in present]
    config = run("mtype", "-i", fat, "::config.txt")
    wants = re.findall(r"^(?:kernel=|initramfs )(\S+)", config, re.M)
    if len(wants) != 2:
        missing.append("kernel= and initramfs lines in config.txt")
    missing += [f"{w} (config.txt names it)" for w in wants if w not in present]
    cmdline = run("mtype", "-i", fat, "::cmdline.txt")
    if "root=LABEL=rootfs" not in cmdline:
        missing.append("root=LABEL=rootfs in cmdline.txt")
    if "cma=" in cmdline:
        missing.append("cmdline.txt without cma= (a Pi 4 does not boot with cma=64M)")
    if "bcm2712-rpi-5-b.dtb" in present:
        run("mcopy", "-n", "-i", fat, "::bcm2712-rpi-5-b.dtb", str(work / "pi5.dtb"))
        dtb = (work / "pi5.dtb").read_bytes()
        missing += [f"{n.decode()} in bcm2712-rpi-5-b.dtb" for n in PI5_DT_NODES if n not in dtb]
    version = kernel.removeprefix("vmlinuz-")
    deps = run("debugfs", "-R", f"cat /usr/lib/modules/{version}/modules.dep", str(root))
    found = {Path(line.split(":", 1)[0]).name.split(".ko")[0] for line in deps.splitlines()}
    missing += [f"module {m} (Pi 5 USB)" for m in PI5_MODULES if m not in found]
    return missing


def sysconf_applied(root: Path, card_names: list[str], cert_names: list[str]) -> str:
    """What of Imager's settings and SYSCONF is not so on the powered-off card ("" when all
    is)."""
    wrong: list[str] = []
    for name in ("sysconf.txt", "user-data", "network-config"):
        if f"::/{name}" in card_names:
            wrong.append(f"{name} still on the card (it holds the Wi-Fi key)")
    if "::/imager-settings.error.txt" in card_names:
        wrong.append("Imager's settings refused (imager-settings.error.txt)")
    if run("debugfs", "-R", "cat /etc/hostname", str(root)).strip() != "smoke-gw":
        wrong.append("/etc/hostname")
    if "smoke-gw.local" not in cert_names:
        wrong.append("the page's certificate does not name smoke-gw.local")
    if run("debugfs", "-R", "cat /etc/timezone", str(root)).strip() != "Europe/London":
        wrong.append("/etc/timezone")
    wpa = "/etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
    conf = run("debugfs", "-R", f"cat {wpa}", str(root))
    if (f"ssid={b'smoke-shop'.hex()}\n" not in conf or f"psk={WIFI_KEY}\n" not in conf
            or "country=JP\n" not in conf):
        wrong.append(f"{wpa}: {conf!r}")
    elif "Mode:  0600" not in run("debugfs", "-R", f"stat {wpa}", str(root)):
        wrong.append(f"{wpa} readable by others")
    passwd = run("debugfs", "-R", "cat /etc/passwd", str(root))
    if not re.search(r"^ops:x:\d+:\d+:[^:]*:/home/ops:/bin/bash$", passwd, flags=re.M):
        wrong.append("user ops not in /etc/passwd")
    if f"ops:{USER_HASH}:" not in run("debugfs", "-R", "cat /etc/shadow", str(root)):
        wrong.append("ops's password hash not in /etc/shadow")
    keys = "/home/ops/.ssh/authorized_keys"
    if run("debugfs", "-R", f"cat {keys}", str(root)).strip() != SSH_KEY:
        wrong.append(keys)
    sshd = run("debugfs", "-R", "cat /etc/ssh/sshd_config.d/50-gatewayd-sysconf.conf", str(root))
    if sshd.strip() != "PasswordAuthentication no":
        wrong.append(f"sshd: {sshd!r}")
    return "; ".join(wrong)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the boot")
    parser.add_argument("--allow-failed", action="append", default=[], metavar="UNIT",
                        help="a unit whose failure is known, e.g. ssh.service")
    args = parser.parse_args()
    ALLOWED_FAILURES.update(args.allow_failed)
    tools = {"qemu-system-aarch64": "qemu-system-arm", "debugfs": "e2fsprogs",
             "mcopy": "mtools", "sfdisk": "fdisk"}
    missing_tools = sorted({pkg for cmd, pkg in tools.items() if shutil.which(cmd) is None})
    if missing_tools:
        print(f"image_smoke: needs {' '.join(missing_tools)}: "
              f"apt-get install -y {' '.join(missing_tools)}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gatewayd-smoke.", dir="/var/tmp") as tmp:
        work = Path(tmp)
        card = work / "card.img"
        run("cp", "--sparse=always", str(args.image), str(card))
        before = partitions(card)
        (boot_at, _), (root_at, root_size) = before[:2]
        with card.open("r+b") as f:
            f.truncate(card.stat().st_size + 4 * 2**30)
        fat = f"{card}@@{boot_at}"
        # The password file into the root partition (out, debugfs, back in); the kernel and
        # initrd out of it.
        root = work / "root.ext4"
        extract(card, root_at, root_size, root)
        names = run("debugfs", "-R", "ls -p /boot", str(root))
        kernel = sorted(re.findall(r"/(vmlinuz-[^/]+)/", names))[-1]
        initrd = sorted(re.findall(r"/(initrd\.img-[^/]+)/", names))[-1]
        run("debugfs", "-R", f"dump /boot/{kernel} {work / 'vmlinuz'}", str(root))
        run("debugfs", "-R", f"dump /boot/{initrd} {work / 'initrd.img'}", str(root))
        missing = check_pi_boot(fat, root, kernel, work)
        if missing:
            print(f"image_smoke: FAIL: not on the card: {', '.join(missing)}", flush=True)
            return 1
        print(f"image_smoke: the Pi 3B+/4/5 boot files and the Pi 5's RP1 modules are on the card"
              f" ({kernel})", flush=True)
        (work / "gatewayd.toml").write_text(CONFIG, encoding="utf-8")
        run("mcopy", "-i", fat, str(work / "gatewayd.toml"), "::gatewayd.toml")
        for name, text in (("sysconf.txt", SYSCONF), ("user-data", USER_DATA),
                           ("network-config", NETWORK_CONFIG)):
            (work / name).write_text(text, encoding="utf-8")
            run("mcopy", "-i", fat, str(work / name), f"::{name}")
        (work / "web-password").write_text(hash_password(PASSWORD) + "\n", encoding="utf-8")
        passwd = run("debugfs", "-R", "cat /etc/passwd", str(root))
        uid = next(line.split(":")[2:4] for line in passwd.splitlines()
                   if line.startswith("gatewayd:"))
        cmds = (f"write {work / 'web-password'} /var/lib/gatewayd/web-password\n"
                f"sif /var/lib/gatewayd/web-password uid {uid[0]}\n"
                f"sif /var/lib/gatewayd/web-password gid {uid[1]}\n"
                "sif /var/lib/gatewayd/web-password mode 0100600\n")
        subprocess.run(["debugfs", "-w", "-f", "-", str(root)], input=cmds, text=True,
                       check=True, capture_output=True)
        run("dd", f"if={root}", f"of={card}", "bs=1M", f"seek={root_at}",
            "oflag=seek_bytes", "conv=notrunc,sparse", "status=none")
        root.unlink()
        prep = time.monotonic() - t0
        page = free_port()
        vm = VM(VMConfig(
            run_dir=work, kernel=work / "vmlinuz", initrd=work / "initrd.img", root=card,
            hostfwd={page: 8080}, qemu="qemu-system-aarch64",
            machine=["-machine", "virt", "-cpu", "cortex-a72"], memory_mb=1024, cpus=2,
            root_arg="root=LABEL=rootfs rw console=ttyAMA0",
        ))
        print(f"image_smoke: prepared in {prep:.0f} s; booting (TCG, aarch64)", flush=True)
        t1 = time.monotonic()
        vm.start()
        try:
            # The console stops showing unit status once the login prompt holds it, so the
            # page tells: the daemon starts it just before READY=1 (gatewayd/daemon.py).

            def answers() -> bool:
                failed(vm)
                try:
                    return httpx.get(f"https://127.0.0.1:{page}/healthz", timeout=10,
                                     verify=False).status_code == 200
                except httpx.HTTPError:
                    return False

            ready = vm.wait_until("the status page to answer", answers, args.timeout, 5.0)
            print(f"image_smoke: the page answers {ready:.0f} s after power-on", flush=True)
            # Beyond loopback the page speaks HTTPS with the box's own self-signed
            # certificate (made at its first start): a smoke test takes it unchecked.
            with httpx.Client(base_url=f"https://127.0.0.1:{page}", timeout=30,
                              verify=False) as http:
                login = http.get("/login")
                token = re.search(r'name="csrf" value="([^"]+)"', login.text)
                assert token, "no CSRF on /login"
                resp = http.post("/login", data={"csrf": token.group(1),
                                                 "password": PASSWORD, "next": "/"})
                assert resp.status_code == 303, resp.status_code
                home = http.get("/")
                assert home.status_code == 200, home.status_code
                api = http.get("/api/status")
                assert api.status_code == 200, api.status_code
                print(f"image_smoke: /api/status: {api.text[:300]}", flush=True)
            total = time.monotonic() - t1
            print(f"image_smoke: page answered and login worked {total:.0f} s after power-on",
                  flush=True)
            # sysconf.txt ran before gatewayd's first start: its certificate names the host.
            pem = ssl.get_server_certificate(("127.0.0.1", page), timeout=30)
            cert = x509.load_pem_x509_certificate(pem.encode())
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            cert_names = san.get_values_for_type(x509.DNSName)
            time.sleep(30)  # the import's and the growth's writes reach the disk
            failed(vm)
        finally:
            vm.kill()
        after = partitions(card)
        grown = after[1][1] - before[1][1]
        card_names = run("mdir", "-b", "-i", fat, "::").split()
        imported = ("::/gatewayd.toml" not in card_names
                    and "::/gatewayd.toml.imported.txt" in card_names)
        print(f"image_smoke: root partition grew by {grown / 2**30:.2f} GiB "
              f"({before[1][1] / 2**20:.0f} -> {after[1][1] / 2**20:.0f} MiB); "
              f"gatewayd.toml imported from the boot partition: {imported}")
        root = work / "root.ext4"
        extract(card, after[1][0], after[1][1], root)
        # The VM was killed: what ext4 committed is in its journal, which debugfs does not
        # read. e2fsck replays it (on this copy), as the next boot would.
        fsck = subprocess.run(["e2fsck", "-fy", str(root)], capture_output=True, text=True)
        if fsck.returncode not in (0, 1):
            print(f"image_smoke: FAIL: e2fsck of the root after the run: {fsck.stdout[-500:]}")
            return 1
        sysconf = sysconf_applied(root, card_names, cert_names)
        root.unlink()
        print(f"image_smoke: Imager's settings and sysconf.txt: "
              f"{sysconf or 'applied and removed'} "
              f"(certificate names: {', '.join(cert_names)})")
        if grown < 3 * 2**30 or not imported or sysconf:
            print("image_smoke: FAIL", flush=True)
            return 1
    print(f"image_smoke: total {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
