/*
 * store_pg.c - store.h and bus.h over PostgreSQL (pg_conn.c carries the connections, pg_schema.c
 * the SQL): each operation is one prepared statement; subscriptions are LISTEN on the listener
 * connection, messages NOTIFY (through mcpgate_publish, which stores long ones in mcpgate_payloads:
 * their notification carries the row's id and this file fetches it before delivering, keeping the
 * order of the channel's messages). The spec check and the client's creation are here too.
 *
 * Keys: the caller's, behind keyPrefix; session records "<prefix>s:<id>", everything else
 * "<prefix><key>" (the replica registry "<prefix>r:<replica>" is what mcpgate_load checks).
 * Channels: "mg" + hex SHA-1 of "<prefix><channel>" (pg_int.h). A log's appends and a channel's
 * publishes run on one connection (mg__pg_query_keyed by channel), so a single writer's events
 * arrive in order; the GET log's seqs are allocated under the log row's lock and NOTIFY delivers
 * in commit order. Read next: pg_schema.c, docs/adr/0006-postgresql-session-store.md.
 */
#include "pg_int.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the spec ---- */

int mg_pg_spec_is(const char *spec)
{
    if (spec == NULL)
        return 0;
    if (strncasecmp(spec, "postgres://", 11) == 0 || strncasecmp(spec, "postgresql://", 13) == 0 ||
        strcmp(spec, "postgres") == 0)
        return 1;
    /* a libpq connection string: "keyword=value ..." */
    size_t w = strspn(spec, "abcdefghijklmnopqrstuvwxyz_");
    return w > 0 && strstr(spec, "://") == NULL && spec[w + strspn(spec + w, " ")] == '=';
}

int mg_pg_spec_check(const char *spec, char *why, size_t whylen)
{
    if (!mg_pg_spec_is(spec)) {
        snprintf(why, whylen,
                 "not a PostgreSQL spec (postgres://..., postgresql://..., postgres, or key=value)");
        return MG_EINVAL;
    }
    if (strcmp(spec, "postgres") == 0)
        return 0;
    char *err = NULL;
    PQconninfoOption *o = PQconninfoParse(spec, &err);
    if (o == NULL) {
        /* libpq quotes the text it could not parse, which may be a password: quote it only when the
         * spec has none */
        int secret = strstr(spec, "password") != NULL || strchr(spec, '@') != NULL;
        char e[200] = "";
        if (err != NULL && !secret) {
            snprintf(e, sizeof e, ": %s", err);
            char *nl = strpbrk(e, "\r\n");
            if (nl != NULL)
                *nl = '\0';
        }
        snprintf(why, whylen,
                 "libpq cannot parse the connection string%s (see PostgreSQL's \"Connection Strings\")", e);
        PQfreemem(err);
        return MG_EINVAL;
    }
    PQconninfoFree(o);
    return 0;
}

/* ---- subscriptions ---- */

typedef struct chan chan_t;

struct mg_bus_sub {
    chan_t *ch;
    mg_bus_msg_cb cb;
    void *data;
    int dead;
    int confirm_pending;
    struct mg_bus_sub *next;         /* same channel */
    struct mg_bus_sub *next_confirm; /* the deferred confirmations */
};

struct chan {
    char ident[PG_IDENT_LEN];
    char *name; /* the caller's channel (no prefix) */
    int listening;
    mg_bus_sub_t *subs;
};

/* A notification waiting to be delivered (a long one waits for its payload). */
typedef struct note {
    char ident[PG_IDENT_LEN];
    char *payload; /* NULL while fetching */
    size_t len;
    char ref[24];
    int fetching;
    struct note *next;
} note_t;

typedef struct pgbus {
    mg_map_t chans; /* ident -> chan_t */
    note_t *nhead, *ntail;
    mg_bus_sub_t *confirm;
    uv_idle_t *confirm_idle;
    int dispatching;
} pgbus_t;

static pgbus_t *BS(mg_pg_t *p)
{
    return p->bus;
}

static void chan_reap(mg_pg_t *p, chan_t *ch)
{
    mg_bus_sub_t **pp = &ch->subs;
    while (*pp != NULL) {
        mg_bus_sub_t *s = *pp;
        if (s->dead && !s->confirm_pending) {
            *pp = s->next;
            free(s);
            continue;
        }
        pp = &s->next;
    }
    if (ch->subs == NULL) {
        mg_map_del(&BS(p)->chans, ch->ident);
        mg__pg_listen(p, ch->ident, 0);
        free(ch->name);
        free(ch);
    }
}

static void deliver(mg_pg_t *p, const char *ident, const char *payload, size_t len)
{
    chan_t *ch = mg_map_get(&BS(p)->chans, ident);
    if (ch == NULL)
        return;
    BS(p)->dispatching++;
    int any_dead = 0;
    for (mg_bus_sub_t *s = ch->subs; s != NULL; s = s->next) {
        if (!s->dead)
            s->cb(ch->name, payload, len, s->data);
        any_dead |= s->dead;
    }
    BS(p)->dispatching--;
    if (any_dead && BS(p)->dispatching == 0)
        chan_reap(p, ch);
}

static void notes_pump(mg_pg_t *p);

static void payload_cb(mg_pg_t *p, PGresult *res, void *data)
{
    if (p->closing)
        return;
    note_t *n = BS(p)->nhead;
    if (n == NULL || n != data)
        return;
    n->fetching = 0;
    if (mg__pg_ok(res) && PQntuples(res) == 1) {
        n->len = (size_t)PQgetlength(res, 0, 0);
        n->payload = malloc(n->len + 1);
        if (n->payload != NULL)
            memcpy(n->payload, PQgetvalue(res, 0, 0), n->len + 1);
    }
    if (n->payload == NULL) {
        mg_log_json(MG_LOG_WARN, "session store: a long cross-replica message could not be read; dropped",
                    json_pack("{s:s}", "payload", n->ref));
        n->payload = strdup("");
        n->len = 0;
        n->ref[0] = '\0';
        if (n->payload == NULL) { /* out of memory: drop it */
            BS(p)->nhead = n->next;
            if (BS(p)->ntail == n)
                BS(p)->ntail = NULL;
            free(n);
        } else {
            n->ref[0] = '!'; /* delivered as nothing: skipped below */
        }
    }
    notes_pump(p);
}

static void notes_pump(mg_pg_t *p)
{
    pgbus_t *b = BS(p);
    while (b->nhead != NULL) {
        note_t *n = b->nhead;
        if (n->payload == NULL) {
            if (n->fetching)
                return;
            const char *v[] = {n->ref};
            n->fetching = 1;
            if (mg__pg_query(p, S_PAYLOAD, 1, v, payload_cb, n) == 0)
                return;
            n->fetching = 0;
            mg_log_json(MG_LOG_WARN, "session store: a long cross-replica message could not be read; dropped",
                        json_pack("{s:s}", "payload", n->ref));
        }
        b->nhead = n->next;
        if (b->ntail == n)
            b->ntail = NULL;
        if (n->payload != NULL && n->ref[0] != '!')
            deliver(p, n->ident, n->payload, n->len);
        free(n->payload);
        free(n);
    }
}

void mg__pg_on_notify(mg_pg_t *p, const char *ident, const char *payload, size_t len)
{
    if (len == 0 || (payload[0] != '=' && payload[0] != '@'))
        return;
    if (mg_map_get(&BS(p)->chans, ident) == NULL)
        return; /* nobody listens any more */
    note_t *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return;
    snprintf(n->ident, sizeof n->ident, "%s", ident);
    if (payload[0] == '=') {
        n->len = len - 1;
        n->payload = malloc(len);
        if (n->payload == NULL) {
            free(n);
            return;
        }
        memcpy(n->payload, payload + 1, len - 1);
        n->payload[len - 1] = '\0';
    } else {
        snprintf(n->ref, sizeof n->ref, "%.*s", (int)(len - 1 < 20 ? len - 1 : 20), payload + 1);
    }
    if (BS(p)->ntail != NULL)
        BS(p)->ntail->next = n;
    else
        BS(p)->nhead = n;
    BS(p)->ntail = n;
    if (n == BS(p)->nhead)
        notes_pump(p);
}

void mg__pg_on_listening(mg_pg_t *p, const char *ident)
{
    pgbus_t *b = BS(p);
    if (ident == NULL) { /* the listener (re)connected: listen to every channel again */
        size_t pos = 0;
        const char *key;
        void *val;
        while (mg_map_next(&b->chans, &pos, &key, &val)) {
            chan_t *ch = val;
            ch->listening = 0;
            mg__pg_listen(p, ch->ident, 1);
        }
        return;
    }
    chan_t *ch = mg_map_get(&b->chans, ident);
    if (ch == NULL)
        return;
    ch->listening = 1;
    b->dispatching++;
    for (mg_bus_sub_t *s = ch->subs; s != NULL; s = s->next)
        if (!s->dead)
            s->cb(ch->name, NULL, 0, s->data);
    b->dispatching--;
    if (b->dispatching == 0)
        chan_reap(p, ch);
}

static void confirm_idle_cb(uv_idle_t *h)
{
    mg_pg_t *p = h->data;
    pgbus_t *b = BS(p);
    mg_bus_sub_t *list = b->confirm;
    b->confirm = NULL;
    uv_idle_stop(h);
    b->dispatching++;
    for (mg_bus_sub_t *s = list; s != NULL; s = s->next_confirm)
        if (!s->dead)
            s->cb(s->ch->name, NULL, 0, s->data);
    b->dispatching--;
    while (list != NULL) {
        mg_bus_sub_t *n = list->next_confirm;
        list->confirm_pending = 0;
        if (list->dead && b->dispatching == 0)
            chan_reap(p, list->ch);
        list = n;
    }
}

/* ---- the views ---- */

typedef struct pstore {
    mg_store_t base;
    mg_pg_t *p;
} pstore_t;

typedef struct pbus {
    mg_bus_t base;
    mg_pg_t *p;
} pbus_t;

static mg_pg_t *P(mg_store_t *st)
{
    return ((pstore_t *)st)->p;
}

static mg_pg_t *PB(mg_bus_t *b)
{
    return ((pbus_t *)b)->p;
}

static void release(mg_pg_t *p)
{
    if (--p->refs > 0)
        return;
    mg__pg_conn_close(p);
    pgbus_t *b = BS(p);
    if (b != NULL) {
        size_t pos = 0;
        const char *key;
        void *val;
        while (mg_map_next(&b->chans, &pos, &key, &val)) {
            chan_t *ch = val;
            while (ch->subs != NULL) {
                mg_bus_sub_t *n = ch->subs->next;
                free(ch->subs);
                ch->subs = n;
            }
            free(ch->name);
            free(ch);
        }
        mg_map_dispose(&b->chans);
        while (b->nhead != NULL) {
            note_t *n = b->nhead;
            b->nhead = n->next;
            free(n->payload);
            free(n);
        }
        if (b->confirm_idle != NULL)
            uv_close((uv_handle_t *)b->confirm_idle, (uv_close_cb)free);
        free(b);
    }
    free(p->spec);
    free(p->password);
    free(p->prefix);
    free(p);
}

mg_pg_t *mg__pg_of_store(mg_store_t *st);

void mg__pg_release(mg_pg_t *p)
{
    release(p);
}

/* NEW "<prefix><kind><name>", or NULL. */
static char *key_of(mg_pg_t *p, const char *kind, const char *name)
{
    size_t n = p->prefix_len + strlen(kind) + strlen(name) + 1;
    char *k = malloc(n);
    if (k != NULL)
        snprintf(k, n, "%s%s%s", p->prefix, kind, name);
    return k;
}

static void ident_of(mg_pg_t *p, const char *channel, char out[PG_IDENT_LEN])
{
    char *full = key_of(p, "", channel);
    mg__pg_ident(full ? full : channel, out);
    free(full);
}

/* ---- one operation ---- */

typedef struct op {
    mg_store_get_cb get_cb;
    mg_store_done_cb done_cb;
    mg_bus_append_cb seq_cb;
    mg_bus_range_cb range_cb;
    mg_bus_value_cb value_cb;
    mg_bus_done_cb bus_done_cb;
    void *data;
} op_t;

typedef void (*op_fn)(mg_pg_t *p, PGresult *res, op_t *q);

typedef struct opx {
    op_t op;
    op_fn fn;
} opx_t;

static void op_cb(mg_pg_t *p, PGresult *res, void *data)
{
    opx_t *x = data;
    if (!(res == NULL && p->closing)) /* closing: the callers are being freed */
        x->fn(p, res, &x->op);
    free(x);
}

/* Runs stmt with vals and has fn(res, op) called once; op (copied) carries the caller's callback. */
static int op_run(mg_pg_t *p, const char *order, int stmt, int n, const char *const *vals, op_fn fn,
                  const op_t *op)
{
    opx_t *x = malloc(sizeof(*x));
    if (x == NULL)
        return MG_ENOMEM;
    x->op = *op;
    x->fn = fn;
    int e = mg__pg_query_keyed(p, order, stmt, n, vals, op_cb, x);
    if (e != 0)
        free(x);
    return e;
}

/* op_run for a statement whose first parameter is the key "<prefix><kind><name>": v[0] is set here
 * (v has n entries, the rest filled by the caller). */
static int key_run(mg_pg_t *p, const char *kind, const char *name, int stmt, int n, const char **v, op_fn fn,
                   const op_t *op)
{
    char *k = key_of(p, kind, name);
    if (k == NULL)
        return MG_ENOMEM;
    v[0] = k;
    int e = op_run(p, NULL, stmt, n, v, fn, op);
    free(k);
    return e;
}

static int res_err(const PGresult *res)
{
    return mg__pg_ok(res) ? 0 : MG_EIO;
}

/* NEW record from a row (rec, log_level, subs, owner); NULL when malformed. */
static json_t *record_from_row(const PGresult *res, int row)
{
    json_t *rec = json_loads(PQgetvalue(res, row, 0), 0, NULL);
    if (!json_is_object(rec)) {
        json_decref(rec);
        return NULL;
    }
    if (!PQgetisnull(res, row, 1))
        json_object_set_new(rec, "logLevel", json_integer(atoi(PQgetvalue(res, row, 1))));
    json_t *subs = PQgetisnull(res, row, 2) ? NULL : json_loads(PQgetvalue(res, row, 2), 0, NULL);
    json_object_set_new(rec, "subs", json_is_object(subs) ? subs : json_object());
    if (!json_is_object(subs))
        json_decref(subs);
    if (!PQgetisnull(res, row, 3))
        json_object_set_new(rec, "owner", json_string(PQgetvalue(res, row, 3)));
    return rec;
}

static void record_done(mg_pg_t *p, PGresult *res, op_t *q)
{
    int err = res_err(res);
    json_t *rec = err == 0 && PQntuples(res) > 0 ? record_from_row(res, 0) : NULL;
    q->get_cb(err, rec, q->data);
    json_decref(rec);
}

/* UPDATE/DELETE: MG_ENOTFOUND when no row matched. */
static void rows_done(mg_pg_t *p, PGresult *res, op_t *q)
{
    int err = res_err(res);
    if (err == 0 && strcmp(PQcmdTuples(res), "0") == 0)
        err = MG_ENOTFOUND;
    if (q->done_cb != NULL)
        q->done_cb(err, q->data);
}

static void plain_done(mg_pg_t *p, PGresult *res, op_t *q)
{
    if (q->done_cb != NULL)
        q->done_cb(res_err(res), q->data);
}

static void cas_done(mg_pg_t *p, PGresult *res, op_t *q)
{
    int err = res_err(res);
    if (err == 0) {
        int v = PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : -1;
        err = v == 1 ? 0 : v == 0 ? MG_EBUSY : MG_ENOTFOUND;
    }
    if (q->done_cb != NULL)
        q->done_cb(err, q->data);
}

/* ---- store ---- */

static int ps_put(mg_store_t *st, const char *id, const json_t *record, uint64_t ttl_ms, mg_store_done_cb cb,
                  void *data)
{
    mg_pg_t *p = P(st);
    json_t *core = mg_json_deep_copy(record);
    if (core == NULL)
        return MG_ENOMEM;
    json_t *subs = json_object_get(core, "subs");
    json_t *owner = json_object_get(core, "owner");
    json_t *lvl = json_object_get(core, "logLevel");
    char *subs_text = json_is_object(subs) ? json_dumps(subs, JSON_COMPACT) : NULL;
    char ll[16], ttl[24], *own = json_is_string(owner) ? strdup(json_string_value(owner)) : NULL;
    snprintf(ll, sizeof ll, "%d", json_is_integer(lvl) ? (int)json_integer_value(lvl) : 0);
    int has_ll = json_is_integer(lvl);
    int ok = (!json_is_object(subs) || subs_text != NULL) && (!json_is_string(owner) || own != NULL);
    json_object_del(core, "subs");
    json_object_del(core, "owner");
    json_object_del(core, "logLevel");
    char *text = json_dumps(core, JSON_COMPACT);
    json_decref(core);
    char *k = key_of(p, "s:", id);
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
    int e = MG_ENOMEM;
    if (ok && text != NULL && k != NULL) {
        const char *v[] = {k, text, has_ll ? ll : NULL, subs_text, own, ttl};
        op_t op = {.done_cb = cb, .data = data};
        e = op_run(p, NULL, S_PUT, 6, v, plain_done, &op);
    }
    free(k);
    free(text);
    free(subs_text);
    free(own);
    return e;
}

static int ps_get(mg_store_t *st, const char *id, mg_store_get_cb cb, void *data)
{
    const char *v[1];
    return key_run(P(st), "s:", id, S_GET, 1, v, record_done, &(op_t){.get_cb = cb, .data = data});
}

static int ps_touch(mg_store_t *st, const char *id, uint64_t ttl_ms, mg_store_done_cb cb, void *data)
{
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
    const char *v[] = {NULL, ttl};
    return key_run(P(st), "s:", id, S_TOUCH, 2, v, rows_done, &(op_t){.done_cb = cb, .data = data});
}

static int ps_del(mg_store_t *st, const char *id, mg_store_done_cb cb, void *data)
{
    const char *v[1];
    return key_run(P(st), "s:", id, S_DEL, 1, v, plain_done, &(op_t){.done_cb = cb, .data = data});
}

static size_t ps_count(mg_store_t *st)
{
    return 0;
}

static int ps_load(mg_store_t *st, const char *id, const mg_store_load_opts_t *o, mg_store_get_cb cb,
                   void *data)
{
    mg_pg_t *p = P(st);
    char *k = key_of(p, "s:", id), *reg = key_of(p, "r:", ""), ttl[24];
    int e = MG_ENOMEM;
    if (k != NULL && reg != NULL) {
        snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)o->ttl_ms);
        const char *v[] = {k, ttl, o->replica ? o->replica : "", reg, o->claim ? "true" : "false"};
        op_t op = {.get_cb = cb, .data = data};
        e = op_run(p, NULL, S_LOAD, 5, v, record_done, &op);
    }
    free(k);
    free(reg);
    return e;
}

static int ps_patch(mg_store_t *st, const char *id, const json_t *patch, mg_store_done_cb cb, void *data)
{
    mg_pg_t *p = P(st);
    json_t *subs = json_object_get(patch, "subs");
    json_t *set = json_object(), *del = json_array();
    const char *uri;
    json_t *val;
    json_object_foreach((json_t *)subs, uri, val)
    {
        if (json_is_null(val))
            json_array_append_new(del, json_string(uri));
        else
            json_object_set(set, uri, val);
    }
    json_t *lvl = json_object_get(patch, "logLevel");
    char ll[16];
    snprintf(ll, sizeof ll, "%d", json_is_integer(lvl) ? (int)json_integer_value(lvl) : 0);
    char *k = key_of(p, "s:", id);
    char *set_text = json_dumps(set, JSON_COMPACT), *del_text = json_dumps(del, JSON_COMPACT);
    int e = MG_ENOMEM;
    if (k != NULL && set_text != NULL && del_text != NULL) {
        const char *v[] = {k, json_is_integer(lvl) ? ll : NULL, set_text, del_text};
        op_t op = {.done_cb = cb, .data = data};
        e = op_run(p, NULL, S_PATCH, 4, v, rows_done, &op);
    }
    free(k);
    free(set_text);
    free(del_text);
    json_decref(set);
    json_decref(del);
    return e;
}

static int ps_owner_cas(mg_store_t *st, const char *id, const char *expect, const char *value,
                        mg_store_done_cb cb, void *data)
{
    const char *v[] = {NULL, expect ? expect : "", value ? value : ""};
    return key_run(P(st), "s:", id, S_CAS, 3, v, cas_done, &(op_t){.done_cb = cb, .data = data});
}

static int ps_ready(mg_store_t *st)
{
    return mg__pg_ready(P(st));
}

static json_t *ps_status(mg_store_t *st)
{
    return mg__pg_status(P(st));
}

static void ps_free(mg_store_t *st)
{
    mg_pg_t *p = P(st);
    free(st);
    release(p);
}

static const mg_store_ops_t pstore_ops = {"postgres", ps_put,  ps_get,   ps_touch,     ps_del,   ps_count,
                                          ps_free,    ps_load, ps_patch, ps_owner_cas, ps_ready, ps_status};

mg_pg_t *mg__pg_of_store(mg_store_t *st)
{
    if (st == NULL || st->ops != &pstore_ops)
        return NULL;
    P(st)->refs++;
    return P(st);
}

/* ---- bus ---- */

static int pb_subscribe(mg_bus_t *bv, const char *channel, mg_bus_msg_cb cb, void *data, mg_bus_sub_t **out)
{
    mg_pg_t *p = PB(bv);
    pgbus_t *b = BS(p);
    char ident[PG_IDENT_LEN];
    ident_of(p, channel, ident);
    mg_bus_sub_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return MG_ENOMEM;
    chan_t *ch = mg_map_get(&b->chans, ident);
    int fresh = ch == NULL;
    if (fresh) {
        ch = calloc(1, sizeof(*ch));
        if (ch == NULL || (ch->name = strdup(channel)) == NULL || mg_map_set(&b->chans, ident, ch) != 0) {
            if (ch != NULL)
                free(ch->name);
            free(ch);
            free(s);
            return MG_ENOMEM;
        }
        snprintf(ch->ident, sizeof ch->ident, "%s", ident);
    }
    s->ch = ch;
    s->cb = cb;
    s->data = data;
    s->next = ch->subs;
    ch->subs = s;
    if (fresh) {
        mg__pg_listen(p, ident, 1); /* its completion confirms every subscriber */
    } else if (ch->listening) {
        s->confirm_pending = 1;
        s->next_confirm = b->confirm;
        b->confirm = s;
        uv_idle_start(b->confirm_idle, confirm_idle_cb);
    }
    *out = s;
    return 0;
}

static void pb_unsubscribe(mg_bus_t *bv, mg_bus_sub_t *sub)
{
    mg_pg_t *p = PB(bv);
    sub->dead = 1;
    if (BS(p)->dispatching == 0 && !sub->confirm_pending)
        chan_reap(p, sub->ch);
}

static void publish_done(mg_pg_t *p, PGresult *res, void *data)
{
}

static int pb_publish(mg_bus_t *bv, const char *channel, const char *payload, size_t len)
{
    mg_pg_t *p = PB(bv);
    char ident[PG_IDENT_LEN];
    ident_of(p, channel, ident);
    char *msg = strndup(payload, len);
    if (msg == NULL)
        return MG_ENOMEM;
    const char *v[] = {ident, msg};
    int e = mg__pg_query_keyed(p, ident, S_PUBLISH, 2, v, publish_done, NULL);
    free(msg);
    return e;
}

static void seq_done(mg_pg_t *p, PGresult *res, op_t *q)
{
    if (q->seq_cb == NULL)
        return;
    int err = res_err(res);
    uint64_t seq = err == 0 && PQntuples(res) == 1 ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    q->seq_cb(err, seq, q->data);
}

static int pb_append(mg_bus_t *bv, const char *key, const char *channel, uint64_t seq, const char *data,
                     size_t len, int end, unsigned maxlen, uint64_t ttl_ms, mg_bus_append_cb cb, void *cbdata)
{
    mg_pg_t *p = PB(bv);
    char ident[PG_IDENT_LEN], s[24], m[16], t[24];
    ident_of(p, channel, ident);
    char *k = key_of(p, "", key), *d = strndup(data ? data : "", data ? len : 0);
    int e = MG_ENOMEM;
    if (k != NULL && d != NULL) {
        snprintf(s, sizeof s, "%llu", (unsigned long long)seq);
        snprintf(m, sizeof m, "%u", maxlen);
        snprintf(t, sizeof t, "%llu", (unsigned long long)ttl_ms);
        const char *v[] = {k, ident, s, d, end ? "true" : "false", m, t};
        op_t op = {.seq_cb = cb, .data = cbdata};
        e = op_run(p, ident, S_APPEND, 7, v, seq_done, &op);
    }
    free(k);
    free(d);
    return e;
}

static void range_done(mg_pg_t *p, PGresult *res, op_t *q)
{
    int err = res_err(res);
    if (err != 0) {
        q->range_cb(err, NULL, 0, q->data);
        return;
    }
    int n = PQntuples(res);
    mg_bus_event_t *ev = calloc(n ? (size_t)n : 1, sizeof(*ev));
    if (ev == NULL) {
        q->range_cb(MG_ENOMEM, NULL, 0, q->data);
        return;
    }
    for (int i = 0; i < n; i++) {
        ev[i].seq = strtoull(PQgetvalue(res, i, 0), NULL, 10);
        ev[i].data = PQgetvalue(res, i, 1);
        ev[i].len = (size_t)PQgetlength(res, i, 1);
        ev[i].end = PQgetvalue(res, i, 2)[0] == 't';
    }
    q->range_cb(0, ev, (size_t)n, q->data);
    free(ev);
}

static int pb_range(mg_bus_t *bv, const char *key, uint64_t after, unsigned max, mg_bus_range_cb cb,
                    void *data)
{
    char a[24], m[16];
    snprintf(a, sizeof a, "%llu", (unsigned long long)after);
    snprintf(m, sizeof m, "%u", max ? max : 100000);
    const char *v[] = {NULL, a, m};
    return key_run(PB(bv), "", key, S_RANGE, 3, v, range_done, &(op_t){.range_cb = cb, .data = data});
}

static int pb_last(mg_bus_t *bv, const char *key, mg_bus_append_cb cb, void *data)
{
    const char *v[1];
    return key_run(PB(bv), "", key, S_LAST, 1, v, seq_done, &(op_t){.seq_cb = cb, .data = data});
}

static void bus_done(mg_pg_t *p, PGresult *res, op_t *q)
{
    if (q->bus_done_cb != NULL)
        q->bus_done_cb(res_err(res), q->data);
}

static int pb_set(mg_bus_t *bv, const char *key, const char *value, uint64_t ttl_ms, mg_bus_done_cb cb,
                  void *data)
{
    char t[24];
    snprintf(t, sizeof t, "%llu", (unsigned long long)ttl_ms);
    const char *v[] = {NULL, value, t};
    return key_run(PB(bv), "", key, S_SET, 3, v, bus_done, &(op_t){.bus_done_cb = cb, .data = data});
}

static void value_done(mg_pg_t *p, PGresult *res, op_t *q)
{
    int err = res_err(res);
    q->value_cb(err, err == 0 && PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : NULL, q->data);
}

static int pb_get(mg_bus_t *bv, const char *key, mg_bus_value_cb cb, void *data)
{
    const char *v[1];
    return key_run(PB(bv), "", key, S_GETV, 1, v, value_done, &(op_t){.value_cb = cb, .data = data});
}

static int pb_del(mg_bus_t *bv, const char *const *keys, size_t nkeys, mg_bus_done_cb cb, void *data)
{
    mg_pg_t *p = PB(bv);
    json_t *arr = json_array();
    int ok = arr != NULL;
    for (size_t i = 0; ok && i < nkeys; i++) {
        char *k = key_of(p, "", keys[i]);
        ok = k != NULL && json_array_append_new(arr, json_string(k)) == 0;
        free(k);
    }
    char *text = ok ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    if (text == NULL)
        return MG_ENOMEM;
    const char *v[] = {text};
    op_t op = {.bus_done_cb = cb, .data = data};
    int e = op_run(p, NULL, S_DELKEYS, 1, v, bus_done, &op);
    free(text);
    return e;
}

static int pb_ready(mg_bus_t *bv)
{
    return mg__pg_ready(PB(bv));
}

static void pb_free(mg_bus_t *bv)
{
    mg_pg_t *p = PB(bv);
    pgbus_t *b = BS(p);
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&b->chans, &pos, &key, &val)) {
        chan_t *ch = val;
        while (ch->subs != NULL) {
            mg_bus_sub_t *n = ch->subs->next;
            free(ch->subs);
            ch->subs = n;
        }
        free(ch->name);
        free(ch);
    }
    mg_map_dispose(&b->chans);
    mg_map_init(&b->chans);
    b->confirm = NULL;
    free(bv);
    release(p);
}

static const mg_bus_ops_t pbus_ops = {"postgres", pb_publish, pb_subscribe, pb_unsubscribe,
                                      pb_append,  pb_range,   pb_last,      pb_set,
                                      pb_get,     pb_del,     pb_ready,     pb_free};

/* ---- creation ---- */

int mg_pg_new(uv_loop_t *loop, const mg_pg_opts_t *o, mg_store_t **store, mg_bus_t **bus, char *why,
              size_t whylen)
{
    if (mg_pg_spec_check(o->spec, why, whylen) != 0)
        return MG_EINVAL;
    mg_pg_t *p = calloc(1, sizeof(*p));
    pgbus_t *b = calloc(1, sizeof(*b));
    pstore_t *sv = calloc(1, sizeof(*sv));
    pbus_t *bv = calloc(1, sizeof(*bv));
    if (p != NULL) {
        p->bus = b;
        p->spec = strdup(o->spec);
        p->password = o->password ? strdup(o->password) : NULL;
        p->prefix = strdup(o->key_prefix ? o->key_prefix : "mcpgate:");
    }
    if (b != NULL) {
        mg_map_init(&b->chans);
        b->confirm_idle = malloc(sizeof(*b->confirm_idle));
    }
    if (p == NULL || b == NULL || sv == NULL || bv == NULL || p->spec == NULL || p->prefix == NULL ||
        (o->password != NULL && p->password == NULL) || b->confirm_idle == NULL) {
        free(sv);
        free(bv);
        if (p == NULL) {
            if (b != NULL)
                free(b->confirm_idle);
            free(b);
            return MG_ENOMEM;
        }
        if (b != NULL && b->confirm_idle == NULL) {
            p->bus = NULL;
            free(b);
        }
        p->refs = 1;
        release(p);
        return MG_ENOMEM;
    }
    uv_idle_init(loop, b->confirm_idle);
    b->confirm_idle->data = p;
    p->loop = loop;
    p->prefix_len = strlen(p->prefix);
    p->timeout_ms = o->timeout_ms ? o->timeout_ms : 2000;
    p->now_ms = o->now_ms;
    p->migrate = o->migrate;
    p->refs = 2;
    sv->base.ops = &pstore_ops;
    sv->p = p;
    bv->base.ops = &pbus_ops;
    bv->p = p;
    if (mg__pg_conn_init(p) != 0) {
        free(sv);
        free(bv);
        p->refs = 1;
        release(p);
        return MG_ENOMEM;
    }
    *store = &sv->base;
    *bus = &bv->base;
    return 0;
}
