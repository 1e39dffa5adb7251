/*
 * config_tools.c - the tool keys of the config file: "gateway.tools" (mode, always, allow/deny,
 * compact, searchLimit, profiles, defaultProfile, tenants, scopes) and a server's "tools"
 * {allow, deny} with the other clients' spellings includeTools / excludeTools / disabledTools.
 *
 * Same rules as config.c: every problem is reported through mg__config_errf() and the walk goes
 * on. Globs are taken as written (no ${...} expansion): 1..256 bytes, no control characters.
 * What the values mean at runtime: src/toolsearch/toolsearch.h and docs/tool-search.md.
 * Read next: config.c (the caller), toolsearch/policy.c (the consumer).
 */
#include "config.h"
#include "config_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GLOB         256
#define MAX_GLOBS        10000
#define MAX_SEARCH_LIMIT 50

/* Appends the globs of array v to *vec (NULL-terminated, *n entries). Returns 0 or -1 (reported). */
static int read_globs(mg__config_ctx_t *ctx, const char *where, const json_t *v, char ***vec, size_t *n)
{
    if (!json_is_array(v)) {
        mg__config_errf(ctx, "%s: must be an array of tool-name globs like [\"github__get_*\"]", where);
        return -1;
    }
    size_t add = json_array_size(v);
    if (*n + add > MAX_GLOBS) {
        mg__config_errf(ctx, "%s: more than %d globs", where, MAX_GLOBS);
        return -1;
    }
    char **grown = realloc(*vec, (*n + add + 1) * sizeof *grown);
    if (grown == NULL) {
        ctx->nomem = 1;
        return -1;
    }
    *vec = grown;
    grown[*n] = NULL;
    int rc = 0;
    for (size_t i = 0; i < add; i++) {
        const char *g = json_string_value(json_array_get(v, i));
        size_t len = g ? strlen(g) : 0;
        int bad = g == NULL || len == 0 || len > MAX_GLOB;
        for (size_t k = 0; !bad && k < len; k++) {
            bad = (unsigned char)g[k] < 0x20 || g[k] == 0x7f;
        }
        if (bad) {
            mg__config_errf(ctx,
                            "%s[%zu]: must be a glob of 1 to %d characters without control characters "
                            "('*' matches any run, '?' one character)",
                            where, i, MAX_GLOB);
            rc = -1;
            continue;
        }
        char *copy = mg__config_strdup(ctx, g);
        if (copy == NULL) {
            return -1;
        }
        grown[(*n)++] = copy;
        grown[*n] = NULL;
    }
    return rc;
}

static int read_mode(mg__config_ctx_t *ctx, const char *where, const json_t *v, mg_tools_mode_t *out)
{
    const char *m = json_string_value(v);
    if (m != NULL && strcmp(m, "all") == 0) {
        *out = MG_TOOLS_ALL;
    } else if (m != NULL && strcmp(m, "lazy") == 0) {
        *out = MG_TOOLS_LAZY;
    } else {
        mg__config_errf(ctx,
                        "%s: must be \"all\" (every tool listed) or \"lazy\" (a search tool plus the "
                        "\"always\" tools; searching adds tools to the session's list)",
                        where);
        return -1;
    }
    return 0;
}

/* ---- the {allow, deny} objects and profiles, walked by table (common/cfgval.h) ---- */

static void allow_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    mg_tool_filter_t *f = dst;
    read_globs(arg, where, v, &f->allow, &f->nallow);
}

static void deny_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    mg_tool_filter_t *f = dst;
    read_globs(arg, where, v, &f->deny, &f->ndeny);
}

static const mg_cfg_field_t filter_fields[] = {
    {"allow", MG_CFG_T_NONE, 0, 0, 0, 0, 0, allow_read},
    {"deny", MG_CFG_T_NONE, 0, 0, 0, 0, 0, deny_read},
    MG_CFG_FIELD_END,
};

/* Walks a filter object v named where into f (v must be an object). */
static void walk_filter(mg__config_ctx_t *ctx, const char *where, const json_t *v, mg_tool_filter_t *f)
{
    mg_cfg_object_t o = {where, filter_fields, NULL, (size_t)-1, MG_CFG_SUGGEST, 256, 0};
    mg_cfg_walk(&ctx->rd, &o, v, f, ctx);
}

static void profile_filter(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    mg_tool_profile_t *p = dst;
    (strcmp(strrchr(where, '.') + 1, "allow") == 0 ? allow_read : deny_read)(c, where, v, ok, &p->filter,
                                                                             arg);
}

static void profile_mode(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    read_mode(arg, where, v, &((mg_tool_profile_t *)dst)->mode);
}

static void profile_always(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    mg_tool_profile_t *p = dst;
    p->has_always = 1;
    read_globs(arg, where, v, &p->always, &p->nalways);
}

static const mg_cfg_field_t profile_fields[] = {
    {"allow", MG_CFG_T_NONE, 0, 0, 0, 0, 0, profile_filter},
    {"deny", MG_CFG_T_NONE, 0, 0, 0, 0, 0, profile_filter},
    {"mode", MG_CFG_T_NONE, 0, 0, 0, 0, 0, profile_mode},
    {"always", MG_CFG_T_NONE, 0, 0, 0, 0, 0, profile_always},
    MG_CFG_FIELD_END,
};

static int name_ok(const char *k)
{
    size_t n = strlen(k);
    return n > 0 && n <= 64 &&
           strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static void read_profiles(mg__config_ctx_t *ctx, mg_tools_config_t *t, const json_t *obj)
{
    char q[80], where[192];
    if (!json_is_object(obj)) {
        mg__config_errf(ctx, "gateway.tools.profiles: must be an object mapping profile names to "
                             "{\"allow\": [...], \"deny\": [...], \"mode\": ..., \"always\": [...]}");
        return;
    }
    size_t n = json_object_size(obj);
    t->profiles = calloc(n ? n : 1, sizeof *t->profiles);
    if (t->profiles == NULL) {
        ctx->nomem = 1;
        return;
    }
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)obj, name, v)
    {
        snprintf(where, sizeof where, "gateway.tools.profiles.%s", mg_cfg_quote(name, q, sizeof q));
        if (!name_ok(name)) {
            mg__config_errf(ctx,
                            "%s: a profile name must be 1 to 64 characters from A-Z a-z 0-9 _ . - (clients "
                            "select it with ?profile=NAME or the Mcpgate-Profile header)",
                            where);
            continue;
        }
        if (!json_is_object(v)) {
            mg__config_errf(ctx, "%s: must be an object like {\"allow\": [\"github__*\"]}", where);
            continue;
        }
        mg_tool_profile_t *p = &t->profiles[t->nprofiles++];
        p->mode = MG_TOOLS_INHERIT;
        p->name = mg__config_strdup(ctx, name);
        mg_cfg_object_t o = {where, profile_fields, NULL, (size_t)-1, MG_CFG_SUGGEST, 256, 0};
        mg_cfg_walk(&ctx->rd, &o, v, p, ctx);
    }
}

static void read_rules(mg__config_ctx_t *ctx, const char *what, const json_t *obj, mg_tool_rule_t **out,
                       size_t *n)
{
    char q[80], where[192];
    if (!json_is_object(obj)) {
        mg__config_errf(ctx,
                        "gateway.tools.%s: must be an object mapping each %s to {\"allow\": [...], "
                        "\"deny\": [...]}",
                        what, what[0] == 't' ? "tenant" : "scope");
        return;
    }
    size_t count = json_object_size(obj);
    *out = calloc(count ? count : 1, sizeof **out);
    if (*out == NULL) {
        ctx->nomem = 1;
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        snprintf(where, sizeof where, "gateway.tools.%s.%s", what, mg_cfg_quote(key, q, sizeof q));
        if (key[0] == '\0' || strlen(key) > 256) {
            mg__config_errf(ctx, "%s: must be 1 to 256 characters", where);
            continue;
        }
        if (!json_is_object(v)) {
            mg__config_errf(ctx, "%s: must be an object like {\"allow\": [\"github__*\"]}", where);
            continue;
        }
        mg_tool_rule_t *r = &(*out)[(*n)++];
        r->key = mg__config_strdup(ctx, key);
        walk_filter(ctx, where, v, &r->filter);
    }
}

/* ---- gateway.tools, walked by table ---- */

static void tools_mode(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    read_mode(arg, where, v, &((mg_tools_config_t *)dst)->mode);
}

static void tools_always(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    mg_tools_config_t *t = dst;
    read_globs(arg, where, v, &t->always, &t->nalways);
}

static void tools_filter(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    mg_tools_config_t *t = dst;
    (strcmp(strrchr(where, '.') + 1, "allow") == 0 ? allow_read : deny_read)(c, where, v, ok, &t->filter,
                                                                             arg);
}

static void tools_profiles(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    read_profiles(arg, dst, v);
}

static void tools_default_profile(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst,
                                  void *arg)
{
    mg_tools_config_t *t = dst;
    if (!json_is_string(v)) {
        mg_cfg_errf(c, "%s: must be the name of a profile (a string)", where);
    } else {
        free(t->default_profile);
        t->default_profile = mg__config_strdup(arg, json_string_value(v));
    }
}

static void tools_rules(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    mg_tools_config_t *t = dst;
    if (strcmp(strrchr(where, '.') + 1, "tenants") == 0)
        read_rules(arg, "tenants", v, &t->tenants, &t->ntenants);
    else
        read_rules(arg, "scopes", v, &t->scopes, &t->nscopes);
}

static const mg_cfg_field_t tools_fields[] = {
    {"mode", MG_CFG_T_NONE, 0, 0, 0, 0, 0, tools_mode},
    {"always", MG_CFG_T_NONE, 0, 0, 0, 0, 0, tools_always},
    {"allow", MG_CFG_T_NONE, 0, 0, 0, 0, 0, tools_filter},
    {"deny", MG_CFG_T_NONE, 0, 0, 0, 0, 0, tools_filter},
    {"compact", MG_CFG_T_BOOL, MG_CFG_AT(mg_tools_config_t, compact), 0, 0, 0, 0, NULL},
    {"searchLimit", MG_CFG_T_UNSIGNED, MG_CFG_AT(mg_tools_config_t, search_limit), 0, 1, MAX_SEARCH_LIMIT, 0,
     NULL},
    {"profiles", MG_CFG_T_NONE, 0, 0, 0, 0, 0, tools_profiles},
    {"defaultProfile", MG_CFG_T_NONE, 0, 0, 0, 0, 0, tools_default_profile},
    {"tenants", MG_CFG_T_NONE, 0, 0, 0, 0, 0, tools_rules},
    {"scopes", MG_CFG_T_NONE, 0, 0, 0, 0, 0, tools_rules},
    MG_CFG_FIELD_END,
};
static const mg_cfg_object_t tools_object = {"gateway.tools", tools_fields, NULL, (size_t)-1,
                                             MG_CFG_SUGGEST,  256,          0};

void mg__config_parse_tools(mg__config_ctx_t *ctx, mg_config_t *cfg, const json_t *obj)
{
    mg_tools_config_t *t = &cfg->tools;
    if (!json_is_object(obj)) {
        mg__config_errf(ctx, "gateway.tools: must be an object like {\"mode\": \"lazy\", \"always\": [...]}");
        return;
    }
    mg_cfg_walk(&ctx->rd, &tools_object, obj, t, ctx);
    if (t->default_profile != NULL) {
        int found = 0;
        for (size_t i = 0; i < t->nprofiles; i++) {
            found |= t->profiles[i].name != NULL && strcmp(t->profiles[i].name, t->default_profile) == 0;
        }
        if (!found) {
            char q[80];
            mg__config_errf(ctx, "gateway.tools.defaultProfile: '%s' is not one of gateway.tools.profiles",
                            mg_cfg_quote(t->default_profile, q, sizeof q));
        }
    }
}

void mg__config_parse_server_tools(mg__config_ctx_t *ctx, const char *sw, const char *key, const json_t *v,
                                   mg_tool_filter_t *f)
{
    char where[192];
    snprintf(where, sizeof where, "%s: %s", sw, key);
    if (strcmp(key, "includeTools") == 0) {
        read_globs(ctx, where, v, &f->allow, &f->nallow);
        return;
    }
    if (strcmp(key, "excludeTools") == 0 || strcmp(key, "disabledTools") == 0) {
        read_globs(ctx, where, v, &f->deny, &f->ndeny);
        return;
    }
    if (!json_is_object(v)) {
        mg__config_errf(ctx, "%s: must be an object like {\"allow\": [\"get_*\"], \"deny\": [\"delete_*\"]}",
                        where);
        return;
    }
    walk_filter(ctx, where, v, f);
}

void mg__config_tool_filter_dispose(mg_tool_filter_t *f)
{
    mg_cfg_strings_free(f->allow, f->nallow);
    mg_cfg_strings_free(f->deny, f->ndeny);
    memset(f, 0, sizeof *f);
}

void mg__config_tools_dispose(mg_tools_config_t *t)
{
    mg_cfg_strings_free(t->always, t->nalways);
    mg__config_tool_filter_dispose(&t->filter);
    for (size_t i = 0; i < t->nprofiles; i++) {
        free(t->profiles[i].name);
        mg__config_tool_filter_dispose(&t->profiles[i].filter);
        mg_cfg_strings_free(t->profiles[i].always, t->profiles[i].nalways);
    }
    free(t->profiles);
    free(t->default_profile);
    for (size_t i = 0; i < t->ntenants; i++) {
        free(t->tenants[i].key);
        mg__config_tool_filter_dispose(&t->tenants[i].filter);
    }
    free(t->tenants);
    for (size_t i = 0; i < t->nscopes; i++) {
        free(t->scopes[i].key);
        mg__config_tool_filter_dispose(&t->scopes[i].filter);
    }
    free(t->scopes);
    memset(t, 0, sizeof *t);
}
