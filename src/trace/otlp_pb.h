/*
 * otlp_pb.h - the OTLP/HTTP binary (protobuf) body of a trace export, for gateway.tracing
 * "protocol": "http/protobuf". Hand-written for the fields mcpgate sends; no protobuf library.
 *
 * The exporter encodes a batch of span records (span_rec.h) straight into the body
 * (mg_otlp_pb_request_recs), off the request path. mg_otlp_pb_span / mg_otlp_pb_request read spans
 * from their OTLP/JSON text instead: the previous encoder, kept as the reference the record encoder
 * is tested against (test_otlp_pb: the same bytes for the same spans). Wire format (opentelemetry-proto,
 * collector/trace/v1 and trace/v1; field number, wire type: 0 varint, 1 fixed64, 2 length-delimited):
 *
 *   ExportTraceServiceRequest  1 resource_spans (2, ResourceSpans)
 *   ResourceSpans              1 resource (2, Resource)        2 scope_spans (2, ScopeSpans)
 *   Resource                   1 attributes (2, KeyValue)
 *   ScopeSpans                 1 scope (2, InstrumentationScope) 2 spans (2, Span)
 *   InstrumentationScope       1 name (2)  2 version (2)
 *   Span                       1 trace_id (2, 16 bytes)  2 span_id (2, 8 bytes)  3 trace_state (2)
 *                              4 parent_span_id (2, 8 bytes)  5 name (2)  6 kind (0)
 *                              7 start_time_unix_nano (1)  8 end_time_unix_nano (1)
 *                              9 attributes (2, KeyValue)  15 status (2, Status)
 *   Status                     2 message (2)  3 code (0)
 *   KeyValue                   1 key (2)  2 value (2, AnyValue)
 *   AnyValue                   1 string_value (2)  3 int_value (0, int64 two's complement)
 *
 * Read next: export.c (where the body is made), span_rec.h (the records encoded here).
 */
#ifndef MG_TRACE_OTLP_PB_H
#define MG_TRACE_OTLP_PB_H

#include "../common/json.h"
#include "span_rec.h"

#include <stddef.h>

/* Appends to out the binary Span (without its tag and length) for one span's OTLP/JSON text as
 * trace.c writes it. Returns 0, or MG_EINVAL when the text is not such a span (out unchanged in
 * length then), MG_ENOMEM / MG_ETOOBIG from out. */
int mg_otlp_pb_span(const char *text, size_t len, mg_jbuf_t *out);

/* Appends to out the whole ExportTraceServiceRequest: resource (service.name "mcpgate",
 * service.version), scope "mcpgate" and the n spans (texts[i] of lens[i] bytes). A span whose text
 * cannot be read is left out and counted in *skipped. Returns 0, or out's error. */
int mg_otlp_pb_request(const char *const *texts, const size_t *lens, size_t n, mg_jbuf_t *out,
                       size_t *skipped);

/* Appends to out the whole ExportTraceServiceRequest for the n span records (n > 0): resource,
 * scope and spans as mg_otlp_pb_request() writes them. Returns 0, or out's error (MG_ENOMEM,
 * MG_ETOOBIG). */
int mg_otlp_pb_request_recs(const mg__span_rec_t *const *recs, size_t n, mg_jbuf_t *out);

#endif
