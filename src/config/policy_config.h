/*
 * policy_config.h - the policy keys of the config file, as plain data: gateway.pinning,
 * gateway.lockFile, gateway.scan, gateway.cors, gateway.rateLimits, and a server's "pinning",
 * "scan" and "sandbox" (sandbox_config.h); their parser (policy_config.c) is called by the config
 * walk (config.c). The runtime that applies them is src/policy/ (policy.h, hooks.h).
 * Read next: policy_config.c, docs/security.md (what each control does and does not do).
 */
#ifndef MG_CONFIG_POLICY_CONFIG_H
#define MG_CONFIG_POLICY_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../session/rl_store.h" /* mg_rate_rule_t */

typedef enum mg_pin_mode {
    MG_PIN_UNSET = 0, /* not configured: "block" when a lockfile exists, else off */
    MG_PIN_OFF,
    MG_PIN_WARN,
    MG_PIN_BLOCK,
} mg_pin_mode_t;

typedef enum mg_scan_mode { MG_SCAN_UNSET = 0, MG_SCAN_OFF, MG_SCAN_WARN, MG_SCAN_BLOCK } mg_scan_mode_t;

typedef enum mg_severity {
    MG_SEV_INFO = 0,
    MG_SEV_LOW,
    MG_SEV_MEDIUM,
    MG_SEV_HIGH,
    MG_SEV_CRITICAL,
} mg_severity_t;

/* "gateway.rateLimits" */
typedef struct mg_rate_config {
    int enabled;
    char **methods; /* JSON-RPC methods that take a token; default {"tools/call"}; NULL-terminated */
    size_t nmethods;
    int has_principal, has_tenant;
    mg_rate_rule_t principal; /* per principal (auth) or per client address (no auth) */
    mg_rate_rule_t tenant;    /* per tenant (auth only) */
    mg_rate_rule_t *tools;    /* per exposed tool name, first matching glob wins */
    size_t ntools;
    char *store; /* "local", "shared" (alias "redis": the session store's Redis or PostgreSQL, shared
                  * by every replica), or NULL: "shared" when gateway.sessions.store is a shared
                  * store, else "local" (hooks.c) */
} mg_rate_config_t;

/* "gateway.cors" */
typedef struct mg_cors_config {
    int enabled;
    char **origins; /* exact origins (compared without case); "*" only without credentials */
    size_t norigins;
    int any; /* "*" listed */
    int allow_credentials;
    unsigned max_age_s; /* Access-Control-Max-Age; default 600 */
} mg_cors_config_t;

/* "gateway.scan" */
typedef struct mg_scan_config {
    mg_scan_mode_t mode;    /* default warn */
    mg_severity_t block_at; /* "blockSeverity": findings at or above it block (mode block); default high */
    char *rules_file;       /* "rules": extra rules (same format as src/policy/scan-rules.json) */
    char **disable;         /* "disable": rule ids turned off */
    size_t ndisable;
} mg_scan_config_t;

/* The gateway-wide part ("gateway.pinning", "gateway.lockFile", "gateway.scan", "gateway.cors",
 * "gateway.rateLimits"). Always allocated by the config parser (defaults when absent). */
typedef struct mg_policy_config {
    mg_pin_mode_t pinning;
    char *lock_file; /* absolute or relative to the cwd; NULL = CONFIG.lock beside the config file */
    mg_scan_config_t scan;
    mg_cors_config_t cors;
    mg_rate_config_t rate;
} mg_policy_config_t;

/* A server entry's "pinning" and "scan" (override the gateway's). */
typedef struct mg_server_policy {
    mg_pin_mode_t pinning;
    mg_scan_mode_t scan;
} mg_server_policy_t;

/* How the config walk lets these parsers report problems and expand ${...} references. */
typedef struct mg_policy_config_ops {
    void *ctx;
    void (*err)(void *ctx, const char *msg);
    /* 0 with *out (malloc'd), or nonzero when a problem was reported. May be NULL (no expansion). */
    int (*expand)(void *ctx, const char *in, const char *where, int lenient, char **out);
} mg_policy_config_ops_t;

struct mg_config;
struct mg_server_config;

/*
 * Handles one key of the "gateway" object when it is one of ours (pinning, lockFile, scan, cors,
 * rateLimits): returns 1 (problems reported through ops), else 0 and nothing happens.
 * *pc is allocated on first use.
 */
int mg_policy_config_gateway_key(mg_policy_config_t **pc, const char *key, const json_t *v,
                                 const mg_policy_config_ops_t *ops);
/* The gateway keys handled above, NULL-terminated (for the parser's "did you mean"). */
extern const char *const mg_policy_gateway_keys[];

/*
 * Handles one key of a server entry when it is one of ours ("pinning", "scan", "sandbox"): returns
 * 1, else 0. sw names the server in messages ("server 'github'"). lenient: the server is disabled
 * (a user that does not exist here is not a problem then).
 */
int mg_policy_config_server_key(struct mg_server_config *s, const char *sw, const char *key, const json_t *v,
                                int lenient, const mg_policy_config_ops_t *ops);
extern const char *const mg_policy_server_keys[];

/* Checks across the whole config (after every server was parsed). */
void mg_policy_config_finish(struct mg_config *cfg, const mg_policy_config_ops_t *ops);

void mg_policy_config_free(mg_policy_config_t *pc);
void mg_server_policy_free(mg_server_policy_t *sp);

/* Effective modes for a server (its override, else the gateway's; pinning UNSET stays UNSET). */
mg_pin_mode_t mg_policy_pin_mode(const struct mg_config *cfg, const struct mg_server_config *s);
mg_scan_mode_t mg_policy_scan_mode(const struct mg_config *cfg, const struct mg_server_config *s);

/* The lockfile path for cfg (malloc'd): gateway.lockFile, else the config's name with ".lock" for
 * its extension, beside it (servers.json -> servers.lock, so configs sharing a directory never share
 * a lock); NULL for the embedded config (no file to sit beside: nothing is pinned). */
char *mg_policy_lock_path(const struct mg_config *cfg);
/* Where the lockfile of cfg was before it was named after its config: "mcpgate.lock" beside it,
 * shared by every config of the directory (malloc'd). NULL when gateway.lockFile is set, for the
 * embedded config, and for mcpgate.json (whose lock keeps that name). See mg_lock_load_for(). */
char *mg_policy_lock_legacy_path(const struct mg_config *cfg);

const char *mg_pin_mode_name(mg_pin_mode_t m);
const char *mg_scan_mode_name(mg_scan_mode_t m);
const char *mg_severity_name(mg_severity_t s);
/* Parses "info".."critical"; returns 0 or -1. */
int mg_severity_parse(const char *s, mg_severity_t *out);

#endif
