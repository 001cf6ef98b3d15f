/*
 * Fault injection for test builds (sqlite's testing.html, in miniature).
 * Library code asks sl_fault_hit(kind) at each allocation, write, fsync,
 * rename and database step, and when a store opens whether O_TMPFILE
 * works; in a build with SLUICE_FAULT_INJECTION the Nth such call can be
 * made to fail. In other builds the check compiles away.
 */
#ifndef SL_FAULT_H
#define SL_FAULT_H

#include <stdbool.h>

typedef enum {
    SL_FAULT_ALLOC,
    SL_FAULT_WRITE,
    SL_FAULT_FSYNC,
    SL_FAULT_RENAME,
    SL_FAULT_DB,
    SL_FAULT_TMPFILE, /* the store's file system has no O_TMPFILE */
    SL_FAULT_KIND_COUNT_
} sl_fault_kind;

#ifdef SLUICE_FAULT_INJECTION
/*
 * True when this call of `kind` is the one to fail. Configured by the
 * environment variable SLUICE_FAULT="KIND:N[,KIND:N...]" (kinds: alloc,
 * write, fsync, rename, db, tmpfile; N counts from 1), or by sl_fault_set().
 */
bool sl_fault_hit(sl_fault_kind kind);
/* Fail the nth call of `kind` from now on (0: never); resets its count. */
void sl_fault_set(sl_fault_kind kind, unsigned long nth);
/* Number of calls of `kind` seen since the count was last reset. */
unsigned long sl_fault_count(sl_fault_kind kind);
#else
static inline bool
sl_fault_hit(sl_fault_kind kind)
{
    (void)kind;
    return false;
}
#endif

#endif /* SL_FAULT_H */
