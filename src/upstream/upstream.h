/*
 * upstream.h - one configured stdio MCP server: a pool of child processes behind one interface.
 *
 * Role in the request path: the last hop. The gateway hands a JSON-RPC request (no id) to
 * mg_upstream_request(); this module assigns its own id, writes one line to a child's stdin and
 * calls the completion callback exactly once: with the child's response, or with an error when the
 * child exits, the request times out, is cancelled, or the upstream is stopped. Nothing hangs.
 *
 * Children are spawned without a shell (uv_spawn, own process group, UV_PROCESS_DETACHED), with
 * only their declared env plus PATH/HOME/LANG copied from the gateway. The module sends
 * `initialize` + `notifications/initialized` itself; requests wait in a bounded queue until a child
 * is ready. A child that exits fails its in-flight requests at once (error names the server and the
 * exit status) and is restarted with exponential backoff (100 ms doubling to 30 s; reset after 60 s
 * up). Stderr lines are logged tagged with the server name (secrets masked, rate-limited like every
 * other kind of upstream noise); the last ones of a child that fails are kept for /readyz. Progress
 * tokens are remapped so two clients may use the same token on one child.
 *
 * A server with a "url" is the other implementation: a remote MCP server over Streamable HTTP
 * (remote.c, remote_int.h), with the same contract.
 *
 * This module knows nothing of client HTTP requests or sessions. Read next: gateway/ (who calls
 * this), upstream_int.h for the wire framing (newline-delimited JSON, capped line length).
 */
#ifndef MG_UPSTREAM_H
#define MG_UPSTREAM_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "../config/config.h"
#include "../jsonrpc/rpcraw.h"

typedef struct mg_upstream mg_upstream_t;
typedef struct mg_upstream_req mg_upstream_req_t;

typedef enum mg_upstream_state {
    MG_UPSTREAM_STARTING = 0, /* spawning or initializing */
    MG_UPSTREAM_READY,        /* at least one child initialized */
    MG_UPSTREAM_BACKOFF,      /* all children down, a restart is scheduled */
    MG_UPSTREAM_STOPPED,      /* mg_upstream_stop() was called */
} mg_upstream_state_t;

/* Identifies which child (and which incarnation of it) sent a message. */
typedef struct mg_upstream_origin {
    uint32_t child;      /* index in the pool */
    uint32_t generation; /* bumped on every restart */
} mg_upstream_origin_t;

typedef struct mg_upstream_hooks {
    /*
     * A message from a child that is not a response and could not be attributed to one request
     * (see mg_upstream_related_cb for what counts as evidence): a notification (list_changed,
     * resources/updated, message...) or a server->client request (has "id"). msg is borrowed.
     * Optional; without it such a request is answered with -32601.
     */
    void (*on_message_cb)(mg_upstream_t *up, mg_upstream_origin_t origin, json_t *msg, void *data);
    /* Called on every state change, and when a child's initialize result changes. Optional. */
    void (*on_state_cb)(mg_upstream_t *up, mg_upstream_state_t state, void *data);
} mg_upstream_hooks_t;

/*
 * Completion: called exactly once per accepted request.
 *   err == 0: `response` (borrowed) is the child's JSON-RPC response object, with "result" or
 *             "error"; its "id" is the upstream id (callers put the client's id back).
 *   err < 0:  `response` is NULL; `message` is a sentence for the client, e.g.
 *             "upstream 'github' exited with status 1 while handling this request".
 * Never called from inside mg_upstream_request() itself.
 */
typedef void (*mg_upstream_done_cb)(mg_upstream_req_t *req, int err, json_t *response, const char *message,
                                    void *data);

/*
 * A message from the child attributed to one in-flight request, on evidence only:
 * notifications/progress carrying that request's token (token already restored to the caller's);
 * a message whose params._meta["io.mcpgate/relatedRequestId"] names the request's upstream id; or,
 * on an exclusive pool only (opts.exclusive: every request comes from one client, so there is no
 * one else to leak to), any other message while this request is the only one in flight on that
 * child (the only one not waiting for client input, else the only one). On a pool shared between
 * clients "the only request in flight" is no evidence (a timer in the server may log for another
 * client): such messages go to on_message_cb. msg borrowed. Called zero or more times before done_cb.
 */
typedef void (*mg_upstream_related_cb)(mg_upstream_req_t *req, mg_upstream_origin_t origin, json_t *msg,
                                       void *data);

/*
 * Completion with the response as bytes (mg_upstream_caller_t.raw_cb), called instead of done_cb
 * (exactly one of the two is called): when the response is a result ("result", no "error") whose
 * text is canonical (jsonrpc/rpcraw.h), so that writing raw with the client's id in place of ours
 * gives the bytes the tree path would. raw (borrowed) and its bytes are valid during the call only.
 * Both implementations do: stdio for a child's line, remote for an answer's JSON body or SSE event
 * (not on a 2026-07-28 upstream, whose result may be input_required, nor over HTTP+SSE); whatever
 * is not canonical still goes to done_cb as a tree.
 */
typedef void (*mg_upstream_raw_cb)(mg_upstream_req_t *req, const mg_rpc_raw_t *raw, void *data);

typedef struct mg_upstream_opts {
    const mg_server_config_t *server; /* borrowed; must outlive the upstream */
    const mg_limits_t *limits;        /* borrowed; max_line_bytes, max_inflight_per_upstream, timeouts */
    const char *client_name;          /* clientInfo.name sent in initialize, e.g. "mcpgate" */
    const char *client_version;
    /* 1: every request on this pool comes from one client (a per-session pool). Unrelated messages
     * may then be attributed to the only request in flight, and initialize declares roots with
     * listChanged. 0 (shared between clients): attribution on evidence only, and roots without
     * listChanged (no one client's roots list is the child's). Both declare sampling, elicitation
     * and roots: asked inside a request they are routable (on a shared child by the
     * relatedRequestId hint); asked about no request they are refused with a sentence saying so. */
    int exclusive;
    /* Remote servers (server->remote) only: where they may connect (gateway.egress, borrowed; NULL =
     * nothing private), and the pool's tenant (isolation "tenant"; NULL otherwise), whose entry of
     * tenantCredentials is the credential sent. */
    const struct mg_egress_config *egress;
    const char *tenant;
} mg_upstream_opts_t;

/*
 * The upstream interface. Every kind of upstream implements these operations (the stdio child pool
 * of upstream.c; a remote MCP server over HTTP is the next), and the functions below dispatch to
 * them, so the gateway never knows which kind it holds. Contract for an implementation: its
 * upstream struct begins with `const mg_upstream_ops_t *ops` and its request struct with its
 * `mg_upstream_t *`; each operation keeps the contract written at its function below; its events
 * (responses, related messages, unattributed messages, state changes) go only to the callbacks and
 * hooks it was given (the sink its caller registered), never to a caller by name.
 */
typedef struct mg_upstream_status {
    const char *name;
    mg_upstream_state_t state;
    json_t *init_result;      /* borrowed, see mg_upstream_init_result() */
    const char *last_error;   /* see mg_upstream_last_error() */
    const char *client_error; /* see mg_upstream_client_error() */
    json_t *last_stderr;      /* borrowed, see mg_upstream_last_stderr() */
    unsigned restarts, inflight, ready;
    const char *era;     /* remote: the protocol era found, e.g. "2025-11-25 (Streamable HTTP)"; NULL */
    const char *breaker; /* remote: the circuit breaker, "closed" | "open" | "refused"; NULL for stdio */
    const char *http;    /* remote: the HTTP version of its last response ("h2", "http/1.1"); NULL */
} mg_upstream_status_t;

/*
 * Who a request is for, when the upstream needs to know (a remote server with auth type
 * "token_exchange" exchanges the caller's token for one of its own, RFC 8693). Everything is
 * borrowed for the duration of the call that takes it and copied when kept. A request without a
 * caller context (NULL, or subject_token NULL) is the gateway's own.
 */
typedef struct mg_upstream_caller {
    const char *subject_token; /* the caller's bearer token as it reached the gateway, or NULL */
    /* The client's capabilities; sampling, elicitation and roots of them are declared as
     * clientCapabilities to a 2026-07-28 upstream (NULL: none). */
    const json_t *client_capabilities;
    /* 1: a 2026-07-28 upstream's input_required result is turned into server->client requests
     * given to related_cb, as a session-era upstream would send them (answered through
     * mg_upstream_send()), and the request is sent again with inputResponses and requestState, for
     * as many rounds as the upstream asks (bounded); a round asking for a capability that
     * client_capabilities lacks fails the request with -32021 at once. 0: the result is passed
     * through as it is. */
    int translate_inputs;
    /* The logging level the client asked for with logging/setLevel (a 2025 session), or NULL: sent
     * as _meta["io.modelcontextprotocol/logLevel"] to a 2026-07-28 upstream, which has no
     * logging/setLevel and sends log messages only to requests that carry a level. */
    const char *log_level;
    /* This request's hard cap in ms instead of limits.maxRequestMs (0: that one): a call the
     * gateway runs as a task is bounded by the task's TTL, not by the cap of plain calls. */
    uint64_t max_ms;
    /* Optional: a result may arrive as bytes through raw_cb instead of through done_cb (above). */
    mg_upstream_raw_cb raw_cb;
    /* Optional (NULL: none): the text of the message's "params", borrowed for this call only:
     * params_text[0..params_len) are exactly the bytes mg_json_dump writes for params_of (common/json.h
     * mg_json_span_t), which must be the message's "params" member. A stdio line written during
     * this call copies them instead of dumping it, as does the body of a request to a session-era
     * remote upstream (remote.c keeps a copy of the text until the request is sent); anything else
     * ignores them. */
    const json_t *params_of;
    const char *params_text;
    size_t params_len;
    /* With params_text: 1 when params_of has no "_meta" member, so no progress token (spares the
     * stdio upstream its lookups); 0: it may. */
    int params_no_meta;
    /* Optional (NULL: none): the W3C trace context of this request (gateway.tracing's client span
     * for it), borrowed for this call only. The request goes out with params._meta.traceparent set
     * to it and params._meta.tracestate set to tracestate, or removed when tracestate is NULL; every
     * other _meta key is kept, and objects of msg are copied, never changed. A stdio line written
     * during this call whose params (an object) has no "_meta" gets the two written into its text
     * (params_text too); anything else merges them into a copy of params (mg__upstream_trace_tree). */
    const char *traceparent;
    const char *tracestate;
} mg_upstream_caller_t;

typedef struct mg_upstream_ops {
    const char *kind; /* "stdio" | "remote" */
    void (*start)(mg_upstream_t *up);
    int (*request)(mg_upstream_t *up, json_t *msg, uint64_t timeout_ms, mg_upstream_done_cb done_cb,
                   mg_upstream_related_cb related_cb, void *data, mg_upstream_req_t **out);
    int (*send)(mg_upstream_t *up, mg_upstream_origin_t origin, const json_t *msg);
    void (*broadcast)(mg_upstream_t *up, const json_t *msg);
    void (*stop)(mg_upstream_t *up, uint64_t grace_ms, void (*stopped_cb)(mg_upstream_t *, void *),
                 void *data);
    void (*free)(mg_upstream_t *up);
    void (*status)(const mg_upstream_t *up, mg_upstream_status_t *out);
    size_t (*pids)(const mg_upstream_t *up, int *pids, size_t n);
    void (*cancel)(mg_upstream_req_t *req, const char *reason);
    void (*req_touch)(mg_upstream_req_t *req);
    void (*req_set_waiting)(mg_upstream_req_t *req, int waiting);
    int (*req_origin)(const mg_upstream_req_t *req, mg_upstream_origin_t *out);
    /* request() on behalf of a caller; NULL when the kind has no use for one (stdio). */
    int (*request_as)(mg_upstream_t *up, const mg_upstream_caller_t *caller, json_t *msg, uint64_t timeout_ms,
                      mg_upstream_done_cb done_cb, mg_upstream_related_cb related_cb, void *data,
                      mg_upstream_req_t **out);
    /* mg_upstream_call(); NULL: the message is built and given to request_as (or request). */
    int (*call)(mg_upstream_t *up, const mg_upstream_caller_t *caller, const char *method, json_t *params,
                uint64_t timeout_ms, mg_upstream_done_cb done_cb, mg_upstream_related_cb related_cb,
                void *data, mg_upstream_req_t **out);
} mg_upstream_ops_t;

/* Creates the pool (no process started yet). Returns 0 or MG_ENOMEM/MG_EINVAL. The env block
 * (declared env + PATH/HOME/LANG) is built here from the gateway's environment at this moment.
 * Also sets SIGPIPE to SIG_IGN if it is still SIG_DFL (a dead child's stdin must not kill us;
 * libuv resets signal dispositions in children). Must end with mg_upstream_stop() before free. */
int mg_upstream_new(uv_loop_t *loop, const mg_upstream_opts_t *opts, const mg_upstream_hooks_t *hooks,
                    void *hooks_data, mg_upstream_t **out);
/* Spawns `instances` children. Spawn failures are not returned: they show in state and last_error,
 * fail the queued requests (deferred: never inside this call) and are retried with backoff. */
void mg_upstream_start(mg_upstream_t *up);

/*
 * Sends a request. `msg` is STOLEN: an object with "method" and optional "params" (any "id" is
 * replaced). timeout_ms == 0 uses the configured default. On success returns 0 and, if out != NULL,
 * a handle valid until done_cb returns. On error (MG_EBUSY queue full, MG_ECLOSED stopped,
 * MG_EINVAL no "method", MG_ENOMEM) returns negative, msg is released, and NO callback is ever
 * called. Objects inside msg that the caller still references are copied, never modified.
 * The timeout runs from this call (queued time counts): idle timeout = timeout_ms, else
 * server->request_timeout_ms, else limits->request_timeout_ms, reset by progress, never beyond
 * limits->max_request_ms from this call. Completion errors: MG_EUPSTREAM (child exited), MG_ETIMEOUT,
 * MG_ECANCELLED, MG_ESHUTDOWN, MG_ESPAWN / MG_EUPSTREAMDOWN (start attempt failed while queued),
 * MG_ETOOBIG (response line over limits->max_line_bytes), MG_ENOMEM.
 */
int mg_upstream_request(mg_upstream_t *up, json_t *msg, uint64_t timeout_ms, mg_upstream_done_cb done_cb,
                        mg_upstream_related_cb related_cb, void *data, mg_upstream_req_t **out);

/* mg_upstream_request() on behalf of caller (may be NULL): same contract. Only what the upstream's
 * configuration needs of the caller is used (today: the subject token, by remote servers with
 * token exchange); the caller's token is never sent upstream as it is. */
int mg_upstream_request_as(mg_upstream_t *up, const mg_upstream_caller_t *caller, json_t *msg,
                           uint64_t timeout_ms, mg_upstream_done_cb done_cb,
                           mg_upstream_related_cb related_cb, void *data, mg_upstream_req_t **out);

/* mg_upstream_request_as() of {"jsonrpc":"2.0","method":method,"params":params}, given by its parts:
 * same contract (params STOLEN, may be NULL for {}; method borrowed for this call). A kind that
 * writes the request at once (a stdio child free now) writes it from the parts without building
 * the message (~1k instructions per tools/call); every other case builds it (mg_upstream_msg). */
int mg_upstream_call(mg_upstream_t *up, const mg_upstream_caller_t *caller, const char *method,
                     json_t *params, uint64_t timeout_ms, mg_upstream_done_cb done_cb,
                     mg_upstream_related_cb related_cb, void *data, mg_upstream_req_t **out);

/* {"jsonrpc":"2.0","method":method,"params":params} (params STOLEN, NULL for {}): a NEW reference,
 * or NULL on ENOMEM or a method that is not UTF-8 (params released then). */
json_t *mg_upstream_msg(const char *method, json_t *params);

/* Cancels: sends notifications/cancelled to the child (if the request was sent) and calls done_cb
 * with MG_ECANCELLED synchronously, inside this call. `reason` may be NULL. No-op if already
 * completed (only legal while the handle is valid: until done_cb returns); req NULL is a no-op. */
void mg_upstream_cancel(mg_upstream_req_t *req, const char *reason);

/* Marks a request as waiting for its client's input (a 2026-07-28 call parked for MRTR): messages
 * from the child are attributed to the requests that are not waiting first. */
void mg_upstream_req_set_waiting(mg_upstream_req_t *req, int waiting);

/* Progress seen: resets the request's idle timeout (bounded by limits->max_request_ms). */
void mg_upstream_req_touch(mg_upstream_req_t *req);

/* Added: which child incarnation the request was written to (to pair server->client traffic with
 * it, or for metrics). Returns 0, or MG_ENOTFOUND while it is still queued. */
int mg_upstream_req_origin(const mg_upstream_req_t *req, mg_upstream_origin_t *out);

/* Sends a JSON-RPC response (to a server->client request) or a notification to the child that
 * `origin` names. msg borrowed, written as is (include "jsonrpc":"2.0"). Returns MG_ECLOSED when
 * that child incarnation is gone or dying. The module itself answers a child's "ping". */
int mg_upstream_send(mg_upstream_t *up, mg_upstream_origin_t origin, const json_t *msg);
/* Sends a notification to every ready child. msg borrowed. */
void mg_upstream_broadcast(mg_upstream_t *up, const json_t *msg);

/*
 * Stops: fails queued and in-flight requests with MG_ESHUTDOWN (their done_cb run inside this
 * call), closes each child's stdin, SIGTERM to each child's process group, SIGKILL after grace_ms
 * (0 = limits->shutdown_grace_ms), and calls stopped_cb once every child is reaped and every handle
 * is closed (always from a later loop callback, never inside this call). No restart after this.
 * A second call is ignored.
 */
void mg_upstream_stop(mg_upstream_t *up, uint64_t grace_ms, void (*stopped_cb)(mg_upstream_t *, void *),
                      void *data);
/* Frees a stopped upstream (call from stopped_cb or later). */
void mg_upstream_free(mg_upstream_t *up);

/*
 * Can server's command be started as configured? Resolved the way the spawner does (a name without
 * '/' on the server's env PATH if it declares one, else the gateway's; a relative path from its
 * cwd). 0 when it can; otherwise MG_ENOTFOUND (or MG_EINVAL) with a sentence that does not name the
 * server in why (the caller does): not on that PATH; arguments inside "command" ("move the
 * arguments into args"); a Windows `cmd /c` entry; with sandbox.user, a command or landlock path
 * that user cannot reach. Used by `mcpgate check` and before every spawn.
 */
int mg_upstream_command_check(const mg_server_config_t *server, char *why, size_t n);

/* Its kind ("stdio" or "remote"), from its implementation. */
const char *mg_upstream_kind(const mg_upstream_t *up);
/* Remote upstreams: the era found ("2025-11-25 (Streamable HTTP)") once a session started, and the
 * circuit breaker's state ("closed", "open" while down after failures, "refused" when it may not
 * start at all: SSRF guard, a tenant without a credential). NULL for stdio. */
const char *mg_upstream_era(const mg_upstream_t *up);
const char *mg_upstream_breaker(const mg_upstream_t *up);
/* Remote upstreams: the HTTP version its responses come over ("h2" where the server offers HTTP/2 on
 * TLS, "http/1.1"), NULL before the first response and for stdio. */
const char *mg_upstream_http_version(const mg_upstream_t *up);
mg_upstream_state_t mg_upstream_state(const mg_upstream_t *up);
const char *mg_upstream_state_name(mg_upstream_state_t s);
/* Borrowed InitializeResult of the most recently initialized child (NULL until one is ready; kept
 * across restarts). Replaced -- and on_state_cb called -- only when a child's result differs; do not
 * hold the pointer across that callback. */
json_t *mg_upstream_init_result(const mg_upstream_t *up);
/* Last failure sentence for operators (NULL when none); never contains env values. */
const char *mg_upstream_last_error(const mg_upstream_t *up);
/* The same failure in a client's terms, e.g. "the 'github' server failed to start (exit status 3);
 * ask the gateway's operator" (NULL when none). */
const char *mg_upstream_client_error(const mg_upstream_t *up);
/* Borrowed array of the last stderr lines (at most 10 lines, 2 KiB) of the child that last exited
 * or failed to start, secrets masked (values of the server's declared env, bearer tokens, JWTs);
 * NULL when none. */
json_t *mg_upstream_last_stderr(const mg_upstream_t *up);
/* Respawn attempts after the first start of each child (failed attempts included). */
unsigned mg_upstream_restarts(const mg_upstream_t *up);
/* Requests queued + sent and not yet completed (what limits->max_inflight_per_upstream bounds). */
unsigned mg_upstream_inflight(const mg_upstream_t *up);
/* Added: children currently READY (for /readyz: "2/3 instances ready"). */
unsigned mg_upstream_ready_count(const mg_upstream_t *up);
/* Pids of live children written to pids[0..n); returns count. */
size_t mg_upstream_pids(const mg_upstream_t *up, int *pids, size_t n);

#endif
