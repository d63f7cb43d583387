"""``gatewayd imager-settings``: turn Raspberry Pi Imager's settings on the card into sysconf.txt.

Run at boot by the image's ``gatewayd-sysconf`` before it applies ``sysconf.txt``. The
parsing is ``gatewayd.imager_settings`` (pure); this reads and writes the boot partition:
Imager's lines go first in ``sysconf.txt`` (so a ``sysconf.txt`` the installer wrote by hand
wins where both set a key), then Imager's files, which hold the password hash and the Wi-Fi
key, are overwritten in place and removed. A file that cannot be read is left on the card,
with ``imager-settings.error.txt`` beside it saying why, and nothing of it is applied.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from gatewayd.errors import ConfigError
from gatewayd.firstboot import default_boot_dir, scrub, write_private
from gatewayd.imager_settings import NETWORK_CONFIG, USER_DATA, parse

SYSCONF = "sysconf.txt"
ERROR_FILE = "imager-settings.error.txt"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Turn Raspberry Pi Imager's OS customisation (user-data, "
                          "network-config on the boot partition) into sysconf.txt.")
    parser.add_argument("--boot-dir", type=Path, default=None,
                        help="the FAT boot partition (default /boot/firmware)")


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None


def convert(boot: Path, now: dt.datetime) -> tuple[int, list[str]]:
    """(exit code, lines to print). 0: nothing there or converted; 1: refused."""
    user_data = _read(boot / USER_DATA)
    network = _read(boot / NETWORK_CONFIG)
    if user_data is None and network is None:
        return 0, [f"imager-settings: no {USER_DATA} or {NETWORK_CONFIG} in {boot}"]
    try:
        settings = parse(user_data, network, _read(boot / "cmdline.txt") or "")
    except ConfigError as exc:
        text = ("gatewayd: Raspberry Pi Imager の設定は適用されませんでした。\n"
                "Raspberry Pi Imager's settings were NOT applied.\n\n"
                f"{exc}\n\n"
                "直し方: Imager でカードを書き直すか、sysconf.txt を使ってください"
                "（docs/install.md）。\n"
                "Fix: write the card again with Imager, or use sysconf.txt instead "
                "(docs/install.md).\n"
                f"({now.isoformat(timespec='seconds')})\n")
        write_private(boot / ERROR_FILE, text.encode("utf-8"), mode=0o644)
        return 1, [f"imager-settings: refused: {exc} (see {boot / ERROR_FILE})"]
    lines = settings.sysconf_lines()
    own = _read(boot / SYSCONF)
    merged = "# from Raspberry Pi Imager's settings (gatewayd imager-settings)\n"
    merged += "".join(f"{line}\n" for line in lines)
    if own is not None:
        merged += "# sysconf.txt as written on the card (wins where both set a key)\n" + own
        if not own.endswith("\n"):
            merged += "\n"
    write_private(boot / SYSCONF, merged.encode("utf-8"), mode=0o600)
    for name in (USER_DATA, NETWORK_CONFIG):
        if (boot / name).exists():
            scrub(boot / name)
    (boot / ERROR_FILE).unlink(missing_ok=True)
    out = [f"imager-settings: {len(lines)} setting(s) to {boot / SYSCONF}: "
           + ", ".join(sorted({line.split('=', 1)[0] for line in lines}))]
    out += [f"imager-settings: not applied: {item}" for item in settings.skipped]
    return 0, out


def run(args: argparse.Namespace) -> int:
    boot: Path = args.boot_dir or default_boot_dir()
    code, lines = convert(boot, dt.datetime.now(dt.UTC))
    for line in lines:
        print(line)
    return code
