/*
 * trace_meta.c - a request's W3C trace context (mg_upstream_caller_t.traceparent, tracestate) into
 * its params._meta, two ways that give the same bytes (ADR 0020):
 *   - written into the request line's text, as params' last member, when params is an object
 *     without "_meta" (mg__trace_splices, mg__trace_meta_put; used by child.c mg__request_line and
 *     mg__request_line_parts for a stdio line written during the caller's call, lent params text or
 *     not);
 *   - merged into copies of params and _meta in the message (mg__upstream_trace_tree): a client's
 *     _meta (a progressToken, its own traceparent) is kept, queued stdio requests, remote upstreams.
 * Both write "traceparent" and then "tracestate" (or drop a client's stale tracestate when none).
 * Called by upstream.c submit(), remote.c op_request_as(), iface.c. Read next: upstream_int.h.
 */
#include "upstream_int.h"
#include "../common/err.h"
#include "../common/json.h"

#include <string.h>

int mg__trace_splices(const json_t *params, const mg_upstream_caller_t *as)
{
    if (!json_is_object(params))
        return 0;
    if (as->params_text != NULL && as->params_no_meta && params == as->params_of)
        return 1; /* the lent object, whose members were read once (ADR 0019 amendment) */
    return json_object_get(params, "_meta") == NULL;
}

void mg__trace_meta_put(mg_jbuf_t *b, const char *traceparent, const char *tracestate)
{
    mg_jbuf_put(b, "\"_meta\":{\"traceparent\":", 23);
    mg_jbuf_put_str(b, traceparent, strlen(traceparent));
    if (tracestate != NULL) {
        mg_jbuf_put(b, ",\"tracestate\":", 14);
        mg_jbuf_put_str(b, tracestate, strlen(tracestate));
    }
    mg_jbuf_put(b, "}", 1);
}

int mg__upstream_trace_tree(json_t *msg, const char *traceparent, const char *tracestate)
{
    if (traceparent == NULL || !json_is_object(msg))
        return 0; /* nothing to do; a message that is not an object is the upstream's to refuse */
    json_t *params = json_object_get(msg, "params");
    if (params != NULL && !json_is_object(params))
        return 0; /* no place for _meta (a request's params is an object: nothing is lost) */
    json_t *p = params != NULL ? mg_json_copy(params) : json_object();
    json_t *meta = json_object_get(params, "_meta");
    json_t *m = json_is_object(meta) ? mg_json_copy(meta) : json_object();
    /* traceparent is ASCII by construction; tracestate printable ASCII (mg_trace_ctx_parse) */
    int r = p == NULL || m == NULL ||
            json_object_set_new_nocheck(m, "traceparent", json_string_nocheck(traceparent)) != 0;
    if (r == 0 && tracestate != NULL)
        r = json_object_set_new_nocheck(m, "tracestate", json_string_nocheck(tracestate));
    else if (r == 0 && json_object_size(m) > 1)
        json_object_del(m, "tracestate"); /* a client's, of a context that is not this request's */
    if (r != 0) {
        json_decref(p);
        json_decref(m);
        return MG_ENOMEM;
    }
    if (json_object_set_new_nocheck(p, "_meta", m) != 0) { /* consumed m */
        json_decref(p);
        return MG_ENOMEM;
    }
    return json_object_set_new_nocheck(msg, "params", p) != 0 ? MG_ENOMEM : 0; /* consumed p */
}

int mg__trace_merge_caller(json_t *msg, const mg_upstream_caller_t **as, mg_upstream_caller_t *plain)
{
    if (mg__upstream_trace_tree(msg, (*as)->traceparent, (*as)->tracestate) != 0)
        return MG_ENOMEM;
    *plain = **as;
    plain->traceparent = plain->tracestate = NULL;
    plain->params_text = NULL; /* it was the text of the params just replaced */
    *as = plain;
    return 0;
}
