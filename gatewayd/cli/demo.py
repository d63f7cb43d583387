"""``gatewayd demo``: the whole box on one machine, with every device simulated.

The rig starts the freee emulator (demo approval), a register simulator on a pseudo-terminal
that closes one generated business day every few seconds, a receipt printer simulator, and
the real daemon with its status page, then links the daemon to the emulator the way an
installer would (authorize URL → consent → code). Staff-visible results: the status page,
the emulator's books page, ``gatewayd status`` and the close slips printed as text.
The same rig drives the end-to-end tests.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from gatewayd.cli.status import collect, render_text
from gatewayd.config import Settings, load_settings
from gatewayd.daemon import Gateway
from gatewayd.logging_setup import setup_logging
from gatewayd.sim.freee.server import EmulatorServer
from gatewayd.sim.journal_gen import Reclose, generate_journal, inject_fault
from gatewayd.sim.printer import PtyPrinterSimulator
from gatewayd.sim.register import RegisterSimulator
from gatewayd.web.model import DayStatus
from gatewayd.web.password import hash_password, password_path, write_password

DEMO_PASSWORD = "demo-password"
_CODE = re.compile(r'id="authorization-code">([^<]+)<')


@dataclass(frozen=True)
class DemoOptions:
    directory: Path
    days: int = 3
    seed: int = 2025
    receipts: int = 30
    day_interval: float = 4.0
    web_port: int = 8080
    freee_port: int = 0
    granularity: str = "summary"
    reclose: bool = True
    hold_last_day: bool = False  # break one receipt of the last day: held by check 2
    start_date: date | None = None  # the first business day; None: days + 1 days before today


def approve(url: str) -> str:
    """Play the installer on the emulator's consent page: return the authorization code."""
    with httpx.Client(follow_redirects=False, timeout=10) as http:
        page = http.get(url)
        if page.status_code == 200 and "authorization-code" not in page.text:
            form = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
            form["action"] = "approve"
            page = http.post(url.split("?")[0], data=form)
    if page.status_code in (302, 303):
        return parse_qs(urlsplit(page.headers["location"]).query)["code"][0]
    match = _CODE.search(page.text)
    if match is None:
        raise RuntimeError("the consent page showed no code")
    return match.group(1)


def _free_or_any(port: int) -> int:
    """``port`` when it is free on 127.0.0.1, else 0 (any free port): a busy 8080 must not
    spoil the demo."""
    if port == 0:
        return 0
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def demo_config(opts: DemoOptions, freee_url: str, register: Path, printer: Path) -> str:
    return f"""# written by gatewayd demo
state_dir = "state"
poll_interval = 0.2

[logging]
level = "warning"

[[registers]]
store_code = "0001"
terminal_no = "01"
store_name = "デモ店"
port = "{register}"

[mapping]
granularity = "{opts.granularity}"
tags = ["POS"]

[mapping.tax_names]
"0" = "非課売上"        # freee's name of the exempt-sales tax

[freee]
api_base_url = "{freee_url}"
auth_base_url = "{freee_url}"
client_id = "gatewayd-demo"
client_secret = "gatewayd-demo-secret"
send_spread = 0.0          # one box: no spread of the sends after a close

[printer]
device = "{printer}"
poll_interval = 1.0

[slip]
enabled = true

[web]
address = "127.0.0.1"
port = {opts.web_port}
"""


class DemoRig:
    """Everything of the demo, started and stopped together."""

    def __init__(self, opts: DemoOptions) -> None:
        self.opts = opts
        self.dir = opts.directory
        self.emulator: EmulatorServer | None = None
        self.register: RegisterSimulator | None = None
        self.printer: PtyPrinterSimulator | None = None
        self.gateway: Gateway | None = None
        self.settings: Settings | None = None
        self.start_date = opts.start_date or date.today() - timedelta(days=opts.days + 1)
        self._loop: threading.Thread | None = None

    def start(self) -> DemoRig:
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self.emulator = EmulatorServer(
            self.dir / "freee.sqlite",
            port=self.opts.freee_port,
            auto_approve=True,
            client_id="gatewayd-demo",
            client_secret="gatewayd-demo-secret",
        ).start()
        recloses = (
            [Reclose(0, self.opts.days - 1)] if self.opts.reclose and self.opts.days >= 2 else []
        )
        journal = generate_journal(
            self.opts.seed,
            self.opts.days,
            self.start_date,
            receipts_per_day=self.opts.receipts,
            recloses=recloses,
        )
        if self.opts.hold_last_day:
            journal = inject_fault(journal, "amount", seed=self.opts.seed)
        self.register = RegisterSimulator(
            journal, visible_days=1, day_interval=self.opts.day_interval
        )
        self.register.start_pty(self.dir / "register")
        self.printer = PtyPrinterSimulator(link=self.dir / "printer").start()
        config = self.dir / "gatewayd.toml"
        config.write_text(
            demo_config(
                self.opts, self.emulator.base_url, self.dir / "register", self.dir / "printer"
            ),
            encoding="utf-8",
        )
        self.settings = load_settings(config)
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        write_password(password_path(self.settings.state_dir), hash_password(DEMO_PASSWORD))
        self.gateway = Gateway(self.settings, web_port=_free_or_any(self.opts.web_port))
        self.gateway.start()
        self.link()
        self._loop = threading.Thread(target=self.gateway.run, name="main-loop", daemon=True)
        self._loop.start()
        return self

    def link(self) -> None:
        """What an installer does once: open the authorize URL, approve, paste the code."""
        assert self.gateway is not None and self.gateway.sync is not None
        start = self.gateway.sync.link_start()
        code = approve(start.url)
        self.gateway.sync.link_finish(code, start.state)
        self.gateway.wake_sync.set()

    def day_states(self) -> dict[date, DayStatus]:
        assert self.gateway is not None and self.gateway.sync is not None
        snap = self.gateway.sync.snapshot()
        states = {d.business_date: d.status for d in snap.days}
        for row in self.gateway.store.days():
            if row.business_date is not None and row.status == "held":
                states[row.business_date] = DayStatus.HELD
        return states

    def finished(self) -> bool:
        """Every generated day closed and either in freee or held."""
        states = self.day_states()
        expected = {self.start_date + timedelta(days=i) for i in range(self.opts.days)}
        done = {DayStatus.SYNCED, DayStatus.HELD}
        return expected <= set(states) and all(states[d] in done for d in expected)

    def wait_finished(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.finished():
                return True
            time.sleep(0.2)
        return False

    def wait_slips(self, timeout: float) -> bool:
        """Until every close has its slip printed (the result slip follows the result)."""
        assert self.gateway is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            waiting = [n for n in self.gateway.store.open_notices() if n.last_status is None]
            printer = self.gateway.printer
            pending = printer.snapshot().slips_pending if printer is not None else 0
            if not waiting and not pending:
                return True
            time.sleep(0.2)
        return False

    def slip_text(self) -> str:
        assert self.printer is not None
        return self.printer.printer.decoded().text

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop_event.set()
            if self._loop is not None:
                self._loop.join(5)
            self.gateway.stop()
        if self.register is not None:
            self.register.stop()
        if self.printer is not None:
            self.printer.stop()
        if self.emulator is not None:
            self.emulator.stop()

    def __enter__(self) -> DemoRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path("demo-state"),
        help="working directory, recreated (default: %(default)s)",
    )
    parser.add_argument("--days", type=int, default=3, help="business days to close")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--receipts", type=int, default=30, help="receipts per day")
    parser.add_argument(
        "--day-interval",
        type=float,
        default=4.0,
        help="seconds between two closes on the simulated register",
    )
    parser.add_argument("--port", type=int, default=8080, help="status page port (0: any)")
    parser.add_argument("--granularity", choices=("summary", "receipt", "day"), default="summary")
    parser.add_argument(
        "--start-date",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="first business day (default: the days end the day before yesterday)",
    )
    parser.add_argument(
        "--no-held-day",
        dest="hold_last_day",
        action="store_false",
        help="keep every day whole (by default one receipt of the last day is broken, so"
        " that the demo shows a day held by check 2 with its reason)",
    )
    parser.add_argument(
        "--exit-when-done", action="store_true", help="stop once every day is in freee (or held)"
    )
    parser.add_argument("--timeout", type=float, default=300.0)


def run(args: argparse.Namespace) -> int:
    opts = DemoOptions(
        directory=args.dir.resolve(),
        days=args.days,
        seed=args.seed,
        receipts=args.receipts,
        day_interval=args.day_interval,
        web_port=args.port,
        granularity=args.granularity,
        hold_last_day=args.hold_last_day,
        start_date=args.start_date,
    )
    rig = DemoRig(opts)
    log_path = opts.directory.parent / f"{opts.directory.name}.log"
    log_file = log_path.open("w", encoding="utf-8")
    setup_logging("info", journald=False, stream=log_file)
    try:
        rig.start()
        assert rig.gateway is not None and rig.emulator is not None
        page = rig.gateway.web.url if rig.gateway.web is not None else "(not started)"
        print("gatewayd demo")
        print(f"  status page : {page}   (password: {DEMO_PASSWORD})")
        print(f"  freee books : {rig.emulator.base_url}/_emulator/books")
        print(f"  register    : {opts.directory / 'register'} (REGLINK/1 simulator)")
        print(f"  printer     : {opts.directory / 'printer'} (ESC/POS simulator)")
        print(f"  config      : {opts.directory / 'gatewayd.toml'}")
        print(f"  log         : {log_path}")
        print(
            f"closing {opts.days} business day(s), one every {opts.day_interval:g} s ...",
            flush=True,
        )
        shown: dict[date, DayStatus] = {}
        deadline = time.monotonic() + args.timeout
        labels = {"synced": "送信済 synced", "sending": "送信中 sending", "held": "保留 held",
                  "open": "未閉局 open"}

        def show_changes() -> None:
            for day, state in sorted(rig.day_states().items()):
                if shown.get(day) != state:
                    shown[day] = state
                    print(f"  {day}  {labels[state.value]}", flush=True)

        while time.monotonic() < deadline and not rig.finished():
            show_changes()
            time.sleep(0.5)
        show_changes()
        ok = rig.finished() and rig.wait_slips(30)
        assert rig.settings is not None
        rig.gateway.publish()
        print()
        print(render_text(collect(rig.settings)))
        print()
        print("--- close slips (printer simulator, decoded) ---")
        print(rig.slip_text() or "(none printed yet)")
        if not ok:
            print("demo: not every day finished in time", flush=True)
            return 1
        if args.exit_when_done:
            return 0
        print()
        print(f"running: open {page} (password {DEMO_PASSWORD}); Ctrl-C to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)
        return 0
    finally:
        rig.stop()
        log_file.close()
