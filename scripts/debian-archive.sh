# Sourced by setup-deps.sh and distro.sh: debian_archive prints the Debian
# archive this machine already uses.
# shellcheck shell=bash

# The archive this machine already uses, read from its apt configuration so
# that no mirror is named here. Security and update suites live elsewhere.
debian_archive() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        uri=$(awk 'BEGIN { RS = ""; FS = "\n" }
            {
                uri = ""; suites = ""; types = ""
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^URIs:/)   { split($i, a, /[ \t]+/); uri = a[2] }
                    if ($i ~ /^Suites:/) suites = $i
                    if ($i ~ /^Types:/)  types = $i
                }
                if (uri != "" && types ~ /[ \t]deb([ \t]|$)/ && suites !~ /security/) {
                    print uri; exit
                }
            }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    if [ -r /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && !/security/ {
                for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/) { print $i; exit }
            }' /etc/apt/sources.list)
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    fi
    return 1
}
