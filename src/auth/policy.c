/*
 * policy.c - what a principal may see and call (gateway.auth.rules).
 *
 * A rule applies to a principal when its `tenant` (if set) equals the principal's tenant and its
 * `scope` (if set) is among the principal's scopes. Patterns are "server" (everything of that
 * upstream) or "server/item" where item is a tool or prompt name as the upstream names it, a
 * resource URI or a resource template; both parts take * and ? globs. Without rules everything is
 * allowed (the gateway behaves as before auth existed). With rules, an item is allowed when at
 * least one applicable rule allows it and no applicable rule denies it: default deny, deny wins.
 * Read next: hooks.c (where the gateway asks), docs/security.md.
 */
#include "auth_int.h"
#include "../common/glob.h"

#include <string.h>

/* Does pattern pat match (server, item)? item NULL = the server as a whole (only "server" or
 * "server/ *" patterns match then). */
static int pattern_matches(const char *pat, const char *server, const char *item)
{
    const char *slash = strchr(pat, '/');
    char spat[256];
    size_t sl = slash ? (size_t)(slash - pat) : strlen(pat);
    if (sl >= sizeof spat)
        return 0;
    memcpy(spat, pat, sl);
    spat[sl] = '\0';
    if (!mg_glob_match(spat, server))
        return 0;
    if (slash == NULL)
        return 1;
    if (item == NULL)
        return strcmp(slash + 1, "*") == 0;
    return mg_glob_match(slash + 1, item);
}

int mg_auth_policy_rule_applies(const mg_auth_rule_t *r, const mg_principal_t *p)
{
    if (r->tenant != NULL && (p == NULL || strcmp(r->tenant, p->tenant) != 0))
        return 0;
    if (r->scope != NULL && !mg_principal_has_scope(p, r->scope))
        return 0;
    return 1;
}

int mg_auth_policy_allows(const mg_auth_config_t *cfg, const mg_principal_t *p, const char *server,
                          const char *item)
{
    if (cfg == NULL || cfg->nrules == 0)
        return 1;
    int allowed = 0;
    for (size_t i = 0; i < cfg->nrules; i++) {
        const mg_auth_rule_t *r = &cfg->rules[i];
        if (!mg_auth_policy_rule_applies(r, p))
            continue;
        for (size_t k = 0; k < r->ndeny; k++)
            if (pattern_matches(r->deny[k], server, item))
                return 0;
        for (size_t k = 0; !allowed && k < r->nallow; k++)
            allowed = pattern_matches(r->allow[k], server, item);
    }
    return allowed;
}

/* Does the server part of pattern pat match server? */
static int server_part_matches(const char *pat, const char *server)
{
    const char *slash = strchr(pat, '/');
    char spat[256];
    size_t sl = slash ? (size_t)(slash - pat) : strlen(pat);
    if (sl >= sizeof spat)
        return 0;
    memcpy(spat, pat, sl);
    spat[sl] = '\0';
    return mg_glob_match(spat, server);
}

int mg_auth_policy_may_see(const mg_auth_config_t *cfg, const mg_principal_t *p, const char *server)
{
    if (cfg == NULL || cfg->nrules == 0)
        return 1;
    int may = 0;
    for (size_t i = 0; i < cfg->nrules; i++) {
        const mg_auth_rule_t *r = &cfg->rules[i];
        if (!mg_auth_policy_rule_applies(r, p))
            continue;
        for (size_t k = 0; k < r->ndeny; k++)
            if (pattern_matches(r->deny[k], server, NULL))
                return 0;
        for (size_t k = 0; !may && k < r->nallow; k++)
            may = server_part_matches(r->allow[k], server);
    }
    return may;
}
