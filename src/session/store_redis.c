/*
 * store_redis.c - store.h and bus.h over Redis/Valkey (redis_conn.c carries the connections).
 *
 * Keys (all behind gateway.sessions.keyPrefix, default "mcpgate:"):
 *
 *   | key / channel                 | type    | content                                             |
 *   |-------------------------------|---------|-----------------------------------------------------|
 *   | s:<scope>:<session>           | hash    | r = record JSON (immutable part), lr = log level,   |
 *   |                               |         | u:<uri> = server index, o = owner replica; PEXPIRE  |
 *   |                               |         | = session idle TTL, extended by every request       |
 *   | x:<scope>:<session>:<stream>  | stream  | events: id "<seq>-0", fields d (data), e (1 = end); |
 *   |                               |         | MAXLEN ~ sseReplayEvents; PEXPIRE = session TTL     |
 *   | x:...:<stream>:n              | string  | seq counter of a log with several writers           |
 *   | e:<scope>:<session>:<stream>  | channel | live events of that stream (bus.h message format)   |
 *   | r:<replica>                   | string  | replica registry: advertise address; PX 3 s         |
 *   | i:<replica>, all              | channel | a replica's inbox; broadcast to every replica       |
 *   | ping:<random>                 | channel | this process's pub/sub liveness ping                |
 *   | rl:<bucket>                   | hash    | rate-limit bucket (ratelimit_redis.c): u = units,   |
 *   |                               |         | t = Redis ms, r = rule; PEXPIRE = until full again  |
 *   | t:<task>, tp:<principal>      | string, | task record JSON; a principal's unfinished tasks    |
 *   |                               | zset    | (task_store_redis.c)                                |
 *
 * Every multi-step change is one Lua script (atomic, one round trip): put, load (touch + owner
 * liveness + claim + read), patch, owner compare-and-set, append (XADD + PEXPIRE + PUBLISH). The
 * scripts touch registry keys they do not declare, so Redis Cluster is not supported (Sentinel is).
 * Read next: redis_conn.c, docs/adr/0002-shared-session-store.md.
 */
#include "redis_int.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Lua ---- */

static const char lua_put[] = "redis.call('DEL', KEYS[1])\n"
                              "redis.call('HSET', KEYS[1], unpack(ARGV, 2))\n"
                              "redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
                              "return 1\n";

/* ARGV: ttl, replica ('' = none), registry prefix, claim ('1'). */
static const char lua_load[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return false end\n"
    "local ttl = tonumber(ARGV[1])\n"
    "if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
    "local me = ARGV[2]\n"
    "if me ~= '' then\n"
    "  local o = redis.call('HGET', KEYS[1], 'o')\n"
    "  if o and o ~= me and string.sub(o, 1, 1) ~= '!' and redis.call('EXISTS', ARGV[3] .. o) == 0 then\n"
    "    redis.call('HSET', KEYS[1], 'o', '!' .. o)\n"
    "  elseif (not o) and ARGV[4] == '1' then\n"
    "    redis.call('HSET', KEYS[1], 'o', me)\n"
    "  end\n"
    "end\n"
    "return redis.call('HGETALL', KEYS[1])\n";

/* ARGV: nset, then nset field/value pairs, then fields to delete. */
static const char lua_patch[] = "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
                                "local n = tonumber(ARGV[1])\n"
                                "local i = 2\n"
                                "while i < 2 + 2 * n do\n"
                                "  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])\n"
                                "  i = i + 2\n"
                                "end\n"
                                "while i <= #ARGV do\n"
                                "  redis.call('HDEL', KEYS[1], ARGV[i])\n"
                                "  i = i + 1\n"
                                "end\n"
                                "return 1\n";

/* ARGV: expect ('' = none), value ('' = none). */
static const char lua_cas[] = "if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end\n"
                              "local o = redis.call('HGET', KEYS[1], 'o') or ''\n"
                              "if o ~= ARGV[1] then return 0 end\n"
                              "if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'o')\n"
                              "else redis.call('HSET', KEYS[1], 'o', ARGV[2]) end\n"
                              "return 1\n";

/* ARGV: seq (0 = next of the counter), maxlen (0 = keep none), ttl, channel, data, end ('1'). */
static const char lua_append[] =
    "local seq = tonumber(ARGV[1])\n"
    "local ttl = tonumber(ARGV[3])\n"
    "if seq == 0 then\n"
    "  seq = redis.call('INCR', KEYS[1] .. ':n')\n"
    "  if ttl > 0 then redis.call('PEXPIRE', KEYS[1] .. ':n', ttl) end\n"
    "end\n"
    "if tonumber(ARGV[2]) > 0 then\n"
    "  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], seq .. '-0', 'd', ARGV[5], 'e', ARGV[6])\n"
    "  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
    "end\n"
    "local kind = 'd'\n"
    "if ARGV[6] == '1' then kind = 'e' end\n"
    "redis.call('PUBLISH', ARGV[4], seq .. ' ' .. kind .. '\\n' .. ARGV[5])\n"
    "return seq\n";

static const char lua_last[] = "local n = tonumber(redis.call('GET', KEYS[1] .. ':n') or '0')\n"
                               "local r = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)\n"
                               "if #r > 0 then\n"
                               "  local id = r[1][1]\n"
                               "  local s = tonumber(string.sub(id, 1, string.find(id, '-') - 1))\n"
                               "  if s > n then n = s end\n"
                               "end\n"
                               "return n\n";

/* ---- the two views ---- */

typedef struct rstore {
    mg_store_t base;
    mg_redis_t *r;
} rstore_t;

typedef struct rbus {
    mg_bus_t base;
    mg_redis_t *r;
} rbus_t;

static mg_redis_t *R(mg_store_t *st)
{
    return ((rstore_t *)st)->r;
}

static mg_redis_t *RB(mg_bus_t *b)
{
    return ((rbus_t *)b)->r;
}

static char *key_of(mg_redis_t *r, const char *kind, const char *name)
{
    size_t n = r->prefix_len + strlen(kind) + strlen(name) + 1;
    char *k = malloc(n);
    if (k != NULL)
        snprintf(k, n, "%s%s%s", r->prefix, kind, name);
    return k;
}

static void release(mg_redis_t *r)
{
    if (--r->refs > 0)
        return;
    mg__redis_conn_close(r);
    /* subscribers were freed by rb_free(); the map is empty */
    mg_map_dispose(&r->channels);
    if (r->confirm_idle != NULL)
        uv_close((uv_handle_t *)r->confirm_idle, (uv_close_cb)free);
    mg_redis_target_dispose(&r->target);
    free(r->password);
    free(r->sentinel_password);
    free(r->prefix);
    free(r);
}

/* ---- record <-> hash ---- */

/* NEW reference: the record from an HGETALL reply (flat field/value array); NULL when empty. */
static json_t *record_from_hash(const redisReply *reply)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2)
        return NULL;
    json_t *rec = NULL, *subs = json_object();
    const char *owner = NULL, *lr = NULL;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *f = reply->element[i], *v = reply->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(f->str, "r") == 0) {
            json_decref(rec);
            rec = json_loadb(v->str, v->len, 0, NULL);
        } else if (strcmp(f->str, "o") == 0) {
            owner = v->str;
        } else if (strcmp(f->str, "lr") == 0) {
            lr = v->str;
        } else if (strncmp(f->str, "u:", 2) == 0) {
            json_object_set_new(subs, f->str + 2, json_integer(atoi(v->str)));
        }
    }
    if (!json_is_object(rec)) {
        json_decref(rec);
        json_decref(subs);
        return NULL;
    }
    if (owner != NULL)
        json_object_set_new(rec, "owner", json_string(owner));
    if (lr != NULL)
        json_object_set_new(rec, "logLevel", json_integer(atoi(lr)));
    json_object_set_new(rec, "subs", subs);
    return rec;
}

/* ---- one command ---- */

/* One operation in flight: the caller's callback (one of them, by operation) and its data. */
typedef struct op op_t;

/* What to do with an operation's reply (reply NULL: the command failed or timed out). */
typedef void (*op_reply_fn)(mg_redis_t *r, redisReply *reply, op_t *q);

struct op {
    mg_redis_t *r;
    op_reply_fn on_reply;
    mg_store_get_cb get_cb;
    mg_store_done_cb done_cb;
    mg_bus_append_cb seq_cb;
    mg_bus_range_cb range_cb;
    mg_bus_value_cb value_cb;
    mg_bus_done_cb bus_done_cb;
    void *data;
};

/* NEW op (calloc: every callback NULL), or NULL. */
static op_t *op_new(mg_redis_t *r, void *data)
{
    op_t *q = calloc(1, sizeof(*q));
    if (q != NULL) {
        q->r = r;
        q->data = data;
    }
    return q;
}

/* Every reply arrives here: on_reply runs unless the connection is closing (the caller is being
 * freed: no callback then), and the op is freed afterwards. */
static void op_reply_cb(mg_redis_t *r, redisReply *reply, void *data)
{
    op_t *q = data;
    if (q == NULL)
        return; /* nobody waits (publish) */
    if (!(reply == NULL && r->closing))
        q->on_reply(r, reply, q);
    free(q);
}

#define OP_MAX_ARGS 8

/* Sends `verb <prefix><kind><name> args...` (verb NULL: runs script with that key as KEYS[1] and
 * args as ARGV) and has cb(reply, q) called once. lens NULL: each arg is NUL-terminated. q (may be
 * NULL for a reply nobody waits for) is taken over: freed here when nothing was sent. Returns 0 or
 * MG_ENOMEM / MG_EIO (q freed, cb never called); q == NULL with a callback that needs it is
 * MG_ENOMEM (op_new failed). */
static int op_send(mg_redis_t *r, const char *verb, int script, const char *kind, const char *name, int n,
                   const char *const *args, const size_t *lens, op_reply_fn fn, op_t *q, int need_q)
{
    const char *argv[OP_MAX_ARGS + 2];
    size_t alen[OP_MAX_ARGS + 2];
    char *k = n <= OP_MAX_ARGS && (q != NULL || !need_q) ? key_of(r, kind, name) : NULL;
    int e = MG_ENOMEM;
    if (k != NULL) {
        int a = 0;
        if (verb != NULL) {
            argv[a] = verb;
            alen[a++] = strlen(verb);
        }
        argv[a] = k;
        alen[a++] = strlen(k);
        for (int i = 0; i < n; i++) {
            argv[a] = args[i];
            alen[a++] = lens != NULL ? lens[i] : strlen(args[i]);
        }
        if (q != NULL)
            q->on_reply = fn;
        e = verb != NULL ? mg__redis_command(r, a, argv, alen, op_reply_cb, q)
                         : mg__redis_eval(r, script, 1, a, argv, alen, op_reply_cb, q);
    }
    if (e != 0)
        free(q);
    free(k);
    return e;
}

static int reply_err(const redisReply *reply)
{
    return reply == NULL ? MG_EIO : reply->type == REDIS_REPLY_ERROR ? MG_EINTERNAL : 0;
}

/* ---- store operations ---- */

static void record_reply(mg_redis_t *r, redisReply *reply, op_t *q)
{
    int err = reply_err(reply);
    if (err != 0)
        r->ops_failed++;
    json_t *rec = err == 0 ? record_from_hash(reply) : NULL;
    q->get_cb(err, rec, q->data);
    json_decref(rec);
}

/* Integer replies: 1 = done, 0 = not found (or CAS mismatch), -1 = not found for CAS. */
/* Integer replies: 1 = done, 0 = not found (zero_err: or the CAS held something else), -1 = not
 * found. count: failures count in the connection's ops_failed. */
static void integer_reply(mg_redis_t *r, redisReply *reply, op_t *q, int zero_err, int count)
{
    int err = reply_err(reply);
    if (err == 0 && reply->type == REDIS_REPLY_INTEGER)
        err = reply->integer == 1 ? 0 : reply->integer == 0 ? zero_err : MG_ENOTFOUND;
    if (count && (err == MG_EIO || err == MG_EINTERNAL))
        r->ops_failed++;
    if (q->done_cb)
        q->done_cb(err, q->data);
}

static void int_reply(mg_redis_t *r, redisReply *reply, op_t *q)
{
    integer_reply(r, reply, q, MG_ENOTFOUND, 1);
}

static void cas_reply(mg_redis_t *r, redisReply *reply, op_t *q)
{
    integer_reply(r, reply, q, MG_EBUSY, 0);
}

/* NEW op for a store operation answering through cb (get) or done (the others). */
static op_t *store_op(mg_redis_t *r, mg_store_get_cb get, mg_store_done_cb done, void *data)
{
    op_t *q = op_new(r, data);
    if (q != NULL) {
        q->get_cb = get;
        q->done_cb = done;
    }
    return q;
}

/* Sends script on the session's record key s:<id> with n arguments of up to OP_MAX_ARGS, or more
 * (put and patch: one pair per subscription) from a heap array. */
static int store_eval(mg_redis_t *r, int script, const char *id, size_t n, const char **args, op_reply_fn fn,
                      op_t *q)
{
    if (q == NULL)
        return MG_ENOMEM;
    if (n <= OP_MAX_ARGS)
        return op_send(r, NULL, script, "s:", id, (int)n, args, NULL, fn, q, 1);
    const char **argv = malloc((n + 1) * sizeof(*argv));
    char *k = key_of(r, "s:", id);
    int e = MG_ENOMEM;
    if (argv != NULL && k != NULL) {
        argv[0] = k;
        memcpy(argv + 1, args, n * sizeof(*args));
        q->on_reply = fn;
        e = mg__redis_eval(r, script, 1, (int)n + 1, argv, NULL, op_reply_cb, q);
    }
    if (e != 0)
        free(q);
    free(argv);
    free(k);
    return e;
}

/* Appends the "u:<uri>" field and its server index to args (own[] keeps the copies). */
static void add_sub(const char **args, char **own, size_t *n, const char *uri, const json_t *v)
{
    size_t fl = strlen(uri) + 3;
    own[*n] = malloc(fl);
    if (own[*n] != NULL)
        snprintf(own[*n], fl, "u:%s", uri);
    args[*n] = own[*n] ? own[*n] : "u:";
    (*n)++;
    if (v == NULL)
        return;
    own[*n] = malloc(24);
    if (own[*n] != NULL)
        snprintf(own[*n], 24, "%d", (int)json_integer_value(v));
    args[*n] = own[*n] ? own[*n] : "0";
    (*n)++;
}

static int rs_put(mg_store_t *st, const char *id, const json_t *record, uint64_t ttl_ms, mg_store_done_cb cb,
                  void *data)
{
    mg_redis_t *r = R(st);
    json_t *core = mg_json_deep_copy(record);
    if (core == NULL)
        return MG_ENOMEM;
    json_t *subs = json_incref(json_object_get(core, "subs"));
    json_t *owner = json_incref(json_object_get(core, "owner"));
    json_t *lvl = json_incref(json_object_get(core, "logLevel"));
    json_object_del(core, "subs");
    json_object_del(core, "owner");
    json_object_del(core, "logLevel");
    char *text = json_dumps(core, JSON_COMPACT);
    json_decref(core);
    size_t nargs = 3 + 2 * json_object_size(subs) + 4;
    const char **args = calloc(nargs, sizeof(*args));
    char **own = calloc(nargs, sizeof(*own));
    int e = MG_ENOMEM;
    if (text != NULL && args != NULL && own != NULL) {
        size_t n = 0;
        char ttl[24];
        snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
        args[n++] = ttl;
        args[n++] = "r";
        args[n++] = text;
        char lr[16];
        if (json_is_integer(lvl)) {
            snprintf(lr, sizeof lr, "%d", (int)json_integer_value(lvl));
            args[n++] = "lr";
            args[n++] = lr;
        }
        if (json_is_string(owner)) {
            args[n++] = "o";
            args[n++] = json_string_value(owner);
        }
        const char *uri;
        json_t *v;
        json_object_foreach(subs, uri, v) add_sub(args, own, &n, uri, v);
        e = store_eval(r, SCRIPT_PUT, id, n, args, int_reply, store_op(r, NULL, cb, data));
    }
    for (size_t i = 0; own != NULL && i < nargs; i++)
        free(own[i]);
    free(own);
    free(args);
    free(text);
    json_decref(subs);
    json_decref(owner);
    json_decref(lvl);
    return e;
}

static int rs_get(mg_store_t *st, const char *id, mg_store_get_cb cb, void *data)
{
    mg_redis_t *r = R(st);
    return op_send(r, "HGETALL", 0, "s:", id, 0, NULL, NULL, record_reply, store_op(r, cb, NULL, data), 1);
}

static int rs_touch(mg_store_t *st, const char *id, uint64_t ttl_ms, mg_store_done_cb cb, void *data)
{
    mg_redis_t *r = R(st);
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
    const char *args[] = {ttl};
    return op_send(r, "PEXPIRE", 0, "s:", id, 1, args, NULL, int_reply, store_op(r, NULL, cb, data), 1);
}

static int rs_del(mg_store_t *st, const char *id, mg_store_done_cb cb, void *data)
{
    mg_redis_t *r = R(st);
    return op_send(r, "DEL", 0, "s:", id, 0, NULL, NULL, int_reply, store_op(r, NULL, cb, data), 1);
}

static size_t rs_count(mg_store_t *st)
{
    return 0;
}

static int rs_load(mg_store_t *st, const char *id, const mg_store_load_opts_t *o, mg_store_get_cb cb,
                   void *data)
{
    mg_redis_t *r = R(st);
    char *reg = key_of(r, "r:", "");
    op_t *q = store_op(r, cb, NULL, data);
    if (reg == NULL) {
        free(q);
        return MG_ENOMEM;
    }
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)o->ttl_ms);
    const char *args[] = {ttl, o->replica ? o->replica : "", reg, o->claim ? "1" : "0"};
    int e = store_eval(r, SCRIPT_LOAD, id, 4, args, record_reply, q);
    free(reg);
    return e;
}

static int rs_patch(mg_store_t *st, const char *id, const json_t *patch, mg_store_done_cb cb, void *data)
{
    mg_redis_t *r = R(st);
    json_t *subs = json_object_get(patch, "subs");
    size_t cap = 2 + 2 * (json_object_size(subs) + 1);
    const char **args = calloc(cap, sizeof(*args));
    char **own = calloc(cap, sizeof(*own));
    int e = MG_ENOMEM;
    if (args != NULL && own != NULL) {
        size_t n = 0, nset = 0;
        char nbuf[16], lr[16];
        args[n++] = nbuf;
        json_t *lvl = json_object_get(patch, "logLevel");
        if (json_is_integer(lvl)) {
            snprintf(lr, sizeof lr, "%d", (int)json_integer_value(lvl));
            args[n++] = "lr";
            args[n++] = lr;
            nset++;
        }
        const char *uri;
        json_t *v;
        json_object_foreach(subs, uri, v)
        {
            if (!json_is_null(v)) {
                add_sub(args, own, &n, uri, v);
                nset++;
            }
        }
        json_object_foreach(subs, uri, v)
        {
            if (json_is_null(v))
                add_sub(args, own, &n, uri, NULL);
        }
        snprintf(nbuf, sizeof nbuf, "%zu", nset);
        e = store_eval(r, SCRIPT_PATCH, id, n, args, int_reply, store_op(r, NULL, cb, data));
    }
    for (size_t i = 0; own != NULL && i < cap; i++)
        free(own[i]);
    free(own);
    free(args);
    return e;
}

static int rs_owner_cas(mg_store_t *st, const char *id, const char *expect, const char *value,
                        mg_store_done_cb cb, void *data)
{
    mg_redis_t *r = R(st);
    const char *args[] = {expect ? expect : "", value ? value : ""};
    return store_eval(r, SCRIPT_CAS, id, 2, args, cas_reply, store_op(r, NULL, cb, data));
}

static int rs_ready(mg_store_t *st)
{
    return mg__redis_ready(R(st));
}

static json_t *rs_status(mg_store_t *st)
{
    return mg__redis_status(R(st));
}

static void rs_free(mg_store_t *st)
{
    mg_redis_t *r = R(st);
    free(st);
    release(r);
}

static const mg_store_ops_t rstore_ops = {"redis", rs_put,  rs_get,   rs_touch,     rs_del,   rs_count,
                                          rs_free, rs_load, rs_patch, rs_owner_cas, rs_ready, rs_status};

mg_redis_t *mg__redis_of_store(mg_store_t *st)
{
    if (st == NULL || st->ops != &rstore_ops)
        return NULL;
    R(st)->refs++;
    return R(st);
}

void mg__redis_release(mg_redis_t *r)
{
    release(r);
}

/* ---- bus: subscriptions ---- */

struct mg_bus_sub {
    mg_redis_t *r;
    char *channel; /* prefixed */
    mg_bus_msg_cb cb;
    void *data;
    int dead;
    int confirm_pending;
    struct mg_bus_sub *next;         /* same channel */
    struct mg_bus_sub *next_confirm; /* r->confirm list */
};

/* Frees dead subscribers of channel; unsubscribes it once nobody listens. */
static void sub_reap(mg_redis_t *r, const char *channel)
{
    mg_bus_sub_t *head = mg_map_get(&r->channels, channel);
    mg_bus_sub_t **pp = &head;
    char *name = NULL;
    while (*pp != NULL) {
        mg_bus_sub_t *s = *pp;
        if (s->dead && !s->confirm_pending) {
            *pp = s->next;
            if (name == NULL)
                name = s->channel;
            else
                free(s->channel);
            free(s);
            continue;
        }
        pp = &s->next;
    }
    if (head == NULL) {
        mg_map_del(&r->channels, channel);
        mg__redis_sub_send(r, name ? name : channel, 0);
    } else {
        mg_map_set(&r->channels, channel, head);
    }
    free(name);
}

void mg__redis_on_message(mg_redis_t *r, const char *channel, const char *payload, size_t len)
{
    mg_bus_sub_t *s = mg_map_get(&r->channels, channel);
    if (s == NULL)
        return;
    r->dispatching++;
    const char *plain = strlen(channel) >= r->prefix_len ? channel + r->prefix_len : channel;
    int any_dead = 0;
    for (; s != NULL; s = s->next) {
        if (!s->dead)
            s->cb(plain, payload, len, s->data);
        any_dead |= s->dead;
    }
    r->dispatching--;
    if (any_dead && r->dispatching == 0) {
        char *ch = strdup(channel);
        if (ch != NULL) {
            sub_reap(r, ch);
            free(ch);
        }
    }
}

static void confirm_idle_cb(uv_idle_t *h)
{
    mg_redis_t *r = h->data;
    mg_bus_sub_t *list = r->confirm;
    r->confirm = NULL;
    uv_idle_stop(h);
    r->dispatching++;
    for (mg_bus_sub_t *s = list; s != NULL; s = s->next_confirm)
        if (!s->dead)
            s->cb(s->channel + r->prefix_len, NULL, 0, s->data);
    r->dispatching--;
    while (list != NULL) {
        mg_bus_sub_t *n = list->next_confirm;
        list->confirm_pending = 0;
        if (list->dead) {
            char *ch = strdup(list->channel);
            if (ch != NULL) {
                sub_reap(r, ch);
                free(ch);
            }
        }
        list = n;
    }
}

static int rb_subscribe(mg_bus_t *b, const char *channel, mg_bus_msg_cb cb, void *data, mg_bus_sub_t **out)
{
    mg_redis_t *r = RB(b);
    mg_bus_sub_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->channel = key_of(r, "", channel)) == NULL) {
        free(s);
        return MG_ENOMEM;
    }
    s->r = r;
    s->cb = cb;
    s->data = data;
    mg_bus_sub_t *head = mg_map_get(&r->channels, s->channel);
    s->next = head;
    if (mg_map_set(&r->channels, s->channel, s) != 0) {
        free(s->channel);
        free(s);
        return MG_ENOMEM;
    }
    if (head == NULL) {
        mg__redis_sub_send(r, s->channel, 1); /* its confirmation reaches every subscriber */
    } else if (r->subc.state == RC_READY) {
        s->confirm_pending = 1;
        s->next_confirm = r->confirm;
        r->confirm = s;
        uv_idle_start(r->confirm_idle, confirm_idle_cb);
    }
    *out = s;
    return 0;
}

static void rb_unsubscribe(mg_bus_t *b, mg_bus_sub_t *sub)
{
    mg_redis_t *r = RB(b);
    sub->dead = 1;
    if (r->dispatching == 0 && !sub->confirm_pending) {
        char *ch = strdup(sub->channel);
        if (ch != NULL) {
            sub_reap(r, ch);
            free(ch);
        }
    }
}

/* ---- bus: the rest ---- */

static int rb_publish(mg_bus_t *b, const char *channel, const char *payload, size_t len)
{
    const char *args[] = {payload};
    size_t lens[] = {len};
    return op_send(RB(b), "PUBLISH", 0, "", channel, 1, args, lens, NULL, NULL, 0);
}

static void seq_reply(mg_redis_t *r, redisReply *reply, op_t *q)
{
    if (q->seq_cb != NULL) {
        int err = reply_err(reply);
        uint64_t seq = err == 0 && reply->type == REDIS_REPLY_INTEGER ? (uint64_t)reply->integer : 0;
        q->seq_cb(err, seq, q->data);
    }
}

static int rb_append(mg_bus_t *b, const char *key, const char *channel, uint64_t seq, const char *data,
                     size_t len, int end, unsigned maxlen, uint64_t ttl_ms, mg_bus_append_cb cb, void *cbdata)
{
    mg_redis_t *r = RB(b);
    char *ch = key_of(r, "", channel);
    op_t *q = op_new(r, cbdata);
    if (ch == NULL || q == NULL) {
        free(ch);
        free(q);
        return MG_ENOMEM;
    }
    q->seq_cb = cb;
    char s[24], m[16], t[24];
    snprintf(s, sizeof s, "%llu", (unsigned long long)seq);
    snprintf(m, sizeof m, "%u", maxlen);
    snprintf(t, sizeof t, "%llu", (unsigned long long)ttl_ms);
    const char *args[] = {s, m, t, ch, data ? data : "", end ? "1" : "0"};
    size_t lens[] = {strlen(s), strlen(m), strlen(t), strlen(ch), data ? len : 0, 1};
    int e = op_send(r, NULL, SCRIPT_APPEND, "", key, 6, args, lens, seq_reply, q, 1);
    free(ch);
    return e;
}

static void range_reply(mg_redis_t *r, redisReply *reply, op_t *q)
{
    int err = reply_err(reply);
    if (err != 0 || reply->type != REDIS_REPLY_ARRAY) {
        q->range_cb(err ? err : MG_EINTERNAL, NULL, 0, q->data);
        return;
    }
    mg_bus_event_t *ev = calloc(reply->elements ? reply->elements : 1, sizeof(*ev));
    size_t n = 0;
    for (size_t i = 0; ev != NULL && i < reply->elements; i++) {
        redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
            e->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        ev[n].seq = strtoull(e->element[0]->str, NULL, 10);
        redisReply *f = e->element[1];
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            if (f->element[k]->type != REDIS_REPLY_STRING || f->element[k + 1]->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(f->element[k]->str, "d") == 0) {
                ev[n].data = f->element[k + 1]->str;
                ev[n].len = f->element[k + 1]->len;
            } else if (strcmp(f->element[k]->str, "e") == 0) {
                ev[n].end = f->element[k + 1]->str[0] == '1';
            }
        }
        if (ev[n].data == NULL)
            ev[n].data = "";
        n++;
    }
    q->range_cb(ev ? 0 : MG_ENOMEM, ev, n, q->data);
    free(ev);
}

static int rb_range(mg_bus_t *b, const char *key, uint64_t after, unsigned max, mg_bus_range_cb cb,
                    void *data)
{
    mg_redis_t *r = RB(b);
    op_t *q = op_new(r, data);
    if (q != NULL)
        q->range_cb = cb;
    char start[32], cnt[16];
    snprintf(start, sizeof start, "%llu-1", (unsigned long long)after); /* ids are "<seq>-0": > after */
    snprintf(cnt, sizeof cnt, "%u", max ? max : 100000);
    const char *args[] = {start, "+", "COUNT", cnt};
    return op_send(r, "XRANGE", 0, "", key, 4, args, NULL, range_reply, q, 1);
}

static int rb_last(mg_bus_t *b, const char *key, mg_bus_append_cb cb, void *data)
{
    mg_redis_t *r = RB(b);
    op_t *q = op_new(r, data);
    if (q != NULL)
        q->seq_cb = cb;
    return op_send(r, NULL, SCRIPT_LAST, "", key, 0, NULL, NULL, seq_reply, q, 1);
}

static void done_reply(mg_redis_t *r, redisReply *reply, op_t *q)
{
    if (q->bus_done_cb != NULL)
        q->bus_done_cb(reply_err(reply), q->data);
}

static int rb_set(mg_bus_t *b, const char *key, const char *value, uint64_t ttl_ms, mg_bus_done_cb cb,
                  void *data)
{
    mg_redis_t *r = RB(b);
    op_t *q = op_new(r, data);
    if (q != NULL)
        q->bus_done_cb = cb;
    char t[24];
    snprintf(t, sizeof t, "%llu", (unsigned long long)ttl_ms);
    const char *args[] = {value, "PX", t};
    return op_send(r, "SET", 0, "", key, ttl_ms ? 3 : 1, args, NULL, done_reply, q, 1);
}

static void value_reply(mg_redis_t *r, redisReply *reply, op_t *q)
{
    int err = reply_err(reply);
    q->value_cb(err, err == 0 && reply->type == REDIS_REPLY_STRING ? reply->str : NULL, q->data);
}

static int rb_get(mg_bus_t *b, const char *key, mg_bus_value_cb cb, void *data)
{
    mg_redis_t *r = RB(b);
    op_t *q = op_new(r, data);
    if (q != NULL)
        q->value_cb = cb;
    return op_send(r, "GET", 0, "", key, 0, NULL, NULL, value_reply, q, 1);
}

static int rb_del(mg_bus_t *b, const char *const *keys, size_t nkeys, mg_bus_done_cb cb, void *data)
{
    mg_redis_t *r = RB(b);
    const char **argv = calloc(nkeys + 1, sizeof(*argv));
    char **own = calloc(nkeys + 1, sizeof(*own));
    op_t *q = op_new(r, data);
    int e = MG_ENOMEM;
    if (argv != NULL && own != NULL && q != NULL) {
        argv[0] = "DEL";
        int ok = 1;
        for (size_t i = 0; i < nkeys; i++) {
            own[i] = key_of(r, "", keys[i]);
            argv[i + 1] = own[i];
            ok = ok && own[i] != NULL;
        }
        q->bus_done_cb = cb;
        q->on_reply = done_reply;
        e = ok ? mg__redis_command(r, (int)nkeys + 1, argv, NULL, op_reply_cb, q) : MG_ENOMEM;
    }
    if (e != 0)
        free(q);
    for (size_t i = 0; own != NULL && i < nkeys; i++)
        free(own[i]);
    free(own);
    free(argv);
    return e;
}

static int rb_ready(mg_bus_t *b)
{
    return mg__redis_ready(RB(b));
}

static void rb_free(mg_bus_t *b)
{
    mg_redis_t *r = RB(b);
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&r->channels, &pos, &key, &val)) {
        mg_bus_sub_t *s = val;
        while (s != NULL) {
            mg_bus_sub_t *n = s->next;
            free(s->channel);
            free(s);
            s = n;
        }
    }
    mg_map_dispose(&r->channels);
    mg_map_init(&r->channels);
    r->confirm = NULL;
    free(b);
    release(r);
}

static const mg_bus_ops_t rbus_ops = {"redis", rb_publish, rb_subscribe, rb_unsubscribe, rb_append, rb_range,
                                      rb_last, rb_set,     rb_get,       rb_del,         rb_ready,  rb_free};

/* ---- creation ---- */

int mg_redis_new(uv_loop_t *loop, const mg_redis_opts_t *o, mg_store_t **store, mg_bus_t **bus, char *why,
                 size_t whylen)
{
    mg_redis_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return MG_ENOMEM;
    if (mg_redis_url_parse(o->url, &r->target, why, whylen) != 0) {
        mg_redis_target_dispose(&r->target);
        free(r);
        return MG_EINVAL;
    }
    r->loop = loop;
    r->now_ms = o->now_ms;
    r->timeout_ms = o->timeout_ms ? o->timeout_ms : 2000;
    r->password = o->password ? strdup(o->password) : r->target.password ? strdup(r->target.password) : NULL;
    r->sentinel_password = o->sentinel_password ? strdup(o->sentinel_password) : NULL;
    r->prefix = strdup(o->key_prefix ? o->key_prefix : "mcpgate:");
    r->prefix_len = r->prefix ? strlen(r->prefix) : 0;
    mg_map_init(&r->channels);
    static const char *const texts[SCRIPT_COUNT] = {lua_put,
                                                    lua_load,
                                                    lua_patch,
                                                    lua_cas,
                                                    lua_append,
                                                    lua_last,
                                                    mg__redis_lua_rate,
                                                    mg__redis_lua_task_create,
                                                    mg__redis_lua_task_get,
                                                    mg__redis_lua_task_update};
    for (int i = 0; i < SCRIPT_COUNT; i++)
        r->scripts[i].text = texts[i];
    rstore_t *sv = calloc(1, sizeof(*sv));
    rbus_t *bv = calloc(1, sizeof(*bv));
    r->confirm_idle = malloc(sizeof(*r->confirm_idle));
    if (r->prefix == NULL || sv == NULL || bv == NULL || r->confirm_idle == NULL) {
        free(sv);
        free(bv);
        free(r->confirm_idle);
        r->confirm_idle = NULL;
        r->refs = 1;
        release(r);
        return MG_ENOMEM;
    }
    uv_idle_init(loop, r->confirm_idle);
    r->confirm_idle->data = r;
    r->refs = 2;
    sv->base.ops = &rstore_ops;
    sv->r = r;
    bv->base.ops = &rbus_ops;
    bv->r = r;
    if (mg__redis_conn_init(r) != 0) {
        free(sv);
        free(bv);
        r->refs = 1;
        release(r);
        return MG_ENOMEM;
    }
    *store = &sv->base;
    *bus = &bv->base;
    return 0;
}
