#!/usr/bin/env bash
# Ingest benchmark (issue 2's targets): N JSONL records (default
# 1,000,000) into an empty database, then the same file again (all
# unchanged), each timed with its peak RSS; side by side, the peer a user
# would script instead: sqlite3's own .import of the same records as CSV
# into a table keyed by id. Median of ROUNDS rounds (default 3).
#   bash bench/ingest.sh        N=200000 ROUNDS=5 bash bench/ingest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-1000000}
rounds=${ROUNDS:-3}

bash scripts/setup.sh build bench
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$(nproc)" --target sluice gen_feed >/dev/null
sluice=$PWD/build/release/sluice
out=bench/out/ingest
rm -rf "$out" && mkdir -p "$out"
build/release/bench/gen_feed "$n" jsonl >"$out/feed.jsonl"
build/release/bench/gen_feed "$n" csv >"$out/feed.csv"

# timed LABEL CMD...: append "LABEL seconds peak_kib" to $out/times.
timed() {
    local label=$1
    shift
    /usr/bin/time -f "$label %e %M" -a -o "$out/times" "$@" >/dev/null
}

for r in $(seq "$rounds"); do
    rm -f "$out"/q.db* "$out"/peer.db*
    timed sluice-new "$sluice" ingest --quiet --db "$out/q.db" "$out/feed.jsonl"
    timed sluice-again "$sluice" ingest --quiet --db "$out/q.db" \
        "$out/feed.jsonl"
    timed sqlite3-import sqlite3 "$out/peer.db" \
        "CREATE TABLE r(id TEXT PRIMARY KEY, url TEXT, colour TEXT)" \
        ".mode csv" ".import --skip 1 $out/feed.csv r"
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-16s %10s %14s %12s %10s\n' workload seconds records/s peak_RSS_MiB \
    vs_peer
peer=$(awk '$1=="sqlite3-import"{print $2}' "$out/times" | median)
for label in sluice-new sluice-again sqlite3-import; do
    secs=$(awk -v l=$label '$1==l{print $2}' "$out/times" | median)
    kib=$(awk -v l=$label '$1==l{print $3}' "$out/times" | sort -n | tail -1)
    awk -v l=$label -v s="$secs" -v k="$kib" -v n="$n" -v p="$peer" \
        'BEGIN {printf "%-16s %10.2f %14.0f %12.1f %9.2fx\n",
                l, s, n / s, k / 1024, p / s}'
done
echo "(targets: sluice-new >= 300000 records/s, RSS <= 64 MiB;"
echo " sluice-again at least as fast as sluice-new)"
