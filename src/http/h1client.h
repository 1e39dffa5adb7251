/*
 * h1client.h - a lean HTTP/1.1 client on the libuv loop for plain http:// origins: the hot path of
 * remote upstreams (upstream/remote.c sends its POSTs here; https://, GET streams and everything
 * else go through http/client.h, libcurl). One request per connection at a time (no pipelining),
 * and a pool of idle keep-alive connections per client, each to one address.
 *
 * Same request record, callbacks and contract as client.h (mg_http_req_t, head/body/done): returns
 * 0 and then calls done_cb exactly once (never from inside mg_h1_request), or returns an error and
 * calls nothing; mg_h1_cancel() ends a call and may be called from any callback; a callback may
 * start requests or free the client. err in done_cb as client.h's: 0 (any status), MG_ETIMEOUT,
 * MG_ETOOBIG (head over 16 KiB, body over max_body), MG_EIO (connect failed, connection broke,
 * a malformed response; why says which).
 *
 * What it does not do (mg_h1_accepts() says no, the caller uses client.h): TLS, proxies, basic
 * auth, a host name without a pinned address (`resolve`, or an IP literal: it never resolves
 * names, so it connects exactly where the SSRF guard said), redirects (never followed anywhere).
 * Reuse: an idle connection is checked before use (a peek: the server may have closed it) and
 * closed at 3/4 of the server's Keep-Alive timeout when it announced one (60 s otherwise); a
 * request whose reused connection dies before any response byte is sent again on a fresh one when
 * nothing of it was written, or when its method is idempotent (GET, HEAD, PUT, DELETE, OPTIONS);
 * a response not read to its end never leaves its connection reusable. Read next: h1client.c,
 * h1parse.h, docs/adr/0017-lean-http1-client.md.
 */
#ifndef MG_HTTP_H1CLIENT_H
#define MG_HTTP_H1CLIENT_H

#include "client.h"

typedef struct mg_h1_client mg_h1_client_t;
typedef struct mg_h1_call mg_h1_call_t;

/* Returns 0 or MG_ENOMEM. */
int mg_h1_client_new(uv_loop_t *loop, mg_h1_client_t **out);
/* Cancels every call (no callback runs), closes the connections; memory goes from the last close
 * callback, so run the loop afterwards. May be called from a callback. NULL is ignored. */
void mg_h1_client_free(mg_h1_client_t *cl);

/* 1 when r can go through cl (the URL and pin parsed once per client, cached): an http:// URL whose host is
 * an IP literal or is pinned by r->resolve (same host and port), no basic auth, no environment proxy. */
int mg_h1_accepts(mg_h1_client_t *cl, const mg_http_req_t *r);

/* The host (as the URL writes it: an IPv6 address in brackets) and port of an http:// URL the
 * client can take once that host is pinned (mg_http_req_t.resolve "host:port:address"): for a
 * caller that resolves the name itself. Returns 0, or MG_EINVAL (not http://, user info, a bad
 * port, a host longer than n - 1). */
int mg_h1_url_host(const char *url, char *host, size_t n, unsigned *port);

/* Starts one request (see the contract above). Returns 0, or MG_EINVAL (mg_h1_accepts() says no, a
 * header name or value holding CR, LF or NUL, no done_cb) / MG_ENOMEM / MG_ECLOSED (the client is
 * being freed): then nothing is called. *out (may be NULL) is valid until done_cb starts or the
 * call is cancelled. Everything in r is copied (the body not with body_kept). */
int mg_h1_request(mg_h1_client_t *cl, const mg_http_req_t *r, mg_http_head_cb head_cb,
                  mg_http_body_cb body_cb, mg_http_done_cb done_cb, void *data, mg_h1_call_t **out);
/* "http/1.1" or "http/1.0" from head_cb on (the response's version), NULL before. */
const char *mg_h1_call_version(const mg_h1_call_t *c);
/* Ends a call: its callbacks never run again; an unfinished exchange's connection is closed. NULL
 * is ignored. */
void mg_h1_cancel(mg_h1_call_t *c);

#endif
