/*
 * upstream.c - the pool behind one configured stdio server: its public API, the bounded FIFO of
 * requests waiting for a ready child, request completion, timeouts, cancel and stop.
 *
 * Contract (upstream.h): every accepted request ends through mg__req_complete() exactly once, and
 * done_cb never runs inside mg_upstream_request() or mg_upstream_start() (completions there are
 * deferred to a 0 ms timer). The request states and the handle ownership are tables in
 * upstream_int.h. Read next: child.c (what happens to a child), upstream_int.h (wire format).
 */
#include "upstream_int.h"

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/mem.h"

char *mg__fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* SIGPIPE would kill the gateway when a child dies with bytes still queued for its stdin; libuv
 * resets dispositions in children, so ignoring it here never leaks into them. */
static void ignore_sigpipe(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGPIPE, &sa, NULL);
    }
}

int mg__stdio_new(uv_loop_t *loop, const mg_upstream_opts_t *opts, const mg_upstream_hooks_t *hooks,
                  void *hooks_data, mg_upstream_t **out)
{
    if (out != NULL)
        *out = NULL;
    if (loop == NULL || opts == NULL || opts->server == NULL || opts->limits == NULL || out == NULL ||
        opts->server->name == NULL || opts->server->command == NULL)
        return MG_EINVAL;
    const mg_server_config_t *s = opts->server;
    const mg_limits_t *l = opts->limits;
    mg_upstream_t *up = calloc(1, sizeof *up);
    if (up == NULL)
        return MG_ENOMEM;
    up->ops = &mg__stdio_ops;
    up->loop = loop;
    up->server = s;
    up->limits = l;
    if (hooks != NULL)
        up->hooks = *hooks;
    up->hooks_data = hooks_data;
    up->exclusive = opts->exclusive;
    mg_log_limit_init(&up->lim_junk, MG__NOISE_BURST, MG__NOISE_INTERVAL_MS);
    mg_log_limit_init(&up->lim_proto, MG__NOISE_BURST, MG__NOISE_INTERVAL_MS);
    mg_log_limit_init(&up->lim_stderr, MG__STDERR_BURST, MG__NOISE_INTERVAL_MS);
    mg__list_init(&up->queue);
    up->state = MG_UPSTREAM_STARTING;
    up->nslots = s->instances ? s->instances : 1;
    up->max_pending = l->max_inflight_per_upstream ? l->max_inflight_per_upstream : 1024;
    up->default_timeout_ms = s->request_timeout_ms   ? s->request_timeout_ms
                             : l->request_timeout_ms ? l->request_timeout_ms
                                                     : 60000;
    up->init_timeout_ms = s->request_timeout_ms   ? s->request_timeout_ms
                          : l->request_timeout_ms ? l->request_timeout_ms
                                                  : MG__INIT_TIMEOUT_MS;
    up->max_request_ms = l->max_request_ms;
    up->max_line = l->max_line_bytes ? l->max_line_bytes : MG__LINE_DEFAULT_MAX;
    up->client_name = strdup(opts->client_name ? opts->client_name : "mcpgate");
    up->client_version = strdup(opts->client_version ? opts->client_version : "0");
    up->slots = calloc(up->nslots, sizeof *up->slots);
    if (up->client_name == NULL || up->client_version == NULL || up->slots == NULL ||
        mg__env_build(s, &up->env) != 0) {
        free(up->client_name);
        free(up->client_version);
        free(up->slots);
        free(up);
        return MG_ENOMEM;
    }
    for (unsigned i = 0; i < up->nslots; i++) {
        mg__slot_t *slot = &up->slots[i];
        slot->up = up;
        slot->index = i;
        slot->backoff_ms = MG__BACKOFF_MIN_MS;
        slot->next_id = 1;
        uv_timer_init(loop, &slot->restart_timer);
        slot->restart_timer.data = slot;
        up->nhandles++;
    }
    uv_prepare_init(loop, &up->flusher);
    up->flusher.data = up;
    up->nhandles++;
    ignore_sigpipe();
    *out = up;
    return 0;
}

static void stdio_start(mg_upstream_t *up)
{
    if (up == NULL || up->started || up->stopping)
        return;
    up->started = 1;
    up->api_depth++;
    for (unsigned i = 0; i < up->nslots && !up->stopping; i++)
        mg__child_spawn(&up->slots[i]);
    up->api_depth--;
    mg__up_state_update(up, 0);
}

/* ---- state ---- */

static mg_upstream_state_t compute_state(const mg_upstream_t *up)
{
    if (up->stopping)
        return MG_UPSTREAM_STOPPED;
    int starting = !up->started;
    for (unsigned i = 0; i < up->nslots; i++) {
        const mg__child_t *c = up->slots[i].child;
        if (c == NULL)
            continue;
        if (c->state == MG__CHILD_READY)
            return MG_UPSTREAM_READY;
        if (c->state == MG__CHILD_INIT)
            starting = 1;
    }
    return starting ? MG_UPSTREAM_STARTING : MG_UPSTREAM_BACKOFF;
}

void mg__up_state_update(mg_upstream_t *up, int force)
{
    mg_upstream_state_t s = compute_state(up);
    if (s == up->state && !force)
        return;
    up->state = s;
    if (up->hooks.on_state_cb != NULL)
        up->hooks.on_state_cb(up, s, up->hooks_data);
}

void mg__up_set_error(mg_upstream_t *up, const char *message)
{
    char *m = dup_or_null(message);
    if (m == NULL && message != NULL)
        return; /* keep the previous sentence rather than none */
    free(up->last_error);
    up->last_error = m;
}

void mg__up_set_client_error(mg_upstream_t *up, const char *message)
{
    char *m = dup_or_null(message);
    if (m == NULL && message != NULL)
        return;
    free(up->client_error);
    up->client_error = m;
}

static void flush_cb(uv_prepare_t *h)
{
    mg_upstream_t *up = h->data;
    uv_prepare_stop(h);
    for (unsigned i = 0; i < up->nslots; i++)
        if (up->slots[i].child != NULL)
            mg__child_flush(up->slots[i].child);
}

void mg__up_arm_flush(mg_upstream_t *up)
{
    if (!uv_is_active((uv_handle_t *)&up->flusher) && !uv_is_closing((uv_handle_t *)&up->flusher))
        uv_prepare_start(&up->flusher, flush_cb);
}

void mg__up_handle_closed(mg_upstream_t *up)
{
    up->nhandles--;
    if (up->stopping && up->nhandles == 0 && !up->stopped_called) {
        up->stopped_called = 1;
        if (up->stopped_cb != NULL)
            up->stopped_cb(up, up->stopped_data); /* may free up: nothing after this */
    }
}

/* ---- requests ---- */

static void req_close_cb(uv_handle_t *h)
{
    mg_upstream_req_t *req = h->data;
    mg_upstream_t *up = req->up;
    json_decref(req->msg);
    json_decref(req->progress_token);
    json_decref(req->d_response);
    free(req->d_message);
    free(req);
    mg__up_handle_closed(up);
}

static void deliver(mg_upstream_req_t *req, int err, json_t *response, const char *message)
{
    if (err < 0 && message == NULL)
        message = mg_strerror(err);
    req->done_cb(req, err, err < 0 ? NULL : response, message, req->data);
    uv_close((uv_handle_t *)&req->timer, req_close_cb);
}

static void deferred_cb(uv_timer_t *t)
{
    mg_upstream_req_t *req = t->data;
    deliver(req, req->d_err, req->d_response, req->d_message);
}

void mg__req_complete(mg_upstream_req_t *req, int err, json_t *response, const char *message)
{
    req->state = MG__REQ_DONE;
    req->child = NULL;
    uv_timer_stop(&req->timer);
    if (req->up->api_depth > 0) {
        req->d_err = err;
        req->d_response = json_incref(response);
        req->d_message = dup_or_null(message);
        uv_timer_start(&req->timer, deferred_cb, 0, 0);
        return;
    }
    deliver(req, err, response, message);
}

void mg__req_complete_raw(mg_upstream_req_t *req, const mg_rpc_raw_t *raw)
{
    req->state = MG__REQ_DONE;
    req->child = NULL;
    uv_timer_stop(&req->timer);
    req->raw_cb(req, raw, req->data);
    uv_close((uv_handle_t *)&req->timer, req_close_cb);
}

void mg__req_detach(mg_upstream_req_t *req)
{
    mg_upstream_t *up = req->up;
    if (req->state == MG__REQ_QUEUED) {
        mg__list_remove(&req->link);
        up->nqueued--;
    } else if (req->state == MG__REQ_INFLIGHT) {
        mg__child_t *c = req->child;
        mg__idtable_del(&c->table, req->id);
        mg__list_remove(&req->link);
        c->ninflight--;
        up->ninflight--;
    }
    req->state = MG__REQ_TAKEN;
}

void mg__child_take_inflight(mg__child_t *child, mg__list_t *out)
{
    mg_upstream_t *up = child->up;
    for (mg__list_t *n = child->inflight.next; n != &child->inflight; n = n->next) {
        mg_upstream_req_t *req = mg__container_of(n, mg_upstream_req_t, link);
        req->state = MG__REQ_TAKEN;
        req->child = NULL;
    }
    mg__list_splice(&child->inflight, out);
    mg__idtable_clear(&child->table);
    up->ninflight -= child->ninflight;
    child->ninflight = 0;
}

static void take_queue(mg_upstream_t *up, mg__list_t *out)
{
    for (mg__list_t *n = up->queue.next; n != &up->queue; n = n->next)
        mg__container_of(n, mg_upstream_req_t, link)->state = MG__REQ_TAKEN;
    mg__list_splice(&up->queue, out);
    up->nqueued = 0;
}

void mg__req_complete_list(mg__list_t *list, int err, const char *message)
{
    while (!mg__list_empty(list)) {
        mg_upstream_req_t *req = mg__container_of(list->next, mg_upstream_req_t, link);
        mg__list_remove(&req->link);
        mg__req_complete(req, err, NULL, message);
    }
}

/* Builds the line to send: caller's message with our id, "jsonrpc", and the progress token
 * replaced. Consumes req->msg; returns a NEW reference or NULL on ENOMEM. Objects the caller may
 * still share (refcount > 1) are copied, never modified. */
static json_t *prepare(mg_upstream_req_t *req, int64_t id)
{
    json_t *msg = req->msg;
    req->msg = NULL;
    if (msg->refcount > 1) {
        json_t *c = mg_json_copy(msg);
        json_decref(msg);
        if ((msg = c) == NULL)
            return NULL;
    }
    int bad = 0;
    if (req->progress_token != NULL) {
        json_t *params = mg_json_copy(json_object_get(msg, "params"));
        json_t *meta = mg_json_copy(json_object_get(params, "_meta"));
        bad |= params == NULL || meta == NULL;
        bad |= json_object_set_new(meta, "progressToken", json_integer(id));
        bad |= json_object_set_new(params, "_meta", meta);
        bad |= json_object_set_new(msg, "params", params);
    }
    bad |= json_object_set_new(msg, "jsonrpc", json_string("2.0"));
    bad |= json_object_set_new(msg, "id", json_integer(id));
    if (bad) {
        json_decref(msg);
        return NULL;
    }
    return msg;
}

/* as (may be NULL): the caller of a request sent during its mg_upstream_request_as() call, whose
 * params text the line may copy (mg__request_line). A request without a message (req->msg NULL:
 * given by its parts to mg_upstream_call, no progress token) is written from method and params
 * (STOLEN). */
static void send_req(mg__child_t *child, mg_upstream_req_t *req, const mg_upstream_caller_t *as,
                     const char *method, json_t *params)
{
    mg_upstream_t *up = child->up;
    mg__slot_t *slot = &up->slots[child->slot];
    int64_t id = slot->next_id++;
    /* Without a progress token to replace, the line is written straight from the caller's message
     * (same bytes as prepare() + dump, no copy of a shared message); else prepare() builds it. */
    char *text = NULL;
    size_t tlen = 0;
    json_t *line = NULL;
    if (req->msg == NULL) {
        text = mg__request_line_parts(method, params, id, as, &tlen);
        json_decref(params);
    } else if (req->progress_token == NULL) {
        text = mg__request_line(req->msg, id, as, &tlen);
        json_decref(req->msg);
        req->msg = NULL;
    } else {
        line = prepare(req, id);
    }
    if ((text == NULL && line == NULL) || mg__idtable_put(&child->table, id, req) != 0) {
        free(text);
        json_decref(line);
        req->state = MG__REQ_TAKEN;
        char *m = mg__fmt("out of memory while sending to upstream '%s'", up->server->name);
        mg__req_complete(req, MG_ENOMEM, NULL, m);
        free(m);
        return;
    }
    req->state = MG__REQ_INFLIGHT;
    req->child = child;
    req->id = id;
    req->sent = 1;
    req->origin = mg__child_origin(child);
    mg__list_push(&child->inflight, &req->link);
    child->ninflight++;
    up->ninflight++;
    /* Sent with the other requests of this loop iteration (mg__child_write_deferred). A write
     * failure makes the child DYING; this request then fails when it exits. Out of memory leaves
     * the child as it was: only this request fails. */
    int r = text != NULL ? mg__child_write_line_deferred(child, text, tlen)
                         : mg__child_write_deferred(child, line);
    json_decref(line);
    if (r == MG_ENOMEM) {
        mg__req_detach(req);
        char *m = mg__fmt("out of memory while sending to upstream '%s'", up->server->name);
        mg__req_complete(req, MG_ENOMEM, NULL, m);
        free(m);
    }
}

static mg__child_t *pick_child(mg_upstream_t *up)
{
    mg__child_t *best = NULL;
    for (unsigned i = 0; i < up->nslots; i++) {
        mg__child_t *c = up->slots[i].child;
        if (c != NULL && c->state == MG__CHILD_READY && (best == NULL || c->ninflight < best->ninflight))
            best = c;
    }
    return best;
}

static void drain_queue(mg_upstream_t *up)
{
    while (!mg__list_empty(&up->queue) && !up->stopping) {
        mg__child_t *c = pick_child(up);
        if (c == NULL)
            return;
        mg_upstream_req_t *req = mg__container_of(up->queue.next, mg_upstream_req_t, link);
        mg__list_remove(&req->link);
        up->nqueued--;
        send_req(c, req, NULL, NULL, NULL);
    }
}

void mg__up_child_ready(mg_upstream_t *up, mg__child_t *child)
{
    int changed = 0;
    if (child->init_result != NULL &&
        (up->init_result == NULL || !json_equal(up->init_result, child->init_result))) {
        json_decref(up->init_result);
        up->init_result = json_incref(child->init_result);
        changed = 1;
    }
    drain_queue(up);
    mg__up_state_update(up, changed);
}

void mg__up_attempt_failed(mg_upstream_t *up, int err, const char *message)
{
    if (pick_child(up) != NULL)
        return;
    mg__list_t taken;
    mg__list_init(&taken);
    take_queue(up, &taken);
    mg__req_complete_list(&taken, err, message);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static void req_timer_cb(uv_timer_t *t)
{
    mg_upstream_req_t *req = t->data;
    mg_upstream_t *up = req->up;
    uint64_t now = uv_now(up->loop);
    uint64_t idle_dl = req->touch_ms + req->timeout_ms;
    uint64_t hard_dl = req->max_ms ? req->start_ms + req->max_ms : UINT64_MAX;
    uint64_t dl = min_u64(idle_dl, hard_dl);
    if (now < dl) {
        uv_timer_start(t, req_timer_cb, dl - now, 0);
        return;
    }
    const char *name = up->server->name;
    char *m;
    if (req->state == MG__REQ_QUEUED)
        m = mg__fmt("upstream '%s' was not ready within %" PRIu64 " ms%s%s", name, req->timeout_ms,
                    up->client_error ? ": " : "", up->client_error ? up->client_error : "");
    else if (hard_dl <= idle_dl)
        m = mg__fmt("upstream '%s' did not finish within %" PRIu64 " ms (%s)", name, req->max_ms,
                    req->max_ms == up->max_request_ms ? "limits.maxRequestMs" : "the task's ttl");
    else
        m = mg__fmt("upstream '%s' did not answer within %" PRIu64 " ms", name, req->timeout_ms);
    if (req->state == MG__REQ_INFLIGHT)
        mg__child_send_cancelled(req->child, req->id, "timeout");
    json_t *f = json_pack("{s:s, s:I}", "upstream", name, "upstream_id", (json_int_t)req->id);
    mg_log_json(MG_LOG_WARN, m ? m : "upstream request timed out", f);
    mg__req_detach(req);
    mg__req_complete(req, MG_ETIMEOUT, NULL, m);
    free(m);
}

/* stdio_request, stdio_request_as and stdio_call: the request is msg, or (msg NULL) method and
 * params (mg_upstream_call), written from those parts when it goes to a child at once with no
 * progress token to replace, else made into a message first. as (may be NULL) is lent to a line
 * written at once. msg and params are STOLEN. */
static int submit(mg_upstream_t *up, const mg_upstream_caller_t *as, json_t *msg, const char *method,
                  json_t *params, uint64_t timeout_ms, mg_upstream_done_cb done_cb,
                  mg_upstream_related_cb related_cb, void *data, mg_upstream_req_t **out)
{
    if (out != NULL)
        *out = NULL;
    int rc = 0;
    if (up == NULL || done_cb == NULL ||
        (msg != NULL ? !json_is_object(msg) || !json_is_string(json_object_get(msg, "method"))
                     : method == NULL))
        rc = MG_EINVAL;
    else if (up->stopping)
        rc = MG_ECLOSED;
    else if (up->nqueued + up->ninflight >= up->max_pending)
        rc = MG_EBUSY;
    if (rc != 0) {
        json_decref(msg);
        json_decref(params);
        return rc;
    }
    /* as->params_of is the request's "params" (upstream.h): without "_meta" it holds no progress token */
    json_t *tok =
        as != NULL && as->params_text != NULL && as->params_no_meta
            ? NULL
            : json_object_get(json_object_get(msg != NULL ? json_object_get(msg, "params") : params, "_meta"),
                              "progressToken");
    tok = json_is_string(tok) || json_is_integer(tok) ? tok : NULL; /* borrowed: the copies below keep it */
    /* The child it goes to now (none: queued). The trace context (as->traceparent) is written into
     * the line sent now when params is an object without _meta (hence no progress token either),
     * else merged into the message (a queued request is sent after as is gone). */
    mg__child_t *c = mg__list_empty(&up->queue) ? pick_child(up) : NULL;
    int traced = as != NULL && as->traceparent != NULL;
    int splice =
        traced && c != NULL && mg__trace_splices(msg != NULL ? json_object_get(msg, "params") : params, as);
    /* parts become a message when queued, when prepare() replaces a token, or for the tree merge */
    if (msg == NULL && (c == NULL || tok != NULL || (traced && !splice))) {
        msg = mg_upstream_msg(method, params);
        params = NULL;
        if (msg == NULL)
            return MG_ENOMEM;
    }
    mg_upstream_caller_t plain;
    if (traced && !splice && mg__trace_merge_caller(msg, &as, &plain) != 0) {
        json_decref(msg);
        return MG_ENOMEM;
    }
    mg_upstream_req_t *req = mg_zalloc(sizeof *req);
    if (req == NULL) {
        json_decref(msg);
        json_decref(params);
        return MG_ENOMEM;
    }
    req->up = up;
    req->msg = msg;
    req->done_cb = done_cb;
    req->related_cb = related_cb;
    req->data = data;
    req->origin.child = UINT32_MAX;
    mg__list_init(&req->link);
    req->progress_token = json_incref(tok);
    req->timeout_ms = timeout_ms ? timeout_ms : up->default_timeout_ms;
    req->max_ms = up->max_request_ms;
    req->start_ms = req->touch_ms = uv_now(up->loop);
    uv_timer_init(up->loop, &req->timer);
    req->timer.data = req;
    up->nhandles++;
    uint64_t first = req->timeout_ms;
    if (up->max_request_ms)
        first = min_u64(first, up->max_request_ms);
    uv_timer_start(&req->timer, req_timer_cb, first, 0);

    up->api_depth++;
    if (c != NULL) {
        send_req(c, req, as, method, params);
    } else {
        req->state = MG__REQ_QUEUED;
        mg__list_push(&up->queue, &req->link);
        up->nqueued++;
    }
    up->api_depth--;
    if (out != NULL)
        *out = req;
    return 0;
}

static int stdio_request(mg_upstream_t *up, json_t *msg, uint64_t timeout_ms, mg_upstream_done_cb done_cb,
                         mg_upstream_related_cb related_cb, void *data, mg_upstream_req_t **out)
{
    return submit(up, NULL, msg, NULL, NULL, timeout_ms, done_cb, related_cb, data, out);
}

static void stdio_cancel(mg_upstream_req_t *req, const char *reason)
{
    if (req == NULL || (req->state != MG__REQ_QUEUED && req->state != MG__REQ_INFLIGHT))
        return;
    if (req->state == MG__REQ_INFLIGHT)
        mg__child_send_cancelled(req->child, req->id, reason);
    mg__req_detach(req);
    mg__req_complete(req, MG_ECANCELLED, NULL, "request cancelled");
}

static void stdio_req_touch(mg_upstream_req_t *req)
{
    if (req != NULL && req->state != MG__REQ_DONE)
        req->touch_ms = uv_now(req->up->loop);
}

static int stdio_req_origin(const mg_upstream_req_t *req, mg_upstream_origin_t *out)
{
    if (req == NULL || !req->sent)
        return MG_ENOTFOUND;
    if (out != NULL)
        *out = req->origin;
    return 0;
}

/* ---- sending to children ---- */

static mg__child_t *child_of(mg_upstream_t *up, mg_upstream_origin_t origin)
{
    if (origin.child >= up->nslots)
        return NULL;
    mg__child_t *c = up->slots[origin.child].child;
    if (c == NULL || c->generation != origin.generation || c->exited ||
        (c->state != MG__CHILD_INIT && c->state != MG__CHILD_READY))
        return NULL;
    return c;
}

static int stdio_send(mg_upstream_t *up, mg_upstream_origin_t origin, const json_t *msg)
{
    if (up == NULL || !json_is_object(msg))
        return MG_EINVAL;
    if (up->stopping)
        return MG_ECLOSED;
    mg__child_t *c = child_of(up, origin);
    if (c == NULL)
        return MG_ECLOSED;
    return mg__child_write(c, msg);
}

static void stdio_broadcast(mg_upstream_t *up, const json_t *msg)
{
    if (up == NULL || up->stopping || !json_is_object(msg))
        return;
    for (unsigned i = 0; i < up->nslots; i++) {
        mg__child_t *c = up->slots[i].child;
        if (c != NULL && c->state == MG__CHILD_READY)
            mg__child_write(c, msg);
    }
}

/* ---- stop and free ---- */

static void slot_timer_close_cb(uv_handle_t *h)
{
    mg__slot_t *slot = h->data;
    mg__up_handle_closed(slot->up);
}

static void flusher_close_cb(uv_handle_t *h)
{
    mg__up_handle_closed(h->data);
}

static void stdio_stop(mg_upstream_t *up, uint64_t grace_ms, void (*stopped_cb)(mg_upstream_t *, void *),
                       void *data)
{
    if (up == NULL || up->stopping)
        return;
    up->stopping = 1;
    up->stopped_cb = stopped_cb;
    up->stopped_data = data;
    up->grace_ms = grace_ms                        ? grace_ms
                   : up->limits->shutdown_grace_ms ? up->limits->shutdown_grace_ms
                                                   : 10000;
    mg_log_json(MG_LOG_INFO, "stopping upstream", json_pack("{s:s}", "upstream", up->server->name));
    mg__list_t taken;
    mg__list_init(&taken);
    take_queue(up, &taken);
    uv_close((uv_handle_t *)&up->flusher, flusher_close_cb); /* children flush as they terminate */
    for (unsigned i = 0; i < up->nslots; i++) {
        mg__slot_t *slot = &up->slots[i];
        uv_close((uv_handle_t *)&slot->restart_timer, slot_timer_close_cb);
        if (slot->child != NULL) {
            mg__child_take_inflight(slot->child, &taken);
            mg__child_terminate(slot->child, up->grace_ms);
        }
    }
    mg__req_complete_list(&taken, MG_ESHUTDOWN, "gateway is shutting down");
    mg__up_state_update(up, 0);
}

static void stdio_free(mg_upstream_t *up)
{
    if (up == NULL)
        return;
    if (!up->stopping || up->nhandles != 0) {
        mg_log_json(MG_LOG_ERROR, "mg_upstream_free() before stopped_cb: upstream leaked",
                    json_pack("{s:s}", "upstream", up->server->name));
        return;
    }
    mg__env_free(up->env);
    json_decref(up->init_result);
    free(up->last_error);
    free(up->client_error);
    json_decref(up->last_stderr);
    free(up->client_name);
    free(up->client_version);
    free(up->slots);
    free(up);
}

/* ---- status ---- */

static void stdio_status(const mg_upstream_t *up, mg_upstream_status_t *out)
{
    unsigned ready = 0;
    for (unsigned i = 0; i < up->nslots; i++) {
        const mg__child_t *c = up->slots[i].child;
        ready += c != NULL && c->state == MG__CHILD_READY;
    }
    *out = (mg_upstream_status_t){up->server->name,
                                  up->state,
                                  up->init_result,
                                  up->last_error,
                                  up->client_error,
                                  up->last_stderr,
                                  up->restarts,
                                  up->nqueued + up->ninflight,
                                  ready,
                                  NULL,
                                  NULL,
                                  NULL};
}

static size_t stdio_pids(const mg_upstream_t *up, int *pids, size_t n)
{
    size_t k = 0;
    for (unsigned i = 0; i < up->nslots && k < n; i++) {
        const mg__child_t *c = up->slots[i].child;
        if (c != NULL && c->pid > 0 && !c->exited)
            pids[k++] = c->pid;
    }
    return k;
}

static void stdio_req_set_waiting(mg_upstream_req_t *req, int waiting)
{
    req->waiting = waiting;
}

/* A child needs nothing of the caller but the request's own hard cap (caller->max_ms), its raw_cb
 * and, for a line written at once, the params text it lends (mg__request_line). */
static int submit_as(mg_upstream_t *up, const mg_upstream_caller_t *caller, json_t *msg, const char *method,
                     json_t *params, uint64_t timeout_ms, mg_upstream_done_cb done_cb,
                     mg_upstream_related_cb related_cb, void *data, mg_upstream_req_t **out)
{
    mg_upstream_req_t *req = NULL;
    int rc = submit(up, caller, msg, method, params, timeout_ms, done_cb, related_cb, data, &req);
    if (rc == 0 && caller != NULL)
        req->raw_cb = caller->raw_cb;
    if (rc == 0 && caller != NULL && caller->max_ms != 0) {
        req->max_ms = caller->max_ms; /* the timer re-arms for whichever deadline comes first */
        uv_timer_start(&req->timer, req_timer_cb, min_u64(req->timeout_ms, req->max_ms), 0);
    }
    if (out != NULL)
        *out = req;
    return rc;
}

static int stdio_request_as(mg_upstream_t *up, const mg_upstream_caller_t *caller, json_t *msg,
                            uint64_t timeout_ms, mg_upstream_done_cb done_cb,
                            mg_upstream_related_cb related_cb, void *data, mg_upstream_req_t **out)
{
    return submit_as(up, caller, msg, NULL, NULL, timeout_ms, done_cb, related_cb, data, out);
}

static int stdio_call(mg_upstream_t *up, const mg_upstream_caller_t *caller, const char *method,
                      json_t *params, uint64_t timeout_ms, mg_upstream_done_cb done_cb,
                      mg_upstream_related_cb related_cb, void *data, mg_upstream_req_t **out)
{
    return submit_as(up, caller, NULL, method, params, timeout_ms, done_cb, related_cb, data, out);
}

/* The stdio child pool as an implementation of the upstream interface (upstream.h). */
const mg_upstream_ops_t mg__stdio_ops = {
    "stdio",          stdio_start,      stdio_request, stdio_send,   stdio_broadcast, stdio_stop,
    stdio_free,       stdio_status,     stdio_pids,    stdio_cancel, stdio_req_touch, stdio_req_set_waiting,
    stdio_req_origin, stdio_request_as, stdio_call,
};
