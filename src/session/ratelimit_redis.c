/*
 * ratelimit_redis.c - the shared rate-limit bucket store (rl_store.h) over the session
 * store's Redis client: every replica takes tokens from the same buckets.
 *
 * One take = one EVALSHA of mg__redis_lua_rate (EVAL when the server lost its script cache), so the
 * all-or-none rule holds across replicas. The script does the bucket math of src/policy/ratelimit.c (exact:
 * every value stays below 2^53, the limits of src/config/policy_config.c keep them under 2^47) with Redis's
 * own clock (TIME), since each replica's loop clock starts at its own zero. Keys are
 * "<keyPrefix>rl:<bucket>" hashes (u = units, t = ms, r = rule "requests/per_ms/burst"; a bucket
 * seen with another rule starts full, as in the local store) that expire when they would be full
 * again: forgetting a full bucket changes nothing.
 *
 * Redis unreachable, slow past timeoutMs, or a script error: the take ends with result.error ==
 * MG_EIO and allowed == 0; the policy answers 503 + Retry-After (fail closed, like sessions).
 * Read next: src/policy/hooks.c (rate_done), docs/security.md#rate-limits.
 */
#include "../common/err.h"
#include "rl_store.h"
#include "redis_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * KEYS: the buckets. ARGV: requests, per_ms, burst of each bucket in turn.
 * Returns {allowed, limiting index (0-based), remaining, retry_after_ms, reset_ms} (rl_store.h).
 */
const char mg__redis_lua_rate[] =
    "local tm = redis.call('TIME')\n"
    "local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)\n"
    "local n = #KEYS\n"
    "local u, req, per, cap, sig = {}, {}, {}, {}, {}\n"
    "local deny, dwait = 0, 0\n"
    "for i = 1, n do\n"
    "  req[i] = tonumber(ARGV[3 * i - 2])\n"
    "  per[i] = tonumber(ARGV[3 * i - 1])\n"
    "  cap[i] = tonumber(ARGV[3 * i]) * per[i]\n"
    "  sig[i] = ARGV[3 * i - 2] .. '/' .. ARGV[3 * i - 1] .. '/' .. ARGV[3 * i]\n"
    "  local v = redis.call('HMGET', KEYS[i], 'u', 't', 'r')\n"
    "  local units, last = tonumber(v[1]), tonumber(v[2])\n"
    "  if units == nil or last == nil or v[3] ~= sig[i] then units = cap[i]; last = now end\n"
    "  if now > last and units < cap[i] then\n"
    "    local miss = cap[i] - units\n"
    "    local el = now - last\n"
    "    if el >= math.floor(miss / req[i]) + 1 or el * req[i] >= miss then units = cap[i]\n"
    "    else units = units + el * req[i] end\n"
    "  end\n"
    "  u[i] = units\n"
    "  if units < per[i] then\n"
    "    local w = math.floor((per[i] - units + req[i] - 1) / req[i])\n"
    "    if deny == 0 or w > dwait then deny = i; dwait = w end\n"
    "  end\n"
    "end\n"
    "if deny > 0 then\n"
    "  return {0, deny - 1, 0, dwait, math.floor((cap[deny] - u[deny] + req[deny] - 1) / req[deny])}\n"
    "end\n"
    "local lim, rem, reset = 0, -1, 0\n"
    "for i = 1, n do\n"
    "  local units = u[i] - per[i]\n"
    "  local full = math.floor((cap[i] - units + req[i] - 1) / req[i])\n"
    "  redis.call('HSET', KEYS[i], 'u', units, 't', now, 'r', sig[i])\n"
    "  redis.call('PEXPIRE', KEYS[i], full + 1000)\n"
    "  local left = math.floor(units / per[i])\n"
    "  if rem < 0 or left < rem then lim = i - 1; rem = left; reset = full end\n"
    "end\n"
    "return {1, lim, rem, 0, reset}\n";

#define MAX_KEYS 8

typedef struct rl_redis {
    mg_rl_store_t base;
    mg_redis_t *r;
} rl_redis_t;

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

static uint64_t elem_u64(const redisReply *a, size_t i)
{
    const redisReply *e = a->element[i];
    return e->type == REDIS_REPLY_INTEGER && e->integer > 0 ? (uint64_t)e->integer : 0;
}

static void take_reply_cb(mg_redis_t *r, redisReply *reply, void *data)
{
    take_t *t = data;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 5) {
        r->ops_failed++;
        fail(t->cb, t->data); /* also while closing: the caller's job is freed by its callback */
        free(t);
        return;
    }
    mg_rl_result_t res = {elem_u64(reply, 0) == 1, (size_t)elem_u64(reply, 1), elem_u64(reply, 2),
                          elem_u64(reply, 3),      elem_u64(reply, 4),         0};
    if (res.limiting >= t->n)
        res.limiting = 0;
    r->ops_ok++;
    t->cb(t->data, &res);
    free(t);
}

static void rr_take(mg_rl_store_t *st, const mg_rl_key_t *keys, size_t n, uint64_t now_ms, mg_rl_done_cb cb,
                    void *data)
{
    (void)now_ms; /* the script uses Redis's clock: the replicas' loop clocks differ */
    mg_redis_t *r = ((rl_redis_t *)st)->r;
    if (n > MAX_KEYS)
        n = MAX_KEYS;
    const char *args[MAX_KEYS * 4];
    char *own[MAX_KEYS * 4] = {0};
    size_t na = 0;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        size_t kl = r->prefix_len + 3 + strlen(keys[i].key) + 1;
        own[na] = malloc(kl);
        ok = own[na] != NULL;
        if (ok)
            snprintf(own[na], kl, "%srl:%s", r->prefix, keys[i].key);
        args[na] = own[na];
        na++;
    }
    for (size_t i = 0; i < n && ok; i++) {
        const mg_rate_rule_t *ru = keys[i].rule;
        uint64_t v[3] = {ru->requests, ru->per_ms, ru->burst};
        for (int k = 0; k < 3 && ok; k++) {
            own[na] = malloc(24);
            ok = own[na] != NULL;
            if (ok)
                snprintf(own[na], 24, "%llu", (unsigned long long)v[k]);
            args[na] = own[na];
            na++;
        }
    }
    take_t *t = ok ? malloc(sizeof *t) : NULL;
    int e = MG_ENOMEM;
    if (t != NULL) {
        t->cb = cb;
        t->data = data;
        t->n = n;
        e = mg__redis_eval(r, SCRIPT_RATE, (int)n, (int)na, args, NULL, take_reply_cb, t);
        if (e != 0)
            free(t);
    }
    for (size_t i = 0; i < na; i++)
        free(own[i]);
    if (e != 0) { /* not connected (or no memory): take_reply_cb never runs */
        r->ops_failed++;
        fail(cb, data);
    }
}

static void rr_free(mg_rl_store_t *st)
{
    rl_redis_t *s = (rl_redis_t *)st;
    mg_redis_t *r = s->r;
    free(s);
    mg__redis_release(r);
}

static const mg_rl_store_ops_t rr_ops = {rr_take, rr_free};

mg_rl_store_t *mg_redis_rl_new(mg_store_t *session_store)
{
    mg_redis_t *r = mg__redis_of_store(session_store);
    if (r == NULL)
        return NULL;
    rl_redis_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        mg__redis_release(r);
        return NULL;
    }
    s->base.ops = &rr_ops;
    s->r = r;
    return &s->base;
}
