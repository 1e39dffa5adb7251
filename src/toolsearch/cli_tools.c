/*
 * cli_tools.c - `mcpgate tools`: starts every enabled upstream of a config, lists its tools and
 * prints what each server and tool costs a model in tokens (name, description, schemas), what
 * compaction would save, what the lazy mode's first tools/list would cost, and warnings (too many
 * tools, too many tokens, long descriptions), as a table or as JSON (--json).
 *
 * Exit status: 0 listed (warnings are not failures), 1 a server could not be listed, 2 usage or
 * config error. Tool names are shown as clients see them (server prefix when several are enabled);
 * the filters of the config (server, gateway, and --profile) mark tools hidden and leave them out of
 * the totals. Read next: tokens.c (the estimate), docs/tool-search.md.
 */
#include "toolsearch.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../upstream/listall.h"

#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: mcpgate tools [--config FILE] [--json] [--definitions] [--profile NAME] [--timeout MS]\n"
    "                     [--max-tools N] [--max-tokens N] [--max-description N] [--log-level LEVEL]\n"
    "\n"
    "Starts every enabled server of FILE (or MCPGATE_CONFIG, or the embedded config), lists its tools\n"
    "and prints the estimated token cost of each tool definition (name, description, schemas) as clients\n"
    "see it, per server and in total, with compaction (gateway.tools.compact) and the lazy mode's first\n"
    "tools/list (gateway.tools.mode \"lazy\") for comparison.\n"
    "\n"
    "  --json              machine-readable output\n"
    "  --definitions       with --json: include each exposed tool definition\n"
    "  --profile NAME      apply gateway.tools.profiles.NAME (filter, mode, always) as a client would\n"
    "  --timeout MS        how long to wait for the servers (default 60000)\n"
    "  --max-tools N       warn when a server or the catalog exposes more tools (default 30)\n"
    "  --max-tokens N      warn when a server or the catalog costs more tokens (default 10000)\n"
    "  --max-description N warn about descriptions longer than N characters (default 1000)\n"
    "Exit status: 0 listed, 1 a server could not be listed, 2 usage or config error.\n";

/* "12,345" */
static const char *num(size_t v, char *buf, size_t n)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%zu", v);
    size_t len = strlen(raw), o = 0;
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

typedef struct opts {
    const char *config, *profile, *log_level;
    int json, definitions;
    unsigned long timeout_ms, max_tools, max_tokens, max_desc;
} opts_t;

static int parse_ulong(const char *s, unsigned long *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    *out = strtoul(s, &end, 10);
    return *end == '\0' ? 0 : -1;
}

static int parse(int argc, char **argv, opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->config = getenv("MCPGATE_CONFIG");
    o->timeout_ms = 60000;
    o->max_tools = 30;
    o->max_tokens = 10000;
    o->max_desc = 1000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
        if (strcmp(a, "--json") == 0) {
            o->json = 1;
            continue;
        }
        if (strcmp(a, "--definitions") == 0) {
            o->definitions = 1;
            continue;
        }
        static const char *const names[] = {"--config",    "--profile",    "--log-level",      "--timeout",
                                            "--max-tools", "--max-tokens", "--max-description"};
        int k = -1;
        const char *val = NULL;
        for (int j = 0; j < 7 && k < 0; j++) {
            size_t n = strlen(names[j]);
            if (strncmp(a, names[j], n) == 0 && (a[n] == '\0' || a[n] == '=')) {
                k = j;
                val = a[n] == '=' ? a + n + 1 : i + 1 < argc ? argv[++i] : NULL;
            }
        }
        if (k < 0) {
            fprintf(stderr, "mcpgate tools: unknown argument '%s'\n%s", a, usage);
            return 2;
        }
        if (val == NULL) {
            fprintf(stderr, "mcpgate tools: %s needs a value\n", names[k]);
            return 2;
        }
        unsigned long *slots[] = {NULL,          NULL,           NULL,        &o->timeout_ms,
                                  &o->max_tools, &o->max_tokens, &o->max_desc};
        if (k == 0)
            o->config = val;
        else if (k == 1)
            o->profile = val;
        else if (k == 2)
            o->log_level = val;
        else if (parse_ulong(val, slots[k]) != 0) {
            fprintf(stderr, "mcpgate tools: %s needs a whole number, got '%s'\n", names[k], val);
            return 2;
        }
    }
    return 0;
}

static void warn(json_t *warnings, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(json_t *warnings, const char *fmt, ...)
{
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    json_array_append_new(warnings, json_string(m));
}

int mg_cli_tools(int argc, char **argv)
{
    opts_t o;
    int rc = parse(argc, argv, &o);
    if (rc != 0)
        return rc;
    mg_log_level_t lvl = MG_LOG_WARN;
    if (o.log_level != NULL && mg_log_level_parse(o.log_level, &lvl) != 0) {
        fprintf(stderr, "mcpgate tools: --log-level must be debug, info, warn or error\n");
        return 2;
    }
    mg_log_set_level(lvl);
    char dir[PATH_MAX];
    mg_config_self_dir(dir, sizeof dir);
    mg_config_t cfg;
    mg_config_errors_t errs = {0};
    int r = o.config ? mg_config_load(o.config, dir, &cfg, &errs)
                     : mg_config_parse(mg_config_embedded_json(), "<embedded>", dir, &cfg, &errs);
    if (r != 0) {
        mg_config_errors_print(stderr, "mcpgate tools", o.config ? o.config : "the embedded config", &errs);
        mg_config_errors_dispose(&errs);
        return 2;
    }
    mg_config_errors_dispose(&errs);
    const mg_tools_config_t *tc = &cfg.tools;
    const mg_tool_profile_t *prof = NULL;
    if (o.profile != NULL && (prof = mg_toolsearch_profile_find(tc, o.profile)) == NULL) {
        fprintf(stderr, "mcpgate tools: --profile %s is not one of gateway.tools.profiles\n", o.profile);
        mg_config_dispose(&cfg);
        return 2;
    }
    if (prof == NULL && tc->default_profile != NULL)
        prof = mg_toolsearch_profile_find(tc, tc->default_profile);

    mg_upstream_list_opts_t lo = {"mcpgate-tools",
                                  1,
                                  {"tools/list"},
                                  {"tools"},
                                  {"tools"},
                                  100,
                                  o.timeout_ms,
                                  "the result has no tools array",
                                  "did not list its tools before --timeout"};
    mg_upstream_listing_t *srv = NULL;
    size_t nsrv = 0;
    if (mg_upstream_list_all(&cfg, &lo, &srv, &nsrv) != 0) {
        fprintf(stderr, "mcpgate tools: out of memory\n");
        mg_config_dispose(&cfg);
        return 1;
    }

    /* Figures. */
    const char *sep = cfg.namespace_separator ? cfg.namespace_separator : "__";
    json_t *out_servers = json_array(), *warnings = json_array(), *always_names = json_array();
    size_t tot_tools = 0, tot_hidden = 0, tot_compact = 0, always_tokens = 0;
    json_t *counts = json_array();
    int failed = 0;
    for (size_t i = 0; i < nsrv; i++) {
        const mg_upstream_listing_t *s = &srv[i];
        json_t *jt = json_array();
        size_t n = 0, hidden = 0, tokens = 0, compact = 0;
        size_t k;
        json_t *tool;
        json_array_foreach(s->lists[0], k, tool)
        {
            const char *orig = json_string_value(json_object_get(tool, "name"));
            if (orig == NULL)
                continue;
            char exposed[512];
            snprintf(exposed, sizeof exposed, "%s%s%s", nsrv > 1 ? s->cfg->name : "", nsrv > 1 ? sep : "",
                     orig);
            json_t *def = mg_json_copy(tool);
            json_object_set_new(def, "name", json_string(exposed));
            json_t *small = mg_toolsearch_compact_tool(def);
            mg_toolsearch_cost_t cost;
            mg_toolsearch_tokens_tool(def, &cost);
            size_t ctok = mg_toolsearch_tokens_json(small);
            int shown = mg_toolsearch_policy_allows(tc, s->cfg, prof, NULL, orig, exposed);
            json_t *row = json_pack("{s:s,s:s,s:b,s:I,s:I,s:I,s:I,s:I,s:I}", "name", orig, "exposed", exposed,
                                    "hidden", !shown, "tokens", (json_int_t)cost.total, "compactTokens",
                                    (json_int_t)ctok, "nameTokens", (json_int_t)cost.name,
                                    "descriptionTokens", (json_int_t)cost.description, "schemaTokens",
                                    (json_int_t)cost.schema, "descriptionChars", (json_int_t)cost.desc_chars);
            if (o.definitions)
                json_object_set(row, "definition", def);
            if (shown) {
                n++;
                tokens += cost.total;
                compact += ctok;
                if (cost.desc_chars > o.max_desc)
                    warn(warnings,
                         "%s: description of %zu characters (over %lu): every client pays for it "
                         "on every turn; hide the tool or use gateway.tools.mode \"lazy\"",
                         exposed, cost.desc_chars, o.max_desc);
                if (mg_toolsearch_always(tc, prof, exposed)) {
                    always_tokens += tc->compact ? ctok : cost.total;
                    json_array_append_new(always_names, json_string(exposed));
                }
            } else {
                hidden++;
            }
            json_array_append_new(jt, row);
            json_decref(small);
            json_decref(def);
        }
        json_t *js = json_pack("{s:s,s:I,s:I,s:I,s:I,s:o}", "name", s->cfg->name, "toolCount", (json_int_t)n,
                               "hidden", (json_int_t)hidden, "tokens", (json_int_t)tokens, "compactTokens",
                               (json_int_t)compact, "tools", jt);
        if (s->error != NULL) {
            failed = 1;
            json_object_set_new(js, "error", json_string(s->error));
            warn(warnings, "%s: %s", s->cfg->name, s->error);
        }
        if (n > o.max_tools)
            warn(warnings,
                 "%s: %zu tools (over %lu): filter them (mcpServers.%s.tools) or use gateway.tools.mode "
                 "\"lazy\"",
                 s->cfg->name, n, o.max_tools, s->cfg->name);
        if (tokens > o.max_tokens)
            warn(warnings, "%s: %zu tokens of tool definitions (over %lu)", s->cfg->name, tokens,
                 o.max_tokens);
        if (n > 0)
            json_array_append_new(counts,
                                  json_pack("{s:s,s:I}", "name", s->cfg->name, "tools", (json_int_t)n));
        json_array_append_new(out_servers, js);
        tot_tools += n;
        tot_hidden += hidden;
        tot_compact += compact;
    }
    size_t raw_tokens = 0;
    {
        size_t k;
        json_t *js;
        json_array_foreach(out_servers, k, js) raw_tokens +=
            (size_t)json_integer_value(json_object_get(js, "tokens"));
    }
    if (tot_tools > o.max_tools)
        warn(warnings, "catalog: %zu tools (over %lu): consider gateway.tools.mode \"lazy\"", tot_tools,
             o.max_tools);
    if (raw_tokens > o.max_tokens)
        warn(warnings, "catalog: %zu tokens of tool definitions (over %lu) in every request's context",
             raw_tokens, o.max_tokens);
    json_t *search_def = mg_toolsearch_tool_def(counts, tot_tools);
    size_t lazy_tokens = mg_toolsearch_tokens_json(search_def) + always_tokens;
    json_decref(search_def);
    json_decref(counts);
    double cut = raw_tokens ? 100.0 * (1.0 - (double)lazy_tokens / (double)raw_tokens) : 0;
    double ccut = raw_tokens ? 100.0 * (1.0 - (double)tot_compact / (double)raw_tokens) : 0;
    const char *mode = mg_toolsearch_mode(tc, prof) == MG_TOOLS_LAZY ? "lazy" : "all";

    if (o.json) {
        json_t *doc = json_pack(
            "{s:s,s:s?,s:o,s:{s:I,s:I,s:I,s:I,s:I,s:f},s:{s:I,s:o,s:f},s:o}", "mode", mode, "profile",
            prof ? prof->name : NULL, "servers", out_servers, "totals", "servers", (json_int_t)nsrv, "tools",
            (json_int_t)tot_tools, "hidden", (json_int_t)tot_hidden, "tokens", (json_int_t)raw_tokens,
            "compactTokens", (json_int_t)tot_compact, "compactCutPercent", ccut, "lazy", "tokens",
            (json_int_t)lazy_tokens, "alwaysTools", always_names, "cutPercent", cut, "warnings", warnings);
        char *text = json_dumps(doc, JSON_INDENT(2));
        if (text != NULL)
            puts(text);
        free(text);
        json_decref(doc);
    } else {
        char a[32], b[32], c[32], d[32];
        printf("%-48s %9s %9s %8s %7s\n", "SERVER / TOOL (as clients see it)", "TOKENS", "COMPACT", "SCHEMA",
               "DESC");
        size_t k;
        json_t *js;
        json_array_foreach(out_servers, k, js)
        {
            char head[128];
            snprintf(head, sizeof head, "%s (%lld tools%s)", json_string_value(json_object_get(js, "name")),
                     (long long)json_integer_value(json_object_get(js, "toolCount")),
                     json_object_get(js, "error") ? ", FAILED" : "");
            printf("%-48s %9s %9s\n", head,
                   num((size_t)json_integer_value(json_object_get(js, "tokens")), a, sizeof a),
                   num((size_t)json_integer_value(json_object_get(js, "compactTokens")), b, sizeof b));
            size_t t;
            json_t *row;
            json_array_foreach(json_object_get(js, "tools"), t, row)
            {
                char label[128];
                snprintf(label, sizeof label, "  %.100s%s",
                         json_string_value(json_object_get(row, "exposed")),
                         json_is_true(json_object_get(row, "hidden")) ? " (hidden)" : "");
                printf(
                    "%-48s %9s %9s %8s %7s\n", label,
                    num((size_t)json_integer_value(json_object_get(row, "tokens")), a, sizeof a),
                    num((size_t)json_integer_value(json_object_get(row, "compactTokens")), b, sizeof b),
                    num((size_t)json_integer_value(json_object_get(row, "schemaTokens")), c, sizeof c),
                    num((size_t)json_integer_value(json_object_get(row, "descriptionChars")), d, sizeof d));
            }
        }
        printf("\nTOTAL: %zu tools from %zu servers (%zu hidden by filters): %s tokens; compacted %s "
               "(-%.1f%%)\n",
               tot_tools, nsrv, tot_hidden, num(raw_tokens, a, sizeof a), num(tot_compact, b, sizeof b),
               ccut);
        printf("Lazy mode, first tools/list: search_tools + %zu always-on tool%s = %s tokens (-%.1f%%)%s\n",
               json_array_size(always_names), json_array_size(always_names) == 1 ? "" : "s",
               num(lazy_tokens, c, sizeof c), cut, strcmp(mode, "lazy") == 0 ? " [configured]" : "");
        if (json_array_size(warnings) > 0) {
            printf("\nWarnings:\n");
            json_t *w;
            json_array_foreach(warnings, k, w) printf("  - %s\n", json_string_value(w));
        }
        json_decref(out_servers);
        json_decref(warnings);
        json_decref(always_names);
    }
    mg_upstream_listings_free(srv, nsrv);
    mg_config_dispose(&cfg);
    return failed ? 1 : 0;
}
