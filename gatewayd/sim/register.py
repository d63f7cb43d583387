"""A REGLINK/1 register: the stand-in for the real cash register in tests, demos and benches.

It serves a journal (record lines, ``str``, each beginning with its record number, no LF;
sent as CP932) over a byte link — usually a pseudo-terminal whose slave side a host opens
with pyserial, through a stable symlink. Each record is numbered by its own field 1 (a line
whose field 1 is unreadable takes the previous number + 1), and ``J n`` serves the records
from the first one numbered n or higher in journal order, so a journal that skips a number
(``journal_gen.skip_number``) or swaps two records is served as such a register would send
it: after a gap, the next record comes with its own, higher number. It follows
register-link.md sections 2–4 exactly:
S/J/K/C, the retry rule (same SEQ+CMD+DATA → previous response unchanged, forgotten 3 s after
answering), requests arriving while busy ignored, NAK both ways, a partial frame followed by
200 ms of silence discarded and answered with NAK, and never freeing uncommitted records.

Line faults for tests: flipped bits, dropped bytes, slow answers with SYN, silence, lost
responses, truncated responses and unplug/replug of the pty (the symlink is removed while
"unplugged", like a udev by-id link, and points at the new pty after replug). Everything the
register does is appended to ``events`` as ``(monotonic time, (name, ...))`` so a test can
check the order of ``("K", n)`` against the host's own commits.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pty
import random
import re
import select
import threading
import time
import tty
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Protocol

from gatewayd.errors import FrameDataError
from gatewayd.protocol.frames import (
    CMD_CLOCK,
    CMD_COMMIT,
    CMD_JOURNAL,
    CMD_STATUS,
    MAX_DATA,
    NAK,
    SYN,
    Control,
    Frame,
    FrameDecoder,
    FrameKind,
    RegisterStatus,
    StatusInfo,
    encode_response,
    format_record_no,
    pack_records,
    parse_clock,
    parse_record_no,
    record_number_field,
)

log = logging.getLogger("gatewayd.sim.register")

PARTIAL_SILENCE = 0.2  # s of silence after part of a frame: discard and NAK
RETRY_MEMORY = 3.0  # s after answering, the last request is forgotten
SYN_EVERY = 0.03  # s between SYN bytes while busy (spec: at most 60 ms)
UNSET_CLOCK_BASE = datetime(2000, 1, 1)
EVENT_LOG_SIZE = 200_000  # the newest events are kept (a long-running CLI stays bounded)
_FORBIDDEN = set(range(0x00, 0x09)) | set(range(0x0B, 0x20)) | {0x7F}
_CLOSE_NO = re.compile(rb"[1-9][0-9]{0,9}")


def _closes_day(raw: bytes) -> bool:
    """A Z whose close_no is 1 or unreadable ends a business day (section 5)."""
    fields = raw.split(b"\t")
    if len(fields) < 2 or fields[1] != b"Z":
        return False
    close_no = fields[3] if len(fields) > 3 else b""
    return close_no == b"1" or _CLOSE_NO.fullmatch(close_no) is None


# --- links -----------------------------------------------------------------------------------


class SimLink(Protocol):
    """The register's end of the wire."""

    def read(self, timeout: float) -> bytes:
        """What arrived within ``timeout`` (b"" when nothing, or while unplugged)."""
        ...

    def write(self, data: bytes) -> None:
        """Send; silently lost while unplugged (like a pulled cable)."""
        ...

    def unplug(self) -> None: ...

    def replug(self) -> None: ...

    def close(self) -> None: ...


class FdLink:
    """A link over one file descriptor (a socketpair end, a pipe pair or a pty master)."""

    def __init__(self, read_fd: int, write_fd: int | None = None) -> None:
        self._rfd = read_fd
        self._wfd = read_fd if write_fd is None else write_fd
        self._plugged = True
        self._lock = threading.Lock()

    def read(self, timeout: float) -> bytes:
        if not self._plugged:
            time.sleep(timeout)
            return b""
        ready, _, _ = select.select([self._rfd], [], [], timeout)
        if not ready:
            return b""
        try:
            return os.read(self._rfd, 65536)
        except OSError:
            time.sleep(timeout)
            return b""

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._plugged:
                _write_all(self._wfd, data)

    def unplug(self) -> None:
        self._plugged = False

    def replug(self) -> None:
        self._plugged = True

    def close(self) -> None:
        self._plugged = False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 0.05)
            continue
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EBADF, errno.EPIPE):
                return  # the other side is gone: like a cable with nobody at the end
            raise
        view = view[n:]


class PtyLink:
    """A pseudo-terminal in raw mode; ``link_path`` (optional) is a stable symlink to its slave.

    ``unplug`` closes both sides and removes the symlink: the host's next read fails exactly
    like a USB-serial adapter pulled out. ``replug`` opens a fresh pty behind the same symlink.
    """

    def __init__(self, link_path: str | Path | None = None) -> None:
        self.link_path = Path(link_path) if link_path is not None else None
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self.slave_path = ""
        self._open()

    def _open(self) -> None:
        master, slave = pty.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.slave_path = os.ttyname(slave)
        if self.link_path is not None:
            tmp = self.link_path.with_name(self.link_path.name + f".{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(self.slave_path, tmp)
            os.replace(tmp, self.link_path)

    @property
    def plugged(self) -> bool:
        return self._master is not None

    @property
    def path(self) -> str:
        """What a host opens: the symlink when there is one, else the slave device."""
        return str(self.link_path) if self.link_path is not None else self.slave_path

    def read(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                fd = self._master
                if fd is not None:
                    ready, _, _ = select.select([fd], [], [], min(0.05, timeout))
                    if ready:
                        try:
                            return os.read(fd, 65536)
                        except (BlockingIOError, InterruptedError):
                            pass
                        except OSError:
                            return b""
            if fd is None:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            if time.monotonic() >= deadline:
                return b""

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._master is not None:
                _write_all(self._master, data)

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def unplug(self) -> None:
        with self._lock:
            self._close_fds()
            if self.link_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.link_path.unlink()

    def replug(self) -> None:
        with self._lock:
            if self._master is None:
                self._open()

    def close(self) -> None:
        self.unplug()


# --- faults ----------------------------------------------------------------------------------


@dataclass
class LineFaults:
    """Faults the simulated line adds. Rates are random (seeded); counts are one-shot."""

    flip_rate: float = 0.0  # per frame, each direction: one bit flipped
    drop_rate: float = 0.0  # per byte sent: the byte is lost
    syn_delay: float = 0.0  # every answer is prepared this long, SYN every SYN_EVERY
    unplug_every: float | None = None  # s between unplugs (replug after unplug_for)
    unplug_for: float = 0.5
    silent: bool = False  # the register answers nothing (off, or a broken wire)
    # one-shot counters for tests
    corrupt_responses: int = 0  # flip one bit (never the 01) of the next n answers
    corrupt_requests: int = 0  # the next n requests arrive damaged: answered with NAK
    lose_responses: int = 0  # execute the next n requests but send nothing back
    ignore_requests: int = 0  # the next n requests never arrive
    truncate_responses: int = 0  # send only the first half of the next n answers
    slow_responses: int = 0  # the next n answers take slow_delay s, with SYN
    slow_delay: float = 0.0


# --- the register ----------------------------------------------------------------------------


class RegisterSimulator:
    """The register side of REGLINK/1, serving a journal that grows as days are revealed.

    ``visible_days``: how many business days are visible at start (None: the whole journal);
    ``day_interval``: reveal one more day every so many seconds while serving.
    ``capacity``: records the journal memory holds before it is full (S2 bit 1): beyond it,
    records stay hidden ("the register refuses new sales") until the host commits.
    """

    def __init__(
        self,
        journal: Iterable[str] = (),
        *,
        store_code: str = "0001",
        terminal_no: str = "01",
        model: str = "SIM-REG",
        firmware: str = "1.0",
        clock_set: bool = True,
        now: Callable[[], datetime] = datetime.now,
        visible_days: int | None = None,
        day_interval: float | None = None,
        capacity: int = 1_000_000,
        keep_committed: bool = False,
        faults: LineFaults | None = None,
        seed: int = 0,
        line_rate: int | None = None,
    ) -> None:
        self.store_code = store_code
        self.terminal_no = terminal_no
        self.model = model
        self.firmware = firmware
        self.clock_set = clock_set
        self._now = now
        self._clock_offset = timedelta(0)
        self._clock_base = time.monotonic()
        self.capacity = capacity
        self.keep_committed = keep_committed
        self.faults = faults or LineFaults()
        self.line_rate = line_rate
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._records: list[bytes] = []
        self._numbers: list[int] = []  # each record's own number (field 1, else previous + 1)
        self._tops: list[int] = []  # the highest number up to each record (for bisect)
        self._first_no = 1  # the number of _records[0]
        self._day_ends: list[int] = []  # index after each day-closing Z
        self._bdate_cache: tuple[int, date | None] = (-1, None)
        self._visible = 0
        self._limit = 0  # how many records the register has "written" so far
        self.committed = 0
        self._freed_upto = 0
        self.events: deque[tuple[float, tuple[object, ...]]] = deque(maxlen=EVENT_LOG_SIZE)
        self.received: list[Frame] = []  # every well-formed request, in arrival order
        self.retry_memory = RETRY_MEMORY
        self.day_interval = day_interval
        self._next_reveal: float | None = None
        self._last_key: tuple[int, str, bytes] | None = None
        self._last_response: bytes | None = None
        self._answered_at = 0.0
        self._stop = threading.Event()
        self._serving_stop = self._stop
        self._thread: threading.Thread | None = None
        self.link: SimLink | None = None
        self.append(journal, reveal=visible_days is None)
        if visible_days is not None:
            for _ in range(visible_days):
                self.reveal_next_day()

    # -- journal -----------------------------------------------------------------------------

    def append(self, lines: Iterable[str], *, reveal: bool = True) -> int:
        """Add records at the end of the journal; visible at once unless ``reveal=False``.

        Returns how many were added. Raises ValueError for a line the link cannot carry.
        """
        added = 0
        with self._lock:
            for line in lines:
                raw = line.encode("cp932")
                if len(raw) + 1 > MAX_DATA or any(b in _FORBIDDEN for b in raw) or b"\n" in raw:
                    raise ValueError(f"journal line {len(self._records) + 1} cannot be sent: "
                                     f"{line[:40]!r}")
                own = record_number_field(raw)
                if not self._records and self._limit == 0:
                    # a journal may begin after older records the register already freed
                    first = own or 1
                    self._first_no = first
                    self.committed = self._freed_upto = first - 1
                number = own if own is not None else (
                    self._numbers[-1] + 1 if self._numbers else self._first_no)
                self._records.append(raw)
                self._numbers.append(number)
                self._tops.append(max(number, self._tops[-1]) if self._tops else number)
                if _closes_day(raw):
                    self._day_ends.append(len(self._records))
                added += 1
            if reveal:
                self._limit = len(self._records)
            self._update_visible()
        return added

    def reveal_next_day(self) -> bool:
        """Make the next business day (through its closing Z) visible; False when none is left."""
        with self._lock:
            if self._limit >= len(self._records):
                return False
            ends = [e for e in self._day_ends if e > self._limit]
            self._limit = ends[0] if ends else len(self._records)
            self._update_visible()
            self._log("reveal", self._tops[self._limit - 1])
            return True

    def _update_visible(self) -> None:
        committed_index = bisect_right(self._tops, self.committed)
        self._visible = min(self._limit, committed_index + self.capacity)

    @property
    def last_record_no(self) -> int:
        with self._lock:
            return self._tops[self._visible - 1] if self._visible else self._first_no - 1

    def written_records(self) -> list[tuple[int, bytes]]:
        """The register's own view: ``(number, raw)`` of every record written so far, in
        journal order (what a host must end up storing, each under that number)."""
        with self._lock:
            return list(zip(self._numbers[: self._visible], self._records[: self._visible],
                            strict=True))

    @property
    def uncommitted(self) -> int:
        """Written records numbered above committed_record_no (0 once the host caught up)."""
        with self._lock:
            return self._visible - bisect_right(self._tops, self.committed)

    @property
    def total_records(self) -> int:
        """Every record the simulator knows, written by the register or not yet."""
        return len(self._records)

    @property
    def hidden(self) -> int:
        """Records known to the simulator but not yet written by the register."""
        return len(self._records) - self._visible

    def business_date(self) -> date | None:
        """The open day's date: the last visible O not followed by its day-closing Z."""
        with self._lock:
            if self._bdate_cache[0] == self._visible:
                return self._bdate_cache[1]
            result = self._find_business_date()
            self._bdate_cache = (self._visible, result)
            return result

    def _find_business_date(self) -> date | None:
        with self._lock:
            closed_until = max((e for e in self._day_ends if e <= self._visible), default=0)
            for index in range(self._visible - 1, closed_until - 1, -1):
                fields = self._records[index].split(b"\t")
                if len(fields) > 2 and fields[1] == b"O":
                    try:
                        return datetime.strptime(fields[2].decode("ascii"), "%Y%m%d").date()
                    except (ValueError, UnicodeDecodeError):
                        return None
            return None

    def clock(self) -> datetime:
        if not self.clock_set:
            return UNSET_CLOCK_BASE + timedelta(seconds=time.monotonic() - self._clock_base)
        return (self._now() + self._clock_offset).replace(microsecond=0)

    def status_info(self) -> StatusInfo:
        with self._lock:
            return StatusInfo(
                model=self.model,
                firmware=self.firmware,
                store_code=self.store_code,
                terminal_no=self.terminal_no,
                business_date=self.business_date(),
                last_record_no=self.last_record_no,
                committed_record_no=self.committed,
                clock=self.clock(),
            )

    def register_status(self, **refusal: bool) -> RegisterStatus:
        with self._lock:
            last = self.last_record_no
            close_nos = [self._numbers[e - 1] for e in self._day_ends if e <= self._visible]
            waiting = self._visible - bisect_right(self._tops, self.committed)
            return RegisterStatus(
                day_open=self.business_date() is not None,
                records_waiting=last > self.committed,
                close_waiting=any(n > self.committed for n in close_nos),
                clock_not_set=not self.clock_set,
                journal_nearly_full=waiting >= 0.9 * self.capacity,
                journal_full=waiting >= self.capacity,
                **refusal,
            )

    # -- commands (section 4) ----------------------------------------------------------------

    def execute(self, request: Frame) -> tuple[bytes, RegisterStatus]:
        """Run one accepted request; returns the response DATA and STATUS."""
        cmd, data = request.cmd, request.data
        with self._lock:
            if cmd == CMD_STATUS:
                if data:
                    return self._refuse("S", malformed=True)
                self._log("S")
                return self.status_info().encode(), self.register_status()
            if cmd == CMD_JOURNAL:
                try:
                    n = parse_record_no(data)
                except FrameDataError:
                    return self._refuse("J", malformed=True)
                if n == 0:
                    return self._refuse("J", malformed=True)
                if n <= self._freed_upto:
                    return self._refuse("J", out_of_range=True)
                self._log("J", n)
                if n > self.last_record_no:
                    return b"", self.register_status()
                start = bisect_left(self._tops, n)  # the first record numbered n or more
                batch = self._records[start : min(self._visible, start + MAX_DATA // 2)]
                count = pack_records(batch)
                return b"".join(r + b"\n" for r in batch[:count]), self.register_status()
            if cmd == CMD_COMMIT:
                try:
                    n = parse_record_no(data)
                except FrameDataError:
                    return self._refuse("K", malformed=True)
                if n > self.last_record_no:
                    return self._refuse("K", out_of_range=True)
                self._log("K", n)
                if n > self.committed:
                    self.committed = n
                    if not self.keep_committed:
                        self._freed_upto = n
                    self._update_visible()
                return format_record_no(n), self.register_status()
            if cmd == CMD_CLOCK:
                try:
                    moment = parse_clock(data)
                except FrameDataError:
                    return self._refuse("C", malformed=True)
                self._clock_offset = moment - self._now().replace(microsecond=0)
                self.clock_set = True
                self._log("C", data.decode("ascii"))
                return data, self.register_status()
            return self._refuse(cmd, unknown_command=True)

    def _refuse(self, cmd: str, **why: bool) -> tuple[bytes, RegisterStatus]:
        self._log("refused", cmd, next(iter(why)))
        return b"", self.register_status(refused=True, **why)

    def _log(self, *event: object) -> None:
        self.events.append((time.monotonic(), event))

    def events_named(self, name: str) -> list[tuple[object, ...]]:
        return [e for _, e in list(self.events) if e and e[0] == name]

    # -- serving -----------------------------------------------------------------------------

    def start(self, link: SimLink) -> threading.Thread:
        """Serve ``link`` in a daemon thread until ``stop()``."""
        self.link = link
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.serve, args=(link, self._stop), name="sim-register", daemon=True
        )
        self._thread.start()
        return self._thread

    def start_pty(self, link_path: str | Path | None = None) -> PtyLink:
        """Open a raw pty (symlinked at ``link_path``) and serve it in a thread."""
        link = PtyLink(link_path)
        self.start(link)
        return link

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self.link is not None:
            self.link.close()

    def unplug(self) -> None:
        if self.link is not None:
            self.link.unplug()
            self._log("unplug")

    def replug(self) -> None:
        if self.link is not None:
            self.link.replug()
            self._log("replug")

    def inject(self, **counts: int) -> None:
        """Add one-shot faults, e.g. ``inject(lose_responses=1)``."""
        with self._lock:
            for name, value in counts.items():
                setattr(self.faults, name, getattr(self.faults, name) + value)

    def _take(self, name: str) -> bool:
        with self._lock:
            left = getattr(self.faults, name)
            if left > 0:
                setattr(self.faults, name, left - 1)
                return True
            return False

    def serve(self, link: SimLink, stop: threading.Event) -> None:
        """The register's receive loop (runs until ``stop`` is set)."""
        decoder = FrameDecoder(FrameKind.REQUEST)
        self._serving_stop = stop
        last_rx = 0.0
        next_unplug = (
            time.monotonic() + self.faults.unplug_every if self.faults.unplug_every else None
        )
        if self.day_interval is not None:
            self._next_reveal = time.monotonic() + self.day_interval
        while not stop.is_set():
            now = time.monotonic()
            if self._next_reveal is not None and now >= self._next_reveal:
                self.reveal_next_day()
                self._next_reveal = now + (self.day_interval or 0.0)
            if next_unplug is not None and now >= next_unplug:
                link.unplug()
                self._log("unplug")
                stop.wait(self.faults.unplug_for)
                link.replug()
                self._log("replug")
                decoder.reset()
                next_unplug = time.monotonic() + (self.faults.unplug_every or 0.0)
            with self._lock:
                self._update_visible()
            chunk = link.read(0.02)
            now = time.monotonic()
            if not chunk:
                if decoder.pending and now - last_rx >= PARTIAL_SILENCE:
                    err = decoder.discard_partial()
                    self._log("NAK-sent", str(err))
                    self._send(link, bytes([NAK]), frame=False)
                continue
            last_rx = now
            if self.faults.silent:
                decoder.reset()
                continue
            if self.faults.flip_rate and self._rng.random() < self.faults.flip_rate:
                chunk = self._flip(chunk, keep_first=False)
            for event in decoder.feed(chunk):
                self._on_event(link, event, decoder)

    def _on_event(self, link: SimLink, event: object, decoder: FrameDecoder) -> None:
        if isinstance(event, Control):  # only NAK reaches here (SYN is skipped)
            now = time.monotonic()
            if self._last_response is not None and now - self._answered_at < self.retry_memory:
                self._log("NAK-recv")
                self._send(link, self._last_response)
            return
        if not isinstance(event, Frame):
            self._log("NAK-sent", str(event))
            self._send(link, bytes([NAK]), frame=False)
            return
        if self._take("ignore_requests"):
            self._log("ignored", event.cmd)
            return
        self.received.append(event)
        if self._take("corrupt_requests"):
            self._log("NAK-sent", "injected damage")
            self._send(link, bytes([NAK]), frame=False)
            return
        key = (event.seq, event.cmd, event.data)
        now = time.monotonic()
        delay = self.faults.syn_delay
        if self._take("slow_responses"):
            delay = max(delay, self.faults.slow_delay)
        if (
            key == self._last_key
            and self._last_response is not None
            and now - self._answered_at < self.retry_memory
        ):
            self._log("retry", event.cmd, event.seq)
            response = self._last_response
        else:
            data, status = self.execute(event)
            response = encode_response(event.seq, event.cmd, data, status.encode())
            self._last_key, self._last_response = key, response
        if delay > 0:
            self._busy(link, delay, decoder)
        self._answered_at = time.monotonic()
        if self._take("lose_responses"):
            self._log("lost", event.cmd)
            return
        self._send(link, response)

    def _busy(self, link: SimLink, delay: float, decoder: FrameDecoder) -> None:
        """Prepare an answer for ``delay`` s: SYN every SYN_EVERY, ignore whatever arrives."""
        end = time.monotonic() + delay
        self._log("busy", delay)
        while True:
            link.write(bytes([SYN]))
            self._log("SYN")
            left = end - time.monotonic()
            if left <= 0 or self._serving_stop.is_set():
                break
            if link.read(min(SYN_EVERY, left)):
                self._log("ignored-busy")
        decoder.reset()

    def _flip(self, data: bytes, *, keep_first: bool) -> bytes:
        if len(data) <= (1 if keep_first else 0):
            return data
        raw = bytearray(data)
        pos = self._rng.randrange(1 if keep_first else 0, len(raw))
        raw[pos] ^= 1 << self._rng.randrange(8)
        return bytes(raw)

    def _send(self, link: SimLink, data: bytes, *, frame: bool = True) -> None:
        if frame:
            if self._take("corrupt_responses"):
                data = self._flip(data, keep_first=True)
                self._log("corrupted")
            elif self.faults.flip_rate and self._rng.random() < self.faults.flip_rate:
                data = self._flip(data, keep_first=False)
            if self._take("truncate_responses"):
                data = data[: len(data) // 2]
                self._log("truncated")
        if self.faults.drop_rate:
            data = bytes(b for b in data if self._rng.random() >= self.faults.drop_rate)
        if not self.line_rate:
            link.write(data)
            return
        per_byte = 10.0 / self.line_rate  # 8N1: ten bit times per byte
        start = time.monotonic()
        for offset in range(0, len(data), 256):
            link.write(data[offset : offset + 256])
            due = start + (offset + 256) * per_byte
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)


# --- journal files ---------------------------------------------------------------------------


def read_journal_file(path: str | Path) -> list[str]:
    """A journal file: CP932, one record per line (LF or CRLF)."""
    text = Path(path).read_bytes().decode("cp932")
    return [line.rstrip("\r") for line in text.split("\n") if line.rstrip("\r")]


def write_journal_file(path: str | Path, lines: Sequence[str]) -> None:
    Path(path).write_bytes("".join(line + "\n" for line in lines).encode("cp932"))
