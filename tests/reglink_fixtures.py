"""Shared fixtures of the REGLINK/1 tests: a tiny journal, an in-memory sink, a fake USB device."""

from __future__ import annotations

import array
import errno
import os
import select
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any

import usb.backend
import usb.core

from gatewayd.errors import DiskFull

# --- a small fixture journal -----------------------------------------------------------------


def fixture_journal(days: int = 2, receipts: int = 3, start_no: int = 1) -> list[str]:
    """Record lines (no LF) of ``days`` business days, each O, receipts (T L X P E), C, Z."""
    lines: list[str] = []
    n = start_no
    receipt_no = 1000

    def add(*fields: object) -> None:
        nonlocal n
        lines.append("\t".join([str(n), *map(str, fields)]))
        n += 1

    for day in range(days):
        bdate = f"202404{day + 1:02d}"
        first = n
        add("O", bdate, f"{bdate}090000", "S1", 30000)
        for r in range(receipts):
            receipt_no += 1
            ts = f"{bdate}10{r % 60:02d}00"
            add("T", receipt_no, "SALE", "-", ts, "S1", "IN")
            add("L", receipt_no, 1, "D1", "4901", "おにぎり　鮭", 2, 150, 300, "8R")
            add("X", receipt_no, "8R", 300, 22, 300)
            add("P", receipt_no, "CASH", "-", 1000, 300, 700)
            add("E", receipt_no, 300, 22)
        total = 300 * receipts
        add("C", 30000 + total, 30000 + total, 0)
        add("Z", bdate, 1, f"{bdate}220000", receipts, total,
            f"10=0;8R={total};0=0;EX=0", f"CASH={total};CREDIT=0;EMONEY=0;QR=0;GIFT=0;POINT=0;"
            "OTHER=0", "IN=0;OUT=0", 0, first)
    return lines


def encoded(lines: Sequence[str]) -> list[bytes]:
    return [line.encode("cp932") for line in lines]


# --- an in-memory journal sink ---------------------------------------------------------------


class MemorySink:
    """A JournalSink that records what it commits and when; can be told to fail."""

    def __init__(self, delay: float = 0.0) -> None:
        self.records: dict[int, bytes] = {}
        self.store_counts: dict[int, int] = {}  # how often the host handed each number over
        self.aside: list[tuple[int, bytes]] = []  # late numbers with other bytes
        self.commits: list[tuple[float, int]] = []  # (monotonic time, last stored)
        self.calls: list[int] = []  # the first record number of every store_records call
        self.fail_next = 0
        self.delay = delay
        self.after_store: Any = None  # optional callable(last) run before returning
        self.lock = threading.Lock()

    def last_stored_record(self) -> int:
        with self.lock:
            return max(self.records, default=0)

    def store_records(self, records: Sequence[tuple[int, bytes]]) -> int:
        self.calls.append(records[0][0])
        if self.fail_next > 0:
            self.fail_next -= 1
            raise DiskFull("state disk full (test)")
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            for number, line in records:  # like the journal store: numbers only grow
                self.store_counts[number] = self.store_counts.get(number, 0) + 1
                if number > max(self.records, default=0):
                    self.records[number] = bytes(line)
                elif self.records.get(number) != bytes(line):
                    self.aside.append((number, bytes(line)))
            last = max(self.records, default=0)
            self.commits.append((time.monotonic(), last))
        if self.after_store is not None:
            self.after_store(last)
        return last

    def wait_for(self, last: int, timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.last_stored_record() >= last:
                return True
            time.sleep(0.01)
        return False


def assert_k_after_commit(sim_events: Iterable[tuple[float, tuple[object, ...]]],
                          sink: MemorySink) -> int:
    """Every ``K n`` the register executed came after the sink durably stored record n."""
    checked = 0
    for when, event in list(sim_events):
        if event[0] != "K":
            continue
        n = int(event[1])  # type: ignore[call-overload]
        if n == 0:
            continue
        earlier = [last for t, last in sink.commits if t <= when]
        assert earlier and max(earlier) >= n, f"K {n} at {when} before the sink stored it"
        checked += 1
    return checked


# --- a fake USB register: one bulk OUT, one bulk IN, wired to a socket -------------------------

VID, PID, SERIAL = 0x1234, 0x5678, "REG0001"
EP_OUT, EP_IN = 0x01, 0x82


class FakeUsbRegister(usb.backend.IBackend):  # type: ignore[misc]
    """A pyusb backend with one device whose bulk endpoints are the ends of a socketpair.

    The other socket end (``sim_fd``) is what a ``RegisterSimulator`` serves with ``FdLink``.
    ``unplugged = True`` makes every transfer fail with ENODEV, like a pulled cable.
    """

    def __init__(self, serial: str = SERIAL) -> None:
        super().__init__()
        self._host, self._sim = socket.socketpair()
        self._host.setblocking(False)
        self.sim_fd = self._sim.fileno()
        self.serial = serial
        self.unplugged = False
        self.configured = 0
        self.claimed: set[int] = set()
        self.writes: list[bytes] = []

    def close(self) -> None:
        self._host.close()
        self._sim.close()

    # descriptors
    def enumerate_devices(self) -> Any:
        if not self.unplugged:
            yield "dev0"

    def get_device_descriptor(self, dev: Any) -> Any:
        return SimpleNamespace(
            bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0,
            bDeviceProtocol=0, bMaxPacketSize0=64, idVendor=VID, idProduct=PID, bcdDevice=0x0100,
            iManufacturer=1, iProduct=2, iSerialNumber=3, bNumConfigurations=1, address=5, bus=1,
            port_number=1, port_numbers=(1,), speed=3,
        )

    def get_configuration_descriptor(self, dev: Any, config: int) -> Any:
        return SimpleNamespace(
            bLength=9, bDescriptorType=2, wTotalLength=32, bNumInterfaces=1,
            bConfigurationValue=1, iConfiguration=0, bmAttributes=0x80, bMaxPower=50,
            extra_descriptors=[],
        )

    def get_interface_descriptor(self, dev: Any, intf: int, alt: int, config: int) -> Any:
        return SimpleNamespace(
            bLength=9, bDescriptorType=4, bInterfaceNumber=0, bAlternateSetting=0,
            bNumEndpoints=2, bInterfaceClass=0xFF, bInterfaceSubClass=0, bInterfaceProtocol=0,
            iInterface=0, extra_descriptors=[],
        )

    def get_endpoint_descriptor(self, dev: Any, ep: int, intf: int, alt: int, config: int) -> Any:
        return SimpleNamespace(
            bLength=7, bDescriptorType=5, bEndpointAddress=(EP_OUT, EP_IN)[ep],
            bmAttributes=0x02, wMaxPacketSize=64, bInterval=0, bRefresh=0, bSynchAddress=0,
            extra_descriptors=[],
        )

    # device handle
    def _check(self) -> None:
        if self.unplugged:
            raise usb.core.USBError("No such device (it may have been disconnected)", -4,
                                    errno.ENODEV)

    def open_device(self, dev: Any) -> Any:
        self._check()
        return "handle0"

    def close_device(self, dev_handle: Any) -> None:
        pass

    def set_configuration(self, dev_handle: Any, config_value: int) -> None:
        self._check()
        self.configured = config_value

    def get_configuration(self, dev_handle: Any) -> int:
        self._check()
        return self.configured

    def claim_interface(self, dev_handle: Any, intf: int) -> None:
        self._check()
        self.claimed.add(intf)

    def release_interface(self, dev_handle: Any, intf: int) -> None:
        self.claimed.discard(intf)

    def is_kernel_driver_active(self, dev_handle: Any, intf: int) -> bool:
        return False

    def ctrl_transfer(self, dev_handle: Any, bmRequestType: int, bRequest: int, wValue: int,
                      wIndex: int, data_or_wLength: Any, timeout: int) -> int:
        self._check()
        if bRequest == 6 and wValue >> 8 == 3:  # GET_DESCRIPTOR, STRING
            index = wValue & 0xFF
            if index == 0:
                payload = bytes([4, 3, 0x09, 0x04])
            else:
                text = {1: "Sim Register Co.", 2: "REGLINK register", 3: self.serial}[index]
                body = text.encode("utf-16-le")
                payload = bytes([2 + len(body), 3]) + body
            n = min(len(payload), len(data_or_wLength))
            data_or_wLength[:n] = array.array("B", payload[:n])
            return n
        raise usb.core.USBError("unsupported control request", -9, errno.EPIPE)

    def bulk_write(self, dev_handle: Any, ep: int, intf: int, data: Any, timeout: int) -> int:
        self._check()
        raw = bytes(data)
        self.writes.append(raw)
        self._host.sendall(raw)
        return len(raw)

    def bulk_read(self, dev_handle: Any, ep: int, intf: int, buff: Any, timeout: int) -> int:
        self._check()
        ready, _, _ = select.select([self._host], [], [], timeout / 1000.0)
        if self.unplugged:
            self._check()
        if not ready:
            raise usb.core.USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)
        chunk = os.read(self._host.fileno(), len(buff))
        buff[: len(chunk)] = array.array("B", chunk)
        return len(chunk)
