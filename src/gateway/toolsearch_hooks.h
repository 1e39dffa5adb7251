/*
 * toolsearch_hooks.h - where the gateway asks the lazy catalog (dispatch.c, era_legacy.c,
 * era_sse.c, session.c, cluster_records.c, gateway.c). The gateway's side of the boundary: these
 * read a call, a session and the catalog and ask toolsearch/runtime.h, which takes plain data
 * (a tools config, a profile, a principal's tenant and scopes, lists) and knows nothing of the
 * gateway.
 * Tenant and scopes come from the principal the auth phase attached to each call (src/auth/).
 * 2026-07-28 calls share no state: their profile and loaded tools travel in each request's _meta
 * (docs/tool-search.md), and such lists are cacheScope private.
 * Read next: toolsearch_hooks.c, toolsearch/runtime.h, docs/tool-search.md.
 */
#ifndef MG_GATEWAY_TOOLSEARCH_HOOKS_H
#define MG_GATEWAY_TOOLSEARCH_HOOKS_H

#include "../toolsearch/runtime.h"
#include "gateway_int.h"

/* Creates the gateway's state (gw->ts) and registers its /metrics collector. 0 or MG_ENOMEM. */
int mg__toolsearch_start(mg_gateway_t *gw);
void mg__toolsearch_stop(mg_gateway_t *gw);

/* Attaches toolsearch state to a new session (s->ts). profile "" or NULL = none. 0 or MG_ENOMEM. */
int mg__toolsearch_session_open(mg_session_t *s, const char *profile);
/* Releases s->ts (from the session's free). */
void mg__toolsearch_session_close(mg_session_t *s);
/* Policy for one tool of server index `server` as seen by call c (tools/list and tools/call). */
int mg__toolsearch_allows(const mg_call_t *c, size_t server, const char *original, const char *exposed);
/* 1 when c is a tools/call of the gateway's search tool (lazy mode for c's profile). */
int mg__toolsearch_is_search(const mg_call_t *c, const char *name);

/*
 * The tools array c answers with, from the merged list of every tool c may use (`tools` STOLEN;
 * returns the NEW array to answer with). Mode "all": every tool. Mode "lazy": the search tool, the
 * "always" tools and the tools c's session added by searching (2026-07-28: those named in
 * _meta io.mcpgate/loadedTools). Compaction and _meta hints applied. When c is a tools/call of the
 * search tool, *answer receives the CallToolResult instead (the caller answers with it).
 */
json_t *mg__toolsearch_tools(mg_call_t *c, json_t *tools, json_t **answer);
/* Adds caching hints to a tools/list result of c where the list depends on the request. */
void mg__toolsearch_list_hints(const mg_call_t *c, json_t *result);

#endif
