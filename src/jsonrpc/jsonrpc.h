/*
 * jsonrpc.h - the only place that knows JSON-RPC 2.0 framing.
 *
 * Parse bytes into a classified message (request / notification / response), with a depth limit
 * applied before jansson builds the tree; build results and errors; read and write ids.
 * All json_t * returned are NEW references unless a comment says "borrowed".
 * Read next: upstream/upstream.h (id remapping on the way to a child).
 */
#ifndef MG_JSONRPC_H
#define MG_JSONRPC_H

#include "../common/json.h"

#include <jansson.h>
#include <stddef.h>

typedef enum mg_rpc_kind {
    MG_RPC_INVALID = 0,
    MG_RPC_REQUEST,      /* method + id */
    MG_RPC_NOTIFICATION, /* method, no id */
    MG_RPC_RESPONSE,     /* id + result */
    MG_RPC_ERROR,        /* id (or null) + error */
} mg_rpc_kind_t;

/*
 * Classifies one message object. Returns MG_RPC_INVALID for anything that is not a valid JSON-RPC
 * 2.0 message: jsonrpc != "2.0", id null/bool/float/object on a request, method not a string, both
 * result and error, params neither object nor array, error without integer code.
 * When invalid and why != NULL, *why is a static sentence saying what is wrong.
 */
mg_rpc_kind_t mg_rpc_classify(const json_t *msg, const char **why);
/* The same, and *method = the "method" string (borrowed from msg) of a request or notification,
 * NULL otherwise: what mg_rpc_method(msg) returns then, without a second lookup. */
mg_rpc_kind_t mg_rpc_classify_method(const json_t *msg, const char **why, const char **method);

/* The bounds one body is measured against before jansson builds anything (gateway.limits). */
typedef struct mg_rpc_limits {
    unsigned max_depth; /* nesting of objects and arrays */
    size_t max_items;   /* elements of a top-level array (a batch) */
    size_t max_values;  /* elements and members at every depth */
} mg_rpc_limits_t;

/* What a scan counted: items = elements of a top-level array (0 when the text is not an array);
 * values = opening brackets + commas + 1 (an array of N numbers counts N + 1). */
typedef struct mg_rpc_size {
    size_t items, values;
} mg_rpc_size_t;

/*
 * One pass over raw JSON text without building it (strings and escapes skipped; bytes are not
 * validated as JSON): depth, batch items and values together. Stops at the first bound passed.
 * Returns 0 within every bound, MG_ETOODEEP when nesting passes max_depth, MG_EREQUEST when items
 * or values pass their bound (*out says which: its count is just past the bound).
 */
int mg_rpc_scan(const char *buf, size_t len, const mg_rpc_limits_t *lim, mg_rpc_size_t *out);

/*
 * Parses a body: mg_rpc_scan against lim, then jansson (rejecting NUL bytes, invalid UTF-8 and
 * duplicate keys). Returns a NEW reference (object or array), or NULL with *err = MG_EPARSE,
 * MG_ETOODEEP or MG_EREQUEST (then *size, when not NULL, holds the counts that passed a bound).
 * A body within the bounds is read in one pass (mg_json_loadb_bounded); any other goes through
 * the scan, then jansson, so that the error is the scan's.
 */
json_t *mg_rpc_parse(const char *buf, size_t len, const mg_rpc_limits_t *lim, int *err, mg_rpc_size_t *size);

/*
 * mg_rpc_parse, also giving the text of a single message's "params" when the one pass read the
 * body and that text is canonical (common/json.h mg_json_span_t: the bytes mg_json_dump writes
 * for the value built from them); params->p is NULL otherwise (a batch, no params, whitespace,
 * escapes, reals, a body the two passes read). Sets params->key. The bytes point into buf.
 */
json_t *mg_rpc_parse_params(const char *buf, size_t len, const mg_rpc_limits_t *lim, int *err,
                            mg_rpc_size_t *size, mg_json_span_t *params);

/* {"jsonrpc":"2.0","id":id,"result":result}. id borrowed (copied); result STOLEN. */
json_t *mg_rpc_result(const json_t *id, json_t *result);
/* {"jsonrpc":"2.0","id":id|null,"error":{code,message[,data]}}. id borrowed (NULL -> null); data STOLEN. */
json_t *mg_rpc_error(const json_t *id, int code, const char *message, json_t *data);
/* {"jsonrpc":"2.0","method":method[,"params":params]}. params STOLEN (may be NULL). */
json_t *mg_rpc_notification(const char *method, json_t *params);

/* Borrowed accessors; NULL when absent. */
const char *mg_rpc_method(const json_t *msg);
json_t *mg_rpc_id(const json_t *msg);
json_t *mg_rpc_params(const json_t *msg);

/* Serializes compactly; caller frees with free(). */
char *mg_rpc_dump(const json_t *msg, size_t *len);

#endif
