/*
 * cluster_records.c - session records in the shared store: three of the session source's
 * operations with a store (session.c's mg__sessions_shared: lookup, publish = put, remove =
 * delete; get is cluster_follow.c's mg__cluster_get). lookup loads and verifies the record in one
 * round trip and materializes or refreshes the local copy; put writes it before the client learns
 * the id (initialize); delete removes it everywhere; patch updates the separately updatable fields.
 * Every lookup calls back exactly once (200 with the session, 404, or 503), possibly before
 * returning. Local copies are caches: the sweep evicts idle ones and drops those whose record is
 * gone. Read next: session/store.h (the record's fields), cluster_int.h, cluster_follow.c.
 */
#include "../common/codec.h"
#include "../common/err.h"
#include "../http/status.h"
#include "../jsonrpc/jsonrpc.h"
#include "toolsearch_hooks.h"
#include "cluster_int.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define CACHE_IDLE_MS 60000

/* ---- names ---- */

/* The tenant part of every key: another tenant's session id never resolves. */
static void scope_of(const mg_principal_t *p, char *out, size_t n)
{
    const char *t = p != NULL && p->tenant != NULL && p->tenant[0] ? p->tenant : NULL;
    if (t == NULL) {
        snprintf(out, n, "_");
        return;
    }
    size_t len = strlen(t);
    if (len <= 64 && strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@-") == len) {
        snprintf(out, n, "%s", t);
        return;
    }
    unsigned char md[MG_SHA256_BYTES];
    char hex[17];
    mg_sha256(t, len, md);
    mg_hex_encode(md, 8, hex);
    snprintf(out, n, "~%s", hex);
}

void mg__cluster_rec_key(const mg_session_t *s, char *out, size_t n)
{
    snprintf(out, n, "%s:%s", s->scope, s->id);
}

static uint64_t epoch_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* ---- principals in records ---- */

json_t *mg__cluster_principal_json(const mg_principal_t *p)
{
    if (p == NULL)
        return json_null();
    json_t *sc = json_array();
    for (size_t i = 0; i < p->nscopes; i++)
        json_array_append_new(sc, json_string(p->scopes[i]));
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:s,s:o}", "key", p->key, "tenant", p->tenant ? p->tenant : "", "subject",
                  p->subject ? p->subject : "", "source", p->source ? p->source : "token", "scopes", sc);
    if (p->name != NULL)
        json_object_set_new(j, "name", json_string(p->name));
    return j;
}

/* NEW principal from a record's "principal" (NULL for null/absent or on failure). */
mg_principal_t *mg__cluster_principal_from(const json_t *j)
{
    if (!json_is_object(j))
        return NULL;
    const char *src = json_string_value(json_object_get(j, "source"));
    const char *source = src && strcmp(src, "jwt") == 0             ? "jwt"
                         : src && strcmp(src, "introspection") == 0 ? "introspection"
                                                                    : "token";
    json_t *sc = json_object_get(j, "scopes");
    size_t n = json_array_size(sc);
    const char **scopes = calloc(n + 1, sizeof(*scopes));
    if (scopes == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        scopes[i] = json_string_value(json_array_get(sc, i)) ? json_string_value(json_array_get(sc, i)) : "";
    mg_principal_t *p = mg_principal_new(source, NULL, json_string_value(json_object_get(j, "tenant")),
                                         json_string_value(json_object_get(j, "subject")),
                                         json_string_value(json_object_get(j, "name")), scopes, n);
    free(scopes);
    const char *key = json_string_value(json_object_get(j, "key"));
    if (p != NULL && key != NULL && strlen(key) == 64)
        memcpy(p->key, key, 65); /* the binding created with the issuer the creator's replica saw */
    return p;
}

/* 1 when the record's principal is p (both absent, or the same key; constant time). */
static int principal_matches(const json_t *rec, const mg_principal_t *p)
{
    const json_t *j = json_object_get(rec, "principal");
    const char *key = json_string_value(json_object_get(j, "key"));
    if (p == NULL || key == NULL)
        return p == NULL && key == NULL;
    return strlen(key) == 64 && CRYPTO_memcmp(key, p->key, 64) == 0;
}

/* ---- small HTTP answers ---- */

/* err (MG_E*) names the status and the JSON-RPC code (common/err.h). */
void mg__cluster_answer(mg_gateway_t *gw, h2o_req_t *req, const char *hm, int err, const char *message,
                        int retry_after, const char *session, uint64_t start_ms)
{
    int status = mg_err_http_status(err);
    json_t *e = mg_rpc_error(NULL, mg_err_jsonrpc_code(err), message, NULL);
    const char *hdrs[] = {"retry-after", "1"};
    mg__http_send_json(req, status, e, hdrs, retry_after ? 1 : 0);
    json_decref(e);
    mg__http_log(gw, hm, NULL, NULL, session, status, start_ms);
}

/* ---- requests that wait on Redis ---- */

typedef struct waiter waiter_t;
typedef struct req_hook {
    waiter_t *w;
} req_hook_t;

struct waiter {
    mg_cluster_t *cl;
    h2o_req_t *req; /* NULL once h2o disposed it */
    req_hook_t *hook;
    char id[64];
    char scope[80];
    mg_principal_t *principal;
    mg_cluster_session_cb cb;
    void *data;
    mg_session_t *s; /* initialize / delete: the session */
    json_t *resp;    /* initialize: the answer */
    uint64_t start_ms;
};

static void hook_disposed(void *p)
{
    req_hook_t *h = p;
    if (h->w != NULL)
        h->w->req = NULL;
}

static waiter_t *waiter_new(mg_cluster_t *cl, h2o_req_t *req)
{
    waiter_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->cl = cl;
    w->req = req;
    w->hook = h2o_mem_alloc_shared(&req->pool, sizeof(req_hook_t), hook_disposed);
    w->hook->w = w;
    return w;
}

static void waiter_free(waiter_t *w)
{
    if (w->req != NULL)
        w->hook->w = NULL;
    mg_principal_unref(w->principal);
    if (w->s != NULL)
        mg__session_unref(w->s);
    json_decref(w->resp);
    free(w);
}

static void evict_idle(mg_gateway_t *gw, unsigned want);

/* The local copy of a verified record: materialized, or refreshed. NULL when out of room. */
mg_session_t *mg__cluster_adopt(mg_cluster_t *cl, const char *scope, const char *id, const json_t *rec)
{
    mg_gateway_t *gw = cl->gw;
    mg_session_t *s = mg_map_get(&gw->sessions, id);
    if (s != NULL && (s->closing || !mg__session_shared(s) || strcmp(s->scope, scope) != 0))
        return NULL;
    if (s == NULL) {
        if (gw->sessions.count >= gw->cfg->limits.max_sessions)
            evict_idle(gw, 1);
        const char *version = json_string_value(json_object_get(rec, "version"));
        json_t *caps = json_object_get(rec, "caps");
        json_t *ci = json_object_get(rec, "clientInfo");
        if (mg__session_adopt(gw, id, version ? version : MG_LATEST_VERSION,
                              json_is_object(caps) ? caps : NULL, json_is_object(ci) ? ci : NULL, &s) != 0)
            return NULL;
        snprintf(s->scope, sizeof s->scope, "%s", scope);
        s->principal = mg__cluster_principal_from(json_object_get(rec, "principal"));
        const char *profile = json_string_value(json_object_get(rec, "profile"));
        mg__toolsearch_session_open(s, profile ? profile : "");
        s->initialized = 1;
    }
    json_t *lvl = json_object_get(rec, "logLevel");
    if (json_is_integer(lvl))
        s->log_rank = (int)json_integer_value(lvl);
    const char *owner = json_string_value(json_object_get(rec, "owner"));
    snprintf(s->owner, sizeof s->owner, "%s", owner ? owner : "");
    s->seen_ms = s->last_ms = mg_gateway_now_ms();
    return s;
}

static void drop_copy(mg_gateway_t *gw, const char *scope, const char *id, const char *why)
{
    mg_session_t *s = mg_map_get(&gw->sessions, id);
    if (s != NULL && !s->closing && mg__session_shared(s) && strcmp(s->scope, scope) == 0)
        mg__session_close(s, why);
}

static void load_cb(int err, json_t *rec, void *data)
{
    waiter_t *w = data;
    mg_cluster_t *cl = w->cl;
    mg_session_t *s = NULL;
    int status = 200;
    if (err != 0) {
        cl->load_failures++;
        status = 503;
    } else if (rec == NULL) {
        drop_copy(cl->gw, w->scope, w->id, "gone from the session store (deleted or expired)");
        status = 404;
    } else if (!principal_matches(rec, w->principal)) {
        status = 404; /* another principal's session: exactly like an unknown one */
    } else if ((s = mg__cluster_adopt(cl, w->scope, w->id, rec)) == NULL) {
        status = 503;
    }
    w->cb(w->data, w->req, status == 200 ? s : NULL, status);
    waiter_free(w);
}

void mg__cluster_session_lookup(mg_gateway_t *gw, h2o_req_t *req, const char *id, int claim,
                                mg_cluster_session_cb cb, void *data)
{
    mg_cluster_t *cl = CL(gw);
    if (!gw->store->ops->ready(gw->store)) {
        cb(data, req, NULL, 503);
        return;
    }
    waiter_t *w = waiter_new(cl, req);
    if (w == NULL) {
        cb(data, req, NULL, 503);
        return;
    }
    snprintf(w->id, sizeof w->id, "%s", id);
    w->principal = mg_principal_ref(mg_auth_principal_of(gw->auth, req));
    scope_of(w->principal, w->scope, sizeof w->scope);
    w->cb = cb;
    w->data = data;
    char key[160];
    snprintf(key, sizeof key, "%s:%s", w->scope, id);
    mg_store_load_opts_t o = {gw->cfg->limits.session_ttl_ms, cl->replica, claim};
    cl->loads++;
    if (gw->store->ops->load(gw->store, key, &o, load_cb, w) != 0) {
        waiter_free(w);
        cl->load_failures++;
        cb(data, req, NULL, 503);
    }
}

/* ---- initialize: the record is written before the client learns the id ---- */

static void put_cb(int err, void *data)
{
    waiter_t *w = data;
    mg_gateway_t *gw = w->cl->gw;
    mg_session_t *s = w->s;
    if (err != 0) {
        mg__session_close(s, "the session store did not take the record");
        if (w->req != NULL)
            mg__cluster_answer(gw, w->req, "POST", MG_ESTOREDOWN,
                               "session store unavailable: the session could not be created; retry shortly",
                               1, NULL, w->start_ms);
    } else if (w->req != NULL && !s->closing) {
        const char *hdrs[] = {"mcp-session-id", s->id};
        mg__http_send_json(w->req, 200, w->resp, hdrs, 1);
        mg__http_log(gw, "POST", "initialize", NULL, s->hash, 200, w->start_ms);
    } else if (w->req == NULL) {
        mg__session_close(s, "client gone before initialize was answered");
    }
    waiter_free(w);
}

void mg__cluster_session_put(mg_session_t *s, h2o_req_t *req, const json_t *resp, const char *profile,
                             uint64_t start_ms)
{
    mg_gateway_t *gw = s->gw;
    mg_cluster_t *cl = CL(gw);
    scope_of(s->principal, s->scope, sizeof s->scope);
    s->seen_ms = mg_gateway_now_ms();
    waiter_t *w = waiter_new(cl, req);
    json_t *rec = json_pack("{s:s,s:s,s:O,s:O,s:o,s:s,s:I,s:i}", "id", s->id, "version", s->version, "caps",
                            s->caps, "clientInfo", s->client_info, "principal",
                            mg__cluster_principal_json(s->principal), "profile", profile ? profile : "",
                            "created", (json_int_t)epoch_ms(), "logLevel", s->log_rank);
    char key[160];
    mg__cluster_rec_key(s, key, sizeof key);
    if (w == NULL || rec == NULL ||
        gw->store->ops->put(gw->store, key, rec, gw->cfg->limits.session_ttl_ms, put_cb, w) != 0) {
        if (w != NULL)
            waiter_free(w);
        json_decref(rec);
        mg__session_close(s, "the session store is unavailable");
        mg__cluster_answer(gw, req, "POST", MG_ESTOREDOWN,
                           "session store unavailable: the session could not be created; retry shortly", 1,
                           NULL, start_ms);
        return;
    }
    json_decref(rec);
    w->s = s;
    mg__session_ref(s);
    w->resp = json_incref((json_t *)resp);
    w->start_ms = start_ms;
}

/* ---- DELETE: everywhere ---- */

static void del_cb(int err, void *data)
{
    waiter_t *w = data;
    mg_gateway_t *gw = w->cl->gw;
    mg_session_t *s = w->s;
    if (err != 0 && err != MG_ENOTFOUND) {
        if (w->req != NULL)
            mg__cluster_answer(gw, w->req, "DELETE", MG_ESTOREDOWN,
                               "session store unavailable: retry the DELETE shortly", 1, s->hash,
                               w->start_ms);
        waiter_free(w);
        return;
    }
    char lk[240], nk[250];
    mg__cluster_log_key(s, "0", lk, sizeof lk);
    snprintf(nk, sizeof nk, "%s:n", lk);
    const char *keys[] = {lk, nk};
    gw->bus->ops->del(gw->bus, keys, 2, NULL, NULL);
    mg__cluster_broadcast(w->cl, json_pack("{s:s,s:s,s:s}", "t", "del", "scope", s->scope, "session", s->id));
    char hash[16];
    memcpy(hash, s->hash, sizeof hash);
    mg__session_close(s, "deleted by client");
    if (w->req != NULL) {
        static h2o_generator_t gen = {NULL, NULL};
        w->req->res.status = 200;
        w->req->res.reason = mg_http_reason(200);
        w->req->res.content_length = 0;
        h2o_start_response(w->req, &gen);
        h2o_send(w->req, NULL, 0, H2O_SEND_STATE_FINAL);
        mg__http_log(gw, "DELETE", NULL, NULL, hash, 200, w->start_ms);
    }
    waiter_free(w);
}

void mg__cluster_session_delete(mg_session_t *s, h2o_req_t *req, uint64_t start_ms)
{
    mg_gateway_t *gw = s->gw;
    waiter_t *w = waiter_new(CL(gw), req);
    char key[160];
    mg__cluster_rec_key(s, key, sizeof key);
    if (w == NULL || gw->store->ops->del(gw->store, key, del_cb, w) != 0) {
        if (w != NULL)
            waiter_free(w);
        mg__cluster_answer(gw, req, "DELETE", MG_ESTOREDOWN,
                           "session store unavailable: retry the DELETE shortly", 1, s->hash, start_ms);
        return;
    }
    w->s = s;
    mg__session_ref(s);
    w->start_ms = start_ms;
}

/* ---- record updates ---- */

void mg__cluster_record_patch(mg_session_t *s, json_t *patch /* stolen */)
{
    mg_gateway_t *gw = s->gw;
    char key[160];
    mg__cluster_rec_key(s, key, sizeof key);
    if (patch != NULL)
        gw->store->ops->patch(gw->store, key, patch, NULL, NULL);
    json_decref(patch);
}

/* ---- sweep: evict idle copies, drop copies whose record is gone, keep GET holders alive ---- */

static int pinned(const mg_session_t *s)
{
    if (s->ncalls > 0 || s->follows != NULL || s->outreqs != NULL || s->refs > 0 ||
        json_object_size(s->subs) > 0)
        return 1;
    for (size_t i = 0; i < s->gw->nservers; i++)
        if (s->pools[i] != NULL)
            return 1;
    for (mg_stream_t *st = s->streams; st != NULL; st = st->next)
        if (st->conn != NULL)
            return 1;
    return 0;
}

static void evict_idle(mg_gateway_t *gw, unsigned want)
{
    uint64_t now = mg_gateway_now_ms();
    size_t pos = 0;
    const char *key;
    void *val;
    unsigned n = 0;
    while (n < want && mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        if (!s->closing && mg__session_shared(s) && !pinned(s) && now - s->seen_ms > 1000) {
            mg__session_close(s, "evicted from this replica's cache (the session lives on in the store)");
            n++;
        }
    }
}

typedef struct check {
    mg_cluster_t *cl;
    char scope[80];
    char id[64];
    int touch;
} check_t;

static void check_cb(int err, json_t *rec, void *data)
{
    check_t *k = data;
    mg_gateway_t *gw = k->cl->gw;
    mg_session_t *s = mg__cluster_copy_of(gw, k->scope, k->id);
    if (s != NULL && err == 0) {
        const char *owner = rec ? json_string_value(json_object_get(rec, "owner")) : NULL;
        int owns_children = 0;
        for (size_t i = 0; i < gw->nservers; i++)
            owns_children |= s->pools[i] != NULL;
        if (rec == NULL)
            mg__session_close(s, "gone from the session store (expired or deleted)");
        else if (owns_children && (owner == NULL || strcmp(owner, k->cl->replica) != 0))
            mg__session_close(s, "its isolated upstream servers moved to another replica");
    }
    free(k);
}

void mg__cluster_sweep(mg_cluster_t *cl)
{
    mg_gateway_t *gw = cl->gw;
    uint64_t now = mg_gateway_now_ms();
    uint64_t idle =
        gw->cfg->limits.session_ttl_ms < CACHE_IDLE_MS ? gw->cfg->limits.session_ttl_ms : CACHE_IDLE_MS;
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        if (s->closing || !mg__session_shared(s))
            continue; /* a legacy HTTP+SSE session has no record: it ends with its /sse stream */
        if (!pinned(s)) {
            if (now - s->seen_ms > idle)
                mg__session_close(s, "evicted from this replica's cache (the session lives on in the store)");
            continue;
        }
        check_t *k = calloc(1, sizeof(*k));
        if (k == NULL)
            continue;
        k->cl = cl;
        snprintf(k->scope, sizeof k->scope, "%s", s->scope);
        snprintf(k->id, sizeof k->id, "%s", s->id);
        /* an open GET stream keeps its session alive, as with one process */
        mg_store_load_opts_t o = {mg__cluster_get_follower(s) != NULL ? gw->cfg->limits.session_ttl_ms : 0,
                                  NULL, 0};
        char rk[160];
        mg__cluster_rec_key(s, rk, sizeof rk);
        if (gw->store->ops->load(gw->store, rk, &o, check_cb, k) != 0)
            free(k);
    }
}
