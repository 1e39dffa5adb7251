/*
 * test_origin.c - Host and Origin rules (src/http/origin.c): DNS-rebinding defence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "http/origin.h"

#define HOST(r, s) mg_origin_host_allowed(r, s, strlen(s))
#define ORIG(r, s) mg_origin_origin_allowed(r, s, strlen(s))

static void test_loopback_hosts(void **state)
{
    mg_origin_rules_t r = {1, NULL, 0, NULL, 0};
    assert_true(HOST(&r, "localhost:8080"));
    assert_true(HOST(&r, "127.0.0.1:8080"));
    assert_true(HOST(&r, "127.1.2.3"));
    assert_true(HOST(&r, "[::1]:8080"));
    assert_true(HOST(&r, "LOCALHOST"));
    assert_false(HOST(&r, "evil.example:8080")); /* DNS rebinding */
    assert_false(HOST(&r, "127.0.0.1.evil.example"));
    assert_false(HOST(&r, "localhost.evil.example"));
    assert_false(HOST(&r, "127.0.0.x"));
    assert_true(mg_origin_host_allowed(&r, NULL, 0));
}

static void test_allowed_hosts(void **state)
{
    const char *hosts[] = {"mcp.example.com"};
    mg_origin_rules_t r = {0, hosts, 1, NULL, 0};
    assert_true(HOST(&r, "mcp.example.com"));
    assert_true(HOST(&r, "mcp.example.com:443"));
    assert_false(HOST(&r, "other.example.com"));
    mg_origin_rules_t open = {0, NULL, 0, NULL, 0};
    assert_true(HOST(&open, "anything.example"));
}

static void test_origins(void **state)
{
    const char *origins[] = {"https://app.example.com"};
    mg_origin_rules_t r = {1, NULL, 0, origins, 1};
    assert_true(mg_origin_origin_allowed(&r, NULL, 0));
    assert_true(ORIG(&r, "http://localhost:3000"));
    assert_true(ORIG(&r, "http://127.0.0.1:8080"));
    assert_true(ORIG(&r, "https://app.example.com"));
    assert_true(ORIG(&r, "HTTPS://APP.EXAMPLE.COM"));
    assert_false(ORIG(&r, "http://evil.example"));
    assert_false(ORIG(&r, "null"));
    assert_false(ORIG(&r, "http://localhost@evil.example"));
    assert_false(ORIG(&r, "file://"));
    mg_origin_rules_t remote = {0, NULL, 0, origins, 1};
    assert_false(ORIG(&remote, "http://localhost:3000"));
    assert_true(ORIG(&remote, "https://app.example.com"));
}

/* Found by fuzz/fuzz_origin.c: junk after the host part used to be ignored. */
static void test_junk_after_loopback_host(void **state)
{
    mg_origin_rules_t r = {1, NULL, 0, NULL, 0};
    assert_false(HOST(&r, "[::1]["));
    assert_false(HOST(&r, "[::1]evil.example"));
    assert_false(HOST(&r, "localhost:evil.example"));
    assert_false(HOST(&r, "127.0.0.1:80:80"));
    assert_false(HOST(&r, "localhost:1234567"));
    assert_true(HOST(&r, "[::1]:8080"));
    assert_true(HOST(&r, "localhost:"));
    assert_false(ORIG(&r, "http://[::1]x"));
    assert_false(ORIG(&r, "http://localhost:3000x"));
    assert_true(ORIG(&r, "http://[::1]:3000"));
    /* also found by fuzz_origin.c: "127..." counted three dots and passed */
    assert_false(HOST(&r, "127..."));
    assert_false(HOST(&r, "127.0..1"));
    assert_false(HOST(&r, "127.0.0."));
    assert_false(HOST(&r, "127.0.0.256"));
    assert_false(HOST(&r, "127.0.0.0001"));
    assert_true(HOST(&r, "127.255.0.1:80"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_loopback_hosts),
                                       cmocka_unit_test(test_allowed_hosts), cmocka_unit_test(test_origins),
                                       cmocka_unit_test(test_junk_after_loopback_host)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
