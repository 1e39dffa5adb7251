/*
 * store_contract.h - the contract of store.h and bus.h as assertions, run by test_store.c against
 * the memory backends and Redis and by test_store_pg.c against PostgreSQL, plus the loop helpers
 * and result recorders those tests share.
 */
#ifndef MG_TEST_STORE_CONTRACT_H
#define MG_TEST_STORE_CONTRACT_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "session/bus.h"
#include "session/rl_store.h"
#include "session/store.h"

extern uv_loop_t *cur_loop; /* the loop loop_now() reads */

typedef struct res {
    int done;
    int err;
    json_t *rec;
    uint64_t seq;
    char value[256];
    int has_value;
    json_t *events; /* [[seq, data, end]] */
} res_t;
typedef struct inbox {
    json_t *msgs; /* strings; "<subscribed>" for a NULL payload */
} inbox_t;
typedef struct rl_res {
    int calls;
    mg_rl_result_t r;
} rl_res_t;

#define CALL(loop, res, expr)                                                                                \
    do {                                                                                                     \
        res_reset(&(res));                                                                                   \
        assert_int_equal((expr), 0);                                                                         \
        assert_true(run_until((loop), &(res).done, 3000));                                                   \
    } while (0)

uint64_t loop_now(void);
void wake_cb(uv_timer_t *t);
int run_until(uv_loop_t *loop, volatile int *flag, uint64_t ms);
int store_ready_flag(mg_store_t *st);
int wait_ready(uv_loop_t *loop, mg_store_t *st, int want, uint64_t ms);
void get_cb(int err, json_t *record, void *data);
void done_cb(int err, void *data);
void seq_cb(int err, uint64_t seq, void *data);
void range_cb(int err, const mg_bus_event_t *ev, size_t n, void *data);
void value_cb(int err, const char *value, void *data);
void res_reset(res_t *r);
void msg_cb(const char *channel, const char *payload, size_t len, void *data);
int inbox_wait(uv_loop_t *loop, inbox_t *in, size_t n, uint64_t ms);
json_t *sample_record(void);
void store_contract(uv_loop_t *loop, mg_store_t *st);
void bus_contract(uv_loop_t *loop, mg_bus_t *b);
int free_port(void);
void rl_cb(void *data, const mg_rl_result_t *r);
int rl_wait(uv_loop_t *loop, rl_res_t *t, size_t n, uint64_t ms);

#endif
