/*
 * h1parse.h - a strict parser of HTTP/1.1 responses as a client reads them: the response head
 * (status line and header block) and the chunked transfer coding. Pure functions over bytes, no
 * I/O and no allocation; the caller (http/h1client.c) owns the buffers. Fuzzed by fuzz/fuzz_h1.c.
 *
 * Strict: lines end in CRLF; a header name is a token followed directly by ':'; no obs-fold; no
 * control byte but HTAB in a value; Content-Length is digits only, and several of them must agree;
 * Transfer-Encoding is "chunked" or the response is refused, and never together with
 * Content-Length (a response that could be framed two ways is a smuggling attempt, not a
 * response). Errors are MG_EIO with a sentence in *why (static text), or MG_ETOOBIG for a head over
 * the caller's bound. Read next: h1client.c.
 */
#ifndef MG_HTTP_H1PARSE_H
#define MG_HTTP_H1PARSE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mg_h1_head {
    int minor;              /* HTTP/1.<minor>: 0 or 1 */
    int status;             /* 100..599 */
    const char *lines;      /* the header lines ("Name: value\r\n" each), inside the parsed buffer */
    size_t lines_len;       /* without the empty line that ends the block */
    int64_t content_length; /* -1: none */
    int chunked;            /* Transfer-Encoding: chunked */
    int close;              /* Connection: close, or HTTP/1.0: no other response on this connection */
    long keep_alive_s;      /* Keep-Alive: timeout=N (seconds the server keeps it idle), or -1 */
} mg_h1_head_t;

/* Parses the response head at the start of buf[0..len). Returns the head's length in bytes (status
 * line through the empty line) when it is complete, 0 when more bytes are needed, MG_ETOOBIG when
 * no head ends within max bytes, MG_EIO when buf does not start a valid HTTP/1.x response head
 * (*why says what is wrong). out is filled only when the result is > 0. */
long mg_h1_head_parse(const char *buf, size_t len, size_t max, mg_h1_head_t *out, const char **why);

/* The chunked decoder's state; zero it (or mg_h1_chunks_init) before the first chunk. */
typedef struct mg_h1_chunks {
    int state;
    uint64_t left;  /* data bytes left in the current chunk */
    unsigned ndig;  /* hex digits of the size read so far */
    size_t linelen; /* bytes of the current extension or trailer line: bounded */
    int done;       /* the last chunk and the trailers were read */
} mg_h1_chunks_t;

void mg_h1_chunks_init(mg_h1_chunks_t *d);

/* Decodes from in[0..len) up to and including the next run of data bytes: *data / *dlen (dlen 0
 * when the bytes consumed held only framing). Returns the bytes consumed (the caller calls again
 * with the rest; d->done once the body ended, and bytes after that are not the body's), or MG_EIO
 * with *why on a malformed chunk (size not hex or over 15 digits, missing CRLF, an extension or
 * trailer line over 4 KiB). */
long mg_h1_chunks_next(mg_h1_chunks_t *d, const char *in, size_t len, const char **data, size_t *dlen,
                       const char **why);

#endif
