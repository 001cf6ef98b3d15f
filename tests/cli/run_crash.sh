# Crash safety (invariants 2 and 3): kill -9 the runner at random moments
# of a 2,500-record run with faults, restarting it each time. After every
# kill, every object under its final key is complete and byte-exact, and
# every record marked done has its object; at the end every record is
# done or dead, every object is there and byte-exact, and no temp file or
# partial object remains.
. "$(dirname "$0")/lib.sh"

N=20
RECORDS=2500
SIZE=uniform:1000:400000
KILLS=6

start_origin o --limit $N --latency lognormal:10:1 --size $SIZE
"$GEN" $RECORDS jsonl "http://127.0.0.1:$o_port" faults >feed.jsonl
read -r want_done want_dead <<<"$("$GEN" --expect $RECORDS)"
"$SLUICE" ingest --allow-private feed.jsonl >/dev/null

RUN=("$SLUICE" run --store out --allow-net 127.0.0.1/32 --max-concurrency $N
     --timeout 10
     --stall-timeout 2 --backoff-base 0.05 --backoff-cap 0.5 --quiet)

# Every object in the store is whole, and every done record has one.
check_consistent() {
    local checked done_count
    checked=$("$VERIFY" store $SIZE out 2>verify.err) ||
        fail "a partial or wrong object is visible: $(cat verify.err)"
    done_count=$(sqlite3 sluice.db "SELECT count(*) FROM records WHERE state = 3")
    missing=$(sqlite3 sluice.db "SELECT key FROM records WHERE state = 3" |
        while read -r key; do [ -f "out/$key" ] || echo "$key"; done | head -3)
    [ -z "$missing" ] || fail "done records without an object: $missing"
    [ "${checked:-0}" -ge "$done_count" ] ||
        fail "$done_count done records but only $checked objects"
}

for k in $(seq $KILLS); do
    case_ "kill -9 number $k"
    "${RUN[@]}" >/dev/null 2>&1 &
    pid=$!
    # A random moment between 0.2 s and 1.5 s into the run.
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.2 + (r % 1300) / 1000 }')"
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    check_consistent
    assert_eq "$(status_field sluice.db total)" $RECORDS
done

case_ "a final run finishes the job"
run "${RUN[@]}"
assert_rc 1 "the 404s and 410s are dead"
assert_eq "$(status_field sluice.db done)" "$want_done"
assert_eq "$(status_field sluice.db dead)" "$want_dead"
assert_eq "$(status_field sluice.db in_flight)" 0
check_consistent
assert_eq "$("$VERIFY" store $SIZE out)" "$want_done"
assert_eq "$(stray_files out)" ""
assert_eq "$(find out/.sluice-tmp -mindepth 1 | wc -l)" 0
assert_eq "$(origin_stat "$o_port" violations)" 0

finish
