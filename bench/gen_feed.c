/*
 * gen_feed: write a synthetic feed of N records to stdout, fast, for the
 * ingest benchmark and the million-record test.
 *   gen_feed N [jsonl|csv|lines] [BASE_URL]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: gen_feed N [jsonl|csv|lines] [BASE_URL]\n");
        return 2;
    }
    char *end;
    unsigned long long n = strtoull(argv[1], &end, 10);
    if (*end) {
        fprintf(stderr, "gen_feed: bad count '%s'\n", argv[1]);
        return 2;
    }
    const char *format = argc > 2 ? argv[2] : "jsonl";
    const char *base = argc > 3 ? argv[3] : "https://images.example.com";
    static char buf[1 << 16];
    setvbuf(stdout, buf, _IOFBF, sizeof buf);
    if (strcmp(format, "csv") == 0)
        fputs("id,url,color\n", stdout);
    for (unsigned long long i = 0; i < n; i++) {
        if (strcmp(format, "jsonl") == 0)
            printf("{\"id\":\"sku-%llu\",\"url\":\"%s/img/%llu.jpg\","
                   "\"meta\":{\"n\":%llu}}\n",
                   i, base, i, i);
        else if (strcmp(format, "csv") == 0)
            printf("sku-%llu,%s/img/%llu.jpg,red\n", i, base, i);
        else
            printf("%s/img/%llu.jpg\n", base, i);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
