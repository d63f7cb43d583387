"""Fuzzing the configuration loader: a wrong file may only ever end in ``ConfigError``.

The daemon reads one TOML file at start; any mistake an installer can type must stop it with
a message naming key, value and expectation — never a traceback (a ``TypeError`` deep in a
part's parser would leave systemd restarting a daemon with no hint). Three shapes of input:
- TOML-like documents made by mutating a complete, valid configuration (every table of every
  part): values replaced by any TOML value, keys deleted, unknown keys added;
- fully arbitrary nested tables (``parse_settings``);
- arbitrary bytes and mutated file text (``load_settings``).
"""

from __future__ import annotations

import copy
import math
import tomllib
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from fuzz_fixtures import FUZZ, FUZZ_SMALL, no_hang
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewayd.config import Settings, load_settings, parse_settings
from gatewayd.errors import ConfigError

SOURCE = Path("/etc/gatewayd/gatewayd.toml")

VALID: dict[str, Any] = {
    "state_dir": "/var/lib/gatewayd",
    "poll_interval": 1.0,
    "logging": {"level": "info", "journald": False},
    "registers": [
        {"store_code": "0001", "terminal_no": "01", "port": "/dev/gatewayd/register",
         "baudrate": 115200, "store_name": "渋谷店", "section": "渋谷店", "tags": ["POS"]},
        {"store_code": "0001", "terminal_no": "02", "port": "usb:1234:5678:REG02"},
    ],
    "mapping": {
        "granularity": "summary", "sales_account": "売上高", "item_prefix": "【POS Regi】",
        "store_name": "店舗{store_code}", "section": "渋谷店", "tags": ["POS"],
        "cash_walletable": "現金", "cash_over_account": "雑収入", "cash_short_account": "雑損失",
        "method_labels": {"QR": "QR決済"},
        "tax_names": {"0": "非課売上"},
        "methods": {"CREDIT": {"settlement": "unsettled", "partner": "カード会社",
                               "due_days": 30},
                    "EMONEY": {"settlement": "walletable:普通預金"}},
        "movements": {"R01": {"kind": "deal", "account": "消耗品費", "tax": "課対仕入10%"},
                      "R02": {"kind": "transfer", "walletable": "普通預金"}},
        "movement_defaults": {"IN": {"account": "仮受金", "tax": "対象外"},
                              "OUT": {"account": "仮払金", "tax": "対象外"}},
    },
    "freee": {
        "api_base_url": "https://api.freee.co.jp",
        "auth_base_url": "https://accounts.secure.freee.co.jp",
        "company_id": 3100001, "client_id": "app", "client_secret": "secret",
        "redirect": "oob", "loopback_port": 48765, "refresh_margin": 3600.0,
        "idle_refresh": 86400.0, "connect_timeout": 5.0, "read_timeout": 30.0,
        "rate_limit_pause": 600.0, "recheck_interval": 3600.0, "retry_initial": 1.0,
        "retry_max": 1800.0,
    },
    "printer": {"device": "/dev/gatewayd/printer", "baudrate": 9600, "poll_interval": 5.0,
                "columns": 42},
    "drawer": {"alert_after": 300.0},
    "slip": {"enabled": True},
    "web": {"address": "127.0.0.1", "port": 8080, "session_lifetime_minutes": 30,
            "public_url": "http://192.168.1.20:8080", "hostnames": ["gateway.local"]},
}

# Any value TOML can hold (tomllib gives str, int, float, bool, datetime, date, time, list,
# dict), with the edges installers hit: empty, huge, negative, nan/inf, wrong type.
scalars = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "-", "0", "none", "true", "summary", "walletable:", "unsettled",
                     "walletable: ", "{store_code}", "usb:", "usb:zzzz:1", "http://",
                     "http://example.com", "https://", "loop://", "/", "\x00", "../x", "a" * 300]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 1, 9600, 65536, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.dates(), st.times(),
)
toml_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=10) | st.sampled_from(list(VALID)), inner, max_size=4),
    max_leaves=12,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a document (dict keys and list indexes)."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append((*prefix, k))
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append((*prefix, i))
            out += paths(v, (*prefix, i))
    return out


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(paths(doc) or [("state_dir",)]))
        parent: Any = doc
        for part in where[:-1]:
            parent = parent[part]
        last = where[-1]
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        if op == "replace":
            parent[last] = draw(toml_values)
        elif op == "delete":
            del parent[last]
        elif isinstance(parent[last], dict):
            parent[last][draw(st.text(min_size=1, max_size=8))] = draw(toml_values)
        elif isinstance(parent[last], list):
            parent[last].append(draw(toml_values))
    return doc


def parse_or_config_error(doc: Any) -> Settings | None:
    with no_hang():
        try:
            return parse_settings(doc, source=SOURCE)
        except ConfigError as exc:
            assert str(exc), "a ConfigError without a message"
            assert exc.staff_message
            return None


def test_the_base_document_is_valid() -> None:
    """The fuzz starts from a configuration that loads (else every mutation is trivial)."""
    result = parse_or_config_error(copy.deepcopy(VALID))
    assert result is not None and len(result.registers) == 2


@FUZZ
@given(mutated_documents())
def test_mutated_configuration_loads_or_raises_config_error(doc: dict[str, Any]) -> None:
    parse_or_config_error(doc)


@FUZZ_SMALL
@given(st.dictionaries(st.sampled_from(list(VALID)) | st.text(max_size=8), toml_values,
                       max_size=8))
def test_arbitrary_tables_load_or_raise_config_error(doc: dict[str, Any]) -> None:
    parse_or_config_error(doc)


@FUZZ_SMALL
@given(toml_values)
def test_any_value_as_the_document_raises_config_error_or_loads(doc: Any) -> None:
    parse_or_config_error(doc)


def to_toml(node: dict[str, Any]) -> str:
    """A small TOML writer for the fuzz (tables inline: enough for every shape)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int,)):
            return str(v)
        if isinstance(v, float):
            if math.isnan(v):
                return "nan"
            if math.isinf(v):
                return "inf" if v > 0 else "-inf"
            return repr(v)
        if isinstance(v, (datetime, date, time)):
            return v.isoformat()
        if isinstance(v, str):
            return '"' + "".join(
                c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}" for c in v
            ) + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return "{" + ", ".join(f"{value(str(k))} = {value(x)}" for k, x in v.items()) + "}"

    return "\n".join(f"{value(str(k))} = {value(v)}" for k, v in node.items()) + "\n"


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-config")


def load_or_config_error(path: Path, raw: bytes) -> Settings | None:
    path.write_bytes(raw)
    with no_hang():
        try:
            return load_settings(path)
        except ConfigError as exc:
            assert str(exc)
            return None


def test_the_toml_writer_round_trips_the_base(config_dir: Path) -> None:
    text = to_toml(VALID)
    assert tomllib.loads(text) == VALID
    assert load_or_config_error(config_dir / "base.toml", text.encode()) is not None


@settings(FUZZ_SMALL, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_as_the_file_raise_config_error(config_dir: Path, raw: bytes) -> None:
    load_or_config_error(config_dir / "bytes.toml", raw)


@settings(FUZZ, deadline=None)
@given(mutated_documents(), st.data())
def test_mutated_files_load_or_raise_config_error(
    config_dir: Path, doc: dict[str, Any], data: st.DataObject
) -> None:
    raw = bytearray(to_toml(doc).encode("utf-8", "surrogatepass"))
    for _ in range(data.draw(st.integers(0, 3))):  # and a few broken bytes on top
        if raw:
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    load_or_config_error(config_dir / "mutated.toml", bytes(raw))


def string_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return [p for p in paths(node, prefix) if isinstance(_at(node, p), str)]


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@pytest.mark.parametrize("path", string_paths(VALID), ids=lambda p: ".".join(map(str, p)))
def test_a_nul_character_in_any_string_setting_is_a_config_error(path: tuple[Any, ...]) -> None:
    """Found by the fuzz: TOML allows ``\\u0000``; a relative state_dir holding one crashed
    the loader with ValueError, an absolute one (or a port) crashed the daemon later, at
    mkdir/open. No setting can sensibly hold a NUL: it is refused where it is read."""
    for text in ("a\x00b", "/var/lib/\x00"):
        doc = copy.deepcopy(VALID)
        parent = _at(doc, path[:-1])
        parent[path[-1]] = text
        with pytest.raises(ConfigError) as info:
            parse_settings(doc, source=SOURCE)
        assert str(path[-1]) in str(info.value)
