/*
 * trace.c - W3C trace context (traceparent / tracestate), spans and the sampler (trace.h).
 *
 * Sampling is parent-based: a child of a local span is sampled (its parent exists only when
 * sampled); a child of a remote context follows its sampled flag; a new trace is sampled with
 * gateway.tracing.sampleRatio. Ids come from a xorshift128+ generator seeded from the CSPRNG: they
 * must be unique and unpredictable enough for correlation, not secrets.
 * Read next: span_rec.h (the record a span becomes), export.c.
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
    mg__span_rec_tables_init();
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
 * Writing a span's record (span_rec.h). Spans are written on every sampled call: the header's
 * fields are set in place, and each attribute is a few bytes of type and length plus two copies
 * (key, value) into the span's inline storage. A value is looked at once: plain ASCII is marked so
 * (the JSON encoder copies it as is), anything else is checked as UTF-8 here.
 */

/* 1: plain ASCII (no escape needed), 0: other UTF-8, -1: not UTF-8. */
static int text_class(const char *v, size_t n)
{
    size_t i = 0;
    while (i < n && mg__span_plain[(unsigned char)v[i]])
        i++;
    if (i == n)
        return 1;
    return mg_json_utf8_valid(v + i, n - i) ? 0 : -1;
}

/* Direct room for n more bytes at the end of b's data, grown when needed; NULL when it cannot be
 * (b->err is set: the span is dropped at its end). */
static inline char *room(mg_jbuf_t *b, size_t n)
{
    if (b->err == 0 && b->len + n + 2 <= b->cap && b->len + n <= b->max)
        return b->p + b->len;
    if (b->err == 0 && b->len + n > b->max)
        b->err = MG_ETOOBIG;
    return mg_jbuf_reserve(b, n) == 0 ? b->p + b->len : NULL;
}

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
    s->bad = 0;
    s->state = s->error = NULL;
    s->error_len = 0;
    mg__span_rec_t *h = &s->h;
    h->nattrs = 0;
    h->has_parent = 0;
    h->kind = (uint8_t)kind;
    uint64_t id = next_rand(t) | 1; /* never all zero */
    memcpy(h->span_id, &id, 8);
    const char *state = NULL;
    if (parent != NULL) {
        memcpy(h->trace_id, parent->h.trace_id, 16);
        memcpy(h->parent_id, parent->h.span_id, 8);
        h->has_parent = 1;
        state = parent->state;
    } else if (remote != NULL) {
        memcpy(h->trace_id, remote->trace_id, 16);
        memcpy(h->parent_id, remote->span_id, 8);
        h->has_parent = 1;
        state = remote->state[0] ? remote->state : NULL;
    } else {
        uint64_t a = next_rand(t), b = next_rand(t) | 1;
        memcpy(h->trace_id, &a, 8);
        memcpy(h->trace_id + 8, &b, 8);
    }
    h->start_ns = start_ns ? start_ns : mg_trace_now_ns();
    if (name == NULL)
        name = "";
    size_t nlen = strlen(name), slen = state ? strlen(state) : 0;
    mg_jbuf_init(&s->b, s->inl, sizeof s->inl, MG__TRACE_SPAN_MAX);
    char *o = room(&s->b, nlen + slen);
    if (o != NULL) {
        memcpy(o, name, nlen);
        if (state != NULL) /* (memcpy's arguments are never NULL) */
            memcpy(o + nlen, state, slen);
        s->b.len += nlen + slen;
    }
    h->name_len = (uint32_t)nlen;
    h->state_len = (uint32_t)slen;
    if (state != NULL && (s->state = strdup(state)) == NULL)
        s->b.err = MG_ENOMEM;
    s->bad = text_class(name, nlen) < 0; /* tracestate: printable ASCII (mg_trace_ctx_parse) */
    t->spans_started++;
    return s;
}

mg_span_t *mg_span_start(mg_trace_t *t, const char *name, mg_span_kind_t kind, const mg_span_t *parent,
                         const mg_trace_ctx_t *remote)
{
    return mg_span_start_at(t, name, kind, parent, remote, 0);
}

/* Opens an attribute in b (a span's record data, or a set's): its type and key, with room for vlen
 * more bytes of value, counted in *nattrs. Returns where the value goes, or NULL: a key too long
 * (*bad set), or no room (b->err set). Either way the span is dropped at its end. */
static char *attr_open(mg_jbuf_t *b, uint32_t *nattrs, int *bad, char type, const char *key, size_t klen,
                       size_t vlen)
{
    if (klen > UINT16_MAX) {
        *bad = 1;
        return NULL;
    }
    char *o = room(b, 3 + klen + vlen);
    if (o == NULL)
        return NULL;
    uint16_t k16 = (uint16_t)klen;
    o[0] = type;
    memcpy(o + 1, &k16, 2);
    memcpy(o + 3, key, klen);
    (*nattrs)++;
    return o + 3 + klen;
}

/* A string attribute into b (see attr_open); a value that is not UTF-8 sets *bad instead. */
static void attr_str(mg_jbuf_t *b, uint32_t *nattrs, int *bad, const char *key, size_t klen,
                     const char *value)
{
    /* Its length and text_class() in one pass for the usual plain value (NUL is not plain: the
     * scan stops there or at the first byte to look at closer). */
    size_t n = 0;
    while (mg__span_plain[(unsigned char)value[n]])
        n++;
    int cls = 1;
    if (value[n] != '\0') {
        n += strlen(value + n);
        cls = text_class(value, n);
    }
    if (cls < 0) {
        *bad = 1; /* not UTF-8: the span is dropped at its end */
        return;
    }
    char *o = attr_open(b, nattrs, bad, cls ? 's' : 'e', key, klen, 4 + n);
    if (o == NULL)
        return;
    uint32_t n32 = (uint32_t)n;
    memcpy(o, &n32, 4);
    memcpy(o + 4, value, n);
    b->len = (size_t)(o + 4 + n - b->p);
}

void mg__span_set_strn(mg_span_t *s, const char *key, size_t klen, const char *value)
{
    if (s == NULL || key == NULL || value == NULL)
        return;
    attr_str(&s->b, &s->h.nattrs, &s->bad, key, klen, value);
}

/* A set of string attributes as the record bytes mg_span_set_str writes for each, in order. */
struct mg_span_attrs {
    uint32_t nattrs;
    int bad; /* a value not UTF-8, or a key too long: a span given this set is dropped */
    size_t len;
    char data[];
};

mg_span_attrs_t *mg_span_attrs_new(const char *const *kv, size_t n)
{
    mg_jbuf_t b;
    mg_jbuf_init(&b, NULL, 0, MG__TRACE_SPAN_MAX);
    uint32_t nattrs = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (kv[2 * i] != NULL && kv[2 * i + 1] != NULL)
            attr_str(&b, &nattrs, &bad, kv[2 * i], strlen(kv[2 * i]), kv[2 * i + 1]);
    mg_span_attrs_t *a = b.err == 0 ? malloc(sizeof *a + b.len) : NULL;
    if (a != NULL) {
        a->nattrs = nattrs;
        a->bad = bad;
        a->len = b.len;
        if (b.len > 0)
            memcpy(a->data, b.p, b.len);
    }
    mg_jbuf_dispose(&b);
    return a;
}

void mg_span_attrs_free(mg_span_attrs_t *a)
{
    free(a);
}

void mg_span_add_attrs(mg_span_t *s, const mg_span_attrs_t *a)
{
    if (s == NULL)
        return;
    if (a == NULL || a->bad) {
        s->bad = 1; /* as a value set one by one that could not be written */
        return;
    }
    char *o = room(&s->b, a->len);
    if (o == NULL)
        return;
    memcpy(o, a->data, a->len);
    s->b.len += a->len;
    s->h.nattrs += a->nattrs;
}

void mg_span_set_int(mg_span_t *s, const char *key, long long value)
{
    if (s == NULL || key == NULL)
        return;
    char *o = attr_open(&s->b, &s->h.nattrs, &s->bad, 'i', key, strlen(key), 8);
    if (o == NULL)
        return;
    int64_t v = (int64_t)value;
    memcpy(o, &v, 8);
    s->b.len = (size_t)(o + 8 - s->b.p);
}

void mg_span_set_error(mg_span_t *s, const char *description)
{
    if (s == NULL)
        return;
    free(s->error);
    s->error = strdup(description ? description : "");
    s->error_len = s->error ? strlen(s->error) : 0;
    if (s->error == NULL)
        s->b.err = MG_ENOMEM;
}

void mg_span_end(mg_span_t *s)
{
    if (s != NULL)
        mg_span_end_at(s, mg_trace_now_ns());
}

void mg_span_end_at(mg_span_t *s, uint64_t end_ns)
{
    if (s == NULL)
        return;
    s->h.end_ns = end_ns;
    if (s->error != NULL) {
        s->h.has_error = 1;
        s->h.error_len = (uint32_t)s->error_len;
        if (text_class(s->error, s->error_len) < 0 || s->b.len + s->error_len > MG__TRACE_SPAN_MAX)
            s->bad = 1;
    } else {
        s->h.has_error = 0;
        s->h.error_len = 0;
    }
    mg__trace_queue(s->t, s); /* s->bad, s->b.err: dropped and counted */
    free(s->error);
    free(s->state);
    span_release(s);
}

int mg_span_traceparent(const mg_span_t *s, char *out, size_t cap)
{
    if (s == NULL || cap < MG_TRACEPARENT_LEN + 1)
        return 0;
    memcpy(out, "00-", 3);
    mg_hex_encode(s->h.trace_id, 16, out + 3);
    out[35] = '-';
    mg_hex_encode(s->h.span_id, 8, out + 36);
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
    mg_hex_encode(s->h.trace_id, 16, out);
    return 1;
}

int mg_span_context(const mg_span_t *s, mg_trace_ctx_t *out)
{
    if (s == NULL)
        return 0;
    memcpy(out->trace_id, s->h.trace_id, 16);
    memcpy(out->span_id, s->h.span_id, 8);
    out->flags = 1;
    size_t n = s->state ? strlen(s->state) : 0; /* a remote tracestate: at most MG_TRACESTATE_MAX */
    if (n >= sizeof out->state)
        n = 0;
    memcpy(out->state, s->state ? s->state : "", n);
    out->state[n] = '\0';
    return 1;
}
