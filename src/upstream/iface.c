/*
 * iface.c - the upstream interface (upstream.h): creation picks the implementation for a server's
 * configuration, and every other function dispatches to the implementation's operations. Nothing
 * here knows how an upstream works.
 * Read next: upstream.h (the contract), upstream.c (the stdio child pool), remote.c (a remote server).
 */
#include "upstream.h"
#include "../common/err.h"
#include "remote_int.h"
#include "upstream_int.h"

#define OPS(up)     (*(const mg_upstream_ops_t *const *)(up))
#define REQ_UP(req) (*(mg_upstream_t *const *)(req))

static const char *const state_names[] = {"starting", "ready", "backoff", "stopped"};

int mg_upstream_new(uv_loop_t *loop, const mg_upstream_opts_t *opts, const mg_upstream_hooks_t *hooks,
                    void *hooks_data, mg_upstream_t **out)
{
    /* A server with a url is a remote MCP server (remote.c); one with a command a stdio child pool. */
    if (opts != NULL && opts->server != NULL && opts->server->remote != NULL)
        return mg__remote_new(loop, opts, hooks, hooks_data, out);
    return mg__stdio_new(loop, opts, hooks, hooks_data, out);
}

void mg_upstream_start(mg_upstream_t *up)
{
    OPS(up)->start(up);
}

int mg_upstream_request(mg_upstream_t *up, json_t *msg, uint64_t timeout_ms, mg_upstream_done_cb done_cb,
                        mg_upstream_related_cb related_cb, void *data, mg_upstream_req_t **out)
{
    return OPS(up)->request(up, msg, timeout_ms, done_cb, related_cb, data, out);
}

int mg_upstream_request_as(mg_upstream_t *up, const mg_upstream_caller_t *caller, json_t *msg,
                           uint64_t timeout_ms, mg_upstream_done_cb done_cb,
                           mg_upstream_related_cb related_cb, void *data, mg_upstream_req_t **out)
{
    if (OPS(up)->request_as == NULL) { /* this kind has no use for the caller but its trace context */
        if (caller != NULL && mg__upstream_trace_tree(msg, caller->traceparent, caller->tracestate) != 0) {
            json_decref(msg);
            return MG_ENOMEM;
        }
        return OPS(up)->request(up, msg, timeout_ms, done_cb, related_cb, data, out);
    }
    return OPS(up)->request_as(up, caller, msg, timeout_ms, done_cb, related_cb, data, out);
}

json_t *mg_upstream_msg(const char *method, json_t *params)
{
    /* json_pack("{s:s,s:s,s:o}") without parsing a format per call */
    static json_t *v20; /* "2.0": one immutable string for every message (never freed) */
    if (v20 == NULL)
        v20 = json_string_nocheck("2.0");
    json_t *m = json_string(method);
    json_t *msg = json_object();
    if (params == NULL)
        params = json_object();
    if (msg == NULL || m == NULL || params == NULL) {
        json_decref(msg);
        json_decref(m);
        json_decref(params);
        return NULL;
    }
    if ((json_object_set_new_nocheck(msg, "jsonrpc", json_incref(v20)) |
         json_object_set_new_nocheck(msg, "method", m) |
         json_object_set_new_nocheck(msg, "params", params)) != 0) {
        json_decref(msg); /* each set consumed its value */
        return NULL;
    }
    return msg;
}

int mg_upstream_call(mg_upstream_t *up, const mg_upstream_caller_t *caller, const char *method,
                     json_t *params, uint64_t timeout_ms, mg_upstream_done_cb done_cb,
                     mg_upstream_related_cb related_cb, void *data, mg_upstream_req_t **out)
{
    if (OPS(up)->call != NULL)
        return OPS(up)->call(up, caller, method, params, timeout_ms, done_cb, related_cb, data, out);
    json_t *msg = method != NULL ? mg_upstream_msg(method, params) : (json_decref(params), NULL);
    if (msg == NULL) {
        if (out != NULL)
            *out = NULL;
        return method != NULL ? MG_ENOMEM : MG_EINVAL;
    }
    return mg_upstream_request_as(up, caller, msg, timeout_ms, done_cb, related_cb, data, out);
}

void mg_upstream_cancel(mg_upstream_req_t *req, const char *reason)
{
    if (req != NULL) /* NULL is a no-op, as the contract says */
        OPS(REQ_UP(req))->cancel(req, reason);
}

void mg_upstream_req_set_waiting(mg_upstream_req_t *req, int waiting)
{
    if (req != NULL)
        OPS(REQ_UP(req))->req_set_waiting(req, waiting);
}

void mg_upstream_req_touch(mg_upstream_req_t *req)
{
    if (req != NULL)
        OPS(REQ_UP(req))->req_touch(req);
}

int mg_upstream_req_origin(const mg_upstream_req_t *req, mg_upstream_origin_t *out)
{
    return OPS(REQ_UP(req))->req_origin(req, out);
}

int mg_upstream_send(mg_upstream_t *up, mg_upstream_origin_t origin, const json_t *msg)
{
    return OPS(up)->send(up, origin, msg);
}

void mg_upstream_broadcast(mg_upstream_t *up, const json_t *msg)
{
    OPS(up)->broadcast(up, msg);
}

void mg_upstream_stop(mg_upstream_t *up, uint64_t grace_ms, void (*stopped_cb)(mg_upstream_t *, void *),
                      void *data)
{
    OPS(up)->stop(up, grace_ms, stopped_cb, data);
}

void mg_upstream_free(mg_upstream_t *up)
{
    if (up != NULL)
        OPS(up)->free(up);
}

size_t mg_upstream_pids(const mg_upstream_t *up, int *pids, size_t n)
{
    return OPS(up)->pids(up, pids, n);
}

const char *mg_upstream_kind(const mg_upstream_t *up)
{
    return OPS(up)->kind;
}

const char *mg_upstream_state_name(mg_upstream_state_t s)
{
    return (unsigned)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "unknown";
}

static mg_upstream_status_t status_of(const mg_upstream_t *up)
{
    mg_upstream_status_t st;
    OPS(up)->status(up, &st);
    return st;
}

mg_upstream_state_t mg_upstream_state(const mg_upstream_t *up)
{
    return status_of(up).state;
}

json_t *mg_upstream_init_result(const mg_upstream_t *up)
{
    return status_of(up).init_result;
}

const char *mg_upstream_last_error(const mg_upstream_t *up)
{
    return status_of(up).last_error;
}

const char *mg_upstream_client_error(const mg_upstream_t *up)
{
    return status_of(up).client_error;
}

json_t *mg_upstream_last_stderr(const mg_upstream_t *up)
{
    return status_of(up).last_stderr;
}

unsigned mg_upstream_restarts(const mg_upstream_t *up)
{
    return status_of(up).restarts;
}

unsigned mg_upstream_inflight(const mg_upstream_t *up)
{
    return status_of(up).inflight;
}

unsigned mg_upstream_ready_count(const mg_upstream_t *up)
{
    return status_of(up).ready;
}

const char *mg_upstream_era(const mg_upstream_t *up)
{
    return status_of(up).era;
}

const char *mg_upstream_http_version(const mg_upstream_t *up)
{
    return status_of(up).http;
}

const char *mg_upstream_breaker(const mg_upstream_t *up)
{
    return status_of(up).breaker;
}
