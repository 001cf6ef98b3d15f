/*
 * What the ingest of feeds (ingest.c) shares with the ingest of streams
 * (stream.c).
 */
#ifndef SL_SOURCE_INGEST_H
#define SL_SOURCE_INGEST_H

#include "../queue/queue.h"
#include "../run/guard.h"

/*
 * The URL policy of an ingest into `g`: the one stored with the queue
 * (unless opts->reset_policy) widened by the options'; stored when that
 * changes it, and said through opts->on_notice. On failure `why` says
 * what was wrong (SLUICE_EINVAL for a bad network).
 */
sluice_err sl_ingest_policy(sluice_queue *q, const sluice_ingest_opts *opts,
                            sl_guard *g, char *why, size_t why_size);

#endif /* SL_SOURCE_INGEST_H */
