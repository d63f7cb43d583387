#!/usr/bin/env bash
# The system test: the box booted under systemd in a QEMU VM (see system/systest.py).
#
#   sudo bash scripts/system-test.sh        (root: mmdebstrap, QEMU with KVM)
#
# Builds a Debian trixie root file system with mmdebstrap (cached, keyed by its inputs, in
# $GATEWAYD_SYSTEST_CACHE, default ~/.cache/gatewayd-system-test; built from scratch when
# absent), a wheelhouse of gatewayd's dependencies (cached the same way) and gatewayd's own
# wheel (every run), then boots the guest and installs gatewayd in it with install.sh from
# that wheelhouse: the guest reaches no registry. Needs only Debian's and PyPI's registries
# on the host; installs its own Debian packages. KVM when /dev/kvm is usable, TCG otherwise.
# GATEWAYD_SYSTEST_KEEP=1 keeps the scratch directory (disks, console log) after a pass.
#
#   sudo bash scripts/system-test.sh power-cut [--cuts N]   the power-cut bench on the same rig
#                                                           (bench/power_cut.py)
#   sudo bash scripts/system-test.sh sd-writes [--idle S]   bytes written to the card per
#                                                           business day (bench/sd_writes.py)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$(pwd)"
[ "$(id -u)" = 0 ] || { echo "system-test: run as root (mmdebstrap, QEMU)" >&2; exit 2; }

T0=$(date +%s)
say() { echo "system-test: [$(( $(date +%s) - T0 )) s] $*"; }

# ---------------------------------------------------------------- host packages
need=()
for cmd in mmdebstrap:mmdebstrap qemu-system-x86_64:qemu-system-x86 mkfs.vfat:dosfstools \
           mcopy:mtools mkfs.ext4:e2fsprogs socat:socat git:git; do
    command -v "${cmd%%:*}" >/dev/null 2>&1 || need+=("${cmd##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
GATEWAYD_BROWSER_TESTS=0 bash scripts/setup.sh

CACHE="${GATEWAYD_SYSTEST_CACHE:-$HOME/.cache/gatewayd-system-test}"
mkdir -p "$CACHE"

# ---------------------------------------------------------------- root file system (cached)
rootfs_key="$( { cat system/build-rootfs.sh system/debian-sources.sh system/guest/10-qemu.network \
    system/guest/gatewayd-systest-agent.service; mmdebstrap --version; dpkg --print-architecture; } \
    | sha256sum | cut -c1-16)"
ROOTFS="$CACHE/rootfs-$rootfs_key"
if [ -f "$ROOTFS/root.img" ] && [ -f "$ROOTFS/vmlinuz" ] && [ -f "$ROOTFS/initrd.img" ]; then
    say "root file system: cached ($ROOTFS)"
else
    say "root file system: building with mmdebstrap ($ROOTFS)"
    rm -rf "$ROOTFS.tmp"
    bash system/build-rootfs.sh "$ROOTFS.tmp" > "$CACHE/build-rootfs.log" 2>&1 || {
        tail -40 "$CACHE/build-rootfs.log" >&2; echo "system-test: rootfs build failed" >&2; exit 1; }
    rm -rf "$ROOTFS"; mv "$ROOTFS.tmp" "$ROOTFS"
    find "$CACHE" -maxdepth 1 -name 'rootfs-*' ! -name "rootfs-$rootfs_key" -exec rm -rf {} +
    say "root file system built"
fi

# ---------------------------------------------------------------- wheelhouse
WORK="$(mktemp -d /var/tmp/gatewayd-systest.XXXXXX)"
cleanup() {
    local rc=$?
    # QEMU runs in its own session: end it by its id if the driver could not.
    if [ -f "$WORK/run/qemu.pid" ]; then kill -9 "$(cat "$WORK/run/qemu.pid")" 2>/dev/null || true; fi
    if [ $rc = 0 ] && [ "${GATEWAYD_SYSTEST_KEEP:-0}" != 1 ]; then
        rm -rf "$WORK"
    else
        echo "system-test: scratch directory kept: $WORK (console.log, disks)" >&2
    fi
}
trap cleanup EXIT
src="$WORK/src"
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard \
    | (cd "$REPO" && xargs -0 cp --parents -t "$src" 2>/dev/null || true)
# The guest's Python: trixie's CPython 3.13 on this machine's architecture, glibc 2.41.
GUEST_ARCH="$(uname -m)" GUEST_PYTHON=3.13 GUEST_GLIBC=41
deps_key="$( { cat pyproject.toml scripts/wheelhouse.sh; echo "$GUEST_ARCH $GUEST_PYTHON $GUEST_GLIBC"
    cat requirements*.txt *.lock 2>/dev/null || true; } \
    | sha256sum | cut -c1-16)"
DEPS="$CACHE/wheels-$deps_key"
if [ ! -d "$DEPS" ]; then
    say "wheelhouse of the dependencies: building ($DEPS)"
    rm -rf "$DEPS.tmp"
    bash scripts/wheelhouse.sh "$DEPS.tmp" "$GUEST_ARCH" "$GUEST_PYTHON" "$GUEST_GLIBC"
    mv "$DEPS.tmp" "$DEPS"
    find "$CACHE" -maxdepth 1 -name 'wheels-*' ! -name "wheels-$deps_key" -exec rm -rf {} +
fi
mkdir -p "$WORK/wheels"
cp "$DEPS"/*.whl "$WORK/wheels/"
.venv/bin/python -m pip wheel -q --disable-pip-version-check --no-deps -w "$WORK/wheels" "$src"
rm -rf "$src"
say "wheelhouse ready ($(ls "$WORK/wheels" | wc -l) wheels)"

# ---------------------------------------------------------------- boot and check
if [ "${1:-}" = power-cut ] || [ "${1:-}" = sd-writes ]; then
    bench="bench/${1//-/_}.py"
    shift
    .venv/bin/python "$bench" --rootfs "$ROOTFS" --wheels "$WORK/wheels" --work "$WORK/run" "$@"
else
    timeout --signal=TERM 1500 .venv/bin/python system/systest.py \
        --rootfs "$ROOTFS" --wheels "$WORK/wheels" --work "$WORK/run"
fi
say "done"
