"""Devices pulled out under the running daemon (issue 11, section 4).

The rule for every device monitor: any exception while talking to a device means the device is
not known to be working. The status says so (offline / unknown / link down, with the error),
the port is closed and reopened with backoff, it is found again when plugged back at the same
path, and the log has one line per change, not a traceback per poll.

The printer's polls are driven by ``wake()`` (its poll interval is an hour), so "within two
polls" is counted, not timed. Unplugs are real (the simulator closes its pty and removes the
stable symlink) or made exact with the pyserial double of ``serial_faults``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from printer_fixtures import sample_content
from reglink_fixtures import MemorySink
from serial_faults import SerialFaults

from gatewayd.config import load_settings
from gatewayd.daemon import Gateway
from gatewayd.drivers.printer import PrinterMonitor, SerialLink
from gatewayd.drivers.printer_settings import PrinterSettings
from gatewayd.drivers.register_host import HostConfig, RegisterHost
from gatewayd.errors import DeviceError, PrinterUnavailable
from gatewayd.sim.journal_gen import generate_journal
from gatewayd.sim.printer import PtyPrinterSimulator
from gatewayd.sim.register import RegisterSimulator

REGISTER_ID = "0001-01"
PRINTER_CONFIG = """
state_dir = "state"
poll_interval = 0.2
[[registers]]
store_code = "0001"
terminal_no = "01"
port = "{register}"
[printer]
device = "{printer}"
poll_interval = 3600
status_timeout = 0.2
[drawer]
open_level = "high"
alert_after = 3600
"""


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _poll(gateway: Gateway) -> dict[str, Any]:
    """One more printer poll (woken, not waited for); the daemon's printer status after it."""
    monitor = gateway.printer
    assert monitor is not None
    before = monitor.snapshot().last_poll
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:  # re-wake: a wake set while the thread clears is lost
        monitor.wake()
        if _wait(lambda: monitor.snapshot().last_poll != before, 0.5):
            break
    devices: dict[str, Any] = gateway.status_data()["devices"]
    return devices


def _polls_until(gateway: Gateway, condition: Callable[[dict[str, Any]], bool],
                 limit: int) -> int | None:
    """How many polls it took for ``condition`` on the printer status (None: not in limit)."""
    for n in range(1, limit + 1):
        if condition(_poll(gateway)):
            return n
    return None


def _found_again(gateway: Gateway, condition: Callable[[dict[str, Any]], bool],
                 timeout: float = 20.0) -> bool:
    """Poll every 0.1 s until ``condition``: the reopen waits out its backoff (1, 2, 4 … s
    from the last failure), so this is bounded in time, not in polls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition(_poll(gateway)):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def box(tmp_path: Path) -> Iterator[tuple[Gateway, PtyPrinterSimulator]]:
    """The daemon (in this process) with a printer simulator behind a stable symlink."""
    sim = PtyPrinterSimulator(link=tmp_path / "printer").start()
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(PRINTER_CONFIG.format(register=tmp_path / "no-register", printer=sim.path),
                   encoding="utf-8")
    gateway = Gateway(load_settings(cfg), sync_factory=lambda s, g: None, web=False)
    gateway.start()
    try:
        assert _wait(lambda: gateway.status_data()["devices"]["condition"] == "ready")
        yield gateway, sim
    finally:
        gateway.stop()
        sim.stop()


def _pull(sim: PtyPrinterSimulator) -> None:
    """Unplug, then give the kernel the moment it takes to hang the pty up: from then on
    pyserial's ``reset_input_buffer`` raises ``termios.error``, as after a real unplug (a
    query sent at once may instead see an empty read, the case the old code handled)."""
    sim.unplug()
    time.sleep(0.3)


def _monitor(gateway: Gateway) -> PrinterMonitor:
    assert gateway.printer is not None
    return gateway.printer


def _printer_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("gatewayd.drivers.printer")]


def _unplug_and_replug_prints_the_waiting_slip_once(
    gateway: Gateway, sim: PtyPrinterSimulator, caplog: pytest.LogCaptureFixture,
    unplug: Callable[[], None], replug: Callable[[], None],
) -> dict[str, Any]:
    monitor = _monitor(gateway)
    caplog.set_level(logging.DEBUG, logger="gatewayd")
    unplug()
    polls = _polls_until(gateway, lambda d: d["condition"] == "offline", 2)
    offline = gateway.status_data()["devices"]
    assert polls is not None, f"still {offline['condition']} two polls after the unplug"
    assert offline["online"] is False and "応答しません" in offline["staff_message"]
    assert offline["last_error"], "offline without the error that made it so"
    # a slip queued while it is gone waits (nothing is lost, nothing printed)
    assert monitor.submit_slip(sample_content())
    for _ in range(3):
        assert _poll(gateway)["slips"]["pending"] == 1
    assert sim.printer.jobs() == []
    replug()
    assert _found_again(gateway, lambda d: d["condition"] == "ready"), (
        "the printer plugged back in is never found again")
    assert _wait(lambda: monitor.snapshot().slips_printed == 1)
    for _ in range(3):  # later polls print nothing more
        _poll(gateway)
    assert len(sim.printer.jobs()) == 1
    assert monitor.snapshot().slips_pending == 0
    assert gateway.status_data()["devices"]["last_error"] is None
    # one line per change, no traceback per poll
    lines = _printer_lines(caplog)
    assert not [r for r in lines if r.exc_info], "a traceback was logged"
    went_offline = [r for r in lines if r.levelno >= logging.WARNING and "offline" in r.message]
    assert len(went_offline) == 1, [r.message for r in went_offline]
    return offline


def test_printer_pty_killed_and_back_at_the_same_path(
    box: tuple[Gateway, PtyPrinterSimulator], caplog: pytest.LogCaptureFixture,
) -> None:
    gateway, sim = box
    _unplug_and_replug_prints_the_waiting_slip_once(gateway, sim, caplog, lambda: _pull(sim),
                                                    sim.replug)


@pytest.mark.parametrize("kind", ["hangup", "closed"])
def test_printer_port_raising_like_a_real_unplug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    """pyserial raises ``termios.error`` (hangup) or ``TypeError`` (descriptor gone): both are
    "the printer is not known to work", and a fresh open finds it again."""
    faults = SerialFaults().install(monkeypatch)
    sim = PtyPrinterSimulator(link=tmp_path / "printer").start()
    cfg = tmp_path / "gatewayd.toml"
    cfg.write_text(PRINTER_CONFIG.format(register=tmp_path / "no-register", printer=sim.path),
                   encoding="utf-8")
    gateway = Gateway(load_settings(cfg), sync_factory=lambda s, g: None, web=False)
    gateway.start()
    try:
        assert _wait(lambda: gateway.status_data()["devices"]["condition"] == "ready")
        opens = faults.opens
        offline = _unplug_and_replug_prints_the_waiting_slip_once(
            gateway, sim, caplog, lambda: faults.unplug(kind), faults.replug)
        assert ("error" if kind == "hangup" else "TypeError") in offline["last_error"]
        assert faults.raised[0] == ("error" if kind == "hangup" else "TypeError")
        assert faults.opens > opens, "the port was never reopened"
    finally:
        gateway.stop()
        sim.stop()


def test_reopen_backs_off_from_the_failure_and_resets_at_the_first_answer(
    box: tuple[Gateway, PtyPrinterSimulator], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the port is gone, opens are tried 1 s, 2 s, 4 s … after each failure, not at
    every poll; the first answer after the replug brings the backoff back to 1 s."""
    gateway, sim = box
    driver = _monitor(gateway)._driver
    clock = [1000.0]
    monkeypatch.setattr(driver, "_clock", lambda: clock[0])
    opens: list[float] = []
    factory = driver._factory

    def counting(settings: Any) -> Any:
        opens.append(clock[0])
        return factory(settings)

    monkeypatch.setattr(driver, "_factory", counting)
    sim.unplug()
    _poll(gateway)  # the failure, at 1000
    for _ in range(40):  # 0.1 s per poll, 4 s in all
        clock[0] += 0.1
        _poll(gateway)
    assert [round(t - 1000, 1) for t in opens] == [1.0, 3.0]  # +1 s, then +2 s
    sim.replug()
    clock[0] += 4.0  # the next try is due 4 s after the failure at 1003
    assert _poll(gateway)["condition"] == "ready"
    sim.unplug()
    _poll(gateway)
    failed_at = clock[0]
    clock[0] += 1.0  # back to 1 s
    _poll(gateway)
    assert round(opens[-1] - failed_at, 1) == 1.0


def test_drawer_through_a_pulled_printer(
    box: tuple[Gateway, PtyPrinterSimulator], caplog: pytest.LogCaptureFixture,
) -> None:
    """The drawer is read through the printer: printer gone = drawer unknown (not the last
    state), no kick goes out, and the same opening is seen again after the replug."""
    gateway, sim = box
    monitor = _monitor(gateway)
    sim.printer.set(drawer_open=True)
    assert _polls_until(gateway, lambda d: d["drawer"]["state"] == "open", 3)
    opened_at = monitor.snapshot().drawer.open_since
    _pull(sim)
    polls = _polls_until(gateway, lambda d: d["drawer"]["state"] == "unknown", 2)
    assert polls is not None, "the drawer of a pulled printer still reads its last state"
    with pytest.raises(PrinterUnavailable) as refused:
        monitor.kick_drawer()
    assert "ドロワー" in refused.value.staff_message
    assert sim.printer.kicks == []
    sim.replug()
    assert _found_again(gateway, lambda d: d["drawer"]["state"] == "open")
    assert monitor.snapshot().drawer.open_since == opened_at
    assert not [r for r in _printer_lines(caplog) if r.exc_info]


# --- the register link --------------------------------------------------------------------------

REGISTER_CONFIG = """
state_dir = "state"
poll_interval = 0.5
[[registers]]
store_code = "0001"
terminal_no = "01"
port = "{register}"
"""


class RegisterBox:
    """A register simulator behind a stable symlink and the daemon (no freee, no web)."""

    def __init__(self, tmp: Path) -> None:
        self.journal = generate_journal(3, 3, date(2025, 4, 7), receipts_per_day=10)
        self.sim = RegisterSimulator(self.journal, visible_days=1)
        self.port = tmp / "register"
        self.pty = self.sim.start_pty(self.port)
        cfg = tmp / "gatewayd.toml"
        cfg.write_text(REGISTER_CONFIG.format(register=self.port), encoding="utf-8")
        self.gateway = Gateway(load_settings(cfg), sync_factory=lambda s, g: None, web=False)
        self.gateway.start()
        self._loop = threading.Thread(target=self.gateway.run, daemon=True)
        self._loop.start()

    def link(self) -> dict[str, Any]:
        register: dict[str, Any] = self.gateway.status_data()["registers"][REGISTER_ID]
        return register

    def stored(self) -> int:
        return self.gateway.store.last_stored_record(REGISTER_ID)

    def stop(self) -> None:
        self.gateway.stop_event.set()
        self._loop.join(5)
        self.gateway.stop()
        self.sim.stop()


@pytest.fixture
def register_box(tmp_path: Path) -> Iterator[RegisterBox]:
    box = RegisterBox(tmp_path)
    try:
        assert _wait(lambda: box.stored() == box.sim.last_record_no and box.link()["link"] == "up")
        yield box
    finally:
        box.stop()


def _register_unplug_and_back(box: RegisterBox, caplog: pytest.LogCaptureFixture,
                              unplug: Callable[[], None], replug: Callable[[], None]) -> None:
    caplog.set_level(logging.DEBUG, logger="gatewayd")
    host = box.gateway.hosts[REGISTER_ID]
    downs = host.snapshot().counters.link_downs
    # pull it between two cycles, so the next exchange is the first to meet the dead port
    # (its S: reset_input_buffer, where pyserial raises termios.error)
    polled = host.snapshot().last_poll_at
    assert _wait(lambda: host.snapshot().last_poll_at != polled, 5)
    time.sleep(0.1)
    unplug()
    assert _wait(lambda: box.link()["link"] == "down", 5), "link still up after the unplug"
    state = host.snapshot()
    assert state.counters.link_downs == downs + 1
    assert isinstance(state.current_exception, DeviceError), state.current_exception
    assert box.link()["last_error"]
    box.sim.reveal_next_day()  # sales go on while the cable is out
    replug()
    assert _wait(lambda: box.link()["link"] == "up" and box.stored() == box.sim.last_record_no,
                 15), "the register plugged back in is never read again"
    records = box.gateway.store.records(REGISTER_ID)
    assert [n for n, _ in records] == list(range(1, box.sim.last_record_no + 1))
    lines = [r for r in caplog.records if r.name.startswith("gatewayd.register")]
    assert not [r for r in lines if r.exc_info], "a traceback was logged"


def test_register_pty_killed_and_back_at_the_same_path(
    register_box: RegisterBox, caplog: pytest.LogCaptureFixture,
) -> None:
    _register_unplug_and_back(register_box, caplog, register_box.sim.unplug,
                              register_box.sim.replug)


@pytest.mark.parametrize("kind", ["hangup", "closed"])
def test_register_port_raising_like_a_real_unplug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    faults = SerialFaults().install(monkeypatch)
    box = RegisterBox(tmp_path)
    try:
        assert _wait(lambda: box.stored() == box.sim.last_record_no and box.link()["link"] == "up")
        _register_unplug_and_back(box, caplog, lambda: faults.unplug(kind), faults.replug)
        assert faults.raised[0] == ("error" if kind == "hangup" else "TypeError")
    finally:
        box.stop()


class _BrokenTransport:
    """A port whose reads fail with something that is not a port error (a bug's kind)."""

    name = "broken"

    def read(self, n: int, timeout: float) -> bytes:
        raise RuntimeError("read on a half-closed port object")

    def write(self, data: bytes) -> None:
        pass

    def reset_input(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_register_unexpected_error_is_one_traceback_not_one_per_cycle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gatewayd")
    waits: list[float] = []
    host: RegisterHost

    def sleep(delay: float) -> None:  # the backoff waits, counted; five cycles in all
        waits.append(delay)
        if len(waits) >= 5:
            host.stop_event.set()

    host = RegisterHost(HostConfig(REGISTER_ID, "broken"), MemorySink(),
                        transport_factory=_BrokenTransport, sleep=sleep)
    host.run()
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0]  # closed and reopened with backoff each time
    state = host.snapshot()
    assert not state.link_up and "half-closed" in (state.current_error or "")
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, [r.message for r in tracebacks]


def test_printer_open_raising_termios_error_is_one_clean_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pyserial lets termios.error out of its own open (tcflush there): the link says so,
    tries the port once, and leaves nothing open."""
    faults = SerialFaults().install(monkeypatch)
    with PtyPrinterSimulator(link=tmp_path / "printer") as sim:
        settings = PrinterSettings(device=sim.path, status_timeout=0.1)
        faults.unplug("closed")
        raised = len(faults.raised)
        with pytest.raises(PrinterUnavailable, match=r"cannot open printer .*termios\.error"):
            SerialLink(settings)
        assert len(faults.raised) == raised + 1  # one open tried, not a second behind it
        faults.replug()
        link = SerialLink(settings)
        try:
            assert link.query(b"\x10\x04\x01", 1.0) is not None
        finally:
            link.close()


def test_register_port_gone_is_said_once_not_at_every_reopen(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gatewayd")
    waits: list[float] = []
    host: RegisterHost

    def sleep(delay: float) -> None:
        waits.append(delay)
        if len(waits) >= 5:
            host.stop_event.set()

    def gone() -> Any:
        raise OSError(2, "No such file or directory: '/dev/serial/by-id/usb-register'")

    host = RegisterHost(HostConfig(REGISTER_ID, "/dev/serial/by-id/usb-register"),
                        MemorySink(), transport_factory=gone, sleep=sleep)
    host.run()
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0]
    state = host.snapshot()
    assert state.counters.open_failures == 5 and not state.link_up
    assert isinstance(state.current_exception, DeviceError)
    said = [r for r in caplog.records if r.name == "gatewayd.register"
            and r.levelno >= logging.INFO]
    assert len(said) == 1 and "No such file" in said[0].getMessage()
