/*
 * err.h - the one table of mcpgate error codes.
 *
 * Every fallible function in mcpgate returns 0 on success or a negative MG_E* code. The X-macro
 * below generates the enum, mg_strerror() (human text), mg_err_name() ("MG_ENOMEM") and the
 * JSON-RPC error code and the HTTP status a client sees (mg_err_jsonrpc_code(), mg_err_http_status()):
 * every protocol error the gateway answers with is named here once. Read next: jsonrpc/jsonrpc.h.
 */
#ifndef MG_ERR_H
#define MG_ERR_H

/*
 * X(name, value, jsonrpc_code, http_status, text)
 *
 * jsonrpc_code: the "code" of the JSON-RPC error a client receives (the wire contract; the e2e and
 * conformance suites assert it). http_status: the status of a plain-JSON answer when the gateway
 * refuses the whole HTTP request with this error (the reason phrase is mg_http_reason(status) in
 * http/status.c); an error that ends one call inside a session-era answer rides in a 200 unless the
 * call path sets a status from this column. A new protocol error gets a row here, never a literal
 * code at its call site (scripts/checksrc.sh fails on a literal -32xxx anywhere else in src/).
 */
#define MG_ERRNO_MAP(X)                                                                                      \
    X(ENOMEM, -1, -32603, 500, "out of memory")                                                              \
    X(EINVAL, -2, -32602, 400, "invalid argument")                                                           \
    X(EPARSE, -3, -32700, 400, "parse error: the body is not valid JSON")                                    \
    X(EREQUEST, -4, -32600, 400, "invalid JSON-RPC request")                                                 \
    X(EMETHOD, -5, -32601, 404, "method not found")                                                          \
    X(EPARAMS, -6, -32602, 400, "invalid params")                                                            \
    X(EINTERNAL, -7, -32603, 500, "internal error")                                                          \
    X(ENOTFOUND, -8, -32602, 404, "not found")                                                               \
    X(ETOOBIG, -9, -32600, 413, "input exceeds a configured limit")                                          \
    X(ETOODEEP, -10, -32600, 400, "JSON nesting exceeds the configured depth limit")                         \
    X(EUPSTREAM, -11, -32603, 502, "upstream server failed")                                                 \
    X(EUPSTREAMDOWN, -12, -32603, 503, "upstream server is not running")                                     \
    X(ETIMEOUT, -13, -32001, 504, "request timed out")                                                       \
    X(ECANCELLED, -14, -32800, 500, "request cancelled")                                                     \
    X(EBUSY, -15, -32603, 503, "too many requests in flight; retry later")                                   \
    X(ECONFIG, -16, -32603, 500, "configuration error")                                                      \
    X(EIO, -17, -32603, 500, "input/output error")                                                           \
    X(ESPAWN, -18, -32603, 503, "could not start upstream process")                                          \
    X(ECLOSED, -19, -32603, 503, "object is closing")                                                        \
    X(ERESOURCE, -20, -32002, 404, "resource not found")                                                     \
    X(ESHUTDOWN, -21, -32603, 503, "gateway is shutting down")                                               \
    X(ENOSESSION, -22, -32001, 404, "session not found: it expired or was deleted")                          \
    X(EUNAUTHORIZED, -23, -32001, 401, "unauthorized: a valid bearer token is required")                     \
    X(EFORBIDDEN, -24, -32001, 403, "forbidden: the token lacks a required scope")                           \
    X(EAUTHDOWN, -25, -32001, 503, "the identity provider could not be reached; retry shortly")              \
    X(EAUTHBACKOFF, -26, -32001, 429, "too many failed authentication attempts; retry later")                \
    X(ESTOREDOWN, -27, -32603, 503, "session store unavailable; retry shortly")                              \
    X(EREPLICA, -28, -32603, 502, "the replica that owns this session failed or could not be reached")       \
    X(EORIGIN, -29, -32600, 403, "Host or Origin header not allowed")                                        \
    X(ENOTACCEPTABLE, -30, -32600, 406, "the Accept header excludes the response's media type")              \
    X(EMEDIATYPE, -31, -32600, 415, "unsupported Content-Type")                                              \
    X(EHTTPMETHOD, -32, -32600, 405, "HTTP method not allowed")                                              \
    X(EINFLIGHT, -33, -32603, 429, "too many requests in flight for this session")                           \
    X(EHEADERMISMATCH, -34, -32020, 400, "header mismatch: an MCP header disagrees with the body")           \
    X(ECAPABILITY, -35, -32021, 400, "missing required client capability")                                   \
    X(EVERSION, -36, -32022, 400, "unsupported protocol version")                                            \
    X(ERATELIMIT, -37, -32029, 429, "rate limit reached")                                                    \
    X(EBLOCKED, -38, -32040, 403, "call refused by tool pinning or scanning")

typedef enum mg_err {
    MG_OK = 0,
#define MG__ERR_ENUM(name, value, code, status, text) MG_##name = (value),
    MG_ERRNO_MAP(MG__ERR_ENUM)
#undef MG__ERR_ENUM
} mg_err_t;

/* Human-readable text for an MG_E* code (never NULL; "unknown error" for unknown codes). */
const char *mg_strerror(int err);
/* Symbolic name ("MG_ENOMEM") for an MG_E* code (never NULL). */
const char *mg_err_name(int err);
/* JSON-RPC error code a client receives for an MG_E* code (MG_EINTERNAL's for unknown codes). */
int mg_err_jsonrpc_code(int err);
/* HTTP status of a plain-JSON answer refusing a request with an MG_E* code (500 for unknown codes). */
int mg_err_http_status(int err);

#endif
