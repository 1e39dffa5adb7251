/*
 * head.c - framing and Host rules on a raw HTTP/1.x request head (head.h). Pure function:
 * unit-tested in test/unit/test_http.c, exercised end to end by test/e2e/smuggling.test.mjs.
 */
#include "head.h"
#include "../common/err.h"

#include <string.h>
#include <strings.h>

static int name_is(const char *name, size_t n, const char *want)
{
    return n == strlen(want) && strncasecmp(name, want, n) == 0;
}

int mg_http_head_check(const char *head, size_t len, int http11, const char **why)
{
    unsigned host = 0, cl = 0, te = 0;
    int host_empty = 0, cl_list = 0;
    const char *p = head, *end = head + len;
    /* the request line */
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) {
        *why = "Bad Request: incomplete request head";
        return MG_EINVAL;
    }
    p = nl + 1;
    for (;;) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) {
            *why = "Bad Request: incomplete request head";
            return MG_EINVAL;
        }
        const char *le = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        if (le == p)
            break; /* the empty line: end of the head */
        if (*p == ' ' || *p == '\t') {
            *why = "Bad Request: a header line is folded onto the next (obs-fold, RFC 9112 §5.2); send each "
                   "header on one line";
            return MG_EINVAL;
        }
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon != NULL) {
            size_t n = (size_t)(colon - p);
            const char *v = colon + 1, *ve = le;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (name_is(p, n, "host")) {
                host++;
                host_empty |= v == ve;
            } else if (name_is(p, n, "content-length")) {
                cl++;
                cl_list |= memchr(v, ',', (size_t)(ve - v)) != NULL;
            } else if (name_is(p, n, "transfer-encoding")) {
                te++;
            }
        }
        p = nl + 1;
    }
    if (cl > 0 && te > 0) {
        *why = "Bad Request: the request has both Content-Length and Transfer-Encoding (RFC 9112 §6.1); "
               "send only one of them";
        return MG_EINVAL;
    }
    if (cl > 1 || cl_list) {
        *why = "Bad Request: Content-Length appears more than once (RFC 9112 §6.3); send one Content-Length";
        return MG_EINVAL;
    }
    if (te > 1) {
        *why = "Bad Request: Transfer-Encoding appears more than once; send one Transfer-Encoding: chunked";
        return MG_EINVAL;
    }
    if (te > 0 && !http11) {
        *why = "Bad Request: Transfer-Encoding is not allowed in an HTTP/1.0 request (RFC 9112 §6.1); send "
               "Content-Length";
        return MG_EINVAL;
    }
    if (host > 1) {
        *why = "Bad Request: Host appears more than once (RFC 9112 §3.2); send one Host header";
        return MG_EINVAL;
    }
    if (http11 && (host == 0 || host_empty)) {
        *why = "Bad Request: an HTTP/1.1 request needs one Host header naming this server (RFC 9112 §3.2)";
        return MG_EINVAL;
    }
    return 0;
}
