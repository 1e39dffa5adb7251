/*
 * task_store_mem.c - task_store.h in the process: records in a map, expired on access.
 *
 * One replica only (gateway.sessions.store "memory"): nobody else can own a task, so get never
 * finds an owner gone. Callbacks run before the operation returns. Counting a principal's
 * unfinished tasks walks the map: it holds at most maxPerPrincipal per principal plus finished
 * ones until their TTL, and a sweep on every create drops the expired. The records' bytes (their
 * compact JSON) are bounded: past max_bytes the finished records that expire first are dropped
 * (an unfinished one is never dropped; those are bounded by the per-principal limit).
 * Read next: task_store.h, task_store_redis.c (the shared twin).
 */
#include "task_store.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/map.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    json_t *rec;
    uint64_t expires;
    size_t bytes;
} entry_t;

typedef struct mem_store {
    mg_task_store_t base;
    mg_map_t recs; /* id -> entry_t* */
    uint64_t (*now_ms)(void);
    size_t bytes, max_bytes; /* of every record's compact JSON */
} mem_store_t;

int mg_task_status_terminal(const char *status)
{
    return status != NULL && (strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0 ||
                              strcmp(status, "cancelled") == 0);
}

static const char *field(const json_t *rec, const char *k)
{
    const char *v = json_string_value(json_object_get(rec, k));
    return v != NULL ? v : "";
}

static void entry_free(entry_t *e)
{
    json_decref(e->rec);
    free(e);
}

static size_t size_of(const json_t *rec)
{
    char *text = json_dumps(rec, JSON_COMPACT);
    size_t n = text != NULL ? strlen(text) : 0;
    free(text);
    return n;
}

static void drop(mem_store_t *m, const char *id, entry_t *e)
{
    m->bytes -= e->bytes;
    mg_map_del(&m->recs, id);
    entry_free(e);
}

/* Drops the finished records that expire first until adding `more` bytes stays within the bound. */
static void make_room(mem_store_t *m, size_t more)
{
    while (m->bytes + more > m->max_bytes) {
        const char *victim = NULL;
        entry_t *ve = NULL;
        size_t pos = 0;
        const char *k;
        void *v;
        while (mg_map_next(&m->recs, &pos, &k, &v)) {
            entry_t *e = v;
            if (mg_task_status_terminal(field(e->rec, "status")) &&
                (ve == NULL || e->expires < ve->expires)) {
                victim = k;
                ve = e;
            }
        }
        if (ve == NULL)
            return; /* only unfinished ones: kept (bounded per principal) */
        drop(m, victim, ve);
    }
}

static void sweep(mem_store_t *m)
{
    uint64_t now = m->now_ms();
    size_t pos = 0;
    const char *k;
    void *v;
    while (mg_map_next(&m->recs, &pos, &k, &v)) {
        entry_t *e = v;
        if (e->expires <= now)
            drop(m, k, e); /* the map allows deleting the current entry while iterating */
    }
}

static entry_t *find(mem_store_t *m, const char *id)
{
    entry_t *e = mg_map_get(&m->recs, id);
    if (e != NULL && e->expires <= m->now_ms()) {
        drop(m, id, e);
        e = NULL;
    }
    return e;
}

static int mem_create(mg_task_store_t *st, const json_t *record, unsigned limit, uint64_t ttl_ms,
                      mg_task_store_cb cb, void *data)
{
    mem_store_t *m = (mem_store_t *)st;
    sweep(m);
    const char *who = field(record, "principal");
    unsigned open = 0;
    size_t pos = 0;
    const char *k;
    void *v;
    while (mg_map_next(&m->recs, &pos, &k, &v)) {
        entry_t *e = v;
        if (strcmp(field(e->rec, "principal"), who) == 0 && !mg_task_status_terminal(field(e->rec, "status")))
            open++;
    }
    if (open >= limit) {
        cb(data, MG_EBUSY, NULL);
        return 0;
    }
    entry_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return MG_ENOMEM;
    e->rec = mg_json_deep_copy(record);
    e->expires = m->now_ms() + ttl_ms;
    e->bytes = size_of(record);
    make_room(m, e->bytes);
    if (e->rec == NULL || mg_map_set(&m->recs, field(record, "id"), e) != 0) {
        entry_free(e);
        return MG_ENOMEM;
    }
    m->bytes += e->bytes;
    cb(data, 0, e->rec);
    return 0;
}

static int mem_get(mg_task_store_t *st, const char *id, const char *why_gone, mg_task_store_cb cb, void *data)
{
    (void)why_gone; /* one process: the owner is this one */
    entry_t *e = find((mem_store_t *)st, id);
    cb(data, 0, e != NULL ? e->rec : NULL);
    return 0;
}

static int mem_update(mg_task_store_t *st, const json_t *record, mg_task_store_cb cb, void *data)
{
    mem_store_t *m = (mem_store_t *)st;
    entry_t *e = find(m, field(record, "id"));
    if (e == NULL) {
        cb(data, 0, NULL);
        return 0;
    }
    if (mg_task_status_terminal(field(e->rec, "status"))) {
        cb(data, MG_EBUSY, e->rec);
        return 0;
    }
    json_t *copy = mg_json_deep_copy(record);
    if (copy == NULL)
        return MG_ENOMEM;
    json_decref(e->rec);
    e->rec = copy;
    m->bytes -= e->bytes;
    e->bytes = size_of(copy);
    make_room(m, e->bytes); /* e is unfinished until now: never the one dropped */
    m->bytes += e->bytes;
    cb(data, 0, e->rec);
    return 0;
}

static void mem_free(mg_task_store_t *st)
{
    mem_store_t *m = (mem_store_t *)st;
    size_t pos = 0;
    const char *k;
    void *v;
    while (mg_map_next(&m->recs, &pos, &k, &v))
        entry_free(v);
    mg_map_dispose(&m->recs);
    free(m);
}

static const mg_task_store_ops_t mem_ops = {mem_create, mem_get, mem_update, mem_free};

mg_task_store_t *mg_task_store_mem_new(uint64_t (*now_ms)(void), size_t max_bytes)
{
    mem_store_t *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->base.ops = &mem_ops;
    m->now_ms = now_ms;
    m->max_bytes = max_bytes;
    mg_map_init(&m->recs);
    return &m->base;
}
