"""The status page's view of the running daemon (``GatewayBackend`` over the real parts).

It reads the daemon through ``GatewayParts`` (a protocol ``gatewayd.daemon.Gateway``
satisfies), so the daemon imports this module and never the reverse.

The journal store knows which days the register closed and whether they passed the checks;
the sync knows what freee holds; the hosts and the printer monitor know the devices. This
module puts them side by side in the page's vocabulary (``gatewayd.web.model``) and turns the
page's actions into calls on those parts. No I/O of its own.
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gatewayd.drivers.slip import SlipContent, SlipStatus, render_slip
from gatewayd.errors import DeviceError, GatewayError
from gatewayd.store.journal import DayRow
from gatewayd.tap.page import tap_overviews
from gatewayd.web.model import (
    DayDetail,
    DayStatus,
    DaySummary,
    Devices,
    DrawerStatus,
    ErrorEntry,
    FreeeLink,
    Health,
    HeldCause,
    HeldReason,
    LinkState,
    MetricsSnapshot,
    Overview,
    PaperState,
    PostingState,
    PrinterStatus,
    QueueStatus,
    RegisterLinkStatus,
    RegisterOverview,
    ResolveChoice,
)

if TYPE_CHECKING:
    from gatewayd.config import Settings
    from gatewayd.drivers.printer import PrinterMonitor
    from gatewayd.drivers.register_host import RegisterHost
    from gatewayd.ingest import RegisterIngest
    from gatewayd.protocol.records import BusinessDay
    from gatewayd.store.journal import JournalStore
    from gatewayd.sync.service import SyncService
    from gatewayd.sync.status import SyncSnapshot

RECENT_DAYS = 14


def _journal_summary(row: DayRow) -> DaySummary:
    """A day as the journal alone knows it (no freee side yet, or held by the checks)."""
    held = None
    status = DayStatus.SENDING
    if row.status == "held":
        status = DayStatus.HELD
        held = HeldReason(HeldCause.DAY_CHECK, row.reason or "held")
    assert row.business_date is not None
    return DaySummary(
        register_id=row.register_id,
        business_date=row.business_date,
        status=status,
        register_total=row.gross,
        freee_total=None,
        receipt_count=row.receipt_count,
        close_no=row.close_no,
        held=held,
    )


class GatewayParts(Protocol):
    """What the page reads of the running daemon (``gatewayd.daemon.Gateway`` is one)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> JournalStore: ...

    @property
    def sync(self) -> SyncService | None: ...

    @property
    def printer(self) -> PrinterMonitor | None: ...

    @property
    def ingests(self) -> dict[str, RegisterIngest]: ...

    @property
    def hosts(self) -> dict[str, RegisterHost]: ...

    @property
    def web(self) -> Any: ...

    @property
    def errors(self) -> list[tuple[datetime, GatewayError]]: ...

    @property
    def wake_sync(self) -> threading.Event: ...

    @property
    def state_dir(self) -> Path: ...

    def get_day(self, register_id: str, business_date: date) -> BusinessDay | None: ...

    def slip_status_url(self) -> str | None: ...


class DaemonBackend:
    """``GatewayBackend`` for the page, reading the live daemon through ``GatewayParts``."""

    def __init__(self, gateway: GatewayParts) -> None:
        self.gateway = gateway

    # --- reads ---------------------------------------------------------------------------

    def _sync_snapshot(self) -> SyncSnapshot | None:
        sync = self.gateway.sync
        return sync.snapshot() if sync is not None else None

    def _summaries(self, register_id: str, snap: SyncSnapshot | None) -> list[DaySummary]:
        out: list[DaySummary] = []
        for row in self.gateway.store.days(register_id, limit=RECENT_DAYS):
            if row.business_date is None:
                continue
            base = _journal_summary(row)
            synced = snap.day(register_id, row.business_date) if snap is not None else None
            if row.status == "held" or synced is None:
                out.append(base)
                continue
            out.append(
                replace(
                    synced,
                    register_total=row.gross,
                    receipt_count=row.receipt_count,
                    close_no=row.close_no,
                )
            )
        return out

    def _today(
        self, register_id: str, recent: list[DaySummary]
    ) -> tuple[DaySummary, list[DaySummary]]:
        ingest = self.gateway.ingests.get(register_id)
        open_day = ingest.open_day if ingest is not None else None
        if open_day is not None and open_day.business_date is not None:
            today = DaySummary(
                register_id=register_id,
                business_date=open_day.business_date,
                status=DayStatus.OPEN,
                register_total=None,
                freee_total=None,
                receipt_count=open_day.receipt_count,
            )
            return today, recent
        if recent:
            return recent[0], recent[1:]
        today = DaySummary(
            register_id=register_id,
            business_date=datetime.now().date(),
            status=DayStatus.OPEN,
            register_total=None,
            freee_total=None,
        )
        return today, recent

    def _link(self, snap: SyncSnapshot | None) -> FreeeLink:
        return snap.link if snap is not None else FreeeLink(LinkState.MISSING)

    def _devices(self) -> Devices:
        registers = []
        for reg_id, host in self.gateway.hosts.items():
            state = host.snapshot()
            health = (
                Health.OK
                if state.link_up
                else (
                    Health.CHECKING  # not polled yet since the start
                    if state.last_poll_at is None and state.last_error is None
                    else Health.ERROR
                )
            )
            registers.append(
                RegisterLinkStatus(reg_id, health, state.last_poll_at, state.last_error)
            )
        monitor = self.gateway.printer
        if monitor is None:
            return Devices(
                tuple(registers), PrinterStatus(configured=False), DrawerStatus(configured=False)
            )
        snap = monitor.snapshot()
        status = snap.status
        paper = PaperState.UNKNOWN
        if status is not None and status.answered:
            paper = (
                PaperState.OUT
                if status.paper_end
                else PaperState.NEAR_END
                if status.paper_near_end
                else PaperState.OK
            )
        printer = PrinterStatus(
            configured=True,
            online=None if snap.last_poll is None else snap.online,
            paper=paper,
            cover_open=None if status is None else status.cover_open,
            checked_at=snap.last_poll,
            detail=snap.last_error,
        )
        drawer_state = snap.drawer.state.value
        drawer = DrawerStatus(
            configured=True,
            open=None if drawer_state not in ("open", "closed") else drawer_state == "open",
            detail="開いたままです" if snap.drawer.alerting else None,
            checked=snap.last_poll is not None,
        )
        return Devices(tuple(registers), printer, drawer)

    def _errors(self, snap: SyncSnapshot | None) -> tuple[ErrorEntry, ...]:
        own = [ErrorEntry.from_error(exc, at) for at, exc in self.gateway.errors]
        for reg_id, host in self.gateway.hosts.items():  # what stops a register right now
            state = host.snapshot()
            exc = state.current_exception
            if isinstance(exc, GatewayError) and state.last_error_at is not None:
                at = state.last_error_at.astimezone(UTC)
                own.append(ErrorEntry.from_error(exc, at, register_id=reg_id))
        theirs = list(snap.errors) if snap is not None else []
        merged = sorted([*own, *theirs], key=lambda e: e.at, reverse=True)
        return tuple(merged[:20])

    def overview(self) -> Overview:
        snap = self._sync_snapshot()
        registers = []
        for reg in self.gateway.settings.registers:
            recent = self._summaries(reg.register_id, snap)
            today, rest = self._today(reg.register_id, recent)
            registers.append(
                RegisterOverview(
                    reg.register_id,
                    reg.store_code,
                    reg.terminal_no,
                    reg.store_name,
                    today,
                    tuple(rest),
                )
            )
        return Overview(
            generated_at=datetime.now(UTC),
            registers=tuple(registers),
            link=self._link(snap),
            devices=self._devices(),
            queue=snap.queue if snap is not None else QueueStatus(waiting=0),
            errors=self._errors(snap),
            last_sync_at=snap.last_sync_at if snap is not None else None,
            version=_version(),
            taps=tap_overviews(getattr(self.gateway, "taps", None), snap),
        )

    def day(self, register_id: str, business_date: date) -> DayDetail | None:
        row = self.gateway.store.day(register_id, business_date)
        sync = self.gateway.sync
        detail = sync.day_detail(register_id, business_date) if sync is not None else None
        if row is None:
            return detail
        reg = self.gateway.settings.register(register_id)
        if row.status == "held" or detail is None:
            plan = None
            if sync is not None and row.status == "accepted":
                day = self.gateway.get_day(register_id, business_date)
                if day is not None:
                    plan = sync.plan_for(reg, day).to_json()
            return DayDetail(summary=_journal_summary(row), store_name=reg.store_name, plan=plan)
        return replace(
            detail,
            summary=replace(
                detail.summary, register_total=row.gross, receipt_count=row.receipt_count
            ),
            store_name=reg.store_name,
        )

    def metrics(self) -> MetricsSnapshot:
        snap = self._sync_snapshot()
        overview_days = [
            d
            for reg in self.gateway.settings.registers
            for d in self._summaries(reg.register_id, snap)
        ]
        by_status = {s: 0 for s in DayStatus}
        for d in overview_days:
            by_status[d.status] += 1
        for ingest in self.gateway.ingests.values():
            if ingest.open_day is not None:
                by_status[DayStatus.OPEN] += 1
        postings = {s: 0 for s in PostingState}
        if snap is not None:
            for state, count in snap.postings_by_state.items():
                postings[PostingState(state)] = count
        link_errors = {
            reg_id: host.snapshot().counters.link_downs
            for reg_id, host in self.gateway.hosts.items()
        }
        freee_errors: dict[str, int] = {}
        if snap is not None:
            for err in snap.errors:
                freee_errors[err.source.value] = freee_errors.get(err.source.value, 0) + 1
        today = tuple(
            self._today(reg.register_id, self._summaries(reg.register_id, snap))[0]
            for reg in self.gateway.settings.registers
        )
        unsynced = [
            d.closed_at
            for d in overview_days
            if d.status in (DayStatus.SENDING, DayStatus.HELD) and d.closed_at is not None
        ]
        try:
            fs = os.statvfs(self.gateway.state_dir)
            disk: tuple[int | None, int | None] = (
                fs.f_bavail * fs.f_frsize,
                fs.f_blocks * fs.f_frsize,
            )
        except OSError:
            disk = (None, None)
        return MetricsSnapshot(
            days_by_status=by_status,
            postings_by_state=postings,
            link=self._link(snap),
            devices=self._devices(),
            last_sync_at=snap.last_sync_at if snap is not None else None,
            next_attempt_at=snap.queue.next_attempt_at if snap is not None else None,
            register_link_errors=link_errors,
            freee_errors=freee_errors,
            today=today,
            oldest_unsynced_close_at=min(unsynced) if unsynced else None,
            disk_free_bytes=disk[0],
            disk_size_bytes=disk[1],
            clock=datetime.now(UTC),
        )

    # --- actions -------------------------------------------------------------------------

    def _require_sync(self) -> None:
        if self.gateway.sync is None:
            raise GatewayError(
                "freee sync is not running", staff_message="freee会計との連携が動いていません。"
            )

    def resend(self, register_id: str, start: date, end: date) -> int:
        self._require_sync()
        assert self.gateway.sync is not None
        self.gateway.settings.register(register_id)
        self.gateway.sync.request_resend(register_id, start, end)
        self.gateway.wake_sync.set()
        return abs((end - start).days) + 1

    def resolve_edited(self, register_id: str, business_date: date, choice: ResolveChoice) -> None:
        self._require_sync()
        assert self.gateway.sync is not None
        self.gateway.sync.resolve_edited(register_id, business_date, choice)
        self.gateway.wake_sync.set()

    def _printer(self) -> object:
        if self.gateway.printer is None:
            raise DeviceError(
                "no printer configured", staff_message="レシートプリンタが設定されていません。"
            )
        return self.gateway.printer

    def print_test_slip(self) -> None:
        self._printer()
        assert self.gateway.printer is not None
        reg = self.gateway.settings.registers[0]
        content = SlipContent(
            store_name=reg.store_name or f"店舗{reg.store_code}",
            store_code=reg.store_code,
            terminal=reg.terminal_no,
            business_date=datetime.now().date(),
            method_totals={},
            class_totals={},
            gross=0,
            tax=0,
            status=SlipStatus.SENT,
            reason=None,
            action="テスト印字です。",
            close_no=0,
            made_at=datetime.now(),
            status_url=self.gateway.slip_status_url(),
        )
        monitor = self.gateway.printer
        if monitor.queue is None:
            raise DeviceError(
                "close slips are turned off ([slip] enabled = false)",
                staff_message="伝票の印字が設定で無効になっています。",
            )
        body = render_slip(content, columns=monitor.settings.columns)
        # a test slip is never deduplicated: its queue key carries the time
        monitor.queue.enqueue(f"test/{datetime.now(UTC).isoformat()}", "テスト印字", body)
        monitor.wake()

    def kick_drawer(self) -> None:
        self._printer()
        assert self.gateway.printer is not None
        self.gateway.printer.kick_drawer()

    def link_start(self, redirect_uri: str) -> str:
        self._require_sync()
        assert self.gateway.sync is not None
        return self.gateway.sync.link_start(redirect_uri).url

    def link_finish(self, code: str, state: str) -> FreeeLink:
        self._require_sync()
        assert self.gateway.sync is not None
        self.gateway.sync.link_finish(code, state)
        self.gateway.wake_sync.set()
        return self.gateway.sync.link_view()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gatewayd")
    except PackageNotFoundError:
        return ""
