/*
 * cluster_bus.c - messages between replicas over the bus (session/bus.h): broadcasts on "all"
 * (a DELETE, a client's cancellation, list_changed of shared children) and messages for one
 * replica on its inbox "i:<replica>" (the client's answer to a server->client request that
 * replica issued, roots/list_changed for the owner of the session's children, a task's cancellation
 * or input for the replica running it). A task's record that changed is broadcast ("ts", its id
 * only) so that subscriptions/listen streams on any replica hear it (tasks_listen.c). A message another
 * replica sent is applied with `replaying` set so that it is not sent on again. The formats:
 * cluster_int.h. Read next: cluster_int.h, dispatch.c (mg__dispatch_client_message).
 */
#include "../jsonrpc/jsonrpc.h"
#include "cluster_int.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- broadcasts ---- */

void mg__cluster_broadcast(mg_cluster_t *cl, json_t *m /* stolen */)
{
    json_object_set_new(m, "from", json_string(cl->replica));
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (text == NULL)
        return;
    cl->gw->bus->ops->publish(cl->gw->bus, "all", text, strlen(text));
    free(text);
}

/* ---- list_changed from any replica's shared children ---- */

/* On the bus: {"t":"lc","bits":union,"changes":[{"server":NAME,"tenant":T?,"bits":B}...]}. Servers
 * go by name (slots differ between replicas); "bits" alone (all, or a change no replica can place)
 * reaches everyone. */
void mg__cluster_list_changed(mg_gateway_t *gw, const mg_lc_change_t *ch, size_t n, unsigned all)
{
    json_t *changes = json_array();
    unsigned bits = all;
    for (size_t i = 0; i < n; i++) {
        bits |= ch[i].bits;
        json_array_append_new(changes,
                              json_pack("{s:s,s:s?,s:i}", "server", gw->servers[ch[i].slot].cfg->name,
                                        "tenant", ch[i].tenant, "bits", (int)ch[i].bits));
    }
    mg__cluster_broadcast(CL(gw), json_pack("{s:s,s:i,s:i,s:o}", "t", "lc", "bits", (int)bits, "all",
                                            (int)all, "changes", changes));
}

/* list_changed to the streams this replica feeds: of session only (the kinds in r->all), or (only
 * NULL) of every session and 2026-07-28 listener the changes in r reach. */
static void local_list_changed(mg_gateway_t *gw, mg_session_t *only, const mg_lc_reach_t *r)
{
    if (only == NULL)
        mg__modern_listeners_changed(gw, mg__lc_reach_kinds, (void *)r);
    /* each kind's notification, and its SSE event for the streams followed here, made once */
    json_t *note[MG_LIST_TEMPLATES];
    char *buf[MG_LIST_TEMPLATES] = {0};
    size_t blen[MG_LIST_TEMPLATES] = {0};
    for (int k = 0; k < MG_LIST_TEMPLATES; k++) {
        note[k] = mg_rpc_notification(mg_list_changed_method((mg_list_kind_t)k), NULL);
        size_t len, cap = 0;
        char *text = mg_rpc_dump(note[k], &len);
        if (text == NULL || mg_sse_format(&buf[k], &blen[k], &cap, NULL, text, len, 0) != 0) {
            free(buf[k]);
            buf[k] = NULL;
        }
        free(text);
    }
    size_t pos = 0;
    const char *key;
    void *val = only;
    while (only != NULL || mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        unsigned bits = only != NULL ? r->all : mg__lc_reach_kinds((void *)r, s->principal);
        for (int k = 0; k < MG_LIST_TEMPLATES; k++) {
            if (!(bits & (1u << k)))
                continue;
            if (!mg__session_shared(s)) { /* a legacy HTTP+SSE session: its own stream */
                mg__session_notify(s, note[k]);
            } else {
                mg_follow_t *f = mg__cluster_get_follower(s);
                if (f != NULL && f->synced && buf[k] != NULL)
                    mg__cluster_follow_write(f, buf[k], blen[k]);
            }
        }
        if (only != NULL)
            break;
    }
    for (int k = 0; k < MG_LIST_TEMPLATES; k++) {
        json_decref(note[k]);
        free(buf[k]);
    }
}

/* A "lc" message: each change placed on this replica's slot of the server it names; one that
 * names no server this replica has (configs differ during a rollout), or a message without
 * changes, reaches everyone with its kinds. */
static void on_list_changed(mg_cluster_t *cl, const json_t *m)
{
    mg_gateway_t *gw = cl->gw;
    const json_t *changes = json_object_get(m, "changes");
    mg_lc_reach_t r = {gw, NULL, 0, (unsigned)json_integer_value(json_object_get(m, "all"))};
    if (!json_is_array(changes)) {
        r.all = (unsigned)json_integer_value(json_object_get(m, "bits"));
        local_list_changed(gw, NULL, &r);
        return;
    }
    size_t n = json_array_size(changes);
    mg_lc_change_t *ch = calloc(n ? n : 1, sizeof *ch);
    if (ch == NULL) {
        r.all = (unsigned)json_integer_value(json_object_get(m, "bits"));
        local_list_changed(gw, NULL, &r);
        return;
    }
    size_t i;
    const json_t *c;
    json_array_foreach(changes, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "server"));
        unsigned bits = (unsigned)json_integer_value(json_object_get(c, "bits"));
        size_t slot = gw->nservers;
        for (size_t k = 0; name != NULL && k < gw->nservers && slot == gw->nservers; k++)
            if (!gw->servers[k].removed && strcmp(gw->servers[k].cfg->name, name) == 0)
                slot = k;
        if (slot == gw->nservers) {
            r.all |= bits;
            continue;
        }
        ch[r.n].slot = slot;
        ch[r.n].tenant = (char *)json_string_value(json_object_get(c, "tenant"));
        ch[r.n].bits = bits;
        r.n++;
    }
    r.ch = ch;
    local_list_changed(gw, NULL, &r);
    free(ch);
}

void mg__cluster_list_changed_local(mg_gateway_t *gw, mg_session_t *s, unsigned bits)
{
    mg_lc_reach_t r = {gw, NULL, 0, bits};
    local_list_changed(gw, s, &r);
}

/* ---- messages for other replicas ---- */

mg_session_t *mg__cluster_copy_of(mg_gateway_t *gw, const char *scope, const char *id)
{
    mg_session_t *s = id ? mg_map_get(&gw->sessions, id) : NULL;
    return s != NULL && !s->closing && mg__session_shared(s) && scope != NULL && strcmp(s->scope, scope) == 0
               ? s
               : NULL;
}

static void send_to(mg_cluster_t *cl, const char *replica, json_t *m /* stolen */)
{
    char ch[48];
    snprintf(ch, sizeof ch, "i:%s", replica);
    json_object_set_new(m, "from", json_string(cl->replica));
    char *text = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    if (text != NULL)
        cl->gw->bus->ops->publish(cl->gw->bus, ch, text, strlen(text));
    free(text);
}

int mg__cluster_route_response(mg_session_t *s, const json_t *msg)
{
    mg_cluster_t *cl = CL(s->gw);
    const char *id = json_string_value(json_object_get(msg, "id"));
    if (cl == NULL || cl->replaying || id == NULL || strncmp(id, "mg-", 3) != 0)
        return 0;
    const char *r = id + 3, *dash = strchr(r, '-');
    if (dash == NULL || dash == r || (size_t)(dash - r) >= 16)
        return 0;
    char replica[16];
    snprintf(replica, sizeof replica, "%.*s", (int)(dash - r), r);
    if (strcmp(replica, cl->replica) == 0)
        return 0;
    send_to(cl, replica,
            json_pack("{s:s,s:s,s:s,s:O}", "t", "msg", "scope", s->scope, "session", s->id, "msg", msg));
    return 1;
}

void mg__cluster_client_notification(mg_session_t *s, const json_t *msg)
{
    mg_cluster_t *cl = CL(s->gw);
    if (cl == NULL || cl->replaying)
        return;
    const char *m = mg_rpc_method(msg);
    if (m != NULL && strcmp(m, "notifications/cancelled") == 0) {
        mg__cluster_broadcast(cl, json_pack("{s:s,s:s,s:s,s:O}", "t", "cancel", "scope", s->scope, "session",
                                            s->id, "msg", msg));
    } else if (m != NULL && strcmp(m, "notifications/roots/list_changed") == 0 && s->owner[0] &&
               s->owner[0] != '!' && strcmp(s->owner, cl->replica) != 0) {
        send_to(cl, s->owner,
                json_pack("{s:s,s:s,s:s,s:O}", "t", "msg", "scope", s->scope, "session", s->id, "msg", msg));
    }
}

void mg__cluster_task_send(mg_gateway_t *gw, const char *replica, json_t *m)
{
    mg_cluster_t *cl = CL(gw);
    if (cl == NULL || replica == NULL || replica[0] == '\0') {
        json_decref(m);
        return;
    }
    json_object_set_new(m, "t", json_string("task"));
    send_to(cl, replica, m);
}

void mg__cluster_task_broadcast(mg_gateway_t *gw, json_t *m)
{
    mg_cluster_t *cl = CL(gw);
    if (cl == NULL) {
        json_decref(m);
        return;
    }
    mg__cluster_broadcast(cl, m);
}

static void handle_bus_message(mg_cluster_t *cl, const char *payload, size_t len)
{
    mg_gateway_t *gw = cl->gw;
    json_t *m = json_loadb(payload, len, 0, NULL);
    const char *t = json_string_value(json_object_get(m, "t"));
    const char *from = json_string_value(json_object_get(m, "from"));
    if (t == NULL) {
        json_decref(m);
        return;
    }
    if (strcmp(t, "lc") == 0) {
        on_list_changed(cl, m);
        json_decref(m);
        return;
    }
    if (from != NULL && strcmp(from, cl->replica) == 0) {
        json_decref(m);
        return; /* our own broadcast: already handled here */
    }
    if (strcmp(t, "ts") == 0) { /* a task's record changed: its listeners here read it */
        mg__task_listen_remote(gw, json_string_value(json_object_get(m, "id")));
        json_decref(m);
        return;
    }
    if (strcmp(t, "task") == 0) { /* for a task running here (tasks.c checks it) */
        mg__task_remote(gw, m);
        json_decref(m);
        return;
    }
    mg_session_t *s = mg__cluster_copy_of(gw, json_string_value(json_object_get(m, "scope")),
                                          json_string_value(json_object_get(m, "session")));
    if (s != NULL) {
        if (strcmp(t, "del") == 0) {
            mg__session_close(s, "deleted through another replica");
        } else if (strcmp(t, "cancel") == 0 || strcmp(t, "msg") == 0) {
            const char *why = NULL;
            cl->replaying = 1;
            mg__dispatch_client_message(gw, s, json_object_get(m, "msg"), &why);
            cl->replaying = 0;
        }
    }
    json_decref(m);
}

void mg__cluster_bus_cb(const char *channel, const char *payload, size_t len, void *data)
{
    if (payload != NULL)
        handle_bus_message(data, payload, len);
}
