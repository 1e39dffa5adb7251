/*
 * reply.c - how the gateway answers an HTTP request on /mcp: header lookup, Accept matching, JSON
 * and empty bodies with standard reason phrases, HTTP errors with a JSON-RPC body, the one log line
 * per request, and the exchange object through which calls answer (JSON, or SSE once a related
 * message arrives first). Used by the pipeline's phases (pipeline.c) and by the eras' handlers.
 * Read next: gateway_int.h ("reply.c" section), pipeline.c.
 */
#include "../common/err.h"
#include "../common/log.h"
#include "../common/mem.h"
#include "../http/status.h"
#include "../jsonrpc/jsonrpc.h"
#include "../jsonrpc/rpcraw.h"
#include "../policy/hooks.h"
#include "gateway_int.h"

#define H2O_USE_LIBUV 1
#include <arpa/inet.h>
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- small HTTP helpers ---- */

h2o_iovec_t mg__req_header(h2o_req_t *req, const char *name, int *dup)
{
    size_t nlen = strlen(name);
    ssize_t i = h2o_find_header_by_str(&req->headers, name, nlen, -1);
    if (dup != NULL)
        *dup = i >= 0 && h2o_find_header_by_str(&req->headers, name, nlen, i) >= 0;
    if (i < 0)
        return h2o_iovec_init(NULL, 0);
    return req->headers.entries[i].value;
}

void mg__http_send_body(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len,
                        const char **hdrs, size_t nhdrs)
{
    static h2o_generator_t gen = {NULL, NULL};
    req->res.status = status;
    req->res.reason = mg_http_reason(status);
    if (ctype != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
    for (size_t i = 0; i < nhdrs; i++)
        h2o_add_header_by_str(&req->pool, &req->res.headers, hdrs[2 * i], strlen(hdrs[2 * i]), 0, NULL,
                              hdrs[2 * i + 1], strlen(hdrs[2 * i + 1]));
    h2o_iovec_t b = h2o_strdup(&req->pool, body ? body : "", len);
    req->res.content_length = len;
    h2o_start_response(req, &gen);
    h2o_send(req, &b, 1, H2O_SEND_STATE_FINAL);
}

void mg__http_send_json(h2o_req_t *req, int status, const json_t *msg, const char **hdrs, size_t nhdrs)
{
    size_t len = 0;
    char *s = mg_rpc_dump(msg, &len);
    if (s == NULL) {
        mg__http_send_body(req, 500, "text/plain", "out of memory\n", 14, NULL, 0);
        return;
    }
    mg__http_send_body(req, status, "application/json", s, len, hdrs, nhdrs);
    free(s);
}

void mg__http_log(mg_gateway_t *gw, const char *http_method, const char *method, const char *upstream,
                  const char *session, int status, uint64_t start_ms)
{
    if (!mg_log_enabled(MG_LOG_INFO))
        return;
    /* Once per request: the line mg_log_json() would write, without building a jansson tree. */
    mg_log_request(http_method, method ? method : "", status, (long long)(mg_gateway_now_ms() - start_ms),
                   upstream != NULL && upstream[0] != '\0' ? upstream : NULL, session);
}

/* The one way an HTTP error with a JSON-RPC body is answered (hdrs: nhdrs name/value pairs to add)
 * and logged (http_method: as logged; NULL = the phase that refused logged it already). */
static void answer_error_with(mg_gateway_t *gw, h2o_req_t *req, int err, const char *message, json_t *data,
                              const json_t *id, const char **hdrs, size_t nhdrs, const char *http_method,
                              uint64_t start_ms)
{
    int status = mg_err_http_status(err);
    json_t *e = mg_rpc_error(id, mg_err_jsonrpc_code(err), message, data);
    mg__http_send_json(req, status, e, hdrs, nhdrs);
    json_decref(e);
    if (http_method != NULL)
        mg__http_log(gw, http_method, NULL, NULL, NULL, status, start_ms);
}

static void answer_error(mg_gateway_t *gw, h2o_req_t *req, int err, const char *message, json_t *data,
                         const json_t *id, const char *http_method, uint64_t start_ms)
{
    answer_error_with(gw, req, err, message, data, id, NULL, 0, http_method, start_ms);
}

void mg__http_refuse(mg_gateway_t *gw, h2o_req_t *req, const mg_auth_decision_t *d)
{
    char challenge[2048], retry[24];
    const char *hdrs[6];
    size_t n = 0;
    if (d->challenge) {
        mg_auth_challenge(d, challenge, sizeof challenge);
        hdrs[2 * n] = "www-authenticate";
        hdrs[2 * n++ + 1] = challenge;
    }
    if (d->retry_after_s > 0) {
        snprintf(retry, sizeof retry, "%u", d->retry_after_s);
        hdrs[2 * n] = "retry-after";
        hdrs[2 * n++ + 1] = retry;
    }
    hdrs[2 * n] = "cache-control";
    hdrs[2 * n++ + 1] = "no-store";
    json_t *data = d->oauth_error != NULL ? json_pack("{s:s}", "error", d->oauth_error) : NULL;
    /* auth logged the refusal ("authentication failed", without the token) */
    answer_error_with(gw, req, d->err, d->message, data, NULL, hdrs, n, NULL, 0);
}

void mg__http_fail(mg_gateway_t *gw, h2o_req_t *req, int err, const char *message, uint64_t start_ms)
{
    char m[16];
    snprintf(m, sizeof m, "%.*s", (int)(req->method.len < 15 ? req->method.len : 15), req->method.base);
    answer_error(gw, req, err, message, NULL, NULL, m, start_ms);
}

/* The media range p[0..n) admits type: the type itself, its major type with "*", or any type. */
static int range_admits(const char *p, size_t n, const char *type)
{
    const char *slash = strchr(type, '/');
    size_t major = (size_t)(slash - type);
    return (n == strlen(type) && strncasecmp(p, type, n) == 0) || (n == 3 && strncmp(p, "*/*", 3) == 0) ||
           (n == major + 2 && strncasecmp(p, type, major) == 0 && p[major] == '/' && p[major + 1] == '*');
}

unsigned mg__accepts_two(h2o_iovec_t accept, const char *a, const char *b)
{
    if (accept.base == NULL)
        return 0;
    unsigned found = 0;
    const char *p = accept.base, *end = accept.base + accept.len;
    while (p < end && found != 3) {
        while (p < end && (*p == ' ' || *p == ','))
            p++;
        const char *q = p;
        while (q < end && *q != ',' && *q != ';')
            q++;
        size_t n = (size_t)(q - p);
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (!(found & 1) && range_admits(p, n, a))
            found |= 1;
        if (!(found & 2) && range_admits(p, n, b))
            found |= 2;
        while (q < end && *q != ',')
            q++;
        p = q;
    }
    return found;
}

int mg__accepts(h2o_iovec_t accept, const char *type)
{
    return mg__accepts_two(accept, type, type) != 0;
}

void mg__http_add_header(h2o_req_t *req, const char *name, const char *value)
{
    /* h2o keeps both pointers: name and value are copied into the request's pool */
    h2o_iovec_t n = h2o_strdup(&req->pool, name, SIZE_MAX);
    h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 0, NULL,
                          h2o_strdup(&req->pool, value, SIZE_MAX).base, strlen(value));
}

void mg__http_add_headers(h2o_req_t *req, const mg_policy_headers_t *hs)
{
    for (size_t i = 0; i < hs->n; i++)
        mg__http_add_header(req, hs->h[i][0], hs->h[i][1]);
}

void mg__req_peer(h2o_req_t *req, char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    if (req == NULL || req->conn == NULL || req->conn->callbacks == NULL ||
        req->conn->callbacks->get_peername == NULL)
        return;
    struct sockaddr_storage ss;
    socklen_t n = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (n == 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)cap);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)cap);
}

void mg__http_send_empty(h2o_req_t *req, int status, const char *ctype)
{
    mg__http_send_body(req, status, ctype, "", 0, NULL, 0);
}

void mg__http_error(mg_gateway_t *gw, h2o_req_t *req, int err, const char *message, json_t *data,
                    const json_t *id, uint64_t start_ms)
{
    answer_error(gw, req, err, message, data, id, "POST", start_ms);
}

/* ---- exchange ---- */

typedef struct req_hook {
    mg_exchange_t *x;
} req_hook_t;

static void exchange_free(mg_exchange_t *x)
{
    json_decref(x->results);
    json_decref(x->param_hdrs);
    free(x->trace_parent);
    mg_principal_unref(x->principal);
    if (x->s != NULL)
        mg__session_unref(x->s);
    free(x);
}

void mg__exchange_ref(mg_exchange_t *x)
{
    x->refs++;
}

void mg__exchange_unref(mg_exchange_t *x)
{
    if (--x->refs == 0)
        exchange_free(x);
}

static void req_disposed(void *p)
{
    req_hook_t *h = p;
    h->x->req = NULL;
    /* 2026-07-28: the client closing the response stream cancels the request; so does a replica
     * that forwarded a request here (cluster_internal.c) going away. */
    if ((h->x->modern || h->x->relay != NULL) && h->x->pending > 0)
        mg__dispatch_exchange_gone(h->x);
    mg__exchange_unref(h->x);
}

mg_exchange_t *mg__exchange_new(mg_gateway_t *gw, h2o_req_t *req, mg_session_t *s, uint64_t start_ms)
{
    mg_exchange_t *x = mg_zalloc(sizeof(*x));
    if (x == NULL)
        return NULL;
    x->refs = 1; /* held by the h2o request until it is disposed */
    x->gw = gw;
    x->req = req;
    x->s = s;
    x->start_ms = start_ms;
    x->principal = mg_principal_ref(mg_auth_principal_of(gw->auth, req));
    if (gw->trace_ambient != NULL && (x->trace_parent = malloc(sizeof *x->trace_parent)) != NULL)
        mg_span_context(gw->trace_ambient, x->trace_parent); /* the HTTP request's span (pipeline.c) */
    mg__session_ref(s);
    req_hook_t *h = h2o_mem_alloc_shared(&req->pool, sizeof(*h), req_disposed);
    h->x = x;
    return x;
}

static void exchange_log_done(mg_exchange_t *x, int status)
{
    if (x->logged)
        return;
    x->logged = 1;
    mg__http_log(x->gw, "POST", x->method, x->upstream, x->s ? x->s->hash : NULL, status, x->start_ms);
}

int mg__exchange_stream(mg_exchange_t *x)
{
    if (x->stream != NULL)
        return 1;
    if (x->req == NULL || !x->accept_sse || x->s == NULL || x->s->closing)
        return 0;
    mg_stream_t *st = mg__stream_new(x->s, 0);
    if (st == NULL)
        return 0;
    st->pending = x->pending;
    mg_sse_conn_t *c = mg_sse_conn_start(x->req, NULL, 0, mg__stream_conn_gone_cb, st);
    if (c == NULL)
        return 0;
    mg__stream_attach(st, c);
    x->stream = st;
    mg__stream_prime(st);
    /* Batch responses already collected go out first, in order. */
    size_t i;
    json_t *r;
    json_array_foreach(x->results, i, r) mg__stream_push(st, r);
    json_array_clear(x->results);
    return 1;
}

void mg__exchange_related(mg_exchange_t *x, const json_t *msg)
{
    if (x->relay != NULL) { /* forwarded here by another replica: back to it */
        mg__cluster_relay(x, msg, 0);
        return;
    }
    if (x->stream == NULL && !mg__exchange_stream(x)) {
        mg_log_json(MG_LOG_DEBUG, "related message dropped: client cannot receive it on this request",
                    json_pack("{s:s}", "method", mg_rpc_method(msg) ? mg_rpc_method(msg) : ""));
        return;
    }
    mg__stream_push(x->stream, msg);
}

void mg__exchange_respond(mg_exchange_t *x, const json_t *msg)
{
    if (x->pending > 0)
        x->pending--;
    if (x->relay != NULL) {
        mg__cluster_relay(x, msg, 1);
        if (x->pending == 0)
            exchange_log_done(x, 200);
        return;
    }
    if (x->stream != NULL) {
        mg__stream_push(x->stream, msg);
        mg__stream_response_done(x->stream);
        if (x->pending == 0)
            exchange_log_done(x, 200);
        return;
    }
    if (x->batch) {
        json_array_append(x->results, (json_t *)msg);
        if (x->pending > 0)
            return;
        if (x->req != NULL)
            mg__http_send_json(x->req, 200, x->results, NULL, 0);
    } else if (x->req != NULL) {
        char ra[16] = "";
        if (x->retry_after > 0) /* the header is sent only then */
            snprintf(ra, sizeof ra, "%d", x->retry_after);
        const char *hdrs[] = {"retry-after", ra};
        mg__http_send_json(x->req, x->status ? x->status : 200, msg, hdrs, x->retry_after > 0 ? 1 : 0);
    }
    exchange_log_done(x, x->req != NULL ? (x->status ? x->status : 200) : 499);
}

int mg__exchange_plain(const mg_exchange_t *x)
{
    return x->relay == NULL && x->stream == NULL && !x->batch && x->req != NULL;
}

void mg__exchange_respond_raw(mg_exchange_t *x, const mg_rpc_raw_t *raw, const json_t *id)
{
    if (x->pending > 0)
        x->pending--;
    h2o_req_t *req = x->req;
    char ibuf[64];
    mg_jbuf_t ib; /* the client's id as text: small, on the stack unless it is a long string */
    mg_jbuf_init(&ib, ibuf, sizeof ibuf, raw->len + 64u * 1024);
    if (id != NULL)
        mg_jbuf_put_json(&ib, id);
    else
        mg_jbuf_put(&ib, "null", 4);
    int status = x->status ? x->status : 200;
    if (ib.err != 0) {
        mg__http_send_body(req, 500, "text/plain", "out of memory\n", 14, NULL, 0);
        status = 500;
    } else {
        /* built in the request's pool, where h2o would copy it anyway */
        size_t after = raw->id_off + raw->id_len, len = raw->id_off + ib.len + (raw->len - after);
        char *body = h2o_mem_alloc_pool(&req->pool, len);
        memcpy(body, raw->p, raw->id_off);
        memcpy(body + raw->id_off, ib.p, ib.len);
        memcpy(body + raw->id_off + ib.len, raw->p + after, raw->len - after);
        static h2o_generator_t gen = {NULL, NULL};
        req->res.status = status;
        req->res.reason = mg_http_reason(status);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("application/json"));
        if (x->retry_after > 0) {
            char ra[16];
            snprintf(ra, sizeof ra, "%d", x->retry_after);
            h2o_iovec_t v = h2o_strdup(&req->pool, ra, strlen(ra));
            h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("retry-after"), 0, NULL, v.base,
                                  v.len);
        }
        h2o_iovec_t b = h2o_iovec_init(body, len);
        req->res.content_length = len;
        h2o_start_response(req, &gen);
        h2o_send(req, &b, 1, H2O_SEND_STATE_FINAL);
    }
    mg_jbuf_dispose(&ib);
    exchange_log_done(x, status);
}

/*
 * A request that ends without an answer: the client cancelled it (notifications/cancelled; the
 * 2025-11-25 cancellation rules say the receiver SHOULD NOT respond) or went away. An SSE answer
 * just ends (its stream is finished: a resumption gets 204). A POST still waiting for JSON gets a
 * 200 text/event-stream with no events: the transport lets a request be answered with an SSE stream,
 * and an empty one without an event id tells clients there is nothing to resume (a 202 is for
 * notifications and responses only). A batch (2025-03-26) sends what the others answered.
 */
void mg__exchange_abandon(mg_exchange_t *x)
{
    if (x->pending > 0)
        x->pending--;
    if (x->stream != NULL) {
        mg__stream_response_done(x->stream);
        if (x->pending == 0)
            exchange_log_done(x, 200);
        return;
    }
    if (x->pending > 0)
        return;
    if (x->req != NULL) {
        if (x->batch && json_array_size(x->results) > 0)
            mg__http_send_json(x->req, 200, x->results, NULL, 0);
        else
            mg__http_send_body(x->req, 200, "text/event-stream", "", 0, NULL, 0);
    }
    exchange_log_done(x, x->req != NULL ? 200 : 499);
}
