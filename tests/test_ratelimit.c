/*
 * Rate-limit headers (lib/run/ratelimit.c): the fields captured from a
 * response head as they arrive, and what each spelling says: the IETF
 * draft's structured RateLimit-Policy and RateLimit, its older
 * RateLimit-Limit/-Remaining/-Reset, and X-RateLimit-* (Reset in seconds
 * to go or since the epoch).
 */
#include "run/ratelimit.h"
#include "test.h"

#define NOW_MS 1700000000000LL

static sl_ratelimit_headers
head(const char *const *lines)
{
    sl_ratelimit_headers h = {0};
    for (; *lines; lines++)
        sl_ratelimit_capture(&h, *lines, strlen(*lines));
    return h;
}

static sl_pacer_advice
read_lines(const char *const *lines)
{
    sl_ratelimit_headers h = head(lines);
    sl_pacer_advice a;
    sl_ratelimit_read(&h, NOW_MS, &a);
    return a;
}

#define NEAR(a, b) ASSERT((a) > (b)-0.001 && (a) < (b) + 0.001)

TEST(other_lines_are_passed_over_and_values_trimmed)
{
    const char *lines[] = {"HTTP/1.1 200 OK\r\n",
                           "Content-Type: image/jpeg\r\n",
                           "Retry-After: 5\r\n",
                           "X-RateLimit-Limit:   60  \r\n",
                           "\r\n",
                           NULL};
    sl_ratelimit_headers h = head(lines);
    ASSERT_EQ(h.present, 1u << SL_RL_X_LIMIT);
    ASSERT_STR_EQ(h.value[SL_RL_X_LIMIT], "60");
}

TEST(names_are_matched_whatever_their_case)
{
    const char *lines[] = {"ratelimit-policy: \"default\";q=10;w=1\r\n",
                           "RATELIMIT: \"default\";r=4;t=1\r\n", NULL};
    sl_ratelimit_headers h = head(lines);
    ASSERT_EQ(h.present, (1u << SL_RL_POLICY) | (1u << SL_RL_RATELIMIT));
}

TEST(the_ietf_structured_fields)
{
    const char *lines[] = {"RateLimit-Policy: \"default\";q=100;w=60\r\n",
                           "RateLimit: \"default\";r=42;t=7\r\n", NULL};
    sl_pacer_advice a = read_lines(lines);
    NEAR(a.quota, 100);
    NEAR(a.window_s, 60);
    NEAR(a.remaining, 42);
    NEAR(a.reset_s, 7);
}

TEST(the_most_restrictive_of_several_policies)
{
    const char *lines[] = {
        "RateLimit-Policy: \"hour\";q=3600;w=3600, \"burst\";q=5;w=1\r\n",
        NULL};
    sl_pacer_advice a = read_lines(lines);
    NEAR(a.quota, 3600);
    NEAR(a.window_s, 3600);
    const char *other[] = {
        "RateLimit-Policy: \"burst\";q=5;w=10, \"hour\";q=3600;w=3600\r\n",
        NULL};
    a = read_lines(other);
    NEAR(a.quota, 5);
    NEAR(a.window_s, 10);
}

TEST(the_older_drafts_fields)
{
    const char *lines[] = {"RateLimit-Limit: 100\r\n",
                           "RateLimit-Remaining: 9\r\n",
                           "RateLimit-Reset: 30\r\n", NULL};
    sl_pacer_advice a = read_lines(lines);
    NEAR(a.quota, 100);
    ASSERT(a.window_s < 0);
    NEAR(a.remaining, 9);
    NEAR(a.reset_s, 30);
    const char *listed[] = {"RateLimit-Limit: 10, 10;w=1, 1000;w=3600\r\n",
                            NULL};
    a = read_lines(listed);
    NEAR(a.quota, 10);
    NEAR(a.window_s, 1);
    const char *combined[] = {
        "RateLimit: limit=100, remaining=50, reset=30\r\n", NULL};
    a = read_lines(combined);
    NEAR(a.quota, 100);
    NEAR(a.remaining, 50);
    NEAR(a.reset_s, 30);
}

TEST(x_ratelimit_with_a_reset_to_go_or_since_the_epoch)
{
    const char *delta[] = {"X-RateLimit-Limit: 60\r\n",
                           "X-RateLimit-Remaining: 0\r\n",
                           "X-RateLimit-Reset: 12\r\n", NULL};
    sl_pacer_advice a = read_lines(delta);
    NEAR(a.quota, 60);
    NEAR(a.remaining, 0);
    NEAR(a.reset_s, 12);
    const char *epoch[] = {"X-RateLimit-Remaining: 3\r\n",
                           "X-RateLimit-Reset: 1700000030\r\n", NULL};
    a = read_lines(epoch);
    NEAR(a.reset_s, 30);
    const char *epoch_ms[] = {"X-RateLimit-Remaining: 3\r\n",
                              "X-RateLimit-Reset: 1700000005000\r\n", NULL};
    a = read_lines(epoch_ms);
    NEAR(a.reset_s, 5);
    /* A reset in the past is now. */
    const char *past[] = {"X-RateLimit-Remaining: 3\r\n",
                          "X-RateLimit-Reset: 1600000000\r\n", NULL};
    a = read_lines(past);
    NEAR(a.reset_s, 0);
}

TEST(ietf_fields_win_and_nonsense_says_nothing)
{
    const char *both[] = {
        "X-RateLimit-Limit: 1000\r\n",  "X-RateLimit-Remaining: 999\r\n",
        "X-RateLimit-Reset: 1\r\n",     "RateLimit-Policy: \"d\";q=10;w=1\r\n",
        "RateLimit: \"d\";r=2;t=1\r\n", NULL};
    sl_pacer_advice a = read_lines(both);
    NEAR(a.quota, 10);
    NEAR(a.remaining, 2);
    const char *junk[] = {
        "X-RateLimit-Limit: lots\r\n", "X-RateLimit-Remaining: -4\r\n",
        "X-RateLimit-Reset: soon\r\n", "RateLimit: \"d\";x=1\r\n", NULL};
    a = read_lines(junk);
    ASSERT(a.quota < 0);
    ASSERT(a.remaining < 0);
    ASSERT(a.reset_s < 0);
    /* A value too long for the buffer is cut, not overrun. */
    char line[400] = "X-RateLimit-Limit: ";
    memset(line + strlen(line), '9', 300);
    line[strlen("X-RateLimit-Limit: ") + 300] = '\0';
    sl_ratelimit_headers h = {0};
    sl_ratelimit_capture(&h, line, strlen(line));
    ASSERT_EQ(strlen(h.value[SL_RL_X_LIMIT]), SL_RL_VALUE_MAX - 1);
}
