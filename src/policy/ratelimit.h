/*
 * ratelimit.h - token buckets keyed by strings ("p:<principal>", "t:<tenant>", "tool:<name>",
 * "ip:<address>"), behind an asynchronous store interface: the local store here, or the shared
 * one of every replica (src/session/ratelimit_redis.c: one Lua script per take, same math).
 *
 * Bucket math is exact integer arithmetic: one token is `per_ms` units, a bucket holds at most
 * burst * per_ms units and gains `requests` units per millisecond. A new bucket is full. A take
 * removes one token from EVERY bucket of the request or from none (a request refused by its
 * tenant's bucket does not spend its principal's token).
 * Read next: ratelimit.c, hooks.c (who builds the keys), docs/security.md#rate-limits.
 */
#ifndef MG_POLICY_RATELIMIT_H
#define MG_POLICY_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

typedef struct mg_rl_bucket {
    uint64_t units;
    uint64_t last_ms;
} mg_rl_bucket_t;

/* Refills b up to now_ms (a bucket never seen, last_ms == 0 && units == 0, should start full:
 * use mg_rl_bucket_init). */
void mg_rl_bucket_init(mg_rl_bucket_t *b, const mg_rate_rule_t *r, uint64_t now_ms);
void mg_rl_bucket_refill(mg_rl_bucket_t *b, const mg_rate_rule_t *r, uint64_t now_ms);
/* Whole tokens in b. */
uint64_t mg_rl_bucket_tokens(const mg_rl_bucket_t *b, const mg_rate_rule_t *r);
/* Milliseconds until b holds one whole token (0 when it does). */
uint64_t mg_rl_bucket_wait_ms(const mg_rl_bucket_t *b, const mg_rate_rule_t *r);
/* Milliseconds until b is full again. */
uint64_t mg_rl_bucket_full_ms(const mg_rl_bucket_t *b, const mg_rate_rule_t *r);

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

/* In-process store with at most max_buckets buckets (full ones are dropped first when it is full:
 * a full bucket is the same as no bucket). NULL when out of memory. */
mg_rl_store_t *mg_rl_store_local_new(size_t max_buckets);
/* Buckets currently held (tests). */
size_t mg_rl_store_local_count(const mg_rl_store_t *st);

#endif
