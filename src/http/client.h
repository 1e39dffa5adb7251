/*
 * client.h - a minimal outbound HTTP/1.1 client on the process's libuv loop, for replica-to-replica
 * forwarding (gateway/cluster.c): one POST per connection (Connection: close), the response body
 * streamed to the caller as it arrives (Content-Length, chunked, or until close).
 *
 * Contract: mg_http_post() returns 0 and then calls done_cb exactly once (after any number of
 * body_cb calls), or returns an error and calls nothing. mg_http_abort() ends the exchange: no
 * callback runs after it. err in done_cb: 0 when the whole response arrived; MG_EIO when the
 * connection failed or broke (a refused connection is MG_EIO before any body_cb); MG_ETIMEOUT when
 * the deadline passed; MG_ETOOBIG when the headers exceed 16 KiB. http/ knows nothing of MCP.
 * Read next: gateway/cluster.c (its user).
 */
#ifndef MG_HTTP_CLIENT_H
#define MG_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct mg_http_call mg_http_call_t;

/* status is known before the first body byte; headers: the raw header lines ("Name: value\r\n"
 * each, without the status line), borrowed for the call. */
typedef void (*mg_http_head_cb)(void *data, int status, const char *headers, size_t len);
typedef void (*mg_http_body_cb)(void *data, const char *bytes, size_t len);
typedef void (*mg_http_done_cb)(void *data, int err, int status);

typedef struct mg_http_req {
    const char *hostport; /* "10.0.0.5:8080", "[::1]:8080" or "name:8080" */
    const char *path;
    const char **headers; /* name, value pairs */
    size_t nheaders;
    const char *body;
    size_t len;
    uint64_t timeout_ms; /* the whole exchange; 0 = 30 s */
} mg_http_req_t;

int mg_http_post(uv_loop_t *loop, const mg_http_req_t *r, mg_http_head_cb head_cb, mg_http_body_cb body_cb,
                 mg_http_done_cb done_cb, void *data, mg_http_call_t **out);
void mg_http_abort(mg_http_call_t *c);

#endif
