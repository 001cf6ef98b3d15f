/*
 * Fault injection counters for test builds; see fault.h. The library is
 * single-threaded per handle, but the store's sync thread also calls in,
 * so the counters are atomic.
 */
#include "fault.h"

#ifdef SLUICE_FAULT_INJECTION

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_ulong fault_calls[SL_FAULT_KIND_COUNT_];
static atomic_ulong fault_nth[SL_FAULT_KIND_COUNT_];
static atomic_int fault_loaded;

static const char *const fault_names[SL_FAULT_KIND_COUNT_] = {
    "alloc", "write", "fsync", "rename", "db", "tmpfile"};

static void
fault_load_env(void)
{
    const char *spec = getenv("SLUICE_FAULT");
    while (spec && *spec) {
        const char *colon = strchr(spec, ':');
        if (!colon)
            break;
        for (int k = 0; k < SL_FAULT_KIND_COUNT_; k++) {
            size_t n = strlen(fault_names[k]);
            if ((size_t)(colon - spec) == n &&
                memcmp(spec, fault_names[k], n) == 0)
                fault_nth[k] = strtoul(colon + 1, NULL, 10);
        }
        spec = strchr(colon, ',');
        if (spec)
            spec++;
    }
}

bool
sl_fault_hit(sl_fault_kind kind)
{
    if (atomic_exchange(&fault_loaded, 1) == 0)
        fault_load_env();
    unsigned long call = atomic_fetch_add(&fault_calls[kind], 1) + 1;
    unsigned long nth = atomic_load(&fault_nth[kind]);
    return nth != 0 && call == nth;
}

void
sl_fault_set(sl_fault_kind kind, unsigned long nth)
{
    atomic_store(&fault_loaded, 1);
    atomic_store(&fault_calls[kind], 0);
    atomic_store(&fault_nth[kind], nth);
}

unsigned long
sl_fault_count(sl_fault_kind kind)
{
    return atomic_load(&fault_calls[kind]);
}

#else
typedef int sl_fault_unused_; /* ISO C forbids an empty translation unit */
#endif
