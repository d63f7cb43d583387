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

        last_sync = _ts(snap.last_sync_at)
        if last_sync is not None:
            yield GaugeMetricFamily(
                "gatewayd_last_sync_timestamp_seconds",
                "When freee last confirmed a posting (Unix time)",
                value=last_sync,
            )
        next_attempt = _ts(snap.next_attempt_at)
        if next_attempt is not None:
            yield GaugeMetricFamily(
                "gatewayd_next_attempt_timestamp_seconds",
                "When the outbox next sends (Unix time)",
                value=next_attempt,
            )

        link = GaugeMetricFamily(
            "gatewayd_freee_link_state", "The freee link state (1 = current)", labels=["state"]
        )
        for link_state in LinkState:
            link.add_metric([link_state.value], 1.0 if snap.link.state is link_state else 0.0)
        yield link
        expires = _ts(snap.link.expires_at)
        if expires is not None:
            yield GaugeMetricFamily(
                "gatewayd_freee_token_expiry_timestamp_seconds",
                "When the freee link lapses without a refresh (Unix time)",
                value=expires,
            )
        refreshed = _ts(snap.link.refreshed_at)
        if refreshed is not None:
            yield GaugeMetricFamily(
                "gatewayd_freee_token_refreshed_timestamp_seconds",
                "When the freee tokens were last refreshed (Unix time)",
                value=refreshed,
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

        freee_errors = CounterMetricFamily(
            "gatewayd_freee_errors", "freee errors since start, by kind", labels=["kind"]
        )
        for kind_name, count in sorted(snap.freee_errors.items()):
            freee_errors.add_metric([kind_name], count)
        yield freee_errors


def render_metrics(backend: GatewayBackend) -> bytes:
    """The Prometheus text exposition of the backend's snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BackendCollector(backend))
    return generate_latest(registry)
