/*
 * toolsearch.h - the token cost of a tool catalog, and the means to cut it: estimates, allow/deny
 * filters per upstream, tenant, scope and profile, description compaction, a BM25F search index
 * (in memory, Snowball stemming, query analysis and a thesaurus: index.c, query.c, thesaurus.c) and the lazy
 * catalog mode (a search tool that adds its matches to the session's tools/list, followed by
 * notifications/tools/list_changed).
 *
 * Pure parts (tokens.c, compact.c, index.c, query.c, thesaurus.c, policy.c; globs: common/glob.h) know
 * nothing of sessions or HTTP and are unit-tested alone. So does the runtime (runtime.h: index cache,
 * session state, the search answer, the tools/list view), which gateway/toolsearch_hooks.c feeds at three
 * points of gateway/dispatch.c: the tools/list merge (filter, then shape), tools/call routing (policy
 * check and the search tool) and /metrics. The `mcpgate tools` command lives in cli_tools.c. All json_t *
 * parameters are BORROWED unless a comment says "stolen"; returned ones are NEW. Read next:
 * docs/tool-search.md (behaviour and config), runtime.c.
 */
#ifndef MG_TOOLSEARCH_H
#define MG_TOOLSEARCH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../config/config.h"

/* Name of the gateway's own search tool in lazy mode. */
#define MG_TOOLSEARCH_TOOL_NAME "search_tools"
/* Most tools one session may have added by searches (bounded state); later matches are still returned. */
#define MG_TOOLSEARCH_MAX_ADDED 256
/* Largest `limit` a search accepts. */
#define MG_TOOLSEARCH_MAX_LIMIT 50

/* ---- tokens.c: the estimator ---- */

/*
 * Estimated BPE tokens of text (UTF-8, len bytes). A pre-tokenizer walk like GPT-style encoders:
 * letter runs split at camelCase humps, one token per 10 letters of each hump; '_' or '-' between
 * letters joins the next word; digit runs one token per 3 digits; each non-ASCII code point one
 * token; the two characters "\n" (an escaped newline in JSON) one token; other punctuation runs one
 * token per 4 characters; spaces are free (they ride on the next word). Calibrated against
 * o200k_base on the recorded catalogs (bench/tokens/tokens.mjs reports the error).
 */
size_t mg_toolsearch_tokens_text(const char *text, size_t len);
/* Tokens of v serialized as compact JSON (what a client sends its model). 0 for NULL. */
size_t mg_toolsearch_tokens_json(const json_t *v);

typedef struct mg_toolsearch_cost {
    size_t total;       /* the whole tool object as compact JSON */
    size_t name;        /* "name" (and "title") values */
    size_t description; /* "description" value */
    size_t schema;      /* inputSchema + outputSchema */
    size_t desc_chars;  /* length of the description in bytes */
} mg_toolsearch_cost_t;

/* Fills *out for one tool definition object. */
void mg_toolsearch_tokens_tool(const json_t *tool, mg_toolsearch_cost_t *out);

/* ---- compact.c ---- */

/*
 * A compacted copy of a tool definition (NEW reference; NULL only when out of memory). Changes that
 * never change meaning: whitespace in descriptions (trailing spaces, runs of blanks, 3+ newlines,
 * leading/trailing blank lines) and lines repeated verbatim within one description (duplicated
 * examples); in schemas, "$schema", "additionalProperties": true (the default), empty "required"
 * arrays, a property "title" that only restates the property name, and a property description
 * that repeats the tool's description word for word. Names, types, enums, defaults, constraints,
 * required lists and every other keyword are kept as they are.
 */
json_t *mg_toolsearch_compact_tool(const json_t *tool);

/* ---- index.c: BM25F over names, servers, titles, descriptions, parameters ---- */

typedef struct mg_toolsearch_index mg_toolsearch_index_t;

/*
 * Builds the in-memory search index of the tool definitions in `tools` (an array; borrowed only
 * during the call). servers (may be NULL) is a parallel array of the server name of each tool: it
 * lets a query that names a server narrow to its tools, and keeps the server's prefix of an exposed
 * name out of the name field. Fields, weighed by BM25F: the tool's own name (split at '_', '-' and
 * camelCase), its server, title, the description's first sentence, the rest of the description,
 * parameter names, parameter descriptions. Words are Snowball-stemmed (English).
 * Returns 0, or MG_ENOMEM.
 */
int mg_toolsearch_index_new(const json_t *tools, const json_t *servers, mg_toolsearch_index_t **out);

/* How a search found its answer. */
typedef enum mg_toolsearch_how {
    MG_TOOLSEARCH_MATCHED, /* query words (or their thesaurus expansions) matched */
    MG_TOOLSEARCH_FUZZY,   /* nothing matched; words close in spelling did */
    MG_TOOLSEARCH_BROWSE,  /* nothing matched at all: a sample of each server's tools */
} mg_toolsearch_how_t;

typedef struct mg_toolsearch_hit {
    size_t pos;        /* position in the indexed array */
    double score;      /* 0 for a browse answer */
    char matched[160]; /* why: "bug→issue, github, server github" (UTF-8), "" when browsing */
} mg_toolsearch_hit_t;

/*
 * Ranks the tools for a natural-language query (query.c says how it is read). Writes up to cap
 * hits, best first, and returns how many, or MG_ENOMEM. Never 0 when the index holds a tool and
 * cap > 0: with no match it falls back (*how, may be NULL). One search at a time per index.
 */
int mg_toolsearch_index_find(mg_toolsearch_index_t *ix, const char *query, mg_toolsearch_hit_t *hits,
                             size_t cap, mg_toolsearch_how_t *how);
/* The same, positions only (cap at most MG_TOOLSEARCH_MAX_LIMIT). */
int mg_toolsearch_index_search(mg_toolsearch_index_t *ix, const char *query, size_t *out, size_t cap);
/* Tools indexed. */
size_t mg_toolsearch_index_size(const mg_toolsearch_index_t *ix);
/* Bytes of memory the index holds. */
size_t mg_toolsearch_index_bytes(const mg_toolsearch_index_t *ix);
/* 64-bit FNV-1a over exactly what an index of `tools` and `servers` holds (names, servers, titles,
 * descriptions, parameter names and descriptions, in order): equal keys, equal rankings. Never 0. */
uint64_t mg_toolsearch_index_key(const json_t *tools, const json_t *servers);
void mg_toolsearch_index_free(mg_toolsearch_index_t *ix);

/* ---- policy.c: who may see and call which tool ---- */

/* Who is asking: the tenant and scopes of the principal the auth phase attached to the call
 * (runtime.c); without gateway.auth there is none and tenant/scope rules do not apply. */
typedef struct mg_toolsearch_principal {
    const char *tenant;        /* NULL = none */
    const char *const *scopes; /* granted scopes */
    size_t nscopes;
} mg_toolsearch_principal_t;

/* 1 when f lets name through (empty allow = all; deny wins). */
int mg_toolsearch_filter_allows(const mg_tool_filter_t *f, const char *name);

/*
 * The one decision for listing and calling: 1 when the tool passes, in order, the server's own
 * filter (original name), gateway.tools allow/deny (exposed name), the session's profile (exposed),
 * the principal's tenant rule (its own, else "*", else none), and -- when scope rules exist and a
 * principal is given -- at least one of the principal's scopes whose rule passes it.
 * srv, profile and who may be NULL.
 */
int mg_toolsearch_policy_allows(const mg_tools_config_t *tc, const mg_server_config_t *srv,
                                const mg_tool_profile_t *profile, const mg_toolsearch_principal_t *who,
                                const char *original, const char *exposed);
/* The profile called name, or NULL. */
const mg_tool_profile_t *mg_toolsearch_profile_find(const mg_tools_config_t *tc, const char *name);
/* Mode and always-globs in force for a profile (NULL = none). */
mg_tools_mode_t mg_toolsearch_mode(const mg_tools_config_t *tc, const mg_tool_profile_t *profile);
int mg_toolsearch_always(const mg_tools_config_t *tc, const mg_tool_profile_t *profile, const char *exposed);

/* ---- runtime.c: the lazy catalog (its state and answers: runtime.h) ---- */

/*
 * The gateway's own search tool definition (NEW): name search_tools, arguments {query, limit?},
 * a description that names the servers behind it (servers: array of {name, tools} objects or NULL),
 * readOnlyHint, and _meta "anthropic/alwaysLoad": true.
 */
json_t *mg_toolsearch_tool_def(const json_t *servers, size_t total_tools);

/* ---- cli_tools.c ---- */

/* `mcpgate tools` (src/cli/cli.h): argv[0] is "tools". Returns the exit status. */
int mg_cli_tools(int argc, char **argv);

#endif
