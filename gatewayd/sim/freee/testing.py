"""pytest helpers: every response of every freee emulator is checked against freee's schema.

Register this module as a plugin (``pytest_plugins = ["gatewayd.sim.freee.testing"]`` in
the root conftest, or ``-p gatewayd.sim.freee.testing``) and the whole suite is audited:

- at session start, ``GATEWAYD_FREEE_AUDIT_DIR`` points at a fresh directory; every
  emulator of the session — in-process ``EmulatorServer`` or a child process, which
  inherits the environment — appends each ``/api/1/`` and token response to it;
- after each test, the new responses are validated: API responses against the schema's
  response definition for their operation and status (freee's common 404/429/500/503
  error shapes where an operation does not list them), token responses against freee's
  documented token and error bodies; each must carry ``X-Freee-Request-ID``; any emulator
  bug (an exception answered as 500) fails too. A failure fails the test that caused it.

Fixtures: ``freee_emulator`` (a running ``EmulatorServer`` on a fresh state file),
``freee_tokens`` (tokens from the real OAuth flow), ``freee_api`` (an ``httpx.Client``
with the bearer token), ``freee_response_audit`` (the audit itself).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatewayd.sim.freee import openapi
from gatewayd.sim.freee.core import AUDIT_DIR_ENV
from gatewayd.sim.freee.server import EmulatorServer

# freee's token endpoint is not in the OpenAPI file; these follow its documented bodies
# (notes/freee-api.md §1).
TOKEN_RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in", "refresh_token", "scope",
                 "created_at", "company_id"],
    "properties": {
        "access_token": {"type": "string", "minLength": 1},
        "token_type": {"enum": ["bearer"]},
        "expires_in": {"type": "integer", "minimum": 1},
        "refresh_token": {"type": "string", "minLength": 1},
        "scope": {"type": "string"},
        "created_at": {"type": "integer"},
        "company_id": {"type": ["string", "null"], "pattern": "^[0-9]+$"},
        "external_cid": {"type": ["string", "null"]},
    },
}
OAUTH_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "error_description"],
    "properties": {
        "error": {"enum": ["invalid_grant", "invalid_client", "invalid_request",
                           "unsupported_grant_type"]},
        "error_description": {"type": "string"},
    },
}
OAUTH_STATUS = {"invalid_grant": 401, "invalid_client": 401, "invalid_request": 400,
                "unsupported_grant_type": 400}


def check_record(entry: dict[str, Any]) -> list[str]:
    """Problems of one recorded response; empty when it is what freee would send."""
    where = f"{entry['method']} {entry['path']} -> {entry['status']}"
    problems: list[str] = []
    if entry.get("emulator_error"):
        problems.append(f"{where}: emulator bug answered as 500: {entry['emulator_error']}")
    if not entry.get("request_id"):
        problems.append(f"{where}: no X-Freee-Request-ID")
    status, body = entry["status"], entry["body"]
    if entry["path"].startswith("/api/"):
        op = openapi.operation_by_key(entry["operation"]) if entry["operation"] else None
        if entry["has_body"] and body is None:
            problems.append(f"{where}: body is not JSON")
        problems += [f"{where}: {p}" for p in
                     openapi.check_response(op, status, body, entry["has_body"])]
    elif entry["path"] == "/public_api/token":
        schema = TOKEN_RESPONSE_SCHEMA if status == 200 else OAUTH_ERROR_SCHEMA
        problems += [f"{where}: {e.message}" for e in
                     openapi.validator_for(schema).iter_errors(body)]
        if status != 200 and isinstance(body, dict):
            wanted = OAUTH_STATUS.get(str(body.get("error")))
            if wanted is not None and wanted != status:
                problems.append(f"{where}: {body.get('error')} must be answered {wanted}")
    elif entry["path"] == "/public_api/revoke" and status == 200 and not isinstance(body, dict):
        problems.append(f"{where}: revoke must answer a JSON object")
    return problems


def validation_messages(response: httpx.Response) -> list[str]:
    """The ``validation`` messages of a freee error answer, checking its shape on the way:
    ``{"status_code": N, "errors": [{"type": "status", ...}, {"type": "validation", ...}]}``."""
    body = response.json()
    problems = []
    if body.get("status_code") != response.status_code:
        problems.append(f"status_code {body.get('status_code')} != {response.status_code}")
    errors = body.get("errors") or []
    if not errors or errors[0].get("type") != "status":
        problems.append("the first error is not the status message")
    found = [e for e in errors if e.get("type") == "validation"]
    if len(found) != 1:
        problems.append(f"{len(found)} validation entries instead of 1")
    if problems:
        raise AssertionError(f"not freee's error body ({'; '.join(problems)}): {body}")
    return [str(m) for m in found[0]["messages"]]


class ResponseAudit:
    """Reads the recorded responses of a directory incrementally and checks them."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.checked = 0
        self._offsets: dict[Path, int] = {}

    def new_problems(self) -> list[str]:
        problems: list[str] = []
        if not self.directory.is_dir():
            return problems
        for path in sorted(self.directory.glob("*.jsonl")):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
            complete = data[: data.rfind(b"\n") + 1]  # a line still being written waits
            self._offsets[path] = offset + len(complete)
            for line in complete.splitlines():
                if line.strip():
                    self.checked += 1
                    problems += check_record(json.loads(line))
        return problems


@pytest.fixture(scope="session")
def freee_response_audit_session(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ResponseAudit]:
    """Sets GATEWAYD_FREEE_AUDIT_DIR for the session (unless already set)."""
    previous = os.environ.get(AUDIT_DIR_ENV)
    directory = Path(previous) if previous else tmp_path_factory.mktemp("freee-audit")
    os.environ[AUDIT_DIR_ENV] = str(directory)
    audit = ResponseAudit(directory)
    yield audit
    if previous is None:
        os.environ.pop(AUDIT_DIR_ENV, None)


@pytest.fixture(autouse=True)
def freee_response_audit(freee_response_audit_session: ResponseAudit) -> Iterator[ResponseAudit]:
    """Fails the test if an emulator answered anything freee's schema does not allow."""
    audit = freee_response_audit_session
    earlier = audit.new_problems()  # responses after the previous test's check
    yield audit
    problems = earlier + audit.new_problems()
    if problems:
        pytest.fail("freee emulator responses that break freee's schema:\n"
                    + "\n".join(problems[:50]), pytrace=False)


@pytest.fixture
def freee_emulator(tmp_path: Path, freee_response_audit: ResponseAudit) -> Iterator[EmulatorServer]:
    """A running emulator on a fresh state file (consent page on; see EmulatorServer)."""
    with EmulatorServer(tmp_path / "freee.sqlite3") as server:
        yield server


@pytest.fixture
def freee_tokens(freee_emulator: EmulatorServer) -> dict[str, Any]:
    """Tokens for the main company, from the real OAuth flow with PKCE."""
    return freee_emulator.obtain_tokens()


@pytest.fixture
def freee_api(
    freee_emulator: EmulatorServer, freee_tokens: dict[str, Any]
) -> Iterator[httpx.Client]:
    """An httpx client on the emulator with the bearer token of ``freee_tokens``."""
    with httpx.Client(
        base_url=freee_emulator.base_url,
        headers={"Authorization": f"Bearer {freee_tokens['access_token']}"},
        timeout=10,
    ) as client:
        yield client
