/*
 * test_core.c - the gateway core in process: a real gateway and HTTP front on this test's libuv
 * loop, clients on socketpairs handed to h2o_accept() (as fuzz/fuzz_http.c does), and
 * build/mcpgate-testserver as the scripted upstream (its tools echo, sleep, report progress, log).
 *
 * Cases: initialize, tools/list, tools/call as JSON, the switch to SSE when progress arrives first,
 * resumption with Last-Event-ID after the client dropped the POST stream, cancellation, and the
 * errors a client meets (bad JSON, unknown session, unknown method or tool). Every case ends with
 * mg_gateway_shutdown(), mg_server_free(), mg_gateway_free() and uv_loop_close() == 0, so a clean
 * shutdown is proven each time (under ASan in scripts/asan.sh, leaks too).
 *
 * Allocation failures (SQLite's fault loop): every malloc/calloc/realloc/strdup/strndup of the
 * gateway's own code (linked with -Wl,--wrap, see CMakeLists.txt) and of jansson (json_set_alloc_funcs)
 * goes through fault_*(). A case is run with the Nth allocation of its request phase failing, for
 * N = 1, 2, ... until a run completes without reaching N: no crash, no hang, every connection
 * answered or closed, and the loop still closes cleanly.
 * Read next: src/http/server.h, src/gateway/gateway.h (the contracts driven here).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../src/http/server.c"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "config/config.h"
#include "gateway/gateway.h"
#include "gateway/gateway_int.h" /* mg__accepts_two, mg__journal_args_sha */
#include "common/codec.h"
#include "jsonrpc/jsonrpc.h"

/* ---- allocation faults ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

static unsigned long fault_count; /* allocations seen while armed */
static unsigned long fault_at;    /* 0 = off; else fail the fault_at-th allocation */
static int fault_armed;
static int fault_hit;

static int fault_now(void)
{
    if (!fault_armed)
        return 0;
    if (++fault_count == fault_at) {
        fault_hit = 1;
        if (getenv("MG_FAULT_TRACE") != NULL) { /* where the failing allocation is made */
            void *frames[16];
            backtrace_symbols_fd(frames, backtrace(frames, 16), 2);
        }
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n)
{
    return fault_now() ? NULL : __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m)
{
    return fault_now() ? NULL : __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n)
{
    return fault_now() ? NULL : __real_realloc(p, n);
}
char *__wrap_strdup(const char *s)
{
    return fault_now() ? NULL : __real_strdup(s);
}
char *__wrap_strndup(const char *s, size_t n)
{
    return fault_now() ? NULL : __real_strndup(s, n);
}
static void *json_alloc(size_t n)
{
    return fault_now() ? NULL : __real_malloc(n);
}

/* ---- the gateway under test ---- */

typedef struct core {
    uv_loop_t loop;
    mg_config_t cfg;
    mg_gateway_t *gw;
    mg_server_t *srv;
    int down;
    char sid[128]; /* Mcp-Session-Id after initialize */
} core_t;

static char testserver[1024];

static void core_start(core_t *c, const char *gateway_json)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(uv_loop_init(&c->loop), 0);
    char json[8192];
    snprintf(json, sizeof json, "{\"mcpServers\":{\"ts\":{\"command\":\"%s\"}}%s%s}", testserver,
             gateway_json ? ",\"gateway\":" : "", gateway_json ? gateway_json : "");
    mg_config_errors_t errs;
    int r = mg_config_parse(json, "test_core", "/tmp", &c->cfg, &errs);
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "config: %s\n", errs.msgs[i]);
    mg_config_errors_dispose(&errs);
    assert_int_equal(r, 0);
    assert_int_equal(mg_gateway_new(&c->loop, &c->cfg, &c->gw), 0);
    char why[256] = "";
    assert_int_equal(mg_gateway_sessions_init(c->gw, NULL, "127.0.0.1:0", why, sizeof why), 0);
    struct sockaddr_storage addr;
    int lo = 0;
    const char *w = NULL;
    assert_int_equal(mg_server_resolve("127.0.0.1:0", &addr, &lo, &w), 0);
    mg_server_opts_t sopts = mg_gateway_server_opts(c->gw, &c->cfg);
    assert_int_equal(mg_server_start(&c->loop, &sopts, (struct sockaddr *)&addr, lo, &c->srv, &w), 0);
    mg_gateway_start(c->gw);
}

static void shutdown_done_cb(mg_gateway_t *gw, void *data)
{
    *(int *)data = 1;
}

static void walk_cb(uv_handle_t *h, void *arg)
{
    fprintf(stderr, "test_core: handle still open: %s%s\n", uv_handle_type_name(h->type),
            uv_is_closing(h) ? " (closing)" : "");
}

/* Shutdown, free everything, and prove the loop closes. */
static void core_stop(core_t *c)
{
    int was_armed = fault_armed;
    fault_armed = 0; /* teardown itself is not under test: the state it finds is */
    mg_server_drain(c->srv);
    mg_gateway_shutdown(c->gw, 0, shutdown_done_cb, &c->down);
    uint64_t deadline = uv_now(&c->loop) + 10000;
    while (!c->down && uv_now(&c->loop) < deadline)
        uv_run(&c->loop, UV_RUN_ONCE);
    assert_true(c->down);
    mg_server_free(c->srv);
    mg_gateway_free(c->gw);
    for (int i = 0; i < 64 && uv_loop_alive(&c->loop); i++)
        uv_run(&c->loop, UV_RUN_NOWAIT);
    int r = uv_loop_close(&c->loop);
    if (r != 0)
        uv_walk(&c->loop, walk_cb, NULL);
    assert_int_equal(r, 0);
    mg_config_dispose(&c->cfg);
    fault_armed = was_armed;
}

/* ---- a client connection on a socketpair ---- */

typedef struct conn {
    core_t *core;
    int fd;
    uv_poll_t poll;
    int polling;
    int eof;
    char *buf;
    size_t len, cap;
} conn_t;

static void conn_read(conn_t *k)
{
    for (;;) {
        if (k->cap - k->len < 65536) {
            k->cap = k->cap * 2 + 65536;
            k->buf = __real_realloc(k->buf, k->cap + 1);
        }
        ssize_t n = read(k->fd, k->buf + k->len, k->cap - k->len);
        if (n > 0) {
            k->len += (size_t)n;
            k->buf[k->len] = '\0';
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            k->eof = 1;
        return;
    }
}

static void conn_poll_cb(uv_poll_t *h, int status, int events)
{
    conn_t *k = h->data;
    conn_read(k);
    if (k->eof || status < 0) {
        k->eof = 1;
        uv_poll_stop(h);
    }
}

/* Opens a connection to the gateway and writes raw (an HTTP/1.1 request, or several). */
static conn_t *conn_open(core_t *c, const char *raw)
{
    conn_t *k = __real_calloc(1, sizeof *k);
    k->core = c;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    uv_pipe_t *pipe = __real_malloc(sizeof *pipe);
    uv_pipe_init(&c->loop, pipe, 0);
    assert_int_equal(uv_pipe_open(pipe, sv[0]), 0);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)pipe, (uv_close_cb)free);
    h2o_accept(&c->srv->accept_ctx, sock);
    k->fd = sv[1];
    fcntl(k->fd, F_SETFL, fcntl(k->fd, F_GETFL) | O_NONBLOCK);
    uv_poll_init(&c->loop, &k->poll, k->fd);
    k->poll.data = k;
    uv_poll_start(&k->poll, UV_READABLE | UV_DISCONNECT, conn_poll_cb);
    k->polling = 1;
    size_t off = 0, n = strlen(raw);
    while (off < n) {
        ssize_t w = write(k->fd, raw + off, n - off);
        if (w > 0)
            off += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EINTR)
            break;
        uv_run(&c->loop, UV_RUN_NOWAIT);
    }
    return k;
}

static void timeout_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Runs the loop until the connection has closed, or its buffer holds want (when not NULL), or
 * ms passed. Returns 1 when the condition was met. */
static int conn_wait(conn_t *k, const char *want, unsigned ms)
{
    int expired = 0;
    uv_timer_t t;
    uv_timer_init(&k->core->loop, &t);
    t.data = &expired;
    uv_timer_start(&t, timeout_cb, ms, 0);
    while (!expired && !k->eof && !(want && k->buf && strstr(k->buf, want)))
        uv_run(&k->core->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&k->core->loop, UV_RUN_NOWAIT);
    return want ? (k->buf && strstr(k->buf, want) != NULL) : k->eof;
}

static void conn_close(conn_t *k)
{
    if (k->polling)
        uv_close((uv_handle_t *)&k->poll, NULL);
    close(k->fd);
    uv_run(&k->core->loop, UV_RUN_NOWAIT);
    free(k->buf);
    free(k);
}

static int conn_status(const conn_t *k)
{
    if (k->buf == NULL || strncmp(k->buf, "HTTP/1.1 ", 9) != 0)
        return 0;
    return atoi(k->buf + 9);
}

/* Value of header name (lowercase) in the response head, copied to out; 0 when absent. */
static int conn_header(const conn_t *k, const char *name, char *out, size_t n)
{
    const char *end = k->buf ? strstr(k->buf, "\r\n\r\n") : NULL;
    size_t nl = strlen(name);
    for (const char *p = k->buf; p && p < end; p = strstr(p, "\r\n")) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            snprintf(out, n, "%.*s", (int)(e - v), v);
            return 1;
        }
    }
    return 0;
}

#define ACCEPT_BOTH "Accept: application/json, text/event-stream\r\n"

/* POST /mcp with body; sid may be NULL. One request per connection (Connection: close). */
static conn_t *post(core_t *c, const char *sid, const char *body)
{
    char raw[8192];
    char sidh[200] = "";
    if (sid != NULL)
        snprintf(sidh, sizeof sidh, "Mcp-Session-Id: %s\r\nMCP-Protocol-Version: 2025-11-25\r\n", sid);
    snprintf(raw, sizeof raw,
             "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" ACCEPT_BOTH
             "%sConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
             sidh, strlen(body), body);
    return conn_open(c, raw);
}

/* Runs one request to its end; returns the closed connection (caller frees). */
static conn_t *roundtrip(core_t *c, const char *sid, const char *body)
{
    conn_t *k = post(c, sid, body);
    assert_true(conn_wait(k, NULL, 10000));
    return k;
}

static const char INIT_BODY[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\","
    "\"capabilities\":{},\"clientInfo\":{\"name\":\"test_core\",\"version\":\"1\"}}}";

/* initialize + notifications/initialized; leaves the session id in c->sid. Returns 1 on success. */
static int core_initialize(core_t *c)
{
    conn_t *k = roundtrip(c, NULL, INIT_BODY);
    int ok = conn_status(k) == 200 && conn_header(k, "mcp-session-id", c->sid, sizeof c->sid) &&
             strstr(k->buf, "\"protocolVersion\":\"2025-11-25\"") != NULL;
    conn_close(k);
    if (!ok)
        return 0;
    k = roundtrip(c, c->sid, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    ok = conn_status(k) == 202;
    conn_close(k);
    return ok;
}

/* ---- cases: each returns through core_stop ---- */

static void case_initialize_and_list(core_t *c)
{
    assert_true(core_initialize(c));
    conn_t *k = roundtrip(c, c->sid, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}");
    assert_int_equal(conn_status(k), 200);
    assert_non_null(strstr(k->buf, "\"name\":\"echo\""));
    assert_non_null(strstr(k->buf, "\"name\":\"sleep\""));
    conn_close(k);
}

static void case_call_json(core_t *c)
{
    assert_true(core_initialize(c));
    conn_t *k =
        roundtrip(c, c->sid,
                  "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
                  "\"arguments\":{\"message\":\"hello core\"}}}");
    assert_int_equal(conn_status(k), 200);
    char ct[128] = "";
    assert_true(conn_header(k, "content-type", ct, sizeof ct));
    assert_non_null(strstr(ct, "application/json"));
    assert_non_null(strstr(k->buf, "\"id\":7"));
    assert_non_null(strstr(k->buf, "hello core"));
    conn_close(k);
}

static void case_sse_switch(core_t *c)
{
    assert_true(core_initialize(c));
    conn_t *k =
        roundtrip(c, c->sid,
                  "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
                  "\"test_tool_with_progress\",\"arguments\":{},\"_meta\":{\"progressToken\":\"pt\"}}}");
    assert_int_equal(conn_status(k), 200);
    char ct[128] = "";
    assert_true(conn_header(k, "content-type", ct, sizeof ct));
    assert_non_null(strstr(ct, "text/event-stream"));
    const char *prog = strstr(k->buf, "notifications/progress");
    const char *res = strstr(k->buf, "\"result\"");
    assert_non_null(prog);
    assert_non_null(res);
    assert_true(prog < res);                                     /* related messages first, then the answer */
    assert_non_null(strstr(k->buf, "\"progressToken\":\"pt\"")); /* the client's token restored */
    conn_close(k);
}

/* The client drops a POST stream after its priming event; GET + Last-Event-ID gets the rest. */
static void case_resume(core_t *c)
{
    assert_true(core_initialize(c));
    conn_t *k = post(c, c->sid,
                     "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\","
                     "\"arguments\":{\"ms\":300,\"progressEveryMs\":50},\"_meta\":{\"progressToken\":1}}}");
    assert_true(conn_wait(k, "notifications/progress", 5000));
    /* the last event id seen */
    const char *last = NULL;
    for (const char *p = strstr(k->buf, "\nid: "); p; p = strstr(p + 1, "\nid: "))
        last = p + 5;
    assert_non_null(last);
    char evid[64];
    snprintf(evid, sizeof evid, "%.*s", (int)strcspn(last, "\r\n"), last);
    assert_null(strstr(k->buf, "\"result\""));
    conn_close(k); /* a dropped connection is not a cancellation */

    char raw[1024];
    snprintf(raw, sizeof raw,
             "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: %s\r\n"
             "MCP-Protocol-Version: 2025-11-25\r\nLast-Event-ID: %s\r\nConnection: close\r\n\r\n",
             c->sid, evid);
    k = conn_open(c, raw);
    assert_true(conn_wait(k, "slept 300", 5000));
    assert_int_equal(conn_status(k), 200);
    assert_non_null(strstr(k->buf, "\"id\":4"));
    conn_close(k);
}

/* A cancelled call ends: its stream closes and the upstream stays usable. */
static void case_cancel(core_t *c)
{
    assert_true(core_initialize(c));
    conn_t *k = post(c, c->sid,
                     "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\","
                     "\"arguments\":{\"ms\":60000}}}");
    uv_run(&c->loop, UV_RUN_NOWAIT);
    conn_t *n =
        roundtrip(c, c->sid,
                  "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":5,"
                  "\"reason\":\"test\"}}");
    assert_int_equal(conn_status(n), 202);
    conn_close(n);
    assert_true(conn_wait(k, NULL, 5000)); /* the call's HTTP response ends */
    assert_null(strstr(k->buf, "slept"));
    conn_close(k);
    k = roundtrip(c, c->sid,
                  "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
                  "\"arguments\":{\"message\":\"after cancel\"}}}");
    assert_non_null(strstr(k->buf, "after cancel"));
    conn_close(k);
}

static void case_errors(core_t *c)
{
    conn_t *k = roundtrip(c, NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":");
    assert_int_equal(conn_status(k), 400);
    assert_non_null(strstr(k->buf, "-32700"));
    conn_close(k);

    k = roundtrip(c, "no-such-session", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    assert_int_equal(conn_status(k), 404);
    conn_close(k);

    assert_true(core_initialize(c));
    k = roundtrip(c, c->sid, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"no/such/method\"}");
    assert_non_null(strstr(k->buf, "-32601"));
    conn_close(k);

    k = roundtrip(c, c->sid,
                  "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{\"name\":\"nope\","
                  "\"arguments\":{}}}");
    assert_non_null(strstr(k->buf, "\"error\""));
    assert_non_null(strstr(k->buf, "nope"));
    conn_close(k);
}

typedef void (*case_fn)(core_t *c);

static void run_case(case_fn fn)
{
    core_t c;
    core_start(&c, NULL);
    fn(&c);
    core_stop(&c);
}

static void test_initialize_and_list(void **state)
{
    run_case(case_initialize_and_list);
}
static void test_call_json(void **state)
{
    run_case(case_call_json);
}
static void test_sse_switch(void **state)
{
    run_case(case_sse_switch);
}
static void test_resume(void **state)
{
    run_case(case_resume);
}
static void test_cancel(void **state)
{
    run_case(case_cancel);
}
static void test_errors(void **state)
{
    run_case(case_errors);
}

/* ---- the fault loop ---- */

/* The request a fault case sends once the gateway is up and a session exists. */
typedef struct fault_case {
    const char *name;
    const char *body;
    int needs_session;
} fault_case_t;

static const fault_case_t fault_cases[] = {
    {"initialize", INIT_BODY, 0},
    {"tools/list", "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}", 1},
    {"tools/call",
     "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":"
     "{\"message\":\"x\"}}}",
     1},
    {"tools/call with progress (SSE)",
     "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/"
     "call\",\"params\":{\"name\":\"test_tool_with_progress\","
     "\"arguments\":{},\"_meta\":{\"progressToken\":9}}}",
     1},
    {"unknown method", "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"x/y\"}", 1},
};

/* One request of fc with the fault_at-th allocation it makes failing, on a running gateway c.
 * Returns 1 when the fault was reached (so the loop goes on), 0 when the request completed
 * without reaching it. Afterwards the gateway must still serve: a ping on the same session (or a
 * fresh initialize) is answered 200. */
static int fault_run(core_t *c, const fault_case_t *fc, unsigned long at)
{
    fault_count = 0;
    fault_at = at;
    fault_hit = 0;
    fault_armed = 1;
    conn_t *k = post(c, fc->needs_session ? c->sid : NULL, fc->body);
    int ended = conn_wait(k, NULL, 5000);
    fault_armed = 0;
    int hit = fault_hit;
    if (!ended) {
        fprintf(stderr, "fault loop: '%s' with allocation %lu failing: no answer within 5 s\n", fc->name, at);
        fail();
    }
    /* Whatever happened, the client got an answer or an error, or the connection was closed. */
    int st = conn_status(k);
    if (!hit && st != 200) {
        fprintf(stderr, "fault loop: '%s' untouched answered %d\n%s\n", fc->name, st, k->buf ? k->buf : "");
        fail();
    }
    conn_close(k);
    conn_t *p =
        roundtrip(c, fc->needs_session ? c->sid : NULL,
                  fc->needs_session ? "{\"jsonrpc\":\"2.0\",\"id\":98,\"method\":\"ping\"}" : INIT_BODY);
    if (conn_status(p) != 200) {
        fprintf(stderr, "fault loop: after '%s' with allocation %lu failing, the gateway answered %d:\n%s\n",
                fc->name, at, conn_status(p), p->buf ? p->buf : "");
        fail();
    }
    conn_close(p);
    return hit;
}

static void test_allocation_failures(void **state)
{
    json_set_alloc_funcs(json_alloc, free);
    const char *step_env = getenv("MG_FAULT_STEP");
    unsigned long step = step_env ? strtoul(step_env, NULL, 10) : 1;
    if (step == 0)
        step = 1;
    /* MG_FAULT_CASE=i runs one case, MG_FAULT_START=N starts there (to reproduce one failure) */
    const char *only = getenv("MG_FAULT_CASE"), *start = getenv("MG_FAULT_START");
    for (size_t i = 0; i < sizeof fault_cases / sizeof fault_cases[0]; i++) {
        if (only != NULL && strtoul(only, NULL, 10) != i)
            continue;
        unsigned long n = start ? strtoul(start, NULL, 10) : 1;
        core_t c;
        core_start(&c, NULL);
        if (fault_cases[i].needs_session) {
            assert_true(core_initialize(&c));
            conn_close(roundtrip(&c, c.sid, "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"tools/list\"}"));
        }
        while (fault_run(&c, &fault_cases[i], n))
            n += step;
        core_stop(&c); /* and the loop closes: nothing the failures left behind is still open */
        fprintf(stderr, "fault loop: '%s' passed with each of its first %lu allocations failing (step %lu)\n",
                fault_cases[i].name, n - 1, step);
    }
    json_set_alloc_funcs(malloc, free);
}

/* Accept values: which of application/json (bit 0) and text/event-stream (bit 1) each admits, in
 * one pass (the POST check) and one type at a time (GET, /sse). */
static void test_accepts(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        unsigned want;
    } cases[] = {
        {"application/json, text/event-stream", 3},
        {"text/event-stream,application/json", 3},
        {"application/json", 1},
        {"text/event-stream;q=0.9", 2},
        {"*/*", 3},
        {"application/*, text/*", 3},
        {"APPLICATION/JSON ,  Text/Event-Stream ", 3},
        {"application/jsonx, text/event-streams", 0},
        {"text/html; q=1, application/json;charset=utf-8", 1},
        {"application/json-seq, text/*;q=0.1", 2},
        {"", 0},
        {",,, ,", 0},
        {"*/json", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h2o_iovec_t v = h2o_iovec_init(cases[i].value, strlen(cases[i].value));
        assert_int_equal(mg__accepts_two(v, "application/json", "text/event-stream"), cases[i].want);
        assert_int_equal(mg__accepts(v, "application/json"), (cases[i].want & 1) != 0);
        assert_int_equal(mg__accepts(v, "text/event-stream"), (cases[i].want & 2) != 0);
    }
    assert_int_equal(mg__accepts_two(h2o_iovec_init(NULL, 0), "application/json", "text/event-stream"), 0);
}

/* ---- the journal's argsSha256: the canonical text's bytes against the tree's dump ---- */

/* Reads body as the pipeline does (the lent "params" text, ADR 0019) and checks that the digest
 * from the text equals the digest from the tree for member; returns 1 when the text was used. */
static int args_sha_same(const char *body, size_t len, const char *member)
{
    const mg_rpc_limits_t lim = {64, 100, 1000000};
    int err = -1;
    mg_rpc_size_t size;
    mg_json_span_t span = {.key = "params"};
    json_t *msg = mg_rpc_parse_params(body, len, &lim, &err, &size, &span);
    json_t *params = json_object_get(msg, "params");
    char tree[65], text[65];
    mg__journal_args_sha(params, NULL, 0, member, tree);
    int used = span.p != NULL && json_is_object(span.v);
    if (used) {
        const char *v;
        size_t vl;
        int found = mg_json_text_member(span.p, span.len, member, &v, &vl);
        assert_int_not_equal(found, -1); /* a canonical object always scans */
        assert_int_equal(found, json_object_get(params, member) != NULL);
        mg__journal_args_sha(params, span.p, span.len, member, text);
        if (strcmp(text, tree) != 0)
            fail_msg("argsSha256 differs for %.*s: text %s, tree %s", (int)len, body, text, tree);
    }
    assert_int_equal(strlen(tree), 64);
    json_decref(msg);
    return used;
}

/* A random value for the bodies below: nested, every type, strings with JSON's punctuation, raw
 * UTF-8 and characters the dumper escapes, member names that look like the one searched. */
static json_t *random_value(unsigned *seed, int depth)
{
    static const char *const strs[] = {"",
                                       "a",
                                       "arguments",
                                       "argument",
                                       "{\"a\":[1,2]}",
                                       "}],",
                                       ":",
                                       "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                                       "\\",
                                       "\"",
                                       "\n\t",
                                       "\x01",
                                       "/",
                                       "[",
                                       "<>&'",
                                       "a b"};
    int k = depth >= 4 ? rand_r(seed) % 5 : rand_r(seed) % 8;
    switch (k) {
    case 0:
        return json_null();
    case 1:
        return json_boolean(rand_r(seed) % 2);
    case 2: {
        static const json_int_t ints[] = {0, 1, -1, 42, -987654321, INT64_MAX, INT64_MIN + 1};
        return json_integer(ints[rand_r(seed) % 7]);
    }
    case 3:
        return rand_r(seed) % 8 == 0 ? json_real(rand_r(seed) % 3 == 0 ? 1.5 : 1e300)
                                     : json_string(strs[rand_r(seed) % 16]);
    case 4:
        return json_string(strs[rand_r(seed) % 16]);
    case 5: {
        json_t *a = json_array();
        for (int i = rand_r(seed) % 4; i > 0; i--)
            json_array_append_new(a, random_value(seed, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = rand_r(seed) % 5; i > 0; i--)
            json_object_set_new(o, strs[rand_r(seed) % 16], random_value(seed, depth + 1));
        return o;
    }
    }
}

static void test_journal_args_sha(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
        "\"arguments\":{\"message\":\"hi\"}}}",
        "{\"method\":\"tools/call\",\"params\":{\"arguments\":{\"b\":1,\"a\":2},\"name\":\"x\"}}", /* order */
        "{\"method\":\"tools/"
        "call\",\"params\":{\"name\":\"arguments\",\"x\":{\"arguments\":1},\"arguments\":[1]}}",
        "{\"method\":\"tools/call\",\"params\":{\"name\":\"e\",\"arguments\":{\"s\":\"}],{[:\\\"\"}}}", /* escape
                                                                                                         */
        "{\"method\":\"tools/call\",\"params\":{\"name\":\"e\",\"arguments\":{\"s\":\"}],{[:,\"}}}",
        "{\"method\":\"tools/"
        "call\",\"params\":{\"name\":\"e\",\"arguments\":{\"s\":\"caf\xc3\xa9\xf0\x9f\x98\x80\"}}}",
        "{\"method\":\"tools/call\",\"params\":{\"name\":\"e\",\"arguments\":{\"s\":\"caf\\u00e9\"}}}",
        "{\"method\":\"tools/call\",\"params\":{\"arguments\":{\"n\":[0,-1,9223372036854775807,-42]}}}",
        "{\"method\":\"tools/call\",\"params\":{\"arguments\":{\"n\":1.0}}}", /* a real: the tree */
        "{\"method\":\"tools/call\",\"params\":{\"arguments\":{\"n\":-0}}}",
        "{\"method\":\"tools/call\",\"params\":{\"arguments\":{\"a\":{\"b\":{\"c\":[[[{}]]]}}},\"z\":1}}",
        "{\"method\":\"tools/call\",\"params\":{\"arguments\":null}}",
        "{\"method\":\"tools/call\",\"params\":{\"arguments\":\"s\"}}",
        "{\"method\":\"tools/call\",\"params\":{\"arguments\":7,\"name\":\"e\"}}",
        "{\"method\":\"tools/call\",\"params\":{\"arguments\":true}}",
        "{\"method\":\"tools/call\",\"params\":{\"arguments\":{}}}",
        "{\"method\":\"tools/call\",\"params\":{\"arguments\":[]}}",
        "{\"method\":\"tools/call\",\"params\":{\"name\":\"e\"}}", /* none */
        "{\"method\":\"tools/call\",\"params\":{}}",
        "{\"method\":\"tools/call\",\"params\":{\"name\":\"e\",\"arguments\": {\"a\":1}}}", /* whitespace */
        "{\"method\":\"tools/"
        "call\",\"params\":{\"name\":\"e\",\"_meta\":{\"progressToken\":1},\"arguments\":{\"a\":1}}}",
        "{\"method\":\"completion/complete\",\"params\":{\"ref\":{\"type\":\"ref/prompt\",\"name\":\"p\"},"
        "\"argument\":{\"name\":\"arg\",\"value\":\"v\"}}}",
        "{\"method\":\"tools/call\",\"params\":[1,2]}",
        "{\"method\":\"tools/call\"}",
    };
    int used = 0;
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        used += args_sha_same(bodies[i], strlen(bodies[i]), "arguments");
        args_sha_same(bodies[i], strlen(bodies[i]), "argument");
    }
    assert_true(used >= 15);
    /* the digest itself: of the compact text, and of nothing when absent */
    char hex[65];
    json_t *p = json_pack("{s:{s:s}}", "arguments", "message", "hi");
    mg__journal_args_sha(p, NULL, 0, "arguments", hex);
    char want[MG_SHA256_HEX];
    mg_sha256_hex("{\"message\":\"hi\"}", 16, want);
    assert_string_equal(hex, want);
    mg__journal_args_sha(p, NULL, 0, "argument", hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    json_decref(p);
    /* many random shapes, as a client would send them (canonical or not) */
    unsigned seed = 16;
    int canon = 0;
    for (int i = 0; i < 3000; i++) {
        json_t *params = json_object();
        for (int m = rand_r(&seed) % 5; m > 0; m--)
            json_object_set_new(params, rand_r(&seed) % 3 ? "name" : "x", random_value(&seed, 1));
        if (rand_r(&seed) % 6 != 0)
            json_object_set_new(params, "arguments", random_value(&seed, 1));
        for (int m = rand_r(&seed) % 3; m > 0; m--)
            json_object_set_new(params, rand_r(&seed) % 2 ? "z" : "arg", random_value(&seed, 1));
        json_t *msg = json_pack("{s:s,s:i,s:s,s:o}", "jsonrpc", "2.0", "id", i, "method", "tools/call",
                                "params", params);
        char *body = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
        canon += args_sha_same(body, strlen(body), "arguments");
        free(body);
        json_decref(msg);
    }
    assert_true(canon > 300); /* the text was used often enough to mean something */
}

/* mg_json_text_member on texts of the wrong shape: -1, never a guess. */
static void test_text_member_shapes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int want;
        const char *value;
    } cases[] = {
        {"{\"a\":1,\"arguments\":{\"x\":[1,\"]\"]},\"b\":2}", 1, "{\"x\":[1,\"]\"]}"},
        {"{\"arguments\":\"}\"}", 1, "\"}\""},
        {"{}", 0, NULL},
        {"{\"a\":1}", 0, NULL},
        {"{\"a\":{\"arguments\":1}}", 0, NULL},
        {"[1]", -1, NULL},
        {"{\"a\":1", -1, NULL},
        {"{\"a\":}", -1, NULL},
        {"{\"a\":1,}", -1, NULL},
        {"{\"a\":[1}", -1, NULL},
        {"{\"a\":\"x}", -1, NULL},
        {"{\"a\" :1}", -1, NULL},
        {"{\"a\":1}}", -1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *v;
        size_t vl;
        int r = mg_json_text_member(cases[i].text, strlen(cases[i].text), "arguments", &v, &vl);
        if (r != cases[i].want)
            fail_msg("%s: %d, want %d", cases[i].text, r, cases[i].want);
        if (r == 1) {
            assert_int_equal(vl, strlen(cases[i].value));
            assert_memory_equal(v, cases[i].value, vl);
        }
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    mg_log_set_level(getenv("MG_TEST_LOG") ? MG_LOG_DEBUG : MG_LOG_ERROR);
    const char *ts = getenv("MG_TESTSERVER");
    snprintf(testserver, sizeof testserver, "%s", ts ? ts : "./mcpgate-testserver");
    if (access(testserver, X_OK) != 0) {
        fprintf(stderr, "test_core: %s is not executable (set MG_TESTSERVER)\n", testserver);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),          cmocka_unit_test(test_initialize_and_list),
        cmocka_unit_test(test_call_json),        cmocka_unit_test(test_sse_switch),
        cmocka_unit_test(test_resume),           cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_errors),           cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_journal_args_sha), cmocka_unit_test(test_text_member_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
