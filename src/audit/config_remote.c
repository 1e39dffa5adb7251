/*
 * config_remote.c - `mcpgate audit --config`: a remote (url) server entry. First what the entry says
 * by itself (pure, unit-tested): plain http:// to a host beyond loopback, a credential in the URL's
 * query, where its header values come from, whether the gateway mints its own tokens (auth); then
 * the SSRF guard the gateway applies (the URL's host resolved here, every address judged as
 * upstream/remote_conn.c does: a public one, or one inside gateway.egress.allowCidrs), and the same
 * for its credential endpoint (auth.tokenUrl, or auth.issuer); and only when
 * both allow it, the URL probes (probe_url.c) with the entry's static headers as the credential.
 *
 * Secrets: header values go to the entry's URL only (as the Authorization bearer or as the headers
 * they are), never into a query string, a report or a recording; evidence names headers and the
 * source of their values ("env:X", "literal"), never a value. Called by config_audit.c.
 * Read next: probe_url.c (the probes), docs/audit.md ("Remote servers").
 */
#include "audit_int.h"
#include "../common/cidr.h"
#include "../common/err.h"
#include "../config/remote_config.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* Query parameter names (or parts of names) that carry credentials. */
static int credential_name(const char *name, size_t n)
{
    static const char *const marks[] = {"token", "key",    "secret", "password", "passwd", "auth",
                                        "sig",   "bearer", "jwt",    "session",  "cred",   NULL};
    char low[64];
    if (n >= sizeof low)
        n = sizeof low - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    low[n] = '\0';
    for (int i = 0; marks[i]; i++)
        if (strstr(low, marks[i]))
            return 1;
    return 0;
}

int mg_audit_url_query_secret(const char *url, char *name, size_t n)
{
    name[0] = '\0';
    const char *q = strchr(url, '?');
    if (q == NULL)
        return 0;
    q++;
    while (*q && *q != '#') {
        size_t len = strcspn(q, "&#");
        size_t klen = strcspn(q, "=&#");
        if (klen > len)
            klen = len;
        if (klen > 0 && credential_name(q, klen)) {
            snprintf(name, n, "%.*s", (int)klen, q);
            return 1;
        }
        q += len;
        if (*q == '&')
            q++;
    }
    return 0;
}

int mg_audit_url_host(const char *url, char *host, size_t n, int *https)
{
    host[0] = '\0';
    const char *p;
    if (strncasecmp(url, "https://", 8) == 0) {
        *https = 1;
        p = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        *https = 0;
        p = url + 7;
    } else {
        return -1;
    }
    size_t auth = strcspn(p, "@/?#");
    if (p[auth] == '@')
        p += auth + 1; /* userinfo: never copied */
    size_t len;
    if (*p == '[') {
        p++;
        len = strcspn(p, "]");
        if (p[len] != ']')
            return -1;
    } else {
        len = strcspn(p, ":/?#");
    }
    if (len == 0 || len >= n)
        return -1;
    snprintf(host, n, "%.*s", (int)len, p);
    return 0;
}

int mg_audit_host_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    uint8_t a[16];
    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1) {
        const char *cls = mg_cidr_forbidden(AF_INET6, a);
        return cls != NULL && strcmp(cls, "loopback") == 0;
    }
    return 0;
}

const char *mg_audit_egress_refused(int family, const uint8_t *addr, const mg_egress_config_t *eg)
{
    const char *cls = mg_cidr_forbidden(family, addr);
    if (cls == NULL)
        return NULL;
    for (size_t i = 0; eg != NULL && i < eg->nallow; i++)
        if (mg_cidr_match(&eg->allow[i], family, addr))
            return NULL;
    return cls;
}

/* Header names that carry a credential. */
static int credential_header(const char *name)
{
    static const char *const marks[] = {"authorization", "key",  "token", "secret", "cookie",
                                        "auth",          "pass", "cred",  NULL};
    for (int i = 0; marks[i]; i++)
        if (strcasestr(name, marks[i]))
            return 1;
    return 0;
}

void mg_audit_remote_config(mg_audit_report_t *rep, const mg_server_config_t *s, int *probe)
{
    const mg_remote_config_t *r = s->remote;
    char host[256], qname[64];
    int https = 0;
    *probe = 1;
    if (mg_audit_url_host(r->url, host, sizeof host, &https) != 0) {
        mg_audit_add(rep, "transport.plain-http", s->name, MG_AUDIT_SKIP, "%s: the URL has no host",
                     r->url_key ? r->url_key : "url");
        *probe = 0;
    } else if (https) {
        mg_audit_add(rep, "transport.plain-http", s->name, MG_AUDIT_PASS, "https to %s", host);
    } else if (mg_audit_host_loopback(host)) {
        mg_audit_add(rep, "transport.plain-http", s->name, MG_AUDIT_PASS, "http to %s (loopback)", host);
    } else {
        mg_audit_add(rep, "transport.plain-http", s->name, MG_AUDIT_FAIL,
                     "plain http:// to %s: headers and answers cross the network unencrypted", host);
    }
    if (mg_audit_url_query_secret(r->url, qname, sizeof qname)) {
        /* Every probe would send it again: the entry is judged here and not probed. */
        mg_audit_add(rep, "auth.query-token", s->name, MG_AUDIT_FAIL,
                     "the URL's query carries \"%s\" (value not shown): it ends up in logs and proxies; "
                     "move it to \"headers\" with ${env:NAME}; not probed",
                     qname);
        *probe = 0;
    }

    /* Where the credential comes from. */
    char lit[400] = "", ext[400] = "";
    size_t ncred = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        const mg_kv_t *h = &r->headers[i];
        if (!credential_header(h->key))
            continue;
        ncred++;
        /* "literal+env:TOKEN" ("Bearer ${env:TOKEN}") keeps the secret outside: only an entirely
         * literal value is one written into the config. */
        int literal =
            h->source == NULL || (strstr(h->source, "env:") == NULL && strstr(h->source, "file:") == NULL);
        char *b = literal ? lit : ext;
        size_t cap = sizeof lit, o = strlen(b);
        snprintf(b + o, cap - o, "%s%s (%s)", o ? ", " : "", h->key, h->source ? h->source : "literal");
    }
    if (lit[0])
        mg_audit_add(rep, "auth.upstream-credentials", s->name, MG_AUDIT_WARN,
                     "headers written into the config (values not shown): %s", lit);
    else if (r->auth != NULL)
        mg_audit_add(rep, "auth.upstream-credentials", s->name, MG_AUDIT_PASS,
                     "auth %s: the gateway mints short-lived tokens (secret from %s)%s%s",
                     r->auth->exchange ? "token_exchange (RFC 8693)" : "client_credentials",
                     r->auth->secret_source ? r->auth->secret_source : "none", ext[0] ? "; headers " : "",
                     ext);
    else if (ncred > 0)
        mg_audit_add(rep, "auth.upstream-credentials", s->name, MG_AUDIT_PASS,
                     "headers from outside the config: %s", ext);
    else if (r->ntenants > 0)
        mg_audit_add(rep, "auth.upstream-credentials", s->name, MG_AUDIT_PASS,
                     "tenantCredentials for %zu tenants (isolation \"tenant\")", r->ntenants);
    else
        mg_audit_add(rep, "auth.upstream-credentials", s->name, MG_AUDIT_SKIP,
                     "no credential configured for this server");
}

/* The SSRF guard's verdict on one URL the gateway fetches for server s: `what` names it in the
 * evidence ("" for the server's own URL, "auth.tokenUrl " ...). 0 when an address is allowed. */
static int egress_one(mg_audit_report_t *rep, const mg_server_config_t *s, const char *url, const char *what,
                      const char *refusal, const mg_egress_config_t *eg)
{
    char host[256];
    int https = 0;
    if (mg_audit_url_host(url, host, sizeof host, &https) != 0) {
        if (what[0] != '\0')
            mg_audit_add(rep, "transport.egress", s->name, MG_AUDIT_FAIL, "%sis not an http(s) URL: %s", what,
                         refusal);
        return -1;
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc != 0) {
        mg_audit_add(rep, "transport.egress", s->name, MG_AUDIT_FAIL, "%s%s does not resolve: %s; %s", what,
                     host, gai_strerror(rc), refusal);
        return -1;
    }
    char first[INET6_ADDRSTRLEN + 40] = "";
    int ok = 0;
    for (struct addrinfo *a = ai; a != NULL && !ok; a = a->ai_next) {
        const uint8_t *bytes;
        if (a->ai_family == AF_INET)
            bytes = (const uint8_t *)&((struct sockaddr_in *)a->ai_addr)->sin_addr;
        else if (a->ai_family == AF_INET6)
            bytes = (const uint8_t *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
        else
            continue;
        char txt[INET6_ADDRSTRLEN];
        mg_cidr_addr_text(a->ai_family, bytes, txt, sizeof txt);
        const char *cls = mg_audit_egress_refused(a->ai_family, bytes, eg);
        if (cls == NULL) {
            const char *own = mg_cidr_forbidden(a->ai_family, bytes);
            mg_audit_add(rep, "transport.egress", s->name, MG_AUDIT_PASS, "%s%s resolves to %s (%s)", what,
                         host, txt, own ? "inside gateway.egress.allowCidrs" : "public");
            ok = 1;
        } else if (first[0] == '\0') {
            snprintf(first, sizeof first, "%s (%s)", txt, cls);
        }
    }
    freeaddrinfo(ai);
    if (!ok)
        mg_audit_add(rep, "transport.egress", s->name, MG_AUDIT_FAIL,
                     "%s%s resolves to %s and gateway.egress.allowCidrs does not allow it: %s", what, host,
                     first[0] ? first : "no usable address", refusal);
    return ok ? 0 : -1;
}

int mg_audit_remote_egress(mg_audit_report_t *rep, const mg_server_config_t *s, const mg_egress_config_t *eg)
{
    int rc =
        egress_one(rep, s, s->remote->url, "", "the gateway refuses to connect (SSRF guard); not probed", eg);
    /* The credential endpoints go through the same guard (upstream/remote_egress.c): one it refuses
     * means every call of this server fails for want of a token, although the server itself is
     * reachable. Issuer discovery is judged at the issuer; the token_endpoint it names is only
     * known at run time (the gateway refuses one on another origin). */
    const mg_remote_auth_t *a = s->remote->auth;
    if (a != NULL && a->token_url != NULL)
        egress_one(rep, s, a->token_url, "auth.tokenUrl ",
                   "the gateway refuses to fetch tokens there (SSRF guard), so every call fails", eg);
    else if (a != NULL && a->issuer != NULL)
        egress_one(
            rep, s, a->issuer, "auth.issuer ",
            "the gateway refuses to discover the token endpoint there (SSRF guard), so every call fails", eg);
    return rc;
}

/* Checks the gateway's own listing answers for a remote server (config_audit.c), or that the
 * config judged already (or judges for the whole config): the probe's are dropped. */
static int listing_check(const char *id)
{
    return strncmp(id, "context.", 8) == 0 || strncmp(id, "supply.", 7) == 0 || strncmp(id, "env.", 4) == 0 ||
           strcmp(id, "transport.plain-http") == 0 || strcmp(id, "transport.egress") == 0 ||
           strcmp(id, "auth.upstream-credentials") == 0 || strcmp(id, "robust.unknown-method") == 0;
}

int mg_audit_remote_probe(mg_audit_report_t *rep, const mg_server_config_t *s, const mg_audit_limits_t *lim,
                          unsigned burst)
{
    const mg_remote_config_t *r = s->remote;
    mg_audit_url_opts_t o = {0};
    const char *hdrs[2 * 8];
    size_t nh = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        const mg_kv_t *h = &r->headers[i];
        if (strcasecmp(h->key, "Authorization") == 0 && strncasecmp(h->value, "Bearer ", 7) == 0 &&
            o.token == NULL) {
            o.token = h->value + 7; /* as the Authorization bearer: left out of the unauthenticated probe */
            continue;
        }
        if (nh < 8) {
            hdrs[2 * nh] = h->key;
            hdrs[2 * nh + 1] = h->value;
            nh++;
        }
    }
    o.url = r->url;
    o.headers = hdrs;
    o.nheaders = nh;
    o.burst = burst;
    o.limits = *lim;
    json_t *rec = mg_audit_probe_url(&o);
    if (rec == NULL)
        return MG_ENOMEM;
    mg_audit_report_t sub;
    if (mg_audit_report_init(&sub, r->url) != 0) {
        json_decref(rec);
        return MG_ENOMEM;
    }
    mg_audit_verdict_url(rec, &sub);
    json_decref(rec);
    size_t i;
    json_t *c;
    json_array_foreach(sub.checks, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        if (id == NULL || listing_check(id))
            continue;
        json_object_set_new(c, "server", json_string(s->name));
        json_array_append(rep->checks, c);
    }
    mg_audit_report_dispose(&sub);
    return 0;
}
