/*
 * upstream_int.h - internals shared by the files of upstream/: the stdio wire format, the records
 * for the pool, its children and its requests, and the per-child in-flight table.
 *
 * Contract: everything runs on the upstream's loop thread. A request is in exactly one place at a
 * time (the pool's FIFO, one child's in-flight table, a local "taken" list while it is being
 * failed, or nowhere once DONE). A child record is freed only from the close callback of its last
 * handle; the pool only after stopped_cb. Files: upstream.c (pool, queue, requests, public API),
 * child.c (spawn, handshake, framing dispatch, exit, restart), framing.c (line splitter, id
 * scanner, UTF-8 cleanup), table.c (id table), spawn_env.c (env block, PATH lookup).
 */
#ifndef MG_UPSTREAM_INT_H
#define MG_UPSTREAM_INT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <jansson.h>

#include "upstream.h"
#include "../common/json.h"
#include "../common/log.h"

/*
 * Stdio framing (the MCP stdio transport; we define the limits and the failure handling):
 *
 * | direction        | stream | unit / rule                                                           |
 * |------------------|--------|-----------------------------------------------------------------------|
 * | gateway -> child | stdin  | one JSON-RPC message per line: compact JSON (jansson never emits a    |
 * |                  |        | raw LF inside a value) then "\n"; UTF-8; written with uv_try_write,   |
 * |                  |        | the unsent tail queued with uv_write (order kept by libuv)            |
 * | child -> gateway | stdout | "\n" ends a line; one trailing "\r" dropped; blank lines ignored; a   |
 * |                  |        | final line without "\n" at EOF is still parsed                        |
 * | child -> gateway | stdout | line > limits->max_line_bytes (0 = MG__LINE_DEFAULT_MAX): buffered    |
 * |                  |        | bytes freed, the rest discarded up to the next "\n" while the id      |
 * |                  |        | scanner looks for a top-level integer "id"; a match that is in flight |
 * |                  |        | fails at once with MG_ETOOBIG; one error log line either way          |
 * | child -> gateway | stdout | not JSON, or JSON that is not an object (batches): warn log with a    |
 * |                  |        | MG__EXCERPT_MAX-byte excerpt, line ignored                            |
 * | child -> gateway | stderr | each line logged at info: {"msg":line,"upstream":name,                |
 * |                  |        | "stream":"stderr"}; cut at MG__STDERR_LINE_MAX bytes with             |
 * |                  |        | "truncated":true; invalid UTF-8 and NUL become U+FFFD; secrets masked |
 * |                  |        | (mg__mask_secrets); the last MG__TAIL_LINES kept for the exit report  |
 * | child -> gateway | any    | noise (junk lines, stderr, protocol errors) is logged through one      |
 * |                  |        | mg_log_limit_t per kind per upstream: MG__NOISE_BURST lines per        |
 * |                  |        | MG__NOISE_INTERVAL_MS, then one line with the suppressed count         |
 *
 * Ids and tokens on the wire:
 *
 * | value                     | rule                                                               |
 * |---------------------------|--------------------------------------------------------------------|
 * | "id" of our requests      | integer, per slot, starts at 1, never reused across incarnations   |
 * | initialize                | takes the next id of its slot when the child is spawned            |
 * | params._meta.progressToken| replaced by the request's own upstream id (integer) when the       |
 * |                           | caller sent one; restored on notifications/progress                |
 * | child -> gateway requests | their ids are the child's; answered through mg_upstream_send()     |
 * |                           | ("ping" is answered here with {})                                  |
 */
#define MG__LINE_DEFAULT_MAX  (16u * 1024u * 1024u)
#define MG__STDERR_LINE_MAX   4096u
#define MG__EXCERPT_MAX       120u
#define MG__READ_BUF          (64u * 1024u)
#define MG__BACKOFF_MIN_MS    100u
#define MG__BACKOFF_MAX_MS    30000u
#define MG__BACKOFF_RESET_MS  60000u /* READY this long before exiting -> backoff back to min */
#define MG__DRAIN_MS          500u   /* after exit: wait this long for stdout/stderr EOF */
#define MG__EOF_KILL_MS       500u   /* stdout EOF but still running: SIGKILL after this */
#define MG__INIT_TIMEOUT_MS   30000u /* when neither server nor limits give a request timeout */
#define MG__PROTOCOL_VERSION  "2025-11-25"
#define MG__TAIL_LINES        10u   /* stderr lines kept per child for its exit report */
#define MG__TAIL_BYTES        2048u /* ...and at most this many bytes of them */
#define MG__NOISE_BURST       20u   /* log lines per kind of upstream noise per interval */
#define MG__STDERR_BURST      100u  /* stderr lines per interval (servers say a lot at start) */
#define MG__NOISE_INTERVAL_MS 10000u

/* Intrusive circular doubly linked list (a head is a node pointing at itself when empty). */
typedef struct mg__list {
    struct mg__list *prev, *next;
} mg__list_t;

#define mg__container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void mg__list_init(mg__list_t *l)
{
    l->prev = l->next = l;
}
static inline int mg__list_empty(const mg__list_t *l)
{
    return l->next == l;
}
static inline void mg__list_push(mg__list_t *head, mg__list_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
static inline void mg__list_remove(mg__list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
/* Moves every node of `from` to the end of `to`; `from` becomes empty. */
static inline void mg__list_splice(mg__list_t *from, mg__list_t *to)
{
    if (mg__list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    mg__list_init(from);
}

/*
 * In-flight table: one per child, upstream id -> request.
 *
 * | field / rule | value                                                                          |
 * |--------------|--------------------------------------------------------------------------------|
 * | e[cap]       | {int64 id; req *}, open addressing with linear probing; req == NULL is empty   |
 * | cap          | 0 (nothing allocated) or a power of two >= 16                                  |
 * | load         | count * 2 <= cap; doubling rehash on insert beyond that                        |
 * | hash         | ((uint64)id * 0x9E3779B97F4A7C15) >> (64 - log2 cap)                           |
 * | delete       | backward-shift deletion: no tombstones, probe chains stay short                |
 * | count        | == child->ninflight                                                            |
 */
typedef struct mg__idtable_entry {
    int64_t id;
    mg_upstream_req_t *req;
} mg__idtable_entry_t;

typedef struct mg__idtable {
    mg__idtable_entry_t *e;
    size_t cap, count;
    unsigned shift; /* 64 - log2(cap) */
} mg__idtable_t;

void mg__idtable_init(mg__idtable_t *t);
void mg__idtable_dispose(mg__idtable_t *t);
/* Inserts (id must not be present). Returns 0 or MG_ENOMEM (table unchanged). */
int mg__idtable_put(mg__idtable_t *t, int64_t id, mg_upstream_req_t *req);
mg_upstream_req_t *mg__idtable_get(const mg__idtable_t *t, int64_t id);
/* Removes and returns the entry's request, or NULL when absent. */
mg_upstream_req_t *mg__idtable_del(mg__idtable_t *t, int64_t id);
/* Empties the table, keeping its memory. */
void mg__idtable_clear(mg__idtable_t *t);

/*
 * Top-level "id" scanner for lines too long to parse: fed the line's bytes in chunks, it tracks
 * strings, escapes and nesting and records the integer value of a member named "id" of the
 * outermost object. Bounded state, no allocation.
 */
typedef struct mg__idscan {
    int depth;
    unsigned char in_str, esc, expect_key, key_mode, key_is_id, want_val, in_val, neg, found, dead;
    unsigned klen;
    char key[2];
    uint64_t val;
    unsigned ndigits;
} mg__idscan_t;

void mg__idscan_init(mg__idscan_t *s);
void mg__idscan_feed(mg__idscan_t *s, const char *p, size_t n);
/* Returns 1 and sets *id when a top-level integer "id" was seen, else 0. */
int mg__idscan_result(mg__idscan_t *s, int64_t *id);

/* Line splitter with a hard cap (see the framing table). */
typedef struct mg__linebuf mg__linebuf_t;
typedef struct mg__line_ops {
    /* One complete line without "\n" (and without a final "\r"); `truncated` only in cut mode. */
    void (*line)(void *ctx, const char *line, size_t len, int truncated);
    /* Discard mode only: a line of `len` bytes exceeded the cap; have_id/id from the id scanner. */
    void (*overlong)(void *ctx, size_t len, int have_id, int64_t id);
} mg__line_ops_t;

struct mg__linebuf {
    char *buf;
    size_t len, cap, max;
    int cut_mode;   /* 1: deliver the first `max` bytes flagged truncated (stderr); 0: discard (stdout) */
    int overflow;   /* inside an over-long line: dropping bytes up to the next "\n" */
    size_t dropped; /* bytes of the current over-long line seen so far */
    mg__idscan_t scan;
};

void mg__linebuf_init(mg__linebuf_t *lb, size_t max, int cut_mode);
void mg__linebuf_dispose(mg__linebuf_t *lb);
/* Splits `p` into lines and calls ops for each. Callbacks may run any upstream code but must not
 * dispose `lb`. */
void mg__linebuf_feed(mg__linebuf_t *lb, const char *p, size_t n, const mg__line_ops_t *ops, void *ctx);
/* EOF: delivers a final unterminated line, if any. */
void mg__linebuf_finish(mg__linebuf_t *lb, const mg__line_ops_t *ops, void *ctx);

/* Returns a NEW malloc'd NUL-terminated copy of p[0..n) that is valid UTF-8: invalid sequences and
 * NUL bytes become U+FFFD; at most `max` input bytes are read (sets *cut when shorter than n).
 * NULL on ENOMEM. */
char *mg__utf8_clean(const char *p, size_t n, size_t max, int *cut);

/* ---- spawn_env.c ---- */

/* NULL-terminated "KEY=VALUE" block: the server's declared env, then PATH, HOME and LANG from the
 * gateway's environment when set and not declared. Returns 0 or MG_ENOMEM. */
int mg__env_build(const mg_server_config_t *server, char ***out);
void mg__env_free(char **env);
/* NEW malloc'd copy of text with secrets replaced by "***": values of the server's declared env
 * (4 bytes or longer), "Bearer <token>" credentials and JWT-shaped strings. NULL on ENOMEM. */
char *mg__mask_secrets(const mg_server_config_t *server, const char *text);
/* Resolves server->command: a name with '/' is returned as is; otherwise the declared PATH (or
 * else the gateway's PATH) is searched for an executable regular file. *out is malloc'd.
 * Returns 0, MG_ENOTFOUND or MG_ENOMEM. */
int mg__command_resolve(const mg_server_config_t *server, char **out);

/* ---- records ---- */

/*
 * Request lifecycle:
 *
 * | state    | where it is                        | leaves by                                      |
 * |----------|------------------------------------|------------------------------------------------|
 * | QUEUED   | up->queue (FIFO), up->nqueued      | sent to a ready child; timeout; cancel; start   |
 * |          |                                    | attempt failure; stop                          |
 * | INFLIGHT | child->table + child->inflight,    | response; timeout; cancel; child exit; stop;   |
 * |          | up->ninflight                      | over-long response line                        |
 * | TAKEN    | a caller's local list              | being failed in a batch (cancel is a no-op)     |
 * | DONE     | nowhere                            | done_cb ran (at once, or from req->timer at     |
 * |          |                                    | 0 ms when completed inside an API call); then   |
 * |          |                                    | req->timer is closed and req freed in its close |
 */
typedef enum mg__req_state {
    MG__REQ_QUEUED = 0,
    MG__REQ_INFLIGHT,
    MG__REQ_TAKEN,
    MG__REQ_DONE
} mg__req_state_t;

/*
 * Child lifecycle:
 *
 * | state    | meaning                                                                             |
 * |----------|-------------------------------------------------------------------------------------|
 * | INIT     | spawned, initialize written; timer = initialize timeout                             |
 * | READY    | initialize answered, notifications/initialized sent; receives requests              |
 * | DYING    | stdout EOF, write error, rejected/timed-out initialize: no new requests; its group   |
 * |          | is SIGKILLed (at once, or after MG__EOF_KILL_MS on stdout EOF) unless it exits first |
 * | STOPPING | mg_upstream_stop(): stdin closed, SIGTERM to the group, SIGKILL after grace (timer)  |
 * | (exited) | exit_cb: group SIGKILLed (orphans), wait <= MG__DRAIN_MS for stdout/stderr EOF, then |
 * |          | finalize: fail in-flight, close the 5 handles, schedule the slot's restart           |
 */
typedef enum mg__child_state {
    MG__CHILD_INIT = 0,
    MG__CHILD_READY,
    MG__CHILD_DYING,
    MG__CHILD_STOPPING,
} mg__child_state_t;

/*
 * Handles and who closes them (stopped_cb runs from the close callback that takes up->nhandles to 0
 * once stopping):
 *
 * | owner | handles                                      | closed                                  |
 * |-------|----------------------------------------------|-----------------------------------------|
 * | slot  | restart_timer                                | mg_upstream_stop()                      |
 * | child | proc, in, out, err, timer                    | finalize, or at once on spawn failure   |
 * | req   | timer (timeout, then 0-ms done_cb deferral)  | right after done_cb returns             |
 */
typedef struct mg__child mg__child_t;

typedef struct mg__slot {
    mg_upstream_t *up;
    unsigned index;
    uv_timer_t restart_timer;
    mg__child_t *child; /* current incarnation, NULL when down (its record may still be closing) */
    uint32_t generation;
    uint64_t backoff_ms;
    int64_t next_id;
} mg__slot_t;

struct mg__child {
    mg_upstream_t *up;
    unsigned slot;
    uint32_t generation;
    mg__child_state_t state;
    uv_process_t proc;
    uv_pipe_t in, out, err;
    uv_timer_t timer;
    unsigned nopen; /* handles of this record not yet closed */
    int pid;        /* 0 until uv_spawn succeeded: never kill(-0) */
    int exited, finalized, out_eof, err_eof, ever_ready, init_failed;
    int64_t exit_status;
    int term_signal;
    int64_t init_id;
    uint64_t ready_at;
    json_t *init_result; /* owned */
    mg__idtable_t table;
    mg__list_t inflight; /* requests sent to this child, oldest first */
    unsigned ninflight;
    mg__linebuf_t outbuf, errbuf;
    char *tail[MG__TAIL_LINES]; /* last stderr lines (masked, malloc'd), oldest at tail_head */
    unsigned tail_head, tail_n;
    char *wbuf; /* lines written by mg__child_write_deferred(), not yet sent (malloc'd) */
    size_t wlen, wcap;
    char readbuf[MG__READ_BUF]; /* shared by stdout and stderr: libuv reads one stream at a time */
};

struct mg_upstream_req {
    mg_upstream_t *up; /* first, as the interface requires */
    mg__list_t link;
    mg__req_state_t state;
    json_t *msg;            /* QUEUED: message to send (owned); NULL once sent */
    json_t *progress_token; /* caller's params._meta.progressToken (owned) or NULL */
    mg__child_t *child;     /* INFLIGHT only */
    mg_upstream_origin_t origin;
    int sent;
    int64_t id; /* upstream id once sent */
    uint64_t timeout_ms, start_ms, touch_ms;
    uint64_t max_ms; /* hard cap from start_ms (the pool's max_request_ms unless the caller set one) */
    uv_timer_t timer;
    mg_upstream_done_cb done_cb;
    mg_upstream_related_cb related_cb;
    mg_upstream_raw_cb raw_cb; /* the caller takes a canonical result as bytes (or NULL) */
    void *data;
    int waiting; /* the caller waits for client input on its behalf (mg_upstream_req_set_waiting) */
    int d_err;   /* deferred completion */
    json_t *d_response;
    char *d_message;
};

/* The stdio child pool: the first implementation of the upstream interface (upstream.h). */
struct mg_upstream {
    const mg_upstream_ops_t *ops; /* &mg__stdio_ops: first, as the interface requires */
    uv_loop_t *loop;
    const mg_server_config_t *server;
    const mg_limits_t *limits;
    char *client_name, *client_version;
    mg_upstream_hooks_t hooks;
    void *hooks_data;
    char **env; /* holds declared secrets: never logged */
    mg__slot_t *slots;
    unsigned nslots;
    mg__list_t queue;
    unsigned nqueued, ninflight, max_pending;
    uint64_t default_timeout_ms, max_request_ms, init_timeout_ms;
    size_t max_line;
    mg_upstream_state_t state;
    int started, stopping, stopped_called;
    unsigned api_depth;   /* > 0 inside mg_upstream_request/start: completions are deferred */
    uv_prepare_t flusher; /* active while a child has deferred lines: sends them before the loop blocks */
    unsigned nhandles;
    json_t *init_result;
    char *last_error;
    char *client_error;  /* last_error in a client's terms */
    json_t *last_stderr; /* array of the failed child's last stderr lines, or NULL */
    int exclusive;       /* opts.exclusive */
    mg_log_limit_t lim_junk, lim_stderr, lim_proto; /* noise from the children (framing table) */
    unsigned restarts;
    uint64_t grace_ms;
    void (*stopped_cb)(mg_upstream_t *, void *);
    void *stopped_data;
};

/* ---- upstream.c, used by child.c ---- */

/* Takes req out of the queue or its child's table (state must be QUEUED or INFLIGHT). */
void mg__req_detach(mg_upstream_req_t *req);
/* Completes a detached or TAKEN request: done_cb now, or deferred when inside an API call.
 * response borrowed; message copied (NULL -> mg_strerror(err)). */
void mg__req_complete(mg_upstream_req_t *req, int err, json_t *response, const char *message);
/* Completes a detached request with raw's bytes through req->raw_cb (set; not inside the API:
 * api_depth == 0). */
void mg__req_complete_raw(mg_upstream_req_t *req, const mg_rpc_raw_t *raw);
/* Moves every request in flight on child to `out` as TAKEN. */
void mg__child_take_inflight(mg__child_t *child, mg__list_t *out);
/* Completes every request of a TAKEN list. */
void mg__req_complete_list(mg__list_t *list, int err, const char *message);
/* A child answered initialize: publish its result, drain the queue, report state. */
void mg__up_child_ready(mg_upstream_t *up, mg__child_t *child);
/* A start attempt failed: fail the queue when no child is ready. */
void mg__up_attempt_failed(mg_upstream_t *up, int err, const char *message);
/* Replace last_error / client_error (copied). */
void mg__up_set_error(mg_upstream_t *up, const char *message);
void mg__up_set_client_error(mg_upstream_t *up, const char *message);
/* Recomputes up->state; calls on_state_cb when it changed or `force`. */
void mg__up_state_update(mg_upstream_t *up, int force);
/* Starts the flusher (idempotent): deferred child lines go out before the loop next waits. */
void mg__up_arm_flush(mg_upstream_t *up);
/* A handle owned by this upstream finished closing; may call stopped_cb (caller returns after). */
void mg__up_handle_closed(mg_upstream_t *up);
/* malloc'd printf (NULL on ENOMEM). */
char *mg__fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- child.c, used by upstream.c ---- */

/* Starts the slot's next incarnation; on failure records it, fails the queue (no ready child) and
 * schedules a retry. */
void mg__child_spawn(mg__slot_t *slot);
/* Writes one message line (after any deferred ones). msg borrowed. 0, MG_ECLOSED (stdin gone),
 * MG_ENOMEM or MG_EIO (the child is then DYING; its requests fail when it exits). */
int mg__child_write(mg__child_t *child, const json_t *msg);
/* Same line, sent with the other lines of this loop iteration in one write when the loop is about
 * to wait (the upstream's flusher): requests that arrive together cost one write(2) and one wakeup
 * of the child instead of one each. 0 or MG_ECLOSED / MG_ENOMEM; write errors surface at the flush
 * (the child becomes DYING). */
int mg__child_write_deferred(mg__child_t *child, const json_t *msg);
/* The same for a line already written (s malloc'd, STOLEN; len with its newline). */
int mg__child_write_line_deferred(mg__child_t *child, char *s, size_t len);
/* The line of request msg (borrowed, an object) with our id: what setting "jsonrpc" to "2.0" and
 * "id" to id (each in place when present, else appended in that order) and dumping would write,
 * without changing msg; "\n"-terminated. as (may be NULL): when as->params_text is set and msg's
 * "params" is as->params_of, those bytes are written for it instead of its dump (the same bytes by
 * the caller's contract). When as->traceparent is set, msg's "params" must be an object without a
 * "_meta" member (mg__trace_splices says so): "_meta":{"traceparent":..,"tracestate":..} is written
 * as its last member, the bytes mg__upstream_trace_tree() and a dump would give. A NEW malloc'd
 * string (*len counts the newline), or NULL (no memory, or a string that is not UTF-8, as
 * mg_json_dump). */
char *mg__request_line(const json_t *msg, int64_t id, const mg_upstream_caller_t *as, size_t *len);
/* mg__request_line() of {"jsonrpc":"2.0","method":method,"params":params} (params NULL: {}),
 * written from the parts (both borrowed) without that message: the same bytes, the trace context
 * included (as->traceparent: params must be an object without "_meta", mg__trace_splices). */
char *mg__request_line_parts(const char *method, const json_t *params, int64_t id,
                             const mg_upstream_caller_t *as, size_t *len);
/* 1 when mg__request_line (or _parts) may write as->traceparent/tracestate into the line of a
 * request whose "params" is params: an object without a "_meta" member (as->params_no_meta answers
 * for the lent params_of without a lookup); 0 otherwise, NULL included (the caller merges them into
 * the tree: mg__upstream_trace_tree). */
int mg__trace_splices(const json_t *params, const mg_upstream_caller_t *as);
/* Appends "_meta":{"traceparent":..[,"tracestate":..]} (the member, as a dump writes it) to b. */
void mg__trace_meta_put(mg_jbuf_t *b, const char *traceparent, const char *tracestate);
/* Merges a request's trace context (mg_upstream_caller_t.traceparent, tracestate: tracestate NULL
 * removes one) into msg's params._meta: params and _meta are replaced by shallow copies (they may be
 * shared with the caller's objects; msg itself is the upstream's), other _meta keys kept, a missing
 * params or _meta created; params that is not an object is left as it is. 0, or MG_ENOMEM (msg
 * unchanged). traceparent NULL: nothing to do. */
int mg__upstream_trace_tree(json_t *msg, const char *traceparent, const char *tracestate);
/* mg__upstream_trace_tree() with *as's context (as->traceparent set), then *as points at plain: a
 * copy of the caller without the context and without the params text (the text of the params just
 * replaced). 0, or MG_ENOMEM (msg and *as unchanged; msg stays the caller's to release). */
int mg__trace_merge_caller(json_t *msg, const mg_upstream_caller_t **as, mg_upstream_caller_t *plain);
/* Sends the deferred lines now (nothing when none). */
void mg__child_flush(mg__child_t *child);
/* Sends notifications/cancelled {requestId, reason?} (best effort). */
void mg__child_send_cancelled(mg__child_t *child, int64_t id, const char *reason);
/* mg_upstream_stop() for one child: close stdin, SIGTERM to its group, SIGKILL after grace_ms. */
void mg__child_terminate(mg__child_t *child, uint64_t grace_ms);
/* Origin of a child's messages. */
mg_upstream_origin_t mg__child_origin(const mg__child_t *child);

/* upstream.c: the stdio implementation of the interface, and its constructor (mg_upstream_new's
 * contract, for a server with a command). */
extern const mg_upstream_ops_t mg__stdio_ops;
int mg__stdio_new(uv_loop_t *loop, const mg_upstream_opts_t *opts, const mg_upstream_hooks_t *hooks,
                  void *hooks_data, mg_upstream_t **out);

#endif
