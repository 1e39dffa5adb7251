/*
 * store_memory.c - the embedded session store: a jansson object id -> {record, expires}.
 * Callbacks run synchronously (allowed by store.h). Single-threaded: one loop per process.
 */
#include "store.h"
#include "../common/err.h"

#include <stdlib.h>

typedef struct mem_store {
    mg_store_t base;
    json_t *map; /* id -> {"r": record, "exp": ms} */
    uint64_t (*now_ms)(void);
} mem_store_t;

static int mem_put(mg_store_t *st, const char *id, const json_t *record, uint64_t ttl_ms, mg_store_done_cb cb,
                   void *data)
{
    mem_store_t *m = (mem_store_t *)st;
    json_t *e = json_pack("{s:O,s:I}", "r", record, "exp", (json_int_t)(m->now_ms() + ttl_ms));
    if (e == NULL)
        return MG_ENOMEM;
    json_object_set_new(m->map, id, e);
    if (cb)
        cb(0, data);
    return 0;
}

static json_t *live(mem_store_t *m, const char *id)
{
    json_t *e = json_object_get(m->map, id);
    if (e == NULL)
        return NULL;
    if ((uint64_t)json_integer_value(json_object_get(e, "exp")) < m->now_ms()) {
        json_object_del(m->map, id);
        return NULL;
    }
    return e;
}

static int mem_get(mg_store_t *st, const char *id, mg_store_get_cb cb, void *data)
{
    json_t *e = live((mem_store_t *)st, id);
    cb(0, e ? json_object_get(e, "r") : NULL, data);
    return 0;
}

static int mem_touch(mg_store_t *st, const char *id, uint64_t ttl_ms, mg_store_done_cb cb, void *data)
{
    mem_store_t *m = (mem_store_t *)st;
    json_t *e = live(m, id);
    if (e != NULL)
        json_object_set_new(e, "exp", json_integer((json_int_t)(m->now_ms() + ttl_ms)));
    if (cb)
        cb(e ? 0 : MG_ENOTFOUND, data);
    return 0;
}

static int mem_del(mg_store_t *st, const char *id, mg_store_done_cb cb, void *data)
{
    mem_store_t *m = (mem_store_t *)st;
    int r = json_object_del(m->map, id);
    if (cb)
        cb(r == 0 ? 0 : MG_ENOTFOUND, data);
    return 0;
}

static size_t mem_count(mg_store_t *st)
{
    return json_object_size(((mem_store_t *)st)->map);
}

static void mem_free(mg_store_t *st)
{
    mem_store_t *m = (mem_store_t *)st;
    json_decref(m->map);
    free(m);
}

static const mg_store_ops_t mem_ops = {"memory", mem_put, mem_get, mem_touch, mem_del, mem_count, mem_free};

mg_store_t *mg_store_memory_new(uint64_t (*now_ms)(void))
{
    mem_store_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->base.ops = &mem_ops;
    m->map = json_object();
    m->now_ms = now_ms;
    return &m->base;
}

size_t mg_store_memory_sweep(mg_store_t *st)
{
    mem_store_t *m = (mem_store_t *)st;
    const char *key;
    json_t *e;
    void *tmp;
    size_t n = 0;
    uint64_t now = m->now_ms();
    json_object_foreach_safe(m->map, tmp, key, e)
    {
        if ((uint64_t)json_integer_value(json_object_get(e, "exp")) < now) {
            json_object_del(m->map, key);
            n++;
        }
    }
    return n;
}
