# `sluice status` and `sluice dlq` from the command line: the table, the
# JSON object's stable fields, and their errors.
. "$(dirname "$0")/lib.sh"

case_ "status of a missing database is an error and creates nothing"
run "$SLUICE" status --db none.db
assert_rc 3
assert_eq "$err" "sluice: none.db: no such database (sluice ingest creates it)"
[ ! -e none.db ] || fail "status created the database"

case_ "status: table and JSON"
printf 'http://img.example/1\nhttp://img.example/2\nhttp://img.example/3\n' >f.txt
"$SLUICE" ingest f.txt >/dev/null
run "$SLUICE" status
assert_rc 0
assert_has "$out" "pending                  3"
assert_has "$out" "total                    3"
assert_has "$out" "done                     0"
assert_has "$out" "oldest"
run "$SLUICE" status --json
assert_rc 0
for field in pending in_flight retrying done dead total oldest_pending_age_s; do
    assert_has "$out" "\"$field\":"
done
assert_has "$out" '"pending":3,"in_flight":0,"retrying":0,"done":0,"dead":0,"total":3'

case_ "status usage errors"
run "$SLUICE" status extra
assert_rc 2
run "$SLUICE" status --bogus
assert_rc 2

case_ "dlq list on an empty dead-letter queue"
run "$SLUICE" dlq list
assert_rc 0
assert_eq "$out" "$(printf 'ID\tCLASS\tSTATUS\tATTEMPTS\tFAILED_AT\tURL\tMESSAGE')"
run "$SLUICE" dlq list --json
assert_eq "$out" '{"records":[],"count":0}'

case_ "dlq replay needs --all or --id"
run "$SLUICE" dlq replay
assert_rc 2
run "$SLUICE" dlq replay --all --id x
assert_rc 2
run "$SLUICE" dlq list --all
assert_rc 2
run "$SLUICE" dlq frob
assert_rc 2
run "$SLUICE" dlq replay --id nope other
assert_rc 1
assert_eq "$out" "0 replayed"
assert_has "$err" "2 of the ids given are not in the dead-letter queue"
# Each named, with what it is instead.
assert_has "$err" "sluice: dlq replay: nope: no such record"
assert_has "$err" "sluice: dlq replay: other: no such record"
run "$SLUICE" dlq replay --id http://img.example/1
assert_rc 1
assert_has "$err" "sluice: dlq replay: http://img.example/1 is pending, not dead"

case_ "dlq --class names the classes when it is not one"
run "$SLUICE" dlq list --class bogus
assert_rc 2
assert_has "$err" "--class: no class 'bogus'; the classes are http, network,"
assert_has "$err" ", store and url"
run "$SLUICE" dlq replay --all --class nope
assert_rc 2
run "$SLUICE" dlq replay --all
assert_rc 0
assert_eq "$out" "0 replayed"

finish
