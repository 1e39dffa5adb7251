/*
 * cluster_int.h - the state shared by the files of the shared-session cluster
 * (gateway.sessions.store = redis://...): any replica serves any request of any session, behind a
 * load balancer with no affinity. Private to these files; the rest of the gateway calls the
 * mg__cluster_* functions declared in gateway_int.h ("cluster" section).
 *
 * What lives where (docs/adr/0002-shared-session-store.md has the reasons):
 *   - The session record (store.h) is in Redis; every session request loads it in one round trip
 *     (touch + owner liveness + read), verifies the principal and materializes or refreshes a
 *     local copy (mg_session_t). Copies are caches: evicted when idle, dropped when the record is
 *     gone, and a DELETE anywhere is broadcast so every copy closes at once.
 *   - SSE events: a session's GET stream is a log in Redis with seqs allocated there (stream "0");
 *     notifications from any replica are appended to it and published; the replica holding the
 *     client's GET follows it (bus.h: subscribe, range, then live). A POST response stream is
 *     written locally and appended to its own log (stream "<replica>.<n>"), so a client whose
 *     connection dropped resumes with Last-Event-ID on any replica.
 *   - isolation "session" children run on one replica per session, the "owner" in the record
 *     (claimed atomically by the first request that needs one). Requests that need them are
 *     forwarded to the owner over HTTP (POST /mcpgate/internal/v1/forward, shared secret) and
 *     answered back as a stream; when the owner is gone the client gets an explicit
 *     "upstream state lost" error once and the next call starts fresh children.
 *   - Server->client request ids carry the issuing replica ("mg-<replica>-N"): the client's answer
 *     lands anywhere and is sent to that replica's inbox channel. Cancellations, deletes and
 *     list_changed are broadcast.
 *   - The replica registry ("r:<replica>" = advertise address, 3 s expiry, renewed every second)
 *     says which replicas are alive.
 * Redis unreachable: session requests get 503 + Retry-After and /readyz fails; nothing is served
 * from a copy that was not verified by this request.
 *
 * Files (each owns its structures; only those below are shared):
 *
 *   | file               | owns                                                                  |
 *   |--------------------|-----------------------------------------------------------------------|
 *   | cluster.c          | lifetime: new (replica id, advertise address, Redis, bus inboxes),    |
 *   |                    | drain, status (/readyz), /metrics, free                               |
 *   | cluster_registry.c | the replica registry: the heartbeat that registers "r:<replica>" and  |
 *   |                    | drives the periodic work (owner liveness, cache sweep); start, leave  |
 *   | cluster_records.c  | session records: lookup (load, verify, local copy), put (initialize), |
 *   |                    | delete, patch; record keys and principals; the cache of local copies  |
 *   | cluster_follow.c   | SSE event logs: appends, followers (GET stream, Last-Event-ID resume  |
 *   |                    | on any replica), the liveness of a resumed stream's owner, keep-alive |
 *   | cluster_bus.c      | messages between replicas (table below) and list_changed              |
 *   | cluster_forward.c  | the asking side: calls for a session's isolated children sent to the  |
 *   |                    | owner; 2026-07-28 MRTR retries proxied to the replica holding them    |
 *   | cluster_internal.c | the answering side: /mcpgate/internal/v1/... and answers relayed back |
 *
 * Keys and channels (as this code names them; the backend adds gateway.sessions.keyPrefix and
 * chooses the Redis types: session/store_redis.c). scope = the tenant, sanitized (scope_of()).
 *
 *   | key / channel               | kind    | content                                         |
 *   |-----------------------------|---------|-------------------------------------------------|
 *   | <scope>:<session>           | record  | the session record (store.h has its fields)      |
 *   | r:<replica>                 | value   | advertise address "host:port"; REGISTRY_TTL_MS   |
 *   | x:<scope>:<session>:<stream>| log     | SSE events of one stream (bus.h); stream "0" =   |
 *   |                             |         | the GET stream, "<replica>.<n>" = POST stream n  |
 *   | x:...:0:n                   | value   | seq counter of the GET log (deleted with it)     |
 *   | x:...:<replica>.<n>:m       | value   | JSON array: the client request ids the POST      |
 *   |                             |         | stream answers (a follower answers them with an  |
 *   |                             |         | error if that replica dies first)                |
 *   | e:<scope>:<session>:<stream>| channel | live events of the log, "<seq> <d|e>\n<data>"    |
 *   | i:<replica>                 | channel | messages for one replica                         |
 *   | all                         | channel | messages for every replica                       |
 *
 * SSE event ids: "<stream>-<seq>" (gateway_int.h). Server->client request ids: "mg-<replica>-<n>".
 *
 * Messages between replicas (JSON; every one carries "from": the sender's replica id):
 *
 *   | t        | channel     | other fields              | the receiver                          |
 *   |----------|-------------|---------------------------|---------------------------------------|
 *   | "del"    | all         | scope, session            | closes its copy of the session        |
 *   | "cancel" | all         | scope, session, msg       | applies notifications/cancelled       |
 *   | "lc"     | all         | bits (1 << MG_LIST_*)     | notifies list_changed (sender too)    |
 *   | "msg"    | i:<replica> | scope, session, msg       | applies a client message: the answer  |
 *   |          |             |                           | to its "mg-<replica>-N" request, or   |
 *   |          |             |                           | roots/list_changed for the owner      |
 *   | "task"   | i:<replica> | op (cancel|update), id,   | cancels / answers input of the task   |
 *   |          |             | principal, inputResponses | it runs (tasks.c)                     |
 *   | "ts"     | all         | id                        | listeners watching the task read its  |
 *   |          |             |                           | record and tell it (tasks_listen.c)   |
 *
 * Internal endpoint (HTTP, header KEY_HEADER = gateway.sessions.secret on every request):
 *
 *   | request                               | body                              | answer            |
 *   |---------------------------------------|-----------------------------------|-------------------|
 *   | POST /mcpgate/internal/v1/forward     | {scope, session, principal, msg}  | 200 SSE: data     |
 *   |                                       | (msg: one JSON-RPC request)       | {"r": related} .. |
 *   |                                       |                                   | {"f": the answer} |
 *   | POST /mcpgate/internal/v1/modern      | the client's own 2026-07-28 MRTR  | as /mcp           |
 *   |                                       | retry, its headers minus hop-by-  |                   |
 *   |                                       | hop ones                          |                   |
 *
 * With gateway.tracing, a forward carries the asking call's span as a W3C `traceparent` (and
 * `tracestate`) header: the owner's call span is its child.
 *
 * forward refusals: 400 bad forward, 403 key, 404 no session / another principal, 409 not the
 * owner, 410 draining, 503 store down. The asking side: 503 -> the client gets 503 + Retry-After
 * (the owner's children are fine); 404, 409, 410, no answer, or a 200 stream without "f" -> the
 * owner is cleared in the record and the client gets "upstream state lost" once; anything else
 * -> the call fails with the status.
 *
 * Read next: cluster_records.c (the session phase's path), then session/store.h, session/bus.h.
 */
#ifndef MG_CLUSTER_INT_H
#define MG_CLUSTER_INT_H

#include "../http/client.h"
#include "gateway_int.h"

#include <h2o.h>
#include <jansson.h>
#include <stdint.h>

#define INTERNAL_PATH "/mcpgate/internal/v1/forward"
#define MODERN_PATH   "/mcpgate/internal/v1/modern"
#define KEY_HEADER    "x-mcpgate-cluster-key"

struct mg_cluster {
    mg_gateway_t *gw;
    char replica[16];
    char advertise[300];
    char inbox[48];
    const char *secret;
    mg_bus_sub_t *inbox_sub, *all_sub;
    uv_timer_t *beat;
    uint64_t last_sweep;
    uint64_t last_register;
    int registered; /* the registry has this replica (since the store last became ready) */
    int draining;
    int replaying; /* handling a message another replica sent: do not broadcast it again */
    mg_fwd_t *fwds;
    mg_http_client_t *http; /* forwarding and MRTR proxying (NULL without gateway.sessions.secret) */
    struct proxy *proxies;  /* MRTR retries in flight, whose HTTP calls end with the client */
    uint64_t forwarded, lost, loads, load_failures;
};

struct mg_follow {
    mg_cluster_t *cl;
    mg_session_t *s;
    mg_sse_conn_t *conn;
    char stream[48];
    char key[240], chan[240];
    mg_bus_sub_t *sub;
    uint64_t last;
    int from_now, primed;
    int syncing, resync, synced;
    json_t *held; /* live events that arrived while syncing: [[seq, data, end]] */
    int is_get;
    char owner[40];
    json_t *ids; /* remote POST stream: client request ids not answered yet (NULL = unknown) */
    int checking;
    int closed;
    int refs;
    mg_follow_t *next;
};

static inline mg_cluster_t *CL(mg_gateway_t *gw)
{
    return gw->cluster;
}

/* ---- cluster_records.c ---- */

/* "<scope>:<session>": the record's key. */
void mg__cluster_rec_key(const mg_session_t *s, char *out, size_t n);
/* NEW JSON for a record's or a forward's "principal" (json null for NULL). */
json_t *mg__cluster_principal_json(const mg_principal_t *p);
/* NEW principal from a record's "principal" (NULL for null/absent or on failure). */
mg_principal_t *mg__cluster_principal_from(const json_t *j);
/* A JSON-RPC error answer for err (MG_E*), with Retry-After: 1 when retry_after; logs the request. */
void mg__cluster_answer(mg_gateway_t *gw, h2o_req_t *req, const char *hm, int err, const char *message,
                        int retry_after, const char *session, uint64_t start_ms);
/* The local copy of a verified record: materialized, or refreshed. NULL when out of room. */
mg_session_t *mg__cluster_adopt(mg_cluster_t *cl, const char *scope, const char *id, const json_t *rec);
/* Heartbeat: evict idle copies, drop copies whose record is gone, keep GET holders alive. */
void mg__cluster_sweep(mg_cluster_t *cl);

/* ---- cluster_follow.c ---- */

/* "x:<scope>:<session>:<stream>": a stream's event log. */
void mg__cluster_log_key(const mg_session_t *s, const char *stream, char *out, size_t n);
/* Writes to the follower's client; a client too slow is dropped (it can resume). */
void mg__cluster_follow_write(mg_follow_t *f, const char *bytes, size_t len);
/* Ends a follower (end: the SSE stream ends cleanly); once; f may be freed on return. */
void mg__cluster_follow_close(mg_follow_t *f, int end);
/* The follower feeding the session's GET stream, or NULL. */
mg_follow_t *mg__cluster_get_follower(mg_session_t *s);
/* Heartbeat: a resumed stream whose replica left the registry gets its unanswered requests failed. */
void mg__cluster_check_owners(mg_cluster_t *cl);

/* ---- cluster_bus.c ---- */

/* Publishes m on "all" with "from" set (m stolen). */
void mg__cluster_broadcast(mg_cluster_t *cl, json_t *m /* stolen */);
/* This replica's live copy of the session, or NULL. */
mg_session_t *mg__cluster_copy_of(mg_gateway_t *gw, const char *scope, const char *id);
/* The subscriber of "i:<replica>" and "all" (data: the cluster). */
void mg__cluster_bus_cb(const char *channel, const char *payload, size_t len, void *data);

/* ---- cluster_forward.c ---- */

/* mg__cluster_free(): ends the forwarded calls and MRTR proxies in flight, silently. */
void mg__cluster_forward_free(mg_cluster_t *cl);

#endif
