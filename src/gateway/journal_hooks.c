/*
 * journal_hooks.c - what the call journal records about a call (the writer and the chain are
 * obs/journal.c): one "call" line per tools/call, prompts/get, resources/read and
 * completion/complete that reached the call phases, written where the call ends (call_finish()).
 *
 * Record members (after journal.h's seq, prev, time, kind):
 *   method     the JSON-RPC method
 *   server     the upstream it was routed to ("" when refused or unknown before routing)
 *   name       the tool or prompt name as the client called it, the resource URI, or the
 *              completion ref's name or URI
 *   argsSha256 SHA-256 of the arguments (compact JSON, keys sorted); "arguments" itself only with
 *              gateway.journal.arguments
 *   outcome    "result" | "toolError" (a tools/call result with isError) | "error" (with "code",
 *              the JSON-RPC error code) | "refused" (with "code" and "rule": rateLimit, pinning,
 *              paramHeaders, authRules, toolFilter) | "cancelled"
 *   us         duration in microseconds (from the call's start to its end)
 *   principal, tenant   the caller's subject and tenant (gateway.auth), absent without auth
 *   client     clientInfo name and version of the session; session: its hash (never its id)
 *   trace      the W3C trace id of the request's traceparent (header, or params._meta), "" when
 *              none (the gateway's own tracing fills it once it exists)
 * Never a token, never an argument value unless asked. Read next: obs/journal.h.
 */
#include "gateway_int.h"
#include "../common/codec.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/str.h"
#include "../obs/journal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int journaled(const char *m)
{
    return strcmp(m, "tools/call") == 0 || strcmp(m, "prompts/get") == 0 ||
           strcmp(m, "resources/read") == 0 || strcmp(m, "completion/complete") == 0;
}

/* The trace id of a W3C traceparent "00-<32 hex>-<16 hex>-<2 hex>" into out, or "". */
static void trace_of(const char *tp, size_t len, char out[33])
{
    out[0] = '\0';
    if (tp == NULL || len < 55 || tp[2] != '-' || tp[35] != '-')
        return;
    for (size_t i = 3; i < 35; i++)
        if (!((tp[i] >= '0' && tp[i] <= '9') || (tp[i] >= 'a' && tp[i] <= 'f')))
            return;
    if (strspn(tp + 3, "0") >= 32)
        return; /* all zeros: invalid */
    memcpy(out, tp + 3, 32);
    out[32] = '\0';
}

void mg__journal_call_start(mg_call_t *c)
{
    if (!journaled(c->method))
        return;
    c->start_ns = uv_hrtime();
    if (c->gw->journal == NULL)
        return;
    json_t *meta = json_object_get(c->params, "_meta");
    const char *tp = json_string_value(json_object_get(meta, "traceparent"));
    if (tp != NULL) {
        trace_of(tp, strlen(tp), c->trace_id);
    } else if (c->x != NULL && c->x->req != NULL) {
        h2o_iovec_t h = mg__req_header(c->x->req, "traceparent", NULL);
        trace_of(h.base, h.len, c->trace_id);
    }
}

/* The journal's name of what was called (borrowed from params), "" when none. */
static const char *name_of(const mg_call_t *c)
{
    const char *m = c->method;
    if (strcmp(m, "resources/read") == 0)
        return json_string_value(json_object_get(c->params, "uri")) ?: "";
    if (strcmp(m, "completion/complete") == 0) {
        json_t *ref = json_object_get(c->params, "ref");
        const char *n = json_string_value(json_object_get(ref, "name"));
        return n ? n : json_string_value(json_object_get(ref, "uri")) ?: "";
    }
    return json_string_value(json_object_get(c->params, "name")) ?: "";
}

static const json_t *arguments_of(const mg_call_t *c)
{
    if (strcmp(c->method, "completion/complete") == 0)
        return json_object_get(c->params, "argument");
    return json_object_get(c->params, "arguments");
}

void mg__journal_call_end(mg_call_t *c, const json_t *resp)
{
    mg_gateway_t *gw = c->gw;
    if (gw->journal == NULL || c->start_ns == 0)
        return;
    json_t *r = json_object();
    if (r == NULL)
        return;
    json_object_set_new(r, "method", json_string(c->method));
    json_object_set_new(r, "server", json_string(mg__call_server(c)));
    json_object_set_new(r, "name", json_string(name_of(c)));
    const json_t *args = arguments_of(c);
    char *text = args != NULL ? json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    char hex[MG_SHA256_HEX];
    mg_sha256_hex(text ? text : "", text ? strlen(text) : 0, hex);
    free(text);
    json_object_set_new(r, "argsSha256", json_string(hex));
    if (gw->cfg->journal.arguments && args != NULL)
        json_object_set_new(r, "arguments", mg_json_deep_copy(args));
    int code;
    mg__outcome_t o = mg__call_outcome(c, resp, &code);
    json_object_set_new(r, "outcome", json_string(mg__outcome_name(o)));
    if (o == MG__OUTCOME_ERROR || o == MG__OUTCOME_REFUSED)
        json_object_set_new(r, "code", json_integer(code));
    if (o == MG__OUTCOME_REFUSED)
        json_object_set_new(r, "rule", json_string(c->refusal));
    json_object_set_new(r, "us", json_integer((json_int_t)((uv_hrtime() - c->start_ns) / 1000)));
    mg_principal_t *p = c->principal;
    if (p != NULL) {
        json_object_set_new(r, "principal", json_string(p->subject ? p->subject : ""));
        json_object_set_new(r, "tenant", json_string(p->tenant ? p->tenant : ""));
    }
    mg_session_t *s = c->s;
    if (s != NULL && s != gw->stateless) {
        json_object_set_new(r, "session", json_string(s->hash));
    }
    const json_t *ci = s != NULL ? s->client_info : NULL;
    const char *cname = json_string_value(json_object_get(ci, "name"));
    const char *cver = json_string_value(json_object_get(ci, "version"));
    if (c->modern) { /* 2026-07-28: clientInfo travels in each request's _meta */
        json_t *mci =
            json_object_get(json_object_get(c->params, "_meta"), "io.modelcontextprotocol/clientInfo");
        if (json_is_object(mci)) {
            cname = json_string_value(json_object_get(mci, "name"));
            cver = json_string_value(json_object_get(mci, "version"));
        }
    }
    if (cname != NULL)
        json_object_set_new(r, "client", json_pack("{s:s,s:s}", "name", cname, "version", cver ? cver : ""));
    json_object_set_new(r, "trace", json_string(c->trace_id));
    mg_journal_append(gw->journal, "call", r);
    json_decref(r);
}

int mg_gateway_journal_open(mg_gateway_t *gw, char *why, size_t whylen)
{
    const mg_journal_config_t *jc = &gw->cfg->journal;
    if (jc->path == NULL)
        return 0;
    mg_journal_opts_t o = {
        .path = jc->path,
        .key = (const unsigned char *)jc->hmac_key,
        .keylen = jc->hmac_key ? strlen(jc->hmac_key) : 0,
        .max_bytes = jc->max_bytes,
        .checkpoint_every = jc->checkpoint_every,
        .checkpoint_ms = jc->checkpoint_ms,
        .queue_bytes = (size_t)jc->queue_bytes,
    };
    json_t *f = json_pack("{s:s,s:I,s:b,s:b}", "version", MG_VERSION, "pid", (json_int_t)getpid(),
                          "arguments", jc->arguments, "keyed", jc->hmac_key != NULL);
    int r = mg_journal_open(gw->loop, &o, f, &gw->journal, why, whylen);
    json_decref(f);
    return r;
}
