/*
 * test_common.c - the hash map, SSE framing, the memory session store and the log rate limit.
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
#include "common/log.h"
#include "common/map.h"
#include "http/sse.h"
#include "session/store.h"

static void test_map(void **state)
{
    mg_map_t m;
    mg_map_init(&m);
    char key[32];
    static int values[5000];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(mg_map_set(&m, key, &values[i]), 0);
    }
    assert_int_equal(m.count, 5000);
    for (int i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof key, "k%d", i);
        assert_ptr_equal(mg_map_del(&m, key), &values[i]);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_ptr_equal(mg_map_get(&m, key), i % 2 ? &values[i] : NULL);
    }
    size_t pos = 0, n = 0;
    const char *k;
    void *v;
    while (mg_map_next(&m, &pos, &k, &v))
        n++;
    assert_int_equal(n, 2500);
    /* reinsert over tombstones */
    for (int i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(mg_map_set(&m, key, &values[i]), 0);
    }
    assert_int_equal(m.count, 5000);
    mg_map_dispose(&m);
}

static void test_sse_format(void **state)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    assert_int_equal(mg_sse_format(&buf, &len, &cap, "1-1", "{\"a\":1}", 7, 0), 0);
    assert_int_equal(mg_sse_format(&buf, &len, &cap, "1-2", "", 0, 0), 0);
    assert_int_equal(mg_sse_format(&buf, &len, &cap, NULL, "x\ny\r\nz", 6, 500), 0);
    const char *want = "id: 1-1\ndata: {\"a\":1}\n\n"
                       "id: 1-2\ndata: \n\n"
                       "retry: 500\ndata: x\ndata: y\ndata: z\n\n";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
    free(buf);
}

static uint64_t fake_now;
static uint64_t now_fn(void)
{
    return fake_now;
}

static int got_calls;
static json_t *got_record;
static void get_cb(int err, json_t *record, void *data)
{
    got_calls++;
    got_record = record;
}

static void test_store_memory(void **state)
{
    fake_now = 1000;
    mg_store_t *st = mg_store_memory_new(now_fn);
    json_t *rec = json_pack("{s:s,s:s}", "id", "abc", "version", "2025-11-25");
    assert_int_equal(st->ops->put(st, "abc", rec, 100, NULL, NULL), 0);
    json_decref(rec);
    assert_int_equal(st->ops->get(st, "abc", get_cb, NULL), 0);
    assert_int_equal(got_calls, 1);
    assert_non_null(got_record);
    assert_string_equal(json_string_value(json_object_get(got_record, "version")), "2025-11-25");
    fake_now = 1090;
    st->ops->touch(st, "abc", 100, NULL, NULL);
    fake_now = 1150; /* would have expired without the touch */
    st->ops->get(st, "abc", get_cb, NULL);
    assert_non_null(got_record);
    fake_now = 1300;
    assert_int_equal(mg_store_memory_sweep(st), 1);
    st->ops->get(st, "abc", get_cb, NULL);
    assert_null(got_record);
    assert_int_equal(st->ops->count(st), 0);
    st->ops->free(st);
}

/* The log rate limit: `burst` lines per window, the rest counted and reported once. */
static void test_log_limit(void **state)
{
    (void)state;
    mg_log_limit_t l;
    mg_log_limit_init(&l, 3, 1000);
    uint64_t dropped = 99;
    unsigned written = 0;
    /* a flood of 100000 lines inside one window: 3 written */
    for (int i = 0; i < 100000; i++)
        written += (unsigned)mg_log_limit_take(&l, 5000 + (uint64_t)(i % 1000), &dropped);
    assert_int_equal(written, 3);
    assert_int_equal(dropped, 0); /* nothing dropped before the first three */
    assert_int_equal(l.suppressed, 100000 - 3);
    /* next window: the first line reports what the previous window dropped, once */
    assert_int_equal(mg_log_limit_take(&l, 6000, &dropped), 1);
    assert_int_equal(dropped, 100000 - 3);
    assert_int_equal(mg_log_limit_take(&l, 6001, &dropped), 1);
    assert_int_equal(dropped, 0);
    assert_int_equal(mg_log_limit_take(&l, 6002, &dropped), 1);
    assert_int_equal(mg_log_limit_take(&l, 6003, &dropped), 0);
    assert_int_equal(l.suppressed, 1);
    /* flush reports and clears the count; a second flush writes nothing */
    mg_log_limit_flush(&l, MG_LOG_ERROR, "test: lines suppressed", json_pack("{s:s}", "source", "unit"));
    assert_int_equal(l.suppressed, 0);
    /* a clock that goes backwards starts a new window rather than suppressing forever */
    for (int i = 0; i < 10; i++)
        mg_log_limit_take(&l, 6500, NULL);
    assert_int_equal(mg_log_limit_take(&l, 100, &dropped), 1);
    assert_int_equal(dropped, 10); /* the window of 6000 was full: all ten were dropped */
    /* mg_log_limited: a level below the minimum is neither written nor counted */
    mg_log_set_level(MG_LOG_ERROR);
    mg_log_limit_init(&l, 1, 1000);
    assert_int_equal(mg_log_limited(&l, 0, MG_LOG_INFO, "not shown", json_object()), 0);
    assert_int_equal(l.suppressed, 0);
    assert_int_equal(mg_log_limited(&l, 0, MG_LOG_ERROR, "test: shown once", json_object()), 1);
    assert_int_equal(mg_log_limited(&l, 1, MG_LOG_ERROR, "test: dropped", json_object()), 0);
    assert_int_equal(l.suppressed, 1);
    mg_log_set_level(MG_LOG_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_map), cmocka_unit_test(test_sse_format),
                                       cmocka_unit_test(test_store_memory), cmocka_unit_test(test_log_limit)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
