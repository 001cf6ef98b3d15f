# Usage errors of every command: a bad number names its option and the
# range allowed, an unknown option or a missing argument says which; each
# exits 2 with the hint to --help and touches no database. A bad
# $SLUICE_BUSY_TIMEOUT_MS is one line naming the variable and its value,
# exit 2, in every command that opens the queue.
. "$(dirname "$0")/lib.sh"

# bad_value OPTION VALUE MESSAGE: `sluice run --store out OPTION VALUE`
# is refused with "sluice run: OPTION: VALUE: must be MESSAGE".
bad_value() {
    run "$SLUICE" run --db q.db --store out "$1" "$2"
    assert_rc 2 "$1 $2"
    assert_eq "$(printf '%s\n' "$err" | head -1)" \
        "sluice run: $1: $2: must be $3"
    assert_has "$err" "Try 'sluice run --help'."
    [ ! -e q.db ] || fail "a usage error created the database"
}

# good_value OPTION VALUE: the value parses (the run then stops at the
# missing database, exit 3).
good_value() {
    run "$SLUICE" run --db none.db --store out "$1" "$2"
    assert_rc 3 "$1 $2"
    assert_has "$err" "none.db: no such database"
}

case_ "counts: the option, the value, the range"
bad_value --max-concurrency 0 "at least 1, at most 100000"
bad_value --max-concurrency 100001 "at least 1, at most 100000"
bad_value --max-concurrency many "a whole number, at least 1, at most 100000"
bad_value --max-concurrency -5 "a whole number, at least 1, at most 100000"
bad_value --max-concurrency 2.5 "a whole number, at least 1, at most 100000"
bad_value --max-attempts 0 "at least 1, at most 100000"
bad_value --max-total 100001 "at most 100000"
bad_value --max-total x "a whole number, at most 100000"
bad_value --store-concurrency 0 "at least 1, at most 1024"
bad_value --store-concurrency 1025 "at least 1, at most 1024"
good_value --max-concurrency 100000
good_value --max-total 0
good_value --store-concurrency 1024

case_ "durations: above 0 or 0 or more, at most a year, with units"
units="(or with a unit: 90s, 15m, 24h, 7d)"
zero="a number of seconds, 0 or more, at most 365d $units"
bad_value --timeout 0 "a number of seconds above 0, at most 365d $units"
bad_value --timeout 366d "a number of seconds above 0, at most 365d $units"
bad_value --timeout soon "a number of seconds above 0, at most 365d $units"
bad_value --timeout -3 "a number of seconds above 0, at most 365d $units"
bad_value --stall-timeout 0 "a number of seconds above 0, at most 365d $units"
bad_value --max-age 2w "a number of seconds above 0, at most 365d $units"
bad_value --backoff-cap 0s "a number of seconds above 0, at most 365d $units"
bad_value --backoff-base -1 "$zero"
bad_value --grace x "$zero"
good_value --timeout 365d
good_value --timeout 0.5
good_value --max-age 90m
good_value --grace 0
good_value --backoff-base 0

case_ "sizes and rates"
size="a size in bytes, at least 1, at most 1048576G"
size="$size (or with a unit: 500k, 100M, 2G)"
bad_value --max-bytes 0 "$size"
bad_value --max-bytes lots "$size"
bad_value --max-bytes 1048577G "$size"
rate="requests a second above 0, as 100/s, 6000/min or 1/h, or none"
bad_value --rate 0 "$rate"
bad_value --rate 5/week "$rate"
good_value --max-bytes 1048576G
good_value --max-bytes 64KiB
good_value --rate 6000/min

case_ "--option=value names the option, not the argument"
run "$SLUICE" run --db q.db --store out --max-concurrency=0
assert_rc 2
assert_has "$err" "sluice run: --max-concurrency: 0: must be at least 1"

case_ "a missing argument, an unknown option, in every command"
run "$SLUICE" run --store out --timeout
assert_rc 2
assert_has "$err" "sluice run: option '--timeout' needs an argument (SEC)"
run "$SLUICE" ingest --format
assert_rc 2
assert_has "$err" "sluice ingest: option '--format' needs an argument (FORMAT)"
for words in "ingest" "run" "status" "dlq list" "dlq replay" "slots list" \
    "slots clear"; do
    cmd=${words%% *}
    run "$SLUICE" $words --bogus
    assert_rc 2 "$words --bogus"
    assert_has "$err" "sluice $cmd: unknown option '--bogus'"
    assert_has "$err" "Try 'sluice $cmd --help'."
    run "$SLUICE" $words --db
    assert_rc 2 "$words --db"
    assert_has "$err" "sluice $cmd: option '--db' needs an argument (FILE)"
done
[ ! -e sluice.db ] || fail "a usage error created the database"

case_ "a bad \$SLUICE_BUSY_TIMEOUT_MS, in every command that opens the queue"
echo "http://img.example/a.jpg" >feed.txt
for value in soon 0 -5 3600000 250ms " 250" 99999999999999999999999; do
    for words in "ingest --db b.db feed.txt" "run --db b.db --store out" \
        "status --db b.db" "list --db b.db" "dlq list --db b.db" \
        "dlq replay --db b.db --all" "slots list --db b.db" \
        "slots clear --db b.db --yes"; do
        run env SLUICE_BUSY_TIMEOUT_MS="$value" "$SLUICE" $words
        assert_rc 2 "$words, SLUICE_BUSY_TIMEOUT_MS='$value'"
        assert_eq "$err" "sluice: SLUICE_BUSY_TIMEOUT_MS=$value (from the \
environment): expected milliseconds, 1 to 3599999"
    done
done
[ ! -e b.db ] || fail "a bad \$SLUICE_BUSY_TIMEOUT_MS created the database"
# Good values are used; empty is unset.
for value in 1 250 3599999 ""; do
    run env SLUICE_BUSY_TIMEOUT_MS="$value" "$SLUICE" ingest --db b.db \
        feed.txt
    assert_rc 0 "SLUICE_BUSY_TIMEOUT_MS='$value'"
    run env SLUICE_BUSY_TIMEOUT_MS="$value" "$SLUICE" status --db b.db
    assert_rc 0 "status, SLUICE_BUSY_TIMEOUT_MS='$value'"
done

finish
