/*
 * The URL policy (lib/run/guard.c): which resolved addresses sluice may
 * connect to. Every special-purpose range, IPv4 carried inside IPv6,
 * --allow-private, and the --allow-net networks and their parsing.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "run/guard.h"
#include "test.h"

/* A socket address for an IPv4 or IPv6 literal, as the resolver gives. */
static struct sockaddr_storage
addr_of(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(text, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(443);
        if (inet_pton(AF_INET6, text, &in6->sin6_addr) != 1)
            TEST_FAIL_("bad IPv6 literal in the test: %s", text);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(80);
        if (inet_pton(AF_INET, text, &in->sin_addr) != 1)
            TEST_FAIL_("bad IPv4 literal in the test: %s", text);
    }
    return ss;
}

static const char *
class_of(const char *text)
{
    struct sockaddr_storage ss = addr_of(text);
    return sl_address_class((const struct sockaddr *)&ss);
}

static const char *
check(const sl_guard *g, const char *text)
{
    struct sockaddr_storage ss = addr_of(text);
    return sl_guard_check(g, (const struct sockaddr *)&ss);
}

typedef struct {
    const char *addr;
    const char *class; /* NULL: public */
} addr_case;

/* Each address has its class, and the default guard says the same. */
static void
expect_classes(const addr_case *cases, size_t n)
{
    sl_guard g;
    char reason[256];
    ASSERT_EQ(sl_guard_init(&g, false, NULL, 0, reason, sizeof reason),
              SLUICE_OK);
    for (size_t i = 0; i < n; i++) {
        const char *got = class_of(cases[i].addr);
        const char *want = cases[i].class;
        if (!want && got)
            TEST_FAIL_("%s: class \"%s\", want public", cases[i].addr, got);
        if (want && (!got || strcmp(got, want) != 0))
            TEST_FAIL_("%s: class \"%s\", want \"%s\"", cases[i].addr,
                       got ? got : "(public)", want);
        const char *verdict = check(&g, cases[i].addr);
        if ((verdict == NULL) != (want == NULL) ||
            (want && strcmp(verdict, want) != 0))
            TEST_FAIL_("%s: guard says \"%s\"", cases[i].addr,
                       verdict ? verdict : "(allowed)");
    }
    sl_guard_free(&g);
}

#define EXPECT_CLASSES(cases) expect_classes(cases, SL_ARRAY_LEN(cases))

TEST(ipv4_special_ranges_and_their_edges)
{
    static const addr_case cases[] = {
        {"0.0.0.0", "unspecified"},
        {"0.255.255.255", "unspecified"},
        {"1.0.0.0", NULL},
        {"9.255.255.255", NULL},
        {"10.0.0.0", "private"},
        {"10.0.0.1", "private"},
        {"10.255.255.255", "private"},
        {"11.0.0.0", NULL},
        {"100.63.255.255", NULL},
        {"100.64.0.0", "shared (CGNAT)"},
        {"100.127.255.255", "shared (CGNAT)"},
        {"100.128.0.0", NULL},
        {"126.255.255.255", NULL},
        {"127.0.0.1", "loopback"},
        {"127.255.255.254", "loopback"},
        {"128.0.0.0", NULL},
        {"169.253.255.255", NULL},
        {"169.254.0.1", "link-local"},
        {"169.254.169.253", "link-local"},
        {"169.254.169.254", "cloud metadata"},
        {"169.254.169.255", "link-local"},
        {"169.254.255.255", "link-local"},
        {"169.255.0.0", NULL},
        {"172.15.255.255", NULL},
        {"172.16.0.0", "private"},
        {"172.20.1.1", "private"},
        {"172.31.255.255", "private"},
        {"172.32.0.0", NULL},
        {"191.255.255.255", NULL},
        {"192.0.0.0", "reserved"},
        {"192.0.0.255", "reserved"},
        {"192.0.1.0", NULL},
        {"192.167.255.255", NULL},
        {"192.168.0.0", "private"},
        {"192.168.1.1", "private"},
        {"192.168.255.255", "private"},
        {"192.169.0.0", NULL},
        {"198.17.255.255", NULL},
        {"198.18.0.0", "benchmarking"},
        {"198.19.255.255", "benchmarking"},
        {"198.20.0.0", NULL},
        {"223.255.255.255", NULL},
        {"224.0.0.1", "multicast"},
        {"239.255.255.255", "multicast"},
        {"240.0.0.1", "reserved"},
        {"255.255.255.254", "reserved"},
        {"255.255.255.255", "reserved"},
    };
    EXPECT_CLASSES(cases);
}

TEST(public_addresses_are_allowed)
{
    static const addr_case cases[] = {
        {"8.8.8.8", NULL},
        {"1.1.1.1", NULL},
        {"93.184.216.34", NULL},
        {"151.101.1.69", NULL},
        {"2606:4700::1111", NULL},
        {"2001:4860:4860::8888", NULL},
        {"2a00:1450:4001:80b::200e", NULL},
    };
    EXPECT_CLASSES(cases);
}

TEST(ipv6_special_ranges)
{
    static const addr_case cases[] = {
        {"::1", "loopback"},
        {"::", "unspecified"},
        {"::2", "reserved"},
        {"fe80::1", "link-local"},
        {"febf:ffff::1", "link-local"},
        {"fec0::1", "site-local"},
        {"feff::1", "site-local"},
        {"fc00::1", "unique-local"},
        {"fd00::1", "unique-local"},
        {"fdff:ffff::1", "unique-local"},
        {"fd00:ec2::254", "cloud metadata"},
        {"fd00:ec2::253", "unique-local"},
        {"ff02::1", "multicast"},
        {"ff05::1:3", "multicast"},
        {"fbff:ffff::1", NULL},
        {"fe7f::1", NULL},
    };
    EXPECT_CLASSES(cases);
}

TEST(ipv4_inside_ipv6_is_judged_as_ipv4)
{
    static const addr_case cases[] = {
        /* IPv4-mapped */
        {"::ffff:127.0.0.1", "loopback"},
        {"::ffff:10.0.0.1", "private"},
        {"::ffff:169.254.169.254", "cloud metadata"},
        {"::ffff:8.8.8.8", NULL},
        /* NAT64 well-known prefix */
        {"64:ff9b::7f00:1", "loopback"},
        {"64:ff9b::a9fe:a9fe", "cloud metadata"},
        {"64:ff9b::808:808", NULL},
        /* IPv4-compatible (deprecated, still routable by some stacks) */
        {"::127.0.0.1", "loopback"},
        {"::192.168.0.1", "private"},
        {"::8.8.8.8", NULL},
        /* 6to4 */
        {"2002:7f00:1::1", "loopback"},
        {"2002:a9fe:a9fe::1", "cloud metadata"},
        {"2002:c0a8:101::", "private"},
        {"2002:808:808::1", NULL},
    };
    EXPECT_CLASSES(cases);
}

TEST(a_non_ip_address_is_refused)
{
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    ASSERT_STR_EQ(sl_address_class((const struct sockaddr *)&un),
                  "not an IP address");
    sl_guard g;
    char reason[256];
    const char *const nets[] = {"0.0.0.0/0", "::/0"};
    ASSERT_EQ(sl_guard_init(&g, false, nets, 2, reason, sizeof reason),
              SLUICE_OK);
    ASSERT_NOT_NULL(sl_guard_check(&g, (const struct sockaddr *)&un));
    sl_guard_free(&g);
}

TEST(allow_private_allows_everything)
{
    sl_guard g;
    char reason[256];
    ASSERT_EQ(sl_guard_init(&g, true, NULL, 0, reason, sizeof reason),
              SLUICE_OK);
    static const char *const addrs[] = {
        "127.0.0.1", "10.1.2.3", "169.254.169.254", "0.0.0.0",
        "224.0.0.1", "::1",      "fd00:ec2::254",   "::ffff:127.0.0.1",
        "fe80::1",   "8.8.8.8"};
    for (size_t i = 0; i < SL_ARRAY_LEN(addrs); i++)
        if (check(&g, addrs[i]))
            TEST_FAIL_("%s refused with --allow-private", addrs[i]);
    sl_guard_free(&g);
    /* Without it, the same guard refuses them. */
    ASSERT_EQ(sl_guard_init(&g, false, NULL, 0, reason, sizeof reason),
              SLUICE_OK);
    ASSERT_STR_EQ(check(&g, "127.0.0.1"), "loopback");
    ASSERT_STR_EQ(check(&g, "169.254.169.254"), "cloud metadata");
    ASSERT_STR_EQ(check(&g, "fd00:ec2::254"), "cloud metadata");
    sl_guard_free(&g);
}

/* A guard that allows `nets`; fails the test when they do not parse. */
static void
guard_with(sl_guard *g, const char *const *nets, size_t n)
{
    char reason[256] = "";
    if (sl_guard_init(g, false, nets, n, reason, sizeof reason) != SLUICE_OK)
        TEST_FAIL_("sl_guard_init: %s", reason);
    ASSERT_EQ(g->n_allowed, n);
}

TEST(an_allowed_host_is_exactly_that_host)
{
    sl_guard g;
    const char *const nets[] = {"127.0.0.1/32"};
    guard_with(&g, nets, 1);
    ASSERT_NULL(check(&g, "127.0.0.1"));
    ASSERT_STR_EQ(check(&g, "127.0.0.2"), "loopback");
    ASSERT_STR_EQ(check(&g, "10.0.0.1"), "private");
    ASSERT_STR_EQ(check(&g, "::1"), "loopback");
    ASSERT_NULL(check(&g, "8.8.8.8"));
    sl_guard_free(&g);

    /* Without a prefix length an address is a single host too. */
    const char *const bare[] = {"192.168.1.10"};
    guard_with(&g, bare, 1);
    ASSERT_NULL(check(&g, "192.168.1.10"));
    ASSERT_STR_EQ(check(&g, "192.168.1.11"), "private");
    sl_guard_free(&g);
}

TEST(allowed_networks_cover_their_prefix)
{
    sl_guard g;
    const char *const nets[] = {"10.0.0.0/8", "172.16.0.0/13", "::1",
                                "fd00::/8"};
    guard_with(&g, nets, 4);
    ASSERT_NULL(check(&g, "10.0.0.1"));
    ASSERT_NULL(check(&g, "10.255.255.255"));
    ASSERT_STR_EQ(check(&g, "192.168.0.1"), "private");
    ASSERT_STR_EQ(check(&g, "127.0.0.1"), "loopback");
    /* A prefix that ends inside a byte: 172.16.0.0 - 172.23.255.255. */
    ASSERT_NULL(check(&g, "172.16.0.1"));
    ASSERT_NULL(check(&g, "172.23.255.255"));
    ASSERT_STR_EQ(check(&g, "172.24.0.0"), "private");
    ASSERT_NULL(check(&g, "::1"));
    ASSERT_NULL(check(&g, "fd00::1"));
    ASSERT_NULL(check(&g, "fdff:1234::1"));
    ASSERT_STR_EQ(check(&g, "fc00::1"), "unique-local");
    ASSERT_STR_EQ(check(&g, "fe80::1"), "link-local");
    sl_guard_free(&g);
}

TEST(an_allowed_network_is_of_one_family)
{
    /* Every IPv4 address allowed: IPv6 ones are still checked. */
    sl_guard g;
    const char *const v4[] = {"0.0.0.0/0"};
    guard_with(&g, v4, 1);
    ASSERT_NULL(check(&g, "127.0.0.1"));
    ASSERT_NULL(check(&g, "169.254.169.254"));
    ASSERT_STR_EQ(check(&g, "::1"), "loopback");
    ASSERT_STR_EQ(check(&g, "fd00::1"), "unique-local");
    sl_guard_free(&g);

    /* And the other way round: ::/0 does not open IPv4. */
    const char *const v6[] = {"::/0"};
    guard_with(&g, v6, 1);
    ASSERT_NULL(check(&g, "::1"));
    ASSERT_NULL(check(&g, "fe80::1"));
    ASSERT_STR_EQ(check(&g, "127.0.0.1"), "loopback");
    ASSERT_STR_EQ(check(&g, "10.0.0.1"), "private");
    sl_guard_free(&g);
}

TEST(bad_networks_are_rejected_with_a_reason)
{
    static const char *const bad[] = {
        "10.0.0.0/33", "nope",        "1.2.3.4/",     "",
        "::1/129",     "10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0.0/ 8",
        "10.0.0.0/+8", "1.2.3.4 ",    "256.0.0.1",    "10.0.0/8",
        "/8",          "fd00::/x"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        sl_guard g;
        char reason[256] = "";
        const char *const nets[] = {"10.0.0.0/8", bad[i]};
        sluice_err err =
            sl_guard_init(&g, false, nets, 2, reason, sizeof reason);
        if (err != SLUICE_EINVAL)
            TEST_FAIL_("\"%s\": error %d, want SLUICE_EINVAL", bad[i],
                       (int)err);
        ASSERT_STR_CONTAINS(reason, "--allow-net");
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", bad[i]);
        ASSERT_STR_CONTAINS(reason, quoted);
        /* Nothing is left allowed by a guard that failed to start. */
        ASSERT_NULL(g.allowed);
        ASSERT_EQ(g.n_allowed, 0);
        ASSERT_STR_EQ(check(&g, "10.0.0.1"), "private");
    }
}
