"""``gatewayd sim register``: a simulated REGLINK/1 register on a pseudo-terminal.

Point the gateway's register port at ``--link`` (a symlink to the pty's slave side that stays
in place across simulated unplugs). The journal is replayed from ``--journal`` or generated
(``--seed``/``--days``…); ``--day-interval`` reveals one business day every so many seconds.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import date
from types import FrameType

from gatewayd.errors import ConfigError
from gatewayd.sim.register import (
    LineFaults,
    RegisterSimulator,
    read_journal_file,
    write_journal_file,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--link", required=True, help="symlink to create for the pty slave")
    source = parser.add_argument_group("journal (replay a file, or generate one)")
    source.add_argument("--journal", help="replay this journal file (CP932, one record a line)")
    source.add_argument("--seed", type=int, help="generate: random seed")
    source.add_argument("--days", type=int, help="generate: business days")
    source.add_argument("--start-date", type=date.fromisoformat, default=date(2024, 4, 1),
                        help="generate: first business date, YYYY-MM-DD")
    source.add_argument("--receipts", type=int, default=40, help="generate: receipts per day")
    source.add_argument("--store", default="0001", help="store_code (1-8 letters or digits)")
    source.add_argument("--terminal", default="01", help="terminal_no (1-8 letters or digits)")
    parser.add_argument("--write-journal", help="also write the journal served to this file")
    parser.add_argument("--day-interval", type=float,
                        help="reveal one business day every SECONDS (first day at once)")
    parser.add_argument("--capacity", type=int, default=1_000_000,
                        help="uncommitted records the journal memory holds")
    parser.add_argument("--clock-unset", action="store_true",
                        help="start with the register clock not set (S0 bit 3)")
    faults = parser.add_argument_group("line faults")
    faults.add_argument("--flip-rate", type=float, default=0.0,
                        help="probability per frame (each way) of one flipped bit")
    faults.add_argument("--drop-rate", type=float, default=0.0,
                        help="probability per byte sent of losing it")
    faults.add_argument("--syn-delay", type=float, default=0.0,
                        help="prepare every answer this many seconds, sending SYN meanwhile")
    faults.add_argument("--unplug-every", type=float, help="unplug the pty every SECONDS")
    faults.add_argument("--unplug-for", type=float, default=0.5,
                        help="seconds an unplug lasts")
    faults.add_argument("--line-rate", type=int,
                        help="pace output like a serial line of this many baud")
    faults.add_argument("--fault-seed", type=int, default=0, help="seed of the random faults")
    parser.add_argument("--duration", type=float, help="stop after SECONDS (default: run)")


def load_journal(args: argparse.Namespace) -> list[str]:
    if args.journal and (args.seed is not None or args.days is not None):
        raise ConfigError("give --journal or --seed/--days, not both", key="--journal")
    if args.journal:
        try:
            return read_journal_file(args.journal)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read journal: {exc}", key="--journal",
                              value=args.journal) from exc
    from gatewayd.sim.journal_gen import generate_journal

    return generate_journal(
        args.seed or 0, args.days or 1, args.start_date, args.store, args.terminal,
        args.receipts,
    )


def build_simulator(args: argparse.Namespace) -> RegisterSimulator:
    journal = load_journal(args)
    if args.write_journal:
        write_journal_file(args.write_journal, journal)
    faults = LineFaults(
        flip_rate=args.flip_rate, drop_rate=args.drop_rate, syn_delay=args.syn_delay,
        unplug_every=args.unplug_every, unplug_for=args.unplug_for,
    )
    try:
        return RegisterSimulator(
            journal, store_code=args.store, terminal_no=args.terminal,
            clock_set=not args.clock_unset,
            visible_days=1 if args.day_interval is not None else None,
            day_interval=args.day_interval, capacity=args.capacity, faults=faults,
            seed=args.fault_seed, line_rate=args.line_rate,
        )
    except ValueError as exc:
        raise ConfigError(str(exc), key="--journal") from exc


def run(args: argparse.Namespace) -> int:
    sim = build_simulator(args)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    link = sim.start_pty(args.link)
    print(f"slave {link.slave_path}", flush=True)
    print(f"link {args.link}", flush=True)
    print(f"records {sim.total_records} visible {sim.last_record_no}", flush=True)
    stop.wait(args.duration)
    sim.stop()
    print(f"committed {sim.committed} of {sim.last_record_no}", flush=True)
    sys.stdout.flush()
    return 0
