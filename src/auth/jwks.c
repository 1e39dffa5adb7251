/*
 * jwks.c - the issuer's metadata (RFC 8414 / OpenID discovery) and its signing keys (JWKS), fetched
 * on the loop and cached (states in auth_int.h).
 *
 * One refresh cycle: metadata (when not fetched yet: {issuer}/.well-known/openid-configuration,
 * then the RFC 8414 form {origin}/.well-known/oauth-authorization-server{path}; its `issuer` must
 * equal the configured one, its jwks_uri must be https) -> JWKS (an object with a non-empty `keys`
 * array). Success replaces the keys and schedules the next refresh (jwks_refresh_s); failure keeps
 * the last good keys and retries with backoff, 1 s doubling to 60 s. Either way the requests
 * waiting for keys are resumed (mg__auth_keys_settled). Refreshes for unknown kids are rate
 * limited by jwks_min_refresh_interval_s.
 * Read next: jwt.c (how the keys are used).
 */
#include "auth_int.h"
#include "../common/err.h"
#include "../common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void cycle_end(mg_auth_t *a, int ok, const char *what, const char *why);
static void fetch_jwks(mg_auth_t *a);
static void fetch_metadata(mg_auth_t *a);

static void refresh_timer_cb(uv_timer_t *t)
{
    mg_auth_t *a = t->data;
    mg__jwks_refresh(a, 1);
}

void mg__jwks_start(mg_auth_t *a)
{
    mg__jwks_refresh(a, 1);
}

int mg__jwks_refresh(mg_auth_t *a, int force)
{
    if (a->stopping)
        return 0;
    if (a->fetching)
        return 1;
    uint64_t now = uv_now(a->loop);
    uint64_t min = a->cfg->oauth->jwks_min_interval_s * 1000;
    if (a->keys == NULL && min > 1000)
        min = 1000; /* no keys at all yet: retry sooner, but never more than once a second */
    if (!force && a->have_attempted && now - a->last_attempt_ms < min)
        return 0;
    a->fetching = 1;
    a->have_attempted = 1;
    a->last_attempt_ms = now;
    uv_timer_stop(&a->refresh_timer);
    if (a->metadata == NULL) {
        a->metadata_tried = 0;
        fetch_metadata(a);
    } else {
        fetch_jwks(a);
    }
    return 1;
}

static void cycle_end(mg_auth_t *a, int ok, const char *what, const char *why)
{
    a->fetching = 0;
    a->freq = NULL;
    uint64_t next;
    if (ok) {
        a->failures = 0;
        next = a->cfg->oauth->jwks_refresh_s * 1000;
    } else {
        a->failures++;
        next = 1000ull << (a->failures > 6 ? 6 : a->failures - 1);
        if (next > 60000)
            next = 60000;
        mg_log_json(MG_LOG_WARN,
                    a->keys ? "identity provider unreachable; keeping the last good signing keys"
                            : "identity provider unreachable; JWT access tokens cannot be validated yet",
                    json_pack("{s:s,s:s,s:s,s:I}", "issuer", a->cfg->oauth->issuer, "fetch", what, "error",
                              why ? why : "", "retry_ms", (json_int_t)next));
    }
    if (!a->stopping)
        uv_timer_start(&a->refresh_timer, refresh_timer_cb, next, 0);
    mg__auth_keys_settled(a);
}

/* ---- JWKS ---- */

static void jwks_cb(void *data, int err, long status, const char *body, size_t len, const char *why)
{
    mg_auth_t *a = data;
    a->freq = NULL;
    if (err != 0 || status != 200) {
        char w[200];
        snprintf(w, sizeof w, "%s", err ? why : "HTTP status is not 200");
        if (!err)
            snprintf(w, sizeof w, "HTTP %ld", status);
        cycle_end(a, 0, "jwks", w);
        return;
    }
    json_t *set = json_loadb(body, len, 0, NULL);
    json_t *keys = json_object_get(set, "keys");
    if (!json_is_array(keys) || json_array_size(keys) == 0) {
        json_decref(set);
        cycle_end(a, 0, "jwks", "the JWKS document has no \"keys\" array (or it is empty)");
        return;
    }
    /* Keep only well-formed public keys with what we need to select them. */
    json_t *clean = json_array();
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        if (json_is_object(k) && json_is_string(json_object_get(k, "kty")) &&
            json_object_get(k, "d") == NULL && json_object_get(k, "k") == NULL)
            json_array_append(clean, k);
    }
    json_decref(set);
    size_t before = a->keys ? json_array_size(json_object_get(a->keys, "keys")) : 0;
    json_decref(a->keys);
    a->keys = json_pack("{s:o}", "keys", clean);
    a->keys_ms = uv_now(a->loop);
    mg_log_json(MG_LOG_INFO, "signing keys fetched",
                json_pack("{s:s,s:I,s:I}", "issuer", a->cfg->oauth->issuer, "keys",
                          (json_int_t)json_array_size(clean), "previous", (json_int_t)before));
    cycle_end(a, 1, "jwks", NULL);
}

static void fetch_jwks(mg_auth_t *a)
{
    if (a->jwks_uri == NULL) {
        cycle_end(a, 0, "metadata", "no jwks_uri configured or discovered");
        return;
    }
    mg_fetch_opts_t o = {.url = a->jwks_uri, .accept = "application/jwk-set+json, application/json"};
    if (mg_fetch_start(a->fetch, &o, jwks_cb, a, &a->freq) != 0)
        cycle_end(a, 0, "jwks", "could not start the request");
}

/* ---- metadata ---- */

static int metadata_url(const char *issuer, int rfc8414, char *out, size_t cap)
{
    size_t il = strlen(issuer);
    while (il > 0 && issuer[il - 1] == '/')
        il--;
    if (!rfc8414)
        return snprintf(out, cap, "%.*s/.well-known/openid-configuration", (int)il, issuer) < (int)cap ? 0
                                                                                                       : -1;
    const char *s = strstr(issuer, "://");
    if (s == NULL)
        return -1;
    size_t origin = (size_t)(s + 3 - issuer) + strcspn(s + 3, "/");
    if (origin > il)
        origin = il;
    return snprintf(out, cap, "%.*s/.well-known/oauth-authorization-server%.*s", (int)origin, issuer,
                    (int)(il - origin), issuer + origin) < (int)cap
               ? 0
               : -1;
}

static void metadata_cb(void *data, int err, long status, const char *body, size_t len, const char *why)
{
    mg_auth_t *a = data;
    a->freq = NULL;
    const mg_auth_oauth_config_t *o = a->cfg->oauth;
    const char *problem = NULL;
    char buf[200];
    json_t *m = NULL;
    if (err != 0) {
        problem = why;
    } else if (status != 200) {
        snprintf(buf, sizeof buf, "HTTP %ld", status);
        problem = buf;
    } else if ((m = json_loadb(body, len, 0, NULL)) == NULL || !json_is_object(m)) {
        /* Not json_is_object(m = json_loadb(...)): the macro evaluates its argument twice, which
         * parsed the document twice and leaked the first copy (test_auth.c test_discovery_frees). */
        problem = "the metadata is not a JSON object";
    } else if (json_string_value(json_object_get(m, "issuer")) == NULL ||
               strcmp(json_string_value(json_object_get(m, "issuer")), o->issuer) != 0) {
        problem = "the metadata's \"issuer\" differs from gateway.auth.oauth.issuer (it must match exactly, "
                  "including any trailing slash)";
    }
    if (problem == NULL && a->jwks_uri == NULL) {
        const char *ju = json_string_value(json_object_get(m, "jwks_uri"));
        char w[160];
        if (ju == NULL)
            problem = "the metadata has no jwks_uri";
        else if (mg_auth_url_check(ju, w, sizeof w) != 0)
            problem = "the metadata's jwks_uri is not https";
        else
            a->jwks_uri = strdup(ju);
    }
    if (problem == NULL && o->introspection && a->introspection_uri == NULL) {
        const char *iu = json_string_value(json_object_get(m, "introspection_endpoint"));
        char w[160];
        if (iu != NULL && mg_auth_url_check(iu, w, sizeof w) == 0)
            a->introspection_uri = strdup(iu);
        else
            mg_log_json(MG_LOG_WARN,
                        "the issuer's metadata names no usable introspection_endpoint; opaque "
                        "tokens cannot be validated (set oauth.introspection.endpoint)",
                        json_pack("{s:s}", "issuer", o->issuer));
    }
    if (problem == NULL) {
        json_decref(a->metadata);
        a->metadata = m;
        fetch_jwks(a);
        return;
    }
    json_decref(m);
    if (a->metadata_tried == 0) {
        a->metadata_tried = 1;
        fetch_metadata(a);
        return;
    }
    if (a->jwks_uri != NULL) {
        /* jwks_uri configured: metadata is only needed for 2025-03-26 clients; carry on. */
        mg_log_json(MG_LOG_WARN, "issuer metadata not available; using the configured jwks_uri",
                    json_pack("{s:s,s:s}", "issuer", o->issuer, "error", problem));
        fetch_jwks(a);
        return;
    }
    cycle_end(a, 0, "metadata", problem);
}

static void fetch_metadata(mg_auth_t *a)
{
    char url[800];
    if (metadata_url(a->cfg->oauth->issuer, a->metadata_tried, url, sizeof url) != 0) {
        cycle_end(a, 0, "metadata", "issuer URL too long");
        return;
    }
    mg_fetch_opts_t o = {.url = url};
    if (mg_fetch_start(a->fetch, &o, metadata_cb, a, &a->freq) != 0)
        cycle_end(a, 0, "metadata", "could not start the request");
}
