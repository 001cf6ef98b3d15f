/*
 * The Redis queue's Lua scripts (queue_redis.h): every change that
 * touches more than one key is one script, which Redis runs atomically.
 * Each script gets one key, the queue's meta hash, and finds the others
 * from its name: they share its prefix and hash tag, so they live in one
 * cluster slot. docs/queue.md lists the keys and what each script does.
 */
#include "queue_redis.h"

/*
 * Packs (docs/queue.md, "Packs"): a first ingest into an empty queue
 * writes its new records as packs, the hash `packs` from a pack's first
 * RID to its records, rather than as a hash a record and four index
 * entries. Records above meta's `tail` are in packs (no `tail`: none
 * are); unpack_next() turns the lowest pack into records as an upsert
 * would have made them, in the same feed order; unpack_next(n, took)
 * instead hands its first n records to took() to be leased as they are
 * made (no pending entries to add and remove); the rest of that pack
 * is read later from meta's `pack` (its key) and `pack_at` (where its
 * next record begins). The lease takes from packs past the pending
 * records, or unpacks for origins to skip; the list's pages and `get`
 * read them where they are; every other script that looks a record up
 * by id or by RID calls unpack_all() first (the client has unpacked already, a
 * few packs a call, so that is usually nothing). A pack (schema 4) is
 * four zero bytes, then id, url, key, meta and origin a record, each a
 * 2-byte little-endian length and the text; the record's fingerprint is
 * made as it is unpacked, as the client makes it (queue_redis.c). A
 * pack of schema 2 or 3 begins with its first record (an id's 4-byte
 * length is not 0), each field behind a 4-byte length, and the
 * fingerprint the sixth. "q:RID" beside a pack: its records' queued_at.
 */
#define PACKS                                                                  \
    "local function bulk(cmd, key, list)\n"                                    \
    "  for c = 1, #list, 4000 do\n"                                            \
    "    redis.call(cmd, key, unpack(list, c, math.min(#list, c + 3999)))\n"   \
    "  end\n"                                                                  \
    "end\n"                                                                    \
    "local PACK3, PACK4 = '<I4c0I4c0I4c0I4c0I4c0I4c0', '<Hc0Hc0Hc0Hc0Hc0'\n"  \
    "-- where a pack's first record begins, and whether it is of schema 4\n"\
    "local function pack_start(blob)\n"                                       \
    "  if string.sub(blob, 1, 4) == '\\0\\0\\0\\0' then return 5, true end\n"\
    "  return 1, false\n"                                                     \
    "end\n"                                                                   \
    "-- the record at pos: id url key meta origin, its fingerprint as the\n"  \
    "-- pack has it (false: schema 4 has none), and where the next begins\n"  \
    "local function pack_rec(v4, blob, pos)\n"                                \
    "  if not v4 then return struct.unpack(PACK3, blob, pos) end\n"           \
    "  local id, url, key, meta, origin, nxt = struct.unpack(PACK4, blob,\n"  \
    "    pos)\n"                                                              \
    "  return id, url, key, meta, origin, false, nxt\n"                       \
    "end\n"                                                                   \
    "-- sl_rq_fingerprint's: 96 bits of SHA-1 of url, key and meta\n"        \
    "local function fingerprint(url, key, meta)\n"                            \
    "  return string.sub(redis.sha1hex(url .. '\\0' .. key ..\n"              \
    "    (meta ~= '' and '\\1' .. meta or '\\2')), 1, 24)\n"                 \
    "end\n"                                                                   \
    "-- a record's origin '' is its pack's first record's (schema 3)\n"       \
    "local function pack_origin(v4, blob, start)\n"                          \
    "  local _, _, _, _, o = pack_rec(v4, blob, start)\n"                     \
    "  return o\n"                                                            \
    "end\n"                                                                   \
    "-- a new record's hash; its place in pending and its origin's index\n"\
    "-- into the lists pend and per[origin], for bulk commands\n"          \
    "local function new_pending(rid, id, url, key, meta, origin, now, pend,\n"\
    "    per)\n"                                                               \
    "  if meta == '' then\n"                                                   \
    "    redis.call('HSET', R(rid), 'id', id, 'url', url, 'key', key,\n"       \
    "      'origin', origin, 'state', 0, 'queued_at', now)\n"                  \
    "  else\n"                                                                 \
    "    redis.call('HSET', R(rid), 'id', id, 'url', url, 'key', key,\n"       \
    "      'origin', origin, 'state', 0, 'queued_at', now, 'meta', meta)\n"    \
    "  end\n"                                                                  \
    "  pend[#pend + 1] = rid\n"                                                \
    "  pend[#pend + 1] = rid\n"                                                \
    "  local list = per[origin]\n"                                             \
    "  if not list then list = {}; per[origin] = list end\n"                   \
    "  list[#list + 1] = rid\n"                                                \
    "  list[#list + 1] = rid\n"                                                \
    "end\n"                                                                    \
    "local function unpack_next(direct, took_one)\n"                           \
    "  local m = redis.call('HMGET', KEYS[1], 'tail', 'pack', 'pack_at')\n"    \
    "  if not m[1] then return false end\n"                                    \
    "  local rid = tonumber(m[1])\n"                                           \
    "  local first = m[2] or rid + 1\n"                                        \
    "  local p = redis.call('HMGET', K('packs'), first, 'q:' .. first)\n"      \
    "  local blob, now = p[1], p[2]\n"                                         \
    "  if not blob then error('sluice: pack ' .. first .. ' is missing') end\n"\
    "  local start, v4 = pack_start(blob)\n"                                  \
    "  local pos = math.max(tonumber(m[3] or 1), start)\n"                    \
    "  local took, ids, pend, per, out = 0, {}, {}, {}, {}\n"                  \
    "  local po = pack_origin(v4, blob, start)\n"                            \
    "  while pos <= #blob and not (direct and took >= direct) do\n"            \
    "    local at, id, url, key, meta, origin, fp = pos\n"                     \
    "    id, url, key, meta, origin, fp, pos = pack_rec(v4, blob, pos)\n"      \
    "    fp = fp or fingerprint(url, key, meta)\n"                            \
    "    if origin == '' then origin = po end\n"                              \
    "    rid = rid + 1\n"                                                      \
    "    local srid = tostring(rid)\n"                                         \
    "    ids[#ids + 1] = id\n"                                                 \
    "    ids[#ids + 1] = srid .. ':' .. fp\n"                                  \
    "    out[origin] = (out[origin] or 0) + 1\n"                               \
    "    if direct then\n"                                                     \
    "      took = took + 1\n"                                                  \
    "      -- the client reads a record as schema 4 holds it\n"              \
    "      took_one(srid, id, url, key, meta, origin, now, v4 and\n"           \
    "        string.sub(blob, at, pos - 1) or struct.pack(PACK4, #id, id,\n"   \
    "        #url, url, #key, key, #meta, meta, #origin, origin))\n"          \
    "    else\n"                                                               \
    "      new_pending(srid, id, url, key, meta, origin, now, pend, per)\n"    \
    "    end\n"                                                                \
    "  end\n"                                                                  \
    "  bulk('HSET', K('ids'), ids)\n"                                          \
    "  bulk('ZADD', K('pending'), pend)\n"                                     \
    "  for origin, list in pairs(per) do\n"                                    \
    "    bulk('ZADD', K('po:' .. origin), list)\n"                             \
    "    redis.call('SADD', K('origins'), origin)\n"                           \
    "  end\n"                                                                  \
    "  for origin, k in pairs(out) do\n"                                       \
    "    if redis.call('HINCRBY', K('packed'), origin, -k) <= 0 then\n"        \
    "      redis.call('HDEL', K('packed'), origin)\n"                          \
    "    end\n"                                                                \
    "  end\n"                                                                  \
    "  if pos <= #blob then\n"                                                 \
    "    redis.call('HSET', KEYS[1], 'tail', rid, 'pack', first,\n"           \
    "      'pack_at', pos)\n"                                                 \
    "  else\n"                                                                 \
    "    redis.call('HDEL', K('packs'), first, 'q:' .. first)\n"               \
    "    redis.call('HDEL', KEYS[1], 'pack', 'pack_at')\n"                     \
    "    if rid >= tonumber(redis.call('HGET', KEYS[1], 'rid')) then\n"        \
    "      redis.call('HDEL', KEYS[1], 'tail')\n"                              \
    "    else\n"                                                               \
    "      redis.call('HSET', KEYS[1], 'tail', rid)\n"                         \
    "    end\n"                                                                \
    "  end\n"                                                                  \
    "  if direct then return took end\n"                                       \
    "  return true\n"                                                          \
    "end\n"                                                                    \
    "local function unpack_all()\n"                                            \
    "  while unpack_next() do end\n"                                           \
    "end\n"

/* Helpers every script begins with. A record's state moves between the
 * indexes (pending, per-origin pending, inflight, retry, dead) only
 * through move(), which also keeps the per-state counts. */
#define PRELUDE                                                                \
    "local B = string.sub(KEYS[1], 1, -5)\n"                                   \
    "local function K(n) return B .. n end\n"                                  \
    "local function R(rid) return B .. 'r:' .. rid end\n"                      \
    "local F = {'id', 'url', 'key', 'meta', 'origin', 'state', 'attempts',\n"  \
    "  'throttles', 'next_at', 'error_class', 'message', 'http_status',\n"     \
    "  'size', 'sha256', 'ctype', 'etag', 'finished_at'}\n"                    \
    "local function pad(rid)\n"                                                \
    "  return string.format('%016d', tonumber(rid))\n"                         \
    "end\n"                                                                    \
    /* the per-state counts; a script of many records sets DC = {} and  \
     * calls flush() at its end: one HINCRBY a state, not two a record */ \
    "local DC\n"                                                               \
    "local function cnt(st, d)\n"                                              \
    "  if DC then DC[st] = (DC[st] or 0) + d\n"                                \
    "  else redis.call('HINCRBY', K('counts'), 's' .. st, d) end\n"            \
    "end\n"                                                                    \
    "local function flush()\n"                                                 \
    "  for st, d in pairs(DC) do\n"                                            \
    "    if d ~= 0 then redis.call('HINCRBY', K('counts'), 's' .. st, d) end\n"\
    "  end\n"                                                                  \
    "  DC = nil\n"                                                             \
    "end\n"                                                                    \
    "local function unindex(rid, st, origin)\n"                                \
    "  if st == 0 then\n"                                                      \
    "    redis.call('ZREM', K('pending'), rid)\n"                              \
    "    local po = K('po:' .. origin)\n"                                      \
    "    redis.call('ZREM', po, rid)\n"                                        \
    "    if redis.call('ZCARD', po) == 0 then\n"                               \
    "      redis.call('SREM', K('origins'), origin)\n"                         \
    "    end\n"                                                                \
    "  elseif st == 1 then redis.call('ZREM', K('inflight'), rid)\n"           \
    "  elseif st == 2 then redis.call('ZREM', K('retry'), rid)\n"              \
    "  elseif st == 4 then redis.call('ZREM', K('dead'), pad(rid)) end\n"      \
    "end\n"                                                                    \
    "local function index(rid, st, origin, score)\n"                           \
    "  if st == 0 then\n"                                                      \
    "    redis.call('ZADD', K('pending'), rid, rid)\n"                         \
    "    redis.call('ZADD', K('po:' .. origin), rid, rid)\n"                   \
    "    redis.call('SADD', K('origins'), origin)\n"                           \
    "  elseif st == 1 then redis.call('ZADD', K('inflight'), score, rid)\n"    \
    "  elseif st == 2 then redis.call('ZADD', K('retry'), score, rid)\n"       \
    "  elseif st == 4 then\n"                                                  \
    "    redis.call('ZADD', K('dead'), score, pad(rid))\n"                     \
    "  end\n"                                                                  \
    "end\n"                                                                    \
    "local function move(rid, from, to, origin, score)\n"                      \
    "  unindex(rid, from, origin)\n"                                           \
    "  index(rid, to, origin, score)\n"                                        \
    "  if from ~= to then cnt(from, -1); cnt(to, 1) end\n"                     \
    "end\n"                                                                    \
    "local function held(rid, token)\n"                                        \
    "  local r = redis.call('HMGET', R(rid), 'state', 'lease', 'origin',\n"    \
    "    'error_class')\n"                                                     \
    "  if r[1] ~= '1' or r[2] ~= token then return nil end\n"                  \
    "  return r\n"                                                             \
    "end\n"                                                                    \
    "local function rid_of(id)\n"                                              \
    "  local v = redis.call('HGET', K('ids'), id)\n"                           \
    "  return v and string.match(v, '^(%d+)')\n"                               \
    "end\n"                                                                    \
    "local function opt(rid, field, v)\n"                                      \
    "  if v == '' then redis.call('HDEL', R(rid), field)\n"                    \
    "  else redis.call('HSET', R(rid), field, v) end\n"                        \
    "end\n" \
    PACKS

/* ARGV: the schema version, '1' if it may create the queue. Returns
 * {'created'|'ok', version}, {'none'} or {'foreign', what}. */
static const char init_lua[] =
    "local t = redis.call('TYPE', KEYS[1])['ok']\n"
    "if t == 'none' then\n"
    "  if ARGV[2] ~= '1' then return {'none'} end\n"
    "  redis.call('HSET', KEYS[1], 'app', 'sluice', 'version', ARGV[1],\n"
    "    'rid', 0)\n"
    "  return {'created', ARGV[1]}\n"
    "end\n"
    "if t ~= 'hash' then return {'foreign', t} end\n"
    "local m = redis.call('HMGET', KEYS[1], 'app', 'version')\n"
    "if m[1] ~= 'sluice' then return {'foreign', 'hash'} end\n"
    "return {'ok', m[2] or ''}\n";

/* ARGV: now, then id, url, key, meta ('' none), origin and fingerprint
 * a record. Returns one letter a record: a(dded), u(pdated), n(o
 * change). Ingest runs it only for records that exist and changed, or
 * that its batch names twice (queue_redis_upsert.c writes new ones with
 * plain commands), and for a whole batch after lost races. The hash
 * `ids` maps an id to "RID:FP",
 * FP a digest of its url, key and meta (queue_redis.c), looked up a few
 * thousand at a time, so a record ingested again unchanged costs no
 * other command; new records reach the indexes, the id hash and the
 * counts in a few bulk commands (flushed early when a record this call
 * met comes again). */
#define UPSERT_BODY                                                            \
    "local now = ARGV[1]\n"                                                    \
    "local ids = K('ids')\n"                                                   \
    "local n = (#ARGV - 1) / 6\n"                                              \
    "unpack_all()\n"                                                           \
    "local rids = {}\n"                                                        \
    "for c = 0, n - 1, 4000 do\n"                                              \
    "  local keys = {}\n"                                                      \
    "  for k = c, math.min(n, c + 4000) - 1 do\n"                              \
    "    keys[#keys + 1] = ARGV[2 + 6 * k]\n"                                  \
    "  end\n"                                                                  \
    "  local got = redis.call('HMGET', ids, unpack(keys))\n"                   \
    "  for k = 1, #keys do rids[c + k] = got[k] or false end\n"                \
    "end\n"                                                                    \
    "local top = tonumber(redis.call('HGET', KEYS[1], 'rid') or '0')\n"        \
    "local seen, seen_fp = {}, {}\n"                                           \
    "local new_ids, pend, per, added = {}, {}, {}, 0\n"                        \
    "local function flush()\n"                                                 \
    "  if added == 0 then return end\n"                                        \
    "  bulk('HSET', ids, new_ids)\n"                                           \
    "  bulk('ZADD', K('pending'), pend)\n"                                     \
    "  for origin, list in pairs(per) do\n"                                    \
    "    bulk('ZADD', K('po:' .. origin), list)\n"                             \
    "    redis.call('SADD', K('origins'), origin)\n"                           \
    "  end\n"                                                                  \
    "  redis.call('HSET', KEYS[1], 'rid', top)\n"                              \
    "  cnt(0, added)\n"                                                        \
    "  new_ids, pend, per, added = {}, {}, {}, 0\n"                            \
    "end\n"                                                                    \
    "local out = {}\n"                                                         \
    "for k = 1, n do\n"                                                        \
    "  local i = 2 + 6 * (k - 1)\n"                                            \
    "  local id, url, key = ARGV[i], ARGV[i + 1], ARGV[i + 2]\n"               \
    "  local meta, origin, fp = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]\n"       \
    "  local rid, old_fp\n"                                                    \
    "  if seen[id] then\n"                                                     \
    "    -- met before in this call: what it made of it counts\n"              \
    "    rid, old_fp = seen[id], seen_fp[id]\n"                                \
    "    flush()\n"                                                            \
    "  elseif rids[k] then\n"                                                  \
    "    rid, old_fp = string.match(rids[k], '^(%d+):(.*)$')\n"                \
    "  end\n"                                                                  \
    "  if rid and old_fp == fp then\n"                                         \
    "    out[#out + 1] = 'n'\n"                                                \
    "  elseif not rid then\n"                                                  \
    "    top = top + 1\n"                                                      \
    "    rid = top\n"                                                          \
    "    seen[id], seen_fp[id] = rid, fp\n"                                    \
    "    new_ids[#new_ids + 1] = id\n"                                         \
    "    new_ids[#new_ids + 1] = rid .. ':' .. fp\n"                           \
    "    new_pending(rid, id, url, key, meta, origin, now, pend, per)\n"       \
    "    added = added + 1\n"                                                  \
    "    out[#out + 1] = 'a'\n"                                                \
    "  else\n"                                                                 \
    "    redis.call('HSET', ids, id, rid .. ':' .. fp)\n"                      \
    "    seen[id], seen_fp[id] = rid, fp\n"                                    \
    "    local r = redis.call('HMGET', R(rid), 'url', 'key', 'meta',\n"        \
    "      'origin', 'state')\n"                                               \
    "    if r[1] ~= url or r[2] ~= key then\n"                                 \
    "      local st = tonumber(r[5])\n"                                        \
    "      unindex(rid, st, r[4])\n"                                           \
    "      redis.call('HDEL', R(rid), 'next_at', 'attempts', 'throttles',\n"   \
    "        'first_at', 'error_class', 'message', 'http_status')\n"           \
    "      redis.call('HINCRBY', R(rid), 'lease', 1)\n"                        \
    "      redis.call('HSET', R(rid), 'url', url, 'key', key, 'origin',\n"     \
    "        origin, 'state', 0, 'queued_at', now)\n"                          \
    "      opt(rid, 'meta', meta)\n"                                           \
    "      index(rid, 0, origin, 0)\n"                                         \
    "      if st ~= 0 then cnt(st, -1); cnt(0, 1) end\n"                       \
    "      out[#out + 1] = 'u'\n"                                              \
    "    elseif (r[3] or '') ~= meta then\n"                                   \
    "      opt(rid, 'meta', meta)\n"                                           \
    "      out[#out + 1] = 'u'\n"                                              \
    "    else\n"                                                               \
    "      out[#out + 1] = 'n'\n"                                              \
    "    end\n"                                                                \
    "  end\n"                                                                  \
    "end\n"                                                                    \
    "flush()\n"                                                                \
    "local letters = table.concat(out)\n"

static const char upsert_lua[] = PRELUDE UPSERT_BODY "return letters\n";

/* ARGV: now, the leases' expiry, max, n_skip, the origins to skip.
 * Returns {A, P}: in A ten fields a lease: rid, token, id, url, key,
 * origin, meta, attempts, first attempt, the state it came from; in P,
 * three a lease taken straight from a pack: rid, the record's bytes
 * there, and its origin (the bytes may say '', their pack's first's).
 * Due retries and expired leases first (earliest first), then
 * pending in feed order, then the packs'. */
static const char lease_lua[] = PRELUDE
    "DC = {}\n"
    "local now, exp, max = ARGV[1], ARGV[2], tonumber(ARGV[3])\n"
    "local nskip = tonumber(ARGV[4])\n"
    "local skip = {}\n"
    "for i = 1, nskip do skip[ARGV[4 + i]] = true end\n"
    "local out, n = {}, 0\n"
    /* The indexes change once a call, after every read: the members
     * each set loses, the origins whose pending set may be empty now,
     * the new in-flight entries (move(), made variadic). */
    "local RM, PO, ADD = {}, {}, {}\n"
    "local function lose(key, rid)\n"
    "  RM[key] = RM[key] or {}\n"
    "  table.insert(RM[key], rid)\n"
    "end\n"
    "local function chunks(cmd, key, l)\n"
    "  for i = 1, #l, 1000 do\n"
    "    redis.call(cmd, key, unpack(l, i, math.min(i + 999, #l)))\n"
    "  end\n"
    "end\n"
    "local function finish()\n"
    "  for key, l in pairs(RM) do chunks('ZREM', key, l) end\n"
    "  for o in pairs(PO) do\n"
    "    if redis.call('ZCARD', K('po:' .. o)) == 0 then\n"
    "      redis.call('SREM', K('origins'), o)\n"
    "    end\n"
    "  end\n"
    "  chunks('ZADD', K('inflight'), ADD)\n"
    "  flush()\n"
    "end\n"
    "local function take(rid, st)\n"
    "  local r = redis.call('HMGET', R(rid), 'id', 'url', 'key', 'origin',\n"
    "    'meta', 'attempts', 'first_at', 'lease')\n"
    "  local lease = (tonumber(r[8]) or 0) + 1\n"
    "  local first = r[7] or now\n"
    "  redis.call('HSET', R(rid), 'state', 1, 'next_at', exp, 'lease',\n"
    "    lease, 'first_at', first)\n"
    "  if st == 0 then\n"
    "    lose(K('pending'), rid)\n"
    "    lose(K('po:' .. r[4]), rid)\n"
    "    PO[r[4]] = true\n"
    "  elseif st == 1 then lose(K('inflight'), rid)\n"
    "  else lose(K('retry'), rid) end\n"
    "  ADD[#ADD + 1] = exp\n"
    "  ADD[#ADD + 1] = rid\n"
    "  if st ~= 1 then cnt(st, -1); cnt(1, 1) end\n"
    "  n = n + 1\n"
    "  local o = {tostring(rid), tostring(lease), r[1], r[2], r[3], r[4],\n"
    "    r[5] or '', r[6] or '0', first, tostring(st)}\n"
    "  for _, v in ipairs(o) do out[#out + 1] = v end\n"
    "end\n"
    "local function due(zkey, st)\n"
    "  local got, off = {}, 0\n"
    "  while #got < max do\n"
    "    local page = redis.call('ZRANGEBYSCORE', zkey, '-inf', now,\n"
    "      'WITHSCORES', 'LIMIT', off, 64)\n"
    "    if #page == 0 then break end\n"
    "    for i = 1, #page, 2 do\n"
    "      if #got < max and (nskip == 0 or\n"
    "          not skip[redis.call('HGET', R(page[i]), 'origin')]) then\n"
    "        got[#got + 1] = {page[i], tonumber(page[i + 1]), st}\n"
    "      end\n"
    "    end\n"
    "    off = off + 64\n"
    "  end\n"
    "  return got\n"
    "end\n"
    "local a, b = due(K('retry'), 2), due(K('inflight'), 1)\n"
    "local i, j = 1, 1\n"
    "while n < max and (i <= #a or j <= #b) do\n"
    "  local c\n"
    "  if j > #b or (i <= #a and a[i][2] <= b[j][2]) then\n"
    "    c = a[i]; i = i + 1\n"
    "  else\n"
    "    c = b[j]; j = j + 1\n"
    "  end\n"
    "  take(c[1], c[3])\n"
    "end\n"
    "local rem = max - n\n"
    "if rem <= 0 then finish() return {out, {}} end\n"
    /* Packed records come after every pending one: unpack while
     * pending has too few; with origins to skip, while the choice falls
     * short, up to SL_RQ_UNPACK_PACKS packs a call. */
    "local function choose()\n"
    "local rids = {}\n"
    "if nskip == 0 then\n"
    "  rids = redis.call('ZRANGE', K('pending'), 0, rem - 1)\n"
    "elseif redis.call('SCARD', K('origins')) <= 64 + nskip then\n"
    /* Few origins: each one's first records, the earliest of them. */
    "  local all = {}\n"
    "  for _, o in ipairs(redis.call('SMEMBERS', K('origins'))) do\n"
    "    if not skip[o] then\n"
    "      for _, rid in ipairs(redis.call('ZRANGE', K('po:' .. o), 0,\n"
    "          rem - 1)) do\n"
    "        all[#all + 1] = tonumber(rid)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  table.sort(all)\n"
    "  for k = 1, math.min(rem, #all) do rids[k] = all[k] end\n"
    "else\n"
    "  local off = 0\n"
    "  while #rids < rem do\n"
    "    local page = redis.call('ZRANGE', K('pending'), off, off + 255)\n"
    "    if #page == 0 then break end\n"
    "    for _, rid in ipairs(page) do\n"
    "      if #rids < rem and\n"
    "          not skip[redis.call('HGET', R(rid), 'origin')] then\n"
    "        rids[#rids + 1] = rid\n"
    "      end\n"
    "    end\n"
    "    off = off + 256\n"
    "  end\n"
    "end\n"
    "return rids\n"
    "end\n"
    /* the packs hold records of an origin not skipped (`packed`
     * counts them by origin; past 64 origins, assume so) */
    "local function worth()\n"
    "  if redis.call('HLEN', K('packed')) > 64 + nskip then return true end\n"
    "  for _, o in ipairs(redis.call('HKEYS', K('packed'))) do\n"
    "    if not skip[o] then return true end\n"
    "  end\n"
    "  return false\n"
    "end\n"
    "local rids, packs = choose(), 0\n"
    "while nskip > 0 and #rids < rem and packs < " SL_STR(SL_RQ_UNPACK_PACKS)
    " and\n"
    "    worth() and\n"
    "    unpack_next() do\n"
    "  packs = packs + 1\n"
    "  rids = choose()\n"
    "end\n"
    "for _, rid in ipairs(rids) do take(rid, 0) end\n"
    /* Past the pending records, with no origin to skip: straight from
     * the packs, in feed order. Such a lease is answered as its RID and
     * its record as the pack has it (token 1, no attempt yet, first
     * leased now): two fields, not ten. */
    "local P = {}\n"
    "local function took(rid, id, url, key, meta, origin, queued, rec)\n"
    "  if meta == '' then\n"
    "    redis.call('HSET', R(rid), 'id', id, 'url', url, 'key', key,\n"
    "      'origin', origin, 'state', '1', 'queued_at', queued, 'next_at',\n"
    "      exp, 'lease', '1', 'first_at', now)\n"
    "  else\n"
    "    redis.call('HSET', R(rid), 'id', id, 'url', url, 'key', key,\n"
    "      'origin', origin, 'state', '1', 'queued_at', queued, 'next_at',\n"
    "      exp, 'lease', '1', 'first_at', now, 'meta', meta)\n"
    "  end\n"
    "  ADD[#ADD + 1] = exp\n"
    "  ADD[#ADD + 1] = rid\n"
    "  P[#P + 1] = rid\n"
    "  P[#P + 1] = rec\n"
    "  P[#P + 1] = origin\n"
    "end\n"
    "local before = n\n"
    "while nskip == 0 and n < max do\n"
    "  local k = unpack_next(max - n, took)\n"
    "  if not k or k == 0 then break end\n"
    "  n = n + k\n"
    "end\n"
    "cnt(0, before - n)\n"
    "cnt(1, n - before)\n"
    "finish()\n"
    "return {out, P}\n";

/* ARGV: seven a mark, for one mark or many (the marker's batches): rid,
 * token, now, size, sha256, content type, etag. Returns an answer a
 * mark, in order: 1, done; 0, the lease is no longer held. A done
 * record leaves no index (move() from in flight to done is a ZREM, made
 * once for them all); the fields of a failure, or of an earlier
 * object, go only where the record has them. */
static const char complete_lua[] = PRELUDE
    "DC = {}\n"
    "local out, gone = {}, {}\n"
    "local OPT = {'sha256', 'ctype', 'etag'}\n"
    "local OLD = {'error_class', 'message', 'http_status', 'sha256',\n"
    "  'ctype', 'etag'}\n"
    "for i = 1, #ARGV, 7 do\n"
    "  local rid = ARGV[i]\n"
    "  local r = redis.call('HMGET', R(rid), 'state', 'lease',\n"
    "    'error_class', 'message', 'http_status', 'sha256', 'ctype', 'etag')\n"
    "  if r[1] ~= '1' or r[2] ~= ARGV[i + 1] then out[#out + 1] = 0 else\n"
    "    local sha, ctype, etag = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]\n"
    "    if sha ~= '' and ctype ~= '' and etag ~= '' then\n"
    "      redis.call('HSET', R(rid), 'state', '3', 'next_at', '0',\n"
    "        'finished_at', ARGV[i + 2], 'size', ARGV[i + 3], 'sha256', sha,\n"
    "        'ctype', ctype, 'etag', etag)\n"
    "    else\n"
    "      local set = {'state', '3', 'next_at', '0', 'finished_at',\n"
    "        ARGV[i + 2], 'size', ARGV[i + 3]}\n"
    "      for k = 1, 3 do\n"
    "        local v = ARGV[i + 3 + k]\n"
    "        if v ~= '' then set[#set + 1] = OPT[k]; set[#set + 1] = v end\n"
    "      end\n"
    "      redis.call('HSET', R(rid), unpack(set))\n"
    "    end\n"
    "    if r[3] or r[4] or r[5] or r[6] or r[7] or r[8] then\n"
    "      local del = {}\n"
    "      for k = 1, 6 do\n"
    "        if r[2 + k] and (k <= 3 or ARGV[i + k] == '') then\n"
    "          del[#del + 1] = OLD[k]\n"
    "        end\n"
    "      end\n"
    "      if #del > 0 then redis.call('HDEL', R(rid), unpack(del)) end\n"
    "    end\n"
    "    gone[#gone + 1] = rid\n"
    "    out[#out + 1] = 1\n"
    "  end\n"
    "end\n"
    "bulk('ZREM', K('inflight'), gone)\n"
    "cnt(1, -#gone)\n"
    "cnt(3, #gone)\n"
    "flush()\n"
    "return out\n";

/* ARGV: rid, token, due, 1 if it counts an attempt (else a throttle),
 * error class, message, HTTP status ('' none). */
static const char retry_lua[] = PRELUDE
    "local rid = ARGV[1]\n"
    "local r = held(rid, ARGV[2])\n"
    "if not r then return 0 end\n"
    "redis.call('HSET', R(rid), 'state', 2, 'next_at', ARGV[3],\n"
    "  'error_class', ARGV[5])\n"
    "redis.call('HINCRBY', R(rid), 'attempts', ARGV[4])\n"
    "redis.call('HINCRBY', R(rid), 'throttles', 1 - tonumber(ARGV[4]))\n"
    "opt(rid, 'message', ARGV[6])\n"
    "opt(rid, 'http_status', ARGV[7])\n"
    "move(rid, 1, 2, r[3], ARGV[3])\n"
    "return 1\n";

/* ARGV: rid, token, now, error class, message, HTTP status ('' none). */
static const char dead_lua[] = PRELUDE
    "local rid = ARGV[1]\n"
    "local r = held(rid, ARGV[2])\n"
    "if not r then return 0 end\n"
    "redis.call('HSET', R(rid), 'state', 4, 'next_at', 0, 'finished_at',\n"
    "  ARGV[3], 'error_class', ARGV[4])\n"
    "redis.call('HINCRBY', R(rid), 'attempts', 1)\n"
    "opt(rid, 'message', ARGV[5])\n"
    "opt(rid, 'http_status', ARGV[6])\n"
    "move(rid, 1, 4, r[3], ARGV[3])\n"
    "return 1\n";

/* ARGV: rid, token, now. Back to pending, or retrying (due now) if it
 * failed before; the token moves on. */
static const char release_lua[] =
    PRELUDE "local rid = ARGV[1]\n"
            "local r = held(rid, ARGV[2])\n"
            "if not r then return 0 end\n"
            "local to = r[4] and 2 or 0\n"
            "redis.call('HSET', R(rid), 'state', to, 'next_at',\n"
            "  to == 2 and ARGV[3] or 0)\n"
            "redis.call('HINCRBY', R(rid), 'lease', 1)\n"
            "move(rid, 1, to, r[3], ARGV[3])\n"
            "return 1\n";

/* ARGV: the new expiry, then rid and token a lease. */
static const char renew_lua[] =
    PRELUDE "for i = 2, #ARGV, 2 do\n"
            "  if held(ARGV[i], ARGV[i + 1]) then\n"
            "    redis.call('HSET', R(ARGV[i]), 'next_at', ARGV[1])\n"
            "    redis.call('ZADD', K('inflight'), ARGV[1], ARGV[i])\n"
            "  end\n"
            "end\n"
            "return 0\n";

/* ARGV: now. Every in-flight record ready again; returns how many. */
static const char recover_lua[] = PRELUDE
    "local n = 0\n"
    "for _, rid in ipairs(redis.call('ZRANGE', K('inflight'), 0, -1)) do\n"
    "  local r = redis.call('HMGET', R(rid), 'origin', 'error_class')\n"
    "  local to = r[2] and 2 or 0\n"
    "  redis.call('HSET', R(rid), 'state', to, 'next_at',\n"
    "    to == 2 and ARGV[1] or 0)\n"
    "  redis.call('HINCRBY', R(rid), 'lease', 1)\n"
    "  move(rid, 1, to, r[1], ARGV[1])\n"
    "  n = n + 1\n"
    "end\n"
    "return n\n";

/* The five states' counts and the oldest pending record's queued_at. */
static const char counts_lua[] = PRELUDE
    "local c = redis.call('HMGET', K('counts'), 's0', 's1', 's2', 's3',\n"
    "  's4')\n"
    "local first = redis.call('ZRANGE', K('pending'), 0, 0)\n"
    "local q = ''\n"
    "if first[1] then\n"
    "  q = redis.call('HGET', R(first[1]), 'queued_at') or ''\n"
    "else\n"
    "  local m = redis.call('HMGET', KEYS[1], 'tail', 'pack')\n"
    "  if m[1] then\n"
    "    q = redis.call('HGET', K('packs'),\n"
    "      'q:' .. (m[2] or tonumber(m[1]) + 1)) or ''\n"
    "  end\n"
    "end\n"
    "return {c[1] or '0', c[2] or '0', c[3] or '0', c[4] or '0',\n"
    "  c[5] or '0', q}\n";

/* ARGV: id, the first pack to look in ('' the lowest), how many packs
 * to look in at most. Returns {'rec', the record's fields (F)},
 * {'none'}, or {'more', the next pack}: a record looked up by id is
 * found where it is, in its hash or in its pack (pending, as a list
 * reads it), and nothing is unpacked. A pack is searched for the id's
 * bytes as a pack holds them, then walked only where they occur. The
 * caller calls again from the pack named: whatever a lease unpacked
 * meanwhile is in `ids` by then, and nothing is packed again. */
static const char get_lua[] =
    PRELUDE "local id, most = ARGV[1], tonumber(ARGV[3])\n"
            "local rid = rid_of(id)\n"
            "if rid then\n"
            "  return {'rec', unpack(redis.call('HMGET', R(rid), unpack(F)))}\n"
            "end\n"
            "local m = redis.call('HMGET', KEYS[1], 'tail', 'pack')\n"
            "if not m[1] then return {'none'} end\n"
            "local tail = tonumber(m[1])\n"
            "local from = math.max(tonumber(ARGV[2]) or 0,\n"
            "  tonumber(m[2] or tail + 1))\n"
            "local firsts = {}\n"
            "for _, f in ipairs(redis.call('HKEYS', K('packs'))) do\n"
            "  local n = tonumber(f)\n"
            "  if n and n >= from then firsts[#firsts + 1] = n end\n"
            "end\n"
            "table.sort(firsts)\n"
            "for k = 1, math.min(#firsts, most) do\n"
            "  local first = firsts[k]\n"
            "  local blob = redis.call('HGET', K('packs'), first)\n"
            "  local at, v4 = pack_start(blob)\n"
            "  local needle = struct.pack(v4 and '<H' or '<I4', #id) .. id\n"
            "  if string.find(blob, needle, 1, true) then\n"
            "    local r, po = first, pack_origin(v4, blob, at)\n"
            "    while at <= #blob do\n"
            "      local pid, url, key, meta, origin, _\n"
            "      pid, url, key, meta, origin, _, at =\n"
            "        pack_rec(v4, blob, at)\n"
            "      if pid == id and r > tail then\n"
            "        local out = {'rec', id, url, key, meta ~= '' and meta,\n"
            "          origin ~= '' and origin or po, '0'}\n"
            "        for j = 7, #F do out[j + 1] = false end\n"
            "        return out\n"
            "      end\n"
            "      r = r + 1\n"
            "    end\n"
            "  end\n"
            "end\n"
            "if #firsts > most then\n"
            "  return {'more', tostring(firsts[most + 1])}\n"
            "end\n"
            "return {'none'}\n";

/* ARGV: the first rid, how many rids, the state (-1: all), and where
 * the first rid is in the packs if it is packed ('' not known). Returns
 * the next rid, the highest rid, where the next is in the packs ('' not
 * packed), then the fields (F) of each record there. Records above
 * meta's `tail` are read from their packs as they are (pending, queued
 * when their pack was): a list leaves them packed. A place in the packs
 * is "PACK AT RID", the pack's key, where a record begins in it and
 * that record's RID; without one the walk starts at the lowest pack. */
static const char page_lua[] =
    PRELUDE "local start, count = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
            "local top = tonumber(redis.call('HGET', KEYS[1], 'rid') or '0')\n"
            "local stop = math.min(top, start + count - 1)\n"
            "local m = redis.call('HMGET', KEYS[1], 'tail', 'pack',\n"
            "  'pack_at')\n"
            "local tail = m[1] and tonumber(m[1]) or top\n"
            "local out = {stop + 1, top, ''}\n"
            "for rid = start, math.min(stop, tail) do\n"
            "  local r = redis.call('HMGET', R(rid), unpack(F))\n"
            "  if r[1] and (ARGV[3] == '-1' or r[6] == ARGV[3]) then\n"
            "    for k = 1, #F do out[#out + 1] = r[k] end\n"
            "  end\n"
            "end\n"
            "if stop <= tail then return out end\n"
            /* packed records are pending: none for another state */
            "if ARGV[3] ~= '-1' and ARGV[3] ~= '0' then\n"
            "  out[1] = top + 1\n"
            "  return out\n"
            "end\n"
            "local pack, at, rid = string.match(ARGV[4] or '',\n"
            "  '^(%d+) (%d+) (%d+)$')\n"
            "pack, at, rid = tonumber(pack), tonumber(at), tonumber(rid)\n"
            "if not rid or rid <= tail or\n"
            "    rid > math.max(start, tail + 1) then\n"
            "  pack = tonumber(m[2] or tail + 1)\n"
            "  at, rid = tonumber(m[3] or 1), tail + 1\n"
            "end\n"
            "local po, v4\n"
            "local function load(p)\n"
            "  local b = redis.call('HGET', K('packs'), p)\n"
            "  if not b then error('sluice: pack ' .. p .. ' is missing') end\n"
            "  local start\n"
            "  start, v4 = pack_start(b)\n"
            "  po = pack_origin(v4, b, start)\n"
            "  at = math.max(at, start)\n"
            "  return b\n"
            "end\n"
            "local blob = load(pack)\n"
            "while rid <= stop do\n"
            "  if at > #blob then\n"
            "    pack, at = rid, 1\n"
            "    blob = load(pack)\n"
            "  else\n"
            "    local id, url, key, meta, origin, _\n"
            "    id, url, key, meta, origin, _, at = pack_rec(v4, blob, at)\n"
            "    if rid >= start then\n"
            "      local r = {id, url, key, meta ~= '' and meta,\n"
            "        origin ~= '' and origin or po, '0'}\n"
            "      for k = 7, #F do r[k] = false end\n"
            "      for k = 1, #F do out[#out + 1] = r[k] end\n"
            "    end\n"
            "    rid = rid + 1\n"
            "  end\n"
            "end\n"
            "if rid <= top then out[3] = pack .. ' ' .. at .. ' ' .. rid end\n"
            "return out\n";

/* ARGV: offset, count, error class ('' all). Dead records by the time
 * they died: how many were read, then the fields (F) of each. */
static const char dlq_page_lua[] =
    PRELUDE "local off, count = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
            "local m = redis.call('ZRANGE', K('dead'), off, off + count - 1)\n"
            "local out = {#m}\n"
            "for _, member in ipairs(m) do\n"
            "  local r = redis.call('HMGET', R(tonumber(member)), unpack(F))\n"
            "  if r[1] and (ARGV[3] == '' or r[10] == ARGV[3]) then\n"
            "    for k = 1, #F do out[#out + 1] = r[k] end\n"
            "  end\n"
            "end\n"
            "return out\n";

/* ARGV: id ('' all), error class ('' any), now. Dead records back to
 * pending with a fresh start; returns how many. */
static const char replay_lua[] =
    PRELUDE "local function one(rid)\n"
            "  local r = redis.call('HMGET', R(rid), 'state', 'error_class',\n"
            "    'origin')\n"
            "  if r[1] ~= '4' then return 0 end\n"
            "  if ARGV[2] ~= '' and r[2] ~= ARGV[2] then return 0 end\n"
            "  redis.call('HDEL', R(rid), 'next_at', 'attempts', 'throttles',\n"
            "    'first_at', 'error_class', 'message', 'http_status',\n"
            "    'finished_at')\n"
            "  redis.call('HINCRBY', R(rid), 'lease', 1)\n"
            "  redis.call('HSET', R(rid), 'state', 0, 'queued_at', ARGV[3])\n"
            "  move(rid, 4, 0, r[3], 0)\n"
            "  return 1\n"
            "end\n"
            "if ARGV[1] ~= '' then\n"
            /* a packed record is pending: not found is the same */
            "  local rid = rid_of(ARGV[1])\n"
            "  if not rid then return 0 end\n"
            "  return one(rid)\n"
            "end\n"
            "local n = 0\n"
            "for _, m in ipairs(redis.call('ZRANGE', K('dead'), 0, -1)) do\n"
            "  n = n + one(tonumber(m))\n"
            "end\n"
            "return n\n";

/* ARGV: the runner's claim and its lease in ms ('' and '': no check),
 * then origin, token, row ('' removes it) a slot row. A row is kept as
 * "TOKEN REST"; the token never goes down. -1, and nothing written,
 * when another run holds the claim: slots are written by the one
 * runner (until the Redis slot service lands). */
static const char slots_save_lua[] = PRELUDE
    "if ARGV[1] ~= '' then\n"
    "  local cur = redis.call('GET', K('runner'))\n"
    "  if not cur then\n"
    "    redis.call('SET', K('runner'), ARGV[1], 'PX', ARGV[2])\n"
    "  elseif cur ~= ARGV[1] then\n"
    "    return -1\n"
    "  end\n"
    "end\n"
    "for i = 3, #ARGV, 3 do\n"
    "  local o, tok, row = ARGV[i], ARGV[i + 1], ARGV[i + 2]\n"
    "  if row == '' then\n"
    "    redis.call('HDEL', K('slots'), o)\n"
    "  else\n"
    "    local cur = redis.call('HGET', K('slots'), o)\n"
    "    local old = cur and string.match(cur, '^(%d+) ')\n"
    "    if old and (#old > #tok or (#old == #tok and old > tok)) then\n"
    "      tok = old\n"
    "    end\n"
    "    redis.call('HSET', K('slots'), o, tok .. ' ' .. row)\n"
    "  end\n"
    "end\n"
    "return 0\n";

/* The runners using the queue: the sorted set `runners`, each runner's
 * token scored by when its claim lapses on Redis's clock. */
#define RUNNERS_NOW                                                           \
    "local t = redis.call('TIME')\n"                                          \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
    "redis.call('ZREMRANGEBYSCORE', K('runners'), '-inf', now)\n"

/* ARGV: the runner's token, its lease in ms. Joins; returns how many
 * other runners are alive. */
static const char runner_join_lua[] = PRELUDE RUNNERS_NOW
    "local others = redis.call('ZCARD', K('runners'))\n"
    "redis.call('ZADD', K('runners'), string.format('%d', now + "
    "tonumber(ARGV[2])), ARGV[1])\n"
    "return others\n";

/* ARGV: the runner's token, its lease in ms. */
static const char runner_renew_lua[] = PRELUDE RUNNERS_NOW
    "redis.call('ZADD', K('runners'), string.format('%d', now + "
    "tonumber(ARGV[2])), ARGV[1])\n"
    "return 1\n";

static const char runner_drop_lua[] = PRELUDE
    "redis.call('ZREM', K('runners'), ARGV[1])\n"
    "return 0\n";

/* Runners alive now. */
static const char runner_count_lua[] = PRELUDE
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "return redis.call('ZCOUNT', K('runners'), '(' .. now, '+inf')\n";

/* ARGV: first RID, count. Records as they are, in feed order, for a
 * migration: the next RID, the last, then the fields (F) of each and
 * its queued_at and first_at. */
static const char dump_lua[] =
    PRELUDE "unpack_all()\n"
            "local start, count = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
            "local top = tonumber(redis.call('HGET', KEYS[1], 'rid') or '0')\n"
            "local stop = math.min(top, start + count - 1)\n"
            "local out = {stop + 1, top}\n"
            "local G = {unpack(F)}\n"
            "G[#G + 1] = 'queued_at'\n"
            "G[#G + 1] = 'first_at'\n"
            "for rid = start, stop do\n"
            "  local r = redis.call('HMGET', R(rid), unpack(G))\n"
            "  if r[1] then\n"
            "    for k = 1, #G do out[#out + 1] = r[k] end\n"
            "  end\n"
            "end\n"
            "return out\n";

/* ARGV: 20 a record: id, url, key, meta, origin, fingerprint, state,
 * attempts, throttles, next_at, error_class, message, http_status, size,
 * sha256, ctype, etag, queued_at, first_at, finished_at ('' for none).
 * Appends each as it is after the records there, in its state's index.
 * Returns {0, id} for an id the queue holds already (nothing written),
 * else {1}. */
static const char restore_lua[] =
    PRELUDE "unpack_all()\n"
            "local n = #ARGV / 20\n"
            "local ids = K('ids')\n"
            "for k = 0, n - 1 do\n"
            "  local id = ARGV[20 * k + 1]\n"
            "  if redis.call('HEXISTS', ids, id) == 1 then\n"
            "    return {0, id}\n"
            "  end\n"
            "end\n"
            "local top = tonumber(redis.call('HGET', KEYS[1], 'rid') or '0')\n"
            "local names = {'next_at', 'error_class', 'message',\n"
            "  'http_status', 'size', 'sha256', 'ctype', 'etag', 'queued_at',\n"
            "  'first_at', 'finished_at'}\n"
            "for k = 0, n - 1 do\n"
            "  local a = 20 * k\n"
            "  local id, origin = ARGV[a + 1], ARGV[a + 5]\n"
            "  local st = tonumber(ARGV[a + 7])\n"
            "  top = top + 1\n"
            "  redis.call('HSET', ids, id, top .. ':' .. ARGV[a + 6])\n"
            "  redis.call('HSET', R(top), 'id', id, 'url', ARGV[a + 2],\n"
            "    'key', ARGV[a + 3], 'origin', origin, 'state', st,\n"
            "    'lease', 0, 'attempts', ARGV[a + 8],\n"
            "    'throttles', ARGV[a + 9])\n"
            "  opt(top, 'meta', ARGV[a + 4])\n"
            "  for j = 1, #names do opt(top, names[j], ARGV[a + 9 + j]) end\n"
            "  local score = 0\n"
            "  if st == 2 then score = tonumber(ARGV[a + 10])\n"
            "  elseif st == 4 then score = tonumber(ARGV[a + 20]) or 0 end\n"
            "  index(top, st, origin, score)\n"
            "  cnt(st, 1)\n"
            "end\n"
            "redis.call('HSET', KEYS[1], 'rid', top)\n"
            "return {1}\n";

/* ARGV: how many packs at most. Unpacks them; returns 1 if packs are
 * left, else 0. */
static const char unpack_lua[] = PRELUDE
    "for i = 1, tonumber(ARGV[1]) do\n"
    "  if not unpack_next() then return 0 end\n"
    "end\n"
    "return redis.call('HEXISTS', KEYS[1], 'tail')\n";

/*
 * Streams (queue_redis_streams.c). A stream's lease is the hash
 * "stream:NAME:lease" {owner, until}, on Redis's clock; its places are
 * the hash "stream:NAME:marks", shard -> "seq subseq finished behind
 * arrival written"; the set "streams" names the streams.
 */
#define REDIS_NOW                                                              \
    "local t = redis.call('TIME')\n"                                           \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* ARGV: stream, owner, ttl ms. Returns {1 if owner holds it, ms left}. */
static const char stream_lease_lua[] = PRELUDE REDIS_NOW
    "local key = K('stream:' .. ARGV[1] .. ':lease')\n"
    "local h = redis.call('HMGET', key, 'owner', 'until')\n"
    "if h[1] and h[1] ~= ARGV[2] and tonumber(h[2]) > now then\n"
    "  return {0, tonumber(h[2]) - now}\n"
    "end\n"
    "redis.call('HSET', key, 'owner', ARGV[2], 'until', now + ARGV[3])\n"
    "redis.call('SADD', K('streams'), ARGV[1])\n"
    "return {1, tonumber(ARGV[3])}\n";

/* ARGV: stream, owner. */
static const char stream_unlease_lua[] = PRELUDE
    "local key = K('stream:' .. ARGV[1] .. ':lease')\n"
    "if redis.call('HGET', key, 'owner') == ARGV[2] then\n"
    "  redis.call('DEL', key)\n"
    "end\n"
    "return 1\n";

/* The upsert's ARGV followed by a place: stream, shard, owner, seq,
 * subseq, finished, behind, arrival. Returns the upsert's letters, or
 * '!' and the lease's holder (nothing written) when owner holds it no
 * more. The place is written after the records: a failure on the way
 * leaves it where it was. */
static const char stream_upsert_lua[] = PRELUDE REDIS_NOW
    "local m = {}\n"
    "for j = 8, 1, -1 do m[j] = table.remove(ARGV) end\n"
    "local lease = K('stream:' .. m[1] .. ':lease')\n"
    "local holder = redis.call('HGET', lease, 'owner')\n"
    "if holder ~= m[3] then return '!' .. (holder or '') end\n"
    "local function upsert()\n" UPSERT_BODY "  return letters\n"
    "end\n"
    "local letters = ''\n"
    "if #ARGV > 1 then letters = upsert() end\n"
    "redis.call('HSET', K('stream:' .. m[1] .. ':marks'), m[2],\n"
    "  table.concat({m[4], m[5], m[6], m[7], m[8], now}, ' '))\n"
    "redis.call('SADD', K('streams'), m[1])\n"
    "return letters\n";

const sl_redis_script sl_rq_scripts[RQ_COUNT_] = {
    [RQ_INIT] = {"init", init_lua, ""},
    [RQ_UPSERT] = {"upsert", upsert_lua, ""},
    [RQ_LEASE] = {"lease", lease_lua, ""},
    [RQ_COMPLETE] = {"complete", complete_lua, ""},
    [RQ_RETRY] = {"retry", retry_lua, ""},
    [RQ_DEAD] = {"dead", dead_lua, ""},
    [RQ_RELEASE] = {"release", release_lua, ""},
    [RQ_RENEW] = {"renew", renew_lua, ""},
    [RQ_RECOVER] = {"recover", recover_lua, ""},
    [RQ_COUNTS] = {"counts", counts_lua, ""},
    [RQ_GET] = {"get", get_lua, ""},
    [RQ_PAGE] = {"list", page_lua, ""},
    [RQ_DLQ_PAGE] = {"dlq list", dlq_page_lua, ""},
    [RQ_REPLAY] = {"replay", replay_lua, ""},
    [RQ_SLOTS_SAVE] = {"slots save", slots_save_lua, ""},
    [RQ_RUNNER_JOIN] = {"runner join", runner_join_lua, ""},
    [RQ_RUNNER_RENEW] = {"runner renew", runner_renew_lua, ""},
    [RQ_RUNNER_DROP] = {"runner drop", runner_drop_lua, ""},
    [RQ_RUNNER_COUNT] = {"runner count", runner_count_lua, ""},
    [RQ_DUMP] = {"dump", dump_lua, ""},
    [RQ_RESTORE] = {"restore", restore_lua, ""},
    [RQ_UNPACK] = {"unpack", unpack_lua, ""},
    [RQ_STREAM_LEASE] = {"stream lease", stream_lease_lua, ""},
    [RQ_STREAM_UNLEASE] = {"stream unlease", stream_unlease_lua, ""},
    [RQ_STREAM_UPSERT] = {"stream upsert", stream_upsert_lua, ""},
};
