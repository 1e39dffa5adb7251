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

/* Does the server part of pattern pat (before any '/') match server? *item_pat: the item part
 * after the '/', or NULL for a "server" pattern. */
static int server_part_matches(const char *pat, const char *server, const char **item_pat)
{
    const char *slash = strchr(pat, '/');
    char spat[256];
    size_t sl = slash ? (size_t)(slash - pat) : strlen(pat);
    *item_pat = slash ? slash + 1 : NULL;
    if (sl >= sizeof spat)
        return 0;
    memcpy(spat, pat, sl);
    spat[sl] = '\0';
    return mg_glob_match(spat, server);
}

/* Does pattern pat match (server, item)? item NULL = the server as a whole (only "server" or
 * "server/ *" patterns match then). */
static int pattern_matches(const char *pat, const char *server, const char *item)
{
    const char *ipat;
    if (!server_part_matches(pat, server, &ipat))
        return 0;
    if (ipat == NULL)
        return 1;
    if (item == NULL)
        return strcmp(ipat, "*") == 0;
    return mg_glob_match(ipat, item);
}

int mg_auth_policy_rule_applies(const mg_auth_rule_t *r, const mg_principal_t *p)
{
    if (r->tenant != NULL && (p == NULL || strcmp(r->tenant, p->tenant) != 0))
        return 0;
    if (r->scope != NULL && !mg_principal_has_scope(p, r->scope))
        return 0;
    return 1;
}

/* The rules' verdict on (server, item) for p: deny wins, else some applicable rule must allow.
 * any_item: an allow pattern counts when its server part matches (some item of the server may be
 * allowed); a deny pattern still needs to cover the server as a whole (item NULL). */
static int decide(const mg_auth_config_t *cfg, const mg_principal_t *p, const char *server, const char *item,
                  int any_item)
{
    if (cfg == NULL || cfg->nrules == 0)
        return 1;
    int allowed = 0;
    const char *ipat;
    for (size_t i = 0; i < cfg->nrules; i++) {
        const mg_auth_rule_t *r = &cfg->rules[i];
        if (!mg_auth_policy_rule_applies(r, p))
            continue;
        for (size_t k = 0; k < r->ndeny; k++)
            if (pattern_matches(r->deny[k], server, item))
                return 0;
        for (size_t k = 0; !allowed && k < r->nallow; k++)
            allowed = any_item ? server_part_matches(r->allow[k], server, &ipat)
                               : pattern_matches(r->allow[k], server, item);
    }
    return allowed;
}

int mg_auth_policy_allows(const mg_auth_config_t *cfg, const mg_principal_t *p, const char *server,
                          const char *item)
{
    return decide(cfg, p, server, item, 0);
}

int mg_auth_policy_may_see(const mg_auth_config_t *cfg, const mg_principal_t *p, const char *server)
{
    return decide(cfg, p, server, NULL, 1);
}
