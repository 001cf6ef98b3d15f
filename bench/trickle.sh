#!/usr/bin/env bash
# What no client can fence (issue 19; docs/queue.md, "Slots on Redis"):
# a runner frozen (SIGSTOP) while the origin trickles its responses keeps
# its connections open, so the origin still counts its requests after
# their slots' deadlines, when Redis gives the slots to another runner.
# Two runners on one Redis queue, cap CAP; runner A's CAP requests are
# fault=trickle (a byte a second), A is stopped, runner B then fetches
# ordinary images. Prints what the origin counted: the peak in flight
# against the cap, and the requests it refused as over it.
#
#   bash bench/trickle.sh [BUILD_DIR]      CAP=4 TIMEOUT_S=3 B_S=15
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cap=${CAP:-4}
timeout_s=${TIMEOUT_S:-3}
. "$root/bench/lib.sh"
bench_prepare trickle "$@"

sock=$out/redis.sock
redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 \
    --dir "$out" --appendonly yes --appendfsync always --save "" \
    --logfile "$out/redis.log" &
pids+=($!)
for _ in $(seq 100); do
    [ "$(redis-cli -s "$sock" PING 2>/dev/null)" = PONG ] && break
    sleep 0.05
done
db=unix://$sock

"$bin/tests/origin/sluice-origin" --quiet --port-file origin.port \
    --limit "$cap" --latency fixed:200 --size fixed:4096 &
pids+=($!)
for _ in $(seq 100); do [ -s origin.port ] && break; sleep 0.05; done
origin=http://127.0.0.1:$(cat origin.port)
stat() { curl -s "$origin/_stats" | sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"; }

for i in $(seq 1 "$cap"); do
    echo "{\"id\":\"slow-$i\",\"url\":\"$origin/img/$i.jpg?fault=trickle\"}"
done >slow.jsonl
"$bin/sluice" ingest --quiet --allow-private --db "$db" slow.jsonl >/dev/null
run=("$bin/sluice" run --db "$db" --max-concurrency "$cap" --quiet
     --timeout "$timeout_s" --stall-timeout 60 --allow-private)

# A takes every slot with a trickled request, and is frozen.
"${run[@]}" --store a >a.out 2>&1 &
a=$!
pids+=($a)
for _ in $(seq 100); do [ "$(stat in_flight)" = "$cap" ] && break; sleep 0.05; done
kill -STOP $a
stopped=$EPOCHREALTIME
echo "runner A: $(stat in_flight) trickled requests at the origin; A stopped" >&2

# B's records come after A's; B runs for B_S seconds while A is frozen
# (it would wait as long as A stays frozen: the origin refuses it).
"$bin/bench/gen_feed" 40 jsonl "$origin" >fast.jsonl
"$bin/sluice" ingest --quiet --allow-private --db "$db" fast.jsonl >/dev/null
timeout -s INT "${B_S:-15}" "${run[@]}" --store b --json >b.out 2>b.err ||
    true
ended=$EPOCHREALTIME
echo "runner B: $(cat b.out)" >&2
in_flight=$(stat in_flight) peak=$(stat peak_in_flight)
violations=$(stat violations)
kill -CONT $a
kill $a 2>/dev/null || true
wait $a 2>/dev/null || true

echo "trickle: cap $cap, --timeout ${timeout_s}s (a slot's hold $((timeout_s + 1)) s);" \
    "runner A frozen with $cap trickled requests open at the origin"
requests=$(sed -n 's/.*"requests":\([0-9]*\).*/\1/p' b.out)
done=$(sed -n 's/.*"done":\([0-9]*\).*/\1/p' b.out)
awk -v s="${stopped/,/.}" -v e="${ended/,/.}" -v p="$peak" \
    -v v="$violations" -v c="$cap" -v f="$in_flight" -v r="${requests:-0}" \
    -v d="${done:-0}" 'BEGIN {
    printf "origin: peak in flight %d against a cap of %d; %d requests " \
        "refused as over it\n", p, c, v
    printf "runner B: %d requests in %.1f s after A stopped, %d images " \
        "stored; %d requests in flight at the origin at the end\n",
        r, e - s, d, f }'
