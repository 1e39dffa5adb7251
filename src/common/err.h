/*
 * err.h - the one table of mcpgate error codes.
 *
 * Every fallible function in mcpgate returns 0 on success or a negative MG_E* code. The X-macro
 * below generates the enum, mg_strerror() (human text), mg_err_name() ("MG_ENOMEM") and the
 * JSON-RPC error code a client sees (mg_err_jsonrpc_code()). Read next: jsonrpc/jsonrpc.h.
 */
#ifndef MG_ERR_H
#define MG_ERR_H

/* X(name, value, jsonrpc_code, text) */
#define MG_ERRNO_MAP(X)                                                                                      \
    X(ENOMEM, -1, -32603, "out of memory")                                                                   \
    X(EINVAL, -2, -32602, "invalid argument")                                                                \
    X(EPARSE, -3, -32700, "parse error: the body is not valid JSON")                                         \
    X(EREQUEST, -4, -32600, "invalid JSON-RPC request")                                                      \
    X(EMETHOD, -5, -32601, "method not found")                                                               \
    X(EPARAMS, -6, -32602, "invalid params")                                                                 \
    X(EINTERNAL, -7, -32603, "internal error")                                                               \
    X(ENOTFOUND, -8, -32602, "not found")                                                                    \
    X(ETOOBIG, -9, -32600, "input exceeds a configured limit")                                               \
    X(ETOODEEP, -10, -32600, "JSON nesting exceeds the configured depth limit")                              \
    X(EUPSTREAM, -11, -32603, "upstream server failed")                                                      \
    X(EUPSTREAMDOWN, -12, -32603, "upstream server is not running")                                          \
    X(ETIMEOUT, -13, -32001, "request timed out")                                                            \
    X(ECANCELLED, -14, -32800, "request cancelled")                                                          \
    X(EBUSY, -15, -32603, "too many requests in flight; retry later")                                        \
    X(ECONFIG, -16, -32603, "configuration error")                                                           \
    X(EIO, -17, -32603, "input/output error")                                                                \
    X(ESPAWN, -18, -32603, "could not start upstream process")                                               \
    X(ECLOSED, -19, -32603, "object is closing")                                                             \
    X(ERESOURCE, -20, -32002, "resource not found")                                                          \
    X(ESHUTDOWN, -21, -32603, "gateway is shutting down")

typedef enum mg_err {
    MG_OK = 0,
#define MG__ERR_ENUM(name, value, code, text) MG_##name = (value),
    MG_ERRNO_MAP(MG__ERR_ENUM)
#undef MG__ERR_ENUM
} mg_err_t;

/* Human-readable text for an MG_E* code (never NULL; "unknown error" for unknown codes). */
const char *mg_strerror(int err);
/* Symbolic name ("MG_ENOMEM") for an MG_E* code (never NULL). */
const char *mg_err_name(int err);
/* JSON-RPC error code a client receives for an MG_E* code (-32603 for unknown codes). */
int mg_err_jsonrpc_code(int err);

#endif
