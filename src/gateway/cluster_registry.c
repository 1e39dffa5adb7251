/*
 * cluster_registry.c - the replica registry: "r:<replica>" = this replica's advertise address,
 * expiring REGISTRY_TTL_MS after the last renewal, renewed every REGISTER_MS by a heartbeat that
 * also drives the periodic work (the liveness of resumed streams' owners, the cache sweep).
 * A replica is alive while its entry exists; forwarding and MRTR proxying read it to find where
 * to send (cluster_forward.c). /readyz waits until this replica is registered (cluster.c status).
 * Read next: cluster_int.h, cluster_follow.c (check_owners), cluster_records.c (sweep).
 */
#include "cluster_int.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <stdio.h>

#define REGISTRY_TTL_MS 3000 /* "r:<replica>" expires this long after the last renewal */
#define BEAT_MS         250  /* the tick; the registry is renewed every REGISTER_MS */
#define REGISTER_MS     1000

static void registered_cb(int err, void *data)
{
    mg_cluster_t *cl = data;
    if (err == 0 && cl->draining != 2)
        cl->registered = 1;
}

static void beat_cb(uv_timer_t *t)
{
    mg_cluster_t *cl = t->data;
    mg_gateway_t *gw = cl->gw;
    uint64_t now = mg_gateway_now_ms();
    if (!gw->store->ops->ready(gw->store)) {
        cl->registered = 0; /* register again as soon as the store is back */
        return;
    }
    if (!cl->registered || now - cl->last_register >= REGISTER_MS) {
        char rk[64];
        snprintf(rk, sizeof rk, "r:%s", cl->replica);
        cl->last_register = now;
        gw->bus->ops->set(gw->bus, rk, cl->advertise, REGISTRY_TTL_MS, registered_cb, cl);
        mg__cluster_check_owners(cl);
    }
    uint64_t ttl = gw->cfg->limits.session_ttl_ms;
    uint64_t every = ttl / 4 < 1000 ? 1000 : ttl / 4 > 15000 ? 15000 : ttl / 4;
    if (now - cl->last_sweep >= every) {
        cl->last_sweep = now;
        mg__cluster_sweep(cl);
    }
}

void mg__cluster_start(mg_gateway_t *gw)
{
    mg_cluster_t *cl = CL(gw);
    uv_timer_start(cl->beat, beat_cb, 0, BEAT_MS);
}

void mg__cluster_leave(mg_gateway_t *gw)
{
    mg_cluster_t *cl = CL(gw);
    if (cl->draining == 2)
        return;
    cl->draining = 2;
    cl->registered = 0;
    uv_timer_stop(cl->beat);
    char rk[64];
    snprintf(rk, sizeof rk, "r:%s", cl->replica);
    const char *keys[] = {rk};
    gw->bus->ops->del(gw->bus, keys, 1, NULL, NULL); /* others see at once that we are gone */
}
