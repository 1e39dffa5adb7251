/*
 * http.c - a minimal HTTP/1.1 keep-alive client connection on libuv for mcpgate-bench (bench.h).
 *
 * Contract: one request in flight per connection; the caller builds it in mg_bench_conn_begin()'s
 * buffer, mg_bench_conn_send() (re)connects lazily. Responses: head (cap 64 KiB), body framed by
 * Content-Length, chunked coding or connection close; 1xx skipped. A request that dies before any
 * response byte on a reused connection (idle keep-alive closed) is resent once on a new one. Reads
 * share one buffer; failures report from the handle's close callback, so the callee may resend.
 * Read next: mcp.c (what the requests are).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bench.h"

#define HEAD_MAX (64 * 1024)

enum { R_HEAD, R_BODY_CL, R_CHUNK_SIZE, R_CHUNK_DATA, R_CHUNK_CRLF, R_TRAILER, R_BODY_EOF, R_DONE };

static char read_buf[256 * 1024];

/* ---- buffers ---- */

int mg_bench_buf_append(mg_bench_buf_t *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (b->max && b->len + n > b->max)
            return -1;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int mg_bench_buf_printf(mg_bench_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    for (int pass = 0; pass < 2; pass++) {
        size_t room = b->cap > b->len ? b->cap - b->len : 0;
        va_start(ap, fmt);
        int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -1;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return 0;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        if (b->max && b->len + (size_t)n > b->max)
            return -1;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    return -1;
}

void mg_bench_buf_free(mg_bench_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static void buf_reset(mg_bench_buf_t *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

/* ---- connection lifetime ---- */

static void start_connect(mg_bench_conn_t *c);
static void start_write(mg_bench_conn_t *c);

static uint64_t secs_to_ms(double s)
{
    return s <= 0 ? 0 : (uint64_t)(s * 1000.0 + 0.5);
}

static void reset_response(mg_bench_conn_t *c)
{
    c->rphase = R_HEAD;
    buf_reset(&c->head);
    buf_reset(&c->body);
    c->remaining = 0;
    c->line_len = 0;
    c->got = 0;
    c->status = 0;
    c->keepalive = 1;
    c->is_sse = 0;
}

static void on_closed(uv_handle_t *h)
{
    mg_bench_conn_t *c = h->data;
    c->state = MG_BENCH_CONN_CLOSED;
    c->writing = 0;
    c->write_deferred = 0;
    if (c->pending_send) {
        c->pending_send = 0;
        start_connect(c);
        return;
    }
    if (c->fail_err != 0 && c->busy) {
        int err = c->fail_err;
        c->fail_err = 0;
        c->busy = 0;
        c->done_cb(c, err);
    }
}

static void close_tcp(mg_bench_conn_t *c)
{
    if (c->state == MG_BENCH_CONN_CONNECTING || c->state == MG_BENCH_CONN_OPEN) {
        c->state = MG_BENCH_CONN_CLOSING;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

/* Fails the in-flight request with err (reported once the handle is closed), or resends it once
 * on a fresh connection when a reused connection died before any response byte. */
static void fail(mg_bench_conn_t *c, int err)
{
    uv_timer_stop(&c->timer);
    if (c->state == MG_BENCH_CONN_CLOSING || c->state == MG_BENCH_CONN_CLOSED)
        return;
    int stale =
        c->used && c->got == 0 && !c->retried && (err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE);
    if (stale) {
        c->retried = 1;
        c->pending_send = 1;
    } else {
        c->fail_err = err;
    }
    close_tcp(c);
}

static void on_timer(uv_timer_t *t)
{
    mg_bench_conn_t *c = t->data;
    if (c->busy)
        fail(c, UV_ETIMEDOUT);
}

/* Frees a response buffer that grew past 4 KiB (e.g. for tools/list), so that 10,000 idle
 * connections cost ~2 KiB each. Only once the response has been handed over. */
static void trim(mg_bench_buf_t *b)
{
    if (b->cap > 4096) {
        size_t max = b->max;
        mg_bench_buf_free(b);
        b->max = max;
    }
}

static void complete(mg_bench_conn_t *c)
{
    uv_timer_stop(&c->timer);
    c->busy = 0;
    c->used = 1;
    if (!c->keepalive)
        close_tcp(c);
    c->done_cb(c, 0);
    /* the callee is done with this response (a new request, if any, has received nothing yet) */
    trim(&c->head);
    trim(&c->body);
}

/* ---- response parsing ---- */

static int header_is(const char *name, size_t nlen, const char *want)
{
    return nlen == strlen(want) && strncasecmp(name, want, nlen) == 0;
}

static int has_token(const char *v, size_t vlen, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i + tl <= vlen; i++) {
        if (strncasecmp(v + i, tok, tl) == 0)
            return 1;
    }
    return 0;
}

/* Parses the status line and headers in c->head (ending with an empty line). Returns 0 or -1. */
static int parse_head(mg_bench_conn_t *c)
{
    const char *p = c->head.p, *end = c->head.p + c->head.len;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (eol == NULL || end - p < 12 || strncmp(p, "HTTP/1.", 7) != 0)
        return -1;
    int http10 = p[7] == '0';
    if (p[8] != ' ' || p[9] < '1' || p[9] > '5')
        return -1;
    c->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    c->keepalive = !http10;
    int chunked = 0, have_cl = 0;
    uint64_t cl = 0;
    for (p = eol + 1; p < end; p = eol + 1) {
        eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            break;
        const char *le = eol;
        if (le > p && le[-1] == '\r')
            le--;
        if (le == p)
            break;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon == NULL)
            return -1;
        size_t nlen = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
            v++;
        size_t vlen = (size_t)(le - v);
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        if (header_is(p, nlen, "content-length")) {
            char *e;
            char tmp[32];
            if (vlen == 0 || vlen >= sizeof tmp)
                return -1;
            memcpy(tmp, v, vlen);
            tmp[vlen] = '\0';
            cl = strtoull(tmp, &e, 10);
            if (*e != '\0')
                return -1;
            have_cl = 1;
        } else if (header_is(p, nlen, "transfer-encoding")) {
            chunked = has_token(v, vlen, "chunked");
        } else if (header_is(p, nlen, "connection")) {
            if (has_token(v, vlen, "close"))
                c->keepalive = 0;
            else if (has_token(v, vlen, "keep-alive"))
                c->keepalive = 1;
        } else if (header_is(p, nlen, "content-type")) {
            c->is_sse = vlen >= 17 && strncasecmp(v, "text/event-stream", 17) == 0;
        } else if (header_is(p, nlen, "mcp-session-id")) {
            if (vlen >= sizeof c->session_id)
                return -1;
            memcpy(c->session_id, v, vlen);
            c->session_id[vlen] = '\0';
        }
    }
    if (c->status < 200) {
        c->rphase = R_HEAD; /* 1xx: another head follows */
        return 0;
    }
    if (c->head_only || c->status == 204 || c->status == 304) {
        c->rphase = R_DONE;
    } else if (chunked) {
        c->rphase = R_CHUNK_SIZE;
    } else if (have_cl) {
        c->remaining = cl;
        c->rphase = cl == 0 ? R_DONE : R_BODY_CL;
        if (c->opts->max_body && cl > c->opts->max_body)
            return -2;
    } else {
        c->rphase = R_BODY_EOF;
        c->keepalive = 0;
    }
    return 0;
}

/* Consumes a line into c->line (truncated past its size); returns bytes used, *done when '\n' seen. */
static size_t take_line(mg_bench_conn_t *c, const char *p, size_t n, int *done)
{
    const char *nl = memchr(p, '\n', n);
    size_t use = nl ? (size_t)(nl - p) + 1 : n;
    for (size_t i = 0; i < use && c->line_len + 1 < sizeof c->line; i++)
        c->line[c->line_len++] = p[i];
    c->line[c->line_len] = '\0';
    *done = nl != NULL;
    return use;
}

/* Feeds response bytes; returns 0 (more needed or done: see c->rphase) or a libuv error. */
static int feed(mg_bench_conn_t *c, const char *p, size_t n)
{
    while (n > 0 && c->rphase != R_DONE) {
        switch (c->rphase) {
        case R_HEAD: {
            size_t old = c->head.len;
            if (mg_bench_buf_append(&c->head, p, n) != 0)
                return UV_E2BIG;
            size_t from = old > 3 ? old - 3 : 0;
            char *e = NULL;
            for (size_t i = from; i + 1 < c->head.len; i++) {
                if (c->head.p[i] == '\n' &&
                    (c->head.p[i + 1] == '\n' ||
                     (c->head.p[i + 1] == '\r' && i + 2 < c->head.len && c->head.p[i + 2] == '\n'))) {
                    e = c->head.p + i + (c->head.p[i + 1] == '\n' ? 2 : 3);
                    break;
                }
            }
            if (e == NULL)
                return 0;
            size_t head_len = (size_t)(e - c->head.p);
            size_t used = head_len - old;
            int r = parse_head(c);
            if (r == -2)
                return UV_E2BIG;
            if (r != 0)
                return UV_EPROTO;
            c->head.len = 0;
            p += used;
            n -= used;
            break;
        }
        case R_BODY_CL: {
            size_t use = n < c->remaining ? n : (size_t)c->remaining;
            if (mg_bench_buf_append(&c->body, p, use) != 0)
                return UV_E2BIG;
            c->remaining -= use;
            p += use;
            n -= use;
            if (c->remaining == 0)
                c->rphase = R_DONE;
            break;
        }
        case R_CHUNK_SIZE: {
            int done;
            size_t use = take_line(c, p, n, &done);
            p += use;
            n -= use;
            if (!done)
                break;
            char *e;
            unsigned long long sz = strtoull(c->line, &e, 16);
            if (e == c->line)
                return UV_EPROTO;
            c->line_len = 0;
            if (sz == 0) {
                c->rphase = R_TRAILER;
            } else {
                if (c->opts->max_body && c->body.len + sz > c->opts->max_body)
                    return UV_E2BIG;
                c->remaining = sz;
                c->rphase = R_CHUNK_DATA;
            }
            break;
        }
        case R_CHUNK_DATA: {
            size_t use = n < c->remaining ? n : (size_t)c->remaining;
            if (mg_bench_buf_append(&c->body, p, use) != 0)
                return UV_E2BIG;
            c->remaining -= use;
            p += use;
            n -= use;
            if (c->remaining == 0)
                c->rphase = R_CHUNK_CRLF;
            break;
        }
        case R_CHUNK_CRLF:
        case R_TRAILER: {
            int done;
            size_t use = take_line(c, p, n, &done);
            p += use;
            n -= use;
            if (!done)
                break;
            int empty = c->line_len == 1 || (c->line_len == 2 && c->line[0] == '\r');
            c->line_len = 0;
            if (c->rphase == R_CHUNK_CRLF) {
                if (!empty)
                    return UV_EPROTO;
                c->rphase = R_CHUNK_SIZE;
            } else if (empty) {
                c->rphase = R_DONE;
            }
            break;
        }
        case R_BODY_EOF:
            if (mg_bench_buf_append(&c->body, p, n) != 0)
                return UV_E2BIG;
            n = 0;
            break;
        }
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = read_buf;
    buf->len = sizeof read_buf;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    mg_bench_conn_t *c = stream->data;
    if (c->state != MG_BENCH_CONN_OPEN)
        return;
    if (nread == 0)
        return;
    if (!c->busy) {
        /* idle: the server closed (or sent junk); forget this connection */
        close_tcp(c);
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF && c->rphase == R_BODY_EOF) {
            c->keepalive = 0;
            c->rphase = R_DONE;
            if (c->body_cb)
                c->body_cb(c);
            complete(c);
            return;
        }
        fail(c, (int)nread);
        return;
    }
    c->got += (size_t)nread;
    size_t before = c->body.len;
    int err = feed(c, buf->base, (size_t)nread);
    if (err != 0) {
        fail(c, err);
        return;
    }
    if (c->body.len != before && c->body_cb)
        c->body_cb(c);
    if (c->rphase == R_DONE)
        complete(c);
}

static void on_write(uv_write_t *req, int status)
{
    mg_bench_conn_t *c = req->data;
    c->writing = 0;
    if (status != 0 && c->state == MG_BENCH_CONN_OPEN) {
        fail(c, status);
        return;
    }
    if (c->write_deferred && c->state == MG_BENCH_CONN_OPEN) {
        c->write_deferred = 0;
        start_write(c);
    }
}

static void start_write(mg_bench_conn_t *c)
{
    uv_timer_start(&c->timer, on_timer, secs_to_ms(c->opts->timeout), 0);
    if (c->writing) {
        /* the previous request's write callback has not run yet: write_req is still queued */
        c->write_deferred = 1;
        return;
    }
    mg_bench_buf_t *w = &c->wbuf[c->wcur];
    uv_buf_t b = uv_buf_init(w->p, (unsigned)w->len);
    c->write_req.data = c;
    c->writing = 1;
    int r = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r != 0) {
        c->writing = 0;
        fail(c, r);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    mg_bench_conn_t *c = req->data;
    if (c->state != MG_BENCH_CONN_CONNECTING)
        return; /* closed meanwhile (timeout): the close callback reports */
    if (status != 0) {
        c->in_connect = 1;
        fail(c, status);
        return;
    }
    c->state = MG_BENCH_CONN_OPEN;
    c->in_connect = 0;
    uv_tcp_nodelay(&c->tcp, 1);
    int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r != 0) {
        fail(c, r);
        return;
    }
    start_write(c);
}

static void on_connect_timer(uv_timer_t *t)
{
    mg_bench_conn_t *c = t->data;
    if (c->state == MG_BENCH_CONN_CONNECTING) {
        c->in_connect = 1;
        fail(c, UV_ETIMEDOUT);
    }
}

static void start_connect(mg_bench_conn_t *c)
{
    c->used = 0;
    c->connects++;
    c->in_connect = 1;
    reset_response(c);
    int r = uv_tcp_init(c->loop, &c->tcp);
    if (r != 0) {
        c->busy = 0;
        c->done_cb(c, r);
        return;
    }
    c->tcp.data = c;
    c->connect_req.data = c;
    c->state = MG_BENCH_CONN_CONNECTING;
    const struct sockaddr_in *a = c->addr ? c->addr : &c->opts->addr;
    r = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)a, on_connect);
    if (r != 0) {
        c->fail_err = r;
        close_tcp(c);
        return;
    }
    uv_timer_start(&c->timer, on_connect_timer, secs_to_ms(c->opts->connect_timeout), 0);
}

/* ---- public ---- */

void mg_bench_conn_init(mg_bench_conn_t *c, uv_loop_t *loop, const mg_bench_opts_t *o)
{
    memset(c, 0, sizeof *c);
    c->loop = loop;
    c->opts = o;
    c->state = MG_BENCH_CONN_CLOSED;
    c->head.max = HEAD_MAX;
    c->body.max = o->max_body;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
}

mg_bench_buf_t *mg_bench_conn_begin(mg_bench_conn_t *c)
{
    c->wnext = c->wcur ^ 1;
    mg_bench_buf_t *w = &c->wbuf[c->wnext];
    w->len = 0;
    return w;
}

int mg_bench_conn_send(mg_bench_conn_t *c, int head_only, mg_bench_conn_done_cb done_cb,
                       mg_bench_conn_body_cb body_cb)
{
    if (c->busy)
        return UV_EBUSY;
    c->wcur = c->wnext;
    c->busy = 1;
    c->retried = 0;
    c->fail_err = 0;
    c->head_only = head_only;
    c->done_cb = done_cb;
    c->body_cb = body_cb;
    c->session_id[0] = '\0';
    switch (c->state) {
    case MG_BENCH_CONN_OPEN:
        c->in_connect = 0;
        reset_response(c);
        start_write(c);
        break;
    case MG_BENCH_CONN_CLOSING:
        c->pending_send = 1;
        break;
    default:
        start_connect(c);
        break;
    }
    return 0;
}

void mg_bench_conn_close(mg_bench_conn_t *c)
{
    uv_timer_stop(&c->timer);
    c->pending_send = 0;
    c->busy = 0;
    close_tcp(c);
}

void mg_bench_conn_dispose(mg_bench_conn_t *c)
{
    mg_bench_conn_close(c);
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, NULL);
    mg_bench_buf_free(&c->wbuf[0]);
    mg_bench_buf_free(&c->wbuf[1]);
    mg_bench_buf_free(&c->head);
    mg_bench_buf_free(&c->body);
}
