/*
 * trace.h - distributed tracing: W3C trace context, spans, sampling, and their export over
 * OTLP/HTTP (JSON) to a collector (gateway.tracing). One tracer per process, on the loop.
 *
 * Spans are cheap handles: mg_span_start() returns NULL when tracing is off or the trace is not
 * sampled, and every other function accepts NULL and does nothing, so callers never branch on
 * whether tracing is on. A span ends exactly once (mg_span_end(), which frees it and queues it for
 * export). Export never blocks a request: ended spans go into a bounded queue (dropped and counted
 * when full) that one export at a time drains through http/client.h, in batches, every second.
 * Attributes are the caller's choice; this layer knows no MCP (the gateway sets the OpenTelemetry
 * MCP semantic-convention attributes: docs/operations.md#tracing). Never put argument values,
 * tokens or raw session ids in a span.
 * A span is written as a compact binary record (span_rec.h) and encoded as OTLP/JSON or protobuf
 * only by the exporter, a batch at a time (ADR 0018).
 * Read next: export.c (the queue and its export), span_rec.h, gateway/pipeline.c and
 * gateway/dispatch.c (where spans start: the phase tables).
 */
#ifndef MG_TRACE_H
#define MG_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

typedef struct mg_trace mg_trace_t;
typedef struct mg_span mg_span_t;

/* The shutdown's last export waits at most this long for the collector (mg_trace_drain). */
#define MG_TRACE_DRAIN_MS 2000
/* gateway.tracing.headers: at most this many. */
#define MG_TRACE_HEADERS_MAX 16

/* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define MG_TRACEPARENT_LEN 55
#define MG_TRACESTATE_MAX  512

/* A W3C trace context received from a peer (traceparent + tracestate). */
typedef struct mg_trace_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags; /* bit 0: sampled */
    char state[MG_TRACESTATE_MAX + 1];
} mg_trace_ctx_t;

typedef enum mg_span_kind {
    MG_SPAN_INTERNAL = 1,
    MG_SPAN_SERVER = 2,
    MG_SPAN_CLIENT = 3,
} mg_span_kind_t;

/* Parses a traceparent header value (version 00, or a later version read as 00 per W3C) and an
 * optional tracestate (NULL or too long: none). Returns 0, or MG_EINVAL for anything malformed
 * (then *out is unusable): all-zero ids, non-lowercase hex, wrong lengths. */
int mg_trace_ctx_parse(const char *traceparent, size_t len, const char *tracestate, size_t slen,
                       mg_trace_ctx_t *out);

/* Starts the tracer. endpoint: the collector's OTLP/HTTP traces URL (".../v1/traces");
 * sample_ratio 0..1 for traces without a sampled parent. Returns 0, or MG_ENOMEM. The HTTP client
 * (libcurl) is loaded at the first export. */
int mg_trace_new(uv_loop_t *loop, const char *endpoint, double sample_ratio, mg_trace_t **out);
/* gateway.tracing "protocol" and "headers": protobuf 1 sends OTLP/HTTP binary protobuf
 * (Content-Type application/x-protobuf, otlp_pb.h) instead of OTLP/JSON; headers: n name/value
 * pairs (2n strings, copied) added to every export request, e.g. the collector's credentials
 * (never logged). Returns 0 or MG_ENOMEM (then nothing changed). */
int mg_trace_set_export(mg_trace_t *t, int protobuf, const char *const *headers, size_t n);
/* Sends what is queued now (best effort; the shutdown calls it). */
void mg_trace_flush(mg_trace_t *t);
/* The end of a shutdown: exports everything queued (batch after batch) and calls done_cb(data)
 * once, from the loop (never inside this call), when the queue is empty and no export is in flight,
 * or after wait_ms, whichever comes first (t not NULL). Spans ending meanwhile are exported too.
 * Call mg_trace_free() afterwards. */
void mg_trace_drain(mg_trace_t *t, uint64_t wait_ms, void (*done_cb)(void *data), void *data);
/* Cancels the export in flight, drops the queue, closes the handles (memory goes from their close
 * callbacks: run the loop afterwards). NULL is ignored. */
void mg_trace_free(mg_trace_t *t);

/* A new span named name (copied) of kind, child of parent (a local span) or else of remote (a
 * context received from a peer), else the root of a new trace. Sampling: a local parent's span is
 * sampled; a remote parent's sampled flag decides; a new trace is sampled with the ratio. Returns
 * NULL when t is NULL, the trace is not sampled, or memory ran out. */
mg_span_t *mg_span_start(mg_trace_t *t, const char *name, mg_span_kind_t kind, const mg_span_t *parent,
                         const mg_trace_ctx_t *remote);
/* The same with a start time taken earlier (mg_trace_now_ns(); 0 = now): a span made once it is
 * known to be worth recording (a phase that waited). */
mg_span_t *mg_span_start_at(mg_trace_t *t, const char *name, mg_span_kind_t kind, const mg_span_t *parent,
                            const mg_trace_ctx_t *remote, uint64_t start_ns);
/* Wall-clock nanoseconds since the epoch, as spans record them. */
uint64_t mg_trace_now_ns(void);
/* Attributes: key is an ASCII name without quotes or backslashes (a semantic-convention name);
 * value any UTF-8 (a span with a value that is not UTF-8 is dropped when it ends). */
void mg__span_set_strn(mg_span_t *s, const char *key, size_t klen, const char *value);
static inline void mg_span_set_str(mg_span_t *s, const char *key, const char *value)
{
    if (key != NULL) /* inline: a literal key's length is known at compile time */
        mg__span_set_strn(s, key, strlen(key), value);
}
void mg_span_set_int(mg_span_t *s, const char *key, long long value);
/* A set of string attributes written once for many spans (values that repeat: a server's name, a
 * session's protocol version): kv holds n key/value pairs (2n strings; a pair with a NULL value is
 * left out), copied. mg_span_add_attrs(s, a) gives s the same record bytes as mg_span_set_str for
 * each pair in order, in one copy. NULL when memory ran out; a span given NULL, or a set with a
 * value that is not UTF-8, is dropped and counted when it ends (as with mg_span_set_str). */
typedef struct mg_span_attrs mg_span_attrs_t;
mg_span_attrs_t *mg_span_attrs_new(const char *const *kv, size_t n);
void mg_span_attrs_free(mg_span_attrs_t *a);
void mg_span_add_attrs(mg_span_t *s, const mg_span_attrs_t *a);
/* Status ERROR with a description (copied; CR/LF and the rest are as given: never a secret). */
void mg_span_set_error(mg_span_t *s, const char *description);
/* Ends and frees s; it is queued for export (or dropped and counted when the queue is full). */
void mg_span_end(mg_span_t *s);
/* The same with an end time read earlier (mg_trace_now_ns()): spans that end together, one clock
 * read. */
void mg_span_end_at(mg_span_t *s, uint64_t end_ns);

/* The traceparent that makes the receiver a child of s, into out (MG_TRACEPARENT_LEN + 1 bytes).
 * Returns 1, or 0 when s is NULL (nothing written): for params._meta of requests to upstreams and
 * for the traceparent header of requests to remote upstreams. The gateway already writes it into
 * the request it gives an upstream (params._meta.traceparent / tracestate, gateway/dispatch.c
 * forward()), so a remote upstream's transport can copy those two values into its HTTP headers
 * without holding a span. */
int mg_span_traceparent(const mg_span_t *s, char *out, size_t cap);
/* The tracestate to send along (the remote parent's, passed on), or NULL when none / s is NULL. */
const char *mg_span_tracestate(const mg_span_t *s);
/* The context of s as a remote parent would carry it (ids, sampled, tracestate): for a child that
 * may start after s ended. Returns 1, or 0 when s is NULL (out untouched). */
int mg_span_context(const mg_span_t *s, mg_trace_ctx_t *out);
/* Lowercase hex trace id of s into out (33 bytes); 0 when s is NULL. */
int mg_span_trace_id(const mg_span_t *s, char out[33]);

#endif
