/*
 * verdict.c - the verdicts of `mcpgate audit URL`: pure functions from a recording (audit_int.h)
 * to one result per check. Nothing here sends a byte; test/unit/test_audit.c feeds recorded
 * answers. Rules: a check whose probe did not run or got no answer is `skip` with the reason; a
 * `pass` always names what was seen. Evidence holds status codes, header names and values the
 * target sent, and figures: never a token.
 * Read next: registry.c (ids, fixes), docs/audit.md (the rule of each check).
 */
#include "audit_int.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../config/policy_config.h"
#include "../policy/scan.h"
#include "../toolsearch/toolsearch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct v {
    const json_t *rec, *x;
    mg_audit_report_t *rep;
    int mcp_ok;       /* initialize answered with a result */
    int auth_refused; /* an unauthenticated initialize got 401/403 */
} v_t;

static const json_t *ex(const v_t *v, const char *name)
{
    return json_object_get(v->x, name);
}

static long st(const v_t *v, const char *name)
{
    const json_t *e = ex(v, name);
    return e ? (long)json_integer_value(json_object_get(e, "status")) : -1;
}

static const char *hdr(const v_t *v, const char *name, const char *h)
{
    return json_string_value(json_object_get(json_object_get(ex(v, name), "headers"), h));
}

static const char *body(const v_t *v, const char *name)
{
    const char *b = json_string_value(json_object_get(ex(v, name), "body"));
    return b ? b : "";
}

static const char *err(const v_t *v, const char *name)
{
    const char *e = json_string_value(json_object_get(ex(v, name), "error"));
    return e ? e : "no answer";
}

static int is_true(const v_t *v, const char *key)
{
    return json_is_true(json_object_get(v->rec, key));
}

/* The JSON-RPC error code of the answer, or 0. */
static long rpc_code(const v_t *v, const char *name)
{
    const char *b = body(v, name);
    json_t *msgs = mg_audit_messages(hdr(v, name, "content-type"), b, strlen(b));
    long code = 0;
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        json_t *c = json_object_get(json_object_get(m, "error"), "code");
        if (json_is_integer(c) && code == 0)
            code = (long)json_integer_value(c);
    }
    json_decref(msgs);
    return code;
}

static int has_result(const v_t *v, const char *name)
{
    const char *b = body(v, name);
    json_t *msgs = mg_audit_messages(hdr(v, name, "content-type"), b, strlen(b));
    int ok = 0;
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) ok |= json_is_object(json_object_get(m, "result"));
    json_decref(msgs);
    return ok;
}

static void add(v_t *v, const char *id, mg_audit_status_t s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add(v_t *v, const char *id, mg_audit_status_t s, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    mg_audit_add(v->rep, id, NULL, s, "%s", buf);
}

#define SKIP_UNREACHED "not run: the target did not complete initialize"

/* ---------------------------------------------------------------- transport */

static void transport(v_t *v)
{
    long s = st(v, "init");
    const char *ct = hdr(v, "init", "content-type");
    if (s == 0)
        add(v, "transport.streamable-http", MG_AUDIT_FAIL, "POST initialize: no answer (%s)", err(v, "init"));
    else if (v->mcp_ok)
        add(v, "transport.streamable-http", MG_AUDIT_PASS, "POST initialize: HTTP %ld, %s, session id %s", s,
            ct ? ct : "no Content-Type", hdr(v, "init", "mcp-session-id") ? "issued" : "none (stateless)");
    else if (s == 401 || s == 403)
        add(v, "transport.streamable-http", MG_AUDIT_SKIP,
            "POST initialize: HTTP %ld: authentication needed (give --token)", s);
    else
        add(v, "transport.streamable-http", MG_AUDIT_FAIL,
            "POST initialize: HTTP %ld, %s, no JSON-RPC result", s, ct ? ct : "no Content-Type");

    /* Revisions. */
    if (!v->mcp_ok) {
        add(v, "transport.eras", MG_AUDIT_SKIP, SKIP_UNREACHED);
    } else {
        char list[256] = "";
        size_t i, o = 0;
        json_t *e;
        int current = 0, modern = 0;
        json_array_foreach(json_object_get(v->rec, "eras"), i, e)
        {
            o += (size_t)snprintf(list + o, o < sizeof list ? sizeof list - o : 0, "%s%s", i ? ", " : "",
                                  json_string_value(e));
            current |= strcmp(json_string_value(e), "2025-11-25") == 0;
        }
        char disc[160] = "not offered";
        const json_t *d = json_object_get(v->rec, "discover");
        if (json_is_array(d)) {
            o = 0;
            disc[0] = '\0';
            json_array_foreach(d, i, e)
            {
                const char *sv = json_string_value(e);
                if (sv == NULL)
                    continue;
                o += (size_t)snprintf(disc + o, o < sizeof disc ? sizeof disc - o : 0, "%s%s", o ? ", " : "",
                                      sv);
                modern |= strcmp(sv, "2026-07-28") == 0;
            }
        } else if (st(v, "discover") > 0) {
            snprintf(disc, sizeof disc, "not offered (HTTP %ld)", st(v, "discover"));
        }
        add(v, "transport.eras", current || modern ? MG_AUDIT_PASS : MG_AUDIT_WARN,
            "initialize answered: %s; server/discover: %s", list[0] ? list : "none echoed", disc);
    }

    /* Legacy SSE. */
    long ls = st(v, "legacy_sse");
    const char *lurl = json_string_value(json_object_get(ex(v, "legacy_sse"), "url"));
    const char *lct = hdr(v, "legacy_sse", "content-type");
    if (ls <= 0)
        add(v, "transport.legacy-sse", MG_AUDIT_SKIP, "GET %s: no answer (%s)", lurl ? lurl : "/sse",
            err(v, "legacy_sse"));
    else if (ls == 200 && lct && strstr(lct, "text/event-stream") &&
             strstr(body(v, "legacy_sse"), "endpoint"))
        add(v, "transport.legacy-sse", MG_AUDIT_WARN,
            "GET %s: HTTP 200 text/event-stream with an endpoint event: the deprecated HTTP+SSE transport is "
            "on",
            lurl);
    else
        add(v, "transport.legacy-sse", MG_AUDIT_PASS, "GET %s: HTTP %ld%s%s", lurl, ls, lct ? ", " : "",
            lct ? lct : "");

    /* Plain HTTP. */
    const char *target = json_string_value(json_object_get(v->rec, "target"));
    if (is_true(v, "https"))
        add(v, "transport.plain-http", MG_AUDIT_PASS, "https");
    else if (is_true(v, "loopback"))
        add(v, "transport.plain-http", MG_AUDIT_PASS, "plain http on a loopback address (%s)", target);
    else
        add(v, "transport.plain-http", MG_AUDIT_FAIL,
            "plain http to a non-loopback address (%s): tokens and data "
            "cross the network in clear",
            target);

    /* Reachability beyond loopback. */
    const json_t *b = json_object_get(v->rec, "bind");
    if (!is_true(v, "loopback")) {
        if (st(v, "init") <= 0)
            add(v, "transport.bind", MG_AUDIT_SKIP, SKIP_UNREACHED);
        else
            add(v, "transport.bind", v->auth_refused ? MG_AUDIT_PASS : MG_AUDIT_FAIL,
                "reachable beyond loopback (%s); unauthenticated initialize %s", target,
                v->auth_refused ? "refused" : "accepted");
    } else if (b == NULL) {
        add(v, "transport.bind", MG_AUDIT_SKIP, "not run: no non-loopback address on this machine to try");
    } else {
        const char *a = json_string_value(json_object_get(b, "address"));
        if (json_is_true(json_object_get(b, "reachable")))
            add(v, "transport.bind", v->auth_refused ? MG_AUDIT_PASS : MG_AUDIT_FAIL,
                "also reachable at %s (HTTP %lld): listens beyond loopback, unauthenticated access %s", a,
                (long long)json_integer_value(json_object_get(b, "status")),
                v->auth_refused ? "refused" : "accepted");
        else
            add(v, "transport.bind", MG_AUDIT_PASS,
                "not reachable at %s: loopback only (in a container, bind 0.0.0.0 with auth on)", a);
    }

    /* DNS rebinding. */
    long hs = st(v, "host_foreign"), os = st(v, "origin_foreign");
    if (hs <= 0 || os <= 0)
        add(v, "transport.dns-rebinding", MG_AUDIT_SKIP, "no answer to the foreign Host/Origin probes (%s)",
            hs <= 0 ? err(v, "host_foreign") : err(v, "origin_foreign"));
    else if ((hs >= 200 && hs < 300) || (os >= 200 && os < 300))
        add(v, "transport.dns-rebinding", MG_AUDIT_FAIL,
            "initialize with Host: rebind.mcpgate-audit.invalid -> HTTP %ld; with Origin: "
            "http://rebind.mcpgate-audit.invalid -> HTTP %ld (accepted)",
            hs, os);
    else if (hs >= 400 && os >= 400 && hs < 500 && os < 500)
        add(v, "transport.dns-rebinding", MG_AUDIT_PASS,
            "foreign Host -> HTTP %ld, foreign Origin -> HTTP %ld", hs, os);
    else
        add(v, "transport.dns-rebinding", MG_AUDIT_WARN,
            "foreign Host -> HTTP %ld, foreign Origin -> HTTP %ld (neither accepted nor refused with 4xx)",
            hs, os);

    /* CORS. */
    const char *names[] = {"preflight", "cors_post"};
    int seen = 0;
    mg_audit_status_t cs = MG_AUDIT_PASS;
    char cev[512] = "";
    for (int i = 0; i < 2; i++) {
        long s2 = st(v, names[i]);
        if (s2 <= 0)
            continue;
        seen = 1;
        const char *acao = hdr(v, names[i], "access-control-allow-origin");
        const char *acac = hdr(v, names[i], "access-control-allow-credentials");
        int cred = acac && strcasecmp(acac, "true") == 0;
        size_t o = strlen(cev);
        snprintf(cev + o, sizeof cev - o, "%s%s: HTTP %ld, Access-Control-Allow-Origin %s%s%s", o ? "; " : "",
                 i == 0 ? "preflight from https://cors.mcpgate-audit.invalid" : "POST with that Origin", s2,
                 acao ? acao : "absent", cred ? ", Allow-Credentials true" : "", "");
        if (acao == NULL)
            continue;
        if (strstr(acao, "mcpgate-audit.invalid") != NULL || (strcmp(acao, "*") == 0 && cred))
            cs = MG_AUDIT_FAIL;
        else if (strcmp(acao, "*") == 0 && cs == MG_AUDIT_PASS)
            cs = MG_AUDIT_WARN;
    }
    if (!seen)
        add(v, "transport.cors", MG_AUDIT_SKIP, "no answer to the CORS probes");
    else
        add(v, "transport.cors", cs, "%s", cev);
}

/* ---------------------------------------------------------------- auth */

static int json_str_eq_url(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return 0;
    size_t la = strlen(a), lb = strlen(b);
    while (la > 0 && a[la - 1] == '/')
        la--;
    while (lb > 0 && b[lb - 1] == '/')
        lb--;
    return la == lb && strncasecmp(a, b, la) == 0;
}

static int aud_has(const json_t *aud, const char *res)
{
    if (json_is_string(aud))
        return json_str_eq_url(json_string_value(aud), res);
    size_t i;
    json_t *e;
    json_array_foreach(aud, i, e) if (json_str_eq_url(json_string_value(e), res)) return 1;
    return 0;
}

static void auth(v_t *v)
{
    const char *na = is_true(v, "token") ? "noauth" : "init";
    long s = st(v, na);
    int loop = is_true(v, "loopback");
    if (s <= 0)
        add(v, "auth.required", MG_AUDIT_SKIP, "initialize without a token: no answer (%s)", err(v, na));
    else if (s == 401 || s == 403)
        add(v, "auth.required", MG_AUDIT_PASS, "initialize without a token -> HTTP %ld", s);
    else if (s >= 200 && s < 300 && has_result(v, na))
        add(v, "auth.required", loop ? MG_AUDIT_WARN : MG_AUDIT_FAIL,
            "initialize without a token -> HTTP %ld with a result: anyone who reaches %s can list and call "
            "tools%s",
            s, loop ? "this loopback port" : "the endpoint", loop ? " (loopback only)" : "");
    else
        add(v, "auth.required", MG_AUDIT_WARN,
            "initialize without a token -> HTTP %ld (neither 401 nor a result)", s);

    /* WWW-Authenticate. */
    const char *wa = hdr(v, na, "www-authenticate");
    char rm[1024] = "";
    if (s != 401)
        add(v, "auth.www-authenticate", MG_AUDIT_SKIP,
            "no 401 to look at (initialize without a token -> HTTP %ld)", s);
    else if (wa == NULL)
        add(v, "auth.www-authenticate", MG_AUDIT_FAIL, "401 without WWW-Authenticate");
    else if (mg_audit_auth_param(wa, "resource_metadata", rm, sizeof rm) == 0)
        add(v, "auth.www-authenticate", MG_AUDIT_PASS, "401 WWW-Authenticate: %.300s", wa);
    else
        add(v, "auth.www-authenticate", MG_AUDIT_WARN,
            "401 WWW-Authenticate: %.300s (no resource_metadata: OAuth clients cannot discover the "
            "authorization "
            "server; fine only for tokens handed out by hand)",
            wa);

    /* RFC 9728 / 8414 metadata. */
    const json_t *prm = ex(v, "prm");
    long ps = st(v, "prm");
    const char *purl = json_string_value(json_object_get(prm, "url"));
    if (prm == NULL) {
        add(v, "auth.metadata", MG_AUDIT_SKIP, "not run: authentication is not required");
    } else if (ps != 200) {
        add(v, "auth.metadata", rm[0] ? MG_AUDIT_FAIL : MG_AUDIT_SKIP, "GET %s -> HTTP %ld%s",
            purl ? purl : "PRM", ps,
            rm[0] ? " (the URL the 401 named)" : ": no OAuth metadata offered (static tokens?)");
    } else {
        const char *pb = body(v, "prm");
        json_t *doc = mg_json_loadb(pb, strlen(pb), 0);
        const char *res = json_string_value(json_object_get(doc, "resource"));
        const json_t *ass = json_object_get(doc, "authorization_servers");
        const char *target = json_string_value(json_object_get(v->rec, "target"));
        char prob[512] = "";
        if (!json_is_object(doc))
            snprintf(prob, sizeof prob, "the document is not a JSON object");
        else if (res == NULL)
            snprintf(prob, sizeof prob, "no \"resource\"");
        else if (!json_str_eq_url(res, target))
            snprintf(prob, sizeof prob, "\"resource\" is %.200s, not this URL", res);
        else if (!json_is_array(ass) || json_array_size(ass) == 0)
            snprintf(prob, sizeof prob, "no \"authorization_servers\"");
        const json_t *asm_ = ex(v, "asm");
        long as = st(v, "asm");
        const char *issuer_expected = json_string_value(json_object_get(asm_, "issuer_expected"));
        json_t *adoc = NULL;
        if (!prob[0]) {
            const char *ab = body(v, "asm");
            adoc = as == 200 ? mg_json_loadb(ab, strlen(ab), 0) : NULL;
            const char *iss = json_string_value(json_object_get(adoc, "issuer"));
            const json_t *pk = json_object_get(adoc, "code_challenge_methods_supported");
            int s256 = 0;
            size_t i;
            json_t *e;
            json_array_foreach(pk, i, e) s256 |=
                json_is_string(e) && strcmp(json_string_value(e), "S256") == 0;
            if (asm_ == NULL || as != 200)
                snprintf(prob, sizeof prob,
                         "authorization server metadata (RFC 8414 / OIDC) for %.200s: HTTP %ld",
                         issuer_expected ? issuer_expected : "?", as);
            else if (!json_is_object(adoc) || iss == NULL)
                snprintf(prob, sizeof prob, "authorization server metadata has no issuer");
            else if (!json_str_eq_url(iss, issuer_expected))
                snprintf(prob, sizeof prob, "authorization server metadata issuer %.200s differs from %.200s",
                         iss, issuer_expected);
            else if (json_object_get(adoc, "token_endpoint") == NULL)
                snprintf(prob, sizeof prob, "authorization server metadata has no token_endpoint");
            else if (!s256) {
                add(v, "auth.metadata", MG_AUDIT_WARN,
                    "PRM %s consistent; the authorization server does not list PKCE S256 "
                    "(code_challenge_methods_supported): MCP clients refuse it",
                    purl);
                json_decref(doc);
                json_decref(adoc);
                goto lifetime;
            }
        }
        if (prob[0])
            add(v, "auth.metadata", MG_AUDIT_FAIL, "PRM %s: %s", purl, prob);
        else
            add(v, "auth.metadata", MG_AUDIT_PASS,
                "PRM %s: resource = this URL, authorization server %s: issuer matches, token_endpoint, PKCE "
                "S256",
                purl, issuer_expected);
        json_decref(doc);
        json_decref(adoc);
    }
lifetime:;
    /* Query string. */
    long qs = st(v, "query_token");
    if (qs <= 0)
        add(v, "auth.query-token", MG_AUDIT_SKIP, "no answer to the query-credential probe (%s)",
            err(v, "query_token"));
    else if (qs >= 400 && qs < 500)
        add(v, "auth.query-token", MG_AUDIT_PASS, "?access_token=<fake credential> -> HTTP %ld", qs);
    else
        add(v, "auth.query-token", MG_AUDIT_WARN,
            "?access_token=<fake credential> -> HTTP %ld: credentials in the query string are not refused "
            "(they end up in logs and proxies)",
            qs);

    /* Token lifetime and audience (the payload only; never the token). */
    const json_t *jwt = json_object_get(v->rec, "jwt");
    if (!is_true(v, "token")) {
        add(v, "auth.token-lifetime", MG_AUDIT_SKIP, "not run: needs --token");
        add(v, "auth.token-audience", MG_AUDIT_SKIP, "not run: needs --token");
    } else if (jwt == NULL) {
        add(v, "auth.token-lifetime", MG_AUDIT_SKIP,
            "the token is opaque (not a JWT): its lifetime is not visible");
        add(v, "auth.token-audience", MG_AUDIT_SKIP,
            "the token is opaque (not a JWT): its audience is not visible");
    } else {
        json_t *exp = json_object_get(jwt, "exp"), *iat = json_object_get(jwt, "iat");
        if (!json_is_number(exp))
            add(v, "auth.token-lifetime", MG_AUDIT_FAIL, "the token has no exp: it never expires");
        else {
            double life =
                json_number_value(exp) - (json_is_number(iat) ? json_number_value(iat) : (double)time(NULL));
            add(v, "auth.token-lifetime", life <= 3600 ? MG_AUDIT_PASS : MG_AUDIT_WARN, "exp - %s = %.0f s%s",
                json_is_number(iat) ? "iat" : "now", life, life <= 3600 ? "" : " (over 1 hour)");
        }
        json_t *aud = json_object_get(jwt, "aud");
        const char *pb = body(v, "prm");
        json_t *doc = st(v, "prm") == 200 ? mg_json_loadb(pb, strlen(pb), 0) : NULL;
        const char *res = json_string_value(json_object_get(doc, "resource"));
        const char *target = json_string_value(json_object_get(v->rec, "target"));
        if (aud == NULL)
            add(v, "auth.token-audience", MG_AUDIT_FAIL, "the token has no aud: it is valid at any resource");
        else if (aud_has(aud, target) || (res && aud_has(aud, res)))
            add(v, "auth.token-audience", MG_AUDIT_PASS, "aud names this resource");
        else
            add(v, "auth.token-audience", MG_AUDIT_WARN, "aud does not name this resource (%s)",
                res ? res : target);
        json_decref(doc);
    }
    long oa = st(v, "other_audience");
    if (oa < 0)
        add(v, "auth.other-audience", MG_AUDIT_SKIP, "not run: needs --token-other-audience");
    else if (oa == 401 || oa == 403)
        add(v, "auth.other-audience", MG_AUDIT_PASS,
            "initialize with a token for another audience -> HTTP %ld", oa);
    else if (oa >= 200 && oa < 300)
        add(v, "auth.other-audience", MG_AUDIT_FAIL,
            "initialize with a token for another audience -> HTTP %ld: accepted", oa);
    else
        add(v, "auth.other-audience", MG_AUDIT_SKIP, "initialize with a token for another audience: %s",
            oa == 0 ? err(v, "other_audience") : "neither accepted nor refused");
}

/* ---------------------------------------------------------------- sessions, tenant */

static void sessions(v_t *v)
{
    const json_t *ids = json_object_get(v->rec, "session_ids");
    int stateless = v->mcp_ok && hdr(v, "init", "mcp-session-id") == NULL;
    if (!v->mcp_ok) {
        add(v, "session.id-entropy", MG_AUDIT_SKIP, SKIP_UNREACHED);
        add(v, "session.unknown-404", MG_AUDIT_SKIP, SKIP_UNREACHED);
        add(v, "session.other-principal", MG_AUDIT_SKIP, SKIP_UNREACHED);
        add(v, "session.replica", MG_AUDIT_SKIP, SKIP_UNREACHED);
        add(v, "tenant.cross-session", MG_AUDIT_SKIP, SKIP_UNREACHED);
        return;
    }
    if (stateless) {
        add(v, "session.id-entropy", MG_AUDIT_SKIP, "no Mcp-Session-Id issued: stateless server");
        add(v, "session.unknown-404", MG_AUDIT_SKIP, "no Mcp-Session-Id issued: stateless server");
        add(v, "session.other-principal", MG_AUDIT_SKIP, "no Mcp-Session-Id issued: stateless server");
        add(v, "session.replica", MG_AUDIT_PASS,
            "no Mcp-Session-Id issued: stateless, any replica can answer");
        add(v, "tenant.cross-session", MG_AUDIT_SKIP, "no Mcp-Session-Id issued: no sessions to compare");
        return;
    }
    size_t n = json_array_size(ids);
    double bits = mg_audit_id_bits(ids);
    const char *first = json_string_value(json_array_get(ids, 0));
    size_t len = first ? strlen(first) : 0;
    if (n < 2)
        add(v, "session.id-entropy", MG_AUDIT_SKIP, "only %zu session id collected", n);
    else if (bits == 0)
        add(v, "session.id-entropy", MG_AUDIT_FAIL,
            "%zu session ids, two equal or no randomness between them", n);
    else
        add(v, "session.id-entropy",
            bits >= 120  ? MG_AUDIT_PASS
            : bits >= 64 ? MG_AUDIT_WARN
                         : MG_AUDIT_FAIL,
            "%zu ids of %zu characters: about %.0f bits of randomness each (estimate)", n, len, bits);

    long us = st(v, "unknown_session");
    if (us <= 0)
        add(v, "session.unknown-404", MG_AUDIT_SKIP, "no answer (%s)", err(v, "unknown_session"));
    else if (us == 404)
        add(v, "session.unknown-404", MG_AUDIT_PASS, "tools/list with an unknown Mcp-Session-Id -> HTTP 404");
    else if (us >= 200 && us < 300)
        add(v, "session.unknown-404", MG_AUDIT_FAIL,
            "tools/list with an unknown Mcp-Session-Id -> HTTP %ld: accepted", us);
    else
        add(v, "session.unknown-404", MG_AUDIT_WARN,
            "tools/list with an unknown Mcp-Session-Id -> HTTP %ld (clients start a new session only on 404)",
            us);

    long op = st(v, "other_principal");
    if (op < 0)
        add(v, "session.other-principal", MG_AUDIT_SKIP,
            "not run: needs --token and --token2 (two principals)");
    else if (op == 401 || op == 403 || op == 404)
        add(v, "session.other-principal", MG_AUDIT_PASS, "the session used with the second token -> HTTP %ld",
            op);
    else if (op >= 200 && op < 300)
        add(v, "session.other-principal", MG_AUDIT_FAIL,
            "the session used with the second token -> HTTP %ld: sessions are not bound to their principal",
            op);
    else
        add(v, "session.other-principal", MG_AUDIT_WARN, "the session used with the second token -> HTTP %ld",
            op);

    long rs = st(v, "replica");
    if (rs < 0)
        add(v, "session.replica", MG_AUDIT_SKIP,
            "not run: needs --replica URL (another replica of the same service)");
    else if (rs >= 200 && rs < 300 && has_result(v, "replica"))
        add(v, "session.replica", MG_AUDIT_PASS, "the session used at the replica -> HTTP %ld with a result",
            rs);
    else if (rs == 0)
        add(v, "session.replica", MG_AUDIT_SKIP, "the replica did not answer (%s)", err(v, "replica"));
    else
        add(v, "session.replica", MG_AUDIT_FAIL,
            "the session used at the replica -> HTTP %ld: round-robin load balancing breaks sessions", rs);

    const json_t *t = json_object_get(v->rec, "tenant");
    if (t == NULL)
        add(v, "tenant.cross-session", MG_AUDIT_SKIP, "not run (budget or time limit spent)");
    else if (json_object_get(t, "why"))
        add(v, "tenant.cross-session", MG_AUDIT_SKIP, "%s", json_string_value(json_object_get(t, "why")));
    else if (json_integer_value(json_object_get(t, "leaked")) > 0)
        add(v, "tenant.cross-session", MG_AUDIT_FAIL,
            "%lld answers to session A's requests arrived on session B's GET stream",
            (long long)json_integer_value(json_object_get(t, "leaked")));
    else if (json_integer_value(json_object_get(t, "notes")) > 0)
        add(v, "tenant.cross-session", MG_AUDIT_FAIL,
            "%lld notifications about session A's requests (their progress tokens) arrived on session B's "
            "GET stream",
            (long long)json_integer_value(json_object_get(t, "notes")));
    else if (!json_is_true(json_object_get(t, "stream")))
        add(v, "tenant.cross-session", MG_AUDIT_SKIP,
            "session B's GET stream not offered (HTTP %lld): nothing to observe",
            (long long)json_integer_value(json_object_get(t, "streamStatus")));
    else
        add(v, "tenant.cross-session", MG_AUDIT_PASS,
            "3 requests on session A (with progress tokens); session B's GET stream got none of their "
            "answers "
            "or notifications (%lld messages seen)",
            (long long)json_integer_value(json_object_get(t, "seen")));
}

/* ---------------------------------------------------------------- context, supply chain */

static int is_search_tool(const char *name)
{
    return name &&
           (strstr(name, "search_tools") || strstr(name, "tool_search") || strstr(name, "find_tools"));
}

void mg__audit_context(mg_audit_report_t *rep, const char *server, const json_t *tools, const char *why,
                       int lazy_configured)
{
    if (!json_is_array(tools)) {
        mg_audit_add(rep, "context.tool-count", server, MG_AUDIT_SKIP, "tools not listed: %s",
                     why ? why : "?");
        mg_audit_add(rep, "context.token-cost", server, MG_AUDIT_SKIP, "tools not listed: %s",
                     why ? why : "?");
        if (!lazy_configured)
            mg_audit_add(rep, "context.lazy", server, MG_AUDIT_SKIP, "tools not listed: %s", why ? why : "?");
        return;
    }
    size_t n = json_array_size(tools), total = 0, worst = 0;
    const char *worst_name = "", *search = NULL;
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t)
    {
        mg_toolsearch_cost_t c;
        mg_toolsearch_tokens_tool(t, &c);
        total += c.total;
        const char *name = json_string_value(json_object_get(t, "name"));
        if (c.total > worst) {
            worst = c.total;
            worst_name = name ? name : "?";
        }
        if (is_search_tool(name))
            search = name;
    }
    mg_audit_add(rep, "context.tool-count", server, n <= 30 ? MG_AUDIT_PASS : MG_AUDIT_WARN, "%zu tools%s", n,
                 n <= 30 ? "" : " (over 30)");
    mg_audit_add(rep, "context.token-cost", server, total <= 10000 ? MG_AUDIT_PASS : MG_AUDIT_WARN,
                 "%zu tokens of tool definitions in every request's context (estimate); largest %.100s: %zu",
                 total, worst_name, worst);
    if (lazy_configured)
        return;
    if (search != NULL)
        mg_audit_add(rep, "context.lazy", server, MG_AUDIT_PASS, "tool search offered (%.100s)", search);
    else if (n <= 30 && total <= 10000)
        mg_audit_add(rep, "context.lazy", server, MG_AUDIT_PASS,
                     "no tool search, not needed: %zu tools, %zu tokens", n, total);
    else
        mg_audit_add(rep, "context.lazy", server, MG_AUDIT_WARN,
                     "no tool search offered for %zu tools / %zu tokens", n, total);
}

void mg__audit_supply(mg_audit_report_t *rep, const char *server, const json_t *tools, const json_t *tools2,
                      const char *why)
{
    if (!json_is_array(tools)) {
        mg_audit_add(rep, "supply.description-scan", server, MG_AUDIT_SKIP, "tools not listed: %s",
                     why ? why : "?");
        mg_audit_add(rep, "supply.definitions-stable", server, MG_AUDIT_SKIP, "tools not listed: %s",
                     why ? why : "?");
        return;
    }
    mg_scanner_t *sc = NULL;
    char swhy[256];
    if (mg_scanner_new(NULL, NULL, 0, &sc, swhy, sizeof swhy) != 0) {
        mg_audit_add(rep, "supply.description-scan", server, MG_AUDIT_SKIP, "scanner unavailable: %s", swhy);
    } else {
        int max = -1;
        size_t nf = 0;
        char first[400] = "";
        size_t i;
        json_t *t;
        json_array_foreach(tools, i, t)
        {
            json_t *f = mg_scan_item(sc, "tools", t, NULL);
            int s = mg_scan_max_severity(f);
            if (s > max)
                max = s;
            if (json_array_size(f) > 0 && !first[0])
                snprintf(first, sizeof first, "%.80s: %.40s (%.10s) %.200s",
                         json_string_value(json_object_get(t, "name")),
                         json_string_value(json_object_get(json_array_get(f, 0), "rule")),
                         json_string_value(json_object_get(json_array_get(f, 0), "severity")),
                         json_string_value(json_object_get(json_array_get(f, 0), "message")));
            nf += json_array_size(f);
            json_decref(f);
        }
        mg_scanner_free(sc);
        if (nf == 0)
            mg_audit_add(rep, "supply.description-scan", server, MG_AUDIT_PASS, "%zu tools scanned: clean",
                         json_array_size(tools));
        else
            mg_audit_add(rep, "supply.description-scan", server,
                         max >= MG_SEV_HIGH ? MG_AUDIT_FAIL : MG_AUDIT_WARN, "%zu findings; first: %s", nf,
                         first);
    }
    if (!json_is_array(tools2))
        mg_audit_add(rep, "supply.definitions-stable", server, MG_AUDIT_SKIP, "the second listing failed");
    else if (json_equal(tools, tools2))
        mg_audit_add(rep, "supply.definitions-stable", server, MG_AUDIT_PASS,
                     "two listings of %zu tools identical", json_array_size(tools));
    else {
        const char *changed = "(the list's length or order)";
        size_t i;
        json_t *t;
        json_array_foreach(tools, i, t)
        {
            json_t *u = json_array_get(tools2, i);
            if (u == NULL || !json_equal(t, u)) {
                changed = json_string_value(json_object_get(t, "name"));
                break;
            }
        }
        mg_audit_add(rep, "supply.definitions-stable", server, MG_AUDIT_FAIL,
                     "the definitions changed between two listings in one session (first: %.100s)",
                     changed ? changed : "?");
    }
}

/* ---------------------------------------------------------------- robustness, 2026 */

static void robust(v_t *v)
{
    long os = st(v, "oversize");
    if (os < 0)
        add(v, "robust.body-limit", MG_AUDIT_SKIP, SKIP_UNREACHED);
    else if (os == 413)
        add(v, "robust.body-limit", MG_AUDIT_PASS, "5 MiB body -> HTTP 413");
    else if (os == 0)
        add(v, "robust.body-limit", MG_AUDIT_WARN, "5 MiB body: the connection ended without a status (%s)",
            err(v, "oversize"));
    else if (os >= 500)
        add(v, "robust.body-limit", MG_AUDIT_FAIL, "5 MiB body -> HTTP %ld", os);
    else
        add(v, "robust.body-limit", MG_AUDIT_WARN, "5 MiB body -> HTTP %ld, not 413%s", os,
            os < 300 ? " (accepted: no body limit, or a large one)" : "");

    long ms = st(v, "malformed");
    long code = rpc_code(v, "malformed");
    int parse = code == mg_err_jsonrpc_code(MG_EPARSE);
    if (ms < 0)
        add(v, "robust.malformed-json", MG_AUDIT_SKIP, SKIP_UNREACHED);
    else if (ms == 0)
        add(v, "robust.malformed-json", MG_AUDIT_SKIP, "no answer (%s)", err(v, "malformed"));
    else if (ms == 400 && parse)
        add(v, "robust.malformed-json", MG_AUDIT_PASS, "truncated JSON -> HTTP 400, JSON-RPC error %ld",
            code);
    else if (ms >= 500 || mg_audit_body_leaky(body(v, "malformed"), strlen(body(v, "malformed"))))
        add(v, "robust.malformed-json", MG_AUDIT_FAIL, "truncated JSON -> HTTP %ld%s", ms,
            mg_audit_body_leaky(body(v, "malformed"), strlen(body(v, "malformed")))
                ? " with an HTML/trace body"
                : "");
    else
        add(v, "robust.malformed-json", MG_AUDIT_WARN, "truncated JSON -> HTTP %ld, %s", ms,
            code ? "JSON-RPC error (not a parse error)" : "no JSON-RPC error body");

    const json_t *b = json_object_get(v->rec, "burst");
    if (b == NULL)
        add(v, "robust.rate-limit", MG_AUDIT_SKIP, SKIP_UNREACHED);
    else if (json_object_get(b, "first429") != NULL) {
        const char *ra = hdr(v, "burst429", "retry-after");
        add(v, "robust.rate-limit", ra ? MG_AUDIT_PASS : MG_AUDIT_WARN,
            "HTTP 429 at request %lld of a burst%s%s%s",
            (long long)json_integer_value(json_object_get(b, "first429")), ra ? ", Retry-After: " : "",
            ra ? ra : " without Retry-After", "");
    } else if (json_integer_value(json_object_get(b, "sent")) <
               json_integer_value(json_object_get(b, "limit")))
        add(v, "robust.rate-limit", MG_AUDIT_SKIP, "burst cut short by the request budget or time limit");
    else
        add(v, "robust.rate-limit", MG_AUDIT_WARN, "no 429 within a burst of %lld requests",
            (long long)json_integer_value(json_object_get(b, "sent")));

    static const char *const names[] = {
        "init",           "noauth",          "host_foreign",    "origin_foreign",
        "query_token",    "unknown_session", "other_principal", "replica",
        "malformed",      "burst429",        "modern_mismatch", "modern_state",
        "other_audience", "cors_post",       "discover",        NULL};
    int errors = 0;
    char leaky[256] = "", plain[256] = "";
    for (int i = 0; names[i]; i++) {
        long s = st(v, names[i]);
        if (s < 400)
            continue;
        errors++;
        const char *bd = body(v, names[i]);
        size_t o;
        if (mg_audit_body_leaky(bd, strlen(bd))) {
            o = strlen(leaky);
            snprintf(leaky + o, sizeof leaky - o, "%s%s (%ld)", o ? ", " : "", names[i], s);
        } else if (*bd && bd[strspn(bd, " \r\n\t")] != '{' && bd[strspn(bd, " \r\n\t")] != '[' &&
                   strncmp(bd, "data:", 5) != 0 && strncmp(bd, "event:", 6) != 0) {
            o = strlen(plain);
            snprintf(plain + o, sizeof plain - o, "%s%s (%ld)", o ? ", " : "", names[i], s);
        }
    }
    if (errors == 0)
        add(v, "robust.error-bodies", MG_AUDIT_SKIP, "no error answers to look at");
    else if (leaky[0])
        add(v, "robust.error-bodies", MG_AUDIT_FAIL, "HTML or stack traces in the error answers to: %s",
            leaky);
    else if (plain[0])
        add(v, "robust.error-bodies", MG_AUDIT_WARN, "plain-text (not JSON-RPC) error answers to: %s", plain);
    else
        add(v, "robust.error-bodies", MG_AUDIT_PASS, "%d error answers, all JSON or empty", errors);
}

static int offers_modern(const v_t *v)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(v->rec, "discover"), i,
                       e) if (json_is_string(e) && strcmp(json_string_value(e), "2026-07-28") == 0) return 1;
    return 0;
}

static void modern(v_t *v)
{
    if (!offers_modern(v)) {
        long d = st(v, "discover");
        char why[160];
        if (d < 0)
            snprintf(why, sizeof why, "%s", SKIP_UNREACHED);
        else
            snprintf(why, sizeof why, "2026-07-28 not offered (server/discover -> HTTP %ld)", d);
        add(v, "modern.header-mismatch", MG_AUDIT_SKIP, "%s", why);
        add(v, "modern.request-state", MG_AUDIT_SKIP, "%s", why);
        add(v, "context.cache-scope", MG_AUDIT_SKIP, "%s",
            d < 0 ? why : "2026-07-28 not offered: lists carry no cacheScope");
        return;
    }
    long s = st(v, "modern_mismatch"), code = rpc_code(v, "modern_mismatch");
    long want = mg_err_jsonrpc_code(MG_EHEADERMISMATCH);
    if (s <= 0)
        add(v, "modern.header-mismatch", MG_AUDIT_SKIP, "no answer (%s)", err(v, "modern_mismatch"));
    else if (s == 400 && code == want)
        add(v, "modern.header-mismatch", MG_AUDIT_PASS,
            "tools/list with Mcp-Method: prompts/list -> HTTP 400, %ld", code);
    else if (has_result(v, "modern_mismatch"))
        add(v, "modern.header-mismatch", MG_AUDIT_FAIL,
            "tools/list with Mcp-Method: prompts/list -> HTTP %ld with a result: headers not checked", s);
    else
        add(v, "modern.header-mismatch", MG_AUDIT_WARN,
            "tools/list with Mcp-Method: prompts/list -> HTTP %ld, code %ld (want 400, %ld)", s, code, want);

    s = st(v, "modern_state");
    code = rpc_code(v, "modern_state");
    long ts = st(v, "mrtr_tampered"), tcode = rpc_code(v, "mrtr_tampered");
    const json_t *mrtr = json_object_get(v->rec, "mrtr");
    const char *tool = json_string_value(json_object_get(mrtr, "tool"));
    if (ts > 0 && tcode != 0 && !has_result(v, "mrtr_tampered"))
        add(v, "modern.request-state", MG_AUDIT_PASS,
            "%.80s answered input_required; its requestState altered by one character -> HTTP %ld, error %ld",
            tool, ts, tcode);
    else if (ts > 0 && has_result(v, "mrtr_tampered"))
        add(v, "modern.request-state", MG_AUDIT_FAIL,
            "%.80s answered input_required; its requestState altered by one character was accepted (HTTP "
            "%ld)",
            tool, ts);
    else if (s <= 0)
        add(v, "modern.request-state", MG_AUDIT_SKIP, "no answer (%s)", err(v, "modern_state"));
    else if (code != 0 && !has_result(v, "modern_state"))
        add(v, "modern.request-state", MG_AUDIT_PASS,
            "tools/list with a forged requestState -> HTTP %ld, error %ld%s%s", s, code,
            mrtr ? "; --call: " : "", mrtr ? json_string_value(json_object_get(mrtr, "why")) : "");
    else
        add(v, "modern.request-state", MG_AUDIT_WARN,
            "tools/list with a forged requestState -> HTTP %ld with a result: the forged state was ignored "
            "(the "
            "input-required retry was not exercised: %s)",
            s,
            mrtr ? json_string_value(json_object_get(mrtr, "why"))
                 : "give --call TOOL of a harmless tool that asks for input");

    /* cacheScope of a well-formed 2026-07-28 tools/list (modern_list; modern_list2 with --token2). */
    const char *b = body(v, "modern_list");
    json_t *msgs = mg_audit_messages(hdr(v, "modern_list", "content-type"), b, strlen(b));
    const char *scope = NULL;
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *cs = json_string_value(json_object_get(json_object_get(m, "result"), "cacheScope"));
        if (cs)
            scope = cs;
    }
    if (st(v, "modern_list") <= 0)
        add(v, "context.cache-scope", MG_AUDIT_SKIP, "2026-07-28 tools/list: no answer");
    else if (scope == NULL)
        add(v, "context.cache-scope", MG_AUDIT_WARN, "2026-07-28 tools/list without cacheScope (MUST)");
    else if (strcmp(scope, "public") != 0)
        add(v, "context.cache-scope", MG_AUDIT_PASS, "2026-07-28 tools/list: cacheScope \"%.40s\"", scope);
    else if (st(v, "modern_list2") < 0)
        add(v, "context.cache-scope", MG_AUDIT_SKIP,
            "cacheScope \"public\": whether the list depends on the caller needs --token2");
    else {
        const char *b2 = body(v, "modern_list2");
        json_t *m2 = mg_audit_messages(hdr(v, "modern_list2", "content-type"), b2, strlen(b2));
        json_t *t1 = NULL, *t2 = NULL;
        json_array_foreach(msgs, i, m) if (json_object_get(json_object_get(m, "result"), "tools")) t1 =
            json_object_get(json_object_get(m, "result"), "tools");
        json_array_foreach(m2, i, m) if (json_object_get(json_object_get(m, "result"), "tools")) t2 =
            json_object_get(json_object_get(m, "result"), "tools");
        if (t1 && t2 && !json_equal(t1, t2))
            add(v, "context.cache-scope", MG_AUDIT_FAIL,
                "cacheScope \"public\" on a list that differs between the two principals");
        else
            add(v, "context.cache-scope", MG_AUDIT_PASS,
                "cacheScope \"public\"; the list is the same for both principals");
        json_decref(m2);
    }
    json_decref(msgs);
}

void mg_audit_verdict_url(const json_t *rec, mg_audit_report_t *rep)
{
    v_t V = {rec, json_object_get(rec, "x"), rep, 0, 0}, *v = &V;
    const char *fatal = json_string_value(json_object_get(rec, "error"));
    if (fatal != NULL) {
        for (const mg_audit_check_t *c = mg_audit_checks; c->id != NULL; c++)
            mg_audit_add(rep, c->id, NULL, MG_AUDIT_SKIP, "not run: %s", fatal);
        return;
    }
    long s = st(v, "init");
    v->mcp_ok = s >= 200 && s < 300 && has_result(v, "init");
    long ns = st(v, is_true(v, "token") ? "noauth" : "init");
    v->auth_refused = ns == 401 || ns == 403;
    transport(v);
    auth(v);
    sessions(v);
    const char *why = json_string_value(json_object_get(rec, "tools_error"));
    if (!v->mcp_ok)
        why = "the target did not complete initialize";
    mg__audit_context(rep, NULL, json_object_get(rec, "tools"), why, 0);
    mg_audit_add(rep, "env.credentials", NULL, MG_AUDIT_SKIP,
                 "config-level check: run mcpgate audit --config FILE");
    mg__audit_supply(rep, NULL, json_object_get(rec, "tools"), json_object_get(rec, "tools2"), why);
    static const char *const cfg_only[] = {"supply.pinned", "supply.publishers", "supply.lockfile", NULL};
    for (int i = 0; cfg_only[i]; i++)
        mg_audit_add(
            rep, cfg_only[i], NULL, MG_AUDIT_SKIP,
            "config-level check: the packages behind a URL are not visible (mcpgate audit --config FILE)");
    mg_audit_add(rep, "robust.unknown-method", NULL, MG_AUDIT_SKIP,
                 "checked over stdio: mcpgate audit --config FILE audits each stdio server");
    static const char *const remote_only[] = {"transport.egress", "auth.upstream-credentials", NULL};
    for (int i = 0; remote_only[i]; i++)
        mg_audit_add(rep, remote_only[i], NULL, MG_AUDIT_SKIP,
                     "config-level check of a remote server entry (mcpgate audit --config FILE)");
    robust(v);
    modern(v);
}

void mg_audit_stdio_verdict(mg_audit_report_t *rep, const char *server, const json_t *rec)
{
    static const char *const ids[] = {"robust.malformed-json", "robust.unknown-method", "robust.body-limit",
                                      NULL};
    const char *err = json_string_value(json_object_get(rec, "error"));
    if (err != NULL) {
        for (int i = 0; ids[i]; i++)
            mg_audit_add(rep, ids[i], server, MG_AUDIT_SKIP, "not probed over stdio: %s", err);
        return;
    }
    const json_t *m = json_object_get(rec, "malformed");
    const json_t *code = json_object_get(m, "code");
    int alive = json_is_true(json_object_get(m, "alive"));
    if (!json_is_object(m))
        mg_audit_add(rep, ids[0], server, MG_AUDIT_SKIP, "not probed");
    else if (!alive)
        mg_audit_add(rep, ids[0], server, MG_AUDIT_FAIL,
                     "a malformed line -> %s; then ping unanswered: one bad line takes the server down",
                     json_is_true(json_object_get(m, "answered")) ? "an answer" : "no answer");
    else if (json_integer_value(code) == mg_err_jsonrpc_code(MG_EPARSE))
        mg_audit_add(rep, ids[0], server, MG_AUDIT_PASS,
                     "a malformed line -> JSON-RPC parse error %lld; ping answered after it",
                     (long long)json_integer_value(code));
    else if (json_is_integer(code))
        mg_audit_add(rep, ids[0], server, MG_AUDIT_WARN,
                     "a malformed line -> error %lld, not the parse error %d; ping answered after it",
                     (long long)json_integer_value(code), mg_err_jsonrpc_code(MG_EPARSE));
    else
        mg_audit_add(rep, ids[0], server, MG_AUDIT_WARN,
                     "a malformed line -> no parse error (dropped silently); ping answered after it");

    if (json_is_object(m) && !alive) {
        /* Nobody left to ask: the other two would only measure the crash. */
        for (int i = 1; ids[i]; i++)
            mg_audit_add(rep, ids[i], server, MG_AUDIT_SKIP,
                         "not judged: the server did not survive the malformed line");
        return;
    }
    const json_t *u = json_object_get(rec, "unknown");
    code = json_object_get(u, "code");
    if (!json_is_object(u))
        mg_audit_add(rep, ids[1], server, MG_AUDIT_SKIP, "not probed");
    else if (!json_is_true(json_object_get(u, "answered")))
        mg_audit_add(rep, ids[1], server, MG_AUDIT_FAIL,
                     "an unknown method -> no answer before the timeout: a client waits forever");
    else if (json_integer_value(code) == mg_err_jsonrpc_code(MG_EMETHOD))
        mg_audit_add(rep, ids[1], server, MG_AUDIT_PASS, "an unknown method -> error %lld",
                     (long long)json_integer_value(code));
    else if (json_is_integer(code))
        mg_audit_add(rep, ids[1], server, MG_AUDIT_WARN, "an unknown method -> error %lld, not %d",
                     (long long)json_integer_value(code), mg_err_jsonrpc_code(MG_EMETHOD));
    else
        mg_audit_add(rep, ids[1], server, MG_AUDIT_WARN, "an unknown method -> a result, not error %d",
                     mg_err_jsonrpc_code(MG_EMETHOD));

    const json_t *o = json_object_get(rec, "oversize");
    if (!json_is_object(o)) {
        mg_audit_add(rep, ids[2], server, MG_AUDIT_SKIP, "not probed");
        return;
    }
    long long bytes = json_integer_value(json_object_get(o, "bytes"));
    code = json_object_get(o, "code");
    const char *got = json_is_integer(code)                          ? "an error"
                      : json_is_true(json_object_get(o, "answered")) ? "an answer"
                      : json_is_true(json_object_get(o, "sent"))     ? "no answer"
                                                                     : "not read (the write stalled)";
    if (json_is_true(json_object_get(o, "alive")))
        mg_audit_add(rep, ids[2], server, MG_AUDIT_PASS, "a line of %lld bytes -> %s; ping answered after it",
                     bytes, got);
    else
        mg_audit_add(rep, ids[2], server, MG_AUDIT_FAIL,
                     "a line of %lld bytes -> %s; then ping unanswered: one big line takes the server down",
                     bytes, got);
}
