"""``[[taps]]``: the registers read from their print stream (docs/tap.md, "Configuration").

Parsed with ``TableReader`` like every table, so a wrong key names itself. The template is a
shipped name (``label-yen`` → ``templates/label-yen.toml`` beside the configuration file, then
/etc/gatewayd/templates, then this repository's etc/templates) or a path to a TOML file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatewayd.errors import ConfigError
from gatewayd.settings_reader import TableReader

CODE_PATTERN = r"[A-Za-z0-9]{1,8}"
BAUDRATES = (9600, 19200, 38400, 57600, 115200)
TRANSPORTS = ("passive-serial", "serial-pass-through", "tcp-pass-through")
SHIPPED_DIR = Path(__file__).resolve().parent.parent.parent / "etc" / "templates"
SYSTEM_DIR = Path("/etc/gatewayd/templates")
_HOST_PORT = r"[A-Za-z0-9.\-:\[\]]+:\d{1,5}"


@dataclass(frozen=True, slots=True)
class TapSettings:
    store_code: str
    terminal_no: str
    template: str
    transport: str
    port: str | None = None  # the register side (serial)
    printer_port: str | None = None  # the printer side (pass-through) or its answers (passive)
    baudrate: int = 115200
    listen: str | None = None  # tcp: host:port the register prints to
    printer: str | None = None  # tcp: host:port of the LAN printer
    idle_gap: float = 2.0
    store_name: str | None = None
    section: str | None = None
    tags: tuple[str, ...] | None = None

    @property
    def tap_id(self) -> str:
        """``{store_code}-{terminal_no}``, the same key as a register's in the outbox."""
        return f"{self.store_code}-{self.terminal_no}"


def split_host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def parse_tap(reader: TableReader) -> TapSettings:
    transport = reader.str("transport", required=True, choices=TRANSPORTS)
    tap = TapSettings(
        store_code=reader.str("store_code", pattern=CODE_PATTERN, required=True),
        terminal_no=reader.str("terminal_no", pattern=CODE_PATTERN, required=True),
        template=reader.str("template", required=True),
        transport=transport,
        port=reader.opt_str("port"),
        printer_port=reader.opt_str("printer_port"),
        baudrate=reader.int("baudrate", 115200, choices=BAUDRATES),
        listen=reader.opt_str("listen", pattern=_HOST_PORT),
        printer=reader.opt_str("printer", pattern=_HOST_PORT),
        idle_gap=reader.float("idle_gap", 2.0, minimum=0.05, maximum=600.0),
        store_name=reader.opt_str("store_name"),
        section=reader.opt_str("section"),
        tags=reader.str_list("tags") if reader.has("tags") else None,
    )
    need = {
        "passive-serial": ("port",),
        "serial-pass-through": ("port", "printer_port"),
        "tcp-pass-through": ("listen", "printer"),
    }[transport]
    for key in need:
        if getattr(tap, key) is None:
            raise ConfigError("missing", key=reader.key(key),
                              expected=f"a value for transport {transport}")
    reader.finish()
    return tap


def parse_taps(data: object) -> tuple[TapSettings, ...]:
    """The ``[[taps]]`` array (absent: none)."""
    top = TableReader({"taps": data} if data is not None else {}, "")
    taps = tuple(parse_tap(r) for r in top.tables("taps"))
    seen: set[str] = set()
    for tap in taps:
        if tap.tap_id in seen:
            raise ConfigError("duplicate tap", key="taps", value=tap.tap_id,
                              expected="unique store_code and terminal_no pairs")
        seen.add(tap.tap_id)
    return taps


def check_taps(data: object, registers: Sequence[Any]) -> tuple[TapSettings, ...]:
    """``[[taps]]`` parsed, each tap's key distinct from every register's (one outbox)."""
    taps = parse_taps(data)
    register_ids = {r.register_id for r in registers}
    for i, tap in enumerate(taps):
        if tap.tap_id in register_ids:
            raise ConfigError("same store_code and terminal_no as a register",
                              key=f"taps[{i}]", value=tap.tap_id,
                              expected="a terminal that is not also a [[registers]] table")
    return taps


def template_path(name: str, config_source: Path | None) -> Path:
    """Where the template named in a ``[[taps]]`` table is."""
    if "/" in name or name.endswith(".toml"):
        path = Path(name)
        if not path.is_absolute() and config_source is not None:
            path = config_source.parent / path
        return path
    if re.fullmatch(r"[A-Za-z0-9_.-]+", name) is None:
        raise ConfigError("not a template name", key="taps.template", value=name,
                          expected="a shipped template name or a path to a .toml file")
    dirs = [SYSTEM_DIR, SHIPPED_DIR]
    if config_source is not None:
        dirs.insert(0, config_source.parent / "templates")
    for d in dirs:
        candidate = d / f"{name}.toml"
        if candidate.is_file():
            return candidate
    raise ConfigError("no such template", key="taps.template", value=name,
                      expected="one of etc/templates/*.toml or a path")
