"""/metrics for a chain's dashboard and alerts: each register's current day (status, gross,
freee), the oldest unsynced close, the drawer, the state disk and the box's clock."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from gatewayd.web.metrics import render_metrics
from gatewayd.web.model import (
    DayStatus,
    DaySummary,
    Devices,
    DrawerStatus,
    FreeeLink,
    LinkState,
    MetricsSnapshot,
    PrinterStatus,
)

AT = datetime(2025, 10, 6, 12, 40, tzinfo=UTC)


class Backend:
    def __init__(self, snap: MetricsSnapshot) -> None:
        self.snap = snap

    def metrics(self) -> MetricsSnapshot:
        return self.snap


def scrape(**fields: Any) -> dict[str, list[Any]]:
    snap = MetricsSnapshot(
        days_by_status={},
        postings_by_state={},
        link=FreeeLink(LinkState.LINKED),
        devices=fields.pop(
            "devices",
            Devices((), PrinterStatus(configured=True), DrawerStatus(configured=True, open=True)),
        ),
        **fields,
    )
    text = render_metrics(Backend(snap)).decode()  # type: ignore[arg-type]
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_fleet_metrics_carry_the_values() -> None:
    synced = DaySummary("0001-01", date(2025, 10, 6), DayStatus.SYNCED, 409217, 409217)
    sending = DaySummary("0001-02", date(2025, 10, 6), DayStatus.SENDING, 1000, None)
    m = scrape(
        today=(synced, sending),
        oldest_unsynced_close_at=AT,
        disk_free_bytes=1000,
        disk_size_bytes=8000,
        clock=AT,
    )
    status = {
        (s.labels["register"], s.labels["status"]): s.value
        for s in m["gatewayd_register_day_status"]
    }
    assert status[("0001-01", "synced")] == 1 and status[("0001-01", "sending")] == 0
    assert status[("0001-02", "sending")] == 1
    assert {s.labels["business_date"] for s in m["gatewayd_register_day_status"]} == {
        "2025-10-06"
    }
    gross = {s.labels["register"]: s.value for s in m["gatewayd_register_day_gross_yen"]}
    assert gross == {"0001-01": 409217, "0001-02": 1000}
    freee = {s.labels["register"]: s.value for s in m["gatewayd_register_day_freee_yen"]}
    assert freee == {"0001-01": 409217}  # none yet for the day being sent
    assert m["gatewayd_oldest_unsynced_close_timestamp_seconds"][0].value == AT.timestamp()
    assert m["gatewayd_drawer_open"][0].value == 1
    assert m["gatewayd_state_disk_free_bytes"][0].value == 1000
    assert m["gatewayd_state_disk_size_bytes"][0].value == 8000
    assert m["gatewayd_time_seconds"][0].value == AT.timestamp()


def test_families_without_a_value_are_declared_without_a_sample() -> None:
    m = scrape(devices=Devices((), PrinterStatus(configured=False), DrawerStatus(False)))
    for name in (
        "gatewayd_oldest_unsynced_close_timestamp_seconds",
        "gatewayd_drawer_open",
        "gatewayd_state_disk_free_bytes",
        "gatewayd_time_seconds",
        "gatewayd_last_sync_timestamp_seconds",
        "gatewayd_next_attempt_timestamp_seconds",
        "gatewayd_freee_token_expiry_timestamp_seconds",
    ):
        assert m[name] == [], name
