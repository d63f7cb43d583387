"""``gatewayd drawer kick``: open the cash drawer now (ESC p on the receipt printer).

The only way besides the status page that the gateway opens the drawer: an explicit command.
It opens the printer itself, checks that it answers ready to print (not offline, cover open,
paper end or error: a kick buffered by such a printer would open the drawer later, unasked),
sends the kick and closes. The daemon
keeps its own link; the port is not locked exclusively so this works while it runs (each side
retries a status reply the other one took).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gatewayd.config import DEFAULT_CONFIG_PATH, load_settings
from gatewayd.drivers.printer import kick_once
from gatewayd.drivers.printer_settings import device_settings_from
from gatewayd.errors import ConfigError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, metavar="FILE",
                        help=f"configuration file (default {DEFAULT_CONFIG_PATH})")


def run(args: argparse.Namespace) -> int:
    printer, drawer, _ = device_settings_from(load_settings(args.config))
    if printer is None:
        raise ConfigError("no printer configured", key="printer",
                          expected="a [printer] table with device or usb")
    kick_once(printer, drawer)
    print(f"drawer kick sent (pin {drawer.kick_pin}, {drawer.kick_pulse_ms} ms) "
          f"to {printer.describe()}")
    print("ドロワーを開く信号を送りました。")
    return 0
