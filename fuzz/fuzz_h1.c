/*
 * fuzz_h1.c - libFuzzer target: the lean HTTP/1.1 client's response parser (src/http/h1parse.c).
 * Input: byte 0 picks a split point, the rest is what a server sent. Oracles: a head that parses
 * lies inside the input, has a status from 100 to 599, header lines that each end in CRLF and hold
 * a colon, and never both framings; every prefix of a complete head is "incomplete", never an
 * error (split reads cannot change the verdict). The chunked decoder gives the same data, the same
 * end and the same verdict fed whole, cut at the split point, and byte by byte; it never returns
 * more data than it consumed. Read next: src/http/h1parse.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "http/h1parse.h"

typedef struct out {
    char *data;
    size_t len;
    long used; /* bytes consumed when done, or -1 not done, or the error */
} out_t;

/* Decodes in[] fed in pieces of at most `step` bytes (0: cut once at `cut`). */
static void decode(const uint8_t *in, size_t len, size_t step, size_t cut, out_t *o)
{
    mg_h1_chunks_t d;
    mg_h1_chunks_init(&d);
    o->data = malloc(len + 1);
    o->len = 0;
    o->used = -1;
    size_t at = 0;
    while (at < len && !d.done) {
        size_t end = step ? (at + step < len ? at + step : len) : (at < cut ? cut : len);
        while (at < end && !d.done) {
            const char *data = NULL, *why = NULL;
            size_t dlen = 0;
            long n = mg_h1_chunks_next(&d, (const char *)in + at, end - at, &data, &dlen, &why);
            if (n < 0) {
                if (why == NULL)
                    abort();
                o->used = n;
                return;
            }
            if (n == 0 || dlen > (size_t)n)
                abort();
            if (dlen > 0) {
                if (data < (const char *)in + at || data + dlen > (const char *)in + at + n)
                    abort();
                memcpy(o->data + o->len, data, dlen);
                o->len += dlen;
            }
            at += (size_t)n;
        }
    }
    if (d.done)
        o->used = (long)at;
}

static void same(const out_t *a, const out_t *b)
{
    if (a->used != b->used || a->len != b->len || memcmp(a->data, b->data, a->len) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
    if (size < 1)
        return 0;
    size_t cut = buf[0];
    const uint8_t *in = buf + 1;
    size_t len = size - 1;
    if (cut > len)
        cut = len;

    mg_h1_head_t h;
    const char *why = NULL;
    long n = mg_h1_head_parse((const char *)in, len, 8192, &h, &why);
    if (n > 0) {
        if ((size_t)n > len || h.status < 100 || h.status > 599 || (h.chunked && h.content_length >= 0))
            abort();
        if (h.lines < (const char *)in || h.lines + h.lines_len > (const char *)in + n)
            abort();
        for (const char *p = h.lines, *e = h.lines + h.lines_len; p < e;) {
            const char *nl = memchr(p, '\n', (size_t)(e - p));
            if (nl == NULL || nl == p || nl[-1] != '\r' || memchr(p, ':', (size_t)(nl - p)) == NULL)
                abort();
            p = nl + 1;
        }
        for (size_t i = 0; i < (size_t)n; i++) {
            mg_h1_head_t h2;
            long m = mg_h1_head_parse((const char *)in, i, 8192, &h2, &why);
            if (m != 0)
                abort();
        }
    } else if (n < 0 && n != MG_EIO && n != MG_ETOOBIG) {
        abort();
    } else if (n == MG_EIO && why == NULL) {
        abort();
    }

    out_t whole, split, bytes;
    decode(in, len, 0, len, &whole);
    decode(in, len, 0, cut, &split);
    decode(in, len, 1, 0, &bytes);
    same(&whole, &split);
    same(&whole, &bytes);
    free(whole.data);
    free(split.data);
    free(bytes.data);
    return 0;
}
