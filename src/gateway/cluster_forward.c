/*
 * cluster_forward.c - the asking side of replica-to-replica HTTP (http/client.h). A call that needs
 * the session's isolated children, which run on another replica (the record's owner), is sent to
 * that replica's /mcpgate/internal/v1/forward and its related messages and answer come back as a
 * stream; an owner that is gone is cleared so the next call claims, and the client gets an
 * explicit "upstream state lost" once. A 2026-07-28 MRTR retry that reaches a replica other than
 * the one holding the suspended call is proxied there whole (/mcpgate/internal/v1/modern).
 * Every forwarded call ends through mg__cluster_call_done() (from call_finish). Read next:
 * cluster_internal.c (the other side), cluster_int.h (the formats), http/client.h.
 */
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../jsonrpc/jsonrpc.h"
#include "cluster_int.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
                             mg__cluster_principal_json(c->principal), "msg", f->msg);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char tp[MG_TRACEPARENT_LEN + 1];
    const char *ts = mg_span_tracestate(c->span);
    const char *hdrs[] = {KEY_HEADER,     cl->secret ? cl->secret : "",
                          "content-type", "application/json",
                          "traceparent",  tp,
                          "tracestate",   ts ? ts : ""};
    /* name/value pairs; traced: the owner's call span becomes a child of this call's */
    size_t nh = mg_span_traceparent(c->span, tp, sizeof tp) ? (ts != NULL ? 4 : 3) : 2;
    char url[400];
    snprintf(url, sizeof url, "http://%s%s", value, INTERNAL_PATH);
    mg_http_req_t hr = {.url = url,
                        .headers = hdrs,
                        .nheaders = nh,
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
    mg__cluster_rec_key(s, f->key, sizeof f->key);
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

/* ---- teardown ---- */

void mg__cluster_forward_free(mg_cluster_t *cl)
{
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
}
