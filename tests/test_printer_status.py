"""DLE EOT status: every bit decoded by our code, over a pty with the printer simulator."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from printer_fixtures import running_pty_printer, serial_settings

from gatewayd.drivers.escpos_status import (
    SILENT,
    PrinterCondition,
    decode_error_cause,
    decode_offline_cause,
    decode_paper,
    decode_printer,
    is_status_byte,
    status_from_replies,
)
from gatewayd.drivers.printer import PrinterDriver, SerialLink
from gatewayd.errors import PrinterUnavailable
from gatewayd.sim.printer import PtyPrinterSimulator, SimState, status_byte


@pytest.fixture
def pty_printer() -> Iterator[PtyPrinterSimulator]:
    yield from running_pty_printer()


def test_fixed_bits_reject_non_status_bytes() -> None:
    assert is_status_byte(0x12)
    assert is_status_byte(0x7E)
    for value in (0x00, 0xFF, 0x11, 0x13, 0x92, 0x10, 0x02):
        assert not is_status_byte(value), hex(value)


@pytest.mark.parametrize(("bit", "field"), [
    (0x04, "drawer_pin3_high"), (0x08, "offline"), (0x20, "waiting_recovery"),
    (0x40, "feed_button")])
def test_printer_status_bits(bit: int, field: str) -> None:
    decoded = decode_printer(0x12 | bit)
    assert getattr(decoded, field) is True
    others = {"drawer_pin3_high", "offline", "waiting_recovery", "feed_button"} - {field}
    assert not any(getattr(decoded, name) for name in others)


@pytest.mark.parametrize(("bit", "field"), [
    (0x04, "cover_open"), (0x08, "feeding"), (0x20, "paper_end_stop"), (0x40, "error")])
def test_offline_cause_bits(bit: int, field: str) -> None:
    decoded = decode_offline_cause(0x12 | bit)
    assert getattr(decoded, field) is True
    others = {"cover_open", "feeding", "paper_end_stop", "error"} - {field}
    assert not any(getattr(decoded, name) for name in others)


@pytest.mark.parametrize(("bit", "field"), [
    (0x04, "recoverable"), (0x08, "autocutter"), (0x20, "unrecoverable"),
    (0x40, "auto_recoverable")])
def test_error_cause_bits(bit: int, field: str) -> None:
    assert getattr(decode_error_cause(0x12 | bit), field) is True


@pytest.mark.parametrize(("value", "near_end", "end"), [
    (0x12, False, False), (0x1E, True, False), (0x16, True, False), (0x1A, True, False),
    (0x72, False, True), (0x32, False, True), (0x52, False, True), (0x7E, True, True)])
def test_paper_bits(value: int, near_end: bool, end: bool) -> None:
    assert decode_paper(value).near_end is near_end
    assert decode_paper(value).end is end


def test_no_reply_is_offline_never_fine() -> None:
    assert status_from_replies(None) is SILENT
    assert status_from_replies(0x00, 0x12, 0x12) is SILENT  # invalid n=1 byte
    assert SILENT.condition is PrinterCondition.OFFLINE
    assert not SILENT.online and not SILENT.can_print
    assert SILENT.drawer_pin3_high is None
    assert "応答しません" in SILENT.staff_message


def test_condition_priority() -> None:
    assert status_from_replies(0x12, 0x12, 0x12).condition is PrinterCondition.READY
    assert status_from_replies(0x12, 0x12, 0x1E).condition is PrinterCondition.PAPER_NEAR_END
    assert status_from_replies(0x1A, 0x32, 0x72).condition is PrinterCondition.PAPER_END
    assert status_from_replies(0x1A, 0x36, 0x72).condition is PrinterCondition.COVER_OPEN
    assert status_from_replies(0x1A, 0x52, 0x12).condition is PrinterCondition.ERROR
    assert status_from_replies(0x1A, 0x12, 0x12).condition is PrinterCondition.OFFLINE
    near = status_from_replies(0x12, 0x12, 0x1E)
    assert near.can_print and near.online


# --- over the pty -------------------------------------------------------------------------

CASES = [
    (SimState(), PrinterCondition.READY, {}),
    (SimState(paper_near_end=True), PrinterCondition.PAPER_NEAR_END, {"paper_near_end": True}),
    (SimState(paper_out=True), PrinterCondition.PAPER_END, {"paper_end": True}),
    (SimState(cover_open=True), PrinterCondition.COVER_OPEN, {"cover_open": True}),
    (SimState(error=True), PrinterCondition.ERROR, {"error": True}),
    (SimState(autocutter_error=True), PrinterCondition.ERROR, {"error": True}),
    (SimState(offline=True), PrinterCondition.OFFLINE, {}),
    (SimState(silent=True), PrinterCondition.OFFLINE, {}),
    (SimState(garbled=True), PrinterCondition.OFFLINE, {}),
]


def test_each_state_over_the_pty(pty_printer: PtyPrinterSimulator) -> None:
    """GIVEN the simulator in each state WHEN polled through python-escpos' Serial on a pty
    THEN our decoding gives the condition and flags."""
    driver = PrinterDriver(serial_settings(pty_printer))
    flags = ("paper_near_end", "paper_end", "cover_open", "error")
    try:
        for state, condition, raised in CASES:
            pty_printer.printer.set(**{f: getattr(state, f) for f in state.__dataclass_fields__})
            status = driver.poll()
            assert status.condition is condition, state
            for flag in flags:
                assert getattr(status, flag) is raised.get(flag, False), (state, flag)
            expect_online = condition in (PrinterCondition.READY,
                                          PrinterCondition.PAPER_NEAR_END)
            assert status.online is expect_online
    finally:
        driver.close()


def test_error_cause_is_asked_only_on_error(pty_printer: PtyPrinterSimulator) -> None:
    driver = PrinterDriver(serial_settings(pty_printer))
    try:
        pty_printer.printer.set(autocutter_error=True)
        status = driver.poll()
        assert status.error_cause is not None and status.error_cause.autocutter
        assert "autocutter error" in status.describe()
        pty_printer.printer.set(autocutter_error=False)
        pty_printer.printer.queries.clear()
        assert driver.poll().error_cause is None
        assert sorted(set(pty_printer.printer.queries)) == [1, 2, 4]
    finally:
        driver.close()


def test_silent_printer_is_offline_and_quick(pty_printer: PtyPrinterSimulator) -> None:
    """python-escpos 3.1 would say "paper OK" here; we say OFFLINE within the timeouts."""
    pty_printer.printer.set(silent=True)
    driver = PrinterDriver(serial_settings(pty_printer))
    try:
        started = time.monotonic()
        status = driver.poll()
        assert time.monotonic() - started < 1.0
        assert not status.answered and not status.online and not status.can_print
        assert status.condition is PrinterCondition.OFFLINE
        assert driver.last_error == "no answer to DLE EOT"
        pty_printer.printer.set(silent=False)
        assert driver.poll().condition is PrinterCondition.READY
        assert driver.last_error is None
    finally:
        driver.close()


def test_late_reply_is_not_taken_for_the_next_question(pty_printer: PtyPrinterSimulator
                                                       ) -> None:
    """A reply that comes after the timeout is dropped before the next query is sent."""
    link = SerialLink(serial_settings(pty_printer))
    try:
        pty_printer.printer.set(reply_delay=0.15, drawer_open=True)  # n=1 → 0x16
        assert link.query(b"\x10\x04\x01", 0.05) is None
        pty_printer.printer.set(reply_delay=0.0, paper_out=True)
        time.sleep(0.2)  # the late 0x16 is now waiting in the input buffer
        assert link.query(b"\x10\x04\x04", 0.2) == status_byte(pty_printer.printer.state, 4)
    finally:
        link.close()


def test_missing_port_is_unavailable_and_polls_offline() -> None:
    from gatewayd.drivers.printer_settings import PrinterSettings

    settings = PrinterSettings(device="/dev/nonexistent-printer", status_timeout=0.05)
    with pytest.raises(PrinterUnavailable):
        SerialLink(settings)
    driver = PrinterDriver(settings)
    status = driver.poll()
    assert status.condition is PrinterCondition.OFFLINE
    assert driver.last_error is not None and "nonexistent-printer" in driver.last_error
