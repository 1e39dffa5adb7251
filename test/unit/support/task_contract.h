/*
 * task_contract.h - the contract of a task record store (src/session/task_store.h), run by
 * test_task_store.c against the memory and Redis stores and by test_store_pg.c against PostgreSQL.
 * Read next: task_contract.c.
 */
#ifndef MG_TEST_TASK_CONTRACT_H
#define MG_TEST_TASK_CONTRACT_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "session/task_store.h"

typedef struct task_res {
    int done;
    int err;
    json_t *rec;
} task_res_t;

/* Runs one operation to its callback; check (r).err after (cmocka asserts). */
#define OP(loop, r, expr)                                                                                    \
    do {                                                                                                     \
        (r).done = 0;                                                                                        \
        assert_int_equal((expr), 0);                                                                         \
        task_contract_run_for((loop), &(r).done, 5000);                                                      \
        assert_true((r).done);                                                                               \
    } while (0)

/* An mg_task_store_cb filling a task_res_t (data). */
void task_contract_cb(void *data, int err, json_t *record);
/* Runs loop until *flag or ms pass (loop NULL: nothing, the memory store answers at once). */
void task_contract_run_for(uv_loop_t *loop, volatile int *flag, uint64_t ms);
/* A working/... record of principal with owner. */
json_t *task_contract_record(const char *id, const char *principal, const char *status, const char *owner);
/* create within the principal's limit (MG_EBUSY past it; a terminal record frees its slot), get,
 * update that never replaces a terminal record, expiry by TTL (*clock is advanced by 300 ms for
 * stores on a fake clock). owner: a replica with a live registry entry ("" in one process). */
void task_contract(uv_loop_t *loop, mg_task_store_t *st, const char *owner, uint64_t *clock);
/* Shared stores: a record whose owner "dead" has no registry entry is reported failed by get, with
 * the reason and MG_EREPLICA's code, for good (a late outcome does not replace it), and its slot
 * is free again. */
void task_contract_dead_owner(uv_loop_t *loop, mg_task_store_t *st);

#endif
