#!/usr/bin/env bash
# The whole test suite: lint, types, then every test (unit, pty, loopback, browser, soak).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
echo "== ruff";  .venv/bin/ruff check gatewayd tests bench
echo "== mypy --strict"; .venv/bin/mypy --strict gatewayd
echo "== pytest"; .venv/bin/python -m pytest -q "$@"
