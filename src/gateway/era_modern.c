/*
 * modern.c - the stateless 2026-07-28 revision on /mcp, served from the same upstreams as the
 * session era (gateway/era_legacy.c).
 *
 * Phases of one modern POST (each failure answers at once):
 *   MCP-Protocol-Version header == _meta protocolVersion (400 -32020) -> version supported
 *   (400 -32022) -> Mcp-Method == method, Mcp-Name == name/uri after =?base64?…?= decoding
 *   (400 -32020) -> clientCapabilities present (400 -32602) -> method known (404 -32601)
 *   -> subscriptions/listen opens a listener stream; a retry carrying requestState resumes its
 *   parked call; anything else is dispatched as a call with the request's own capabilities.
 * Results get resultType, _meta serverInfo, and ttlMs/cacheScope where the revision asks.
 * requestState (common/seal.h) binds: park key, method, digest of name/uri+arguments, expiry.
 * Read next: gateway/dispatch.c (park/resume), common/seal.h.
 */
#include "../common/codec.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/str.h"
#include "../http/status.h"
#include "gateway_int.h"
#include "../jsonrpc/jsonrpc.h"
#include "../common/seal.h"

#define H2O_USE_LIBUV 1
#include <h2o.h>
#include <ctype.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_VERSION    "io.modelcontextprotocol/protocolVersion"
#define META_CAPS       "io.modelcontextprotocol/clientCapabilities"
#define META_LOGLEVEL   "io.modelcontextprotocol/logLevel"
#define META_SERVERINFO "io.modelcontextprotocol/serverInfo"
#define META_SUBID      "io.modelcontextprotocol/subscriptionId"
#define LIST_TTL_MS     60000

static const char *const modern_methods[] = {"server/discover",
                                             "tools/list",
                                             "tools/call",
                                             "prompts/list",
                                             "prompts/get",
                                             "resources/list",
                                             "resources/read",
                                             "resources/templates/list",
                                             "completion/complete",
                                             "subscriptions/listen",
                                             "tasks/get", /* the tasks extension (tasks.c) */
                                             "tasks/update",
                                             "tasks/cancel",
                                             NULL};

static h2o_iovec_t header(h2o_req_t *req, const char *name, int *dup)
{
    size_t nlen = strlen(name);
    ssize_t i = h2o_find_header_by_str(&req->headers, name, nlen, -1);
    if (dup != NULL)
        *dup = i >= 0 && h2o_find_header_by_str(&req->headers, name, nlen, i) >= 0;
    if (i < 0)
        return h2o_iovec_init(NULL, 0);
    return req->headers.entries[i].value;
}

static json_t *meta_of(const json_t *msg)
{
    return json_object_get(json_object_get(msg, "params"), "_meta");
}

int mg__modern_detect(h2o_req_t *req, const json_t *msg, unsigned params_keys)
{
    int no_meta = (params_keys & (MG__PK_KNOWN | MG__PK_META)) == MG__PK_KNOWN;
    if (!no_meta && json_object_get(meta_of(msg), META_VERSION) != NULL)
        return 1;
    if (header(req, "mcp-session-id", NULL).base != NULL)
        return 0;
    h2o_iovec_t pv = header(req, "mcp-protocol-version", NULL);
    if (pv.base == NULL)
        return 0;
    char v[32];
    snprintf(v, sizeof v, "%.*s", (int)(pv.len < 31 ? pv.len : 31), pv.base);
    return mg_version_rank(v) == 0; /* a revision the session era does not know */
}

/* ---- header values: =?base64?…?= sentinel ---- */

/* Decodes a header value into out (NUL-terminated). Returns 0, or -1 when the value is not a valid
 * plain header value or sentinel. */
static int header_value_decode(h2o_iovec_t v, char *out, size_t cap)
{
    /* Optional whitespace around a field value is not part of it (RFC 9110 section 5.5). */
    while (v.len > 0 && (v.base[0] == ' ' || v.base[0] == '\t')) {
        v.base++;
        v.len--;
    }
    while (v.len > 0 && (v.base[v.len - 1] == ' ' || v.base[v.len - 1] == '\t'))
        v.len--;
    if (v.len >= 11 && memcmp(v.base, "=?base64?", 9) == 0 && memcmp(v.base + v.len - 2, "?=", 2) == 0) {
        size_t n = v.len - 11;
        if (n % 4 != 0 || n / 4 * 3 + 1 > cap)
            return -1;
        int r = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)v.base + 9, (int)n);
        if (r < 0)
            return -1;
        size_t len = (size_t)r;
        if (n >= 1 && v.base[9 + n - 1] == '=')
            len--;
        if (n >= 2 && v.base[9 + n - 2] == '=')
            len--;
        out[len] = '\0';
        if (memchr(out, '\0', len) != NULL)
            return -1;
        return 0;
    }
    if (v.len + 1 > cap)
        return -1;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.base[i];
        if ((c < 0x20 && c != '\t') || c > 0x7e)
            return -1;
    }
    memcpy(out, v.base, v.len);
    out[v.len] = '\0';
    return 0;
}

/* ---- Mcp-Param-* checks ---- */

typedef struct param_ctx {
    mg_exchange_t *x;
    char *why;
    size_t n;
    int bad;
} param_ctx_t;

static void check_value(param_ctx_t *pc, const char *hname, const json_t *value)
{
    char lname[160] = "mcp-param-";
    size_t o = strlen(lname);
    for (const char *p = hname; *p && o + 1 < sizeof lname; p++)
        lname[o++] = (char)tolower((unsigned char)*p);
    lname[o] = '\0';
    const char *raw = json_string_value(json_object_get(pc->x->param_hdrs, lname));
    if (value == NULL || json_is_null(value))
        return; /* no value: the header is not expected */
    if (raw == NULL) {
        snprintf(pc->why, pc->n,
                 "Header mismatch: Mcp-Param-%s is required because the arguments carry that value", hname);
        pc->bad = 1;
        return;
    }
    char dec[4096];
    if (header_value_decode(h2o_iovec_init(raw, strlen(raw)), dec, sizeof dec) != 0) {
        snprintf(pc->why, pc->n,
                 "Header mismatch: Mcp-Param-%s has invalid characters or bad =?base64?…?= encoding", hname);
        pc->bad = 1;
        return;
    }
    int ok = 0;
    if (json_is_string(value)) {
        ok = strcmp(dec, json_string_value(value)) == 0;
    } else if (json_is_integer(value) || json_is_real(value)) {
        char *end;
        double d = strtod(dec, &end);
        ok = end != dec && *end == '\0' && d == json_number_value(value);
    } else if (json_is_boolean(value)) {
        ok = strcmp(dec, json_is_true(value) ? "true" : "false") == 0;
    }
    if (!ok) {
        snprintf(pc->why, pc->n, "Header mismatch: Mcp-Param-%s does not match the argument value", hname);
        pc->bad = 1;
    }
}

/* Walks properties chains only (the revision forbids x-mcp-header anywhere else). */
static void walk_schema(param_ctx_t *pc, const json_t *schema, const json_t *instance)
{
    const char *key;
    json_t *prop;
    json_object_foreach(json_object_get(schema, "properties"), key, prop)
    {
        if (pc->bad)
            return;
        const json_t *value = json_is_object(instance) ? json_object_get(instance, key) : NULL;
        const char *h = json_string_value(json_object_get(prop, "x-mcp-header"));
        if (h != NULL)
            check_value(pc, h, value);
        if (json_object_get(prop, "properties") != NULL && json_is_object(value))
            walk_schema(pc, prop, value);
    }
}

int mg__modern_check_params(mg_exchange_t *x, const json_t *tool, const json_t *arguments, char *why,
                            size_t n)
{
    param_ctx_t pc = {x, why, n, 0};
    walk_schema(&pc, json_object_get(tool, "inputSchema"), arguments);
    return pc.bad ? -1 : 0;
}

/* ---- results ---- */

void mg__modern_digest(const char *method, const json_t *params, char out[68])
{
    json_t *salient =
        json_pack("{s:s,s:O?,s:O?,s:O?}", "m", method, "n", json_object_get(params, "name"), "u",
                  json_object_get(params, "uri"), "a", json_object_get(params, "arguments"));
    char *text = json_dumps(salient, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(salient);
    mg_sha256_hex(text ? text : "", text ? strlen(text) : 0, out);
    free(text);
}

json_t *mg__modern_discover_result(mg_gateway_t *gw)
{
    json_t *init = mg__initialize_result(gw, MG_MODERN_VERSION);
    json_t *caps = json_incref(json_object_get(init, "capabilities"));
    json_object_del(caps, "logging"); /* logging/setLevel is gone; per-request logLevel remains */
    json_object_del(caps, "tasks");   /* 2025-11-25 tasks; 2026-07-28 has the extension */
    if (gw->cfg->tasks.enabled)
        json_object_set_new(caps, "extensions", json_pack("{s:{}}", "io.modelcontextprotocol/tasks"));
    json_t *r = json_pack("{s:s,s:[s,s,s,s],s:o,s:{s:{s:s,s:s}},s:I,s:s}", "resultType", "complete",
                          "supportedVersions", MG_MODERN_VERSION, "2025-11-25", "2025-06-18", "2025-03-26",
                          "capabilities", caps, "_meta", META_SERVERINFO, "name", "mcpgate", "version",
                          MG_VERSION, "ttlMs", (json_int_t)LIST_TTL_MS, "cacheScope",
                          gw->cfg->auth_configured ? "private" : "public");
    json_t *instr = json_object_get(init, "instructions");
    if (instr != NULL)
        json_object_set(r, "instructions", instr);
    json_decref(init);
    return r;
}

void mg__modern_decorate(mg_call_t *c, json_t *resp)
{
    json_t *result = json_object_get(resp, "result");
    json_t *error = json_object_get(resp, "error");
    if (error != NULL) {
        /* 2026-07-28: resource not found is -32602 (was -32002). */
        if (strcmp(c->method, "resources/read") == 0 &&
            json_integer_value(json_object_get(error, "code")) == mg_err_jsonrpc_code(MG_ERESOURCE))
            json_object_set_new(error, "code", json_integer(mg_err_jsonrpc_code(MG_EPARAMS)));
        return;
    }
    if (!json_is_object(result))
        return;
    if (json_object_get(result, "resultType") == NULL)
        json_object_set_new(result, "resultType", json_string("complete"));
    json_t *meta = json_object_get(result, "_meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(result, "_meta", meta);
    }
    if (json_object_get(meta, META_SERVERINFO) == NULL)
        json_object_set_new(meta, META_SERVERINFO,
                            json_pack("{s:s,s:s}", "name", "mcpgate", "version", MG_VERSION));
    const char *m = c->method;
    int list = strcmp(m, "tools/list") == 0 || strcmp(m, "prompts/list") == 0 ||
               strcmp(m, "resources/list") == 0 || strcmp(m, "resources/templates/list") == 0;
    int read = strcmp(m, "resources/read") == 0;
    if ((list || read) && json_object_get(result, "ttlMs") == NULL) {
        json_object_set_new(result, "ttlMs", json_integer(list ? LIST_TTL_MS : 0));
        /* A catalog filtered per caller (auth) and resource contents are private. */
        json_object_set_new(result, "cacheScope",
                            json_string(read || c->gw->cfg->auth_configured ? "private" : "public"));
    }
}

/* The requestState sealing key: gateway.requestStateKey, else random, drawn on first use. */
static const unsigned char *seal_key(mg_gateway_t *gw)
{
    if (!gw->seal_key_set) {
        mg_seal_key_random(gw->seal_key);
        gw->seal_key_set = 1;
    }
    return gw->seal_key;
}

char *mg__modern_request_state(mg_call_t *c)
{
    json_t *p = json_pack("{s:i,s:s,s:s,s:s,s:I}", "v", 1, "k", c->park_key, "m", c->method, "d", c->digest,
                          "exp", (json_int_t)(mg_gateway_now_ms() + c->gw->cfg->limits.request_timeout_ms));
    if (c->gw->cluster != NULL) /* replicas: the retry is proxied to the one holding the parked call */
        json_object_set_new(p, "r", json_string(mg__cluster_replica(c->gw)));
    char *s = mg_seal_json(seal_key(c->gw), p);
    json_decref(p);
    return s;
}

/* ---- listeners (subscriptions/listen) ---- */

static void ignore_cb(mg_upstream_req_t *r, int err, json_t *resp, const char *m, void *d)
{
}

static void listener_push(mg_listener_t *l, const json_t *msg)
{
    size_t dlen;
    char *data = mg_rpc_dump(msg, &dlen);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (data != NULL && mg_sse_format(&buf, &len, &cap, NULL, data, dlen, 0) == 0 && l->conn != NULL)
        mg_sse_conn_write(l->conn, buf, len);
    free(buf);
    free(data);
}

static void listener_release(mg_listener_t *l)
{
    mg_gateway_t *gw = l->gw;
    for (mg_listener_t **pp = &gw->listeners; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    }
    json_t *uris = json_object_get(l->filter, "resourceSubscriptions");
    size_t i;
    json_t *u;
    json_array_foreach(uris, i, u)
    {
        const char *uri = json_string_value(u);
        long si = gw->nservers == 1 ? 0 : mg__catalog_route_uri(gw, NULL, uri);
        mg_pool_t *p = si >= 0 ? gw->servers[si].shared : NULL;
        if (p == NULL || p->stopping)
            continue;
        json_int_t n = json_integer_value(json_object_get(p->subs, uri));
        if (n > 1) {
            json_object_set_new(p->subs, uri, json_integer(n - 1));
        } else {
            json_object_del(p->subs, uri);
            json_t *m = json_pack("{s:s,s:s,s:{s:s}}", "jsonrpc", "2.0", "method", "resources/unsubscribe",
                                  "params", "uri", uri);
            mg_upstream_request(p->up, m, 0, ignore_cb, NULL, NULL, NULL);
        }
    }
    json_object_del(l->filter, "resourceSubscriptions");
    if (l->reads > 0)
        l->gone = 1; /* a task read is in flight: the last one frees l (tasks_listen.c) */
    else
        mg__modern_listener_free(l);
}

void mg__modern_listener_free(mg_listener_t *l)
{
    json_decref(l->sub_id);
    json_decref(l->filter);
    json_decref(l->tasks);
    mg_principal_unref(l->who);
    free(l);
}

static void listener_gone_cb(mg_sse_conn_t *conn, void *data)
{
    mg_listener_t *l = data;
    l->conn = NULL;
    listener_release(l);
}

void mg__modern_listener_ack(mg_listener_t *l)
{
    json_t *ack = mg_rpc_notification(
        "notifications/subscriptions/acknowledged",
        json_pack("{s:O,s:{s:O}}", "notifications", l->filter, "_meta", META_SUBID, l->sub_id));
    listener_push(l, ack);
    json_decref(ack);
    l->acked = 1;
}

static void open_listener(mg_gateway_t *gw, h2o_req_t *req, json_t *msg, uint64_t start_ms)
{
    json_t *want = json_object_get(mg_rpc_params(msg), "notifications");
    if (!json_is_object(want)) {
        mg__http_error(gw, req, MG_EPARAMS,
                       "Invalid params: subscriptions/listen needs params.notifications (an object)", NULL,
                       mg_rpc_id(msg), start_ms);
        return;
    }
    /* Task status notifications (the tasks extension): the request must declare the extension. */
    json_t *task_ids = json_object_get(want, "taskIds");
    if (task_ids != NULL) {
        int bad = !json_is_array(task_ids);
        size_t i;
        json_t *v;
        json_array_foreach(task_ids, i, v) bad |= !json_is_string(v);
        if (bad) {
            mg__http_error(gw, req, MG_EPARAMS,
                           "Invalid params: notifications.taskIds must be an array of task ids (strings)",
                           NULL, mg_rpc_id(msg), start_ms);
            return;
        }
        json_t *caps = json_object_get(meta_of(msg), META_CAPS);
        if (json_object_get(json_object_get(caps, "extensions"), "io.modelcontextprotocol/tasks") == NULL) {
            mg__http_error(
                gw, req, MG_ECAPABILITY,
                "Missing required client capability: task status notifications (notifications.taskIds) "
                "need the io.modelcontextprotocol/tasks extension in _meta " META_CAPS ".extensions",
                json_pack("{s:{s:{s:{}}}}", "requiredCapabilities", "extensions",
                          "io.modelcontextprotocol/tasks"),
                mg_rpc_id(msg), start_ms);
            return;
        }
    }
    json_t *honoured = json_object();
    const char *flags[] = {"toolsListChanged", "promptsListChanged", "resourcesListChanged"};
    for (int i = 0; i < 3; i++)
        if (json_is_true(json_object_get(want, flags[i])))
            json_object_set_new(honoured, flags[i], json_true());
    json_t *uris = json_object_get(want, "resourceSubscriptions");
    if (json_is_array(uris)) {
        json_t *keep = json_array();
        size_t i;
        json_t *u;
        json_array_foreach(uris, i, u)
        {
            const char *uri = json_string_value(u);
            long si = uri == NULL ? -1 : gw->nservers == 1 ? 0 : mg__catalog_route_uri(gw, NULL, uri);
            mg_pool_t *p = si >= 0 ? gw->servers[si].shared : NULL;
            if (p == NULL)
                continue;
            json_array_append(keep, u);
            json_int_t n = json_integer_value(json_object_get(p->subs, uri));
            json_object_set_new(p->subs, uri, json_integer(n + 1));
            if (n == 0) {
                json_t *m = json_pack("{s:s,s:s,s:{s:s}}", "jsonrpc", "2.0", "method", "resources/subscribe",
                                      "params", "uri", uri);
                mg_upstream_request(p->up, m, 0, ignore_cb, NULL, NULL, NULL);
            }
        }
        json_object_set_new(honoured, "resourceSubscriptions", keep);
    }
    mg_listener_t *l = calloc(1, sizeof(*l));
    l->gw = gw;
    l->sub_id = json_incref(mg_rpc_id(msg));
    l->filter = honoured;
    const mg_principal_t *who = mg_auth_principal_of(gw->auth, req);
    mg_strlcpy(l->principal, sizeof l->principal, who != NULL ? who->key : "");
    l->who = who != NULL ? mg_principal_ref((mg_principal_t *)who) : NULL;
    l->next = gw->listeners;
    gw->listeners = l;
    l->conn = mg_sse_conn_start(req, NULL, 0, listener_gone_cb, l);
    mg__http_log(gw, "POST", "subscriptions/listen", NULL, NULL, 200, start_ms);
    if (task_ids != NULL)
        mg__task_listen(l, task_ids); /* acknowledges once the ids are read */
    else
        mg__modern_listener_ack(l);
}

void mg__modern_listener_send(mg_listener_t *l, const json_t *msg)
{
    json_t *n = mg_json_deep_copy(msg);
    json_t *params = json_object_get(n, "params");
    if (!json_is_object(params)) {
        params = json_object();
        json_object_set_new(n, "params", params);
    }
    json_t *meta = json_object_get(params, "_meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(params, "_meta", meta);
    }
    json_object_set(meta, META_SUBID, l->sub_id);
    listener_push(l, n);
    json_decref(n);
}

static const char *flag_of[MG_LIST_COUNT] = {"toolsListChanged", "promptsListChanged", "resourcesListChanged",
                                             "resourcesListChanged"};

void mg__modern_listeners_changed(mg_gateway_t *gw, unsigned (*kinds_of)(void *arg, const mg_principal_t *p),
                                  void *arg)
{
    json_t *note[MG_LIST_TEMPLATES] = {0}; /* each kind's, made on first use */
    for (mg_listener_t *l = gw->listeners; l != NULL; l = l->next) {
        if (!l->acked)
            continue; /* the acknowledgement comes first */
        unsigned kinds = kinds_of(arg, l->who);
        for (int k = 0; k < MG_LIST_TEMPLATES; k++) {
            if (!(kinds & (1u << k)) || !json_is_true(json_object_get(l->filter, flag_of[k])))
                continue;
            if (note[k] == NULL)
                note[k] = mg_rpc_notification(mg_list_changed_method((mg_list_kind_t)k), NULL);
            mg__modern_listener_send(l, note[k]);
        }
    }
    for (int k = 0; k < MG_LIST_TEMPLATES; k++)
        json_decref(note[k]);
}

void mg__modern_listeners_notify(mg_gateway_t *gw, unsigned kinds, const char *updated_uri, const json_t *msg)
{
    for (mg_listener_t *l = gw->listeners; l != NULL; l = l->next) {
        int send = 0;
        if (!l->acked) {
            continue; /* the acknowledgement comes first */
        } else if (updated_uri != NULL) {
            size_t i;
            json_t *u;
            json_array_foreach(json_object_get(l->filter, "resourceSubscriptions"), i,
                               u) if (json_is_string(u) && strcmp(json_string_value(u), updated_uri) == 0)
                send = 1;
        } else {
            for (int k = 0; k < MG_LIST_COUNT; k++)
                if ((kinds & (1u << k)) && json_is_true(json_object_get(l->filter, flag_of[k])))
                    send = 1;
        }
        if (send)
            mg__modern_listener_send(l, msg);
    }
}

void mg__modern_listeners_close(mg_gateway_t *gw)
{
    while (gw->listeners != NULL) {
        mg_listener_t *l = gw->listeners;
        json_t *r = mg_rpc_result(
            l->sub_id, json_pack("{s:s,s:{s:O}}", "resultType", "complete", "_meta", META_SUBID, l->sub_id));
        listener_push(l, r);
        json_decref(r);
        gw->listeners = l->next;
        l->next = NULL;
        mg_sse_conn_t *c = l->conn;
        if (c != NULL) {
            l->conn = NULL;
            mg_sse_conn_abandon(c);
        }
        /* Re-link so release() can unlink it, then release subscriptions. */
        l->next = gw->listeners;
        gw->listeners = l;
        listener_release(l);
    }
}

void mg__modern_listeners_keepalive(mg_gateway_t *gw)
{
    for (mg_listener_t *l = gw->listeners; l != NULL; l = l->next)
        if (l->conn != NULL)
            mg_sse_conn_write(l->conn, ": keep-alive\n\n", 14);
}

/* ---- the POST ---- */

static int rank_of(const char *level)
{
    static const char *levels[] = {"debug", "info",     "notice", "warning",
                                   "error", "critical", "alert",  "emergency"};
    for (int i = 0; i < 8; i++)
        if (level != NULL && strcmp(level, levels[i]) == 0)
            return i;
    return -1;
}

static void resume(mg_gateway_t *gw, h2o_req_t *req, json_t *msg, const char *state, uint64_t start_ms)
{
    json_t *p = mg_seal_open(seal_key(gw), state);
    const char *owner = json_string_value(json_object_get(p, "r"));
    if (owner != NULL && gw->cluster != NULL && mg__cluster_proxy_modern(gw, req, msg, owner, start_ms)) {
        json_decref(p); /* parked on another replica: it answers, through this one */
        return;
    }
    const char *why = NULL;
    char digest[68];
    mg__modern_digest(mg_rpc_method(msg), mg_rpc_params(msg), digest);
    mg_call_t *c = NULL;
    if (p == NULL)
        why = "Invalid params: requestState failed verification (modified, or sealed with another key)";
    else if ((uint64_t)json_integer_value(json_object_get(p, "exp")) < mg_gateway_now_ms())
        why = "Invalid params: requestState has expired; send the request again without it";
    else if (!json_is_string(json_object_get(p, "m")) ||
             strcmp(json_string_value(json_object_get(p, "m")), mg_rpc_method(msg)) != 0 ||
             !json_is_string(json_object_get(p, "d")) ||
             strcmp(json_string_value(json_object_get(p, "d")), digest) != 0)
        why =
            "Invalid params: requestState belongs to a different request (method, name or arguments differ)";
    else if ((c = mg_map_get(&gw->parked, json_string_value(json_object_get(p, "k")))) == NULL ||
             c->x != NULL || !mg_principal_same(c->principal, mg_auth_principal_of(gw->auth, req)))
        why = "Invalid params: the suspended request is no longer waiting (it timed out, its upstream "
              "restarted, "
              "or it is being resumed already); send the request again without requestState";
    json_decref(p);
    if (why != NULL) {
        mg__http_error(gw, req, MG_EPARAMS, why, NULL, mg_rpc_id(msg), start_ms);
        return;
    }
    mg_exchange_t *x = mg__exchange_new(gw, req, gw->stateless, start_ms);
    x->modern = 1;
    x->accept_sse = 1;
    x->pending = 1;
    x->results = json_array();
    snprintf(x->method, sizeof x->method, "%s", mg_rpc_method(msg));
    json_t *responses = json_object_get(mg_rpc_params(msg), "inputResponses");
    mg__dispatch_resume(c, x, msg, json_is_object(responses) ? responses : NULL);
}

void mg__modern_post(mg_gateway_t *gw, h2o_req_t *req, json_t *msg, uint64_t start_ms)
{
    json_t *id = mg_rpc_id(msg);
    const char *method = mg_rpc_method(msg);
    if (mg_rpc_classify(msg, NULL) == MG_RPC_NOTIFICATION) {
        /* No client notifications are defined for this revision over HTTP; accepted and ignored. */
        static h2o_generator_t gen = {NULL, NULL};
        req->res.status = 202;
        req->res.reason = mg_http_reason(202);
        h2o_start_response(req, &gen);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        mg__http_log(gw, "POST", method, NULL, NULL, 202, start_ms);
        return;
    }
    json_t *meta = meta_of(msg);
    const char *version = json_string_value(json_object_get(meta, META_VERSION));
    int dup = 0;
    h2o_iovec_t hv = header(req, "mcp-protocol-version", &dup);
    char hver[64], why[400];
    if (hv.base == NULL || dup || header_value_decode(hv, hver, sizeof hver) != 0) {
        mg__http_error(gw, req, MG_EHEADERMISMATCH,
                       "Header mismatch: the MCP-Protocol-Version header is required", NULL, id, start_ms);
        return;
    }
    json_t *caps = json_object_get(meta, META_CAPS);
    if (!json_is_object(meta) || version == NULL || !json_is_object(caps)) {
        mg__http_error(gw, req, MG_EPARAMS,
                       "Invalid params: every 2026-07-28 request needs params._meta with " META_VERSION
                       " (a string) and " META_CAPS " (an object)",
                       NULL, id, start_ms);
        return;
    }
    if (strcmp(hver, version) != 0) {
        snprintf(why, sizeof why,
                 "Header mismatch: MCP-Protocol-Version header '%s' does not match _meta " META_VERSION
                 " '%s'",
                 hver, version ? version : "(missing)");
        mg__http_error(gw, req, MG_EHEADERMISMATCH, why, NULL, id, start_ms);
        return;
    }
    if (strcmp(version, MG_MODERN_VERSION) != 0) {
        json_t *data = json_pack("{s:[s,s,s,s],s:s}", "supported", MG_MODERN_VERSION, "2025-11-25",
                                 "2025-06-18", "2025-03-26", "requested", version);
        mg__http_error(gw, req, MG_EVERSION,
                       "Unsupported protocol version (session-era revisions start with initialize)", data, id,
                       start_ms);
        return;
    }
    h2o_iovec_t hm = header(req, "mcp-method", &dup);
    char hmeth[128];
    if (hm.base == NULL || dup || header_value_decode(hm, hmeth, sizeof hmeth) != 0 ||
        strcmp(hmeth, method) != 0) {
        snprintf(why, sizeof why, "Header mismatch: Mcp-Method header %s the body's method '%.100s'",
                 hm.base == NULL ? "is missing; it must equal" : "does not match", method);
        mg__http_error(gw, req, MG_EHEADERMISMATCH, why, NULL, id, start_ms);
        return;
    }
    const char *name_key = strcmp(method, "resources/read") == 0                                     ? "uri"
                           : strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0 ? "name"
                           : strcmp(method, "tasks/get") == 0 || strcmp(method, "tasks/update") == 0 ||
                                   strcmp(method, "tasks/cancel") == 0
                               ? "taskId"
                               : NULL;
    if (name_key != NULL) {
        const char *body_name = json_string_value(json_object_get(mg_rpc_params(msg), name_key));
        h2o_iovec_t hn = header(req, "mcp-name", &dup);
        char hname[4096];
        if (hn.base == NULL || dup || header_value_decode(hn, hname, sizeof hname) != 0 ||
            body_name == NULL || strcmp(hname, body_name) != 0) {
            snprintf(why, sizeof why, "Header mismatch: Mcp-Name header %s params.%s",
                     hn.base == NULL ? "is missing; it must equal" : "does not match", name_key);
            mg__http_error(gw, req, MG_EHEADERMISMATCH, why, NULL, id, start_ms);
            return;
        }
    }
    int known = 0;
    for (int i = 0; modern_methods[i] != NULL; i++)
        known |= strcmp(method, modern_methods[i]) == 0;
    if (!known) {
        snprintf(why, sizeof why, "Method not found: %.100s", method);
        mg__http_error(gw, req, MG_EMETHOD, why, NULL, id, start_ms);
        return;
    }
    if (strcmp(method, "subscriptions/listen") == 0) {
        open_listener(gw, req, msg, start_ms);
        return;
    }
    json_t *responses = json_object_get(mg_rpc_params(msg), "inputResponses");
    if (responses != NULL) {
        int bad = !json_is_object(responses);
        const char *k;
        json_t *v;
        if (!bad)
            json_object_foreach(responses, k, v) bad |= !json_is_object(v);
        if (bad) {
            mg__http_error(gw, req, MG_EPARAMS,
                           "Invalid params: inputResponses must be an object whose values are result objects",
                           NULL, id, start_ms);
            return;
        }
    }
    const char *state = json_string_value(json_object_get(mg_rpc_params(msg), "requestState"));
    if (state != NULL) {
        resume(gw, req, msg, state, start_ms);
        return;
    }
    const char *level = json_string_value(json_object_get(meta, META_LOGLEVEL));
    int rank = level ? rank_of(level) : 8;
    if (rank < 0) {
        mg__http_error(gw, req, MG_EPARAMS, "Invalid params: _meta " META_LOGLEVEL " is not a logging level",
                       NULL, id, start_ms);
        return;
    }
    mg_exchange_t *x = mg__exchange_new(gw, req, gw->stateless, start_ms);
    if (x == NULL) {
        mg__http_error(gw, req, MG_ENOMEM, "out of memory", NULL, id, start_ms);
        return;
    }
    x->modern = 1;
    x->accept_sse = 1;
    x->pending = 1;
    x->results = json_array();
    snprintf(x->method, sizeof x->method, "%s", method);
    x->param_hdrs = json_object();
    for (size_t i = 0; i < req->headers.size; i++) {
        h2o_header_t *h = &req->headers.entries[i];
        if (h->name->len > 10 && strncasecmp(h->name->base, "mcp-param-", 10) == 0) {
            char n[160];
            snprintf(n, sizeof n, "%.*s", (int)(h->name->len < 159 ? h->name->len : 159), h->name->base);
            for (char *q = n; *q; q++)
                *q = (char)tolower((unsigned char)*q);
            json_object_set_new(x->param_hdrs, n, json_stringn(h->value.base, h->value.len));
        }
    }
    mg__exchange_ref(x);
    mg__dispatch_modern(gw, x, msg, caps, rank);
    mg__exchange_unref(x);
}

/* ---- lifetime ---- */

static void park_sweep_cb(uv_timer_t *t)
{
    mg_gateway_t *gw = t->data;
    uint64_t now = mg_gateway_now_ms();
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->parked, &pos, &key, &val)) {
        mg_call_t *c = val;
        if (c->x == NULL && c->park_expires != 0 && c->park_expires < now)
            mg__dispatch_drop_parked(c, "no retry arrived before the suspended request expired");
    }
    /* 2026-07-28: closing the response stream is the cancellation, but h2o does not watch an idle
     * connection while a request is in progress. So a modern call still running at a tick turns
     * its answer into SSE (quick calls keep plain JSON and can still get a 400 such as -32021),
     * and every later tick writes a heartbeat comment: a closed client is noticed within about
     * two seconds and its call is cancelled upstream. */
    for (mg_call_t *c = gw->stateless->calls; c != NULL; c = c->next) {
        mg_exchange_t *x = c->x;
        if (x == NULL || x->req == NULL)
            continue;
        if (x->stream == NULL) {
            /* Only calls already running for a second: a younger one may still need a plain
             * status of its own (400 -32021 after its input-collection window). */
            if (now - x->start_ms >= 1000)
                mg__exchange_stream(x);
        } else if (x->stream->conn != NULL)
            mg_sse_conn_write(x->stream->conn, ":\n\n", 3);
    }
}

static void flush_cb(uv_timer_t *t)
{
    mg_gateway_t *gw = t->data;
    for (mg_call_t *c = gw->stateless->calls; c != NULL;) {
        mg_call_t *next = c->next; /* a flush may finish (and free) c */
        if (c->flush_due)
            mg__dispatch_flush_inputs(c);
        c = next;
    }
}

void mg__modern_schedule_flush(mg_gateway_t *gw)
{
    if (!uv_is_active((uv_handle_t *)&gw->flush_timer))
        uv_timer_start(&gw->flush_timer, flush_cb, 15, 0);
}

void mg__modern_init(mg_gateway_t *gw)
{
    mg_map_init(&gw->parked);
    /* A configured key now; a random one on first use (seal_key()): drawing it here was the first
     * use of OpenSSL's DRBG, whose set-up (~6 M instructions) delayed listening. */
    gw->seal_key_set = gw->cfg->request_state_key != NULL &&
                       mg_seal_key_parse(gw->cfg->request_state_key, gw->seal_key) == 0;
    mg_session_t *s = calloc(1, sizeof(*s));
    s->gw = gw;
    snprintf(s->id, sizeof s->id, "stateless");
    snprintf(s->hash, sizeof s->hash, "stateless");
    snprintf(s->version, sizeof s->version, "%s", MG_MODERN_VERSION);
    s->caps = json_object();
    s->client_info = json_object();
    s->subs = json_object();
    s->pools = calloc(gw->server_cap ? gw->server_cap : 1, sizeof(*s->pools));
    s->refs = 1; /* owned by the gateway: never freed by unref */
    s->log_rank = 8;
    gw->stateless = s;
    uv_timer_init(gw->loop, &gw->park_timer);
    uv_timer_init(gw->loop, &gw->flush_timer);
    gw->flush_timer.data = gw;
    gw->park_timer.data = gw;
    uv_timer_start(&gw->park_timer, park_sweep_cb, 1000, 1000);
}

void mg__modern_free(mg_gateway_t *gw)
{
    mg_session_t *s = gw->stateless;
    if (s != NULL) { /* owned by the gateway: its calls ended in mg__modern_dispose() and shutdown */
        json_decref(s->caps);
        json_decref(s->client_info);
        json_decref(s->subs);
        free(s->pools);
        mg_span_attrs_free(s->span_attrs);
        free(s);
        gw->stateless = NULL;
    }
    mg_map_dispose(&gw->parked);
}

void mg__modern_dispose(mg_gateway_t *gw)
{
    uv_timer_stop(&gw->park_timer);
    uv_timer_stop(&gw->flush_timer);
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->parked, &pos, &key, &val))
        mg__dispatch_drop_parked(val, "gateway shutting down");
    mg__modern_listeners_close(gw);
}
