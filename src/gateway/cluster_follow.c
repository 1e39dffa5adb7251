/*
 * cluster_follow.c - SSE event logs in the shared store. The write side: notifications appended to
 * the session's GET log (stream "0", seqs allocated in Redis) and every POST response stream's
 * events appended to its own log ("<replica>.<n>"). The read side: followers, SSE connections fed
 * from a log (subscribe, read the log from where the client is, then live; nothing lost, nothing
 * doubled), for the GET stream and for Last-Event-ID resumption on any replica. A resumed stream
 * whose replica left the registry gets its unanswered requests failed, then ends.
 * Read next: session/bus.h (the log contract), cluster_int.h, session.c (the local rings).
 */
#include "../common/err.h"
#include "../common/log.h"
#include "../jsonrpc/jsonrpc.h"
#include "cluster_int.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AFTER_END_MS 60000 /* a finished POST stream stays resumable this long */

void mg__cluster_log_key(const mg_session_t *s, const char *stream, char *out, size_t n)
{
    snprintf(out, n, "x:%s:%s:%s", s->scope, s->id, stream);
}

static void chan_key(const mg_session_t *s, const char *stream, char *out, size_t n)
{
    snprintf(out, n, "e:%s:%s:%s", s->scope, s->id, stream);
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
    mg__cluster_log_key(s, "0", lk, sizeof lk);
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
    mg__cluster_log_key(s, name, lk, sizeof lk);
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

static void follow_unref(mg_follow_t *f)
{
    if (--f->refs > 0)
        return;
    json_decref(f->held);
    json_decref(f->ids);
    free(f);
}

void mg__cluster_follow_write(mg_follow_t *f, const char *bytes, size_t len)
{
    if (f->conn == NULL || f->closed)
        return;
    if (mg_sse_conn_write(f->conn, bytes, len) == MG_ETOOBIG) {
        mg_log_json(MG_LOG_WARN, "SSE client too slow; connection dropped (it can resume with Last-Event-ID)",
                    json_pack("{s:s,s:s}", "session", f->s->hash, "stream", f->stream));
        mg__cluster_follow_close(f, 0);
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
        mg__cluster_follow_close(f, 1);
        return;
    }
    char id[80];
    snprintf(id, sizeof id, "%s-%llu", f->stream, (unsigned long long)seq);
    char *buf = NULL;
    size_t blen = 0, cap = 0;
    if (mg_sse_format(&buf, &blen, &cap, id, data, len, 0) == 0)
        mg__cluster_follow_write(f, buf, blen);
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
        mg__cluster_follow_close(f, 1);
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
            /* "Now" is when the subscription took effect, not when the log was read: events that
             * came live in between (held) are after the GET arrived and go to the client. */
            uint64_t lo = seq;
            size_t i;
            json_t *e;
            json_array_foreach(f->held, i, e)
            {
                uint64_t h = (uint64_t)json_integer_value(json_array_get(e, 0));
                if (h > 0 && h - 1 < lo)
                    lo = h - 1;
            }
            seq = lo;
            f->last = seq;
            if (f->s->rank >= MG_VERSION_2025_11_25) {
                char id[80];
                snprintf(id, sizeof id, "%s-%llu", f->stream, (unsigned long long)seq);
                char *buf = NULL;
                size_t blen = 0, cap = 0;
                if (mg_sse_format(&buf, &blen, &cap, id, "", 0, 0) == 0)
                    mg__cluster_follow_write(f, buf, blen);
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
        mg__cluster_follow_close(
            f, 0); /* the store is down: the client reconnects (and gets 503 until it is back) */
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
    mg__cluster_follow_close(f, 0);
}

void mg__cluster_follow_close(mg_follow_t *f, int end)
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
    mg__cluster_log_key(s, stream, f->key, sizeof f->key);
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
        mg__cluster_follow_close(f, 0);
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

mg_follow_t *mg__cluster_get_follower(mg_session_t *s)
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
        mg_follow_t *old = mg__cluster_get_follower(s);
        if (old != NULL)
            mg__cluster_follow_close(old, 0);
        if (follow_start(cl, s, req, "0", 0, 1, NULL) == NULL)
            mg__cluster_answer(gw, req, "GET", MG_ENOMEM, "out of memory", 0, s->hash, start_ms);
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
        mg__cluster_answer(
            gw, req, "GET", MG_EREQUEST,
            "Bad Request: Last-Event-ID does not name a stream of this session (it may have expired)", 0,
            s->hash, start_ms);
        return;
    }
    if (dot == NULL) { /* the session's GET stream, resumed */
        mg_follow_t *old = mg__cluster_get_follower(s);
        if (old != NULL)
            mg__cluster_follow_close(old, 0); /* the client moved on: only the newest GET is fed */
        if (follow_start(cl, s, req, "0", seq, 0, NULL) == NULL)
            mg__cluster_answer(gw, req, "GET", MG_ENOMEM, "out of memory", 0, s->hash, start_ms);
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
        mg__cluster_answer(gw, req, "GET", MG_ENOMEM, "out of memory", 0, s->hash, start_ms);
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
    mg__cluster_follow_close(f, 1);
}

static void liveness_cb(int err, const char *value, void *data)
{
    mg_follow_t *f = data;
    f->checking = 0;
    if (!f->closed && err == 0 && value == NULL)
        owner_gone(f);
    follow_unref(f);
}

void mg__cluster_check_owners(mg_cluster_t *cl)
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
        mg__cluster_follow_close(s->follows, 1);
}

void mg__cluster_keepalive(mg_gateway_t *gw)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        for (mg_follow_t *f = s->follows; f != NULL; f = f->next)
            mg__cluster_follow_write(f, ": keep-alive\n\n", 14);
    }
}
