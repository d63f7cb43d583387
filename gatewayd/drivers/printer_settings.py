"""Settings of the receipt printer, its cash drawer and the close slip (``[printer]``,
``[drawer]``, ``[slip]`` tables).

Each ``parse_*`` reads one table through ``TableReader`` and calls ``finish()`` so that a typo
is an error naming the key. ``gatewayd.config`` calls them; ``parse_device_tables`` does the
same from a whole parsed TOML document for commands that run before that wiring exists.

    [printer]
    device = "/dev/serial/by-id/usb-EPSON_TM-T88V_0001-if00"   # a serial printer, or
    # usb = "04b8:0202"            # a USB printer (vendor:product, hex)
    # usb_serial = "J7SF012345"    # when several printers of one model are plugged in
    baudrate = 38400
    flow_control = "none"          # none | rtscts | xonxoff
    poll_interval = 5.0            # seconds between status polls
    status_timeout = 0.5           # seconds to wait for each DLE EOT reply
    columns = 42                   # half-width characters per line (80 mm: 42 or 48; 58 mm: 32)

    [drawer]
    open_level = "high"            # pin-3 level meaning "open"; unset = not calibrated
    alert_after = 300              # seconds open before an alert
    kick_pin = 2                   # 2 or 5
    kick_pulse_ms = 100

    [slip]
    enabled = true                 # print a slip after each close (default on)
    status_url = "http://gateway.local:8080/"
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from gatewayd.errors import ConfigError
from gatewayd.settings_reader import TableReader

BAUDRATES = (2400, 4800, 9600, 19200, 38400, 57600, 115200)
FLOW_CONTROLS = ("none", "rtscts", "xonxoff")
_USB_ID = r"[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}"


class PinLevel(StrEnum):
    HIGH = "high"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class PrinterSettings:
    """Where the printer is and how often it is asked for its status.

    Exactly one of ``device`` (serial path) or ``usb_vendor``/``usb_product`` is set.
    ``usb_in_ep``/``usb_out_ep`` None = the first bulk endpoints of interface 0.
    """

    device: str | None = None
    usb_vendor: int | None = None
    usb_product: int | None = None
    usb_serial: str | None = None
    usb_in_ep: int | None = None
    usb_out_ep: int | None = None
    baudrate: int = 9600
    flow_control: str = "none"
    poll_interval: float = 5.0
    status_timeout: float = 0.5
    write_timeout: float = 30.0
    columns: int = 42

    @property
    def is_usb(self) -> bool:
        return self.device is None

    def describe(self) -> str:
        if self.device is not None:
            return f"serial {self.device}"
        text = f"usb {self.usb_vendor or 0:04x}:{self.usb_product or 0:04x}"
        return text + (f" serial {self.usb_serial}" if self.usb_serial else "")


@dataclass(frozen=True, slots=True)
class DrawerSettings:
    """The drawer on the printer's DK port. ``open_level`` None = not calibrated: the level
    is shown but no open/closed state and no alert."""

    open_level: PinLevel | None = None
    alert_after: float = 300.0
    kick_pin: int = 2
    kick_pulse_ms: int = 100

    def is_open(self, pin3_high: bool) -> bool | None:
        if self.open_level is None:
            return None
        return pin3_high == (self.open_level is PinLevel.HIGH)


@dataclass(frozen=True, slots=True)
class SlipSettings:
    """The close slip: on by default; ``status_url`` is the QR code's target when set."""

    enabled: bool = True
    status_url: str | None = None
    qr_size: int = 6
    max_attempts: int = 3


def _usb_id(text: str) -> tuple[int, int]:
    vendor, product = text.split(":")
    return int(vendor, 16), int(product, 16)


def parse_printer(reader: TableReader) -> PrinterSettings:
    """The ``[printer]`` table: ``device`` or ``usb`` (exactly one), line and poll settings."""
    device = reader.opt_str("device")
    usb = reader.opt_str("usb", pattern=_USB_ID)
    if (device is None) == (usb is None):
        raise ConfigError("set exactly one of device or usb", key=reader.key("device"),
                          expected='device = "/dev/..." for serial or usb = "VVVV:PPPP"')
    usb_serial = reader.opt_str("usb_serial")
    in_ep = reader.opt_int("usb_in_ep", minimum=0x81, maximum=0x8F)
    out_ep = reader.opt_int("usb_out_ep", minimum=0x01, maximum=0x0F)
    if device is not None and (usb_serial or in_ep is not None or out_ep is not None):
        raise ConfigError("only for a USB printer", key=reader.key("usb_serial"),
                          expected="no usb_* keys with device")
    vendor, product = _usb_id(usb) if usb is not None else (None, None)
    settings = PrinterSettings(
        device=device,
        usb_vendor=vendor,
        usb_product=product,
        usb_serial=usb_serial,
        usb_in_ep=in_ep,
        usb_out_ep=out_ep,
        baudrate=reader.int("baudrate", 9600, choices=BAUDRATES),
        flow_control=reader.str("flow_control", "none", choices=FLOW_CONTROLS),
        poll_interval=reader.float("poll_interval", 5.0, minimum=0.05, maximum=3600.0),
        status_timeout=reader.float("status_timeout", 0.5, minimum=0.05, maximum=10.0),
        write_timeout=reader.float("write_timeout", 30.0, minimum=1.0, maximum=600.0),
        columns=reader.int("columns", 42, minimum=24, maximum=64),
    )
    reader.finish()
    return settings


def parse_drawer(reader: TableReader) -> DrawerSettings:
    """The ``[drawer]`` table (all keys optional)."""
    level = (reader.str("open_level", required=True, choices=[p.value for p in PinLevel])
             if reader.has("open_level") else None)
    settings = DrawerSettings(
        open_level=PinLevel(level) if level else None,
        alert_after=reader.float("alert_after", 300.0, minimum=1.0, maximum=86400.0),
        kick_pin=reader.int("kick_pin", 2, choices=(2, 5)),
        kick_pulse_ms=reader.int("kick_pulse_ms", 100, minimum=2, maximum=510),
    )
    reader.finish()
    return settings


def parse_slip(reader: TableReader) -> SlipSettings:
    """The ``[slip]`` table (all keys optional; printing is on unless ``enabled = false``)."""
    url = reader.opt_str("status_url", pattern=r"https?://\S+")
    settings = SlipSettings(
        enabled=reader.bool("enabled", True),
        status_url=url,
        qr_size=reader.int("qr_size", 6, minimum=1, maximum=16),
        max_attempts=reader.int("max_attempts", 3, minimum=1, maximum=20),
    )
    reader.finish()
    return settings


def parse_device_tables(
    document: Mapping[str, Any],
) -> tuple[PrinterSettings | None, DrawerSettings, SlipSettings]:
    """The three tables from a whole TOML document; ``[printer]`` absent → None."""
    top = TableReader(document, "")
    printer = parse_printer(top.table("printer")) if top.has("printer") else None
    drawer = parse_drawer(top.table("drawer"))
    slip = parse_slip(top.table("slip"))
    return printer, drawer, slip


def device_settings_from(
    settings: object,
) -> tuple[PrinterSettings | None, DrawerSettings, SlipSettings]:
    """The three settings from a loaded ``gatewayd.config.Settings``.

    Uses its ``printer``/``drawer``/``slip`` fields when config.py has them, else parses the
    raw tables it keeps in ``extra`` (duck-typed so this module does not import config).
    """
    if hasattr(settings, "printer"):
        drawer = getattr(settings, "drawer", None)
        slip = getattr(settings, "slip", None)
        return (
            getattr(settings, "printer", None),
            drawer if isinstance(drawer, DrawerSettings) else DrawerSettings(),
            slip if isinstance(slip, SlipSettings) else SlipSettings(),
        )
    extra = getattr(settings, "extra", None)
    return parse_device_tables(extra if isinstance(extra, Mapping) else {})
