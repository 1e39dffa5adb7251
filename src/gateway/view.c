/*
 * view.c - a session's view fingerprint (view.h): the inputs of its tools list and of its other
 * lists, each hashed (SHA-256 of a canonical JSON document), and the reload's targeted
 * list_changed built on them.
 *
 * The document, per session and kind (tools, prompts, resources with their templates):
 *   servers  [name, changed, prefix] for each live slot gateway.auth.rules leave something of to
 *            the session's principal (mg_auth_policy_may_see) and that may offer the kind (its
 *            shared or tenant pool is not known to lack the capability: a ready pool's initialize
 *            result says; a session's own pools are not looked at); changed is the reload's mark for a slot
 * whose entry or pins changed (the lists it serves may differ) rules    null without gateway.auth.rules, else
 * the allow/deny lists of the rules that apply to the principal, in order (a rule for another tenant or scope
 * is not there) tools    (the tools document only) gateway.tools as written, with "profiles" narrowed to the
 *            session's profile, "tenants" to its tenant's entry (or "*"), "scopes" to its scopes'
 *            entries and whether any exist, "defaultProfile" left out (it is read at initialize)
 * Read next: view.h, reload.c.
 */
#include "view.h"
#include "../auth/auth.h"
#include "../common/codec.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../toolsearch/runtime.h"

#include <stdlib.h>
#include <string.h>

/* one hash per kind: tools, prompts, resources (templates count as resources) */
typedef struct print {
    unsigned char md[MG_LIST_TEMPLATES][MG_SHA256_BYTES];
} print_t;

static const char *cap_names[MG_LIST_TEMPLATES] = {"tools", "prompts", "resources"};

struct mg_view_snap {
    mg_map_t by_id; /* session id -> print_t (owned) */
};

static json_t *rules_view(const mg_auth_config_t *cfg, const mg_principal_t *p)
{
    if (cfg == NULL || cfg->nrules == 0)
        return json_null();
    json_t *out = json_array();
    for (size_t i = 0; out != NULL && i < cfg->nrules; i++) {
        const mg_auth_rule_t *r = &cfg->rules[i];
        if (!mg_auth_policy_rule_applies(r, p))
            continue;
        json_t *allow = json_array(), *deny = json_array();
        for (size_t k = 0; k < r->nallow; k++)
            json_array_append_new(allow, json_string(r->allow[k]));
        for (size_t k = 0; k < r->ndeny; k++)
            json_array_append_new(deny, json_string(r->deny[k]));
        json_array_append_new(out, json_pack("{s:o,s:o}", "allow", allow, "deny", deny));
    }
    return out;
}

/* The shared or tenant pool that serves s for slot i if it exists (never creates one), else NULL.
 * A session's own pools are not looked at: the print stays a function of the principal and the
 * profile (print_cached), and such a server counts for every kind. */
static mg_pool_t *pool_of(const mg_gateway_t *gw, const mg_session_t *s, size_t i)
{
    const mg_gw_server_t *srv = &gw->servers[i];
    if (srv->shared != NULL)
        return srv->shared;
    if (srv->cfg->isolation == MG_ISOLATION_TENANT)
        return mg_map_get(&srv->tenants, mg__tenant_of(s->principal));
    return NULL;
}

/* 0 when the pool serving s for slot i is known not to offer kind (ready, and its initialize
 * result has no capability for it); 1 when it does or may (not started, starting, restarted). */
static int may_offer(const mg_gateway_t *gw, const mg_session_t *s, size_t i, int kind)
{
    mg_pool_t *p = pool_of(gw, s, i);
    if (p == NULL || p->up == NULL || mg_upstream_state(p->up) != MG_UPSTREAM_READY)
        return 1;
    const json_t *caps = json_object_get(mg_upstream_init_result(p->up), "capabilities");
    return !json_is_object(caps) || json_object_get(caps, cap_names[kind]) != NULL;
}

static json_t *servers_view(const mg_gateway_t *gw, const mg_session_t *s, int kind,
                            const unsigned char *changed)
{
    json_t *out = json_array();
    for (size_t i = 0; out != NULL && i < gw->nservers; i++) {
        const mg_gw_server_t *srv = &gw->servers[i];
        if (srv->removed || !mg_auth_policy_may_see(gw->cfg->auth, s->principal, srv->cfg->name) ||
            !may_offer(gw, s, i, kind))
            continue;
        json_array_append_new(out, json_pack("[s,b,s]", srv->cfg->name, changed != NULL && changed[i],
                                             srv->prefix ? srv->prefix : ""));
    }
    return out;
}

/* gateway.tools as it reaches session s (NEW). */
static json_t *tools_view(const mg_gateway_t *gw, const mg_session_t *s)
{
    const json_t *raw = json_object_get(gw->cfg->raw_gateway, "tools");
    json_t *v = json_is_object(raw) ? mg_json_deep_copy(raw) : json_object();
    if (v == NULL)
        return NULL;
    const mg_principal_t *p = s->principal;
    json_object_del(v, "defaultProfile");
    const mg_tool_profile_t *prof = mg_toolsearch_session_profile(s->ts);
    const json_t *mine = prof != NULL ? json_object_get(json_object_get(raw, "profiles"), prof->name) : NULL;
    json_object_set_new(v, "profiles", mine ? mg_json_deep_copy(mine) : json_null());
    const json_t *tenants = json_object_get(raw, "tenants"), *scopes = json_object_get(raw, "scopes");
    json_object_del(v, "tenants");
    json_object_del(v, "scopes");
    if (p == NULL) /* without a principal neither applies (toolsearch/policy.c) */
        return v;
    const json_t *t = json_object_get(tenants, p->tenant ? p->tenant : "");
    if (t == NULL)
        t = json_object_get(tenants, "*");
    json_object_set_new(v, "tenants", t ? mg_json_deep_copy(t) : json_null());
    json_t *sv = json_object();
    json_object_set_new(sv, "any", json_boolean(json_object_size(scopes) > 0));
    for (size_t i = 0; i < p->nscopes; i++) {
        const json_t *e = json_object_get(scopes, p->scopes[i]);
        if (e != NULL)
            json_object_set_new(sv, p->scopes[i], mg_json_deep_copy(e));
    }
    json_object_set_new(v, "scopes", sv);
    return v;
}

static int hash_doc(const json_t *doc, unsigned char md[MG_SHA256_BYTES])
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL)
        return MG_ENOMEM;
    mg_sha256(text, strlen(text), md);
    free(text);
    return 0;
}

/* s's prints under gw's running state. 0 or MG_ENOMEM. */
static int print_of(const mg_gateway_t *gw, const mg_session_t *s, const unsigned char *changed, print_t *out)
{
    json_t *rules = rules_view(gw->cfg->auth, s->principal);
    int rc = rules != NULL ? 0 : MG_ENOMEM;
    for (int k = 0; k < MG_LIST_TEMPLATES && rc == 0; k++) {
        json_t *doc = json_pack("{s:o,s:O,s:o}", "servers", servers_view(gw, s, k, changed), "rules", rules,
                                "tools", k == MG_LIST_TOOLS ? tools_view(gw, s) : json_null());
        rc = doc != NULL ? hash_doc(doc, out->md[k]) : MG_ENOMEM;
        json_decref(doc);
    }
    json_decref(rules);
    return rc;
}

/* The prints depend on the session only through its principal (tenant, scopes, the rules that
 * apply) and its profile: sessions alike share one computation per pass. memo: key -> print_t. */
static int print_cached(const mg_gateway_t *gw, const mg_session_t *s, const unsigned char *changed,
                        mg_map_t *memo, print_t *out)
{
    const mg_principal_t *p = s->principal;
    const mg_tool_profile_t *prof = mg_toolsearch_session_profile(s->ts);
    size_t len = 80 + (prof != NULL && prof->name ? strlen(prof->name) : 0);
    for (size_t i = 0; p != NULL && i < p->nscopes; i++)
        len += strlen(p->scopes[i]) + 1;
    char *key = malloc(len);
    if (key == NULL)
        return print_of(gw, s, changed, out);
    size_t n = (size_t)snprintf(key, len, "%s|%s|", p ? p->key : "-", prof && prof->name ? prof->name : "");
    for (size_t i = 0; p != NULL && i < p->nscopes && n < len; i++)
        n += (size_t)snprintf(key + n, len - n, " %s", p->scopes[i]);
    const print_t *hit = mg_map_get(memo, key);
    if (hit != NULL) {
        *out = *hit;
        free(key);
        return 0;
    }
    int rc = print_of(gw, s, changed, out);
    print_t *keep = rc == 0 ? malloc(sizeof *keep) : NULL;
    if (keep != NULL) {
        *keep = *out;
        if (mg_map_set(memo, key, keep) != 0)
            free(keep);
    }
    free(key);
    return rc;
}

static void memo_dispose(mg_map_t *memo)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(memo, &pos, &key, &val))
        free(val);
    mg_map_dispose(memo);
}

static void snap_free(mg_view_snap_t *snap)
{
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&snap->by_id, &pos, &key, &val))
        free(val);
    mg_map_dispose(&snap->by_id);
    free(snap);
}

mg_view_snap_t *mg__view_snap_take(mg_gateway_t *gw)
{
    mg_view_snap_t *snap = calloc(1, sizeof *snap);
    if (snap == NULL)
        return NULL;
    mg_map_init(&snap->by_id);
    mg_map_t memo;
    mg_map_init(&memo);
    size_t pos = 0;
    const char *key;
    void *val;
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        if (s->closing || s == gw->stateless)
            continue;
        print_t *pr = malloc(sizeof *pr);
        if (pr == NULL || print_cached(gw, s, NULL, &memo, pr) != 0 ||
            mg_map_set(&snap->by_id, key, pr) != 0) {
            free(pr);
            snap_free(snap);
            memo_dispose(&memo);
            return NULL;
        }
    }
    memo_dispose(&memo);
    return snap;
}

size_t mg__view_snap_notify(mg_gateway_t *gw, mg_view_snap_t *snap, const unsigned char *changed)
{
    size_t notified = 0, pos = 0;
    const char *key;
    void *val;
    mg_map_t memo;
    mg_map_init(&memo);
    while (mg_map_next(&gw->sessions, &pos, &key, &val)) {
        mg_session_t *s = val;
        if (s->closing || s == gw->stateless)
            continue;
        const print_t *before = snap != NULL ? mg_map_get(&snap->by_id, key) : NULL;
        print_t after;
        unsigned bits = (1u << MG_LIST_TOOLS) | (1u << MG_LIST_PROMPTS) | (1u << MG_LIST_RESOURCES);
        if (before != NULL && print_cached(gw, s, changed, &memo, &after) == 0) {
            bits = 0;
            for (int k = 0; k < MG_LIST_TEMPLATES; k++)
                if (memcmp(before->md[k], after.md[k], sizeof after.md[k]) != 0)
                    bits |= 1u << k;
        }
        if (bits == 0)
            continue;
        mg__catalog_list_changed_to(gw, s, bits);
        notified++;
    }
    if (snap != NULL)
        snap_free(snap);
    memo_dispose(&memo);
    return notified;
}
