/*
 * legacy.c - HTTP semantics of the 2025 session era on /mcp (revisions 2025-03-26, 2025-06-18,
 * 2025-11-25), and the exchange object through which calls answer.
 *
 * Phases of one request, in order (each failure answers at once and stops):
 *   Host / Origin (403) -> CORS (preflight answered) -> method (405) -> shutdown (503)
 *   -> Accept (406) / Content-Type (415) -> body parse and depth (400 -32700/-32600)
 *   -> initialize creates a session, or Mcp-Session-Id required (400) and known (404)
 *   -> MCP-Protocol-Version (400)
 *   -> notifications/responses only: 202 -> requests: dispatch, answer JSON, switching to SSE when
 *   a related message arrives before the response.
 * Read next: gateway/dispatch.c (what happens to each request).
 */
#include "../common/err.h"
#include "../common/log.h"
#include "../http/status.h"
#include "../common/str.h"
#include "../gateway/gateway_int.h"
#include "../toolsearch/runtime.h"
#include "../http/origin.h"
#include "../policy/hooks.h"
#include "../jsonrpc/jsonrpc.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- small HTTP helpers ---- */

static h2o_iovec_t header(h2o_req_t *req, const char *name, int *dup)
{
    size_t nlen = strlen(name);
    ssize_t i = h2o_find_header_by_str(&req->headers, name, nlen, -1);
    if (dup != NULL)
        *dup = i >= 0 && h2o_find_header_by_str(&req->headers, name, nlen, i) >= 0;
    if (i < 0)
        return h2o_iovec_init(NULL, 0);
    return req->headers.entries[i].value;
}

static void send_body(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len,
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

static void send_json(h2o_req_t *req, int status, const json_t *msg, const char **hdrs, size_t nhdrs)
{
    size_t len = 0;
    char *s = mg_rpc_dump(msg, &len);
    if (s == NULL) {
        send_body(req, 500, "text/plain", "out of memory\n", 14, NULL, 0);
        return;
    }
    send_body(req, status, "application/json", s, len, hdrs, nhdrs);
    free(s);
}

static void log_request(mg_gateway_t *gw, const char *http_method, const char *method, const char *upstream,
                        const char *session, int status, uint64_t start_ms)
{
    if (!mg_log_enabled(MG_LOG_INFO))
        return;
    /* Once per request: the line mg_log_json() would write, without building a jansson tree. */
    mg_log_field_t f[6] = {{"http", http_method, 0},
                           {"method", method ? method : "", 0},
                           {"status", NULL, status},
                           {"latency_ms", NULL, (long long)(mg_gateway_now_ms() - start_ms)}};
    size_t n = 4;
    if (upstream != NULL && upstream[0] != '\0')
        f[n++] = (mg_log_field_t){"upstream", upstream, 0};
    if (session != NULL)
        f[n++] = (mg_log_field_t){"session", session, 0};
    mg_log_fields(MG_LOG_INFO, "request", f, n);
}

/* Answers with an HTTP error carrying an id-less JSON-RPC error body: err (MG_E*) names both the
 * status and the JSON-RPC code (common/err.h). */
static void http_error(mg_gateway_t *gw, h2o_req_t *req, int err, const char *message, uint64_t start_ms)
{
    int status = mg_err_http_status(err);
    json_t *e = mg_rpc_error(NULL, mg_err_jsonrpc_code(err), message, NULL);
    send_json(req, status, e, NULL, 0);
    json_decref(e);
    char m[16];
    snprintf(m, sizeof m, "%.*s", (int)(req->method.len < 15 ? req->method.len : 15), req->method.base);
    log_request(gw, m, NULL, NULL, NULL, status, start_ms);
}

/* Parses an SSE event id "<stream>-<seq>" (decimal, as session.c writes them) strictly: no sign, no
 * space, no overflow. sscanf("%u-%llu") took "1--1" and wrapped "4294967297-1" onto stream 1. */
static int parse_event_id(const char *p, size_t n, uint32_t *stream, uint64_t *seq)
{
    uint64_t v[2] = {0, 0};
    size_t part = 0, digits = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '-' && part == 0 && digits > 0) {
            part = 1;
            digits = 0;
            continue;
        }
        if (p[i] < '0' || p[i] > '9' || digits == 19)
            return 0;
        v[part] = v[part] * 10 + (uint64_t)(p[i] - '0');
        digits++;
    }
    if (part != 1 || digits == 0 || v[0] > UINT32_MAX)
        return 0;
    *stream = (uint32_t)v[0];
    *seq = v[1];
    return 1;
}

static int accepts(h2o_iovec_t accept, const char *type)
{
    if (accept.base == NULL)
        return 0;
    const char *slash = strchr(type, '/');
    size_t major = (size_t)(slash - type);
    const char *p = accept.base, *end = accept.base + accept.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ','))
            p++;
        const char *q = p;
        while (q < end && *q != ',' && *q != ';')
            q++;
        size_t n = (size_t)(q - p);
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if ((n == strlen(type) && strncasecmp(p, type, n) == 0) || (n == 3 && strncmp(p, "*/*", 3) == 0) ||
            (n == major + 2 && strncasecmp(p, type, major) == 0 && p[major] == '/' && p[major + 1] == '*'))
            return 1;
        while (q < end && *q != ',')
            q++;
        p = q;
    }
    return 0;
}

int mg_version_rank(const char *v)
{
    if (v == NULL)
        return 0;
    if (strcmp(v, "2025-03-26") == 0)
        return MG_VERSION_2025_03_26;
    if (strcmp(v, "2025-06-18") == 0)
        return MG_VERSION_2025_06_18;
    if (strcmp(v, "2025-11-25") == 0)
        return MG_VERSION_2025_11_25;
    return 0;
}

/* ---- exchange ---- */

typedef struct req_hook {
    mg_exchange_t *x;
} req_hook_t;

static void exchange_free(mg_exchange_t *x)
{
    json_decref(x->results);
    json_decref(x->param_hdrs);
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
     * that forwarded a request here (cluster.c) going away. */
    if ((h->x->modern || h->x->relay != NULL) && h->x->pending > 0)
        mg__dispatch_exchange_gone(h->x);
    mg__exchange_unref(h->x);
}

static mg_exchange_t *exchange_new(mg_gateway_t *gw, h2o_req_t *req, mg_session_t *s, uint64_t start_ms)
{
    mg_exchange_t *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->refs = 1; /* held by the h2o request until it is disposed */
    x->gw = gw;
    x->req = req;
    x->s = s;
    x->start_ms = start_ms;
    x->principal = mg_principal_ref(mg_auth_principal_of(gw->auth, req));
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
    log_request(x->gw, "POST", x->method, x->upstream, x->s ? x->s->hash : NULL, status, x->start_ms);
}

static int start_sse(mg_exchange_t *x)
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
    if (x->stream == NULL && !start_sse(x)) {
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
            send_json(x->req, 200, x->results, NULL, 0);
    } else if (x->req != NULL) {
        char ra[16] = "";
        if (x->retry_after > 0) /* the header is sent only then */
            snprintf(ra, sizeof ra, "%d", x->retry_after);
        const char *hdrs[] = {"retry-after", ra};
        send_json(x->req, x->status ? x->status : 200, msg, hdrs, x->retry_after > 0 ? 1 : 0);
    }
    exchange_log_done(x, x->req != NULL ? (x->status ? x->status : 200) : 499);
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
            send_json(x->req, 200, x->results, NULL, 0);
        else
            send_body(x->req, 200, "text/event-stream", "", 0, NULL, 0);
    }
    exchange_log_done(x, x->req != NULL ? 200 : 499);
}

/* ---- POST ---- */

static void handle_initialize(mg_gateway_t *gw, h2o_req_t *req, json_t *msg, uint64_t start_ms)
{
    json_t *params = mg_rpc_params(msg);
    const char *requested = json_string_value(json_object_get(params, "protocolVersion"));
    if (!json_is_object(params) || requested == NULL) {
        json_t *e = mg_rpc_error(mg_rpc_id(msg), mg_err_jsonrpc_code(MG_EPARAMS),
                                 "initialize needs params.protocolVersion (a string)", NULL);
        send_json(req, mg_err_http_status(MG_EPARAMS), e, NULL, 0);
        json_decref(e);
        log_request(gw, "POST", "initialize", NULL, NULL, 400, start_ms);
        return;
    }
    const char *version = mg_version_rank(requested) ? requested : MG_LATEST_VERSION;
    /* Tool profile (gateway.tools.profiles): Mcpgate-Profile header, else ?profile=NAME. */
    char profile[72], pwhy[400];
    int pdup = 0;
    h2o_iovec_t ph = header(req, "mcpgate-profile", &pdup);
    int has_q = req->query_at != SIZE_MAX;
    if (pdup ||
        mg_toolsearch_profile_select(gw, ph.base, ph.len, has_q ? req->path.base + req->query_at + 1 : NULL,
                                     has_q ? req->path.len - req->query_at - 1 : 0, profile, sizeof profile,
                                     pwhy, sizeof pwhy) != 0) {
        json_t *e = mg_rpc_error(mg_rpc_id(msg), mg_err_jsonrpc_code(MG_EPARAMS),
                                 pdup ? "Mcpgate-Profile header given twice" : pwhy, NULL);
        send_json(req, mg_err_http_status(MG_EPARAMS), e, NULL, 0);
        json_decref(e);
        log_request(gw, "POST", "initialize", NULL, NULL, 400, start_ms);
        return;
    }
    mg_session_t *s;
    json_t *caps = json_object_get(params, "capabilities");
    int r = mg__session_create(gw, version, json_is_object(caps) ? caps : NULL,
                               json_object_get(params, "clientInfo"), &s);
    if (r != 0) {
        const char *why = r == MG_EBUSY
                              ? "session limit reached (gateway.limits.maxSessions); retry later or raise it"
                              : "out of memory";
        json_t *e = mg_rpc_error(mg_rpc_id(msg), mg_err_jsonrpc_code(MG_EBUSY), why, NULL);
        const char *hdrs[] = {"retry-after", "5"};
        send_json(req, mg_err_http_status(MG_EBUSY), e, hdrs, 1);
        json_decref(e);
        log_request(gw, "POST", "initialize", NULL, NULL, 503, start_ms);
        return;
    }
    mg_toolsearch_session_open(s, profile); /* out of memory: the defaults apply */
    json_t *resp = mg_rpc_result(mg_rpc_id(msg), mg__initialize_result(gw, version));
    /* Bound to its creator: every later request must come from the same principal (auth). */
    s->principal = mg_principal_ref(mg_auth_principal_of(gw->auth, req));
    if (gw->cluster != NULL) {
        /* Shared store: answered once the record is written, so that any replica knows it. */
        mg__cluster_session_put(s, req, resp, profile, start_ms);
        json_decref(resp);
        return;
    }
    const char *hdrs[] = {"mcp-session-id", s->id};
    send_json(req, 200, resp, hdrs, 1);
    json_decref(resp);
    mg_log_json(
        MG_LOG_INFO, "session created",
        json_pack("{s:s,s:s,s:s,s:s}", "session", s->hash, "version", version, "requested", requested,
                  "client",
                  json_string_value(json_object_get(json_object_get(params, "clientInfo"), "name"))
                      ? json_string_value(json_object_get(json_object_get(params, "clientInfo"), "name"))
                      : ""));
    log_request(gw, "POST", "initialize", NULL, s->hash, 200, start_ms);
}

/*
 * With a shared store (cluster.c) the session is loaded and verified asynchronously: the first
 * require_session() starts the lookup and returns NULL; when it completes, the handler runs again
 * from the top with the result here (the checks before require_session are repeated: they are pure).
 */
static h2o_req_t *verified_req;
static mg_session_t *verified_s;
static int verified_status;

static void handle_post(mg_gateway_t *gw, h2o_req_t *req, uint64_t start_ms);
static void handle_get(mg_gateway_t *gw, h2o_req_t *req, uint64_t start_ms);
static void handle_delete(mg_gateway_t *gw, h2o_req_t *req, uint64_t start_ms);

typedef struct verify {
    mg_gateway_t *gw;
    uint64_t start_ms;
} verify_t;

static void session_verified_cb(void *data, h2o_req_t *req, mg_session_t *s, int status)
{
    verify_t *v = data;
    mg_gateway_t *gw = v->gw;
    uint64_t start_ms = v->start_ms;
    free(v);
    if (req == NULL)
        return; /* the client went away meanwhile */
    h2o_req_t *prev_req = verified_req;
    mg_session_t *prev_s = verified_s;
    int prev_status = verified_status;
    verified_req = req;
    verified_s = s;
    verified_status = status;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")))
        handle_post(gw, req, start_ms);
    else if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        handle_get(gw, req, start_ms);
    else
        handle_delete(gw, req, start_ms);
    verified_req = prev_req;
    verified_s = prev_s;
    verified_status = prev_status;
}

/* Session lookup shared by POST, GET and DELETE. Answers and returns NULL on failure (and, with a
 * shared store, while the lookup runs: the handler is then called again). claim: the request may
 * need the session's isolation "session" children (cluster.c). */
static mg_session_t *require_session(mg_gateway_t *gw, h2o_req_t *req, uint64_t start_ms, int claim)
{
    int dup = 0;
    h2o_iovec_t sid = header(req, "mcp-session-id", &dup);
    if (sid.base == NULL) {
        http_error(gw, req, MG_EREQUEST,
                   "Bad Request: Mcp-Session-Id header is required (send initialize first to get one)",
                   start_ms);
        return NULL;
    }
    if (dup || sid.len == 0 || sid.len >= 64) {
        http_error(gw, req, MG_EREQUEST, "Bad Request: invalid Mcp-Session-Id header", start_ms);
        return NULL;
    }
    char id[64];
    memcpy(id, sid.base, sid.len);
    id[sid.len] = '\0';
    mg_session_t *s;
    if (gw->cluster != NULL) {
        if (verified_req != req) {
            verify_t *v = malloc(sizeof(*v));
            if (v == NULL) {
                http_error(gw, req, MG_ENOMEM, "out of memory", start_ms);
                return NULL;
            }
            v->gw = gw;
            v->start_ms = start_ms;
            mg__cluster_session_lookup(gw, req, id, claim, session_verified_cb, v);
            return NULL; /* answered when the lookup completes: the handler runs again */
        }
        if (verified_status == 503) {
            const char *hdrs[] = {"retry-after", "1"};
            json_t *e = mg_rpc_error(NULL, mg_err_jsonrpc_code(MG_ESTOREDOWN),
                                     "session store unavailable: the session cannot be verified right now; "
                                     "retry shortly",
                                     NULL);
            send_json(req, mg_err_http_status(MG_ESTOREDOWN), e, hdrs, 1);
            json_decref(e);
            char hm[16];
            snprintf(hm, sizeof hm, "%.*s", (int)(req->method.len < 15 ? req->method.len : 15),
                     req->method.base);
            log_request(gw, hm, NULL, NULL, NULL, 503, start_ms);
            return NULL;
        }
        s = verified_s;
    } else {
        s = mg__session_find(gw, id);
    }
    /* Another principal's session answers exactly like an unknown one: no hint that it exists. */
    if (s != NULL && !mg_principal_same(s->principal, mg_auth_principal_of(gw->auth, req)))
        s = NULL;
    if (s == NULL) {
        http_error(gw, req, MG_ENOSESSION,
                   "Session not found: it expired or was deleted; send initialize again", start_ms);
        return NULL;
    }
    h2o_iovec_t pv = header(req, "mcp-protocol-version", &dup);
    if (pv.base != NULL) {
        char v[32];
        mg_strlcpyn(v, sizeof v, pv.base, pv.len);
        if (dup || !mg_version_rank(v)) {
            http_error(gw, req, MG_EREQUEST,
                       "Bad Request: unsupported MCP-Protocol-Version (supported: 2025-03-26, 2025-06-18, "
                       "2025-11-25)",
                       start_ms);
            return NULL;
        }
        /* A supported value that differs from the negotiated one is tolerated: SDKs and the
         * conformance suite send it, and the session's negotiated version governs behaviour. */
    }
    return s;
}

/* handle_post() once the body parsed and every message was classified (kinds[i] for message i;
 * nreq requests; has_init: one of them is initialize). Consumes body. */
static void post_classified(mg_gateway_t *gw, h2o_req_t *req, uint64_t start_ms, json_t *body, int batch,
                            size_t n, const mg_rpc_kind_t *kinds, size_t nreq, int has_init, int accept_sse)
{
    /* A 2026-07-28 request (even an initialize, which that revision removed: 404) goes to the
     * stateless era; an initialize without 2026 markers starts a session. */
    if (!batch && mg__modern_detect(req, body)) {
        mg__modern_post(gw, req, body, start_ms);
        json_decref(body);
        return;
    }
    if (has_init) {
        if (batch || kinds[0] != MG_RPC_REQUEST) {
            json_decref(body);
            http_error(gw, req, MG_EREQUEST, "Invalid Request: initialize must be sent alone, as a request",
                       start_ms);
            return;
        }
        handle_initialize(gw, req, body, start_ms);
        json_decref(body);
        return;
    }
    int claim = 0; /* cluster: may this request need the session's own children? */
    for (size_t i = 0; gw->cluster != NULL && i < n && !claim; i++) {
        json_t *m = batch ? json_array_get(body, i) : body;
        claim = kinds[i] == MG_RPC_REQUEST && mg__cluster_needs_children(gw, m);
    }
    mg_session_t *s = require_session(gw, req, start_ms, claim);
    if (s == NULL) {
        json_decref(body);
        return;
    }
    if (batch && s->rank != MG_VERSION_2025_03_26) {
        json_decref(body);
        http_error(
            gw, req, MG_EREQUEST,
            "Invalid Request: JSON-RPC batches are only accepted on sessions that negotiated 2025-03-26",
            start_ms);
        return;
    }
    if (nreq > 0 && s->ncalls + nreq > gw->cfg->limits.max_inflight_per_session) {
        json_decref(body);
        const char *hdrs[] = {"retry-after", "1"};
        json_t *e = mg_rpc_error(
            NULL, mg_err_jsonrpc_code(MG_EINFLIGHT),
            "too many requests in flight for this session (gateway.limits.maxInflightPerSession)", NULL);
        send_json(req, mg_err_http_status(MG_EINFLIGHT), e, hdrs, 1);
        json_decref(e);
        log_request(gw, "POST", NULL, NULL, s->hash, 429, start_ms);
        return;
    }
    /* Notifications and responses first (they are answered by the 202 or ride along). */
    for (size_t i = 0; i < n; i++) {
        json_t *m = batch ? json_array_get(body, i) : body;
        if (kinds[i] == MG_RPC_REQUEST)
            continue;
        const char *why = NULL;
        if (mg__dispatch_client_message(gw, s, m, &why) != 0 && !batch && nreq == 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "Bad Request: %s", why ? why : "message rejected");
            json_decref(body);
            http_error(gw, req, MG_EREQUEST, msg, start_ms);
            return;
        }
    }
    if (nreq == 0) {
        send_body(req, 202, NULL, "", 0, NULL, 0);
        const char *meth = batch ? "batch" : mg_rpc_method(body);
        log_request(gw, "POST", meth ? meth : "response", NULL, s->hash, 202, start_ms);
        json_decref(body);
        return;
    }
    mg_exchange_t *x = exchange_new(gw, req, s, start_ms);
    if (x == NULL) {
        json_decref(body);
        http_error(gw, req, MG_ENOMEM, "out of memory", start_ms);
        return;
    }
    x->batch = batch;
    x->accept_sse = accept_sse;
    x->pending = (unsigned)nreq;
    x->results = json_array();
    if (batch)
        snprintf(x->method, sizeof x->method, "batch");
    mg__exchange_ref(x); /* hold while dispatching: a call may finish synchronously */
    for (size_t i = 0; i < n; i++) {
        json_t *m = batch ? json_array_get(body, i) : body;
        if (kinds[i] != MG_RPC_REQUEST)
            continue;
        if (!batch)
            mg_strlcpy(x->method, sizeof x->method, mg_rpc_method(m));
        mg__dispatch_request(gw, s, x, m);
    }
    mg__exchange_unref(x);
    json_decref(body);
}

/* Bodies from this size on leave enough freed heap behind to be worth a malloc_trim(). */
#define TRIM_BODY_BYTES (256 * 1024)

static void trim_hook_dispose(void *p)
{
    mg__gateway_trim_soon(*(mg_gateway_t **)p);
}

static void handle_post(mg_gateway_t *gw, h2o_req_t *req, uint64_t start_ms)
{
    if (req->entity.len > gw->cfg->limits.max_body_bytes) {
        http_error(gw, req, MG_ETOOBIG, "Payload Too Large: the body exceeds gateway.limits.maxBodyBytes",
                   start_ms);
        return;
    }
    h2o_iovec_t ctype = header(req, "content-type", NULL);
    /* The media type, then nothing or parameters: "application/jsonx" is not JSON. */
    if (ctype.base == NULL || ctype.len < 16 || strncasecmp(ctype.base, "application/json", 16) != 0 ||
        (ctype.len > 16 && ctype.base[16] != ';' && ctype.base[16] != ' ' && ctype.base[16] != '\t')) {
        http_error(gw, req, MG_EMEDIATYPE, "Unsupported Media Type: Content-Type must be application/json",
                   start_ms);
        return;
    }
    h2o_iovec_t accept = header(req, "accept", NULL);
    int accept_json = accepts(accept, "application/json");
    int accept_sse = accepts(accept, "text/event-stream");
    if (!accept_json || !accept_sse) {
        http_error(gw, req, MG_ENOTACCEPTABLE,
                   "Not Acceptable: Accept must list both application/json and text/event-stream", start_ms);
        return;
    }
    /* Bound the work one POST can ask for before jansson builds anything: a 4 MiB batch of 72,000
     * pings, or an array of 2 million numbers, cost 50-80 MB of heap to parse. */
    const mg_limits_t *lim = &gw->cfg->limits;
    size_t items = 0, values = 0;
    mg_rpc_count(req->entity.base, req->entity.len, lim->max_batch_items, lim->max_json_values, &items,
                 &values);
    if (items > lim->max_batch_items || values > lim->max_json_values) {
        char msg[300];
        if (items > lim->max_batch_items)
            snprintf(
                msg, sizeof msg,
                "Invalid Request: the batch has more than %u messages (gateway.limits.maxBatchItems); send "
                "at most %u per POST",
                lim->max_batch_items, lim->max_batch_items);
        else
            snprintf(msg, sizeof msg,
                     "Invalid Request: the body has more than %u JSON values (gateway.limits.maxJsonValues); "
                     "send less data per request",
                     lim->max_json_values);
        http_error(gw, req, MG_EREQUEST, msg, start_ms);
        return;
    }
    if (req->entity.len >= TRIM_BODY_BYTES) { /* heap back to the OS once the request is gone */
        mg_gateway_t **hook = h2o_mem_alloc_shared(&req->pool, sizeof *hook, trim_hook_dispose);
        *hook = gw;
    }
    int perr = 0;
    json_t *body = mg_rpc_parse(req->entity.base, req->entity.len, lim->max_json_depth, &perr);
    if (body == NULL) {
        if (perr == MG_ETOODEEP)
            http_error(gw, req, MG_ETOODEEP,
                       "Invalid Request: JSON nesting is deeper than gateway.limits.maxJsonDepth", start_ms);
        else
            http_error(gw, req, MG_EPARSE, "Parse error: the body is not valid JSON (UTF-8, one value)",
                       start_ms);
        return;
    }
    int batch = json_is_array(body);
    size_t n = batch ? json_array_size(body) : 1;
    if (batch && n == 0) {
        json_decref(body);
        http_error(gw, req, MG_EREQUEST, "Invalid Request: empty batch", start_ms);
        return;
    }
    /* Classify everything first: a malformed message rejects the whole POST. Each message is
     * classified once; the loops below read kinds[]. */
    mg_rpc_kind_t kinds_stack[16];
    mg_rpc_kind_t *kinds = n <= 16 ? kinds_stack : malloc(n * sizeof *kinds);
    if (kinds == NULL) {
        json_decref(body);
        http_error(gw, req, MG_ENOMEM, "out of memory", start_ms);
        return;
    }
    size_t nreq = 0;
    int has_init = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *m = batch ? json_array_get(body, i) : body;
        const char *why = NULL;
        mg_rpc_kind_t k = kinds[i] = mg_rpc_classify(m, &why);
        if (k == MG_RPC_INVALID) {
            char msg[200];
            snprintf(msg, sizeof msg, "Invalid Request: %s", why);
            json_t *e = mg_rpc_error(json_is_object(m) &&
                                             (json_is_string(mg_rpc_id(m)) || json_is_integer(mg_rpc_id(m)))
                                         ? mg_rpc_id(m)
                                         : NULL,
                                     mg_err_jsonrpc_code(MG_EREQUEST), msg, NULL);
            send_json(req, mg_err_http_status(MG_EREQUEST), e, NULL, 0);
            json_decref(e);
            json_decref(body);
            if (kinds != kinds_stack)
                free(kinds);
            log_request(gw, "POST", NULL, NULL, NULL, 400, start_ms);
            return;
        }
        if (k == MG_RPC_REQUEST)
            nreq++;
        const char *meth = mg_rpc_method(m);
        if (meth != NULL && strcmp(meth, "initialize") == 0)
            has_init = 1;
    }
    post_classified(gw, req, start_ms, body, batch, n, kinds, nreq, has_init, accept_sse);
    if (kinds != kinds_stack)
        free(kinds);
}

/* ---- GET (standalone stream or resumption) and DELETE ---- */

/* GET and DELETE belong to the session era: a request without a session whose
 * MCP-Protocol-Version names a newer revision (2026-07-28) gets 405, as that revision prescribes. */
static int refuse_sessionless(mg_gateway_t *gw, h2o_req_t *req, uint64_t start_ms)
{
    if (header(req, "mcp-session-id", NULL).base != NULL)
        return 0;
    h2o_iovec_t pv = header(req, "mcp-protocol-version", NULL);
    if (pv.base == NULL)
        return 0; /* no revision named: session-era rules (400, session required) */
    char v[32];
    snprintf(v, sizeof v, "%.*s", (int)(pv.len < 31 ? pv.len : 31), pv.base);
    if (mg_version_rank(v) != 0)
        return 0; /* a session-era client that forgot its session: 400 below says so */
    const char *hdrs[] = {"allow", "POST"};
    json_t *e =
        mg_rpc_error(NULL, mg_err_jsonrpc_code(MG_EHTTPMETHOD),
                     "Method Not Allowed: 2026-07-28 has no GET stream or DELETE; use POST (session-era "
                     "clients send Mcp-Session-Id)",
                     NULL);
    send_json(req, mg_err_http_status(MG_EHTTPMETHOD), e, hdrs, 1);
    json_decref(e);
    char m[16];
    snprintf(m, sizeof m, "%.*s", (int)(req->method.len < 15 ? req->method.len : 15), req->method.base);
    log_request(gw, m, NULL, NULL, NULL, 405, start_ms);
    return 1;
}

static void handle_get(mg_gateway_t *gw, h2o_req_t *req, uint64_t start_ms)
{
    if (refuse_sessionless(gw, req, start_ms))
        return;
    if (!accepts(header(req, "accept", NULL), "text/event-stream")) {
        http_error(gw, req, MG_ENOTACCEPTABLE, "Not Acceptable: GET needs Accept: text/event-stream",
                   start_ms);
        return;
    }
    mg_session_t *s = require_session(gw, req, start_ms, 0);
    if (s == NULL)
        return;
    if (gw->cluster != NULL) { /* the GET stream and resumable streams live in the store */
        mg__cluster_get(s, req, start_ms);
        return;
    }
    int dup = 0;
    h2o_iovec_t lei = header(req, "last-event-id", &dup);
    if (lei.base != NULL) {
        uint32_t stream_id = 0;
        uint64_t seq = 0;
        int ok = !dup && parse_event_id(lei.base, lei.len, &stream_id, &seq);
        mg_stream_t *st = ok ? mg__stream_find(s, stream_id) : NULL;
        if (st == NULL) {
            http_error(
                gw, req, MG_EREQUEST,
                "Bad Request: Last-Event-ID does not name a stream of this session (it may have expired)",
                start_ms);
            return;
        }
        if (!mg__stream_resumable(st, seq)) {
            /* A finished stream with nothing after that event: 204, no body. An empty 200 stream
             * would look like a dropped GET stream to clients (the TypeScript SDK then opens a
             * plain GET); with no body they stop resuming. */
            send_body(req, 204, "text/event-stream", "", 0, NULL, 0);
            log_request(gw, "GET", "resume", NULL, s->hash, 204, start_ms);
            return;
        }
        mg_sse_conn_t *c = mg_sse_conn_start(req, NULL, 0, mg__stream_conn_gone_cb, st);
        if (c == NULL)
            return;
        mg__stream_attach(st, c);
        mg__stream_replay(st, seq);
        log_request(gw, "GET", "resume", NULL, s->hash, 200, start_ms);
        return;
    }
    /* One GET stream per session, fed through one connection: a new GET takes it over and the
     * previous connection is ended (never 409). A client reconnects after a drop the gateway has
     * not noticed yet (h2o does not read an idle streaming connection, so a closed one is found
     * only by a failed write), and a refusal left it without a GET stream. Messages go to the
     * newest connection only. */
    mg_stream_t *st = s->get_stream ? s->get_stream : mg__stream_new(s, 1);
    if (st == NULL) {
        http_error(gw, req, MG_ENOMEM, "out of memory", start_ms);
        return;
    }
    mg_sse_conn_t *c = mg_sse_conn_start(req, NULL, 0, mg__stream_conn_gone_cb, st);
    if (c == NULL)
        return;
    mg__stream_attach(st, c);
    mg__stream_prime(st);
    log_request(gw, "GET", "stream", NULL, s->hash, 200, start_ms);
}

static void handle_delete(mg_gateway_t *gw, h2o_req_t *req, uint64_t start_ms)
{
    if (refuse_sessionless(gw, req, start_ms))
        return;
    mg_session_t *s = require_session(gw, req, start_ms, 0);
    if (s == NULL)
        return;
    if (gw->cluster != NULL) { /* deleted everywhere, then answered */
        mg__cluster_session_delete(s, req, start_ms);
        return;
    }
    char hash[16];
    memcpy(hash, s->hash, sizeof hash);
    mg__session_close(s, "deleted by client");
    send_body(req, 200, NULL, "", 0, NULL, 0);
    log_request(gw, "DELETE", NULL, NULL, hash, 200, start_ms);
}

static void mcp_authed(void *data, h2o_req_t *req, mg_principal_t *principal);

int mg_gateway_handle_mcp(mg_gateway_t *gw, h2o_req_t *req, int loopback_bound)
{
    uint64_t start_ms = mg_gateway_now_ms();
    const mg_config_t *cfg = gw->cfg;
    mg_origin_rules_t rules = {loopback_bound, (const char *const *)cfg->allowed_hosts, cfg->nallowed_hosts,
                               (const char *const *)cfg->allowed_origins, cfg->nallowed_origins};
    if (!mg_origin_host_allowed(&rules, req->authority.base, req->authority.len)) {
        http_error(
            gw, req, MG_EORIGIN,
            "Forbidden: Host header is not allowed (DNS-rebinding protection; see gateway.allowedHosts)",
            start_ms);
        return 0;
    }
    int dup = 0;
    h2o_iovec_t origin = header(req, "origin", &dup);
    if (dup || !mg_origin_origin_allowed(&rules, origin.base, origin.len)) {
        http_error(gw, req, MG_EORIGIN, "Forbidden: Origin is not allowed (see gateway.allowedOrigins)",
                   start_ms);
        return 0;
    }
    /* gateway.cors (src/policy/): response headers for allowed origins; a preflight is answered here,
     * before auth (browsers send preflights without credentials). Off: OPTIONS gets 405 below. */
    if (mg_policy_http_cors(gw, req))
        return 0;
    if (gw->shutting_down) {
        const char *hdrs[] = {"retry-after", "1", "connection", "close"};
        json_t *e = mg_rpc_error(NULL, mg_err_jsonrpc_code(MG_ESHUTDOWN),
                                 "gateway is shutting down; retry on another replica", NULL);
        send_json(req, mg_err_http_status(MG_ESHUTDOWN), e, hdrs, 2);
        json_decref(e);
        return 0;
    }
    /* Auth phase (src/auth/): answers 400/401/403/429/503 itself, else continues in mcp_authed,
     * now or once keys or an introspection answer arrive. */
    mg_auth_phase(gw->auth, req, mcp_authed, gw);
    return 0;
}

/* After the auth phase: the principal (if any) is attached to req (mg_auth_principal_of). */
static void mcp_authed(void *data, h2o_req_t *req, mg_principal_t *principal)
{
    mg_gateway_t *gw = data;
    uint64_t start_ms = mg_gateway_now_ms();
    (void)principal;
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")))
        handle_post(gw, req, start_ms);
    else if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        handle_get(gw, req, start_ms);
    else if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE")))
        handle_delete(gw, req, start_ms);
    else {
        const char *hdrs[] = {"allow", "GET, POST, DELETE"};
        json_t *e = mg_rpc_error(NULL, mg_err_jsonrpc_code(MG_EHTTPMETHOD),
                                 "Method Not Allowed: use POST, GET or DELETE", NULL);
        send_json(req, mg_err_http_status(MG_EHTTPMETHOD), e, hdrs, 1);
        json_decref(e);
    }
}

/* ---- helpers shared with era/modern.c (gateway_int.h) ---- */

void mg__http_send_json(h2o_req_t *req, int status, const json_t *msg, const char **hdrs, size_t nhdrs)
{
    send_json(req, status, msg, hdrs, nhdrs);
}

void mg__http_send_empty(h2o_req_t *req, int status, const char *ctype)
{
    send_body(req, status, ctype, "", 0, NULL, 0);
}

void mg__http_error(mg_gateway_t *gw, h2o_req_t *req, int err, const char *message, json_t *data,
                    const json_t *id, uint64_t start_ms)
{
    int status = mg_err_http_status(err);
    json_t *e = mg_rpc_error(id, mg_err_jsonrpc_code(err), message, data);
    send_json(req, status, e, NULL, 0);
    json_decref(e);
    log_request(gw, "POST", NULL, NULL, NULL, status, start_ms);
}

void mg__http_log(mg_gateway_t *gw, const char *http_method, const char *method, const char *upstream,
                  const char *session, int status, uint64_t start_ms)
{
    log_request(gw, http_method, method, upstream, session, status, start_ms);
}

mg_exchange_t *mg__exchange_new(mg_gateway_t *gw, h2o_req_t *req, mg_session_t *s, uint64_t start_ms)
{
    return exchange_new(gw, req, s, start_ms);
}

int mg__exchange_stream(mg_exchange_t *x)
{
    return start_sse(x);
}
