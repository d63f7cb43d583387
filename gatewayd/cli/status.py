"""``gatewayd status``: what the box holds, per register and per day, from its stores.

Reads the journal store directly (WAL lets it read beside the running daemon) and the
daemon's last snapshot file for live parts (link, devices, freee). Works with the daemon
stopped, so an installer can always see where a day stands. Read-only: the store is opened
with SQLite's ``mode=ro`` and nothing in the state directory is created or changed (it works
on a read-only copy too).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gatewayd.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from gatewayd.drivers.printer import snapshot_lines
from gatewayd.errors import StoreMissing
from gatewayd.store.journal import JournalStore
from gatewayd.store.snapshot import read_snapshot, snapshot_is_linked

STATUS_JA = {"accepted": "受付済", "held": "保留"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help="configuration file (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--days", type=int, default=14, help="recent days per register")


def collect(settings: Settings, days: int = 14) -> dict[str, Any]:
    """The status as plain data: the same content for text and JSON."""
    try:
        store: JournalStore | None = JournalStore.in_state_dir(settings.state_dir,
                                                                read_only=True)
    except StoreMissing:
        store = None  # the daemon has not run yet: nothing stored, nothing to create
    try:
        snapshot = read_snapshot(settings.state_dir)
        registers = []
        for reg in settings.registers:
            stored = store.days(reg.register_id, limit=days) if store is not None else []
            live = snapshot.get("registers", {}).get(reg.register_id, {})
            sync_days = snapshot.get("sync_days", {}).get(reg.register_id, {})
            registers.append(
                {
                    "register_id": reg.register_id,
                    "store_code": reg.store_code,
                    "terminal_no": reg.terminal_no,
                    "store_name": reg.store_name,
                    "port": reg.port,
                    "last_record_no": (store.last_stored_record(reg.register_id)
                                       if store is not None else 0),
                    "link": live.get("link"),
                    "days": [
                        {
                            "business_date": d.business_date.isoformat()
                            if d.business_date
                            else None,
                            "status": d.status,
                            "close_no": d.close_no,
                            "records": [d.first_record_no, d.close_record_no],
                            "receipt_count": d.receipt_count,
                            "gross": d.gross,
                            "tax": d.tax,
                            "reason": d.reason,
                            "freee": sync_days.get(d.business_date.isoformat())
                            if d.business_date
                            else None,
                        }
                        for d in stored
                    ],
                }
            )
        return {
            "state_dir": str(settings.state_dir),
            "snapshot_time": snapshot.get("time"),
            # the daemon under systemd keeps it in /run (linked): gone at each reboot
            "snapshot_linked": snapshot_is_linked(settings.state_dir),
            "daemon": snapshot.get("daemon"),
            "freee": snapshot.get("freee"),
            "devices": snapshot.get("devices"),
            "registers": registers,
        }
    finally:
        if store is not None:
            store.close()


STALE_AFTER = 60.0  # the daemon rewrites its snapshot at least every 30 s (SNAPSHOT_REFRESH)


def _age_seconds(stamp: str) -> float | None:
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return (datetime.now(UTC) - when).total_seconds()


def render_text(status: dict[str, Any]) -> str:
    out: list[str] = []
    if status.get("snapshot_time"):
        line = f"daemon snapshot: {status['snapshot_time']} ({status.get('daemon') or '-'})"
        age = _age_seconds(status["snapshot_time"])
        if age is not None and age > STALE_AFTER:
            line += (f"  STALE: {age:.0f} s old — the daemon is stopped, hung, or cannot write"
                     " its state directory (disk full?)")
        out.append(line)
    elif status.get("snapshot_linked"):
        out.append("daemon snapshot: none since the box started (the daemon is not running,"
                   " or is starting)")
    else:
        out.append("daemon snapshot: none (the daemon has not run yet)")
    freee = status.get("freee") or {}
    if freee:
        out.append(f"freee: {freee.get('state', '-')}  company {freee.get('company', '-')}")
    devices = status.get("devices")
    if devices:
        out.extend(snapshot_lines(devices))
    for reg in status["registers"]:
        name = reg["store_name"] or ""
        out.append("")
        out.append(
            f"register {reg['register_id']} {name}  port {reg['port']}  "
            f"last record {reg['last_record_no']}  link {reg['link'] or '-'}"
        )
        if not reg["days"]:
            out.append("  no closed day yet")
        for day in reg["days"]:
            freee_day = day.get("freee") or {}
            state = freee_day.get("state_ja") or STATUS_JA.get(day["status"], day["status"])
            gross = "-" if day["gross"] is None else f"¥{day['gross']:,}"
            out.append(
                f"  {day['business_date'] or '????-??-??'}  {state:<4}  gross {gross:>12}"
                f"  receipts {day['receipt_count'] if day['receipt_count'] is not None else '-'}"
                f"  close #{day['close_no']}"
            )
            reason = freee_day.get("reason") or day["reason"]
            if reason:
                out.append(f"      reason: {reason}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    status = collect(settings, args.days)
    if args.json:
        print(json.dumps(status, ensure_ascii=False, indent=2))
    else:
        print(render_text(status))
    return 0
