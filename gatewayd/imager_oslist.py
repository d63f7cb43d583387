"""The OS list Raspberry Pi Imager reads to offer the gateway image with its customisation.

Imager 2 offers OS customisation (host name, user, Wi-Fi...) only for an image named in an
OS list whose entry says how the image takes it (``init_format``); for a plain "Use custom"
file it offers none. ``scripts/build-image.sh`` writes this list beside the image; the
installer opens it in Imager (App options → Content repository → Use custom file). The
image takes Imager's cloud-init files (``gatewayd.imager_settings``): ``cloudinit``.

    python -m gatewayd.imager_oslist IMAGE.img IMAGE.img.xz URL DATE > os-list.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

# Imager's device tags for the models the image boots (docs/install.md, "Models")
DEVICES = ["pi5-64bit", "pi4-64bit", "pi3-64bit"]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def os_list(*, name: str, raw_size: int, raw_sha256: str, xz_size: int, xz_sha256: str,
            url: str, release_date: str) -> dict[str, Any]:
    """The list with one entry: the image, its sizes and hashes, cloud-init customisation."""
    return {
        "os_list": [{
            "name": name,
            "description": "Store gateway: cash register journal to freee会計 "
                           "(Debian trixie, no Internet needed at install)",
            "icon": "",
            "url": url,
            "extract_size": raw_size,
            "extract_sha256": raw_sha256,
            "image_download_size": xz_size,
            "image_download_sha256": xz_sha256,
            "release_date": release_date,
            "init_format": "cloudinit",
            "architecture": "arm64",
            "devices": DEVICES,
        }],
    }


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    raw, xz, url, date = Path(argv[0]), Path(argv[1]), argv[2], argv[3]
    data = os_list(name=xz.name.removesuffix(".img.xz"), raw_size=raw.stat().st_size,
                   raw_sha256=sha256(raw), xz_size=xz.stat().st_size, xz_sha256=sha256(xz),
                   url=url, release_date=date)
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
