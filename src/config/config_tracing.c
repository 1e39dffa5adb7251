/*
 * config_tracing.c - "gateway.tracing": OpenTelemetry traces exported over OTLP/HTTP
 * ({"endpoint": URL, "sampleRatio": 0..1}). Off when absent.
 *
 * Same rules as config.c: every problem is reported through mg__config_errf() and the walk goes
 * on; strings are expanded (${env:...}); the endpoint is never quoted in a message (it may carry
 * credentials). What the values mean at runtime: src/trace/trace.h, docs/operations.md#tracing.
 * Read next: config.c (the caller).
 */
#include "config.h"
#include "config_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void endpoint_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    const char *e = ((mg_tracing_config_t *)dst)->endpoint;
    if (ok && strncasecmp(e, "http://", 7) != 0 && strncasecmp(e, "https://", 8) != 0)
        mg_cfg_errf(c,
                    "%s: must be an http:// or https:// URL (the collector's OTLP/HTTP traces endpoint, "
                    "e.g. http://collector:4318/v1/traces)",
                    where);
}

static void ratio_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    if (!ok)
        mg_cfg_errf(
            c, "%s: must be a number from 0 to 1 (the share of new traces recorded; 1 records every one)",
            where);
}

static const mg_cfg_field_t tracing_fields[] = {
    {"endpoint", MG_CFG_T_STRING, MG_CFG_AT(mg_tracing_config_t, endpoint), 0, 0, 0, 0, endpoint_check},
    {"sampleRatio", MG_CFG_T_NUMBER, MG_CFG_AT(mg_tracing_config_t, sample_ratio), 0, 0, 1, 0, ratio_check},
    MG_CFG_FIELD_END,
};
static const mg_cfg_object_t tracing_object = {
    "gateway.tracing", tracing_fields, "endpoint, sampleRatio", 0, MG_CFG_SUGGEST, 0, 0};

void mg__config_parse_tracing(mg__config_ctx_t *ctx, mg_config_t *cfg, const json_t *obj)
{
    mg_tracing_config_t *t = &cfg->tracing;
    if (!json_is_object(obj)) {
        mg__config_errf(ctx,
                        "gateway.tracing: must be an object ({\"endpoint\": URL, \"sampleRatio\": 0..1}), "
                        "not %s",
                        mg_cfg_kind(obj));
        return;
    }
    t->sample_ratio = 1.0;
    mg_cfg_walk(&ctx->rd, &tracing_object, obj, t, ctx);
    if (t->endpoint == NULL)
        mg__config_errf(ctx,
                        "gateway.tracing: \"endpoint\" is required (the collector's OTLP/HTTP traces URL, "
                        "e.g. http://collector:4318/v1/traces); remove gateway.tracing to turn tracing off");
}

void mg__config_tracing_dispose(mg_tracing_config_t *t)
{
    free(t->endpoint);
    memset(t, 0, sizeof(*t));
}
