/*
 * cors.h - CORS decisions for /mcp (gateway.cors), apart from HTTP plumbing (hooks.c adds the
 * headers and answers preflights). CORS only decides which browser pages may READ responses; the
 * Host/Origin checks (http/origin.c, gateway.allowedOrigins/allowedHosts) run first and on their
 * own, whether CORS is on or off. Off by default; "*" never with credentials (the parser refuses it).
 * Read next: cors.c, docs/security.md#cors.
 */
#ifndef MG_POLICY_CORS_H
#define MG_POLICY_CORS_H

#include <stddef.h>

#include "policy.h"

/* Request headers a browser may send to /mcp (lower case); "mcp-param-*" is allowed as a prefix. */
extern const char mg_cors_allowed_headers[];
/* Response headers a page may read. */
extern const char mg_cors_exposed_headers[];

/* 1 when origin (len bytes, not NUL-terminated) is in the allowlist (compared without case) or "*" is. */
int mg_cors_origin_allowed(const mg_cors_config_t *c, const char *origin, size_t len);
/* 1 when the Access-Control-Request-Method of a preflight is one /mcp serves (GET, POST, DELETE). */
int mg_cors_method_ok(const char *m, size_t len);
/* 1 when every name in the comma-separated Access-Control-Request-Headers list may be sent. */
int mg_cors_request_headers_ok(const char *list, size_t len);

#endif
