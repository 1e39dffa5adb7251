/*
 * legacy.c - semantics of the 2025 session era on /mcp (revisions 2025-03-26, 2025-06-18,
 * 2025-11-25), called by the pipeline's phases (gateway/pipeline.c): initialize creates a session;
 * a POST's notifications and responses are taken (202) and its requests dispatched through one
 * exchange (JSON, switching to SSE when a related message arrives first); a GET opens the session's
 * GET stream or resumes a stream (Last-Event-ID); GET and DELETE without a session that name
 * 2026-07-28 get 405.
 * Read next: gateway/pipeline.c (the phases before these), gateway/dispatch.c (each request).
 */
#include "../common/err.h"
#include "../common/log.h"
#include "../common/str.h"
#include "gateway_int.h"
#include "../jsonrpc/jsonrpc.h"
#include "toolsearch_hooks.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* ---- initialize ---- */

void mg__legacy_initialize(mg_gateway_t *gw, h2o_req_t *req, json_t *msg, uint64_t start_ms)
{
    json_t *params = mg_rpc_params(msg);
    const char *requested = json_string_value(json_object_get(params, "protocolVersion"));
    if (!json_is_object(params) || requested == NULL) {
        json_t *e = mg_rpc_error(mg_rpc_id(msg), mg_err_jsonrpc_code(MG_EPARAMS),
                                 "initialize needs params.protocolVersion (a string)", NULL);
        mg__http_send_json(req, mg_err_http_status(MG_EPARAMS), e, NULL, 0);
        json_decref(e);
        mg__http_log(gw, "POST", "initialize", NULL, NULL, 400, start_ms);
        return;
    }
    const char *version = mg_version_rank(requested) ? requested : MG_LATEST_VERSION;
    /* Tool profile (gateway.tools.profiles): Mcpgate-Profile header, else ?profile=NAME. */
    char profile[72], pwhy[400];
    int pdup = 0;
    h2o_iovec_t ph = mg__req_header(req, "mcpgate-profile", &pdup);
    int has_q = req->query_at != SIZE_MAX;
    if (pdup || mg_toolsearch_profile_select(&gw->cfg->tools, ph.base, ph.len,
                                             has_q ? req->path.base + req->query_at + 1 : NULL,
                                             has_q ? req->path.len - req->query_at - 1 : 0, profile,
                                             sizeof profile, pwhy, sizeof pwhy) != 0) {
        json_t *e = mg_rpc_error(mg_rpc_id(msg), mg_err_jsonrpc_code(MG_EPARAMS),
                                 pdup ? "Mcpgate-Profile header given twice" : pwhy, NULL);
        mg__http_send_json(req, mg_err_http_status(MG_EPARAMS), e, NULL, 0);
        json_decref(e);
        mg__http_log(gw, "POST", "initialize", NULL, NULL, 400, start_ms);
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
        mg__http_send_json(req, mg_err_http_status(MG_EBUSY), e, hdrs, 1);
        json_decref(e);
        mg__http_log(gw, "POST", "initialize", NULL, NULL, 503, start_ms);
        return;
    }
    mg__toolsearch_session_open(s, profile); /* out of memory: the defaults apply */
    json_t *resp = mg_rpc_result(mg_rpc_id(msg), mg__initialize_result(gw, version));
    /* Bound to its creator: every later request must come from the same principal (auth). */
    s->principal = mg_principal_ref(mg_auth_principal_of(gw->auth, req));
    const char *client = json_string_value(json_object_get(json_object_get(params, "clientInfo"), "name"));
    mg_log_json(MG_LOG_INFO, "session created",
                json_pack("{s:s,s:s,s:s,s:s}", "session", s->hash, "version", version, "requested", requested,
                          "client", client ? client : ""));
    /* Made known through the session source (a shared store answers once the record is written,
     * so that any replica knows it), which answers the client. */
    gw->sessions_source->publish(s, req, resp, profile, start_ms);
    json_decref(resp);
}

/* ---- POST ---- */

/* A POST on session s once the pipeline parsed, classified and admitted it (gateway/pipeline.c):
 * kinds[i] is the kind of message i, nreq of them are requests; method0: not a batch, the
 * message's "method" (NULL for a response); params_text (may be NULL): not a batch, the canonical
 * text of its "params" (mg_rpc_parse_params), lent to the calls dispatched here, and params_keys its
 * mg__params_keys. Answers: 202 when nothing but notifications and responses came, else one
 * exchange through which every request answers. */
void mg__legacy_post(mg_gateway_t *gw, h2o_req_t *req, mg_session_t *s, json_t *body, int batch, size_t n,
                     const mg_rpc_kind_t *kinds, size_t nreq, const char *method0,
                     const mg_json_span_t *params_text, unsigned params_keys, int accept_sse,
                     uint64_t start_ms)
{
    /* Notifications and responses first (they are answered by the 202 or ride along). */
    for (size_t i = 0; i < n; i++) {
        json_t *m = batch ? json_array_get(body, i) : body;
        if (kinds[i] == MG_RPC_REQUEST)
            continue;
        const char *why = NULL;
        if (mg__dispatch_client_message(gw, s, m, &why) != 0 && !batch && nreq == 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "Bad Request: %s", why ? why : "message rejected");
            mg__http_fail(gw, req, MG_EREQUEST, msg, start_ms);
            return;
        }
    }
    if (nreq == 0) {
        mg__http_send_body(req, 202, NULL, "", 0, NULL, 0);
        const char *meth = batch ? "batch" : method0;
        mg__http_log(gw, "POST", meth ? meth : "response", NULL, s->hash, 202, start_ms);
        return;
    }
    mg_exchange_t *x = mg__exchange_new(gw, req, s, start_ms);
    if (x == NULL) {
        mg__http_fail(gw, req, MG_ENOMEM, "out of memory", start_ms);
        return;
    }
    x->batch = batch;
    x->accept_sse = accept_sse;
    x->pending = (unsigned)nreq;
    if (batch) /* the answers collected for one JSON array (a single answer is sent as it comes) */
        x->results = json_array();
    if (batch)
        snprintf(x->method, sizeof x->method, "batch");
    mg__exchange_ref(x); /* hold while dispatching: a call may finish synchronously */
    if (!batch && params_text != NULL && params_text->p != NULL && json_is_object(params_text->v)) {
        x->params_of = params_text->v;
        x->params_text = params_text->p;
        x->params_len = params_text->len;
        x->params_members = json_object_size(x->params_of);
        x->params_keys = params_keys;
        x->params_msg = body;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *m = batch ? json_array_get(body, i) : body;
        if (kinds[i] != MG_RPC_REQUEST)
            continue;
        if (!batch)
            mg_strlcpy(x->method, sizeof x->method, method0);
        mg__dispatch_request_m(gw, s, x, m, batch ? NULL : method0);
    }
    x->params_of = NULL; /* the body's bytes are lent for the dispatch only */
    x->params_text = NULL;
    x->params_msg = NULL;
    mg__exchange_unref(x);
}

/* ---- GET and DELETE ---- */

/* GET and DELETE belong to the session era: a request without a session whose
 * MCP-Protocol-Version names a newer revision (2026-07-28) gets 405, as that revision prescribes. */
int mg__legacy_refuse_sessionless(mg_gateway_t *gw, h2o_req_t *req, uint64_t start_ms)
{
    if (mg__req_header(req, "mcp-session-id", NULL).base != NULL)
        return 0;
    h2o_iovec_t pv = mg__req_header(req, "mcp-protocol-version", NULL);
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
    mg__http_send_json(req, mg_err_http_status(MG_EHTTPMETHOD), e, hdrs, 1);
    json_decref(e);
    char m[16];
    snprintf(m, sizeof m, "%.*s", (int)(req->method.len < 15 ? req->method.len : 15), req->method.base);
    mg__http_log(gw, m, NULL, NULL, NULL, 405, start_ms);
    return 1;
}

/* GET on session s without a shared store: a resumption (Last-Event-ID) of one of its streams, or
 * its GET stream. */
void mg__legacy_get(mg_session_t *s, h2o_req_t *req, uint64_t start_ms)
{
    mg_gateway_t *gw = s->gw;
    int dup = 0;
    h2o_iovec_t lei = mg__req_header(req, "last-event-id", &dup);
    if (lei.base != NULL) {
        uint32_t stream_id = 0;
        uint64_t seq = 0;
        int ok = !dup && parse_event_id(lei.base, lei.len, &stream_id, &seq);
        mg_stream_t *st = ok ? mg__stream_find(s, stream_id) : NULL;
        if (st == NULL) {
            mg__http_fail(
                gw, req, MG_EREQUEST,
                "Bad Request: Last-Event-ID does not name a stream of this session (it may have expired)",
                start_ms);
            return;
        }
        if (!mg__stream_resumable(st, seq)) {
            /* A finished stream with nothing after that event: 204, no body. An empty 200 stream
             * would look like a dropped GET stream to clients (the TypeScript SDK then opens a
             * plain GET); with no body they stop resuming. */
            mg__http_send_body(req, 204, "text/event-stream", "", 0, NULL, 0);
            mg__http_log(gw, "GET", "resume", NULL, s->hash, 204, start_ms);
            return;
        }
        mg_sse_conn_t *c = mg_sse_conn_start(req, NULL, 0, mg__stream_conn_gone_cb, st);
        if (c == NULL)
            return;
        mg__stream_attach(st, c);
        mg__stream_replay(st, seq);
        mg__http_log(gw, "GET", "resume", NULL, s->hash, 200, start_ms);
        return;
    }
    /* One GET stream per session, fed through one connection: a new GET takes it over and the
     * previous connection is ended (never 409). A client reconnects after a drop the gateway has
     * not noticed yet (h2o does not read an idle streaming connection, so a closed one is found
     * only by a failed write), and a refusal left it without a GET stream. Messages go to the
     * newest connection only. */
    mg_stream_t *st = s->get_stream ? s->get_stream : mg__stream_new(s, 1);
    if (st == NULL) {
        mg__http_fail(gw, req, MG_ENOMEM, "out of memory", start_ms);
        return;
    }
    mg_sse_conn_t *c = mg_sse_conn_start(req, NULL, 0, mg__stream_conn_gone_cb, st);
    if (c == NULL)
        return;
    mg__stream_attach(st, c);
    mg__stream_prime(st);
    mg__http_log(gw, "GET", "stream", NULL, s->hash, 200, start_ms);
}
