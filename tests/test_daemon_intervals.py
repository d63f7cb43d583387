"""The main loop's own intervals count from the clock when their work ended (issue 11: every
deadline from the clock at the moment it matters)."""

from __future__ import annotations

from pathlib import Path

from gatewayd.config import load_settings
from gatewayd.daemon import SLIP_CHECK_EVERY, SNAPSHOT_EVERY, Gateway

CONFIG = """
state_dir = "{state}"
[[registers]]
store_code = "0001"
terminal_no = "01"
port = "{port}"
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gateway(tmp_path: Path) -> tuple[Gateway, Clock]:
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(CONFIG.format(state=tmp_path / "state", port=tmp_path / "no-register"),
                   encoding="utf-8")
    gw = Gateway(load_settings(cfg), sync_factory=lambda s, g: None, web=False)
    clock = Clock()
    gw.monotonic = clock
    return gw, clock


def test_a_slow_slip_check_does_not_bring_the_next_one_forward(tmp_path: Path) -> None:
    gw, clock = gateway(tmp_path)
    checks: list[float] = []

    def slow_print() -> None:  # a printer that takes 5 s to answer
        checks.append(clock.now)
        clock.now += 5.0

    gw._print_due_slips = slow_print  # type: ignore[method-assign]
    try:
        gw.step()
        assert checks == [1000.0]
        clock.now += SLIP_CHECK_EVERY / 2  # less than the interval since the print ended
        gw.step()
        assert checks == [1000.0], "checked again before SLIP_CHECK_EVERY after the last ended"
        clock.now += SLIP_CHECK_EVERY
        gw.step()
        assert len(checks) == 2
    finally:
        gw.store.close()


def test_the_snapshot_interval_counts_from_its_publication(tmp_path: Path) -> None:
    gw, clock = gateway(tmp_path)
    published: list[float] = []
    real_publish = gw.publish

    def slow_publish() -> None:
        published.append(clock.now)
        real_publish()
        clock.now += SNAPSHOT_EVERY  # a snapshot that took a whole interval to write

    gw._print_due_slips = lambda: None  # type: ignore[method-assign]
    gw.publish = slow_publish  # type: ignore[method-assign]
    try:
        gw.step()
        clock.now += 1.0
        gw.step()
        assert published == [1000.0]
    finally:
        gw.store.close()
