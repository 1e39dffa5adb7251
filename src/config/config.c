/*
 * config.c - mg_config_parse()/mg_config_load(): walks the config file's JSON and fills mg_config_t.
 *
 * Order: JSONC pre-pass, jansson parse, top-level keys, the "gateway" object (first: the limits and
 * the namespace separator are needed to check servers), every server in file order, then checks
 * across servers. Every problem is reported and the walk goes on; the result is all or nothing.
 * The key tables below are the one list of accepted keys; docs/configuration.md mirrors them.
 * Read next: config_expand.c (${...} expansion), config_check.c (validators).
 */
#include "config.h"
#include "../common/seal.h"
#include "auth_config.h"
#include "config_int.h"
#include "envfile.h"
#include "policy_config.h"
#include "sandbox_config.h"
#include "remote_config.h"

#include "../common/codec.h"
#include "../common/err.h"
#include "../common/log.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <unistd.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KIB  1024ull
#define MIB  (1024ull * 1024)
#define GIB  (1024ull * 1024 * 1024)
#define SEC  1000ull
#define MIN  (60ull * 1000)
#define HOUR (60ull * MIN)
#define DAY  (24ull * HOUR)

const char *mg_isolation_name(mg_isolation_t iso)
{
    return iso == MG_ISOLATION_SESSION ? "session" : iso == MG_ISOLATION_TENANT ? "tenant" : "shared";
}

static const char embedded_json[] =
    "{\"mcpServers\": {\"testserver\": {\"command\": \"${self_dir}/mcpgate-testserver\"}}}";

/* ---------------------------------------------------------------- key tables */

static const char *const top_keys[] = {"mcpServers", "servers", "gateway", NULL};
/* Other programs' top-level keys found in files we read as they are: VS Code (inputs, $schema),
 * Claude Desktop (globalShortcut, preferences). */
static const char *const top_ignored[] = {"inputs", "$schema", "globalShortcut", "preferences", NULL};

static const char *const gateway_keys[] = {"listen",
                                           "allowUnauthenticated",
                                           "allowedOrigins",
                                           "allowedHosts",
                                           "logLevel",
                                           "namespaceSeparator",
                                           "auth",
                                           "limits",
                                           "requestStateKey",
                                           "tools",
                                           "sessions",
                                           "tasks",
                                           "pinning",
                                           "lockFile",
                                           "scan",
                                           "cors",
                                           "rateLimits",
                                           "audit",
                                           "legacySse",
                                           "tracing",
                                           "journal",
                                           "metrics",
                                           "watchConfig",
                                           "egress",
                                           NULL}; /* policy keys: policy_config.c; journal, metrics,
                                                     watchConfig: config_ops.c */

/* Server keys: ours first, then client keys we accept and ignore ("type" only when "stdio"). */
static const char *const server_keys[] = {
    "command",     "args",        "env",         "cwd",     "disabled", "instances",  "isolation",
    "timeoutMs",   "tools",       "pinning",     "scan",    "sandbox",  "type",       "transportType",
    "description", "alwaysAllow", "autoApprove", "timeout", "trust",    "watchPaths", NULL};
static const size_t server_ignored_from = 12; /* index of "type" */
static const char *const server_remote_keys[] = {"url", "serverUrl", "httpUrl", NULL};
static const char *const server_tool_filters[] = {"includeTools", "excludeTools", "disabledTools", NULL};

typedef enum { LIM_SIZE, LIM_UNSIGNED, LIM_U64 } lim_kind_t;

static const struct limit_spec {
    const char *key;
    size_t off;
    lim_kind_t kind;
    uint64_t lo, hi;
    const char *range; /* lo..hi in words, for messages */
} limit_specs[] = {
    {"maxBodyBytes", offsetof(mg_limits_t, max_body_bytes), LIM_SIZE, KIB, GIB, "1 KiB..1 GiB"},
    {"maxJsonDepth", offsetof(mg_limits_t, max_json_depth), LIM_UNSIGNED, 2, 1000, "2..1000"},
    {"maxBatchItems", offsetof(mg_limits_t, max_batch_items), LIM_UNSIGNED, 1, 100000, "1..100000"},
    {"maxJsonValues", offsetof(mg_limits_t, max_json_values), LIM_UNSIGNED, 100, 100000000, "100..100000000"},
    {"maxSessions", offsetof(mg_limits_t, max_sessions), LIM_UNSIGNED, 1, 10000000, "1..10000000"},
    {"sessionIdleTtlMs", offsetof(mg_limits_t, session_ttl_ms), LIM_U64, SEC, 30 * DAY, "1 s..30 days"},
    {"maxInflightPerSession", offsetof(mg_limits_t, max_inflight_per_session), LIM_UNSIGNED, 1, 100000,
     "1..100000"},
    {"maxInflightPerUpstream", offsetof(mg_limits_t, max_inflight_per_upstream), LIM_UNSIGNED, 1, 1000000,
     "1..1000000"},
    {"sseReplayEvents", offsetof(mg_limits_t, sse_replay_events), LIM_UNSIGNED, 0, 100000, "0..100000"},
    {"sseReplayBytes", offsetof(mg_limits_t, sse_replay_bytes), LIM_SIZE, 0, GIB, "0..1 GiB"},
    {"maxUpstreamLineBytes", offsetof(mg_limits_t, max_line_bytes), LIM_SIZE, KIB, GIB, "1 KiB..1 GiB"},
    {"requestTimeoutMs", offsetof(mg_limits_t, request_timeout_ms), LIM_U64, 100, DAY, "100 ms..24 h"},
    {"maxRequestMs", offsetof(mg_limits_t, max_request_ms), LIM_U64, 100, DAY, "100 ms..24 h"},
    {"shutdownGraceMs", offsetof(mg_limits_t, shutdown_grace_ms), LIM_U64, 0, 10 * MIN, "0..10 min"},
    {"httpIdleTimeoutMs", offsetof(mg_limits_t, http_idle_timeout_ms), LIM_U64, 100, 10 * MIN,
     "100 ms..10 min"},
};
#define NLIMITS (sizeof limit_specs / sizeof limit_specs[0])

#define SERVER_TIMEOUT_MIN   100
#define SERVER_TIMEOUT_MAX   DAY
#define SERVER_INSTANCES_MAX 64

void mg_limits_default(mg_limits_t *l)
{
    l->max_body_bytes = 4 * MIB;
    l->max_json_depth = 64;
    l->max_batch_items = 100;
    l->max_json_values = 100000;
    l->max_sessions = 10000;
    l->session_ttl_ms = 30 * MIN;
    l->max_inflight_per_session = 64;
    l->max_inflight_per_upstream = 32768;
    l->sse_replay_events = 64;
    l->sse_replay_bytes = 1 * MIB;
    l->max_line_bytes = 16 * MIB;
    l->request_timeout_ms = 60 * SEC;
    l->max_request_ms = 10 * MIN;
    l->shutdown_grace_ms = 10 * SEC;
    l->http_idle_timeout_ms = 10 * SEC;
}

const char *mg_config_embedded_json(void)
{
    return embedded_json;
}

/* ---------------------------------------------------------------- small helpers */

static int in_list(const char *key, const char *const *list)
{
    for (size_t i = 0; list[i] != NULL; i++) {
        if (strcmp(key, list[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static size_t list_len(const char *const *l)
{
    size_t n = 0;
    while (l[n] != NULL) {
        n++;
    }
    return n;
}

/* The typed readers (common/cfgval.h) on this parse's sink. */
#define RD (&ctx->rd)

/* "unknown key" with the nearest known key, or the first nlisted known keys when none is near. */
static void unknown_key(mg__config_ctx_t *ctx, const char *where, const char *key, const char *const *known,
                        size_t nlisted)
{
    mg_cfg_unknown_key(RD, where, key, known, nlisted, 512, MG_CFG_SUGGEST);
}

/* ---------------------------------------------------------------- gateway */

static const mg_cfg_field_t audit_fields[] = {
    {"trustedPublishers", MG_CFG_T_STRINGS, MG_CFG_AT(mg_config_t, audit_publishers),
     MG_CFG_AT(mg_config_t, naudit_publishers), 0, 0, MG_CFG_HINT, NULL},
    MG_CFG_FIELD_END,
};
static const mg_cfg_object_t audit_object = {"gateway.audit", audit_fields, NULL, 1, MG_CFG_SUGGEST, 0, 0};

static void parse_limits(mg__config_ctx_t *ctx, mg_limits_t *l, const json_t *obj)
{
    if (!json_is_object(obj)) {
        mg__config_errf(ctx, "gateway.limits: must be an object, not %s", mg_cfg_kind(obj));
        return;
    }
    const char *names[NLIMITS + 1];
    for (size_t i = 0; i < NLIMITS; i++) {
        names[i] = limit_specs[i].key;
    }
    names[NLIMITS] = NULL;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        const struct limit_spec *spec = NULL;
        for (size_t i = 0; i < NLIMITS; i++) {
            if (strcmp(key, limit_specs[i].key) == 0) {
                spec = &limit_specs[i];
            }
        }
        if (spec == NULL) {
            unknown_key(ctx, "gateway.limits", key, names, NLIMITS);
            continue;
        }
        char where[96];
        snprintf(where, sizeof where, "gateway.limits.%s", spec->key);
        uint64_t x;
        if (mg_cfg_uint_range(RD, where, v, spec->lo, spec->hi, spec->range, &x) != 0) {
            continue;
        }
        char *field = (char *)l + spec->off;
        switch (spec->kind) {
        case LIM_SIZE:
            *(size_t *)(void *)field = (size_t)x;
            break;
        case LIM_UNSIGNED:
            *(unsigned *)(void *)field = (unsigned)x;
            break;
        case LIM_U64:
            *(uint64_t *)(void *)field = x;
            break;
        }
    }
    if (l->max_request_ms < l->request_timeout_ms) {
        mg__config_errf(ctx,
                        "gateway.limits: maxRequestMs (%" PRIu64 ") is below requestTimeoutMs (%" PRIu64
                        "); the hard cap must be at least the idle timeout",
                        l->max_request_ms, l->request_timeout_ms);
    }
}

/* gateway.auth is parsed by auth_config.c through these two adapters. */
static void auth_err(void *ctx, const char *msg)
{
    mg__config_errf(ctx, "%s", msg);
}

static int auth_expand(void *ctx, const char *in, const char *where, char **out)
{
    return mg__config_expand(ctx, in, where, 0, out, NULL);
}

/* The policy keys (pinning, scan, cors, rateLimits, sandbox) are parsed by policy_config.c. */
static void policy_err(void *ctx, const char *msg)
{
    mg__config_errf(ctx, "%s", msg);
}

static int policy_expand(void *ctx, const char *in, const char *where, int lenient, char **out)
{
    return mg__config_expand(ctx, in, where, lenient, out, NULL);
}

/* What a message may show of a string value: the value when the file wrote it literally, else the
 * text as written ("${env:BIND}"), never what a reference expanded to (fuzz/fuzz_config.c found
 * gateway.listen echoing the value of ${env:...} and ${file:...}). */
static const char *shown(const char *expanded, const json_t *raw)
{
    const char *r = json_string_value(raw);
    return r != NULL && strstr(r, "${") != NULL ? r : expanded;
}

/* shown() for entry i of the n strings get_string_array() kept from the JSON array arr. */
static const char *shown_entry(const char *s, const json_t *arr, size_t i, size_t n)
{
    size_t strings = 0, size = json_array_size(arr);
    for (size_t j = 0; j < size; j++) {
        const char *r = json_string_value(json_array_get(arr, j));
        if (r != NULL && strstr(r, "${") == NULL && strcmp(r, s) == 0)
            return s; /* written literally in the file */
        strings += r != NULL;
    }
    for (size_t j = 0, k = 0; strings == n && j < size; j++) { /* no entry failed: the i-th string */
        const json_t *item = json_array_get(arr, j);
        if (json_is_string(item) && k++ == i)
            return shown(s, item);
    }
    return "(an entry)";
}

static void parse_gateway(mg__config_ctx_t *ctx, mg_config_t *cfg, const json_t *gw)
{
    mg_policy_config_ops_t pops = {ctx, policy_err, policy_expand};
    char q[80], why[160];
    if (!json_is_object(gw)) {
        mg__config_errf(ctx, "gateway: must be an object, not %s", mg_cfg_kind(gw));
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)gw, key, v)
    {
        if (strcmp(key, "listen") == 0) {
            if (mg_cfg_string(RD, "gateway.listen", v, 0, &cfg->listen) == 0 &&
                mg__config_listen_check(cfg->listen, NULL, 0, NULL, why, sizeof why) != 0) {
                mg__config_errf(ctx, "gateway.listen: '%s' is not host:port: %s",
                                mg_cfg_quote(shown(cfg->listen, v), q, sizeof q), why);
            }
        } else if (strcmp(key, "legacySse") == 0) {
            mg_cfg_bool(RD, "gateway.legacySse", v, MG_CFG_KIND, &cfg->legacy_sse);
        } else if (strcmp(key, "allowUnauthenticated") == 0) {
            mg_cfg_bool(RD, "gateway.allowUnauthenticated", v, MG_CFG_KIND, &cfg->allow_unauthenticated);
        } else if (strcmp(key, "allowedOrigins") == 0 || strcmp(key, "allowedHosts") == 0) {
            int origins = key[7] == 'O';
            char where[48];
            snprintf(where, sizeof where, "gateway.%s", key);
            char ***vec = origins ? &cfg->allowed_origins : &cfg->allowed_hosts;
            size_t *n = origins ? &cfg->nallowed_origins : &cfg->nallowed_hosts;
            mg_cfg_string_array(RD, where, v, MG_CFG_HINT, vec, n);
            for (size_t i = 0; i < *n; i++) {
                const char *s = (*vec)[i];
                int bad = origins ? mg__config_origin_check(s, why, sizeof why)
                                  : mg__config_host_check(s, why, sizeof why);
                if (bad) {
                    mg__config_errf(ctx, "%s: '%s' is not valid: %s", where,
                                    mg_cfg_quote(shown_entry(s, v, i, *n), q, sizeof q), why);
                }
            }
        } else if (strcmp(key, "audit") == 0) { /* `mcpgate audit --config` (src/audit/) */
            if (mg_cfg_walk(RD, &audit_object, v, cfg, ctx) != 0)
                mg__config_errf(ctx, "gateway.audit: must be an object like {\"trustedPublishers\": "
                                     "[\"@modelcontextprotocol/\"]}");
        } else if (strcmp(key, "logLevel") == 0) {
            mg_log_level_t lvl;
            if (mg_cfg_string(RD, "gateway.logLevel", v, 0, &cfg->log_level) == 0 &&
                mg_log_level_parse(cfg->log_level, &lvl) != 0) {
                mg__config_errf(ctx, "gateway.logLevel: '%s' is not one of debug, info, warn, error",
                                mg_cfg_quote(shown(cfg->log_level, v), q, sizeof q));
            }
        } else if (strcmp(key, "namespaceSeparator") == 0) {
            if (mg_cfg_string(RD, "gateway.namespaceSeparator", v, 0, &cfg->namespace_separator) == 0) {
                const char *s = cfg->namespace_separator;
                size_t len = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
                if (s[0] == '\0' || s[len] != '\0' || len > MG__CONFIG_MAX_SEPARATOR) {
                    mg__config_errf(
                        ctx,
                        "gateway.namespaceSeparator: '%s' is not valid: use 1 to %d characters from "
                        "A-Z a-z 0-9 _ . - (it joins server and tool names, e.g. github__create_issue)",
                        mg_cfg_quote(shown(s, v), q, sizeof q), MG__CONFIG_MAX_SEPARATOR);
                }
            }
        } else if (strcmp(key, "requestStateKey") == 0) {
            unsigned char k[MG_SEAL_KEY_BYTES];
            if (mg_cfg_string(RD, "gateway.requestStateKey", v, 0, &cfg->request_state_key) == 0 &&
                mg_seal_key_parse(cfg->request_state_key, k) != 0) {
                /* never echo the value: it is a secret */
                mg__config_errf(ctx, "gateway.requestStateKey: must be 32 bytes written as 64 hex digits or "
                                     "base64; generate one with: openssl rand -base64 32");
            }
        } else if (strcmp(key, "auth") == 0) {
            mg_auth_config_ops_t ops = {ctx, auth_err, auth_expand};
            mg_auth_config_free(cfg->auth);
            cfg->auth = mg_auth_config_parse(v, &ops);
            cfg->auth_configured = cfg->auth != NULL;
        } else if (strcmp(key, "limits") == 0) {
            parse_limits(ctx, &cfg->limits, v);
        } else if (strcmp(key, "tools") == 0) {
            mg__config_parse_tools(ctx, cfg, v);
        } else if (strcmp(key, "sessions") == 0) {
            mg__config_parse_sessions(ctx, cfg, v);
        } else if (strcmp(key, "tracing") == 0) {
            mg__config_parse_tracing(ctx, cfg, v);
        } else if (strcmp(key, "journal") == 0 || strcmp(key, "metrics") == 0 ||
                   strcmp(key, "watchConfig") == 0) {
            mg__config_parse_ops(ctx, cfg, key, v);
        } else if (strcmp(key, "tasks") == 0) {
            mg__config_parse_tasks(ctx, cfg, v);
        } else if (strcmp(key, "egress") == 0) {
            mg__config_parse_egress(ctx, cfg, v);
        } else if (mg_policy_config_gateway_key(&cfg->policy, key, v, &pops)) {
            /* pinning, lockFile, scan, cors, rateLimits */
        } else {
            unknown_key(ctx, "gateway", key, gateway_keys, list_len(gateway_keys));
        }
    }
}

/* ---------------------------------------------------------------- servers */

static void parse_env(mg__config_ctx_t *ctx, mg_server_config_t *s, const char *sw, const json_t *env,
                      int lenient)
{
    char q[80], where[192];
    if (!json_is_object(env)) {
        mg__config_errf(ctx, "%s: env: must be an object of NAME: \"value\" strings, not %s", sw,
                        mg_cfg_kind(env));
        return;
    }
    s->env = calloc(json_object_size(env) + 1, sizeof *s->env);
    if (s->env == NULL) {
        ctx->nomem = 1;
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)env, key, v)
    {
        mg_cfg_quote(key, q, sizeof q);
        snprintf(where, sizeof where, "%s: env %s", sw, q);
        if (key[0] == '\0' || strchr(key, '=') != NULL) {
            mg__config_errf(ctx, "%s: env \"%s\": a variable name must be non-empty and must not contain '='",
                            sw, q);
            continue;
        }
        if (!json_is_string(v)) {
            const char *hint = json_is_null(v) ? " (remove the key or give it a value)"
                               : json_is_number(v) || json_is_boolean(v) ? " (put the value in quotes)"
                                                                         : "";
            mg__config_errf(ctx, "%s: must be a string, not %s%s", where, mg_cfg_kind(v), hint);
            continue;
        }
        if (json_string_length(v) == 0 && !lenient) {
            mg__config_errf(
                ctx,
                "%s: the value is an empty string: remove the key or give it a value (mcpgate never "
                "starts a server with an empty credential)",
                where);
            continue;
        }
        mg_kv_t *kv = &s->env[s->nenv];
        kv->key = mg__config_strdup(ctx, key);
        if (kv->key == NULL) {
            continue;
        }
        s->nenv++;
        if (mg__config_expand(ctx, json_string_value(v), where, lenient, &kv->value, &kv->source) != 0) {
            continue;
        }
    }
}

/* The entry describes a remote (HTTP/SSE) server: returns the key that says so, else NULL. */
static const char *remote_marker(const json_t *obj)
{
    for (size_t i = 0; server_remote_keys[i] != NULL; i++) {
        if (json_object_get(obj, server_remote_keys[i]) != NULL) {
            return server_remote_keys[i];
        }
    }
    static const char *const type_keys[] = {"type", "transportType", NULL};
    for (size_t i = 0; type_keys[i] != NULL; i++) {
        const json_t *t = json_object_get(obj, type_keys[i]);
        if (json_is_string(t) && strcmp(json_string_value(t), "stdio") != 0) {
            return type_keys[i];
        }
    }
    return NULL;
}

/* Parses one mcpServers entry into s (s->name already set). Returns 1 when it is disabled. */
static int parse_server(mg__config_ctx_t *ctx, const mg_config_t *cfg, mg_server_config_t *s,
                        const json_t *obj)
{
    char q[80], sw[96], where[192];
    snprintf(sw, sizeof sw, "server '%s'", mg_cfg_quote(s->name, q, sizeof q));
    s->instances = 1;
    s->isolation = MG_ISOLATION_SHARED;

    if (!mg__config_name_ok(s->name)) {
        mg__config_errf(ctx,
                        "%s: a server name must be 1 to %d characters from A-Z a-z 0-9 _ . - (names become "
                        "tool-name prefixes, e.g. github__create_issue, and clients reject other characters)",
                        sw, MG__CONFIG_MAX_NAME);
    } else if (cfg->namespace_separator != NULL && cfg->namespace_separator[0] != '\0' &&
               strstr(s->name, cfg->namespace_separator) != NULL) {
        mg__config_errf(
            ctx,
            "%s: the name contains the namespace separator '%s', so its tool names could not be split "
            "back into server and tool: rename it or change gateway.namespaceSeparator",
            sw, cfg->namespace_separator);
    }
    if (!json_is_object(obj)) {
        mg__config_errf(ctx, "%s: must be an object like {\"command\": \"npx\", \"args\": [...]}, not %s", sw,
                        mg_cfg_kind(obj));
        return 0;
    }
    const json_t *d = json_object_get(obj, "disabled");
    if (d != NULL) {
        char dw[160];
        snprintf(dw, sizeof dw, "%s: disabled", sw);
        mg_cfg_bool(RD, dw, d, MG_CFG_KIND, &s->disabled);
    }
    /* a remote server (url & co., remote_config.c): its own keys are read after the common ones */
    const char *remote = remote_marker(obj);
    int lenient = s->disabled;
    int have_command = 0;
    mg_policy_config_ops_t pops = {ctx, policy_err, policy_expand};
    uint64_t x;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        snprintf(where, sizeof where, "%s: %s", sw, mg_cfg_quote(key, q, sizeof q));
        if (remote != NULL && mg__config_remote_key(key)) {
            continue; /* mg__config_parse_remote() below */
        }
        if (strcmp(key, "command") == 0) {
            have_command = 1;
            if (json_is_string(v) && json_string_length(v) == 0) {
                mg__config_errf(ctx, "%s: is empty: give the executable to run, e.g. \"npx\" or /usr/bin/foo",
                                where);
            } else {
                mg_cfg_string(RD, where, v, lenient ? MG_CFG_LENIENT : 0, &s->command);
            }
        } else if (strcmp(key, "args") == 0) {
            mg_cfg_string_array(RD, where, v, MG_CFG_HINT | (lenient ? MG_CFG_LENIENT : 0), &s->args,
                                &s->nargs);
        } else if (strcmp(key, "env") == 0) {
            parse_env(ctx, s, sw, v, lenient);
        } else if (strcmp(key, "cwd") == 0) {
            if (json_is_string(v) && json_string_length(v) == 0) {
                mg__config_errf(ctx, "%s: is empty: remove it to run in the gateway's working directory",
                                where);
            } else {
                mg_cfg_string(RD, where, v, lenient ? MG_CFG_LENIENT : 0, &s->cwd);
            }
        } else if (strcmp(key, "disabled") == 0) {
            /* read above: it decides how strictly the other values are checked */
        } else if (strcmp(key, "instances") == 0) {
            if (mg_cfg_uint_range(RD, where, v, 1, SERVER_INSTANCES_MAX, NULL, &x) == 0) {
                s->instances = (unsigned)x;
            }
        } else if (strcmp(key, "isolation") == 0) {
            const char *iso = json_string_value(v);
            if (iso != NULL && strcmp(iso, "shared") == 0) {
                s->isolation = MG_ISOLATION_SHARED;
            } else if (iso != NULL && strcmp(iso, "session") == 0) {
                s->isolation = MG_ISOLATION_SESSION;
            } else if (iso != NULL && strcmp(iso, "tenant") == 0) {
                s->isolation = MG_ISOLATION_TENANT;
            } else {
                mg__config_errf(ctx,
                                "%s: must be \"shared\" (one pool for every client), \"tenant\" (one pool "
                                "per tenant of gateway.auth) or \"session\" (one child per client session)",
                                where);
            }
        } else if (strcmp(key, "timeoutMs") == 0) {
            if (mg_cfg_uint_range(RD, where, v, SERVER_TIMEOUT_MIN, SERVER_TIMEOUT_MAX, "100 ms..24 h", &x) ==
                0) {
                s->request_timeout_ms = x;
            }
        } else if (strcmp(key, "type") == 0 || strcmp(key, "transportType") == 0) {
            if (!json_is_string(v)) { /* a non-"stdio" string was caught by remote_marker() */
                mg__config_errf(ctx, "%s: must be \"stdio\", not %s", where, mg_cfg_kind(v));
            }
        } else if (in_list(key, server_keys + server_ignored_from)) {
            /* a client-side setting (auto-approval, description...): nothing for a gateway to do */
        } else if (strcmp(key, "envFile") == 0) {
            mg__config_errf(
                ctx,
                "%s: is not supported: list the variables under \"env\" instead (use ${file:/path} for "
                "secrets), so that no server starts without its credentials",
                where);
        } else if (strcmp(key, "tools") == 0 || in_list(key, server_tool_filters)) {
            mg__config_parse_server_tools(ctx, sw, key, v, &s->tools);
        } else if (mg_policy_config_server_key(s, sw, key, v, lenient, &pops)) {
            /* pinning, scan, sandbox */
        } else {
            unknown_key(ctx, sw, key, server_keys, server_ignored_from);
        }
    }
    if (remote != NULL) {
        mg__config_parse_remote(ctx, s, sw, obj, lenient);
    } else if (!have_command) {
        mg__config_errf(ctx, "%s: command is missing: give the executable to run, e.g. \"command\": \"npx\"",
                        sw);
    }
    if (s->args == NULL) {
        s->args = calloc(1, sizeof *s->args);
        if (s->args == NULL) {
            ctx->nomem = 1;
        }
    }
    if (s->isolation == MG_ISOLATION_SESSION && s->instances > 1) {
        mg__config_errf(
            ctx,
            "%s: instances %u cannot be combined with isolation \"session\" (each session gets its own "
            "child): remove instances or use isolation \"shared\"",
            sw, s->instances);
    }
    return s->disabled;
}

/* Parses every entry of one servers object (mcpServers or servers) into cfg->servers. */
static void parse_servers(mg__config_ctx_t *ctx, mg_config_t *cfg, const char *what, const json_t *obj,
                          size_t *entries, size_t *disabled)
{
    if (!json_is_object(obj)) {
        mg__config_errf(
            ctx, "%s: must be an object mapping server names to {\"command\": ..., \"args\": [...]}, not %s",
            what, mg_cfg_kind(obj));
        return;
    }
    size_t n = json_object_size(obj);
    if (cfg->nservers + n > MG__CONFIG_MAX_SERVERS) {
        mg__config_errf(ctx, "%s: %zu servers is more than the %d one gateway may front", what,
                        cfg->nservers + n, MG__CONFIG_MAX_SERVERS);
        return;
    }
    mg_server_config_t *grown = realloc(cfg->servers, (cfg->nservers + n + 1) * sizeof *grown);
    if (grown == NULL) {
        ctx->nomem = 1;
        return;
    }
    cfg->servers = grown;
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)obj, name, v)
    {
        mg_server_config_t *s = &cfg->servers[cfg->nservers];
        memset(s, 0, sizeof *s);
        s->name = mg__config_strdup(ctx, name);
        if (s->name == NULL) {
            return;
        }
        cfg->nservers++;
        (*entries)++;
        s->raw = json_incref(v);
        *disabled += (size_t)parse_server(ctx, cfg, s, v);
    }
}

/* Checks that need every server: names equal but for case, timeouts against the limits. */
static void check_servers(mg__config_ctx_t *ctx, mg_config_t *cfg)
{
    char q1[80], q2[80];
    for (size_t i = 0; i < cfg->nservers; i++) {
        mg_server_config_t *s = &cfg->servers[i];
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(s->name, cfg->servers[j].name) != 0) {
                continue;
            }
            mg_cfg_quote(s->name, q1, sizeof q1);
            mg_cfg_quote(cfg->servers[j].name, q2, sizeof q2);
            if (strcmp(s->name, cfg->servers[j].name) == 0) {
                mg__config_errf(ctx, "server '%s' is defined twice (under both mcpServers and servers)", q1);
            } else {
                mg__config_errf(
                    ctx,
                    "servers '%s' and '%s' differ only in case; their tool-name prefixes would clash "
                    "for clients that ignore case: rename one",
                    q2, q1);
            }
            break;
        }
        if (s->request_timeout_ms == 0) {
            s->request_timeout_ms = cfg->limits.request_timeout_ms;
        } else if (s->request_timeout_ms > cfg->limits.max_request_ms) {
            mg__config_errf(
                ctx,
                "server '%s': timeoutMs (%" PRIu64 ") exceeds gateway.limits.maxRequestMs (%" PRIu64
                "), which caps every request: lower it or raise maxRequestMs",
                mg_cfg_quote(s->name, q1, sizeof q1), s->request_timeout_ms, cfg->limits.max_request_ms);
        }
    }
}

/* Formats a jansson error without its "near '...'" excerpt, which may quote a secret. */
static void report_json_error(mg__config_ctx_t *ctx, const json_error_t *je)
{
    char text[JSON_ERROR_TEXT_LENGTH];
    snprintf(text, sizeof text, "%s", je->text);
    if (strncmp(text, "duplicate object key", 20) != 0) { /* a key is no secret: keep it */
        char *near = strstr(text, " near '");
        if (near != NULL) {
            *near = '\0';
        }
    }
    mg__config_errf(ctx, "line %d, column %d: invalid JSON: %s", je->line, je->column > 0 ? je->column : 1,
                    text);
}

static int finish(mg__config_ctx_t *ctx, mg_config_t *out)
{
    ctx->nomem |= ctx->rd.nomem;
    mg__config_errs_finish(ctx);
    if (ctx->nomem) {
        mg_config_dispose(out);
        return MG_ENOMEM;
    }
    if (ctx->errs->count > 0) {
        mg_config_dispose(out);
        return MG_ECONFIG;
    }
    return 0;
}

static int set_defaults(mg__config_ctx_t *ctx, mg_config_t *out, const char *origin)
{
    out->path = mg__config_strdup(ctx, origin);
    out->listen = mg__config_strdup(ctx, "127.0.0.1:8080");
    out->log_level = mg__config_strdup(ctx, "info");
    out->namespace_separator = mg__config_strdup(ctx, "__");
    mg_limits_default(&out->limits);
    mg__config_tasks_default(&out->tasks);
    return ctx->nomem ? MG_ENOMEM : 0;
}

int mg_config_parse(const char *json_text, const char *origin, const char *self_dir, mg_config_t *out,
                    mg_config_errors_t *errs)
{
    return mg_config_parse_opts(json_text, origin, self_dir, NULL, out, errs);
}

int mg_config_parse_opts(const char *json_text, const char *origin, const char *self_dir,
                         const mg_config_opts_t *opts, mg_config_t *out, mg_config_errors_t *errs)
{
    mg_config_errors_t scratch;
    if (errs == NULL) {
        errs = &scratch;
    }
    memset(errs, 0, sizeof *errs);
    if (out == NULL || json_text == NULL) {
        return MG_EINVAL;
    }
    memset(out, 0, sizeof *out);
    mg__config_ctx_t ctx = {
        .origin = origin != NULL ? origin : "<config>", .self_dir = self_dir, .errs = errs};
    mg__config_ctx_init(&ctx);
    int rc = set_defaults(&ctx, out, ctx.origin);
    mg_envfile_t envfile = {0};
    if (rc == 0 && opts != NULL && opts->env_file != NULL) { /* --env-file: read before any ${env:} */
        out->env_file = mg__config_strdup(&ctx, opts->env_file);
        mg_envfile_load(opts->env_file, &envfile, policy_err, &ctx);
        ctx.envfile = &envfile;
    }
    if (rc != 0) {
        rc = finish(&ctx, out);
        goto done;
    }

    size_t len = strlen(json_text);
    char *text = malloc(len + 1);
    if (text == NULL) {
        ctx.nomem = 1;
        rc = finish(&ctx, out);
        goto done;
    }
    memcpy(text, json_text, len + 1);
    char hex[MG_SHA256_HEX];
    mg_sha256_hex(text, len, hex);
    memcpy(out->digest, hex, 16);
    out->digest[16] = '\0';
    int open_comment = mg__config_jsonc_strip(text, len);
    if (open_comment != 0) {
        mg__config_errf(&ctx, "line %d: a /* comment is never closed", open_comment);
        free(text);
        rc = finish(&ctx, out);
        goto done;
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (root == NULL) {
        report_json_error(&ctx, &je);
        rc = finish(&ctx, out);
        goto done;
    }
    if (!json_is_object(root)) {
        mg__config_errf(&ctx, "the top level must be an object like {\"mcpServers\": {...}}, not %s",
                        mg_cfg_kind(root));
        json_decref(root);
        rc = finish(&ctx, out);
        goto done;
    }

    const json_t *mcp_servers = NULL, *vs_servers = NULL, *gateway = NULL;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "mcpServers") == 0) {
            mcp_servers = v;
        } else if (strcmp(key, "servers") == 0) {
            vs_servers = v;
        } else if (strcmp(key, "gateway") == 0) {
            gateway = v;
        } else if (!in_list(key, top_ignored)) {
            unknown_key(&ctx, "top level", key, top_keys, list_len(top_keys));
        }
    }
    if (mcp_servers != NULL && vs_servers != NULL) {
        mg__config_errf(&ctx, "both \"mcpServers\" and \"servers\" are present: keep one (mcpServers is what "
                              "Claude Desktop and Cursor write, servers what VS Code writes)");
    }
    if (gateway != NULL) {
        parse_gateway(&ctx, out, gateway);
        out->raw_gateway = json_incref((json_t *)gateway);
    }
    size_t entries = 0, disabled = 0;
    if (mcp_servers != NULL) {
        parse_servers(&ctx, out, "mcpServers", mcp_servers, &entries, &disabled);
    }
    if (vs_servers != NULL) {
        parse_servers(&ctx, out, "servers", vs_servers, &entries, &disabled);
    }
    if (entries == 0 && (mcp_servers == NULL || json_is_object(mcp_servers)) &&
        (vs_servers == NULL || json_is_object(vs_servers))) {
        mg__config_errf(&ctx, "no servers configured: add an entry under mcpServers, e.g. "
                              "\"mcpServers\": {\"fs\": {\"command\": \"npx\", \"args\": [\"-y\", "
                              "\"@modelcontextprotocol/server-filesystem\", \"/data\"]}}");
    } else if (entries > 0 && disabled == entries) {
        mg__config_errf(&ctx, "every server is disabled: enable at least one (remove \"disabled\": true)");
    }
    mg_envfile_apply(&envfile, out, policy_err, &ctx); /* {SERVICE}_MCP_{KEY} entries */
    mg_policy_config_finish(out, NULL);
    check_servers(&ctx, out);
    json_decref(root);
    rc = finish(&ctx, out);
done:
    mg_envfile_dispose(&envfile);
    if (errs == &scratch) {
        mg_config_errors_dispose(&scratch);
    }
    return rc;
}

int mg_config_load(const char *path, const char *self_dir, mg_config_t *out, mg_config_errors_t *errs)
{
    return mg_config_load_opts(path, self_dir, NULL, out, errs);
}

int mg_config_load_opts(const char *path, const char *self_dir, const mg_config_opts_t *opts,
                        mg_config_t *out, mg_config_errors_t *errs)
{
    mg_config_errors_t scratch;
    if (errs == NULL) {
        errs = &scratch;
    }
    memset(errs, 0, sizeof *errs);
    if (out == NULL || path == NULL) {
        return MG_EINVAL;
    }
    memset(out, 0, sizeof *out);
    mg__config_ctx_t ctx = {.origin = path, .self_dir = self_dir, .errs = errs};
    mg__config_ctx_init(&ctx);
    char *text = NULL;
    size_t len = 0;
    int err_no = 0;
    int rc = mg__config_read_file(path, MG__CONFIG_MAX_FILE_BYTES, &text, &len, &err_no);
    if (rc == MG_EIO) {
        mg__config_errf(&ctx, "cannot read the config file: %s", strerror(err_no));
    } else if (rc == MG_ETOOBIG) {
        mg__config_errf(&ctx, "the config file is larger than 16 MiB");
    } else if (rc == MG_ENOMEM) {
        ctx.nomem = 1;
    } else if (memchr(text, '\0', len) != NULL) {
        mg__config_errf(&ctx, "the config file contains a NUL byte: it is not a JSON text file");
    } else {
        rc = mg_config_parse_opts(text, path, self_dir, opts, out, errs == &scratch ? NULL : errs);
        free(text);
        return rc;
    }
    free(text);
    rc = ctx.nomem ? MG_ENOMEM : MG_ECONFIG;
    if (errs == &scratch) {
        mg_config_errors_dispose(&scratch);
    }
    return rc;
}

size_t mg_config_enabled_count(const mg_config_t *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->nservers; i++) {
        n += cfg->servers[i].disabled == 0;
    }
    return n;
}

void mg_config_dispose(mg_config_t *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (size_t i = 0; i < cfg->nservers; i++) {
        mg_server_config_t *s = &cfg->servers[i];
        free(s->name);
        free(s->command);
        mg_cfg_strings_free(s->args, s->nargs);
        for (size_t j = 0; j < s->nenv; j++) {
            free(s->env[j].key);
            free(s->env[j].value);
            free(s->env[j].source);
        }
        free(s->env);
        free(s->cwd);
        mg__config_tool_filter_dispose(&s->tools);
        json_decref(s->raw);
        mg_server_policy_free(s->policy);
        mg_sandbox_config_free(s->sandbox);
        mg_remote_config_free(s->remote);
    }
    free(cfg->servers);
    free(cfg->path);
    free(cfg->listen);
    mg_cfg_strings_free(cfg->allowed_origins, cfg->nallowed_origins);
    mg_cfg_strings_free(cfg->allowed_hosts, cfg->nallowed_hosts);
    mg_cfg_strings_free(cfg->audit_publishers, cfg->naudit_publishers);
    free(cfg->log_level);
    free(cfg->namespace_separator);
    free(cfg->request_state_key);
    mg_auth_config_free(cfg->auth);
    mg__config_tools_dispose(&cfg->tools);
    mg__config_tracing_dispose(&cfg->tracing);
    mg__config_sessions_dispose(&cfg->sessions);
    mg_policy_config_free(cfg->policy);
    free(cfg->env_file);
    json_decref(cfg->raw_gateway);
    mg__config_ops_dispose(cfg);
    mg_egress_config_dispose(&cfg->egress);
    memset(cfg, 0, sizeof *cfg);
}

static int str_same(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int mg_config_server_same(const mg_server_config_t *a, const mg_server_config_t *b)
{
    if (!json_equal(a->raw, b->raw) || !str_same(a->command, b->command) || !str_same(a->cwd, b->cwd) ||
        a->nargs != b->nargs || a->nenv != b->nenv)
        return 0;
    for (size_t i = 0; i < a->nargs; i++)
        if (!str_same(a->args[i], b->args[i]))
            return 0;
    for (size_t i = 0; i < a->nenv; i++)
        if (!str_same(a->env[i].key, b->env[i].key) || !str_same(a->env[i].value, b->env[i].value))
            return 0;
    return 1;
}

void mg_config_errors_print(FILE *f, const char *prefix, const char *what, const mg_config_errors_t *errs)
{
    fprintf(f, "%s: %s has %zu problem%s:\n", prefix, what, errs->count, errs->count == 1 ? "" : "s");
    for (size_t i = 0; i < errs->count; i++)
        fprintf(f, "  - %s\n", errs->msgs[i]);
}

void mg_config_self_dir(char *out, size_t n)
{
    char path[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", path, sizeof path - 1);
    if (len <= 0) {
        snprintf(out, n, ".");
        return;
    }
    path[len] = '\0';
    snprintf(out, n, "%s", dirname(path));
}

void mg_config_errors_dispose(mg_config_errors_t *errs)
{
    if (errs == NULL) {
        return;
    }
    for (size_t i = 0; i < errs->count; i++) {
        free(errs->msgs[i]);
    }
    free(errs->msgs);
    errs->msgs = NULL;
    errs->count = 0;
}

int mg_config_listen_parse(const char *listen, char *host, size_t hostcap, unsigned *port)
{
    char why[160];
    if (listen == NULL || host == NULL || hostcap == 0) {
        return MG_EINVAL;
    }
    return mg__config_listen_check(listen, host, hostcap, port, why, sizeof why) == 0 ? 0 : MG_EINVAL;
}
