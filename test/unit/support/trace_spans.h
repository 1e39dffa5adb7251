/*
 * trace_spans.h - a fixed set of spans for the tests of the span records (test_trace: their
 * OTLP/JSON; test_otlp_pb: their protobuf), covering every path of the writers: a remote parent
 * with tracestate, children, int attributes of every width and sign, values to escape and UTF-8
 * ones, an empty name, a value longer than a span's inline storage, status with and without text, and spans
 * that are dropped (a value, a name, a status not UTF-8). The id generator is seeded and start times given,
 * so the spans are the same in every run; only end times differ (mg_span_end takes the clock).
 * trace_spans_golden holds the OTLP/JSON text the encoder before span records (trace.c writing
 * JSON at span end) produced for these spans, with each endTimeUnixNano value replaced by "E".
 */
#ifndef MG_TEST_TRACE_SPANS_H
#define MG_TEST_TRACE_SPANS_H

#include "trace/trace_int.h"

#include <string.h>

/* Starts and ends the spans; 5 are queued (in this order: up, lone, plain, call, root), 3 dropped. */
static inline void trace_spans_make(mg_trace_t *t)
{
    static const char tp[] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    static const char ts[] = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";
    mg_trace_ctx_t ctx;
    mg_trace_ctx_parse(tp, sizeof tp - 1, ts, sizeof ts - 1, &ctx);
    t->rng[0] = 0x0123456789abcdefull;
    t->rng[1] = 0xfedcba9876543210ull;
    mg_span_t *root = mg_span_start_at(t, "POST /mcp", MG_SPAN_SERVER, NULL, &ctx, 1700000000000000001ull);
    mg_span_set_str(root, "http.request.method", "POST");
    mg_span_set_str(root, "http.route", "/mcp");
    mg_span_set_int(root, "http.response.status_code", 200);
    mg_span_t *call =
        mg_span_start_at(t, "tools/call echo", MG_SPAN_SERVER, root, NULL, 1700000000000000002ull);
    mg_span_set_str(call, "mcp.method.name", "tools/call");
    mg_span_set_str(call, "gen_ai.tool.name", "\xc3\xa9\"q\\\n\t\x01/\x7f");
    mg_span_set_str(call, "mcpgate.tenant", "\xe6\x97\xa5\xe6\x9c\xac");
    mg_span_set_str(call, "jsonrpc.request.id", "");
    static const long long ints[] = {
        0, 9, 10, 99, 100, 12345, -1, -5, 9223372036854775807LL, -9223372036854775807LL - 1};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        mg_span_set_int(call, "n", ints[i]);
    mg_span_set_error(call, "-32602");
    mg_span_t *up =
        mg_span_start_at(t, "tools/call echo", MG_SPAN_CLIENT, call, NULL, 1700000000000000003ull);
    mg_span_set_str(up, "network.transport", "pipe");
    mg_span_set_error(up, "quote\"d \xc3\xa9");
    mg_span_end(up);
    mg_span_t *lone = mg_span_start_at(t, "", MG_SPAN_INTERNAL, NULL, NULL, 5);
    static char big[1101];
    memset(big, 'x', sizeof big - 1);
    mg_span_set_str(lone, "big", big);
    mg_span_set_error(lone, "");
    mg_span_end(lone);
    mg_span_t *bad = mg_span_start_at(t, "bad", MG_SPAN_INTERNAL, NULL, NULL, 6);
    mg_span_set_str(bad, "v", "\xff");
    mg_span_end(bad); /* not UTF-8: dropped */
    mg_span_t *bad2 = mg_span_start_at(t, "bad \xc3", MG_SPAN_INTERNAL, NULL, NULL, 7);
    mg_span_end(bad2); /* a name not UTF-8: dropped */
    mg_span_t *bad3 = mg_span_start_at(t, "bad3", MG_SPAN_INTERNAL, NULL, NULL, 8);
    mg_span_set_error(bad3, "\xc0\xaf");
    mg_span_end(bad3); /* a status not UTF-8: dropped */
    mg_span_t *plain = mg_span_start_at(t, "mcpgate.mrtr_round", MG_SPAN_INTERNAL, call, NULL, 9);
    mg_span_end(plain);
    mg_span_end(call);
    mg_span_end(root);
}

#define TRACE_SPANS_QUEUED  5
#define TRACE_SPANS_DROPPED 3

static const char *const trace_spans_golden[TRACE_SPANS_QUEUED] = {
    "{\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":\"adb18fd921ed3817\",\"parentSpanId\":"
    "\"87a5eb460a2e184b\",\"traceState\":\"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE\",\"name\":\"tools/call "
    "echo\",\"kind\":3,\"startTimeUnixNano\":\"1700000000000000003\",\"attributes\":[{\"key\":\"network."
    "transport\",\"value\":{\"stringValue\":\"pipe\"}}],\"endTimeUnixNano\":\"E\",\"status\":{\"code\":2,"
    "\"message\":\"quote\\\"d \303\251\"}}",
    "{\"traceId\":\"ca47bc2ae8ff264f47c712d3d1658192\",\"spanId\":\"3f080b3cca6843d5\",\"name\":\"\","
    "\"kind\":1,\"startTimeUnixNano\":\"5\",\"attributes\":[{\"key\":\"big\",\"value\":{\"stringValue\":"
    "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}],\"endTimeUnixNano\":\"E\","
    "\"status\":{\"code\":2,\"message\":\"\"}}",
    "{\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":\"0591a854df7fb47b\",\"parentSpanId\":"
    "\"87a5eb460a2e184b\",\"traceState\":\"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE\",\"name\":\"mcpgate.mrtr_"
    "round\",\"kind\":1,\"startTimeUnixNano\":\"9\",\"attributes\":[],\"endTimeUnixNano\":\"E\"}",
    "{\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":\"87a5eb460a2e184b\",\"parentSpanId\":"
    "\"071966eded2d184b\",\"traceState\":\"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE\",\"name\":\"tools/call "
    "echo\",\"kind\":2,\"startTimeUnixNano\":\"1700000000000000002\",\"attributes\":[{\"key\":\"mcp.method."
    "name\",\"value\":{\"stringValue\":\"tools/"
    "call\"}},{\"key\":\"gen_ai.tool.name\",\"value\":{\"stringValue\":\"\303\251\\\"q\\\\\\n\\t\\u0001/"
    "\177\"}},{\"key\":\"mcpgate.tenant\",\"value\":{\"stringValue\":\"\346\227\245\346\234\254\"}},{\"key\":"
    "\"jsonrpc.request.id\",\"value\":{\"stringValue\":\"\"}},{\"key\":\"n\",\"value\":{\"intValue\":\"0\"}},"
    "{\"key\":\"n\",\"value\":{\"intValue\":\"9\"}},{\"key\":\"n\",\"value\":{\"intValue\":\"10\"}},{\"key\":"
    "\"n\",\"value\":{\"intValue\":\"99\"}},{\"key\":\"n\",\"value\":{\"intValue\":\"100\"}},{\"key\":\"n\","
    "\"value\":{\"intValue\":\"12345\"}},{\"key\":\"n\",\"value\":{\"intValue\":\"-1\"}},{\"key\":\"n\","
    "\"value\":{\"intValue\":\"-5\"}},{\"key\":\"n\",\"value\":{\"intValue\":\"9223372036854775807\"}},{"
    "\"key\":\"n\",\"value\":{\"intValue\":\"-9223372036854775808\"}}],\"endTimeUnixNano\":\"E\",\"status\":{"
    "\"code\":2,\"message\":\"-32602\"}}",
    "{\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":\"071966eded2d184b\",\"parentSpanId\":"
    "\"00f067aa0ba902b7\",\"traceState\":\"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE\",\"name\":\"POST "
    "/mcp\",\"kind\":2,\"startTimeUnixNano\":\"1700000000000000001\",\"attributes\":[{\"key\":\"http.request."
    "method\",\"value\":{\"stringValue\":\"POST\"}},{\"key\":\"http.route\",\"value\":{\"stringValue\":\"/"
    "mcp\"}},{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"200\"}}],\"endTimeUnixNano\":"
    "\"E\"}",
};

#endif
