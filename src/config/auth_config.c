/*
 * auth_config.c - parses and validates `gateway.auth` (auth_config.h).
 *
 * Every problem is reported and the walk goes on; any problem makes the result NULL. Plaintext
 * tokens are refused outright (only SHA-256 hashes are accepted), `none` and HS* algorithms cannot
 * be enabled, URLs must be https (http only to loopback). Secrets (client_secret) go through the
 * config's ${env:}/${file:} expansion and never into a message.
 * Read next: auth.c (the runtime), docs/configuration.md#authentication.
 */
#include "auth_config.h"
#include "../common/cfgval.h"
#include "../common/codec.h"
#include "config.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One parse: the typed readers' sink (common/cfgval.h) over the caller's ops; c.bad = a problem. */
typedef struct pctx {
    mg_cfg_t c;
    const mg_auth_config_ops_t *ops;
} pctx_t;

static void errf(pctx_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errf(pctx_t *p, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    mg_cfg_errf(&p->c, "%s", buf);
}

static void sink_err(void *ctx, const char *msg)
{
    const pctx_t *p = ctx;
    if (p->ops != NULL && p->ops->err != NULL)
        p->ops->err(p->ops->ctx, msg);
}

static int sink_expand(void *ctx, const char *in, const char *where, int lenient, char **out)
{
    const pctx_t *p = ctx;
    return p->ops->expand(p->ops->ctx, in, where, out);
}

static const struct {
    const char *name;
    unsigned bit;
} algs[] = {
    {"RS256", MG_AUTH_ALG_RS256}, {"RS384", MG_AUTH_ALG_RS384}, {"RS512", MG_AUTH_ALG_RS512},
    {"PS256", MG_AUTH_ALG_PS256}, {"PS384", MG_AUTH_ALG_PS384}, {"PS512", MG_AUTH_ALG_PS512},
    {"ES256", MG_AUTH_ALG_ES256}, {"ES384", MG_AUTH_ALG_ES384}, {"ES512", MG_AUTH_ALG_ES512},
    {"EdDSA", MG_AUTH_ALG_EDDSA},
};

unsigned mg_auth_alg_bit(const char *alg)
{
    for (size_t i = 0; alg != NULL && i < sizeof algs / sizeof algs[0]; i++)
        if (strcmp(alg, algs[i].name) == 0)
            return algs[i].bit;
    return 0;
}

/* ---- URLs ---- */

static int host_is_loopback(const char *h, size_t n)
{
    if (n == 9 && strncasecmp(h, "localhost", 9) == 0)
        return 1;
    if (n == 5 && memcmp(h, "[::1]", 5) == 0)
        return 1;
    if (n >= 4 && memcmp(h, "127.", 4) == 0) {
        for (size_t i = 4; i < n; i++)
            if (!isdigit((unsigned char)h[i]) && h[i] != '.')
                return 0;
        return 1;
    }
    return 0;
}

/* Splits scheme://authority; sets host span (without port). Returns scheme length or -1. */
static int url_parts(const char *url, const char **host, size_t *hlen)
{
    const char *sep = strstr(url, "://");
    if (sep == NULL)
        return -1;
    const char *a = sep + 3;
    size_t alen = strcspn(a, "/?#");
    if (alen == 0 || memchr(a, '@', alen) != NULL)
        return -1;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', alen);
        if (close == NULL)
            return -1;
        *host = a;
        *hlen = (size_t)(close - a) + 1;
    } else {
        const char *colon = memchr(a, ':', alen);
        *host = a;
        *hlen = colon ? (size_t)(colon - a) : alen;
    }
    return *hlen == 0 ? -1 : (int)(sep - url);
}

int mg_auth_url_check(const char *url, char *why, size_t whylen)
{
    const char *h;
    size_t n;
    int sl = url ? url_parts(url, &h, &n) : -1;
    if (sl < 0) {
        snprintf(why, whylen, "not an absolute URL (https://host/...)");
        return -1;
    }
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            snprintf(why, whylen, "URLs must not contain spaces or control characters");
            return -1;
        }
    if (strchr(url, '#') != NULL) {
        snprintf(why, whylen, "URLs must not contain a fragment (#)");
        return -1;
    }
    if (sl == 5 && strncasecmp(url, "https", 5) == 0)
        return 0;
    if (sl == 4 && strncasecmp(url, "http", 4) == 0) {
        if (host_is_loopback(h, n))
            return 0;
        snprintf(why, whylen, "must be https (http is accepted only for loopback hosts such as 127.0.0.1)");
        return -1;
    }
    snprintf(why, whylen, "must be an https URL");
    return -1;
}

/* ---- small readers ---- */

/* Copies a user-controlled key into a message-safe form. */
static const char *q(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 4 < cap; s++)
        buf[o++] = ((unsigned char)*s < 0x20 || *s == '"' || *s == 0x7f) ? '?' : *s;
    if (*s)
        memcpy(buf + o, "...", 3), o += 3;
    buf[o] = '\0';
    return buf;
}

/* A non-empty string, expanded when `expand`. NEW, or NULL (reported). */
static char *get_str(pctx_t *p, const json_t *v, const char *where, int expand)
{
    char *out = NULL;
    mg_cfg_string(&p->c, where, v, MG_CFG_NONEMPTY | (expand ? 0 : MG_CFG_RAW), &out);
    return out;
}

/* Array of non-empty strings, expanded (a lone string is accepted too when lone_ok).
 * NULL-terminated, NULL when v is not one. */
static char **get_strs(pctx_t *p, const json_t *v, const char *where, size_t *n, int lone_ok)
{
    char **out = NULL;
    *n = 0;
    mg_cfg_string_array(&p->c, where, v, MG_CFG_NONEMPTY | (lone_ok ? MG_CFG_LONE : 0), &out, n);
    return out;
}

static void free_strs(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

static int name_ok(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-");
    return n > 0 && n <= 64 && s[n] == '\0';
}

static int scope_ok(const char *s)
{
    /* RFC 6749 scope-token: %x21 / %x23-5B / %x5D-7E */
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || *s == '"' || *s == '\\' || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

static void unknown(pctx_t *p, const char *where, const char *key, const char *const *known)
{
    mg_cfg_unknown_key(&p->c, where, key, known, (size_t)-1, 512, 0);
}

/* ---- tokens ---- */

static void parse_tokens(pctx_t *p, mg_auth_config_t *c, const json_t *v)
{
    if (!json_is_array(v)) {
        errf(p, "gateway.auth.tokens: must be an array of {name, sha256, tenant, scopes}, not %s",
             mg_cfg_kind(v));
        return;
    }
    c->tokens = calloc(json_array_size(v) + 1, sizeof *c->tokens);
    size_t i;
    json_t *t;
    json_array_foreach(v, i, t)
    {
        char w[96];
        snprintf(w, sizeof w, "gateway.auth.tokens[%zu]", i);
        if (!json_is_object(t)) {
            errf(p, "%s: must be an object {name, sha256, tenant, scopes}, not %s", w, mg_cfg_kind(t));
            continue;
        }
        mg_auth_token_config_t *tc = &c->tokens[c->ntokens];
        int ok = 1, have_hash = 0;
        const char *key;
        json_t *val;
        json_object_foreach(t, key, val)
        {
            char ww[160];
            snprintf(ww, sizeof ww, "%s.%s", w, key);
            if (strcmp(key, "name") == 0) {
                tc->name = get_str(p, val, ww, 0);
                if (tc->name != NULL && !name_ok(tc->name)) {
                    errf(p, "%s: use 1 to 64 characters from A-Z a-z 0-9 _ . -", ww);
                    ok = 0;
                }
            } else if (strcmp(key, "sha256") == 0) {
                const char *h = json_string_value(val);
                size_t n = h ? strlen(h) : 0;
                int good = n == 64;
                for (size_t k = 0; good && k < 64; k++)
                    good = mg_hex_digit(h[k]) >= 0;
                if (!good) {
                    errf(p,
                         "%s: must be the 64 hex digits of the token's SHA-256 (mcpgate token new prints it)",
                         ww);
                    ok = 0;
                    continue;
                }
                for (size_t k = 0; k < 32; k++)
                    tc->sha256[k] = (unsigned char)(mg_hex_digit(h[2 * k]) << 4 | mg_hex_digit(h[2 * k + 1]));
                have_hash = 1;
            } else if (strcmp(key, "tenant") == 0) {
                tc->tenant = get_str(p, val, ww, 0);
                if (tc->tenant != NULL && !name_ok(tc->tenant)) {
                    errf(p, "%s: use 1 to 64 characters from A-Z a-z 0-9 _ . -", ww);
                    ok = 0;
                }
            } else if (strcmp(key, "scopes") == 0) {
                tc->scopes = get_strs(p, val, ww, &tc->nscopes, 0);
                for (size_t k = 0; k < tc->nscopes; k++)
                    if (!scope_ok(tc->scopes[k])) {
                        errf(p, "%s[%zu]: a scope is printable ASCII without spaces, quotes or backslashes",
                             ww, k);
                        ok = 0;
                    }
            } else if (strcmp(key, "token") == 0 || strcmp(key, "value") == 0 || strcmp(key, "secret") == 0) {
                errf(p,
                     "%s: plaintext tokens are never accepted in the config; configure its SHA-256 as "
                     "\"sha256\" (mcpgate token new prints a token and the entry to paste)",
                     ww);
                ok = 0;
            } else {
                unknown(p, w, key, (const char *const[]){"name", "sha256", "tenant", "scopes", NULL});
                ok = 0;
            }
        }
        if (tc->name == NULL) {
            errf(p, "%s: \"name\" is required (it names the token in logs)", w);
            ok = 0;
        }
        if (!have_hash) {
            if (json_object_get(t, "sha256") == NULL)
                errf(p, "%s: \"sha256\" is required", w);
            ok = 0;
        }
        if (tc->tenant == NULL && json_object_get(t, "tenant") == NULL)
            tc->tenant = strdup("default");
        if (tc->scopes == NULL && json_object_get(t, "scopes") == NULL)
            tc->scopes = calloc(1, sizeof *tc->scopes);
        for (size_t k = 0; ok && k < c->ntokens; k++) {
            if (c->tokens[k].name != NULL && tc->name != NULL && strcmp(c->tokens[k].name, tc->name) == 0) {
                errf(p, "%s: name \"%s\" is used twice", w, tc->name);
                ok = 0;
            } else if (memcmp(c->tokens[k].sha256, tc->sha256, 32) == 0) {
                errf(p, "%s: the same sha256 is configured twice (tokens \"%s\" and \"%s\")", w,
                     c->tokens[k].name, tc->name);
                ok = 0;
            }
        }
        c->ntokens++;
        if (!ok)
            p->c.bad = 1;
    }
}

/* ---- oauth ---- */

/* A URL key of a table (read as a string): reported when mg_auth_url_check refuses it. */
static void url_ok(mg_cfg_t *c, const char *where, int ok, const char *url)
{
    char why[160];
    if (ok && url != NULL && mg_auth_url_check(url, why, sizeof why) != 0)
        mg_cfg_errf(c, "%s: %s", where, why);
}

static void endpoint_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    url_ok(c, where, ok, ((mg_auth_oauth_config_t *)dst)->introspection_endpoint);
}

#define O(f) MG_CFG_AT(mg_auth_oauth_config_t, f)
static const mg_cfg_field_t introspection_fields[] = {
    {"endpoint", MG_CFG_T_STRING, O(introspection_endpoint), 0, 0, 0, MG_CFG_NONEMPTY, endpoint_check},
    {"client_id", MG_CFG_T_STRING, O(client_id), 0, 0, 0, MG_CFG_NONEMPTY, NULL},
    {"client_secret", MG_CFG_T_STRING, O(client_secret), 0, 0, 0, MG_CFG_NONEMPTY, NULL},
    {"cache_s", MG_CFG_T_U64, O(introspection_cache_s), 0, 0, 3600, MG_CFG_SECONDS, NULL},
    MG_CFG_FIELD_END,
};
#undef O
static const mg_cfg_object_t introspection_object = {
    "gateway.auth.oauth.introspection", introspection_fields, NULL, (size_t)-1, 0, 512, 0};

static void parse_introspection(pctx_t *p, mg_auth_oauth_config_t *o, const json_t *v)
{
    const char *w = "gateway.auth.oauth.introspection";
    if (!json_is_object(v)) {
        errf(p, "%s: must be an object {endpoint?, client_id, client_secret, cache_s?}, not %s", w,
             mg_cfg_kind(v));
        return;
    }
    o->introspection = 1;
    mg_cfg_walk(&p->c, &introspection_object, v, o, p);
    if (o->client_id == NULL || o->client_secret == NULL)
        errf(p,
             "%s: client_id and client_secret are required (the gateway authenticates to the introspection "
             "endpoint; put the secret in a file: \"${file:/run/secrets/introspection}\")",
             w);
}

static void issuer_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    url_ok(c, where, ok, ((mg_auth_oauth_config_t *)dst)->issuer);
}

static void jwks_uri_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    url_ok(c, where, ok, ((mg_auth_oauth_config_t *)dst)->jwks_uri);
}

static void scopes_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    const mg_auth_oauth_config_t *o = dst;
    for (size_t k = 0; k < o->nrequired; k++)
        if (!scope_ok(o->required_scopes[k]))
            mg_cfg_errf(c, "%s[%zu]: a scope is printable ASCII without spaces, quotes or backslashes", where,
                        k);
}

static void algorithms_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    mg_auth_oauth_config_t *o = dst;
    size_t n = 0;
    char **list = get_strs(arg, v, where, &n, 0);
    o->algorithms = 0;
    for (size_t k = 0; k < n; k++) {
        unsigned bit = mg_auth_alg_bit(list[k]);
        char b[40];
        if (bit == 0)
            errf(arg,
                 "%s[%zu]: \"%s\" is not accepted (use RS256, RS384, RS512, PS256, PS384, PS512, "
                 "ES256, ES384, ES512 or EdDSA; \"none\" and HMAC (HS*) are never accepted: an HMAC "
                 "key would have to be shared with the gateway)",
                 where, k, q(list[k], b, sizeof b));
        o->algorithms |= bit;
    }
    free_strs(list);
    if (n == 0)
        mg_cfg_errf(c, "%s: must list at least one algorithm", where);
}

static void tenant_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    const char *t = ((mg_auth_oauth_config_t *)dst)->tenant;
    if (ok && t != NULL && !name_ok(t))
        mg_cfg_errf(c, "%s: use 1 to 64 characters from A-Z a-z 0-9 _ . -", where);
}

static void introspection_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    parse_introspection(arg, dst, v);
}

#define O(f) MG_CFG_AT(mg_auth_oauth_config_t, f)
#define STR  MG_CFG_NONEMPTY
#define RAW  (MG_CFG_NONEMPTY | MG_CFG_RAW)
static const mg_cfg_field_t oauth_fields[] = {
    {"issuer", MG_CFG_T_STRING, O(issuer), 0, 0, 0, STR, issuer_check},
    {"audience", MG_CFG_T_STRINGS, O(audiences), O(naudiences), 0, 0, STR | MG_CFG_LONE, NULL},
    {"jwks_uri", MG_CFG_T_STRING, O(jwks_uri), 0, 0, 0, STR, jwks_uri_check},
    {"required_scopes", MG_CFG_T_STRINGS, O(required_scopes), O(nrequired), 0, 0, STR, scopes_check},
    {"algorithms", MG_CFG_T_NONE, 0, 0, 0, 0, 0, algorithms_read},
    {"clock_skew_s", MG_CFG_T_U64, O(clock_skew_s), 0, 0, 300, MG_CFG_SECONDS, NULL},
    {"max_token_lifetime_s", MG_CFG_T_U64, O(max_lifetime_s), 0, 1, 31 * 86400, MG_CFG_SECONDS, NULL},
    {"tenant_claim", MG_CFG_T_STRING, O(tenant_claim), 0, 0, 0, RAW, NULL},
    {"tenant", MG_CFG_T_STRING, O(tenant), 0, 0, 0, STR, tenant_check},
    {"scope_claim", MG_CFG_T_STRING, O(scope_claim), 0, 0, 0, RAW, NULL},
    {"subject_claim", MG_CFG_T_STRING, O(subject_claim), 0, 0, 0, RAW, NULL},
    {"jwks_refresh_s", MG_CFG_T_U64, O(jwks_refresh_s), 0, 10, 7 * 86400, MG_CFG_SECONDS, NULL},
    {"jwks_min_refresh_interval_s", MG_CFG_T_U64, O(jwks_min_interval_s), 0, 0, 3600, MG_CFG_SECONDS, NULL},
    {"introspection", MG_CFG_T_NONE, 0, 0, 0, 0, 0, introspection_read},
    MG_CFG_FIELD_END,
};
#undef O
#undef STR
#undef RAW
static const mg_cfg_object_t oauth_object = {"gateway.auth.oauth", oauth_fields, NULL, (size_t)-1, 0, 512, 0};

static void parse_oauth(pctx_t *p, mg_auth_config_t *c, const json_t *v)
{
    const char *w = "gateway.auth.oauth";
    if (!json_is_object(v)) {
        errf(p, "%s: must be an object {issuer, audience, jwks_uri?, required_scopes?}, not %s", w,
             mg_cfg_kind(v));
        return;
    }
    mg_auth_oauth_config_t *o = calloc(1, sizeof *o);
    c->oauth = o;
    o->algorithms = MG_AUTH_ALG_ALL;
    o->clock_skew_s = 60;
    o->jwks_refresh_s = 3600;
    o->jwks_min_interval_s = 30;
    o->introspection_cache_s = 60;
    mg_cfg_walk(&p->c, &oauth_object, v, o, p);
    if (o->issuer == NULL && json_object_get(v, "issuer") == NULL)
        errf(p,
             "%s: \"issuer\" is required (the exact \"iss\" of the access tokens, e.g. "
             "\"https://login.example.com/realms/acme\")",
             w);
    if (o->tenant == NULL)
        o->tenant = strdup("default");
    if (o->subject_claim == NULL)
        o->subject_claim = strdup("sub");
}

/* ---- rules ---- */

static int pattern_ok(const char *s)
{
    size_t n = strcspn(s, "/");
    return n > 0 && (s[n] == '\0' || s[n + 1] != '\0');
}

static void parse_rules(pctx_t *p, mg_auth_config_t *c, const json_t *v)
{
    if (!json_is_array(v)) {
        errf(p, "gateway.auth.rules: must be an array of {tenant?, scope?, allow, deny?}, not %s",
             mg_cfg_kind(v));
        return;
    }
    c->rules = calloc(json_array_size(v) + 1, sizeof *c->rules);
    size_t i;
    json_t *r;
    json_array_foreach(v, i, r)
    {
        char w[96], ww[160];
        snprintf(w, sizeof w, "gateway.auth.rules[%zu]", i);
        if (!json_is_object(r)) {
            errf(p, "%s: must be an object {tenant?, scope?, allow, deny?}, not %s", w, mg_cfg_kind(r));
            continue;
        }
        mg_auth_rule_t *rule = &c->rules[c->nrules++];
        const char *key;
        json_t *val;
        json_object_foreach(r, key, val)
        {
            snprintf(ww, sizeof ww, "%s.%s", w, key);
            if (strcmp(key, "tenant") == 0) {
                rule->tenant = get_str(p, val, ww, 1);
            } else if (strcmp(key, "scope") == 0) {
                rule->scope = get_str(p, val, ww, 1);
            } else if (strcmp(key, "allow") == 0 || strcmp(key, "deny") == 0) {
                int allow = key[0] == 'a';
                size_t n = 0;
                char **list = get_strs(p, val, ww, &n, 0);
                for (size_t k = 0; k < n; k++)
                    if (!pattern_ok(list[k])) {
                        char b[80];
                        errf(p,
                             "%s[%zu]: \"%s\" is not a pattern: use \"server\", \"server/tool\", "
                             "\"server/prefix_*\" or \"*/name\"",
                             ww, k, q(list[k], b, sizeof b));
                    }
                if (allow) {
                    rule->allow = list;
                    rule->nallow = n;
                } else {
                    rule->deny = list;
                    rule->ndeny = n;
                }
            } else {
                unknown(p, w, key, (const char *const[]){"tenant", "scope", "allow", "deny", NULL});
            }
        }
        if (rule->allow == NULL && rule->deny == NULL)
            errf(p, "%s: needs \"allow\" or \"deny\" (a list of \"server\" / \"server/name\" patterns)", w);
    }
}

/* ---- the auth object ---- */

static void tokens_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    parse_tokens(arg, dst, v);
}

static void oauth_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    parse_oauth(arg, dst, v);
}

static void rules_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    parse_rules(arg, dst, v);
}

static void resource_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    url_ok(c, where, ok, ((mg_auth_config_t *)dst)->resource);
}

#define A(f) MG_CFG_AT(mg_auth_config_t, f)
static const mg_cfg_field_t failure_fields[] = {
    {"max", MG_CFG_T_UNSIGNED, A(fail_max), 0, 1, 1000000, MG_CFG_SECONDS, NULL},
    {"window_s", MG_CFG_T_U64, A(fail_window_s), 0, 1, 86400, MG_CFG_SECONDS, NULL},
    {"block_s", MG_CFG_T_U64, A(fail_block_s), 0, 1, 86400, MG_CFG_SECONDS, NULL},
    MG_CFG_FIELD_END,
};
static const mg_cfg_object_t failure_object = {
    "gateway.auth.failure_limit", failure_fields, NULL, (size_t)-1, 0, 512, 0};

static void failure_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    if (mg_cfg_walk(c, &failure_object, v, dst, arg) != 0)
        mg_cfg_errf(c, "%s: must be an object {max, window_s, block_s}, not %s", where, mg_cfg_kind(v));
}

static const mg_cfg_field_t auth_fields[] = {
    {"tokens", MG_CFG_T_NONE, 0, 0, 0, 0, 0, tokens_read},
    {"oauth", MG_CFG_T_NONE, 0, 0, 0, 0, 0, oauth_read},
    {"resource", MG_CFG_T_STRING, A(resource), 0, 0, 0, MG_CFG_NONEMPTY, resource_check},
    {"scopes_supported", MG_CFG_T_STRINGS, A(scopes_supported), A(nscopes_supported), 0, 0, MG_CFG_NONEMPTY,
     NULL},
    {"rules", MG_CFG_T_NONE, 0, 0, 0, 0, 0, rules_read},
    {"failure_limit", MG_CFG_T_NONE, 0, 0, 0, 0, 0, failure_read},
    MG_CFG_FIELD_END,
};
#undef A
static const mg_cfg_object_t auth_object = {"gateway.auth", auth_fields, NULL, (size_t)-1, 0, 512, 0};

mg_auth_config_t *mg_auth_config_parse(const json_t *v, const mg_auth_config_ops_t *ops)
{
    pctx_t p = {{NULL, sink_err, NULL, q, 0, 0}, ops};
    p.c.ctx = &p;
    if (ops != NULL && ops->expand != NULL)
        p.c.expand = sink_expand;
    if (!json_is_object(v) || json_object_size(v) == 0) {
        errf(&p, "gateway.auth: must be a non-empty object {tokens?, oauth?, resource?, rules?}, not %s",
             json_is_object(v) ? "an empty object" : mg_cfg_kind(v));
        return NULL;
    }
    mg_auth_config_t *c = calloc(1, sizeof *c);
    c->fail_max = 20;
    c->fail_window_s = 60;
    c->fail_block_s = 60;
    char why[160];
    mg_cfg_walk(&p.c, &auth_object, v, c, &p);
    if (c->ntokens == 0 && c->oauth == NULL && json_object_get(v, "tokens") == NULL &&
        json_object_get(v, "oauth") == NULL)
        errf(&p,
             "gateway.auth: configure \"tokens\" (static bearer tokens), \"oauth\" (an identity provider), "
             "or both");
    if (c->oauth != NULL) {
        mg_auth_oauth_config_t *o = c->oauth;
        if (c->resource == NULL && o->naudiences > 0 &&
            mg_auth_url_check(o->audiences[0], why, sizeof why) == 0)
            c->resource = strdup(o->audiences[0]);
        if (o->naudiences == 0 && c->resource != NULL) {
            free_strs(o->audiences); /* every entry was refused: an empty vector */
            o->audiences = calloc(2, sizeof *o->audiences);
            o->audiences[0] = strdup(c->resource);
            o->naudiences = 1;
        }
        if (o->naudiences == 0 && json_object_get(json_object_get(v, "oauth"), "audience") == NULL)
            errf(&p,
                 "gateway.auth: oauth needs \"audience\" or \"resource\" (the gateway's canonical URI, "
                 "e.g. \"https://mcp.example.com/mcp\"): tokens issued for other services must be refused");
        else if (c->resource == NULL && json_object_get(v, "resource") == NULL)
            errf(&p, "gateway.auth.resource: required when oauth.audience is not an https URL (it is the "
                     "resource advertised in the protected resource metadata)");
    }
    if (c->scopes_supported == NULL && c->oauth != NULL && c->oauth->nrequired > 0) {
        c->scopes_supported = calloc(c->oauth->nrequired + 1, sizeof(char *));
        for (size_t i = 0; i < c->oauth->nrequired; i++)
            c->scopes_supported[i] = strdup(c->oauth->required_scopes[i]);
        c->nscopes_supported = c->oauth->nrequired;
    }
    if (p.c.bad) {
        mg_auth_config_free(c);
        return NULL;
    }
    return c;
}

void mg_auth_config_free(mg_auth_config_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->ntokens; i++) {
        free(c->tokens[i].name);
        free(c->tokens[i].tenant);
        free_strs(c->tokens[i].scopes);
    }
    free(c->tokens);
    if (c->oauth != NULL) {
        mg_auth_oauth_config_t *o = c->oauth;
        free(o->issuer);
        free_strs(o->audiences);
        free(o->jwks_uri);
        free_strs(o->required_scopes);
        free(o->tenant_claim);
        free(o->tenant);
        free(o->scope_claim);
        free(o->subject_claim);
        free(o->introspection_endpoint);
        free(o->client_id);
        if (o->client_secret != NULL) {
            memset(o->client_secret, 0, strlen(o->client_secret));
            free(o->client_secret);
        }
        free(o);
    }
    free(c->resource);
    free_strs(c->scopes_supported);
    for (size_t i = 0; i < c->nrules; i++) {
        free(c->rules[i].tenant);
        free(c->rules[i].scope);
        free_strs(c->rules[i].allow);
        free_strs(c->rules[i].deny);
    }
    free(c->rules);
    free(c);
}
