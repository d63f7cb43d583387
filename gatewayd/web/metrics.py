"""/metrics: a prometheus-client custom collector over the backend's snapshot.

The collector asks ``GatewayBackend.metrics()`` at each scrape (no state of its own), so
the numbers are the gateway's own, not counters kept by the page. Own registry: nothing of
the process-global default registry leaks in.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gatewayd.web.model import (
    DayStatus,
    GatewayBackend,
    Health,
    LinkState,
    MetricsSnapshot,
    PaperState,
    PostingState,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


class BackendCollector(Collector):
    """Turns one ``MetricsSnapshot`` into metric families."""

    def __init__(self, backend: GatewayBackend) -> None:
        self._backend = backend

    def collect(self) -> Iterator[Metric]:
        snap = self._backend.metrics()

        days = GaugeMetricFamily(
            "gatewayd_days", "Business days the gateway holds, by sync status", labels=["status"]
        )
        for status in DayStatus:
            days.add_metric([status.value], snap.days_by_status.get(status, 0))
        yield days

        postings = GaugeMetricFamily(
            "gatewayd_postings", "Outbox postings by state", labels=["state"]
        )
        for state in PostingState:
            postings.add_metric([state.value], snap.postings_by_state.get(state, 0))
        yield postings

        # declared even without a value (HELP and TYPE, no sample), so dashboards and rules
        # can name them on every box
        yield _optional(
            "gatewayd_last_sync_timestamp_seconds",
            "When freee last confirmed a posting (Unix time)",
            _ts(snap.last_sync_at),
        )
        yield _optional(
            "gatewayd_next_attempt_timestamp_seconds",
            "When the outbox next sends (Unix time)",
            _ts(snap.next_attempt_at),
        )

        link = GaugeMetricFamily(
            "gatewayd_freee_link_state", "The freee link state (1 = current)", labels=["state"]
        )
        for link_state in LinkState:
            link.add_metric([link_state.value], 1.0 if snap.link.state is link_state else 0.0)
        yield link
        yield _optional(
            "gatewayd_freee_token_expiry_timestamp_seconds",
            "When the freee link lapses without a refresh (Unix time)",
            _ts(snap.link.expires_at),
        )
        yield _optional(
            "gatewayd_freee_token_refreshed_timestamp_seconds",
            "When the freee tokens were last refreshed (Unix time)",
            _ts(snap.link.refreshed_at),
        )

        health = GaugeMetricFamily(
            "gatewayd_device_state",
            "Device health (1 = current state)",
            labels=["device", "id", "state"],
        )
        up = GaugeMetricFamily(
            "gatewayd_device_up", "1 when the device works", labels=["device", "id"]
        )
        devices = [("register", r.register_id, r.health) for r in snap.devices.registers]
        devices.append(("printer", "printer", snap.devices.printer.health))
        devices.append(("drawer", "drawer", snap.devices.drawer.health))
        for kind, ident, current in devices:
            if current is Health.NOT_CONFIGURED:
                continue
            for h in Health:
                if h is not Health.NOT_CONFIGURED:
                    health.add_metric([kind, ident, h.value], 1.0 if h is current else 0.0)
            if current is not Health.CHECKING:  # not polled yet: not known to work or not
                up.add_metric([kind, ident], 1.0 if current in (Health.OK, Health.WARNING) else 0.0)
        yield health
        yield up

        if snap.devices.printer.configured:
            paper = GaugeMetricFamily(
                "gatewayd_printer_paper", "Printer paper (1 = current state)", labels=["state"]
            )
            for p in PaperState:
                paper.add_metric([p.value], 1.0 if snap.devices.printer.paper is p else 0.0)
            yield paper

        link_errors = CounterMetricFamily(
            "gatewayd_register_link_errors",
            "Errors on the register link since start (bad frames, timeouts)",
            labels=["register"],
        )
        for register_id, count in sorted(snap.register_link_errors.items()):
            link_errors.add_metric([register_id], count)
        yield link_errors

        yield from _fleet_metrics(snap)

        freee_errors = CounterMetricFamily(
            "gatewayd_freee_errors", "freee errors since start, by kind", labels=["kind"]
        )
        for kind_name, count in sorted(snap.freee_errors.items()):
            freee_errors.add_metric([kind_name], count)
        yield freee_errors


def _optional(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    """A gauge without labels: its sample only when there is a value."""
    family = GaugeMetricFamily(name, documentation, labels=[])
    if value is not None:
        family.add_metric([], value)
    return family


def _fleet_metrics(snap: MetricsSnapshot) -> Iterator[Metric]:
    """What a chain's dashboard and alert rules read (contrib/, docs/fleet.md)."""
    status = GaugeMetricFamily(
        "gatewayd_register_day_status",
        "Each register's current business day: its status (1 = current)",
        labels=["register", "business_date", "status"],
    )
    gross = GaugeMetricFamily(
        "gatewayd_register_day_gross_yen",
        "The register's gross of its current day (Z gross_total), yen",
        labels=["register"],
    )
    in_freee = GaugeMetricFamily(
        "gatewayd_register_day_freee_yen",
        "The sales of the register's current day as freee holds them, yen",
        labels=["register"],
    )
    for day in snap.today:
        for s in DayStatus:
            status.add_metric(
                [day.register_id, day.business_date.isoformat(), s.value],
                1.0 if day.status is s else 0.0,
            )
        if day.register_total is not None:
            gross.add_metric([day.register_id], day.register_total)
        if day.freee_total is not None:
            in_freee.add_metric([day.register_id], day.freee_total)
    yield status
    yield gross
    yield in_freee
    # declared even without a value (HELP and TYPE, no sample): dashboards and rules can
    # name them on every box, and an absent sample simply means "nothing to show"
    yield _optional(
        "gatewayd_oldest_unsynced_close_timestamp_seconds",
        "Close time of the oldest closed day not yet all in freee (Unix time)",
        _ts(snap.oldest_unsynced_close_at),
    )
    drawer = snap.devices.drawer
    yield _optional(
        "gatewayd_drawer_open",
        "1 while the cash drawer is open",
        None if not drawer.configured or drawer.open is None else float(drawer.open),
    )
    have_disk = snap.disk_free_bytes is not None and snap.disk_size_bytes is not None
    yield _optional(
        "gatewayd_state_disk_free_bytes",
        "Free bytes on the state directory's file system (for unprivileged users)",
        float(snap.disk_free_bytes or 0) if have_disk else None,
    )
    yield _optional(
        "gatewayd_state_disk_size_bytes",
        "Size of the state directory's file system",
        float(snap.disk_size_bytes or 0) if have_disk else None,
    )
    yield _optional(
        "gatewayd_time_seconds",
        "The box's own clock at the scrape (Unix time): compare with the scrape's time",
        _ts(snap.clock),
    )


def render_metrics(backend: GatewayBackend) -> bytes:
    """The Prometheus text exposition of the backend's snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BackendCollector(backend))
    return generate_latest(registry)
