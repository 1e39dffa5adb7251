/*
 * trace_int.h - the tracer's state, shared by trace.c (context, spans, sampling) and export.c (the
 * queue and its export). Not a public contract.
 *
 * A span is written directly as the text of its OTLP/JSON object (opentelemetry-proto, trace/v1,
 * JSON mapping), in this order, no jansson tree on the way (tracing at ratio 1 must stay cheap):
 *
 *   field               value
 *   traceId, spanId     lowercase hex (32, 16)
 *   parentSpanId        lowercase hex (16); absent on a root
 *   traceState          the remote parent's tracestate, passed on; absent when none
 *   name                as given
 *   kind                1 internal, 2 server, 3 client
 *   startTimeUnixNano   decimal string (uint64 nanoseconds since the epoch)
 *   attributes          [{"key": k, "value": {"stringValue": v} | {"intValue": "decimal"}}]
 *   endTimeUnixNano     decimal string
 *   status              {"code": 2, "message": m} on error; absent (unset) otherwise
 *
 * The export body is {"resourceSpans": [{"resource": {"attributes": [service.name = "mcpgate",
 * service.version]}, "scopeSpans": [{"scope": {"name": "mcpgate", "version"}, "spans": [...]}]}]}.
 */
#ifndef MG_TRACE_INT_H
#define MG_TRACE_INT_H

#include "../common/json.h"
#include "../http/client.h"
#include "trace.h"

#define MG__TRACE_QUEUE_MAX  2048        /* ended spans waiting for export; beyond: dropped, counted */
#define MG__TRACE_BATCH_MAX  512         /* spans per export request */
#define MG__TRACE_FLUSH_MS   1000        /* export period */
#define MG__TRACE_TIMEOUT_MS 5000        /* one export request, whole */
#define MG__TRACE_SPAN_MAX   (16 * 1024) /* text of one span; a longer one is dropped */
#define MG__TRACE_FREE_SPANS                                                                                 \
    1024 /* ended spans kept for reuse (trace.c): about the most open at once                                \
          (3 per call in flight); beyond it a span is a ~2 KiB malloc/free */

/* Queued span texts live in blocks of MG__TRACE_BLOCK bytes, appended in order and released in
 * order (export.c): a block is kept for reuse (up to MG__TRACE_SPARE_BLOCKS, about one export's worth)
 * or freed when its last span leaves the queue. A malloc and free of 64 KiB per block cost the
 * allocator a consolidation of its fast bins each. */
#define MG__TRACE_BLOCK        (64 * 1024)
#define MG__TRACE_SPARE_BLOCKS 8

typedef struct mg__trace_block {
    struct mg__trace_block *next_spare; /* on the tracer's list of empty blocks */
    size_t refs;                        /* queued spans whose text is here */
    size_t used;
    char data[MG__TRACE_BLOCK];
} mg__trace_block_t;

typedef struct mg__trace_item {
    char *text; /* one span's JSON object, NUL-terminated, in blk */
    size_t len;
    mg__trace_block_t *blk;
} mg__trace_item_t;

struct mg_trace {
    uv_loop_t *loop;
    char *endpoint;
    uint64_t ratio_bound; /* a new trace is sampled when a random uint64 < this (ratio * 2^64) */
    int ratio_all;        /* ratio 1.0: every new trace */
    uint64_t rng[2];      /* xorshift128+ state for ids, seeded from the CSPRNG */
    /* export.c: a ring of ended spans */
    mg__trace_item_t *ring;
    size_t head, count;
    mg__trace_block_t *blk, *spare; /* the block being filled; empty ones kept for reuse (a list) */
    unsigned nspare;
    uv_timer_t timer;
    mg_http_client_t *http; /* created at the first export */
    mg_http_call_t *call;   /* the export in flight, or NULL */
    size_t inflight;        /* spans in the export in flight */
    char *body;             /* the export's body, kept for the next one (sent without a copy: new
                               pages for every export cost more than writing the spans) */
    size_t body_cap;
    int freeing;
    /* trace.c: ended spans kept for reuse */
    struct mg_span *free_spans;
    unsigned nfree;
    /* counters (metrics: export.c) */
    uint64_t spans_started, spans_exported, spans_dropped, spans_failed, exports_failed;
    /* export.c: gateway.tracing "protocol" and "headers" (mg_trace_set_export) */
    int protobuf;   /* OTLP/HTTP binary (otlp_pb.h) instead of JSON */
    char **headers; /* name, value, name, value...: 2 * nheaders strings (values are secrets) */
    size_t nheaders;
    /* export.c: mg_trace_drain() under way: done_cb pending until the queue is empty or deadline */
    void (*drain_cb)(void *data);
    void *drain_data;
    uint64_t drain_deadline;
};

struct mg_span {
    mg_trace_t *t;
    uint8_t trace_id[16];
    uint8_t span_id[8];
    unsigned nattrs;
    mg_jbuf_t b;               /* the span's JSON text so far: up to the attributes written */
    char *state;               /* tracestate passed on (malloc'd) or NULL */
    char *error;               /* status message (malloc'd) when the status is ERROR, else NULL */
    struct mg_span *next_free; /* on the tracer's free list */
    char inl[2048];            /* b's first storage: a span's whole text, usually */
};

/* trace.c: frees the spans kept for reuse. */
void mg__trace_free_spans(mg_trace_t *t);

/* export.c */
/* Copies text (a span's JSON object; NULL: the span could not be written) into the queue, or counts
 * a drop. */
void mg__trace_queue(mg_trace_t *t, const char *text, size_t len);
int mg__trace_export_init(mg_trace_t *t);
void mg__trace_export_dispose(mg_trace_t *t);

#endif
