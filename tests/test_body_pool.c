/*
 * lib/store/body_pool.c: spare body buffers handed from the thread that
 * writes bodies out to the thread that fills them. A buffer comes back
 * whole, with its capacity; the spares never hold more than max_bytes;
 * and a giver and a taker on two threads lose or share no buffer (run
 * under ASan, a lost one is a leak and a shared one a use after free).
 */
#include <pthread.h>

#include "store/body_pool.h"
#include "test.h"
#include "util.h"

#define CAP (16 * 1024)

static char *
new_buffer(size_t cap, char fill)
{
    char *b = sl_malloc(cap);
    memset(b, fill, cap);
    return b;
}

TEST(an_empty_pool_has_nothing_to_take)
{
    sl_body_pool p;
    sl_body_pool_init(&p, 4 * CAP);
    size_t cap = 7;
    ASSERT_NULL(sl_body_pool_take(&p, &cap));
    ASSERT_EQ(cap, 7);
    sl_body_pool_clear(&p);
}

TEST(a_kept_buffer_comes_back_with_its_capacity)
{
    sl_body_pool p;
    sl_body_pool_init(&p, 4 * CAP);
    char *a = new_buffer(CAP, 'a'), *b = new_buffer(2 * CAP, 'b');
    sl_body_pool_keep(&p, a, CAP);
    sl_body_pool_keep(&p, b, 2 * CAP);
    ASSERT_EQ(atomic_load(&p.bytes), 3 * CAP);
    size_t cap = 0;
    ASSERT(sl_body_pool_take(&p, &cap) == b);
    ASSERT_EQ(cap, 2 * CAP);
    ASSERT(sl_body_pool_take(&p, &cap) == a);
    ASSERT_EQ(cap, CAP);
    ASSERT_NULL(sl_body_pool_take(&p, &cap));
    ASSERT_EQ(atomic_load(&p.bytes), 0);
    /* Past the pool's header, the bytes are as they were. */
    ASSERT_EQ(a[CAP - 1], 'a');
    ASSERT_EQ(b[2 * CAP - 1], 'b');
    sl_free(a);
    sl_free(b);
    sl_body_pool_clear(&p);
}

TEST(a_given_batch_reaches_the_taker_whole)
{
    sl_body_pool p;
    sl_body_pool_init(&p, 16 * CAP);
    char *given[5];
    for (int round = 0; round < 2; round++) {
        sl_body_batch batch = {0};
        for (int i = 0; i < 5; i++) {
            given[i] = new_buffer(CAP, 'g');
            sl_body_pool_collect(&p, &batch, given[i], CAP);
        }
        sl_body_pool_give(&p, &batch);
        ASSERT_NULL(batch.head); /* the batch is handed over */
        ASSERT_NULL(batch.tail);
        sl_body_pool_give(&p, &batch); /* an empty one is harmless */
        int seen[5] = {0};
        size_t cap;
        for (int i = 0; i < 5; i++) {
            char *b = sl_body_pool_take(&p, &cap);
            ASSERT_NOT_NULL(b);
            ASSERT_EQ(cap, CAP);
            for (int j = 0; j < 5; j++)
                seen[j] += b == given[j];
            sl_free(b);
        }
        for (int j = 0; j < 5; j++)
            ASSERT_EQ(seen[j], 1);
        ASSERT_NULL(sl_body_pool_take(&p, &cap));
    }
    sl_body_pool_clear(&p);
}

TEST(spares_never_hold_more_than_max_bytes)
{
    sl_body_pool p;
    sl_body_pool_init(&p, 3 * CAP);
    sl_body_batch batch = {0};
    for (int i = 0; i < 5; i++) /* the last two are freed */
        sl_body_pool_collect(&p, &batch, new_buffer(CAP, 'x'), CAP);
    ASSERT_EQ(atomic_load(&p.bytes), 3 * CAP);
    sl_body_pool_give(&p, &batch);
    sl_body_pool_keep(&p, new_buffer(CAP, 'y'), CAP); /* freed too */
    ASSERT_EQ(atomic_load(&p.bytes), 3 * CAP);
    size_t cap, n = 0;
    char *b;
    while ((b = sl_body_pool_take(&p, &cap)) != NULL) {
        sl_free(b);
        n++;
    }
    ASSERT_EQ(n, 3);
    /* A buffer too small to hold the pool's header is freed, and
     * nothing at all is no buffer. */
    sl_body_pool_keep(&p, new_buffer(8, 'z'), 8);
    sl_body_pool_keep(&p, NULL, 0);
    ASSERT_NULL(sl_body_pool_take(&p, &cap));
    ASSERT_EQ(atomic_load(&p.bytes), 0);
    sl_body_pool_clear(&p);
}

TEST(clear_frees_every_spare)
{
    sl_body_pool p;
    sl_body_pool_init(&p, 8 * CAP);
    sl_body_batch batch = {0};
    sl_body_pool_collect(&p, &batch, new_buffer(CAP, 'c'), CAP);
    sl_body_pool_give(&p, &batch);
    sl_body_pool_keep(&p, new_buffer(CAP, 'k'), CAP);
    sl_body_pool_clear(&p); /* under ASan, a spare left is a leak */
    ASSERT_EQ(atomic_load(&p.bytes), 0);
    size_t cap;
    ASSERT_NULL(sl_body_pool_take(&p, &cap));
}

/* Two threads: the taker fills buffers (new ones, or spares) and hands
 * them over; the giver checks each and gives them back in batches. */
#define ROUNDS 20000
#define BATCH  16

typedef struct {
    sl_body_pool pool;
    pthread_mutex_t lock;
    pthread_cond_t ready;
    char *handed[BATCH * 4];
    size_t n_handed;
    bool done;
    size_t checked;
    bool bad;
} relay;

static void *
giver(void *arg)
{
    relay *r = arg;
    sl_body_batch batch = {0};
    size_t in_batch = 0;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        while (r->n_handed == 0 && !r->done)
            pthread_cond_wait(&r->ready, &r->lock);
        if (r->n_handed == 0 && r->done) {
            pthread_mutex_unlock(&r->lock);
            break;
        }
        char *b = r->handed[--r->n_handed];
        pthread_cond_signal(&r->ready);
        pthread_mutex_unlock(&r->lock);
        /* The taker wrote the round's byte all through. */
        for (size_t i = 1; i < CAP; i++)
            if (b[i] != b[0])
                r->bad = true;
        r->checked++;
        sl_body_pool_collect(&r->pool, &batch, b, CAP);
        if (++in_batch == BATCH) {
            sl_body_pool_give(&r->pool, &batch);
            in_batch = 0;
        }
    }
    sl_body_pool_give(&r->pool, &batch);
    return NULL;
}

TEST(a_giver_and_a_taker_on_two_threads_lose_no_buffer)
{
    relay r = {.n_handed = 0};
    /* Room for every buffer there can be (handed over, in the giver's
     * batch, one in the taker's hand): none is freed for want of it. */
    sl_body_pool_init(&r.pool, 128 * CAP);
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.ready, NULL);
    pthread_t t;
    ASSERT_EQ(pthread_create(&t, NULL, giver, &r), 0);
    size_t reused = 0, made = 0;
    for (int i = 0; i < ROUNDS; i++) {
        size_t cap = 0;
        char *b = sl_body_pool_take(&r.pool, &cap);
        if (b) {
            ASSERT_EQ(cap, CAP);
            reused++;
        } else {
            b = sl_malloc(CAP);
            made++;
        }
        memset(b, (char)i, CAP);
        pthread_mutex_lock(&r.lock);
        while (r.n_handed == SL_ARRAY_LEN(r.handed))
            pthread_cond_wait(&r.ready, &r.lock);
        r.handed[r.n_handed++] = b;
        pthread_cond_signal(&r.ready);
        pthread_mutex_unlock(&r.lock);
    }
    pthread_mutex_lock(&r.lock);
    r.done = true;
    pthread_cond_signal(&r.ready);
    pthread_mutex_unlock(&r.lock);
    pthread_join(t, NULL);
    ASSERT(!r.bad);
    ASSERT_EQ(r.checked, ROUNDS);
    /* Most buffers were spares: the point of the pool. */
    ASSERT_GT(reused, ROUNDS / 2);
    /* Every buffer made is back in the pool, once. */
    ASSERT_EQ(atomic_load(&r.pool.bytes), made * CAP);
    size_t back = 0, cap;
    char *b;
    while ((b = sl_body_pool_take(&r.pool, &cap)) != NULL) {
        sl_free(b);
        back++;
    }
    ASSERT_EQ(back, made);
    sl_body_pool_clear(&r.pool);
    pthread_cond_destroy(&r.ready);
    pthread_mutex_destroy(&r.lock);
}
