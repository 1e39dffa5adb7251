/*
 * pipeline.c - the one way a request to /mcp is handled: a fixed table of phases, run in order on
 * one request object (in the manner of nginx's phases).
 *
 *   phase     what it decides                                         answers on failure
 *   origin    Host and Origin allowed (DNS rebinding)                 403
 *   cors      gateway.cors: preflight answered, headers added         204/403 (preflight)
 *   admit     the gateway is not draining                             503 + Retry-After
 *   auth      principal from the bearer token (src/auth/), maybe      400/401/403/429/503
 *             after a JWKS refresh or an introspection round trip
 *   parse     method; POST: size, Content-Type, Accept, work bound,   405/406/413/415/400
 *             JSON parse and depth, every message classified;
 *             2026-07-28 requests and initialize end here (era_*.c)
 *   session   Mcp-Session-Id -> the session, through the session      400/404/503
 *             source (local table at once, shared store later);
 *             MCP-Protocol-Version
 *   limit     batches only on 2025-03-26; in-flight bound per session 400/429
 *   route     POST: client messages, 202 or dispatch of each request  (gateway/era_legacy.c, dispatch.c)
 *             GET: GET stream or resumption; DELETE: session gone
 *
 * Each phase returns NEXT (go on), AGAIN (an asynchronous step was started: its callback calls
 * resume(), which runs the same phase's continuation, never the handler from the top) or DONE (the
 * request was answered, or handed to code that answers it). A request is parsed once.
 * The per-call path after route (rate limits per principal/tenant/tool, routing by name or URI,
 * pins and filters, forwarding, the answer) is gateway/dispatch.c.
 * Read next: gateway_int.h (the request object's neighbours), gateway/era_legacy.c, gateway/dispatch.c.
 */
#include "../auth/auth.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../common/mem.h"
#include "../common/str.h"
#include "../http/origin.h"
#include "../http/query.h"
#include "../http/status.h"
#include "../jsonrpc/jsonrpc.h"
#include "../policy/hooks.h"
#include "gateway_int.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef enum phase_rc { NEXT, AGAIN, DONE } phase_rc_t;

typedef enum http_method { M_POST, M_GET, M_DELETE } http_method_t;

/* Which endpoint the request came to: /mcp, or the 2024-11-05 HTTP+SSE transport's two
 * (gateway.legacySse, era_sse.c): GET /sse opens a session, POST /messages?sessionId= talks to it. */
typedef enum transport { T_MCP, T_SSE_OPEN, T_SSE_POST } transport_t;

/* The request headers the phases read, by index into mg_request_t.hv (headers_scan). */
enum { H_ORIGIN, H_CTYPE, H_ACCEPT, H_SESSION, H_VERSION, H_TRACEPARENT, H_TRACESTATE, H_COUNT };

/* One request on /mcp, from accept to its hand-over. Lives while h2o's request lives and while an
 * asynchronous step (auth, session lookup) is pending; its parsed body dies with it. */
typedef struct mg_request {
    mg_gateway_t *gw;
    h2o_req_t *req; /* NULL once h2o disposed it */
    int refs;       /* h2o's hold + one per pending lookup */
    unsigned phase; /* index in phases[] of the phase to run, or resume */
    int running;    /* inside run(): a callback that fires now only marks the phase done */
    int waiting;    /* an asynchronous step of the current phase is pending */
    int loopback_bound;
    uint64_t start_ms;
    /* The request headers the phases read (headers_scan, once): first value, seen and dup bits. */
    h2o_iovec_t hv[H_COUNT];
    unsigned hseen, hdup;
    http_method_t method;
    transport_t transport;
    /* parse (POST) */
    json_t *body;
    int batch;
    size_t n, nreq;
    mg_rpc_kind_t *kinds;
    mg_rpc_kind_t kinds_stack[16];
    int accept_sse;
    const char *method0;        /* not a batch: the message's "method" (in body), NULL for a response */
    mg_json_span_t params_text; /* its "params" as canonical text (in req->entity), p NULL: none */
    unsigned params_keys;       /* mg__params_keys of that "params" when p is set, else 0 */
    int claim; /* shared store: the request may need the session's isolation "session" children */
    /* session */
    int looked_up;
    int lookup_status; /* 200, 404 or 503 */
    mg_session_t *s;   /* referenced */
    /* gateway.tracing: the request's server span and the span of the phase running (span_phase);
     * NULL when not traced. */
    mg_span_t *span, *phase_span;
    unsigned span_phase;
} mg_request_t;

typedef phase_rc_t (*phase_fn)(mg_request_t *r);

/* Indexes in mg_request_t.hv of the headers the phases read. */

/* Finds the headers of hv[] in one pass over h2o's list instead of one walk (two with the dup
 * check) per lookup: the same answers as mg__req_header (h2o keeps names in lower case; equal
 * bytes), the first value of each and whether the name came again. */
static void headers_scan(mg_request_t *r)
{
    const h2o_headers_t *h = &r->req->headers;
    for (size_t i = 0; i < h->size; i++) {
        const h2o_iovec_t *n = h->entries[i].name;
        int k;
        switch (n->len) {
        case 6:
            k = memcmp(n->base, "origin", 6) == 0   ? H_ORIGIN
                : memcmp(n->base, "accept", 6) == 0 ? H_ACCEPT
                                                    : -1;
            break;
        case 12:
            k = memcmp(n->base, "content-type", 12) == 0 ? H_CTYPE : -1;
            break;
        case 10:
            k = memcmp(n->base, "tracestate", 10) == 0 ? H_TRACESTATE : -1;
            break;
        case 11:
            k = memcmp(n->base, "traceparent", 11) == 0 ? H_TRACEPARENT : -1;
            break;
        case 14:
            k = memcmp(n->base, "mcp-session-id", 14) == 0 ? H_SESSION : -1;
            break;
        case 20:
            k = memcmp(n->base, "mcp-protocol-version", 20) == 0 ? H_VERSION : -1;
            break;
        default:
            k = -1;
        }
        if (k < 0)
            continue;
        if (r->hseen & (1u << k)) {
            r->hdup |= 1u << k;
        } else {
            r->hseen |= 1u << k;
            r->hv[k] = h->entries[i].value;
        }
    }
}

/* Header k as mg__req_header(req, name, dup) would answer it. */
static h2o_iovec_t header(const mg_request_t *r, int k, int *dup)
{
    if (dup != NULL)
        *dup = (r->hdup >> k) & 1;
    return (r->hseen >> k) & 1 ? r->hv[k] : h2o_iovec_init(NULL, 0);
}

static void request_unref(mg_request_t *r)
{
    if (--r->refs > 0)
        return;
    mg_span_end(r->phase_span);
    mg_span_end(r->span);
    json_decref(r->body);
    if (r->kinds != r->kinds_stack)
        free(r->kinds);
    if (r->s != NULL)
        mg__session_unref(r->s);
    free(r);
}

static void request_disposed(void *p)
{
    mg_request_t *r = *(mg_request_t **)p;
    if (r->span != NULL) { /* the HTTP request is over: its span ends with its status */
        int status = r->req->res.status;
        mg_span_set_int(r->span, "http.response.status_code", status);
        if (status >= 500)
            mg_span_set_error(r->span, mg_http_reason(status));
        mg_span_end(r->phase_span);
        r->phase_span = NULL;
        mg_span_end(r->span);
        r->span = NULL;
    }
    r->req = NULL;
    request_unref(r);
}

static const char *method_name(const mg_request_t *r)
{
    return r->method == M_POST ? "POST" : r->method == M_GET ? "GET" : "DELETE";
}

/* ---- phases ---- */

static phase_rc_t phase_origin(mg_request_t *r)
{
    mg_gateway_t *gw = r->gw;
    h2o_req_t *req = r->req;
    const mg_config_t *cfg = gw->cfg;
    mg_origin_rules_t rules = {r->loopback_bound, (const char *const *)cfg->allowed_hosts,
                               cfg->nallowed_hosts, (const char *const *)cfg->allowed_origins,
                               cfg->nallowed_origins};
    if (!mg_origin_host_allowed(&rules, req->authority.base, req->authority.len)) {
        mg__http_fail(
            gw, req, MG_EORIGIN,
            "Forbidden: Host header is not allowed (DNS-rebinding protection; see gateway.allowedHosts)",
            r->start_ms);
        return DONE;
    }
    int dup = 0;
    h2o_iovec_t origin = header(r, H_ORIGIN, &dup);
    if (dup || !mg_origin_origin_allowed(&rules, origin.base, origin.len)) {
        mg__http_fail(gw, req, MG_EORIGIN, "Forbidden: Origin is not allowed (see gateway.allowedOrigins)",
                      r->start_ms);
        return DONE;
    }
    return NEXT;
}

/* gateway.cors (src/policy/): response headers for allowed origins; a preflight is answered here,
 * before auth (browsers send preflights without credentials). Off: OPTIONS gets 405 in parse. */
static phase_rc_t phase_cors(mg_request_t *r)
{
    if (!mg_policy_cors_enabled(r->gw->policy))
        return NEXT; /* off: OPTIONS gets 405 in parse */
    h2o_req_t *req = r->req;
    h2o_iovec_t origin = header(r, H_ORIGIN, NULL);
    h2o_iovec_t m = mg__req_header(req, "access-control-request-method", NULL);
    h2o_iovec_t hs = mg__req_header(req, "access-control-request-headers", NULL);
    mg_policy_cors_decision_t d;
    int answer = mg_policy_cors(r->gw->policy, origin.base, origin.len,
                                h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")), m.base,
                                m.len, hs.base, hs.len, &d);
    mg__http_add_headers(req, &d.headers);
    if (!answer)
        return NEXT;
    if (d.status == 204)
        mg__http_send_body(req, 204, NULL, "", 0, NULL, 0);
    else
        mg__http_send_body(req, d.status, "application/json", d.body, strlen(d.body), NULL, 0);
    return DONE;
}

static phase_rc_t phase_admit(mg_request_t *r)
{
    if (!r->gw->shutting_down)
        return NEXT;
    const char *hdrs[] = {"retry-after", "1", "connection", "close"};
    json_t *e = mg_rpc_error(NULL, mg_err_jsonrpc_code(MG_ESHUTDOWN),
                             "gateway is shutting down; retry on another replica", NULL);
    mg__http_send_json(r->req, mg_err_http_status(MG_ESHUTDOWN), e, hdrs, 2);
    json_decref(e);
    return DONE;
}

static void resume(mg_request_t *r);
static void answered(mg_request_t *r);

/* The auth phase decides, once, and never once h2o disposed the request (auth/auth.h): a refusal
 * is answered here, through the one error reply (reply.c). */
static void authed_cb(void *data, h2o_req_t *req, const mg_auth_decision_t *d)
{
    mg_request_t *r = data;
    if (d->err != 0) {
        r->refs++; /* h2o may dispose the request while it is answered */
        mg__http_refuse(r->gw, req, d);
        answered(r); /* no phase runs after this one */
        request_unref(r);
        return;
    }
    /* d->principal is attached to req: mg_auth_principal_of() */
    r->start_ms = mg_gateway_now_ms(); /* logged latency: from the end of authentication */
    r->phase++;
    resume(r);
}

static phase_rc_t phase_auth(mg_request_t *r)
{
    r->waiting = 1;
    mg_auth_phase(r->gw->auth, r->req, authed_cb, r);
    return AGAIN; /* authed_cb moves past this phase (now or later), or answers the refusal */
}

/* Bodies from this size on leave enough freed heap behind to be worth a malloc_trim(). */
#define TRIM_BODY_BYTES (256 * 1024)

static void trim_hook_dispose(void *p)
{
    mg__gateway_trim_soon(*(mg_gateway_t **)p);
}

static phase_rc_t parse_post(mg_request_t *r)
{
    mg_gateway_t *gw = r->gw;
    h2o_req_t *req = r->req;
    if (req->entity.len > gw->cfg->limits.max_body_bytes) {
        mg__http_fail(gw, req, MG_ETOOBIG, "Payload Too Large: the body exceeds gateway.limits.maxBodyBytes",
                      r->start_ms);
        return DONE;
    }
    h2o_iovec_t ctype = header(r, H_CTYPE, NULL);
    /* The media type, then nothing or parameters: "application/jsonx" is not JSON. */
    if (ctype.base == NULL || ctype.len < 16 || strncasecmp(ctype.base, "application/json", 16) != 0 ||
        (ctype.len > 16 && ctype.base[16] != ';' && ctype.base[16] != ' ' && ctype.base[16] != '\t')) {
        mg__http_fail(gw, req, MG_EMEDIATYPE, "Unsupported Media Type: Content-Type must be application/json",
                      r->start_ms);
        return DONE;
    }
    h2o_iovec_t accept = header(r, H_ACCEPT, NULL);
    unsigned admits = mg__accepts_two(accept, "application/json", "text/event-stream");
    int accept_json = (admits & 1) != 0;
    r->accept_sse = (admits & 2) != 0;
    /* /messages answers 202 whatever the client accepts: its answers go out on the /sse stream. */
    if (r->transport == T_MCP && (!accept_json || !r->accept_sse)) {
        mg__http_fail(gw, req, MG_ENOTACCEPTABLE,
                      "Not Acceptable: Accept must list both application/json and text/event-stream",
                      r->start_ms);
        return DONE;
    }
    /* Bound the work one POST can ask for: a 4 MiB batch of 72,000 pings, or an array of 2 million
     * numbers, cost 50-80 MB of heap to parse. mg_rpc_parse counts while it reads and stops at the
     * first bound passed (no more tree than a body within the bounds may cost; ADR 0015). */
    const mg_limits_t *lim = &gw->cfg->limits;
    if (req->entity.len >= TRIM_BODY_BYTES) { /* heap back to the OS once the request is gone */
        mg_gateway_t **hook = h2o_mem_alloc_shared(&req->pool, sizeof *hook, trim_hook_dispose);
        *hook = gw;
    }
    const mg_rpc_limits_t bounds = {lim->max_json_depth, lim->max_batch_items, lim->max_json_values};
    mg_rpc_size_t size;
    int perr = 0;
    r->body = mg_rpc_parse_params(req->entity.base, req->entity.len, &bounds, &perr, &size, &r->params_text);
    /* the questions the path asks of a lent params, answered in one walk (gateway_int.h) */
    r->params_keys = r->params_text.p != NULL ? mg__params_keys(r->params_text.v) : 0;
    if (r->body == NULL) {
        char msg[300];
        if (perr == MG_EREQUEST && size.items > lim->max_batch_items)
            snprintf(
                msg, sizeof msg,
                "Invalid Request: the batch has more than %u messages (gateway.limits.maxBatchItems); send "
                "at most %u per POST",
                lim->max_batch_items, lim->max_batch_items);
        else if (perr == MG_EREQUEST)
            snprintf(msg, sizeof msg,
                     "Invalid Request: the body has more than %u JSON values (gateway.limits.maxJsonValues); "
                     "send less data per request",
                     lim->max_json_values);
        else if (perr == MG_ETOODEEP)
            snprintf(msg, sizeof msg,
                     "Invalid Request: JSON nesting is deeper than gateway.limits.maxJsonDepth");
        else
            snprintf(msg, sizeof msg, "Parse error: the body is not valid JSON (UTF-8, one value)");
        mg__http_fail(gw, req, perr, msg, r->start_ms);
        return DONE;
    }
    r->batch = json_is_array(r->body);
    r->n = r->batch ? json_array_size(r->body) : 1;
    if (r->batch && r->n == 0) {
        mg__http_fail(gw, req, MG_EREQUEST, "Invalid Request: empty batch", r->start_ms);
        return DONE;
    }
    /* Classify everything first: a malformed message rejects the whole POST. Each message is
     * classified once; later phases read kinds[]. */
    r->kinds = r->n <= 16 ? r->kinds_stack : malloc(r->n * sizeof *r->kinds);
    if (r->kinds == NULL) {
        r->kinds = r->kinds_stack;
        mg__http_fail(gw, req, MG_ENOMEM, "out of memory", r->start_ms);
        return DONE;
    }
    int has_init = 0;
    for (size_t i = 0; i < r->n; i++) {
        json_t *m = r->batch ? json_array_get(r->body, i) : r->body;
        const char *why = NULL, *meth = NULL;
        mg_rpc_kind_t k = r->kinds[i] = mg_rpc_classify_method(m, &why, &meth);
        if (k == MG_RPC_INVALID) {
            char msg[200];
            snprintf(msg, sizeof msg, "Invalid Request: %s", why);
            json_t *e = mg_rpc_error(json_is_object(m) &&
                                             (json_is_string(mg_rpc_id(m)) || json_is_integer(mg_rpc_id(m)))
                                         ? mg_rpc_id(m)
                                         : NULL,
                                     mg_err_jsonrpc_code(MG_EREQUEST), msg, NULL);
            mg__http_send_json(req, mg_err_http_status(MG_EREQUEST), e, NULL, 0);
            json_decref(e);
            mg__http_log(gw, "POST", NULL, NULL, NULL, 400, r->start_ms);
            return DONE;
        }
        if (k == MG_RPC_REQUEST)
            r->nreq++;
        if (!r->batch)
            r->method0 = meth;
        if (meth != NULL && strcmp(meth, "initialize") == 0)
            has_init = 1;
    }
    if (r->transport == T_SSE_POST) {
        /* The session exists (GET /sse made it): initialize is answered on it in the route phase. */
        if (has_init && (r->batch || r->kinds[0] != MG_RPC_REQUEST)) {
            mg__http_fail(gw, req, MG_EREQUEST,
                          "Invalid Request: initialize must be sent alone, as a request", r->start_ms);
            return DONE;
        }
        return NEXT;
    }
    /* A 2026-07-28 request (even an initialize, which that revision removed: 404) goes to the
     * stateless era; an initialize without 2026 markers starts a session. */
    if (!r->batch && mg__modern_detect(req, r->body, r->params_keys)) {
        mg__modern_post(gw, req, r->body, r->start_ms);
        return DONE;
    }
    if (has_init) {
        if (r->batch || r->kinds[0] != MG_RPC_REQUEST)
            mg__http_fail(gw, req, MG_EREQUEST,
                          "Invalid Request: initialize must be sent alone, as a request", r->start_ms);
        else
            mg__legacy_initialize(gw, req, r->body, r->start_ms);
        return DONE;
    }
    for (size_t i = 0; gw->cluster != NULL && i < r->n && !r->claim; i++) {
        json_t *m = r->batch ? json_array_get(r->body, i) : r->body;
        r->claim = r->kinds[i] == MG_RPC_REQUEST && mg__cluster_needs_children(gw, m);
    }
    return NEXT;
}

/* The legacy transport's methods: GET on /sse, POST on /messages; nothing else. */
static phase_rc_t parse_sse(mg_request_t *r)
{
    h2o_req_t *req = r->req;
    int open = r->transport == T_SSE_OPEN;
    if (!h2o_memis(req->method.base, req->method.len, open ? "GET" : "POST", open ? 3 : 4)) {
        const char *hdrs[] = {"allow", open ? "GET" : "POST"};
        json_t *e = mg_rpc_error(NULL, mg_err_jsonrpc_code(MG_EHTTPMETHOD),
                                 open ? "Method Not Allowed: /sse takes GET (the legacy HTTP+SSE transport); "
                                        "send messages with POST to the endpoint its first event names"
                                      : "Method Not Allowed: /messages takes POST (the legacy HTTP+SSE "
                                        "transport); open the stream with GET /sse",
                                 NULL);
        mg__http_send_json(req, mg_err_http_status(MG_EHTTPMETHOD), e, hdrs, 1);
        json_decref(e);
        return DONE;
    }
    if (!open) {
        r->method = M_POST;
        return parse_post(r);
    }
    r->method = M_GET;
    h2o_iovec_t accept = mg__req_header(req, "accept", NULL);
    if (accept.base != NULL && !mg__accepts(accept, "text/event-stream")) {
        mg__http_fail(r->gw, req, MG_ENOTACCEPTABLE,
                      "Not Acceptable: GET /sse needs Accept: text/event-stream", r->start_ms);
        return DONE;
    }
    return NEXT;
}

static phase_rc_t phase_parse(mg_request_t *r)
{
    h2o_req_t *req = r->req;
    if (r->transport != T_MCP)
        return parse_sse(r);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        r->method = M_POST;
        return parse_post(r);
    }
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        r->method = M_GET;
    else if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE")))
        r->method = M_DELETE;
    else {
        const char *hdrs[] = {"allow", "GET, POST, DELETE"};
        json_t *e = mg_rpc_error(NULL, mg_err_jsonrpc_code(MG_EHTTPMETHOD),
                                 "Method Not Allowed: use POST, GET or DELETE", NULL);
        mg__http_send_json(req, mg_err_http_status(MG_EHTTPMETHOD), e, hdrs, 1);
        json_decref(e);
        return DONE;
    }
    if (mg__legacy_refuse_sessionless(r->gw, req, r->start_ms))
        return DONE;
    if (r->method == M_GET && !mg__accepts(mg__req_header(req, "accept", NULL), "text/event-stream")) {
        mg__http_fail(r->gw, req, MG_ENOTACCEPTABLE, "Not Acceptable: GET needs Accept: text/event-stream",
                      r->start_ms);
        return DONE;
    }
    return NEXT;
}

static void session_found_cb(void *data, h2o_req_t *req, mg_session_t *s, int status)
{
    mg_request_t *r = data;
    r->looked_up = 1;
    r->lookup_status = status;
    r->s = s;
    if (s != NULL)
        mg__session_ref(s);
    if (req == NULL) { /* h2o disposed the request meanwhile */
        request_unref(r);
        return;
    }
    request_unref(r); /* the lookup's hold; h2o's hold keeps r */
    resume(r);
}

/* POST /messages: the session named by ?sessionId=, in this process's table only (a legacy
 * session lives on the replica holding its /sse stream), of this principal. */
static phase_rc_t session_sse(mg_request_t *r)
{
    mg_gateway_t *gw = r->gw;
    h2o_req_t *req = r->req;
    char id[64] = "";
    int got = req->query_at == SIZE_MAX
                  ? 0
                  : mg_http_query_get(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1,
                                      "sessionId", id, sizeof id);
    if (got != 1 || id[0] == '\0') {
        mg__http_fail(gw, req, MG_EREQUEST,
                      got == 0 ? "Bad Request: /messages needs ?sessionId= (the endpoint event of GET /sse "
                                 "names the URL to post to)"
                               : "Bad Request: invalid sessionId",
                      r->start_ms);
        return DONE;
    }
    mg_session_t *s = mg__session_find(gw, id);
    /* Another principal's session, or a /mcp session, answers exactly like an unknown one. */
    if (s == NULL || s->sse == NULL ||
        !mg_principal_same(s->principal, mg_auth_principal_of(gw->auth, req))) {
        mg__http_fail(gw, req, MG_ENOSESSION,
                      gw->cluster != NULL
                          ? "Session not found: its /sse stream closed, or it is held by another replica (a "
                            "legacy HTTP+SSE session lives on the replica that holds its stream: route /sse "
                            "and /messages of one client to the same replica); open GET /sse again"
                          : "Session not found: its /sse stream closed or it never existed; open GET /sse "
                            "again",
                      r->start_ms);
        return DONE;
    }
    mg__session_ref(s);
    r->s = s;
    return NEXT;
}

static phase_rc_t phase_session(mg_request_t *r)
{
    mg_gateway_t *gw = r->gw;
    h2o_req_t *req = r->req;
    if (r->transport == T_SSE_OPEN)
        return NEXT; /* the route phase makes the session */
    if (r->transport == T_SSE_POST)
        return session_sse(r);
    if (!r->looked_up) {
        int dup = 0;
        h2o_iovec_t sid = header(r, H_SESSION, &dup);
        if (sid.base == NULL) {
            mg__http_fail(gw, req, MG_EREQUEST,
                          "Bad Request: Mcp-Session-Id header is required (send initialize first to get one)",
                          r->start_ms);
            return DONE;
        }
        if (dup || sid.len == 0 || sid.len >= 64) {
            mg__http_fail(gw, req, MG_EREQUEST, "Bad Request: invalid Mcp-Session-Id header", r->start_ms);
            return DONE;
        }
        char id[64];
        memcpy(id, sid.base, sid.len);
        id[sid.len] = '\0';
        r->refs++; /* the lookup calls back exactly once, even after h2o disposed the request */
        r->waiting = 1;
        gw->sessions_source->lookup(gw, req, id, r->claim, session_found_cb, r);
        if (r->waiting)
            return AGAIN; /* session_found_cb resumes this phase */
    }
    if (r->lookup_status == 503) {
        const char *hdrs[] = {"retry-after", "1"};
        json_t *e = mg_rpc_error(NULL, mg_err_jsonrpc_code(MG_ESTOREDOWN),
                                 "session store unavailable: the session cannot be verified right now; "
                                 "retry shortly",
                                 NULL);
        mg__http_send_json(req, mg_err_http_status(MG_ESTOREDOWN), e, hdrs, 1);
        json_decref(e);
        mg__http_log(gw, method_name(r), NULL, NULL, NULL, 503, r->start_ms);
        return DONE;
    }
    /* Another principal's session answers exactly like an unknown one: no hint that it exists; so
     * does a legacy HTTP+SSE session's id (it is used on /messages only). */
    if (r->s != NULL &&
        (r->s->sse != NULL || !mg_principal_same(r->s->principal, mg_auth_principal_of(gw->auth, req)))) {
        mg__session_unref(r->s);
        r->s = NULL;
    }
    if (r->s == NULL) {
        mg__http_fail(gw, req, MG_ENOSESSION,
                      "Session not found: it expired or was deleted; send initialize again", r->start_ms);
        return DONE;
    }
    int dup = 0;
    h2o_iovec_t pv = header(r, H_VERSION, &dup);
    if (pv.base != NULL) {
        char v[32];
        mg_strlcpyn(v, sizeof v, pv.base, pv.len);
        if (dup || !mg_version_rank(v)) {
            mg__http_fail(gw, req, MG_EREQUEST,
                          "Bad Request: unsupported MCP-Protocol-Version (supported: 2025-03-26, 2025-06-18, "
                          "2025-11-25)",
                          r->start_ms);
            return DONE;
        }
        /* A supported value that differs from the negotiated one is tolerated: SDKs and the
         * conformance suite send it, and the session's negotiated version governs behaviour. */
    }
    return NEXT;
}

static phase_rc_t phase_limit(mg_request_t *r)
{
    if (r->method != M_POST)
        return NEXT;
    mg_gateway_t *gw = r->gw;
    mg_session_t *s = r->s;
    if (r->batch && strcmp(s->version, "2025-03-26") != 0) {
        mg__http_fail(
            gw, r->req, MG_EREQUEST,
            "Invalid Request: JSON-RPC batches are only accepted on sessions that negotiated 2025-03-26",
            r->start_ms);
        return DONE;
    }
    if (r->nreq > 0 && s->ncalls + r->nreq > gw->cfg->limits.max_inflight_per_session) {
        const char *hdrs[] = {"retry-after", "1"};
        json_t *e = mg_rpc_error(
            NULL, mg_err_jsonrpc_code(MG_EINFLIGHT),
            "too many requests in flight for this session (gateway.limits.maxInflightPerSession)", NULL);
        mg__http_send_json(r->req, mg_err_http_status(MG_EINFLIGHT), e, hdrs, 1);
        json_decref(e);
        mg__http_log(gw, "POST", NULL, NULL, s->hash, 429, r->start_ms);
        return DONE;
    }
    return NEXT;
}

static phase_rc_t phase_route(mg_request_t *r)
{
    if (r->transport == T_SSE_OPEN)
        mg__sse_open(r->gw, r->req, r->start_ms);
    else if (r->transport == T_SSE_POST)
        mg__sse_post(r->gw, r->req, r->s, r->body, r->batch, r->n, r->kinds, r->nreq, r->start_ms);
    else if (r->method == M_POST)
        mg__legacy_post(r->gw, r->req, r->s, r->body, r->batch, r->n, r->kinds, r->nreq, r->method0,
                        &r->params_text, r->params_keys, r->accept_sse, r->start_ms);
    else if (r->method == M_GET)
        r->gw->sessions_source->get(r->s, r->req, r->start_ms);
    else
        r->gw->sessions_source->remove(r->s, r->req, r->start_ms);
    return DONE;
}

/* span: the name of the child span of a phase that waited (JWKS or introspection for auth, the
 * shared store for session): from the phase's start until the request moves past it; NULL for none
 * (gateway.tracing). A phase that answers at once costs no span. */
static const struct {
    const char *name;
    phase_fn run;
    const char *span;
} phases[] = {
    {"origin", phase_origin, NULL}, {"cors", phase_cors, NULL},
    {"admit", phase_admit, NULL},   {"auth", phase_auth, "mcpgate.auth"},
    {"parse", phase_parse, NULL},   {"session", phase_session, "mcpgate.session"},
    {"limit", phase_limit, NULL},   {"route", phase_route, NULL},
};

#define NPHASES (sizeof phases / sizeof phases[0])

/* Ends the phase span once the request moved past its phase (gateway.tracing). */
static void phase_span_end(mg_request_t *r)
{
    if (r->phase_span != NULL && r->span_phase != r->phase) {
        mg_span_end(r->phase_span);
        r->phase_span = NULL;
    }
}

/* Runs phases from r->phase until one answers or waits. */
static void run(mg_request_t *r)
{
    mg_gateway_t *gw = r->gw;
    r->running = 1;
    while (r->phase < NPHASES && r->req != NULL) {
        r->waiting = 0;
        phase_span_end(r);
        uint64_t t0 =
            r->span != NULL && r->phase_span == NULL && phases[r->phase].span ? mg_trace_now_ns() : 0;
        mg_span_t *outer = gw->trace_ambient; /* exchanges made by this phase take this span as parent */
        gw->trace_ambient = r->span;
        phase_rc_t rc = phases[r->phase].run(r);
        gw->trace_ambient = outer;
        if (rc == AGAIN && r->waiting) {
            if (t0 != 0 && r->phase_span == NULL) { /* it waits: worth a span, from its start */
                r->phase_span =
                    mg_span_start_at(gw->trace, phases[r->phase].span, MG_SPAN_INTERNAL, r->span, NULL, t0);
                r->span_phase = r->phase;
            }
            break; /* its callback calls resume() */
        }
        if (rc == DONE) {
            r->phase = NPHASES;
            break;
        }
        if (rc == NEXT)
            r->phase++;
        /* AGAIN whose callback already ran: the callback set the phase to go on from */
    }
    if (r->phase >= NPHASES)
        phase_span_end(r);
    r->running = 0;
}

/* A phase's callback answered the request: the phases end there (as a phase returning DONE). */
static void answered(mg_request_t *r)
{
    r->phase = NPHASES;
    resume(r);
}

static void resume(mg_request_t *r)
{
    r->waiting = 0;
    if (r->running)
        return; /* called back from inside the phase: run() goes on */
    r->refs++;  /* the phases may answer, and h2o dispose the request, while they run */
    run(r);
    request_unref(r);
}

/* The request's server span (gateway.tracing), child of the caller's traceparent header if any. */
static void request_span(mg_request_t *r)
{
    h2o_req_t *req = r->req;
    int dup = 0, sdup = 0;
    h2o_iovec_t tp = header(r, H_TRACEPARENT, &dup);
    h2o_iovec_t ts = header(r, H_TRACESTATE, &sdup);
    mg_trace_ctx_t ctx;
    int remote = tp.base != NULL && !dup &&
                 mg_trace_ctx_parse(tp.base, tp.len, sdup ? NULL : ts.base, ts.len, &ctx) == 0;
    const char *path = r->transport == T_SSE_OPEN   ? "/sse"
                       : r->transport == T_SSE_POST ? "/messages"
                                                    : "/mcp";
    char method[9], name[32];
    size_t ml = req->method.len < 8 ? req->method.len : 8, pl = strlen(path);
    memcpy(method, req->method.base, ml);
    method[ml] = '\0';
    memcpy(name, method, ml); /* "METHOD /path" */
    name[ml] = ' ';
    memcpy(name + ml + 1, path, pl + 1);
    r->span = mg_span_start(r->gw->trace, name, MG_SPAN_SERVER, NULL, remote ? &ctx : NULL);
    if (r->span == NULL)
        return;
    const char *version = req->version >= 0x200 ? "2" : "1.1";
    int m = strcmp(method, "POST") == 0     ? 0
            : strcmp(method, "GET") == 0    ? 1
            : strcmp(method, "DELETE") == 0 ? 2
                                            : -1;
    const char *kv[] = {
        "http.request.method",      method, "http.route", path, "network.protocol.name", "http",
        "network.protocol.version", version};
    if (m < 0) { /* another method (405): its own attributes */
        for (size_t i = 0; i < 4; i++)
            mg_span_set_str(r->span, kv[2 * i], kv[2 * i + 1]);
        return;
    }
    /* the same four for every request of a kind: a set made at the first */
    mg_span_attrs_t **set =
        &r->gw->trace_http_attrs[(m * 3 + (int)r->transport) * 2 + (req->version >= 0x200)];
    if (*set == NULL)
        *set = mg_span_attrs_new(kv, 4);
    mg_span_add_attrs(r->span, *set);
}

static int handle(mg_gateway_t *gw, h2o_req_t *req, int loopback_bound, transport_t transport)
{
    mg_request_t *r = mg_zalloc(sizeof *r);
    if (r == NULL) {
        mg__http_send_body(req, 503, "text/plain", "out of memory\n", 14, NULL, 0);
        return 0;
    }
    mg_request_t **hold = h2o_mem_alloc_shared(&req->pool, sizeof *hold, request_disposed);
    *hold = r;
    r->refs = 2; /* h2o's (dropped when it disposes req) and this call's */
    r->gw = gw;
    r->req = req;
    r->loopback_bound = loopback_bound;
    r->transport = transport;
    r->start_ms = mg_gateway_now_ms();
    headers_scan(r);
    if (gw->trace != NULL)
        request_span(r);
    r->kinds = r->kinds_stack;
    run(r);
    request_unref(r);
    return 0;
}

int mg_gateway_handle_mcp(mg_gateway_t *gw, h2o_req_t *req, int loopback_bound)
{
    return handle(gw, req, loopback_bound, T_MCP);
}

int mg_gateway_handle_sse(mg_gateway_t *gw, h2o_req_t *req, int loopback_bound)
{
    size_t n = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    int open = n == 4; /* "/sse"; http/server.c routes only "/sse" and "/messages" here */
    if (!gw->cfg->legacy_sse) {
        static const char body[] =
            "{\"error\":\"not found\",\"message\":\"the legacy HTTP+SSE transport (2024-11-05: GET /sse, "
            "POST /messages) is disabled on this gateway; connect to /mcp with Streamable HTTP, or ask the "
            "operator to enable it for old clients with \\\"legacySse\\\": true in the gateway section of "
            "the "
            "config (docs/configuration.md)\"}";
        mg__http_send_body(req, 404, "application/json", body, sizeof body - 1, NULL, 0);
        mg__http_log(gw, open ? "GET" : "POST", open ? "sse" : "messages", NULL, NULL, 404,
                     mg_gateway_now_ms());
        return 0;
    }
    mg__sse_deprecation_headers(req);
    return handle(gw, req, loopback_bound, open ? T_SSE_OPEN : T_SSE_POST);
}
