/*
 * span_rec.c - a span record (span_rec.h) as the text of its OTLP/JSON Span object, written by the
 * exporter into a batch's body (export.c), never on a request's path. The fixed parts are literals
 * copied into room reserved once per span, ids go through a byte-pair hex table, numbers are
 * formatted by hand, and a value marked plain ASCII is copied without going through the escaper;
 * anything else takes mg_jbuf_put_str (which escapes). The text is byte for byte what trace.c wrote
 * at span end before records (test_trace's golden spans).
 * Read next: span_rec.h (the record), otlp_pb.c (the same records as protobuf).
 */
#include "span_rec.h"

#include <string.h>

static char hexpair[256][2];
unsigned char mg__span_plain[256];

void mg__span_rec_tables_init(void)
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 256; i++) {
        hexpair[i][0] = d[i >> 4];
        hexpair[i][1] = d[i & 15];
        mg__span_plain[i] = i >= 0x20 && i < 0x80 && i != '"' && i != '\\';
    }
}

#define LIT(o, s) (memcpy((o), (s), sizeof(s) - 1), (o) + sizeof(s) - 1)

/* An id as a quoted lowercase hex string (n: 8 or 16, known where it is inlined: the loop unrolls). */
static inline char *put_hex(char *o, const uint8_t *id, size_t n)
{
    *o++ = '"';
#pragma GCC unroll 16
    for (size_t i = 0; i < n; i++)
        memcpy(o + 2 * i, hexpair[id[i]], 2);
    o += 2 * n;
    *o++ = '"';
    return o;
}

static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                            "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                            "8081828384858687888990919293949596979899";

/* Exactly 8 decimal digits of v (< 10^8), leading zeros included, in four pair copies. */
static inline void put_digits8(char *o, uint32_t v)
{
    uint32_t a = v / 10000, b = v % 10000;
    memcpy(o, pairs + 2 * (a / 100), 2);
    memcpy(o + 2, pairs + 2 * (a % 100), 2);
    memcpy(o + 4, pairs + 2 * (b / 100), 2);
    memcpy(o + 6, pairs + 2 * (b % 100), 2);
}

/* The number of decimal digits of v (1..20): from its bit length, then one comparison. */
static inline size_t digits_of(uint64_t v)
{
    static const uint64_t pow10[20] = {1u,
                                       10u,
                                       100u,
                                       1000u,
                                       10000u,
                                       100000u,
                                       1000000u,
                                       10000000u,
                                       100000000u,
                                       1000000000u,
                                       10000000000u,
                                       100000000000u,
                                       1000000000000u,
                                       10000000000000u,
                                       100000000000000u,
                                       1000000000000000u,
                                       10000000000000000u,
                                       100000000000000000u,
                                       1000000000000000000u,
                                       10000000000000000000u};
    if (v == 0)
        return 1;
    size_t n = (size_t)(64 - __builtin_clzll(v)) * 1233 >> 12; /* floor(bits * log10(2)) */
    return n + (n < 20 && v >= pow10[n]);
}

/* A uint64 as a quoted decimal string (OTLP/JSON's int64 and fixed64); neg: with a '-' after the
 * opening quote. Written from its last digit back: eight at a time while more than eight are left
 * (a time in nanoseconds has 19: two such steps), then two at a time. */
static inline char *put_u64(char *o, uint64_t v, int neg)
{
    *o++ = '"';
    if (neg)
        *o++ = '-';
    char *end = o + digits_of(v), *p = end;
    while (v >= 100000000u) {
        p -= 8;
        put_digits8(p, (uint32_t)(v % 100000000u));
        v /= 100000000u;
    }
    uint32_t w = (uint32_t)v;
    while (w >= 100) {
        p -= 2;
        memcpy(p, pairs + 2 * (w % 100), 2);
        w /= 100;
    }
    if (w >= 10)
        memcpy(p - 2, pairs + 2 * w, 2);
    else
        p[-1] = (char)('0' + w);
    *end = '"';
    return end + 1;
}

/* A JSON string at o (room reserved for its escaped form): copied with its quotes when plain,
 * else through the escaper. Returns the end. */
static char *put_str(mg_jbuf_t *b, char *o, const char *v, size_t n, int plain)
{
    if (plain < 0) { /* not known: look */
        size_t i = 0;
        while (i < n && mg__span_plain[(unsigned char)v[i]])
            i++;
        plain = i == n;
    }
    if (plain) {
        *o++ = '"';
        memcpy(o, v, n);
        o[n] = '"';
        return o + n + 1;
    }
    b->len = (size_t)(o - b->p);
    mg_jbuf_put_str(b, v, n); /* within the room reserved: b->p stays */
    return b->p + b->len;
}

void mg__span_rec_json(const mg__span_rec_t *r, mg_jbuf_t *b)
{
    /* The most this span's text can take: every data byte escaped as \u00XX, plus the fixed parts. */
    size_t bound = 6 * (size_t)r->len + 256 + 64 * (size_t)r->nattrs;
    if (mg_jbuf_reserve(b, bound) != 0)
        return;
    const char *d = mg__span_rec_data(r);
    char *o = b->p + b->len;
    o = LIT(o, "{\"traceId\":");
    o = put_hex(o, r->trace_id, 16);
    o = LIT(o, ",\"spanId\":");
    o = put_hex(o, r->span_id, 8);
    if (r->has_parent) {
        o = LIT(o, ",\"parentSpanId\":");
        o = put_hex(o, r->parent_id, 8);
    }
    if (r->state_len > 0) {
        o = LIT(o, ",\"traceState\":");
        o = put_str(b, o, d + r->name_len, r->state_len, -1);
    }
    o = LIT(o, ",\"name\":");
    o = put_str(b, o, d, r->name_len, -1);
    o = LIT(o, ",\"kind\":");
    *o++ = (char)('0' + r->kind % 10);
    o = LIT(o, ",\"startTimeUnixNano\":");
    o = put_u64(o, r->start_ns, 0);
    o = LIT(o, ",\"attributes\":[");
    const char *p = mg__span_rec_attrs(r);
    for (uint32_t i = 0; i < r->nattrs; i++) {
        mg__span_attr_t a;
        p = mg__span_rec_attr_next(p, &a);
        if (i > 0)
            *o++ = ',';
        o = LIT(o, "{\"key\":\"");
        memcpy(o, a.key, a.klen);
        o += a.klen;
        if (a.type == 'i') {
            o = LIT(o, "\",\"value\":{\"intValue\":");
            o = put_u64(o, a.i < 0 ? 0 - (uint64_t)a.i : (uint64_t)a.i, a.i < 0);
        } else {
            o = LIT(o, "\",\"value\":{\"stringValue\":");
            o = put_str(b, o, a.str, a.slen, a.type == 's');
        }
        o = LIT(o, "}}");
    }
    o = LIT(o, "],\"endTimeUnixNano\":");
    o = put_u64(o, r->end_ns, 0);
    if (r->has_error) {
        o = LIT(o, ",\"status\":{\"code\":2,\"message\":");
        o = put_str(b, o, p, r->error_len, -1);
        *o++ = '}';
    }
    *o++ = '}';
    b->len = (size_t)(o - b->p);
}
