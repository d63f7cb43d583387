"""``WebServer``: the status page served by uvicorn in a thread of the daemon.

The socket is bound in ``start()`` on the caller's thread, so a busy port or a bad address
is a clear ``ConfigError`` at start-up rather than a log line from a dying thread. Beyond
loopback the server refuses to start until ``gatewayd passwd`` has set a password, and
speaks HTTPS by default (``gatewayd.web.tls``). Connections are admitted by the page's own
accept loop (``gatewayd.web.guard``): bounded in number and in time.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
from datetime import tzinfo
from pathlib import Path
from typing import Any

import uvicorn

from gatewayd.errors import ConfigError
from gatewayd.web.app import StatusPage, create_app
from gatewayd.web.guard import Acceptor, ConnectionLimits, guarded_protocol, install_repeat_filter
from gatewayd.web.model import GatewayBackend
from gatewayd.web.password import password_path, read_password
from gatewayd.web.security import Clock, LoginLimiter
from gatewayd.web.settings import WebSettings
from gatewayd.web.tls import (
    Certificate,
    box_names,
    ensure_certificate,
    load_certificate,
    server_context,
)

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
        sock.listen(128)
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


class GuardedServer(uvicorn.Server):
    """uvicorn without its own listener: ``Acceptor`` admits connections (see guard)."""

    def __init__(self, config: uvicorn.Config, acceptor: Acceptor) -> None:
        super().__init__(config)
        self.acceptor = acceptor
        self._accept_task: asyncio.Task[None] | None = None

    def make_protocol(self) -> asyncio.Protocol:
        make: Any = self.config.http_protocol_class
        protocol: asyncio.Protocol = make(
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
            _loop=asyncio.get_running_loop(),
        )
        return protocol

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        self._accept_task = asyncio.get_running_loop().create_task(self.acceptor.run())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._accept_task is not None:
            self._accept_task.cancel()
        await super().shutdown(sockets=[])
        self.acceptor.close(asyncio.get_running_loop())


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
        limits: ConnectionLimits | None = None,
        **page_options: Any,
    ) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self.limits = limits or ConnectionLimits()
        self.password_file = password_path(state_dir)
        self.certificate: Certificate | None = None
        if settings.serves_tls:
            self.certificate = self.certificate_for(settings, state_dir)
        self.page: StatusPage = create_app(
            settings,
            backend,
            password_file=self.password_file,
            clock=clock,
            timezone=timezone,
            limiter=limiter,
            tls_fingerprint=self.certificate.fingerprint if self.certificate else None,
            **page_options,
        )
        self.acceptor: Acceptor | None = None
        self._server: GuardedServer | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The port actually bound (``port = 0`` picks a free one)."""
        if self._sock is None:
            return self.settings.port
        return int(self._sock.getsockname()[1])

    @staticmethod
    def certificate_for(s: WebSettings, state_dir: Path) -> Certificate:
        """The configured certificate, or the box's own (made or remade when needed)."""
        if s.tls_cert is not None and s.tls_key is not None:
            return load_certificate(Path(s.tls_cert), Path(s.tls_key))
        addresses = [] if s.address in ("0.0.0.0", "::") else [s.address]
        cert = ensure_certificate(
            state_dir, names=[*box_names(), *s.hostnames], addresses=addresses
        )
        if cert.created:
            log.info("status page: new TLS certificate, SHA-256 %s", cert.fingerprint)
        return cert

    @property
    def scheme(self) -> str:
        return "https" if self.certificate is not None else "http"

    @property
    def url(self) -> str:
        host = self.settings.address
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> None:
        """Bind, then serve in a daemon thread; returns once the server accepts requests."""
        if self._thread is not None:
            raise RuntimeError("WebServer already started")
        check_bind_allowed(self.settings, self.password_file)
        install_repeat_filter()
        tls: ssl.SSLContext | None = None
        if self.certificate is not None:
            tls = server_context(self.certificate)
        self._sock = bind_socket(self.settings.address, self.settings.port)
        config = uvicorn.Config(
            self.page.app,
            http=guarded_protocol(self.limits),
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            date_header=True,
            proxy_headers=False,
            timeout_keep_alive=int(max(1, self.limits.keep_alive)),
            timeout_graceful_shutdown=2,
        )
        server: GuardedServer | None = None

        def factory() -> asyncio.Protocol:
            assert server is not None
            return server.make_protocol()

        self.acceptor = Acceptor(self._sock, factory, self.limits, tls=tls)
        server = GuardedServer(config, self.acceptor)
        self._server = server
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
            self._server.run(sockets=[])
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
