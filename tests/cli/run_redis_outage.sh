# A run on a Redis queue whose Redis goes away mid-run (docs/queue.md,
# "Redis unreachable"): stopped (SIGSTOP, a hang), or killed with -9 and
# restarted from its AOF (appendfsync always), for about 5 s. The runs
# wait: nothing new is leased or started, the marks of what finishes are
# kept and written when Redis is back; they say so once, and every record
# ends done, byte-exact, none dead, within the cap. Three runners, cap 20,
# through a kill -9: each object stored once (the runs' manifests), 0
# violations at the origin. A Redis that stays away past --outage-max:
# the run stops with one line, exit 3, nothing dead-lettered.
. "$(dirname "$0")/lib.sh"
. "$SOURCE_DIR/tests/redis/start.sh"

N=20
SIZE=uniform:2000:20000
RECORDS=600

# The lines of FILE that say the queue went away, and came back.
went() { grep -c "queue unreachable since [0-9:]*, retrying" "$1"; }
back() { grep -c "queue reachable again (unreachable since" "$1"; }

# How many keys the manifests name more than once, and how many keys.
twice() { cat "$@" | sed 's/.*"key":"\([^"]*\)".*/\1/' | sort | uniq -d | wc -l; }
keys() { cat "$@" | sed 's/.*"key":"\([^"]*\)".*/\1/' | sort -u | wc -l; }

case_ "Redis stopped (a hang) for 5 s mid-run: the run waits and finishes"
start_redis h
start_origin o --limit $N --hold-abandoned --latency uniform:100:400 \
    --size $SIZE
"$GEN" $RECORDS jsonl "http://127.0.0.1:$o_port" >h.jsonl
# timeout=1: a command Redis does not answer within 1 s is an outage.
h_db="$h_url?timeout=1"
"$SLUICE" ingest --allow-private --db "$h_db" h.jsonl >/dev/null 2>&1
"$SLUICE" run --db "$h_db" --store hstore --allow-net 127.0.0.1/32 \
    --max-concurrency $N --timeout 5 --quiet --json >h.json 2>h.err &
run_pid=$!
sleep 1.5
kill -STOP "$h_pid"
# Once it has noticed (1 to 2 s), the run idles while it waits.
sleep 2
busy_ms=$(cpu_ms $run_pid 2.5)
sleep 0.5
kill -CONT "$h_pid"
wait $run_pid
rc=$?
cat h.err
echo "# the run used $busy_ms ms of CPU in 2.5 s of the outage: $(cat h.json)"
[ "$busy_ms" -lt 500 ] || fail "the run used ${busy_ms} ms of CPU in 2.5 s of waiting"
assert_eq "$rc" 0
assert_eq "$(went h.err)" 1
assert_eq "$(back h.err)" 1
assert_eq "$(status_field "$h_db" done)" $RECORDS
assert_eq "$(status_field "$h_db" dead)" 0
assert_eq "$(origin_stat "$o_port" violations)" 0
assert_eq "$(verify_objects hstore 0 $((RECORDS - 1)) $SIZE)" $RECORDS
assert_eq "$(stray_files hstore)" ""

case_ "Redis killed with -9, restarted from its AOF 5 s later: three runners finish, each object once"
start_redis k
start_origin p --limit $N --hold-abandoned --latency uniform:100:400 \
    --size $SIZE
"$GEN" $RECORDS jsonl "http://127.0.0.1:$p_port" >k.jsonl
"$SLUICE" ingest --allow-private --db "$k_url" k.jsonl >/dev/null 2>&1
pids=""
for r in 1 2 3; do
    "$SLUICE" run --db "$k_url" --store kstore --allow-net 127.0.0.1/32 \
        --max-concurrency $N --timeout 5 --manifest "k$r.jsonl" \
        --quiet --json >"k$r.json" 2>"k$r.err" &
    pids="$pids $!"
done
sleep 2
before=$(cat k1.jsonl k2.jsonl k3.jsonl | wc -l)
kill -9 "$k_pid"
wait "$k_pid" 2>/dev/null
sleep 5
start_redis k
for pid in $pids; do
    wait "$pid" || fail "a runner exited $?: $(cat k*.err)"
done
for r in 1 2 3; do
    echo "runner $r: $(cat "k$r.json")"
    assert_eq "$(went "k$r.err")" 1
    assert_eq "$(back "k$r.err")" 1
done
echo "$before objects stored before the kill"
[ "$before" -gt 0 ] && [ "$before" -lt $RECORDS ] ||
    fail "Redis was killed with $before of $RECORDS stored"
assert_eq "$(status_field "$k_url" done)" $RECORDS
assert_eq "$(status_field "$k_url" dead)" 0
violations=$(origin_stat "$p_port" violations)
peak=$(origin_stat "$p_port" peak_in_flight)
echo "violations=$violations peak=$peak"
assert_eq "$violations" 0
[ "$peak" -le $N ] || fail "peak $peak over $N"
assert_eq "$(keys k1.jsonl k2.jsonl k3.jsonl)" $RECORDS
assert_eq "$(twice k1.jsonl k2.jsonl k3.jsonl)" 0
assert_eq "$(cat k1.jsonl k2.jsonl k3.jsonl | wc -l)" $RECORDS
assert_eq "$(verify_objects kstore 0 $((RECORDS - 1)) $SIZE)" $RECORDS
assert_eq "$(stray_files kstore)" ""

case_ "Redis away past --outage-max: one line, exit 3, nothing dead"
start_redis g
start_origin q --latency uniform:100:400 --size $SIZE
"$GEN" 300 jsonl "http://127.0.0.1:$q_port" >g.jsonl
"$SLUICE" ingest --allow-private --db "$g_url" g.jsonl >/dev/null 2>&1
"$SLUICE" run --db "$g_url" --store gstore --allow-net 127.0.0.1/32 \
    --max-concurrency 10 --timeout 5 --outage-max 3 --quiet \
    >g.out 2>g.err &
run_pid=$!
sleep 1
kill -9 "$g_pid"
wait "$g_pid" 2>/dev/null
t0=$(date +%s.%N)
wait $run_pid
rc=$?
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
cat g.err
echo "# the run stopped ${took} s after Redis died"
assert_eq "$rc" 3
assert_eq "$(went g.err)" 1
assert_eq "$(back g.err)" 0
assert_eq "$(grep -c 'gave up after 3 s (--outage-max)' g.err)" 1
assert_has "$(grep 'gave up' g.err)" "$g_sock"
awk -v t="$took" 'BEGIN { exit !(t >= 3 && t < 12) }' ||
    fail "the run stopped ${took} s after Redis died"
start_redis g
assert_eq "$(status_field "$g_url" dead)" 0
assert_eq "$(status_field "$g_url" total)" 300

finish
