/*
 * fuzz_jsonrpc.c - libFuzzer target: a client's POST body through the JSON-RPC layer
 * (mg_rpc_parse with the default depth limit, then mg_rpc_classify and the accessors on every
 * message, as gateway/era_legacy.c does), and the error builder echoing a client id.
 * Oracles: a body that parses has real nesting depth <= the limit (the byte-level depth check
 * and jansson agree); every classified message survives dump + reload; builders never fail;
 * mg_rpc_parse's one pass (mg_json_loadb_bounded) answers as the two passes (scan, then
 * mg_json_loadb) for bounds taken from the input: the same error, counts and tree bytes.
 * Read next: src/jsonrpc/jsonrpc.h, fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"
#include "jsonrpc/jsonrpc.h"

#define MAX_DEPTH 64u /* gateway.limits.maxJsonDepth default */

static unsigned depth_of(const json_t *v)
{
    unsigned d = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            unsigned c = depth_of(x);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            unsigned c = depth_of(x);
            d = c > d ? c : d;
        }
        return d + 1;
    }
    return 0;
}

static void one_message(json_t *m)
{
    const char *why = NULL;
    mg_rpc_kind_t k = mg_rpc_classify(m, &why);
    if (k == MG_RPC_INVALID && why == NULL)
        abort(); /* an invalid message always says why */
    json_t *id = mg_rpc_id(m);
    (void)mg_rpc_method(m);
    (void)mg_rpc_params(m);
    /* legacy.c echoes the id of an invalid message only when it is a string or an integer */
    const json_t *echo = json_is_string(id) || json_is_integer(id) ? id : NULL;
    json_t *e = mg_rpc_error(echo, -32600, why ? why : "ok", NULL);
    size_t len = 0;
    char *s = mg_rpc_dump(e, &len);
    if (s == NULL || len != strlen(s))
        abort();
    json_t *back = json_loads(s, 0, NULL);
    if (mg_rpc_classify(back, NULL) != MG_RPC_ERROR)
        abort(); /* what we send back is itself a valid JSON-RPC error */
    json_decref(back);
    free(s);
    json_decref(e);
    if (k == MG_RPC_REQUEST) {
        json_t *r = mg_rpc_result(id, json_object());
        if (mg_rpc_classify(r, NULL) != MG_RPC_RESPONSE)
            abort();
        json_decref(r);
    }
}

/* mg_rpc_parse as it was before the one-pass read: scan, NUL check, mg_json_loadb. */
static json_t *two_pass(const char *buf, size_t len, const mg_rpc_limits_t *lim, int *err,
                        mg_rpc_size_t *size)
{
    size->items = size->values = 0;
    if (buf == NULL || len == 0) {
        *err = MG_EPARSE;
        return NULL;
    }
    if ((*err = mg_rpc_scan(buf, len, lim, size)) != 0)
        return NULL;
    json_t *v = memchr(buf, '\0', len) != NULL ? NULL : mg_json_loadb(buf, len, MG_JSON_REJECT_DUPLICATES);
    *err = v != NULL ? 0 : MG_EPARSE;
    return v;
}

static void same_as_two_pass(const char *buf, size_t len, const mg_rpc_limits_t *lim)
{
    int e1 = -1, e2 = -1;
    mg_rpc_size_t s1, s2;
    json_t *a = mg_rpc_parse(buf, len, lim, &e1, &s1);
    json_t *b = two_pass(buf, len, lim, &e2, &s2);
    if (e1 != e2 || (a == NULL) != (b == NULL) || s1.items != s2.items || s1.values != s2.values)
        abort();
    if (a != NULL) {
        size_t n1 = 0, n2 = 0;
        char *d1 = mg_json_dump(a, &n1), *d2 = mg_json_dump(b, &n2);
        if ((d1 == NULL) != (d2 == NULL) || (d1 != NULL && (n1 != n2 || memcmp(d1, d2, n1) != 0)))
            abort();
        free(d1);
        free(d2);
    }
    json_decref(a);
    json_decref(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0) { /* bounds from the first byte, over the rest: small enough to be passed */
        const mg_rpc_limits_t small = {1u + (data[0] & 7u), 1u + ((data[0] >> 3) & 3u), 2u + (data[0] >> 5)};
        same_as_two_pass((const char *)data + 1, size - 1, &small);
    }
    const mg_rpc_limits_t wide = {MAX_DEPTH, 100, 100000};
    same_as_two_pass((const char *)data, size, &wide);

    int err = 0;
    const mg_rpc_limits_t lim = {MAX_DEPTH, (size_t)-1, (size_t)-1};
    mg_rpc_size_t counted;
    json_t *body = mg_rpc_parse((const char *)data, size, &lim, &err, NULL);
    int depth_ok = mg_rpc_scan((const char *)data, size, &lim, &counted) == 0;
    if (body == NULL) {
        if (err != MG_EPARSE && err != MG_ETOODEEP)
            abort();
        if (err == MG_ETOODEEP && depth_ok)
            abort();
        return 0;
    }
    if (!depth_ok || depth_of(body) > MAX_DEPTH)
        abort(); /* the depth limit was bypassed */
    if (json_is_array(body)) {
        size_t i;
        json_t *m;
        json_array_foreach(body, i, m) one_message(m);
    } else {
        one_message(body);
    }
    json_decref(body);
    return 0;
}
