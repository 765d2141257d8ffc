#!/usr/bin/env bash
# Builds libnginx-mod-http-acme_<version>_<arch>.deb for the distribution it
# runs on, the way Debian builds its nginx module packages (dh with
# dh-sequence-nginx from nginx-dev; see debian/rules), out of a copy of the
# checkout so that nothing is written into it but the package itself.
#
#   scripts/build-deb.sh OUTDIR [JOBS]
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${1:?usage: $0 OUTDIR [JOBS]}
JOBS=${2:-$(nproc)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

die() {
    echo "build-deb: $*" >&2
    exit 1
}

version=$(sed -n 's/^#define NGX_HTTP_ACME_VERSION "\(.*\)"$/\1/p' src/ngx/ngx_http_acme.h)
[ -n "$version" ] || die "no NGX_HTTP_ACME_VERSION in src/ngx/ngx_http_acme.h"
deb_version=$(dpkg-parsechangelog -l debian/changelog -S Version)
[ "${deb_version%-*}" = "$version" ] ||
    die "debian/changelog is at $deb_version, the module at $version: add a changelog entry for $version-1"

# nginx's configure turns ".c" into ".o" anywhere in an object's path, and
# dh gives it an absolute build directory: the copy goes where no path
# component can hold a dot.
work=$(mktemp -d /tmp/ngx-acme-deb-XXXXXXXX)
trap 'rm -rf "$work"' EXIT
src="$work/libnginx-mod-http-acme"
mkdir "$src" "$src/docs"
cp -a config src debian README.md "$src/"
cp -a docs/*.md "$src/docs/"

echo "build-deb: building libnginx-mod-http-acme $deb_version in $work"
if ! (cd "$src" && dpkg-buildpackage -b -uc -us -J"$JOBS") >"$OUT/deb-build.log" 2>&1; then
    tail -40 "$OUT/deb-build.log" >&2
    die "dpkg-buildpackage failed (log: $OUT/deb-build.log)"
fi
shopt -s nullglob
debs=("$work"/*.deb)
[ ${#debs[@]} -gt 0 ] || die "dpkg-buildpackage made no package"
for deb in "${debs[@]}"; do
    mv -f "$deb" "$OUT/"
    echo "build-deb: $OUT/$(basename "$deb")"
done
