/*
 * ratelimit.c - token-bucket math and the local (in-process) bucket store (ratelimit.h).
 *
 * The local store is a string map of buckets, bounded by max_buckets. When it is full, buckets
 * that have refilled completely are dropped (forgetting a full bucket changes nothing); if none
 * has, the least recently used one is dropped, which can only make the limit more generous for
 * that key, never stricter. The shared store for several replicas (Redis: the same arithmetic in
 * one Lua script per take, so all-or-none holds across replicas) is src/session/ratelimit_redis.c.
 * Read next: hooks.c (keys and answers).
 */
#include "ratelimit.h"
#include "../common/map.h"

#include <stdlib.h>
#include <string.h>

static uint64_t cap_units(const mg_rate_rule_t *r)
{
    return r->burst * r->per_ms;
}

void mg_rl_bucket_init(mg_rl_bucket_t *b, const mg_rate_rule_t *r, uint64_t now_ms)
{
    b->units = cap_units(r);
    b->last_ms = now_ms;
}

void mg_rl_bucket_refill(mg_rl_bucket_t *b, const mg_rate_rule_t *r, uint64_t now_ms)
{
    uint64_t cap = cap_units(r);
    if (now_ms <= b->last_ms)
        return; /* the clock is monotonic; equal means nothing to add */
    uint64_t elapsed = now_ms - b->last_ms;
    b->last_ms = now_ms;
    if (b->units >= cap)
        return;
    uint64_t missing = cap - b->units;
    /* elapsed * requests could overflow only far beyond the time to fill: clamp first. */
    if (elapsed >= missing / r->requests + 1) {
        b->units = cap;
        return;
    }
    uint64_t add = elapsed * r->requests;
    b->units = add >= missing ? cap : b->units + add;
}

uint64_t mg_rl_bucket_tokens(const mg_rl_bucket_t *b, const mg_rate_rule_t *r)
{
    return b->units / r->per_ms;
}

uint64_t mg_rl_bucket_wait_ms(const mg_rl_bucket_t *b, const mg_rate_rule_t *r)
{
    if (b->units >= r->per_ms)
        return 0;
    uint64_t need = r->per_ms - b->units;
    return (need + r->requests - 1) / r->requests;
}

uint64_t mg_rl_bucket_full_ms(const mg_rl_bucket_t *b, const mg_rate_rule_t *r)
{
    uint64_t cap = cap_units(r);
    if (b->units >= cap)
        return 0;
    return (cap - b->units + r->requests - 1) / r->requests;
}

/* ---- local store ---- */

typedef struct local_store {
    mg_rl_store_t base;
    mg_map_t buckets; /* key -> mg_rl_bucket_t* (each remembers the rule it was last used with) */
    size_t max;
} local_store_t;

typedef struct lbucket {
    mg_rl_bucket_t b;
    const mg_rate_rule_t *rule;
} lbucket_t;

static void make_room(local_store_t *ls, uint64_t now_ms)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&ls->buckets, &pos, &key, &val)) {
        lbucket_t *lb = val;
        mg_rl_bucket_refill(&lb->b, lb->rule, now_ms);
        if (lb->b.units >= cap_units(lb->rule)) {
            free(mg_map_del(&ls->buckets, key));
        }
    }
    if (ls->buckets.count < ls->max)
        return;
    const char *oldest = NULL;
    uint64_t oldest_ms = UINT64_MAX;
    pos = 0;
    while (mg_map_next(&ls->buckets, &pos, &key, &val)) {
        if (((lbucket_t *)val)->b.last_ms < oldest_ms) {
            oldest_ms = ((lbucket_t *)val)->b.last_ms;
            oldest = key;
        }
    }
    if (oldest != NULL)
        free(mg_map_del(&ls->buckets, oldest));
}

static lbucket_t *get_bucket(local_store_t *ls, const mg_rl_key_t *k, uint64_t now_ms)
{
    lbucket_t *lb = mg_map_get(&ls->buckets, k->key);
    if (lb != NULL) {
        if (lb->rule != k->rule) { /* another rule for this key: keep its fill ratio simple, start full */
            lb->rule = k->rule;
            mg_rl_bucket_init(&lb->b, k->rule, now_ms);
        }
        mg_rl_bucket_refill(&lb->b, k->rule, now_ms);
        return lb;
    }
    if (ls->buckets.count >= ls->max)
        make_room(ls, now_ms);
    lb = malloc(sizeof *lb);
    if (lb == NULL)
        return NULL;
    lb->rule = k->rule;
    mg_rl_bucket_init(&lb->b, k->rule, now_ms);
    if (mg_map_set(&ls->buckets, k->key, lb) != 0) {
        free(lb);
        return NULL;
    }
    return lb;
}

static void local_take(mg_rl_store_t *st, const mg_rl_key_t *keys, size_t n, uint64_t now_ms,
                       mg_rl_done_cb cb, void *data)
{
    local_store_t *ls = (local_store_t *)st;
    mg_rl_result_t res = {1, 0, UINT64_MAX, 0, 0, 0};
    lbucket_t *bs[8];
    if (n > 8)
        n = 8;
    for (size_t i = 0; i < n; i++) {
        bs[i] = get_bucket(ls, &keys[i], now_ms);
        if (bs[i] == NULL)
            continue; /* out of memory: this bucket does not limit (logged by nobody; memory is gone) */
        uint64_t wait = mg_rl_bucket_wait_ms(&bs[i]->b, keys[i].rule);
        if (wait > 0 && (res.allowed || wait > res.retry_after_ms)) {
            res.allowed = 0;
            res.limiting = i;
            res.retry_after_ms = wait;
        }
    }
    if (!res.allowed) {
        res.remaining = 0;
        res.reset_ms = mg_rl_bucket_full_ms(&bs[res.limiting]->b, keys[res.limiting].rule);
        cb(data, &res);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (bs[i] == NULL)
            continue;
        bs[i]->b.units -= keys[i].rule->per_ms;
        uint64_t left = mg_rl_bucket_tokens(&bs[i]->b, keys[i].rule);
        if (left < res.remaining) {
            res.remaining = left;
            res.limiting = i;
            res.reset_ms = mg_rl_bucket_full_ms(&bs[i]->b, keys[i].rule);
        }
    }
    if (res.remaining == UINT64_MAX)
        res.remaining = 0;
    cb(data, &res);
}

static void local_free(mg_rl_store_t *st)
{
    local_store_t *ls = (local_store_t *)st;
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&ls->buckets, &pos, &key, &val))
        free(val);
    mg_map_dispose(&ls->buckets);
    free(ls);
}

static const mg_rl_store_ops_t local_ops = {local_take, local_free};

mg_rl_store_t *mg_rl_store_local_new(size_t max_buckets)
{
    local_store_t *ls = calloc(1, sizeof *ls);
    if (ls == NULL)
        return NULL;
    ls->base.ops = &local_ops;
    ls->max = max_buckets ? max_buckets : 1;
    mg_map_init(&ls->buckets);
    return &ls->base;
}

size_t mg_rl_store_local_count(const mg_rl_store_t *st)
{
    return ((const local_store_t *)st)->buckets.count;
}
