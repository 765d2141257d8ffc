#!/usr/bin/env bash
# Installs what building and testing ngx_http_acme_module needs on Debian 12,
# and fetches Pebble 2.10 from Debian's newer suites into .deps/pebble.
# Idempotent: a second run installs and downloads nothing.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/debian-archive.sh
. "$ROOT/scripts/debian-archive.sh"
DEPS="$ROOT/.deps"
PEBBLE_DIR="$DEPS/pebble"
PEBBLE_WANT=2.10.0

PACKAGES=(
    build-essential nginx nginx-dev libssl-dev libcurl4-openssl-dev
    libjansson-dev libgtest-dev googletest pebble perl
    libio-socket-ssl-perl libnet-ssleay-perl libjson-pp-perl
    curl openssl clang-format wrk debootstrap debhelper
    clang-14 libfuzzer-14-dev valgrind
    prometheus faketime  # promtool for the metrics test, libfaketime for t/86
    libldns-dev ldnsutils bind9 bind9-utils bind9-dnsutils  # dns-01: RFC 2136 client, test DNS server
    libhiredis-dev redis-server redis-tools                   # cluster storage and its test server
    libnginx-mod-stream  # nginx's stream module, for ngx_stream_acme_module's tests and package
)
# JSON::PP is in perl core; its own package is only a newer copy.
OPTIONAL=(libjson-pp-perl)

export DEBIAN_FRONTEND=noninteractive

log() { echo "setup-deps: $*"; }
warn() { echo "setup-deps: warning: $*" >&2; }

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

is_optional() {
    local p
    for p in "${OPTIONAL[@]}"; do [ "$p" = "$1" ] && return 0; done
    return 1
}

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup-deps: $1 needs root (run as root or with sudo)" >&2
        exit 1
    fi
}

nginx_pid() {
    local pid
    [ -r /run/nginx.pid ] || return 1
    pid=$(cat /run/nginx.pid 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# The distro's nginx service would hold ports 80/443 and is not what the
# tests run: keep it from starting, and stop it if it did.
stop_distro_nginx() {
    local pid i
    pid=$(nginx_pid) || return 0
    log "stopping the distro's nginx service (pid $pid)"
    service nginx stop >/dev/null 2>&1 || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        [ "$i" -eq 10 ] && kill -TERM "$pid" 2>/dev/null
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0

    need_root "installing ${missing[*]}"
    log "installing ${missing[*]}"
    apt-get update -qq

    local wanted=()
    for p in "${missing[@]}"; do
        if is_optional "$p" && ! apt-cache show "$p" >/dev/null 2>&1; then
            log "$p is not in the archive; skipping it"
            continue
        fi
        wanted+=("$p")
    done
    [ ${#wanted[@]} -eq 0 ] && return 0

    # policy-rc.d exit 101 tells invoke-rc.d not to start services.
    local made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    apt-get install -y -q --no-install-recommends "${wanted[@]}" || rc=$?
    [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
    [ $rc -eq 0 ] || { echo "setup-deps: apt-get install failed" >&2; exit $rc; }
}

# Pebble 2.10 is a static Go binary: Debian's forky/sid package runs on
# bookworm as it is. It is unpacked into .deps, never installed system-wide.
fetch_pebble() {
    if [ -x "$PEBBLE_DIR/bin/pebble" ] && [ -x "$PEBBLE_DIR/bin/pebble-challtestsrv" ]; then
        return 0
    fi
    local archive
    if ! archive=$(debian_archive); then
        warn "no Debian archive in the apt configuration; cannot fetch pebble $PEBBLE_WANT"
        return 1
    fi

    local tmp suite auth ok=""
    tmp=$(mktemp -d)
    TMP_DIRS+=("$tmp")
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/pkg"
    for suite in forky sid; do
        for auth in "signed-by=/usr/share/keyrings/debian-archive-keyring.gpg" "trusted=yes"; do
            echo "deb [$auth] $archive $suite main" >"$tmp/sources.list"
            local apt_opts=(
                -o "Dir::Etc::sourcelist=$tmp/sources.list"
                -o "Dir::Etc::sourceparts=-"
                -o "Dir::State::Lists=$tmp/lists"
                -o "Dir::Cache=$tmp/cache"
                -o "APT::Sandbox::User=root"
                -o "APT::Get::List-Cleanup=0"
                -o "Acquire::http::Timeout=30"
                -o "Acquire::Retries=1"
            )
            if ! apt-get -qq "${apt_opts[@]}" update >"$tmp/update.log" 2>&1; then
                continue
            fi
            rm -f "$tmp/pkg"/*.deb
            if (cd "$tmp/pkg" && apt-get -qq "${apt_opts[@]}" download pebble) >"$tmp/download.log" 2>&1; then
                ok="$suite, ${auth%%=*}"
                break 2
            fi
        done
    done
    if [ -z "$ok" ]; then
        warn "could not download pebble from $archive (forky, sid):"
        tail -5 "$tmp/update.log" "$tmp/download.log" 2>/dev/null >&2 || true
        return 1
    fi

    local deb version
    for deb in "$tmp/pkg"/pebble_*.deb; do break; done
    if ! { version=$(dpkg-deb -f "$deb" Version) && dpkg -x "$deb" "$tmp/root"; }; then
        warn "cannot unpack $deb"
        return 1
    fi
    if [ ! -x "$tmp/root/usr/bin/pebble" ] || [ ! -x "$tmp/root/usr/bin/pebble-challtestsrv" ]; then
        warn "pebble $version from $ok does not contain pebble and pebble-challtestsrv"
        return 1
    fi
    rm -rf "$PEBBLE_DIR"
    # "2.10.0+ds1-2" -> "2.10.0"
    if ! { mkdir -p "$PEBBLE_DIR/bin" &&
        echo "${version%%+*}" >"$PEBBLE_DIR/VERSION" &&
        install -m 0755 "$tmp/root/usr/bin/pebble" "$tmp/root/usr/bin/pebble-challtestsrv" \
            "$PEBBLE_DIR/bin/"; }; then
        rm -rf "$PEBBLE_DIR"
        warn "cannot install pebble into $PEBBLE_DIR"
        return 1
    fi
    log "pebble ${version%%+*} ($ok) unpacked into $PEBBLE_DIR"
}

TMP_DIRS=()
# shellcheck disable=SC2317  # invoked by the trap
cleanup() { [ ${#TMP_DIRS[@]} -eq 0 ] || rm -rf "${TMP_DIRS[@]}"; }
trap cleanup EXIT

install_packages
stop_distro_nginx
if ! fetch_pebble; then
    warn "falling back to /usr/bin/pebble (bookworm's 2.4); tests that need 2.10 will skip"
fi
exit 0
