/*
 * metrics.h - Prometheus text exposition (format 0.0.4) for GET /metrics.
 *
 * Any module registers a collector; a scrape calls every collector in registration order and each
 * writes whole metric families (a HELP/TYPE header, then its samples; a family must not be split
 * across collectors). Collectors run on the loop, synchronously, and must be cheap: read state,
 * never wait. Label values are escaped here; names are the caller's (use mcpgate_<noun>_<unit>).
 * Nothing here may carry a secret: metrics are readable by anyone who can reach the port.
 * Read next: http/server.c (the route), gateway/toolsearch_hooks.c (a collector).
 */
#ifndef MG_METRICS_H
#define MG_METRICS_H

#include <stddef.h>

typedef struct mg_metrics_out mg_metrics_out_t;
typedef void (*mg_metrics_collect_cb)(mg_metrics_out_t *out, void *data);

/* Adds a collector (process-wide, up to 64). Returns 0, or MG_ENOMEM when the table is full. */
int mg_metrics_register(mg_metrics_collect_cb cb, void *data);
/* Removes the collector registered with exactly (cb, data); no-op when absent. */
void mg_metrics_unregister(mg_metrics_collect_cb cb, void *data);

/* Writes "# HELP name help" and "# TYPE name type" (type: "gauge", "counter", ...). */
void mg_metrics_family(mg_metrics_out_t *out, const char *name, const char *type, const char *help);
/* Writes one sample. labels: NULL or a NULL-terminated list of name, value pairs. */
void mg_metrics_sample(mg_metrics_out_t *out, const char *name, const char *const *labels, double value);

/* Runs every collector; returns the text (NUL-terminated, caller frees) or NULL when out of memory. */
char *mg_metrics_render(size_t *len);

#endif
