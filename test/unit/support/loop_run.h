/*
 * loop_run.h - running a test's uv loop until a flag is set, or for a while: the unit tests of
 * the HTTP clients (test_http_client.c, test_h1client.c). Header only.
 */
#ifndef MG_TEST_LOOP_RUN_H
#define MG_TEST_LOOP_RUN_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <uv.h>

/* Sets the flag and stops the loop: a timer due at the top of uv_run(UV_RUN_ONCE) runs before the
 * poll, which would then wait with no timer left (a slow run, as under ASan, hit that). */
static inline void loop_guard_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
    uv_stop(t->loop);
}

/* Runs the loop until *flag is set (or 5 s pass: a failure). */
static inline void run_until(uv_loop_t *loop, int *flag)
{
    int expired = 0;
    uv_timer_t guard;
    uv_timer_init(loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, loop_guard_cb, 5000, 0);
    while (!*flag && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    assert_false(expired);
}

/* Lets the loop run for ms (to see that nothing more happens). */
static inline void run_for(uv_loop_t *loop, uint64_t ms)
{
    int flag = 0;
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = &flag;
    uv_timer_start(&t, loop_guard_cb, ms, 0);
    while (!flag)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

#endif
