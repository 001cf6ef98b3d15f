# The URL policy: with a server really listening on loopback, every
# spelling of a loopback address is refused by default (class policy),
# checked on the resolved address; --allow-net opens exactly the networks
# named; a redirect from an allowed origin to a private address is
# refused; and --allow-private allows all.
. "$(dirname "$0")/lib.sh"

start_origin o --latency 0 --size fixed:100
p=$o_port

case_ "every loopback spelling is refused at fetch unless allowed"
cat >feed.txt <<FEED
http://localhost:$p/img/1.jpg
http://127.0.0.1:$p/img/2.jpg
http://2130706433:$p/img/3.jpg
http://0x7f.1:$p/img/4.jpg
http://127.1:$p/img/5.jpg
http://[::ffff:127.0.0.1]:$p/img/6.jpg
http://[::1]:$p/img/7.jpg
http://017700000001:$p/img/8.jpg
FEED
"$SLUICE" ingest --allow-private feed.txt >/dev/null 2>&1
# The run's own policy (not the one ingest stored): loopback not in it.
run "$SLUICE" run --store out --quiet --json --allow-net 192.0.2.0/24
assert_rc 1
assert_eq "$(status_field sluice.db dead)" 8
# Refused before any connection: no request was sent.
assert_has "$out" '"requests":0,'
run "$SLUICE" dlq list
assert_eq "$(printf '%s\n' "$out" | tail -n +2 | cut -f2 | sort -u)" policy
assert_has "$out" "loopback address 127.0.0.1 refused"
assert_has "$out" "loopback address ::1 refused"
assert_eq "$(origin_stat "$p" requests)" 0
[ ! -e out/localhost+$p ] || fail "something was stored"

case_ "--allow-private allows them"
"$SLUICE" dlq replay --all >/dev/null
run "$SLUICE" run --store out --allow-private --quiet --max-attempts 1
# [::1] has no listener (the origin is on 127.0.0.1 only): network error.
assert_eq "$(status_field sluice.db done)" 7

case_ "a redirect from an allowed origin to a private address is refused"
curl -s "http://127.0.0.1:$p/_reset" >/dev/null
start_origin private --listen 127.0.0.2:0 --latency 0 --size fixed:100
echo "http://127.0.0.1:$p/img/9.jpg?fault=redirect&hops=1&to=http%3A%2F%2F127.0.0.2%3A$private_port" >redir.txt
"$SLUICE" ingest --allow-private --db redir.db redir.txt >/dev/null
run "$SLUICE" run --db redir.db --store out2 --allow-net 127.0.0.1/32 --quiet \
    --json
assert_rc 1
assert_has "$out" '"requests":1,' # the first hop only
run "$SLUICE" dlq list --db redir.db
assert_has "$out" "$(printf 'policy\t-\t1\t')"
# The refused target is named: the redirect's URL, and the address.
assert_has "$out" "redirect to http://127.0.0.2:$private_port/img/9.jpg"
assert_has "$out" ": loopback address 127.0.0.2 refused"
assert_eq "$(origin_stat "$private_port" requests 127.0.0.2)" 0
assert_eq "$(origin_stat "$p" requests)" 1

case_ "the same redirect, with that network allowed, is followed"
"$SLUICE" dlq replay --db redir.db --all >/dev/null
run "$SLUICE" run --db redir.db --store out2 --allow-net 127.0.0.0/8 --quiet
assert_rc 0
assert_eq "$(origin_stat "$private_port" requests 127.0.0.2)" 1

case_ "redirects to other schemes and too many redirects"
cat >bad.txt <<FEED
http://127.0.0.1:$p/img/10.jpg?fault=redirect&hops=6
http://127.0.0.1:$p/img/11.jpg?fault=loop
FEED
"$SLUICE" ingest --allow-private --db bad.db bad.txt >/dev/null
run "$SLUICE" run --db bad.db --store out3 --allow-private --quiet
assert_rc 1
run "$SLUICE" dlq list --db bad.db
assert_eq "$(printf '%s\n' "$out" | tail -n +2 | cut -f2 | sort -u)" redirect
assert_has "$out" "more than 5 redirects"

case_ "--allow-net rejects what is not a network"
run "$SLUICE" run --store out --allow-net 10.0.0.0/33
assert_rc 2
assert_has "$err" "--allow-net: '10.0.0.0/33' is not an address or CIDR network"

finish
