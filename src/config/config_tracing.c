/*
 * config_tracing.c - "gateway.tracing": OpenTelemetry traces exported over OTLP/HTTP
 * ({"endpoint": URL, "sampleRatio": 0..1, "protocol": "http/json" | "http/protobuf",
 * "headers": {"Name": "value with ${env:X} / ${file:/path}"}}). Off when absent. Header values are
 * secrets (a collector's API key): expanded, never quoted in a message.
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

static void protocol_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    mg_tracing_config_t *t = dst;
    const char *p = json_string_value(v);
    if (p != NULL && strcmp(p, "http/json") == 0)
        t->protobuf = 0;
    else if (p != NULL && strcmp(p, "http/protobuf") == 0)
        t->protobuf = 1;
    else
        mg_cfg_errf(c,
                    "%s: must be \"http/json\" (the default) or \"http/protobuf\" (OTLP/HTTP binary, what "
                    "most collectors expect on port 4318)",
                    where);
}

static void headers_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    static const char *const reserved[] = {"content-type", "content-length", "host", "transfer-encoding",
                                           "connection",   "user-agent",     NULL};
    static const mg__headers_rules_t rules = {
        .reserved = reserved,
        .taken = "is set by the exporter itself; remove it",
        .example = "{\"Authorization\": \"Bearer ${file:/run/secrets/otlp}\"}",
        .max = 16, /* MG_TRACE_HEADERS_MAX (trace.h) */
    };
    mg_tracing_config_t *t = dst;
    mg__config_headers(arg, "gateway.tracing.headers", v, 0, &rules, &t->headers, &t->nheaders);
}

static const mg_cfg_field_t tracing_fields[] = {
    {"endpoint", MG_CFG_T_STRING, MG_CFG_AT(mg_tracing_config_t, endpoint), 0, 0, 0, 0, endpoint_check},
    {"sampleRatio", MG_CFG_T_NUMBER, MG_CFG_AT(mg_tracing_config_t, sample_ratio), 0, 0, 1, 0, ratio_check},
    {"protocol", MG_CFG_T_NONE, 0, 0, 0, 0, 0, protocol_read},
    {"headers", MG_CFG_T_NONE, 0, 0, 0, 0, 0, headers_read},
    MG_CFG_FIELD_END,
};
static const mg_cfg_object_t tracing_object = {
    "gateway.tracing", tracing_fields, "endpoint, sampleRatio, protocol, headers", 0, MG_CFG_SUGGEST, 0, 0};

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
    for (size_t i = 0; i < t->nheaders; i++) {
        free(t->headers[i].key);
        if (t->headers[i].value != NULL)
            memset(t->headers[i].value, 0, strlen(t->headers[i].value));
        free(t->headers[i].value);
        free(t->headers[i].source);
    }
    free(t->headers);
    free(t->endpoint);
    memset(t, 0, sizeof(*t));
}
