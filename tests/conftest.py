"""Suite-wide fixtures.

- gatewayd.sim.freee.testing: every response the freee emulator gives, in any test, is
  checked against the official schema's response definitions;
- the fixture modules that several test files share are registered here, once, so pytest
  rewrites their asserts before any test module imports them;
- ``today``: the date tests generate business days around (never the real date).
"""

import os
from datetime import date

import pytest

pytest_plugins = [
    "gatewayd.sim.freee.testing",
    "freee_emulator_fixtures",
    "sync_fixtures",
]

TODAY_ENV = "GATEWAYD_TEST_TODAY"
DEFAULT_TODAY = date(2026, 3, 10)


def suite_today() -> date:
    """The suite's "today": ``GATEWAYD_TEST_TODAY`` (ISO) when set, else a fixed date.

    Never the real date: scripts/test.sh re-runs the tests marked ``dates`` with this set
    to calendar edges (a month's 1st, a 31st, 1 January) under a faked clock far from it.
    """
    text = os.environ.get(TODAY_ENV, "").strip()
    return date.fromisoformat(text) if text else DEFAULT_TODAY


@pytest.fixture(scope="session")
def today() -> date:
    """Tests that generate business days around "today" take it from here."""
    return suite_today()
