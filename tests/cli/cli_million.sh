# A million generated records: ingested, counted, ingested again (all
# unchanged). The speed and memory figures are bench/ingest.sh's job.
. "$(dirname "$0")/lib.sh"

GEN=$BUILD_DIR/bench/gen_feed
[ -x "$GEN" ] || { fail "gen_feed not built at $GEN"; finish; }

case_ "a million records"
"$GEN" 1000000 jsonl >million.jsonl
run "$SLUICE" ingest --quiet million.jsonl
assert_rc 0
assert_eq "$out" "1000000 new, 0 updated, 0 unchanged, 0 rejected"
run "$SLUICE" status --json
assert_has "$out" '"pending":1000000,"in_flight":0,"retrying":0,"done":0,"dead":0,"total":1000000'
run "$SLUICE" ingest --quiet million.jsonl
assert_rc 0
assert_eq "$out" "0 new, 0 updated, 1000000 unchanged, 0 rejected"

finish
