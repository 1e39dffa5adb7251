/*
 * auth_int.h - state shared by the auth module's files. Not a public contract.
 *
 * Files: auth.c (the phase: bearer extraction, challenges, waiting requests, well-known
 * endpoints), token.c (static tokens, principals, `mcpgate token`), jwt.c (JWS/JWT validation
 * against a key set: pure, synchronous), jwks.c (issuer discovery and the JWKS cache), introspect.c
 * (RFC 7662), ratelimit.c (failed credentials per client address), policy.c (allow/deny rules),
 * fetch.c (libcurl on libuv), hooks.c (the gateway's calls into policy).
 *
 * JWKS cache states:
 *   keys == NULL, fetching          first fetch under way; JWT requests wait
 *   keys != NULL                    validation is synchronous; an unknown kid triggers a refresh
 *                                   when the last attempt is older than jwks_min_interval_s (1 s
 *                                   while there are no keys at all), and
 *                                   the request waits for it; otherwise 401 at once
 *   fetch failed                    last good keys are kept; retried with backoff (1 s .. 60 s)
 */
#ifndef MG_AUTH_INT_H
#define MG_AUTH_INT_H

#include "../common/map.h"
#include "auth.h"
#include "fetch.h"

#include <jansson.h>
#include <stdint.h>

#define MG_AUTH_MAX_TOKEN      8192  /* longest bearer token looked at (bytes) */
#define MG_AUTH_MAX_WAITERS    4096  /* requests waiting for keys or introspection */
#define MG_AUTH_RATE_SLOTS     4096  /* client addresses tracked for failed credentials */
#define MG_AUTH_INTROSPECT_MAX 10000 /* cached introspection results */

typedef struct mg_auth_waiter mg_auth_waiter_t;

typedef struct mg_auth_rate_entry {
    char addr[48];
    unsigned failures;
    uint64_t window_start_ms;
    uint64_t blocked_until_ms;
    uint64_t last_ms;
} mg_auth_rate_entry_t;

typedef struct mg_auth_rate {
    mg_auth_rate_entry_t *slots; /* open addressing on the address hash */
    size_t cap;
    size_t used;
} mg_auth_rate_t;

typedef struct mg_auth_introspected {
    char hash[65]; /* SHA-256 of the token: the token itself is never kept */
    mg_principal_t *principal;
    uint64_t expires_ms;
} mg_auth_introspected_t;

/* What every generation of one gateway's auth runtime shares (a reload makes a new generation,
 * mg_auth_next): the principals attached to requests, whichever generation authenticated them,
 * and the failed-credential table, so a reload neither loses a request's principal nor lifts a
 * block. Freed with its last generation. */
typedef struct mg_auth_family {
    mg_map_t by_req;     /* "%p" of an h2o request -> its principal hook (auth.c) */
    mg_auth_rate_t rate; /* failed credentials per client address */
    mg_auth_t *gens;     /* generations not yet retired, newest first (a->gen_next) */
    unsigned ngens;      /* generations whose memory is not yet released */
} mg_auth_family_t;

/* One generation: the runtime built for one gateway.auth configuration. Referenced by the
 * gateway (the current one), by every request it authenticated (its principal hook, until h2o
 * disposes the request) and by every request waiting on it (keys, introspection). At zero
 * references it is retired: stopped, and released from its timer's close callback. */
struct mg_auth {
    uv_loop_t *loop;
    const mg_auth_config_t *cfg;
    int refs;
    int retired;
    mg_auth_family_t *family;
    mg_auth_t *gen_next;
    mg_fetch_t *fetch;
    int stopping;
    /* issuer metadata and keys */
    json_t *metadata;         /* the issuer's RFC 8414 / OIDC metadata, NULL until fetched */
    char *jwks_uri;           /* configured or discovered */
    char *introspection_uri;  /* configured or discovered */
    json_t *keys;             /* {"keys": [...]} last good set, NULL until the first fetch */
    uint64_t keys_ms;         /* when the keys were fetched */
    uint64_t last_attempt_ms; /* last JWKS fetch started (rate limit for unknown kids) */
    int have_attempted;
    int fetching;       /* a discovery or JWKS fetch is under way */
    int metadata_tried; /* discovery attempt number (0 = OIDC path, 1 = RFC 8414 path) */
    unsigned failures;  /* consecutive failed refreshes (backoff) */
    mg_fetch_req_t *freq;
    uv_timer_t refresh_timer;
    mg_auth_waiter_t *key_waiters; /* requests waiting for the key refresh */
    unsigned nwaiters;
    /* introspection results by token hash */
    mg_auth_introspected_t *icache;
    size_t icount, icap;
};

/* ---- token.c ---- */
/* SHA-256 of s as 64 lowercase hex digits into out[65]. */
/* The static token whose hash matches (constant time over every configured hash), or NULL. */
const mg_auth_token_config_t *mg__auth_token_find(const mg_auth_config_t *cfg, const char *token, size_t len);

/* ---- jwt.c ---- */
typedef struct mg_jwt_rules {
    const char *issuer;
    const char *const *audiences;
    size_t naudiences;
    unsigned algorithms; /* MG_AUTH_ALG_* */
    uint64_t skew_s;
    uint64_t max_lifetime_s; /* 0 = none */
    int64_t now_s;
} mg_jwt_rules_t;

/* 1 when token has the shape of a JWS compact serialization (three base64url parts). */
int mg__jwt_shaped(const char *token, size_t len);
/*
 * Validates a JWT access token against a JWK set ({"keys": [...]}, may be NULL). Returns 0 with
 * *claims (NEW reference); MG_ENOTFOUND when its kid names no key of the set (a refresh may help);
 * MG_EINVAL when it is invalid, with *why a static reason safe to log and to send (never the
 * token). Never uses keys named by the token itself (jku, x5u, jwk, x5c).
 */
int mg__jwt_validate(const char *token, size_t len, const json_t *jwks, const mg_jwt_rules_t *rules,
                     json_t **claims, const char **why);
/* Scopes of a claims object: scope_claim (NULL = "scope" then "scp"), a space-separated string or
 * an array. NEW NULL-terminated vector (free each and the vector); *n entries. */
char **mg__jwt_scopes(const json_t *claims, const char *scope_claim, size_t *n);
/* Canonical comparison of audience / resource URIs (scheme and host without case, no trailing
 * slash); other strings compare exactly. */
int mg__auth_uri_equal(const char *a, const char *b);

/* ---- jwks.c ---- */
void mg__jwks_start(mg_auth_t *a);
/* Starts a refresh now if none is running and the rate limit allows; 1 when one is (now) under
 * way, 0 when refused by the rate limit. force ignores the rate limit (first fetch). */
int mg__jwks_refresh(mg_auth_t *a, int force);
/* Called by jwks.c when a refresh attempt ended (keys may or may not have changed). */
void mg__auth_keys_settled(mg_auth_t *a);

/* ---- introspect.c ---- */
typedef void (*mg__introspect_cb)(void *data, mg_principal_t *p /* borrowed, NULL = refused */,
                                  int unavailable, const char *why);
/* Looks the token up in the cache (returns the principal, borrowed) or NULL. */
mg_principal_t *mg__introspect_cached(mg_auth_t *a, const char *hash);
/* Starts an introspection request. Returns 0 (cb later, unless cancelled) or an error. */
int mg__introspect_start(mg_auth_t *a, const char *token, size_t len, const char *hash, mg__introspect_cb cb,
                         void *data, mg_fetch_req_t **req);
void mg__introspect_dispose(mg_auth_t *a);
/* Builds the principal for validated claims (JWT or introspection); *why on failure. */
mg_principal_t *mg__auth_principal_from_claims(mg_auth_t *a, const json_t *claims, const char *source,
                                               const char **why);

/* ---- ratelimit.c ---- */
int mg__rate_init(mg_auth_rate_t *r, size_t cap);
void mg__rate_dispose(mg_auth_rate_t *r);
/* Seconds the address must still wait (0 = may try). */
uint64_t mg__rate_blocked(mg_auth_rate_t *r, const char *addr, uint64_t now_ms);
/* Records one failed credential; returns 1 when the address is now blocked. */
int mg__rate_fail(mg_auth_rate_t *r, const char *addr, uint64_t now_ms, unsigned max, uint64_t window_ms,
                  uint64_t block_ms);

/* ---- policy.c ---- */
/* Glob match: '*' any run of characters, '?' one character. */

#endif
