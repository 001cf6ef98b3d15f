/*
 * The Redis slot service's Lua scripts (slots_redis.c). Each reads
 * Redis's own clock (TIME) and touches only the keys it is given, which
 * share the origin's hash tag: one cluster slot. docs/queue.md, "Slots
 * on Redis", says what each does and why it is safe.
 */
#include "slots_redis.h"

/* Redis's clock in ms (now, whole; nowf, to the microsecond), and
 * integers as text (a Lua number would print as 1.7e+15). */
#define CLOCK                                                                 \
    "local t = redis.call('TIME')\n"                                          \
    "local nowf = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000\n"            \
    "local now = math.floor(nowf)\n"                                          \
    "local function f(x) return string.format('%d', x) end\n"

/*
 * KEYS: held (ZSET token -> deadline), state (HASH). ARGV: cap, hold_ms,
 * rate (0: none), the run_id of the Redis the caller talks to, the
 * run_id it last took a slot of this origin under ('' none).
 * Returns {1, token, now, deadline, held} or {0, wait_ms, reason, held,
 * pause_left_ms}; wait_ms for 'full' is to the earliest deadline.
 */
const char sl_rslots_take_lua[] =
    CLOCK
    "local held, st = KEYS[1], KEYS[2]\n"
    "local cap, hold = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local rate = tonumber(ARGV[3])\n"
    "redis.call('ZREMRANGEBYSCORE', held, '-inf', now)\n"
    "local s = redis.call('HMGET', st, 'rid', 'paused_until',\n"
    "  'fence_until', 'next_start', 'hold_max', 'token')\n"
    "local rid = s[1]\n"
    "local paused = tonumber(s[2] or '0')\n"
    "local fence = tonumber(s[3] or '0')\n"
    "local next_start = tonumber(s[4] or '0')\n"
    "local hold_max = math.max(tonumber(s[5] or '0'), hold)\n"
    "local token = tonumber(s[6] or '0')\n"
    /* Another Redis process wrote last: it restarted, and may have lost
     * slots taken just before. Nothing new until they are all over. */
    "if (rid and rid ~= ARGV[4]) or\n"
    "   (not rid and ARGV[5] ~= '' and ARGV[5] ~= ARGV[4]) then\n"
    "  fence = math.max(fence, now + hold_max)\n"
    "  token = math.max(token, now * 1000)\n"
    "  redis.call('HSET', st, 'rid', ARGV[4], 'fence_until', f(fence),\n"
    "    'hold_max', f(hold_max), 'token', f(token))\n"
    "elseif not rid then\n"
    "  redis.call('HSET', st, 'rid', ARGV[4])\n"
    "end\n"
    "local card = redis.call('ZCARD', held)\n"
    "local left = math.max(paused - now, 0)\n"
    "if fence > now then return {0, f(fence - now), 'fence', card, f(left)}\n"
    "end\n"
    "if paused > now then\n"
    "  return {0, f(paused - now), 'pause', card, f(left)}\n"
    "end\n"
    "if card >= cap then\n"
    "  local first = redis.call('ZRANGE', held, 0, 0, 'WITHSCORES')\n"
    "  return {0, f(tonumber(first[2]) - now), 'full', card, '0'}\n"
    "end\n"
    "if rate > 0 then\n"
    "  if next_start > nowf then\n"
    "    return {0, f(math.ceil(next_start - nowf)), 'pace', card, '0'}\n"
    "  end\n"
    "  next_start = math.max(next_start, nowf) + 1000 / rate\n"
    "end\n"
    "token = math.max(token + 1, now * 1000)\n"
    "local deadline = now + hold\n"
    "redis.call('ZADD', held, f(deadline), f(token))\n"
    "redis.call('HSET', st, 'token', f(token), 'hold_max', f(hold_max),\n"
    "  'next_start', string.format('%.3f', next_start))\n"
    "return {1, f(token), f(now), f(deadline), card + 1}\n";

/* KEYS: state. ARGV: the pause's length in ms from now. The pause only
 * ever extends; returns how long it has left. */
const char sl_rslots_pause_lua[] =
    CLOCK
    "local p = tonumber(redis.call('HGET', KEYS[1], 'paused_until') or "
    "'0')\n"
    "p = math.max(p, now + tonumber(ARGV[1]))\n"
    "redis.call('HSET', KEYS[1], 'paused_until', f(p))\n"
    "return f(p - now)\n";

/* KEYS: state. How long the pause has left (0: none). */
const char sl_rslots_paused_lua[] =
    CLOCK
    "local p = tonumber(redis.call('HGET', KEYS[1], 'paused_until') or "
    "'0')\n"
    "return f(math.max(p - now, 0))\n";

/* KEYS: held. The slots held now: {now, token, deadline, ...}. */
const char sl_rslots_list_lua[] =
    CLOCK
    "local out = {f(now)}\n"
    "local m = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. f(now), '+inf',\n"
    "  'WITHSCORES')\n"
    "for i = 1, #m do out[#out + 1] = m[i] end\n"
    "return out\n";
