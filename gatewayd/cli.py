"""The ``gatewayd`` command: one sub-command per module, imported only when used.

Each command module exposes ``configure(parser)`` (its arguments) and ``run(args) -> int``
(its exit code). A ``GatewayError`` ends the command with its message on stderr (English for
the log, Japanese for staff) and exit code 2; nothing else is swallowed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from gatewayd.errors import GatewayError

# command words -> (module, one-line help). Order is the order of --help.
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("run",): ("gatewayd.daemon_cli", "run the daemon (systemd runs this)"),
    ("demo",): ("gatewayd.demo", "the whole box with simulated register, printer and freee"),
    ("status",): ("gatewayd.status_cli", "show registers, days and postings"),
    ("decode",): ("gatewayd.decode_cli", "decode a journal file to JSON with day checks"),
    ("plan",): ("gatewayd.plan_cli", "print what a journal's days will post to freee, as JSON"),
    ("sim", "register"): ("gatewayd.sim.register_cli", "simulated register on a pseudo-terminal"),
    ("sim", "freee"): ("gatewayd.sim.freee.cli", "freee会計 API emulator on 127.0.0.1"),
    ("sim", "printer"): ("gatewayd.sim.printer_cli", "simulated ESC/POS printer on a pty"),
    ("sim", "printer-register"): ("gatewayd.sim.print_register_cli", "a register that only prints"),
    ("drawer", "kick"): ("gatewayd.drawer_cli", "open the cash drawer now (ESC p)"),
    ("firstboot",): ("gatewayd.firstboot", "import gatewayd.toml and secrets from /boot/firmware"),
    ("doctor",): ("gatewayd.doctor", "check configuration, devices, storage and clock, with fixes"),
    ("link",): ("gatewayd.link_cli", "link the box to a freee会計 company (OAuth, PKCE)"),
    ("unlink",): ("gatewayd.link_cli", "revoke and delete the freee link"),
    ("resend",): ("gatewayd.resend_cli", "re-sync a day or a range of days with freee"),
    ("freee", "conformance"): (
        "gatewayd.conformance_cli",
        "settle the freee facts against a freee test company (probe deals, table, JSON)",
    ),
    ("passwd",): ("gatewayd.passwd_cli", "set the status page password (argon2 hash, mode 0600)"),
    ("tap", "learn"): ("gatewayd.tap.learn_cli", "draft or check a print-tap template"),
}


class CommandModule(Protocol):
    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(module: str) -> CommandModule:
    return cast(CommandModule, importlib.import_module(module))


def build_parser(words: Sequence[str] = ()) -> argparse.ArgumentParser:
    """Build the parser; only the module of the chosen command is imported."""
    parser = argparse.ArgumentParser(
        prog="gatewayd",
        description="The store gateway box: register journal to freee会計, exactly once.",
    )
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for key, (module, help_text) in COMMANDS.items():
        if len(key) == 1:
            sub = top.add_parser(key[0], help=help_text)
        else:
            if key[0] not in groups:
                group = top.add_parser(key[0], help=f"{key[0]} commands")
                groups[key[0]] = group.add_subparsers(
                    dest="subcommand", metavar="WHAT", required=True
                )
            sub = groups[key[0]].add_parser(key[1], help=help_text)
        sub.set_defaults(_module=module)
        if tuple(words[: len(key)]) == key:
            _load(module).configure(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words)
    args = parser.parse_args(words)
    try:
        return _load(args._module).run(args)
    except GatewayError as exc:
        print(f"gatewayd: error: {exc}", file=sys.stderr)
        print(f"gatewayd: {exc.staff_message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
