/*
 * gateway_int.h - structures shared by the gateway's files (gateway/era_legacy.c, the gateway/ files,
 * gateway/catalog.c). Not a public contract.
 *
 * Ownership, top-down:
 *   mg_gateway_t   owns servers[] (one slot per enabled server, and spare slots for servers a reload
 *                  adds: slots never move and are never reused, so a slot's index and address stay
 *                  valid for the process's life; a server a reload removed keeps its slot, marked
 *                  removed), the session table and the store.
 *   mg_gw_server_t owns its shared pool (isolation "shared"), its tenants' pools (isolation "tenant",
 *                  created on a tenant's first use, kept until shutdown) or nothing ("session").
 *   mg_session_t   owns its streams, its calls, its pending server->client requests and, for
 *                  isolation "session" servers, its own pools. Freed only when refs == 0 and
 *                  closing (never inside its own callbacks: a zero-delay idle pass frees it).
 *   mg_exchange_t  one HTTP POST/GET being answered; ref-counted by the h2o request (dropped when
 *                  h2o disposes it) and by each call replying through it.
 *   mg_call_t      one client request in flight; exactly one completion (call_finish).
 *
 * SSE event ids: "<stream>-<seq>" (decimal), unique within a session, encoding the stream so a
 * GET with Last-Event-ID resumes exactly that stream (spec: replay only the resumed stream).
 * With a shared store (cluster.c) the stream part names the replica too, so ids are unique across
 * replicas: "<replica>.<n>-<seq>" for a POST response stream, "0-<seq>" for the session's GET
 * stream (its seqs are allocated in Redis, which holds its log).
 *
 * Catalog cursor (downstream pagination): "mg1." + decimal offset; anything else is -32602.
 */
#ifndef MG_GATEWAY_INT_H
#define MG_GATEWAY_INT_H

#include "../auth/auth.h"
#include "../common/log.h"
#include "../common/map.h"
#include "../common/mcp_list.h"
#include "../config/config.h"
#include "../http/sse.h"
#include "../jsonrpc/jsonrpc.h"
#include "../session/bus.h"
#include "../session/store.h"
#include "../trace/trace.h"
#include "../session/task_store.h"
#include "../upstream/upstream.h"
#include "gateway.h"

#include <h2o.h>
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

typedef struct mg_gateway mg_gateway_t;
typedef struct mg_session mg_session_t;
typedef struct mg_pool mg_pool_t;
typedef struct mg_call mg_call_t;
typedef struct mg_exchange mg_exchange_t;
typedef struct mg_stream mg_stream_t;
typedef struct mg_gw_server mg_gw_server_t;
typedef struct mg_session_source mg_session_source_t;
typedef struct mg_cluster mg_cluster_t; /* cluster_int.h: sessions shared by replicas (redis store) */
typedef struct mg_follow mg_follow_t;   /* cluster_follow.c: an SSE connection fed from a Redis log */
typedef struct mg_fwd mg_fwd_t;         /* cluster_forward.c: a call forwarded to another replica */
typedef struct mg_relay mg_relay_t;     /* cluster_internal.c: answering a call forwarded here */
typedef struct mg_task mg_task_t;       /* tasks.c: a task this replica runs */

typedef void (*mg_list_cb)(mg_pool_t *pool, mg_list_kind_t kind, json_t *items /* borrowed or NULL */,
                           void *data);

typedef struct mg_list_waiter {
    mg_list_cb cb;
    void *data;
    struct mg_list_waiter *next;
} mg_list_waiter_t;

/* An upstream pool plus its cached lists: shared (owner NULL), one tenant's (owner NULL, tenant
 * set) or one session's own. */
struct mg_pool {
    mg_gateway_t *gw;
    mg_gw_server_t *srv;
    mg_session_t *owner;
    char *tenant;                /* isolation "tenant": whose pool this is (owned), else NULL */
    mg_log_limit_t lim_unrouted; /* messages no client gets (dispatch.c) */
    mg_upstream_t *up;
    json_t *lists[MG_LIST_COUNT];             /* cached merged pages, NULL = not cached */
    mg_list_waiter_t *waiters[MG_LIST_COUNT]; /* non-NULL = fetch in progress */
    json_t *acc[MG_LIST_COUNT];               /* pages collected by the fetch in progress */
    unsigned pages[MG_LIST_COUNT];
    json_t *subs; /* uri -> number of sessions subscribed through this pool */
    /* tasks.c: tool name -> execution.taskSupport (1 optional, 2 required; absent: forbidden) of
     * support_list, the tools list it was read from (held, so its address cannot come back) */
    json_t *support_list;
    mg_map_t support_map;
    int was_ready;
    int stopping;
};

struct mg_gw_server {
    const mg_server_config_t *cfg;
    size_t index;
    char *prefix; /* "<name><sep>", or "" when only one server is enabled */
    mg_pool_t *shared;
    mg_map_t tenants;        /* isolation "tenant": tenant -> mg_pool_t* */
    uint64_t unrouted_notes; /* notifications from its children no client got (metrics) */
    uint64_t unrouted_reqs;  /* server->client requests refused for want of evidence (metrics) */
    int removed;             /* a reload removed it: no pool serves it, routes skip it (reload.c) */
    /* gateway.tracing: the upstream span's attributes naming it (dispatch.c; freed when a reload
     * gives it another entry: reload.c) */
    mg_span_attrs_t *span_attrs;
};

/* Slots servers[] has beyond the servers enabled at start, for servers reloads add (reload.c). */
#define MG_SERVER_SPARE_SLOTS 32

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
    char down_id[80]; /* id the client sees (2026-07-28: the inputRequests key) */
    int refused;      /* 2026-07-28: the client lacks the capability; refused upstream at flush */
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
    mg_span_attrs_t
        *span_attrs; /* gateway.tracing: the call span's attributes of this session (dispatch.c) */
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
    mg_pool_t **pools; /* [server_cap], own pools for isolation "session" servers */
    int log_rank;      /* minimum logging level forwarded (0 = debug) */
    int log_set;       /* the client sent logging/setLevel: it asked for the servers' logs */
    json_t *subs;      /* uri -> true */
    /* Selected tool profile and tools added by search_tools (toolsearch/runtime.h,
     * gateway/toolsearch_hooks.h). */
    struct mg_toolsearch_session *ts;
    /* who created it (auth); requests of anyone else get 404. NULL = no auth */
    mg_principal_t *principal;
    /* The 2024-11-05 HTTP+SSE transport (era_sse.c): opened by GET /sse, its GET stream is that SSE
     * response, every answer goes there, and it closes when that response ends. Kept on this
     * replica only (never in the shared store): see mg__session_shared(). */
    struct mg_sse_session *sse;
    /* cluster (redis store) only: */
    char scope[80];       /* tenant part of its store keys */
    char owner[40];       /* replica running its isolation "session" children; "!id" once lost; "" none */
    uint64_t seen_ms;     /* last request verified on this replica */
    mg_follow_t *follows; /* SSE connections fed from its logs (GET stream, streams resumed here) */
    /* The call journal's "session" and "client" members for this session's calls (journal_hooks.c:
     * its hash and clientInfo never change), written at its first journaled call; NULL until then. */
    char *journal_members;
    size_t journal_members_len;
};

struct mg_exchange {
    int refs;
    int modern;         /* a 2026-07-28 stateless request */
    int status;         /* HTTP status for a JSON answer (0 = 200) */
    int retry_after;    /* seconds for a Retry-After header on that answer (0 = none) */
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
    mg_relay_t *relay; /* cluster: answering a request forwarded by another replica */
    /* gateway.tracing: the HTTP request's span as the parent of this exchange's calls (owned), NULL
     * when not traced. A copy: calls may outlive the HTTP request's span. */
    mg_trace_ctx_t *trace_parent;
    /* A single request's "params" as canonical text (common/json.h mg_json_span_t: bytes of the
     * request body, exactly what the dumper writes for params_of, which had params_members members
     * then): set only while mg__legacy_post dispatches, since the body's bytes are not kept past it;
     * forward() hands them to the upstream when its message still holds that object unchanged. */
    const json_t *params_of;
    const char *params_text;
    size_t params_len, params_members;
    unsigned params_keys;     /* mg__params_keys(params_of) */
    const json_t *params_msg; /* the message whose "params" params_of is */
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
    json_t *inputs;  /* input requests not yet answered by the client: key -> request */
    json_t *missing; /* capabilities the upstream asked for that the client lacks: cap -> {} */
    json_t *prefill; /* inputResponses that came with a fresh request: key -> response */
    int flush_due;   /* inputs arrived: answer at the end of the collection window */
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
    json_t *msg; /* the client's request (referenced): the call phases read it (dispatch.c) */
    /* The call phases (dispatch.c): where the call is, and its route once the route phase set it. */
    unsigned phase;
    int verify_step;            /* verify: 1 = pins checked, 2 = 2026 parameter headers checked */
    size_t route_index;         /* server index */
    mg_list_kind_t route_kind;  /* MG_LIST_TOOLS or MG_LIST_PROMPTS */
    const char *route_original; /* the name the upstream knows (points into params' name) */
    const char *route_name;     /* params' "name" as routed (borrowed from params, never changed) */
    mg_pool_t *route_pool;
    int finished;
    struct mg_policy_rate_job *rate_job; /* a rate-limit take in flight (policy/hooks.h); call_finish
                                          * cancels it */
    mg_call_t *next, *prev;
    mg_fwd_t *fwd; /* cluster: forwarded to the replica that runs the session's children */
    /* gateway.tracing (NULL when not traced): the call's server span, the span of the call phase
     * running (span_phase: its index), the upstream request's client span, the MRTR round waiting. */
    mg_span_t *span, *phase_span, *up_span, *round_span;
    unsigned span_phase;
    unsigned rounds;
    /* The call journal (journal_hooks.c), set only when gateway.journal is on: */
    uint64_t start_ns;   /* uv_hrtime() at call_new */
    char trace_id[33];   /* W3C trace id of the request (traceparent), "" when none */
    char args_sha[65];   /* the journal's argsSha256, taken at call_new ("": at the end) */
    const char *refusal; /* the rule that refused the call (static), NULL = none */
    int raw_outcome;     /* answered as bytes (dispatch.c raw_done_cb): 1 + its mg__outcome_t, else 0 */
    /* Tasks (tasks.c): the tool's execution.taskSupport once looked up (-1 = not yet, 0 = none or
     * forbidden, 1 = optional, 2 = required); the task the call runs for (NULL = a plain call);
     * task_want: becomes a task at promote_at (ms, loop clock) unless it asked for input first;
     * up_task: the upstream runs the call as its own task: 1 = tools/call sent with "task",
     * 2 = tasks/result sent for up_task_id (never shown to a client). */
    int task_support;
    int task_want;
    uint64_t promote_at;
    mg_task_t *task;
    int up_task;
    char up_task_id[128];
    int task_waiting; /* a 2025-11-25 tasks/result waiting for its task (tasks.c) */
    /* notifications/cancelled came while the call waited for a step with no upstream request
     * yet (a list fetch, the upstream's start): it ends when that step comes back (call_run). */
    int cancel_asked;
};

typedef struct mg_listener {
    mg_gateway_t *gw;
    mg_sse_conn_t *conn;
    json_t *sub_id; /* id of the subscriptions/listen request */
    json_t *filter; /* honoured SubscriptionFilter */
    struct mg_listener *next;
    /* Task status notifications (tasks_listen.c): the principal's key ("" without auth): only its
     * tasks are watched; tasks: id -> signature of the state last told (NULL = none watched);
     * reads: task store reads in flight (the ack waits for the first ones); acked: the ack is
     * out, notifications may follow; gone: the stream closed while reads were in flight (the
     * last one frees it); check_at: loop clock, watched tasks are read again then (cluster). */
    char principal[65];
    mg_principal_t *who; /* held (NULL without auth): whose catalog the list_changed it hears is */
    json_t *tasks;
    int reads;
    int acked;
    int gone;
    uint64_t check_at;
} mg_listener_t;

struct mg_gateway {
    uv_loop_t *loop;
    /* Tool search indexes and counters (toolsearch/runtime.h, gateway/toolsearch_hooks.h). */
    struct mg_toolsearch *ts;
    /* gateway.auth runtime, NULL without auth */
    mg_auth_t *auth;
    struct mg_policy *policy; /* pinning, scanning, rate limits, CORS (src/policy/hooks.h) */
    mg_session_t *stateless;  /* owner of 2026-07-28 calls (never in the session table) */
    mg_map_t parked;          /* park key -> mg_call_t waiting for an MRTR retry */
    unsigned char seal_key[32];
    int seal_key_set; /* 0 until the random key is drawn: on first use (modern.c), not at startup */
    uv_timer_t park_timer;
    uv_timer_t flush_timer;
    mg_listener_t *listeners; /* open subscriptions/listen streams */
    const mg_config_t *cfg;
    mg_gw_server_t *servers;
    size_t nservers;   /* slots in use (removed servers included); indexes below it are valid */
    size_t server_cap; /* slots allocated: sessions size their pools[] to it */
    mg_map_t sessions;
    mg_store_t *store;
    uv_timer_t sweep_timer;
    uv_timer_t debounce_timer;
    uv_timer_t keepalive_timer;
    /* list_changed of pools waiting for the debounce (pools.c): per server slot and tenant, the
     * kinds; lc_all: kinds for everyone (out of memory recording one) */
    struct mg_lc_change *lc_pending;
    size_t nlc_pending, lc_cap;
    unsigned lc_all;
    int shutting_down;
    unsigned live_calls;
    uint64_t calls_total;
    void (*shutdown_cb)(mg_gateway_t *, void *);
    void *shutdown_data;
    uv_timer_t shutdown_timer;
    uv_timer_t trim_timer; /* gives freed heap back after large requests (mg__gateway_trim_soon) */
    uint64_t shutdown_deadline;
    unsigned pools_stopping;
    int handles_closing;
    mg_cluster_t *cluster;                      /* NULL in one process (no shared store) */
    const mg_session_source_t *sessions_source; /* local table or shared store (session.c) */
    /* Where the pools' upstream events go (catalog.c calls it; the catalog never calls the gateway by name).
     */
    struct {
        void (*message)(mg_gateway_t *gw, mg_pool_t *pool, mg_upstream_origin_t origin, json_t *msg);
        /* a list of a pool changed */
        void (*list_changed)(mg_gateway_t *gw, mg_pool_t *pool, mg_list_kind_t kind);
        /* a session's own pool finished stopping (slot i of its pools) */
        void (*gone)(mg_session_t *s, size_t i);
    } pool_sink;
    mg_bus_t *bus; /* cluster: cross-replica messages and event logs */
    /* gateway.tracing (src/trace/): NULL when off. trace_ambient: the span of the HTTP request whose
     * phase is running (pipeline.c sets it around each phase), the parent of exchanges made then. */
    mg_trace_t *trace;
    int trace_drained; /* the shutdown's last export of spans is done (finish_shutdown) */
    mg_span_t *trace_ambient;
    /* pipeline.c: the HTTP span's attributes, one set per method, endpoint and HTTP version */
    mg_span_attrs_t *trace_http_attrs[3 * 3 * 2];
    mg_span_attrs_t *trace_tool_attrs; /* dispatch.c: a tools/call span's method and operation name */
    /* era_sse.c: notices legacy HTTP+SSE clients that went away; exists while such sessions do */
    struct mg_sse_probe *sse_probe;
    struct mg_journal *journal; /* gateway.journal (obs/journal.h), NULL = off */
    struct mg_status *status;   /* call statistics and last errors for /status, /metrics (status.c) */
    char config_digest[20];     /* first 16 hex of the config file's SHA-256 ("" = unknown) */
    struct mg_reload *reload;   /* reloads: counters, draining pools, what needs a restart (reload.c) */
    /* Tasks (tasks.c): records in the task store (memory, or Redis with a cluster); the tasks this
     * replica runs (id -> mg_task_t); promotion of calls and tasks/result waiters. */
    mg_task_store_t *task_store;
    mg_map_t tasks;
    struct mg_task_waiter *task_waiters;
    uv_timer_t task_timer;
    uint64_t tasks_created, tasks_refused, tasks_ended[3]; /* metrics: ended completed/failed/cancelled */
};

/* 1 when s lives in the shared store (gateway.sessions.store): its GET stream, event logs and
 * record are the cluster's. A legacy HTTP+SSE session (s->sse) is local to the replica that holds
 * its /sse stream, like a session without a shared store. */
static inline int mg__session_shared(const mg_session_t *s)
{
    return s->gw->cluster != NULL && s->sse == NULL;
}

/* ---- gateway.c ---- */
/* A large request was freed (or is about to be): within a second, malloc_trim() gives the heap the
 * allocator keeps back to the OS, so one spike does not stay in RSS. At most one trim per second. */
void mg__gateway_trim_soon(mg_gateway_t *gw);

/* ---- session sources (session.c) ----
 * The one way the pipeline finds, creates and removes sessions and opens their GET streams: the
 * local table (one process) or the shared store (cluster.c), chosen once at start
 * (gw->sessions_source). lookup calls cb exactly once, now (local) or later (shared), with status
 * 200 (s set, borrowed), 404 (unknown or expired) or 503 (store unavailable); req is NULL in cb
 * when h2o disposed the request meanwhile. claim: the request may need the session's isolation
 * "session" children. publish answers an initialize (resp borrowed) once the session is known to
 * every replica; remove answers a DELETE once it is gone everywhere; get answers a GET (the GET
 * stream, or a resumption with Last-Event-ID). */
typedef void (*mg_session_found_cb)(void *data, h2o_req_t *req, mg_session_t *s, int status);
struct mg_session_source {
    const char *name;
    void (*lookup)(mg_gateway_t *gw, h2o_req_t *req, const char *id, int claim, mg_session_found_cb cb,
                   void *data);
    void (*publish)(mg_session_t *s, h2o_req_t *req, const json_t *resp, const char *profile,
                    uint64_t start_ms);
    void (*remove)(mg_session_t *s, h2o_req_t *req, uint64_t start_ms);
    void (*get)(mg_session_t *s, h2o_req_t *req, uint64_t start_ms);
};
extern const mg_session_source_t mg__sessions_local;
extern const mg_session_source_t mg__sessions_shared;

/* ---- session.c ---- */
int mg__session_create(mg_gateway_t *gw, const char *version, json_t *caps, json_t *client_info,
                       mg_session_t **out);
mg_session_t *mg__session_find(mg_gateway_t *gw, const char *id);
/* A local copy of a session created on another replica (cluster.c): same as create, with its id. */
int mg__session_adopt(mg_gateway_t *gw, const char *id, const char *version, json_t *caps,
                      json_t *client_info, mg_session_t **out);
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
/* 0 when st is finished and holds no event after after_seq: a resumption has nothing to get. */
int mg__stream_resumable(const mg_stream_t *st, uint64_t after_seq);
/* Replays events with seq > after_seq on the attached conn. */
void mg__stream_replay(mg_stream_t *st, uint64_t after_seq);
/* Sends msg on the session's GET stream (kept for replay even while no GET is connected). */
void mg__session_notify(mg_session_t *s, const json_t *msg);
void mg__sessions_sweep(mg_gateway_t *gw);
void mg__sessions_keepalive(mg_gateway_t *gw);

/* ---- cluster*.c (only with a shared store: gw->cluster != NULL; cluster_int.h: which file) ---- */
/* status 200 (s set), 404 (unknown, expired or another principal's) or 503 (store unavailable).
 * req is NULL when h2o disposed the request meanwhile (then only release data). */
typedef mg_session_found_cb mg_cluster_session_cb;
int mg__cluster_new(mg_gateway_t *gw, const char *store, const char *listen, char *why, size_t whylen);
void mg__cluster_start(mg_gateway_t *gw);
void mg__cluster_drain(mg_gateway_t *gw);
/* End of a drain: leaves the replica registry (others then see this replica as gone). */
void mg__cluster_leave(mg_gateway_t *gw);
void mg__cluster_free(mg_gateway_t *gw);
const char *mg__cluster_replica(mg_gateway_t *gw);
/* Loads, verifies and materializes session id for req; claim: the request may need its children. */
void mg__cluster_session_lookup(mg_gateway_t *gw, h2o_req_t *req, const char *id, int claim,
                                mg_cluster_session_cb cb, void *data);
/* initialize: writes the record, then answers resp (200 + Mcp-Session-Id) or 503. */
void mg__cluster_session_put(mg_session_t *s, h2o_req_t *req, const json_t *resp, const char *profile,
                             uint64_t start_ms);
/* DELETE: removes the record, tells every replica, closes the copy, answers 200 (or 503). */
void mg__cluster_session_delete(mg_session_t *s, h2o_req_t *req, uint64_t start_ms);
void mg__cluster_record_patch(mg_session_t *s, json_t *patch /* stolen */);
/* GET on /mcp for s: the GET stream or a resumption (Last-Event-ID), from any replica. */
void mg__cluster_get(mg_session_t *s, h2o_req_t *req, uint64_t start_ms);
/* A message for the session's GET stream (appended to its log, delivered where the GET is). */
void mg__cluster_notify(mg_session_t *s, const json_t *msg);
/* Event id "<replica>.<stream>-<seq>" of a local POST stream; its events go to its log too. */
void mg__cluster_event_id(mg_gateway_t *gw, const mg_stream_t *st, uint64_t seq, char *out, size_t n);
void mg__cluster_stream_event(mg_stream_t *st, uint64_t seq, const char *data, size_t len, int end);
void mg__cluster_session_closing(mg_session_t *s);
void mg__cluster_keepalive(mg_gateway_t *gw);
/* Debounced list_changed of shared and tenant children: to every replica's GET streams and
 * listeners that the changes reach (mg__lc_reach_kinds), everyone for the kinds in all. */
void mg__cluster_list_changed(mg_gateway_t *gw, const struct mg_lc_change *ch, size_t n, unsigned all);
/* list_changed of bits to shared session s's GET stream if this replica follows it (a reload's:
 * every replica reloads and tells its own followers; nothing crosses the bus). */
void mg__cluster_list_changed_local(mg_gateway_t *gw, mg_session_t *s, unsigned bits);
/* A task message (stolen) for the replica running the task (its inbox; cluster_bus.c). */
void mg__cluster_task_send(mg_gateway_t *gw, const char *replica, json_t *m);
/* A client's answer to "mg-<other replica>-N": sent to that replica; returns 1 when sent. */
int mg__cluster_route_response(mg_session_t *s, const json_t *msg);
/* Client notifications other replicas must see (cancellation; roots to the children's owner). */
void mg__cluster_client_notification(mg_session_t *s, const json_t *msg);
/* 1 when msg may need the session's isolation "session" children. */
int mg__cluster_needs_children(mg_gateway_t *gw, const json_t *msg);
/* Forwards c to the replica running the session's children, or fails it (owner lost). Returns 1
 * when it took the call over. */
int mg__cluster_forward(mg_call_t *c, const json_t *msg);
/* From call_finish(): ends a forward. */
void mg__cluster_call_done(mg_call_t *c);
/* 1 when this replica may run s's isolation "session" children. */
int mg__cluster_may_own(const mg_session_t *s);
/* Writes a related message (final 0) or the answer (final 1) back to the forwarding replica. */
void mg__cluster_relay(mg_exchange_t *x, const json_t *msg, int final);
/* A 2026-07-28 retry whose requestState names another replica: proxied there whole (that replica
 * holds the parked call). Returns 1 when it took the request (it answers), 0 to handle it here. */
int mg__cluster_proxy_modern(mg_gateway_t *gw, h2o_req_t *req, const json_t *msg, const char *replica,
                             uint64_t start_ms);
/* NEW reference: the store's /readyz object; *ready = the store can serve. */
json_t *mg__cluster_status(mg_gateway_t *gw, int *ready);

/* ---- reply.c: answering on /mcp, and the exchange ---- */
/* Value of header name (lowercase) of req; *dup (may be NULL) set when it appears twice. */
h2o_iovec_t mg__req_header(h2o_req_t *req, const char *name, int *dup);
/* 1 when the Accept value lists type, its major type with a wildcard subtype, or any type. */
int mg__accepts(h2o_iovec_t accept, const char *type);
/* Both questions in one pass over the value: bit 0 set when it admits a, bit 1 when it admits b. */
unsigned mg__accepts_two(h2o_iovec_t accept, const char *a, const char *b);
void mg__http_send_body(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len,
                        const char **hdrs, size_t nhdrs);
void mg__http_send_json(h2o_req_t *req, int status, const json_t *msg, const char **hdrs, size_t nhdrs);
void mg__http_send_empty(h2o_req_t *req, int status, const char *ctype);
/* Adds a response header (name and value copied into the request's pool). */
void mg__http_add_header(h2o_req_t *req, const char *name, const char *value);
/* Adds the headers of a policy decision (policy/hooks.h). */
struct mg_policy_headers;
void mg__http_add_headers(h2o_req_t *req, const struct mg_policy_headers *hs);
/* The client's address as text into out ("unknown" when req is NULL or it cannot be read). */
void mg__req_peer(h2o_req_t *req, char *out, size_t cap);
/* An HTTP error with an id-less JSON-RPC error body, and its log line: err (MG_E*) names the status
 * and the JSON-RPC code (common/err.h). */
void mg__http_fail(mg_gateway_t *gw, h2o_req_t *req, int err, const char *message, uint64_t start_ms);
/* The auth phase's refusal d (auth/auth.h): its status, JSON-RPC error, WWW-Authenticate,
 * Retry-After and Cache-Control: no-store. Not logged again (auth logged it). */
void mg__http_refuse(mg_gateway_t *gw, h2o_req_t *req, const mg_auth_decision_t *d);
/* Same with data (stolen) and an id (borrowed, may be NULL), logged as a POST. */
void mg__http_error(mg_gateway_t *gw, h2o_req_t *req, int err, const char *message, json_t *data,
                    const json_t *id, uint64_t start_ms);
/* The one log line per request. */
void mg__http_log(mg_gateway_t *gw, const char *http_method, const char *method, const char *upstream,
                  const char *session, int status, uint64_t start_ms);
/* One HTTP request answering calls; held by h2o's request and by each call replying through it. */
mg_exchange_t *mg__exchange_new(mg_gateway_t *gw, h2o_req_t *req, mg_session_t *s, uint64_t start_ms);
void mg__exchange_ref(mg_exchange_t *x);
void mg__exchange_unref(mg_exchange_t *x);
/* Answers x as SSE from now on (returns 0 when the client is gone or cannot take SSE). */
int mg__exchange_stream(mg_exchange_t *x);
/* A message related to an in-flight request of x (switches x to SSE if it can). */
void mg__exchange_related(mg_exchange_t *x, const json_t *msg);
/* The response to one of x's requests. msg borrowed. */
void mg__exchange_respond(mg_exchange_t *x, const json_t *msg);
/* 1 when x answers its one request as a plain JSON body (no SSE stream, batch or replica relay):
 * then mg__exchange_respond_raw may answer it. */
int mg__exchange_plain(const mg_exchange_t *x);
/* mg__exchange_respond for a plain x with an upstream's result kept as bytes: raw's object with
 * id (borrowed) in place of its "id" (jsonrpc/rpcraw.h); the same bytes mg__exchange_respond writes
 * for the parsed response. */
void mg__exchange_respond_raw(mg_exchange_t *x, const mg_rpc_raw_t *raw, const json_t *id);
/* One of x's requests ends unanswered (cancelled): the stream or HTTP response ends without it. */
void mg__exchange_abandon(mg_exchange_t *x);

/* ---- gateway/era_legacy.c: the session era's handlers, called by the pipeline (pipeline.c) ---- */
void mg__legacy_initialize(mg_gateway_t *gw, h2o_req_t *req, json_t *msg, uint64_t start_ms);
void mg__legacy_post(mg_gateway_t *gw, h2o_req_t *req, mg_session_t *s, json_t *body, int batch, size_t n,
                     const mg_rpc_kind_t *kinds, size_t nreq, const char *method0,
                     const mg_json_span_t *params_text, unsigned params_keys, int accept_sse,
                     uint64_t start_ms);
/* 1 (and answered 405) when a GET or DELETE without a session names 2026-07-28. */
int mg__legacy_refuse_sessionless(mg_gateway_t *gw, h2o_req_t *req, uint64_t start_ms);
/* The local GET: the session's GET stream or a resumption from its rings. */
void mg__legacy_get(mg_session_t *s, h2o_req_t *req, uint64_t start_ms);

/* ---- gateway/era_sse.c: the 2024-11-05 HTTP+SSE transport (gateway.legacySse), called by the
 * pipeline's phases (pipeline.c) ---- */
/* GET /sse after the origin, CORS, admit and auth phases: a new session whose GET stream is this
 * response; the first event names the POST endpoint. Answers. */
void mg__sse_open(mg_gateway_t *gw, h2o_req_t *req, uint64_t start_ms);
/* POST /messages?sessionId= on legacy session s, parsed and admitted like a POST on /mcp: answers
 * 202 and every answer goes out on s's SSE stream (initialize included). */
void mg__sse_post(mg_gateway_t *gw, h2o_req_t *req, mg_session_t *s, json_t *body, int batch, size_t n,
                  const mg_rpc_kind_t *kinds, size_t nreq, uint64_t start_ms);
/* Adds the Deprecation and Link headers every legacy-transport response carries. */
void mg__sse_deprecation_headers(h2o_req_t *req);
/* Frees s->sse (session.c, when the session is freed). */
void mg__sse_session_free(mg_session_t *s);

/* ---- modern.c (2026-07-28) ---- */
/* Handles a POST that carries a 2026-07-28 request or notification. body borrowed. */
void mg__modern_post(mg_gateway_t *gw, h2o_req_t *req, json_t *body, uint64_t start_ms);
/* 1 when the message or the headers select the stateless era. */
/* params_keys: mg__params_keys of msg's "params" (0: unknown), which spares the _meta lookups when
 * it has no "_meta" member. */
int mg__modern_detect(h2o_req_t *req, const json_t *msg, unsigned params_keys);
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
/* list_changed to each acked listener of the kinds kinds_of(arg, its principal) gives that its
 * filter asks for (one notification per kind). */
void mg__modern_listeners_changed(mg_gateway_t *gw, unsigned (*kinds_of)(void *arg, const mg_principal_t *p),
                                  void *arg);
/* Notifications for listeners: kind bit (1<<mg_list_kind_t) or a resources/updated uri. */
void mg__modern_listeners_notify(mg_gateway_t *gw, unsigned kinds, const char *updated_uri,
                                 const json_t *msg);
void mg__modern_listeners_close(mg_gateway_t *gw);
void mg__modern_listeners_keepalive(mg_gateway_t *gw);
/* Sends msg (borrowed) on l's stream with l's subscription id in params._meta. */
void mg__modern_listener_send(mg_listener_t *l, const json_t *msg);
/* The acknowledgement of l (its honoured filter); notifications may follow. */
void mg__modern_listener_ack(mg_listener_t *l);
/* Frees l: unlinked, its stream gone, no task read in flight. */
void mg__modern_listener_free(mg_listener_t *l);
void mg__modern_init(mg_gateway_t *gw);
void mg__modern_dispose(mg_gateway_t *gw);
/* Frees what mg__modern_init() made (from mg_gateway_free(), after shutdown). */
void mg__modern_free(mg_gateway_t *gw);

/* ---- dispatch.c ---- */
/* Handles one client request (method+id); replies through x. */
void mg__dispatch_request(mg_gateway_t *gw, mg_session_t *s, mg_exchange_t *x, json_t *msg);
/* The same with msg's "method" already read (borrowed from msg; NULL: read it). */
void mg__dispatch_request_m(mg_gateway_t *gw, mg_session_t *s, mg_exchange_t *x, json_t *msg,
                            const char *method);
/* Same for a 2026-07-28 request: caps from _meta, log level from _meta (-1 = none). */
void mg__dispatch_modern(mg_gateway_t *gw, mg_exchange_t *x, json_t *msg, json_t *caps, int log_rank);
/* Resumes a parked call with the retry's exchange; responses (borrowed) go upstream. */
void mg__dispatch_resume(mg_call_t *c, mg_exchange_t *x, json_t *retry_msg, json_t *responses);
/* Ends a 2026-07-28 call's input-collection window (see dispatch.c). */
void mg__dispatch_flush_inputs(mg_call_t *c);
void mg__modern_schedule_flush(mg_gateway_t *gw);
/* Frees a parked call that expired or whose resumption failed (cancels upstream). */
void mg__dispatch_drop_parked(mg_call_t *c, const char *why);
/* Cancels the unfinished modern calls answering through x (client closed the stream). */
void mg__dispatch_exchange_gone(mg_exchange_t *x);
/* Ends call c with resp (borrowed) / with the error err (MG_E*; data stolen): its one completion. */
void mg__dispatch_finish(mg_call_t *c, const json_t *resp);
void mg__dispatch_fail(mg_call_t *c, int err, const char *message, json_t *data);
/* Which of the members the path asks about a call's params object has, from one walk over its
 * members instead of a lookup per question: MG__PK_KNOWN | MG__PK_META ("_meta") | MG__PK_TASK
 * ("task"); 0 (unknown) when params is not an object or has more than 8 members. */
#define MG__PK_KNOWN 1u
#define MG__PK_META  2u
#define MG__PK_TASK  4u
unsigned mg__params_keys(const json_t *params);
/* c's exchange when params (c->params, or that very object shared on the way) is the object lent to
 * it (params_of, ADR 0019) with the members it was read with, so params_text is its dump as it is;
 * else NULL. */
const mg_exchange_t *mg__params_lent(const mg_call_t *c, const json_t *params);
/* 1 when params (c->params, or that very object shared on the way) certainly has no member of kind
 * bit (MG__PK_META, MG__PK_TASK): it is the object lent to c's exchange (params_of, ADR 0019) with
 * the members it was read with, and its params_keys say so. 0 when it may: the caller looks it up. */
int mg__params_lack(const mg_call_t *c, const json_t *params, unsigned bit);
/* Handles a client notification or a response to a server->client request; returns 0 or an error. */
int mg__dispatch_client_message(mg_gateway_t *gw, mg_session_t *s, json_t *msg, const char **why);
/* A message of pool's upstream attributed to no call (msg borrowed): the pool sink's message
 * handler, registered in gw->pool_sink by mg_gateway_new(). */
void mg__dispatch_upstream_message(mg_gateway_t *gw, mg_pool_t *pool, mg_upstream_origin_t origin,
                                   json_t *msg);
/* Fails every call of a session (session deleted); calls finish with an error. */
void mg__dispatch_session_gone(mg_session_t *s);
json_t *mg__initialize_result(mg_gateway_t *gw, const char *version);

/* ---- status.c: call statistics, /status and its metrics ---- */
typedef enum mg__outcome {
    MG__OUTCOME_RESULT = 0,
    MG__OUTCOME_TOOL_ERROR, /* a result with isError */
    MG__OUTCOME_ERROR,      /* a JSON-RPC error (*code) */
    MG__OUTCOME_REFUSED,    /* an error from a rule of the gateway (c->refusal) */
    MG__OUTCOME_CANCELLED,  /* ended unanswered */
    MG__OUTCOME_COUNT
} mg__outcome_t;
/* How call c ended with resp (borrowed; NULL = cancelled); *code: the JSON-RPC error code or 0. */
mg__outcome_t mg__call_outcome(const mg_call_t *c, const json_t *resp, int *code);
const char *mg__outcome_name(mg__outcome_t o);
/* The server c was routed to ("" before routing). */
const char *mg__call_server(const mg_call_t *c);
int mg__status_new(mg_gateway_t *gw);
void mg__status_free(mg_gateway_t *gw);
/* From call_finish() for the calls mg__journal_call_start() timed; o and code: mg__call_outcome() of
 * resp, looked up once per call (the spans and the journal take the same). */
void mg__status_call_end(mg_call_t *c, const json_t *resp, mg__outcome_t o, int code);
/* The /status page (NEW, *len bytes) and its Content-Security-Policy into csp; NULL when too big. */
char *mg__status_html(mg_gateway_t *gw, size_t *len, char *csp, size_t csplen);

/* ---- reload.c ---- */
int mg__reload_new(mg_gateway_t *gw);
/* Adds {"config": {digest, reloads, reloadFailures, restartNeeded}} to the /readyz object. */
void mg__reload_readyz(mg_gateway_t *gw, json_t *out);
/* Shutdown: the pools still draining after a reload stop now (counted in pools_stopping). */
void mg__reload_shutdown(mg_gateway_t *gw);
void mg__reload_free(mg_gateway_t *gw);
/* Fills the next free slot of servers[] for entry sc (gateway.c; reload.c for added servers).
 * Returns the slot or NULL (no slot left, out of memory). */
mg_gw_server_t *mg__server_slot_add(mg_gateway_t *gw, const mg_server_config_t *sc);
/* Sets every live server's tool-name prefix ("<name><sep>", "" when only one server is live). A
 * prefix that changes hands its previous string to keep (reload.c keeps it until exit, as calls in
 * flight may point into it); with keep NULL it is freed. Returns 0 or MG_ENOMEM. */
int mg__server_prefixes(mg_gateway_t *gw, void (*keep)(mg_gateway_t *, char *));

/* ---- journal_hooks.c: the call journal's records (obs/journal.h) ---- */
/* From call_new(): notes the start time of the calls below (status.c times them) and, with the
 * journal on, the request's trace id. */
void mg__journal_call_start(mg_call_t *c);
/* The journal's argsSha256 (64 hex digits and the NUL into hex): SHA-256 of the compact JSON of
 * params' member (arguments, or a completion's argument), or of nothing when it is absent or cannot
 * be written. text (may be NULL): params' canonical text (ADR 0019, what the dumper writes for
 * params), whose bytes are hashed without dumping the tree; the same digest either way. */
void mg__journal_args_sha(const json_t *params, const char *text, size_t len, const char *member,
                          char hex[65]);
/* From call_finish(): one "call" record for tools/call, prompts/get, resources/read and
 * completion/complete; o and code: mg__call_outcome() of the answer (cancelled: unanswered). */
void mg__journal_call_end(mg_call_t *c, mg__outcome_t o, int code);
/* Runs c's call phases again from the current one (advance 0) or the next (advance 1): how an
 * asynchronous step of a phase outside dispatch.c (tasks.c) goes on. */
void mg__dispatch_run(mg_call_t *c, int advance);
/* Sends the client's inputResponses (borrowed) for c's outstanding input requests upstream;
 * unknown keys are ignored. Returns how many were delivered. */
int mg__dispatch_deliver_inputs(mg_call_t *c, const json_t *responses);
/* Answers c's exchange with resp (borrowed; decorated for 2026-07-28) without ending the call. */
void mg__dispatch_detach(mg_call_t *c, const json_t *resp);
/* Cancels c: its input requests, its upstream request (and the upstream's own task), then ends
 * it unanswered (call_finish with NULL). */
void mg__dispatch_cancel(mg_call_t *c, const char *why);
/* Moves c to session to (a task outlives the session that started it). */
void mg__dispatch_adopt(mg_call_t *c, mg_session_t *to);

/* ---- tasks.c: tools/call as a task (docs/tasks.md) ---- */
void mg__tasks_init(mg_gateway_t *gw);
/* With a shared store: task records move to Redis (after mg__cluster_new). Returns 0. */
int mg__tasks_shared(mg_gateway_t *gw);
/* Drain starts: the tasks/result waiters are answered at once (they wait for a client, not for
 * work). Running tasks go on for the grace period. */
void mg__tasks_drain(mg_gateway_t *gw);
/* Shutdown: timers stop, waiters answered; running tasks end with their calls. */
void mg__tasks_dispose(mg_gateway_t *gw);
void mg__tasks_free(mg_gateway_t *gw);
/* The call phase "task" (after verify): decides whether a tools/call runs as a task. Returns 0
 * (go on), 1 (waiting: tasks.c goes on with mg__dispatch_run) or 2 (the call ended). */
int mg__task_phase(mg_call_t *c);
/* tasks/get, tasks/update, tasks/cancel, tasks/result (route phase; answers c). */
void mg__task_method(mg_call_t *c);
/* 1 when method is one of the task methods of c's era. */
int mg__task_is_method(const mg_call_t *c);
/* done_cb of c (with c->task): 1 when the task is still being created and kept the outcome. */
int mg__task_hold(mg_call_t *c, int err, const json_t *response, const char *message);
/* A tasks/result call (task_waiting) ends: it leaves the waiters. */
void mg__task_unwait(mg_call_t *c);
/* c (with c->task) ended: resp is its JSON-RPC response (borrowed), NULL when cancelled. */
void mg__task_call_ended(mg_call_t *c, const json_t *resp);
/* c's upstream asked for input (c->inputs): the task is input_required. */
void mg__task_inputs_changed(mg_call_t *c);
/* A related notification of c's upstream (progress, log) kept for the task. */
void mg__task_note(mg_call_t *c, const json_t *msg);
/* c resumed after MRTR input with task_want: becomes a task now. */
void mg__task_promote(mg_call_t *c);
/* Capabilities to add: the 2025-11-25 "tasks" object (NEW reference, NULL when disabled). */
json_t *mg__tasks_legacy_caps(mg_gateway_t *gw);
/* cluster: a task message from another replica (cancel or input for a task running here). */
void mg__task_remote(mg_gateway_t *gw, const json_t *m);
/* Reads the record of id (an owner that died is read as failed, with why). The store's contract:
 * 0 and cb once, or an error and no cb. */
int mg__task_read(mg_gateway_t *gw, const char *id, mg_task_store_cb cb, void *data);
/* tasks/get of 2026-07-28 for rec (DetailedTask, without resultType). NEW reference. */
json_t *mg__task_detailed(const json_t *rec);
/* Starts the tasks timer (tasks.c; it calls mg__task_listen_tick while it runs). */
void mg__tasks_timer_need(mg_gateway_t *gw);

/* ---- tasks_listen.c: notifications/tasks on subscriptions/listen (2026-07-28) ---- */
/* l watches the task ids of ids (borrowed array; its principal's only, at most 64): each is read,
 * then l is acknowledged with the ids it got (filter taskIds) and told their current state. */
void mg__task_listen(mg_listener_t *l, const json_t *ids);
/* rec (borrowed) was written here: the listeners of this replica that watch it hear its state
 * when it changed; with a cluster, other replicas are told to read it (broadcast "ts"). */
void mg__task_listen_changed(mg_gateway_t *gw, const json_t *rec, int announce);
/* The state of rec that listeners are told about once: its status (input_required: with its
 * input request keys), into out (truncated to n). */
void mg__task_sig(const json_t *rec, char *out, size_t n);
/* cluster: replica "from" wrote task id: its watchers here read and tell it. */
void mg__task_listen_remote(mg_gateway_t *gw, const char *id);
/* The tasks timer: watched tasks are read again every few seconds with a cluster (an owner that
 * died, a lost message). Returns 1 while there is something to watch. */
int mg__task_listen_tick(mg_gateway_t *gw, uint64_t now);
/* A broadcast to every replica (cluster_bus.c; m stolen; nothing without a cluster). */
void mg__cluster_task_broadcast(mg_gateway_t *gw, json_t *m);

/* ---- catalog.c ---- */
int mg__pool_new(mg_gateway_t *gw, mg_gw_server_t *srv, mg_session_t *owner, const char *tenant,
                 mg_pool_t **out);
void mg__pool_stop(mg_pool_t *p);
/* Gets one list of one pool (cached or fetched). cb always called, maybe synchronously; items
 * NULL when the pool is down or the fetch failed. */
void mg__pool_list(mg_pool_t *p, mg_list_kind_t kind, mg_list_cb cb, void *data);
void mg__pool_invalidate(mg_pool_t *p, int kind /* -1 = all */);
/* The same without creating one (NULL when it does not exist yet). */
mg_pool_t *mg__pool_peek(mg_gateway_t *gw, mg_session_t *s, const mg_principal_t *p, size_t i);
/* Tenant key of a principal for isolation "tenant" ("" without auth: one pool). */
const char *mg__tenant_of(const mg_principal_t *p);
/* Exposed name for (server, original) and its reverse; reverse returns the server index or -1. */
char *mg__catalog_expose(const mg_gw_server_t *srv, const char *name);
long mg__catalog_route_name(mg_gateway_t *gw, const char *exposed, const char **original);
/* Pool index serving uri for session s, or -1. */
long mg__catalog_route_uri(mg_gateway_t *gw, mg_session_t *s, const char *uri);

/* ---- pools.c ---- */
/* Pool of server i for session s and principal p (the caller's; s's own for a session request):
 * the shared pool, the tenant's pool or the session's own, created on first use. NULL when none
 * may serve (isolation "session" without a session, start failure). */
mg_pool_t *mg__pool_for(mg_gateway_t *gw, mg_session_t *s, const mg_principal_t *p, size_t i);
/* list_changed of kind to session only, at once. */
void mg__catalog_list_changed(mg_gateway_t *gw, mg_session_t *only, mg_list_kind_t kind);
/* A pool's list of kind changed (the pool sink's list_changed): its owning session at once, or,
 * debounced, the sessions and listeners it reaches: those whose principal may see the server
 * (gateway.auth.rules) and, for a tenant's pool, of that tenant only. */
void mg__pool_list_changed(mg_gateway_t *gw, mg_pool_t *pool, mg_list_kind_t kind);
/* One pool's change: the kinds (1 << mg_list_kind_t) of server slot's lists, in the pool of
 * tenant (NULL: the shared pool). */
typedef struct mg_lc_change {
    size_t slot;
    char *tenant;
    unsigned bits;
} mg_lc_change_t;
/* Changes ch[0..n) of gw's servers, plus kinds for everyone (all). */
typedef struct mg_lc_reach {
    const mg_gateway_t *gw;
    const mg_lc_change_t *ch;
    size_t n;
    unsigned all;
} mg_lc_reach_t;
/* The kinds of reach (an mg_lc_reach_t) that reach principal p: all, and each change whose server
 * is live and not wholly hidden from p by gateway.auth.rules, and whose tenant pool is p's tenant. */
unsigned mg__lc_reach_kinds(void *reach, const mg_principal_t *p);
/* list_changed of each kind in bits (1 << mg_list_kind_t) to session s only, at once: on this
 * replica's stream of s (a shared session's: the GET stream this replica follows, if any); s NULL:
 * to this replica's 2026-07-28 listeners. */
void mg__catalog_list_changed_to(mg_gateway_t *gw, mg_session_t *s, unsigned bits);

#endif
