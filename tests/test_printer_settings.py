"""``[printer]``, ``[drawer]``, ``[slip]``: defaults, and errors that name the key."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from gatewayd.drivers.printer_settings import (
    DrawerSettings,
    PinLevel,
    PrinterSettings,
    SlipSettings,
    device_settings_from,
    parse_device_tables,
    parse_drawer,
    parse_printer,
    parse_slip,
)
from gatewayd.errors import ConfigError
from gatewayd.settings_reader import TableReader


def _doc(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


def test_defaults_slips_on_drawer_uncalibrated() -> None:
    printer, drawer, slip = parse_device_tables(_doc('[printer]\ndevice = "/dev/ttyUSB1"\n'))
    assert printer == PrinterSettings(device="/dev/ttyUSB1")
    assert drawer == DrawerSettings() and drawer.open_level is None
    assert slip == SlipSettings() and slip.enabled is True
    assert parse_device_tables({})[0] is None


def test_usb_printer_with_serial_number() -> None:
    printer = parse_printer(TableReader(
        {"usb": "04B8:0e15", "usb_serial": "X1", "usb_in_ep": 0x81, "usb_out_ep": 2,
         "baudrate": 38400, "columns": 48}, "printer"))
    assert (printer.usb_vendor, printer.usb_product, printer.usb_serial) == (0x04B8, 0x0E15, "X1")
    assert printer.is_usb and printer.describe() == "usb 04b8:0e15 serial X1"
    assert (printer.usb_in_ep, printer.usb_out_ep, printer.columns) == (0x81, 2, 48)


def test_full_tables() -> None:
    printer, drawer, slip = parse_device_tables(_doc(
        '[printer]\ndevice = "/dev/ttyUSB1"\nflow_control = "rtscts"\npoll_interval = 2\n'
        '[drawer]\nopen_level = "low"\nalert_after = 90\nkick_pin = 5\n'
        '[slip]\nenabled = false\nstatus_url = "http://gw.local:8080/"\nqr_size = 4\n'))
    assert printer is not None and printer.flow_control == "rtscts"
    assert printer.poll_interval == 2.0
    assert drawer == DrawerSettings(open_level=PinLevel.LOW, alert_after=90.0, kick_pin=5)
    assert slip == SlipSettings(enabled=False, status_url="http://gw.local:8080/", qr_size=4)


@pytest.mark.parametrize(("table", "key"), [
    ({}, "printer.device"),
    ({"device": "/dev/x", "usb": "04b8:0202"}, "printer.device"),
    ({"usb": "04b8-0202"}, "printer.usb"),
    ({"device": "/dev/x", "usb_serial": "A"}, "printer.usb_serial"),
    ({"device": "/dev/x", "baudrate": 12345}, "printer.baudrate"),
    ({"device": "/dev/x", "flow_control": "dsr"}, "printer.flow_control"),
    ({"device": "/dev/x", "poll_interval": 0}, "printer.poll_interval"),
    ({"device": "/dev/x", "columns": 100}, "printer.columns"),
    ({"device": "/dev/x", "devcie": "/dev/y"}, "printer.devcie"),
])
def test_printer_errors_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_printer(TableReader(table, "printer"))
    assert caught.value.key == key


@pytest.mark.parametrize(("table", "key"), [
    ({"open_level": "open"}, "drawer.open_level"),
    ({"kick_pin": 3}, "drawer.kick_pin"),
    ({"alert_after": 0}, "drawer.alert_after"),
    ({"kick_pulse_ms": 1000}, "drawer.kick_pulse_ms"),
    ({"polarity": "high"}, "drawer.polarity"),
])
def test_drawer_errors_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_drawer(TableReader(table, "drawer"))
    assert caught.value.key == key


@pytest.mark.parametrize(("table", "key"), [
    ({"enabled": "yes"}, "slip.enabled"),
    ({"status_url": "gw.local"}, "slip.status_url"),
    ({"qr_size": 0}, "slip.qr_size"),
])
def test_slip_errors_name_the_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_slip(TableReader(table, "slip"))
    assert caught.value.key == key


def test_settings_from_a_loaded_configuration() -> None:
    class WithFields:
        printer = PrinterSettings(device="/dev/a")
        drawer = DrawerSettings(kick_pin=5)
        slip = None

    class OnlyExtra:
        def __init__(self) -> None:
            self.extra = {"printer": {"device": "/dev/b"}, "slip": {"enabled": False}}

    assert device_settings_from(WithFields()) == (PrinterSettings(device="/dev/a"),
                                                  DrawerSettings(kick_pin=5), SlipSettings())
    printer, _, slip = device_settings_from(OnlyExtra())
    assert printer == PrinterSettings(device="/dev/b") and not slip.enabled
