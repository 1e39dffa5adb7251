/*
 * query.h - query strings of /mcp: percent-decoding, the parameters mcpgate reads, and the check
 * that refuses every other one (and, with a stronger message, any name that carries a credential).
 *
 * Names and values are percent-decoded ("%5F" is "_", "+" is a space) before anything compares
 * them: "?access%5Ftoken=" is the same parameter as "?access_token=". A name that is malformed
 * (a bad %XX, a NUL or control character after decoding) refuses the request.
 * The parameters /mcp reads are MG_HTTP_MCP_QUERY_PARAMS (case-sensitive): profile
 * (toolsearch/runtime.c, gateway.tools.profiles).
 * Read next: auth/auth.c (where the check runs, first in the auth phase), docs/security.md.
 */
#ifndef MG_HTTP_QUERY_H
#define MG_HTTP_QUERY_H

#include <stddef.h>

/* NULL-terminated list of the query parameters /mcp reads. */
extern const char *const MG_HTTP_MCP_QUERY_PARAMS[];
/* The same for the 2024-11-05 HTTP+SSE transport (gateway.legacySse): GET /sse reads profile, POST
 * /messages reads sessionId (the session the endpoint event named; not a credential: the bearer
 * token stays in the Authorization header and the session is bound to its principal). */
extern const char *const MG_HTTP_SSE_QUERY_PARAMS[];
extern const char *const MG_HTTP_MESSAGES_QUERY_PARAMS[];

typedef enum mg_http_query_verdict {
    MG_HTTP_QUERY_OK = 0,
    MG_HTTP_QUERY_MALFORMED,  /* a name that does not decode */
    MG_HTTP_QUERY_CREDENTIAL, /* a name that carries a credential (token, key, auth, password...) */
    MG_HTTP_QUERY_UNKNOWN,    /* a name not in `allowed` */
    MG_HTTP_QUERY_REPEATED,   /* an allowed name given more than once */
} mg_http_query_verdict_t;

/* Checks every parameter of q[0..len) (the text after '?'; q may be NULL when len is 0) against
 * allowed (NULL-terminated). A credential-looking name wins over an unknown one, which wins over a
 * repeated one. On a refusal, name (cap bytes) receives the decoded name, made printable ('?' for
 * anything but printable ASCII, quotes included) and cut at 64 characters: safe to show a client
 * and to log. Empty segments ("?&&") are ignored. */
mg_http_query_verdict_t mg_http_query_check(const char *q, size_t len, const char *const *allowed, char *name,
                                            size_t cap);

/* The decoded value of the first parameter named `name` (decoded names compared exactly).
 * Returns 1 and writes out (NUL-terminated) when found, 0 when absent, MG_ETOOBIG when the value
 * does not fit in cap, MG_EINVAL when it does not decode. "?name" without "=" has the value "". */
int mg_http_query_get(const char *q, size_t len, const char *name, char *out, size_t cap);

#endif
