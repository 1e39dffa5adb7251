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

static void store_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    if (ok)
        mg__config_sessions_check(arg, where, ((mg_sessions_config_t *)dst)->store);
}

static void key_prefix_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    const char *p = ((mg_sessions_config_t *)dst)->key_prefix;
    char q[80];
    if (!ok)
        return;
    size_t n = strlen(p);
    if (n == 0 || n > 64 ||
        strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:_.-{}") != n)
        mg_cfg_errf(c, "%s: '%s' is not valid: use 1 to 64 characters from A-Z a-z 0-9 : _ . - { }", where,
                    mg_cfg_quote(p, q, sizeof q));
}

static void advertise_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    const char *a = ((mg_sessions_config_t *)dst)->advertise;
    char why[160], q[80];
    if (ok && mg__config_listen_check(a, NULL, 0, NULL, why, sizeof why) != 0)
        mg_cfg_errf(c, "%s: '%s' is not host:port: %s", where, mg_cfg_quote(a, q, sizeof q), why);
}

static void secret_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    if (ok && strlen(((mg_sessions_config_t *)dst)->secret) < MIN_SECRET)
        mg_cfg_errf(c, "%s: must be at least %d characters (generate one with: openssl rand -base64 32)",
                    where, MIN_SECRET);
}

/* "migrate": true by default; stored inverted (no_migrate). */
static void migrate_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    int on = 1;
    if (mg_cfg_bool(c, where, v, 0, &on) == 0)
        ((mg_sessions_config_t *)dst)->no_migrate = !on;
}

#define S(f) MG_CFG_AT(mg_sessions_config_t, f)
static const mg_cfg_field_t sessions_fields[] = {
    {"store", MG_CFG_T_STRING, S(store), 0, 0, 0, 0, store_check},
    {"password", MG_CFG_T_STRING, S(password), 0, 0, 0, 0, NULL},
    {"sentinelPassword", MG_CFG_T_STRING, S(sentinel_password), 0, 0, 0, 0, NULL},
    {"keyPrefix", MG_CFG_T_STRING, S(key_prefix), 0, 0, 0, 0, key_prefix_check},
    {"advertise", MG_CFG_T_STRING, S(advertise), 0, 0, 0, 0, advertise_check},
    {"secret", MG_CFG_T_STRING, S(secret), 0, 0, 0, 0, secret_check},
    {"timeoutMs", MG_CFG_T_U64, S(timeout_ms), 0, 100, 60000, 0, NULL},
    {"migrate", MG_CFG_T_NONE, 0, 0, 0, 0, 0, migrate_read},
    MG_CFG_FIELD_END,
};
#undef S
static const mg_cfg_object_t sessions_object = {
    "gateway.sessions",
    sessions_fields,
    "store, password, sentinelPassword, keyPrefix, advertise, secret, timeoutMs, migrate",
    0,
    MG_CFG_SUGGEST,
    0,
    0};

void mg__config_parse_sessions(mg__config_ctx_t *ctx, mg_config_t *cfg, const json_t *obj)
{
    if (mg_cfg_walk(&ctx->rd, &sessions_object, obj, &cfg->sessions, ctx) != 0)
        mg__config_errf(ctx, "gateway.sessions: must be an object, not %s", mg_cfg_kind(obj));
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
