/*
 * remote_conn.c - what the remote upstream needs below MCP: the URL's host and port, the SSRF guard
 * over a resolved address list (common/cidr.h), and an incremental SSE event parser with a size
 * bound. No I/O here. Read next: remote.c (who calls this), common/cidr.c.
 */
#include "remote_int.h"
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

int mg__url_parse(const char *url, mg__url_t *out)
{
    memset(out, 0, sizeof *out);
    const char *p;
    if (strncasecmp(url, "https://", 8) == 0) {
        out->https = 1;
        p = url + 8;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else {
        return MG_EINVAL;
    }
    size_t auth = strcspn(p, "/?#");
    const char *at = memchr(p, '@', auth);
    if (at != NULL) /* refused by the config parser; never sent */
        return MG_EINVAL;
    const char *hend;
    const char *port = NULL;
    if (*p == '[') {
        hend = memchr(p, ']', auth);
        if (hend == NULL)
            return MG_EINVAL;
        p++;
        if (hend[1] == ':')
            port = hend + 2;
    } else {
        hend = memchr(p, ':', auth);
        if (hend != NULL)
            port = hend + 1;
        else
            hend = p + auth;
    }
    size_t hl = (size_t)(hend - p);
    if (hl == 0 || hl >= sizeof out->host)
        return MG_EINVAL;
    memcpy(out->host, p, hl);
    out->host[hl] = '\0';
    out->port = out->https ? 443 : 80;
    if (port != NULL) {
        char *e;
        unsigned long v = strtoul(port, &e, 10);
        if (e == port || v == 0 || v > 65535 || (*e != '\0' && strchr("/?#", *e) == NULL))
            return MG_EINVAL;
        out->port = (unsigned)v;
    }
    uint8_t tmp[16];
    out->literal = inet_pton(AF_INET, out->host, tmp) == 1 || inet_pton(AF_INET6, out->host, tmp) == 1;
    return 0;
}

static int allowed(const struct mg_egress_config *e, int family, const uint8_t *a)
{
    for (size_t i = 0; e != NULL && i < e->nallow; i++)
        if (mg_cidr_match(&e->allow[i], family, a))
            return 1;
    return 0;
}

int mg__egress_pick(const struct addrinfo *ai, const struct mg_egress_config *egress, char *addr, size_t n,
                    char *why, size_t whylen)
{
    char first[64] = "";
    const char *first_class = NULL;
    for (; ai != NULL; ai = ai->ai_next) {
        int family = ai->ai_family;
        const uint8_t *a;
        if (family == AF_INET)
            a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)ai->ai_addr)->sin_addr;
        else if (family == AF_INET6)
            a = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)ai->ai_addr)->sin6_addr;
        else
            continue;
        const char *klass = mg_cidr_forbidden(family, a);
        if (klass == NULL || allowed(egress, family, a)) {
            mg_cidr_addr_text(family, a, addr, n);
            return 0;
        }
        if (first_class == NULL) {
            first_class = klass;
            mg_cidr_addr_text(family, a, first, sizeof first);
        }
    }
    if (first_class == NULL) {
        snprintf(why, whylen, "the host has no IPv4 or IPv6 address");
        return MG_ENOTFOUND;
    }
    snprintf(why, whylen,
             "it resolves to %s (%s), which upstreams may not reach (SSRF guard): if this server is "
             "meant to be reached there, add its block to gateway.egress.allowCidrs (e.g. \"%s/32\")",
             first, first_class, first);
    if (strchr(first, ':') != NULL) { /* an IPv6 address: /128 */
        size_t l = strlen(why);
        if (l >= 5 && strcmp(why + l - 5, "/32\")") == 0)
            snprintf(why + l - 5, whylen - (l - 5), "/128\")");
    }
    return MG_EFORBIDDEN;
}

/* ---- SSE (text/event-stream, WHATWG rules: fields data/id/event/retry, ':' comments) ---- */

void mg__sse_init(mg__sse_parser_t *p, size_t max)
{
    memset(p, 0, sizeof *p);
    p->max = max;
    p->retry_ms = -1;
}

void mg__sse_dispose(mg__sse_parser_t *p)
{
    free(p->line);
    free(p->data);
    free(p->id);
    free(p->event);
    memset(p, 0, sizeof *p);
}

static int grow(char **buf, size_t *cap, size_t need, size_t max)
{
    if (need <= *cap)
        return 0;
    if (need > max + 1)
        return MG_ETOOBIG;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    if (c > max + 1)
        c = max + 1;
    char *n = realloc(*buf, c);
    if (n == NULL)
        return MG_ENOMEM;
    *buf = n;
    *cap = c;
    return 0;
}

static int set_field(char **field, const char *v, size_t vl)
{
    char *n = malloc(vl + 1);
    if (n == NULL)
        return MG_ENOMEM;
    memcpy(n, v, vl);
    n[vl] = '\0';
    free(*field);
    *field = n;
    return 0;
}

static int line_done(mg__sse_parser_t *p, mg__sse_event_cb cb, void *data)
{
    const char *l = p->line ? p->line : "";
    size_t n = p->llen;
    p->llen = 0;
    if (n == 0) { /* blank line: dispatch */
        if (p->have_data) {
            if (p->dlen > 0 && p->data[p->dlen - 1] == '\n')
                p->dlen--;
            p->data[p->dlen] = '\0';
            cb(data, p->id, p->event, p->data, p->dlen);
        }
        p->dlen = 0;
        p->have_data = 0;
        free(p->event);
        p->event = NULL; /* the id persists (last event id) */
        return 0;
    }
    if (l[0] == ':')
        return 0;
    const char *colon = memchr(l, ':', n);
    size_t fl = colon ? (size_t)(colon - l) : n;
    const char *v = colon ? colon + 1 : l + n;
    if (colon && v < l + n && *v == ' ')
        v++;
    size_t vl = (size_t)(l + n - v);
    if (fl == 4 && memcmp(l, "data", 4) == 0) {
        int r = grow(&p->data, &p->dcap, p->dlen + vl + 2, p->max);
        if (r != 0)
            return r;
        memcpy(p->data + p->dlen, v, vl);
        p->dlen += vl;
        p->data[p->dlen++] = '\n';
        p->have_data = 1;
    } else if (fl == 2 && memcmp(l, "id", 2) == 0) {
        if (memchr(v, '\0', vl) == NULL)
            return set_field(&p->id, v, vl);
    } else if (fl == 5 && memcmp(l, "event", 5) == 0) {
        return set_field(&p->event, v, vl);
    } else if (fl == 5 && memcmp(l, "retry", 5) == 0) {
        char buf[16];
        if (vl > 0 && vl < sizeof buf && strspn(v, "0123456789") >= vl) {
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            p->retry_ms = strtol(buf, NULL, 10);
        }
    }
    return 0;
}

int mg__sse_feed(mg__sse_parser_t *p, const char *bytes, size_t len, mg__sse_event_cb cb, void *data)
{
    for (size_t i = 0; i < len; i++) {
        char c = bytes[i];
        if (p->cr && c == '\n') { /* CRLF: the CR ended the line */
            p->cr = 0;
            continue;
        }
        p->cr = c == '\r';
        if (c == '\r' || c == '\n') {
            int r = grow(&p->line, &p->lcap, p->llen + 1, p->max);
            if (r != 0)
                return r;
            p->line[p->llen] = '\0';
            r = line_done(p, cb, data);
            if (r != 0)
                return r;
            continue;
        }
        /* copy the run up to the next line end at once */
        size_t j = i;
        while (j < len && bytes[j] != '\r' && bytes[j] != '\n')
            j++;
        int r = grow(&p->line, &p->lcap, p->llen + (j - i) + 1, p->max);
        if (r != 0)
            return r;
        memcpy(p->line + p->llen, bytes + i, j - i);
        p->llen += j - i;
        i = j - 1;
    }
    return 0;
}
