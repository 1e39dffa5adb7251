/*
 * parse.c - the audit's parsers of what a target answers: JSON-RPC messages out of JSON or SSE bodies,
 * a JWT's payload, WWW-Authenticate parameters, session-id entropy, HTML and stack-trace bodies.
 * Pure and bounded (a hostile target chooses every byte): nothing here allocates more than a small
 * multiple of its input, loops more than its input's length, or trusts a length it was given.
 * fuzz/fuzz_audit.c drives every function. Contracts: audit_int.h.
 */
#include "audit_int.h"
#include "../common/codec.h"
#include "../common/json.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_EVENTS 256

static void add_value(json_t *out, json_t *v)
{
    if (v == NULL)
        return;
    if (json_is_array(v)) {
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) json_array_append(out, m);
        json_decref(v);
    } else {
        json_array_append_new(out, v);
    }
}

static void parse_sse(json_t *out, const char *b, size_t len)
{
    char *data = malloc(len + 1);
    if (data == NULL)
        return;
    size_t dlen = 0, events = 0;
    int have = 0;
    size_t i = 0;
    while (i <= len && events < MAX_EVENTS) {
        size_t e = i;
        while (e < len && b[e] != '\n' && b[e] != '\r')
            e++;
        size_t n = e - i;
        if (n == 0) { /* blank line (or end): dispatch */
            if (have) {
                add_value(out, mg_json_loadb(data, dlen, 0));
                events++;
            }
            dlen = 0;
            have = 0;
        } else if (n >= 5 && memcmp(b + i, "data:", 5) == 0) {
            size_t s = i + 5;
            if (s < e && b[s] == ' ')
                s++;
            if (have)
                data[dlen++] = '\n';
            memcpy(data + dlen, b + s, e - s);
            dlen += e - s;
            have = 1;
        }
        if (e >= len)
            break;
        i = e + (b[e] == '\r' && e + 1 < len && b[e + 1] == '\n' ? 2 : 1);
    }
    if (have && events < MAX_EVENTS)
        add_value(out, mg_json_loadb(data, dlen, 0));
    free(data);
}

json_t *mg_audit_messages(const char *ctype, const char *body, size_t len)
{
    json_t *out = json_array();
    if (out == NULL || body == NULL || len == 0)
        return out;
    int sse = ctype != NULL ? strstr(ctype, "text/event-stream") != NULL
                            : (len >= 5 && (memcmp(body, "data:", 5) == 0 || memcmp(body, "event", 5) == 0 ||
                                            memcmp(body, "id:", 3) == 0 || body[0] == ':'));
    if (sse)
        parse_sse(out, body, len);
    else
        add_value(out, mg_json_loadb(body, len, 0));
    return out;
}

json_t *mg_audit_find_id(const json_t *msgs, json_int_t id)
{
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        json_t *v = json_object_get(m, "id");
        if (json_is_integer(v) && json_integer_value(v) == id &&
            (json_object_get(m, "result") != NULL || json_object_get(m, "error") != NULL))
            return m;
    }
    return NULL;
}

json_t *mg_audit_jwt_payload(const char *tok)
{
    if (tok == NULL)
        return NULL;
    const char *d1 = strchr(tok, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (d1 == NULL || d2 == NULL || strchr(d2 + 1, '.') != NULL)
        return NULL;
    size_t n = (size_t)(d2 - d1 - 1);
    if (n == 0 || n > 16384)
        return NULL;
    unsigned char *buf = malloc(n);
    if (buf == NULL)
        return NULL;
    long got = mg_base64_decode(d1 + 1, n, buf, n, MG_B64_URL | MG_B64_PAD);
    json_t *p = got > 0 ? mg_json_loadb((const char *)buf, (size_t)got, 0) : NULL;
    free(buf);
    if (p != NULL && !json_is_object(p)) {
        json_decref(p);
        return NULL;
    }
    return p;
}

double mg_audit_id_bits(const json_t *ids)
{
    size_t n = json_array_size(ids);
    if (n < 2)
        return 0;
    /* Alphabet over every id's characters. */
    int lower = 0, upper = 0, digit = 0, hexonly = 1, other = 0;
    size_t minlen = (size_t)-1, prefix = (size_t)-1;
    const char *first = json_string_value(json_array_get(ids, 0));
    if (first == NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(ids, i));
        if (s == NULL)
            return 0;
        for (size_t j = 0; j < i; j++)
            if (strcmp(s, json_string_value(json_array_get(ids, j))) == 0)
                return 0;
        size_t len = strlen(s);
        size_t shared = 0;
        while (shared < len && s[shared] == first[shared])
            shared++;
        if (i > 0 && shared < prefix)
            prefix = shared;
        size_t sig = 0; /* characters that carry value: not '-' separators */
        for (const char *q = s; *q; q++) {
            unsigned char c = (unsigned char)*q;
            if (c == '-' && (q - s == 8 || q - s == 13 || q - s == 18 || q - s == 23))
                continue; /* UUID dashes */
            sig++;
            if (islower(c)) {
                lower = 1;
                if (c > 'f')
                    hexonly = 0;
            } else if (isupper(c)) {
                upper = 1;
                if (c > 'F')
                    hexonly = 0;
            } else if (isdigit(c)) {
                digit = 1;
            } else {
                other = 1;
                hexonly = 0;
            }
        }
        if (sig < minlen)
            minlen = sig;
    }
    double alpha;
    if (hexonly && !(lower && upper))
        alpha = digit && !lower && !upper ? 10 : 16;
    else
        alpha = (lower ? 26 : 0) + (upper ? 26 : 0) + (digit ? 10 : 0) + (other ? 2 : 0);
    if (alpha < 2)
        return 0;
    if (prefix == (size_t)-1)
        prefix = 0;
    double len = (double)minlen - (double)prefix;
    if (len <= 0)
        return 0;
    /* UUIDv4: 6 fixed bits. */
    double bits = len * log2(alpha);
    if (strlen(first) == 36 && first[14] == '4')
        bits -= 6;
    return bits < 0 ? 0 : bits;
}

int mg_audit_auth_param(const char *header, const char *name, char *out, size_t n)
{
    if (header == NULL || n == 0)
        return -1;
    size_t nl = strlen(name);
    for (const char *p = header; *p; p++) {
        if ((p == header || p[-1] == ' ' || p[-1] == ',' || p[-1] == '\t') && strncasecmp(p, name, nl) == 0) {
            const char *q = p + nl;
            while (*q == ' ')
                q++;
            if (*q != '=')
                continue;
            q++;
            while (*q == ' ')
                q++;
            size_t o = 0;
            if (*q == '"') {
                q++;
                while (*q && *q != '"' && o + 1 < n) {
                    if (*q == '\\' && q[1])
                        q++;
                    out[o++] = *q++;
                }
            } else {
                while (*q && *q != ',' && *q != ' ' && o + 1 < n)
                    out[o++] = *q++;
            }
            out[o] = '\0';
            return 0;
        }
    }
    return -1;
}

int mg_audit_body_leaky(const char *body, size_t len)
{
    static const char *const marks[] = {
        "<!doctype html", "<html",        "<body",         "traceback (most recent call",
        "    at ",        ".js:",         "node_modules/", "exception in thread",
        "goroutine ",     ".py\", line ", "stack trace:",  NULL};
    size_t n = len < 65536 ? len : 65536;
    char *low = malloc(n + 1);
    if (low == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)body[i]);
    low[n] = '\0';
    int hit = 0;
    /* A JSON body may quote anything; only non-JSON bodies are judged by their text. */
    size_t s = 0;
    while (s < n && isspace((unsigned char)low[s]))
        s++;
    int json = s < n && (low[s] == '{' || low[s] == '[');
    for (int i = 0; !hit && marks[i] != NULL; i++) {
        if (i >= 3 && json) {
            /* a JSON error whose message holds a trace is still a leak */
            if (i == 3 || i == 6 || i == 7 || i == 9)
                hit = memmem(low, n, marks[i], strlen(marks[i])) != NULL;
            continue;
        }
        if (i < 3 && json)
            continue;
        hit = memmem(low, n, marks[i], strlen(marks[i])) != NULL;
    }
    free(low);
    return hit;
}
