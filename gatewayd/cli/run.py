"""``gatewayd run``: the daemon, as systemd starts it."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
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
    return run_daemon(settings, runtime_dir=runtime_directory(os.environ))


def runtime_directory(environ: Mapping[str, str]) -> Path | None:
    """systemd's ``$RUNTIME_DIRECTORY`` (``RuntimeDirectory=gatewayd``: /run/gatewayd), the
    first of its colon-separated paths; None outside systemd."""
    value = environ.get("RUNTIME_DIRECTORY", "")
    first = value.split(":", 1)[0]
    return Path(first) if first else None
