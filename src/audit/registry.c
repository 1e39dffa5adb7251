/*
 * registry.c - every check of `mcpgate audit`: stable id, group, title, where the rule comes from and
 * the one-line fix. Ids never change meaning; a retired check keeps its id out of use. The order is
 * the report's (groups in the field report's checklist order, then the spec-only groups).
 * Read next: verdict.c (URL checks), verdict_config.c (config checks), docs/audit.md.
 */
#include "audit.h"

#include <string.h>

#define D(a) "docs/audit.md#" a

const mg_audit_check_t mg_audit_checks[] = {
    /* Transport */
    {"transport.streamable-http", "Transport", "Streamable HTTP served (POST initialize answered)",
     "spec 2025-11-25 basic/transports#streamable-http; checklist: Streamable HTTP confirmed",
     "serve the MCP endpoint as Streamable HTTP (POST JSON-RPC, JSON or SSE answers)", D("transport")},
    {"transport.eras", "Transport", "protocol revisions offered (2025 revisions, 2026-07-28 server/discover)",
     "spec basic/versioning; 2026-07-28 server/discover",
     "support 2025-11-25 at least; offer 2026-07-28 through server/discover", D("transport")},
    {"transport.legacy-sse", "Transport", "legacy HTTP+SSE transport disabled",
     "spec 2025-03-26 deprecated HTTP+SSE; checklist: SSE disabled",
     "turn the /sse + /messages endpoints off; clients use Streamable HTTP", D("transport")},
    {"transport.plain-http", "Transport", "TLS on non-loopback addresses",
     "spec basic/security_best_practices; RFC 9700 2.6", "serve https (or terminate TLS in front)",
     D("transport")},
    {"transport.bind", "Transport", "listen address and reachability beyond loopback",
     "checklist: 0.0.0.0 binding; spec basic/security_best_practices (local servers)",
     "reachable beyond loopback only with auth on (gateway.auth) and TLS in front", D("transport")},
    {"transport.dns-rebinding", "Transport", "foreign Host and Origin refused (DNS rebinding)",
     "spec 2025-11-25 basic/transports: servers MUST validate Origin (403)",
     "refuse Host/Origin not in an allowlist (mcpgate: gateway.allowedHosts / allowedOrigins)",
     D("transport")},
    {"transport.cors", "Transport", "CORS: no wildcard with credentials, no reflected origins",
     "Fetch standard CORS; field report: 22.9% of servers fully open",
     "allow named origins only (mcpgate: gateway.cors.allowedOrigins)", D("transport")},
    {"transport.egress", "Transport", "a remote server's URL reachable through the gateway's SSRF guard",
     "docs/security.md (SSRF guard); OWASP SSRF prevention",
     "point the entry at a public address, or allow its block in gateway.egress.allowCidrs",
     D("remote-servers")},
    /* Auth */
    {"auth.required", "Auth", "unauthenticated initialize refused",
     "checklist: bearer token in place; spec basic/authorization",
     "require a bearer token (mcpgate: gateway.auth; `mcpgate token new`)", D("auth")},
    {"auth.www-authenticate", "Auth", "401 carries WWW-Authenticate with RFC 9728 resource_metadata",
     "spec 2025-11-25 basic/authorization (protected resource metadata); RFC 9728 5.1",
     "answer 401 with WWW-Authenticate: Bearer resource_metadata=\"...\"", D("auth")},
    {"auth.metadata", "Auth", "RFC 9728 / RFC 8414 metadata well formed and consistent",
     "RFC 9728 3-3.3; RFC 8414 3; spec basic/authorization (authorization server discovery)",
     "publish /.well-known/oauth-protected-resource with resource = this URL and authorization_servers",
     D("auth")},
    {"auth.query-token", "Auth", "credentials in the query string refused",
     "spec basic/authorization: tokens MUST NOT be in the URI query string; checklist item",
     "refuse access_token and other credentials in the query string (400)", D("auth")},
    {"auth.upstream-credentials", "Auth", "a remote server's credential kept out of the config text",
     "checklist: no hard-coded credentials; RFC 6749 4.4 (client credentials); RFC 8693 (token exchange)",
     "take header values from ${env:NAME} or ${file:PATH}, or let the gateway mint tokens (auth)",
     D("remote-servers")},
    {"auth.token-lifetime", "Auth", "access token lifetime at most 1 hour (exp - iat)",
     "checklist: token lifecycle configured (access token <= 1 h); RFC 9700 2.2",
     "issue access tokens of 1 hour or less, with refresh tokens", D("auth")},
    {"auth.token-audience", "Auth", "access token audience bound to this resource",
     "spec basic/authorization (audience binding, RFC 8707); RFC 9068 4",
     "issue tokens with aud = this resource and check aud on every request", D("auth")},
    {"auth.other-audience", "Auth", "a token for another audience refused",
     "spec basic/authorization: servers MUST validate that tokens were issued for them",
     "validate aud against this resource (mcpgate: gateway.auth.jwt.audience)", D("auth")},
    /* Session */
    {"session.id-entropy", "Session", "session ids long and random",
     "spec basic/transports#session-management: cryptographically secure ids",
     "draw session ids from a CSPRNG, 128 bits or more", D("session")},
    {"session.unknown-404", "Session", "unknown session id answered 404",
     "spec basic/transports: a terminated/unknown session MUST be 404",
     "answer 404 to an unknown Mcp-Session-Id so clients start a new session", D("session")},
    {"session.other-principal", "Session", "another principal's session refused",
     "spec basic/security_best_practices#session-hijacking: bind sessions to the user",
     "bind each session to the principal that created it", D("session")},
    {"session.replica", "Session", "sessions work behind round-robin (stateless or shared store)",
     "checklist: sticky sessions / external session store; 2026 roadmap",
     "share sessions across replicas (mcpgate: gateway.sessions.store redis) or go stateless", D("session")},
    /* Context */
    {"context.tool-count", "Context", "tool count per server within 30",
     "checklist: tool count audit (under 30 per server)",
     "filter tools (mcpServers.NAME.tools) or use lazy loading (gateway.tools.mode \"lazy\")", D("context")},
    {"context.token-cost", "Context", "token cost of the tool definitions",
     "field report: token tax (10K tokens: use tool search)",
     "shorten descriptions, compact (gateway.tools.compact) or use lazy loading", D("context")},
    {"context.lazy", "Context", "lazy loading or tool search offered when the catalog is large",
     "checklist: MCP Tool Search enabled", "enable gateway.tools.mode \"lazy\" (search_tools)", D("context")},
    {"context.cache-scope", "Context", "per-user lists not marked cacheScope public",
     "spec 2026-07-28: list results carry ttlMs and cacheScope",
     "mark lists that depend on the caller cacheScope \"private\"", D("context")},
    /* Env */
    {"env.credentials", "Env", "no empty or placeholder credentials",
     "checklist: credential startup validation; field report: Docker MCP Gateway #317",
     "give each server real credentials (env, ${env:}, --env-file); `mcpgate check`", D("env")},
    /* Tenant isolation */
    {"tenant.cross-session", "Tenant isolation", "nothing of one session reaches another",
     "checklist: session ID keyed state; field report: Asana incident",
     "key all state by session and tenant; never route messages by a global", D("tenant")},
    /* Supply chain */
    {"supply.description-scan", "Supply chain", "tool descriptions free of poisoning patterns",
     "checklist: regularly scan tool descriptions; mcpgate scan rules",
     "remove or hide the tool; pin definitions (mcpgate lock) and gateway.scan \"block\"", D("supply")},
    {"supply.definitions-stable", "Supply chain", "tool definitions identical between two listings",
     "field report: rug pulls / Postmark incident",
     "pin definitions (mcpgate lock, gateway.pinning \"block\")", D("supply")},
    {"supply.pinned", "Supply chain", "packages pinned to a version",
     "checklist: dependency lock + periodic audit",
     "pin each package: npx -y pkg@1.2.3, uvx pkg==1.2.3 (never @latest)", D("supply")},
    {"supply.publishers", "Supply chain", "packages from trusted publishers",
     "checklist: Tier 1 official servers only",
     "use official packages or list the publisher in gateway.audit.trustedPublishers", D("supply")},
    {"supply.lockfile", "Supply chain", "tool definitions pinned in a lockfile",
     "checklist: dependency lock; mcpgate lock", "run `mcpgate lock --config FILE` and commit the lockfile",
     D("supply")},
    /* Robustness */
    {"robust.body-limit", "Robustness", "oversized body refused with 413",
     "RFC 9110 15.5.14; field report: 52% of endpoints failing",
     "cap request bodies (mcpgate: gateway.limits.maxBodyBytes)", D("robust")},
    {"robust.malformed-json", "Robustness", "malformed JSON answered 400 with a JSON-RPC error",
     "JSON-RPC 2.0 5.1 (parse error); spec basic/transports",
     "answer unparsable bodies 400 with a JSON-RPC parse error", D("robust")},
    {"robust.unknown-method", "Robustness", "an unknown method answered \"method not found\" (stdio servers)",
     "JSON-RPC 2.0 5.1 (method not found); spec basic/lifecycle",
     "answer unknown methods with the JSON-RPC method-not-found error", D("robust")},
    {"robust.rate-limit", "Robustness", "rate limiting present (429 with Retry-After)",
     "field report: 2.4% of servers rate limit; RFC 6585 4",
     "limit requests per principal (mcpgate: gateway.rateLimits)", D("robust")},
    {"robust.error-bodies", "Robustness", "errors carry JSON-RPC bodies, not HTML or stack traces",
     "JSON-RPC 2.0 5; OWASP error handling", "answer errors with JSON-RPC error objects; never echo traces",
     D("robust")},
    /* 2026-07-28 */
    {"modern.header-mismatch", "2026-07-28",
     "Mcp-Method / Mcp-Name disagreeing with the body refused (header mismatch error)",
     "spec 2026-07-28 basic/transports/streamable-http (header validation)",
     "cross-check MCP headers against the body; answer 400 with the header-mismatch error", D("modern")},
    {"modern.request-state", "2026-07-28", "tampered requestState refused",
     "spec 2026-07-28 basic/patterns/mrtr: requestState is attacker-controlled",
     "integrity-protect requestState (HMAC/AEAD) and refuse it when it does not verify", D("modern")},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};

const mg_audit_check_t *mg_audit_check_find(const char *id)
{
    for (const mg_audit_check_t *c = mg_audit_checks; id != NULL && c->id != NULL; c++)
        if (strcmp(c->id, id) == 0)
            return c;
    return NULL;
}

const char *mg_audit_status_name(mg_audit_status_t s)
{
    static const char *const names[] = {"pass", "warn", "fail", "skip"};
    return (unsigned)s < 4 ? names[s] : "skip";
}
