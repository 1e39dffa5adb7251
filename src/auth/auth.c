/*
 * auth.c - the auth phase on /mcp, its challenges, requests waiting for keys or introspection,
 * and the discovery documents under /.well-known/ (auth.h).
 *
 * Order for one request: query string (http/query.h: a credential-looking name or a parameter /mcp
 * does not read -> 400, with or without auth) -> client address blocked after repeated failures
 * (429) -> Authorization: Bearer present (401 + challenge) ->
 * static token -> JWT (keys cached; an unknown kid waits for one rate-limited JWKS refresh) ->
 * introspection (cached by token hash) -> required scopes (403 insufficient_scope) -> cb.
 * A waiting request is a waiter linked to the h2o request through a pool hook: when h2o disposes
 * the request first, the waiter is dropped and cb never runs.
 * Read next: jwt.c, jwks.c, docs/security.md (what each check defends against).
 */
#include "auth_int.h"
#include "../common/codec.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../http/query.h"
#include "../http/status.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct req_hook {
    mg_auth_waiter_t *w;
} req_hook_t;

struct mg_auth_waiter {
    mg_auth_t *a;
    h2o_req_t *req;
    req_hook_t *hook;
    char *token;
    size_t len;
    char addr[48];
    mg_auth_done_cb cb;
    void *data;
    int refreshed;          /* already waited for one JWKS refresh */
    mg_fetch_req_t *ireq;   /* introspection in flight */
    char hash[65];          /* token hash (introspection cache key) */
    mg_auth_waiter_t *next; /* in a->key_waiters */
};

/* ---------------------------------------------------------------- principals by request */

typedef struct principal_hook {
    mg_auth_t *a;
    mg_principal_t *p;
    char key[24];
} principal_hook_t;

/* h->a: the generation that authenticated the request, referenced until h2o disposes it (NULL
 * once mg_auth_free() detached it, or when it could not be recorded). */
static void principal_hook_dispose(void *v)
{
    principal_hook_t *h = v;
    if (h->a != NULL) {
        if (mg_map_get(&h->a->family->by_req, h->key) == h)
            mg_map_del(&h->a->family->by_req, h->key);
        mg_auth_unref(h->a);
    }
    mg_principal_unref(h->p);
}

mg_principal_t *mg_auth_principal_of(mg_auth_t *a, h2o_req_t *req)
{
    if (a == NULL)
        return NULL;
    char key[24];
    snprintf(key, sizeof key, "%p", (void *)req);
    principal_hook_t *h = mg_map_get(&a->family->by_req, key);
    return h != NULL ? h->p : NULL;
}

/* ---------------------------------------------------------------- answers */

static void add_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value, strlen(value));
}

static void send_text(h2o_req_t *req, int status, const char *ctype, const char *body)
{
    static h2o_generator_t gen = {NULL, NULL};
    size_t len = strlen(body);
    req->res.status = status;
    req->res.reason = mg_http_reason(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
    h2o_iovec_t b = h2o_strdup(&req->pool, body, len);
    req->res.content_length = len;
    h2o_start_response(req, &gen);
    h2o_send(req, &b, 1, H2O_SEND_STATE_FINAL);
}

/* A refusal into d: err (MG_E*) names the status and the JSON-RPC code (common/err.h); the gateway
 * answers it (auth.h). */
static void refusal(mg_auth_decision_t *d, int err, const char *message, const char *oauth_error)
{
    memset(d, 0, sizeof *d);
    d->err = err;
    d->oauth_error = oauth_error;
    snprintf(d->message, sizeof d->message, "%s", message);
}

/* Gives cb a refusal of err with a Retry-After of seconds. */
static void refuse_later(h2o_req_t *req, int err, const char *message, unsigned seconds, mg_auth_done_cb cb,
                         void *data)
{
    mg_auth_decision_t d;
    refusal(&d, err, message, NULL);
    d.retry_after_s = seconds;
    cb(data, req, &d);
}

/* "https://mcp.example/mcp" -> "https://mcp.example/.well-known/oauth-protected-resource/mcp" */
static int prm_url(const mg_auth_config_t *cfg, char *out, size_t cap)
{
    const char *r = cfg->resource;
    if (r == NULL || cfg->oauth == NULL)
        return -1;
    const char *s = strstr(r, "://");
    if (s == NULL)
        return -1;
    size_t origin = (size_t)(s + 3 - r) + strcspn(s + 3, "/?#");
    const char *path = r + origin;
    size_t plen = strcspn(path, "?#");
    if (plen == 1 && path[0] == '/')
        plen = 0;
    int n =
        snprintf(out, cap, "%.*s/.well-known/oauth-protected-resource%.*s", (int)origin, r, (int)plen, path);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static void append_scopes(char *buf, size_t cap, char *const *scopes, size_t n, int *first)
{
    size_t o = strlen(buf);
    for (size_t i = 0; i < n && o < cap; i++) {
        /* only RFC 6749 scope-tokens go into a header (a scope from a token is the IdP's text) */
        int clean = scopes[i][0] != '\0';
        for (const char *c = scopes[i]; *c && clean; c++)
            clean = (unsigned char)*c >= 0x21 && (unsigned char)*c <= 0x7e && *c != '"' && *c != '\\';
        if (!clean)
            continue;
        /* no duplicates */
        char probe[300];
        snprintf(probe, sizeof probe, " %s ", scopes[i]);
        char padded[1200];
        snprintf(padded, sizeof padded, " %s ", buf);
        if (strstr(padded, probe) != NULL)
            continue;
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", *first ? "" : " ", scopes[i]);
        *first = 0;
    }
}

void mg_auth_challenge(const mg_auth_decision_t *d, char *hdr, size_t cap)
{
    size_t o = 0;
#define APPEND(...)                                                                                          \
    do {                                                                                                     \
        if (o < cap) {                                                                                       \
            int n_ = snprintf(hdr + o, cap - o, __VA_ARGS__);                                                \
            o = n_ < 0 ? cap : o + (size_t)n_;                                                               \
        }                                                                                                    \
    } while (0)
    if (cap == 0)
        return;
    hdr[0] = '\0';
    APPEND("Bearer realm=\"mcpgate\"");
    if (d->error != NULL)
        APPEND(", error=\"%s\"", d->error);
    if (d->error_description[0] != '\0' && d->error != NULL)
        APPEND(", error_description=\"%s\"", d->error_description);
    if (d->resource_metadata[0] != '\0')
        APPEND(", resource_metadata=\"%s\"", d->resource_metadata);
    if (d->scope[0] != '\0')
        APPEND(", scope=\"%s\"", d->scope);
#undef APPEND
}

/*
 * A refusal MG_EUNAUTHORIZED (401) / MG_EFORBIDDEN (403) with the challenge into d. error NULL = no
 * credentials were sent (RFC 6750 3.1: no error code then). granted: the principal's scopes for
 * insufficient_scope.
 */
static void challenge(mg_auth_t *a, mg_auth_decision_t *d, int err, const char *error, const char *why,
                      const mg_principal_t *granted)
{
    const mg_auth_config_t *cfg = a->cfg;
    memset(d, 0, sizeof *d);
    int first = 1;
    if (cfg->oauth != NULL)
        append_scopes(d->scope, sizeof d->scope, cfg->oauth->required_scopes, cfg->oauth->nrequired, &first);
    if (granted != NULL)
        append_scopes(d->scope, sizeof d->scope, granted->scopes, granted->nscopes, &first);
    d->challenge = 1;
    d->error = error;
    if (why != NULL)
        snprintf(d->error_description, sizeof d->error_description, "%s", why);
    if (prm_url(cfg, d->resource_metadata, sizeof d->resource_metadata) != 0)
        d->resource_metadata[0] = '\0';
    if (err == MG_EFORBIDDEN)
        snprintf(d->message, sizeof d->message,
                 "Forbidden: insufficient scope: this gateway needs the scopes \"%s\"", d->scope);
    else if (error == NULL)
        snprintf(d->message, sizeof d->message, "Unauthorized: send Authorization: Bearer <token>%s",
                 cfg->oauth ? " (the WWW-Authenticate header names the protected resource metadata)" : "");
    else
        snprintf(d->message, sizeof d->message, "Unauthorized: %s", why ? why : "invalid token");
    d->err = err;
    d->oauth_error = error ? error : "unauthorized";
}

static void client_addr(h2o_req_t *req, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    snprintf(out, cap, "?");
    if (req->conn == NULL || req->conn->callbacks == NULL || req->conn->callbacks->get_peername == NULL)
        return;
    socklen_t n = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (n == 0)
        return;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)cap);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)cap);
}

static void log_failure(const char *addr, int status, const char *why)
{
    mg_log_json(MG_LOG_INFO, "authentication failed",
                json_pack("{s:s,s:i,s:s}", "client", addr, "status", status, "reason", why ? why : ""));
}

/* A presented credential failed: 401 and one more failure for the client address. */
static void fail(mg_auth_t *a, h2o_req_t *req, const char *addr, const char *why, mg_auth_done_cb cb,
                 void *data)
{
    uint64_t now = uv_now(a->loop);
    if (mg__rate_fail(&a->family->rate, addr, now, a->cfg->fail_max, a->cfg->fail_window_s * 1000,
                      a->cfg->fail_block_s * 1000))
        mg_log_json(MG_LOG_WARN, "client blocked after repeated authentication failures",
                    json_pack("{s:s,s:I}", "client", addr, "seconds", (json_int_t)a->cfg->fail_block_s));
    log_failure(addr, 401, why);
    mg_auth_decision_t d;
    challenge(a, &d, MG_EUNAUTHORIZED, "invalid_token", why, NULL);
    cb(data, req, &d);
}

/* ---------------------------------------------------------------- query strings */

/* The query string of /mcp, /sse or /messages (http/query.h): a credential-looking name or any
 * parameter mcpgate does not read on that path is refused with 400. Returns 0, or -1 with the
 * refusal in d. */
static int check_query(mg_auth_t *a, h2o_req_t *req, mg_auth_decision_t *d)
{
    if (req->query_at == SIZE_MAX || req->query_at >= req->path.len)
        return 0;
    const char *q = req->path.base + req->query_at + 1;
    size_t qlen = req->path.len - req->query_at - 1;
    const char *route = "/mcp";
    const char *const *allowed = MG_HTTP_MCP_QUERY_PARAMS;
    if (req->query_at == 9 && memcmp(req->path.base, "/messages", 9) == 0) {
        route = "/messages";
        allowed = MG_HTTP_MESSAGES_QUERY_PARAMS;
    } else if (req->query_at == 4 && memcmp(req->path.base, "/sse", 4) == 0) {
        route = "/sse";
        allowed = MG_HTTP_SSE_QUERY_PARAMS;
    }
    char name[80], msg[600], list[200] = "";
    mg_http_query_verdict_t v = mg_http_query_check(q, qlen, allowed, name, sizeof name);
    if (v == MG_HTTP_QUERY_OK)
        return 0;
    for (size_t i = 0, o = 0; allowed[i] != NULL && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s%s=%s", i ? ", " : "", allowed[i],
                              allowed == MG_HTTP_MESSAGES_QUERY_PARAMS ? "ID" : "NAME");
    switch (v) {
    case MG_HTTP_QUERY_CREDENTIAL:
        snprintf(
            msg, sizeof msg,
            "Bad Request: a credential was sent in the URL query string (parameter '%s'); URLs end up in "
            "logs and histories. Send it in the Authorization header instead (Authorization: Bearer "
            "<token>), and consider this token exposed",
            name);
        break;
    case MG_HTTP_QUERY_MALFORMED:
        snprintf(msg, sizeof msg,
                 "Bad Request: the URL query string has a parameter name that does not decode (a bad %%XX "
                 "escape, a control character or no name); %s reads only %s",
                 route, list);
        break;
    case MG_HTTP_QUERY_REPEATED:
        snprintf(msg, sizeof msg,
                 "Bad Request: query parameter '%s' is given more than once; %s reads only %s, once", name,
                 route, list);
        break;
    default:
        snprintf(msg, sizeof msg,
                 "Bad Request: unknown query parameter '%s' on %s; it reads only %s (credentials go in the "
                 "Authorization header)",
                 name, route, list);
        break;
    }
    if (a != NULL) {
        char addr[48];
        client_addr(req, addr, sizeof addr);
        log_failure(addr, 400,
                    v == MG_HTTP_QUERY_CREDENTIAL ? "credential in the query string"
                                                  : "query parameter refused");
    }
    refusal(d, MG_EREQUEST, msg, "invalid_request");
    return -1;
}

/* ---------------------------------------------------------------- the phase */

/* Success: cb with the principal (only err and principal are read then). */
static void go_on(h2o_req_t *req, mg_principal_t *p, mg_auth_done_cb cb, void *data)
{
    mg_auth_decision_t d;
    d.err = 0;
    d.principal = p;
    cb(data, req, &d);
}

static void attach_and_go(mg_auth_t *a, h2o_req_t *req, mg_principal_t *p, mg_auth_done_cb cb, void *data)
{
    principal_hook_t *h = h2o_mem_alloc_shared(&req->pool, sizeof *h, principal_hook_dispose);
    h->a = NULL;
    h->p = mg_principal_ref(p);
    snprintf(h->key, sizeof h->key, "%p", (void *)req);
    if (mg_map_set(&a->family->by_req, h->key, h) == 0)
        h->a = mg_auth_ref(a); /* the request holds the generation that authenticated it */
    /* else out of memory: the era sees no principal and refuses what needs one */
    go_on(req, p, cb, data);
}

/* Required scopes; returns -1 with the 403 refusal in d when one is missing. */
static int check_scopes(mg_auth_t *a, mg_auth_decision_t *d, const char *addr, mg_principal_t *p)
{
    const mg_auth_oauth_config_t *o = a->cfg->oauth;
    if (o == NULL || strcmp(p->source, "token") == 0)
        return 0;
    for (size_t i = 0; i < o->nrequired; i++) {
        if (!mg_principal_has_scope(p, o->required_scopes[i])) {
            log_failure(addr, 403, "insufficient scope");
            challenge(a, d, MG_EFORBIDDEN, "insufficient_scope", "the token lacks a required scope", p);
            return -1;
        }
    }
    return 0;
}

static void succeed(mg_auth_t *a, h2o_req_t *req, const char *addr, mg_principal_t *p, mg_auth_done_cb cb,
                    void *data)
{
    mg_auth_decision_t d;
    if (check_scopes(a, &d, addr, p) != 0) {
        cb(data, req, &d);
        return;
    }
    attach_and_go(a, req, p, cb, data);
}

mg_principal_t *mg__auth_principal_from_claims(mg_auth_t *a, const json_t *claims, const char *source,
                                               const char **why)
{
    const mg_auth_oauth_config_t *o = a->cfg->oauth;
    const char *sub = json_string_value(json_object_get(claims, o->subject_claim));
    if (sub == NULL || sub[0] == '\0' || strlen(sub) > 512) {
        *why = "token has no subject claim";
        return NULL;
    }
    const char *tenant = o->tenant;
    if (o->tenant_claim != NULL) {
        tenant = json_string_value(json_object_get(claims, o->tenant_claim));
        if (tenant == NULL || tenant[0] == '\0' || strlen(tenant) > 128) {
            *why = "token has no tenant claim";
            return NULL;
        }
    }
    const char *name = json_string_value(json_object_get(claims, "azp"));
    if (name == NULL)
        name = json_string_value(json_object_get(claims, "client_id"));
    size_t n = 0;
    char **scopes = mg__jwt_scopes(claims, o->scope_claim, &n);
    mg_principal_t *p =
        mg_principal_new(source, o->issuer, tenant, sub, name, (const char *const *)scopes, scopes ? n : 0);
    for (size_t i = 0; scopes != NULL && i < n; i++)
        free(scopes[i]);
    free(scopes);
    if (p == NULL)
        *why = "out of memory";
    return p;
}

/* Result of validating a JWT with the keys at hand: 0 done (answered or cb called), 1 = wait. */
static int try_jwt(mg_auth_t *a, h2o_req_t *req, const char *addr, const char *tok, size_t len, int refreshed,
                   mg_auth_done_cb cb, void *data)
{
    const mg_auth_oauth_config_t *o = a->cfg->oauth;
    mg_jwt_rules_t rules = {o->issuer,          (const char *const *)o->audiences,
                            o->naudiences,      o->algorithms,
                            o->clock_skew_s,    o->max_lifetime_s,
                            (int64_t)time(NULL)};
    json_t *claims = NULL;
    const char *why = NULL;
    int r = a->keys != NULL ? mg__jwt_validate(tok, len, a->keys, &rules, &claims, &why) : MG_ENOTFOUND;
    if (r == 0) {
        mg_principal_t *p = mg__auth_principal_from_claims(a, claims, "jwt", &why);
        json_decref(claims);
        if (p == NULL) {
            fail(a, req, addr, why, cb, data);
            return 0;
        }
        succeed(a, req, addr, p, cb, data);
        mg_principal_unref(p);
        return 0;
    }
    if (r == MG_ENOTFOUND && !refreshed && !a->stopping && mg__jwks_refresh(a, 0))
        return 1;
    if (a->keys == NULL) {
        log_failure(addr, 503, "the identity provider's keys are not available");
        refuse_later(req, MG_EAUTHDOWN,
                     "Service Unavailable: the identity provider's signing keys (JWKS) could not be fetched "
                     "yet; retry shortly",
                     5, cb, data);
        return 0;
    }
    fail(a, req, addr, why ? why : "token signed with an unknown key (kid)", cb, data);
    return 0;
}

/* ---- waiters ---- */

static void hook_dispose(void *v)
{
    req_hook_t *h = v;
    if (h->w != NULL) {
        h->w->req = NULL;
        h->w->hook = NULL;
    }
}

static mg_auth_waiter_t *waiter_new(mg_auth_t *a, h2o_req_t *req, const char *addr, const char *tok,
                                    size_t len, mg_auth_done_cb cb, void *data)
{
    if (a->nwaiters >= MG_AUTH_MAX_WAITERS)
        return NULL;
    mg_auth_waiter_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->token = malloc(len + 1);
    if (w->token == NULL) {
        free(w);
        return NULL;
    }
    memcpy(w->token, tok, len);
    w->token[len] = '\0';
    w->len = len;
    w->a = mg_auth_ref(a); /* a reload meanwhile: the request finishes on this generation */
    w->req = req;
    w->cb = cb;
    w->data = data;
    snprintf(w->addr, sizeof w->addr, "%s", addr);
    w->hook = h2o_mem_alloc_shared(&req->pool, sizeof *w->hook, hook_dispose);
    w->hook->w = w;
    a->nwaiters++;
    return w;
}

static void waiter_free(mg_auth_waiter_t *w)
{
    if (w->hook != NULL)
        w->hook->w = NULL;
    /* An introspection in flight owns the waiter until its callback (which frees it). */
    OPENSSL_cleanse(w->token, w->len);
    free(w->token);
    mg_auth_t *a = w->a;
    a->nwaiters--;
    free(w);
    mg_auth_unref(a); /* may retire a: released later, from its timer's close callback */
}

static void unavailable(h2o_req_t *req, const char *what, mg_auth_done_cb cb, void *data)
{
    refuse_later(req, MG_EAUTHDOWN, what, 5, cb, data);
}

void mg__auth_keys_settled(mg_auth_t *a)
{
    mg_auth_waiter_t *list = a->key_waiters;
    a->key_waiters = NULL;
    while (list != NULL) {
        mg_auth_waiter_t *w = list;
        list = w->next;
        if (w->req != NULL) {
            if (a->stopping)
                unavailable(w->req, "Service Unavailable: the gateway is shutting down", w->cb, w->data);
            else if (try_jwt(a, w->req, w->addr, w->token, w->len, 1, w->cb, w->data) == 1)
                fail(a, w->req, w->addr, "token signed with an unknown key (kid)", w->cb,
                     w->data); /* cannot happen */
        }
        waiter_free(w);
    }
}

static void introspect_done_cb(void *data, mg_principal_t *p, int unavail, const char *why)
{
    mg_auth_waiter_t *w = data;
    w->ireq = NULL;
    if (w->req != NULL) {
        if (p != NULL)
            succeed(w->a, w->req, w->addr, p, w->cb, w->data);
        else if (unavail)
            unavailable(w->req,
                        "Service Unavailable: the token introspection endpoint could not be reached; retry "
                        "shortly",
                        w->cb, w->data);
        else
            fail(w->a, w->req, w->addr, why, w->cb, w->data);
    }
    waiter_free(w);
}

void mg_auth_phase(mg_auth_t *a, h2o_req_t *req, mg_auth_done_cb cb, void *data)
{
    mg_auth_decision_t d;
    if (check_query(a, req, &d) != 0) {
        cb(data, req, &d);
        return;
    }
    /* No auth configured, or a CORS preflight (browsers never send credentials on it; it reaches no
     * session and no upstream): continue without a principal. */
    if (a == NULL || h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"))) {
        go_on(req, NULL, cb, data);
        return;
    }
    char addr[48];
    client_addr(req, addr, sizeof addr);
    uint64_t wait_s = mg__rate_blocked(&a->family->rate, addr, uv_now(a->loop));
    if (wait_s > 0) {
        refuse_later(req, MG_EAUTHBACKOFF,
                     "Too Many Requests: too many failed authentication attempts from this address; wait for "
                     "Retry-After seconds",
                     wait_s > UINT32_MAX ? UINT32_MAX : (unsigned)wait_s, cb, data);
        return;
    }
    int dup = 0;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i >= 0)
        dup = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, i) >= 0;
    if (i < 0) {
        log_failure(addr, 401, "no credentials");
        challenge(a, &d, MG_EUNAUTHORIZED, NULL, NULL, NULL);
        cb(data, req, &d);
        return;
    }
    h2o_iovec_t v = req->headers.entries[i].value;
    if (dup) {
        fail(a, req, addr, "more than one Authorization header", cb, data);
        return;
    }
    if (v.len < 7 || strncasecmp(v.base, "Bearer ", 7) != 0) {
        log_failure(addr, 401, "not a Bearer credential");
        challenge(a, &d, MG_EUNAUTHORIZED, "invalid_request",
                  "use the Bearer scheme: Authorization: Bearer <token>", NULL);
        cb(data, req, &d);
        return;
    }
    const char *tok = v.base + 7;
    size_t len = v.len - 7;
    while (len > 0 && *tok == ' ')
        tok++, len--;
    while (len > 0 && tok[len - 1] == ' ')
        len--;
    if (len == 0 || len > MG_AUTH_MAX_TOKEN || memchr(tok, ' ', len) != NULL) {
        fail(a, req, addr, len > MG_AUTH_MAX_TOKEN ? "token too long" : "malformed bearer token", cb, data);
        return;
    }
    const mg_auth_token_config_t *tc = mg__auth_token_find(a->cfg, tok, len);
    if (tc != NULL) {
        mg_principal_t *p = mg_principal_new("token", NULL, tc->tenant, tc->name, tc->name,
                                             (const char *const *)tc->scopes, tc->nscopes);
        if (p == NULL) {
            refusal(&d, MG_ENOMEM, "out of memory", NULL);
            cb(data, req, &d);
            return;
        }
        succeed(a, req, addr, p, cb, data);
        mg_principal_unref(p);
        return;
    }
    const mg_auth_oauth_config_t *o = a->cfg->oauth;
    if (o != NULL && mg__jwt_shaped(tok, len)) {
        if (try_jwt(a, req, addr, tok, len, 0, cb, data) == 0)
            return;
        mg_auth_waiter_t *w = waiter_new(a, req, addr, tok, len, cb, data);
        if (w == NULL) {
            unavailable(req, "Service Unavailable: too many requests waiting for the identity provider", cb,
                        data);
            return;
        }
        w->next = a->key_waiters;
        a->key_waiters = w;
        return;
    }
    if (o != NULL && o->introspection) {
        char hash[65];
        mg_sha256_hex(tok, len, hash);
        mg_principal_t *p = mg__introspect_cached(a, hash);
        if (p != NULL) {
            succeed(a, req, addr, p, cb, data);
            return;
        }
        mg_auth_waiter_t *w = waiter_new(a, req, addr, tok, len, cb, data);
        if (w == NULL) {
            unavailable(req, "Service Unavailable: too many requests waiting for the identity provider", cb,
                        data);
            return;
        }
        memcpy(w->hash, hash, sizeof hash);
        if (mg__introspect_start(a, w->token, w->len, w->hash, introspect_done_cb, w, &w->ireq) != 0) {
            w->ireq = NULL;
            waiter_free(w);
            unavailable(
                req,
                "Service Unavailable: the token introspection endpoint is not known yet (issuer metadata "
                "not fetched); retry shortly",
                cb, data);
        }
        return;
    }
    fail(a, req, addr, o != NULL ? "malformed token (not a JWT)" : "unknown token", cb, data);
}

/* ---------------------------------------------------------------- lifetime */

static mg_auth_t *generation_new(uv_loop_t *loop, mg_auth_family_t *fam, const mg_auth_config_t *cfg)
{
    mg_auth_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->loop = loop;
    a->cfg = cfg;
    a->refs = 1;
    if (mg_fetch_new(loop, &a->fetch) != 0) {
        free(a);
        return NULL;
    }
    uv_timer_init(loop, &a->refresh_timer);
    a->refresh_timer.data = a;
    if (cfg->oauth != NULL) {
        if (cfg->oauth->jwks_uri != NULL)
            a->jwks_uri = strdup(cfg->oauth->jwks_uri);
        if (cfg->oauth->introspection_endpoint != NULL)
            a->introspection_uri = strdup(cfg->oauth->introspection_endpoint);
    }
    a->family = fam;
    a->gen_next = fam->gens;
    fam->gens = a;
    fam->ngens++;
    return a;
}

int mg_auth_new(uv_loop_t *loop, const mg_auth_config_t *cfg, mg_auth_t **out)
{
    return mg_auth_next(loop, NULL, cfg, out);
}

int mg_auth_next(uv_loop_t *loop, mg_auth_t *prev, const mg_auth_config_t *cfg, mg_auth_t **out)
{
    mg_auth_family_t *fam = prev != NULL ? prev->family : NULL;
    if (fam == NULL) {
        fam = calloc(1, sizeof *fam);
        if (fam == NULL)
            return MG_ENOMEM;
        if (mg__rate_init(&fam->rate, MG_AUTH_RATE_SLOTS) != 0) {
            free(fam);
            return MG_ENOMEM;
        }
        mg_map_init(&fam->by_req);
    }
    mg_auth_t *a = generation_new(loop, fam, cfg);
    if (a == NULL) {
        if (prev == NULL) {
            mg__rate_dispose(&fam->rate);
            free(fam);
        }
        return MG_ENOMEM;
    }
    *out = a;
    return 0;
}

void mg_auth_start(mg_auth_t *a)
{
    if (a != NULL && a->cfg->oauth != NULL)
        mg__jwks_start(a);
}

/* Stops one generation: no more fetches or timers; requests waiting on it get 503. */
static void generation_stop(mg_auth_t *a)
{
    if (a->stopping)
        return;
    a->stopping = 1;
    uv_timer_stop(&a->refresh_timer);
    if (a->freq != NULL) {
        mg_fetch_cancel(a->freq);
        a->freq = NULL;
        a->fetching = 0;
    }
    mg__auth_keys_settled(a); /* answers waiting requests 503 */
}

static void family_free(mg_auth_family_t *fam)
{
    /* Requests still holding a principal hook (process exit) must not reach back into it. */
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&fam->by_req, &pos, &key, &val))
        ((principal_hook_t *)val)->a = NULL;
    mg_map_dispose(&fam->by_req);
    mg__rate_dispose(&fam->rate);
    free(fam);
}

static void generation_closed_cb(uv_handle_t *h)
{
    mg_auth_t *a = h->data;
    mg_auth_family_t *fam = a->family;
    mg_fetch_free(a->fetch);
    mg__introspect_dispose(a);
    json_decref(a->metadata);
    json_decref(a->keys);
    free(a->jwks_uri);
    free(a->introspection_uri);
    free(a);
    if (--fam->ngens == 0)
        family_free(fam);
}

/* No reference left (or shutdown): stopped now, released from the close callback, so a caller
 * inside one of a's own callbacks (a fetch ending, a waiter freed) never sees it vanish. */
static void generation_retire(mg_auth_t *a)
{
    if (a->retired)
        return;
    a->retired = 1;
    generation_stop(a);
    for (mg_auth_t **pp = &a->family->gens; *pp != NULL; pp = &(*pp)->gen_next)
        if (*pp == a) {
            *pp = a->gen_next;
            break;
        }
    uv_close((uv_handle_t *)&a->refresh_timer, generation_closed_cb);
}

mg_auth_t *mg_auth_ref(mg_auth_t *a)
{
    if (a != NULL)
        a->refs++;
    return a;
}

void mg_auth_unref(mg_auth_t *a)
{
    if (a == NULL || --a->refs > 0)
        return;
    generation_retire(a);
}

void mg_auth_stop(mg_auth_t *a)
{
    if (a == NULL)
        return;
    for (mg_auth_t *g = a->family->gens; g != NULL;) {
        mg_auth_ref(g); /* answering its waiters must not retire it under this loop */
        generation_stop(g);
        mg_auth_t *next = g->gen_next;
        mg_auth_unref(g);
        g = next;
    }
}

void mg_auth_free(mg_auth_t *a)
{
    if (a == NULL)
        return;
    mg_auth_family_t *fam = a->family;
    mg_auth_stop(a);
    /* Requests still holding a principal hook (process exit) let go of their generation. */
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&fam->by_req, &pos, &key, &val)) {
        principal_hook_t *h = val;
        mg_auth_t *g = h->a;
        h->a = NULL;
        mg_auth_unref(g);
    }
    mg_map_dispose(&fam->by_req);
    mg_map_init(&fam->by_req);
    while (fam->gens != NULL)
        generation_retire(fam->gens);
}

/* ---------------------------------------------------------------- /.well-known/ */

static int path_eq(h2o_req_t *req, const char *p)
{
    size_t n = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    return n == strlen(p) && memcmp(req->path.base, p, n) == 0;
}

static int path_prefix(h2o_req_t *req, const char *p)
{
    size_t n = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    size_t pl = strlen(p);
    return n >= pl && memcmp(req->path.base, p, pl) == 0 && (n == pl || req->path.base[pl] == '/');
}

static void send_json_doc(h2o_req_t *req, const json_t *doc)
{
    char *s = json_dumps(doc, JSON_COMPACT);
    add_header(req, "access-control-allow-origin", "*");
    add_header(req, "cache-control", "max-age=300");
    send_text(req, 200, "application/json", s ? s : "{}");
    free(s);
}

int mg_auth_handle_well_known(mg_auth_t *a, h2o_req_t *req)
{
    if (a == NULL || a->cfg->oauth == NULL)
        return -1;
    const mg_auth_config_t *cfg = a->cfg;
    if (path_prefix(req, "/.well-known/oauth-protected-resource")) {
        /* Both /.well-known/oauth-protected-resource and .../<resource path> (RFC 9728 3.1). */
        char url[600];
        size_t n = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
        int ok = prm_url(cfg, url, sizeof url) == 0;
        const char *suffix = strstr(url, "/.well-known/oauth-protected-resource");
        size_t base = strlen("/.well-known/oauth-protected-resource");
        if (!(n == base ||
              (ok && suffix != NULL && n == strlen(suffix) && memcmp(req->path.base, suffix, n) == 0)))
            return -1;
        json_t *doc =
            json_pack("{s:s,s:[s],s:[s],s:s}", "resource", cfg->resource, "authorization_servers",
                      cfg->oauth->issuer, "bearer_methods_supported", "header", "resource_name", "mcpgate");
        json_t *sc = json_array();
        for (size_t i = 0; i < cfg->nscopes_supported; i++)
            json_array_append_new(sc, json_string(cfg->scopes_supported[i]));
        json_object_set_new(doc, "scopes_supported", sc);
        send_json_doc(req, doc);
        json_decref(doc);
        return 0;
    }
    if (path_prefix(req, "/.well-known/oauth-authorization-server") ||
        path_eq(req, "/.well-known/openid-configuration")) {
        /* 2025-03-26 clients look for the authorization server's metadata on the MCP origin. */
        if (a->metadata != NULL) {
            send_json_doc(req, a->metadata);
            return 0;
        }
        char loc[700];
        const char *iss = cfg->oauth->issuer;
        size_t il = strlen(iss);
        if (il > 0 && iss[il - 1] == '/')
            il--;
        snprintf(loc, sizeof loc, "%.*s/.well-known/openid-configuration", (int)il, iss);
        add_header(req, "location", loc);
        add_header(req, "access-control-allow-origin", "*");
        req->res.status = 302;
        send_text(req, 302, "text/plain", "see the identity provider's metadata\n");
        return 0;
    }
    return -1;
}
