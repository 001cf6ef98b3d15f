# `sluice migrate`: a queue copied into another as it is (states, results,
# the dead-letter queue, the stored cap and URL policy), so that nothing
# done is fetched again; refused into a queue with records, while a run
# uses the source, and while a dead run's slots are held there.
. "$(dirname "$0")/lib.sh"

start_origin o --latency 0 --size fixed:300
base=http://127.0.0.1:$o_port
cat >feed.jsonl <<FEED
{"id":"a","url":"$base/img/1.jpg","meta":{"title":"one"}}
{"id":"b","url":"$base/img/2.jpg"}
{"id":"gone","url":"$base/img/3.jpg?fault=status&code=404"}
{"id":"later","url":"$base/img/4.jpg"}
FEED
"$SLUICE" ingest --allow-private --db a.db feed.jsonl >/dev/null 2>&1
"$SLUICE" run --db a.db --store out --max-concurrency 7 --quiet \
    >/dev/null 2>&1
printf '{"id":"later","url":"%s/img/5.jpg"}\n' "$base" |
    "$SLUICE" ingest --db a.db - >/dev/null 2>&1
# Feed order after the states above: a b gone later; two done, one dead,
# one pending.

case_ "every record arrives as it was, and the settings with them"
run "$SLUICE" migrate --from a.db --to b.db
assert_rc 0
assert_eq "$out" "migrated 4 records (1 pending, 0 retrying, 2 done, 1 dead) and 2 settings from a.db to b.db"
for view in "list --csv" "list --json" "dlq list --json"; do
    # shellcheck disable=SC2086
    assert_eq "$("$SLUICE" $view --db b.db)" "$("$SLUICE" $view --db a.db)"
done
assert_eq "$(status_field b.db done)" 2
assert_eq "$(status_field b.db dead)" 1
assert_eq "$(status_field b.db pending)" 1

case_ "the copy runs on: nothing done is fetched again; cap and policy kept"
before=$(origin_stat $o_port requests)
# No --allow-private and no --max-concurrency: both come with the queue.
run "$SLUICE" run --db b.db --store out2 --json
assert_rc 1 # the dead record is still dead
assert_has "$out" '"done":1,"dead":0,"retried":0,"throttled":0,"requests":1,'
assert_has "$err" "URL policy: every address allowed (--allow-private) (stored with the queue"
assert_eq "$(($(origin_stat $o_port requests) - before))" 1
assert_eq "$(ls out2)" later.jpg
run "$SLUICE" run --db b.db --store out2 --max-concurrency 9
assert_has "$err" "cap: 7 requests at once per origin, stored with the queue"

case_ "--json"
run "$SLUICE" migrate --from a.db --to c.db --json
assert_rc 0
assert_eq "$out" '{"from":"a.db","to":"c.db","records":4,"pending":1,"retrying":0,"done":2,"dead":1,"were_in_flight":0,"settings":2}'

case_ "refused: into a queue with records, the same queue, no such source"
run "$SLUICE" migrate --from a.db --to b.db
assert_rc 2
assert_eq "$(lines "$err")" 1
assert_has "$err" "b.db holds 4 records already; migrate into an empty queue"
run "$SLUICE" migrate --from a.db --to a.db
assert_rc 2
assert_has "$err" "the same queue"
run "$SLUICE" migrate --from a.db
assert_rc 2
assert_has "$err" "--to"
run "$SLUICE" migrate --from nope.db --to d.db
assert_rc 3
assert_has "$err" "nope.db: no such database"
[ ! -e d.db ] || fail "d.db was made for a source that is not there"

case_ "refused while a run uses the source, and while its slots are held"
start_origin slow --latency fixed:20000 --size fixed:300
for i in 1 2 3; do
    printf '{"id":"s%s","url":"http://127.0.0.1:%s/img/%s.jpg"}\n' \
        "$i" "$slow_port" "$i"
done >slow.jsonl
"$SLUICE" ingest --allow-private --db s.db slow.jsonl >/dev/null 2>&1
"$SLUICE" run --db s.db --store sout --timeout 60 --quiet >/dev/null 2>&1 &
runner=$!
for _ in $(seq 100); do
    [ "$(origin_stat $slow_port in_flight)" = 3 ] && break
    sleep 0.1
done
assert_eq "$(origin_stat $slow_port in_flight)" 3
run "$SLUICE" migrate --from s.db --to e.db
assert_rc 3
assert_has "$err" "s.db: a run is using it; migrate once it has stopped"
kill -9 $runner
wait $runner 2>/dev/null
run "$SLUICE" migrate --from s.db --to e.db
assert_rc 3
assert_eq "$(lines "$err")" 1
assert_has "$err" "holds slots of http://127.0.0.1:$slow_port until 20"
assert_has "$err" "migrate after then"
assert_eq "$(status_field e.db total)" 0
# Once the operator frees them, the records the dead run held arrive ready.
"$SLUICE" slots clear --db s.db --yes >/dev/null 2>&1
run "$SLUICE" migrate --from s.db --to e.db
assert_rc 0
assert_has "$out" "migrated 3 records (3 pending, 0 retrying, 0 done, 0 dead)"
assert_has "$out" "3 records a run that died left in flight are ready again"

case_ "SQLite into Redis and back: the same records, the same listings"
. "$SOURCE_DIR/tests/redis/start.sh"
start_redis r
run "$SLUICE" migrate --from a.db --to "$r_url"
assert_rc 0
assert_has "$out" "migrated 4 records (1 pending, 0 retrying, 2 done, 1 dead) and 2 settings"
for view in "list --csv" "list --json" "dlq list --json" "status --json"; do
    # shellcheck disable=SC2086
    assert_eq "$("$SLUICE" $view --db "$r_url" |
        sed 's/"oldest_pending_age_s":[0-9.]*//')" \
        "$("$SLUICE" $view --db a.db | sed 's/"oldest_pending_age_s":[0-9.]*//')"
done
run "$SLUICE" migrate --from "$r_url" --to back.db
assert_rc 0
assert_eq "$("$SLUICE" list --csv --db back.db)" "$("$SLUICE" list --csv --db a.db)"
# The Redis copy runs on: only the pending record is fetched.
run "$SLUICE" run --db "$r_url" --store out3 --json
assert_rc 1 # the dead record is still dead
assert_has "$out" '"done":1,"dead":0,"retried":0,"throttled":0,"requests":1,'
assert_eq "$(ls out3)" later.jpg
run "$SLUICE" migrate --from a.db --to "$r_url"
assert_rc 2
assert_has "$err" "holds 4 records already"

finish
