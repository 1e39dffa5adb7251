/*
 * cluster_internal.c - the answering side of replica-to-replica HTTP: /mcpgate/internal/v1/...,
 * reached only with the cluster key (gateway.sessions.secret). forward: the session's record is
 * loaded and must name this replica as the owner and the same principal; the call is dispatched
 * here and its related messages and answer are relayed back as SSE events. modern: a client's
 * 2026-07-28 MRTR retry proxied from another replica, handled as if it had come to /mcp.
 * Read next: cluster_forward.c (the asking side), cluster_int.h (the formats), reply.c (relay).
 */
#include "../common/log.h"
#include "../jsonrpc/jsonrpc.h"
#include "cluster_int.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mg_relay {
    mg_sse_conn_t *conn;
};

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

/* The traceparent header of a forward (gateway.tracing), parsed into a new context; NULL when
 * absent or malformed. */
static mg_trace_ctx_t *forwarded_trace(h2o_req_t *req)
{
    int dup = 0, sdup = 0;
    h2o_iovec_t tp = mg__req_header(req, "traceparent", &dup);
    h2o_iovec_t ts = mg__req_header(req, "tracestate", &sdup);
    mg_trace_ctx_t *ctx = tp.base != NULL && !dup ? malloc(sizeof *ctx) : NULL;
    if (ctx != NULL && mg_trace_ctx_parse(tp.base, tp.len, sdup ? NULL : ts.base, ts.len, ctx) != 0) {
        free(ctx);
        ctx = NULL;
    }
    return ctx;
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
        mg_session_t *s = mg__cluster_adopt(cl, q->scope, q->id, rec);
        if (s == NULL) {
            internal_answer(req, 503, "no room for the session");
        } else {
            mg_exchange_t *x = mg__exchange_new(gw, req, s, q->start_ms);
            mg_relay_t *r = h2o_mem_alloc_pool(&req->pool, sizeof(*r));
            r->conn = NULL;
            if (x != NULL && gw->trace != NULL) /* the asking replica's call span (cluster_int.h) */
                x->trace_parent = forwarded_trace(req);
            if (x != NULL) {
                mg_principal_unref(x->principal);
                x->principal = mg__cluster_principal_from(json_object_get(q->body, "principal"));
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
