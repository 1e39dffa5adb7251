/*
 * redis_url.c - parsing of session store specs (redis.h has the grammar): pure functions, unit
 * tested in test/unit/test_store.c. Messages never contain the password.
 */
#include "redis.h"
#include "../common/err.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void mg_redis_target_dispose(mg_redis_target_t *t)
{
    for (size_t i = 0; i < t->nhosts; i++)
        free(t->hosts[i]);
    free(t->master);
    free(t->username);
    free(t->password);
    memset(t, 0, sizeof(*t));
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into a new string; NULL on a malformed escape, a NUL byte or no memory. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return out;
}

/* host[:port] or [v6][:port] from s[0..n). */
static int parse_hostport(const char *s, size_t n, unsigned defport, char **host, unsigned *port, char *why,
                          size_t whylen)
{
    const char *hs = s, *he;
    const char *rest;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL) {
            snprintf(why, whylen, "an IPv6 host must be written [address]");
            return MG_EINVAL;
        }
        hs = s + 1;
        he = close;
        rest = close + 1;
    } else {
        const char *colon = memchr(s, ':', n);
        he = colon ? colon : s + n;
        rest = he;
    }
    if (he == hs) {
        snprintf(why, whylen, "a host is missing");
        return MG_EINVAL;
    }
    for (const char *p = hs; p < he; p++) {
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_' && *p != ':') {
            snprintf(why, whylen, "the host contains a character other than letters, digits, '.', '-', '_'");
            return MG_EINVAL;
        }
    }
    *port = defport;
    const char *end = s + n;
    if (rest < end) {
        if (*rest != ':' || rest + 1 == end) {
            snprintf(why, whylen, "expected host:port");
            return MG_EINVAL;
        }
        unsigned long v = 0;
        for (const char *p = rest + 1; p < end; p++) {
            if (!isdigit((unsigned char)*p) || v > 65535) {
                snprintf(why, whylen, "the port must be a number from 1 to 65535");
                return MG_EINVAL;
            }
            v = v * 10 + (unsigned long)(*p - '0');
        }
        if (v == 0 || v > 65535) {
            snprintf(why, whylen, "the port must be a number from 1 to 65535");
            return MG_EINVAL;
        }
        *port = (unsigned)v;
    }
    *host = strndup(hs, (size_t)(he - hs));
    return *host ? 0 : MG_ENOMEM;
}

static int parse_db(const char *s, size_t n, unsigned *db, char *why, size_t whylen)
{
    unsigned long v = 0;
    if (n == 0 || n > 4) {
        snprintf(why, whylen, "the database must be a number from 0 to 1023 (redis://host:6379/0)");
        return MG_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) {
            snprintf(why, whylen, "the database must be a number from 0 to 1023 (redis://host:6379/0)");
            return MG_EINVAL;
        }
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > 1023) {
        snprintf(why, whylen, "the database must be a number from 0 to 1023");
        return MG_EINVAL;
    }
    *db = (unsigned)v;
    return 0;
}

int mg_redis_url_parse(const char *url, mg_redis_target_t *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (url == NULL) {
        snprintf(why, whylen, "no URL");
        return MG_EINVAL;
    }
    static const char *const tls[] = {"rediss://", "valkeys://", "redis+tls://", "valkey+tls://"};
    for (size_t i = 0; i < sizeof tls / sizeof *tls; i++) {
        if (strncasecmp(url, tls[i], strlen(tls[i])) == 0) {
            snprintf(why, whylen,
                     "TLS to Redis is not built in (Debian's hiredis 0.14 has no TLS): run a TLS sidecar "
                     "(stunnel, ghostunnel) next to mcpgate and point redis:// at it (docs/operations.md)");
            return MG_EINVAL;
        }
    }
    const char *p;
    if (strncasecmp(url, "redis://", 8) == 0)
        p = url + 8;
    else if (strncasecmp(url, "valkey://", 9) == 0)
        p = url + 9;
    else if (strncasecmp(url, "redis-sentinel://", 17) == 0) {
        p = url + 17;
        out->sentinel = 1;
    } else {
        snprintf(why, whylen,
                 "must be \"memory\", redis://host:port/db, valkey://host:port/db, "
                 "redis-sentinel://host:port[,host:port]/master/db or postgres://user@host:port/db");
        return MG_EINVAL;
    }
    if (strpbrk(p, "?#") != NULL) {
        snprintf(why, whylen, "query strings and fragments are not supported in the store URL");
        return MG_EINVAL;
    }
    const char *slash = strchr(p, '/');
    const char *authend = slash ? slash : p + strlen(p);
    const char *at = NULL;
    for (const char *q = p; q < authend; q++)
        if (*q == '@')
            at = q;
    int r;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *ue = colon ? colon : at;
        if (ue > p && (out->username = pct_decode(p, (size_t)(ue - p))) == NULL) {
            snprintf(why, whylen, "the user name has a malformed %%-escape");
            return MG_EINVAL;
        }
        if (colon != NULL && at > colon + 1 &&
            (out->password = pct_decode(colon + 1, (size_t)(at - colon - 1))) == NULL) {
            snprintf(why, whylen, "the password has a malformed %%-escape (write %% as %%25)");
            return MG_EINVAL;
        }
        p = at + 1;
    }
    /* hosts */
    const char *h = p;
    while (h < authend) {
        const char *comma = memchr(h, ',', (size_t)(authend - h));
        const char *he = comma ? comma : authend;
        if (!out->sentinel && comma != NULL) {
            snprintf(why, whylen, "several hosts are only allowed with redis-sentinel://");
            return MG_EINVAL;
        }
        if (out->nhosts == MG_REDIS_MAX_HOSTS) {
            snprintf(why, whylen, "at most %d sentinels", MG_REDIS_MAX_HOSTS);
            return MG_EINVAL;
        }
        r = parse_hostport(h, (size_t)(he - h), out->sentinel ? 26379 : 6379, &out->hosts[out->nhosts],
                           &out->ports[out->nhosts], why, whylen);
        if (r != 0)
            return r;
        out->nhosts++;
        h = comma ? comma + 1 : authend;
        if (comma != NULL && h == authend) {
            snprintf(why, whylen, "a host is missing after ','");
            return MG_EINVAL;
        }
    }
    if (out->nhosts == 0) {
        snprintf(why, whylen, "a host is missing");
        return MG_EINVAL;
    }
    /* path: [/db] or, for Sentinel, /master[/db] */
    const char *path = slash ? slash + 1 : NULL;
    if (out->sentinel) {
        if (path == NULL || *path == '\0' || *path == '/') {
            snprintf(why, whylen, "name the master: redis-sentinel://host:26379/mymaster/0");
            return MG_EINVAL;
        }
        const char *s2 = strchr(path, '/');
        size_t mlen = s2 ? (size_t)(s2 - path) : strlen(path);
        out->master = pct_decode(path, mlen);
        if (out->master == NULL) {
            snprintf(why, whylen, "the master name has a malformed %%-escape");
            return MG_EINVAL;
        }
        path = s2 ? s2 + 1 : NULL;
    }
    if (path != NULL && *path != '\0') {
        if (strchr(path, '/') != NULL) {
            snprintf(why, whylen, "unexpected path after the database number");
            return MG_EINVAL;
        }
        r = parse_db(path, strlen(path), &out->db, why, whylen);
        if (r != 0)
            return r;
    }
    return 0;
}
