# The queue's disk fills up during a run: the run stops (exit 3) naming
# the queue and what filled, its summary is the queue's own counts (not
# what it meant to mark), records it could not give back are said to be
# in flight, and a run on a disk with room again finishes the job. The
# disk is a 2 MiB tmpfs of a mount namespace of the test's own; where
# mounting is not allowed, a file-size limit (ulimit -f) stands in.
. "$(dirname "$0")/lib.sh"

RECORDS=6000
SIZE=fixed:1000
start_origin o --size $SIZE
"$GEN" $RECORDS jsonl "http://127.0.0.1:$o_port" >feed.jsonl

# fill_run DB: ingest into DB, then a run that meets the full disk; its
# output in $out, $err, $rc. Runs inside the small disk's namespace.
cat >full.sh <<'EOF'
set -u
db=$1
"$SLUICE" ingest --allow-private --db "$db" feed.jsonl >/dev/null || exit 90
# A short --timeout: the slots a run that could not write its last
# reservation leaves held are free soon after.
"$SLUICE" run --db "$db" --store out --allow-private --timeout 5 \
    >run.out 2>run.err
echo $? >run.rc
# What the queue holds, read while the disk is still full.
"$SLUICE" status --db "$db" --json >status.json
cp "$db" full-copy.db
[ ! -f "$db-wal" ] || cp "$db-wal" full-copy.db-wal
EOF

case_ "a full disk under the queue stops the run, and says so truly"
export SLUICE
if unshare -m true 2>/dev/null &&
    unshare -m sh -c 'mkdir -p small && mount -t tmpfs -o size=2m tmpfs small' \
        2>/dev/null; then
    how="a 2 MiB tmpfs"
    unshare -m bash -c 'mkdir -p small &&
        mount -t tmpfs -o size=2m tmpfs small && bash full.sh small/q.db' ||
        fail "the run could not be set up"
    dbdesc="small/q.db"
else
    # ulimit -f counts 512-byte blocks: 1.5 MiB for any file written.
    how="a file-size limit"
    bash -c 'ulimit -f 3072; bash full.sh q.db' ||
        fail "the run could not be set up"
    dbdesc="q.db"
fi
echo "    (the full disk is $how)"
out=$(cat run.out) err=$(cat run.err) rc=$(cat run.rc)
assert_rc 3 "the run stopped"
assert_has "$err" "$dbdesc: "
assert_lacks "$err" "store out"
status=$(cat status.json)
field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$status"; }
# The summary's queue line is the queue's, to the record.
assert_has "$out" "queue: $(field pending) pending, $(field retrying) retrying, $(field done) done, $(field dead) dead, $(field total) total"
assert_has "$out" "run: $(field done) done"
left=$(field in_flight)
if [ "$left" -gt 0 ]; then
    assert_has "$err" "$left records left in flight, not given back"
fi

case_ "with room again, a run finishes the job"
cp full-copy.db room.db
[ ! -f full-copy.db-wal ] || cp full-copy.db-wal room.db-wal
run "$SLUICE" run --db room.db --store out --allow-private --timeout 5
assert_rc 0 "the run with room"
assert_eq "$(status_field room.db done)" $RECORDS
assert_eq "$("$VERIFY" store $SIZE out)" $RECORDS

finish
