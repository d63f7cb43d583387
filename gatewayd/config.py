"""The configuration file: TOML → typed, frozen settings.

A wrong file gets a ``ConfigError`` naming the key, the value and what is expected, and the
daemon does not start. Each part of the gateway parses its own table with ``TableReader``;
this module only assembles them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatewayd.drivers.printer_settings import parse_device_tables
from gatewayd.errors import ConfigError
from gatewayd.settings_reader import TableReader
from gatewayd.sync.freee_settings import parse_freee
from gatewayd.sync.mapping_settings import parse_mapping
from gatewayd.tap.settings import check_taps
from gatewayd.web.settings import parse_web

CODE_PATTERN = r"[A-Za-z0-9]{1,8}"
BAUDRATES = (9600, 19200, 38400, 57600, 115200)
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_CONFIG_PATH = Path("/etc/gatewayd/gatewayd.toml")


@dataclass(frozen=True, slots=True)
class RegisterSettings:
    """One register (terminal) the box reads, and its per-store mapping overrides."""

    store_code: str
    terminal_no: str
    port: str
    baudrate: int = 115200
    store_name: str | None = None
    section: str | None = None
    tags: tuple[str, ...] | None = None

    @property
    def register_id(self) -> str:
        """Stable key of this terminal in the stores: ``{store_code}-{terminal_no}``."""
        return f"{self.store_code}-{self.terminal_no}"


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    level: str = "info"
    journald: bool | None = None  # None: use journald when running under systemd


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the daemon needs, checked once at start."""

    state_dir: Path
    registers: tuple[RegisterSettings, ...]
    poll_interval: float = 1.0
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    source: Path | None = None
    # Tables owned by other parts, kept raw until their parsers are wired in.
    extra: dict[str, Any] = field(default_factory=dict)

    def register(self, register_id: str) -> RegisterSettings:
        for reg in self.registers:
            if reg.register_id == register_id:
                return reg
        raise ConfigError(
            "no such register",
            key="registers",
            value=register_id,
            expected="a store_code-terminal_no of the configuration",
        )


def parse_register(reader: TableReader) -> RegisterSettings:
    reg = RegisterSettings(
        store_code=reader.str("store_code", pattern=CODE_PATTERN, required=True),
        terminal_no=reader.str("terminal_no", pattern=CODE_PATTERN, required=True),
        port=reader.str("port", required=True),
        baudrate=reader.int("baudrate", 115200, choices=BAUDRATES),
        store_name=reader.opt_str("store_name"),
        section=reader.opt_str("section"),
        tags=reader.str_list("tags") if reader.has("tags") else None,
    )
    reader.finish()
    return reg


def parse_settings(data: dict[str, Any], source: Path | None = None) -> Settings:
    """Build settings from a parsed TOML document (pure: no file access)."""
    top = TableReader(data, "")
    state_dir = Path(top.str("state_dir", "/var/lib/gatewayd"))
    if not state_dir.is_absolute():
        if source is None:
            raise ConfigError(
                "must be an absolute path",
                key="state_dir",
                value=str(state_dir),
                expected="an absolute directory path",
            )
        state_dir = (source.parent / state_dir).resolve()
    poll_interval = top.float("poll_interval", 1.0, minimum=0.05, maximum=60.0)
    log = top.table("logging")
    logging = LoggingSettings(
        level=log.str("level", "info", choices=LOG_LEVELS),
        journald=log.bool("journald", False) if log.has("journald") else None,
    )
    log.finish()
    registers = tuple(parse_register(r) for r in top.tables("registers"))
    if not registers and not top.has("taps"):  # a shop may have only print taps (docs/tap.md)
        raise ConfigError(
            "at least one register is needed",
            key="registers",
            expected="one or more [[registers]] tables",
        )
    seen: set[str] = set()
    for reg in registers:
        if reg.register_id in seen:
            raise ConfigError(
                "duplicate register",
                key="registers",
                value=reg.register_id,
                expected="unique store_code and terminal_no pairs",
            )
        seen.add(reg.register_id)
    extra = {
        name: top.raw(name)
        for name in ("mapping", "freee", "printer", "drawer", "slip", "web", "taps")
        if top.has(name)
    }
    top.finish()
    validate_parts(extra, registers)
    return Settings(
        state_dir=state_dir,
        registers=registers,
        poll_interval=poll_interval,
        logging=logging,
        source=source,
        extra=extra,
    )


def validate_parts(
    extra: dict[str, Any], registers: tuple[RegisterSettings, ...] = ()
) -> None:
    """Check the tables other parts own, so a wrong key stops the daemon at start.

    The parts read their tables from ``Settings.extra`` with these same parsers. Each part
    owns its section's parser and none imports this module: the imports run one way.
    """
    parse_mapping(TableReader(extra.get("mapping", {}), "mapping"))
    parse_freee(TableReader(extra.get("freee", {}), "freee"))
    parse_web(TableReader(extra.get("web", {}), "web"))
    parse_device_tables(extra)
    check_taps(extra.get("taps"), registers)


def load_settings(path: Path) -> Settings:
    """Read and check the configuration file; every problem is a ``ConfigError``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            "file not found", key=str(path), expected="a configuration file (see etc/gatewayd.toml)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", key=str(path)) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", key=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", key=str(path)) from None
    return parse_settings(data, source=path.resolve())
