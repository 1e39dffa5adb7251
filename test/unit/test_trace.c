/*
 * test_trace.c - src/trace/: W3C traceparent parsing (what is refused), the sampler (ratio and
 * parent flags), span ids and parentage in the OTLP JSON a span becomes, the traceparent given to
 * upstreams, and the bounded export queue (full = dropped and counted, never blocking). Ends with a
 * clean loop close. Read next: test/e2e/tracing.test.mjs (the same through a real collector).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace/trace_int.h"
#include "trace_spans.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static int parse(const char *tp)
{
    mg_trace_ctx_t c;
    return mg_trace_ctx_parse(tp, strlen(tp), NULL, 0, &c);
}

static void test_parse(void **state)
{
    mg_trace_ctx_t c;
    assert_int_equal(mg_trace_ctx_parse(TP, strlen(TP), "rojo=00f067aa0ba902b7", 21, &c), 0);
    assert_int_equal(c.trace_id[0], 0x4b);
    assert_int_equal(c.span_id[7], 0xb7);
    assert_int_equal(c.flags, 1);
    assert_string_equal(c.state, "rojo=00f067aa0ba902b7");
    /* refused: uppercase, zero ids, lengths, version ff, 00 with extra fields, junk separators */
    assert_int_not_equal(parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), 0);
    assert_int_not_equal(parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), 0);
    assert_int_not_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"), 0);
    assert_int_not_equal(parse("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"), 0);
    assert_int_not_equal(parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), 0);
    assert_int_not_equal(parse(TP "-extra"), 0);
    assert_int_not_equal(parse("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), 0);
    assert_int_not_equal(parse(""), 0);
    /* a later version may carry more fields */
    assert_int_equal(parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"), 0);
    /* a tracestate with a control character is dropped, the context kept */
    assert_int_equal(mg_trace_ctx_parse(TP, strlen(TP), "a=1\n", 4, &c), 0);
    assert_string_equal(c.state, "");
}

/* The OTLP/JSON text of the k-th queued span's record: NEW malloc'd. */
static char *queued_json(const mg_trace_t *t, size_t k)
{
    mg_jbuf_t b;
    mg_jbuf_init(&b, NULL, 0, 1 << 24);
    mg__span_rec_json(t->ring[(t->head + k) % MG__TRACE_QUEUE_MAX].rec, &b);
    assert_int_equal(b.err, 0);
    size_t len;
    char *text = mg_jbuf_steal(&b, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

static json_t *queued(const mg_trace_t *t, size_t k)
{
    char *text = queued_json(t, k);
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    return j;
}

static const char *attr(json_t *span, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(span, "attributes"), i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "key")), key) == 0)
            return json_string_value(json_object_get(json_object_get(a, "value"), "stringValue"));
    }
    return NULL;
}

static void test_spans(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_trace_t *t;
    assert_int_equal(mg_trace_new(&loop, "http://127.0.0.1:9/v1/traces", 0.0, &t), 0);
    /* ratio 0: no new trace; a sampled remote parent is followed, an unsampled one is not */
    assert_null(mg_span_start(t, "x", MG_SPAN_SERVER, NULL, NULL));
    mg_trace_ctx_t c;
    assert_int_equal(mg_trace_ctx_parse(TP, strlen(TP), "v=1", 3, &c), 0);
    c.flags = 0;
    assert_null(mg_span_start(t, "x", MG_SPAN_SERVER, NULL, &c));
    c.flags = 1;
    mg_span_t *root = mg_span_start(t, "tools/call echo", MG_SPAN_SERVER, NULL, &c);
    assert_non_null(root);
    mg_span_t *child = mg_span_start(t, "up", MG_SPAN_CLIENT, root, NULL);
    assert_non_null(child);
    char tp[MG_TRACEPARENT_LEN + 1];
    assert_int_equal(mg_span_traceparent(child, tp, sizeof tp), 1);
    assert_int_equal(strncmp(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36), 0);
    assert_string_equal(tp + 52, "-01");
    assert_string_equal(mg_span_tracestate(child), "v=1");
    mg_span_set_str(child, "mcp.method.name", "tools/call");
    mg_span_set_int(child, "n", 7);
    mg_span_set_error(child, "-32602");
    char child_id[17];
    memcpy(child_id, tp + 36, 16);
    child_id[16] = '\0';
    mg_span_end(child);
    mg_span_end(root);
    /* NULL spans are accepted everywhere */
    mg_span_set_str(NULL, "k", "v");
    mg_span_end(NULL);
    assert_int_equal(mg_span_traceparent(NULL, tp, sizeof tp), 0);
    /* the queue holds the child first, then the root, each the record of its OTLP JSON object */
    assert_int_equal(t->count, 2);
    json_t *cj = queued(t, 0);
    json_t *rj = queued(t, 1);
    assert_non_null(cj);
    assert_non_null(rj);
    assert_string_equal(json_string_value(json_object_get(cj, "spanId")), child_id);
    assert_string_equal(json_string_value(json_object_get(cj, "parentSpanId")),
                        json_string_value(json_object_get(rj, "spanId")));
    assert_string_equal(json_string_value(json_object_get(rj, "parentSpanId")), "00f067aa0ba902b7");
    assert_string_equal(json_string_value(json_object_get(rj, "traceId")),
                        "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_int_equal(json_integer_value(json_object_get(cj, "kind")), MG_SPAN_CLIENT);
    assert_string_equal(attr(cj, "mcp.method.name"), "tools/call");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(cj, "status"), "code")), 2);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(cj, "attributes"), 1), "value"), "intValue")),
        "7");
    assert_non_null(json_object_get(cj, "endTimeUnixNano"));
    assert_null(json_object_get(rj, "status"));
    json_decref(cj);
    json_decref(rj);
    mg_trace_free(t);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_queue_bound(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_trace_t *t;
    assert_int_equal(mg_trace_new(&loop, "http://127.0.0.1:9/v1/traces", 1.0, &t), 0);
    /* No loop turn: nothing is exported, the queue fills and then drops. */
    for (int i = 0; i < MG__TRACE_QUEUE_MAX + 100; i++) {
        mg_span_t *s = mg_span_start(t, "s", MG_SPAN_INTERNAL, NULL, NULL);
        assert_non_null(s); /* ratio 1: every new trace */
        mg_span_end(s);
    }
    assert_int_equal(t->count, MG__TRACE_QUEUE_MAX);
    assert_int_equal(t->spans_dropped, 100);
    mg_trace_free(t);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A root span (no parent, no tracestate) through every path of its writer: integers of every
 * width, a value to escape, one not UTF-8, one beyond the inline storage, reuse of ended spans. */
static void test_span_text(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_trace_t *t;
    assert_int_equal(mg_trace_new(&loop, "http://127.0.0.1:9/v1/traces", 1.0, &t), 0);
    static const long long ints[] = {
        0, 9, 10, 99, 100, 12345, -1, -5, 9223372036854775807LL, -9223372036854775807LL - 1,
        /* around the eight-digit steps of the writer */
        9999999, 99999999, 100000000, 100000001, -100000000, 1234567890123456LL, 9999999999999999LL,
        10000000000000000LL, 1765000000123456789LL, 1000000000000000000LL};
    static char big[6000];
    memset(big, 'x', sizeof big - 1);
    for (int round = 0; round < 3; round++) { /* rounds 2 and 3 reuse ended spans */
        mg_span_t *s = mg_span_start(t, round ? "again" : "root \"quoted\"", MG_SPAN_INTERNAL, NULL, NULL);
        assert_non_null(s);
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
            mg_span_set_int(s, "n", ints[i]);
        mg_span_set_str(s, "esc", "a\"b\\c\n\xc3\xa9");
        mg_span_set_str(s, "big", big);
        mg_span_set_error(s, "boom");
        mg_span_end(s);
    }
    /* Start times of every width, around every power of ten: the text is the number's digits. */
    uint64_t starts[64];
    size_t nstarts = 0;
    for (uint64_t p = 10;; p *= 10) {
        starts[nstarts++] = p - 1;
        starts[nstarts++] = p;
        starts[nstarts++] = p + 1;
        if (p > UINT64_MAX / 10)
            break;
    }
    starts[nstarts++] = 1;
    starts[nstarts++] = 4294967296u;
    starts[nstarts++] = UINT64_MAX;
    for (size_t i = 0; i < nstarts; i++) {
        mg_span_t *s = mg_span_start_at(t, "at", MG_SPAN_INTERNAL, NULL, NULL, starts[i]);
        mg_span_end(s);
        json_t *j = queued(t, t->count - 1);
        char want[24];
        snprintf(want, sizeof want, "%llu", (unsigned long long)starts[i]);
        assert_string_equal(json_string_value(json_object_get(j, "startTimeUnixNano")), want);
        json_decref(j);
    }
    mg_span_t *bad = mg_span_start(t, "bad", MG_SPAN_INTERNAL, NULL, NULL);
    mg_span_set_str(bad, "v", "\xff");
    mg_span_end(bad); /* not UTF-8: dropped and counted */
    assert_int_equal(t->spans_dropped, 1);
    assert_int_equal(t->count, 3 + nstarts);
    for (size_t k = 0; k < 3; k++) {
        json_t *j = queued(t, k);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "name")), k ? "again" : "root \"quoted\"");
        assert_null(json_object_get(j, "parentSpanId"));
        assert_int_equal(strlen(json_string_value(json_object_get(j, "traceId"))), 32);
        assert_int_equal(strlen(json_string_value(json_object_get(j, "spanId"))), 16);
        json_t *attrs = json_object_get(j, "attributes");
        char want[24];
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
            snprintf(want, sizeof want, "%lld", ints[i]); /* signed, as OTLP/JSON's int64 */
            const char *got = json_string_value(
                json_object_get(json_object_get(json_array_get(attrs, i), "value"), "intValue"));
            assert_string_equal(got, want);
        }
        assert_string_equal(attr(j, "esc"), "a\"b\\c\n\xc3\xa9");
        assert_string_equal(attr(j, "big"), big);
        assert_string_equal(json_string_value(json_object_get(json_object_get(j, "status"), "message")),
                            "boom");
        const char *start = json_string_value(json_object_get(j, "startTimeUnixNano"));
        const char *end = json_string_value(json_object_get(j, "endTimeUnixNano"));
        assert_true(strlen(start) == 19 && strlen(end) == 19 && strcmp(start, end) <= 0);
        json_decref(j);
    }
    mg_trace_free(t);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The data of queued record k (after its header): name, tracestate, attributes, status text. */
static void queued_data(const mg_trace_t *t, size_t k, const char **data, size_t *len, uint32_t *nattrs)
{
    const mg__span_rec_t *r = t->ring[(t->head + k) % MG__TRACE_QUEUE_MAX].rec;
    const char *end = mg__span_rec_attrs(r);
    for (uint32_t i = 0; i < r->nattrs; i++) {
        mg__span_attr_t a;
        end = mg__span_rec_attr_next(end, &a);
    }
    *data = mg__span_rec_data(r);
    *len = (size_t)(end - *data);
    *nattrs = r->nattrs;
}

/* A set of attributes (mg_span_attrs_new, mg_span_add_attrs) gives a span the very record bytes that
 * setting its pairs one by one gives: plain, escaped and empty values, a pair left out, sets mixed
 * with single attributes. A set with a value that is not UTF-8, or none (memory ran out), drops the
 * span as a single such value does. */
static void test_span_attrs_set(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_trace_t *t;
    assert_int_equal(mg_trace_new(&loop, "http://127.0.0.1:9/v1/traces", 1.0, &t), 0);
    const char *kv[] = {
        "mcpgate.server", "files", "network.transport", "pipe", "left.out", NULL, "esc", "a\"b\n\xc3\xa9",
        "empty",          ""};
    size_t n = sizeof kv / sizeof kv[0] / 2;
    mg_span_attrs_t *set = mg_span_attrs_new(kv, n);
    assert_non_null(set);
    for (int way = 0; way < 2; way++) { /* 0: one by one; 1: the set */
        mg_span_t *s = mg_span_start(t, "tools/call x", MG_SPAN_CLIENT, NULL, NULL);
        mg_span_set_str(s, "mcp.method.name", "tools/call");
        for (int twice = 0; twice < 2; twice++) { /* a set is not used up */
            if (way == 0)
                for (size_t i = 0; i < n; i++)
                    mg_span_set_str(s, kv[2 * i], kv[2 * i + 1]);
            else
                mg_span_add_attrs(s, set);
            mg_span_set_int(s, "n", 7);
        }
        mg_span_end(s);
    }
    assert_int_equal(t->count, 2);
    const char *d0, *d1;
    size_t l0, l1;
    uint32_t n0, n1;
    queued_data(t, 0, &d0, &l0, &n0);
    queued_data(t, 1, &d1, &l1, &n1);
    assert_int_equal(n0, 1 + 2 * (n - 1 + 1)); /* the method, then twice the 4 pairs kept and n */
    assert_int_equal(n1, n0);
    assert_int_equal(l1, l0);
    assert_memory_equal(d1, d0, l0);
    json_t *j = queued(t, 1);
    assert_string_equal(attr(j, "esc"), "a\"b\n\xc3\xa9");
    assert_string_equal(attr(j, "empty"), "");
    assert_null(attr(j, "left.out"));
    json_decref(j);
    /* A set with a value that is not UTF-8, and no set at all: the span is dropped and counted. */
    const char *badkv[] = {"ok", "fine", "v", "\xff"};
    mg_span_attrs_t *bad = mg_span_attrs_new(badkv, 2);
    assert_non_null(bad);
    mg_span_t *s = mg_span_start(t, "bad set", MG_SPAN_INTERNAL, NULL, NULL);
    mg_span_add_attrs(s, bad);
    mg_span_end(s);
    s = mg_span_start(t, "no set", MG_SPAN_INTERNAL, NULL, NULL);
    mg_span_add_attrs(s, NULL);
    mg_span_end(s);
    assert_int_equal(t->count, 2);
    assert_int_equal(t->spans_dropped, 2);
    mg_span_add_attrs(NULL, set); /* tracing off: nothing */
    mg_span_attrs_free(bad);
    mg_span_attrs_free(set);
    mg_trace_free(t);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* An http:// endpoint named by host: the first export waits for the name's lookup, then goes to the
 * pinned address; a failed export there moves to the answer's next address, or asks for a new
 * lookup when none is left. A tracer freed while a lookup is under way leaves the answer to be thrown
 * away (ASan: no use after free, no leak). Port 9 of this host: nothing listens. */
static void test_named_endpoint(void **state)
{
    (void)state;
    for (int freed_early = 0; freed_early < 2; freed_early++) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        mg_trace_t *t;
        assert_int_equal(mg_trace_new(&loop, "http://localhost:9/v1/traces", 1.0, &t), 0);
        mg_span_end(mg_span_start(t, "s", MG_SPAN_INTERNAL, NULL, NULL));
        mg_trace_flush(t); /* the first export: a lookup starts, nothing is sent yet */
        assert_non_null(t->lookup);
        assert_int_equal(t->count, 1);
        if (freed_early) {
            mg_trace_free(t);
            uv_run(&loop, UV_RUN_DEFAULT); /* the answer arrives (or is cancelled) for nobody */
            assert_int_equal(uv_loop_close(&loop), 0);
            continue;
        }
        uv_run(&loop, UV_RUN_DEFAULT); /* the answer, the export to the pin, its refusal */
        assert_null(t->lookup);
        assert_non_null(t->pin);
        assert_true(strncmp(t->pin, "localhost:9:", 12) == 0);
        assert_true(t->naddrs >= 1);
        assert_int_equal(t->count, 0);
        assert_int_equal(t->exports_failed, 1);
        assert_int_equal(t->spans_failed, 1);
        /* the next address of the answer, or a new lookup when it had one */
        assert_true(t->naddrs > 1 ? t->addr_i == 1 && !t->pin_stale : t->pin_stale);
        mg_trace_free(t);
        uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&loop), 0);
    }
}

/* The records of trace_spans.h as OTLP/JSON: byte for byte the text the encoder before records
 * wrote (end times aside, which take the clock), one span at a time and as a whole export body. */
static void test_records_json_golden(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_trace_t *t;
    assert_int_equal(mg_trace_new(&loop, "http://127.0.0.1:9/v1/traces", 1.0, &t), 0);
    trace_spans_make(t);
    assert_int_equal(t->count, TRACE_SPANS_QUEUED);
    assert_int_equal(t->spans_dropped, TRACE_SPANS_DROPPED);
    mg_jbuf_t body;
    mg_jbuf_init(&body, NULL, 0, 1 << 24);
    assert_int_equal(mg__trace_encode(t, t->count, &body), 0);
    assert_int_equal(mg_jbuf_reserve(&body, 1), 0);
    body.p[body.len] = '\0';
    const char *at = body.p;
    for (size_t k = 0; k < TRACE_SPANS_QUEUED; k++) {
        char *text = queued_json(t, k);
        /* the span's text is in the body as it is, in queue order */
        const char *in = strstr(at, text);
        assert_non_null(in);
        at = in + strlen(text);
        /* end time: 19 digits, not before the start; then masked as in the golden text */
        static const char key[] = "\"endTimeUnixNano\":\"";
        char *e = strstr(text, key);
        assert_non_null(e);
        e += sizeof key - 1;
        char *q = strchr(e, '"');
        assert_non_null(q);
        if (strstr(text, "\"startTimeUnixNano\":\"17") != NULL)
            assert_int_equal(q - e, 19);
        *e = 'E';
        memmove(e + 1, q, strlen(q) + 1);
        assert_string_equal(text, trace_spans_golden[k]);
        free(text);
    }
    json_t *j = json_loads(body.p, 0, NULL); /* the body: one resource, one scope, the spans */
    assert_non_null(j);
    json_t *rs = json_array_get(json_object_get(j, "resourceSpans"), 0);
    json_t *ss = json_array_get(json_object_get(rs, "scopeSpans"), 0);
    assert_int_equal(json_array_size(json_object_get(ss, "spans")), TRACE_SPANS_QUEUED);
    json_decref(j);
    mg_jbuf_dispose(&body);
    mg_trace_free(t);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A span whose data would pass MG__TRACE_SPAN_MAX is dropped and counted, not cut short. */
static void test_record_too_long(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_trace_t *t;
    assert_int_equal(mg_trace_new(&loop, "http://127.0.0.1:9/v1/traces", 1.0, &t), 0);
    static char v[5000];
    memset(v, 'v', sizeof v - 1);
    mg_span_t *s = mg_span_start(t, "long", MG_SPAN_INTERNAL, NULL, NULL);
    for (int i = 0; i < 4; i++)
        mg_span_set_str(s, "k", v);
    mg_span_end(s);
    assert_int_equal(t->count, 0);
    assert_int_equal(t->spans_dropped, 1);
    s = mg_span_start(t, "error too long", MG_SPAN_INTERNAL, NULL, NULL);
    for (int i = 0; i < 3; i++)
        mg_span_set_str(s, "k", v);
    mg_span_set_error(s, v);
    mg_span_end(s);
    assert_int_equal(t->count, 0);
    assert_int_equal(t->spans_dropped, 2);
    mg_trace_free(t);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse),
                                       cmocka_unit_test(test_spans),
                                       cmocka_unit_test(test_queue_bound),
                                       cmocka_unit_test(test_span_text),
                                       cmocka_unit_test(test_span_attrs_set),
                                       cmocka_unit_test(test_named_endpoint),
                                       cmocka_unit_test(test_records_json_golden),
                                       cmocka_unit_test(test_record_too_long)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
