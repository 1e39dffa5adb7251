/*
 * config_sessions.c - "gateway.sessions": where session records live and how replicas reach each
 * other (store, password, sentinelPassword, keyPrefix, advertise, secret, timeoutMs, migrate).
 *
 * Same rules as config.c: every problem is reported through mg__config_errf() and the walk goes
 * on; strings are expanded (${env:...}, ${file:...}); secrets never appear in a message. What the
 * values mean at runtime: src/session/shared.h, redis.h, pg.h, gateway/cluster_int.h, docs/configuration.md.
 * Read next: config.c (the caller).
 */
#include "config.h"
#include "config_int.h"
#include "../session/shared.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_SECRET 16

static const char *const sessions_keys[] = {"store",     "password",  "sentinelPassword",
                                            "keyPrefix", "advertise", "secret",
                                            "timeoutMs", "migrate",   NULL};

/* Expanded string value of gateway.sessions.<key> into *dst; returns 0 or -1 (reported). */
static int str(mg__config_ctx_t *ctx, const char *key, const json_t *v, char **dst)
{
    char where[64];
    snprintf(where, sizeof where, "gateway.sessions.%s", key);
    return mg_cfg_string(&ctx->rd, where, v, 0, dst);
}

int mg__config_sessions_check(mg__config_ctx_t *ctx, const char *where, const char *spec)
{
    char why[300];
    if (mg_session_store_check(spec, why, sizeof why) != 0) {
        /* the spec may carry a password: never quote it */
        mg__config_errf(ctx, "%s: not a valid session store: %s", where, why);
        return -1;
    }
    return 0;
}

void mg__config_parse_sessions(mg__config_ctx_t *ctx, mg_config_t *cfg, const json_t *obj)
{
    mg_sessions_config_t *s = &cfg->sessions;
    if (!json_is_object(obj)) {
        mg__config_errf(ctx, "gateway.sessions: must be an object, not %s", mg_cfg_kind(obj));
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        char why[160], q[80];
        if (strcmp(key, "store") == 0) {
            if (str(ctx, key, v, &s->store) == 0)
                mg__config_sessions_check(ctx, "gateway.sessions.store", s->store);
        } else if (strcmp(key, "password") == 0) {
            str(ctx, key, v, &s->password);
        } else if (strcmp(key, "sentinelPassword") == 0) {
            str(ctx, key, v, &s->sentinel_password);
        } else if (strcmp(key, "keyPrefix") == 0) {
            if (str(ctx, key, v, &s->key_prefix) == 0) {
                size_t n = strlen(s->key_prefix);
                if (n == 0 || n > 64 ||
                    strspn(s->key_prefix,
                           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:_.-{}") != n)
                    mg__config_errf(ctx,
                                    "gateway.sessions.keyPrefix: '%s' is not valid: use 1 to 64 characters "
                                    "from A-Z a-z 0-9 : _ . - { }",
                                    mg_cfg_quote(s->key_prefix, q, sizeof q));
            }
        } else if (strcmp(key, "advertise") == 0) {
            if (str(ctx, key, v, &s->advertise) == 0 &&
                mg__config_listen_check(s->advertise, NULL, 0, NULL, why, sizeof why) != 0)
                mg__config_errf(ctx, "gateway.sessions.advertise: '%s' is not host:port: %s",
                                mg_cfg_quote(s->advertise, q, sizeof q), why);
        } else if (strcmp(key, "secret") == 0) {
            if (str(ctx, key, v, &s->secret) == 0 && strlen(s->secret) < MIN_SECRET)
                mg__config_errf(ctx,
                                "gateway.sessions.secret: must be at least %d characters (generate one with: "
                                "openssl rand -base64 32)",
                                MIN_SECRET);
        } else if (strcmp(key, "timeoutMs") == 0) {
            mg_cfg_uint(&ctx->rd, "gateway.sessions.timeoutMs", v, 100, 60000, 0, &s->timeout_ms);
        } else if (strcmp(key, "migrate") == 0) {
            int on = 1;
            if (mg_cfg_bool(&ctx->rd, "gateway.sessions.migrate", v, 0, &on) == 0)
                s->no_migrate = !on;
        } else {
            const char *near = mg_cfg_suggest(key, sessions_keys);
            mg__config_errf(ctx, "gateway.sessions: unknown key \"%s\"%s%s%s", mg_cfg_quote(key, q, sizeof q),
                            near ? "; did you mean \""
                                 : " (known: store, password, sentinelPassword, keyPrefix, "
                                   "advertise, secret, timeoutMs, migrate)",
                            near ? near : "", near ? "\"?" : "");
        }
    }
}

void mg__config_sessions_dispose(mg_sessions_config_t *s)
{
    free(s->store);
    free(s->password);
    free(s->sentinel_password);
    free(s->key_prefix);
    free(s->advertise);
    free(s->secret);
    memset(s, 0, sizeof(*s));
}
