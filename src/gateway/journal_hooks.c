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
 *   argsSha256 SHA-256 of the arguments as compact JSON, keys in the order the client sent them
 *              (completion/complete: its "argument"); "arguments" itself only with
 *              gateway.journal.arguments
 *   outcome    "result" | "toolError" (a tools/call result with isError) | "error" (with "code",
 *              the JSON-RPC error code) | "refused" (with "code" and "rule": rateLimit, pinning,
 *              paramHeaders, authRules, toolFilter) | "cancelled"
 *   us         duration in microseconds (from the call's start to its end)
 *   principal, tenant   the caller's subject and tenant (gateway.auth), absent without auth
 *   client     clientInfo name and version of the session; session: its hash (never its id)
 *   trace      the W3C trace id of the request's traceparent (header, or params._meta), "" when
 *              none (the call span's trace id when gateway.tracing is on)
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

/* The member of params whose SHA-256 the record carries. */
static const char *arguments_key(const mg_call_t *c)
{
    return strcmp(c->method, "completion/complete") == 0 ? "argument" : "arguments";
}

#define ARGS_MAX (64u * 1024 * 1024) /* the record's bound: larger arguments hash as nothing */

/* SHA-256 of nothing: no arguments, or arguments that cannot be written. */
static const char empty_sha[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* args (may be NULL) as compact JSON into ab (initialised by the caller, bound ARGS_MAX) and its
 * digest into hex: of nothing when absent or when it cannot be written (ab->err then). */
static void dump_args(const json_t *args, mg_jbuf_t *ab, char hex[MG_SHA256_HEX])
{
    if (args != NULL)
        mg_jbuf_put_json(ab, args);
    if (ab->err == 0 && ab->len > 0)
        mg_sha256_hex(ab->p, ab->len, hex);
    else
        memcpy(hex, empty_sha, sizeof empty_sha);
}

void mg__journal_args_sha(const json_t *params, const char *text, size_t len, const char *member,
                          char hex[MG_SHA256_HEX])
{
    /* The canonical text holds the member's dump as it is: hash those bytes (no tree walk). */
    const char *v;
    size_t vl;
    int found = text != NULL ? mg_json_text_member(text, len, member, &v, &vl) : -1;
    if (found == 1 && vl <= ARGS_MAX) {
        mg_sha256_hex(v, vl, hex);
        return;
    }
    if (found == 0) {
        memcpy(hex, empty_sha, sizeof empty_sha);
        return;
    }
    mg_jbuf_t ab;
    char astorage[1024];
    mg_jbuf_init(&ab, astorage, sizeof astorage, ARGS_MAX);
    dump_args(json_object_get(params, member), &ab, hex);
    mg_jbuf_dispose(&ab);
}

void mg__journal_call_start(mg_call_t *c)
{
    if (!journaled(c->method))
        return;
    c->start_ns = uv_hrtime();
    if (c->gw->journal == NULL)
        return;
    /* The arguments' hash now, while the client's params text is lent (ADR 0019): its bytes are
     * hashed as they are, when params is still the object read from them with its members. */
    if (!c->gw->cfg->journal.arguments) {
        const mg_exchange_t *lent = mg__params_lent(c, c->params);
        mg__journal_args_sha(c->params, lent ? lent->params_text : NULL, lent ? lent->params_len : 0,
                             arguments_key(c), c->args_sha);
    }
    if (mg_span_trace_id(c->span, c->trace_id))
        return; /* traced: the call's own trace (the caller's, or a new one) */
    json_t *meta = mg__params_lack(c, c->params, MG__PK_META) ? NULL : json_object_get(c->params, "_meta");
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
    if (c->route_name != NULL) /* tools/call, prompts/get once routed: params' "name" as read */
        return c->route_name;
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

/* Member names are literals written with their quotes, colon and comma in one copy: K("name")
 * gives the text and its length. The record's first member ("method") has no comma before it. */
#define K(name) ",\"" name "\":", sizeof(",\"" name "\":") - 1

static void put_key(mg_jbuf_t *b, const char *k, size_t kl)
{
    mg_jbuf_put(b, k, kl);
}

static void put_kv(mg_jbuf_t *b, const char *k, size_t kl, const char *value)
{
    mg_jbuf_put(b, k, kl);
    mg_jbuf_put_str(b, value, strlen(value));
}

/* A value known to need no escaping (hex digits, the method names and words of this file): the
 * member in one reserved run. */
static void put_kv_plain(mg_jbuf_t *b, const char *k, size_t kl, const char *value)
{
    size_t vl = strlen(value);
    if (mg_jbuf_reserve(b, kl + vl + 2) != 0)
        return;
    char *o = b->p + b->len;
    memcpy(o, k, kl);
    o[kl] = '"';
    memcpy(o + kl + 1, value, vl);
    o[kl + 1 + vl] = '"';
    b->len += kl + vl + 2;
}

/* The record's "session" (s's hash; none for the stateless session) and "client" (name and
 * version of ci, a clientInfo object) members. */
static void put_session_client(mg_jbuf_t *b, const mg_gateway_t *gw, const mg_session_t *s, const json_t *ci)
{
    if (s != NULL && s != gw->stateless)
        put_kv_plain(b, K("session"), s->hash);
    const char *cname = json_string_value(json_object_get(ci, "name"));
    const char *cver = json_string_value(json_object_get(ci, "version"));
    if (cname != NULL) {
        put_key(b, K("client"));
        mg_jbuf_put(b, "{\"name\":", 8);
        mg_jbuf_put_str(b, cname, strlen(cname));
        mg_jbuf_put(b, K("version"));
        mg_jbuf_put_str(b, cver ? cver : "", cver ? strlen(cver) : 0);
        mg_jbuf_put(b, "}", 1);
    }
}

/* A session-era call's "session" and "client" members: the same text for every call of s, written
 * once and kept with it (s->journal_members); NULL when it could not be (written per call then). */
static const char *session_members(const mg_gateway_t *gw, mg_session_t *s)
{
    if (s->journal_members == NULL) {
        char storage[256];
        mg_jbuf_t sb;
        mg_jbuf_init(&sb, storage, sizeof storage, 64u * 1024 * 1024);
        put_session_client(&sb, gw, s, s->client_info);
        s->journal_members = mg_jbuf_steal(&sb, &s->journal_members_len);
    }
    return s->journal_members;
}

/* The record is written as JSON text directly (no jansson tree): it is built on every call. */
void mg__journal_call_end(mg_call_t *c, mg__outcome_t o, int code)
{
    mg_gateway_t *gw = c->gw;
    if (gw->journal == NULL || c->start_ns == 0)
        return;
    char storage[1536];
    mg_jbuf_t b;
    mg_jbuf_init(&b, storage, sizeof storage, 64u * 1024 * 1024);
    put_kv_plain(&b, "\"method\":", sizeof "\"method\":" - 1, c->method); /* first: no comma */
    put_kv(&b, K("server"), mg__call_server(c));
    put_kv(&b, K("name"), name_of(c));
    /* arguments as compact JSON in the client's key order: hashed (at call_new when only the hash
     * is recorded), and written only when asked */
    if (c->args_sha[0] != '\0') {
        put_kv_plain(&b, K("argsSha256"), c->args_sha);
    } else {
        const json_t *args = json_object_get(c->params, arguments_key(c));
        mg_jbuf_t ab;
        char astorage[1024];
        mg_jbuf_init(&ab, astorage, sizeof astorage, ARGS_MAX);
        char hex[MG_SHA256_HEX];
        dump_args(args, &ab, hex);
        put_kv_plain(&b, K("argsSha256"), hex);
        if (gw->cfg->journal.arguments && args != NULL && ab.err == 0) {
            put_key(&b, K("arguments"));
            mg_jbuf_put(&b, ab.p, ab.len);
        }
        mg_jbuf_dispose(&ab);
    }
    put_kv_plain(&b, K("outcome"), mg__outcome_name(o));
    if (o == MG__OUTCOME_ERROR || o == MG__OUTCOME_REFUSED) {
        put_key(&b, K("code"));
        mg_jbuf_put_int(&b, code);
    }
    if (o == MG__OUTCOME_REFUSED)
        put_kv_plain(&b, K("rule"), c->refusal);
    put_key(&b, K("us"));
    mg_jbuf_put_int(&b, (int64_t)((uv_hrtime() - c->start_ns) / 1000));
    mg_principal_t *p = c->principal;
    if (p != NULL) {
        put_kv(&b, K("principal"), p->subject ? p->subject : "");
        put_kv(&b, K("tenant"), p->tenant ? p->tenant : "");
    }
    mg_session_t *s = c->s;
    const char *sm = !c->modern && s != NULL && s != gw->stateless ? session_members(gw, s) : NULL;
    if (sm != NULL) {
        mg_jbuf_put(&b, sm, s->journal_members_len);
    } else {
        const json_t *ci = s != NULL ? s->client_info : NULL;
        if (c->modern) { /* 2026-07-28: clientInfo travels in each request's _meta */
            json_t *mci =
                json_object_get(json_object_get(c->params, "_meta"), "io.modelcontextprotocol/clientInfo");
            if (json_is_object(mci))
                ci = mci;
        }
        put_session_client(&b, gw, s, ci);
    }
    put_kv_plain(&b, K("trace"), c->trace_id);
    if (b.err == 0)
        mg_journal_append_text(gw->journal, "call", b.p, b.len);
    else
        mg_log_json(MG_LOG_WARN, "call journal: a record could not be written (too large, or not UTF-8)",
                    json_pack("{s:s,s:s}", "method", c->method, "server", mg__call_server(c)));
    mg_jbuf_dispose(&b);
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
