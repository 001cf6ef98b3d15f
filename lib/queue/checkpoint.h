/*
 * Background checkpoints for a WAL database. SQLite checkpoints on the
 * connection that commits, and a checkpoint waits for two fsyncs: on a
 * busy disk, hundreds of milliseconds in which the fetch loop would
 * start nothing. With a checkpointer, commits only ask for one, and a
 * thread of its own, on a connection of its own, does it.
 */
#ifndef SL_CHECKPOINT_H
#define SL_CHECKPOINT_H

#include <sqlite3.h>

typedef struct sl_checkpointer sl_checkpointer;

/* Take over the checkpoints of `db`, a connection to the file at `path`
 * in WAL mode. NULL when that cannot be done: `db` then checkpoints as
 * SQLite does by default. */
sl_checkpointer *sl_checkpointer_start(sqlite3 *db, const char *path);

/* Stop the thread (after the checkpoint it is doing) and give `db` its
 * own checkpoints back. NULL is fine. */
void sl_checkpointer_stop(sl_checkpointer *c);

#endif /* SL_CHECKPOINT_H */
