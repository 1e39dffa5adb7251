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

static const char *const tracing_keys[] = {"endpoint", "sampleRatio", NULL};

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
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        char q[80];
        if (strcmp(key, "endpoint") == 0) {
            if (mg_cfg_string(&ctx->rd, "gateway.tracing.endpoint", v, 0, &t->endpoint) == 0 &&
                strncasecmp(t->endpoint, "http://", 7) != 0 && strncasecmp(t->endpoint, "https://", 8) != 0)
                mg__config_errf(
                    ctx, "gateway.tracing.endpoint: must be an http:// or https:// URL (the "
                         "collector's OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces)");
        } else if (strcmp(key, "sampleRatio") == 0) {
            if (!json_is_number(v) || json_number_value(v) < 0.0 || json_number_value(v) > 1.0)
                mg__config_errf(ctx,
                                "gateway.tracing.sampleRatio: must be a number from 0 to 1 (the share of "
                                "new traces recorded; 1 records every one)");
            else
                t->sample_ratio = json_number_value(v);
        } else {
            const char *near = mg_cfg_suggest(key, tracing_keys);
            mg__config_errf(ctx, "gateway.tracing: unknown key \"%s\"%s%s%s", mg_cfg_quote(key, q, sizeof q),
                            near ? "; did you mean \"" : " (known: endpoint, sampleRatio)", near ? near : "",
                            near ? "\"?" : "");
        }
    }
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
