/*
 * remote_int.h - internals of the remote upstream (remote.c: the MCP Streamable HTTP client behind
 * the upstream interface; remote_conn.c: URL parsing, the SSRF guard and its pinned address, the SSE
 * event parser). Everything runs on the loop thread.
 *
 * remote_auth.c: the gateway's own OAuth token and RFC 8693 token exchange, every fetch of which
 * goes through remote_egress.c (the same SSRF guard, resolved and pinned per request).
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

#include <jansson.h>

#include "../common/codec.h"
#include "../common/log.h"
#include "../config/config.h"
#include "../config/remote_config.h"
#include "../http/client.h"
#include "../http/h1client.h"
#include "upstream.h"

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

/* ---- remote_egress.c: a credential fetch under the SSRF guard ---- */

typedef struct mg__egress_call mg__egress_call_t;

/*
 * One HTTP request (r as for mg_http_request(); everything in it is copied) to a URL the guard must
 * check first: its host is resolved, mg__egress_pick() chooses an allowed address and the request is
 * pinned to it; environment proxies are not used. Returns 0 and then calls done_cb exactly once,
 * never from inside this call (err MG_EFORBIDDEN with why naming the refused address, its class and
 * the allowCidrs remedy; MG_ENOTFOUND when the host does not resolve; else as mg_http_request's),
 * unless cancelled first; or returns MG_EINVAL (not an http(s) URL) / MG_ENOMEM and calls nothing.
 * *out (may be NULL) is valid until done_cb starts or the call is cancelled.
 */
int mg__egress_request(uv_loop_t *loop, mg_http_client_t *http, const struct mg_egress_config *egress,
                       const mg_http_req_t *r, mg_http_body_cb body_cb, mg_http_done_cb done_cb, void *data,
                       mg__egress_call_t **out);
/* Ends a call: no callback runs after it. NULL is ignored. */
void mg__egress_cancel(mg__egress_call_t *c);

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

/* ---- records (remote.c, remote_auth.c) ----
 *
 * A request (rreq_t) is queued (r->queue) until the upstream is ready and, with auth, a token is
 * there; in flight (r->inflight) from its POST until its response, error, timeout or cancel; its
 * timer is closed right after done_cb. An exchange (xchg_t) is one HTTP call: a request's POST, the
 * handshake's, or the GET stream; freed by its owner, or by its own callback when it was freed
 * while inside one (busy/dead). */

typedef enum { PH_IDLE = 0, PH_RESOLVING, PH_INIT, PH_READY, PH_BACKOFF, PH_FAILED, PH_STOPPED } phase_t;

typedef struct remote remote_t;
typedef struct rreq rreq_t;
typedef struct te_entry te_entry_t;

/* One HTTP exchange of a request (its POST), or of the initialize / the GET stream. */
typedef enum { X_REQ = 0, X_INIT, X_GET, X_DISCOVER } xkind_t;

typedef struct xchg {
    remote_t *r;
    xkind_t kind;
    rreq_t *req;          /* X_REQ */
    mg_http_call_t *call; /* the exchange's HTTP call: libcurl's, or (h1) the lean client's */
    mg_h1_call_t *h1;
    int status, sse, got_head;
    char *buf; /* JSON body */
    size_t len, cap;
    char *body; /* X_REQ: the POST's body, kept by libcurl without a copy (body_kept) until x is freed */
    mg__sse_parser_t sse_p;
    int answered; /* the response arrived (X_REQ / X_INIT) */
    int busy;     /* inside one of its callbacks: xchg_free() only marks it dead */
    int dead;
} xchg_t;

struct rreq {
    mg_upstream_t *up; /* first, as the interface requires */
    rreq_t *next, *prev;
    remote_t *r;
    json_t *msg; /* owned, without id */
    int64_t id;
    int sent, done, safe, tries, waiting;
    uint32_t generation;
    uint64_t timeout_ms, start_ms;
    uint64_t max_ms;  /* hard cap of the whole request: limits.maxRequestMs or the caller's max_ms */
    uv_timer_t timer; /* timeout; 0-ms deferral of completions and retries */
    xchg_t *x;
    mg_upstream_done_cb done_cb;
    mg_upstream_related_cb related_cb;
    mg_upstream_raw_cb raw_cb; /* the caller takes a canonical result as bytes (or NULL) */
    void *data;
    int d_err; /* deferred completion */
    json_t *d_response;
    char *d_message;
    int retry_pending;
    int auth_retried;      /* a 401 made the gateway fetch a new token and send this once more */
    int with_session;      /* sent with an Mcp-Session-Id: a 404 means that session is gone */
    char *subject;         /* token exchange: the caller's token (owned), or NULL */
    te_entry_t *te;        /* token exchange: the entry this request waits for or used */
    json_t *caps;          /* 2026-07-28: the clientCapabilities declared for the caller (owned), or NULL */
    int translate;         /* 2026-07-28: input_required is relayed to the caller (remote_mrtr.c) */
    char *log_level;       /* 2026-07-28: the caller's logging level for _meta (owned), or NULL */
    struct mg__mrtr *mrtr; /* the input rounds of a translated request (remote_mrtr.c), or NULL */
    /* The caller's lent text of msg's "params" (mg_upstream_caller_t.params_text), copied (owned),
     * and the params object it is the dump of; NULL when none was lent or params were replaced. */
    char *params_text;
    size_t params_len;
    const json_t *params_of;
};

struct remote {
    const mg_upstream_ops_t *ops; /* first, as the interface requires */
    uv_loop_t *loop;
    const mg_server_config_t *server;
    const mg_remote_config_t *rc;
    const mg_limits_t *limits;
    const struct mg_egress_config *egress;
    char *tenant; /* the pool's tenant (isolation "tenant"), or NULL */
    char *client_name, *client_version;
    int exclusive;
    int modern;     /* 2026-07-28: stateless, no session, no GET stream, _meta on every request */
    int sse_mode;   /* 2024-11-05 HTTP+SSE: answers arrive on the GET stream, POSTs go to endpoint */
    char *endpoint; /* sse_mode: the POST URL the endpoint event announced (same origin) */
    char *shown;    /* the URL for messages: without query and fragment ("?..." in their place) */
    mg_upstream_hooks_t hooks;
    void *hooks_data;
    mg_http_client_t *http;
    mg_h1_client_t *h1; /* POSTs to an http:// URL (the hot path): the lean client (http/h1client.h) */
    mg__url_t url;
    char pin[320];     /* "host:port:address" for CURLOPT_RESOLVE, "" for an IP literal */
    const char **hdrs; /* static headers then the tenant's, name/value pairs (values borrowed) */
    size_t nhdrs;
    phase_t phase;
    mg_upstream_state_t state;
    int started, stopping, stopped_called, failures, breaker_open, get_unsupported;
    uint32_t generation;
    char *session_id, *protocol, *era;
    const char *http_version; /* the HTTP version the last response came over ("h2", "http/1.1"), or NULL */
    json_t *init_result;
    char *last_error, *client_error;
    unsigned restarts;
    rreq_t *queue, *inflight; /* doubly linked lists */
    unsigned nqueued, ninflight;
    int64_t next_id;
    int64_t init_id; /* the id of the initialize in flight (its answer may come on the GET stream) */
    uint64_t backoff_ms;
    uv_getaddrinfo_t gai;
    int gai_active;
    uv_timer_t timer;     /* backoff / restart */
    uv_timer_t get_timer; /* GET stream reconnect */
    xchg_t *init_x, *get_x;
    char *last_event_id;
    unsigned nhandles;
    int delete_pending;
    void (*stopped_cb)(mg_upstream_t *, void *);
    void *stopped_data;
    mg_log_limit_t lim;
    /* auth (client credentials): the token as a header value, when to refresh it */
    char *auth_hdr, *token_endpoint, *tok_buf;
    size_t tok_len;
    uint64_t token_refresh_ms;
    unsigned tokens_fetched;
    int token_fetching, wait_token, tried_oidc;
    mg__egress_call_t *token_call;
    te_entry_t *te; /* token exchange: exchanged tokens by caller */
    json_t *subs;   /* 2026-07-28: the URIs subscribed through resources/subscribe (uri -> true), which
                       the subscriptions/listen stream (get_x) asks for; NULL when none yet */
};

/* token exchange: one caller's exchanged token (see "token exchange" below) */
struct te_entry {
    remote_t *r;
    char key[MG_SHA256_HEX];
    char *subject; /* the caller's token while the exchange runs (freed after) */
    char *hdr;     /* "Bearer <exchanged>" or NULL */
    uint64_t refresh_ms;
    mg__egress_call_t *call;
    char *buf;
    size_t len;
    te_entry_t *next;
};

/* ---- remote.c, used by remote_auth.c ---- */
struct mg_upstream_opts;
struct mg_upstream_hooks;
struct mg_upstream;
int mg__remote_new(uv_loop_t *loop, const struct mg_upstream_opts *opts,
                   const struct mg_upstream_hooks *hooks, void *hooks_data, struct mg_upstream **out);
/* Calls q's done_cb now (response borrowed) and frees q from its timer's close callback. */
void mg__remote_req_finish(rreq_t *q, int err, json_t *response, const char *message);
/* A start attempt or the session failed: log_msg and client_msg are taken (may be NULL); the queue
 * fails; retried with backoff unless permanent. */
void mg__remote_session_failed(remote_t *r, char *log_msg, char *client_msg, int permanent);
/* Fails every queued request with err and message. */
void mg__remote_fail_queue(remote_t *r, int err, const char *message);
/* Sends the queued requests (oldest first) while ready. */
void mg__remote_drain_queue(remote_t *r);
/* The address is pinned: fetch the token if needed, then find the era. */
void mg__remote_begin_handshake(remote_t *r);

/* Ends q's exchange and waits for its caller's input: the request stays in flight, its timeout runs. */
void mg__remote_req_wait_input(rreq_t *q);
/* Sends q again (its msg as it is now) from the loop, under a new id. */
void mg__remote_req_resend(rreq_t *q);

/* ---- remote_mrtr.c: input_required relayed as server->client requests
 * (mg_upstream_caller_t.translate_inputs) ----
 *
 * A response to a translated request on a 2026-07-28 upstream whose result is input_required: each
 * of its inputRequests becomes a server->client request (a new id of the upstream's id space) given
 * to the request's related_cb; the answers come back through op_send; when the round is answered,
 * the request is sent again with inputResponses and the round's requestState. Returns 1 when the
 * response was taken (relayed, or q finished with an error response saying why), 0 otherwise. */
int mg__remote_mrtr_take(rreq_t *q, json_t *response);
/* A message the caller sends to the upstream (op_send): 1 when it answers a relayed input request
 * (taken), 0 otherwise. */
int mg__remote_mrtr_answer(remote_t *r, const json_t *msg);
/* Frees q's rounds (q->mrtr may be NULL). */
void mg__remote_mrtr_free(struct mg__mrtr *m);

/* The body of a request to a session-era upstream (remote.c send_req): msg (its "id" absent or
 * replaced) with "jsonrpc":"2.0" and "id":id, the 2026-07-28 _meta keys stripped from its params,
 * in mg_json_dump's compact form. params_text[0..params_len) (or NULL), when params_of is msg's
 * "params" and nothing is to be stripped from it, is copied as that member's dump instead of
 * dumping it: byte-for-byte the same body. msg is not modified. NEW malloc'd, NUL-terminated, its
 * length in *len; NULL on ENOMEM. */
/* 2026-07-28: the _meta every request carries (protocol version, the client capabilities caps or
 * {}, client info, and log_level when given and the caller set none) added to m's params. m is the
 * request's own object; its params and their _meta are replaced by copies, never modified, as the
 * caller may share them (upstream.h). On ENOMEM, m goes without it. */
void mg__remote_modern_meta(json_t *m, const json_t *caps, const char *log_level, const char *client_name,
                            const char *client_version);

char *mg__remote_body(const json_t *msg, int64_t id, const json_t *params_of, const char *params_text,
                      size_t params_len, size_t *len);

/* ---- remote_auth.c: the gateway's token (client credentials) and token exchange (RFC 8693) ---- */
/* 1 when no token is needed or the current one is not due for renewal. */
int mg__remote_token_ready(const remote_t *r);
/* Starts fetching the gateway's token (idempotent); the handshake or the queue goes on after. */
void mg__remote_token_fetch(remote_t *r);
/* The exchanged-token entry of a caller's token (created when missing, the oldest dropped beyond
 * TE_MAX); NULL on ENOMEM. */
te_entry_t *mg__remote_te_lookup(remote_t *r, const char *subject);
/* Starts exchanging subject for e (idempotent while one runs). */
void mg__remote_te_fetch(remote_t *r, te_entry_t *e, const char *subject);
/* Cancels and frees every entry. */
void mg__remote_te_free_all(remote_t *r);

#endif
