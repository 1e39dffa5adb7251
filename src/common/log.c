/*
 * log.c - JSON log lines (see log.h). Time is RFC 3339 UTC with milliseconds.
 */
#include "log.h"
#include "err.h"

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

void mg_log_json(mg_log_level_t level, const char *msg, json_t *fields)
{
    if (!mg_log_enabled(level)) {
        json_decref(fields);
        return;
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[40];
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", (long)(tv.tv_usec / 1000));

    json_t *line = json_object();
    json_object_set_new(line, "time", json_string(ts));
    json_object_set_new(line, "level", json_string(level_names[level]));
    json_object_set_new(line, "msg", json_string(msg ? msg : ""));
    if (fields != NULL) {
        json_object_update(line, fields);
        json_decref(fields);
    }
    char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (s == NULL)
        return;
    size_t len = strlen(s);
    s[len] = '\n'; /* json_dumps allocates len+1; reuse the NUL slot for the newline */
    ssize_t w = write(STDERR_FILENO, s, len + 1);
    (void)w;
    free(s);
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
