"""Byte transports to a register: a serial port (pyserial) or a pair of USB bulk endpoints (pyusb).

The host's state machine sees only ``Transport``: ``read(n, timeout)`` returns what arrived
(possibly less than n, ``b""`` on timeout), ``write`` sends everything. Every port failure
(an adapter unplugged, a device gone, a port held by another process) becomes ``PortError``,
a ``DeviceError``: the host treats it as "link down" and reopens with backoff. That is any
exception from pyserial or pyusb, not a list of the expected ones: an unplugged adapter makes
pyserial raise ``termios.error`` (not an ``OSError``), a port whose descriptor is gone
``TypeError``/``AttributeError``, pyusb ``ValueError`` besides ``USBError``.

Port strings (``open_transport``):
- ``usb:VID:PID[:SERIAL]`` (hex VID/PID) — vendor bulk endpoints via pyusb;
- anything with ``://`` (``loop://``, ``rfc2217://host:port``, ``socket://…``) — a pyserial URL;
- otherwise a device path (``/dev/serial/by-id/…``, ``/dev/ttyUSB0``), opened exclusively.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Protocol

import serial

from gatewayd.errors import ConfigError, PortError

BAUDRATES = (9600, 19200, 38400, 57600, 115200)
DEFAULT_BAUDRATE = 115200
_USB_PORT = re.compile(r"usb:([0-9A-Fa-f]{4}):([0-9A-Fa-f]{4})(?::(.+))?")


class Transport(Protocol):
    """A byte pipe to one register."""

    name: str

    def read(self, n: int, timeout: float) -> bytes:
        """Up to ``n`` bytes: waits at most ``timeout`` s for the first, returns b"" if none."""
        ...

    def write(self, data: bytes) -> None: ...

    def reset_input(self) -> None:
        """Drop bytes received but not read yet (stale answers)."""
        ...

    def close(self) -> None: ...


def check_baudrate(baudrate: int) -> int:
    if baudrate not in BAUDRATES:
        raise ConfigError(
            "unsupported baud rate", key="baudrate", value=baudrate,
            expected="one of " + ", ".join(map(str, BAUDRATES)),
        )
    return baudrate


class SerialTransport:
    """A serial port through pyserial: a device path or any pyserial URL."""

    def __init__(
        self,
        port: str,
        baudrate: int = DEFAULT_BAUDRATE,
        *,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        exclusive: bool | None = None,
    ) -> None:
        self.name = port
        check_baudrate(baudrate)
        is_url = "://" in port
        options: dict[str, Any] = {
            "baudrate": baudrate, "bytesize": bytesize, "parity": parity,
            "stopbits": stopbits, "timeout": 0, "xonxoff": False, "rtscts": False,
            "dsrdtr": False,
        }
        if not is_url:
            options["exclusive"] = True if exclusive is None else exclusive
        self._timeout: float | None = 0
        try:
            self._port = serial.serial_for_url(port, **options)
        except Exception as exc:  # whatever pyserial raises: the port is not there
            raise PortError(f"cannot open register port {port}: {exception_text(exc)}") from exc
        with contextlib.suppress(Exception):  # the first read finds a dead port
            self._port.reset_input_buffer()

    def _set_timeout(self, timeout: float) -> None:
        if timeout != self._timeout:
            self._port.timeout = timeout
            self._timeout = timeout

    def read(self, n: int, timeout: float) -> bytes:
        try:
            self._set_timeout(max(0.0, timeout))
            first = self._port.read(1)
            if not first or n <= 1:
                return bytes(first)
            waiting = self._port.in_waiting
            if waiting:
                self._set_timeout(0)
                return bytes(first) + bytes(self._port.read(min(waiting, n - 1)))
            return bytes(first)
        except Exception as exc:  # see the module docstring
            raise PortError(
                f"register port {self.name} read failed: {exception_text(exc)}") from exc

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except Exception as exc:  # see the module docstring
            raise PortError(
                f"register port {self.name} write failed: {exception_text(exc)}") from exc

    def reset_input(self) -> None:
        try:
            self._port.reset_input_buffer()
        except Exception as exc:  # see the module docstring
            raise PortError(f"register port {self.name} failed: {exception_text(exc)}") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._port.close()


class UsbTransport:
    """A register exposing vendor bulk endpoints: one bulk OUT and one bulk IN."""

    def __init__(
        self,
        vendor_id: int,
        product_id: int,
        serial_number: str | None = None,
        *,
        backend: Any = None,
        write_timeout: float = 1.0,
    ) -> None:
        import usb.core
        import usb.util

        self._usb_core = usb.core
        self._usb_util = usb.util
        self.name = f"usb:{vendor_id:04x}:{product_id:04x}" + (
            f":{serial_number}" if serial_number else ""
        )
        self._write_timeout_ms = max(1, int(write_timeout * 1000))
        self._pending = bytearray()
        self._device: Any = None
        try:
            self._open(vendor_id, product_id, serial_number, backend)
        except PortError:
            self.close()
            raise
        except Exception as exc:  # see the module docstring
            self.close()
            raise PortError(f"cannot open register {self.name}: {exception_text(exc)}") from exc

    def _open(self, vid: int, pid: int, serial_number: str | None, backend: Any) -> None:
        core, util = self._usb_core, self._usb_util

        def matches(dev: Any) -> bool:
            if serial_number is None:
                return True
            try:
                return bool(dev.serial_number == serial_number)
            except (core.USBError, ValueError, NotImplementedError):
                return False

        device = core.find(idVendor=vid, idProduct=pid, backend=backend, custom_match=matches)
        if device is None:
            raise PortError(f"register {self.name} not found on USB")
        self._device = device
        try:
            config = device.get_active_configuration()
        except core.USBError:
            config = None
        if config is None:  # pyusb FAQ: set_configuration on a configured device resets it
            device.set_configuration()
            config = device.get_active_configuration()
        interface = None
        for intf in config:
            out_ep = util.find_descriptor(intf, custom_match=_bulk(util, util.ENDPOINT_OUT))
            in_ep = util.find_descriptor(intf, custom_match=_bulk(util, util.ENDPOINT_IN))
            if out_ep is not None and in_ep is not None:
                interface = intf
                break
        if interface is None:
            raise PortError(f"register {self.name} has no interface with bulk IN and OUT")
        self._interface = interface.bInterfaceNumber
        with contextlib.suppress(NotImplementedError, core.USBError):
            if device.is_kernel_driver_active(self._interface):
                device.detach_kernel_driver(self._interface)
        util.claim_interface(device, self._interface)
        self._out = out_ep
        self._in = in_ep
        self._in_size = max(64, int(in_ep.wMaxPacketSize))

    def read(self, n: int, timeout: float) -> bytes:
        if not self._pending:
            try:
                chunk = self._in.read(self._in_size * 64, max(1, int(timeout * 1000)))
            except self._usb_core.USBTimeoutError:
                return b""
            except Exception as exc:  # see the module docstring
                raise PortError(f"register {self.name} read failed: {exception_text(exc)}") from exc
            self._pending += bytes(chunk)
        out = bytes(self._pending[:n])
        del self._pending[:n]
        return out

    def write(self, data: bytes) -> None:
        try:
            sent = 0
            while sent < len(data):
                sent += int(self._out.write(data[sent:], self._write_timeout_ms))
        except Exception as exc:  # see the module docstring
            raise PortError(f"register {self.name} write failed: {exception_text(exc)}") from exc

    def reset_input(self) -> None:
        self._pending.clear()
        for _ in range(64):  # drain what the device already holds
            try:
                chunk = self._in.read(self._in_size * 64, 1)
            except self._usb_core.USBTimeoutError:
                return
            except Exception as exc:  # see the module docstring
                raise PortError(f"register {self.name} failed: {exception_text(exc)}") from exc
            if not chunk:
                return

    def close(self) -> None:
        if self._device is not None:
            with contextlib.suppress(Exception):
                self._usb_util.dispose_resources(self._device)
            self._device = None


def exception_text(exc: BaseException) -> str:
    """An exception for error texts and logs: its type unless it is an ``OSError`` (whose
    text says enough), e.g. ``termios.error: (5, 'Input/output error')``."""
    if isinstance(exc, OSError):
        return str(exc) or type(exc).__name__
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else (
        f"{kind.__module__}.{kind.__qualname__}")
    return f"{name}: {exc}" if str(exc) else name


def _bulk(util: Any, direction: int) -> Any:
    def match(ep: Any) -> bool:
        return bool(
            util.endpoint_type(ep.bmAttributes) == util.ENDPOINT_TYPE_BULK
            and util.endpoint_direction(ep.bEndpointAddress) == direction
        )

    return match


def parse_usb_port(port: str) -> tuple[int, int, str | None]:
    """``usb:VID:PID[:SERIAL]`` → (vid, pid, serial or None); ConfigError when malformed."""
    match = _USB_PORT.fullmatch(port)
    if match is None:
        raise ConfigError("bad USB register port", key="port", value=port,
                          expected="usb:VID:PID[:SERIAL] with 4-digit hex VID and PID")
    return int(match.group(1), 16), int(match.group(2), 16), match.group(3)


def open_transport(
    port: str, baudrate: int = DEFAULT_BAUDRATE, *, usb_backend: Any = None
) -> Transport:
    """Open the register's port by the form of its name (see the module docstring)."""
    check_baudrate(baudrate)
    if port.startswith("usb:"):
        vid, pid, serial_number = parse_usb_port(port)
        return UsbTransport(vid, pid, serial_number, backend=usb_backend)
    return SerialTransport(port, baudrate)
