/*
 * cors.c - which origins, methods and request headers a CORS preflight allows (cors.h).
 * Pure functions over header values; hooks.c turns them into responses.
 */
#include "cors.h"

#include <string.h>
#include <strings.h>

const char mg_cors_allowed_headers[] =
    "accept, authorization, content-type, last-event-id, mcp-method, mcp-name, "
    "mcp-protocol-version, mcp-session-id";
const char mg_cors_exposed_headers[] = "mcp-session-id, mcp-protocol-version, www-authenticate, retry-after, "
                                       "ratelimit, ratelimit-policy";

int mg_cors_origin_allowed(const mg_cors_config_t *c, const char *origin, size_t len)
{
    if (c == NULL || !c->enabled || origin == NULL || len == 0)
        return 0;
    if (c->any)
        return 1;
    for (size_t i = 0; i < c->norigins; i++)
        if (strlen(c->origins[i]) == len && strncasecmp(c->origins[i], origin, len) == 0)
            return 1;
    return 0;
}

int mg_cors_method_ok(const char *m, size_t len)
{
    return (len == 3 && memcmp(m, "GET", 3) == 0) || (len == 4 && memcmp(m, "POST", 4) == 0) ||
           (len == 6 && memcmp(m, "DELETE", 6) == 0);
}

static int header_ok(const char *h, size_t n)
{
    if (n > 10 && strncasecmp(h, "mcp-param-", 10) == 0)
        return 1;
    const char *p = mg_cors_allowed_headers;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && strncasecmp(p, h, n) == 0)
            return 1;
        if (e == NULL)
            break;
        p = e + 2;
    }
    return 0;
}

int mg_cors_request_headers_ok(const char *list, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (list[i] == ' ' || list[i] == ',' || list[i] == '\t'))
            i++;
        size_t s = i;
        while (i < len && list[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (list[e - 1] == ' ' || list[e - 1] == '\t'))
            e--;
        if (e > s && !header_ok(list + s, e - s))
            return 0;
    }
    return 1;
}
