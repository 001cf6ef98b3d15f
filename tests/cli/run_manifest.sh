# --manifest FILE: a JSON line for each record stored (id, key, url, size,
# sha256, meta), durable before the record is marked done: after a
# kill -9 and a rerun, every done record is in it; a torn last line is
# cut off; a manifest that cannot be written stops the run.
. "$(dirname "$0")/lib.sh"

N=300
start_origin o --latency fixed:40 --size fixed:1500
"$GEN" $N jsonl "http://127.0.0.1:$o_port" >feed.jsonl
"$SLUICE" ingest --allow-private feed.jsonl >/dev/null
RUN=("$SLUICE" run --store out --allow-private --max-concurrency 8 --timeout 5
     --manifest m.jsonl --quiet)

# every_done_listed: each done record's key and SHA-256 has a line.
every_done_listed() {
    "$SLUICE" list --state done --csv | tail -n +2 | cut -d, -f4,6 |
        sort >done.txt
    sed -n 's/.*"key":"\([^"]*\)".*"sha256":"\([0-9a-f]*\)".*/\1,\2/p' \
        m.jsonl | sort -u >listed.txt
    comm -23 done.txt listed.txt
}

case_ "killed mid-run and run again: every done record is in the manifest"
"${RUN[@]}" >/dev/null 2>&1 &
pid=$!
sleep 1
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
before=$(status_field sluice.db done)
[ "$before" -gt 0 ] && [ "$before" -lt $N ] ||
    fail "the kill came at a bad time: $before done"
missing=$(every_done_listed)
[ -z "$missing" ] || fail "done but not in the manifest: $missing"
# A torn line, as a crash in the middle of a write would leave.
printf '{"id":"sku-torn","key":"sku-to' >>m.jsonl
run "${RUN[@]}"
assert_rc 0
assert_eq "$(status_field sluice.db done)" $N
missing=$(every_done_listed)
[ -z "$missing" ] || fail "done but not in the manifest: $missing"
! grep -q 'sku-to' m.jsonl || fail "the torn line was kept"
bad=$(grep -vc '^{"id":"[^"]*","key":"[^"]*","url":"[^"]*","size":1500,"sha256":"[0-9a-f]\{64\}","meta":{"n":[0-9]*}}$' m.jsonl)
assert_eq "$bad" 0
assert_has "$(cat m.jsonl)" \
    "{\"id\":\"sku-7\",\"key\":\"sku-7.jpg\",\"url\":\"http://127.0.0.1:$o_port/img/7.jpg\",\"size\":1500,\"sha256\":\"$(sha256sum out/sku-7.jpg | cut -d' ' -f1)\",\"meta\":{\"n\":7}}"

case_ "a manifest that cannot be written stops the run, nothing marked"
"$GEN" 5 jsonl "http://127.0.0.1:$o_port" >b.jsonl
"$SLUICE" ingest --allow-private --db b.db b.jsonl >/dev/null
run "$SLUICE" run --db b.db --store outb --allow-private \
    --manifest nodir/m.jsonl
assert_rc 3
assert_has "$err" "--manifest nodir/m.jsonl: No such file or directory"
assert_eq "$(status_field b.db done)" 0

finish
