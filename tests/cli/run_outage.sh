# An origin that goes down mid-run (connections refused) and comes back:
# sluice pauses it (backing off) instead of burning every record's
# attempts, so nothing is dead-lettered; when it is back, everything
# finishes.
. "$(dirname "$0")/lib.sh"

RECORDS=400
start_origin o --latency fixed:20 --size fixed:2000
port=$o_port
"$GEN" $RECORDS jsonl "http://127.0.0.1:$port" >feed.jsonl
"$SLUICE" ingest --allow-private feed.jsonl >/dev/null

case_ "the origin dies for 6 seconds; nothing is lost, nothing dead"
"$SLUICE" run --store out --allow-private --max-concurrency 4 \
    --max-attempts 3 --quiet >run.out 2>&1 &
run_pid=$!
sleep 1
stop_origins
# While it waits for the origin, the run must idle, not spin.
sleep 1
busy_ms=$(cpu_ms $run_pid 5)
[ "$busy_ms" -lt 500 ] || fail "the run used ${busy_ms} ms of CPU in 5 s of waiting"
start_origin o --listen 127.0.0.1:$port --latency fixed:20 --size fixed:2000
wait $run_pid
rc=$?
assert_eq "$rc" 0
assert_eq "$(status_field sluice.db done)" $RECORDS
assert_eq "$(status_field sluice.db dead)" 0
assert_eq "$("$VERIFY" store fixed:2000 out)" $RECORDS
# Attempts were not used up while it was down.
run sqlite3 sluice.db "SELECT max(attempts) FROM records"
[ "$out" -lt 3 ] || fail "a record used $out attempts"

case_ "after a long outage, fetching resumes within seconds of the return"
# Down for 20 s: pauses of 1, 2, 4, 8 and 16 s (each up to a quarter
# longer) would leave it idle for 11 to 18 s after it is back; probing at
# most every 5 s (6.25 with the jitter), 6.25 at most.
"$GEN" 40 jsonl "http://127.0.0.1:$port" >long.jsonl
"$SLUICE" ingest --allow-private --db long.db long.jsonl >/dev/null
stop_origins
"$SLUICE" run --db long.db --store out-long --allow-private \
    --max-concurrency 4 --quiet >run-long.out 2>&1 &
run_pid=$!
sleep 20
start_origin o --listen 127.0.0.1:$port --latency fixed:20 --size fixed:2000
back=$(date +%s.%N)
wait $run_pid
rc=$?
took=$(awk -v a="$back" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
echo "# finished ${took} s after the origin came back"
assert_eq "$rc" 0
assert_eq "$(status_field long.db done)" 40
awk -v t="$took" 'BEGIN { exit !(t < 9) }' ||
    fail "the run finished ${took} s after the origin came back"

finish
