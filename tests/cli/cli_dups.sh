# Warnings that matter: within one ingest, a duplicate id (the last wins)
# and two records naming one key (one object would overwrite the other)
# are counted in the summary and said with their lines; --strict rejects
# the later record (exit 1, as for any rejected record).
. "$(dirname "$0")/lib.sh"

command -v sqlite3 >/dev/null || skip "the sqlite3 shell is not installed"

cat >feed.csv <<'FEED'
id,url,key
sku-1,http://img.example/1.jpg,
sku-2,http://img.example/2.jpg,img/2.jpg
sku-3,http://img.example/3.jpg,
sku-1,http://img.example/1b.jpg,
sku-9,http://img.example/9.jpg,img/2.jpg
sku-3,http://img.example/3.jpg,
sku-4,http://img.example/4.jpg,
sku-4,http://img.example/4.jpg,
FEED

case_ "counted and said; the last wins; exit 0"
run "$SLUICE" ingest feed.csv
assert_rc 0
assert_eq "$out" "5 new, 1 updated, 2 unchanged, 0 rejected, 3 duplicate ids, 1 shared key"
assert_eq "$err" "$(printf '%s\n' \
    'feed.csv:5: id sku-1 also on line 2: the last wins' \
    'feed.csv:6: key img/2.jpg also named by line 3 (id sku-2)' \
    'feed.csv:7: id sku-3 also on line 4: the last wins' \
    'feed.csv:9: id sku-4 also on line 8: the last wins')"
run sqlite3 sluice.db "SELECT url FROM records WHERE id = 'sku-1'"
assert_eq "$out" "http://img.example/1b.jpg"

case_ "--json"
run "$SLUICE" ingest --db j.db --json feed.csv
assert_rc 0
assert_eq "$out" '{"new":5,"updated":1,"unchanged":2,"rejected":0,"duplicate_ids":3,"shared_keys":1}'

case_ "--strict: the later record rejected, exit 1"
run "$SLUICE" ingest --db s.db --strict feed.csv
assert_rc 1
assert_eq "$out" "4 new, 0 updated, 0 unchanged, 4 rejected, 3 duplicate ids, 1 shared key"
assert_has "$err" "feed.csv:5: id sku-1 also on line 2; rejected (--strict)"
assert_has "$err" "feed.csv:6: key img/2.jpg also named by line 3 (id sku-2); rejected (--strict)"
assert_eq "$(lines "$err")" 4
run sqlite3 s.db "SELECT url FROM records WHERE id = 'sku-1'"
assert_eq "$out" "http://img.example/1.jpg"

case_ "across the files of one ingest, not across ingests"
printf 'http://img.example/x.jpg\nhttp://img.example/y.jpg\n' >a.txt
printf 'http://img.example/y.jpg\n' >b.txt
run "$SLUICE" ingest --db f.db a.txt b.txt
assert_rc 0
assert_eq "$err" "b.txt:1: id http://img.example/y.jpg also at a.txt:2: the last wins"
run "$SLUICE" ingest --db f.db b.txt
assert_eq "$err" ""
assert_eq "$out" "0 new, 0 updated, 1 unchanged, 0 rejected"

# (Its memory is bench/ingest.sh's to measure: a sanitizer build's is not.)
case_ "200,000 records and 1,000 repeats: each counted and said"
"$GEN" 200000 jsonl >big.jsonl
head -1000 big.jsonl >>big.jsonl
run "$SLUICE" ingest --db big.db -q big.jsonl
assert_rc 0
assert_eq "$out" "200000 new, 0 updated, 1000 unchanged, 0 rejected, 1000 duplicate ids"
assert_eq "$(lines "$err")" 1000
assert_eq "$(printf '%s\n' "$err" | tail -1)" "big.jsonl:201000: id sku-999 also on line 1000: the last wins"

finish
