/*
 * query.c - query-string decoding and the /mcp parameter check (query.h). Pure functions:
 * unit-tested in test/unit/test_http.c.
 */
#include "query.h"
#include "../common/err.h"

#include <ctype.h>
#include <string.h>

const char *const MG_HTTP_MCP_QUERY_PARAMS[] = {"profile", NULL};
const char *const MG_HTTP_SSE_QUERY_PARAMS[] = {"profile", NULL};
const char *const MG_HTTP_MESSAGES_QUERY_PARAMS[] = {"sessionId", NULL};

/* Names (normalised: lower case, "-" " " "." as "_") that carry credentials as a whole... */
static const char *const credential_names[] = {
    "access_token",  "id_token",      "token",       "bearer",    "bearer_token",  "api_key",       "apikey",
    "authorization", "key",           "auth",        "password",  "passwd",        "pass",          "pwd",
    "secret",        "client_secret", "jwt",         "x_api_key", "refresh_token", "session_token", "sig",
    "signature",     "credential",    "credentials", NULL};
/* ...and parts that mark a name as one wherever they appear in it. */
static const char *const credential_parts[] = {"token",  "key",        "secret", "passw", "auth",
                                               "bearer", "credential", "jwt",    NULL};

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Decodes s[0..n) into out (cap bytes, NUL-terminated; longer results are cut, *cut set).
 * Returns the decoded length, or MG_EINVAL for a bad %XX or a decoded NUL. */
static long decode(const char *s, size_t n, char *out, size_t cap, int *cut)
{
    size_t o = 0;
    *cut = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return MG_EINVAL;
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return MG_EINVAL;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == 0)
            return MG_EINVAL;
        if (o + 1 < cap)
            out[o++] = (char)c;
        else
            *cut = 1;
    }
    if (cap > 0)
        out[o < cap ? o : cap - 1] = '\0';
    return (long)o;
}

/* Splits the next "name[=value]" segment off q[*pos..len). Returns 0 at the end. */
static int next_segment(const char *q, size_t len, size_t *pos, const char **name, size_t *nlen,
                        const char **val, size_t *vlen, int *has_eq)
{
    while (*pos < len && q[*pos] == '&')
        (*pos)++;
    if (*pos >= len)
        return 0;
    const char *p = q + *pos, *end = q + len;
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *stop = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(stop - p));
    *name = p;
    *nlen = (size_t)((eq ? eq : stop) - p);
    *val = eq ? eq + 1 : stop;
    *vlen = eq ? (size_t)(stop - eq - 1) : 0;
    *has_eq = eq != NULL;
    *pos = (size_t)(stop - q);
    return 1;
}

static int looks_like_credential(const char *name)
{
    char norm[257];
    size_t n = 0;
    for (const char *c = name; *c && n + 1 < sizeof norm; c++)
        norm[n++] = *c == '-' || *c == ' ' || *c == '.' ? '_' : (char)tolower((unsigned char)*c);
    norm[n] = '\0';
    for (size_t i = 0; credential_names[i] != NULL; i++)
        if (strcmp(norm, credential_names[i]) == 0)
            return 1;
    for (size_t i = 0; credential_parts[i] != NULL; i++)
        if (strstr(norm, credential_parts[i]) != NULL)
            return 1;
    return 0;
}

static void printable(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *c = in; *c && o + 1 < cap && o < 64; c++)
        out[o++] =
            (unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f && *c != '"' && *c != '\'' ? *c : '?';
    if (cap > 0)
        out[o] = '\0';
}

mg_http_query_verdict_t mg_http_query_check(const char *q, size_t len, const char *const *allowed, char *name,
                                            size_t cap)
{
    mg_http_query_verdict_t worst = MG_HTTP_QUERY_OK;
    char first_unknown[257] = "", repeated[257] = "";
    unsigned seen[16] = {0};
    size_t pos = 0, nlen, vlen;
    const char *np, *vp;
    int has_eq;
    if (cap > 0)
        name[0] = '\0';
    while (q != NULL && next_segment(q, len, &pos, &np, &nlen, &vp, &vlen, &has_eq)) {
        char dec[257];
        int cut = 0;
        long dl = decode(np, nlen, dec, sizeof dec, &cut);
        int control = 0;
        for (const char *c = dec; dl > 0 && *c; c++)
            control |= (unsigned char)*c < 0x20 || *c == 0x7f;
        if (dl < 0 || control) {
            /* a malformed name: say so unless a credential was already found */
            if (worst < MG_HTTP_QUERY_CREDENTIAL) {
                printable(dl < 0 ? "" : dec, name, cap);
                return MG_HTTP_QUERY_MALFORMED;
            }
            continue;
        }
        if (dl == 0 && has_eq && worst < MG_HTTP_QUERY_CREDENTIAL) {
            printable("", name, cap); /* "?=x": a value without a name */
            return MG_HTTP_QUERY_MALFORMED;
        }
        if (dl == 0)
            continue;
        if (looks_like_credential(dec)) {
            printable(dec, name, cap);
            return MG_HTTP_QUERY_CREDENTIAL;
        }
        size_t k = 0;
        while (allowed != NULL && allowed[k] != NULL && (cut || strcmp(dec, allowed[k]) != 0))
            k++;
        if (allowed == NULL || allowed[k] == NULL) {
            if (worst < MG_HTTP_QUERY_UNKNOWN) {
                worst = MG_HTTP_QUERY_UNKNOWN;
                memcpy(first_unknown, dec, sizeof dec);
            }
        } else if (k < 16 && ++seen[k] == 2 && worst < MG_HTTP_QUERY_REPEATED) {
            worst = MG_HTTP_QUERY_REPEATED;
            memcpy(repeated, dec, sizeof dec);
        }
    }
    if (worst == MG_HTTP_QUERY_UNKNOWN)
        printable(first_unknown, name, cap);
    else if (worst == MG_HTTP_QUERY_REPEATED)
        printable(repeated, name, cap);
    return worst;
}

int mg_http_query_get(const char *q, size_t len, const char *name, char *out, size_t cap)
{
    size_t pos = 0, nlen, vlen;
    const char *np, *vp;
    int has_eq;
    while (q != NULL && next_segment(q, len, &pos, &np, &nlen, &vp, &vlen, &has_eq)) {
        char dec[257];
        int cut = 0;
        long dl = decode(np, nlen, dec, sizeof dec, &cut);
        if (dl < 0 || cut || strcmp(dec, name) != 0)
            continue;
        long vl = decode(vp, vlen, out, cap, &cut);
        if (vl < 0)
            return MG_EINVAL;
        return cut ? MG_ETOOBIG : 1;
    }
    return 0;
}
