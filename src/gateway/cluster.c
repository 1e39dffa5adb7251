/*
 * cluster.c - sessions shared by replicas (gateway.sessions.store = redis://...): any replica
 * serves any request of any session, behind a load balancer with no affinity.
 *
 * What lives where (docs/adr/0002-shared-session-store.md has the reasons):
 *   - The session record (store.h) is in Redis; every session request loads it in one round trip
 *     (touch + owner liveness + read), verifies the principal and materializes or refreshes a
 *     local copy (mg_session_t). Copies are caches: evicted when idle, dropped when the record is
 *     gone, and a DELETE anywhere is broadcast so every copy closes at once.
 *   - SSE events: a session's GET stream is a log in Redis with seqs allocated there (stream "0");
 *     notifications from any replica are appended to it and published; the replica holding the
 *     client's GET follows it (bus.h: subscribe, range, then live). A POST response stream is
 *     written locally and appended to its own log (stream "<replica>.<n>"), so a client whose
 *     connection dropped resumes with Last-Event-ID on any replica.
 *   - isolation "session" children run on one replica per session, the "owner" in the record
 *     (claimed atomically by the first request that needs one). Requests that need them are
 *     forwarded to the owner over HTTP (POST /mcpgate/internal/v1/forward, shared secret) and
 *     answered back as a stream; when the owner is gone the client gets an explicit
 *     "upstream state lost" error once and the next call starts fresh children.
 *   - Server->client request ids carry the issuing replica ("mg-<replica>-N"): the client's answer
 *     lands anywhere and is sent to that replica's inbox channel. Cancellations, deletes and
 *     list_changed are broadcast.
 *   - The replica registry ("r:<replica>" = advertise address, 3 s expiry, renewed every second)
 *     says which replicas are alive.
 * Redis unreachable: session requests get 503 + Retry-After and /readyz fails; nothing is served
 * from a copy that was not verified by this request. Read next: session/store.h, session/bus.h.
 */
#include "../common/codec.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../http/status.h"
#include "../http/client.h"
#include "../jsonrpc/jsonrpc.h"
#include "../obs/metrics.h"
#include "../session/redis.h"
#include "../toolsearch/runtime.h"
#include "gateway_int.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define REGISTRY_TTL_MS 3000
#define BEAT_MS         250 /* the tick; the registry is renewed every REGISTER_MS */
#define REGISTER_MS     1000
#define CACHE_IDLE_MS   60000
#define AFTER_END_MS    60000 /* a finished POST stream stays resumable this long */
#define INTERNAL_PATH   "/mcpgate/internal/v1/forward"
#define MODERN_PATH     "/mcpgate/internal/v1/modern"
#define KEY_HEADER      "x-mcpgate-cluster-key"

struct mg_cluster {
    mg_gateway_t *gw;
    char replica[16];
    char advertise[300];
    char inbox[48];
    const char *secret;
    mg_bus_sub_t *inbox_sub, *all_sub;
    uv_timer_t *beat;
    uint64_t last_sweep;
    uint64_t last_register;
    int registered; /* the registry has this replica (since the store last became ready) */
    int draining;
    int replaying; /* handling a message another replica sent: do not broadcast it again */
    mg_fwd_t *fwds;
    mg_http_client_t *http; /* forwarding and MRTR proxying (NULL without gateway.sessions.secret) */
    struct proxy *proxies;  /* MRTR retries in flight, whose HTTP calls end with the client */
    uint64_t forwarded, lost, loads, load_failures;
};

struct mg_follow {
    mg_cluster_t *cl;
    mg_session_t *s;
    mg_sse_conn_t *conn;
    char stream[48];
    char key[240], chan[240];
    mg_bus_sub_t *sub;
    uint64_t last;
    int from_now, primed;
    int syncing, resync, synced;
    json_t *held; /* live events that arrived while syncing: [[seq, data, end]] */
    int is_get;
    char owner[40];
    json_t *ids; /* remote POST stream: client request ids not answered yet (NULL = unknown) */
    int checking;
    int closed;
    int refs;
    mg_follow_t *next;
};

struct mg_fwd {
    mg_cluster_t *cl;
    mg_call_t *c; /* NULL once the call finished */
    mg_http_call_t *http;
    char owner[40];
    char key[200];
    json_t *msg;
    char *buf;
    size_t len, cap;
    int refs;
    int got_final;
    mg_fwd_t *next, *prev;
};

struct mg_relay {
    mg_sse_conn_t *conn;
};

static mg_cluster_t *CL(mg_gateway_t *gw)
{
    return gw->cluster;
}

const char *mg__cluster_replica(mg_gateway_t *gw)
{
    return gw->cluster ? gw->cluster->replica : "";
}

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

static void rec_key(const mg_session_t *s, char *out, size_t n)
{
    snprintf(out, n, "%s:%s", s->scope, s->id);
}

static void log_key(const mg_session_t *s, const char *stream, char *out, size_t n)
{
    snprintf(out, n, "x:%s:%s:%s", s->scope, s->id, stream);
}

static void chan_key(const mg_session_t *s, const char *stream, char *out, size_t n)
{
    snprintf(out, n, "e:%s:%s:%s", s->scope, s->id, stream);
}

static uint64_t epoch_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* ---- principals in records ---- */

static json_t *principal_json(const mg_principal_t *p)
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
static mg_principal_t *principal_from(const json_t *j)
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
static void answer(mg_gateway_t *gw, h2o_req_t *req, const char *hm, int err, const char *message,
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
static mg_session_t *adopt(mg_cluster_t *cl, const char *scope, const char *id, const json_t *rec)
{
    mg_gateway_t *gw = cl->gw;
    mg_session_t *s = mg_map_get(&gw->sessions, id);
    if (s != NULL && (s->closing || strcmp(s->scope, scope) != 0))
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
        s->principal = principal_from(json_object_get(rec, "principal"));
        const char *profile = json_string_value(json_object_get(rec, "profile"));
        mg_toolsearch_session_open(s, profile ? profile : "");
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
    if (s != NULL && !s->closing && strcmp(s->scope, scope) == 0)
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
    } else if ((s = adopt(cl, w->scope, w->id, rec)) == NULL) {
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
            answer(gw, w->req, "POST", MG_ESTOREDOWN,
                   "session store unavailable: the session could not be created; retry shortly", 1, NULL,
                   w->start_ms);
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
    json_t *rec =
        json_pack("{s:s,s:s,s:O,s:O,s:o,s:s,s:I,s:i}", "id", s->id, "version", s->version, "caps", s->caps,
                  "clientInfo", s->client_info, "principal", principal_json(s->principal), "profile",
                  profile ? profile : "", "created", (json_int_t)epoch_ms(), "logLevel", s->log_rank);
    char key[160];
    rec_key(s, key, sizeof key);
    if (w == NULL || rec == NULL ||
        gw->store->ops->put(gw->store, key, rec, gw->cfg->limits.session_ttl_ms, put_cb, w) != 0) {
        if (w != NULL)
            waiter_free(w);
        json_decref(rec);
        mg__session_close(s, "the session store is unavailable");
        answer(gw, req, "POST", MG_ESTOREDOWN,
               "session store unavailable: the session could not be created; retry shortly", 1, NULL,
               start_ms);
        return;
    }
    json_decref(rec);
    w->s = s;
    mg__session_ref(s);
    w->resp = json_incref((json_t *)resp);
    w->start_ms = start_ms;
}

/* ---- DELETE: everywhere ---- */

static void broadcast(mg_cluster_t *cl, json_t *m /* stolen */)
{
    json_object_set_new(m, "from", json_string(cl->replica));
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (text == NULL)
        return;
    cl->gw->bus->ops->publish(cl->gw->bus, "all", text, strlen(text));
    free(text);
}

static void del_cb(int err, void *data)
{
    waiter_t *w = data;
    mg_gateway_t *gw = w->cl->gw;
    mg_session_t *s = w->s;
    if (err != 0 && err != MG_ENOTFOUND) {
        if (w->req != NULL)
            answer(gw, w->req, "DELETE", MG_ESTOREDOWN, "session store unavailable: retry the DELETE shortly",
                   1, s->hash, w->start_ms);
        waiter_free(w);
        return;
    }
    char lk[240], nk[250];
    log_key(s, "0", lk, sizeof lk);
    snprintf(nk, sizeof nk, "%s:n", lk);
    const char *keys[] = {lk, nk};
    gw->bus->ops->del(gw->bus, keys, 2, NULL, NULL);
    broadcast(w->cl, json_pack("{s:s,s:s,s:s}", "t", "del", "scope", s->scope, "session", s->id));
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
    rec_key(s, key, sizeof key);
    if (w == NULL || gw->store->ops->del(gw->store, key, del_cb, w) != 0) {
        if (w != NULL)
            waiter_free(w);
        answer(gw, req, "DELETE", MG_ESTOREDOWN, "session store unavailable: retry the DELETE shortly", 1,
               s->hash, start_ms);
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
    rec_key(s, key, sizeof key);
    if (patch != NULL)
        gw->store->ops->patch(gw->store, key, patch, NULL, NULL);
    json_decref(patch);
}

/* ---- events: appends ---- */

/* Events kept per log (0 = none: live delivery only); an event over sseReplayBytes is not kept,
 * as in the in-memory rings. */
static unsigned log_max(mg_gateway_t *gw, size_t len)
{
    return len > gw->cfg->limits.sse_replay_bytes ? 0 : gw->cfg->limits.sse_replay_events;
}

/* How long a POST stream's log lives: while its calls may run, and a minute after its end. */
static uint64_t post_log_ttl(mg_gateway_t *gw, int end)
{
    uint64_t ttl = gw->cfg->limits.max_request_ms + AFTER_END_MS;
    if (end)
        ttl = AFTER_END_MS;
    return ttl < gw->cfg->limits.session_ttl_ms ? ttl : gw->cfg->limits.session_ttl_ms;
}

void mg__cluster_notify(mg_session_t *s, const json_t *msg)
{
    mg_gateway_t *gw = s->gw;
    size_t len;
    char *data = mg_rpc_dump(msg, &len);
    if (data == NULL)
        return;
    char lk[240], ck[240];
    log_key(s, "0", lk, sizeof lk);
    chan_key(s, "0", ck, sizeof ck);
    if (gw->bus->ops->append(gw->bus, lk, ck, 0, data, len, 0, log_max(gw, len),
                             gw->cfg->limits.session_ttl_ms, NULL, NULL) != 0)
        mg_log_json(MG_LOG_WARN, "notification dropped: the session store is unavailable",
                    json_pack("{s:s,s:s}", "session", s->hash, "method",
                              mg_rpc_method(msg) ? mg_rpc_method(msg) : ""));
    free(data);
}

void mg__cluster_event_id(mg_gateway_t *gw, const mg_stream_t *st, uint64_t seq, char *out, size_t n)
{
    snprintf(out, n, "%s.%u-%llu", gw->cluster->replica, st->id, (unsigned long long)seq);
}

void mg__cluster_stream_event(mg_stream_t *st, uint64_t seq, const char *data, size_t len, int end)
{
    mg_session_t *s = st->s;
    mg_gateway_t *gw = s->gw;
    char name[48], lk[240], ck[240];
    snprintf(name, sizeof name, "%s.%u", gw->cluster->replica, st->id);
    log_key(s, name, lk, sizeof lk);
    chan_key(s, name, ck, sizeof ck);
    uint64_t ttl = post_log_ttl(gw, end);
    if (seq == 1) {
        /* Which requests this stream answers: a follower on another replica answers them with an
         * error if this replica dies before it does. */
        json_t *ids = json_array();
        for (mg_call_t *c = s->calls; c != NULL; c = c->next)
            if (c->x != NULL && c->x->stream == st && c->client_id != NULL)
                json_array_append(ids, c->client_id);
        char *text = json_dumps(ids, JSON_COMPACT);
        json_decref(ids);
        char mk[250];
        snprintf(mk, sizeof mk, "%s:m", lk);
        if (text != NULL)
            gw->bus->ops->set(gw->bus, mk, text, ttl, NULL, NULL);
        free(text);
    }
    gw->bus->ops->append(gw->bus, lk, ck, seq, data, len, end, end ? 1 + log_max(gw, 0) : log_max(gw, len),
                         ttl, NULL, NULL);
}

/* ---- followers: SSE connections fed from a log ---- */

static void follow_close(mg_follow_t *f, int end);

static void follow_unref(mg_follow_t *f)
{
    if (--f->refs > 0)
        return;
    json_decref(f->held);
    json_decref(f->ids);
    free(f);
}

static void follow_write(mg_follow_t *f, const char *bytes, size_t len)
{
    if (f->conn == NULL || f->closed)
        return;
    if (mg_sse_conn_write(f->conn, bytes, len) == MG_ETOOBIG) {
        mg_log_json(MG_LOG_WARN, "SSE client too slow; connection dropped (it can resume with Last-Event-ID)",
                    json_pack("{s:s,s:s}", "session", f->s->hash, "stream", f->stream));
        follow_close(f, 0);
    }
}

static void note_answered(mg_follow_t *f, const char *data, size_t len)
{
    if (f->ids == NULL || json_array_size(f->ids) == 0 || memmem(data, len, "\"id\"", 4) == NULL)
        return;
    json_t *m = json_loadb(data, len, 0, NULL);
    json_t *id = json_object_get(m, "id");
    if (id != NULL && json_object_get(m, "method") == NULL) {
        size_t i;
        json_t *v;
        json_array_foreach(f->ids, i, v)
        {
            if (json_equal(v, id)) {
                json_array_remove(f->ids, i);
                break;
            }
        }
    }
    json_decref(m);
}

static void follow_emit(mg_follow_t *f, uint64_t seq, const char *data, size_t len, int end)
{
    if (seq <= f->last || f->closed)
        return;
    f->last = seq;
    if (end) {
        follow_close(f, 1);
        return;
    }
    char id[80];
    snprintf(id, sizeof id, "%s-%llu", f->stream, (unsigned long long)seq);
    char *buf = NULL;
    size_t blen = 0, cap = 0;
    if (mg_sse_format(&buf, &blen, &cap, id, data, len, 0) == 0)
        follow_write(f, buf, blen);
    free(buf);
    note_answered(f, data, len);
}

static void follow_sync(mg_follow_t *f);

static void flush_held(mg_follow_t *f)
{
    json_t *held = f->held;
    f->held = json_array();
    size_t i;
    json_t *e;
    json_array_foreach(held, i, e)
    {
        if (f->closed)
            break;
        follow_emit(f, (uint64_t)json_integer_value(json_array_get(e, 0)),
                    json_string_value(json_array_get(e, 1)), json_string_length(json_array_get(e, 1)),
                    json_is_true(json_array_get(e, 2)));
    }
    json_decref(held);
}

static void synced(mg_follow_t *f)
{
    f->syncing = 0;
    f->synced = 1;
    flush_held(f);
    if (f->resync && !f->closed) {
        f->resync = 0;
        f->synced = 0;
        follow_sync(f);
        return;
    }
    /* Our own replica's stream that is no longer in memory: nothing more will be written to it. */
    if (!f->closed && !f->is_get && strcmp(f->owner, f->cl->replica) == 0)
        follow_close(f, 1);
}

static void range_cb(int err, const mg_bus_event_t *ev, size_t n, void *data)
{
    mg_follow_t *f = data;
    if (!f->closed && err == 0)
        for (size_t i = 0; i < n && !f->closed; i++)
            follow_emit(f, ev[i].seq, ev[i].data, ev[i].len, ev[i].end);
    if (!f->closed)
        synced(f);
    follow_unref(f);
}

static void last_cb(int err, uint64_t seq, void *data)
{
    mg_follow_t *f = data;
    if (!f->closed) {
        if (!f->primed) {
            f->primed = 1;
            f->last = seq;
            if (f->s->rank >= MG_VERSION_2025_11_25) {
                char id[80];
                snprintf(id, sizeof id, "%s-%llu", f->stream, (unsigned long long)seq);
                char *buf = NULL;
                size_t blen = 0, cap = 0;
                if (mg_sse_format(&buf, &blen, &cap, id, "", 0, 0) == 0)
                    follow_write(f, buf, blen);
                free(buf);
            }
        }
        synced(f);
    }
    follow_unref(f);
}

static void follow_sync(mg_follow_t *f)
{
    mg_gateway_t *gw = f->cl->gw;
    if (f->closed)
        return;
    if (f->syncing) {
        f->resync = 1;
        return;
    }
    f->syncing = 1;
    f->synced = 0;
    f->refs++;
    int r = f->from_now && !f->primed ? gw->bus->ops->last(gw->bus, f->key, last_cb, f)
                                      : gw->bus->ops->range(gw->bus, f->key, f->last, 0, range_cb, f);
    if (r != 0) {
        f->refs--;
        f->syncing = 0;
        follow_close(f, 0); /* the store is down: the client reconnects (and gets 503 until it is back) */
    }
}

static int parse_event(const char *p, size_t n, uint64_t *seq, int *end, const char **data, size_t *dlen)
{
    const char *nl = memchr(p, '\n', n);
    if (nl == NULL || nl - p < 3)
        return -1;
    char *e;
    *seq = strtoull(p, &e, 10);
    if (e == p || *e != ' ' || (e[1] != 'd' && e[1] != 'e'))
        return -1;
    *end = e[1] == 'e';
    *data = nl + 1;
    *dlen = n - (size_t)(nl + 1 - p);
    return 0;
}

static void follow_msg_cb(const char *channel, const char *payload, size_t len, void *data)
{
    mg_follow_t *f = data;
    if (f->closed)
        return;
    if (payload == NULL) { /* (re)subscribed: catch up from where we are */
        follow_sync(f);
        return;
    }
    uint64_t seq;
    int end;
    const char *d;
    size_t dl;
    if (parse_event(payload, len, &seq, &end, &d, &dl) != 0 || seq <= f->last)
        return;
    if (!f->synced || seq > f->last + 1) {
        json_array_append_new(f->held, json_pack("[I,s%,b]", (json_int_t)seq, d, dl, end));
        if (f->synced) /* a gap (missed while reconnecting): fetch what is missing from the log first */
            follow_sync(f);
        return;
    }
    follow_emit(f, seq, d, dl, end);
}

static void follow_gone_cb(mg_sse_conn_t *conn, void *data)
{
    mg_follow_t *f = data;
    if (f->conn == conn)
        f->conn = NULL;
    follow_close(f, 0);
}

static void follow_close(mg_follow_t *f, int end)
{
    if (f->closed)
        return;
    f->closed = 1;
    mg_gateway_t *gw = f->cl->gw;
    if (f->sub != NULL) {
        gw->bus->ops->unsubscribe(gw->bus, f->sub);
        f->sub = NULL;
    }
    if (f->conn != NULL) {
        mg_sse_conn_t *c = f->conn;
        f->conn = NULL;
        if (end)
            mg_sse_conn_end(c);
        mg_sse_conn_abandon(c);
    }
    mg_session_t *s = f->s;
    for (mg_follow_t **pp = &s->follows; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    f->s = NULL;
    mg__session_unref(s);
    follow_unref(f);
}

static void meta_cb(int err, const char *value, void *data)
{
    mg_follow_t *f = data;
    if (!f->closed && err == 0 && value != NULL) {
        json_t *ids = json_loads(value, 0, NULL);
        if (json_is_array(ids)) {
            json_decref(f->ids);
            f->ids = ids;
        } else {
            json_decref(ids);
        }
    }
    follow_unref(f);
}

/* Starts following stream `stream` of s on req: from seq `after`, or from now when from_now. */
static mg_follow_t *follow_start(mg_cluster_t *cl, mg_session_t *s, h2o_req_t *req, const char *stream,
                                 uint64_t after, int from_now, const char *owner)
{
    mg_gateway_t *gw = cl->gw;
    mg_follow_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->cl = cl;
    f->s = s;
    f->refs = 1;
    f->held = json_array();
    f->last = after;
    f->from_now = from_now;
    f->is_get = strcmp(stream, "0") == 0;
    snprintf(f->stream, sizeof f->stream, "%s", stream);
    snprintf(f->owner, sizeof f->owner, "%s", owner ? owner : "");
    log_key(s, stream, f->key, sizeof f->key);
    chan_key(s, stream, f->chan, sizeof f->chan);
    f->conn = mg_sse_conn_start(req, NULL, 0, follow_gone_cb, f);
    if (f->conn == NULL) {
        json_decref(f->held);
        free(f);
        return NULL;
    }
    mg__session_ref(s);
    f->next = s->follows;
    s->follows = f;
    if (gw->bus->ops->subscribe(gw->bus, f->chan, follow_msg_cb, f, &f->sub) != 0) {
        f->sub = NULL;
        follow_close(f, 0);
        return NULL;
    }
    if (!f->is_get) {
        char mk[250];
        snprintf(mk, sizeof mk, "%s:m", f->key);
        f->refs++;
        if (gw->bus->ops->get(gw->bus, mk, meta_cb, f) != 0)
            f->refs--;
    }
    return f;
}

static mg_follow_t *get_follower(mg_session_t *s)
{
    for (mg_follow_t *f = s->follows; f != NULL; f = f->next)
        if (f->is_get && !f->closed)
            return f;
    return NULL;
}

/* Splits "<stream>-<seq>": stream "0" or "<replica>.<n>". Returns 0 or -1. */
static int parse_event_id(const char *p, size_t n, char *stream, size_t ssz, uint64_t *seq)
{
    if (n == 0 || n >= 64)
        return -1;
    const char *dash = NULL;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '-')
            dash = p + i;
    if (dash == NULL || dash == p || (size_t)(dash - p) >= ssz || dash + 1 == p + n)
        return -1;
    uint64_t v = 0;
    for (const char *q = dash + 1; q < p + n; q++) {
        if (*q < '0' || *q > '9' || v > UINT64_MAX / 10 - 10)
            return -1;
        v = v * 10 + (uint64_t)(*q - '0');
    }
    size_t sl = (size_t)(dash - p);
    for (size_t i = 0; i < sl; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.'))
            return -1;
    }
    memcpy(stream, p, sl);
    stream[sl] = '\0';
    *seq = v;
    return 0;
}

void mg__cluster_get(mg_session_t *s, h2o_req_t *req, uint64_t start_ms)
{
    mg_gateway_t *gw = s->gw;
    mg_cluster_t *cl = CL(gw);
    ssize_t hi = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), -1);
    if (hi < 0) {
        /* A new GET takes the stream over (gateway/era_legacy.c says why, never 409). */
        mg_follow_t *old = get_follower(s);
        if (old != NULL)
            follow_close(old, 0);
        if (follow_start(cl, s, req, "0", 0, 1, NULL) == NULL)
            answer(gw, req, "GET", MG_ENOMEM, "out of memory", 0, s->hash, start_ms);
        else
            mg__http_log(gw, "GET", "stream", NULL, s->hash, 200, start_ms);
        return;
    }
    h2o_iovec_t lei = req->headers.entries[hi].value;
    char stream[48];
    uint64_t seq = 0;
    int dup = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), hi) >= 0;
    const char *dot = NULL;
    if (!dup && parse_event_id(lei.base, lei.len, stream, sizeof stream, &seq) == 0)
        dot = strchr(stream, '.');
    if (dup || (dot == NULL && strcmp(stream, "0") != 0) ||
        (dot != NULL && (dot == stream || dot[1] == '\0'))) {
        answer(gw, req, "GET", MG_EREQUEST,
               "Bad Request: Last-Event-ID does not name a stream of this session (it may have expired)", 0,
               s->hash, start_ms);
        return;
    }
    if (dot == NULL) { /* the session's GET stream, resumed */
        mg_follow_t *old = get_follower(s);
        if (old != NULL)
            follow_close(old, 0); /* the client moved on: only the newest GET is fed */
        if (follow_start(cl, s, req, "0", seq, 0, NULL) == NULL)
            answer(gw, req, "GET", MG_ENOMEM, "out of memory", 0, s->hash, start_ms);
        else
            mg__http_log(gw, "GET", "resume", NULL, s->hash, 200, start_ms);
        return;
    }
    char owner[40];
    snprintf(owner, sizeof owner, "%.*s", (int)(dot - stream), stream);
    if (strcmp(owner, cl->replica) == 0) {
        char *end;
        unsigned long n = strtoul(dot + 1, &end, 10);
        mg_stream_t *st = *end == '\0' && n <= UINT32_MAX ? mg__stream_find(s, (uint32_t)n) : NULL;
        if (st != NULL && !mg__stream_resumable(st, seq)) { /* finished, nothing left: 204 */
            mg__http_send_empty(req, 204, "text/event-stream");
            mg__http_log(gw, "GET", "resume", NULL, s->hash, 204, start_ms);
            return;
        }
        if (st != NULL) { /* still in this replica's memory: the local ring */
            mg_sse_conn_t *c = mg_sse_conn_start(req, NULL, 0, mg__stream_conn_gone_cb, st);
            if (c == NULL)
                return;
            mg__stream_attach(st, c);
            mg__stream_replay(st, seq);
            mg__http_log(gw, "GET", "resume", NULL, s->hash, 200, start_ms);
            return;
        }
    }
    if (follow_start(cl, s, req, stream, seq, 0, owner) == NULL)
        answer(gw, req, "GET", MG_ENOMEM, "out of memory", 0, s->hash, start_ms);
    else
        mg__http_log(gw, "GET", "resume", NULL, s->hash, 200, start_ms);
}

/* The owner of a resumed stream is gone: answer its unanswered requests, then end. */
static void owner_gone(mg_follow_t *f)
{
    size_t i;
    json_t *id;
    json_array_foreach(f->ids, i, id)
    {
        json_t *e =
            mg_rpc_error(id, mg_err_jsonrpc_code(MG_EREPLICA),
                         "the replica that was running this request stopped before answering; the request "
                         "may not have completed: send it again",
                         json_pack("{s:s,s:s}", "reason", "replica_gone", "replica", f->owner));
        size_t len;
        char *text = mg_rpc_dump(e, &len);
        json_decref(e);
        if (text != NULL)
            follow_emit(f, f->last + 1, text, len, 0);
        free(text);
    }
    follow_close(f, 1);
}

static void liveness_cb(int err, const char *value, void *data)
{
    mg_follow_t *f = data;
    f->checking = 0;
    if (!f->closed && err == 0 && value == NULL)
        owner_gone(f);
    follow_unref(f);
}

static void check_owners(mg_cluster_t *cl)
{
    mg_gateway_t *gw = cl->gw;
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        for (mg_follow_t *f = s->follows; f != NULL; f = f->next) {
            if (f->is_get || f->closed || f->checking || !f->synced || strcmp(f->owner, cl->replica) == 0)
                continue;
            char rk[64];
            snprintf(rk, sizeof rk, "r:%s", f->owner);
            f->refs++;
            f->checking = 1;
            if (gw->bus->ops->get(gw->bus, rk, liveness_cb, f) != 0) {
                f->refs--;
                f->checking = 0;
            }
        }
    }
}

void mg__cluster_session_closing(mg_session_t *s)
{
    while (s->follows != NULL)
        follow_close(s->follows, 1);
}

/* ---- list_changed from any replica's shared children ---- */

static const char *changed_methods[MG_LIST_COUNT] = {
    "notifications/tools/list_changed", "notifications/prompts/list_changed",
    "notifications/resources/list_changed", "notifications/resources/list_changed"};

void mg__cluster_list_changed(mg_gateway_t *gw, unsigned bits)
{
    broadcast(CL(gw), json_pack("{s:s,s:i}", "t", "lc", "bits", (int)bits));
}

static void on_list_changed(mg_cluster_t *cl, unsigned bits)
{
    mg_gateway_t *gw = cl->gw;
    for (int k = 0; k < MG_LIST_TEMPLATES; k++) {
        if (!(bits & (1u << k)))
            continue;
        json_t *n = mg_rpc_notification(changed_methods[k], NULL);
        mg__modern_listeners_notify(gw, 1u << k, NULL, n);
        size_t len;
        char *text = mg_rpc_dump(n, &len);
        json_decref(n);
        char *buf = NULL;
        size_t blen = 0, cap = 0;
        if (text != NULL && mg_sse_format(&buf, &blen, &cap, NULL, text, len, 0) == 0) {
            size_t pos = 0;
            const char *key;
            void *val;
            while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
                mg_follow_t *f = get_follower(val);
                if (f != NULL && f->synced)
                    follow_write(f, buf, blen);
            }
        }
        free(buf);
        free(text);
    }
}

/* ---- messages for other replicas ---- */

static mg_session_t *copy_of(mg_gateway_t *gw, const char *scope, const char *id)
{
    mg_session_t *s = id ? mg_map_get(&gw->sessions, id) : NULL;
    return s != NULL && !s->closing && scope != NULL && strcmp(s->scope, scope) == 0 ? s : NULL;
}

static void send_to(mg_cluster_t *cl, const char *replica, json_t *m /* stolen */)
{
    char ch[48];
    snprintf(ch, sizeof ch, "i:%s", replica);
    json_object_set_new(m, "from", json_string(cl->replica));
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (text != NULL)
        cl->gw->bus->ops->publish(cl->gw->bus, ch, text, strlen(text));
    free(text);
}

int mg__cluster_route_response(mg_session_t *s, const json_t *msg)
{
    mg_cluster_t *cl = CL(s->gw);
    const char *id = json_string_value(json_object_get(msg, "id"));
    if (cl == NULL || cl->replaying || id == NULL || strncmp(id, "mg-", 3) != 0)
        return 0;
    const char *r = id + 3, *dash = strchr(r, '-');
    if (dash == NULL || dash == r || (size_t)(dash - r) >= 16)
        return 0;
    char replica[16];
    snprintf(replica, sizeof replica, "%.*s", (int)(dash - r), r);
    if (strcmp(replica, cl->replica) == 0)
        return 0;
    send_to(cl, replica,
            json_pack("{s:s,s:s,s:s,s:O}", "t", "msg", "scope", s->scope, "session", s->id, "msg", msg));
    return 1;
}

void mg__cluster_client_notification(mg_session_t *s, const json_t *msg)
{
    mg_cluster_t *cl = CL(s->gw);
    if (cl == NULL || cl->replaying)
        return;
    const char *m = mg_rpc_method(msg);
    if (m != NULL && strcmp(m, "notifications/cancelled") == 0) {
        broadcast(cl, json_pack("{s:s,s:s,s:s,s:O}", "t", "cancel", "scope", s->scope, "session", s->id,
                                "msg", msg));
    } else if (m != NULL && strcmp(m, "notifications/roots/list_changed") == 0 && s->owner[0] &&
               s->owner[0] != '!' && strcmp(s->owner, cl->replica) != 0) {
        send_to(cl, s->owner,
                json_pack("{s:s,s:s,s:s,s:O}", "t", "msg", "scope", s->scope, "session", s->id, "msg", msg));
    }
}

static void handle_bus_message(mg_cluster_t *cl, const char *payload, size_t len)
{
    mg_gateway_t *gw = cl->gw;
    json_t *m = json_loadb(payload, len, 0, NULL);
    const char *t = json_string_value(json_object_get(m, "t"));
    const char *from = json_string_value(json_object_get(m, "from"));
    if (t == NULL) {
        json_decref(m);
        return;
    }
    if (strcmp(t, "lc") == 0) {
        on_list_changed(cl, (unsigned)json_integer_value(json_object_get(m, "bits")));
        json_decref(m);
        return;
    }
    if (from != NULL && strcmp(from, cl->replica) == 0) {
        json_decref(m);
        return; /* our own broadcast: already handled here */
    }
    mg_session_t *s = copy_of(gw, json_string_value(json_object_get(m, "scope")),
                              json_string_value(json_object_get(m, "session")));
    if (s != NULL) {
        if (strcmp(t, "del") == 0) {
            mg__session_close(s, "deleted through another replica");
        } else if (strcmp(t, "cancel") == 0 || strcmp(t, "msg") == 0) {
            const char *why = NULL;
            cl->replaying = 1;
            mg__dispatch_client_message(gw, s, json_object_get(m, "msg"), &why);
            cl->replaying = 0;
        }
    }
    json_decref(m);
}

static void bus_cb(const char *channel, const char *payload, size_t len, void *data)
{
    if (payload != NULL)
        handle_bus_message(data, payload, len);
}

/* ---- forwarding to the owner of a session's children ---- */

/* 1 when msg may need one of the session's own children (isolation "session"). */
int mg__cluster_needs_children(mg_gateway_t *gw, const json_t *msg)
{
    int any = 0;
    for (size_t i = 0; i < gw->nservers; i++)
        any |= gw->servers[i].cfg->isolation == MG_ISOLATION_SESSION;
    if (!any)
        return 0;
    const char *m = mg_rpc_method(msg);
    json_t *params = mg_rpc_params(msg);
    if (m == NULL || strcmp(m, "ping") == 0 || strcmp(m, "initialize") == 0)
        return 0;
    if (strcmp(m, "tools/call") == 0 || strcmp(m, "prompts/get") == 0) {
        const char *name = json_string_value(json_object_get(params, "name"));
        const char *orig = NULL;
        long i = name ? mg__catalog_route_name(gw, name, &orig) : -1;
        if (i < 0)
            return strcmp(m, "tools/call") == 0; /* the search tool (lazy mode) lists every server */
        return gw->servers[i].cfg->isolation == MG_ISOLATION_SESSION;
    }
    if (strcmp(m, "completion/complete") == 0) {
        json_t *ref = json_object_get(params, "ref");
        const char *type = json_string_value(json_object_get(ref, "type"));
        if (type != NULL && strcmp(type, "ref/prompt") == 0) {
            const char *orig = NULL;
            long i = mg__catalog_route_name(gw, json_string_value(json_object_get(ref, "name")) ?: "", &orig);
            return i >= 0 && gw->servers[i].cfg->isolation == MG_ISOLATION_SESSION;
        }
        return 1;
    }
    return 1; /* lists, resources, logging/setLevel: every server may be involved */
}

static void fwd_unref(mg_fwd_t *f)
{
    if (--f->refs > 0)
        return;
    json_decref(f->msg);
    free(f->buf);
    free(f);
}

/* The store could not be used for this call: 503 + Retry-After when the answer is plain JSON. */
static void fail_unavailable(mg_call_t *c)
{
    if (c->x != NULL && !c->x->batch && c->x->relay == NULL && c->x->stream == NULL) {
        c->x->status = mg_err_http_status(MG_ESTOREDOWN);
        c->x->retry_after = 1;
    }
    mg__dispatch_fail(c, MG_ESTOREDOWN, "session store unavailable: retry shortly",
                      json_pack("{s:s}", "reason", "store_unavailable"));
}

static void fwd_detach(mg_fwd_t *f)
{
    mg_cluster_t *cl = f->cl;
    if (f->prev)
        f->prev->next = f->next;
    else if (cl->fwds == f)
        cl->fwds = f->next;
    if (f->next)
        f->next->prev = f->prev;
    f->next = f->prev = NULL;
}

/* Called from call_finish() for a forwarded call: no callback reaches the call after this. */
void mg__cluster_call_done(mg_call_t *c)
{
    mg_fwd_t *f = c->fwd;
    if (f == NULL)
        return;
    c->fwd = NULL;
    f->c = NULL;
    if (f->http != NULL) {
        mg_http_cancel(f->http);
        f->http = NULL;
    }
    fwd_detach(f);
    fwd_unref(f);
}

static void lost_cas_cb(int err, void *data)
{
    mg_fwd_t *f = data;
    mg_call_t *c = f->c;
    if (c != NULL) {
        char m[400];
        snprintf(
            m, sizeof m,
            "upstream state lost: replica %s, which ran this session's isolated upstream servers, is gone; "
            "this request may not have run. Send it again: the next call starts fresh upstream processes "
            "(their earlier state is gone)",
            f->owner);
        f->cl->lost++;
        mg__dispatch_fail(c, MG_EREPLICA, m,
                          json_pack("{s:s,s:s}", "reason", "upstream_state_lost", "replica", f->owner));
    }
    fwd_unref(f);
}

/* The owner is gone (or refused): clear the owner so the next call claims, then fail this call. */
static void fwd_lost(mg_fwd_t *f, const char *expect)
{
    mg_gateway_t *gw = f->cl->gw;
    if (f->http != NULL) {
        mg_http_cancel(f->http);
        f->http = NULL;
    }
    f->refs++;
    if (gw->store->ops->owner_cas(gw->store, f->key, expect, "", lost_cas_cb, f) != 0)
        lost_cas_cb(0, f);
}

static void fwd_event(mg_fwd_t *f, const char *data, size_t len)
{
    json_t *m = json_loadb(data, len, 0, NULL);
    mg_call_t *c = f->c;
    json_t *rel = json_object_get(m, "r"), *fin = json_object_get(m, "f");
    if (c != NULL && json_is_object(rel) && c->x != NULL) {
        mg__exchange_related(c->x, rel);
    } else if (c != NULL && json_is_object(fin)) {
        f->got_final = 1;
        json_t *r = mg_json_copy(fin);
        json_object_set(r, "id", c->client_id);
        mg__dispatch_finish(c, r); /* aborts f->http through mg__cluster_call_done */
        json_decref(r);
    }
    json_decref(m);
}

static void fwd_body_cb(void *data, const char *bytes, size_t len)
{
    mg_fwd_t *f = data;
    if (f->len + len + 1 > f->cap) {
        size_t ncap = f->cap ? f->cap : 4096;
        while (ncap < f->len + len + 1)
            ncap *= 2;
        char *n = realloc(f->buf, ncap);
        if (n == NULL)
            return;
        f->buf = n;
        f->cap = ncap;
    }
    memcpy(f->buf + f->len, bytes, len);
    f->len += len;
    f->buf[f->len] = '\0';
    f->refs++;
    /* events: "data: <json>\n(data: ...\n)*\n" */
    char *start = f->buf;
    for (;;) {
        char *end = strstr(start, "\n\n");
        if (end == NULL || f->c == NULL)
            break;
        *end = '\0';
        /* join data lines */
        size_t cap = (size_t)(end - start) + 1, o = 0;
        char *joined = malloc(cap);
        if (joined != NULL) {
            for (char *line = start; line != NULL && line < end;) {
                char *nl = strchr(line, '\n');
                if (strncmp(line, "data: ", 6) == 0) {
                    size_t l = (size_t)((nl ? nl : end) - line - 6);
                    if (o)
                        joined[o++] = '\n';
                    memcpy(joined + o, line + 6, l);
                    o += l;
                }
                line = nl ? nl + 1 : NULL;
            }
            joined[o] = '\0';
            if (o > 0)
                fwd_event(f, joined, o);
            free(joined);
        }
        start = end + 2;
    }
    size_t rest = f->len - (size_t)(start - f->buf);
    memmove(f->buf, start, rest);
    f->len = rest;
    if (f->buf)
        f->buf[f->len] = '\0';
    fwd_unref(f);
}

static void fwd_done_cb(void *data, int err, int status, const char *why)
{
    mg_fwd_t *f = data;
    f->http = NULL;
    if (f->c == NULL || f->got_final)
        return;
    if (status == 503) { /* the owner cannot reach the store right now: its children are fine */
        fail_unavailable(f->c);
        return;
    }
    if (status == 409 || status == 404 || status == 410 || err != 0 || status == 200) {
        /* 200 without a final answer: the owner died mid-stream */
        mg_log_json(MG_LOG_WARN, "forwarded request failed: the owner replica is gone or refused",
                    json_pack("{s:s,s:i,s:s,s:s}", "replica", f->owner, "status", status, "error",
                              err ? mg_strerror(err) : "", "detail", why ? why : ""));
        fwd_lost(f, f->owner);
        return;
    }
    char m[200];
    snprintf(m, sizeof m, "forwarding to replica %s failed (HTTP %d)", f->owner, status);
    mg__dispatch_fail(f->c, MG_EREPLICA, m, NULL);
}

static void addr_cb(int err, const char *value, void *data)
{
    mg_fwd_t *f = data;
    mg_cluster_t *cl = f->cl;
    mg_gateway_t *gw = cl->gw;
    if (f->c == NULL) {
        fwd_unref(f);
        return;
    }
    if (err != 0) {
        fail_unavailable(f->c);
        fwd_unref(f);
        return;
    }
    if (value == NULL) { /* not in the registry: gone */
        fwd_lost(f, f->owner);
        fwd_unref(f);
        return;
    }
    mg_call_t *c = f->c;
    json_t *body = json_pack("{s:s,s:s,s:o,s:O}", "scope", c->s->scope, "session", c->s->id, "principal",
                             principal_json(c->principal), "msg", f->msg);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    const char *hdrs[] = {KEY_HEADER, cl->secret ? cl->secret : "", "content-type", "application/json"};
    char url[400];
    snprintf(url, sizeof url, "http://%s%s", value, INTERNAL_PATH);
    mg_http_req_t hr = {.url = url,
                        .headers = hdrs,
                        .nheaders = 2,
                        .body = text ? text : "",
                        .len = text ? strlen(text) : 0,
                        .timeout_ms = (long)(gw->cfg->limits.max_request_ms + 5000)};
    if (text == NULL || mg_http_request(cl->http, &hr, NULL, fwd_body_cb, fwd_done_cb, f, &f->http) != 0) {
        f->http = NULL;
        mg__dispatch_fail(c, MG_EREPLICA,
                          "could not forward the request to the replica that runs this session's "
                          "isolated upstream servers",
                          NULL);
    }
    free(text);
    fwd_unref(f);
}

int mg__cluster_forward(mg_call_t *c, const json_t *msg)
{
    mg_gateway_t *gw = c->gw;
    mg_cluster_t *cl = CL(gw);
    mg_session_t *s = c->s;
    if (cl == NULL || c->modern || s == gw->stateless || c->x == NULL || c->x->relay != NULL)
        return 0;
    if (s->owner[0] == '\0' || strcmp(s->owner, cl->replica) == 0 || !mg__cluster_needs_children(gw, msg))
        return 0;
    mg_fwd_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return 0;
    f->cl = cl;
    f->c = c;
    f->refs = 1; /* the call's */
    f->msg = json_incref((json_t *)msg);
    rec_key(s, f->key, sizeof f->key);
    c->fwd = f;
    f->next = cl->fwds;
    if (cl->fwds)
        cl->fwds->prev = f;
    cl->fwds = f;
    if (s->owner[0] == '!') { /* the store found the owner gone: report the loss once */
        snprintf(f->owner, sizeof f->owner, "%s", s->owner + 1);
        char expect[40];
        snprintf(expect, sizeof expect, "%s", s->owner);
        fwd_lost(f, expect);
        return 1;
    }
    snprintf(f->owner, sizeof f->owner, "%s", s->owner);
    if (cl->secret == NULL) {
        mg__dispatch_fail(c, MG_ECONFIG,
                          "this session's isolated upstream servers run on another replica, and "
                          "gateway.sessions.secret is not set, so requests cannot be forwarded to it",
                          NULL);
        return 1;
    }
    cl->forwarded++;
    char rk[64];
    snprintf(rk, sizeof rk, "r:%s", f->owner);
    f->refs++;
    if (gw->bus->ops->get(gw->bus, rk, addr_cb, f) != 0) {
        f->refs--;
        fail_unavailable(c);
    }
    return 1;
}

int mg__cluster_may_own(const mg_session_t *s)
{
    mg_cluster_t *cl = CL(s->gw);
    return cl == NULL || strcmp(s->owner, cl->replica) == 0;
}

/* ---- the owner's side: POST /mcpgate/internal/v1/forward ---- */

static void relay_gone_cb(mg_sse_conn_t *conn, void *data)
{
    mg_relay_t *r = data;
    if (r->conn == conn)
        r->conn = NULL;
}

void mg__cluster_relay(mg_exchange_t *x, const json_t *msg, int final)
{
    mg_relay_t *r = x->relay;
    json_t *w = json_pack("{s:O}", final ? "f" : "r", msg);
    size_t len;
    char *text = mg_rpc_dump(w, &len);
    json_decref(w);
    if (text != NULL && r->conn != NULL) {
        char *buf = NULL;
        size_t blen = 0, cap = 0;
        if (mg_sse_format(&buf, &blen, &cap, NULL, text, len, 0) == 0)
            mg_sse_conn_write(r->conn, buf, blen);
        free(buf);
    }
    free(text);
    if (final && x->pending == 0 && r->conn != NULL) {
        mg_sse_conn_t *c = r->conn;
        r->conn = NULL;
        mg_sse_conn_end(c);
        mg_sse_conn_abandon(c);
    }
}

typedef struct inreq inreq_t;
typedef struct inreq_hook {
    inreq_t *q;
} inreq_hook_t;

struct inreq {
    mg_cluster_t *cl;
    h2o_req_t *req;
    inreq_hook_t *hook;
    json_t *body;
    char scope[80];
    char id[64];
    uint64_t start_ms;
};

static void inreq_disposed(void *p)
{
    inreq_hook_t *h = p;
    if (h->q != NULL)
        h->q->req = NULL;
}

/* 1 when two principal objects (or nulls) carry the same binding key. */
static int same_key(const json_t *a, const json_t *b)
{
    const char *ka = json_string_value(json_object_get(a, "key"));
    const char *kb = json_string_value(json_object_get(b, "key"));
    if (ka == NULL || kb == NULL)
        return ka == NULL && kb == NULL;
    return strlen(ka) == strlen(kb) && CRYPTO_memcmp(ka, kb, strlen(ka)) == 0;
}

static void internal_answer(h2o_req_t *req, int status, const char *why)
{
    json_t *e = json_pack("{s:s}", "error", why);
    mg__http_send_json(req, status, e, NULL, 0);
    json_decref(e);
}

static void internal_load_cb(int err, json_t *rec, void *data)
{
    inreq_t *q = data;
    mg_cluster_t *cl = q->cl;
    mg_gateway_t *gw = cl->gw;
    h2o_req_t *req = q->req;
    if (req != NULL)
        q->hook->q = NULL;
    if (req == NULL) {
        /* the forwarding replica went away while we loaded */
    } else if (err != 0) {
        internal_answer(req, 503, "session store unavailable");
    } else if (rec == NULL) {
        internal_answer(req, 404, "no such session");
    } else if (!same_key(json_object_get(rec, "principal"), json_object_get(q->body, "principal"))) {
        internal_answer(req, 404, "no such session");
    } else if (json_string_value(json_object_get(rec, "owner")) == NULL ||
               strcmp(json_string_value(json_object_get(rec, "owner")), cl->replica) != 0) {
        internal_answer(req, 409, "this replica does not own the session's children");
    } else {
        mg_session_t *s = adopt(cl, q->scope, q->id, rec);
        if (s == NULL) {
            internal_answer(req, 503, "no room for the session");
        } else {
            mg_exchange_t *x = mg__exchange_new(gw, req, s, q->start_ms);
            mg_relay_t *r = h2o_mem_alloc_pool(&req->pool, sizeof(*r));
            r->conn = NULL;
            if (x != NULL) {
                mg_principal_unref(x->principal);
                x->principal = principal_from(json_object_get(q->body, "principal"));
                x->relay = r;
                x->pending = 1;
                r->conn = mg_sse_conn_start(req, NULL, 0, relay_gone_cb, r);
                json_t *msg = json_object_get(q->body, "msg");
                snprintf(x->method, sizeof x->method, "%s", mg_rpc_method(msg) ? mg_rpc_method(msg) : "");
                mg__exchange_ref(x);
                mg__dispatch_request(gw, s, x, msg);
                mg__exchange_unref(x);
            } else {
                internal_answer(req, 500, "out of memory");
            }
        }
    }
    json_decref(q->body);
    free(q);
}

int mg_gateway_handle_internal(mg_gateway_t *gw, h2o_req_t *req, int loopback_bound)
{
    mg_cluster_t *cl = CL(gw);
    if (cl == NULL || cl->secret == NULL) {
        internal_answer(req, 404, "not found");
        return 0;
    }
    ssize_t hi = h2o_find_header_by_str(&req->headers, H2O_STRLIT(KEY_HEADER), -1);
    size_t sl = strlen(cl->secret);
    if (hi < 0 || req->headers.entries[hi].value.len != sl ||
        CRYPTO_memcmp(req->headers.entries[hi].value.base, cl->secret, sl) != 0) {
        mg_log_json(MG_LOG_WARN, "internal endpoint: request without the cluster key refused", NULL);
        internal_answer(req, 403, "forbidden");
        return 0;
    }
    size_t pl = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")) && pl == strlen(MODERN_PATH) &&
        memcmp(req->path.base, MODERN_PATH, pl) == 0) {
        /* A 2026-07-28 MRTR retry that reached another replica: the client's own request (its
         * headers and Authorization included), handled here as if it had come to /mcp. */
        return mg_gateway_handle_mcp(gw, req, loopback_bound);
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")) || pl != strlen(INTERNAL_PATH) ||
        memcmp(req->path.base, INTERNAL_PATH, pl) != 0) {
        internal_answer(req, 404, "not found");
        return 0;
    }
    if (gw->shutting_down) { /* its children go away with it: the state is lost */
        internal_answer(req, 410, "draining");
        return 0;
    }
    json_t *body = json_loadb(req->entity.base, req->entity.len, 0, NULL);
    const char *scope = json_string_value(json_object_get(body, "scope"));
    const char *id = json_string_value(json_object_get(body, "session"));
    json_t *msg = json_object_get(body, "msg");
    if (scope == NULL || id == NULL || strlen(id) >= 64 || strlen(scope) >= 80 ||
        mg_rpc_classify(msg, NULL) != MG_RPC_REQUEST) {
        json_decref(body);
        internal_answer(req, 400, "bad forward");
        return 0;
    }
    inreq_t *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        json_decref(body);
        internal_answer(req, 500, "out of memory");
        return 0;
    }
    q->cl = cl;
    q->req = req;
    q->body = body;
    q->start_ms = mg_gateway_now_ms();
    snprintf(q->scope, sizeof q->scope, "%s", scope);
    snprintf(q->id, sizeof q->id, "%s", id);
    q->hook = h2o_mem_alloc_shared(&req->pool, sizeof(inreq_hook_t), inreq_disposed);
    q->hook->q = q;
    char key[160];
    snprintf(key, sizeof key, "%s:%s", scope, id);
    mg_store_load_opts_t o = {0, cl->replica, 0};
    if (gw->store->ops->load(gw->store, key, &o, internal_load_cb, q) != 0) {
        q->hook->q = NULL;
        json_decref(body);
        free(q);
        internal_answer(req, 503, "session store unavailable");
    }
    return 0;
}

/* ---- 2026-07-28 MRTR retries: proxied to the replica that parked the call ---- */

typedef struct proxy proxy_t;
typedef struct proxy_hook {
    proxy_t *p;
} proxy_hook_t;

struct proxy {
    mg_cluster_t *cl;
    h2o_req_t *req; /* NULL once h2o disposed it */
    proxy_hook_t *hook;
    mg_http_call_t *http;
    mg_sse_conn_t *conn; /* an SSE answer, relayed as it arrives */
    char owner[40];
    json_t *id;
    char ctype[96];
    char retry_after[16];
    int status;
    char *body; /* a JSON answer, relayed whole */
    size_t len, cap;
    uint64_t start_ms;
    int refs;
    proxy_t *next, *prev;
};

static void proxy_unref(proxy_t *p)
{
    if (--p->refs > 0)
        return;
    if (p->prev)
        p->prev->next = p->next;
    else if (p->cl != NULL && p->cl->proxies == p)
        p->cl->proxies = p->next;
    if (p->next)
        p->next->prev = p->prev;
    if (p->req != NULL)
        p->hook->p = NULL;
    json_decref(p->id);
    free(p->body);
    free(p);
}

static void proxy_disposed(void *d)
{
    proxy_hook_t *h = d;
    proxy_t *p = h->p;
    if (p == NULL)
        return;
    p->req = NULL;
    if (p->http != NULL) { /* the client went away: so does the forwarded request (cancels there) */
        mg_http_cancel(p->http);
        p->http = NULL;
        proxy_unref(p);
    }
}

static void proxy_gone_cb(mg_sse_conn_t *conn, void *data)
{
    proxy_t *p = data;
    if (p->conn == conn)
        p->conn = NULL;
}

static void proxy_fail(proxy_t *p, int err, const char *why)
{
    if (p->req == NULL)
        return;
    mg__http_error(p->cl->gw, p->req, err, why, NULL, p->id, p->start_ms);
}

static void proxy_head_cb(void *data, int status, const char *headers, size_t len)
{
    proxy_t *p = data;
    p->status = status;
    for (const char *l = headers; l < headers + len;) {
        const char *e = memchr(l, '\n', (size_t)(headers + len - l));
        size_t n = (size_t)((e ? e : headers + len) - l);
        while (n > 0 && (l[n - 1] == '\r' || l[n - 1] == ' '))
            n--;
        if (n > 13 && strncasecmp(l, "content-type:", 13) == 0)
            snprintf(p->ctype, sizeof p->ctype, "%.*s", (int)(n - 13), l + 13 + (l[13] == ' '));
        else if (n > 12 && strncasecmp(l, "retry-after:", 12) == 0)
            snprintf(p->retry_after, sizeof p->retry_after, "%.*s", (int)(n - 12), l + 12 + (l[12] == ' '));
        l = e ? e + 1 : headers + len;
    }
    if (p->req != NULL && status == 200 && strstr(p->ctype, "text/event-stream") != NULL)
        p->conn = mg_sse_conn_start(p->req, NULL, 0, proxy_gone_cb, p);
}

static void proxy_body_cb(void *data, const char *bytes, size_t len)
{
    proxy_t *p = data;
    if (p->conn != NULL) {
        if (mg_sse_conn_write(p->conn, bytes, len) == MG_ETOOBIG) {
            mg_sse_conn_t *c = p->conn;
            p->conn = NULL;
            mg_sse_conn_abandon(c);
        }
        return;
    }
    if (p->len + len > (8u << 20)) /* JSON answers are bounded like SSE backlogs */
        return;
    if (p->len + len + 1 > p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 4096;
        while (ncap < p->len + len + 1)
            ncap *= 2;
        char *n = realloc(p->body, ncap);
        if (n == NULL)
            return;
        p->body = n;
        p->cap = ncap;
    }
    memcpy(p->body + p->len, bytes, len);
    p->len += len;
}

static void proxy_done_cb(void *data, int err, int status, const char *why)
{
    proxy_t *p = data;
    p->http = NULL;
    if (p->conn != NULL) {
        mg_sse_conn_t *c = p->conn;
        p->conn = NULL;
        mg_sse_conn_end(c);
        mg_sse_conn_abandon(c);
    } else if (p->req != NULL && (err != 0 || status == 0)) {
        proxy_fail(
            p, MG_EPARAMS,
            "Invalid params: the suspended request is no longer waiting (the replica holding it is gone); "
            "send the request again without requestState");
    } else if (p->req != NULL) {
        json_t *j = p->body ? json_loadb(p->body, p->len, 0, NULL) : NULL;
        if (j == NULL) {
            proxy_fail(p, MG_EREPLICA,
                       "the replica holding the suspended request answered something unreadable");
        } else {
            const char *hdrs[] = {"retry-after", p->retry_after};
            mg__http_send_json(p->req, status, j, hdrs, p->retry_after[0] ? 1 : 0);
            mg__http_log(p->cl->gw, "POST", "retry", p->owner, NULL, status, p->start_ms);
        }
        json_decref(j);
    }
    proxy_unref(p);
}

static void proxy_addr_cb(int err, const char *value, void *data)
{
    proxy_t *p = data;
    mg_gateway_t *gw = p->cl->gw;
    if (p->req == NULL) {
        proxy_unref(p);
        return;
    }
    if (err != 0 || value == NULL) {
        if (err != 0)
            proxy_fail(p, MG_ESTOREDOWN, "session store unavailable: retry shortly");
        else
            proxy_fail(
                p, MG_EPARAMS,
                "Invalid params: the suspended request is no longer waiting (the replica holding it is "
                "gone); send the request again without requestState");
        proxy_unref(p);
        return;
    }
    h2o_req_t *req = p->req;
    /* The client's request as it came: its headers (Authorization, MCP-Protocol-Version, Mcp-*,
     * Origin...) minus hop-by-hop ones, its Host, its body. */
    size_t n = 0, cap = 2 * (req->headers.size + 3);
    const char **hdrs = calloc(cap, sizeof(*hdrs));
    char **own = calloc(req->headers.size + 2, sizeof(*own));
    if (hdrs == NULL || own == NULL) {
        free(hdrs);
        free(own);
        proxy_fail(p, MG_ENOMEM, "out of memory");
        proxy_unref(p);
        return;
    }
    size_t k = 0;
    if (req->authority.len > 0) { /* without one, the HTTP client names the target (the URL's) */
        own[k] = strndup(req->authority.base, req->authority.len);
        hdrs[n++] = "host";
        hdrs[n++] = own[k] ? own[k] : "";
        k++;
    }
    for (size_t i = 0; i < req->headers.size; i++) {
        h2o_header_t *h = &req->headers.entries[i];
        const char *skip[] = {"host",    "content-length", "connection", "transfer-encoding",
                              "expect",  "keep-alive",     "te",         "upgrade",
                              KEY_HEADER};
        int drop = 0;
        for (size_t j = 0; j < sizeof skip / sizeof *skip; j++)
            drop |= h->name->len == strlen(skip[j]) && strncasecmp(h->name->base, skip[j], h->name->len) == 0;
        if (drop)
            continue;
        size_t nl = h->name->len, vl = h->value.len;
        own[k] = malloc(nl + vl + 2);
        if (own[k] == NULL)
            continue;
        memcpy(own[k], h->name->base, nl);
        own[k][nl] = '\0';
        memcpy(own[k] + nl + 1, h->value.base, vl);
        own[k][nl + 1 + vl] = '\0';
        hdrs[n++] = own[k];
        hdrs[n++] = own[k] + nl + 1;
        k++;
    }
    hdrs[n++] = KEY_HEADER;
    hdrs[n++] = p->cl->secret;
    char url[400];
    snprintf(url, sizeof url, "http://%s%s", value, MODERN_PATH);
    mg_http_req_t hr = {.url = url,
                        .headers = hdrs,
                        .nheaders = n / 2,
                        .body = req->entity.base ? req->entity.base : "",
                        .len = req->entity.len,
                        .timeout_ms = (long)(gw->cfg->limits.max_request_ms + 5000)};
    if (mg_http_request(p->cl->http, &hr, proxy_head_cb, proxy_body_cb, proxy_done_cb, p, &p->http) == 0) {
        p->refs++; /* the exchange's */
    } else {
        p->http = NULL;
        proxy_fail(p, MG_EREPLICA, "could not reach the replica holding the suspended request");
    }
    for (size_t i = 0; i < k; i++)
        free(own[i]);
    free(own);
    free(hdrs);
    proxy_unref(p);
}

int mg__cluster_proxy_modern(mg_gateway_t *gw, h2o_req_t *req, const json_t *msg, const char *replica,
                             uint64_t start_ms)
{
    mg_cluster_t *cl = CL(gw);
    if (cl == NULL || cl->secret == NULL || replica == NULL || strcmp(replica, cl->replica) == 0 ||
        strlen(replica) >= sizeof(((proxy_t *)0)->owner))
        return 0;
    proxy_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return 0;
    p->cl = cl;
    p->next = cl->proxies;
    if (cl->proxies)
        cl->proxies->prev = p;
    cl->proxies = p;
    p->req = req;
    p->refs = 1; /* the registry lookup's */
    p->start_ms = start_ms;
    p->id = json_incref(mg_rpc_id(msg));
    snprintf(p->owner, sizeof p->owner, "%s", replica);
    p->hook = h2o_mem_alloc_shared(&req->pool, sizeof(proxy_hook_t), proxy_disposed);
    p->hook->p = p;
    char rk[64];
    snprintf(rk, sizeof rk, "r:%s", replica);
    if (gw->bus->ops->get(gw->bus, rk, proxy_addr_cb, p) != 0) {
        p->hook->p = NULL;
        p->req = NULL;
        proxy_unref(p);
        return 0;
    }
    cl->forwarded++;
    return 1;
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
        if (!s->closing && !pinned(s) && now - s->seen_ms > 1000) {
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
    mg_session_t *s = copy_of(gw, k->scope, k->id);
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

static void cluster_sweep(mg_cluster_t *cl)
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
        if (s->closing)
            continue;
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
        mg_store_load_opts_t o = {get_follower(s) != NULL ? gw->cfg->limits.session_ttl_ms : 0, NULL, 0};
        char rk[160];
        rec_key(s, rk, sizeof rk);
        if (gw->store->ops->load(gw->store, rk, &o, check_cb, k) != 0)
            free(k);
    }
}

/* ---- heartbeat ---- */

static void registered_cb(int err, void *data)
{
    mg_cluster_t *cl = data;
    if (err == 0 && cl->draining != 2)
        cl->registered = 1;
}

static void beat_cb(uv_timer_t *t)
{
    mg_cluster_t *cl = t->data;
    mg_gateway_t *gw = cl->gw;
    uint64_t now = mg_gateway_now_ms();
    if (!gw->store->ops->ready(gw->store)) {
        cl->registered = 0; /* register again as soon as the store is back */
        return;
    }
    if (!cl->registered || now - cl->last_register >= REGISTER_MS) {
        char rk[64];
        snprintf(rk, sizeof rk, "r:%s", cl->replica);
        cl->last_register = now;
        gw->bus->ops->set(gw->bus, rk, cl->advertise, REGISTRY_TTL_MS, registered_cb, cl);
        check_owners(cl);
    }
    uint64_t ttl = gw->cfg->limits.session_ttl_ms;
    uint64_t every = ttl / 4 < 1000 ? 1000 : ttl / 4 > 15000 ? 15000 : ttl / 4;
    if (now - cl->last_sweep >= every) {
        cl->last_sweep = now;
        cluster_sweep(cl);
    }
}

void mg__cluster_keepalive(mg_gateway_t *gw)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        for (mg_follow_t *f = s->follows; f != NULL; f = f->next)
            follow_write(f, ": keep-alive\n\n", 14);
    }
}

/* ---- /metrics ---- */

static void collect_cb(mg_metrics_out_t *out, void *data)
{
    mg_cluster_t *cl = data;
    mg_gateway_t *gw = cl->gw;
    json_t *st = gw->store->ops->status(gw->store);
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"mcpgate_session_store_up", "gauge",
         "1 when the shared session store (Redis) is reachable and this replica registered"},
        {"mcpgate_session_store_reconnects_total", "counter",
         "Connections to the session store that were lost"},
        {"mcpgate_session_loads_total", "counter",
         "Session records loaded and verified (one per session request)"},
        {"mcpgate_session_load_failures_total", "counter",
         "Session loads that failed (store unavailable): answered 503"},
        {"mcpgate_forwarded_requests_total", "counter",
         "Requests forwarded to the replica running the session's children"},
        {"mcpgate_upstream_state_lost_total", "counter",
         "Explicit \"upstream state lost\" errors (a replica with children died)"},
        {"mcpgate_session_copies", "gauge", "Sessions materialized in this replica's memory"},
    };
    double v[] = {gw->store->ops->ready(gw->store) && cl->registered,
                  (double)json_integer_value(json_object_get(st, "reconnects")),
                  (double)cl->loads,
                  (double)cl->load_failures,
                  (double)cl->forwarded,
                  (double)cl->lost,
                  (double)gw->sessions.count};
    json_decref(st);
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        mg_metrics_family(out, fam[i].name, fam[i].type, fam[i].help);
        mg_metrics_sample(out, fam[i].name, NULL, v[i]);
    }
}

/* ---- lifetime ---- */

static int default_advertise(const mg_config_t *cfg, const char *listen, char *out, size_t n)
{
    char host[256];
    unsigned port = 0;
    if (mg_config_listen_parse(listen, host, sizeof host, &port) != 0)
        return -1;
    if (strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0 && host[0] != '\0') {
        snprintf(out, n, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
        return 0;
    }
    /* a wildcard listen: the first non-loopback IPv4 address of this host (the pod IP) */
    struct ifaddrs *ifs = NULL, *i;
    if (getifaddrs(&ifs) != 0)
        return -1;
    int found = -1;
    for (i = ifs; i != NULL && found != 0; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET)
            continue;
        char ip[64];
        uv_ip4_name((struct sockaddr_in *)i->ifa_addr, ip, sizeof ip);
        if (strncmp(ip, "127.", 4) == 0)
            continue;
        snprintf(out, n, "%s:%u", ip, port);
        found = 0;
    }
    freeifaddrs(ifs);
    if (found != 0)
        snprintf(out, n, "127.0.0.1:%u", port);
    return 0;
}

int mg__cluster_new(mg_gateway_t *gw, const char *store, const char *listen, char *why, size_t whylen)
{
    const mg_sessions_config_t *sc = &gw->cfg->sessions;
    mg_cluster_t *cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        return MG_ENOMEM;
    mg_redis_opts_t o = {store,          sc->password,   sc->sentinel_password,
                         sc->key_prefix, sc->timeout_ms, mg_gateway_now_ms};
    mg_store_t *st = NULL;
    mg_bus_t *bus = NULL;
    if (sc->secret != NULL && mg_http_client_new(gw->loop, &cl->http) != 0) {
        snprintf(why, whylen,
                 "forwarding between replicas (gateway.sessions.secret) needs libcurl, which could not be "
                 "loaded; install it (scripts/install-deps.sh)");
        free(cl);
        return MG_ECONFIG;
    }
    int r = mg_redis_new(gw->loop, &o, &st, &bus, why, whylen);
    if (r != 0) {
        mg_http_client_free(cl->http);
        free(cl);
        return r;
    }
    cl->gw = gw;
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[10];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        abort();
    for (int i = 0; i < 10; i++)
        cl->replica[i] = alphabet[rnd[i] % 36];
    cl->replica[10] = '\0';
    const char *adv = getenv("MCPGATE_ADVERTISE");
    if (adv == NULL || adv[0] == '\0')
        adv = sc->advertise;
    if (adv != NULL)
        snprintf(cl->advertise, sizeof cl->advertise, "%s", adv);
    else if (default_advertise(gw->cfg, listen, cl->advertise, sizeof cl->advertise) != 0)
        snprintf(cl->advertise, sizeof cl->advertise, "%s", listen);
    cl->secret = sc->secret;
    snprintf(cl->inbox, sizeof cl->inbox, "i:%s", cl->replica);
    gw->store = st;
    gw->bus = bus;
    gw->cluster = cl;
    if (bus->ops->subscribe(bus, cl->inbox, bus_cb, cl, &cl->inbox_sub) != 0 ||
        bus->ops->subscribe(bus, "all", bus_cb, cl, &cl->all_sub) != 0)
        return MG_ENOMEM;
    cl->beat = malloc(sizeof(*cl->beat));
    if (cl->beat == NULL)
        return MG_ENOMEM;
    mg_metrics_register(collect_cb, cl);
    uv_timer_init(gw->loop, cl->beat);
    cl->beat->data = cl;
    int isolated = 0;
    for (size_t i = 0; i < gw->nservers; i++)
        isolated |= gw->servers[i].cfg->isolation == MG_ISOLATION_SESSION;
    mg_log_json(MG_LOG_INFO, "sessions shared through redis",
                json_pack("{s:s,s:s,s:b}", "replica", cl->replica, "advertise", cl->advertise, "forwarding",
                          cl->secret != NULL));
    if (isolated && cl->secret == NULL)
        mg_log_json(MG_LOG_WARN,
                    "gateway.sessions.secret is not set: requests for isolation \"session\" servers whose "
                    "children run on another replica will fail with an explicit error",
                    NULL);
    return 0;
}

void mg__cluster_start(mg_gateway_t *gw)
{
    mg_cluster_t *cl = CL(gw);
    uv_timer_start(cl->beat, beat_cb, 0, BEAT_MS);
}

void mg__cluster_leave(mg_gateway_t *gw)
{
    mg_cluster_t *cl = CL(gw);
    if (cl->draining == 2)
        return;
    cl->draining = 2;
    cl->registered = 0;
    uv_timer_stop(cl->beat);
    char rk[64];
    snprintf(rk, sizeof rk, "r:%s", cl->replica);
    const char *keys[] = {rk};
    gw->bus->ops->del(gw->bus, keys, 1, NULL, NULL); /* others see at once that we are gone */
}

/* SIGTERM: the replica stays registered (its calls go on and their events still reach followers
 * elsewhere) until mg__cluster_leave(); forwarded requests are refused meanwhile (503). */
void mg__cluster_drain(mg_gateway_t *gw)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        /* Followers: a retry hint, then the end; the client reconnects, to another replica. */
        while (s->follows != NULL) {
            mg_follow_t *f = s->follows;
            follow_write(f, "retry: 1000\n\n", 13);
            follow_close(f, 1);
        }
        /* POST response streams: the calls go on here and keep appending to their logs, so the
         * client resumes them elsewhere with Last-Event-ID. */
        for (mg_stream_t *st = s->streams; st != NULL; st = st->next) {
            if (st->conn != NULL) {
                mg_sse_conn_t *c = st->conn;
                st->conn = NULL;
                mg_sse_conn_write(c, "retry: 500\n\n", 12);
                mg_sse_conn_end(c);
                mg_sse_conn_abandon(c);
            }
        }
    }
}

json_t *mg__cluster_status(mg_gateway_t *gw, int *ready)
{
    mg_cluster_t *cl = CL(gw);
    json_t *st = gw->store->ops->status(gw->store);
    /* ready once this replica is in the registry: before that, others would think it is gone */
    *ready = gw->store->ops->ready(gw->store) && (cl == NULL || cl->registered);
    json_object_set_new(st, "ready", json_boolean(*ready));
    if (cl != NULL) {
        json_object_set_new(st, "registered", json_boolean(cl->registered));
        json_object_set_new(st, "replica", json_string(cl->replica));
        json_object_set_new(st, "advertise", json_string(cl->advertise));
        json_object_set_new(st, "forwarded", json_integer((json_int_t)cl->forwarded));
        json_object_set_new(st, "lostUpstreamState", json_integer((json_int_t)cl->lost));
    }
    return st;
}

void mg__cluster_free(mg_gateway_t *gw)
{
    mg_cluster_t *cl = CL(gw);
    if (cl == NULL)
        return;
    while (cl->fwds != NULL) {
        mg_fwd_t *f = cl->fwds;
        if (f->c != NULL)
            mg__cluster_call_done(f->c);
        else
            fwd_detach(f);
    }
    for (proxy_t *p = cl->proxies, *next; p != NULL; p = next) {
        next = p->next;
        p->next = p->prev = NULL;
        p->cl = NULL;
        if (p->http != NULL) { /* ended silently; the client request is answered by h2o's teardown */
            mg_http_cancel(p->http);
            p->http = NULL;
        }
    }
    mg_http_client_free(cl->http);
    mg_metrics_unregister(collect_cb, cl);
    if (cl->inbox_sub)
        gw->bus->ops->unsubscribe(gw->bus, cl->inbox_sub);
    if (cl->all_sub)
        gw->bus->ops->unsubscribe(gw->bus, cl->all_sub);
    if (cl->beat != NULL)
        uv_close((uv_handle_t *)cl->beat, (uv_close_cb)free);
    gw->bus->ops->free(gw->bus);
    gw->bus = NULL;
    gw->cluster = NULL;
    free(cl);
}
