"""Suite-wide fixtures.

- gatewayd.sim.freee.testing: every response the freee emulator gives, in any test, is
  checked against the official schema's response definitions;
- the fixture modules that several test files share are registered here, once, so pytest
  rewrites their asserts before any test module imports them.
"""

pytest_plugins = [
    "gatewayd.sim.freee.testing",
    "freee_emulator_fixtures",
    "sync_fixtures",
]
