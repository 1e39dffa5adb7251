/*
 * rpcraw.c - the canonical-form scanner and id splice of rpcraw.h. One pass, no allocation:
 * recursive descent bounded by MG_RPC_RAW_MAX_DEPTH, each object's keys kept on the stack to
 * refuse duplicates. Read next: rpcraw.h (the table of what is canonical).
 */
#include "rpcraw.h"

#include <string.h>

#include "../common/err.h"

typedef struct scan {
    const unsigned char *p, *end;
    unsigned depth;
} scan_t;

static int is_hex_upper(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static unsigned hex_val(unsigned char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'A' + 10);
}

/* 1 for a byte a string holds as is (printable ASCII but '"' and '\\'); 0 for the others. */
static const unsigned char plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0), /* 0x00-0x1F */
    1,      1,      0,      1,      1,      1,      1,      1,
    1,      1,      1,      1,      1,      1,      1,      1, /* 0x20-0x2F: '"' */
    R16(1), R16(1),                                            /* 0x30-0x4F */
    1,      1,      1,      1,      1,      1,      1,      1,
    1,      1,      1,      1,      0,      1,      1,      1, /* 0x50-0x5F: '\\' */
    R16(1), R16(1),                                            /* 0x60-0x7F */
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0),
#undef R16
};

/* A string at s->p (on '"'); leaves s->p after its closing quote. 0 when canonical. */
static int scan_string(scan_t *s)
{
    const unsigned char *p = s->p + 1, *end = s->end, *start = p;
    int high = 0;
    for (;;) {
        while (p < end && plain[*p])
            p++;
        if (p >= end)
            return -1;
        unsigned char c = *p;
        if (c == '"')
            break;
        if (c < 0x20)
            return -1; /* a raw control: not JSON */
        if (c >= 0x80) {
            high = 1;
            p++;
            continue;
        }
        if (c != '\\') {
            p++;
            continue;
        }
        if (p + 1 >= end)
            return -1;
        switch (p[1]) {
        case '"':
        case '\\':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            continue;
        case 'u':
            /* only \u00XX for a control without a short form (jansson writes those so) */
            if (end - p < 6 || p[2] != '0' || p[3] != '0' || !is_hex_upper(p[4]) || !is_hex_upper(p[5]))
                return -1;
            {
                unsigned v = hex_val(p[4]) * 16 + hex_val(p[5]);
                if (v == 0 || v >= 0x20 || v == '\b' || v == '\f' || v == '\n' || v == '\r' || v == '\t')
                    return -1;
            }
            p += 6;
            continue;
        default:
            return -1; /* \/ and anything else: not how the dump writes it */
        }
    }
    if (high && !mg_json_utf8_valid((const char *)start, (size_t)(p - start)))
        return -1;
    s->p = p + 1;
    return 0;
}

/* An integer within int64, not -0 (reals are refused: their dump is jansson's %.17g). */
static int scan_number(scan_t *s, int64_t *out)
{
    const unsigned char *p = s->p, *end = s->end;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    const unsigned char *digits = p;
    if (*p == '0') {
        p++;
        if (neg)
            return -1; /* -0 dumps as 0 */
    } else {
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9')))
        return -1;
    uint64_t u = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (const unsigned char *d = digits; d < p; d++) {
        unsigned dv = (unsigned)(*d - '0');
        if (u > (lim - dv) / 10)
            return -1; /* jansson refuses integers outside int64 */
        u = u * 10 + dv;
    }
    if (out != NULL)
        *out = neg ? (u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u) : (int64_t)u;
    s->p = p;
    return 0;
}

static int scan_literal(scan_t *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return -1;
    s->p += n;
    return 0;
}

/* What the top-level object wants to know about its members (NULL below the top). */
typedef struct top {
    mg_rpc_raw_t *raw;
    const unsigned char *base;
} top_t;

static int scan_value(scan_t *s, int *is_true, int64_t *num, int *is_num, int *is_error);

#define KEY_IS(k, n, lit) ((n) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

/* An object at s->p (on '{'). top: the envelope's spans go there. is_error (may be NULL): set when
 * the object has "isError":true. */
static int scan_object(scan_t *s, top_t *top, int *is_error)
{
    struct {
        const unsigned char *k;
        size_t n;
    } keys[MG_RPC_RAW_MAX_KEYS];
    size_t nkeys = 0;
    if (++s->depth > MG_RPC_RAW_MAX_DEPTH)
        return -1;
    s->p++;
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        if (s->p >= s->end || *s->p != '"' || nkeys == MG_RPC_RAW_MAX_KEYS)
            return -1;
        const unsigned char *k = s->p + 1;
        if (scan_string(s) != 0)
            return -1;
        size_t kn = (size_t)(s->p - 1 - k);
        for (size_t i = 0; i < nkeys; i++)
            if (keys[i].n == kn && memcmp(keys[i].k, k, kn) == 0)
                return -1; /* a duplicate: jansson keeps the last one, in the first one's place */
        keys[nkeys].k = k;
        keys[nkeys].n = kn;
        nkeys++;
        if (s->p >= s->end || *s->p != ':')
            return -1;
        s->p++;
        const unsigned char *v = s->p;
        int t = 0, isnum = 0, err_flag = 0;
        int64_t num = 0;
        int want_error = top != NULL && KEY_IS(k, kn, "result");
        if (scan_value(s, &t, &num, &isnum, want_error ? &err_flag : NULL) != 0)
            return -1;
        if (is_error != NULL && t && KEY_IS(k, kn, "isError"))
            *is_error = 1;
        if (top != NULL) {
            mg_rpc_raw_t *r = top->raw;
            size_t off = (size_t)(v - top->base), vn = (size_t)(s->p - v);
            if (KEY_IS(k, kn, "id")) {
                r->has_id = 1;
                r->id_off = off;
                r->id_len = vn;
                r->id_is_int = isnum ? 1u : 0u;
                r->id = num;
            } else if (KEY_IS(k, kn, "result")) {
                r->has_result = 1;
                r->result_off = off;
                r->result_len = vn;
                r->is_error = err_flag ? 1u : 0u;
            } else if (KEY_IS(k, kn, "error")) {
                r->has_error = 1;
            } else if (KEY_IS(k, kn, "method")) {
                r->has_method = 1;
            }
        }
        if (s->p >= s->end)
            return -1;
        if (*s->p == '}') {
            s->p++;
            s->depth--;
            return 0;
        }
        if (*s->p != ',')
            return -1;
        s->p++;
    }
}

static int scan_array(scan_t *s)
{
    if (++s->depth > MG_RPC_RAW_MAX_DEPTH)
        return -1;
    s->p++;
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        if (scan_value(s, NULL, NULL, NULL, NULL) != 0 || s->p >= s->end)
            return -1;
        if (*s->p == ']') {
            s->p++;
            s->depth--;
            return 0;
        }
        if (*s->p != ',')
            return -1;
        s->p++;
    }
}

static int scan_value(scan_t *s, int *is_true, int64_t *num, int *is_num, int *is_error)
{
    if (s->p >= s->end)
        return -1;
    switch (*s->p) {
    case '{':
        return scan_object(s, NULL, is_error);
    case '[':
        return scan_array(s);
    case '"':
        return scan_string(s);
    case 't':
        if (is_true != NULL)
            *is_true = 1;
        return scan_literal(s, "true", 4);
    case 'f':
        return scan_literal(s, "false", 5);
    case 'n':
        return scan_literal(s, "null", 4);
    default:
        if (is_num != NULL)
            *is_num = 1;
        return scan_number(s, num);
    }
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int mg_rpc_raw_scan(const char *text, size_t len, mg_rpc_raw_t *out)
{
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    while (p < end && is_space(*p))
        p++;
    while (end > p && is_space(end[-1]))
        end--;
    if (p >= end || *p != '{')
        return MG_EINVAL;
    memset(out, 0, sizeof *out);
    scan_t s = {p, end, 0};
    top_t top = {out, p};
    if (scan_object(&s, &top, NULL) != 0 || s.p != end)
        return MG_EINVAL;
    out->p = (const char *)p;
    out->len = (size_t)(end - p);
    return 0;
}

void mg_rpc_raw_put_with_id(mg_jbuf_t *b, const mg_rpc_raw_t *raw, const json_t *id)
{
    mg_jbuf_put(b, raw->p, raw->id_off);
    if (id != NULL)
        mg_jbuf_put_json(b, id);
    else
        mg_jbuf_put(b, "null", 4);
    size_t after = raw->id_off + raw->id_len;
    mg_jbuf_put(b, raw->p + after, raw->len - after);
}
