/*
 * test_remote.c - unit tests of the remote upstream's pure parts: CIDR blocks and the SSRF guard's
 * address classes (common/cidr.c), the guard over a resolved address list and URL splitting
 * (upstream/remote_conn.c), the SSE event parser fed in pieces, and credential fetches refused by the
 * guard before any connection (upstream/remote_egress.c). The remote upstream itself runs
 * against real servers in test/e2e/remote.test.mjs. Read next: src/upstream/remote_int.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/cidr.h"
#include "common/err.h"
#include "common/json.h"
#include "config/remote_config.h"
#include "http/client.h"
#include "upstream/remote_int.h"

#include <uv.h>

static int addr_of(const char *text, int *family, uint8_t *a)
{
    if (inet_pton(AF_INET, text, a) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, text, a) == 1) {
        *family = AF_INET6;
        return 0;
    }
    return -1;
}

static const char *klass(const char *text)
{
    int f = 0;
    uint8_t a[16];
    assert_int_equal(addr_of(text, &f, a), 0);
    return mg_cidr_forbidden(f, a);
}

static void test_forbidden_classes(void **state)
{
    (void)state;
    assert_string_equal(klass("127.0.0.1"), "loopback");
    assert_string_equal(klass("127.255.0.9"), "loopback");
    assert_string_equal(klass("::1"), "loopback");
    assert_string_equal(klass("::ffff:127.0.0.1"), "loopback"); /* IPv4-mapped */
    assert_string_equal(klass("10.2.3.4"), "private");
    assert_string_equal(klass("172.31.255.255"), "private");
    assert_string_equal(klass("192.168.1.1"), "private");
    assert_string_equal(klass("169.254.169.254"), "metadata");
    assert_string_equal(klass("fd00:ec2::254"), "metadata");
    assert_string_equal(klass("169.254.1.1"), "link-local");
    assert_string_equal(klass("fe80::1"), "link-local");
    assert_string_equal(klass("fd12:3456::1"), "unique-local");
    assert_string_equal(klass("0.0.0.0"), "unspecified");
    assert_string_equal(klass("::"), "unspecified");
    assert_string_equal(klass("100.64.0.1"), "shared");
    assert_string_equal(klass("224.0.0.1"), "multicast");
    assert_null(klass("8.8.8.8"));
    assert_null(klass("172.32.0.1"));
    assert_null(klass("2606:4700::1111"));
}

static void test_cidr_parse_match(void **state)
{
    (void)state;
    mg_cidr_t c;
    char why[200];
    int f = 0;
    uint8_t a[16];
    assert_int_equal(mg_cidr_parse("10.1.2.3/16", &c, why, sizeof why), 0); /* host bits cleared */
    assert_int_equal(c.prefix, 16);
    addr_of("10.1.200.7", &f, a);
    assert_true(mg_cidr_match(&c, f, a));
    addr_of("10.2.0.1", &f, a);
    assert_false(mg_cidr_match(&c, f, a));
    addr_of("::ffff:10.1.0.1", &f, a);
    assert_true(mg_cidr_match(&c, f, a));
    assert_int_equal(mg_cidr_parse("fd00::/8", &c, why, sizeof why), 0);
    addr_of("fdab::1", &f, a);
    assert_true(mg_cidr_match(&c, f, a));
    addr_of("10.1.0.1", &f, a);
    assert_false(mg_cidr_match(&c, f, a));
    assert_int_equal(mg_cidr_parse("127.0.0.1", &c, why, sizeof why), 0);
    assert_int_equal(c.prefix, 32);
    assert_int_equal(mg_cidr_parse("0.0.0.0/0", &c, why, sizeof why), 0);
    addr_of("1.2.3.4", &f, a);
    assert_true(mg_cidr_match(&c, f, a));
    assert_int_equal(mg_cidr_parse("10.0.0.0/33", &c, why, sizeof why), -1);
    assert_non_null(strstr(why, "0..32"));
    assert_int_equal(mg_cidr_parse("10.0.0.0/", &c, why, sizeof why), -1);
    assert_int_equal(mg_cidr_parse("example.com/8", &c, why, sizeof why), -1);
    assert_int_equal(mg_cidr_parse("", &c, why, sizeof why), -1);
}

/* A resolved list built by getaddrinfo on numeric hosts. */
static struct addrinfo *resolved(const char *a, const char *b)
{
    struct addrinfo hints = {0}, *x = NULL, *y = NULL;
    hints.ai_flags = AI_NUMERICHOST;
    hints.ai_socktype = SOCK_STREAM;
    assert_int_equal(getaddrinfo(a, "80", &hints, &x), 0);
    if (b != NULL) {
        assert_int_equal(getaddrinfo(b, "80", &hints, &y), 0);
        struct addrinfo *t = x;
        while (t->ai_next)
            t = t->ai_next;
        t->ai_next = y;
    }
    return x;
}

static void free_resolved(struct addrinfo *ai)
{
    while (ai != NULL) { /* two lists joined: free one node at a time */
        struct addrinfo *n = ai->ai_next;
        ai->ai_next = NULL;
        freeaddrinfo(ai);
        ai = n;
    }
}

static void test_egress_pick(void **state)
{
    (void)state;
    char addr[64], why[512];
    struct mg_egress_config none = {0};
    struct addrinfo *ai = resolved("127.0.0.1", NULL);
    assert_int_equal(mg__egress_pick(ai, &none, addr, sizeof addr, why, sizeof why), MG_EFORBIDDEN);
    assert_non_null(strstr(why, "127.0.0.1 (loopback)"));
    assert_non_null(strstr(why, "gateway.egress.allowCidrs"));
    mg_cidr_t allow[1];
    char w[64];
    assert_int_equal(mg_cidr_parse("127.0.0.0/8", &allow[0], w, sizeof w), 0);
    struct mg_egress_config some = {allow, 1, NULL};
    assert_int_equal(mg__egress_pick(ai, &some, addr, sizeof addr, why, sizeof why), 0);
    assert_string_equal(addr, "127.0.0.1");
    free_resolved(ai);
    /* a name with a private and a public address: the public one is pinned */
    ai = resolved("10.0.0.1", "93.184.215.14");
    assert_int_equal(mg__egress_pick(ai, &none, addr, sizeof addr, why, sizeof why), 0);
    assert_string_equal(addr, "93.184.215.14");
    free_resolved(ai);
    /* metadata over IPv6, allowed loopback does not help */
    ai = resolved("fd00:ec2::254", NULL);
    assert_int_equal(mg__egress_pick(ai, &some, addr, sizeof addr, why, sizeof why), MG_EFORBIDDEN);
    assert_non_null(strstr(why, "(metadata)"));
    assert_non_null(strstr(why, "/128"));
    free_resolved(ai);
}

static void test_url_parse(void **state)
{
    (void)state;
    mg__url_t u;
    assert_int_equal(mg__url_parse("https://mcp.example.com/mcp", &u), 0);
    assert_string_equal(u.host, "mcp.example.com");
    assert_int_equal(u.port, 443);
    assert_false(u.literal);
    assert_int_equal(mg__url_parse("http://127.0.0.1:8080/x?y", &u), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 8080);
    assert_true(u.literal);
    assert_int_equal(mg__url_parse("http://[::1]:9/mcp", &u), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 9);
    assert_int_equal(mg__url_parse("http://u:p@h/", &u), MG_EINVAL);
    assert_int_equal(mg__url_parse("http://h:0/", &u), MG_EINVAL);
    assert_int_equal(mg__url_parse("http://h:99999/", &u), MG_EINVAL);
    assert_int_equal(mg__url_parse("ftp://h/", &u), MG_EINVAL);
}

typedef struct {
    char got[8][128];
    char ids[8][32];
    int n;
} events_t;

static void on_event(void *data, const char *id, const char *event, const char *payload, size_t len)
{
    events_t *e = data;
    (void)event;
    if (e->n < 8) {
        snprintf(e->got[e->n], sizeof e->got[0], "%.*s", (int)len, payload);
        snprintf(e->ids[e->n], sizeof e->ids[0], "%s", id ? id : "-");
        e->n++;
    }
}

static void test_sse_parser(void **state)
{
    (void)state;
    const char *stream = ": comment\r\nid: 7\r\nevent: message\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n"
                         "retry: 250\n\ndata: second\n\nid: 9\ndata:third\n\n";
    /* every split point gives the same events */
    for (size_t cut = 0; cut <= strlen(stream); cut++) {
        mg__sse_parser_t p;
        events_t e = {0};
        mg__sse_init(&p, 1024);
        assert_int_equal(mg__sse_feed(&p, stream, cut, on_event, &e), 0);
        assert_int_equal(mg__sse_feed(&p, stream + cut, strlen(stream) - cut, on_event, &e), 0);
        assert_int_equal(e.n, 3);
        assert_string_equal(e.got[0], "{\"a\":\n1}");
        assert_string_equal(e.ids[0], "7");
        assert_string_equal(e.got[1], "second");
        assert_string_equal(e.ids[1], "7"); /* the last event id persists */
        assert_string_equal(e.got[2], "third");
        assert_string_equal(e.ids[2], "9");
        assert_int_equal(p.retry_ms, 250);
        mg__sse_dispose(&p);
    }
    /* bounded: a line or an event over the cap fails */
    mg__sse_parser_t p;
    events_t e = {0};
    mg__sse_init(&p, 64);
    char big[200];
    memset(big, 'x', sizeof big);
    assert_int_equal(mg__sse_feed(&p, "data: ", 6, on_event, &e), 0);
    assert_int_equal(mg__sse_feed(&p, big, sizeof big, on_event, &e), MG_ETOOBIG);
    mg__sse_dispose(&p);
    mg__sse_init(&p, 64);
    for (int i = 0; i < 5; i++) {
        int r = mg__sse_feed(&p, "data: 0123456789abcdef\n", 23, on_event, &e);
        if (i < 2)
            assert_int_equal(r, 0);
        if (r != 0) {
            assert_int_equal(r, MG_ETOOBIG);
            break;
        }
        assert_true(i < 3);
    }
    mg__sse_dispose(&p);
}

static void test_tenant_lookup(void **state)
{
    (void)state;
    mg_kv_t h = {"Authorization", "Bearer a", "literal"};
    mg_remote_tenant_t t[2] = {{"acme", &h, 1}, {"globex", NULL, 0}};
    mg_remote_config_t r = {0};
    r.tenants = t;
    r.ntenants = 2;
    assert_ptr_equal(mg_remote_config_tenant(&r, "acme"), &t[0]);
    assert_ptr_equal(mg_remote_config_tenant(&r, "globex"), &t[1]);
    assert_null(mg_remote_config_tenant(&r, "ACME"));
    assert_null(mg_remote_config_tenant(&r, NULL));
    assert_null(mg_remote_config_tenant(NULL, "acme"));
}

/* ---- mg__egress_request: credential fetches under the guard (no connection is ever made here) ---- */

typedef struct {
    int calls, err;
    char why[1024];
} egress_seen_t;

static void egress_done_cb(void *data, int err, int status, const char *why)
{
    egress_seen_t *s = data;
    (void)status;
    s->calls++;
    s->err = err;
    snprintf(s->why, sizeof s->why, "%s", why ? why : "");
}

static void client_closed_run(uv_loop_t *loop, mg_http_client_t *cl)
{
    mg_http_client_free(cl);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_egress_request(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    mg_http_client_t *cl = NULL;
    if (mg_http_client_new(&loop, &cl) != 0) { /* libcurl missing: nothing to test */
        uv_loop_close(&loop);
        skip();
    }
    struct mg_egress_config none = {0};
    const char *h[2] = {"accept", "application/json"};
    mg_http_req_t hr = {.url = "http://169.254.169.254/latest/token",
                        .headers = h,
                        .nheaders = 1,
                        .body = "grant_type=client_credentials",
                        .len = 29,
                        .basic_user = "id",
                        .basic_pass = "pw"};
    egress_seen_t meta = {0}, lo = {0}, cancelled = {0};
    mg__egress_call_t *c = NULL;
    assert_int_equal(mg__egress_request(&loop, cl, &none, &hr, NULL, egress_done_cb, &meta, &c), 0);
    assert_non_null(c);
    assert_int_equal(meta.calls, 0);     /* never from inside the call */
    hr.url = "http://localhost:9/token"; /* a name: resolved, then refused */
    assert_int_equal(mg__egress_request(&loop, cl, &none, &hr, NULL, egress_done_cb, &lo, NULL), 0);
    hr.url = "http://10.1.2.3/token";
    assert_int_equal(mg__egress_request(&loop, cl, &none, &hr, NULL, egress_done_cb, &cancelled, &c), 0);
    mg__egress_cancel(c); /* while resolving: its callback never runs */
    hr.url = "ftp://example.com/";
    assert_int_equal(mg__egress_request(&loop, cl, &none, &hr, NULL, egress_done_cb, &cancelled, NULL),
                     MG_EINVAL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(meta.calls, 1);
    assert_int_equal(meta.err, MG_EFORBIDDEN);
    assert_non_null(strstr(meta.why, "169.254.169.254 (metadata)"));
    assert_non_null(strstr(meta.why, "allowCidrs"));
    assert_int_equal(lo.calls, 1);
    assert_int_equal(lo.err, MG_EFORBIDDEN);
    assert_non_null(strstr(meta.why, "refused"));
    assert_non_null(strstr(lo.why, "(loopback)"));
    assert_int_equal(cancelled.calls, 0);
    client_closed_run(&loop, cl);
}

/* The tree path the body's writer bypasses: the message copied, jsonrpc and id set, the 2026-07-28
 * _meta keys taken out of its params (an emptied _meta with them), dumped. */
static char *body_oracle(const json_t *msg, int64_t id, size_t *len)
{
    json_t *m = mg_json_deep_copy(msg);
    assert_non_null(m);
    json_object_set_new(m, "jsonrpc", json_string("2.0"));
    json_object_set_new(m, "id", json_integer(id));
    json_t *params = json_object_get(m, "params");
    json_t *meta = json_object_get(params, "_meta");
    if (json_is_object(meta)) {
        int found = 0;
        const char *k;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(meta, tmp, k, v)
        {
            if (strncmp(k, "io.modelcontextprotocol/", 24) == 0) {
                json_object_del(meta, k);
                found = 1;
            }
        }
        if (found && json_object_size(meta) == 0)
            json_object_del(params, "_meta");
    }
    char *s = mg_json_dump(m, len);
    json_decref(m);
    return s;
}

/* The body of a request to a session-era upstream, with and without the caller's lent params text:
 * exactly the bytes of the tree path (body_oracle). */
static void body_same(const char *msg_text, int64_t id, int expect_fast)
{
    json_error_t e;
    json_t *msg = json_loads(msg_text, 0, &e);
    assert_non_null(msg);
    json_t *params = json_object_get(msg, "params");
    size_t plen = 0, glen = 0, flen = 0;
    char *ptext = params != NULL ? mg_json_dump(params, &plen) : NULL;
    char *before = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
    char *general = mg__remote_body(msg, id, NULL, NULL, 0, &glen);
    char *fast = mg__remote_body(msg, id, params, ptext, plen, &flen);
    size_t olen = 0;
    char *oracle = body_oracle(msg, id, &olen);
    assert_non_null(general);
    assert_non_null(fast);
    assert_string_equal(general, oracle);
    assert_int_equal(glen, olen);
    assert_int_equal(flen, glen);
    assert_int_equal(strlen(general), glen);
    assert_string_equal(fast, general);
    char *after = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_string_equal(before, after); /* msg is not modified */
    json_t *sent = json_loads(general, 0, &e);
    assert_non_null(sent);
    assert_string_equal(json_string_value(json_object_get(sent, "jsonrpc")), "2.0");
    assert_true(json_integer_value(json_object_get(sent, "id")) == id);
    json_t *meta = json_object_get(json_object_get(sent, "params"), "_meta");
    assert_null(json_object_get(meta, "io.modelcontextprotocol/protocolVersion"));
    if (params != NULL) { /* a lent text is what goes: the fast path was taken, or declined */
        char *other = mg__remote_body(msg, id, params, "{\"lent\":1}", 10, &flen);
        assert_non_null(other);
        assert_int_equal(strstr(other, "\"params\":{\"lent\":1}") != NULL, expect_fast);
        free(other);
        json_t *elsewhere = json_object(); /* lent for another object: ignored */
        other = mg__remote_body(msg, id, elsewhere, "{\"lent\":1}", 10, &flen);
        assert_string_equal(other, general);
        free(other);
        json_decref(elsewhere);
    }
    json_decref(sent);
    free(before);
    free(after);
    free(general);
    free(fast);
    free(oracle);
    free(ptext);
    json_decref(msg);
}

static void test_request_body_lent_params(void **state)
{
    (void)state;
    body_same(
        "{\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"bench-1\"}}}",
        7, 1);
    body_same(
        "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"e\\u00e9\\u2028\\\"\\\\/\\n"
        "\\u0001\",\"arguments\":{\"n\":-12345678901234,\"r\":1.5e-7,\"t\":true,\"z\":null,\"a\":[],\"o\":{},"
        "\"k\\ud83d\\ude00\":[1,[2,{\"x\":\"y\"}]]}}}",
        INT64_MAX, 1);
    body_same("{\"method\":\"tools/call\",\"id\":\"client-7\",\"params\":{\"name\":\"x\"},\"extra\":[1,2]}",
              0, 1);
    body_same(
        "{\"params\":{\"_meta\":{\"progressToken\":3,\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-"
        "b7ad6b7169203331-01\"},\"name\":\"x\"},\"method\":\"tools/call\"}",
        42, 1);
    /* a 2026-07-28 _meta key is stripped: the lent text is not the params that go */
    body_same("{\"method\":\"tools/call\",\"params\":{\"name\":\"x\",\"_meta\":{\"io.modelcontextprotocol/"
              "protocolVersion\":\"2026-07-28\",\"progressToken\":\"p\"}}}",
              3, 0);
    body_same(
        "{\"method\":\"tools/call\",\"params\":{\"_meta\":{\"io.modelcontextprotocol/clientInfo\":{}}}}", 4,
        0);
    body_same("{\"method\":\"ping\"}", 5, 0);
    body_same("{\"method\":\"x/y\",\"jsonrpc\":\"1.0\",\"params\":[1,\"a\",{\"b\":null}]}", 9, 1);
    body_same("{\"method\":\"notifications/x\",\"params\":null,\"jsonrpc\":\"2.0\"}", -1, 1);
    body_same("{\"method\":\"tools/list\",\"params\":{}}", 6, 1);
}

/* A 2026-07-28 request's _meta goes into copies: the params and _meta objects the caller shares with
 * the message (a shallow copy of its own) are not modified. */
static void test_modern_meta_copies(void **state)
{
    (void)state;
    json_error_t e;
    json_t *msg = json_loads(
        "{\"method\":\"tools/call\",\"params\":{\"name\":\"x\",\"_meta\":{\"progressToken\":1}}}", 0, &e);
    json_t *bare = json_loads("{\"method\":\"tools/call\",\"params\":{\"name\":\"y\"}}", 0, &e);
    assert_non_null(msg);
    assert_non_null(bare);
    char *before = json_dumps(msg, JSON_COMPACT);
    char *bare_before = json_dumps(bare, JSON_COMPACT);
    json_t *caps = json_pack("{s:{}}", "sampling");
    json_t *pairs[2][2] = {{msg, mg_json_copy(msg)}, {bare, mg_json_copy(bare)}};
    for (int i = 0; i < 2; i++) {
        json_t *m = pairs[i][1];
        assert_non_null(m);
        mg__remote_modern_meta(m, caps, "info", "mcpgate", "1.2.3");
        json_t *meta = json_object_get(json_object_get(m, "params"), "_meta");
        assert_string_equal(
            json_string_value(json_object_get(meta, "io.modelcontextprotocol/protocolVersion")),
            "2026-07-28");
        assert_non_null(
            json_object_get(json_object_get(meta, "io.modelcontextprotocol/clientCapabilities"), "sampling"));
        assert_string_equal(json_string_value(json_object_get(meta, "io.modelcontextprotocol/logLevel")),
                            "info");
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(meta, "io.modelcontextprotocol/clientInfo"), "version")),
                            "1.2.3");
        if (i == 0)
            assert_true(json_integer_value(json_object_get(meta, "progressToken")) == 1);
        assert_true(json_object_get(m, "params") != json_object_get(pairs[i][0], "params"));
    }
    char *after = json_dumps(msg, JSON_COMPACT);
    char *bare_after = json_dumps(bare, JSON_COMPACT);
    assert_string_equal(before, after);
    assert_string_equal(bare_before, bare_after);
    for (int i = 0; i < 2; i++)
        json_decref(pairs[i][1]);
    free(before);
    free(after);
    free(bare_before);
    free(bare_after);
    json_decref(caps);
    json_decref(msg);
    json_decref(bare);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forbidden_classes),  cmocka_unit_test(test_cidr_parse_match),
        cmocka_unit_test(test_egress_pick),        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_sse_parser),         cmocka_unit_test(test_tenant_lookup),
        cmocka_unit_test(test_egress_request),     cmocka_unit_test(test_request_body_lent_params),
        cmocka_unit_test(test_modern_meta_copies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
