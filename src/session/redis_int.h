/*
 * redis_int.h - internals shared by redis_conn.c (connections, Sentinel, deadlines) and
 * store_redis.c (store and bus operations). Nothing outside src/session includes it.
 *
 * Two connections per process, each an rconn_t with its own state machine:
 *
 *   WAIT --(retry_at)--> RESOLVE (Sentinel: ask each sentinel for the master; DNS) --> CONNECTING
 *     --> HANDSHAKE (AUTH, SELECT, ROLE must be "master" with Sentinel, SCRIPT LOAD) --> READY
 *   any failure or a late reply --> WAIT (backoff 100 ms doubling to 5 s, +-20 %)
 *
 * The command connection carries every store/bus command (pipelined; replies in order, so one
 * FIFO of the commands sent gives each one's age). A command older than the deadline (timeoutMs)
 * is answered MG_EIO at once and its late reply is dropped; a connection that has not replied at
 * all for 3 deadlines (at least 5 s) while commands wait is dropped and replaced. The pub/sub connection is
 * subscribed to this process's ping channel plus every channel someone subscribed to; the command connection
 * publishes a ping every second and a silent pub/sub connection is dropped after 3.5 s.
 *
 * hiredis 0.14's own libuv adapter ignores a poll error (status < 0), so a refused or reset
 * connection was never noticed; redis_conn.c carries a corrected copy (uvev_*).
 */
#ifndef MG_REDIS_INT_H
#define MG_REDIS_INT_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "../common/map.h"
#include "redis.h"

typedef enum rc_state { RC_WAIT = 0, RC_RESOLVE, RC_CONNECTING, RC_HANDSHAKE, RC_READY } rc_state_t;

typedef struct mg_redis mg_redis_t;
typedef struct rconn rconn_t;
typedef struct probe probe_t;

/* A command's completion: reply NULL when the connection went away (or timed out). */
typedef void (*rc_reply_cb)(mg_redis_t *r, redisReply *reply, void *data);

struct rconn {
    mg_redis_t *r;
    int sub; /* 1 = the pub/sub connection */
    const char *label;
    redisAsyncContext *ac;
    rc_state_t state;
    uint64_t since;    /* entered the current state */
    uint64_t retry_at; /* RC_WAIT: next attempt */
    unsigned attempts;
    struct cmdreq **sent; /* ring of the commands awaiting replies, oldest first */
    size_t sent_head, sent_count, sent_cap;
    uint64_t last_reply; /* a reply (any) arrived: the connection is alive */
    char host[256];
    unsigned port;
    uv_getaddrinfo_t *gai; /* pending resolution (data cleared when abandoned) */
    probe_t *probe;        /* pending Sentinel lookup */
    unsigned handshake_left;
    uint64_t last_rx;     /* pub/sub: last message of our ping channel */
    char last_error[256]; /* logged once per distinct problem */
};

/* subscribers: struct mg_bus_sub (store_redis.c) */

typedef struct script {
    const char *text;
    char sha[41];
} script_t;

enum {
    SCRIPT_PUT = 0,
    SCRIPT_LOAD,
    SCRIPT_PATCH,
    SCRIPT_CAS,
    SCRIPT_APPEND,
    SCRIPT_LAST,
    SCRIPT_RATE,        /* rate-limit take (ratelimit_redis.c) */
    SCRIPT_TASK_CREATE, /* task records (task_store_redis.c) */
    SCRIPT_TASK_GET,
    SCRIPT_TASK_UPDATE,
    SCRIPT_COUNT
};

/* ratelimit_redis.c: the text of SCRIPT_RATE. */
extern const char mg__redis_lua_rate[];
/* task_store_redis.c: the texts of SCRIPT_TASK_*. */
extern const char mg__redis_lua_task_create[], mg__redis_lua_task_get[], mg__redis_lua_task_update[];

struct mg_redis {
    uv_loop_t *loop;
    mg_redis_target_t target;
    char *password; /* effective data-node password (NULL = none) */
    char *sentinel_password;
    char *prefix;
    size_t prefix_len;
    uint64_t timeout_ms;
    uint64_t (*now_ms)(void);
    rconn_t cmd, subc;
    uv_timer_t *tick;
    char error[256];  /* last connection problem (no secrets) */
    char master[300]; /* Sentinel: address of the master in use */
    char ping_channel[96];
    uint64_t last_ping_tx;
    mg_map_t channels;          /* channel (prefixed) -> struct mg_bus_sub list head */
    struct mg_bus_sub *confirm; /* subscribers owed a deferred confirmation */
    uv_idle_t *confirm_idle;
    int dispatching;
    int refs; /* store view + bus view */
    int closing;
    script_t scripts[SCRIPT_COUNT];
    uint64_t ops_ok, ops_failed, reconnects;
};

/* ---- redis_conn.c ---- */
int mg__redis_conn_init(mg_redis_t *r);
/* Sends a command on the command connection. Returns 0 (cb runs exactly once, later) or MG_EIO
 * when the connection is not ready (cb never runs). argv/lens are copied. */
int mg__redis_command(mg_redis_t *r, int argc, const char **argv, const size_t *lens, rc_reply_cb cb,
                      void *data);
/* EVALSHA of script s with the NOSCRIPT fallback to EVAL. args = keys then arguments. */
int mg__redis_eval(mg_redis_t *r, int s, int nkeys, int nargs, const char **args, const size_t *lens,
                   rc_reply_cb cb, void *data);
int mg__redis_ready(const mg_redis_t *r);
/* Pub/sub connection: (un)subscribes one prefixed channel when connected. */
void mg__redis_sub_send(mg_redis_t *r, const char *channel, int subscribe);
/* Called by redis_conn.c for every pub/sub message (payload NULL = subscription confirmed). */
void mg__redis_on_message(mg_redis_t *r, const char *channel, const char *payload, size_t len);
void mg__redis_conn_close(mg_redis_t *r);
json_t *mg__redis_status(mg_redis_t *r);

/* ---- store_redis.c ---- */
/* The client behind a store view made by mg_redis_new, with a new reference (drop it with
 * mg__redis_release); NULL when st is another backend. */
mg_redis_t *mg__redis_of_store(mg_store_t *st);
void mg__redis_release(mg_redis_t *r);

#endif
