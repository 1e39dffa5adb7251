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

static const char *const journal_keys[] = {
    "path",       "arguments", "hmacKey", "maxBytes", "checkpointEvery", "checkpointIntervalMs",
    "queueBytes", NULL};
static const char *const metrics_keys[] = {"listen", NULL};

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
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        uint64_t x;
        if (strcmp(key, "path") == 0) {
            mg_cfg_string(&ctx->rd, "gateway.journal.path", v, MG_CFG_NONEMPTY, &j->path);
        } else if (strcmp(key, "arguments") == 0) {
            mg_cfg_bool(&ctx->rd, "gateway.journal.arguments", v, MG_CFG_KIND, &j->arguments);
        } else if (strcmp(key, "hmacKey") == 0) {
            if (mg_cfg_string(&ctx->rd, "gateway.journal.hmacKey", v, 0, &j->hmac_key) == 0 &&
                (strlen(j->hmac_key) < MIN_KEY || strlen(j->hmac_key) > MAX_KEY))
                mg__config_errf(ctx,
                                "gateway.journal.hmacKey: must be %d to %d bytes (generate one with: openssl "
                                "rand -base64 32 > journal.key, then \"${file:/path/journal.key}\")",
                                MIN_KEY, MAX_KEY);
        } else if (strcmp(key, "maxBytes") == 0) {
            mg_cfg_uint(&ctx->rd, "gateway.journal.maxBytes", v, 0, 1ull << 40, 0, &j->max_bytes);
            if (j->max_bytes > 0 && j->max_bytes < 4096) {
                mg__config_errf(ctx, "gateway.journal.maxBytes: must be 0 (never rotate) or at least 4096");
            }
        } else if (strcmp(key, "checkpointEvery") == 0) {
            if (mg_cfg_uint(&ctx->rd, "gateway.journal.checkpointEvery", v, 1, 1000000, 0, &x) == 0)
                j->checkpoint_every = (unsigned)x;
        } else if (strcmp(key, "checkpointIntervalMs") == 0) {
            mg_cfg_uint(&ctx->rd, "gateway.journal.checkpointIntervalMs", v, 100, 3600000, 0,
                        &j->checkpoint_ms);
        } else if (strcmp(key, "queueBytes") == 0) {
            mg_cfg_uint(&ctx->rd, "gateway.journal.queueBytes", v, 65536, 1ull << 32, 0, &j->queue_bytes);
        } else {
            mg_cfg_unknown_key(&ctx->rd, "gateway.journal", key, journal_keys, 7, 512, MG_CFG_SUGGEST);
        }
    }
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
        if (!json_is_object(v)) {
            mg__config_errf(ctx,
                            "gateway.metrics: must be an object, not %s (e.g. {\"listen\": "
                            "\"127.0.0.1:9090\"})",
                            mg_cfg_kind(v));
            return;
        }
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            char why[160], q[80];
            if (strcmp(k, "listen") == 0) {
                if (mg_cfg_string(&ctx->rd, "gateway.metrics.listen", x, 0, &cfg->metrics_listen) == 0 &&
                    mg__config_listen_check(cfg->metrics_listen, NULL, 0, NULL, why, sizeof why) != 0)
                    mg__config_errf(ctx, "gateway.metrics.listen: '%s' is not host:port: %s",
                                    mg_cfg_quote(cfg->metrics_listen, q, sizeof q), why);
            } else {
                mg_cfg_unknown_key(&ctx->rd, "gateway.metrics", k, metrics_keys, 1, 512, MG_CFG_SUGGEST);
            }
        }
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
