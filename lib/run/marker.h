/*
 * Marking records done, on a thread of its own. The fetch loop is the
 * thread a run waits for, and a mark is a database write: 15-20% of that
 * thread's time on 10,000 small objects. The run hands the marks over in
 * batches; the marker makes each batch one transaction.
 *
 * The marker and the run share one queue handle, one at a time: both
 * take their turns with sl_queue_lock around every use of it while the
 * marker lives, and the run never flushes, waits or stops during its turn
 * (the marker may need a turn to take the batch before).
 *
 * A record is marked done only after its object is durable (the run hands
 * it over only then); a crash before a batch commits leaves its records
 * in flight, for the next run to recover and fetch again.
 *
 * A queue that may be away for a while (SL_QUEUE_F_OUTAGES: Redis) is
 * waited for here: a mark that cannot reach it is kept, with every mark
 * after it, in order, and written when the queue answers again; the run
 * hands its own marks (retry, dead, release) over meanwhile. The marker
 * tries again after 250 ms, doubling to 2 s, and gives up (a failure,
 * its marks unwritten) once the outage has lasted the longest allowed.
 * A mark whose lease has since changed hands changes nothing: the queue
 * fences it by its token.
 */
#ifndef SL_MARKER_H
#define SL_MARKER_H

#include <stdint.h>

#include "../queue/queue.h"

typedef struct sl_marker sl_marker;

/* What a mark says of its record. */
typedef enum {
    SL_MARK_DONE,
    SL_MARK_RETRY,
    SL_MARK_DEAD,
    SL_MARK_RELEASE
} sl_mark_kind;

sluice_err sl_marker_start(sluice_queue *q, sl_marker **out);

/* How long an outage of the queue is waited out (ms) before the marker
 * gives up; 0 (the default) gives up at the first failure. */
void sl_marker_set_outage_max(sl_marker *m, int64_t max_ms);

/* A record whose object is durable: its lease is moved out of *lease
 * (cleared), what was stored is copied. Held until sl_marker_flush.
 * SLUICE_ENOMEM, lease untouched: mark it done some other way. */
sluice_err sl_marker_add(sl_marker *m, sl_lease *lease,
                         const sl_object_info *info, int64_t now_ms);

/*
 * A retry, dead or release mark the run could not write itself (the queue
 * is away): its lease is moved out of *lease, `why` copied; `at_ms` is the
 * retry's due time or the time of the mark. `sent`: it was sent and not
 * answered in time (SLUICE_ETIMEOUT), so a stale lease found later may
 * be this very mark, made late. Written in order after the marks before
 * it.
 */
sluice_err sl_marker_keep(sl_marker *m, sl_mark_kind kind, sl_lease *lease,
                          int64_t at_ms, const sl_failure *why,
                          bool counts_attempt, bool sent);

/* Hand the marks added so far to the thread. */
void sl_marker_flush(sl_marker *m);

/*
 * Since the last call: the marks not made (the record had changed hands,
 * or the batch failed: not done by this run) and their bytes. Returns
 * the first failure of a mark or a commit (SLUICE_OK: none), its message
 * in msg; the marks of a failed batch, and of every batch after it, stay
 * undone.
 */
sluice_err sl_marker_check(sl_marker *m, uint64_t *lost, uint64_t *lost_bytes,
                           char *msg, size_t size);

/* Dead marks kept (sl_marker_keep) that were not made, since the last
 * call. */
uint64_t sl_marker_lost_dead(sl_marker *m);

/*
 * The run could not reach the queue (err, one of the outage kind, with
 * its message): the marker probes it, with its backoff, until it answers
 * or the outage has lasted too long.
 */
void sl_marker_unreachable(sl_marker *m, sluice_err err, const char *msg);

/* Whether the queue is away, as the marker last found it: *since_wall
 * (sl_now_ms) when it went, and the failure that says so in msg. */
bool sl_marker_down(sl_marker *m, int64_t *since_wall, char *msg, size_t size);

/* Whether every mark added is written (or given up), nothing kept or
 * under way; *settled counts the thread's goes at the queue so far. */
bool sl_marker_idle(sl_marker *m, uint64_t *settled);

/* Hand over every mark and wait until they are committed. */
void sl_marker_wait(sl_marker *m);

/* Hand over and commit every mark, then stop the thread. NULL is fine.
 * While the queue is away, one more try at once; the marks it cannot
 * write then are given up (a failure, for sl_marker_check). */
void sl_marker_stop(sl_marker *m);
void sl_marker_free(sl_marker *m);

#endif /* SL_MARKER_H */
