/* script_srv.c - the scripted HTTP/1.1 test server (script_srv.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "script_srv.h"

static void conn_closed_cb(uv_handle_t *h)
{
    script_conn_t *c = h->data;
    if (--c->handles == 0)
        free(c);
}

void script_close(script_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->s->closed++;
    for (script_conn_t **p = &c->s->conns; *p != NULL; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_closed_cb);
    uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

static void written_cb(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

void script_send(script_conn_t *c, const char *p, size_t n)
{
    if (c->closing)
        return;
    uv_write_t *w = malloc(sizeof *w);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, p, n);
    w->data = copy;
    uv_buf_t b = uv_buf_init(copy, (unsigned)n);
    assert_int_equal(uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, written_cb), 0);
}

void script_send_str(script_conn_t *c, const char *s)
{
    script_send(c, s, strlen(s));
}

int script_send_big(script_conn_t *c, const char *path)
{
    if (strcmp(path, "/big") == 0) {
        size_t n = 100000;
        char head[128], *b = malloc(n);
        memset(b, 'x', n);
        snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
        script_send_str(c, head);
        script_send(c, b, n);
        free(b);
    } else if (strcmp(path, "/bigchunked") == 0) {
        script_send_str(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        char chunk[1024];
        memset(chunk, 'y', sizeof chunk);
        for (int i = 0; i < 50; i++) {
            script_send_str(c, "400\r\n");
            script_send(c, chunk, sizeof chunk);
            script_send_str(c, "\r\n");
        }
        script_send_str(c, "0\r\n\r\n");
    } else if (strcmp(path, "/bighead") == 0) {
        script_send_str(c, "HTTP/1.1 200 OK\r\n");
        char line[1100];
        memset(line, 'h', sizeof line);
        memcpy(line, "X-Filler: ", 10);
        memcpy(line + 1020, "\r\n", 3);
        for (int i = 0; i < 20; i++)
            script_send_str(c, line);
        script_send_str(c, "Content-Length: 0\r\n\r\n");
    } else {
        return 0;
    }
    return 1;
}

static void close_after_write_cb(uv_write_t *w, int status)
{
    (void)status;
    script_conn_t *c = w->data;
    free(w);
    script_close(c);
}

void script_close_after_writes(script_conn_t *c)
{
    uv_write_t *w = malloc(sizeof *w);
    w->data = c;
    uv_buf_t b = uv_buf_init("", 0);
    assert_int_equal(uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, close_after_write_cb), 0);
}

/* Serves every complete request in the buffer. */
static void serve(script_conn_t *c)
{
    for (;;) {
        c->buf[c->len] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (end == NULL)
            return;
        size_t hlen = (size_t)(end - c->buf) + 4, blen = 0;
        const char *cl = strcasestr(c->buf, "\r\ncontent-length:");
        if (cl != NULL && cl < end)
            blen = strtoul(cl + 17, NULL, 10);
        if (c->len < hlen + blen)
            return;
        char path[256] = "", method[16] = "";
        sscanf(c->buf, "%15s %255s", method, path);
        snprintf(c->s->last, sizeof c->s->last, "%.*s", (int)(hlen + blen), c->buf);
        c->s->requests++;
        char *body = malloc(blen + 1);
        memcpy(body, c->buf + hlen, blen);
        body[blen] = '\0';
        memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
        c->len -= hlen + blen;
        if (c->drop_next) {
            free(body);
            script_close(c);
            return;
        }
        c->served++;
        c->s->respond(c, method, path, body, blen);
        free(body);
        if (c->closing)
            return;
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    script_conn_t *c = h->data;
    b->base = c->buf + c->len;
    b->len = sizeof c->buf - 1 - c->len;
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    script_conn_t *c = st->data;
    if (n < 0) {
        script_close(c);
        return;
    }
    c->len += (size_t)n;
    serve(c);
}

static void accept_cb(uv_stream_t *l, int status)
{
    (void)status;
    script_srv_t *s = l->data;
    script_conn_t *c = calloc(1, sizeof *c);
    c->s = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
    c->next = s->conns;
    s->conns = c;
    s->accepts++;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

void script_srv_start(script_srv_t *s, uv_loop_t *loop, script_respond_fn respond)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->respond = respond;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    assert_int_equal(uv_tcp_bind(&s->tcp, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->tcp, 16, accept_cb), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void script_srv_stop(script_srv_t *s)
{
    while (s->conns != NULL)
        script_close(s->conns);
    uv_close((uv_handle_t *)&s->tcp, NULL);
}
