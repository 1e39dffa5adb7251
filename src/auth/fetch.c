/*
 * fetch.c - a whole, bounded response from the one outbound HTTP client (fetch.h on http/client.h):
 * the body is collected up to max_bytes and handed over NUL-terminated. The client does the I/O,
 * the deadline, the size bound and the callback rule; this file only keeps the bytes.
 */
#include "fetch.h"
#include "../common/err.h"
#include "../http/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mg_fetch {
    mg_http_client_t *http;
    mg_fetch_req_t *reqs; /* in flight: mg_fetch_free() releases them */
};

struct mg_fetch_req {
    mg_fetch_t *f;
    mg_fetch_req_t *next, *prev;
    mg_http_call_t *call;
    mg_fetch_cb cb;
    void *data;
    char *body;
    size_t len, cap;
    int nomem;
};

static void req_free(mg_fetch_req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        r->f->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r->body);
    free(r);
}

static void body_cb(void *data, const char *bytes, size_t len)
{
    mg_fetch_req_t *r = data;
    if (r->nomem)
        return;
    if (r->len + len + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + len + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (b == NULL) {
            r->nomem = 1;
            mg_http_cancel(r->call);
            r->cb(r->data, MG_ENOMEM, 0, "", 0, "out of memory");
            req_free(r);
            return;
        }
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, bytes, len);
    r->len += len;
    r->body[r->len] = '\0';
}

static void done_cb(void *data, int err, int status, const char *why)
{
    mg_fetch_req_t *r = data;
    r->cb(r->data, err, status, r->body ? r->body : "", r->body ? r->len : 0, why);
    req_free(r);
}

int mg_fetch_new(uv_loop_t *loop, mg_fetch_t **out)
{
    mg_fetch_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return MG_ENOMEM;
    int r = mg_http_client_new(loop, &f->http);
    if (r != 0) {
        free(f);
        return r;
    }
    *out = f;
    return 0;
}

int mg_fetch_start(mg_fetch_t *f, const mg_fetch_opts_t *o, mg_fetch_cb cb, void *data, mg_fetch_req_t **out)
{
    if (f == NULL || o == NULL || o->url == NULL || cb == NULL)
        return MG_EINVAL;
    mg_fetch_req_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return MG_ENOMEM;
    r->f = f;
    r->cb = cb;
    r->data = data;
    const char *hdrs[] = {"accept",       o->accept ? o->accept : "application/json",
                          "user-agent",   "mcpgate/" MG_VERSION,
                          "content-type", "application/x-www-form-urlencoded"};
    mg_http_req_t hr = {.url = o->url,
                        .headers = hdrs,
                        .nheaders = o->post_form != NULL ? 3 : 2,
                        .body = o->post_form,
                        .len = o->post_form ? strlen(o->post_form) : 0,
                        .basic_user = o->basic_user,
                        .basic_pass = o->basic_pass,
                        .timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000L,
                        .max_body = o->max_bytes ? o->max_bytes : 1024 * 1024,
                        .env_proxy = 1};
    int rc = mg_http_request(f->http, &hr, NULL, body_cb, done_cb, r, &r->call);
    if (rc != 0) {
        free(r);
        return rc;
    }
    r->next = f->reqs;
    if (f->reqs)
        f->reqs->prev = r;
    f->reqs = r;
    if (out != NULL)
        *out = r;
    return 0;
}

void mg_fetch_cancel(mg_fetch_req_t *r)
{
    if (r == NULL)
        return;
    mg_http_cancel(r->call);
    req_free(r);
}

void mg_fetch_free(mg_fetch_t *f)
{
    if (f == NULL)
        return;
    while (f->reqs != NULL)
        mg_fetch_cancel(f->reqs);
    mg_http_client_free(f->http);
    free(f);
}
