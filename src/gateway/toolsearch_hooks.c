/*
 * toolsearch_hooks.c - the gateway's side of the lazy catalog (toolsearch_hooks.h): reads a call
 * (its profile, principal, _meta, session) and the catalog (the server of each exposed name, the
 * shared pools' lists), asks toolsearch/runtime.h on plain data, and does what the answer implies
 * (list_changed to the searching session, a log line).
 *
 * tools/list: dispatch.c merges every upstream's tools, drops what mg__toolsearch_allows() refuses
 * and hands the rest to mg__toolsearch_tools(), which answers with the view of the session's mode:
 * all of them, or the search tool + "always" tools + what this session's searches added.
 * tools/call search_tools: the same merged, filtered list reaches mg__toolsearch_tools() with an
 * answer slot; the query is ranked by the index of that exact list (cached by content hash), the
 * matches are added to the session's set and notifications/tools/list_changed goes to that session
 * only, before the result. Any allowed tool stays callable whether listed or not (dispatch.c).
 * Read next: toolsearch/runtime.h, toolsearch/policy.c (the filter), docs/tool-search.md.
 */
#include "toolsearch_hooks.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../obs/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void collect_cb(mg_metrics_out_t *out, void *data);

/* ---- lifetime ---- */

int mg__toolsearch_start(mg_gateway_t *gw)
{
    gw->ts = mg_toolsearch_new();
    if (gw->ts == NULL)
        return MG_ENOMEM;
    mg_metrics_register(collect_cb, gw);
    return 0;
}

void mg__toolsearch_stop(mg_gateway_t *gw)
{
    if (gw->ts == NULL)
        return;
    mg_metrics_unregister(collect_cb, gw);
    mg_toolsearch_free(gw->ts);
    gw->ts = NULL;
}

int mg__toolsearch_session_open(mg_session_t *s, const char *profile)
{
    s->ts = mg_toolsearch_session_new(&s->gw->cfg->tools, profile);
    return s->ts != NULL ? 0 : MG_ENOMEM;
}

void mg__toolsearch_session_close(mg_session_t *s)
{
    mg_toolsearch_session_free(s->ts);
    s->ts = NULL;
}

/* ---- per call: profile, principal, mode ---- */

static const json_t *request_meta(const mg_call_t *c, const char *key)
{
    return json_object_get(json_object_get(c->params, "_meta"), key);
}

/* The profile in force for c. *unknown set when a 2026-07-28 request named a profile that does not
 * exist: such a request sees no tool (fail closed) rather than more than it asked for. */
static const mg_tool_profile_t *profile_of(const mg_call_t *c, int *unknown)
{
    const mg_tools_config_t *tc = &c->gw->cfg->tools;
    *unknown = 0;
    if (c->modern) {
        const json_t *p = request_meta(c, MG_TOOLSEARCH_META_PROFILE);
        const char *name = json_string_value(p);
        if (p == NULL)
            return mg_toolsearch_profile_find(tc, tc->default_profile);
        const mg_tool_profile_t *found = mg_toolsearch_profile_find(tc, name);
        *unknown = found == NULL;
        return found;
    }
    if (c->s != NULL && c->s->ts != NULL)
        return mg_toolsearch_session_profile(c->s->ts);
    return mg_toolsearch_profile_find(tc, tc->default_profile);
}

/* The caller's tenant and scopes, from the principal the auth phase attached to the call (the
 * session's creator in the session era, the request's sender in 2026-07-28); NULL without auth. */
static const mg_toolsearch_principal_t *principal_of(const mg_call_t *c, mg_toolsearch_principal_t *buf)
{
    const mg_principal_t *p = c->principal;
    if (p == NULL)
        return NULL;
    buf->tenant = p->tenant;
    buf->scopes = (const char *const *)p->scopes;
    buf->nscopes = p->nscopes;
    return buf;
}

int mg__toolsearch_allows(const mg_call_t *c, size_t server, const char *original, const char *exposed)
{
    int unknown;
    const mg_tool_profile_t *prof = profile_of(c, &unknown);
    if (unknown)
        return 0;
    const mg_server_config_t *sc = server < c->gw->nservers ? c->gw->servers[server].cfg : NULL;
    mg_toolsearch_principal_t who;
    return mg_toolsearch_policy_allows(&c->gw->cfg->tools, sc, prof, principal_of(c, &who), original,
                                       exposed);
}

int mg__toolsearch_is_search(const mg_call_t *c, const char *name)
{
    int unknown;
    if (name == NULL || strcmp(name, MG_TOOLSEARCH_TOOL_NAME) != 0)
        return 0;
    const mg_tool_profile_t *prof = profile_of(c, &unknown);
    return mg_toolsearch_mode(&c->gw->cfg->tools, prof) == MG_TOOLS_LAZY;
}

/* ---- the search tool and tools/list ---- */

/* [{name, tools}] per server, counted from exposed names. */
static json_t *server_counts(mg_gateway_t *gw, const json_t *tools)
{
    size_t *n = calloc(gw->nservers ? gw->nservers : 1, sizeof *n);
    json_t *out = json_array();
    if (n == NULL || out == NULL) {
        free(n);
        return out;
    }
    size_t i;
    json_t *t;
    json_array_foreach((json_t *)tools, i, t)
    {
        const char *orig = NULL;
        long s = mg__catalog_route_name(gw, json_string_value(json_object_get(t, "name")) ?: "", &orig);
        if (s >= 0)
            n[s]++;
    }
    for (size_t k = 0; k < gw->nservers; k++)
        if (n[k] > 0)
            json_array_append_new(
                out, json_pack("{s:s,s:I}", "name", gw->servers[k].cfg->name, "tools", (json_int_t)n[k]));
    free(n);
    return out;
}

/* The server name of each tool of the list (NEW array, parallel to tools). */
static json_t *servers_of(mg_gateway_t *gw, const json_t *tools)
{
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach((json_t *)tools, i, t)
    {
        const char *orig = NULL;
        long s = mg__catalog_route_name(gw, json_string_value(json_object_get(t, "name")) ?: "", &orig);
        json_array_append_new(out, s >= 0 ? json_string(gw->servers[s].cfg->name) : json_null());
    }
    return out;
}

/* A tools/call of the search tool: the result to answer with (NEW). */
static json_t *search(mg_call_t *c, const json_t *tools)
{
    mg_gateway_t *gw = c->gw;
    json_t *servers = servers_of(gw, tools);
    mg_toolsearch_session_t *st = c->modern || c->s == NULL ? NULL : c->s->ts;
    mg_toolsearch_search_info_t info;
    json_t *r = mg_toolsearch_search(gw->ts, &gw->cfg->tools, json_object_get(c->params, "arguments"), tools,
                                     servers, st, &info);
    json_decref(servers);
    if (info.added > 0) /* this session only, at once: its next tools/list has them */
        mg__catalog_list_changed(gw, c->s, MG_LIST_TOOLS);
    mg_log_json(MG_LOG_DEBUG, "tool search",
                json_pack("{s:s,s:i,s:s,s:I}", "session", c->s ? c->s->hash : "", "results", info.results,
                          "match", info.match, "added", (json_int_t)info.added));
    return r;
}

json_t *mg__toolsearch_tools(mg_call_t *c, json_t *tools, json_t **answer)
{
    mg_gateway_t *gw = c->gw;
    const mg_tools_config_t *tc = &gw->cfg->tools;
    int unknown;
    const mg_tool_profile_t *prof = profile_of(c, &unknown);
    *answer = NULL;
    if (strcmp(c->method, "tools/call") == 0) {
        *answer = search(c, tools);
        return tools;
    }
    int lazy = mg_toolsearch_lazy(tc, prof);
    json_t *counts = lazy ? server_counts(gw, tools) : NULL;
    json_t *loaded =
        c->modern && lazy ? mg_toolsearch_loaded_set(request_meta(c, MG_TOOLSEARCH_META_LOADED)) : NULL;
    const json_t *added = c->modern ? loaded : c->s != NULL ? mg_toolsearch_session_added(c->s->ts) : NULL;
    json_t *out = mg_toolsearch_list(tc, prof, tools, added, counts);
    json_decref(loaded);
    json_decref(counts);
    return out;
}

void mg__toolsearch_list_hints(const mg_call_t *c, json_t *result)
{
    if (!c->modern || !json_is_object(result))
        return;
    if (request_meta(c, MG_TOOLSEARCH_META_LOADED) == NULL &&
        request_meta(c, MG_TOOLSEARCH_META_PROFILE) == NULL)
        return;
    /* The list depends on this request's _meta: nobody else may reuse it. */
    json_object_set_new(result, "ttlMs", json_integer(0));
    json_object_set_new(result, "cacheScope", json_string("private"));
}

/* ---- /metrics ---- */

static void noop_list_cb(mg_pool_t *pool, mg_list_kind_t kind, json_t *items, void *data)
{
}

/* Per upstream and per tool, what the deployment exposes (server and gateway filters; profiles,
 * tenants and scopes are per caller and not applied): tools, tokens as listed and compacted, and
 * the initial tools/list of both modes. Shared pools only; a pool not yet fetched is asked now and
 * shows up on the next scrape. */
static void collect_cb(mg_metrics_out_t *out, void *data)
{
    mg_gateway_t *gw = data;
    const mg_tools_config_t *tc = &gw->cfg->tools;
    json_t *rows = json_array(); /* [server, original, tokens, compact] */
    size_t all_tokens = 0, always_tokens = 0, exposed = 0;
    for (size_t i = 0; i < gw->nservers; i++) {
        mg_pool_t *p = gw->servers[i].shared;
        if (p == NULL)
            continue;
        if (p->lists[MG_LIST_TOOLS] == NULL) {
            if (!p->stopping && p->waiters[MG_LIST_TOOLS] == NULL)
                mg__pool_list(p, MG_LIST_TOOLS, noop_list_cb, NULL);
            continue;
        }
        size_t k;
        json_t *tool;
        json_array_foreach(p->lists[MG_LIST_TOOLS], k, tool)
        {
            const char *orig = json_string_value(json_object_get(tool, "name"));
            if (orig == NULL)
                continue;
            char *ex = mg__catalog_expose(&gw->servers[i], orig);
            if (!mg_toolsearch_policy_allows(tc, gw->servers[i].cfg, NULL, NULL, orig, ex)) {
                free(ex);
                continue;
            }
            json_t *named = mg_json_copy(tool);
            json_object_set_new(named, "name", json_string(ex));
            json_t *small = mg_toolsearch_compact_tool(named);
            size_t tok = mg_toolsearch_tokens_json(named), ctok = mg_toolsearch_tokens_json(small);
            all_tokens += tc->compact ? ctok : tok;
            exposed++;
            if (mg_toolsearch_always(tc, NULL, ex)) {
                always_tokens += tc->compact ? ctok : tok;
            }
            json_array_append_new(rows, json_pack("{s:s,s:s,s:I,s:I}", "u", gw->servers[i].cfg->name, "t",
                                                  orig, "n", (json_int_t)tok, "c", (json_int_t)ctok));
            json_decref(small);
            json_decref(named);
            free(ex);
        }
    }
    struct {
        const char *name, *help, *key;
    } fam[] = {
        {"mcpgate_tool_tokens", "Estimated tokens of one tool definition as upstreams list it", "n"},
        {"mcpgate_tool_compact_tokens", "Estimated tokens of one tool definition after compaction", "c"},
    };
    for (int f = 0; f < 2; f++) {
        mg_metrics_family(out, fam[f].name, "gauge", fam[f].help);
        size_t k;
        json_t *row;
        json_array_foreach(rows, k, row)
        {
            const char *labels[] = {"upstream", json_string_value(json_object_get(row, "u")), "tool",
                                    json_string_value(json_object_get(row, "t")), NULL};
            mg_metrics_sample(out, fam[f].name, labels,
                              (double)json_integer_value(json_object_get(row, fam[f].key)));
        }
    }
    const char *ufam[][2] = {
        {"mcpgate_upstream_tools", "Tools an upstream exposes through the gateway filters"},
        {"mcpgate_upstream_tool_tokens", "Estimated tokens of an upstream's exposed tools"},
        {"mcpgate_upstream_tool_compact_tokens",
         "Estimated tokens of an upstream's exposed tools after compaction"}};
    for (int f = 0; f < 3; f++) {
        mg_metrics_family(out, ufam[f][0], "gauge", ufam[f][1]);
        for (size_t i = 0; i < gw->nservers; i++) {
            mg_pool_t *p = gw->servers[i].shared;
            if (p == NULL || p->lists[MG_LIST_TOOLS] == NULL)
                continue;
            double sum = 0;
            size_t k;
            json_t *row;
            json_array_foreach(rows, k, row)
            {
                if (strcmp(json_string_value(json_object_get(row, "u")), gw->servers[i].cfg->name) != 0)
                    continue;
                sum += f == 0 ? 1 : (double)json_integer_value(json_object_get(row, f == 1 ? "n" : "c"));
            }
            const char *labels[] = {"upstream", gw->servers[i].cfg->name, NULL};
            mg_metrics_sample(out, ufam[f][0], labels, sum);
        }
    }
    json_t *servers = json_array();
    for (size_t i = 0; i < gw->nservers; i++) {
        if (gw->servers[i].removed) /* a reload removed it; the name may be in use again */
            continue;
        json_int_t n = 0;
        size_t k;
        json_t *row;
        json_array_foreach(rows, k, row) n +=
            strcmp(json_string_value(json_object_get(row, "u")), gw->servers[i].cfg->name) == 0;
        if (n > 0)
            json_array_append_new(servers,
                                  json_pack("{s:s,s:I}", "name", gw->servers[i].cfg->name, "tools", n));
    }
    json_t *def = mg_toolsearch_tool_def(servers, exposed);
    json_decref(servers);
    size_t lazy_tokens = mg_toolsearch_tokens_json(def) + always_tokens;
    json_decref(def);
    mg_metrics_family(out, "mcpgate_tools_list_tokens", "gauge",
                      "Estimated tokens of the initial tools/list (default profile) in each mode");
    const char *la[] = {"mode", "all", NULL}, *lz[] = {"mode", "lazy", NULL};
    mg_metrics_sample(out, "mcpgate_tools_list_tokens", la, (double)all_tokens);
    mg_metrics_sample(out, "mcpgate_tools_list_tokens", lz, (double)lazy_tokens);
    mg_toolsearch_collect(gw->ts, out); /* the search counters */
    json_decref(rows);
}
