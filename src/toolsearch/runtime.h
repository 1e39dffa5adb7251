/*
 * runtime.h - the lazy catalog's state and answers, on plain data: the gateway's side
 * (gateway/toolsearch_hooks.c) reads a call (profile, principal, _meta, the merged list and the
 * server of each tool) and asks these; nothing here knows a session, a call or a pool.
 *
 * Per gateway (mg_toolsearch_t): a small cache of search indexes keyed by a hash of the (filtered)
 * tool list and its servers, so an upstream's list_changed, a restart or another filter simply
 * yields a new key and a rebuilt index; the search counters and their /metrics samples.
 * Per session (mg_toolsearch_session_t, 2025 era): the selected profile and the tools its searches
 * added to its tools/list. 2026-07-28 calls share no state: their profile and loaded tools travel
 * in each request's _meta (docs/tool-search.md).
 * All json_t * parameters are BORROWED unless a comment says "stolen"; returned ones are NEW.
 * Read next: runtime.c, gateway/toolsearch_hooks.h (who calls these), docs/tool-search.md.
 */
#ifndef MG_TOOLSEARCH_RUNTIME_H
#define MG_TOOLSEARCH_RUNTIME_H

#include "../obs/metrics.h"
#include "toolsearch.h"

/* _meta keys. */
#define MG_TOOLSEARCH_META_ALWAYS  "anthropic/alwaysLoad"   /* keep loaded in clients that defer tools */
#define MG_TOOLSEARCH_META_FOUND   "io.mcpgate/foundBy"     /* on tools a search added: the query tool */
#define MG_TOOLSEARCH_META_PROFILE "io.mcpgate/profile"     /* 2026-07-28: profile of one request */
#define MG_TOOLSEARCH_META_LOADED  "io.mcpgate/loadedTools" /* 2026-07-28: tools the client holds */

typedef struct mg_toolsearch mg_toolsearch_t;
typedef struct mg_toolsearch_session mg_toolsearch_session_t;

/* The gateway's index cache and counters. NULL when out of memory. */
mg_toolsearch_t *mg_toolsearch_new(void);
void mg_toolsearch_free(mg_toolsearch_t *ts);
/* Writes the search counters to /metrics (ts may be NULL: zeros). */
void mg_toolsearch_collect(const mg_toolsearch_t *ts, mg_metrics_out_t *out);

/*
 * The profile a new session asked for: the Mcpgate-Profile header (header, hlen; NULL when absent)
 * else the "profile" parameter of the query string (query after '?', qlen; NULL when none), else
 * tc's defaultProfile. Copies its name to out ("" = none). Returns 0, or MG_ENOTFOUND with a
 * sentence in why (unknown profile: the session must not be created).
 */
int mg_toolsearch_profile_select(const mg_tools_config_t *tc, const char *header, size_t hlen,
                                 const char *query, size_t qlen, char *out, size_t outlen, char *why,
                                 size_t whylen);

/* A session's state: profile "" or NULL = none (tc's profile of that name, borrowed from tc).
 * NULL when out of memory. */
mg_toolsearch_session_t *mg_toolsearch_session_new(const mg_tools_config_t *tc, const char *profile);
void mg_toolsearch_session_free(mg_toolsearch_session_t *st);
/* The session's profile (NULL = none). st may be NULL. */
const mg_tool_profile_t *mg_toolsearch_session_profile(const mg_toolsearch_session_t *st);
/* After a reload: st's profile becomes the one of the same name in tc, when tc has it (a session
 * whose profile was removed keeps the one it chose; it never falls back to seeing more). st may
 * be NULL. */
void mg_toolsearch_session_rebind(mg_toolsearch_session_t *st, const mg_tools_config_t *tc);
/* {exposed name: true} of the tools its searches added (borrowed; NULL = none yet). st may be NULL. */
const json_t *mg_toolsearch_session_added(const mg_toolsearch_session_t *st);

/* The set {name: true} of the tools a 2026-07-28 request says it holds: its _meta
 * io.mcpgate/loadedTools array `loaded` (first MG_TOOLSEARCH_MAX_ADDED strings). NEW. */
json_t *mg_toolsearch_loaded_set(const json_t *loaded);

/* What one search did, for the caller's log line and notifications. */
typedef struct mg_toolsearch_search_info {
    int results;       /* hits shown (0 for an error answer) */
    const char *match; /* "words", "spelling" or "none" (a browse answer) */
    size_t added;      /* tools added to the session's list (then its tools/list changed) */
} mg_toolsearch_search_info_t;

/*
 * Answers one call of the search tool: args its "arguments" object, tools the merged list it
 * searches (exposed names), servers the server name of each tool (array parallel to tools, null
 * when unknown), st the session whose list the hits join (NULL: 2026-07-28, definitions are sent
 * and nothing is kept). Returns the CallToolResult (NEW; an isError result for a bad query or no
 * index), and fills *info.
 */
json_t *mg_toolsearch_search(mg_toolsearch_t *ts, const mg_tools_config_t *tc, const json_t *args,
                             const json_t *tools, const json_t *servers, mg_toolsearch_session_t *st,
                             mg_toolsearch_search_info_t *info);

/*
 * The tools/list view of the merged list `tools` (STOLEN; returns the NEW array to answer with)
 * for profile prof (NULL = none). Mode "all": every tool. Mode "lazy": the search tool (described
 * with server_counts: [{name, tools}], built only in lazy mode, see mg_toolsearch_lazy()), the
 * "always" tools and those in added ({name: true}: the session's, or the request's loaded set).
 * Compaction and _meta hints applied.
 */
json_t *mg_toolsearch_list(const mg_tools_config_t *tc, const mg_tool_profile_t *prof, json_t *tools,
                           const json_t *added, const json_t *server_counts);
/* 1 when prof's mode is lazy (the list then needs server_counts). */
int mg_toolsearch_lazy(const mg_tools_config_t *tc, const mg_tool_profile_t *prof);

#endif
