"""Bytes written to the card per business day, measured on the booted box (QEMU guest).

    sudo bash scripts/system-test.sh sd-writes [--idle 600]

The system test's rig (``system/systest.py``), with the card settings of the image
(``scripts/build-image.sh``): ``/`` mounted ``noatime,commit=30`` and journald's
``image/files/journald-sdcard.conf``. After the first boot and freee's link it reads the root
disk's own counter (``/sys/block/vda/stat``, sectors written: everything that reached the
"card", file data, metadata, ext4's journal, journald) over two windows:

- idle: ``--idle`` seconds with the register open and nothing to send (polls, device
  checks, metrics, the page's timers, journald);
- one close: the register closes a day, the gateway reads it, posts it to freee, prints the
  slip, then 45 s more so that ext4's 30 s commit and the writeback have flushed it.

A business day = 24 h of the idle rate + one close. It also prints what gatewayd and
journald asked to write (``/proc/PID/io`` write_bytes) over the same windows. Under TCG the
guest runs slower than a Pi, but the daemon's work per day is the same: the writes are
counted, not timed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))

from systest import Failure, Rig, first_boot, log, provision  # type: ignore[import-not-found]
from vm import GuestError

CARD_SETTINGS = (
    "sed -i 's|^LABEL=gwroot / ext4 rw,errors=remount-ro|"
    "LABEL=gwroot / ext4 rw,noatime,commit=30,errors=remount-ro|' /etc/fstab && "
    "grep -q commit=30 /etc/fstab && mkdir -p /etc/systemd/journald.conf.d && "
    "cp /mnt/systest/src/image/files/journald-sdcard.conf "
    "/etc/systemd/journald.conf.d/gatewayd-sdcard.conf"
)
COUNTERS = (
    "awk '{print $7 * 512}' /sys/block/vda/stat; "
    "for u in gatewayd systemd-journald; do "
    "p=$(systemctl show -p MainPID --value $u); "
    "awk '/^write_bytes/ {print $2}' /proc/$p/io; done"
)


def counters(rig: Rig) -> tuple[int, int, int]:
    disk, daemon, journald = (int(x) for x in rig.sh(COUNTERS).split())
    return disk, daemon, journald


def mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rootfs", type=Path, required=True)
    parser.add_argument("--wheels", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--idle", type=float, default=600.0, help="idle window, s")
    args = parser.parse_args()
    rig = Rig(args)
    try:
        rig.setup()
        provision(rig, extra=CARD_SETTINGS)
        first_boot(rig)
        mounts = rig.sh("findmnt -no OPTIONS /")
        if "commit=30" not in mounts:
            raise Failure(f"/ is mounted {mounts}, not with the image's commit=30")
        rig.link_freee()
        time.sleep(60)  # the link's first master-data reads settle
        assert rig.printer is not None and rig.vm is not None
        d0, g0, j0 = counters(rig)
        t0 = time.monotonic()
        time.sleep(args.idle)
        d1, g1, j1 = counters(rig)
        idle_s = time.monotonic() - t0
        rig.reveal(1)
        t1 = time.monotonic()
        rig.wait_synced(1, 480)
        day = rig.dates[0]
        rig.printer.printer.wait_for(
            lambda p: f"{day.year}年{day.month}月{day.day}日" in p.decoded().text, timeout=240)
        work_s = time.monotonic() - t1
        time.sleep(45)
        d2, g2, j2 = counters(rig)
        close_s = time.monotonic() - t1
        rate = (d1 - d0) / idle_s
        per_day = rate * (86400 - close_s) + (d2 - d1)
        log(f"idle {idle_s:.0f} s: card {mib(d1 - d0)} ({rate / 1024:.1f} KiB/s), "
            f"gatewayd {mib(g1 - g0)}, journald {mib(j1 - j0)}")
        log(f"one close ({work_s:.0f} s to freee and the slip, {close_s:.0f} s counted): "
            f"card {mib(d2 - d1)}, gatewayd {mib(g2 - g1)}, journald {mib(j2 - j1)}")
        log(f"sd_writes: {mib(per_day)} written to the card per business day "
            f"(24 h idle rate + one close); {per_day * 365 / 2**30:.1f} GiB a year")
    except (Failure, GuestError) as exc:
        log(f"FAIL {exc}")
        return 1
    finally:
        rig.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
