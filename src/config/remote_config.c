/*
 * remote_config.c - parses a remote server entry (url/serverUrl/httpUrl, type, headers, ca,
 * timeouts, tenantCredentials) and gateway.egress into remote_config.h's plain data. Called by
 * config.c's server and gateway walks; problems are reported through the parse's context and the
 * walk goes on. Header values are expanded like env values and kept with their source; a message
 * never quotes an expanded value. Read next: remote_config.h, upstream/remote.c.
 */
#include "remote_config.h"
#include "config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RD (&ctx->rd)

#define SEC ((uint64_t)1000)
#define MIN (60 * SEC)
#define DAY (24 * 60 * MIN)

/* Keys this file reads; the common ones (disabled, isolation, timeoutMs, tools, pinning, scan, the
 * client-side settings) are config.c's. */
static const char *const remote_keys[] = {"url",
                                          "serverUrl",
                                          "httpUrl",
                                          "type",
                                          "transportType",
                                          "headers",
                                          "ca",
                                          "connectTimeoutMs",
                                          "firstByteTimeoutMs",
                                          "idleStreamTimeoutMs",
                                          "maxResponseBytes",
                                          "tenantCredentials",
                                          "auth",
                                          NULL};

/* Keys of a stdio entry that make no sense on a remote one. */
static const char *const stdio_only[] = {"command",   "args",    "env",     "cwd",
                                         "instances", "sandbox", "envFile", NULL};

static int in_list(const char *key, const char *const *list)
{
    for (size_t i = 0; list[i] != NULL; i++)
        if (strcmp(key, list[i]) == 0)
            return 1;
    return 0;
}

/* "headers" of a remote server or of one tenant's credentials: hop-by-hop and framing headers, and
 * those carrying the MCP transport, are the gateway's to set. */
static void parse_headers(mg__config_ctx_t *ctx, const char *sw, const char *what, const json_t *v,
                          int lenient, mg_kv_t **out, size_t *n)
{
    static const char *const reserved[] = {"host",
                                           "content-length",
                                           "content-type",
                                           "transfer-encoding",
                                           "connection",
                                           "accept",
                                           "mcp-session-id",
                                           "mcp-protocol-version",
                                           "last-event-id",
                                           "upgrade",
                                           "te",
                                           "keep-alive",
                                           NULL};
    static const mg__headers_rules_t rules = {
        .reserved = reserved,
        .taken = "is set by the gateway itself (it carries the MCP transport): remove it",
        .example = "{\"Authorization\": \"Bearer ${env:TOKEN}\"}",
    };
    char at[256];
    snprintf(at, sizeof at, "%s: %s", sw, what);
    mg__config_headers(ctx, at, v, lenient, &rules, out, n);
}

static void parse_tenants(mg__config_ctx_t *ctx, mg_remote_config_t *r, const char *sw, const json_t *v,
                          int lenient)
{
    if (!json_is_object(v)) {
        mg__config_errf(ctx, "%s: tenantCredentials must map tenant names to {\"headers\": {...}}, not %s",
                        sw, mg_cfg_kind(v));
        return;
    }
    size_t cap = json_object_size(v);
    if (cap == 0)
        return;
    r->tenants = calloc(cap, sizeof *r->tenants);
    if (r->tenants == NULL) {
        ctx->nomem = 1;
        return;
    }
    const char *tenant;
    json_t *tv;
    json_object_foreach((json_t *)v, tenant, tv)
    {
        char what[160], q[80];
        snprintf(what, sizeof what, "tenantCredentials \"%s\"", mg_cfg_quote(tenant, q, sizeof q));
        const json_t *h = json_object_get(tv, "headers");
        if (!json_is_object(tv) || h == NULL || json_object_size(tv) != 1) {
            mg__config_errf(ctx, "%s: %s must be {\"headers\": {\"Authorization\": \"Bearer ${env:A_KEY}\"}}",
                            sw, what);
            continue;
        }
        mg_remote_tenant_t *t = &r->tenants[r->ntenants];
        t->tenant = mg__config_strdup(ctx, tenant);
        if (t->tenant == NULL)
            continue;
        r->ntenants++;
        char hw[200];
        snprintf(hw, sizeof hw, "%s headers", what);
        parse_headers(ctx, sw, hw, h, lenient, &t->headers, &t->nheaders);
    }
}

/* What the clientSecret reader needs of the parse (it keeps where the secret came from). */
typedef struct auth_walk {
    mg__config_ctx_t *ctx;
    int lenient;
} auth_walk_t;

static void secret_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    const auth_walk_t *w = arg;
    mg_remote_auth_t *a = dst;
    if (!json_is_string(v))
        mg_cfg_errf(c, "%s: must be a string", where);
    else
        mg__config_expand(w->ctx, json_string_value(v), where, w->lenient, &a->client_secret,
                          &a->secret_source);
}

#define A(f) MG_CFG_AT(mg_remote_auth_t, f)
static const mg_cfg_field_t auth_fields[] = {
    {"type", MG_CFG_T_NONE, 0, 0, 0, 0, 0, NULL}, /* read first, by parse_auth */
    {"tokenUrl", MG_CFG_T_STRING, A(token_url), 0, 0, 0, MG_CFG_NONEMPTY, NULL},
    {"issuer", MG_CFG_T_STRING, A(issuer), 0, 0, 0, MG_CFG_NONEMPTY, NULL},
    {"clientId", MG_CFG_T_STRING, A(client_id), 0, 0, 0, MG_CFG_NONEMPTY, NULL},
    {"clientSecret", MG_CFG_T_NONE, 0, 0, 0, 0, 0, secret_read},
    {"scope", MG_CFG_T_STRING, A(scope), 0, 0, 0, MG_CFG_NONEMPTY, NULL},
    {"resource", MG_CFG_T_STRING, A(resource), 0, 0, 0, MG_CFG_NONEMPTY, NULL},
    MG_CFG_FIELD_END,
};
#undef A
/* where ("<server>: auth") and extra (lenient) are set per parse */
static const mg_cfg_object_t auth_object = {NULL, auth_fields, NULL, 7, MG_CFG_SUGGEST, 0, 0};

/* "auth": {"type": "client_credentials", "tokenUrl" | "issuer", "clientId", "clientSecret", "scope",
 * "resource"}. */
static void parse_auth(mg__config_ctx_t *ctx, mg_remote_config_t *r, const char *sw, const json_t *v,
                       int lenient)
{
    char where[200];
    const char *type = json_string_value(json_object_get(v, "type"));
    if (!json_is_object(v) || type == NULL) {
        mg__config_errf(
            ctx,
            "%s: auth must be {\"type\": \"client_credentials\", \"tokenUrl\": ..., \"clientId\": ..., "
            "\"clientSecret\": ...}",
            sw);
        return;
    }
    if (strcmp(type, "client_credentials") != 0 && strcmp(type, "token_exchange") != 0) {
        mg__config_errf(ctx, "%s: auth: type must be \"client_credentials\" or \"token_exchange\"", sw);
        return;
    }
    mg_remote_auth_t *a = calloc(1, sizeof *a);
    if (a == NULL) {
        ctx->nomem = 1;
        return;
    }
    r->auth = a;
    a->exchange = strcmp(type, "token_exchange") == 0;
    snprintf(where, sizeof where, "%s: auth", sw);
    mg_cfg_object_t o = auth_object;
    o.where = where;
    o.extra = lenient ? MG_CFG_LENIENT : 0;
    auth_walk_t w = {ctx, lenient};
    mg_cfg_walk(RD, &o, v, a, &w);
    const char *urls[] = {a->token_url, a->issuer};
    for (int i = 0; i < 2; i++)
        if (urls[i] != NULL && strncasecmp(urls[i], "https://", 8) != 0 &&
            strncasecmp(urls[i], "http://", 7) != 0)
            mg__config_errf(ctx, "%s: auth.%s: must be an http:// or https:// URL", sw,
                            i ? "issuer" : "tokenUrl");
    if ((a->token_url == NULL) == (a->issuer == NULL))
        mg__config_errf(ctx,
                        "%s: auth: give either tokenUrl (the token endpoint) or issuer (discovered), not %s",
                        sw, a->token_url ? "both" : "neither");
    if (a->client_id == NULL || a->client_secret == NULL)
        mg__config_errf(ctx, "%s: auth: clientId and clientSecret are required (the gateway's own client)",
                        sw);
}

static void parse_url(mg__config_ctx_t *ctx, mg_remote_config_t *r, const char *sw, const char *key,
                      const json_t *v, int lenient)
{
    char where[160];
    snprintf(where, sizeof where, "%s: %s", sw, key);
    if (r->url != NULL) {
        mg__config_errf(ctx, "%s: the entry already has \"%s\": give one URL", where, r->url_key);
        return;
    }
    if (mg_cfg_string(RD, where, v, (lenient ? MG_CFG_LENIENT : 0) | MG_CFG_NONEMPTY, &r->url) != 0)
        return;
    r->url_key = key;
    if (strncasecmp(r->url, "http://", 7) != 0 && strncasecmp(r->url, "https://", 8) != 0) {
        mg__config_errf(ctx, "%s: must be an http:// or https:// URL of the server's MCP endpoint", where);
        return;
    }
    const char *host = strstr(r->url, "://") + 3;
    if (*host == '\0' || *host == '/' || *host == ':' || strchr(r->url, '#') != NULL ||
        strpbrk(r->url, " \t\r\n") != NULL) {
        mg__config_errf(ctx, "%s: is not a URL with a host (e.g. https://mcp.example.com/mcp)", where);
        return;
    }
    size_t hl = strcspn(host, "/?");
    if (memchr(host, '@', hl) != NULL)
        mg__config_errf(
            ctx, "%s: credentials in the URL (user:password@) are not sent: put them in \"headers\"", where);
}

int mg__config_parse_remote(mg__config_ctx_t *ctx, mg_server_config_t *s, const char *sw, const json_t *obj,
                            int lenient)
{
    mg_remote_config_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        ctx->nomem = 1;
        return -1;
    }
    s->remote = r;
    r->connect_timeout_ms = 10 * SEC;
    r->idle_stream_ms = 5 * MIN;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        char where[160], q[80];
        snprintf(where, sizeof where, "%s: %s", sw, mg_cfg_quote(key, q, sizeof q));
        uint64_t x;
        if (strcmp(key, "url") == 0 || strcmp(key, "serverUrl") == 0 || strcmp(key, "httpUrl") == 0) {
            parse_url(ctx, r, sw,
                      strcmp(key, "url") == 0 ? "url"
                      : key[0] == 's'         ? "serverUrl"
                                              : "httpUrl",
                      v, lenient);
        } else if (strcmp(key, "type") == 0 || strcmp(key, "transportType") == 0) {
            const char *t = json_string_value(v);
            if (t != NULL && (strcmp(t, "http") == 0 || strcmp(t, "streamable-http") == 0 ||
                              strcmp(t, "streamableHttp") == 0 || strcmp(t, "streamable_http") == 0)) {
                r->transport = MG_REMOTE_HTTP;
            } else if (t != NULL && strcmp(t, "sse") == 0) {
                r->transport = MG_REMOTE_SSE;
            } else {
                mg__config_errf(
                    ctx,
                    "%s: must be \"http\" (or \"streamable-http\") or \"sse\" for a server with a "
                    "URL; remove it to have the gateway probe the server",
                    where);
            }
        } else if (strcmp(key, "headers") == 0) {
            parse_headers(ctx, sw, "headers", v, lenient, &r->headers, &r->nheaders);
        } else if (strcmp(key, "tenantCredentials") == 0) {
            parse_tenants(ctx, r, sw, v, lenient);
        } else if (strcmp(key, "ca") == 0) {
            mg_cfg_string(RD, where, v, MG_CFG_NONEMPTY | (lenient ? MG_CFG_LENIENT : 0), &r->ca);
        } else if (strcmp(key, "connectTimeoutMs") == 0) {
            if (mg_cfg_uint_range(RD, where, v, 100, 5 * MIN, "100 ms..5 min", &x) == 0)
                r->connect_timeout_ms = x;
        } else if (strcmp(key, "firstByteTimeoutMs") == 0) {
            if (mg_cfg_uint_range(RD, where, v, 100, DAY, "100 ms..24 h", &x) == 0)
                r->first_byte_ms = x;
        } else if (strcmp(key, "idleStreamTimeoutMs") == 0) {
            if (mg_cfg_uint_range(RD, where, v, SEC, DAY, "1 s..24 h", &x) == 0)
                r->idle_stream_ms = x;
        } else if (strcmp(key, "maxResponseBytes") == 0) {
            if (mg_cfg_uint_range(RD, where, v, 1024, (uint64_t)1 << 30, "1 KiB..1 GiB", &x) == 0)
                r->max_response_bytes = (size_t)x;
        } else if (strcmp(key, "auth") == 0) {
            parse_auth(ctx, r, sw, v, lenient);
        } else if (in_list(key, stdio_only)) {
            mg__config_errf(ctx,
                            "%s: belongs to a stdio server (command/args); this entry is a remote server "
                            "(url/type), reached over HTTP: remove one or the other",
                            where);
        }
        /* the other keys are the common ones config.c reads, or unknown (config.c reports them) */
    }
    for (size_t i = 0; r->auth != NULL && i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].key, "authorization") == 0)
            mg__config_errf(ctx, "%s: headers \"Authorization\" and auth both give the credential: keep one",
                            sw);
    if (r->auth != NULL && r->ntenants > 0)
        mg__config_errf(ctx, "%s: auth and tenantCredentials both give the credential: keep one", sw);
    if (r->url == NULL)
        mg__config_errf(
            ctx, "%s: a remote server needs \"url\" (its MCP endpoint, e.g. https://mcp.example.com/mcp)",
            sw);
    if (r->ntenants > 0 && s->isolation != MG_ISOLATION_TENANT)
        mg__config_errf(ctx,
                        "%s: tenantCredentials needs \"isolation\": \"tenant\" (one upstream connection pool "
                        "per tenant, each with its own credential)",
                        sw);
    return 0;
}

int mg__config_remote_key(const char *key)
{
    return in_list(key, remote_keys) || in_list(key, stdio_only);
}

/* The CIDRs of allowCidrs, once read as text (a failed read parses nothing). */
static void cidrs_parse(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    mg_egress_config_t *e = dst;
    if (!ok)
        return;
    e->allow = calloc(e->nallow + 1, sizeof *e->allow);
    if (e->allow == NULL) {
        ((mg__config_ctx_t *)arg)->nomem = 1;
        return;
    }
    for (size_t i = 0; i < e->nallow; i++) {
        char why[160];
        if (mg_cidr_parse(e->allow_text[i], &e->allow[i], why, sizeof why) != 0)
            mg_cfg_errf(c, "%s[%zu]: %s", where, i, why);
    }
}

static const mg_cfg_field_t egress_fields[] = {
    {"allowCidrs", MG_CFG_T_STRINGS, MG_CFG_AT(mg_egress_config_t, allow_text),
     MG_CFG_AT(mg_egress_config_t, nallow), 0, 0, MG_CFG_RAW, cidrs_parse},
    MG_CFG_FIELD_END,
};
static const mg_cfg_object_t egress_object = {"gateway.egress", egress_fields, NULL, 1, MG_CFG_SUGGEST, 0, 0};

void mg__config_parse_egress(mg__config_ctx_t *ctx, mg_config_t *cfg, const json_t *v)
{
    mg_egress_config_t *e = &cfg->egress;
    if (!json_is_object(v)) {
        mg__config_errf(ctx,
                        "gateway.egress: must be an object like {\"allowCidrs\": [\"10.1.0.0/16\"]}, not %s",
                        mg_cfg_kind(v));
        return;
    }
    mg_cfg_walk(RD, &egress_object, v, e, ctx);
}

const mg_remote_tenant_t *mg_remote_config_tenant(const mg_remote_config_t *r, const char *tenant)
{
    if (r == NULL || tenant == NULL)
        return NULL;
    for (size_t i = 0; i < r->ntenants; i++)
        if (strcmp(r->tenants[i].tenant, tenant) == 0)
            return &r->tenants[i];
    return NULL;
}

static void kv_free(mg_kv_t *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
        free(kv[i].source);
    }
    free(kv);
}

void mg_remote_config_free(mg_remote_config_t *r)
{
    if (r == NULL)
        return;
    free(r->url);
    kv_free(r->headers, r->nheaders);
    for (size_t i = 0; i < r->ntenants; i++) {
        free(r->tenants[i].tenant);
        kv_free(r->tenants[i].headers, r->tenants[i].nheaders);
    }
    free(r->tenants);
    if (r->auth != NULL) {
        free(r->auth->token_url);
        free(r->auth->issuer);
        free(r->auth->client_id);
        free(r->auth->client_secret);
        free(r->auth->secret_source);
        free(r->auth->scope);
        free(r->auth->resource);
        free(r->auth);
    }
    free(r->ca);
    free(r);
}

void mg_egress_config_dispose(mg_egress_config_t *e)
{
    free(e->allow);
    mg_cfg_strings_free(e->allow_text, e->nallow);
    memset(e, 0, sizeof *e);
}
