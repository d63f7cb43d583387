"""A USB printer through a fake pyusb backend (bulk endpoints wired to the simulator):
python-escpos' ``Usb`` opens it, our code reads the status and prints the slip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from printer_fixtures import IN_EP, OUT_EP, PRODUCT, VENDOR, FakePrinterBackend, sample_content

from gatewayd.drivers.escpos_status import PrinterCondition
from gatewayd.drivers.printer import PrinterDriver, PrinterMonitor, UsbLink
from gatewayd.drivers.printer_settings import PrinterSettings
from gatewayd.drivers.slip import SlipStatus
from gatewayd.errors import PrinterUnavailable
from gatewayd.escpos_text import decode
from gatewayd.sim.printer import SimPrinter
from gatewayd.store.slips import SlipQueue


@pytest.fixture
def sim() -> SimPrinter:
    return SimPrinter()


@pytest.fixture
def backend(sim: SimPrinter) -> FakePrinterBackend:
    return FakePrinterBackend(sim)


def _settings(**changes: Any) -> PrinterSettings:
    values: dict[str, Any] = {"usb_vendor": VENDOR, "usb_product": PRODUCT,
                              "status_timeout": 0.1, "poll_interval": 0.05}
    values.update(changes)
    return PrinterSettings(**values)


def _factory(backend: FakePrinterBackend) -> Any:
    return lambda settings: UsbLink(settings, backend=backend)


@pytest.fixture
def driver(backend: FakePrinterBackend) -> Iterator[PrinterDriver]:
    d = PrinterDriver(_settings(), link_factory=_factory(backend))
    yield d
    d.close()


def test_usb_status_is_read_by_our_code(sim: SimPrinter, driver: PrinterDriver,
                                        backend: FakePrinterBackend) -> None:
    assert driver.poll().condition is PrinterCondition.READY
    assert backend.resets == 1  # python-escpos' open: set_configuration + reset
    sim.set(paper_near_end=True)
    assert driver.poll().condition is PrinterCondition.PAPER_NEAR_END
    sim.set(paper_out=True)
    status = driver.poll()
    assert status.condition is PrinterCondition.PAPER_END and not status.online
    sim.set(paper_out=False, cover_open=True)
    assert driver.poll().cover_open
    sim.set(cover_open=False, drawer_open=True)
    assert driver.poll().drawer_pin3_high is True


def test_silent_usb_printer_is_offline(sim: SimPrinter, driver: PrinterDriver) -> None:
    sim.set(silent=True)
    status = driver.poll()
    assert status.condition is PrinterCondition.OFFLINE and not status.answered


def test_endpoints_are_found_in_the_descriptors(backend: FakePrinterBackend) -> None:
    link = UsbLink(_settings(), backend=backend)
    try:
        assert (link._in_ep, link._out_ep) == (IN_EP, OUT_EP)
    finally:
        link.close()


def test_serial_number_selects_the_printer(backend: FakePrinterBackend) -> None:
    link = UsbLink(_settings(usb_serial="J7SF012345"), backend=backend)
    link.close()
    with pytest.raises(PrinterUnavailable):
        UsbLink(_settings(usb_serial="OTHER"), backend=backend)


def test_unplug_and_replug(sim: SimPrinter, backend: FakePrinterBackend) -> None:
    clock = [100.0]
    driver = PrinterDriver(_settings(), link_factory=_factory(backend), clock=lambda: clock[0])
    try:
        assert driver.poll().condition is PrinterCondition.READY
        backend.unplugged = True
        status = driver.poll()
        assert status.condition is PrinterCondition.OFFLINE
        assert driver.last_error is not None
        backend.unplugged = False
        assert driver.poll().condition is PrinterCondition.OFFLINE  # 1 s backoff not over
        clock[0] += 1.0
        assert driver.poll().condition is PrinterCondition.READY  # reopened by itself
    finally:
        driver.close()


def test_any_exception_from_pyusb_is_offline_then_reopened(
        sim: SimPrinter, backend: FakePrinterBackend) -> None:
    """Not only ``USBError``: whatever pyusb raises, the printer is offline with the error,
    the device is released and opened afresh once it answers again."""
    clock = [100.0]
    driver = PrinterDriver(_settings(), link_factory=_factory(backend), clock=lambda: clock[0])
    try:
        assert driver.poll().condition is PrinterCondition.READY
        backend.unplug_error = AttributeError("'NoneType' object has no attribute 'handle'")
        backend.unplugged = True
        assert driver.poll().condition is PrinterCondition.OFFLINE
        assert driver.last_error is not None and "AttributeError" in driver.last_error
        with pytest.raises(PrinterUnavailable):
            driver.write(b"x")
        backend.unplugged = False
        clock[0] += 1.0
        assert driver.poll().condition is PrinterCondition.READY
    finally:
        driver.close()


def test_slip_prints_over_usb(sim: SimPrinter, backend: FakePrinterBackend,
                              tmp_path: Path) -> None:
    queue = SlipQueue(tmp_path)
    monitor = PrinterMonitor(_settings(), queue=queue, link_factory=_factory(backend))
    try:
        sim.set(paper_out=True)
        monitor.submit_slip(sample_content(SlipStatus.SENT))
        monitor.poll_once()
        assert sim.printed == b""
        sim.set(paper_out=False)
        monitor.poll_once()
        monitor.poll_once()
        jobs = sim.jobs()
        assert len(jobs) == 1
        text = decode(jobs[0]).text
        assert "freee会計: 送信済" in text and "¥409,217" in text
        assert queue.counts().printed == 1
    finally:
        monitor.stop()
        queue.close()
