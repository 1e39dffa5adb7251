/*
 * fuzz_sse.c - libFuzzer target: SSE event framing (mg_sse_format in src/http/sse.c).
 * Input: byte 0 = retry flag, then "<id>\0<data>". Oracle: a WHATWG EventSource parser reading
 * the framed bytes gets back exactly one event whose id is the id and whose data is the data with
 * its line breaks (CRLF, CR, LF) normalised to LF: a payload can never inject a field or a second
 * event. Read next: src/http/sse.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/sse.h"

typedef struct event {
    char *data;
    size_t dlen, dcap;
    int has_id;
    int ndata;
} event_t;

static void add(event_t *e, const char *p, size_t n)
{
    if (e->dlen + n + 1 > e->dcap) {
        e->dcap = (e->dlen + n + 1) * 2;
        e->data = realloc(e->data, e->dcap);
    }
    memcpy(e->data + e->dlen, p, n);
    e->dlen += n;
}

/* Parses buf as an event stream; returns the number of events dispatched (fields into *e). */
static int parse(const char *buf, size_t len, event_t *e, char *idbuf, size_t idcap)
{
    int events = 0;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r')
            j++;
        if (j == len)
            abort(); /* an unterminated line at the end: the event is not complete */
        const char *line = buf + i;
        size_t n = j - i;
        i = j + 1;
        if (buf[j] == '\r' && i < len && buf[i] == '\n')
            i++;
        if (n == 0) {
            if (e->ndata > 0 || e->has_id)
                events++;
            continue;
        }
        if (line[0] == ':')
            continue;
        const char *colon = memchr(line, ':', n);
        size_t flen = colon ? (size_t)(colon - line) : n;
        const char *v = colon ? colon + 1 : line + n;
        size_t vlen = colon ? n - flen - 1 : 0;
        if (vlen > 0 && v[0] == ' ') {
            v++;
            vlen--;
        }
        if (flen == 4 && memcmp(line, "data", 4) == 0) {
            if (e->ndata++ > 0)
                add(e, "\n", 1);
            add(e, v, vlen);
        } else if (flen == 2 && memcmp(line, "id", 2) == 0) {
            if (vlen >= idcap)
                abort();
            memcpy(idbuf, v, vlen);
            idbuf[vlen] = '\0';
            e->has_id = 1;
        } else if (flen == 5 && memcmp(line, "retry", 5) == 0) {
            /* ours */
        } else {
            abort(); /* a field the formatter never writes: injected */
        }
    }
    return events;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    uint32_t retry = data[0] & 1 ? 1000u + data[0] : 0;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    const char *z = memchr(p, '\0', n);
    char id[64] = "";
    const char *payload = p;
    size_t plen = n;
    int with_id = 0;
    if (z != NULL && (size_t)(z - p) < sizeof id) {
        memcpy(id, p, (size_t)(z - p));
        id[z - p] = '\0';
        payload = z + 1;
        plen = n - (size_t)(z - p) - 1;
        with_id = strpbrk(id, "\r\n") == NULL; /* ids are ours ("<stream>-<seq>"): never CR/LF */
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (mg_sse_format(&buf, &len, &cap, with_id ? id : NULL, payload, plen, retry) != 0)
        abort();
    event_t e = {0};
    char got_id[64] = "";
    int events = parse(buf, len, &e, got_id, sizeof got_id);
    if (events != 1)
        abort(); /* the payload split the event in two, or produced none */
    if (with_id && (!e.has_id || strcmp(got_id, id) != 0))
        abort();
    /* Expected data: payload with CRLF / CR / LF all read as one LF. */
    char *want = malloc(plen + 1);
    size_t w = 0;
    for (size_t i = 0; i < plen; i++) {
        if (payload[i] == '\r') {
            want[w++] = '\n';
            if (i + 1 < plen && payload[i + 1] == '\n')
                i++;
        } else {
            want[w++] = payload[i];
        }
    }
    /* A NUL inside data is delivered as is by this parser: compare bytes. */
    if (e.dlen != w || memcmp(e.data, want, w) != 0)
        abort();
    free(want);
    free(e.data);
    free(buf);
    return 0;
}
