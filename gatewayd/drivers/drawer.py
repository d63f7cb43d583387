"""The cash drawer on the printer's DK port: its state, the open-too-long alert, the kick.

State comes from bit 2 of the ``DLE EOT 1`` reply (the level of connector pin 3). Which level
means "open" depends on how the drawer's switch is wired, so it is a per-install setting
(``[drawer] open_level``) found with ``calibrate_drawer`` ("open the drawer now"). Until it is
set the level is shown but the drawer is UNKNOWN and never alerts.

The kick (``ESC p m t1 t2``) is built here but only sent on an explicit command
(``gatewayd drawer kick``, the status page): nothing in the poll loop ever opens the drawer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gatewayd.drivers.printer_settings import DrawerSettings, PinLevel


class DrawerState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    UNKNOWN = "unknown"


def kick_command(settings: DrawerSettings) -> bytes:
    """``ESC p m t1 t2``: pulse pin 2 (m=0) or pin 5 (m=1) for ``kick_pulse_ms``."""
    m = 0 if settings.kick_pin == 2 else 1
    t = max(1, min(255, settings.kick_pulse_ms // 2))
    return bytes([0x1B, 0x70, m, t, t])


@dataclass(frozen=True, slots=True)
class DrawerAlert:
    """The drawer has been open longer than ``[drawer] alert_after`` (sent once per opening)."""

    opened_at: datetime
    open_for: float

    @property
    def staff_message(self) -> str:
        minutes = int(self.open_for // 60)
        span = f"{minutes}分以上" if minutes >= 1 else f"{int(self.open_for)}秒以上"
        return f"レジのドロワーが{span}開いたままです。閉めてください。"


@dataclass(frozen=True, slots=True)
class DrawerSnapshot:
    state: DrawerState
    pin3_high: bool | None
    calibrated: bool
    open_since: datetime | None
    open_for: float | None
    alerting: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "pin3_high": self.pin3_high,
            "calibrated": self.calibrated,
            "open_since": self.open_since.isoformat() if self.open_since else None,
            "open_for": self.open_for,
            "alerting": self.alerting,
        }


class DrawerWatch:
    """Turns pin-3 readings into OPEN/CLOSED/UNKNOWN and one alert per long opening.

    A reading of None (printer silent) makes the state UNKNOWN but keeps the opening's start:
    a drawer open across a printer glitch is still the same opening.
    """

    def __init__(self, settings: DrawerSettings, *,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now().astimezone()) -> None:
        self.settings = settings
        self._clock = clock
        self._now = now
        self._pin3: bool | None = None
        self._state = DrawerState.UNKNOWN
        self._opened_mono: float | None = None
        self._opened_at: datetime | None = None
        self._alerted = False

    def update(self, pin3_high: bool | None) -> DrawerAlert | None:
        """Feed one reading; returns an alert the first time an opening runs too long."""
        self._pin3 = pin3_high
        is_open = None if pin3_high is None else self.settings.is_open(pin3_high)
        if is_open is None:
            self._state = DrawerState.UNKNOWN
            return None
        if not is_open:
            self._state = DrawerState.CLOSED
            self._opened_mono = self._opened_at = None
            self._alerted = False
            return None
        self._state = DrawerState.OPEN
        if self._opened_mono is None:
            self._opened_mono = self._clock()
            self._opened_at = self._now()
        open_for = self._clock() - self._opened_mono
        if not self._alerted and open_for >= self.settings.alert_after:
            self._alerted = True
            assert self._opened_at is not None
            return DrawerAlert(opened_at=self._opened_at, open_for=open_for)
        return None

    def snapshot(self) -> DrawerSnapshot:
        open_for = (self._clock() - self._opened_mono) if self._opened_mono is not None else None
        return DrawerSnapshot(
            state=self._state,
            pin3_high=self._pin3,
            calibrated=self.settings.open_level is not None,
            open_since=self._opened_at,
            open_for=open_for,
            alerting=self._alerted,
        )


@dataclass(frozen=True, slots=True)
class DrawerCalibration:
    """What ``calibrate_drawer`` saw; ``open_level`` None when no change was seen."""

    closed_level: PinLevel | None
    open_level: PinLevel | None
    message: str

    @property
    def ok(self) -> bool:
        return self.open_level is not None

    @property
    def setting_line(self) -> str | None:
        """The line to put under ``[drawer]`` in the configuration file."""
        return f'open_level = "{self.open_level.value}"' if self.open_level else None


def _level(high: bool) -> PinLevel:
    return PinLevel.HIGH if high else PinLevel.LOW


def calibrate_drawer(
    read_pin3: Callable[[], bool | None],
    *,
    say: Callable[[str], None] = print,
    ready: Callable[[], None] | None = None,
    timeout: float = 30.0,
    interval: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> DrawerCalibration:
    """Find which pin-3 level means "open", with staff at the drawer.

    Asks for the drawer to be closed and reads the level (``ready`` waits for staff, e.g.
    ``input``), then says "open the drawer now" and watches for the level to change within
    ``timeout``. The new level is the open level. ``read_pin3`` returns None when the printer
    does not answer. ``gatewayd doctor`` calls this with the printer's status query.
    """
    say("ドロワーを閉めてください。")
    if ready is not None:
        ready()
    closed = read_pin3()
    if closed is None:
        return DrawerCalibration(None, None,
                                 "プリンターが応答しません。電源とケーブルを確認してください。")
    say("今、ドロワーを開けてください(鍵またはレジの操作で)。")
    deadline = clock() + timeout
    while clock() < deadline:
        level = read_pin3()
        if level is not None and level != closed:
            open_level = _level(level)
            return DrawerCalibration(
                _level(closed), open_level,
                f"開いた状態はピン3が{'HIGH' if level else 'LOW'}です。"
                f'設定ファイルの[drawer]に open_level = "{open_level.value}" と書いてください。')
        sleep(interval)
    return DrawerCalibration(
        _level(closed), None,
        "ドロワーの開閉を検出できませんでした。ドロワーのケーブルがプリンターのDK端子に"
        "つながっているか確認してください。")
