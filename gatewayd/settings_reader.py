"""Reading one TOML table into typed values, with errors that name key, value and expectation.

Every part of the configuration (registers, mapping, printer, web, ...) reads its table
through ``TableReader`` so that a wrong file always gets the same kind of message:
``registers[0].baudrate: not allowed (got 12345); expected one of 9600, 19200, ...``.
Unknown keys are errors too (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from gatewayd.errors import ConfigError


class PartTables(Protocol):
    """What a part's ``*_from_settings`` reads of the loaded configuration: the raw tables.

    ``gatewayd.config.Settings`` is one. The parts name this protocol, not ``Settings``, so
    config.py imports their parsers and no part imports config.py back.
    """

    @property
    def extra(self) -> Mapping[str, Any]: ...


class TableReader:
    """Typed access to one TOML table; call ``finish()`` to reject unknown keys."""

    def __init__(self, data: object, path: builtins.str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(
                "must be a table", key=path or "(top)", value=data, expected="a TOML table"
            )
        self._data: Mapping[builtins.str, Any] = data
        self._path = path
        self._seen: set[builtins.str] = set()

    def key(self, name: builtins.str) -> builtins.str:
        return f"{self._path}.{name}" if self._path else name

    def has(self, name: builtins.str) -> builtins.bool:
        return name in self._data

    def raw(self, name: builtins.str) -> Any:
        self._seen.add(name)
        return self._data.get(name)

    def keys(self) -> Iterable[builtins.str]:
        return self._data.keys()

    def _get(self, name: builtins.str) -> Any:
        self._seen.add(name)
        return self._data[name]

    def _fail(
        self,
        name: builtins.str,
        value: object,
        expected: builtins.str,
        message: builtins.str = "invalid value",
    ) -> ConfigError:
        return ConfigError(message, key=self.key(name), value=value, expected=expected)

    def str(
        self,
        name: builtins.str,
        default: builtins.str | None = None,
        *,
        pattern: builtins.str | None = None,
        choices: Iterable[builtins.str] | None = None,
        required: builtins.bool = False,
    ) -> builtins.str:
        if name not in self._data:
            if required or default is None:
                raise self._fail(name, None, "a string", "missing")
            return default
        value = self._get(name)
        if not isinstance(value, builtins.str) or value == "":
            raise self._fail(name, value, "a non-empty string")
        if "\x00" in value:  # TOML allows \u0000; no path, URL or name can hold it
            raise self._fail(name, value, "a string without NUL characters")
        if pattern is not None and re.fullmatch(pattern, value) is None:
            raise self._fail(name, value, f"a string matching {pattern}")
        if choices is not None:
            allowed = list(choices)
            if value not in allowed:
                raise self._fail(name, value, "one of " + ", ".join(allowed))
        return value

    def opt_str(
        self, name: builtins.str, *, pattern: builtins.str | None = None
    ) -> builtins.str | None:
        if name not in self._data:
            return None
        return self.str(name, pattern=pattern, required=True)

    def int(
        self,
        name: builtins.str,
        default: builtins.int | None = None,
        *,
        minimum: builtins.int | None = None,
        maximum: builtins.int | None = None,
        choices: Iterable[builtins.int] | None = None,
    ) -> builtins.int:
        if name not in self._data:
            if default is None:
                raise self._fail(name, None, "an integer", "missing")
            return default
        value = self._get(name)
        if isinstance(value, builtins.bool) or not isinstance(value, builtins.int):
            raise self._fail(name, value, "an integer")
        if minimum is not None and value < minimum:
            raise self._fail(name, value, f"an integer ≥ {minimum}")
        if maximum is not None and value > maximum:
            raise self._fail(name, value, f"an integer ≤ {maximum}")
        if choices is not None:
            allowed = list(choices)
            if value not in allowed:
                raise self._fail(name, value, "one of " + ", ".join(map(repr, allowed)))
        return value

    def opt_int(
        self,
        name: builtins.str,
        *,
        minimum: builtins.int | None = None,
        maximum: builtins.int | None = None,
    ) -> builtins.int | None:
        if name not in self._data:
            return None
        return self.int(name, 0, minimum=minimum, maximum=maximum)

    def float(
        self,
        name: builtins.str,
        default: builtins.float,
        *,
        minimum: builtins.float | None = None,
        maximum: builtins.float | None = None,
    ) -> builtins.float:
        if name not in self._data:
            return default
        value = self._get(name)
        if isinstance(value, builtins.bool) or not isinstance(value, builtins.int | builtins.float):
            raise self._fail(name, value, "a number")
        if minimum is not None and value < minimum:
            raise self._fail(name, value, f"a number ≥ {minimum}")
        if maximum is not None and value > maximum:
            raise self._fail(name, value, f"a number ≤ {maximum}")
        return float(value)

    def bool(self, name: builtins.str, default: builtins.bool) -> builtins.bool:
        if name not in self._data:
            return default
        value = self._get(name)
        if not isinstance(value, builtins.bool):
            raise self._fail(name, value, "true or false")
        return value

    def str_list(
        self, name: builtins.str, default: tuple[builtins.str, ...] = ()
    ) -> tuple[builtins.str, ...]:
        if name not in self._data:
            return default
        value = self._get(name)
        if not isinstance(value, list) or not all(
            isinstance(v, builtins.str) and v and "\x00" not in v for v in value
        ):
            raise self._fail(name, value, "a list of non-empty strings without NUL characters")
        return tuple(value)

    def table(self, name: builtins.str) -> TableReader:
        """A sub-table (empty when absent)."""
        value = self._get(name) if name in self._data else {}
        return TableReader(value, self.key(name))

    def tables(self, name: builtins.str) -> list[TableReader]:
        """An array of tables (``[[name]]``), empty when absent."""
        if name not in self._data:
            return []
        value = self._get(name)
        if not isinstance(value, list):
            raise self._fail(name, value, f"an array of tables ([[{name}]])")
        return [TableReader(v, f"{self.key(name)}[{i}]") for i, v in enumerate(value)]

    def finish(self) -> None:
        """Reject keys nobody read: a typo must be an error, not a silent default."""
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            raise ConfigError(
                "unknown key",
                key=self.key(unknown[0]),
                value=None,
                expected="one of the documented keys (see etc/gatewayd.toml)",
            )
