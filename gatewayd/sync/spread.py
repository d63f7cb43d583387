"""When a box sends a closed day: a delay after the close derived from the box's identity.

A chain's boxes share one freee company, so one per-second limit and one daily quota. Stores
that close at the same minute (21:30, say) would otherwise all send in the same second and
be answered 429 together. Each register waits a fixed part of ``freee.send_spread`` seconds
after its close: the same part every evening (deterministic, no randomness to seed), spread
evenly over the chain because it is a hash of the register's identity.
"""

from __future__ import annotations

import hashlib

DEFAULT_SEND_SPREAD = 120.0  # seconds: Z-to-done stays within a few minutes


def send_delay(identity: str, spread: float) -> float:
    """Seconds in ``[0, spread)`` for ``identity`` (the register id ``store-terminal``)."""
    if spread <= 0:
        return 0.0
    digest = hashlib.sha256(identity.encode("utf-8")).digest()
    return spread * int.from_bytes(digest[:8], "big") / 2.0**64
