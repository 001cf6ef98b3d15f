# JSON Lines as partners write them: the url, id and key under their own
# member names. A line without the url member is rejected naming the
# members it has; --url-column, --id-column and --key-column name them,
# as for CSV columns.
. "$(dirname "$0")/lib.sh"

command -v sqlite3 >/dev/null || skip "the sqlite3 shell is not installed"

for i in $(seq 1 20); do
    printf '{"sku":"sku-%s","image_url":"http://img.example/%s.jpg",' "$i" "$i"
    printf '"title":"Item %s"}\n' "$i"
done >partner.jsonl

case_ "no url member: the reason names the members the line has"
run "$SLUICE" ingest partner.jsonl
assert_rc 1
assert_has "$err" 'partner.jsonl:1: url: no member "url"; the object has "sku", "image_url", "title"; name it with --url-column'
assert_eq "$(lines "$err")" 20
assert_eq "$out" "0 new, 0 updated, 0 unchanged, 20 rejected"

case_ "--url-column and --id-column name the members"
run "$SLUICE" ingest --url-column image_url --id-column sku partner.jsonl
assert_rc 0
assert_eq "$err" ""
assert_eq "$out" "20 new, 0 updated, 0 unchanged, 0 rejected"
run sqlite3 sluice.db "SELECT id, url, key FROM records WHERE rid = 1"
assert_eq "$out" 'sku-1|http://img.example/1.jpg|sku-1.jpg'

case_ "a member named by an option is required, line by line"
printf '%s\n' \
    '{"sku":"a","image_url":"http://img.example/a.jpg","path":"p/a.jpg"}' \
    '{"image_url":"http://img.example/b.jpg","path":"p/b.jpg"}' \
    '{"sku":"c","image_url":"http://img.example/c.jpg"}' >mixed.jsonl
run "$SLUICE" ingest --db m.db --url-column image_url --id-column sku \
    --key-column path mixed.jsonl
assert_rc 1
assert_has "$err" 'mixed.jsonl:2: id: no member "sku" (--id-column); the object has "image_url", "path"'
assert_has "$err" 'mixed.jsonl:3: key: no member "path" (--key-column); the object has "sku", "image_url"'
assert_eq "$out" "1 new, 0 updated, 0 unchanged, 2 rejected"
run sqlite3 m.db "SELECT id, key FROM records"
assert_eq "$out" "a|p/a.jpg"

finish
