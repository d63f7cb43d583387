"""Shared pieces of the fuzz tests: bounded hypothesis settings and a hang guard.

Every fuzz test is bounded twice: hypothesis stops after ``max_examples`` and fails an example
slower than its ``deadline``; ``no_hang`` turns an example that never returns (a loop that
does not end) into a failure that names the input, long before pytest-timeout would kill the
whole run without saying which input hung.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from datetime import timedelta
from types import FrameType

from hypothesis import HealthCheck, settings

# A typical example takes milliseconds; the deadline only catches pathological inputs.
FUZZ = settings(
    max_examples=300,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ_SMALL = settings(FUZZ, max_examples=120)


class Hang(AssertionError):
    """An example ran longer than its hang guard allows."""


@contextlib.contextmanager
def no_hang(seconds: float = 5.0) -> Iterator[None]:
    """Fail (``Hang``) if the block runs longer than ``seconds`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no result after {seconds} s: the input makes the code hang")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
