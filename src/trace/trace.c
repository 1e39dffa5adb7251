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

static void put_lit(mg_jbuf_t *b, const char *lit)
{
    mg_jbuf_put(b, lit, strlen(lit));
}

/* An id as a quoted lowercase hex string (ASCII: no escaping to check). */
static void put_hex(mg_jbuf_t *b, const uint8_t *id, size_t n)
{
    char h[36];
    h[0] = '"';
    mg_hex_encode(id, n, h + 1);
    h[2 * n + 1] = '"';
    mg_jbuf_put(b, h, 2 * n + 2);
}

static void put_nanos(mg_jbuf_t *b, uint64_t ns)
{
    mg_jbuf_put(b, "\"", 1);
    mg_jbuf_put_int(b, (int64_t)ns);
    mg_jbuf_put(b, "\"", 1);
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
    mg_span_t *s = malloc(sizeof(*s));
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
    put_lit(b, "{\"traceId\":");
    put_hex(b, s->trace_id, 16);
    put_lit(b, ",\"spanId\":");
    put_hex(b, s->span_id, 8);
    if (pid != NULL) {
        put_lit(b, ",\"parentSpanId\":");
        put_hex(b, pid, 8);
    }
    if (state != NULL) {
        s->state = strdup(state);
        put_lit(b, ",\"traceState\":");
        mg_jbuf_put_str(b, state, strlen(state));
    }
    put_lit(b, ",\"name\":");
    mg_jbuf_put_str(b, name ? name : "", name ? strlen(name) : 0);
    put_lit(b, ",\"kind\":");
    mg_jbuf_put_int(b, kind);
    put_lit(b, ",\"startTimeUnixNano\":");
    put_nanos(b, start_ns ? start_ns : mg_trace_now_ns());
    put_lit(b, ",\"attributes\":[");
    t->spans_started++;
    return s;
}

mg_span_t *mg_span_start(mg_trace_t *t, const char *name, mg_span_kind_t kind, const mg_span_t *parent,
                         const mg_trace_ctx_t *remote)
{
    return mg_span_start_at(t, name, kind, parent, remote, 0);
}

/* Keys are the callers' ASCII constants (semantic-convention names): written as they are. */
static void attr_key(mg_span_t *s, const char *key)
{
    put_lit(&s->b, s->nattrs++ ? ",{\"key\":\"" : "{\"key\":\"");
    put_lit(&s->b, key);
    mg_jbuf_put(&s->b, "\"", 1);
}

void mg_span_set_str(mg_span_t *s, const char *key, const char *value)
{
    if (s == NULL || key == NULL || value == NULL)
        return;
    attr_key(s, key);
    put_lit(&s->b, ",\"value\":{\"stringValue\":");
    mg_jbuf_put_str(&s->b, value, strlen(value)); /* not UTF-8: the span is dropped at its end */
    put_lit(&s->b, "}}");
}

void mg_span_set_int(mg_span_t *s, const char *key, long long value)
{
    if (s == NULL || key == NULL)
        return;
    attr_key(s, key);
    put_lit(&s->b, ",\"value\":{\"intValue\":");
    put_nanos(&s->b, (uint64_t)value); /* int64 as a decimal string (OTLP/JSON) */
    put_lit(&s->b, "}}");
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
    put_lit(b, "],\"endTimeUnixNano\":");
    put_nanos(b, mg_trace_now_ns());
    if (s->error != NULL) {
        put_lit(b, ",\"status\":{\"code\":2,\"message\":");
        mg_jbuf_put_str(b, s->error, strlen(s->error));
        put_lit(b, "}");
    }
    put_lit(b, "}");
    size_t len = 0;
    char *text = mg_jbuf_steal(b, &len); /* NULL: too long, not UTF-8 or no memory */
    mg__trace_queue(s->t, text, len);
    free(s->error);
    free(s->state);
    free(s);
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
    snprintf(out->state, sizeof out->state, "%s", s->state ? s->state : "");
    return 1;
}
