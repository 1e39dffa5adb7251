/*
 * task_contract.c - see task_contract.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "task_contract.h"

static void wake_cb(uv_timer_t *t)
{
}

void task_contract_run_for(uv_loop_t *loop, volatile int *flag, uint64_t ms)
{
    if (loop == NULL)
        return; /* the memory store answers at once */
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, wake_cb, 10, 10);
    uint64_t end = uv_now(loop) + ms;
    while ((flag == NULL || !*flag) && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

void task_contract_cb(void *data, int err, json_t *record)
{
    task_res_t *r = data;
    r->err = err;
    json_decref(r->rec);
    r->rec = record != NULL ? json_deep_copy(record) : NULL;
    r->done = 1;
}

json_t *task_contract_record(const char *id, const char *principal, const char *status, const char *owner)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:{s:[{s:s,s:s}],s:{}}}", "id", id, "principal",
                     principal, "owner", owner, "status", status, "createdAt", (json_int_t)1700000000000,
                     "updatedAt", (json_int_t)1700000000000, "ttlMs", (json_int_t)60000, "pollIntervalMs",
                     (json_int_t)1000, "result", "content", "type", "text", "text", "hi",
                     "structuredContent");
}

void task_contract(uv_loop_t *loop, mg_task_store_t *st, const char *owner, uint64_t *clock)
{
    task_res_t r = {0};
    json_t *a = task_contract_record("a0000000000000000000000000000001", "alice", "working", owner);
    json_t *b = task_contract_record("a0000000000000000000000000000002", "alice", "working", owner);
    json_t *c = task_contract_record("a0000000000000000000000000000003", "alice", "working", owner);
    json_t *d = task_contract_record("b0000000000000000000000000000001", "bob", "working", owner);
    OP(loop, r, st->ops->create(st, a, 2, 60000, task_contract_cb, &r));
    assert_int_equal(r.err, 0);
    assert_string_equal(json_string_value(json_object_get(r.rec, "id")), "a0000000000000000000000000000001");
    OP(loop, r, st->ops->create(st, b, 2, 60000, task_contract_cb, &r));
    assert_int_equal(r.err, 0);
    OP(loop, r, st->ops->create(st, c, 2, 60000, task_contract_cb, &r));
    assert_int_equal(r.err, MG_EBUSY); /* alice has 2 unfinished */
    OP(loop, r, st->ops->create(st, d, 2, 60000, task_contract_cb, &r));
    assert_int_equal(r.err, 0); /* bob has his own count */

    OP(loop, r, st->ops->get(st, "a0000000000000000000000000000001", "gone", task_contract_cb, &r));
    assert_int_equal(r.err, 0);
    assert_string_equal(json_string_value(json_object_get(r.rec, "status")), "working");
    assert_string_equal(json_string_value(json_object_get(r.rec, "principal")), "alice");
    /* an empty object inside the result survives the round trip */
    assert_true(json_is_object(json_object_get(json_object_get(r.rec, "result"), "structuredContent")));
    OP(loop, r, st->ops->get(st, "ffffffffffffffffffffffffffffffff", "gone", task_contract_cb, &r));
    assert_int_equal(r.err, 0);
    assert_null(r.rec);

    /* a terminal record frees its slot, and is never replaced */
    json_object_set_new(a, "status", json_string("completed"));
    OP(loop, r, st->ops->update(st, a, task_contract_cb, &r));
    assert_int_equal(r.err, 0);
    OP(loop, r, st->ops->create(st, c, 2, 60000, task_contract_cb, &r));
    assert_int_equal(r.err, 0);
    json_object_set_new(a, "status", json_string("cancelled"));
    OP(loop, r, st->ops->update(st, a, task_contract_cb, &r));
    assert_int_equal(r.err, MG_EBUSY);
    assert_string_equal(json_string_value(json_object_get(r.rec, "status")), "completed");
    json_t *ghost = task_contract_record("c0000000000000000000000000000001", "alice", "working", owner);
    OP(loop, r, st->ops->update(st, ghost, task_contract_cb, &r));
    assert_int_equal(r.err, 0);
    assert_null(r.rec); /* absent stays absent */

    /* expiry */
    json_t *e = task_contract_record("e0000000000000000000000000000001", "carol", "working", owner);
    OP(loop, r, st->ops->create(st, e, 5, 200, task_contract_cb, &r));
    assert_int_equal(r.err, 0);
    if (clock != NULL)
        *clock += 300;
    task_contract_run_for(loop, NULL, 300);
    OP(loop, r, st->ops->get(st, "e0000000000000000000000000000001", "gone", task_contract_cb, &r));
    assert_null(r.rec);

    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
    json_decref(e);
    json_decref(ghost);
    json_decref(r.rec);
}

void task_contract_dead_owner(uv_loop_t *loop, mg_task_store_t *st)
{
    task_res_t r = {0};
    /* an owner without a registry key: get reports the task failed, with the reason, for good */
    json_t *lost = task_contract_record("d0000000000000000000000000000001", "dave", "working", "dead");
    OP(loop, r, st->ops->create(st, lost, 1, 60000, task_contract_cb, &r));
    assert_int_equal(r.err, 0);
    OP(loop, r,
       st->ops->get(st, "d0000000000000000000000000000001", "its replica stopped", task_contract_cb, &r));
    assert_string_equal(json_string_value(json_object_get(r.rec, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(r.rec, "statusMessage")), "its replica stopped");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r.rec, "error"), "code")),
                     mg_err_jsonrpc_code(MG_EREPLICA));
    assert_int_equal(json_integer_value(json_object_get(r.rec, "createdAt")), 1700000000000);
    json_object_set_new(lost, "status", json_string("completed"));
    OP(loop, r, st->ops->update(st, lost, task_contract_cb, &r));
    assert_int_equal(r.err, MG_EBUSY); /* the late outcome of a lost task does not overwrite it */
    /* ... and its slot is free again */
    json_object_set_new(lost, "id", json_string("d0000000000000000000000000000002"));
    json_object_set_new(lost, "status", json_string("working"));
    OP(loop, r, st->ops->create(st, lost, 1, 60000, task_contract_cb, &r));
    assert_int_equal(r.err, 0);
    json_decref(lost);
    json_decref(r.rec);
}
