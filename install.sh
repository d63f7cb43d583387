#!/bin/bash
# install.sh - install gatewayd on Raspberry Pi OS or Debian (Bookworm or Trixie) in one command.
#
#   sudo ./install.sh                     install or update, enable and start the service
#   sudo ./install.sh --uninstall         remove it; keeps /var/lib/gatewayd, /etc/gatewayd
#                                         and the freee credential
#   sudo ./install.sh --uninstall --purge remove everything, the journal and tokens included
#   ./install.sh --prepare-boot /media/$USER/bootfs
#                                         (on the laptop) copy the installer onto a freshly
#                                         flashed card so the box installs itself at first boot
#
# Options:
#   --root DIR        install into DIR as if it were / (CI and image builds): no apt, no
#                     service start; users via systemd-sysusers --root, units enabled with
#                     systemctl --root (both work offline)
#   --no-apt          do not install system packages
#   --no-start        do not (re)start the service
#   --wheel FILE      install gatewayd from this wheel instead of the checkout
#   --pip-args "..."  extra pip arguments (e.g. "--no-index --find-links /media/wheels")
#
# Dependencies come only from requirements.lock (pinned, with SHA-256 hashes; made by
# scripts/lock.sh) with pip --require-hashes; gatewayd itself is then installed with
# --no-deps (from the checkout without build isolation: nothing unhashed is fetched).
#   --from-boot       run by gatewayd-bootstrap.service from the boot partition (first boot)
#
# Idempotent: a second run changes nothing and says "no changes". Layout:
#   /opt/gatewayd/venv                   the virtual environment (system site packages on,
#                                        for Debian's python3-systemd)
#   /etc/gatewayd/gatewayd.toml          configuration (root:gatewayd 0640), kept if present
#   /etc/credstore/                      systemd credential store (0700): the freee secret
#   /var/lib/gatewayd                    state (0700, gatewayd), kept unless --purge
#   /etc/systemd/system/gatewayd*.{service,timer}, /etc/sysusers.d/gatewayd.conf,
#   /etc/udev/rules.d/99-gatewayd.rules  (kept if present: it holds your serial numbers)
set -euo pipefail
umask 022

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT=""
DO_APT=1
DO_START=1
MODE=install
PURGE=0
WHEEL=""
PIP_ARGS=""
FROM_BOOT=0
BOOT_TARGET=""
PYTHON="${PYTHON:-/usr/bin/python3}"
CHANGES=0

APT_PACKAGES=(python3 python3-venv python3-pip python3-systemd libusb-1.0-0 udev)
UNITS=(gatewayd.service gatewayd-firstboot.service gatewayd-retry.service gatewayd-retry.timer)
ENABLE=(gatewayd.service gatewayd-firstboot.service gatewayd-retry.timer)
SERVICE_USER=gatewayd

usage() { sed -n '2,/^set -e/{/^set -e/d;s/^# \{0,1\}//;p;}' "$0"; }
die() { echo "install.sh: error: $*" >&2; exit 2; }
say() { echo "install.sh: $*"; }
changed() { CHANGES=$((CHANGES + 1)); echo "  changed: $*"; }
kept() { echo "  kept:    $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
        --root=*) ROOT="${1#--root=}"; shift ;;
        --no-apt) DO_APT=0; shift ;;
        --no-start) DO_START=0; shift ;;
        --uninstall) MODE=uninstall; shift ;;
        --purge) PURGE=1; shift ;;
        --wheel) WHEEL="${2:?--wheel needs a file}"; shift 2 ;;
        --pip-args) PIP_ARGS="${2?}"; shift 2 ;;
        --from-boot) FROM_BOOT=1; shift ;;
        --prepare-boot) MODE=prepare-boot; BOOT_TARGET="${2:?--prepare-boot needs the boot partition}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

if [ -n "$ROOT" ]; then
    mkdir -p "$ROOT"
    ROOT="$(cd "$ROOT" && pwd)"
    [ "$ROOT" != / ] || ROOT=""
fi
OFFLINE=0
[ -n "$ROOT" ] && OFFLINE=1   # a prefix: emulate, never touch the running system
[ "$OFFLINE" = 1 ] && { DO_APT=0; DO_START=0; }
[ -n "$WHEEL" ] && WHEEL="$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")"

P() { printf '%s%s' "$ROOT" "$1"; }   # a path inside the target system
VENV=/opt/gatewayd/venv
SYSTEMCTL=(systemctl)
[ "$OFFLINE" = 1 ] && SYSTEMCTL=(systemctl "--root=$ROOT")

if [ "$MODE" != prepare-boot ] && [ "$OFFLINE" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo ./install.sh), or use --root DIR"
fi

# ----------------------------------------------------------------------------- helpers

# install_file SRC DEST MODE: copy when the content or mode differs.
install_file() {
    local src="$1" dest; dest="$(P "$2")"
    if [ -f "$dest" ] && cmp -s "$src" "$dest" \
        && [ "$(stat -c %a "$dest")" = "$(printf %o "0$3")" ]; then
        return 0
    fi
    install -D -m "$3" "$src" "$dest"
    changed "$2"
}

# install_once SRC DEST MODE: copy only when DEST is absent (configuration, udev rules).
install_once() {
    local src="$1" dest; dest="$(P "$2")"
    if [ -e "$dest" ]; then
        cmp -s "$src" "$dest" || kept "$2 (yours, not overwritten)"
        return 0
    fi
    install -D -m "$3" "$src" "$dest"
    changed "$2"
}

# ensure_dir DIR MODE [OWNER]
ensure_dir() {
    local dir; dir="$(P "$1")"
    if [ ! -d "$dir" ]; then
        install -d -m "$2" "$dir"
        changed "$1/"
    elif [ "$(stat -c %a "$dir")" != "$(printf %o "0$2")" ]; then
        chmod "$2" "$dir"
        changed "$1/ (mode $2)"
    fi
    if [ $# -ge 3 ] && [ "$OFFLINE" = 0 ] && [ "$(stat -c %U "$dir")" != "$3" ]; then
        chown "$3:" "$dir"
        changed "$1/ (owner $3)"
    fi
}

remove_path() {
    local path; path="$(P "$1")"
    if [ -e "$path" ] || [ -L "$path" ]; then
        rm -rf -- "$path"
        changed "removed $1"
    fi
}

# digest FILE...: one hash of the files' contents (missing files count as empty).
digest() {
    local f
    for f in "$@"; do [ -f "$f" ] && cat "$f"; printf '\0'; done | sha256sum | cut -d' ' -f1
}

source_hash() {
    if [ -n "$WHEEL" ]; then
        sha256sum "$WHEEL" | cut -d' ' -f1
    else
        (cd "$SRC" && find gatewayd pyproject.toml requirements.lock -type f \
            ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
            | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
    fi
}

# ----------------------------------------------------------------------------- install steps

step_packages() {
    [ "$DO_APT" = 1 ] || { say "system packages: skipped (--no-apt or --root)"; return 0; }
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        if [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != installed ]; then
            missing+=("$pkg")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing system packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    changed "apt: ${missing[*]}"
}

step_user() {
    install_file "$SRC/systemd/gatewayd.sysusers" /etc/sysusers.d/gatewayd.conf 644
    local before after
    before="$(digest "$(P /etc/passwd)" "$(P /etc/group)")"
    if command -v systemd-sysusers >/dev/null; then
        if [ "$OFFLINE" = 1 ]; then
            systemd-sysusers "--root=$ROOT" "$(P /etc/sysusers.d/gatewayd.conf)" >/dev/null
        else
            systemd-sysusers /etc/sysusers.d/gatewayd.conf
        fi
    elif [ "$OFFLINE" = 0 ]; then
        id "$SERVICE_USER" >/dev/null 2>&1 || useradd --system --user-group \
            --home-dir /var/lib/gatewayd --no-create-home --shell /usr/sbin/nologin \
            "$SERVICE_USER"
        usermod -a -G dialout,plugdev,lp "$SERVICE_USER"
    else
        say "users: skipped (no systemd-sysusers for --root)"
    fi
    after="$(digest "$(P /etc/passwd)" "$(P /etc/group)")"
    [ "$before" = "$after" ] || changed "user $SERVICE_USER and its groups"
}

step_venv() {
    local venv hash stamp
    venv="$(P "$VENV")"
    if [ ! -x "$venv/bin/python" ]; then
        "$PYTHON" -m venv --system-site-packages "$venv"
        changed "$VENV (virtual environment)"
    fi
    hash="$(source_hash)"
    stamp="$(P /opt/gatewayd/installed-source.sha256)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$hash" ] && [ -x "$venv/bin/gatewayd" ]; then
        return 0
    fi
    local target="${WHEEL:-$SRC}" build=()
    [ -n "$WHEEL" ] || build=(--no-build-isolation)
    # The dependencies: exactly the locked files, each checked against its hash.
    # shellcheck disable=SC2086  # PIP_ARGS is a list of words on purpose
    PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        --no-input --require-hashes --no-deps $PIP_ARGS -r "$SRC/requirements.lock"
    # gatewayd itself (same version, new content from a checkout: replaced all the same).
    # shellcheck disable=SC2086
    PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        --no-input --force-reinstall --no-deps "${build[@]}" $PIP_ARGS "$target"
    printf '%s\n' "$hash" > "$stamp"
    changed "gatewayd in $VENV ($(basename "$target"))"
}

step_files() {
    local unit doc
    for unit in "${UNITS[@]}"; do
        install_file "$SRC/systemd/$unit" "/etc/systemd/system/$unit" 644
    done
    for doc in systemd.md install.md; do
        [ -f "$SRC/docs/$doc" ] && install_file "$SRC/docs/$doc" "/opt/gatewayd/share/doc/$doc" 644
    done
    install_file "$SRC/etc/udev/99-gatewayd.rules" /opt/gatewayd/share/udev/99-gatewayd.rules 644
    install_file "$SRC/etc/gatewayd.toml" /opt/gatewayd/share/gatewayd.toml.example 644
    UDEV_BEFORE="$(digest "$(P /etc/udev/rules.d/99-gatewayd.rules)")"
    install_once "$SRC/etc/udev/99-gatewayd.rules" /etc/udev/rules.d/99-gatewayd.rules 644

    ensure_dir /etc/gatewayd 755
    install_once "$SRC/etc/gatewayd.toml" /etc/gatewayd/gatewayd.toml 640
    local conf; conf="$(P /etc/gatewayd/gatewayd.toml)"
    if [ "$OFFLINE" = 0 ] && [ "$(stat -c %G "$conf")" != "$SERVICE_USER" ]; then
        chgrp "$SERVICE_USER" "$conf"
        changed "/etc/gatewayd/gatewayd.toml (group $SERVICE_USER)"
    fi
    ensure_dir /etc/credstore 700
    ensure_dir /var/lib/gatewayd 700 "$SERVICE_USER"
}

step_import_boot() {
    # A configuration dropped on the boot partition: import it now rather than at next boot.
    # The state directory first: the slip's certificate fingerprint is made there.
    local boot
    if [ -f "$(P /boot/firmware/gatewayd.toml)" ] || [ -f "$(P /boot/gatewayd.toml)" ]; then
        ensure_dir /var/lib/gatewayd 700 "$SERVICE_USER"
    fi
    for boot in /boot/firmware /boot; do
        boot="$(P "$boot")"
        if [ -f "$boot/gatewayd.toml" ] || [ -f "$boot/gatewayd-freee.txt" ]; then
            say "importing the configuration from $boot"
            PYTHONDONTWRITEBYTECODE=1 "$(P "$VENV")/bin/gatewayd" firstboot --boot-dir "$boot" \
                --etc-dir "$(P /etc/gatewayd)" --credentials-dir "$(P /etc/credstore)" \
                || say "the configuration on $boot is invalid: see $boot/gatewayd.toml.error.txt"
            changed "imported from $boot"
            return 0
        fi
    done
}

step_enable() {
    if [ "$OFFLINE" = 0 ] && [ "$UNITS_CHANGED" = 1 ]; then
        systemctl daemon-reload
    fi
    local unit
    for unit in "${ENABLE[@]}"; do
        if ! "${SYSTEMCTL[@]}" is-enabled --quiet "$unit" 2>/dev/null; then
            "${SYSTEMCTL[@]}" enable --quiet "$unit" 2>/dev/null \
                || "${SYSTEMCTL[@]}" enable "$unit"
            changed "enabled $unit"
        fi
    done
    if [ "$OFFLINE" = 0 ] && \
        [ "$UDEV_BEFORE" != "$(digest /etc/udev/rules.d/99-gatewayd.rules)" ]; then
        udevadm control --reload
        udevadm trigger --action=change --subsystem-match=tty --subsystem-match=usb || true
    fi
}

step_start() {
    [ "$DO_START" = 1 ] || { say "service start: skipped (--no-start or --root)"; return 0; }
    if [ "$CHANGES" -gt 0 ] && systemctl is-active --quiet gatewayd.service; then
        systemctl restart gatewayd.service
        changed "restarted gatewayd.service"
    elif ! systemctl is-active --quiet gatewayd.service; then
        systemctl start gatewayd.service || say "gatewayd did not start: see journalctl -u gatewayd"
        changed "started gatewayd.service"
    fi
    systemctl is-active --quiet gatewayd-retry.timer || {
        systemctl start gatewayd-retry.timer; changed "started gatewayd-retry.timer"; }
}

finish_bootstrap() {
    [ "$FROM_BOOT" = 1 ] || return 0
    # Installed from the boot partition at first boot: the bootstrap unit is done.
    rm -f /etc/systemd/system/multi-user.target.wants/gatewayd-bootstrap.service \
          /etc/systemd/system/gatewayd-bootstrap.service
    systemctl daemon-reload || true
    changed "removed gatewayd-bootstrap.service"
}

units_digest() {
    local unit paths=()
    for unit in "${UNITS[@]}"; do paths+=("$(P "/etc/systemd/system/$unit")"); done
    digest "${paths[@]}"
}

do_install() {
    [ -f "$SRC/etc/gatewayd.toml" ] || die "$SRC/etc/gatewayd.toml missing (run from the checkout)"
    [ -f "$SRC/requirements.lock" ] || die "$SRC/requirements.lock missing (run from the checkout)"
    say "installing gatewayd into ${ROOT:-/}"
    step_packages
    step_user
    step_venv
    step_import_boot
    local units_before; units_before="$(units_digest)"
    step_files
    UNITS_CHANGED=0
    [ "$units_before" = "$(units_digest)" ] || UNITS_CHANGED=1
    step_enable
    step_start
    finish_bootstrap
    if [ "$OFFLINE" = 0 ]; then
        echo
        "$VENV/bin/gatewayd" doctor || true
        echo
    fi
}

# ----------------------------------------------------------------------------- uninstall

do_uninstall() {
    say "removing gatewayd from ${ROOT:-/}$([ "$PURGE" = 1 ] && echo ' (purge)')"
    local unit
    for unit in "${ENABLE[@]}"; do
        if [ -e "$(P "/etc/systemd/system/$unit")" ] \
            && "${SYSTEMCTL[@]}" is-enabled --quiet "$unit" 2>/dev/null; then
            if [ "$OFFLINE" = 0 ]; then
                systemctl disable --now --quiet "$unit"
            else
                "${SYSTEMCTL[@]}" disable --quiet "$unit"
            fi
            changed "disabled $unit"
        fi
    done
    for unit in "${UNITS[@]}"; do
        remove_path "/etc/systemd/system/$unit"
    done
    remove_path /etc/systemd/system/gatewayd-bootstrap.service
    remove_path /etc/systemd/system/multi-user.target.wants/gatewayd-bootstrap.service
    [ "$OFFLINE" = 0 ] && systemctl daemon-reload
    remove_path /etc/udev/rules.d/99-gatewayd.rules
    [ "$OFFLINE" = 0 ] && udevadm control --reload
    remove_path /opt/gatewayd
    if [ "$PURGE" = 1 ]; then
        remove_path /var/lib/gatewayd
        remove_path /etc/gatewayd
        remove_path /etc/credstore/gatewayd.freee-client-secret
        rmdir "$(P /etc/credstore)" 2>/dev/null && changed "removed /etc/credstore (empty)"
        remove_path /etc/sysusers.d/gatewayd.conf
        if [ "$OFFLINE" = 0 ] && id "$SERVICE_USER" >/dev/null 2>&1; then
            userdel "$SERVICE_USER" && changed "removed user $SERVICE_USER"
            getent group "$SERVICE_USER" >/dev/null && groupdel "$SERVICE_USER"
        elif [ "$OFFLINE" = 1 ]; then
            say "user $SERVICE_USER left in $ROOT/etc/passwd (remove it with the image)"
        fi
    else
        [ -d "$(P /var/lib/gatewayd)" ] && kept "/var/lib/gatewayd (state; --purge removes it)"
        [ -d "$(P /etc/gatewayd)" ] && kept "/etc/gatewayd (configuration)"
        [ -f "$(P /etc/credstore/gatewayd.freee-client-secret)" ] && kept "freee credential"
        [ "$OFFLINE" = 0 ] && id "$SERVICE_USER" >/dev/null 2>&1 \
            && kept "user $SERVICE_USER (owns the state)"
    fi
    return 0
}

# ----------------------------------------------------------------------------- prepare a card

do_prepare_boot() {
    local boot="$BOOT_TARGET" dest
    [ -f "$boot/cmdline.txt" ] || die "$boot has no cmdline.txt: not a Raspberry Pi boot partition"
    dest="$boot/gatewayd-installer"
    mkdir -p "$dest"
    say "copying the installer to $dest"
    local item
    for item in install.sh pyproject.toml requirements.lock README.md gatewayd systemd etc docs; do
        [ -e "$SRC/$item" ] || continue
        if [ -d "$SRC/$item" ]; then
            mkdir -p "$dest/$item"
            # FAT has no symlinks or modes: plain copies, no caches.
            while IFS= read -r -d '' f; do
                if ! cmp -s "$SRC/$f" "$dest/$f"; then
                    mkdir -p "$dest/$(dirname "$f")"; cp "$SRC/$f" "$dest/$f"
                    changed "$f"
                fi
            done < <(cd "$SRC" && find "$item" -type f ! -path '*/__pycache__/*' \
                        ! -name '*.pyc' -print0)
        elif ! cmp -s "$SRC/$item" "$dest/$item"; then
            cp "$SRC/$item" "$dest/$item"; changed "$item"
        fi
    done
    if [ -n "$WHEEL" ] && ! cmp -s "$WHEEL" "$dest/$(basename "$WHEEL")"; then
        cp "$WHEEL" "$dest/"; changed "$(basename "$WHEEL")"
    fi
    local bootstrap="$dest/bootstrap.sh"
    cat > "$bootstrap.new" <<'EOF'
#!/bin/bash
# Run once at first boot (from firstrun.sh, before the network is up): install a one-shot
# unit that runs install.sh from the boot partition once the network is online.
set -e
BOOT=/boot/firmware; [ -d "$BOOT/gatewayd-installer" ] || BOOT=/boot
cat > /etc/systemd/system/gatewayd-bootstrap.service <<UNIT
[Unit]
Description=gatewayd: install from the boot partition (first boot)
Wants=network-online.target
After=network-online.target time-sync.target
ConditionPathExists=!/opt/gatewayd/venv/bin/gatewayd
[Service]
Type=oneshot
ExecStart=/bin/bash $BOOT/gatewayd-installer/install.sh --from-boot
StandardOutput=journal+console
TimeoutStartSec=30min
[Install]
WantedBy=multi-user.target
UNIT
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -sf /etc/systemd/system/gatewayd-bootstrap.service \
    /etc/systemd/system/multi-user.target.wants/gatewayd-bootstrap.service
EOF
    if cmp -s "$bootstrap.new" "$bootstrap"; then rm -f "$bootstrap.new"
    else mv "$bootstrap.new" "$bootstrap"; changed "gatewayd-installer/bootstrap.sh"; fi

    local hook_line="bash /boot/firmware/gatewayd-installer/bootstrap.sh || bash /boot/gatewayd-installer/bootstrap.sh || true"
    if [ -f "$boot/firstrun.sh" ]; then
        # Raspberry Pi Imager's customisation script: run ours just before it removes itself.
        if ! grep -qF "gatewayd-installer/bootstrap.sh" "$boot/firstrun.sh"; then
            local tmp="$boot/firstrun.sh.gatewayd"
            awk -v hook="$hook_line" '
                !done && /^rm -f .*firstrun\.sh/ { print hook; done = 1 }
                { print }
                END { if (!done) print hook }' "$boot/firstrun.sh" > "$tmp"
            mv "$tmp" "$boot/firstrun.sh"
            changed "firstrun.sh (runs gatewayd-installer/bootstrap.sh)"
        fi
    else
        printf '#!/bin/bash\n%s\nrm -f /boot/firmware/firstrun.sh /boot/firstrun.sh\nsed -i "s| systemd.run.*||g" /boot/firmware/cmdline.txt 2>/dev/null || sed -i "s| systemd.run.*||g" /boot/cmdline.txt\nexit 0\n' \
            "$hook_line" > "$boot/firstrun.sh"
        changed "firstrun.sh"
    fi
    if ! grep -q "systemd.run=" "$boot/cmdline.txt"; then
        local line; line="$(head -n1 "$boot/cmdline.txt" | tr -d '\r\n')"
        printf '%s systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target\n' \
            "$line" > "$boot/cmdline.txt"
        changed "cmdline.txt (systemd.run=firstrun.sh)"
    fi
    say "now copy gatewayd.toml (and gatewayd-freee.txt) to $boot, eject the card, boot the box"
}

case "$MODE" in
    install) do_install ;;
    uninstall) do_uninstall ;;
    prepare-boot) do_prepare_boot ;;
esac

if [ "$CHANGES" -eq 0 ]; then
    say "no changes"
else
    say "$CHANGES change(s)"
fi
