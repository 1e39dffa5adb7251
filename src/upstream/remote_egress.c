/*
 * remote_egress.c - one outbound request for a remote upstream's credentials (the token endpoint,
 * the issuer's discovery documents, RFC 8693 token exchange) under the same SSRF guard as the
 * upstream's own URL: the URL's host is resolved on the loop's thread pool (uv_getaddrinfo), the guard
 * picks an allowed address (mg__egress_pick: loopback, private, link-local, metadata, ... refused
 * unless inside gateway.egress.allowCidrs), and the request is pinned to that address
 * (CURLOPT_RESOLVE) so a second DNS answer cannot move it. Redirects are never followed
 * (http/client.h). Every credential fetch of remote_auth.c goes through mg__egress_request(); the
 * upstream's own requests are pinned by remote.c at session start. Contract: remote_int.h.
 * Read next: remote_conn.c (the guard), remote_auth.c (the caller).
 */
#include "../common/err.h"
#include "remote_int.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct mg__egress_call {
    uv_loop_t *loop;
    mg_http_client_t *http;
    const struct mg_egress_config *egress;
    mg_http_req_t req; /* its strings point into arena */
    char *arena;
    size_t arena_len;
    const char **headers;
    mg__url_t url;
    char pin[320];
    uv_getaddrinfo_t gai;
    int resolving, cancelled;
    mg_http_call_t *call;
    mg_http_body_cb body_cb;
    mg_http_done_cb done_cb;
    void *data;
};

static void call_free(mg__egress_call_t *c)
{
    if (c->arena != NULL) /* it holds the client secret */
        explicit_bzero(c->arena, c->arena_len);
    free(c->arena);
    free(c->headers);
    free(c);
}

/* Copies s into the arena at *at; NULL stays NULL. */
static const char *put(char *arena, size_t *at, const char *s, size_t len)
{
    if (s == NULL)
        return NULL;
    char *d = arena + *at;
    memcpy(d, s, len);
    d[len] = '\0';
    *at += len + 1;
    return d;
}

/* A copy of r whose strings live in c's arena (the request goes out after the lookup). */
static int copy_req(mg__egress_call_t *c, const mg_http_req_t *r)
{
    const char *strs[5] = {r->url, r->method, r->basic_user, r->basic_pass, r->ca_file};
    size_t need = r->body != NULL ? r->len + 1 : 0;
    for (size_t i = 0; i < 5; i++)
        need += strs[i] != NULL ? strlen(strs[i]) + 1 : 0;
    for (size_t i = 0; i < 2 * r->nheaders; i++)
        need += strlen(r->headers[i]) + 1;
    c->arena = malloc(need + 1);
    c->headers = r->nheaders ? calloc(2 * r->nheaders, sizeof *c->headers) : NULL;
    if (c->arena == NULL || (r->nheaders && c->headers == NULL))
        return MG_ENOMEM;
    c->arena_len = need + 1;
    size_t at = 0;
    c->req = *r;
    c->req.url = put(c->arena, &at, r->url, strlen(r->url));
    c->req.method = put(c->arena, &at, r->method, r->method ? strlen(r->method) : 0);
    c->req.basic_user = put(c->arena, &at, r->basic_user, r->basic_user ? strlen(r->basic_user) : 0);
    c->req.basic_pass = put(c->arena, &at, r->basic_pass, r->basic_pass ? strlen(r->basic_pass) : 0);
    c->req.ca_file = put(c->arena, &at, r->ca_file, r->ca_file ? strlen(r->ca_file) : 0);
    c->req.body = put(c->arena, &at, r->body, r->len);
    for (size_t i = 0; i < 2 * r->nheaders; i++)
        c->headers[i] = put(c->arena, &at, r->headers[i], strlen(r->headers[i]));
    c->req.headers = c->headers;
    c->req.resolve = NULL;
    c->req.env_proxy = 0; /* a proxy would connect where the guard did not look */
    return 0;
}

static void body_cb(void *data, const char *bytes, size_t len)
{
    mg__egress_call_t *c = data;
    if (c->body_cb != NULL)
        c->body_cb(c->data, bytes, len);
}

static void done_cb(void *data, int err, int status, const char *why)
{
    mg__egress_call_t *c = data;
    mg_http_done_cb cb = c->done_cb;
    void *d = c->data;
    call_free(c);
    cb(d, err, status, why);
}

static void resolved_cb(uv_getaddrinfo_t *g, int status, struct addrinfo *ai)
{
    mg__egress_call_t *c = g->data;
    c->resolving = 0;
    if (c->cancelled) {
        uv_freeaddrinfo(ai);
        call_free(c);
        return;
    }
    char why[1024];
    if (status != 0) {
        uv_freeaddrinfo(ai);
        snprintf(why, sizeof why, "cannot resolve %s: %s", c->url.host, uv_strerror(status));
        done_cb(c, MG_ENOTFOUND, 0, why);
        return;
    }
    char addr[64], guard[512];
    int rc = mg__egress_pick(ai, c->egress, addr, sizeof addr, guard, sizeof guard);
    uv_freeaddrinfo(ai);
    if (rc != 0) {
        snprintf(why, sizeof why, "%s: refused: %s", c->url.host, guard);
        done_cb(c, rc, 0, why);
        return;
    }
    if (!c->url.literal) {
        snprintf(c->pin, sizeof c->pin, strchr(addr, ':') ? "%s:%u:[%s]" : "%s:%u:%s", c->url.host,
                 c->url.port, addr);
        c->req.resolve = c->pin;
    }
    rc = mg_http_request(c->http, &c->req, NULL, body_cb, done_cb, c, &c->call);
    if (rc != 0)
        done_cb(c, rc, 0, "the request could not be started");
}

int mg__egress_request(uv_loop_t *loop, mg_http_client_t *http, const struct mg_egress_config *egress,
                       const mg_http_req_t *r, mg_http_body_cb bcb, mg_http_done_cb dcb, void *data,
                       mg__egress_call_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (r == NULL || r->url == NULL || dcb == NULL || http == NULL)
        return MG_EINVAL;
    mg__egress_call_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return MG_ENOMEM;
    if (mg__url_parse(r->url, &c->url) != 0) {
        call_free(c);
        return MG_EINVAL;
    }
    int rc = copy_req(c, r);
    if (rc != 0) {
        call_free(c);
        return rc;
    }
    c->loop = loop;
    c->http = http;
    c->egress = egress;
    c->body_cb = bcb;
    c->done_cb = dcb;
    c->data = data;
    c->gai.data = c;
    char port[8];
    snprintf(port, sizeof port, "%u", c->url.port);
    struct addrinfo hints = {0};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = c->url.literal ? AI_NUMERICHOST : 0;
    if (uv_getaddrinfo(loop, &c->gai, resolved_cb, c->url.host, port, &hints) != 0) {
        call_free(c);
        return MG_ENOMEM;
    }
    c->resolving = 1;
    if (out != NULL)
        *out = c;
    return 0;
}

void mg__egress_cancel(mg__egress_call_t *c)
{
    if (c == NULL)
        return;
    if (c->resolving) { /* freed by its lookup's callback, which still runs */
        c->cancelled = 1;
        uv_cancel((uv_req_t *)&c->gai);
        return;
    }
    mg_http_cancel(c->call);
    call_free(c);
}
