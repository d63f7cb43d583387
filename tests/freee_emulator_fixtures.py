"""Fixtures and helpers shared by the freee emulator tests.

The schema audit of ``gatewayd.sim.freee.testing`` is imported here, so every test module
that imports these fixtures fails a test whose emulator answered outside freee's schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gatewayd.sim.freee import MAIN_COMPANY_ID, EmulatorServer
from gatewayd.sim.freee.server import tls_context
from gatewayd.sim.freee.testing import (
    freee_response_audit,
    freee_response_audit_session,
)

__all__ = [
    "Freee", "freee", "freee_response_audit", "freee_response_audit_session", "freee_server",
]


class Freee:
    """A running emulator, a token for the main company, and its masters by name."""

    def __init__(self, server: EmulatorServer, tokens: dict[str, Any]) -> None:
        self.server = server
        self.tokens = tokens
        self.company_id = int(tokens["company_id"])
        self.http = httpx.Client(
            base_url=server.base_url,
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
            timeout=10,
            verify=tls_context(),
        )
        self.masters = server.control.company(self.company_id)

    @property
    def control(self) -> Any:
        return self.server.control

    def account(self, name: str) -> int:
        return int(self.masters["account_items"][name])

    def tax(self, name_ja: str) -> int:
        return int(self.masters["taxes"][name_ja])

    def wallet(self, name: str) -> int:
        return int(self.masters["walletables"][name]["id"])

    def use_token(self, access_token: str) -> None:
        self.http.headers["Authorization"] = f"Bearer {access_token}"

    def sale(self, amount: int = 11000, *, day: str = "2025-01-10", settled: bool = True,
             tax: str = "課税売上10%", **extra: Any) -> dict[str, Any]:
        """A cash (or unsettled) sales deal body of one line."""
        body: dict[str, Any] = {
            "company_id": self.company_id,
            "issue_date": day,
            "type": "income",
            "ref_number": f"POS-0001-01-{day.replace('-', '')}-S-CASH",
            "details": [{"account_item_id": self.account("売上高"), "tax_code": self.tax(tax),
                         "amount": amount, "description": "店舗0001 現金"}],
        }
        if settled:
            body["payments"] = [{"date": day, "from_walletable_type": "wallet",
                                 "from_walletable_id": self.wallet("現金"), "amount": amount}]
        body.update(extra)
        return body

    def post_deal(self, body: dict[str, Any]) -> httpx.Response:
        return self.http.post("/api/1/deals", json=body)

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def freee_server(
    tmp_path_factory: pytest.TempPathFactory, freee_response_audit_session: Any
) -> Iterator[EmulatorServer]:
    """One emulator per test module (reset before each test by ``freee``)."""
    with EmulatorServer(tmp_path_factory.mktemp("freee") / "freee.sqlite3") as server:
        yield server


@pytest.fixture
def freee(freee_server: EmulatorServer, freee_response_audit: Any) -> Iterator[Freee]:
    """The module's emulator reset to its start state, and tokens of the main company from
    the real OAuth flow."""
    freee_server.control.reset(tokens=True)
    helper = Freee(freee_server, freee_server.obtain_tokens(company_id=MAIN_COMPANY_ID))
    yield helper
    helper.close()
