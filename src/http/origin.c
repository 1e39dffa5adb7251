/*
 * origin.c - Host/Origin checks (origin.h). Pure functions: unit-tested in test/unit/test_origin.c.
 */
#include "origin.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Strips ":port" from host[0..len) and returns the host length (IPv6 literals keep brackets). */
static size_t host_part(const char *h, size_t len)
{
    if (len > 0 && h[0] == '[') {
        const char *close = memchr(h, ']', len);
        return close ? (size_t)(close - h) + 1 : len;
    }
    const char *colon = memchr(h, ':', len);
    return colon ? (size_t)(colon - h) : len;
}

static int eq_nocase(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

/* 1 when what follows the host part is nothing or ":" and a decimal port (found by fuzz_origin.c:
 * "[::1]x" and "localhost:evil" used to pass as loopback hosts). */
static int port_ok(const char *h, size_t len, size_t n)
{
    if (n == len)
        return 1;
    if (h[n] != ':' || len - n > 6)
        return 0;
    for (size_t i = n + 1; i < len; i++)
        if (h[i] < '0' || h[i] > '9')
            return 0;
    return 1;
}

int mg_origin_is_loopback_host(const char *host, size_t len)
{
    size_t n = host_part(host, len);
    if (!port_ok(host, len, n))
        return 0;
    if (eq_nocase(host, n, "localhost") || eq_nocase(host, n, "[::1]"))
        return 1;
    if (n > 4 && strncmp(host, "127.", 4) == 0) {
        /* four octets of 1-3 digits, each <= 255 ("127..." passed before; fuzz_origin.c) */
        int dots = 0, digits = 0, octet = 0;
        for (size_t i = 0; i < n; i++) {
            if (host[i] == '.') {
                if (digits == 0)
                    return 0;
                dots++;
                digits = octet = 0;
            } else if (host[i] < '0' || host[i] > '9' || ++digits > 3 ||
                       (octet = octet * 10 + (host[i] - '0')) > 255) {
                return 0;
            }
        }
        return dots == 3 && digits > 0;
    }
    return 0;
}

int mg_origin_host_allowed(const mg_origin_rules_t *r, const char *host, size_t len)
{
    if (host == NULL || len == 0)
        return r->loopback_bound;
    size_t n = host_part(host, len);
    for (size_t i = 0; i < r->nallowed_hosts; i++) {
        if (eq_nocase(host, len, r->allowed_hosts[i]) || eq_nocase(host, n, r->allowed_hosts[i]))
            return 1;
    }
    if (r->loopback_bound)
        return mg_origin_is_loopback_host(host, len);
    return r->nallowed_hosts == 0;
}

int mg_origin_origin_allowed(const mg_origin_rules_t *r, const char *origin, size_t len)
{
    if (origin == NULL)
        return 1;
    for (size_t i = 0; i < r->nallowed_origins; i++) {
        if (eq_nocase(origin, len, r->allowed_origins[i]))
            return 1;
    }
    if (!r->loopback_bound)
        return 0;
    const char *p = NULL;
    if (len > 7 && strncasecmp(origin, "http://", 7) == 0)
        p = origin + 7;
    else if (len > 8 && strncasecmp(origin, "https://", 8) == 0)
        p = origin + 8;
    if (p == NULL)
        return 0;
    size_t rest = len - (size_t)(p - origin);
    if (memchr(p, '/', rest) != NULL || memchr(p, '@', rest) != NULL)
        return 0;
    return mg_origin_is_loopback_host(p, rest);
}
