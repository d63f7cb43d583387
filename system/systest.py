"""The system test: the box booted under systemd in QEMU, checked from outside and inside.

Run by ``scripts/system-test.sh`` (which builds or reuses the cached root file system and the
wheelhouse) with the project's virtualenv. Host side: the freee emulator, the register and
printer simulators (on ptys wired to emulated FTDI adapters), QEMU. Guest side:
``system/guest/agent.py`` on a virtio-serial port. Boots:

A. provisioning: ``install.sh --wheel ... --pip-args "--no-index --find-links ..."`` from the
   payload disk (the guest reaches no registry), the udev rules filled in with the adapters'
   serial numbers as an installer does, the page's password; power off.
B. first boot with ``gatewayd.toml`` and ``gatewayd-freee.txt`` on the FAT "bootfs" disk:
   import, unit READY, security exposure, devices, link freee through the page, three days
   to freee once with their slips, the page, the watchdog (SIGSTOP, SIGKILL), a reboot.
   Then a reboot with an invalid ``gatewayd.toml`` put on the card: ``.error.txt``, the box
   resumes on its imported configuration, nothing lost or doubled.

Prints one line per check and the time of each phase; exits non-zero on the first failure
with the guest console's tail.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vm import VM, GuestError, UsbSerial, VMConfig, free_port

from gatewayd.cli.demo import approve
from gatewayd.sim.freee.server import EmulatorServer
from gatewayd.sim.journal_gen import generate_journal
from gatewayd.sim.printer import PtyPrinterSimulator
from gatewayd.sim.register import RegisterSimulator

REGISTER_SERIAL = "GWREG0001"
PRINTER_SERIAL = "GWPRN0001"
CLIENT_ID = "gatewayd-systest"
PASSWORD = "systest-pass-0001"
RELAY_PORT = 18080  # the guest's 127.0.0.1 relay to the host's emulator (see guest/)
GUESTFWD = "10.0.2.100:80"
REGISTER_ID = "0001-01"
DAYS = 5  # 1-3: the main flow; 4: closed while the daemon is frozen; 5: across a reboot
WATCHDOG_SEC = 60
RESTART_SEC = 15
MARGIN = 30
VENV = "/opt/gatewayd/venv/bin"
AS_GW = "runuser -u gatewayd --"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ok(msg: str) -> None:
    log(f"ok   {msg}")


class Failure(Exception):
    pass


def require(cond: object, msg: str) -> None:
    if not cond:
        raise Failure(msg)


# ---------------------------------------------------------------------------- host files

def guest_config(bad: bool = False) -> str:
    extra = 'colour = "blue"\n' if bad else ""
    return f"""# gatewayd.toml dropped on the boot partition by the system test
state_dir = "/var/lib/gatewayd"
poll_interval = 0.5
{extra}
[logging]
level = "info"

[[registers]]
store_code = "0001"
terminal_no = "01"
store_name = "試験店"
port = "/dev/gatewayd/register"
baudrate = 115200

[mapping]
granularity = "summary"
tags = ["POS"]

[mapping.tax_names]
"0" = "非課売上"

[freee]
api_base_url = "http://127.0.0.1:{RELAY_PORT}"
auth_base_url = "http://127.0.0.1:{RELAY_PORT}"
client_id = "{CLIENT_ID}"

[printer]
device = "/dev/gatewayd/printer"
baudrate = 9600
poll_interval = 1.0

[slip]
enabled = true

[web]
address = "0.0.0.0"
port = 8080
"""


def make_fat(path: Path, files: dict[str, str]) -> None:
    """A FAT32 disk labelled like Raspberry Pi OS's boot partition (bootfs)."""
    path.unlink(missing_ok=True)
    subprocess.run(["mkfs.vfat", "-F", "32", "-n", "bootfs", "-C", str(path), "131072"],
                   check=True, stdout=subprocess.DEVNULL)
    for name, text in files.items():
        src = path.parent / f".{name}"
        src.write_text(text, encoding="utf-8")
        subprocess.run(["mcopy", "-i", str(path), str(src), f"::{name}"], check=True)
        src.unlink()


def fat_names(path: Path) -> list[str]:
    out = subprocess.run(["mdir", "-b", "-i", str(path), "::"], check=True,
                         capture_output=True, text=True).stdout
    return sorted(line.strip().removeprefix("::/") for line in out.splitlines() if line.strip())


def make_payload(work: Path, repo: Path, wheels: Path) -> Path:
    """The ext4 disk (label systest) with the agent, the checkout and the wheelhouse."""
    tree = work / "payload"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "src").mkdir(parents=True)
    files = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = raw.decode()
        src = repo / rel
        if not src.is_file():
            continue
        dest = tree / "src" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
    shutil.copytree(wheels, tree / "wheels")
    shutil.copytree(repo / "system" / "guest", tree / "guest")
    shutil.copy2(repo / "system" / "guest" / "agent.py", tree / "agent.py")
    image = work / "payload.img"
    image.unlink(missing_ok=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "systest", "-d", str(tree), str(image),
                    "512M"], check=True)
    return image


# ---------------------------------------------------------------------------- the rig

class Rig:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work: Path = args.work
        self.repo: Path = args.repo
        self.secret = "systest-secret-" + secrets.token_hex(12)
        self.start_date = date.today() - timedelta(days=DAYS + 1)
        self.dates = [self.start_date + timedelta(days=i) for i in range(DAYS)]
        self.page_port = free_port()
        self.emulator: EmulatorServer | None = None
        self.register: RegisterSimulator | None = None
        self.printer: PtyPrinterSimulator | None = None
        self.vm: VM | None = None
        self.http: httpx.Client | None = None
        self.figures: dict[str, float] = {}

    # -------------------------------------------------------------- set-up / tear-down

    def setup(self) -> None:
        t0 = time.monotonic()
        self.work.mkdir(parents=True, exist_ok=True)
        root = self.work / "root.img"
        subprocess.run(["cp", "--sparse=always", str(self.args.rootfs / "root.img"), str(root)],
                       check=True)
        payload = make_payload(self.work, self.repo, self.args.wheels)
        self.fat = self.work / "bootfs.img"
        make_fat(self.fat, {})
        self.emulator = EmulatorServer(self.work / "freee.sqlite", auto_approve=True,
                                       client_id=CLIENT_ID, client_secret=self.secret).start()
        journal = generate_journal(2026, DAYS, self.start_date, receipts_per_day=15)
        self.register = RegisterSimulator(journal, visible_days=0)
        reg_link = self.register.start_pty(self.work / "register.pty")
        self.printer = PtyPrinterSimulator(link=self.work / "printer.pty").start()
        emu_port = int(self.emulator.base_url.rsplit(":", 1)[1].split("/")[0])
        cfg = VMConfig(
            run_dir=self.work,
            kernel=self.args.rootfs / "vmlinuz",
            initrd=self.args.rootfs / "initrd.img",
            root=root,
            disks=[self.fat, payload],
            readonly={payload},
            usb=[UsbSerial("reg", Path(reg_link.slave_path), REGISTER_SERIAL),
                 UsbSerial("prn", Path(self.printer.port), PRINTER_SERIAL)],
            hostfwd={self.page_port: 8080},
            guestfwd={GUESTFWD: emu_port},
        )
        self.vm = VM(cfg)
        self.figures["host set-up s"] = time.monotonic() - t0
        log(f"host set-up done in {self.figures['host set-up s']:.1f} s "
            f"({'KVM' if self.vm.kvm else 'TCG: no usable /dev/kvm'}; page on "
            f"127.0.0.1:{self.page_port}, emulator {self.emulator.base_url})")

    def teardown(self) -> None:
        if self.http is not None:
            self.http.close()
        if self.vm is not None:
            self.vm.kill()
        for part in (self.register, self.printer, self.emulator):
            if part is not None:
                try:
                    part.stop()
                except Exception as exc:  # keep tearing down the rest
                    log(f"teardown: {exc!r}")

    @property
    def boot_timeout(self) -> float:
        assert self.vm is not None
        return 120 if self.vm.kvm else 600

    @property
    def slow(self) -> float:
        """How much longer things take without KVM (TCG emulates every instruction)."""
        assert self.vm is not None
        return 1.0 if self.vm.kvm else 4.0

    def boot(self, label: str) -> None:
        assert self.vm is not None
        t0 = time.monotonic()
        self.vm.start()
        self.vm.wait_boot(self.boot_timeout)
        self.settle()
        took = time.monotonic() - t0
        self.figures[f"boot {label} s"] = took
        log(f"boot {label}: agent up after {took:.1f} s")

    def settle(self) -> None:
        """Until the boot's start-up jobs are done (the agent itself starts early)."""
        assert self.vm is not None
        state = self.sh(f"timeout {int(self.boot_timeout)} systemctl is-system-running --wait",
                        timeout=self.boot_timeout + 10, check=False).strip()
        require(state in ("running", "degraded"), f"system state after boot: {state!r}")

    # -------------------------------------------------------------- guest helpers

    def sh(self, cmd: str, timeout: float = 60, check: bool = True) -> str:
        assert self.vm is not None
        return self.vm.sh(cmd, timeout, check)

    def unit(self, name: str = "gatewayd.service") -> dict[str, str]:
        props = "ActiveState,SubState,Result,StatusText,MainPID,NRestarts,ExecMainStatus"
        out = self.sh(f"systemctl show {name} -p {props}")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_active(self, timeout: float, *, not_pid: str | None = None) -> dict[str, str]:
        assert self.vm is not None
        found: dict[str, str] = {}

        def ready() -> bool:
            found.clear()
            found.update(self.unit())
            return (found.get("ActiveState") == "active" and found.get("SubState") == "running"
                    and found.get("MainPID", "0") not in ("0", not_pid))

        self.vm.wait_until("gatewayd.service to be active (READY=1)", ready, timeout, 0.5)
        return found

    def status(self) -> dict[str, Any]:
        # --days: every day the run closed (the command shows the last 14 by default; the
        # power-cut bench closes dozens).
        out = self.sh(f"{AS_GW} {VENV}/gatewayd status --json --days 400 --config "
                      "/etc/gatewayd/gatewayd.toml")
        return json.loads(out)  # type: ignore[no-any-return]

    def day_states(self) -> dict[str, str]:
        days = self.status()["registers"][0]["days"]
        return {d["business_date"]: ((d.get("freee") or {}).get("state") or d["status"])
                for d in days if d["business_date"]}

    def store_counts(self) -> tuple[int, int, int]:
        """(rows, distinct record numbers, max record number) of the guest's journal store."""
        out = self.sh(
            f"{AS_GW} python3 -c \"import sqlite3; c=sqlite3.connect("
            "'file:/var/lib/gatewayd/journal.sqlite?mode=ro', uri=True); print(*c.execute("
            "'SELECT COUNT(*), COUNT(DISTINCT record_no), MAX(record_no) FROM records')"
            ".fetchone())\"")
        rows, distinct, top = (int(x) for x in out.split())
        return rows, distinct, top

    def wait_synced(self, upto: int, timeout: float) -> float:
        assert self.vm is not None
        wanted = [d.isoformat() for d in self.dates[:upto]]
        last: dict[str, str] = {}

        def synced() -> bool:
            last.clear()
            last.update(self.day_states())
            return all(last.get(d) == "synced" for d in wanted)

        try:
            return self.vm.wait_until(f"days {wanted} synced to freee", synced, timeout, 2.0)
        except GuestError as exc:
            raise GuestError(f"{exc}\nday states: {last}\n"
                             + self.sh("journalctl -u gatewayd -n 40 --no-pager", check=False)
                             ) from None

    def reveal(self, n: int) -> None:
        assert self.register is not None
        for _ in range(n):
            require(self.register.reveal_next_day(), "the register has no day left to close")

    # -------------------------------------------------------------- freee and the page

    def deals(self) -> list[dict[str, Any]]:
        assert self.emulator is not None
        return list(self.emulator.control.deals())

    def check_exactly_once(self, upto: int) -> dict[str, int]:
        """Every ref_number once in freee, and a deal for each of the first ``upto`` days."""
        deals = self.deals()
        refs = Counter(d["ref_number"] for d in deals)
        doubled = {r: n for r, n in refs.items() if n > 1}
        require(not doubled, f"postings doubled in freee: {doubled}")
        per_day: dict[str, int] = {}
        for day in self.dates[:upto]:
            stamp = day.strftime("%Y%m%d")
            per_day[day.isoformat()] = sum(
                d["amount"] for d in deals if f"-{stamp}-" in str(d["ref_number"]))
            require(per_day[day.isoformat()] > 0, f"no deal in freee for {day}")
        extra = [d for d in deals if not any(f"-{x.strftime('%Y%m%d')}-" in str(d["ref_number"])
                                             for x in self.dates[:upto])]
        require(not extra, f"deals for days not yet closed: {extra[:3]}")
        return per_day

    def check_records(self) -> None:
        assert self.register is not None
        rows, distinct, top = self.store_counts()
        last = self.register.last_record_no
        require(rows == distinct == top == last,
                f"journal store rows {rows}, distinct {distinct}, max {top}; register {last}")

    def page(self) -> httpx.Client:
        """The page over HTTPS (beyond loopback it speaks nothing else), pinned to the box's
        own self-signed certificate as read from the guest: what staff do with the
        fingerprint on the setup slip."""
        if self.http is None:
            pem = self.sh("cat /var/lib/gatewayd/web-tls/cert.pem")
            context = ssl.create_default_context(cadata=pem)
            context.check_hostname = False  # pinned: only this certificate verifies
            self.http = httpx.Client(base_url=f"https://127.0.0.1:{self.page_port}",
                                     verify=context, timeout=15)
            plain = httpx.get(f"http://127.0.0.1:{self.page_port}/login", timeout=15)
            require(plain.status_code == 308
                    and plain.headers.get("location", "").startswith("https://"),
                    f"plain http /login answered {plain.status_code} "
                    f"{plain.headers.get('location')!r}")
            footer = self.http.get("/login").text
            fingerprint = self.sh(f"{VENV}/python -c \"import sys; from gatewayd.web.tls "
                                  "import fingerprint_of; print(fingerprint_of(open(sys.argv[1],"
                                  " 'rb').read()))\" /var/lib/gatewayd/web-tls/cert.pem").strip()
            require(fingerprint in footer,
                    f"the page does not show the certificate's fingerprint {fingerprint}")
        return self.http

    @staticmethod
    def csrf(text: str) -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', text)
        require(match, "no CSRF field on the page")
        assert match is not None
        return match.group(1)

    def login(self) -> str:
        http = self.page()
        http.cookies.clear()
        page = http.get("/login")
        require(page.status_code == 200, f"/login answered {page.status_code}")
        resp = http.post("/login", data={"csrf": self.csrf(page.text), "password": PASSWORD,
                                         "next": "/"})
        require(resp.status_code == 303, f"login refused: {resp.status_code}")
        home = http.get("/")
        require(home.status_code == 200, f"/ answered {home.status_code} after login")
        return self.csrf(home.text)

    def link_freee(self) -> None:
        """What the installer does on the status page: start, approve at freee, paste the code."""
        assert self.emulator is not None
        token = self.login()
        http = self.page()
        resp = http.post("/link/start", data={"csrf": token, "mode": "oob"})
        require(resp.status_code == 303, f"/link/start answered {resp.status_code}")
        page = http.get("/link")
        match = re.search(r'id="authorize" href="([^"]+)"', page.text)
        require(match, "no authorize link on /link")
        assert match is not None
        url = html.unescape(match.group(1))
        host_url = url.replace(f"http://127.0.0.1:{RELAY_PORT}", self.emulator.base_url, 1)
        code = approve(host_url)
        state = re.search(r'name="state" value="([^"]+)"', page.text)
        require(state, "no state on /link")
        assert state is not None
        done = http.post("/link/finish", data={"csrf": self.csrf(page.text),
                                               "state": state.group(1), "code": code})
        require(done.status_code == 200, f"/link/finish answered {done.status_code}: "
                                         f"{done.text[:300]}")


# ---------------------------------------------------------------------------- the phases

def provision(rig: Rig, extra: str = "") -> None:
    """Boot A: install.sh from the wheelhouse, the installer's steps, power off.
    ``extra``: guest commands run before the power-off (benches tune the guest with it)."""
    assert rig.vm is not None
    rig.boot("A (provisioning)")
    t0 = time.monotonic()
    out = rig.sh(
        "set -e; cd /mnt/systest/src; "
        "bash install.sh --no-start --wheel \"$(ls /mnt/systest/wheels/gatewayd-*.whl)\" "
        "--pip-args '--no-index --find-links /mnt/systest/wheels' 2>&1", timeout=1200)
    rig.figures["install.sh in the guest s"] = time.monotonic() - t0
    log(f"install.sh in the guest: {rig.figures['install.sh in the guest s']:.1f} s")
    require("change(s)" in out, f"install.sh said:\n{out[-2000:]}")
    again = rig.sh("cd /mnt/systest/src && bash install.sh --no-start --wheel "
                   "\"$(ls /mnt/systest/wheels/gatewayd-*.whl)\" --pip-args "
                   "'--no-index --find-links /mnt/systest/wheels' 2>&1", timeout=900)
    require("changed: gatewayd in" not in again and "changed: /etc" not in again,
            f"second install.sh run reinstalled:\n{again[-2000:]}")
    ok("install.sh from the wheelhouse (no registry); a second run reinstalls nothing")
    # The installer's step 2 of 99-gatewayd.rules: the adapters' serial numbers.
    rig.sh(f"sed -i -e 's/SERIAL-OF-YOUR-ADAPTER/{REGISTER_SERIAL}/' "
           f"-e 's/SERIAL-OF-THE-PRINTER-ADAPTER/{PRINTER_SERIAL}/' "
           "/etc/udev/rules.d/99-gatewayd.rules")
    # Test rig: freee is the host's emulator, reached over plain http on the guest's loopback.
    rig.sh("cp /mnt/systest/guest/freee-relay.socket /mnt/systest/guest/freee-relay.service "
           "/etc/systemd/system/ && systemctl enable freee-relay.socket")
    rig.sh(f"echo {PASSWORD} | {VENV}/gatewayd passwd --stdin --config "
           "/etc/gatewayd/gatewayd.toml")
    if extra:
        rig.sh(extra)
    rig.vm.poweroff(90 * rig.slow)
    ok("provisioned and powered off")


def first_boot(rig: Rig) -> None:
    assert rig.vm is not None
    make_fat(rig.fat, {"gatewayd.toml": guest_config(),
                       "gatewayd-freee.txt": rig.secret + "\n"})
    rig.boot("B (first boot with the card's configuration)")
    # 1. the import
    fb = rig.unit("gatewayd-firstboot.service")
    require(fb.get("Result") == "success" and fb.get("ExecMainStatus") == "0",
            f"gatewayd-firstboot.service: {fb}")
    names = rig.sh("ls -1 /boot/firmware").split()
    require("gatewayd-freee.txt" not in names and "gatewayd.toml" not in names,
            f"files left on the card: {names}")
    require("gatewayd.toml.imported.txt" in names, f"no receipt on the card: {names}")
    rig.sh("cmp /etc/gatewayd/gatewayd.toml /dev/stdin <<'EOF'\n" + guest_config() + "EOF")
    stored = rig.sh("cat /etc/credstore/gatewayd.freee-client-secret").strip()
    require(stored == rig.secret, "the credential store does not hold the secret")
    mode = rig.sh("stat -c '%U %a' /etc/credstore/gatewayd.freee-client-secret "
                  "/etc/gatewayd/gatewayd.toml; stat -c %G /etc/gatewayd/gatewayd.toml").split()
    require(mode[:4] == ["root", "600", "root", "640"] and mode[4] == "gatewayd",
            f"owners/modes: {mode}")
    raw = rig.sh(f"dd if=/dev/vdb iflag=direct bs=1M status=none | grep -a -c '{rig.secret}'"
                 " || true").strip()
    require(raw == "0", f"the secret's bytes are still on the FAT disk ({raw} hits)")
    ok("first boot imported gatewayd.toml (root:gatewayd 0640) and the secret "
       "(credstore 0600); both gone from the card, secret bytes scrubbed from the FAT disk")
    # devices by the project's udev rules
    dev = rig.sh("for n in register printer; do readlink -f /dev/gatewayd/$n; "
                 "stat -L -c '%G %a' /dev/gatewayd/$n; done; "
                 "udevadm info -q property -n /dev/gatewayd/register | grep ID_SERIAL_SHORT; "
                 "udevadm info -q property -n /dev/gatewayd/printer | grep ID_SERIAL_SHORT")
    lines = dev.split("\n")
    require(lines[0].startswith("/dev/ttyUSB") and lines[2].startswith("/dev/ttyUSB")
            and lines[1] == lines[3] == "dialout 660"
            and f"ID_SERIAL_SHORT={REGISTER_SERIAL}" in dev
            and f"ID_SERIAL_SHORT={PRINTER_SERIAL}" in dev, f"udev names:\n{dev}")
    ok(f"udev: /dev/gatewayd/register -> {lines[0]} ({REGISTER_SERIAL}), "
       f"/dev/gatewayd/printer -> {lines[2]} ({PRINTER_SERIAL}), dialout 0660")
    # 2. the unit
    unit = rig.wait_active(200)  # TimeoutStartSec=180s
    require(unit.get("StatusText"), f"no StatusText: {unit}")
    ok(f"gatewayd.service active/running after READY=1; StatusText={unit['StatusText']!r}")
    sec = rig.sh("systemd-analyze security gatewayd.service --no-pager 2>&1")
    level = re.search(r"Overall exposure level for gatewayd\.service: ([0-9.]+)", sec)
    require(level, f"systemd-analyze security said:\n{sec[-1500:]}")
    assert level is not None
    rig.figures["systemd-analyze security (booted)"] = float(level.group(1))
    require(float(level.group(1)) <= 2.0, f"exposure {level.group(1)} > 2.0:\n{sec[-3000:]}")
    ok(f"systemd-analyze security gatewayd.service on the booted guest: {level.group(1)}")
    # the live snapshot: in /run (tmpfs, RuntimeDirectory=), linked from the state directory
    assert rig.vm is not None
    rig.vm.wait_until("the status snapshot through its link",
                      lambda: bool(rig.status().get("snapshot_time")), 60 * rig.slow, 1.0)
    where = rig.sh("readlink /var/lib/gatewayd/status.json; stat -f -c %T /run/gatewayd/; "
                   "stat -c '%U %a' /run/gatewayd")
    require(where.strip().split("\n") == ["/run/gatewayd/status.json", "tmpfs", "gatewayd 700"],
            f"status snapshot: {where!r}")
    require(rig.status().get("snapshot_linked") is True, "gatewayd status: not linked")
    ok("status snapshot in /run/gatewayd (tmpfs, gatewayd 0700), "
       "/var/lib/gatewayd/status.json links to it; gatewayd status reads it")


def days_flow(rig: Rig) -> None:
    assert rig.printer is not None and rig.register is not None
    rig.link_freee()
    ok("freee linked through the status page (installer's path, through the forwarded port)")
    t0 = time.monotonic()
    for _ in range(3):
        rig.reveal(1)
        time.sleep(2)
    took = rig.wait_synced(3, 120 * rig.slow)
    rig.figures["3 days to freee s"] = time.monotonic() - t0
    rig.check_records()
    per_day = rig.check_exactly_once(3)
    ok(f"three business days in freee exactly once ({per_day}) "
       f"{took:.0f} s after the last close; journal store holds every record once")
    wanted = [f"{d.year}年{d.month}月{d.day}日" for d in rig.dates[:3]]
    printed = rig.printer.printer.wait_for(
        lambda p: all(w in p.decoded().text for w in wanted)
        and p.decoded().text.count("【送信済】") >= 3, timeout=90)
    require(printed, "the printer simulator did not get the three close slips:\n"
            + rig.printer.printer.decoded().text[-1500:])
    ok("close slips of the three days came out of the printer simulator (【送信済】 x3+)")
    require(rig.register.committed == rig.register.last_record_no,
            f"register committed {rig.register.committed} of {rig.register.last_record_no}")
    # 4. the page through the forwarded port
    rig.login()
    http = rig.page()
    home = http.get("/")
    require(all(d.isoformat() in home.text or f"{d.month}月{d.day}日" in home.text
                or d.strftime("%Y/%m/%d") in home.text for d in rig.dates[:3]),
            "the overview does not list the three days")
    day = http.get(f"/day/{REGISTER_ID}/{rig.dates[0].isoformat()}")
    require(day.status_code == 200, f"day page answered {day.status_code}")
    api = http.get("/api/status")
    require(api.status_code == 200, f"/api/status answered {api.status_code}")
    ok(f"status page on 127.0.0.1:{rig.page_port} over HTTPS (plain http: 308 to https; "
       "pinned to the box's certificate, its fingerprint in the footer): login, overview, day "
       f"{rig.dates[0]} ({len(day.text)} bytes), /api/status")


def watchdog(rig: Rig) -> None:
    assert rig.vm is not None
    before = rig.unit()
    pid = before["MainPID"]
    restarts = int(before.get("NRestarts", "0"))
    baseline = rig.check_exactly_once(3)
    rig.sh(f"kill -STOP {pid}")
    t0 = time.monotonic()
    rig.reveal(1)  # day 4 closes while the daemon is frozen
    margin = MARGIN * rig.slow  # includes the daemon's start until READY=1
    limit = WATCHDOG_SEC + RESTART_SEC + margin
    after = rig.wait_active(limit, not_pid=pid)
    took = time.monotonic() - t0
    rig.figures["SIGSTOP -> restarted s"] = took
    journal = rig.sh("journalctl -u gatewayd --no-pager -n 200 | grep -i 'watchdog timeout'",
                     check=False)
    require(journal.strip(), "systemd logged no watchdog timeout")
    require(int(after["NRestarts"]) == restarts + 1, f"NRestarts {after['NRestarts']}")
    ok(f"SIGSTOP: watchdog timeout, restarted after {took:.0f} s "
       f"(limit: WatchdogSec {WATCHDOG_SEC} + RestartSec {RESTART_SEC} + {margin:.0f} s)")
    pid = after["MainPID"]
    rig.sh(f"kill -KILL {pid}")
    t0 = time.monotonic()
    after = rig.wait_active(RESTART_SEC + margin, not_pid=pid)
    rig.figures["SIGKILL -> restarted s"] = time.monotonic() - t0
    require(int(after["NRestarts"]) == restarts + 2, f"NRestarts {after['NRestarts']}")
    ok(f"SIGKILL: restarted after {rig.figures['SIGKILL -> restarted s']:.0f} s")
    rig.wait_synced(4, 60 * rig.slow)
    per_day = rig.check_exactly_once(4)
    require(all(per_day[k] == v for k, v in baseline.items()), f"{baseline} -> {per_day}")
    rig.check_records()
    ok("after both restarts: day 4 (closed while frozen) in freee once, days 1-3 unchanged, "
       "every record stored once")


def reboot_with_invalid_card(rig: Rig) -> None:
    """A reboot resumes; the card now holds an invalid gatewayd.toml (the installer edited it
    on a laptop and got a key wrong): the import refuses it with .error.txt beside it, and the
    box keeps running on the configuration it imported before."""
    assert rig.vm is not None
    baseline = rig.check_exactly_once(4)
    require(rig.secret.encode() not in rig.fat.read_bytes(),
            "the secret is still somewhere in the FAT image")
    rig.sh("cat > /boot/firmware/gatewayd.toml <<'EOF'\n" + guest_config(bad=True) + "EOF\n"
           "sync /boot/firmware/gatewayd.toml")
    rig.reveal(1)  # day 5 closes as the box goes down
    old = rig.vm.boot_id
    rig.vm.send_raw({"id": 0, "cmd": "systemctl reboot --no-block", "timeout": 10})
    t0 = time.monotonic()
    rig.vm.wait_boot(rig.boot_timeout)
    require(rig.vm.boot_id != old, "same boot id after reboot")
    rig.settle()
    rig.wait_active(200)
    rig.figures["reboot -> active s"] = time.monotonic() - t0
    fb = rig.unit("gatewayd-firstboot.service")
    require(fb.get("Result") != "success", f"the invalid file was accepted: {fb}")
    names = rig.sh("ls -1 /boot/firmware").split()
    require("gatewayd.toml" in names and "gatewayd.toml.error.txt" in names,
            f"card after the invalid import: {names}")
    err = rig.sh("cat /boot/firmware/gatewayd.toml.error.txt")
    require("colour" in err, f"the error file does not name the key:\n{err}")
    rig.sh("! grep -q colour /etc/gatewayd/gatewayd.toml")
    ok("invalid gatewayd.toml left on the card with gatewayd.toml.error.txt (names 'colour'); "
       "the imported configuration is kept")
    rig.wait_synced(5, 90 * rig.slow)
    per_day = rig.check_exactly_once(5)
    require(all(per_day[k] == v for k, v in baseline.items()), f"{baseline} -> {per_day}")
    rig.check_records()
    ok(f"reboot: active again after {rig.figures['reboot -> active s']:.0f} s, day 5 (closed "
       "as it went down) in freee once, days 1-4 unchanged, every record stored once")
    rig.vm.poweroff(90 * rig.slow)
    names = fat_names(rig.fat)
    require("gatewayd.toml.error.txt" in names, f"host view of the card: {names}")
    ok(f"host view of the card after power-off: {names}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rootfs", type=Path, required=True, help="root.img, vmlinuz, initrd")
    parser.add_argument("--wheels", type=Path, required=True, help="wheelhouse")
    parser.add_argument("--work", type=Path, required=True, help="scratch directory")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    rig = Rig(args)
    t0 = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # timeout(1): tear down first
    try:
        rig.setup()
        provision(rig)
        first_boot(rig)
        days_flow(rig)
        watchdog(rig)
        reboot_with_invalid_card(rig)
    except (Failure, GuestError) as exc:
        tail = "" if isinstance(exc, GuestError) or rig.vm is None else (
            "\n----- guest console (last lines) -----\n" + rig.vm.console_tail())
        log(f"FAIL {exc}{tail}")
        return 1
    except Exception as exc:
        tail = "" if rig.vm is None else (
            "\n----- guest console (last lines) -----\n" + rig.vm.console_tail())
        log(f"FAIL (harness) {exc!r}{tail}")
        raise
    finally:
        rig.teardown()
    total = time.monotonic() - t0
    log("figures: " + ", ".join(f"{k} {v:.1f}" for k, v in rig.figures.items()))
    log(f"system test passed in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
