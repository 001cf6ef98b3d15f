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

/* The learnt limits (docs/queue.md, "What is shared"): `lconc` and
 * `lrate` in the state hash, absent while nothing is learnt, `lgen`
 * counting their cuts, `lgrow` when they last changed; `pfrom`, `pn` and
 * `prate` count every runner's starts a second. The rules are the
 * pacer's (pacer.c): grow while a limit binds, 1 request at once a
 * second and a tenth of the rate a second (at least 1/s). */
#define LEARNT                                                                \
    "local function num(v) return v and tonumber(v) or nil end\n"             \
    "local function g(x) return string.format('%.6g', x) end\n"               \
    "local LF = {'lconc', 'lrate', 'lgen', 'lgrow', 'pfrom', 'pn', 'prate'}\n" \
    /* the fields LF from element i of an HMGET's answer */                   \
    "local function learnt(l, i)\n"                                           \
    "  return {conc = num(l[i]), rate = num(l[i + 1]),\n"                     \
    "    gen = tonumber(l[i + 2] or '0'), grow = tonumber(l[i + 3] or '0'),\n"\
    "    pfrom = tonumber(l[i + 4] or '0'), pn = tonumber(l[i + 5] or '0'),\n"\
    "    prate = tonumber(l[i + 6] or '0')}\n"                                \
    "end\n"                                                                   \
    /* every runner's starts a second: the last second, sliding */            \
    "local function measured(L)\n"                                            \
    "  local ms = now - L.pfrom\n"                                            \
    "  if L.pfrom == 0 then return 0 end\n"                                   \
    "  if L.prate > 0 and ms < 1000 then\n"                                   \
    "    return L.pn + L.prate * (1000 - ms) / 1000\n"                        \
    "  end\n"                                                                 \
    "  return L.pn * 1000 / math.max(ms, 1)\n"                                \
    "end\n"                                                                   \
    "local function save(st, L)\n"                                            \
    "  redis.call('HSET', st, 'lgen', L.gen, 'lgrow', f(L.grow))\n"           \
    "  if L.conc then redis.call('HSET', st, 'lconc', g(L.conc))\n"           \
    "  else redis.call('HDEL', st, 'lconc') end\n"                            \
    "  if L.rate then redis.call('HSET', st, 'lrate', g(L.rate))\n"           \
    "  else redis.call('HDEL', st, 'lrate') end\n"                            \
    "end\n"                                                                   \
    "local function told(L)\n"                                                \
    "  return {L.conc and g(L.conc) or '', L.rate and g(L.rate) or '',\n"     \
    "    f(L.gen), g(measured(L))}\n"                                         \
    "end\n"

/*
 * KEYS: held (ZSET token -> deadline), state (HASH). ARGV: cap, hold_ms,
 * rate (0: none), the run_id of the Redis the caller talks to, the
 * run_id it last took a slot of this origin under ('' none), '1' to
 * obey and grow the learnt limits (adaptive) or '0', the requests the
 * caller started on kept slots since its last grant (counted among
 * every runner's starts), the slots it asks for (at least 1: granted as
 * many as are free under the limit, tokens in a row, but one at a time
 * under a pace).
 * Returns {1, token, now, deadline, held} or {0, wait_ms, reason, held,
 * pause_left_ms}, each followed by the learnt limits: lconc, lrate ('':
 * none), lgen, every runner's starts a second; and by the slots granted
 * (0 when refused; tokens token, token + 1, ...). wait_ms for 'full' is
 * to the earliest deadline.
 */
const char sl_rslots_take_lua[] =
    CLOCK LEARNT
    "local held, st = KEYS[1], KEYS[2]\n"
    "local cap, hold = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local rate = tonumber(ARGV[3])\n"
    "local adapt = ARGV[6] == '1'\n"
    "redis.call('ZREMRANGEBYSCORE', held, '-inf', now)\n"
    "local s = redis.call('HMGET', st, 'rid', 'paused_until',\n"
    "  'fence_until', 'next_start', 'hold_max', 'token', 'resumed',\n"
    "  unpack(LF))\n"
    "local rid = s[1]\n"
    "local paused = tonumber(s[2] or '0')\n"
    "local fence = tonumber(s[3] or '0')\n"
    "local next_start = tonumber(s[4] or '0')\n"
    "local hold_max = math.max(tonumber(s[5] or '0'), hold)\n"
    "local token = tonumber(s[6] or '0')\n"
    "local L = learnt(s, 8)\n"
    "local function out(t, granted)\n"
    "  for _, v in ipairs(told(L)) do t[#t + 1] = v end\n"
    "  t[#t + 1] = granted or 0\n"
    "  return t\n"
    "end\n"
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
    "if fence > now then\n"
    "  return out({0, f(fence - now), 'fence', card, f(left)})\n"
    "end\n"
    "if paused > now then\n"
    "  return out({0, f(paused - now), 'pause', card, f(left)})\n"
    "end\n"
    /* The first take after a pause: every runner restarts slowly from
     * half the limits, once (the pacer's resume). */
    "if adapt and paused > 0 and s[7] ~= f(paused) then\n"
    "  L.conc = math.max(1, (L.conc or cap) * 0.5)\n"
    "  local base = L.rate or (L.prate > 0 and L.prate) or 0\n"
    "  if base > 0 then\n"
    "    L.rate = math.max(0.2, base * 0.5)\n"
    "    if rate > 0 and L.rate > rate then L.rate = rate end\n"
    "  end\n"
    "  L.gen, L.grow, L.pfrom, L.pn = L.gen + 1, now, now, 0\n"
    "  save(st, L)\n"
    "  redis.call('HSET', st, 'resumed', f(paused), 'pfrom', f(now),\n"
    "    'pn', 0)\n"
    "end\n"
    "local limit = cap\n"
    "if adapt and L.conc then\n"
    "  limit = math.min(cap, math.max(1, math.floor(L.conc)))\n"
    "end\n"
    "if card >= limit then\n"
    "  local first = redis.call('ZRANGE', held, 0, 0, 'WITHSCORES')\n"
    "  local wait = first[2] and tonumber(first[2]) - now or 0\n"
    "  return out({0, f(wait), 'full', card, '0'})\n"
    "end\n"
    "local pace = rate\n"
    "if adapt and L.rate and (pace <= 0 or L.rate < pace) then\n"
    "  pace = L.rate\n"
    "end\n"
    "if pace > 0 then\n"
    "  if next_start > nowf then\n"
    "    return out({0, f(math.ceil(next_start - nowf)), 'pace', card, '0'})\n"
    "  end\n"
    "  next_start = math.max(next_start, nowf) + 1000 / pace\n"
    "end\n"
    /* Granted. The learnt limits grow while they bind, by the time
     * since they last changed on Redis's clock: the same growth however
     * many runners take. */
    "if adapt and (L.conc or L.rate) then\n"
    "  local dt = math.max(now - L.grow, 0) / 1000\n"
    "  if L.conc and card + 1 >= limit * 0.8 then\n"
    "    L.conc = L.conc + dt\n"
    "    if L.conc >= cap then L.conc = nil end\n"
    "  end\n"
    "  if L.rate and measured(L) >= L.rate * 0.8 then\n"
    "    L.rate = L.rate + math.max(L.rate * 0.1, 1) * dt\n"
    "    if rate > 0 and L.rate >= rate then L.rate = nil end\n"
    "  end\n"
    "  L.grow = now\n"
    "  save(st, L)\n"
    "end\n"
    "if L.pfrom == 0 then L.pfrom = now end\n"
    "if now - L.pfrom >= 1000 then\n"
    "  L.prate = L.pn * 1000 / (now - L.pfrom)\n"
    "  L.pfrom, L.pn = now, 0\n"
    "end\n"
    "local k = 1\n"
    "if pace <= 0 then\n"
    "  k = math.max(1, math.min(tonumber(ARGV[8]) or 1, limit - card))\n"
    "end\n"
    "L.pn = L.pn + k + (tonumber(ARGV[7]) or 0)\n"
    "local first = math.max(token + 1, now * 1000)\n"
    "token = first + k - 1\n"
    "local deadline = now + hold\n"
    "local z = {}\n"
    "for i = 0, k - 1 do\n"
    "  z[#z + 1] = f(deadline)\n"
    "  z[#z + 1] = f(first + i)\n"
    "end\n"
    "redis.call('ZADD', held, unpack(z))\n"
    "redis.call('HSET', st, 'token', f(token), 'hold_max', f(hold_max),\n"
    "  'next_start', string.format('%.3f', next_start), 'pfrom',\n"
    "  f(L.pfrom), 'pn', L.pn, 'prate', g(L.prate))\n"
    "return out({1, f(first), f(now), f(deadline), card + k}, k)\n";

/*
 * KEYS: state. ARGV: the limits a runner's pacer cut to (requests at
 * once; a rate, 0: none learnt), the cap and the rate ceiling (0:
 * none). A cut only lowers: each limit becomes the lower of the stored
 * one and the runner's; when either fell, lgen counts a cut and growth
 * restarts from now. Returns the learnt limits as the take does.
 */
const char sl_rslots_learn_lua[] =
    CLOCK LEARNT
    "local st = KEYS[1]\n"
    "local conc, rate = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local cap, ceiling = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "local L = learnt(redis.call('HMGET', st, unpack(LF)), 1)\n"
    "local cut = false\n"
    "if conc < (L.conc or cap) then\n"
    "  L.conc = math.max(conc, 1); cut = true\n"
    "end\n"
    "if rate > 0 and rate < (L.rate or (ceiling > 0 and ceiling) or\n"
    "    math.huge) then\n"
    "  L.rate = math.max(rate, 0.2); cut = true\n"
    "end\n"
    "if cut then\n"
    "  L.gen, L.grow = L.gen + 1, now\n"
    "  save(st, L)\n"
    "end\n"
    "return told(L)\n";

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
