"""A delivery worker that SIGKILLs itself right after freee answered its Nth deal POST.

Run by ``test_sync_delivery.test_sigkill_between_sending_and_recording``:
``python sync_worker_child.py BASE_URL STATE_DIR N``. The kill comes after the response and
before the outbox records it: the hardest moment for exactly-once delivery.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import date
from pathlib import Path

from sync_fixtures import REGISTER, DictDaySource, freee_settings, gateway_settings, make_days

from gatewayd.sync.outbox import PostingRow
from gatewayd.sync.service import SyncService


def main() -> None:
    base_url, state_dir, kill_after = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    posts = 0

    def after(what: str, _row: PostingRow) -> None:
        nonlocal posts
        if what.startswith("POST /api/1/deals"):
            posts += 1
            if posts >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    source = DictDaySource()
    days = make_days(2, date(2025, 3, 1))
    svc = SyncService(
        gateway_settings(state_dir, {"tax_names": {"0": "非課売上"}}),
        state_dir,
        source,
        freee=freee_settings(base_url),
        sleep=lambda _s: None,
        after_request=after,
    )
    for day in days:
        source.add(REGISTER.register_id, day)
        svc.day_accepted(REGISTER, day)
    for _ in range(100):
        svc.step()
    sys.exit(3)  # not killed: the test fails


if __name__ == "__main__":
    main()
