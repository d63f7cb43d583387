"""Power cuts: ``kill -9`` of the VM at random moments, then boot again and check the stores.

    sudo bash scripts/system-test.sh power-cut --cuts 50

(the system test's script builds or reuses the cached root file system and the wheelhouse,
then runs this instead of ``system/systest.py``). The rig is the system test's: provisioning
with install.sh in the guest, first boot with the card's configuration, freee linked through
the page. Then, per cycle: the register closes one more business day and the VM is killed
(``kill -9`` of QEMU) at a random moment of that day's work (transfer, sync, slip printing:
up to 1.2 x the time the first day's work took); in a third of the cycles it is powered on
and killed once more at a random moment of the boot. It boots again and the checks run: the
root file system mounted (the agent answers) with no ext4 error in the kernel log, ``PRAGMA
integrity_check`` = ok on every SQLite file of the state directory, every record stored once
(rows = distinct = max = the register's last record), every ``ref_number`` once in freee,
and every closed day's slip printed (its date on the printer simulator). Prints one line
per cycle and the totals; exits non-zero if anything was lost, doubled or corrupt.
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


def day_work(rig: Rig, closed: int) -> float:
    """Seconds from a close on the register to the day in freee with its slip printed."""
    assert rig.printer is not None
    t0 = time.monotonic()
    rig.reveal(1)
    rig.wait_synced(closed, 120 * rig.slow)
    day = rig.dates[closed - 1]
    rig.printer.printer.wait_for(
        lambda p: f"{day.year}年{day.month}月{day.day}日" in p.decoded().text,
        timeout=60 * rig.slow)
    return time.monotonic() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rootfs", type=Path, required=True)
    parser.add_argument("--wheels", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--cuts", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    import systest

    systest.DAYS = args.cuts + 3
    rig = Rig(args)
    rng = random.Random(args.seed)
    totals = {"cuts": 0, "in boot": 0, "in work": 0, "fs_errors": 0, "corrupt": 0,
              "slips_missing": 0, "lost": 0, "doubled": 0, "failed checks": 0}
    t0 = time.monotonic()
    deals = 0
    try:
        rig.setup()
        provision(rig)
        first_boot(rig)
        rig.link_freee()
        closed = 1
        work_s = day_work(rig, closed)
        assert rig.vm is not None
        boot_s = rig.figures.get("boot B (first boot with the card's configuration) s", 60.0)
        log(f"a day's work (close -> freee -> slip) takes {work_s:.0f} s; a boot {boot_s:.0f} s")
        cycle = 0
        while totals["cuts"] < args.cuts:
            cycle += 1
            rig.reveal(1)
            closed += 1
            # Two kinds of cut: during the day's work (transfer, sync, slip), and during the
            # next boot (the day's work then resumes from a store that was cut twice).
            delay = rng.uniform(0, work_s * 1.2)
            time.sleep(delay)
            rig.vm.kill()
            totals["cuts"] += 1
            totals["in work"] += 1
            where = f"{delay:.1f} s into the work"
            if rng.random() < 1 / 3 and totals["cuts"] < args.cuts:
                rig.vm.start()
                boot_delay = rng.uniform(0, boot_s + work_s)
                time.sleep(boot_delay)
                rig.vm.kill()
                totals["cuts"] += 1
                totals["in boot"] += 1
                where += f", then {boot_delay:.1f} s after power-on"
            rig.boot(f"after cut {totals['cuts']}")
            try:
                result = check(rig, closed)
            except (Failure, GuestError) as exc:
                text = str(exc)
                totals["failed checks"] += 1
                totals["doubled"] += "doubled" in text
                totals["lost"] += "rows" in text or "no deal" in text
                head, _, rest = text.partition("----- guest console")
                tail = rest.rpartition("----- end of console -----")[2]
                log(f"cycle {cycle}: FAILED (cut {where}): {head[:3000]}{tail[-4000:]}")
                continue
            for key, value in result.items():
                totals[key] += value
            log(f"cycle {cycle}, cuts {totals['cuts']}/{args.cuts} ({where}): {result}")
        deals = len(rig.deals())  # before teardown stops the emulator
    except (Failure, GuestError) as exc:
        log(f"FAIL {exc}")
        return 1
    finally:
        rig.teardown()
    log(f"power_cut: {totals} in {time.monotonic() - t0:.0f} s; "
        f"{deals} deals in freee for {closed} days")
    bad = ("fs_errors", "corrupt", "slips_missing", "lost", "doubled", "failed checks")
    return 0 if all(totals[k] == 0 for k in bad) else 1


if __name__ == "__main__":
    sys.exit(main())
