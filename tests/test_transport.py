"""Transports: pyserial on loop:// and real ptys, pyusb through a fake backend."""

from __future__ import annotations

import contextlib
import os
import pty
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from reglink_fixtures import SERIAL, FakeUsbRegister, MemorySink, fixture_journal
from serial_faults import SerialFaults

from gatewayd.drivers.register_host import HostConfig, RegisterHost
from gatewayd.drivers.transport import (
    SerialTransport,
    UsbTransport,
    open_transport,
    parse_usb_port,
)
from gatewayd.errors import ConfigError, DeviceError, PortError
from gatewayd.protocol.frames import Frame, FrameDecoder, FrameKind, encode_request
from gatewayd.sim.register import FdLink, PtyLink, RegisterSimulator


@pytest.fixture
def raw_pty() -> Iterator[tuple[int, str]]:
    master, slave = pty.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    yield master, path
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


def test_loop_url() -> None:
    t = open_transport("loop://", 9600)
    assert isinstance(t, SerialTransport)
    t.write(b"\x01abc")
    assert t.read(10, 0.5) == b"\x01abc"
    start = time.monotonic()
    assert t.read(10, 0.1) == b""
    assert 0.05 <= time.monotonic() - start < 0.5
    t.close()


def test_pty_read_returns_what_arrived(raw_pty: tuple[int, str]) -> None:
    master, path = raw_pty
    t = SerialTransport(path, 115200)
    os.write(master, b"hello")
    time.sleep(0.05)
    assert t.read(3, 0.5) == b"hel"
    assert t.read(100, 0.5) == b"lo"
    t.write(b"\x01xyz")
    time.sleep(0.05)
    assert os.read(master, 100) == b"\x01xyz"
    os.write(master, b"stale")
    time.sleep(0.05)
    t.reset_input()
    assert t.read(10, 0.05) == b""
    t.close()


def test_pty_exclusive_open(raw_pty: tuple[int, str]) -> None:
    _, path = raw_pty
    first = SerialTransport(path, 115200)
    with pytest.raises(PortError, match="cannot open"):
        SerialTransport(path, 115200)
    first.close()
    SerialTransport(path, 115200).close()  # free again once closed


@pytest.mark.parametrize("baud", [9600, 19200, 38400, 57600, 115200])
def test_supported_baudrates(raw_pty: tuple[int, str], baud: int) -> None:
    _, path = raw_pty
    t = open_transport(path, baud)
    t.close()


def test_bad_baudrate_is_a_config_error(raw_pty: tuple[int, str]) -> None:
    _, path = raw_pty
    with pytest.raises(ConfigError, match="baudrate"):
        open_transport(path, 4800)


def test_missing_device_is_a_port_error(tmp_path: Path) -> None:
    with pytest.raises(PortError) as exc:
        open_transport(str(tmp_path / "no-such-tty"), 115200)
    assert isinstance(exc.value, DeviceError)


def test_unplugged_pty_read_and_write_fail_with_port_error(tmp_path: Path) -> None:
    link = PtyLink(tmp_path / "reg")
    t = SerialTransport(str(tmp_path / "reg"), 115200)
    link.unplug()
    assert not (tmp_path / "reg").exists()
    with pytest.raises(PortError, match="read failed"):
        t.read(10, 0.2)
    with pytest.raises(PortError, match="write failed"):
        t.write(b"x" * 10)
    t.close()
    link.replug()
    assert (tmp_path / "reg").resolve() == Path(link.slave_path).resolve()
    SerialTransport(str(tmp_path / "reg"), 115200).close()
    link.close()


def test_parse_usb_port() -> None:
    assert parse_usb_port("usb:0403:6001") == (0x0403, 0x6001, None)
    assert parse_usb_port("usb:0403:6001:A1B2C3") == (0x0403, 0x6001, "A1B2C3")
    for bad in ("usb:403:6001", "usb:0403", "usb:zzzz:6001"):
        with pytest.raises(ConfigError, match="port"):
            parse_usb_port(bad)


# --- USB through a fake pyusb backend --------------------------------------------------------


@pytest.fixture
def usb_register() -> Iterator[tuple[FakeUsbRegister, RegisterSimulator]]:
    backend = FakeUsbRegister()
    sim = RegisterSimulator(fixture_journal(days=3, receipts=40))
    sim.start(FdLink(backend.sim_fd))
    yield backend, sim
    sim.stop()
    backend.close()


def test_usb_open_finds_bulk_endpoints(
    usb_register: tuple[FakeUsbRegister, RegisterSimulator],
) -> None:
    backend, _ = usb_register
    t = open_transport(f"usb:1234:5678:{SERIAL}", 115200, usb_backend=backend)
    assert isinstance(t, UsbTransport)
    assert backend.configured == 1 and backend.claimed == {0}
    t.write(encode_request(0x20, "S"))
    decoder = FrameDecoder(FrameKind.RESPONSE)
    events: list[object] = []
    end = time.monotonic() + 2
    while not events and time.monotonic() < end:
        events += decoder.feed(t.read(64, 0.5))
    assert isinstance(events[0], Frame) and events[0].data.startswith(b"REGLINK/1\t")
    assert backend.writes == [encode_request(0x20, "S")]
    assert t.read(10, 0.05) == b""  # a bulk timeout is an empty read
    t.close()


def test_usb_serial_number_must_match(
    usb_register: tuple[FakeUsbRegister, RegisterSimulator],
) -> None:
    backend, _ = usb_register
    with pytest.raises(PortError, match="not found"):
        open_transport("usb:1234:5678:OTHER", 115200, usb_backend=backend)
    with pytest.raises(PortError, match="not found"):
        open_transport("usb:1234:9999", 115200, usb_backend=backend)


def test_usb_unplug_is_a_port_error(
    usb_register: tuple[FakeUsbRegister, RegisterSimulator],
) -> None:
    backend, _ = usb_register
    t = open_transport("usb:1234:5678", 115200, usb_backend=backend)
    backend.unplugged = True
    with pytest.raises(PortError, match="read failed"):
        t.read(10, 0.1)
    with pytest.raises(PortError, match="write failed"):
        t.write(b"\x15")
    with pytest.raises(PortError):
        open_transport("usb:1234:5678", 115200, usb_backend=backend)


def test_host_drains_a_journal_over_usb(
    usb_register: tuple[FakeUsbRegister, RegisterSimulator],
) -> None:
    backend, sim = usb_register
    sink = MemorySink()
    config = HostConfig("reg-usb", f"usb:1234:5678:{SERIAL}", poll_interval=0.05)
    host = RegisterHost(
        config, sink,
        transport_factory=lambda: open_transport(config.port, config.baudrate,
                                                 usb_backend=backend),
    )
    host.start()
    try:
        assert sink.wait_for(sim.last_record_no, 10)
    finally:
        host.stop()
    assert [sink.records[n] for n in sorted(sink.records)] == [
        line.encode("cp932") for line in fixture_journal(days=3, receipts=40)
    ]
    assert sim.committed == sim.last_record_no
    assert len(sim.events_named("J")) >= 2  # more than 4096 bytes: several J


@pytest.mark.parametrize(("kind", "raised"), [("hangup", "termios.error"),
                                              ("closed", "TypeError")])
def test_any_exception_from_pyserial_is_a_port_error(
    raw_pty: tuple[int, str], monkeypatch: pytest.MonkeyPatch, kind: str, raised: str,
) -> None:
    """An unplugged adapter makes pyserial raise termios.error (not an OSError), a port whose
    descriptor is gone TypeError: each is a PortError, the host's "link down"."""
    faults = SerialFaults().install(monkeypatch)
    _, path = raw_pty
    t = SerialTransport(path, 115200)
    faults.unplug(kind)
    with pytest.raises(PortError, match="failed") as failed:
        t.reset_input()
    assert raised in str(failed.value)
    with pytest.raises(PortError, match="write failed"):
        t.write(b"\x15")
    with pytest.raises(PortError, match="read failed"):
        t.read(10, 0.05)
    t.close()
    with pytest.raises(PortError, match="cannot open"):
        SerialTransport(path, 115200)
    faults.replug()
    SerialTransport(path, 115200).close()


def test_usb_any_exception_is_a_port_error(
    usb_register: tuple[FakeUsbRegister, RegisterSimulator], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pyusb raises more than USBError (ValueError, AttributeError on a released handle)."""
    backend, _ = usb_register
    t = open_transport("usb:1234:5678", 115200, usb_backend=backend)

    def released(*args: object) -> int:
        raise AttributeError("'NoneType' object has no attribute 'handle'")

    monkeypatch.setattr(backend, "bulk_read", released)
    monkeypatch.setattr(backend, "bulk_write", released)
    with pytest.raises(PortError, match="read failed: AttributeError"):
        t.read(10, 0.1)
    with pytest.raises(PortError, match="write failed: AttributeError"):
        t.write(b"\x15")
    with pytest.raises(PortError, match="AttributeError"):
        t.reset_input()
    t.close()
