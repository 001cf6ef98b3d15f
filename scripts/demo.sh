#!/usr/bin/env bash
# sluice's main job end to end on the embedded queue. Today (before the
# fetch engine lands) it shows ingest and status: it generates a feed of
# 10,000 product-image records with a few bad lines, ingests it into
# demo/sluice.db, ingests it again (all unchanged), and shows the status.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh build
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$(nproc)" --target sluice gen_feed >/dev/null

sluice=build/release/sluice
rm -rf demo && mkdir demo
build/release/bench/gen_feed 10000 jsonl https://partner.example >demo/feed.jsonl
printf '%s\n' '{"id":"bad-1","url":"ftp://partner.example/x.jpg"}' \
    '{"id":"bad-2","url":"https://partner.example/y.jpg","key":"../../etc"}' \
    'this line is not JSON' >>demo/feed.jsonl
export SLUICE_DB=demo/sluice.db

echo "\$ sluice ingest demo/feed.jsonl"
"$sluice" ingest demo/feed.jsonl || true
echo
echo "\$ sluice ingest demo/feed.jsonl   # again: nothing changes"
"$sluice" ingest demo/feed.jsonl 2>/dev/null || true
echo
echo "\$ sluice status"
"$sluice" status
echo
echo "(fetching into a store arrives with 'sluice run'; see README.md)"
