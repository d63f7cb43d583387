"""The status page's connection guard: bounded sockets, bounded waiting for slow clients.

uvicorn's own listener accepts every connection and its h11 protocol waits for request
headers without a time limit: a few thousand half-sent requests from the shop network used
up the daemon's file descriptors, and the books (journal, outbox) failed with EMFILE. The
page owns its accept loop instead (``Acceptor``) and hands admitted sockets to uvicorn:

- at most ``max_connections`` open at once, of which ``loopback_reserve`` only for the box
  itself (the installer's ssh tunnel gets in during a storm), and ``per_client`` for one
  address (one IPv6 /64); a socket over a limit is closed at once, so it costs one file
  descriptor for microseconds and no memory;
- a client has ``request_timeout`` seconds from its first byte (or from the connection)
  to finish a request, headers and body; the TLS handshake the same; a connection lives at
  most ``max_lifetime``;
- with TLS on, the first byte tells a TLS handshake (0x16) from plain HTTP on the same port,
  so ``http://box:8080`` still reaches the page, which redirects to ``https://``.

Errors that repeat under attack (accept failures, refusals) are logged at most a few times
a minute (``RepeatFilter``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

TLS_HANDSHAKE = 0x16


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How many sockets the page may hold, and how long a client may take."""

    max_connections: int = 128
    per_client: int = 16
    loopback_reserve: int = 8
    request_timeout: float = 10.0
    keep_alive: float = 5.0
    max_lifetime: float = 120.0


def client_address(host: str) -> str:
    """``::ffff:192.0.2.1`` → ``192.0.2.1``: an IPv4 client of a dual-stack socket."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def client_key(host: str) -> str:
    """The unit that limits count: an IPv4 address, or an IPv6 /64 (SLAAC hands out many)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and not ip.is_loopback:
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


def is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RepeatFilter(logging.Filter):
    """At most ``burst`` records of one message template per ``period`` seconds.

    The first suppressed record of a period is counted; the next one let through says how
    many were dropped. Thread-safe; the clock is injectable.
    """

    def __init__(
        self, *, burst: int = 5, period: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst = burst
        self.period = period
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self._clock()
        with self._lock:
            start, count, dropped = self._seen.get(key, (now, 0, 0))
            if now - start >= self.period:
                start, count = now, 0
            if count >= self.burst:
                self._seen[key] = (start, count, dropped + 1)
                return False
            self._seen[key] = (start, count + 1, 0)
            if len(self._seen) > 1000:
                self._seen.pop(next(iter(self._seen)))
        if dropped:
            record.msg = f"{record.msg} [{dropped} similar messages suppressed]"
        return True


REPEAT_FILTER = RepeatFilter()
FILTERED_LOGGERS = ("asyncio", "uvicorn.error", "gatewayd.web.guard", "gatewayd.web.app")


def install_repeat_filter() -> None:
    """Attach the shared filter to the loggers an attack makes talk (idempotent)."""
    for name in FILTERED_LOGGERS:
        logger = logging.getLogger(name)
        if REPEAT_FILTER not in logger.filters:
            logger.addFilter(REPEAT_FILTER)


def guarded_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a deadline on every request and on the connection."""

    class GuardedH11Protocol(H11Protocol):
        _request_timer: asyncio.TimerHandle | None = None
        _life_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()
            self._life_timer = self.loop.call_later(limits.max_lifetime, self._expire)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._disarm()  # idle between requests: uvicorn's keep-alive timeout holds

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._life_timer is not None:
                self._life_timer.cancel()
            super().connection_lost(exc)

        def _watch(self) -> None:
            if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR):
                self._disarm()
            elif self._request_timer is None:
                self._arm()

        def _arm(self) -> None:
            self._request_timer = self.loop.call_later(limits.request_timeout, self._expire)

        def _disarm(self) -> None:
            if self._request_timer is not None:
                self._request_timer.cancel()
                self._request_timer = None

        def _expire(self) -> None:
            self._request_timer = None
            if self.transport is not None and not self.transport.is_closing():
                log.info("status page: a client took too long, connection closed")
            if self.transport is not None:
                self.transport.abort()

    GuardedH11Protocol.__name__ = "GuardedH11Protocol"
    return GuardedH11Protocol


@dataclass(slots=True)
class _Open:
    sock: socket.socket
    key: str
    loopback: bool


class Acceptor:
    """Accepts on ``sock`` and admits a connection only within ``limits`` (see module doc)."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        limits: ConnectionLimits,
        *,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.sock = sock
        self.factory = protocol_factory
        self.limits = limits
        self.tls = tls
        self.refused = 0
        self._open: list[_Open] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def open_count(self) -> int:
        self._prune()
        return len(self._open)

    def _prune(self) -> None:
        self._open = [c for c in self._open if c.sock.fileno() != -1]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(self.sock)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("status page: cannot accept (%s); pausing", exc.strerror)
                    await asyncio.sleep(0.5)
                    continue
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                    continue
                raise
            self._admit(loop, conn, str(addr[0]))

    def _admit(self, loop: asyncio.AbstractEventLoop, conn: socket.socket, host: str) -> None:
        self._prune()
        client = client_address(host)
        key = client_key(client)
        loopback = is_loopback_address(client)
        total = len(self._open)
        limits = self.limits
        over = total >= limits.max_connections or (
            not loopback
            and (
                total >= limits.max_connections - limits.loopback_reserve
                or sum(1 for c in self._open if c.key == key) >= limits.per_client
            )
        )
        if over:
            self.refused += 1
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            log.warning("status page: connection limit reached, refusing clients")
            return
        conn.setblocking(False)
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._open.append(_Open(conn, key, loopback))
        if self.tls is None:
            self._start(loop, conn, None)
        else:
            self._sniff(loop, conn)

    def _sniff(self, loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
        """Wait (bounded) for the first byte: TLS handshake or plain HTTP."""
        fd = conn.fileno()

        def give_up() -> None:
            loop.remove_reader(fd)
            conn.close()

        timer = loop.call_later(self.limits.request_timeout, give_up)

        def readable() -> None:
            try:
                first = conn.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                return
            except OSError:
                first = b""
            loop.remove_reader(fd)
            timer.cancel()
            if not first:
                conn.close()
                return
            self._start(loop, conn, self.tls if first[0] == TLS_HANDSHAKE else None)

        loop.add_reader(fd, readable)

    def _start(
        self, loop: asyncio.AbstractEventLoop, conn: socket.socket, tls: ssl.SSLContext | None
    ) -> None:
        coro = loop.connect_accepted_socket(
            self.factory,
            conn,
            ssl=tls,
            ssl_handshake_timeout=self.limits.request_timeout if tls is not None else None,
        )
        task = loop.create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if t.cancelled() or t.exception() is not None:
                conn.close()  # a failed handshake: nothing else holds the socket

        task.add_done_callback(done)

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close every socket still open (server shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        self._prune()
        for c in self._open:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(c.sock.fileno())
            with contextlib.suppress(OSError):
                c.sock.close()
        self._open = []
