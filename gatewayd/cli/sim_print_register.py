"""``gatewayd sim printer-register``: a register that only prints, for trying a print tap.

Prints generated business days (receipts, a training receipt, an X report, the Z report) in
one of the layouts of ``gatewayd.sim.print_layouts``, either on a pseudo-terminal (its path
is printed: the tap's ``port``) or to a TCP printer address (a tap's ``listen``), one
connection per job. ``--reprint`` and ``--training-z`` add those prints after each Z.
"""

from __future__ import annotations

import argparse
import time
from datetime import date

from gatewayd.sim.print_layouts import LAYOUTS, day_stream, generate_print_days, report_bytes
from gatewayd.sim.print_register import PtyPrintRegister, print_over_tcp
from gatewayd.tap.settings import split_host_port


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0] if __doc__ else None
    parser.add_argument("--layout", choices=LAYOUTS, default=LAYOUTS[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--receipts", type=int, default=12)
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 11, 2))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tcp", metavar="HOST:PORT", help="print over TCP instead of a pty")
    parser.add_argument("--baudrate", type=int, default=115200,
                        help="pace the pty like a serial line (0: as fast as possible)")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between jobs")
    parser.add_argument("--wait", type=float, default=5.0,
                        help="pty: seconds to wait before printing (open the port meanwhile)")
    parser.add_argument("--reprint", action="store_true", help="reprint each Z report")
    parser.add_argument("--training-z", action="store_true",
                        help="print a training-mode Z report after each day")


def run(args: argparse.Namespace) -> int:
    jobs: list[bytes] = []
    for day in generate_print_days(args.seed, args.days, args.start, receipts=args.receipts):
        jobs += day_stream(args.layout, day)
        if args.reprint:
            jobs.append(report_bytes(args.layout, day, reprint=True))
        if args.training_z:
            jobs.append(report_bytes(args.layout, day, training=True))
    if args.tcp:
        address = split_host_port(args.tcp)
        for n, job in enumerate(jobs, start=1):
            ok, _ = print_over_tcp(address, job)
            print(f"job {n}/{len(jobs)}: {len(job)} bytes {'sent' if ok else 'REFUSED'}",
                  flush=True)
            time.sleep(args.interval)
        return 0
    register = PtyPrintRegister()
    try:
        print(f"print register on {register.port} ({args.layout})", flush=True)
        time.sleep(args.wait)
        for n, job in enumerate(jobs, start=1):
            register.send(job, baudrate=args.baudrate or None)
            print(f"job {n}/{len(jobs)}: {len(job)} bytes", flush=True)
            time.sleep(args.interval)
        time.sleep(1.0)
    finally:
        register.close()
    return 0
