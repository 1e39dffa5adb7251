/*
 * test_json.c - src/common/json.c against jansson 2.14 itself (differential): mg_json_loadb must
 * accept exactly what json_loadb accepts and build an equal tree; mg_json_dump must write exactly
 * json_dumps(JSON_COMPACT)'s bytes; mg_log_json / mg_log_fields the line the jansson-built version
 * wrote. Hand-picked edge cases, then a few hundred thousand generated and mutated texts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"

/* ---- differential helpers ---- */

static unsigned long long checked, accepted;

static void check_load(const char *text, size_t len)
{
    for (int dup = 0; dup < 2; dup++) {
        json_t *want = json_loadb(text, len, dup ? JSON_REJECT_DUPLICATES : 0, NULL);
        json_t *got = mg_json_loadb(text, len, dup ? MG_JSON_REJECT_DUPLICATES : 0);
        checked++;
        if ((want == NULL) != (got == NULL)) {
            fprintf(stderr, "accept mismatch (dup=%d): jansson %s, mg %s: '%.*s'\n", dup,
                    want ? "ok" : "fail", got ? "ok" : "fail", (int)len, text);
            for (size_t i = 0; i < len; i++)
                fprintf(stderr, "%02x ", (unsigned char)text[i]);
            fprintf(stderr, "\n");
            fail();
        }
        if (want != NULL) {
            accepted++;
            assert_true(json_equal(want, got));
            char *a = json_dumps(want, JSON_COMPACT);
            size_t blen = 0;
            char *b = mg_json_dump(got, &blen);
            assert_non_null(a);
            assert_non_null(b);
            assert_string_equal(a, b);
            assert_int_equal(strlen(a), blen);
            free(a);
            free(b);
        }
        json_decref(want);
        json_decref(got);
    }
}

static void check_load_str(const char *text)
{
    check_load(text, strlen(text));
}

static void check_dump(const json_t *v)
{
    char *a = json_dumps(v, JSON_COMPACT);
    char *b = mg_json_dump(v, NULL);
    if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0)) {
        fprintf(stderr, "dump mismatch: jansson '%s', mg '%s'\n", a ? a : "(null)", b ? b : "(null)");
        fail();
    }
    free(a);
    free(b);
}

/* ---- hand-picked cases ---- */

static void test_load_edges(void **state)
{
    static const char *cases[] = {
        "{}",
        "[]",
        " {} ",
        "\t\r\n[\n]\r\n",
        "",
        " ",
        "1",
        "\"x\"",
        "true",
        "null",
        "{",
        "[",
        "}",
        "]",
        "[1,]",
        "{\"a\":1,}",
        "{,}",
        "[,1]",
        "{\"a\" 1}",
        "{\"a\":}",
        "{a:1}",
        "{'a':1}",
        "[1 2]",
        "[1]]",
        "[1]x",
        "[1] [2]",
        "{}{}",
        "[true,false,null]",
        "[tru]",
        "[truex]",
        "[nul]",
        "[nulll]",
        "[True]",
        "[NaN]",
        "[Infinity]",
        "[-Infinity]",
        "[0]",
        "[-0]",
        "[-]",
        "[+1]",
        "[01]",
        "[-01]",
        "[00]",
        "[0.]",
        "[.5]",
        "[0.5]",
        "[-0.0]",
        "[1e5]",
        "[1E5]",
        "[1e+5]",
        "[1e-5]",
        "[1e]",
        "[1e+]",
        "[1.5e3]",
        "[1.e3]",
        "[9223372036854775807]",
        "[9223372036854775808]",
        "[-9223372036854775808]",
        "[-9223372036854775809]",
        "[99999999999999999999999]",
        "[1e308]",
        "[1e309]",
        "[-1e309]",
        "[1e-400]",
        "[2.2250738585072014e-308]",
        "[0.1]",
        "[1.7976931348623157e308]",
        "[123456789012345678901234567890.5]",
        "[5e-324]",
        "[\"\"]",
        "[\"a\\\"b\"]",
        "[\"\\\\\"]",
        "[\"\\/\"]",
        "[\"\\b\\f\\n\\r\\t\"]",
        "[\"\\x\"]",
        "[\"\\u\"]",
        "[\"\\u12\"]",
        "[\"\\u12g4\"]",
        "[\"\\u0041\"]",
        "[\"\\u00e9\"]",
        "[\"\\u00E9\"]",
        "[\"\\u0000\"]",
        "{\"\\u0000\":1}",
        "[\"a\\u0000b\"]",
        "[\"\\ud83d\\ude00\"]",
        "[\"\\uD83D\\uDE00\"]",
        "[\"\\ud83d\"]",
        "[\"\\ud83dx\"]",
        "[\"\\ud83d\\u0041\"]",
        "[\"\\ude00\"]",
        "[\"\\ude00\\ud83d\"]",
        "[\"\\uffff\"]",
        "[\"\\ufffe\"]",
        "[\"\\u007f\"]",
        "[\"\\u001f\"]",
        "[\"\t\"]",
        "[\"\n\"]",
        "[\"\x01\"]",
        "[\"\x7f\"]",
        "[\"caf\xc3\xa9\"]",
        "[\"\xc3\"]",
        "[\"\xc3\xc3\"]",
        "[\"\xc0\x80\"]",
        "[\"\xc1\xbf\"]",
        "[\"\xe0\x80\x80\"]",
        "[\"\xe0\xa0\x80\"]",
        "[\"\xed\xa0\x80\"]",
        "[\"\xed\x9f\xbf\"]",
        "[\"\xef\xbf\xbf\"]",
        "[\"\xf0\x80\x80\x80\"]",
        "[\"\xf0\x90\x80\x80\"]",
        "[\"\xf4\x8f\xbf\xbf\"]",
        "[\"\xf4\x90\x80\x80\"]",
        "[\"\xf5\x80\x80\x80\"]",
        "[\"\xff\"]",
        "[\"\x80\"]",
        "[\xc3\xa9]",
        "{\"a\":1,\"a\":2}",
        "{\"a\":1,\"b\":2,\"a\":3}",
        "{\"a\":{\"b\":1,\"b\":2}}",
        "{\"\\u0061\":1,\"a\":2}",
        /* the duplicate check's short list (four unescaped keys) and its fallback to the lookup */
        "{\"a\":1,\"\\u0061\":2}",
        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"a\":5}",
        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"d\":5}",
        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"e\":6}",
        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}",
        "{\"a\":1,\"b\\u0000\":2}",
        "{\"b\\n\":1,\"a\":2,\"b\\n\":3}",
        "{\"\\n\":1,\"a\":2,\"b\":3,\"a\":4}",
        "{\"ab\":1,\"a\":2,\"abc\":3,\"\":4,\"\":5}",
        "{\"\":1,\"\\u0000\":2}",
        "{\"k\\n\":\"v\\t\"}",
        "[\"unterminated]",
        "[\"a\"",
        "{\"a\":1",
        "[1,",
        "[1,2",
        "{\"a\"",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":"
        "{\"message\":\"hi\"}}}",
        "[{\"a\":[{\"b\":[[],{}]},[1,2.5,-3e2,\"x\",true,false,null]]}]",
        "[1,\"\xe2\x82\xac\",{\"\xe2\x82\xac\":[]}]",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_load_str(cases[i]);
    /* NUL bytes inside the buffer (json_loadb takes a length) */
    check_load("[\"a\0b\"]", 7);
    check_load("[1]\0", 4);
    check_load("\0[1]", 4);
    check_load("[1,\0]", 5);
    /* truncated UTF-8 at the very end of the buffer */
    check_load("[\"\xe2\x82", 5);
}

static void test_load_depth(void **state)
{
    /* jansson counts every value: 2048 nested arrays pass, a scalar inside them does not. */
    for (int n = 2045; n <= 2050; n++) {
        char *t = malloc((size_t)n * 2 + 8);
        size_t k = 0;
        for (int i = 0; i < n; i++)
            t[k++] = '[';
        for (int i = 0; i < n; i++)
            t[k++] = ']';
        check_load(t, k);
        k = 0;
        for (int i = 0; i < n; i++)
            t[k++] = '[';
        t[k++] = '1';
        for (int i = 0; i < n; i++)
            t[k++] = ']';
        check_load(t, k);
        free(t);
        /* objects: {"a":{"a":...1...}} */
        t = malloc((size_t)n * 6 + 8);
        k = 0;
        for (int i = 0; i < n; i++) {
            memcpy(t + k, "{\"a\":", 5);
            k += 5;
        }
        t[k++] = '1';
        for (int i = 0; i < n; i++)
            t[k++] = '}';
        check_load(t, k);
        free(t);
    }
}

static void test_dump_edges(void **state)
{
    json_t *o = json_object();
    char all[0x80 + 1];
    for (int c = 1; c < 0x80; c++)
        all[c - 1] = (char)c;
    all[0x7f] = '\0';
    json_object_set_new(o, "ascii", json_string(all));
    json_object_set_new(o, "nul", json_stringn("a\0b", 3));
    json_object_set_new(o, "utf8", json_string("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80/"));
    json_object_set_new(
        o, "ints", json_pack("[I,I,I,i]", (json_int_t)INT64_MAX, (json_int_t)INT64_MIN, (json_int_t)0, -1));
    json_object_set_new(o, "reals", json_pack("[f,f,f,f,f,f]", 0.0, -0.0, 1.0, 0.1, 1e300, 123456789.125));
    json_object_set_new(o, "empty", json_pack("[{},[],\"\"]"));
    json_object_setn_new(o, "key\0nul", 7, json_true());
    json_object_set_new(o, "k\"\\\n", json_null());
    check_dump(o);
    json_t *a = json_pack("[o]", json_incref(o));
    check_dump(a);
    json_decref(a);
    /* not UTF-8 (possible only through *_nocheck): both fail */
    json_t *bad = json_pack("[o]", json_stringn_nocheck("\xff", 1));
    check_dump(bad);
    json_decref(bad);
    /* scalars at the top level: both refuse without JSON_ENCODE_ANY */
    json_t *s = json_string("x");
    check_dump(s);
    json_decref(s);
    /* a cycle: both fail */
    json_t *cyc = json_array();
    json_array_append(cyc, cyc);
    check_dump(cyc);
    json_array_clear(cyc);
    json_decref(cyc);
    json_decref(o);
}

/* ---- generated texts ---- */

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static const char *atoms[] = {
    "0",
    "-0",
    "1",
    "-1",
    "12",
    "1.5",
    "-2.25e3",
    "1e5",
    "1E-3",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "1e400",
    "true",
    "false",
    "null",
    "\"\"",
    "\"a\"",
    "\"\\n\"",
    "\"\\u00e9\"",
    "\"\\ud83d\\ude00\"",
    "\"\xc3\xa9\"",
    "\"\\\"\"",
    "\"id\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\t\"",
    "01",
};

static void gen(char *out, size_t *k, size_t cap, int depth)
{
    if (*k + 64 >= cap)
        return;
    unsigned r = rnd(depth > 6 ? 3 : 10);
    if (r < 3) {
        const char *a = atoms[rnd(sizeof atoms / sizeof atoms[0])];
        size_t n = strlen(a);
        memcpy(out + *k, a, n);
        *k += n;
    } else if (r < 6) {
        out[(*k)++] = '[';
        unsigned n = rnd(4);
        for (unsigned i = 0; i < n; i++) {
            if (i)
                out[(*k)++] = ',';
            gen(out, k, cap, depth + 1);
        }
        out[(*k)++] = ']';
    } else {
        out[(*k)++] = '{';
        unsigned n = rnd(4);
        for (unsigned i = 0; i < n && *k + 64 < cap; i++) {
            static const char *keys[] = {"\"a\"", "\"b\"", "\"id\"", "\"\\u0061\"", "\"\xc3\xa9\"", "\"\""};
            if (i)
                out[(*k)++] = ',';
            const char *key = keys[rnd(6)];
            memcpy(out + *k, key, strlen(key));
            *k += strlen(key);
            out[(*k)++] = rnd(20) ? ':' : ' ';
            gen(out, k, cap, depth + 1);
        }
        out[(*k)++] = '}';
    }
    if (rnd(8) == 0)
        out[(*k)++] = " \t\r\n"[rnd(4)];
}

static void test_generated(void **state)
{
    static const char noise[] =
        "{}[]:,\"\\ u0123456789abcdefABCDEF.-+eEtrufalsn\t\n\r\x01\x7f\xc3\xa9\xed\xa0\xff\x00";
    char buf[4096];
    /* MG_JSON_ITERS / MG_JSON_SEED: a longer soak than the default run (e.g. 10000000). */
    long iters = getenv("MG_JSON_ITERS") ? atol(getenv("MG_JSON_ITERS")) : 200000;
    if (getenv("MG_JSON_SEED"))
        rng = strtoull(getenv("MG_JSON_SEED"), NULL, 0) | 1;
    for (long iter = 0; iter < iters; iter++) {
        size_t k = 0;
        buf[k++] = rnd(2) ? '[' : '{';
        if (buf[0] == '{') {
            memcpy(buf + k, "\"k\":", 4);
            k += 4;
        }
        gen(buf, &k, sizeof buf - 8, 0);
        buf[k++] = buf[0] == '[' ? ']' : '}';
        unsigned muts = rnd(4);
        for (unsigned m = 0; m < muts && k > 1; m++) {
            size_t at = rnd((unsigned)k);
            switch (rnd(3)) {
            case 0: /* replace */
                buf[at] = noise[rnd(sizeof noise - 1)];
                break;
            case 1: /* delete */
                memmove(buf + at, buf + at + 1, k - at - 1);
                k--;
                break;
            default: /* insert */
                if (k + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, k - at);
                    buf[at] = noise[rnd(sizeof noise - 1)];
                    k++;
                }
                break;
            }
        }
        check_load(buf, k);
    }
    fprintf(stderr, "json: %llu texts compared, %llu accepted by both\n", checked, accepted);
    assert_true(accepted > checked / 10); /* the generator must reach the success paths too */
}

/* ---- log lines ---- */

/* Reads what was written to stderr since the last call (stderr redirected to a file). */
static FILE *cap;
static char *read_line(void)
{
    static char line[8192];
    fflush(stderr);
    if (fgets(line, sizeof line, cap) == NULL)
        return NULL;
    return line;
}

/* The line as mg_log_json built it before (jansson tree + json_dumps), time replaced by "T". */
static char *old_line(const char *level, const char *msg, json_t *fields)
{
    json_t *line = json_object();
    json_object_set_new(line, "time", json_string("T"));
    json_object_set_new(line, "level", json_string(level));
    json_object_set_new(line, "msg", json_string(msg));
    if (fields != NULL)
        json_object_update(line, fields);
    char *s = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    return s;
}

/* Replaces the value of "time" (a 24-byte timestamp) with "T". */
static void untime(char *s)
{
    char *t = strstr(s, "{\"time\":\"");
    assert_non_null(t);
    char *v = t + 9, *q = strchr(v, '"');
    assert_non_null(q);
    if (q - v == 24) {
        assert_true(v[4] == '-' && v[10] == 'T' && v[19] == '.' && v[23] == 'Z');
        memmove(v + 1, q, strlen(q) + 1);
        v[0] = 'T';
    }
    char *nl = strchr(s, '\n');
    if (nl)
        *nl = '\0';
}

static void test_log_lines(void **state)
{
    char path[] = "/tmp/mg-test-json-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    cap = fopen(path, "r");
    unlink(path);
    mg_log_set_level(MG_LOG_DEBUG);

    json_t *cases[] = {
        NULL,
        json_pack("{s:s,s:i}", "upstream", "ts", "child", 0),
        json_pack("{s:s,s:s,s:s}", "msg", "child's own\nline", "upstream", "ts", "stream", "stderr"),
        json_pack("{s:s,s:s}", "time", "override", "level", "x"),
        json_pack("{s:{s:[i,f]},s:b}", "nested", "a", 1, 2.5, "flag", 1),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *want = old_line("info", "hello \"there\"", cases[i]);
        mg_log_json(MG_LOG_INFO, "hello \"there\"", json_incref(cases[i]));
        char *got = read_line();
        assert_non_null(got);
        untime(got);
        if (cases[i] != NULL && json_object_get(cases[i], "time") != NULL) {
            /* the override is the line's time: compare as is */
            assert_string_equal(got, want);
        } else {
            assert_string_equal(got, want);
        }
        free(want);
        json_decref(cases[i]);
    }
    /* the access-log line */
    mg_log_field_t f[] = {{"http", "POST", 0},   {"method", "tools/call", 0},
                          {"status", NULL, 200}, {"latency_ms", NULL, 12},
                          {"upstream", "ts", 0}, {"session", "0123456789ab", 0}};
    json_t *jf = json_pack("{s:s,s:s,s:i,s:I,s:s,s:s}", "http", "POST", "method", "tools/call", "status", 200,
                           "latency_ms", (json_int_t)12, "upstream", "ts", "session", "0123456789ab");
    char *want = old_line("info", "request", jf);
    mg_log_fields(MG_LOG_INFO, "request", f, 6);
    char *got = read_line();
    assert_non_null(got);
    untime(got);
    assert_string_equal(got, want);
    free(want);
    json_decref(jf);
    /* a method with quotes, controls and UTF-8 */
    mg_log_field_t g[] = {{"method", "a\"b\\c\x01\xc3\xa9", 0}, {"status", NULL, -5}};
    jf = json_pack("{s:s,s:i}", "method", "a\"b\\c\x01\xc3\xa9", "status", -5);
    want = old_line("warn", "request", jf);
    mg_log_fields(MG_LOG_WARN, "request", g, 2);
    got = read_line();
    untime(got);
    assert_string_equal(got, want);
    free(want);
    json_decref(jf);
    /* the edges of the plain fast path: DEL, the int64 extremes, a line longer than its buffer, a
     * key and a message that need escapes, every printable byte */
    char longv[700], printable[96];
    memset(longv, 'x', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    for (int c = 0x20; c < 0x7f; c++)
        printable[c - 0x20] = (char)c;
    printable[0x7f - 0x20] = '\x7f';
    printable[sizeof printable - 1] = '\0';
    struct {
        const char *msg;
        mg_log_field_t f[3];
        size_t n;
    } edges[] = {
        {"request", {{"method", "a\x7f", 0}, {"n", NULL, LLONG_MIN}, {"m", NULL, LLONG_MAX}}, 3},
        {"request", {{"method", longv, 0}, {"status", NULL, 0}}, 2},
        {"re\"quest", {{"k\"ey", "v", 0}, {"status", NULL, -1}}, 2},
        {"request", {{"all", printable, 0}}, 1},
        {"", {{"", "", 0}}, 1},
    };
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        jf = json_object();
        for (size_t k = 0; k < edges[i].n; k++)
            json_object_set_new(jf, edges[i].f[k].key,
                                edges[i].f[k].str ? json_string(edges[i].f[k].str)
                                                  : json_integer((json_int_t)edges[i].f[k].num));
        want = old_line("info", edges[i].msg, jf);
        mg_log_fields(MG_LOG_INFO, edges[i].msg, edges[i].f, edges[i].n);
        got = read_line();
        assert_non_null(got);
        untime(got);
        assert_string_equal(got, want);
        free(want);
        json_decref(jf);
    }
    /* mg_log_request: the very line mg_log_fields writes for the same fields (plain values, values
     * that need escapes or are not UTF-8, fields left out, a line over the fast path's buffer) */
    struct {
        const char *http, *method, *upstream, *session;
        int status;
        long long latency;
    } rq[] = {
        {"POST", "tools/call", "ts", "0123456789abcdef0123456789abcdef", 200, 3},
        {"GET", "stream", NULL, "0123456789ab", 204, 0},
        {"POST", "initialize", NULL, NULL, 400, -1},
        {"DELETE", "", "up", NULL, 0, LLONG_MAX},
        {"POST", "a\"b\\c\x01\xc3\xa9", "u\"p", "s\n", 500, 12},
        {"POST", "tools/call", "\x7f", "\xff", 429, 1},
        {"P\xffST", "m", NULL, NULL, 200, 1},
        {"POST", longv, "ts", "s", 200, 1},
    };
    for (size_t i = 0; i < sizeof rq / sizeof rq[0]; i++) {
        mg_log_field_t rf[6] = {{"http", rq[i].http, 0},
                                {"method", rq[i].method, 0},
                                {"status", NULL, rq[i].status},
                                {"latency_ms", NULL, rq[i].latency}};
        size_t rn = 4;
        if (rq[i].upstream != NULL)
            rf[rn++] = (mg_log_field_t){"upstream", rq[i].upstream, 0};
        if (rq[i].session != NULL)
            rf[rn++] = (mg_log_field_t){"session", rq[i].session, 0};
        mg_log_fields(MG_LOG_INFO, "request", rf, rn);
        want = read_line();
        assert_non_null(want);
        want = strdup(want); /* read_line's buffer is reused */
        untime(want);
        mg_log_request(rq[i].http, rq[i].method, rq[i].status, rq[i].latency, rq[i].upstream, rq[i].session);
        got = read_line();
        assert_non_null(got);
        untime(got);
        assert_string_equal(got, want);
        free(want);
    }
    /* a value that is not UTF-8: json_pack() failed, the line had no fields */
    mg_log_field_t h[] = {{"http", "P\xffST", 0}};
    want = old_line("info", "request", NULL);
    mg_log_fields(MG_LOG_INFO, "request", h, 1);
    got = read_line();
    untime(got);
    assert_string_equal(got, want);
    free(want);

    mg_log_set_level(MG_LOG_INFO);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    fclose(cap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_edges), cmocka_unit_test(test_load_depth),
        cmocka_unit_test(test_dump_edges), cmocka_unit_test(test_generated),
        cmocka_unit_test(test_log_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
