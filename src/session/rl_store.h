/*
 * rl_store.h - the asynchronous store of rate-limit token buckets: the contract both stores keep,
 * the in-process one (src/policy/ratelimit.c) and the shared one over the session store's Redis
 * (ratelimit_redis.c). Plain data only, so the stores below the policy layer can implement it.
 *
 * A bucket rule is `requests` tokens per `per_ms`, holding at most `burst`; the bucket math and the
 * keys ("p:<principal>", "t:<tenant>", "tool:<name>", "ip:<address>") are src/policy/ratelimit.h's.
 * Read next: src/policy/ratelimit.h, ratelimit_redis.c.
 */
#ifndef MG_SESSION_RL_STORE_H
#define MG_SESSION_RL_STORE_H

#include <stddef.h>
#include <stdint.h>

/* One token bucket: `requests` tokens per `per_ms`, holding at most `burst` (default: requests). */
typedef struct mg_rate_rule {
    char *glob; /* tools only: exposed-name glob (fnmatch); NULL otherwise */
    uint64_t requests;
    uint64_t per_ms;
    uint64_t burst;
} mg_rate_rule_t;

/* One bucket of a take. */
typedef struct mg_rl_key {
    const char *key; /* bucket identity, e.g. "p:3fa1..." */
    const mg_rate_rule_t *rule;
    const char *label; /* for headers and errors: "principal", "tenant", "tool" */
} mg_rl_key_t;

typedef struct mg_rl_result {
    int allowed;
    size_t limiting;         /* index of the bucket that refused (denied) or has the fewest tokens left */
    uint64_t remaining;      /* tokens left in that bucket */
    uint64_t retry_after_ms; /* denied: until that bucket has a token */
    uint64_t reset_ms;       /* until that bucket is full */
    int error;               /* 0, or MG_EIO: the store did not answer (allowed is 0: fail closed) */
} mg_rl_result_t;

typedef void (*mg_rl_done_cb)(void *data, const mg_rl_result_t *result);

typedef struct mg_rl_store mg_rl_store_t;
typedef struct mg_rl_store_ops {
    /*
     * Takes one token from every bucket of keys[0..n), all or none. cb is called exactly once:
     * synchronously for the local store, later for a networked one (keys are copied if needed),
     * or synchronously with result.error set when the networked one is not connected. now_ms is
     * the loop clock; the Redis store uses Redis's clock instead (one clock for every replica).
     */
    void (*take)(mg_rl_store_t *st, const mg_rl_key_t *keys, size_t n, uint64_t now_ms, mg_rl_done_cb cb,
                 void *data);
    void (*free)(mg_rl_store_t *st);
} mg_rl_store_ops_t;

struct mg_rl_store {
    const mg_rl_store_ops_t *ops;
};

#endif
