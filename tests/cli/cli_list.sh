# `sluice list`: every record with what became of it, as a table, JSON
# Lines and CSV, filtered by state; and its usage errors.
. "$(dirname "$0")/lib.sh"

start_origin o --latency 0 --size fixed:300
base=http://127.0.0.1:$o_port
cat >feed.jsonl <<FEED
{"id":"a","url":"$base/img/1.jpg","meta":{"title":"one, two"}}
{"id":"b","url":"$base/img/2.jpg"}
{"id":"gone","url":"$base/img/3.jpg?fault=status&code=404"}
{"id":"later","url":"$base/img/4.jpg"}
FEED
"$SLUICE" ingest --allow-private feed.jsonl >/dev/null
# Done and dead; "later" is ingested again afterwards, so pending.
"$SLUICE" run --store out --allow-private --quiet >/dev/null 2>&1
printf '{"id":"later","url":"%s/img/5.jpg"}\n' "$base" |
    "$SLUICE" ingest --allow-private - >/dev/null

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

case_ "the table: every record, a header, what became of each"
run "$SLUICE" list
assert_rc 0
assert_eq "$(printf '%s\n' "$out" | head -1)" \
    "$(printf 'ID\tSTATE\tURL\tKEY\tSIZE\tSHA256\tCONTENT_TYPE\tETAG\tCLASS\tSTATUS\tMESSAGE')"
assert_eq "$(printf '%s\n' "$out" | tail -n +2 | cut -f1,2 | tr '\t\n' ': ')" \
    "a:done b:done gone:dead later:pending "
row_a=$(printf '%s\n' "$out" | awk -F'\t' '$1 == "a"')
assert_eq "$(cut -f3,4,5 <<<"$row_a")" \
    "$(printf '%s\t%s\t%s' "$base/img/1.jpg" a.jpg 300)"
assert_eq "$(cut -f6 <<<"$row_a")" "$(sha_of out/a.jpg)"
row_gone=$(printf '%s\n' "$out" | awk -F'\t' '$1 == "gone"')
assert_eq "$(cut -f5,9,10 <<<"$row_gone")" "$(printf -- '-\thttp\t404')"
assert_has "$(cut -f11 <<<"$row_gone")" "404"

case_ "--json: JSON Lines, one object a record, with meta"
run "$SLUICE" list --json
assert_rc 0
assert_eq "$(printf '%s\n' "$out" | wc -l)" 4
line_a=$(printf '%s\n' "$out" | head -1)
assert_has "$line_a" '{"id":"a","state":"done","url":"'"$base"'/img/1.jpg","key":"a.jpg","meta":{"title":"one, two"},"attempts":0,"size":300,"sha256":"'"$(sha_of out/a.jpg)"'",'
assert_has "$line_a" '"content_type":"image/jpeg","etag":"\"1-300\"","error_class":null,'
assert_has "$(printf '%s\n' "$out" | sed -n 3p)" \
    '"state":"dead","url":"'"$base"'/img/3.jpg?fault=status&code=404"'
assert_has "$(printf '%s\n' "$out" | sed -n 3p)" '"size":null'
assert_has "$(printf '%s\n' "$out" | sed -n 3p)" '"error_class":"http","http_status":404,'
assert_has "$(printf '%s\n' "$out" | sed -n 4p)" '"state":"pending","url":"'"$base"'/img/5.jpg"'

case_ "--csv: a header and RFC 4180 quoting"
run "$SLUICE" list --csv
assert_rc 0
assert_eq "$(printf '%s\n' "$out" | head -1)" \
    "id,state,url,key,size,sha256,content_type,etag,error_class,http_status,message,finished_at,meta"
assert_has "$(printf '%s\n' "$out" | sed -n 2p)" \
    "a,done,$base/img/1.jpg,a.jpg,300,$(sha_of out/a.jpg),"
assert_has "$(printf '%s\n' "$out" | sed -n 2p)" ',"{""title"":""one, two""}"'
assert_eq "$(printf '%s\n' "$out" | wc -l)" 5

case_ "--state filters"
run "$SLUICE" list --state dead --csv
assert_eq "$(printf '%s\n' "$out" | tail -n +2 | cut -d, -f1)" gone
run "$SLUICE" list --state done --json
assert_eq "$(printf '%s\n' "$out" | wc -l)" 2
run "$SLUICE" list --state retrying
assert_rc 0
assert_eq "$(printf '%s\n' "$out" | wc -l)" 1

case_ "usage errors"
run "$SLUICE" list --state bogus
assert_rc 2
assert_has "$err" "--state: expected pending, in_flight, retrying, done or dead, got 'bogus'"
run "$SLUICE" list --json --csv
assert_rc 2
run "$SLUICE" list extra
assert_rc 2
run "$SLUICE" list --db none.db
assert_rc 3
[ ! -e none.db ] || fail "list created the database"

case_ "dlq list's table has the URL"
run "$SLUICE" dlq list
assert_eq "$(printf '%s\n' "$out" | tail -n +2 | cut -f1,2,3,6)" \
    "$(printf 'gone\thttp\t404\t%s' "$base/img/3.jpg?fault=status&code=404")"

finish
