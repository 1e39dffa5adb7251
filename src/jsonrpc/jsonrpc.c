/*
 * jsonrpc.c - JSON-RPC 2.0 classification, depth-limited parsing and message builders (jsonrpc.h).
 */
#include "jsonrpc.h"
#include "../common/err.h"
#include "../common/json.h"

#include <string.h>

static int id_valid(const json_t *id)
{
    return json_is_string(id) || json_is_integer(id);
}

/* The envelope's members, as json_object_get would find them. */
typedef struct envelope {
    const json_t *jsonrpc, *id, *method, *params, *result, *error;
} envelope_t;

/* One walk over a small message's members instead of six hash lookups (a client's request has four
 * members; each json_object_get hashes its key). A message with many members is looked up. */
static void envelope_of(const json_t *msg, envelope_t *e)
{
    if (json_object_size(msg) > 8) {
        e->jsonrpc = json_object_get(msg, "jsonrpc");
        e->id = json_object_get(msg, "id");
        e->method = json_object_get(msg, "method");
        e->params = json_object_get(msg, "params");
        e->result = json_object_get(msg, "result");
        e->error = json_object_get(msg, "error");
        return;
    }
    memset(e, 0, sizeof *e);
    for (void *it = json_object_iter((json_t *)msg); it != NULL;
         it = json_object_iter_next((json_t *)msg, it)) {
        const char *k = json_object_iter_key(it);
        const json_t *v = json_object_iter_value(it);
        switch (json_object_iter_key_len(it)) {
        case 2:
            if (memcmp(k, "id", 2) == 0)
                e->id = v;
            break;
        case 5:
            if (memcmp(k, "error", 5) == 0)
                e->error = v;
            break;
        case 6:
            if (memcmp(k, "method", 6) == 0)
                e->method = v;
            else if (memcmp(k, "params", 6) == 0)
                e->params = v;
            else if (memcmp(k, "result", 6) == 0)
                e->result = v;
            break;
        case 7:
            if (memcmp(k, "jsonrpc", 7) == 0)
                e->jsonrpc = v;
            break;
        default:
            break;
        }
    }
}

mg_rpc_kind_t mg_rpc_classify(const json_t *msg, const char **why)
{
    const char *method;
    return mg_rpc_classify_method(msg, why, &method);
}

mg_rpc_kind_t mg_rpc_classify_method(const json_t *msg, const char **why, const char **method_out)
{
    const char *dummy;
    if (why == NULL)
        why = &dummy;
    *method_out = NULL;
    if (!json_is_object(msg)) {
        *why = "a JSON-RPC message must be a JSON object";
        return MG_RPC_INVALID;
    }
    envelope_t e;
    envelope_of(msg, &e);
    const json_t *v = e.jsonrpc;
    if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") != 0) {
        *why = "\"jsonrpc\" must be the string \"2.0\"";
        return MG_RPC_INVALID;
    }
    const json_t *id = e.id;
    const json_t *method = e.method;
    if (method != NULL) {
        if (!json_is_string(method)) {
            *why = "\"method\" must be a string";
            return MG_RPC_INVALID;
        }
        const json_t *params = e.params;
        if (params != NULL && !json_is_object(params) && !json_is_array(params)) {
            *why = "\"params\" must be an object or an array";
            return MG_RPC_INVALID;
        }
        if (e.result != NULL || e.error != NULL) {
            *why = "a request must not carry \"result\" or \"error\"";
            return MG_RPC_INVALID;
        }
        if (id == NULL) {
            *method_out = json_string_value(method);
            return MG_RPC_NOTIFICATION;
        }
        if (!id_valid(id)) {
            *why = "\"id\" must be a string or an integer (never null)";
            return MG_RPC_INVALID;
        }
        *method_out = json_string_value(method);
        return MG_RPC_REQUEST;
    }
    const json_t *result = e.result;
    const json_t *error = e.error;
    if (result != NULL && error != NULL) {
        *why = "a response must not carry both \"result\" and \"error\"";
        return MG_RPC_INVALID;
    }
    if (result != NULL) {
        if (!id_valid(id)) {
            *why = "a response \"id\" must be a string or an integer";
            return MG_RPC_INVALID;
        }
        return MG_RPC_RESPONSE;
    }
    if (error != NULL) {
        if (!json_is_object(error) || !json_is_integer(json_object_get(error, "code"))) {
            *why = "\"error\" must be an object with an integer \"code\"";
            return MG_RPC_INVALID;
        }
        if (id != NULL && !json_is_null(id) && !id_valid(id)) {
            *why = "an error \"id\" must be a string, an integer or null";
            return MG_RPC_INVALID;
        }
        return MG_RPC_ERROR;
    }
    *why = "a message needs \"method\" (request/notification) or \"result\"/\"error\" (response)";
    return MG_RPC_INVALID;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int mg_rpc_scan(const char *buf, size_t len, const mg_rpc_limits_t *lim, mg_rpc_size_t *out)
{
    size_t i = 0, nitems = 0, nvalues = 1;
    unsigned depth = 0;
    int in_str = 0, array = 0;
    while (i < len && is_space(buf[i]))
        i++;
    if (i < len && buf[i] == '[') {
        array = 1;
        size_t j = i + 1;
        while (j < len && is_space(buf[j]))
            j++;
        nitems = j < len && buf[j] != ']';
    }
    int err = 0;
    for (; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        switch (c) {
        case '"':
            in_str = 1;
            break;
        case '{':
        case '[':
            nvalues++;
            if (++depth > lim->max_depth)
                err = MG_ETOODEEP;
            break;
        case '}':
        case ']':
            if (depth > 0)
                depth--;
            break;
        case ',':
            nvalues++;
            if (array && depth == 1)
                nitems++;
            break;
        default:
            continue;
        }
        if (err != 0)
            break;
        if (nitems > lim->max_items || nvalues > lim->max_values) {
            err = MG_EREQUEST;
            break;
        }
    }
    out->items = nitems;
    out->values = nvalues;
    return err;
}

json_t *mg_rpc_parse(const char *buf, size_t len, const mg_rpc_limits_t *lim, int *err, mg_rpc_size_t *size)
{
    return mg_rpc_parse_params(buf, len, lim, err, size, NULL);
}

json_t *mg_rpc_parse_params(const char *buf, size_t len, const mg_rpc_limits_t *lim, int *err,
                            mg_rpc_size_t *size, mg_json_span_t *params)
{
    if (params != NULL) {
        params->key = "params";
        params->p = NULL;
        params->len = 0;
        params->v = NULL;
    }
    mg_rpc_size_t local;
    if (size == NULL)
        size = &local;
    size->items = size->values = 0;
    if (buf == NULL || len == 0) { /* an empty POST body has no buffer at all (found by fuzz_http.c) */
        *err = MG_EPARSE;
        return NULL;
    }
    /* One pass: read while counting what mg_rpc_scan counts, stopping at a bound passed. Whatever
     * it refuses takes the two passes below, which say which bound (or that the text is not JSON)
     * exactly as before; what it accepts, they accept with the same tree and counts. Raw NUL
     * bytes go to the two passes (mg_json_loadb's NUL quirk, common/json.c). */
    if (memchr(buf, '\0', len) == NULL) {
        const mg_json_bounds_t b = {lim->max_depth, lim->max_items, lim->max_values};
        json_t *v = mg_json_loadb_bounded(buf, len, MG_JSON_REJECT_DUPLICATES, &b, &size->items,
                                          &size->values, params);
        if (v != NULL) {
            *err = 0;
            return v;
        }
        size->items = size->values = 0;
    }
    if ((*err = mg_rpc_scan(buf, len, lim, size)) != 0)
        return NULL;
    /* No JSON_ALLOW_NUL: an escaped \u0000 inside a string is rejected; raw NUL bytes end the text. */
    if (memchr(buf, '\0', len) != NULL) {
        *err = MG_EPARSE;
        return NULL;
    }
    /* json_loadb(JSON_REJECT_DUPLICATES), without its byte-at-a-time lexer (common/json.h). */
    json_t *v = mg_json_loadb(buf, len, MG_JSON_REJECT_DUPLICATES);
    if (v == NULL || (!json_is_object(v) && !json_is_array(v))) {
        json_decref(v);
        *err = MG_EPARSE;
        return NULL;
    }
    *err = 0;
    return v;
}

json_t *mg_rpc_result(const json_t *id, json_t *result)
{
    json_t *m = json_object();
    json_object_set_new(m, "jsonrpc", json_string("2.0"));
    json_object_set_new(m, "id", id ? mg_json_deep_copy(id) : json_null());
    json_object_set_new(m, "result", result ? result : json_object());
    return m;
}

json_t *mg_rpc_error(const json_t *id, int code, const char *message, json_t *data)
{
    json_t *m = json_object();
    json_t *e = json_object();
    json_object_set_new(e, "code", json_integer(code));
    json_object_set_new(e, "message", json_string(message ? message : "error"));
    if (data != NULL)
        json_object_set_new(e, "data", data);
    json_object_set_new(m, "jsonrpc", json_string("2.0"));
    json_object_set_new(m, "id", id ? mg_json_deep_copy(id) : json_null());
    json_object_set_new(m, "error", e);
    return m;
}

json_t *mg_rpc_notification(const char *method, json_t *params)
{
    json_t *m = json_object();
    json_object_set_new(m, "jsonrpc", json_string("2.0"));
    json_object_set_new(m, "method", json_string(method));
    if (params != NULL)
        json_object_set_new(m, "params", params);
    return m;
}

const char *mg_rpc_method(const json_t *msg)
{
    return json_string_value(json_object_get(msg, "method"));
}

json_t *mg_rpc_id(const json_t *msg)
{
    return json_object_get(msg, "id");
}

json_t *mg_rpc_params(const json_t *msg)
{
    return json_object_get(msg, "params");
}

char *mg_rpc_dump(const json_t *msg, size_t *len)
{
    return mg_json_dump(msg, len); /* json_dumps(JSON_COMPACT)'s bytes (common/json.h) */
}
