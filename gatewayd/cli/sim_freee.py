"""``gatewayd sim freee``: the freee会計 emulator in the foreground, on 127.0.0.1.

Prints ``freee emulator listening on http://127.0.0.1:PORT`` once it accepts requests
(``--port 0``, the default, picks a free port). SIGINT/SIGTERM stop it; the state file
keeps everything for the next start.
"""

from __future__ import annotations

import argparse
import logging
import socket
from pathlib import Path

import uvicorn

from gatewayd.errors import ConfigError
from gatewayd.sim.freee.config import (
    DEFAULT_ACCESS_TOKEN_TTL,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_DAILY_QUOTA,
    EmulatorConfig,
)
from gatewayd.sim.freee.core import Emulator
from gatewayd.sim.freee.facts import parse_fact_spec
from gatewayd.sim.freee.faults import KINDS, FaultRule, parse_spec
from gatewayd.sim.freee.server import HOST, LISTENING_PREFIX, bind_socket, uvicorn_config


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.splitlines()[0] if __doc__ else None
    parser.add_argument("--port", type=int, default=0,
                        help="TCP port on 127.0.0.1 (0: a free one, printed; default 0)")
    parser.add_argument("--state", type=Path, required=True,
                        help="SQLite file holding the emulated companies (created if missing)")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID,
                        help=f"OAuth client id (default {DEFAULT_CLIENT_ID})")
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET,
                        help=f"OAuth client secret (default {DEFAULT_CLIENT_SECRET})")
    parser.add_argument("--auto-approve", action="store_true",
                        help="authorize at once, without the consent page")
    parser.add_argument("--access-token-ttl", type=int, default=DEFAULT_ACCESS_TOKEN_TTL,
                        metavar="S", help="access token lifetime in seconds (default 21600)")
    parser.add_argument("--daily-quota", type=int, default=DEFAULT_DAILY_QUOTA, metavar="N",
                        help="API calls per company and app per day (default 3000)")
    parser.add_argument("--rate-per-second", type=int, default=None, metavar="N",
                        help="answer 429 above N API calls per second (default: no limit)")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help="inject a fault, KIND[:key=value,...] with keys method, path, "
                             "times, skip, probability, ms; kinds: " + ", ".join(KINDS))
    parser.add_argument("--fault-seed", type=int, default=None,
                        help="seed of the random choices of faults with a probability")
    parser.add_argument("--fact", action="append", default=[], metavar="NAME=on|off",
                        help="switch a fact rule (docs/freee-emulator.md, facts.py)")
    parser.add_argument("--audit-dir", type=Path, default=None,
                        help="record every API/token response as JSON lines here")
    parser.add_argument("--log-level", default="warning",
                        choices=["critical", "error", "warning", "info", "debug"])


class _AnnouncingServer(uvicorn.Server):
    """Prints the listening line once the server accepts connections."""

    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self.url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        print(f"{LISTENING_PREFIX}{self.url}", flush=True)


def _rules(specs: list[str]) -> list[FaultRule]:
    rules = []
    for spec in specs:
        try:
            rules.append(parse_spec(spec))
        except ValueError as exc:
            raise ConfigError(
                str(exc), key="--fault", value=spec,
                expected="KIND[:method=M,path=P,times=N,skip=N,probability=P,ms=N]",
                staff_message="freee エミュレータの障害指定 (--fault) が正しくありません。",
            ) from exc
    return rules


def _facts(specs: list[str]) -> list[tuple[str, bool]]:
    out = []
    for spec in specs:
        try:
            out.append(parse_fact_spec(spec))
        except ValueError as exc:
            raise ConfigError(str(exc), key="--fact", value=spec,
                              staff_message="freee エミュレータの --fact 指定が正しくありません。"
                              ) from exc
    return out


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rules = _rules(args.fault)
    for name in ("access_token_ttl", "daily_quota"):
        if getattr(args, name) < 1:
            raise ConfigError("must be at least 1", key=f"--{name.replace('_', '-')}",
                              value=getattr(args, name))
    try:
        sock = bind_socket(args.port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {HOST}:{args.port}: {exc}", key="--port",
                          staff_message="freee エミュレータのポートを使用できません。") from exc
    port = sock.getsockname()[1]
    config = EmulatorConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        auto_approve=args.auto_approve,
        access_token_ttl=args.access_token_ttl,
        daily_quota=args.daily_quota,
        rate_per_second=args.rate_per_second,
    )
    emu = Emulator(args.state, config, faults=rules, fault_seed=args.fault_seed,
                   audit_dir=args.audit_dir)
    try:
        emu.facts.update(dict(_facts(args.fact)))
        server = _AnnouncingServer(uvicorn_config(emu, args.log_level), f"http://{HOST}:{port}")
        server.run(sockets=[sock])
    finally:
        emu.close()
    return 0
