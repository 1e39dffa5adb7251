/*
 * test_sse.c - SSE event framing (src/http/sse.c, mg_sse_format): ids, retry, and line breaks in
 * the payload, which must never end an event early or inject a field.
 * Read next: fuzz/fuzz_sse.c (the same property, fuzzed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "http/sse.h"

static char *fmt(const char *id, const char *data, size_t n, uint32_t retry)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    assert_int_equal(mg_sse_format(&buf, &len, &cap, id, data, n, retry), 0);
    buf = realloc(buf, len + 1);
    buf[len] = '\0';
    return buf;
}

static void test_basic(void **state)
{
    char *s = fmt("1-2", "{\"a\":1}", 7, 0);
    assert_string_equal(s, "id: 1-2\ndata: {\"a\":1}\n\n");
    free(s);
    s = fmt(NULL, "", 0, 1000);
    assert_string_equal(s, "retry: 1000\ndata: \n\n");
    free(s);
}

static void test_line_breaks(void **state)
{
    char *s = fmt(NULL, "a\nb\r\nc", 6, 0);
    assert_string_equal(s, "data: a\ndata: b\ndata: c\n\n");
    free(s);
}

/* Found by fuzz/fuzz_sse.c: a lone CR was copied into the data line, and every SSE parser reads a
 * lone CR as a line end, so "x\rid: 9" smuggled an id field (and "x\r\r" ended the event). */
static void test_lone_cr_is_a_line_break(void **state)
{
    char *s = fmt("1-1", "x\rid: 9", 7, 0);
    assert_string_equal(s, "id: 1-1\ndata: x\ndata: id: 9\n\n");
    free(s);
    s = fmt(NULL, "x\r\ry", 4, 0);
    assert_string_equal(s, "data: x\ndata: \ndata: y\n\n");
    free(s);
    s = fmt(NULL, "x\r", 2, 0);
    assert_string_equal(s, "data: x\ndata: \n\n");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_basic), cmocka_unit_test(test_line_breaks),
                                       cmocka_unit_test(test_lone_cr_is_a_line_break)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
