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
 * Deferred mode (on: mcpgate serve; off by default): debug and info lines are kept in a 64 KiB
 * buffer and written by mg_log_flush() (the server calls it once per loop iteration, before the
 * loop blocks) or when the buffer is full; warnings and errors flush it and are written at once.
 * Lines stay whole and in order. Turning it off flushes.
 */
void mg_log_defer(int on);
void mg_log_flush(void);

/* printf-style convenience without extra fields. */
void mg_log(mg_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
