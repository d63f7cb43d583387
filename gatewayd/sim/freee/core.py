"""The emulator's state in one object: store, settings, clock, faults, response recorder.

Every HTTP layer (API, OAuth, control, books) works on an ``Emulator``; the server module
only wraps it in uvicorn.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import os
import threading
from pathlib import Path
from typing import IO, Any

from gatewayd.sim.freee.config import DEFAULT_CLIENT_NAME, Clock, EmulatorConfig
from gatewayd.sim.freee.facts import FactSwitches
from gatewayd.sim.freee.faults import FaultPlan, FaultRule
from gatewayd.sim.freee.storage import Store

# When set, every emulator of the process (and of child processes, which inherit the
# environment) appends each API/token response to a JSONL file in this directory, for the
# test suite's schema audit (gatewayd.sim.freee.testing).
AUDIT_DIR_ENV = "GATEWAYD_FREEE_AUDIT_DIR"
REQUEST_LOG_SIZE = 10_000  # the newest API/token requests kept in memory for tests

_instances = itertools.count(1)


class ResponseRecorder:
    """Appends one JSON line per response: method, path, operation, status, body."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"freee-emulator-{os.getpid()}-{next(_instances)}.jsonl"
        self.path = self.directory / name
        self._lock = threading.Lock()
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")

    def record(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False)
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class Emulator:
    """State and settings of one emulated freee (both hosts: accounts and api)."""

    def __init__(
        self,
        state_path: str | Path,
        config: EmulatorConfig | None = None,
        *,
        faults: list[FaultRule] | None = None,
        fault_seed: int | None = None,
        audit_dir: str | Path | None = None,
    ) -> None:
        self.config = config or EmulatorConfig()
        self._initial_config = dataclasses.replace(self.config)
        self.clock = Clock()
        self.store = Store(state_path, today=self.clock.today())
        with self.store.transaction() as db:
            existing = db.client(self.config.client_id)
            db.upsert_client(
                self.config.client_id,
                self.config.client_secret,
                DEFAULT_CLIENT_NAME,
                existing["scopes"] if existing else self.config.client_scopes,
            )
        self.faults = FaultPlan(faults, fault_seed)
        self.facts = FactSwitches()  # issue 15: the undocumented facts, switchable
        directory = audit_dir if audit_dir is not None else os.environ.get(AUDIT_DIR_ENV)
        self.recorder = ResponseRecorder(directory) if directory else None
        self.internal_errors: list[str] = []  # emulator bugs answered as freee's 500
        self._windows: dict[tuple[str, int], collections.deque[float]] = {}
        self._window_lock = threading.Lock()
        self._log: collections.deque[dict[str, Any]] = collections.deque(maxlen=REQUEST_LOG_SIZE)
        self._log_ids = itertools.count(1)
        self._log_lock = threading.Lock()

    # -- request log (when each request came, how it ended, when it was stored) -----------

    def log_request(self, method: str, path: str, query: str, body: bytes) -> dict[str, Any]:
        """A new log entry for a received request; the caller fills in how it ended."""
        ref: Any = None
        if body[:1] == b"{":
            try:
                ref = json.loads(body).get("ref_number")
            except (ValueError, AttributeError):
                ref = None
        entry: dict[str, Any] = {
            "method": method, "path": path, "query": query,
            "ref_number": ref if isinstance(ref, str) else None,
            "at": self.clock.now(), "outcome": None, "status": None, "done_at": None,
            "gave_up_at": None,
        }
        with self._log_lock:
            entry["id"] = next(self._log_ids)
            self._log.append(entry)
        return entry

    def end_request(self, entry: dict[str, Any], outcome: str, status: int | None = None,
                    **times: float) -> None:
        """Record how a logged request ended (``outcome`` as in the request counts)."""
        with self._log_lock:
            entry.update(outcome=outcome, status=status, done_at=self.clock.now(), **times)

    def request_log(self, since: int = 0) -> list[dict[str, Any]]:
        """Copies of the log entries with an id above ``since``, oldest first."""
        with self._log_lock:
            return [dict(e) for e in self._log if e["id"] > since]

    def clear_request_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        self.store.close()

    def reset(self, *, tokens: bool = False) -> None:
        """As if freshly started on a new state file: data back to the seed, counts, quota,
        faults, clock offset, settings and the app's permissions back to their start values.
        OAuth tokens are kept (so a linked client stays linked) unless ``tokens``."""
        self.clock.advance(-self.clock.offset)
        self.store.reset(self.clock.today(), tokens=tokens)
        self.faults.clear()
        self.clear_request_log()
        self.facts.reset()
        self.config = dataclasses.replace(self._initial_config)
        with self.store.transaction() as db:
            db.set_client_scopes(self.config.client_id, self.config.client_scopes)
        with self._window_lock:
            self._windows.clear()

    def within_rate(self, client_id: str, company_id: int) -> tuple[bool, str]:
        """Sliding one-second window per app and company; (allowed, reset time)."""
        limit = self.config.rate_per_second
        now = self.clock.now()
        reset = self.clock.iso(now + 1)
        if not limit:
            return True, reset
        with self._window_lock:
            window = self._windows.setdefault((client_id, company_id), collections.deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                return False, self.clock.iso(window[0] + 1.0)
            window.append(now)
            return True, reset
