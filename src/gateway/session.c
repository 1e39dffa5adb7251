/*
 * session.c - live sessions of the 2025 session era: creation with a CSPRNG id, lookup, idle TTL,
 * streams with bounded replay rings, the standalone GET stream, and deferred freeing.
 *
 * Contract: a session is created by initialize, found by id on every later request, closed by
 * DELETE, idle expiry or shutdown. Closing fails its calls, ends its streams and stops its own
 * pools; memory is released from an idle callback once nothing references it (STYLE: never free
 * an object inside its own callback). Read next: gateway/era_legacy.c (who calls this).
 */
#include "gateway_int.h"
#include "toolsearch_hooks.h"
#include "../common/codec.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../jsonrpc/jsonrpc.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 32 CSPRNG bytes as 43 base64url characters. */
static void make_id(char out[MG_BASE64URL_LEN(32) + 1])
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1)
        abort(); /* no CSPRNG, no sessions: never fall back to a predictable id */
    mg_base64url_encode(raw, sizeof raw, out);
}

/* The first 12 hex digits of SHA-256(id). */
static void make_hash(const char *id, char out[13])
{
    unsigned char md[MG_SHA256_BYTES];
    mg_sha256(id, strlen(id), md);
    mg_hex_encode(md, 6, out);
}

/* id NULL: a new CSPRNG id; else a session created on another replica (cluster_records.c). */
static int session_alloc(mg_gateway_t *gw, const char *id, const char *version, json_t *caps,
                         json_t *client_info, mg_session_t **out)
{
    if (gw->sessions.count >= gw->cfg->limits.max_sessions)
        return MG_EBUSY;
    mg_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return MG_ENOMEM;
    s->gw = gw;
    if (id != NULL)
        snprintf(s->id, sizeof s->id, "%s", id);
    else
        make_id(s->id);
    make_hash(s->id, s->hash);
    snprintf(s->version, sizeof s->version, "%s", version);
    s->rank = mg_version_rank(version);
    /* Memory per idle session: sessions that declare no capability share one empty object (caps are
     * never modified after initialize), and clientInfo is kept only for the shared store's record
     * (cluster_records.c) and the call journal (journal_hooks.c). */
    static json_t *no_caps;
    if (no_caps == NULL)
        no_caps = json_object();
    s->caps = caps != NULL && json_object_size(caps) > 0 ? json_incref(caps) : json_incref(no_caps);
    if (gw->cluster != NULL || gw->journal != NULL)
        s->client_info = client_info ? json_incref(client_info) : json_object();
    s->last_ms = mg_gateway_now_ms();
    s->next_stream = 1;
    /* s->subs is created by the first resources/subscribe (dispatch.c): most sessions never
     * subscribe, and an empty jansson object costs ~200 bytes per idle session. */
    s->pools = calloc(gw->server_cap ? gw->server_cap : 1, sizeof(*s->pools));
    if (s->pools == NULL || mg_map_set(&gw->sessions, s->id, s) != 0) {
        json_decref(s->caps);
        json_decref(s->client_info);
        json_decref(s->subs);
        free(s->pools);
        free(s);
        return MG_ENOMEM;
    }
    *out = s;
    return 0;
}

int mg__session_create(mg_gateway_t *gw, const char *version, json_t *caps, json_t *client_info,
                       mg_session_t **out)
{
    /* One process (no shared store): the session table is the only reader of sessions, so no record
     * is written (it was a ~1 KiB copy per session nobody read; /readyz counts the table).
     * Cluster: the record is written by mg__cluster_session_put(). */
    return session_alloc(gw, NULL, version, caps, client_info, out);
}

int mg__session_adopt(mg_gateway_t *gw, const char *id, const char *version, json_t *caps,
                      json_t *client_info, mg_session_t **out)
{
    return session_alloc(gw, id, version, caps, client_info, out);
}

mg_session_t *mg__session_find(mg_gateway_t *gw, const char *id)
{
    mg_session_t *s = mg_map_get(&gw->sessions, id);
    if (s == NULL || s->closing)
        return NULL;
    s->last_ms = mg_gateway_now_ms();
    return s;
}

static void stream_free(mg_stream_t *st)
{
    for (unsigned i = 0; i < st->count; i++)
        free(st->ring[(st->head + i) % st->cap].bytes);
    free(st->ring);
    if (st->conn != NULL)
        mg_sse_conn_abandon(st->conn);
    free(st);
}

static void session_free(mg_session_t *s)
{
    while (s->streams != NULL) {
        mg_stream_t *n = s->streams->next;
        stream_free(s->streams);
        s->streams = n;
    }
    while (s->outreqs != NULL) {
        mg_outreq_t *n = s->outreqs->next;
        json_decref(s->outreqs->up_id);
        free(s->outreqs);
        s->outreqs = n;
    }
    json_decref(s->caps);
    json_decref(s->client_info);
    json_decref(s->subs);
    mg_principal_unref(s->principal);
    mg__toolsearch_session_close(s);
    mg__sse_session_free(s);
    free(s->journal_members);
    free(s->pools);
    mg_span_attrs_free(s->span_attrs);
    free(s);
}

void mg__session_ref(mg_session_t *s)
{
    s->refs++;
}

static void free_idle_cb(uv_idle_t *h)
{
    mg_session_t *s = h->data;
    uv_idle_stop(h);
    uv_close((uv_handle_t *)h, (uv_close_cb)free);
    session_free(s);
}

static void maybe_free(mg_session_t *s)
{
    if (!s->closing || s->refs > 0)
        return;
    for (size_t i = 0; i < s->gw->nservers; i++)
        if (s->pools[i] != NULL)
            return; /* pool stop callbacks still pending; they clear the slot and call us again */
    uv_idle_t *h = malloc(sizeof(*h));
    if (h == NULL) {
        session_free(s);
        return;
    }
    uv_idle_init(s->gw->loop, h);
    h->data = s;
    uv_idle_start(h, free_idle_cb);
}

void mg__session_unref(mg_session_t *s)
{
    s->refs--;
    maybe_free(s);
}

void mg__session_pool_gone(mg_session_t *s, size_t i)
{
    s->pools[i] = NULL;
    maybe_free(s);
}

void mg__session_close(mg_session_t *s, const char *why)
{
    if (s->closing)
        return;
    mg_gateway_t *gw = s->gw;
    s->refs++; /* hold while tearing down */
    s->closing = 1;
    mg_map_del(&gw->sessions, s->id);
    if (gw->cluster != NULL) /* a local copy closes; the record stays (DELETE removes it) */
        mg__cluster_session_closing(s);
    mg_log_json(MG_LOG_INFO, "session closed", json_pack("{s:s,s:s}", "session", s->hash, "reason", why));
    mg__dispatch_session_gone(s);
    for (mg_stream_t *st = s->streams; st != NULL; st = st->next) {
        if (st->conn != NULL) {
            mg_sse_conn_t *c = st->conn;
            st->conn = NULL;
            mg_sse_conn_abandon(c);
        }
    }
    for (size_t i = 0; i < gw->nservers; i++)
        if (s->pools[i] != NULL)
            mg__pool_stop(s->pools[i]);
    s->refs--;
    maybe_free(s);
}

/* ---- streams ---- */

mg_stream_t *mg__stream_new(mg_session_t *s, int is_get)
{
    mg_stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->cap = s->gw->cfg->limits.sse_replay_events ? s->gw->cfg->limits.sse_replay_events : 1;
    st->ring = calloc(st->cap, sizeof(*st->ring));
    if (st->ring == NULL) {
        free(st);
        return NULL;
    }
    st->s = s;
    st->is_get = is_get;
    st->id = s->next_stream++;
    st->next_seq = 1;
    st->next = s->streams;
    s->streams = st;
    s->nstreams++;
    if (is_get)
        s->get_stream = st;
    /* Bound retained finished streams: drop the oldest finished ones beyond 32. */
    unsigned kept = 0;
    for (mg_stream_t **pp = &s->streams; *pp != NULL;) {
        mg_stream_t *cur = *pp;
        if (cur->done && cur->conn == NULL && ++kept > 32) {
            *pp = cur->next;
            s->nstreams--;
            stream_free(cur);
            continue;
        }
        pp = &cur->next;
    }
    return st;
}

mg_stream_t *mg__stream_find(mg_session_t *s, uint32_t id)
{
    for (mg_stream_t *st = s->streams; st != NULL; st = st->next)
        if (st->id == id)
            return st;
    return NULL;
}

static void ring_add(mg_stream_t *st, uint64_t seq, char *bytes, size_t len)
{
    size_t max_bytes = st->s->gw->cfg->limits.sse_replay_bytes;
    while (st->count > 0 && (st->count == st->cap || st->bytes + len > max_bytes)) {
        mg_event_t *old = &st->ring[st->head];
        st->bytes -= old->len;
        free(old->bytes);
        st->head = (st->head + 1) % st->cap;
        st->count--;
    }
    if (len > max_bytes) { /* too big to keep: deliver live only */
        free(bytes);
        return;
    }
    mg_event_t *e = &st->ring[(st->head + st->count) % st->cap];
    e->seq = seq;
    e->bytes = bytes;
    e->len = len;
    st->bytes += len;
    st->count++;
}

static void conn_gone_cb(mg_sse_conn_t *conn, void *data)
{
    mg_stream_t *st = data;
    if (st->conn == conn)
        st->conn = NULL;
}

static void write_conn(mg_stream_t *st, const char *bytes, size_t len)
{
    if (st->conn == NULL)
        return;
    int r = mg_sse_conn_write(st->conn, bytes, len);
    if (r == MG_ETOOBIG) {
        mg_log_json(MG_LOG_WARN, "SSE client too slow; connection dropped (it can resume with Last-Event-ID)",
                    json_pack("{s:s,s:I}", "session", st->s->hash, "stream", (json_int_t)st->id));
        mg_sse_conn_t *c = st->conn;
        st->conn = NULL;
        mg_sse_conn_abandon(c);
    }
}

static int push_raw(mg_stream_t *st, const char *data, size_t dlen)
{
    char id[48];
    uint64_t seq = st->next_seq++;
    if (mg__session_shared(st->s))
        mg__cluster_event_id(st->s->gw, st, seq, id, sizeof id); /* unique across replicas */
    else
        snprintf(id, sizeof id, "%u-%llu", st->id, (unsigned long long)seq);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (mg_sse_format(&buf, &len, &cap, id, data, dlen, 0) != 0) {
        free(buf);
        return MG_ENOMEM;
    }
    write_conn(st, buf, len);
    ring_add(st, seq, buf, len);
    if (mg__session_shared(st->s)) /* resumable on any replica */
        mg__cluster_stream_event(st, seq, data, dlen, 0);
    return 0;
}

int mg__stream_push(mg_stream_t *st, const json_t *msg)
{
    size_t dlen;
    char *data = mg_rpc_dump(msg, &dlen);
    if (data == NULL)
        return MG_ENOMEM;
    int r = push_raw(st, data, dlen);
    free(data);
    return r;
}

void mg__stream_prime(mg_stream_t *st)
{
    if (st->s->rank >= MG_VERSION_2025_11_25)
        push_raw(st, "", 0);
}

void mg__stream_attach(mg_stream_t *st, mg_sse_conn_t *conn)
{
    if (st->conn != NULL && st->conn != conn) {
        mg_sse_conn_t *old = st->conn;
        st->conn = NULL;
        mg_sse_conn_abandon(old);
    }
    st->conn = conn;
}

void mg__stream_conn_gone_cb(mg_sse_conn_t *conn, void *data)
{
    conn_gone_cb(conn, data);
}

void mg__stream_replay(mg_stream_t *st, uint64_t after_seq)
{
    for (unsigned i = 0; i < st->count; i++) {
        mg_event_t *e = &st->ring[(st->head + i) % st->cap];
        if (e->seq > after_seq)
            write_conn(st, e->bytes, e->len);
    }
    if (st->done && st->conn != NULL) {
        mg_sse_conn_t *c = st->conn;
        st->conn = NULL;
        mg_sse_conn_abandon(c);
    }
}

int mg__stream_resumable(const mg_stream_t *st, uint64_t after_seq)
{
    if (!st->done)
        return 1; /* still open (or the GET stream): the connection is attached and fed */
    for (unsigned i = 0; i < st->count; i++)
        if (st->ring[(st->head + i) % st->cap].seq > after_seq)
            return 1;
    return 0;
}

void mg__stream_response_done(mg_stream_t *st)
{
    if (st->pending > 0)
        st->pending--;
    if (st->pending == 0 && !st->is_get) {
        st->done = 1;
        st->done_ms = mg_gateway_now_ms();
        if (mg__session_shared(st->s)) /* followers on other replicas end here too */
            mg__cluster_stream_event(st, st->next_seq++, "", 0, 1);
        if (st->conn != NULL) {
            mg_sse_conn_t *c = st->conn;
            st->conn = NULL;
            mg_sse_conn_abandon(c);
        }
    }
}

void mg__session_notify(mg_session_t *s, const json_t *msg)
{
    if (s->closing)
        return;
    if (mg__session_shared(s)) { /* the GET stream lives in the store: any replica may hold it */
        mg__cluster_notify(s, msg);
        return;
    }
    if (s->get_stream == NULL && mg__stream_new(s, 1) == NULL)
        return;
    mg__stream_push(s->get_stream, msg);
}

/* ---- timers ---- */

void mg__sessions_sweep(mg_gateway_t *gw)
{
    if (gw->cluster != NULL)
        return; /* cluster_records.c sweeps copies against the store */
    uint64_t now = mg_gateway_now_ms();
    uint64_t ttl = gw->cfg->limits.session_ttl_ms;
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        int attached = s->get_stream != NULL && s->get_stream->conn != NULL;
        if (s->ncalls == 0 && !attached && now - s->last_ms > ttl)
            mg__session_close(s, "idle timeout");
    }
}

void mg__sessions_keepalive(mg_gateway_t *gw)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        for (mg_stream_t *st = s->streams; st != NULL; st = st->next)
            write_conn(st, ": keep-alive\n\n", 14);
    }
}

/* ---- session sources (gateway_int.h): the local table, or the shared store (cluster_records.c) ---- */

static void local_lookup(mg_gateway_t *gw, h2o_req_t *req, const char *id, int claim, mg_session_found_cb cb,
                         void *data)
{
    (void)claim; /* one process: the session's children are here */
    mg_session_t *s = mg__session_find(gw, id);
    cb(data, req, s, s != NULL ? 200 : 404);
}

static void local_publish(mg_session_t *s, h2o_req_t *req, const json_t *resp, const char *profile,
                          uint64_t start_ms)
{
    (void)profile; /* kept in the session's toolsearch state */
    const char *hdrs[] = {"mcp-session-id", s->id};
    mg__http_send_json(req, 200, resp, hdrs, 1);
    mg__http_log(s->gw, "POST", "initialize", NULL, s->hash, 200, start_ms);
}

static void local_remove(mg_session_t *s, h2o_req_t *req, uint64_t start_ms)
{
    char hash[16];
    memcpy(hash, s->hash, sizeof hash);
    mg_gateway_t *gw = s->gw;
    mg__session_close(s, "deleted by client");
    mg__http_send_empty(req, 200, NULL);
    mg__http_log(gw, "DELETE", NULL, NULL, hash, 200, start_ms);
}

const mg_session_source_t mg__sessions_local = {"local", local_lookup, local_publish, local_remove,
                                                mg__legacy_get};
const mg_session_source_t mg__sessions_shared = {"shared", mg__cluster_session_lookup,
                                                 mg__cluster_session_put, mg__cluster_session_delete,
                                                 mg__cluster_get};
