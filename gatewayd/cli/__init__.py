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
    ("run",): ("gatewayd.cli.run", "run the daemon (systemd runs this)"),
    ("demo",): ("gatewayd.cli.demo", "the whole box with simulated register, printer and freee"),
    ("status",): ("gatewayd.cli.status", "show registers, days and postings"),
    ("decode",): ("gatewayd.cli.decode", "decode a journal file to JSON with day checks"),
    ("plan",): ("gatewayd.cli.plan", "print what a journal's days will post to freee, as JSON"),
    ("sim", "register"): ("gatewayd.cli.sim_register", "simulated register on a pseudo-terminal"),
    ("sim", "freee"): ("gatewayd.cli.sim_freee", "freee会計 API emulator on 127.0.0.1"),
    ("sim", "printer"): ("gatewayd.cli.sim_printer", "simulated ESC/POS printer on a pty"),
    ("sim", "printer-register"): ("gatewayd.cli.sim_print_register", "a register that only prints"),
    ("drawer", "kick"): ("gatewayd.cli.drawer", "open the cash drawer now (ESC p)"),
    ("firstboot",): (
        "gatewayd.cli.firstboot", "import gatewayd.toml and secrets from /boot/firmware"
    ),
    ("imager-settings",): (
        "gatewayd.cli.imager_settings", "turn Raspberry Pi Imager's settings into sysconf.txt"
    ),
    ("doctor",): (
        "gatewayd.cli.doctor", "check configuration, devices, storage and clock, with fixes"
    ),
    ("link",): ("gatewayd.cli.link", "link the box to a freee会計 company (OAuth, PKCE)"),
    ("unlink",): ("gatewayd.cli.link", "revoke and delete the freee link"),
    ("resend",): ("gatewayd.cli.resend", "re-sync a day or a range of days with freee"),
    ("freee", "conformance"): (
        "gatewayd.cli.conformance",
        "settle the freee facts against a freee test company (probe deals, table, JSON)",
    ),
    ("passwd",): ("gatewayd.cli.passwd", "set the status page password (argon2 hash, mode 0600)"),
    ("tap", "learn"): ("gatewayd.cli.tap_learn", "draft or check a print-tap template"),
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
