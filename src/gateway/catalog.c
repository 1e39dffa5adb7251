/*
 * catalog.c - the merged catalog: upstream pools with cached lists, exposed names, routing, and
 * debounced list_changed fan-out.
 *
 * Naming rule (docs/configuration.md): with one enabled server, names pass through unchanged.
 * With several, tools and prompts are exposed as "<server><sep><name>" (sep defaults to "__");
 * a call is routed by the longest server prefix that matches. Resource URIs are never rewritten;
 * they route to the server whose resources list holds the URI, else whose template's literal
 * prefix matches it. A list is fetched once per pool (following nextCursor, at most 100 pages) and
 * cached until that upstream says list_changed or restarts. Pools that are down are skipped, so a
 * dead upstream never empties the catalog. What a pool's upstream reports (unattributed messages,
 * a list that changed, the pool gone) goes to the sink the gateway registered (gw->pool_sink):
 * which sessions hear of it is the gateway's business (gateway/pools.c), not the catalog's.
 * It lives in gateway/ because it reads the gateway's pool, server and session structures
 * (gateway_int.h); it calls nothing of the gateway by name. Read next: gateway/dispatch.c.
 */
#include "../common/err.h"
#include "../common/log.h"
#include "gateway_int.h"
#include "../policy/hooks.h"
#include "../jsonrpc/jsonrpc.h"

#include <stdlib.h>
#include <string.h>

static const char *methods[MG_LIST_COUNT] = {"tools/list", "prompts/list", "resources/list",
                                             "resources/templates/list"};
static const char *cap_names[MG_LIST_COUNT] = {"tools", "prompts", "resources", "resources"};

/* ---- pools ---- */

static void on_message_cb(mg_upstream_t *up, mg_upstream_origin_t origin, json_t *msg, void *data)
{
    mg_pool_t *p = data;
    p->gw->pool_sink.message(p->gw, p, origin, msg); /* the sink the gateway registered */
}

static void on_state_cb(mg_upstream_t *up, mg_upstream_state_t state, void *data)
{
    mg_pool_t *p = data;
    if (state == MG_UPSTREAM_READY) /* instructions against mcpgate.lock and the scanner (src/policy/) */
        mg_policy_upstream_ready(p->gw->policy, p->srv->index, mg_upstream_init_result(p->up));
    if (state == MG_UPSTREAM_READY && !p->was_ready) {
        p->was_ready = 1;
        int had = 0;
        for (int k = 0; k < MG_LIST_COUNT; k++)
            had |= p->lists[k] != NULL;
        mg__pool_invalidate(p, -1);
        if (had || mg_upstream_restarts(up) > 0) /* came back: its tools may differ */
            for (int k = 0; k < MG_LIST_COUNT; k += 1)
                if (k != MG_LIST_TEMPLATES)
                    p->gw->pool_sink.list_changed(p->gw, p, (mg_list_kind_t)k);
    } else if (state != MG_UPSTREAM_READY) {
        p->was_ready = 0;
    }
    mg_log_json(state == MG_UPSTREAM_READY ? MG_LOG_INFO : MG_LOG_WARN, "upstream state",
                json_pack("{s:s,s:s,s:s?}", "upstream", p->srv->cfg->name, "state",
                          mg_upstream_state_name(state), "error", mg_upstream_last_error(up)));
}

int mg__pool_new(mg_gateway_t *gw, mg_gw_server_t *srv, mg_session_t *owner, const char *tenant,
                 mg_pool_t **out)
{
    mg_pool_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return MG_ENOMEM;
    p->gw = gw;
    p->srv = srv;
    p->owner = owner;
    p->subs = json_object();
    mg_log_limit_init(&p->lim_unrouted, 20, 10000);
    static const mg_upstream_hooks_t hooks = {on_message_cb, on_state_cb};
    /* a session's own pool serves one client: the only request in flight is evidence enough */
    mg_upstream_opts_t opts = {srv->cfg,      &gw->cfg->limits, "mcpgate", MG_VERSION,
                               owner != NULL, &gw->cfg->egress, tenant};
    int r = mg_upstream_new(gw->loop, &opts, &hooks, p, &p->up);
    if (r != 0) {
        free(p);
        return r;
    }
    mg_upstream_start(p->up);
    *out = p;
    return 0;
}

static void fail_waiters(mg_pool_t *p, int k)
{
    mg_list_waiter_t *w = p->waiters[k];
    p->waiters[k] = NULL;
    json_decref(p->acc[k]);
    p->acc[k] = NULL;
    while (w != NULL) {
        mg_list_waiter_t *n = w->next;
        w->cb(p, (mg_list_kind_t)k, p->lists[k], w->data);
        free(w);
        w = n;
    }
}

static void pool_stopped_cb(mg_upstream_t *up, void *data)
{
    mg_pool_t *p = data;
    mg_upstream_free(up);
    mg_gateway_t *gw = p->gw;
    mg_session_t *owner = p->owner;
    size_t idx = p->srv->index;
    for (int k = 0; k < MG_LIST_COUNT; k++)
        json_decref(p->lists[k]);
    json_decref(p->subs);
    json_decref(p->support_list);
    mg_map_dispose(&p->support_map);
    free(p->tenant);
    free(p);
    if (owner != NULL)
        gw->pool_sink.gone(owner, idx); /* the owning session's slot is freed by the gateway */
    else if (gw->pools_stopping > 0)
        gw->pools_stopping--;
}

void mg__pool_stop(mg_pool_t *p)
{
    if (p->stopping)
        return;
    p->stopping = 1;
    mg_upstream_stop(p->up, p->gw->cfg->limits.shutdown_grace_ms / 2 + 1, pool_stopped_cb, p);
}

void mg__pool_invalidate(mg_pool_t *p, int kind)
{
    for (int k = 0; k < MG_LIST_COUNT; k++) {
        if (kind >= 0 && k != kind)
            continue;
        json_decref(p->lists[k]);
        p->lists[k] = NULL;
    }
}

typedef struct fetch {
    mg_pool_t *pool;
    mg_list_kind_t kind;
} fetch_t;

static void fetch_page(mg_pool_t *p, mg_list_kind_t k, const char *cursor);

static void page_done_cb(mg_upstream_req_t *req, int err, json_t *response, const char *message, void *data)
{
    fetch_t *f = data;
    mg_pool_t *p = f->pool;
    mg_list_kind_t k = f->kind;
    free(f);
    json_t *result = response ? json_object_get(response, "result") : NULL;
    json_t *items = json_object_get(result, mg_list_key(k));
    if (err != 0 || !json_is_array(items)) {
        mg_log_json(MG_LOG_WARN, "upstream list failed; its entries are left out of the catalog",
                    json_pack("{s:s,s:s,s:s}", "upstream", p->srv->cfg->name, "method", methods[k], "error",
                              message ? message
                              : err   ? mg_strerror(err)
                                      : "result has no list"));
        fail_waiters(p, (int)k);
        return;
    }
    json_array_extend(p->acc[k], items);
    const char *next = json_string_value(json_object_get(result, "nextCursor"));
    if (next != NULL && next[0] != '\0' && ++p->pages[k] < 100) {
        fetch_page(p, k, next);
        return;
    }
    json_decref(p->lists[k]);
    /* Pinning and scanning (src/policy/): blocked entries leave the list before it is cached. */
    mg_policy_list_fetched(p->gw->policy, p->srv->index, k, p->acc[k]);
    p->lists[k] = p->acc[k];
    p->acc[k] = NULL;
    mg_list_waiter_t *w = p->waiters[k];
    p->waiters[k] = NULL;
    while (w != NULL) {
        mg_list_waiter_t *n = w->next;
        w->cb(p, k, p->lists[k], w->data);
        free(w);
        w = n;
    }
}

static void fetch_page(mg_pool_t *p, mg_list_kind_t k, const char *cursor)
{
    fetch_t *f = malloc(sizeof(*f));
    f->pool = p;
    f->kind = k;
    json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : json_object();
    json_t *msg = json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", methods[k], "params", params);
    int r = mg_upstream_request(p->up, msg, 0, page_done_cb, NULL, f, NULL);
    if (r != 0) {
        free(f);
        fail_waiters(p, (int)k);
    }
}

void mg__pool_list(mg_pool_t *p, mg_list_kind_t kind, mg_list_cb cb, void *data)
{
    if (p->lists[kind] != NULL) {
        cb(p, kind, p->lists[kind], data);
        return;
    }
    mg_upstream_state_t st = mg_upstream_state(p->up);
    if (p->stopping || st == MG_UPSTREAM_STOPPED || st == MG_UPSTREAM_BACKOFF) {
        cb(p, kind, NULL, data);
        return;
    }
    json_t *ir = mg_upstream_init_result(p->up);
    if (ir != NULL && st == MG_UPSTREAM_READY &&
        json_object_get(json_object_get(ir, "capabilities"), cap_names[kind]) == NULL) {
        p->lists[kind] = json_array(); /* capability not offered: an empty list, no request */
        cb(p, kind, p->lists[kind], data);
        return;
    }
    mg_list_waiter_t *w = malloc(sizeof(*w));
    w->cb = cb;
    w->data = data;
    w->next = p->waiters[kind];
    int start = p->waiters[kind] == NULL;
    p->waiters[kind] = w;
    if (start) {
        p->acc[kind] = json_array();
        p->pages[kind] = 0;
        fetch_page(p, kind, NULL);
    }
}

/* ---- names and routes ---- */

/* ---- which pool (lookups only: creating one is the gateway's, gateway/pools.c) ---- */

const char *mg__tenant_of(const mg_principal_t *p)
{
    return p != NULL && p->tenant != NULL ? p->tenant : "";
}

mg_pool_t *mg__pool_peek(mg_gateway_t *gw, mg_session_t *s, const mg_principal_t *p, size_t i)
{
    mg_gw_server_t *srv = &gw->servers[i];
    if (srv->removed)
        return NULL;
    if (srv->shared != NULL)
        return srv->shared;
    if (srv->cfg->isolation == MG_ISOLATION_TENANT)
        return mg_map_get(&srv->tenants, mg__tenant_of(p));
    return s != NULL && s != gw->stateless ? s->pools[i] : NULL;
}

/* ---- names and routes ---- */

char *mg__catalog_expose(const mg_gw_server_t *srv, const char *name)
{
    size_t a = strlen(srv->prefix), b = strlen(name);
    char *out = malloc(a + b + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, srv->prefix, a);
    memcpy(out + a, name, b + 1);
    return out;
}

long mg__catalog_route_name(mg_gateway_t *gw, const char *exposed, const char **original)
{
    long best = -1;
    size_t best_len = 0;
    for (size_t i = 0; i < gw->nservers; i++) {
        if (gw->servers[i].removed)
            continue;
        size_t n = strlen(gw->servers[i].prefix);
        if (strncmp(exposed, gw->servers[i].prefix, n) == 0 && (best < 0 || n > best_len)) {
            best = (long)i;
            best_len = n;
        }
    }
    if (best >= 0) {
        *original = exposed + best_len;
        if (**original == '\0')
            return -1;
    }
    return best;
}

static int template_matches(const char *tmpl, const char *uri)
{
    const char *brace = strchr(tmpl, '{');
    size_t lit = brace ? (size_t)(brace - tmpl) : strlen(tmpl);
    if (brace == NULL)
        return strcmp(tmpl, uri) == 0;
    return lit > 0 && strncmp(tmpl, uri, lit) == 0;
}

long mg__catalog_route_uri(mg_gateway_t *gw, mg_session_t *s, const char *uri)
{
    if (uri == NULL)
        return -1;
    for (size_t i = 0; i < gw->nservers; i++) {
        mg_pool_t *p = mg__pool_peek(gw, s, s ? s->principal : NULL, i);
        if (p == NULL)
            continue;
        size_t k;
        json_t *item;
        json_array_foreach(p->lists[MG_LIST_RESOURCES], k, item)
        {
            const char *u = json_string_value(json_object_get(item, "uri"));
            if (u != NULL && strcmp(u, uri) == 0)
                return (long)i;
        }
    }
    long best = -1;
    size_t best_len = 0;
    for (size_t i = 0; i < gw->nservers; i++) {
        mg_pool_t *p = mg__pool_peek(gw, s, s ? s->principal : NULL, i);
        if (p == NULL)
            continue;
        size_t k;
        json_t *item;
        json_array_foreach(p->lists[MG_LIST_TEMPLATES], k, item)
        {
            const char *t = json_string_value(json_object_get(item, "uriTemplate"));
            if (t != NULL && template_matches(t, uri)) {
                const char *brace = strchr(t, '{');
                size_t lit = brace ? (size_t)(brace - t) : strlen(t);
                if (best < 0 || lit > best_len) {
                    best = (long)i;
                    best_len = lit;
                }
            }
        }
    }
    return best;
}
