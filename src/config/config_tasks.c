/*
 * config_tasks.c - "gateway.tasks": long tool calls run as tasks (enabled, ttlMs, pollIntervalMs,
 * maxPerPrincipal, maxResultBytes, callTimeoutMs, maxStoredBytes).
 *
 * Same rules as config.c: every problem is reported through mg__config_errf() and the walk goes
 * on. What the values mean at runtime: gateway/tasks.c, docs/tasks.md, docs/configuration.md.
 * Read next: config.c (the caller).
 */
#include "config.h"
#include "config_int.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define SEC 1000ULL
#define MIB (1024ULL * 1024ULL)

static const char *const tasks_keys[] = {
    "enabled",        "ttlMs",         "pollIntervalMs", "maxPerPrincipal",
    "maxResultBytes", "callTimeoutMs", "maxStoredBytes", NULL};

void mg__config_tasks_default(mg_tasks_config_t *t)
{
    t->enabled = 1;
    t->ttl_ms = 3600 * SEC;
    t->poll_interval_ms = 1 * SEC;
    t->max_per_principal = 16;
    t->max_result_bytes = 1 * MIB;
    t->call_timeout_ms = 3600 * SEC;
    t->max_stored_bytes = 256 * MIB;
}

void mg__config_parse_tasks(mg__config_ctx_t *ctx, mg_config_t *cfg, const json_t *obj)
{
    mg_tasks_config_t *t = &cfg->tasks;
    if (!json_is_object(obj)) {
        mg__config_errf(ctx, "gateway.tasks: must be an object, not %s", mg_cfg_kind(obj));
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        uint64_t n;
        char q[80];
        if (strcmp(key, "enabled") == 0) {
            mg_cfg_bool(&ctx->rd, "gateway.tasks.enabled", v, 0, &t->enabled);
        } else if (strcmp(key, "ttlMs") == 0) {
            mg_cfg_uint(&ctx->rd, "gateway.tasks.ttlMs", v, 1 * SEC, 7 * 24 * 3600 * SEC, 0, &t->ttl_ms);
        } else if (strcmp(key, "pollIntervalMs") == 0) {
            mg_cfg_uint(&ctx->rd, "gateway.tasks.pollIntervalMs", v, 10, 600 * SEC, 0, &t->poll_interval_ms);
        } else if (strcmp(key, "maxPerPrincipal") == 0) {
            if (mg_cfg_uint(&ctx->rd, "gateway.tasks.maxPerPrincipal", v, 1, 100000, 0, &n) == 0)
                t->max_per_principal = (unsigned)n;
        } else if (strcmp(key, "maxResultBytes") == 0) {
            if (mg_cfg_uint(&ctx->rd, "gateway.tasks.maxResultBytes", v, 1024, 256 * MIB, 0, &n) == 0)
                t->max_result_bytes = (size_t)n;
        } else if (strcmp(key, "maxStoredBytes") == 0) {
            if (mg_cfg_uint(&ctx->rd, "gateway.tasks.maxStoredBytes", v, 1 * MIB, 64 * 1024 * MIB, 0, &n) ==
                0)
                t->max_stored_bytes = (size_t)n;
        } else if (strcmp(key, "callTimeoutMs") == 0) {
            mg_cfg_uint(&ctx->rd, "gateway.tasks.callTimeoutMs", v, 1 * SEC, 7 * 24 * 3600 * SEC, 0,
                        &t->call_timeout_ms);
        } else {
            const char *near = mg_cfg_suggest(key, tasks_keys);
            mg__config_errf(ctx, "gateway.tasks: unknown key \"%s\"%s%s%s", mg_cfg_quote(key, q, sizeof q),
                            near ? "; did you mean \""
                                 : " (known: enabled, ttlMs, pollIntervalMs, maxPerPrincipal, "
                                   "maxResultBytes, callTimeoutMs, maxStoredBytes)",
                            near ? near : "", near ? "\"?" : "");
        }
    }
}
