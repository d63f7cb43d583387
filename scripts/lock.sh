#!/usr/bin/env bash
# Regenerates requirements.lock: every dependency of pyproject.toml's [project] pinned, with
# the SHA-256 of each of its files (all platforms: the box is a Pi, CI an x86 machine).
# install.sh installs from it with pip --require-hashes. Run after changing dependencies:
#   bash scripts/lock.sh            (uv from PATH, or set UV=/path/to/uv; `pip install uv`)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
"${UV:-uv}" pip compile pyproject.toml --generate-hashes --universal --python-version 3.11 \
    --annotation-style line --custom-compile-command "bash scripts/lock.sh" \
    -o requirements.lock "$@"
