"""``gatewayd passwd``: set the status page's password.

Asks twice without echo (or reads one line with ``--stdin``, for provisioning scripts),
checks the policy, and stores only an argon2id hash in the state directory
(``web-password``, mode 0600, replaced atomically). Every open session ends: the page
compares each session's hash fingerprint with the file.

``--metrics-token`` instead prints a fresh random ``metrics_token`` line for ``[web]``
(43 URL-safe characters, 256 bits) and changes nothing.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from pathlib import Path

from gatewayd.config import DEFAULT_CONFIG_PATH, load_settings
from gatewayd.errors import ConfigError
from gatewayd.web.password import hash_password, password_path, policy_problem, write_password


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG_PATH,
        help="configuration file (default: %(default)s); its state_dir holds the password",
    )
    parser.add_argument(
        "--stdin",
        action="store_true",
        help="read the password from the first line of standard input (no prompt)",
    )
    parser.add_argument(
        "--metrics-token",
        action="store_true",
        help="print a new random metrics_token line for [web] and exit (changes nothing)",
    )


def _ask() -> str | None:
    first = getpass.getpass("新しいパスワード / new password: ")
    second = getpass.getpass("もう一度 / again: ")
    if first != second:
        print("gatewayd: パスワードが一致しません / the passwords differ", file=sys.stderr)
        return None
    return first


def run(args: argparse.Namespace) -> int:
    if args.metrics_token:
        print(f'metrics_token = "{secrets.token_urlsafe(32)}"')
        return 0
    settings = load_settings(args.config)
    state_dir = settings.state_dir
    if not state_dir.is_dir():
        raise ConfigError(
            "the state directory does not exist",
            key="state_dir",
            value=str(state_dir),
            expected="an existing directory (systemd's StateDirectory= creates it)",
        )
    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        asked = _ask()
        if asked is None:
            return 1
        password = asked
    problem = policy_problem(password)
    if problem is not None:
        print(f"gatewayd: {problem}", file=sys.stderr)
        return 1
    path = password_path(state_dir)
    write_password(path, hash_password(password))
    print(f"パスワードを設定しました / password set ({path})")
    return 0
