/*
 * What client.c borrows from reply.c to read the replies of its other
 * calls (ListShards, GetShardIterator, PutRecords): a reply's JSON tree
 * and typed members of it. Inside lib/kinesis/ only.
 */
#ifndef SL_KINESIS_REPLY_H
#define SL_KINESIS_REPLY_H

#include <stddef.h>

#include <yajl/yajl_tree.h>

/* The reply `body` (`len` bytes, NUL-terminated, as replies are kept) as
 * a JSON object the caller frees with yajl_tree_free; NULL with `why`
 * when it is not JSON, holds a NUL byte, or is no object. */
yajl_val sl_kinesis_parse_tree(const char *body, size_t len, char *why,
                               size_t why_size);

/* Member `name` of `obj` when it has `type`, else NULL. */
yajl_val sl_kinesis_member(yajl_val obj, const char *name, yajl_type type);

#endif /* SL_KINESIS_REPLY_H */
