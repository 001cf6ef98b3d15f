# Internationalised host names: ingest stores them in their ASCII form, so
# every spelling of a name is one origin (one cap); a name that is no IDN
# is refused with its reason; a run fetches such a host (resolved through
# a hosts file of its own, in a private mount namespace); and a URL
# libcurl refuses on the first hop is dead as class url, not redirect.
. "$(dirname "$0")/lib.sh"

command -v sqlite3 >/dev/null || skip "the sqlite3 shell is not installed"

case_ "both spellings of an IDN host: one origin"
cat >idn.txt <<'FEED'
http://bücher.example/img/1.jpg
http://xn--bcher-kva.example/img/2.jpg
http://BÜCHER.Example/img/3.jpg
http://XN--BCHER-KVA.example/img/4.jpg
FEED
run "$SLUICE" ingest idn.txt
assert_rc 0
assert_eq "$out" "4 new, 0 updated, 0 unchanged, 0 rejected"
run sqlite3 sluice.db "SELECT name FROM origins"
assert_eq "$out" "http://xn--bcher-kva.example:80"
run sqlite3 sluice.db "SELECT DISTINCT origin FROM records"
assert_eq "$out" "1"
run sqlite3 sluice.db "SELECT id || ' ' || key FROM records ORDER BY rid"
assert_eq "$out" "$(printf '%s\n' \
    "http://xn--bcher-kva.example/img/1.jpg xn--bcher-kva.example/img/1.jpg" \
    "http://xn--bcher-kva.example/img/2.jpg xn--bcher-kva.example/img/2.jpg" \
    "http://xn--bcher-kva.example/img/3.jpg xn--bcher-kva.example/img/3.jpg" \
    "http://xn--bcher-kva.example/img/4.jpg xn--bcher-kva.example/img/4.jpg")"

case_ "the other spelling of the same URLs is the same records"
sed -e 's/bücher/xn--bcher-kva/' \
    -e 's|xn--bcher-kva.example/img/2|bücher.example/img/2|' idn.txt >idn2.txt
run "$SLUICE" ingest idn2.txt
assert_rc 0
assert_eq "$out" "0 new, 0 updated, 4 unchanged, 0 rejected"

case_ "a name that is no IDN is refused with its reason"
printf 'http://ü-.example/x.jpg\nhttp://ok.example/y.jpg\n' >bad.txt
run "$SLUICE" ingest --db bad.db bad.txt
assert_rc 1
assert_has "$err" 'bad.txt:1: url: host "ü-.example" is not a valid'
assert_has "$err" 'internationalised domain name: '
assert_has "$err" 'forbidden hyphen'
assert_eq "$(lines "$err")" 1
assert_eq "$out" "1 new, 0 updated, 0 unchanged, 1 rejected"

start_origin o --latency 0 --size fixed:100
p=$o_port

case_ "a run fetches an IDN host by its ASCII name"
# bücher.test resolves to the origin only inside a mount namespace whose
# /etc/hosts names its ASCII form; sluice has no resolve override.
printf '127.0.0.1 xn--bcher-kva.test\n' >hosts
if unshare -rm sh -c "mount --bind $WORK/hosts /etc/hosts" 2>/dev/null; then
    printf '{"id":"sku-1","url":"http://bücher.test:%s/img/1.jpg"}\n' "$p" \
        >run.jsonl
    run "$SLUICE" ingest --db run.db run.jsonl
    assert_rc 0
    run unshare -rm sh -c "mount --bind $WORK/hosts /etc/hosts &&
        exec \"\$0\" run --db run.db --store out --allow-net 127.0.0.1/32 \
        --quiet" "$SLUICE"
    assert_rc 0
    assert_eq "$(status_field run.db done)" 1
    [ -s out/sku-1.jpg ] || fail "the object was not stored"
    curl -s "http://127.0.0.1:$p/_log" | grep -q "img/1.jpg" ||
        fail "the origin did not see the request"
else
    echo "(not run: no private mount namespace here, unshare -rm failed)"
fi

case_ "a URL libcurl refuses on the first hop is dead as url"
printf '{"id":"sku-2","url":"http://127.0.0.1:%s/img/2.jpg"}\n' "$p" \
    >refused.jsonl
"$SLUICE" ingest --db old.db --allow-net 127.0.0.1/32 refused.jsonl \
    >/dev/null 2>&1
# As a queue from before this sluice could hold it: a raw UTF-8 host that
# is no IDN, which libcurl cannot convert when it connects.
sqlite3 old.db "UPDATE records SET url = 'http://ü-.example/img/2.jpg'"
run "$SLUICE" run --db old.db --store out2 --quiet
assert_rc 1
run "$SLUICE" dlq list --db old.db
assert_has "$out" "$(printf 'sku-2\turl\t-\t1\t')"
assert_lacks "$out" "redirect"

finish
