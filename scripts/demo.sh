#!/usr/bin/env bash
# sluice's main job end to end, on the embedded queue: a local origin that
# enforces a cap of 20 requests (answering 503 and counting a violation
# for the 21st) and misbehaves now and then (500s, a 429, resets, short
# bodies, stalls, redirects, 404s and 410s); a feed of 10,000 product
# images; ingest; run at --max-concurrency 20 to the end with the progress
# line; then the status, the dead letters, and what the origin saw.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh build test >&2
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$(nproc)" \
    --target sluice gen_feed sluice_origin >/dev/null

bin=build/release
rm -rf demo && mkdir demo
"$bin/tests/origin/sluice-origin" --quiet --port-file demo/origin.port \
    --limit 20 --latency lognormal:10:1 --size uniform:2000:60000 &
origin=$!
trap 'kill $origin 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s demo/origin.port ] && break; sleep 0.05; done
base=http://127.0.0.1:$(cat demo/origin.port)
export SLUICE_DB=demo/sluice.db

say() { printf '\n$ %s\n' "$*"; }

"$bin/bench/gen_feed" 10000 jsonl "$base" faults >demo/feed.jsonl
printf '%s\n' '{"id":"bad-1","url":"ftp://partner.example/x.jpg"}' \
    '{"id":"bad-2","url":"https://partner.example/y.jpg","key":"../../etc"}' \
    >>demo/feed.jsonl
echo "A partner at $base allows 20 requests at once."
say "sluice ingest --allow-private demo/feed.jsonl   # the origin is on loopback"
"$bin/sluice" ingest --allow-private demo/feed.jsonl || true
say "sluice run --store demo/store --max-concurrency 20 --allow-net 127.0.0.1/32 --timeout 3"
# The origin is on loopback, which sluice refuses unless allowed. It
# answers within milliseconds, so --timeout 3: a transfer sluice gives up
# on (a stall) keeps its slot until --timeout after it was sent, and
# this feed stalls 200 times.
"$bin/sluice" run --store demo/store --max-concurrency 20 \
    --allow-net 127.0.0.1/32 --stall-timeout 1 --timeout 3 \
    --backoff-base 0.2 \
    2> >(grep -v '^sluice: dead: ' >&2) || true
say "sluice status"
"$bin/sluice" status
say "sluice dlq list   # the first lines"
"$bin/sluice" dlq list >demo/dlq.txt
head -5 demo/dlq.txt | cut -c1-150
say "curl $base/_stats   # what the origin saw"
curl -s "$base/_stats"
echo
echo
echo "The origin's peak_in_flight is at most 20 and violations is 0: the"
echo "cap held. Objects are in demo/store/; run 'sluice status' with"
echo "SLUICE_DB=demo/sluice.db to look again."
