/*
 * gateway.c - the runtime's lifetime: build servers and shared pools from the config, start
 * them, the session sweeper and SSE keep-alives, /readyz, and graceful shutdown.
 * Read next: gateway/era_legacy.c (the request path) and gateway/catalog.c (pools).
 */
#include "gateway_int.h"
#include "../policy/hooks.h"
#include "toolsearch_hooks.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../obs/journal.h"
#include "../obs/metrics.h"
#include "../config/auth_config.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

static uv_loop_t *clock_loop;

uint64_t mg_gateway_now_ms(void)
{
    return clock_loop ? uv_now(clock_loop) : 0;
}

mg_gw_server_t *mg__server_slot_add(mg_gateway_t *gw, const mg_server_config_t *sc)
{
    if (gw->nservers >= gw->server_cap)
        return NULL;
    mg_gw_server_t *srv = &gw->servers[gw->nservers];
    memset(srv, 0, sizeof *srv);
    srv->cfg = sc;
    srv->index = gw->nservers++;
    mg_map_init(&srv->tenants);
    return srv;
}

int mg__server_prefixes(mg_gateway_t *gw, void (*keep)(mg_gateway_t *, char *))
{
    const char *sep = gw->cfg->namespace_separator ? gw->cfg->namespace_separator : "__";
    size_t live = 0;
    for (size_t i = 0; i < gw->nservers; i++)
        live += !gw->servers[i].removed;
    for (size_t i = 0; i < gw->nservers; i++) {
        mg_gw_server_t *srv = &gw->servers[i];
        if (srv->removed)
            continue;
        size_t n = strlen(srv->cfg->name) + strlen(sep) + 1;
        char *p = malloc(n);
        if (p == NULL)
            return MG_ENOMEM;
        if (live > 1)
            snprintf(p, n, "%s%s", srv->cfg->name, sep);
        else
            p[0] = '\0';
        if (srv->prefix != NULL && strcmp(srv->prefix, p) == 0) {
            free(p);
            continue;
        }
        if (keep != NULL && srv->prefix != NULL)
            keep(gw, srv->prefix);
        else
            free(srv->prefix);
        srv->prefix = p;
    }
    return 0;
}

int mg_gateway_new(uv_loop_t *loop, const mg_config_t *cfg, mg_gateway_t **out)
{
    mg_gateway_t *gw = calloc(1, sizeof(*gw));
    if (gw == NULL)
        return MG_ENOMEM;
    clock_loop = loop;
    gw->loop = loop;
    gw->sessions_source = &mg__sessions_local;
    gw->pool_sink.message = mg__dispatch_upstream_message;
    gw->pool_sink.list_changed = mg__pool_list_changed; /* gateway/pools.c */
    gw->pool_sink.gone = mg__session_pool_gone;
    gw->cfg = cfg;
    mg_map_init(&gw->sessions);
    size_t enabled = mg_config_enabled_count(cfg);
    gw->server_cap = enabled + MG_SERVER_SPARE_SLOTS;
    gw->servers = calloc(gw->server_cap, sizeof(*gw->servers));
    if (gw->servers == NULL) {
        free(gw);
        return MG_ENOMEM;
    }
    for (size_t i = 0; i < cfg->nservers; i++)
        if (!cfg->servers[i].disabled && mg__server_slot_add(gw, &cfg->servers[i]) == NULL)
            return MG_ENOMEM; /* startup only: the process exits */
    if (mg__server_prefixes(gw, NULL) != 0)
        return MG_ENOMEM;
    mg__modern_init(gw);
    mg__tasks_init(gw);
    if (gw->task_store == NULL)
        return MG_ENOMEM; /* startup only: the process exits */
    if (mg__toolsearch_start(gw) != 0)
        return MG_ENOMEM; /* startup only: the process exits */
    /* Pinning, scanning, rate limits (src/policy/); startup only: serve validated the policy before. */
    if (mg_policy_new(cfg, gw->server_cap, &gw->policy) != 0)
        return MG_ENOMEM;
    for (size_t i = 0; i < gw->nservers; i++)
        if (mg_policy_server_added(gw->policy, i, gw->servers[i].cfg) != 0)
            return MG_ENOMEM;
    if (cfg->auth != NULL && mg_auth_new(loop, cfg->auth, &gw->auth) != 0)
        return MG_ENOMEM; /* never run unauthenticated when auth is configured (startup only: exits) */
    /* gateway.tracing (src/trace/): spans exported over OTLP/HTTP; off when absent. */
    if (cfg->tracing.endpoint != NULL &&
        mg_trace_new(loop, cfg->tracing.endpoint, cfg->tracing.sample_ratio, &gw->trace) != 0)
        return MG_ENOMEM;    /* startup only: the process exits */
    if (gw->trace != NULL) { /* "protocol" and "headers" (collector credentials) */
        const char *hs[2 * MG_TRACE_HEADERS_MAX];
        size_t nh =
            cfg->tracing.nheaders < MG_TRACE_HEADERS_MAX ? cfg->tracing.nheaders : MG_TRACE_HEADERS_MAX;
        for (size_t i = 0; i < nh; i++) {
            hs[2 * i] = cfg->tracing.headers[i].key;
            hs[2 * i + 1] = cfg->tracing.headers[i].value;
        }
        if (mg_trace_set_export(gw->trace, cfg->tracing.protobuf, hs, nh) != 0)
            return MG_ENOMEM; /* startup only: the process exits */
    }
    if (mg__status_new(gw) != 0 || mg__reload_new(gw) != 0)
        return MG_ENOMEM;
    memcpy(gw->config_digest, cfg->digest, sizeof gw->config_digest);
    uv_timer_init(loop, &gw->sweep_timer);
    uv_timer_init(loop, &gw->debounce_timer);
    uv_timer_init(loop, &gw->keepalive_timer);
    uv_timer_init(loop, &gw->shutdown_timer);
    uv_timer_init(loop, &gw->trim_timer);
    uv_unref((uv_handle_t *)&gw->trim_timer); /* never keeps the loop alive */
    gw->sweep_timer.data = gw->debounce_timer.data = gw->keepalive_timer.data = gw->shutdown_timer.data = gw;
    gw->trim_timer.data = gw;
    *out = gw;
    return 0;
}

static void sweep_cb(uv_timer_t *t)
{
    mg_gateway_t *gw = t->data;
    mg__sessions_sweep(gw);
}

static void keepalive_cb(uv_timer_t *t)
{
    mg__sessions_keepalive(t->data);
    mg__modern_listeners_keepalive(t->data);
    if (((mg_gateway_t *)t->data)->cluster != NULL)
        mg__cluster_keepalive(t->data);
}

int mg_gateway_sessions_init(mg_gateway_t *gw, const char *store, const char *listen, char *why,
                             size_t whylen)
{
    int rc = 0;
    if (store != NULL && strcmp(store, "memory") != 0)
        rc = mg__cluster_new(gw, store, listen, why, whylen);
    if (rc == 0 && gw->cluster != NULL) {
        gw->sessions_source = &mg__sessions_shared;
        mg__tasks_shared(gw); /* task records follow the sessions to Redis */
    }
    /* rate limits follow the session store to Redis unless told "local" (src/policy/hooks.h) */
    return rc != 0 ? rc
                   : mg_policy_rate_shared(gw->policy, gw->cluster != NULL ? gw->store : NULL, why, whylen);
}

/* Messages of shared children that reached no client (dispatch.c), per server. */
static void collect_cb(mg_metrics_out_t *out, void *data)
{
    mg_gateway_t *gw = data;
    mg_metrics_family(out, "mcpgate_upstream_unrouted_total", "counter",
                      "Messages from an upstream shared between clients that no client got (no evidence of "
                      "whose they were): notifications dropped, server->client requests refused");
    for (size_t i = 0; i < gw->nservers; i++) {
        if (gw->servers[i].removed) /* a reload removed it */
            continue;
        const char *ln[] = {"upstream", gw->servers[i].cfg->name, "kind", "notification", NULL};
        const char *lr[] = {"upstream", gw->servers[i].cfg->name, "kind", "request", NULL};
        mg_metrics_sample(out, "mcpgate_upstream_unrouted_total", ln, (double)gw->servers[i].unrouted_notes);
        mg_metrics_sample(out, "mcpgate_upstream_unrouted_total", lr, (double)gw->servers[i].unrouted_reqs);
    }
    /* Remote servers shared by every client: the circuit breaker (src/upstream/remote.c). */
    mg_metrics_family(out, "mcpgate_upstream_breaker_open", "gauge",
                      "1 while a remote upstream's circuit breaker is open (down after failures, or refused: "
                      "SSRF guard, no credential), else 0");
    for (size_t i = 0; i < gw->nservers; i++) {
        if (gw->servers[i].removed) /* a reload removed it */
            continue;
        mg_pool_t *p = gw->servers[i].shared;
        const char *b = p != NULL ? mg_upstream_breaker(p->up) : NULL;
        if (b == NULL)
            continue;
        const char *l[] = {"upstream", gw->servers[i].cfg->name, "state", b, NULL};
        mg_metrics_sample(out, "mcpgate_upstream_breaker_open", l, strcmp(b, "closed") != 0);
    }
}

/* Tenants gateway.auth can produce: "several" when an issuer takes the tenant from a claim. */
static void tenants_of_auth(const mg_config_t *cfg, json_t *names, int *open)
{
    *open = 0;
    if (cfg->auth == NULL)
        return;
    for (size_t i = 0; i < cfg->auth->ntokens; i++)
        json_object_set_new(names, cfg->auth->tokens[i].tenant ? cfg->auth->tokens[i].tenant : "default",
                            json_true());
    if (cfg->auth->oauth != NULL) {
        if (cfg->auth->oauth->tenant_claim != NULL)
            *open = 1;
        else
            json_object_set_new(names, cfg->auth->oauth->tenant ? cfg->auth->oauth->tenant : "default",
                                json_true());
    }
}

void mg_gateway_start(mg_gateway_t *gw)
{
    json_t *tenants = json_object();
    int open = 0;
    tenants_of_auth(gw->cfg, tenants, &open);
    for (size_t i = 0; i < gw->nservers; i++) {
        mg_gw_server_t *srv = &gw->servers[i];
        if (srv->cfg->isolation == MG_ISOLATION_SHARED &&
            mg__pool_new(gw, srv, NULL, NULL, &srv->shared) != 0)
            mg_log_json(MG_LOG_ERROR, "could not create upstream",
                        json_pack("{s:s}", "upstream", srv->cfg->name));
        if (srv->cfg->isolation == MG_ISOLATION_SHARED && (open || json_object_size(tenants) > 1)) {
            char m[400];
            snprintf(m, sizeof m,
                     "server '%s' is shared by every tenant of gateway.auth (%s): whatever state it keeps "
                     "(files, memory, logging level) is common to them; set \"isolation\": \"tenant\" (one "
                     "child pool per tenant) or \"session\" if it must not be",
                     srv->cfg->name, open ? "tenants come from a token claim" : "several tenants configured");
            json_t *f = json_pack("{s:s}", "upstream", srv->cfg->name);
            if (!open)
                json_object_set_new(f, "tenants", json_integer((json_int_t)json_object_size(tenants)));
            mg_log_json(MG_LOG_WARN, m, f);
        }
    }
    json_decref(tenants);
    mg_metrics_register(collect_cb, gw);
    uint64_t ttl = gw->cfg->limits.session_ttl_ms;
    uint64_t every = ttl / 4 < 1000 ? 1000 : ttl / 4 > 30000 ? 30000 : ttl / 4;
    uv_timer_start(&gw->sweep_timer, sweep_cb, every, every);
    uv_timer_start(&gw->keepalive_timer, keepalive_cb, 15000, 15000);
    mg_auth_start(gw->auth); /* issuer discovery and JWKS in the background */
    if (gw->cluster != NULL)
        mg__cluster_start(gw); /* replica registry heartbeat, store sweeps */
}

json_t *mg_gateway_readyz(mg_gateway_t *gw, int *ready)
{
    json_t *ups = json_array();
    size_t nready = 0, total = 0;
    for (size_t i = 0; i < gw->nservers; i++) {
        mg_gw_server_t *srv = &gw->servers[i];
        if (srv->removed) /* a reload removed it */
            continue;
        json_t *u = json_pack("{s:s,s:s}", "name", srv->cfg->name, "isolation",
                              mg_isolation_name(srv->cfg->isolation));
        if (srv->cfg->isolation == MG_ISOLATION_TENANT) {
            /* one pool per tenant that used it: counted, not named (tenants are not public) */
            unsigned nready_t = 0;
            size_t pos = 0;
            const char *key;
            void *val;
            while (mg_map_next(&srv->tenants, &pos, &key, &val))
                nready_t += mg_upstream_state(((mg_pool_t *)val)->up) == MG_UPSTREAM_READY;
            json_object_set_new(u, "state", json_string("per-tenant"));
            json_object_set_new(u, "pools", json_integer((json_int_t)srv->tenants.count));
            json_object_set_new(u, "pools_ready", json_integer(nready_t));
        } else if (srv->shared != NULL) {
            mg_upstream_t *up = srv->shared->up;
            mg_upstream_state_t st = mg_upstream_state(up);
            total++;
            nready += st == MG_UPSTREAM_READY;
            json_object_set_new(u, "state", json_string(mg_upstream_state_name(st)));
            json_object_set_new(u, "restarts", json_integer(mg_upstream_restarts(up)));
            json_object_set_new(u, "inflight", json_integer(mg_upstream_inflight(up)));
            if (mg_upstream_breaker(up) != NULL) { /* a remote server: its era and circuit breaker */
                json_object_set_new(u, "kind", json_string(mg_upstream_kind(up)));
                json_object_set_new(u, "breaker", json_string(mg_upstream_breaker(up)));
                if (mg_upstream_era(up) != NULL)
                    json_object_set_new(u, "era", json_string(mg_upstream_era(up)));
                if (mg_upstream_http_version(up) != NULL)
                    json_object_set_new(u, "http", json_string(mg_upstream_http_version(up)));
            }
            if (mg_upstream_last_error(up) != NULL && st != MG_UPSTREAM_READY)
                json_object_set_new(u, "error", json_string(mg_upstream_last_error(up)));
            if (mg_upstream_last_stderr(up) != NULL && st != MG_UPSTREAM_READY) /* masked, bounded */
                json_object_set(u, "stderr", mg_upstream_last_stderr(up));
            mg_policy_readyz(gw->policy, i, u); /* pinning and scanning detail */
        } else {
            json_object_set_new(u, "state", json_string("per-session"));
        }
        json_array_append_new(ups, u);
    }
    const char *status = gw->shutting_down               ? "stopping"
                         : total == 0 || nready == total ? "ok"
                         : nready > 0                    ? "degraded"
                                                         : "down";
    *ready = !gw->shutting_down && (total == 0 || nready > 0);
    /* The session store (gateway.sessions.store): without it no session can be verified. */
    int store_ready = 1;
    json_t *store = gw->cluster != NULL /* one process: the session table is the store (session.c) */
                        ? mg__cluster_status(gw, &store_ready)
                        : json_pack("{s:s,s:b,s:I}", "backend", "memory", "ready", 1, "records",
                                    (json_int_t)gw->sessions.count);
    if (!store_ready) {
        *ready = 0;
        if (!gw->shutting_down)
            status = "down";
    }
    json_t *out = json_pack("{s:b,s:s,s:I,s:o,s:o}", "ready", *ready, "status", status, "sessions",
                            (json_int_t)gw->sessions.count, "upstreams", ups, "store", store);
    mg__reload_readyz(gw, out); /* the config digest: a rollout can check every replica runs it */
    return out;
}

static void shutdown_tick(uv_timer_t *t);

static void journal_closed_cb(void *data)
{
    mg_gateway_t *gw = data;
    if (gw->shutdown_cb != NULL) {
        void (*cb)(mg_gateway_t *, void *) = gw->shutdown_cb;
        gw->shutdown_cb = NULL;
        cb(gw, gw->shutdown_data);
    }
}

static void finish_shutdown(mg_gateway_t *gw);

static void trace_drained_cb(void *data)
{
    finish_shutdown(data);
}

static void finish_shutdown(mg_gateway_t *gw)
{
    uv_timer_stop(&gw->shutdown_timer);
    if (gw->trace != NULL && !gw->trace_drained) {
        /* spans that ended during the grace period (calls finishing, sessions closing) go out
         * too: a last export, waited for at most MG_TRACE_DRAIN_MS */
        gw->trace_drained = 1;
        mg_trace_drain(gw->trace, MG_TRACE_DRAIN_MS, trace_drained_cb, gw);
        return;
    }
    if (gw->journal != NULL) { /* its last checkpoint reaches the disk before done_cb */
        struct mg_journal *j = gw->journal;
        gw->journal = NULL;
        mg_journal_close(j, 5000, journal_closed_cb, gw);
        return;
    }
    if (gw->shutdown_cb != NULL) {
        void (*cb)(mg_gateway_t *, void *) = gw->shutdown_cb;
        gw->shutdown_cb = NULL;
        cb(gw, gw->shutdown_data);
    }
}

static void stop_everything(mg_gateway_t *gw)
{
    /* Close every session: fails what is still in flight, ends streams, stops session pools. */
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val))
        mg__session_close(val, "gateway shutting down");
    if (gw->cluster != NULL) /* the records stay; this replica leaves the registry */
        mg__cluster_leave(gw);
    mg__modern_dispose(gw);
    mg__tasks_dispose(gw);
    mg__dispatch_session_gone(gw->stateless);
    mg__reload_shutdown(gw);
    for (size_t i = 0; i < gw->nservers; i++) {
        if (gw->servers[i].shared != NULL) {
            gw->pools_stopping++;
            mg__pool_stop(gw->servers[i].shared);
            gw->servers[i].shared = NULL;
        }
        size_t tpos = 0;
        const char *tkey;
        void *tval;
        while (mg_map_next(&gw->servers[i].tenants, &tpos, &tkey, &tval)) {
            gw->pools_stopping++;
            mg__pool_stop(tval);
        }
        mg_map_dispose(&gw->servers[i].tenants);
        mg_map_init(&gw->servers[i].tenants);
    }
}

static void shutdown_tick(uv_timer_t *t)
{
    mg_gateway_t *gw = t->data;
    uint64_t now = uv_now(gw->loop);
    if (gw->shutdown_deadline != 0 && (gw->live_calls == 0 || now >= gw->shutdown_deadline)) {
        if (gw->live_calls > 0)
            mg_log(MG_LOG_WARN, "shutdown grace period over; failing %u request(s) still in flight",
                   gw->live_calls);
        gw->shutdown_deadline = 0;
        stop_everything(gw);
    }
    if (gw->shutdown_deadline == 0 && gw->pools_stopping == 0)
        finish_shutdown(gw);
}

void mg_gateway_shutdown(mg_gateway_t *gw, uint64_t grace_ms, void (*done_cb)(mg_gateway_t *, void *),
                         void *data)
{
    if (gw->shutting_down)
        return;
    gw->shutting_down = 1;
    mg_auth_stop(gw->auth);
    mg_trace_flush(gw->trace); /* what is queued goes now, best effort */
    gw->shutdown_cb = done_cb;
    gw->shutdown_data = data;
    gw->shutdown_deadline = uv_now(gw->loop) + grace_ms;
    uv_timer_stop(&gw->sweep_timer);
    uv_timer_stop(&gw->keepalive_timer);
    uv_timer_stop(&gw->debounce_timer);
    /* Tell GET streams to reconnect elsewhere. */
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        if (s->get_stream != NULL && s->get_stream->conn != NULL) {
            mg_sse_conn_t *c = s->get_stream->conn;
            s->get_stream->conn = NULL;
            mg_sse_conn_write(c, "retry: 1000\n\n", 13);
            mg_sse_conn_abandon(c);
        }
    }
    if (gw->cluster != NULL) /* leave the registry; SSE streams get a retry hint, to resume elsewhere */
        mg__cluster_drain(gw);
    /* Calls parked for an MRTR retry wait for a client, not for work: they end now. */
    mg__modern_dispose(gw);
    mg__tasks_drain(gw); /* so do 2025-11-25 tasks/result waiters */
    uv_timer_start(&gw->shutdown_timer, shutdown_tick, 0, 20);
}

static void trim_cb(uv_timer_t *t)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

void mg__gateway_trim_soon(mg_gateway_t *gw)
{
    if (!uv_is_active((uv_handle_t *)&gw->trim_timer) && !uv_is_closing((uv_handle_t *)&gw->trim_timer))
        uv_timer_start(&gw->trim_timer, trim_cb, 1000, 0);
}

static void handle_closed_cb(uv_handle_t *h)
{
    mg_gateway_t *gw = h->data;
    if (--gw->handles_closing == 0)
        free(gw);
}

void mg_gateway_free(mg_gateway_t *gw)
{
    if (gw == NULL)
        return;
    mg_metrics_unregister(collect_cb, gw);
    mg__status_free(gw);
    mg__reload_free(gw);
    for (size_t i = 0; i < gw->nservers; i++) {
        free(gw->servers[i].prefix);
        mg_span_attrs_free(gw->servers[i].span_attrs);
        mg_map_dispose(&gw->servers[i].tenants);
    }
    free(gw->servers);
    for (size_t i = 0; i < gw->nlc_pending; i++)
        free(gw->lc_pending[i].tenant);
    free(gw->lc_pending);
    mg__tasks_free(gw);
    mg__cluster_free(gw);
    if (gw->store)
        gw->store->ops->free(gw->store);
    mg_map_dispose(&gw->sessions);
    mg__modern_free(gw);
    mg__toolsearch_stop(gw);
    mg_policy_free(gw->policy);
    mg_auth_free(gw->auth);
    mg_trace_free(gw->trace);
    for (size_t i = 0; i < sizeof gw->trace_http_attrs / sizeof gw->trace_http_attrs[0]; i++)
        mg_span_attrs_free(gw->trace_http_attrs[i]);
    mg_span_attrs_free(gw->trace_tool_attrs);
    /* Timer handles are embedded: the struct is freed from the last close callback. */
    gw->handles_closing = 8;
    uv_close((uv_handle_t *)&gw->task_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&gw->trim_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&gw->flush_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&gw->park_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&gw->sweep_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&gw->debounce_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&gw->keepalive_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&gw->shutdown_timer, handle_closed_cb);
}

mg_auth_t *mg_gateway_auth(mg_gateway_t *gw)
{
    return gw->auth;
}

/* ---- the routes http/server.c serves for the gateway (server.h's handlers take a void *) ---- */

static int route_mcp(void *data, h2o_req_t *req, int loopback_bound)
{
    return mg_gateway_handle_mcp(data, req, loopback_bound);
}

static int route_internal(void *data, h2o_req_t *req, int loopback_bound)
{
    return mg_gateway_handle_internal(data, req, loopback_bound);
}

static int route_legacy_sse(void *data, h2o_req_t *req, int loopback_bound)
{
    return mg_gateway_handle_sse(data, req, loopback_bound);
}

static json_t *route_readyz(void *data, int *ready)
{
    return mg_gateway_readyz(data, ready);
}

static int route_well_known(void *data, h2o_req_t *req)
{
    return mg_auth_handle_well_known(mg_gateway_auth(data), req);
}

static int route_admin(void *data, h2o_req_t *req)
{
    return mg_gateway_handle_admin(data, req);
}

mg_server_opts_t mg_gateway_server_opts(mg_gateway_t *gw, const mg_config_t *cfg)
{
    mg_server_opts_t o = {cfg->limits.max_body_bytes,
                          cfg->limits.http_idle_timeout_ms,
                          gw,
                          route_mcp,
                          route_internal,
                          route_legacy_sse,
                          route_readyz,
                          route_well_known,
                          route_admin,
                          MG_SERVER_ROUTES_ALL};
    return o;
}
