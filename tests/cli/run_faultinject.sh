# Fault injection (test builds): fail the Nth allocation, store write,
# fsync, rename or database operation of a run, for many N. Each time the
# run either finishes or stops with a clear one-line reason (exit 3), and
# the invariants hold: every visible object is whole, every done record
# has its object, nothing is in flight afterwards; then a clean run
# finishes the job.
. "$(dirname "$0")/lib.sh"

RECORDS=150
SIZE=uniform:1000:90000
start_origin o --latency uniform:1:4 --size $SIZE
"$GEN" $RECORDS jsonl "http://127.0.0.1:$o_port" >feed.jsonl

# The build must have fault injection compiled in: probe it.
"$SLUICE" ingest --allow-private --db probe.db feed.jsonl >/dev/null
if SLUICE_FAULT=db:1 "$SLUICE" status --db probe.db >/dev/null 2>&1 &&
    SLUICE_FAULT=db:1 "$SLUICE" run --db probe.db --store probe \
        --allow-private --quiet >/dev/null 2>&1; then
    skip "this build has no fault injection (-DSLUICE_FAULT_INJECTION=ON)"
fi

# check_invariants LABEL KIND
check_invariants() {
    local label=$1 kind=$2 checked=0 done_count
    if [ -d out ]; then
        checked=$("$VERIFY" store $SIZE out 2>verify.err) ||
            fail "$label: a partial or wrong object is visible: $(cat verify.err)"
    fi
    done_count=$(status_field sluice.db done)
    [ "${checked:-0}" -ge "$done_count" ] ||
        fail "$label: $done_count done but $checked objects"
    # After a database failure the run may not be able to give its leases
    # back: those records stay in flight until the next run recovers them.
    # Any other failure gives them back.
    if [ "$kind" != db ]; then
        assert_eq "$(status_field sluice.db in_flight)" 0
    fi
    assert_eq "$(status_field sluice.db total)" $RECORDS
}

# inject KIND N...: for each N, a fresh queue and store, a run with the
# Nth KIND failing, the checks, then a clean run to the end.
inject() {
    local kind=$1
    shift
    for nth in "$@"; do
        CURRENT_TEST="$kind:$nth"
        rm -rf sluice.db* out
        "$SLUICE" ingest --allow-private feed.jsonl >/dev/null
        run env SLUICE_FAULT="$kind:$nth" "$SLUICE" run --store out \
            --allow-private --max-concurrency 8 --quiet
        faulted=$((faulted + (rc == 3)))
        case $rc in
        0) ;; # the fault was not reached, or was survived
        3)
            [ "$(lines "$err")" -ge 1 ] || fail "$kind:$nth: no reason given"
            assert_has "$err" "sluice: "
            ;;
        *) fail "$kind:$nth: exit status $rc" ;;
        esac
        check_invariants "$kind:$nth" "$kind"
        run "$SLUICE" run --store out --allow-private --quiet
        assert_rc 0 "the clean run after $kind:$nth"
        assert_eq "$("$VERIFY" store $SIZE out)" $RECORDS
        assert_eq "$(stray_files out)" ""
    done
}

faulted=0
case_ "failed allocations"
inject alloc 1 2 3 5 8 13 21 34 55 89 144 233 377 610 987
case_ "failed store writes"
inject write 1 2 40 120
case_ "failed fsyncs"
inject fsync 1 2 10 30
case_ "failed renames"
inject rename 1 2 25 90
case_ "failed database operations"
inject db 1 2 3 5 8 13 21 34 55 89
[ $faulted -ge 20 ] || fail "only $faulted runs met their fault"

finish
