/*
 * probe_url.c - the probe sequence of `mcpgate audit URL`: read-only MCP exchanges (initialize,
 * tools/list, ping, server/discover, DELETE of the sessions it opened) plus the deliberate
 * misbehaviour each check needs (foreign Host/Origin, a fake query credential, an unknown session,
 * an oversized and a malformed body, a short bounded burst, mismatched 2026 headers, a forged
 * requestState). Never tools/call. The token goes to the target (and --replica) only, always in
 * the Authorization header; metadata documents are fetched without it.
 * Everything observed goes into the recording (audit_int.h); no verdict is made here.
 * Read next: verdict.c.
 */
#include "audit_int.h"
#include "../common/json.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define V_CURRENT   "2025-11-25"
#define V_MODERN    "2026-07-28"
#define ACCEPT      "application/json, text/event-stream"
#define FOREIGN     "rebind.mcpgate-audit.invalid"
#define FAKE_CRED   "mcpgate-audit-fake-credential"
#define TENANT_MARK "mcpgate-audit-session-a-"

typedef struct url {
    char scheme[8];
    char host[256]; /* without brackets */
    int ipv6;
    unsigned port;
    char path[1024]; /* from the first '/', without the query */
    char query[1024];
} url_t;

static int url_parse(const char *s, url_t *u)
{
    memset(u, 0, sizeof *u);
    const char *p;
    if (strncasecmp(s, "http://", 7) == 0) {
        memcpy(u->scheme, "http", 5);
        p = s + 7;
        u->port = 80;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        memcpy(u->scheme, "https", 6);
        p = s + 8;
        u->port = 443;
    } else {
        return -1;
    }
    const char *hend;
    if (*p == '[') {
        hend = strchr(p, ']');
        if (hend == NULL || (size_t)(hend - p - 1) >= sizeof u->host)
            return -1;
        memcpy(u->host, p + 1, (size_t)(hend - p - 1));
        u->ipv6 = 1;
        hend++;
    } else {
        hend = p + strcspn(p, ":/?#");
        if ((size_t)(hend - p) >= sizeof u->host || hend == p)
            return -1;
        memcpy(u->host, p, (size_t)(hend - p));
    }
    if (*hend == ':') {
        char *end;
        unsigned long port = strtoul(hend + 1, &end, 10);
        if (port == 0 || port > 65535)
            return -1;
        u->port = (unsigned)port;
        hend = end;
    }
    const char *q = strchr(hend, '?');
    size_t plen = q ? (size_t)(q - hend) : strcspn(hend, "#");
    if (plen >= sizeof u->path || (q && strlen(q + 1) >= sizeof u->query))
        return -1;
    memcpy(u->path, hend, plen);
    if (u->path[0] == '\0')
        u->path[0] = '/';
    if (q)
        snprintf(u->query, sizeof u->query, "%.*s", (int)strcspn(q + 1, "#"), q + 1);
    return 0;
}

static int host_loopback(const char *h)
{
    return strcasecmp(h, "localhost") == 0 || strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0;
}

/* "scheme://host:port" of u with another path (and query). */
static void url_with(const url_t *u, const char *host, const char *path, const char *query, char *out,
                     size_t n)
{
    int v6 = strchr(host, ':') != NULL;
    int k = snprintf(out, n, "%s://%s%s%s:%u%s%s%s", u->scheme, v6 ? "[" : "", host, v6 ? "]" : "", u->port,
                     path, query && *query ? "?" : "", query ? query : "");
    if (k < 0 || (size_t)k >= n)
        out[0] = '\0'; /* too long: the probe then fails as "no URL" */
}

typedef struct run {
    const mg_audit_url_opts_t *o;
    mg_audit_probe_t *p;
    url_t u;
    json_t *rec, *x;
    json_t *extra_sessions; /* ids to DELETE at the end */
    int next_id;
} run_t;

/* A request to the target with the operator's --header pairs and the MCP headers. */
static void base_req(run_t *r, mg_audit_req_t *q, const char *url, const char *body, const char *sid,
                     const char *version)
{
    memset(q, 0, sizeof *q);
    q->url = url ? url : r->o->url;
    q->body = body;
    q->len = body ? strlen(body) : 0;
    q->token = r->o->token;
    size_t k = 0;
    for (size_t i = 0; i < r->o->nheaders && k < 12; i++) {
        q->headers[k++] = r->o->headers[2 * i];
        q->headers[k++] = r->o->headers[2 * i + 1];
    }
    if (body != NULL) {
        q->headers[k++] = "Content-Type";
        q->headers[k++] = "application/json";
    }
    q->headers[k++] = "Accept";
    q->headers[k++] = ACCEPT;
    if (sid != NULL) {
        q->headers[k++] = "Mcp-Session-Id";
        q->headers[k++] = sid;
    }
    if (version != NULL) {
        q->headers[k++] = "MCP-Protocol-Version";
        q->headers[k++] = version;
    }
    q->nheaders = k / 2;
}

static void add_header(mg_audit_req_t *q, const char *name, const char *value)
{
    if (q->nheaders < 12) {
        q->headers[2 * q->nheaders] = name;
        q->headers[2 * q->nheaders + 1] = value;
        q->nheaders++;
    }
}

static char *rpc(run_t *r, const char *method, json_t *params, int *id_out)
{
    int id = ++r->next_id;
    if (id_out)
        *id_out = id;
    json_t *m = json_pack("{s:s,s:i,s:s}", "jsonrpc", "2.0", "id", id, "method", method);
    if (m == NULL) {
        json_decref(params);
        return NULL;
    }
    if (params != NULL)
        json_object_set_new(m, "params", params);
    char *s = json_dumps(m, JSON_COMPACT);
    json_decref(m);
    return s;
}

static json_t *init_params(const char *version)
{
    return json_pack("{s:s,s:{},s:{s:s,s:s}}", "protocolVersion", version, "capabilities", "clientInfo",
                     "name", "mcpgate-audit", "version", MG_VERSION);
}

/* The response of exchange ex to request id (borrowed from msgs_out, which the caller frees). */
static json_t *response_of(const json_t *ex, int id, json_t **msgs_out)
{
    const char *body = json_string_value(json_object_get(ex, "body"));
    const char *ct = json_string_value(json_object_get(json_object_get(ex, "headers"), "content-type"));
    *msgs_out = mg_audit_messages(ct, body, body ? strlen(body) : 0);
    return mg_audit_find_id(*msgs_out, id);
}

static const char *sid_of(const json_t *ex)
{
    return json_string_value(json_object_get(json_object_get(ex, "headers"), "mcp-session-id"));
}

static void put(run_t *r, const char *name, json_t *ex)
{
    if (ex != NULL)
        json_object_set_new(r->x, name, ex);
}

/* One initialize; extra header pair optional. NEW exchange; *proto gets the version answered. */
static json_t *initialize(run_t *r, const char *url, const char *version, const char *token, int use_token,
                          const char *hname, const char *hvalue, char *proto, size_t pn)
{
    int id;
    char *body = rpc(r, "initialize", init_params(version), &id);
    mg_audit_req_t q;
    base_req(r, &q, url, body, NULL, NULL);
    q.token = use_token ? token : NULL;
    if (hname != NULL)
        add_header(&q, hname, hvalue);
    json_t *ex = mg_audit_probe_do(r->p, &q);
    free(body);
    if (proto != NULL) {
        proto[0] = '\0';
        json_t *msgs;
        json_t *resp = response_of(ex, id, &msgs);
        const char *v =
            json_string_value(json_object_get(json_object_get(resp, "result"), "protocolVersion"));
        if (v != NULL)
            snprintf(proto, pn, "%s", v);
        json_decref(msgs);
    }
    const char *sid = sid_of(ex);
    if (sid != NULL && r->extra_sessions != NULL)
        json_array_append_new(r->extra_sessions,
                              json_pack("{s:s,s:b}", "id", sid, "mine", token == r->o->token));
    return ex;
}

static void notify_initialized(run_t *r, const char *sid, const char *proto)
{
    const char *body = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
    mg_audit_req_t q;
    base_req(r, &q, NULL, body, sid, proto);
    json_decref(mg_audit_probe_do(r->p, &q));
}

/* tools/list, every page (at most 20). NEW array, or NULL with *why. */
static json_t *list_tools(run_t *r, const char *sid, const char *proto, char *why, size_t wn)
{
    json_t *all = json_array();
    json_t *cursor = NULL;
    for (int page = 0; page < 20; page++) {
        int id;
        json_t *params = cursor ? json_pack("{s:O}", "cursor", cursor) : NULL;
        char *body = rpc(r, "tools/list", params, &id);
        mg_audit_req_t q;
        base_req(r, &q, NULL, body, sid, proto);
        json_t *ex = mg_audit_probe_do(r->p, &q);
        free(body);
        json_t *msgs;
        json_t *resp = response_of(ex, id, &msgs);
        json_t *tools = json_object_get(json_object_get(resp, "result"), "tools");
        if (!json_is_array(tools)) {
            const char *err = json_string_value(json_object_get(ex, "error"));
            const char *emsg = json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
            snprintf(why, wn, "tools/list answered HTTP %lld%s%s%s%s",
                     (long long)json_integer_value(json_object_get(ex, "status")), err ? " (" : "",
                     err ? err : "", err ? ")" : "", emsg ? emsg : "");
            json_decref(msgs);
            json_decref(ex);
            json_decref(cursor);
            json_decref(all);
            return NULL;
        }
        json_array_extend(all, tools);
        json_t *next = json_object_get(json_object_get(resp, "result"), "nextCursor");
        json_decref(cursor);
        cursor = json_is_string(next) ? json_incref(next) : NULL;
        json_decref(msgs);
        json_decref(ex);
        if (cursor == NULL)
            break;
    }
    json_decref(cursor);
    return all;
}

/* A 2026-07-28 request: _meta and the MCP headers; mname/mmethod override the headers. */
static json_t *modern(run_t *r, const char *method, json_t *params, const char *hmethod, const char *token,
                      int *id)
{
    if (params == NULL)
        params = json_object();
    json_object_set_new(params, "_meta",
                        json_pack("{s:s,s:{},s:{s:s,s:s}}", "io.modelcontextprotocol/protocolVersion",
                                  V_MODERN, "io.modelcontextprotocol/clientCapabilities",
                                  "io.modelcontextprotocol/clientInfo", "name", "mcpgate-audit", "version",
                                  MG_VERSION));
    char *body = rpc(r, method, params, id);
    mg_audit_req_t q;
    base_req(r, &q, NULL, body, NULL, V_MODERN);
    q.token = token;
    add_header(&q, "Mcp-Method", hmethod ? hmethod : method);
    json_t *ex = mg_audit_probe_do(r->p, &q);
    free(body);
    return ex;
}

/* --call TOOL: the one tools/call the audit ever makes, 2026-07-28, offering sampling and
 * elicitation so the tool may answer input_required. When it does, its requestState is altered
 * (one character) and the retry must be refused: recorded as x.mrtr_tampered. */
static void probe_mrtr(run_t *r)
{
    const mg_audit_url_opts_t *o = r->o;
    json_error_t je;
    json_t *cargs = o->call_args ? json_loads(o->call_args, 0, &je) : json_object();
    if (!json_is_object(cargs)) {
        json_decref(cargs);
        json_object_set_new(r->rec, "mrtr", json_pack("{s:s}", "why", "--call-args is not a JSON object"));
        return;
    }
    json_t *meta =
        json_pack("{s:s,s:{s:{},s:{}},s:{s:s,s:s}}", "io.modelcontextprotocol/protocolVersion", V_MODERN,
                  "io.modelcontextprotocol/clientCapabilities", "sampling", "elicitation",
                  "io.modelcontextprotocol/clientInfo", "name", "mcpgate-audit", "version", MG_VERSION);
    int id;
    json_t *params = json_pack("{s:s,s:O,s:O}", "name", o->call, "arguments", cargs, "_meta", meta);
    char *body = rpc(r, "tools/call", params, &id);
    mg_audit_req_t q;
    base_req(r, &q, NULL, body, NULL, V_MODERN);
    add_header(&q, "Mcp-Method", "tools/call");
    add_header(&q, "Mcp-Name", o->call);
    json_t *first = mg_audit_probe_do(r->p, &q);
    free(body);
    json_t *msgs;
    json_t *resp = response_of(first, id, &msgs);
    json_t *res = json_object_get(resp, "result");
    const char *rt = json_string_value(json_object_get(res, "resultType"));
    const char *state = json_string_value(json_object_get(res, "requestState"));
    json_t *mrtr = json_pack("{s:s,s:I}", "tool", o->call, "status",
                             json_integer_value(json_object_get(first, "status")));
    json_object_set_new(r->rec, "mrtr", mrtr);
    put(r, "mrtr_call", json_incref(first));
    if (rt == NULL || strcmp(rt, "input_required") != 0 || state == NULL || strlen(state) < 2) {
        json_object_set_new(mrtr, "why",
                            json_string("the tool did not answer input_required with a requestState"));
    } else {
        char *bad = strdup(state);
        if (bad != NULL) {
            size_t mid = strlen(bad) / 2;
            bad[mid] = bad[mid] == 'A' ? 'B' : 'A';
            json_t *p2 = json_pack("{s:s,s:O,s:s,s:{},s:O}", "name", o->call, "arguments", cargs,
                                   "requestState", bad, "inputResponses", "_meta", meta);
            char *b2 = rpc(r, "tools/call", p2, &id);
            base_req(r, &q, NULL, b2, NULL, V_MODERN);
            add_header(&q, "Mcp-Method", "tools/call");
            add_header(&q, "Mcp-Name", o->call);
            json_t *ex = mg_audit_probe_do(r->p, &q);
            json_object_set_new(ex, "id", json_integer(id));
            put(r, "mrtr_tampered", ex);
            free(b2);
            free(bad);
        }
    }
    json_decref(msgs);
    json_decref(first);
    json_decref(meta);
    json_decref(cargs);
}

static void delete_session(run_t *r, const char *sid, const char *proto, const char *token)
{
    mg_audit_req_t q;
    base_req(r, &q, NULL, NULL, sid, proto);
    q.method = "DELETE";
    q.token = token;
    json_decref(mg_audit_probe_do(r->p, &q));
}

/* A non-loopback IPv4 address of this machine, or -1. */
static int local_address(char *out, size_t n)
{
    struct ifaddrs *ifa = NULL, *i;
    if (getifaddrs(&ifa) != 0)
        return -1;
    int found = -1;
    for (i = ifa; i != NULL && found < 0; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET)
            continue;
        struct sockaddr_in *a = (struct sockaddr_in *)i->ifa_addr;
        if ((ntohl(a->sin_addr.s_addr) >> 24) == 127)
            continue;
        if (inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)n) != NULL)
            found = 0;
    }
    freeifaddrs(ifa);
    return found;
}

static void probe_auth_metadata(run_t *r, const json_t *noauth)
{
    char prm_url[2048] = "";
    const char *wa =
        json_string_value(json_object_get(json_object_get(noauth, "headers"), "www-authenticate"));
    char rm[1536];
    if (wa != NULL && mg_audit_auth_param(wa, "resource_metadata", rm, sizeof rm) == 0 &&
        (strncmp(rm, "https://", 8) == 0 || strncmp(rm, "http://", 7) == 0))
        snprintf(prm_url, sizeof prm_url, "%s", rm);
    else {
        char path[1100];
        snprintf(path, sizeof path, "/.well-known/oauth-protected-resource%s",
                 strcmp(r->u.path, "/") == 0 ? "" : r->u.path);
        url_with(&r->u, r->u.host, path, NULL, prm_url, sizeof prm_url);
    }
    mg_audit_req_t q = {0};
    q.url = prm_url; /* no token: metadata is public */
    q.headers[0] = "Accept";
    q.headers[1] = "application/json";
    q.nheaders = 1;
    json_t *prm = mg_audit_probe_do(r->p, &q);
    put(r, "prm", prm);
    json_object_set_new(prm, "url", json_string(prm_url));
    const char *b = json_string_value(json_object_get(prm, "body"));
    json_t *doc = b ? mg_json_loadb(b, strlen(b), 0) : NULL;
    const char *as = json_string_value(json_array_get(json_object_get(doc, "authorization_servers"), 0));
    url_t au;
    if (as != NULL && url_parse(as, &au) == 0) {
        char asurl[2048];
        const char *suffix = strcmp(au.path, "/") == 0 ? "" : au.path;
        char path[1100];
        snprintf(path, sizeof path, "/.well-known/oauth-authorization-server%s", suffix);
        url_with(&au, au.host, path, NULL, asurl, sizeof asurl);
        q.url = asurl;
        json_t *asm_ = mg_audit_probe_do(r->p, &q);
        if (json_integer_value(json_object_get(asm_, "status")) != 200) {
            json_decref(asm_);
            snprintf(path, sizeof path, "/.well-known/openid-configuration%s", suffix);
            url_with(&au, au.host, path, NULL, asurl, sizeof asurl);
            asm_ = mg_audit_probe_do(r->p, &q);
            if (json_integer_value(json_object_get(asm_, "status")) != 200 && *suffix) {
                json_decref(asm_);
                snprintf(path, sizeof path, "%s/.well-known/openid-configuration", suffix);
                url_with(&au, au.host, path, NULL, asurl, sizeof asurl);
                asm_ = mg_audit_probe_do(r->p, &q);
            }
        }
        json_object_set_new(asm_, "url", json_string(asurl));
        json_object_set_new(asm_, "issuer_expected", json_string(as));
        put(r, "asm", asm_);
    }
    json_decref(doc);
}

static void probe_burst(run_t *r, const char *sid, const char *proto)
{
    unsigned sent = 0, limit = r->o->burst;
    json_t *burst = json_pack("{s:i}", "limit", (int)limit);
    char *bodies[10];
    while (sent < limit && !mg_audit_probe_spent(r->p)) {
        mg_audit_req_t q[10];
        json_t *out[10];
        size_t n = limit - sent < 10 ? limit - sent : 10;
        for (size_t i = 0; i < n; i++) {
            bodies[i] = rpc(r, "tools/list", NULL, NULL);
            base_req(r, &q[i], NULL, bodies[i], sid, proto);
            q[i].unmetered = 1;
        }
        mg_audit_probe_many(r->p, q, n, out);
        int hit = 0;
        for (size_t i = 0; i < n; i++) {
            free(bodies[i]);
            long st = (long)json_integer_value(json_object_get(out[i], "status"));
            if (st == 429 && !hit && json_object_get(burst, "first429") == NULL) {
                hit = 1;
                json_object_set_new(burst, "first429", json_integer((json_int_t)(sent + i + 1)));
                put(r, "burst429", json_incref(out[i]));
            }
            json_decref(out[i]);
        }
        sent += (unsigned)n;
        if (hit)
            break;
    }
    json_object_set_new(burst, "sent", json_integer(sent));
    json_object_set_new(r->rec, "burst", burst);
}

static void probe_tenant(run_t *r, const char *sid_a, const char *proto)
{
    json_t *ten = json_object();
    json_object_set_new(r->rec, "tenant", ten);
    json_t *b = initialize(r, NULL, V_CURRENT, r->o->token, 1, NULL, NULL, NULL, 0);
    const char *sid_b = sid_of(b);
    if (sid_b == NULL) {
        json_object_set_new(ten, "why", json_string("a second session could not be opened"));
        json_decref(b);
        return;
    }
    char sidb[256];
    snprintf(sidb, sizeof sidb, "%s", sid_b);
    json_decref(b);
    notify_initialized(r, sidb, proto);
    mg_audit_req_t q;
    base_req(r, &q, NULL, NULL, sidb, proto);
    q.headers[2 * (q.nheaders - 3) + 1] = "text/event-stream"; /* Accept of a GET stream */
    q.stream = 1;
    q.stream_ms = 5000;
    mg_audit_bg_t *bg = mg_audit_probe_start(r->p, &q);
    int ids[3];
    for (int i = 0; i < 3; i++) {
        /* Each carries a progress token of session A: progress about it belongs to A only. */
        char tok[48];
        snprintf(tok, sizeof tok, TENANT_MARK "%d", i);
        char *body = rpc(r, i == 1 ? "ping" : "tools/list",
                         json_pack("{s:{s:s}}", "_meta", "progressToken", tok), &ids[i]);
        mg_audit_req_t qa;
        base_req(r, &qa, NULL, body, sid_a, proto);
        json_decref(mg_audit_probe_do(r->p, &qa));
        free(body);
    }
    json_t *ex = mg_audit_probe_collect(r->p, bg, 300);
    long st = (long)json_integer_value(json_object_get(ex, "status"));
    const char *ct = json_string_value(json_object_get(json_object_get(ex, "headers"), "content-type"));
    int stream = st == 200 && ct != NULL && strstr(ct, "text/event-stream") != NULL;
    json_object_set_new(ten, "stream", json_boolean(stream));
    json_object_set_new(ten, "streamStatus", json_integer(st));
    const char *body = json_string_value(json_object_get(ex, "body"));
    json_t *msgs = mg_audit_messages("text/event-stream", body, body ? strlen(body) : 0);
    int leaked = 0, notes = 0;
    for (int i = 0; i < 3; i++)
        leaked += mg_audit_find_id(msgs, ids[i]) != NULL;
    size_t k;
    json_t *m;
    json_array_foreach(msgs, k, m)
    {
        /* A notification naming A's progress tokens (or anything else of A's) that is not an answer. */
        char *text = json_object_get(m, "id") == NULL ? json_dumps(m, JSON_COMPACT) : NULL;
        notes += text != NULL && strstr(text, TENANT_MARK) != NULL;
        free(text);
    }
    json_object_set_new(ten, "leaked", json_integer(leaked));
    json_object_set_new(ten, "notes", json_integer(notes));
    json_object_set_new(ten, "seen", json_integer((json_int_t)json_array_size(msgs)));
    json_decref(msgs);
    json_decref(ex);
}

json_t *mg_audit_probe_url(const mg_audit_url_opts_t *o)
{
    run_t R = {0}, *r = &R;
    r->o = o;
    r->rec = json_object();
    r->x = json_object();
    r->extra_sessions = json_array();
    json_object_set_new(r->rec, "target", json_string(o->url));
    json_object_set_new(r->rec, "x", r->x);
    if (url_parse(o->url, &r->u) != 0) {
        json_object_set_new(r->rec, "error", json_string("not an http:// or https:// URL"));
        json_decref(r->extra_sessions);
        return r->rec;
    }
    json_object_set_new(r->rec, "loopback", json_boolean(host_loopback(r->u.host)));
    json_object_set_new(r->rec, "https", json_boolean(strcmp(r->u.scheme, "https") == 0));
    json_object_set_new(r->rec, "token", json_boolean(o->token != NULL));
    json_object_set_new(r->rec, "token2", json_boolean(o->token2 != NULL));
    json_object_set_new(r->rec, "replica", json_boolean(o->replica != NULL));
    if (o->token != NULL) {
        json_t *jp = mg_audit_jwt_payload(o->token);
        if (jp != NULL)
            json_object_set_new(r->rec, "jwt", jp);
    }
    if (o->token_other_aud != NULL) {
        json_t *jp = mg_audit_jwt_payload(o->token_other_aud);
        if (jp != NULL)
            json_object_set_new(r->rec, "jwt2", jp);
    }
    if (mg_audit_probe_new(&o->limits, &r->p) != 0) {
        json_object_set_new(r->rec, "error",
                            json_string("the HTTP client could not start (libcurl missing?)"));
        json_decref(r->extra_sessions);
        return r->rec;
    }

    /* Transport: initialize at the current revision. */
    mg_audit_probe_phase(r->p, "initialize");
    char proto[64];
    json_t *init = initialize(r, NULL, V_CURRENT, o->token, 1, NULL, NULL, proto, sizeof proto);
    put(r, "init", init);
    char sid[256] = "";
    if (sid_of(init) != NULL)
        snprintf(sid, sizeof sid, "%s", sid_of(init));
    json_array_clear(r->extra_sessions); /* the main session is deleted last */
    const char *sidp = sid[0] ? sid : NULL;
    const char *protop = proto[0] ? proto : V_CURRENT;
    int reachable = json_integer_value(json_object_get(init, "status")) != 0;
    json_t *eras = json_array();
    json_object_set_new(r->rec, "eras", eras);
    json_t *ids = json_array();
    json_object_set_new(r->rec, "session_ids", ids);
    if (sidp)
        json_array_append_new(ids, json_string(sidp));

    if (reachable) {
        if (proto[0])
            json_array_append_new(eras, json_string(proto));
        notify_initialized(r, sidp, protop);

        mg_audit_probe_phase(r->p, "tools/list (twice)");
        char why[512];
        json_t *t1 = list_tools(r, sidp, protop, why, sizeof why);
        if (t1 != NULL) {
            json_object_set_new(r->rec, "tools", t1);
            json_t *t2 = list_tools(r, sidp, protop, why, sizeof why);
            if (t2 != NULL)
                json_object_set_new(r->rec, "tools2", t2);
        } else {
            json_object_set_new(r->rec, "tools_error", json_string(why));
        }

        mg_audit_probe_phase(r->p, "protocol revisions");
        static const char *const older[] = {"2025-06-18", "2025-03-26"};
        for (int i = 0; i < 2; i++) {
            char pv[64];
            json_decref(initialize(r, NULL, older[i], o->token, 1, NULL, NULL, pv, sizeof pv));
            if (pv[0] && strcmp(pv, older[i]) == 0)
                json_array_append_new(eras, json_string(pv));
        }
        int did;
        json_t *disc = modern(r, "server/discover", NULL, NULL, o->token, &did);
        json_t *msgs;
        json_t *resp = response_of(disc, did, &msgs);
        json_t *sv = json_object_get(json_object_get(resp, "result"), "supportedVersions");
        if (json_is_array(sv))
            json_object_set_new(r->rec, "discover", mg_json_deep_copy(sv));
        json_decref(msgs);
        put(r, "discover", disc);

        mg_audit_probe_phase(r->p, "session ids");
        for (int i = 0; i < 3; i++)
            json_decref(initialize(r, NULL, V_CURRENT, o->token, 1, NULL, NULL, NULL, 0));
        size_t k;
        json_t *e;
        json_array_foreach(r->extra_sessions, k, e) json_array_append(ids, json_object_get(e, "id"));

        mg_audit_probe_phase(r->p, "auth");
        if (o->token != NULL)
            put(r, "noauth", initialize(r, NULL, V_CURRENT, NULL, 0, NULL, NULL, NULL, 0));
        const json_t *noauth = json_object_get(r->x, o->token ? "noauth" : "init");
        long nst = (long)json_integer_value(json_object_get(noauth, "status"));
        if (nst == 401 || nst == 403)
            probe_auth_metadata(r, noauth);
        if (o->token_other_aud != NULL)
            put(r, "other_audience",
                initialize(r, NULL, V_CURRENT, o->token_other_aud, 1, NULL, NULL, NULL, 0));
        {
            char qurl[4096], query[1200];
            snprintf(query, sizeof query, "%s%saccess_token=" FAKE_CRED, r->u.query,
                     r->u.query[0] ? "&" : "");
            url_with(&r->u, r->u.host, r->u.path, query, qurl, sizeof qurl);
            put(r, "query_token", initialize(r, qurl, V_CURRENT, o->token, 1, NULL, NULL, NULL, 0));
        }

        mg_audit_probe_phase(r->p, "DNS rebinding, CORS");
        char foreign_host[300];
        snprintf(foreign_host, sizeof foreign_host, FOREIGN ":%u", r->u.port);
        put(r, "host_foreign", initialize(r, NULL, V_CURRENT, o->token, 1, "Host", foreign_host, NULL, 0));
        put(r, "origin_foreign",
            initialize(r, NULL, V_CURRENT, o->token, 1, "Origin", "http://" FOREIGN, NULL, 0));
        {
            mg_audit_req_t q;
            base_req(r, &q, NULL, NULL, NULL, NULL);
            q.method = "OPTIONS";
            q.token = NULL; /* a preflight carries no credentials */
            add_header(&q, "Origin", "https://cors.mcpgate-audit.invalid");
            add_header(&q, "Access-Control-Request-Method", "POST");
            add_header(&q, "Access-Control-Request-Headers", "authorization, content-type, mcp-session-id");
            put(r, "preflight", mg_audit_probe_do(r->p, &q));
            int id;
            char *body = rpc(r, "ping", NULL, &id);
            base_req(r, &q, NULL, body, sidp, protop);
            add_header(&q, "Origin", "https://cors.mcpgate-audit.invalid");
            put(r, "cors_post", mg_audit_probe_do(r->p, &q));
            free(body);
        }

        mg_audit_probe_phase(r->p, "sessions");
        if (sidp != NULL) {
            unsigned char rnd[16];
            char bogus[40];
            uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL);
            for (int i = 0; i < 16; i++)
                snprintf(bogus + 2 * i, 3, "%02x", rnd[i]);
            char *body = rpc(r, "tools/list", NULL, NULL);
            mg_audit_req_t q;
            base_req(r, &q, NULL, body, bogus, protop);
            put(r, "unknown_session", mg_audit_probe_do(r->p, &q));
            if (o->token2 != NULL) {
                base_req(r, &q, NULL, body, sidp, protop);
                q.token = o->token2;
                put(r, "other_principal", mg_audit_probe_do(r->p, &q));
            }
            if (o->replica != NULL) {
                base_req(r, &q, o->replica, body, sidp, protop);
                put(r, "replica", mg_audit_probe_do(r->p, &q));
            }
            free(body);
            mg_audit_probe_phase(r->p, "cross-session isolation");
            probe_tenant(r, sidp, protop);
        }

        if (json_is_array(json_object_get(r->rec, "discover"))) {
            mg_audit_probe_phase(r->p, "2026-07-28");
            int id;
            json_t *ex = modern(r, "tools/list", NULL, NULL, o->token, &id);
            put(r, "modern_list", ex);
            if (o->token2 != NULL)
                put(r, "modern_list2", modern(r, "tools/list", NULL, NULL, o->token2, &id));
            ex = modern(r, "tools/list", NULL, "prompts/list", o->token, &id);
            json_object_set_new(ex, "id", json_integer(id));
            put(r, "modern_mismatch", ex);
            ex = modern(r, "tools/list",
                        json_pack("{s:s,s:{}}", "requestState", "bWNwZ2F0ZS1hdWRpdC1mb3JnZWQtc3RhdGU",
                                  "inputResponses"),
                        NULL, o->token, &id);
            json_object_set_new(ex, "id", json_integer(id));
            put(r, "modern_state", ex);
            if (o->call != NULL)
                probe_mrtr(r);
        }

        mg_audit_probe_phase(r->p, "robustness");
        {
            /* 5 MiB: over the common limits (nginx 1 MiB, Express 100 KiB, mcpgate 4 MiB) and under the
             * size where servers stop reading and drop the connection (mcpgate: twice its limit),
             * so a refusal arrives as a status rather than a reset. */
            size_t big = 5 * 1024 * 1024;
            char *body = malloc(big + 128);
            if (body != NULL) {
                int n = snprintf(body, 128,
                                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"ping\",\"params\":{\"pad\":\"",
                                 ++r->next_id);
                memset(body + n, 'a', big);
                memcpy(body + n + big, "\"}}", 4);
                mg_audit_req_t q;
                base_req(r, &q, NULL, body, sidp, protop);
                put(r, "oversize", mg_audit_probe_do(r->p, &q));
                free(body);
            }
            mg_audit_req_t q;
            base_req(r, &q, NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":", sidp, protop);
            put(r, "malformed", mg_audit_probe_do(r->p, &q));
        }
        mg_audit_probe_phase(r->p, "rate limit burst");
        probe_burst(r, sidp, protop);

        if (json_is_true(json_object_get(r->rec, "loopback"))) {
            char addr[64], burl[2400];
            if (local_address(addr, sizeof addr) == 0) {
                url_with(&r->u, addr, r->u.path, NULL, burl, sizeof burl);
                mg_audit_req_t q = {0};
                q.url = burl;
                q.timeout_ms = 3000;
                json_t *ex = mg_audit_probe_do(r->p, &q);
                json_object_set_new(r->rec, "bind",
                                    json_pack("{s:s,s:b,s:I}", "address", addr, "reachable",
                                              json_integer_value(json_object_get(ex, "status")) != 0,
                                              "status", json_integer_value(json_object_get(ex, "status"))));
                json_decref(ex);
            }
        }
    }

    mg_audit_probe_phase(r->p, "legacy SSE");
    {
        char surl[2400];
        const char *slash = strrchr(r->u.path, '/');
        char path[1100];
        size_t keep = slash ? (size_t)(slash - r->u.path) : 0;
        if (strlen(r->u.path) >= 4 && strcmp(r->u.path + strlen(r->u.path) - 4, "/sse") == 0)
            snprintf(path, sizeof path, "%s", r->u.path);
        else
            snprintf(path, sizeof path, "%.*s/sse", (int)keep, r->u.path);
        url_with(&r->u, r->u.host, path, NULL, surl, sizeof surl);
        mg_audit_req_t q;
        base_req(r, &q, surl, NULL, NULL, NULL);
        q.headers[2 * (q.nheaders - 1) + 1] = "text/event-stream";
        q.stream = 2;
        q.stream_ms = 1500;
        json_t *ex = mg_audit_probe_do(r->p, &q);
        json_object_set_new(ex, "url", json_string(surl));
        put(r, "legacy_sse", ex);
    }

    /* Close what we opened. */
    mg_audit_probe_phase(r->p, "closing sessions");
    size_t k;
    json_t *e;
    json_array_foreach(r->extra_sessions, k, e)
    {
        if (!mg_audit_probe_spent(r->p))
            delete_session(r, json_string_value(json_object_get(e, "id")), protop,
                           json_is_true(json_object_get(e, "mine")) ? o->token : NULL);
    }
    if (sidp && !mg_audit_probe_spent(r->p))
        delete_session(r, sidp, protop, o->token);
    json_object_set_new(r->rec, "requests", json_integer(mg_audit_probe_count(r->p)));
    json_object_set_new(r->rec, "elapsedMs", json_integer((json_int_t)mg_audit_probe_elapsed(r->p)));
    mg_audit_probe_free(r->p);
    json_decref(r->extra_sessions);
    return r->rec;
}
