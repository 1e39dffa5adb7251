/*
 * store_contract.c - see store_contract.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "store_contract.h"

/* ---- loop helpers ---- */

uv_loop_t *cur_loop;

uint64_t loop_now(void)
{
    return uv_now(cur_loop);
}

void wake_cb(uv_timer_t *t)
{
}

/* Runs the loop until *flag is non-zero or ms pass; returns *flag. */
int run_until(uv_loop_t *loop, volatile int *flag, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, wake_cb, 10, 10);
    uint64_t end = uv_now(loop) + ms;
    while (!*flag && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *flag;
}

int store_ready_flag(mg_store_t *st)
{
    return st->ops->ready(st);
}

int wait_ready(uv_loop_t *loop, mg_store_t *st, int want, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, wake_cb, 10, 10);
    uint64_t end = uv_now(loop) + ms;
    while (store_ready_flag(st) != want && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return store_ready_flag(st) == want;
}

/* ---- callbacks that record results ---- */

void get_cb(int err, json_t *record, void *data)
{
    res_t *r = data;
    r->err = err;
    r->rec = record ? json_deep_copy(record) : NULL;
    r->done = 1;
}

void done_cb(int err, void *data)
{
    res_t *r = data;
    r->err = err;
    r->done = 1;
}

void seq_cb(int err, uint64_t seq, void *data)
{
    res_t *r = data;
    r->err = err;
    r->seq = seq;
    r->done = 1;
}

void range_cb(int err, const mg_bus_event_t *ev, size_t n, void *data)
{
    res_t *r = data;
    r->err = err;
    r->events = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(r->events,
                              json_pack("[I,s%,b]", (json_int_t)ev[i].seq, ev[i].data, ev[i].len, ev[i].end));
    r->done = 1;
}

void value_cb(int err, const char *value, void *data)
{
    res_t *r = data;
    r->err = err;
    r->has_value = value != NULL;
    snprintf(r->value, sizeof r->value, "%s", value ? value : "");
    r->done = 1;
}

void res_reset(res_t *r)
{
    json_decref(r->rec);
    json_decref(r->events);
    memset(r, 0, sizeof(*r));
}

void msg_cb(const char *channel, const char *payload, size_t len, void *data)
{
    inbox_t *in = data;
    json_array_append_new(in->msgs, payload ? json_stringn(payload, len) : json_string("<subscribed>"));
}

int inbox_wait(uv_loop_t *loop, inbox_t *in, size_t n, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, wake_cb, 10, 10);
    uint64_t end = uv_now(loop) + ms;
    while (json_array_size(in->msgs) < n && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return json_array_size(in->msgs) >= n;
}

/* ---- the contract, run against both backends ---- */

json_t *sample_record(void)
{
    return json_pack("{s:s,s:s,s:{s:{}},s:{s:s},s:{s:s,s:s},s:s,s:I,s:i,s:{s:i}}", "id", "abc", "version",
                     "2025-11-25", "caps", "sampling", "clientInfo", "name", "c", "principal", "key", "k1",
                     "tenant", "t1", "profile", "", "created", (json_int_t)1, "logLevel", 2, "subs",
                     "test://a", 0);
}

void store_contract(uv_loop_t *loop, mg_store_t *st)
{
    res_t r = {0};
    json_t *rec = sample_record();
    CALL(loop, r, st->ops->put(st, "t1:abc", rec, 60000, done_cb, &r));
    assert_int_equal(r.err, 0);
    json_decref(rec);

    CALL(loop, r, st->ops->get(st, "t1:abc", get_cb, &r));
    assert_int_equal(r.err, 0);
    assert_non_null(r.rec);
    assert_string_equal(json_string_value(json_object_get(r.rec, "version")), "2025-11-25");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.rec, "principal"), "key")), "k1");
    assert_int_equal(json_integer_value(json_object_get(r.rec, "logLevel")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r.rec, "subs"), "test://a")), 0);
    assert_null(json_object_get(r.rec, "owner"));

    /* another tenant's key does not resolve */
    CALL(loop, r, st->ops->get(st, "t2:abc", get_cb, &r));
    assert_int_equal(r.err, 0);
    assert_null(r.rec);

    /* load without claim leaves the owner unset; with claim sets it */
    mg_store_load_opts_t o = {60000, "replA", 0};
    CALL(loop, r, st->ops->load(st, "t1:abc", &o, get_cb, &r));
    assert_non_null(r.rec);
    assert_null(json_object_get(r.rec, "owner"));
    o.claim = 1;
    CALL(loop, r, st->ops->load(st, "t1:abc", &o, get_cb, &r));
    assert_string_equal(json_string_value(json_object_get(r.rec, "owner")), "replA");
    /* a second replica's claim does not take it over */
    mg_store_load_opts_t o2 = {60000, "replB", 1};
    CALL(loop, r, st->ops->load(st, "t1:abc", &o2, get_cb, &r));
    assert_string_equal(json_string_value(json_object_get(r.rec, "owner")),
                        st->ops->name[0] == 'm' ? "replA" : "!replA");

    /* patch */
    json_t *p = json_pack("{s:i,s:{s:n,s:i}}", "logLevel", 5, "subs", "test://a", "test://b", 1);
    CALL(loop, r, st->ops->patch(st, "t1:abc", p, done_cb, &r));
    assert_int_equal(r.err, 0);
    json_decref(p);
    CALL(loop, r, st->ops->get(st, "t1:abc", get_cb, &r));
    assert_int_equal(json_integer_value(json_object_get(r.rec, "logLevel")), 5);
    assert_null(json_object_get(json_object_get(r.rec, "subs"), "test://a"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r.rec, "subs"), "test://b")), 1);
    p = json_pack("{s:i}", "logLevel", 1);
    CALL(loop, r, st->ops->patch(st, "t1:nope", p, done_cb, &r));
    assert_int_equal(r.err, MG_ENOTFOUND);
    json_decref(p);

    /* owner compare-and-set */
    CALL(loop, r, st->ops->get(st, "t1:abc", get_cb, &r));
    char cur[64];
    snprintf(cur, sizeof cur, "%s", json_string_value(json_object_get(r.rec, "owner")));
    CALL(loop, r, st->ops->owner_cas(st, "t1:abc", "other", "", done_cb, &r));
    assert_int_equal(r.err, MG_EBUSY);
    CALL(loop, r, st->ops->owner_cas(st, "t1:abc", cur, "", done_cb, &r));
    assert_int_equal(r.err, 0);
    CALL(loop, r, st->ops->get(st, "t1:abc", get_cb, &r));
    assert_null(json_object_get(r.rec, "owner"));
    CALL(loop, r, st->ops->owner_cas(st, "t1:abc", "", "replB", done_cb, &r));
    assert_int_equal(r.err, 0);
    CALL(loop, r, st->ops->owner_cas(st, "t1:nope", "", "replB", done_cb, &r));
    assert_int_equal(r.err, MG_ENOTFOUND);

    /* touch, del */
    CALL(loop, r, st->ops->touch(st, "t1:abc", 60000, done_cb, &r));
    assert_int_equal(r.err, 0);
    CALL(loop, r, st->ops->del(st, "t1:abc", done_cb, &r));
    assert_int_equal(r.err, 0);
    CALL(loop, r, st->ops->get(st, "t1:abc", get_cb, &r));
    assert_null(r.rec);
    CALL(loop, r, st->ops->touch(st, "t1:abc", 60000, done_cb, &r));
    assert_int_equal(r.err, MG_ENOTFOUND);
    mg_store_load_opts_t o3 = {60000, "replA", 1};
    CALL(loop, r, st->ops->load(st, "t1:abc", &o3, get_cb, &r));
    assert_int_equal(r.err, 0);
    assert_null(r.rec);
    res_reset(&r);
}

void bus_contract(uv_loop_t *loop, mg_bus_t *b)
{
    res_t r = {0};
    inbox_t in = {json_array()};
    mg_bus_sub_t *sub = NULL;
    assert_int_equal(b->ops->subscribe(b, "e:t:s:0", msg_cb, &in, &sub), 0);
    assert_true(inbox_wait(loop, &in, 1, 3000));
    assert_string_equal(json_string_value(json_array_get(in.msgs, 0)), "<subscribed>");

    /* seq 0: allocated; explicit seqs must grow */
    CALL(loop, r, b->ops->append(b, "x:t:s:0", "e:t:s:0", 0, "{\"a\":1}", 7, 0, 64, 60000, seq_cb, &r));
    assert_int_equal(r.err, 0);
    assert_int_equal(r.seq, 1);
    CALL(loop, r, b->ops->append(b, "x:t:s:0", "e:t:s:0", 0, "line\nbreak", 10, 0, 64, 60000, seq_cb, &r));
    assert_int_equal(r.seq, 2);
    CALL(loop, r, b->ops->append(b, "x:t:s:0", "e:t:s:0", 0, "", 0, 1, 64, 60000, seq_cb, &r));
    assert_int_equal(r.seq, 3);
    assert_true(inbox_wait(loop, &in, 4, 3000));
    assert_string_equal(json_string_value(json_array_get(in.msgs, 1)), "1 d\n{\"a\":1}");
    assert_string_equal(json_string_value(json_array_get(in.msgs, 2)), "2 d\nline\nbreak");
    assert_string_equal(json_string_value(json_array_get(in.msgs, 3)), "3 e\n");

    CALL(loop, r, b->ops->range(b, "x:t:s:0", 1, 0, range_cb, &r));
    assert_int_equal(r.err, 0);
    assert_int_equal(json_array_size(r.events), 2);
    assert_int_equal(json_integer_value(json_array_get(json_array_get(r.events, 0), 0)), 2);
    assert_string_equal(json_string_value(json_array_get(json_array_get(r.events, 0), 1)), "line\nbreak");
    assert_true(json_is_true(json_array_get(json_array_get(r.events, 1), 2)));
    CALL(loop, r, b->ops->range(b, "x:t:s:0", 0, 1, range_cb, &r));
    assert_int_equal(json_array_size(r.events), 1);
    CALL(loop, r, b->ops->last(b, "x:t:s:0", seq_cb, &r));
    assert_int_equal(r.seq, 3);
    CALL(loop, r, b->ops->last(b, "x:t:s:none", seq_cb, &r));
    assert_int_equal(r.seq, 0);
    CALL(loop, r, b->ops->range(b, "x:t:s:none", 0, 0, range_cb, &r));
    assert_int_equal(json_array_size(r.events), 0);

    /* one writer with its own seqs; bounded */
    for (unsigned i = 1; i <= 300; i++)
        CALL(loop, r, b->ops->append(b, "x:t:s:r.1", "e:t:s:r.1", i, "x", 1, 0, 10, 60000, seq_cb, &r));
    CALL(loop, r, b->ops->range(b, "x:t:s:r.1", 0, 0, range_cb, &r));
    assert_true(json_array_size(r.events) >= 10 && json_array_size(r.events) < 300);
    assert_int_equal(
        json_integer_value(json_array_get(json_array_get(r.events, json_array_size(r.events) - 1), 0)), 300);

    /* values */
    CALL(loop, r, b->ops->set(b, "r:replA", "127.0.0.1:1", 60000, done_cb, &r));
    assert_int_equal(r.err, 0);
    CALL(loop, r, b->ops->get(b, "r:replA", value_cb, &r));
    assert_true(r.has_value);
    assert_string_equal(r.value, "127.0.0.1:1");
    const char *keys[] = {"r:replA", "x:t:s:0"};
    CALL(loop, r, b->ops->del(b, keys, 2, done_cb, &r));
    CALL(loop, r, b->ops->get(b, "r:replA", value_cb, &r));
    assert_false(r.has_value);

    /* plain publish */
    json_array_clear(in.msgs);
    assert_int_equal(b->ops->publish(b, "e:t:s:0", "hello", 5), 0);
    assert_true(inbox_wait(loop, &in, 1, 3000));
    assert_string_equal(json_string_value(json_array_get(in.msgs, 0)), "hello");
    b->ops->unsubscribe(b, sub);
    assert_int_equal(b->ops->publish(b, "e:t:s:0", "late", 4), 0);
    int never = 0;
    run_until(loop, &never, 200);
    assert_int_equal(json_array_size(in.msgs), 1);
    json_decref(in.msgs);
    res_reset(&r);
}

int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t n = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &n);
    close(fd);
    return ntohs(a.sin_port);
}

void rl_cb(void *data, const mg_rl_result_t *r)
{
    rl_res_t *t = data;
    t->calls++;
    t->r = *r;
}

int rl_wait(uv_loop_t *loop, rl_res_t *t, size_t n, uint64_t ms)
{
    uv_timer_t tm;
    uv_timer_init(loop, &tm);
    uv_timer_start(&tm, wake_cb, 10, 10);
    uint64_t end = uv_now(loop) + ms;
    size_t got = 0;
    while (uv_now(loop) < end) {
        got = 0;
        for (size_t i = 0; i < n; i++)
            got += t[i].calls == 1;
        if (got == n)
            break;
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&tm, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return got == n;
}
