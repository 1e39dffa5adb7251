/*
 * remote_auth.c - the remote upstream's credentials from an identity provider (config "auth"): the
 * gateway's own token by OAuth client credentials, and RFC 8693 token exchange per caller. Called by
 * remote.c (before the handshake, before each request, after a 401); every fetch (discovery, token,
 * exchange) goes through mg__egress_request() (remote_egress.c: the SSRF guard, the address pinned,
 * no redirects). What waits for a token stays in
 * the upstream's queue and goes on through mg__remote_drain_queue() or the handshake. Tokens and the
 * client secret are never logged. Read next: remote.c, docs/configuration.md ("Remote servers").
 */
#include "../common/err.h"
#include "remote_int.h"
#include "upstream_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void set_str(char **dst, char *s) /* takes s */
{
    free(*dst);
    *dst = s;
}

static void form_add(char *b, size_t cap, const char *name, const char *s);

/* ---- token exchange (RFC 8693): a token of this server's own for each caller ----
 *
 * auth type "token_exchange": the session's own requests (discover, initialize, the GET stream,
 * notifications, DELETE) carry the gateway's client-credentials token; each call carries a token
 * the token endpoint issued in exchange for the caller's (subject_token = the caller's bearer,
 * resource = this server). Exchanged tokens are kept per caller token (by its SHA-256, at most
 * TE_MAX, the oldest dropped first) until near expiry. A call without a caller token is refused. */

#define TE_MAX 256

te_entry_t *mg__remote_te_lookup(remote_t *r, const char *subject)
{
    char key[MG_SHA256_HEX];
    mg_sha256_hex(subject, strlen(subject), key);
    te_entry_t **pp = &r->te, *e;
    size_t n = 0;
    for (e = r->te; e != NULL; e = e->next, n++)
        if (strcmp(e->key, key) == 0)
            return e;
    if (n >= TE_MAX) { /* drop the oldest idle entry (the list's tail end) */
        te_entry_t **victim = NULL;
        for (pp = &r->te; *pp != NULL; pp = &(*pp)->next)
            if ((*pp)->call == NULL)
                victim = pp;
        if (victim != NULL) {
            te_entry_t *v = *victim;
            *victim = v->next;
            free(v->hdr);
            free(v->subject);
            free(v->buf);
            free(v);
        }
    }
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->r = r;
    memcpy(e->key, key, sizeof key);
    e->next = r->te;
    r->te = e;
    return e;
}

void mg__remote_te_free_all(remote_t *r)
{
    while (r->te != NULL) {
        te_entry_t *e = r->te;
        r->te = e->next;
        mg__egress_cancel(e->call);
        free(e->hdr);
        free(e->subject);
        free(e->buf);
        free(e);
    }
}

static void te_body_cb(void *data, const char *bytes, size_t len)
{
    te_entry_t *e = data;
    if (e->len + len > 64 * 1024)
        return;
    char *n = realloc(e->buf, e->len + len + 1);
    if (n == NULL)
        return;
    e->buf = n;
    memcpy(e->buf + e->len, bytes, len);
    e->len += len;
    e->buf[e->len] = '\0';
}

static void te_done_cb(void *data, int err, int status, const char *why)
{
    te_entry_t *e = data;
    remote_t *r = e->r;
    e->call = NULL;
    json_t *j = err == 0 && e->buf != NULL ? json_loads(e->buf, 0, NULL) : NULL;
    free(e->buf);
    e->buf = NULL;
    e->len = 0;
    free(e->subject);
    e->subject = NULL;
    const char *tok = json_string_value(json_object_get(j, "access_token"));
    if (err == 0 && status == 200 && tok != NULL && tok[0] != '\0' && strpbrk(tok, "\r\n") == NULL) {
        json_int_t ttl_s = json_integer_value(json_object_get(j, "expires_in"));
        uint64_t ttl = (uint64_t)(ttl_s > 0 ? ttl_s : 300) * 1000;
        set_str(&e->hdr, mg__fmt("Bearer %s", tok));
        e->refresh_ms = uv_now(r->loop) + ttl - (ttl / 10 < 60000 ? ttl / 10 : 60000);
        json_decref(j);
        mg__remote_drain_queue(r);
        return;
    }
    const char *oe = json_string_value(json_object_get(j, "error"));
    char *m = err != 0
                  ? mg__fmt("the gateway could not reach the token endpoint of the '%s' server to exchange "
                            "the caller's token; ask the gateway's operator",
                            r->server->name)
                  : mg__fmt("the token exchange for the '%s' server refused the caller's token (HTTP "
                            "status%s%s)",
                            r->server->name, oe ? ": " : "", oe ? oe : "");
    mg_log_limited(&r->lim, uv_now(r->loop), MG_LOG_WARN, "remote upstream token exchange failed",
                   json_pack("{s:s,s:i,s:s}", "upstream", r->server->name, "status", status, "error",
                             oe ? oe : (why ? why : "")));
    json_decref(j);
    /* the calls that waited for this caller's token fail; the entry stays empty (next call retries) */
    for (rreq_t *q = r->queue, *next; q != NULL; q = next) {
        next = q->next;
        if (q->te == e)
            mg__remote_req_finish(q, MG_EFORBIDDEN, NULL, m);
    }
    free(m);
}

void mg__remote_te_fetch(remote_t *r, te_entry_t *e, const char *subject)
{
    if (e->call != NULL || r->http == NULL || r->token_endpoint == NULL)
        return;
    const mg_remote_auth_t *a = r->rc->auth;
    char body[8192] = "";
    form_add(body, sizeof body, "grant_type", "urn:ietf:params:oauth:grant-type:token-exchange");
    form_add(body, sizeof body, "subject_token", subject);
    form_add(body, sizeof body, "subject_token_type", "urn:ietf:params:oauth:token-type:access_token");
    form_add(body, sizeof body, "resource", a->resource ? a->resource : r->rc->url);
    form_add(body, sizeof body, "scope", a->scope);
    const char *h[4] = {"accept", "application/json", "content-type", "application/x-www-form-urlencoded"};
    mg_http_req_t hr;
    memset(&hr, 0, sizeof hr);
    hr.url = r->token_endpoint;
    hr.headers = h;
    hr.nheaders = 2;
    hr.body = body;
    hr.len = strlen(body);
    hr.timeout_ms = 10000;
    hr.connect_timeout_ms = (long)r->rc->connect_timeout_ms;
    hr.ca_file = r->rc->ca;
    hr.max_body = 64 * 1024;
    hr.basic_user = a->client_id;
    hr.basic_pass = a->client_secret;
    if (mg__egress_request(r->loop, r->http, r->egress, &hr, te_body_cb, te_done_cb, e, &e->call) != 0)
        e->call = NULL;
}

/* ---- the gateway's own token for this server: OAuth client credentials (config "auth") ----
 *
 * Fetched before the handshake and whenever it is about to expire (refreshed when less than a tenth
 * of its lifetime, at most 60 s, is left); a 401 on a request drops it, fetches a new one and sends
 * that request once more. The token endpoint is "tokenUrl", or found from "issuer" (RFC 8414, then
 * OpenID discovery; it must be of the issuer's origin). The request carries "resource" (RFC 8707),
 * the server's URL unless configured. Never logged. */

int mg__remote_token_ready(const remote_t *r)
{
    return r->rc->auth == NULL || (r->auth_hdr != NULL && uv_now(r->loop) < r->token_refresh_ms);
}

/* The token arrived (err 0) or could not be had: whoever waits goes on or fails. */
static void token_settled(remote_t *r, char *failure)
{
    r->token_fetching = 0;
    if (failure != NULL) {
        mg_log_json(MG_LOG_WARN, "remote upstream token not obtained",
                    json_pack("{s:s,s:s}", "upstream", r->server->name, "error", failure));
        char *cm =
            mg__fmt("the gateway could not get a token for the '%s' server; ask the gateway's operator",
                    r->server->name);
        if (r->wait_token) {
            r->wait_token = 0;
            mg__remote_session_failed(r, failure, cm, 0);
            return;
        }
        free(failure);
        mg__remote_fail_queue(r, MG_EUPSTREAMDOWN, cm);
        free(cm);
        return;
    }
    if (r->wait_token) {
        r->wait_token = 0;
        mg__remote_begin_handshake(r);
        return;
    }
    mg__remote_drain_queue(r);
}

static void token_body_cb(void *data, const char *bytes, size_t len)
{
    remote_t *r = data;
    if (r->tok_len + len > 64 * 1024)
        return;
    char *n = realloc(r->tok_buf, r->tok_len + len + 1);
    if (n == NULL)
        return;
    r->tok_buf = n;
    memcpy(r->tok_buf + r->tok_len, bytes, len);
    r->tok_len += len;
    r->tok_buf[r->tok_len] = '\0';
}

static void token_done_cb(void *data, int err, int status, const char *why)
{
    remote_t *r = data;
    r->token_call = NULL;
    json_t *j = err == 0 && r->tok_buf != NULL ? json_loads(r->tok_buf, 0, NULL) : NULL;
    free(r->tok_buf);
    r->tok_buf = NULL;
    r->tok_len = 0;
    const char *name = r->server->name;
    if (r->token_endpoint == NULL) { /* a discovery document */
        const char *te = json_string_value(json_object_get(j, "token_endpoint"));
        const char *iss = r->rc->auth->issuer;
        size_t ol = (size_t)(strstr(iss, "://") + 3 - iss);
        ol += strcspn(iss + ol, "/?#");
        if (status == 200 && te != NULL && strncasecmp(te, iss, ol) == 0 && strchr("/?", te[ol]) != NULL) {
            r->token_endpoint = strdup(te);
            json_decref(j);
            r->token_fetching = 0;
            mg__remote_token_fetch(r);
            return;
        }
        if (status == 200 && te != NULL) { /* another origin: never followed (nor guarded into) */
            token_settled(r, mg__fmt("upstream '%s': auth: %s's metadata names a token_endpoint of another "
                                     "origin (%.200s); it is not used: the token endpoint must be on the "
                                     "issuer's origin, or set auth.tokenUrl",
                                     name, iss, te));
            json_decref(j);
            r->tried_oidc = 0;
            return;
        }
        json_decref(j);
        if (!r->tried_oidc && err == 0) { /* RFC 8414 first, then OpenID discovery */
            r->tried_oidc = 1;
            r->token_fetching = 0;
            mg__remote_token_fetch(r);
            return;
        }
        r->tried_oidc = 0;
        if (err != 0)
            token_settled(r, mg__fmt("upstream '%s': auth: the issuer %s's metadata could not be fetched: %s",
                                     name, iss, why ? why : mg_strerror(err)));
        else
            token_settled(r, mg__fmt("upstream '%s': auth: no token_endpoint in %s's metadata (HTTP %d)",
                                     name, iss, status));
        return;
    }
    const char *tok = json_string_value(json_object_get(j, "access_token"));
    if (err != 0 || status != 200 || tok == NULL || tok[0] == '\0' || strpbrk(tok, "\r\n") != NULL) {
        const char *oe = json_string_value(json_object_get(j, "error"));
        if (err != 0)
            token_settled(r, mg__fmt("upstream '%s': auth: the token endpoint %s could not be reached: %s",
                                     name, r->token_endpoint, why ? why : mg_strerror(err)));
        else
            token_settled(r, mg__fmt("upstream '%s': auth: the token endpoint %s answered HTTP %d%s%s", name,
                                     r->token_endpoint, status, oe ? ": " : "", oe ? oe : ""));
        json_decref(j);
        return;
    }
    json_int_t ttl_s = json_integer_value(json_object_get(j, "expires_in"));
    uint64_t ttl = (uint64_t)(ttl_s > 0 ? ttl_s : 300) * 1000;
    uint64_t margin = ttl / 10 < 60000 ? ttl / 10 : 60000;
    set_str(&r->auth_hdr, mg__fmt("Bearer %s", tok));
    r->token_refresh_ms = uv_now(r->loop) + ttl - margin;
    r->tokens_fetched++;
    mg_log_json(MG_LOG_INFO, "remote upstream token obtained",
                json_pack("{s:s,s:I}", "upstream", name, "expires_in_s", (json_int_t)(ttl / 1000)));
    json_decref(j);
    token_settled(r, NULL);
}

/* application/x-www-form-urlencoded value of s appended to b (cap bytes). */
static void form_add(char *b, size_t cap, const char *name, const char *s)
{
    size_t n = strlen(b);
    if (s == NULL || n + strlen(name) + 3 >= cap)
        return;
    n += (size_t)snprintf(b + n, cap - n, "%s%s=", n ? "&" : "", name);
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 4 < cap; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p))
            b[n++] = (char)*p;
        else
            n += (size_t)snprintf(b + n, cap - n, "%%%02X", *p);
    }
    b[n] = '\0';
}

void mg__remote_token_fetch(remote_t *r)
{
    if (r->token_fetching || r->http == NULL)
        return;
    const mg_remote_auth_t *a = r->rc->auth;
    mg_http_req_t hr;
    memset(&hr, 0, sizeof hr);
    hr.timeout_ms = 10000;
    hr.connect_timeout_ms = (long)r->rc->connect_timeout_ms;
    hr.ca_file = r->rc->ca;
    hr.max_body = 64 * 1024;
    const char *h[4] = {"accept", "application/json", "content-type", "application/x-www-form-urlencoded"};
    hr.headers = h;
    hr.nheaders = 1;
    char url[2048];
    char body[4096] = "";
    if (r->token_endpoint == NULL) {
        const char *iss = a->issuer;
        size_t ol = (size_t)(strstr(iss, "://") + 3 - iss);
        ol += strcspn(iss + ol, "/?#");
        const char *path = iss + ol;
        size_t pl = strlen(path);
        while (pl > 0 && path[pl - 1] == '/')
            pl--;
        if (!r->tried_oidc) /* RFC 8414: /.well-known/oauth-authorization-server inserted before the path */
            snprintf(url, sizeof url, "%.*s/.well-known/oauth-authorization-server%.*s", (int)ol, iss,
                     (int)pl, path);
        else
            snprintf(url, sizeof url, "%.*s%.*s/.well-known/openid-configuration", (int)ol, iss, (int)pl,
                     path);
        hr.url = url;
    } else {
        hr.url = r->token_endpoint;
        hr.nheaders = 2;
        form_add(body, sizeof body, "grant_type", "client_credentials");
        form_add(body, sizeof body, "scope", a->scope);
        form_add(body, sizeof body, "resource", a->resource ? a->resource : r->rc->url);
        hr.body = body;
        hr.len = strlen(body);
        hr.basic_user = a->client_id; /* client_secret_basic */
        hr.basic_pass = a->client_secret;
    }
    r->token_fetching = 1;
    if (mg__egress_request(r->loop, r->http, r->egress, &hr, token_body_cb, token_done_cb, r,
                           &r->token_call) != 0) {
        r->token_fetching = 0;
        token_settled(r, mg__fmt("upstream '%s': auth: could not send the token request", r->server->name));
    }
}
