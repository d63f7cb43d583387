"""Shared pieces of the printer/drawer/slip tests: a fake pyusb backend wired to the printer
simulator, sample slip content, and helpers to run a simulator on a pty."""

from __future__ import annotations

import array
import errno
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import usb.backend
import usb.core

from gatewayd.drivers.printer_settings import PrinterSettings
from gatewayd.drivers.slip import SlipContent, SlipStatus
from gatewayd.protocol.records import Method, TaxClass
from gatewayd.sim.printer import PtyPrinterSimulator, SimPrinter

JST = timezone(timedelta(hours=9))
VENDOR, PRODUCT = 0x04B8, 0x0202
IN_EP, OUT_EP = 0x81, 0x02  # not python-escpos' defaults: the driver must find them


def _endpoint(address: int) -> SimpleNamespace:
    return SimpleNamespace(bLength=7, bDescriptorType=5, bEndpointAddress=address,
                           bmAttributes=0x02, wMaxPacketSize=64, bInterval=0, bRefresh=0,
                           bSynchAddress=0, extra_descriptors=[])


class FakePrinterBackend(usb.backend.IBackend):  # type: ignore[misc]
    """One USB printer (class 7, bulk IN/OUT) whose bulk endpoints talk to a ``SimPrinter``.

    ``unplugged`` True makes every transfer fail like a pulled cable (errno ENODEV), or with
    ``unplug_error`` when set (pyusb also lets other exceptions out, e.g. ``AttributeError`` on
    a released handle).
    """

    def __init__(self, sim: SimPrinter, *, serial: str = "J7SF012345",
                 vendor: int = VENDOR, product: int = PRODUCT) -> None:
        self.sim = sim
        self.serial = serial
        self.unplugged = False
        self.unplug_error: BaseException | None = None
        self._replies = bytearray()
        self._lock = threading.Lock()
        self.device = SimpleNamespace(
            bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0,
            bDeviceProtocol=0, bMaxPacketSize0=64, idVendor=vendor, idProduct=product,
            bcdDevice=0x0100, iManufacturer=1, iProduct=2, iSerialNumber=3,
            bNumConfigurations=1, address=5, bus=1, port_number=1, port_numbers=(1,),
            speed=2)
        self.config = SimpleNamespace(bLength=9, bDescriptorType=2, wTotalLength=32,
                                      bNumInterfaces=1, bConfigurationValue=1,
                                      iConfiguration=0, bmAttributes=0xC0, bMaxPower=50,
                                      extra_descriptors=[])
        self.interface = SimpleNamespace(bLength=9, bDescriptorType=4, bInterfaceNumber=0,
                                         bAlternateSetting=0, bNumEndpoints=2,
                                         bInterfaceClass=7, bInterfaceSubClass=1,
                                         bInterfaceProtocol=2, iInterface=0,
                                         extra_descriptors=[])
        self.endpoints = [_endpoint(OUT_EP), _endpoint(IN_EP)]
        self.strings = {1: "EPSON", 2: "TM-T88V", 3: serial}
        self.resets = 0

    def _check(self) -> None:
        if self.unplugged and self.unplug_error is not None:
            raise self.unplug_error
        if self.unplugged:
            raise usb.core.USBError("No such device", errno.ENODEV, errno.ENODEV)

    def enumerate_devices(self) -> Iterator[Any]:
        if not self.unplugged:
            yield self.device

    def get_device_descriptor(self, dev: Any) -> Any:
        return self.device

    def get_configuration_descriptor(self, dev: Any, config: int) -> Any:
        return self.config

    def get_interface_descriptor(self, dev: Any, intf: int, alt: int, config: int) -> Any:
        return self.interface

    def get_endpoint_descriptor(self, dev: Any, ep: int, intf: int, alt: int,
                                config: int) -> Any:
        return self.endpoints[ep]

    def open_device(self, dev: Any) -> Any:
        self._check()
        return object()

    def close_device(self, dev_handle: Any) -> None:
        pass

    def set_configuration(self, dev_handle: Any, config_value: int) -> None:
        self._check()

    def get_configuration(self, dev_handle: Any) -> int:
        return 1

    def claim_interface(self, dev_handle: Any, intf: int) -> None:
        self._check()

    def release_interface(self, dev_handle: Any, intf: int) -> None:
        pass

    def reset_device(self, dev_handle: Any) -> None:
        self.resets += 1

    def clear_halt(self, dev_handle: Any, ep: int) -> None:
        pass

    def ctrl_transfer(self, dev_handle: Any, bmRequestType: int, bRequest: int, wValue: int,
                      wIndex: int, data: Any, timeout: int) -> int:
        """GET_DESCRIPTOR(STRING) only: language ids, then UTF-16 strings."""
        self._check()
        if bRequest != 6 or wValue >> 8 != 3:
            raise usb.core.USBError("Pipe error", errno.EPIPE, errno.EPIPE)
        index = wValue & 0xFF
        if index == 0:
            payload = bytes([4, 3, 0x09, 0x04])
        else:
            text = self.strings.get(index, "").encode("utf-16-le")
            payload = bytes([2 + len(text), 3]) + text
        size = min(len(payload), len(data))
        data[:size] = array.array("B", payload[:size])
        return size

    def bulk_write(self, dev_handle: Any, ep: int, intf: int, data: Any, timeout: int) -> int:
        self._check()
        replies = self.sim.receive(bytes(data))
        with self._lock:
            self._replies += replies
        return len(data)

    def bulk_read(self, dev_handle: Any, ep: int, intf: int, buff: Any, timeout: int) -> int:
        self._check()
        with self._lock:
            if not self._replies:
                raise usb.core.USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)
            size = min(len(buff), len(self._replies))
            buff[:size] = array.array("B", self._replies[:size])
            del self._replies[:size]
        return size


def running_pty_printer() -> Iterator[PtyPrinterSimulator]:
    """Body of each test module's ``pty_printer`` fixture: a simulator on a pty."""
    with PtyPrinterSimulator() as sim:
        yield sim


def serial_settings(sim: PtyPrinterSimulator, **changes: Any) -> PrinterSettings:
    """Fast settings for tests: short timeouts and polls."""
    values: dict[str, Any] = {"device": sim.port, "status_timeout": 0.1,
                              "poll_interval": 0.05, "write_timeout": 5.0}
    values.update(changes)
    return PrinterSettings(**values)


def sample_content(status: SlipStatus = SlipStatus.SENT, **changes: Any) -> SlipContent:
    values: dict[str, Any] = {
        "store_name": "渋谷店",
        "store_code": "0001",
        "terminal": "01",
        "business_date": date(2025, 1, 10),
        "method_totals": {Method.CASH: 200000, Method.CREDIT: 150000, Method.EMONEY: 59217},
        "class_totals": {TaxClass.STANDARD: 380000, TaxClass.REDUCED: 29217},
        "gross": 409217,
        "tax": 37200,
        "status": status,
        "status_url": "http://192.168.10.5:8080/status",
        "made_at": datetime(2025, 1, 11, 0, 12, tzinfo=JST),
    }
    if status is SlipStatus.HELD:
        values["reason"] = "check 2: receipt 123 payments 1500 ≠ total 1600 (records 4411, 4418)"
        values["action"] = "レジの記録を確認し、ステータス画面から再送してください。"
    values.update(changes)
    return SlipContent(**values)
