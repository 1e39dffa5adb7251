/*
 * auth_hooks.h - where the gateway asks the auth module (dispatch.c, src/policy/hooks.c). The
 * gateway's side of the boundary: these read the gateway's own structures and ask auth.h, which
 * knows nothing of the gateway.
 *
 * The principal of a call is the one the auth phase attached to its HTTP request, stored on the
 * exchange (session era: always equal to the session's, which require_session() enforces).
 * Read next: src/auth/policy.c (the rules), src/auth/auth.h.
 */
#ifndef MG_GATEWAY_AUTH_HOOKS_H
#define MG_GATEWAY_AUTH_HOOKS_H

#include "../auth/auth.h"
#include "gateway_int.h"

/* The principal behind call c (borrowed), NULL without auth. */
mg_principal_t *mg__auth_call_principal(const mg_call_t *c);
/* May c's principal see this list item of server index `server`? (tools/prompts by original name,
 * resources by uri, templates by uriTemplate). The item is the upstream's, before renaming. */
int mg__auth_item_allowed(const mg_call_t *c, mg_list_kind_t kind, size_t server, const json_t *item);
/* May c's principal use `name` (original tool/prompt name, or a resource URI) of server index
 * `server`? A refused call is answered as if the name did not exist (tools/list never showed it). */
int mg__auth_name_allowed(const mg_call_t *c, size_t server, const char *name);

#endif
