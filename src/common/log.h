/*
 * log.h - one JSON object per line on stderr.
 *
 * Every line carries time, level and msg; callers add context fields (request id, shortened session
 * hash, upstream, action) as key/value pairs. Never pass a secret: values are logged verbatim.
 * Read next: obs/ (request log line) and upstream/ (child stderr tagging).
 */
#ifndef MG_LOG_H
#define MG_LOG_H

#include <jansson.h>
#include <stdint.h>

typedef enum mg_log_level { MG_LOG_DEBUG = 0, MG_LOG_INFO, MG_LOG_WARN, MG_LOG_ERROR } mg_log_level_t;

/* Minimum level printed; default MG_LOG_INFO. */
void mg_log_set_level(mg_log_level_t level);
/* Parses "debug"/"info"/"warn"/"error"; returns 0 or MG_EINVAL. */
int mg_log_level_parse(const char *s, mg_log_level_t *out);
int mg_log_enabled(mg_log_level_t level);

/*
 * Logs msg with extra fields. `fields` is a JSON object whose reference is STOLEN (may be NULL).
 * The line is written with one write(2) so lines from one process never interleave.
 */
void mg_log_json(mg_log_level_t level, const char *msg, json_t *fields);

/* One field of mg_log_fields(): a string (str != NULL) or an integer (num). */
typedef struct mg_log_field {
    const char *key;
    const char *str;
    long long num;
} mg_log_field_t;

/*
 * The line mg_log_json(level, msg, {f[0].key: value, ...}) writes, built without a jansson tree:
 * for lines written on every request (the access log line). Keys must be plain ASCII.
 */
void mg_log_fields(mg_log_level_t level, const char *msg, const mg_log_field_t *f, size_t n);

/*
 * The access log line, at info: exactly what mg_log_fields(MG_LOG_INFO, "request", {http, method,
 * status, latency_ms[, upstream][, session]}) writes (upstream and session left out when NULL;
 * http and method NULL are written as ""), with its keys written as constants instead of checked
 * per byte.
 */
void mg_log_request(const char *http, const char *method, int status, long long latency_ms,
                    const char *upstream, const char *session);

/*
 * Deferred mode (on: mcpgate serve; off by default): debug and info lines are kept in a 64 KiB
 * buffer and written by mg_log_flush() (the server calls it once per loop iteration, before the
 * loop blocks) or when the buffer is full; warnings and errors flush it and are written at once.
 * Lines stay whole and in order. Turning it off flushes.
 */
void mg_log_defer(int on);
void mg_log_flush(void);

/*
 * Rate limit for repeated lines from one noisy source (an upstream's stdout junk, its stderr, its
 * unroutable notifications): at most `burst` lines per `interval_ms` window are written; the rest
 * are counted. The first line written after a window that dropped lines carries the count
 * ("suppressed": N, "suppressed_ms": window length); mg_log_limit_flush() writes it on its own when
 * the source falls silent (e.g. the child exited). Time is given by the caller (ms, monotonic),
 * so the limiter has no clock of its own. Zeroed memory is not valid: call mg_log_limit_init().
 */
typedef struct mg_log_limit {
    unsigned burst;
    uint64_t interval_ms;
    uint64_t window_start;
    unsigned written;    /* lines written in the current window */
    uint64_t suppressed; /* lines dropped and not yet reported */
    int started;
} mg_log_limit_t;

void mg_log_limit_init(mg_log_limit_t *l, unsigned burst, uint64_t interval_ms);
/* 1 when a line may be written now (then *suppressed, if not NULL, gets the count of lines dropped
 * since the last line written, to report with it); 0 when this line is to be dropped (counted). */
int mg_log_limit_take(mg_log_limit_t *l, uint64_t now_ms, uint64_t *suppressed);
/* mg_log_json() through the limiter: fields STOLEN either way; adds "suppressed"/"suppressed_ms"
 * to the line when earlier lines were dropped. Returns 1 when the line was written. */
int mg_log_limited(mg_log_limit_t *l, uint64_t now_ms, mg_log_level_t level, const char *msg, json_t *fields);
/* Writes one line "<msg>" with "suppressed": N when lines were dropped and not yet reported;
 * fields STOLEN (may be NULL). */
void mg_log_limit_flush(mg_log_limit_t *l, mg_log_level_t level, const char *msg, json_t *fields);

/* printf-style convenience without extra fields. */
void mg_log(mg_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
