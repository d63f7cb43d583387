"""Linking, tokens and their rotation, against the freee emulator over loopback."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sync_fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    MAIN_COMPANY,
    REGISTER,
    Harness,
    approve,
    link,
    make_days,
)

from gatewayd.errors import FreeeRelink
from gatewayd.sync.link import catch_loopback_code
from gatewayd.sync.tokens import LinkState
from gatewayd.web.model import HeldCause
from gatewayd.web.model import LinkState as PageLinkState

pytest_plugins = ["sync_fixtures"]

START = date(2025, 4, 1)


def test_link_oob_stores_tokens_privately_with_the_company(harness: Harness) -> None:
    svc = harness.service()
    start = svc.link_start()
    assert "prompt=select_company" in start.url
    assert "code_challenge_method=S256" in start.url and "code_challenge=" in start.url
    assert "redirect_uri=urn%3Aietf%3Awg%3Aoauth%3A2.0%3Aoob" in start.url
    status = svc.link_finish(approve(start.url), start.state)
    assert status.state is LinkState.LINKED
    assert status.company_id == MAIN_COMPANY and status.company_name
    path = harness.state_dir / "freee-token.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["company_id"] == MAIN_COMPANY and data["state"] == "linked"
    assert not list(harness.state_dir.glob(".freee-token.json.*"))  # no temp file left
    snap = svc.snapshot()
    assert snap.link.state is PageLinkState.LINKED
    text = json.dumps(snap.to_json(), default=str)
    assert data["access_token"] not in text and data["refresh_token"] not in text


def test_finish_refuses_an_unknown_state(harness: Harness) -> None:
    svc = harness.service()
    start = svc.link_start()
    code = approve(start.url)
    with pytest.raises(FreeeRelink):
        svc.link_finish(code, "forged-state")
    assert not svc.tokens.usable()


def test_link_loopback_catches_the_redirect(harness: Harness) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    svc = harness.service()
    start = svc.link_start(f"http://127.0.0.1:{port}/callback")
    result: dict[str, str] = {}
    ready = threading.Event()
    catcher = threading.Thread(
        target=lambda: result.update(
            code=catch_loopback_code(port, start.state, timeout=20, ready=ready)
        ),
        daemon=True,
    )
    catcher.start()
    ready.wait(5)
    with httpx.Client(follow_redirects=True, timeout=10) as browser:
        page = browser.get(start.url)  # auto-approve: 302 to the loopback callback
    assert page.status_code == 200 and "連携しました" in page.text
    catcher.join(10)
    status = svc.link_finish(result["code"], start.state)
    assert status.state is LinkState.LINKED and status.company_id == MAIN_COMPANY


def test_expired_access_token_refreshes_once_and_sync_continues(harness: Harness) -> None:
    svc = harness.service()
    link(svc)
    days = make_days(2, START)
    for day in days:
        harness.source.add(REGISTER.register_id, day)
        svc.day_accepted(REGISTER, day)
    first = json.loads((harness.state_dir / "freee-token.json").read_text())
    # freee expires the access token in the middle of the day's posts
    harness.emulator.control.add_fault(
        "expire_access_token", method="POST", path="/api/1/deals", skip=2, times=1
    )
    harness.run(svc)
    second = json.loads((harness.state_dir / "freee-token.json").read_text())
    assert second["refresh_token"] != first["refresh_token"]  # rotated
    assert svc.counters.token["refresh"] == 1
    # and a proactive refresh ahead of expiry, during a later sync
    harness.clock.advance(6 * 3600)
    more = make_days(1, START + timedelta(days=2), seed=9)
    harness.source.add(REGISTER.register_id, more[0])
    svc.day_accepted(REGISTER, more[0])
    harness.run(svc)
    assert svc.counters.token["refresh"] == 2
    refs = [d["ref_number"] for d in harness.deals()]
    assert len(refs) == len(set(refs))
    assert svc.snapshot().queue.waiting == 0


def test_revoked_refresh_token_expires_the_link_and_relink_sends_the_waiting_days(
    harness: Harness,
) -> None:
    svc = harness.service()
    link(svc)
    days = make_days(2, START)
    for day in days:
        harness.source.add(REGISTER.register_id, day)
        svc.day_accepted(REGISTER, day)
    harness.emulator.control.revoke_refresh_tokens()
    harness.emulator.control.expire_access_tokens()
    for _ in range(5):
        harness.clock.advance(svc.step())
    snap = svc.snapshot()
    assert snap.link.state is PageLinkState.EXPIRED
    assert snap.queue.waiting > 0  # nothing queued is lost
    assert all(d.held is not None and d.held.cause is HeldCause.LINK for d in snap.days)
    assert harness.deals() == []
    assert svc.tokens.load() is not None and svc.tokens.load().state is LinkState.EXPIRED  # type: ignore[union-attr]
    # relink: the waiting days go by themselves
    link(svc)
    harness.run(svc)
    snap = svc.snapshot()
    assert snap.link.state is PageLinkState.LINKED
    assert [d.status.value for d in snap.days] == ["synced", "synced"]


def test_idle_days_refresh_the_token_without_api_calls(harness: Harness) -> None:
    svc = harness.service()
    link(svc)
    before = svc.tokens.load()
    assert before is not None
    api_before = svc.counters.total_api()
    for _ in range(3):  # three idle days
        harness.clock.advance(86400 + 1)
        svc.step()
    after = svc.tokens.load()
    assert after is not None and after.state is LinkState.LINKED
    assert svc.counters.token["refresh"] == 3
    assert after.refresh_expires_at - harness.clock() > timedelta(days=89)
    assert svc.counters.total_api() == api_before


def test_unlink_revokes_and_deletes(harness: Harness) -> None:
    svc = harness.service()
    link(svc)
    refresh = json.loads((harness.state_dir / "freee-token.json").read_text())["refresh_token"]
    result = svc.unlink()
    assert result.revoked
    assert not (harness.state_dir / "freee-token.json").exists()
    answer = httpx.post(
        f"{harness.emulator.base_url}/public_api/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_grant"
    assert svc.snapshot().link.state is PageLinkState.MISSING


REFRESHER = """
import sys
from pathlib import Path
import httpx
from gatewayd.sync.freee_settings import FreeeSettings
from gatewayd.sync.tokens import TokenManager
base, state = sys.argv[1], Path(sys.argv[2])
settings = FreeeSettings(api_base_url=base, auth_base_url=base, client_id=sys.argv[3],
                         client_secret=sys.argv[4], refresh_margin=10**9)
tokens = TokenManager(settings, state, httpx.Client(timeout=10))
for _ in range(4):
    tokens.access_token()   # margin > lifetime: every call refreshes, under the lock
print("ok")
"""


def test_one_refresher_at_a_time_across_processes(harness: Harness) -> None:
    """Three processes refresh over and over with single-use refresh tokens: with the lock
    (and re-reading the file under it) none ever presents a burned token."""
    svc = harness.service()
    link(svc)
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                REFRESHER,
                harness.emulator.base_url,
                str(harness.state_dir),
                CLIENT_ID,
                CLIENT_SECRET,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outputs]
    record = svc.tokens.load()
    assert record is not None and record.state is LinkState.LINKED
    assert record.refresh_count == 12
    # the last pair works
    svc.tokens.refresh(min_age=0)


def test_link_cli_oob(
    harness: Harness, tmp_path: Path, monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from gatewayd import cli

    config = tmp_path / "gatewayd.toml"
    base = harness.emulator.base_url
    config.write_text(
        f'state_dir = "{harness.state_dir}"\n'
        '[[registers]]\nstore_code = "0001"\nterminal_no = "01"\nport = "loop://"\n'
        f'[freee]\napi_base_url = "{base}"\nauth_base_url = "{base}"\n'
        f'client_id = "{CLIENT_ID}"\nclient_secret = "{CLIENT_SECRET}"\n',
        encoding="utf-8",
    )
    urls: list[str] = []

    def paste(prompt: str) -> str:
        out = capsys.readouterr().out
        url = next(line.strip() for line in out.splitlines() if "/public_api/authorize" in line)
        urls.append(url)
        return approve(url)

    monkeypatch.setattr("builtins.input", paste)
    assert cli.main(["link", "--config", str(config)]) == 0
    assert "連携しました" in capsys.readouterr().out
    assert urls and "prompt=select_company" in urls[0]
    assert cli.main(["unlink", "--config", str(config)]) == 0
    assert not (harness.state_dir / "freee-token.json").exists()
