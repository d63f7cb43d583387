"""Imported only under libfaketime (scripts/test.sh's dates step puts this folder on PYTHONPATH).

The step runs with ``FAKETIME_DONT_FAKE_MONOTONIC=1`` (faking the monotonic clock hangs
CPython's timed lock waits), and then Debian's libfaketime 0.9.10 fails
``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`` — what ``time.sleep`` uses — with EINVAL.
Sleep through ``select()`` instead; nothing else changes.
"""

import os
import select
import time

if os.environ.get("FAKETIME"):

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            select.select([], [], [], left)

    time.sleep = _sleep
