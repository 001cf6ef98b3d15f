# `sluice ingest` from the command line: formats, summaries, exit codes,
# and every way the input or the database can be wrong (each a one-line
# error, a non-zero exit, and the database untouched).
. "$(dirname "$0")/lib.sh"

case_ "help and usage errors"
run "$SLUICE" ingest --help
assert_rc 0
assert_has "$out" "Usage: sluice ingest"
assert_has "$out" "jsonl"
run "$SLUICE" --help
assert_rc 0
assert_has "$out" "ingest"
run "$SLUICE" frobnicate
assert_rc 2
assert_has "$err" "no such command 'frobnicate'"
run "$SLUICE" ingest --bogus x
assert_rc 2
assert_has "$err" "unknown option '--bogus'"
assert_has "$err" "Try 'sluice ingest --help'"
run "$SLUICE" ingest --format xml feed.txt
assert_rc 2
assert_has "$err" "--format"
[ ! -e sluice.db ] || fail "a usage error created the database"

case_ "each format, detected"
printf '{"id":"a","url":"http://img.example/a.jpg","meta":{"c":"red"}}\n' >f.jsonl
printf 'url,id,colour\nhttp://img.example/b.png,b,blue\n' >f.csv
printf '# a comment\nhttp://img.example/c.gif\n\n' >f.txt
run "$SLUICE" ingest f.jsonl f.csv f.txt
assert_rc 0
assert_eq "$out" "3 new, 0 updated, 0 unchanged, 0 rejected"
assert_eq "$err" ""
assert_eq "$(status_field sluice.db pending)" 3
run sqlite3 sluice.db "SELECT key || ' ' || coalesce(meta, '-') FROM records ORDER BY rid"
assert_eq "$out" "$(printf 'a.jpg {"c":"red"}\nb.png {"colour":"blue"}\nimg.example/c.gif -')"

case_ "forced format"
printf 'http://img.example/d.gif\n' >d.data
run "$SLUICE" ingest --format lines d.data
assert_rc 0
assert_eq "$out" "1 new, 0 updated, 0 unchanged, 0 rejected"
run "$SLUICE" ingest --format jsonl d.data
assert_rc 1
assert_has "$err" "d.data:1: invalid JSON"

case_ "re-ingest: unchanged, then the newest url wins"
run "$SLUICE" ingest f.jsonl
assert_eq "$out" "0 new, 0 updated, 1 unchanged, 0 rejected"
printf '{"id":"a","url":"http://img.example/a2.jpg","meta":{"c":"red"}}\n' >f2.jsonl
run "$SLUICE" ingest --json f2.jsonl
assert_rc 0
assert_eq "$out" '{"new":0,"updated":1,"unchanged":0,"rejected":0,"duplicate_ids":0,"shared_keys":0}'
run sqlite3 sluice.db "SELECT url FROM records WHERE id = 'a'"
assert_eq "$out" "http://img.example/a2.jpg"

case_ "bad lines: FILE:LINE: reason, the rest ingested, exit 1"
cat >mixed.jsonl <<'FEED'
{"url":"http://img.example/1.jpg"}
{"url":"ftp://img.example/2.jpg"}
{"url":"http://img.example/3.jpg", "key":"../escape"}
{"url":
{"url":"http://img.example/5.jpg"}
FEED
run "$SLUICE" ingest --db mixed.db mixed.jsonl
assert_rc 1
assert_eq "$out" "2 new, 0 updated, 0 unchanged, 3 rejected"
assert_eq "$(lines "$err")" 3
assert_has "$err" "mixed.jsonl:2: url: scheme \"ftp\" is not http or https"
assert_has "$err" "mixed.jsonl:3: key: contains a \"..\" segment"
assert_has "$err" "mixed.jsonl:4: invalid JSON"
assert_eq "$(status_field mixed.db total)" 2

case_ "stdin, as - and as a pipe"
run sh -c "printf 'http://img.example/s1\n' | '$SLUICE' ingest --db in.db -"
assert_rc 0
assert_eq "$out" "1 new, 0 updated, 0 unchanged, 0 rejected"
run sh -c "printf 'http://img.example/s2\n' | '$SLUICE' ingest --db in.db"
assert_eq "$out" "1 new, 0 updated, 0 unchanged, 0 rejected"
run sh -c "printf 'x' | '$SLUICE' ingest --db in.db - -"
assert_rc 2

case_ "CRLF, a byte-order mark, an empty file"
printf '\xef\xbb\xbfurl,id\r\nhttp://img.example/w.png,w\r\n' >win.csv
: >empty.txt
run "$SLUICE" ingest --db w.db win.csv empty.txt
assert_rc 0
assert_eq "$out" "1 new, 0 updated, 0 unchanged, 0 rejected"
run sqlite3 w.db "SELECT id || '|' || url || '|' || key FROM records"
assert_eq "$out" "w|http://img.example/w.png|w.png"

case_ "a 10 MB line is rejected and the lines around it land"
{
    echo 'http://img.example/before'
    head -c 10485760 /dev/zero | tr '\0' 'a'
    echo
    echo 'http://img.example/after'
} >huge.txt
run "$SLUICE" ingest --db huge.db huge.txt
assert_rc 1
assert_eq "$out" "2 new, 0 updated, 0 unchanged, 1 rejected"
assert_has "$err" "huge.txt:2: line longer than 1048576 bytes"

case_ "a missing file: one line, exit 3, no database"
printf 'http://img.example/x\n' >ok.txt
run "$SLUICE" ingest --db nope.db ok.txt missing.txt
assert_rc 3
assert_eq "$err" "sluice: missing.txt: No such file or directory"
[ ! -e nope.db ] || fail "the database was created"

case_ "a directory as input"
mkdir adir
run "$SLUICE" ingest --db nope.db adir
assert_rc 3
assert_eq "$err" "sluice: adir: is a directory"

case_ "an unreadable file"
printf 'http://img.example/x\n' >secret.txt
chmod 000 secret.txt
run as_user "$SLUICE" ingest --db /tmp/never-created.db secret.txt
assert_rc 3
assert_eq "$err" "sluice: secret.txt: Permission denied"
[ ! -e /tmp/never-created.db ] || fail "the database was created"

case_ "not a database at all, or another program's: untouched"
head -c 8192 /dev/urandom >junk.db
cp junk.db junk.orig
run "$SLUICE" ingest --db junk.db ok.txt
assert_rc 3
assert_has "$err" "junk.db: not a sluice database"
assert_eq "$(lines "$err")" 1
cmp -s junk.db junk.orig || fail "junk.db changed"
sqlite3 theirs.db "CREATE TABLE t(x); INSERT INTO t VALUES (42);"
cp theirs.db theirs.orig
run "$SLUICE" ingest --db theirs.db ok.txt
assert_rc 3
assert_eq "$err" "sluice: theirs.db: not a sluice database (a SQLite file of another program)"
cmp -s theirs.db theirs.orig || fail "theirs.db changed"
[ ! -e theirs.db-wal ] || fail "theirs.db got a WAL file"

case_ "a read-only database"
"$SLUICE" ingest --db ro.db ok.txt >/dev/null
cp ro.db ro.orig
chmod 644 ro.db
run as_user "$SLUICE" ingest --db ro.db f.jsonl
assert_rc 3
assert_has "$err" "ro.db: database is read-only"
assert_eq "$(lines "$err")" 1
cmp -s ro.db ro.orig || fail "ro.db changed"

case_ "a locked database"
"$SLUICE" ingest --db locked.db ok.txt >/dev/null
mkfifo hold
# Another process holds the write lock until we write to the fifo.
(
    echo "BEGIN IMMEDIATE;"
    echo "INSERT INTO origins(name) VALUES ('held');"
    echo ".print held"
    read -r _ <hold
    echo "ROLLBACK;"
) | sqlite3 locked.db >holder.out &
holder=$!
for _ in $(seq 600); do # until the lock is held (30 s at most)
    grep -q held holder.out 2>/dev/null && break
    sleep 0.05
done
grep -q held holder.out || fail "sqlite3 did not take the lock"
run env SLUICE_BUSY_TIMEOUT_MS=300 "$SLUICE" ingest --db locked.db f.jsonl
echo done >hold
wait $holder
assert_rc 3
assert_has "$err" "locked.db: database is locked by another process"
assert_eq "$(lines "$err")" 1
assert_eq "$(status_field locked.db total)" 1

case_ "--db, \$SLUICE_DB and the default"
mkdir where && cd where
run env SLUICE_DB=env.db "$SLUICE" ingest ../ok.txt
[ -e env.db ] || fail "\$SLUICE_DB was not used"
run "$SLUICE" ingest ../ok.txt
[ -e sluice.db ] || fail "./sluice.db was not the default"
run env SLUICE_DB=env.db "$SLUICE" ingest --db flag.db ../ok.txt
[ -e flag.db ] || fail "--db did not win over \$SLUICE_DB"
cd ..

finish
