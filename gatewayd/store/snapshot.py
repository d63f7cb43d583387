"""The daemon's live status snapshot: a small JSON file replaced atomically.

The daemon writes it every few seconds (link states, devices, freee link, per-day sync
states) so that ``gatewayd status`` and other processes can show live parts without
talking to the daemon. Written by fsync + atomic rename: a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FILE_NAME = "status.json"


def write_snapshot(state_dir: Path, data: dict[str, Any]) -> None:
    payload = dict(data, time=datetime.now(UTC).isoformat(timespec="seconds"))
    fd, tmp = tempfile.mkstemp(dir=state_dir, prefix=".status.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, ensure_ascii=False, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, state_dir / FILE_NAME)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_snapshot(state_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((state_dir / FILE_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
