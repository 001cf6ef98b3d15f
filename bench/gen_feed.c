/*
 * gen_feed: write a synthetic feed of N records to stdout, fast, for the
 * benchmarks, the demo and the tests.
 *   gen_feed N [jsonl|csv|lines] [BASE_URL] [clean|faults]
 * Record i is id "sku-i" with url BASE/img/i.jpg. With "faults", some
 * records ask the test origin (tests/origin) for a fault, by i:
 *   i % 50 == 7   flaky: one 500, then 200            (recoverable)
 *   i % 2000 == 13 throttle: one 429, Retry-After 1 s (recoverable; it
 *                 pauses the whole origin, so it is rare)
 *   i % 50 == 21  reset mid-body once                 (recoverable)
 *   i % 50 == 29  short body (bad Content-Length) once (recoverable)
 *   i % 50 == 33  stall mid-body once                 (recoverable)
 *   i % 50 == 41  two redirects                       (recoverable)
 *   i % 100 == 47 always 404                          (dead, class http)
 *   i % 100 == 97 always 410                          (dead, class http)
 * gen_feed --expect N prints, for the faults mix, "recoverable dead".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *
fault_for(unsigned long long i)
{
    if (i % 100 == 47)
        return "?fault=status&code=404";
    if (i % 100 == 97)
        return "?fault=status&code=410";
    if (i % 2000 == 13)
        return "?fault=throttle&fails=1&retry_after=1";
    switch (i % 50) {
    case 7:
        return "?fault=flaky&fails=1&code=500";
    case 21:
        return "?fault=reset&fails=1";
    case 29:
        return "?fault=badlen&fails=1";
    case 33:
        return "?fault=stall&fails=1";
    case 41:
        return "?fault=redirect&hops=2";
    }
    return "";
}

static int
parse_count(const char *text, unsigned long long *n)
{
    char *end;
    *n = strtoull(text, &end, 10);
    if (*end || !*text) {
        fprintf(stderr, "gen_feed: bad count '%s'\n", text);
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    unsigned long long n;
    if (argc == 3 && strcmp(argv[1], "--expect") == 0) {
        unsigned long long dead = 0;
        if (parse_count(argv[2], &n) != 0)
            return 2;
        for (unsigned long long i = 0; i < n; i++)
            dead += i % 100 == 47 || i % 100 == 97;
        printf("%llu %llu\n", n - dead, dead);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: gen_feed N [jsonl|csv|lines] [BASE_URL] "
                        "[clean|faults]\n       gen_feed --expect N\n");
        return 2;
    }
    if (parse_count(argv[1], &n) != 0)
        return 2;
    const char *format = argc > 2 ? argv[2] : "jsonl";
    const char *base = argc > 3 ? argv[3] : "https://images.example.com";
    int faults = argc > 4 && strcmp(argv[4], "faults") == 0;
    static char buf[1 << 16];
    setvbuf(stdout, buf, _IOFBF, sizeof buf);
    if (strcmp(format, "csv") == 0)
        fputs("id,url,color\n", stdout);
    for (unsigned long long i = 0; i < n; i++) {
        const char *q = faults ? fault_for(i) : "";
        if (strcmp(format, "jsonl") == 0)
            printf("{\"id\":\"sku-%llu\",\"url\":\"%s/img/%llu.jpg%s\","
                   "\"meta\":{\"n\":%llu}}\n",
                   i, base, i, q, i);
        else if (strcmp(format, "csv") == 0)
            printf("sku-%llu,%s/img/%llu.jpg%s,red\n", i, base, i, q);
        else
            printf("%s/img/%llu.jpg%s\n", base, i, q);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
