/*
 * test_jsonrpc.c - classification, depth limit, parse errors and builders (src/jsonrpc/).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/json.h"
#include "jsonrpc/jsonrpc.h"
#include "jsonrpc/rpcraw.h"

static mg_rpc_kind_t kind_of(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    mg_rpc_kind_t k = mg_rpc_classify(j, NULL);
    /* mg_rpc_classify_method: the same kind, and the "method" string mg_rpc_method reads (the
     * same pointer) for a request or notification, NULL for anything else */
    const char *m = "unset";
    assert_int_equal(mg_rpc_classify_method(j, NULL, &m), k);
    if (k == MG_RPC_REQUEST || k == MG_RPC_NOTIFICATION)
        assert_ptr_equal(m, mg_rpc_method(j));
    else
        assert_null(m);
    json_decref(j);
    return k;
}

static void test_classify(void **state)
{
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"), MG_RPC_REQUEST);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"x\",\"params\":{}}"),
                     MG_RPC_REQUEST);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"),
                     MG_RPC_NOTIFICATION);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}"), MG_RPC_RESPONSE);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-1,\"message\":\"x\"}}"),
                     MG_RPC_ERROR);
    /* invalid */
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}"), MG_RPC_INVALID);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}"), MG_RPC_INVALID);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}"), MG_RPC_INVALID);
    assert_int_equal(kind_of("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}"), MG_RPC_INVALID);
    assert_int_equal(kind_of("{\"id\":1,\"method\":\"ping\"}"), MG_RPC_INVALID);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}"), MG_RPC_INVALID);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":3}"), MG_RPC_INVALID);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1}}"),
                     MG_RPC_INVALID);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"x\"}}"), MG_RPC_INVALID);
    assert_int_equal(kind_of("[1]"), MG_RPC_INVALID);
    /* members are found by their exact names: near misses and names with a NUL are other members */
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"ID\":1,\"method\":\"ping\"}"), MG_RPC_NOTIFICATION);
    json_t *nul = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", "ping");
    json_object_setn_new(nul, "id\0x", 4, json_integer(1));
    assert_int_equal(mg_rpc_classify(nul, NULL), MG_RPC_NOTIFICATION);
    json_object_setn_new(nul, "method\0y", 8, json_string("other"));
    const char *m = NULL;
    assert_int_equal(mg_rpc_classify_method(nul, NULL, &m), MG_RPC_NOTIFICATION);
    assert_string_equal(m, "ping");
    json_object_del(nul, "jsonrpc");
    json_object_setn_new(nul, "jsonrpc\0", 8, json_string("2.0"));
    assert_int_equal(mg_rpc_classify(nul, NULL), MG_RPC_INVALID);
    json_decref(nul);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"methods\":\"x\",\"result\":{}}"),
                     MG_RPC_RESPONSE);
    assert_int_equal(kind_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"errors\":1,\"param\":3}"),
                     MG_RPC_REQUEST);
    /* more members than the walk takes: the same answers by lookup */
    assert_int_equal(kind_of("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"jsonrpc\":\"2.0\",\"id\":1,"
                             "\"method\":\"x\",\"params\":{}}"),
                     MG_RPC_REQUEST);
    assert_int_equal(kind_of("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"jsonrpc\":\"2.0\",\"id\":1,"
                             "\"method\":\"x\",\"params\":3}"),
                     MG_RPC_INVALID);
    assert_int_equal(kind_of("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"jsonrpc\":\"2.0\",\"id\":1,"
                             "\"result\":{},\"error\":{\"code\":1}}"),
                     MG_RPC_INVALID);
    const char *why = NULL;
    json_t *j = json_loads("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", 0, NULL);
    mg_rpc_classify(j, &why);
    assert_non_null(strstr(why, "never null"));
    json_decref(j);
}

static const mg_rpc_limits_t LIM64 = {64, 100, 100000};

/* mg_rpc_parse as it was before the one-pass read (scan, NUL check, mg_json_loadb): the oracle. */
static json_t *two_pass(const char *buf, size_t len, const mg_rpc_limits_t *lim, int *err,
                        mg_rpc_size_t *size)
{
    size->items = size->values = 0;
    if ((*err = mg_rpc_scan(buf, len, lim, size)) != 0)
        return NULL;
    json_t *v = memchr(buf, '\0', len) != NULL ? NULL : mg_json_loadb(buf, len, MG_JSON_REJECT_DUPLICATES);
    *err = v != NULL ? 0 : MG_EPARSE;
    return v;
}

/* mg_rpc_parse_params: a single message's "params" text is reported exactly when it is what the
 * dumper writes for the params read (then the bytes equal that dump), and never otherwise. */
static void test_parse_params_text(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int canonical; /* 1: params reported */
    } cases[] = {
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
         "\"arguments\":{\"message\":\"hi\"}}}",
         1},
        {" {\"id\" : 1, \"method\":\"m\",\"params\":{\"a\":[1,-2,0,true,false,null,\"\xc3\xa9/\"]}} ", 1},
        {"{\"params\":{},\"method\":\"m\"}", 1},
        {"{\"params\":[],\"method\":\"m\"}", 1},
        {"{\"method\":\"m\",\"params\":\"s\"}", 1},
        {"{\"method\":\"m\",\"params\":7}", 1},
        {"{\"method\":\"m\",\"id\":\"\\u0041\",\"params\":{\"a\":1}}", 1}, /* escapes outside params */
        {"{\"method\":\"m\",\"params\":{\"a\": 1}}", 0},                   /* whitespace inside */
        {"{\"method\":\"m\",\"params\":{\"a\":1 }}", 0},
        {"{\"method\":\"m\",\"params\":{\"a\":[1,\n2]}}", 0},
        {"{\"method\":\"m\",\"params\":{\"a\":\"\\n\"}}", 0}, /* an escape the dumper writes too */
        {"{\"method\":\"m\",\"params\":{\"a\":\"\\/\"}}", 0}, /* one it does not */
        {"{\"method\":\"m\",\"params\":{\"\\u0061\":1}}", 0}, /* in a key */
        {"{\"method\":\"m\",\"params\":{\"a\":1.5}}", 0},
        {"{\"method\":\"m\",\"params\":{\"a\":1e3}}", 0},
        {"{\"method\":\"m\",\"params\":{\"a\":-0}}", 0},
        {"{\"method\":\"m\",\"params\":{\"a\":{\"b\":[{\"c\":1.0}]}}}", 0},
        {"{\"method\":\"m\"}", 0},                             /* no params */
        {"{\"method\":\"m\",\"x\":{\"params\":{}}}", 0},       /* not top level */
        {"[{\"method\":\"m\",\"params\":{}}]", 0},             /* a batch */
        {"{\"method\":\"m\",\"params\":{},\"params\":{}}", 0}, /* refused: duplicate */
        {"{\"method\":\"m\",\"params\":{\"a\":1}", 0},         /* refused: truncated */
    };
    const mg_rpc_limits_t lim = {64, 100, 100000};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *text = cases[i].text;
        int err = -1;
        mg_rpc_size_t size;
        mg_json_span_t span = {.p = text};
        json_t *v = mg_rpc_parse_params(text, strlen(text), &lim, &err, &size, &span);
        json_t *p = json_is_object(v) ? json_object_get(v, "params") : NULL;
        if (!cases[i].canonical) {
            assert_null(span.p);
            assert_int_equal(span.len, 0);
        } else {
            assert_non_null(p);
            assert_non_null(span.p);
            assert_ptr_equal(span.v, p); /* the value read from those bytes */
            mg_jbuf_t b;
            mg_jbuf_init(&b, NULL, 0, 1 << 20);
            mg_jbuf_put_json(&b, p);
            assert_int_equal(b.err, 0);
            assert_int_equal(b.len, span.len);
            assert_memory_equal(b.p, span.p, span.len);
            mg_jbuf_dispose(&b);
        }
        json_decref(v);
    }
}

/* Bodies at, under and over every bound, and hostile ones: the one pass answers as the two passes
 * (error, counts, tree bytes), so a client sees the same status and message either way. */
static void test_parse_one_pass(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
        "\"arguments\":{\"message\":\"hi\"}}}",
        " \t\r\n{ \"a\" : [ 1 , 2 , { \"b\" : [ ] } ] , \"c\" : { } } \n",
        "[{\"jsonrpc\":\"2.0\",\"method\":\"a\"},{\"jsonrpc\":\"2.0\",\"method\":\"b\"},{}]",
        "[ ]",
        "[ 1 ]",
        "[1,2,3]",
        "[[1,2],[3,4]]",
        "{}",
        "[]",
        "[[[[[[]]]]]]",
        "{\"a\":{\"b\":{\"c\":{}}}}",
        "{\"s\":\"[,{,\\\",]\"}",       /* brackets and commas inside a string are not counted */
        "{\"s\":\"\\\\\",\"t\":[1,2]}", /* an escaped backslash ends before the quote */
        "{\"a\":1,\"a\":2}",            /* duplicate key */
        "{\"a\":\"\xff\"}",             /* invalid UTF-8 */
        "{\"a\":\"\\u0000\"}",          /* escaped NUL */
        "{\"a\":[1,2,3,4,5,6,7,8,9,10",
        "[1,2,",
        "{\"a\" 1}",
        "[1 2]",
        "{\"a\":1}x",
        "{\"a\":1}{}",
        "42",
        "\"s\"",
        "",
        "   ",
        "[,]",
        "[1,,2]",
        "{,}",
        "{\"a\":1,}",
        "[1,]",
        "]",
        "}",
        "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]",
        "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30]",
        "[1,2,3,\"x\",{\"a\":[1,2,3,4,5,6,7,8,9]},[[[[[[[[[[]]]]]]]]]]]",
    };
    static const mg_rpc_limits_t bounds[] = {
        {64, 100, 100000}, {1, 100, 100000}, {2, 100, 100000}, {3, 1, 100},   {5, 2, 4},
        {5, 3, 5},         {64, 30, 31},     {64, 29, 100},    {64, 100, 30}, {20, 100, 100000},
        {19, 100, 100000}, {64, 0, 100000},  {64, 100, 1},     {64, 100, 2},
    };
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++)
        for (size_t l = 0; l < sizeof bounds / sizeof bounds[0]; l++) {
            size_t len = strlen(texts[t]);
            int e1 = -1, e2 = -1;
            mg_rpc_size_t s1, s2;
            json_t *a = mg_rpc_parse(texts[t], len, &bounds[l], &e1, &s1);
            json_t *b = len == 0 ? NULL : two_pass(texts[t], len, &bounds[l], &e2, &s2);
            if (len == 0) {
                e2 = MG_EPARSE;
                s2.items = s2.values = 0;
            }
            assert_int_equal(e1, e2);
            assert_int_equal(s1.items, s2.items);
            assert_int_equal(s1.values, s2.values);
            assert_int_equal(a == NULL, b == NULL);
            if (a != NULL) {
                char *d1 = mg_json_dump(a, NULL), *d2 = mg_json_dump(b, NULL);
                assert_string_equal(d1, d2);
                free(d1);
                free(d2);
            }
            json_decref(a);
            json_decref(b);
        }
    /* a raw NUL byte goes to the two passes (mg_json_loadb's NUL quirk) */
    int err = 0;
    assert_null(mg_rpc_parse("[1,2]\0", 6, &LIM64, &err, NULL));
    assert_int_equal(err, MG_EPARSE);
    /* the bound is checked while reading: an over-long batch is refused with the scan's counts */
    mg_rpc_size_t sz;
    const mg_rpc_limits_t two = {64, 2, 100000};
    assert_null(mg_rpc_parse("[{},{},{},{}]", 13, &two, &err, &sz));
    assert_int_equal(err, MG_EREQUEST);
    assert_int_equal(sz.items, 3);
}

static void test_depth(void **state)
{
    char buf[300];
    memset(buf, '[', 200);
    mg_rpc_limits_t lim = {64, 1000, 1000};
    mg_rpc_size_t size;
    assert_int_equal(mg_rpc_scan(buf, 64, &lim, &size), 0);
    assert_int_equal(mg_rpc_scan(buf, 65, &lim, &size), MG_ETOODEEP);
    /* brackets inside strings do not count, escaped quotes do not end strings */
    const char *s = "{\"a\":\"[[[[\\\"[[[[\"}";
    lim.max_depth = 1;
    assert_int_equal(mg_rpc_scan(s, strlen(s), &lim, &size), 0);
    int err = 0;
    char deep[2100];
    for (int i = 0; i < 1000; i++)
        deep[i] = '[';
    for (int i = 0; i < 1000; i++)
        deep[1000 + i] = ']';
    assert_null(mg_rpc_parse(deep, 2000, &LIM64, &err, NULL));
    assert_int_equal(err, MG_ETOODEEP);
}

static void test_parse_errors(void **state)
{
    int err = 0;
    assert_null(mg_rpc_parse("{\"a\":", 5, &LIM64, &err, NULL));
    assert_int_equal(err, MG_EPARSE);
    assert_null(mg_rpc_parse("{\"a\":\"\xff\"}", 9, &LIM64, &err, NULL)); /* invalid UTF-8 */
    assert_int_equal(err, MG_EPARSE);
    assert_null(mg_rpc_parse("{\"a\":1}\0x", 9, &LIM64, &err, NULL)); /* NUL byte */
    assert_int_equal(err, MG_EPARSE);
    assert_null(mg_rpc_parse("42", 2, &LIM64, &err, NULL)); /* not an object/array */
    assert_int_equal(err, MG_EPARSE);
    assert_null(mg_rpc_parse("{\"a\":1,\"a\":2}", 13, &LIM64, &err, NULL)); /* duplicate keys */
    /* An empty POST body arrives as (NULL, 0): memchr(NULL, ...) was undefined behaviour, fatal
     * under UBSan (found by fuzz/fuzz_http.c). */
    err = 0;
    assert_null(mg_rpc_parse(NULL, 0, &LIM64, &err, NULL));
    assert_int_equal(err, MG_EPARSE);
    assert_null(mg_rpc_parse("", 0, &LIM64, &err, NULL));
    assert_int_equal(err, MG_EPARSE);
    json_t *ok = mg_rpc_parse("[{\"x\":1}]", 9, &LIM64, &err, NULL);
    assert_non_null(ok);
    assert_int_equal(err, 0);
    json_decref(ok);
}

static void test_builders(void **state)
{
    json_t *id = json_string("abc");
    json_t *r = mg_rpc_result(id, json_pack("{s:i}", "x", 1));
    char *s = mg_rpc_dump(r, NULL);
    assert_string_equal(s, "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"result\":{\"x\":1}}");
    free(s);
    json_decref(r);
    json_t *e = mg_rpc_error(NULL, -32600, "bad", NULL);
    s = mg_rpc_dump(e, NULL);
    assert_string_equal(s,
                        "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"bad\"}}");
    free(s);
    json_decref(e);
    json_t *n = mg_rpc_notification("notifications/x", NULL);
    assert_int_equal(mg_rpc_classify(n, NULL), MG_RPC_NOTIFICATION);
    json_decref(n);
    json_t *q = json_pack("{s:s,s:O,s:s}", "jsonrpc", "2.0", "id", id, "method", "ping");
    assert_int_equal(mg_rpc_classify(q, NULL), MG_RPC_REQUEST);
    assert_string_equal(mg_rpc_method(q), "ping");
    json_decref(q);
    json_decref(id);
}

static void test_err_table(void **state)
{
    assert_string_equal(mg_err_name(MG_ETIMEOUT), "MG_ETIMEOUT");
    assert_int_equal(mg_err_jsonrpc_code(MG_EPARSE), -32700);
    assert_int_equal(mg_err_jsonrpc_code(MG_EMETHOD), -32601);
    assert_string_equal(mg_strerror(12345), "unknown error");
    assert_int_equal(mg_err_jsonrpc_code(12345), -32603);
    assert_int_equal(mg_err_http_status(12345), 500);
}

/* The wire contract of every protocol error the gateway answers with: its JSON-RPC code and its HTTP
 * status (the e2e and conformance suites assert the same pairs from outside). */
static void test_err_wire(void **state)
{
    static const struct {
        int err, code, status;
    } wire[] = {
        {MG_EPARSE, -32700, 400},      {MG_EREQUEST, -32600, 400},    {MG_ETOODEEP, -32600, 400},
        {MG_ETOOBIG, -32600, 413},     {MG_EMEDIATYPE, -32600, 415},  {MG_ENOTACCEPTABLE, -32600, 406},
        {MG_EORIGIN, -32600, 403},     {MG_EHTTPMETHOD, -32600, 405}, {MG_EMETHOD, -32601, 404},
        {MG_EPARAMS, -32602, 400},     {MG_ENOMEM, -32603, 500},      {MG_ESHUTDOWN, -32603, 503},
        {MG_ESTOREDOWN, -32603, 503},  {MG_EREPLICA, -32603, 502},    {MG_EINFLIGHT, -32603, 429},
        {MG_EBUSY, -32603, 503},       {MG_ENOSESSION, -32001, 404},  {MG_EUNAUTHORIZED, -32001, 401},
        {MG_EFORBIDDEN, -32001, 403},  {MG_EAUTHDOWN, -32001, 503},   {MG_EAUTHBACKOFF, -32001, 429},
        {MG_ERESOURCE, -32002, 404},   {MG_ECANCELLED, -32800, 500},  {MG_EHEADERMISMATCH, -32020, 400},
        {MG_ECAPABILITY, -32021, 400}, {MG_EVERSION, -32022, 400},    {MG_ERATELIMIT, -32029, 429},
        {MG_EBLOCKED, -32040, 403},
    };
    for (size_t i = 0; i < sizeof wire / sizeof wire[0]; i++) {
        assert_int_equal(mg_err_jsonrpc_code(wire[i].err), wire[i].code);
        assert_int_equal(mg_err_http_status(wire[i].err), wire[i].status);
    }
    /* Every row: a distinct value and name, a code in JSON-RPC's reserved range (or -32800, cancelled), a
     * status with a standard reason phrase (4xx/5xx). */
#define ROW(name, value, code, status, text)                                                                 \
    assert_int_equal(MG_##name, value);                                                                      \
    assert_string_equal(mg_err_name(value), "MG_" #name);                                                    \
    assert_string_equal(mg_strerror(value), text);                                                           \
    assert_true((code) <= -32000 && (code) >= -32800);                                                       \
    assert_true((status) >= 400 && (status) <= 599);                                                         \
    assert_int_equal(mg_err_jsonrpc_code(value), code);                                                      \
    assert_int_equal(mg_err_http_status(value), status);
    MG_ERRNO_MAP(ROW)
#undef ROW
}

#define COUNT(s, mi, mv)                                                                                     \
    do {                                                                                                     \
        mg_rpc_limits_t lim_ = {64, mi, mv};                                                                 \
        mg_rpc_size_t size_;                                                                                 \
        rc = mg_rpc_scan(s, strlen(s), &lim_, &size_);                                                       \
        items = size_.items;                                                                                 \
        values = size_.values;                                                                               \
    } while (0)

static void test_count(void **state)
{
    size_t items, values;
    int rc;
    COUNT("{\"a\":1}", 100, 100);
    assert_int_equal(rc, 0);
    assert_int_equal(items, 0); /* not a batch */
    COUNT("  [ ]", 100, 100);
    assert_int_equal(items, 0);
    COUNT(" [{\"a\":[1,2]},{\"b\":\"x,y,[\"},3]", 100, 100);
    assert_int_equal(items, 3); /* commas and brackets inside strings and nested arrays do not count */
    COUNT("[1,2,3,4,5,6,7,8,9,10]", 100, 100);
    assert_int_equal(values, 11);      /* N + 1 for an array of N */
    COUNT("[\"a\\\",\",1]", 100, 100); /* an escaped quote does not end the string */
    assert_int_equal(items, 2);
    COUNT("[1,2,3,4,5,6,7,8,9,10]", 3, 100);
    assert_int_equal(items, 4); /* stops just past the cap */
    assert_int_equal(rc, MG_EREQUEST);
    COUNT("{\"p\":[0,0,0,0,0,0,0,0]}", 100, 5);
    assert_true(values > 5);
    assert_int_equal(rc, MG_EREQUEST);
    /* One scan, the first bound passed wins: too deep before too many values, and the reverse. */
    mg_rpc_limits_t lim = {2, 100, 4};
    mg_rpc_size_t size;
    assert_int_equal(mg_rpc_scan("[[[1]]]", 7, &lim, &size), MG_ETOODEEP);
    assert_int_equal(mg_rpc_scan("[1,2,3,4,[[5]]]", 15, &lim, &size), MG_EREQUEST);
    int err = 0;
    assert_null(mg_rpc_parse("[1,2,3,4,5]", 11, &lim, &err, &size));
    assert_int_equal(err, MG_EREQUEST);
    assert_int_equal(size.values, 5);
}

/* ---- rpcraw.h: the envelope kept as bytes ---- */

/* The oracle every accepted text must pass: jansson-equivalent load accepts it, its dump is the
 * text itself (trimmed), and splicing an id gives what the tree path writes after setting it. */
static void raw_agrees(const char *text, const mg_rpc_raw_t *raw)
{
    json_t *tree = mg_json_loadb(text, strlen(text), 0);
    assert_non_null(tree);
    size_t n = 0;
    char *dump = mg_json_dump(tree, &n);
    assert_non_null(dump);
    assert_int_equal(n, raw->len);
    assert_memory_equal(dump, raw->p, n);
    free(dump);
    if (raw->has_id) {
        json_t *ids[] = {json_string("client-\"id\"\n"), json_integer(-12), json_null(), json_real(1.5)};
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
            json_t *t = mg_json_copy(tree);
            json_object_set(t, "id", ids[i]);
            char *want = mg_json_dump(t, NULL);
            mg_jbuf_t b;
            mg_jbuf_init(&b, NULL, 0, 1 << 20);
            mg_rpc_raw_put_with_id(&b, raw, ids[i]);
            char *got = mg_jbuf_steal(&b, NULL);
            assert_non_null(want);
            assert_non_null(got);
            assert_string_equal(got, want);
            free(want);
            free(got);
            json_decref(t);
            json_decref(ids[i]);
        }
    }
    json_decref(tree);
}

static int raw_ok(const char *text, mg_rpc_raw_t *raw)
{
    if (mg_rpc_raw_scan(text, strlen(text), raw) != 0)
        return 0;
    raw_agrees(text, raw);
    return 1;
}

static void test_raw_envelope(void **state)
{
    (void)state;
    mg_rpc_raw_t r;
    const char *t = " {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\",\"text\":"
                    "\"h\\u001Fi\\n\xc3\xa9\"}]"
                    ",\"id\":\"inner\",\"isError\":false}}\r\n";
    assert_true(raw_ok(t, &r));
    assert_true(r.has_id && r.id_is_int && r.has_result);
    assert_false(r.has_error || r.has_method || r.is_error);
    assert_int_equal(r.id, 7);
    assert_memory_equal(r.p + r.id_off, "7", 1);
    assert_int_equal(r.id_len, 1);
    assert_memory_equal(r.p + r.result_off, "{\"content\"", 10); /* the top-level id, not the inner one */

    assert_true(raw_ok("{\"result\":{\"isError\":true},\"id\":-9223372036854775808}", &r));
    assert_true(r.is_error && r.id_is_int);
    assert_true(r.id == INT64_MIN);
    assert_true(raw_ok("{\"result\":{\"x\":{\"isError\":true}},\"id\":1}", &r));
    assert_false(r.is_error); /* only the result's own member counts */
    assert_true(raw_ok("{\"id\":\"abc\",\"result\":[]}", &r));
    assert_true(r.has_id && !r.id_is_int);
    assert_true(raw_ok("{\"id\":null,\"error\":{\"code\":-32600,\"message\":\"x\"}}", &r));
    assert_true(r.has_error && !r.id_is_int && !r.has_result);
    assert_true(raw_ok("{\"method\":\"notifications/progress\",\"params\":{\"id\":1}}", &r));
    assert_true(r.has_method && !r.has_id);
    assert_true(raw_ok("{}", &r));
    assert_true(raw_ok("{\"a\":[true,false,null,0,-1,\"\",{},[[]]]}", &r));
}

static void test_raw_refuses(void **state)
{
    (void)state;
    mg_rpc_raw_t r;
    static const char *const refused[] = {
        "{\"id\": 1}",                             /* whitespace inside */
        "{ \"id\":1}",                             /* */
        "{\"id\":1.0}",                            /* reals: jansson's %.17g */
        "{\"id\":1e3}",                            /* */
        "{\"id\":-0}",                             /* dumps as 0 */
        "{\"id\":01}",                             /* not JSON */
        "{\"id\":9223372036854775808}",            /* past int64 */
        "{\"id\":-9223372036854775809}",           /* */
        "{\"id\":99999999999999999999999999}",     /* */
        "{\"i\\u0064\":1}",                        /* an escaped key hiding "id" */
        "{\"id\":1,\"id\":2}",                     /* duplicate keys: jansson keeps the last */
        "{\"result\":{\"a\":1,\"a\":2},\"id\":1}", /* at any depth */
        "{\"a\":\"\\/\"}",                         /* escapes jansson does not write */
        "{\"a\":\"\\u0041\"}",                     /* */
        "{\"a\":\"\\u00e9\"}",                     /* */
        "{\"a\":\"\\u001f\"}",                     /* lower-case hex */
        "{\"a\":\"\\u000A\"}",                     /* \n has a short form */
        "{\"a\":\"\\u0000\"}",                     /* jansson refuses NUL */
        "{\"a\":\"\\ud83d\\ude00\"}",              /* */
        "{\"a\":\"\x01\"}",                        /* a raw control */
        "{\"a\":\"\xff\"}",                        /* invalid UTF-8 */
        "{\"a\":\"\xc3\"}",                        /* truncated UTF-8 */
        "{\"a\":\"\xed\xa0\x80\"}",                /* an encoded surrogate */
        "{\"a\":tru}",                             /* */
        "{\"a\":\"x}",                             /* unterminated */
        "{\"a\":1",                                /* */
        "{\"a\":1}x",                              /* trailing bytes */
        "{\"a\":1}{}",                             /* */
        "[{\"id\":1}]",                            /* a batch: not an object */
        "\"id\"",                                  /* */
        "",                                        /* */
        "{\"a\":[1,]}",                            /* */
        "{,}",                                     /* */
        "{\"a\"1}",                                /* */
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        if (mg_rpc_raw_scan(refused[i], strlen(refused[i]), &r) == 0)
            fail_msg("accepted: %s", refused[i]);
    }
    /* nesting and member counts past the bounds are refused (the tree path takes them) */
    char deep[200] = "{\"a\":";
    for (int i = 0; i < MG_RPC_RAW_MAX_DEPTH; i++)
        strcat(deep, "[");
    for (int i = 0; i < MG_RPC_RAW_MAX_DEPTH; i++)
        strcat(deep, "]");
    strcat(deep, "}");
    assert_int_equal(mg_rpc_raw_scan(deep, strlen(deep), &r), MG_EINVAL);
    char wide[1024] = "{";
    for (int i = 0; i <= MG_RPC_RAW_MAX_KEYS; i++) {
        char m[16];
        snprintf(m, sizeof m, "%s\"k%d\":%d", i ? "," : "", i, i);
        strcat(wide, m);
    }
    strcat(wide, "}");
    assert_int_equal(mg_rpc_raw_scan(wide, strlen(wide), &r), MG_EINVAL);
    json_t *w = mg_json_loadb(wide, strlen(wide), 0);
    assert_non_null(w); /* valid, just not taken as bytes */
    json_decref(w);
    /* a length that stops mid-text is honoured (the line buffer is not NUL-terminated) */
    const char *t = "{\"id\":1,\"result\":{}}";
    assert_int_equal(mg_rpc_raw_scan(t, strlen(t) - 1, &r), MG_EINVAL);
    assert_int_equal(mg_rpc_raw_scan(t, strlen(t), &r), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_parse_one_pass),
        cmocka_unit_test(test_parse_params_text),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_builders),
        cmocka_unit_test(test_err_table),
        cmocka_unit_test(test_err_wire),
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_raw_envelope),
        cmocka_unit_test(test_raw_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
