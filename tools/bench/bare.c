/*
 * bare.c - build/mcpgate-bare: the physical limit of mcpgate's HTTP stack on this machine.
 *
 * Contract: h2o 2.2 on libuv set up exactly as src/http/server.c does it (one loop, one thread,
 * h2o_uv_socket_create + h2o_accept, TCP_NODELAY, listen backlog 1024), answering every POST with
 * the constant JSON-RPC result {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text",
 * "text":"x"}]}} as application/json, GET with 200 {"status":"ok"} (readiness), anything else 405.
 * No MCP, no JSON parsing, no upstream: mcpgate can only be slower. SIGINT/SIGTERM exit 0.
 *     mcpgate-bare --listen 127.0.0.1:PORT
 * Read next: main.c (mcpgate-bench --raw-post drives this), src/http/server.c.
 */
#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char result_body[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\","
                                  "\"text\":\"x\"}]}}";
static const char health_body[] = "{\"status\":\"ok\"}";

static h2o_globalconf_t config;
static h2o_context_t ctx;
static h2o_accept_ctx_t accept_ctx;

static void respond(h2o_req_t *req, int status, const char *reason, const char *body, size_t len)
{
    static h2o_generator_t gen = {NULL, NULL};
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    req->res.content_length = len;
    h2o_iovec_t b = h2o_iovec_init(body, len);
    h2o_start_response(req, &gen);
    h2o_send(req, &b, 1, H2O_SEND_STATE_FINAL);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")))
        respond(req, 200, "OK", result_body, sizeof result_body - 1);
    else if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        respond(req, 200, "OK", health_body, sizeof health_body - 1);
    else
        respond(req, 405, "Method Not Allowed", "{}", 2);
    return 0;
}

static void on_accept(uv_stream_t *listener, int status)
{
    if (status != 0)
        return;
    uv_tcp_t *conn = malloc(sizeof(*conn));
    if (conn == NULL)
        return;
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
    h2o_accept(&accept_ctx, sock);
}

static void on_signal(uv_signal_t *h, int signum)
{
    exit(0);
}

int main(int argc, char **argv)
{
    const char *listen_at = "127.0.0.1:8090";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen_at = argv[++i];
        } else {
            fprintf(stderr,
                    "usage: mcpgate-bare [--listen 127.0.0.1:PORT]\n"
                    "Answers every POST with a constant JSON-RPC result (h2o on libuv, as mcpgate).\n");
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    char host[64];
    const char *colon = strrchr(listen_at, ':');
    if (colon == NULL || (size_t)(colon - listen_at) >= sizeof host) {
        fprintf(stderr, "mcpgate-bare: --listen must be IPv4:PORT\n");
        return 2;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen_at), listen_at);
    struct sockaddr_in addr;
    if (uv_ip4_addr(host, atoi(colon + 1), &addr) != 0) {
        fprintf(stderr, "mcpgate-bare: --listen must be IPv4:PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();

    h2o_config_init(&config);
    config.server_name = h2o_iovec_init(H2O_STRLIT("mcpgate-bare"));
    h2o_hostconf_t *hc = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(hc, "/", 0);
    h2o_handler_t *h = h2o_create_handler(pc, sizeof(*h));
    h->on_req = on_req;
    h2o_context_init(&ctx, loop, &config);
    accept_ctx.ctx = &ctx;
    accept_ctx.hosts = config.hosts;

    uv_tcp_t listener;
    uv_tcp_init(loop, &listener);
    int r = uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&listener, 1024, on_accept);
    if (r != 0) {
        fprintf(stderr, "mcpgate-bare: cannot listen on %s: %s\n", listen_at, uv_strerror(r));
        return 1;
    }
    uv_signal_t sigint, sigterm;
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    fprintf(stderr, "mcpgate-bare: listening on http://%s/\n", listen_at);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
