/*
 * fuzz_origin.c - libFuzzer target: the Host and Origin rules (src/http/origin.c) that run first
 * on every /mcp request, with the header values as a client sends them.
 * Input: byte 0 selects the rules (loopback-bound, an allowedHosts / allowedOrigins entry); the
 * rest is "<host>\n<origin>". Oracles: "null" and any origin with a path, userinfo or a
 * non-http(s) scheme are refused unless listed; an allowed loopback-only Host or Origin really
 * names localhost, 127/8 or [::1].
 * Read next: src/http/origin.h.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/origin.h"

static const char *const hosts[] = {"mcp.example.com"};
static const char *const origins[] = {"https://app.example.com"};

/* Independent check: after "scheme://", the host part is a loopback name. */
static int names_loopback(const char *h, size_t n)
{
    size_t end = 0;
    if (n > 0 && h[0] == '[') {
        while (end < n && h[end] != ']')
            end++;
        if (!(end < n && end == 4 && strncmp(h, "[::1", 4) == 0))
            return 0;
        end++;
    } else {
        while (end < n && h[end] != ':')
            end++;
    }
    if (end < n) { /* ":" and a decimal port, nothing else */
        for (size_t i = end + 1; i < n; i++)
            if (h[i] < '0' || h[i] > '9')
                return 0;
    }
    if (h[0] == '[' || (end == 9 && strncasecmp(h, "localhost", 9) == 0))
        return 1;
    if (end < 7 || strncmp(h, "127.", 4) != 0)
        return 0;
    unsigned o[4];
    char tail;
    char buf[32];
    if (end >= sizeof buf)
        return 0;
    memcpy(buf, h, end);
    buf[end] = '\0';
    if (strspn(buf, "0123456789.") != end || strstr(buf, "..") || buf[end - 1] == '.' ||
        sscanf(buf, "%3u.%3u.%3u.%3u%c", &o[0], &o[1], &o[2], &o[3], &tail) != 4)
        return 0;
    return o[0] == 127 && o[1] < 256 && o[2] < 256 && o[3] < 256;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    mg_origin_rules_t r = {data[0] & 1, NULL, 0, NULL, 0};
    if (data[0] & 2) {
        r.allowed_hosts = hosts;
        r.nallowed_hosts = 1;
    }
    if (data[0] & 4) {
        r.allowed_origins = origins;
        r.nallowed_origins = 1;
    }
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    const char *nl = memchr(p, '\n', n);
    size_t hlen = nl ? (size_t)(nl - p) : n;
    /* Copies without a terminator: the functions must stay inside [p, p+len). */
    char *host = malloc(hlen ? hlen : 1);
    memcpy(host, p, hlen);
    int host_ok = mg_origin_host_allowed(&r, hlen ? host : NULL, hlen);
    (void)mg_origin_is_loopback_host(host, hlen);
    if (host_ok && hlen > 0 && !(r.nallowed_hosts == 0 && !r.loopback_bound)) {
        int listed = hlen >= strlen(hosts[0]) && strncasecmp(host, hosts[0], strlen(hosts[0])) == 0;
        if (!listed && !names_loopback(host, hlen))
            abort(); /* a rebinding Host got through */
    }
    free(host);
    if (nl != NULL) {
        size_t olen = n - hlen - 1;
        char *origin = malloc(olen ? olen : 1);
        memcpy(origin, nl + 1, olen);
        int ok = mg_origin_origin_allowed(&r, origin, olen);
        if (ok) {
            int listed = r.nallowed_origins && olen == strlen(origins[0]) &&
                         strncasecmp(origin, origins[0], olen) == 0;
            if (!listed) {
                size_t skip = olen > 7 && strncasecmp(origin, "http://", 7) == 0    ? 7
                              : olen > 8 && strncasecmp(origin, "https://", 8) == 0 ? 8
                                                                                    : 0;
                if (!r.loopback_bound || skip == 0 || memchr(origin + skip, '/', olen - skip) ||
                    memchr(origin + skip, '@', olen - skip) || !names_loopback(origin + skip, olen - skip))
                    abort(); /* a foreign Origin got through */
            }
        }
        free(origin);
    }
    return 0;
}
