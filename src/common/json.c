/*
 * json.c - compact JSON writer and JSON reader over jansson trees, equal in output and in what
 * they accept to jansson 2.14 (json.h says exactly how). Hot path: every client body, every
 * upstream line, every response and log line goes through here.
 * Read next: jsonrpc/jsonrpc.c (mg_rpc_parse, mg_rpc_dump), test/unit/test_json.c.
 */
#include "json.h"
#include "codec.h"
#include "err.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DUMP_MAX_DEPTH 4096 /* deeper than any parsed tree (2048) plus envelopes; a cycle hits it */

/* ---- UTF-8 (jansson's utf8_check_first / utf8_check_full rules: strict RFC 3629) ---- */

/* Length of the valid sequence at p (n >= 1 bytes available, p[0] >= 0x80), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* > U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    return len;
}

int mg_json_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        size_t k = utf8_seq(p, (size_t)(end - p));
        if (k == 0)
            return 0;
        p += k;
    }
    return 1;
}

/* ---- output buffer ---- */

void mg_jbuf_init(mg_jbuf_t *b, char *storage, size_t n, size_t max)
{
    b->p = storage;
    b->len = 0;
    b->cap = storage != NULL ? n : 0;
    b->max = max;
    b->heap = 0;
    b->err = 0;
}

void mg_jbuf_dispose(mg_jbuf_t *b)
{
    if (b->heap)
        free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->heap = 0;
}

/* Makes room for n more bytes (+2 spare for a NUL and a newline). 0 or -1 (err set). */
static int grow(mg_jbuf_t *b, size_t n)
{
    if (b->err)
        return -1;
    if (n > b->max - b->len) {
        b->err = MG_ETOOBIG;
        return -1;
    }
    size_t need = b->len + n + 2;
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap > 0 ? b->cap : 256;
    while (ncap < need)
        ncap *= 2;
    char *np;
    if (b->heap) {
        np = realloc(b->p, ncap);
    } else {
        np = malloc(ncap);
        if (np != NULL && b->len > 0)
            memcpy(np, b->p, b->len);
    }
    if (np == NULL) {
        b->err = MG_ENOMEM;
        return -1;
    }
    b->p = np;
    b->cap = ncap;
    b->heap = 1;
    return 0;
}

void mg_jbuf_put(mg_jbuf_t *b, const char *p, size_t n)
{
    if (b->len + n + 2 > b->cap && grow(b, n) != 0)
        return;
    if (b->err)
        return;
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

int mg_jbuf_reserve(mg_jbuf_t *b, size_t n)
{
    if (b->len + n + 2 > b->cap && grow(b, n) != 0)
        return -1;
    return b->err ? -1 : 0;
}

static inline void put_c(mg_jbuf_t *b, char c)
{
    if (b->len + 3 > b->cap && grow(b, 1) != 0)
        return;
    if (b->err)
        return;
    b->p[b->len++] = c;
}

/* 1: copied as is; 0: needs an escape (" \ and controls); 2: first byte of a UTF-8 sequence. */
static const unsigned char str_class[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0), /* 0x00-0x1F: controls */
    1,      1,      0,      1,      1,      1,      1,      1,
    1,      1,      1,      1,      1,      1,      1,      1, /* 0x20-0x2F: '"' escaped */
    R16(1), R16(1),                                            /* 0x30-0x4F */
    1,      1,      1,      1,      1,      1,      1,      1,
    1,      1,      1,      1,      0,      1,      1,      1, /* 0x50-0x5F: '\\' escaped */
    R16(1), R16(1),                                            /* 0x60-0x7F (DEL is not escaped) */
    R16(2), R16(2), R16(2), R16(2), R16(2), R16(2), R16(2), R16(2),
#undef R16
};

void mg_jbuf_put_str(mg_jbuf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    /* Fast path: nothing to escape or validate (plain ASCII), one copy with its quotes. */
    const unsigned char *q = p;
    while (q < end && str_class[*q] == 1)
        q++;
    if (q == end) {
        if (b->len + n + 4 > b->cap && grow(b, n + 2) != 0)
            return;
        if (b->err)
            return;
        char *o = b->p + b->len;
        o[0] = '"';
        memcpy(o + 1, s, n);
        o[n + 1] = '"';
        b->len += n + 2;
        return;
    }
    put_c(b, '"');
    while (p < end) {
        const unsigned char *run = p;
        for (;;) {
            while (p < end && str_class[*p] == 1)
                p++;
            if (p < end && str_class[*p] == 2) {
                size_t k = utf8_seq(p, (size_t)(end - p));
                if (k == 0) {
                    b->err = b->err ? b->err : MG_EINVAL;
                    return;
                }
                p += k;
                continue;
            }
            break;
        }
        if (p > run)
            mg_jbuf_put(b, (const char *)run, (size_t)(p - run));
        if (p == end)
            break;
        char esc[6] = {'\\', 0, '0', '0', 0, 0};
        size_t elen = 2;
        switch (*p) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            elen = 6;
            break;
        }
        mg_jbuf_put(b, esc, elen);
        p++;
    }
    put_c(b, '"');
}

void mg_jbuf_put_int(mg_jbuf_t *b, int64_t v)
{
    char tmp[24];
    char *e = tmp + sizeof tmp, *q = e;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--q = '-';
    mg_jbuf_put(b, q, (size_t)(e - q));
}

static void put_value(mg_jbuf_t *b, const json_t *v, unsigned depth)
{
    if (b->err)
        return;
    if (v == NULL || depth > DUMP_MAX_DEPTH) {
        b->err = MG_EINVAL;
        return;
    }
    switch (json_typeof(v)) {
    case JSON_NULL:
        mg_jbuf_put(b, "null", 4);
        break;
    case JSON_TRUE:
        mg_jbuf_put(b, "true", 4);
        break;
    case JSON_FALSE:
        mg_jbuf_put(b, "false", 5);
        break;
    case JSON_INTEGER:
        mg_jbuf_put_int(b, (int64_t)json_integer_value(v));
        break;
    case JSON_REAL: { /* rare on this path: jansson's own %.17g rules, exactly */
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s == NULL) {
            b->err = MG_EINVAL;
            return;
        }
        mg_jbuf_put(b, s, strlen(s));
        free(s);
        break;
    }
    case JSON_STRING:
        mg_jbuf_put_str(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        put_c(b, '[');
        for (size_t i = 0; i < n && !b->err; i++) {
            if (i > 0)
                put_c(b, ',');
            put_value(b, json_array_get(v, i), depth + 1);
        }
        put_c(b, ']');
        break;
    }
    case JSON_OBJECT: {
        put_c(b, '{');
        int first = 1;
        for (void *it = json_object_iter((json_t *)v); it != NULL && !b->err;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first)
                put_c(b, ',');
            first = 0;
            mg_jbuf_put_str(b, json_object_iter_key(it), json_object_iter_key_len(it));
            put_c(b, ':');
            put_value(b, json_object_iter_value(it), depth + 1);
        }
        put_c(b, '}');
        break;
    }
    default:
        b->err = MG_EINVAL;
        break;
    }
}

void mg_jbuf_put_json(mg_jbuf_t *b, const json_t *v)
{
    put_value(b, v, 1);
}

char *mg_jbuf_steal(mg_jbuf_t *b, size_t *len)
{
    if (b->err) {
        mg_jbuf_dispose(b);
        return NULL;
    }
    char *out;
    if (b->heap) {
        out = b->p; /* grow() always leaves 2 spare bytes */
    } else {
        out = malloc(b->len + 2);
        if (out == NULL) {
            mg_jbuf_dispose(b);
            return NULL;
        }
        if (b->len > 0)
            memcpy(out, b->p, b->len);
    }
    out[b->len] = '\0';
    if (len != NULL)
        *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    b->heap = 0;
    return out;
}

char *mg_json_dump(const json_t *v, size_t *len)
{
    if (!json_is_object(v) && !json_is_array(v))
        return NULL;
    char stack[1024];
    mg_jbuf_t b;
    mg_jbuf_init(&b, stack, sizeof stack, SIZE_MAX / 4);
    put_value(&b, v, 1);
    return mg_jbuf_steal(&b, len);
}

/* ---- members of a canonical text ---- */

/* Where the value starting at t[i] ends inside its object (the index of the ',' or '}' after it),
 * or 0 when the text ends first or a bracket does not fit. */
static size_t text_value_end(const char *t, size_t len, size_t i)
{
    size_t depth = 0;
    while (i < len) {
        char ch = t[i];
        if (ch == '"') { /* no escapes: the next quote ends it */
            const char *q = memchr(t + i + 1, '"', len - i - 1);
            if (q == NULL)
                return 0;
            i = (size_t)(q - t) + 1;
            continue;
        }
        if (depth == 0 && (ch == ',' || ch == '}'))
            return i;
        if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (depth == 0)
                return 0;
            depth--;
        }
        i++;
    }
    return 0;
}

int mg_json_text_member(const char *text, size_t len, const char *key, const char **vp, size_t *vlen)
{
    size_t kl = strlen(key);
    *vp = NULL;
    *vlen = 0;
    if (len < 2 || text[0] != '{' || text[len - 1] != '}')
        return -1;
    if (len == 2)
        return 0;
    size_t i = 1;
    for (;;) {
        if (text[i] != '"')
            return -1;
        const char *q = memchr(text + i + 1, '"', len - i - 1);
        if (q == NULL || (size_t)(q - text) + 2 >= len || q[1] != ':')
            return -1;
        size_t k = i + 1, klen = (size_t)(q - text) - k, v = (size_t)(q - text) + 2;
        size_t end = text_value_end(text, len, v);
        if (end <= v)
            return -1;
        if (klen == kl && memcmp(text + k, key, kl) == 0) {
            *vp = text + v;
            *vlen = end - v;
            return 1;
        }
        if (text[end] == '}')
            return end == len - 1 ? 0 : -1;
        i = end + 1;
    }
}

/* ---- reader ---- */

typedef struct parser {
    const unsigned char *p, *end;
    int flags;
    unsigned depth;
    /* mg_json_loadb_bounded (NULL otherwise): the bounds, and the counts mg_rpc_scan keeps
     * (containers open, elements of a top-level array, values), updated at the same bytes. */
    const mg_json_bounds_t *b;
    unsigned cdepth;
    int top_array;
    size_t items, values;
    /* mg_json_span_t (json.h): the member to report, and whether everything read since the start
     * of its value is canonical (cleared by whitespace, escapes, reals, -0, the NUL quirk). */
    mg_json_span_t *span;
    size_t span_klen;
    int canon;
} parser_t;

/* A container opens ('{' or '['): 0 when a bound is passed (then nothing more is built). */
static int bound_open(parser_t *ps)
{
    ps->values++;
    return ++ps->cdepth <= ps->b->max_depth && ps->items <= ps->b->max_items &&
           ps->values <= ps->b->max_values;
}

/* A ',' between members or elements: 0 when a bound is passed. */
static int bound_comma(parser_t *ps)
{
    ps->values++;
    if (ps->top_array && ps->cdepth == 1)
        ps->items++;
    return ps->items <= ps->b->max_items && ps->values <= ps->b->max_values;
}

static json_t *parse_value(parser_t *ps);

static inline void skip_ws(parser_t *ps)
{
    if (ps->p<ps->end && * ps->p> ' ')
        return; /* the common case: a token, not whitespace (one test instead of four) */
    const unsigned char *p0 = ps->p;
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
    if (ps->p != p0)
        ps->canon = 0; /* the dumper writes no whitespace */
}

/* Four hex digits at p (bounds checked by the caller). */
static int32_t hex4(const unsigned char *p)
{
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = mg_hex_digit(p[i]);
        if (h < 0)
            return -1;
        v = (v << 4) | h;
    }
    return v;
}

static size_t utf8_put(int32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * A string token at ps->p (on the opening quote). On success returns its decoded bytes: a pointer
 * into the input when it has no escape, else into *heap (malloc'd, caller frees) or `scratch`
 * (scratch_n bytes). NULL on any error (jansson's: controls, bad escapes, bad UTF-8, lone
 * surrogates, \u0000, end of input).
 */
static const char *parse_string(parser_t *ps, size_t *out_len, char *scratch, size_t scratch_n, char **heap)
{
    const unsigned char *start = ++ps->p, *p = start, *end = ps->end;
    int escaped = 0;
    for (;;) {
        while (p < end && str_class[*p] == 1)
            p++;
        if (p >= end)
            return NULL;
        unsigned char c = *p;
        if (c == '"')
            break;
        if (c == '\\') {
            if (p + 1 >= end)
                return NULL;
            unsigned char e = p[1];
            if (e == 'u') {
                if (end - p < 6 || hex4(p + 2) < 0)
                    return NULL;
                p += 6;
            } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
                       e == 't') {
                p += 2;
            } else {
                return NULL;
            }
            escaped = 1;
        } else if (c < 0x20) {
            return NULL;
        } else { /* >= 0x80 */
            size_t k = utf8_seq(p, (size_t)(end - p));
            if (k == 0)
                return NULL;
            p += k;
        }
    }
    ps->p = p + 1; /* past the closing quote */
    size_t raw = (size_t)(p - start);
    if (!escaped) {
        *out_len = raw;
        return (const char *)start;
    }
    ps->canon = 0; /* the dumper escapes only what must be (and as it chooses): not these bytes */
    char *out = scratch;
    if (raw > scratch_n) {
        out = malloc(raw);
        if (out == NULL)
            return NULL;
        *heap = out;
    }
    size_t o = 0;
    for (const unsigned char *q = start; q < p;) {
        if (*q != '\\') {
            out[o++] = (char)*q++;
            continue;
        }
        unsigned char e = q[1];
        if (e != 'u') {
            out[o++] = e == 'b'   ? '\b'
                       : e == 'f' ? '\f'
                       : e == 'n' ? '\n'
                       : e == 'r' ? '\r'
                       : e == 't' ? '\t'
                                  : (char)e;
            q += 2;
            continue;
        }
        int32_t cp = hex4(q + 2);
        q += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!(q + 6 <= p && q[0] == '\\' && q[1] == 'u'))
                goto fail;
            int32_t lo = hex4(q + 2);
            if (lo < 0xDC00 || lo > 0xDFFF)
                goto fail;
            cp = ((cp - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
            q += 6;
        } else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
            goto fail; /* lone low surrogate; \u0000 (JSON_ALLOW_NUL is never used) */
        }
        o += utf8_put(cp, out + o);
    }
    *out_len = o;
    return out;
fail:
    free(*heap);
    *heap = NULL;
    return NULL;
}

static locale_t c_locale(void)
{
    static locale_t loc;
    if (loc == (locale_t)0)
        loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    return loc;
}

static json_t *parse_number(parser_t *ps)
{
    const unsigned char *start = ps->p, *p = ps->p, *end = ps->end;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p < end && *p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9')
            return NULL;
    } else if (p < end && *p >= '0' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return NULL;
    }
    int real = 0;
    if (p < end && *p == '.') {
        p++;
        if (!(p < end && *p >= '0' && *p <= '9'))
            return NULL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        real = 1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!(p < end && *p >= '0' && *p <= '9'))
            return NULL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        real = 1;
    }
    ps->p = p;
    if (real || (neg && p - start == 2 && start[1] == '0'))
        ps->canon = 0; /* reals dump as jansson formats them; "-0" dumps as "0" */
    if (!real) {
        uint64_t u = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (const unsigned char *d = start + neg; d < p; d++) {
            unsigned dv = (unsigned)(*d - '0');
            if (u > (lim - dv) / 10)
                return NULL; /* strtoll: ERANGE */
            u = u * 10 + dv;
        }
        int64_t v = neg ? (u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u) : (int64_t)u;
        return json_integer((json_int_t)v);
    }
    size_t n = (size_t)(p - start);
    char stack[64], *text = stack;
    if (n >= sizeof stack && (text = malloc(n + 1)) == NULL)
        return NULL;
    memcpy(text, start, n);
    text[n] = '\0';
    errno = 0;
    double d = strtod_l(text, NULL, c_locale());
    int overflow = (d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE;
    if (text != stack)
        free(text);
    return overflow ? NULL : json_real(d);
}

static json_t *parse_object(parser_t *ps)
{
    if (ps->b != NULL && !bound_open(ps))
        return NULL;
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    ps->p++; /* '{' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        ps->cdepth--;
        return obj;
    }
    /* The duplicate check without a hash lookup for small objects: the first keys read, while all
     * of them were unescaped (pointers into the input, valid for the whole read), are compared
     * here; once one is escaped or there are more, jansson's lookup (the object holds every key). */
    struct {
        const char *k;
        size_t n;
    } seen[4];
    size_t nseen = 0;
    int by_list = 1;
    for (;;) {
        if (ps->p >= ps->end || *ps->p != '"')
            goto fail;
        char scratch[256], *heap = NULL;
        size_t klen = 0;
        const char *key = parse_string(ps, &klen, scratch, sizeof scratch, &heap);
        if (key == NULL)
            goto fail;
        if (ps->flags & MG_JSON_REJECT_DUPLICATES) {
            int dup = 0;
            if (by_list && key != scratch && heap == NULL && nseen < sizeof seen / sizeof seen[0]) {
                for (size_t i = 0; i < nseen && !dup; i++)
                    dup = seen[i].n == klen && memcmp(seen[i].k, key, klen) == 0;
                seen[nseen].k = key;
                seen[nseen++].n = klen;
            } else {
                by_list = 0;
                dup = json_object_getn(obj, key, klen) != NULL;
            }
            if (dup) {
                free(heap);
                goto fail;
            }
        }
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            free(heap);
            goto fail;
        }
        ps->p++;
        skip_ws(ps);
        /* The reported member of the top-level object: its value's bytes, when canonical. */
        int capture = ps->span != NULL && ps->cdepth == 1 && !ps->top_array && ps->span_klen == klen &&
                      memcmp(ps->span->key, key, klen) == 0;
        const unsigned char *vstart = ps->p;
        if (capture)
            ps->canon = 1; /* from its first byte on */
        json_t *v = parse_value(ps);
        if (v == NULL || json_object_setn_new_nocheck(obj, key, klen, v) != 0) {
            free(heap);
            goto fail;
        }
        if (capture && ps->canon) {
            ps->span->p = (const char *)vstart;
            ps->span->len = (size_t)(ps->p - vstart);
            ps->span->v = v;
        }
        free(heap);
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            if (ps->b != NULL && !bound_comma(ps))
                goto fail;
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            ps->cdepth--;
            return obj;
        }
        goto fail;
    }
fail:
    json_decref(obj);
    return NULL;
}

static json_t *parse_array(parser_t *ps)
{
    if (ps->b != NULL && !bound_open(ps))
        return NULL;
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    ps->p++; /* '[' */
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        ps->cdepth--;
        return arr;
    }
    for (;;) {
        json_t *v = parse_value(ps);
        if (v == NULL || json_array_append_new(arr, v) != 0)
            goto fail;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            if (ps->b != NULL && !bound_comma(ps))
                goto fail;
            ps->p++;
            skip_ws(ps);
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            ps->cdepth--;
            return arr;
        }
        goto fail;
    }
fail:
    json_decref(arr);
    return NULL;
}

static int literal(parser_t *ps, const char *word, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return 0;
    ps->p += n;
    return 1;
}

/* jansson counts every value (scalars too) towards JSON_PARSER_MAX_DEPTH. */
static json_t *parse_value(parser_t *ps)
{
    if (ps->p >= ps->end || ++ps->depth > JSON_PARSER_MAX_DEPTH)
        return NULL;
    json_t *v = NULL;
    switch (*ps->p) {
    case '{':
        v = parse_object(ps);
        break;
    case '[':
        v = parse_array(ps);
        break;
    case '"': {
        char scratch[256], *heap = NULL;
        size_t n = 0;
        const char *s = parse_string(ps, &n, scratch, sizeof scratch, &heap);
        if (s != NULL)
            v = json_stringn_nocheck(s, n);
        free(heap);
        break;
    }
    case 't':
        v = literal(ps, "true", 4) ? json_true() : NULL;
        break;
    case 'f':
        v = literal(ps, "false", 5) ? json_false() : NULL;
        break;
    case 'n':
        v = literal(ps, "null", 4) ? json_null() : NULL;
        break;
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            v = parse_number(ps);
        break;
    }
    if (v != NULL) {
        ps->depth--;
        /* jansson quirk, kept: the byte read ahead to end a number or a literal is pushed back into
         * a one-character buffer where a NUL reads as "empty", so one NUL right after one is skipped. */
        if (!json_is_object(v) && !json_is_array(v) && !json_is_string(v) && ps->p < ps->end &&
            *ps->p == '\0') {
            ps->p++;
            ps->canon = 0;
        }
    }
    return v;
}

/* The document's value, with nothing but whitespace after it; NULL otherwise. */
static json_t *parse_document(parser_t *ps)
{
    json_t *v = parse_value(ps);
    if (v == NULL)
        return NULL;
    skip_ws(ps);
    if (ps->p != ps->end) {
        json_decref(v);
        return NULL;
    }
    return v;
}

json_t *mg_json_loadb(const char *buf, size_t len, int flags)
{
    if (buf == NULL)
        return NULL;
    parser_t ps = {.p = (const unsigned char *)buf, .end = (const unsigned char *)buf + len, .flags = flags};
    skip_ws(&ps);
    if (ps.p >= ps.end || (*ps.p != '{' && *ps.p != '['))
        return NULL;
    return parse_document(&ps);
}

json_t *mg_json_loadb_bounded(const char *buf, size_t len, int flags, const mg_json_bounds_t *bounds,
                              size_t *items, size_t *values, mg_json_span_t *span)
{
    if (span != NULL) {
        span->p = NULL;
        span->len = 0;
        span->v = NULL;
    }
    if (buf == NULL)
        return NULL;
    parser_t ps = {.p = (const unsigned char *)buf,
                   .end = (const unsigned char *)buf + len,
                   .flags = flags,
                   .b = bounds,
                   .values = 1,
                   .span = (flags & MG_JSON_REJECT_DUPLICATES) ? span : NULL,
                   .span_klen = span != NULL ? strlen(span->key) : 0};
    skip_ws(&ps);
    if (ps.p >= ps.end || (*ps.p != '{' && *ps.p != '['))
        return NULL;
    if (*ps.p == '[') { /* as mg_rpc_scan: a top-level array counts one item unless it is empty */
        const unsigned char *q = ps.p + 1;
        while (q < ps.end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
            q++;
        ps.top_array = 1;
        ps.items = q < ps.end && *q != ']';
    }
    json_t *v = parse_document(&ps);
    if (v == NULL) {
        if (span != NULL) {
            span->p = NULL;
            span->len = 0;
            span->v = NULL;
        }
        return NULL;
    }
    *items = ps.items;
    *values = ps.values;
    return v;
}

json_t *mg_json_copy(json_t *v)
{
    json_t *c = json_copy(v); /* NOLINT(mg-json-copy): the checked wrapper itself */
    if (c != NULL && ((json_is_object(v) && json_object_size(c) != json_object_size(v)) ||
                      (json_is_array(v) && json_array_size(c) != json_array_size(v)))) {
        json_decref(c);
        return NULL;
    }
    return c;
}

json_t *mg_json_deep_copy(const json_t *v)
{
    json_t *c = json_deep_copy(v); /* NOLINT(mg-json-copy): the checked wrapper itself */
    if (c != NULL && !json_equal(c, v)) {
        json_decref(c);
        return NULL;
    }
    return c;
}
