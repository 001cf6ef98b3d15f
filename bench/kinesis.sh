#!/usr/bin/env bash
# The Kinesis workloads (issue 20), on kinesalite on loopback (started as
# the tests start it) and streams of 4 shards:
#
#   publish   `sluice publish` of KINESIS_N JSONL records (50,000):
#             records/s
#   ingest    `sluice ingest kinesis://` of the same stream, without
#             --follow, into a fresh SQLite queue: records/s, and its
#             rate over publish's
#   latency   `ingest --follow` and `run --follow` running on one queue
#             against the test origin (no added latency, 4 KiB bodies);
#             LAT_RATE records/s (200) for LAT_S seconds (10) published
#             as a `sluice publish` of LAT_RATE/10 records every 100 ms.
#             For each record, from the end of the PutRecords that
#             carried it (its publish returned) to: its upsert into the
#             queue (queued_at), its object under its key in the
#             directory store (the file's ctime: the rename that makes
#             it visible, after its fsync), and its record marked done
#             (finished_at: the store said the object is durable, the
#             directory fsync'd). Median, p99 and max of each.
#
#   bash bench/kinesis.sh [BUILD_DIR]
#   KINESIS_N=50000 ROUNDS=3 LAT_RATE=200 LAT_S=10
#   KINESIS_WORKLOADS="throughput latency"
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
n=${KINESIS_N:-50000}
rounds=${ROUNDS:-3}
lat_rate=${LAT_RATE:-200}
lat_s=${LAT_S:-10}
workloads=${KINESIS_WORKLOADS:-throughput latency}
shards=4
. "$root/bench/lib.sh"
bench_prepare kinesis "$@"
bench_kinesalite k

now() { echo "${EPOCHREALTIME/,/.}"; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# The records of the throughput workload name an origin that is never
# fetched: only publish and ingest run on them.
: >results.tsv
case " $workloads " in *" throughput "*)
    "$bin/bench/gen_feed" "$n" jsonl http://images.example.com >feed.jsonl
    for r in $(seq "$rounds"); do
        stream=tp-$r
        "$ADMIN" create "$stream" $shards >/dev/null
        t0=$(now)
        "$bin/sluice" publish --quiet --json --to "kinesis://$stream" \
            feed.jsonl >publish.json
        t1=$(now)
        grep -q "\"published\":$n," publish.json ||
            { echo "bench: publish: $(cat publish.json)" >&2; exit 1; }
        rm -f q.db*
        t2=$(now)
        "$bin/sluice" ingest --quiet --json --db q.db "kinesis://$stream" \
            >ingest.json
        t3=$(now)
        grep -q "\"new\":$n," ingest.json ||
            { echo "bench: ingest: $(cat ingest.json)" >&2; exit 1; }
        printf 'publish\t%s\t%s\n' "$r" "$(secs "$t0" "$t1")" >>results.tsv
        printf 'ingest\t%s\t%s\n' "$r" "$(secs "$t2" "$t3")" >>results.tsv
        echo "  kinesis round $r: publish $(secs "$t0" "$t1") s," \
            "ingest $(secs "$t2" "$t3") s" >&2
    done
    ;;
esac

: >latency.txt
case " $workloads " in *" latency "*)
    "$bin/tests/origin/sluice-origin" --quiet --port-file origin.port \
        --size fixed:4096 >origin.out 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [ -s origin.port ] && break; sleep 0.05; done
    origin=http://127.0.0.1:$(cat origin.port)
    "$ADMIN" create lat $shards >/dev/null
    per=$((lat_rate / 10))
    batches=$((lat_s * 10))
    mkdir -p batches store
    # Batch 0 warms the pipeline up and is not counted.
    for b in $(seq 0 "$batches"); do
        for i in $(seq 0 $((per - 1))); do
            printf '{"id":"b%d-r%d","url":"%s/img/%d.jpg",' \
                "$b" "$i" "$origin" $((b * per + i))
            printf '"key":"b%d-r%d.jpg"}\n' "$b" "$i"
        done >"batches/$b.jsonl"
    done
    "$bin/sluice" ingest --db lat.db --follow --quiet --allow-private \
        kinesis://lat >ingest-follow.out 2>&1 &
    ingest_pid=$!
    pids+=("$ingest_pid")
    for _ in $(seq 100); do [ -s lat.db ] && break; sleep 0.05; done
    "$bin/sluice" run --db lat.db --store store --follow --quiet \
        --allow-private >run-follow.out 2>&1 &
    run_pid=$!
    pids+=("$run_pid")
    # put BATCH: publish it, and note when its PutRecords began and ended.
    put() {
        local t0 t1
        t0=$(now)
        "$bin/sluice" publish --quiet --allow-private --to kinesis://lat \
            "batches/$1.jsonl" >/dev/null
        t1=$(now)
        printf '%s %s %s\n' "$1" "$t0" "$t1" >>batches.txt
    }
    : >batches.txt
    put 0
    for _ in $(seq 300); do [ -e "store/b0-r0.jpg" ] && break; sleep 0.1; done
    [ -e "store/b0-r0.jpg" ] ||
        { echo "bench: the warm-up record was not stored" >&2; exit 1; }
    start=$(now)
    for b in $(seq 1 "$batches"); do
        put "$b"
        # The next batch at start + b/10 s, whatever this one took.
        wait_s=$(awk -v s="$start" -v b="$b" -v t="$(now)" \
            'BEGIN { w = s + b / 10 - t; printf "%.3f", (w > 0 ? w : 0) }')
        sleep "$wait_s"
    done
    want=$((batches * per + per))
    for _ in $(seq 600); do
        [ "$(find store -name 'b*.jpg' | wc -l)" -ge "$want" ] && break
        sleep 0.1
    done
    kill -TERM "$ingest_pid" "$run_pid"
    wait "$ingest_pid" "$run_pid" || true
    python3 - "$per" "$batches" <<'EOF' >latency.txt
import os, sqlite3, statistics, sys
per, batches = int(sys.argv[1]), int(sys.argv[2])
acked = {}
for line in open("batches.txt"):
    b, t0, t1 = line.split()
    acked[int(b)] = (float(t0), float(t1))
db = sqlite3.connect("file:lat.db?mode=ro", uri=True)
rows = {i: (q, f) for i, q, f in
        db.execute("SELECT id, queued_at, finished_at FROM records")}
queued, visible, done, call, missing = [], [], [], [], 0
for b in range(1, batches + 1):
    t0, t1 = acked[b]
    call.append((t1 - t0) * 1000)
    for i in range(per):
        rid = "b%d-r%d" % (b, i)
        try:
            ctime = os.stat("store/%s.jpg" % rid).st_ctime_ns / 1e6
        except FileNotFoundError:
            missing += 1
            continue
        q, f = rows[rid]
        queued.append(q - t1 * 1000)
        visible.append(ctime - t1 * 1000)
        done.append(f - t1 * 1000)
def row(name, v):
    v = sorted(v)
    p99 = v[min(len(v) - 1, int(len(v) * 0.99))]
    print("%-22s %8.0f %8.0f %8.0f" % (name, statistics.median(v), p99,
                                       v[-1]))
print("%-22s %8s %8s %8s" % ("ms from PutRecords' end", "median", "p99",
                             "max"))
row("queued (ingest)", queued)
row("object visible", visible)
row("marked done", done)
row("(publish call)", call)
print("%d records, %d stored, %d missing" % (batches * per,
                                            len(visible), missing))
EOF
    ;;
esac

if [ -s results.tsv ]; then
    echo "kinesis: kinesalite on loopback, $shards shards, $n records" \
        "(gen_feed JSONL); medians of $rounds rounds"
    bench_table results.tsv '
    printf "%-10s %8s %10s %12s\n", "step", "seconds", "records/s",
        "vs publish"
    for (i = 1; i <= m; i++) {
        t = order[i]; s = median(runs[t, 3])
        printf "%-10s %8.2f %10.0f %11.2fx\n", t, s, n / s,
            median(runs["publish", 3]) / s
    }' -v n="$n"
fi
if [ -s latency.txt ]; then
    echo "latency: ingest --follow and run --follow, $lat_rate records/s" \
        "for $lat_s s ($per a publish every 100 ms), the test origin"
    cat latency.txt
fi
