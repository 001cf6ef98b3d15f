# ingest kinesis://: a stream read into the queue (on kinesalite, on
# loopback), each shard's place kept with its records; crashes, bad and
# aggregated records, throttling, resharding and a standby ingester.
. "$(dirname "$0")/lib.sh"
. "$SOURCE_DIR/tests/kinesis/start.sh"
. "$SOURCE_DIR/tests/redis/start.sh"

need_kinesalite
start_kinesalite k
start_origin o --size fixed:3000
base=http://127.0.0.1:$o_port
ADMIN=$KINESIS_ADMIN

# publish STREAM [OPTIONS...] FILE: put a feed on the stream, quietly.
publish() {
    local stream=$1
    shift
    "$SLUICE" publish --allow-private --quiet --to "kinesis://$stream" \
        "$@" >/dev/null || fail "publish to $stream"
}

# How many records the queue $1 holds.
total() { status_field "$1" total 2>/dev/null; }

# Each shard's place in the queue $1: "SHARD SEQ" lines.
places() {
    "$SLUICE" status --db "$1" --json 2>/dev/null | python3 -c '
import json, sys
text = sys.stdin.read()
for p in json.loads(text)["streams"] if text else []:
    print(p["shard"], p["seq"] or 0)'
}

# ids in the queue $1, in feed order
ids_in_order() {
    "$SLUICE" list --db "$1" --json | python3 -c '
import json, sys
for line in sys.stdin:
    print(json.loads(line)["id"])'
}

case_ "10,000 records over 4 shards: each once in the queue, every object byte-exact"
"$ADMIN" create big 4 || fail "create"
"$GEN" 10000 jsonl "$base" >feed.jsonl
publish big feed.jsonl
# Bad records between the good ones: not JSON, no url, a refused URL.
"$ADMIN" put-raw big bad-1 'not json at all' || fail "put-raw"
"$ADMIN" put-raw big bad-2 '{"id":"no-url"}' || fail "put-raw"
"$ADMIN" put-raw big bad-3 '{"id":"meta","url":"http://10.1.2.3/x.jpg"}' ||
    fail "put-raw"
run "$SLUICE" ingest --db big.db --allow-net 127.0.0.0/8 kinesis://big
assert_rc 1
assert_has "$out" "10000 new, 0 updated, 0 unchanged, 3 rejected"
assert_eq "$(printf '%s\n' "$err" | grep -c 'kinesis://big shardId-0000000000[0-3][0-9] seq [0-9]*: ')" 3
assert_has "$err" "invalid JSON"
assert_has "$err" 'no member "url"'
assert_has "$err" "private address refused"
assert_eq "$(total big.db)" 10000
assert_eq "$(places big.db | wc -l)" 4
# Ingested again: nothing new, nothing read twice.
run "$SLUICE" ingest --db big.db kinesis://big
assert_rc 0
assert_has "$out" "0 new, 0 updated, 0 unchanged, 0 rejected"
run "$SLUICE" run --db big.db --store big.out --quiet
assert_rc 0
assert_eq "$(verify_objects big.out 0 9999 fixed:3000)" 10000

case_ "kill -9 of the ingester at random moments: nothing lost, places only move forward"
"$ADMIN" create crash 4 || fail "create"
"$GEN" 6000 jsonl "$base" >crash.jsonl
publish crash crash.jsonl
: >crash.places
for i in 1 2 3 4 5 6; do
    "$SLUICE" ingest --db crash.db --allow-private --quiet kinesis://crash \
        >/dev/null 2>&1 &
    pid=$!
    sleep "0.0$((RANDOM % 9 + 1))"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    [ -f crash.db ] && places crash.db | sed "s/^/$i /" >>crash.places
done
run "$SLUICE" ingest --db crash.db --allow-private --lease 1 kinesis://crash
assert_rc 0
places crash.db | sed 's/^/9 /' >>crash.places
assert_eq "$(total crash.db)" 6000
# Per shard, each place is at or after the one before.
python3 - crash.places <<'EOF' || fail "a place moved back: $(cat crash.places)"
import sys
last = {}
for line in open(sys.argv[1]):
    _, shard, seq = line.split()
    if int(seq) < last.get(shard, 0):
        sys.exit(1)
    last[shard] = int(seq)
EOF

case_ "KPL aggregates: each sub-record a record, the place at the parent's sub-sequence"
"$ADMIN" create kpl 1 || fail "create"
"$GEN" 25 jsonl "$base" | sed 's/"sku-/"kpl-/' | "$ADMIN" put-kpl kpl pk ||
    fail "put-kpl"
run "$SLUICE" ingest --db kpl.db --allow-private kinesis://kpl
assert_rc 0
assert_has "$out" "25 new"
assert_eq "$(ids_in_order kpl.db | sed -n 1,3p | tr '\n' ' ')" "kpl-0 kpl-1 kpl-2 "
run "$SLUICE" status --db kpl.db
assert_has "$out" "sub 24"

case_ "throttled reads and expired iterators are waited out: nothing lost"
"$ADMIN" create slow 2 || fail "create"
"$GEN" 3000 jsonl "$base" >slow.jsonl
# A record the service fails is sent again (publish's retry).
SLUICE_KINESIS_FAULT="put_fail=7" run "$SLUICE" publish --allow-private \
    --to kinesis://slow --quiet slow.jsonl
assert_rc 0
assert_eq "$("$ADMIN" dump slow | wc -l)" 3000
SLUICE_KINESIS_FAULT="get_throttle=1,2,3,5;get_expired=4,7" \
    run "$SLUICE" ingest --db slow.db --allow-private kinesis://slow
assert_rc 0
assert_has "$out" "3000 new"
assert_eq "$(total slow.db)" 3000

# Records put with partition key = origin, a few origins: each origin's
# records keep their order through splits and merges (checked on the
# queue's feed order) only if parents are read before their children.
# Reads of at most 25 records (a test build's fault injection) make each
# shard take many reads, so that reading children early would show.
export SLUICE_KINESIS_FAULT=get_limit=25
order_feed() { # FIRST LAST: records of 4 origins, round robin
    for i in $(seq "$1" "$2"); do
        printf '{"id":"r-%d","url":"http://o%d.example/%d.jpg"}\n' \
            "$i" $((i % 4)) "$i"
    done
}
in_order() { # DB: per origin, ids increase along the feed
    ids_in_order "$1" | python3 -c '
import sys
last = {}
for line in sys.stdin:
    n = int(line.split("-")[1])
    o = n % 4
    if n < last.get(o, -1):
        print("r-%d after r-%d" % (n, last[o])); sys.exit(1)
    last[o] = n'
}

case_ "a split and a merge before the read: parents first, each key in order"
"$ADMIN" create re 2 || fail "create"
order_feed 0 399 >re1.jsonl
order_feed 400 799 >re2.jsonl
order_feed 800 1199 >re3.jsonl
publish re --partition-key origin re1.jsonl
"$ADMIN" split re shardId-000000000000 || fail "split"
publish re --partition-key origin re2.jsonl
# Merge the split's two children.
kids=$("$ADMIN" list re | awk '$2 == "shardId-000000000000" {print $1}')
"$ADMIN" merge re $kids || fail "merge $kids"
publish re --partition-key origin re3.jsonl
assert_eq "$("$ADMIN" list re | wc -l)" 5
run "$SLUICE" ingest --db re.db kinesis://re
assert_rc 0
assert_has "$out" "1200 new"
out=$(in_order re.db) || fail "out of order: $out"
assert_eq "$(places re.db | wc -l)" 5

case_ "a split and a merge while following: everything arrives, each key in order"
"$ADMIN" create fo 2 || fail "create"
"$SLUICE" ingest --db fo.db --follow --quiet kinesis://fo >fo.out 2>&1 &
pid=$!
publish fo --partition-key origin re1.jsonl
"$ADMIN" split fo shardId-000000000001 || fail "split"
publish fo --partition-key origin re2.jsonl
kids=$("$ADMIN" list fo | awk '$2 == "shardId-000000000001" {print $1}')
"$ADMIN" merge fo $kids || fail "merge $kids"
publish fo --partition-key origin re3.jsonl
for _ in $(seq 300); do
    [ "$(total fo.db)" = 1200 ] && break
    sleep 0.1
done
assert_eq "$(total fo.db)" 1200
kill -0 $pid 2>/dev/null || fail "the --follow ingest ended on its own"
kill -TERM $pid
wait $pid
assert_eq "$?" 0
assert_has "$(cat fo.out)" "1200 new"
out=$(in_order fo.db) || fail "out of order: $out"

# Two ingesters of one stream into one queue ($1): one ingests, the other
# stands by; the active one killed, the standby takes over within its
# lease.
standby_case() {
    local db=$1 stream=$2
    "$ADMIN" create "$stream" 2 || fail "create"
    order_feed 0 499 >"$stream.1.jsonl"
    order_feed 500 999 >"$stream.2.jsonl"
    publish "$stream" "$stream.1.jsonl"
    "$SLUICE" ingest --db "$db" --follow --lease 2 --quiet \
        "kinesis://$stream" >"$stream.a.out" 2>&1 &
    local a=$!
    for _ in $(seq 100); do
        [ "$(total "$db")" = 500 ] && break
        sleep 0.1
    done
    assert_eq "$(total "$db")" 500
    "$SLUICE" ingest --db "$db" --follow --lease 2 --quiet \
        "kinesis://$stream" >"$stream.b.out" 2>&1 &
    local b=$!
    sleep 1
    assert_has "$(cat "$stream.b.out")" "standing by"
    kill -9 $a
    wait $a 2>/dev/null
    local killed=$(date +%s%N)
    publish "$stream" "$stream.2.jsonl"
    for _ in $(seq 100); do
        [ "$(total "$db")" = 1000 ] && break
        sleep 0.1
    done
    assert_eq "$(total "$db")" 1000
    local took=$((($(date +%s%N) - killed) / 1000000))
    [ "$took" -lt 4500 ] || fail "the standby took ${took} ms to take over"
    assert_has "$(cat "$stream.b.out")" "took over"
    kill -TERM $b
    wait $b
    assert_eq "$?" 0
}

unset SLUICE_KINESIS_FAULT

case_ "two ingesters on SQLite: the standby takes over within its lease"
standby_case sb.db sb

case_ "two ingesters on Redis: the standby takes over within its lease"
start_redis r
standby_case "$r_url" rsb
run "$SLUICE" status --db "$r_url"
assert_has "$out" "kinesis://rsb shardId-000000000000: after"

case_ "a Redis queue away for a while: the ingester waits and goes on"
"$ADMIN" create away 2 || fail "create"
order_feed 0 599 | sed 's/"r-/"a-/' >away.jsonl
db="$r_url&timeout=1"
case $r_url in *\?*) ;; *) db="$r_url?timeout=1" ;; esac
"$SLUICE" ingest --db "$db" --follow kinesis://away >away.out 2>&1 &
pid=$!
publish away away.jsonl
sleep 0.5
kill -STOP "$r_pid"
order_feed 600 999 | sed 's/"r-/"a-/' >away2.jsonl
publish away away2.jsonl
sleep 4
kill -CONT "$r_pid"
for _ in $(seq 150); do
    [ "$("$SLUICE" status --db "$r_url" --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])' \
        2>/dev/null)" = 2000 ] && break
    sleep 0.1
done
kill -TERM $pid
wait $pid
assert_eq "$?" 0
assert_has "$(cat away.out)" "queue unreachable"
assert_has "$(cat away.out)" "queue reachable again"
# rsb's 1,000 and these 1,000, each once.
assert_eq "$(total "$r_url")" 2000

case_ "--from latest reads only what comes after"
"$ADMIN" create late 1 || fail "create"
publish late re1.jsonl
"$SLUICE" ingest --db late.db --from latest --follow --quiet \
    kinesis://late >late.out 2>&1 &
pid=$!
sleep 1
publish late re2.jsonl
for _ in $(seq 100); do
    [ "$(total late.db)" = 400 ] && break
    sleep 0.1
done
kill -TERM $pid
wait $pid
assert_eq "$(total late.db)" 400
assert_eq "$(ids_in_order late.db | sed -n 1p)" "r-400"

case_ "--from at-timestamp past the stream's end: an iterator never answered is asked again"
# kinesalite never answers GetShardIterator AT_TIMESTAMP past the last
# record: the call times out and is made again until records come.
"$ADMIN" create ts 1 || fail "create"
publish ts re1.jsonl
sleep 0.3
at=$(date +%s.%N)
sleep 1 # a time in the future is refused (InvalidArgumentException)
"$SLUICE" ingest --db ts.db --from "at-timestamp=$at" --follow --quiet \
    kinesis://ts >ts.out 2>&1 &
pid=$!
sleep 4 # past the first GetShardIterator's timeout
publish ts re2.jsonl
for _ in $(seq 200); do
    [ "$(total ts.db)" = 400 ] && break
    sleep 0.1
done
kill -TERM $pid
wait $pid
assert_eq "$?" 0
assert_eq "$(total ts.db)" 400
assert_eq "$(ids_in_order ts.db | sed -n 1p)" "r-400"

case_ "bad options and a stream that is not there: one line each"
run "$SLUICE" ingest --db x.db --from yesterday kinesis://late
assert_rc 2
assert_has "$err" "--from: expected trim-horizon, latest or at-timestamp=T"
run "$SLUICE" ingest --db x.db --follow feed.jsonl
assert_rc 2
assert_has "$err" "--follow is for a kinesis:// stream"
run "$SLUICE" ingest --db x.db kinesis://nope
assert_rc 3
assert_has "$err" "nope"

finish
