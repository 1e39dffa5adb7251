/*
 * child.c - one child process of a pool: spawn, initialize handshake, stdout/stderr framing and
 * dispatch, writes, exit, and the slot's restart with backoff.
 *
 * Contract: a child is spawned without a shell in its own session/process group (so kill(-pid)
 * reaches grandchildren), with only the env block of spawn_env.c. Its record is freed from the close
 * callback of its last handle. It is finalized (in-flight requests failed with the exit status,
 * handles closed, restart scheduled) only once it has exited and its stdout/stderr reached EOF or
 * MG__DRAIN_MS passed, so its last stderr lines are logged before the error that points at them.
 * The child state table is in upstream_int.h. Read next: upstream.c (requests and the queue).
 */
#include "upstream_int.h"
#include "sandbox.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"

static void child_close_cb(uv_handle_t *h);
/*
 * Which in-flight request a notification or server->client request belongs to, on evidence only.
 * stdio carries no relation, so: an explicit hint params._meta["io.mcpgate/relatedRequestId"]
 * naming one of our upstream ids wins. Without a hint, and only on an exclusive pool (one client:
 * nobody else could be the addressee), the only request that is not waiting for client input,
 * else, when every request waits, the only one. NULL otherwise: on a shared pool "the only request
 * in flight" may be another client's (a server logs from a timer for whoever enabled it).
 */
static mg_upstream_req_t *attribute(mg__child_t *child, const json_t *msg)
{
    json_t *hint = json_object_get(json_object_get(json_object_get(msg, "params"), "_meta"),
                                   "io.mcpgate/relatedRequestId");
    mg_upstream_req_t *active = NULL, *waiting = NULL;
    unsigned nactive = 0, nwaiting = 0;
    for (mg__list_t *l = child->inflight.next; l != &child->inflight; l = l->next) {
        mg_upstream_req_t *req = mg__container_of(l, mg_upstream_req_t, link);
        if (json_is_integer(hint) && json_integer_value(hint) == req->id)
            return req;
        if (req->waiting) {
            waiting = req;
            nwaiting++;
        } else {
            active = req;
            nactive++;
        }
    }
    if (json_is_integer(hint))
        return NULL; /* names a request that is not (or no longer) in flight */
    if (!child->up->exclusive)
        return NULL;
    if (nactive == 1)
        return active;
    if (nactive == 0 && nwaiting == 1)
        return waiting;
    return NULL;
}

static void on_stdout_line(void *ctx, const char *line, size_t len, int truncated);
static void on_stdout_overlong(void *ctx, size_t len, int have_id, int64_t id);
static void on_stderr_line(void *ctx, const char *line, size_t len, int truncated);

static const mg__line_ops_t stdout_ops = {on_stdout_line, on_stdout_overlong};
static const mg__line_ops_t stderr_ops = {on_stderr_line, NULL};

mg_upstream_origin_t mg__child_origin(const mg__child_t *child)
{
    mg_upstream_origin_t o = {child->slot, child->generation};
    return o;
}

static const char *name_of(const mg__child_t *child)
{
    return child->up->server->name;
}

/* Context fields for a log line about this child. NEW reference. */
static json_t *fields(const mg__child_t *child)
{
    return json_pack("{s:s, s:i, s:i}", "upstream", name_of(child), "child", (int)child->slot, "pid",
                     child->pid);
}

static uint64_t now_ms(const mg__child_t *child)
{
    return uv_now(child->up->loop);
}

/* A protocol error of this child (not JSON-RPC, unknown ids, over-long lines): rate-limited. */
static void log_proto(mg__child_t *child, mg_log_level_t level, const char *msg, json_t *f)
{
    mg_log_limited(&child->up->lim_proto, now_ms(child), level, msg, f);
}

/* Reports the noise of the upstream suppressed and not yet reported (a child exited). */
static void flush_noise(mg_upstream_t *up)
{
    mg_log_limit_flush(&up->lim_junk, MG_LOG_WARN,
                       "upstream wrote lines that are not JSON on stdout; ignored",
                       json_pack("{s:s}", "upstream", up->server->name));
    mg_log_limit_flush(&up->lim_stderr, MG_LOG_INFO, "upstream stderr lines not logged (rate limit)",
                       json_pack("{s:s, s:s}", "upstream", up->server->name, "stream", "stderr"));
    mg_log_limit_flush(&up->lim_proto, MG_LOG_WARN, "upstream protocol errors not logged (rate limit)",
                       json_pack("{s:s}", "upstream", up->server->name));
}

/* The child's last stderr lines, oldest first: NEW array. */
static json_t *tail_lines(const mg__child_t *child)
{
    json_t *a = json_array();
    for (unsigned i = 0; i < child->tail_n; i++)
        json_array_append_new(a, json_string(child->tail[(child->tail_head + i) % MG__TAIL_LINES]));
    return a;
}

static void tail_push(mg__child_t *child, const char *line)
{
    size_t len = strlen(line);
    char *copy = strndup(line, len > MG__TAIL_BYTES ? MG__TAIL_BYTES : len);
    if (copy == NULL)
        return;
    if (child->tail_n == MG__TAIL_LINES) {
        free(child->tail[child->tail_head]);
        child->tail[child->tail_head] = NULL;
        child->tail_head = (child->tail_head + 1) % MG__TAIL_LINES;
        child->tail_n--;
    }
    child->tail[(child->tail_head + child->tail_n) % MG__TAIL_LINES] = copy;
    child->tail_n++;
    /* keep the newest lines within MG__TAIL_BYTES */
    size_t total = 0;
    for (unsigned i = 0; i < child->tail_n; i++)
        total += strlen(child->tail[(child->tail_head + i) % MG__TAIL_LINES]);
    while (child->tail_n > 1 && total > MG__TAIL_BYTES) {
        total -= strlen(child->tail[child->tail_head]);
        free(child->tail[child->tail_head]);
        child->tail[child->tail_head] = NULL;
        child->tail_head = (child->tail_head + 1) % MG__TAIL_LINES;
        child->tail_n--;
    }
}

/* Signals the child's process group. Never after exit_cb: the reaped pid may be reused. */
static void signal_group(mg__child_t *child, int sig)
{
    if (child->pid <= 0 || child->exited)
        return; /* kill(-0) would signal our own process group */
    if (kill(-child->pid, sig) != 0 && errno != ESRCH)
        mg_log_json(MG_LOG_WARN, "could not signal upstream process group",
                    json_pack("{s:s, s:i, s:i, s:s}", "upstream", name_of(child), "pid", child->pid, "signal",
                              sig, "error", strerror(errno)));
}

/* ---- writing ---- */

typedef struct write_req {
    uv_write_t req;
    char *data;
} write_req_t;

/* The child cannot take input any more: stop using it and kill its group; its requests fail with
 * its exit status when exit_cb comes. */
static void child_broken(mg__child_t *child, const char *what, int uverr)
{
    if (child->exited || child->state == MG__CHILD_DYING || child->state == MG__CHILD_STOPPING)
        return;
    json_t *f = fields(child);
    json_object_set_new(f, "error", json_string(uv_strerror(uverr)));
    mg_log_json(MG_LOG_ERROR, what, f);
    child->state = MG__CHILD_DYING;
    signal_group(child, SIGKILL);
}

static void write_cb(uv_write_t *w, int status)
{
    write_req_t *wr = (write_req_t *)w;
    mg__child_t *child = w->handle->data;
    free(wr->data);
    free(wr);
    if (status < 0 && status != UV_ECANCELED)
        child_broken(child, "writing to upstream stdin failed; killing it", status);
}

/* Writes s[0..len) (a malloc'd buffer given to this function) to the child's stdin: what
 * uv_try_write() cannot take now is queued with uv_write() (libuv keeps the order). */
static int write_bytes(mg__child_t *child, char *s, size_t len)
{
    uv_stream_t *in = (uv_stream_t *)&child->in;
    uv_buf_t b = uv_buf_init(s, (unsigned)len);
    int n = uv_try_write(in, &b, 1);
    if (n >= 0 && (size_t)n == len) {
        free(s);
        return 0;
    }
    if (n < 0 && n != UV_EAGAIN) {
        free(s);
        child_broken(child, "writing to upstream stdin failed; killing it", n);
        return MG_EIO;
    }
    if (n < 0)
        n = 0;
    write_req_t *wr = malloc(sizeof *wr);
    if (wr == NULL) {
        free(s);
        child_broken(child, "out of memory queueing a write to upstream stdin; killing it", UV_ENOMEM);
        return MG_ENOMEM;
    }
    wr->data = s;
    b = uv_buf_init(s + n, (unsigned)(len - (size_t)n));
    int rc = uv_write(&wr->req, in, &b, 1, write_cb);
    if (rc != 0) { /* libuv: write_cb will not be called */
        free(s);
        free(wr);
        child_broken(child, "writing to upstream stdin failed; killing it", rc);
        return MG_EIO;
    }
    return 0;
}

static int writable(mg__child_t *child)
{
    return !child->exited && !uv_is_closing((uv_handle_t *)&child->in) && child->state != MG__CHILD_DYING;
}

int mg__child_write(mg__child_t *child, const json_t *msg)
{
    if (!writable(child))
        return MG_ECLOSED;
    mg__child_flush(child); /* lines deferred before this one go first */
    if (!writable(child))
        return MG_ECLOSED;
    size_t len = 0;
    char *s = mg_json_dump(msg, &len); /* json_dumps(JSON_COMPACT)'s bytes, faster (common/json.h) */
    if (s == NULL)
        return MG_ENOMEM;
    s[len++] = '\n'; /* the NUL slot becomes the newline */
    return write_bytes(child, s, len);
}

int mg__child_write_deferred(mg__child_t *child, const json_t *msg)
{
    if (!writable(child))
        return MG_ECLOSED;
    size_t len = 0;
    char *s = mg_json_dump(msg, &len);
    if (s == NULL)
        return MG_ENOMEM;
    s[len++] = '\n';
    return mg__child_write_line_deferred(child, s, len);
}

int mg__child_write_line_deferred(mg__child_t *child, char *s, size_t len)
{
    if (!writable(child)) {
        free(s);
        return MG_ECLOSED;
    }
    if (child->wlen == 0 && child->wbuf == NULL) { /* the common case: one line, no copy */
        child->wbuf = s;
        child->wlen = child->wcap = len;
    } else {
        if (child->wlen + len > child->wcap) {
            size_t ncap = child->wcap ? child->wcap : 4096;
            while (ncap < child->wlen + len)
                ncap *= 2;
            char *nb = realloc(child->wbuf, ncap);
            if (nb == NULL) {
                mg__child_flush(child); /* flushes, then writes at once */
                if (!writable(child)) {
                    free(s);
                    return MG_ECLOSED;
                }
                return write_bytes(child, s, len);
            }
            child->wbuf = nb;
            child->wcap = ncap;
        }
        memcpy(child->wbuf + child->wlen, s, len);
        child->wlen += len;
        free(s);
    }
    mg__up_arm_flush(child->up);
    return 0;
}

/* A request's params v (NULL: {}): as->params_text when v is as->params_of (its dump, already
 * written), else its dump; then, with as->traceparent, the trace context as its last member (v an
 * object without "_meta": mg__trace_splices). */
static void put_params(mg_jbuf_t *b, const json_t *v, const mg_upstream_caller_t *as)
{
    if (v == NULL)
        mg_jbuf_put(b, "{}", 2);
    else if (as != NULL && as->params_text != NULL && v == as->params_of)
        mg_jbuf_put(b, as->params_text, as->params_len);
    else
        mg_jbuf_put_json(b, v);
    if (as != NULL && as->traceparent != NULL && !b->err && b->len > 0 && b->p[b->len - 1] == '}') {
        b->len--; /* reopened: "{}" -> "{", "{...}" -> "{...," */
        if (b->p[b->len - 1] != '{')
            mg_jbuf_put(b, ",", 1);
        mg__trace_meta_put(b, as->traceparent, as->tracestate);
        mg_jbuf_put(b, "}", 1);
    }
}

/* Closes the line's object: a NEW string with its newline (*len counts it), or NULL. */
static char *line_end(mg_jbuf_t *b, size_t *len)
{
    mg_jbuf_put(b, "}", 1);
    char *s = mg_jbuf_steal(b, len);
    if (s != NULL)
        s[(*len)++] = '\n'; /* the NUL slot becomes the newline */
    return s;
}

char *mg__request_line(const json_t *msg, int64_t id, const mg_upstream_caller_t *as, size_t *len)
{
    char stack[1024];
    mg_jbuf_t b;
    mg_jbuf_init(&b, stack, sizeof stack, SIZE_MAX / 4);
    int has_rpc = 0, has_id = 0;
    mg_jbuf_put(&b, "{", 1);
    for (void *it = json_object_iter((json_t *)msg); it != NULL && !b.err;
         it = json_object_iter_next((json_t *)msg, it)) {
        const char *k = json_object_iter_key(it);
        size_t kn = json_object_iter_key_len(it);
        if (b.len > 1)
            mg_jbuf_put(&b, ",", 1);
        mg_jbuf_put_str(&b, k, kn);
        mg_jbuf_put(&b, ":", 1);
        if (kn == 7 && memcmp(k, "jsonrpc", 7) == 0) {
            mg_jbuf_put(&b, "\"2.0\"", 5);
            has_rpc = 1;
        } else if (kn == 2 && memcmp(k, "id", 2) == 0) {
            mg_jbuf_put_int(&b, id);
            has_id = 1;
        } else if (kn == 6 && memcmp(k, "params", 6) == 0) {
            put_params(&b, json_object_iter_value(it), as);
        } else {
            mg_jbuf_put_json(&b, json_object_iter_value(it));
        }
    }
    if (!has_rpc)
        mg_jbuf_put(&b, b.len > 1 ? ",\"jsonrpc\":\"2.0\"" : "\"jsonrpc\":\"2.0\"", b.len > 1 ? 16 : 15);
    if (!has_id) {
        mg_jbuf_put(&b, ",\"id\":", 6);
        mg_jbuf_put_int(&b, id);
    }
    return line_end(&b, len);
}

char *mg__request_line_parts(const char *method, const json_t *params, int64_t id,
                             const mg_upstream_caller_t *as, size_t *len)
{
    char stack[1024];
    mg_jbuf_t b;
    mg_jbuf_init(&b, stack, sizeof stack, SIZE_MAX / 4);
    mg_jbuf_put(&b, "{\"jsonrpc\":\"2.0\",\"method\":", 26);
    mg_jbuf_put_str(&b, method, strlen(method));
    mg_jbuf_put(&b, ",\"params\":", 10);
    put_params(&b, params, as);
    mg_jbuf_put(&b, ",\"id\":", 6);
    mg_jbuf_put_int(&b, id);
    return line_end(&b, len);
}

void mg__child_flush(mg__child_t *child)
{
    if (child->wlen == 0)
        return;
    char *s = child->wbuf;
    size_t len = child->wlen;
    child->wbuf = NULL;
    child->wlen = child->wcap = 0;
    if (!writable(child)) {
        free(s); /* dropped, as mg__child_write() refuses: its requests fail when it exits */
        return;
    }
    write_bytes(child, s, len); /* a failure makes the child DYING (child_broken) */
}

static int write_notification(mg__child_t *child, const char *method, json_t *params)
{
    json_t *m = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
    if (m == NULL) {
        json_decref(params);
        return MG_ENOMEM;
    }
    if (params != NULL)
        json_object_set_new(m, "params", params);
    int rc = mg__child_write(child, m);
    json_decref(m);
    return rc;
}

void mg__child_send_cancelled(mg__child_t *child, int64_t id, const char *reason)
{
    if (child == NULL)
        return;
    json_t *p = json_pack("{s:I}", "requestId", (json_int_t)id);
    if (p != NULL && reason != NULL)
        json_object_set_new(p, "reason", json_string(reason));
    write_notification(child, "notifications/cancelled", p);
}

/* Answers the child's request id with result (borrowed) or, when NULL, the error err (MG_E*). */
static void reply(mg__child_t *child, json_t *id, json_t *result, int err, const char *message)
{
    json_t *m = result != NULL ? json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result)
                               : json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error",
                                           "code", mg_err_jsonrpc_code(err), "message", message);
    if (m != NULL) {
        mg__child_write(child, m);
        json_decref(m);
    }
}

/* ---- restart ---- */

static void restart_cb(uv_timer_t *t)
{
    mg__slot_t *slot = t->data;
    mg_upstream_t *up = slot->up;
    if (up->stopping)
        return;
    up->restarts++;
    mg__child_spawn(slot);
    mg__up_state_update(up, 0);
}

static void schedule_restart(mg__slot_t *slot)
{
    mg_upstream_t *up = slot->up;
    if (up->stopping)
        return;
    uint64_t delay = slot->backoff_ms;
    slot->backoff_ms = delay * 2 > MG__BACKOFF_MAX_MS ? MG__BACKOFF_MAX_MS : delay * 2;
    uv_timer_start(&slot->restart_timer, restart_cb, delay, 0);
    mg_log_json(MG_LOG_INFO, "upstream restart scheduled",
                json_pack("{s:s, s:i, s:I}", "upstream", up->server->name, "child", (int)slot->index,
                          "delay_ms", (json_int_t)delay));
}

/* ---- exit and finalize ---- */

static void close_handles(mg__child_t *child)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&child->proc, (uv_handle_t *)&child->in, (uv_handle_t *)&child->out,
                         (uv_handle_t *)&child->err, (uv_handle_t *)&child->timer};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], child_close_cb);
    }
}

static void child_close_cb(uv_handle_t *h)
{
    mg__child_t *child = h->data;
    mg_upstream_t *up = child->up;
    if (--child->nopen == 0) {
        free(child->wbuf);
        mg__idtable_dispose(&child->table);
        mg__linebuf_dispose(&child->outbuf);
        mg__linebuf_dispose(&child->errbuf);
        for (unsigned i = 0; i < MG__TAIL_LINES; i++)
            free(child->tail[i]);
        json_decref(child->init_result);
        free(child);
    }
    mg__up_handle_closed(up);
}

/* "exited with status 3" / "was killed by signal 9" */
static void describe_exit(const mg__child_t *child, char *buf, size_t n)
{
    if (child->term_signal != 0)
        snprintf(buf, n, "was killed by signal %d", child->term_signal);
    else
        snprintf(buf, n, "exited with status %" PRId64, child->exit_status);
}

static void finalize(mg__child_t *child)
{
    if (child->finalized)
        return;
    child->finalized = 1;
    mg_upstream_t *up = child->up;
    mg__slot_t *slot = &up->slots[child->slot];
    const char *name = name_of(child);
    uv_timer_stop(&child->timer);
    if (slot->child == child)
        slot->child = NULL;
    close_handles(child);

    char what[64], status[48];
    describe_exit(child, what, sizeof what);
    if (child->term_signal != 0)
        snprintf(status, sizeof status, "killed by signal %d", child->term_signal);
    else
        snprintf(status, sizeof status, "exit status %" PRId64, child->exit_status);
    flush_noise(up);
    if (child->tail_n > 0) { /* kept for /readyz until a child exits again */
        json_decref(up->last_stderr);
        up->last_stderr = tail_lines(child);
    }
    char *attempt = NULL;
    if (!up->stopping) {
        if (!child->ever_ready && !child->init_failed) {
            char *op = mg__fmt("upstream '%s' %s during initialize", name, what);
            /* the client has no log to look at: what happened, in its terms, and whom to ask */
            attempt =
                mg__fmt("the '%s' server failed to start (%s); ask the gateway's operator", name, status);
            mg__up_set_error(up, op);
            mg__up_set_client_error(up, attempt);
            json_t *f = fields(child);
            json_object_set_new(f, "stderr", tail_lines(child));
            mg_log_json(MG_LOG_WARN, op ? op : "upstream exited during initialize", f);
            free(op);
        } else if (child->ever_ready) {
            char *m = mg__fmt("upstream '%s' %s", name, what);
            char *cm = mg__fmt("the '%s' server stopped (%s); it is being restarted", name, status);
            mg__up_set_error(up, m);
            mg__up_set_client_error(up, cm);
            json_t *f = fields(child);
            if (child->tail_n > 0)
                json_object_set_new(f, "stderr", tail_lines(child));
            mg_log_json(MG_LOG_WARN, m ? m : "upstream exited", f);
            free(m);
            free(cm);
        }
        if (child->ever_ready && uv_now(up->loop) - child->ready_at >= MG__BACKOFF_RESET_MS)
            slot->backoff_ms = MG__BACKOFF_MIN_MS;
        schedule_restart(slot);
    } else {
        char *m = mg__fmt("upstream '%s' %s", name, what);
        mg_log_json(MG_LOG_INFO, m ? m : what, fields(child));
        free(m);
    }
    mg__list_t taken;
    mg__list_init(&taken);
    mg__child_take_inflight(child, &taken);
    char *m = mg__fmt("upstream '%s' %s while handling this request", name, what);
    /* From here on callbacks run: `child` is closing and is not touched again. */
    mg__req_complete_list(&taken, MG_EUPSTREAM, m);
    free(m);
    if (attempt != NULL)
        mg__up_attempt_failed(up, MG_EUPSTREAMDOWN, attempt);
    free(attempt);
    mg__up_state_update(up, 0);
}

static void drain_timer_cb(uv_timer_t *t)
{
    finalize(t->data);
}

static void exit_cb(uv_process_t *p, int64_t status, int sig)
{
    mg__child_t *child = p->data;
    /* The leader is gone: whatever it left in its group is an orphan of a dead server. Done at
     * once, before the group id can be recycled. */
    signal_group(child, SIGKILL);
    child->exited = 1;
    child->exit_status = status;
    child->term_signal = sig;
    if (child->state == MG__CHILD_INIT || child->state == MG__CHILD_READY) {
        child->state = MG__CHILD_DYING; /* never picked again; lines still buffered are read */
        mg__up_state_update(child->up, 0);
    }
    if (child->out_eof && child->err_eof)
        finalize(child);
    else
        uv_timer_start(&child->timer, drain_timer_cb, MG__DRAIN_MS, 0);
}

static void kill_timer_cb(uv_timer_t *t)
{
    mg__child_t *child = t->data;
    if (child->exited)
        return;
    if (child->state == MG__CHILD_STOPPING)
        mg_log_json(MG_LOG_WARN, "upstream did not exit after SIGTERM; sending SIGKILL to its process group",
                    fields(child));
    else
        mg_log_json(MG_LOG_WARN,
                    "upstream closed its stdout but kept running; sending SIGKILL to its process group",
                    fields(child));
    signal_group(child, SIGKILL);
}

void mg__child_terminate(mg__child_t *child, uint64_t grace_ms)
{
    mg__child_flush(child); /* deferred lines go out before stdin closes */
    child->state = MG__CHILD_STOPPING;
    if (!uv_is_closing((uv_handle_t *)&child->in))
        uv_close((uv_handle_t *)&child->in, child_close_cb);
    if (child->exited)
        return; /* draining: finalize comes from drain_timer_cb or EOF */
    signal_group(child, SIGTERM);
    uv_timer_start(&child->timer, kill_timer_cb, grace_ms, 0);
}

/* ---- reading ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    mg__child_t *child = h->data;
    *buf = uv_buf_init(child->readbuf, sizeof child->readbuf);
}

static void stream_eof(mg__child_t *child, uv_stream_t *s, ssize_t nread)
{
    uv_read_stop(s);
    if (nread != UV_EOF) {
        json_t *f = fields(child);
        json_object_set_new(f, "error", json_string(uv_strerror((int)nread)));
        mg_log_json(MG_LOG_WARN, "reading from upstream failed", f);
    }
}

static void out_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    mg__child_t *child = s->data;
    if (nread > 0) {
        mg__linebuf_feed(&child->outbuf, buf->base, (size_t)nread, &stdout_ops, child);
        return;
    }
    if (nread == 0)
        return;
    stream_eof(child, s, nread);
    mg__linebuf_finish(&child->outbuf, &stdout_ops, child);
    child->out_eof = 1;
    if (child->exited) {
        if (child->err_eof)
            finalize(child);
        return;
    }
    if (child->state == MG__CHILD_INIT || child->state == MG__CHILD_READY) {
        /* Nothing it says can reach us any more. Usually exit_cb follows within microseconds;
         * if not, it is killed so its requests fail now rather than at their timeouts. */
        child->state = MG__CHILD_DYING;
        uv_timer_start(&child->timer, kill_timer_cb, MG__EOF_KILL_MS, 0);
        mg__up_state_update(child->up, 0);
    }
}

static void err_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    mg__child_t *child = s->data;
    if (nread > 0) {
        mg__linebuf_feed(&child->errbuf, buf->base, (size_t)nread, &stderr_ops, child);
        return;
    }
    if (nread == 0)
        return;
    stream_eof(child, s, nread);
    mg__linebuf_finish(&child->errbuf, &stderr_ops, child);
    child->err_eof = 1;
    if (child->exited && child->out_eof)
        finalize(child);
}

static void on_stderr_line(void *ctx, const char *line, size_t len, int truncated)
{
    mg__child_t *child = ctx;
    mg_upstream_t *up = child->up;
    if (len == 0)
        return;
    /* Only the last lines of a flood matter (the exit report): cheap when the log limit is hit. */
    uint64_t dropped = 0;
    int log_it = mg_log_enabled(MG_LOG_INFO) && mg_log_limit_take(&up->lim_stderr, now_ms(child), &dropped);
    char *raw = mg__utf8_clean(line, len, MG__STDERR_LINE_MAX, NULL);
    char *text = raw ? mg__mask_secrets(up->server, raw) : NULL;
    free(raw);
    if (text == NULL)
        return;
    tail_push(child, text);
    if (log_it) {
        json_t *f = json_pack("{s:s, s:s}", "upstream", name_of(child), "stream", "stderr");
        if (truncated)
            json_object_set_new(f, "truncated", json_true());
        if (dropped > 0) {
            json_object_set_new(f, "suppressed", json_integer((json_int_t)dropped));
            json_object_set_new(f, "suppressed_ms", json_integer(MG__NOISE_INTERVAL_MS));
        }
        mg_log_json(MG_LOG_INFO, text, f);
    }
    free(text);
}

static void on_stdout_overlong(void *ctx, size_t len, int have_id, int64_t id)
{
    mg__child_t *child = ctx;
    mg_upstream_t *up = child->up;
    json_t *f = fields(child);
    json_object_set_new(f, "bytes", json_integer((json_int_t)len));
    json_object_set_new(f, "max_line_bytes", json_integer((json_int_t)up->max_line));
    log_proto(child, MG_LOG_ERROR, "upstream wrote a line longer than limits.maxUpstreamLineBytes; discarded",
              f);
    mg_upstream_req_t *req = have_id ? mg__idtable_get(&child->table, id) : NULL;
    if (req == NULL)
        return;
    char *m =
        mg__fmt("upstream '%s' sent a response of %zu bytes, more than limits.maxUpstreamLineBytes (%zu)",
                name_of(child), len, up->max_line);
    mg__req_detach(req);
    mg__req_complete(req, MG_ETOOBIG, NULL, m);
    free(m);
}

/* ---- dispatch of one message from a child ---- */

/* message: the operator's sentence (taken); why: the client's short reason. */
static void init_failed(mg__child_t *child, char *message, const char *why)
{
    mg_upstream_t *up = child->up;
    child->init_failed = 1;
    child->state = MG__CHILD_DYING;
    uv_timer_stop(&child->timer);
    mg__up_set_error(up, message);
    char *cm =
        mg__fmt("the '%s' server failed to start (%s); ask the gateway's operator", name_of(child), why);
    mg__up_set_client_error(up, cm);
    json_t *f = fields(child);
    if (child->tail_n > 0)
        json_object_set_new(f, "stderr", tail_lines(child));
    mg_log_json(MG_LOG_ERROR, message ? message : "upstream initialize failed", f);
    signal_group(child, SIGKILL);
    mg__up_attempt_failed(up, MG_EUPSTREAMDOWN, cm ? cm : message);
    free(cm);
    free(message);
    mg__up_state_update(up, 0);
}

static void init_timeout_cb(uv_timer_t *t)
{
    mg__child_t *child = t->data;
    char why[64];
    snprintf(why, sizeof why, "no answer to initialize within %" PRIu64 " ms", child->up->init_timeout_ms);
    init_failed(child,
                mg__fmt("upstream '%s' did not answer initialize within %" PRIu64 " ms; killed it",
                        name_of(child), child->up->init_timeout_ms),
                why);
}

static void on_init_response(mg__child_t *child, json_t *msg)
{
    mg_upstream_t *up = child->up;
    if (child->exited)
        return; /* read while draining a dead child: finalize reports the exit */
    uv_timer_stop(&child->timer);
    json_t *result = json_object_get(msg, "result");
    if (!json_is_object(result)) {
        json_t *em = json_object_get(json_object_get(msg, "error"), "message");
        const char *raw = json_is_string(em) ? json_string_value(em) : "no result object";
        char *clean = mg__utf8_clean(raw, strlen(raw), 300, NULL);
        init_failed(child,
                    mg__fmt("upstream '%s' rejected initialize: %s", name_of(child), clean ? clean : ""),
                    "it rejected initialize");
        free(clean);
        return;
    }
    child->init_result = json_incref(result);
    if (write_notification(child, "notifications/initialized", NULL) != 0)
        return; /* DYING now: exit_cb reports it */
    child->state = MG__CHILD_READY;
    child->ever_ready = 1;
    child->ready_at = uv_now(up->loop);
    json_t *f = fields(child);
    json_t *pv = json_object_get(result, "protocolVersion");
    if (json_is_string(pv))
        json_object_set(f, "protocolVersion", pv);
    json_t *si = json_object_get(result, "serverInfo");
    if (json_is_object(si))
        json_object_set(f, "serverInfo", si);
    mg_log_json(MG_LOG_INFO, "upstream ready", f);
    mg__up_child_ready(up, child);
}

static void on_progress(mg__child_t *child, json_t *msg)
{
    json_t *params = json_object_get(msg, "params");
    json_t *tok = json_object_get(params, "progressToken");
    mg_upstream_req_t *req =
        json_is_integer(tok) ? mg__idtable_get(&child->table, json_integer_value(tok)) : NULL;
    if (req == NULL || req->progress_token == NULL) {
        if (mg_log_enabled(MG_LOG_DEBUG))
            mg_log_json(MG_LOG_DEBUG, "progress for a token not in flight; dropped", fields(child));
        return;
    }
    mg_upstream_req_touch(req); /* before the callback: it may complete and free req */
    if (req->related_cb == NULL)
        return;
    json_t *copy = mg_json_copy(msg);
    json_t *p2 = mg_json_copy(params);
    if (copy != NULL && p2 != NULL && json_object_set(p2, "progressToken", req->progress_token) == 0 &&
        json_object_set(copy, "params", p2) == 0)
        req->related_cb(req, mg__child_origin(child), copy, req->data);
    json_decref(p2);
    json_decref(copy);
}

static void on_response(mg__child_t *child, json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    if (!json_is_integer(id)) {
        log_proto(child, MG_LOG_WARN, "upstream sent a response with an id the gateway never used; ignored",
                  fields(child));
        return;
    }
    int64_t iid = json_integer_value(id);
    if (child->state == MG__CHILD_INIT && iid == child->init_id) {
        on_init_response(child, msg);
        return;
    }
    mg_upstream_req_t *req = mg__idtable_get(&child->table, iid);
    if (req == NULL) {
        if (mg_log_enabled(MG_LOG_DEBUG)) {
            json_t *f = fields(child);
            json_object_set_new(f, "upstream_id", json_integer(iid));
            mg_log_json(MG_LOG_DEBUG, "late response for a finished request; dropped", f);
        }
        return;
    }
    mg__req_detach(req);
    mg__req_complete(req, 0, msg, NULL);
}

static void dispatch(mg__child_t *child, json_t *msg)
{
    mg_upstream_t *up = child->up;
    json_t *method = json_object_get(msg, "method");
    json_t *id = json_object_get(msg, "id");
    if (!json_is_string(method)) {
        if (json_object_get(msg, "result") != NULL || json_object_get(msg, "error") != NULL)
            on_response(child, msg);
        else
            log_proto(child, MG_LOG_WARN, "upstream sent a JSON object that is not JSON-RPC; ignored",
                      fields(child));
        return;
    }
    const char *m = json_string_value(method);
    if (id != NULL && strcmp(m, "ping") == 0) {
        reply(child, id, json_object(), 0, NULL);
        return;
    }
    if (id == NULL && strcmp(m, "notifications/progress") == 0) {
        on_progress(child, msg);
        return;
    }
    mg_upstream_origin_t origin = mg__child_origin(child);
    mg_upstream_req_t *rel = attribute(child, msg);
    if (rel != NULL && rel->related_cb != NULL) {
        rel->related_cb(rel, origin, msg, rel->data);
        return;
    }
    if (up->hooks.on_message_cb != NULL) {
        up->hooks.on_message_cb(up, origin, msg, up->hooks_data);
        return;
    }
    if (id != NULL) /* a request nobody will answer: say so rather than let the child wait */
        reply(child, id, NULL, MG_EMETHOD, "method not supported by the gateway");
}

/* A line that could not be parsed (malformed, or out of memory): when its top-level "id" names a
 * request in flight, that request fails now rather than waiting for its timeout. */
static void fail_unreadable(mg__child_t *child, const char *line, size_t len)
{
    mg__idscan_t scan;
    int64_t id;
    mg__idscan_init(&scan);
    mg__idscan_feed(&scan, line, len);
    mg_upstream_req_t *req = mg__idscan_result(&scan, &id) ? mg__idtable_get(&child->table, id) : NULL;
    if (req == NULL)
        return;
    char *m = mg__fmt("upstream '%s' sent a response the gateway could not read", name_of(child));
    mg__req_detach(req);
    mg__req_complete(req, MG_EUPSTREAM, NULL, m);
    free(m);
}

/* A result for a request whose caller takes bytes (raw_cb), in canonical form: handed over without
 * building a tree. Returns 1 when it took the line; 0 leaves it to the tree path (anything else:
 * not canonical, not a result, the initialize response, inside the API, a caller without raw_cb). */
static int take_raw(mg__child_t *child, const char *line, size_t len)
{
    mg_rpc_raw_t raw;
    if (child->up->api_depth > 0 || mg_rpc_raw_scan(line, len, &raw) != 0)
        return 0;
    if (!raw.has_result || raw.has_error || raw.has_method || !raw.id_is_int)
        return 0;
    if (child->state == MG__CHILD_INIT && raw.id == child->init_id)
        return 0;
    mg_upstream_req_t *req = mg__idtable_get(&child->table, raw.id);
    if (req == NULL || req->raw_cb == NULL)
        return 0;
    mg__req_detach(req);
    mg__req_complete_raw(req, &raw);
    return 1;
}

static void on_stdout_line(void *ctx, const char *line, size_t len, int truncated)
{
    mg__child_t *child = ctx;
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i == len)
        return;
    if (take_raw(child, line, len))
        return;
    json_t *msg = mg_json_loadb(line, len, 0); /* json_loadb(0), faster (common/json.h) */
    if (!json_is_object(msg)) {
        uint64_t dropped = 0;
        if (mg_log_enabled(MG_LOG_WARN) && mg_log_limit_take(&child->up->lim_junk, now_ms(child), &dropped)) {
            char *ex = mg__utf8_clean(line, len, MG__EXCERPT_MAX, NULL);
            char *masked = ex ? mg__mask_secrets(child->up->server, ex) : NULL;
            json_t *f = fields(child);
            json_object_set_new(f, "excerpt", json_string(masked ? masked : ""));
            if (dropped > 0) {
                json_object_set_new(f, "suppressed", json_integer((json_int_t)dropped));
                json_object_set_new(f, "suppressed_ms", json_integer(MG__NOISE_INTERVAL_MS));
            }
            mg_log_json(MG_LOG_WARN,
                        msg ? "upstream wrote JSON that is not an object on stdout (batches are not "
                              "supported); ignored"
                            : "upstream wrote a line that is not JSON on stdout; ignored",
                        f);
            free(masked);
            free(ex);
        }
        json_decref(msg);
        if (msg == NULL) /* unreadable (or no memory to read it): fail the request it answers, if any */
            fail_unreadable(child, line, len);
        return;
    }
    dispatch(child, msg);
    json_decref(msg);
}

/* ---- spawn ---- */

static void spawn_failed(mg__slot_t *slot, char *message)
{
    mg_upstream_t *up = slot->up;
    mg__up_set_error(up, message);
    char *cm = mg__fmt("the '%s' server could not be started; ask the gateway's operator", up->server->name);
    mg__up_set_client_error(up, cm);
    mg_log_json(MG_LOG_ERROR, message ? message : "could not start upstream",
                json_pack("{s:s, s:i}", "upstream", up->server->name, "child", (int)slot->index));
    schedule_restart(slot);
    mg__up_attempt_failed(up, MG_ESPAWN, cm ? cm : message);
    free(cm);
    free(message);
}

void mg__child_spawn(mg__slot_t *slot)
{
    mg_upstream_t *up = slot->up;
    const mg_server_config_t *s = up->server;
    slot->generation++;
    /* Not on its PATH, arguments inside "command", a Windows cmd entry, out of sandbox.user's reach:
     * the same sentence `mcpgate check` prints, and nothing is started. */
    char cwhy[1200];
    int rc = mg_upstream_command_check(s, cwhy, sizeof cwhy);
    char *path = NULL;
    if (rc == 0)
        rc = mg__command_resolve(s, &path);
    if (rc != 0) {
        spawn_failed(slot, rc != MG_ENOMEM
                               ? mg__fmt("upstream '%s': %s", s->name, cwhy)
                               : mg__fmt("upstream '%s': out of memory starting '%s'", s->name, s->command));
        return;
    }
    char **argv = calloc(s->nargs + 2, sizeof *argv);
    mg__child_t *child = calloc(1, sizeof *child);
    if (argv == NULL || child == NULL) {
        free(argv);
        free(child);
        free(path);
        spawn_failed(slot, mg__fmt("upstream '%s': out of memory starting '%s'", s->name, s->command));
        return;
    }
    argv[0] = s->command;
    for (size_t i = 0; i < s->nargs; i++)
        argv[i + 1] = s->args[i];
    /* "sandbox" (sandbox.c): refused when a configured control cannot be applied on this machine;
     * otherwise started through `mcpgate __sandbox-exec`, which applies it and then execs the server. */
    char *sb_file = NULL, **sb_argv = NULL;
    if (s->sandbox != NULL) {
        char why[400];
        int src = mg_sandbox_probe(s->sandbox, why, sizeof why);
        if (src == 0 && mg_sandbox_wrap(s->sandbox, path, argv, &sb_file, &sb_argv) != 0)
            snprintf(why, sizeof why, "cannot find the mcpgate binary to run the sandbox wrapper"), src = -1;
        if (src != 0) {
            free(argv);
            free(child);
            free(path);
            spawn_failed(slot, mg__fmt("upstream '%s': sandbox: %s; the server is not started without it",
                                       s->name, why));
            return;
        }
    }

    child->up = up;
    child->slot = slot->index;
    child->generation = slot->generation;
    child->state = MG__CHILD_INIT;
    mg__idtable_init(&child->table);
    mg__list_init(&child->inflight);
    mg__linebuf_init(&child->outbuf, up->max_line, 0);
    mg__linebuf_init(&child->errbuf, MG__STDERR_LINE_MAX, 1);
    uv_pipe_init(up->loop, &child->in, 0);
    uv_pipe_init(up->loop, &child->out, 0);
    uv_pipe_init(up->loop, &child->err, 0);
    uv_timer_init(up->loop, &child->timer);
    child->in.data = child->out.data = child->err.data = child->timer.data = child->proc.data = child;

    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&child->in;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&child->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&child->err;
    uv_process_options_t opt;
    memset(&opt, 0, sizeof opt);
    opt.exit_cb = exit_cb;
    opt.file = sb_file != NULL ? sb_file : path;
    opt.args = sb_argv != NULL ? sb_argv : argv;
    opt.env = up->env;
    opt.cwd = s->cwd;
    opt.flags = UV_PROCESS_DETACHED; /* setsid(): own session and process group */
    opt.stdio_count = 3;
    opt.stdio = stdio;
    rc = uv_spawn(up->loop, &child->proc, &opt);
    /* uv_spawn initialises the process handle even when it fails: 5 handles to close either way. */
    child->proc.data = child;
    child->nopen = 5;
    up->nhandles += 5;
    free(argv);
    free(sb_file);
    mg_sandbox_argv_free(sb_argv);
    if (rc != 0) {
        char *m = s->cwd != NULL
                      ? mg__fmt("upstream '%s': could not start '%s' (cwd '%s'): %s", s->name, path, s->cwd,
                                uv_strerror(rc))
                      : mg__fmt("upstream '%s': could not start '%s': %s", s->name, path, uv_strerror(rc));
        free(path);
        child->finalized = 1;
        close_handles(child);
        spawn_failed(slot, m);
        return;
    }
    free(path);
    child->pid = child->proc.pid;
    slot->child = child;
    uv_read_start((uv_stream_t *)&child->out, alloc_cb, out_read_cb);
    uv_read_start((uv_stream_t *)&child->err, alloc_cb, err_read_cb);
    json_t *f = fields(child);
    json_object_set_new(f, "generation", json_integer(child->generation));
    if (s->sandbox != NULL) {
        char *d = mg_sandbox_describe(s->sandbox);
        json_object_set_new(f, "sandbox", json_string(d ? d : "?"));
        free(d);
    }
    mg_log_json(MG_LOG_INFO, "upstream process started", f);

    child->init_id = slot->next_id++;
    /* Capabilities the gateway can route (upstream.h, opts.exclusive): sampling, elicitation and
     * roots everywhere (on a shared child, routed by evidence: the relatedRequestId hint); roots
     * listChanged only to a child of one client (whose roots list it is). */
    json_t *init =
        json_pack("{s:s, s:I, s:s, s:{s:s, s:{s:{}, s:{s:{}, s:{}}}, s:{s:s, s:s}}}", "jsonrpc", "2.0", "id",
                  (json_int_t)child->init_id, "method", "initialize", "params", "protocolVersion",
                  MG__PROTOCOL_VERSION, "capabilities", "sampling", "elicitation", "form", "url",
                  "clientInfo", "name", up->client_name, "version", up->client_version);
    if (init != NULL)
        json_object_set_new(json_object_get(json_object_get(init, "params"), "capabilities"), "roots",
                            up->exclusive ? json_pack("{s:b}", "listChanged", 1) : json_object());
    if (init == NULL || mg__child_write(child, init) != 0) {
        json_decref(init);
        init_failed(child, mg__fmt("upstream '%s': could not send initialize", s->name),
                    "it could not be initialized");
        return;
    }
    json_decref(init);
    uv_timer_start(&child->timer, init_timeout_cb, up->init_timeout_ms, 0);
}
