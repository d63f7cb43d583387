"""A test double for the pyserial port object: a cable that can be pulled under a running host.

A pseudo-terminal closed under pyserial fails on the next call, but which exception comes out
depends on the kernel and on which call comes first. ``SerialFaults`` makes it exact: installed
with ``monkeypatch`` it replaces ``serial.Serial`` (what python-escpos and ``serial_for_url``
instantiate), so every port opened afterwards is a real pyserial port on the real path (the
simulator's pty) that raises, once ``unplug()`` is called, what pyserial raises in that case:

- ``"hangup"`` — a USB-serial adapter pulled out (pyserial 3.5 on Linux, checked against a
  pty whose other side was closed): ``reset_input_buffer``/``flush`` raise ``termios.error``
  (``tcflush``/``tcdrain``: EIO, *not* an ``OSError``), ``write`` and ``read`` a
  ``SerialException``, ``in_waiting``/``out_waiting`` an ``OSError``, changing the timeout a
  ``SerialException``; opening the path again fails (ENOENT: the device node is gone).
- ``"closed"`` — the port's descriptor is gone under pyserial (closed by another thread, or the
  driver released it): every call raises ``TypeError`` like pyserial with ``fd = None``; an
  open fails with ``termios.error`` (``tcflush`` inside pyserial's ``open``, which it lets out).

A port opened before ``unplug()`` stays dead after ``replug()`` (as a real stale descriptor
does); only a fresh open works again.
"""

from __future__ import annotations

import errno
import termios
from typing import Any

import pytest
import serial
import serial.serialposix

EIO_TEXT = "Input/output error"


class SerialFaults:
    """The switch every port opened through the double obeys (see the module docstring)."""

    def __init__(self) -> None:
        self.generation = 0  # ports opened in an older generation are dead
        self.unplugged = False
        self.kind = "hangup"
        self.opens = 0
        self.raised: list[str] = []  # what the double raised, in order (type names)

    def unplug(self, kind: str = "hangup") -> None:
        assert kind in ("hangup", "closed")
        self.kind = kind
        self.unplugged = True
        self.generation += 1

    def replug(self) -> None:
        self.unplugged = False

    def fail(self, call: str, port: str) -> BaseException:
        exc: BaseException
        if self.kind == "closed":
            exc = TypeError("argument must be an int, or have a fileno() method.")
        elif call in ("reset_input_buffer", "reset_output_buffer", "flush"):
            exc = termios.error(errno.EIO, EIO_TEXT)
        elif call == "write":
            exc = serial.SerialException(f"write failed: [Errno {errno.EIO}] {EIO_TEXT}")
        elif call == "read":
            exc = serial.SerialException(
                "device reports readiness to read but returned no data "
                "(device disconnected or multiple access on port?)")
        elif call == "configure":
            exc = serial.SerialException(f"Could not configure port: ({errno.EIO}, '{EIO_TEXT}')")
        else:
            exc = OSError(errno.EIO, EIO_TEXT)
        self.raised.append(type(exc).__name__)
        return exc

    def open_error(self, port: str) -> BaseException:
        exc: BaseException
        if self.kind == "closed":
            exc = termios.error(errno.EIO, EIO_TEXT)
        else:
            exc = serial.SerialException(
                errno.ENOENT, f"could not open port {port}: [Errno {errno.ENOENT}] "
                f"No such file or directory: '{port}'")
        self.raised.append(type(exc).__name__)
        return exc

    def install(self, monkeypatch: pytest.MonkeyPatch) -> SerialFaults:
        monkeypatch.setattr(serial, "Serial", _port_class(self))
        return self


def _port_class(faults: SerialFaults) -> type[Any]:
    base: Any = serial.serialposix.Serial

    class UnpluggableSerial(base):  # type: ignore[misc,valid-type]
        _generation = -1

        def _dead(self) -> bool:
            return bool(self.is_open) and self._generation != faults.generation

        def open(self) -> None:
            if faults.unplugged:
                raise faults.open_error(str(self.portstr))
            self._generation = faults.generation
            faults.opens += 1
            super().open()

        def _reconfigure_port(self, force_update: bool = False) -> None:
            if self._dead():
                raise faults.fail("configure", str(self.portstr))
            super()._reconfigure_port(force_update)

        def reset_input_buffer(self) -> None:
            if self._dead():
                raise faults.fail("reset_input_buffer", str(self.portstr))
            super().reset_input_buffer()

        def reset_output_buffer(self) -> None:
            if self._dead():
                raise faults.fail("reset_output_buffer", str(self.portstr))
            super().reset_output_buffer()

        def flush(self) -> None:
            if self._dead():
                raise faults.fail("flush", str(self.portstr))
            super().flush()

        def write(self, data: Any) -> int | None:
            if self._dead():
                raise faults.fail("write", str(self.portstr))
            return super().write(data)  # type: ignore[no-any-return]

        def read(self, size: int = 1) -> bytes:
            if self._dead():
                raise faults.fail("read", str(self.portstr))
            return super().read(size)  # type: ignore[no-any-return]

        @property
        def in_waiting(self) -> int:
            if self._dead():
                raise faults.fail("in_waiting", str(self.portstr))
            return base.in_waiting.fget(self)  # type: ignore[no-any-return]

        @property
        def out_waiting(self) -> int:
            if self._dead():
                raise faults.fail("out_waiting", str(self.portstr))
            return base.out_waiting.fget(self)  # type: ignore[no-any-return]

    return UnpluggableSerial
