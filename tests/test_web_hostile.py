"""The status page on a hostile shop network (issue 12): each attack, from outside.

Every test talks to a real ``WebServer`` on 127.0.0.1 over real sockets, with counts and
time limits small enough for the suite (the full-size storms are in bench/bench_web_storm.py).
A LAN client is played through a proxy listed in ``trusted_proxies`` (``X-Forwarded-For``),
since every address a test may use is loopback.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_fixtures import (
    JST,
    METRICS_TOKEN,
    PASSWORD,
    FakeBackend,
    FakeClock,
    csrf_of,
    fast_hash,
)

from gatewayd.errors import ConfigError
from gatewayd.settings_reader import TableReader
from gatewayd.web import app as app_module
from gatewayd.web.app import CSP, LOGIN_COOKIE, SESSION_COOKIE
from gatewayd.web.guard import ConnectionLimits, RepeatFilter, client_key
from gatewayd.web.password import password_path, write_password
from gatewayd.web.server import WebServer
from gatewayd.web.settings import EXAMPLE_TOKEN, Secret, WebSettings, parse_web
from gatewayd.web.tls import ensure_certificate

REPO = Path(__file__).resolve().parents[1]
FAST = ConnectionLimits(max_connections=16, loopback_reserve=0, request_timeout=1.0)


@contextmanager
def hostile_server(
    state_dir: Path,
    *,
    limits: ConnectionLimits = FAST,
    clock: FakeClock | None = None,
    backend: FakeBackend | None = None,
    page: dict[str, Any] | None = None,
    **settings: Any,
) -> Iterator[WebServer]:
    write_password(password_path(state_dir), fast_hash(PASSWORD))
    settings.setdefault("port", 0)
    settings.setdefault("metrics_token", Secret(METRICS_TOKEN))
    server = WebServer(
        WebSettings(**settings),
        backend or FakeBackend(),
        state_dir=state_dir,
        clock=clock or FakeClock(),
        timezone=JST,
        limits=limits,
        **(page or {}),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def login_form(client: httpx.Client) -> tuple[str, str]:
    """(token, login cookie) of a fresh login form."""
    page = client.get("/login")
    assert page.status_code == 200
    return csrf_of(page.text), page.cookies[LOGIN_COOKIE]


def post_login(
    url: str, token: str, nonce: str, password: str, *, lan: str | None = None, **kw: Any
) -> httpx.Response:
    headers = {"cookie": f"{LOGIN_COOKIE}={nonce}"}
    if lan is not None:
        headers["x-forwarded-for"] = lan
    with httpx.Client(base_url=url, timeout=20, **kw) as c:
        return c.post("/login", data={"csrf": token, "password": password}, headers=headers)


HALF_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def drip_socket(port: int, first: bytes = HALF_REQUEST) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(first)
    return sock


def slow_clients(port: int, count: int) -> list[socket.socket]:
    """``count`` half-sent requests; those the server refuses at once are left out."""
    socks = []
    for _ in range(count):
        with suppress(OSError):
            socks.append(drip_socket(port))
    return socks


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


# ---- 1. parallel logins ---------------------------------------------------------------------


def test_parallel_wrong_passwords_are_counted_first_and_checked_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 parallel wrong passwords against a limit of 5: 5 argon2 checks, never two at once."""
    real = app_module.verify_password
    lock = threading.Lock()
    running = {"now": 0, "max": 0, "calls": 0}

    def watched(stored: str, password: str) -> bool:
        with lock:
            running["now"] += 1
            running["calls"] += 1
            running["max"] = max(running["max"], running["now"])
        try:
            time.sleep(0.05)  # a real argon2 check takes this long and 64 MiB
            return real(stored, password)
        finally:
            with lock:
                running["now"] -= 1

    monkeypatch.setattr(app_module, "verify_password", watched)
    with hostile_server(tmp_path, limits=ConnectionLimits(request_timeout=30.0),
                        page={"verify_wait": 30.0}) as srv:
        with httpx.Client(base_url=srv.url) as c:
            token, nonce = login_form(c)
        with ThreadPoolExecutor(max_workers=60) as pool:
            codes = list(pool.map(
                lambda _: post_login(srv.url, token, nonce, "wrong-password").status_code,
                range(60)))
    assert codes.count(401) == 5, codes
    assert codes.count(429) == 55
    assert running["calls"] == 5
    assert running["max"] == 1


def test_a_busy_check_slot_answers_429_and_does_not_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = app_module.verify_password
    release = threading.Event()

    def slow(stored: str, password: str) -> bool:
        release.wait(5)
        return real(stored, password)

    monkeypatch.setattr(app_module, "verify_password", slow)
    with hostile_server(
        tmp_path, trusted_proxies=("127.0.0.1",), page={"verify_wait": 0.3}
    ) as srv:
        with httpx.Client(base_url=srv.url) as c:
            token, nonce = login_form(c)
        with ThreadPoolExecutor(max_workers=1) as pool:
            first = pool.submit(post_login, srv.url, token, nonce, "wrong", lan="192.168.1.66")
            time.sleep(0.3)
            busy = post_login(srv.url, token, nonce, PASSWORD, lan="192.168.1.20")
            release.set()
            assert first.result().status_code == 401
        assert busy.status_code == 429 and "混み合って" in busy.text
        assert srv.page.limiter.attempts("192.168.1.20") == 0  # refunded: never checked
        assert post_login(srv.url, token, nonce, PASSWORD, lan="192.168.1.20").status_code == 303


# ---- 2. slow clients ------------------------------------------------------------------------


def test_slow_clients_are_bounded_in_number_and_time(tmp_path: Path) -> None:
    with hostile_server(tmp_path) as srv:
        dripper = drip_socket(srv.port, b"GET / HTTP/1.1\r\n")
        socks = slow_clients(srv.port, 60)
        try:
            acceptor = srv.acceptor
            assert acceptor is not None
            deadline = time.monotonic() + 5
            while acceptor.refused < 60 + 1 - 16:  # the backlog drains into refusals
                assert time.monotonic() < deadline, acceptor.refused
                assert acceptor.open_count <= 16
                time.sleep(0.02)
            assert acceptor.open_count <= 16
            # a client that keeps dripping bytes is cut at request_timeout all the same
            started = time.monotonic()
            cut = False
            while time.monotonic() - started < 4:
                try:
                    dripper.sendall(b"X-Drip: 1\r\n")
                except OSError:
                    cut = True
                    break
                if closed_by_server(dripper, 0.2):
                    cut = True
                    break
            assert cut, "a dripping client kept its connection"
            # every half-sent request is closed by the server within the timeout
            assert all(closed_by_server(s, 3.0) for s in socks)
            assert time.monotonic() - started < 2.5
        finally:
            dripper.close()
            for s in socks:
                s.close()
        started = time.monotonic()
        with httpx.Client(base_url=srv.url, timeout=5) as c:
            assert c.get("/healthz").status_code == 200
        assert time.monotonic() - started < 3


BOOKS_CHILD = textwrap.dedent("""
    import resource, sqlite3, sys, tempfile, pathlib
    from gatewayd.web.guard import ConnectionLimits
    from gatewayd.web.server import WebServer
    from gatewayd.web.settings import WebSettings
    from web_fixtures import FakeBackend
    resource.setrlimit(resource.RLIMIT_NOFILE, (160, 160))
    state = pathlib.Path(sys.argv[1])
    limits = ConnectionLimits(max_connections=64, request_timeout=30.0)
    server = WebServer(WebSettings(port=0), FakeBackend(), state_dir=state, limits=limits)
    server.start()
    print(server.port, flush=True)
    sys.stdin.readline()  # the storm is on
    failures = 0
    for attempt in range(3):  # the books: 12 SQLite databases open at once, in WAL mode
        dbs = []
        try:
            for i in range(12):
                db = sqlite3.connect(state / f"books-{i}.sqlite")
                db.execute("pragma journal_mode=wal")
                db.execute("create table if not exists t (x)")
                db.execute("insert into t values (1)")
                db.commit()
                dbs.append(db)
        except Exception as exc:
            failures += 1
            print("books failed:", exc, file=sys.stderr)
        finally:
            for db in dbs:
                db.close()
    print("failures", failures, flush=True)
    server.stop()
""")


def test_books_keep_their_files_while_the_page_is_saturated(tmp_path: Path) -> None:
    """300 slow connections against a daemon with 160 file descriptors: its databases
    (36 descriptors at once) still open. Without the cap the page holds ~150 of them."""
    env = {"PYTHONPATH": f"{REPO / 'tests'}:{REPO}", "PATH": "/usr/bin:/bin"}
    child = subprocess.Popen(
        [sys.executable, "-c", BOOKS_CHILD, str(tmp_path)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    socks: list[socket.socket] = []
    try:
        assert child.stdout is not None and child.stdin is not None
        port = int(child.stdout.readline())
        socks = slow_clients(port, 300)  # those refused: the page is the part that fails
        time.sleep(0.5)
        child.stdin.write("go\n")
        child.stdin.flush()
        out, err = child.communicate(timeout=30)
    finally:
        for s in socks:
            s.close()
        if child.poll() is None:
            child.kill()
    assert "failures 0" in out, err[-2000:]
    assert len(err) < 20_000, "the storm flooded the log"


def test_repeated_errors_are_logged_a_few_times_a_minute() -> None:
    clock = FakeClock()
    filt = RepeatFilter(burst=5, period=60, clock=clock)
    record = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "accept failed: %s",
                               ("EMFILE",), None)
    passed = [filt.filter(logging.makeLogRecord(record.__dict__)) for _ in range(1000)]
    assert passed.count(True) == 5
    clock.advance(61)
    again = logging.makeLogRecord(record.__dict__)
    assert filt.filter(again)
    assert "995 similar messages suppressed" in again.getMessage()


# ---- 3. reverse proxy -----------------------------------------------------------------------


def test_a_forwarded_request_is_not_loopback_without_trusted_proxies(tmp_path: Path) -> None:
    """An on-box proxy not declared: its clients do not get loopback's /metrics."""
    with hostile_server(tmp_path) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.get("/metrics").status_code == 200  # the box itself
        forwarded = c.get("/metrics", headers={"x-forwarded-for": "192.168.1.50"})
        assert forwarded.status_code == 401
        assert c.get("/metrics", headers={"forwarded": "for=192.168.1.50"}).status_code == 401


def test_trusted_proxy_clients_are_told_apart(tmp_path: Path) -> None:
    with hostile_server(tmp_path, trusted_proxies=("127.0.0.1",)) as srv:
        with httpx.Client(base_url=srv.url) as c:
            lan = {"x-forwarded-for": "192.168.1.50"}
            assert c.get("/metrics", headers=lan).status_code == 401
            spoofed = {"x-forwarded-for": "127.0.0.1, 192.168.1.50"}  # the client's own entry
            assert c.get("/metrics", headers=spoofed).status_code == 401
            assert c.get("/metrics", headers={**lan, "authorization": "Bearer " + METRICS_TOKEN}
                         ).status_code == 200
            token, nonce = login_form(c)
        for _ in range(8):  # a LAN client through the proxy locks itself out…
            post_login(srv.url, token, nonce, "wrong-password", lan="192.168.1.50")
        assert post_login(srv.url, token, nonce, PASSWORD, lan="192.168.1.50").status_code == 429
        # …not the installer on the box
        assert post_login(srv.url, token, nonce, PASSWORD).status_code == 303


# ---- 4. HTTPS -------------------------------------------------------------------------------


def test_tls_is_the_default_beyond_loopback() -> None:
    assert WebSettings(address="0.0.0.0").serves_tls
    assert WebSettings(address="192.168.1.20").serves_tls
    assert not WebSettings().serves_tls
    assert not WebSettings(address="0.0.0.0", tls="off").serves_tls


def _server_fingerprint(port: int) -> str:
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    der = ssl.PEM_cert_to_DER_cert(pem)
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def test_https_page_redirect_secure_cookie_and_fingerprint(tmp_path: Path) -> None:
    with hostile_server(tmp_path, tls="on") as srv:
        assert srv.url.startswith("https://")
        plain = f"http://127.0.0.1:{srv.port}"
        with httpx.Client(base_url=plain) as c:
            moved = c.get("/login?next=/day/0001-01/2025-01-13")
        assert moved.status_code == 308
        assert moved.headers["location"] == (
            f"https://127.0.0.1:{srv.port}/login?next=/day/0001-01/2025-01-13")
        assert moved.headers["content-security-policy"] == CSP
        assert srv.certificate is not None
        cafile = str(srv.certificate.cert)
        with httpx.Client(base_url=srv.url, verify=ssl.create_default_context(cafile=cafile)
                          ) as c:
            page = c.get("/login")
            assert page.status_code == 200
            assert page.headers["strict-transport-security"].startswith("max-age=")
            fingerprint = _server_fingerprint(srv.port)
            assert fingerprint == srv.certificate.fingerprint
            assert fingerprint in page.text  # the footer, for staff to compare
            resp = c.post("/login", data={"csrf": csrf_of(page.text), "password": PASSWORD})
            assert resp.status_code == 303
            cookie = next(v for v in resp.headers.get_list("set-cookie")
                          if v.startswith(SESSION_COOKIE))
            assert "secure" in cookie.lower()
            assert c.get("/").status_code == 200


def test_a_silent_tls_client_is_dropped(tmp_path: Path) -> None:
    with hostile_server(tmp_path, tls="on") as srv:
        sock = drip_socket(srv.port, b"\x16\x03\x01")  # a handshake that never goes on
        assert closed_by_server(sock, 4.0)
        sock.close()


def test_certificate_is_remade_when_the_host_name_changes(tmp_path: Path) -> None:
    first = ensure_certificate(tmp_path, names=["shop-a", "shop-a.local"])
    again = ensure_certificate(tmp_path, names=["shop-a", "shop-a.local"])
    assert first.created and not again.created and again.fingerprint == first.fingerprint
    renamed = ensure_certificate(tmp_path, names=["shop-b", "shop-b.local"])
    assert renamed.created and renamed.fingerprint != first.fingerprint
    key = tmp_path / "web-tls/key.pem"
    assert key.stat().st_mode & 0o077 == 0


def test_setup_slip_prints_the_certificate_fingerprint(tmp_path: Path) -> None:
    from gatewayd.cli.setup_slip import fingerprint_lines
    from gatewayd.config import load_settings

    conf = tmp_path / "gatewayd.toml"
    conf.write_text(
        f'state_dir = "{tmp_path}"\n\n[[registers]]\nstore_code = "0001"\nterminal_no = "01"\n'
        'port = "/dev/ttyUSB0"\n\n[web]\naddress = "0.0.0.0"\n')
    lines = fingerprint_lines(load_settings(conf))
    cert = ensure_certificate(tmp_path)  # the same one: made by the slip, kept
    assert not cert.created
    assert lines[0].startswith("証明書 SHA-256")
    assert ":".join(lines[1:]) == cert.fingerprint
    assert all(len(line) <= 32 for line in lines)  # fits a 58 mm receipt


# ---- 5. "::" and mapped addresses -----------------------------------------------------------


def test_an_ipv4_client_on_a_dual_stack_socket_is_loopback(tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with (
        hostile_server(tmp_path, address="::ffff:127.0.0.1", tls="off") as srv,
        httpx.Client(base_url=f"http://127.0.0.1:{srv.port}") as c,
    ):
        assert c.get("/metrics").status_code == 200  # loopback needs no token


def test_ipv6_clients_are_limited_by_their_64() -> None:
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("192.168.1.5") == "192.168.1.5"


# ---- 6. lockouts ----------------------------------------------------------------------------


def test_an_attacker_on_the_lan_cannot_lock_staff_out(tmp_path: Path) -> None:
    with hostile_server(tmp_path, trusted_proxies=("127.0.0.1",)) as srv:
        with httpx.Client(base_url=srv.url) as c:
            token, nonce = login_form(c)
        attacker = [post_login(srv.url, token, nonce, f"guess-{i}", lan="192.168.1.66")
                    for i in range(40)]
        assert [r.status_code for r in attacker].count(401) == 5
        assert attacker[-1].status_code == 429
        staff = post_login(srv.url, token, nonce, PASSWORD, lan="192.168.1.20")
        assert staff.status_code == 303
        with httpx.Client(base_url=srv.url, cookies={SESSION_COOKIE: staff.cookies[SESSION_COOKIE]},
                          headers={"x-forwarded-for": "192.168.1.20"}) as c:
            overview = c.get("/")
        assert overview.status_code == 200
        assert "192.168.1.66 からのログイン失敗が続いたため" in overview.text


# ---- 7. the login form cannot be jammed -----------------------------------------------------


def test_anonymous_login_pages_store_nothing(tmp_path: Path) -> None:
    with hostile_server(tmp_path) as srv, httpx.Client(base_url=srv.url) as staff:
        form = staff.get("/login")
        def anonymous(_: int) -> list[int]:
            codes = []
            with httpx.Client(base_url=srv.url) as c:
                for _ in range(32):
                    c.cookies.clear()  # a new visitor each time
                    codes.append(c.get("/login").status_code)
            return codes

        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = [code for batch in pool.map(anonymous, range(8)) for code in batch]
        assert codes.count(200) == 256  # more than the 200 sessions the store keeps
        assert len(srv.page.sessions) == 0
        resp = staff.post("/login", data={"csrf": csrf_of(form.text), "password": PASSWORD})
        assert resp.status_code == 303


def test_a_login_token_of_another_browser_is_refused(tmp_path: Path) -> None:
    with hostile_server(tmp_path) as srv:
        with httpx.Client(base_url=srv.url) as c:
            token, _ = login_form(c)
        with httpx.Client(base_url=srv.url) as other:
            _, nonce = login_form(other)
        assert post_login(srv.url, token, nonce, PASSWORD).status_code == 403


# ---- 8. metrics token -----------------------------------------------------------------------


def _parse_token(token: str) -> Any:
    return parse_web(TableReader({"metrics_token": token}, "web"))


def test_weak_metrics_tokens_are_refused() -> None:
    with pytest.raises(ConfigError, match="placeholder"):
        _parse_token(EXAMPLE_TOKEN)
    with pytest.raises(ConfigError):
        _parse_token("a" * 31)
    assert _parse_token("a1" * 16).metrics_token == Secret("a1" * 16)
    example = (REPO / "etc/gatewayd.toml").read_text()
    assert EXAMPLE_TOKEN in example  # the check refuses exactly what the example shows


def test_passwd_makes_a_metrics_token() -> None:
    lines = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "gatewayd", "passwd", "--metrics-token"],
                              capture_output=True, text=True, timeout=60, check=True)
        lines.append(proc.stdout.strip())
    assert lines[0] != lines[1]
    token = tomllib.loads(lines[0])["metrics_token"]
    assert _parse_token(token).metrics_token == Secret(token)


# ---- 9. every response through the guard ----------------------------------------------------


def test_starlettes_413_carries_the_guard_headers(tmp_path: Path) -> None:
    with hostile_server(tmp_path) as srv, httpx.Client(base_url=srv.url) as c:
        big = c.post("/login", content=b"password=" + b"x" * 40_000,
                     headers={"content-type": "application/x-www-form-urlencoded"})
        assert big.status_code == 413
        assert big.headers["content-security-policy"] == CSP
        assert big.headers["x-frame-options"] == "DENY"
        rebound = c.post("/login", content=b"x" * 40_000, headers={"host": "evil.example"})
        assert rebound.status_code == 400  # the Host check comes first


# ---- bounded: the test servers stop ---------------------------------------------------------


def test_stop_closes_every_held_connection(tmp_path: Path) -> None:
    limits = ConnectionLimits(max_connections=16, loopback_reserve=0, request_timeout=30.0)
    with hostile_server(tmp_path, limits=limits) as srv:
        socks = slow_clients(srv.port, 5)
        time.sleep(0.2)
    assert len(socks) == 5
    try:
        assert all(closed_by_server(s, 3.0) for s in socks)
    finally:
        for s in socks:
            with closing(s):
                pass


def test_unit_gives_the_page_room_and_bounds_memory() -> None:
    """LimitNOFILE= above the page's connection cap with room for the books; memory capped."""
    unit = (REPO / "systemd/gatewayd.service").read_text()
    values = dict(re.findall(r"^(LimitNOFILE|MemoryHigh|MemoryMax)=(\S+)$", unit, re.M))
    assert int(values["LimitNOFILE"]) >= ConnectionLimits().max_connections + 1024
    high, top = (int(values[k].rstrip("M")) for k in ("MemoryHigh", "MemoryMax"))
    assert 64 * 2 < high < top  # above idle + one argon2 check, below the hard limit
