/*
 * remote_int.h - internals of the remote upstream (remote.c: the MCP Streamable HTTP client behind
 * the upstream interface; remote_conn.c: URL parsing, the SSRF guard and its pinned address, the SSE
 * event parser). Everything runs on the loop thread.
 *
 * Wire (client side of MCP Streamable HTTP, 2025-03-26 .. 2025-11-25):
 *
 * | what                    | request                                              | answer |
 * |-------------------------|------------------------------------------------------|-----------------------------|
 * | initialize              | POST url, Accept: application/json, text/event-stream | JSON or SSE;
 * Mcp-Session-Id | | notifications/initialized, responses to the server, notifications | POST, session
 * headers | 202             | | a request               | POST, Mcp-Session-Id, MCP-Protocol-Version | JSON,
 * or SSE: related msgs  | |                         |                                                      |
 * then the response           | | unattributed messages   | GET, Accept: text/event-stream (+ Last-Event-ID)
 * | SSE stream; 405 = none      | | end of the session      | DELETE, Mcp-Session-Id | any |
 *
 * A 404 on a request that carried a session id means the server lost the session: the call fails
 * with a sentence saying so and the upstream initializes a new session.
 */
#ifndef MG_UPSTREAM_REMOTE_INT_H
#define MG_UPSTREAM_REMOTE_INT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../config/config.h"

/* ---- remote_conn.c: URL, guard ---- */

typedef struct mg__url {
    char host[256]; /* without brackets */
    unsigned port;
    int https;
    int literal; /* host is an IP address */
} mg__url_t;

/* Splits an http(s) URL into host and port (default 80/443). Returns 0 or MG_EINVAL. */
int mg__url_parse(const char *url, mg__url_t *out);

/*
 * The SSRF guard for one resolved address list: picks the first address that is public, or that
 * lies in one of egress's allowCidrs; writes it as text into addr (for CURLOPT_RESOLVE). Returns 0,
 * or MG_EFORBIDDEN with a sentence in why naming the first refused address and its class
 * ("127.0.0.1 (loopback)") and what to do.
 */
int mg__egress_pick(const struct addrinfo *ai, const struct mg_egress_config *egress, char *addr, size_t n,
                    char *why, size_t whylen);

/* ---- remote_conn.c: SSE parser ---- */

/* One event: data joined with '\n'; id and event NULL when absent. Borrowed for the callback. */
typedef void (*mg__sse_event_cb)(void *data, const char *id, const char *event, const char *payload,
                                 size_t len);

typedef struct mg__sse_parser {
    char *line; /* the current line (malloc'd) */
    size_t llen, lcap;
    char *data; /* the current event's data */
    size_t dlen, dcap;
    char *id, *event;
    int have_data, cr;
    size_t max;    /* bound on one line and one event's data */
    long retry_ms; /* last "retry:" seen, -1 none */
} mg__sse_parser_t;

void mg__sse_init(mg__sse_parser_t *p, size_t max);
/* Feeds bytes; calls cb for each complete event. Returns 0, or MG_ETOOBIG when a line or an event
 * exceeds max (the parser is then unusable), MG_ENOMEM. */
int mg__sse_feed(mg__sse_parser_t *p, const char *bytes, size_t len, mg__sse_event_cb cb, void *data);
void mg__sse_dispose(mg__sse_parser_t *p);

/* ---- remote.c ---- */
struct mg_upstream_opts;
struct mg_upstream_hooks;
struct mg_upstream;
int mg__remote_new(uv_loop_t *loop, const struct mg_upstream_opts *opts,
                   const struct mg_upstream_hooks *hooks, void *hooks_data, struct mg_upstream **out);

#endif
