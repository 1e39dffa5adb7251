/*
 * task_store_redis.c - task_store.h over the session store's Redis client: every replica reads
 * and writes the same task records, so tasks/get and tasks/cancel work wherever they land.
 *
 * Keys (behind gateway.sessions.keyPrefix):
 *   t:<task>        string  the record JSON (task_store.h); PX = the task's TTL
 *   tp:<principal>  zset    the principal's unfinished tasks, score = their expiry (Redis ms);
 *                           members past their score are dropped before counting
 * One Lua script per operation (atomic, one round trip). get checks the owner's registry key
 * (r:<replica>, cluster_registry.c) and turns an unfinished task of a gone replica into a failed
 * one, so a task never stays "working" after its replica died. The scripts rebuild that failed
 * record from scalar fields only (cjson would turn an empty object of a result into an array).
 * Read next: task_store.h, store_redis.c (the client), gateway/tasks.c.
 */
#include "task_store.h"
#include "redis_int.h"
#include "../common/err.h"
#include "../common/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS: t:<id>, tp:<principal>. ARGV: record, ttl ms, limit, id. Returns 1, or 0 at the limit. */
const char mg__redis_lua_task_create[] =
    "local tm = redis.call('TIME')\n"
    "local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)\n"
    "if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[4])\n"
    "redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]) + 1000)\n"
    "return 1\n";

/* KEYS: t:<id>. ARGV: registry prefix, why the owner is gone, tp: prefix, the error's JSON-RPC
 * code. Returns the record or false. */
const char mg__redis_lua_task_get[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return false end\n"
    "local d = cjson.decode(v)\n"
    "if (d.status == 'working' or d.status == 'input_required') and type(d.owner) == 'string' and\n"
    "   d.owner ~= '' and redis.call('EXISTS', ARGV[1] .. d.owner) == 0 then\n"
    "  local tm = redis.call('TIME')\n"
    "  local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)\n"
    "  local f = {id = d.id, principal = d.principal, owner = d.owner, status = 'failed',\n"
    "    statusMessage = ARGV[2], createdAt = d.createdAt, updatedAt = now, ttlMs = d.ttlMs,\n"
    "    pollIntervalMs = d.pollIntervalMs, legacy = d.legacy,\n"
    "    error = {code = tonumber(ARGV[4]), message = ARGV[2]}}\n"
    "  v = cjson.encode(f)\n"
    "  redis.call('SET', KEYS[1], v, 'KEEPTTL')\n"
    "  redis.call('ZREM', ARGV[3] .. (d.principal or ''), d.id)\n"
    "end\n"
    "return v\n";

/* KEYS: t:<id>, tp:<principal>. ARGV: record, 1 when it is terminal, id. Returns {1} written,
 * {0} absent, {2, stored} when the stored record is terminal. */
const char mg__redis_lua_task_update[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if not v then return {0} end\n"
    "local d = cjson.decode(v)\n"
    "if d.status == 'completed' or d.status == 'failed' or d.status == 'cancelled' then return {2, v} end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')\n"
    "if ARGV[2] == '1' then redis.call('ZREM', KEYS[2], ARGV[3]) end\n"
    "return {1}\n";

typedef struct task_redis {
    mg_task_store_t base;
    mg_redis_t *r;
} task_redis_t;

typedef struct op {
    mg_task_store_cb cb;
    void *data;
    json_t *rec; /* create/update: what was written (passed on success) */
} op_t;

static const char *field(const json_t *rec, const char *k)
{
    const char *v = json_string_value(json_object_get(rec, k));
    return v != NULL ? v : "";
}

static void op_end(op_t *o, int err, json_t *rec)
{
    o->cb(o->data, err, rec);
    json_decref(o->rec);
    free(o);
}

static json_t *parse(const redisReply *s)
{
    if (s == NULL || s->type != REDIS_REPLY_STRING)
        return NULL;
    return json_loadb(s->str, s->len, 0, NULL);
}

static void create_reply_cb(mg_redis_t *r, redisReply *reply, void *data)
{
    op_t *o = data;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        r->ops_failed++;
        op_end(o, MG_EIO, NULL);
        return;
    }
    r->ops_ok++;
    op_end(o, reply->integer == 1 ? 0 : MG_EBUSY, reply->integer == 1 ? o->rec : NULL);
}

static void get_reply_cb(mg_redis_t *r, redisReply *reply, void *data)
{
    op_t *o = data;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        r->ops_failed++;
        op_end(o, MG_EIO, NULL);
        return;
    }
    r->ops_ok++;
    json_t *rec = parse(reply);
    op_end(o, 0, rec);
    json_decref(rec);
}

static void update_reply_cb(mg_redis_t *r, redisReply *reply, void *data)
{
    op_t *o = data;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER) {
        r->ops_failed++;
        op_end(o, MG_EIO, NULL);
        return;
    }
    r->ops_ok++;
    long long code = reply->element[0]->integer;
    if (code == 1) {
        op_end(o, 0, o->rec);
    } else if (code == 2 && reply->elements == 2) {
        json_t *stored = parse(reply->element[1]);
        op_end(o, MG_EBUSY, stored);
        json_decref(stored);
    } else {
        op_end(o, 0, NULL);
    }
}

/* Runs script s with keys and args (all NUL-terminated strings). */
static int run(task_redis_t *t, int s, int nkeys, int nargs, const char **args, rc_reply_cb fn,
               mg_task_store_cb cb, void *data, const json_t *rec)
{
    op_t *o = calloc(1, sizeof *o);
    if (o == NULL)
        return MG_ENOMEM;
    o->cb = cb;
    o->data = data;
    o->rec = rec != NULL ? mg_json_deep_copy(rec) : NULL;
    int e = mg__redis_eval(t->r, s, nkeys, nargs, args, NULL, fn, o);
    if (e != 0) {
        t->r->ops_failed++;
        json_decref(o->rec);
        free(o);
    }
    return e;
}

static char *key(mg_redis_t *r, const char *kind, const char *name)
{
    size_t n = r->prefix_len + strlen(kind) + strlen(name) + 1;
    char *k = malloc(n);
    if (k != NULL)
        snprintf(k, n, "%s%s%s", r->prefix, kind, name);
    return k;
}

static int tr_create(mg_task_store_t *st, const json_t *record, unsigned limit, uint64_t ttl_ms,
                     mg_task_store_cb cb, void *data)
{
    task_redis_t *t = (task_redis_t *)st;
    char *text = json_dumps(record, JSON_COMPACT);
    char *k1 = key(t->r, "t:", field(record, "id"));
    char *k2 = key(t->r, "tp:", field(record, "principal"));
    char ttl[24], lim[24];
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
    snprintf(lim, sizeof lim, "%u", limit);
    int e = MG_ENOMEM;
    if (text != NULL && k1 != NULL && k2 != NULL) {
        const char *args[] = {k1, k2, text, ttl, lim, field(record, "id")};
        e = run(t, SCRIPT_TASK_CREATE, 2, 6, args, create_reply_cb, cb, data, record);
    }
    free(text);
    free(k1);
    free(k2);
    return e;
}

static int tr_get(mg_task_store_t *st, const char *id, const char *why_gone, mg_task_store_cb cb, void *data)
{
    task_redis_t *t = (task_redis_t *)st;
    char *k1 = key(t->r, "t:", id);
    char *reg = key(t->r, "r:", "");
    char *tp = key(t->r, "tp:", "");
    int e = MG_ENOMEM;
    if (k1 != NULL && reg != NULL && tp != NULL) {
        char code[16];
        snprintf(code, sizeof code, "%d", mg_err_jsonrpc_code(MG_EREPLICA));
        const char *args[] = {k1, reg, why_gone, tp, code};
        e = run(t, SCRIPT_TASK_GET, 1, 5, args, get_reply_cb, cb, data, NULL);
    }
    free(k1);
    free(reg);
    free(tp);
    return e;
}

static int tr_update(mg_task_store_t *st, const json_t *record, mg_task_store_cb cb, void *data)
{
    task_redis_t *t = (task_redis_t *)st;
    char *text = json_dumps(record, JSON_COMPACT);
    char *k1 = key(t->r, "t:", field(record, "id"));
    char *k2 = key(t->r, "tp:", field(record, "principal"));
    int e = MG_ENOMEM;
    if (text != NULL && k1 != NULL && k2 != NULL) {
        const char *args[] = {k1, k2, text, mg_task_status_terminal(field(record, "status")) ? "1" : "0",
                              field(record, "id")};
        e = run(t, SCRIPT_TASK_UPDATE, 2, 5, args, update_reply_cb, cb, data, record);
    }
    free(text);
    free(k1);
    free(k2);
    return e;
}

static void tr_free(mg_task_store_t *st)
{
    task_redis_t *t = (task_redis_t *)st;
    mg_redis_t *r = t->r;
    free(t);
    mg__redis_release(r);
}

static const mg_task_store_ops_t tr_ops = {tr_create, tr_get, tr_update, tr_free};

mg_task_store_t *mg_redis_task_store_new(struct mg_store *session_store)
{
    mg_redis_t *r = mg__redis_of_store(session_store);
    if (r == NULL)
        return NULL;
    task_redis_t *t = calloc(1, sizeof *t);
    if (t == NULL) {
        mg__redis_release(r);
        return NULL;
    }
    t->base.ops = &tr_ops;
    t->r = r;
    return &t->base;
}
