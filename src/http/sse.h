/*
 * sse.h - Server-Sent Events framing and the h2o writer that streams it.
 *
 * Framing (text/event-stream): an event is "id: <id>\n" (optional), "retry: <ms>\n" (optional),
 * one "data: <line>\n" per line of the payload, then "\n". A priming event is an id with an empty
 * data line (only sent to clients that negotiated >= 2025-11-25). A keep-alive is ": \n\n".
 *
 * mg_sse_conn_t owns one streaming HTTP response: bytes are queued and handed to h2o one batch at a
 * time (h2o allows a single outstanding h2o_send until its generator's proceed callback). When the
 * client goes away the conn's gone_cb fires once and the conn must no longer be written to.
 * Read next: gateway/session.h (streams, replay buffers, Last-Event-ID).
 */
#ifndef MG_SSE_H
#define MG_SSE_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_h2o_req_t h2o_req_t;
typedef struct mg_sse_conn mg_sse_conn_t;

/* Appends one formatted event to a malloc'd buffer (*buf, *len, *cap grow; returns 0/MG_ENOMEM).
 * id may be NULL (no id line) and never contains CR or LF; data may contain line breaks (LF, CRLF or a
 * lone CR), each of which starts a new "data:" line; retry_ms 0 = no retry line. */
int mg_sse_format(char **buf, size_t *len, size_t *cap, const char *id, const char *data, size_t data_len,
                  uint32_t retry_ms);

typedef void (*mg_sse_gone_cb)(mg_sse_conn_t *conn, void *data);

/*
 * Starts a 200 text/event-stream response on req (adds Cache-Control: no-cache,
 * X-Accel-Buffering: no, and any extra header pairs given in hdrs[0..2*nhdrs)).
 * Returns NULL on allocation failure (the caller answers 500). The conn memory lives in req's pool;
 * gone_cb is called when h2o disposes the request (client disconnect or after mg_sse_conn_end).
 */
mg_sse_conn_t *mg_sse_conn_start(h2o_req_t *req, const char **hdrs, size_t nhdrs, mg_sse_gone_cb gone_cb,
                                 void *data);
/* Queues raw bytes (already framed). Returns 0, MG_ECLOSED after end/gone, MG_ETOOBIG when more than
 * max_pending bytes are waiting for a slow client (the caller should drop the connection). */
int mg_sse_conn_write(mg_sse_conn_t *conn, const char *bytes, size_t len);
/* Flushes what is queued and ends the response. */
void mg_sse_conn_end(mg_sse_conn_t *conn);
/* 1 when the client closed its end of an HTTP/1 connection (EOF or an error is waiting on the
 * socket, peeked without reading). h2o does not read a connection while it streams a response, so
 * a client that went away is otherwise found only by a failed write; h2 streams learn it from
 * h2o (gone_cb). 0 otherwise, and for h2. */
int mg_sse_conn_peer_closed(mg_sse_conn_t *conn);
/* Detaches gone_cb (the owner forgets the conn; the response is ended). */
void mg_sse_conn_abandon(mg_sse_conn_t *conn);

#endif
