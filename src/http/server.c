/*
 * server.c - h2o on libuv: listener, accept, routing (server.h).
 *
 * Every request first passes the head check (head.h: framing and Host, answered 400 with the
 * connection closed), then goes to its route. Read next: http/head.h, gateway/era_legacy.c.
 */
#include "server.h"
#include "head.h"
#include "status.h"
#include "../common/err.h"
#include "../common/log.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mg_server {
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    mg_server_opts_t opts; /* the application behind the routes (server.h) */
    int loopback;
    int port;
};

typedef struct handler {
    h2o_handler_t super;
    mg_server_t *srv;
} handler_t;

static void send_simple(h2o_req_t *req, int status, const char *ctype, const char *body)
{
    static h2o_generator_t gen = {NULL, NULL};
    size_t len = strlen(body);
    req->res.status = status;
    req->res.reason = mg_http_reason(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_iovec_t b = h2o_strdup(&req->pool, body, len);
    req->res.content_length = len;
    h2o_start_response(req, &gen);
    h2o_send(req, &b, 1, H2O_SEND_STATE_FINAL);
}

static int path_is(h2o_req_t *req, const char *p)
{
    size_t n = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    return n == strlen(p) && memcmp(req->path.base, p, n) == 0;
}

/*
 * The head check on HTTP/1.x (h2 frames its own messages; its :authority is one field). h2o 2.2
 * leaves the request's head at the start of the connection's input buffer until the response is
 * sent (the next pipelined request is parsed only then), so the bytes are the ones h2o parsed.
 * Returns 0, or MG_EINVAL with *why.
 */
static int check_head(h2o_req_t *req, const char **why)
{
    if (req->version >= 0x200 || req->conn == NULL || req->conn->callbacks->get_socket == NULL)
        return 0;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->input == NULL) {
        *why = "Bad Request: the request head could not be read again";
        return MG_EINVAL;
    }
    return mg_http_head_check(sock->input->bytes, sock->input->size, req->version == 0x101, why);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    mg_server_t *srv = ((handler_t *)self)->srv;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SERVER, NULL, H2O_STRLIT("mcpgate"));
    const char *why = NULL;
    if (check_head(req, &why) != 0) {
        /* Close after this answer: whatever follows on the connection may be a smuggled request. */
        req->http1_is_persistent = 0;
        mg_log_json(MG_LOG_INFO, "request refused: ambiguous head", json_pack("{s:s}", "reason", why));
        json_t *e = json_pack("{s:s,s:n,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", "error", "code",
                              mg_err_jsonrpc_code(MG_EREQUEST), "message", why);
        char *body = e != NULL ? json_dumps(e, JSON_COMPACT) : NULL;
        json_decref(e);
        send_simple(req, 400, "application/json", body != NULL ? body : "{}");
        free(body);
        return 0;
    }
    int admin_path = path_is(req, "/metrics") || path_is(req, "/status");
    if (admin_path && srv->opts.routes != MG_SERVER_ROUTES_PUBLIC)
        return srv->opts.admin(srv->opts.data, req);
    if (srv->opts.routes == MG_SERVER_ROUTES_ADMIN && !path_is(req, "/healthz") && !path_is(req, "/readyz")) {
        send_simple(
            req, 404, "application/json",
            "{\"error\":\"not found\",\"hint\":\"this is the admin listener (gateway.metrics.listen): "
            "/metrics, /status, /healthz, /readyz\"}");
        return 0;
    }
    if (admin_path) {
        send_simple(req, 404, "application/json",
                    "{\"error\":\"not found\",\"hint\":\"/metrics and /status are served on "
                    "gateway.metrics.listen\"}");
        return 0;
    }
    if (path_is(req, "/mcp"))
        return srv->opts.mcp(srv->opts.data, req, srv->loopback);
    if (path_is(req, "/sse") || path_is(req, "/messages"))
        return srv->opts.legacy_sse(srv->opts.data, req, srv->loopback);
    /* Replica-to-replica forwarding (gateway/cluster_internal.c): authenticated with the cluster secret;
     * keep it off public routes (deploy/nginx.conf only proxies /mcp and the probes). */
    if (req->path.len >= 19 && memcmp(req->path.base, "/mcpgate/internal/", 18) == 0)
        return srv->opts.internal(srv->opts.data, req, srv->loopback);
    if (path_is(req, "/healthz")) {
        send_simple(req, 200, "application/json", "{\"status\":\"ok\"}");
        return 0;
    }
    if (path_is(req, "/readyz")) {
        int ready = 0;
        json_t *r = srv->opts.readyz(srv->opts.data, &ready);
        char *s = json_dumps(r, JSON_COMPACT);
        json_decref(r);
        send_simple(req, ready ? 200 : 503, "application/json", s ? s : "{}");
        free(s);
        return 0;
    }
    /* RFC 9728 protected resource metadata and the issuer's metadata (src/auth/auth.c). */
    if (req->path.len > 13 && memcmp(req->path.base, "/.well-known/", 13) == 0 &&
        srv->opts.well_known(srv->opts.data, req) == 0)
        return 0;
    send_simple(req, 404, "application/json",
                "{\"error\":\"not found\",\"hint\":\"the MCP endpoint is /mcp; health: /healthz, /readyz\"}");
    return 0;
}

static void on_accept(uv_stream_t *listener, int status)
{
    mg_server_t *srv = listener->data;
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
    h2o_accept(&srv->accept_ctx, sock);
}

int mg_server_resolve(const char *listen, struct sockaddr_storage *out, int *loopback, const char **why)
{
    char host[256];
    const char *port;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (close == NULL || close[1] != ':') {
            *why = "listen address must be host:port or [ipv6]:port";
            return MG_EINVAL;
        }
        snprintf(host, sizeof host, "%.*s", (int)(close - listen - 1), listen + 1);
        port = close + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (colon == NULL) {
            *why = "listen address must be host:port or [ipv6]:port";
            return MG_EINVAL;
        }
        snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
        port = colon + 1;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (getaddrinfo(host[0] ? host : NULL, port, &hints, &res) != 0 || res == NULL) {
        *why = "cannot resolve the listen address";
        return MG_EINVAL;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (out->ss_family == AF_INET) {
        uint32_t a = ntohl(((struct sockaddr_in *)out)->sin_addr.s_addr);
        *loopback = (a >> 24) == 127;
    } else {
        struct in6_addr *a = &((struct sockaddr_in6 *)out)->sin6_addr;
        *loopback = IN6_IS_ADDR_LOOPBACK(a);
    }
    return 0;
}

int mg_server_start(uv_loop_t *loop, const mg_server_opts_t *opts, const struct sockaddr *addr, int loopback,
                    mg_server_t **out, const char **why)
{
    mg_server_t *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return MG_ENOMEM;
    srv->opts = *opts;
    srv->loopback = loopback;
    h2o_config_init(&srv->config);
    /* h2o closes the connection as soon as a body passes its cap, which a client still writing sees
     * as a reset, not a 413. So h2o's cap is twice ours: up to that, the body is read and the
     * gateway answers 413 itself (gateway/era_legacy.c); beyond it, h2o cuts the connection to bound memory.
     */
    srv->config.max_request_entity_size = opts->max_body_bytes * 2;
    /* Slow and idle clients (slowloris, idle keep-alive): h2o closes an HTTP/1 connection whose
     * request is not complete (headers and body) this long after it began, and an idle h2c one. */
    srv->config.http1.req_timeout = opts->idle_timeout_ms;
    srv->config.http2.idle_timeout = opts->idle_timeout_ms;
    /* No server_name: h2o would write "Server: mcpgate" with a sprintf of its own per response (~750
     * instructions); on_req adds the same header to every response it makes for ~130. */
    srv->config.server_name = h2o_iovec_init(NULL, 0);
    h2o_hostconf_t *hc = h2o_config_register_host(&srv->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(hc, "/", 0);
    handler_t *h = (handler_t *)h2o_create_handler(pc, sizeof(*h));
    h->super.on_req = on_req;
    h->srv = srv;
    h2o_context_init(&srv->ctx, loop, &srv->config);
    srv->accept_ctx.ctx = &srv->ctx;
    srv->accept_ctx.hosts = srv->config.hosts;

    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    int r = uv_tcp_bind(&srv->listener, addr, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&srv->listener, 1024, on_accept);
    if (r != 0) { /* the listener handle stays initialized: mg_server_free() closes it */
        *why = uv_strerror(r);
        *out = srv;
        return r;
    }
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &blen);
    srv->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                                 : ((struct sockaddr_in6 *)&bound)->sin6_port);
    *out = srv;
    return 0;
}

void mg_server_drain(mg_server_t *srv)
{
    /* The listener stays open until the process exits: a closed port reads as a dead pod
     * (connection refused) to probes and clients, while /readyz 503 reads as "send no more". */
    h2o_context_request_shutdown(&srv->ctx);
}

static void listener_closed_cb(uv_handle_t *h)
{
    free(h->data);
}

void mg_server_free(mg_server_t *srv)
{
    if (srv == NULL)
        return;
    /* h2o's context owns timers and an async handle on the loop: closed here, so the loop can close
     * once their close callbacks ran (every connection must be gone by now). The struct is freed
     * from the listener's close callback (the handle is embedded). */
    if (h2o_timeout_is_linked(&srv->ctx.http2._graceful_shutdown_timeout)) /* GOAWAY resend */
        h2o_timeout_unlink(&srv->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&srv->ctx);
    h2o_config_dispose(&srv->config);
    uv_close((uv_handle_t *)&srv->listener, listener_closed_cb);
}

int mg_server_port(const mg_server_t *srv)
{
    return srv->port;
}
