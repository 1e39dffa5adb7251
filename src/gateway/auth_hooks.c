/*
 * auth_hooks.c - the gateway's calls into the auth policy (auth_hooks.h). Logs every refusal with the
 * principal's tenant and name (never a token) so operators can tell "hidden by policy" from
 * "does not exist", which clients cannot.
 * Read next: src/auth/policy.c.
 */
#include "auth_hooks.h"
#include "../common/log.h"

#include <string.h>

mg_principal_t *mg__auth_call_principal(const mg_call_t *c)
{
    if (c->principal != NULL)
        return c->principal;
    if (c->x != NULL && c->x->principal != NULL)
        return c->x->principal;
    return c->s != NULL ? c->s->principal : NULL;
}

static int allowed(const mg_call_t *c, size_t server, const char *name, int log_refusal)
{
    const mg_gateway_t *gw = c->gw;
    const mg_auth_config_t *cfg = gw->cfg->auth;
    if (cfg == NULL || cfg->nrules == 0 || server >= gw->nservers)
        return 1;
    const mg_principal_t *p = mg__auth_call_principal(c);
    const char *srv = gw->servers[server].cfg->name;
    if (mg_auth_policy_allows(cfg, p, srv, name))
        return 1;
    if (log_refusal)
        mg_log_json(MG_LOG_INFO, "refused by gateway.auth.rules",
                    json_pack("{s:s,s:s,s:s,s:s,s:s}", "tenant", p ? p->tenant : "", "principal",
                              p && p->name ? p->name
                              : p          ? p->subject
                                           : "",
                              "method", c->method, "upstream", srv, "name", name ? name : ""));
    return 0;
}

int mg__auth_item_allowed(const mg_call_t *c, mg_list_kind_t kind, size_t server, const json_t *item)
{
    const char *key = kind == MG_LIST_RESOURCES ? "uri" : kind == MG_LIST_TEMPLATES ? "uriTemplate" : "name";
    const char *name = json_string_value(json_object_get(item, key));
    return allowed(c, server, name ? name : "", 0);
}

int mg__auth_name_allowed(const mg_call_t *c, size_t server, const char *name)
{
    return allowed(c, server, name ? name : "", 1);
}
