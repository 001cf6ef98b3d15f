# The tool on a Redis queue (--db redis://, unix://): ingest, run against
# the test origin into a directory, status, list, dlq list and dlq replay
# say exactly what they say on SQLite (times aside); and the one-line
# errors of a Redis that is not there, or not a sluice queue.
. "$(dirname "$0")/lib.sh"
. "$SOURCE_DIR/tests/redis/start.sh"

start_redis r
start_origin o --latency 0 --size uniform:500:3000
base="http://127.0.0.1:$o_port"
{
    for i in $(seq 1 30); do
        echo "{\"id\":\"sku-$i\",\"url\":\"$base/img/$i.jpg\",\"meta\":{\"n\":$i}}"
    done
    echo "{\"id\":\"gone\",\"url\":\"$base/img/99.jpg?fault=status&code=404\"}"
    echo "{\"id\":\"gone2\",\"url\":\"$base/img/98.jpg?fault=status&code=410\"}"
    echo "{\"id\":\"flaky\",\"url\":\"$base/img/97.jpg?fault=flaky&fails=1\"}"
    echo "not json"
} >feed.jsonl

# The same steps on a queue; outputs into DIR.
steps() {
    local db=$1 dir=$2
    mkdir -p "$dir"
    curl -s "$base/_reset" >/dev/null # the flaky record fails once again
    "$SLUICE" ingest --allow-private --db "$db" feed.jsonl \
        >"$dir/ingest.out" 2>"$dir/ingest.err"
    echo "rc=$?" >>"$dir/ingest.out"
    "$SLUICE" ingest --allow-private --db "$db" feed.jsonl \
        >"$dir/reingest.out" 2>&1
    "$SLUICE" status --db "$db" --json |
        sed 's/"oldest_pending_age_s":[0-9.]*//' >"$dir/status0.json"
    "$SLUICE" run --db "$db" --store "$dir/store" --allow-private --quiet \
        >"$dir/run.out" 2>&1
    echo "rc=$?" >"$dir/run.rc"
    "$SLUICE" status --db "$db" --json >"$dir/status1.json"
    "$SLUICE" status --db "$db" | grep -v oldest >"$dir/status1.txt"
    # FAILED_AT (the fifth column, the "failed_at" field) is a time.
    # The list is in the order the records died, and gone and gone2 die
    # at once, in either order from one run to the next: sorted here.
    "$SLUICE" dlq list --db "$db" | cut -f1-4,6- | sort >"$dir/dlq.txt"
    "$SLUICE" dlq list --db "$db" --json |
        sed 's/"failed_at":"[^"]*"//g; s/^{"records":\[/&\n/
             s/\],"count":/\n&/; s/},{/}\n{/g' | sort >"$dir/dlq.json"
    "$SLUICE" dlq list --db "$db" --class http | cut -f1-4,6- | sort \
        >"$dir/dlq_http.txt"
    "$SLUICE" list --db "$db" >"$dir/list.txt"
    "$SLUICE" list --db "$db" --json | sed 's/"finished_at":[^,}]*//g' \
        >"$dir/list.json"
    "$SLUICE" dlq replay --db "$db" --id gone >"$dir/replay.out" 2>&1
    "$SLUICE" dlq replay --db "$db" --id nope >>"$dir/replay.out" 2>&1
    "$SLUICE" dlq replay --db "$db" --all >>"$dir/replay.out" 2>&1
    "$SLUICE" status --db "$db" --json |
        sed 's/"oldest_pending_age_s":[0-9.]*//' >"$dir/status2.json"
    "$SLUICE" list --db "$db" --state pending >"$dir/pending.txt" 2>&1
}

case_ "ingest, run, status, list and the DLQ say what they say on SQLite"
steps sluice.db sqlite
steps "$r_url" redis
for f in ingest.out ingest.err reingest.out status0.json run.rc \
    status1.json status1.txt dlq.txt dlq.json dlq_http.txt list.txt \
    list.json replay.out status2.json pending.txt; do
    if ! cmp -s "sqlite/$f" "redis/$f"; then
        out=$(diff "sqlite/$f" "redis/$f" | head -20)
        fail "$f differs between SQLite and Redis"
    fi
done
assert_has "$(cat redis/status1.json)" '"done":31,"dead":2'
assert_has "$(cat redis/ingest.err)" "feed.jsonl:34"
assert_eq "$(cat redis/run.rc)" "rc=1"
assert_eq "$(ls redis/store | wc -l)" "$(ls sqlite/store | wc -l)"
for f in sqlite/store/*; do
    cmp -s "$f" "redis/store/${f#sqlite/store/}" ||
        fail "object ${f#sqlite/store/} differs"
done

case_ "a second run of the replayed records finishes them again"
run "$SLUICE" run --db "$r_url" --store redis/store --allow-private --quiet
assert_rc 1
assert_eq "$(status_field "$r_url" dead)" 2
assert_eq "$(status_field "$r_url" done)" 31

case_ "two runners on one Redis queue; Redis killed mid-run: an error after --outage-max, then nothing lost"
start_redis k
start_origin s --latency fixed:500 --size fixed:1000
# Enough records that the first runner's leases leave some to the second.
for i in $(seq 1 200); do echo "http://127.0.0.1:$s_port/img/$i.jpg"; done >k.txt
"$SLUICE" ingest --allow-private --db "$k_url" k.txt >/dev/null
# (--timeout 3: the next run waits for the slots this one held, kept
# with the queue, until their deadlines. --outage-max 2: a Redis away
# for longer stops the runs; run_redis_outage has one that comes back.)
"$SLUICE" run --db "$k_url" --store kout --allow-private --max-concurrency 4 \
    --timeout 3 --outage-max 2 --quiet >k.out 2>k.err &
k_run=$!
sleep 1
# A second runner shares the queue (and the cap: slots on Redis).
"$SLUICE" run --db "$k_url" --store kout2 --allow-private \
    --max-concurrency 4 --timeout 3 --outage-max 2 --quiet >k2.out 2>k2.err &
k2_run=$!
sleep 0.5
kill -0 "$k2_run" 2>/dev/null ||
    fail "the second runner did not run: $(cat k2.err)"
kill -9 "$k_pid"
t0=$(date +%s)
for pid in $k_run $k2_run; do
    wait "$pid"
    [ "$?" != 0 ] || fail "a run did not notice that Redis died"
done
[ $(($(date +%s) - t0)) -lt 15 ] || fail "the runs took long to notice"
assert_has "$(cat k.err)" "redis.sock"
# Restarted from its AOF (appendfsync always): every record is there, the
# runners' claims lapse (15 s), and a run alone puts their records back
# and finishes them all.
start_redis k
assert_eq "$(status_field "$k_url" total)" 200
alive='local t = redis.call("TIME") return redis.call("ZCOUNT", KEYS[1], "(" .. (t[1] * 1000 + math.floor(t[2] / 1000)), "+inf")'
for _ in $(seq 40); do
    [ "$(redis-cli -s "$k_sock" eval "$alive" 1 'sluice:{q}:runners')" = 0 ] &&
        break
    sleep 0.5
done
run "$SLUICE" run --db "$k_url" --store kout --allow-private --timeout 3 \
    --quiet
assert_rc 0
assert_eq "$(status_field "$k_url" done)" 200
assert_eq "$(ls kout | wc -l)" 1

case_ "redis:// over TCP, another prefix and database"
free=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 16399)
start_redis t2 --port "$free" --bind 127.0.0.1
run "$SLUICE" ingest --allow-private --db "redis://127.0.0.1:$free/3?prefix=cat:" feed.jsonl
assert_rc 1
assert_has "$out" "33 new"
run "$SLUICE" status --db "redis://127.0.0.1:$free/3?prefix=cat:" --json
assert_has "$out" '"pending":33'
[ "$(redis-cli -p "$free" -n 3 exists 'cat:{q}:meta')" = 1 ] ||
    fail "no meta key in database 3 under the prefix cat:"
run "$SLUICE" status --db "redis://127.0.0.1:$free/4?prefix=cat:"
assert_rc 3
assert_has "$err" "no sluice queue"

case_ "one-line errors: refused, not a queue, a bad location"
run "$SLUICE" status --db "redis://127.0.0.1:1"
[ "$rc" != 0 ] || fail "status on a closed port succeeded"
assert_eq "$(lines "$err")" 1
assert_has "$err" "127.0.0.1:1"
assert_has "$(echo "$err" | tr A-Z a-z)" "connection refused"
redis-cli -s "$r_sock" set other:jobs x >/dev/null
run "$SLUICE" ingest --db "$r_url?prefix=other:" feed.jsonl
[ "$rc" != 0 ] || fail "ingest into another program's keys succeeded"
assert_eq "$(lines "$err")" 1
assert_has "$err" "not a sluice queue"
run "$SLUICE" status --db "redis://host:70000"
[ "$rc" != 0 ] || fail "a bad port was taken"
assert_eq "$(lines "$err")" 1
assert_has "$err" "port"

finish
