# Hostile feeds (issue 5): lines of megabytes, deep nesting, NUL bytes,
# invalid UTF-8, and every key and URL trick, mixed with good records, in
# each format. Each bad record is rejected with FILE:LINE and a reason;
# every good record around them lands.
. "$(dirname "$0")/lib.sh"

good() { printf '{"id":"good-%s","url":"http://img.example/%s.jpg"}\n' "$1" "$1"; }

case_ "JSON Lines: every trick, one line each"
{
    good 1
    printf '{"url":"http://img.example/a.jpg","key":"/etc/passwd"}\n'           # 2
    printf '{"url":"http://img.example/a.jpg","key":"../../x"}\n'               # 3
    printf '{"url":"http://img.example/a.jpg","key":"a/../../b"}\n'             # 4
    printf '{"url":"http://img.example/a.jpg","key":"a\\u0001b"}\n'             # 5
    printf '{"url":"http://img.example/a.jpg","key":"a\\\\b"}\n'                # 6
    printf '{"url":"http://img.example/a.jpg","key":"%s"}\n' "$(head -c 300 /dev/zero | tr '\0' x)" # 7
    printf '{"url":"http://img.example/a.jpg","key":"%s"}\n' "$(head -c 1100 /dev/zero | tr '\0' 'a/' )" # 8
    printf '{"url":"ftp://img.example/a.jpg"}\n'                                # 9
    printf '{"url":"file:///etc/passwd"}\n'                                     # 10
    printf '{"url":"javascript:alert(1)"}\n'                                    # 11
    printf '{"url":"gopher://img.example:70/1"}\n'                              # 12
    printf '{"url":"http://2130706433/a.jpg"}\n'                                # 13
    printf '{"url":"http://[::ffff:127.0.0.1]/a.jpg"}\n'                        # 14
    printf '{"url":"http://0x7f.1/a.jpg"}\n'                                    # 15
    printf '{"url":"http://localhost/a.jpg"}\n'                                 # 16
    printf '{"url":"http://169.254.169.254/latest/meta-data/"}\n'               # 17
    printf '{"url":"http://img.example/a\\u0000.jpg"}\n'                        # 18
    printf '{"url":"http://img.example/\xff\xfe.jpg"}\n'                        # 19
    printf '{"url":"%s"}\n' "$(head -c 2000000 /dev/zero | tr '\0' a)"         # 20
    printf '%s{"url":"http://img.example/deep.jpg"}\n' "$(head -c 100000 /dev/zero | tr '\0' '[')" # 21
    printf '{"url":"http://img.example/m.jpg","meta":%s1%s}\n' "$(head -c 50000 /dev/zero | tr '\0' '[')" "$(head -c 50000 /dev/zero | tr '\0' ']')" # 22
    printf '{"url":"http://img.example/x.jpg","id":"a\\u0000b"}\n'              # 23
    printf '\0\0\0{"url":"http://img.example/nul.jpg"}\n'                       # 24
    good 2
} >tricks.jsonl
run "$SLUICE" ingest --db j.db tricks.jsonl
assert_rc 1
assert_eq "$out" "2 new, 0 updated, 0 unchanged, 23 rejected"
for line in $(seq 2 24); do
    assert_has "$err" "tricks.jsonl:$line: "
done
assert_has "$err" "tricks.jsonl:2: key: absolute"
assert_has "$err" "tricks.jsonl:3: key: contains a \"..\" segment"
assert_has "$err" "tricks.jsonl:5: key: control byte 0x01"
assert_has "$err" "tricks.jsonl:6: key: contains a backslash"
assert_has "$err" "tricks.jsonl:7: key: path segment longer than 255 bytes"
assert_has "$err" "tricks.jsonl:8: key: longer than 1024 bytes"
assert_has "$err" "tricks.jsonl:9: url: scheme \"ftp\" is not http or https"
assert_has "$err" "tricks.jsonl:10: url: scheme \"file\" is not http or https"
assert_has "$err" "tricks.jsonl:13: url: loopback address refused"
assert_has "$err" "tricks.jsonl:14: url: loopback address refused"
assert_has "$err" "tricks.jsonl:15: url: loopback address refused"
assert_has "$err" "tricks.jsonl:16: url: loopback address refused"
assert_has "$err" "tricks.jsonl:17: url: cloud metadata address refused"
assert_has "$err" "tricks.jsonl:18: url: control byte 0x00"
assert_has "$err" "tricks.jsonl:19: invalid UTF-8"
assert_has "$err" "tricks.jsonl:20: line longer than 1048576 bytes"
assert_has "$err" "tricks.jsonl:23: id: control byte 0x00"
assert_eq "$(lines "$err")" 23
assert_eq "$(status_field j.db total)" 2

case_ "--allow-private and --allow-net at ingest"
printf '{"url":"http://127.0.0.1:8080/a.jpg"}\n{"url":"http://10.1.2.3/b.jpg"}\n' >private.jsonl
run "$SLUICE" ingest --db p.db --allow-net 127.0.0.1/32 private.jsonl
assert_rc 1
assert_eq "$out" "1 new, 0 updated, 0 unchanged, 1 rejected"
assert_has "$err" "private.jsonl:2: url: private address refused"
run "$SLUICE" ingest --db p.db --allow-private private.jsonl
assert_rc 0
assert_eq "$out" "1 new, 0 updated, 1 unchanged, 0 rejected"

case_ "CSV: tricks in fields, quotes and columns"
{
    printf 'url,id,key\n'
    printf 'http://img.example/1.jpg,c1,\n'
    printf 'http://img.example/2.jpg,c2,/abs\n'
    printf '"http://img.example/3.jpg","c3","a/../b"\n'
    printf 'http://img.example/4.jpg,c4\n'
    printf '"http://img.example/5.jpg,c5,\n'
    printf 'x","y"\n'
    printf 'http://img.example/6.jpg,c6,ok/6.jpg\n'
} >tricks.csv
run "$SLUICE" ingest --db c.db tricks.csv
assert_rc 1
assert_has "$err" "tricks.csv:3: key: absolute"
assert_has "$err" "tricks.csv:4: key: contains a \"..\" segment"
assert_has "$err" "tricks.csv:5: expected 3 fields, found 2"
assert_has "$err" "tricks.csv:6: "
assert_eq "$(status_field c.db total)" 2

case_ "plain lines: a NUL byte and a 3 MB line between good ones"
{
    echo "http://img.example/l1.jpg"
    printf 'http://img.example/\0nul.jpg\n'
    head -c 3000000 /dev/zero | tr '\0' a
    echo
    echo "http://img.example/l2.jpg"
} >tricks.txt
run "$SLUICE" ingest --db l.db tricks.txt
assert_rc 1
assert_eq "$out" "2 new, 0 updated, 0 unchanged, 2 rejected"
assert_has "$err" "tricks.txt:2: url: control byte 0x00"
assert_has "$err" "tricks.txt:3: line longer than 1048576 bytes"

finish
