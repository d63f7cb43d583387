"""``gatewayd sim printer``: an ESC/POS printer on a pseudo-terminal, for the demo and tests.

It prints the pty's path (put it in ``[printer] device``), then shows every printed job as
text (slips included: CP932 Kanji, ``[QR: …]``, ``[CUT]``). Commands on standard input change
what the printer reports:

    paper-out | paper-in | near-end | near-end-off | cover-open | cover-close
    drawer-open | drawer-close | offline | online | silent | answer | error | clear
    show (everything printed so far) | state | quit

Without a terminal on stdin (a background demo) it just runs until SIGTERM/SIGINT; a demo
can drive it through a FIFO on stdin.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import TextIO

from gatewayd.drivers.printer_settings import PinLevel
from gatewayd.escpos_text import decode
from gatewayd.sim.printer import PtyPrinterSimulator, SimPrinter, SimState

COMMANDS: dict[str, dict[str, object]] = {
    "paper-out": {"paper_out": True},
    "paper-in": {"paper_out": False, "paper_near_end": False},
    "near-end": {"paper_near_end": True},
    "near-end-off": {"paper_near_end": False},
    "cover-open": {"cover_open": True},
    "cover-close": {"cover_open": False},
    "drawer-open": {"drawer_open": True},
    "drawer-close": {"drawer_open": False},
    "offline": {"offline": True},
    "online": {"offline": False},
    "silent": {"silent": True},
    "answer": {"silent": False},
    "error": {"error": True},
    "clear": {"error": False, "autocutter_error": False},
}
FLAGS = ("paper_out", "paper_near_end", "cover_open", "drawer_open", "offline", "silent",
         "error")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--link", type=Path, metavar="PATH",
                        help="also make PATH a symlink to the pty (a stable device name)")
    parser.add_argument("--state", default="", metavar="FLAGS",
                        help="initial state, comma-separated: " + ", ".join(FLAGS))
    parser.add_argument("--drawer-level", choices=[p.value for p in PinLevel],
                        default=PinLevel.HIGH.value,
                        help="pin-3 level of the simulated drawer when open (default high)")
    parser.add_argument("--columns", type=int, default=42,
                        help="line width for centring the printed text (default 42)")
    parser.add_argument("--output", type=Path, metavar="FILE",
                        help="also append each printed job's text to FILE")


def initial_state(flags: str, drawer_level: str) -> SimState:
    changes: dict[str, bool] = {}
    for flag in filter(None, (f.strip() for f in flags.split(","))):
        if flag not in FLAGS:
            raise SystemExit(f"gatewayd sim printer: unknown state {flag!r}; "
                             f"one of {', '.join(FLAGS)}")
        changes[flag] = True
    return SimState(drawer_open_level=PinLevel(drawer_level), **changes)


def apply_command(sim: SimPrinter, line: str, out: TextIO, columns: int) -> bool:
    """Run one stdin command; False means quit."""
    word = line.strip().lower()
    if not word:
        return True
    if word in ("quit", "exit"):
        return False
    if word in COMMANDS:
        state = sim.set(**COMMANDS[word])
        print(f"state: {_state_text(state)}", file=out, flush=True)
    elif word == "state":
        print(f"state: {_state_text(sim.state)}", file=out, flush=True)
    elif word == "show":
        print(sim.decoded(columns=columns).text, file=out, flush=True)
    else:
        print(f"unknown command {word!r}; one of: {', '.join(COMMANDS)}, state, show, quit",
              file=out, flush=True)
    return True


def _state_text(state: SimState) -> str:
    raised = [flag for flag in FLAGS if getattr(state, flag)]
    return ", ".join(raised) if raised else "ready"


def run(args: argparse.Namespace) -> int:
    columns = int(args.columns)
    output: Path | None = args.output
    lock = threading.Lock()

    def show_job(job: bytes) -> None:
        text = decode(job, columns=columns).text
        with lock:
            if output is not None:  # the file first: whoever reads stdout may look at it
                with output.open("a", encoding="utf-8") as handle:
                    handle.write(text + "\n")
            print(text, flush=True)

    printer = SimPrinter(initial_state(args.state, args.drawer_level), on_job=show_job)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    with PtyPrinterSimulator(printer, link=args.link) as sim:
        print(f"printer simulator on {sim.port}" + (f" (link {args.link})" if args.link else ""),
              flush=True)
        print(f"state: {_state_text(printer.state)}", flush=True)
        if sys.stdin is not None and not sys.stdin.closed:
            reader = threading.Thread(target=_read_commands, args=(printer, done, columns),
                                      daemon=True)
            reader.start()
        while not done.wait(0.5):
            pass
    return 0


def _read_commands(printer: SimPrinter, done: threading.Event, columns: int) -> None:
    for line in sys.stdin:
        if not apply_command(printer, line, sys.stdout, columns):
            done.set()
            return
    if sys.stdin.isatty():
        done.set()  # Ctrl-D at a terminal ends the simulator; a closed pipe does not
