/*
 * reload.c - applying a new configuration to the running gateway (SIGHUP, `mcpgate reload`,
 * gateway.watchConfig; main.c loads and validates the file first, and a file with problems never
 * reaches this module: mg_gateway_reload_failed() logs and counts it).
 *
 * The diff is per server name, on whole entries (mg_config_server_same: the entry as written and
 * what its references expanded to), so any key a server entry has or gains is covered:
 *   unchanged  keeps its children, sessions and calls in flight (nothing is touched)
 *   changed    new calls go to a new pool started with the new entry at once; the old pool drains:
 *              it is stopped when its calls in flight are done, or after limits.shutdownGraceMs.
 *              Tenant pools likewise; a session's own pools (isolation "session") keep serving
 *              that session, new sessions get the new entry.
 *   added      takes the next spare slot of gw->servers (slots never move nor are reused: see
 *              gateway_int.h and docs/adr/0010), gets its policy state and its shared pool.
 *   removed    its slot is marked removed: routes and lists skip it at once; its pools drain (the
 *              sessions' own pools of it too, stopped when idle or at the grace time).
 *   isolation, pinning or scan changed: removed and added under the same name (a new slot).
 *   A session gets list_changed of a kind when what it is listed of that kind can have changed:
 *   a server it can see changed, was added or removed, or the rules, tool filters or pins that
 *   reach it did (view.c compares each session's inputs before and after). 2026-07-28 listeners
 *   get it when anything of the catalog changed.
 *   gateway.tools, gateway.limits (but maxBodyBytes and httpIdleTimeoutMs, which the HTTP front
 *              holds), gateway.rateLimits (unless its store kind changes), gateway.allowedHosts,
 *              gateway.allowedOrigins and gateway.auth.rules are read per request through gw->cfg
 *              and the policy's cfg: they apply to the next request by switching both to the new
 *              configuration, when no other gateway key changed.
 *   gateway.auth (tokens, oauth, introspection, resource; or what their ${env:}/${file:}
 *              references expand to): a new generation of the auth runtime (auth.h mg_auth_next)
 *              serves the next request; requests in flight hold the generation they started with
 *              and finish on it (swap_auth).
 *   the other gateway.* keys (and logLevel, applied by main.c), and servers past the spare slots:
 *              reported in the log and in /readyz ("restartNeeded"), not applied.
 * Every configuration ever applied is kept until exit (pools and calls in flight point into it),
 * and so is every tool-name prefix replaced.
 * Read next: gateway.c (readyz), main.c (the triggers).
 */
#include "gateway_int.h"
#include "view.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../config/policy_config.h"
#include "../common/log.h"
#include "../common/str.h"
#include "../obs/metrics.h"
#include "../policy/hooks.h"
#include "../toolsearch/runtime.h"

#include <stdlib.h>
#include <string.h>

#define DRAIN_TICK_MS 100

/* A pool draining: a shared or tenant pool (pool set), or the sessions' own pools of a removed
 * server (pool NULL, slot set): each is stopped once it has no call in flight, or at the deadline. */
typedef struct drain {
    mg_pool_t *pool;
    size_t slot;
    uint64_t deadline;
    struct drain *next;
} drain_t;

struct kept {
    mg_config_t *cfg;
    char *prefix; /* or a server's previous tool-name prefix (calls in flight may point into it) */
    struct kept *next;
};

/* Every configuration applied, newest first: reachable until exit (pools point into them). */
typedef struct kept kept_t;
static kept_t *kept;

struct mg_reload {
    mg_gateway_t *gw;
    uint64_t ok, failed;
    json_t *restart_needed; /* what the running process has not applied */
    drain_t *drains;
    uv_timer_t timer;
    int closed;
};

static void collect_cb(mg_metrics_out_t *out, void *data)
{
    mg_gateway_t *gw = data;
    struct mg_reload *r = gw->reload;
    mg_metrics_family(out, "mcpgate_config_reloads_total", "counter",
                      "Configuration reloads (SIGHUP, mcpgate reload, gateway.watchConfig) by result");
    const char *lok[] = {"result", "ok", NULL}, *lf[] = {"result", "failed", NULL};
    mg_metrics_sample(out, "mcpgate_config_reloads_total", lok, (double)r->ok);
    mg_metrics_sample(out, "mcpgate_config_reloads_total", lf, (double)r->failed);
    mg_metrics_family(out, "mcpgate_config_info", "gauge",
                      "1, labelled with the digest of the configuration file this replica runs");
    const char *ld[] = {"digest", gw->config_digest, NULL};
    mg_metrics_sample(out, "mcpgate_config_info", ld, 1);
}

int mg__reload_new(mg_gateway_t *gw)
{
    struct mg_reload *r = calloc(1, sizeof *r);
    if (r == NULL)
        return MG_ENOMEM;
    r->gw = gw;
    r->restart_needed = json_array();
    uv_timer_init(gw->loop, &r->timer);
    r->timer.data = r;
    gw->reload = r;
    return mg_metrics_register(collect_cb, gw);
}

/* Stops the own pools of sessions for removed slot d->slot that are idle (all at the deadline).
 * Returns 1 while some still run calls. The session keeps its pool in s->pools until the pool is
 * stopped (pool_sink.gone), so a session closing meanwhile stops it itself. */
static int drain_session_pools(mg_gateway_t *gw, drain_t *d, uint64_t now)
{
    int busy = 0;
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        mg_pool_t *p = s->pools[d->slot];
        if (p == NULL || p->stopping)
            continue;
        if (mg_upstream_inflight(p->up) > 0 && now < d->deadline) {
            busy = 1;
            continue;
        }
        mg__pool_stop(p); /* pool_stopped_cb hands the slot back to the session */
    }
    return busy;
}

static void drain_tick_cb(uv_timer_t *t)
{
    struct mg_reload *r = t->data;
    uint64_t now = uv_now(r->gw->loop);
    for (drain_t **pp = &r->drains; *pp != NULL;) {
        drain_t *d = *pp;
        if (d->pool == NULL) {
            if (drain_session_pools(r->gw, d, now))
                pp = &d->next;
            else {
                *pp = d->next;
                free(d);
            }
            continue;
        }
        if (mg_upstream_inflight(d->pool->up) > 0 && now < d->deadline) {
            pp = &d->next;
            continue;
        }
        if (mg_upstream_inflight(d->pool->up) > 0)
            mg_log_json(MG_LOG_WARN,
                        "reload: grace time over; stopping the old children of a changed or removed server",
                        json_pack("{s:s,s:i}", "upstream", d->pool->srv->cfg->name, "inflight",
                                  (int)mg_upstream_inflight(d->pool->up)));
        *pp = d->next;
        r->gw->pools_stopping++; /* pool_stopped_cb (catalog.c) takes it back */
        mg__pool_stop(d->pool);
        free(d);
    }
    if (r->drains == NULL)
        uv_timer_stop(&r->timer);
}

/* Drains p, or with p NULL the sessions' own pools of removed slot. */
static void drain_add(struct mg_reload *r, mg_pool_t *p, size_t slot)
{
    drain_t *d = calloc(1, sizeof *d);
    if (d == NULL) { /* cannot wait for it: stop it now (its calls fail) */
        if (p == NULL) {
            drain_t now = {.slot = slot};
            drain_session_pools(r->gw, &now, 0);
            return;
        }
        r->gw->pools_stopping++;
        mg__pool_stop(p);
        return;
    }
    d->pool = p;
    d->slot = slot;
    d->deadline = uv_now(r->gw->loop) + r->gw->cfg->limits.shutdown_grace_ms;
    d->next = r->drains;
    r->drains = d;
    if (!uv_is_active((uv_handle_t *)&r->timer))
        uv_timer_start(&r->timer, drain_tick_cb, DRAIN_TICK_MS, DRAIN_TICK_MS);
}

static void ignore_done_cb(mg_upstream_req_t *ureq, int err, json_t *response, const char *message,
                           void *data)
{
}

/* Server srv gets entry sc: a new shared pool for new calls (the URIs its sessions subscribed to
 * carried over), the old pools drain. */
static void restart_server(struct mg_reload *r, mg_gw_server_t *srv, const mg_server_config_t *sc)
{
    mg_gateway_t *gw = r->gw;
    mg_pool_t *old = srv->shared;
    srv->cfg = sc;
    mg_span_attrs_free(srv->span_attrs); /* its spans' attributes follow the entry (dispatch.c) */
    srv->span_attrs = NULL;
    if (old != NULL) {
        srv->shared = NULL;
        if (mg__pool_new(gw, srv, NULL, NULL, &srv->shared) != 0) {
            srv->shared = NULL;
            mg_log_json(MG_LOG_ERROR, "reload: could not start the new children of a changed server",
                        json_pack("{s:s}", "upstream", sc->name));
        } else if (json_object_size(old->subs) > 0) {
            json_decref(srv->shared->subs);
            srv->shared->subs = old->subs;
            old->subs = json_object();
            const char *uri;
            json_t *v;
            json_object_foreach(srv->shared->subs, uri, v)
            {
                json_t *m = json_pack("{s:s,s:s,s:{s:s}}", "jsonrpc", "2.0", "method", "resources/subscribe",
                                      "params", "uri", uri);
                mg_upstream_request(srv->shared->up, m, 0, ignore_done_cb, NULL, NULL, NULL);
            }
        }
        drain_add(r, old, 0);
    }
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&srv->tenants, &pos, &key, &val))
        drain_add(r, val, 0);
    mg_map_dispose(&srv->tenants);
    mg_map_init(&srv->tenants);
}

/* A reload removed srv (or replaces it by a new slot): it leaves the catalog and routes at once
 * (mg__pool_for and the routes skip removed slots); its pools drain. The slot is never reused. */
static void remove_server(struct mg_reload *r, mg_gw_server_t *srv)
{
    srv->removed = 1;
    mg_policy_server_removed(r->gw->policy, srv->index);
    if (srv->shared != NULL) {
        drain_add(r, srv->shared, 0);
        srv->shared = NULL;
    }
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&srv->tenants, &pos, &key, &val))
        drain_add(r, val, 0);
    mg_map_dispose(&srv->tenants);
    mg_map_init(&srv->tenants);
    if (srv->cfg->isolation == MG_ISOLATION_SESSION)
        drain_add(r, NULL, srv->index);
}

/* A reload added entry sc: a new slot, its policy state, and its shared children started.
 * Returns 0, or MG_ENOMEM when no slot is left (the caller says a restart is needed). */
static int add_server(struct mg_reload *r, const mg_server_config_t *sc)
{
    mg_gateway_t *gw = r->gw;
    mg_gw_server_t *srv = mg__server_slot_add(gw, sc);
    if (srv == NULL)
        return MG_ENOMEM;
    if (mg_policy_server_added(gw->policy, srv->index, sc) != 0)
        mg_log_json(MG_LOG_ERROR, "reload: the policy has no room for an added server",
                    json_pack("{s:s}", "upstream", sc->name));
    if (sc->isolation == MG_ISOLATION_SHARED && mg__pool_new(gw, srv, NULL, NULL, &srv->shared) != 0) {
        srv->shared = NULL;
        mg_log_json(MG_LOG_ERROR, "reload: could not start the children of an added server",
                    json_pack("{s:s}", "upstream", sc->name));
    }
    return 0;
}

static void keep_prefix(mg_gateway_t *gw, char *prefix)
{
    kept_t *k = calloc(1, sizeof *k);
    if (k == NULL)
        return; /* leaked rather than freed under a call that may point into it */
    k->prefix = prefix;
    k->next = kept;
    kept = k;
}

static mg_gw_server_t *live_server(mg_gateway_t *gw, const char *name)
{
    for (size_t j = 0; j < gw->nservers; j++)
        if (!gw->servers[j].removed && strcmp(gw->servers[j].cfg->name, name) == 0)
            return &gw->servers[j];
    return NULL;
}

static int key_differs(const json_t *a, const json_t *b, const char *key)
{
    const json_t *x = json_object_get(a, key), *y = json_object_get(b, key);
    return (x == NULL) != (y == NULL) || (x != NULL && !json_equal(x, y));
}

/* 1 when gateway.auth changed only in its rules (read per request through gw->cfg): the running
 * auth runtime stays. Any other change (tokens, oauth, introspection, resource...) makes a new
 * generation of the runtime (swap_auth). */
static int auth_rules_only(const json_t *ga, const json_t *gb)
{
    const json_t *a = json_object_get(ga, "auth"), *b = json_object_get(gb, "auth");
    if (!json_is_object(a) || !json_is_object(b))
        return 0;
    json_t *ca = mg_json_copy((json_t *)a), *cb = mg_json_copy((json_t *)b);
    int same = ca != NULL && cb != NULL;
    if (same) {
        json_object_del(ca, "rules");
        json_object_del(cb, "rules");
        same = json_equal(ca, cb);
    }
    json_decref(ca);
    json_decref(cb);
    return same;
}

static int str_same(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* 1 when what gateway.auth's ${env:}/${file:} references expand to differs although the entry as
 * written is the same: a token hash, an issuer or an introspection secret rotated in a file. */
static int auth_expanded_differs(const mg_auth_config_t *a, const mg_auth_config_t *b)
{
    if (a == NULL || b == NULL)
        return a != b;
    if (a->ntokens != b->ntokens || !str_same(a->resource, b->resource))
        return 1;
    for (size_t i = 0; i < a->ntokens; i++)
        if (memcmp(a->tokens[i].sha256, b->tokens[i].sha256, sizeof a->tokens[i].sha256) != 0 ||
            !str_same(a->tokens[i].name, b->tokens[i].name) ||
            !str_same(a->tokens[i].tenant, b->tokens[i].tenant))
            return 1;
    const mg_auth_oauth_config_t *x = a->oauth, *y = b->oauth;
    if (x == NULL || y == NULL)
        return x != y;
    if (x->naudiences != y->naudiences)
        return 1;
    for (size_t i = 0; i < x->naudiences; i++)
        if (!str_same(x->audiences[i], y->audiences[i]))
            return 1;
    return !str_same(x->issuer, y->issuer) || !str_same(x->jwks_uri, y->jwks_uri) ||
           !str_same(x->introspection_endpoint, y->introspection_endpoint) ||
           !str_same(x->client_id, y->client_id) || !str_same(x->client_secret, y->client_secret);
}

/* Pool p forgets its lists (the next listing fetches, compares and scans them anew) and, when
 * ready, has its instructions checked again. */
static void pool_lists_drop(mg_gateway_t *gw, mg_pool_t *p)
{
    if (p == NULL)
        return;
    mg__pool_invalidate(p, -1);
    if (mg_upstream_state(p->up) == MG_UPSTREAM_READY)
        mg_policy_upstream_ready(gw->policy, p->srv->index, mg_upstream_init_result(p->up));
}

/* Every pool of server i: shared, per tenant, the sessions' own. */
static void server_lists_drop(mg_gateway_t *gw, size_t i)
{
    mg_gw_server_t *srv = &gw->servers[i];
    pool_lists_drop(gw, srv->shared);
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&srv->tenants, &pos, &key, &val))
        pool_lists_drop(gw, val);
    pos = 0;
    while (mg_map_next(&gw->sessions, &pos, &key, &val))
        pool_lists_drop(gw, ((mg_session_t *)val)->pools[i]);
}

/* Pinning, the lockfile (re-read from disk: a file `mcpgate lock --update` rewrote counts) and
 * scanning for next. Servers whose pins or modes changed drop their cached lists; *changed gets
 * mg_policy_reload_pins' bits, slots[i] is set for each such server (slots may be NULL), and
 * "lockfile" goes into applied when the file changed. Returns 0,
 * or an error (logged; nothing changed). */
static int reload_pins(mg_gateway_t *gw, const mg_config_t *next, json_t *applied, int *changed,
                       unsigned char *slots)
{
    unsigned char *which = calloc(gw->server_cap ? gw->server_cap : 1, 1);
    const mg_server_config_t **entries = calloc(gw->server_cap ? gw->server_cap : 1, sizeof *entries);
    if (which == NULL || entries == NULL) {
        free(which);
        free(entries);
        return MG_ENOMEM;
    }
    for (size_t i = 0; i < gw->nservers; i++) /* the policy's view of the slots: plain entries */
        entries[i] = gw->servers[i].removed ? NULL : gw->servers[i].cfg;
    char why[600];
    int rc = mg_policy_reload_pins(gw->policy, next, entries, which, changed, why, sizeof why);
    free(entries);
    if (rc != 0) {
        mg_log_json(MG_LOG_ERROR, "reload: the lockfile or the scan rules could not be loaded",
                    json_pack("{s:s}", "error", why));
        free(which);
        return rc;
    }
    for (size_t i = 0; i < gw->nservers; i++)
        if (which[i]) {
            server_lists_drop(gw, i);
            if (slots != NULL)
                slots[i] = 1;
        }
    free(which);
    if (*changed & MG_POLICY_PINS_LOCKFILE) /* the file's content (or which file) changed */
        json_array_append_new(applied, json_string("lockfile"));
    return 0;
}

/* The auth runtime for next's gateway.auth (*out NULL when next has none): a new generation
 * sharing the running one's record of request principals (auth.h mg_auth_next). Returns 0 or
 * MG_ENOMEM. */
static int auth_generation(mg_gateway_t *gw, const mg_config_t *next, mg_auth_t **out)
{
    *out = NULL;
    if (next->auth == NULL)
        return 0;
    return mg_auth_next(gw->loop, gw->auth, next->auth, out);
}

/* From now on the auth phase uses fresh. Requests the running generation is authenticating or
 * has authenticated hold it: they finish on it, and it is retired when the last one ends. A
 * session stays bound to its principal: a principal compares equal across generations when its
 * source, issuer, tenant and subject are the same (mg_principal_t.key); a new issuer makes new
 * principals, so sessions of the old issuer's users are not theirs any more (404). */
static void swap_auth(mg_gateway_t *gw, mg_auth_t *fresh)
{
    mg_auth_t *old = gw->auth;
    gw->auth = fresh;
    mg_auth_start(fresh); /* issuer discovery and JWKS in the background */
    mg_auth_unref(old);
}

/* Each session's tool profile becomes the one of the same name in the configuration now running
 * (a profile changed in the file applies to the sessions that chose it, from their next request). */
static void rebind_profiles(mg_gateway_t *gw)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val))
        mg_toolsearch_session_rebind(((mg_session_t *)val)->ts, &gw->cfg->tools);
}

void mg_gateway_reload(mg_gateway_t *gw, mg_config_t *next)
{
    struct mg_reload *r = gw->reload;
    kept_t *k = calloc(1, sizeof *k);
    if (k == NULL) {
        mg_gateway_reload_failed(gw, next->path, NULL, "out of memory");
        mg_config_dispose(next);
        free(next);
        return;
    }
    k->cfg = next;
    k->next = kept;
    kept = k;
    /* what each session is listed, before: list_changed goes to those whose view changes (without
     * memory for either, to every session) */
    unsigned char *slots_changed = calloc(gw->server_cap ? gw->server_cap : 1, 1); /* entry or pins */
    mg_view_snap_t *views = slots_changed != NULL ? mg__view_snap_take(gw) : NULL;
    json_t *unchanged = json_array(), *restarted = json_array(), *needed = json_array();
    json_t *added = json_array(), *removed = json_array();
    /* servers, by name. Removed first, so a replaced entry's old slot is gone before its new one. */
    for (size_t j = 0; j < gw->nservers; j++) {
        mg_gw_server_t *srv = &gw->servers[j];
        if (srv->removed)
            continue;
        const mg_server_config_t *sc = NULL;
        for (size_t i = 0; i < next->nservers && sc == NULL; i++)
            if (!next->servers[i].disabled && strcmp(next->servers[i].name, srv->cfg->name) == 0)
                sc = &next->servers[i];
        if (sc == NULL) {
            json_array_append_new(removed, json_string(srv->cfg->name));
            remove_server(r, srv);
        }
    }
    for (size_t i = 0; i < next->nservers; i++) {
        const mg_server_config_t *sc = &next->servers[i];
        if (sc->disabled)
            continue;
        mg_gw_server_t *srv = live_server(gw, sc->name);
        if (srv != NULL && mg_config_server_same(srv->cfg, sc)) {
            srv->cfg = sc; /* the same entry: the new config's copy, so the old one is not needed */
            json_array_append_new(unchanged, json_string(sc->name));
            continue;
        }
        if (srv != NULL && sc->isolation == srv->cfg->isolation &&
            !key_differs(srv->cfg->raw, sc->raw, "pinning") && !key_differs(srv->cfg->raw, sc->raw, "scan")) {
            restart_server(r, srv, sc);
            if (slots_changed != NULL)
                slots_changed[srv->index] = 1;
            json_array_append_new(restarted, json_string(sc->name));
            continue;
        }
        /* added, or its isolation, pinning or scan changed: a new slot (fresh pools and policy
         * state under the same name); the old one, if any, drains as a removed server. */
        if (gw->nservers >= gw->server_cap) {
            char what[200];
            snprintf(what, sizeof what, "mcpServers.%s (%s; every spare server slot is used)", sc->name,
                     srv ? "isolation, pinning or scan changed" : "added");
            json_array_append_new(needed, json_string(what));
            continue;
        }
        if (srv != NULL) {
            remove_server(r, srv);
            json_array_append_new(restarted, json_string(sc->name));
        } else {
            json_array_append_new(added, json_string(sc->name));
        }
        add_server(r, sc);
    }
    /* new slots get theirs; a gateway going from one server to two (or back) renames tools */
    if (mg__server_prefixes(gw, keep_prefix) != 0)
        mg_log_json(MG_LOG_ERROR, "reload: out of memory naming the servers' tools", NULL);
    /* gateway keys: every key of either side. tools and limits are read per request through
     * gw->cfg, so they apply by switching gw->cfg (below) -- but only when nothing else of gateway
     * changed, since the other keys live in runtime state built at start (auth, policy, store...). */
    const json_t *ga = gw->cfg->raw_gateway, *gb = next->raw_gateway;
    json_t *hot = json_array();
    int auth_swap = 0;
    for (int side = 0; side < 2; side++) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)(side ? gb : ga), key, v)
        {
            if ((side == 1 && json_object_get(ga, key) != NULL) || !key_differs(ga, gb, key))
                continue;
            if (strcmp(key, "logLevel") == 0 || strcmp(key, "watchConfig") == 0)
                continue; /* applied by main.c */
            char what[120];
            snprintf(what, sizeof what, "gateway.%s", key);
            int is_hot = strcmp(key, "tools") == 0 || strcmp(key, "cors") == 0 || /* read per request */
                         strcmp(key, "pinning") == 0 || strcmp(key, "lockFile") == 0 ||
                         strcmp(key, "scan") == 0 || /* mg_policy_reload_pins */
                         strcmp(key, "allowedHosts") == 0 ||
                         strcmp(key, "allowedOrigins") == 0 || /* the origin phase reads gw->cfg */
                         (strcmp(key, "limits") == 0 &&
                          gw->cfg->limits.max_body_bytes == next->limits.max_body_bytes &&
                          gw->cfg->limits.http_idle_timeout_ms == next->limits.http_idle_timeout_ms) ||
                         (strcmp(key, "rateLimits") == 0 &&
                          mg_policy_rate_reloadable(gw->policy, next, gw->cluster != NULL)) ||
                         strcmp(key, "auth") == 0; /* rules: gw->cfg; the rest: swap_auth() */
            if (strcmp(key, "auth") == 0 && !auth_rules_only(ga, gb))
                auth_swap = 1;
            json_array_append_new(is_hot ? hot : needed, json_string(what));
        }
    }
    if (!key_differs(ga, gb, "auth") && auth_expanded_differs(gw->cfg->auth, next->auth)) {
        json_array_append_new(hot, json_string("gateway.auth"));
        auth_swap = 1;
    }
    int gateway_needed = 0, pins_changed = 0;
    size_t ni;
    json_t *nv;
    json_array_foreach(needed, ni, nv) gateway_needed |= strncmp(json_string_value(nv), "gateway.", 8) == 0;
    if (!gateway_needed) {
        /* tool filters, profiles, modes, request-time limits, auth rules: next request */
        mg_auth_t *fresh = NULL;
        int rc = auth_swap ? auth_generation(gw, next, &fresh) : 0;
        if (rc == 0)
            rc = reload_pins(gw, next, hot, &pins_changed, slots_changed);
        if (rc == 0)
            rc = mg_policy_set_config(gw->policy, next); /* rate limits and CORS: next request */
        if (rc != 0) {
            json_array_extend(needed, hot); /* out of memory: nothing switched */
            json_array_clear(hot);
            mg_auth_unref(fresh);
        } else {
            if (auth_swap) /* tokens, issuer, keys, introspection: the next request's auth phase */
                swap_auth(gw, fresh);
            gw->cfg = next;
            rebind_profiles(gw);
        }
    } else {
        json_array_extend(needed, hot); /* not applied either: they would mix two configurations */
        json_array_clear(hot);
    }
    json_t *applied = hot;
    /* "lockfile" alone (its content changed, no server's pins did) changes no catalog */
    size_t keys_applied = json_array_size(applied) - ((pins_changed & MG_POLICY_PINS_LOCKFILE) ? 1 : 0);
    if (json_array_size(restarted) > 0 || keys_applied > 0 || json_array_size(added) > 0 ||
        json_array_size(removed) > 0 ||
        (pins_changed & MG_POLICY_PINS_SERVERS)) /* 2026-07-28 listeners: some catalog may have changed */
        mg__catalog_list_changed_to(
            gw, NULL, (1u << MG_LIST_TOOLS) | (1u << MG_LIST_PROMPTS) | (1u << MG_LIST_RESOURCES));
    /* sessions: each whose view changed, of the kinds that changed (view.h) */
    size_t notified = mg__view_snap_notify(gw, views, slots_changed);
    free(slots_changed);
    mg_strlcpy(gw->config_digest, sizeof gw->config_digest, next->digest);
    json_decref(r->restart_needed);
    r->restart_needed = json_incref(needed);
    r->ok++;
    mg_log_json(MG_LOG_INFO, "configuration reloaded",
                json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:O,s:I}", "digest", next->digest, "unchanged", unchanged,
                          "restarted", restarted, "added", added, "removed", removed, "applied", applied,
                          "restartNeeded", needed, "sessionsNotified", (json_int_t)notified));
    if (json_array_size(needed) > 0) {
        char m[600];
        size_t n =
            (size_t)snprintf(m, sizeof m, "reload: these changes need a restart of the gateway to apply:");
        size_t i;
        json_t *w;
        json_array_foreach(needed, i, w)
        {
            if (n < sizeof m)
                n += (size_t)snprintf(m + n, sizeof m - n, "%s %s", i ? "," : "", json_string_value(w));
        }
        mg_log_json(MG_LOG_WARN, m, json_pack("{s:O}", "restartNeeded", needed));
    }
    json_decref(needed);
}

void mg_gateway_reload_failed(mg_gateway_t *gw, const char *path, const mg_config_errors_t *errs,
                              const char *why)
{
    struct mg_reload *r = gw->reload;
    r->failed++;
    json_t *problems = json_array();
    for (size_t i = 0; errs != NULL && i < errs->count; i++)
        json_array_append_new(problems, json_string(errs->msgs[i]));
    if (why != NULL)
        json_array_append_new(problems, json_string(why));
    mg_log_json(
        MG_LOG_ERROR,
        "reload failed: the running configuration stays; fix the problems (`mcpgate check` lists them) "
        "and reload again",
        json_pack("{s:s,s:o,s:s}", "config", path ? path : "", "problems", problems, "running",
                  gw->config_digest));
}

void mg__reload_readyz(mg_gateway_t *gw, json_t *out)
{
    struct mg_reload *r = gw->reload;
    if (r == NULL)
        return;
    json_object_set_new(out, "config",
                        json_pack("{s:s,s:I,s:I,s:O}", "digest", gw->config_digest, "reloads",
                                  (json_int_t)r->ok, "reloadFailures", (json_int_t)r->failed, "restartNeeded",
                                  r->restart_needed));
}

void mg__reload_shutdown(mg_gateway_t *gw)
{
    struct mg_reload *r = gw->reload;
    if (r == NULL)
        return;
    uv_timer_stop(&r->timer);
    while (r->drains != NULL) {
        drain_t *d = r->drains;
        r->drains = d->next;
        gw->pools_stopping++;
        mg__pool_stop(d->pool);
        free(d);
    }
}

static void timer_closed_cb(uv_handle_t *h)
{
    free(h->data);
}

void mg__reload_free(mg_gateway_t *gw)
{
    struct mg_reload *r = gw->reload;
    if (r == NULL)
        return;
    mg_metrics_unregister(collect_cb, gw);
    json_decref(r->restart_needed);
    /* the kept configurations stay reachable until exit: pools of this process pointed into them */
    gw->reload = NULL;
    uv_close((uv_handle_t *)&r->timer, timer_closed_cb);
}
