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
#include "../common/json.h"

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

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static json_t *u64_string(uint64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    return json_string(b);
}

mg_span_t *mg_span_start(mg_trace_t *t, const char *name, mg_span_kind_t kind, const mg_span_t *parent,
                         const mg_trace_ctx_t *remote)
{
    if (t == NULL || t->freeing)
        return NULL;
    if (parent == NULL && remote != NULL && !(remote->flags & 1))
        return NULL; /* the caller decided not to sample this trace */
    if (parent == NULL && remote == NULL && !t->ratio_all && next_rand(t) >= t->ratio_bound)
        return NULL;
    mg_span_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->t = t;
    uint64_t id = next_rand(t);
    memcpy(s->span_id, &id, 8);
    if (s->span_id[0] == 0 && id == 0)
        s->span_id[0] = 1;
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
    char tid[33], sid[17], psid[17];
    mg_hex_encode(s->trace_id, 16, tid);
    mg_hex_encode(s->span_id, 8, sid);
    s->json = json_object();
    s->attrs = json_array();
    if (s->json == NULL || s->attrs == NULL) {
        json_decref(s->json);
        json_decref(s->attrs);
        free(s);
        return NULL;
    }
    json_object_set_new(s->json, "traceId", json_string(tid));
    json_object_set_new(s->json, "spanId", json_string(sid));
    if (pid != NULL) {
        mg_hex_encode(pid, 8, psid);
        json_object_set_new(s->json, "parentSpanId", json_string(psid));
    }
    if (state != NULL) {
        s->state = strdup(state);
        json_object_set_new(s->json, "traceState", json_string(state));
    }
    json_object_set_new(s->json, "name", json_string(name ? name : ""));
    json_object_set_new(s->json, "kind", json_integer(kind));
    json_object_set_new(s->json, "startTimeUnixNano", u64_string(now_ns()));
    json_object_set_new(s->json, "attributes", s->attrs);
    t->spans_started++;
    return s;
}

void mg_span_set_str(mg_span_t *s, const char *key, const char *value)
{
    if (s == NULL || key == NULL || value == NULL)
        return;
    json_t *v = json_string(value);
    if (v == NULL) /* not UTF-8: say so rather than drop the key */
        v = json_string("(not UTF-8)");
    json_array_append_new(s->attrs, json_pack("{s:s,s:{s:o}}", "key", key, "value", "stringValue", v));
}

void mg_span_set_int(mg_span_t *s, const char *key, long long value)
{
    if (s == NULL || key == NULL)
        return;
    char b[24];
    snprintf(b, sizeof b, "%lld", value);
    json_array_append_new(s->attrs, json_pack("{s:s,s:{s:s}}", "key", key, "value", "intValue", b));
}

void mg_span_set_error(mg_span_t *s, const char *description)
{
    if (s == NULL)
        return;
    json_t *st = json_pack("{s:i}", "code", 2);
    json_t *m = description != NULL ? json_string(description) : NULL;
    if (m != NULL)
        json_object_set_new(st, "message", m);
    json_object_set_new(s->json, "status", st);
}

void mg_span_end(mg_span_t *s)
{
    if (s == NULL)
        return;
    json_object_set_new(s->json, "endTimeUnixNano", u64_string(now_ns()));
    mg__trace_queue(s->t, s->json);
    free(s->state);
    free(s);
}

int mg_span_traceparent(const mg_span_t *s, char *out, size_t cap)
{
    if (s == NULL || cap < MG_TRACEPARENT_LEN + 1)
        return 0;
    char tid[33], sid[17];
    mg_hex_encode(s->trace_id, 16, tid);
    mg_hex_encode(s->span_id, 8, sid);
    snprintf(out, cap, "00-%s-%s-01", tid, sid);
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
