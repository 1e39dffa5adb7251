/*
 * cluster.c - the lifetime of the shared-session cluster (gateway.sessions.store = redis://... or
 * postgres://..., session/shared.h): mg__cluster_new() names this replica, finds its advertise
 * address, connects to the store and subscribes to its inbox; drain (SIGTERM: followers and POST
 * streams told to reconnect), the store's status for /readyz, /metrics, free. What each cluster_*.c
 * file owns, the keys and the messages between replicas: cluster_int.h. Read next: cluster_int.h,
 * cluster_records.c.
 */
#include "../common/err.h"
#include "../common/log.h"
#include "../obs/metrics.h"
#include "../session/shared.h"
#include "cluster_int.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *mg__cluster_replica(mg_gateway_t *gw)
{
    return gw->cluster ? gw->cluster->replica : "";
}

/* ---- /metrics ---- */

static void collect_cb(mg_metrics_out_t *out, void *data)
{
    mg_cluster_t *cl = data;
    mg_gateway_t *gw = cl->gw;
    json_t *st = gw->store->ops->status(gw->store);
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"mcpgate_session_store_up", "gauge",
         "1 when the shared session store (Redis or PostgreSQL) is reachable and this replica registered"},
        {"mcpgate_session_store_reconnects_total", "counter",
         "Connections to the session store that were lost"},
        {"mcpgate_session_loads_total", "counter",
         "Session records loaded and verified (one per session request)"},
        {"mcpgate_session_load_failures_total", "counter",
         "Session loads that failed (store unavailable): answered 503"},
        {"mcpgate_forwarded_requests_total", "counter",
         "Requests forwarded to the replica running the session's children"},
        {"mcpgate_upstream_state_lost_total", "counter",
         "Explicit \"upstream state lost\" errors (a replica with children died)"},
        {"mcpgate_session_copies", "gauge", "Sessions materialized in this replica's memory"},
    };
    double v[] = {gw->store->ops->ready(gw->store) && cl->registered,
                  (double)json_integer_value(json_object_get(st, "reconnects")),
                  (double)cl->loads,
                  (double)cl->load_failures,
                  (double)cl->forwarded,
                  (double)cl->lost,
                  (double)gw->sessions.count};
    json_decref(st);
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        mg_metrics_family(out, fam[i].name, fam[i].type, fam[i].help);
        mg_metrics_sample(out, fam[i].name, NULL, v[i]);
    }
}

/* ---- lifetime ---- */

static int default_advertise(const mg_config_t *cfg, const char *listen, char *out, size_t n)
{
    char host[256];
    unsigned port = 0;
    if (mg_config_listen_parse(listen, host, sizeof host, &port) != 0)
        return -1;
    if (strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0 && host[0] != '\0') {
        snprintf(out, n, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
        return 0;
    }
    /* a wildcard listen: the first non-loopback IPv4 address of this host (the pod IP) */
    struct ifaddrs *ifs = NULL, *i;
    if (getifaddrs(&ifs) != 0)
        return -1;
    int found = -1;
    for (i = ifs; i != NULL && found != 0; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET)
            continue;
        char ip[64];
        uv_ip4_name((struct sockaddr_in *)i->ifa_addr, ip, sizeof ip);
        if (strncmp(ip, "127.", 4) == 0)
            continue;
        snprintf(out, n, "%s:%u", ip, port);
        found = 0;
    }
    freeifaddrs(ifs);
    if (found != 0)
        snprintf(out, n, "127.0.0.1:%u", port);
    return 0;
}

int mg__cluster_new(mg_gateway_t *gw, const char *store, const char *listen, char *why, size_t whylen)
{
    const mg_sessions_config_t *sc = &gw->cfg->sessions;
    mg_cluster_t *cl = calloc(1, sizeof(*cl));
    if (cl == NULL)
        return MG_ENOMEM;
    mg_shared_opts_t o = {store,          sc->password,    sc->sentinel_password, sc->key_prefix,
                          sc->timeout_ms, !sc->no_migrate, mg_gateway_now_ms};
    mg_store_t *st = NULL;
    mg_bus_t *bus = NULL;
    if (sc->secret != NULL && mg_http_client_new(gw->loop, &cl->http) != 0) {
        snprintf(why, whylen,
                 "forwarding between replicas (gateway.sessions.secret) needs libcurl, which could not be "
                 "loaded; install it (scripts/install-deps.sh)");
        free(cl);
        return MG_ECONFIG;
    }
    int r = mg_shared_store_new(gw->loop, &o, &st, &bus, why, whylen);
    if (r != 0) {
        mg_http_client_free(cl->http);
        free(cl);
        return r;
    }
    cl->gw = gw;
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[10];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        abort();
    for (int i = 0; i < 10; i++)
        cl->replica[i] = alphabet[rnd[i] % 36];
    cl->replica[10] = '\0';
    const char *adv = getenv("MCPGATE_ADVERTISE");
    if (adv == NULL || adv[0] == '\0')
        adv = sc->advertise;
    if (adv != NULL)
        snprintf(cl->advertise, sizeof cl->advertise, "%s", adv);
    else if (default_advertise(gw->cfg, listen, cl->advertise, sizeof cl->advertise) != 0)
        snprintf(cl->advertise, sizeof cl->advertise, "%s", listen);
    cl->secret = sc->secret;
    snprintf(cl->inbox, sizeof cl->inbox, "i:%s", cl->replica);
    gw->store = st;
    gw->bus = bus;
    gw->cluster = cl;
    if (bus->ops->subscribe(bus, cl->inbox, mg__cluster_bus_cb, cl, &cl->inbox_sub) != 0 ||
        bus->ops->subscribe(bus, "all", mg__cluster_bus_cb, cl, &cl->all_sub) != 0)
        return MG_ENOMEM;
    cl->beat = malloc(sizeof(*cl->beat));
    if (cl->beat == NULL)
        return MG_ENOMEM;
    mg_metrics_register(collect_cb, cl);
    uv_timer_init(gw->loop, cl->beat);
    cl->beat->data = cl;
    int isolated = 0;
    for (size_t i = 0; i < gw->nservers; i++)
        isolated |= gw->servers[i].cfg->isolation == MG_ISOLATION_SESSION;
    mg_log_json(MG_LOG_INFO, "sessions shared",
                json_pack("{s:s,s:s,s:s,s:b}", "store", st->ops->name, "replica", cl->replica, "advertise",
                          cl->advertise, "forwarding", cl->secret != NULL));
    if (isolated && cl->secret == NULL)
        mg_log_json(MG_LOG_WARN,
                    "gateway.sessions.secret is not set: requests for isolation \"session\" servers whose "
                    "children run on another replica will fail with an explicit error",
                    NULL);
    return 0;
}

/* SIGTERM: the replica stays registered (its calls go on and their events still reach followers
 * elsewhere) until mg__cluster_leave(); forwarded requests are refused meanwhile (503). */
void mg__cluster_drain(mg_gateway_t *gw)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        /* Followers: a retry hint, then the end; the client reconnects, to another replica. */
        while (s->follows != NULL) {
            mg_follow_t *f = s->follows;
            mg__cluster_follow_write(f, "retry: 1000\n\n", 13);
            mg__cluster_follow_close(f, 1);
        }
        /* POST response streams: the calls go on here and keep appending to their logs, so the
         * client resumes them elsewhere with Last-Event-ID. */
        for (mg_stream_t *st = s->streams; st != NULL; st = st->next) {
            if (st->conn != NULL) {
                mg_sse_conn_t *c = st->conn;
                st->conn = NULL;
                mg_sse_conn_write(c, "retry: 500\n\n", 12);
                mg_sse_conn_end(c);
                mg_sse_conn_abandon(c);
            }
        }
    }
}

json_t *mg__cluster_status(mg_gateway_t *gw, int *ready)
{
    mg_cluster_t *cl = CL(gw);
    json_t *st = gw->store->ops->status(gw->store);
    /* ready once this replica is in the registry: before that, others would think it is gone */
    *ready = gw->store->ops->ready(gw->store) && (cl == NULL || cl->registered);
    json_object_set_new(st, "ready", json_boolean(*ready));
    if (cl != NULL) {
        json_object_set_new(st, "registered", json_boolean(cl->registered));
        json_object_set_new(st, "replica", json_string(cl->replica));
        json_object_set_new(st, "advertise", json_string(cl->advertise));
        json_object_set_new(st, "forwarded", json_integer((json_int_t)cl->forwarded));
        json_object_set_new(st, "lostUpstreamState", json_integer((json_int_t)cl->lost));
    }
    return st;
}

void mg__cluster_free(mg_gateway_t *gw)
{
    mg_cluster_t *cl = CL(gw);
    if (cl == NULL)
        return;
    mg__cluster_forward_free(cl);
    mg_http_client_free(cl->http);
    mg_metrics_unregister(collect_cb, cl);
    if (cl->inbox_sub)
        gw->bus->ops->unsubscribe(gw->bus, cl->inbox_sub);
    if (cl->all_sub)
        gw->bus->ops->unsubscribe(gw->bus, cl->all_sub);
    if (cl->beat != NULL)
        uv_close((uv_handle_t *)cl->beat, (uv_close_cb)free);
    gw->bus->ops->free(gw->bus);
    gw->bus = NULL;
    gw->cluster = NULL;
    free(cl);
}
