"""``gatewayd doctor``: run the checks of ``gatewayd.doctor`` and print what to fix.

Exits 1 when any check fails, 0 otherwise; ``--json`` prints the same as JSON for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from gatewayd.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from gatewayd.doctor import (
    DEFAULT_CREDENTIALS_DIR,
    DEFAULT_STATE_DIR,
    SERVICE_USER,
    STATUSES,
    CheckResult,
    DoctorContext,
    run_checks,
)
from gatewayd.errors import ConfigError
from gatewayd.firstboot import default_boot_dir


def make_context(config_path: Path, *, state_dir: Path | None = None,
                 boot_dir: Path | None = None, service_user: str = SERVICE_USER,
                 credentials_dir: Path = DEFAULT_CREDENTIALS_DIR) -> DoctorContext:
    settings: Settings | None = None
    error: str | None = None
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        error = str(exc)
    if state_dir is None:
        state_dir = settings.state_dir if settings is not None else DEFAULT_STATE_DIR
    if boot_dir is None:
        boot_dir = default_boot_dir()
    return DoctorContext(config_path, settings, error, state_dir, service_user, boot_dir,
                         credentials_dir)


LABELS = {"ok": "[ OK ]", "warn": "[WARN]", "fail": "[FAIL]", "skip": "[SKIP]"}


def format_text(results: list[tuple[str, CheckResult]]) -> str:
    lines = []
    for name, res in results:
        lines.append(f"{LABELS[res.status]} {name}: {res.message}")
        for detail in res.details:
            lines += ["         " + part for part in detail.splitlines()]
        if res.status in ("warn", "fail"):
            lines.append(f"       修正: {res.fix_ja}")
            lines.append(f"       fix:  {res.fix_en}")
    counts = {s: sum(1 for _, r in results if r.status == s) for s in STATUSES}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "\n".join(lines)


def format_json(results: list[tuple[str, CheckResult]]) -> str:
    return json.dumps(
        {"ok": not any(r.status == "fail" for _, r in results),
         "checks": [{"name": name, **asdict(res), "details": list(res.details)}
                    for name, res in results]},
        ensure_ascii=False, indent=2)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = "Check the box: configuration, devices, storage, clock (with fixes)."
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH,
                        help="configuration file (default %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="state directory (default: from the configuration)")
    parser.add_argument("--boot-dir", type=Path, default=None,
                        help="boot partition (default /boot/firmware)")
    parser.add_argument("--user", default=SERVICE_USER, help="service user (default %(default)s)")
    parser.add_argument("--calibrate-drawer", action="store_true",
                        help="find the drawer's polarity with staff at the drawer, then check")


def run(args: argparse.Namespace) -> int:
    ctx = make_context(args.config, state_dir=args.state_dir, boot_dir=args.boot_dir,
                       service_user=args.user)
    if args.calibrate_drawer:
        from gatewayd.drivers.doctor_checks import calibrate

        def wait_for_enter() -> None:
            input("Enter で続行 / press Enter: ")

        found = calibrate(ctx, ready=wait_for_enter)
        if found is None:
            sys.stdout.write("no [printer] configured: nothing to calibrate\n")
        else:
            sys.stdout.write(found.message + "\n")
            if found.setting_line:
                sys.stdout.write(f"[drawer]\n{found.setting_line}\n")
    results = run_checks(ctx)
    out = format_json(results) if args.json else format_text(results)
    sys.stdout.write(out + "\n")
    return 1 if any(r.status == "fail" for _, r in results) else 0
