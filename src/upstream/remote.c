/*
 * remote.c - a remote MCP server over Streamable HTTP: the second implementation of the upstream
 * interface (upstream.h), so the gateway holds it like a stdio pool.
 *
 * One remote upstream is one upstream session (Mcp-Session-Id) on its own HTTP client (a
 * keep-alive connection pool, libcurl multi on the loop, http/client.h). Start: the URL's host is
 * resolved (uv_getaddrinfo), the SSRF guard picks an allowed address and every request is pinned to
 * it (CURLOPT_RESOLVE); then the era is found (server/discover: a 2026-07-28-only server is served
 * statelessly; initialize: a session, notifications/initialized and the GET stream for messages that
 * belong to no request; or the 2024-11-05 HTTP+SSE transport), with the gateway's own OAuth token
 * first when "auth" asks for one (client credentials; token exchange per caller, see below). Each request is
 * one POST whose answer is JSON, or an SSE stream of related messages (given to the request's related_cb)
 * ending with the response. Server->client requests are answered by POSTing the response (mg_upstream_send).
 * A 404 on the session fails the call ("lost its session") and starts a new session; transport failures
 * (refused, 5xx, timeouts) count towards the circuit breaker: after MG__BREAKER_FAILS in a row the upstream
 * is down (BACKOFF, requests fail at once) until a new initialize succeeds, tried with backoff. Requests that
 * are safe to repeat (lists, reads, ping) are retried on a transport failure. Redirects are never followed.
 * Stop: queued and in-flight requests fail, DELETE ends the session, then the client is freed and stopped_cb
 * runs from the last close callback of its handles. Sections ("---- name ----"): completion, headers and
 * posts, session lifecycle and messages, requests, the GET stream, initialize, era detection,
 * operations. Over a 2026-07-28 upstream, input_required results are relayed as server->client requests
 * by remote_mrtr.c; ping, logging/setLevel and resources/(un)subscribe are answered here (the revision
 * has none of them) and the subscriptions/listen stream takes the GET stream's place.
 * Tokens (client credentials, token exchange) are remote_auth.c's, fetched under the SSRF guard by
 * remote_egress.c. Wire table and records:
 * remote_int.h. Read next: remote_conn.c (guard, SSE parser), remote_auth.c, http/client.h,
 * docs/adr/0009-remote-upstreams.md.
 */
#include "../common/codec.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../config/remote_config.h"
#include "../http/client.h"
#include "remote_int.h"
#include "upstream.h"
#include "upstream_int.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PROTOCOL_VERSION  "2025-11-25"
#define MG__BREAKER_FAILS 5
#define BACKOFF_MIN_MS    200
#define BACKOFF_MAX_MS    30000
#define GET_RETRY_MS      1000
#define MAX_RETRIES       2
#define QUEUE_MAX         1024
#define DELETE_TIMEOUT_MS 2000

extern const mg_upstream_ops_t mg__remote_ops;

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *s = NULL;
    int n = vasprintf(&s, f, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

static void set_str(char **dst, char *s) /* takes s */
{
    free(*dst);
    *dst = s;
}

static void list_add(rreq_t **head, rreq_t *q)
{
    q->prev = NULL;
    q->next = *head;
    if (*head)
        (*head)->prev = q;
    *head = q;
}

static void list_del(rreq_t **head, rreq_t *q)
{
    if (q->prev)
        q->prev->next = q->next;
    else if (*head == q)
        *head = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->next = q->prev = NULL;
}

static void state_update(remote_t *r)
{
    mg_upstream_state_t st = r->phase == PH_STOPPED                            ? MG_UPSTREAM_STOPPED
                             : r->phase == PH_READY                            ? MG_UPSTREAM_READY
                             : r->phase == PH_BACKOFF || r->phase == PH_FAILED ? MG_UPSTREAM_BACKOFF
                                                                               : MG_UPSTREAM_STARTING;
    if (st == r->state)
        return;
    r->state = st;
    if (r->hooks.on_state_cb != NULL)
        r->hooks.on_state_cb((mg_upstream_t *)r, st, r->hooks_data);
}

static void handle_closed_cb(uv_handle_t *h);

/* ---- completion ---- */

static void req_free_cb(uv_handle_t *h)
{
    rreq_t *q = h->data;
    remote_t *r = q->r;
    json_decref(q->msg);
    free(q->params_text);
    json_decref(q->d_response);
    free(q->d_message);
    free(q->subject);
    json_decref(q->caps);
    free(q->log_level);
    mg__remote_mrtr_free(q->mrtr);
    free(q);
    handle_closed_cb((uv_handle_t *)&r->timer); /* counts one of r's handles */
}

/* ---- the exchange's HTTP call: which client ----
 *
 * POSTs (requests, initialize, server/discover, notifications and responses) to a plain http://
 * URL, pinned or by IP literal, go through the lean HTTP/1.1 client (http/h1client.h, ADR 0017):
 * the hot path, without libcurl's per-transfer work. Everything else stays on libcurl (client.h):
 * https:// (TLS, ALPN and HTTP/2), the GET stream, DELETE, and the 2024-11-05 HTTP+SSE transport.
 * Both take the same request record and callbacks and keep the same contract. */

static int lean(const remote_t *r, const mg_http_req_t *hr)
{
    return r->h1 != NULL && !r->sse_mode && hr->body != NULL && mg_h1_accepts(r->h1, hr);
}

/* As mg_http_request(); the call goes to x->call or x->h1 (x may be NULL: not kept). */
static int x_request(remote_t *r, xchg_t *x, const mg_http_req_t *hr, mg_http_head_cb head,
                     mg_http_body_cb body, mg_http_done_cb done, void *data)
{
    if (lean(r, hr))
        return mg_h1_request(r->h1, hr, head, body, done, data, x ? &x->h1 : NULL);
    return mg_http_request(r->http, hr, head, body, done, data, x ? &x->call : NULL);
}

/* Cancels the exchange's HTTP call, if any. */
static void x_cancel(xchg_t *x)
{
    mg_http_cancel(x->call);
    x->call = NULL;
    mg_h1_cancel(x->h1);
    x->h1 = NULL;
}

/* The call ended (its done_cb runs): nothing left to cancel. */
static void x_ended(xchg_t *x)
{
    x->call = NULL;
    x->h1 = NULL;
}

/* Ends the exchange (its HTTP call is cancelled) and frees it, or, inside one of its callbacks,
 * marks it dead: the callback frees it on the way out (xchg_leave). */
static void xchg_free(xchg_t *x)
{
    if (x == NULL)
        return;
    x_cancel(x);
    x->req = NULL;
    if (x->busy > 0) {
        x->dead = 1;
        return;
    }
    mg__sse_dispose(&x->sse_p);
    free(x->buf);
    free(x->body);
    free(x);
}

static void xchg_enter(xchg_t *x)
{
    x->busy++;
}

/* Returns 1 when x was freed (the caller must not touch it). */
static int xchg_leave(xchg_t *x)
{
    if (--x->busy > 0 || !x->dead)
        return 0;
    xchg_free(x);
    return 1;
}

/* Takes q out of its list and ends its exchange. */
static void req_detach(rreq_t *q)
{
    remote_t *r = q->r;
    if (q->sent) {
        list_del(&r->inflight, q);
        r->ninflight--;
    } else {
        list_del(&r->queue, q);
        r->nqueued--;
    }
    if (q->x != NULL) {
        q->x->req = NULL;
        xchg_t *x = q->x;
        q->x = NULL;
        xchg_free(x);
    }
}

/* Calls done_cb now (response borrowed) and frees q from its timer's close callback. */
void mg__remote_req_finish(rreq_t *q, int err, json_t *response, const char *message)
{
    if (q->done)
        return;
    q->done = 1;
    req_detach(q);
    uv_timer_stop(&q->timer);
    q->done_cb((mg_upstream_req_t *)q, err, err == 0 ? response : NULL,
               err == 0 ? NULL : (message ? message : mg_strerror(err)), q->data);
    uv_close((uv_handle_t *)&q->timer, req_free_cb);
}

static void deferred_cb(uv_timer_t *t);

/* Completes q from a 0-ms timer: for completions inside an API call (never inside request()). */
static void req_finish_later(rreq_t *q, int err, json_t *response, const char *message)
{
    if (q->done || q->d_err != 0 || q->d_response != NULL)
        return;
    q->d_err = err;
    q->d_response = response ? json_incref(response) : NULL;
    q->d_message = message ? strdup(message) : NULL;
    if (q->d_err == 0 && q->d_response == NULL)
        q->d_err = MG_EINTERNAL;
    uv_timer_start(&q->timer, deferred_cb, 0, 0);
}

static void send_req(rreq_t *q);
static void req_timeout_cb(uv_timer_t *t);

static void deferred_cb(uv_timer_t *t)
{
    rreq_t *q = t->data;
    if (q->retry_pending) {
        q->retry_pending = 0;
        send_req(q);
        return;
    }
    json_t *resp = q->d_response;
    q->d_response = NULL;
    char *m = q->d_message;
    q->d_message = NULL;
    mg__remote_req_finish(q, q->d_err, resp, m);
    json_decref(resp);
    free(m);
}

/* ---- headers and posts ---- */

/* Builds the header vector of one request. Returns the count (pairs) written into h (cap pairs). */
static size_t headers_for(remote_t *r, const char **h, size_t cap, int get, int with_session)
{
    size_t n = 0;
    h[2 * n] = "accept";
    h[2 * n + 1] = get ? "text/event-stream" : "application/json, text/event-stream";
    n++;
    if (!get) {
        h[2 * n] = "content-type";
        h[2 * n + 1] = "application/json";
        n++;
    }
    with_session &= !r->sse_mode; /* 2024-11-05 has no session or version headers */
    if (with_session && r->session_id != NULL) {
        h[2 * n] = "mcp-session-id";
        h[2 * n + 1] = r->session_id;
        n++;
    }
    if (with_session && r->protocol != NULL) {
        h[2 * n] = "mcp-protocol-version";
        h[2 * n + 1] = r->protocol;
        n++;
    }
    if (get && r->last_event_id != NULL) {
        h[2 * n] = "last-event-id";
        h[2 * n + 1] = r->last_event_id;
        n++;
    }
    if (r->auth_hdr != NULL && n < cap) {
        h[2 * n] = "authorization";
        h[2 * n + 1] = r->auth_hdr;
        n++;
    }
    for (size_t i = 0; i < r->nhdrs && n < cap; i++, n++) {
        h[2 * n] = r->hdrs[2 * i];
        h[2 * n + 1] = r->hdrs[2 * i + 1];
    }
    return n;
}

#define MAX_HDRS 80

static void fill_req(remote_t *r, mg_http_req_t *hr, const char **h, int get, long timeout_ms)
{
    memset(hr, 0, sizeof *hr);
    hr->url = !get && r->endpoint != NULL ? r->endpoint : r->rc->url;
    hr->headers = h;
    hr->nheaders = headers_for(r, h, MAX_HDRS, get, 1);
    hr->timeout_ms = timeout_ms;
    hr->connect_timeout_ms = (long)r->rc->connect_timeout_ms;
    hr->ca_file = r->rc->ca;
    hr->resolve = r->pin[0] ? r->pin : NULL;
}

/* Appends one header pair to a vector fill_req() made. */
static void add_hdr(mg_http_req_t *hr, const char **h, const char *name, const char *value)
{
    if (hr->nheaders < MAX_HDRS) {
        h[2 * hr->nheaders] = name;
        h[2 * hr->nheaders + 1] = value;
        hr->nheaders++;
    }
}

/* 1 when v may go out as a trace context header: 1..max printable ASCII bytes, no leading space. */
static int trace_header_ok(const char *v, size_t max)
{
    if (v == NULL || v[0] == '\0' || v[0] == ' ')
        return 0;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++, n++)
        if (*p < 0x20 || *p >= 0x7f || n >= max)
            return 0;
    return 1;
}

#define MODERN_VERSION "2026-07-28"

void mg__remote_modern_meta(json_t *m, const json_t *caps, const char *log_level, const char *client_name,
                            const char *client_version)
{
    json_t *params = json_object_get(m, "params"); /* the caller's: ours is a copy (upstream.h) */
    params = json_is_object(params) ? mg_json_copy(params) : json_object();
    if (params == NULL || json_object_set_new(m, "params", params) != 0)
        return; /* ENOMEM: the request goes without its _meta */
    json_t *meta = json_object_get(params, "_meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(params, "_meta", meta);
    } else { /* the caller's _meta stays untouched: ours is a copy */
        meta = mg_json_copy(meta);
        json_object_set_new(params, "_meta", meta);
    }
    json_object_set_new(meta, "io.modelcontextprotocol/protocolVersion", json_string(MODERN_VERSION));
    json_object_set_new(meta, "io.modelcontextprotocol/clientCapabilities",
                        caps != NULL ? mg_json_deep_copy(caps) : json_object());
    json_object_set_new(meta, "io.modelcontextprotocol/clientInfo",
                        json_pack("{s:s,s:s}", "name", client_name, "version", client_version));
    if (log_level != NULL && json_object_get(meta, "io.modelcontextprotocol/logLevel") == NULL)
        json_object_set_new(meta, "io.modelcontextprotocol/logLevel", json_string(log_level));
}

/* 2026-07-28: the _meta every request carries (protocol version, client capabilities and info). */
static void modern_meta(remote_t *r, json_t *m, json_t *caps, const char *log_level)
{
    mg__remote_modern_meta(m, caps, log_level, r->client_name, r->client_version);
}

/* A session-era upstream: the 2026-07-28 request _meta a translated client request may carry
 * (io.modelcontextprotocol/protocolVersion, clientCapabilities, clientInfo...) is dropped, or a server
 * that speaks both eras would take the call for a stateless one and refuse it for its session
 * headers. The caller's objects are not modified: params and _meta are copied when touched. */
static void strip_modern_meta(json_t *m)
{
    json_t *params = json_object_get(m, "params");
    json_t *meta = json_object_get(params, "_meta");
    if (!json_is_object(meta))
        return;
    int found = 0;
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) found |= strncmp(k, "io.modelcontextprotocol/", 24) == 0;
    if (!found)
        return;
    params = mg_json_copy(params);
    meta = mg_json_copy(meta);
    if (params == NULL || meta == NULL) {
        json_decref(params);
        json_decref(meta);
        return;
    }
    void *tmp;
    json_object_foreach_safe(meta, tmp, k, v)
    {
        if (strncmp(k, "io.modelcontextprotocol/", 24) == 0)
            json_object_del(meta, k);
    }
    if (json_object_size(meta) == 0)
        json_object_del(params, "_meta");
    else
        json_object_set(params, "_meta", meta);
    json_decref(meta);
    json_object_set_new(m, "params", params);
}

/* 1 when params carry a 2026-07-28 _meta key that strip_modern_meta() would drop. */
static int has_modern_meta(const json_t *params)
{
    json_t *meta = json_object_get(params, "_meta");
    if (!json_is_object(meta))
        return 0;
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v)
    {
        if (strncmp(k, "io.modelcontextprotocol/", 24) == 0)
            return 1;
    }
    return 0;
}

char *mg__remote_body(const json_t *msg, int64_t id, const json_t *params_of, const char *params_text,
                      size_t params_len, size_t *len)
{
    const json_t *params = json_object_get(msg, "params");
    if (!has_modern_meta(params)) { /* written as the stdio line is, without copying the message */
        mg_upstream_caller_t as = {
            .params_of = params_of, .params_text = params_text, .params_len = params_len};
        int lent = params_text != NULL && params_of != NULL && params == params_of;
        char *s = mg__request_line(msg, id, lent ? &as : NULL, len);
        if (s != NULL)
            s[--*len] = '\0'; /* its newline */
        return s;
    }
    json_t *m = mg_json_copy((json_t *)msg);
    if (m == NULL)
        return NULL;
    json_object_set_new(m, "jsonrpc", json_string("2.0"));
    json_object_set_new(m, "id", json_integer(id));
    strip_modern_meta(m);
    char *body = mg_json_dump(m, len); /* json_dumps(JSON_COMPACT), faster (common/json.h) */
    json_decref(m);
    return body;
}

/* An Mcp-Name value: as is when it is printable ASCII, else "=?base64?...?=". NEW malloc'd. */
static char *header_value(const char *v)
{
    int plain = 1;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        plain &= *p >= 0x20 && *p < 0x7f;
    if (plain && v[0] != ' ' && (v[0] == '\0' || v[strlen(v) - 1] != ' '))
        return strdup(v);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(v);
    char *out = malloc(4 * ((n + 2) / 3) + 16);
    if (out == NULL)
        return NULL;
    size_t k = 0;
    memcpy(out, "=?base64?", 9);
    k = 9;
    const unsigned char *u = (const unsigned char *)v;
    for (size_t i = 0; i < n; i += 3) {
        unsigned x =
            (unsigned)u[i] << 16 | (i + 1 < n ? (unsigned)u[i + 1] << 8 : 0) | (i + 2 < n ? u[i + 2] : 0);
        out[k++] = b64[(x >> 18) & 63];
        out[k++] = b64[(x >> 12) & 63];
        out[k++] = i + 1 < n ? b64[(x >> 6) & 63] : '=';
        out[k++] = i + 2 < n ? b64[x & 63] : '=';
    }
    memcpy(out + k, "?=", 3);
    return out;
}

static void post_done_cb(void *data, int err, int status, const char *why)
{
    remote_t *r = data;
    if (err != 0 || status >= 300)
        mg_log_limited(&r->lim, uv_now(r->loop), MG_LOG_WARN, "remote upstream did not take a message",
                       json_pack("{s:s,s:i,s:s}", "upstream", r->server->name, "status", status, "error",
                                 err ? (why ? why : mg_strerror(err)) : "HTTP status"));
}

/* POSTs a notification or a response (fire and forget; the answer is 202). msg borrowed. */
static int post_message(remote_t *r, const json_t *msg)
{
    if (r->http == NULL || r->phase == PH_STOPPED)
        return MG_ECLOSED;
    if (r->modern) /* 2026-07-28 takes no notifications or responses: cancellation closes the stream */
        return 0;
    size_t blen = 0;
    char *body = mg_json_dump(msg, &blen);
    if (body == NULL)
        return MG_ENOMEM;
    const char *h[2 * MAX_HDRS];
    mg_http_req_t hr;
    fill_req(r, &hr, h, 0, 30000);
    hr.body = body;
    hr.len = blen;
    hr.max_body = 64 * 1024;
    int rc = x_request(r, NULL, &hr, NULL, NULL, post_done_cb, r);
    free(body);
    return rc;
}

static void send_cancelled(remote_t *r, int64_t id, const char *reason)
{
    json_t *n = json_pack("{s:s,s:s,s:{s:I}}", "jsonrpc", "2.0", "method", "notifications/cancelled",
                          "params", "requestId", (json_int_t)id);
    if (n == NULL)
        return;
    if (reason != NULL)
        json_object_set_new(json_object_get(n, "params"), "reason", json_string(reason));
    post_message(r, n);
    json_decref(n);
}

/* ---- session lifecycle ---- */

static void start_session(remote_t *r);

static void timer_start_cb(uv_timer_t *t)
{
    remote_t *r = t->data;
    start_session(r);
}

/* A start attempt or the session failed: record, fail the queue, retry with backoff (or never,
 * for a configuration problem). */
void mg__remote_session_failed(remote_t *r, char *log_msg, char *client_msg, int permanent)
{
    if (log_msg != NULL)
        mg_log_json(MG_LOG_WARN, "remote upstream unavailable",
                    json_pack("{s:s,s:s}", "upstream", r->server->name, "error", log_msg));
    set_str(&r->last_error, log_msg);
    set_str(&r->client_error, client_msg);
    free(r->session_id);
    r->session_id = NULL;
    xchg_free(r->init_x);
    r->init_x = NULL;
    xchg_free(r->get_x);
    r->get_x = NULL;
    uv_timer_stop(&r->get_timer);
    r->generation++;
    r->phase = permanent ? PH_FAILED : PH_BACKOFF;
    r->breaker_open = !permanent;
    state_update(r);
    mg__remote_fail_queue(r, MG_EUPSTREAMDOWN, r->client_error);
    if (!permanent) {
        r->backoff_ms = r->backoff_ms == 0 ? BACKOFF_MIN_MS : r->backoff_ms * 2;
        if (r->backoff_ms > BACKOFF_MAX_MS)
            r->backoff_ms = BACKOFF_MAX_MS;
        uv_timer_start(&r->timer, timer_start_cb, r->backoff_ms, 0);
    }
}

void mg__remote_fail_queue(remote_t *r, int err, const char *message)
{
    while (r->queue != NULL)
        mg__remote_req_finish(r->queue, err, NULL, message);
}

/* A transport failure of one request: the breaker counts it. */
static void transport_failure(remote_t *r, const char *what)
{
    if (++r->failures < MG__BREAKER_FAILS || r->phase != PH_READY)
        return;
    mg__remote_session_failed(
        r,
        fmt("upstream '%s': %d requests in a row failed (last: %s); the circuit breaker is open "
            "until a new session starts",
            r->server->name, r->failures, what),
        fmt("the '%s' server is not answering; ask the gateway's operator", r->server->name), 0);
}

static void get_start(remote_t *r);

static void get_timer_cb(uv_timer_t *t)
{
    get_start(t->data);
}

static void dispatch_unrelated(remote_t *r, json_t *msg);

static rreq_t *find_inflight(remote_t *r, int64_t id)
{
    for (rreq_t *q = r->inflight; q != NULL; q = q->next)
        if (q->sent && !q->done && q->id == id)
            return q;
    return NULL;
}

/* A message on the GET stream attributed to a request in flight, on evidence only (upstream.h):
 * its progress token, the relatedRequestId hint, or, on an exclusive upstream, being the only one. */
static rreq_t *related_on_stream(remote_t *r, json_t *msg)
{
    json_t *params = json_object_get(msg, "params");
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *tok = json_object_get(params, "progressToken");
    if (method != NULL && strcmp(method, "notifications/progress") == 0 && tok != NULL) {
        for (rreq_t *q = r->inflight; q != NULL; q = q->next) {
            json_t *mine =
                json_object_get(json_object_get(json_object_get(q->msg, "params"), "_meta"), "progressToken");
            if (mine != NULL && json_equal(mine, tok))
                return q;
        }
        return NULL;
    }
    json_t *hint = json_object_get(json_object_get(params, "_meta"), "io.mcpgate/relatedRequestId");
    if (json_is_integer(hint))
        return find_inflight(r, json_integer_value(hint));
    if (r->exclusive && r->ninflight == 1)
        return r->inflight;
    return NULL;
}

static int discovered(remote_t *r, json_t *result);
static void initialized(remote_t *r);

/* One message from the server (a POST stream or the GET stream). */
static void on_message(xchg_t *x, json_t *msg)
{
    remote_t *r = x->r;
    if (!json_is_object(msg))
        return;
    json_t *id = json_object_get(msg, "id");
    const char *method = json_string_value(json_object_get(msg, "method"));
    if (method == NULL && id != NULL) { /* a response */
        if (x->kind == X_DISCOVER) {
            x->answered = discovered(r, json_object_get(msg, "result"));
            return;
        }
        if (x->kind == X_INIT || (x->kind == X_GET && r->sse_mode && r->phase == PH_INIT &&
                                  json_is_integer(id) && json_integer_value(id) == r->init_id)) {
            x->answered = 1;
            json_t *res = json_object_get(msg, "result");
            if (!json_is_object(res)) {
                json_t *e = json_object_get(msg, "error");
                const char *em = json_string_value(json_object_get(e, "message"));
                mg__remote_session_failed(
                    r,
                    fmt("upstream '%s': initialize was refused: %s", r->server->name, em ? em : "no result"),
                    fmt("the '%s' server refused to start a session; ask the gateway's operator",
                        r->server->name),
                    0);
                return;
            }
            json_decref(r->init_result);
            r->init_result = mg_json_deep_copy(res);
            const char *pv = json_string_value(json_object_get(res, "protocolVersion"));
            set_str(&r->protocol, strdup(pv ? pv : PROTOCOL_VERSION));
            set_str(&r->era, fmt("%s (%s)", r->protocol ? r->protocol : PROTOCOL_VERSION,
                                 r->sse_mode ? "HTTP+SSE" : "Streamable HTTP"));
            if (x->kind == X_GET) /* HTTP+SSE: the answer came on the stream */
                initialized(r);
            return;
        }
        if (x->req != NULL && json_is_integer(id) && json_integer_value(id) == x->req->id) {
            x->answered = 1;
            r->failures = 0;
            if (x->req->translate && r->modern && mg__remote_mrtr_take(x->req, msg))
                return; /* input_required, relayed to the caller */
            mg__remote_req_finish(x->req, 0, msg, NULL);
        } else if (x->kind == X_GET && json_is_integer(id)) { /* HTTP+SSE: answers come here */
            rreq_t *q = find_inflight(r, json_integer_value(id));
            if (q != NULL) {
                r->failures = 0;
                mg__remote_req_finish(q, 0, msg, NULL);
            }
        }
        return; /* a response to nothing of ours: ignored */
    }
    if (method != NULL && strcmp(method, "ping") == 0 && id != NULL) { /* answered here */
        json_t *pong = json_pack("{s:s,s:O,s:{}}", "jsonrpc", "2.0", "id", id, "result");
        if (pong != NULL)
            post_message(r, pong);
        json_decref(pong);
        return;
    }
    if (x->kind == X_GET && method != NULL && strcmp(method, "notifications/subscriptions/acknowledged") == 0)
        return; /* 2026-07-28: the listen stream's first event, for the gateway only */
    rreq_t *rel = x->kind == X_REQ ? x->req : related_on_stream(r, msg);
    if (rel != NULL && rel->related_cb != NULL) {
        mg_upstream_origin_t o = {0, rel->generation};
        rel->related_cb((mg_upstream_req_t *)rel, o, msg, rel->data);
        return;
    }
    dispatch_unrelated(r, msg);
}

static void dispatch_unrelated(remote_t *r, json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    if (r->hooks.on_message_cb != NULL) {
        mg_upstream_origin_t o = {0, r->generation};
        r->hooks.on_message_cb((mg_upstream_t *)r, o, msg, r->hooks_data);
    } else if (id != NULL) {
        json_t *e = json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id, "error", "code",
                              mg_err_jsonrpc_code(MG_EMETHOD), "message", "method not found");
        if (e != NULL)
            post_message(r, e);
        json_decref(e);
    }
}

/* A result for a request whose caller takes bytes (raw_cb), in canonical form (jsonrpc/rpcraw.h):
 * handed over without building a tree, as child.c does for a stdio line. Returns 1 when it took the
 * payload; 0 leaves it to the tree path (not canonical, not this request's result, a 2026-07-28
 * upstream whose result may be input_required, a caller without raw_cb). Runs inside
 * xchg_enter/xchg_leave, so p (x's body or its SSE event) stays valid through raw_cb. */
static int take_raw(xchg_t *x, const char *p, size_t len)
{
    rreq_t *q = x->req;
    mg_rpc_raw_t raw;
    if (x->kind != X_REQ || q == NULL || q->raw_cb == NULL || q->done || x->r->modern || x->r->sse_mode)
        return 0;
    if (q->d_err != 0 || q->d_response != NULL) /* already completing */
        return 0;
    if (mg_rpc_raw_scan(p, len, &raw) != 0 || !raw.has_result || raw.has_error || raw.has_method ||
        !raw.id_is_int || raw.id != q->id)
        return 0;
    x->answered = 1;
    x->r->failures = 0;
    q->done = 1;
    req_detach(q);
    uv_timer_stop(&q->timer);
    q->raw_cb((mg_upstream_req_t *)q, &raw, q->data);
    uv_close((uv_handle_t *)&q->timer, req_free_cb);
    return 1;
}

static void on_payload(xchg_t *x, const char *p, size_t len)
{
    if (take_raw(x, p, len))
        return;
    json_t *v = mg_json_loadb(p, len, 0); /* json_loadb(0), faster (common/json.h) */
    if (v == NULL) {
        mg_log_limited(&x->r->lim, uv_now(x->r->loop), MG_LOG_WARN,
                       "remote upstream sent a body that is not JSON",
                       json_pack("{s:s}", "upstream", x->r->server->name));
        return;
    }
    if (json_is_array(v)) { /* a batch (2025-03-26) */
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m)
        {
            on_message(x, m);
            if (x->dead || (x->answered && x->kind == X_REQ))
                break;
        }
    } else {
        on_message(x, v);
    }
    json_decref(v);
}

static void sse_endpoint(remote_t *r, const char *uri, size_t len);

static void sse_event_cb(void *data, const char *id, const char *event, const char *payload, size_t len)
{
    xchg_t *x = data;
    if (x->dead)
        return;
    if (x->kind == X_GET && id != NULL)
        set_str(&x->r->last_event_id, strdup(id));
    if (x->kind == X_GET && x->r->sse_mode && event != NULL && strcmp(event, "endpoint") == 0) {
        sse_endpoint(x->r, payload, len);
        return;
    }
    if (event != NULL && strcmp(event, "message") != 0)
        return;
    if (len == 0)
        return;                          /* a priming event */
    if (x->answered && x->kind != X_GET) /* a GET stream carries many answers */
        return;
    on_payload(x, payload, len);
}

static size_t max_response(const remote_t *r)
{
    return r->rc->max_response_bytes ? r->rc->max_response_bytes : r->limits->max_line_bytes;
}

/* Header block of an exchange: status, content type, the session id of initialize. */
static void head_cb(void *data, int status, const char *headers, size_t len)
{
    xchg_t *x = data;
    const char *hv = x->h1 != NULL ? mg_h1_call_version(x->h1) : mg_http_call_version(x->call);
    if (hv != NULL) /* the version negotiated (ALPN on TLS: h2 where the server offers it) */
        x->r->http_version = hv;
    if (x->dead)
        return;
    x->status = status;
    x->got_head = 1;
    const char *p = headers, *end = headers + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon != NULL) {
            size_t nl = (size_t)(colon - p);
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
                ve--;
            if (nl == 12 && strncasecmp(p, "content-type", 12) == 0)
                x->sse = (size_t)(ve - v) >= 17 && strncasecmp(v, "text/event-stream", 17) == 0;
            else if (nl == 14 && strncasecmp(p, "mcp-session-id", 14) == 0 && x->kind == X_INIT &&
                     status < 300 && ve > v && (size_t)(ve - v) < 1024)
                set_str(&x->r->session_id, strndup(v, (size_t)(ve - v)));
        }
        p = eol + 1;
    }
    if (x->sse)
        mg__sse_init(&x->sse_p, max_response(x->r));
    if (x->kind == X_REQ && x->req != NULL && status < 300)
        uv_timer_again(&x->req->timer); /* the first byte arrived: the idle timeout runs from here */
}

static void body_part(xchg_t *x, const char *bytes, size_t len);

static void body_cb(void *data, const char *bytes, size_t len)
{
    xchg_t *x = data;
    xchg_enter(x);
    if (!x->dead)
        body_part(x, bytes, len);
    xchg_leave(x);
}

static void body_part(xchg_t *x, const char *bytes, size_t len)
{
    remote_t *r = x->r;
    if (x->status >= 300 && x->status != 0) { /* an error page: kept short, never parsed */
        return;
    }
    if (x->sse) {
        int rc = mg__sse_feed(&x->sse_p, bytes, len, sse_event_cb, x);
        if (rc != 0 && x->kind == X_REQ && x->req != NULL && !x->req->done) {
            char *m =
                fmt("the '%s' server sent an event larger than %zu bytes", r->server->name, max_response(r));
            req_finish_later(x->req, MG_ETOOBIG, NULL, m);
            free(m);
            x_cancel(x);
        } else if (rc != 0 && x->kind == X_GET) {
            x_cancel(x);
            uv_timer_start(&r->get_timer, get_timer_cb, GET_RETRY_MS, 0);
        }
        return; /* bytes alone (comments, keep-alives) do not reset the timeout: progress does */
    }
    if (x->len + len > max_response(r)) {
        if (x->kind == X_REQ && x->req != NULL && !x->req->done) {
            char *m = fmt("the '%s' server's response exceeds %zu bytes (maxResponseBytes)", r->server->name,
                          max_response(r));
            req_finish_later(x->req, MG_ETOOBIG, NULL, m);
            free(m);
        }
        x_cancel(x);
        return;
    }
    if (x->len + len + 1 > x->cap) {
        size_t c = x->cap ? x->cap : 512; /* most answers fit: a small block malloc keeps in its cache */
        while (c < x->len + len + 1)
            c *= 2;
        char *n = realloc(x->buf, c);
        if (n == NULL)
            return;
        x->buf = n;
        x->cap = c;
    }
    memcpy(x->buf + x->len, bytes, len);
    x->len += len;
}

static int safe_method(const char *m)
{
    static const char *const safe[] = {"tools/list",
                                       "prompts/list",
                                       "resources/list",
                                       "resources/templates/list",
                                       "resources/read",
                                       "prompts/get",
                                       "ping",
                                       "completion/complete",
                                       NULL};
    for (size_t i = 0; m && safe[i]; i++)
        if (strcmp(m, safe[i]) == 0)
            return 1;
    return 0;
}

/* The server answered 404 to the session id: the session is gone there; start a new one. */
static void session_lost(remote_t *r)
{
    mg_log_json(MG_LOG_WARN, "remote upstream session lost", json_pack("{s:s}", "upstream", r->server->name));
    free(r->session_id);
    r->session_id = NULL;
    xchg_free(r->get_x);
    r->get_x = NULL;
    uv_timer_stop(&r->get_timer);
    r->generation++;
    r->phase = PH_INIT;
    state_update(r);
    start_session(r);
}

static void req_done_cb(void *data, int err, int status, const char *why)
{
    xchg_t *x = data;
    remote_t *r = x->r;
    rreq_t *q = x->req;
    x_ended(x); /* done: nothing left to cancel */
    if (q == NULL || q->done) {
        if (q == NULL)
            xchg_free(x);
        return;
    }
    if (q->d_err != 0 || q->d_response != NULL) /* already completing (size cap) */
        return;
    if (r->sse_mode && err == 0 && status >= 200 && status < 300) {
        q->x = NULL; /* HTTP+SSE: accepted; the answer comes on the GET stream */
        xchg_free(x);
        return;
    }
    if (!x->sse && err == 0 && status >= 200 && status < 300 && x->len > 0) {
        x->buf[x->len] = '\0';
        xchg_enter(x);
        on_payload(x, x->buf, x->len);
        if (xchg_leave(x) || q->done)
            return;
    }
    const char *name = r->server->name;
    char *m = NULL;
    int e = MG_EUPSTREAM, transport = 0;
    if (status == 404 && q->with_session) {
        m = fmt("the '%s' server lost its session (HTTP 404 on its session id) while handling this request; "
                "a new session has been started: retry the request",
                name);
        int current = q->generation == r->generation && r->phase == PH_READY;
        mg__remote_req_finish(q, e, NULL, m);
        free(m);
        if (current) /* the first to learn it: a new session (the others of the old one fail alike) */
            session_lost(r);
        return;
    }
    if (err == MG_ETIMEOUT) {
        e = MG_ETIMEOUT;
        transport = 1;
        m = fmt("the '%s' server did not answer in time", name);
    } else if (err != 0 && !x->got_head) {
        transport = 1;
        m = fmt("the '%s' server could not be reached (%s)", name, why ? why : mg_strerror(err));
    } else if (err != 0) {
        transport = 1;
        m = fmt("the connection to the '%s' server broke while it answered (%s)", name,
                why ? why : mg_strerror(err));
    } else if (status >= 300 && status < 400) {
        m = fmt(
            "the '%s' server answered with a redirect (HTTP %d); redirects are not followed: the operator "
            "must configure the final URL",
            name, status);
    } else if (status == 401 && r->rc->auth != NULL && !q->auth_retried && r->phase == PH_READY) {
        /* the token expired early or was revoked: a new one, and this request once more */
        q->auth_retried = 1;
        if (q->te != NULL) { /* the exchanged token of this caller */
            free(q->te->hdr);
            q->te->hdr = NULL;
        } else {
            free(r->auth_hdr);
            r->auth_hdr = NULL;
        }
        list_del(&r->inflight, q);
        r->ninflight--;
        q->sent = 0;
        list_add(&r->queue, q);
        r->nqueued++;
        q->x = NULL;
        xchg_free(x);
        uv_timer_start(&q->timer, req_timeout_cb, q->timeout_ms, 0);
        mg__remote_token_fetch(r);
        return;
    } else if (status == 401 || status == 403) {
        m = fmt("the '%s' server refused the gateway's credential (HTTP %d); ask the gateway's operator",
                name, status);
    } else if (status >= 500 || status == 429) {
        transport = 1;
        m = fmt("the '%s' server failed (HTTP %d)", name, status);
    } else if (status >= 400) {
        m = fmt("the '%s' server rejected the request (HTTP %d)", name, status);
    } else {
        m = fmt("the '%s' server ended its answer without a response to this request", name);
    }
    if (transport) {
        transport_failure(r, m ? m : "?");
        if (q->done) { /* the breaker failed it */
            free(m);
            return;
        }
        if (q->safe && q->tries < MAX_RETRIES && err != MG_ETIMEOUT && r->phase == PH_READY) {
            q->tries++;
            list_del(&r->inflight, q);
            r->ninflight--;
            q->sent = 0;
            list_add(&r->queue, q);
            r->nqueued++;
            xchg_t *old = q->x;
            q->x = NULL;
            old->req = NULL;
            xchg_free(old);
            q->retry_pending = 1;
            uv_timer_start(&q->timer, deferred_cb, 100u << q->tries, 0);
            free(m);
            return;
        }
    }
    mg__remote_req_finish(q, e, NULL, m);
    free(m);
}

static void req_timeout_cb(uv_timer_t *t)
{
    rreq_t *q = t->data;
    if (q->sent)
        send_cancelled(q->r, q->id, "timed out at the gateway");
    char *m = fmt("the '%s' server did not answer within %llu ms", q->r->server->name,
                  (unsigned long long)q->timeout_ms);
    mg__remote_req_finish(q, MG_ETIMEOUT, NULL, m);
    free(m);
}

static int modern_local(remote_t *r, rreq_t *q);

static void send_req(rreq_t *q)
{
    remote_t *r = q->r;
    if (r->modern && !q->sent && modern_local(r, q))
        return;
    if (!mg__remote_token_ready(r)) { /* stays queued (its timeout runs) until a token is there */
        uv_timer_start(&q->timer, req_timeout_cb, q->timeout_ms, 0);
        mg__remote_token_fetch(r);
        return;
    }
    const char *te_hdr = NULL;
    if (r->rc->auth != NULL && r->rc->auth->exchange) {
        if (q->subject == NULL) {
            char *m =
                fmt("the '%s' server acts on behalf of the caller (token exchange) and this request carried "
                    "no bearer token",
                    r->server->name);
            mg__remote_req_finish(q, MG_EFORBIDDEN, NULL, m);
            free(m);
            return;
        }
        te_entry_t *e = q->te != NULL ? q->te : mg__remote_te_lookup(r, q->subject);
        if (e == NULL) {
            mg__remote_req_finish(q, MG_ENOMEM, NULL, NULL);
            return;
        }
        q->te = e;
        if (e->hdr == NULL || uv_now(r->loop) >= e->refresh_ms) { /* stays queued until exchanged */
            uv_timer_start(&q->timer, req_timeout_cb, q->timeout_ms, 0);
            if (e->call == NULL) {
                free(e->subject);
                e->subject = strdup(q->subject);
                mg__remote_te_fetch(r, e, q->subject);
            }
            return;
        }
        te_hdr = e->hdr;
    }
    xchg_t *x = calloc(1, sizeof *x);
    json_t *m = r->modern ? mg_json_copy(q->msg) : NULL; /* 2026-07-28: _meta is added to a copy */
    if (x == NULL || (r->modern && m == NULL)) {
        free(x);
        json_decref(m);
        mg__remote_req_finish(q, MG_ENOMEM, NULL, NULL);
        return;
    }
    q->id = r->next_id++;
    size_t blen = 0;
    char *body;
    if (r->modern) {
        json_object_set_new(m, "jsonrpc", json_string("2.0"));
        json_object_set_new(m, "id", json_integer(q->id));
        modern_meta(r, m, q->caps, q->log_level);
        body = mg_json_dump(m, &blen); /* json_dumps(JSON_COMPACT), faster (common/json.h) */
    } else { /* the caller's params text when it lent one, without copying or dumping the message */
        body = mg__remote_body(q->msg, q->id, q->params_of, q->params_text, q->params_len, &blen);
    }
    x->r = r;
    x->kind = X_REQ;
    x->req = q;
    const char *h[2 * MAX_HDRS];
    mg_http_req_t hr;
    uint64_t total = q->max_ms;
    fill_req(r, &hr, h, 0, (long)total);
    hr.body = body;
    hr.len = blen;
    hr.body_kept = 1; /* x->body, freed with x (after the call ends or is cancelled) */
    for (size_t i = 0; te_hdr != NULL && i < hr.nheaders; i++) /* this caller's token, not the gateway's */
        if (strcmp(h[2 * i], "authorization") == 0)
            h[2 * i + 1] = te_hdr;
    char *name = NULL;
    if (r->modern) { /* Mcp-Method, and Mcp-Name for the methods that name something */
        const char *method = json_string_value(json_object_get(m, "method"));
        json_t *params = json_object_get(m, "params");
        const char *nm = method == NULL ? NULL
                         : strcmp(method, "resources/read") == 0
                             ? json_string_value(json_object_get(params, "uri"))
                         : strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0
                             ? json_string_value(json_object_get(params, "name"))
                             : NULL;
        add_hdr(&hr, h, "mcp-method", method ? method : "");
        if (nm != NULL && (name = header_value(nm)) != NULL)
            add_hdr(&hr, h, "mcp-name", name);
    }
    /* W3C trace context (gateway.tracing writes it into _meta; a client may have): also as headers,
     * where an HTTP server's tracing looks for it. Only printable values of sane length go out. */
    json_t *tmeta = json_object_get(json_object_get(m != NULL ? m : q->msg, "params"), "_meta");
    const char *tp = json_string_value(json_object_get(tmeta, "traceparent"));
    const char *ts = json_string_value(json_object_get(tmeta, "tracestate"));
    if (trace_header_ok(tp, 55)) {
        add_hdr(&hr, h, "traceparent", tp);
        if (trace_header_ok(ts, 512))
            add_hdr(&hr, h, "tracestate", ts);
    }
    int rc = body ? x_request(r, x, &hr, head_cb, body_cb, req_done_cb, x) : MG_ENOMEM;
    json_decref(m);
    free(name);
    x->body = body;
    if (rc != 0) {
        free(x->body);
        free(x);
        mg__remote_req_finish(q, rc, NULL, NULL);
        return;
    }
    if (!q->sent) {
        list_del(&r->queue, q);
        r->nqueued--;
        list_add(&r->inflight, q);
        r->ninflight++;
    }
    q->sent = 1;
    q->x = x;
    q->generation = r->generation;
    q->with_session = r->session_id != NULL && !r->modern && !r->sse_mode;
    uint64_t idle = r->rc->first_byte_ms ? r->rc->first_byte_ms : q->timeout_ms;
    /* first byte, then idle (reset by every byte, by progress) */
    uv_timer_start(&q->timer, req_timeout_cb, idle, q->timeout_ms);
}

void mg__remote_req_wait_input(rreq_t *q)
{
    if (q->x != NULL) {
        xchg_t *x = q->x;
        q->x = NULL;
        x->req = NULL;
        xchg_free(x);
    }
    uv_timer_start(&q->timer, req_timeout_cb, q->timeout_ms, 0);
}

void mg__remote_req_resend(rreq_t *q)
{
    q->retry_pending = 1;
    uv_timer_start(&q->timer, deferred_cb, 0, 0);
}

void mg__remote_drain_queue(remote_t *r)
{
    /* oldest first: the queue is pushed at its head */
    rreq_t *last = r->queue;
    while (last != NULL && last->next != NULL)
        last = last->next;
    while (last != NULL && r->phase == PH_READY) {
        rreq_t *prev = last->prev;
        if (!last->retry_pending && !last->done && last->d_err == 0)
            send_req(last);
        last = prev;
    }
}

/* ---- the GET stream ---- */

static void get_head_cb(void *data, int status, const char *headers, size_t len)
{
    head_cb(data, status, headers, len);
}

static void get_done_cb(void *data, int err, int status, const char *why)
{
    xchg_t *x = data;
    remote_t *r = x->r;
    x_ended(x);
    if (r->get_x == x)
        r->get_x = NULL;
    long retry = x->sse && x->sse_p.retry_ms >= 0 ? x->sse_p.retry_ms : GET_RETRY_MS;
    xchg_free(x);
    if (r->sse_mode && (r->phase == PH_READY || r->phase == PH_INIT)) {
        /* HTTP+SSE: the stream is the session; its end loses every answer still due on it */
        char *m = fmt("the connection to the '%s' server broke while it answered", r->server->name);
        while (r->inflight != NULL)
            mg__remote_req_finish(r->inflight, MG_EUPSTREAM, NULL, m);
        free(m);
        mg__remote_session_failed(
            r,
            fmt("upstream '%s': %s: the HTTP+SSE stream %s (HTTP %d)", r->server->name, r->shown,
                err ? (why ? why : mg_strerror(err)) : "ended", status),
            fmt("the '%s' server could not be reached; ask the gateway's operator", r->server->name), 0);
        return;
    }
    if (r->phase != PH_READY)
        return;
    if (status == 404 && r->session_id != NULL) { /* the session is gone there */
        session_lost(r);
        return;
    }
    if (status == 405 || (r->modern && status == 404) ||
        (status >= 400 && status < 500 && status != 404 && status != 429)) {
        r->get_unsupported = 1; /* the server offers no GET stream (2026-07-28: no listen): fine */
        return;
    }
    (void)err;
    (void)why;
    uv_timer_start(&r->get_timer, get_timer_cb, (uint64_t)(retry < 100 ? 100 : retry), 0);
}

static void get_start(remote_t *r)
{
    if (r->phase != PH_READY || r->get_x != NULL || r->get_unsupported)
        return;
    xchg_t *x = calloc(1, sizeof *x);
    if (x == NULL)
        return;
    x->r = r;
    x->kind = X_GET;
    const char *h[2 * MAX_HDRS];
    mg_http_req_t hr;
    char *body = NULL;
    if (r->modern) { /* 2026-07-28: the stream of unrelated notifications is a subscriptions/listen */
        json_t *uris = json_array();
        const char *k;
        json_t *v;
        json_object_foreach(r->subs, k, v) json_array_append_new(uris, json_string(k));
        json_t *m = uris == NULL
                        ? NULL
                        : json_pack("{s:s,s:I,s:s,s:{s:{s:b,s:b,s:b,s:o}}}", "jsonrpc", "2.0", "id",
                                    (json_int_t)r->next_id++, "method", "subscriptions/listen", "params",
                                    "notifications", "toolsListChanged", 1, "promptsListChanged", 1,
                                    "resourcesListChanged", 1, "resourceSubscriptions", uris);
        if (m != NULL) {
            modern_meta(r, m, NULL, NULL);
            body = json_dumps(m, JSON_COMPACT);
        }
        json_decref(m);
        if (body == NULL) {
            free(x);
            return;
        }
        fill_req(r, &hr, h, 0, -1);
        hr.body = body;
        hr.len = strlen(body);
        add_hdr(&hr, h, "mcp-method", "subscriptions/listen");
    } else {
        fill_req(r, &hr, h, 1, -1);
        hr.method = "GET";
    }
    hr.idle_ms = (long)r->rc->idle_stream_ms;
    int rc = mg_http_request(r->http, &hr, get_head_cb, body_cb, get_done_cb, x, &x->call);
    free(body);
    if (rc != 0) {
        free(x);
        return;
    }
    r->get_x = x;
}

/* 2026-07-28: the subscriptions changed: a new listen stream asks for the new set. */
static void listen_restart(remote_t *r)
{
    xchg_free(r->get_x);
    r->get_x = NULL;
    uv_timer_stop(&r->get_timer);
    get_start(r);
}

/* 2026-07-28 removed ping, logging/setLevel and resources/(un)subscribe: answered here ({}); the
 * level travels in each request's _meta instead (mg_upstream_caller_t.log_level), subscriptions in
 * the listen stream's resourceSubscriptions. Returns 1 when q was answered. */
static int modern_local(remote_t *r, rreq_t *q)
{
    const char *method = json_string_value(json_object_get(q->msg, "method"));
    int sub = strcmp(method, "resources/subscribe") == 0,
        unsub = strcmp(method, "resources/unsubscribe") == 0;
    if (!sub && !unsub && strcmp(method, "ping") != 0 && strcmp(method, "logging/setLevel") != 0)
        return 0;
    const char *uri = json_string_value(json_object_get(json_object_get(q->msg, "params"), "uri"));
    if ((sub || unsub) && uri != NULL) {
        if (r->subs == NULL)
            r->subs = json_object();
        int had = json_object_get(r->subs, uri) != NULL;
        if (sub && !had)
            json_object_set_new(r->subs, uri, json_true());
        else if (unsub && had)
            json_object_del(r->subs, uri);
        if (sub != had)
            listen_restart(r);
    }
    json_t *ok = json_pack("{s:s,s:I,s:{}}", "jsonrpc", "2.0", "id", (json_int_t)0, "result");
    mg__remote_req_finish(q, ok != NULL ? 0 : MG_ENOMEM, ok, NULL);
    json_decref(ok);
    return 1;
}

/* ---- initialize ---- */

static void initialized(remote_t *r)
{
    uv_timer_stop(&r->timer); /* the handshake's */
    json_t *n = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", "notifications/initialized");
    post_message(r, n);
    json_decref(n);
    r->phase = PH_READY;
    r->failures = 0;
    r->breaker_open = 0;
    r->backoff_ms = 0;
    set_str(&r->last_error, NULL);
    set_str(&r->client_error, NULL);
    mg_log_json(MG_LOG_INFO, "remote upstream ready",
                json_pack("{s:s,s:s,s:b}", "upstream", r->server->name, "era", r->era ? r->era : "?",
                          "session", r->session_id != NULL));
    state_update(r);
    if (r->hooks.on_state_cb != NULL) /* the initialize result may have changed */
        r->hooks.on_state_cb((mg_upstream_t *)r, r->state, r->hooks_data);
    get_start(r);
    mg__remote_drain_queue(r);
}

static void sse_connect(remote_t *r);

static void init_done_cb(void *data, int err, int status, const char *why)
{
    xchg_t *x = data;
    remote_t *r = x->r;
    x_ended(x);
    r->init_x = NULL;
    if (!x->sse && err == 0 && status >= 200 && status < 300 && x->len > 0) {
        x->buf[x->len] = '\0';
        xchg_enter(x);
        on_payload(x, x->buf, x->len);
        x->busy--;
    }
    int answered = x->answered;
    xchg_free(x);
    if (r->phase != PH_INIT)
        return; /* on_payload failed it, or the answer came on the GET stream (HTTP+SSE) */
    if (r->sse_mode && err == 0 && status >= 200 && status < 300)
        return; /* HTTP+SSE: the answer comes on the GET stream */
    if (!r->sse_mode && r->rc->transport == MG_REMOTE_AUTO && err == 0 &&
        (status == 400 || status == 404 || status == 405)) {
        sse_connect(r); /* the fallback table's last step: the 2024-11-05 HTTP+SSE transport */
        return;
    }
    const char *name = r->server->name;
    char *cm = fmt("the '%s' server could not be reached; ask the gateway's operator", name);
    if (answered && r->init_result != NULL) {
        free(cm);
        initialized(r);
    } else if (err != 0) {
        mg__remote_session_failed(
            r, fmt("upstream '%s': %s: initialize failed: %s", name, r->shown, why ? why : mg_strerror(err)),
            cm, 0);
    } else if (status >= 300 && status < 400) {
        mg__remote_session_failed(
            r,
            fmt("upstream '%s': %s answered initialize with a redirect (HTTP %d); redirects are not "
                "followed: configure the final URL",
                name, r->shown, status),
            cm, 0);
    } else if (status == 401 || status == 403) {
        mg__remote_session_failed(
            r,
            fmt("upstream '%s': %s refused the credential (HTTP %d): check the server's headers or "
                "tenantCredentials",
                name, r->shown, status),
            cm, 0);
    } else if (status >= 300 || status < 200) {
        mg__remote_session_failed(
            r,
            fmt("upstream '%s': %s answered initialize with HTTP %d (is this the server's MCP endpoint, "
                "and does it speak Streamable HTTP?)",
                name, r->shown, status),
            cm, 0);
    } else {
        mg__remote_session_failed(
            r, fmt("upstream '%s': %s answered initialize without a result", name, r->shown), cm, 0);
    }
}

static void send_initialize(remote_t *r)
{
    xchg_t *x = calloc(1, sizeof *x);
    json_t *init =
        json_pack("{s:s,s:I,s:s,s:{s:s,s:{s:{},s:{s:{},s:{}}},s:{s:s,s:s}}}", "jsonrpc", "2.0", "id",
                  (json_int_t)(r->init_id = r->next_id++), "method", "initialize", "params",
                  "protocolVersion", PROTOCOL_VERSION, "capabilities", "sampling", "elicitation", "form",
                  "url", "clientInfo", "name", r->client_name, "version", r->client_version);
    char *body = NULL;
    if (init != NULL) {
        json_object_set_new(json_object_get(json_object_get(init, "params"), "capabilities"), "roots",
                            r->exclusive ? json_pack("{s:b}", "listChanged", 1) : json_object());
        body = json_dumps(init, JSON_COMPACT);
    }
    json_decref(init);
    if (x == NULL || body == NULL) {
        free(x);
        free(body);
        mg__remote_session_failed(r, fmt("upstream '%s': out of memory", r->server->name), NULL, 0);
        return;
    }
    x->r = r;
    x->kind = X_INIT;
    const char *h[2 * MAX_HDRS];
    mg_http_req_t hr;
    fill_req(r, &hr, h, 0, (long)r->server->request_timeout_ms);
    hr.body = body;
    hr.len = strlen(body);
    int rc = x_request(r, x, &hr, head_cb, body_cb, init_done_cb, x);
    free(body);
    if (rc != 0) {
        free(x);
        mg__remote_session_failed(
            r, fmt("upstream '%s': could not send initialize: %s", r->server->name, mg_strerror(rc)), NULL,
            0);
        return;
    }
    r->init_x = x;
}

/* ---- era detection: server/discover (2026-07-28), then initialize, then HTTP+SSE ---- */

/* A server/discover result: 1 when it names 2026-07-28 (the upstream is then stateless). */
static int discovered(remote_t *r, json_t *result)
{
    json_t *versions = json_object_get(result, "supportedVersions");
    size_t i;
    json_t *v;
    int found = 0, session_era = 0;
    json_array_foreach(versions, i, v)
    {
        const char *sv = json_string_value(v);
        found |= sv != NULL && strcmp(sv, MODERN_VERSION) == 0;
        session_era |= sv != NULL && strncmp(sv, "2025-", 5) == 0;
    }
    /* A server that speaks both eras gets a session (initialize): the versioning page lets a
     * dual-era server take initialize as the legacy era for that session, a session carries
     * server->client requests, logging and subscriptions as they are, and a server whose tools keep
     * state per session refuses stateless calls, which a discover result does not announce
     * (ADR 0009; docs/eras.md, "Remote upstreams"). */
    if (!found || session_era)
        return 0;
    json_t *caps = json_object_get(result, "capabilities");
    json_t *info = json_object_get(json_object_get(result, "_meta"), "io.modelcontextprotocol/serverInfo");
    json_t *ir = json_pack(
        "{s:s,s:O,s:O}", "protocolVersion", MODERN_VERSION, "capabilities",
        json_is_object(caps) ? caps : json_object(), "serverInfo",
        json_is_object(info) ? info : json_pack("{s:s,s:s}", "name", r->server->name, "version", "?"));
    if (ir == NULL)
        return 0;
    json_t *instr = json_object_get(result, "instructions");
    if (json_is_string(instr))
        json_object_set(ir, "instructions", instr);
    json_decref(r->init_result);
    r->init_result = ir;
    r->modern = 1;
    /* no GET stream in 2026-07-28: get_start() opens subscriptions/listen instead */
    set_str(&r->protocol, strdup(MODERN_VERSION));
    set_str(&r->era, strdup(MODERN_VERSION " (stateless)"));
    return 1;
}

static void discover_done_cb(void *data, int err, int status, const char *why)
{
    xchg_t *x = data;
    remote_t *r = x->r;
    x_ended(x);
    r->init_x = NULL;
    if (!x->sse && err == 0 && status >= 200 && status < 300 && x->len > 0) {
        x->buf[x->len] = '\0';
        xchg_enter(x);
        on_payload(x, x->buf, x->len);
        x->busy--;
    }
    int answered = x->answered;
    xchg_free(x);
    if (r->phase != PH_INIT)
        return;
    if (answered) {
        initialized(r);
    } else if (err != 0 && status == 0) { /* nothing answered at all: the next step would not either */
        mg__remote_session_failed(
            r,
            fmt("upstream '%s': %s: cannot connect: %s", r->server->name, r->shown,
                why ? why : mg_strerror(err)),
            fmt("the '%s' server could not be reached; ask the gateway's operator", r->server->name), 0);
    } else {
        send_initialize(r); /* a session-era server: initialize */
    }
}

static void send_discover(remote_t *r)
{
    xchg_t *x = calloc(1, sizeof *x);
    json_t *m = json_pack("{s:s,s:I,s:s}", "jsonrpc", "2.0", "id", (json_int_t)r->next_id++, "method",
                          "server/discover");
    char *body = NULL;
    if (m != NULL) {
        modern_meta(r, m, NULL, NULL);
        body = json_dumps(m, JSON_COMPACT);
    }
    json_decref(m);
    if (x == NULL || body == NULL) {
        free(x);
        free(body);
        mg__remote_session_failed(r, fmt("upstream '%s': out of memory", r->server->name), NULL, 0);
        return;
    }
    x->r = r;
    x->kind = X_DISCOVER;
    const char *h[2 * MAX_HDRS];
    mg_http_req_t hr;
    fill_req(r, &hr, h, 0, (long)r->server->request_timeout_ms);
    add_hdr(&hr, h, "mcp-protocol-version", MODERN_VERSION);
    add_hdr(&hr, h, "mcp-method", "server/discover");
    hr.body = body;
    hr.len = strlen(body);
    int rc = x_request(r, x, &hr, head_cb, body_cb, discover_done_cb, x);
    free(body);
    if (rc != 0) {
        free(x);
        mg__remote_session_failed(
            r, fmt("upstream '%s': could not send server/discover: %s", r->server->name, mg_strerror(rc)),
            NULL, 0);
        return;
    }
    r->init_x = x;
}

/* HTTP+SSE (2024-11-05): GET the URL; its "endpoint" event names where to POST. */
static void sse_connect(remote_t *r)
{
    r->sse_mode = 1;
    xchg_t *x = calloc(1, sizeof *x);
    if (x == NULL) {
        mg__remote_session_failed(r, fmt("upstream '%s': out of memory", r->server->name), NULL, 0);
        return;
    }
    x->r = r;
    x->kind = X_GET;
    const char *h[2 * MAX_HDRS];
    mg_http_req_t hr;
    fill_req(r, &hr, h, 1, -1);
    hr.method = "GET";
    hr.idle_ms = (long)r->rc->idle_stream_ms;
    if (mg_http_request(r->http, &hr, head_cb, body_cb, get_done_cb, x, &x->call) != 0) {
        free(x);
        mg__remote_session_failed(
            r, fmt("upstream '%s': could not open the HTTP+SSE stream", r->server->name), NULL, 0);
        return;
    }
    r->get_x = x;
}

/* The endpoint event: a path ("/messages?sessionId=...") or a URL of the same origin. Another
 * origin is refused: the guard's pinned address is for this origin only. */
static void sse_endpoint(remote_t *r, const char *uri, size_t len)
{
    if (r->endpoint != NULL || r->phase != PH_INIT)
        return;
    const char *base = r->rc->url;
    const char *path = strstr(base, "://") + 3;
    size_t origin_len = (size_t)(path - base) + strcspn(path, "/?#");
    char *ep = NULL;
    if (len > 0 && uri[0] == '/' && (len < 2 || uri[1] != '/'))
        ep = fmt("%.*s%.*s", (int)origin_len, base, (int)len, uri);
    else if (len > origin_len && strncasecmp(uri, base, origin_len) == 0 &&
             strchr("/?", uri[origin_len]) != NULL)
        ep = fmt("%.*s", (int)len, uri);
    if (ep == NULL || strpbrk(ep, " \r\n") != NULL) {
        free(ep);
        mg__remote_session_failed(
            r,
            fmt("upstream '%s': %s: the HTTP+SSE endpoint event names another origin or no path; "
                "it is not followed",
                r->server->name, r->shown),
            fmt("the '%s' server could not be reached; ask the gateway's operator", r->server->name), 0);
        return;
    }
    r->endpoint = ep;
    send_initialize(r);
}

static void handshake_timeout_cb(uv_timer_t *t)
{
    remote_t *r = t->data;
    mg__remote_session_failed(
        r,
        fmt("upstream '%s': %s did not complete the handshake within %llu ms", r->server->name, r->shown,
            (unsigned long long)r->server->request_timeout_ms),
        fmt("the '%s' server could not be reached; ask the gateway's operator", r->server->name), 0);
}

/* The address is pinned: find the era (the transport when "type" names it). */

void mg__remote_begin_handshake(remote_t *r)
{
    r->phase = PH_INIT;
    uv_timer_start(&r->timer, handshake_timeout_cb, r->server->request_timeout_ms, 0);
    if (!mg__remote_token_ready(r)) { /* the gateway's own token first (client credentials) */
        r->wait_token = 1;
        mg__remote_token_fetch(r);
        return;
    }
    if (r->rc->transport == MG_REMOTE_SSE)
        sse_connect(r);
    else
        send_discover(r);
}

static void resolved_cb(uv_getaddrinfo_t *g, int status, struct addrinfo *ai)
{
    remote_t *r = g->data;
    r->gai_active = 0;
    if (r->phase != PH_RESOLVING) { /* stopped meanwhile */
        uv_freeaddrinfo(ai);
        handle_closed_cb((uv_handle_t *)&r->timer);
        return;
    }
    handle_closed_cb((uv_handle_t *)&r->timer);
    const char *name = r->server->name;
    if (status != 0) {
        mg__remote_session_failed(
            r, fmt("upstream '%s': cannot resolve %s: %s", name, r->url.host, uv_strerror(status)),
            fmt("the '%s' server could not be reached; ask the gateway's operator", name), 0);
        return;
    }
    char addr[64], why[512];
    int rc = mg__egress_pick(ai, r->egress, addr, sizeof addr, why, sizeof why);
    uv_freeaddrinfo(ai);
    if (rc != 0) {
        mg__remote_session_failed(
            r, fmt("upstream '%s': %s: refused: %s", name, r->url.host, why),
            fmt("the '%s' server is not reachable from the gateway (its address is not allowed); ask "
                "the gateway's operator",
                name),
            rc == MG_EFORBIDDEN);
        return;
    }
    /* pinned: every connection of this session goes to this address (DNS rebinding cannot move it) */
    snprintf(r->pin, sizeof r->pin, strchr(addr, ':') ? "%s:%u:[%s]" : "%s:%u:%s", r->url.host, r->url.port,
             addr);
    mg__remote_begin_handshake(r);
}

static void start_session(remote_t *r)
{
    if (r->stopping)
        return;
    if (r->started > 1)
        r->restarts++;
    r->started++;
    r->phase = PH_RESOLVING;
    state_update(r);
    free(r->session_id);
    r->session_id = NULL;
    json_decref(r->init_result);
    r->init_result = NULL;
    r->modern = r->sse_mode = r->get_unsupported = 0;
    free(r->endpoint);
    r->endpoint = NULL;
    free(r->last_event_id);
    r->last_event_id = NULL;
    if (r->url.literal) {
        struct addrinfo hints = {0}, *ai = NULL;
        hints.ai_flags = AI_NUMERICHOST;
        char port[8];
        snprintf(port, sizeof port, "%u", r->url.port);
        if (getaddrinfo(r->url.host, port, &hints, &ai) != 0) {
            mg__remote_session_failed(r, fmt("upstream '%s': bad address %s", r->server->name, r->url.host),
                                      NULL, 1);
            return;
        }
        char addr[64], why[512];
        int rc = mg__egress_pick(ai, r->egress, addr, sizeof addr, why, sizeof why);
        freeaddrinfo(ai);
        if (rc != 0) {
            mg__remote_session_failed(
                r, fmt("upstream '%s': %s: refused: %s", r->server->name, r->shown, why),
                fmt("the '%s' server is not reachable from the gateway (its address is not allowed); "
                    "ask the gateway's operator",
                    r->server->name),
                1);
            return;
        }
        r->pin[0] = '\0';
        mg__remote_begin_handshake(r);
        return;
    }
    struct addrinfo hints = {0};
    hints.ai_socktype = SOCK_STREAM;
    r->gai.data = r;
    char port[8];
    snprintf(port, sizeof port, "%u", r->url.port);
    if (uv_getaddrinfo(r->loop, &r->gai, resolved_cb, r->url.host, port, &hints) != 0) {
        mg__remote_session_failed(r, fmt("upstream '%s': cannot resolve %s", r->server->name, r->url.host),
                                  NULL, 0);
        return;
    }
    r->gai_active = 1;
    r->nhandles++; /* the lookup counts as a handle until its callback */
}

/* ---- operations ---- */

static int op_request(mg_upstream_t *up, json_t *msg, uint64_t timeout_ms, mg_upstream_done_cb done_cb,
                      mg_upstream_related_cb related_cb, void *data, mg_upstream_req_t **out);

/* op_request() keeping the caller's token when this server exchanges it (the send is deferred to
 * the loop, so the request is complete before it goes). */
static int op_request_as(mg_upstream_t *up, const mg_upstream_caller_t *caller, json_t *msg,
                         uint64_t timeout_ms, mg_upstream_done_cb done_cb, mg_upstream_related_cb related_cb,
                         void *data, mg_upstream_req_t **out)
{
    remote_t *r = (remote_t *)up;
    mg_upstream_req_t *req = NULL;
    mg_upstream_caller_t plain;
    /* the trace context into params._meta (the traceparent header reads it there) */
    if (caller != NULL && caller->traceparent != NULL && mg__trace_merge_caller(msg, &caller, &plain) != 0) {
        json_decref(msg);
        return MG_ENOMEM;
    }
    int rc = op_request(up, msg, timeout_ms, done_cb, related_cb, data, &req);
    if (rc == 0 && caller != NULL && caller->subject_token != NULL && r->rc->auth != NULL &&
        r->rc->auth->exchange)
        ((rreq_t *)req)->subject = strdup(caller->subject_token); /* NULL on ENOMEM: refused as tokenless */
    if (rc == 0 && caller != NULL) { /* what a 2026-07-28 upstream may ask of this client, and how */
        rreq_t *q = (rreq_t *)req;
        q->raw_cb = caller->raw_cb; /* a plain result may go back as bytes (take_raw) */
        if (caller->max_ms != 0)
            q->max_ms = caller->max_ms; /* read when the request is sent (deferred to the loop) */
        q->translate = caller->translate_inputs;
        json_t *params = json_object_get(q->msg, "params"); /* the caller's object (a shallow copy) */
        if (caller->params_text != NULL && params != NULL && params == caller->params_of &&
            (q->params_text = malloc(caller->params_len + 1)) != NULL) { /* lent for this call only */
            memcpy(q->params_text, caller->params_text, caller->params_len);
            q->params_text[caller->params_len] = '\0';
            q->params_len = caller->params_len;
            q->params_of = params;
        }
        if (caller->log_level != NULL)
            q->log_level = strdup(caller->log_level); /* NULL on ENOMEM: no logs asked */
        if (json_is_object(caller->client_capabilities)) {
            static const char *const kinds[] = {"sampling", "elicitation", "roots"};
            q->caps = json_object();
            for (size_t i = 0; q->caps != NULL && i < 3; i++) {
                json_t *v = json_object_get(caller->client_capabilities, kinds[i]);
                if (v != NULL)
                    json_object_set_new(q->caps, kinds[i], mg_json_deep_copy(v));
            }
        }
    }
    if (out != NULL)
        *out = req;
    return rc;
}

static void op_start(mg_upstream_t *up)
{
    remote_t *r = (remote_t *)up;
    if (r->started || r->stopping)
        return;
    if (r->phase == PH_FAILED) /* a tenant without a credential: stays refused */
        return;
    start_session(r);
}

static int op_request(mg_upstream_t *up, json_t *msg, uint64_t timeout_ms, mg_upstream_done_cb done_cb,
                      mg_upstream_related_cb related_cb, void *data, mg_upstream_req_t **out)
{
    remote_t *r = (remote_t *)up;
    const char *method = json_string_value(json_object_get(msg, "method"));
    if (r->stopping) {
        json_decref(msg);
        return MG_ECLOSED;
    }
    if (method == NULL || done_cb == NULL) {
        json_decref(msg);
        return MG_EINVAL;
    }
    if (r->nqueued + r->ninflight >= r->limits->max_inflight_per_upstream || r->nqueued >= QUEUE_MAX) {
        json_decref(msg);
        return MG_EBUSY;
    }
    rreq_t *q = calloc(1, sizeof *q);
    json_t *m = msg ? mg_json_copy(msg) : NULL; /* the caller may still hold objects inside */
    json_decref(msg);
    if (q == NULL || m == NULL) {
        free(q);
        json_decref(m);
        return MG_ENOMEM;
    }
    json_object_del(m, "id");
    q->up = up;
    q->r = r;
    q->msg = m;
    q->safe = safe_method(method);
    q->done_cb = done_cb;
    q->related_cb = related_cb;
    q->data = data;
    q->timeout_ms = timeout_ms                      ? timeout_ms
                    : r->server->request_timeout_ms ? r->server->request_timeout_ms
                                                    : r->limits->request_timeout_ms;
    q->start_ms = uv_now(r->loop);
    q->max_ms = r->limits->max_request_ms;
    uv_timer_init(r->loop, &q->timer);
    q->timer.data = q;
    r->nhandles++;
    list_add(&r->queue, q);
    r->nqueued++;
    if (out != NULL)
        *out = (mg_upstream_req_t *)q;
    if (r->phase == PH_READY) {
        q->retry_pending = 1; /* sent from the loop: done_cb never runs inside this call */
        uv_timer_start(&q->timer, deferred_cb, 0, 0);
    } else if (r->phase == PH_BACKOFF || r->phase == PH_FAILED) {
        req_finish_later(q, MG_EUPSTREAMDOWN, NULL,
                         r->client_error ? r->client_error : "the server is not available; retry shortly");
    } else {
        uv_timer_start(&q->timer, req_timeout_cb, q->timeout_ms, 0);
    }
    return 0;
}

static int op_send(mg_upstream_t *up, mg_upstream_origin_t origin, const json_t *msg)
{
    remote_t *r = (remote_t *)up;
    if (r->modern && mg__remote_mrtr_answer(r, msg))
        return 0;
    if (origin.generation != r->generation || r->phase != PH_READY)
        return MG_ECLOSED;
    return post_message(r, msg);
}

static void op_broadcast(mg_upstream_t *up, const json_t *msg)
{
    remote_t *r = (remote_t *)up;
    if (r->phase == PH_READY)
        post_message(r, msg);
}

static void maybe_stopped(remote_t *r);

/* One of r's handles closed (its timers; a request's timer and the address lookup count here too). */
static void handle_closed_cb(uv_handle_t *h)
{
    remote_t *r = h->data;
    r->nhandles--;
    maybe_stopped(r);
}

static void maybe_stopped(remote_t *r)
{
    if (!r->stopping || r->nhandles > 0 || r->delete_pending || r->stopped_called)
        return;
    r->stopped_called = 1;
    if (r->stopped_cb != NULL)
        r->stopped_cb((mg_upstream_t *)r, r->stopped_data);
}

static void delete_done_cb(void *data, int err, int status, const char *why)
{
    remote_t *r = data;
    (void)err;
    (void)status;
    (void)why;
    r->delete_pending = 0;
    mg_http_client_free(r->http); /* from its own callback: allowed (client.h) */
    r->http = NULL;
    mg_h1_client_free(r->h1);
    r->h1 = NULL;
    uv_close((uv_handle_t *)&r->timer, handle_closed_cb);
    uv_close((uv_handle_t *)&r->get_timer, handle_closed_cb);
}

static void op_stop(mg_upstream_t *up, uint64_t grace_ms, void (*stopped_cb)(mg_upstream_t *, void *),
                    void *data)
{
    remote_t *r = (remote_t *)up;
    if (r->stopping)
        return;
    r->stopping = 1;
    r->stopped_cb = stopped_cb;
    r->stopped_data = data;
    while (r->inflight != NULL) {
        rreq_t *q = r->inflight;
        send_cancelled(r, q->id, "the gateway is stopping");
        mg__remote_req_finish(q, MG_ESHUTDOWN, NULL, NULL);
    }
    while (r->queue != NULL)
        mg__remote_req_finish(r->queue, MG_ESHUTDOWN, NULL, NULL);
    xchg_free(r->init_x);
    r->init_x = NULL;
    xchg_free(r->get_x);
    r->get_x = NULL;
    mg__egress_cancel(r->token_call);
    r->token_call = NULL;
    for (te_entry_t *e = r->te; e != NULL; e = e->next) {
        mg__egress_cancel(e->call);
        e->call = NULL;
    }
    uv_timer_stop(&r->timer);
    uv_timer_stop(&r->get_timer);
    int had_session = r->session_id != NULL && r->phase == PH_READY;
    r->phase = PH_STOPPED;
    state_update(r);
    if (r->gai_active)
        uv_cancel((uv_req_t *)&r->gai); /* its callback still runs (UV_ECANCELED) */
    if (had_session && r->http != NULL) {
        const char *h[2 * MAX_HDRS];
        mg_http_req_t hr;
        fill_req(r, &hr, h, 1,
                 (long)(grace_ms && grace_ms < DELETE_TIMEOUT_MS ? grace_ms : DELETE_TIMEOUT_MS));
        hr.method = "DELETE";
        hr.headers = h + 2; /* no Accept */
        hr.nheaders--;
        if (mg_http_request(r->http, &hr, NULL, NULL, delete_done_cb, r, NULL) == 0) {
            r->delete_pending = 1;
            return;
        }
    }
    r->delete_pending = 1;
    delete_done_cb(r, 0, 0, NULL); /* stopped_cb runs from the timers' close callbacks */
}

static void op_free(mg_upstream_t *up)
{
    remote_t *r = (remote_t *)up;
    mg_h1_client_free(r->h1); /* NULL once stopped (delete_done_cb) */
    r->h1 = NULL;
    json_decref(r->subs);
    json_decref(r->init_result);
    free(r->session_id);
    free(r->protocol);
    free(r->era);
    free(r->last_error);
    free(r->client_error);
    free(r->last_event_id);
    free(r->endpoint);
    free(r->shown);
    mg__remote_te_free_all(r);
    free(r->auth_hdr);
    free(r->token_endpoint);
    free(r->tok_buf);
    free(r->tenant);
    free(r->client_name);
    free(r->client_version);
    free(r->hdrs);
    free(r);
}

static void op_status(const mg_upstream_t *up, mg_upstream_status_t *out)
{
    const remote_t *r = (const remote_t *)up;
    memset(out, 0, sizeof *out);
    out->name = r->server->name;
    out->state = r->state;
    out->init_result = r->init_result;
    out->last_error = r->last_error;
    out->client_error = r->client_error;
    out->restarts = r->restarts;
    out->inflight = r->nqueued + r->ninflight;
    out->ready = r->phase == PH_READY;
    out->era = r->era;
    out->http = r->http_version;
    out->breaker = r->phase == PH_FAILED ? "refused" : r->breaker_open ? "open" : "closed";
}

static size_t op_pids(const mg_upstream_t *up, int *pids, size_t n)
{
    (void)up;
    (void)pids;
    (void)n;
    return 0;
}

static void op_cancel(mg_upstream_req_t *req, const char *reason)
{
    rreq_t *q = (rreq_t *)req;
    if (q->done)
        return;
    if (q->sent)
        send_cancelled(q->r, q->id, reason);
    mg__remote_req_finish(q, MG_ECANCELLED, NULL, reason);
}

static void op_touch(mg_upstream_req_t *req)
{
    rreq_t *q = (rreq_t *)req;
    if (!q->done && q->sent && uv_now(q->r->loop) - q->start_ms < q->max_ms)
        uv_timer_again(&q->timer);
}

static void op_set_waiting(mg_upstream_req_t *req, int waiting)
{
    ((rreq_t *)req)->waiting = waiting;
}

static int op_origin(const mg_upstream_req_t *req, mg_upstream_origin_t *out)
{
    const rreq_t *q = (const rreq_t *)req;
    if (!q->sent)
        return MG_ENOTFOUND;
    out->child = 0;
    out->generation = q->generation;
    return 0;
}

const mg_upstream_ops_t mg__remote_ops = {
    "remote", op_start,  op_request, op_send,        op_broadcast, op_stop,       op_free, op_status,
    op_pids,  op_cancel, op_touch,   op_set_waiting, op_origin,    op_request_as, NULL, /* call:
                                                                                           mg_upstream_call
                                                                                           builds the message
                                                                                           (a remote request
                                                                                           is always queued)
                                                                                         */
};

/* The header vector: static headers, then the tenant's (a tenant's header replaces a static one of
 * the same name). */
static int build_headers(remote_t *r)
{
    const mg_remote_config_t *rc = r->rc;
    const mg_remote_tenant_t *t = mg_remote_config_tenant(rc, r->tenant);
    size_t n = rc->nheaders + (t ? t->nheaders : 0);
    if (n > MAX_HDRS - 6)
        n = MAX_HDRS - 6;
    r->hdrs = calloc(2 * n + 2, sizeof *r->hdrs);
    if (r->hdrs == NULL)
        return MG_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < rc->nheaders && k < n; i++) {
        int replaced = 0;
        for (size_t j = 0; t && j < t->nheaders; j++)
            replaced |= strcasecmp(t->headers[j].key, rc->headers[i].key) == 0;
        if (replaced)
            continue;
        r->hdrs[2 * k] = rc->headers[i].key;
        r->hdrs[2 * k + 1] = rc->headers[i].value;
        k++;
    }
    for (size_t j = 0; t && j < t->nheaders && k < n; j++, k++) {
        r->hdrs[2 * k] = t->headers[j].key;
        r->hdrs[2 * k + 1] = t->headers[j].value;
    }
    r->nhdrs = k;
    return 0;
}

int mg__remote_new(uv_loop_t *loop, const struct mg_upstream_opts *opts,
                   const struct mg_upstream_hooks *hooks, void *hooks_data, struct mg_upstream **out)
{
    const mg_server_config_t *s = opts->server;
    if (s == NULL || s->remote == NULL || s->remote->url == NULL || opts->limits == NULL)
        return MG_EINVAL;
    remote_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return MG_ENOMEM;
    r->ops = &mg__remote_ops;
    r->loop = loop;
    r->server = s;
    r->rc = s->remote;
    r->limits = opts->limits;
    r->egress = opts->egress;
    r->exclusive = opts->exclusive;
    r->tenant = opts->tenant ? strdup(opts->tenant) : NULL;
    r->client_name = strdup(opts->client_name ? opts->client_name : "mcpgate");
    r->client_version = strdup(opts->client_version ? opts->client_version : "0");
    r->next_id = 1;
    if (hooks != NULL)
        r->hooks = *hooks;
    r->hooks_data = hooks_data;
    mg_log_limit_init(&r->lim, 20, 10000);
    if (r->client_name == NULL || r->client_version == NULL || (opts->tenant && r->tenant == NULL) ||
        build_headers(r) != 0) {
        op_free((mg_upstream_t *)r);
        return MG_ENOMEM;
    }
    if (r->rc->auth != NULL && r->rc->auth->token_url != NULL &&
        (r->token_endpoint = strdup(r->rc->auth->token_url)) == NULL) {
        op_free((mg_upstream_t *)r);
        return MG_ENOMEM;
    }
    if (mg__url_parse(r->rc->url, &r->url) != 0) {
        op_free((mg_upstream_t *)r);
        return MG_EINVAL;
    }
    /* The URL as messages, logs and /status show it: without its query and fragment, where a
     * credential may sit (a key in the query string is the server's, never for the log). */
    size_t shown_len = strcspn(r->rc->url, "?#");
    if ((r->shown = malloc(shown_len + 5)) == NULL) {
        op_free((mg_upstream_t *)r);
        return MG_ENOMEM;
    }
    memcpy(r->shown, r->rc->url, shown_len);
    if (r->rc->url[shown_len] != '\0')
        memcpy(r->shown + shown_len, "?...", 5);
    else
        r->shown[shown_len] = '\0';
    int rc = mg_http_client_new(loop, &r->http);
    if (rc == 0)
        rc = mg_h1_client_new(loop, &r->h1);
    if (rc != 0) {
        op_free((mg_upstream_t *)r);
        return rc;
    }
    uv_timer_init(loop, &r->timer);
    uv_timer_init(loop, &r->get_timer);
    r->timer.data = r;
    r->get_timer.data = r;
    r->nhandles = 2;
    r->state = MG_UPSTREAM_STARTING;
    if (r->rc->ntenants > 0 && mg_remote_config_tenant(r->rc, r->tenant) == NULL) {
        /* a tenant without a credential is refused, never served with a default */
        r->phase = PH_FAILED;
        r->state = MG_UPSTREAM_BACKOFF;
        r->last_error =
            fmt("upstream '%s': tenant '%s' has no entry in tenantCredentials: its calls are refused",
                s->name, r->tenant ? r->tenant : "(none)");
        r->client_error =
            fmt("the '%s' server has no credential for your tenant; ask the gateway's operator", s->name);
        mg_log_json(MG_LOG_WARN, "remote upstream refused for tenant",
                    json_pack("{s:s,s:s}", "upstream", s->name, "tenant", r->tenant ? r->tenant : ""));
    }
    *out = (mg_upstream_t *)r;
    return 0;
}
