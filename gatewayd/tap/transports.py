"""The tap's edges: passive serial, serial pass-through, TCP 9100 pass-through (docs/tap.md).

Each transport hands every register→printer byte to ``heard(data, direction)`` (the ingest:
store first, then parse) in arrival order, and never changes what it forwards:

- ``PassiveSerialTap`` only reads (a Y-cable on the register→printer line; optionally a second
  port on the printer→register line). It never writes, so it cannot stop printing.
- ``SerialPassThrough`` forwards every byte unchanged register→printer and printer→register
  (DLE EOT status answers included), forward first, store second, so the register waits for
  nothing but the printer. When the printer port is down the bytes go nowhere and no answer
  comes — what the register sees with the printer unplugged and no box.
- ``TcpPassThrough`` listens (9100) and, for each register connection, connects to the LAN
  printer and pumps both ways; when the printer cannot be reached the register's connection is
  closed at once, as a printer that is off would refuse it. A connection's end ends its job.

A port that fails is reopened with backoff (1 s doubling to 30 s by default), one log line per
change. Threads stop by ``stop()``; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import struct
import threading
from collections.abc import Callable

from gatewayd.drivers.transport import Transport, open_transport
from gatewayd.errors import GatewayError
from gatewayd.store.taps import TO_PRINTER, TO_REGISTER
from gatewayd.tap.settings import TapSettings, split_host_port

log = logging.getLogger(__name__)

Heard = Callable[[bytes, str], None]
Opener = Callable[[str, int], Transport]
READ_SIZE = 4096


class _Backoff:
    def __init__(self, first: float, most: float) -> None:
        self.first, self.most, self.delay = first, most, first

    def failed(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 2, self.most)
        return delay

    def ok(self) -> None:
        self.delay = self.first


class _Threads:
    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        self.threads.append(t)
        t.start()

    def join(self, timeout: float = 5.0) -> None:
        for t in self.threads:
            t.join(timeout)


class _Port:
    """One serial port opened (and reopened) on demand; ``None`` while down."""

    def __init__(self, name: str, baudrate: int, opener: Opener, backoff: tuple[float, float],
                 what: str) -> None:
        self.name, self.baudrate, self.opener, self.what = name, baudrate, opener, what
        self.backoff = _Backoff(*backoff)
        self.lock = threading.Lock()
        self.port: Transport | None = None
        self.error: str | None = None

    def ensure(self, stopping: threading.Event) -> Transport | None:
        with self.lock:
            if self.port is not None:
                return self.port
            try:
                self.port = self.opener(self.name, self.baudrate)
            except GatewayError as exc:
                text = str(exc)
                if text != self.error:
                    log.warning("tap %s port %s down: %s", self.what, self.name, text)
                self.error = text
            except Exception as exc:  # any failure to open is "not known to work"
                self.error = repr(exc)
            else:
                if self.error is not None:
                    log.info("tap %s port %s open again", self.what, self.name)
                self.error = None
                self.backoff.ok()
                return self.port
        stopping.wait(self.backoff.failed())
        return None

    def fail(self, exc: BaseException) -> None:
        with self.lock:
            if self.port is not None:
                with contextlib.suppress(Exception):
                    self.port.close()
            self.port = None
            self.error = str(exc)
            log.warning("tap %s port %s failed: %s", self.what, self.name, exc)

    def write(self, data: bytes) -> bool:
        """Write now if open; False (bytes not delivered) when down."""
        with self.lock:
            port = self.port
        if port is None:
            return False
        try:
            port.write(data)
        except Exception as exc:  # see gatewayd.drivers.transport
            self.fail(exc)
            return False
        return True

    def close(self) -> None:
        with self.lock:
            if self.port is not None:
                with contextlib.suppress(Exception):
                    self.port.close()
            self.port = None


def _pump(port: _Port, stopping: threading.Event, on_data: Callable[[bytes], None]) -> None:
    while not stopping.is_set():
        transport = port.ensure(stopping)
        if transport is None:
            continue
        try:
            data = transport.read(READ_SIZE, 0.05)
        except Exception as exc:  # see gatewayd.drivers.transport
            port.fail(exc)
            continue
        if data:
            on_data(data)


class PassiveSerialTap:
    """Listen only: the register→printer line, and optionally the printer→register line."""

    def __init__(self, tap: TapSettings, heard: Heard, *, opener: Opener = open_transport,
                 backoff: tuple[float, float] = (1.0, 30.0)) -> None:
        if tap.port is None:
            raise ValueError("passive-serial needs port")
        self.heard = heard
        self._t = _Threads()
        self.ports = [(_Port(tap.port, tap.baudrate, opener, backoff, "register line"),
                       TO_PRINTER)]
        if tap.printer_port is not None:
            self.ports.append((_Port(tap.printer_port, tap.baudrate, opener, backoff,
                                     "printer line"), TO_REGISTER))

    def start(self) -> PassiveSerialTap:
        for port, direction in self.ports:
            on_data = functools.partial(self._heard, direction)
            self._t.spawn(f"tap-passive-{direction}",
                          functools.partial(_pump, port, self._t.stopping, on_data))
        return self

    def _heard(self, direction: str, data: bytes) -> None:
        self.heard(data, direction)

    def stop(self) -> None:
        self._t.stopping.set()
        self._t.join()
        for port, _ in self.ports:
            port.close()


class SerialPassThrough:
    """Register port ⇄ box ⇄ printer port, every byte forwarded unchanged both ways."""

    def __init__(self, tap: TapSettings, heard: Heard, *, opener: Opener = open_transport,
                 backoff: tuple[float, float] = (1.0, 30.0)) -> None:
        if tap.port is None or tap.printer_port is None:
            raise ValueError("serial-pass-through needs port and printer_port")
        self.heard = heard
        self._t = _Threads()
        self.register = _Port(tap.port, tap.baudrate, opener, backoff, "register")
        self.printer = _Port(tap.printer_port, tap.baudrate, opener, backoff, "printer")
        self.forwarded = 0  # bytes delivered to the printer
        self.dropped = 0  # bytes sent while the printer port was down

    def _to_printer(self, data: bytes) -> None:
        if self.printer.write(data):
            self.forwarded += len(data)
        else:
            self.dropped += len(data)
        self.heard(data, TO_PRINTER)

    def _to_register(self, data: bytes) -> None:
        self.register.write(data)
        self.heard(data, TO_REGISTER)

    def start(self) -> SerialPassThrough:
        stop = self._t.stopping
        self._t.spawn("tap-register", lambda: _pump(self.register, stop, self._to_printer))
        self._t.spawn("tap-printer", lambda: _pump(self.printer, stop, self._to_register))
        return self

    def stop(self) -> None:
        self._t.stopping.set()
        self._t.join()
        self.register.close()
        self.printer.close()


class TcpPassThrough:
    """A raw 9100 listener forwarding each register connection to the LAN printer."""

    def __init__(self, tap: TapSettings, heard: Heard, end_of_job: Callable[[], None], *,
                 connect_timeout: float = 3.0) -> None:
        if tap.listen is None or tap.printer is None:
            raise ValueError("tcp-pass-through needs listen and printer")
        self.heard = heard
        self.end_of_job = end_of_job
        self.listen = split_host_port(tap.listen)
        self.printer = split_host_port(tap.printer)
        self.connect_timeout = connect_timeout
        self._t = _Threads()
        self._sock: socket.socket | None = None
        self.refused = 0  # register connections closed because the printer was unreachable
        self._job_lock = threading.Lock()  # one register connection's bytes at a time

    @property
    def address(self) -> tuple[str, int]:
        if self._sock is None:
            raise RuntimeError("not started")
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> TcpPassThrough:
        self._sock = socket.create_server(self.listen, reuse_port=False)
        self._sock.settimeout(0.1)
        self._t.spawn("tap-tcp-accept", self._accept)
        return self

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._t.stopping.is_set():
            try:
                client, _addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._t.spawn("tap-tcp-conn", functools.partial(self._serve, client))

    def _serve(self, client: socket.socket) -> None:
        with self._job_lock, contextlib.closing(client):
            try:
                printer = socket.create_connection(self.printer, timeout=self.connect_timeout)
            except OSError as exc:
                self.refused += 1
                # a reset, not an orderly close: the register sees a failed print at once
                with contextlib.suppress(OSError):
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))
                log.warning("tap: printer %s:%d unreachable (%s): register connection closed",
                            *self.printer, exc)
                return
            with contextlib.closing(printer):
                client.settimeout(0.1)
                printer.settimeout(0.1)
                done = threading.Event()
                back = threading.Thread(target=self._answers, args=(printer, client, done),
                                        daemon=True)
                back.start()
                try:
                    self._forward(client, printer, done)
                finally:
                    done.set()
                    back.join(2.0)
                    self.end_of_job()

    def _forward(self, client: socket.socket, printer: socket.socket,
                 done: threading.Event) -> None:
        printer_ok = True
        while not self._t.stopping.is_set() and not done.is_set():
            try:
                data = client.recv(READ_SIZE)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    printer.shutdown(socket.SHUT_WR)
                return
            if printer_ok:
                try:
                    printer.sendall(data)
                except OSError:
                    printer_ok = False  # the register then sees the reset on its next answer
                    with contextlib.suppress(OSError):
                        client.shutdown(socket.SHUT_RDWR)
            self.heard(data, TO_PRINTER)

    def _answers(self, printer: socket.socket, client: socket.socket,
                 done: threading.Event) -> None:
        while not self._t.stopping.is_set():
            try:
                data = printer.recv(READ_SIZE)
            except TimeoutError:
                if done.is_set():
                    return
                continue
            except OSError:
                break
            if not data:
                break
            with contextlib.suppress(OSError):
                client.sendall(data)
            self.heard(data, TO_REGISTER)
        done.set()

    def stop(self) -> None:
        self._t.stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # stop listening now, not at the next poll
            with contextlib.suppress(OSError):
                self._sock.close()
        self._t.join()


def start_transport(tap: TapSettings, heard: Heard, end_of_job: Callable[[], None]
                    ) -> PassiveSerialTap | SerialPassThrough | TcpPassThrough:
    """The configured transport, started."""
    if tap.transport == "passive-serial":
        return PassiveSerialTap(tap, heard).start()
    if tap.transport == "serial-pass-through":
        return SerialPassThrough(tap, heard).start()
    return TcpPassThrough(tap, heard, end_of_job).start()
