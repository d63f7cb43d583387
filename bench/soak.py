"""Soak: many business days through the real daemon while everything around it fails.

    .venv/bin/python bench/soak.py --days 60 --seed 7 [--receipts 15] [--granularity summary]
                                   [--day-gap 2.0] [--chaos 1.0] [--keep DIR]

The pieces are the real ones: ``gatewayd run`` as a child process (so SIGKILL is real), the
register simulator on a pseudo-terminal in this process, and the freee emulator in this
process (over loopback HTTP). The gateway is linked to the emulator first (the installer's
OAuth flow, in process, against the same state directory). Then the register closes one
generated business day every ``--day-gap`` seconds — some days carry a fault so that the
checks must hold them, some closes are re-closes of earlier days — while faults arrive at
``--chaos`` per second: SIGKILL of the daemon and graceful restarts, cable unplugs, line
noise (flipped bits and dropped bytes) and one-shot line faults, freee 5xx, dropped
connections before and after freee committed, answers slower than the client waits, access
token expiry, a per-second rate limit and freee outages (the emulator stopped for a while).

When the last day is closed the faults stop and the soak waits for the gateway to settle,
then stops it and checks, against the register's own journal:
- every record is in the journal store once under its own number, byte for byte, and
  committed back (no loss); a record written out of order (the ``swap`` fault) is kept aside
  when the register sends it late (it may not: the host committed past it as a gap);
- every accepted day's postings exist in freee exactly once (duplicates must be 0), each
  with the plan's amount, and no posting freee holds was not planned;
- per accepted day, freee's sales equal the register's Z totals (gross, and per method);
- every held day is held with its reason (a check name first) and nothing of it is posted.
It prints days, records, faults injected, duplicates and losses; exit code 0 when all hold.
``tests/test_soak.py`` runs a small bounded size of the same soak in the normal suite.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gatewayd.cli.demo import approve  # noqa: E402
from gatewayd.config import Settings, load_settings  # noqa: E402
from gatewayd.protocol.days import analyze_journal  # noqa: E402
from gatewayd.protocol.records import METHOD_ORDER, BusinessDay  # noqa: E402
from gatewayd.sim.freee import MAIN_COMPANY_ID  # noqa: E402
from gatewayd.sim.freee.server import EmulatorServer  # noqa: E402
from gatewayd.sim.journal_gen import (  # noqa: E402
    generate_day,
    generate_reclose,
    inject_fault,
    new_generator,
    skip_number,
)
from gatewayd.sim.register import RegisterSimulator  # noqa: E402
from gatewayd.store.journal import JournalStore  # noqa: E402
from gatewayd.sync.mapping import plan_day  # noqa: E402
from gatewayd.sync.mapping_settings import mapping_from_settings  # noqa: E402
from gatewayd.sync.outbox import Outbox, PostingState  # noqa: E402
from gatewayd.sync.plan import DayPlan, PostingKind  # noqa: E402
from gatewayd.sync.service import SyncService  # noqa: E402

START = date(2025, 1, 6)  # inside the emulator's open fiscal years (2025, 2026)
STORE, TERMINAL = "0001", "01"
REGISTER_ID = f"{STORE}-{TERMINAL}"
CLIENT_ID, CLIENT_SECRET = "gatewayd-soak", "gatewayd-soak-secret"
READ_TIMEOUT = 2.0
CHECKS = ("format", "check 1", "check 2", "check 3")
DAY_FAULTS = ("amount", "format", "swap", "duplicate_date", "gap", "gap_before_open")
T = TypeVar("T")


@dataclass
class SoakOptions:
    days: int = 20
    seed: int = 1
    receipts: int = 15
    granularity: str = "summary"
    held_fraction: float = 0.15  # days that carry a fault the checks must hold
    reclose_every: int = 5  # a re-close of an earlier accepted day every so many days
    day_gap: float = 2.0  # seconds between two closes on the register
    chaos: float = 1.0  # fault actions per second, on average
    settle_timeout: float = 240.0
    workdir: Path | None = None
    log: Callable[[str], None] = print
    keep: bool = False
    every_fault: bool = True  # storm on after the last close until every kind happened


@dataclass
class SoakReport:
    days: int = 0
    accepted: int = 0
    held: int = 0
    recloses: int = 0
    records: int = 0
    postings: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    losses: int = 0
    problems: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    settle_seconds: float = 0.0
    daemon_starts: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and self.duplicates == 0 and self.losses == 0

    def lines(self) -> list[str]:
        out = [
            f"days: {self.days} closed ({self.accepted} accepted, {self.held} held), "
            f"{self.recloses} re-closes, {self.records} records, {self.postings} postings",
            f"faults injected: {sum(n for k, n in self.faults.items() if k[0] != '(')} "
            f"(daemon started {self.daemon_starts} times)",
        ]
        out += [f"  {n:4d}  {name}" for name, n in sorted(self.faults.items())]
        out += [
            f"duplicates: {self.duplicates}",
            f"losses: {self.losses}",
            f"time: {self.elapsed:.1f} s ({self.settle_seconds:.1f} s to settle after the "
            "last fault)",
        ]
        out += [f"PROBLEM: {p}" for p in self.problems[:40]]
        out.append("result: OK" if self.ok else "result: FAILED")
        return out


# --- the register's journal ---------------------------------------------------------------------


@dataclass
class Journal:
    lines: list[str]
    faulty_dates: dict[date, str]  # date of a day given a fault -> the fault
    recloses: int

    def placed(self) -> tuple[dict[int, bytes], list[tuple[int, bytes]]]:
        """The register's records under their own numbers, as the store must keep them (each
        number above every earlier one), and the late ones (numbers that do not grow)."""
        top, placed, late = 0, {}, []
        for line in self.lines:
            number, raw = int(line.split("\t", 1)[0]), line.encode("cp932")
            if number > top:
                placed[number], top = raw, number
            else:
                late.append((number, raw))
        return placed, late

    @property
    def last_record_no(self) -> int:
        return max(self.placed()[0], default=0)


def build_journal(opts: SoakOptions) -> Journal:
    """``days`` generated days; some carry a fault, some re-closes of accepted days between."""
    rng = random.Random(f"soak-journal/{opts.seed}")
    state = new_generator(opts.seed, START, STORE, TERMINAL)
    lines: list[str] = []
    previous: list[str] = []
    clean_dates: list[date] = []
    faulty: dict[date, str] = {}
    skips: list[int] = []
    recloses = 0
    for index in range(opts.days):
        day_date = START + timedelta(days=index)
        if (opts.reclose_every and index and index % opts.reclose_every == 0
                and clean_dates):
            lines.append(generate_reclose(state, rng.choice(clean_dates)))
            recloses += 1
        day = generate_day(state, opts.receipts, business_date=day_date)
        fault = rng.choice(DAY_FAULTS) if index and rng.random() < opts.held_fraction else None
        if fault == "duplicate_date" and previous:
            both = inject_fault(previous + day, fault, seed=index)
            day = both[len(previous):]
            # the held day carries the previous day's date; that date stays accepted
            faulty[START + timedelta(days=index)] = fault
            with contextlib.suppress(ValueError):
                clean_dates.remove(START + timedelta(days=index - 1))
        elif fault in ("gap", "gap_before_open"):
            # the register skips a number: every later number moves, so it is done at the end
            skips.append(len(lines) + (0 if fault == "gap_before_open"
                                       else rng.randrange(1, len(day) - 2)))
            faulty[day_date] = fault
        elif fault is not None:
            day = inject_fault(day, fault, seed=index)
            faulty[day_date] = fault
        else:
            clean_dates.append(day_date)
        lines += day
        previous = day
    for at in skips:
        lines = skip_number(lines, at)
    return Journal(lines, faulty, recloses)


# --- configuration, link, daemon ------------------------------------------------------------


CONFIG = """# written by bench/soak.py
state_dir = "state"
poll_interval = 0.1

[logging]
level = "warning"

[[registers]]
store_code = "{store}"
terminal_no = "{terminal}"
port = "{port}"

[mapping]
granularity = "{granularity}"
tags = ["POS"]

[mapping.tax_names]
"0" = "非課売上"

[mapping.movements.21]
walletable = "普通預金"

[mapping.movements.22]
account = "消耗品費"
tax = "課対仕入10%"

[freee]
api_base_url = "{freee}"
auth_base_url = "{freee}"
client_id = "{client_id}"
client_secret = "{client_secret}"
connect_timeout = 1.0
read_timeout = {read_timeout}
retry_initial = 0.2
retry_max = 3.0
rate_limit_pause = 2.0
recheck_interval = 2.0
lookup_delay = 0.5
send_spread = 0.0

[web]
address = "127.0.0.1"
port = 0
"""


class _NoDays:
    def get_day(self, register_id: str, business_date: date) -> BusinessDay | None:
        return None


def link_gateway(settings: Settings) -> None:
    """The installer's link, in process against the daemon's state directory."""
    service = SyncService(settings, settings.state_dir, _NoDays())
    try:
        start = service.link_start()
        service.link_finish(approve(start.url), start.state)
    finally:
        service.close()


class Daemon:
    """``gatewayd run`` as a child process."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.hung_stops: list[str] = []  # log tails (with thread stacks) of stops that hung
        self.aborted = False

    def start(self) -> None:
        if self.running:
            return
        self.aborted = False
        env = dict(os.environ, NOTIFY_SOCKET="", PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gatewayd", "run", "--config", str(self.config)],
                stdout=out, stderr=out, env=env, cwd=str(ROOT),
            )
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exited_badly(self) -> int | None:
        """The exit code of a daemon that ended by itself (not by our signal)."""
        if self.proc is None or self.proc.poll() is None or self.aborted:
            return None
        code = self.proc.returncode
        return None if code in (0, -signal.SIGKILL, -signal.SIGTERM) else code

    def kill(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        if not self.running:
            return self.proc.returncode if self.proc is not None else 0
        assert self.proc is not None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # hung: SIGABRT makes faulthandler write every thread's stack into the log
            self.aborted = True
            self.proc.send_signal(signal.SIGABRT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.hung_stops.append(self.tail(80))
            return None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# --- chaos ---------------------------------------------------------------------------------------


ONE_SHOT_LINE = ("corrupt_responses", "corrupt_requests", "lose_responses",
                 "truncate_responses", "ignore_requests", "slow_responses")
FREEE_FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("http_500", {}),
    ("http_503", {}),
    ("drop_before", {}),
    ("drop_after", {"method": "POST", "path": "/api/1/deals"}),
    ("drop_after", {"method": "POST", "path": "/api/1/transfers"}),
    ("http_500_after", {"method": "POST", "path": "/api/1/deals"}),
    ("latency_after", {"method": "POST", "path": "/api/1/deals",
                       "ms": int(READ_TIMEOUT * 1000) + 700}),
    ("expire_access_token", {}),
]
ACTIONS = ("kill", "restart", "unplug", "noise", "line", "freee", "freee", "freee",
           "rate_limit", "outage")


class Soak:
    def __init__(self, opts: SoakOptions) -> None:
        self.opts = opts
        self.rng = random.Random(f"soak-chaos/{opts.seed}")
        self.report = SoakReport()
        self.pending: list[tuple[float, str, Callable[[], None]]] = []  # undo at time
        self.emulator: EmulatorServer | None = None
        self.emulator_up = False
        self.sim: RegisterSimulator | None = None
        self.daemon: Daemon | None = None
        self.settings: Settings | None = None
        self.bag: list[str] = []
        self.done_kinds: set[str] = set()
        self.sub_bags: dict[str, list[int]] = {}

    # -- setup --------------------------------------------------------------------------------

    def run(self) -> SoakReport:
        opts = self.opts
        started = time.monotonic()
        tmp = opts.workdir or Path(tempfile.mkdtemp(prefix="gatewayd-soak-"))
        if tmp.exists() and opts.workdir is not None:
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        journal = build_journal(opts)
        self.report.recloses = journal.recloses
        self.emulator = EmulatorServer(
            tmp / "freee.sqlite", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
            auto_approve=True, fault_seed=opts.seed,
        ).start()
        self.emulator_up = True
        self.sim = RegisterSimulator(journal.lines, visible_days=0, seed=opts.seed)
        self.sim.start_pty(tmp / "register")
        config = tmp / "gatewayd.toml"
        config.write_text(CONFIG.format(
            store=STORE, terminal=TERMINAL, port=tmp / "register", granularity=opts.granularity,
            freee=self.emulator.base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
            read_timeout=READ_TIMEOUT), encoding="utf-8")
        self.settings = load_settings(config)
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        link_gateway(self.settings)
        self.daemon = Daemon(config, tmp / "daemon.log")
        opts.log(f"soak: {opts.days} days, seed {opts.seed}, workdir {tmp}")
        try:
            self.daemon.start()
            self.chaos_phase()
            calm_at = time.monotonic()
            self.calm()
            settled = self.wait_settled(journal)
            self.report.settle_seconds = time.monotonic() - calm_at
            code = self.daemon.stop()
            if code != 0:
                self.report.problems.append(
                    f"daemon did not stop cleanly on SIGTERM ({code}):\n"
                    + (self.daemon.hung_stops[-1] if self.daemon.hung_stops else ""))
            if not settled:
                self.report.problems.append(
                    f"not settled within {opts.settle_timeout:.0f} s; daemon log tail:\n"
                    + self.daemon.tail())
            self.verify(journal)
        finally:
            if self.daemon is not None:
                self.daemon.kill()
            self.sim.stop()
            if self.emulator_up:
                self.emulator.stop()
            if not opts.keep and opts.workdir is None:
                shutil.rmtree(tmp, ignore_errors=True)
        self.report.daemon_starts = self.daemon.starts if self.daemon else 0
        self.report.elapsed = time.monotonic() - started
        return self.report

    # -- the storm ------------------------------------------------------------------------------

    def chaos_phase(self) -> None:
        assert self.sim is not None and self.daemon is not None
        opts = self.opts
        next_day = time.monotonic() + 0.5
        revealed = 0
        last_close = None
        while True:
            now = time.monotonic()
            self.run_due(now)
            code = self.daemon.exited_badly()
            if code is not None:
                self.report.problems.append(f"daemon exited by itself with {code}:\n"
                                            + self.daemon.tail())
                self.daemon.start()
            if revealed < opts.days and now >= next_day:
                self.sim.reveal_next_day()
                revealed += 1
                next_day = now + opts.day_gap * self.rng.uniform(0.6, 1.4)
                if revealed == opts.days:
                    last_close = now
            if last_close is not None and now - last_close >= opts.day_gap and (
                    not opts.every_fault or set(ACTIONS) <= self.done_kinds
                    or now - last_close > 60):
                return
            if self.rng.random() < opts.chaos * 0.05:
                action = self.next_action()
                if not self.act(action):
                    self.bag.insert(0, action)  # not possible now: later, in this round
            time.sleep(0.05)

    def next_action(self) -> str:
        if not self.bag:  # every kind once per round, in random order: all of them happen
            self.bag = list(ACTIONS)
            self.rng.shuffle(self.bag)
        return self.bag.pop()

    def draw_from(self, name: str, choices: Sequence[T]) -> T:
        """The next of ``choices`` in a shuffled cycle: each comes once per round."""
        bag = self.sub_bags.setdefault(name, [])
        if not bag:
            bag.extend(range(len(choices)))
            self.rng.shuffle(bag)
        return choices[bag.pop()]

    def later(self, delay: float, name: str, undo: Callable[[], None]) -> None:
        self.pending.append((time.monotonic() + delay, name, undo))

    def run_due(self, now: float, *, everything: bool = False) -> None:
        due = [p for p in self.pending if everything or p[0] <= now]
        self.pending = [p for p in self.pending if p not in due]
        for _when, _name, undo in sorted(due, key=lambda p: p[0]):
            undo()

    def busy(self, name: str) -> bool:
        return any(p[1] == name for p in self.pending)

    def act(self, action: str) -> bool:
        """Inject one fault of this kind now; False when it cannot happen right now."""
        assert self.sim is not None and self.daemon is not None
        rng = self.rng
        faults = self.report.faults
        self.done_kinds.add(action)
        if action == "kill" and not self.busy("daemon"):
            self.daemon.kill()
            faults["daemon SIGKILL"] += 1
            self.later(rng.uniform(0.0, 1.0), "daemon", self.daemon.start)
        elif action == "restart" and not self.busy("daemon"):
            code = self.daemon.stop()
            if code == -signal.SIGTERM:
                # it was still importing: Python's default SIGTERM action ended it (its
                # handler is installed once the store is open) — as safe as a SIGKILL
                faults["(restarts that hit the start-up: ended by SIGTERM's default)"] += 1
            elif code not in (0, -signal.SIGKILL):
                self.report.problems.append(
                    f"daemon did not stop cleanly on SIGTERM ({code}):\n"
                    + (self.daemon.hung_stops[-1] if self.daemon.hung_stops else ""))
            faults["daemon restart (SIGTERM)"] += 1
            self.later(rng.uniform(0.0, 0.5), "daemon", self.daemon.start)
        elif action == "unplug" and not self.busy("plug"):
            self.sim.unplug()
            faults["register cable unplugged"] += 1
            self.later(rng.uniform(0.3, 2.5), "plug", self.sim.replug)
        elif action == "noise" and not self.busy("noise"):
            self.sim.faults.flip_rate = rng.uniform(0.02, 0.1)
            self.sim.faults.drop_rate = rng.uniform(0.0, 2e-4)
            faults["line noise burst (flipped bits, dropped bytes)"] += 1

            def quiet() -> None:
                assert self.sim is not None
                self.sim.faults.flip_rate = self.sim.faults.drop_rate = 0.0

            self.later(rng.uniform(1.0, 3.0), "noise", quiet)
        elif action == "line":
            name = self.draw_from("line", ONE_SHOT_LINE)
            if name == "slow_responses":
                self.sim.faults.slow_delay = 0.4
            self.sim.inject(**{name: rng.randint(1, 3)})
            faults[f"line one-shot {name}"] += 1
        elif action == "freee" and self.emulator_up:
            assert self.emulator is not None
            kind, fields = self.draw_from("freee", FREEE_FAULTS)
            self.emulator.control.add_fault(kind, times=rng.randint(1, 2), **fields)
            where = f" {fields['method']} {fields['path']}" if "path" in fields else ""
            faults[f"freee {kind}{where}"] += 1
        elif action == "rate_limit" and self.emulator_up and not self.busy("rate"):
            assert self.emulator is not None
            self.emulator.control.set_config(rate_per_second=1)
            faults["freee rate limit window (1 request/s)"] += 1

            def unlimit() -> None:
                if self.emulator_up and self.emulator is not None:
                    self.emulator.control.set_config(rate_per_second=None)
                else:  # freee is down just now: lift the limit once it is back
                    self.later(0.5, "rate", unlimit)

            self.later(rng.uniform(2.0, 5.0), "rate", unlimit)
        elif action == "outage" and self.emulator_up and not self.busy("outage"):
            assert self.emulator is not None
            self.emulator.stop()
            self.emulator_up = False
            faults["freee outage (emulator stopped)"] += 1

            def back() -> None:
                assert self.emulator is not None
                self.emulator.start()
                self.emulator_up = True

            self.later(rng.uniform(1.0, 3.0), "outage", back)
        else:
            self.done_kinds.discard(action)
            return False
        return True

    def calm(self) -> None:
        """Undo every fault still active; the daemon runs."""
        assert self.sim is not None and self.daemon is not None and self.emulator is not None
        self.run_due(time.monotonic(), everything=True)
        for name in ONE_SHOT_LINE:
            setattr(self.sim.faults, name, 0)
        self.sim.faults.flip_rate = self.sim.faults.drop_rate = 0.0
        remaining = self.emulator.control.faults()
        if remaining:
            self.report.faults["(freee faults still armed at the end, cleared)"] += len(remaining)
        self.emulator.control.clear_faults()
        self.emulator.control.set_config(rate_per_second=None)
        self.daemon.start()

    # -- settling and the verdict ------------------------------------------------------------

    def expected(self, journal: Journal) -> tuple[dict[date, BusinessDay], dict[date, str]]:
        """The register's truth: its days as the checks see the whole journal file."""
        analysis = analyze_journal([line.encode("cp932") for line in journal.lines],
                                   after_record_no=0)
        accepted: dict[date, BusinessDay] = {}
        held: dict[date, str] = {}
        for result in analysis.days:
            if result.status == "accepted" and result.day is not None:
                accepted[result.day.business_date] = result.day
            elif result.status == "held" and result.business_date is not None:
                held.setdefault(result.business_date, result.reason or "")
        return accepted, held

    def plans(self, accepted: dict[date, BusinessDay]) -> dict[date, DayPlan]:
        assert self.settings is not None
        reg = self.settings.register(REGISTER_ID)
        mapping = mapping_from_settings(self.settings).for_register(reg)
        return {d: plan_day(day, STORE, TERMINAL, mapping) for d, day in accepted.items()}

    def wait_settled(self, journal: Journal) -> bool:
        assert self.sim is not None and self.settings is not None and self.daemon is not None
        accepted, _held = self.expected(journal)
        plans = self.plans(accepted)
        closes = sum(1 for line in journal.lines if line.split("\t")[1] == "Z"
                     and line.split("\t")[3] == "1")
        deadline = time.monotonic() + self.opts.settle_timeout
        outbox = Outbox.in_state_dir(self.settings.state_dir)
        store = JournalStore.in_state_dir(self.settings.state_dir)
        try:
            while time.monotonic() < deadline:
                if self.daemon.exited_badly() is not None:
                    self.report.problems.append("daemon exited by itself while settling:\n"
                                                + self.daemon.tail())
                    self.daemon.start()
                if (self.sim.committed == journal.last_record_no
                        and len(store.days(REGISTER_ID, limit=100_000)) >= closes
                        and self._delivered(outbox, plans)):
                    return True
                time.sleep(0.5)
            return False
        finally:
            outbox.close()
            store.close()

    @staticmethod
    def _delivered(outbox: Outbox, plans: dict[date, DayPlan]) -> bool:
        if outbox.postings_in_state(PostingState.PENDING, PostingState.SENDING):
            return False
        if outbox.open_requests():
            return False
        for day, plan in plans.items():
            rows = outbox.postings_of(REGISTER_ID, day)
            done = {r.ref_number for r in rows if r.state is PostingState.DONE}
            if not {p.ref_number for p in plan.postings} <= done:
                return False
        return True

    def verify(self, journal: Journal) -> None:
        assert self.sim is not None and self.settings is not None and self.emulator is not None
        report = self.report
        accepted, held = self.expected(journal)
        plans = self.plans(accepted)
        report.days = len(accepted) + len(journal.faulty_dates)
        report.accepted = len(accepted)
        report.held = len(journal.faulty_dates)
        report.records = len(journal.lines)

        # the oracle agrees with the faults put in: faulty days held, clean days accepted
        for day_date, fault in journal.faulty_dates.items():
            if fault != "duplicate_date" and day_date in accepted:
                report.problems.append(f"{day_date}: fault {fault} was not held by the checks")

        # 1. records: all stored once, byte for byte, and committed back to the register
        store = JournalStore.in_state_dir(self.settings.state_dir)
        try:
            records = store.records(REGISTER_ID)
            got = {n: raw for n, raw in records}
            placed, late = journal.placed()
            for n, line in placed.items():
                raw = got.get(n)
                if raw is None:
                    report.losses += 1
                    report.problems.append(f"record {n} missing from the journal store")
                elif raw != line:
                    report.losses += 1
                    report.problems.append(f"record {n} stored with other bytes")
            if len(got) != len(placed):
                report.problems.append(f"store holds {len(got)} records, journal "
                                       f"{len(placed)}")
            strange = [c for c in store.conflicts(REGISTER_ID) if c not in late]
            if strange:
                report.problems.append(f"{len(strange)} record conflicts")
            if self.sim.committed != journal.last_record_no:
                report.problems.append(f"register committed {self.sim.committed} of "
                                       f"{journal.last_record_no}")
            commits = [int(str(e[1])) for e in self.sim.events_named("K")]
            if commits != sorted(commits):
                report.problems.append("K numbers went backwards")
            # every day of the store: accepted, or held with a reason naming its check
            for row in store.days(REGISTER_ID, limit=100_000):
                if row.status == "held" and not (row.reason or "").startswith(CHECKS):
                    report.problems.append(f"{row.business_date} held without a reason: "
                                           f"{row.reason!r}")
                if row.status == "accepted" and row.business_date not in accepted:
                    report.problems.append(f"{row.business_date} accepted by the gateway, "
                                           "held by the register's truth")
            held_rows = {r.business_date for r in store.days(REGISTER_ID, limit=100_000)
                         if r.status == "held"}
            for day_date in held:
                if day_date not in held_rows:
                    report.problems.append(f"{day_date} should be held: {held[day_date]}")
        finally:
            store.close()

        # 2. freee: each planned posting exactly once, with its amount; nothing unplanned
        deals = self.emulator.control.deals(MAIN_COMPANY_ID)
        transfers = self.emulator.control.transfers(MAIN_COMPANY_ID)
        in_freee: Counter[str] = Counter()
        amounts: dict[str, int] = {}
        for deal in deals:
            ref = str(deal.get("ref_number") or "")
            in_freee[ref] += 1
            amounts[ref] = int(deal["amount"])
        for transfer in transfers:
            for row in transfer.get("to_walletables") or [transfer]:
                ref = str(row.get("description") or "").rsplit(" ", 1)[-1]
                in_freee[ref] += 1
                amounts[ref] = int(row.get("amount") or transfer.get("amount") or 0)
        planned = {p.ref_number: p for plan in plans.values() for p in plan.postings}
        report.postings = len(planned)
        report.duplicates = sum(n - 1 for n in in_freee.values() if n > 1)
        for ref, n in in_freee.items():
            if n > 1:
                report.problems.append(f"{ref} is in freee {n} times")
            if ref not in planned:
                report.problems.append(f"{ref} is in freee but in no accepted day's plan")
        for ref, posting in planned.items():
            if ref not in in_freee:
                report.losses += 1
                report.problems.append(f"{ref} never reached freee")
            elif amounts[ref] != _amount(posting):
                report.problems.append(f"{ref}: freee has {amounts[ref]}, plan {_amount(posting)}")

        # 3. per day: freee's sales equal the register's Z (gross and per method)
        for day_date, day in accepted.items():
            stamp = f"POS-{STORE}-{TERMINAL}-{day_date:%Y%m%d}-S"
            sales = {ref: amounts[ref] for ref in in_freee if ref.startswith(stamp)}
            if sum(sales.values()) != day.close.gross_total:
                report.problems.append(f"{day_date}: freee sales {sum(sales.values())} ≠ Z "
                                       f"{day.close.gross_total}")
            if self.opts.granularity == "summary":
                for method in METHOD_ORDER:
                    got_m = sum(a for r, a in sales.items() if r == f"{stamp}-{method.value}")
                    if got_m != day.close.method_totals[method]:
                        report.problems.append(
                            f"{day_date}: freee {method.value} {got_m} ≠ Z "
                            f"{day.close.method_totals[method]}")
        # 4. nothing of a held day reached freee
        for day_date in journal.faulty_dates:
            if day_date in accepted:
                continue  # a second close of an accepted date: the accepted day posts
            stamp = f"POS-{STORE}-{TERMINAL}-{day_date:%Y%m%d}-"
            leaked = [r for r in in_freee if r.startswith(stamp)]
            if leaked:
                report.problems.append(f"held day {day_date} posted {leaked[:3]}")


def _amount(posting: Any) -> int:
    if posting.kind is PostingKind.TRANSFER:
        return int(posting.transfer.amount)
    return int(posting.amount)


def run_soak(opts: SoakOptions) -> SoakReport:
    return Soak(opts).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--receipts", type=int, default=15, help="receipts per day")
    parser.add_argument("--granularity", choices=("summary", "receipt", "day"),
                        default="summary")
    parser.add_argument("--day-gap", type=float, default=2.0,
                        help="seconds between two closes on the register")
    parser.add_argument("--chaos", type=float, default=1.0, help="faults per second")
    parser.add_argument("--held", type=float, default=0.15,
                        help="fraction of days given a fault the checks must hold")
    parser.add_argument("--settle-timeout", type=float, default=240.0)
    parser.add_argument("--keep", type=Path, default=None,
                        help="work in this directory and keep it (logs, stores)")
    args = parser.parse_args(argv)
    opts = SoakOptions(days=args.days, seed=args.seed, receipts=args.receipts,
                       granularity=args.granularity, day_gap=args.day_gap, chaos=args.chaos,
                       held_fraction=args.held, settle_timeout=args.settle_timeout,
                       workdir=args.keep, keep=args.keep is not None)
    report = run_soak(opts)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
