/*
 * store.h - the session record store: an asynchronous interface with pluggable backends.
 *
 * A record is what any replica needs to verify and serve a session: id, negotiated protocol
 * version, client capabilities and info, principal/tenant (once auth lands), timestamps. Live,
 * process-local state (open streams, per-session children) is NOT here: see gateway/session.c.
 * Every operation completes through its callback, because a network backend (Redis) will. The
 * memory backend may call the callback before the operation function returns; callers must allow
 * that. libuv's rule holds: when an operation returns an error, its callback is never called.
 * Read next: session/store_memory.c.
 */
#ifndef MG_STORE_H
#define MG_STORE_H

#include <jansson.h>
#include <stdint.h>

typedef struct mg_store mg_store_t;

/* Record as a JSON object: {"id","version","caps","clientInfo","principal","tenant","created","last"}. */
typedef void (*mg_store_get_cb)(int err, json_t *record /* borrowed, NULL when absent/expired */, void *data);
typedef void (*mg_store_done_cb)(int err, void *data);

typedef struct mg_store_ops {
    const char *name;
    /* Writes a record (replaces). ttl_ms: idle expiry. */
    int (*put)(mg_store_t *st, const char *id, const json_t *record, uint64_t ttl_ms, mg_store_done_cb cb,
               void *data);
    int (*get)(mg_store_t *st, const char *id, mg_store_get_cb cb, void *data);
    /* Extends the record's expiry to now + ttl_ms. */
    int (*touch)(mg_store_t *st, const char *id, uint64_t ttl_ms, mg_store_done_cb cb, void *data);
    int (*del)(mg_store_t *st, const char *id, mg_store_done_cb cb, void *data);
    /* Number of live records (memory backend: exact). */
    size_t (*count)(mg_store_t *st);
    void (*free)(mg_store_t *st);
} mg_store_ops_t;

struct mg_store {
    const mg_store_ops_t *ops;
};

/* Memory backend: records expire lazily on get and by mg_store_memory_sweep(). now_ms supplied by
 * the caller's clock function. */
mg_store_t *mg_store_memory_new(uint64_t (*now_ms)(void));
/* Removes expired records; returns how many. */
size_t mg_store_memory_sweep(mg_store_t *st);

#endif
