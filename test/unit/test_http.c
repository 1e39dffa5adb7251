/*
 * test_http.c - the pure parts of the HTTP front: request-head framing and Host rules
 * (src/http/head.c), reason phrases (src/http/status.c), query strings (src/http/query.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "common/err.h"
#include "http/head.h"
#include "http/query.h"
#include "http/status.h"

static int head(const char *h, int http11)
{
    const char *why = NULL;
    int r = mg_http_head_check(h, strlen(h), http11, &why);
    if (r != 0)
        assert_non_null(why);
    return r;
}

static void test_head_framing(void **state)
{
    assert_int_equal(head("POST /mcp HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", 1), 0);
    assert_int_equal(head("POST /mcp HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 1), 0);
    assert_int_equal(head("POST /mcp HTTP/1.1\nHost: a\nContent-Length: 3\n\n", 1), 0); /* bare LF */
    assert_int_equal(
        head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 1),
        MG_EINVAL);
    assert_int_equal(
        head("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\nCONTENT-LENGTH: 3\r\n\r\n", 1),
        MG_EINVAL);
    assert_int_equal(head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 1),
                     MG_EINVAL);
    assert_int_equal(head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", 1), MG_EINVAL);
    assert_int_equal(
        head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
             1),
        MG_EINVAL);
    assert_int_equal(head("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0), MG_EINVAL);
    assert_int_equal(head("POST / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  folded\r\n\r\n", 1), MG_EINVAL);
    /* a look-alike name is another field */
    assert_int_equal(
        head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nX-Content-Length: 9\r\n\r\n", 1), 0);
    /* only the head is read: a body that looks like headers does not count */
    assert_int_equal(
        head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\nContent-Length: 9\r\n\r\n", 1), 0);
    /* no end of head */
    assert_int_equal(head("POST / HTTP/1.1\r\nHost: a\r\n", 1), MG_EINVAL);
    assert_int_equal(head("", 1), MG_EINVAL);
}

static void test_head_host(void **state)
{
    assert_int_equal(head("GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n", 1), 0);
    assert_int_equal(head("GET / HTTP/1.1\r\nHost: evil\r\nHost: localhost\r\n\r\n", 1), MG_EINVAL);
    assert_int_equal(head("GET / HTTP/1.1\r\nHost: a\r\nhOsT: a\r\n\r\n", 1), MG_EINVAL);
    assert_int_equal(head("GET / HTTP/1.1\r\nHost:\r\n\r\n", 1), MG_EINVAL);
    assert_int_equal(head("GET / HTTP/1.1\r\nHost: \t \r\n\r\n", 1), MG_EINVAL);
    assert_int_equal(head("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 1), MG_EINVAL);
    assert_int_equal(head("GET / HTTP/1.0\r\n\r\n", 0), 0); /* HTTP/1.0 needs no Host */
    assert_int_equal(head("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 0), MG_EINVAL);
}

static void test_reasons(void **state)
{
    assert_string_equal(mg_http_reason(200), "OK");
    assert_string_equal(mg_http_reason(202), "Accepted");
    assert_string_equal(mg_http_reason(400), "Bad Request");
    assert_string_equal(mg_http_reason(401), "Unauthorized");
    assert_string_equal(mg_http_reason(409), "Conflict");
    assert_string_equal(mg_http_reason(413), "Payload Too Large");
    assert_string_equal(mg_http_reason(429), "Too Many Requests");
    assert_string_equal(mg_http_reason(503), "Service Unavailable");
    assert_string_equal(mg_http_reason(499), "Client Error");
    assert_string_equal(mg_http_reason(599), "Server Error");
}

/* Every status in the error table (src/common/err.h) has its own standard reason phrase. */
static void test_error_table_reasons(void **state)
{
#define ROW(name, value, code, status, text)                                                                 \
    assert_string_not_equal(mg_http_reason(mg_err_http_status(value)), "Client Error");                      \
    assert_string_not_equal(mg_http_reason(mg_err_http_status(value)), "Server Error");
    MG_ERRNO_MAP(ROW)
#undef ROW
    assert_string_equal(mg_http_reason(mg_err_http_status(MG_EHEADERMISMATCH)), "Bad Request");
    assert_string_equal(mg_http_reason(mg_err_http_status(MG_EINFLIGHT)), "Too Many Requests");
}

static mg_http_query_verdict_t qcheck(const char *q, char *name)
{
    return mg_http_query_check(q, strlen(q), MG_HTTP_MCP_QUERY_PARAMS, name, 80);
}

static void test_query_check(void **state)
{
    char name[80];
    assert_int_equal(qcheck("", name), MG_HTTP_QUERY_OK);
    assert_int_equal(qcheck("&&", name), MG_HTTP_QUERY_OK);
    assert_int_equal(qcheck("profile=ro", name), MG_HTTP_QUERY_OK);
    assert_int_equal(qcheck("%70rofile=ro", name), MG_HTTP_QUERY_OK);
    /* names are decoded before they are compared */
    const char *creds[] = {"access_token=x", "access%5Ftoken=x", "ACCESS%5ftoken=x",
                           "access+token=x", "x-api-key=1",      "X%2DAPI%2DKEY=1",
                           "key=1",          "auth=1",           "password=1",
                           "my_jwt=1",       "profile=a&token=b"};
    for (size_t i = 0; i < sizeof creds / sizeof *creds; i++)
        assert_int_equal(qcheck(creds[i], name), MG_HTTP_QUERY_CREDENTIAL);
    assert_int_equal(qcheck("access%5Ftoken=secret", name), MG_HTTP_QUERY_CREDENTIAL);
    assert_string_equal(name, "access_token");
    assert_int_equal(qcheck("x=1", name), MG_HTTP_QUERY_UNKNOWN);
    assert_string_equal(name, "x");
    assert_int_equal(qcheck("Profile=1", name), MG_HTTP_QUERY_UNKNOWN);
    assert_int_equal(qcheck("a%22b=1", name), MG_HTTP_QUERY_UNKNOWN);
    assert_string_equal(name, "a?b"); /* printable, no quote */
    /* a credential anywhere wins over an unknown name before it */
    assert_int_equal(qcheck("x=1&password=2", name), MG_HTTP_QUERY_CREDENTIAL);
    assert_int_equal(qcheck("profile=a&profile=b", name), MG_HTTP_QUERY_REPEATED);
    assert_string_equal(name, "profile");
    assert_int_equal(qcheck("%zz=1", name), MG_HTTP_QUERY_MALFORMED);
    assert_int_equal(qcheck("a%0=1", name), MG_HTTP_QUERY_MALFORMED);
    assert_int_equal(qcheck("a%00b=1", name), MG_HTTP_QUERY_MALFORMED);
    assert_int_equal(qcheck("a%0Ab=1", name), MG_HTTP_QUERY_MALFORMED);
    assert_int_equal(qcheck("=value", name), MG_HTTP_QUERY_MALFORMED);
}

static void test_query_get(void **state)
{
    char v[8];
    const char *q = "a=1&profile=r%5Fo&profile=second";
    assert_int_equal(mg_http_query_get(q, strlen(q), "profile", v, sizeof v), 1);
    assert_string_equal(v, "r_o");
    assert_int_equal(mg_http_query_get(q, strlen(q), "nope", v, sizeof v), 0);
    assert_int_equal(mg_http_query_get("p=12345678", 10, "p", v, sizeof v), MG_ETOOBIG);
    assert_int_equal(mg_http_query_get("p=%G1", 5, "p", v, sizeof v), MG_EINVAL);
    assert_int_equal(mg_http_query_get("p", 1, "p", v, sizeof v), 1);
    assert_string_equal(v, "");
    assert_int_equal(mg_http_query_get(NULL, 0, "p", v, sizeof v), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_framing), cmocka_unit_test(test_head_host),
        cmocka_unit_test(test_reasons),      cmocka_unit_test(test_error_table_reasons),
        cmocka_unit_test(test_query_check),  cmocka_unit_test(test_query_get)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
