/*
 * trace.c - W3C trace context (traceparent / tracestate), spans and the sampler (trace.h).
 *
 * Sampling is parent-based: a child of a local span is sampled (its parent exists only when
 * sampled); a child of a remote context follows its sampled flag; a new trace is sampled with
 * gateway.tracing.sampleRatio. Ids come from a xorshift128+ generator seeded from the CSPRNG: they
 * must be unique and unpredictable enough for correlation, not secrets.
 * Read next: trace_int.h (the span's OTLP form), export.c.
 */
#include "trace_int.h"
#include "../common/codec.h"
#include "../common/err.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- context ---- */

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Lowercase hex of exactly 2n characters into out[n]; 0 when malformed or all zero. */
static int parse_hex(const char *p, size_t n, uint8_t *out)
{
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval((unsigned char)p[2 * i]), lo = hexval((unsigned char)p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        out[i] = (uint8_t)(hi << 4 | lo);
        nonzero |= out[i];
    }
    return nonzero != 0;
}

int mg_trace_ctx_parse(const char *tp, size_t len, const char *ts, size_t slen, mg_trace_ctx_t *out)
{
    /* version "-" trace-id "-" parent-id "-" flags; a later version may append "-" fields. */
    if (tp == NULL || len < MG_TRACEPARENT_LEN || tp[2] != '-' || tp[35] != '-' || tp[52] != '-')
        return MG_EINVAL;
    uint8_t ver;
    if (hexval((unsigned char)tp[0]) < 0 || hexval((unsigned char)tp[1]) < 0)
        return MG_EINVAL;
    ver = (uint8_t)(hexval((unsigned char)tp[0]) << 4 | hexval((unsigned char)tp[1]));
    if (ver == 0xff || (ver == 0 && len != MG_TRACEPARENT_LEN) ||
        (ver > 0 && len > MG_TRACEPARENT_LEN && tp[MG_TRACEPARENT_LEN] != '-'))
        return MG_EINVAL;
    if (!parse_hex(tp + 3, 16, out->trace_id) || !parse_hex(tp + 36, 8, out->span_id))
        return MG_EINVAL;
    int hi = hexval((unsigned char)tp[53]), lo = hexval((unsigned char)tp[54]);
    if (hi < 0 || lo < 0)
        return MG_EINVAL;
    out->flags = (uint8_t)(hi << 4 | lo);
    out->state[0] = '\0';
    /* tracestate is passed on verbatim when it is printable and fits; otherwise dropped. */
    if (ts != NULL && slen > 0 && slen <= MG_TRACESTATE_MAX) {
        size_t i = 0;
        while (i < slen && ts[i] >= 0x20 && ts[i] < 0x7f)
            i++;
        if (i == slen) {
            memcpy(out->state, ts, slen);
            out->state[slen] = '\0';
        }
    }
    return 0;
}

/* ---- the tracer ---- */

static void hexpair_init(void);

static uint64_t next_rand(mg_trace_t *t)
{
    uint64_t s1 = t->rng[0];
    const uint64_t s0 = t->rng[1];
    t->rng[0] = s0;
    s1 ^= s1 << 23;
    t->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return t->rng[1] + s0;
}

int mg_trace_new(uv_loop_t *loop, const char *endpoint, double ratio, mg_trace_t **out)
{
    mg_trace_t *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->endpoint = strdup(endpoint)) == NULL) {
        free(t);
        return MG_ENOMEM;
    }
    t->loop = loop;
    hexpair_init();
    if (RAND_bytes((unsigned char *)t->rng, sizeof t->rng) != 1 || (t->rng[0] | t->rng[1]) == 0)
        t->rng[0] = (uint64_t)time(NULL) | 1;
    t->ratio_all = ratio >= 1.0;
    t->ratio_bound = ratio <= 0.0   ? 0
                     : ratio >= 1.0 ? UINT64_MAX
                                    : (uint64_t)(ratio * 18446744073709551616.0);
    int r = mg__trace_export_init(t);
    if (r != 0) {
        free(t->endpoint);
        free(t);
        return r;
    }
    *out = t;
    return 0;
}

void mg_trace_free(mg_trace_t *t)
{
    if (t == NULL)
        return;
    mg__trace_export_dispose(t); /* frees t from the timer's close callback */
}

/* ---- spans ---- */

uint64_t mg_trace_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Writing a span's text. Spans are written on every sampled call, so the common case takes a fast
 * path: the fixed parts are literals of known length copied into room reserved once (room()), ids
 * go through a byte-pair hex table, numbers are formatted by hand, and a value that is plain ASCII
 * is copied without going through the escaper. Anything else (a value to escape or validate as
 * UTF-8, text beyond the span's inline storage) takes mg_jbuf's general path.
 */
#define LIT(o, s) (memcpy((o), (s), sizeof(s) - 1), (o) + sizeof(s) - 1)

static char hexpair[256][2];     /* "00".."ff", filled by mg_trace_new() */
static unsigned char plain[256]; /* 1: printable ASCII other than '"' and '\\' (copied as is) */

static void hexpair_init(void)
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 256; i++) {
        hexpair[i][0] = d[i >> 4];
        hexpair[i][1] = d[i & 15];
        plain[i] = i >= 0x20 && i < 0x80 && i != '"' && i != '\\';
    }
}

/* Direct room for n more bytes at the end of b's text (its own spare bytes kept), grown when needed;
 * NULL when it cannot be (b->err is set: the span is dropped at its end). */
static inline char *room(mg_jbuf_t *b, size_t n)
{
    if (b->err == 0 && b->len + n + 2 <= b->cap && b->len + n <= b->max)
        return b->p + b->len;
    return mg_jbuf_reserve(b, n) == 0 ? b->p + b->len : NULL; /* NULL: err set (too long, no memory) */
}

static inline void done(mg_jbuf_t *b, const char *o)
{
    b->len = (size_t)(o - b->p);
}

/* An id as a quoted lowercase hex string. */
static inline char *put_hex(char *o, const uint8_t *id, size_t n)
{
    *o++ = '"';
    for (size_t i = 0; i < n; i++, o += 2)
        memcpy(o, hexpair[id[i]], 2);
    *o++ = '"';
    return o;
}

/* A uint64 as a quoted decimal string (OTLP/JSON's int64 and fixed64), two digits at a time. */
static inline char *put_u64(char *o, uint64_t v)
{
    static const char pairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    char tmp[20];
    size_t n = 0;
    while (v >= 100) {
        n += 2;
        memcpy(tmp + sizeof tmp - n, pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10) {
        n += 2;
        memcpy(tmp + sizeof tmp - n, pairs + 2 * v, 2);
    } else {
        tmp[sizeof tmp - ++n] = (char)('0' + v);
    }
    *o++ = '"';
    memcpy(o, tmp + sizeof tmp - n, n);
    o += n;
    *o++ = '"';
    return o;
}

/* A JSON string: copied with its quotes when plain printable ASCII without '"' or '\\' and room
 * remains, else through the escaper (which also validates UTF-8). */
static void put_str(mg_jbuf_t *b, const char *v, size_t n)
{
    char *o = room(b, n + 2);
    if (o != NULL) {
        size_t i = 0;
        while (i < n && plain[(unsigned char)v[i]])
            i++;
        if (i == n) {
            *o++ = '"';
            memcpy(o, v, n);
            o[n] = '"';
            done(b, o + n + 1);
            return;
        }
    }
    mg_jbuf_put_str(b, v, n);
}

/* The most bytes start() writes besides name and tracestate. */
#define START_FIXED 200

/* A span from the tracer's free list (spans are reused: one is started per phase of every sampled
 * call), else the heap. */
static mg_span_t *span_alloc(mg_trace_t *t)
{
    mg_span_t *s = t->free_spans;
    if (s != NULL) {
        t->free_spans = s->next_free;
        t->nfree--;
        return s;
    }
    return malloc(sizeof(*s));
}

static void span_release(mg_span_t *s)
{
    mg_trace_t *t = s->t;
    mg_jbuf_dispose(&s->b);
    if (t->nfree < MG__TRACE_FREE_SPANS && !t->freeing) {
        s->next_free = t->free_spans;
        t->free_spans = s;
        t->nfree++;
    } else {
        free(s);
    }
}

void mg__trace_free_spans(mg_trace_t *t)
{
    while (t->free_spans != NULL) {
        mg_span_t *s = t->free_spans;
        t->free_spans = s->next_free;
        free(s);
    }
    t->nfree = 0;
}

mg_span_t *mg_span_start_at(mg_trace_t *t, const char *name, mg_span_kind_t kind, const mg_span_t *parent,
                            const mg_trace_ctx_t *remote, uint64_t start_ns)
{
    if (t == NULL || t->freeing)
        return NULL;
    if (parent == NULL && remote != NULL && !(remote->flags & 1))
        return NULL; /* the caller decided not to sample this trace */
    if (parent == NULL && remote == NULL && !t->ratio_all && next_rand(t) >= t->ratio_bound)
        return NULL;
    mg_span_t *s = span_alloc(t);
    if (s == NULL)
        return NULL;
    s->t = t;
    s->nattrs = 0;
    s->state = s->error = NULL;
    uint64_t id = next_rand(t) | 1; /* never all zero */
    memcpy(s->span_id, &id, 8);
    const uint8_t *pid = NULL;
    const char *state = NULL;
    if (parent != NULL) {
        memcpy(s->trace_id, parent->trace_id, 16);
        pid = parent->span_id;
        state = parent->state;
    } else if (remote != NULL) {
        memcpy(s->trace_id, remote->trace_id, 16);
        pid = remote->span_id;
        state = remote->state[0] ? remote->state : NULL;
    } else {
        uint64_t a = next_rand(t), b = next_rand(t) | 1;
        memcpy(s->trace_id, &a, 8);
        memcpy(s->trace_id + 8, &b, 8);
    }
    mg_jbuf_t *b = &s->b;
    mg_jbuf_init(b, s->inl, sizeof s->inl, MG__TRACE_SPAN_MAX);
    char *o = b->p; /* inline storage: room for START_FIXED */
    o = LIT(o, "{\"traceId\":");
    o = put_hex(o, s->trace_id, 16);
    o = LIT(o, ",\"spanId\":");
    o = put_hex(o, s->span_id, 8);
    if (pid != NULL) {
        o = LIT(o, ",\"parentSpanId\":");
        o = put_hex(o, pid, 8);
    }
    if (state != NULL) {
        s->state = strdup(state);
        o = LIT(o, ",\"traceState\":");
    }
    done(b, o);
    if (state != NULL)
        put_str(b, state, strlen(state));
    size_t nlen = name ? strlen(name) : 0;
    if ((o = room(b, 9)) != NULL) {
        o = LIT(o, ",\"name\":");
        done(b, o);
    }
    put_str(b, name ? name : "", nlen);
    if ((o = room(b, 80)) != NULL) {
        o = LIT(o, ",\"kind\":");
        *o++ = (char)('0' + kind % 10);
        o = LIT(o, ",\"startTimeUnixNano\":");
        o = put_u64(o, start_ns ? start_ns : mg_trace_now_ns());
        o = LIT(o, ",\"attributes\":[");
        done(b, o);
    }
    t->spans_started++;
    return s;
}

mg_span_t *mg_span_start(mg_trace_t *t, const char *name, mg_span_kind_t kind, const mg_span_t *parent,
                         const mg_trace_ctx_t *remote)
{
    return mg_span_start_at(t, name, kind, parent, remote, 0);
}

/* Keys are the callers' ASCII constants (semantic-convention names): written as they are, with the
 * value's opening (kind: "stringValue" or "intValue"). NULL when there is no room (err set). */
static char *attr_open(mg_span_t *s, const char *key, size_t extra, int is_int)
{
    size_t klen = strlen(key);
    char *o = room(&s->b, klen + 40 + extra);
    if (o == NULL)
        return NULL;
    if (s->nattrs++)
        *o++ = ',';
    o = LIT(o, "{\"key\":\"");
    memcpy(o, key, klen);
    o += klen;
    if (is_int)
        o = LIT(o, "\",\"value\":{\"intValue\":");
    else
        o = LIT(o, "\",\"value\":{\"stringValue\":");
    return o;
}

void mg_span_set_str(mg_span_t *s, const char *key, const char *value)
{
    if (s == NULL || key == NULL || value == NULL)
        return;
    mg_jbuf_t *b = &s->b;
    char *o = attr_open(s, key, 0, 0);
    if (o == NULL)
        return;
    done(b, o);
    put_str(b, value, strlen(value)); /* not UTF-8: the span is dropped at its end */
    if ((o = room(b, 2)) != NULL)
        done(b, LIT(o, "}}"));
}

void mg_span_set_int(mg_span_t *s, const char *key, long long value)
{
    if (s == NULL || key == NULL)
        return;
    char *o = attr_open(s, key, 24, 1);
    if (o == NULL)
        return;
    char *q = o; /* int64 as a signed, quoted decimal string (OTLP/JSON) */
    o = put_u64(o, value < 0 ? 0 - (uint64_t)value : (uint64_t)value);
    if (value < 0) { /* the sign goes after the opening quote */
        memmove(q + 2, q + 1, (size_t)(o - q - 1));
        q[1] = '-';
        o++;
    }
    done(&s->b, LIT(o, "}}"));
}

void mg_span_set_error(mg_span_t *s, const char *description)
{
    if (s == NULL)
        return;
    free(s->error);
    s->error = strdup(description ? description : "");
}

void mg_span_end(mg_span_t *s)
{
    if (s == NULL)
        return;
    mg_jbuf_t *b = &s->b;
    char *o = room(b, 48);
    if (o != NULL) {
        o = LIT(o, "],\"endTimeUnixNano\":");
        o = put_u64(o, mg_trace_now_ns());
        done(b, o);
    }
    if (s->error != NULL) {
        static const char st[] = ",\"status\":{\"code\":2,\"message\":";
        mg_jbuf_put(b, st, sizeof st - 1);
        put_str(b, s->error, strlen(s->error));
        mg_jbuf_put(b, "}", 1);
    }
    mg_jbuf_put(b, "}", 1);
    /* b->err: too long, not UTF-8 or no memory (dropped and counted) */
    mg__trace_queue(s->t, b->err ? NULL : b->p, b->len);
    free(s->error);
    free(s->state);
    span_release(s);
}

int mg_span_traceparent(const mg_span_t *s, char *out, size_t cap)
{
    if (s == NULL || cap < MG_TRACEPARENT_LEN + 1)
        return 0;
    memcpy(out, "00-", 3);
    mg_hex_encode(s->trace_id, 16, out + 3);
    out[35] = '-';
    mg_hex_encode(s->span_id, 8, out + 36);
    memcpy(out + 52, "-01", 4);
    return 1;
}

const char *mg_span_tracestate(const mg_span_t *s)
{
    return s != NULL ? s->state : NULL;
}

int mg_span_trace_id(const mg_span_t *s, char out[33])
{
    if (s == NULL)
        return 0;
    mg_hex_encode(s->trace_id, 16, out);
    return 1;
}

int mg_span_context(const mg_span_t *s, mg_trace_ctx_t *out)
{
    if (s == NULL)
        return 0;
    memcpy(out->trace_id, s->trace_id, 16);
    memcpy(out->span_id, s->span_id, 8);
    out->flags = 1;
    size_t n = s->state ? strlen(s->state) : 0; /* a remote tracestate: at most MG_TRACESTATE_MAX */
    if (n >= sizeof out->state)
        n = 0;
    memcpy(out->state, s->state ? s->state : "", n);
    out->state[n] = '\0';
    return 1;
}
