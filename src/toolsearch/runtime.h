/*
 * runtime.h - the lazy catalog inside the gateway: the hooks gateway/dispatch.c, gateway/era_legacy.c,
 * gateway/session.c and gateway/gateway.c call. Not a public contract beyond those files.
 *
 * Per gateway: a small cache of search indexes keyed by a hash of the (filtered) tool list they
 * were built from, so an upstream's list_changed, a restart or a different filter simply yields a
 * new key and a rebuilt index; search and add counters; the /metrics collector.
 * Per session (2025 era): the selected profile and the tools its searches added to its tools/list.
 * Tenant and scopes come from the principal the auth phase attached to each call (src/auth/).
 * 2026-07-28 calls share no state: their profile and loaded tools travel in each request's _meta
 * (docs/tool-search.md), and such lists are cacheScope private.
 * Read next: runtime.c, docs/tool-search.md.
 */
#ifndef MG_TOOLSEARCH_RUNTIME_H
#define MG_TOOLSEARCH_RUNTIME_H

#include "../gateway/gateway_int.h"
#include "toolsearch.h"

/* _meta keys. */
#define MG_TOOLSEARCH_META_ALWAYS  "anthropic/alwaysLoad"   /* keep loaded in clients that defer tools */
#define MG_TOOLSEARCH_META_FOUND   "io.mcpgate/foundBy"     /* on tools a search added: the query tool */
#define MG_TOOLSEARCH_META_PROFILE "io.mcpgate/profile"     /* 2026-07-28: profile of one request */
#define MG_TOOLSEARCH_META_LOADED  "io.mcpgate/loadedTools" /* 2026-07-28: tools the client holds */

typedef struct mg_toolsearch mg_toolsearch_t;
typedef struct mg_toolsearch_session mg_toolsearch_session_t;

/* Creates the gateway's state (gw->ts) and registers its /metrics collector. 0 or MG_ENOMEM. */
int mg_toolsearch_new(mg_gateway_t *gw);
void mg_toolsearch_free(mg_gateway_t *gw);

/*
 * The profile a new session asked for: the Mcpgate-Profile header (header, hlen; NULL when absent)
 * else the "profile" parameter of the query string (query after '?', qlen; NULL when none), else
 * gateway.tools.defaultProfile. Copies its name to out ("" = none). Returns 0, or MG_ENOTFOUND with
 * a sentence in why (unknown profile: the session must not be created).
 */
int mg_toolsearch_profile_select(mg_gateway_t *gw, const char *header, size_t hlen, const char *query,
                                 size_t qlen, char *out, size_t outlen, char *why, size_t whylen);
/* Attaches toolsearch state to a new session (s->ts). profile "" or NULL = none. 0 or MG_ENOMEM. */
int mg_toolsearch_session_open(mg_session_t *s, const char *profile);
/* Releases s->ts (from the session's free). */
void mg_toolsearch_session_close(mg_session_t *s);
/* Policy for one tool of server index `server` as seen by call c (tools/list and tools/call). */
int mg_toolsearch_allows(const mg_call_t *c, size_t server, const char *original, const char *exposed);
/* 1 when c is a tools/call of the gateway's search tool (lazy mode for c's profile). */
int mg_toolsearch_is_search(const mg_call_t *c, const char *name);

/*
 * The tools array c answers with, from the merged list of every tool c may use (`tools` STOLEN;
 * returns the NEW array to answer with). Mode "all": every tool. Mode "lazy": the search tool, the
 * "always" tools and the tools c's session added by searching (2026-07-28: those named in
 * _meta io.mcpgate/loadedTools). Compaction and _meta hints applied. When c is a tools/call of the
 * search tool, *answer receives the CallToolResult instead (the caller answers with it).
 */
json_t *mg_toolsearch_tools(mg_call_t *c, json_t *tools, json_t **answer);
/* Adds caching hints to a tools/list result of c where the list depends on the request. */
void mg_toolsearch_list_hints(const mg_call_t *c, json_t *result);

#endif
