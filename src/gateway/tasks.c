/*
 * tasks.c - tools/call as a task: the call goes on without the client, which polls for it later,
 * from any connection and (with a shared store) on any replica. docs/tasks.md says which era gets
 * what; session/task_store.h is the record.
 *
 * Who decides (the call phase "task", after verify, for tools/call only):
 *
 *   | client                                | tool taskSupport     | what happens                      |
 *   |---------------------------------------|----------------------|-----------------------------------|
 *   | 2026-07-28 with the extension         | optional             | a task at once (CreateTaskResult) |
 *   | io.modelcontextprotocol/tasks         | required             | runs; input asked within 100 ms   |
 *   |                                       |                      | is MRTR, then a task (promotion)  |
 *   | 2026-07-28 without it                 | required             | -32021, requiredCapabilities      |
 *   | 2025-11-25 with params.task           | optional / required  | a task at once ({task: {...}})    |
 *   | 2025-11-25 without params.task        | required             | runs as a plain call (the gateway |
 *   |                                       |                      | bridges: the upstream still gets  |
 *   |                                       |                      | its task, see dispatch.c)         |
 *   | anyone                                | absent / forbidden   | a plain call                      |
 *
 * A task's call is the same mg_call_t, detached from its exchange (answered with the
 * CreateTaskResult) and moved to the gateway's own session, so neither a dropped connection nor
 * a closed session ends it. Its outcome, input requests (2026-07-28: inputRequests, answered with
 * tasks/update), progress and log notifications go into the record; the replica running it owns
 * it (record "owner"). Writes of one task are serialized (one in flight, the latest state
 * written next). tasks/get, tasks/cancel and tasks/update read the store, so they work on any
 * replica; a cancellation or input for a task running elsewhere goes to its owner's inbox.
 * Ids are 128 random bits; a record of another principal is "unknown" (-32602) like a missing one.
 * Read next: session/task_store.h, dispatch.c (call_finish, up_task_step), docs/tasks.md.
 */
#include "../common/codec.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/str.h"
#include "../jsonrpc/jsonrpc.h"
#include "../obs/metrics.h"
#include "../session/shared.h"
#include "gateway_int.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXT_TASKS      "io.modelcontextprotocol/tasks"
#define META_CAPS      "io.modelcontextprotocol/clientCapabilities"
#define META_RELATED   "io.modelcontextprotocol/related-task"
#define META_NOTES     "io.mcpgate/notifications"
#define PROMOTE_MS     100 /* a required tool's call that asked nothing this long becomes a task */
#define TICK_MS        50
#define WAIT_POLL_MS   250  /* 2025-11-25 tasks/result: how often a waiter reads the record */
#define RETRY_MS       1000 /* a failed record write is tried again this much later */
#define NOTES_MAX      16   /* related notifications kept per task */
#define NOTE_MAX_BYTES 4096 /* a larger one is kept as {method, truncated} */
#define WHY_OWNER_GONE                                                                                       \
    "the gateway replica running this task stopped before it finished; its outcome is lost: call "           \
    "the tool again"

struct mg_task {
    mg_gateway_t *gw;
    char id[33];
    json_t *rec;        /* this replica's copy of the record: the newest state */
    mg_call_t *call;    /* NULL once the call ended */
    int created;        /* the store accepted the record */
    int forward;        /* at creation: the call is still to be forwarded (phase "forward") */
    int writing;        /* an update is in flight */
    int dirty;          /* rec changed meanwhile: write again */
    int ended;          /* the call ended before the record existed: pending is its outcome */
    int settled;        /* the store's record is terminal and rec is it: nothing more to write */
    uint64_t retry_at;  /* a write failed (store unreachable): written again then (loop clock) */
    char session[64];   /* 2025-11-25: the session that created it (status notifications), or "" */
    char told[16];      /* the last status that session was told */
    char announced[80]; /* the stored state listeners were last told of (mg__task_sig) */
    json_t *pending;    /* ... (NULL = cancelled), or the upstream's answer held during creation */
};

typedef struct mg_task_waiter {
    mg_call_t *call;
    char id[33];
    uint64_t next_ms;
    int reading;
    struct mg_task_waiter *next;
} mg_task_waiter_t;

/* ---- time, ids, shapes ---- */

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static json_t *iso(json_int_t ms)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    char buf[40];
    gmtime_r(&sec, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms % 1000));
    return json_string(buf);
}

static const char *str(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v != NULL ? v : "";
}

static const char *principal_key(const mg_call_t *c)
{
    return c->principal != NULL ? c->principal->key : "";
}

/* 1 when the request's capabilities name the extension (2026-07-28). */
static int ext_declared(const mg_call_t *c)
{
    return json_object_get(json_object_get(c->caps, "extensions"), EXT_TASKS) != NULL;
}

/* The Task fields of a record in the request's era: 2026-07-28 (ttlMs, pollIntervalMs) or
 * 2025-11-25 (ttl, pollInterval). NEW reference. */
static json_t *task_fields(const json_t *rec, int modern)
{
    json_t *t = json_object();
    json_object_set_new(t, "taskId", json_string(str(rec, "id")));
    json_object_set_new(t, "status", json_string(str(rec, "status")));
    if (str(rec, "statusMessage")[0] != '\0')
        json_object_set_new(t, "statusMessage", json_string(str(rec, "statusMessage")));
    json_object_set_new(t, "createdAt", iso(json_integer_value(json_object_get(rec, "createdAt"))));
    json_object_set_new(t, "lastUpdatedAt", iso(json_integer_value(json_object_get(rec, "updatedAt"))));
    json_object_set_new(t, modern ? "ttlMs" : "ttl",
                        json_integer(json_integer_value(json_object_get(rec, "ttlMs"))));
    json_object_set_new(t, modern ? "pollIntervalMs" : "pollInterval",
                        json_integer(json_integer_value(json_object_get(rec, "pollIntervalMs"))));
    return t;
}

/* tasks/get of 2026-07-28 (DetailedTask): the fields plus result, error or inputRequests. */
static json_t *detailed(const json_t *rec)
{
    json_t *t = task_fields(rec, 1);
    const char *st = str(rec, "status");
    if (strcmp(st, "completed") == 0 && json_is_object(json_object_get(rec, "result")))
        json_object_set(t, "result", json_object_get(rec, "result"));
    else if (strcmp(st, "failed") == 0 && json_is_object(json_object_get(rec, "error")))
        json_object_set(t, "error", json_object_get(rec, "error"));
    else if (strcmp(st, "failed") == 0)
        json_object_set_new(
            t, "error",
            json_pack("{s:i,s:s}", "code", mg_err_jsonrpc_code(MG_EINTERNAL), "message", "the task failed"));
    else if (strcmp(st, "input_required") == 0)
        json_object_set(t, "inputRequests",
                        json_object_get(rec, "inputRequests") ? json_object_get(rec, "inputRequests")
                                                              : json_object());
    json_t *notes = json_object_get(rec, "notes");
    if (json_array_size(notes) > 0)
        json_object_set_new(t, "_meta", json_pack("{s:O}", META_NOTES, notes));
    return t;
}

json_t *mg__task_detailed(const json_t *rec)
{
    return detailed(rec);
}

int mg__task_read(mg_gateway_t *gw, const char *id, mg_task_store_cb cb, void *data)
{
    return gw->task_store->ops->get(gw->task_store, id, WHY_OWNER_GONE, cb, data);
}

void mg__task_sig(const json_t *rec, char *out, size_t n)
{
    const char *st = str(rec, "status");
    size_t len = (size_t)snprintf(out, n, "%s", st);
    if (strcmp(st, "input_required") != 0)
        return;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(rec, "inputRequests"), k, v)
    {
        if (len >= n)
            break;
        len += (size_t)snprintf(out + len, n - len, ":%s", k);
    }
}

/* ---- the owner's record: writes ---- */

static void task_free(mg_task_t *t)
{
    mg_map_del(&t->gw->tasks, t->id);
    json_decref(t->rec);
    json_decref(t->pending);
    free(t);
}

/* Frees t once nothing refers to it: no call, no write in flight, due or to retry. */
static void task_maybe_free(mg_task_t *t)
{
    if (t->call == NULL && !t->writing && !t->dirty && t->created && t->retry_at == 0)
        task_free(t);
}

static void timer_need(mg_gateway_t *gw);

static void task_write(mg_task_t *t);

static void written_cb(void *data, int err, json_t *stored)
{
    mg_task_t *t = data;
    t->writing = 0;
    if (stored != NULL && (err == 0 || err == MG_EBUSY)) {
        /* listeners (2026-07-28) hear what is stored, here and on every replica */
        char sig[sizeof t->announced];
        mg__task_sig(stored, sig, sizeof sig);
        if (strcmp(sig, t->announced) != 0) {
            mg_strlcpy(t->announced, sizeof t->announced, sig);
            mg__task_listen_changed(t->gw, stored, 1);
        }
    }
    if (err == MG_EBUSY && stored != NULL) {
        /* Terminal in the store (cancelled on another replica, or failed as its owner was thought
         * gone): that stays; the call here has nothing more to do. */
        json_decref(t->rec);
        t->rec = mg_json_deep_copy(stored);
        t->settled = 1;
        if (t->call != NULL) {
            t->writing = 1; /* holds t while its call ends (task_outcome writes nothing now) */
            mg__dispatch_cancel(t->call, "the task was ended elsewhere");
            t->writing = 0;
        }
        t->dirty = 0;
    } else if (err == 0 && stored == NULL && t->call != NULL) {
        /* The record expired (its TTL) while the call ran: nobody can read the outcome any more. */
        t->settled = 1;
        t->writing = 1;
        mg__dispatch_cancel(t->call, "the task expired (gateway.tasks.ttlMs) before its call finished");
        t->writing = 0;
        t->dirty = 0;
    } else if (err != 0) {
        /* Kept and written again every second until it is stored or the task's TTL passed: an
         * outcome is never lost to a short store outage, nor left "working" in the store. */
        uint64_t end = (uint64_t)json_integer_value(json_object_get(t->rec, "createdAt")) +
                       (uint64_t)json_integer_value(json_object_get(t->rec, "ttlMs"));
        if (wall_ms() < end) {
            if (t->retry_at == 0)
                mg_log_json(MG_LOG_WARN, "task record not written; retrying every second",
                            json_pack("{s:s,s:s}", "task", t->id, "error", mg_strerror(err)));
            t->retry_at = mg_gateway_now_ms() + RETRY_MS;
            t->dirty = 0;
            timer_need(t->gw);
            return;
        }
    }
    if (t->dirty && !(err != 0 && t->call == NULL)) {
        t->dirty = 0;
        task_write(t);
        return;
    }
    t->dirty = 0;
    task_maybe_free(t);
}

/* 2025-11-25: notifications/tasks/status to the creating session's GET stream when the status
 * changed (the Task, as tasks/get gives it; optional in the spec, clients still poll). */
static void tell_status(mg_task_t *t)
{
    const char *st = str(t->rec, "status");
    if (t->session[0] == '\0' || strcmp(st, t->told) == 0)
        return;
    mg_strlcpy(t->told, sizeof t->told, st);
    mg_session_t *s = mg__session_find(t->gw, t->session);
    if (s == NULL)
        return; /* gone, or held by another replica only: polling still works */
    json_t *n = mg_rpc_notification("notifications/tasks/status", task_fields(t->rec, 0));
    mg__session_notify(s, n);
    json_decref(n);
}

static void task_write(mg_task_t *t)
{
    t->retry_at = 0;
    tell_status(t);
    if (t->writing) {
        t->dirty = 1;
        return;
    }
    json_object_set_new(t->rec, "updatedAt", json_integer((json_int_t)wall_ms()));
    t->writing = 1;
    mg_task_store_t *st = t->gw->task_store;
    if (st->ops->update(st, t->rec, written_cb, t) != 0)
        written_cb(t, MG_EIO, NULL);
}

static void count_end(mg_task_t *t)
{
    const char *st = str(t->rec, "status");
    t->gw->tasks_ended[strcmp(st, "completed") == 0 ? 0 : strcmp(st, "failed") == 0 ? 1 : 2]++;
}

/* The call's outcome: resp is its JSON-RPC response (borrowed), NULL when it was cancelled. */
static void task_outcome(mg_task_t *t, const json_t *resp)
{
    json_t *rec = t->rec;
    if (mg_task_status_terminal(str(rec, "status"))) {
        count_end(t);
        if (!t->settled)
            task_write(t); /* cancelled here: make sure it is stored */
        return;
    }
    json_object_del(rec, "inputRequests");
    json_t *result = json_object_get(resp, "result");
    json_t *error = json_object_get(resp, "error");
    if (resp == NULL) {
        json_object_set_new(rec, "status", json_string("cancelled"));
        json_object_set_new(rec, "statusMessage", json_string("the task was cancelled"));
    } else if (json_is_object(result)) {
        char *text = json_dumps(result, JSON_COMPACT);
        size_t n = text != NULL ? strlen(text) : 0;
        free(text);
        size_t max = t->gw->cfg->tasks.max_result_bytes;
        if (n > max) {
            char m[300];
            snprintf(m, sizeof m,
                     "the tool's result is %zu bytes, over the gateway's limit for task results (%zu bytes, "
                     "gateway.tasks.maxResultBytes); call it without a task, or ask the operator to raise "
                     "the limit",
                     n, max);
            json_object_set_new(rec, "status", json_string("failed"));
            json_object_set_new(rec, "statusMessage", json_string(m));
            json_object_set_new(rec, "error",
                                json_pack("{s:i,s:s,s:{s:I,s:I}}", "code", mg_err_jsonrpc_code(MG_ETOOBIG),
                                          "message", m, "data", "resultBytes", (json_int_t)n,
                                          "maxResultBytes", (json_int_t)max));
        } else {
            json_t *r = mg_json_copy(result);
            json_t *meta = json_object_get(r, "_meta");
            if (json_is_object(meta)) { /* the id is at the top of tasks/get; no related-task here */
                json_t *m2 = mg_json_copy(meta);
                json_object_del(m2, META_RELATED);
                json_object_set_new(r, "_meta", m2);
                if (json_object_size(m2) == 0)
                    json_object_del(r, "_meta");
            }
            json_object_del(r, "resultType");
            json_object_set_new(rec, "status", json_string("completed"));
            json_object_del(rec, "statusMessage");
            json_object_set_new(rec, "result", r);
        }
    } else {
        json_t *e = json_is_object(error) ? mg_json_copy(error)
                                          : json_pack("{s:i,s:s}", "code", mg_err_jsonrpc_code(MG_EINTERNAL),
                                                      "message", "the call ended without an outcome");
        json_object_set_new(rec, "status", json_string("failed"));
        json_object_set_new(rec, "statusMessage", json_string(str(e, "message")));
        json_object_set_new(rec, "error", e);
    }
    count_end(t);
    task_write(t);
}

/* ---- creation ---- */

static void answer_created(mg_call_t *c, const mg_task_t *t)
{
    json_t *result;
    if (c->modern) {
        result = task_fields(t->rec, 1);
        json_object_set_new(result, "resultType", json_string("task"));
    } else {
        result = json_pack("{s:o}", "task", task_fields(t->rec, 0));
    }
    json_t *resp = mg_rpc_result(c->client_id, result);
    mg__dispatch_detach(c, resp);
    json_decref(resp);
}

static void created_cb(void *data, int err, json_t *rec)
{
    mg_task_t *t = data;
    mg_call_t *c = t->call;
    mg_gateway_t *gw = t->gw;
    if (err != 0) {
        int forward = t->forward;
        json_t *pending = json_incref(t->pending);
        t->created = 1;
        t->call = NULL;
        task_free(t);
        if (c == NULL) {
            json_decref(pending);
            return;
        }
        c->task = NULL;
        c->task_want = 0;
        if (err == MG_EBUSY) {
            gw->tasks_refused++;
            unsigned limit = gw->cfg->tasks.max_per_principal;
            if (c->x != NULL && !c->x->batch) {
                c->x->status = mg_err_http_status(MG_ERATELIMIT);
                c->x->retry_after = (int)(gw->cfg->tasks.poll_interval_ms / 1000) + 1;
            }
            char m[300];
            snprintf(
                m, sizeof m,
                "too many unfinished tasks: this caller has %u running (gateway.tasks.maxPerPrincipal); wait "
                "for one to finish or cancel one (tasks/cancel), then call again",
                limit);
            if (forward) {
                mg__dispatch_fail(c, MG_ERATELIMIT, m,
                                  json_pack("{s:I}", "maxPerPrincipal", (json_int_t)limit));
            } else {
                json_t *r = mg_rpc_error(c->client_id, mg_err_jsonrpc_code(MG_ERATELIMIT), m,
                                         json_pack("{s:I}", "maxPerPrincipal", (json_int_t)limit));
                mg__dispatch_detach(c, r);
                json_decref(r);
                mg__dispatch_cancel(c, "too many unfinished tasks");
            }
        } else if (forward) {
            mg__dispatch_fail(c, MG_ESTOREDOWN, "the task store is unavailable; call again shortly", NULL);
        } else if (pending != NULL) {
            mg__dispatch_finish(c, pending); /* no task: the call simply ends as a plain one */
        }
        json_decref(pending);
        return;
    }
    t->created = 1;
    gw->tasks_created++;
    if (t->ended) { /* the call ended during creation (shutdown, session gone) */
        json_t *p = t->pending;
        t->pending = NULL;
        task_outcome(t, p);
        json_decref(p);
        return;
    }
    answer_created(c, t);
    if (!c->modern && c->s != gw->stateless) {
        mg_strlcpy(t->session, sizeof t->session, c->s->id);
        mg_strlcpy(t->told, sizeof t->told, "working");
    }
    if (c->s != gw->stateless)
        mg__dispatch_adopt(c, gw->stateless); /* outlives the session that started it */
    if (t->forward) {
        t->forward = 0;
        mg__dispatch_run(c, 1); /* the phase after "task": forward */
    } else if (t->pending != NULL) {
        json_t *p = t->pending;
        t->pending = NULL;
        mg__dispatch_finish(c, p);
        json_decref(p);
    } else if (json_object_size(c->inputs) > 0) {
        mg__task_inputs_changed(c);
    }
    (void)rec;
}

/* Makes c a task: the record goes to the store, then the client gets the CreateTaskResult.
 * forward: the call is not sent yet (goes on with the forward phase). Returns 1 (waiting) or 2
 * (ended). */
static int task_create(mg_call_t *c, int forward)
{
    mg_gateway_t *gw = c->gw;
    const mg_tasks_config_t *tc = &gw->cfg->tasks;
    mg_task_t *t = calloc(1, sizeof *t);
    unsigned char raw[16];
    if (t == NULL || RAND_bytes(raw, sizeof raw) != 1) {
        free(t);
        if (forward) {
            mg__dispatch_fail(c, MG_ENOMEM, "out of memory", NULL);
            return 2;
        }
        return 0;
    }
    mg_hex_encode(raw, sizeof raw, t->id);
    t->gw = gw;
    t->call = c;
    t->forward = forward;
    json_int_t now = (json_int_t)wall_ms();
    t->rec = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "id", t->id, "principal", principal_key(c),
                       "owner", gw->cluster != NULL ? mg__cluster_replica(gw) : "", "status", "working",
                       "createdAt", now, "updatedAt", now, "ttlMs", (json_int_t)tc->ttl_ms, "pollIntervalMs",
                       (json_int_t)tc->poll_interval_ms);
    if (t->rec == NULL || mg_map_set(&gw->tasks, t->id, t) != 0) {
        json_decref(t->rec);
        free(t);
        if (forward)
            mg__dispatch_fail(c, MG_ENOMEM, "out of memory", NULL);
        return forward ? 2 : 0;
    }
    c->task = t;
    c->task_want = 0;
    timer_need(gw); /* watches its TTL */
    mg_task_store_t *st = gw->task_store;
    if (st->ops->create(st, t->rec, tc->max_per_principal, tc->ttl_ms, created_cb, t) != 0)
        created_cb(t, MG_EIO, NULL);
    return 1;
}

/* ---- the call phase ---- */

/* The routed tool's execution.taskSupport in tools (its pool's list; NULL = unknown: none). The
 * pool keeps a map of the tools that support tasks, read once per list it fetched, so a call costs
 * one lookup however many tools the server has. */
static void support_of(mg_call_t *c, json_t *tools)
{
    mg_pool_t *p = c->route_pool;
    c->task_support = 0;
    if (tools == NULL)
        return;
    if (p->support_list != tools) {
        mg_map_dispose(&p->support_map);
        mg_map_init(&p->support_map);
        json_decref(p->support_list);
        p->support_list = json_incref(tools);
        size_t i;
        json_t *tool;
        json_array_foreach(tools, i, tool)
        {
            const char *ts = str(json_object_get(tool, "execution"), "taskSupport");
            intptr_t v = strcmp(ts, "required") == 0 ? 2 : strcmp(ts, "optional") == 0 ? 1 : 0;
            if (v != 0 && mg_map_set(&p->support_map, str(tool, "name"), (void *)v) != 0) {
                json_decref(p->support_list); /* out of memory: read again next time */
                p->support_list = NULL;
                break;
            }
        }
    }
    c->task_support = (int)(intptr_t)mg_map_get(&p->support_map, c->route_original);
}

static void support_cb(mg_pool_t *p, mg_list_kind_t kind, json_t *tools, void *data)
{
    mg_call_t *c = data;
    support_of(c, tools);
    mg__dispatch_run(c, 0);
}

static void tick_cb(uv_timer_t *timer);

static void timer_need(mg_gateway_t *gw)
{
    if (!uv_is_active((uv_handle_t *)&gw->task_timer) && !uv_is_closing((uv_handle_t *)&gw->task_timer))
        uv_timer_start(&gw->task_timer, tick_cb, TICK_MS, TICK_MS);
}

void mg__tasks_timer_need(mg_gateway_t *gw)
{
    timer_need(gw);
}

int mg__task_phase(mg_call_t *c)
{
    mg_gateway_t *gw = c->gw;
    if (strcmp(c->method, "tools/call") != 0 || !gw->cfg->tasks.enabled || c->task != NULL ||
        gw->shutting_down)
        return 0;
    int wants = c->modern
                    ? ext_declared(c)
                    : c->s->rank >= MG_VERSION_2025_11_25 && !mg__params_lack(c, c->params, MG__PK_TASK) &&
                          json_is_object(json_object_get(c->params, "task"));
    if (c->task_support < 0 && (wants || c->modern)) {
        mg__pool_list(c->route_pool, MG_LIST_TOOLS, support_cb, c); /* modern: verify fetched it */
        return 1;
    }
    if (c->task_support < 0) /* a plain session call: only a list already at hand (no fetch, no wait) */
        support_of(c, c->route_pool->lists[MG_LIST_TOOLS]);
    if (c->modern && c->task_support == 2 && !wants) {
        if (c->x != NULL)
            c->x->status = mg_err_http_status(MG_ECAPABILITY);
        char m[400];
        snprintf(
            m, sizeof m,
            "Missing required client capability: tool '%.100s' runs only as a task; declare the " EXT_TASKS
            " extension in _meta " META_CAPS ".extensions to call it",
            str(c->params, "name"));
        mg__dispatch_fail(c, MG_ECAPABILITY, m,
                          json_pack("{s:{s:{s:{}}}}", "requiredCapabilities", "extensions", EXT_TASKS));
        return 2;
    }
    if (!wants || c->task_support == 0 || c->route_pool->owner != NULL)
        return 0; /* a plain call (a session's own children stay with the session) */
    if (c->modern && c->task_support == 2) {
        /* Input the tool asks for first is answered by MRTR (SEP-2663: resolve MRTR before the
         * task); the call becomes a task once it runs without asking (promotion, or at resume). */
        c->task_want = 1;
        c->promote_at = mg_gateway_now_ms() + PROMOTE_MS;
        timer_need(gw);
        return 0;
    }
    return task_create(c, 1);
}

void mg__task_promote(mg_call_t *c)
{
    if (c->task != NULL || c->finished || c->x == NULL)
        return;
    task_create(c, 0);
}

int mg__task_hold(mg_call_t *c, int err, const json_t *response, const char *message)
{
    mg_task_t *t = c->task;
    if (t == NULL || t->created)
        return 0;
    json_decref(t->pending);
    t->pending = err != 0 ? mg_rpc_error(c->client_id, mg_err_jsonrpc_code(err),
                                         message ? message : mg_strerror(err), NULL)
                          : mg_json_copy((json_t *)response);
    json_object_set(t->pending, "id", c->client_id);
    return 1;
}

void mg__task_call_ended(mg_call_t *c, const json_t *resp)
{
    mg_task_t *t = c->task;
    c->task = NULL;
    t->call = NULL;
    if (!t->created) {
        t->ended = 1;
        json_decref(t->pending);
        t->pending = resp != NULL ? mg_json_copy((json_t *)resp) : NULL;
        return;
    }
    task_outcome(t, resp);
}

void mg__task_inputs_changed(mg_call_t *c)
{
    mg_task_t *t = c->task;
    if (t == NULL || !t->created || mg_task_status_terminal(str(t->rec, "status")))
        return;
    if (json_object_size(c->inputs) > 0) {
        json_object_set_new(t->rec, "status", json_string("input_required"));
        json_object_set_new(
            t->rec, "statusMessage",
            json_string("waiting for the client's input: answer inputRequests with tasks/update"));
        json_object_set_new(t->rec, "inputRequests", mg_json_deep_copy(c->inputs));
    } else {
        json_object_set_new(t->rec, "status", json_string("working"));
        json_object_del(t->rec, "statusMessage");
        json_object_del(t->rec, "inputRequests");
    }
    task_write(t);
}

void mg__task_note(mg_call_t *c, const json_t *msg)
{
    mg_task_t *t = c->task;
    if (t == NULL || mg_task_status_terminal(str(t->rec, "status")))
        return;
    const char *m = mg_rpc_method(msg);
    json_t *p = mg_rpc_params(msg);
    if (m != NULL && strcmp(m, "notifications/progress") == 0) {
        char text[300];
        json_t *total = json_object_get(p, "total");
        const char *pm = str(p, "message");
        if (json_is_number(total))
            snprintf(text, sizeof text, "progress %g/%g%s%.200s",
                     json_number_value(json_object_get(p, "progress")), json_number_value(total),
                     pm[0] ? ": " : "", pm);
        else
            snprintf(text, sizeof text, "progress %g%s%.200s",
                     json_number_value(json_object_get(p, "progress")), pm[0] ? ": " : "", pm);
        if (strcmp(str(t->rec, "status"), "working") == 0)
            json_object_set_new(t->rec, "statusMessage", json_string(text));
    }
    if (m != NULL && strcmp(m, "notifications/tasks/status") == 0) {
        /* the upstream's task (up_task): only its sentence; its id and times are its own */
        if (str(p, "statusMessage")[0] != '\0' && strcmp(str(t->rec, "status"), "working") == 0) {
            json_object_set_new(t->rec, "statusMessage", json_string(str(p, "statusMessage")));
            task_write(t);
        }
        return;
    }
    json_t *notes = json_object_get(t->rec, "notes");
    if (!json_is_array(notes)) {
        notes = json_array();
        json_object_set_new(t->rec, "notes", notes);
    }
    json_t *copy = mg_json_deep_copy(msg);
    json_object_del(copy, "id");
    char *text = json_dumps(copy, JSON_COMPACT);
    if (text == NULL || strlen(text) > NOTE_MAX_BYTES) { /* kept as what it was, not its content */
        json_decref(copy);
        copy = json_pack("{s:s,s:b}", "method", m ? m : "", "truncated", 1);
    }
    free(text);
    json_array_append_new(notes, copy);
    while (json_array_size(notes) > NOTES_MAX)
        json_array_remove(notes, 0);
    task_write(t);
}

/* ---- tasks/get, tasks/update, tasks/cancel, tasks/result ---- */

int mg__task_is_method(const mg_call_t *c)
{
    const char *m = c->method;
    if (!c->gw->cfg->tasks.enabled || strncmp(m, "tasks/", 6) != 0)
        return 0;
    if (!c->modern && c->s->rank < MG_VERSION_2025_11_25)
        return 0; /* tasks came with 2025-11-25 */
    if (strcmp(m, "tasks/get") == 0 || strcmp(m, "tasks/cancel") == 0)
        return 1;
    return c->modern ? strcmp(m, "tasks/update") == 0 : strcmp(m, "tasks/result") == 0;
}

typedef struct job {
    mg_call_t *call;
    char id[33];
} job_t;

static void fail_unknown(mg_call_t *c, const char *id)
{
    char m[200];
    snprintf(
        m, sizeof m,
        "Invalid params: unknown task '%.40s' (it does not exist, it expired, or another caller owns it)",
        id);
    mg__dispatch_fail(c, MG_EPARAMS, m, NULL);
}

static void answer(mg_call_t *c, json_t *result /* stolen */)
{
    json_t *r = mg_rpc_result(c->client_id, result);
    mg__dispatch_finish(c, r);
    json_decref(r);
}

/* The outcome of a terminal record as tasks/result (2025-11-25) gives it: what the call would
 * have answered, with the related-task _meta. */
static void answer_result(mg_call_t *c, const json_t *rec)
{
    const char *st = str(rec, "status");
    json_t *meta = json_pack("{s:{s:s}}", META_RELATED, "taskId", str(rec, "id"));
    if (strcmp(st, "completed") == 0) {
        json_t *r = mg_json_copy(json_object_get(rec, "result"));
        if (r == NULL)
            r = json_object();
        json_t *had = json_object_get(r, "_meta");
        if (json_is_object(had)) { /* the tool's own _meta stays, with the task's id added */
            json_t *merged = mg_json_copy(had);
            json_object_update(merged, meta);
            json_decref(meta);
            meta = merged;
        }
        json_object_set_new(r, "_meta", meta);
        answer(c, r);
        return;
    }
    json_t *e = json_object_get(rec, "error");
    int code = strcmp(st, "cancelled") == 0 ? mg_err_jsonrpc_code(MG_ECANCELLED)
               : e                          ? (int)json_integer_value(json_object_get(e, "code"))
                                            : mg_err_jsonrpc_code(MG_EINTERNAL);
    const char *msg = strcmp(st, "cancelled") == 0 ? "the task was cancelled"
                      : e                          ? str(e, "message")
                                                   : "the task failed";
    json_t *r = mg_rpc_error(c->client_id, code, msg, json_pack("{s:o}", "_meta", meta));
    mg__dispatch_finish(c, r);
    json_decref(r);
}

static void waiter_add(mg_call_t *c, const char *id)
{
    mg_task_waiter_t *w = calloc(1, sizeof *w);
    if (w == NULL) {
        mg__dispatch_fail(c, MG_ENOMEM, "out of memory", NULL);
        return;
    }
    w->call = c;
    mg_strlcpy(w->id, sizeof w->id, id);
    w->next_ms = mg_gateway_now_ms() + WAIT_POLL_MS;
    w->next = c->gw->task_waiters;
    c->gw->task_waiters = w;
    c->task_waiting = 1;
    timer_need(c->gw);
}

void mg__task_unwait(mg_call_t *c)
{
    c->task_waiting = 0;
    for (mg_task_waiter_t **pp = &c->gw->task_waiters; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->call == c) {
            (*pp)->call = NULL; /* freed by the timer (a store read may be in flight) */
            return;
        }
    }
}

/* Cancels a non-terminal task: here, or in the store and at its owner. */
static void cancel_done_cb(void *data, int err, json_t *stored);

static void do_cancel(mg_call_t *c, json_t *rec /* borrowed */)
{
    mg_gateway_t *gw = c->gw;
    mg_task_t *t = mg_map_get(&gw->tasks, str(rec, "id"));
    if (t != NULL && t->created) {
        json_object_set_new(t->rec, "status", json_string("cancelled"));
        json_object_set_new(t->rec, "statusMessage", json_string("cancelled by the client"));
        json_object_del(t->rec, "inputRequests");
        json_t *ack = c->modern ? json_object() : task_fields(t->rec, 0); /* t may go with the write */
        if (t->call != NULL)
            mg__dispatch_cancel(t->call, "the task was cancelled by the client"); /* writes the record */
        else
            task_write(t);
        answer(c, ack);
        return;
    }
    /* rec is the store's: an update may free it, so what is needed afterwards is copied first */
    json_t *n = mg_json_deep_copy(rec);
    json_t *note =
        json_pack("{s:s,s:s,s:s}", "op", "cancel", "id", str(rec, "id"), "principal", principal_key(c));
    char owner[64];
    mg_strlcpy(owner, sizeof owner, str(rec, "owner"));
    json_object_set_new(n, "status", json_string("cancelled"));
    json_object_set_new(n, "statusMessage", json_string("cancelled by the client"));
    json_object_set_new(n, "updatedAt", json_integer((json_int_t)wall_ms()));
    json_object_del(n, "inputRequests");
    job_t *j = calloc(1, sizeof *j);
    int e = MG_ENOMEM;
    if (j != NULL) {
        j->call = c;
        mg_strlcpy(j->id, sizeof j->id, str(n, "id"));
        e = gw->task_store->ops->update(gw->task_store, n, cancel_done_cb, j);
    }
    json_decref(n);
    if (e != 0) {
        free(j);
        json_decref(note);
        mg__dispatch_fail(c, MG_ESTOREDOWN, "the task store is unavailable; retry shortly", NULL);
        return;
    }
    /* the owner stops the call (its next write would also find the record terminal) */
    mg__cluster_task_send(gw, owner, note);
}

static void cancel_done_cb(void *data, int err, json_t *stored)
{
    job_t *j = data;
    mg_call_t *c = j->call;
    free(j);
    if (err != 0 && err != MG_EBUSY) {
        mg__dispatch_fail(c, MG_ESTOREDOWN, "the task store is unavailable; retry shortly", NULL);
        return;
    }
    if (stored != NULL)
        mg__task_listen_changed(c->gw, stored, 1);
    if (c->modern)
        answer(c, json_object());
    else if (stored != NULL)
        answer(c, task_fields(stored, 0));
    else
        fail_unknown(c, "");
}

static void update_inputs(mg_call_t *c, const json_t *rec, const json_t *responses)
{
    mg_task_t *t = mg_map_get(&c->gw->tasks, str(rec, "id"));
    if (t != NULL && t->call != NULL) {
        if (mg__dispatch_deliver_inputs(t->call, responses) > 0)
            mg__task_inputs_changed(t->call);
    } else if (!mg_task_status_terminal(str(rec, "status"))) {
        mg__cluster_task_send(c->gw, str(rec, "owner"),
                              json_pack("{s:s,s:s,s:s,s:O}", "op", "update", "id", str(rec, "id"),
                                        "principal", principal_key(c), "inputResponses", responses));
    }
    answer(c, json_object()); /* an acknowledgement; the status follows through tasks/get */
}

static void got_cb(void *data, int err, json_t *rec)
{
    job_t *j = data;
    mg_call_t *c = j->call;
    char id[33];
    mg_strlcpy(id, sizeof id, j->id);
    free(j);
    if (err != 0) {
        mg__dispatch_fail(c, MG_ESTOREDOWN, "the task store is unavailable; retry shortly", NULL);
        return;
    }
    if (rec == NULL || strcmp(str(rec, "principal"), principal_key(c)) != 0) {
        fail_unknown(c, id);
        return;
    }
    /* The running replica's copy is newer than the store's while a write is in flight. */
    mg_task_t *t = mg_map_get(&c->gw->tasks, id);
    if (t != NULL && t->created && !mg_task_status_terminal(str(rec, "status")))
        rec = t->rec;
    const char *m = c->method;
    int terminal = mg_task_status_terminal(str(rec, "status"));
    if (strcmp(m, "tasks/get") == 0) {
        if (c->modern)
            answer(c, detailed(rec));
        else
            answer(c, task_fields(rec, 0));
    } else if (strcmp(m, "tasks/result") == 0) {
        if (terminal)
            answer_result(c, rec);
        else
            waiter_add(c, id);
    } else if (strcmp(m, "tasks/cancel") == 0) {
        if (!terminal)
            do_cancel(c, rec);
        else if (c->modern)
            answer(c, json_object()); /* idempotent on a finished task */
        else {
            char msg[160];
            snprintf(msg, sizeof msg, "Invalid params: the task already ended (%s); it cannot be cancelled",
                     str(rec, "status"));
            mg__dispatch_fail(c, MG_EPARAMS, msg, NULL);
        }
    } else { /* tasks/update */
        update_inputs(c, rec, json_object_get(c->params, "inputResponses"));
    }
}

void mg__task_method(mg_call_t *c)
{
    mg_gateway_t *gw = c->gw;
    if (c->modern && !ext_declared(c)) {
        if (c->x != NULL)
            c->x->status = mg_err_http_status(MG_ECAPABILITY);
        char m[300];
        snprintf(m, sizeof m,
                 "Missing required client capability: %s needs the " EXT_TASKS
                 " extension in _meta " META_CAPS ".extensions",
                 c->method);
        mg__dispatch_fail(c, MG_ECAPABILITY, m,
                          json_pack("{s:{s:{s:{}}}}", "requiredCapabilities", "extensions", EXT_TASKS));
        return;
    }
    const char *id = json_string_value(json_object_get(c->params, "taskId"));
    if (id == NULL) {
        mg__dispatch_fail(c, MG_EPARAMS, "Invalid params: taskId (a string) is required", NULL);
        return;
    }
    if (strcmp(c->method, "tasks/update") == 0) {
        json_t *ir = json_object_get(c->params, "inputResponses");
        int bad = !json_is_object(ir);
        const char *k;
        json_t *v;
        if (!bad)
            json_object_foreach(ir, k, v) bad |= !json_is_object(v);
        if (bad) {
            mg__dispatch_fail(
                c, MG_EPARAMS,
                "Invalid params: inputResponses must be an object whose values are result objects", NULL);
            return;
        }
    }
    if (strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32) {
        fail_unknown(c, id); /* never one of ours: no store round trip */
        return;
    }
    job_t *j = calloc(1, sizeof *j);
    if (j == NULL) {
        mg__dispatch_fail(c, MG_ENOMEM, "out of memory", NULL);
        return;
    }
    j->call = c;
    mg_strlcpy(j->id, sizeof j->id, id);
    if (gw->task_store->ops->get(gw->task_store, id, WHY_OWNER_GONE, got_cb, j) != 0) {
        free(j);
        mg__dispatch_fail(c, MG_ESTOREDOWN, "the task store is unavailable; retry shortly", NULL);
    }
}

/* ---- messages from other replicas ---- */

void mg__task_remote(mg_gateway_t *gw, const json_t *m)
{
    mg_task_t *t = mg_map_get(&gw->tasks, str(m, "id"));
    if (t == NULL || !t->created || t->call == NULL ||
        strcmp(str(t->rec, "principal"), str(m, "principal")) != 0)
        return;
    const char *op = str(m, "op");
    if (strcmp(op, "cancel") == 0) {
        json_object_set_new(t->rec, "status", json_string("cancelled"));
        json_object_set_new(t->rec, "statusMessage", json_string("cancelled by the client"));
        json_object_del(t->rec, "inputRequests");
        mg__dispatch_cancel(t->call, "the task was cancelled by the client");
    } else if (strcmp(op, "update") == 0 && json_is_object(json_object_get(m, "inputResponses"))) {
        mg_call_t *c = t->call;
        if (mg__dispatch_deliver_inputs(c, json_object_get(m, "inputResponses")) > 0)
            mg__task_inputs_changed(c);
    }
}

/* ---- the timer: promotion and tasks/result waiters ---- */

static void wait_read_cb(void *data, int err, json_t *rec)
{
    mg_task_waiter_t *w = data;
    w->reading = 0;
    w->next_ms = mg_gateway_now_ms() + WAIT_POLL_MS;
    mg_call_t *c = w->call;
    if (c == NULL || err != 0)
        return; /* gone, or the store did not answer: the next tick reads again */
    if (rec == NULL) {
        w->call = NULL;
        c->task_waiting = 0;
        fail_unknown(c, w->id);
    } else if (mg_task_status_terminal(str(rec, "status"))) {
        w->call = NULL;
        c->task_waiting = 0;
        answer_result(c, rec);
    }
}

static void tick_cb(uv_timer_t *timer)
{
    mg_gateway_t *gw = timer->data;
    uint64_t now = mg_gateway_now_ms();
    int busy = 0;
    for (mg_call_t *c = gw->stateless->calls; c != NULL;) {
        mg_call_t *next = c->next; /* promotion may end c */
        if (c->task_want && c->task == NULL && !c->finished) {
            busy = 1;
            if (c->x != NULL && c->park_key[0] == '\0' && !c->flush_due && now >= c->promote_at)
                mg__task_promote(c);
        }
        c = next;
    }
    size_t pos = 0;
    const char *k;
    void *v;
    uint64_t wall = wall_ms();
    while (mg_map_next(&gw->tasks, &pos, &k, &v)) { /* (task_write and a cancel may free t) */
        mg_task_t *t = v;
        if (t->call != NULL && t->created) {
            busy = 1; /* a running task: its TTL is watched */
            uint64_t end = (uint64_t)json_integer_value(json_object_get(t->rec, "createdAt")) +
                           (uint64_t)json_integer_value(json_object_get(t->rec, "ttlMs"));
            if (wall >= end) { /* expired: nobody can read its outcome any more */
                t->settled = 1;
                mg__dispatch_cancel(t->call,
                                    "the task expired (gateway.tasks.ttlMs) before its call finished");
                continue;
            }
        }
        if (t->retry_at == 0)
            continue;
        busy = 1;
        if (now >= t->retry_at && !t->writing)
            task_write(t);
    }
    for (mg_task_waiter_t **pp = &gw->task_waiters; *pp != NULL;) {
        mg_task_waiter_t *w = *pp;
        if (w->call == NULL && !w->reading) {
            *pp = w->next;
            free(w);
            continue;
        }
        busy = 1;
        if (!w->reading && w->call != NULL && now >= w->next_ms) {
            w->reading = 1;
            if (gw->task_store->ops->get(gw->task_store, w->id, WHY_OWNER_GONE, wait_read_cb, w) != 0)
                wait_read_cb(w, MG_EIO, NULL);
        }
        pp = &w->next;
    }
    busy |= mg__task_listen_tick(gw, now);
    if (!busy)
        uv_timer_stop(timer);
}

/* ---- lifetime ---- */

static void collect_cb(mg_metrics_out_t *out, void *data)
{
    mg_gateway_t *gw = data;
    mg_metrics_family(out, "mcpgate_tasks_created_total", "counter",
                      "Tool calls that became tasks on this replica");
    mg_metrics_sample(out, "mcpgate_tasks_created_total", NULL, (double)gw->tasks_created);
    mg_metrics_family(out, "mcpgate_tasks_refused_total", "counter",
                      "Tasks refused because their principal had gateway.tasks.maxPerPrincipal unfinished");
    mg_metrics_sample(out, "mcpgate_tasks_refused_total", NULL, (double)gw->tasks_refused);
    mg_metrics_family(out, "mcpgate_tasks_ended_total", "counter", "Tasks run here that ended, by status");
    static const char *const names[3] = {"completed", "failed", "cancelled"};
    for (int i = 0; i < 3; i++) {
        const char *l[] = {"status", names[i], NULL};
        mg_metrics_sample(out, "mcpgate_tasks_ended_total", l, (double)gw->tasks_ended[i]);
    }
    size_t running = 0, pos = 0;
    const char *k;
    void *v;
    while (mg_map_next(&gw->tasks, &pos, &k, &v))
        running += ((mg_task_t *)v)->call != NULL;
    mg_metrics_family(out, "mcpgate_tasks_running", "gauge", "Tasks whose call runs on this replica now");
    mg_metrics_sample(out, "mcpgate_tasks_running", NULL, (double)running);
}

json_t *mg__tasks_legacy_caps(mg_gateway_t *gw)
{
    if (!gw->cfg->tasks.enabled)
        return NULL;
    /* no "list": one caller's tasks are never enumerable (tasks/list is -32601) */
    return json_pack("{s:{},s:{s:{s:{}}}}", "cancel", "requests", "tools", "call");
}

static uint64_t wall_clock(void)
{
    return wall_ms();
}

void mg__tasks_init(mg_gateway_t *gw)
{
    mg_map_init(&gw->tasks);
    gw->task_store = mg_task_store_mem_new(wall_clock, gw->cfg->tasks.max_stored_bytes);
    uv_timer_init(gw->loop, &gw->task_timer);
    gw->task_timer.data = gw;
    mg_metrics_register(collect_cb, gw);
}

int mg__tasks_shared(mg_gateway_t *gw)
{
    mg_task_store_t *r = gw->store != NULL ? mg_shared_task_new(gw->store) : NULL;
    if (r != NULL) {
        gw->task_store->ops->free(gw->task_store);
        gw->task_store = r;
    }
    return 0;
}

void mg__tasks_drain(mg_gateway_t *gw)
{
    for (mg_task_waiter_t *w = gw->task_waiters; w != NULL; w = w->next) {
        mg_call_t *c = w->call;
        if (c == NULL)
            continue;
        w->call = NULL;
        c->task_waiting = 0;
        mg__dispatch_fail(c, MG_ESHUTDOWN, "the gateway is shutting down; ask again (tasks/result) elsewhere",
                          NULL);
    }
}

void mg__tasks_dispose(mg_gateway_t *gw)
{
    uv_timer_stop(&gw->task_timer);
    mg__tasks_drain(gw);
}

void mg__tasks_free(mg_gateway_t *gw)
{
    mg_metrics_unregister(collect_cb, gw);
    while (gw->task_waiters != NULL) {
        mg_task_waiter_t *w = gw->task_waiters;
        gw->task_waiters = w->next;
        free(w);
    }
    size_t pos = 0;
    const char *k;
    void *v;
    while (mg_map_next(&gw->tasks, &pos, &k, &v)) {
        mg_task_t *t = v;
        json_decref(t->rec);
        json_decref(t->pending);
        free(t);
    }
    mg_map_dispose(&gw->tasks);
    if (gw->task_store != NULL)
        gw->task_store->ops->free(gw->task_store);
    gw->task_store = NULL;
}
