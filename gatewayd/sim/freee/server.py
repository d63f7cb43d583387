"""Running the emulator: in-process on a thread (tests, demo) or in the foreground (CLI).

``EmulatorServer`` is the programmatic entry point::

    with EmulatorServer(tmp_path / "freee.sqlite3") as freee:
        tokens = freee.obtain_tokens()            # the real OAuth flow, over HTTP
        freee.control.add_fault("drop_after", method="POST", path="/api/1/deals", times=1)
        ...                                       # the code under test calls freee.base_url
        assert len(freee.control.deals()) == 1

``ControlClient`` talks to ``/_emulator/`` of any running emulator (also one started by
``gatewayd sim freee`` in another process); ``EmulatorProcess`` starts that command.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import secrets
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import uvicorn

from gatewayd.sim.freee import seed
from gatewayd.sim.freee.app import build_app
from gatewayd.sim.freee.config import (
    DEFAULT_ACCESS_TOKEN_TTL,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_DAILY_QUOTA,
    EmulatorConfig,
)
from gatewayd.sim.freee.core import Emulator
from gatewayd.sim.freee.faults import FaultRule, parse_spec
from gatewayd.sim.freee.oauth import OOB_REDIRECT

LISTENING_PREFIX = "freee emulator listening on "
HOST = "127.0.0.1"


def bind_socket(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1; port 0 picks a free one (never shared by accident)."""
    # proto IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (else 40 ms
    # delayed-ACK stalls on every keep-alive request)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def as_rules(faults: Iterable[FaultRule | str | dict[str, Any]]) -> list[FaultRule]:
    """Fault rules from rules, CLI specs (``kind:key=value,...``) or JSON objects."""
    rules = []
    for fault in faults:
        if isinstance(fault, FaultRule):
            rules.append(fault)
        elif isinstance(fault, str):
            rules.append(parse_spec(fault))
        else:
            rules.append(FaultRule.from_json(dict(fault)))
    return rules


def uvicorn_config(emu: Emulator, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        build_app(emu),
        http="h11",
        lifespan="off",
        log_config=None,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=2,
    )


class EmulatorServer:
    """The emulator on a background thread of this process, bound to 127.0.0.1.

    Options mirror ``gatewayd sim freee``. Use as a context manager, or ``start()`` and
    ``stop()``. ``base_url`` serves both of freee's hosts (``/public_api/...`` and
    ``/api/1/...``); ``control`` drives ``/_emulator/``; ``emulator`` is the in-process
    state (store, config, clock, faults) for direct inspection.
    """

    def __init__(
        self,
        state_path: str | Path,
        *,
        port: int = 0,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        auto_approve: bool = False,
        access_token_ttl: int = DEFAULT_ACCESS_TOKEN_TTL,
        daily_quota: int = DEFAULT_DAILY_QUOTA,
        rate_per_second: int | None = None,
        faults: Sequence[FaultRule | str | dict[str, Any]] = (),
        fault_seed: int | None = None,
        audit_dir: str | Path | None = None,
        log_level: str = "warning",
    ) -> None:
        self.state_path = Path(state_path)
        self._port = port
        self.config = EmulatorConfig(
            client_id=client_id,
            client_secret=client_secret,
            auto_approve=auto_approve,
            access_token_ttl=access_token_ttl,
            daily_quota=daily_quota,
            rate_per_second=rate_per_second,
        )
        self._faults = as_rules(faults)
        self._fault_seed = fault_seed
        self._audit_dir = audit_dir
        self._log_level = log_level
        self._emulator: Emulator | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._control: ControlClient | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        sock = bind_socket(self._port)
        self._port = sock.getsockname()[1]
        self._emulator = Emulator(
            self.state_path, self.config, faults=self._faults, fault_seed=self._fault_seed,
            audit_dir=self._audit_dir,
        )
        server = uvicorn.Server(uvicorn_config(self._emulator, self._log_level))
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="freee-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the freee emulator did not start")
            time.sleep(0.01)
        self._control = ControlClient(self.base_url)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._control is not None:
            self._control.close()
        if self._emulator is not None:
            self._emulator.close()
        self._server = self._thread = self._control = self._emulator = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- access -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: use it for both accounts and API hosts."""
        return f"http://{HOST}:{self._port}"

    @property
    def emulator(self) -> Emulator:
        if self._emulator is None:
            raise RuntimeError("the emulator is not running")
        return self._emulator

    @property
    def control(self) -> ControlClient:
        if self._control is None:
            raise RuntimeError("the emulator is not running")
        return self._control

    def obtain_tokens(self, **kwargs: Any) -> dict[str, Any]:
        """Run the real OAuth flow (consent button, code, token); see ``obtain_tokens``."""
        return obtain_tokens(
            self.base_url, client_id=self.config.client_id,
            client_secret=self.config.client_secret, **kwargs,
        )


# -- OAuth as a script would drive it -----------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_url(
    base_url: str, *, client_id: str = DEFAULT_CLIENT_ID, redirect_uri: str = OOB_REDIRECT,
    state: str | None = None, code_challenge: str | None = None,
    select_company: bool = True,
) -> str:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri}
    if state is not None:
        params["state"] = state
    if select_company:
        params["prompt"] = "select_company"
    if code_challenge is not None:
        params["code_challenge"] = code_challenge
        params["code_challenge_method"] = "S256"
    return f"{base_url}/public_api/authorize?{urlencode(params)}"


_CODE_ON_PAGE = re.compile(r'id="authorization-code">([^<]+)<')


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every helper client: httpx builds a new one (~40 ms) per client
    otherwise. The emulator speaks plain HTTP on loopback; TLS is never used."""
    return ssl.create_default_context()


@functools.cache
def _http() -> httpx.Client:
    return httpx.Client(follow_redirects=False, timeout=10, verify=tls_context())


def obtain_code(
    base_url: str, *, client_id: str = DEFAULT_CLIENT_ID, redirect_uri: str = OOB_REDIRECT,
    company_id: int = seed.MAIN_COMPANY_ID, code_challenge: str | None = None,
    select_company: bool = True, state: str = "emulator-state",
) -> str:
    """Press the consent button (or use auto-approve) and return the authorization code."""
    url = authorize_url(base_url, client_id=client_id, redirect_uri=redirect_uri, state=state,
                        code_challenge=code_challenge, select_company=select_company)
    http = _http()
    page = http.get(url)
    if page.status_code == 200 and "authorization-code" not in page.text:
        form = dict(parse_qs(urlsplit(url).query, keep_blank_values=True))
        data = {k: v[0] for k, v in form.items()}
        data.update({"action": "approve", "company_id": str(company_id)})
        page = http.post(f"{base_url}/public_api/authorize", data=data)
    if page.status_code in (302, 303):
        query = parse_qs(urlsplit(page.headers["location"]).query)
        if "code" not in query:
            raise RuntimeError(f"authorization refused: {query}")
        return query["code"][0]
    match = _CODE_ON_PAGE.search(page.text)
    if page.status_code != 200 or match is None:
        raise RuntimeError(f"authorization failed: {page.status_code} {page.text[:200]}")
    return match.group(1)


def obtain_tokens(
    base_url: str, *, client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET, redirect_uri: str = OOB_REDIRECT,
    company_id: int = seed.MAIN_COMPANY_ID, use_pkce: bool = True, select_company: bool = True,
) -> dict[str, Any]:
    """Authorization code flow end to end; returns freee's token response."""
    verifier, challenge = pkce_pair() if use_pkce else (None, None)
    code = obtain_code(base_url, client_id=client_id, redirect_uri=redirect_uri,
                       company_id=company_id, code_challenge=challenge,
                       select_company=select_company)
    form = {"grant_type": "authorization_code", "client_id": client_id,
            "client_secret": client_secret, "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        form["code_verifier"] = verifier
    response = _http().post(f"{base_url}/public_api/token", data=form)
    response.raise_for_status()
    return cast(dict[str, Any], response.json())


# -- control client -----------------------------------------------------------------------


class ControlClient:
    """Typed helpers over ``/_emulator/`` of a running emulator."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url + "/_emulator", timeout=timeout,
                                  verify=tls_context())

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, json: Any = None,
              params: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=json, params=params)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} /_emulator{path}: {response.status_code} "
                               f"{response.text}")
        return response.json()

    # inspection
    def deals(self, company_id: int | None = None) -> list[dict[str, Any]]:
        params = {"company_id": company_id} if company_id else None
        return cast(list[dict[str, Any]], self._call("GET", "/deals", params=params)["deals"])

    def transfers(self, company_id: int | None = None) -> list[dict[str, Any]]:
        params = {"company_id": company_id} if company_id else None
        result = self._call("GET", "/transfers", params=params)["transfers"]
        return cast(list[dict[str, Any]], result)

    def companies(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._call("GET", "/companies")["companies"])

    def company(self, company_id: int = seed.MAIN_COMPANY_ID) -> dict[str, Any]:
        """One company's masters by name: account_items, taxes, walletables, items, ..."""
        return next(c for c in self.companies() if c["id"] == company_id)

    def request_counts(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", "/requests"))

    def count(self, endpoint: str) -> int:
        """Requests seen for ``"METHOD /template"`` (e.g. ``"POST /api/1/deals"``)."""
        return int(self.request_counts()["endpoints"].get(endpoint, {}).get("total", 0))

    def clear_request_counts(self) -> None:
        """Clears the counts and the request log."""
        self._call("DELETE", "/requests")

    def request_log(self, since: int = 0) -> list[dict[str, Any]]:
        """Requests with their times (``at``, ``done_at``, ``gave_up_at``), outcome, status
        and ref_number, oldest first; ``since``: only those with a higher id."""
        result = self._call("GET", "/requests/log", params={"since": since})["requests"]
        return cast(list[dict[str, Any]], result)

    def tokens(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._call("GET", "/tokens")["tokens"])

    def quota(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", "/quota"))

    def clear_quota(self) -> None:
        self._call("DELETE", "/quota")

    def books_html(self, company_id: int = seed.MAIN_COMPANY_ID) -> str:
        response = self._http.get("/books", params={"company_id": company_id})
        response.raise_for_status()
        return response.text

    # control
    def reset(self, tokens: bool = False) -> None:
        self._call("POST", "/reset", json={"tokens": tokens})

    def faults(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._call("GET", "/faults")["faults"])

    def add_fault(self, kind: str, **fields: Any) -> dict[str, Any]:
        """E.g. ``add_fault("drop_after", method="POST", path="/api/1/deals", times=1)``."""
        return cast(dict[str, Any], self._call("POST", "/faults", json={"kind": kind, **fields}))

    def set_faults(self, faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
        result = self._call("PUT", "/faults", json={"faults": faults})["faults"]
        return cast(list[dict[str, Any]], result)

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def remove_fault(self, rule_id: int) -> bool:
        return bool(self._call("DELETE", f"/faults/{rule_id}")["removed"])

    def expire_access_tokens(self, token: str | None = None) -> int:
        return int(self._call("POST", "/tokens/expire", json={"token": token})["expired"])

    def revoke_refresh_tokens(self, token: str | None = None) -> int:
        return int(self._call("POST", "/tokens/revoke_refresh", json={"token": token})["revoked"])

    def config(self) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", "/config"))

    def set_config(self, **fields: Any) -> dict[str, Any]:
        """auto_approve, access_token_ttl, refresh_token_ttl, daily_quota, rate_per_second."""
        return cast(dict[str, Any], self._call("PATCH", "/config", json=fields))

    def facts(self) -> dict[str, dict[str, Any]]:
        """The fact rules (facts.py) with their values, defaults and texts."""
        return cast(dict[str, dict[str, Any]], self._call("GET", "/facts")["facts"])

    def set_facts(self, **values: bool) -> dict[str, dict[str, Any]]:
        """Switch fact rules, e.g. ``set_facts(deal_ref_number_unlimited=False)``."""
        return cast(dict[str, dict[str, Any]], self._call("PATCH", "/facts", json=values)["facts"])

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("POST", "/clock", json={"advance": seconds}))

    def fiscal_years(self, company_id: int = seed.MAIN_COMPANY_ID) -> list[dict[str, Any]]:
        path = f"/companies/{company_id}/fiscal_years"
        return cast(list[dict[str, Any]], self._call("GET", path)["fiscal_years"])

    def set_fiscal_year(self, fiscal_year_id: int, company_id: int = seed.MAIN_COMPANY_ID,
                        **fields: Any) -> list[dict[str, Any]]:
        """Change is_closed, month_end_date, temp_month_end_date, start_date, end_date."""
        path = f"/companies/{company_id}/fiscal_years/{fiscal_year_id}"
        return cast(list[dict[str, Any]], self._call("PATCH", path, json=fields)["fiscal_years"])

    def fiscal_year_of(self, day: str, company_id: int = seed.MAIN_COMPANY_ID) -> dict[str, Any]:
        return next(y for y in self.fiscal_years(company_id)
                    if y["start_date"] <= day <= y["end_date"])

    def add_fiscal_year(self, start_date: str, end_date: str,
                        company_id: int = seed.MAIN_COMPANY_ID,
                        **fields: Any) -> list[dict[str, Any]]:
        path = f"/companies/{company_id}/fiscal_years"
        body = {"start_date": start_date, "end_date": end_date, **fields}
        return cast(list[dict[str, Any]], self._call("POST", path, json=body)["fiscal_years"])

    def set_role(self, role: str, company_id: int = seed.MAIN_COMPANY_ID) -> None:
        self._call("PUT", f"/companies/{company_id}/role", json={"role": role})

    def set_tax_available(self, code: int, available: bool,
                          company_id: int = seed.MAIN_COMPANY_ID) -> None:
        self._call("PATCH", f"/companies/{company_id}/taxes/{code}",
                   json={"available": available})

    def set_client_scopes(self, scopes: str, client_id: str = DEFAULT_CLIENT_ID) -> None:
        self._call("PATCH", f"/clients/{client_id}", json={"scopes": scopes})


# -- a separate process -------------------------------------------------------------------


class EmulatorProcess:
    """``gatewayd sim freee`` in a child process (for tests that kill or restart it)."""

    def __init__(self, state_path: str | Path, *args: str, port: int = 0,
                 startup_timeout: float = 20.0) -> None:
        self.state_path = Path(state_path)
        self.args = list(args)
        self.port = port
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[str] | None = None
        self.base_url = ""

    def start(self) -> EmulatorProcess:
        command = [sys.executable, "-m", "gatewayd", "sim", "freee", "--port", str(self.port),
                   "--state", str(self.state_path), *self.args]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True  # stderr: the parent's (logs)
        )
        line = _read_line(self.process, self.startup_timeout)
        if not line.startswith(LISTENING_PREFIX):
            self.stop()
            raise RuntimeError(f"the emulator process did not start: {line!r}")
        self.base_url = line[len(LISTENING_PREFIX):].strip()
        self.port = int(self.base_url.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no shutdown at all (crash-like)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=5)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(
        target=lambda: result.append(process.stdout.readline() if process.stdout else ""),
        daemon=True,
    )
    reader.start()
    reader.join(timeout)
    return result[0] if result else ""
