/*
 * gateway_int.h - structures shared by the gateway's files (era/legacy.c, the gateway/ files,
 * catalog/catalog.c). Not a public contract.
 *
 * Ownership, top-down:
 *   mg_gateway_t   owns servers[] (one per enabled server), the session table and the store.
 *   mg_gw_server_t owns its shared pool (isolation "shared") or nothing (isolation "session").
 *   mg_session_t   owns its streams, its calls, its pending server->client requests and, for
 *                  isolation "session" servers, its own pools. Freed only when refs == 0 and
 *                  closing (never inside its own callbacks: a zero-delay idle pass frees it).
 *   mg_exchange_t  one HTTP POST/GET being answered; ref-counted by the h2o request (dropped when
 *                  h2o disposes it) and by each call replying through it.
 *   mg_call_t      one client request in flight; exactly one completion (call_finish).
 *
 * SSE event ids: "<stream>-<seq>" (decimal), unique within a session, encoding the stream so a
 * GET with Last-Event-ID resumes exactly that stream (spec: replay only the resumed stream).
 *
 * Catalog cursor (downstream pagination): "mg1." + decimal offset; anything else is -32602.
 */
#ifndef MG_GATEWAY_INT_H
#define MG_GATEWAY_INT_H

#include "../auth/auth.h"
#include "../common/map.h"
#include "../config/config.h"
#include "../http/sse.h"
#include "../session/store.h"
#include "../upstream/upstream.h"
#include "gateway.h"

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#define MG_VERSION_2025_03_26 1
#define MG_VERSION_2025_06_18 2
#define MG_VERSION_2025_11_25 3
#define MG_LATEST_VERSION     "2025-11-25"
#define MG_MODERN_VERSION     "2026-07-28"

/* Returns the rank (1..3) of a supported session-era revision, 0 when unsupported. */
int mg_version_rank(const char *v);

typedef enum mg_list_kind {
    MG_LIST_TOOLS = 0,
    MG_LIST_PROMPTS,
    MG_LIST_RESOURCES,
    MG_LIST_TEMPLATES,
    MG_LIST_COUNT
} mg_list_kind_t;

typedef struct mg_gateway mg_gateway_t;
typedef struct mg_session mg_session_t;
typedef struct mg_pool mg_pool_t;
typedef struct mg_call mg_call_t;
typedef struct mg_exchange mg_exchange_t;
typedef struct mg_stream mg_stream_t;
typedef struct mg_gw_server mg_gw_server_t;

typedef void (*mg_list_cb)(mg_pool_t *pool, mg_list_kind_t kind, json_t *items /* borrowed or NULL */,
                           void *data);

typedef struct mg_list_waiter {
    mg_list_cb cb;
    void *data;
    struct mg_list_waiter *next;
} mg_list_waiter_t;

/* An upstream pool plus its cached lists: shared (owner NULL) or one session's own. */
struct mg_pool {
    mg_gateway_t *gw;
    mg_gw_server_t *srv;
    mg_session_t *owner;
    mg_upstream_t *up;
    json_t *lists[MG_LIST_COUNT];             /* cached merged pages, NULL = not cached */
    mg_list_waiter_t *waiters[MG_LIST_COUNT]; /* non-NULL = fetch in progress */
    json_t *acc[MG_LIST_COUNT];               /* pages collected by the fetch in progress */
    unsigned pages[MG_LIST_COUNT];
    json_t *subs; /* uri -> number of sessions subscribed through this pool */
    int was_ready;
    int stopping;
};

struct mg_gw_server {
    const mg_server_config_t *cfg;
    size_t index;
    char *prefix; /* "<name><sep>", or "" when only one server is enabled */
    mg_pool_t *shared;
};

typedef struct mg_event {
    uint64_t seq;
    char *bytes; /* framed SSE event */
    size_t len;
} mg_event_t;

struct mg_stream {
    mg_session_t *s;
    uint32_t id;
    int is_get;
    mg_event_t *ring;
    unsigned cap, head, count;
    size_t bytes;
    uint64_t next_seq;
    mg_sse_conn_t *conn; /* attached HTTP response, NULL when none */
    unsigned pending;    /* responses still owed on this stream */
    int done;            /* every response delivered: end after flushing */
    uint64_t done_ms;
    mg_stream_t *next;
};

typedef struct mg_outreq {
    char down_id[32]; /* id the client sees */
    mg_pool_t *pool;
    mg_upstream_origin_t origin;
    json_t *up_id;   /* id the upstream used */
    mg_call_t *call; /* related call, may be NULL */
    struct mg_outreq *next;
} mg_outreq_t;

struct mg_session {
    mg_gateway_t *gw;
    char id[64];
    char hash[16]; /* first 12 hex of SHA-256(id): the only form that is logged */
    char version[16];
    int rank;
    json_t *caps;
    json_t *client_info;
    int initialized;
    int closing;
    int refs;
    uint64_t last_ms;
    mg_call_t *calls;
    unsigned ncalls;
    mg_stream_t *streams;
    unsigned nstreams;
    uint32_t next_stream;
    mg_stream_t *get_stream;
    mg_outreq_t *outreqs;
    uint64_t next_out;
    mg_pool_t **pools; /* [nservers], own pools for isolation "session" servers */
    int log_rank;      /* minimum logging level forwarded (0 = debug) */
    json_t *subs;      /* uri -> true */
    /* Selected tool profile and tools added by search_tools (toolsearch/runtime.h). */
    struct mg_toolsearch_session *ts;
    /* who created it (auth); requests of anyone else get 404. NULL = no auth */
    mg_principal_t *principal;
};

struct mg_exchange {
    int refs;
    int modern;         /* a 2026-07-28 stateless request */
    int status;         /* HTTP status for a JSON answer (0 = 200) */
    json_t *param_hdrs; /* modern: lowercased "mcp-param-*" name -> raw value */
    mg_gateway_t *gw;
    /* who sent the request (auth), NULL without auth */
    mg_principal_t *principal;
    h2o_req_t *req; /* NULL once h2o disposed it */
    mg_session_t *s;
    mg_stream_t *stream; /* set once answered as SSE */
    unsigned pending;    /* calls still to answer */
    int batch;
    int accept_sse;
    json_t *results; /* batch: responses collected in JSON mode */
    uint64_t start_ms;
    char method[64];
    char upstream[64];
    int logged;
};

struct mg_call {
    /* who sent it (auth), NULL without auth; an MRTR resume must come from the same principal */
    mg_principal_t *principal;
    int modern;        /* 2026-07-28: per-request caps, MRTR instead of server requests */
    json_t *caps;      /* client capabilities of this request (session's, or _meta's) */
    int log_rank;      /* minimum logging level forwarded; 8 = none */
    char park_key[40]; /* non-empty while parked for MRTR */
    uint64_t park_expires;
    char digest[68]; /* modern: SHA-256 of method + name/uri + arguments, hex */
    json_t *final;   /* response that arrived while parked */
    json_t *inputs;  /* input requests not yet sent to the client: key -> request */
    mg_gateway_t *gw;
    mg_session_t *s;
    mg_exchange_t *x;
    json_t *client_id;
    char method[64];
    mg_pool_t *pool;
    mg_upstream_req_t *ureq;
    unsigned outstanding; /* list merges: pools still fetching */
    mg_list_kind_t kind;
    json_t *params;
    int finished;
    mg_call_t *next, *prev;
};

typedef struct mg_listener {
    mg_gateway_t *gw;
    mg_sse_conn_t *conn;
    json_t *sub_id; /* id of the subscriptions/listen request */
    json_t *filter; /* honoured SubscriptionFilter */
    struct mg_listener *next;
} mg_listener_t;

struct mg_gateway {
    uv_loop_t *loop;
    /* Tool search indexes and counters (toolsearch/runtime.h). */
    struct mg_toolsearch *ts;
    /* gateway.auth runtime, NULL without auth */
    mg_auth_t *auth;
    mg_session_t *stateless; /* owner of 2026-07-28 calls (never in the session table) */
    mg_map_t parked;         /* park key -> mg_call_t waiting for an MRTR retry */
    unsigned char seal_key[32];
    uv_timer_t park_timer;
    mg_listener_t *listeners; /* open subscriptions/listen streams */
    const mg_config_t *cfg;
    mg_gw_server_t *servers;
    size_t nservers;
    mg_map_t sessions;
    mg_store_t *store;
    uv_timer_t sweep_timer;
    uv_timer_t debounce_timer;
    uv_timer_t keepalive_timer;
    unsigned list_changed_pending; /* bit per mg_list_kind_t */
    int shutting_down;
    unsigned live_calls;
    uint64_t calls_total;
    void (*shutdown_cb)(mg_gateway_t *, void *);
    void *shutdown_data;
    uv_timer_t shutdown_timer;
    uint64_t shutdown_deadline;
    unsigned pools_stopping;
    int handles_closing;
};

/* ---- session.c ---- */
int mg__session_create(mg_gateway_t *gw, const char *version, json_t *caps, json_t *client_info,
                       mg_session_t **out);
mg_session_t *mg__session_find(mg_gateway_t *gw, const char *id);
void mg__session_close(mg_session_t *s, const char *why);
void mg__session_ref(mg_session_t *s);
void mg__session_unref(mg_session_t *s);
mg_stream_t *mg__stream_new(mg_session_t *s, int is_get);
/* Frames msg as an event of stream st, keeps it for replay, writes it to the attached conn. */
int mg__stream_push(mg_stream_t *st, const json_t *msg);
/* Pushes a priming event (id + empty data) when the session negotiated >= 2025-11-25. */
void mg__stream_prime(mg_stream_t *st);
void mg__stream_attach(mg_stream_t *st, mg_sse_conn_t *conn);
/* gone_cb to give mg_sse_conn_start() for a conn attached to a stream (data = the stream). */
void mg__stream_conn_gone_cb(mg_sse_conn_t *conn, void *data);
/* A session pool finished stopping: clears its slot and frees the session if it was the last. */
void mg__session_pool_gone(mg_session_t *s, size_t i);
/* Marks one response delivered; ends the stream when nothing is owed. */
void mg__stream_response_done(mg_stream_t *st);
mg_stream_t *mg__stream_find(mg_session_t *s, uint32_t id);
/* Replays events with seq > after_seq on the attached conn. */
void mg__stream_replay(mg_stream_t *st, uint64_t after_seq);
/* Sends msg on the session's GET stream (kept for replay even while no GET is connected). */
void mg__session_notify(mg_session_t *s, const json_t *msg);
void mg__sessions_sweep(mg_gateway_t *gw);
void mg__sessions_keepalive(mg_gateway_t *gw);

/* ---- exchange (era/legacy.c) ---- */
void mg__exchange_ref(mg_exchange_t *x);
void mg__exchange_unref(mg_exchange_t *x);
/* A message related to an in-flight request of x (switches x to SSE if it can). */
void mg__exchange_related(mg_exchange_t *x, const json_t *msg);
/* The response to one of x's requests. msg borrowed. */
void mg__exchange_respond(mg_exchange_t *x, const json_t *msg);

/* ---- modern.c (2026-07-28) ---- */
/* Handles a POST that carries a 2026-07-28 request or notification. body borrowed. */
void mg__modern_post(mg_gateway_t *gw, h2o_req_t *req, json_t *body, uint64_t start_ms);
/* 1 when the message or the headers select the stateless era. */
int mg__modern_detect(h2o_req_t *req, const json_t *msg);
/* Adds resultType / cache hints / serverInfo to a modern response in place; maps errors. */
void mg__modern_decorate(mg_call_t *c, json_t *resp);
/* Sealed requestState for a parked call (malloc'd). */
char *mg__modern_request_state(mg_call_t *c);
/* SHA-256 hex of method + name/uri + arguments: binds requestState to the original request. */
void mg__modern_digest(const char *method, const json_t *params, char out[68]);
/* NEW reference: the DiscoverResult body. */
json_t *mg__modern_discover_result(mg_gateway_t *gw);
/* 0 when the Mcp-Param-* headers of x match the arguments mirrored by tool's x-mcp-header
 * annotations; otherwise -1 with a sentence in why. */
int mg__modern_check_params(mg_exchange_t *x, const json_t *tool, const json_t *arguments, char *why,
                            size_t n);
/* Notifications for listeners: kind bit (1<<mg_list_kind_t) or a resources/updated uri. */
void mg__modern_listeners_notify(mg_gateway_t *gw, unsigned kinds, const char *updated_uri,
                                 const json_t *msg);
void mg__modern_listeners_close(mg_gateway_t *gw);
void mg__modern_listeners_keepalive(mg_gateway_t *gw);
void mg__modern_init(mg_gateway_t *gw);
void mg__modern_dispose(mg_gateway_t *gw);

/* ---- legacy.c helpers shared with modern.c ---- */
void mg__http_send_json(h2o_req_t *req, int status, const json_t *msg, const char **hdrs, size_t nhdrs);
void mg__http_error(mg_gateway_t *gw, h2o_req_t *req, int status, int code, const char *message, json_t *data,
                    const json_t *id, uint64_t start_ms);
void mg__http_log(mg_gateway_t *gw, const char *http_method, const char *method, const char *upstream,
                  const char *session, int status, uint64_t start_ms);
mg_exchange_t *mg__exchange_new(mg_gateway_t *gw, h2o_req_t *req, mg_session_t *s, uint64_t start_ms);
/* Answers x as SSE from now on (returns 0 when the client is gone or cannot take SSE). */
int mg__exchange_stream(mg_exchange_t *x);

/* ---- dispatch.c ---- */
/* Handles one client request (method+id); replies through x. */
void mg__dispatch_request(mg_gateway_t *gw, mg_session_t *s, mg_exchange_t *x, json_t *msg);
/* Same for a 2026-07-28 request: caps from _meta, log level from _meta (-1 = none). */
void mg__dispatch_modern(mg_gateway_t *gw, mg_exchange_t *x, json_t *msg, json_t *caps, int log_rank);
/* Resumes a parked call with the retry's exchange; responses (borrowed) go upstream. */
void mg__dispatch_resume(mg_call_t *c, mg_exchange_t *x, json_t *retry_msg, json_t *responses);
/* Frees a parked call that expired or whose resumption failed (cancels upstream). */
void mg__dispatch_drop_parked(mg_call_t *c, const char *why);
/* Cancels the unfinished modern calls answering through x (client closed the stream). */
void mg__dispatch_exchange_gone(mg_exchange_t *x);
/* Handles a client notification or a response to a server->client request; returns 0 or an error. */
int mg__dispatch_client_message(mg_gateway_t *gw, mg_session_t *s, json_t *msg, const char **why);
/* Fails every call of a session (session deleted); calls finish with an error. */
void mg__dispatch_session_gone(mg_session_t *s);
json_t *mg__initialize_result(mg_gateway_t *gw, const char *version);

/* ---- catalog.c ---- */
int mg__pool_new(mg_gateway_t *gw, mg_gw_server_t *srv, mg_session_t *owner, mg_pool_t **out);
void mg__pool_stop(mg_pool_t *p);
/* Gets one list of one pool (cached or fetched). cb always called, maybe synchronously; items
 * NULL when the pool is down or the fetch failed. */
void mg__pool_list(mg_pool_t *p, mg_list_kind_t kind, mg_list_cb cb, void *data);
void mg__pool_invalidate(mg_pool_t *p, int kind /* -1 = all */);
/* Pool of server i for session s (creating a session pool on first use). */
mg_pool_t *mg__pool_for(mg_gateway_t *gw, mg_session_t *s, size_t i);
const char *mg__list_method(mg_list_kind_t k);
const char *mg__list_key(mg_list_kind_t k);
/* Exposed name for (server, original) and its reverse; reverse returns the server index or -1. */
char *mg__catalog_expose(const mg_gw_server_t *srv, const char *name);
long mg__catalog_route_name(mg_gateway_t *gw, const char *exposed, const char **original);
/* Pool index serving uri for session s, or -1. */
long mg__catalog_route_uri(mg_gateway_t *gw, mg_session_t *s, const char *uri);
void mg__catalog_list_changed(mg_gateway_t *gw, mg_session_t *only, mg_list_kind_t kind);

#endif
