/*
 * log.c - JSON log lines (see log.h). Time is RFC 3339 UTC with milliseconds.
 */
#include "log.h"
#include "err.h"
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static mg_log_level_t min_level = MG_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void mg_log_set_level(mg_log_level_t level)
{
    min_level = level;
}

int mg_log_level_parse(const char *s, mg_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (mg_log_level_t)i;
            return 0;
        }
    }
    return MG_EINVAL;
}

int mg_log_enabled(mg_log_level_t level)
{
    return level >= min_level;
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (24 bytes + NUL); the part before the milliseconds is computed
 * once per second. */
static void timestamp(char out[32])
{
    static time_t cached_sec = (time_t)-1;
    static char cached[24];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    if (tv.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        if (strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
            cached[0] = '\0';
        cached_sec = tv.tv_sec;
    }
    size_t n = strlen(cached);
    memcpy(out, cached, n);
    unsigned ms = (unsigned)(tv.tv_usec / 1000);
    out[n] = '.';
    out[n + 1] = (char)('0' + ms / 100);
    out[n + 2] = (char)('0' + ms / 10 % 10);
    out[n + 3] = (char)('0' + ms % 10);
    out[n + 4] = 'Z';
    out[n + 5] = '\0';
}

/* Deferred mode (mg_log_defer): whole lines wait here until mg_log_flush(), so that the lines of
 * one loop iteration cost one write(2) instead of one each (the access log line was one syscall
 * per request). */
#define DEFER_CAP (64u * 1024u)
static int deferred;
static char pending[DEFER_CAP];
static size_t npending;

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w <= 0)
            return; /* stderr closed or full: the line is lost, as before */
        p += w;
        n -= (size_t)w;
    }
}

void mg_log_flush(void)
{
    size_t n = npending;
    npending = 0;
    if (n > 0)
        write_all(pending, n);
}

void mg_log_defer(int on)
{
    if (!on)
        mg_log_flush();
    deferred = on;
}

/* Writes b's line (plus "\n"): with one write(2), or appended to the deferred lines (warnings
 * and errors are written at once, after what waits, in order). */
static void emit_bytes(const char *p, size_t len, mg_log_level_t level)
{
    if (deferred && level < MG_LOG_WARN && len <= DEFER_CAP) {
        if (npending + len > DEFER_CAP)
            mg_log_flush();
        memcpy(pending + npending, p, len);
        npending += len;
    } else {
        mg_log_flush();
        write_all(p, len);
    }
}

static void emit(mg_jbuf_t *b, mg_log_level_t level)
{
    mg_jbuf_put(b, "}\n", 2);
    if (b->err == 0)
        emit_bytes(b->p, b->len, level);
    mg_jbuf_dispose(b);
}

/* Opens a line: {"time":..,"level":..,"msg":.. as mg_log_json always wrote them. A value in
 * `fields` under one of those keys takes its place (json_object_update semantics); a msg that is
 * not valid UTF-8 is left out (json_string() refused it). */
static void open_line(mg_jbuf_t *b, mg_log_level_t level, const char *msg, const json_t *fields)
{
    char ts[32];
    timestamp(ts);
    const json_t *f_time = fields ? json_object_get(fields, "time") : NULL;
    const json_t *f_level = fields ? json_object_get(fields, "level") : NULL;
    const json_t *f_msg = fields ? json_object_get(fields, "msg") : NULL;
    mg_jbuf_put(b, "{\"time\":", 8);
    if (f_time != NULL)
        mg_jbuf_put_json(b, f_time);
    else
        mg_jbuf_put_str(b, ts, strlen(ts));
    mg_jbuf_put(b, ",\"level\":", 9);
    if (f_level != NULL)
        mg_jbuf_put_json(b, f_level);
    else
        mg_jbuf_put_str(b, level_names[level], strlen(level_names[level]));
    if (f_msg != NULL) {
        mg_jbuf_put(b, ",\"msg\":", 7);
        mg_jbuf_put_json(b, f_msg);
    } else {
        const char *m = msg ? msg : "";
        size_t mlen = strlen(m);
        if (mg_json_utf8_valid(m, mlen)) {
            mg_jbuf_put(b, ",\"msg\":", 7);
            mg_jbuf_put_str(b, m, mlen);
        }
    }
}

void mg_log_json(mg_log_level_t level, const char *msg, json_t *fields)
{
    if (!mg_log_enabled(level)) {
        json_decref(fields);
        return;
    }
    /* The same bytes as json_dumps(JSON_COMPACT) of {time, level, msg} updated with fields, built
     * without a jansson tree (bench/results/2026-11-21-perf.md). */
    char stack[1024];
    mg_jbuf_t b;
    mg_jbuf_init(&b, stack, sizeof stack, 16u * 1024u * 1024u);
    open_line(&b, level, msg, fields);
    if (fields != NULL) {
        for (void *it = json_object_iter(fields); it != NULL; it = json_object_iter_next(fields, it)) {
            const char *k = json_object_iter_key(it);
            size_t klen = json_object_iter_key_len(it);
            if ((klen == 4 && memcmp(k, "time", 4) == 0) || (klen == 5 && memcmp(k, "level", 5) == 0) ||
                (klen == 3 && memcmp(k, "msg", 3) == 0))
                continue; /* written in place above */
            mg_jbuf_put(&b, ",", 1);
            mg_jbuf_put_str(&b, k, klen);
            mg_jbuf_put(&b, ":", 1);
            mg_jbuf_put_json(&b, json_object_iter_value(it));
        }
        json_decref(fields);
    }
    emit(&b, level);
}

/* ---- the fast path of mg_log_fields: plain text into one fixed buffer ---- */

/* 1 for the bytes a JSON string holds as they are and that need no UTF-8 check: printable ASCII
 * (and DEL, which jansson does not escape) except '"' and '\\'. */
static const unsigned char plain_byte[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
    R16(0), R16(0),                                                          /* 0x00-0x1F: controls */
    1,      1,      0,      1,      1,      1,      1,      1,      1, 1, 1, /* 0x20-0x2A: '"' */
    1,      1,      1,      1,      1,                                       /* 0x2B-0x2F */
    R16(1), R16(1),                                                          /* 0x30-0x4F */
    1,      1,      1,      1,      1,      1,      1,      1,      1, 1, 1, /* 0x50-0x5A */
    1,      0,      1,      1,      1,                                       /* 0x5B-0x5F: '\\' */
    R16(1), R16(1),                                                          /* 0x60-0x7F */
    R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0),          /* 0x80-0xFF: UTF-8 */
#undef R16
};

/* Appends the NUL-terminated s at o, quoted when `quote`; returns the new end, or NULL when s has
 * a byte that is not plain or does not fit before end (the caller then takes the general path).
 * One pass, copying as it checks: the texts are short (keys, a method name, a session hash). */
static inline char *put_plain(char *o, const char *end, const char *s, int quote)
{
    if (quote) {
        if (o >= end)
            return NULL;
        *o++ = '"';
    }
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (o >= end || !plain_byte[*p])
            return NULL;
        *o++ = (char)*p;
    }
    if (quote) {
        if (o >= end)
            return NULL;
        *o++ = '"';
    }
    return o;
}

/* Appends v in decimal; returns the new end or NULL when it does not fit. */
static char *put_num(char *o, const char *end, long long v)
{
    char d[24];
    size_t k = sizeof d;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        d[--k] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        d[--k] = '-';
    size_t n = sizeof d - k;
    if ((size_t)(end - o) < n)
        return NULL;
    memcpy(o, d + k, n);
    return o + n;
}

/* Appends the whole line for mg_log_fields (plus "}\n") into out; returns its length, or 0 when
 * some text is not plain or the line does not fit (then the general path writes it). */
static size_t fields_plain(char *out, size_t cap, mg_log_level_t level, const char *msg,
                           const mg_log_field_t *f, size_t n)
{
    char ts[32];
    timestamp(ts);
    char *o = out, *end = out + cap - 2;
    static const char open[] = "{\"time\":\"";
    memcpy(o, open, sizeof open - 1);
    o += sizeof open - 1;
    size_t tlen = strlen(ts); /* digits and "-:T.Z" only: written as they are */
    if ((size_t)(end - o) < tlen + 10)
        return 0;
    memcpy(o, ts, tlen);
    o += tlen;
    memcpy(o, "\",\"level\":", 10);
    o += 10;
    if ((o = put_plain(o, end, level_names[level], 1)) == NULL || end - o < 7)
        return 0;
    memcpy(o, ",\"msg\":", 7);
    o += 7;
    if ((o = put_plain(o, end, msg ? msg : "", 1)) == NULL)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (end - o < 1)
            return 0;
        *o++ = ',';
        if ((o = put_plain(o, end, f[i].key, 1)) == NULL || end - o < 1)
            return 0;
        *o++ = ':';
        o = f[i].str != NULL ? put_plain(o, end, f[i].str, 1) : put_num(o, end, f[i].num);
        if (o == NULL)
            return 0;
    }
    *o++ = '}';
    *o++ = '\n';
    return (size_t)(o - out);
}

/* Appends the literal lit (its sizeof - 1 bytes); NULL when it does not fit before end. */
#define PUT_LIT(o, end, lit)                                                                                 \
    ((o) != NULL && (size_t)((end) - (o)) >= sizeof(lit) - 1                                                 \
         ? (memcpy((o), (lit), sizeof(lit) - 1), (o) + sizeof(lit) - 1)                                      \
         : NULL)

void mg_log_request(const char *http, const char *method, int status, long long latency_ms,
                    const char *upstream, const char *session)
{
    if (!mg_log_enabled(MG_LOG_INFO))
        return;
    http = http != NULL ? http : "";
    method = method != NULL ? method : "";
    /* The line mg_log_fields writes for these fields, its keys written as the constants they are. */
    char line[512], ts[32];
    timestamp(ts);
    char *o = line, *end = line + sizeof line - 2;
    size_t tlen = strlen(ts);
    o = PUT_LIT(o, end, "{\"time\":\"");
    if (o != NULL && (size_t)(end - o) >= tlen) {
        memcpy(o, ts, tlen);
        o += tlen;
    } else {
        o = NULL;
    }
    o = PUT_LIT(o, end, "\",\"level\":\"info\",\"msg\":\"request\",\"http\":");
    o = o != NULL ? put_plain(o, end, http, 1) : NULL;
    o = PUT_LIT(o, end, ",\"method\":");
    o = o != NULL ? put_plain(o, end, method, 1) : NULL;
    o = PUT_LIT(o, end, ",\"status\":");
    o = o != NULL ? put_num(o, end, status) : NULL;
    o = PUT_LIT(o, end, ",\"latency_ms\":");
    o = o != NULL ? put_num(o, end, latency_ms) : NULL;
    if (upstream != NULL) {
        o = PUT_LIT(o, end, ",\"upstream\":");
        o = o != NULL ? put_plain(o, end, upstream, 1) : NULL;
    }
    if (session != NULL) {
        o = PUT_LIT(o, end, ",\"session\":");
        o = o != NULL ? put_plain(o, end, session, 1) : NULL;
    }
    if (o != NULL) {
        *o++ = '}';
        *o++ = '\n';
        emit_bytes(line, (size_t)(o - line), MG_LOG_INFO);
        return;
    }
    /* a value that needs escapes, or a line over 512 bytes: the general path */
    mg_log_field_t f[6] = {
        {"http", http, 0}, {"method", method, 0}, {"status", NULL, status}, {"latency_ms", NULL, latency_ms}};
    size_t n = 4;
    if (upstream != NULL)
        f[n++] = (mg_log_field_t){"upstream", upstream, 0};
    if (session != NULL)
        f[n++] = (mg_log_field_t){"session", session, 0};
    mg_log_fields(MG_LOG_INFO, "request", f, n);
}

void mg_log_fields(mg_log_level_t level, const char *msg, const mg_log_field_t *f, size_t n)
{
    if (!mg_log_enabled(level))
        return;
    char line[512];
    size_t len = fields_plain(line, sizeof line, level, msg, f, n);
    if (len > 0) {
        emit_bytes(line, len, level);
        return;
    }
    char stack[512];
    mg_jbuf_t b;
    mg_jbuf_init(&b, stack, sizeof stack, 16u * 1024u * 1024u);
    open_line(&b, level, msg, NULL);
    for (size_t i = 0; i < n; i++) {
        mg_jbuf_put(&b, ",", 1);
        mg_jbuf_put_str(&b, f[i].key, strlen(f[i].key));
        mg_jbuf_put(&b, ":", 1);
        if (f[i].str != NULL)
            mg_jbuf_put_str(&b, f[i].str, strlen(f[i].str));
        else
            mg_jbuf_put_int(&b, f[i].num);
    }
    if (b.err == MG_EINVAL) { /* a value that is not UTF-8: json_pack() failed, the line had no fields */
        mg_jbuf_dispose(&b);
        mg_log_json(level, msg, NULL);
        return;
    }
    emit(&b, level);
}

void mg_log(mg_log_level_t level, const char *fmt, ...)
{
    if (!mg_log_enabled(level))
        return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    mg_log_json(level, buf, NULL);
}

/* ---- rate limit for noisy sources ---- */

void mg_log_limit_init(mg_log_limit_t *l, unsigned burst, uint64_t interval_ms)
{
    memset(l, 0, sizeof *l);
    l->burst = burst ? burst : 1;
    l->interval_ms = interval_ms ? interval_ms : 1;
}

int mg_log_limit_take(mg_log_limit_t *l, uint64_t now_ms, uint64_t *suppressed)
{
    if (!l->started || now_ms < l->window_start || now_ms - l->window_start >= l->interval_ms) {
        l->started = 1;
        l->window_start = now_ms;
        l->written = 0;
    }
    if (l->written >= l->burst) {
        l->suppressed++;
        return 0;
    }
    l->written++;
    if (suppressed != NULL)
        *suppressed = l->suppressed;
    l->suppressed = 0;
    return 1;
}

int mg_log_limited(mg_log_limit_t *l, uint64_t now_ms, mg_log_level_t level, const char *msg, json_t *fields)
{
    if (!mg_log_enabled(level)) {
        json_decref(fields);
        return 0;
    }
    uint64_t dropped = 0;
    if (!mg_log_limit_take(l, now_ms, &dropped)) {
        json_decref(fields);
        return 0;
    }
    if (dropped > 0) {
        if (fields == NULL)
            fields = json_object();
        json_object_set_new(fields, "suppressed", json_integer((json_int_t)dropped));
        json_object_set_new(fields, "suppressed_ms", json_integer((json_int_t)l->interval_ms));
    }
    mg_log_json(level, msg, fields);
    return 1;
}

void mg_log_limit_flush(mg_log_limit_t *l, mg_log_level_t level, const char *msg, json_t *fields)
{
    if (l->suppressed == 0 || !mg_log_enabled(level)) {
        json_decref(fields);
        return;
    }
    if (fields == NULL)
        fields = json_object();
    json_object_set_new(fields, "suppressed", json_integer((json_int_t)l->suppressed));
    json_object_set_new(fields, "suppressed_ms", json_integer((json_int_t)l->interval_ms));
    l->suppressed = 0;
    mg_log_json(level, msg, fields);
}
