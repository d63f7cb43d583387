"""Shared helpers of the print-tap tests: the shipped templates and generated days."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from gatewayd.sim.print_layouts import LAYOUTS, PrintDay, generate_print_days
from gatewayd.tap.template import Template, parse_template

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "etc" / "templates"
START = date(2026, 11, 2)


def shipped_template(layout: str) -> Template:
    path = TEMPLATES_DIR / f"{layout}.toml"
    return parse_template(path.read_text(encoding="utf-8"), str(path))


def days(seed: int = 7, n: int = 3, receipts: int = 12) -> list[PrintDay]:
    return generate_print_days(seed, n, START, receipts=receipts)


__all__ = ["LAYOUTS", "START", "days", "shipped_template"]
