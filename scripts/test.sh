#!/usr/bin/env bash
# The whole test suite: lint, types, then every test (unit, pty, loopback, browser, soak).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
echo "== ruff";  .venv/bin/ruff check gatewayd tests bench
echo "== mypy --strict"; .venv/bin/mypy --strict gatewayd
echo "== pytest"; .venv/bin/python -m pytest -q "$@"

# The date-sensitive tests (marked `dates`) again, three times in parallel: the suite's
# "today" (tests/conftest.py) at a month's 1st, a 31st and 1 January (the fiscal-year edge),
# each under libfaketime with the process clock on another, far-off date just before
# midnight and another time zone: code or a test that reads the real date instead of the
# fixture fails here. FAKETIME_DONT_FAKE_MONOTONIC keeps CPython's timed waits working;
# tests/faketime/sitecustomize.py mends time.sleep under it (docs/reliability.md).
echo "== pytest -m dates (fixed dates, faked clock)"
mapfile -t date_files < <(grep -l 'mark\.dates' tests/test_*.py)
runs=("2026-03-01 2031-07-15 Asia/Tokyo" "2026-05-31 2029-02-28 UTC"
      "2026-01-01 2030-12-31 America/Los_Angeles")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pids=()
for i in "${!runs[@]}"; do
  read -r today clock zone <<<"${runs[$i]}"
  GATEWAYD_TEST_TODAY=$today TZ=$zone FAKETIME_DONT_FAKE_MONOTONIC=1 PYTHONPATH=tests/faketime \
    faketime "$clock 23:59:40" .venv/bin/python -m pytest -q -p no:cacheprovider -m dates \
    --basetemp "$work/tmp$i" "${date_files[@]}" >"$work/log$i" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!runs[@]}"; do
  if wait "${pids[$i]}"; then
    echo "today, clock, TZ = ${runs[$i]}: $(tail -n 1 "$work/log$i")"
  else
    failed=1; echo "today, clock, TZ = ${runs[$i]}: FAILED"; cat "$work/log$i"
  fi
done
[ "$failed" = 0 ] || exit "$failed"

# The box booted: gatewayd installed by install.sh in a Debian trixie guest under QEMU,
# systemd, udev, first boot, watchdog, reboot (scripts/system-test.sh, docs/reliability.md).
# Needs root (mmdebstrap, QEMU). GATEWAYD_SYSTEM_TEST=0 leaves it out of a quick local run;
# CI never sets it.
if [ "${GATEWAYD_SYSTEM_TEST:-1}" != 0 ]; then
  echo "== system test (the box booted under systemd in QEMU)"
  if [ "$(id -u)" = 0 ]; then
    bash scripts/system-test.sh
  else
    sudo -n bash scripts/system-test.sh
  fi
fi
