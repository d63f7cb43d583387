"""The daemon's print taps: one ingest and one transport per ``[[taps]]`` table.

``start_taps`` builds them (None when the configuration has no taps); the daemon's main loop
calls ``step`` (idle-gap job ends) and ``status`` (for the snapshot and the page), and
``stop`` at the end. A storage failure while hearing bytes is reported through ``on_error``;
the transport keeps forwarding (the printer path never waits for the tap).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gatewayd.config import Settings
from gatewayd.errors import GatewayError
from gatewayd.store.taps import TapStore
from gatewayd.sync.mapping_settings import mapping_from_settings
from gatewayd.sync.service import SyncService
from gatewayd.tap.ingest import TapIngest, TapListener
from gatewayd.tap.settings import TapSettings, parse_taps, template_path
from gatewayd.tap.sync_bridge import TapSync
from gatewayd.tap.template import load_template
from gatewayd.tap.transports import (
    PassiveSerialTap,
    SerialPassThrough,
    TcpPassThrough,
    start_transport,
)

log = logging.getLogger(__name__)

Transport = PassiveSerialTap | SerialPassThrough | TcpPassThrough
OnError = Callable[[GatewayError], None]


def taps_of(settings: Settings) -> tuple[TapSettings, ...]:
    return parse_taps(settings.extra.get("taps"))


class TapRunner:
    def __init__(self, settings: Settings, listener: TapListener | None, on_error: OnError,
                 *, start_transports: bool = True) -> None:
        self.settings = settings
        self.on_error = on_error
        self.store = TapStore.in_state_dir(settings.state_dir)
        self.ingests: dict[str, TapIngest] = {}
        self.transports: dict[str, Transport] = {}
        self.taps = taps_of(settings)
        mapping = mapping_from_settings(settings)
        for tap in self.taps:
            template = load_template(template_path(tap.template, settings.source))
            ingest = TapIngest(
                tap, template, self.store,
                mapping.with_overrides(store_name=tap.store_name, section=tap.section,
                                       tags=tap.tags),
                listener,
            )
            self.ingests[tap.tap_id] = ingest
            ingest.replay()
        if start_transports:
            for tap in self.taps:
                self.start_transport(tap)

    def start_transport(self, tap: TapSettings) -> Transport:
        ingest = self.ingests[tap.tap_id]

        def heard(data: bytes, direction: str) -> None:
            try:
                ingest.heard(data, direction=direction)
            except GatewayError as exc:
                self.on_error(exc)

        def end_of_job() -> None:
            try:
                ingest.end_of_job()
            except GatewayError as exc:
                self.on_error(exc)

        transport = start_transport(tap, heard, end_of_job)
        self.transports[tap.tap_id] = transport
        log.info("tap %s: %s with template %s", tap.tap_id, tap.transport, tap.template)
        return transport

    def step(self) -> None:
        for ingest in self.ingests.values():
            try:
                ingest.tick()
            except GatewayError as exc:
                self.on_error(exc)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for tap in self.taps:
            last = self.store.last_report(tap.tap_id)
            out[tap.tap_id] = {
                "transport": tap.transport,
                "template": tap.template,
                "store_name": tap.store_name,
                "bytes": self.store.stream_length(tap.tap_id),
                "last_report": None if last is None else {
                    "business_date": last.business_date,
                    "z_counter": last.z_counter,
                    "verdict": last.verdict,
                    "reason": last.reason,
                    "text": last.text,
                    "captured_at": last.stored_at,
                },
            }
        return out

    def stop(self) -> None:
        for transport in self.transports.values():
            transport.stop()
        for ingest in self.ingests.values():
            try:
                ingest.tick()
            except GatewayError as exc:
                self.on_error(exc)
        self.store.close()


def start_taps(settings: Settings, sync: SyncService | None, wake: Callable[[], None],
               on_error: OnError) -> TapRunner | None:
    """The configured taps, started; None when there are none."""
    if not settings.extra.get("taps"):
        return None
    listener = TapSync(sync, wake) if sync is not None else None
    return TapRunner(settings, listener, on_error)
