/*
 * trace_int.h - the tracer's state, shared by trace.c (context, spans, sampling) and export.c (the
 * queue and its export). Not a public contract.
 *
 * A span is written on the request path as a compact binary record (span_rec.h: ids, times and
 * kind in a header; name, tracestate, typed attributes and status text by length), copied into the
 * export queue when it ends. The exporter encodes a batch of records as OTLP/JSON (span_rec.c) or
 * OTLP/protobuf (otlp_pb.c) into one body, on its timer: the request path writes no JSON and no
 * protobuf (ADR 0018).
 *
 * The JSON export body is {"resourceSpans": [{"resource": {"attributes": [service.name =
 * "mcpgate", service.version]}, "scopeSpans": [{"scope": {"name": "mcpgate", "version"},
 * "spans": [...]}]}]}; the protobuf body is the same message (otlp_pb.h).
 */
#ifndef MG_TRACE_INT_H
#define MG_TRACE_INT_H

#include "../common/json.h"
#include "../http/client.h"
#include "../http/h1client.h"
#include "span_rec.h"
#include "trace.h"

#define MG__TRACE_QUEUE_MAX  2048        /* ended spans waiting for export; beyond: dropped, counted */
#define MG__TRACE_BATCH_MAX  512         /* spans per export request */
#define MG__TRACE_FLUSH_MS   1000        /* export period */
#define MG__TRACE_TIMEOUT_MS 5000        /* one export request, whole */
#define MG__TRACE_PIN_MS     60000       /* an endpoint named by host is looked up again this often */
#define MG__TRACE_SPAN_MAX   (16 * 1024) /* data of one span record; a longer one is dropped */
#define MG__TRACE_FREE_SPANS                                                                                 \
    1024 /* ended spans kept for reuse (trace.c): about the most open at once                                \
          (3 per call in flight); beyond it a span is a ~2 KiB malloc/free */

/* Queued span records live in blocks of MG__TRACE_BLOCK bytes, appended in order and released in
 * order (export.c): a block is kept for reuse (up to MG__TRACE_SPARE_BLOCKS, about one export's worth)
 * or freed when its last span leaves the queue. A malloc and free of 64 KiB per block cost the
 * allocator a consolidation of its fast bins each. */
#define MG__TRACE_BLOCK        (64 * 1024)
#define MG__TRACE_SPARE_BLOCKS 8

typedef struct mg__trace_block {
    struct mg__trace_block *next_spare; /* on the tracer's list of empty blocks */
    size_t refs;                        /* queued spans whose record is here */
    size_t used;
    char data[MG__TRACE_BLOCK];
} mg__trace_block_t;

typedef struct mg__trace_item {
    const mg__span_rec_t *rec; /* one span's record, in blk */
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
    mg_http_client_t *http; /* libcurl: created at the first export that needs it */
    mg_http_call_t *call;   /* the export in flight through it, or NULL */
    mg_h1_client_t *h1;     /* the lean HTTP/1.1 client (ADR 0020): an http:// endpoint given by IP */
    mg_h1_call_t *h1call;   /* the export in flight through it, or NULL */
    int h1_checked, h1_ok;  /* mg_h1_accepts() asked once: the endpoint and headers never change */
    /* An http:// endpoint named by host (export.c): the lean client too, pinned to an address
     * resolved on the thread pool (h1client.h never resolves), again after MG__TRACE_PIN_MS or a
     * failed export through it. */
    int named;                       /* the endpoint is such a URL (host and port below) */
    char pin_host[256];              /* its host */
    unsigned pin_port;               /* its port */
    char addrs[4][48];               /* the name's addresses as the lookup gave them (text) */
    unsigned naddrs, addr_i;         /* how many; the one pinned */
    char *pin;                       /* "host:port:address" (mg_http_req_t.resolve), NULL: none yet */
    uint64_t pin_ms;                 /* uv_now() when pinned, or when the last lookup failed */
    int pin_stale;                   /* exports failed through every address: look the name up again */
    int via_pin;                     /* the export in flight went through the pin */
    struct mg__trace_lookup *lookup; /* the lookup under way, or NULL */
    size_t inflight;                 /* spans in the export in flight */
    char *body;                      /* the export's body, kept for the next one (sent without a copy: new
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
    mg__span_rec_t h; /* the record's header so far (ids, kind, start, lengths) */
    mg_jbuf_t b;      /* the record's data so far: name, tracestate, attributes */
    int bad;          /* a text not UTF-8: dropped at the end */
    char *state;      /* tracestate passed on (malloc'd) or NULL */
    char *error;      /* status message (malloc'd) when the status is ERROR, else NULL */
    size_t error_len;
    struct mg_span *next_free; /* on the tracer's free list */
    char inl[1024];            /* b's first storage: a span's whole data, usually */
};

/* trace.c: frees the spans kept for reuse. */
void mg__trace_free_spans(mg_trace_t *t);

/* export.c */
/* Copies the record of s (its header, its data, then its status text) into the queue, or counts a
 * drop (s->bad or s->b.err: the span could not be written; the queue is full). */
void mg__trace_queue(mg_trace_t *t, const mg_span_t *s);
/* Appends the export body of the n oldest queued spans (n <= count) to b: OTLP/JSON, or protobuf
 * when t->protobuf. Returns b's error. (export.c; the unit tests read the queue with it.) */
int mg__trace_encode(const mg_trace_t *t, size_t n, mg_jbuf_t *b);
int mg__trace_export_init(mg_trace_t *t);
void mg__trace_export_dispose(mg_trace_t *t);

#endif
