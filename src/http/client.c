/*
 * client.c - outbound HTTP/1.1 POST with a streamed response (client.h). States: resolving ->
 * connecting -> writing/reading headers -> body (content-length | chunked | until close) -> done.
 * The struct is freed from the TCP handle's close callback; `aborted` keeps callbacks from running
 * after mg_http_abort() (STYLE: never free inside one's own callback).
 */
#include "client.h"
#include "../common/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEAD (16u * 1024)

struct mg_http_call {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_timer_t timer;
    uv_getaddrinfo_t *gai;
    char *out; /* request bytes */
    size_t outlen;
    char host[256];
    unsigned port;
    mg_http_head_cb head_cb;
    mg_http_body_cb body_cb;
    mg_http_done_cb done_cb;
    void *data;
    int aborted, finished, tcp_open, closing, handles;
    int status;
    /* response parsing */
    char *head;
    size_t headlen;
    int in_body;
    int chunked;
    long long remaining; /* content-length left, -1 = until close */
    /* chunked state */
    int chunk_state; /* 0 size line, 1 data, 2 CRLF after data, 3 trailers */
    char sizeline[32];
    size_t sizelen;
    unsigned long long chunk_left;
};

static void closed_cb(uv_handle_t *h)
{
    mg_http_call_t *c = h->data;
    if (--c->handles == 0) {
        free(c->out);
        free(c->head);
        free(c);
    }
}

static void teardown(mg_http_call_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->gai != NULL) {
        c->gai->data = NULL;
        c->gai = NULL;
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, closed_cb);
    if (c->tcp_open)
        uv_close((uv_handle_t *)&c->tcp, closed_cb);
}

static void finish(mg_http_call_t *c, int err)
{
    if (c->finished)
        return;
    c->finished = 1;
    if (!c->aborted && c->done_cb)
        c->done_cb(c->data, err, c->status);
    teardown(c);
}

void mg_http_abort(mg_http_call_t *c)
{
    if (c == NULL)
        return;
    c->aborted = 1;
    c->finished = 1;
    teardown(c);
}

static void timeout_cb(uv_timer_t *t)
{
    finish(t->data, MG_ETIMEOUT);
}

static void deliver(mg_http_call_t *c, const char *p, size_t n)
{
    if (n > 0 && !c->aborted && c->body_cb)
        c->body_cb(c->data, p, n);
}

/* Feeds body bytes; returns 1 when the body is complete. */
static int body_feed(mg_http_call_t *c, const char *p, size_t n)
{
    if (!c->chunked) {
        if (c->remaining < 0) {
            deliver(c, p, n);
            return 0;
        }
        size_t take = n < (size_t)c->remaining ? n : (size_t)c->remaining;
        deliver(c, p, take);
        c->remaining -= (long long)take;
        return c->remaining == 0;
    }
    size_t i = 0;
    while (i < n && !c->finished && !c->aborted) {
        switch (c->chunk_state) {
        case 0: /* size line */
            if (p[i] == '\n') {
                c->sizeline[c->sizelen] = '\0';
                c->chunk_left = strtoull(c->sizeline, NULL, 16);
                c->sizelen = 0;
                c->chunk_state = c->chunk_left == 0 ? 3 : 1;
            } else if (p[i] != '\r' && c->sizelen + 1 < sizeof c->sizeline) {
                c->sizeline[c->sizelen++] = p[i];
            }
            i++;
            break;
        case 1: {
            size_t take = n - i < c->chunk_left ? n - i : (size_t)c->chunk_left;
            deliver(c, p + i, take);
            i += take;
            c->chunk_left -= take;
            if (c->chunk_left == 0)
                c->chunk_state = 2;
            break;
        }
        case 2:
            if (p[i] == '\n')
                c->chunk_state = 0;
            i++;
            break;
        case 3: /* trailers end with an empty line; we only need the final CRLF */
            if (p[i] == '\n')
                return 1;
            i++;
            break;
        }
    }
    return 0;
}

static void parse_head(mg_http_call_t *c, size_t end)
{
    c->head[end] = '\0';
    c->status = 0;
    sscanf(c->head, "HTTP/%*d.%*d %d", &c->status);
    c->remaining = -1;
    char *line = strstr(c->head, "\r\n");
    while (line != NULL && line[2] != '\0') {
        line += 2;
        char *next = strstr(line, "\r\n");
        if (next)
            *next = '\0';
        if (strncasecmp(line, "content-length:", 15) == 0)
            c->remaining = strtoll(line + 15, NULL, 10);
        else if (strncasecmp(line, "transfer-encoding:", 18) == 0 && strstr(line + 18, "chunked") != NULL)
            c->chunked = 1;
        if (next == NULL)
            break;
        *next = '\r';
        line = next;
    }
    if (c->chunked)
        c->remaining = -1;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    buf->base = malloc(65536);
    buf->len = buf->base ? 65536 : 0;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    mg_http_call_t *c = s->data;
    if (c->finished) {
        free(buf->base);
        return;
    }
    if (nread < 0) {
        free(buf->base);
        /* EOF ends an until-close body; anything else is a broken exchange */
        finish(c, nread == UV_EOF && c->in_body && !c->chunked && c->remaining < 0 ? 0 : MG_EIO);
        return;
    }
    const char *p = buf->base;
    size_t n = (size_t)nread;
    if (!c->in_body) {
        if (c->headlen + n > MAX_HEAD) {
            free(buf->base);
            finish(c, MG_ETOOBIG);
            return;
        }
        char *nh = realloc(c->head, c->headlen + n + 1);
        if (nh == NULL) {
            free(buf->base);
            finish(c, MG_ENOMEM);
            return;
        }
        c->head = nh;
        memcpy(c->head + c->headlen, p, n);
        c->headlen += n;
        c->head[c->headlen] = '\0';
        char *e = strstr(c->head, "\r\n\r\n");
        if (e == NULL) {
            free(buf->base);
            return;
        }
        size_t hend = (size_t)(e - c->head) + 4;
        size_t rest = c->headlen - hend;
        char *tail = malloc(rest + 1);
        if (tail == NULL) {
            free(buf->base);
            finish(c, MG_ENOMEM);
            return;
        }
        memcpy(tail, c->head + hend, rest);
        parse_head(c, hend - 2);
        c->in_body = 1;
        if (!c->aborted && c->head_cb) {
            const char *lines = strstr(c->head, "\r\n");
            lines = lines ? lines + 2 : c->head + (hend - 2);
            c->head_cb(c->data, c->status, lines, (size_t)(c->head + hend - 2 - lines));
        }
        int complete =
            c->remaining == 0 || (!c->aborted && !c->finished && rest > 0 && body_feed(c, tail, rest));
        free(tail);
        free(buf->base);
        if (complete)
            finish(c, 0);
        return;
    }
    int complete = body_feed(c, p, n);
    free(buf->base);
    if (complete)
        finish(c, 0);
}

static void write_cb(uv_write_t *w, int status)
{
    mg_http_call_t *c = w->data;
    if (status != 0 && !c->finished)
        finish(c, MG_EIO);
}

static void connect_cb(uv_connect_t *req, int status)
{
    mg_http_call_t *c = req->data;
    if (c->finished)
        return;
    if (status != 0) {
        finish(c, MG_EIO);
        return;
    }
    uv_buf_t b = uv_buf_init(c->out, (unsigned)c->outlen);
    c->write.data = c;
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, write_cb) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0)
        finish(c, MG_EIO);
}

static void resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    mg_http_call_t *c = req->data;
    free(req);
    if (c == NULL) {
        if (res)
            uv_freeaddrinfo(res);
        return;
    }
    c->gai = NULL;
    if (status != 0 || res == NULL) {
        if (res)
            uv_freeaddrinfo(res);
        finish(c, MG_EIO);
        return;
    }
    uv_tcp_init(c->loop, &c->tcp);
    c->tcp.data = c;
    c->tcp_open = 1;
    c->handles++;
    uv_tcp_nodelay(&c->tcp, 1);
    c->connect.data = c;
    int r = uv_tcp_connect(&c->connect, &c->tcp, res->ai_addr, connect_cb);
    uv_freeaddrinfo(res);
    if (r != 0)
        finish(c, MG_EIO);
}

int mg_http_post(uv_loop_t *loop, const mg_http_req_t *r, mg_http_head_cb head_cb, mg_http_body_cb body_cb,
                 mg_http_done_cb done_cb, void *data, mg_http_call_t **out)
{
    mg_http_call_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return MG_ENOMEM;
    const char *hp = r->hostport, *port;
    if (hp[0] == '[') {
        const char *close = strchr(hp, ']');
        if (close == NULL || close[1] != ':') {
            free(c);
            return MG_EINVAL;
        }
        snprintf(c->host, sizeof c->host, "%.*s", (int)(close - hp - 1), hp + 1);
        port = close + 2;
    } else {
        const char *colon = strrchr(hp, ':');
        if (colon == NULL) {
            free(c);
            return MG_EINVAL;
        }
        snprintf(c->host, sizeof c->host, "%.*s", (int)(colon - hp), hp);
        port = colon + 1;
    }
    c->port = (unsigned)atoi(port);
    if (c->port == 0 || c->port > 65535) {
        free(c);
        return MG_EINVAL;
    }
    size_t cap = 256 + strlen(r->path) + strlen(hp) + r->len;
    for (size_t i = 0; i < r->nheaders; i++)
        cap += strlen(r->headers[2 * i]) + strlen(r->headers[2 * i + 1]) + 4;
    c->out = malloc(cap);
    if (c->out == NULL) {
        free(c);
        return MG_ENOMEM;
    }
    /* One Host only: the caller's when it gives one (a forwarded client request keeps its Host for
     * the receiver's Host check), else the target's. Two would be refused (http/head.h). */
    int own_host = 0;
    for (size_t i = 0; i < r->nheaders; i++)
        own_host |= strcasecmp(r->headers[2 * i], "host") == 0;
    size_t n = own_host ? (size_t)snprintf(c->out, cap, "POST %s HTTP/1.1\r\n", r->path)
                        : (size_t)snprintf(c->out, cap, "POST %s HTTP/1.1\r\nHost: %s\r\n", r->path, hp);
    n += (size_t)snprintf(c->out + n, cap - n, "Connection: close\r\nContent-Length: %zu\r\n", r->len);
    for (size_t i = 0; i < r->nheaders; i++)
        n += (size_t)snprintf(c->out + n, cap - n, "%s: %s\r\n", r->headers[2 * i], r->headers[2 * i + 1]);
    n += (size_t)snprintf(c->out + n, cap - n, "\r\n");
    memcpy(c->out + n, r->body, r->len);
    c->outlen = n + r->len;
    c->loop = loop;
    c->head_cb = head_cb;
    c->body_cb = body_cb;
    c->done_cb = done_cb;
    c->data = data;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles = 1;
    uv_timer_start(&c->timer, timeout_cb, r->timeout_ms ? r->timeout_ms : 30000, 0);
    uv_getaddrinfo_t *g = malloc(sizeof(*g));
    char ps[8];
    snprintf(ps, sizeof ps, "%u", c->port);
    struct addrinfo hints = {0};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    if (g == NULL) {
        c->finished = 1;
        teardown(c);
        return MG_ENOMEM;
    }
    g->data = c;
    c->gai = g;
    if (uv_getaddrinfo(loop, g, resolved_cb, c->host, ps, &hints) != 0) {
        free(g);
        c->gai = NULL;
        c->finished = 1;
        teardown(c);
        return MG_EINVAL;
    }
    if (out != NULL)
        *out = c;
    return 0;
}
