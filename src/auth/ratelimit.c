/*
 * ratelimit.c - failed credentials per client address, in a bounded table.
 *
 * Each address counts failures in a fixed window (fail_window_s); reaching fail_max blocks it for
 * fail_block_s, during which the auth phase answers 429 without looking at the credential (so a
 * token cannot be guessed at line rate). The table has a fixed number of slots (open addressing);
 * when it is full the least recently seen address that is not blocked is evicted, so memory stays
 * bounded whatever the number of addresses. Behind a proxy every client shares the proxy's address.
 * Read next: auth.c (where failures are counted).
 */
#include "auth_int.h"
#include "../common/err.h"

#include <stdlib.h>
#include <string.h>

int mg__rate_init(mg_auth_rate_t *r, size_t cap)
{
    r->slots = calloc(cap, sizeof *r->slots);
    r->cap = r->slots ? cap : 0;
    r->used = 0;
    return r->slots ? 0 : MG_ENOMEM;
}

void mg__rate_dispose(mg_auth_rate_t *r)
{
    free(r->slots);
    r->slots = NULL;
    r->cap = r->used = 0;
}

static size_t hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Finds the slot of addr (or NULL). Linear probing over at most the whole table. */
static mg_auth_rate_entry_t *find(mg_auth_rate_t *r, const char *addr)
{
    if (r->cap == 0)
        return NULL;
    size_t i = hash(addr) % r->cap;
    for (size_t n = 0; n < r->cap; n++, i = (i + 1) % r->cap) {
        mg_auth_rate_entry_t *e = &r->slots[i];
        if (e->addr[0] == '\0')
            return NULL;
        if (strcmp(e->addr, addr) == 0)
            return e;
    }
    return NULL;
}

/* Rebuilds the table without entries whose window and block are over. */
static void compact(mg_auth_rate_t *r, uint64_t now_ms, uint64_t window_ms)
{
    mg_auth_rate_entry_t *old = r->slots;
    mg_auth_rate_entry_t *fresh = calloc(r->cap, sizeof *fresh);
    if (fresh == NULL)
        return;
    /* keep the most useful entries: blocked ones first, then the most recent */
    size_t keep_max = r->cap * 3 / 4, kept = 0;
    r->slots = fresh;
    r->used = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < r->cap && kept < keep_max; i++) {
            mg_auth_rate_entry_t *e = &old[i];
            if (e->addr[0] == '\0')
                continue;
            int blocked = e->blocked_until_ms > now_ms;
            int live = now_ms - e->window_start_ms < window_ms;
            if ((pass == 0 && !blocked) || (pass == 1 && (blocked || !live)))
                continue;
            size_t k = hash(e->addr) % r->cap;
            while (fresh[k].addr[0] != '\0')
                k = (k + 1) % r->cap;
            fresh[k] = *e;
            r->used++;
            kept++;
        }
    }
    free(old);
}

uint64_t mg__rate_blocked(mg_auth_rate_t *r, const char *addr, uint64_t now_ms)
{
    mg_auth_rate_entry_t *e = find(r, addr);
    if (e == NULL || e->blocked_until_ms <= now_ms)
        return 0;
    return (e->blocked_until_ms - now_ms + 999) / 1000;
}

int mg__rate_fail(mg_auth_rate_t *r, const char *addr, uint64_t now_ms, unsigned max, uint64_t window_ms,
                  uint64_t block_ms)
{
    if (r->cap == 0)
        return 0;
    mg_auth_rate_entry_t *e = find(r, addr);
    if (e == NULL) {
        if (r->used + 1 > r->cap * 7 / 8)
            compact(r, now_ms, window_ms);
        if (r->used + 1 > r->cap * 7 / 8)
            return 0; /* every slot holds a blocked or active address: do not grow */
        size_t i = hash(addr) % r->cap;
        while (r->slots[i].addr[0] != '\0')
            i = (i + 1) % r->cap;
        e = &r->slots[i];
        memset(e, 0, sizeof *e);
        strncpy(e->addr, addr, sizeof e->addr - 1);
        e->window_start_ms = now_ms;
        r->used++;
    }
    if (now_ms - e->window_start_ms >= window_ms) {
        e->window_start_ms = now_ms;
        e->failures = 0;
    }
    e->last_ms = now_ms;
    if (++e->failures >= max) {
        e->blocked_until_ms = now_ms + block_ms;
        e->failures = 0;
        e->window_start_ms = now_ms;
        return 1;
    }
    return 0;
}
