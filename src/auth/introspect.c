/*
 * introspect.c - opaque access tokens through OAuth 2.0 Token Introspection (RFC 7662).
 *
 * POST token=…&token_type_hint=access_token to the introspection endpoint with the gateway's own
 * client credentials (HTTP Basic). Accepted only when `active` is true, `iss` (when present) is the
 * configured issuer, `aud` contains this gateway's audience (required: a token for another
 * service must be refused), and exp/nbf hold. Results are cached by the token's SHA-256 (never the
 * token) for oauth.introspection.cache_s, never past the token's exp; the cache is bounded.
 * Read next: auth.c (the waiter that calls this).
 */
#include "auth_int.h"
#include "../common/err.h"
#include "../common/log.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct ijob {
    mg_auth_t *a;
    char hash[65];
    mg__introspect_cb cb;
    void *data;
} ijob_t;

mg_principal_t *mg__introspect_cached(mg_auth_t *a, const char *hash)
{
    uint64_t now = uv_now(a->loop);
    for (size_t i = 0; i < a->icount; i++) {
        mg_auth_introspected_t *e = &a->icache[i];
        if (strcmp(e->hash, hash) != 0)
            continue;
        if (e->expires_ms > now)
            return e->principal;
        mg_principal_unref(e->principal);
        a->icache[i] = a->icache[--a->icount];
        return NULL;
    }
    return NULL;
}

static void cache_put(mg_auth_t *a, const char *hash, mg_principal_t *p, uint64_t expires_ms)
{
    uint64_t now = uv_now(a->loop);
    if (a->icount == a->icap) {
        /* drop expired entries; when none expired and the cache is full, start over */
        size_t o = 0;
        for (size_t i = 0; i < a->icount; i++) {
            if (a->icache[i].expires_ms > now)
                a->icache[o++] = a->icache[i];
            else
                mg_principal_unref(a->icache[i].principal);
        }
        a->icount = o;
        if (a->icount >= MG_AUTH_INTROSPECT_MAX) {
            for (size_t i = 0; i < a->icount; i++)
                mg_principal_unref(a->icache[i].principal);
            a->icount = 0;
        }
        if (a->icount == a->icap) {
            size_t cap = a->icap ? a->icap * 2 : 64;
            mg_auth_introspected_t *n = realloc(a->icache, cap * sizeof *n);
            if (n == NULL)
                return;
            a->icache = n;
            a->icap = cap;
        }
    }
    mg_auth_introspected_t *e = &a->icache[a->icount++];
    memcpy(e->hash, hash, 65);
    e->principal = mg_principal_ref(p);
    e->expires_ms = expires_ms;
}

void mg__introspect_dispose(mg_auth_t *a)
{
    for (size_t i = 0; i < a->icount; i++)
        mg_principal_unref(a->icache[i].principal);
    free(a->icache);
    a->icache = NULL;
    a->icount = a->icap = 0;
}

static int aud_matches(const json_t *aud, const mg_auth_oauth_config_t *o)
{
    if (json_is_string(aud)) {
        for (size_t i = 0; i < o->naudiences; i++)
            if (mg__auth_uri_equal(json_string_value(aud), o->audiences[i]))
                return 1;
        return 0;
    }
    size_t k;
    json_t *v;
    if (json_is_array(aud))
        json_array_foreach(aud, k, v) if (json_is_string(v) && aud_matches(v, o)) return 1;
    return 0;
}

static void done_cb(void *data, int err, long status, const char *body, size_t len, const char *why)
{
    ijob_t *j = data;
    mg_auth_t *a = j->a;
    const mg_auth_oauth_config_t *o = a->cfg->oauth;
    if (err != 0 || status != 200) {
        mg_log_json(MG_LOG_WARN, "token introspection failed",
                    json_pack("{s:s,s:I}", "error", err ? why : "HTTP status is not 200", "status",
                              (json_int_t)status));
        j->cb(j->data, NULL, 1, "introspection endpoint unavailable");
        free(j);
        return;
    }
    json_t *r = json_loadb(body, len, 0, NULL);
    const char *problem = NULL;
    double now = (double)time(NULL), skew = (double)o->clock_skew_s;
    json_t *exp = json_object_get(r, "exp"), *nbf = json_object_get(r, "nbf");
    const char *iss = json_string_value(json_object_get(r, "iss"));
    if (!json_is_object(r))
        problem = "introspection answer is not a JSON object";
    else if (!json_is_true(json_object_get(r, "active")))
        problem = "token is not active";
    else if (json_object_get(r, "iss") != NULL && (iss == NULL || strcmp(iss, o->issuer) != 0))
        problem = "token issuer (iss) is not the configured issuer";
    else if (!aud_matches(json_object_get(r, "aud"), o))
        problem = "token audience (aud) is not this gateway";
    else if (exp != NULL && (!json_is_number(exp) || now >= json_number_value(exp) + skew))
        problem = "token expired";
    else if (nbf != NULL && (!json_is_number(nbf) || now + skew < json_number_value(nbf)))
        problem = "token not yet valid (nbf)";
    mg_principal_t *p = NULL;
    if (problem == NULL) {
        /* RFC 7662 makes sub optional: fall back to username, then client_id. */
        if (json_object_get(r, o->subject_claim) == NULL) {
            const char *alt = json_string_value(json_object_get(r, "username"));
            if (alt == NULL)
                alt = json_string_value(json_object_get(r, "client_id"));
            if (alt != NULL)
                json_object_set_new(r, o->subject_claim, json_string(alt));
        }
        p = mg__auth_principal_from_claims(a, r, "introspection", &problem);
    }
    if (p != NULL) {
        uint64_t ttl = o->introspection_cache_s * 1000;
        if (exp != NULL) {
            double left = (json_number_value(exp) - now) * 1000;
            if (left < (double)ttl)
                ttl = left > 0 ? (uint64_t)left : 0;
        }
        if (ttl > 0)
            cache_put(a, j->hash, p, uv_now(a->loop) + ttl);
    }
    json_decref(r);
    j->cb(j->data, p, 0, problem);
    mg_principal_unref(p);
    free(j);
}

int mg__introspect_start(mg_auth_t *a, const char *token, size_t len, const char *hash, mg__introspect_cb cb,
                         void *data, mg_fetch_req_t **req)
{
    const mg_auth_oauth_config_t *o = a->cfg->oauth;
    if (a->introspection_uri == NULL || a->stopping)
        return MG_EIO;
    char *enc = curl_easy_escape(NULL, token, (int)len);
    if (enc == NULL)
        return MG_ENOMEM;
    size_t blen = strlen(enc) + 64;
    char *body = malloc(blen);
    ijob_t *j = calloc(1, sizeof *j);
    if (body == NULL || j == NULL) {
        curl_free(enc);
        free(body);
        free(j);
        return MG_ENOMEM;
    }
    snprintf(body, blen, "token=%s&token_type_hint=access_token", enc);
    memset(enc, 0, strlen(enc));
    curl_free(enc);
    j->a = a;
    memcpy(j->hash, hash, 65);
    j->cb = cb;
    j->data = data;
    mg_fetch_opts_t fo = {.url = a->introspection_uri,
                          .post_form = body,
                          .basic_user = o->client_id,
                          .basic_pass = o->client_secret};
    int r = mg_fetch_start(a->fetch, &fo, done_cb, j, req);
    memset(body, 0, blen);
    free(body);
    if (r != 0)
        free(j);
    return r;
}
