#!/usr/bin/env bash
# build-rootfs.sh OUTDIR - the system test's guest: a Debian root file system of the Pi's
# release (trixie, as Raspberry Pi OS and the card image of scripts/build-image.sh), built
# with mmdebstrap from the host's own Debian mirrors (system/debian-sources.sh), as a raw ext4 image (OUTDIR/root.img) plus its kernel and initrd for QEMU's
# direct kernel boot (OUTDIR/vmlinuz, OUTDIR/initrd.img).
#
# It holds the system packages that install.sh needs (so install.sh's apt step finds them
# installed: the guest has no network to a registry), udev, systemd-networkd for QEMU's
# user-mode network, and the test agent's unit (the agent itself comes on the payload disk
# of each run, so editing it does not rebuild this). gatewayd itself is NOT here: each run
# installs it with install.sh inside the booted guest.
#
# The initrd holds only what mounts a virtio ext4 root (MODULES=list): without KVM (TCG),
# loading and unpacking Debian's default 36 MB initrd alone takes half a minute.
#
# Called by scripts/system-test.sh, which caches OUTDIR keyed by this file's content.
set -euo pipefail
OUT="${1:?usage: build-rootfs.sh OUTDIR}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUITE=trixie
# What install.sh's step_packages checks for (APT_PACKAGES), then what a Pi OS Lite box has
# that the test uses (dbus for systemd-analyze, kmod for the usb-serial modules).
PACKAGES=(
    python3 python3-venv python3-pip python3-systemd libusb-1.0-0 udev
    systemd systemd-sysv dbus kmod procps iproute2 dosfstools
    linux-image-amd64 initramfs-tools
)

mkdir -p "$OUT"
work="$(mktemp -d "$OUT/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/root"
bash "$HERE/debian-sources.sh" "$SUITE" > "$work/debian.sources"

# eatmydata: dpkg without its fsync()s while the tree is built (nothing here has to survive
# a crash of the build; the image written at the end is what counts).
mmdebstrap --variant=apt --mode=root \
    --hook-directory=/usr/share/mmdebstrap/hooks/eatmydata \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    --customize-hook='echo gatewayd-systest > "$1/etc/hostname"' \
    --customize-hook='printf "%s\n" "LABEL=gwroot / ext4 rw,errors=remount-ro 0 1" "LABEL=bootfs /boot/firmware vfat defaults,nofail 0 2" "LABEL=systest /mnt/systest ext4 ro,nofail 0 0" > "$1/etc/fstab"' \
    --customize-hook='mkdir -p "$1/boot/firmware" "$1/mnt/systest"' \
    --customize-hook="cp '$HERE/guest/10-qemu.network' \"\$1/etc/systemd/network/\"" \
    --customize-hook="cp '$HERE/guest/gatewayd-systest-agent.service' \"\$1/etc/systemd/system/\"" \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd gatewayd-systest-agent.service' \
    --customize-hook='chroot "$1" systemctl mask systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true' \
    --customize-hook='rm -f "$1/etc/machine-id" && touch "$1/etc/machine-id"' \
    --customize-hook='sed -i "s/^MODULES=.*/MODULES=list/" "$1/etc/initramfs-tools/initramfs.conf"' \
    --customize-hook='printf "%s\n" virtio_pci virtio_blk ext4 crc32c_generic > "$1/etc/initramfs-tools/modules"' \
    --customize-hook='chroot "$1" update-initramfs -u -k all' \
    --customize-hook="cp -L \"\$1/vmlinuz\" '$work/vmlinuz' && cp -L \"\$1/initrd.img\" '$work/initrd.img'" \
    --customize-hook='rm -rf "$1/var/lib/apt/lists/"* "$1/var/cache/apt/"*.bin' \
    "$SUITE" "$root" "$work/debian.sources"

# Sparse 3 GiB ext4 made from the tree (ownership and modes kept): no loop mount needed.
mkfs.ext4 -q -F -L gwroot -d "$root" "$work/root.img" 3G
mv "$work/root.img" "$work/vmlinuz" "$work/initrd.img" "$OUT/"
echo "build-rootfs: $OUT/root.img ($(du -h --apparent-size "$OUT/root.img" | cut -f1) apparent, $(du -h "$OUT/root.img" | cut -f1) used)"
