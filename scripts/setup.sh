#!/usr/bin/env bash
# Installs what gatewayd needs on a fresh Debian/Raspberry Pi OS machine into ./.venv.
# Sourced by scripts/test.sh and scripts/demo.sh; safe to run again (changes nothing then).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
dpkg -s libsystemd-dev >/dev/null 2>&1 || need_apt+=(libsystemd-dev)
dpkg -s pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v faketime >/dev/null 2>&1 || need_apt+=(faketime)  # scripts/test.sh's dates step
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)  # promtool: tests of contrib/prometheus
if [ "${GATEWAYD_BROWSER_TESTS:-1}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  dpkg -s fonts-ipafont-gothic >/dev/null 2>&1 || need_apt+=(fonts-ipafont-gothic)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.gatewayd-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev,systemd]'
  touch "$stamp"
fi
