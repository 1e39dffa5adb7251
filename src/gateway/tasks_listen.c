/*
 * tasks_listen.c - task status notifications on subscriptions/listen (2026-07-28, the tasks
 * extension): a client names task ids in notifications.taskIds and hears notifications/tasks
 * (a DetailedTask, as tasks/get gives it) each time a task's stored state changes.
 *
 *   | when                                  | what happens                                     |
 *   |---------------------------------------|--------------------------------------------------|
 *   | the listen request (era_modern.c)     | each id is read from the task store; ids of the  |
 *   |                                       | listener's principal (of the first WATCH_MAX) are |
 *   |                                       | acknowledged (taskIds), then told their state     |
 *   |                                       | at once; others' and unknown ids are left out     |
 *   | a task's record is stored (tasks.c,   | listeners here that watch it are told; with a     |
 *   | the write's callback; a cancel's)     |                                                  |
 *   |                                       | cluster, "ts" {id} goes to every replica, whose   |
 *   |                                       | watchers read the record and tell it              |
 *   | every CHECK_MS (cluster only)         | unfinished watched tasks are read again: an owner |
 *   |                                       | that died reads as failed, a lost "ts" is caught  |
 *
 * A listener is told one state once (mg__task_sig: the status, and the keys of input_required);
 * after a terminal one it hears nothing more of that task. Progress and log notifications are
 * never sent on the stream (the extension forbids it); they stay in the record's _meta.
 * Ownership: the listener (era_modern.c) owns l->tasks; a read in flight counts in l->reads and
 * the last one frees a listener whose stream closed meanwhile (l->gone).
 * Read next: tasks.c (the records), era_modern.c (the listen stream), docs/tasks.md.
 */
#include "../common/err.h"
#include "../common/str.h"
#include "../jsonrpc/jsonrpc.h"
#include "gateway_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WATCH_MAX 64   /* task ids one listen request may watch */
#define CHECK_MS  3000 /* cluster: watched unfinished tasks are read again this often */

typedef struct read_job {
    mg_listener_t *l;
    char id[33];
    int first; /* a read of the listen request: the ack waits for it */
} read_job_t;

static const char *str(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v != NULL ? v : "";
}

static int well_formed(const char *id)
{
    return strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32;
}

/* Tells l the state of rec (borrowed) when it watches it and has not been told this state. */
static void tell(mg_listener_t *l, const json_t *rec)
{
    const char *id = str(rec, "id");
    json_t *told = json_object_get(l->tasks, id);
    if (!l->acked || l->gone || told == NULL || strcmp(str(rec, "principal"), l->principal) != 0)
        return;
    char sig[80];
    mg__task_sig(rec, sig, sizeof sig);
    if (strcmp(json_string_value(told), sig) == 0)
        return;
    json_object_set_new(l->tasks, id, json_string(sig));
    json_t *n = mg_rpc_notification("notifications/tasks", mg__task_detailed(rec));
    mg__modern_listener_send(l, n);
    json_decref(n);
}

static void ack(mg_listener_t *l)
{
    json_t *ids = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(l->tasks, k, v) json_array_append_new(ids, json_string(k));
    json_object_set_new(l->filter, "taskIds", ids);
    mg__modern_listener_ack(l);
}

static void read_cb(void *data, int err, json_t *rec)
{
    read_job_t *j = data;
    mg_listener_t *l = j->l;
    l->reads--;
    if (l->gone) {
        if (l->reads == 0)
            mg__modern_listener_free(l);
        free(j);
        return;
    }
    int owned = err == 0 && rec != NULL && strcmp(str(rec, "principal"), l->principal) == 0;
    if (j->first) {
        /* Only the principal's own tasks are watched; another's id is treated like an unknown
         * one (left out of the ack), so a listener learns nothing about it. A store outage
         * leaves the id out too: the client polls. */
        if (owned)
            json_object_set_new(l->tasks, j->id, json_string(""));
        if (l->reads == 0) {
            ack(l);
            const char *k;
            json_t *v;
            void *tmp;
            json_object_foreach_safe(l->tasks, tmp, k, v)
            {
                /* the current state right after the ack: a task that ended before the client
                 * listened is heard too (the first reads answered; a second read is cheap and
                 * keeps one path) */
                read_job_t *again = calloc(1, sizeof *again);
                if (again == NULL)
                    break;
                again->l = l;
                mg_strlcpy(again->id, sizeof again->id, k);
                l->reads++;
                if (mg__task_read(l->gw, k, read_cb, again) != 0) {
                    l->reads--;
                    free(again);
                }
            }
            if (json_object_size(l->tasks) > 0 && l->gw->cluster != NULL) {
                l->check_at = mg_gateway_now_ms() + CHECK_MS;
                mg__tasks_timer_need(l->gw);
            }
        }
    } else if (err == 0 && rec == NULL) {
        json_object_del(l->tasks, j->id); /* expired: nothing more will be told */
    } else if (owned) {
        tell(l, rec);
    }
    free(j);
}

static int read_for(mg_listener_t *l, const char *id, int first)
{
    read_job_t *j = calloc(1, sizeof *j);
    if (j == NULL)
        return -1;
    j->l = l;
    j->first = first;
    mg_strlcpy(j->id, sizeof j->id, id);
    l->reads++;
    if (mg__task_read(l->gw, id, read_cb, j) != 0) {
        l->reads--;
        free(j);
        return -1;
    }
    return 0;
}

void mg__task_listen(mg_listener_t *l, const json_t *ids)
{
    l->tasks = json_object();
    read_job_t *last = calloc(1, sizeof *last);
    if (!l->gw->cfg->tasks.enabled || last == NULL) {
        free(last);
        ack(l); /* tasks are off (or no memory): none agreed to */
        return;
    }
    /* A placeholder read, counted first and ended last: the memory store answers inside the
     * call, and the ack must wait for every id. */
    last->l = l;
    last->first = 1;
    l->reads++;
    for (size_t i = 0; i < json_array_size(ids) && i < WATCH_MAX; i++) { /* the first 64 only */
        json_t *v = json_array_get(ids, i);
        const char *id = json_string_value(v);
        int dup = 0;
        for (size_t k = 0; k < i; k++)
            dup |= json_equal(json_array_get(ids, k), v);
        if (id != NULL && well_formed(id) && !dup)
            read_for(l, id, 1);
    }
    read_cb(last, MG_EIO, NULL); /* ends like the read of an unknown id */
}

static int watching(const mg_listener_t *l, const char *id)
{
    const char *told = json_string_value(json_object_get(l->tasks, id));
    if (told == NULL || !l->acked || l->gone)
        return 0;
    char st[32];
    mg_strlcpy(st, sizeof st, told);
    char *colon = strchr(st, ':');
    if (colon != NULL)
        *colon = '\0';
    return !mg_task_status_terminal(st);
}

void mg__task_listen_changed(mg_gateway_t *gw, const json_t *rec, int announce)
{
    for (mg_listener_t *l = gw->listeners; l != NULL; l = l->next)
        tell(l, rec);
    if (announce && gw->cluster != NULL)
        mg__cluster_task_broadcast(gw, json_pack("{s:s,s:s}", "t", "ts", "id", str(rec, "id")));
}

void mg__task_listen_remote(mg_gateway_t *gw, const char *id)
{
    if (id == NULL)
        return;
    for (mg_listener_t *l = gw->listeners; l != NULL; l = l->next)
        if (watching(l, id))
            read_for(l, id, 0);
}

int mg__task_listen_tick(mg_gateway_t *gw, uint64_t now)
{
    if (gw->cluster == NULL)
        return 0;
    int busy = 0;
    for (mg_listener_t *l = gw->listeners; l != NULL; l = l->next) {
        int any = 0;
        const char *k;
        json_t *v;
        json_object_foreach(l->tasks, k, v) any |= watching(l, k);
        if (!any)
            continue;
        busy = 1;
        if (now < l->check_at)
            continue;
        l->check_at = now + CHECK_MS;
        void *tmp;
        json_object_foreach_safe(l->tasks, tmp, k, v)
        {
            if (watching(l, k))
                read_for(l, k, 0);
        }
    }
    return busy;
}
