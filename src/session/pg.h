/*
 * pg.h - the PostgreSQL backend of store.h, bus.h and rl_store.h (and task_store.h:
 * mg_pg_task_store_new, task_store_pg.c): one process-wide client on the gateway's libuv loop (a
 * small pool of command connections plus one LISTEN connection), shared by the interfaces. The Redis backend
 * (redis.h) keeps the same contracts; session/shared.h chooses between them by the spec.
 *
 * Store specs ("gateway.sessions.store" / MCPGATE_SESSION_STORE) that select it:
 *
 *   | spec                                              | meaning                                   |
 *   |---------------------------------------------------|-------------------------------------------|
 *   | postgres://[user[:password]@]host[:port][/db][?k=v] | a libpq connection URI                  |
 *   | postgresql://...                                  | the same (host lists h1:p1,h2:p2 allowed) |
 *   | postgres                                          | everything from the PG* environment       |
 *   | host=... dbname=... (key=value words)             | a libpq connection string                 |
 *
 * libpq reads what the spec leaves out from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGPASSFILE,
 * PGSSLMODE, ... as it always does; gateway.sessions.password (if set) is passed as the password.
 * TLS is libpq's: sslmode=verify-full with sslrootcert is the production setting (docs/operations.md).
 * Several hosts with target_session_attrs=read-write follow a failover to the new primary.
 *
 * Behaviour: connects in the background (PQconnectStartParams + PQconnectPoll on a uv_poll of the
 * socket); reconnects each connection with backoff (100 ms doubling to 5 s, with jitter); every
 * operation has a deadline (timeout_ms): one still unanswered then fails (MG_EIO) and its late result
 * is dropped; a connection silent for three deadlines (at least 5 s) is replaced. While no command
 * connection is ready every operation fails at once with MG_EIO. The schema (tables and functions,
 * versioned in mcpgate_schema) is created and migrated at start when o->migrate, else checked.
 * Read next: pg_int.h (the pool), pg_schema.c (the SQL), store_pg.c (the operations).
 */
#ifndef MG_PG_H
#define MG_PG_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bus.h"
#include "store.h"

struct mg_rl_store;

/* 1 when spec names the PostgreSQL backend (above), whether valid or not. */
int mg_pg_spec_is(const char *spec);
/* A PostgreSQL spec libpq can parse: 0; else MG_EINVAL with a sentence in why (no password). */
int mg_pg_spec_check(const char *spec, char *why, size_t whylen);

typedef struct mg_pg_opts {
    const char *spec;
    const char *password;     /* overrides the spec's and PGPASSWORD when non-NULL */
    const char *key_prefix;   /* prepended to every key and channel (default "mcpgate:") */
    uint64_t timeout_ms;      /* connect and per-operation deadline (default 2000) */
    int migrate;              /* 1: create/upgrade the schema at start; 0: only check its version */
    uint64_t (*now_ms)(void); /* loop clock */
} mg_pg_opts_t;

/*
 * Creates the client and starts connecting. *store and *bus are two views of it; free both (the
 * client goes when the last view is freed). Returns 0, MG_EINVAL (bad spec, why set) or MG_ENOMEM.
 */
int mg_pg_new(uv_loop_t *loop, const mg_pg_opts_t *o, mg_store_t **store, mg_bus_t **bus, char *why,
              size_t whylen);

/* The shared rate-limit bucket store over the client behind session_store (one statement per take,
 * the database's clock). NULL when session_store is not a PostgreSQL store, or out of memory. */
struct mg_rl_store *mg_pg_rl_new(mg_store_t *session_store);

/*
 * `mcpgate store migrate`: connects (blocking; not for the loop), creates or upgrades the schema
 * under an advisory lock and reports in out ("schema at version N (was M)"). Returns 0, or MG_EIO
 * with a sentence in why (never a password).
 */
int mg_pg_migrate(const char *spec, const char *password, char *out, size_t outlen, char *why, size_t whylen);

#endif
