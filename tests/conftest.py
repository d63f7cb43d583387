"""Suite-wide fixtures: every response the freee emulator gives, in any test, is checked
against the official schema's response definitions (gatewayd.sim.freee.testing)."""

pytest_plugins = ["gatewayd.sim.freee.testing"]
