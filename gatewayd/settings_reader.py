"""Reading one TOML table into typed values, with errors that name key, value and expectation.

Every part of the configuration (registers, mapping, printer, web, ...) reads its table
through ``TableReader`` so that a wrong file always gets the same kind of message:
``registers[0].baudrate: not allowed (got 12345); expected one of 9600, 19200, ...``.
Unknown keys are errors too (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from gatewayd.errors import ConfigError


class TableReader:
    """Typed access to one TOML table; call ``finish()`` to reject unknown keys."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError("must be a table", key=path or "(top)", value=data,
                              expected="a TOML table")
        self._data: Mapping[str, Any] = data
        self._path = path
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def has(self, name: str) -> bool:
        return name in self._data

    def raw(self, name: str) -> Any:
        self._seen.add(name)
        return self._data.get(name)

    def keys(self) -> Iterable[str]:
        return self._data.keys()

    def _get(self, name: str) -> Any:
        self._seen.add(name)
        return self._data[name]

    def _fail(self, name: str, value: object, expected: str, message: str = "invalid value"
              ) -> ConfigError:
        return ConfigError(message, key=self.key(name), value=value, expected=expected)

    def str(self, name: str, default: str | None = None, *, pattern: str | None = None,
            choices: Iterable[str] | None = None, required: bool = False) -> str:
        if name not in self._data:
            if required or default is None:
                raise self._fail(name, None, "a string", "missing")
            return default
        value = self._get(name)
        if not isinstance(value, str) or value == "":
            raise self._fail(name, value, "a non-empty string")
        if pattern is not None and re.fullmatch(pattern, value) is None:
            raise self._fail(name, value, f"a string matching {pattern}")
        if choices is not None:
            allowed = list(choices)
            if value not in allowed:
                raise self._fail(name, value, "one of " + ", ".join(allowed))
        return value

    def opt_str(self, name: str, *, pattern: str | None = None) -> str | None:
        if name not in self._data:
            return None
        return self.str(name, pattern=pattern, required=True)

    def int(self, name: str, default: int | None = None, *, minimum: int | None = None,
            maximum: int | None = None, choices: Iterable[int] | None = None) -> int:
        if name not in self._data:
            if default is None:
                raise self._fail(name, None, "an integer", "missing")
            return default
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int):
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

    def opt_int(self, name: str, *, minimum: int | None = None, maximum: int | None = None
                ) -> int | None:
        if name not in self._data:
            return None
        return self.int(name, 0, minimum=minimum, maximum=maximum)

    def float(self, name: str, default: float, *, minimum: float | None = None,
              maximum: float | None = None) -> float:
        if name not in self._data:
            return default
        value = self._get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(name, value, "a number")
        if minimum is not None and value < minimum:
            raise self._fail(name, value, f"a number ≥ {minimum}")
        if maximum is not None and value > maximum:
            raise self._fail(name, value, f"a number ≤ {maximum}")
        return float(value)

    def bool(self, name: str, default: bool) -> bool:
        if name not in self._data:
            return default
        value = self._get(name)
        if not isinstance(value, bool):
            raise self._fail(name, value, "true or false")
        return value

    def str_list(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        if name not in self._data:
            return default
        value = self._get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self._fail(name, value, "a list of non-empty strings")
        return tuple(value)

    def table(self, name: str) -> TableReader:
        """A sub-table (empty when absent)."""
        value = self._get(name) if name in self._data else {}
        return TableReader(value, self.key(name))

    def tables(self, name: str) -> list[TableReader]:
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
            raise ConfigError("unknown key", key=self.key(unknown[0]), value=None,
                              expected="one of the documented keys (see etc/gatewayd.toml)")
