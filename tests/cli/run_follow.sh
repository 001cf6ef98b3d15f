# --follow: the run keeps polling the queue, so records ingested while it
# runs are fetched too, until it is told to stop.
. "$(dirname "$0")/lib.sh"

start_origin o --latency fixed:5 --size fixed:3000
base=http://127.0.0.1:$o_port
"$GEN" 50 jsonl "$base" >first.jsonl
"$SLUICE" ingest --allow-private first.jsonl >/dev/null

case_ "records ingested during a --follow run are fetched"
"$SLUICE" run --store out --allow-private --follow --quiet >run.out 2>&1 &
pid=$!
for _ in $(seq 100); do
    [ "$(status_field sluice.db done)" = 50 ] && break
    sleep 0.1
done
assert_eq "$(status_field sluice.db done)" 50
kill -0 $pid 2>/dev/null || fail "the --follow run ended on its own"
# More records for the running run, in a second ingest.
"$GEN" 120 jsonl "$base" | tail -n 70 >second.jsonl
"$SLUICE" ingest --allow-private second.jsonl >/dev/null
for _ in $(seq 100); do
    [ "$(status_field sluice.db done)" = 120 ] && break
    sleep 0.1
done
assert_eq "$(status_field sluice.db done)" 120
kill -TERM $pid
wait $pid
assert_eq "$?" 143
assert_eq "$("$VERIFY" store fixed:3000 out)" 120

finish
