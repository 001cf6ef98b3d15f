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
 */
#ifndef SL_MARKER_H
#define SL_MARKER_H

#include <stdint.h>

#include "../queue/queue.h"

typedef struct sl_marker sl_marker;

sluice_err sl_marker_start(sluice_queue *q, sl_marker **out);

/* A record whose object is durable: its lease is moved out of *lease
 * (cleared), what was stored is copied. Held until sl_marker_flush.
 * SLUICE_ENOMEM, lease untouched: mark it done some other way. */
sluice_err sl_marker_add(sl_marker *m, sl_lease *lease,
                         const sl_object_info *info, int64_t now_ms);

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

/* Hand over every mark and wait until they are committed. */
void sl_marker_wait(sl_marker *m);

/* Hand over and commit every mark, then stop the thread. NULL is fine. */
void sl_marker_stop(sl_marker *m);
void sl_marker_free(sl_marker *m);

#endif /* SL_MARKER_H */
