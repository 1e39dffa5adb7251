/*
 * fuzz_http.c - libFuzzer target: raw bytes from a client, through the whole HTTP path of a real
 * gateway in this process: h2o's HTTP/1.1 (and h2c) parser, routing, Host/Origin rules, Accept /
 * Content-Type, body size, JSON-RPC parse and depth, sessions (Mcp-Session-Id,
 * MCP-Protocol-Version, Last-Event-ID), dispatch and the JSON or SSE answer.
 *
 * One gateway (config below: its one upstream cannot start, so calls to it wait in the upstream's
 * queue, and routing, lists and errors are exercised without a child) serves one end of a
 * socketpair handed to h2o_accept(); the input is written to the other end, which is then
 * half-closed. A session with the fixed id FUZZ_SID exists during every input, so session paths
 * are reachable. Once the bytes are processed, every session is closed and every stateless call
 * failed (that ends any SSE stream), and the connection must close within HANG_MS. server.c is
 * #included for its struct (h2o's unit-test style).
 * Oracles: no crash, no sanitizer report, no leak, no hang, never a 500.
 * Read next: src/http/server.c, src/gateway/era_legacy.c.
 */
#include "../src/http/server.c"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/config.h"
#include "gateway/gateway_int.h"

#define FUZZ_SID "fuzzSESSIONfuzzSESSIONfuzzSESSIONfuzzSESSIO" /* 43 chars, like a real id */
#define HANG_MS  5000

static const char config_json[] =
    "{\"mcpServers\":{\"down\":{\"command\":\"/nonexistent/fuzz-upstream\"},"
    "\"off\":{\"command\":\"/nonexistent\",\"disabled\":true}},"
    "\"gateway\":{\"allowedOrigins\":[\"https://app.example.com\"],\"allowedHosts\":[\"mcp.example.com\"],"
    "\"limits\":{\"maxBodyBytes\":65536,\"maxJsonDepth\":32,\"maxSessions\":64,\"maxInflightPerSession\":8,"
    "\"sseReplayEvents\":8,\"sseReplayBytes\":4096}}}";

static uv_loop_t loop;
static mg_config_t cfg;
static mg_gateway_t *gw;
static mg_server_t *srv;

typedef struct client {
    int fd;
    uv_poll_t poll;
    int eof;
    size_t got;
    char head[16];
    int saw_500;
    char tail[16]; /* last bytes seen, to spot "HTTP/1.1 500" across reads */
} client_t;

static void client_read(client_t *c)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n > 0) {
            char win[sizeof c->tail + 32];
            size_t t = strlen(c->tail);
            memcpy(win, c->tail, t);
            size_t k = (size_t)n < 31 ? (size_t)n : 31;
            memcpy(win + t, buf, k);
            win[t + k] = '\0';
            if (strstr(win, "HTTP/1.1 500") || memmem(buf, (size_t)n, "HTTP/1.1 500", 12))
                c->saw_500 = 1;
            size_t keep = (size_t)n < sizeof c->tail - 1 ? (size_t)n : sizeof c->tail - 1;
            memcpy(c->tail, buf + n - keep, keep);
            c->tail[keep] = '\0';
            c->got += (size_t)n;
            continue;
        }
        if (n == 0)
            c->eof = 1;
        return; /* EAGAIN, or an error (the peer reset): both end this read */
    }
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    client_t *c = h->data;
    client_read(c);
    if (c->eof || status < 0)
        uv_poll_stop(h);
}

static void deadline_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN);
    mg_log_set_level(getenv("MG_FUZZ_LOG") ? MG_LOG_DEBUG : MG_LOG_ERROR);
    uv_loop_init(&loop);
    mg_config_errors_t errs;
    if (mg_config_parse(config_json, "fuzz", "/tmp", &cfg, &errs) != 0) {
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        abort();
    }
    mg_config_errors_dispose(&errs);
    if (mg_gateway_new(&loop, &cfg, &gw) != 0)
        abort();
    struct sockaddr_storage addr;
    int lo = 0;
    const char *why = NULL;
    mg_server_opts_t sopts = mg_gateway_server_opts(gw, &cfg);
    if (mg_server_resolve("127.0.0.1:0", &addr, &lo, &why) != 0 ||
        mg_server_start(&loop, &sopts, (struct sockaddr *)&addr, lo, &srv, &why) != 0)
        abort();
    mg_gateway_start(gw);
    uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}

/* The session every input may name: created with a random id, then renamed. */
static void fixed_session(void)
{
    mg_session_t *s = NULL;
    if (mg__session_create(gw, "2025-06-18", NULL, NULL, &s) != 0)
        abort();
    mg_map_del(&gw->sessions, s->id);
    /* one process: the session table is the store (no shared store in this config) */
    snprintf(s->id, sizeof s->id, "%s", FUZZ_SID);
    if (mg_map_set(&gw->sessions, s->id, s) != 0)
        abort();
}

static void close_sessions(void)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val))
        mg__session_close(val, "fuzz input done");
    if (gw->stateless != NULL) /* 2026-07-28 calls (and listen streams) belong to no session */
        mg__dispatch_session_gone(gw->stateless);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024)
        return 0;
    fixed_session();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    uv_pipe_t *pipe = malloc(sizeof *pipe);
    uv_pipe_init(&loop, pipe, 0);
    if (uv_pipe_open(pipe, sv[0]) != 0)
        abort();
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)pipe, (uv_close_cb)free);
    h2o_accept(&srv->accept_ctx, sock);

    client_t c = {.fd = sv[1]};
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    uv_poll_init(&loop, &c.poll, c.fd);
    c.poll.data = &c;
    uv_poll_start(&c.poll, UV_READABLE | UV_DISCONNECT, poll_cb);

    /* Write everything (the gateway reads meanwhile), then half-close: no more bytes will come. */
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(c.fd, data + off, size - off);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            break; /* the gateway closed the connection early (413, a parse error) */
        uv_run(&loop, UV_RUN_NOWAIT);
        if (c.eof)
            break;
    }
    shutdown(c.fd, SHUT_WR);
    for (int i = 0; i < 16 && !c.eof; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    close_sessions(); /* ends every SSE stream */

    int hung = 0;
    uv_timer_t deadline;
    uv_timer_init(&loop, &deadline);
    deadline.data = &hung;
    uv_timer_start(&deadline, deadline_cb, HANG_MS, 0);
    while (!c.eof && !hung)
        uv_run(&loop, UV_RUN_ONCE);
    if (hung) {
        fprintf(stderr, "fuzz_http: the connection was still open %d ms after the input ended\n", HANG_MS);
        abort();
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_close((uv_handle_t *)&c.poll, NULL);
    /* Let h2o finish closing its side and the sessions be freed (idle callbacks). */
    for (int i = 0; i < 8; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    close(c.fd);
    if (gw->sessions.count != 0)
        abort();
    if (c.saw_500)
        abort(); /* an internal error answered to a client input */
    return 0;
}
