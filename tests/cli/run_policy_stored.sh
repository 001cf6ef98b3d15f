# The URL policy is kept with the queue: what ingest's --allow-net and
# --allow-private open is stored, widened by later ingests, used by a run
# given no --allow-* of its own (which says so at its start), replaced
# for one run by that run's own flags, and forgotten with --reset-policy.
. "$(dirname "$0")/lib.sh"

command -v sqlite3 >/dev/null || skip "the sqlite3 shell is not installed"
start_origin o --latency 0 --size fixed:100
p=$o_port
"$GEN" 10 jsonl "http://127.0.0.1:$p" >feed.jsonl

case_ "ingest --allow-net, then a run without it: everything done"
run "$SLUICE" ingest --allow-net 127.0.0.1/32 feed.jsonl
assert_rc 0
assert_eq "$out" "10 new, 0 updated, 0 unchanged, 0 rejected"
assert_eq "$err" "sluice: URL policy stored with the queue, for runs given no --allow-*: private addresses allowed in 127.0.0.1/32; it was: private addresses refused (the default)"
run "$SLUICE" run --store out --quiet
assert_rc 0
assert_has "$err" "sluice: URL policy: private addresses allowed in 127.0.0.1/32 (stored with the queue by ingest)"
assert_eq "$(status_field sluice.db done)" 10
assert_eq "$(origin_stat "$p" requests)" 10
[ -s out/sku-1.jpg ] || fail "no object stored"

case_ "a later ingest: the stored policy applies, unchanged and unsaid"
"$GEN" 12 jsonl "http://127.0.0.1:$p" | tail -2 >more.jsonl
run "$SLUICE" ingest more.jsonl
assert_rc 0
assert_eq "$out" "2 new, 0 updated, 0 unchanged, 0 rejected"
assert_eq "$err" ""
run sqlite3 sluice.db "SELECT value FROM settings WHERE name = 'url_policy'"
assert_eq "$out" "127.0.0.1/32"

case_ "another --allow-net widens it"
run "$SLUICE" ingest --allow-net 10.0.0.0/8 --allow-net 127.0.0.1/32 \
    more.jsonl
assert_rc 0
assert_has "$err" "private addresses allowed in 127.0.0.1/32, 10.0.0.0/8; it was: private addresses allowed in 127.0.0.1/32"
run sqlite3 sluice.db "SELECT value FROM settings WHERE name = 'url_policy'"
assert_eq "$out" "127.0.0.1/32 10.0.0.0/8"

case_ "a run's own flags replace it for that run, and it says so"
run "$SLUICE" run --store out --quiet --allow-net 192.0.2.0/24
assert_rc 1
assert_has "$err" "sluice: URL policy: private addresses allowed in 192.0.2.0/24, given to this run; not the one stored with the queue: private addresses allowed in 127.0.0.1/32, 10.0.0.0/8"
assert_eq "$(status_field sluice.db dead)" 2
run "$SLUICE" dlq list
assert_has "$out" "$(printf 'policy\t-\t1\t')"
run sqlite3 sluice.db "SELECT value FROM settings WHERE name = 'url_policy'"
assert_eq "$out" "127.0.0.1/32 10.0.0.0/8"
"$SLUICE" dlq replay --all >/dev/null
run "$SLUICE" run --store out --quiet
assert_rc 0
assert_eq "$(status_field sluice.db done)" 12

case_ "--reset-policy: back to the default; a run says nothing of it"
run "$SLUICE" ingest --reset-policy more.jsonl
assert_rc 1
assert_has "$err" "URL policy stored with the queue, for runs given no --allow-*: private addresses refused (the default)"
assert_has "$err" "more.jsonl:1: url: loopback address refused"
run sqlite3 sluice.db "SELECT value FROM settings WHERE name = 'url_policy'"
assert_eq "$out" "none"
printf '{"id":"late","url":"http://127.0.0.1:%s/img/99.jpg"}\n' "$p" >late.jsonl
"$SLUICE" ingest --allow-private late.jsonl >/dev/null 2>&1
"$SLUICE" ingest --reset-policy --allow-net 127.0.0.2/32 /dev/null >/dev/null 2>&1
run "$SLUICE" run --store out --quiet
assert_rc 1
assert_has "$err" "URL policy: private addresses allowed in 127.0.0.2/32 (stored"
assert_has "$err" "sluice: dead: late"
run "$SLUICE" ingest --reset-policy /dev/null
run "$SLUICE" dlq replay --all
run "$SLUICE" run --store out --quiet
assert_rc 1
assert_lacks "$err" "URL policy"
assert_has "$err" "loopback address 127.0.0.1 refused"

case_ "a bad --allow-net stores nothing"
run "$SLUICE" ingest --db bad.db --allow-net 10.0.0.0/33 feed.jsonl
assert_rc 2
assert_has "$err" "'10.0.0.0/33' is not an address or CIDR network"
run sqlite3 bad.db "SELECT count(*) FROM settings"
assert_eq "$out" "0"

finish
