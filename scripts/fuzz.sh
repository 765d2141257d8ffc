#!/usr/bin/env bash
# Runs each libFuzzer target for a while on a working copy of its seed
# corpus (t/fuzz/corpus/<target>/ stays as committed), at the lowest CPU
# priority because the machine is shared, one at a time. Fails on the first
# crash, leak, sanitizer report or failed check; the input that did it is
# kept under <build>/artifacts/. Prints one result line per target and
# appends it to <build>/results.txt.
#   scripts/fuzz.sh <build dir> <seconds> <target>...
set -euo pipefail

build=$1 seconds=$2
shift 2
cd "$(dirname "$0")/.."
mkdir -p "$build/work" "$build/artifacts" "$build/logs"

# UBSan reports go through libFuzzer's crash handling; ASan's leak check runs
# after every input that freed less than it allocated.
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1

for target in "$@"; do
    work="$build/work/$target"
    rm -rf "$work" && mkdir -p "$work"
    cp -a "t/fuzz/corpus/$target/." "$work/"
    log="$build/logs/$target.log"
    echo "fuzz: $target for ${seconds}s ($(ls "$work" | wc -l) seed inputs)"
    rc=0
    nice -n 19 "$build/$target" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 \
        -max_len=16384 -print_final_stats=1 -artifact_prefix="$build/artifacts/$target-" \
        "$work" >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    files=$(ls "$work" | wc -l)
    bytes=$(du -sb "$work" | cut -f1)
    line="$target: ${runs:-?} runs in ${seconds} s, corpus $files inputs ($bytes bytes), cov ${cov:-?}, $(date -u +%Y-%m-%d), $(uname -m) $(nproc) cores"
    if [ $rc -ne 0 ]; then
        echo "fuzz: $target FAILED (exit $rc); log $log:" >&2
        grep -E -A30 'ERROR:|runtime error:|check failed:|==[0-9]+==' "$log" | head -60 >&2
        exit 1
    fi
    echo "fuzz: $line"
    echo "$line" >>"$build/results.txt"
done
