"""``[[taps]]`` in the configuration: parsed with TableReader, errors name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gatewayd.config import parse_settings
from gatewayd.errors import ConfigError
from gatewayd.tap.runner import taps_of
from gatewayd.tap.settings import template_path

REGISTER = {"store_code": "0001", "terminal_no": "01", "port": "/dev/ttyUSB0"}


def _tap(**over: Any) -> dict[str, Any]:
    tap = {"store_code": "0002", "terminal_no": "01", "template": "label-yen",
           "transport": "tcp-pass-through", "listen": "0.0.0.0:9100",
           "printer": "192.168.1.50:9100", "store_name": "駅前店"}
    tap.update(over)
    return {k: v for k, v in tap.items() if v is not None}


def test_a_shop_with_only_taps_and_their_settings() -> None:
    settings = parse_settings({"state_dir": "/tmp/x", "taps": [
        _tap(),
        _tap(terminal_no="02", transport="serial-pass-through", port="/dev/ttyUSB0",
             printer_port="/dev/ttyUSB1", baudrate=38400, idle_gap=1.5, listen=None,
             printer=None),
    ]})
    taps = taps_of(settings)
    assert [t.tap_id for t in taps] == ["0002-01", "0002-02"]
    assert taps[0].listen == "0.0.0.0:9100" and taps[0].store_name == "駅前店"
    assert taps[1].baudrate == 38400 and taps[1].idle_gap == 1.5
    assert settings.registers == ()


@pytest.mark.parametrize(
    ("tap", "message"),
    [
        (_tap(transport="usb"),
         r"taps\[0\].transport: invalid value \(got 'usb'\); expected one of"),
        (_tap(printer=None), r"taps\[0\].printer: missing"),
        (_tap(colour="red"), r"taps\[0\].colour: unknown key"),
        (_tap(store_code="00-1"), r"taps\[0\].store_code: invalid value"),
        (_tap(idle_gap=0), r"taps\[0\].idle_gap: invalid value"),
        (_tap(transport="passive-serial", listen=None, printer=None), r"taps\[0\].port: missing"),
    ],
)
def test_wrong_taps_name_the_key(tap: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_settings({"state_dir": "/tmp/x", "registers": [REGISTER], "taps": [tap]})


def test_a_tap_cannot_share_a_register_key() -> None:
    with pytest.raises(ConfigError, match=r"taps\[0\]: same store_code and terminal_no"):
        parse_settings({"state_dir": "/tmp/x", "registers": [REGISTER],
                        "taps": [_tap(store_code="0001")]})
    with pytest.raises(ConfigError, match="at least one register is needed"):
        parse_settings({"state_dir": "/tmp/x"})


def test_template_names_and_paths(tmp_path: Path) -> None:
    assert template_path("net-columns", None).name == "net-columns.toml"
    own = tmp_path / "templates" / "net-columns.toml"
    own.parent.mkdir()
    own.write_text("x")
    assert template_path("net-columns", tmp_path / "gatewayd.toml") == own
    assert template_path("shop.toml", tmp_path / "gatewayd.toml") == tmp_path / "shop.toml"
    with pytest.raises(ConfigError, match="no such template"):
        template_path("nope", None)
