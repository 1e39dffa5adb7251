/*
 * pools.c - which pool serves a session (shared, per tenant, or the session's own, created on first
 * use; with a shared store only on the replica that may own the session's children), and the
 * list_changed fan-out to the sessions and 2026-07-28 listeners a change reaches (its server
 * visible to their principal under gateway.auth.rules; a tenant pool's to its tenant only;
 * debounced 50 ms; with a shared store, to every replica through cluster_bus.c, which judges its
 * own streams the same way). The catalog (gateway/catalog.c) reports into these through
 * the pool sink (gw->pool_sink) and never calls them by name. A reload notifies the sessions whose
 * view changed one by one (mg__catalog_list_changed_to, from view.c).
 * Read next: gateway/catalog.c (pools and their lists), gateway/session.c (sessions).
 */
#include "../common/log.h"
#include "../jsonrpc/jsonrpc.h"
#include "gateway_int.h"

#include <stdlib.h>
#include <string.h>

mg_pool_t *mg__pool_for(mg_gateway_t *gw, mg_session_t *s, const mg_principal_t *pr, size_t i)
{
    mg_gw_server_t *srv = &gw->servers[i];
    if (srv->removed) /* a reload removed it: its pools drain, no new call reaches them */
        return NULL;
    if (srv->shared != NULL)
        return srv->shared;
    if (srv->cfg->isolation == MG_ISOLATION_TENANT) {
        /* one pool per tenant, shared by its sessions and its stateless requests */
        if (gw->shutting_down && srv->tenants.count == 0)
            return NULL;
        const char *tenant = mg__tenant_of(pr);
        mg_pool_t *p = mg_map_get(&srv->tenants, tenant);
        if (p != NULL || gw->shutting_down)
            return p;
        if (mg__pool_new(gw, srv, NULL, tenant, &p) != 0)
            return NULL;
        p->tenant = strdup(tenant);
        if (p->tenant == NULL || mg_map_set(&srv->tenants, tenant, p) != 0) {
            mg__pool_stop(p); /* pool_stopped_cb frees it */
            gw->pools_stopping++;
            return NULL;
        }
        mg_log_json(MG_LOG_INFO, "tenant pool created",
                    json_pack("{s:s,s:s}", "upstream", srv->cfg->name, "tenant", tenant));
        return p;
    }
    /* isolation "session" needs a session: stateless 2026-07-28 requests cannot get a child of
     * their own, and sharing one between callers would defeat the isolation. */
    if (s == NULL || s->closing || s == gw->stateless)
        return NULL;
    /* cluster: only the replica the store names as owner runs the session's children */
    if (s->pools[i] == NULL && gw->cluster != NULL && !mg__cluster_may_own(s))
        return NULL;
    if (s->pools[i] == NULL && mg__pool_new(gw, srv, s, NULL, &s->pools[i]) != 0)
        return NULL;
    return s->pools[i];
}

/* ---- list_changed fan-out, debounced ---- */

unsigned mg__lc_reach_kinds(void *reach, const mg_principal_t *p)
{
    const mg_lc_reach_t *r = reach;
    unsigned bits = r->all;
    for (size_t i = 0; i < r->n; i++) {
        if ((bits | r->ch[i].bits) == bits)
            continue;
        const mg_gw_server_t *srv = &r->gw->servers[r->ch[i].slot];
        if (srv->removed || (r->ch[i].tenant != NULL && strcmp(r->ch[i].tenant, mg__tenant_of(p)) != 0) ||
            !mg_auth_policy_may_see(r->gw->cfg->auth, p, srv->cfg->name))
            continue;
        bits |= r->ch[i].bits;
    }
    return bits;
}

/* list_changed of each kind in bits to session s; note[k] holds kind k's notification, made on
 * first use and kept for the next session (notes_free). */
static void notify_session(mg_session_t *s, unsigned bits, json_t *note[MG_LIST_TEMPLATES])
{
    for (int k = 0; k < MG_LIST_TEMPLATES; k++) {
        if (!(bits & (1u << k)))
            continue;
        if (note[k] == NULL)
            note[k] = mg_rpc_notification(mg_list_changed_method((mg_list_kind_t)k), NULL);
        mg__session_notify(s, note[k]);
    }
}

static void notes_free(json_t *note[MG_LIST_TEMPLATES])
{
    for (int k = 0; k < MG_LIST_TEMPLATES; k++)
        json_decref(note[k]);
}

/* list_changed of each kind in bits to session s alone. */
static void notify_one(mg_session_t *s, unsigned bits)
{
    json_t *note[MG_LIST_TEMPLATES] = {0};
    notify_session(s, bits, note);
    notes_free(note);
}

static void pending_clear(mg_gateway_t *gw)
{
    for (size_t i = 0; i < gw->nlc_pending; i++)
        free(gw->lc_pending[i].tenant);
    gw->nlc_pending = 0;
    gw->lc_all = 0;
}

static void debounce_cb(uv_timer_t *t)
{
    mg_gateway_t *gw = t->data;
    if (gw->cluster != NULL) { /* every replica's clients: cluster_bus.c delivers it, here too */
        mg__cluster_list_changed(gw, gw->lc_pending, gw->nlc_pending, gw->lc_all);
        pending_clear(gw);
        return;
    }
    mg_lc_reach_t r = {gw, gw->lc_pending, gw->nlc_pending, gw->lc_all};
    mg__modern_listeners_changed(gw, mg__lc_reach_kinds, &r);
    json_t *note[MG_LIST_TEMPLATES] = {0};
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        notify_session(s, mg__lc_reach_kinds(&r, s->principal), note);
    }
    notes_free(note);
    pending_clear(gw);
}

void mg__catalog_list_changed(mg_gateway_t *gw, mg_session_t *only, mg_list_kind_t kind)
{
    (void)gw;
    notify_one(only, 1u << (kind == MG_LIST_TEMPLATES ? MG_LIST_RESOURCES : kind));
}

void mg__pool_list_changed(mg_gateway_t *gw, mg_pool_t *pool, mg_list_kind_t kind)
{
    if (kind == MG_LIST_TEMPLATES)
        kind = MG_LIST_RESOURCES;
    if (pool->owner != NULL) {
        notify_one(pool->owner, 1u << kind);
        return;
    }
    if (gw->nlc_pending == 0 && gw->lc_all == 0)
        uv_timer_start(&gw->debounce_timer, debounce_cb, 50, 0);
    for (size_t i = 0; i < gw->nlc_pending; i++) {
        mg_lc_change_t *c = &gw->lc_pending[i];
        if (c->slot == pool->srv->index && (c->tenant == NULL) == (pool->tenant == NULL) &&
            (c->tenant == NULL || strcmp(c->tenant, pool->tenant) == 0)) {
            c->bits |= 1u << kind;
            return;
        }
    }
    if (gw->nlc_pending == gw->lc_cap) {
        size_t cap = gw->lc_cap ? 2 * gw->lc_cap : 8;
        mg_lc_change_t *grown = realloc(gw->lc_pending, cap * sizeof *grown);
        if (grown == NULL) {
            gw->lc_all |= 1u << kind; /* cannot tell whom it reaches: everyone is told */
            return;
        }
        gw->lc_pending = grown;
        gw->lc_cap = cap;
    }
    mg_lc_change_t *c = &gw->lc_pending[gw->nlc_pending];
    c->slot = pool->srv->index;
    c->bits = 1u << kind;
    c->tenant = NULL;
    if (pool->tenant != NULL && (c->tenant = strdup(pool->tenant)) == NULL) {
        gw->lc_all |= 1u << kind;
        return;
    }
    gw->nlc_pending++;
}

void mg__catalog_list_changed_to(mg_gateway_t *gw, mg_session_t *s, unsigned bits)
{
    if (bits & (1u << MG_LIST_TEMPLATES))
        bits = (bits & ~(1u << MG_LIST_TEMPLATES)) | (1u << MG_LIST_RESOURCES);
    if (s == NULL) { /* stateless callers hold no view of their own: every listener hears it */
        for (int k = 0; k < MG_LIST_TEMPLATES; k++) {
            if (!(bits & (1u << k)))
                continue;
            json_t *n = mg_rpc_notification(mg_list_changed_method((mg_list_kind_t)k), NULL);
            mg__modern_listeners_notify(gw, 1u << k, NULL, n);
            json_decref(n);
        }
        return;
    }
    if (gw->cluster != NULL && mg__session_shared(s)) { /* the stream this replica follows, if any */
        mg__cluster_list_changed_local(gw, s, bits);
        return;
    }
    notify_one(s, bits);
}
