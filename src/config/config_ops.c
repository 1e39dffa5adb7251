/*
 * config_ops.c - the operations keys of "gateway": "journal" (the call journal: path, arguments,
 * hmacKey, maxBytes, checkpointEvery, checkpointIntervalMs, queueBytes), "metrics" ({"listen"}:
 * /metrics and /status on their own address) and "watchConfig" (reload on file change).
 *
 * Same rules as config.c: every problem is reported through mg__config_errf() and the walk goes
 * on; the HMAC key is a secret and never appears in a message. What the values do at runtime:
 * obs/journal.h, gateway/status.c, docs/operations.md. Read next: config.c (the caller).
 */
#include "config.h"
#include "config_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_KEY 16
#define MAX_KEY 1024

static void hmac_key_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    const char *k = ((mg_journal_config_t *)dst)->hmac_key;
    if (ok && (strlen(k) < MIN_KEY || strlen(k) > MAX_KEY))
        mg_cfg_errf(
            c,
            "%s: must be %d to %d bytes (generate one with: openssl rand -base64 32 > journal.key, then "
            "\"${file:/path/journal.key}\")",
            where, MIN_KEY, MAX_KEY);
}

static void max_bytes_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    uint64_t n = ((mg_journal_config_t *)dst)->max_bytes;
    if (n > 0 && n < 4096)
        mg_cfg_errf(c, "%s: must be 0 (never rotate) or at least 4096", where);
}

#define J(f) MG_CFG_AT(mg_journal_config_t, f)
static const mg_cfg_field_t journal_fields[] = {
    {"path", MG_CFG_T_STRING, J(path), 0, 0, 0, MG_CFG_NONEMPTY, NULL},
    {"arguments", MG_CFG_T_BOOL, J(arguments), 0, 0, 0, MG_CFG_KIND, NULL},
    {"hmacKey", MG_CFG_T_STRING, J(hmac_key), 0, 0, 0, 0, hmac_key_check},
    {"maxBytes", MG_CFG_T_U64, J(max_bytes), 0, 0, 1ull << 40, 0, max_bytes_check},
    {"checkpointEvery", MG_CFG_T_UNSIGNED, J(checkpoint_every), 0, 1, 1000000, 0, NULL},
    {"checkpointIntervalMs", MG_CFG_T_U64, J(checkpoint_ms), 0, 100, 3600000, 0, NULL},
    {"queueBytes", MG_CFG_T_U64, J(queue_bytes), 0, 65536, 1ull << 32, 0, NULL},
    MG_CFG_FIELD_END,
};
#undef J
static const mg_cfg_object_t journal_object = {
    "gateway.journal", journal_fields, NULL, 0, MG_CFG_SUGGEST, 0, 0};

static void listen_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    const char *l = ((mg_config_t *)dst)->metrics_listen;
    char why[160], q[80];
    if (ok && mg__config_listen_check(l, NULL, 0, NULL, why, sizeof why) != 0)
        mg_cfg_errf(c, "%s: '%s' is not host:port: %s", where, mg_cfg_quote(l, q, sizeof q), why);
}

static const mg_cfg_field_t metrics_fields[] = {
    {"listen", MG_CFG_T_STRING, MG_CFG_AT(mg_config_t, metrics_listen), 0, 0, 0, 0, listen_check},
    MG_CFG_FIELD_END,
};
static const mg_cfg_object_t metrics_object = {
    "gateway.metrics", metrics_fields, NULL, 0, MG_CFG_SUGGEST, 0, 0};

static void parse_journal(mg__config_ctx_t *ctx, mg_journal_config_t *j, const json_t *obj)
{
    if (!json_is_object(obj)) {
        mg__config_errf(ctx,
                        "gateway.journal: must be an object, not %s (e.g. {\"path\": \"/var/log/mcpgate/"
                        "journal.jsonl\", \"hmacKey\": \"${file:/etc/mcpgate/journal.key}\"})",
                        mg_cfg_kind(obj));
        return;
    }
    j->max_bytes = 100ull * 1024 * 1024;
    j->checkpoint_every = 1000;
    j->checkpoint_ms = 10000;
    j->queue_bytes = 16ull * 1024 * 1024;
    mg_cfg_walk(&ctx->rd, &journal_object, obj, j, ctx);
    if (j->path == NULL)
        mg__config_errf(ctx, "gateway.journal: \"path\" is required (the file the journal is written to)");
}

void mg__config_parse_ops(mg__config_ctx_t *ctx, mg_config_t *cfg, const char *key, const json_t *v)
{
    if (strcmp(key, "journal") == 0) {
        parse_journal(ctx, &cfg->journal, v);
    } else if (strcmp(key, "watchConfig") == 0) {
        mg_cfg_bool(&ctx->rd, "gateway.watchConfig", v, MG_CFG_KIND, &cfg->watch_config);
    } else if (strcmp(key, "metrics") == 0) {
        if (mg_cfg_walk(&ctx->rd, &metrics_object, v, cfg, ctx) != 0)
            mg__config_errf(ctx,
                            "gateway.metrics: must be an object, not %s (e.g. {\"listen\": "
                            "\"127.0.0.1:9090\"})",
                            mg_cfg_kind(v));
    }
}

void mg__config_ops_dispose(mg_config_t *cfg)
{
    free(cfg->journal.path);
    if (cfg->journal.hmac_key != NULL) {
        memset(cfg->journal.hmac_key, 0, strlen(cfg->journal.hmac_key));
        free(cfg->journal.hmac_key);
    }
    free(cfg->metrics_listen);
    memset(&cfg->journal, 0, sizeof cfg->journal);
    cfg->metrics_listen = NULL;
}
