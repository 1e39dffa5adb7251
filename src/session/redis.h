/*
 * redis.h - the redis backend of store.h and bus.h: one process-wide client (two connections:
 * commands and pub/sub) on the gateway's libuv loop, shared by both interfaces.
 *
 * Store specs ("gateway.sessions.store" / MCPGATE_SESSION_STORE):
 *
 *   | spec                                                      | meaning                            |
 *   |-----------------------------------------------------------|------------------------------------|
 *   | memory                                                    | one process, no Redis (default)    |
 *   | redis://[[user]:password@]host[:port][/db]                | one Redis or Valkey (port 6379)    |
 *   | valkey://...                                              | the same                           |
 *   | redis-sentinel://[[user]:password@]h1[:p1][,h2[:p2]...]/master[/db] | Sentinel (port 26379) |
 *   | rediss://..., valkey+tls://...                            | refused: see docs/adr/0002 (TLS)   |
 *
 * Hosts may be names, IPv4 or [IPv6]; user and password are percent-decoded. db 0..15 by default
 * range check 0..1023. Names are resolved with uv_getaddrinfo (never blocking the loop).
 *
 * Behaviour: connects in the background; reconnects with backoff (100 ms doubling to 5 s, with
 * jitter) and, with Sentinel, asks the sentinels for the master before every attempt and checks
 * ROLE; every command has a deadline (timeout_ms): a command still unanswered then fails (MG_EIO)
 * and its late reply is dropped, and a connection that answers nothing for three deadlines (at
 * least 5 s) is replaced: callers never hang on a stalled or black-holed Redis.
 * While the command connection is not ready every operation fails at once with MG_EIO.
 * Read next: redis_int.h (connection internals), store_redis.c (the operations and Lua scripts).
 */
#ifndef MG_REDIS_H
#define MG_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "bus.h"
#include "store.h"

#define MG_REDIS_MAX_HOSTS 16

typedef struct mg_redis_target {
    int sentinel;                    /* redis-sentinel:// */
    char *hosts[MG_REDIS_MAX_HOSTS]; /* the server, or the sentinels */
    unsigned ports[MG_REDIS_MAX_HOSTS];
    size_t nhosts;
    char *master;   /* sentinel: the master's name */
    char *username; /* NULL = default user */
    char *password; /* NULL = no AUTH */
    unsigned db;
} mg_redis_target_t;

/* Parses a redis spec (above). Returns 0, or MG_EINVAL with a sentence in why (never containing
 * the password). out is zeroed first; dispose it in both cases. */
int mg_redis_url_parse(const char *url, mg_redis_target_t *out, char *why, size_t whylen);
void mg_redis_target_dispose(mg_redis_target_t *t);

typedef struct mg_redis_opts {
    const char *url;
    const char *password;          /* overrides the URL's password when non-NULL */
    const char *sentinel_password; /* AUTH for the sentinels (NULL = none) */
    const char *key_prefix;        /* prepended to every key and channel (default "mcpgate:") */
    uint64_t timeout_ms;           /* connect and per-command deadline (default 2000) */
    uint64_t (*now_ms)(void);      /* loop clock */
} mg_redis_opts_t;

/*
 * Creates the client and starts connecting. *store and *bus are two views of it; free both (the
 * client goes when the second is freed). Returns 0, MG_EINVAL (bad URL, why set) or MG_ENOMEM.
 */
int mg_redis_new(uv_loop_t *loop, const mg_redis_opts_t *o, mg_store_t **store, mg_bus_t **bus, char *why,
                 size_t whylen);

/*
 * A third view of the client behind session_store (made by mg_redis_new): the shared rate-limit
 * bucket store of src/policy/ratelimit.h (ratelimit_redis.c: one Lua script per take). It holds
 * its own reference to the client. NULL when session_store is not a redis store, or out of memory.
 */
struct mg_rl_store *mg_redis_rl_new(mg_store_t *session_store);

#endif
