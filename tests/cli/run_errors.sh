# sluice run's own errors: usage, a store that cannot be written, a
# missing database, a body over --max-bytes, timeouts, and a full store
# (RLIMIT_FSIZE): each a one-line reason and the right exit status, and
# never a truncated object marked done.
. "$(dirname "$0")/lib.sh"

start_origin o --latency 0 --size fixed:50000
base=http://127.0.0.1:$o_port
printf '%s/img/1.jpg\n%s/img/2.jpg\n' "$base" "$base" >feed.txt
"$SLUICE" ingest --allow-private feed.txt >/dev/null

case_ "usage errors"
run "$SLUICE" run
assert_rc 2
assert_has "$err" "--store DIR is required"
run "$SLUICE" run --store out --max-concurrency 0
assert_rc 2
run "$SLUICE" run --store out --max-bytes lots
assert_rc 2
assert_has "$err" "--max-bytes"
run "$SLUICE" run --store out --timeout -3
assert_rc 2
run "$SLUICE" run --help
assert_rc 0
assert_has "$out" "--max-concurrency N"

case_ "a missing database"
run "$SLUICE" run --db none.db --store out
assert_rc 3
assert_has "$err" "none.db: no such database"

case_ "a store that cannot be written"
: >afile
run "$SLUICE" run --store afile/sub --allow-private
assert_rc 3
assert_has "$err" "afile/sub"
assert_eq "$(lines "$err")" 1
assert_eq "$(status_field sluice.db pending)" 2

case_ "a body over --max-bytes is dead-lettered, nothing stored"
run "$SLUICE" run --store out --allow-private --max-bytes 10k --quiet
assert_rc 1
run "$SLUICE" dlq list
assert_has "$out" "$(printf 'too_large\t200\t1\t')"
assert_has "$out" "larger than --max-bytes (10240)"
assert_eq "$(find out -type f ! -path '*/.sluice-tmp/*' | wc -l)" 0

case_ "a stalled transfer times out and is retried"
start_origin slow --latency 0 --size fixed:50000
echo "http://127.0.0.1:$slow_port/img/3.jpg?fault=stall&fails=2" >stall.txt
"$SLUICE" ingest --allow-private --db stall.db stall.txt >/dev/null
run "$SLUICE" run --db stall.db --store out4 --allow-private \
    --stall-timeout 1 --backoff-base 0.01 --quiet
assert_rc 0
run sqlite3 stall.db "SELECT state, attempts, error_class FROM records"
assert_eq "$out" "3|2|"

case_ "a full store stops the run; nothing truncated is done"
"$SLUICE" dlq replay --all >/dev/null
run bash -c "ulimit -f 40; exec '$SLUICE' run --store full --allow-private --quiet"
assert_rc 3
assert_has "$err" "store full: "
assert_has "$err" "write: File too large"
assert_eq "$(status_field sluice.db done)" 0
assert_eq "$(status_field sluice.db in_flight)" 0
[ -z "$(find full -type f ! -path '*/.sluice-tmp/*')" ] ||
    fail "an object was left in the full store"
run "$SLUICE" run --store full --allow-private --quiet
assert_rc 0
assert_eq "$("$VERIFY" check 1 50000 full/127.0.0.1+$o_port/img/1.jpg && echo ok)" ok

finish
