/*
 * fetch.h - one bounded HTTP(S) response, whole, for the identity provider fetches: a thin user of
 * the one outbound client (http/client.h: libcurl multi on the gateway's loop, never blocking it).
 *
 * Contract: mg_fetch_start() never calls its callback synchronously; the callback runs exactly
 * once unless the request is cancelled first (mg_fetch_cancel: then never). Bodies are capped
 * (max_bytes) and the whole exchange has a deadline (timeout_ms). Redirects are never followed
 * and only http/https are spoken (the caller checks URLs with mg_auth_url_check()). Used by the
 * JWKS / metadata fetcher and token introspection. Environment proxies (https_proxy...) apply.
 * Read next: jwks.c (its first user), http/client.h.
 */
#ifndef MG_AUTH_FETCH_H
#define MG_AUTH_FETCH_H

#include <stddef.h>
#include <uv.h>

typedef struct mg_fetch mg_fetch_t;
typedef struct mg_fetch_req mg_fetch_req_t;

/* err: 0 when an HTTP response arrived (any status), else a negative MG_E* (MG_ETIMEOUT, MG_EIO,
 * MG_ETOOBIG). why: curl's message on failure (no secrets: URLs are the configured ones). body is
 * NUL-terminated and borrowed for the duration of the call. */
typedef void (*mg_fetch_cb)(void *data, int err, long status, const char *body, size_t len, const char *why);

typedef struct mg_fetch_opts {
    const char *url;
    const char *post_form;  /* NULL = GET; else an application/x-www-form-urlencoded body */
    const char *basic_user; /* HTTP Basic client authentication (both or neither) */
    const char *basic_pass;
    const char *accept; /* Accept header, default application/json */
    size_t max_bytes;   /* default 1 MiB */
    long timeout_ms;    /* default 5000 */
} mg_fetch_opts_t;

/* Returns 0 or MG_ENOMEM. */
int mg_fetch_new(uv_loop_t *loop, mg_fetch_t **out);
/* Starts one request. Returns 0 (cb will run later) or MG_ENOMEM / MG_EINVAL (cb never runs). *req
 * (may be NULL) is valid until the callback starts or the request is cancelled. */
int mg_fetch_start(mg_fetch_t *f, const mg_fetch_opts_t *o, mg_fetch_cb cb, void *data, mg_fetch_req_t **req);
/* Cancels a request; its callback never runs. */
void mg_fetch_cancel(mg_fetch_req_t *r);
/* Cancels everything and closes the handles; memory goes from the last close callback. */
void mg_fetch_free(mg_fetch_t *f);

#endif
