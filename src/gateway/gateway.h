/*
 * gateway.h - the gateway runtime: upstream pools, the merged catalog, sessions, and the MCP
 * request path behind /mcp.
 *
 * One gateway per process, on one libuv loop. http/server.c owns sockets and routes; it hands every
 * /mcp request to mg_gateway_handle_mcp() and asks for /readyz JSON, through the handlers that
 * mg_gateway_server_opts() gives it (the transport knows nothing of the gateway). Everything after
 * that lives in this module: gateway/pipeline.c (the phase table every /mcp request runs through),
 * gateway/session.c (live sessions, streams, replay, the session sources), gateway/reply.c (HTTP
 * answers and the exchange), gateway/dispatch.c (MCP methods and the call phases), and the two
 * wires' handlers (gateway/era_legacy.c, gateway/era_modern.c).
 * Read next: gateway/pipeline.c, then gateway_int.h for the structures and their ownership.
 */
#ifndef MG_GATEWAY_H
#define MG_GATEWAY_H

#include <jansson.h>
#include <uv.h>

#include "../config/config.h"
#include "../http/server.h"

typedef struct mg_gateway mg_gateway_t;

/* Creates the runtime for cfg (borrowed; must outlive the gateway). Returns 0 or MG_ENOMEM. */
int mg_gateway_new(uv_loop_t *loop, const mg_config_t *cfg, mg_gateway_t **out);
/*
 * Session store (gateway.sessions.store, or MCPGATE_SESSION_STORE given as store): "memory"/NULL
 * keeps sessions in this process; a redis URL (session/redis.h) shares them with other replicas.
 * listen: the address served (the default advertise address). Call once, before start. Returns 0,
 * MG_EINVAL with a sentence in why, or MG_ENOMEM.
 */
int mg_gateway_sessions_init(mg_gateway_t *gw, const char *store, const char *listen, char *why,
                             size_t whylen);
/* POST /mcpgate/internal/v1/forward and /modern: requests forwarded by other replicas
 * (gateway/cluster_internal.c), authenticated with gateway.sessions.secret; 404 without a shared store.
 * Always answers. loopback_bound: as for mg_gateway_handle_mcp(). */
int mg_gateway_handle_internal(mg_gateway_t *gw, h2o_req_t *req, int loopback_bound);
/* Opens gateway.journal (obs/journal.h) when configured: at startup, after mg_gateway_new. Returns 0,
 * or an MG_E* error with a sentence in why (serve then exits). Shutdown closes it (written to disk
 * before done_cb runs). */
int mg_gateway_journal_open(mg_gateway_t *gw, char *why, size_t whylen);
/*
 * Applies next (validated whole by the caller; the gateway keeps it until exit) to the running
 * gateway: unchanged servers are untouched, changed ones restart after their calls in flight,
 * what cannot change at runtime is logged and listed in /readyz (gateway/reload.c). Never fails:
 * problems are logged.
 */
void mg_gateway_reload(mg_gateway_t *gw, mg_config_t *next);
/* A reload that did not get that far: logs every problem of errs (may be NULL) and why (may be
 * NULL) and counts it (mcpgate_config_reloads_total{result="failed"}); the running config stays. */
struct mg_config_errors;
void mg_gateway_reload_failed(mg_gateway_t *gw, const char *path, const struct mg_config_errors *errs,
                              const char *why);
/* Spawns every enabled shared upstream and starts the session sweeper. */
void mg_gateway_start(mg_gateway_t *gw);
/* Handles one request on the MCP endpoint through the phase table (pipeline.c); always answers
 * (now or later). Returns 0. */
int mg_gateway_handle_mcp(mg_gateway_t *gw, h2o_req_t *req, int loopback_bound);
/* GET /sse and POST /messages: the 2024-11-05 HTTP+SSE transport (gateway/era_sse.c) through the
 * same phases as /mcp when gateway.legacySse is on; 404 saying how to enable it when off. Always
 * answers (now or later). Returns 0. */
int mg_gateway_handle_sse(mg_gateway_t *gw, h2o_req_t *req, int loopback_bound);
/* GET /metrics and /status (gateway/admin.c): scope mcpgate:admin with gateway.auth, loopback clients
 * only without it. Always answers (now or later). Returns 0. */
int mg_gateway_handle_admin(mg_gateway_t *gw, h2o_req_t *req);
/* NEW reference: {"ready":bool,"status":"ok|degraded|down|stopping","upstreams":[...]} */
json_t *mg_gateway_readyz(mg_gateway_t *gw, int *ready);
/*
 * Graceful stop: refuse new MCP requests (503), let in-flight calls finish for up to grace_ms,
 * then fail the rest, end SSE streams with a retry hint, stop children. done_cb runs once all
 * children are reaped.
 */
void mg_gateway_shutdown(mg_gateway_t *gw, uint64_t grace_ms, void (*done_cb)(mg_gateway_t *, void *),
                         void *data);
void mg_gateway_free(mg_gateway_t *gw);

/* The auth runtime (gateway.auth), NULL when none is configured; http/server.c serves its
 * /.well-known/ documents. */
struct mg_auth *mg_gateway_auth(mg_gateway_t *gw);

/* What http/server.c needs to serve gw: cfg's body and idle limits and the handlers of /mcp,
 * /mcpgate/internal/, /readyz and /.well-known/ (mg_gateway_handle_mcp(), mg_gateway_handle_internal(),
 * mg_gateway_readyz(), the auth runtime's metadata). Pass the result to mg_server_start(). */
mg_server_opts_t mg_gateway_server_opts(mg_gateway_t *gw, const mg_config_t *cfg);

/* Milliseconds on the loop's monotonic clock (uv_now). */
uint64_t mg_gateway_now_ms(void);

#endif
