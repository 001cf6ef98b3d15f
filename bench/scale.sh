#!/usr/bin/env bash
# The "scale" workload (issue 6): a queue of SCALE_N (1,000,000) pending
# records. Prints the time from starting `sluice run` to the origin
# receiving its first request, and sluice's peak RSS over SCALE_SECONDS
# (20) of running (memory must not grow with the queue).
#   bash bench/scale.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$PWD/build/release}
n=${SCALE_N:-1000000}
secs=${SCALE_SECONDS:-20}
if [ $# -eq 0 ]; then
    bash scripts/setup.sh build test bench >&2
    cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build/release -j "$(nproc)" \
        --target sluice gen_feed sluice_origin >/dev/null
fi
out=$PWD/bench/out/scale
rm -rf "$out" && mkdir -p "$out"
cd "$out"

"$bin/tests/origin/sluice-origin" --quiet --port-file origin.port \
    --limit 20 --latency lognormal:30:1 --size fixed:4096 &
origin=$!
trap 'kill $origin 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s origin.port ] && break; sleep 0.05; done
base=http://127.0.0.1:$(cat origin.port)

"$bin/bench/gen_feed" "$n" jsonl "$base" >feed.jsonl
"$bin/sluice" ingest --quiet --allow-private --db q.db feed.jsonl >/dev/null

# The origin's clock just before the run starts, and the first request's
# start on the same clock.
t0=$(curl -s "$base/_clock")
/usr/bin/time -f "%M" -o rss.txt timeout -s TERM "$secs" \
    "$bin/sluice" run --db q.db --store store --allow-private \
    --max-concurrency 20 --quiet >/dev/null 2>&1 || true
first=$(curl -s "$base/_log" | awk 'NR == 1 || $3 < m { m = $3 } END { print m }')
done_n=$(sqlite3 q.db "SELECT count(*) FROM records WHERE state = 3")
printf 'first request after %d ms with %d records pending\n' \
    $((first - t0)) "$n"
printf 'peak RSS over %d s: %.1f MiB (%d records done meanwhile)\n' \
    "$secs" "$(tail -n 1 rss.txt | awk '{ print $1 / 1024 }')" "$done_n"
echo "(targets: first request within 1000 ms; peak RSS <= 32 MiB)"
