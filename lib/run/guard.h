/*
 * The URL policy (DESIGN.md, "Errors and safety"): which addresses sluice
 * may connect to. By default loopback, private, link-local, unique-local,
 * cloud-metadata and other special-purpose addresses are refused; checked
 * on the resolved address of every connection, so every spelling of a
 * host (names, 2130706433, [::ffff:127.0.0.1]) meets the same check.
 */
#ifndef SL_GUARD_H
#define SL_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "../util.h"

typedef struct {
    unsigned char addr[16]; /* IPv4 addresses in the first 4 bytes */
    int family;             /* AF_INET or AF_INET6 */
    unsigned prefix;
} sl_cidr;

typedef struct {
    bool allow_private; /* --allow-private: allow everything */
    sl_cidr *allowed;   /* --allow-net: allowed even though special */
    size_t n_allowed;
} sl_guard;

/* Parse the allowed networks ("127.0.0.1/32", "10.0.0.0/8", "::1").
 * SLUICE_EINVAL with a reason naming the bad one. */
sluice_err sl_guard_init(sl_guard *g, bool allow_private,
                         const char *const *nets, size_t n_nets,
                         char *reason, size_t reason_size);
void sl_guard_free(sl_guard *g);

/*
 * NULL when `sa` may be connected to; otherwise what kind of address it
 * is ("loopback", "private", "link-local", "cloud metadata", ...).
 */
const char *sl_guard_check(const sl_guard *g, const struct sockaddr *sa);

/*
 * The same check for a URL's origin ("http://[::1]:80") before any
 * lookup: a literal address (as libcurl normalises them) or localhost is
 * checked; NULL for a name, which can only be checked once resolved.
 */
const char *sl_guard_check_origin(const sl_guard *g, const char *origin);

/* The special-purpose class of an address, or NULL for a public one. */
const char *sl_address_class(const struct sockaddr *sa);

#endif /* SL_GUARD_H */
