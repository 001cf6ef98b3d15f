# CSV as partners export it: another name for the url column, semicolons
# or tabs. A header without the url column is one error, at the header,
# naming the header as read and the column expected; --url-column,
# --id-column, --key-column and --delimiter read such files.
. "$(dirname "$0")/lib.sh"

command -v sqlite3 >/dev/null || skip "the sqlite3 shell is not installed"

{
    printf 'sku;image_url;title\n'
    for i in $(seq 1 50); do
        printf 'sku-%s;http://img.example/%s.jpg;Item %s\n' "$i" "$i" "$i"
    done
} >partner.csv

case_ "no url column: one error, at the header, not one a line"
run "$SLUICE" ingest partner.csv
assert_rc 1
assert_eq "$err" 'partner.csv:1: no url column: the header is "sku;image_url;title" (delimiter '"';'"'); name it with --url-column; file skipped'
assert_eq "$out" "0 new, 0 updated, 0 unchanged, 1 rejected"

case_ "--url-column and --id-column name the columns"
run "$SLUICE" ingest --url-column image_url --id-column SKU partner.csv
assert_rc 0
assert_eq "$err" ""
assert_eq "$out" "50 new, 0 updated, 0 unchanged, 0 rejected"
run sqlite3 sluice.db "SELECT id, url, key, meta FROM records WHERE rid = 1"
assert_eq "$out" 'sku-1|http://img.example/1.jpg|sku-1.jpg|{"title":"Item 1"}'

case_ "a column named by an option that is missing: at the header"
run "$SLUICE" ingest --db b.db --url-column ImageURL partner.csv
assert_rc 1
assert_has "$err" 'partner.csv:1: no url column: the header is "sku;image_url;title"'
assert_has "$err" 'with no column "ImageURL" (--url-column); file skipped'
assert_eq "$(lines "$err")" 1
run "$SLUICE" ingest --db b.db --url-column image_url --key-column path \
    partner.csv
assert_rc 1
assert_has "$err" 'no key column'
assert_has "$err" '(--key-column)'
assert_eq "$(lines "$err")" 1

case_ "tabs, detected; a key column; --format csv"
printf 'ImageURL\tid\tpath\nhttp://img.example/t.jpg\tt1\tdir/t.jpg\n' >tabs.tsv
run "$SLUICE" ingest --db t.db --format csv --url-column imageurl \
    --key-column PATH tabs.tsv
assert_rc 0
run sqlite3 t.db "SELECT id, key FROM records"
assert_eq "$out" "t1|dir/t.jpg"

case_ "--delimiter: tab, \\t, one character; anything else is a usage error"
printf 'url|id\nhttp://img.example/p.jpg|p1\n' >pipe.csv
run "$SLUICE" ingest --db p.db --delimiter '|' pipe.csv
assert_rc 0
assert_eq "$out" "1 new, 0 updated, 0 unchanged, 0 rejected"
printf 'url\tid\tn,m\nhttp://img.example/q.jpg\tq,1\t2\n' >q.tsv
run "$SLUICE" ingest --db q.db --delimiter '\t' q.tsv
assert_rc 0
run sqlite3 q.db "SELECT id FROM records"
assert_eq "$out" "q,1"
run "$SLUICE" ingest --db q.db --delimiter tab q.tsv
assert_eq "$out" "0 new, 0 updated, 1 unchanged, 0 rejected"
for bad in ';;' '"' ''; do
    run "$SLUICE" ingest --db x.db --delimiter "$bad" pipe.csv
    assert_rc 2 "--delimiter '$bad'"
    assert_has "$err" "--delimiter"
done
run "$SLUICE" ingest --db x.db --url-column '' pipe.csv
assert_rc 2
[ ! -e x.db ] || fail "a usage error created the database"

case_ "help"
run "$SLUICE" ingest --help
assert_has "$out" "--url-column NAME"
assert_has "$out" "--delimiter C"

finish
