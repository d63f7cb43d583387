"""A register that only prints, on a pty or over TCP, and a TCP printer (for the print tap).

``PtyPrintRegister`` owns the master end of a pty: the box opens ``port`` (the slave) as the
register side of a tap and receives exactly the bytes ``send`` writes; ``status`` sends
``DLE EOT n`` and waits for the answer, as a register polls its printer. ``print_over_tcp``
prints one job the way a network register does (connect to 9100, send, close).
``TcpPrinterSim`` is a LAN printer on 127.0.0.1 (the ``SimPrinter`` model: it keeps the jobs
and answers status queries); ``unplug``/``replug`` close and reopen its listener.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
import tty

from gatewayd.sim.printer import SimPrinter


class PtyPrintRegister:
    """The register side of a serial print line, on a pseudo-terminal."""

    def __init__(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        self._master: int | None = master
        self._slave: int | None = slave
        self.port = os.ttyname(slave)

    def send(self, data: bytes, *, chunk: int = 256, baudrate: int | None = None) -> None:
        """Write ``data`` in chunks; with ``baudrate``, no faster than the line (10 bits/byte)."""
        assert self._master is not None
        for i in range(0, len(data), chunk):
            part = data[i:i + chunk]
            if baudrate:  # the line time first: when send returns, the last byte just left
                time.sleep(len(part) * 10 / baudrate)
            view = memoryview(part)
            while view:
                written = os.write(self._master, view)
                view = view[written:]

    def read(self, timeout: float) -> bytes:
        """What came back from the printer within ``timeout`` (b"" when nothing)."""
        assert self._master is not None
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return b""
        with contextlib.suppress(OSError):
            return os.read(self._master, 4096)
        return b""

    def status(self, n: int = 1, timeout: float = 1.0) -> bytes:
        """``DLE EOT n`` and the printer's one-byte answer (b"" when none came)."""
        self.send(bytes([0x10, 0x04, n]))
        return self.read(timeout)

    def close(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None


def print_over_tcp(address: tuple[str, int], data: bytes, *, answer_wait: float = 0.0,
                   timeout: float = 3.0) -> tuple[bool, bytes]:
    """One job over raw TCP: (sent, bytes answered). ``sent`` False when refused or reset."""
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(data)
            answers = b""
            if answer_wait:
                sock.settimeout(answer_wait)
                with contextlib.suppress(TimeoutError, OSError):
                    answers = sock.recv(4096)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(timeout)
            with contextlib.suppress(TimeoutError, OSError):
                while sock.recv(4096):
                    pass
            return True, answers
    except OSError:
        return False, b""


class TcpPrinterSim:
    """A raw-TCP (9100) printer on 127.0.0.1: keeps every byte and answers status queries."""

    def __init__(self, printer: SimPrinter | None = None, port: int = 0) -> None:
        self.printer = printer or SimPrinter()
        self.received = bytearray()
        self._lock = threading.Lock()
        self._port = port
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listen()

    def _listen(self) -> None:
        sock = socket.create_server(("127.0.0.1", self._port))
        sock.settimeout(0.1)
        self._port = sock.getsockname()[1]
        self._sock = sock
        t = threading.Thread(target=self._accept, args=(sock,), daemon=True)
        self._threads.append(t)
        t.start()

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self._port

    def _accept(self, sock: socket.socket) -> None:
        while not self._stop.is_set() and self._sock is sock:
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.1)
        with contextlib.closing(conn):
            while not self._stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                with self._lock:
                    self.received += data
                    replies = self.printer.receive(data)
                if replies:
                    with contextlib.suppress(OSError):
                        conn.sendall(replies)

    def unplug(self) -> None:
        """Off: the listener is shut (a poll in another thread would keep it listening)."""
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def replug(self) -> None:
        if self._sock is None:
            self._listen()

    def stop(self) -> None:
        self._stop.set()
        self.unplug()
        for t in self._threads:
            t.join(1.0)
