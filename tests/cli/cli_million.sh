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

case_ "list streams a million records in constant memory"
# Under AddressSanitizer, freed memory waits in its quarantine (256 MiB):
# without one, what the RSS shows is what the listing holds.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=0"
/usr/bin/time -f %M -o rss-million.txt "$SLUICE" list --json >list.jsonl
assert_eq "$(wc -l <list.jsonl)" 1000000
"$GEN" 1000 jsonl >thousand.jsonl
"$SLUICE" ingest --quiet --db thousand.db thousand.jsonl >/dev/null
/usr/bin/time -f %M -o rss-thousand.txt "$SLUICE" list --json \
    --db thousand.db >/dev/null
million=$(tail -n 1 rss-million.txt) thousand=$(tail -n 1 rss-thousand.txt)
echo "# list: peak RSS ${thousand} KiB for 1,000 records, ${million} KiB" \
    "for 1,000,000"
[ $((million - thousand)) -le 16384 ] ||
    fail "list's memory grew by $((million - thousand)) KiB with the queue"

finish
