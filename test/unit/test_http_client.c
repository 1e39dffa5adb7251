/*
 * test_http_client.c - the one outbound HTTP client (src/http/client.c) against a real server on
 * loopback: a small scripted HTTP/1.1 server on the same libuv loop (support/script_srv.h), so each case can
 * count connections, see the request as it arrived, and write a response in pieces. Covers the
 * callback rule (never from inside mg_http_request, done exactly once, nothing after cancel),
 * bodies by length, chunked and until-close, SSE read as it arrives, keep-alive reuse, deadline,
 * refused connections and the size bounds. Every case ends with uv_loop_close() == 0.
 * Read next: src/http/client.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/err.h"
#include "http/client.h"
#include "loop_run.h"
#include "script_srv.h"

/* ---- the scripted server (support/script_srv.h): what it answers ---- */

static const char SSE1[] = "data: {\"n\":1}\n\n";
static const char SSE2[] = "data: {\"n\":2}\n\n";

static void sse_step_cb(uv_timer_t *t)
{
    script_conn_t *c = t->data;
    char chunk[128];
    if (c->step == 1) {
        snprintf(chunk, sizeof chunk, "%zx\r\n%s\r\n", strlen(SSE2), SSE2);
        script_send_str(c, chunk);
        c->step = 2;
        uv_timer_start(&c->timer, sse_step_cb, 30, 0);
    } else if (c->step == 2) {
        script_send_str(c, "0\r\n\r\n");
        c->step = 3;
    }
}

static void respond(script_conn_t *c, const char *method, const char *path, const char *body, size_t blen)
{
    (void)method;
    if (script_send_big(c, path))
        return; /* /big, /bigchunked, /bighead */
    char head[512];
    if (strcmp(path, "/json") == 0) {
        snprintf(head, sizeof head,
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n", blen);
        script_send_str(c, head);
        script_send(c, body, blen);
    } else if (strcmp(path, "/chunked") == 0) {
        script_send_str(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n3\r\nlo "
                           "\r\n5\r\nworld\r\n0\r\n\r\n");
    } else if (strcmp(path, "/missing") == 0) {
        script_send_str(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\ngone");
    } else if (strcmp(path, "/close") == 0) {
        script_send_str(c, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close");
        script_close_after_writes(c);
    } else if (strcmp(path, "/sse") == 0) {
        char chunk[128];
        script_send_str(
            c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
        snprintf(chunk, sizeof chunk, "%zx\r\n%s\r\n", strlen(SSE1), SSE1);
        script_send_str(c, chunk);
        c->step = 1;
        uv_timer_start(&c->timer, sse_step_cb, 30, 0);
    }
    /* "/hang" and anything else: no answer */
}

/* ---- the client side ---- */

typedef struct got {
    int heads, bodies, dones;
    int status, done_status, err;
    char head[20000];
    char body[200000];
    size_t len;
    mg_http_call_t *call;
    int cancel_on_body; /* cancel the call from its first body_cb */
    script_srv_t *srv;
    int server_step_at_first_body;
    struct got *then; /* started from done_cb (keep-alive) or body_cb (request from a callback) */
    const char *then_url;
    mg_http_client_t *cl;
} got_t;

static void done_cb(void *data, int err, int status, const char *why);

static void head_cb(void *data, int status, const char *headers, size_t len)
{
    got_t *g = data;
    assert_int_equal(g->bodies, 0);
    g->heads++;
    g->status = status;
    snprintf(g->head, sizeof g->head, "%.*s", (int)len, headers);
}

static void body_cb(void *data, const char *bytes, size_t len)
{
    got_t *g = data;
    assert_int_equal(g->heads, 1);
    assert_int_equal(g->dones, 0);
    if (g->bodies == 0 && g->srv != NULL && g->srv->conns != NULL)
        g->server_step_at_first_body = g->srv->conns->step;
    g->bodies++;
    assert_true(g->len + len < sizeof g->body);
    memcpy(g->body + g->len, bytes, len);
    g->len += len;
    g->body[g->len] = '\0';
    if (g->cancel_on_body) {
        mg_http_cancel(g->call);
        if (g->then != NULL) { /* a new request from inside a libcurl callback */
            mg_http_req_t r = {.url = g->then_url};
            assert_int_equal(mg_http_request(g->cl, &r, head_cb, body_cb, done_cb, g->then, &g->then->call),
                             0);
            assert_int_equal(g->then->dones, 0);
        }
    }
}

static void done_cb(void *data, int err, int status, const char *why)
{
    got_t *g = data;
    g->dones++;
    g->err = err;
    g->done_status = status;
    assert_true(err == 0 ? why == NULL : why != NULL);
    if (g->then != NULL && !g->cancel_on_body) {
        mg_http_req_t r = {.url = g->then_url};
        assert_int_equal(mg_http_request(g->cl, &r, head_cb, body_cb, done_cb, g->then, &g->then->call), 0);
        assert_int_equal(g->then->dones, 0);
    }
}

static void start(mg_http_client_t *cl, const char *url, got_t *g, long timeout_ms, size_t max_body)
{
    mg_http_req_t r = {.url = url, .timeout_ms = timeout_ms, .max_body = max_body};
    assert_int_equal(mg_http_request(cl, &r, head_cb, body_cb, done_cb, g, &g->call), 0);
}

typedef struct fixture {
    uv_loop_t loop;
    script_srv_t srv;
    mg_http_client_t *cl;
    char base[64];
} fixture_t;

static void setup(fixture_t *f)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    script_srv_start(&f->srv, &f->loop, respond);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", f->srv.port);
    assert_int_equal(mg_http_client_new(&f->loop, &f->cl), 0);
}

static void teardown(fixture_t *f)
{
    mg_http_client_free(f->cl);
    script_srv_stop(&f->srv);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void url(fixture_t *f, char *out, size_t n, const char *path)
{
    snprintf(out, n, "%s%s", f->base, path);
}

/* ---- cases ---- */

static void test_json_post(void **state)
{
    fixture_t f;
    setup(&f);
    char u[128];
    url(&f, u, sizeof u, "/json");
    const char *hdrs[] = {"content-type", "application/json", "x-custom", "v1", "x-empty", ""};
    const char *body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
    mg_http_req_t r = {.url = u, .headers = hdrs, .nheaders = 3, .body = body, .len = strlen(body)};
    got_t g = {0};
    assert_int_equal(mg_http_request(f.cl, &r, head_cb, body_cb, done_cb, &g, &g.call), 0);
    assert_int_equal(g.heads + g.bodies + g.dones, 0); /* never from inside mg_http_request */
    run_until(&f.loop, &g.dones);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.done_status, 200);
    assert_int_equal(g.heads, 1);
    assert_string_equal(g.body, body);
    assert_non_null(strstr(g.head, "Content-Type: application/json\r\n"));
    assert_null(strstr(g.head, "HTTP/1.1")); /* header lines only */
    /* the request as sent: the caller's headers, an empty value kept, none of libcurl's extras */
    assert_non_null(strstr(f.srv.last, "POST /json HTTP/1.1\r\n"));
    assert_non_null(strcasestr(f.srv.last, "\r\nx-custom: v1\r\n"));
    assert_non_null(strcasestr(f.srv.last, "\r\nx-empty:"));
    assert_non_null(strcasestr(f.srv.last, "\r\ncontent-type: application/json\r\n"));
    assert_non_null(strcasestr(f.srv.last, "\r\nhost: 127.0.0.1:"));
    assert_null(strcasestr(f.srv.last, "\r\naccept:"));
    assert_null(strcasestr(f.srv.last, "\r\nexpect:"));
    teardown(&f);
}

/* body_kept: the body is sent from the caller's buffer, not a copy (the trace exporter keeps one
 * buffer for every export): what the buffer holds when the request goes out is what is sent, and
 * the buffer serves the next request once done_cb ran. */
static void test_body_kept(void **state)
{
    fixture_t f;
    setup(&f);
    char u[128];
    url(&f, u, sizeof u, "/json");
    size_t n = 50000; /* above libcurl's single-send size: sent from the buffer in pieces */
    char *body = malloc(n + 1);
    for (int round = 0; round < 2; round++) {
        memset(body, 'a', n);
        body[n] = '\0';
        mg_http_req_t r = {.url = u, .body = body, .len = n, .body_kept = 1, .timeout_ms = 2000};
        got_t g = {0};
        assert_int_equal(mg_http_request(f.cl, &r, head_cb, body_cb, done_cb, &g, NULL), 0);
        for (size_t i = 0; i < n; i++) /* not copied: the bytes as they are now go out */
            body[i] = (char)('a' + (i * 7 + (size_t)round) % 26);
        run_until(&f.loop, &g.dones);
        assert_int_equal(g.err, 0);
        assert_int_equal(g.len, n);
        assert_memory_equal(g.body, body, n);
    }
    free(body);
    teardown(&f);
}

/* A large body goes at once (no "Expect: 100-continue" wait), with the caller's Host. */
static void test_large_post_and_host(void **state)
{
    fixture_t f;
    setup(&f);
    char u[128];
    url(&f, u, sizeof u, "/json");
    size_t n = 20000;
    char *body = malloc(n + 1);
    memset(body, 'a', n);
    body[n] = '\0';
    const char *hdrs[] = {"host", "mcp.example.com"};
    mg_http_req_t r = {.url = u, .headers = hdrs, .nheaders = 1, .body = body, .len = n, .timeout_ms = 900};
    got_t g = {0};
    assert_int_equal(mg_http_request(f.cl, &r, head_cb, body_cb, done_cb, &g, NULL), 0);
    free(body); /* copied */
    run_until(&f.loop, &g.dones);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.len, n);
    assert_non_null(strcasestr(f.srv.last, "\r\nhost: mcp.example.com\r\n"));
    assert_null(strcasestr(f.srv.last, "\r\nhost: 127.0.0.1"));
    assert_null(strcasestr(f.srv.last, "\r\nexpect:"));
    teardown(&f);
}

static void test_chunked_length_and_close(void **state)
{
    fixture_t f;
    setup(&f);
    char u[128];
    got_t g = {0}, h = {0}, k = {0};
    url(&f, u, sizeof u, "/chunked");
    mg_http_req_t r = {.url = u};
    assert_int_equal(mg_http_request(f.cl, &r, head_cb, body_cb, done_cb, &g, NULL), 0);
    run_until(&f.loop, &g.dones);
    assert_int_equal(g.err, 0);
    assert_string_equal(g.body, "hello world");
    assert_non_null(strstr(f.srv.last, "GET /chunked HTTP/1.1\r\n"));

    url(&f, u, sizeof u, "/missing"); /* a status is an answer, not an error */
    assert_int_equal(mg_http_request(f.cl, &r, head_cb, body_cb, done_cb, &h, NULL), 0);
    run_until(&f.loop, &h.dones);
    assert_int_equal(h.err, 0);
    assert_int_equal(h.status, 404);
    assert_string_equal(h.body, "gone");

    url(&f, u, sizeof u, "/close"); /* no length, no chunks: the body ends with the connection */
    assert_int_equal(mg_http_request(f.cl, &r, head_cb, body_cb, done_cb, &k, NULL), 0);
    run_until(&f.loop, &k.dones);
    assert_int_equal(k.err, 0);
    assert_string_equal(k.body, "until-close");
    teardown(&f);
}

/* Each SSE event reaches body_cb as the server writes it, not when the stream ends. */
static void test_sse_streamed(void **state)
{
    fixture_t f;
    setup(&f);
    char u[128];
    url(&f, u, sizeof u, "/sse");
    const char *hdrs[] = {"accept", "text/event-stream"};
    mg_http_req_t r = {.url = u, .method = "POST", .headers = hdrs, .nheaders = 1, .body = "{}", .len = 2};
    got_t g = {.srv = &f.srv};
    assert_int_equal(mg_http_request(f.cl, &r, head_cb, body_cb, done_cb, &g, NULL), 0);
    run_until(&f.loop, &g.dones);
    assert_int_equal(g.err, 0);
    assert_non_null(strstr(g.head, "text/event-stream"));
    assert_true(g.bodies >= 2);
    assert_int_equal(g.server_step_at_first_body, 1); /* the second event was not written yet */
    char want[128];
    snprintf(want, sizeof want, "%s%s", SSE1, SSE2);
    assert_string_equal(g.body, want);
    assert_non_null(strcasestr(f.srv.last, "\r\naccept: text/event-stream\r\n"));
    teardown(&f);
}

/* Two requests, one connection: the second starts from the first's done_cb. */
static void test_keepalive_reuse(void **state)
{
    fixture_t f;
    setup(&f);
    char u[128], u2[128];
    url(&f, u, sizeof u, "/chunked");
    url(&f, u2, sizeof u2, "/json");
    got_t second = {0};
    got_t first = {.then = &second, .then_url = u2, .cl = f.cl};
    mg_http_req_t r = {.url = u};
    assert_int_equal(mg_http_request(f.cl, &r, head_cb, body_cb, done_cb, &first, NULL), 0);
    run_until(&f.loop, &second.dones);
    assert_int_equal(first.err, 0);
    assert_int_equal(second.err, 0);
    assert_int_equal(second.status, 200);
    assert_int_equal(f.srv.requests, 2);
    assert_int_equal(f.srv.accepts, 1);
    teardown(&f);
}

/* The server closes a kept-alive idle connection: the client's loop does not spin on the closed
 * socket (its handle is kept between transfers), and the next request opens a new connection. */
static void test_idle_closed_by_server(void **state)
{
    fixture_t f;
    setup(&f);
    char u[128];
    url(&f, u, sizeof u, "/json");
    got_t first = {0}, second = {0};
    start(f.cl, u, &first, 0, 0);
    run_until(&f.loop, &first.dones);
    assert_int_equal(first.err, 0);
    while (f.srv.conns != NULL) /* the server side of the idle connection goes away */
        script_close(f.srv.conns);
    int flag = 0;
    unsigned turns = 0;
    uv_timer_t t;
    uv_timer_init(&f.loop, &t);
    t.data = &flag;
    uv_timer_start(&t, loop_guard_cb, 300, 0);
    while (!flag) {
        uv_run(&f.loop, UV_RUN_ONCE);
        turns++;
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_true(turns < 50); /* a readable closed socket watched level-triggered would spin */
    start(f.cl, u, &second, 0, 0);
    run_until(&f.loop, &second.dones);
    assert_int_equal(second.err, 0);
    assert_int_equal(second.status, 200);
    assert_int_equal(f.srv.accepts, 2);
    teardown(&f);
}

static void test_deadline(void **state)
{
    fixture_t f;
    setup(&f);
    char u[128];
    url(&f, u, sizeof u, "/hang");
    got_t g = {0};
    uint64_t t0 = uv_now(&f.loop);
    start(f.cl, u, &g, 200, 0);
    run_until(&f.loop, &g.dones);
    uv_update_time(&f.loop);
    assert_int_equal(g.err, MG_ETIMEOUT);
    assert_int_equal(g.heads, 0);
    assert_int_equal(g.done_status, 0);
    assert_true(uv_now(&f.loop) - t0 >= 150);
    assert_true(uv_now(&f.loop) - t0 < 3000);
    teardown(&f);
}

/* Cancelled before anything happened: no callback ever; the loop still closes. */
static void test_cancel_at_once(void **state)
{
    fixture_t f;
    setup(&f);
    char u[128];
    url(&f, u, sizeof u, "/chunked");
    got_t g = {0};
    start(f.cl, u, &g, 0, 0);
    mg_http_cancel(g.call);
    run_for(&f.loop, 100);
    assert_int_equal(g.heads + g.bodies + g.dones, 0);
    teardown(&f);
}

/* Cancelled from its own body_cb mid-stream: nothing more arrives, the server sees the connection
 * close, and a request started from that callback runs. */
static void test_cancel_from_callback(void **state)
{
    fixture_t f;
    setup(&f);
    char u[128], u2[128];
    url(&f, u, sizeof u, "/sse");
    url(&f, u2, sizeof u2, "/json");
    got_t next = {0};
    got_t g = {.cancel_on_body = 1, .then = &next, .then_url = u2, .cl = f.cl};
    mg_http_req_t r = {.url = u};
    assert_int_equal(mg_http_request(f.cl, &r, head_cb, body_cb, done_cb, &g, &g.call), 0);
    run_until(&f.loop, &next.dones);
    run_for(&f.loop, 150); /* past the server's next events */
    assert_int_equal(g.bodies, 1);
    assert_int_equal(g.dones, 0);
    assert_int_equal(next.err, 0);
    assert_int_equal(next.status, 200);
    assert_true(f.srv.closed >= 1); /* the SSE connection: closed by the client */
    teardown(&f);
}

static void test_refused(void **state)
{
    fixture_t f;
    setup(&f);
    /* a port nobody listens on: bind, read the port, close */
    uv_tcp_t t;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&f.loop, &t);
    assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&a, 0), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/x", port);
    got_t g = {0};
    start(f.cl, u, &g, 0, 0);
    assert_int_equal(g.dones, 0);
    run_until(&f.loop, &g.dones);
    assert_int_equal(g.dones, 1);
    assert_int_equal(g.err, MG_EIO);
    assert_int_equal(g.heads, 0);
    teardown(&f);
}

/* A pinned request (resolve) connects to the pinned address on every new connection, also when
 * the client no longer hands the same pin to libcurl (it stays in the multi's DNS cache), and a
 * changed pin is honoured at once. The host name does not resolve: only the pin can reach it. */
static void pinned_get(fixture_t *f, const char *u, const char *pin, got_t *g)
{
    mg_http_req_t r = {.url = u, .resolve = pin};
    assert_int_equal(mg_http_request(f->cl, &r, head_cb, body_cb, done_cb, g, &g->call), 0);
    run_until(&f->loop, &g->dones);
    while (f->srv.conns != NULL) /* the next request needs a new connection */
        script_close(f->srv.conns);
    run_for(&f->loop, 20);
}

static void test_pinned_address(void **state)
{
    fixture_t f;
    setup(&f);
    char u[128], pin[128], other[128];
    snprintf(u, sizeof u, "http://pinned.invalid:%d/json", f.srv.port);
    snprintf(pin, sizeof pin, "pinned.invalid:%d:127.0.0.1", f.srv.port);
    snprintf(other, sizeof other, "pinned.invalid:%d:127.0.0.2", f.srv.port); /* nobody listens */
    got_t g[5] = {{0}};
    pinned_get(&f, u, pin, &g[0]);
    pinned_get(&f, u, pin, &g[1]);
    pinned_get(&f, u, pin, &g[2]);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g[i].err, 0);
        assert_int_equal(g[i].status, 200);
    }
    assert_int_equal(f.srv.accepts, 3);
    pinned_get(&f, u, other, &g[3]); /* the new pin, not the one in the cache */
    assert_int_equal(g[3].err, MG_EIO);
    assert_int_equal(f.srv.accepts, 3);
    pinned_get(&f, u, pin, &g[4]);
    assert_int_equal(g[4].err, 0);
    assert_int_equal(f.srv.accepts, 4);
    teardown(&f);
}

/* One request on the client, run to its end; returns the head the server received. */
static const char *one(fixture_t *f, mg_http_req_t *r)
{
    got_t g = {0};
    assert_int_equal(mg_http_request(f->cl, r, head_cb, body_cb, done_cb, &g, &g.call), 0);
    run_until(&f->loop, &g.dones);
    assert_int_equal(g.err, 0);
    assert_int_equal(g.status, 200);
    return f->srv.last;
}

/* Requests of every kind in a row reuse one easy handle: nothing of a request (method, body,
 * headers, credentials) reaches the next one. */
static void test_reuse_keeps_nothing(void **state)
{
    fixture_t f;
    setup(&f);
    char u[128];
    url(&f, u, sizeof u, "/json");
    const char *hdrs[] = {"x-first", "1"};
    const char *body = "{\"a\":1}";
    mg_http_req_t post = {.url = u, .headers = hdrs, .nheaders = 1, .body = body, .len = strlen(body)};
    const char *h = one(&f, &post);
    assert_non_null(strstr(h, "POST /json HTTP/1.1\r\n"));
    assert_non_null(strcasestr(h, "\r\nx-first: 1\r\n"));
    mg_http_req_t get = {.url = u};
    h = one(&f, &get);
    assert_non_null(strstr(h, "GET /json HTTP/1.1\r\n"));
    assert_null(strcasestr(h, "x-first"));
    assert_null(strcasestr(h, "content-length"));
    mg_http_req_t del = {.url = u, .method = "DELETE", .basic_user = "user", .basic_pass = "secret"};
    h = one(&f, &del);
    assert_non_null(strstr(h, "DELETE /json HTTP/1.1\r\n"));
    assert_non_null(strcasestr(h, "\r\nauthorization: basic "));
    h = one(&f, &get);
    assert_non_null(strstr(h, "GET /json HTTP/1.1\r\n"));
    assert_null(strcasestr(h, "authorization"));
    mg_http_req_t del2 = {.url = u, .method = "DELETE"};
    h = one(&f, &del2);
    assert_non_null(strstr(h, "DELETE /json HTTP/1.1\r\n"));
    h = one(&f, &get);
    assert_non_null(strstr(h, "GET /json HTTP/1.1\r\n"));
    mg_http_req_t post2 = {.url = u, .body = "{}", .len = 2, .body_kept = 1};
    h = one(&f, &post2);
    assert_non_null(strstr(h, "POST /json HTTP/1.1\r\n"));
    assert_non_null(strcasestr(h, "\r\ncontent-length: 2\r\n"));
    assert_null(strcasestr(h, "x-first"));
    assert_int_equal(f.srv.accepts, 1); /* one kept-alive connection throughout */
    teardown(&f);
}

static void test_size_bounds(void **state)
{
    fixture_t f;
    setup(&f);
    char u[128];
    got_t a = {0}, b = {0}, c = {0}, d = {0};
    url(&f, u, sizeof u, "/big"); /* Content-Length over the bound */
    start(f.cl, u, &a, 0, 1000);
    run_until(&f.loop, &a.dones);
    assert_int_equal(a.err, MG_ETOOBIG);
    assert_true(a.len <= 1000);
    url(&f, u, sizeof u, "/bigchunked"); /* no length: stopped when the bytes pass the bound */
    start(f.cl, u, &b, 0, 1000);
    run_until(&f.loop, &b.dones);
    assert_int_equal(b.err, MG_ETOOBIG);
    assert_true(b.len <= 1000);
    url(&f, u, sizeof u, "/bighead"); /* headers over 16 KiB */
    start(f.cl, u, &c, 0, 0);
    run_until(&f.loop, &c.dones);
    assert_int_equal(c.err, MG_ETOOBIG);
    assert_int_equal(c.heads, 0);
    url(&f, u, sizeof u, "/bigchunked"); /* unbounded when max_body is 0 */
    start(f.cl, u, &d, 0, 0);
    run_until(&f.loop, &d.dones);
    assert_int_equal(d.err, 0);
    assert_int_equal(d.len, 50 * 1024);
    teardown(&f);
}

static void test_refused_arguments(void **state)
{
    fixture_t f;
    setup(&f);
    got_t g = {0};
    mg_http_req_t r = {.url = "ftp://127.0.0.1/x"};
    assert_int_equal(mg_http_request(f.cl, &r, head_cb, body_cb, done_cb, &g, NULL), MG_EINVAL);
    r.url = NULL;
    assert_int_equal(mg_http_request(f.cl, &r, head_cb, body_cb, done_cb, &g, NULL), MG_EINVAL);
    r.url = f.base;
    assert_int_equal(mg_http_request(f.cl, &r, head_cb, body_cb, NULL, &g, NULL), MG_EINVAL);
    run_for(&f.loop, 20);
    assert_int_equal(g.heads + g.bodies + g.dones, 0);
    teardown(&f);
}

/* Freeing the client with calls in flight: none of their callbacks run. */
static void test_free_with_calls(void **state)
{
    fixture_t f;
    setup(&f);
    char u[128];
    url(&f, u, sizeof u, "/hang");
    got_t g = {0}, h = {0};
    start(f.cl, u, &g, 0, 0);
    start(f.cl, u, &h, 0, 0);
    run_until(&f.loop, &f.srv.requests);
    teardown(&f);
    assert_int_equal(g.heads + g.bodies + g.dones + h.dones, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_post),
        cmocka_unit_test(test_large_post_and_host),
        cmocka_unit_test(test_body_kept),
        cmocka_unit_test(test_chunked_length_and_close),
        cmocka_unit_test(test_sse_streamed),
        cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_idle_closed_by_server),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_cancel_at_once),
        cmocka_unit_test(test_cancel_from_callback),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_pinned_address),
        cmocka_unit_test(test_reuse_keeps_nothing),
        cmocka_unit_test(test_size_bounds),
        cmocka_unit_test(test_refused_arguments),
        cmocka_unit_test(test_free_with_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
