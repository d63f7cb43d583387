"""Benchmark: the daemon's CPU and memory while the shop is idle (goals: < 1 % of one core,
< 60 MB resident), and the close-to-freee latency end to end on the way.

    .venv/bin/python bench/bench_idle.py [--seconds 60] [--warmup 15] [--poll-interval 1.0]
                                         [--days 5] [--receipts 200]

The real ``gatewayd run`` (a child process) with the settings of the shipped example
(``etc/gatewayd.toml``: register polled every second, printer status every 5 s, status page
on, freee linked), against the register simulator on a pty, the receipt printer simulator on
a pty and the freee emulator. First the register closes ``--days`` business days one at a
time: for each, the time from the close (the day's records and its Z become readable on the
register) to the last of the day's planned postings stored in freee — Z-to-done through the
whole box: poll, transfer, commit, checks, plan, outbox, requests. Then nothing happens:
after ``--warmup`` s the script samples ``/proc/PID`` every second for ``--seconds``: CPU
time (utime + stime) as a share of one core, resident memory (VmRSS, and PSS from
smaps_rollup: shared library pages counted by share), peak (VmHWM), threads. The simulators
and the emulator run in this process, so their cost is not the daemon's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gatewayd.cli.demo import approve  # noqa: E402
from gatewayd.config import load_settings  # noqa: E402
from gatewayd.protocol.days import analyze_journal  # noqa: E402
from gatewayd.sim.freee.server import EmulatorServer  # noqa: E402
from gatewayd.sim.journal_gen import generate_journal  # noqa: E402
from gatewayd.sim.printer import PtyPrinterSimulator  # noqa: E402
from gatewayd.sim.register import RegisterSimulator  # noqa: E402
from gatewayd.sync.mapping import plan_day  # noqa: E402
from gatewayd.sync.mapping_settings import mapping_from_settings  # noqa: E402
from gatewayd.sync.service import SyncService  # noqa: E402

CLIENT_ID, CLIENT_SECRET = "gatewayd-bench", "gatewayd-bench-secret"
TICKS = os.sysconf("SC_CLK_TCK")

CONFIG = """# written by bench/bench_idle.py: etc/gatewayd.toml's timings
state_dir = "state"
poll_interval = {poll}

[logging]
level = "info"

[[registers]]
store_code = "0001"
terminal_no = "01"
store_name = "渋谷店"
port = "{register}"
baudrate = 115200

[mapping]
granularity = "summary"
tags = ["POS"]

[mapping.tax_names]
"0" = "非課売上"

[freee]
api_base_url = "{freee}"
auth_base_url = "{freee}"
client_id = "{client_id}"
client_secret = "{client_secret}"
send_spread = 0.0  # Z-to-done of the pipeline itself (a chain adds its spread)

[printer]
device = "{printer}"
baudrate = 9600
poll_interval = 5.0
columns = 42

[slip]
enabled = true

[web]
address = "127.0.0.1"
port = 0
"""


class _NoDays:
    def get_day(self, register_id: str, business_date: date) -> None:
        return None


def in_freee(freee: EmulatorServer) -> set[str]:
    refs = {str(d.get("ref_number")) for d in freee.control.deals()}
    for t in freee.control.transfers():
        for row in t.get("to_walletables") or []:
            refs.add(str(row.get("description", "")).rsplit(" ", 1)[-1])
    return refs


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured idle time")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before measuring")
    parser.add_argument("--poll-interval", type=float, default=1.0,
                        help="register poll interval (the example's 1.0 s)")
    parser.add_argument("--receipts", type=int, default=200, help="receipts per day")
    parser.add_argument("--days", type=int, default=5, help="days closed before idling")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gatewayd-idle-"))
    journal = generate_journal(1, args.days, date(2025, 5, 1), receipts_per_day=args.receipts)
    latencies: list[float] = []
    proc: subprocess.Popen[bytes] | None = None
    with EmulatorServer(tmp / "freee.sqlite", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                        auto_approve=True) as freee:
        sim = RegisterSimulator(journal, visible_days=0)
        sim.start_pty(tmp / "register")
        printer = PtyPrinterSimulator(link=tmp / "printer").start()
        try:
            config = tmp / "gatewayd.toml"
            config.write_text(CONFIG.format(
                poll=args.poll_interval, register=tmp / "register", printer=tmp / "printer",
                freee=freee.base_url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET),
                encoding="utf-8")
            settings = load_settings(config)
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            linker = SyncService(settings, settings.state_dir, _NoDays())
            start = linker.link_start()
            linker.link_finish(approve(start.url), start.state)
            linker.close()
            env = dict(os.environ, NOTIFY_SOCKET="")
            log = (tmp / "daemon.log").open("wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", "gatewayd", "run", "--config", str(config)],
                stdout=log, stderr=log, env=env, cwd=str(ROOT))
            reg = settings.registers[0]
            mapping = mapping_from_settings(settings).for_register(reg)
            days = analyze_journal(journal, after_record_no=0).days
            time.sleep(3.0)  # the daemon up and polling
            for result in days:
                assert result.day is not None
                refs = {p.ref_number
                        for p in plan_day(result.day, "0001", "01", mapping).postings}
                began = time.monotonic()
                sim.reveal_next_day()
                deadline = began + 60
                while time.monotonic() < deadline and not refs <= in_freee(freee):
                    time.sleep(0.02)
                latencies.append(time.monotonic() - began)
            posted = len(freee.control.deals())
            time.sleep(args.warmup)
            pid = proc.pid
            start_cpu, start_wall = cpu_seconds(pid), time.monotonic()
            rss: list[int] = []
            pss: list[int] = []
            requests_before = sum(
                v["total"] for v in freee.control.request_counts().values()
                if isinstance(v, dict) and "total" in v)
            while time.monotonic() - start_wall < args.seconds:
                rss.append(status_kib(pid, "VmRSS"))
                pss.append(pss_kib(pid))
                time.sleep(1.0)
            cpu = cpu_seconds(pid) - start_cpu
            wall = time.monotonic() - start_wall
            hwm = status_kib(pid, "VmHWM")
            threads = status_kib(pid, "Threads")
            requests = sum(
                v["total"] for v in freee.control.request_counts().values()
                if isinstance(v, dict) and "total" in v) - requests_before
            polls = len(sim.events_named("S"))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(30)
            printer.stop()
            sim.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    share = 100.0 * cpu / wall
    print(f"Z-to-done, end to end ({args.days} days of {args.receipts} receipts, closed one at "
          f"a time): " + ", ".join(f"{t:.2f}" for t in latencies) + " s; median "
          f"{statistics.median(latencies):.2f} s (register polled every "
          f"{args.poll_interval:g} s)")
    print(f"daemon idle for {wall:.0f} s after a {args.warmup:.0f} s warm-up "
          f"({len(journal)} records transferred, {posted} deals posted before)")
    print(f"register polled every {args.poll_interval:g} s ({polls} S requests in all), "
          f"printer every 5 s, status page on, freee requests while idle: {requests}")
    print(f"CPU: {cpu:.2f} s in {wall:.0f} s = {share:.2f} % of one core (goal < 1 %)")
    print(f"resident memory: RSS mean {statistics.mean(rss) / 1024:.1f} MiB, max "
          f"{max(rss) / 1024:.1f} MiB ({max(rss) * 1024 / 1e6:.1f} MB), peak (VmHWM) "
          f"{hwm / 1024:.1f} MiB; PSS mean {statistics.mean(pss) / 1024:.1f} MiB "
          "(goal < 60M as systemd counts it: MiB)")
    print(f"threads: {threads}")
    ok = share < 1.0 and max(rss) < 60 * 1024
    print("goals: " + ("met" if ok else "NOT met"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
