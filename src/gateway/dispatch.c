/*
 * dispatch.c - what the gateway does with each MCP message of a session.
 *
 * Requests answered by the gateway itself: initialize (in gateway/era_legacy.c), ping, logging/setLevel,
 * and the four list methods (merged from every upstream, namespaced, paginated). Requests routed
 * to one upstream: tools/call and prompts/get (by exposed name), resources/read, subscribe,
 * unsubscribe (by URI), completion/complete (by ref). Messages from upstreams related to a call go
 * back on that call's exchange; server->client requests get a gateway id ("mg-N") and the client's
 * answer is routed back to the child that asked. Every call ends in call_finish(), exactly once.
 * Read next: gateway/catalog.c (lists, names, routes).
 */
#include "../common/codec.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/mem.h"
#include "../common/str.h"
#include "../jsonrpc/jsonrpc.h"
#include "../jsonrpc/rpcraw.h"
#include "gateway_int.h"
#include "auth_hooks.h"
#include "../policy/hooks.h"
#include "toolsearch_hooks.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *log_levels[] = {"debug", "info",     "notice", "warning",
                                   "error", "critical", "alert",  "emergency"};

static int log_rank(const char *level)
{
    for (int i = 0; i < 8; i++)
        if (level != NULL && strcmp(level, log_levels[i]) == 0)
            return i;
    return -1;
}

json_t *mg__initialize_result(mg_gateway_t *gw, const char *version)
{
    json_t *caps =
        json_pack("{s:{s:b},s:{s:b},s:{s:b,s:b},s:{},s:{}}", "tools", "listChanged", 1, "prompts",
                  "listChanged", 1, "resources", "subscribe", 1, "listChanged", 1, "logging", "completions");
    json_t *tasks = strcmp(version, "2025-11-25") == 0 ? mg__tasks_legacy_caps(gw) : NULL;
    if (tasks != NULL) /* 2025-11-25 experimental tasks (tasks.c); 2026-07-28 has the extension */
        json_object_set_new(caps, "tasks", tasks);
    /* Instructions: each ready upstream's, prefixed with its name when there are several. */
    char *instr = NULL;
    size_t ilen = 0;
    for (size_t i = 0; i < gw->nservers; i++) {
        mg_pool_t *p = gw->servers[i].shared;
        json_t *ir = p ? mg_upstream_init_result(p->up) : NULL;
        const char *text = json_string_value(json_object_get(ir, "instructions"));
        if (text == NULL || text[0] == '\0' || !mg_policy_instructions_allowed(gw->policy, i))
            continue;
        size_t add = strlen(text) + strlen(gw->servers[i].cfg->name) + 8;
        char *n = realloc(instr, ilen + add);
        if (n == NULL)
            break;
        instr = n;
        ilen += (size_t)snprintf(instr + ilen, add, gw->nservers > 1 ? "%s%s: %s" : "%s%.0s%s",
                                 ilen ? "\n\n" : "", gw->servers[i].cfg->name, text);
    }
    json_t *res =
        json_pack("{s:s,s:o,s:{s:s,s:s,s:s}}", "protocolVersion", version, "capabilities", caps, "serverInfo",
                  "name", "mcpgate", "title", "mcpgate MCP gateway", "version", MG_VERSION);
    if (instr != NULL) {
        json_object_set_new(res, "instructions", json_string(instr));
        free(instr);
    }
    return res;
}

/* ---- traces (gateway.tracing; docs/operations.md#tracing) ----
 * A call is one MCP server span, named "{method} {tool or prompt}" with the OpenTelemetry MCP
 * attributes, child of the request's params._meta traceparent when it carries one, else of its
 * HTTP request's span; a request that is not traced gets no span. Its call phases may have child
 * spans (call_phases[].span), each upstream request is a client span whose context goes to the
 * upstream in params._meta (traceparent, tracestate), and each MRTR round is a span. Never argument
 * values, tokens or the session id itself (its hash). */

/* Decimal or string form of a JSON-RPC id into out (n >= 24). */
static const char *id_text(const json_t *id, char *out, size_t n)
{
    if (!json_is_integer(id)) {
        mg_strlcpy(out, n, json_string_value(id) ? json_string_value(id) : "");
        return out;
    }
    json_int_t v = json_integer_value(id);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    char tmp[24], *q = tmp + sizeof tmp;
    *--q = '\0';
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--q = '-';
    mg_strlcpy(out, n, q);
    return out;
}

/* "{method}" or "{method} {target}" (target cut at 120 bytes) into out: a span name. */
static const char *span_name(const char *method, const char *target, char *out, size_t n)
{
    size_t m = strlen(method), t = target ? strnlen(target, 120) : 0;
    if (m + 1 + t + 1 > n)
        t = 0;
    memcpy(out, method, m);
    if (t > 0) {
        out[m] = ' ';
        memcpy(out + m + 1, target, t);
        m += 1 + t;
    }
    out[m] = '\0';
    return out;
}

/* The target of the span name: the tool or prompt name, else nothing (low cardinality only). */
static const char *span_target(const mg_call_t *c)
{
    if (strcmp(c->method, "tools/call") == 0 || strcmp(c->method, "prompts/get") == 0)
        return json_string_value(json_object_get(c->params, "name"));
    return NULL;
}

static void call_span_start(mg_call_t *c)
{
    mg_trace_ctx_t meta_ctx;
    const mg_trace_ctx_t *parent = c->x != NULL ? c->x->trace_parent : NULL;
    json_t *meta = mg__params_lack(c, c->params, MG__PK_META) ? NULL : json_object_get(c->params, "_meta");
    const char *tp = json_string_value(json_object_get(meta, "traceparent"));
    const char *ts = json_string_value(json_object_get(meta, "tracestate"));
    if (tp != NULL && mg_trace_ctx_parse(tp, strlen(tp), ts, ts ? strlen(ts) : 0, &meta_ctx) == 0)
        parent = &meta_ctx; /* the MCP convention: _meta first */
    if (parent == NULL)
        return; /* the HTTP request was not sampled */
    const char *target = span_target(c);
    char name[192], idb[80];
    span_name(c->method, target, name, sizeof name);
    mg_span_t *sp = c->span = mg_span_start(c->gw->trace, name, MG_SPAN_SERVER, NULL, parent);
    if (sp == NULL)
        return;
    if (strcmp(c->method, "tools/call") == 0) { /* the commonest: its two constant attributes as a set */
        mg_span_attrs_t **set = &c->gw->trace_tool_attrs;
        if (*set == NULL) {
            const char *kv[] = {"mcp.method.name", "tools/call", "gen_ai.operation.name", "execute_tool"};
            *set = mg_span_attrs_new(kv, 2);
        }
        mg_span_add_attrs(sp, *set);
    } else {
        mg_span_set_str(sp, "mcp.method.name", c->method);
    }
    if (target != NULL)
        mg_span_set_str(sp, c->method[0] == 't' ? "gen_ai.tool.name" : "gen_ai.prompt.name", target);
    if (c->client_id != NULL)
        mg_span_set_str(sp, "jsonrpc.request.id", id_text(c->client_id, idb, sizeof idb));
    mg_session_t *s = c->s;
    int modern = s == c->gw->stateless; /* c->modern is set after call_new() */
    const char *kv[] = {"mcp.protocol.version", modern ? MG_MODERN_VERSION : s->version,
                        "mcp.session.id",       modern ? NULL : s->hash, /* a hash: the id is a credential */
                        "network.transport",    "tcp"};
    if (s->version[0] == '\0' && !modern) { /* not initialized yet: nothing to keep */
        for (size_t i = 0; i < 3; i++)
            mg_span_set_str(sp, kv[2 * i], kv[2 * i + 1]);
    } else { /* the same for every call of the session: a set made at its first traced call */
        if (s->span_attrs == NULL)
            s->span_attrs = mg_span_attrs_new(kv, 3);
        mg_span_add_attrs(sp, s->span_attrs);
    }
    if (c->principal != NULL) {
        char ph[13];
        mg_strlcpy(ph, sizeof ph, c->principal->key);
        mg_span_set_str(sp, "mcpgate.principal.hash", ph);
        if (c->principal->tenant != NULL && c->principal->tenant[0])
            mg_span_set_str(sp, "mcpgate.tenant", c->principal->tenant);
    }
}

/* Outcome attributes of a span from the answer's outcome (mg__call_outcome: looked up once per
 * call, shared with the journal and /status). */
static void span_outcome(mg_span_t *sp, mg__outcome_t o, int code)
{
    if (sp == NULL)
        return;
    char text[24];
    if (o == MG__OUTCOME_CANCELLED) {
        mg_span_set_str(sp, "error.type", "cancelled");
        mg_span_set_error(sp, "cancelled");
    } else if (o == MG__OUTCOME_ERROR || o == MG__OUTCOME_REFUSED) {
        /* The code only: an upstream's message may quote the arguments. */
        snprintf(text, sizeof text, "%d", code);
        mg_span_set_str(sp, "rpc.response.status_code", text);
        mg_span_set_str(sp, "error.type", text);
        mg_span_set_error(sp, text);
    } else if (o == MG__OUTCOME_TOOL_ERROR) {
        mg_span_set_str(sp, "error.type", "tool_error");
        mg_span_set_error(sp, "tool_error");
    }
}

static void call_spans_end(mg_call_t *c, mg__outcome_t o, int code)
{
    if (c->span == NULL && c->up_span == NULL && c->phase_span == NULL && c->round_span == NULL)
        return;
    uint64_t now = mg_trace_now_ns(); /* they end together: one clock read */
    mg_span_end_at(c->phase_span, now);
    span_outcome(c->up_span, o, code);
    mg_span_end_at(c->up_span, now);
    mg_span_end_at(c->round_span, now);
    c->phase_span = c->up_span = c->round_span = NULL;
    if (c->span == NULL)
        return;
    const mg_pool_t *p = c->pool != NULL ? c->pool : c->route_pool;
    if (p != NULL)
        mg_span_set_str(c->span, "mcpgate.server", p->srv->cfg->name);
    span_outcome(c->span, o, code);
    mg_span_end_at(c->span, now);
    c->span = NULL;
}

/* The upstream request's client span. Its context (traceparent into tp, tracestate) goes to the
 * upstream with the request (mg_upstream_caller_t: written into params._meta there, the client's
 * params left as they are). 1 with tp filled and *ts set (NULL: none), 0 when no span. */
static int up_span_start(mg_call_t *c, mg_pool_t *pool, const json_t *params, char tp[MG_TRACEPARENT_LEN + 1],
                         const char **ts)
{
    const char *target = span_target(c) != NULL ? json_string_value(json_object_get(params, "name")) : NULL;
    char name[192];
    span_name(c->method, target, name, sizeof name);
    mg_span_t *sp = c->up_span = mg_span_start(c->gw->trace, name, MG_SPAN_CLIENT, c->span, NULL);
    if (sp == NULL)
        return 0;
    mg_span_set_str(sp, "mcp.method.name", c->method);
    if (target != NULL)
        mg_span_set_str(sp, c->method[0] == 't' ? "gen_ai.tool.name" : "gen_ai.prompt.name", target);
    mg_gw_server_t *srv = pool->srv;
    if (srv->span_attrs == NULL) { /* the set naming the server: made again when a reload changes it */
        const char *kv[] = {"mcpgate.server", srv->cfg->name, "network.transport",
                            srv->cfg->remote != NULL ? "tcp" : "pipe"};
        srv->span_attrs = mg_span_attrs_new(kv, 2);
    }
    mg_span_add_attrs(sp, srv->span_attrs);
    if (!mg_span_traceparent(sp, tp, MG_TRACEPARENT_LEN + 1))
        return 0;
    *ts = mg_span_tracestate(sp);
    return 1;
}

/* ---- calls ---- */

static mg_call_t *call_new(mg_gateway_t *gw, mg_session_t *s, mg_exchange_t *x, json_t *msg,
                           const char *method /* msg's, or NULL: read it */)
{
    mg_call_t *c = mg_zalloc(sizeof(*c));
    if (c == NULL)
        return NULL;
    c->gw = gw;
    c->s = s;
    c->x = x;
    c->client_id = json_incref(mg_rpc_id(msg));
    mg_strlcpy(c->method, sizeof c->method, method != NULL ? method : mg_rpc_method(msg));
    /* the lent body's "params" is params_of (ADR 0019): no lookup */
    c->params = json_incref(x->params_of != NULL && msg == x->params_msg ? (json_t *)x->params_of
                                                                         : mg_rpc_params(msg));
    c->msg = json_incref(msg);
    c->caps = json_incref(s->caps);
    c->log_rank = s->log_rank;
    c->principal = mg_principal_ref(x->principal); /* kept while parked (MRTR): resumes check it */
    c->task_support = -1;
    if (gw->trace != NULL)
        call_span_start(c);
    mg__exchange_ref(x);
    mg__session_ref(s);
    c->next = s->calls;
    if (s->calls)
        s->calls->prev = c;
    s->calls = c;
    s->ncalls++;
    gw->live_calls++;
    gw->calls_total++;
    mg__journal_call_start(c);
    return c;
}

/* The one completion of a call: answers through its exchange and releases it. resp borrowed;
 * NULL ends the call unanswered (call_drop). raw (call_finish_raw): the answer is an upstream's
 * result kept as bytes, and resp only its outcome's stand-in (outcome_of_raw). */
static void call_end(mg_call_t *c, const json_t *resp, const mg_rpc_raw_t *raw)
{
    if (c->finished)
        return;
    c->finished = 1;
    int code;
    mg__outcome_t oc = mg__call_outcome(c, resp, &code); /* once, for the spans, journal and /status */
    call_spans_end(c, oc, code);
    mg__journal_call_end(c, oc, code);
    mg__status_call_end(c, resp, oc, code);
    if (c->rate_job != NULL)
        mg_policy_rate_cancel(&c->rate_job); /* its shared-store answer is dropped */
    if (c->fwd != NULL)
        mg__cluster_call_done(c); /* forwarded to another replica: stop listening to it */
    if (c->task != NULL)
        mg__task_call_ended(c, resp); /* the task's outcome (tasks.c); the call goes on ending */
    if (c->task_waiting)
        mg__task_unwait(c); /* a 2025-11-25 tasks/result that no longer waits */
    mg_session_t *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else if (s->calls == c)
        s->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->ncalls--;
    c->gw->live_calls--;
    for (mg_outreq_t *o = s->outreqs; o != NULL; o = o->next)
        if (o->call == c)
            o->call = NULL;
    if (c->park_key[0] != '\0')
        mg_map_del(&c->gw->parked, c->park_key);
    if (c->x != NULL && resp == NULL) {
        mg__exchange_abandon(c->x); /* cancelled: no answer */
        mg__exchange_unref(c->x);
    } else if (c->x != NULL) {
        if (raw != NULL) {
            mg__exchange_respond_raw(c->x, raw, c->client_id);
        } else if (c->modern) {
            json_t *d = mg_json_deep_copy(resp);
            mg__modern_decorate(c, d);
            mg__exchange_respond(c->x, d);
            json_decref(d);
        } else {
            mg__exchange_respond(c->x, resp);
        }
        mg__exchange_unref(c->x);
    }
    json_decref(c->client_id);
    json_decref(c->params);
    json_decref(c->msg);
    mg_principal_unref(c->principal);
    json_decref(c->caps);
    json_decref(c->final);
    json_decref(c->inputs);
    json_decref(c->missing);
    json_decref(c->prefill);
    free(c);
    mg__session_unref(s);
}

static void call_finish(mg_call_t *c, const json_t *resp)
{
    call_end(c, resp, NULL);
}

/*
 * What call_end's readers of the outcome see of a raw result: {"result":{}} or, when the result
 * says "isError":true, {"result":{"isError":true}} (mg__call_outcome reads nothing more). Made once
 * and kept for the process's life (constants, never modified). Spans and the journal read only the
 * outcome, so they keep the raw path; the hooks that read more of a response (tasks, the 2026
 * decoration) make raw_applies() false.
 */
static const json_t *outcome_of_raw(const mg_rpc_raw_t *raw)
{
    static json_t *plain, *tool_error;
    json_t **slot = raw->is_error ? &tool_error : &plain;
    if (*slot == NULL)
        *slot =
            raw->is_error ? json_pack("{s:{s:b}}", "result", "isError", 1) : json_pack("{s:{}}", "result");
    return *slot;
}

/* 1 when call c may answer an upstream's result as bytes: nothing on its way out reads more than
 * the outcome or changes the response (no task, 2026 decoration, replica relay; spans and the
 * journal take the outcome from the scan) and its exchange answers with one plain JSON body.
 * Checked when the result arrives: an SSE switch may have happened. */
static int raw_applies(const mg_call_t *c)
{
    return c->x != NULL && !c->modern && c->task == NULL && !c->task_want && !c->task_waiting &&
           c->up_task == 0 && c->fwd == NULL && mg__exchange_plain(c->x);
}

static void call_result(mg_call_t *c, json_t *result /* stolen */)
{
    json_t *r = mg_rpc_result(c->client_id, result);
    call_finish(c, r);
    json_decref(r);
}

/* Fails call c with err (an MG_E* code: its JSON-RPC code comes from common/err.h). */
static void call_error(mg_call_t *c, int err, const char *message, json_t *data /* stolen */)
{
    json_t *r = mg_rpc_error(c->client_id, mg_err_jsonrpc_code(err), message, data);
    call_finish(c, r);
    json_decref(r);
}

/*
 * Ends a cancelled call without answering it (2025-11-25 cancellation: the receiver SHOULD NOT
 * respond; 2026-07-28: nothing more is sent once the client closed the stream). A call forwarded
 * here by another replica still gets a final -32800 on its relay, which is how that replica learns
 * it is over (it drops the answer when the cancellation reached it first).
 */
static void call_drop(mg_call_t *c, const char *why)
{
    if (c->x != NULL && c->x->relay != NULL)
        call_error(c, MG_ECANCELLED, why, NULL);
    else
        call_finish(c, NULL);
}

void mg__dispatch_finish(mg_call_t *c, const json_t *resp)
{
    call_finish(c, resp);
}

void mg__dispatch_fail(mg_call_t *c, int err, const char *message, json_t *data)
{
    call_error(c, err, message, data);
}

static void ignore_done_cb(mg_upstream_req_t *ureq, int err, json_t *response, const char *message,
                           void *data)
{
}

/* Releases a closing session's subscriptions on shared pools (unsubscribing the last one upstream). */
static void release_subscriptions(mg_session_t *s)
{
    const char *uri;
    json_t *v;
    json_object_foreach(s->subs, uri, v)
    {
        size_t i = (size_t)json_integer_value(v);
        if (i >= s->gw->nservers)
            continue;
        mg_pool_t *p = s->gw->servers[i].shared;
        if (p == NULL || p->stopping)
            continue;
        json_int_t n = json_integer_value(json_object_get(p->subs, uri));
        if (n > 1) {
            json_object_set_new(p->subs, uri, json_integer(n - 1));
            continue;
        }
        json_object_del(p->subs, uri);
        json_t *m = json_pack("{s:s,s:s,s:{s:s}}", "jsonrpc", "2.0", "method", "resources/unsubscribe",
                              "params", "uri", uri);
        mg_upstream_request(p->up, m, 0, ignore_done_cb, NULL, NULL, NULL);
    }
    json_object_clear(s->subs);
}

void mg__dispatch_session_gone(mg_session_t *s)
{
    release_subscriptions(s);
    while (s->calls != NULL) {
        mg_call_t *c = s->calls;
        if (c->ureq != NULL) {
            mg_upstream_req_t *u = c->ureq;
            c->ureq = NULL;
            mg_upstream_cancel(u, "session closed"); /* done_cb sees ureq == NULL and ignores */
        }
        call_error(c, MG_ECLOSED,
                   c->task != NULL
                       ? "the gateway replica running this task shut down before it finished; call the "
                         "tool again"
                       : "session closed while this request was in flight",
                   NULL);
    }
}

/* ---- server -> client messages ---- */

static void route_server_request(mg_gateway_t *gw, mg_session_t *s, mg_call_t *call, mg_pool_t *pool,
                                 mg_upstream_origin_t origin, json_t *msg)
{
    const char *method = mg_rpc_method(msg);
    json_t *up_id = mg_rpc_id(msg);
    const char *need = NULL;
    if (strcmp(method, "ping") == 0) {
        json_t *r = mg_rpc_result(up_id, json_object());
        mg_upstream_send(pool->up, origin, r);
        json_decref(r);
        return;
    }
    if (strcmp(method, "sampling/createMessage") == 0)
        need = "sampling";
    else if (strcmp(method, "elicitation/create") == 0)
        need = "elicitation";
    else if (strcmp(method, "roots/list") == 0)
        need = "roots";
    const char *refusal = NULL;
    char buf[400];
    if (s == NULL) {
        /* No evidence of whose request this is (upstream.h): it goes to no client. Say what was
         * really the case, to the upstream and (rate-limited) to the operator. */
        unsigned inflight = mg_upstream_inflight(pool->up);
        const char *name = pool->srv->cfg->name;
        if (inflight == 0)
            snprintf(buf, sizeof buf,
                     "mcpgate sent this %s request to no client: no client request was in flight on server "
                     "'%s', which is shared between clients; use \"isolation\": \"session\" for server "
                     "'%s' to give each client its own child",
                     method, name, name);
        else
            snprintf(buf, sizeof buf,
                     "mcpgate sent this %s request to no client: server '%s' is shared between clients and "
                     "the request does not name which of the %u requests in flight it serves "
                     "(params._meta[\"io.mcpgate/relatedRequestId\"]); use \"isolation\": \"session\" for "
                     "server '%s'",
                     method, name, inflight, name);
        refusal = buf;
        pool->srv->unrouted_reqs++;
        mg_log_limited(
            &pool->lim_unrouted, mg_gateway_now_ms(), MG_LOG_WARN, buf,
            json_pack("{s:s,s:s,s:i}", "upstream", name, "method", method, "inflight", (int)inflight));
    } else if (need != NULL && json_object_get(s->caps, need) == NULL) {
        snprintf(buf, sizeof buf, "the client did not declare the %s capability", need);
        refusal = buf;
    }
    if (refusal != NULL) {
        json_t *r = mg_rpc_error(up_id, mg_err_jsonrpc_code(MG_EMETHOD), refusal, NULL);
        mg_upstream_send(pool->up, origin, r);
        json_decref(r);
        return;
    }
    mg_outreq_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return;
    if (gw->cluster != NULL) /* the client's answer may land on any replica: name the one that asked */
        snprintf(o->down_id, sizeof o->down_id, "mg-%s-%llu", mg__cluster_replica(gw),
                 (unsigned long long)++s->next_out);
    else
        snprintf(o->down_id, sizeof o->down_id, "mg-%llu", (unsigned long long)++s->next_out);
    o->pool = pool;
    o->origin = origin;
    o->up_id = json_incref(up_id);
    o->call = call;
    o->next = s->outreqs;
    s->outreqs = o;
    json_t *copy = mg_json_copy(msg);
    json_object_set_new(copy, "id", json_string(o->down_id));
    /* A params._meta["io.mcpgate/inputKey"] hint stays: a session client may itself be a gateway
     * (mcpgate chained behind mcpgate) that serves a 2026-07-28 client under that key. The
     * relatedRequestId hint goes: it names the upstream's id space, which the client does not
     * share (a chained gateway would match it against its own ids); the stream carries the relation. */
    json_t *meta = json_object_get(mg_rpc_params(msg), "_meta");
    if (json_object_get(meta, "io.mcpgate/relatedRequestId") != NULL) {
        json_t *params = mg_json_copy(mg_rpc_params(msg));
        json_t *m2 = mg_json_copy(meta);
        json_object_del(m2, "io.mcpgate/relatedRequestId");
        if (json_object_size(m2) > 0)
            json_object_set_new(params, "_meta", m2);
        else {
            json_decref(m2);
            json_object_del(params, "_meta");
        }
        json_object_set_new(copy, "params", params);
    }
    if (call != NULL)
        mg__exchange_related(call->x, copy);
    else
        mg__session_notify(s, copy);
    json_decref(copy);
}

static int handle_global_notification(mg_gateway_t *gw, mg_pool_t *pool, const json_t *msg)
{
    const char *m = mg_rpc_method(msg);
    mg_session_t *only = pool->owner;
    if (m == NULL)
        return 0;
    if (strcmp(m, "notifications/tools/list_changed") == 0) {
        mg__pool_invalidate(pool, MG_LIST_TOOLS);
        mg__pool_list_changed(gw, pool, MG_LIST_TOOLS);
        return 1;
    }
    if (strcmp(m, "notifications/prompts/list_changed") == 0) {
        mg__pool_invalidate(pool, MG_LIST_PROMPTS);
        mg__pool_list_changed(gw, pool, MG_LIST_PROMPTS);
        return 1;
    }
    if (strcmp(m, "notifications/resources/list_changed") == 0) {
        mg__pool_invalidate(pool, MG_LIST_RESOURCES);
        mg__pool_invalidate(pool, MG_LIST_TEMPLATES);
        mg__pool_list_changed(gw, pool, MG_LIST_RESOURCES);
        return 1;
    }
    if (strcmp(m, "notifications/resources/updated") == 0) {
        const char *uri = json_string_value(json_object_get(mg_rpc_params(msg), "uri"));
        if (uri != NULL && only == NULL && pool->tenant == NULL)
            mg__modern_listeners_notify(gw, 0, uri, msg);
        size_t pos = 0;
        const char *key;
        void *val;
        while (uri != NULL && mg_map_next(&gw->sessions, &pos, &key, &val)) {
            mg_session_t *s = val;
            if ((only == NULL || only == s) && json_object_get(s->subs, uri) != NULL &&
                (pool->tenant == NULL || strcmp(mg__tenant_of(s->principal), pool->tenant) == 0))
                mg__session_notify(s, msg);
        }
        return 1;
    }
    return 0;
}

static int rank_allows(int min_rank, const json_t *msg)
{
    int r = log_rank(json_string_value(json_object_get(mg_rpc_params(msg), "level")));
    return r < 0 ? min_rank < 8 : r >= min_rank;
}

static int level_allows(mg_session_t *s, const json_t *msg)
{
    return rank_allows(s->log_rank, msg);
}

/* Upstream message attributed to no call (from upstream hooks via catalog.c). */
void mg__dispatch_upstream_message(mg_gateway_t *gw, mg_pool_t *pool, mg_upstream_origin_t origin,
                                   json_t *msg)
{
    if (mg_rpc_id(msg) != NULL && mg_rpc_method(msg) != NULL) {
        route_server_request(gw, pool->owner, NULL, pool, origin, msg);
        return;
    }
    if (mg_rpc_method(msg) == NULL || handle_global_notification(gw, pool, msg))
        return;
    mg_session_t *s = pool->owner;
    if (s != NULL) {
        if (strcmp(mg_rpc_method(msg), "notifications/message") != 0 || level_allows(s, msg))
            mg__session_notify(s, msg);
        return;
    }
    if (strcmp(mg_rpc_method(msg), "notifications/tasks/status") == 0) {
        /* The upstream's own task behind a gateway task (up_task): its status message is the task's.
         * The id names it; it is never shown to a client. */
        const char *tid = json_string_value(json_object_get(mg_rpc_params(msg), "taskId"));
        for (mg_call_t *c = gw->stateless->calls; c != NULL && tid != NULL; c = c->next) {
            if (c->pool == pool && c->up_task == 2 && strcmp(c->up_task_id, tid) == 0) {
                if (c->task != NULL)
                    mg__task_note(c, msg);
                return;
            }
        }
    }
    /* A pool shared between clients (or a tenant's), and no evidence of whose this is. A server's
     * log line goes to the sessions that asked for its logs (logging/setLevel at or below its
     * level; of the pool's tenant only); anything else goes to no client: counted and logged. */
    if (strcmp(mg_rpc_method(msg), "notifications/message") == 0) {
        size_t pos = 0, sent = 0;
        const char *key;
        void *val;
        while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
            mg_session_t *t = val;
            if (!t->log_set || t->closing || !level_allows(t, msg))
                continue;
            if (pool->tenant != NULL && strcmp(mg__tenant_of(t->principal), pool->tenant) != 0)
                continue;
            mg__session_notify(t, msg);
            sent++;
        }
        if (sent > 0)
            return; /* else: nobody asked for it, counted and logged below */
    }
    pool->srv->unrouted_notes++;
    char *text = mg_rpc_dump(msg, NULL);
    if (text != NULL && strlen(text) > 300)
        memcpy(text + 297, "...", 4);
    mg_log_limited(&pool->lim_unrouted, mg_gateway_now_ms(), MG_LOG_INFO,
                   "upstream notification not attributable to a client session; not forwarded",
                   json_pack("{s:s,s:s,s:s}", "upstream", pool->srv->cfg->name, "method", mg_rpc_method(msg),
                             "message", text ? text : ""));
    free(text);
}

/* Answers the call's exchange without finishing the call (MRTR): the call stays parked. */
static void detach_with(mg_call_t *c, json_t *resp /* borrowed */)
{
    mg_exchange_t *x = c->x;
    c->x = NULL;
    mg__exchange_respond(x, resp);
    mg__exchange_unref(x);
}

void mg__dispatch_detach(mg_call_t *c, const json_t *resp)
{
    if (c->x == NULL)
        return;
    json_t *d = mg_json_deep_copy(resp);
    if (c->modern)
        mg__modern_decorate(c, d);
    detach_with(c, d);
    json_decref(d);
}

/* Adds one input request under key; answers with every outstanding one when a client waits. */
static void park(mg_call_t *c, json_t *req /* borrowed, may be NULL */, const char *key)
{
    mg_gateway_t *gw = c->gw;
    if (c->inputs == NULL)
        c->inputs = json_object();
    if (req != NULL)
        json_object_set(c->inputs, key, req);
    if (c->park_key[0] == '\0') {
        unsigned char raw[16];
        RAND_bytes(raw, sizeof raw);
        mg_hex_encode(raw, sizeof raw, c->park_key);
        mg_map_set(&gw->parked, c->park_key, c);
    }
    c->park_expires = mg_gateway_now_ms() + gw->cfg->limits.request_timeout_ms;
    if (c->span != NULL && c->round_span == NULL) { /* one span per MRTR round: until the retry */
        c->round_span = mg_span_start(gw->trace, "mcpgate.mrtr_round", MG_SPAN_INTERNAL, c->span, NULL);
        mg_span_set_int(c->round_span, "mcpgate.mrtr.round", ++c->rounds);
    }
    if (c->ureq != NULL)
        mg_upstream_req_set_waiting(c->ureq, 1);
    if (c->x == NULL)
        return; /* delivered when the client retries */
    char *state = mg__modern_request_state(c);
    json_t *result = json_pack("{s:s,s:O}", "resultType", "input_required", "inputRequests", c->inputs);
    if (state != NULL)
        json_object_set_new(result, "requestState", json_string(state));
    free(state);
    json_t *resp = mg_rpc_result(c->client_id, result);
    json_t *d = mg_json_deep_copy(resp);
    mg__modern_decorate(c, d);
    json_object_set_new(json_object_get(d, "result"), "resultType", json_string("input_required"));
    detach_with(c, d);
    json_decref(d);
    json_decref(resp);
}

static void remove_outreqs(mg_call_t *c)
{
    for (mg_outreq_t **pp = &c->s->outreqs; *pp != NULL;) {
        mg_outreq_t *o = *pp;
        if (o->call == c) {
            *pp = o->next;
            json_decref(o->up_id);
            free(o);
            continue;
        }
        pp = &o->next;
    }
}

void mg__dispatch_drop_parked(mg_call_t *c, const char *why)
{
    mg_log_json(MG_LOG_INFO, "suspended request dropped",
                json_pack("{s:s,s:s}", "method", c->method, "reason", why));
    remove_outreqs(c);
    if (c->ureq != NULL) {
        mg_upstream_req_t *u = c->ureq;
        c->ureq = NULL;
        mg_upstream_cancel(u, why);
    }
    call_error(c, MG_EINTERNAL, why, NULL); /* no exchange: nobody hears it; frees the call */
}

int mg__dispatch_deliver_inputs(mg_call_t *c, const json_t *responses)
{
    int n = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)responses, key, val)
    {
        for (mg_outreq_t **pp = &c->s->outreqs; *pp != NULL; pp = &(*pp)->next) {
            mg_outreq_t *o = *pp;
            if (o->call != c || strcmp(o->down_id, key) != 0)
                continue;
            *pp = o->next;
            json_t *r = mg_rpc_result(o->up_id, json_incref(val));
            if (mg_upstream_send(o->pool->up, o->origin, r) != 0)
                mg_log_json(MG_LOG_WARN, "input response dropped: the upstream process restarted",
                            json_pack("{s:s}", "upstream", o->pool->srv->cfg->name));
            json_decref(r);
            json_decref(o->up_id);
            free(o);
            json_object_del(c->inputs, key);
            n++;
            break;
        }
    }
    if (n > 0 && json_object_size(c->inputs) == 0 && c->ureq != NULL)
        mg_upstream_req_set_waiting(c->ureq, 0);
    return n;
}

void mg__dispatch_resume(mg_call_t *c, mg_exchange_t *x, json_t *retry_msg, json_t *responses)
{
    mg_span_end(c->round_span);
    c->round_span = NULL;
    mg__exchange_ref(x);
    c->x = x;
    if (c->ureq != NULL)
        mg_upstream_req_set_waiting(c->ureq, 0);
    json_decref(c->client_id);
    c->client_id = json_incref(mg_rpc_id(retry_msg));
    if (c->pool != NULL)
        snprintf(x->upstream, sizeof x->upstream, "%s", c->pool->srv->cfg->name);
    mg__dispatch_deliver_inputs(c, responses);
    if (c->final != NULL) {
        json_t *f = mg_json_copy(c->final);
        json_object_set(f, "id", c->client_id);
        call_finish(c, f);
        json_decref(f);
        return;
    }
    if (c->ureq == NULL) {
        call_error(c, MG_EUPSTREAM,
                   "the suspended upstream request ended before it could be resumed; call again", NULL);
        return;
    }
    if (json_object_size(c->inputs) > 0) {
        park(c, NULL, NULL); /* still waiting for some answers, or new requests arrived */
        return;
    }
    c->park_expires = 0;
    if (c->task_want) /* a tool that requires a task: its input is in, the rest runs as a task */
        mg__task_promote(c);
}

/* The upstream runs c as its own task (up_task): cancelling the request is not enough, its task
 * is cancelled too (fire and forget). */
static void up_task_cancel(mg_call_t *c)
{
    if (c->up_task != 2 || c->pool == NULL)
        return;
    c->up_task = 0;
    json_t *m = json_pack("{s:s,s:s,s:{s:s}}", "jsonrpc", "2.0", "method", "tasks/cancel", "params", "taskId",
                          c->up_task_id);
    mg_upstream_request(c->pool->up, m, 0, ignore_done_cb, NULL, NULL, NULL);
}

void mg__dispatch_cancel(mg_call_t *c, const char *why)
{
    remove_outreqs(c);
    up_task_cancel(c);
    if (c->ureq != NULL) {
        mg_upstream_req_t *u = c->ureq;
        c->ureq = NULL;
        mg_upstream_cancel(u, why);
    }
    call_finish(c, NULL);
}

void mg__dispatch_adopt(mg_call_t *c, mg_session_t *to)
{
    mg_session_t *s = c->s;
    if (s == to)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else if (s->calls == c)
        s->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->ncalls--;
    c->prev = NULL;
    c->next = to->calls;
    if (to->calls)
        to->calls->prev = c;
    to->calls = c;
    to->ncalls++;
    c->s = to;
    mg__session_ref(to);
    mg__session_unref(s);
}

void mg__dispatch_exchange_gone(mg_exchange_t *x)
{
    mg_session_t *s = x->relay != NULL && x->s != NULL ? x->s : x->gw->stateless;
    for (mg_call_t *c = s->calls; c != NULL;) {
        mg_call_t *next = c->next;
        if (c->x == x && !c->finished) {
            remove_outreqs(c);
            up_task_cancel(c);
            if (c->ureq != NULL) {
                mg_upstream_req_t *u = c->ureq;
                c->ureq = NULL;
                mg_upstream_cancel(u, "client closed the response stream");
            }
            call_drop(c, "cancelled: the client closed the response stream");
        }
        c = next;
    }
}

/*
 * 2026-07-28 has no server->client requests: an upstream's sampling/elicitation/roots request
 * during a modern call becomes an InputRequiredResult. The call is parked (its upstream request
 * stays open) until the client retries with inputResponses and the sealed requestState.
 */
static int key_ok(const char *k)
{
    size_t n = k ? strlen(k) : 0;
    return n > 0 && n <= 64 &&
           strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static void modern_server_request(mg_call_t *c, mg_upstream_origin_t origin, json_t *msg)
{
    const char *method = mg_rpc_method(msg);
    json_t *up_id = mg_rpc_id(msg);
    if (strcmp(method, "ping") == 0) {
        json_t *r = mg_rpc_result(up_id, json_object());
        mg_upstream_send(c->pool->up, origin, r);
        json_decref(r);
        return;
    }
    const char *need = strcmp(method, "sampling/createMessage") == 0 ? "sampling"
                       : strcmp(method, "elicitation/create") == 0   ? "elicitation"
                       : strcmp(method, "roots/list") == 0           ? "roots"
                                                                     : NULL;
    if (need == NULL) {
        json_t *r = mg_rpc_error(up_id, mg_err_jsonrpc_code(MG_EMETHOD),
                                 "method not available to 2026-07-28 clients", NULL);
        mg_upstream_send(c->pool->up, origin, r);
        json_decref(r);
        return;
    }
    /* The key the client answers under: the upstream may name it (documented mcpgate hint
     * params._meta["io.mcpgate/inputKey"]); otherwise the gateway mints one. */
    json_t *params = mg_json_deep_copy(mg_rpc_params(msg) ? mg_rpc_params(msg) : json_object());
    json_t *pmeta = json_object_get(params, "_meta");
    const char *hint = json_string_value(json_object_get(pmeta, "io.mcpgate/inputKey"));
    char key[72];
    mg_session_t *s = c->s;
    if (key_ok(hint) && json_object_get(c->inputs, hint) == NULL)
        snprintf(key, sizeof key, "%s", hint);
    else
        snprintf(key, sizeof key, "in-%llu", (unsigned long long)++s->next_out);
    if (json_is_object(pmeta)) { /* the hints are for the gateway, not the client */
        json_object_del(pmeta, "io.mcpgate/inputKey");
        json_object_del(pmeta, "io.mcpgate/relatedRequestId");
        if (json_object_size(pmeta) == 0)
            json_object_del(params, "_meta");
    }
    /* Answered up front: the request already carried inputResponses for this key. */
    json_t *pre = json_object_get(c->prefill, key);
    if (json_is_object(pre)) {
        json_t *r = mg_rpc_result(up_id, json_incref(pre));
        mg_upstream_send(c->pool->up, origin, r);
        json_decref(r);
        json_object_del(c->prefill, key);
        json_decref(params);
        return;
    }
    mg_outreq_t *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        json_decref(params);
        return;
    }
    snprintf(o->down_id, sizeof o->down_id, "%s", key);
    o->pool = c->pool;
    o->origin = origin;
    o->up_id = json_incref(up_id);
    o->call = c;
    o->next = s->outreqs;
    s->outreqs = o;
    if (c->ureq != NULL)
        mg_upstream_req_set_waiting(c->ureq, 1);
    if (json_object_get(c->caps, need) == NULL) {
        /* The client cannot answer this one: decided when the turn's requests are all in. */
        o->refused = 1;
        if (c->missing == NULL)
            c->missing = json_object();
        json_object_set_new(c->missing, need, json_object());
    } else {
        json_t *req = json_pack("{s:s,s:o}", "method", method, "params", params);
        params = NULL;
        if (c->inputs == NULL)
            c->inputs = json_object();
        json_object_set_new(c->inputs, key, req);
    }
    json_decref(params);
    /* An upstream often asks several things back to back: collect them for ~15 ms, then answer. */
    c->flush_due = 1;
    mg__modern_schedule_flush(c->gw);
}

/* End of a collection window (gateway/era_modern.c's timer): refuse what the client cannot answer, then
 * answer input_required, or 400 -32021 when nothing could be asked. */
void mg__dispatch_flush_inputs(mg_call_t *c)
{
    c->flush_due = 0;
    int askable = json_object_size(c->inputs) > 0;
    if (c->missing != NULL && !askable && c->x != NULL) {
        json_t *missing = c->missing;
        c->missing = NULL;
        remove_outreqs(c);
        if (c->ureq != NULL) {
            mg_upstream_req_t *u = c->ureq;
            c->ureq = NULL;
            mg_upstream_cancel(u, "client lacks a required capability");
        }
        c->x->status = mg_err_http_status(MG_ECAPABILITY);
        char m[200] = "Missing required client capability:";
        const char *k;
        json_t *v;
        json_object_foreach(missing, k, v)
        {
            strncat(m, " ", sizeof m - strlen(m) - 1);
            strncat(m, k, sizeof m - strlen(m) - 1);
        }
        call_error(c, MG_ECAPABILITY, m, json_pack("{s:o}", "requiredCapabilities", missing));
        return;
    }
    /* Some can be asked (or nobody waits): the others get an error upstream. */
    for (mg_outreq_t **pp = &c->s->outreqs; *pp != NULL;) {
        mg_outreq_t *o = *pp;
        if (o->call == c && o->refused) {
            *pp = o->next;
            json_t *r = mg_rpc_error(o->up_id, mg_err_jsonrpc_code(MG_EMETHOD),
                                     "the client did not declare this capability", NULL);
            mg_upstream_send(o->pool->up, o->origin, r);
            json_decref(r);
            json_decref(o->up_id);
            free(o);
            continue;
        }
        pp = &o->next;
    }
    json_decref(c->missing);
    c->missing = NULL;
    if (askable && c->x != NULL)
        park(c, NULL, NULL);
    else if (askable && c->task != NULL)
        mg__task_inputs_changed(c); /* a task asks through tasks/get (input_required) */
}

static void related_cb(mg_upstream_req_t *ureq, mg_upstream_origin_t origin, json_t *msg, void *data)
{
    mg_call_t *c = data;
    if (c->ureq == NULL)
        return;
    if (mg_rpc_id(msg) != NULL && mg_rpc_method(msg) != NULL) {
        if (c->task != NULL && !c->modern) {
            /* A 2025-11-25 task has no way to ask its client (tasks/result would block forever on
             * it): the upstream gets an error it can act on. */
            json_t *r = mg_rpc_error(mg_rpc_id(msg), mg_err_jsonrpc_code(MG_EMETHOD),
                                     "this call runs as a gateway task for a 2025-11-25 client, which "
                                     "cannot answer requests during a task; run it without a task to ask",
                                     NULL);
            mg_upstream_send(c->pool->up, origin, r);
            json_decref(r);
        } else if (c->modern)
            modern_server_request(c, origin, msg);
        else
            route_server_request(c->gw, c->s, c, c->pool, origin, msg);
        return;
    }
    if (handle_global_notification(c->gw, c->pool, msg))
        return;
    const char *m = mg_rpc_method(msg);
    if (m != NULL && strcmp(m, "notifications/progress") == 0)
        mg_upstream_req_touch(ureq);
    if (c->task != NULL && c->x == NULL) {
        mg__task_note(c, msg); /* kept with the task: nobody waits on a stream for it */
        return;
    }
    if (m != NULL && strcmp(m, "notifications/message") == 0 && !rank_allows(c->log_rank, msg))
        return;
    if (c->x != NULL)
        mg__exchange_related(c->x, msg);
}

static void done_cb(mg_upstream_req_t *ureq, int err, json_t *response, const char *message, void *data);

/* The upstream runs the call as its own task (2025-11-25 tasks): after its CreateTaskResult the
 * outcome is asked with tasks/result (which waits for it). Returns 1 when it took the response. */
static int up_task_step(mg_call_t *c, int err, json_t *response)
{
    if (c->up_task != 1 || err != 0)
        return 0;
    const char *tid = json_string_value(
        json_object_get(json_object_get(json_object_get(response, "result"), "task"), "taskId"));
    if (tid == NULL || strlen(tid) >= sizeof c->up_task_id)
        return 0; /* answered without a task: that is the outcome */
    mg_strlcpy(c->up_task_id, sizeof c->up_task_id, tid);
    c->up_task = 2;
    json_t *msg =
        json_pack("{s:s,s:s,s:{s:s}}", "jsonrpc", "2.0", "method", "tasks/result", "params", "taskId", tid);
    int r = mg_upstream_request(c->pool->up, msg, c->gw->cfg->tasks.call_timeout_ms, done_cb, related_cb, c,
                                &c->ureq);
    if (r != 0) {
        c->ureq = NULL;
        call_error(c, r, "the upstream accepted the call as a task, but asking for its outcome failed", NULL);
    }
    return 1;
}

static void done_cb(mg_upstream_req_t *ureq, int err, json_t *response, const char *message, void *data)
{
    mg_call_t *c = data;
    if (c->ureq == NULL)
        return; /* the call already finished (session closed) */
    c->ureq = NULL;
    if (c->up_span != NULL) { /* the upstream answered: its client span ends here */
        json_t *e = err != 0 ? mg_rpc_error(NULL, mg_err_jsonrpc_code(err), "", NULL) : NULL;
        int code;
        mg__outcome_t o = mg__call_outcome(c, e != NULL ? e : response, &code);
        span_outcome(c->up_span, o == MG__OUTCOME_REFUSED ? MG__OUTCOME_ERROR : o, code);
        json_decref(e);
        mg_span_end(c->up_span);
        c->up_span = NULL;
    }
    if (up_task_step(c, err, response))
        return;
    if (c->up_task == 2 && err == 0) { /* the upstream's task id stays between it and the gateway */
        json_t *meta = json_object_get(json_object_get(response, "result"), "_meta");
        json_object_del(meta, "io.modelcontextprotocol/related-task");
    }
    if (c->task != NULL && mg__task_hold(c, err, response, message))
        return; /* the task is still being created: its outcome is written once it exists */
    if (c->x == NULL && c->task == NULL) {
        /* Parked for an MRTR retry: keep the outcome for it. */
        c->final = err != 0 ? mg_rpc_error(c->client_id, mg_err_jsonrpc_code(err),
                                           message ? message : mg_strerror(err), NULL)
                            : mg_json_copy(response);
        return;
    }
    if (err != 0) {
        call_error(c, err, message ? message : mg_strerror(err),
                   json_pack("{s:s}", "upstream", c->pool->srv->cfg->name));
        return;
    }
    /* The client's id goes back in place of ours. Nobody else holds a response with one reference
     * (upstream.c drops it after this callback): rewrite it in place rather than copy it. */
    json_t *r = response->refcount == 1 ? json_incref(response) : mg_json_copy(response);
    json_object_set(r, "id", c->client_id);
    call_finish(c, r);
    json_decref(r);
}

/* The upstream's result as bytes (mg_upstream_raw_cb): answered with the client's id spliced in, or,
 * when something on the way out needs the tree after all, parsed and given to done_cb. */
static void raw_done_cb(mg_upstream_req_t *ureq, const mg_rpc_raw_t *raw, void *data)
{
    mg_call_t *c = data;
    if (c->ureq == NULL)
        return; /* the call already finished (session closed) */
    if (!raw_applies(c)) {
        json_t *m = mg_json_loadb(raw->p, raw->len, 0); /* canonical text: only ENOMEM fails */
        if (m != NULL)
            done_cb(ureq, 0, m, NULL, data);
        else
            done_cb(ureq, MG_ENOMEM, NULL, "out of memory reading the upstream's response", data);
        json_decref(m);
        return;
    }
    const json_t *stand_in = outcome_of_raw(raw);
    if (stand_in == NULL) { /* no memory for the constant: the tree path answers */
        json_t *m = mg_json_loadb(raw->p, raw->len, 0);
        done_cb(ureq, m != NULL ? 0 : MG_ENOMEM, m, m != NULL ? NULL : "out of memory", data);
        json_decref(m);
        return;
    }
    c->ureq = NULL;
    c->raw_outcome = 1 + (raw->is_error ? MG__OUTCOME_TOOL_ERROR : MG__OUTCOME_RESULT);
    call_end(c, stand_in, raw);
}

unsigned mg__params_keys(const json_t *params)
{
    if (!json_is_object(params) || json_object_size(params) > 8)
        return 0;
    unsigned keys = MG__PK_KNOWN;
    for (void *it = json_object_iter((json_t *)params); it != NULL;
         it = json_object_iter_next((json_t *)params, it)) {
        const char *k = json_object_iter_key(it);
        if (k[0] == '_' && strcmp(k, "_meta") == 0) /* (the first byte spares most calls) */
            keys |= MG__PK_META;
        else if (k[0] == 't' && strcmp(k, "task") == 0)
            keys |= MG__PK_TASK;
    }
    return keys;
}

const mg_exchange_t *mg__params_lent(const mg_call_t *c, const json_t *params)
{
    const mg_exchange_t *x = c->x;
    if (x == NULL || x->params_of == NULL || params != x->params_of)
        return NULL;
    return json_object_size(params) == x->params_members ? x : NULL; /* nothing taken off or added */
}

int mg__params_lack(const mg_call_t *c, const json_t *params, unsigned bit)
{
    const mg_exchange_t *x = mg__params_lent(c, params);
    return x != NULL && (x->params_keys & (MG__PK_KNOWN | bit)) == MG__PK_KNOWN;
}

/* 1 when pool's upstream runs tools/call as tasks (2025-11-25 capability tasks.requests.tools.call). */
static int upstream_takes_tasks(mg_pool_t *pool)
{
    json_t *caps = json_object_get(mg_upstream_init_result(pool->up), "capabilities");
    return json_object_get(
               json_object_get(json_object_get(json_object_get(caps, "tasks"), "requests"), "tools"),
               "call") != NULL;
}

static void forward(mg_call_t *c, mg_pool_t *pool, json_t *params /* stolen */)
{
    c->pool = pool;
    if (c->x != NULL)
        mg_strlcpy(c->x->upstream, sizeof c->x->upstream, pool->srv->cfg->name);
    uint64_t timeout = 0;
    if (c->task != NULL || c->task_want || c->task_support > 0)
        timeout = c->gw->cfg->tasks.call_timeout_ms; /* a long call: idle timeout; its cap is below */
    if (params != NULL && strcmp(c->method, "tools/call") == 0) {
        if (!mg__params_lack(c, params, MG__PK_TASK))
            json_object_del(params, "task"); /* the client's task request is the gateway's business */
        if (c->task_support > 0 && (c->task != NULL || c->task_want || c->task_support == 2) &&
            upstream_takes_tasks(pool)) {
            /* The upstream runs it as its task; the gateway asks for the outcome (up_task_step). */
            json_object_set_new(params, "task",
                                json_pack("{s:I}", "ttl", (json_int_t)c->gw->cfg->tasks.ttl_ms));
            c->up_task = 1;
        }
    }
    if (c->modern && params != NULL) { /* MRTR fields are between the client and the gateway */
        json_object_del(params, "inputResponses");
        json_object_del(params, "requestState");
    }
    if (params == NULL)
        params = json_object();
    /* the caller's token, for upstreams that act on its behalf (token exchange); never sent as is */
    mg_upstream_caller_t caller = {.subject_token = NULL};
    char *bearer = NULL;
    if (c->x != NULL && c->x->req != NULL) {
        ssize_t hi = h2o_find_header(&c->x->req->headers, H2O_TOKEN_AUTHORIZATION, -1);
        if (hi >= 0) {
            h2o_iovec_t v = c->x->req->headers.entries[hi].value;
            if (v.len > 7 && strncasecmp(v.base, "Bearer ", 7) == 0)
                bearer = strndup(v.base + 7, v.len - 7);
        }
    }
    caller.subject_token = bearer;
    /* A 2026-07-28 upstream learns what this client can be asked, and its input_required comes
     * back as server->client requests (docs/eras.md): on a session client's stream, or as the
     * gateway's own input_required with its sealed requestState for a 2026-07-28 client (whose
     * retry reaches this parked call, not the upstream). */
    caller.client_capabilities = c->caps;
    caller.translate_inputs = 1;
    if (!c->modern && c->s != NULL && c->s->log_set && c->s->log_rank >= 0 && c->s->log_rank < 8)
        caller.log_level = log_levels[c->s->log_rank]; /* for upstreams without logging/setLevel */
    /* A call the gateway runs as a task lives as long as the task may (its TTL ends it), not
     * limits.maxRequestMs: that cap is for calls a client waits on. */
    uint64_t ttl = c->gw->cfg->tasks.ttl_ms;
    if ((c->task != NULL || c->task_want) && ttl > c->gw->cfg->limits.max_request_ms)
        caller.max_ms = ttl;
    char tp[MG_TRACEPARENT_LEN + 1];
    if (c->span != NULL && params != NULL && up_span_start(c, pool, params, tp, &caller.tracestate))
        caller.traceparent = tp;
    if (c->x != NULL && !c->modern && c->up_task == 0)
        caller.raw_cb = raw_done_cb; /* a plain result may come back as bytes (raw_applies decides) */
    /* The client's params as it sent them (canonical text, lent during its dispatch): copied into
     * the child's line instead of dumped when the message still holds that very object with the
     * members it was read with (phase_forward shares it only when nothing changes it; this checks
     * that nothing was taken off or added). */
    const mg_exchange_t *lent = mg__params_lent(c, params);
    if (lent != NULL) {
        caller.params_of = params;
        caller.params_text = lent->params_text;
        caller.params_len = lent->params_len;
        caller.params_no_meta = mg__params_lack(c, params, MG__PK_META);
    }
    /* {"jsonrpc":"2.0","method":method,"params":params}, built only where the upstream needs it */
    int r = mg_upstream_call(pool->up, &caller, c->method, params, timeout, done_cb, related_cb, c, &c->ureq);
    free(bearer);
    if (r != 0) {
        c->ureq = NULL;
        char m[200];
        snprintf(m, sizeof m, "upstream '%s': %s", pool->srv->cfg->name, mg_strerror(r));
        if (r == MG_EBUSY && c->x != NULL && !c->x->batch) {
            /* Overload is an HTTP matter too: 503 + Retry-After lets clients and balancers back off
             * (the JSON-RPC error still says what happened). */
            c->x->status = mg_err_http_status(MG_EBUSY);
            c->x->retry_after = 1;
        }
        call_error(c, r, m, NULL);
    }
}

/* ---- lists ---- */

typedef struct list_job {
    mg_call_t *call;
    mg_list_kind_t kind;
    json_t **parts; /* per server, [n] */
    size_t n;
    unsigned outstanding;
    void (*then)(struct list_job *);
    json_t *req_msg;
} list_job_t;

static void list_job_free(list_job_t *j)
{
    for (size_t i = 0; i < j->n; i++)
        json_decref(j->parts[i]);
    free(j->parts);
    json_decref(j->req_msg);
    free(j);
}

static void merge_and_answer(list_job_t *j)
{
    mg_call_t *c = j->call;
    mg_gateway_t *gw = c->gw;
    json_t *all = json_array();
    json_t *seen = json_object();
    int named = j->kind == MG_LIST_TOOLS || j->kind == MG_LIST_PROMPTS;
    int oom = all == NULL || seen == NULL;
    for (size_t i = 0; i < j->n && !oom; i++) {
        size_t k;
        json_t *item;
        json_array_foreach(j->parts[i], k, item)
        {
            json_t *copy = mg_json_copy(item);
            if (copy == NULL) {
                oom = 1;
                break;
            }
            if (named) {
                const char *name = json_string_value(json_object_get(item, "name"));
                char *exposed = mg__catalog_expose(&gw->servers[i], name ? name : "");
                if (exposed == NULL) {
                    json_decref(copy);
                    oom = 1;
                    break;
                }
                if (json_object_get(seen, exposed) != NULL) {
                    /* Collision: keep the first, expose the later one with a numeric suffix. */
                    size_t altlen = strlen(exposed) + 16;
                    char *alt = malloc(altlen);
                    if (alt == NULL) {
                        free(exposed);
                        json_decref(copy);
                        oom = 1;
                        break;
                    }
                    for (int n = 2;; n++) {
                        snprintf(alt, altlen, "%s_%d", exposed, n);
                        if (json_object_get(seen, alt) == NULL)
                            break;
                    }
                    mg_log_json(MG_LOG_WARN, "name collision in merged catalog; exposing a suffixed name",
                                json_pack("{s:s,s:s,s:s}", "upstream", gw->servers[i].cfg->name, "name",
                                          exposed, "exposed", alt));
                    free(exposed);
                    exposed = alt;
                }
                if (json_object_set_new(seen, exposed, json_true()) != 0 ||
                    json_object_set_new(copy, "name", json_string(exposed)) != 0) {
                    free(exposed);
                    json_decref(copy);
                    oom = 1;
                    break;
                }
                free(exposed);
            }
            if (j->kind == MG_LIST_TOOLS && /* gateway.tools and server filters (src/toolsearch/) */
                !mg__toolsearch_allows(c, i, json_string_value(json_object_get(item, "name")) ?: "",
                                       json_string_value(json_object_get(copy, "name")) ?: "")) {
                json_decref(copy);
                continue;
            }
            if (!mg__auth_item_allowed(c, j->kind, i, item)) { /* gateway.auth.rules (src/auth/) */
                json_decref(copy);
                continue;
            }
            if (json_array_append_new(all, copy) != 0) {
                oom = 1;
                break;
            }
        }
    }
    json_decref(seen);
    if (oom) {
        json_decref(all);
        list_job_free(j);
        call_error(c, MG_ENOMEM, mg_strerror(MG_ENOMEM), NULL);
        return;
    }
    if (j->kind == MG_LIST_TOOLS) { /* lazy view and compaction, or the search tool's answer */
        json_t *answer = NULL;
        all = mg__toolsearch_tools(c, all, &answer);
        if (answer != NULL || strcmp(c->method, "tools/call") == 0) {
            json_decref(all);
            list_job_free(j);
            if (answer != NULL)
                call_result(c, answer);
            else
                call_error(c, MG_ENOMEM, "out of memory", NULL);
            return;
        }
    }
    /* Downstream pagination. */
    size_t offset = 0, page = 500;
    const char *cursor = json_string_value(json_object_get(c->params, "cursor"));
    if (json_object_get(c->params, "cursor") != NULL) {
        char tail;
        unsigned long off;
        if (cursor == NULL || sscanf(cursor, "mg1.%lu%c", &off, &tail) != 1 || off > json_array_size(all)) {
            json_decref(all);
            list_job_free(j);
            call_error(c, MG_EPARAMS, "Invalid params: unknown or expired cursor", NULL);
            return;
        }
        offset = off;
    }
    json_t *items = json_array();
    for (size_t k = offset; k < json_array_size(all) && k < offset + page; k++)
        json_array_append(items, json_array_get(all, k));
    json_t *res = json_object();
    json_object_set_new(res, mg_list_key(j->kind), items);
    if (offset + page < json_array_size(all)) {
        char nc[40];
        snprintf(nc, sizeof nc, "mg1.%zu", offset + page);
        json_object_set_new(res, "nextCursor", json_string(nc));
    }
    if (j->kind == MG_LIST_TOOLS)
        mg__toolsearch_list_hints(c, res);
    json_decref(all);
    list_job_free(j);
    call_result(c, res);
}

static void part_cb(mg_pool_t *pool, mg_list_kind_t kind, json_t *items, void *data)
{
    list_job_t *j = data;
    size_t i = pool->srv->index;
    json_decref(j->parts[i]);
    j->parts[i] = items ? json_incref(items) : json_array();
    if (--j->outstanding == 0)
        j->then(j);
}

static void gather(mg_call_t *c, mg_list_kind_t kind, void (*then)(list_job_t *), json_t *req_msg)
{
    mg_gateway_t *gw = c->gw;
    list_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->parts = calloc(gw->nservers ? gw->nservers : 1, sizeof(*j->parts))) == NULL) {
        free(j);
        call_error(c, MG_ENOMEM, mg_strerror(MG_ENOMEM), NULL);
        return;
    }
    j->call = c;
    j->n = gw->nservers; /* a reload may add servers while the pools answer */
    j->kind = kind;
    j->then = then;
    j->req_msg = json_incref(req_msg);
    j->outstanding = 1; /* guard until every pool was asked */
    for (size_t i = 0; i < j->n; i++) {
        mg_pool_t *p = mg__pool_for(gw, c->s, c->principal, i);
        j->parts[i] = json_array();
        if (p == NULL)
            continue;
        j->outstanding++;
        mg__pool_list(p, kind, part_cb, j);
    }
    if (--j->outstanding == 0)
        then(j);
}

/* ---- routing by URI (resources) ---- */

/*
 * Subscriptions are per session, but one shared child serves many sessions: the child is
 * subscribed when the first session subscribes to a URI and unsubscribed when the last one leaves;
 * the sessions in between are answered by the gateway.
 */
static void forward_uri(mg_call_t *c, mg_pool_t *p, const char *uri)
{
    if (p == NULL) {
        call_error(c, MG_EUPSTREAMDOWN, "upstream is not available", NULL);
        return;
    }
    if (!mg__auth_name_allowed(c, p->srv->index, uri)) { /* outside the caller's policy: as if absent */
        c->refusal = "authRules";
        call_error(c, strcmp(c->method, "resources/read") == 0 ? MG_ERESOURCE : MG_EPARAMS,
                   "Resource not found", json_pack("{s:s}", "uri", uri));
        return;
    }
    int sub = strcmp(c->method, "resources/subscribe") == 0;
    int unsub = strcmp(c->method, "resources/unsubscribe") == 0;
    if (sub || unsub) {
        int had = json_object_get(c->s->subs, uri) != NULL;
        json_int_t n = json_integer_value(json_object_get(p->subs, uri));
        if (sub && had) {
            call_result(c, json_object());
            return;
        }
        if (unsub && !had) {
            call_result(c, json_object());
            return;
        }
        if (sub) {
            if (c->s->subs == NULL) /* created on first use (session.c) */
                c->s->subs = json_object();
            json_object_set_new(c->s->subs, uri, json_integer((json_int_t)p->srv->index));
            if (mg__session_shared(c->s))
                mg__cluster_record_patch(c->s,
                                         json_pack("{s:{s:I}}", "subs", uri, (json_int_t)p->srv->index));
            json_object_set_new(p->subs, uri, json_integer(n + 1));
            if (n > 0) {
                call_result(c, json_object());
                return;
            }
        } else {
            json_object_del(c->s->subs, uri);
            if (mg__session_shared(c->s))
                mg__cluster_record_patch(c->s, json_pack("{s:{s:n}}", "subs", uri));
            if (n > 1) {
                json_object_set_new(p->subs, uri, json_integer(n - 1));
                call_result(c, json_object());
                return;
            }
            json_object_del(p->subs, uri);
        }
    }
    forward(c, p, mg_json_deep_copy(c->params));
}

static void route_uri_then(list_job_t *j)
{
    mg_call_t *c = j->call;
    const char *uri = json_string_value(json_object_get(c->params, "uri"));
    long i = mg__catalog_route_uri(c->gw, c->s, uri);
    list_job_free(j);
    if (i < 0) {
        if (strcmp(c->method, "resources/read") == 0)
            call_error(c, MG_ERESOURCE, "Resource not found", json_pack("{s:s}", "uri", uri ? uri : ""));
        else
            call_error(c, MG_EPARAMS, "Invalid params: no upstream serves this resource URI", NULL);
        return;
    }
    forward_uri(c, mg__pool_for(c->gw, c->s, c->principal, (size_t)i), uri);
}

static void templates_then(list_job_t *j)
{
    /* Resources are cached now; make sure templates are too, then route. */
    mg_call_t *c = j->call;
    json_t *m = json_incref(j->req_msg);
    list_job_free(j);
    gather(c, MG_LIST_TEMPLATES, route_uri_then, m);
    json_decref(m);
}

static void dispatch_by_uri(mg_call_t *c, json_t *msg)
{
    const char *uri = json_string_value(json_object_get(c->params, "uri"));
    if (uri == NULL) {
        call_error(c, MG_EPARAMS, "Invalid params: \"uri\" (a string) is required", NULL);
        return;
    }
    if (c->gw->nservers == 1) {
        forward_uri(c, mg__pool_for(c->gw, c->s, c->principal, 0), uri);
        return;
    }
    gather(c, MG_LIST_RESOURCES, templates_then, msg);
}

/*
 * ---- the call phases ----
 *
 *   phase    what it decides                                             ends the call with
 *   rate     gateway.rateLimits: token buckets per principal, tenant,   -32029 (HTTP 429)
 *            tool (src/policy/; may wait for the shared store)
 *   route    gateway-answered methods answer here; lists are gathered   -32602 unknown name,
 *            and merged; URIs and completions are routed and            -32603 upstream down
 *            forwarded; a tool or prompt name is routed ONCE to its
 *            server, its original name and pool (c->route_*), within
 *            the caller's rules and the tool filters
 *   verify   pinning / scanning "block": the name must be in the pool's -32040
 *            verified list; 2026-07-28 tools/call: Mcp-Param-* headers  -32020 (HTTP 400)
 *            match the arguments the tool's schema mirrors (both may
 *            wait for the pool's list)
 *   task     tools/call: by the tool's execution.taskSupport and the     -32021 (HTTP 400),
 *            client's task capability, the call becomes a task: a        -32029 (HTTP 429 +
 *            record in the task store, CreateTaskResult answered, the     Retry-After: too many
 *            call goes on without the client (gateway/tasks.c)            unfinished tasks)
 *   forward  the request goes to the pool under its original name; the  (the upstream's answer)
 *            answer comes back through call_finish()
 *
 * A phase returns NEXT (go on), AGAIN (it started a step whose callback, run now or later, goes on
 * with call_run() or ends the call) or DONE (the call ended or was handed to code that ends it).
 * After AGAIN or DONE the call may already be freed: call_run() never touches it again.
 */
typedef enum call_rc { CALL_NEXT, CALL_AGAIN, CALL_DONE } call_rc_t;

static void call_run(mg_call_t *c);

/* gateway.rateLimits (src/policy/): the decision's headers and status go into a plain JSON answer
 * (429, or 503 when the shared store did not answer); a refused call is answered here. */
static void rate_done_cb(void *data, mg_policy_rate_decision_t *d)
{
    mg_call_t *c = data;
    mg_exchange_t *x = c->x;
    if (x != NULL && x->req != NULL && !x->batch && x->stream == NULL) {
        mg__http_add_headers(x->req, &d->headers);
        if (!d->allowed)
            x->status = d->status;
    }
    if (!d->allowed) {
        c->refusal = "rateLimit";
        call_error(c, d->err, d->message, d->data);
        return;
    }
    json_decref(d->data);
    c->phase++;
    call_run(c);
}

static call_rc_t phase_rate(mg_call_t *c)
{
    if (!mg_policy_rate_limited(c->gw->policy, c->method))
        return CALL_NEXT;
    char peer[64]; /* the key of a caller without a principal */
    mg__req_peer(c->x != NULL ? c->x->req : NULL, peer, sizeof peer);
    const mg_principal_t *p = mg__auth_call_principal(c);
    mg_policy_rate_call_t rc = {
        .method = c->method,
        .tool = strcmp(c->method, "tools/call") == 0 ? json_string_value(json_object_get(c->params, "name"))
                                                     : NULL,
        .principal = p != NULL ? p->key : NULL,
        .tenant = p != NULL ? p->tenant : NULL,
        .peer = peer,
        .now_ms = uv_now(c->gw->loop),
    };
    return mg_policy_rate_take(c->gw->policy, &rc, rate_done_cb, c, &c->rate_job) == 0 ? CALL_AGAIN
                                                                                       : CALL_NEXT;
}

static void dispatch_method(mg_call_t *c, json_t *msg);

/* Routes a tool or prompt name once: sets c->route_*; or ends the call (returns DONE). */
static call_rc_t route_by_name(mg_call_t *c, const char *name, mg_list_kind_t kind)
{
    const char *what = kind == MG_LIST_TOOLS ? "tool" : "prompt";
    const char *original = NULL;
    long i = name ? mg__catalog_route_name(c->gw, name, &original) : -1;
    if (i >= 0 && !mg__auth_name_allowed(c, (size_t)i, original)) {
        i = -1; /* outside the caller's policy: answered as unknown, as tools/list never showed it */
        c->refusal = "authRules";
    }
    if (i >= 0 && kind == MG_LIST_TOOLS && !mg__toolsearch_allows(c, (size_t)i, original, name)) {
        i = -1; /* hidden by gateway.tools or the server's tool filter: unknown, as in tools/list */
        c->refusal = "toolFilter";
    }
    if (i < 0) {
        char m[300];
        snprintf(m, sizeof m, "Invalid params: unknown %s '%s'", what, name ? name : "");
        call_error(c, MG_EPARAMS, m, NULL);
        return CALL_DONE;
    }
    mg_pool_t *p = mg__pool_for(c->gw, c->s, c->principal, (size_t)i);
    if (p == NULL) {
        char m[300];
        if (c->modern)
            snprintf(
                m, sizeof m,
                "server '%s' is configured with \"isolation\": \"session\", which needs a session: use a "
                "session-era client (initialize) for it",
                c->gw->servers[i].cfg->name);
        else
            snprintf(m, sizeof m, "upstream '%s' is not available", c->gw->servers[i].cfg->name);
        call_error(c, MG_EUPSTREAMDOWN, m, NULL);
        return CALL_DONE;
    }
    c->route_index = (size_t)i;
    c->route_kind = kind;
    c->route_original = original; /* points into c->params' name: lives as long as the call */
    c->route_name = name;
    c->route_pool = p;
    return CALL_NEXT;
}

static call_rc_t phase_route(mg_call_t *c)
{
    const char *m = c->method;
    if (c->params != NULL && !json_is_object(c->params)) {
        call_error(c, MG_EPARAMS, "Invalid params: params must be an object", NULL);
        return CALL_DONE;
    }
    const char *name = json_string_value(json_object_get(c->params, "name"));
    if (strcmp(m, "tools/call") == 0 && !mg__toolsearch_is_search(c, name))
        return route_by_name(c, name, MG_LIST_TOOLS);
    if (strcmp(m, "prompts/get") == 0)
        return route_by_name(c, name, MG_LIST_PROMPTS);
    dispatch_method(c, c->msg); /* answered by the gateway, or routed by URI / ref and forwarded */
    return CALL_DONE;
}

/* gateway.pinning / gateway.scan "block" (src/policy/): items is the pool's filtered list. */
static void verified_cb(mg_pool_t *p, mg_list_kind_t kind, json_t *items, void *data)
{
    mg_call_t *c = data;
    char why[600];
    json_t *edata = NULL;
    if (!mg_policy_call_verified(c->gw->policy, c->route_index, kind, items, c->route_original, why,
                                 sizeof why, &edata)) {
        c->refusal = "pinning";
        call_error(c, MG_EBLOCKED, why, edata);
        return;
    }
    c->verify_step = 1;
    call_run(c);
}

/* 2026-07-28: the Mcp-Param-* headers must match the arguments the tool's schema mirrors. */
static void param_check_cb(mg_pool_t *p, mg_list_kind_t kind, json_t *tools, void *data)
{
    mg_call_t *c = data;
    json_t *tool = NULL;
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (n != NULL && strcmp(n, c->route_original) == 0) {
            tool = t;
            break;
        }
    }
    char why[300];
    if (tool != NULL &&
        mg__modern_check_params(c->x, tool, json_object_get(c->params, "arguments"), why, sizeof why) != 0) {
        c->x->status = mg_err_http_status(MG_EHEADERMISMATCH);
        c->refusal = "paramHeaders";
        call_error(c, MG_EHEADERMISMATCH, why, NULL);
        return;
    }
    c->verify_step = 2;
    call_run(c);
}

static call_rc_t phase_verify(mg_call_t *c)
{
    if (c->verify_step == 0 && mg_policy_gates_calls(c->gw->policy, c->route_index)) {
        /* Pinning or scanning blocks: only an entry of the verified (filtered) list may be used. */
        mg__pool_list(c->route_pool, c->route_kind, verified_cb, c);
        return CALL_AGAIN;
    }
    if (c->verify_step < 2 && c->modern && c->route_kind == MG_LIST_TOOLS) {
        mg__pool_list(c->route_pool, MG_LIST_TOOLS, param_check_cb, c);
        return CALL_AGAIN;
    }
    return CALL_NEXT;
}

/* Tasks (tasks.c): a tools/call may run as a task; decided once the tool's taskSupport is known. */
static call_rc_t phase_task(mg_call_t *c)
{
    int r = mg__task_phase(c);
    return r == 0 ? CALL_NEXT : r == 1 ? CALL_AGAIN : CALL_DONE;
}

static call_rc_t phase_forward(mg_call_t *c)
{
    /* A shallow copy: only its "name" changes here, and upstream.c copies params/_meta before it
     * replaces a progress token (objects shared with the client's request are never modified). */
    const char *name = c->route_name; /* c->params' "name", as route_by_name read it */
    int same = name != NULL && strcmp(name, c->route_original) == 0; /* no prefix to take off */
    /* Nothing changes the client's params on the way to the upstream when the name stays and no
     * task or 2026 field is taken off or added, and the upstream writes its request from it without
     * touching it (upstream.c copies before it replaces a progress token; remote.c copies before it
     * adds or strips 2026-07-28 _meta keys or MRTR fields; a span's trace context is written into
     * the line or merged into copies, upstream/trace_meta.c): then it is shared, not copied. */
    int share = same && !c->modern && c->task_support <= 0 &&
                (mg__params_lack(c, c->params, MG__PK_TASK) || json_object_get(c->params, "task") == NULL);
    json_t *params = share ? json_incref(c->params) : mg_json_copy(c->params);
    if (params == NULL ||
        (!same && json_object_set_new(params, "name", json_string(c->route_original)) != 0)) {
        json_decref(params);
        call_error(c, MG_ENOMEM, mg_strerror(MG_ENOMEM), NULL);
        return CALL_DONE;
    }
    forward(c, c->route_pool, params);
    return CALL_DONE;
}

static int rate_applies(mg_call_t *c)
{
    return mg_policy_rate_limited(c->gw->policy, c->method);
}

static int verify_applies(mg_call_t *c)
{
    return mg_policy_gates_calls(c->gw->policy, c->route_index) ||
           (c->modern && c->route_kind == MG_LIST_TOOLS);
}

/* span: the name of the child span of a phase (gateway.tracing), from its start until the call moves
 * past it (waits for the shared store or the pool's list included), made when traced(c) says the
 * phase has work for this call; NULL for none. The upstream request's own span starts in forward(). */
static const struct {
    const char *name;
    call_rc_t (*run)(mg_call_t *c);
    const char *span;
    int (*traced)(mg_call_t *c);
} call_phases[] = {
    {"rate", phase_rate, "mcpgate.rate_limit", rate_applies},
    {"route", phase_route, NULL, NULL},
    {"verify", phase_verify, "mcpgate.verify", verify_applies},
    {"task", phase_task, NULL, NULL},
    {"forward", phase_forward, NULL, NULL},
};

#define NCALL_PHASES (sizeof call_phases / sizeof call_phases[0])

/* Ends the phase span once the call moved past its phase; starts the span of the phase about to
 * run when it has work for this call. */
static void call_phase_span(mg_call_t *c)
{
    if (c->phase_span != NULL && c->span_phase != c->phase) {
        mg_span_end(c->phase_span);
        c->phase_span = NULL;
    }
    if (c->span != NULL && c->phase_span == NULL && call_phases[c->phase].span != NULL &&
        call_phases[c->phase].traced(c)) {
        c->phase_span =
            mg_span_start(c->gw->trace, call_phases[c->phase].span, MG_SPAN_INTERNAL, c->span, NULL);
        c->span_phase = c->phase;
    }
}

/* Runs c's phases from c->phase until one ends the call or waits. */
static void call_run(mg_call_t *c)
{
    if (c->cancel_asked && c->task == NULL && !c->finished) {
        call_drop(c, "cancelled by the client"); /* while it waited (notifications/cancelled) */
        return;
    }
    while (c->phase < NCALL_PHASES) {
        call_phase_span(c);
        call_rc_t rc = call_phases[c->phase].run(c);
        if (rc != CALL_NEXT)
            return; /* c may be gone */
        c->phase++;
    }
}

void mg__dispatch_run(mg_call_t *c, int advance)
{
    if (advance)
        c->phase++;
    call_run(c);
}

void mg__dispatch_request(mg_gateway_t *gw, mg_session_t *s, mg_exchange_t *x, json_t *msg)
{
    mg__dispatch_request_m(gw, s, x, msg, NULL);
}

void mg__dispatch_request_m(mg_gateway_t *gw, mg_session_t *s, mg_exchange_t *x, json_t *msg,
                            const char *method)
{
    mg_call_t *c = call_new(gw, s, x, msg, method);
    if (c == NULL) {
        json_t *r = mg_rpc_error(mg_rpc_id(msg), mg_err_jsonrpc_code(MG_ENOMEM), "out of memory", NULL);
        mg__exchange_respond(x, r);
        json_decref(r);
        return;
    }
    if (gw->cluster != NULL && mg__cluster_forward(c, msg))
        return; /* the session's isolated children run on another replica */
    call_run(c);
}

void mg__dispatch_modern(mg_gateway_t *gw, mg_exchange_t *x, json_t *msg, json_t *caps, int log_rank)
{
    mg_call_t *c = call_new(gw, gw->stateless, x, msg, NULL);
    if (c == NULL) {
        json_t *r = mg_rpc_error(mg_rpc_id(msg), mg_err_jsonrpc_code(MG_ENOMEM), "out of memory", NULL);
        mg__exchange_respond(x, r);
        json_decref(r);
        return;
    }
    c->modern = 1;
    json_decref(c->caps);
    c->caps = json_incref(caps);
    c->log_rank = log_rank;
    mg__modern_digest(c->method, c->params, c->digest);
    json_t *pre = json_object_get(c->params, "inputResponses");
    if (json_is_object(pre))
        c->prefill = mg_json_deep_copy(pre);
    if (strcmp(c->method, "server/discover") == 0) {
        call_result(c, mg__modern_discover_result(gw));
        return;
    }
    call_run(c);
}

static void dispatch_method(mg_call_t *c, json_t *msg)
{
    mg_gateway_t *gw = c->gw;
    mg_session_t *s = c->s;
    const char *m = c->method;
    json_t *params = c->params;
    if (strcmp(m, "ping") == 0) {
        call_result(c, json_object());
    } else if (mg__task_is_method(c)) {
        mg__task_method(c); /* tasks/get, tasks/update, tasks/cancel, tasks/result (tasks.c) */
    } else if (strcmp(m, "tools/list") == 0) {
        gather(c, MG_LIST_TOOLS, merge_and_answer, msg);
    } else if (strcmp(m, "prompts/list") == 0) {
        gather(c, MG_LIST_PROMPTS, merge_and_answer, msg);
    } else if (strcmp(m, "resources/list") == 0) {
        gather(c, MG_LIST_RESOURCES, merge_and_answer, msg);
    } else if (strcmp(m, "resources/templates/list") == 0) {
        gather(c, MG_LIST_TEMPLATES, merge_and_answer, msg);
    } else if (strcmp(m, "tools/call") == 0) { /* lazy mode: the gateway's search tool ranks the list */
        gather(c, MG_LIST_TOOLS, merge_and_answer, msg);
    } else if (strcmp(m, "resources/read") == 0 || strcmp(m, "resources/subscribe") == 0 ||
               strcmp(m, "resources/unsubscribe") == 0) {
        dispatch_by_uri(c, msg);
    } else if (strcmp(m, "completion/complete") == 0) {
        json_t *ref = json_object_get(params, "ref");
        const char *type = json_string_value(json_object_get(ref, "type"));
        if (type != NULL && strcmp(type, "ref/prompt") == 0) {
            const char *original = NULL;
            long i =
                mg__catalog_route_name(gw, json_string_value(json_object_get(ref, "name")) ?: "", &original);
            mg_pool_t *p = i >= 0 && mg__auth_name_allowed(c, (size_t)i, original)
                               ? mg__pool_for(gw, s, c->principal, (size_t)i)
                               : NULL;
            if (p == NULL) {
                call_error(c, MG_EPARAMS, "Invalid params: unknown prompt in ref", NULL);
                return;
            }
            json_t *np = mg_json_deep_copy(params);
            json_object_set_new(json_object_get(np, "ref"), "name", json_string(original));
            forward(c, p, np);
        } else if (type != NULL && strcmp(type, "ref/resource") == 0) {
            const char *uri = json_string_value(json_object_get(ref, "uri"));
            long i = gw->nservers == 1 ? 0 : mg__catalog_route_uri(gw, s, uri);
            mg_pool_t *p = i >= 0 && mg__auth_name_allowed(c, (size_t)i, uri)
                               ? mg__pool_for(gw, s, c->principal, (size_t)i)
                               : NULL;
            if (p == NULL) {
                call_result(
                    c, json_pack("{s:{s:[],s:i,s:b}}", "completion", "values", "total", 0, "hasMore", 0));
                return;
            }
            forward(c, p, mg_json_deep_copy(params));
        } else {
            call_error(c, MG_EPARAMS, "Invalid params: ref.type must be ref/prompt or ref/resource", NULL);
        }
    } else if (strcmp(m, "logging/setLevel") == 0) {
        const char *level = json_string_value(json_object_get(params, "level"));
        int r = log_rank(level);
        if (r < 0) {
            call_error(c, MG_EPARAMS,
                       "Invalid params: level must be one of debug, info, notice, warning, error, "
                       "critical, alert, emergency",
                       NULL);
            return;
        }
        s->log_rank = r;
        s->log_set = 1;            /* asked for logs: gets a shared server's unrelated ones at this level */
        if (mg__session_shared(s)) /* every replica forwards at this level from now on */
            mg__cluster_record_patch(s, json_pack("{s:i}", "logLevel", r));
        for (size_t i = 0; i < gw->nservers; i++) {
            mg_pool_t *p = s->pools[i];
            if (p == NULL)
                continue;
            json_t *fwd = json_pack("{s:s,s:s,s:{s:s}}", "jsonrpc", "2.0", "method", "logging/setLevel",
                                    "params", "level", level);
            /* Fire and forget: the answer is not needed; failures are logged by the upstream. */
            mg_upstream_request(p->up, fwd, 0, ignore_done_cb, NULL, NULL, NULL);
        }
        call_result(c, json_object());
    } else {
        char msgbuf[200];
        snprintf(msgbuf, sizeof msgbuf, "Method not found: %s", m);
        call_error(c, MG_EMETHOD, msgbuf, NULL);
    }
}

int mg__dispatch_client_message(mg_gateway_t *gw, mg_session_t *s, json_t *msg, const char **why)
{
    const char *m = mg_rpc_method(msg);
    if (m == NULL) {
        /* A response to a server->client request. */
        json_t *id = mg_rpc_id(msg);
        const char *sid = json_string_value(id);
        for (mg_outreq_t **pp = &s->outreqs; *pp != NULL; pp = &(*pp)->next) {
            mg_outreq_t *o = *pp;
            if (sid == NULL || strcmp(o->down_id, sid) != 0)
                continue;
            *pp = o->next;
            json_t *fwd = mg_json_copy(msg);
            json_object_set(fwd, "id", o->up_id);
            if (mg_upstream_send(o->pool->up, o->origin, fwd) != 0)
                mg_log_json(MG_LOG_WARN,
                            "client answered a server request, but the upstream process that asked "
                            "has restarted; answer dropped",
                            json_pack("{s:s,s:s}", "session", s->hash, "upstream", o->pool->srv->cfg->name));
            json_decref(fwd);
            json_decref(o->up_id);
            free(o);
            return 0;
        }
        if (gw->cluster != NULL && mg__cluster_route_response(s, msg))
            return 0; /* asked by another replica: delivered to it */
        *why = "response id does not match any request this gateway sent to the client";
        return MG_ENOTFOUND;
    }
    if (strcmp(m, "notifications/initialized") == 0) {
        s->initialized = 1;
        return 0;
    }
    if (gw->cluster != NULL)
        mg__cluster_client_notification(s, msg); /* cancellations reach every replica */
    if (strcmp(m, "notifications/cancelled") == 0) {
        /* The upstream is told (notifications/cancelled), the call is freed, and the client gets
         * no response: its POST's SSE stream or HTTP response ends without one (exchange_abandon).
         * Requests the gateway answers itself (lists, ping) are short and finish on their own. */
        json_t *rid = json_object_get(mg_rpc_params(msg), "requestId");
        const char *reason = json_string_value(json_object_get(mg_rpc_params(msg), "reason"));
        for (mg_call_t *c = s->calls; c != NULL; c = c->next) {
            if (rid == NULL || c->finished || !json_equal(rid, c->client_id))
                continue;
            if (c->ureq == NULL && c->fwd == NULL && c->rate_job == NULL) {
                /* waiting for a step that holds c (a list fetch): ended when it comes back */
                if (c->task == NULL)
                    c->cancel_asked = 1;
                break;
            }
            up_task_cancel(c);
            if (c->ureq != NULL) {
                mg_upstream_req_t *u = c->ureq;
                c->ureq = NULL; /* done_cb sees NULL and ignores the cancellation's completion */
                mg_upstream_cancel(u, reason != NULL ? reason : "cancelled by the client");
            }
            call_drop(c, "cancelled by the client");
            break;
        }
        return 0; /* unknown ids are ignored (races are normal) */
    }
    if (strcmp(m, "notifications/roots/list_changed") == 0) {
        for (size_t i = 0; i < gw->nservers; i++)
            if (s->pools[i] != NULL)
                mg_upstream_broadcast(s->pools[i]->up, msg);
        return 0;
    }
    return 0; /* other notifications: accepted, nothing to do */
}
