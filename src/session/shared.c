/*
 * shared.c - picks the shared store's backend by its spec (shared.h has the table). Nothing else
 * here: each backend parses and checks its own specs. Read next: redis.h, pg.h.
 */
#include "shared.h"
#include "../common/err.h"
#include "pg.h"
#include "redis.h"
#include "task_store.h"

#include <stdio.h>
#include <string.h>

int mg_session_store_check(const char *spec, char *why, size_t whylen)
{
    if (spec != NULL && strcmp(spec, "memory") == 0)
        return 0;
    if (mg_pg_spec_is(spec))
        return mg_pg_spec_check(spec, why, whylen);
    mg_redis_target_t t;
    int r = mg_redis_url_parse(spec, &t, why, whylen);
    mg_redis_target_dispose(&t);
    return r == 0 ? 0 : MG_EINVAL;
}

int mg_shared_store_new(uv_loop_t *loop, const mg_shared_opts_t *o, mg_store_t **store, mg_bus_t **bus,
                        char *why, size_t whylen)
{
    if (mg_pg_spec_is(o->spec)) {
        mg_pg_opts_t po = {o->spec, o->password, o->key_prefix, o->timeout_ms, o->migrate, o->now_ms};
        return mg_pg_new(loop, &po, store, bus, why, whylen);
    }
    mg_redis_opts_t ro = {o->spec,       o->password,   o->sentinel_password,
                          o->key_prefix, o->timeout_ms, o->now_ms};
    return mg_redis_new(loop, &ro, store, bus, why, whylen);
}

struct mg_rl_store *mg_shared_rl_new(mg_store_t *session_store)
{
    struct mg_rl_store *rl = mg_redis_rl_new(session_store);
    return rl != NULL ? rl : mg_pg_rl_new(session_store);
}

struct mg_task_store *mg_shared_task_new(mg_store_t *session_store)
{
    mg_task_store_t *t = mg_redis_task_store_new(session_store);
    return t != NULL ? t : mg_pg_task_store_new(session_store);
}
