/*
 * test_seal.c - requestState sealing (src/common/seal.c): round trip, tamper, wrong key, key parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/seal.h"

static void test_round_trip(void **state)
{
    unsigned char key[MG_SEAL_KEY_BYTES];
    mg_seal_key_random(key);
    json_t *p = json_pack("{s:s,s:I}", "k", "abc", "exp", (json_int_t)123456789);
    char *s1 = mg_seal_json(key, p);
    char *s2 = mg_seal_json(key, p);
    assert_non_null(s1);
    assert_string_not_equal(s1, s2); /* fresh nonce each time */
    json_t *back = mg_seal_open(key, s1);
    assert_non_null(back);
    assert_true(json_equal(back, p));
    json_decref(back);
    free(s1);
    free(s2);
    json_decref(p);
}

static void test_tamper_and_wrong_key(void **state)
{
    unsigned char key[MG_SEAL_KEY_BYTES], other[MG_SEAL_KEY_BYTES];
    mg_seal_key_random(key);
    mg_seal_key_random(other);
    json_t *p = json_pack("{s:s}", "principal", "alice");
    char *s = mg_seal_json(key, p);
    /* 1 + 12 + 21 + 16 = 50 bytes: not a multiple of 3, so the last character carries unused bits
     * that a lax decoder would ignore. */
    assert_int_equal(strlen(s), 67);
    assert_null(mg_seal_open(other, s));
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        char saved = s[i];
        s[i] = saved == 'A' ? 'B' : 'A';
        json_t *t = mg_seal_open(key, s);
        assert_null(t); /* any single-character change is rejected */
        s[i] = saved;
    }
    assert_null(mg_seal_open(key, ""));
    assert_null(mg_seal_open(key, "!!!"));
    assert_null(mg_seal_open(key, NULL));
    s[n - 3] = '\0'; /* truncated */
    assert_null(mg_seal_open(key, s));
    free(s);
    json_decref(p);
}

static void test_key_parse(void **state)
{
    unsigned char key[MG_SEAL_KEY_BYTES];
    assert_int_equal(
        mg_seal_key_parse("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", key), 0);
    assert_int_equal(key[0], 0);
    assert_int_equal(key[31], 0x1f);
    assert_int_equal(mg_seal_key_parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", key), 0);
    assert_int_equal(key[31], 0x1f);
    assert_int_not_equal(mg_seal_key_parse("short", key), 0);
    assert_int_not_equal(mg_seal_key_parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8AAA==", key), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_round_trip),
                                       cmocka_unit_test(test_tamper_and_wrong_key),
                                       cmocka_unit_test(test_key_parse)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
