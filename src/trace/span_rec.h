/*
 * span_rec.h - an ended span as a compact binary record: what a span writes on the request path
 * and what the export queue holds. The exporter encodes batches of records as OTLP/JSON
 * (mg__span_rec_json, here) or OTLP/protobuf (otlp_pb.h), off the request path (ADR 0018).
 *
 * A record is a header (mg__span_rec_t) followed by its data, in this order; every length is in
 * the header or in the data before the bytes it counts. Integers are in host order (a record never
 * leaves the process), read with memcpy (the data is not aligned):
 *
 *   part         bytes                     notes
 *   name         name_len                  UTF-8 (checked when written)
 *   tracestate   state_len                 the remote parent's, passed on; printable ASCII
 *   attributes   nattrs times:
 *     type       1                         's' plain ASCII string (printable, no '"' or '\\'),
 *                                          'e' other UTF-8 string (JSON escapes it), 'i' int64
 *     key length 2 (uint16)
 *     key        key length                ASCII without '"' or '\\' (a semantic-convention name)
 *     value      's'/'e': 4 (uint32 n) + n bytes; 'i': 8 (int64)
 *   status text  error_len                 present when has_error (status ERROR); UTF-8
 *
 * The header's len counts header and data, rounded up to 8 so records can follow each other in a
 * block. A span whose text is not UTF-8, or whose data would pass MG__TRACE_SPAN_MAX bytes, never
 * becomes a record: it is dropped and counted when it ends.
 * Read next: trace.c (where records are written), export.c (the queue), otlp_pb.c.
 */
#ifndef MG_TRACE_SPAN_REC_H
#define MG_TRACE_SPAN_REC_H

#include "../common/json.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct mg__span_rec {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t parent_id[8]; /* meaningful when has_parent */
    uint64_t start_ns, end_ns;
    uint32_t len; /* header and data, a multiple of 8 */
    uint32_t nattrs;
    uint32_t name_len, state_len, error_len;
    uint8_t has_parent, kind, has_error;
} mg__span_rec_t;

#define MG__SPAN_REC_ALIGN(n) (((n) + 7u) & ~(size_t)7u)

/* An attribute as read from a record (mg__span_rec_attr_next). */
typedef struct mg__span_attr {
    char type; /* 's', 'e' or 'i' */
    const char *key;
    size_t klen;
    const char *str; /* 's', 'e' */
    size_t slen;
    int64_t i; /* 'i' */
} mg__span_attr_t;

static inline const char *mg__span_rec_data(const mg__span_rec_t *r)
{
    return (const char *)(r + 1);
}

/* The first attribute's bytes (after name and tracestate). */
static inline const char *mg__span_rec_attrs(const mg__span_rec_t *r)
{
    return mg__span_rec_data(r) + r->name_len + r->state_len;
}

/* Reads the attribute at p into a; returns the position of the next one (or of the status text
 * after the last). Only for records written by trace.c (nothing is checked). */
static inline const char *mg__span_rec_attr_next(const char *p, mg__span_attr_t *a)
{
    uint16_t klen;
    a->type = p[0];
    memcpy(&klen, p + 1, 2);
    a->key = p + 3;
    a->klen = klen;
    p += 3 + klen;
    if (a->type == 'i') {
        memcpy(&a->i, p, 8);
        return p + 8;
    }
    uint32_t n;
    memcpy(&n, p, 4);
    a->str = p + 4;
    a->slen = n;
    return p + 4 + n;
}

/* Appends r as the text of its OTLP/JSON Span object (opentelemetry-proto trace/v1, JSON mapping):
 * traceId, spanId, parentSpanId (absent on a root), traceState (absent when none), name, kind,
 * startTimeUnixNano, attributes, endTimeUnixNano, status ({"code":2,"message":m}, absent unless
 * ERROR); ids in lowercase hex, times and int values as decimal strings. Errors are b's (sticky). */
void mg__span_rec_json(const mg__span_rec_t *r, mg_jbuf_t *b);

/* The byte-pair hex and the "copied as is" tables, filled once (mg_trace_new calls it). */
void mg__span_rec_tables_init(void);
/* 1: c is printable ASCII other than '"' and '\\' (a JSON string copies it as is). */
extern unsigned char mg__span_plain[256];

#endif
