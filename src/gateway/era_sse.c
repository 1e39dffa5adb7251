/*
 * era_sse.c - the 2024-11-05 HTTP+SSE transport, served on /sse and /messages when
 * gateway.legacySse is on: a migration aid for clients that speak nothing newer, in front of any
 * upstream. The pipeline (pipeline.c) runs the same phases as for /mcp (origin, CORS, admit, auth,
 * parse, session, limit) and calls these two at its route phase:
 *
 *   GET /sse               a new session (session.c) whose GET stream is this response; the first
 *                          event is "endpoint" with "/messages?sessionId=<id>" (the session id, a
 *                          CSPRNG value bound to the caller's principal, never a credential).
 *   POST /messages?sessionId=<id>
 *                          the client's messages for that session: answered 202; every response,
 *                          and every server->client request or notification, goes out on the /sse
 *                          stream as a "message" event (JSON-RPC in data). initialize is answered
 *                          here, on the session GET /sse made.
 *
 * Session mapping: the legacy session is a session of the 2025 era whose streams are one: calls
 * answer through an exchange bound to the session's GET stream, so server->client requests,
 * notifications, cancellation and the call phases (rate limits, routing, pins, tenant pools) work
 * as on /mcp. The session ends when its /sse response ends (client gone, or the gateway stopping):
 * its calls are failed and cancelled upstream, its own children stopped. A legacy session lives only
 * on the replica that holds its /sse stream (mg__session_shared() is 0: no record, no event log);
 * with several replicas the balancer must send a client's /sse and /messages to the same replica.
 * Every response carries Deprecation (RFC 9745) and a Link to the transport's successor.
 * Read next: pipeline.c (the phases before these), era_legacy.c (the /mcp equivalent), reply.c.
 */
#include "../common/err.h"
#include "../common/log.h"
#include "../common/str.h"
#include "../jsonrpc/jsonrpc.h"
#include "toolsearch_hooks.h"
#include "gateway_int.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The legacy side of a session (s->sse). */
struct mg_sse_session {
    char profile[72]; /* tool profile chosen on GET /sse (header or ?profile=), applied at initialize */
    int initialized;  /* initialize answered */
    int close_queued; /* the /sse response ended: the session closes from an idle callback */
    int probed;       /* counted in gw->sse_probe */
    char peer[48];
};

/* 2025-03-26, the revision that replaced HTTP+SSE with Streamable HTTP (RFC 9745 date form). */
#define DEPRECATED_SINCE "@1742947200"
#define SUCCESSOR_LINK                                                                                       \
    "<https://modelcontextprotocol.io/specification/2025-03-26/basic/transports#streamable-http>; "          \
    "rel=\"deprecation\"; type=\"text/html\""

void mg__sse_deprecation_headers(h2o_req_t *req)
{
    mg__http_add_header(req, "deprecation", DEPRECATED_SINCE);
    mg__http_add_header(req, "link", SUCCESSOR_LINK);
}

/* ---- the probe: a legacy client that went away ends its session ----
 * h2o does not read an HTTP/1 connection while it streams a response, so a client that closed its
 * /sse stream would be noticed only when a write fails (the 15 s keep-alive, twice). Once a second,
 * while legacy sessions exist, each stream's socket is peeked (http/sse.h) and a closed one ends
 * its session: its calls are cancelled upstream and its own children stopped. So does a stream the
 * gateway dropped itself (a client too slow to read, whose connection was abandoned). */
#define PROBE_MS 1000

typedef struct mg_sse_probe {
    uv_timer_t timer;
    mg_gateway_t *gw;
    unsigned sessions;
} mg_sse_probe_t;

static void close_idle_cb(uv_idle_t *h);

/* Closes s from an idle callback (never inside a connection's or the map walk's own callback). */
static void queue_close(mg_session_t *s)
{
    if (s->closing || s->sse == NULL || s->sse->close_queued)
        return;
    s->sse->close_queued = 1;
    uv_idle_t *h = malloc(sizeof(*h));
    mg__session_ref(s);
    if (h == NULL) {
        mg__session_close(s, "legacy HTTP+SSE stream ended");
        mg__session_unref(s);
        return;
    }
    uv_idle_init(s->gw->loop, h);
    h->data = s;
    uv_idle_start(h, close_idle_cb);
}

static void probe_cb(uv_timer_t *t)
{
    mg_gateway_t *gw = ((mg_sse_probe_t *)t->data)->gw;
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        if (s->sse == NULL)
            continue;
        /* Gone, or dropped by the gateway (a client too slow to read: session.c write_conn): a
         * legacy session cannot outlive its one stream. */
        mg_stream_t *st = s->get_stream;
        if (st == NULL || st->conn == NULL || mg_sse_conn_peer_closed(st->conn))
            queue_close(s);
    }
}

static void probe_closed_cb(uv_handle_t *h)
{
    free(h->data);
}

static void probe_add(mg_gateway_t *gw)
{
    if (gw->sse_probe == NULL) {
        mg_sse_probe_t *p = calloc(1, sizeof(*p));
        if (p == NULL)
            return; /* the keep-alive still finds closed streams, later */
        p->gw = gw;
        uv_timer_init(gw->loop, &p->timer);
        p->timer.data = p;
        uv_unref((uv_handle_t *)&p->timer); /* never keeps the loop alive */
        uv_timer_start(&p->timer, probe_cb, PROBE_MS, PROBE_MS);
        gw->sse_probe = p;
    }
    gw->sse_probe->sessions++;
}

void mg__sse_session_free(mg_session_t *s)
{
    if (s->sse == NULL)
        return;
    mg_sse_probe_t *p = s->gw->sse_probe;
    if (s->sse->probed && p != NULL && --p->sessions == 0) {
        uv_timer_stop(&p->timer);
        uv_close((uv_handle_t *)&p->timer, probe_closed_cb);
        s->gw->sse_probe = NULL;
    }
    free(s->sse);
    s->sse = NULL;
}

/* ---- GET /sse ---- */

static void close_idle_cb(uv_idle_t *h)
{
    mg_session_t *s = h->data;
    uv_idle_stop(h);
    uv_close((uv_handle_t *)h, (uv_close_cb)free);
    mg__session_close(s, "legacy HTTP+SSE stream ended");
    mg__session_unref(s);
}

/* The /sse response ended (client gone or the response finished): the session goes with it. */
static void stream_gone_cb(mg_sse_conn_t *conn, void *data)
{
    mg_stream_t *st = data;
    if (st->conn == conn)
        st->conn = NULL;
    queue_close(st->s);
}

void mg__sse_open(mg_gateway_t *gw, h2o_req_t *req, uint64_t start_ms)
{
    char profile[72], why[400];
    int pdup = 0;
    h2o_iovec_t ph = mg__req_header(req, "mcpgate-profile", &pdup);
    int has_q = req->query_at != SIZE_MAX;
    if (pdup || mg_toolsearch_profile_select(&gw->cfg->tools, ph.base, ph.len,
                                             has_q ? req->path.base + req->query_at + 1 : NULL,
                                             has_q ? req->path.len - req->query_at - 1 : 0, profile,
                                             sizeof profile, why, sizeof why) != 0) {
        mg__http_fail(gw, req, MG_EPARAMS, pdup ? "Mcpgate-Profile header given twice" : why, start_ms);
        return;
    }
    mg_session_t *s;
    /* The version is settled by initialize; until then the session answers nothing else. */
    int r = mg__session_create(gw, "2024-11-05", NULL, NULL, &s);
    if (r == 0 && (s->sse = calloc(1, sizeof(*s->sse))) == NULL) {
        mg__session_close(s, "out of memory");
        r = MG_ENOMEM;
    }
    if (r != 0) {
        const char *hdrs[] = {"retry-after", "5"};
        json_t *e =
            mg_rpc_error(NULL, mg_err_jsonrpc_code(MG_EBUSY),
                         r == MG_EBUSY ? "session limit reached (gateway.limits.maxSessions); retry later"
                                       : "out of memory",
                         NULL);
        mg__http_send_json(req, mg_err_http_status(MG_EBUSY), e, hdrs, 1);
        json_decref(e);
        mg__http_log(gw, "GET", "sse", NULL, NULL, 503, start_ms);
        return;
    }
    mg_strlcpy(s->sse->profile, sizeof s->sse->profile, profile);
    probe_add(gw);
    s->sse->probed = gw->sse_probe != NULL;
    mg__req_peer(req, s->sse->peer, sizeof s->sse->peer);
    s->principal = mg_principal_ref(mg_auth_principal_of(gw->auth, req));
    if (gw->cluster != NULL) /* its isolation "session" children run here, where the stream is */
        mg_strlcpy(s->owner, sizeof s->owner, mg__cluster_replica(gw));
    mg_stream_t *st = mg__stream_new(s, 1);
    mg_sse_conn_t *c = st != NULL ? mg_sse_conn_start(req, NULL, 0, stream_gone_cb, st) : NULL;
    if (c == NULL) {
        if (st == NULL)
            mg__http_fail(gw, req, MG_ENOMEM, "out of memory", start_ms);
        mg__session_close(s, "out of memory");
        return;
    }
    mg__stream_attach(st, c);
    char ev[160];
    int n = snprintf(ev, sizeof ev, "event: endpoint\ndata: /messages?sessionId=%s\n\n", s->id);
    mg_sse_conn_write(c, ev, (size_t)n);
    mg__http_log(gw, "GET", "sse", NULL, s->hash, 200, start_ms);
}

/* ---- POST /messages ---- */

/* initialize on the session GET /sse made: the answer goes out on the stream. */
static void sse_initialize(mg_gateway_t *gw, mg_session_t *s, const json_t *msg)
{
    json_t *params = mg_rpc_params(msg);
    const char *requested = json_string_value(json_object_get(params, "protocolVersion"));
    json_t *out;
    if (!json_is_object(params) || requested == NULL) {
        out = mg_rpc_error(mg_rpc_id(msg), mg_err_jsonrpc_code(MG_EPARAMS),
                           "initialize needs params.protocolVersion (a string)", NULL);
    } else if (s->sse->initialized) {
        out = mg_rpc_error(
            mg_rpc_id(msg), mg_err_jsonrpc_code(MG_EREQUEST),
            "initialize was already answered on this session; open GET /sse again for a new one", NULL);
    } else {
        /* 2024-11-05 is what this transport's clients speak; it behaves as the oldest session era
         * revision here (no batches: only 2025-03-26 had them). */
        int legacy = strcmp(requested, "2024-11-05") == 0;
        const char *version = legacy || mg_version_rank(requested) ? requested : MG_LATEST_VERSION;
        mg_strlcpy(s->version, sizeof s->version, version);
        s->rank = legacy ? MG_VERSION_2025_03_26 : mg_version_rank(version);
        json_t *caps = json_object_get(params, "capabilities");
        if (json_is_object(caps) && json_object_size(caps) > 0) {
            json_decref(s->caps);
            s->caps = json_incref(caps);
        }
        mg__toolsearch_session_open(s, s->sse->profile); /* out of memory: the defaults apply */
        s->sse->initialized = 1;
        out = mg_rpc_result(mg_rpc_id(msg), mg__initialize_result(gw, version));
        json_t *ci = json_object_get(params, "clientInfo");
        const char *client = json_string_value(json_object_get(ci, "name"));
        const char *cver = json_string_value(json_object_get(ci, "version"));
        /* One line per legacy session: which clients still need the deprecated transport. */
        mg_log_json(MG_LOG_WARN,
                    "legacy HTTP+SSE session (deprecated 2024-11-05 transport, served because "
                    "gateway.legacySse is on); move this client to Streamable HTTP on /mcp",
                    json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "session", s->hash, "version", version,
                              "requested", requested, "client", client ? client : "", "clientVersion",
                              cver ? cver : "", "peer", s->sse->peer));
    }
    mg__stream_push(s->get_stream, out);
    json_decref(out);
}

void mg__sse_post(mg_gateway_t *gw, h2o_req_t *req, mg_session_t *s, json_t *body, int batch, size_t n,
                  const mg_rpc_kind_t *kinds, size_t nreq, uint64_t start_ms)
{
    const char *first = mg_rpc_method(batch ? json_array_get(body, 0) : body);
    if (!batch && nreq == 1 && first != NULL && strcmp(first, "initialize") == 0) {
        sse_initialize(gw, s, body);
        mg__http_send_body(req, 202, NULL, "", 0, NULL, 0);
        mg__http_log(gw, "POST", "initialize", NULL, s->hash, 202, start_ms);
        return;
    }
    if (!s->sse->initialized && nreq > 0) {
        mg__http_fail(gw, req, MG_EREQUEST,
                      "Bad Request: this session is not initialized yet; send initialize first", start_ms);
        return;
    }
    /* Notifications and responses first, as on /mcp (era_legacy.c). */
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
    if (nreq > 0) {
        /* One exchange bound to the /sse stream: responses and related messages go out there. */
        mg_exchange_t *x = mg__exchange_new(gw, req, s, start_ms);
        if (x == NULL) {
            mg__http_fail(gw, req, MG_ENOMEM, "out of memory", start_ms);
            return;
        }
        x->batch = batch;
        x->accept_sse = 1;
        x->pending = (unsigned)nreq;
        x->results = json_array();
        x->stream = s->get_stream;
        x->logged = 1; /* the one line is the 202 below */
        mg__exchange_ref(x);
        for (size_t i = 0; i < n; i++) {
            json_t *m = batch ? json_array_get(body, i) : body;
            if (kinds[i] == MG_RPC_REQUEST)
                mg__dispatch_request(gw, s, x, m);
        }
        mg__exchange_unref(x);
    }
    mg__http_send_body(req, 202, NULL, "", 0, NULL, 0);
    mg__http_log(gw, "POST", batch ? "batch" : first ? first : "response", NULL, s->hash, 202, start_ms);
}
