#!/usr/bin/env bash
# build-image.sh [OUTDIR] - the card an installer flashes: gatewayd-VERSION-arm64.img.xz
#
# Debian trixie arm64 (the release of Raspberry Pi OS since late 2025) with Debian's own
# Raspberry Pi support (raspi-firmware: the Pi's boot firmware and config.txt/cmdline.txt
# written from the kernel's hooks; linux-image-arm64 from trixie-backports: the kernel with
# the Pi 3B+/4/5 device trees and the Pi 5's RP1 drivers, through which its USB ports and
# Ethernet run), built with mmdebstrap under qemu-user-static/binfmt_misc, no loop device.
# gatewayd, its dependencies (from a wheelhouse built here) and every system package are
# inside: the box needs no Internet when it is installed. install.sh does the install, in the
# image's chroot (--no-apt --no-start --wheel --pip-args). See docs/install.md.
#
# Partitions (MBR, as Raspberry Pi Imager expects): 1 FAT32 "bootfs" (512 MiB, mounted on
# /boot/firmware), 2 ext4 "rootfs" (grown to the card at first boot).
# Needs root. Installs its own Debian packages. Output in OUTDIR (default ./dist).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$(pwd)"
OUT="$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)"
[ "$(id -u)" = 0 ] || { echo "build-image: run as root" >&2; exit 2; }
T0=$(date +%s)
say() { echo "build-image: [$(( $(date +%s) - T0 )) s] $*"; }

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)"
IMG="$OUT/gatewayd-$VERSION-arm64.img"
BOOT_MB=512
SUITE=trixie PYTHON=3.13 GLIBC=41

need=()
for cmd in mmdebstrap:mmdebstrap qemu-aarch64-static:qemu-user-static update-binfmts:binfmt-support \
           mkfs.vfat:dosfstools mcopy:mtools mkfs.ext4:e2fsprogs sfdisk:fdisk xz:xz-utils git:git \
           arch-test:arch-test; do
    command -v "${cmd%%:*}" >/dev/null 2>&1 || need+=("${cmd##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
GATEWAYD_BROWSER_TESTS=0 bash scripts/setup.sh >/dev/null

WORK="$(mktemp -d /var/tmp/gatewayd-image.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# ---------------------------------------------------------------- gatewayd + wheelhouse (arm64)
src="$WORK/src"; mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$src"
mkdir -p "$WORK/wheels"
.venv/bin/python -m pip wheel -q --disable-pip-version-check --no-deps -w "$WORK/wheels" "$src"
# The dependencies for the Pi's Python (trixie: CPython 3.13, aarch64, glibc 2.41).
bash scripts/wheelhouse.sh "$WORK/wheels" aarch64 "$PYTHON" "$GLIBC"
say "wheelhouse: $(ls "$WORK/wheels" | wc -l) wheels"

# ---------------------------------------------------------------- the root file system
sources="$WORK/debian.sources"
bash system/debian-sources.sh "$SUITE" > "$sources"

# install.sh (not --root: its venv must be made by the image's own python3) calls
# `systemctl daemon-reload` and `udevadm control --reload`, which fail in a chroot: the shim
# (image/files/chroot-shim) answers those two as the booted system would, nothing else.
PACKAGES=(
    raspi-firmware initramfs-tools "linux-image-arm64/$SUITE-backports" firmware-brcm80211 wpasupplicant
    systemd systemd-sysv systemd-timesyncd udev dbus kmod iproute2 iputils-ping avahi-daemon
    openssh-server sudo ca-certificates fdisk cloud-guest-utils dosfstools locales tzdata
    python3 python3-venv python3-pip python3-systemd libusb-1.0-0
)
ROOT="$WORK/root"
F="$REPO/image/files"
# raspi-firmware's kernel hook writes config.txt and cmdline.txt from
# /etc/default/raspi-firmware; it is run again (as a kernel install would) once that is set:
# the root by its label (mainline kernels name a Pi's SD card mmcblk0 or mmcblk1, the hook's
# default is /dev/mmcblk0p2), no cma= (the hook leaves it out on a Pi 4 itself, where 64M
# "renders it unbootable"; a headless box needs no GPU memory on any model).
say "mmdebstrap $SUITE arm64 (under qemu-user: slow)"
mmdebstrap --architectures=arm64 --variant=apt --mode=root \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    --customize-hook='printf "%s\n" "ROOTPART=LABEL=rootfs" "CONSOLES=\"tty1 ttyS1,115200\"" "CMA=0" >> "$1/etc/default/raspi-firmware"' \
    --customize-hook="install -m 755 '$F/z51-gatewayd-pi5-dtb' \"\$1/etc/kernel/postinst.d/\"" \
    --customize-hook='for k in "$1"/lib/modules/*; do for h in z50-raspi-firmware z51-gatewayd-pi5-dtb; do DEB_MAINT_PARAMS=configure chroot "$1" /etc/kernel/postinst.d/$h "$(basename "$k")"; done; done' \
    --customize-hook='echo gatewayd > "$1/etc/hostname"; printf "127.0.0.1\tlocalhost\n127.0.1.1\tgatewayd\n" > "$1/etc/hosts"' \
    --customize-hook='printf "%s\n" "LABEL=rootfs / ext4 rw,noatime,commit=30,errors=remount-ro 0 1" "LABEL=bootfs /boot/firmware vfat defaults,noatime 0 2" > "$1/etc/fstab"' \
    --customize-hook="install -m 644 '$F/10-wired.network' '$F/20-wlan.network' \"\$1/etc/systemd/network/\"" \
    --customize-hook="mkdir -p \"\$1/etc/systemd/journald.conf.d\" && install -m 644 '$F/journald-sdcard.conf' \"\$1/etc/systemd/journald.conf.d/gatewayd-sdcard.conf\"" \
    --customize-hook="install -m 755 '$F/gatewayd-growroot' '$F/gatewayd-sysconf' \"\$1/usr/local/sbin/\"" \
    --customize-hook="install -m 644 '$F/gatewayd-growroot.service' '$F/gatewayd-sysconf.service' '$F/gatewayd-ssh-keys.service' \"\$1/etc/systemd/system/\"" \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd systemd-timesyncd gatewayd-growroot.service gatewayd-sysconf.service gatewayd-ssh-keys.service' \
    --customize-hook='ln -sf /usr/share/zoneinfo/Asia/Tokyo "$1/etc/localtime"; echo Asia/Tokyo > "$1/etc/timezone"' \
    --customize-hook='chroot "$1" passwd -dq root' \
    --customize-hook='rm -f "$1/etc/machine-id"; touch "$1/etc/machine-id"; rm -f "$1"/etc/ssh/ssh_host_*' \
    --customize-hook="mkdir -p \"\$1/tmp/gatewayd\" && cp -a '$src' '$WORK/wheels' \"\$1/tmp/gatewayd/\"" \
    --customize-hook="install -D -m 755 '$F/chroot-shim' \"\$1/tmp/gatewayd/shim/systemctl\" && install -D -m 755 '$F/chroot-shim' \"\$1/tmp/gatewayd/shim/udevadm\"" \
    --customize-hook='chroot "$1" env PATH=/tmp/gatewayd/shim:/usr/sbin:/usr/bin:/sbin:/bin PIP_FIND_LINKS= bash -c "cd /tmp/gatewayd/src && bash install.sh --no-apt --no-start --wheel \"\$(ls /tmp/gatewayd/wheels/gatewayd-*.whl)\" --pip-args \"--no-index --find-links /tmp/gatewayd/wheels\""' \
    --customize-hook='rm -rf "$1/tmp/gatewayd" "$1/var/lib/apt/lists/"* "$1/var/cache/apt/"*.bin' \
    --customize-hook="install -m 644 '$F/sysconf.txt.example' \"\$1/boot/firmware/sysconf.txt.example\"" \
    "$SUITE" "$ROOT" "$sources" > "$WORK/mmdebstrap.log" 2>&1 || {
        tail -40 "$WORK/mmdebstrap.log" >&2; echo "build-image: mmdebstrap failed" >&2; exit 1; }
say "root file system built ($(du -sh "$ROOT" | cut -f1))"

# ---------------------------------------------------------------- partitions and the image
mkdir -p "$WORK/bootfs"
cp -a "$ROOT/boot/firmware/." "$WORK/bootfs/"
rm -rf "${ROOT:?}/boot/firmware/"*
mkfs.vfat -F 32 -n bootfs -C "$WORK/boot.vfat" $((BOOT_MB * 1024)) >/dev/null 2>&1
mcopy -s -i "$WORK/boot.vfat" "$WORK/bootfs/"* ::
root_mb=$(( $(du -sm "$ROOT" | cut -f1) * 12 / 10 + 300 ))
mkfs.ext4 -q -F -L rootfs -d "$ROOT" "$WORK/root.ext4" "${root_mb}M"
rm -f "$IMG" "$IMG.xz"
truncate -s $(( (4 + BOOT_MB + root_mb) * 1024 * 1024 )) "$IMG"
sfdisk -q "$IMG" <<SFDISK
label: dos
start=4MiB, size=${BOOT_MB}MiB, type=c, bootable
start=$((4 + BOOT_MB))MiB, type=83
SFDISK
dd if="$WORK/boot.vfat" of="$IMG" bs=1M seek=4 conv=notrunc,sparse status=none
dd if="$WORK/root.ext4" of="$IMG" bs=1M seek=$((4 + BOOT_MB)) conv=notrunc,sparse status=none
say "image: $(du -h --apparent-size "$IMG" | cut -f1); compressing"
xz -T0 -3 -k "$IMG"
( cd "$OUT" && sha256sum "$(basename "$IMG").xz" > "$(basename "$IMG").xz.sha256" )
# Raspberry Pi Imager 2 offers its OS customisation only for an image named in an OS list
# (docs/install.md): the list beside the image, its URL where the installer will keep it
# (GATEWAYD_IMAGE_URL, e.g. https://files.example.shop/gatewayd-...img.xz; default: here).
.venv/bin/python -m gatewayd.imager_oslist "$IMG" "$IMG.xz" \
    "${GATEWAYD_IMAGE_URL:-file://$IMG.xz}" "$(date -u +%F)" > "$OUT/gatewayd-$VERSION-os-list.json"
say "done: $IMG.xz ($(du -h "$IMG.xz" | cut -f1)), uncompressed image kept beside it for the smoke test"
