/*
 * listall.h - the one-shot runner of `mcpgate lock` and `mcpgate tools`: starts every enabled
 * server of a config on a private loop (sandboxed as configured), lists what each offers (every
 * page of each list method its capabilities announce), keeps its instructions, and stops them all.
 *
 * Contract: mg_upstream_list_all() returns only when every server is listed, failed, or timed out,
 * and every child is stopped; the loop it ran is closed. A server's first failure is its `error`
 * (that server's lists are then partial and not to be used). Read next: upstream.h (one server),
 * policy/lock_cmd.c and toolsearch/cli_tools.c (the two users).
 */
#ifndef MG_UPSTREAM_LISTALL_H
#define MG_UPSTREAM_LISTALL_H

#include <jansson.h>
#include <stddef.h>

#include "../config/config.h"

#define MG_UPSTREAM_LIST_MAX 4 /* list methods one run may ask for */

typedef struct mg_upstream_list_opts {
    const char *client_name;                   /* initialize's clientInfo.name, e.g. "mcpgate-lock" */
    int nmethods;                              /* 1..MG_UPSTREAM_LIST_MAX */
    const char *methods[MG_UPSTREAM_LIST_MAX]; /* "tools/list", ... */
    const char *keys[MG_UPSTREAM_LIST_MAX];    /* the result's array: "tools", ... */
    const char *caps[MG_UPSTREAM_LIST_MAX];    /* capability announcing the method: "tools", ... */
    unsigned max_pages;        /* pages followed per method (nextCursor), counting the first */
    unsigned long timeout_ms;  /* for the whole run */
    const char *no_list_error; /* "<method> failed: " + this when the result has no array */
    const char *timeout_error; /* error of a server still listing at the timeout */
} mg_upstream_list_opts_t;

/* What one enabled server said. */
typedef struct mg_upstream_listing {
    const mg_server_config_t *cfg;       /* borrowed from the config */
    json_t *lists[MG_UPSTREAM_LIST_MAX]; /* owned: one array per method, pages joined */
    char *instructions;                  /* owned: initialize's instructions, NULL if none */
    char *era;                           /* owned: a remote server's era (mg_upstream_era), or NULL */
    char *http;                          /* owned: a remote server's HTTP version, or NULL */
    char *error;                         /* owned: why it could not be listed, NULL if listed */
} mg_upstream_listing_t;

/* Runs every enabled server of cfg as o says. *out gets a NEW array of *n listings (one per enabled
 * server, in config order; free with mg_upstream_listings_free). Returns 0 or MG_ENOMEM (nothing
 * started, *out NULL). */
int mg_upstream_list_all(const mg_config_t *cfg, const mg_upstream_list_opts_t *o,
                         mg_upstream_listing_t **out, size_t *n);

void mg_upstream_listings_free(mg_upstream_listing_t *l, size_t n);

#endif
