/*
 * ratelimit_pg.c - the shared rate-limit bucket store (rl_store.h) over the session store's
 * PostgreSQL client: every replica takes tokens from the same buckets.
 *
 * One take = one statement, SELECT * FROM mcpgate_rl_take($1::jsonb) with [[key, requests, per_ms,
 * burst], ...] (pg_schema.c): the function locks the buckets (transaction-scoped advisory locks, in
 * key order, so concurrent takes of overlapping buckets never deadlock), reads the database's clock
 * after the locks (clock_timestamp(): one clock for every replica, and it never runs backwards between
 * two takes of a bucket), does the bucket math of src/policy/ratelimit.c, and writes all buckets or
 * none: exact under concurrency. Rows "<keyPrefix>rl:<bucket>" expire when they would be full again
 * (the sweep deletes them; a bucket seen with another rule starts full, as in the local store).
 *
 * PostgreSQL unreachable, slower than timeoutMs, or an error: the take ends with result.error ==
 * MG_EIO and allowed == 0; the policy answers 503 + Retry-After (fail closed, like sessions).
 * Read next: pg_schema.c (mcpgate_rl_take), src/policy/hooks.c (rate_done).
 */
#include "../common/err.h"
#include "pg_int.h"
#include "rl_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 8

typedef struct rl_pg {
    mg_rl_store_t base;
    mg_pg_t *p;
} rl_pg_t;

typedef struct take {
    mg_rl_done_cb cb;
    void *data;
    size_t n;
} take_t;

static void fail(mg_rl_done_cb cb, void *data)
{
    mg_rl_result_t res = {0, 0, 0, 1000, 0, MG_EIO};
    cb(data, &res);
}

static uint64_t col_u64(const PGresult *res, int col)
{
    long long v = PQgetisnull(res, 0, col) ? 0 : atoll(PQgetvalue(res, 0, col));
    return v > 0 ? (uint64_t)v : 0;
}

static void take_cb(mg_pg_t *p, PGresult *res, void *data)
{
    take_t *t = data;
    if (!mg__pg_ok(res) || PQntuples(res) != 1 || PQnfields(res) != 5) {
        fail(t->cb, t->data); /* also while closing: the caller's job is freed by its callback */
        free(t);
        return;
    }
    mg_rl_result_t r = {PQgetvalue(res, 0, 0)[0] == 't',
                        (size_t)col_u64(res, 1),
                        col_u64(res, 2),
                        col_u64(res, 3),
                        col_u64(res, 4),
                        0};
    if (r.limiting >= t->n)
        r.limiting = 0;
    t->cb(t->data, &r);
    free(t);
}

static void rp_take(mg_rl_store_t *st, const mg_rl_key_t *keys, size_t n, uint64_t now_ms, mg_rl_done_cb cb,
                    void *data)
{
    (void)now_ms; /* the database's clock: the replicas' loop clocks differ */
    mg_pg_t *p = ((rl_pg_t *)st)->p;
    if (n > MAX_KEYS)
        n = MAX_KEYS;
    json_t *arr = json_array();
    int ok = arr != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        size_t kl = p->prefix_len + 3 + strlen(keys[i].key) + 1;
        char *k = malloc(kl);
        if (k == NULL) {
            ok = 0;
            break;
        }
        snprintf(k, kl, "%srl:%s", p->prefix, keys[i].key);
        const mg_rate_rule_t *ru = keys[i].rule;
        ok = json_array_append_new(arr, json_pack("[s,I,I,I]", k, (json_int_t)ru->requests,
                                                  (json_int_t)ru->per_ms, (json_int_t)ru->burst)) == 0;
        free(k);
    }
    char *text = ok ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    take_t *t = text != NULL ? malloc(sizeof(*t)) : NULL;
    int e = MG_ENOMEM;
    if (t != NULL) {
        t->cb = cb;
        t->data = data;
        t->n = n;
        const char *v[] = {text};
        e = mg__pg_query(p, S_RLTAKE, 1, v, take_cb, t);
        if (e != 0)
            free(t);
    }
    free(text);
    if (e != 0) { /* not connected (or no memory): take_cb never runs */
        p->ops_failed++;
        fail(cb, data);
    }
}

static void rp_free(mg_rl_store_t *st)
{
    rl_pg_t *s = (rl_pg_t *)st;
    mg_pg_t *p = s->p;
    free(s);
    mg__pg_release(p);
}

static const mg_rl_store_ops_t rp_ops = {rp_take, rp_free};

mg_rl_store_t *mg_pg_rl_new(mg_store_t *session_store)
{
    mg_pg_t *p = mg__pg_of_store(session_store);
    if (p == NULL)
        return NULL;
    rl_pg_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        mg__pg_release(p);
        return NULL;
    }
    s->base.ops = &rp_ops;
    s->p = p;
    return &s->base;
}
