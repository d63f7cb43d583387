"""``gatewayd resend DATE`` / ``gatewayd resend --from DATE --to DATE``: make freee agree again.

Re-syncs each day of the range with freee (freee-mapping.md section 7): posts what freee
lacks, leaves what matches (a synced day costs reads only, no write), updates what changed
by settings, deletes what the plan no longer holds, and holds a day edited in freee. With
the daemon running, the request is handed to it through the outbox and this command follows
its progress; without it, this command does the work itself. A progress bar shows the days,
then the postings still to send.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path
from typing import TextIO

from gatewayd.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from gatewayd.errors import ConfigError
from gatewayd.ingest import rebuild_day
from gatewayd.protocol.records import BusinessDay
from gatewayd.store.journal import JournalStore
from gatewayd.sync.outbox import PostingState
from gatewayd.sync.resync import DayReport
from gatewayd.sync.service import ResendReport, SyncService

STATUS_JA = {
    "synced": "一致（送信なし）",
    "queued": "送信待ち",
    "held": "保留",
    "busy": "送信中のため後で",
    "no_day": "記録なし",
}


class JournalDays:
    """The journal store as the sync's day source (read-only use)."""

    def __init__(self, store: JournalStore) -> None:
        self.store = store

    def get_day(self, register_id: str, business_date: date) -> BusinessDay | None:
        return rebuild_day(self.store, register_id, business_date)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("date", nargs="?", type=_date, help="one business date (YYYY-MM-DD)")
    parser.add_argument("--from", dest="start", type=_date, help="first business date")
    parser.add_argument("--to", dest="end", type=_date, help="last business date")
    parser.add_argument(
        "--register", help="store_code-terminal_no (default: every register of the file)"
    )
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG_PATH, help="configuration file"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the sending"
    )
    parser.add_argument("--no-wait", action="store_true", help="queue only; do not wait")


def _range(args: argparse.Namespace) -> tuple[date, date]:
    if args.date is not None and (args.start or args.end):
        raise ConfigError("give DATE or --from/--to, not both", key="resend")
    if args.date is not None:
        return args.date, args.date
    if args.start is None or args.end is None:
        raise ConfigError("give DATE, or both --from and --to", key="resend")
    return min(args.start, args.end), max(args.start, args.end)


class Progress:
    """A one-line text progress bar (a line per update when not on a terminal)."""

    def __init__(self, stream: TextIO, label: str, total: int) -> None:
        self.stream = stream
        self.label = label
        self.total = max(total, 1)
        self.tty = stream.isatty()

    def show(self, done: int, note: str = "") -> None:
        width = 30
        filled = int(width * min(done, self.total) / self.total)
        bar = "#" * filled + "-" * (width - filled)
        text = f"{self.label} [{bar}] {done}/{self.total} {note}"
        if self.tty:
            self.stream.write("\r" + text.ljust(100))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    start, end = _range(args)
    settings = load_settings(args.config)
    registers = [settings.register(args.register)] if args.register else list(settings.registers)
    store = JournalStore.in_state_dir(settings.state_dir)
    service = SyncService(settings, settings.state_dir, JournalDays(store))
    try:
        return resend(service, settings, [r.register_id for r in registers], start, end, args)
    finally:
        service.close()
        store.close()


def resend(
    service: SyncService,
    settings: Settings,
    register_ids: list[str],
    start: date,
    end: date,
    args: argparse.Namespace,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    days_total = ((end - start).days + 1) * len(register_ids)
    bar = Progress(err, "再同期 days", days_total)
    reports: list[DayReport] = []
    queued_requests: list[int] = []
    counter = 0
    for register_id in register_ids:

        def progress(i: int, n: int, report: DayReport, base: int = counter) -> None:
            bar.show(base + i, f"{report.business_date} {STATUS_JA.get(report.status, '')}")

        result: ResendReport = service.resend(register_id, start, end, progress=progress)
        counter += (end - start).days + 1
        if result.request_id is not None:
            queued_requests.append(result.request_id)
        reports += result.days
    bar.end()
    if queued_requests:
        print(
            "gatewayd が動作中です: 再同期を依頼しました / handed to the running daemon", file=out
        )
        reports = _follow_requests(service, queued_requests, args.timeout, err)
    if not args.no_wait:
        _deliver(service, reports, args.timeout, err)
    return _print_summary(service, reports, out)


def _follow_requests(
    service: SyncService, request_ids: list[int], timeout: float, err: TextIO
) -> list[DayReport]:
    deadline = time.monotonic() + timeout
    bar = Progress(err, "daemon", len(request_ids))
    reports: list[DayReport] = []
    pending = list(request_ids)
    while pending and time.monotonic() < deadline:
        for rid in list(pending):
            req = service.outbox.request(rid)
            if req is not None and req.done_at is not None:
                pending.remove(rid)
                reports += [
                    DayReport.from_json(r) for r in req.report or [] if "business_date" in r
                ]
        bar.show(len(request_ids) - len(pending))
        if pending:
            time.sleep(0.5)
    bar.end()
    return reports


def _waiting(service: SyncService, reports: list[DayReport]) -> int:
    n = 0
    for r in reports:
        for row in service.outbox.postings_of(r.register_id, r.business_date):
            if row.state in (PostingState.PENDING, PostingState.SENDING):
                n += 1
    return n


def _deliver(service: SyncService, reports: list[DayReport], timeout: float, err: TextIO) -> None:
    total = _waiting(service, reports)
    if total == 0:
        return
    bar = Progress(err, "送信 postings", total)
    deadline = time.monotonic() + timeout
    worker = service.is_worker()
    while time.monotonic() < deadline:
        left = _waiting(service, reports)
        bar.show(total - left)
        if left == 0:
            break
        wait = service.step() if worker else 1.0
        if worker and wait > 30:
            break  # freee waits (outage, rate limit): the daemon continues later
        time.sleep(min(max(wait, 0.05), 1.0))
    bar.end()


def _print_summary(service: SyncService, reports: list[DayReport], out: TextIO) -> int:
    failed = 0
    for r in reports:
        summary = service.snapshot(days=400).day(r.register_id, r.business_date)
        state = summary.status.value if summary is not None else r.status
        counts = (
            f"post {len(r.post)}, update {len(r.update)}, recreate {len(r.recreate)}, "
            f"delete {len(r.delete)}, unchanged {len(r.unchanged)}"
        )
        line = f"{r.register_id} {r.business_date}  {STATUS_JA.get(r.status, r.status)}  {counts}"
        if summary is not None and summary.held is not None:
            line += f"  保留: {summary.held.detail}"
            failed += 1
        elif r.status in ("no_day", "held"):
            line += f"  {r.reason or ''}"
            failed += 1
        print(line + f"  [{state}]", file=out)
    return 1 if failed else 0
