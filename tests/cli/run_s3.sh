# sluice run into S3, against s3rver (an S3 API server from npm) on
# loopback: objects land byte for byte at PREFIX/KEY with the origin's
# content type and etag and their source URL; a missing bucket or bad
# credentials stop the run before any download; S3 stopped mid-run and
# restarted loses nothing and marks nothing done without its object; a
# run stopped while S3 is down exits at once; the bucket gone mid-run
# stops the run, nothing dead-lettered; the origin's cap holds while
# uploads lag.
. "$(dirname "$0")/lib.sh"
need_s3rver
command -v sqlite3 >/dev/null || skip "sqlite3 is not installed"

unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY \
    AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_SESSION_TOKEN AWS_DEFAULT_REGION
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
export AWS_REGION=us-east-1

N=20
RECORDS=400
SIZE=uniform:2000:60000
DONE=3 # a done record's state in the queue

start_s3rver s3 s3data 0 bkt
EP=http://127.0.0.1:$s3_port
OBJ=s3data/bkt/some/prefix

# check_done DB DIR: every record done in DB has its object in s3rver's
# directory (DIR/KEY._S3rver_object), byte for byte the origin's body for
# SIZE. Prints the count; fails the case if one is missing or differs.
check_done() {
    local links
    links=$(mktemp -d "$WORK/links-XXXXXX")
    # One link per done key, named as origin_verify wants (sku-N.jpg).
    sqlite3 "$1" "SELECT key FROM records WHERE state = $DONE" |
        node -e '
const fs = require("fs");
const [dir, links] = process.argv.slice(1);
for (const key of fs.readFileSync(0, "utf8").split("\n"))
    if (key)
        fs.symlinkSync(`${dir}/${key}._S3rver_object`, `${links}/${key}`);
' "$WORK/$2" "$links"
    "$VERIFY" store "$SIZE" "$links" 2>"$links.err" ||
        fail "a done record's object is missing or differs: $(cat "$links.err")"
    rm -rf "$links" "$links.err"
}

# Files left in the spool: none once a run has ended.
spool_left() {
    find spool -mindepth 2 2>/dev/null
}

case_ "a run with faults lands every object in S3, under the cap"
start_origin o --limit $N --latency lognormal:8:1.2 --size $SIZE
base=http://127.0.0.1:$o_port
"$GEN" $RECORDS jsonl "$base" faults >feed.jsonl
read -r want_done want_dead <<<"$("$GEN" --expect $RECORDS)"
"$SLUICE" ingest --allow-private feed.jsonl >/dev/null
run "$SLUICE" run --store s3://bkt/some/prefix --s3-endpoint "$EP" \
    --spool spool --allow-net 127.0.0.1/32 --max-concurrency $N \
    --stall-timeout 2 --backoff-base 0.05 --backoff-cap 0.5 --json
assert_rc 1 "some records are dead"
assert_has "$out" "\"done\":$want_done,\"dead\":$want_dead"
assert_eq "$(origin_stat "$o_port" violations)" 0
assert_eq "$(origin_stat "$o_port" peak_in_flight)" $N
assert_eq "$(status_field sluice.db done)" "$want_done"
assert_eq "$(status_field sluice.db dead)" "$want_dead"
run "$SLUICE" dlq list
assert_eq "$(printf '%s\n' "$out" | tail -n +2 | cut -f2 | sort -u)" http

case_ "every object is byte-exact, and nothing else is in the bucket"
assert_eq "$(check_done sluice.db "$OBJ")" "$want_done"
assert_eq "$(find s3data/bkt -name '*._S3rver_object' | wc -l)" "$want_done"
assert_eq "$(spool_left)" ""

case_ "every object has the origin's type and etag and its source URL"
sqlite3 -separator "$(printf '\t')" sluice.db \
    "SELECT key, url, etag, content_type FROM records WHERE state = $DONE" \
    >done.tsv
run node -e '
const fs = require("fs");
const [tsv, dir] = process.argv.slice(1);
let n = 0;
for (const line of fs.readFileSync(tsv, "utf8").split("\n")) {
    if (!line) continue;
    const [key, url, etag, type] = line.split("\t");
    const m = JSON.parse(fs.readFileSync(
        `${dir}/${key}._S3rver_metadata.json`, "utf8"));
    if (m["content-type"] !== type || m["x-amz-meta-source-url"] !== url ||
        m["x-amz-meta-origin-etag"] !== etag) {
        console.log(`${key}: ${JSON.stringify(m)}`);
        process.exit(1);
    }
    n++;
}
console.log(n);' done.tsv "$OBJ"
assert_rc 0
assert_eq "$out" "$want_done"

case_ "read back through the S3 API: body and headers"
for i in 1 7 41 399; do # plain, flaky, redirected twice, the last
    run s3_get "$EP/bkt/some/prefix/sku-$i.jpg" got
    assert_has "$out" "HTTP/1.1 200"
    assert_has "$out" "Content-Type: image/jpeg"
    url=$(sed -n "s/.*\"id\":\"sku-$i\",\"url\":\"\([^\"]*\)\".*/\1/p" \
        feed.jsonl)
    [ -n "$url" ] || fail "no url for sku-$i in the feed"
    assert_has "$out" "x-amz-meta-source-url: $url"
    size=$("$VERIFY" size $SIZE $i)
    assert_has "$out" "x-amz-meta-origin-etag: \"$i-$size\""
    # The record's meta, {"n":i}, passed on as user metadata.
    assert_has "$out" "x-amz-meta-n: $i"
    "$VERIFY" check $i "$size" got >/dev/null || fail "sku-$i.jpg differs"
done

case_ "a missing bucket stops the run before any download"
start_origin m --size fixed:1000
"$GEN" 50 jsonl "http://127.0.0.1:$m_port" >m.jsonl
"$SLUICE" ingest --allow-private --db m.db m.jsonl >/dev/null
run "$SLUICE" run --db m.db --store s3://nosuchbucket/x --s3-endpoint "$EP" \
    --spool spool --allow-net 127.0.0.1/32
assert_rc 3
assert_eq "$(lines "$err")" 1
assert_has "$err" "bucket nosuchbucket: NoSuchBucket: "
assert_has "$err" "(HTTP 404)"
assert_eq "$(status_field m.db pending)" 50
assert_eq "$(status_field m.db done)" 0
assert_eq "$(status_field m.db dead)" 0
assert_eq "$(origin_stat "$m_port" requests)" 0

case_ "bad or missing credentials stop the run likewise"
AWS_ACCESS_KEY_ID=NOSUCHKEY run "$SLUICE" run --db m.db \
    --store s3://bkt/x --s3-endpoint "$EP" --spool spool \
    --allow-net 127.0.0.1/32
assert_rc 3
assert_eq "$(lines "$err")" 1
assert_has "$err" "bucket bkt: InvalidAccessKeyId: "
run env -u AWS_ACCESS_KEY_ID "$SLUICE" run --db m.db --store s3://bkt/x \
    --s3-endpoint "$EP" --allow-net 127.0.0.1/32
assert_rc 3
assert_has "$err" "AWS_ACCESS_KEY_ID"
assert_eq "$(status_field m.db pending)" 50
assert_eq "$(status_field m.db dead)" 0
assert_eq "$(origin_stat "$m_port" requests)" 0
assert_eq "$(find s3data/bkt/x 2>/dev/null)" ""

case_ "credentials from a profile, and from its credential_process"
mkdir -p home/.aws
printf '[partner]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n' \
    >home/.aws/credentials
cat >home/creds.sh <<'SH'
#!/bin/sh
echo x >>"$HOME/creds.runs"
printf '{"Version": 1, "AccessKeyId": "S3RVER", "SecretAccessKey": "S3RVER", "SessionToken": "T0KEN", "Expiration": "2099-01-01T00:00:00Z"}'
SH
chmod +x home/creds.sh
printf '[profile tool]\ncredential_process = %s/home/creds.sh\n' "$WORK" \
    >home/.aws/config
NOKEYS=(env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY HOME="$WORK/home")
for profile in partner tool; do
    "$GEN" 30 jsonl "http://127.0.0.1:$m_port" >"p-$profile.jsonl"
    "$SLUICE" ingest --allow-private --db "p-$profile.db" "p-$profile.jsonl" \
        >/dev/null
    run "${NOKEYS[@]}" AWS_PROFILE=$profile "$SLUICE" run \
        --db "p-$profile.db" --store "s3://bkt/$profile" --s3-endpoint "$EP" \
        --spool spool --allow-net 127.0.0.1/32
    assert_rc 0
    assert_eq "$(status_field "p-$profile.db" done)" 30
    assert_eq "$(find "s3data/bkt/$profile" -name '*._S3rver_object' |
        wc -l)" 30
done
# The process ran once for the run: its credentials last until 2099.
assert_eq "$(wc -l <home/creds.runs)" 1
run "${NOKEYS[@]}" AWS_PROFILE=nobody "$SLUICE" run --db m.db \
    --store s3://bkt/x --s3-endpoint "$EP" --allow-net 127.0.0.1/32
assert_rc 3
assert_eq "$(lines "$err")" 1
assert_has "$err" "AWS_PROFILE=nobody: no such profile in $WORK/home/.aws/credentials"
assert_eq "$(status_field m.db pending)" 50

case_ "S3 killed mid-run and restarted: nothing lost, none done early"
U=1200
start_s3rver s3b s3b-data 0 outage
start_origin u --limit $N --latency fixed:20 --size $SIZE
"$GEN" $U jsonl "http://127.0.0.1:$u_port" >u.jsonl
"$SLUICE" ingest --allow-private --db u.db u.jsonl >/dev/null
"$SLUICE" run --db u.db --store s3://outage/p \
    --s3-endpoint "http://127.0.0.1:$s3b_port" --spool spool \
    --allow-net 127.0.0.1/32 --max-concurrency $N -q >u.out 2>u.err &
run_pid=$!
for _ in $(seq 600); do
    [ "$(status_field u.db done)" -ge 200 ] && break
    sleep 0.1
done
stop_s3rver "$s3b_pid" KILL
sleep 1.5
requests=$(origin_stat "$u_port" requests)
done_down=$(status_field u.db done)
[ "$done_down" -ge 200 ] && [ "$done_down" -lt $U ] ||
    fail "the outage did not come mid-run ($done_down done)"
# Even now, every record marked done has its object.
assert_eq "$(check_done u.db s3b-data/outage/p)" "$done_down"
sleep 1.5
# S3 is down: nothing is marked done, nothing dead, and fetching has
# paused (jobs wait for their uploads) instead of piling up spools.
assert_eq "$(status_field u.db done)" "$done_down"
assert_eq "$(status_field u.db dead)" 0
assert_eq "$(origin_stat "$u_port" requests)" "$requests"
[ "$(find spool -type f | wc -l)" -le 100 ] || fail "the spool grew"
start_s3rver s3b s3b-data "$s3b_port"
wait "$run_pid"
rc=$?
out=$(cat u.out) err=$(cat u.err)
assert_rc 0
assert_eq "$(status_field u.db done)" $U
assert_eq "$(status_field u.db dead)" 0
assert_eq "$(check_done u.db s3b-data/outage/p)" $U
assert_eq "$(origin_stat "$u_port" violations)" 0
assert_eq "$(spool_left)" ""

case_ "stopped while S3 is down: it exits at once, the next run finishes"
start_s3rver s3c s3c-data 0 stop
"$GEN" 600 jsonl "http://127.0.0.1:$u_port" >s.jsonl
"$SLUICE" ingest --allow-private --db s.db s.jsonl >/dev/null
"$SLUICE" run --db s.db --store s3://stop/p \
    --s3-endpoint "http://127.0.0.1:$s3c_port" --spool spool \
    --allow-net 127.0.0.1/32 --max-concurrency $N -q >s.out 2>s.err &
run_pid=$!
for _ in $(seq 600); do
    [ "$(status_field s.db done)" -ge 50 ] && break
    sleep 0.1
done
stop_s3rver "$s3c_pid" KILL
sleep 1
kill -INT "$run_pid"
for _ in $(seq 100); do
    kill -0 "$run_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$run_pid" 2>/dev/null; then
    fail "still running 10 s after SIGINT"
    kill -KILL "$run_pid"
fi
wait "$run_pid"
rc=$?
out=$(cat s.out) err=$(cat s.err)
assert_rc 130
assert_eq "$(status_field s.db dead)" 0
assert_eq "$(spool_left)" ""
start_s3rver s3c s3c-data "$s3c_port"
run "$SLUICE" run --db s.db --store s3://stop/p \
    --s3-endpoint "http://127.0.0.1:$s3c_port" --spool spool \
    --allow-net 127.0.0.1/32 --max-concurrency $N -q
assert_rc 0
assert_eq "$(status_field s.db done)" 600
assert_eq "$(check_done s.db s3c-data/stop/p)" 600

case_ "the bucket gone mid-run: the run stops at once, nothing dead"
start_s3rver s3d s3d-data 0 gone
"$GEN" 600 jsonl "http://127.0.0.1:$u_port" >g.jsonl
"$SLUICE" ingest --allow-private --db g.db g.jsonl >/dev/null
"$SLUICE" run --db g.db --store s3://gone/p \
    --s3-endpoint "http://127.0.0.1:$s3d_port" --spool spool \
    --allow-net 127.0.0.1/32 --max-concurrency $N -q >g.out 2>g.err &
run_pid=$!
for _ in $(seq 600); do
    [ "$(status_field g.db done)" -ge 50 ] && break
    sleep 0.1
done
# The same port, a server without the bucket.
stop_s3rver "$s3d_pid" KILL
start_s3rver s3d s3d-empty "$s3d_port"
for _ in $(seq 300); do
    kill -0 "$run_pid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$run_pid" 2>/dev/null && fail "still running 30 s after"
wait "$run_pid"
rc=$?
out=$(cat g.out) err=$(cat g.err)
assert_rc 3
assert_has "$err" "bucket gone: NoSuchBucket: "
# One line of failure (beside the run's word on its URL policy).
assert_eq "$(lines "$(grep -v '^sluice: URL policy: ' <<<"$err")")" 1
assert_eq "$(status_field g.db dead)" 0
assert_eq "$(status_field g.db in_flight)" 0
done_g=$(status_field g.db done)
assert_eq "$(status_field g.db pending)" $((600 - done_g))
assert_eq "$(check_done g.db s3d-data/gone/p)" "$done_g"
assert_eq "$(spool_left)" ""

case_ "the origin's cap holds while uploads lag"
start_origin c --limit 10 --latency fixed:5 --size $SIZE
"$GEN" 400 jsonl "http://127.0.0.1:$c_port" >c.jsonl
"$SLUICE" ingest --allow-private --db c.db c.jsonl >/dev/null
run "$SLUICE" run --db c.db --store s3://bkt/lag --s3-endpoint "$EP" \
    --spool spool --allow-net 127.0.0.1/32 --max-concurrency 10 \
    --store-concurrency 1 -q
assert_rc 0
# The cap is never passed, and is used: 10 at once while uploads still
# keep up; a stall of a few ms at each of those moments may leave 9 or 8.
peak=$(origin_stat "$c_port" peak_in_flight)
[ "$peak" -le 10 ] && [ "$peak" -ge 8 ] || fail "peak in flight $peak, not 8-10"
assert_eq "$(origin_stat "$c_port" violations)" 0
assert_eq "$(status_field c.db done)" 400
assert_eq "$(check_done c.db s3data/bkt/lag)" 400

finish
