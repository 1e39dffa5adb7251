/*
 * fuzz_json.c - libFuzzer target, differential: src/common/json.c against jansson 2.14 on the same
 * bytes. Oracles: mg_json_loadb accepts exactly what json_loadb accepts (flags 0 and
 * JSON_REJECT_DUPLICATES), the trees are json_equal, and mg_json_dump writes exactly
 * json_dumps(JSON_COMPACT)'s bytes for them. Any difference aborts with both results printed.
 * jsonrpc/rpcraw.h: a text mg_rpc_raw_scan takes as canonical loads, dumps back to itself, and its
 * "id" and "result" spans are the dumps of those members; splicing an id equals the tree path.
 * mg_json_span_t: the span mg_json_loadb_bounded reports for a top-level member is that member's
 * dump, and a text that dumps back to itself has every member reported.
 * Read next: src/common/json.h, test/unit/test_json.c (the same oracles on generated texts).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "jsonrpc/rpcraw.h"

/* The dump of v equals bytes p[0..n). */
static int dumps_to(const json_t *v, const char *p, size_t n)
{
    mg_jbuf_t b;
    mg_jbuf_init(&b, NULL, 0, (size_t)1 << 30);
    mg_jbuf_put_json(&b, v);
    int ok = b.err == 0 && b.len == n && memcmp(b.p, p, n) == 0;
    mg_jbuf_dispose(&b);
    return ok;
}

static void check_raw(const char *text, size_t size)
{
    mg_rpc_raw_t raw;
    if (mg_rpc_raw_scan(text, size, &raw) != 0)
        return;
    json_t *tree = mg_json_loadb(text, size, 0);
    if (tree == NULL || !dumps_to(tree, raw.p, raw.len)) {
        fprintf(stderr, "rpcraw took a text that does not round-trip\n");
        abort();
    }
    json_t *id = json_object_get(tree, "id"), *res = json_object_get(tree, "result");
    if ((id != NULL) != raw.has_id || (res != NULL) != raw.has_result ||
        (json_object_get(tree, "error") != NULL) != raw.has_error ||
        (json_object_get(tree, "method") != NULL) != raw.has_method ||
        (id != NULL && !dumps_to(id, raw.p + raw.id_off, raw.id_len)) ||
        (res != NULL && !dumps_to(res, raw.p + raw.result_off, raw.result_len)) ||
        (id != NULL && raw.id_is_int != json_is_integer(id)) ||
        (raw.id_is_int && raw.id != json_integer_value(id)) ||
        (res != NULL &&
         raw.is_error != (json_is_object(res) && json_is_true(json_object_get(res, "isError"))))) {
        fprintf(stderr, "rpcraw envelope differs from the tree\n");
        abort();
    }
    if (raw.has_id) {
        json_t *cid = json_string("client");
        json_object_set(tree, "id", cid);
        mg_jbuf_t b;
        mg_jbuf_init(&b, NULL, 0, (size_t)1 << 30);
        mg_rpc_raw_put_with_id(&b, &raw, cid);
        if (b.err != 0 || !dumps_to(tree, b.p, b.len)) {
            fprintf(stderr, "rpcraw id splice differs from the tree path\n");
            abort();
        }
        mg_jbuf_dispose(&b);
        json_decref(cid);
    }
    json_decref(tree);
}

/* A real anywhere in v (the reader reports no span holding one, even where it dumps as read). */
static int has_real(const json_t *v)
{
    if (json_is_real(v))
        return 1;
    const char *k;
    size_t i;
    json_t *x;
    int found = 0;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, x) found |= has_real(x);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) found |= has_real(x);
    }
    return found;
}

/* mg_json_text_member on a canonical object text p[0..len) read to obj: every member (a name
 * without NUL) is found with its dump's bytes, and a name that is not a member is absent. */
static void check_members(const json_t *obj, const char *p, size_t len)
{
    const char *k, *v;
    size_t vl;
    json_t *x;
    json_object_foreach((json_t *)obj, k, x)
    {
        if (mg_json_text_member(p, len, k, &v, &vl) != 1 || !dumps_to(x, v, vl)) {
            fprintf(stderr, "member '%s' of a canonical text: not found, or not its dump\n", k);
            abort();
        }
    }
    if (json_object_get(obj, "\x7f-absent") == NULL &&
        mg_json_text_member(p, len, "\x7f-absent", &v, &vl) != 0) {
        fprintf(stderr, "a member absent from a canonical text was found\n");
        abort();
    }
}

/* The span of the top-level object's last member (mg_json_span_t) against its dump; a text that
 * dumps back to itself with no escape and no real must have it reported. */
static void check_span(const char *text, size_t size)
{
    json_t *tree = mg_json_loadb(text, size, MG_JSON_REJECT_DUPLICATES);
    if (!json_is_object(tree) || json_object_size(tree) == 0) {
        json_decref(tree);
        return;
    }
    const char *key = NULL;
    size_t klen = 0;
    for (void *it = json_object_iter(tree); it != NULL; it = json_object_iter_next(tree, it)) {
        key = json_object_iter_key(it);
        klen = json_object_iter_key_len(it);
    }
    char *name = strndup(key, klen);
    if (name == NULL || strlen(name) != klen) { /* a key with a NUL cannot be named */
        free(name);
        json_decref(tree);
        return;
    }
    const mg_json_bounds_t bounds = {1u << 20, SIZE_MAX, SIZE_MAX};
    size_t items = 0, values = 0;
    mg_json_span_t span = {.key = name};
    json_t *got =
        mg_json_loadb_bounded(text, size, MG_JSON_REJECT_DUPLICATES, &bounds, &items, &values, &span);
    char *self = mg_json_dump(tree, NULL);
    int canonical = self != NULL && strlen(self) == size && memcmp(self, text, size) == 0 &&
                    memchr(text, '\\', size) == NULL && !has_real(tree);
    if (got == NULL || !json_equal(got, tree) ||
        (span.p != NULL && !dumps_to(json_object_get(tree, name), span.p, span.len)) ||
        (canonical && span.p == NULL)) {
        fprintf(stderr, "span of member '%s' differs from its dump (or is missing from a canonical text)\n",
                name);
        abort();
    }
    if (canonical)
        check_members(tree, text, size);
    if (span.p != NULL && json_is_object(span.v))
        check_members(span.v, span.p, span.len);
    free(self);
    free(name);
    json_decref(got);
    json_decref(tree);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    check_raw(text, size);
    check_span(text, size);
    for (int dup = 0; dup < 2; dup++) {
        json_t *want = json_loadb(text, size, dup ? JSON_REJECT_DUPLICATES : 0, NULL);
        json_t *got = mg_json_loadb(text, size, dup ? MG_JSON_REJECT_DUPLICATES : 0);
        if ((want == NULL) != (got == NULL)) {
            fprintf(stderr, "accept mismatch (dup=%d): jansson %s, mg_json_loadb %s\n", dup,
                    want ? "ok" : "fails", got ? "ok" : "fails");
            abort();
        }
        if (want != NULL) {
            if (!json_equal(want, got)) {
                fprintf(stderr, "trees differ (dup=%d)\n", dup);
                abort();
            }
            char *a = json_dumps(want, JSON_COMPACT);
            char *b = mg_json_dump(got, NULL);
            if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0)) {
                fprintf(stderr, "dumps differ: jansson '%s', mg '%s'\n", a ? a : "(null)", b ? b : "(null)");
                abort();
            }
            free(a);
            free(b);
        }
        json_decref(want);
        json_decref(got);
    }
    return 0;
}
