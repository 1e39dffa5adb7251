/*
 * server.h - the HTTP front: h2o (HTTP/1.1 and h2c) on the process's libuv loop.
 *
 * Every request head is checked first (head.h: ambiguous framing or Host -> 400, connection closed).
 * Routes: /mcp -> gateway (era/legacy.c), /healthz -> 200 "ok" while the process runs (drain included),
 * /readyz -> gateway readiness JSON (200 ready / 503 not), /metrics -> Prometheus text
 * (obs/metrics.h), anything else -> 404 JSON.
 * Body size is capped by h2o (413) at limits.max_body_bytes. The listener is a uv_tcp_t.
 * Read next: gateway/gateway.h.
 */
#ifndef MG_SERVER_H
#define MG_SERVER_H

#include <uv.h>

#include "../config/config.h"
#include "../gateway/gateway.h"

typedef struct mg_server mg_server_t;

/* Parses "host:port" / "[v6]:port" and resolves it (blocking getaddrinfo, at startup only).
 * Sets *loopback when the address is 127/8 or ::1. Returns 0 or MG_EINVAL with *why set. */
int mg_server_resolve(const char *listen, struct sockaddr_storage *out, int *loopback, const char **why);

/* Binds and listens. Returns 0, or a negative libuv/MG error with a message in *why (static or
 * from uv_strerror). */
int mg_server_start(uv_loop_t *loop, const mg_config_t *cfg, mg_gateway_t *gw, const struct sockaddr *addr,
                    int loopback, mg_server_t **out, const char **why);
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
