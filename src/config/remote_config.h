/*
 * remote_config.h - a remote (HTTP) server entry of mcpServers and gateway.egress: plain data, parsed
 * by remote_config.c, read by upstream/remote*.c (the remote upstream) and `mcpgate check`.
 *
 * A server entry is remote when it has "url", "serverUrl" or "httpUrl" (the spellings of Claude,
 * Cursor/Windsurf and Gemini configs) or a "type"/"transportType" other than "stdio". Header values
 * are secrets: they are expanded like env values (${env:}, ${file:}, the env file), kept with their
 * source, and never logged (check prints the source and the length). docs/configuration.md
 * ("Remote servers") is the reference. Read next: upstream/remote.c.
 */
#ifndef MG_REMOTE_CONFIG_H
#define MG_REMOTE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "../common/cidr.h"
#include "config.h"

typedef enum mg_remote_transport {
    MG_REMOTE_AUTO = 0, /* no "type": probed (server/discover, initialize, then HTTP+SSE) */
    MG_REMOTE_HTTP,     /* "http", "streamable-http", "streamableHttp": Streamable HTTP */
    MG_REMOTE_SSE,      /* "sse": the 2024-11-05 HTTP+SSE transport */
} mg_remote_transport_t;

/* One tenant's credential: the headers sent on that tenant's pool instead of none. */
typedef struct mg_remote_tenant {
    char *tenant;
    mg_kv_t *headers;
    size_t nheaders;
} mg_remote_tenant_t;

/* "auth": how the gateway gets its own token for this server (never the client's). */
typedef struct mg_remote_auth {
    char *token_url;     /* "tokenUrl": the token endpoint; NULL = from issuer discovery */
    char *issuer;        /* "issuer": RFC 8414 / OIDC discovery gives the token endpoint */
    char *client_id;     /* "clientId" */
    char *client_secret; /* "clientSecret" (a secret: expanded, never logged) */
    char *secret_source; /* where clientSecret came from ("env:X"...), for check */
    char *scope;         /* "scope", or NULL */
    char *resource;      /* "resource" (RFC 8707), default: the server's url */
    int exchange;        /* type "token_exchange" (RFC 8693): each call carries a token exchanged for
                            the caller's; the session's own requests the client-credentials token */
} mg_remote_auth_t;

typedef struct mg_remote_config {
    char *url;                       /* http:// or https:// URL of the MCP endpoint */
    const char *url_key;             /* which key gave it ("url", "serverUrl", "httpUrl"); static */
    mg_remote_transport_t transport; /* "type" */
    mg_kv_t *headers;                /* "headers": static headers, values expanded (secrets) */
    size_t nheaders;
    mg_remote_tenant_t *tenants; /* "tenantCredentials": per-tenant headers (isolation "tenant") */
    size_t ntenants;
    char *ca;                    /* "ca": PEM CA bundle file; NULL = the system's */
    uint64_t connect_timeout_ms; /* "connectTimeoutMs", default 10 s */
    uint64_t first_byte_ms;      /* "firstByteTimeoutMs": request sent -> response head, default =
                                    the server's timeoutMs */
    uint64_t idle_stream_ms;     /* "idleStreamTimeoutMs": an SSE stream silent this long is
                                    reconnected (GET) or failed (POST), default 5 min */
    size_t max_response_bytes;   /* "maxResponseBytes": one response body or one SSE event,
                                    default gateway.limits.maxUpstreamLineBytes */
    mg_remote_auth_t *auth;      /* "auth": {"type": "client_credentials", ...}, or NULL */
} mg_remote_config_t;

/* "gateway.egress" (struct mg_egress_config in config.h): allowCidrs, the blocks upstream URLs may
 * resolve to despite the SSRF guard (allow_text: the same as written, for messages). */
typedef struct mg_egress_config mg_egress_config_t;

/* The tenant's credential of r, or NULL when it names none. */
const mg_remote_tenant_t *mg_remote_config_tenant(const mg_remote_config_t *r, const char *tenant);

void mg_remote_config_free(mg_remote_config_t *r);
void mg_egress_config_dispose(mg_egress_config_t *e);

#endif
