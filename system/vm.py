"""QEMU for the system test and the benches: one guest, its disks, devices and agent channel.

The guest is booted directly (kernel + initrd + raw ext4 root), with user-mode networking
only (``restrict=on``: the guest reaches nothing but the forwards), USB-serial adapters
(QEMU's ``usb-serial`` is an FTDI FT232, 0403:6001) wired to host pseudo-terminals, and a
virtio-serial port on which ``system/guest/agent.py`` runs the host's commands.
Every wait has a timeout; a failure raises :class:`GuestError` with the console's tail.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class GuestError(RuntimeError):
    """A step in the guest failed or timed out; the message carries the console's tail."""


def kvm_usable() -> bool:
    """Hardware KVM that boots a stock kernel. ``GATEWAYD_SYSTEST_ACCEL=kvm|tcg`` forces it.

    /dev/kvm alone is not enough: a KVM without VT-x/AMD-V underneath (e.g. the PVM module
    of some cloud sandboxes, ``kvm_pvm``) opens fine but hangs a stock Debian kernel at its
    first instruction in long mode. Only kvm_intel or kvm_amd count.
    """
    forced = os.environ.get("GATEWAYD_SYSTEST_ACCEL", "")
    if forced in ("kvm", "tcg"):
        return forced == "kvm"
    if not any(Path(f"/sys/module/{m}").exists() for m in ("kvm_intel", "kvm_amd")):
        return False
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class UsbSerial:
    """A host pty (a simulator's link) seen by the guest as an FTDI adapter with ``serial``."""

    chardev_id: str
    pty_path: Path
    serial: str


@dataclass
class VMConfig:
    run_dir: Path
    kernel: Path
    initrd: Path
    root: Path
    disks: list[Path] = field(default_factory=list)  # vdb, vdc, ... (raw)
    readonly: set[Path] = field(default_factory=set)
    usb: list[UsbSerial] = field(default_factory=list)
    hostfwd: dict[int, int] = field(default_factory=dict)  # host 127.0.0.1 port -> guest port
    guestfwd: dict[str, int] = field(default_factory=dict)  # "10.0.2.100:80" -> host port
    memory_mb: int = 1024
    cpus: int = 2
    qemu: str = "qemu-system-x86_64"
    append: str = ""
    cache: str = "writeback"
    machine: list[str] | None = None  # None: x86-64 q35 (KVM or TCG); else QEMU's -machine/-cpu
    root_arg: str = "root=/dev/vda rw console=ttyS0"


class VM:
    def __init__(self, cfg: VMConfig) -> None:
        self.cfg = cfg
        self.kvm = kvm_usable()
        self.console = cfg.run_dir / "console.log"
        self.ctl_path = cfg.run_dir / "ctl.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self._buf = b""
        self._next_id = 1
        self.boot_id: str | None = None
        self.boots = 0

    # ------------------------------------------------------------------ process

    def command(self) -> list[str]:
        c = self.cfg
        if c.machine is not None:
            accel = c.machine
        elif self.kvm:
            accel = ["-machine", "q35,accel=kvm", "-cpu", "host"]
        else:
            accel = ["-machine", "q35,accel=tcg", "-cpu", "max"]
        append = f"{c.root_arg} panic=-1 {c.append}".strip()
        cmd = [
            c.qemu, *accel, "-m", str(c.memory_mb), "-smp", str(c.cpus),
            "-nodefaults", "-no-user-config", "-display", "none",
            "-chardev", f"file,id=con,path={self.console},append=on", "-serial", "chardev:con",
            "-kernel", str(c.kernel), "-initrd", str(c.initrd), "-append", append,
            "-device", "virtio-rng-pci",
        ]
        for disk in [c.root, *c.disks]:
            ro = ",readonly=on" if disk in c.readonly else ""
            cmd += ["-drive", f"file={disk},format=raw,if=virtio,cache={c.cache}{ro}"]
        net = "user,id=n0,restrict=on"
        for host, guest in c.hostfwd.items():
            net += f",hostfwd=tcp:127.0.0.1:{host}-:{guest}"
        for target, port in c.guestfwd.items():
            net += f",guestfwd=tcp:{target}-cmd:socat STDIO TCP:127.0.0.1:{port}"
        cmd += ["-netdev", net, "-device", "virtio-net-pci,netdev=n0"]
        if c.usb:
            cmd += ["-device", "qemu-xhci,id=xhci"]
            for dev in c.usb:
                cmd += ["-chardev", f"serial,id={dev.chardev_id},path={dev.pty_path}",
                        "-device",
                        f"usb-serial,bus=xhci.0,chardev={dev.chardev_id},serial={dev.serial}"]
        cmd += ["-device", "virtio-serial-pci",
                "-chardev", f"socket,id=ctl,path={self.ctl_path},server=on,wait=off",
                "-device", "virtserialport,chardev=ctl,name=gatewayd.systest"]
        return cmd

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise GuestError("the VM is already running")
        with contextlib.suppress(FileNotFoundError):
            self.ctl_path.unlink()
        with self.console.open("ab") as log:
            log.write(f"\n===== host: boot {self.boots + 1} =====\n".encode())
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL,
            stdout=(self.cfg.run_dir / "qemu.out").open("ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        (self.cfg.run_dir / "qemu.pid").write_text(f"{self.proc.pid}\n")
        self.boots += 1
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise GuestError(f"QEMU exited at once (rc {self.proc.returncode}): "
                                 + self._tail(self.cfg.run_dir / "qemu.out"))
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(self.ctl_path))
                self.sock = sock
                self._buf = b""
                return
            except OSError:
                sock.close()
            if time.monotonic() > deadline:
                raise GuestError("QEMU's control socket never appeared")
            time.sleep(0.05)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """``kill -9`` of QEMU: the power cut."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._close_sock()

    def _close_sock(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def wait_exit(self, timeout: float, what: str = "the guest to power off") -> None:
        assert self.proc is not None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        self._close_sock()

    def poweroff(self, timeout: float = 90) -> None:
        self.send_raw({"id": 0, "cmd": "systemctl poweroff --no-block", "timeout": 10})
        self.wait_exit(timeout)

    # ------------------------------------------------------------------ agent channel

    def send_raw(self, message: dict[str, object], timeout: float = 30) -> bool:
        """Send one line to the agent; False when QEMU took none of it within ``timeout``
        (the guest has not opened its port yet: QEMU stops reading the socket)."""
        if self.sock is None:
            self.fail("no control channel (the VM is not running)")
        assert self.sock is not None
        data = (json.dumps(message) + "\n").encode()
        self.sock.settimeout(timeout)
        try:
            sent = self.sock.send(data)
        except TimeoutError:
            return False
        if sent < len(data):
            self.sock.sendall(data[sent:])
        return True

    def _read_message(self, deadline: float) -> dict[str, object] | None:
        assert self.sock is not None
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if self.proc is not None and self.proc.poll() is not None:
                self.fail(f"QEMU exited (rc {self.proc.returncode})")
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                self.fail("QEMU closed the control channel")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError:
            return {}
        return message if isinstance(message, dict) else {}

    def wait_boot(self, timeout: float) -> str:
        """Until the agent of a new boot says hello; returns its boot id."""
        deadline = time.monotonic() + timeout
        next_ping = 0.0
        while True:
            now = time.monotonic()
            if now > deadline:
                self.fail(f"the guest did not come up within {timeout:.0f} s")
            if now >= next_ping:
                self.send_raw({"ping": 1}, timeout=0.5)
                next_ping = now + 2.0
            message = self._read_message(min(deadline, now + 2.0))
            if message and "hello" in message and message["hello"] != self.boot_id:
                self.boot_id = str(message["hello"])
                return self.boot_id

    def sh(self, cmd: str, timeout: float = 60, check: bool = True) -> str:
        """Run ``cmd`` (bash, root) in the guest; its output. ``check``: fail unless rc 0."""
        rc, out = self.sh_rc(cmd, timeout)
        if check and rc != 0:
            self.fail(f"guest command failed (rc {rc}): {cmd}\n{out[-3000:]}")
        return out

    def sh_rc(self, cmd: str, timeout: float = 60) -> tuple[int, str]:
        ident = self._next_id
        self._next_id += 1
        self.send_raw({"id": ident, "cmd": cmd, "timeout": timeout})
        deadline = time.monotonic() + timeout + 15
        while True:
            message = self._read_message(deadline)
            if message is None:
                self.fail(f"no answer from the guest within {timeout + 15:.0f} s to: {cmd}")
            assert message is not None
            if message.get("id") == ident:
                return int(str(message["rc"])), str(message["out"])

    def wait_until(self, what: str, check: object, timeout: float, every: float = 1.0) -> float:
        """Poll ``check()`` (truthy = done) until ``timeout``; returns the seconds it took."""
        assert callable(check)
        start = time.monotonic()
        while True:
            if check():
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                self.fail(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(every)

    # ------------------------------------------------------------------ reports

    @staticmethod
    def _tail(path: Path, lines: int = 60) -> str:
        try:
            text = path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def console_tail(self, lines: int = 60) -> str:
        return self._tail(self.console, lines)

    def fail(self, message: str) -> None:
        raise GuestError(f"{message}\n----- guest console (last lines) -----\n"
                         f"{self.console_tail()}\n----- end of console -----")
