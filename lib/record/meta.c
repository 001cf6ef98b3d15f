/*
 * A record's meta as object metadata fields (meta.h).
 */
#include "meta.h"

#include <string.h>

#include <yajl/yajl_tree.h>

#include "../json.h"
#include "../util.h"

/* The bytes a value takes as sent: printable ASCII one, others three. */
static size_t
sent_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += sl_meta_byte_kept(*p) ? 1 : 3;
    return n;
}

static void
map_name(char *dst, size_t size, const char *src)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)src;
         *p && n + 1 < size; p++) {
        unsigned char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            c = '-';
        dst[n++] = (char)c;
    }
    dst[n] = '\0';
}

sluice_err
sl_meta_fields(const char *meta, sl_meta_field_fn *fn, void *ctx,
               char *reason, size_t reason_size)
{
    if (!meta)
        return SLUICE_OK;
    char err[128] = "";
    yajl_val tree = yajl_tree_parse(meta, err, sizeof err);
    if (!tree || !YAJL_IS_OBJECT(tree)) {
        sl_fmt(reason, reason_size, "meta: not a JSON object");
        yajl_tree_free(tree);
        return SLUICE_EPARSE;
    }
    sluice_err rc = SLUICE_OK;
    size_t total = 0, n = tree->u.object.len;
    yajl_gen g = NULL;
    char name[SL_META_MAX + 1];
    for (size_t i = 0; i < n && rc == SLUICE_OK; i++) {
        const char *key = tree->u.object.keys[i];
        yajl_val v = tree->u.object.values[i];
        map_name(name, sizeof name, key);
        if (!*name || strcmp(name, SL_META_SOURCE_URL) == 0 ||
            strcmp(name, SL_META_ORIGIN_ETAG) == 0) {
            sl_fmt(reason, reason_size,
                   "meta: member \"%.60s\" would be metadata \"%s\", which "
                   "sluice sets itself",
                   key, name);
            rc = SLUICE_EPARSE;
            break;
        }
        for (size_t k = 0; k < i; k++) {
            char other[SL_META_MAX + 1];
            map_name(other, sizeof other, tree->u.object.keys[k]);
            if (strcmp(other, name) == 0) {
                sl_fmt(reason, reason_size,
                       "meta: members \"%.60s\" and \"%.60s\" are both "
                       "metadata \"%s\"",
                       tree->u.object.keys[k], key, name);
                rc = SLUICE_EPARSE;
                break;
            }
        }
        if (rc != SLUICE_OK)
            break;
        const char *value;
        if (YAJL_IS_STRING(v)) {
            value = YAJL_GET_STRING(v);
        } else {
            if (!g && !(g = sl_json_gen_new())) {
                sl_fmt(reason, reason_size, "out of memory");
                rc = SLUICE_ENOMEM;
                break;
            }
            yajl_gen_reset(g, NULL);
            yajl_gen_clear(g);
            sl_json_gen_tree(g, v);
            value = sl_json_gen_text(g, NULL);
        }
        total += strlen(name) + sent_len(value);
        if (total > SL_META_MAX) {
            sl_fmt(reason, reason_size,
                   "meta: over %d bytes as object metadata (S3's limit), "
                   "at member \"%.60s\"",
                   SL_META_MAX, key);
            rc = SLUICE_EPARSE;
            break;
        }
        if (fn && fn(ctx, name, value) != 0)
            break;
    }
    if (g)
        yajl_gen_free(g);
    yajl_tree_free(tree);
    return rc;
}
