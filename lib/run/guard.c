/*
 * The URL policy: special-purpose address ranges (RFC 6890 and friends),
 * with IPv4 embedded in IPv6 (mapped, compatible, NAT64, 6to4) checked as
 * the IPv4 address it carries, and operator-allowed networks.
 */
#include "guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool
in_prefix(const unsigned char *addr, const unsigned char *net,
          unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(addr, net, full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (addr[full] & mask) == (net[full] & mask);
}

static const char *
class_v4(const unsigned char *a)
{
    static const struct {
        unsigned char net[4];
        unsigned prefix;
        const char *name;
    } ranges[] = {
        {{169, 254, 169, 254}, 32, "cloud metadata"},
        {{0, 0, 0, 0}, 8, "unspecified"},
        {{10, 0, 0, 0}, 8, "private"},
        {{100, 64, 0, 0}, 10, "shared (CGNAT)"},
        {{127, 0, 0, 0}, 8, "loopback"},
        {{169, 254, 0, 0}, 16, "link-local"},
        {{172, 16, 0, 0}, 12, "private"},
        {{192, 0, 0, 0}, 24, "reserved"},
        {{192, 168, 0, 0}, 16, "private"},
        {{198, 18, 0, 0}, 15, "benchmarking"},
        {{224, 0, 0, 0}, 4, "multicast"},
        {{240, 0, 0, 0}, 4, "reserved"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(ranges); i++)
        if (in_prefix(a, ranges[i].net, ranges[i].prefix))
            return ranges[i].name;
    return NULL;
}

static const char *
class_v6(const unsigned char *a)
{
    static const unsigned char zero[16] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0,
                                             0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
    static const unsigned char ec2_metadata[16] = {
        0xfd, 0, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
    if (memcmp(a, zero, 15) == 0)
        return a[15] == 1 ? "loopback" : a[15] == 0 ? "unspecified"
                                                     : "reserved";
    if (memcmp(a, ec2_metadata, 16) == 0)
        return "cloud metadata";
    /* IPv4 carried in IPv6: judged as that IPv4 address. */
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0 ||
        memcmp(a, zero, 12) == 0)
        return class_v4(a + 12);
    if (a[0] == 0x20 && a[1] == 0x02) /* 6to4: 2002:V4ADDR::/48 */
        return class_v4(a + 2);
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return "link-local";
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
        return "site-local";
    if ((a[0] & 0xfe) == 0xfc)
        return "unique-local";
    if (a[0] == 0xff)
        return "multicast";
    return NULL;
}

const char *
sl_address_class(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return class_v4((const unsigned char *)&in->sin_addr);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return class_v6(in6->sin6_addr.s6_addr);
    }
    return "not an IP address";
}

static bool
allowed(const sl_guard *g, const struct sockaddr *sa)
{
    const unsigned char *a;
    int family = sa->sa_family;
    if (family == AF_INET)
        a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    else if (family == AF_INET6)
        a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    else
        return false;
    /* An IPv4-mapped address is its IPv4 address for the allowed list,
     * as it is for the ranges. */
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0,
                                             0, 0, 0, 0, 0xff, 0xff};
    if (family == AF_INET6 && memcmp(a, mapped, 12) == 0) {
        family = AF_INET;
        a += 12;
    }
    for (size_t i = 0; i < g->n_allowed; i++) {
        const sl_cidr *c = &g->allowed[i];
        if (c->family == family && in_prefix(a, c->addr, c->prefix))
            return true;
    }
    return false;
}

const char *
sl_guard_check(const sl_guard *g, const struct sockaddr *sa)
{
    if (g->allow_private)
        return NULL;
    const char *cls = sl_address_class(sa);
    if (cls && allowed(g, sa))
        return NULL;
    return cls;
}

static bool
parse_cidr(const char *text, sl_cidr *out)
{
    char addr[64];
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : strlen(text);
    if (len == 0 || len >= sizeof addr)
        return false;
    memcpy(addr, text, len);
    addr[len] = '\0';
    memset(out, 0, sizeof *out);
    unsigned max;
    if (inet_pton(AF_INET, addr, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return false;
    }
    out->prefix = max;
    if (slash) {
        int64_t prefix;
        if (sl_parse_i64(slash + 1, 0, max, &prefix) != 0)
            return false;
        out->prefix = (unsigned)prefix;
    }
    return true;
}

sluice_err
sl_guard_init(sl_guard *g, bool allow_private, const char *const *nets,
              size_t n_nets, char *reason, size_t reason_size)
{
    memset(g, 0, sizeof *g);
    g->allow_private = allow_private;
    if (n_nets == 0)
        return SLUICE_OK;
    g->allowed = sl_calloc(n_nets, sizeof *g->allowed);
    if (!g->allowed)
        return SLUICE_ENOMEM;
    for (size_t i = 0; i < n_nets; i++) {
        if (!parse_cidr(nets[i], &g->allowed[i])) {
            sl_fmt(reason, reason_size,
                   "--allow-net: '%s' is not an address or CIDR network",
                   nets[i]);
            sl_guard_free(g);
            return SLUICE_EINVAL;
        }
    }
    g->n_allowed = n_nets;
    return SLUICE_OK;
}

void
sl_guard_free(sl_guard *g)
{
    sl_free(g->allowed);
    g->allowed = NULL;
    g->n_allowed = 0;
}

const char *
sl_guard_check_origin(const sl_guard *g, const char *origin)
{
    const char *host = strstr(origin, "://");
    if (!host)
        return NULL;
    host += 3;
    const char *end = strrchr(host, ':'); /* the port always follows */
    if (!end || end == host)
        return NULL;
    char name[256];
    size_t len = (size_t)(end - host);
    if (len >= sizeof name)
        return NULL;
    memcpy(name, host, len);
    name[len] = '\0';

    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    memset(&in4, 0, sizeof in4);
    memset(&in6, 0, sizeof in6);
    in4.sin_family = AF_INET;
    in6.sin6_family = AF_INET6;
    if (len > 2 && name[0] == '[' && name[len - 1] == ']') {
        name[len - 1] = '\0';
        if (inet_pton(AF_INET6, name + 1, &in6.sin6_addr) != 1)
            return NULL;
        return sl_guard_check(g, (const struct sockaddr *)&in6);
    }
    if (inet_pton(AF_INET, name, &in4.sin_addr) == 1)
        return sl_guard_check(g, (const struct sockaddr *)&in4);
    /* localhost always means loopback (RFC 6761), whatever DNS says. */
    while (len && name[len - 1] == '.')
        name[--len] = '\0';
    if (strcasecmp(name, "localhost") == 0 ||
        (len > 10 && strcasecmp(name + len - 10, ".localhost") == 0)) {
        in4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sl_guard_check(g, (const struct sockaddr *)&in4);
    }
    return NULL;
}
