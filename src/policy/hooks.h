/*
 * hooks.h - where the gateway asks the policy module at run time. Plain data in (server indexes
 * and configs, list items, method, tool name, principal key, tenant, peer), decisions out (allowed
 * or an MG_E* code with a message, an HTTP status and the headers to add): the policy never sees
 * the gateway's structures nor writes into an HTTP response; gateway/ writes what it decides.
 *
 * Phase by phase:
 *   cors      mg_policy_cors()             CORS headers and the preflight answer (gateway/pipeline.c
 *                                          writes them)
 *   rate      mg_policy_rate_take()        token buckets for limited methods: a decision that the
 *                                          call phase writes into the answer (gateway/dispatch.c)
 *   dispatch  mg_policy_gates_calls() +    tools/call and prompts/get only for definitions that
 *             mg_policy_call_verified()    passed pinning/scanning, when either blocks
 *   catalog   mg_policy_list_fetched()     a fresh list is compared with mcpgate.lock and scanned;
 *                                          blocked entries are removed before it is cached
 *   catalog   mg_policy_upstream_ready()   the same for the server's instructions
 *   answers   mg_policy_instructions_allowed(), mg_policy_readyz()
 * Read next: hooks.c.
 */
#ifndef MG_POLICY_HOOKS_H
#define MG_POLICY_HOOKS_H

#include "../common/mcp_list.h"
#include "../config/config.h"
#include "../session/store.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mg_policy mg_policy_t;

/*
 * Startup check of what would make the policy runtime refuse to start, with a sentence in why:
 * pinning "block" configured with no lockfile, an unreadable or malformed lockfile, a rules file
 * that does not load. Returns 0 or MG_ECONFIG. `mcpgate serve` calls it before mg_gateway_new().
 */
int mg_policy_validate(const mg_config_t *cfg, char *why, size_t n);

/* Creates the runtime for cfg with room for cap servers (the gateway's server slots; a reload adds
 * up to cap); the servers are then announced in slot order with mg_policy_server_added(). Returns
 * 0, MG_ENOMEM, or MG_ECONFIG (logged) when validation would have failed. */
int mg_policy_new(const mg_config_t *cfg, size_t cap, mg_policy_t **out);
void mg_policy_free(mg_policy_t *pol);
/* The gateway's server slot i holds entry sc (at start, and when a reload adds one): its pinning
 * and scanning state from the pins loaded at start and the running config; logs its "policy" line.
 * sc is borrowed and must outlive pol. i must be the next slot (0, 1, ...) below cap. 0 or MG_EINVAL. */
int mg_policy_server_added(mg_policy_t *pol, size_t i, const mg_server_config_t *sc);
/* A reload removed server slot i: its tools no longer shadow others, its metrics are not reported. */
void mg_policy_server_removed(mg_policy_t *pol, size_t i);
/* 1 when next's gateway.rateLimits can apply by mg_policy_set_config: turned off, turned on with a
 * local store, or kept with the same kind of store (cluster: the gateway has a shared session store). */
int mg_policy_rate_reloadable(const mg_policy_t *pol, const mg_config_t *next, int cluster);
/* A reload switched the running config to cfg (kept until exit): rate limits (a local store made if
 * they were off) and CORS read it from the next request. 0 or MG_ENOMEM (pol unchanged). */
int mg_policy_set_config(mg_policy_t *pol, const mg_config_t *cfg);

/*
 * A reload to next (before the gateway switches to it): re-reads the lockfile (next's path, so a
 * file rewritten on disk counts too), applies next's pinning and scan settings, and recomputes each
 * live server's pin and scan state. entries[i] is server slot i's config entry now (NULL for a
 * removed slot; pol's server count entries, borrowed for the call). changed[i] (pol's server count entries)
 * is set to 1 for every server whose pins, pin mode or scanning changed, and *any gets MG_POLICY_PINS_SERVERS
 * when one did (the caller drops those servers' cached lists so that their next listing is compared and
 * scanned anew) and MG_POLICY_PINS_LOCKFILE when the lockfile's content or path changed. Returns 0;
 * MG_ECONFIG (the lockfile or scan rules do not load) or MG_ENOMEM with a sentence in why, and then
 * nothing changed.
 */
#define MG_POLICY_PINS_SERVERS  1
#define MG_POLICY_PINS_LOCKFILE 2
int mg_policy_reload_pins(mg_policy_t *pol, const mg_config_t *next, const mg_server_config_t *const *entries,
                          unsigned char *changed, int *any, char *why, size_t n);

/* A list of server i was fetched (by any of its pools): compare, scan, log, and remove blocked
 * entries from items (in place). */
void mg_policy_list_fetched(mg_policy_t *pol, size_t i, mg_list_kind_t kind, json_t *items);
/* An upstream of server i is ready (or its InitializeResult changed): check the instructions of
 * init_result (borrowed; NULL = none). */
void mg_policy_upstream_ready(mg_policy_t *pol, size_t i, const json_t *init_result);
/* 0 when server i's instructions are blocked (pinning or scanning), else 1. pol may be NULL. */
int mg_policy_instructions_allowed(const mg_policy_t *pol, size_t i);

/* 1 when calls to server i must name a verified entry (pinning or scanning is "block"). */
int mg_policy_gates_calls(const mg_policy_t *pol, size_t i);
/*
 * items: the server's current (filtered) list of kind (NULL when it could not be fetched). 1 when
 * `original` is in it; else 0 with a sentence in why and *data (NEW) for the JSON-RPC error.
 */
int mg_policy_call_verified(mg_policy_t *pol, size_t i, mg_list_kind_t kind, const json_t *items,
                            const char *original, char *why, size_t n, json_t **data);
/* A call refused by pinning or scanning fails with MG_EBLOCKED, one refused by a rate limit with
 * MG_ERATELIMIT (HTTP 429 when the answer is plain JSON): common/err.h. */

/* Adds "pinning" and "scan" details to upstream i's /readyz object u. */
void mg_policy_readyz(mg_policy_t *pol, size_t i, json_t *u);
/* The pin and scan state of one entry of upstream i's latest list (the status page): *pin
 * "added" | "changed" | "removed" or NULL (matches the lock, or pinning off), *blocked 1 when calls
 * to it are refused, *findings the number of scan findings. */
void mg_policy_item_state(const mg_policy_t *pol, size_t i, mg_list_kind_t kind, const char *name,
                          const char **pin, int *blocked, unsigned *findings);
/* "off", "warn" or "block": upstream i's pinning mode; *locked 0 when the lock has no entry for it. */
const char *mg_policy_pin_state(const mg_policy_t *pol, size_t i, int *locked);

/* Response headers a decision asks the caller to add: n name/value pairs (the caller copies them;
 * at most 8, values at most 255 bytes). */
typedef struct mg_policy_headers {
    size_t n;
    char h[8][2][256];
} mg_policy_headers_t;

/*
 * What the policy decided about a call's rate, for the caller to write into its answer: the policy
 * never writes into the HTTP response or the exchange itself.
 *   allowed   1 = go on; 0 = refused: err (MG_ERATELIMIT) with message and data (NEW, the caller
 *             owns it)
 *   status    HTTP status of a plain JSON answer when refused: 429, or 503 when the shared store did
 *             not answer (fail closed); 0 when allowed
 *   headers   RateLimit-Policy and RateLimit (draft-ietf-httpapi-ratelimit-headers), and
 *             Retry-After when refused
 */
typedef struct mg_policy_rate_decision {
    int allowed;
    int err;
    int status;
    const char *message;
    json_t *data;
    mg_policy_headers_t headers;
} mg_policy_rate_decision_t;

/* One call as the rate limits see it (every string borrowed for the take's call only). */
typedef struct mg_policy_rate_call {
    const char *method;    /* the JSON-RPC method */
    const char *tool;      /* tools/call: the tool name the client sent; NULL otherwise */
    const char *principal; /* the principal's key; NULL without auth */
    const char *tenant;    /* the principal's tenant; NULL when none */
    const char *peer;      /* the client's address: the key when there is no principal */
    uint64_t now_ms;       /* the loop's clock */
} mg_policy_rate_call_t;
typedef struct mg_policy_rate_job mg_policy_rate_job_t;
typedef void (*mg_policy_rate_done_cb)(void *data, mg_policy_rate_decision_t *d);
/* 1 when gateway.rateLimits limits method (the caller then gathers what mg_policy_rate_take needs). */
int mg_policy_rate_limited(const mg_policy_t *pol, const char *method);
/*
 * Rate limits for one call. Returns 1 when no limit applies (continue now, done is never called).
 * Returns 0 when the policy took the call: *job is set (the caller keeps it to cancel) and done
 * runs exactly once with data, maybe before this returns, with the decision (borrowed for the
 * callback's duration; d->data is the callback's); *job is NULL again before done runs.
 */
int mg_policy_rate_take(mg_policy_t *pol, const mg_policy_rate_call_t *call, mg_policy_rate_done_cb done,
                        void *data, mg_policy_rate_job_t **job);
/* The caller ends while its take is in flight (*job set): done will not be called; *job = NULL. */
void mg_policy_rate_cancel(mg_policy_rate_job_t **job);

/*
 * After the session store is chosen (session_store: the shared store, Redis or PostgreSQL; NULL for
 * memory): moves the buckets to it when gateway.rateLimits.store is "shared" (or "redis"), or is
 * unset and sessions are shared. Returns 0, or MG_ECONFIG with a sentence in why ("shared" without
 * a shared session store).
 */
int mg_policy_rate_shared(mg_policy_t *pol, mg_store_t *session_store, char *why, size_t n);

/* 1 when gateway.cors is on (otherwise the CORS phase has nothing to do). */
int mg_policy_cors_enabled(const mg_policy_t *pol);
typedef struct mg_policy_cors_decision {
    mg_policy_headers_t headers;
    int status;     /* preflight answer: 204 or 403 */
    char body[240]; /* "" for 204 */
} mg_policy_cors_decision_t;
/*
 * CORS for one /mcp request, after the Host/Origin checks, from the request's Origin,
 * method and preflight headers (plain strings, NULL when absent; origin with its length). Fills d:
 * the response headers to add (when the Origin is allowed, and "Vary: origin" always), and for a
 * preflight (OPTIONS with Access-Control-Request-Method) the answer to send: status 204, or 403
 * with a JSON body naming the refusal. Returns 1 when the caller must answer with d->status and
 * d->body (a preflight), 0 to go on. With gateway.cors off: 0 and no headers.
 */
int mg_policy_cors(mg_policy_t *pol, const char *origin, size_t origin_len, int is_options,
                   const char *acr_method, size_t acr_method_len, const char *acr_headers,
                   size_t acr_headers_len, mg_policy_cors_decision_t *d);

#endif
