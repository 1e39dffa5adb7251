/*
 * shared.h - the shared session store chosen by its spec ("gateway.sessions.store" /
 * MCPGATE_SESSION_STORE): Redis/Valkey (redis.h) or PostgreSQL (pg.h). Both keep the contracts of
 * store.h, bus.h, rl_store.h and task_store.h, so the gateway (gateway/cluster*.c, policy/hooks.c) creates
 * its store here and never asks which backend it has (gateway/tasks.c its task store).
 *
 *   | spec                                              | backend                             |
 *   |---------------------------------------------------|-------------------------------------|
 *   | memory                                            | none: one process (the default)     |
 *   | redis://, valkey://, redis-sentinel://            | session/redis.h                     |
 *   | postgres://, postgresql://, postgres, key=value   | session/pg.h                        |
 *
 * Read next: redis.h, pg.h, docs/operations.md ("Choosing the shared store").
 */
#ifndef MG_SHARED_H
#define MG_SHARED_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bus.h"
#include "store.h"

struct mg_rl_store;
struct mg_task_store;

/* "memory" or a valid spec of a backend: 0; else MG_EINVAL with why (config checks; no secret). */
int mg_session_store_check(const char *spec, char *why, size_t whylen);

typedef struct mg_shared_opts {
    const char *spec;
    const char *password;          /* overrides the spec's password when non-NULL */
    const char *sentinel_password; /* Redis Sentinel only */
    const char *key_prefix;        /* default "mcpgate:" */
    uint64_t timeout_ms;           /* connect and per-operation deadline (default 2000) */
    int migrate;                   /* PostgreSQL: create/upgrade the schema at start */
    uint64_t (*now_ms)(void);
} mg_shared_opts_t;

/* Creates the backend named by o->spec (not "memory"): two views, free both. Returns 0, MG_EINVAL
 * (why set) or MG_ENOMEM. */
int mg_shared_store_new(uv_loop_t *loop, const mg_shared_opts_t *o, mg_store_t **store, mg_bus_t **bus,
                        char *why, size_t whylen);

/* The shared rate-limit bucket store over the same backend as session_store (a reference of its own);
 * NULL when session_store is not a shared store, or out of memory. */
struct mg_rl_store *mg_shared_rl_new(mg_store_t *session_store);

/* The shared task record store (task_store.h) over the same backend as session_store (a reference
 * of its own); NULL when session_store is not a shared store, or out of memory. */
struct mg_task_store *mg_shared_task_new(mg_store_t *session_store);

#endif
