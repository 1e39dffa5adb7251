/*
 * pg_int.h - internals shared by pg_conn.c (connections, pool, deadlines, LISTEN), pg_schema.c (the
 * SQL: migrations and prepared statements), store_pg.c (store and bus operations),
 * ratelimit_pg.c and task_store_pg.c. Nothing outside src/session includes it.
 *
 * Connections: PG_POOL command connections and one listener, each a pgconn_t:
 *
 *   WAIT --(retry_at)--> CONNECTING (PQconnectPoll on a uv_poll of the socket; the socket may change
 *     while libpq tries the hosts of a multi-host spec) --> SCHEMA (one connection at a time: create
 *     or upgrade the schema under an advisory lock, or check its version) --> SETUP (SET
 *     statement_timeout, PQsendPrepare of every statement; the listener: LISTEN every channel)
 *     --> READY
 *   any failure, a lost connection or a silence past the hard deadline --> WAIT (backoff 100 ms
 *   doubling to 5 s, +-20 %)
 *
 * A READY command connection is in libpq's pipeline mode: up to PG_PIPELINE prepared statements in
 * flight (PQsendQueryPrepared + PQpipelineSync each, so each is its own transaction and an error
 * ends only its own statement; nonblocking writes flushed on POLLOUT), results taken in order.
 * Operations wait in one FIFO for the connection with the fewest in flight, or for the one their
 * order key names. An operation older than the deadline (timeoutMs), waiting or in flight, is
 * answered with a NULL result at once; a late result is dropped. statement_timeout is the hard deadline (3 x
 * timeoutMs, at least 5 s), so the server gives up too.
 *
 * Liveness of the listener: every second a command connection notifies this process's ping channel;
 * a listener that has heard nothing for 3.5 s is replaced (a half-open TCP connection says nothing).
 * Channel names are "mg" + 40 hex digits of SHA-1(prefixed channel): NOTIFY channels are identifiers
 * of at most 63 bytes. Notification payloads: "=" + message, or "@" + id of a row of
 * mcpgate_payloads when the message is longer than PG_NOTIFY_INLINE bytes (NOTIFY's limit is 8000).
 */
#ifndef MG_PG_INT_H
#define MG_PG_INT_H

#include <jansson.h>
#include <libpq-fe.h>

#include "pg.h"

#define PG_POOL          4    /* command connections per process */
#define PG_PIPELINE      64   /* statements in flight per command connection */
#define PG_NOTIFY_INLINE 7900 /* longer messages go through mcpgate_payloads */
#define PG_SCHEMA_LATEST 2    /* the schema version this build creates (pg_schema.c) */
#define PG_IDENT_LEN     43   /* "mg" + 40 hex + NUL */

/* The prepared statements (pg_schema.c has their text; names "mg<index>"). */
enum {
    S_PUT = 0,
    S_GET,
    S_TOUCH,
    S_DEL,
    S_LOAD,
    S_PATCH,
    S_CAS,
    S_PUBLISH,
    S_APPEND,
    S_RANGE,
    S_LAST,
    S_SET,
    S_GETV,
    S_DELKEYS,
    S_PAYLOAD,
    S_RLTAKE,
    S_SWEEP,
    S_TCREATE,
    S_TGET,
    S_TUPDATE,
    S_COUNT
};

typedef struct mg_pg mg_pg_t;
typedef struct pgq pgq_t;

typedef enum pc_state { PC_WAIT = 0, PC_CONNECTING, PC_SCHEMA, PC_SETUP, PC_READY } pc_state_t;

/* An operation's completion: res NULL when it failed to run (no connection, lost, deadline);
 * otherwise the statement's result (borrowed; may be an error result: see mg__pg_ok). */
typedef void (*pg_result_cb)(mg_pg_t *p, PGresult *res, void *data);

typedef struct pgconn {
    mg_pg_t *p;
    int listener;
    const char *label;
    PGconn *conn;
    uv_poll_t *poll;
    int poll_fd;
    int events; /* UV_READABLE | UV_WRITABLE being watched */
    pc_state_t state;
    uint64_t since, retry_at;
    unsigned attempts;
    int step;             /* SCHEMA / SETUP progress */
    int busy;             /* SCHEMA, SETUP, listener: something was sent; its results are being collected */
    pgq_t *fhead, *ftail; /* READY command connection: the operations in the pipeline, oldest first */
    unsigned nflight;
    int phase;     /* pipeline: 0 collecting the oldest operation's results, 1 waiting for its sync */
    char *lcmd;    /* listener: the LISTEN/UNLISTEN batch in flight (owned) */
    PGresult *res; /* the result being collected */
    uint64_t sent; /* when the current command was sent */
    uint64_t last_rx;
    int schema_version; /* SCHEMA: what the database has */
    char last_error[256];
} pgconn_t;

struct mg_pg {
    uv_loop_t *loop;
    char *spec;
    char *password;
    char *prefix;
    size_t prefix_len;
    uint64_t timeout_ms;
    uint64_t (*now_ms)(void);
    int migrate;
    pgconn_t cmd[PG_POOL];
    pgconn_t lis;
    pgq_t *qhead, *qtail; /* operations waiting for an idle connection */
    size_t qlen;
    char **lq; /* listener commands waiting ("LISTEN \"mg...\""), owned */
    size_t lq_len, lq_cap;
    uv_timer_t *tick;
    int schema;      /* 0 unknown, 1 at PG_SCHEMA_LATEST, -1 refused (error in schema_error) */
    int schema_busy; /* a connection is in PC_SCHEMA */
    char error[256];
    char schema_error[256];
    char ping_ident[PG_IDENT_LEN];
    uint64_t last_ping_tx, last_ping_rx, last_sweep;
    void *bus; /* store_pg.c's subscriber state */
    int refs;  /* views: store, bus, rate limits, task records */
    int closing;
    uint64_t ops_ok, ops_failed, reconnects, sweeps;
    uint64_t timeouts, timeouts_logged, last_timeout_log; /* operations past their deadline */
};

/* ---- pg_schema.c ---- */
extern const char *const mg__pg_stmt_sql[S_COUNT];
/* Migration n (1..PG_SCHEMA_LATEST): one text of several statements, run in the caller's transaction. */
extern const char *const mg__pg_migrations[PG_SCHEMA_LATEST + 1];
/* Run first in the migration transaction: takes the lock, creates mcpgate_schema, reads the version. */
extern const char mg__pg_schema_begin[];
extern const char mg__pg_schema_check[]; /* the version, without creating anything */
/* libpq's notice processor: notices ("relation already exists, skipping") are not for stderr. */
void mg__pg_notice_cb(void *arg, const char *message);

/* ---- pg_conn.c ---- */
int mg__pg_conn_init(mg_pg_t *p);
void mg__pg_conn_close(mg_pg_t *p);
/* Runs prepared statement stmt. Returns 0 (cb runs exactly once, later) or MG_EIO when no command
 * connection is ready / MG_ENOMEM (cb never runs). vals are copied; a NULL value is SQL NULL. */
int mg__pg_query(mg_pg_t *p, int stmt, int n, const char *const *vals, pg_result_cb cb, void *data);
/* The same, on the connection chosen by `order` while it stays up: operations with the same order
 * key run one after the other in the order given (a log's appends, a channel's messages). */
int mg__pg_query_keyed(mg_pg_t *p, const char *order, int stmt, int n, const char *const *vals,
                       pg_result_cb cb, void *data);
/* 1 when res is a successful result. */
int mg__pg_ok(const PGresult *res);
int mg__pg_ready(const mg_pg_t *p);
/* Listener: LISTEN (on = 1) or UNLISTEN a channel identifier; sent when connected. */
void mg__pg_listen(mg_pg_t *p, const char *ident, int on);
/* The identifier of a (prefixed) channel name. */
void mg__pg_ident(const char *channel, char out[PG_IDENT_LEN]);
json_t *mg__pg_status(mg_pg_t *p);

/* ---- store_pg.c (called by pg_conn.c) ---- */
/* A notification (payload as sent: "=..." or "@<id>"). */
void mg__pg_on_notify(mg_pg_t *p, const char *ident, const char *payload, size_t len);
/* A LISTEN took effect; ident NULL: the listener is (re)connected, every channel must be listened
 * to again (store_pg.c calls mg__pg_listen for each). */
void mg__pg_on_listening(mg_pg_t *p, const char *ident);
/* The client behind a store view, with a new reference (drop it with mg__pg_release); NULL when st
 * is another backend. */
mg_pg_t *mg__pg_of_store(mg_store_t *st);
void mg__pg_release(mg_pg_t *p);

#endif
