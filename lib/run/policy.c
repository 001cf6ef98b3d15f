/*
 * The URL policy kept with the queue: stored as one setting, "private"
 * (every address allowed) or the allowed networks separated by spaces,
 * or "none"; read by runs and ingests, widened by ingest.
 */
#include "policy.h"

#include <string.h>

#define VALUE_MAX 16384 /* the longest stored value read */

void
sl_policy_free(sl_policy *p)
{
    for (size_t i = 0; i < p->n_nets; i++)
        sl_free(p->nets[i]);
    sl_free(p->nets);
    memset(p, 0, sizeof *p);
}

static bool
has_net(const sl_policy *p, const char *net)
{
    for (size_t i = 0; i < p->n_nets; i++)
        if (strcmp(p->nets[i], net) == 0)
            return true;
    return false;
}

static int
add_net(sl_policy *p, const char *net, size_t len)
{
    char **grown = sl_realloc(p->nets, (p->n_nets + 1) * sizeof *grown);
    if (!grown)
        return -1;
    p->nets = grown;
    if (!(p->nets[p->n_nets] = sl_strndup(net, len)))
        return -1;
    p->n_nets++;
    return 0;
}

int
sl_policy_add(sl_policy *p, bool allow_private, const char *const *nets,
              size_t n_nets, bool *changed)
{
    *changed = false;
    if (allow_private && !p->allow_private)
        *changed = p->allow_private = true;
    for (size_t i = 0; i < n_nets; i++) {
        if (has_net(p, nets[i]))
            continue;
        if (add_net(p, nets[i], strlen(nets[i])) != 0)
            return -1;
        *changed = true;
    }
    return 0;
}

sluice_err
sl_policy_load(sluice_queue *q, sl_policy *p, bool *stored, char *reason,
               size_t reason_size)
{
    memset(p, 0, sizeof *p);
    *stored = false;
    if (!sl_queue_has(q, SL_QUEUE_F_SLOTS))
        return SLUICE_OK;
    char *value = sl_malloc(VALUE_MAX);
    if (!value)
        return SLUICE_ENOMEM;
    sluice_err err =
        sl_queue_setting_get(q, SL_POLICY_SETTING, value, VALUE_MAX);
    if (err == SLUICE_ENOTFOUND) {
        sl_free(value);
        return SLUICE_OK;
    }
    if (err != SLUICE_OK) {
        sl_copy(reason, reason_size, sluice_queue_errmsg(q));
        sl_free(value);
        return err;
    }
    *stored = true;
    char *word = value;
    while (*word) {
        size_t len = strcspn(word, " ");
        if (len == 7 && memcmp(word, "private", 7) == 0) {
            p->allow_private = true;
        } else if (len == 4 && memcmp(word, "none", 4) == 0) {
            /* the default */
        } else if (len > 0 && add_net(p, word, len) != 0) {
            sl_free(value);
            sl_policy_free(p);
            return SLUICE_ENOMEM;
        }
        word += len;
        word += *word == ' ';
    }
    sl_free(value);
    /* A network stored that is none any more is a damaged value. */
    sl_guard g;
    char why[256];
    err = sl_policy_guard(p, &g, why, sizeof why);
    sl_guard_free(&g);
    if (err == SLUICE_EINVAL) {
        sl_fmt(reason, reason_size,
               "%s: the URL policy stored with the queue: %s", q->location,
               why);
        sl_policy_free(p);
        return SLUICE_EDB;
    }
    if (err != SLUICE_OK)
        sl_policy_free(p);
    return err;
}

sluice_err
sl_policy_store(sluice_queue *q, const sl_policy *p)
{
    if (!sl_queue_has(q, SL_QUEUE_F_SLOTS))
        return SLUICE_OK;
    sl_buf value;
    sl_buf_init(&value);
    int bad = 0;
    if (p->allow_private)
        bad = sl_buf_append(&value, "private", 7);
    for (size_t i = 0; i < p->n_nets && !bad; i++)
        bad = (value.len && sl_buf_putc(&value, ' ')) ||
              sl_buf_append(&value, p->nets[i], strlen(p->nets[i]));
    if (!bad && value.len == 0)
        bad = sl_buf_append(&value, "none", 4);
    if (bad) {
        sl_buf_free(&value);
        return sl_queue_fail(q, SLUICE_ENOMEM, "out of memory");
    }
    sluice_err err = sl_queue_setting_set(q, SL_POLICY_SETTING, value.data);
    sl_buf_free(&value);
    return err;
}

void
sl_policy_describe(const sl_policy *p, char *dst, size_t size)
{
    if (p->allow_private) {
        sl_copy(dst, size, "every address allowed (--allow-private)");
        return;
    }
    if (p->n_nets == 0) {
        sl_copy(dst, size, "private addresses refused (the default)");
        return;
    }
    sl_buf text;
    sl_buf_init(&text);
    int bad = sl_buf_printf(&text, "private addresses allowed in ");
    for (size_t i = 0; i < p->n_nets && !bad; i++)
        bad = sl_buf_printf(&text, "%s%s", i ? ", " : "", p->nets[i]);
    sl_copy(dst, size,
            bad ? "private addresses allowed in some networks" : text.data);
    sl_buf_free(&text);
}

sluice_err
sl_policy_guard(const sl_policy *p, sl_guard *g, char *reason,
                size_t reason_size)
{
    return sl_guard_init(g, p->allow_private, (const char *const *)p->nets,
                         p->n_nets, reason, reason_size);
}
