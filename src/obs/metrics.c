/*
 * metrics.c - the collector table and the Prometheus text writer (metrics.h).
 * Read next: http/server.c.
 */
#include "metrics.h"
#include "../common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLLECTORS 64

struct mg_metrics_out {
    char *p;
    size_t len, cap;
    int oom;
};

static struct {
    mg_metrics_collect_cb cb;
    void *data;
} collectors[MAX_COLLECTORS];
static size_t ncollectors;

int mg_metrics_register(mg_metrics_collect_cb cb, void *data)
{
    if (ncollectors == MAX_COLLECTORS)
        return MG_ENOMEM;
    collectors[ncollectors].cb = cb;
    collectors[ncollectors].data = data;
    ncollectors++;
    return 0;
}

void mg_metrics_unregister(mg_metrics_collect_cb cb, void *data)
{
    for (size_t i = 0; i < ncollectors; i++) {
        if (collectors[i].cb == cb && collectors[i].data == data) {
            memmove(&collectors[i], &collectors[i + 1], (ncollectors - i - 1) * sizeof collectors[0]);
            ncollectors--;
            return;
        }
    }
}

static void put(mg_metrics_out_t *o, const char *s, size_t n)
{
    if (o->oom)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 4096;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *g = realloc(o->p, cap);
        if (g == NULL) {
            o->oom = 1;
            return;
        }
        o->p = g;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void puts_(mg_metrics_out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

/* HELP text escapes backslash and newline; label values also escape the double quote. */
static void put_escaped(mg_metrics_out_t *o, const char *s, int quote)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            put(o, "\\\\", 2);
        else if (*s == '\n')
            put(o, "\\n", 2);
        else if (*s == '"' && quote)
            put(o, "\\\"", 2);
        else
            put(o, s, 1);
    }
}

void mg_metrics_family(mg_metrics_out_t *out, const char *name, const char *type, const char *help)
{
    puts_(out, "# HELP ");
    puts_(out, name);
    puts_(out, " ");
    put_escaped(out, help, 0);
    puts_(out, "\n# TYPE ");
    puts_(out, name);
    puts_(out, " ");
    puts_(out, type);
    puts_(out, "\n");
}

void mg_metrics_sample(mg_metrics_out_t *out, const char *name, const char *const *labels, double value)
{
    puts_(out, name);
    if (labels != NULL && labels[0] != NULL) {
        puts_(out, "{");
        for (size_t i = 0; labels[i] != NULL && labels[i + 1] != NULL; i += 2) {
            if (i > 0)
                puts_(out, ",");
            puts_(out, labels[i]);
            puts_(out, "=\"");
            put_escaped(out, labels[i + 1], 1);
            puts_(out, "\"");
        }
        puts_(out, "}");
    }
    char num[64];
    if (value == (double)(long long)value && value < 9e15 && value > -9e15)
        snprintf(num, sizeof num, " %lld\n", (long long)value);
    else
        snprintf(num, sizeof num, " %.17g\n", value);
    puts_(out, num);
}

char *mg_metrics_render(size_t *len)
{
    mg_metrics_out_t o = {0};
    put(&o, "", 0);
    for (size_t i = 0; i < ncollectors; i++)
        collectors[i].cb(&o, collectors[i].data);
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    if (len != NULL)
        *len = o.len;
    return o.p;
}
