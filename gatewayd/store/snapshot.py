"""The daemon's live status snapshot: a small JSON file replaced atomically.

The daemon gathers it every few seconds (link states, devices, freee link, per-day sync
states) so that ``gatewayd status`` and other processes can show live parts without
talking to the daemon; it writes the file when it changed, and every 30 s regardless
(``daemon.SNAPSHOT_REFRESH``) so that its ``time`` says the daemon is alive. Written to a
temporary file and renamed over the old one: a reader never sees half a file.

No fsync: the snapshot is a view, not a record (the stores are the record). Synced every 5 s
it was nearly all of what an idle box wrote to its SD card (each fsync forces an ext4
journal commit: ~650 MiB a day, bench/sd_writes.py); unsynced, the writes ride ext4's own
commit. After a power cut the file may be old, or empty (read as "no snapshot"), until the
daemon writes it again seconds after it starts; temporary files a cut left behind are
removed at start (:func:`remove_stale_temps`).

Under systemd the file lives in the runtime directory (``RuntimeDirectory=``, /run/gatewayd,
a tmpfs): its refresh then never reaches the card at all, and ``status.json`` in the state
directory is a symbolic link to it (:func:`link_snapshot`, written once per start, only
when it changed), so every reader keeps reading the state directory. After a reboot and
before the daemon's first write the link leads nowhere: read as "no snapshot".
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FILE_NAME = "status.json"
_LINK_TMP = ".status.link.tmp"  # matches remove_stale_temps' pattern: a cut's leftover goes


def write_snapshot(state_dir: Path, data: dict[str, Any]) -> None:
    payload = dict(data, time=datetime.now(UTC).isoformat(timespec="seconds"))
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".status.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, ensure_ascii=False, default=str)
        os.replace(tmp, state_dir / FILE_NAME)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def remove_stale_temps(state_dir: Path) -> int:
    """Remove the temporary files of writes a power cut interrupted; how many there were.
    Called once at start, before any write of this process."""
    removed = 0
    for tmp in state_dir.glob(".status.*.tmp"):
        try:
            tmp.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed


def link_snapshot(state_dir: Path, snapshot_dir: Path) -> bool:
    """Make ``state_dir/status.json`` a link to ``snapshot_dir/status.json``; True when it
    had to be (re)made. Replaced atomically (link made aside, then renamed over), so a
    reader sees the old file or the link, never nothing."""
    link = state_dir / FILE_NAME
    target = snapshot_dir / FILE_NAME
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return False
    tmp = state_dir / _LINK_TMP
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, link)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True


def snapshot_is_linked(state_dir: Path) -> bool:
    """True when the state directory's snapshot is a link (the daemon runs under systemd)."""
    return (state_dir / FILE_NAME).is_symlink()


def read_snapshot(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / FILE_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
