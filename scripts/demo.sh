#!/usr/bin/env bash
# The demo: simulated register and printer, the freee emulator, the daemon and its page.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
GATEWAYD_BROWSER_TESTS=0 bash scripts/setup.sh
exec .venv/bin/gatewayd demo "$@"
