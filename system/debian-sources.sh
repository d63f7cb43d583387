#!/usr/bin/env bash
# debian-sources.sh SUITE - deb822 apt sources for Debian SUITE (SUITE, -updates, -backports,
# -security; components main and non-free-firmware), on the mirrors this host's own apt
# sources use. The box's release can differ from the build host's: the suites are named here,
# the mirrors are the host's (whatever it is allowed to reach), none is written in this file.
# Used by scripts/build-image.sh (the card) and system/build-rootfs.sh (the system test's guest).
set -euo pipefail
SUITE="${1:?usage: debian-sources.sh SUITE}"
shopt -s nullglob
uris="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null | grep -vE '^\s*#' | grep -oE '(https?|file)://[^ ]+' | sed 's#/*$##' | sort -u || true)"
main="$(grep -E '/debian$' <<<"$uris" | head -1 || true)"
security="$(grep -E '/debian-security$' <<<"$uris" | head -1 || true)"
[ -n "$main" ] || { echo "debian-sources: no Debian mirror (…/debian) in this host's apt sources" >&2; exit 2; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
cat <<SOURCES
Types: deb
URIs: $main
Suites: $SUITE $SUITE-updates $SUITE-backports
Components: main non-free-firmware
Signed-By: $keyring
SOURCES
if [ -n "$security" ]; then
cat <<SOURCES

Types: deb
URIs: $security
Suites: $SUITE-security
Components: main non-free-firmware
Signed-By: $keyring
SOURCES
fi
