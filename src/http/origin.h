/*
 * origin.h - Host and Origin rules (DNS-rebinding defence), applied before anything else on /mcp.
 *
 * Host: when the gateway listens on a loopback address, the Host header must name a loopback host
 * (localhost, 127.x.x.x, [::1]; any port) or be in allowedHosts: a DNS-rebinding page that resolves
 * evil.example to 127.0.0.1 sends "Host: evil.example" and is refused. On other addresses the Host
 * is checked only when allowedHosts is configured.
 * Origin: absent -> allowed (non-browser clients). Present -> allowed when it is in allowedOrigins
 * (exact, case-insensitive), or when the gateway is loopback-bound and the origin's host is a
 * loopback host. Anything else -> 403. "null" is never allowed.
 * Read next: http/server.c (where these run).
 */
#ifndef MG_ORIGIN_H
#define MG_ORIGIN_H

#include <stddef.h>

typedef struct mg_origin_rules {
    int loopback_bound;
    const char *const *allowed_hosts; /* borrowed */
    size_t nallowed_hosts;
    const char *const *allowed_origins; /* borrowed */
    size_t nallowed_origins;
} mg_origin_rules_t;

/* 1 when the host part (port stripped, brackets kept for IPv6) is localhost, 127/8 or [::1] and what
 * follows it is nothing or ":" and a decimal port. */
int mg_origin_is_loopback_host(const char *host, size_t len);
/* 1 when allowed. host may be NULL (HTTP/1.0 without Host: allowed only when loopback-bound). */
int mg_origin_host_allowed(const mg_origin_rules_t *r, const char *host, size_t len);
/* 1 when allowed. origin NULL = header absent. */
int mg_origin_origin_allowed(const mg_origin_rules_t *r, const char *origin, size_t len);

#endif
