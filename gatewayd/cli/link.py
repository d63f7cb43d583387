"""``gatewayd link`` and ``gatewayd unlink``: connect the box to a freee company, or not.

``link`` prints freee's authorize URL (PKCE S256, ``prompt=select_company``), then either
reads the code the installer pastes (out-of-band redirect, the default) or catches freee's
redirect on ``http://127.0.0.1:PORT/callback`` (``--loopback``). The tokens are stored in the
state directory (mode 0600) before anything uses them, and the chosen company is recorded.
A running daemon picks the new link up by itself. ``unlink`` revokes the refresh token at
freee and deletes the local tokens.
"""

from __future__ import annotations

import argparse
import sys
import threading
from datetime import date
from pathlib import Path

from gatewayd.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from gatewayd.protocol.records import BusinessDay
from gatewayd.sync.freee_settings import OOB_REDIRECT
from gatewayd.sync.link import catch_loopback_code
from gatewayd.sync.service import SyncService


class _NoDays:
    """Linking needs no journal."""

    def get_day(self, register_id: str, business_date: date) -> BusinessDay | None:
        return None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help="configuration file (default: %(default)s)",
    )
    if parser.prog.endswith(" link"):
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--oob", action="store_true", help="paste the code freee shows (the default)"
        )
        mode.add_argument(
            "--loopback",
            action="store_true",
            help="catch freee's redirect on http://127.0.0.1:PORT/callback",
        )
        parser.add_argument(
            "--port", type=int, default=None, help="loopback port (default: [freee].loopback_port)"
        )
        parser.add_argument(
            "--timeout", type=float, default=600.0, help="seconds to wait for freee's redirect"
        )


def open_service(settings: Settings) -> SyncService:
    return SyncService(settings, settings.state_dir, _NoDays())


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    service = open_service(settings)
    try:
        if args.command == "unlink":
            return _unlink(service)
        return _link(service, args)
    finally:
        service.close()


def _link(service: SyncService, args: argparse.Namespace) -> int:
    freee = service.freee
    loopback = bool(getattr(args, "loopback", False)) or (
        freee.redirect == "loopback" and not getattr(args, "oob", False)
    )
    if loopback:
        port = args.port or freee.loopback_port
        start = service.link_start(f"http://127.0.0.1:{port}/callback")
    else:
        start = service.link_start(OOB_REDIRECT)
    print("freee会計との連携 / Link gatewayd to freee会計")
    print()
    print("次のURLをブラウザで開き、事業所を選んで「許可する」を押してください。")
    print("Open this URL in a browser, choose the company and press 許可する:")
    print()
    print(f"  {start.url}")
    print()
    sys.stdout.flush()
    if loopback:
        ready = threading.Event()
        print(f"freee からの戻りを待っています (127.0.0.1:{port}) …")
        sys.stdout.flush()
        code = catch_loopback_code(port, start.state, timeout=args.timeout, ready=ready)
    else:
        code = input("表示された認可コードを貼り付けてください / authorization code: ").strip()
    status = service.link_finish(code, start.state)
    name = status.company_name or "-"
    print()
    print(f"連携しました: 事業所 {name} (company id {status.company_id})")
    print(f"linked: company {status.company_id} {name}; tokens in {service.tokens.path}")
    return 0


def _unlink(service: SyncService) -> int:
    result = service.unlink()
    print("連携を解除しました / unlinked" + ("" if result.revoked else f" ({result.message})"))
    return 0 if result.revoked or result.message == "not linked" else 1
