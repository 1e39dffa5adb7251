/*
 * runtime.c - the lazy catalog in the request path (runtime.h).
 *
 * tools/list: dispatch.c merges every upstream's tools, drops what mg_toolsearch_allows() refuses
 * and hands the rest to mg_toolsearch_tools(), which answers with the view of the session's mode:
 * all of them, or the search tool + "always" tools + what this session's searches added.
 * tools/call search_tools: the same merged, filtered list reaches mg_toolsearch_tools() with an
 * answer slot; the query is ranked by the index of that exact list (cached by content hash), the
 * matches are added to the session's set and notifications/tools/list_changed goes to that session
 * only, before the result. Any allowed tool stays callable whether listed or not (dispatch.c).
 * Read next: index.c (ranking), policy.c (the filter), docs/tool-search.md.
 */
#include "runtime.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../http/query.h"
#include "../obs/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_CACHE   8
#define DEFAULT_LIMIT 5
#define MAX_QUERY     1000

typedef struct cached_index {
    uint64_t key; /* mg_toolsearch_index_key() of the list; 0 = empty slot */
    mg_toolsearch_index_t *ix;
    uint64_t used;
} cached_index_t;

struct mg_toolsearch {
    mg_gateway_t *gw;
    cached_index_t cache[INDEX_CACHE];
    uint64_t tick;
    uint64_t searches, empty_searches, added, index_builds;
};

struct mg_toolsearch_session {
    const mg_tool_profile_t *profile;
    json_t *added; /* exposed name -> true, in the order searches added them */
};

static void collect_cb(mg_metrics_out_t *out, void *data);

/* ---- lifetime ---- */

int mg_toolsearch_new(mg_gateway_t *gw)
{
    mg_toolsearch_t *ts = calloc(1, sizeof *ts);
    if (ts == NULL)
        return MG_ENOMEM;
    ts->gw = gw;
    gw->ts = ts;
    mg_metrics_register(collect_cb, gw);
    return 0;
}

void mg_toolsearch_free(mg_gateway_t *gw)
{
    mg_toolsearch_t *ts = gw->ts;
    if (ts == NULL)
        return;
    mg_metrics_unregister(collect_cb, gw);
    for (int i = 0; i < INDEX_CACHE; i++)
        mg_toolsearch_index_free(ts->cache[i].ix);
    free(ts);
    gw->ts = NULL;
}

int mg_toolsearch_profile_select(mg_gateway_t *gw, const char *header, size_t hlen, const char *query,
                                 size_t qlen, char *out, size_t outlen, char *why, size_t whylen)
{
    const mg_tools_config_t *tc = &gw->cfg->tools;
    const char *v = header;
    size_t vlen = hlen;
    char qv[72];
    if (v == NULL) { /* ?profile=NAME, percent-decoded (http/query.h) */
        int r = mg_http_query_get(query, qlen, "profile", qv, sizeof qv);
        if (r == MG_EINVAL) /* does not decode: an unknown profile, refused below */
            qv[0] = '\0';
        if (r != 0) {
            v = qv;
            vlen = r == MG_ETOOBIG ? sizeof qv : strlen(qv);
        }
    }
    if (v == NULL) {
        snprintf(out, outlen, "%s", tc->default_profile ? tc->default_profile : "");
        return 0;
    }
    snprintf(out, outlen, "%.*s", (int)(vlen < outlen - 1 ? vlen : outlen - 1), v);
    if (vlen >= outlen || mg_toolsearch_profile_find(tc, out) == NULL) {
        char list[256];
        size_t o = 0;
        list[0] = '\0';
        for (size_t i = 0; i < tc->nprofiles && o < sizeof list; i++)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", tc->profiles[i].name);
        for (char *p = out; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == '"')
                *p = '?';
        snprintf(why, whylen, "unknown tool profile '%.64s' (configured: %s)", out,
                 tc->nprofiles ? list : "none; see gateway.tools.profiles");
        out[0] = '\0';
        return MG_ENOTFOUND;
    }
    return 0;
}

int mg_toolsearch_session_open(mg_session_t *s, const char *profile)
{
    mg_toolsearch_session_t *st = calloc(1, sizeof *st);
    if (st == NULL)
        return MG_ENOMEM;
    st->profile = mg_toolsearch_profile_find(&s->gw->cfg->tools, profile);
    s->ts = st; /* st->added is created by the first search that adds a tool (memory per idle session) */
    return 0;
}

void mg_toolsearch_session_close(mg_session_t *s)
{
    mg_toolsearch_session_t *st = s->ts;
    if (st == NULL)
        return;
    json_decref(st->added);
    free(st);
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
        return c->s->ts->profile;
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

int mg_toolsearch_allows(const mg_call_t *c, size_t server, const char *original, const char *exposed)
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

int mg_toolsearch_is_search(const mg_call_t *c, const char *name)
{
    int unknown;
    if (name == NULL || strcmp(name, MG_TOOLSEARCH_TOOL_NAME) != 0)
        return 0;
    const mg_tool_profile_t *prof = profile_of(c, &unknown);
    return mg_toolsearch_mode(&c->gw->cfg->tools, prof) == MG_TOOLS_LAZY;
}

/* ---- the search tool ---- */

json_t *mg_toolsearch_tool_def(const json_t *servers, size_t total_tools)
{
    char from[1024];
    size_t o = 0;
    from[0] = '\0';
    size_t i;
    json_t *srv;
    json_array_foreach((json_t *)servers, i, srv)
    {
        if (o >= sizeof from - 80) {
            o += (size_t)snprintf(from + o, sizeof from - o, ", ...");
            break;
        }
        o += (size_t)snprintf(from + o, sizeof from - o, "%s%s (%lld)", i ? ", " : "",
                              json_string_value(json_object_get(srv, "name")),
                              (long long)json_integer_value(json_object_get(srv, "tools")));
    }
    char desc[1400];
    snprintf(desc, sizeof desc,
             "Find tools by what you want to do. Only a few of the %zu available tools are listed; describe "
             "the task in a few words (e.g. \"create a GitHub issue\") to get the best matches with their "
             "full definitions. They are added to your tool list; call them by name.%s%s",
             total_tools, o ? " Tools come from: " : "", from);
    return json_pack("{s:s,s:s,s:s,s:{s:s,s:{s:{s:s,s:s},s:{s:s,s:i,s:i,s:s}},s:[s]},s:{s:b,s:b},s:{s:b}}",
                     "name", MG_TOOLSEARCH_TOOL_NAME, "title", "Search tools", "description", desc,
                     "inputSchema", "type", "object", "properties", "query", "type", "string", "description",
                     "What you want to do, in a few words", "limit", "type", "integer", "minimum", 1,
                     "maximum", MG_TOOLSEARCH_MAX_LIMIT, "description", "Most tools to return (default 5)",
                     "required", "query", "annotations", "readOnlyHint", 1, "openWorldHint", 0, "_meta",
                     MG_TOOLSEARCH_META_ALWAYS, 1);
}

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

/* The index of exactly this list: cached by content hash (a changed upstream list, a restart or
 * another filter is another key), the least recently used of INDEX_CACHE slots rebuilt. */
static mg_toolsearch_index_t *index_for(mg_toolsearch_t *ts, const json_t *tools, const json_t *servers)
{
    uint64_t key = mg_toolsearch_index_key(tools, servers);
    cached_index_t *victim = &ts->cache[0];
    for (int i = 0; i < INDEX_CACHE; i++) {
        cached_index_t *e = &ts->cache[i];
        if (e->key == key && e->ix != NULL) {
            e->used = ++ts->tick;
            return e->ix;
        }
        if (e->used < victim->used)
            victim = e;
    }
    mg_toolsearch_index_t *ix = NULL;
    int r = mg_toolsearch_index_new(tools, servers, &ix);
    if (r != 0) {
        mg_log_json(MG_LOG_ERROR, "tool search index could not be built",
                    json_pack("{s:s}", "error", mg_strerror(r)));
        return NULL;
    }
    mg_toolsearch_index_free(victim->ix);
    victim->ix = ix;
    victim->key = key;
    victim->used = ++ts->tick;
    ts->index_builds++;
    return ix;
}

static json_t *text_result(const char *text, int is_error)
{
    json_t *r = json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", text);
    if (is_error)
        json_object_set_new(r, "isError", json_true());
    return r;
}

/* A tool's description as one line: its first sentence, at most ~160 bytes (cut between UTF-8
 * characters, "..." added), blanks folded. */
static void one_line(const char *d, char *out, size_t cap)
{
    size_t o = 0;
    int space = 0;
    for (const char *p = d ? d : ""; *p != '\0' && o + 4 < cap; p++) {
        if ((*p == '.' && (p[1] == ' ' || p[1] == '\n' || p[1] == '\0')) || (*p == '\n' && p[1] == '\n')) {
            if (*p == '.')
                out[o++] = '.';
            break;
        }
        if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
            space = o > 0;
            continue;
        }
        if (space)
            out[o++] = ' ';
        space = 0;
        out[o++] = *p;
    }
    if (o + 4 >= cap) {
        while (o > 0 && ((unsigned char)out[o - 1] & 0xC0) == 0x80)
            o--; /* inside a character: drop it whole */
        if (o > 0 && ((unsigned char)out[o - 1] & 0x80))
            o--;
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* What an agent needs to choose: name, title, one line, why it matched (NEW). */
static json_t *summary_of(const json_t *tool, const mg_toolsearch_hit_t *h)
{
    char line[168];
    one_line(json_string_value(json_object_get(tool, "description")), line, sizeof line);
    json_t *r = json_pack("{s:O,s:s}", "name", json_object_get(tool, "name"), "description", line);
    const json_t *title = json_object_get(tool, "title");
    if (!json_is_string(title))
        title = json_object_get(json_object_get(tool, "annotations"), "title");
    if (json_is_string(title))
        json_object_set(r, "title", (json_t *)title);
    if (h->matched[0] != '\0')
        json_object_set_new(r, "matched", json_string(h->matched));
    return r;
}

static void append(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    if (*buf == NULL)
        return;
    if (*len + n + 1 > *cap) {
        size_t c = *cap * 2 + n + 1;
        char *g = realloc(*buf, c);
        if (g == NULL) {
            free(*buf);
            *buf = NULL;
            return;
        }
        *buf = g;
        *cap = c;
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

static json_t *search(mg_call_t *c, const json_t *tools)
{
    mg_gateway_t *gw = c->gw;
    mg_toolsearch_t *ts = gw->ts;
    const mg_tools_config_t *tc = &gw->cfg->tools;
    const json_t *args = json_object_get(c->params, "arguments");
    const char *query = json_string_value(json_object_get(args, "query"));
    const json_t *lim = json_object_get(args, "limit");
    if (query == NULL || query[0] == '\0' || strlen(query) > MAX_QUERY)
        return text_result("search_tools needs \"query\": what you want to do, in a few words (at most 1000 "
                           "characters), e.g. {\"query\": \"create a GitHub issue\"}",
                           1);
    size_t limit = tc->search_limit ? tc->search_limit : DEFAULT_LIMIT;
    if (lim != NULL) {
        json_int_t l = json_is_integer(lim) ? json_integer_value(lim) : 0;
        if (l < 1 || l > MG_TOOLSEARCH_MAX_LIMIT)
            return text_result("search_tools: \"limit\" must be a whole number from 1 to 50", 1);
        limit = (size_t)l;
    }
    json_t *servers = servers_of(gw, tools);
    mg_toolsearch_index_t *ix = ts ? index_for(ts, tools, servers) : NULL;
    json_decref(servers);
    mg_toolsearch_hit_t hits[MG_TOOLSEARCH_MAX_LIMIT];
    mg_toolsearch_how_t how = MG_TOOLSEARCH_MATCHED;
    int n = ix ? mg_toolsearch_index_find(ix, query, hits, limit, &how) : MG_EINTERNAL;
    if (n < 0)
        return text_result("search_tools: the search index is not available; try again", 1);
    if (ts != NULL) {
        ts->searches++;
        ts->empty_searches += n == 0 || how == MG_TOOLSEARCH_BROWSE;
    }
    /* A browse answer only shows what exists: nothing is added, no definitions are sent. */
    int browse = how == MG_TOOLSEARCH_BROWSE;
    json_t *defs = json_array(), *results = json_array();
    mg_toolsearch_session_t *st = c->modern ? NULL : c->s->ts;
    size_t added = 0;
    size_t cap = 1024, len = 0;
    char *text = malloc(cap);
    if (text != NULL)
        text[0] = '\0';
    char head[1400];
    /* The query as echoed: at most 300 bytes, cut between UTF-8 characters (the text must stay
     * valid UTF-8 for the JSON answer). */
    int qlen = (int)strlen(query);
    if (qlen > 300) {
        qlen = 300;
        while (qlen > 0 && ((unsigned char)query[qlen] & 0xC0) == 0x80)
            qlen--;
    }
    if (browse)
        snprintf(
            head, sizeof head,
            "No tool matches \"%.*s\". Some of the %zu tools, a few per server, to show what exists; "
            "search again with the action and the service, e.g. \"send slack message\", \"read file\":\n",
            qlen, query, json_array_size(tools));
    else
        snprintf(head, sizeof head, "%d tool%s for \"%.*s\"%s%s:\n", n, n == 1 ? "" : "s", qlen, query,
                 how == MG_TOOLSEARCH_FUZZY ? " (no tool uses these words; these are close in spelling)" : "",
                 st != NULL ? "; now in your tool list, call them by name"
                            : "; call them by name with the definitions that follow");
    append(&text, &len, &cap, head);
    for (int i = 0; i < n; i++) {
        const json_t *tool = json_array_get(tools, hits[i].pos);
        json_t *sum = summary_of(tool, &hits[i]);
        const char *title = json_string_value(json_object_get(sum, "title"));
        const char *why = json_string_value(json_object_get(sum, "matched"));
        char line[700];
        snprintf(line, sizeof line, "- %s%s%s%s: %s%s%s%s\n", json_string_value(json_object_get(sum, "name")),
                 title ? " (" : "", title ? title : "", title ? ")" : "",
                 json_string_value(json_object_get(sum, "description")), why ? " [matched: " : "",
                 why ? why : "", why ? "]" : "");
        append(&text, &len, &cap, line);
        json_array_append_new(results, sum);
        if (browse)
            continue;
        json_t *d = tc->compact ? mg_toolsearch_compact_tool(tool) : mg_json_deep_copy(tool);
        if (d == NULL)
            continue;
        json_object_del(d, "_meta");
        json_array_append_new(defs, d);
        const char *name = json_string_value(json_object_get(tool, "name"));
        if (st != NULL && name != NULL && json_object_get(st->added, name) == NULL &&
            json_object_size(st->added) < MG_TOOLSEARCH_MAX_ADDED) {
            if (st->added == NULL)
                st->added = json_object();
            json_object_set_new(st->added, name, json_true());
            added++;
        }
    }
    if (ts != NULL)
        ts->added += added;
    if (added > 0) /* this session only, at once: its next tools/list has them */
        mg__catalog_list_changed(gw, c->s, MG_LIST_TOOLS);
    char *list = json_dumps(defs, JSON_COMPACT);
    json_t *r;
    if (text == NULL || list == NULL || results == NULL) {
        r = text_result("out of memory", 1);
    } else {
        /* content[0]: the summary lines; content[1]: the full definitions (JSON array, absent for a
         * browse answer); structuredContent: the summaries as data. */
        r = json_pack("{s:[{s:s,s:s}],s:{s:s,s:s,s:O}}", "content", "type", "text", "text", text,
                      "structuredContent", "query", query, "match",
                      browse                       ? "none"
                      : how == MG_TOOLSEARCH_FUZZY ? "spelling"
                                                   : "words",
                      "tools", results);
        if (r != NULL && !browse)
            json_array_append_new(json_object_get(r, "content"),
                                  json_pack("{s:s,s:s}", "type", "text", "text", list));
        if (r == NULL)
            r = text_result("out of memory", 1);
    }
    free(text);
    free(list);
    json_decref(defs);
    json_decref(results);
    mg_log_json(MG_LOG_DEBUG, "tool search",
                json_pack("{s:s,s:i,s:s,s:I}", "session", c->s ? c->s->hash : "", "results", n, "match",
                          browse                       ? "none"
                          : how == MG_TOOLSEARCH_FUZZY ? "spelling"
                                                       : "words",
                          "added", (json_int_t)added));
    return r;
}

/* ---- tools/list ---- */

static void set_meta(json_t *tool, const char *key, json_t *value /* stolen */)
{
    json_t *meta = json_object_get(tool, "_meta");
    meta = json_is_object(meta) ? mg_json_deep_copy(meta) : json_object(); /* never touch the cached list */
    json_object_set_new(meta, key, value);
    json_object_set_new(tool, "_meta", meta);
}

/* The tools a 2026-07-28 request says it holds (its first MG_TOOLSEARCH_MAX_ADDED names), as a set. */
static json_t *loaded_by_request(const mg_call_t *c)
{
    json_t *set = json_object();
    const json_t *l = request_meta(c, MG_TOOLSEARCH_META_LOADED);
    size_t i;
    json_t *v;
    json_array_foreach((json_t *)l, i, v)
    {
        if (i >= MG_TOOLSEARCH_MAX_ADDED)
            break;
        if (json_is_string(v))
            json_object_set_new(set, json_string_value(v), json_true());
    }
    return set;
}

json_t *mg_toolsearch_tools(mg_call_t *c, json_t *tools, json_t **answer)
{
    mg_gateway_t *gw = c->gw;
    const mg_tools_config_t *tc = &gw->cfg->tools;
    int unknown;
    const mg_tool_profile_t *prof = profile_of(c, &unknown);
    int lazy = mg_toolsearch_mode(tc, prof) == MG_TOOLS_LAZY;
    *answer = NULL;
    if (strcmp(c->method, "tools/call") == 0) {
        *answer = search(c, tools);
        return tools;
    }
    json_t *out = json_array();
    if (out == NULL)
        return tools;
    if (lazy) {
        json_t *servers = server_counts(gw, tools);
        json_array_append_new(out, mg_toolsearch_tool_def(servers, json_array_size(tools)));
        json_decref(servers);
    }
    json_t *loaded = c->modern && lazy ? loaded_by_request(c) : NULL;
    const json_t *added = c->modern ? loaded : c->s != NULL && c->s->ts != NULL ? c->s->ts->added : NULL;
    size_t i;
    json_t *tool;
    json_array_foreach(tools, i, tool)
    {
        const char *name = json_string_value(json_object_get(tool, "name"));
        if (name == NULL)
            continue;
        int always = mg_toolsearch_always(tc, prof, name);
        int found = lazy && !always && json_object_get(added, name) != NULL;
        if (lazy && !always && !found)
            continue;
        json_t *t = tc->compact ? mg_toolsearch_compact_tool(tool) : mg_json_copy(tool);
        if (t == NULL)
            continue;
        if (always || found)
            set_meta(t, MG_TOOLSEARCH_META_ALWAYS, json_true());
        if (found)
            set_meta(t, MG_TOOLSEARCH_META_FOUND, json_string(MG_TOOLSEARCH_TOOL_NAME));
        json_array_append_new(out, t);
    }
    json_decref(loaded);
    json_decref(tools);
    return out;
}

void mg_toolsearch_list_hints(const mg_call_t *c, json_t *result)
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
    mg_toolsearch_t *ts = gw->ts;
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
    mg_metrics_family(out, "mcpgate_tool_searches_total", "counter", "search_tools calls answered");
    mg_metrics_sample(out, "mcpgate_tool_searches_total", NULL, ts ? (double)ts->searches : 0);
    mg_metrics_family(out, "mcpgate_tool_searches_empty_total", "counter",
                      "search_tools calls with no match");
    mg_metrics_sample(out, "mcpgate_tool_searches_empty_total", NULL, ts ? (double)ts->empty_searches : 0);
    mg_metrics_family(out, "mcpgate_tool_search_added_total", "counter",
                      "Tools added to sessions' tools/list by searches");
    mg_metrics_sample(out, "mcpgate_tool_search_added_total", NULL, ts ? (double)ts->added : 0);
    mg_metrics_family(out, "mcpgate_tool_search_index_builds_total", "counter",
                      "Search indexes built (a catalog or filter changed)");
    mg_metrics_sample(out, "mcpgate_tool_search_index_builds_total", NULL, ts ? (double)ts->index_builds : 0);
    json_decref(rows);
}
