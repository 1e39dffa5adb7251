/*
 * remote_mrtr.c - a 2026-07-28 upstream's input_required results relayed to a caller that cannot
 * take them (a 2025 session client): the multi round-trip request (MRTR) of the stateless revision
 * played as the session era's server->client requests.
 *
 * Called by remote.c only: mg__remote_mrtr_take() when a translated request (rreq_t.translate, set
 * from mg_upstream_caller_t.translate_inputs) gets its response, mg__remote_mrtr_answer() from
 * op_send for every message the caller sends to a 2026-07-28 upstream, mg__remote_mrtr_free() when
 * the request is freed. One round: each entry of inputRequests ({key: {method, params}}) becomes a
 * request {id, method, params} with a fresh id of the upstream's id space, given to related_cb as a
 * session-era upstream's request would be (the gateway puts it on the client's stream and routes the
 * client's answer back through mg_upstream_send); when every one is answered, the request is sent
 * again, same method and params, plus inputResponses {key: result} and the round's requestState.
 *
 * Ownership: the rounds (mg__mrtr_t) belong to the request and die with it; cancelling the request
 * (or its timeout, which runs while the client answers) ends everything, and answers that arrive
 * after are taken and dropped. Errors reach the caller as the request's JSON-RPC error response, a
 * sentence saying what happened: a capability the client did not declare (-32021 with
 * data.requiredCapabilities, before anything is asked), an error answer from the client, a malformed
 * input_required, more than MRTR_MAX_ROUNDS rounds.
 */
#include "../common/err.h"
#include "../common/json.h"
#include "remote_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MRTR_MAX_ROUNDS 16 /* rounds of one request: an upstream that never stops asking is refused */
#define MRTR_MAX_INPUTS 32 /* input requests in one round */

typedef struct mg__mrtr {
    json_t *asked;   /* this round's requests not answered yet: "<id>" -> key */
    json_t *answers; /* this round's answers: key -> result */
    json_t *state;   /* the round's requestState (a string), or NULL */
    unsigned rounds;
} mg__mrtr_t;

void mg__remote_mrtr_free(mg__mrtr_t *m)
{
    if (m == NULL)
        return;
    json_decref(m->asked);
    json_decref(m->answers);
    json_decref(m->state);
    free(m);
}

/* The client capability an input request needs, or NULL for a kind that cannot be relayed. */
static const char *capability_of(const char *method)
{
    if (method == NULL)
        return NULL;
    if (strcmp(method, "elicitation/create") == 0)
        return "elicitation";
    if (strcmp(method, "sampling/createMessage") == 0)
        return "sampling";
    if (strcmp(method, "roots/list") == 0)
        return "roots";
    return NULL;
}

static const char *method_of(const rreq_t *q)
{
    const char *m = json_string_value(json_object_get(q->msg, "method"));
    return m != NULL ? m : "request";
}

/* Finishes q with a JSON-RPC error response (code of err, message, data taken, may be NULL). */
static void fail(rreq_t *q, int code, const char *message, json_t *data)
{
    json_t *e = json_pack("{s:i,s:s}", "code", code, "message", message);
    if (e != NULL && data != NULL)
        json_object_set(e, "data", data);
    json_decref(data);
    json_t *resp =
        e != NULL ? json_pack("{s:s,s:I,s:o}", "jsonrpc", "2.0", "id", (json_int_t)q->id, "error", e) : NULL;
    if (resp == NULL)
        mg__remote_req_finish(q, MG_ENOMEM, NULL, NULL);
    else
        mg__remote_req_finish(q, 0, resp, NULL);
    json_decref(resp);
}

/* Checks one round's inputRequests: 0, or a sentence in why (and for missing capabilities, the
 * data object in *data and MG_ECAPABILITY in *err). */
static int check_round(rreq_t *q, json_t *inputs, char *why, size_t n, int *err, json_t **data)
{
    const char *name = q->r->server->name;
    *err = MG_EUPSTREAM;
    if (!json_is_object(inputs) || json_object_size(inputs) == 0 ||
        json_object_size(inputs) > MRTR_MAX_INPUTS) {
        snprintf(why, n,
                 "the '%s' server answered this %s with input_required but no valid inputRequests (an object "
                 "of 1 to %d requests); ask the server's maintainer",
                 name, method_of(q), MRTR_MAX_INPUTS);
        return -1;
    }
    if (q->mrtr != NULL && q->mrtr->rounds >= MRTR_MAX_ROUNDS) {
        snprintf(why, n,
                 "the '%s' server asked the client for input more than %d times during one %s; the gateway "
                 "stopped asking",
                 name, MRTR_MAX_ROUNDS, method_of(q));
        return -1;
    }
    json_t *missing = json_object();
    char kinds[160] = "";
    const char *key;
    json_t *ir;
    json_object_foreach(inputs, key, ir)
    {
        const char *m = json_string_value(json_object_get(ir, "method"));
        const char *cap = capability_of(m);
        json_t *params = json_object_get(ir, "params");
        if (cap == NULL || (params != NULL && !json_is_object(params))) {
            snprintf(why, n,
                     "the '%s' server asked the client for input of a kind the gateway cannot relay to a "
                     "2025 client (%s); only elicitation/create, sampling/createMessage and roots/list are",
                     name, m != NULL ? m : "no method");
            json_decref(missing);
            return -1;
        }
        if ((q->caps == NULL || json_object_get(q->caps, cap) == NULL) &&
            json_object_get(missing, cap) == NULL) {
            json_object_set_new(missing, cap, json_object());
            size_t l = strlen(kinds);
            snprintf(kinds + l, sizeof kinds - l, "%s%s (%s)", l ? ", " : "", cap, m);
        }
    }
    if (json_object_size(missing) == 0) {
        json_decref(missing);
        return 0;
    }
    snprintf(why, n,
             "Missing required client capability: the '%s' server needs %s to finish this %s, and this "
             "client did not declare it in initialize; connect with that capability declared",
             name, kinds, method_of(q));
    *err = MG_ECAPABILITY;
    *data = json_pack("{s:o}", "requiredCapabilities", missing);
    return -1;
}

int mg__remote_mrtr_take(rreq_t *q, json_t *response)
{
    json_t *res = json_object_get(response, "result");
    const char *rt = json_string_value(json_object_get(res, "resultType"));
    if (rt == NULL || strcmp(rt, "input_required") != 0)
        return 0;
    json_t *inputs = json_object_get(res, "inputRequests");
    char why[600];
    int err = 0;
    json_t *data = NULL;
    if (check_round(q, inputs, why, sizeof why, &err, &data) != 0) {
        fail(q, mg_err_jsonrpc_code(err), why, data);
        return 1;
    }
    mg__mrtr_t *m = q->mrtr;
    if (m == NULL && (m = q->mrtr = calloc(1, sizeof *m)) == NULL) {
        mg__remote_req_finish(q, MG_ENOMEM, NULL, NULL);
        return 1;
    }
    json_decref(m->asked);
    json_decref(m->answers);
    json_decref(m->state);
    m->asked = json_object();
    m->answers = json_object();
    json_t *st = json_object_get(res, "requestState");
    m->state = json_is_string(st) ? json_incref(st) : NULL;
    m->rounds++;
    json_t *out = json_array();
    if (m->asked == NULL || m->answers == NULL || out == NULL) {
        json_decref(out);
        mg__remote_req_finish(q, MG_ENOMEM, NULL, NULL);
        return 1;
    }
    const char *key;
    json_t *ir;
    json_object_foreach(inputs, key, ir)
    {
        int64_t id = q->r->next_id++;
        char ids[32];
        snprintf(ids, sizeof ids, "%" PRId64, id);
        json_t *params = json_object_get(ir, "params");
        params = json_is_object(params) ? mg_json_deep_copy(params) : json_object();
        /* the upstream's key, for a 2026-07-28 client to answer under (the gateway's hint, removed
         * before any client sees the request; a key the gateway cannot use gets one of its own) */
        json_t *pm = json_object_get(params, "_meta");
        if (params != NULL && !json_is_object(pm))
            json_object_set_new(params, "_meta", pm = json_object());
        json_object_set_new(pm, "io.mcpgate/inputKey", json_string(key));
        json_t *msg = json_pack("{s:s,s:I,s:O,s:o}", "jsonrpc", "2.0", "id", (json_int_t)id, "method",
                                json_object_get(ir, "method"), "params", params);
        if (msg == NULL || json_object_set_new(m->asked, ids, json_string(key)) != 0) {
            json_decref(msg);
            json_decref(out);
            mg__remote_req_finish(q, MG_ENOMEM, NULL, NULL);
            return 1;
        }
        json_array_append_new(out, msg);
    }
    mg__remote_req_wait_input(q); /* the upstream's answer is complete: its stream ends */
    mg_upstream_origin_t o = {0, q->generation};
    size_t i;
    json_t *msg;
    json_array_foreach(out, i, msg)
    {
        if (q->done || q->related_cb == NULL) /* refused or cancelled on the way */
            break;
        q->related_cb((mg_upstream_req_t *)q, o, msg, q->data);
    }
    if (!q->done && q->related_cb == NULL)
        fail(q, mg_err_jsonrpc_code(MG_EINTERNAL),
             "the upstream asked for client input and nobody can answer", NULL);
    json_decref(out);
    return 1;
}

int mg__remote_mrtr_answer(remote_t *r, const json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    if (!json_is_integer(id) || json_object_get(msg, "method") != NULL)
        return 0;
    char ids[32];
    snprintf(ids, sizeof ids, "%" PRId64, (int64_t)json_integer_value(id));
    for (rreq_t *q = r->inflight; q != NULL; q = q->next) {
        mg__mrtr_t *m = q->mrtr;
        const char *key = m != NULL ? json_string_value(json_object_get(m->asked, ids)) : NULL;
        if (key == NULL)
            continue;
        if (q->done)
            return 1;
        json_t *res = json_object_get(msg, "result");
        if (!json_is_object(res)) {
            json_t *e = json_object_get(msg, "error");
            const char *em = json_string_value(json_object_get(e, "message"));
            json_t *code = json_object_get(e, "code");
            char why[600];
            snprintf(why, sizeof why,
                     "the client answered the '%s' server's request for input (%s) with an error: %s; the %s "
                     "cannot finish without it",
                     r->server->name, key, em != NULL ? em : "no message", method_of(q));
            fail(q, json_is_integer(code) ? (int)json_integer_value(code) : mg_err_jsonrpc_code(MG_EUPSTREAM),
                 why, NULL);
            return 1;
        }
        if (json_object_set(m->answers, key, res) != 0 || json_object_del(m->asked, ids) != 0) {
            mg__remote_req_finish(q, MG_ENOMEM, NULL, NULL);
            return 1;
        }
        if (json_object_size(m->asked) > 0)
            return 1; /* more of this round to come */
        /* The round is answered: the same request again, with the answers and the upstream's state
         * (the caller's params are not modified: ours are a copy). */
        json_t *params = json_object_get(q->msg, "params");
        params = json_is_object(params) ? mg_json_copy(params) : json_object();
        if (params == NULL) {
            mg__remote_req_finish(q, MG_ENOMEM, NULL, NULL);
            return 1;
        }
        json_object_set_new(params, "inputResponses", m->answers);
        m->answers = json_object();
        if (m->state != NULL)
            json_object_set(params, "requestState", m->state);
        else
            json_object_del(params, "requestState");
        json_object_set_new(q->msg, "params", params);
        free(q->params_text); /* the lent text was of the params just replaced */
        q->params_text = NULL;
        q->params_of = NULL;
        mg__remote_req_resend(q);
        return 1;
    }
    return 0;
}
