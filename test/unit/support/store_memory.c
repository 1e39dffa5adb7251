/*
 * store_memory.c - the session store (store.h) in one process, for the unit tests: a jansson object
 * id -> {record, expires}.
 * Callbacks run synchronously (allowed by store.h). Single-threaded: one loop per process. One
 * process is the only replica, so an owner is always alive: load never marks one lost.
 * Read next: store_redis.c (the same contract across replicas).
 */
#include "memory_backends.h"
#include "common/err.h"

#include <stdlib.h>
#include <string.h>

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

static int mem_load(mg_store_t *st, const char *id, const mg_store_load_opts_t *o, mg_store_get_cb cb,
                    void *data)
{
    mem_store_t *m = (mem_store_t *)st;
    json_t *e = live(m, id);
    if (e != NULL && o->ttl_ms > 0)
        json_object_set_new(e, "exp", json_integer((json_int_t)(m->now_ms() + o->ttl_ms)));
    json_t *r = e ? json_object_get(e, "r") : NULL;
    if (r != NULL && o->replica != NULL && o->claim && json_object_get(r, "owner") == NULL)
        json_object_set_new(r, "owner", json_string(o->replica));
    cb(0, r, data);
    return 0;
}

static int mem_patch(mg_store_t *st, const char *id, const json_t *patch, mg_store_done_cb cb, void *data)
{
    json_t *e = live((mem_store_t *)st, id);
    json_t *r = e ? json_object_get(e, "r") : NULL;
    if (r != NULL) {
        json_t *lvl = json_object_get(patch, "logLevel");
        if (json_is_integer(lvl))
            json_object_set(r, "logLevel", lvl);
        json_t *subs = json_object_get(patch, "subs");
        if (json_is_object(subs)) {
            json_t *cur = json_object_get(r, "subs");
            if (!json_is_object(cur)) {
                cur = json_object();
                json_object_set_new(r, "subs", cur);
            }
            const char *uri;
            json_t *v;
            json_object_foreach(subs, uri, v)
            {
                if (json_is_null(v))
                    json_object_del(cur, uri);
                else
                    json_object_set(cur, uri, v);
            }
        }
    }
    if (cb)
        cb(r ? 0 : MG_ENOTFOUND, data);
    return 0;
}

static int mem_owner_cas(mg_store_t *st, const char *id, const char *expect, const char *value,
                         mg_store_done_cb cb, void *data)
{
    json_t *e = live((mem_store_t *)st, id);
    json_t *r = e ? json_object_get(e, "r") : NULL;
    int err = MG_ENOTFOUND;
    if (r != NULL) {
        const char *cur = json_string_value(json_object_get(r, "owner"));
        if (strcmp(cur ? cur : "", expect ? expect : "") == 0) {
            if (value == NULL || value[0] == '\0')
                json_object_del(r, "owner");
            else
                json_object_set_new(r, "owner", json_string(value));
            err = 0;
        } else {
            err = MG_EBUSY;
        }
    }
    if (cb)
        cb(err, data);
    return 0;
}

static int mem_ready(mg_store_t *st)
{
    return 1;
}

static json_t *mem_status(mg_store_t *st)
{
    return json_pack("{s:s,s:b,s:I}", "backend", "memory", "ready", 1, "records",
                     (json_int_t)json_object_size(((mem_store_t *)st)->map));
}

static const mg_store_ops_t mem_ops = {"memory", mem_put,  mem_get,   mem_touch,     mem_del,   mem_count,
                                       mem_free, mem_load, mem_patch, mem_owner_cas, mem_ready, mem_status};

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
