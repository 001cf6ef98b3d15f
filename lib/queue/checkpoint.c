/*
 * Background checkpoints (see checkpoint.h). The writer's wal hook asks
 * for a checkpoint once the WAL holds CHECKPOINT_PAGES; the thread runs a
 * PASSIVE one, which never blocks the writer. Should the thread fall far
 * behind (a WAL of WRITER_PAGES), the writer checkpoints itself, as
 * SQLite would have, so the WAL stays bounded.
 */
#include "checkpoint.h"

#include <pthread.h>
#include <stdbool.h>

#include "../util.h"

#define CHECKPOINT_PAGES 1000  /* SQLite's own default */
#define WRITER_PAGES     16000 /* 64 MB of 4 KiB pages */

struct sl_checkpointer {
    sqlite3 *db;  /* the writer's connection */
    sqlite3 *own; /* this thread's */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool wanted, stopping;
};

/* After each commit on the writer's connection. */
static int
on_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
    sl_checkpointer *c = arg;
    if (pages >= WRITER_PAGES) {
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL,
                                  NULL);
    } else if (pages >= CHECKPOINT_PAGES) {
        pthread_mutex_lock(&c->lock);
        if (!c->wanted) {
            c->wanted = true;
            pthread_cond_signal(&c->wake);
        }
        pthread_mutex_unlock(&c->lock);
    }
    return SQLITE_OK;
}

static void *
checkpoint_main(void *arg)
{
    sl_checkpointer *c = arg;
    sl_thread_name("sl-checkpoint");
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->wanted && !c->stopping)
            pthread_cond_wait(&c->wake, &c->lock);
        if (c->stopping)
            break;
        c->wanted = false;
        pthread_mutex_unlock(&c->lock);
        /* Busy (another checkpoint): the next commit asks again. */
        sqlite3_wal_checkpoint_v2(c->own, "main", SQLITE_CHECKPOINT_PASSIVE,
                                  NULL, NULL);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

sl_checkpointer *
sl_checkpointer_start(sqlite3 *db, const char *path)
{
    sl_checkpointer *c = sl_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->db = db;
    if (sqlite3_open_v2(path, &c->own,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK ||
        sqlite3_exec(c->own, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) !=
            SQLITE_OK) {
        sqlite3_close_v2(c->own);
        sl_free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->wake, NULL);
    if (pthread_create(&c->thread, NULL, checkpoint_main, c) != 0) {
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        sqlite3_close_v2(c->own);
        sl_free(c);
        return NULL;
    }
    sqlite3_wal_hook(db, on_commit, c);
    return c;
}

void
sl_checkpointer_stop(sl_checkpointer *c)
{
    if (!c)
        return;
    sqlite3_wal_autocheckpoint(c->db, CHECKPOINT_PAGES); /* the hook goes */
    pthread_mutex_lock(&c->lock);
    c->stopping = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    sqlite3_close_v2(c->own);
    sl_free(c);
}
