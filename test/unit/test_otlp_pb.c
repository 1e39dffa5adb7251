/*
 * test_otlp_pb.c - src/trace/otlp_pb.c: the OTLP protobuf encoding of spans, read back with a
 * minimal decoder written here against the field numbers of opentelemetry-proto
 * (collector/trace/v1/trace_service.proto, trace/v1/trace.proto, common/v1/common.proto): ids as
 * bytes, times as fixed64, kinds and status codes as varints, int attributes as two's-complement
 * varints, nested messages length-delimited; a span that cannot be read is left out and counted.
 * Read next: test/e2e/tracing-protobuf.test.mjs (the same body read by the e2e receiver).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "trace/otlp_pb.h"
#include "trace/trace_int.h"
#include "trace_spans.h"

/* ---- a minimal protobuf reader: one field at a time ---- */

typedef struct field {
    unsigned num, wire;
    uint64_t v;       /* varint or fixed64 */
    const uint8_t *p; /* length-delimited payload */
    size_t len;
} field_t;

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t r = 0;
    for (int shift = 0; *p < end && shift < 70; shift += 7) {
        uint8_t b = *(*p)++;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = r;
            return 0;
        }
    }
    return -1;
}

/* Next field of [*p, end): 1, 0 at the end, -1 when malformed. */
static int next_field(const uint8_t **p, const uint8_t *end, field_t *f)
{
    if (*p >= end)
        return 0;
    uint64_t tag;
    if (read_varint(p, end, &tag) != 0)
        return -1;
    f->num = (unsigned)(tag >> 3);
    f->wire = (unsigned)(tag & 7);
    if (f->wire == 0)
        return read_varint(p, end, &f->v) == 0 ? 1 : -1;
    if (f->wire == 1) {
        if (end - *p < 8)
            return -1;
        f->v = 0;
        for (int i = 0; i < 8; i++)
            f->v |= (uint64_t)(*p)[i] << (8 * i);
        *p += 8;
        return 1;
    }
    if (f->wire == 2) {
        uint64_t n;
        if (read_varint(p, end, &n) != 0 || n > (uint64_t)(end - *p))
            return -1;
        f->p = *p;
        f->len = (size_t)n;
        *p += n;
        return 1;
    }
    return -1;
}

/* The first field numbered num in [p, p+len) into *f; 0 when absent. */
static int find(const uint8_t *p, size_t len, unsigned num, field_t *f)
{
    const uint8_t *q = p, *end = p + len;
    int r;
    while ((r = next_field(&q, end, f)) == 1)
        if (f->num == num)
            return 1;
    assert_int_equal(r, 0); /* well-formed to the end */
    return 0;
}

static size_t count(const uint8_t *p, size_t len, unsigned num)
{
    const uint8_t *q = p, *end = p + len;
    field_t f;
    size_t n = 0;
    while (next_field(&q, end, &f) == 1)
        n += f.num == num;
    return n;
}

static int str_is(const field_t *f, const char *s)
{
    return f->wire == 2 && f->len == strlen(s) && memcmp(f->p, s, f->len) == 0;
}

/* ---- tests ---- */

static const char SPAN[] =
    "{\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":\"00f067aa0ba902b7\","
    "\"parentSpanId\":\"a3ce929d0e0e4736\",\"traceState\":\"rojo=1\",\"name\":\"tools/call echo\","
    "\"kind\":2,\"startTimeUnixNano\":\"1733500000123456789\",\"attributes\":["
    "{\"key\":\"mcp.method.name\",\"value\":{\"stringValue\":\"tools/call\"}},"
    "{\"key\":\"n\",\"value\":{\"intValue\":\"-5\"}},{\"key\":\"big\",\"value\":{\"intValue\":300}}],"
    "\"endTimeUnixNano\":\"1733500000223456789\",\"status\":{\"code\":2,\"message\":\"boom\"}}";

static void test_span_fields(void **state)
{
    (void)state;
    mg_jbuf_t b;
    mg_jbuf_init(&b, NULL, 0, 1 << 20);
    assert_int_equal(mg_otlp_pb_span(SPAN, strlen(SPAN), &b), 0);
    const uint8_t *p = (const uint8_t *)b.p;
    /* Span.trace_id is field 1, length-delimited: tag 0x0a, then 16 bytes */
    assert_int_equal(p[0], 0x0a);
    assert_int_equal(p[1], 16);
    assert_int_equal(p[2], 0x4b);
    assert_int_equal(p[17], 0x36);
    field_t f;
    assert_true(find(p, b.len, 2, &f) && f.wire == 2 && f.len == 8 && f.p[0] == 0x00 && f.p[7] == 0xb7);
    assert_true(find(p, b.len, 3, &f) && str_is(&f, "rojo=1"));
    assert_true(find(p, b.len, 4, &f) && f.len == 8 && f.p[0] == 0xa3);
    assert_true(find(p, b.len, 5, &f) && str_is(&f, "tools/call echo"));
    assert_true(find(p, b.len, 6, &f) && f.wire == 0 && f.v == 2); /* SPAN_KIND_SERVER */
    assert_true(find(p, b.len, 7, &f) && f.wire == 1 && f.v == 1733500000123456789ull);
    assert_true(find(p, b.len, 8, &f) && f.wire == 1 && f.v == 1733500000223456789ull);
    assert_int_equal(count(p, b.len, 9), 3);
    /* attributes in order: KeyValue{1 key, 2 AnyValue{1 string | 3 int}} */
    const uint8_t *q = p, *end = p + b.len;
    int seen = 0;
    while (next_field(&q, end, &f) == 1) {
        if (f.num != 9)
            continue;
        field_t k, v, x;
        assert_true(find(f.p, f.len, 1, &k));
        assert_true(find(f.p, f.len, 2, &v));
        if (seen == 0) {
            assert_true(str_is(&k, "mcp.method.name"));
            assert_true(find(v.p, v.len, 1, &x) && str_is(&x, "tools/call"));
        } else if (seen == 1) {
            assert_true(str_is(&k, "n"));
            assert_true(find(v.p, v.len, 3, &x) && x.wire == 0);
            assert_int_equal((int64_t)x.v, -5); /* int64: two's complement, 10 bytes */
            assert_int_equal(v.len, 11);
        } else {
            assert_true(str_is(&k, "big"));
            assert_true(find(v.p, v.len, 3, &x) && x.v == 300);
        }
        seen++;
    }
    field_t st, m, c;
    assert_true(find(p, b.len, 15, &st));
    assert_true(find(st.p, st.len, 2, &m) && str_is(&m, "boom"));
    assert_true(find(st.p, st.len, 3, &c) && c.wire == 0 && c.v == 2); /* STATUS_CODE_ERROR */
    mg_jbuf_dispose(&b);
}

static void test_root_span_and_bad_text(void **state)
{
    (void)state;
    mg_jbuf_t b;
    mg_jbuf_init(&b, NULL, 0, 1 << 20);
    static const char root[] =
        "{\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":\"00f067aa0ba902b7\","
        "\"name\":\"r\",\"kind\":1,\"startTimeUnixNano\":\"1\",\"attributes\":[],"
        "\"endTimeUnixNano\":\"2\"}";
    assert_int_equal(mg_otlp_pb_span(root, strlen(root), &b), 0);
    field_t f;
    assert_false(find((const uint8_t *)b.p, b.len, 4, &f));  /* no parent */
    assert_false(find((const uint8_t *)b.p, b.len, 3, &f));  /* no trace state */
    assert_false(find((const uint8_t *)b.p, b.len, 15, &f)); /* status unset */
    size_t before = b.len;
    static const char *bad[] = {
        "{", "[]", "{\"traceId\":\"zz\",\"spanId\":\"00f067aa0ba902b7\",\"name\":\"x\"}",
        "{\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":\"00f067aa0ba902b7\","
        "\"name\":\"x\",\"startTimeUnixNano\":\"1\",\"endTimeUnixNano\":\"2\","
        "\"attributes\":[{\"key\":\"k\",\"value\":{\"boolValue\":true}}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(mg_otlp_pb_span(bad[i], strlen(bad[i]), &b), MG_EINVAL);
        assert_int_equal(b.len, before); /* nothing left behind */
    }
    mg_jbuf_dispose(&b);
}

/* A record's OTLP/JSON text (span_rec.h): NEW malloc'd. */
static char *record_json(const mg__span_rec_t *r, size_t *len)
{
    mg_jbuf_t b;
    mg_jbuf_init(&b, NULL, 0, 1 << 24);
    mg__span_rec_json(r, &b);
    assert_int_equal(b.err, 0);
    char *text = mg_jbuf_steal(&b, len);
    assert_non_null(text);
    return text;
}

/* The first n queued records, encoded straight to protobuf and through their OTLP/JSON text by
 * the reference reader (the encoder before records): the same bytes. */
static void assert_same_as_reference(const mg_trace_t *t, size_t n)
{
    const mg__span_rec_t **recs = calloc(n, sizeof *recs);
    const char **texts = calloc(n, sizeof *texts);
    size_t *lens = calloc(n, sizeof *lens);
    assert_true(recs != NULL && texts != NULL && lens != NULL);
    for (size_t i = 0; i < n; i++) {
        recs[i] = t->ring[(t->head + i) % MG__TRACE_QUEUE_MAX].rec;
        texts[i] = record_json(recs[i], &lens[i]);
    }
    mg_jbuf_t want, got;
    mg_jbuf_init(&want, NULL, 0, 1 << 26);
    mg_jbuf_init(&got, NULL, 0, 1 << 26);
    size_t skipped = 9;
    assert_int_equal(mg_otlp_pb_request(texts, lens, n, &want, &skipped), 0);
    assert_int_equal(skipped, 0);
    assert_int_equal(mg_otlp_pb_request_recs(recs, n, &got), 0);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.p, want.p, want.len);
    for (size_t i = 0; i < n; i++)
        free((char *)texts[i]);
    free(recs);
    free(texts);
    free(lens);
    mg_jbuf_dispose(&want);
    mg_jbuf_dispose(&got);
}

static void test_records_equal_reference(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_trace_t *t;
    assert_int_equal(mg_trace_new(&loop, "http://127.0.0.1:9/v1/traces", 1.0, &t), 0);
    trace_spans_make(t);
    assert_int_equal(t->count, TRACE_SPANS_QUEUED);
    for (size_t n = 1; n <= TRACE_SPANS_QUEUED; n++)
        assert_same_as_reference(t, n);
    /* the export path: mg__trace_encode with protobuf on gives the same body */
    mg_jbuf_t a, b;
    mg_jbuf_init(&a, NULL, 0, 1 << 24);
    mg_jbuf_init(&b, NULL, 0, 1 << 24);
    t->protobuf = 1;
    assert_int_equal(mg__trace_encode(t, t->count, &a), 0);
    const mg__span_rec_t *recs[TRACE_SPANS_QUEUED];
    for (size_t i = 0; i < TRACE_SPANS_QUEUED; i++)
        recs[i] = t->ring[(t->head + i) % MG__TRACE_QUEUE_MAX].rec;
    assert_int_equal(mg_otlp_pb_request_recs(recs, TRACE_SPANS_QUEUED, &b), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);
    mg_jbuf_dispose(&a);
    mg_jbuf_dispose(&b);
    /* a batch longer than the encoder's stack of sizes (512), lengths of several varint bytes */
    static char v[300];
    memset(v, 'a', sizeof v - 1);
    for (int i = 0; i < 700; i++) {
        mg_span_t *s = mg_span_start(t, i % 2 ? "odd" : "even", MG_SPAN_CLIENT, NULL, NULL);
        mg_span_set_str(s, "v", v);
        mg_span_set_int(s, "i", (long long)i * -1000003);
        mg_span_end(s);
    }
    assert_same_as_reference(t, t->count);
    mg_trace_free(t);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A deterministic generator for the randomized spans below. */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* A random UTF-8 string into out (cap >= 4 * n + 1): plain ASCII, quotes and backslashes, control
 * characters, DEL, 2- to 4-byte sequences, by chance. */
static void rnd_text(char *out, size_t n)
{
    static const char *const pieces[] = {"a",
                                         "Z",
                                         "7",
                                         " ",
                                         "/",
                                         "\"",
                                         "\\",
                                         "\n",
                                         "\t",
                                         "\x01",
                                         "\x1f",
                                         "\x7f",
                                         "\xc3\xa9",
                                         "\xe6\x97\xa5",
                                         "\xf0\x9f\x98\x80",
                                         "{",
                                         "}"};
    size_t plain_only = rnd() % 3 == 0, o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = pieces[plain_only ? rnd() % 5 : rnd() % (sizeof pieces / sizeof pieces[0])];
        size_t l = strlen(p);
        memcpy(out + o, p, l);
        o += l;
    }
    out[o] = '\0';
}

/* Randomized spans (names, tracestate, attributes of every class, ints of every width, status with
 * and without text): the records encoded straight to protobuf give the bytes the reference reader
 * gives from their JSON, and the JSON reads back (jansson) as what was set. */
static void test_records_random(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_trace_t *t;
    assert_int_equal(mg_trace_new(&loop, "http://127.0.0.1:9/v1/traces", 1.0, &t), 0);
    static const char tp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    mg_trace_ctx_t ctx;
    assert_int_equal(mg_trace_ctx_parse(tp, sizeof tp - 1, "k=v\"1", 5, &ctx), 0);
    enum { SPANS = 400, ATTRS = 12 };
    static char names[SPANS][4 * 24 + 1], vals[SPANS][ATTRS][4 * 40 + 1], errs[SPANS][4 * 16 + 1];
    static long long ints[SPANS][ATTRS];
    static int kinds[SPANS][ATTRS], nattrs[SPANS], has_err[SPANS];
    for (int i = 0; i < SPANS; i++) {
        rnd_text(names[i], rnd() % 24);
        mg_span_t *s =
            mg_span_start(t, names[i], (mg_span_kind_t)(1 + rnd() % 3), NULL, rnd() % 2 ? &ctx : NULL);
        assert_non_null(s);
        nattrs[i] = (int)(rnd() % ATTRS);
        for (int a = 0; a < nattrs[i]; a++) {
            char key[16];
            snprintf(key, sizeof key, "k.%d", a);
            if ((kinds[i][a] = (int)(rnd() % 2)) == 0) {
                rnd_text(vals[i][a], rnd() % 40);
                mg_span_set_str(s, key, vals[i][a]);
            } else {
                int shift = (int)(rnd() % 64);
                ints[i][a] = (long long)(rnd() >> shift) * (rnd() % 2 ? 1 : -1);
                mg_span_set_int(s, key, ints[i][a]);
            }
        }
        if ((has_err[i] = (int)(rnd() % 3 == 0)) != 0) {
            rnd_text(errs[i], rnd() % 16);
            mg_span_set_error(s, errs[i]);
        }
        mg_span_end(s);
    }
    assert_int_equal(t->count, SPANS);
    assert_int_equal(t->spans_dropped, 0);
    for (size_t i = 0; i < SPANS; i++) {
        size_t len;
        char *text = record_json(t->ring[(t->head + i) % MG__TRACE_QUEUE_MAX].rec, &len);
        json_t *j = json_loadb(text, len, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "name")), names[i]);
        json_t *attrs = json_object_get(j, "attributes");
        assert_int_equal(json_array_size(attrs), nattrs[i]);
        for (int a = 0; a < nattrs[i]; a++) {
            json_t *v = json_object_get(json_array_get(attrs, a), "value");
            if (kinds[i][a] == 0) {
                assert_string_equal(json_string_value(json_object_get(v, "stringValue")), vals[i][a]);
            } else {
                char want[24];
                snprintf(want, sizeof want, "%lld", ints[i][a]);
                assert_string_equal(json_string_value(json_object_get(v, "intValue")), want);
            }
        }
        json_t *st = json_object_get(j, "status");
        if (has_err[i])
            assert_string_equal(json_string_value(json_object_get(st, "message")), errs[i]);
        else
            assert_null(st);
        json_decref(j);
        free(text);
    }
    for (size_t n = 1; n <= 64; n *= 4)
        assert_same_as_reference(t, n);
    assert_same_as_reference(t, SPANS);
    mg_trace_free(t);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_request_from_tracer(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_trace_t *t;
    assert_int_equal(mg_trace_new(&loop, "http://127.0.0.1:9/v1/traces", 1.0, &t), 0);
    mg_span_t *root = mg_span_start(t, "POST /mcp", MG_SPAN_SERVER, NULL, NULL);
    mg_span_t *child = mg_span_start(t, "tools/call", MG_SPAN_INTERNAL, root, NULL);
    mg_span_set_int(child, "rpc.jsonrpc.error_code", -32602);
    mg_span_set_error(child, "invalid params");
    mg_span_end(child);
    mg_span_end(root);
    assert_int_equal(t->count, 2);
    const char *texts[3];
    size_t lens[3];
    char *own[2];
    for (size_t i = 0; i < 2; i++)
        texts[i] = own[i] = record_json(t->ring[(t->head + i) % MG__TRACE_QUEUE_MAX].rec, &lens[i]);
    texts[2] = "not json";
    lens[2] = 8;
    mg_jbuf_t b;
    mg_jbuf_init(&b, NULL, 0, 1 << 20);
    size_t skipped = 9;
    assert_int_equal(mg_otlp_pb_request(texts, lens, 3, &b, &skipped), 0);
    assert_int_equal(skipped, 1);
    const uint8_t *p = (const uint8_t *)b.p;
    field_t rs, res, ss, scope, name, kv, key, span, parent, sid;
    assert_int_equal(count(p, b.len, 1), 1);
    assert_true(find(p, b.len, 1, &rs));       /* ExportTraceServiceRequest.resource_spans */
    assert_true(find(rs.p, rs.len, 1, &res));  /* ResourceSpans.resource */
    assert_true(find(res.p, res.len, 1, &kv)); /* Resource.attributes */
    assert_true(find(kv.p, kv.len, 1, &key) && str_is(&key, "service.name"));
    assert_true(find(rs.p, rs.len, 2, &ss));    /* ResourceSpans.scope_spans */
    assert_true(find(ss.p, ss.len, 1, &scope)); /* ScopeSpans.scope */
    assert_true(find(scope.p, scope.len, 1, &name) && str_is(&name, "mcpgate"));
    assert_int_equal(count(ss.p, ss.len, 2), 2);     /* ScopeSpans.spans: the bad one left out */
    assert_true(find(ss.p, ss.len, 2, &span));       /* the child ended first */
    assert_true(find(span.p, span.len, 4, &parent)); /* its parent is the root's span id */
    field_t a, av, iv;
    assert_true(find(span.p, span.len, 9, &a) && find(a.p, a.len, 2, &av) && find(av.p, av.len, 3, &iv));
    assert_int_equal((int64_t)iv.v, -32602); /* a negative int attribute stays negative */
    const uint8_t *q = ss.p, *end = ss.p + ss.len;
    field_t f;
    int n = 0;
    while (next_field(&q, end, &f) == 1)
        if (f.num == 2 && n++ == 1)
            assert_true(find(f.p, f.len, 2, &sid) && sid.len == 8 && memcmp(sid.p, parent.p, 8) == 0);
    assert_int_equal(n, 2);
    mg_jbuf_dispose(&b);
    free(own[0]);
    free(own[1]);
    mg_trace_free(t);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_span_fields), cmocka_unit_test(test_root_span_and_bad_text),
        cmocka_unit_test(test_request_from_tracer), cmocka_unit_test(test_records_equal_reference),
        cmocka_unit_test(test_records_random)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
