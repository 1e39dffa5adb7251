/*
 * auth.h - the auth phase of the request path: a bearer token becomes a principal {tenant,
 * subject, scopes}, or a refusal (400/401/403/429/503 with its challenge) that the gateway answers;
 * and the policy that decides what a principal may see and call.
 *
 * Credentials, tried in order: a static token (its SHA-256 compared in constant time with every
 * configured hash), a JWT access token (signature against the issuer's JWKS, iss, aud, exp/nbf,
 * optional maximum lifetime), an opaque token through RFC 7662 introspection. JWKS, issuer
 * metadata and introspection are fetched on the gateway's loop (fetch.h), never blocking it; a
 * request that needs them waits and resumes. The client's token never leaves this module: it is
 * not logged, not stored (only hashes of it, for caches), not forwarded upstream.
 * Read next: auth_int.h (state), jwt.c (what a token must satisfy), docs/security.md.
 */
#ifndef MG_AUTH_H
#define MG_AUTH_H

#include <uv.h>

#include "../config/auth_config.h"

typedef struct mg_auth mg_auth_t;
typedef struct st_h2o_req_t h2o_req_t;

/* Who is calling. Ref-counted: a session keeps the principal that created it. */
typedef struct mg_principal {
    int refs;
    char *tenant;
    char *subject; /* JWT `sub` (or introspection `sub`); the token's name for static tokens */
    char *name;    /* for logs: the static token's name, or the JWT's client (azp/client_id); may be NULL */
    char **scopes; /* NULL-terminated */
    size_t nscopes;
    const char *source; /* "token", "jwt" or "introspection" (static strings) */
    char key[65];       /* hex SHA-256 over (source, issuer, tenant, subject): what sessions are bound to */
} mg_principal_t;

/* NEW principal with refs 1 (scopes copied). NULL when out of memory. */
mg_principal_t *mg_principal_new(const char *source, const char *issuer, const char *tenant,
                                 const char *subject, const char *name, const char *const *scopes,
                                 size_t nscopes);
mg_principal_t *mg_principal_ref(mg_principal_t *p);
void mg_principal_unref(mg_principal_t *p);
/* 1 when both are NULL or both name the same principal (constant-time on the key). */
int mg_principal_same(const mg_principal_t *a, const mg_principal_t *b);
int mg_principal_has_scope(const mg_principal_t *p, const char *scope);

/* Creates the runtime for cfg (borrowed; must outlive it), with one reference (the caller's).
 * Returns 0 or MG_ENOMEM. */
int mg_auth_new(uv_loop_t *loop, const mg_auth_config_t *cfg, mg_auth_t **out);
/*
 * A reload: the next generation of prev's runtime, for cfg (borrowed; must outlive it), with one
 * reference (the caller's). It shares prev's record of which request has which principal, so
 * mg_auth_principal_of() on the newest generation finds the principal of a request an older one
 * authenticated, and prev's failed-credential blocks. Keys, issuer metadata and introspection
 * results are not shared (the issuer may have changed): the new generation fetches its own. prev
 * NULL is mg_auth_new(). Returns 0 or MG_ENOMEM.
 *
 * Lifetime: every request the auth phase is working on, or has authenticated, holds a reference
 * to the generation it started with; the caller drops its own with mg_auth_unref() when it
 * switches to the new generation. The old one keeps serving those requests (a JWKS wait or an
 * introspection round trip finishes against the old issuer) and is retired when the last of them
 * ends: stopped and released later from a close callback (never inside its own callback).
 */
int mg_auth_next(uv_loop_t *loop, mg_auth_t *prev, const mg_auth_config_t *cfg, mg_auth_t **out);
mg_auth_t *mg_auth_ref(mg_auth_t *a);
void mg_auth_unref(mg_auth_t *a);
/* Starts issuer discovery and the first JWKS fetch in the background (oauth only). */
void mg_auth_start(mg_auth_t *a);
/* Shutdown: cancels fetches, answers waiting requests 503, stops timers; for every generation of
 * a's family. */
void mg_auth_stop(mg_auth_t *a);
/* Shutdown, after stop: every generation of a's family is released whatever its references
 * (requests still alive see no principal from then on); handles close, memory goes from the close
 * callbacks. */
void mg_auth_free(mg_auth_t *a);

/*
 * What the auth phase decided about one request: go on with a principal, or a refusal for the
 * gateway to answer (the phase never writes the response itself). A refusal is answered with the
 * HTTP status and JSON-RPC code of err (common/err.h), an id-less JSON-RPC error whose message is
 * `message` and, when oauth_error is set, data {"error": oauth_error}; with Cache-Control:
 * no-store, Retry-After when retry_after_s > 0, and WWW-Authenticate when challenge is set
 * (mg_auth_challenge() writes its value from the parameters below).
 */
typedef struct mg_auth_decision {
    int err;                     /* 0 = go on; else MG_EREQUEST (400), MG_EUNAUTHORIZED (401),
                                    MG_EFORBIDDEN (403), MG_EAUTHBACKOFF (429), MG_EAUTHDOWN (503),
                                    MG_ENOMEM */
    mg_principal_t *principal;   /* err 0: borrowed for the callback (ref it to keep it); NULL without
                                    auth */
    const char *oauth_error;     /* static: "invalid_token", "invalid_request", ...; NULL = no data */
    unsigned retry_after_s;      /* 0 = no Retry-After */
    int challenge;               /* 1 = send WWW-Authenticate (RFC 6750 3) */
    const char *error;           /* its error="...": static; NULL when no credentials were sent */
    char error_description[256]; /* "" = none */
    char resource_metadata[600]; /* RFC 9728 metadata URL, "" = none */
    char scope[1024];            /* space-separated scope-tokens, "" = none */
    char message[1600];
} mg_auth_decision_t;

/* The WWW-Authenticate value of decision d into out (cap bytes): `Bearer realm="mcpgate"` and the
 * parameters d carries. */
void mg_auth_challenge(const mg_auth_decision_t *d, char *out, size_t cap);

/* d: borrowed for the duration of the call. */
typedef void (*mg_auth_done_cb)(void *data, h2o_req_t *req, const mg_auth_decision_t *d);

/*
 * The auth phase for one request to the MCP endpoint. a may be NULL (no auth configured): then only
 * the query-string rule applies. cb runs exactly once with the decision, now or later (after a JWKS
 * refresh or an introspection round trip), and never if h2o disposed the request meanwhile. A
 * refusal: 400 token in the query string, 401 with a challenge, 403 insufficient_scope, 429 too many
 * failures, 503 keys unavailable; the caller answers it.
 */
void mg_auth_phase(mg_auth_t *a, h2o_req_t *req, mg_auth_done_cb cb, void *data);

/* The principal the auth phase attached to req (borrowed; valid while req lives), NULL without auth. */
mg_principal_t *mg_auth_principal_of(mg_auth_t *a, h2o_req_t *req);

/* Answers /.well-known/oauth-protected-resource[/path] (RFC 9728) and, for 2025-03-26 clients,
 * /.well-known/oauth-authorization-server and /.well-known/openid-configuration. Returns 0 when
 * it answered, -1 when the path is not one of these (the caller answers 404). a may be NULL. */
int mg_auth_handle_well_known(mg_auth_t *a, h2o_req_t *req);

/*
 * Policy: may principal p see and use `item` of upstream `server`? item is a tool or prompt name as
 * the upstream names it, a resource URI or a resource template (NULL = the server as a whole).
 * Without rules (or without auth) everything is allowed. With rules, an item is allowed when a rule
 * matching p (tenant, scope) allows it and no matching rule denies it.
 */
int mg_auth_policy_allows(const mg_auth_config_t *cfg, const mg_principal_t *p, const char *server,
                          const char *item);

/* 1 when rule r applies to principal p (its tenant and scope, when set, are p's). */
int mg_auth_policy_rule_applies(const mg_auth_rule_t *r, const mg_principal_t *p);
/* 0 when no item of upstream `server` can be allowed to p (rules exist, and none matching p allows
 * a pattern of that server, or one denies the server as a whole); 1 when some item may be. What a
 * reload uses to tell whether a session can see a server at all (gateway/view.c). */
int mg_auth_policy_may_see(const mg_auth_config_t *cfg, const mg_principal_t *p, const char *server);

/* `mcpgate token ...` (cli.h): `token new --tenant T --scope S [--name N]`, `token hash`. */
int mg_cli_token(int argc, char **argv);

#endif
