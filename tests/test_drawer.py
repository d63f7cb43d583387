"""The cash drawer: polarity, the open-too-long alert (injected clock), kick only on command,
``gatewayd drawer kick`` and the doctor's calibration."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from printer_fixtures import JST, running_pty_printer, serial_settings

from gatewayd import cli
from gatewayd.drivers.drawer import (
    DrawerAlert,
    DrawerState,
    DrawerWatch,
    calibrate_drawer,
    kick_command,
)
from gatewayd.drivers.printer import PrinterMonitor, calibrate_drawer_on, kick_once
from gatewayd.drivers.printer_settings import DrawerSettings, PinLevel, PrinterSettings
from gatewayd.errors import PrinterUnavailable
from gatewayd.sim.printer import PtyPrinterSimulator


@pytest.fixture
def pty_printer() -> Iterator[PtyPrinterSimulator]:
    yield from running_pty_printer()


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


WALL = datetime(2025, 1, 10, 18, 0, tzinfo=JST)


@pytest.mark.parametrize(("level", "high_means_open"), [(PinLevel.HIGH, True),
                                                        (PinLevel.LOW, False)])
def test_polarity(level: PinLevel, high_means_open: bool) -> None:
    settings = DrawerSettings(open_level=level)
    assert settings.is_open(True) is high_means_open
    assert settings.is_open(False) is not high_means_open
    watch = DrawerWatch(settings, clock=FakeClock(), now=lambda: WALL)
    watch.update(True)
    assert watch.snapshot().state is (DrawerState.OPEN if high_means_open else DrawerState.CLOSED)
    watch.update(False)
    assert watch.snapshot().state is (DrawerState.CLOSED if high_means_open else DrawerState.OPEN)


def test_not_calibrated_shows_the_level_but_no_state() -> None:
    watch = DrawerWatch(DrawerSettings(open_level=None, alert_after=1), clock=FakeClock())
    assert watch.update(True) is None
    snap = watch.snapshot()
    assert snap.state is DrawerState.UNKNOWN and snap.pin3_high is True and not snap.calibrated


def test_alert_once_after_the_set_time() -> None:
    clock = FakeClock()
    watch = DrawerWatch(DrawerSettings(open_level=PinLevel.HIGH, alert_after=120),
                        clock=clock, now=lambda: WALL)
    assert watch.update(False) is None
    assert watch.update(True) is None  # opened at t=1000
    clock.t += 119
    assert watch.update(True) is None
    clock.t += 1
    alert = watch.update(True)
    assert alert is not None and alert.open_for == 120 and alert.opened_at == WALL
    assert "2分以上" in alert.staff_message
    clock.t += 600
    assert watch.update(True) is None  # once per opening
    assert watch.snapshot().alerting and watch.snapshot().open_for == 720
    assert watch.update(None) is None  # printer silent: unknown, same opening kept
    assert watch.snapshot().state is DrawerState.UNKNOWN
    assert watch.snapshot().open_since == WALL
    assert watch.update(False) is None
    assert not watch.snapshot().alerting and watch.snapshot().open_since is None
    assert watch.update(True) is None  # a new opening starts a new count
    clock.t += 120
    assert watch.update(True) is not None


def test_kick_command_bytes() -> None:
    assert kick_command(DrawerSettings()) == b"\x1bp\x00\x32\x32"
    assert kick_command(DrawerSettings(kick_pin=5, kick_pulse_ms=200)) == b"\x1bp\x01\x64\x64"


@pytest.mark.parametrize("wiring", [PinLevel.HIGH, PinLevel.LOW])
def test_monitor_alert_over_the_pty(pty_printer: PtyPrinterSimulator, wiring: PinLevel) -> None:
    """GIVEN a drawer wired so that ``wiring`` means open, and the matching setting WHEN the
    drawer stays open past alert_after THEN one alert is raised, and polls never kick."""
    sim = pty_printer.printer
    sim.set(drawer_open_level=wiring, drawer_open=False)
    clock = FakeClock()
    alerts: list[DrawerAlert] = []
    monitor = PrinterMonitor(serial_settings(pty_printer),
                             DrawerSettings(open_level=wiring, alert_after=60),
                             on_drawer_alert=alerts.append, clock=clock, now=lambda: WALL)
    try:
        monitor.poll_once()
        assert monitor.snapshot().drawer.state is DrawerState.CLOSED
        sim.set(drawer_open=True)
        monitor.poll_once()
        assert monitor.snapshot().drawer.state is DrawerState.OPEN
        clock.t += 59
        monitor.poll_once()
        assert alerts == []
        clock.t += 2
        monitor.poll_once()
        monitor.poll_once()
        assert len(alerts) == 1 and alerts[0].open_for == 61
        assert monitor.snapshot().to_dict()["drawer"] == {
            "state": "open", "pin3_high": wiring is PinLevel.HIGH, "calibrated": True,
            "open_since": WALL.isoformat(), "open_for": 61.0, "alerting": True}
        sim.set(drawer_open=False)
        monitor.poll_once()
        assert monitor.snapshot().drawer.state is DrawerState.CLOSED
    finally:
        monitor.stop()
    assert sim.kicks == [] and b"\x1bp" not in sim.printed


def test_wrong_polarity_setting_reads_inverted(pty_printer: PtyPrinterSimulator) -> None:
    pty_printer.printer.set(drawer_open_level=PinLevel.LOW, drawer_open=False)
    monitor = PrinterMonitor(serial_settings(pty_printer),
                             DrawerSettings(open_level=PinLevel.HIGH))
    try:
        monitor.poll_once()
        assert monitor.snapshot().drawer.state is DrawerState.OPEN  # why calibration matters
    finally:
        monitor.stop()


def test_kick_only_on_command(pty_printer: PtyPrinterSimulator) -> None:
    sim = pty_printer.printer
    monitor = PrinterMonitor(serial_settings(pty_printer),
                             DrawerSettings(open_level=PinLevel.HIGH))
    try:
        for _ in range(5):
            monitor.poll_once()
        assert sim.kicks == []
        monitor.kick_drawer()
        assert sim.wait_for(lambda s: len(s.kicks) == 1, 2.0)
        assert (sim.kicks[0].pin, sim.kicks[0].on_ms) == (2, 100)
        monitor.poll_once()
        assert monitor.snapshot().drawer.state is DrawerState.OPEN
    finally:
        monitor.stop()
    assert len(sim.kicks) == 1


@pytest.mark.parametrize("state", [{"paper_out": True}, {"cover_open": True},
                                   {"silent": True}])
def test_kick_refused_when_the_printer_cannot_take_it(pty_printer: PtyPrinterSimulator,
                                                      state: dict[str, bool]) -> None:
    """A kick left in the buffer of an offline printer would open the drawer later."""
    sim = pty_printer.printer
    sim.set(**state)
    monitor = PrinterMonitor(serial_settings(pty_printer), DrawerSettings())
    try:
        with pytest.raises(PrinterUnavailable) as caught:
            monitor.kick_drawer()
        assert "ドロワーを開けられません" in caught.value.staff_message
    finally:
        monitor.stop()
    assert sim.kicks == [] and b"\x1bp" not in sim.lost


def _config(tmp_path: Path, printer_table: str) -> Path:
    path = tmp_path / "gatewayd.toml"
    path.write_text(
        f'state_dir = "{tmp_path}"\n'
        '[[registers]]\nstore_code = "0001"\nterminal_no = "01"\nport = "/dev/null"\n'
        + printer_table, encoding="utf-8")
    return path


def test_drawer_kick_command(pty_printer: PtyPrinterSimulator, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, f'[printer]\ndevice = "{pty_printer.port}"\n'
                               '[drawer]\nkick_pin = 5\nkick_pulse_ms = 120\n')
    assert cli.main(["drawer", "kick", "--config", str(config)]) == 0
    sim = pty_printer.printer
    assert sim.wait_for(lambda s: len(s.kicks) == 1, 2.0)
    assert (sim.kicks[0].pin, sim.kicks[0].on_ms) == (5, 120)
    assert "ドロワーを開く信号を送りました" in capsys.readouterr().out


def test_drawer_kick_command_refused_when_paper_out(pty_printer: PtyPrinterSimulator,
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pty_printer.printer.set(paper_out=True)
    config = _config(tmp_path, f'[printer]\ndevice = "{pty_printer.port}"\n')
    assert cli.main(["drawer", "kick", "--config", str(config)]) == 2
    assert "ドロワーを開けられません" in capsys.readouterr().err
    assert pty_printer.printer.kicks == []


def test_drawer_kick_without_printer_is_a_config_error(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    config = _config(tmp_path, "")
    assert cli.main(["drawer", "kick", "--config", str(config)]) == 2
    assert "printer" in capsys.readouterr().err


@pytest.mark.parametrize("wiring", [PinLevel.HIGH, PinLevel.LOW])
def test_calibration_finds_the_open_level(pty_printer: PtyPrinterSimulator,
                                          wiring: PinLevel) -> None:
    sim = pty_printer.printer
    sim.set(drawer_open_level=wiring, drawer_open=False)
    said: list[str] = []

    def say(text: str) -> None:
        said.append(text)
        if "開けて" in text:  # staff opens the drawer when asked
            sim.set(drawer_open=True)

    result = calibrate_drawer_on(serial_settings(pty_printer), say=say, timeout=3.0)
    assert result.ok and result.open_level is wiring
    assert result.setting_line == f'open_level = "{wiring.value}"'
    assert said[0].startswith("ドロワーを閉めて") and "open_level" in result.message


def test_calibration_without_change_says_so() -> None:
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        clock.t += seconds

    result = calibrate_drawer(lambda: False, say=lambda _: None, timeout=5, clock=clock,
                              sleep=sleep)
    assert not result.ok and result.closed_level is PinLevel.LOW
    assert "検出できませんでした" in result.message
    silent = calibrate_drawer(lambda: None, say=lambda _: None)
    assert not silent.ok and "応答しません" in silent.message


class _StatusOnlyLink:
    """A printer that answers DLE EOT n with fixed bytes and records every write."""

    def __init__(self, replies: dict[int, int]) -> None:
        self.replies = replies
        self.written: list[bytes] = []
        self.description = "test printer"

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def query(self, request: bytes, timeout: float) -> int | None:
        return self.replies[request[-1]]

    def wait_sent(self, timeout: float) -> None: ...

    def close(self) -> None: ...


# cover open (n=2 bit 2) or paper end (n=4 bits 5-6, n=2 bit 5) with n=1's offline bit clear
@pytest.mark.parametrize("replies", [
    {1: 0x12, 2: 0x16, 3: 0x12, 4: 0x12},
    {1: 0x12, 2: 0x12, 3: 0x12, 4: 0x72},
    {1: 0x12, 2: 0x32, 3: 0x12, 4: 0x12},
], ids=["cover-open", "paper-end-sensor", "paper-end-stop"])
def test_kick_refused_on_cover_open_or_paper_end_without_the_offline_bit(
        replies: dict[int, int]) -> None:
    link = _StatusOnlyLink(replies)
    printer = PrinterSettings(device="/dev/null")
    with pytest.raises(PrinterUnavailable) as caught:
        kick_once(printer, DrawerSettings(), link_factory=lambda _: link)
    assert "ドロワーを開けられません" in caught.value.staff_message
    monitor = PrinterMonitor(printer, DrawerSettings(), link_factory=lambda _: link)
    try:
        with pytest.raises(PrinterUnavailable):
            monitor.kick_drawer()
    finally:
        monitor.stop()
    assert not any(b"\x1bp" in data for data in link.written)


def test_kick_goes_out_when_paper_is_only_near_its_end() -> None:
    link = _StatusOnlyLink({1: 0x12, 2: 0x12, 3: 0x12, 4: 0x1E})
    kick_once(PrinterSettings(device="/dev/null"), DrawerSettings(),
              link_factory=lambda _: link)
    assert any(data.startswith(b"\x1bp") for data in link.written)
