/*
 * probe.c - the audit's HTTP exchanges: the one outbound client (http/client.h, libcurl multi on a
 * libuv loop) on a private loop that the CLI runs until each exchange ends, so the probe sequence
 * reads top to bottom while streams (an SSE GET) run alongside. Bounds: a request budget, a total
 * time limit, an own rate (requests per second; the burst probe is exempt but bounded by its
 * caller), a per-exchange timeout, at most 1 MiB read per answer (64 KiB kept). A target that
 * hangs costs the timeout, one that floods costs 1 MiB; neither stops the audit.
 * Contract: audit_int.h. Read next: probe_url.c (the sequence).
 */
#include "audit_int.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../http/client.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define READ_CAP (1024 * 1024)
#define KEEP_CAP (64 * 1024)

struct mg_audit_probe {
    uv_loop_t loop;
    mg_http_client_t *client;
    mg_audit_limits_t lim;
    unsigned count;
    uint64_t start_ms, last_ms;
    char phase[96];
    int printed;
};

typedef struct ex {
    json_t *rec;
    json_t *headers;
    char *body;
    size_t len;
    int done, stream, cut;
    mg_http_call_t *call;
    uv_timer_t *timer; /* streams: ends the stream after stream_ms; freed from its close callback */
} ex_t;

struct mg_audit_bg {
    ex_t *e;
};

static uint64_t now_ms(mg_audit_probe_t *p)
{
    uv_update_time(&p->loop);
    return uv_now(&p->loop);
}

int mg_audit_probe_new(const mg_audit_limits_t *lim, mg_audit_probe_t **out)
{
    mg_audit_probe_t *p = calloc(1, sizeof *p);
    if (p == NULL)
        return MG_ENOMEM;
    if (uv_loop_init(&p->loop) != 0) {
        free(p);
        return MG_EIO;
    }
    int r = mg_http_client_new(&p->loop, &p->client);
    if (r != 0) {
        uv_loop_close(&p->loop);
        free(p);
        return r;
    }
    p->lim = *lim;
    p->start_ms = now_ms(p);
    *out = p;
    return 0;
}

static void progress(mg_audit_probe_t *p)
{
    if (!p->lim.progress)
        return;
    fprintf(stderr, "\rmcpgate audit: %u requests, %.1f s: %-40.40s", p->count,
            (double)(now_ms(p) - p->start_ms) / 1000.0, p->phase);
    fflush(stderr);
    p->printed = 1;
}

void mg_audit_probe_free(mg_audit_probe_t *p)
{
    if (p == NULL)
        return;
    if (p->printed)
        fputc('\n', stderr);
    mg_http_client_free(p->client);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_loop_close(&p->loop);
    free(p);
}

void mg_audit_probe_phase(mg_audit_probe_t *p, const char *what)
{
    snprintf(p->phase, sizeof p->phase, "%s", what);
    progress(p);
}

unsigned mg_audit_probe_count(const mg_audit_probe_t *p)
{
    return p->count;
}

uint64_t mg_audit_probe_elapsed(const mg_audit_probe_t *p)
{
    uv_update_time((uv_loop_t *)&p->loop);
    return uv_now(&p->loop) - p->start_ms;
}

int mg_audit_probe_spent(const mg_audit_probe_t *p)
{
    return p->count >= p->lim.max_requests || mg_audit_probe_elapsed(p) >= p->lim.time_ms;
}

/* ---------------------------------------------------------------- one exchange */

static void head_cb(void *data, int status, const char *h, size_t len)
{
    ex_t *e = data;
    json_object_set_new(e->rec, "status", json_integer(status));
    /* "Name: value\r\n" lines; names lower-cased, repeats joined with ", " */
    size_t i = 0;
    while (i < len) {
        size_t eol = i;
        while (eol < len && h[eol] != '\n')
            eol++;
        size_t end = eol > i && h[eol - 1] == '\r' ? eol - 1 : eol;
        const char *colon = memchr(h + i, ':', end - i);
        if (colon != NULL && colon > h + i && (size_t)(colon - (h + i)) < 128) {
            char name[128];
            size_t nl = (size_t)(colon - (h + i));
            for (size_t k = 0; k < nl; k++)
                name[k] = (char)tolower((unsigned char)h[i + k]);
            name[nl] = '\0';
            const char *v = colon + 1;
            while (v < h + end && (*v == ' ' || *v == '\t'))
                v++;
            size_t vl = (size_t)(h + end - v);
            const char *old = json_string_value(json_object_get(e->headers, name));
            char *val = malloc((old ? strlen(old) + 2 : 0) + vl + 1);
            if (val != NULL) {
                size_t o = 0;
                if (old != NULL) {
                    memcpy(val, old, strlen(old));
                    o = strlen(old);
                    memcpy(val + o, ", ", 2);
                    o += 2;
                }
                memcpy(val + o, v, vl);
                val[o + vl] = '\0';
                json_t *s = json_stringn_nocheck(val, o + vl);
                if (!mg_json_utf8_valid(val, o + vl)) {
                    json_decref(s);
                    s = json_string("(not UTF-8)");
                }
                json_object_set_new(e->headers, name, s);
                free(val);
            }
        }
        i = eol + 1;
    }
}

static void finish(ex_t *e, const char *why);

static void body_cb(void *data, const char *bytes, size_t len)
{
    ex_t *e = data;
    if (e->done)
        return;
    if (e->len >= KEEP_CAP) {
        e->cut = 1;
        return;
    }
    size_t take = len < KEEP_CAP - e->len ? len : KEEP_CAP - e->len;
    if (take < len)
        e->cut = 1;
    char *g = realloc(e->body, e->len + take + 1);
    if (g == NULL)
        return;
    e->body = g;
    memcpy(e->body + e->len, bytes, take);
    e->len += take;
    e->body[e->len] = '\0';
    /* A stream probed for its first event ends as soon as one is complete. */
    if (e->stream == 2 && (strstr(e->body, "\n\n") || strstr(e->body, "\r\n\r\n"))) {
        mg_http_cancel(e->call);
        finish(e, NULL);
    }
}

static void timer_close_cb(uv_handle_t *h)
{
    free(h);
}

static void noop_cb(uv_timer_t *t)
{
}

static void finish(ex_t *e, const char *why)
{
    if (e->done)
        return;
    e->done = 1;
    e->call = NULL;
    if (why != NULL)
        json_object_set_new(e->rec, "error", json_string(why));
}

static void done_cb(void *data, int err, int status, const char *why)
{
    ex_t *e = data;
    e->call = NULL;
    if (err == MG_ETOOBIG)
        finish(e, "the answer exceeded 1 MiB (read stopped there)");
    else if (err == MG_ETIMEOUT)
        finish(e, status ? "the answer did not end before the timeout" : "no answer before the timeout");
    else if (err != 0)
        finish(e, why && *why ? why : mg_strerror(err));
    else
        finish(e, NULL);
}

static void stream_timer_cb(uv_timer_t *t)
{
    ex_t *e = t->data;
    if (!e->done) {
        mg_http_cancel(e->call);
        finish(e, NULL); /* a stream ends on our side: not an error */
    }
}

static void pace(mg_audit_probe_t *p, const mg_audit_req_t *r)
{
    if (r->unmetered || p->lim.rate == 0)
        return;
    uint64_t gap = 1000 / p->lim.rate, now = now_ms(p);
    if (p->last_ms != 0 && now < p->last_ms + gap) {
        uv_timer_t t;
        uv_timer_init(&p->loop, &t);
        uv_timer_start(&t, noop_cb, p->last_ms + gap - now, 0);
        while (uv_is_active((uv_handle_t *)&t))
            uv_run(&p->loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(&p->loop, UV_RUN_NOWAIT);
    }
    p->last_ms = now_ms(p);
}

static ex_t *ex_start(mg_audit_probe_t *p, const mg_audit_req_t *r)
{
    ex_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->rec = json_object();
    e->headers = json_object();
    if (e->rec == NULL || e->headers == NULL) {
        json_decref(e->rec);
        json_decref(e->headers);
        free(e);
        return NULL;
    }
    json_object_set_new(e->rec, "status", json_integer(0));
    if (mg_audit_probe_spent(p)) {
        finish(e, p->count >= p->lim.max_requests ? "not sent: the request budget (--max-requests) is spent"
                                                  : "not sent: the time limit (--time-limit) is spent");
        return e;
    }
    pace(p, r);
    p->count++;
    progress(p);
    const char *hdrs[64];
    size_t nh = 0;
    char bearer[4096];
    for (size_t i = 0; i + 1 < r->nheaders * 2 && nh + 2 <= 60; i += 2) {
        hdrs[nh++] = r->headers[i];
        hdrs[nh++] = r->headers[i + 1];
    }
    if (r->token != NULL) {
        snprintf(bearer, sizeof bearer, "Bearer %s", r->token);
        hdrs[nh++] = "Authorization";
        hdrs[nh++] = bearer;
    }
    uint64_t left =
        p->lim.time_ms > mg_audit_probe_elapsed(p) ? p->lim.time_ms - mg_audit_probe_elapsed(p) : 1;
    long to = r->timeout_ms > 0 ? r->timeout_ms : (long)p->lim.timeout_ms;
    if ((uint64_t)to > left)
        to = (long)left;
    mg_http_req_t hr = {0};
    hr.url = r->url;
    hr.method = r->method;
    hr.headers = hdrs;
    hr.nheaders = nh / 2;
    hr.body = r->body;
    hr.len = r->len;
    hr.timeout_ms = r->stream ? -1 : to;
    hr.connect_timeout_ms = to;
    hr.max_body = READ_CAP;
    e->stream = r->stream;
    int rc = mg_http_request(p->client, &hr, head_cb, body_cb, done_cb, e, &e->call);
    memset(bearer, 0, sizeof bearer);
    if (rc != 0) {
        finish(e, mg_strerror(rc));
        return e;
    }
    if (r->stream) {
        e->timer = malloc(sizeof *e->timer);
        if (e->timer != NULL) {
            uv_timer_init(&p->loop, e->timer);
            e->timer->data = e;
            uv_timer_start(e->timer, stream_timer_cb, (uint64_t)(r->stream_ms > 0 ? r->stream_ms : 1000), 0);
        }
    }
    return e;
}

static json_t *ex_end(ex_t *e)
{
    if (e->timer != NULL) {
        uv_timer_stop(e->timer);
        uv_close((uv_handle_t *)e->timer, timer_close_cb);
    }
    json_object_set_new(e->rec, "headers", e->headers);
    json_t *b = NULL;
    if (e->body != NULL) {
        b = mg_json_utf8_valid(e->body, e->len) ? json_stringn(e->body, e->len) : NULL;
        if (b == NULL) { /* not UTF-8: keep the printable ASCII */
            for (size_t i = 0; i < e->len; i++)
                if ((unsigned char)e->body[i] >= 0x80 || e->body[i] == 0)
                    e->body[i] = '?';
            b = json_stringn(e->body, e->len);
        }
    }
    json_object_set_new(e->rec, "body", b ? b : json_string(""));
    if (e->cut)
        json_object_set_new(e->rec, "cut", json_true());
    free(e->body);
    json_t *rec = e->rec;
    free(e);
    return rec;
}

json_t *mg_audit_probe_do(mg_audit_probe_t *p, const mg_audit_req_t *r)
{
    ex_t *e = ex_start(p, r);
    if (e == NULL)
        return NULL;
    while (!e->done)
        uv_run(&p->loop, UV_RUN_ONCE);
    return ex_end(e);
}

void mg_audit_probe_many(mg_audit_probe_t *p, const mg_audit_req_t *r, size_t n, json_t **out)
{
    ex_t *e[16];
    if (n > 16)
        n = 16;
    for (size_t i = 0; i < n; i++)
        e[i] = ex_start(p, &r[i]);
    for (;;) {
        int all = 1;
        for (size_t i = 0; i < n; i++)
            all &= e[i] == NULL || e[i]->done;
        if (all)
            break;
        uv_run(&p->loop, UV_RUN_ONCE);
    }
    for (size_t i = 0; i < n; i++)
        out[i] = e[i] ? ex_end(e[i]) : NULL;
}

mg_audit_bg_t *mg_audit_probe_start(mg_audit_probe_t *p, const mg_audit_req_t *r)
{
    mg_audit_bg_t *bg = malloc(sizeof *bg);
    if (bg == NULL)
        return NULL;
    bg->e = ex_start(p, r);
    if (bg->e == NULL) {
        free(bg);
        return NULL;
    }
    return bg;
}

json_t *mg_audit_probe_collect(mg_audit_probe_t *p, mg_audit_bg_t *bg, long grace_ms)
{
    if (bg == NULL)
        return NULL;
    uv_timer_t t;
    uv_timer_init(&p->loop, &t);
    uv_timer_start(&t, noop_cb, (uint64_t)grace_ms, 0);
    while (!bg->e->done && uv_is_active((uv_handle_t *)&t))
        uv_run(&p->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    if (!bg->e->done) {
        mg_http_cancel(bg->e->call);
        finish(bg->e, NULL);
    }
    uv_run(&p->loop, UV_RUN_NOWAIT);
    json_t *rec = ex_end(bg->e);
    free(bg);
    return rec;
}
