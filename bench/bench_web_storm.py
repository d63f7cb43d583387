"""Benchmark: the whole box under a status-page storm (issue 12) — memory, books, recovery.

    .venv/bin/python bench/bench_web_storm.py [--logins 100] [--slow 2000] [--days 4]
                                              [--storm-seconds 20]

A child process runs the demo rig (``gatewayd.cli.demo.DemoRig``: the real daemon with its
status page, the register simulator closing a day every 4 s, the printer simulator and the
freee emulator) with the page's password hashed by the real argon2 defaults (64 MiB per
check), the unit's ``LimitNOFILE=4096`` and ``trusted_proxies = ["127.0.0.1"]`` so that
this script can play many LAN clients through ``X-Forwarded-For``. Then, while the register
keeps closing days:

- phase A, login storm: ``--logins`` parallel wrong passwords, each from its own LAN address;
- phase B, both at once: ``--slow`` connections that send half a request and hold it, and
  another login storm, for ``--storm-seconds``.

After each phase the script times how long the installer on the box (loopback) takes to log
in again. Throughout it samples the child's VmRSS every 50 ms and reads its peak (VmHWM),
and at the end checks that every day closed during the storms reached freee. All traffic
goes to 127.0.0.1. The emulator and simulators run in the child too, so its memory is an
upper bound for the daemon's. Compare the peak with the unit's MemoryMax= (320M).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MEMORY_MAX_MIB = 320

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
import gatewayd.cli.demo as demo
plain = demo.demo_config
demo.demo_config = lambda *a, **k: plain(*a, **k) + 'trusted_proxies = ["127.0.0.1"]\n'
rig = demo.DemoRig(demo.DemoOptions(directory=Path(sys.argv[1]), days=int(sys.argv[2]),
                                    receipts=30, day_interval=4.0, web_port=0))
rig.start()
print(json.dumps({"url": rig.gateway.web.url}), flush=True)
for line in sys.stdin:
    if line.strip() == "states":
        states = {str(d): s.value for d, s in rig.day_states().items()}
        print(json.dumps({"states": states, "finished": rig.finished()}), flush=True)
    elif line.strip() == "quit":
        break
rig.stop()
"""


def status(pid: int) -> dict[str, int]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM|Threads):\s+(\d+)", text, re.M)}


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_rss = 0
        self.peak_fds = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(OSError):
                self.peak_rss = max(self.peak_rss, status(self.pid)["VmRSS"])
                self.peak_fds = max(self.peak_fds, fds(self.pid))
            time.sleep(0.05)


def login_token(url: str) -> tuple[str, str]:
    with httpx.Client(base_url=url, timeout=30) as c:
        page = c.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token, page.status_code
        return token.group(1), page.cookies["gatewayd_login"]


def login(url: str, password: str, lan: str | None, timeout: float = 30) -> int:
    try:
        token, nonce = login_token(url)
        headers = {"cookie": f"gatewayd_login={nonce}"}
        if lan:
            headers["x-forwarded-for"] = lan
        with httpx.Client(base_url=url, timeout=timeout) as c:
            return c.post("/login", data={"csrf": token, "password": password},
                          headers=headers).status_code
    except httpx.HTTPError:
        return 0  # refused or dropped at the connection


def login_storm(url: str, count: int, base: int) -> dict[int, int]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        codes = list(pool.map(
            lambda i: login(url, f"wrong-{i}", f"10.{base}.{i // 250}.{i % 250 + 1}"),
            range(count)))
    return {code: codes.count(code) for code in sorted(set(codes))}


def slow_storm(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    time.sleep(1.0)
    for s in socks:
        with contextlib.suppress(OSError):
            s.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    return socks


def recover(url: str, password: str, limit: float = 60) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if login(url, password, None, timeout=5) == 303:
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=100)
    parser.add_argument("--slow", type=int, default=2000)
    parser.add_argument("--days", type=int, default=14, help="days closed, one every 4 s")
    parser.add_argument("--storm-seconds", type=float, default=20.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.slow + 512)), hard))
    from gatewayd.cli.demo import DEMO_PASSWORD

    with tempfile.TemporaryDirectory(prefix="gatewayd-storm-") as tmp:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(Path(tmp) / "demo"), str(args.days)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env)
        assert child.stdin is not None and child.stdout is not None

        def ask() -> dict[str, object]:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write("states\n")
            child.stdin.flush()
            answer: dict[str, object] = json.loads(child.stdout.readline())
            return answer

        try:
            url = json.loads(child.stdout.readline())["url"]
            port = int(url.rsplit(":", 1)[1])
            time.sleep(1.0)
            base = status(child.pid)
            print(f"daemon (demo rig) up at {url}: RSS {base['VmRSS'] / 1024:.1f} MiB, "
                  f"{fds(child.pid)} fds, {base['Threads']} threads")
            sampler = Sampler(child.pid)
            sampler.start()

            started = time.monotonic()
            codes = login_storm(url, args.logins, 1)
            took = time.monotonic() - started
            print(f"A. login storm: {args.logins} parallel wrong passwords from "
                  f"{args.logins} addresses in {took:.1f} s -> {codes} "
                  f"(0 = dropped at the connection)")
            back = recover(url, DEMO_PASSWORD)
            print(f"   installer (loopback) logged in again after "
                  f"{'never' if back is None else f'{back:.2f} s'}; peak RSS so far "
                  f"{sampler.peak_rss / 1024:.1f} MiB")

            before = ask()
            started = time.monotonic()
            socks = slow_storm(port, args.slow)
            held_at = time.monotonic()
            codes = login_storm(url, args.logins, 2)
            print(f"B. {args.slow} slow connections + {args.logins} parallel logins: "
                  f"logins -> {codes}; page fds peak {sampler.peak_fds}")
            remaining = args.storm_seconds - (time.monotonic() - held_at)
            if remaining > 0:
                time.sleep(remaining)
            during = ask()
            for s in socks:
                s.close()
            storm_took = time.monotonic() - started
            back = recover(url, DEMO_PASSWORD)
            print(f"   storm held {storm_took:.1f} s; installer logged in again "
                  f"{'never' if back is None else f'{back:.2f} s'} after it ended")
            def synced(answer: dict[str, object]) -> set[str]:
                states = answer["states"]
                assert isinstance(states, dict)
                return {d for d, s in states.items() if s == "synced"}

            new = sorted(synced(during) - synced(before))
            print(f"   days that reached freee while the storm held: {len(new)} {new}")

            deadline = time.monotonic() + 120
            final = ask()
            while not final["finished"] and time.monotonic() < deadline:
                time.sleep(1)
                final = ask()
            sampler.stop.set()
            peak = status(child.pid)["VmHWM"]
            print(f"days at the end: {final['states']} (all in freee: {final['finished']})")
            print(f"peak RSS (VmHWM) {peak / 1024:.1f} MiB, sampled max "
                  f"{sampler.peak_rss / 1024:.1f} MiB, MemoryMax {MEMORY_MAX_MIB} MiB; "
                  f"peak fds {sampler.peak_fds} (LimitNOFILE 4096)")
            ok = bool(final["finished"]) and peak / 1024 < MEMORY_MAX_MIB
            print("OK" if ok else "FAILED")
            return 0 if ok else 1
        finally:
            with contextlib.suppress(OSError, ValueError):
                child.stdin.write("quit\n")
                child.stdin.flush()
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    sys.exit(main())
