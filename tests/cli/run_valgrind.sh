# valgrind memcheck over a short end-to-end job (ingest, run with faults,
# status, dlq list, dlq replay): no invalid access, no definite or
# indirect leak. Registered only for builds without sanitizers (valgrind
# cannot run an ASan binary).
. "$(dirname "$0")/lib.sh"

command -v valgrind >/dev/null || skip "valgrind is not installed (scripts/setup.sh test)"
VG=(valgrind --quiet --error-exitcode=99 --leak-check=full
    --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
    --track-origins=yes)

start_origin o --limit 4 --latency uniform:1:3 --size uniform:500:20000
"$GEN" 120 jsonl "http://127.0.0.1:$o_port" faults >feed.jsonl
printf '{"url":"ftp://x/y"}\nnot json\n' >>feed.jsonl

case_ "ingest under valgrind"
run "${VG[@]}" "$SLUICE" ingest --allow-private feed.jsonl
assert_rc 1 "two lines are rejected"
assert_lacks "$err" "=="

case_ "run under valgrind"
run "${VG[@]}" "$SLUICE" run --store out --allow-private --max-concurrency 4 \
    --stall-timeout 1 --backoff-base 0.02 --backoff-cap 0.1 --quiet
assert_rc 1 "the 404s are dead"
assert_lacks "$err" "=="
assert_eq "$(status_field sluice.db done)" "$("$GEN" --expect 120 | cut -d' ' -f1)"

case_ "status, dlq list and replay under valgrind"
run "${VG[@]}" "$SLUICE" status --json
assert_rc 0
assert_lacks "$err" "=="
run "${VG[@]}" "$SLUICE" dlq list --json
assert_rc 0
assert_lacks "$err" "=="
run "${VG[@]}" "$SLUICE" dlq replay --all
assert_rc 0
assert_lacks "$err" "=="

finish
