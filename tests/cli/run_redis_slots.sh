# Several runners on one Redis queue share one cap per origin (the slot
# service on Redis, docs/queue.md "Slots on Redis"): three `sluice run`
# processes, each allowed 20 at once, against a test origin that allows
# 20 and keeps counting a request whose client left until its response
# would have been written. 0 violations, a peak of at most 20, every
# object byte-exact, every record done by exactly one runner; and the
# same while one runner is killed and restarted, one stopped past its
# deadlines and one runs a minute off.
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

case_ "a runner stopped past its slots' deadlines: another takes them"
# Runner a holds 4 slots, then is stopped for 3.5 s: its slots (1 s + 1 s)
# go back by Redis's clock, and b uses them; a wakes, drops the answers
# that came meanwhile and fetches those records again.
start_redis f
start_origin g --limit 4 --hold-abandoned --latency fixed:300 --size fixed:3000
"$GEN" 200 jsonl "http://127.0.0.1:$g_port" >f.jsonl
"$SLUICE" ingest --allow-private --db "$f_url" f.jsonl >/dev/null 2>&1
FRUN=(--store fstore --allow-net 127.0.0.1/32 --max-concurrency 4
    --timeout 1 --backoff-base 0.05 --quiet --json)
"$SLUICE" run --db "$f_url" "${FRUN[@]}" >a.json 2>a.err &
a_pid=$!
for _ in $(seq 300); do
    [ "$(origin_stat "$g_port" in_flight)" -ge 4 ] 2>/dev/null && break
    sleep 0.02
done
kill -STOP $a_pid
stopped=$(curl -s "http://127.0.0.1:$g_port/_clock" | tr -dc 0-9)
run "$SLUICE" slots list --db "$f_url" --json
echo "sluice slots: $out"
assert_has "$out" "127.0.0.1:$g_port"
assert_has "$out" '"held":4'

"$SLUICE" run --db "$f_url" "${FRUN[@]}" >b.json 2>b.err &
b_pid=$!
sleep 3.5
kill -CONT $a_pid
wait $a_pid || fail "runner a exited $?: $(cat a.err)"
wait $b_pid || fail "runner b exited $?: $(cat b.err)"
assert_eq "$(status_field "$f_url" done)" 200
assert_eq "$(origin_stat "$g_port" violations)" 0
[ "$(origin_stat "$g_port" peak_in_flight)" -le 4 ] || fail "peak over 4"
assert_eq "$("$VERIFY" store fixed:3000 fstore)" 200
retried=$(sed -n 's/.*"retried":\([0-9]*\).*/\1/p' a.json)
[ "${retried:-0}" -ge 4 ] || fail "runner a used answers from its stop: $(cat a.json)"
b_done=$(sed -n 's/^{"done":\([0-9]*\),.*/\1/p' b.json)
[ "${b_done:-0}" -gt 0 ] || fail "runner b did nothing: $(cat b.json)"
# b started nothing before a's slots were over on Redis's clock: the
# origin's log (start_ms on its clock, /_clock) has no request begun
# between the stop and 1.5 s after it.
[ -n "$stopped" ] || fail "no time from the origin's /_clock"
curl -s "http://127.0.0.1:$g_port/_log" >g.log
early=$(awk -v s="$stopped" '$3 > s + 100 && $3 < s + 1500' g.log | wc -l)
assert_eq "$early" 0
first=$(awk -v s="$stopped" '$3 > s + 100 && (m == "" || $3 - s < m) {
    m = $3 - s } END { print m }' g.log)
echo "the first request after the stop began $first ms after it"
[ "${first:-0}" -ge 1500 ] || fail "a request began $first ms after the stop"

case_ "three runners: one killed and restarted, one stopped, one a minute off"
# The issue's chaos: on one queue and one origin (cap $N, counting a
# request whose client left until its answer would have been written),
# runner k1 is stopped past its slots' deadlines and resumed, k2 runs with
# its wall clock a minute ahead (libfaketime), k3 is killed with -9 mid-run
# and started again. 0 violations, nothing lost, every object byte-exact.
FAKETIME_LIB=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
[ -r "$FAKETIME_LIB" ] || skip "libfaketime is not installed (scripts/setup.sh test)"
SKEW=(env LD_PRELOAD="$FAKETIME_LIB" FAKETIME=+60s)
if [ "${SLUICE_SANITIZED:-0}" = 1 ]; then
    # The sanitizers' runtime wants to come first; libfaketime does here.
    SKEW+=(ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
fi
skew=$(( $("${SKEW[@]}" date +%s) - $(date +%s) ))
[ "$skew" -ge 55 ] && [ "$skew" -le 65 ] || fail "faketime skew $skew s"
start_redis c
start_origin h --limit $N --hold-abandoned --latency uniform:20:300 \
    --size $SIZE
"$GEN" $RECORDS jsonl "http://127.0.0.1:$h_port" >c.jsonl
"$SLUICE" ingest --allow-private --db "$c_url" c.jsonl >/dev/null 2>&1
CRUN=(run --db "$c_url" --store cstore --allow-net 127.0.0.1/32
    --max-concurrency $N --timeout 1 --backoff-base 0.05 --quiet --json)
"$SLUICE" "${CRUN[@]}" >k1.json 2>k1.err &
k1=$!
"${SKEW[@]}" "$SLUICE" "${CRUN[@]}" >k2.json 2>k2.err &
k2=$!
"$SLUICE" "${CRUN[@]}" >k3a.json 2>k3a.err &
k3=$!
sleep 1
kill -STOP $k1
kill -9 $k3
wait $k3 2>/dev/null
"$SLUICE" "${CRUN[@]}" >k3.json 2>k3.err &
k3=$!
sleep 3 # past k1's slots' deadlines (--timeout 1, a hold of 2 s)
kill -CONT $k1
for pid in $k1 $k2 $k3; do
    wait "$pid" || fail "a runner exited $?: $(cat k1.err k2.err k3.err)"
done
echo "violations=$(origin_stat "$h_port" violations)" \
    "peak=$(origin_stat "$h_port" peak_in_flight)"
assert_eq "$(status_field "$c_url" done)" $RECORDS
assert_eq "$(status_field "$c_url" dead)" 0
assert_eq "$(origin_stat "$h_port" violations)" 0
[ "$(origin_stat "$h_port" peak_in_flight)" -le $N ] || fail "peak over $N"
assert_eq "$(verify_objects cstore 0 $((RECORDS - 1)) $SIZE)" $RECORDS
assert_eq "$(stray_files cstore)" ""
for k in k1 k2 k3; do
    d=$(sed -n 's/^{"done":\([0-9]*\),.*/\1/p' "$k.json")
    echo "runner $k: ${d:-?} done"
done

case_ "one runner alone on a Redis queue is not refused, nor a second"
run "$SLUICE" run --db "$r_url" --store store --allow-net 127.0.0.1/32 \
    --max-concurrency $N --quiet
assert_rc 0

finish
