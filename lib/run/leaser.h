/*
 * The leaser: a run's leases taken on a thread of its own, over a queue
 * handle of its own (SL_QUEUE_F_CONNECTIONS: Redis), so that the loop
 * never waits for a lease. The loop asks for records, goes on with its
 * transfers, and takes the answer on a later turn, woken by the leaser's
 * descriptor. On Redis a lease is a script of a millisecond or more, run
 * a few hundred times a run: waited for on the loop, it held every
 * transfer still for a third of a run of small objects.
 *
 * One question at a time. An answer's leases are the caller's: a lease
 * lives for sl_lease_req.lease_ms from the question, and is renewed only
 * once the run holds it as a job, so answers are taken at once. A queue
 * that never gives a second handle (SQLite) has no leaser: the loop
 * leases itself, in its turn on the queue (sched.c).
 */
#ifndef SL_LEASER_H
#define SL_LEASER_H

#include <stdbool.h>
#include <stdint.h>

#include "../queue/queue.h"

typedef struct sl_leaser sl_leaser;

/* What the queue answered to a question. */
typedef struct {
    sl_lease *leases; /* n of them: the caller moves them out */
    size_t n;
    /* Fewer than asked for: when the next record is due (as
     * sl_queue_next_due says), if due_read. */
    bool due_read, any_due;
    int64_t due_ms;
    /* The queue failed (err != SLUICE_OK; the leases made before the
     * failure are still in `leases`), with its message. */
    sluice_err err;
    bool outage; /* sl_queue_outage says so: the queue is away */
    char msg[512];
} sl_lease_answer;

/* A leaser over q, its own handle on the queue (the caller closes it
 * after sl_leaser_free), for questions of at most `max` records. */
sluice_err sl_leaser_start(sluice_queue *q, size_t max, sl_leaser **out);

/* Readable once an answer is in (an eventfd, drained by
 * sl_leaser_answer). */
int sl_leaser_fd(const sl_leaser *l);

/* Ask for records (req->max at most the leaser's max; the names to skip
 * are copied). False, nothing asked, while a question is out or an
 * answer not yet done with, or out of memory. */
bool sl_leaser_ask(sl_leaser *l, const sl_lease_req *req);

/* A question is out, or its answer not yet done with. */
bool sl_leaser_busy(sl_leaser *l);

/* The answer, if it is in (or, with `wait`, once it is): the caller moves
 * the leases out and calls sl_leaser_done. NULL: no question, or no
 * answer yet. */
sl_lease_answer *sl_leaser_answer(sl_leaser *l, bool wait);

/* Done with the answer (leases not moved out are cleared: their records
 * come back when the leases lapse). */
void sl_leaser_done(sl_leaser *l);

/* Stop the thread (a question out is answered first, and its leases
 * cleared) and free the leaser. NULL is fine. */
void sl_leaser_free(sl_leaser *l);

#endif
