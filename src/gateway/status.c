/*
 * status.c - what the operator sees: per-upstream call statistics (outcomes, latency histogram and
 * a ring of recent durations for p50/p99), refusals by rule, the last errors, the metrics families
 * built on them, and the /status page rendered from them and the live state.
 *
 * Fed by call_finish() (dispatch.c) through mg__status_call_end() for tools/call, prompts/get,
 * resources/read and completion/complete. Statistics are keyed by server name, so a hot reload
 * keeps those of unchanged servers. The page is server-rendered HTML with no external asset, no
 * script, an inline style allowed by its hash in a strict Content-Security-Policy, and a meta
 * refresh; every string that comes from an upstream (tool names, descriptions, errors) or a client
 * is HTML-escaped (they are hostile input). Access rules: admin.c. Read next: admin.c.
 */
#include "gateway_int.h"
#include "../common/codec.h"
#include "../common/err.h"
#include "../common/str.h"
#include "../obs/journal.h"
#include "../obs/metrics.h"
#include "../policy/hooks.h"
#include "../toolsearch/toolsearch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LAT_RING   1024
#define NBUCKETS   14
#define ERR_RING   20
#define PAGE_MAX   (16u * 1024 * 1024)
#define DESC_SHOWN 240
#define REFRESH_S  5

static const double bucket_s[NBUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                          0.25,  0.5,    1,     2.5,  5,     10,   30};
static const char *const outcomes[MG__OUTCOME_COUNT] = {"result", "toolError", "error", "refused",
                                                        "cancelled"};
static const char *const rules[] = {"rateLimit", "pinning", "paramHeaders", "authRules", "toolFilter"};
#define NRULES (sizeof rules / sizeof rules[0])

typedef struct srv_stats {
    uint64_t outcomes[MG__OUTCOME_COUNT];
    uint64_t buckets[NBUCKETS]; /* cumulative at render, per bucket here */
    uint64_t count;
    double sum_s;
    uint32_t ring[LAT_RING]; /* recent durations, microseconds */
    unsigned n, pos;
} srv_stats_t;

typedef struct err_note {
    char when[32];
    char method[32];
    char server[64];
    char name[128];
    int code;
    char message[240];
} err_note_t;

struct mg_status {
    mg_map_t servers; /* name -> srv_stats_t* ("" = refused before routing) */
    uint64_t refusals[NRULES];
    err_note_t errs[ERR_RING];
    unsigned nerr, errpos;
    uint64_t started_ms;
};

/* ---- outcome of a call ---- */

mg__outcome_t mg__call_outcome(const mg_call_t *c, const json_t *resp, int *code)
{
    *code = 0;
    if (resp == NULL)
        return MG__OUTCOME_CANCELLED;
    if (c->raw_outcome != 0) /* a result passed as bytes: its scan already read "isError" */
        return (mg__outcome_t)(c->raw_outcome - 1);
    json_t *err = json_object_get(resp, "error");
    if (err != NULL) {
        *code = (int)json_integer_value(json_object_get(err, "code"));
        return c->refusal != NULL ? MG__OUTCOME_REFUSED : MG__OUTCOME_ERROR;
    }
    return json_is_true(json_object_get(json_object_get(resp, "result"), "isError")) ? MG__OUTCOME_TOOL_ERROR
                                                                                     : MG__OUTCOME_RESULT;
}

const char *mg__outcome_name(mg__outcome_t o)
{
    return outcomes[o];
}

const char *mg__call_server(const mg_call_t *c)
{
    return c->pool != NULL         ? c->pool->srv->cfg->name
           : c->route_pool != NULL ? c->route_pool->srv->cfg->name
                                   : "";
}

static srv_stats_t *stats_of(struct mg_status *st, const char *name)
{
    srv_stats_t *s = mg_map_get(&st->servers, name);
    if (s == NULL && (s = calloc(1, sizeof *s)) != NULL && mg_map_set(&st->servers, name, s) != 0) {
        free(s);
        s = NULL;
    }
    return s;
}

static void wall_time(char *out, size_t n)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void mg__status_call_end(mg_call_t *c, const json_t *resp, mg__outcome_t o, int code)
{
    struct mg_status *st = c->gw->status;
    if (st == NULL || c->start_ns == 0)
        return;
    const char *server = mg__call_server(c);
    srv_stats_t *s = stats_of(st, server);
    if (s == NULL)
        return;
    uint64_t us = (uv_hrtime() - c->start_ns) / 1000;
    s->outcomes[o]++;
    s->count++;
    s->sum_s += (double)us / 1e6;
    for (int b = 0; b < NBUCKETS; b++) {
        if ((double)us / 1e6 <= bucket_s[b]) {
            s->buckets[b]++;
            break;
        }
    }
    s->ring[s->pos] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    s->pos = (s->pos + 1) % LAT_RING;
    if (s->n < LAT_RING)
        s->n++;
    if (o == MG__OUTCOME_REFUSED) {
        for (size_t r = 0; r < NRULES; r++)
            if (strcmp(rules[r], c->refusal) == 0)
                st->refusals[r]++;
    }
    if (o == MG__OUTCOME_ERROR || o == MG__OUTCOME_REFUSED) {
        err_note_t *e = &st->errs[st->errpos];
        st->errpos = (st->errpos + 1) % ERR_RING;
        if (st->nerr < ERR_RING)
            st->nerr++;
        memset(e, 0, sizeof *e);
        wall_time(e->when, sizeof e->when);
        mg_strlcpy(e->method, sizeof e->method, c->method);
        mg_strlcpy(e->server, sizeof e->server, server);
        const char *nm = json_string_value(json_object_get(c->params, "name"));
        if (nm == NULL)
            nm = json_string_value(json_object_get(c->params, "uri"));
        mg_strlcpy(e->name, sizeof e->name, nm ? nm : "");
        e->code = code;
        const char *msg = json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
        if (c->refusal != NULL)
            snprintf(e->message, sizeof e->message, "refused (%s): %s", c->refusal, msg ? msg : "");
        else
            mg_strlcpy(e->message, sizeof e->message, msg ? msg : "");
    }
}

/* ---- metrics ---- */

static void collect_cb(mg_metrics_out_t *out, void *data)
{
    mg_gateway_t *gw = data;
    struct mg_status *st = gw->status;
    mg_metrics_family(
        out, "mcpgate_upstream_up", "gauge",
        "1 while a server's shared children are ready (per-session and per-tenant servers: 1 when "
        "configured)");
    mg_metrics_family(out, "mcpgate_upstream_restarts_total", "counter",
                      "Restarts of a server's shared children");
    for (size_t i = 0; i < gw->nservers; i++) {
        mg_gw_server_t *srv = &gw->servers[i];
        if (srv->removed) /* a reload removed it */
            continue;
        const char *l[] = {"upstream", srv->cfg->name, NULL};
        int up = 1;
        if (srv->cfg->isolation == MG_ISOLATION_SHARED)
            up = srv->shared != NULL && mg_upstream_state(srv->shared->up) == MG_UPSTREAM_READY;
        mg_metrics_sample(out, "mcpgate_upstream_up", l, up);
    }
    for (size_t i = 0; i < gw->nservers; i++) {
        mg_gw_server_t *srv = &gw->servers[i];
        if (srv->removed) /* a reload removed it */
            continue;
        const char *l[] = {"upstream", srv->cfg->name, NULL};
        mg_metrics_sample(out, "mcpgate_upstream_restarts_total", l,
                          srv->shared != NULL ? mg_upstream_restarts(srv->shared->up) : 0);
    }
    mg_metrics_family(
        out, "mcpgate_calls_total", "counter",
        "tools/call, prompts/get, resources/read and completion/complete by upstream and outcome "
        "(upstream \"\" = refused before routing)");
    size_t pos = 0;
    const char *name;
    void *val;
    while (mg_map_next(&st->servers, &pos, &name, &val)) {
        srv_stats_t *s = val;
        for (int o = 0; o < MG__OUTCOME_COUNT; o++) {
            const char *l[] = {"upstream", name, "outcome", outcomes[o], NULL};
            mg_metrics_sample(out, "mcpgate_calls_total", l, (double)s->outcomes[o]);
        }
    }
    mg_metrics_family(out, "mcpgate_call_duration_seconds", "histogram",
                      "Duration of the calls counted in mcpgate_calls_total, by upstream");
    pos = 0;
    while (mg_map_next(&st->servers, &pos, &name, &val)) {
        srv_stats_t *s = val;
        uint64_t cum = 0;
        for (int b = 0; b < NBUCKETS; b++) {
            char le[24];
            snprintf(le, sizeof le, "%g", bucket_s[b]);
            cum += s->buckets[b];
            const char *l[] = {"upstream", name, "le", le, NULL};
            mg_metrics_sample(out, "mcpgate_call_duration_seconds_bucket", l, (double)cum);
        }
        const char *inf[] = {"upstream", name, "le", "+Inf", NULL};
        mg_metrics_sample(out, "mcpgate_call_duration_seconds_bucket", inf, (double)s->count);
        const char *l[] = {"upstream", name, NULL};
        mg_metrics_sample(out, "mcpgate_call_duration_seconds_sum", l, s->sum_s);
        mg_metrics_sample(out, "mcpgate_call_duration_seconds_count", l, (double)s->count);
    }
    mg_metrics_family(out, "mcpgate_calls_refused_total", "counter",
                      "Calls refused, by the rule that refused them");
    for (size_t r = 0; r < NRULES; r++) {
        const char *l[] = {"rule", rules[r], NULL};
        mg_metrics_sample(out, "mcpgate_calls_refused_total", l, (double)st->refusals[r]);
    }
    mg_metrics_family(out, "mcpgate_sessions", "gauge", "Sessions held by this process");
    mg_metrics_sample(out, "mcpgate_sessions", NULL, (double)gw->sessions.count);
    mg_metrics_family(out, "mcpgate_calls_in_flight", "gauge", "Client requests in flight");
    mg_metrics_sample(out, "mcpgate_calls_in_flight", NULL, gw->live_calls);
}

int mg__status_new(mg_gateway_t *gw)
{
    struct mg_status *st = calloc(1, sizeof *st);
    if (st == NULL)
        return MG_ENOMEM;
    mg_map_init(&st->servers);
    st->started_ms = uv_now(gw->loop);
    gw->status = st;
    return mg_metrics_register(collect_cb, gw);
}

void mg__status_free(mg_gateway_t *gw)
{
    struct mg_status *st = gw->status;
    if (st == NULL)
        return;
    mg_metrics_unregister(collect_cb, gw);
    size_t pos = 0;
    const char *k;
    void *v;
    while (mg_map_next(&st->servers, &pos, &k, &v))
        free(v);
    mg_map_dispose(&st->servers);
    free(st);
    gw->status = NULL;
}

/* ---- the page ---- */

typedef struct page {
    char *p;
    size_t len, cap;
    int full;
} page_t;

static void put(page_t *pg, const char *s, size_t n)
{
    if (pg->full)
        return;
    if (pg->len + n + 1 > pg->cap) {
        size_t cap = pg->cap ? pg->cap : 16384;
        while (cap < pg->len + n + 1)
            cap *= 2;
        char *g = cap <= PAGE_MAX ? realloc(pg->p, cap) : NULL;
        if (g == NULL) {
            pg->full = 1;
            return;
        }
        pg->p = g;
        pg->cap = cap;
    }
    memcpy(pg->p + pg->len, s, n);
    pg->len += n;
    pg->p[pg->len] = '\0';
}

static void puts_(page_t *pg, const char *s)
{
    put(pg, s, strlen(s));
}

static void putf(page_t *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(page_t *pg, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        put(pg, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Text (from anyone) as HTML text or attribute content: & < > " ' escaped, control characters
 * shown as U+FFFD; at most max bytes (0 = all), cut on a UTF-8 boundary with an ellipsis. */
static void esc(page_t *pg, const char *s, size_t max)
{
    if (s == NULL)
        return;
    size_t n = strlen(s), cut = n;
    if (max > 0 && n > max) {
        cut = max;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
    }
    size_t run = 0;
    for (size_t i = 0; i < cut; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *rep = ch == '&'                                               ? "&amp;"
                          : ch == '<'                                             ? "&lt;"
                          : ch == '>'                                             ? "&gt;"
                          : ch == '"'                                             ? "&quot;"
                          : ch == '\''                                            ? "&#39;"
                          : (ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f ? "\xEF\xBF\xBD"
                                                                                  : NULL;
        if (rep != NULL) {
            put(pg, s + run, i - run);
            puts_(pg, rep);
            run = i + 1;
        }
    }
    put(pg, s + run, cut - run);
    if (cut < n)
        puts_(pg, "\xE2\x80\xA6");
}

static const char style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}"
    "h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.5em 0 .4em}"
    "table{border-collapse:collapse;background:#fff;margin-bottom:1em}"
    "th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}"
    "th{background:#eee}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".ok{color:#0a6b2d;font-weight:600}.bad{color:#b00020;font-weight:600}.warn{color:#9a5b00;font-weight:"
    "600}"
    "tr.drift td{background:#fff3cd}.muted{color:#777}.desc{max-width:40em;font-size:.9em}"
    "code{font-size:.95em}";

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* p50 and p99 of the recent durations into text ("-" when none). */
static void percentiles(const srv_stats_t *s, char *p50, char *p99, size_t n)
{
    snprintf(p50, n, "-");
    snprintf(p99, n, "-");
    if (s == NULL || s->n == 0)
        return;
    uint32_t v[LAT_RING];
    memcpy(v, s->ring, s->n * sizeof v[0]);
    qsort(v, s->n, sizeof v[0], cmp_u32);
    uint32_t a = v[(s->n - 1) * 50 / 100], b = v[(s->n - 1) * 99 / 100];
    snprintf(p50, n, "%.1f ms", a / 1000.0);
    snprintf(p99, n, "%.1f ms", b / 1000.0);
}

static void upstream_rows(mg_gateway_t *gw, page_t *pg)
{
    puts_(pg, "<h2>Upstreams</h2><table><tr><th>server</th><th>isolation</th><th>state</th><th>era</th>"
              "<th>restarts</th><th>in flight</th><th>calls</th><th>errors</th><th>p50</th><th>p99</th>"
              "<th>pinning</th><th>last error</th></tr>");
    for (size_t i = 0; i < gw->nservers; i++) {
        mg_gw_server_t *srv = &gw->servers[i];
        if (srv->removed) /* a reload removed it */
            continue;
        srv_stats_t *s = mg_map_get(&gw->status->servers, srv->cfg->name);
        mg_upstream_t *up = srv->shared != NULL ? srv->shared->up : NULL;
        const char *state = srv->cfg->isolation == MG_ISOLATION_SESSION  ? "per-session"
                            : srv->cfg->isolation == MG_ISOLATION_TENANT ? "per-tenant"
                            : up != NULL ? mg_upstream_state_name(mg_upstream_state(up))
                                         : "stopped";
        int ready = up != NULL && mg_upstream_state(up) == MG_UPSTREAM_READY;
        const char *cls = up == NULL ? "muted" : ready ? "ok" : "bad";
        const char *era = json_string_value(json_object_get(mg_upstream_init_result(up), "protocolVersion"));
        char rera[160]; /* a remote server: its era and the HTTP version it answers over */
        if (up != NULL && mg_upstream_era(up) != NULL) {
            snprintf(rera, sizeof rera, "%s%s%s", mg_upstream_era(up),
                     mg_upstream_http_version(up) ? ", " : "",
                     mg_upstream_http_version(up) ? mg_upstream_http_version(up) : "");
            era = rera;
        }
        int locked;
        const char *pin = mg_policy_pin_state(gw->policy, i, &locked);
        json_t *pj = json_object();
        mg_policy_readyz(gw->policy, i, pj);
        const char *lock = json_string_value(json_object_get(json_object_get(pj, "pinning"), "lock"));
        int drift = lock != NULL && strcmp(lock, "drift") == 0;
        char p50[32], p99[32];
        percentiles(s, p50, p99, sizeof p50);
        uint64_t errors = s ? s->outcomes[MG__OUTCOME_ERROR] + s->outcomes[MG__OUTCOME_TOOL_ERROR] : 0;
        putf(pg, "<tr%s><td><code>", drift ? " class=\"drift\"" : "");
        esc(pg, srv->cfg->name, 0);
        putf(pg, "</code></td><td>%s</td><td class=\"%s\">%s</td><td>",
             mg_isolation_name(srv->cfg->isolation), cls, state);
        esc(pg, era ? era : "-", 64);
        putf(pg,
             "</td><td class=\"n\">%u</td><td class=\"n\">%u</td><td class=\"n\">%llu</td><td "
             "class=\"n\">%llu</td>"
             "<td class=\"n\">%s</td><td class=\"n\">%s</td>",
             up ? mg_upstream_restarts(up) : 0, up ? mg_upstream_inflight(up) : 0,
             (unsigned long long)(s ? s->count : 0), (unsigned long long)errors, p50, p99);
        if (strcmp(pin, "off") == 0)
            puts_(pg, "<td class=\"muted\">off</td>");
        else {
            const char *what = lock ? lock : locked ? "ok" : "not in lock";
            putf(pg, "<td class=\"%s\">%s: %s</td>",
                 drift                     ? "bad"
                 : strcmp(what, "ok") == 0 ? "ok"
                                           : "warn",
                 pin, what);
        }
        json_decref(pj);
        puts_(pg, "<td class=\"desc\">");
        const char *le = up != NULL ? mg_upstream_last_error(up) : NULL;
        esc(pg, le != NULL && !ready ? le : "", 300);
        puts_(pg, "</td></tr>");
    }
    puts_(pg, "</table>");
}

static void list_fetched_cb(mg_pool_t *pool, mg_list_kind_t kind, json_t *items, void *data)
{
}

static void catalog_rows(mg_gateway_t *gw, page_t *pg)
{
    puts_(pg, "<h2>Tool catalog</h2><table><tr><th>tool</th><th>server</th><th>tokens</th><th>pin</th>"
              "<th>description</th></tr>");
    size_t shown = 0, total_tokens = 0;
    for (int pass = 0; pass < 2; pass++) /* drifted and flagged tools first */
        for (size_t i = 0; i < gw->nservers; i++) {
            mg_gw_server_t *srv = &gw->servers[i];
            if (srv->removed) /* a reload removed it */
                continue;
            json_t *tools = srv->shared != NULL ? srv->shared->lists[MG_LIST_TOOLS] : NULL;
            if (pass == 0 && tools == NULL && srv->shared != NULL && !srv->shared->stopping &&
                srv->shared->waiters[MG_LIST_TOOLS] == NULL &&
                mg_upstream_state(srv->shared->up) == MG_UPSTREAM_READY) /* cached for the next refresh */
                mg__pool_list(srv->shared, MG_LIST_TOOLS, list_fetched_cb, NULL);
            size_t k;
            json_t *t;
            json_array_foreach(tools, k, t)
            {
                const char *name = json_string_value(json_object_get(t, "name"));
                if (name == NULL)
                    continue;
                const char *pin;
                int blocked;
                unsigned findings;
                mg_policy_item_state(gw->policy, i, MG_LIST_TOOLS, name, &pin, &blocked, &findings);
                if ((pin != NULL || findings > 0) != (pass == 0))
                    continue;
                mg_toolsearch_cost_t cost;
                mg_toolsearch_tokens_tool(t, &cost);
                total_tokens += cost.total;
                putf(pg, "<tr%s><td><code>", pin != NULL ? " class=\"drift\"" : "");
                esc(pg, srv->prefix, 0);
                esc(pg, name, 200);
                puts_(pg, "</code></td><td>");
                esc(pg, srv->cfg->name, 0);
                putf(pg, "</td><td class=\"n\">%zu</td>", cost.total);
                if (pin != NULL)
                    putf(pg, "<td class=\"bad\">drift: %s%s</td>",
                         pin[0] == 'a'   ? "added"
                         : pin[0] == 'c' ? "changed"
                                         : "removed",
                         blocked ? ", blocked" : "");
                else if (findings > 0)
                    putf(pg, "<td class=\"warn\">%u scan finding(s)%s</td>", findings,
                         blocked ? ", blocked" : "");
                else
                    puts_(pg, "<td class=\"muted\">ok</td>");
                puts_(pg, "<td class=\"desc\">");
                esc(pg, json_string_value(json_object_get(t, "description")), DESC_SHOWN);
                puts_(pg, "</td></tr>");
                shown++;
            }
        }
    if (shown == 0)
        puts_(pg, "<tr><td colspan=\"5\" class=\"muted\">no tool list fetched yet (asked for now: it shows "
                  "on the next "
                  "refresh; per-session and per-tenant servers are not shown)</td></tr>");
    puts_(pg, "</table>");
    putf(pg, "<p class=\"muted\">%zu tools, about %zu tokens in all (estimated).</p>", shown, total_tokens);
}

char *mg__status_html(mg_gateway_t *gw, size_t *len, char *csp, size_t csplen)
{
    page_t pg = {0};
    unsigned char md[MG_SHA256_BYTES];
    mg_sha256(style, sizeof style - 1, md);
    char b64[MG_BASE64URL_LEN(MG_SHA256_BYTES) + 4];
    size_t bn = mg_base64url_encode(md, sizeof md, b64);
    for (size_t i = 0; i < bn; i++) /* CSP wants standard base64, with its padding */
        b64[i] = b64[i] == '-' ? '+' : b64[i] == '_' ? '/' : b64[i];
    while (bn % 4 != 0)
        b64[bn++] = '=';
    b64[bn] = '\0';
    snprintf(csp, csplen,
             "default-src 'none'; style-src 'sha256-%s'; img-src 'none'; script-src 'none'; base-uri 'none'; "
             "form-action 'none'; frame-ancestors 'none'",
             b64);
    int ready = 0;
    json_t *rz = mg_gateway_readyz(gw, &ready);
    const char *status = json_string_value(json_object_get(rz, "status"));
    putf(&pg,
         "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" "
         "content=\"%d\"><title>mcpgate status</title><style>",
         REFRESH_S);
    puts_(&pg, style);
    puts_(&pg, "</style></head><body>");
    uint64_t up_s = (uv_now(gw->loop) - gw->status->started_ms) / 1000;
    char when[32];
    wall_time(when, sizeof when);
    putf(&pg, "<h1>mcpgate %s <span class=\"%s\">%s</span></h1>", MG_VERSION,
         status && strcmp(status, "ok") == 0 ? "ok" : "bad", status ? status : "?");
    putf(&pg, "<p class=\"muted\">%s &middot; up %llu s &middot; refreshes every %d s", when,
         (unsigned long long)up_s, REFRESH_S);
    if (gw->config_digest[0] != '\0')
        putf(&pg, " &middot; config %s", gw->config_digest);
    puts_(&pg, "</p>");
    unsigned streams = 0, gets = 0;
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        for (mg_stream_t *x = s->streams; x != NULL; x = x->next)
            streams += x->conn != NULL;
        gets += s->get_stream != NULL && s->get_stream->conn != NULL;
    }
    putf(&pg,
         "<h2>Sessions</h2><table><tr><th>sessions</th><th>open streams</th><th>GET streams</th><th>calls in "
         "flight</th><th>calls since start</th></tr><tr><td class=\"n\">%zu</td><td class=\"n\">%u</td><td "
         "class=\"n\">%u</td><td class=\"n\">%u</td><td class=\"n\">%llu</td></tr></table>",
         (size_t)gw->sessions.count, streams, gets, gw->live_calls, (unsigned long long)gw->calls_total);
    upstream_rows(gw, &pg);
    catalog_rows(gw, &pg);
    puts_(&pg, "<h2>Refusals</h2><table><tr>");
    for (size_t r = 0; r < NRULES; r++)
        putf(&pg, "<th>%s</th>", rules[r]);
    puts_(&pg, "</tr><tr>");
    for (size_t r = 0; r < NRULES; r++)
        putf(&pg, "<td class=\"n\">%llu</td>", (unsigned long long)gw->status->refusals[r]);
    puts_(&pg, "</tr></table>");
    if (gw->journal != NULL) {
        mg_journal_stats_t js;
        mg_journal_get_stats(gw->journal, &js);
        putf(&pg,
             "<h2>Call journal</h2><table><tr><th>records</th><th>dropped</th><th>write "
             "errors</th><th>rotations</th>"
             "<th>queued bytes</th></tr><tr><td class=\"n\">%llu</td><td class=\"n%s\">%llu</td><td "
             "class=\"n%s\">%llu</td><td class=\"n\">%llu</td><td class=\"n\">%zu</td></tr></table>",
             (unsigned long long)js.records, js.dropped ? " bad" : "", (unsigned long long)js.dropped,
             js.failing ? " bad" : "", (unsigned long long)js.write_errors, (unsigned long long)js.rotations,
             js.queued_bytes);
    }
    puts_(
        &pg,
        "<h2>Last errors</h2><table><tr><th>time</th><th>method</th><th>server</th><th>name</th><th>code</th>"
        "<th>message</th></tr>");
    struct mg_status *st = gw->status;
    for (unsigned k = 0; k < st->nerr; k++) {
        const err_note_t *e = &st->errs[(st->errpos + ERR_RING - 1 - k) % ERR_RING];
        putf(&pg, "<tr><td>%s</td><td>", e->when);
        esc(&pg, e->method, 0);
        puts_(&pg, "</td><td>");
        esc(&pg, e->server, 0);
        puts_(&pg, "</td><td><code>");
        esc(&pg, e->name, 0);
        putf(&pg, "</code></td><td class=\"n\">%d</td><td class=\"desc\">", e->code);
        esc(&pg, e->message, 0);
        puts_(&pg, "</td></tr>");
    }
    if (st->nerr == 0)
        puts_(&pg, "<tr><td colspan=\"6\" class=\"muted\">none</td></tr>");
    puts_(&pg, "</table></body></html>\n");
    json_decref(rz);
    if (pg.full) {
        free(pg.p);
        return NULL;
    }
    *len = pg.len;
    return pg.p;
}
