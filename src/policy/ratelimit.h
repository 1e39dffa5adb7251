/*
 * ratelimit.h - token buckets keyed by strings ("p:<principal>", "t:<tenant>", "tool:<name>",
 * "ip:<address>"), behind an asynchronous store interface (src/session/rl_store.h): the local store
 * here, or the shared one of every replica (src/session/ratelimit_redis.c: one Lua script per take,
 * same math).
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

#include "../session/rl_store.h"
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

/* In-process store with at most max_buckets buckets (full ones are dropped first when it is full:
 * a full bucket is the same as no bucket). NULL when out of memory. */
mg_rl_store_t *mg_rl_store_local_new(size_t max_buckets);
/* Buckets currently held (tests). */
size_t mg_rl_store_local_count(const mg_rl_store_t *st);

#endif
