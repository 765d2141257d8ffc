#!/usr/bin/env bash
# Builds and tests the module inside a Debian 13 (trixie) or sid tree, with
# that distribution's nginx, nginx-dev, g++ and OpenSSL.
#
#   scripts/distro.sh SUITE tree          make the tree (or check it is there)
#   scripts/distro.sh SUITE run CMD...    run CMD in the tree, in /src
#
# The tree is made with debootstrap --variant=minbase from the Debian archive
# this machine's apt configuration names, kept in .deps/distro/SUITE and
# reused while the packages it was made with are the same. For a run, /proc,
# /dev, /dev/pts and /sys are mounted into it, the checkout on /src and
# Pebble (.deps/pebble, a static binary) read-only on /opt/pebble; all of
# them are unmounted when the run ends, whatever way it ends.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
# shellcheck source=scripts/debian-archive.sh
. "$ROOT/scripts/debian-archive.sh"

SUITE=${1:-}
ACTION=${2:-}
case "$SUITE" in
    trixie | sid) ;;
    *)
        echo "usage: $0 trixie|sid tree|run CMD..." >&2
        exit 2
        ;;
esac
shift 2 || true

# The real path: /proc/self/mounts shows mount points through no symlink.
mkdir -p "$ROOT/.deps"
DEPS=$(realpath "$ROOT/.deps")
TREE="$DEPS/distro/$SUITE"
LOCK="$DEPS/distro/$SUITE.lock"
PEBBLE_DIR="$DEPS/pebble"

# What the build, the unit and integration tests and `make deb` need.
PACKAGES=(
    nginx nginx-dev build-essential g++ make dpkg-dev debhelper libssl-dev
    libcurl4-openssl-dev libjansson-dev libgtest-dev perl
    libio-socket-ssl-perl libnet-ssleay-perl curl openssl procps wrk
    libldns-dev bind9 bind9-utils bind9-dnsutils libhiredis-dev redis-server redis-tools
    libnginx-mod-stream
)
# Bumped when the way the tree is made changes.
TREE_FORMAT=1
STAMP="$TREE/.acme-tree"

log() { echo "distro($SUITE): $*"; }
die() {
    echo "distro($SUITE): $*" >&2
    exit 1
}

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot and mounts)"

# Mount points under the tree, deepest first.
mounts_under() {
    awk -v t="$1" '$2 == t || index($2, t "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

unmount_all() {
    local m
    for m in $(mounts_under "$TREE"); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "distro($SUITE): cannot unmount $m" >&2
    done
}

# apt settings the host needs to reach the archive (a proxy, a frozen
# mirror's Release dates) apply inside the tree as well.
copy_apt_settings() {
    apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy|Retries) ' \
        >"$TREE/etc/apt/apt.conf.d/90acme-host" || true
}

in_tree() {
    chroot "$TREE" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
}

# The tree itself: debootstrap, then what makes it safe to use. The stamp
# is written last, so an interrupted bootstrap starts again from scratch.
bootstrap_tree() {
    local archive keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    command -v debootstrap >/dev/null || die "debootstrap is not installed (run make deps)"
    archive=$(debian_archive) || die "no Debian archive in the apt configuration"
    if [ -e "$TREE" ]; then
        [ -z "$(mounts_under "$TREE")" ] || die "$TREE still has mounts; not removing it"
        log "removing the incomplete or outdated tree"
        rm -rf --one-file-system "$TREE"
    fi
    mkdir -p "$TREE"
    log "debootstrap --variant=minbase $SUITE from $archive"
    local opts=(--variant=minbase)
    [ -r "$keyring" ] && opts+=("--keyring=$keyring")
    if ! debootstrap "${opts[@]}" "$SUITE" "$TREE" "$archive" >"$DEPS/distro/$SUITE.debootstrap.log" 2>&1; then
        tail -20 "$DEPS/distro/$SUITE.debootstrap.log" >&2
        die "debootstrap failed (log: $DEPS/distro/$SUITE.debootstrap.log)"
    fi
    # No service may start inside: the tree shares the host's network, and
    # a distro nginx would take ports 80 and 443.
    printf '#!/bin/sh\nexit 101\n' >"$TREE/usr/sbin/policy-rc.d"
    chmod 0755 "$TREE/usr/sbin/policy-rc.d"
    copy_apt_settings
    echo "format $TREE_FORMAT" >"$STAMP"
}

# Installs what PACKAGES lists and the tree lacks (nothing on a second run).
install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        in_tree dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    cp -L /etc/resolv.conf "$TREE/etc/resolv.conf" 2>/dev/null || true
    mount_basics
    log "installing ${missing[*]}"
    if ! {
        in_tree apt-get update -qq &&
            in_tree apt-get install -y -q --no-install-recommends "${missing[@]}" &&
            in_tree apt-get -f install -y -q &&
            in_tree apt-get clean
    } >"$DEPS/distro/$SUITE.apt.log" 2>&1; then
        tail -20 "$DEPS/distro/$SUITE.apt.log" >&2
        die "installing packages failed (log: $DEPS/distro/$SUITE.apt.log)"
    fi
    unmount_all
    log "tree ready: $(in_tree dpkg-query -W -f='nginx ${Version}' nginx), $(in_tree sh -c 'g++ --version | head -1'), $(in_tree openssl version)"
}

make_tree() {
    if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "format $TREE_FORMAT" ]; then
        bootstrap_tree
    fi
    install_packages
}

mount_basics() {
    mkdir -p "$TREE/proc" "$TREE/dev" "$TREE/sys"
    mountpoint -q "$TREE/proc" || mount -t proc proc "$TREE/proc"
    mountpoint -q "$TREE/dev" || mount --bind /dev "$TREE/dev"
    mountpoint -q "$TREE/dev/pts" || mount --bind /dev/pts "$TREE/dev/pts"
    mountpoint -q "$TREE/sys" || mount --bind /sys "$TREE/sys"
}

run_in_tree() {
    [ $# -gt 0 ] || die "run: no command"
    mount_basics
    mkdir -p "$TREE/src" "$TREE/opt/pebble"
    mount --bind "$ROOT" "$TREE/src"
    if [ -x "$PEBBLE_DIR/bin/pebble" ]; then
        mount --bind "$PEBBLE_DIR" "$TREE/opt/pebble"
        mount -o remount,bind,ro "$TREE/opt/pebble"
    fi
    # Tests write in /tmp (mode 1777 in the tree); the worker user must be
    # able to read what they put there.
    in_tree /bin/sh -c 'cd /src && exec "$@"' sh env PEBBLE_DIR=/opt/pebble ACME_DISTRO="$SUITE" \
        ${CI:+CI="$CI"} ${ACME_TEST_KEEP:+ACME_TEST_KEEP="$ACME_TEST_KEEP"} "$@"
}

mkdir -p "$DEPS/distro"
exec 9>"$LOCK"
flock 9
trap unmount_all EXIT
trap "exit 130" INT TERM HUP
# A run that was killed may have left its mounts.
unmount_all

case "$ACTION" in
    tree) make_tree ;;
    run)
        make_tree
        run_in_tree "$@"
        ;;
    *) die "unknown action \"$ACTION\" (tree or run)" ;;
esac
