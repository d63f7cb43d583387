"""``gatewayd plan CAPTURE --template FILE``: a captured print stream's days as plan JSON.

Kept apart from ``gatewayd.cli.plan`` (which reads REGLINK journals) so that command only
needs one argument line and one branch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gatewayd.errors import ConfigError
from gatewayd.sync.mapping_settings import MappingSettings
from gatewayd.sync.plan import DayPlan
from gatewayd.tap.capture import plan_capture
from gatewayd.tap.template import load_template


def add_capture_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--template",
        metavar="FILE",
        type=Path,
        help="read JOURNAL as a captured print stream, with this print-tap template "
        "(etc/templates/*.toml; docs/tap.md)",
    )


def plan_capture_file(
    capture: Path, template_path: Path, store: str, terminal: str, mapping: MappingSettings
) -> list[DayPlan]:
    template = load_template(template_path)
    try:
        data = capture.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the capture: {exc.strerror}", key=str(capture)) from None
    return plan_capture(data, template, store, terminal, mapping)
