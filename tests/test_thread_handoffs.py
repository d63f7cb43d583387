"""Hand-offs between the daemon's threads, each forced into its worst interleaving.

Every test here makes the other thread act at one exact point of the first (a store or
event wrapper that runs it there, in a real thread, and waits for it), so the outcome does
not depend on the scheduler: each fails on the ordering it guards against, every time.
The list of hand-offs and why each is safe is in docs/daemon.md ("Threads and hand-offs").
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from printer_fixtures import sample_content, serial_settings

from gatewayd import backend as backend_module
from gatewayd import daemon as daemon_module
from gatewayd.backend import DaemonBackend
from gatewayd.config import RegisterSettings, load_settings
from gatewayd.daemon import Gateway, Heartbeat
from gatewayd.drivers.printer import PrinterMonitor
from gatewayd.drivers.slip import SlipStatus
from gatewayd.errors import GatewayError
from gatewayd.ingest import RegisterIngest
from gatewayd.protocol.records import BusinessDay
from gatewayd.sim.journal_gen import Reclose, generate_journal
from gatewayd.sim.printer import PtyPrinterSimulator
from gatewayd.store import snapshot as snapshot_module
from gatewayd.store.journal import JournalStore
from gatewayd.store.slips import QueuedSlip, SlipQueue
from gatewayd.store.snapshot import read_snapshot, write_snapshot
from gatewayd.web.model import ErrorEntry

REG = RegisterSettings(store_code="0001", terminal_no="01", port="loop://")
START = date(2025, 1, 10)


class Listener:
    def __init__(self) -> None:
        self.accepted: list[date] = []
        self.held: list[date] = []

    def day_accepted(self, register: RegisterSettings, day: BusinessDay) -> None:
        self.accepted.append(day.business_date)

    def day_held(self, register: RegisterSettings, business_date: date, reason: str) -> None:
        self.held.append(business_date)

    def reclose(self, register: RegisterSettings, business_date: date, close_no: int) -> None:
        pass


def numbered(raws: list[bytes], first: int) -> list[tuple[int, bytes]]:
    """A batch as the host stores it: each record under its own number."""
    return list(enumerate(raws, start=first))


def in_thread(action: Callable[[], object], name: str) -> None:
    """Run ``action`` in its own thread now and wait for it (the other thread's turn)."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # re-raised in the test's thread
            failures.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), f"{name} did not finish"
    if failures:
        raise failures[0]


def one_day() -> tuple[list[bytes], list[bytes]]:
    """One business day as raw records, split just before its Z: (before, from the Z on)."""
    raw = [line.encode("cp932") for line in generate_journal(11, 1, START, receipts_per_day=6)]
    z_at = next(i for i, line in enumerate(raw) if b"\tZ\t" in line)
    return raw[:z_at], raw[z_at:]


def settle(ingest: RegisterIngest) -> None:
    """The main loop's next turns, with nothing more arriving."""
    for _ in range(3):
        ingest.process()


# --- the close flag: register host thread -> main loop (RegisterIngest) ---------------------


def test_close_committed_during_the_read_is_processed(tmp_path: Path) -> None:
    """The host commits the batch holding the Z while process() reads the new records.

    On the old ordering (read, then test and clear the flag) the flag set by that batch was
    cleared by an analysis that did not include the Z, and the day was never processed.
    """
    store = JournalStore.in_state_dir(tmp_path)
    listener = Listener()
    ingest = RegisterIngest(store, REG, listener)
    before, closing = one_day()
    ingest.store_records(list(enumerate(before, start=1)))
    ingest.process()  # the start-up analysis; the day is open
    assert ingest.open_day is not None and listener.accepted == []

    real_records = store.records
    armed = [True]

    def records_then_host_commits(*args: Any, **kwargs: Any) -> list[tuple[int, bytes]]:
        rows = real_records(*args, **kwargs)
        if armed[0]:
            armed[0] = False  # the host's turn: right after the read, before anything else
            in_thread(lambda: ingest.store_records(numbered(closing, len(before) + 1)),
                      "register-host")
        return rows

    store.records = records_then_host_commits  # type: ignore[method-assign]
    ingest.process()
    assert not armed[0], "the interleaving did not happen"
    settle(ingest)
    assert listener.accepted == [START]
    row = store.day("0001-01", START)
    assert row is not None and row.status == "accepted"
    assert ingest.open_day is None


def test_close_committed_between_flag_test_and_clear_is_processed(tmp_path: Path) -> None:
    """The host sets the flag again between process()'s test of it and its clear.

    That set is cleared unseen; it is safe only because the read comes after the clear
    (its batch was committed before it set the flag). The old ordering fails here too.
    """
    store = JournalStore.in_state_dir(tmp_path)
    listener = Listener()
    ingest = RegisterIngest(store, REG, listener)
    before, closing = one_day()
    ingest.store_records(list(enumerate(before[:5], start=1)))
    ingest.process()
    # more of the day; a Z-less batch leaves no flag
    ingest.store_records(list(enumerate(before[5:], start=6)))
    # a close arrived earlier (e.g. the start-up flag, or a re-close): the flag is up
    ingest._close_arrived.set()

    armed = [True]
    flag = ingest._close_arrived

    class HostCommitsBeforeClear(threading.Event):
        def is_set(self) -> bool:
            return flag.is_set()

        def set(self) -> None:
            flag.set()

        def clear(self) -> None:
            if armed[0]:
                armed[0] = False
                in_thread(lambda: ingest.store_records(numbered(closing, len(before) + 1)),
                      "register-host")
            flag.clear()

    ingest._close_arrived = HostCommitsBeforeClear()
    ingest.process()
    assert not armed[0], "the interleaving did not happen"
    settle(ingest)
    assert listener.accepted == [START]


def test_a_close_after_the_read_waits_for_the_next_turn(tmp_path: Path) -> None:
    """A Z committed after process() read is not lost: its flag stays for the next turn."""
    store = JournalStore.in_state_dir(tmp_path)
    listener = Listener()
    ingest = RegisterIngest(store, REG, listener)
    before, closing = one_day()
    ingest.store_records(list(enumerate(before, start=1)))
    ingest.process()
    ingest.store_records(list(enumerate(closing, start=len(before) + 1)))
    ingest.process()
    assert listener.accepted == [START]
    assert ingest.process() is False  # nothing new, no flag left over


# --- a re-close told to the sync: main loop -> sync thread (DaySource.get_day) --------------

CONFIG = """
state_dir = "state"
[[registers]]
store_code = "0001"
terminal_no = "01"
port = "{register}"
"""


def bare_gateway(tmp_path: Path) -> Gateway:
    """A Gateway built but not started: no threads of its own, no sync, no printer, no page."""
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG.format(register=tmp_path / "no-register"), encoding="utf-8")
    return Gateway(load_settings(cfg), sync_factory=lambda s, g: None, web=False)


def test_sync_reads_a_reclosed_day_with_its_reclose(tmp_path: Path) -> None:
    """The sync thread rebuilds the day as soon as it hears of the re-close.

    The listeners hear of a re-close before it is saved (a crash in between repeats the
    news); the sync thread, woken by that news, read the day back at once and got it
    without the re-close (close_no 1). The read now waits for the processing to end.
    """
    gateway = bare_gateway(tmp_path)
    reg = gateway.settings.registers[0]
    raw = [
        line.encode("cp932")
        for line in generate_journal(5, 2, START, receipts_per_day=4, recloses=[Reclose(0, 1)])
    ]
    first_z = next(i for i, line in enumerate(raw) if b"\tZ\t" in line)
    read_back: list[BusinessDay | None] = []
    sync_thread: list[threading.Thread] = []

    class SyncHearsReclose(Listener):
        def reclose(self, register: RegisterSettings, business_date: date, close_no: int) -> None:
            # the sync thread acts on the news now; the main loop goes on only once the sync
            # thread has read the day, or is waiting to (1 s: it is then blocked)
            thread = threading.Thread(
                target=lambda: read_back.append(gateway.get_day(reg.register_id, business_date)),
                name="sync",
                daemon=True,
            )
            thread.start()
            thread.join(1.0)
            sync_thread.append(thread)

    listener = SyncHearsReclose()
    ingest = RegisterIngest(gateway.store, reg, listener)
    gateway.ingests[reg.register_id] = ingest
    try:
        ingest.store_records(list(enumerate(raw[: first_z + 1], start=1)))
        settle(ingest)
        assert listener.accepted == [START]
        # day 2, its re-close of day 1
        ingest.store_records(list(enumerate(raw[first_z + 1 :], start=first_z + 2)))
        settle(ingest)
        assert len(sync_thread) == 1, "the re-close was not told"
        sync_thread[0].join(10)
        assert len(read_back) == 1
        day = read_back[0]
        assert day is not None and day.close_no == 2
    finally:
        gateway.store.close()


# --- recent errors: main loop, sync and printer threads -> the page's thread ----------------


def test_page_reads_recent_errors_whole_while_one_is_added(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """An error added (by another thread) while the page lists the errors.

    The list was trimmed in place (append, then delete the oldest): the page's iteration
    then skipped one entry, the newest it had. Now it sees one list, before or after.
    """
    gateway = bare_gateway(tmp_path)
    try:
        base = datetime(2025, 1, 10, 9, 0, tzinfo=UTC)  # older than any error added now
        gateway.errors = [
            (base + timedelta(seconds=i), GatewayError(f"error {i}")) for i in range(50)
        ]
        seen = [0]

        class AddsOneMidway:
            @staticmethod
            def from_error(exc: GatewayError, at: datetime, **kw: Any) -> ErrorEntry:
                seen[0] += 1
                if seen[0] == 49:  # the page is at the 49th of 50
                    in_thread(lambda: gateway._error(GatewayError("error 50")), "sync")
                return ErrorEntry.from_error(exc, at, **kw)

        monkeypatch.setattr(backend_module, "ErrorEntry", AddsOneMidway)
        shown = [e.message for e in DaemonBackend(gateway)._errors(None)]
        before = [f"error {i}" for i in range(49, 29, -1)]
        after = [f"error {i}" for i in range(50, 30, -1)]
        assert seen[0] >= 49, "the interleaving did not happen"
        assert shown in (before, after)
        assert len(gateway.errors) == 50 and str(gateway.errors[-1][1]) == "error 50"
    finally:
        gateway.store.close()


# --- wake-up events: a worker loop (wait, clear, work) and who wakes it ----------------------
#
# A producer commits its item and then sets the worker's event. Whatever point of the
# worker's turn it acts at, the first piece of work that starts after it must see the item,
# and the worker must not sleep in between (a lost wake-up would sleep the full wait).

POINTS = ["work", "wait", "before_clear", "after_clear"]


class Interleave:
    """Runs ``produce`` in another thread the first time the worker reaches ``point``."""

    def __init__(self, point: str, produce: Callable[[], object], log: list[tuple[Any, ...]]):
        self.point = point
        self.produce = produce
        self.log = log
        self.fired = False

    def __call__(self, where: str) -> None:
        if where == self.point and not self.fired:
            self.fired = True
            in_thread(self.produce, "producer")
            self.log.append(("produced",))


class ProbeEvent(threading.Event):
    """A wake-up event whose wait never blocks: the log says whether it would have slept."""

    def __init__(self, log: list[tuple[Any, ...]], hook: Callable[[str], None]) -> None:
        super().__init__()
        self.log = log
        self.hook = hook

    def wait(self, timeout: float | None = None) -> bool:
        self.hook("wait")
        woke = self.is_set()
        self.log.append(("woke",) if woke else ("slept", timeout))
        return woke

    def clear(self) -> None:
        self.hook("before_clear")
        super().clear()
        self.hook("after_clear")


def first_work_after_producer(log: list[tuple[Any, ...]], item: object) -> int:
    """Index of the first work that saw ``item``; asserts no sleep came before it."""
    produced = log.index(("produced",))
    for entry in log[produced + 1 :]:
        assert entry[0] != "slept", f"slept after the wake-up: {log}"
        if entry[0] == "work" and item in entry[1]:
            return log.index(entry)
    raise AssertionError(f"the item was never seen: {log}")


class FakeSync:
    """SyncService.step as the loop sees it: reads what is queued, then works a while."""

    def __init__(
        self, gateway: Gateway, queued: list[str], log: list[tuple[Any, ...]], steps: int
    ) -> None:
        self.gateway = gateway
        self.queued = queued
        self.log = log
        self.steps = steps
        self.hook: Callable[[str], None] = lambda where: None

    def step(self) -> float:
        self.log.append(("work", list(self.queued)))
        self.hook("work")
        self.steps -= 1
        if self.steps <= 0:
            self.gateway.stop_event.set()
        return 300.0  # nothing else due: a long sleep unless woken


def run_sync_loop(
    tmp_path: Path, point: str, produce: Callable[[Gateway, list[str]], None]
) -> list[tuple[Any, ...]]:
    gateway = bare_gateway(tmp_path)
    log: list[tuple[Any, ...]] = []
    queued: list[str] = []
    sync = FakeSync(gateway, queued, log, steps=4)
    hook = Interleave(point, lambda: produce(gateway, queued), log)
    sync.hook = hook
    gateway.sync = sync  # type: ignore[assignment]
    gateway.wake_sync = ProbeEvent(log, hook)
    try:
        gateway._sync_loop(Heartbeat("sync"))
    finally:
        gateway.store.close()
    assert hook.fired, "the interleaving did not happen"
    return log


@pytest.mark.parametrize("point", POINTS)
def test_sync_wakeup_is_never_lost(tmp_path: Path, point: str) -> None:
    """A day queued for freee (or a resend asked on the page) at any point of a sync turn."""

    def day_accepted(gateway: Gateway, queued: list[str]) -> None:
        queued.append("day")  # the outbox commit, then the wake-up (daemon._Listener)
        gateway.wake_sync.set()

    log = run_sync_loop(tmp_path, point, day_accepted)
    first_work_after_producer(log, "day")


@pytest.mark.parametrize("point", POINTS)
def test_sync_loop_stops_without_sleeping(tmp_path: Path, point: str) -> None:
    """Gateway.stop() at any point of a sync turn: no further step, no sleep."""

    def stop(gateway: Gateway, queued: list[str]) -> None:
        gateway.stop_event.set()  # as Gateway.stop(): the stop event, then the wake-up
        gateway.wake_sync.set()

    log = run_sync_loop(tmp_path, point, stop)
    after = log[log.index(("produced",)) + 1 :]
    assert not [e for e in after if e[0] in ("work", "slept")], log


@pytest.mark.parametrize("point", POINTS)
def test_slip_wakeup_is_never_lost(tmp_path: Path, point: str) -> None:
    """A close slip queued (main loop) at any point of the printer monitor's turn."""
    with PtyPrinterSimulator(link=tmp_path / "printer") as sim:
        queue = SlipQueue(tmp_path)
        monitor = PrinterMonitor(serial_settings(sim), None, None, queue)
        log: list[tuple[Any, ...]] = []
        content = sample_content(SlipStatus.SENT)
        hook = Interleave(point, lambda: monitor.submit_slip(content), log)
        real_pending = queue.pending
        polls = [0]

        def pending() -> list[QueuedSlip]:
            rows = real_pending()
            log.append(("work", [row.key for row in rows]))
            hook("work")
            return rows

        def counted(where: str) -> None:
            hook(where)
            if where == "wait":
                polls[0] += 1
                if polls[0] >= 4:
                    monitor._stop.set()

        queue.pending = pending  # type: ignore[method-assign]
        monitor._wake = ProbeEvent(log, counted)
        try:
            monitor._run()  # in this thread; its waits never block
            assert hook.fired, "the interleaving did not happen"
            first_work_after_producer(log, content.key)
            assert len(sim.printer.jobs()) == 1
        finally:
            monitor.stop()
            queue.close()


# --- the status snapshot: main loop (and the demo) -> other processes -------------------------


def test_an_older_snapshot_never_replaces_a_newer_one(tmp_path: Path, monkeypatch: Any) -> None:
    """Two publish() calls at once (the main loop and the demo's final one).

    The first gathers its data, and before it writes the file the second gathers and
    writes newer data; the first then replaced it with its older data. Now they take
    turns: the second gathers only after the first has written.
    """
    gateway = bare_gateway(tmp_path)
    gateway.state_dir.mkdir(parents=True, exist_ok=True)
    gathered = [0]

    def status_data() -> dict[str, Any]:
        gathered[0] += 1
        return {"registers": {}, "n": gathered[0]}

    real_write = daemon_module.write_snapshot
    second: list[threading.Thread] = []

    def write_after_the_other(state_dir: Path, data: dict[str, Any]) -> None:
        if not second:  # the first writer, between gathering and writing: the other's turn
            thread = threading.Thread(target=gateway.publish, name="main-loop", daemon=True)
            second.append(thread)
            thread.start()
            thread.join(1.0)  # it finishes, or it waits for this one (then it is blocked)
        real_write(state_dir, data)

    monkeypatch.setattr(gateway, "status_data", status_data)
    monkeypatch.setattr(daemon_module, "write_snapshot", write_after_the_other)
    try:
        gateway.publish()
        second[0].join(10)
        assert gathered[0] == 2
        assert read_snapshot(gateway.state_dir)["n"] == 2
    finally:
        gateway.store.close()


def test_a_reader_sees_a_whole_snapshot_at_any_point_of_a_write(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """``gatewayd status`` reads while the daemon writes: the old file or the new, whole."""
    write_snapshot(tmp_path, {"n": 1})
    seen: list[dict[str, Any]] = []

    class OsWithReaders:
        """``os`` for the snapshot module, with a reader run before each step that matters."""

        def __getattr__(self, name: str) -> Any:
            real = getattr(os, name)
            if name != "replace":
                return real

            def step(*args: Any) -> Any:
                in_thread(lambda: seen.append(read_snapshot(tmp_path)), "gatewayd-status")
                return real(*args)

            return step

    monkeypatch.setattr(snapshot_module, "os", OsWithReaders())
    write_snapshot(tmp_path, {"n": 2, "more": "x" * 10_000})
    assert [d.get("n") for d in seen] == [1]
    assert read_snapshot(tmp_path)["n"] == 2
