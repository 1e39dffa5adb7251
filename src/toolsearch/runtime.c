/*
 * runtime.c - the lazy catalog on plain data (runtime.h): the index cache, session state, the
 * search tool's answer and the tools/list view. The gateway's side (gateway/toolsearch_hooks.c)
 * gathers the inputs from a call.
 * Read next: index.c (the search), policy.c (filters), docs/tool-search.md.
 */
#include "runtime.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../http/query.h"

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
    cached_index_t cache[INDEX_CACHE];
    uint64_t tick;
    uint64_t searches, empty_searches, added, index_builds;
};

struct mg_toolsearch_session {
    const mg_tool_profile_t *profile;
    json_t *added; /* exposed name -> true, in the order searches added them */
};

/* ---- lifetime ---- */

mg_toolsearch_t *mg_toolsearch_new(void)
{
    return calloc(1, sizeof(mg_toolsearch_t));
}

void mg_toolsearch_free(mg_toolsearch_t *ts)
{
    if (ts == NULL)
        return;
    for (int i = 0; i < INDEX_CACHE; i++)
        mg_toolsearch_index_free(ts->cache[i].ix);
    free(ts);
}

void mg_toolsearch_collect(const mg_toolsearch_t *ts, mg_metrics_out_t *out)
{
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
}

int mg_toolsearch_profile_select(const mg_tools_config_t *tc, const char *header, size_t hlen,
                                 const char *query, size_t qlen, char *out, size_t outlen, char *why,
                                 size_t whylen)
{
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

mg_toolsearch_session_t *mg_toolsearch_session_new(const mg_tools_config_t *tc, const char *profile)
{
    mg_toolsearch_session_t *st = calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->profile = mg_toolsearch_profile_find(tc, profile);
    return st; /* st->added is created by the first search that adds a tool (memory per idle session) */
}

void mg_toolsearch_session_free(mg_toolsearch_session_t *st)
{
    if (st == NULL)
        return;
    json_decref(st->added);
    free(st);
}

const mg_tool_profile_t *mg_toolsearch_session_profile(const mg_toolsearch_session_t *st)
{
    return st != NULL ? st->profile : NULL;
}

void mg_toolsearch_session_rebind(mg_toolsearch_session_t *st, const mg_tools_config_t *tc)
{
    if (st == NULL || st->profile == NULL)
        return;
    const mg_tool_profile_t *p = mg_toolsearch_profile_find(tc, st->profile->name);
    if (p != NULL)
        st->profile = p;
}

const json_t *mg_toolsearch_session_added(const mg_toolsearch_session_t *st)
{
    return st != NULL ? st->added : NULL;
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

json_t *mg_toolsearch_search(mg_toolsearch_t *ts, const mg_tools_config_t *tc, const json_t *args,
                             const json_t *tools, const json_t *servers, mg_toolsearch_session_t *st,
                             mg_toolsearch_search_info_t *info)
{
    info->results = 0;
    info->match = "none";
    info->added = 0;
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
    mg_toolsearch_index_t *ix = ts ? index_for(ts, tools, servers) : NULL;
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
    info->results = n;
    info->match = browse ? "none" : how == MG_TOOLSEARCH_FUZZY ? "spelling" : "words";
    info->added = added;
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

json_t *mg_toolsearch_loaded_set(const json_t *l)
{
    json_t *set = json_object();
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

int mg_toolsearch_lazy(const mg_tools_config_t *tc, const mg_tool_profile_t *prof)
{
    return mg_toolsearch_mode(tc, prof) == MG_TOOLS_LAZY;
}

json_t *mg_toolsearch_list(const mg_tools_config_t *tc, const mg_tool_profile_t *prof, json_t *tools,
                           const json_t *added, const json_t *server_counts)
{
    int lazy = mg_toolsearch_lazy(tc, prof);
    json_t *out = json_array();
    if (out == NULL)
        return tools;
    if (lazy)
        json_array_append_new(out, mg_toolsearch_tool_def(server_counts, json_array_size(tools)));
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
    json_decref(tools);
    return out;
}
