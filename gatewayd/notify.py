"""Talking to systemd: readiness, status lines and the watchdog (sd_notify protocol).

systemd runs gatewayd as ``Type=notify`` with ``WatchdogSec=``: it waits for ``READY=1``, shows
the last ``STATUS=`` line in ``systemctl status`` and kills and restarts the daemon when the
``WATCHDOG=1`` pings stop. Messages go through systemd-python's ``systemd.daemon.notify`` when
it is installed, else through a plain datagram socket (the protocol is one datagram per
message to the ``AF_UNIX`` socket named in ``$NOTIFY_SOCKET``; a leading ``@`` means the
abstract namespace). Without ``$NOTIFY_SOCKET`` (a terminal, the tests) every call is a quiet
no-op, and a broken socket is logged, never raised: telling systemd must not stop the daemon.

Use from the daemon::

    watchdog = notify.Watchdog()          # reads $WATCHDOG_USEC; inert when unset
    with watchdog:                        # starts the pinger thread
        ...open the store, start the register link...
        notify.ready("listening on /dev/gatewayd/register")
        while running:
            ...one turn of the main loop (at most WatchdogSec/2 long)...
            watchdog.loop_alive()
            notify.status("day 2025-01-10: 3 of 5 postings sent")
        notify.stopping()
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger(__name__)

Sender = Callable[[str], bool]


def _socket_address(name: str) -> str:
    """``@name`` is the abstract namespace: a leading NUL byte on the wire."""
    return "\0" + name[1:] if name.startswith("@") else name


def send_via_socket(message: str) -> bool:
    """Send one notification datagram to ``$NOTIFY_SOCKET``; False when it is unset."""
    name = os.environ.get("NOTIFY_SOCKET")
    if not name:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(_socket_address(name))
        sock.sendall(message.encode("utf-8"))
    return True


def _systemd_python_sender() -> Sender | None:
    try:
        daemon = importlib.import_module("systemd.daemon")
    except ImportError:
        return None

    def send(message: str) -> bool:
        if not os.environ.get("NOTIFY_SOCKET"):
            return False
        return bool(daemon.notify(message))

    return send


# The function that delivers a message; tests may replace it (monkeypatch).
_send: Sender = _systemd_python_sender() or send_via_socket
_warned = False


def notify(message: str) -> bool:
    """Send a raw sd_notify message ("KEY=value" lines). True when it was delivered."""
    global _warned
    try:
        return _send(message)
    except OSError as exc:
        if not _warned:  # once: a watchdog ping every 30 s must not flood the journal
            log.warning("cannot notify systemd via %s: %s",
                        os.environ.get("NOTIFY_SOCKET"), exc)
            _warned = True
        return False


def _one_line(text: str) -> str:
    return " ".join(text.split())


def ready(status_text: str | None = None) -> bool:
    """Tell systemd that start-up is complete (the store is open, the link started)."""
    if status_text is None:
        return notify("READY=1")
    return notify(f"READY=1\nSTATUS={_one_line(status_text)}")


def status(text: str) -> bool:
    """Set the single-line status shown by ``systemctl status gatewayd``."""
    return notify(f"STATUS={_one_line(text)}")


def watchdog() -> bool:
    """One keep-alive ping. Prefer ``Watchdog.loop_alive()``, which pings only while healthy."""
    return notify("WATCHDOG=1")


def stopping(status_text: str | None = None) -> bool:
    """Tell systemd that shutdown has begun (sent on SIGTERM, before closing the stores)."""
    if status_text is None:
        return notify("STOPPING=1")
    return notify(f"STOPPING=1\nSTATUS={_one_line(status_text)}")


def reloading() -> bool:
    """Tell systemd that a configuration reload has begun (send ``ready()`` when done)."""
    return notify("RELOADING=1")


def extend_timeout(seconds: float) -> bool:
    """Ask for more time during a slow start or stop (e.g. an integrity check of the store)."""
    return notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")


def watchdog_interval() -> float | None:
    """``WatchdogSec`` in seconds for this process, or None when the watchdog is off.

    systemd passes it as ``$WATCHDOG_USEC``; ``$WATCHDOG_PID``, when set, names the process
    meant (a child started by the daemon must not ping for it).
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1_000_000 if value > 0 else None


class Watchdog:
    """Pings systemd at half of ``WatchdogSec`` while the main loop keeps turning.

    The main loop calls ``loop_alive()`` once per turn, after its own health checks (serial
    reader alive, store writable). A background thread sends ``WATCHDOG=1`` every
    ``interval / 2`` seconds, but only when the last ``loop_alive()`` is at most
    ``max_loop_gap`` seconds old (default: half of the interval). A hung main loop therefore
    stops the pings, and systemd kills and restarts the daemon within about
    ``max_loop_gap + interval`` seconds. The pinger thread never pings on its own account.

    ``interval`` defaults to ``watchdog_interval()``; when that is None the Watchdog is inert
    (``start()`` starts nothing, ``loop_alive()`` only records the time).
    """

    def __init__(
        self,
        interval: float | None = None,
        *,
        max_loop_gap: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        send: Callable[[], bool] = watchdog,
    ) -> None:
        self.interval = watchdog_interval() if interval is None else interval
        if self.interval is not None and self.interval <= 0:
            raise ValueError("watchdog interval must be positive")
        half = self.interval / 2 if self.interval is not None else 0.0
        self.max_loop_gap = max_loop_gap if max_loop_gap is not None else half
        self._clock = clock
        self._send = send
        self._last_alive = clock()  # start-up counts as alive; TimeoutStartSec covers it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings_sent = 0
        self.pings_withheld = 0

    @property
    def enabled(self) -> bool:
        return self.interval is not None

    def loop_alive(self) -> None:
        """Record one healthy turn of the main loop (cheap: call it every turn)."""
        self._last_alive = self._clock()

    def seconds_since_alive(self) -> float:
        return self._clock() - self._last_alive

    def healthy(self) -> bool:
        return self.seconds_since_alive() <= self.max_loop_gap

    def tick(self) -> bool:
        """One pinger step: ping if the main loop is healthy. True when a ping was sent."""
        if not self.healthy():
            self.pings_withheld += 1
            if self.pings_withheld == 1 or self.pings_withheld % 10 == 0:
                log.error("main loop silent for %.1f s: withholding the watchdog ping",
                          self.seconds_since_alive())
            return False
        if self.pings_withheld:
            log.warning("main loop alive again after %d withheld pings", self.pings_withheld)
            self.pings_withheld = 0
        self._send()
        self.pings_sent += 1
        return True

    def start(self) -> Watchdog:
        """Start the pinger thread (a daemon thread); no-op when the watchdog is off."""
        if self.interval is None or self._thread is not None:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the pinger thread (call after ``stopping()``; safe to call twice)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        assert self.interval is not None
        period = self.interval / 2
        self.tick()  # first ping at once: the interval may be short
        while not self._stop.wait(period):
            self.tick()

    def __enter__(self) -> Watchdog:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
