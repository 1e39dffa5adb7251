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

#define T(f) MG_CFG_AT(mg_tasks_config_t, f)
static const mg_cfg_field_t tasks_fields[] = {
    {"enabled", MG_CFG_T_BOOL, T(enabled), 0, 0, 0, 0, NULL},
    {"ttlMs", MG_CFG_T_U64, T(ttl_ms), 0, 1 * SEC, 7 * 24 * 3600 * SEC, 0, NULL},
    {"pollIntervalMs", MG_CFG_T_U64, T(poll_interval_ms), 0, 10, 600 * SEC, 0, NULL},
    {"maxPerPrincipal", MG_CFG_T_UNSIGNED, T(max_per_principal), 0, 1, 100000, 0, NULL},
    {"maxResultBytes", MG_CFG_T_SIZE, T(max_result_bytes), 0, 1024, 256 * MIB, 0, NULL},
    {"callTimeoutMs", MG_CFG_T_U64, T(call_timeout_ms), 0, 1 * SEC, 7 * 24 * 3600 * SEC, 0, NULL},
    {"maxStoredBytes", MG_CFG_T_SIZE, T(max_stored_bytes), 0, 1 * MIB, 64 * 1024 * MIB, 0, NULL},
    MG_CFG_FIELD_END,
};
#undef T
static const mg_cfg_object_t tasks_object = {
    "gateway.tasks",
    tasks_fields,
    "enabled, ttlMs, pollIntervalMs, maxPerPrincipal, maxResultBytes, callTimeoutMs, maxStoredBytes",
    0,
    MG_CFG_SUGGEST,
    0,
    0};

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
    if (mg_cfg_walk(&ctx->rd, &tasks_object, obj, &cfg->tasks, ctx) != 0)
        mg__config_errf(ctx, "gateway.tasks: must be an object, not %s", mg_cfg_kind(obj));
}
