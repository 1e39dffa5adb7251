/*
 * fuzz_framing.c - libFuzzer target: the stdio framing of upstream children (src/upstream/
 * framing.c): the capped line splitter in both modes, the top-level "id" scanner used on
 * over-long responses, and the UTF-8 cleanup applied to a child's bytes before they are logged.
 * Input: byte 0 = mode and cap (stdout/discard or stderr/cut; cap 1..128 bytes), byte 1 = read
 * chunk size, then the child's output. Oracles: the lines delivered and the over-long lines
 * reported are exactly those of a reference split of the same bytes (whatever the chunking); no
 * line is longer than the cap; the id scanner agrees with jansson on over-long lines that are one
 * JSON object with a single top-level integer "id"; the cleanup output is valid UTF-8.
 * Read next: src/upstream/upstream_int.h (the framing table).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/upstream_int.h"

typedef struct ctx {
    const char *in;
    size_t inlen;
    size_t pos;   /* start of the next expected line in `in` */
    size_t max;   /* line cap */
    int cut_mode; /* 1 = stderr semantics */
    int finished; /* mg__linebuf_finish was called */
} ctx_t;

/* Next reference line from pos: [pos, end) and where the line after it starts. */
static int next_ref(ctx_t *c, size_t *start, size_t *len, size_t *after, int *complete)
{
    if (c->pos >= c->inlen)
        return 0;
    const char *nl = memchr(c->in + c->pos, '\n', c->inlen - c->pos);
    *start = c->pos;
    *len = nl ? (size_t)(nl - (c->in + c->pos)) : c->inlen - c->pos;
    *after = nl ? c->pos + *len + 1 : c->inlen;
    *complete = nl != NULL;
    return 1;
}

static void on_line(void *p, const char *line, size_t len, int truncated)
{
    ctx_t *c = p;
    size_t start, rlen, after;
    int complete;
    if (!next_ref(c, &start, &rlen, &after, &complete))
        abort(); /* a line out of nothing */
    if (!complete && !c->finished && !truncated)
        abort(); /* a partial line delivered before EOF */
    const char *ref = c->in + start;
    if (truncated) {
        if (!c->cut_mode || rlen <= c->max)
            abort();
        /* first `max` bytes, one final CR dropped */
        size_t want = c->max;
        if (want > 0 && ref[want - 1] == '\r')
            want--;
        if (len != want || memcmp(line, ref, len) != 0)
            abort();
    } else {
        if (rlen > c->max)
            abort(); /* an over-long line was delivered whole */
        size_t want = rlen;
        if (want > 0 && ref[want - 1] == '\r')
            want--;
        if (len != want || memcmp(line, ref, len) != 0)
            abort();
    }
    c->pos = after;
}

static void on_overlong(void *p, size_t len, int have_id, int64_t id)
{
    ctx_t *c = p;
    size_t start, rlen, after;
    int complete;
    if (c->cut_mode || !next_ref(c, &start, &rlen, &after, &complete))
        abort();
    if (rlen <= c->max || len != rlen)
        abort();
    const char *ref = c->in + start;
    json_error_t e;
    json_t *v = json_loadb(ref, rlen, JSON_DECODE_ANY, &e);
    json_t *jid = json_object_get(v, "id");
    /* Compare only the unambiguous case: one "id" key spelled plainly, a small integer. */
    if (json_is_integer(jid) && memmem(ref, rlen, "\"id\"", 4) != NULL) {
        const char *first = memmem(ref, rlen, "\"id\"", 4);
        int single = memmem(first + 4, rlen - (size_t)(first + 4 - ref), "\"id\"", 4) == NULL &&
                     memchr(ref, '\\', rlen) == NULL;
        json_int_t want = json_integer_value(jid);
        if (single && want > -100000000000000000LL && want < 100000000000000000LL && (!have_id || id != want))
            abort(); /* the scanner missed or misread the id of an over-long response */
    }
    json_decref(v);
    c->pos = after;
}

static const mg__line_ops_t ops = {on_line, on_overlong};

static int valid_utf8(const char *s)
{
    json_t *j = json_string(s); /* jansson validates UTF-8 */
    int ok = j != NULL;
    json_decref(j);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 1 << 16)
        return 0;
    ctx_t c = {(const char *)data + 2, size - 2, 0, (size_t)(data[0] & 0x7f) + 1, data[0] >> 7, 0};
    size_t chunk = (size_t)data[1] + 1;
    mg__linebuf_t lb;
    mg__linebuf_init(&lb, c.max, c.cut_mode);
    for (size_t off = 0; off < c.inlen; off += chunk) {
        size_t n = c.inlen - off < chunk ? c.inlen - off : chunk;
        /* a fresh heap copy per read, as libuv hands a buffer that is reused afterwards */
        char *b = malloc(n);
        memcpy(b, c.in + off, n);
        mg__linebuf_feed(&lb, b, n, &ops, &c);
        memset(b, 0xAA, n);
        free(b);
    }
    c.finished = 1;
    mg__linebuf_finish(&lb, &ops, &c);
    mg__linebuf_dispose(&lb);
    if (c.pos != c.inlen)
        abort(); /* bytes that never came out as a line */

    int cut = 0;
    char *clean = mg__utf8_clean(c.in, c.inlen, 200, &cut);
    if (clean == NULL || !valid_utf8(clean) || cut != (c.inlen > 200))
        abort();
    free(clean);

    mg__idscan_t s;
    mg__idscan_init(&s);
    mg__idscan_feed(&s, c.in, c.inlen);
    int64_t id;
    (void)mg__idscan_result(&s, &id);
    return 0;
}
