"""Close slips through the monitor and the durable queue, over a pty with the simulator:
a slip waits through paper-out and prints once; an interrupted print is reprinted marked."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from printer_fixtures import running_pty_printer, sample_content, serial_settings

from gatewayd.drivers.escpos_status import PrinterCondition
from gatewayd.drivers.printer import PrinterMonitor, StateChange, snapshot_lines
from gatewayd.drivers.printer_settings import SlipSettings
from gatewayd.drivers.slip import SlipStatus, render_slip
from gatewayd.escpos_text import decode
from gatewayd.sim.printer import PtyPrinterSimulator
from gatewayd.store.slips import SlipQueue


@pytest.fixture
def pty_printer() -> Iterator[PtyPrinterSimulator]:
    yield from running_pty_printer()


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SlipQueue]:
    q = SlipQueue(tmp_path)
    yield q
    q.close()


def _monitor(sim: PtyPrinterSimulator, queue: SlipQueue | None, **kw: object) -> PrinterMonitor:
    return PrinterMonitor(serial_settings(sim), None, kw.pop("slip", None),  # type: ignore[arg-type]
                          queue, **kw)  # type: ignore[arg-type]


def test_slip_waits_through_paper_out_and_prints_once(pty_printer: PtyPrinterSimulator,
                                                      queue: SlipQueue) -> None:
    """GIVEN a printer out of paper WHEN a close slip is submitted THEN nothing is sent while
    the paper is out, it prints when paper is back, and later polls do not print it again."""
    sim = pty_printer.printer
    sim.set(paper_out=True)
    monitor = _monitor(pty_printer, queue)
    try:
        assert monitor.submit_slip(sample_content(SlipStatus.HELD))
        for _ in range(3):
            assert monitor.poll_once().condition is PrinterCondition.PAPER_END
        assert sim.printed == b"" and sim.lost == b""  # not even sent
        assert queue.counts().pending == 1
        sim.set(paper_out=False)
        monitor.poll_once()
        monitor.poll_once()
        monitor.poll_once()
        jobs = sim.jobs()
        assert len(jobs) == 1
        text = decode(jobs[0]).text
        assert "freee会計: 保留" in text and "¥409,217" in text
        assert "再印刷" not in text
        counts = queue.counts()
        assert (counts.pending, counts.printed, counts.failed) == (0, 1, 0)
        assert counts.last_printed_at is not None
    finally:
        monitor.stop()


def test_same_result_is_queued_once(pty_printer: PtyPrinterSimulator, queue: SlipQueue) -> None:
    monitor = _monitor(pty_printer, queue)
    try:
        assert monitor.submit_slip(sample_content())
        assert not monitor.submit_slip(sample_content())  # e.g. after a daemon restart
        assert monitor.submit_slip(sample_content(SlipStatus.HELD))  # a different result
        monitor.poll_once()
        assert len(pty_printer.printer.jobs()) == 2
        assert not monitor.submit_slip(sample_content())  # printed already: still not again
        monitor.poll_once()
        assert len(pty_printer.printer.jobs()) == 2
    finally:
        monitor.stop()


def test_slip_survives_a_restart_while_waiting(pty_printer: PtyPrinterSimulator,
                                               tmp_path: Path) -> None:
    pty_printer.printer.set(cover_open=True)
    first_queue = SlipQueue(tmp_path)
    first = _monitor(pty_printer, first_queue)
    first.submit_slip(sample_content())
    first.poll_once()
    first.stop()
    first_queue.close()
    pty_printer.printer.set(cover_open=False)
    second_queue = SlipQueue(tmp_path)
    second = _monitor(pty_printer, second_queue)
    try:
        second.poll_once()
        assert len(pty_printer.printer.jobs()) == 1
        assert "再印刷" not in decode(pty_printer.printer.printed).text
    finally:
        second.stop()
        second_queue.close()


def test_crash_between_write_and_mark_reprints_marked(pty_printer: PtyPrinterSimulator,
                                                      tmp_path: Path) -> None:
    """An attempt was counted and the bytes went out, but the process died before the mark:
    the slip is printed again, headed 再印刷, and then never again."""
    content = sample_content()
    crashed = SlipQueue(tmp_path)
    crashed.enqueue(content.key, content.title, render_slip(content))
    slip = crashed.pending()[0]
    crashed.begin_attempt(slip.id)
    pty_printer.printer.receive(slip.body)  # the write happened; the mark did not
    crashed.close()

    queue = SlipQueue(tmp_path)
    monitor = _monitor(pty_printer, queue)
    try:
        assert queue.pending()[0].interrupted
        monitor.poll_once()
        monitor.poll_once()
        jobs = pty_printer.printer.jobs()
        assert len(jobs) == 2
        assert "再印刷" not in decode(jobs[0]).text
        assert "*** 再印刷 ***" in decode(jobs[1]).text
        assert queue.counts().printed == 1
    finally:
        monitor.stop()
        queue.close()


def test_paper_end_during_the_print_is_not_confirmed(pty_printer: PtyPrinterSimulator,
                                                     queue: SlipQueue) -> None:
    sim = pty_printer.printer
    sim.on_job = lambda job: sim.set(paper_out=True)  # the roll ran out while printing
    monitor = _monitor(pty_printer, queue)
    try:
        monitor.submit_slip(sample_content())
        assert monitor.poll_once().condition is PrinterCondition.PAPER_END
        assert queue.counts().pending == 1
        assert queue.pending()[0].last_error is not None
        sim.on_job = None
        sim.set(paper_out=False)
        monitor.poll_once()
        jobs = sim.jobs()
        assert len(jobs) == 2 and "*** 再印刷 ***" in decode(jobs[1]).text
        assert queue.counts().printed == 1
    finally:
        monitor.stop()


def test_gives_up_after_max_attempts(pty_printer: PtyPrinterSimulator, queue: SlipQueue) -> None:
    sim = pty_printer.printer
    sim.on_job = lambda job: sim.set(cover_open=True)
    monitor = _monitor(pty_printer, queue, slip=SlipSettings(max_attempts=2))
    try:
        monitor.submit_slip(sample_content())
        for _ in range(2):
            monitor.poll_once()
            sim.set(cover_open=False)
        monitor.poll_once()
        counts = queue.counts()
        assert (counts.pending, counts.failed) == (0, 1)
        assert len(sim.jobs()) == 2
        assert monitor.snapshot().slips_failed == 1
        slip_id = int(sqlite3.connect(queue.path).execute("SELECT id FROM slips").fetchone()[0])
        sim.on_job = None
        assert queue.requeue(slip_id)  # staff asked for it again
        monitor.poll_once()
        assert queue.counts().printed == 1
    finally:
        monitor.stop()


def test_slips_off_prints_nothing(pty_printer: PtyPrinterSimulator, queue: SlipQueue) -> None:
    monitor = _monitor(pty_printer, queue, slip=SlipSettings(enabled=False))
    try:
        assert not monitor.submit_slip(sample_content())
        monitor.poll_once()
        assert pty_printer.printer.printed == b""
        assert not monitor.snapshot().slips_enabled
    finally:
        monitor.stop()


def test_status_url_setting_fills_the_qr(pty_printer: PtyPrinterSimulator,
                                         queue: SlipQueue) -> None:
    monitor = _monitor(pty_printer, queue,
                       slip=SlipSettings(status_url="http://gateway.local:8080/"))
    try:
        monitor.submit_slip(sample_content(status_url=None))
        monitor.poll_once()
        assert pty_printer.printer.decoded().qr_codes == ["http://gateway.local:8080/"]
    finally:
        monitor.stop()


def test_queue_file_is_wal_and_full_sync(queue: SlipQueue) -> None:
    conn = sqlite3.connect(queue.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert queue.path.name == "slips.sqlite"
    synchronous = queue._conn.execute("PRAGMA synchronous").fetchone()[0]
    assert synchronous == 2  # FULL
    conn.close()


def test_monitor_thread_records_changes_and_stops(pty_printer: PtyPrinterSimulator,
                                                  queue: SlipQueue) -> None:
    """The daemon's view: a thread polls, changes are recorded with times, a slip queued
    while the paper is out prints when it is back, and stop() returns promptly."""
    sim = pty_printer.printer
    changes: list[StateChange] = []
    monitor = _monitor(pty_printer, queue, on_change=changes.append)
    sim.set(paper_out=True)
    monitor.start()
    try:
        assert _wait(lambda: monitor.snapshot().condition is PrinterCondition.PAPER_END)
        monitor.submit_slip(sample_content())
        time.sleep(0.2)
        assert sim.printed == b""
        sim.set(paper_out=False)
        assert _wait(lambda: len(sim.jobs()) == 1)
        assert _wait(lambda: monitor.snapshot().slips_printed == 1)
        snap = monitor.snapshot()
        assert snap.condition is PrinterCondition.READY and snap.online
        conditions = [c.condition for c in snap.changes]
        assert conditions[:2] == [PrinterCondition.PAPER_END, PrinterCondition.READY]
        assert snap.changes[1].previous is PrinterCondition.PAPER_END
        assert snap.changes[0].at <= snap.changes[1].at and snap.since == snap.changes[-1].at
        assert [c.condition for c in changes] == conditions
        data = snap.to_dict()
        assert json.loads(json.dumps(data, ensure_ascii=False)) == data
        lines = snapshot_lines(data)
        assert lines[0].startswith(f"printer serial {pty_printer.port}: ready")
        assert "0 waiting" in lines[-1]
        assert data["condition"] == "ready" and data["slips"] == {
            "enabled": True, "pending": 0, "printed": 1, "failed": 0,
            "last_printed_at": data["slips"]["last_printed_at"]}  # type: ignore[index]
        sim.set(silent=True)
        assert _wait(lambda: not monitor.snapshot().online)
        assert monitor.snapshot().to_dict()["answered"] is False
    finally:
        started = time.monotonic()
        monitor.stop()
        assert time.monotonic() - started < 2.0
    assert len(sim.jobs()) == 1


def _wait(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False
