# Several runners on one Redis queue share one cap per origin (the slot
# service on Redis, docs/queue.md "Slots on Redis"): three `sluice run`
# processes, each allowed 20 at once, against a test origin that allows
# 20 and keeps counting a request whose client left until its response
# would have been written. 0 violations, a peak of at most 20, every
# object byte-exact, every record done by exactly one runner.
. "$(dirname "$0")/lib.sh"
. "$SOURCE_DIR/tests/redis/start.sh"

N=20
SIZE=uniform:2000:40000
RECORDS=600

start_redis r
start_origin o --limit $N --hold-abandoned --latency uniform:20:300 \
    --size $SIZE
"$GEN" $RECORDS jsonl "http://127.0.0.1:$o_port" >feed.jsonl
"$SLUICE" ingest --allow-private --db "$r_url" feed.jsonl >/dev/null 2>&1

case_ "three runners, each --max-concurrency $N: $N at once in all"
pids=""
for k in 1 2 3; do
    "$SLUICE" run --db "$r_url" --store store --allow-net 127.0.0.1/32 \
        --max-concurrency $N --timeout 10 --quiet --json \
        >"run$k.json" 2>"run$k.err" &
    pids="$pids $!"
done
for pid in $pids; do
    wait "$pid" || fail "a runner exited $?: $(cat run*.err)"
done
assert_eq "$(status_field "$r_url" done)" $RECORDS
assert_eq "$(status_field "$r_url" dead)" 0
violations=$(origin_stat "$o_port" violations)
peak=$(origin_stat "$o_port" peak_in_flight)
echo "violations=$violations peak=$peak"
assert_eq "$violations" 0
[ "$peak" -le $N ] || fail "peak $peak over $N"
[ "$peak" -ge $((N / 2)) ] || fail "peak $peak: the runners barely ran"
# Each record marked done by one runner: their counts add up, and each
# runner did some.
sum=0
for k in 1 2 3; do
    d=$(sed -n 's/^{"done":\([0-9]*\),.*/\1/p' "run$k.json")
    echo "runner $k: $d done"
    [ -n "$d" ] || fail "runner $k printed no summary: $(cat "run$k.json")"
    [ "${d:-0}" -gt 0 ] || fail "runner $k did nothing"
    sum=$((sum + ${d:-0}))
done
assert_eq "$sum" $RECORDS
assert_eq "$(verify_objects store 0 $((RECORDS - 1)) $SIZE)" $RECORDS
assert_eq "$(stray_files store)" ""

case_ "one runner alone on a Redis queue is not refused, nor a second"
run "$SLUICE" run --db "$r_url" --store store --allow-net 127.0.0.1/32 \
    --max-concurrency $N --quiet
assert_rc 0

finish
