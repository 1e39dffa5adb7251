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
#include "../upstream/upstream.h"

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

typedef struct srv_state {
    const mg_server_config_t *cfg;
    mg_upstream_t *up;
    json_t *tools; /* collected pages */
    char *error;
    int requested, done, stopped;
    unsigned pages;
    struct run *run;
} srv_state_t;

typedef struct run {
    uv_loop_t loop;
    uv_timer_t timer;
    srv_state_t *srv;
    size_t n;
    size_t pending; /* servers not done */
    size_t stopping;
    int timer_closed;
} run_t;

static void fetch(srv_state_t *s, const char *cursor);

static void finish_one(srv_state_t *s, const char *error)
{
    if (s->done)
        return;
    s->done = 1;
    if (error != NULL && s->error == NULL)
        s->error = strdup(error);
    if (--s->run->pending == 0)
        uv_stop(&s->run->loop);
}

static void page_cb(mg_upstream_req_t *req, int err, json_t *response, const char *message, void *data)
{
    srv_state_t *s = data;
    if (s->done)
        return;
    json_t *result = response ? json_object_get(response, "result") : NULL;
    json_t *items = json_object_get(result, "tools");
    if (err != 0 || !json_is_array(items)) {
        char m[400];
        const char *emsg = json_string_value(json_object_get(json_object_get(response, "error"), "message"));
        snprintf(m, sizeof m, "tools/list failed: %s",
                 message ? message
                 : emsg  ? emsg
                 : err   ? mg_strerror(err)
                         : "the result has no tools array");
        finish_one(s, m);
        return;
    }
    json_array_extend(s->tools, items);
    const char *next = json_string_value(json_object_get(result, "nextCursor"));
    if (next != NULL && next[0] != '\0' && ++s->pages < 100) {
        fetch(s, next);
        return;
    }
    finish_one(s, NULL);
}

static void fetch(srv_state_t *s, const char *cursor)
{
    json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : json_object();
    json_t *msg = json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", "tools/list", "params", params);
    int r = mg_upstream_request(s->up, msg, 0, page_cb, NULL, s, NULL);
    if (r != 0) {
        char m[200];
        snprintf(m, sizeof m, "tools/list could not be sent: %s", mg_strerror(r));
        finish_one(s, m);
    }
}

static void state_cb(mg_upstream_t *up, mg_upstream_state_t state, void *data)
{
    srv_state_t *s = data;
    if (s->done || s->requested)
        return;
    if (state == MG_UPSTREAM_READY) {
        s->requested = 1;
        json_t *caps = json_object_get(mg_upstream_init_result(up), "capabilities");
        if (json_object_get(caps, "tools") == NULL) {
            finish_one(s, NULL); /* no tools capability: nothing to list */
            return;
        }
        fetch(s, NULL);
    } else if (state == MG_UPSTREAM_BACKOFF) {
        const char *e = mg_upstream_last_error(up);
        finish_one(s, e ? e : "the server failed to start");
    }
}

static void timeout_cb(uv_timer_t *t)
{
    run_t *r = t->data;
    for (size_t i = 0; i < r->n; i++)
        if (!r->srv[i].done)
            finish_one(&r->srv[i], "did not list its tools before --timeout");
}

static void stopped_cb(mg_upstream_t *up, void *data)
{
    srv_state_t *s = data;
    mg_upstream_free(up);
    s->up = NULL;
    s->stopped = 1;
    s->run->stopping--;
}

static void self_dir(char *out, size_t n)
{
    char path[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", path, sizeof path - 1);
    if (len <= 0) {
        snprintf(out, n, ".");
        return;
    }
    path[len] = '\0';
    snprintf(out, n, "%s", dirname(path));
}

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

/* Runs the servers until each listed its tools (or failed), then stops them. */
static void collect(const mg_config_t *cfg, run_t *r, unsigned long timeout_ms)
{
    static const mg_upstream_hooks_t hooks = {NULL, state_cb};
    uv_loop_init(&r->loop);
    uv_timer_init(&r->loop, &r->timer);
    r->timer.data = r;
    for (size_t i = 0; i < r->n; i++) {
        srv_state_t *s = &r->srv[i];
        mg_upstream_opts_t uo = {s->cfg, &cfg->limits, "mcpgate-tools", MG_VERSION, 0};
        if (mg_upstream_new(&r->loop, &uo, &hooks, s, &s->up) != 0) {
            s->up = NULL;
            finish_one(s, "out of memory");
            continue;
        }
        mg_upstream_start(s->up);
    }
    if (r->pending > 0) {
        uv_timer_start(&r->timer, timeout_cb, timeout_ms, 0);
        uv_run(&r->loop, UV_RUN_DEFAULT);
    }
    uv_timer_stop(&r->timer);
    for (size_t i = 0; i < r->n; i++) {
        if (r->srv[i].up != NULL) {
            r->stopping++;
            mg_upstream_stop(r->srv[i].up, 2000, stopped_cb, &r->srv[i]);
        }
    }
    while (r->stopping > 0 && uv_run(&r->loop, UV_RUN_ONCE) != 0) {
    }
    uv_close((uv_handle_t *)&r->timer, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
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
    self_dir(dir, sizeof dir);
    mg_config_t cfg;
    mg_config_errors_t errs = {0};
    int r = o.config ? mg_config_load(o.config, dir, &cfg, &errs)
                     : mg_config_parse(mg_config_embedded_json(), "<embedded>", dir, &cfg, &errs);
    if (r != 0) {
        fprintf(stderr, "mcpgate tools: %s has %zu problem%s:\n", o.config ? o.config : "the embedded config",
                errs.count, errs.count == 1 ? "" : "s");
        for (size_t i = 0; i < errs.count; i++)
            fprintf(stderr, "  - %s\n", errs.msgs[i]);
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

    run_t run = {0};
    size_t enabled = mg_config_enabled_count(&cfg);
    run.srv = calloc(enabled ? enabled : 1, sizeof *run.srv);
    for (size_t i = 0; i < cfg.nservers; i++) {
        if (cfg.servers[i].disabled)
            continue;
        srv_state_t *s = &run.srv[run.n++];
        s->cfg = &cfg.servers[i];
        s->run = &run;
        s->tools = json_array();
    }
    run.pending = run.n;
    collect(&cfg, &run, o.timeout_ms);

    /* Figures. */
    const char *sep = cfg.namespace_separator ? cfg.namespace_separator : "__";
    json_t *out_servers = json_array(), *warnings = json_array(), *always_names = json_array();
    size_t tot_tools = 0, tot_hidden = 0, tot_compact = 0, always_tokens = 0;
    json_t *counts = json_array();
    int failed = 0;
    for (size_t i = 0; i < run.n; i++) {
        srv_state_t *s = &run.srv[i];
        json_t *jt = json_array();
        size_t n = 0, hidden = 0, tokens = 0, compact = 0;
        size_t k;
        json_t *tool;
        json_array_foreach(s->tools, k, tool)
        {
            const char *orig = json_string_value(json_object_get(tool, "name"));
            if (orig == NULL)
                continue;
            char exposed[512];
            snprintf(exposed, sizeof exposed, "%s%s%s", run.n > 1 ? s->cfg->name : "", run.n > 1 ? sep : "",
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
            prof ? prof->name : NULL, "servers", out_servers, "totals", "servers", (json_int_t)run.n, "tools",
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
               tot_tools, run.n, tot_hidden, num(raw_tokens, a, sizeof a), num(tot_compact, b, sizeof b),
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
    for (size_t i = 0; i < run.n; i++) {
        json_decref(run.srv[i].tools);
        free(run.srv[i].error);
    }
    free(run.srv);
    mg_config_dispose(&cfg);
    return failed ? 1 : 0;
}
