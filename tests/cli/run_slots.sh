# The cap across crashes and restarts (DESIGN.md, invariant 1, "Slots"):
# the test origin keeps counting a request whose client went away until
# its response would have been written (--hold-abandoned), so a restarted
# run that reused the dead run's slots at once would be seen over the
# cap. kill -9 at random moments, SIGTERM past --grace, a Retry-After
# pause left by a killed run, a run stopped past its slots' deadlines,
# successive runs given different caps, and steps of the wall clock.
. "$(dirname "$0")/lib.sh"

N=10
SIZE=fixed:3000

# run_bg DB OUT ARGS...: sluice run in the background, its pid in $run_pid.
run_bg() {
    local db=$1 store=$2
    shift 2
    "$SLUICE" run --db "$db" --store "$store" --allow-net 127.0.0.1/32 \
        --quiet "$@" >"$db.out" 2>"$db.err" &
    run_pid=$!
}

# wait_for_stat PORT FIELD MIN: until the origin's FIELD is at least MIN.
wait_for_stat() {
    for _ in $(seq 300); do
        [ "$(origin_stat "$1" "$2")" -ge "$3" ] 2>/dev/null && return 0
        sleep 0.02
    done
    fail "the origin's $2 never reached $3"
}

# ------------------------------------------------------------ kill -9
case_ "kill -9 five times, restarting at once: the cap holds at the origin"
start_origin o --limit $N --hold-abandoned --latency uniform:100:1200 \
    --size $SIZE
RECORDS=250
"$GEN" $RECORDS jsonl "http://127.0.0.1:$o_port" >k.jsonl
"$SLUICE" ingest --allow-private --db k.db k.jsonl >/dev/null
KRUN=(--max-concurrency $N --timeout 3)
for k in 1 2 3 4 5; do
    run_bg k.db kout "${KRUN[@]}"
    # A random moment between 0.5 s and 2.5 s into the run.
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.5 + (r % 2000) / 1000 }')"
    kill -9 $run_pid 2>/dev/null
    wait $run_pid 2>/dev/null
    assert_eq "$(status_field k.db total)" $RECORDS
done
held=$(sqlite3 k.db "SELECT coalesce(sum(held), 0) FROM slots")
[ "$held" -gt 0 ] || fail "the killed run left no slots held"
run "$SLUICE" run --db k.db --store kout --allow-net 127.0.0.1/32 \
    "${KRUN[@]}"
assert_rc 0 "the final run"
assert_has "$err" "held for an earlier run"
assert_eq "$(status_field k.db done)" $RECORDS
assert_eq "$("$VERIFY" store $SIZE kout)" $RECORDS
assert_eq "$(origin_stat "$o_port" violations)" 0
assert_eq "$(origin_stat "$o_port" peak_in_flight)" $N
[ "$(origin_stat "$o_port" abandoned)" -gt 0 ] ||
    fail "no request was abandoned: the kills came at idle moments"

# ------------------------------------------------------------ SIGTERM
case_ "SIGTERM with transfers aborted past --grace, and a rerun at once"
curl -s "http://127.0.0.1:$o_port/_reset" >/dev/null
RECORDS=120
"$GEN" $RECORDS jsonl "http://127.0.0.1:$o_port" >t.jsonl
"$SLUICE" ingest --allow-private --db t.db t.jsonl >/dev/null
run_bg t.db tout --max-concurrency $N --timeout 3 --grace 0.1
wait_for_stat "$o_port" in_flight $N
kill -TERM $run_pid
wait $run_pid
assert_eq "$?" 143
run "$SLUICE" run --db t.db --store tout --allow-net 127.0.0.1/32 \
    --max-concurrency $N --timeout 3
assert_rc 0 "the rerun"
assert_has "$err" "held for an earlier run"
assert_eq "$(status_field t.db done)" $RECORDS
assert_eq "$("$VERIFY" store $SIZE tout)" $RECORDS
assert_eq "$(origin_stat "$o_port" violations)" 0
[ "$(origin_stat "$o_port" abandoned)" -gt 0 ] ||
    fail "no request was cut off by the stop"

# ------------------------------------------------------------ Retry-After
case_ "a Retry-After pause recorded by a killed run holds for the next"
start_origin p --latency fixed:20 --size $SIZE
{
    printf '{"id":"sku-0","url":"http://127.0.0.1:%s/img/0.jpg?fault=throttle&fails=1&retry_after=4"}\n' "$p_port"
    for i in $(seq 1 20); do
        printf '{"id":"sku-%d","url":"http://127.0.0.1:%s/img/%d.jpg"}\n' \
            "$i" "$p_port" "$i"
    done
} >p.jsonl
"$SLUICE" ingest --allow-private --db p.db p.jsonl >/dev/null
run_bg p.db pout --max-concurrency 1 --timeout 3
for _ in $(seq 300); do
    curl -s "http://127.0.0.1:$p_port/_log" | grep -q ' 429 ' && break
    sleep 0.02
done
sleep 0.3
kill -9 $run_pid
wait $run_pid 2>/dev/null
run "$SLUICE" run --db p.db --store pout --allow-net 127.0.0.1/32 \
    --max-concurrency 1 --timeout 3
assert_rc 0 "the run after the kill"
assert_eq "$(status_field p.db done)" 21
# Log lines: n attempt start_ms end_ms latency status bytes path.
curl -s "http://127.0.0.1:$p_port/_log" >p.log
throttled_at=$(awk '$6 == 429 { print $4; exit }' p.log)
early=$(awk -v t="$throttled_at" '$3 > t && $3 < t + 3900' p.log | wc -l)
assert_eq "$early" 0
[ "$(wc -l <p.log)" -ge 22 ] || fail "the log is short: $(cat p.log)"

# ------------------------------------------------------------ fencing
case_ "a run stopped past its slots' deadlines drops those transfers"
start_origin f --latency fixed:300 --size $SIZE
"$GEN" 4 jsonl "http://127.0.0.1:$f_port" >f.jsonl
"$SLUICE" ingest --allow-private --db f.db f.jsonl >/dev/null
"$SLUICE" run --db f.db --store fout --allow-net 127.0.0.1/32 \
    --max-concurrency 4 --timeout 1 --backoff-base 0.05 --json \
    >f.out 2>f.err &
run_pid=$!
wait_for_stat "$f_port" in_flight 4
kill -STOP $run_pid
sleep 3.5 # past each slot's deadline (1 s + 1 s); the answers wait
kill -CONT $run_pid
wait $run_pid
assert_eq "$?" 0
out=$(cat f.out)
assert_has "$out" '"done":4'
assert_has "$out" '"retried":4'
assert_eq "$(status_field f.db done)" 4
assert_eq "$("$VERIFY" store $SIZE fout)" 4
# Every record was fetched again: the answers that came while it was
# stopped were not used.
assert_eq "$(curl -s "http://127.0.0.1:$f_port/_log" | awk '$2 == 2' |
    wc -l)" 4

# ------------------------------------------------------------ caps
case_ "successive runs given different caps never exceed the smaller"
start_origin c --limit 4 --hold-abandoned --latency uniform:100:400 \
    --size $SIZE
"$GEN" 80 jsonl "http://127.0.0.1:$c_port" >c.jsonl
"$SLUICE" ingest --allow-private --db c.db c.jsonl >/dev/null
run_bg c.db cout --max-concurrency 4 --timeout 3
wait_for_stat "$c_port" in_flight 4
kill -9 $run_pid
wait $run_pid 2>/dev/null
run "$SLUICE" run --db c.db --store cout --allow-net 127.0.0.1/32 \
    --max-concurrency 8 --timeout 3
assert_rc 0 "the larger cap's run"
assert_has "$err" "cap: 4 requests at once per origin, stored with the queue"
assert_has "$err" "--max-concurrency 8 is larger and was not used"
assert_eq "$(status_field c.db done)" 80
assert_eq "$(origin_stat "$c_port" violations)" 0
assert_eq "$(origin_stat "$c_port" peak_in_flight)" 4
# A smaller one lowers the cap for every run after.
curl -s "http://127.0.0.1:$c_port/_reset" >/dev/null
"$GEN" 30 jsonl "http://127.0.0.1:$c_port" | sed 's/sku-/more-/' >c2.jsonl
"$SLUICE" ingest --allow-private --db c.db c2.jsonl >/dev/null
run "$SLUICE" run --db c.db --store cout --allow-net 127.0.0.1/32 \
    --max-concurrency 2 --timeout 3
assert_rc 0 "the smaller cap's run"
assert_has "$err" "cap: lowered from 4 to 2"
assert_eq "$(origin_stat "$c_port" peak_in_flight)" 2
curl -s "http://127.0.0.1:$c_port/_reset" >/dev/null
"$GEN" 30 jsonl "http://127.0.0.1:$c_port" | sed 's/sku-/again-/' >c3.jsonl
"$SLUICE" ingest --allow-private --db c.db c3.jsonl >/dev/null
run "$SLUICE" run --db c.db --store cout --allow-net 127.0.0.1/32 \
    --timeout 3
assert_rc 0 "a run given no cap"
assert_eq "$(origin_stat "$c_port" peak_in_flight)" 2
"$GEN" 30 jsonl "http://127.0.0.1:$c_port" | sed 's/sku-/raised-/' >c4.jsonl
"$SLUICE" ingest --allow-private --db c.db c4.jsonl >/dev/null
run "$SLUICE" run --db c.db --store cout --allow-net 127.0.0.1/32 \
    --max-concurrency 3 --raise-cap --timeout 3
assert_rc 0 "a raised cap's run"
assert_has "$err" "cap: raised from 2 to 3"

# ------------------------------------------------------------ clock steps
case_ "steps of the wall clock: no slot reissued early, none starved"
faketime_lib=$(find /usr/lib /usr/local/lib -name 'libfaketime.so.1' \
    2>/dev/null | head -1)
[ -n "$faketime_lib" ] || skip "libfaketime is not installed (scripts/setup.sh test)"
start_origin w --limit 5 --hold-abandoned --latency uniform:50:300 \
    --size $SIZE
{
    printf '{"id":"sku-0","url":"http://127.0.0.1:%s/img/0.jpg?fault=throttle&fails=1&retry_after=2"}\n' "$w_port"
    "$GEN" 200 jsonl "http://127.0.0.1:$w_port" | tail -n +2
} >w.jsonl
"$SLUICE" ingest --allow-private --db w.db w.jsonl >/dev/null
echo "+0" >clock
t0=$(date +%s)
# (Under AddressSanitizer its runtime must not insist on coming first.)
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
    LD_PRELOAD=$faketime_lib FAKETIME_TIMESTAMP_FILE=$PWD/clock \
    FAKETIME_NO_CACHE=1 DONT_FAKE_MONOTONIC=1 \
    "$SLUICE" run --db w.db --store wout --allow-net 127.0.0.1/32 \
    --max-concurrency 5 --timeout 3 --backoff-base 0.1 --json \
    >w.out 2>w.err &
run_pid=$!
sleep 1
echo "-1h" >clock # the wall clock an hour back, the throttled record waiting
sleep 1.5
echo "+2h" >clock # and then two hours ahead
wait $run_pid
assert_eq "$?" 0
took=$(($(date +%s) - t0))
[ "$took" -lt 30 ] || fail "the run took $took s: something waited for the wall clock"
assert_eq "$(status_field w.db done)" 200
assert_eq "$(origin_stat "$w_port" violations)" 0
# Nothing was fetched twice but the throttled record (no lease expired
# early when the clock jumped ahead).
assert_eq "$(curl -s "http://127.0.0.1:$w_port/_log" | wc -l)" 201

finish
