"""sd_notify protocol through a real unix datagram socket in NOTIFY_SOCKET."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatewayd import notify

REPO = Path(__file__).resolve().parents[1]


class NotifyListener:
    """The systemd side: a bound AF_UNIX datagram socket collecting messages."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []

    def drain(self, seconds: float = 0.0) -> list[str]:
        """Collect what arrives within ``seconds`` (and whatever is queued already)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    break
                continue
            self.messages.append((time.monotonic(), data.decode()))
        return [m for _, m in self.messages]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to 108 bytes: pytest's tmp_path may be longer.
    path = Path(tempfile.mkdtemp(prefix="gwn-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def listener(short_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifyListener]:
    address = str(short_dir / "notify.sock")
    lst = NotifyListener(address)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    # Exercise the pure-socket sender whether or not systemd-python is installed.
    monkeypatch.setattr(notify, "_send", notify.send_via_socket)
    yield lst
    lst.close()


def test_ready_status_stopping_arrive_as_datagrams(listener: NotifyListener) -> None:
    assert notify.ready()
    assert notify.status("day 2025-01-10: 3 of 5 postings sent")
    assert notify.status("line one\nline two")  # STATUS is single-line
    assert notify.stopping("closing stores")
    assert listener.drain() == [
        "READY=1",
        "STATUS=day 2025-01-10: 3 of 5 postings sent",
        "STATUS=line one line two",
        "STOPPING=1\nSTATUS=closing stores",
    ]


def test_ready_with_status_is_one_message(listener: NotifyListener) -> None:
    notify.ready("register link up")
    assert listener.drain() == ["READY=1\nSTATUS=register link up"]


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"gatewayd-test-{os.getpid()}-{time.monotonic_ns()}"
    lst = NotifyListener("\0" + name)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        monkeypatch.setattr(notify, "_send", notify.send_via_socket)
        assert notify.watchdog()
        assert lst.drain() == ["WATCHDOG=1"]
    finally:
        lst.close()


def test_no_notify_socket_is_a_quiet_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setattr(notify, "_send", notify.send_via_socket)
    assert notify.ready() is False
    assert notify.status("x") is False
    assert notify.watchdog() is False


def test_broken_socket_is_logged_not_raised(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(short_dir / "nobody-listens.sock"))
    monkeypatch.setattr(notify, "_send", notify.send_via_socket)
    monkeypatch.setattr(notify, "_warned", False)
    assert notify.ready() is False
    assert notify.watchdog() is False
    warnings = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(warnings) == 1  # once, not once per ping


def test_watchdog_interval_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert notify.watchdog_interval() == 60.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert notify.watchdog_interval() == 60.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert notify.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_PID")
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    assert notify.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert notify.watchdog_interval() is None
    assert notify.Watchdog().enabled is False


def test_watchdog_pings_only_while_main_loop_is_recent() -> None:
    """GIVEN WatchdogSec=60 WHEN the loop stops calling loop_alive THEN pings stop after 30 s."""
    now = [1000.0]
    sent: list[float] = []

    def send() -> bool:
        sent.append(now[0])
        return True

    dog = notify.Watchdog(60.0, clock=lambda: now[0], send=send)
    assert dog.max_loop_gap == 30.0
    for _ in range(4):  # healthy: the loop turns every second, the pinger ticks every 30 s
        for _ in range(30):
            now[0] += 1
            dog.loop_alive()
        assert dog.tick()
    assert len(sent) == 4
    now[0] += 29  # the loop hangs: still within the allowed gap
    assert dog.tick()
    now[0] += 2  # 31 s since the last turn
    assert not dog.tick()
    now[0] += 30
    assert not dog.tick()
    assert len(sent) == 5 and dog.pings_withheld == 2
    dog.loop_alive()  # the loop recovers before systemd gave up
    assert dog.tick() and dog.pings_withheld == 0


def test_inert_watchdog_starts_no_thread() -> None:
    dog = notify.Watchdog(None, send=lambda: pytest.fail("must not ping"))
    dog.interval = None
    with dog:
        dog.loop_alive()
        assert dog._thread is None


DAEMON = textwrap.dedent(
    """
    import sys, time
    from gatewayd import notify
    dog = notify.Watchdog()
    assert dog.interval == 0.2, dog.interval
    with dog:
        time.sleep(0.05)                      # opening the store, starting the link ...
        dog.loop_alive()
        notify.ready()
        end = time.monotonic() + 0.8          # healthy main loop
        turn = 0
        while time.monotonic() < end:
            turn += 1
            dog.loop_alive()
            if turn % 10 == 0:
                notify.status(f"turn {turn}")
            time.sleep(0.02)
        notify.status("main loop stuck")
        time.sleep(1.0)                       # hung: no loop_alive()
        notify.stopping()
    """
)


def test_daemon_process_ready_pings_and_stuck_loop(short_dir: Path) -> None:
    """A process started the way systemd starts gatewayd (NOTIFY_SOCKET, WATCHDOG_USEC/PID)."""
    address = str(short_dir / "notify.sock")
    lst = NotifyListener(address)
    env = dict(os.environ, NOTIFY_SOCKET=address, WATCHDOG_USEC="200000",
               PYTHONPATH=str(REPO))
    try:
        # exec keeps the shell's pid, so WATCHDOG_PID=$$ names the Python process.
        proc = subprocess.Popen(
            ["/bin/sh", "-c", 'WATCHDOG_PID=$$ exec "$0" -c "$1"', sys.executable, DAEMON],
            env=env, cwd=str(short_dir))
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            lst.drain(0.1)
        assert proc.wait(timeout=5) == 0
        lst.drain(0.1)
    finally:
        lst.close()

    # Judge by the order of the datagrams (FIFO), not by when this process read them.
    texts = [m for _, m in lst.messages]
    ready = texts.index("READY=1")
    stuck = texts.index("STATUS=main loop stuck")
    stop = texts.index("STOPPING=1")
    assert ready < stuck < stop
    assert any(m.startswith("STATUS=turn ") for m in texts[ready:stuck])
    healthy = texts[ready:stuck].count("WATCHDOG=1")
    assert healthy >= 4, f"expected a ping every 0.1 s while healthy, got {healthy}"
    # max_loop_gap = 0.1 s: one ping may still go out just after the loop stopped, then none
    # for the rest of the second (about ten would have gone out from a free-running timer).
    after = texts[stuck:stop].count("WATCHDOG=1")
    assert after <= 2, f"a stuck main loop must not be pinged for ({after} pings)"


@pytest.mark.skipif(notify._systemd_python_sender() is None,
                    reason="systemd-python not installed (the pure-socket sender is tested)")
def test_systemd_python_sender(listener: NotifyListener, monkeypatch: pytest.MonkeyPatch
                               ) -> None:
    sender = notify._systemd_python_sender()
    assert sender is not None
    monkeypatch.setattr(notify, "_send", sender)
    assert notify.ready()
    assert listener.drain() == ["READY=1"]
