#!/usr/bin/env bash
# wheelhouse.sh DEST ARCH PYTHON GLIBC - gatewayd's dependencies as install.sh installs them
# (requirements.lock: pinned, hashed), as binary wheels for another machine's Python:
# ARCH x86_64|aarch64, PYTHON e.g. 3.13, GLIBC its C library's minor (Debian 13: 41).
# Binary wheels only, so nothing is compiled on the box. pip does not widen a --platform to
# older glibc levels by itself: every manylinux_2_X from 2_17 (manylinux2014) up is listed.
# Run from the repository (uses its .venv's pip). Used by scripts/build-image.sh and
# scripts/system-test.sh.
set -euo pipefail
DEST="${1:?usage: wheelhouse.sh DEST ARCH PYTHON GLIBC}"; ARCH="${2:?}"; PY="${3:?}"; GLIBC="${4:?}"
abi="cp${PY/./}"
platforms=(--platform "manylinux2014_$ARCH" --platform "linux_$ARCH" --platform any)
for minor in $(seq 17 "$GLIBC"); do platforms+=(--platform "manylinux_2_${minor}_$ARCH"); done
mkdir -p "$DEST"
.venv/bin/python -m pip download -q --disable-pip-version-check --only-binary=:all: \
    "${platforms[@]}" --python-version "$PY" --implementation cp \
    --abi "$abi" --abi abi3 --abi none \
    -d "$DEST" -r requirements.lock 2> >(grep -v "^WARNING: Location" >&2)
