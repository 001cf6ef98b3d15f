/*
 * The URL policy kept with the queue (docs/policy.md): what --allow-private
 * and --allow-net opened at ingest is stored in the queue's settings, so
 * that a run given no --allow-* of its own fetches what ingest accepted.
 * Ingest widens the stored policy (or resets it); a run uses it or its own.
 */
#ifndef SL_POLICY_H
#define SL_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "../queue/queue.h"
#include "guard.h"

/* The setting's name in the queue. */
#define SL_POLICY_SETTING "url_policy"

/* A policy: every address allowed, or the networks allowed (CIDRs, as
 * given, each once). Owns its strings. */
typedef struct {
    bool allow_private;
    char **nets;
    size_t n_nets;
} sl_policy;

void sl_policy_free(sl_policy *p);

/* Add what --allow-private and --allow-net give; *changed says whether
 * that allowed something new. -1 when out of memory. */
int sl_policy_add(sl_policy *p, bool allow_private, const char *const *nets,
                  size_t n_nets, bool *changed);

/* The queue's policy into *p (empty when it has none, or keeps no
 * settings); *stored says whether it had one. SLUICE_EDB with a reason
 * for a stored value that cannot be read. */
sluice_err sl_policy_load(sluice_queue *q, sl_policy *p, bool *stored,
                          char *reason, size_t reason_size);

/* Store *p as the queue's policy (an empty one removes nothing: it is
 * stored as "none"). SLUICE_OK without a word for a queue that keeps no
 * settings. */
sluice_err sl_policy_store(sluice_queue *q, const sl_policy *p);

/* "every address allowed (--allow-private)", "private addresses allowed
 * in 127.0.0.1/32, 10.0.0.0/8", "private addresses refused (the
 * default)". */
void sl_policy_describe(const sl_policy *p, char *dst, size_t size);

/* A guard for the policy. Same returns as sl_guard_init. */
sluice_err sl_policy_guard(const sl_policy *p, sl_guard *g, char *reason,
                           size_t reason_size);

#endif /* SL_POLICY_H */
