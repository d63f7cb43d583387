"""Import a configuration dropped on the boot partition (the command: ``gatewayd.cli.firstboot``).

The installer flashes a stock Raspberry Pi OS card and, from a laptop, copies onto its FAT
boot partition (``/boot/firmware``):

- ``gatewayd.toml``        the configuration (may hold ``[freee] client_secret``), and/or
- ``gatewayd-freee.txt``   the freee app's client secret: the secret alone on one line, or
                           ``client_secret = "..."``.

At boot ``gatewayd-firstboot.service`` runs this command before the daemon:

1. Secrets first, whether or not the rest is valid: the client secret is written to the
   credential store (``/etc/credstore/gatewayd.freee-client-secret``, root 0600, read by
   systemd's ``LoadCredential=`` and handed to the daemon as
   ``$CREDENTIALS_DIRECTORY/freee-client-secret``), then overwritten with zeros on the FAT
   partition and removed from it (the secret line of ``gatewayd.toml`` is replaced by a
   comment). A secret that cannot be parsed is still removed from the card.
2. ``gatewayd.toml`` is checked with ``gatewayd.config.load_settings``. Valid: it replaces
   ``/etc/gatewayd/gatewayd.toml`` (the old one is kept as ``gatewayd.toml.previous``), is
   removed from the card, and ``gatewayd.toml.imported.txt`` records what happened. Invalid:
   it stays on the card with ``gatewayd.toml.error.txt`` beside it (Japanese and English) for
   the installer to read on the laptop, and the command exits 1. Every other secret field
   (``[web] metrics_token``, any ``*token*``/``*secret*``/``*password*`` key) is cut out of
   the copy left on the card (``scrub_secret_fields``) and out of the error text; the full
   file goes to ``/etc/gatewayd/rejected/`` (root, 0600) so nothing is lost.
3. A status slip (``SetupSlip``) with the status page's address is handed to the printer
   integration named by ``SLIP_HOOK``; its text is also logged and written to the receipt.

Scrubbing a FAT file overwrites its clusters in place; the flash card's wear levelling may
still keep an old copy, so treat a lost card as a leaked secret and rotate it in freee.
"""

from __future__ import annotations

import datetime as dt
import grp
import importlib
import logging
import os
import re
import socket
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatewayd.config import Settings, load_settings
from gatewayd.errors import ConfigError
from gatewayd.web.settings import is_loopback

log = logging.getLogger(__name__)

BOOT_CONFIG = "gatewayd.toml"
BOOT_SECRET = "gatewayd-freee.txt"
ERROR_SUFFIX = ".error.txt"
RECEIPT_SUFFIX = ".imported.txt"
CONFIG_NAME = "gatewayd.toml"
SERVICE_GROUP = "gatewayd"
DEFAULT_BOOT_DIRS = (Path("/boot/firmware"), Path("/boot"))
DEFAULT_ETC_DIR = Path("/etc/gatewayd")
DEFAULT_CREDENTIALS_DIR = Path("/etc/credstore")
DEFAULT_PAGE_PORT = 8080

# (TOML table, key) of each secret -> file name in the credential store. The unit loads it
# with LoadCredential=<id>:<file name>. Add a line here (and in the unit) for a new secret.
SECRETS: dict[tuple[str, str], str] = {
    ("freee", "client_secret"): "gatewayd.freee-client-secret",
}
FREEE_SECRET = SECRETS[("freee", "client_secret")]

# The printer integration: "module:function", called as function(slip, settings) where
# settings is the imported Settings or None (invalid file: print on whatever printer can be
# found). A missing module means "no printer integration yet" and is only logged.
SLIP_HOOK = "gatewayd.cli.setup_slip:print_setup_slip"


@dataclass(frozen=True)
class SetupSlip:
    """What the status slip after an import says (Japanese lines, printer-agnostic)."""

    ok: bool
    title: str
    lines: tuple[str, ...]
    page_urls: tuple[str, ...] = ()
    error: str | None = None

    def text(self) -> str:
        body = [self.title, *self.lines]
        body += [f"状態ページ: {url}" for url in self.page_urls]
        return "\n".join(body)


@dataclass
class ImportResult:
    """The outcome of one import; ``status`` is imported | invalid | secret-only | nothing."""

    status: str
    config_path: Path | None = None
    secrets_stored: list[str] = field(default_factory=list)
    error: str | None = None
    settings: Settings | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------- file helpers

def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # vfat may refuse a directory fsync; the data itself was synced
        pass
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes, *, mode: int = 0o600, group: str | None = None
                  ) -> None:
    """Atomically replace ``path`` with ``data`` (temp file, fsync, rename, dir fsync)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        if group is not None:
            try:
                os.fchown(fd, -1, grp.getgrnam(group).gr_gid)
            except (KeyError, PermissionError):
                log.warning("group %s not found or not allowed: %s keeps its group", group, path)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def scrub(path: Path, *, replacement: bytes | None = None) -> None:
    """Overwrite a file's bytes with zeros in place, then remove it or write ``replacement``.

    Overwriting in place (not writing a new file) makes FAT reuse the same clusters, so the
    old bytes are gone from the partition, not merely unlinked.
    """
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.write(b"\0" * size)
        handle.flush()
        os.fsync(handle.fileno())
        if replacement is not None:
            handle.seek(0)
            handle.truncate()
            handle.write(replacement)
            handle.flush()
            os.fsync(handle.fileno())
    if replacement is None:
        path.unlink()
    _fsync_dir(path.parent)


# --------------------------------------------------------------------------- secrets

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]#]+?)\s*\]\]?\s*(?:#.*)?$")


def _table_name(raw: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in raw.split("."))


def _parse_value(rhs: str) -> str | None:
    try:
        value = tomllib.loads("v = " + rhs)["v"]
    except tomllib.TOMLDecodeError:
        return None
    return value if isinstance(value, str) and value else None


@dataclass
class StrippedSecret:
    table: str
    key: str
    value: str | None  # None: the line was removed but its value could not be read


def strip_secrets(text: str) -> tuple[str, list[StrippedSecret]]:
    """Remove the ``SECRETS`` lines from TOML text, keeping everything else byte for byte.

    Handles ``key = "..."`` inside ``[table]`` and ``table.key = "..."`` at the top level. Each
    removed line becomes a comment saying where the secret went.
    """
    out: list[str] = []
    found: list[StrippedSecret] = []
    current = ""
    for line in text.splitlines(keepends=True):
        header = _HEADER.match(line)
        if header:
            current = _table_name(header.group(2))
            if header.group(1) == "[[":
                current += "[]"
            out.append(line)
            continue
        hit = None
        for (table, key), cred in SECRETS.items():
            if current == table:
                pattern = rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=(.*)$"
            elif current == "":
                pattern = (rf"^\s*[\"']?{re.escape(table)}[\"']?\s*\.\s*"
                           rf"[\"']?{re.escape(key)}[\"']?\s*=(.*)$")
            else:
                continue
            match = re.match(pattern, line.rstrip("\r\n"))
            if match:
                hit = (table, key, cred, match.group(1))
                break
        if hit is None:
            out.append(line)
            continue
        table, key, cred, rhs = hit
        found.append(StrippedSecret(table, key, _parse_value(rhs)))
        newline = "\n" if line.endswith("\n") else ""
        out.append(f"# {key}: moved to the credential store ({cred}) by gatewayd firstboot"
                   f"{newline}")
    return "".join(out), found


def secret_still_present(text: str) -> bool:
    """True when a secret survives ``strip_secrets`` (an inline table, a multi-line string)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        data = None
    if data is not None:
        for table, key in SECRETS:
            section = data.get(table)
            if isinstance(section, dict) and key in section:
                return True
        return False
    # Not valid TOML: be conservative and look for the key outside comments.
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        if any(re.search(rf"\b{re.escape(key)}\b", code) for _, key in SECRETS):
            return True
    return False


# Keys that hold a secret in any table (their values never stay on the card of an invalid
# import); "..._file"/"..._path" keys name a file, not a secret.
SECRET_KEY = re.compile(r"(secret|token|passw(or)?d|api_?key|private_?key|credential)", re.I)
_KEY_LINE = re.compile(
    r"""^\s*((?:[\w-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[\w-]+|"[^"]*"|'[^']*'))*)\s*=(.*)$""")


def _secret_key(dotted: str) -> bool:
    last = dotted.split(".")[-1].strip().strip("\"'")
    return SECRET_KEY.search(last) is not None and not last.endswith(("_file", "_path"))


def scrub_secret_fields(text: str) -> tuple[str, list[str]]:
    """Replace every line that sets a secret-looking key by a comment.

    Returns the text and the removed values (to blank them in messages too).
    """
    out: list[str] = []
    removed: list[str] = []
    for line in text.splitlines(keepends=True):
        match = _KEY_LINE.match(line.rstrip("\r\n"))
        if match is None or not _secret_key(match.group(1)):
            out.append(line)
            continue
        rhs = match.group(2)
        value = _parse_value(rhs) or rhs.split("#", 1)[0].strip().strip("\"'")
        if value:
            removed.append(value)
        newline = "\n" if line.endswith("\n") else ""
        out.append(f"# {match.group(1).strip()}: removed from the card by gatewayd firstboot; "
                   f"write it again{newline}")
    return "".join(out), removed


def secret_field_present(text: str) -> bool:
    """True when a secret-looking key survives outside comments (an inline table…)."""
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        for word in re.findall(r"[\w-]+(?=[\"']?\s*=)", code):
            if _secret_key(word):
                return True
    return False


def parse_secret_file(text: str) -> str | None:
    """The client secret from ``gatewayd-freee.txt``: a bare line or ``client_secret = …``."""
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    for line in lines:
        match = re.match(r"^[\"']?client_secret[\"']?\s*[=:]\s*(.+)$", line)
        if match:
            raw = match.group(1).strip()
            parsed = _parse_value(raw)
            return parsed if parsed is not None else raw.strip("\"'") or None
    if len(lines) == 1 and "=" not in lines[0]:
        return lines[0].strip("\"'") or None
    return None


# --------------------------------------------------------------------------- the import

def _error_text(message: str, when: dt.datetime) -> str:
    return (
        "gatewayd: この設定ファイルは取り込まれませんでした。\n"
        "The configuration file was NOT imported.\n\n"
        f"{message}\n\n"
        "直し方: ノートPCでこのカードの gatewayd.toml を修正し、カードを戻して電源を入れ直して"
        "ください。\n"
        "Fix: correct gatewayd.toml on this card from the laptop, put the card back and "
        "power the box on again (or run `sudo gatewayd firstboot`).\n"
        f"({when.isoformat(timespec='seconds')})\n"
    )


def _store_secret(cred_dir: Path, name: str, value: str) -> Path:
    cred_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(cred_dir, 0o700)
    target = cred_dir / name
    write_private(target, value.encode("utf-8"), mode=0o600)
    return target


def import_from_boot(
    boot_dir: Path,
    etc_dir: Path = DEFAULT_ETC_DIR,
    credentials_dir: Path = DEFAULT_CREDENTIALS_DIR,
    *,
    group: str | None = SERVICE_GROUP,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now().astimezone(),
) -> ImportResult:
    """Import ``gatewayd.toml`` and the client secret from ``boot_dir`` (see module doc)."""
    boot_toml = boot_dir / BOOT_CONFIG
    boot_secret = boot_dir / BOOT_SECRET
    error_file = boot_dir / (BOOT_CONFIG + ERROR_SUFFIX)
    receipt_file = boot_dir / (BOOT_CONFIG + RECEIPT_SUFFIX)
    has_toml, has_secret_file = boot_toml.is_file(), boot_secret.is_file()
    if not has_toml and not has_secret_file:
        return ImportResult("nothing")
    result = ImportResult("secret-only")
    errors: list[str] = []  # problems with the secrets: reported, the config still imported
    config_errors: list[str] = []  # problems that keep the configuration off /etc

    # 1. Secrets: out of the files (in memory), into the credential store, off the card.
    secret: str | None = None
    toml_text: str | None = None
    stripped: list[StrippedSecret] = []
    if has_toml:
        raw = boot_toml.read_bytes()
        try:
            toml_text = raw.decode("utf-8")
        except UnicodeDecodeError:
            toml_text = raw.decode("utf-8", errors="replace")
            config_errors.append(f"{BOOT_CONFIG}: not UTF-8 text (save it as UTF-8)")
        toml_text, stripped = strip_secrets(toml_text)
        for item in stripped:
            if item.value is None:
                errors.append(f"{item.table}.{item.key}: the value could not be read; it was "
                              f"removed from the card, write it again in {BOOT_SECRET}")
            else:
                secret = item.value
    file_secret: str | None = None
    if has_secret_file:
        file_secret = parse_secret_file(boot_secret.read_text(encoding="utf-8",
                                                              errors="replace"))
        if file_secret is None:
            errors.append(f"{BOOT_SECRET}: no client secret found (put the secret alone on "
                          "one line, or client_secret = \"...\"); the file was removed")
        elif secret is not None and secret != file_secret:
            result.notes.append(f"two different client secrets: the one in {BOOT_SECRET} wins")
        secret = file_secret or secret
    if secret is not None:
        target = _store_secret(credentials_dir, FREEE_SECRET, secret)
        result.secrets_stored.append(str(target))
        log.info("freee client secret stored in %s", target)
    if has_secret_file:
        scrub(boot_secret)
    if has_toml and stripped:
        assert toml_text is not None
        scrub(boot_toml, replacement=toml_text.encode("utf-8"))

    if has_toml and toml_text is not None and secret_still_present(toml_text):
        # A secret we could not cut out of the text: the file must leave the card anyway.
        quarantine = etc_dir / "rejected"
        quarantine.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = now().strftime("%Y%m%dT%H%M%S")
        write_private(quarantine / f"gatewayd.toml.{stamp}", boot_toml.read_bytes())
        scrub(boot_toml)
        config_errors.append(
            "a client_secret could not be cut out of gatewayd.toml (inline table or "
            f"multi-line string?): the file was moved off the card to {quarantine}; write "
            f"client_secret on its own line in [freee], or use {BOOT_SECRET}")
        has_toml = False

    # 2. The configuration.
    if has_toml and toml_text is not None:
        etc_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        candidate = etc_dir / f".{CONFIG_NAME}.new"
        write_private(candidate, toml_text.encode("utf-8"), mode=0o640, group=group)
        settings: Settings | None = None
        try:
            if not config_errors:
                settings = load_settings(candidate)
        except ConfigError as exc:  # name the file the installer knows, not our temp file
            config_errors.append(str(exc).replace(str(candidate.resolve()), BOOT_CONFIG)
                                 .replace(str(candidate), BOOT_CONFIG))
        if settings is None:
            candidate.unlink()
        else:
            target = etc_dir / CONFIG_NAME
            if target.is_file() and target.read_bytes() != toml_text.encode("utf-8"):
                os.replace(target, etc_dir / f"{CONFIG_NAME}.previous")
            os.replace(candidate, target)
            _fsync_dir(etc_dir)
            result.settings = settings
            result.config_path = target
            result.status = "imported"
            scrub(boot_toml)
    if config_errors:
        result.status = "invalid"
        if has_toml and boot_toml.is_file():
            removed = _scrub_invalid_card_copy(boot_toml, etc_dir, now)
            for value in removed:
                config_errors = [e.replace(value, "********") for e in config_errors]

    all_errors = config_errors + errors
    if all_errors:
        result.error = "\n".join(all_errors)
        error_file.write_text(_error_text(result.error, now()), encoding="utf-8")
        _fsync_dir(boot_dir)
        log.error("firstboot import: %s", result.error)
    elif result.status == "imported" and error_file.exists():
        error_file.unlink()  # the earlier error is fixed

    receipt = [f"gatewayd firstboot {now().isoformat(timespec='seconds')}: {result.status}"]
    if result.config_path:
        receipt.append(f"configuration -> {result.config_path}")
    receipt += [f"secret -> {path}" for path in result.secrets_stored]
    receipt += result.notes
    if result.error is None:
        receipt_file.write_text("\n".join(receipt) + "\n", encoding="utf-8")
        _fsync_dir(boot_dir)
    return result


def _scrub_invalid_card_copy(
    boot_toml: Path, etc_dir: Path, now: Callable[[], dt.datetime]
) -> list[str]:
    """An invalid file stays on the card for the installer: without any secret field."""
    raw = boot_toml.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    scrubbed, removed = scrub_secret_fields(text)
    leftover = secret_field_present(scrubbed)
    if not removed and not leftover:
        return []
    quarantine = etc_dir / "rejected"
    quarantine.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = now().strftime("%Y%m%dT%H%M%S")
    write_private(quarantine / f"gatewayd.toml.{stamp}", raw)
    if leftover:  # cannot cut it out line by line: the whole file leaves the card
        scrub(boot_toml)
    else:
        scrub(boot_toml, replacement=scrubbed.encode("utf-8"))
    log.info("secret fields of the invalid gatewayd.toml moved to %s", quarantine)
    return removed


# --------------------------------------------------------------------------- the slip

def _host_address() -> str | None:
    """The box's own IPv4 address on its default route (a UDP connect sends no packet)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: only the route is looked up
            address: str = sock.getsockname()[0]
            return address
    except OSError:
        return None


def page_urls(settings: Settings | None, *, address: str | None = None) -> tuple[str, ...]:
    """Addresses of the status page: ``[slip] status_url`` or ``[web] public_url`` when set,
    else ``http://<hostname>.local:<port>/`` and the box's IP address."""
    extra: dict[str, Any] = settings.extra if settings is not None else {}
    slip = extra.get("slip")
    if isinstance(slip, dict) and isinstance(slip.get("status_url"), str):
        return (slip["status_url"],)
    web = extra.get("web")
    if isinstance(web, dict) and isinstance(web.get("public_url"), str):
        return (web["public_url"],)
    port = DEFAULT_PAGE_PORT
    if isinstance(web, dict) and isinstance(web.get("port"), int):
        port = web["port"]
    scheme = page_scheme(web if isinstance(web, dict) else {})
    urls = [f"{scheme}://{socket.gethostname()}.local:{port}/"]
    if address:
        urls.append(f"{scheme}://{address}:{port}/")
    return tuple(urls)


def page_scheme(web: dict[str, Any]) -> str:
    """https when the page serves TLS: ``tls = "on"``, or ``"auto"`` (the default) with an
    address beyond loopback; the same rule as ``WebSettings.serves_tls``."""
    tls = web.get("tls", "auto")
    address = str(web.get("address", "127.0.0.1"))
    return "https" if tls == "on" or (tls == "auto" and not is_loopback(address)) else "http"


def build_slip(result: ImportResult, *, address: str | None = None) -> SetupSlip:
    urls = page_urls(result.settings, address=address)
    if result.error is not None:
        return SetupSlip(
            ok=False, title=("設定の取り込みに失敗しました" if result.status == "invalid"
                             else "設定の取り込みで問題がありました"),
            lines=("カードの gatewayd.toml.error.txt を確認してください。",
                   *(result.error or "").splitlines()[:6]),
            page_urls=urls, error=result.error)
    lines: list[str] = []
    if result.config_path:
        lines.append("設定ファイルを取り込みました。")
    if result.secrets_stored:
        lines.append("freeeのクライアントシークレットを保存しました。")
    lines.append("状態ページでfreeeとの連携を行ってください。")
    return SetupSlip(ok=True, title="ゲートウェイ設定完了", lines=tuple(lines), page_urls=urls)


def print_status_slip(slip: SetupSlip, settings: Settings | None,
                      hook: str | None = None) -> bool:
    """Hand the slip to the printer integration (``SLIP_HOOK``); never raises. True if printed."""
    hook = hook or SLIP_HOOK
    module_name, _, func_name = hook.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            log.info("no slip printer integration (%s): slip not printed", module_name)
            return False
        log.exception("slip printer integration %s failed to import", module_name)
        return False
    func = getattr(module, func_name, None)
    if func is None:
        log.error("slip hook %s not found", hook)
        return False
    try:
        func(slip, settings)
    except Exception:
        log.exception("printing the status slip failed")
        return False
    return True


# --------------------------------------------------------------------------- the command

def default_boot_dir() -> Path:
    for candidate in DEFAULT_BOOT_DIRS:
        if (candidate / "config.txt").exists() or (candidate / BOOT_CONFIG).exists():
            return candidate
    return DEFAULT_BOOT_DIRS[0]
