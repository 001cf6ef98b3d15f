# sluice publish against kinesalite (a Kinesis API server from npm,
# tests/kinesis/start.sh): 10,000 records over 4 shards, each on the
# stream exactly once; bad feed lines reported with file:line and
# skipped; PutRecords entries failed by fault injection sent again, still
# exactly once; a service that never answers times out in one clear line;
# usage and configuration errors; split and merge through kinesis_admin.
. "$(dirname "$0")/lib.sh"
. "$SOURCE_DIR/tests/kinesis/start.sh"
need_kinesalite
start_kinesalite kin
ADMIN=$KINESIS_ADMIN

# gen FIRST LAST: a JSON Lines feed of sku-FIRST..sku-LAST.
gen() {
    seq "$1" "$2" | awk '{
        printf "{\"id\":\"sku-%d\",", $1
        printf "\"url\":\"https://img%d.example/p/%d.jpg\"", $1 % 7, $1
        if ($1 % 10 == 0) printf ",\"meta\":{\"n\":%d}", $1
        print "}" }'
}

case_ "10,000 records over 4 shards, bad lines reported and skipped"
run "$ADMIN" create s1 4
assert_rc 0
{
    gen 1 5000
    echo 'this is not json'
    echo '{"id":"bad-scheme","url":"ftp://img.example/x.jpg"}'
    echo '{"id":"bad-private","url":"http://10.1.2.3/x.jpg"}'
    gen 5001 10000
} >feed.jsonl
start=$(date +%s.%N)
run "$SLUICE" publish --to kinesis://s1 feed.jsonl
end=$(date +%s.%N)
assert_rc 1 "some rejected"
assert_has "$out" "published 10000, rejected 3"
assert_has "$err" "feed.jsonl:5001: "
assert_has "$err" "feed.jsonl:5002: url: "
assert_has "$err" "feed.jsonl:5003: url: private address refused"
assert_eq "$(lines "$err")" 3
took=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.2f", b - a}')
echo "# published 10,000 in $took s"
"$ADMIN" dump s1 >dump1.txt || fail "dump failed"
assert_eq "$(wc -l <dump1.txt)" 10000
assert_eq "$(sort -u dump1.txt | wc -l)" 10000
# Exactly the feed's good records, as ingest kinesis:// will read them.
sed -n 's/.*"id":"\(sku-[0-9]*\)".*/\1/p' dump1.txt | sort >ids1.txt
seq 1 10000 | sed 's/^/sku-/' | sort >want.txt
cmp -s ids1.txt want.txt || fail "the stream's ids differ from the feed's"
assert_has "$(grep '"id":"sku-20"' dump1.txt)" \
    '{"id":"sku-20","url":"https://img6.example/p/20.jpg","key":"sku-20.jpg","meta":{"n":20}}'
assert_has "$(grep '"id":"sku-21"' dump1.txt)" \
    '{"id":"sku-21","url":"https://img0.example/p/21.jpg","key":"sku-21.jpg"}'
# Partitioned by id: every shard has some.
"$ADMIN" records s1 >records1.txt
assert_eq "$(cut -f1 records1.txt | sort -u | wc -l)" 4
assert_eq "$(awk -F'\t' '$5 != substr($7, 8, length($5)) {n++}
    END {print n+0}' records1.txt)" 0

case_ "--allow-net and --allow-private accept what the policy refuses"
run "$ADMIN" create s7 1
assert_rc 0
printf '%s\n' '{"id":"p1","url":"http://10.1.2.3/x.jpg"}' \
    '{"id":"p2","url":"http://192.168.0.9/x.jpg"}' >private.jsonl
run "$SLUICE" publish --to kinesis://s7 --allow-net 10.0.0.0/8 private.jsonl
assert_rc 1
assert_has "$out" "published 1, rejected 1"
assert_has "$err" "private.jsonl:2: url: private address refused"
run "$SLUICE" publish --to kinesis://s7 --allow-private private.jsonl
assert_rc 0
assert_has "$out" "published 2, rejected 0"
assert_eq "$("$ADMIN" dump s7 | grep -c '"id":"p1"')" 2

case_ "--partition-key origin: one origin, one partition key"
run "$ADMIN" create s2 4
assert_rc 0
gen 1 300 >small.jsonl
run "$SLUICE" publish --to kinesis://s2 --partition-key origin --json \
    small.jsonl
assert_rc 0
assert_has "$out" '"published":300'
"$ADMIN" records s2 >records2.txt
assert_eq "$(wc -l <records2.txt)" 300
assert_eq "$(cut -f5 records2.txt | sort -u | tr '\n' ' ')" \
    "$(seq 0 6 | sed 's|.*|https://img&.example:443|' | tr '\n' ' ')"
# Each record's key is the origin of its own url.
assert_eq "$(awk -F'\t' '{ match($7, /https:\/\/[^\/]*/)
    if ($5 != substr($7, RSTART, RLENGTH) ":443") n++ } END {print n+0}' \
    records2.txt)" 0

case_ "PutRecords entries the service fails are sent again: still once each"
if SLUICE_KINESIS_FAULT="put_fail=2" "$SLUICE" publish --to kinesis://s2 \
    small.jsonl 2>/dev/null | grep -q 'sent again'; then
    run "$ADMIN" create s3 4
    assert_rc 0
    gen 1 10000 >feed3.jsonl
    SLUICE_KINESIS_FAULT="put_fail=7" run "$SLUICE" publish --json \
        --to kinesis://s3 feed3.jsonl
    assert_rc 0
    assert_has "$out" '"published":10000'
    retried=$(printf '%s' "$out" | sed -n 's/.*"retried":\([0-9]*\).*/\1/p')
    [ "${retried:-0}" -ge 1400 ] ||
        fail "only ${retried:-0} records sent again (1 in 7 fails)"
    "$ADMIN" dump s3 >dump3.txt
    assert_eq "$(wc -l <dump3.txt)" 10000
    assert_eq "$(sort -u dump3.txt | wc -l)" 10000
else
    echo "# this build has no fault injection: case not run"
    [ "${SLUICE_TEST_NO_SKIP:-}" = 1 ] && fail "no fault injection"
fi

case_ "a service that never answers: one clear line, no hang"
# A listener that accepts connections and never replies.
python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
conns = []
while True:
    c, _ = s.accept()
    conns.append(c)
' >mute.port &
mute_pid=$!
ORIGIN_PIDS="$ORIGIN_PIDS $mute_pid"
for _ in $(seq 100); do [ -s mute.port ] && break; sleep 0.05; done
mute_port=$(head -1 mute.port)
t0=$(date +%s)
AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$mute_port run timeout 60 \
    "$SLUICE" publish --to kinesis://s1 --timeout 1 --max-attempts 2 \
    small.jsonl
t1=$(date +%s)
assert_rc 3
assert_eq "$(lines "$err")" 1
assert_has "$err" "kinesis://s1: PutRecords: no answer from"
assert_has "$err" "http://127.0.0.1:$mute_port within 1000 ms"
assert_has "$err" "gave up after 2 attempts"
[ $((t1 - t0)) -le 10 ] || fail "took $((t1 - t0)) s to give up"

case_ "usage and configuration errors"
run "$SLUICE" publish small.jsonl
assert_rc 2
assert_has "$err" "--to kinesis://STREAM is required"
run "$SLUICE" publish --to s1 small.jsonl
assert_rc 2
assert_has "$err" "'s1' is not a kinesis://STREAM location"
run "$SLUICE" publish --to kinesis://s1 --partition-key shard small.jsonl
assert_rc 2
assert_has "$err" "--partition-key: expected id or origin"
run "$SLUICE" publish --to kinesis://s1 missing.jsonl
assert_rc 3
assert_has "$err" "missing.jsonl: No such file or directory"
run "$SLUICE" publish --to kinesis://nosuch small.jsonl
assert_rc 3
assert_eq "$(lines "$err")" 1
assert_has "$err" "kinesis://nosuch: PutRecords: ResourceNotFoundException"
AWS_REGION= AWS_DEFAULT_REGION= AWS_CONFIG_FILE=/nonexistent \
    run "$SLUICE" publish --to kinesis://s1 small.jsonl
assert_rc 3
assert_has "$err" "kinesis://s1: no AWS region"
run "$SLUICE" publish --to kinesis://s1 --allow-net 10.0.0.0/33 small.jsonl
assert_rc 2
assert_has "$err" "10.0.0.0/33"
AWS_ENDPOINT_URL_KINESIS=ftp://x run "$SLUICE" publish --to kinesis://s1 \
    small.jsonl
assert_rc 2
assert_has "$err" "AWS_ENDPOINT_URL_KINESIS 'ftp://x' is not an http"

case_ "split and merge through kinesis_admin: parents and children listed"
run "$ADMIN" create s4 2
assert_rc 0
gen 1 100 | "$SLUICE" publish --to kinesis://s4 - >/dev/null ||
    fail "publish before the split"
run "$ADMIN" split s4 shardId-000000000000
assert_rc 0
run "$ADMIN" list s4
assert_eq "$(lines "$out")" 4
# The parent closed (an ending sequence number), two open children.
assert_has "$out" "$(printf 'shardId-000000000002\tshardId-000000000000\t-\t')"
assert_has "$out" "$(printf 'shardId-000000000003\tshardId-000000000000\t-\t')"
closed=$(printf '%s\n' "$out" |
    awk -F'\t' '$1 == "shardId-000000000000" {print $5}')
[ "$closed" != - ] || fail "the split parent has no ending sequence number"
run "$ADMIN" merge s4 shardId-000000000002 shardId-000000000003
assert_rc 0
run "$ADMIN" list s4
assert_has "$out" "$(printf 'shardId-%012d\t' 4 2 3)"
gen 101 200 | "$SLUICE" publish --to kinesis://s4 - >/dev/null ||
    fail "publish after the merge"
"$ADMIN" dump s4 >dump4.txt
assert_eq "$(sort -u dump4.txt | wc -l)" 200
# Records published after the merge are in the merged shard or the open
# one, none in a closed parent.
"$ADMIN" records s4 >records4.txt
assert_eq "$(awk -F'\t' '$1 ~ /^shardId-00000000000[023]$/ &&
    $7 ~ /"sku-(10[1-9]|1[1-9][0-9]|200)"/' records4.txt | wc -l)" 0

case_ "an iterator AT_TIMESTAMP starts after what came before it"
run "$ADMIN" create s5 1
assert_rc 0
seq 1 5 | sed 's|.*|https://a.example/&.jpg|' |
    "$SLUICE" publish --to kinesis://s5 - >/dev/null || fail "publish 1-5"
sleep 1.1
mid=$(date +%s%3N)
sleep 0.2
seq 6 8 | sed 's|.*|https://a.example/&.jpg|' |
    "$SLUICE" publish --to kinesis://s5 - >/dev/null || fail "publish 6-8"
run "$ADMIN" records-at s5 "$mid"
assert_rc 0
urls=$(printf '%s\n' "$out" | cut -f7 |
    sed -n 's/.*"url":"\([^"]*\)".*/\1/p' | tr '\n' ' ')
assert_eq "$urls" \
    "https://a.example/6.jpg https://a.example/7.jpg https://a.example/8.jpg "

case_ "batches cut at 5 MiB; ids over 256 bytes partitioned by their MD5"
run "$ADMIN" create s6 2
assert_rc 0
# 600 records of about 11 kB: 476 fit in 5 MiB, so two calls.
long_id=$(head -c 3000 /dev/zero | tr '\0' z)
long_path=$(head -c 8000 /dev/zero | tr '\0' x)
seq 1 600 | awk -v a="$long_id" -v b="$long_path" '{
    printf "{\"key\":\"k%d\",\"id\":\"%s%d\",", $1, a, $1
    printf "\"url\":\"https://a.example/%s%d.jpg\"}\n", b, $1 }' >big.jsonl
run "$SLUICE" publish --json --to kinesis://s6 big.jsonl
assert_rc 0
assert_has "$out" '"published":600,"rejected":0,"retried":0,"calls":2'
"$ADMIN" records s6 >records6.txt
assert_eq "$(wc -l <records6.txt)" 600
assert_eq "$(cut -f7 records6.txt | sort -u | wc -l)" 600
assert_eq "$(cut -f5 records6.txt | grep -cE '^[0-9a-f]{32}$')" 600
first=$(grep '"key":"k1"' records6.txt | cut -f5)
want=$(printf '%s1' "$long_id" | md5sum | cut -d' ' -f1)
assert_eq "$first" "$want"

finish
