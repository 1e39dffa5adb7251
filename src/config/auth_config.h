/*
 * auth_config.h - the `gateway.auth` object of the config file, parsed and validated before
 * anything starts (config/config.c calls mg_auth_config_parse() for that key).
 *
 * Contract: parsing reports every problem through ops->err and goes on; the result is all or
 * nothing (NULL on any problem). No value that may be a secret (a client secret, a hash) is ever
 * put in a message. The runtime (auth.c) only reads this structure; it never re-reads the file.
 * Read next: auth.h (the runtime that uses it), docs/configuration.md#authentication.
 */
#ifndef MG_AUTH_CONFIG_H
#define MG_AUTH_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Signature algorithms accepted for JWT access tokens (bit mask). `none` and HS* never are. */
#define MG_AUTH_ALG_RS256 (1u << 0)
#define MG_AUTH_ALG_RS384 (1u << 1)
#define MG_AUTH_ALG_RS512 (1u << 2)
#define MG_AUTH_ALG_PS256 (1u << 3)
#define MG_AUTH_ALG_PS384 (1u << 4)
#define MG_AUTH_ALG_PS512 (1u << 5)
#define MG_AUTH_ALG_ES256 (1u << 6)
#define MG_AUTH_ALG_ES384 (1u << 7)
#define MG_AUTH_ALG_ES512 (1u << 8)
#define MG_AUTH_ALG_EDDSA (1u << 9)
#define MG_AUTH_ALG_ALL   0x3ffu

/* One static bearer token: only its SHA-256 is configured, never the token. */
typedef struct mg_auth_token_config {
    char *name; /* "ci": logged, never the token */
    unsigned char sha256[32];
    char *tenant;  /* default "default" */
    char **scopes; /* NULL-terminated, nscopes entries */
    size_t nscopes;
} mg_auth_token_config_t;

/* One authorization rule: applies to principals of `tenant` (NULL = any) holding `scope` (NULL =
 * any). Patterns: "server" or "server/item", with * and ? globs; item = a tool or prompt name as
 * the upstream names it, a resource URI or a resource template. */
typedef struct mg_auth_rule {
    char *tenant;
    char *scope;
    char **allow;
    size_t nallow;
    char **deny;
    size_t ndeny;
} mg_auth_rule_t;

typedef struct mg_auth_oauth_config {
    char *issuer;     /* exact `iss`; https, or http on loopback */
    char **audiences; /* accepted `aud` values (default: the resource) */
    size_t naudiences;
    char *jwks_uri;         /* NULL = discovered from the issuer's metadata */
    char **required_scopes; /* every request needs all of them (403 insufficient_scope) */
    size_t nrequired;
    unsigned algorithms;     /* MG_AUTH_ALG_* mask; default RS256|PS256|ES256|EdDSA and the longer SHA-2s */
    uint64_t clock_skew_s;   /* exp/nbf/iat leeway, default 60 */
    uint64_t max_lifetime_s; /* 0 = no limit; else exp - iat must not exceed it (iat required) */
    char *tenant_claim;      /* claim naming the tenant (e.g. "tid"); NULL = `tenant` below */
    char *tenant;            /* fixed tenant for every token of this issuer, default "default" */
    char *scope_claim;       /* NULL = "scope" (space-separated) then "scp" */
    char *subject_claim;     /* default "sub" */
    uint64_t jwks_refresh_s; /* periodic refresh, default 3600 */
    uint64_t jwks_min_interval_s; /* at most one refresh for an unknown kid per interval, default 30 */
    int introspection;            /* RFC 7662 for opaque (non-JWT) tokens */
    char *introspection_endpoint; /* NULL = discovered */
    char *client_id;              /* client authentication at the introspection endpoint */
    char *client_secret;
    uint64_t introspection_cache_s; /* default 60; never beyond the token's exp */
} mg_auth_oauth_config_t;

typedef struct mg_auth_config {
    mg_auth_token_config_t *tokens;
    size_t ntokens;
    mg_auth_oauth_config_t *oauth; /* NULL = static tokens only */
    char *resource;                /* canonical resource URI (RFC 8707 / 9728), may be NULL without oauth */
    char **scopes_supported;       /* advertised in the metadata; default: required_scopes */
    size_t nscopes_supported;
    mg_auth_rule_t *rules;
    size_t nrules;
    unsigned fail_max;      /* failed credentials per client IP per window before 429, default 20 */
    uint64_t fail_window_s; /* default 60 */
    uint64_t fail_block_s;  /* how long a client stays refused, default 60 */
} mg_auth_config_t;

/* How the config walk lets this parser report problems and expand ${env:}/${file:} references. */
typedef struct mg_auth_config_ops {
    void *ctx;
    /* Records one problem (a full sentence without the "origin: " prefix). */
    void (*err)(void *ctx, const char *msg);
    /* Expands `in`; returns 0 with *out newly allocated, or non-zero (already reported). */
    int (*expand)(void *ctx, const char *in, const char *where, char **out);
} mg_auth_config_ops_t;

/* Parses the `gateway.auth` value v. Returns the new config, or NULL when a problem was reported
 * (every problem is reported, not only the first). ops->expand may be NULL (no expansion). */
mg_auth_config_t *mg_auth_config_parse(const json_t *v, const mg_auth_config_ops_t *ops);
void mg_auth_config_free(mg_auth_config_t *c);

/* "RS256" -> MG_AUTH_ALG_RS256, 0 when unknown or refused ("none", "HS256"...). */
unsigned mg_auth_alg_bit(const char *alg);

/*
 * Checks a URL the gateway will fetch or advertise: https://host[...], or http:// to a loopback
 * host (127.0.0.0/8, [::1], localhost) for tests and sidecars. Returns 0 or -1 with a reason.
 */
int mg_auth_url_check(const char *url, char *why, size_t whylen);

#endif
