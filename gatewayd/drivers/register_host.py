"""The host side of REGLINK/1 (register-link.md sections 2a and 4): one register, one thread.

Every ``poll_interval`` the host asks ``S``. When the register holds records the host has not
stored, it reads them with ``J`` from its last stored record + 1, numbers each record by its
own field 1 (``place_records``: never by its place in the answer, so a number the register
skipped stays a hole that the day checks report), hands them to the ``JournalSink``, and only
after the sink returns (the records are durably committed) tells the register ``K n`` for the
highest number stored — past any gap, so a register with a gap never fills up. It repeats
while records come.

The link rules live in ``request``: 500 ms for an answer (or a SYN, which restarts the wait),
200 ms between bytes once an answer began, the same frame (same SEQ) resent up to 3 more
times on timeout or NAK, a NAK sent for every bad answer and four of those counting as a
timeout. After the fourth unanswered send, or at once on a port error, the link is down:
the port is closed and reopened with backoff (1 s doubling to 30 s); the next poll starts
with ``S`` and re-sends ``K`` when the register's committed_record_no is behind the store.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from gatewayd.errors import (
    ConfigError,
    FrameDataError,
    FrameRuleError,
    GatewayError,
    LinkDown,
    PortError,
    ProtocolError,
    RegisterRefused,
    StorageError,
)
from gatewayd.protocol.frames import (
    CMD_CLOCK,
    CMD_COMMIT,
    CMD_JOURNAL,
    CMD_STATUS,
    NAK,
    SEQ_MAX,
    SEQ_MIN,
    Control,
    Frame,
    FrameDecoder,
    FrameKind,
    Placement,
    RegisterStatus,
    StatusInfo,
    encode_request,
    format_clock,
    format_record_no,
    next_seq,
    parse_record_no,
    parse_status_info,
    place_records,
    split_journal_data,
)

from .transport import Transport, exception_text, open_transport

logger = logging.getLogger("gatewayd.register")


class JournalSink(Protocol):
    """Where the host puts the records it reads (the journal store, in the daemon)."""

    def last_stored_record(self) -> int:
        """The highest record number durably stored for this register (0 when none)."""
        ...

    def store_records(self, records: Sequence[tuple[int, bytes]]) -> int:
        """Durably commit ``(number, raw)`` records (raw CP932 bytes, no LF), in the order sent.

        Each is kept under its number, once (a repeat is not stored again). Returns the
        highest stored record number only once the records are on disk (fsync'd); raises a
        ``StorageError`` when it cannot commit (then no ``K`` is sent).
        """
        ...


@dataclass(frozen=True, slots=True)
class HostConfig:
    """Settings of one register link (times in seconds)."""

    register_id: str
    port: str
    baudrate: int = 115200
    poll_interval: float = 2.0
    response_timeout: float = 0.5
    inter_byte_timeout: float = 0.2
    max_sends: int = 4
    max_naks: int = 4
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    set_clock: bool = True
    expect_store_code: str | None = None
    expect_terminal_no: str | None = None


@dataclass(slots=True)
class HostCounters:
    """Monotonic counters for /metrics."""

    frames_sent: int = 0
    resends: int = 0
    naks_sent: int = 0
    naks_received: int = 0
    syns_received: int = 0
    frame_errors: int = 0
    stale_frames: int = 0
    timeouts: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    exchanges: int = 0
    refusals: int = 0
    link_downs: int = 0
    open_failures: int = 0
    records_stored: int = 0
    commits: int = 0
    store_failures: int = 0
    records_missing: int = 0  # numbers the register skipped (gaps in its journal)
    unnumbered_records: int = 0  # records whose field 1 could not be read
    late_records: int = 0  # records not numbered above every one before them


@dataclass(frozen=True, slots=True)
class HostState:
    """A snapshot for the status page."""

    register_id: str
    link_up: bool
    current_error: str | None  # the problem of the latest cycle; None once a cycle is clean
    last_error: str | None  # the latest problem ever (kept for the status page's history)
    last_error_at: datetime | None
    last_info: StatusInfo | None
    last_status: RegisterStatus | None
    last_stored: int | None
    last_poll_at: datetime | None
    backoff: float
    counters: HostCounters = field(default_factory=HostCounters)
    current_exception: BaseException | None = None  # current_error's exception (its class
    # says who acts: a StorageError is the box's disk, a LinkDown the cable)


def _numbers(numbers: Sequence[int]) -> str:
    shown = ", ".join(map(str, numbers[:10]))
    return shown + (f" … ({len(numbers)})" if len(numbers) > 10 else "")


class _Outcome:
    TIMEOUT = "timeout"
    NAK = "nak"


class RegisterHost:
    """Drives one register. ``start()`` runs it in a thread; ``stop()`` ends it.

    Injectable for tests: ``transport_factory`` (opens the port), ``clock`` (the time sent
    with ``C``), ``sleep`` (backoff waits; default waits on the stop event) and ``rng`` (the
    first SEQ).
    """

    def __init__(
        self,
        config: HostConfig,
        sink: JournalSink,
        *,
        transport_factory: Callable[[], Transport] | None = None,
        clock: Callable[[], datetime] = datetime.now,
        sleep: Callable[[float], Any] | None = None,
        rng: random.Random | None = None,
        on_status: Callable[[StatusInfo], None] | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self._factory = transport_factory or (
            lambda: open_transport(config.port, config.baudrate)
        )
        self._clock = clock
        self.stop_event = stop_event or threading.Event()
        self._sleep = sleep or self.stop_event.wait
        self._on_status = on_status
        self._seq = (rng or random.Random()).randint(SEQ_MIN, SEQ_MAX)
        self._transport: Transport | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.counters = HostCounters()
        self._link_up = False
        self._last_error: str | None = None
        self._current_error: str | None = None
        self._current_exc: BaseException | None = None
        self._cycle_errors = 0
        self._last_error_at: datetime | None = None
        self._last_info: StatusInfo | None = None
        self._last_status: RegisterStatus | None = None
        self._last_stored: int | None = None
        self._last_poll_at: datetime | None = None
        self._backoff = config.backoff_initial
        self._last_unexpected: str | None = None
        self.log = logging.LoggerAdapter(logger, {"register": config.register_id})

    # -- observable state --------------------------------------------------------------------

    def snapshot(self) -> HostState:
        with self._lock:
            return HostState(
                register_id=self.config.register_id,
                link_up=self._link_up,
                current_error=self._current_error,
                last_error=self._last_error,
                last_error_at=self._last_error_at,
                last_info=self._last_info,
                last_status=self._last_status,
                last_stored=self._last_stored,
                last_poll_at=self._last_poll_at,
                backoff=self._backoff,
                counters=replace(self.counters),
                current_exception=self._current_exc,
            )

    def _error(self, exc: BaseException, *, level: int = logging.WARNING) -> None:
        with self._lock:
            self._last_error = self._current_error = str(exc)
            self._current_exc = exc
            self._last_error_at = datetime.now()
            self._cycle_errors += 1
        self.log.log(level, "%s: %s", type(exc).__name__, exc)

    # -- thread ------------------------------------------------------------------------------

    def start(self) -> threading.Thread:
        self.stop_event.clear()
        self._thread = threading.Thread(
            target=self.run, name=f"register-{self.config.register_id}", daemon=True
        )
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.close()

    def run(self) -> None:
        """Poll until the stop event is set; never raises."""
        while not self.stop_event.is_set():
            if self._transport is None:
                try:
                    self.open()
                except Exception as exc:  # any failure to open: the port is not there
                    if not isinstance(exc, GatewayError):
                        exc = PortError(f"cannot open register port {self.config.port}: "
                                        f"{exception_text(exc)}")
                    self.counters.open_failures += 1
                    level = logging.INFO if self.counters.open_failures > 1 else logging.WARNING
                    if str(exc) == self._current_error:
                        level = logging.DEBUG  # the same failure again: said already
                    self._error(exc, level=level)
                    self._wait_backoff()
                    continue
            self._cycle_errors = 0
            try:
                self.poll_once()
                if not self._cycle_errors:
                    with self._lock:
                        self._current_error = None
                        self._current_exc = None
            except LinkDown as exc:
                self._link_down(exc)
                self._wait_backoff()
                continue
            except GatewayError as exc:
                self._error(exc)
            except Exception as exc:  # a bug must not kill the register's thread
                text = exception_text(exc)
                if text != self._last_unexpected:  # a traceback once, not at every cycle
                    self._last_unexpected = text
                    self.log.exception("unexpected error while polling")
                self._error(exc, level=logging.DEBUG)
                self.close()  # start afresh: reopen the port, S first
                self._wait_backoff()
                continue
            self.stop_event.wait(self.config.poll_interval)
        self.close()

    def _wait_backoff(self) -> None:
        delay = self._backoff
        self._sleep(delay)
        self._backoff = min(self._backoff * 2, self.config.backoff_max)

    def _link_down(self, exc: LinkDown) -> None:
        was_up = self._link_up
        self.counters.link_downs += 1
        self._error(exc, level=logging.WARNING if was_up else logging.INFO)
        self.close()

    # -- port --------------------------------------------------------------------------------

    def open(self) -> None:
        """Open the port (PortError when it cannot be opened)."""
        self.close()
        self._transport = self._factory()
        self.log.info("register port %s open", self.config.port)

    def close(self) -> None:
        transport, self._transport = self._transport, None
        with self._lock:
            self._link_up = False
        if transport is not None:
            transport.close()

    # -- one exchange ------------------------------------------------------------------------

    def request(self, cmd: str, data: bytes = b"") -> Frame:
        """Send one request and return its valid response (SEQ and CMD echoed).

        Raises LinkDown when the port fails or no valid answer comes after ``max_sends``
        sends; RegisterRefused when the register refuses (S1 bit 0).
        """
        transport = self._transport
        if transport is None:
            raise LinkDown("register port is not open")
        seq = self._seq
        self._seq = next_seq(seq)
        frame = encode_request(seq, cmd, data)
        decoder = FrameDecoder(FrameKind.RESPONSE)
        try:
            transport.reset_input()
            for send in range(self.config.max_sends):
                transport.write(frame)
                self.counters.frames_sent += 1
                self.counters.bytes_sent += len(frame)
                if send:
                    self.counters.resends += 1
                    self.log.debug("resend %s seq=0x%02X (%d)", cmd, seq, send + 1)
                outcome = self._await(transport, decoder, seq, cmd)
                if isinstance(outcome, Frame):
                    return self._accept(outcome, data)
        except PortError as exc:
            raise LinkDown(f"register port failed during {cmd}: {exc}") from exc
        raise LinkDown(
            f"no valid answer to {cmd} (seq 0x{seq:02X}) after {self.config.max_sends} sends"
        )

    def _accept(self, response: Frame, data: bytes) -> Frame:
        status = response.register_status
        self.counters.exchanges += 1
        # the register answers on this port: the next link-down starts at 1 s again, even
        # when it comes in the middle of this cycle (spec 2a: back to 1 s after a reopen)
        self._backoff = self.config.backoff_initial
        with self._lock:
            self._link_up = True
            self._last_status = status
        if status.refused:
            self.counters.refusals += 1
            raise RegisterRefused(
                f"register refused {response.cmd} {data[:20].decode('ascii', 'replace')!r}: "
                f"{status.refusal.value if status.refusal else 'refused'}",
                status=response.status or b"",
            )
        return response

    def _nak(self, transport: Transport) -> None:
        transport.write(bytes([NAK]))
        self.counters.naks_sent += 1
        self.counters.bytes_sent += 1

    def _await(
        self, transport: Transport, decoder: FrameDecoder, seq: int, cmd: str
    ) -> Frame | str:
        cfg = self.config
        decoder.reset()
        naks = 0
        now = time.monotonic()
        deadline = now + cfg.response_timeout
        last_byte = now
        while True:
            now = time.monotonic()
            wait = (
                last_byte + cfg.inter_byte_timeout - now if decoder.pending else deadline - now
            )
            if wait <= 0:
                if not decoder.pending:
                    self.counters.timeouts += 1
                    return _Outcome.TIMEOUT
                err = decoder.discard_partial()
                self.counters.frame_errors += 1
                self.log.debug("bad answer to %s: %s", cmd, err)
                self._nak(transport)
                naks += 1
                if naks >= cfg.max_naks:
                    self.counters.timeouts += 1
                    return _Outcome.TIMEOUT
                deadline = time.monotonic() + cfg.response_timeout
                continue
            chunk = transport.read(8192, wait)
            if not chunk:
                continue
            now = time.monotonic()
            last_byte = now
            self.counters.bytes_received += len(chunk)
            for event in decoder.feed(chunk):
                if isinstance(event, Frame):
                    if event.seq == seq and event.cmd == cmd:
                        return event
                    self.counters.stale_frames += 1
                    self.log.debug("ignored frame seq=0x%02X %s", event.seq, event.cmd)
                elif event is Control.SYN:
                    self.counters.syns_received += 1
                    deadline = now + cfg.response_timeout
                elif event is Control.NAK:
                    self.counters.naks_received += 1
                    return _Outcome.NAK
                elif isinstance(event, FrameRuleError):
                    self.counters.frame_errors += 1
                    self.log.debug("bad answer to %s: %s", cmd, event)
                    self._nak(transport)
                    naks += 1
                    if naks >= cfg.max_naks:
                        self.counters.timeouts += 1
                        return _Outcome.TIMEOUT
                    deadline = now + cfg.response_timeout

    # -- commands ----------------------------------------------------------------------------

    def status(self) -> StatusInfo:
        response = self.request(CMD_STATUS)
        info = parse_status_info(response.data)
        with self._lock:
            self._last_info = info
            self._last_poll_at = datetime.now()
        if self._on_status is not None:
            self._on_status(info)
        return info

    def set_clock(self) -> datetime:
        moment = self._clock().replace(microsecond=0)
        data = format_clock(moment)
        response = self.request(CMD_CLOCK, data)
        if response.data != data:
            raise FrameDataError(f"C answer {response.data!r} does not echo {data!r}")
        self.log.info("register clock set to %s", moment.isoformat())
        return moment

    def commit(self, number: int) -> RegisterStatus:
        """``K number``; only call once every record up to ``number`` is durably stored."""
        response = self.request(CMD_COMMIT, format_record_no(number))
        if parse_record_no(response.data) != number:
            raise FrameDataError(f"K answer {response.data!r} does not echo {number}")
        self.counters.commits += 1
        return response.register_status

    def poll_once(self) -> None:
        """One S (+C) (+K) (+J/K …) cycle."""
        info = self.status()
        status = self._last_status or RegisterStatus()
        self._check_identity(info)
        if status.clock_not_set and self.config.set_clock:
            self.set_clock()
        last = self.sink.last_stored_record()
        with self._lock:
            self._last_stored = last
        if last > info.last_record_no:
            self._error(ProtocolError(
                f"register's last record {info.last_record_no} is below the host's {last}"
                " (register reset or replaced?)"))
        target = min(last, info.last_record_no)
        if info.committed_record_no < target:
            self.log.info("re-sending K %d (register committed %d)", target,
                          info.committed_record_no)
            self.commit(target)
        more = info.last_record_no > last
        while more and not self.stop_event.is_set():
            more, last = self._transfer(last)

    def _transfer(self, last: int) -> tuple[bool, int]:
        """J from last + 1, store, K; returns (more waiting, new last stored)."""
        first = last + 1
        response = self.request(CMD_JOURNAL, format_record_no(first))
        chunk = split_journal_data(first, response.data)
        if chunk.problem:
            self.log.warning("J %d: %s", first, chunk.problem)
        if not chunk.lines:
            if chunk.problem:
                raise FrameDataError(f"J {first}: {chunk.problem}")
            return False, last
        placement = place_records(last, chunk.lines)
        self._note_numbers(first, placement)
        try:
            stored = self.sink.store_records(placement.records)
        except StorageError as exc:
            self.counters.store_failures += 1
            self._error(exc, level=logging.ERROR)
            return False, last
        if stored <= last:
            raise FrameDataError(
                f"J {first}: no record above {last} in the answer (numbers "
                f"{_numbers(placement.late)}); nothing stored, nothing committed")
        self.counters.records_stored += len(placement.records) - len(placement.late)
        with self._lock:
            self._last_stored = stored
        status = self.commit(stored)
        return status.records_waiting, stored

    def _note_numbers(self, first: int, placement: Placement) -> None:
        """Log and count what the numbers of one answer say about the register's journal."""
        if placement.gaps:
            self.counters.records_missing += placement.missing
            self.log.warning(
                "J %d: the register skipped record number(s) %s; stored the rest under their"
                " own numbers, the day checks hold the day", first,
                ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in placement.gaps[:10]))
        if placement.unnumbered:
            self.counters.unnumbered_records += len(placement.unnumbered)
            self.log.warning(
                "J %d: field 1 unreadable; stored at the next number: %s", first,
                _numbers(placement.unnumbered))
        if placement.late:
            self.counters.late_records += len(placement.late)
            self.log.warning(
                "J %d: record number(s) %s do not grow; a repeat is stored once, other bytes"
                " are kept aside", first, _numbers(placement.late))

    def _check_identity(self, info: StatusInfo) -> None:
        cfg = self.config
        for key, expected, got in (
            ("store_code", cfg.expect_store_code, info.store_code),
            ("terminal_no", cfg.expect_terminal_no, info.terminal_no),
        ):
            if expected is not None and expected != got:
                raise ConfigError(
                    f"register on {cfg.port} reports {key} {got!r}", key=key, value=got,
                    expected=expected,
                    staff_message="設定と異なるレジが接続されています。設置担当者に連絡してください。",
                )
