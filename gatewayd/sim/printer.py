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

    ``unplug()`` is the fault of a USB-serial adapter pulled out: both ends of the pty are
    closed (the host's open port then fails on every call, pyserial raising ``termios.error``
    from ``reset_input_buffer`` like a real unplug) and the symlink is removed, as udev removes
    a by-id link. ``replug()`` opens a fresh pty behind the same symlink: a host that reopens
    ``path`` finds the printer again, one that keeps its old port does not.
    """

    def __init__(self, printer: SimPrinter | None = None, *, link: Path | None = None) -> None:
        self.printer = printer or SimPrinter()
        self.link = link
        self._lock = threading.Lock()  # the pty's descriptors: serve, replies, unplug
        self._master: int | None = None
        self._slave: int | None = None
        self.port = ""
        self._open_pty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sim-printer", daemon=True)

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing before the client configures it
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        if self.link is not None:  # atomic: a host never sees a half-made link
            tmp = self.link.with_name(self.link.name + f".{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.port)
            os.replace(tmp, self.link)

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()

    @property
    def path(self) -> str:
        return str(self.link) if self.link is not None else self.port

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def start(self) -> PtyPrinterSimulator:
        self._thread.start()
        return self

    def unplug(self) -> None:
        """Pull the cable: the pty is closed and the symlink removed (see the class)."""
        with self._lock:
            self._close_pty()

    def replug(self) -> None:
        """Plug back in: a new pty behind the same symlink (no-op when plugged)."""
        with self._lock:
            if self._master is None:
                self._open_pty()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        with self._lock:  # a delayed reply must not write to a reused descriptor
            self._close_pty()

    def __enter__(self) -> PtyPrinterSimulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _reply(self, data: bytes) -> None:
        with self._lock, contextlib.suppress(OSError):
            if not self._stop.is_set() and self._master is not None:
                os.write(self._master, data)

    def _read(self) -> bytes:
        """What the host sent within 50 ms (b"" when nothing, or while unplugged)."""
        fd = self._master
        if fd is not None:
            try:  # select outside the lock: a late reply (Timer) must not wait for it
                ready, _, _ = select.select([fd], [], [], 0.05)
            except (OSError, ValueError):
                ready = []  # closed by unplug() meanwhile
            if ready:
                with self._lock:
                    if fd == self._master:  # still ours, not closed (or reused) meanwhile
                        with contextlib.suppress(OSError):
                            return os.read(fd, 4096)
            else:
                return b""
        self._stop.wait(0.05)
        return b""

    def _serve(self) -> None:
        while not self._stop.is_set():
            data = self._read()
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
