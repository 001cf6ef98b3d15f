# A run whose slots are all taken idles between responses: with its one
# origin's records ready and nothing else to lease, the loop sleeps until
# a response, a timer or an answer comes. (It once turned without pause
# whenever it had just leased and knew no other origin's records: here
# 760 ms of user CPU in these 3 s, now 80 to 170.)
. "$(dirname "$0")/lib.sh"

RECORDS=2000
start_origin o --latency lognormal:30:1 --size fixed:1000
"$GEN" $RECORDS jsonl "http://127.0.0.1:$o_port" >feed.jsonl
"$SLUICE" ingest --allow-private feed.jsonl >/dev/null

case_ "20 slots on a 30 ms origin: the run waits, it does not spin"
"$SLUICE" run --store out --allow-private --max-concurrency 20 --quiet \
    >run.out 2>&1 &
run_pid=$!
sleep 1
# User time only: writing the objects is system time, and a loop that
# turns without waiting is user time (its clock reads, its scheduling).
# A sanitized build does the same work at two to three times the CPU
# (160 ms here, 330 to 400 ms under ASan); the spin cost 760 ms in a
# plain build.
limit=400
if ldd "$SLUICE" | grep -q libasan; then limit=1000; fi
busy_ms=$(cpu_ms $run_pid 3 user)
# Its threads say what they are for (top -H, gdb): the loop's helpers.
threads=$(cat /proc/$run_pid/task/*/comm | sort -u | tr '\n' ' ')
echo "# threads: $threads"
for t in sl-marker sl-sync sl-flush sl-counter; do
    case " $threads " in
    *" $t "*) ;;
    *) fail "no thread named $t among: $threads" ;;
    esac
done
echo "# ${busy_ms} ms of user CPU in 3 s"
[ "$busy_ms" -lt "$limit" ] ||
    fail "the run used ${busy_ms} ms of user CPU in 3 s (it spins)"
wait $run_pid
rc=$?
assert_eq "$rc" 0
assert_eq "$(status_field sluice.db done)" $RECORDS
assert_eq "$("$VERIFY" store fixed:1000 out)" $RECORDS

finish
