"""Power cuts: ``kill -9`` of the VM at random moments, then boot again and check the stores.

    sudo bash scripts/system-test.sh          # once: builds the cached root fs + wheelhouse
    sudo .venv/bin/python bench/power_cut.py --rootfs ~/.cache/gatewayd-system-test/rootfs-* \\
        --wheels WHEELHOUSE --work /var/tmp/power-cut --cuts 50

The rig is the system test's (``system/systest.py``): provisioning with install.sh, first
boot with the card's configuration, freee linked through the page. Then, per cut: the
register closes one more business day, the VM is killed after a random delay drawn over
boot, transfer, sync and slip printing; it boots again and the checks run: the root file
system mounted (the agent answers) with no ext4 error in the kernel log, ``PRAGMA
integrity_check`` = ok on every SQLite file of the state directory, every record stored once
(rows = distinct = max = the register's last record), every ``ref_number`` once in freee, and
every closed day's slip printed (its date on the printer simulator). Prints one line per cut
and the totals.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "system"))

from systest import Failure, Rig, first_boot, log, provision  # type: ignore[import-not-found]
from vm import GuestError

INTEGRITY = (
    "cd /var/lib/gatewayd && for f in *.sqlite; do printf '%s ' \"$f\"; "
    "runuser -u gatewayd -- python3 -c \"import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); "
    "print(c.execute('PRAGMA integrity_check').fetchone()[0])\" \"$f\"; done"
)


def check(rig: Rig, closed: int) -> dict[str, int]:
    assert rig.vm is not None and rig.printer is not None
    errors = rig.sh("journalctl -k -b --no-pager | grep -ci 'EXT4-fs error' || true").strip()
    integrity = rig.sh(INTEGRITY)
    bad = [line for line in integrity.splitlines() if not line.endswith(" ok")]
    rig.wait_active(200)
    rig.wait_synced(closed, 120 * rig.slow)
    rig.check_exactly_once(closed)
    rig.check_records()
    wanted = [f"{d.year}年{d.month}月{d.day}日" for d in rig.dates[:closed]]
    printed = rig.printer.printer.wait_for(
        lambda p: all(w in p.decoded().text for w in wanted), timeout=60 * rig.slow)
    return {"fs_errors": int(errors or 0), "corrupt": len(bad), "slips_missing":
            0 if printed else sum(w not in rig.printer.printer.decoded().text for w in wanted)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rootfs", type=Path, required=True)
    parser.add_argument("--wheels", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--cuts", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-delay", type=float, default=0.0,
                        help="latest cut after power-on, s (default: 3 x the first boot)")
    args = parser.parse_args()
    import systest

    systest.DAYS = args.cuts + 3
    rig = Rig(args)
    rng = random.Random(args.seed)
    totals = {"cuts": 0, "fs_errors": 0, "corrupt": 0, "slips_missing": 0, "lost": 0,
              "doubled": 0}
    t0 = time.monotonic()
    try:
        rig.setup()
        provision(rig)
        first_boot(rig)
        rig.link_freee()
        rig.reveal(1)
        closed = 1
        rig.wait_synced(closed, 120 * rig.slow)
        assert rig.vm is not None
        boot = rig.figures.get("boot B (first boot with the card's configuration) s", 120.0)
        max_delay = args.max_delay or 3 * boot
        for cut in range(1, args.cuts + 1):
            rig.reveal(1)
            closed += 1
            delay = rng.uniform(0, max_delay)
            time.sleep(delay)
            rig.vm.kill()
            rig.boot(f"after cut {cut}")
            try:
                result = check(rig, closed)
            except (Failure, GuestError) as exc:
                text = str(exc)
                totals["doubled"] += "doubled" in text
                totals["lost"] += "doubled" not in text
                log(f"cut {cut}: FAILED after {delay:.1f} s: {text[:2000]}")
                continue
            finally:
                totals["cuts"] += 1
            for key, value in result.items():
                totals[key] += value
            log(f"cut {cut}/{args.cuts} at {delay:.1f} s after power-on: {result}")
    except (Failure, GuestError) as exc:
        log(f"FAIL {exc}")
        return 1
    finally:
        rig.teardown()
    log(f"power_cut: {totals} in {time.monotonic() - t0:.0f} s")
    return 0 if all(v == 0 for k, v in totals.items() if k != "cuts") else 1


if __name__ == "__main__":
    sys.exit(main())
