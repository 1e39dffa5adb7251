/*
 * task_store.h - where task records live: an asynchronous interface with two backends, the
 * process's own (task_store_mem.c, one replica), Redis (task_store_redis.c) and PostgreSQL
 * (task_store_pg.c): with either shared one every replica reads the same records
 * (session/shared.h: mg_shared_task_new picks it by the session store).
 *
 * A record is what any replica needs to answer tasks/get and tasks/cancel for a task; the call
 * itself (the upstream request) lives only on the replica that owns it (gateway/tasks.c). The
 * store never holds a token: `principal` is the principal's key (auth.h: a SHA-256), never a
 * credential.
 *
 *   | field          | type           | meaning                                                    |
 *   |----------------|----------------|------------------------------------------------------------|
 *   | id             | string         | the task id (128 random bits, hex), also the key           |
 *   | principal      | string         | key of the principal that created it ("" without auth)     |
 *   | owner          | string         | replica running the call ("" in one process)               |
 *   | status         | string         | working, input_required, completed, failed, cancelled      |
 *   | statusMessage  | string         | optional sentence about the status                         |
 *   | createdAt      | integer        | ms since the epoch                                         |
 *   | updatedAt      | integer        | ms since the epoch                                         |
 *   | ttlMs          | integer        | readable this long after creation                          |
 *   | pollIntervalMs | integer        | suggested polling interval                                 |
 *   | result         | object         | completed: the tool's result                               |
 *   | error          | object         | failed: the JSON-RPC error {code, message, data?}          |
 *   | inputRequests  | object         | input_required: key -> {method, params}                    |
 *
 * Terminal statuses (completed, failed, cancelled) are final: update never replaces a terminal
 * record, so a task cancelled on one replica stays cancelled when its call ends on another.
 * Contract (libuv's): an operation returns 0 and calls cb exactly once (the memory backend may
 * call it before returning), or returns an error and never calls cb.
 * Read next: gateway/tasks.c (the engine), docs/tasks.md.
 */
#ifndef MG_SESSION_TASK_STORE_H
#define MG_SESSION_TASK_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mg_task_store mg_task_store_t;

/* err 0 with record (borrowed; NULL when absent or expired), or MG_EBUSY (create: the limit;
 * update: the stored record is terminal, record = it), MG_EIO (store unreachable). */
typedef void (*mg_task_store_cb)(void *data, int err, json_t *record);

typedef struct mg_task_store_ops {
    /* Writes a new record when its principal has fewer than limit unfinished tasks (MG_EBUSY
     * otherwise). ttl_ms: the record expires then. */
    int (*create)(mg_task_store_t *st, const json_t *record, unsigned limit, uint64_t ttl_ms,
                  mg_task_store_cb cb, void *data);
    /* Reads a record. An unfinished record whose owner replica is gone (replica registry) is
     * turned into a failed one first, with error and statusMessage why_gone. */
    int (*get)(mg_task_store_t *st, const char *id, const char *why_gone, mg_task_store_cb cb, void *data);
    /* Replaces the record (same id and expiry) unless the stored one is terminal (MG_EBUSY, the
     * stored record passed) or absent (err 0, record NULL). A terminal record leaves its
     * principal's count of unfinished tasks. */
    int (*update)(mg_task_store_t *st, const json_t *record, mg_task_store_cb cb, void *data);
    void (*free)(mg_task_store_t *st);
} mg_task_store_ops_t;

struct mg_task_store {
    const mg_task_store_ops_t *ops;
};

/* 1 for completed, failed and cancelled. */
int mg_task_status_terminal(const char *status);

/* The process's own store (one replica). now_ms: the wall clock in ms (expiry); max_bytes: bound
 * on the records' JSON, kept by dropping finished records that expire first. NULL when out of
 * memory. */
mg_task_store_t *mg_task_store_mem_new(uint64_t (*now_ms)(void), size_t max_bytes);

/* The shared store over the session store's Redis client (made by mg_redis_new; redis.h); it
 * holds its own reference to the client. NULL when session_store is not a Redis store. */
struct mg_store;
mg_task_store_t *mg_redis_task_store_new(struct mg_store *session_store);

/* The same over the session store's PostgreSQL client (made by mg_pg_new; pg.h; table
 * mcpgate_tasks of schema version 2). NULL when session_store is not a PostgreSQL store. */
mg_task_store_t *mg_pg_task_store_new(struct mg_store *session_store);

#endif
