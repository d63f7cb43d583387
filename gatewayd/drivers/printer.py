"""The receipt printer: links over serial or USB (python-escpos), status polling, the monitor.

- ``SerialLink`` / ``UsbLink`` open the printer with python-escpos (``escpos.printer.Serial``
  and ``Usb``) and write through it, but read status bytes themselves: python-escpos 3.1 takes
  an empty reply for "paper OK". A query flushes stale input, sends ``DLE EOT n`` and waits for
  one valid status byte until ``status_timeout``; no valid byte = no answer.
- ``PrinterDriver`` asks ``DLE EOT 1, 2, 4`` (and 3 when the error bit is set) and turns the
  replies into a ``PrinterStatus``; a printer that does not answer any of them is OFFLINE.
- ``StatusTracker`` records every change of condition with its time.
- ``PrinterMonitor`` is what the daemon runs in a thread: it polls, feeds the drawer watch,
  prints queued close slips when the printer can print, and gives a snapshot for the status
  page and metrics. ``stop()`` ends it cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from gatewayd.drivers.drawer import (
    DrawerAlert,
    DrawerCalibration,
    DrawerSnapshot,
    DrawerWatch,
    calibrate_drawer,
    kick_command,
)
from gatewayd.drivers.escpos_status import (
    SILENT,
    PrinterCondition,
    PrinterStatus,
    is_status_byte,
    status_from_replies,
)
from gatewayd.drivers.printer_settings import DrawerSettings, PrinterSettings, SlipSettings
from gatewayd.drivers.slip import SlipContent, render_slip, reprint_banner
from gatewayd.drivers.transport import exception_text
from gatewayd.errors import GatewayError, PrinterUnavailable
from gatewayd.store.slips import QueuedSlip, SlipQueue

_LOG = logging.getLogger(__name__)

QUERIES = {n: bytes([0x10, 0x04, n]) for n in (1, 2, 3, 4)}
NO_ANSWER = "no answer to DLE EOT"


def _local_now() -> datetime:
    return datetime.now().astimezone()


class PrinterLink(Protocol):
    """An open connection to the printer."""

    description: str

    def write(self, data: bytes) -> None:
        """Send bytes; raises ``PrinterUnavailable`` when the link fails."""

    def query(self, request: bytes, timeout: float) -> int | None:
        """Send a real-time status request; the valid status byte, or None if none came."""

    def wait_sent(self, timeout: float) -> None:
        """Wait (bounded) until written bytes have left the box."""

    def close(self) -> None: ...


LinkFactory = Callable[[PrinterSettings], PrinterLink]


# --- serial -------------------------------------------------------------------------------

class SerialLink:
    """A serial printer via ``escpos.printer.Serial`` (the pyserial port underneath).

    Every exception from the port is ``PrinterUnavailable``: pyserial lets ``termios.error``
    (not an ``OSError``) out of ``reset_input_buffer``/``flush`` when an adapter is pulled,
    and ``TypeError``/``AttributeError`` once its descriptor is gone.
    """

    def __init__(self, settings: PrinterSettings) -> None:
        from escpos.printer import Serial

        assert settings.device is not None
        self.description = settings.describe()
        self._printer: Any = Serial(
            devfile=settings.device,
            baudrate=settings.baudrate,
            timeout=settings.status_timeout,
            xonxoff=settings.flow_control == "xonxoff",
            dsrdtr=False,
        )
        try:
            self._printer.open(raise_not_found=True)
            self._port: Any = self._printer.device
            self._port.write_timeout = settings.write_timeout
            if settings.flow_control == "rtscts":
                self._port.rtscts = True
        except Exception as exc:  # any failure: the printer is not there
            # _device, not .device: reading python-escpos' property opens the port again
            port, self._printer._device = self._printer._device, False
            if port is not None and port is not False:
                with contextlib.suppress(Exception):
                    port.close()
            raise PrinterUnavailable(
                f"cannot open printer {settings.device}: {exception_text(exc)}") from exc

    def _fail(self, what: str, exc: BaseException) -> PrinterUnavailable:
        return PrinterUnavailable(f"{self.description}: {what}: {exception_text(exc)}")

    def write(self, data: bytes) -> None:
        try:
            self._printer._raw(data)
        except Exception as exc:  # see the class
            raise self._fail("write failed", exc) from exc

    def query(self, request: bytes, timeout: float) -> int | None:
        try:
            self._port.reset_input_buffer()
            self._printer._raw(request)
            deadline = time.monotonic() + timeout
            while (remaining := deadline - time.monotonic()) > 0:
                self._port.timeout = remaining
                data = self._port.read(1)
                if not data:
                    return None
                if is_status_byte(data[0]):
                    return int(data[0])
            return None
        except Exception as exc:  # see the class
            raise self._fail("status query failed", exc) from exc

    def wait_sent(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        try:
            while self._port.out_waiting and time.monotonic() < deadline:
                time.sleep(0.02)
        except Exception as exc:  # see the class
            raise self._fail("write not sent", exc) from exc

    def close(self) -> None:
        # Close the port ourselves: python-escpos' close() flushes (tcdrain), which blocks
        # for ever when the printer holds flow control; mark it closed so __del__ skips it.
        port, self._printer._device = self._port, False
        with contextlib.suppress(Exception):
            port.close()


# --- USB ----------------------------------------------------------------------------------

class _SerialNumberMatch:
    """pyusb ``custom_match``: the device's iSerialNumber string equals ``serial``."""

    def __init__(self, serial: str) -> None:
        self.serial = serial

    def __call__(self, device: Any) -> bool:
        import usb.core
        import usb.util

        try:
            return bool(usb.util.get_string(device, device.iSerialNumber) == self.serial)
        except (usb.core.USBError, ValueError, NotImplementedError):
            return False


class UsbLink:
    """A USB printer via ``escpos.printer.Usb``; ``backend`` is a pyusb backend (tests).

    Every exception from the device is ``PrinterUnavailable`` (pyusb raises ``USBError``, but
    also ``ValueError``/``AttributeError`` on a device whose handle was released).
    """

    def __init__(self, settings: PrinterSettings, *, backend: Any = None) -> None:
        import usb.core
        from escpos.printer import Usb

        self._usb_error: type[BaseException] = usb.core.USBError
        self._timeout_error: type[BaseException] = usb.core.USBTimeoutError
        self.description = settings.describe()
        usb_args: dict[str, Any] = {}
        if backend is not None:
            usb_args["backend"] = backend
        if settings.usb_serial:
            usb_args["custom_match"] = _SerialNumberMatch(settings.usb_serial)
        self._write_ms = int(settings.write_timeout * 1000)
        self._printer: Any = Usb(settings.usb_vendor, settings.usb_product, usb_args=usb_args,
                                 timeout=self._write_ms)
        try:
            self._printer.open(raise_not_found=True)
            self._device: Any = self._printer.device
            in_ep, out_ep = self._endpoints(settings)
        except Exception as exc:  # any failure: the printer is not there
            self._printer._device = False
            raise PrinterUnavailable(
                f"cannot open printer {self.description}: {exception_text(exc)}") from exc
        self._printer.in_ep, self._printer.out_ep = in_ep, out_ep
        self._in_ep, self._out_ep = in_ep, out_ep

    def _endpoints(self, settings: PrinterSettings) -> tuple[int, int]:
        """Configured endpoints, else the first bulk IN and OUT of interface 0."""
        import usb.util

        in_ep, out_ep = settings.usb_in_ep, settings.usb_out_ep
        if in_ep is not None and out_ep is not None:
            return in_ep, out_ep
        try:
            interface = self._device.get_active_configuration()[(0, 0)]
        except (self._usb_error, NotImplementedError, KeyError, IndexError):
            return in_ep or 0x82, out_ep or 0x01
        for ep in interface:
            if usb.util.endpoint_type(ep.bmAttributes) != usb.util.ENDPOINT_TYPE_BULK:
                continue
            if usb.util.endpoint_direction(ep.bEndpointAddress) == usb.util.ENDPOINT_IN:
                in_ep = in_ep if in_ep is not None else ep.bEndpointAddress
            else:
                out_ep = out_ep if out_ep is not None else ep.bEndpointAddress
        return in_ep or 0x82, out_ep or 0x01

    def _fail(self, what: str, exc: BaseException) -> PrinterUnavailable:
        return PrinterUnavailable(f"{self.description}: {what}: {exception_text(exc)}")

    def write(self, data: bytes) -> None:
        try:
            self._printer._raw(data)
        except Exception as exc:  # see the class
            raise self._fail("write failed", exc) from exc

    def _discard_input(self) -> None:
        for _ in range(8):
            try:
                if not self._device.read(self._in_ep, 64, timeout=1):
                    return
            except self._timeout_error:
                return

    def query(self, request: bytes, timeout: float) -> int | None:
        try:
            self._discard_input()
            self._device.write(self._out_ep, request, self._write_ms)
            deadline = time.monotonic() + timeout
            # Some printers need several reads before the answer shows up (Odoo retries too).
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    data = self._device.read(self._in_ep, 16, timeout=max(1, int(remaining * 1000)))
                except self._timeout_error:
                    return None
                valid = [b for b in data if is_status_byte(b)]
                if valid:
                    return int(valid[-1])
                time.sleep(0.01)
            return None
        except Exception as exc:  # see the class
            raise self._fail("status query failed", exc) from exc

    def wait_sent(self, timeout: float) -> None:
        """A bulk write returns once the device took the data: nothing to wait for."""

    def close(self) -> None:
        import usb.util

        device, self._printer._device = self._device, False
        with contextlib.suppress(Exception):
            usb.util.dispose_resources(device)


def open_link(settings: PrinterSettings) -> PrinterLink:
    """Open the configured printer (serial path or USB vendor:product)."""
    if settings.device is not None:
        return SerialLink(settings)
    return UsbLink(settings)


# --- driver -------------------------------------------------------------------------------

class PrinterDriver:
    """One printer: opened on demand, asked for status, written to. Not thread-safe alone:
    ``PrinterMonitor`` serialises every use.

    Every exchange with the printer goes through here, and any exception from it (the link,
    its open, python-escpos, pyserial, pyusb) means the printer is not known to work: the poll
    says SILENT (offline) with ``last_error``, the link is closed, and it is reopened no sooner
    than the backoff after the moment of the failure (1 s doubling to 30 s; back to 1 s at the
    first valid answer). A printer that is merely silent is reopened after 3 silent polls.
    """

    SILENT_POLLS_BEFORE_REOPEN = 3
    REOPEN_BACKOFF_INITIAL = 1.0
    REOPEN_BACKOFF_MAX = 30.0

    def __init__(self, settings: PrinterSettings, *, link_factory: LinkFactory = open_link,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._factory = link_factory
        self._clock = clock
        self._link: PrinterLink | None = None
        self._silent_polls = 0
        self._backoff = self.REOPEN_BACKOFF_INITIAL
        self._reopen_at: float | None = None  # no open before this (clock) after a failure
        self._opened = 0
        self.last_error: str | None = None

    def _open_link(self) -> PrinterLink | None:
        """The open link, opened now if the backoff allows; None while waiting it out."""
        if self._link is None:
            if self._reopen_at is not None and self._clock() < self._reopen_at:
                return None
            self._link = self._factory(self.settings)
            self._opened += 1
            _LOG.log(logging.INFO if self._opened == 1 else logging.DEBUG,
                     "printer opened: %s", self._link.description)
        return self._link

    def _drop_link(self) -> None:
        if self._link is not None:
            link, self._link = self._link, None
            with contextlib.suppress(Exception):
                link.close()

    def _failed(self, exc: BaseException) -> PrinterUnavailable:
        """Any exception from the printer: close, back off from now, say why."""
        failure = exc if isinstance(exc, PrinterUnavailable) else PrinterUnavailable(
            f"{self.settings.describe()}: {exception_text(exc)}")
        self._drop_link()
        self._silent_polls = 0
        self._reopen_at = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, self.REOPEN_BACKOFF_MAX)
        if str(failure) != self.last_error:
            _LOG.debug("printer failed: %s (next open in %.0f s)", failure,
                       self._reopen_at - self._clock())
        self.last_error = str(failure)
        return failure

    def _answered(self) -> None:
        self._backoff = self.REOPEN_BACKOFF_INITIAL
        self._reopen_at = None

    def _ask(self, link: PrinterLink, n: int) -> int | None:
        """One status byte, with one retry (a reply may be lost or taken by another reader)."""
        for _ in range(2):
            value = link.query(QUERIES[n], self.settings.status_timeout)
            if value is not None:
                self._answered()
                return value
        return None

    def poll(self) -> PrinterStatus:
        """Ask DLE EOT 1, 2, 4 (3 on error). Any missing reply or failure → SILENT (offline)."""
        try:
            link = self._open_link()
            if link is None:
                return SILENT  # waiting out the backoff; last_error still says why
            n1 = self._ask(link, 1)
            n2 = self._ask(link, 2) if n1 is not None else None
            n4 = self._ask(link, 4) if n2 is not None else None
            if n1 is None or n2 is None or n4 is None:
                self._silent_polls += 1
                self.last_error = NO_ANSWER
                if self._silent_polls >= self.SILENT_POLLS_BEFORE_REOPEN:
                    self._drop_link()  # a fresh open may find a re-plugged device
                    self._silent_polls = 0
                return SILENT
            n3 = self._ask(link, 3) if n2 & 0x40 else None
            status = status_from_replies(n1, n2, n4, n3)
        except Exception as exc:  # see the class: whatever it is, the printer is not known
            self._failed(exc)
            return SILENT
        self._silent_polls = 0
        self.last_error = None
        return status

    def write(self, data: bytes) -> None:
        """Send bytes and wait (bounded) until they left the box; ``PrinterUnavailable`` (and
        the link dropped) on any failure."""
        try:
            link = self._open_link()
            if link is not None:
                link.write(data)
                link.wait_sent(self.settings.write_timeout)
                return
        except Exception as exc:  # see the class
            raise self._failed(exc) from exc
        raise PrinterUnavailable(f"{self.settings.describe()}: not reopened yet "
                                 f"(last error: {self.last_error})")

    def close(self) -> None:
        self._drop_link()


# --- state changes ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StateChange:
    at: datetime
    condition: PrinterCondition
    previous: PrinterCondition | None
    detail: str
    staff_message: str

    def to_dict(self) -> dict[str, object]:
        return {"at": self.at.isoformat(), "condition": self.condition.value,
                "previous": self.previous.value if self.previous else None,
                "detail": self.detail, "staff_message": self.staff_message}


class StatusTracker:
    """Keeps the current status and the recent changes (condition or flags), with times."""

    def __init__(self, *, now: Callable[[], datetime] = _local_now, keep: int = 50) -> None:
        self._now = now
        self.current: PrinterStatus | None = None
        self.since: datetime | None = None
        self.history: deque[StateChange] = deque(maxlen=keep)

    def update(self, status: PrinterStatus) -> StateChange | None:
        previous = self.current
        self.current = status
        if previous is not None and previous.describe() == status.describe():
            return None
        change = StateChange(
            at=self._now(),
            condition=status.condition,
            previous=previous.condition if previous is not None else None,
            detail=status.describe(),
            staff_message=status.staff_message,
        )
        self.since = change.at
        self.history.append(change)
        return change


# --- the monitor --------------------------------------------------------------------------

CHECKING = "checking"  # the condition and drawer state before the first poll
CHECKING_MESSAGE = "確認中です（起動直後）。"


@dataclass(frozen=True, slots=True)
class PrinterSnapshot:
    """The printer, drawer and slip queue as the status page and metrics see them."""

    device: str
    status: PrinterStatus | None
    since: datetime | None
    last_poll: datetime | None
    last_error: str | None
    changes: tuple[StateChange, ...]
    drawer: DrawerSnapshot
    slips_pending: int
    slips_printed: int
    slips_failed: int
    slips_enabled: bool
    last_printed_at: datetime | None

    @property
    def condition(self) -> PrinterCondition:
        return self.status.condition if self.status is not None else PrinterCondition.OFFLINE

    @property
    def online(self) -> bool:
        return self.status is not None and self.status.online

    def to_dict(self) -> dict[str, object]:
        status = self.status or SILENT
        data: dict[str, object] = {
            "device": self.device,
            "condition": self.condition.value,
            "online": status.online,
            "answered": status.answered,
            "cover_open": status.cover_open,
            "paper_near_end": status.paper_near_end,
            "paper_end": status.paper_end,
            "error": status.error,
            "staff_message": status.staff_message,
            "since": self.since.isoformat() if self.since else None,
            "last_poll": self.last_poll.isoformat() if self.last_poll else None,
            "last_error": self.last_error,
            "changes": [c.to_dict() for c in self.changes],
            "drawer": self.drawer.to_dict(),
            "slips": {"enabled": self.slips_enabled, "pending": self.slips_pending,
                      "printed": self.slips_printed, "failed": self.slips_failed,
                      "last_printed_at": (self.last_printed_at.isoformat()
                                          if self.last_printed_at else None)},
        }
        if self.last_poll is None:  # not polled yet since the start: 確認中, never a fault
            data.update(condition=CHECKING, online=None, answered=None, cover_open=None,
                        paper_near_end=None, paper_end=None, error=None,
                        staff_message=CHECKING_MESSAGE,
                        drawer={**self.drawer.to_dict(), "state": CHECKING})
        return data


class PrinterMonitor:
    """Polls the printer in a thread, watches the drawer and prints queued close slips.

    ``queue`` None = no slips (then ``submit_slip`` returns False). ``on_drawer_alert`` and
    ``on_change`` are called from the monitor thread. ``clock`` (monotonic seconds) and ``now``
    (wall time for records) are injectable for tests.
    """

    def __init__(
        self,
        printer: PrinterSettings,
        drawer: DrawerSettings | None = None,
        slip: SlipSettings | None = None,
        queue: SlipQueue | None = None,
        *,
        on_drawer_alert: Callable[[DrawerAlert], None] | None = None,
        on_change: Callable[[StateChange], None] | None = None,
        link_factory: LinkFactory = open_link,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _local_now,
    ) -> None:
        self.settings = printer
        self.drawer_settings = drawer or DrawerSettings()
        self.slip_settings = slip or SlipSettings()
        self.queue = queue
        self._on_alert = on_drawer_alert
        self._on_change = on_change
        self._now = now
        self._driver = PrinterDriver(printer, link_factory=link_factory)
        self._tracker = StatusTracker(now=now)
        self._drawer = DrawerWatch(self.drawer_settings, clock=clock, now=now)
        self._io_lock = threading.RLock()  # the printer link: one user at a time
        self._state_lock = threading.Lock()  # what snapshot() reads
        self._last_poll: datetime | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- thread --------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="printer-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (after the current poll or print) and close the printer."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        # A write may still be running (bounded by write_timeout): do not hang the shutdown.
        if self._io_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            try:
                self._driver.close()
            finally:
                self._io_lock.release()
        else:
            _LOG.warning("printer monitor: still writing at stop; the link is left to exit")

    def wake(self) -> None:
        """Poll now instead of at the end of the interval (e.g. a slip was queued)."""
        self._wake.set()

    def _run(self) -> None:
        last_failure: str | None = None  # logged once while it repeats, not at every poll
        while not self._stop.is_set():
            failure: str | None = None
            try:
                self.poll_once()
            except GatewayError as exc:  # e.g. the slip file: reported, the loop goes on
                failure = f"{type(exc).__name__}: {exc}"
                if failure != last_failure:
                    _LOG.error("printer monitor: %s", exc)
            except Exception as exc:  # not the printer (the driver takes those): a bug
                failure = exception_text(exc)
                if failure != last_failure:
                    _LOG.exception("printer monitor: unexpected failure")
            if failure is not None and failure == last_failure:
                _LOG.debug("printer monitor: still failing: %s", failure)
            elif failure is None and last_failure is not None:
                _LOG.info("printer monitor: working again")
            last_failure = failure
            self._wake.wait(self.settings.poll_interval)
            self._wake.clear()

    # -- one cycle -----------------------------------------------------------------------

    def _record(self, status: PrinterStatus) -> None:
        with self._state_lock:
            change = self._tracker.update(status)
            self._last_poll = self._now()
            alert = self._drawer.update(status.drawer_pin3_high)
        if change is not None:
            level = logging.INFO if status.can_print else logging.WARNING
            why = self._driver.last_error if not status.answered else None
            why = None if why == NO_ANSWER else why
            _LOG.log(level, "printer %s: %s%s", self.settings.describe(), change.detail,
                     f" ({why})" if why else "")
            if self._on_change is not None:
                self._on_change(change)
        if alert is not None:
            _LOG.warning("drawer open for %.0f s (since %s)", alert.open_for,
                         alert.opened_at.isoformat())
            if self._on_alert is not None:
                self._on_alert(alert)

    def poll_once(self) -> PrinterStatus:
        """Poll, record, and print what waits if the printer can print. Returns the status."""
        with self._io_lock:
            status = self._driver.poll()
            self._record(status)
            if status.can_print and self.queue is not None and self.slip_settings.enabled:
                status = self._drain()
            return status

    def _drain(self) -> PrinterStatus:
        assert self.queue is not None
        status = self._tracker.current or SILENT
        for slip in self.queue.pending():
            if self._stop.is_set():
                break
            status = self._print_one(slip)
            if not status.can_print:
                break
        return status

    def _print_one(self, slip: QueuedSlip) -> PrinterStatus:
        assert self.queue is not None
        body = slip.body
        if slip.interrupted:
            body = reprint_banner(columns=self.settings.columns) + body
        self.queue.begin_attempt(slip.id)  # durable before any byte goes out
        attempts = slip.attempts + 1
        give_up = attempts >= self.slip_settings.max_attempts
        try:
            self._driver.write(body)
        except PrinterUnavailable as exc:
            self.queue.note_failure(slip.id, str(exc), give_up=give_up)
            _LOG.warning("slip %s: write failed (attempt %d): %s", slip.key, attempts, exc)
            self._record(SILENT)
            return SILENT
        after = self._driver.poll()
        self._record(after)
        if after.can_print:
            self.queue.mark_printed(slip.id)
            _LOG.info("slip %s printed (attempt %d)", slip.key, attempts)
        else:
            self.queue.note_failure(slip.id, f"not confirmed: {after.describe()}",
                                    give_up=give_up)
            _LOG.warning("slip %s: printer %s after the write (attempt %d)", slip.key,
                         after.describe(), attempts)
        return after

    # -- commands ------------------------------------------------------------------------

    def submit_slip(self, content: SlipContent) -> bool:
        """Queue the close slip for ``content`` (printed as soon as the printer can).

        False when slips are off, there is no queue, or this result was queued before.
        The status page URL from ``[slip] status_url`` is used when ``content`` has none.
        """
        if self.queue is None or not self.slip_settings.enabled:
            return False
        if content.status_url is None and self.slip_settings.status_url is not None:
            content = replace(content, status_url=self.slip_settings.status_url)
        body = render_slip(content, columns=self.settings.columns,
                           qr_size=self.slip_settings.qr_size)
        added = self.queue.enqueue(content.key, content.title, body)
        if added:
            self.wake()
        return added

    def kick_drawer(self) -> PrinterStatus:
        """Open the drawer: ESC p. Only ever called on an explicit staff command.

        Refused (``PrinterUnavailable``) unless the printer answers online: a kick sent to
        a printer that is out of paper or has its cover open would wait in its buffer and
        open the drawer later, when nobody asked for it.
        """
        with self._io_lock:
            status = self._driver.poll()
            self._record(status)
            _kick(self._driver, self.drawer_settings, status)
        _LOG.info("drawer kicked on command (pin %d)", self.drawer_settings.kick_pin)
        return status

    def snapshot(self) -> PrinterSnapshot:
        counts = self.queue.counts() if self.queue is not None else None
        with self._state_lock:
            return PrinterSnapshot(
                device=self.settings.describe(),
                status=self._tracker.current,
                since=self._tracker.since,
                last_poll=self._last_poll,
                last_error=self._driver.last_error,
                changes=tuple(self._tracker.history),
                drawer=self._drawer.snapshot(),
                slips_pending=counts.pending if counts else 0,
                slips_printed=counts.printed if counts else 0,
                slips_failed=counts.failed if counts else 0,
                slips_enabled=self.slip_settings.enabled and self.queue is not None,
                last_printed_at=counts.last_printed_at if counts else None,
            )


def snapshot_lines(data: Mapping[str, Any]) -> list[str]:
    """``PrinterSnapshot.to_dict()`` as text lines for ``gatewayd status``."""
    lines = [f"printer {data.get('device', '-')}: {data.get('condition', '-')}"
             f"  {data.get('staff_message', '')}"]
    if data.get("since"):
        lines.append(f"  since {data['since']}")
    if data.get("last_error"):
        lines.append(f"  last error: {data['last_error']}")
    drawer = data.get("drawer") or {}
    if isinstance(drawer, Mapping):
        state = drawer.get("state", "-")
        extra = "" if drawer.get("calibrated") else " (not calibrated: run gatewayd doctor)"
        if drawer.get("alerting"):
            extra += f"  OPEN TOO LONG since {drawer.get('open_since')}"
        lines.append(f"  drawer: {state}{extra}")
    slips = data.get("slips") or {}
    if isinstance(slips, Mapping):
        if not slips.get("enabled"):
            lines.append("  close slips: off")
        else:
            lines.append(f"  close slips: {slips.get('pending', 0)} waiting, "
                         f"{slips.get('failed', 0)} failed, last printed "
                         f"{slips.get('last_printed_at') or '-'}")
    return lines


# --- one-shot helpers for commands ----------------------------------------------------------

def _kick(driver: PrinterDriver, drawer: DrawerSettings, status: PrinterStatus) -> None:
    # can_print, not online: some printers report cover open / paper end without the
    # offline bit, and a kick they buffer would still open the drawer later
    if not status.can_print:
        raise PrinterUnavailable(
            f"drawer kick refused: printer {status.describe()}",
            staff_message="プリンターが使えない状態のため、ドロワーを開けられません。"
            + status.staff_message)
    driver.write(kick_command(drawer))


def kick_once(printer: PrinterSettings, drawer: DrawerSettings, *,
              link_factory: LinkFactory = open_link) -> PrinterStatus:
    """Open the printer, check it is online, send the kick, close (``gatewayd drawer kick``)."""
    driver = PrinterDriver(printer, link_factory=link_factory)
    try:
        status = driver.poll()
        _kick(driver, drawer, status)
        return status
    finally:
        driver.close()


def read_status_once(printer: PrinterSettings, *, link_factory: LinkFactory = open_link
                     ) -> PrinterStatus:
    driver = PrinterDriver(printer, link_factory=link_factory)
    try:
        return driver.poll()
    finally:
        driver.close()


def calibrate_drawer_on(
    printer: PrinterSettings,
    *,
    say: Callable[[str], None] = print,
    ready: Callable[[], None] | None = None,
    timeout: float = 30.0,
    link_factory: LinkFactory = open_link,
) -> DrawerCalibration:
    """``gatewayd doctor``'s drawer step on the configured printer (see ``calibrate_drawer``)."""
    driver = PrinterDriver(printer, link_factory=link_factory)
    try:
        return calibrate_drawer(lambda: driver.poll().drawer_pin3_high, say=say, ready=ready,
                                timeout=timeout)
    finally:
        driver.close()
