/*
 * client.h - the one outbound HTTP(S) client: libcurl's multi interface driven by the process's
 * libuv loop (one uv_poll_t per socket, one uv_timer_t), never blocking it. Users: replica-to-replica
 * forwarding (gateway/cluster_forward.c) and the identity provider fetches (auth/fetch.c); remote upstreams
 * next. A client keeps idle connections for reuse (keep-alive), per origin; TLS is verified.
 *
 * Contract (libuv's): mg_http_request() returns 0 and then calls done_cb exactly once (after at
 * most one head_cb and any number of body_cb calls, never from inside mg_http_request), or returns
 * an error and calls nothing. mg_http_cancel() ends a call: no callback runs after it, and it may be
 * called from any of the call's own callbacks (or another call's). A callback may start requests.
 * err in done_cb: 0 when the whole response arrived (any status); MG_ETIMEOUT when the deadline
 * passed; MG_ETOOBIG when the header block exceeds 16 KiB or the body exceeds max_body; MG_EIO when
 * the connection failed or broke (a refused connection is MG_EIO before any head_cb). http/ knows
 * nothing of MCP. Read next: client.c, then gateway/cluster_forward.c and auth/fetch.c (its users).
 */
#ifndef MG_HTTP_CLIENT_H
#define MG_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct mg_http_client mg_http_client_t;
typedef struct mg_http_call mg_http_call_t;

/* Once per call, before the first body byte, when the final (non-1xx) header block has arrived.
 * headers: the raw header lines ("Name: value\r\n" each, without the status line), borrowed for
 * the callback. */
typedef void (*mg_http_head_cb)(void *data, int status, const char *headers, size_t len);
/* Body bytes as they arrive (chunked framing already removed), borrowed for the callback. */
typedef void (*mg_http_body_cb)(void *data, const char *bytes, size_t len);
/* status: the response's (0 when none arrived). why: NULL when err is 0, else a short text for
 * logs (libcurl's message; it holds the URL's host at most, never a header). */
typedef void (*mg_http_done_cb)(void *data, int err, int status, const char *why);

typedef struct mg_http_req {
    const char *url;      /* "http://10.0.0.5:8080/path" or "https://..."; nothing else is spoken */
    const char *method;   /* NULL: POST when body != NULL, else GET; or "DELETE", "PUT"... */
    const char **headers; /* name, value pairs; a "host" pair replaces the URL's Host */
    size_t nheaders;
    const char *body; /* copied (unless body_kept); NULL = no body */
    size_t len;
    int body_kept;          /* 1: body is not copied; the caller keeps it valid and unchanged until done_cb
                               starts or the call is cancelled (a large body sent often: no copy, no new pages) */
    const char *basic_user; /* HTTP Basic authentication (both or neither) */
    const char *basic_pass;
    long timeout_ms;         /* the whole exchange; 0 = 30 s; < 0 = none (long-lived streams) */
    long connect_timeout_ms; /* 0 = the same as timeout_ms (or 30 s when it is none) */
    size_t max_body;         /* 0 = unbounded: the caller streams and bounds what it keeps */
    const char *ca_file;     /* PEM CA bundle; NULL = the system's */
    int env_proxy;           /* 1: honour http_proxy/https_proxy/no_proxy; 0: always direct */
    const char *resolve;     /* "host:port:address": connect to address for the URL's host:port and
                                nothing else (a pinned DNS answer); NULL = the system resolver */
    long idle_ms;            /* > 0: fail with MG_ETIMEOUT when no byte arrived for this long (rounded
                                up to whole seconds); 0 = no bound besides timeout_ms */
} mg_http_req_t;

/* Returns 0, or MG_EIO when libcurl cannot be loaded (logged once), or MG_ENOMEM. */
int mg_http_client_new(uv_loop_t *loop, mg_http_client_t **out);
/* Cancels every call (no callback runs), closes the idle connections and the handles; memory goes
 * from the last close callback, so run the loop afterwards. May be called from a callback. */
void mg_http_client_free(mg_http_client_t *cl);

/* Starts one request. Returns 0 (done_cb runs later, exactly once unless cancelled) or MG_EINVAL
 * (no URL, a scheme other than http/https, no done_cb) / MG_ENOMEM / MG_ECLOSED (the client is
 * being freed): then nothing is called. *out (may be NULL) is valid until done_cb starts or the
 * call is cancelled. Everything in r is copied (the body not with body_kept). */
int mg_http_request(mg_http_client_t *cl, const mg_http_req_t *r, mg_http_head_cb head_cb,
                    mg_http_body_cb body_cb, mg_http_done_cb done_cb, void *data, mg_http_call_t **out);
/* The HTTP version the call's connection speaks: "h2", "http/1.1", "http/1.0", "h3", or NULL when
 * not known yet. Meaningful from head_cb on (the version of the response being delivered). */
const char *mg_http_call_version(const mg_http_call_t *c);
/* Ends a call: its callbacks never run again; an unfinished exchange's connection is closed (the
 * server sees the client go away). NULL is ignored. */
void mg_http_cancel(mg_http_call_t *c);

#endif
