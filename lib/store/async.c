/*
 * The to-do and done lists, busy count and wake pipe both stores share
 * (async.h): a backend's worker makes submitted objects durable, and
 * the run loop reaps the results when the pipe wakes it.
 */
#define _GNU_SOURCE /* pipe2 */
#include "async.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

void
sl_object_list_free(sl_object *head, void (*forget)(sl_object *o))
{
    while (head) {
        sl_object *next = head->next;
        forget(head);
        sl_object_free(head);
        head = next;
    }
}

void
sl_async_init(sl_async *a)
{
    pthread_mutex_init(&a->lock, NULL);
    a->wake[0] = a->wake[1] = -1;
}

int
sl_async_open_pipe(sl_async *a)
{
    return pipe2(a->wake, O_NONBLOCK | O_CLOEXEC) == 0 ? 0 : errno;
}

void
sl_async_fini(sl_async *a, void (*forget)(sl_object *o))
{
    sl_object_list_free(a->todo_head, forget);
    sl_object_list_free(a->done_head, forget);
    a->todo_head = a->todo_tail = a->done_head = a->done_tail = NULL;
    for (int i = 0; i < 2; i++)
        if (a->wake[i] >= 0)
            close(a->wake[i]);
    pthread_mutex_destroy(&a->lock);
}

static void
wake_reaper(sl_async *a)
{
    if (write(a->wake[1], "x", 1) < 0) {
        /* the pipe is full: a wake-up is already pending */
    }
}

void
sl_async_post(sl_async *a, sl_object *head, sl_object *tail)
{
    sl_object_list_append(&a->done_head, &a->done_tail, head, tail);
    wake_reaper(a);
}

/* A result for o: its cookie, and its hash when stored. */
static void
result_of(const sl_object *o, sl_store_result *out)
{
    out->cookie = o->cookie;
    out->status = o->status;
    out->err = o->err;
    sl_copy(out->message, sizeof out->message, o->message);
    sl_copy(out->sha256_hex, sizeof out->sha256_hex,
            o->status == SL_STORED ? o->sha256_hex : "");
}

size_t
sl_async_reap(sl_async *a, sl_store_result *out, size_t max)
{
    char drain[64];
    while (read(a->wake[0], drain, sizeof drain) > 0)
        ;
    size_t n = 0;
    pthread_mutex_lock(&a->lock);
    while (n < max && a->done_head) {
        sl_object *o = a->done_head;
        a->done_head = o->next;
        if (!a->done_head)
            a->done_tail = NULL;
        a->busy--;
        result_of(o, &out[n]);
        sl_object_free(o);
        n++;
    }
    /* More left: make sure the caller is woken again. */
    if (a->done_head)
        wake_reaper(a);
    pthread_mutex_unlock(&a->lock);
    return n;
}

size_t
sl_async_busy(sl_async *a)
{
    pthread_mutex_lock(&a->lock);
    size_t n = a->busy - a->backing_off;
    pthread_mutex_unlock(&a->lock);
    return n;
}

void
sl_async_count_backing_off(sl_async *a, int delta)
{
    pthread_mutex_lock(&a->lock);
    a->backing_off += (size_t)delta;
    pthread_mutex_unlock(&a->lock);
}

void
sl_async_clear_backing_off(sl_async *a)
{
    pthread_mutex_lock(&a->lock);
    a->backing_off = 0;
    pthread_mutex_unlock(&a->lock);
}
