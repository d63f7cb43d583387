"""The daemon: wires the register hosts, the journal store, the freee sync, the printer and
the status page together, and tells systemd how it is doing.

Threads, one job each:
- one ``RegisterHost`` per register (REGLINK/1 polling; stores records through its
  ``RegisterIngest`` and sends ``K`` only after the commit);
- the sync thread (``SyncService.step``: freee requests may take seconds);
- the printer monitor (status polls, drawer watch, slip queue);
- the web server (uvicorn);
- the main loop (this module): assembles and checks days, queues close slips, writes the
  status snapshot, sends ``STATUS=`` and gates the systemd watchdog on every thread's health.

A part that fails to start (a printer that is absent) is reported and skipped, not fatal;
only the store and the configuration are needed to run.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from gatewayd import notify
from gatewayd.config import RegisterSettings, Settings
from gatewayd.drivers.drawer import DrawerAlert
from gatewayd.drivers.printer import PrinterMonitor
from gatewayd.drivers.printer_settings import device_settings_from
from gatewayd.drivers.register_host import HostConfig, RegisterHost
from gatewayd.drivers.slip import SlipContent, SlipStatus, held_slip_texts, status_page_url
from gatewayd.errors import DeviceError, GatewayError
from gatewayd.ingest import RegisterIngest, day_totals_of, rebuild_day
from gatewayd.protocol.records import BusinessDay
from gatewayd.store.journal import JournalStore
from gatewayd.store.slips import SlipQueue
from gatewayd.store.snapshot import link_snapshot, remove_stale_temps, write_snapshot
from gatewayd.sync.service import SyncService
from gatewayd.web.model import DayStatus, HeldCause

logger = logging.getLogger("gatewayd.daemon")

SNAPSHOT_EVERY = 5.0
# the snapshot file is written when it changed, and at least this often (its "time" is the
# daemon's sign of life for `gatewayd status`, stale after 60 s): each write reaches the card
SNAPSHOT_REFRESH = 30.0
SLIP_CHECK_EVERY = 2.0  # closes awaiting their slip: the sync snapshot is read this often
LOOP_TICK = 0.5
SYNC_STUCK_AFTER = 600.0  # a sync step longer than this means the thread hangs


@dataclass
class Heartbeat:
    """A worker thread's last sign of life, for the watchdog gate."""

    name: str
    beat_at: float = field(default_factory=time.monotonic)
    busy_since: float | None = None

    def beat(self) -> None:
        self.beat_at = time.monotonic()


class _Listener:
    """Fans the ingest's day news out to the sync and to the slip tracker."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def day_accepted(self, register: RegisterSettings, day: BusinessDay) -> None:
        if self.gateway.sync is not None:
            self.gateway.sync.day_accepted(register, day)
        self.gateway.expect_slip(register, day.business_date, day.close_no)
        self.gateway.wake_sync.set()

    def day_held(self, register: RegisterSettings, business_date: date, reason: str) -> None:
        if self.gateway.sync is not None:
            self.gateway.sync.day_held(register, business_date, reason)
        self.gateway.expect_slip(register, business_date, 1)

    def reclose(self, register: RegisterSettings, business_date: date, close_no: int) -> None:
        if self.gateway.sync is not None:
            self.gateway.sync.reclose(register, business_date, close_no)
        self.gateway.expect_slip(register, business_date, close_no)
        self.gateway.wake_sync.set()


class Gateway:
    """Everything the daemon runs. ``start()``, then ``run()`` until ``stop()``."""

    def __init__(
        self,
        settings: Settings,
        *,
        sync_factory: Callable[[Settings, Any], SyncService | None] | None = None,
        printer_factory: Callable[[Settings, Callable[[DrawerAlert], None]], PrinterMonitor | None]
        | None = None,
        web: bool = True,
        web_port: int | None = None,
        runtime_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir
        # where the status snapshot is written: systemd's RuntimeDirectory= (a tmpfs, off the
        # SD card) when given, else the state directory itself (demo, tests, a manual run)
        self.snapshot_dir = runtime_dir or self.state_dir
        self.stop_event = threading.Event()
        self.wake_sync = threading.Event()
        self.store = JournalStore.in_state_dir(self.state_dir)
        self.listener = _Listener(self)
        self.sync: SyncService | None = None
        self._sync_factory = sync_factory or _default_sync
        self._printer_factory = printer_factory or _default_printer
        self.printer: PrinterMonitor | None = None
        self.taps: Any = None  # gatewayd.tap.runner.TapRunner when [[taps]] are configured
        self.ingests: dict[str, RegisterIngest] = {}
        self.hosts: dict[str, RegisterHost] = {}
        self.heartbeats: dict[str, Heartbeat] = {}
        self._threads: list[threading.Thread] = []
        self._want_web = web
        self._web_port = web_port
        self.web: Any = None
        self.watchdog = notify.Watchdog()
        # recent errors, from the main loop, the sync and the printer monitor threads; the
        # list is replaced, never changed in place, so the page's thread may read it unlocked
        self.errors: list[tuple[datetime, GatewayError]] = []
        self._errors_lock = threading.Lock()
        self.monotonic: Callable[[], float] = time.monotonic  # injectable for tests
        self._last_snapshot = -SNAPSHOT_EVERY  # the first turn publishes and checks slips
        self._last_slip_check = -SLIP_CHECK_EVERY
        self._status_line = ""
        self._written: tuple[str, float] | None = None  # what the snapshot file holds, when
        # publish() runs on the main loop and from callers such as the demo: one at a time,
        # so a snapshot gathered earlier never replaces one gathered later
        self._publish_lock = threading.Lock()

    def _link_snapshot(self) -> None:
        """Point the state directory's ``status.json`` at the runtime directory's; if that
        cannot be done, write the snapshot in the state directory as before (readers look
        there)."""
        if self.snapshot_dir == self.state_dir:
            return
        try:
            remove_stale_temps(self.snapshot_dir)
            if link_snapshot(self.state_dir, self.snapshot_dir):
                logger.info("status snapshot in %s (linked from %s)", self.snapshot_dir,
                            self.state_dir)
        except OSError as exc:
            logger.warning("status snapshot kept in %s: cannot link it to %s: %s",
                           self.state_dir, self.snapshot_dir, exc)
            self.snapshot_dir = self.state_dir

    # --- DaySource for the sync -----------------------------------------------------------

    def get_day(self, register_id: str, business_date: date) -> BusinessDay | None:
        """Through the register's ingest: waits for its processing (a re-close saved)."""
        ingest = self.ingests.get(register_id)
        if ingest is not None:
            return ingest.get_day(business_date)
        return rebuild_day(self.store, register_id, business_date)

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Open the store, start every part; each optional part may fail alone."""
        try:
            stale = remove_stale_temps(self.state_dir)
        except OSError as exc:  # an unreadable state directory fails later, with its reason
            logger.warning("stale snapshot files not removed: %s", exc)
        else:
            if stale:
                logger.info("removed %d snapshot temporary file(s) left by a power cut", stale)
        self._link_snapshot()
        self.sync = self._sync_factory(self.settings, self)
        for reg in self.settings.registers:
            ingest = RegisterIngest(self.store, reg, self.listener)
            self.ingests[reg.register_id] = ingest
            host = RegisterHost(
                HostConfig(
                    register_id=reg.register_id,
                    port=reg.port,
                    baudrate=reg.baudrate,
                    poll_interval=self.settings.poll_interval,
                    expect_store_code=reg.store_code,
                    expect_terminal_no=reg.terminal_no,
                ),
                ingest,
            )
            self.hosts[reg.register_id] = host
        self._start_taps()
        try:
            self.printer = self._printer_factory(self.settings, self._drawer_alert)
        except GatewayError as exc:
            self._error(exc)
            self.printer = None
        if self.printer is not None:
            self.printer.start()
        for host in self.hosts.values():
            host.start()
        if self.sync is not None:
            beat = self.heartbeats.setdefault("sync", Heartbeat("sync"))
            thread = threading.Thread(
                target=self._sync_loop, args=(beat,), name="sync", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        if self._want_web:
            self._start_web()
        self.watchdog.start()
        notify.ready(f"{len(self.hosts)} register(s), state in {self.state_dir}")
        logger.info("gatewayd started: %d register(s)", len(self.hosts))

    def slip_status_url(self) -> str | None:
        """The slip's QR target: the settings first, else the page as a phone reaches it."""
        from gatewayd.web.settings import web_from_settings

        web = web_from_settings(self.settings)
        slip_url = device_settings_from(self.settings)[2].status_url
        if self.web is None:  # no page served here: only an address set by hand
            return slip_url or web.public_url
        return status_page_url(slip_url=slip_url, public_url=web.public_url,
                               address=web.address, port=self.web.port,
                               hostname=socket.gethostname(), scheme=self.web.scheme)

    def _start_taps(self) -> None:
        """Print taps (docs/tap.md): their days go through the same outbox and sync."""
        from gatewayd.tap.runner import start_taps

        self.taps = start_taps(self.settings, self.sync, self.wake_sync.set, self._error)

    def _start_web(self) -> None:
        from dataclasses import replace

        from gatewayd.backend import DaemonBackend
        from gatewayd.web.server import WebServer
        from gatewayd.web.settings import web_from_settings

        web_settings = web_from_settings(self.settings)
        if self._web_port is not None:
            web_settings = replace(web_settings, port=self._web_port)
        try:
            server = WebServer(web_settings, DaemonBackend(self), state_dir=self.state_dir)
            server.start()
        except GatewayError as exc:
            self._error(exc)
            return
        self.web = server
        logger.info("status page on %s", server.url)

    def stop(self) -> None:
        notify.stopping("stopping")
        self.stop_event.set()
        self.wake_sync.set()
        if self.sync is not None:
            self.sync.interrupt()  # a step busy with a slow freee returns after its request
        for host in self.hosts.values():
            host.stop()
        for ingest in self.ingests.values():  # days whose Z came in the last moments
            try:
                ingest.process()
            except GatewayError as exc:
                self._error(exc, register_id=ingest.register_id)
        if self.taps is not None:
            self.taps.stop()
        if self.printer is not None:
            self.printer.stop()
        if self.web is not None:
            self.web.stop()
        for thread in self._threads:
            thread.join(15)
        self.watchdog.stop()
        if self.sync is not None:
            self.sync.close()
        self.store.close()

    # --- loops ---------------------------------------------------------------------------

    def _sync_loop(self, beat: Heartbeat) -> None:
        assert self.sync is not None
        while not self.stop_event.is_set():
            beat.busy_since = time.monotonic()
            try:
                wait = self.sync.step()
            except GatewayError as exc:
                self._error(exc)
                wait = 30.0
            except Exception:
                logger.exception("sync step failed")
                wait = 30.0
            beat.busy_since = None
            beat.beat()
            # wait, clear, then step: who wakes the sync commits first and sets second, so a
            # set this clear swallows is seen by the step after it, and a set during a step
            # cuts the next wait short (docs/daemon.md, "Threads and hand-offs")
            self.wake_sync.wait(max(0.05, min(wait, 5.0)))
            self.wake_sync.clear()

    def run(self) -> None:
        """The main loop, until ``stop_event``; ``stop()`` is the caller's."""
        while not self.stop_event.is_set():
            self.step()
            self.stop_event.wait(LOOP_TICK)

    def step(self) -> None:
        """One turn of the main loop."""
        for ingest in self.ingests.values():
            try:
                ingest.process()
            except GatewayError as exc:
                self._error(exc, register_id=ingest.register_id)
        if self.taps is not None:
            self.taps.step()
        # each interval counts from the clock when its work ended, not from the turn's start:
        # a slow or failed print must not bring the next check (or the snapshot) forward
        if self.monotonic() - self._last_slip_check >= SLIP_CHECK_EVERY:
            try:
                self._print_due_slips()
            except GatewayError as exc:
                self._error(exc)
            finally:
                self._last_slip_check = self.monotonic()
        if self.monotonic() - self._last_snapshot >= SNAPSHOT_EVERY:
            self.publish()
            self._last_snapshot = self.monotonic()
        if self._healthy():
            self.watchdog.loop_alive()

    def _healthy(self) -> bool:
        """Every worker thread alive and no sync step stuck: only then the watchdog pings."""
        if any(not t.is_alive() for t in self._threads):
            return False
        now = time.monotonic()
        for beat in self.heartbeats.values():
            if beat.busy_since is not None and now - beat.busy_since > SYNC_STUCK_AFTER:
                return False
        return True

    # --- slips ---------------------------------------------------------------------------

    def expect_slip(self, register: RegisterSettings, business_date: date, close_no: int) -> None:
        """A close awaits its slip, printed once its outcome is known (送信済 or 保留).

        The expectation lives in the journal store (``notices``), so a restart between the
        close and its outcome still prints it; the slip queue's key (date, close, result)
        keeps it from printing twice.
        """
        self.store.add_notice(register.register_id, business_date, close_no)

    def _print_due_slips(self) -> None:
        notices = self.store.open_notices()
        if not notices:
            return
        snapshot = self.sync.snapshot() if self.sync is not None else None
        for notice in notices:
            reg = self.settings.register(notice.register_id)
            row = self.store.day(notice.register_id, notice.business_date)
            if row is None:
                continue
            status: SlipStatus | None = None
            reason: str | None = None
            action: str | None = None
            if row.status == "held":
                status = SlipStatus.HELD
                reason, action = held_slip_texts(HeldCause.DAY_CHECK.value)
            elif snapshot is not None:
                summary = snapshot.day(notice.register_id, notice.business_date)
                if summary is not None and summary.status is DayStatus.SYNCED:
                    status = SlipStatus.SENT
                elif summary is not None and summary.status is DayStatus.HELD:
                    status = SlipStatus.HELD
                    cause = summary.held.cause.value if summary.held is not None else None
                    reason, action = held_slip_texts(cause)
            if status is None or status.value == notice.last_status:
                continue
            printed = self._submit_slip(reg, row, notice.close_no, status, reason, action)
            if printed or self.printer is None:
                self.store.close_notice(
                    notice.register_id, notice.business_date, notice.close_no, status.value
                )

    def _submit_slip(
        self,
        reg: RegisterSettings,
        row: Any,
        close_no: int,
        status: SlipStatus,
        reason: str | None,
        action: str | None,
    ) -> bool:
        if self.printer is None:
            return False
        totals = day_totals_of(self.store, reg.register_id, row.business_date)
        method_totals = dict(totals.by_method) if totals is not None else {}
        class_totals = dict(totals.by_class) if totals is not None else {}
        content = SlipContent(
            store_name=reg.store_name or f"店舗{reg.store_code}",
            store_code=reg.store_code,
            terminal=reg.terminal_no,
            business_date=row.business_date,
            method_totals=method_totals,
            class_totals=class_totals,
            gross=row.gross or 0,
            tax=row.tax,
            status=status,
            reason=reason,
            action=action,
            status_url=self.slip_status_url(),
            close_no=close_no,
            made_at=datetime.now(),
        )
        self.printer.submit_slip(content)
        return True

    # --- status --------------------------------------------------------------------------

    def _drawer_alert(self, alert: DrawerAlert) -> None:
        """The drawer stayed open too long: shown in the page's recent errors."""
        self._error(
            DeviceError(
                f"cash drawer open for {alert.open_for:.0f} s since {alert.opened_at:%H:%M}",
                staff_message=alert.staff_message,
            )
        )

    def _error(self, exc: GatewayError, register_id: str | None = None) -> None:
        logger.error("%s", exc, extra={"register": register_id} if register_id else None)
        with self._errors_lock:
            self.errors = [*self.errors[-49:], (datetime.now(UTC), exc)]

    def status_data(self) -> dict[str, Any]:
        """The snapshot other processes read (``gatewayd status``)."""
        registers: dict[str, Any] = {}
        for reg_id, host in self.hosts.items():
            state = host.snapshot()
            ingest = self.ingests[reg_id]
            registers[reg_id] = {
                "link": "up" if state.link_up else (
                    "checking" if state.last_poll_at is None and state.last_error is None
                    else "down"),  # checking: not polled yet since the start
                "last_error": state.last_error,
                "last_stored": state.last_stored,
                "open_day": (
                    ingest.open_day.business_date.isoformat()
                    if ingest.open_day and ingest.open_day.business_date
                    else None
                ),
            }
        data: dict[str, Any] = {"daemon": "running", "registers": registers}
        if self.taps is not None:
            data["taps"] = self.taps.status()
        if self.sync is not None:
            snap = self.sync.snapshot()
            data["freee"] = {
                "state": snap.link.state.value,
                "company": snap.link.company_name,
                "queue": snap.queue.waiting,
                "status": snap.status_line(),
            }
            days: dict[str, dict[str, Any]] = {}
            for d in snap.days:
                days.setdefault(d.register_id, {})[d.business_date.isoformat()] = {
                    "state": d.status.value,
                    "state_ja": {
                        "synced": "送信済",
                        "sending": "送信中",
                        "held": "保留",
                        "open": "未閉局",
                    }[d.status.value],
                    "postings": d.postings,
                    "postings_done": d.postings_done,
                    "freee_total": d.freee_total,
                    "reason": d.held.detail if d.held else None,
                }
            data["sync_days"] = days
        if self.printer is not None:
            data["devices"] = self.printer.snapshot().to_dict()
        return data

    def publish(self) -> None:
        """Write the status snapshot now and tell systemd (``STATUS=``) when it changed."""
        with self._publish_lock:
            try:
                data = self.status_data()
                essence = _snapshot_essence(data)
                now = self.monotonic()
                if (
                    self._written is None
                    or self._written[0] != essence
                    or now - self._written[1] >= SNAPSHOT_REFRESH
                ):
                    write_snapshot(self.snapshot_dir, data)
                    self._written = (essence, self.monotonic())
            except (GatewayError, OSError) as exc:
                logger.warning("status snapshot not written: %s", exc)
                return
            line = self._describe(data)
            if line != self._status_line:
                self._status_line = line
                notify.status(line)

    def _describe(self, data: dict[str, Any]) -> str:
        parts = []
        for reg_id, reg in data["registers"].items():
            parts.append(f"{reg_id} link {reg['link']}")
        freee = data.get("freee")
        if freee:
            parts.append(freee["status"])
        sending = [
            f"day {day}: {info['postings_done']} of {info['postings']} postings sent"
            for reg_days in data.get("sync_days", {}).values()
            for day, info in reg_days.items()
            if info["state"] == "sending"
        ]
        return "; ".join(sending[:1] + parts)


def _default_sync(settings: Settings, gateway: Any) -> SyncService | None:
    return SyncService(settings, settings.state_dir, gateway)


def _default_printer(
    settings: Settings, on_drawer_alert: Callable[[DrawerAlert], None]
) -> PrinterMonitor | None:
    printer, drawer, slip = device_settings_from(settings)
    if printer is None:
        return None
    queue = SlipQueue(settings.state_dir) if slip.enabled else None
    return PrinterMonitor(printer, drawer, slip, queue, on_drawer_alert=on_drawer_alert)


def _snapshot_essence(data: dict[str, Any]) -> str:
    """The snapshot without what changes on every gathering (the printer's last poll)."""
    devices = data.get("devices")
    if isinstance(devices, dict) and "last_poll" in devices:
        data = dict(data, devices={k: v for k, v in devices.items() if k != "last_poll"})
    return json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)


def run_daemon(settings: Settings, runtime_dir: Path | None = None) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    import signal

    gateway = Gateway(settings, runtime_dir=runtime_dir)

    def _stop(signum: int, frame: object) -> None:
        gateway.stop_event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    gateway.start()
    try:
        gateway.run()
    finally:
        gateway.stop()
    return 0
