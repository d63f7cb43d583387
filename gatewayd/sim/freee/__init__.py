"""freee会計 API emulator: the part of freee the gateway uses, on 127.0.0.1.

Public interface (docs/freee-emulator.md):
- ``EmulatorServer``: run it in-process on a thread (tests, demo);
- ``EmulatorProcess``: run ``gatewayd sim freee`` as a child process;
- ``ControlClient``: drive ``/_emulator/`` of any running emulator;
- ``obtain_tokens``: the OAuth authorization-code flow end to end;
- ``gatewayd.sim.freee.testing``: pytest helpers that check every response against
  freee's schema.
"""

from gatewayd.sim.freee.config import (
    DEFAULT_ACCESS_TOKEN_TTL,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_DAILY_QUOTA,
)
from gatewayd.sim.freee.faults import KINDS as FAULT_KINDS
from gatewayd.sim.freee.oauth import OOB_REDIRECT
from gatewayd.sim.freee.seed import MAIN_COMPANY_ID, SECOND_COMPANY_ID
from gatewayd.sim.freee.server import (
    ControlClient,
    EmulatorProcess,
    EmulatorServer,
    obtain_code,
    obtain_tokens,
    pkce_pair,
)

__all__ = [
    "DEFAULT_ACCESS_TOKEN_TTL",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_DAILY_QUOTA",
    "FAULT_KINDS",
    "MAIN_COMPANY_ID",
    "OOB_REDIRECT",
    "SECOND_COMPANY_ID",
    "ControlClient",
    "EmulatorProcess",
    "EmulatorServer",
    "obtain_code",
    "obtain_tokens",
    "pkce_pair",
]
