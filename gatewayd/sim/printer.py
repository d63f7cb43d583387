"""An ESC/POS receipt printer that lives in memory, and on a pseudo-terminal.

``SimPrinter`` is the model: bytes in, status replies out. It answers ``DLE EOT 1/2/3/4`` from a
state you change while it runs (paper out, near end, cover open, error, drawer open, offline,
silent), records what went on paper, what it had to drop because it could not print, and
every drawer kick. ``PtyPrinterSimulator`` puts a model behind a pty so that the real driver
(pyserial through python-escpos) talks to it; the USB tests wire the same model to a fake
pyusb backend.

Data that arrives while the printer cannot print (paper out, cover open, error, offline) is
kept in ``lost`` instead of being printed later: a real printer would often print it after
recovery, but a gateway that sends a slip to a printer it knows is out of paper is wrong, and
the tests want to see that.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

from gatewayd.drivers.printer_settings import PinLevel
from gatewayd.escpos_text import DecodedPrint, DrawerKick, decode, kick_from_args, tokenize


@dataclass(frozen=True, slots=True)
class SimState:
    """What the simulated printer reports. ``silent`` = no answer and nothing printed."""

    silent: bool = False
    offline: bool = False
    cover_open: bool = False
    paper_near_end: bool = False
    paper_out: bool = False
    error: bool = False
    autocutter_error: bool = False
    drawer_open: bool = False
    drawer_open_level: PinLevel = PinLevel.HIGH  # how the simulated drawer switch is wired
    kick_opens_drawer: bool = True
    garbled: bool = False  # answer bytes that are not status bytes (line noise)
    reply_delay: float = 0.0  # seconds before a reply (pty only): a slow or late printer

    @property
    def can_print(self) -> bool:
        return not (self.silent or self.offline or self.cover_open or self.paper_out
                    or self.error or self.autocutter_error)

    @property
    def pin3_high(self) -> bool:
        return self.drawer_open == (self.drawer_open_level is PinLevel.HIGH)


def status_byte(state: SimState, n: int) -> int:
    """The reply to ``DLE EOT n`` for ``state`` (fixed bits 0x12 always set)."""
    value = 0x12
    any_error = state.error or state.autocutter_error
    if n == 1:
        value |= 0x04 if state.pin3_high else 0
        value |= 0x08 if not state.can_print else 0
        value |= 0x20 if any_error else 0
    elif n == 2:
        value |= 0x04 if state.cover_open else 0
        value |= 0x20 if state.paper_out else 0
        value |= 0x40 if any_error else 0
    elif n == 3:
        value |= 0x08 if state.autocutter_error else 0
        value |= 0x20 if state.error and not state.autocutter_error else 0
    elif n == 4:
        value |= 0x0C if state.paper_near_end else 0
        value |= 0x60 if state.paper_out else 0
    return value


class SimPrinter:
    """Thread-safe printer model: ``receive(data)`` returns the bytes the printer sends back."""

    def __init__(self, state: SimState | None = None,
                 on_job: Callable[[bytes], None] | None = None) -> None:
        self._lock = threading.Condition()
        self._state = state or SimState()
        self._pending = b""
        self._job_start = 0
        self.printed = bytearray()
        self.lost = bytearray()
        self.kicks: list[DrawerKick] = []
        self.queries: list[int] = []
        self.on_job = on_job

    @property
    def state(self) -> SimState:
        with self._lock:
            return self._state

    def set(self, **changes: object) -> SimState:
        """Change the state, e.g. ``sim.set(paper_out=True)``."""
        with self._lock:
            self._state = replace(self._state, **changes)  # type: ignore[arg-type]
            self._lock.notify_all()
            return self._state

    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the host; returns the replies (status bytes) in order."""
        replies = bytearray()
        jobs: list[bytes] = []
        with self._lock:
            buf = self._pending + data
            tokens, used = tokenize(buf)
            self._pending = buf[used:]
            state = self._state
            for tok in tokens:
                raw = tok.data if tok.kind == "text" else tok.code + tok.args
                if tok.code == b"\x10\x04":
                    self.queries.append(tok.args[0])
                    if state.silent:
                        continue
                    replies.append(0xFF if state.garbled else status_byte(state, tok.args[0]))
                    continue
                if tok.code in (b"\x10\x05", b"\x10\x14"):
                    continue  # other real-time commands: accepted, no effect here
                if not state.can_print:
                    self.lost += raw
                    continue
                self.printed += raw
                if tok.code == b"\x1bp":
                    self.kicks.append(kick_from_args(tok.args))
                    if state.kick_opens_drawer:
                        state = self._state = replace(state, drawer_open=True)
                if tok.code == b"\x1dV":
                    jobs.append(bytes(self.printed[self._job_start:]))
                    self._job_start = len(self.printed)
            self._lock.notify_all()
        if self.on_job is not None:
            for job in jobs:
                self.on_job(job)
        return bytes(replies)

    def decoded(self, *, columns: int | None = None) -> DecodedPrint:
        with self._lock:
            return decode(bytes(self.printed), columns=columns)

    def jobs(self) -> list[bytes]:
        """What was printed, split after each cut (a last uncut part included)."""
        with self._lock:
            data = bytes(self.printed)
        parts: list[bytes] = []
        start = 0
        tokens, _ = tokenize(data)
        pos = 0
        for tok in tokens:
            pos += len(tok.data) if tok.kind == "text" else len(tok.code) + len(tok.args)
            if tok.code == b"\x1dV":
                parts.append(data[start:pos])
                start = pos
        if start < len(data):
            parts.append(data[start:])
        return parts

    def wait_for(self, predicate: Callable[[SimPrinter], bool], timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds (checked whenever bytes arrive)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.05))
            return True


class PtyPrinterSimulator:
    """A ``SimPrinter`` on a pseudo-terminal: open ``port`` with pyserial like a real printer.

    ``link`` makes a symlink to the pty (a stable name for a config file). Use as a context
    manager or call ``start()``/``stop()``.
    """

    def __init__(self, printer: SimPrinter | None = None, *, link: Path | None = None) -> None:
        self.printer = printer or SimPrinter()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing before the client configures it
        self.port = os.ttyname(self._slave)
        self.link = link
        if link is not None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(self.port)
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="sim-printer", daemon=True)

    @property
    def path(self) -> str:
        return str(self.link) if self.link is not None else self.port

    def start(self) -> PtyPrinterSimulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        with self._write_lock:  # a delayed reply must not write to a reused descriptor
            for fd in (self._master, self._slave):
                with contextlib.suppress(OSError):
                    os.close(fd)
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()

    def __enter__(self) -> PtyPrinterSimulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _reply(self, data: bytes) -> None:
        with self._write_lock, contextlib.suppress(OSError):
            if not self._stop.is_set():
                os.write(self._master, data)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], 0.05)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            if not data:
                continue
            replies = self.printer.receive(data)
            if not replies:
                continue
            delay = self.printer.state.reply_delay
            if delay > 0:
                timer = threading.Timer(delay, self._reply, args=(replies,))
                timer.daemon = True
                timer.start()
            else:
                self._reply(replies)
