/*
 * The Redis slot service's insides, shared by slots_redis.c (the ops)
 * and slots_redis_lua.c (its scripts).
 */
#ifndef SL_SLOTS_REDIS_H
#define SL_SLOTS_REDIS_H

extern const char sl_rslots_take_lua[];
extern const char sl_rslots_learn_lua[];
extern const char sl_rslots_pause_lua[];
extern const char sl_rslots_paused_lua[];
extern const char sl_rslots_list_lua[];

#endif /* SL_SLOTS_REDIS_H */
