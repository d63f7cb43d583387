"""``gatewayd run``: the daemon, as systemd starts it."""

from __future__ import annotations

import argparse
from pathlib import Path

from gatewayd.config import DEFAULT_CONFIG_PATH, load_settings
from gatewayd.daemon import run_daemon
from gatewayd.logging_setup import setup_logging


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH,
                        help="configuration file (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)  # a wrong file stops here, before anything opens
    setup_logging(settings.logging.level, journald=settings.logging.journald)
    return run_daemon(settings)
