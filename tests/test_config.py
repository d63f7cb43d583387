"""A wrong configuration file gets a message naming the key, the value and what is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatewayd.config import load_settings
from gatewayd.errors import ConfigError

GOOD = """
state_dir = "/var/lib/gatewayd"
poll_interval = 0.5

[logging]
level = "debug"

[[registers]]
store_code = "0001"
terminal_no = "01"
store_name = "渋谷店"
port = "/dev/serial/by-id/usb-FTDI_FT232R-if00-port0"
baudrate = 38400
tags = ["POS"]

[[registers]]
store_code = "0001"
terminal_no = "02"
port = "usb:0403:6001:A12345"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gatewayd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD))
    assert s.state_dir == Path("/var/lib/gatewayd")
    assert s.poll_interval == 0.5
    assert s.logging.level == "debug"
    assert [r.register_id for r in s.registers] == ["0001-01", "0001-02"]
    assert s.registers[0].baudrate == 38400 and s.registers[1].baudrate == 115200
    assert s.registers[0].tags == ("POS",) and s.registers[1].tags is None
    assert s.register("0001-02").port == "usb:0403:6001:A12345"


@pytest.mark.parametrize(
    ("change", "key", "fragment"),
    [
        (("baudrate = 38400", "baudrate = 12345"), "registers[0].baudrate", "9600"),
        (('store_code = "0001"\nterminal_no = "01"', 'store_code = "00-1"\nterminal_no = "01"'),
         "registers[0].store_code", "[A-Za-z0-9]{1,8}"),
        (("poll_interval = 0.5", "poll_interval = \"fast\""), "poll_interval", "a number"),
        (('level = "debug"', 'level = "loud"'), "logging.level", "one of debug"),
        (("baudrate = 38400", "baudrate = 38400\nbaud = 1"), "registers[0].baud", "unknown key"),
        (("poll_interval = 0.5", "poll_interval = 0"), "poll_interval", "≥ 0.05"),
        (('state_dir = "/var/lib/gatewayd"', 'state_dir = ""'), "state_dir", "non-empty"),
    ],
)
def test_wrong_values_name_key_value_and_expectation(
    tmp_path: Path, change: tuple[str, str], key: str, fragment: str
) -> None:
    text = GOOD.replace(*change, 1)
    assert text != GOOD
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    assert info.value.key == key
    assert fragment in str(info.value)


def test_missing_port_and_no_registers(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"registers\[1\]\.port: missing"):
        load_settings(write(tmp_path, GOOD.replace('port = "usb:0403:6001:A12345"', "")))
    with pytest.raises(ConfigError, match="registers: at least one register"):
        load_settings(write(tmp_path, 'state_dir = "/tmp/x"\n'))


def test_duplicate_register(tmp_path: Path) -> None:
    text = GOOD.replace('terminal_no = "02"', 'terminal_no = "01"')
    with pytest.raises(ConfigError, match="duplicate register"):
        load_settings(write(tmp_path, text))


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "state_dir = \n"))
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml")
    path = tmp_path / "latin.toml"
    path.write_bytes(b"state_dir = '\xff'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_settings(path)


def test_relative_state_dir_is_relative_to_the_file(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, GOOD.replace('"/var/lib/gatewayd"', '"state"')))
    assert s.state_dir == (tmp_path / "state").resolve()


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('[mapping]\ngranularity = "weekly"\n', "mapping.granularity"),
        ('[printer]\ndevice = "/dev/usb/lp0"\nbogus = 1\n', "printer.bogus"),
        ('[web]\nport = 70000\n', "web.port"),
        ('[freee]\nbogus = "x"\n', "freee.bogus"),
    ],
)
def test_tables_of_other_parts_are_checked_at_load(tmp_path: Path, table: str, key: str
                                                   ) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, GOOD + "\n" + table))
    assert info.value.key == key


def test_annotated_example_is_valid() -> None:
    example = Path(__file__).resolve().parent.parent / "etc" / "gatewayd.toml"
    settings = load_settings(example)
    assert settings.registers[0].store_code == "0001"
