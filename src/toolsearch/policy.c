/*
 * policy.c - which tools a session may see and call (toolsearch.h): the server's filter, the
 * gateway's, the selected profile's, the principal's tenant and scopes. One function decides for
 * both tools/list and tools/call, so a hidden tool is never callable and a callable tool is never
 * hidden by accident. Read next: runtime.c (where the decision is applied).
 */
#include "toolsearch.h"
#include "../common/glob.h"

#include <string.h>

int mg_toolsearch_filter_allows(const mg_tool_filter_t *f, const char *name)
{
    if (f == NULL)
        return 1;
    if (f->nallow > 0 && !mg_glob_any(f->allow, f->nallow, name))
        return 0;
    return !mg_glob_any(f->deny, f->ndeny, name);
}

static const mg_tool_rule_t *rule_find(const mg_tool_rule_t *rules, size_t n, const char *key)
{
    for (size_t i = 0; key != NULL && i < n; i++)
        if (rules[i].key != NULL && strcmp(rules[i].key, key) == 0)
            return &rules[i];
    return NULL;
}

int mg_toolsearch_policy_allows(const mg_tools_config_t *tc, const mg_server_config_t *srv,
                                const mg_tool_profile_t *profile, const mg_toolsearch_principal_t *who,
                                const char *original, const char *exposed)
{
    if (srv != NULL && !mg_toolsearch_filter_allows(&srv->tools, original))
        return 0;
    if (tc == NULL)
        return 1;
    if (!mg_toolsearch_filter_allows(&tc->filter, exposed))
        return 0;
    if (profile != NULL && !mg_toolsearch_filter_allows(&profile->filter, exposed))
        return 0;
    if (who == NULL)
        return 1;
    if (tc->ntenants > 0) {
        const mg_tool_rule_t *r = rule_find(tc->tenants, tc->ntenants, who->tenant);
        if (r == NULL)
            r = rule_find(tc->tenants, tc->ntenants, "*");
        if (r != NULL && !mg_toolsearch_filter_allows(&r->filter, exposed))
            return 0;
    }
    if (tc->nscopes > 0) {
        for (size_t i = 0; i < who->nscopes; i++) {
            const mg_tool_rule_t *r = rule_find(tc->scopes, tc->nscopes, who->scopes[i]);
            if (r != NULL && mg_toolsearch_filter_allows(&r->filter, exposed))
                return 1;
        }
        return 0; /* scope rules exist and none of the principal's scopes grants this tool */
    }
    return 1;
}

const mg_tool_profile_t *mg_toolsearch_profile_find(const mg_tools_config_t *tc, const char *name)
{
    for (size_t i = 0; tc != NULL && name != NULL && i < tc->nprofiles; i++)
        if (tc->profiles[i].name != NULL && strcmp(tc->profiles[i].name, name) == 0)
            return &tc->profiles[i];
    return NULL;
}

mg_tools_mode_t mg_toolsearch_mode(const mg_tools_config_t *tc, const mg_tool_profile_t *profile)
{
    if (profile != NULL && profile->mode != MG_TOOLS_INHERIT)
        return profile->mode;
    return tc != NULL && tc->mode == MG_TOOLS_LAZY ? MG_TOOLS_LAZY : MG_TOOLS_ALL;
}

int mg_toolsearch_always(const mg_tools_config_t *tc, const mg_tool_profile_t *profile, const char *exposed)
{
    if (profile != NULL && profile->has_always)
        return mg_glob_any(profile->always, profile->nalways, exposed);
    return tc != NULL && mg_glob_any(tc->always, tc->nalways, exposed);
}
