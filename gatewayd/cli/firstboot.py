"""``gatewayd firstboot``: import gatewayd.toml and secrets from the boot partition.

The work is in ``gatewayd.firstboot``; this is the command's arguments and output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gatewayd.firstboot import (
    DEFAULT_CREDENTIALS_DIR,
    DEFAULT_ETC_DIR,
    _host_address,
    build_slip,
    default_boot_dir,
    import_from_boot,
    print_status_slip,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Import gatewayd.toml and the freee client secret from the boot "
                          "partition (run at boot by gatewayd-firstboot.service).")
    parser.add_argument("--boot-dir", type=Path, default=None,
                        help="the FAT boot partition (default /boot/firmware)")
    parser.add_argument("--etc-dir", type=Path, default=DEFAULT_ETC_DIR,
                        help="where gatewayd.toml goes (default %(default)s)")
    parser.add_argument("--credentials-dir", type=Path, default=DEFAULT_CREDENTIALS_DIR,
                        help="systemd credential store for secrets (default %(default)s)")
    parser.add_argument("--no-slip", action="store_true", help="do not print a status slip")


def run(args: argparse.Namespace) -> int:
    from gatewayd.logging_setup import setup_logging

    setup_logging("info")
    boot_dir: Path = args.boot_dir or default_boot_dir()
    result = import_from_boot(boot_dir, args.etc_dir, args.credentials_dir)
    if result.status == "nothing":
        print(f"gatewayd firstboot: nothing to import in {boot_dir}")
        return 0
    slip = build_slip(result, address=_host_address())
    print(slip.text())
    for note in result.notes:
        print(f"note: {note}")
    if not args.no_slip:
        print_status_slip(slip, result.settings)
    return 0 if result.ok else 1
