# Stopping: SIGTERM (and SIGINT) mid-run takes no new records, lets the
# transfers in flight finish within the grace period, exits within seconds
# with 128 + the signal, leaves the queue consistent (nothing in flight),
# and a new run finishes the job. A second run on a database that a run
# holds is refused.
. "$(dirname "$0")/lib.sh"

RECORDS=1500
SIZE=fixed:20000
start_origin o --limit 8 --latency fixed:40 --size $SIZE
"$GEN" $RECORDS jsonl "http://127.0.0.1:$o_port" >feed.jsonl
"$SLUICE" ingest --allow-private feed.jsonl >/dev/null
RUN=("$SLUICE" run --store out --allow-private --max-concurrency 8 --quiet)

case_ "a second run on the same database is refused"
"${RUN[@]}" >first.out 2>&1 &
first=$!
sleep 0.7
run "${RUN[@]}"
assert_rc 3
assert_has "$err" "sluice.db: another sluice run is using this database"
assert_eq "$(lines "$err")" 1

case_ "SIGTERM: a prompt, clean stop"
started=$(date +%s%N)
kill -TERM $first
wait $first
rc=$?
stopped=$(date +%s%N)
assert_eq "$rc" 143
elapsed_ms=$(((stopped - started) / 1000000))
# Typically ~50 ms (two syncfs rounds); the bound leaves room for a busy
# disk shared with other tests, and is far below any transfer timeout.
[ "$elapsed_ms" -lt 10000 ] || fail "took ${elapsed_ms} ms to stop"
assert_has "$(cat first.out)" "stopped by signal; run again to finish"
assert_has "$(cat first.out)" "queue: "
assert_eq "$(status_field sluice.db in_flight)" 0
done_now=$(status_field sluice.db done)
[ "$done_now" -gt 0 ] && [ "$done_now" -lt $RECORDS ] ||
    fail "expected a partial run, got $done_now done"
assert_eq "$("$VERIFY" store $SIZE out)" "$done_now"
assert_eq "$(stray_files out)" ""

case_ "SIGINT twice: stops at once"
"${RUN[@]}" >second.out 2>&1 &
pid=$!
sleep 0.5
kill -INT $pid
kill -INT $pid
wait $pid
assert_eq "$?" 130
assert_eq "$(status_field sluice.db in_flight)" 0

case_ "a new run finishes the job"
run "${RUN[@]}"
assert_rc 0
assert_eq "$(status_field sluice.db done)" $RECORDS
assert_eq "$("$VERIFY" store $SIZE out)" $RECORDS
assert_eq "$(origin_stat "$o_port" violations)" 0

finish
