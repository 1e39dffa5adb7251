/*
 * server.h - the HTTP front: h2o (HTTP/1.1 and h2c) on the process's libuv loop.
 *
 * Every request head is checked first (head.h: ambiguous framing or Host -> 400, connection closed).
 * Routes: /mcp, /sse and /messages, and /mcpgate/internal/ -> the handlers of mg_server_opts_t (the
 * gateway's, given by mg_gateway_server_opts()), /healthz -> 200 "ok" while the process runs (drain
 * included), /readyz -> the readiness JSON of opts (200 ready / 503 not), /metrics and /status ->
 * opts' admin handler (it renders obs/metrics.h's text), /.well-known/ -> opts' handler, anything
 * else -> 404 JSON; opts.routes may leave the admin routes out, or serve only them and the probes.
 * Transport only: this layer knows no MCP, no config file and no gateway (docs/architecture.md
 * "Layers"). Body size is capped by h2o (413) at twice max_body_bytes. The listener is a uv_tcp_t.
 * Read next: gateway/gateway.h.
 */
#ifndef MG_SERVER_H
#define MG_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct mg_server mg_server_t;
typedef struct st_h2o_req_t h2o_req_t;

/* Which routes a listener serves: everything (the default), everything but the admin routes
 * (/metrics, /status: when they have a listener of their own), or only those and the probes. */
typedef enum mg_server_routes {
    MG_SERVER_ROUTES_ALL = 0,
    MG_SERVER_ROUTES_PUBLIC,
    MG_SERVER_ROUTES_ADMIN
} mg_server_routes_t;

/* What the server needs from the application behind it: limits and the handlers of its routes.
 * Every handler gets `data`; each must be set. */
typedef struct mg_server_opts {
    size_t max_body_bytes;    /* limits.maxBodyBytes (h2o's own cap is twice this) */
    uint64_t idle_timeout_ms; /* limits.httpIdleTimeoutMs */
    void *data;
    /* /mcp, and /mcpgate/internal/...: always answer (now or later); return 0. loopback_bound: the
     * listener is on a loopback address. */
    int (*mcp)(void *data, h2o_req_t *req, int loopback_bound);
    int (*internal)(void *data, h2o_req_t *req, int loopback_bound);
    /* /sse and /messages (the 2024-11-05 HTTP+SSE transport): always answer (404 when the
     * application does not serve it); return 0. */
    int (*legacy_sse)(void *data, h2o_req_t *req, int loopback_bound);
    /* /readyz: a NEW reference to the JSON body; *ready selects 200 or 503. */
    json_t *(*readyz)(void *data, int *ready);
    /* /.well-known/...: 0 when answered, else nonzero (the server answers 404). */
    int (*well_known)(void *data, h2o_req_t *req);
    /* /metrics and /status: always answers (now or later; access rules are the application's). */
    int (*admin)(void *data, h2o_req_t *req);
    mg_server_routes_t routes;
} mg_server_opts_t;

/* Parses "host:port" / "[v6]:port" and resolves it (blocking getaddrinfo, at startup only).
 * Sets *loopback when the address is 127/8 or ::1. Returns 0 or MG_EINVAL with *why set. */
int mg_server_resolve(const char *listen, struct sockaddr_storage *out, int *loopback, const char **why);

/* Binds and listens. Returns 0, or a negative libuv/MG error with a message in *why (static or
 * from uv_strerror). */
int mg_server_start(uv_loop_t *loop, const mg_server_opts_t *opts, const struct sockaddr *addr, int loopback,
                    mg_server_t **out, const char **why);
/* Starts the drain (SIGTERM): the listener keeps accepting until the process exits, so /readyz can
 * answer 503 and /healthz 200 (the gateway answers /mcp 503 + Retry-After once mg_gateway_shutdown
 * has run); HTTP/1 connections are no longer kept alive (each closes after its response) and h2
 * connections get GOAWAY. */
void mg_server_drain(mg_server_t *srv);
/* Closes the listener and frees, after mg_server_drain() and once every connection is gone; the
 * memory is released from the listener's close callback (run the loop). */
void mg_server_free(mg_server_t *srv);
/* Bound port (useful with port 0). */
int mg_server_port(const mg_server_t *srv);

#endif
