/*
 * otlp_pb.c - OTLP/JSON span text to the OTLP protobuf wire format (otlp_pb.h has the field
 * table). A message inside another is written to a scratch buffer first, then appended with its
 * length: bodies are at most a batch of spans (MG__TRACE_BATCH_MAX), so the copies are small.
 * Read next: otlp_pb.h, export.c.
 */
#include "otlp_pb.h"
#include "../common/err.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WT_VARINT 0
#define WT_I64    1
#define WT_LEN    2

static void put_varint(mg_jbuf_t *b, uint64_t v)
{
    char tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (char)(v & 0x7f);
        v >>= 7;
        if (v != 0)
            tmp[n] |= (char)0x80;
        n++;
    } while (v != 0);
    mg_jbuf_put(b, tmp, n);
}

static void put_tag(mg_jbuf_t *b, unsigned field, unsigned wire)
{
    put_varint(b, ((uint64_t)field << 3) | wire);
}

static void put_bytes(mg_jbuf_t *b, unsigned field, const void *p, size_t n)
{
    put_tag(b, field, WT_LEN);
    put_varint(b, n);
    if (n > 0)
        mg_jbuf_put(b, p, n);
}

static void put_string(mg_jbuf_t *b, unsigned field, const char *s)
{
    put_bytes(b, field, s, strlen(s));
}

static void put_fixed64(mg_jbuf_t *b, unsigned field, uint64_t v)
{
    char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (char)(v >> (8 * i));
    put_tag(b, field, WT_I64);
    mg_jbuf_put(b, le, 8);
}

/* Lowercase or uppercase hex of exactly 2*n digits into out[n]; -1 otherwise. */
static int hex_decode(const char *hex, uint8_t *out, size_t n)
{
    if (hex == NULL || strlen(hex) != 2 * n)
        return -1;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (v < 0)
            return -1;
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] |= (uint8_t)v;
    }
    return 0;
}

/* A uint64 given as a decimal string (the JSON mapping of fixed64) or a JSON integer. */
static int u64_of(const json_t *v, uint64_t *out)
{
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (s == NULL || s[0] == '\0' || strlen(s) > 20)
        return -1;
    uint64_t r = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        uint64_t d = (uint64_t)(*p - '0');
        if (r > (UINT64_MAX - d) / 10)
            return -1;
        r = r * 10 + d;
    }
    *out = r;
    return 0;
}

/* An int64 given as a decimal string (the JSON mapping of int64; a uint64 pattern too) or a JSON
 * integer. */
static int i64_of(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (s == NULL)
        return -1;
    int neg = s[0] == '-';
    json_t *tmp = json_string(s + neg);
    uint64_t u;
    int rc = tmp != NULL ? u64_of(tmp, &u) : -1;
    json_decref(tmp);
    /* trace.c writes an int64 as its uint64 bit pattern in decimal: read past INT64_MAX as the
     * two's complement it is (the same varint on the wire) */
    if (rc != 0 || (neg && u > (uint64_t)INT64_MAX + 1))
        return -1;
    *out = neg ? (int64_t)(0 - u) : (int64_t)u;
    return 0;
}

/* The nested message in m appended to b as field `field`; m is emptied. */
static void put_message(mg_jbuf_t *b, unsigned field, mg_jbuf_t *m)
{
    put_bytes(b, field, m->p, m->len);
    m->len = 0;
}

/* KeyValue{key, AnyValue{string_value | int_value}}. Returns -1 when kv is not one. */
static int put_attribute(mg_jbuf_t *b, unsigned field, const json_t *kv, mg_jbuf_t *scratch)
{
    const char *key = json_string_value(json_object_get(kv, "key"));
    const json_t *val = json_object_get(kv, "value");
    const json_t *sv = json_object_get(val, "stringValue"), *iv = json_object_get(val, "intValue");
    if (key == NULL || (sv == NULL) == (iv == NULL))
        return -1;
    mg_jbuf_t any;
    mg_jbuf_init(&any, NULL, 0, scratch->max);
    if (sv != NULL) {
        if (!json_is_string(sv)) {
            mg_jbuf_dispose(&any);
            return -1;
        }
        put_bytes(&any, 1, json_string_value(sv), json_string_length(sv));
    } else {
        int64_t i;
        if (i64_of(iv, &i) != 0) {
            mg_jbuf_dispose(&any);
            return -1;
        }
        put_tag(&any, 3, WT_VARINT);
        put_varint(&any, (uint64_t)i);
    }
    put_string(scratch, 1, key);
    put_message(scratch, 2, &any);
    int err = any.err;
    mg_jbuf_dispose(&any);
    if (err != 0)
        scratch->err = err;
    put_message(b, field, scratch);
    return 0;
}

int mg_otlp_pb_span(const char *text, size_t len, mg_jbuf_t *out)
{
    json_t *s = json_loadb(text, len, 0, NULL);
    uint8_t tid[16], sid[8], pid[8];
    uint64_t start, end;
    const json_t *parent = json_object_get(s, "parentSpanId");
    const char *name = json_string_value(json_object_get(s, "name"));
    const json_t *attrs = json_object_get(s, "attributes");
    if (!json_is_object(s) || hex_decode(json_string_value(json_object_get(s, "traceId")), tid, 16) != 0 ||
        hex_decode(json_string_value(json_object_get(s, "spanId")), sid, 8) != 0 ||
        (parent != NULL && hex_decode(json_string_value(parent), pid, 8) != 0) || name == NULL ||
        u64_of(json_object_get(s, "startTimeUnixNano"), &start) != 0 ||
        u64_of(json_object_get(s, "endTimeUnixNano"), &end) != 0 ||
        (attrs != NULL && !json_is_array(attrs))) {
        json_decref(s);
        return MG_EINVAL;
    }
    size_t mark = out->len;
    mg_jbuf_t scratch;
    mg_jbuf_init(&scratch, NULL, 0, out->max);
    put_bytes(out, 1, tid, sizeof tid);
    put_bytes(out, 2, sid, sizeof sid);
    const char *state = json_string_value(json_object_get(s, "traceState"));
    if (state != NULL && state[0] != '\0')
        put_string(out, 3, state);
    if (parent != NULL)
        put_bytes(out, 4, pid, sizeof pid);
    put_string(out, 5, name);
    json_int_t kind = json_integer_value(json_object_get(s, "kind"));
    if (kind > 0) {
        put_tag(out, 6, WT_VARINT);
        put_varint(out, (uint64_t)kind);
    }
    put_fixed64(out, 7, start);
    put_fixed64(out, 8, end);
    int rc = 0;
    size_t i;
    const json_t *kv;
    json_array_foreach(attrs, i, kv)
    {
        if (put_attribute(out, 9, kv, &scratch) != 0)
            rc = MG_EINVAL;
    }
    const json_t *st = json_object_get(s, "status");
    if (rc == 0 && st != NULL) {
        const char *msg = json_string_value(json_object_get(st, "message"));
        if (msg != NULL && msg[0] != '\0')
            put_string(&scratch, 2, msg);
        json_int_t code = json_integer_value(json_object_get(st, "code"));
        if (code > 0) {
            put_tag(&scratch, 3, WT_VARINT);
            put_varint(&scratch, (uint64_t)code);
        }
        put_message(out, 15, &scratch);
    }
    if (rc == 0 && scratch.err != 0)
        rc = scratch.err;
    if (rc == 0 && out->err != 0)
        rc = out->err;
    mg_jbuf_dispose(&scratch);
    json_decref(s);
    if (rc != 0 && out->err == 0)
        out->len = mark; /* a span that cannot be read leaves nothing behind */
    return rc;
}

/* KeyValue{key, AnyValue{string_value}} as field `field` of b. */
static void put_str_attribute(mg_jbuf_t *b, unsigned field, const char *key, const char *value)
{
    mg_jbuf_t kv, any;
    mg_jbuf_init(&kv, NULL, 0, 4096);
    mg_jbuf_init(&any, NULL, 0, 4096);
    put_string(&any, 1, value);
    put_string(&kv, 1, key);
    put_message(&kv, 2, &any);
    put_message(b, field, &kv);
    if (kv.err != 0 || any.err != 0)
        b->err = kv.err ? kv.err : any.err;
    mg_jbuf_dispose(&kv);
    mg_jbuf_dispose(&any);
}

int mg_otlp_pb_request(const char *const *texts, const size_t *lens, size_t n, mg_jbuf_t *out,
                       size_t *skipped)
{
    *skipped = 0;
    mg_jbuf_t scope_spans, span, msg, resource_spans;
    mg_jbuf_init(&scope_spans, NULL, 0, out->max);
    mg_jbuf_init(&span, NULL, 0, out->max);
    mg_jbuf_init(&msg, NULL, 0, 4096);
    mg_jbuf_init(&resource_spans, NULL, 0, out->max);
    /* ScopeSpans: scope, then every span */
    put_string(&msg, 1, "mcpgate");
    put_string(&msg, 2, MG_VERSION);
    put_message(&scope_spans, 1, &msg);
    for (size_t i = 0; i < n; i++) {
        if (mg_otlp_pb_span(texts[i], lens[i], &span) != 0) {
            (*skipped)++;
            span.len = 0;
            span.err = 0;
            continue;
        }
        put_message(&scope_spans, 2, &span);
    }
    /* ResourceSpans: resource, then the one ScopeSpans */
    put_str_attribute(&msg, 1, "service.name", "mcpgate");
    put_str_attribute(&msg, 1, "service.version", MG_VERSION);
    put_message(&resource_spans, 1, &msg);
    put_message(&resource_spans, 2, &scope_spans);
    put_message(out, 1, &resource_spans);
    int err = scope_spans.err ? scope_spans.err : msg.err ? msg.err : resource_spans.err;
    if (err != 0 && out->err == 0)
        out->err = err;
    mg_jbuf_dispose(&scope_spans);
    mg_jbuf_dispose(&span);
    mg_jbuf_dispose(&msg);
    mg_jbuf_dispose(&resource_spans);
    return out->err;
}

/* ---- from span records (span_rec.h): what the exporter sends ----
 * Sizes first, then bytes: a nested message's length is known before it is written, so the body is
 * written once, straight into out, with no scratch buffers. The bytes are those that
 * mg_otlp_pb_request() makes from the same spans' OTLP/JSON text (test_otlp_pb compares them). */

static inline size_t vsize(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A length-delimited field of n bytes with a one-byte tag (every field number here is < 16). */
static inline size_t lsize(size_t n)
{
    return 1 + vsize(n) + n;
}

static inline uint8_t *w_varint(uint8_t *o, uint64_t v)
{
    while (v >= 0x80) {
        *o++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *o++ = (uint8_t)v;
    return o;
}

static inline uint8_t *w_len(uint8_t *o, unsigned field, size_t n)
{
    *o++ = (uint8_t)(field << 3 | WT_LEN);
    return w_varint(o, n);
}

static inline uint8_t *w_bytes(uint8_t *o, unsigned field, const void *p, size_t n)
{
    o = w_len(o, field, n);
    memcpy(o, p, n);
    return o + n;
}

static inline uint8_t *w_fixed64(uint8_t *o, unsigned field, uint64_t v)
{
    *o++ = (uint8_t)(field << 3 | WT_I64);
    for (int i = 0; i < 8; i++)
        *o++ = (uint8_t)(v >> (8 * i));
    return o;
}

/* AnyValue of a: string_value (1) or int_value (3). */
static inline size_t any_size(const mg__span_attr_t *a)
{
    return a->type == 'i' ? 1 + vsize((uint64_t)a->i) : lsize(a->slen);
}

/* KeyValue of a: key (1), value (2). */
static inline size_t kv_size(const mg__span_attr_t *a)
{
    return lsize(a->klen) + lsize(any_size(a));
}

static size_t status_size(const mg__span_rec_t *r)
{
    return (r->error_len > 0 ? lsize(r->error_len) : 0) + 2; /* message (2), code (3) = ERROR */
}

/* The Span message's size (without its own tag and length). */
static size_t span_size(const mg__span_rec_t *r)
{
    size_t n = lsize(16) + lsize(8) + (r->state_len > 0 ? lsize(r->state_len) : 0) +
               (r->has_parent ? lsize(8) : 0) + lsize(r->name_len) + (r->kind > 0 ? 1 + vsize(r->kind) : 0) +
               9 + 9;
    const char *p = mg__span_rec_attrs(r);
    for (uint32_t i = 0; i < r->nattrs; i++) {
        mg__span_attr_t a;
        p = mg__span_rec_attr_next(p, &a);
        n += lsize(kv_size(&a));
    }
    if (r->has_error)
        n += lsize(status_size(r));
    return n;
}

static uint8_t *span_write(uint8_t *o, const mg__span_rec_t *r)
{
    const char *d = mg__span_rec_data(r);
    o = w_bytes(o, 1, r->trace_id, 16);
    o = w_bytes(o, 2, r->span_id, 8);
    if (r->state_len > 0)
        o = w_bytes(o, 3, d + r->name_len, r->state_len);
    if (r->has_parent)
        o = w_bytes(o, 4, r->parent_id, 8);
    o = w_bytes(o, 5, d, r->name_len);
    if (r->kind > 0) {
        *o++ = 6 << 3 | WT_VARINT;
        o = w_varint(o, r->kind);
    }
    o = w_fixed64(o, 7, r->start_ns);
    o = w_fixed64(o, 8, r->end_ns);
    const char *p = mg__span_rec_attrs(r);
    for (uint32_t i = 0; i < r->nattrs; i++) {
        mg__span_attr_t a;
        p = mg__span_rec_attr_next(p, &a);
        o = w_len(o, 9, kv_size(&a));
        o = w_bytes(o, 1, a.key, a.klen);
        o = w_len(o, 2, any_size(&a));
        if (a.type == 'i') {
            *o++ = 3 << 3 | WT_VARINT;
            o = w_varint(o, (uint64_t)a.i);
        } else {
            o = w_bytes(o, 1, a.str, a.slen);
        }
    }
    if (r->has_error) {
        o = w_len(o, 15, status_size(r));
        if (r->error_len > 0)
            o = w_bytes(o, 2, p, r->error_len);
        *o++ = 3 << 3 | WT_VARINT;
        *o++ = 2; /* STATUS_CODE_ERROR */
    }
    return o;
}

/* KeyValue{key, AnyValue{string_value}} of a resource attribute. */
static size_t res_attr_size(const char *key, const char *value)
{
    return lsize(strlen(key)) + lsize(lsize(strlen(value)));
}

static uint8_t *res_attr_write(uint8_t *o, const char *key, const char *value)
{
    o = w_len(o, 1, res_attr_size(key, value));
    o = w_bytes(o, 1, key, strlen(key));
    o = w_len(o, 2, lsize(strlen(value)));
    return w_bytes(o, 1, value, strlen(value));
}

int mg_otlp_pb_request_recs(const mg__span_rec_t *const *recs, size_t n, mg_jbuf_t *out)
{
    size_t stack[512], *sizes = n <= 512 ? stack : malloc(n * sizeof *sizes);
    if (sizes == NULL) {
        out->err = MG_ENOMEM;
        return out->err;
    }
    static const char name[] = "mcpgate", version[] = MG_VERSION;
    size_t scope = lsize(sizeof name - 1) + lsize(sizeof version - 1);
    size_t ss = lsize(scope);
    for (size_t i = 0; i < n; i++) {
        sizes[i] = span_size(recs[i]);
        ss += lsize(sizes[i]);
    }
    size_t resource =
        lsize(res_attr_size("service.name", name)) + lsize(res_attr_size("service.version", version));
    size_t rs = lsize(resource) + lsize(ss);
    size_t total = lsize(rs);
    if (mg_jbuf_reserve(out, total) == 0) {
        uint8_t *o = (uint8_t *)out->p + out->len, *start = o;
        o = w_len(o, 1, rs); /* ExportTraceServiceRequest.resource_spans */
        o = w_len(o, 1, resource);
        o = res_attr_write(o, "service.name", name);
        o = res_attr_write(o, "service.version", version);
        o = w_len(o, 2, ss); /* ResourceSpans.scope_spans */
        o = w_len(o, 1, scope);
        o = w_bytes(o, 1, name, sizeof name - 1);
        o = w_bytes(o, 2, version, sizeof version - 1);
        for (size_t i = 0; i < n; i++) {
            o = w_len(o, 2, sizes[i]);
            o = span_write(o, recs[i]);
        }
        out->len += (size_t)(o - start);
    }
    if (sizes != stack)
        free(sizes);
    return out->err;
}
