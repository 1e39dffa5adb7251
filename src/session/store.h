/*
 * store.h - the session record store: an asynchronous interface with pluggable backends.
 *
 * A record is what any replica needs to verify and serve a session: id, negotiated protocol
 * version, client capabilities and info, principal/tenant, tool profile, log level,
 * subscriptions, timestamps, and which replica runs its per-session children. Live, process-local
 * state (open streams, calls, children) is NOT here: see gateway/session.c and gateway/cluster_int.h.
 * Every operation completes through its callback, because a network backend (Redis) will. The
 * memory backend may call the callback before the operation function returns; callers must allow
 * that. libuv's rule holds: when an operation returns an error, its callback is never called.
 * Backend: redis (store_redis.c, shared by replicas; one process needs no store: its session table
 * is gateway/session.c). A memory backend that pins this contract down in the unit tests lives in
 * test/unit/support/store_memory.c. Read next: session/bus.h (cross-replica messages), docs/adr/0002.
 *
 * Keys are chosen by the caller: gateway/cluster_records.c uses "<scope>:<session id>", where scope is the
 * tenant (sanitized) so that another tenant's session id never resolves. A backend may prefix them.
 *
 * Record (JSON object; every field but id optional):
 *
 *   | field      | type            | meaning                                                        |
 *   |------------|-----------------|----------------------------------------------------------------|
 *   | id         | string          | the Mcp-Session-Id                                             |
 *   | version    | string          | negotiated revision ("2025-11-25")                             |
 *   | caps       | object          | client capabilities from initialize                            |
 *   | clientInfo | object          | client info from initialize                                    |
 *   | principal  | object or null  | {key, tenant, subject, name, source, scopes}: the creator      |
 *   | profile    | string          | tool profile selected at initialize ("" = none)                |
 *   | created    | integer         | creation time, ms since the epoch                              |
 *   | logLevel   | integer         | minimum log level forwarded (0 debug .. 7 emergency)           |
 *   | subs       | object          | resource URI -> server index (resources/subscribe)             |
 *   | owner      | string          | replica running its isolation "session" children; "!" + id     |
 *   |            |                 | once that replica is gone (the state is lost: report it once)  |
 *
 * put/patch/load treat "logLevel", "subs" and "owner" as separately updatable fields; the other
 * fields are written once by put.
 */
#ifndef MG_STORE_H
#define MG_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mg_store mg_store_t;

typedef void (*mg_store_get_cb)(int err, json_t *record /* borrowed, NULL when absent/expired */, void *data);
typedef void (*mg_store_done_cb)(int err, void *data);

/* What load does besides reading: extend the expiry, check the owner replica is alive, claim. */
typedef struct mg_store_load_opts {
    uint64_t ttl_ms;     /* new expiry: now + ttl_ms (0 = do not touch) */
    const char *replica; /* the caller's replica id; NULL = no owner handling */
    int claim;           /* 1: set owner = replica when the record has no owner */
} mg_store_load_opts_t;

typedef struct mg_store_ops {
    const char *name;
    /* Writes a record (replaces). ttl_ms: idle expiry. */
    int (*put)(mg_store_t *st, const char *id, const json_t *record, uint64_t ttl_ms, mg_store_done_cb cb,
               void *data);
    int (*get)(mg_store_t *st, const char *id, mg_store_get_cb cb, void *data);
    /* Extends the record's expiry to now + ttl_ms. MG_ENOTFOUND when absent. */
    int (*touch)(mg_store_t *st, const char *id, uint64_t ttl_ms, mg_store_done_cb cb, void *data);
    int (*del)(mg_store_t *st, const char *id, mg_store_done_cb cb, void *data);
    /* Number of live records (memory backend: exact; redis: records this process knows of, or 0). */
    size_t (*count)(mg_store_t *st);
    void (*free)(mg_store_t *st);
    /*
     * One round trip per request: touch, then owner handling, then read. When the record has an
     * owner other than o->replica whose replica is no longer alive (replica registry, bus.h), the
     * owner becomes "!" + that id. With o->claim and no owner, the owner becomes o->replica. The
     * record passed to cb reflects both.
     */
    int (*load)(mg_store_t *st, const char *id, const mg_store_load_opts_t *o, mg_store_get_cb cb,
                void *data);
    /*
     * Updates the separately updatable fields of an existing record (a missing record stays
     * missing: MG_ENOTFOUND). patch: {"logLevel": n} replaces; {"subs": {uri: index | null}} sets
     * or removes single subscriptions.
     */
    int (*patch)(mg_store_t *st, const char *id, const json_t *patch, mg_store_done_cb cb, void *data);
    /* Compare-and-set of "owner": when it equals expect ("" = no owner), it becomes value (NULL or
     * "" = no owner). cb err 0 when swapped, MG_EBUSY when it held something else, MG_ENOTFOUND. */
    int (*owner_cas)(mg_store_t *st, const char *id, const char *expect, const char *value,
                     mg_store_done_cb cb, void *data);
    /* 1 when operations can succeed now (connected and authenticated). */
    int (*ready)(mg_store_t *st);
    /* NEW reference: {"backend", "ready", ...} for /readyz; never contains a secret. */
    json_t *(*status)(mg_store_t *st);
} mg_store_ops_t;

struct mg_store {
    const mg_store_ops_t *ops;
};

#endif
