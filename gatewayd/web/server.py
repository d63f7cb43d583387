"""``WebServer``: the status page served by uvicorn in a thread of the daemon.

The socket is bound in ``start()`` on the caller's thread, so a busy port or a bad address
is a clear ``ConfigError`` at start-up rather than a log line from a dying thread. Beyond
loopback the server refuses to start until ``gatewayd passwd`` has set a password.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import tzinfo
from pathlib import Path

import uvicorn

from gatewayd.errors import ConfigError
from gatewayd.web.app import StatusPage, create_app
from gatewayd.web.model import GatewayBackend
from gatewayd.web.password import password_path, read_password
from gatewayd.web.security import Clock, LoginLimiter
from gatewayd.web.settings import WebSettings

log = logging.getLogger(__name__)

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def check_bind_allowed(settings: WebSettings, password_file: Path) -> None:
    """Refuse an address beyond loopback while no password is set."""
    if settings.loopback_only:
        return
    if read_password(password_file) is None:
        raise ConfigError(
            "the status page would be reachable from the network without a password; "
            "run `gatewayd passwd` first, or keep the address on loopback",
            key="web.address",
            value=settings.address,
            expected=f"127.0.0.1 until a password is set ({password_file} is missing)",
            staff_message=(
                "ステータス画面のパスワードが未設定のため、ネットワークに公開できません。"
                "設置担当者が「sudo gatewayd passwd」で設定してください。"
            ),
        )


def bind_socket(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    # proto IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only then
    # (without it every keep-alive response waits ~40 ms for a delayed ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((address, port))
        sock.listen(64)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen: {exc.strerror or exc}",
            key="web.port",
            value=f"{address}:{port}",
            expected="a free port on an address of this machine",
            staff_message="ステータス画面を開始できません（ポートが使用中など）。設置担当者に連絡してください。",
        ) from None
    return sock


class WebServer:
    """The status page, started and stopped by the daemon (or by tests)."""

    def __init__(
        self,
        settings: WebSettings,
        backend: GatewayBackend,
        *,
        state_dir: Path,
        clock: Clock = time.monotonic,
        timezone: tzinfo | None = None,
        limiter: LoginLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.password_file = password_path(state_dir)
        self.page: StatusPage = create_app(
            settings,
            backend,
            password_file=self.password_file,
            clock=clock,
            timezone=timezone,
            limiter=limiter,
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The port actually bound (``port = 0`` picks a free one)."""
        if self._sock is None:
            return self.settings.port
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        host = self.settings.address
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Bind, then serve in a daemon thread; returns once the server accepts requests."""
        if self._thread is not None:
            raise RuntimeError("WebServer already started")
        check_bind_allowed(self.settings, self.password_file)
        self._sock = bind_socket(self.settings.address, self.settings.port)
        config = uvicorn.Config(
            self.page.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            date_header=True,
            proxy_headers=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="gatewayd-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the status page did not start: {self._error!r}", key="web")
            time.sleep(0.01)
        log.info("status page on %s", self.url)

    def _run(self) -> None:
        assert self._server is not None and self._sock is not None
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # reported by start(); the thread must not die silently
            self._error = exc
            log.exception("status page server stopped")

    def stop(self) -> None:
        """Stop serving and wait for the thread (bounded)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            if self._thread.is_alive():
                log.warning("status page thread did not stop within %.0f s", STOP_TIMEOUT)
        if self._sock is not None:
            self._sock.close()
        self._thread = None
        self._server = None

    def __enter__(self) -> WebServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
