/*
 * pg_conn.c - the PostgreSQL connections of a process (pg_int.h has the state machine): asynchronous
 * connect with PQconnectPoll, the schema step (migrate or check), statement preparation, the pool's
 * FIFO of operations, per-operation deadlines, reconnect with backoff, the LISTEN connection and its
 * liveness ping, and the periodic expiry sweep. Everything runs on the gateway's loop; nothing here
 * blocks on the database (libpq in nonblocking mode, sockets watched with uv_poll).
 * Contract: mg__pg_query() either returns an error at once or calls back exactly once.
 * Read next: store_pg.c.
 */
#include "pg_int.h"
#include "../common/codec.h"
#include "../common/err.h"
#include "../common/log.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS        100
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PING_EVERY_MS  1000
#define PING_SILENT_MS 3500
#define SWEEP_EVERY_MS 10000
#define MAX_PARAMS     8
#define LISTEN_BATCH   128 /* LISTEN/UNLISTEN commands sent in one round trip */

struct pgq {
    int stmt;
    int n;
    char *vals[MAX_PARAMS];
    pg_result_cb cb; /* NULL once answered (deadline): the late result is dropped */
    void *data;
    uint64_t queued;
    uint64_t sent; /* in the pipeline since */
    int conn;      /* the command connection it must run on (ordering), -1 = any */
    pgq_t *next;
};

static uint64_t now(mg_pg_t *p)
{
    return p->now_ms ? p->now_ms() : uv_now(p->loop);
}

static uint64_t hard_deadline(mg_pg_t *p)
{
    return p->timeout_ms * 3 < 5000 ? 5000 : p->timeout_ms * 3;
}

void mg__pg_ident(const char *channel, char out[PG_IDENT_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(channel, strlen(channel), md, &n, EVP_sha1(), NULL);
    out[0] = 'm';
    out[1] = 'g';
    mg_hex_encode(md, 20, out + 2);
}

int mg__pg_ok(const PGresult *res)
{
    ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    return s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK;
}

/* ---- operations ---- */

static void q_free(pgq_t *q)
{
    for (int i = 0; i < q->n; i++)
        free(q->vals[i]);
    free(q);
}

/* Answers q (res NULL = failed) unless it was answered already, then frees it. */
static void q_finish(mg_pg_t *p, pgq_t *q, PGresult *res)
{
    pg_result_cb cb = q->cb;
    if (cb != NULL) {
        if (mg__pg_ok(res))
            p->ops_ok++;
        else
            p->ops_failed++;
        cb(p, res, q->data);
    }
    q_free(q);
}

/* ---- connection state ---- */

static void pc_start(pgconn_t *c);
static void pc_next(pgconn_t *c);
static void pc_send_listen(pgconn_t *c);

static void set_error(pgconn_t *c, const char *a, const char *b)
{
    mg_pg_t *p = c->p;
    char detail[200];
    snprintf(detail, sizeof detail, "%s", b ? b : "");
    size_t n = strlen(detail);
    while (n > 0 && (detail[n - 1] == '\n' || detail[n - 1] == '\r' || detail[n - 1] == ' '))
        detail[--n] = '\0';
    for (char *s = detail; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
    snprintf(p->error, sizeof p->error, "%s connection: %s%s", c->label, a ? a : "", detail);
    if (strcmp(p->error, c->last_error) != 0) {
        snprintf(c->last_error, sizeof c->last_error, "%s", p->error);
        mg_log_json(MG_LOG_WARN, "session store: postgresql problem", json_pack("{s:s}", "error", p->error));
    }
}

static uint64_t backoff(pgconn_t *c)
{
    unsigned a = c->attempts < 6 ? c->attempts : 6;
    uint64_t d = (uint64_t)BACKOFF_MIN_MS << a;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    uint64_t jitter = d / 5;
    return d - jitter + (uint64_t)(rand() % (int)(2 * jitter + 1));
}

static void poll_close(pgconn_t *c)
{
    if (c->poll != NULL) {
        uv_poll_stop(c->poll);
        uv_close((uv_handle_t *)c->poll, (uv_close_cb)free);
        c->poll = NULL;
    }
    c->events = 0;
    c->poll_fd = -1;
}

/* Ends the current attempt or connection; the tick starts the next after a backoff. The operation
 * in flight is answered with NULL (the caller may retry on another connection). */
static void pc_drop(pgconn_t *c, const char *why, const char *detail)
{
    mg_pg_t *p = c->p;
    if (why != NULL)
        set_error(c, why, detail);
    if (c->state == PC_READY)
        p->reconnects++;
    if (c->state == PC_SCHEMA)
        p->schema_busy = 0;
    poll_close(c);
    if (c->conn != NULL) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    if (c->res != NULL) {
        PQclear(c->res);
        c->res = NULL;
    }
    free(c->lcmd);
    c->lcmd = NULL;
    if (c->listener) { /* the new connection listens to every channel afresh */
        for (size_t i = 0; i < p->lq_len; i++)
            free(p->lq[i]);
        p->lq_len = 0;
    }
    c->busy = 0;
    c->state = PC_WAIT;
    c->since = now(p);
    c->retry_at = p->closing ? UINT64_MAX : now(p) + backoff(c);
    c->attempts++;
    if (!c->listener) { /* its waiting operations may run anywhere now (order is lost in a failure) */
        int idx = (int)(c - p->cmd);
        for (pgq_t *w = p->qhead; w != NULL; w = w->next)
            if (w->conn == idx)
                w->conn = -1;
    }
    pgq_t *q = c->fhead;
    c->fhead = c->ftail = NULL;
    c->nflight = 0;
    c->phase = 0;
    while (q != NULL) { /* the caller may retry on another connection */
        pgq_t *n = q->next;
        q_finish(p, q, NULL);
        q = n;
    }
}

static void poll_cb(uv_poll_t *h, int status, int events);

/* Watches c's socket for ev; the socket may have changed (libpq trying the next host). */
static int poll_watch(pgconn_t *c, int ev)
{
    int fd = PQsocket(c->conn);
    if (fd < 0)
        return -1;
    if (c->poll != NULL && c->poll_fd != fd)
        poll_close(c);
    if (c->poll == NULL) {
        c->poll = malloc(sizeof(*c->poll));
        if (c->poll == NULL || uv_poll_init(c->p->loop, c->poll, fd) != 0) {
            free(c->poll);
            c->poll = NULL;
            return -1;
        }
        c->poll->data = c;
        c->poll_fd = fd;
        c->events = 0;
    }
    if (ev != c->events) {
        c->events = ev;
        uv_poll_start(c->poll, ev, poll_cb);
    }
    return 0;
}

/* Sends what libpq buffered; watches for POLLOUT while some is left. Returns -1 when lost. */
static int pc_flush(pgconn_t *c)
{
    int r = PQflush(c->conn);
    if (r < 0) {
        pc_drop(c, "lost: ", PQerrorMessage(c->conn));
        return -1;
    }
    if (poll_watch(c, UV_READABLE | (r == 1 ? UV_WRITABLE : 0)) != 0) {
        pc_drop(c, "cannot watch the socket", NULL);
        return -1;
    }
    return 0;
}

/* Marks c as waiting for the results of what was just sent (ok: PQsend* returned 1). */
static int pc_sent(pgconn_t *c, int ok)
{
    if (!ok) {
        pc_drop(c, "cannot send: ", PQerrorMessage(c->conn));
        return -1;
    }
    c->busy = 1;
    c->sent = now(c->p);
    return pc_flush(c);
}

/* ---- schema and setup ---- */

static void pc_setup(pgconn_t *c)
{
    mg_pg_t *p = c->p;
    c->state = PC_SETUP;
    c->since = now(p);
    c->step = 0;
    if (c->listener) {
        /* LISTEN the ping channel; store_pg.c queues the others */
        char cmd[80];
        snprintf(cmd, sizeof cmd, "LISTEN \"%s\"", p->ping_ident);
        pc_sent(c, PQsendQuery(c->conn, cmd));
        return;
    }
    char cmd[96];
    snprintf(cmd, sizeof cmd, "SET statement_timeout = %llu", (unsigned long long)hard_deadline(p));
    pc_sent(c, PQsendQuery(c->conn, cmd));
}

/* The next SCHEMA or SETUP step after a successful result (res borrowed). */
static void pc_step(pgconn_t *c, PGresult *res)
{
    mg_pg_t *p = c->p;
    if (c->state == PC_SCHEMA) {
        if (c->step == 0) { /* the version the database has */
            p->schema = 0;
            int v = PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? atoi(PQgetvalue(res, 0, 0)) : 0;
            c->schema_version = v;
            if (v > PG_SCHEMA_LATEST) {
                snprintf(
                    p->schema_error, sizeof p->schema_error,
                    "the database's mcpgate schema is at version %d, newer than this mcpgate knows (%d): "
                    "upgrade mcpgate",
                    v, PG_SCHEMA_LATEST);
                p->schema = -1;
            } else if (v < PG_SCHEMA_LATEST && !p->migrate) {
                snprintf(p->schema_error, sizeof p->schema_error,
                         "the database's mcpgate schema is at version %d, this mcpgate needs %d: run "
                         "`mcpgate store migrate` (or allow gateway.sessions.migrate)",
                         v, PG_SCHEMA_LATEST);
                p->schema = -1;
            }
            if (p->schema == -1) {
                mg_log_json(MG_LOG_ERROR, "session store: postgresql schema",
                            json_pack("{s:s}", "error", p->schema_error));
                if (p->migrate)
                    pc_sent(c, PQsendQuery(c->conn, "ROLLBACK"));
                else
                    pc_drop(c, "schema: ", p->schema_error);
                c->step = 2;
                return;
            }
            if (!p->migrate) { /* checked, nothing to do */
                p->schema = 1;
                p->schema_busy = 0;
                pc_setup(c);
                return;
            }
            /* in the transaction mg__pg_schema_begin opened: every missing migration, then COMMIT */
            size_t len = 64;
            for (int i = v + 1; i <= PG_SCHEMA_LATEST; i++)
                len += strlen(mg__pg_migrations[i]) + 64;
            char *sql = malloc(len);
            if (sql == NULL) {
                pc_drop(c, "out of memory", NULL);
                return;
            }
            size_t off = 0;
            for (int i = v + 1; i <= PG_SCHEMA_LATEST; i++)
                off += (size_t)snprintf(sql + off, len - off,
                                        "%s;\nINSERT INTO mcpgate_schema (version) VALUES (%d);\n",
                                        mg__pg_migrations[i], i);
            snprintf(sql + off, len - off, "COMMIT");
            c->step = 1;
            int ok = PQsendQuery(c->conn, sql);
            free(sql);
            pc_sent(c, ok);
            return;
        }
        if (c->step == 2) { /* rolled back after a refusal */
            pc_drop(c, "schema: ", p->schema_error);
            return;
        }
        if (c->schema_version < PG_SCHEMA_LATEST)
            mg_log_json(MG_LOG_INFO, "session store: postgresql schema migrated",
                        json_pack("{s:i,s:i}", "from", c->schema_version, "to", PG_SCHEMA_LATEST));
        p->schema = 1;
        p->schema_busy = 0;
        pc_setup(c);
        return;
    }
    /* PC_SETUP */
    if (c->listener) {
        c->state = PC_READY;
        c->attempts = 0;
        c->since = now(p);
        p->last_ping_rx = now(p);
        mg__pg_on_listening(p, NULL);
        pc_send_listen(c);
        return;
    }
    if (c->step < S_COUNT) {
        char name[16];
        snprintf(name, sizeof name, "mg%d", c->step);
        int ok = PQsendPrepare(c->conn, name, mg__pg_stmt_sql[c->step], 0, NULL);
        c->step++;
        pc_sent(c, ok);
        return;
    }
    if (PQenterPipelineMode(c->conn) != 1) {
        pc_drop(c, "cannot enter pipeline mode: ", PQerrorMessage(c->conn));
        return;
    }
    c->state = PC_READY;
    c->attempts = 0;
    c->since = now(p);
    pc_next(c);
}

/* A SCHEMA or SETUP step failed (res: the error result). */
static void pc_step_failed(pgconn_t *c, PGresult *res)
{
    mg_pg_t *p = c->p;
    const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (c->state == PC_SCHEMA && c->step == 0 && !p->migrate && code && strcmp(code, "42P01") == 0) {
        /* no mcpgate_schema table: never migrated */
        snprintf(p->schema_error, sizeof p->schema_error,
                 "the database has no mcpgate schema: run `mcpgate store migrate` (or allow "
                 "gateway.sessions.migrate)");
        p->schema = -1;
        pc_drop(c, "schema: ", p->schema_error);
        return;
    }
    if (c->state == PC_SETUP && code && (strcmp(code, "42883") == 0 || strcmp(code, "42P01") == 0))
        p->schema = 0; /* a function or table is missing (the database was replaced): check again */
    pc_drop(c, c->state == PC_SCHEMA ? "schema migration failed: " : "setup failed: ",
            res ? PQresultErrorMessage(res) : "no result");
}

/* ---- results ---- */

/* 1 when an UNLISTEN of ident waits in the listener's queue. */
static int unlisten_waiting(mg_pg_t *p, const char *ident)
{
    for (size_t i = 0; i < p->lq_len; i++)
        if (strncmp(p->lq[i], "UNLISTEN \"", 10) == 0 && strncmp(p->lq[i] + 10, ident, PG_IDENT_LEN - 1) == 0)
            return 1;
    return 0;
}

/* Everything sent on c has its results: hand them on. */
static void pc_complete(pgconn_t *c)
{
    mg_pg_t *p = c->p;
    PGresult *res = c->res;
    c->res = NULL;
    c->busy = 0;
    if (c->state == PC_SCHEMA || c->state == PC_SETUP) {
        if (mg__pg_ok(res))
            pc_step(c, res);
        else
            pc_step_failed(c, res);
        PQclear(res);
        return;
    }
    if (c->listener) {
        char *cmd = c->lcmd;
        c->lcmd = NULL;
        if (!mg__pg_ok(res)) {
            free(cmd);
            pc_drop(c, "LISTEN failed: ", res ? PQresultErrorMessage(res) : "no result");
            PQclear(res);
            return;
        }
        /* cmd: the batch "LISTEN \"mg..\";\nUNLISTEN \"mg..\";\n...". Each LISTEN confirms its
         * channel's subscribers, unless an UNLISTEN of it comes later (in this batch or still
         * waiting: its subscribers left and others came): the LISTEN after that confirms those. */
        for (const char *at = cmd; at != NULL && *at != '\0';) {
            const char *next = strstr(at, ";\n");
            if (strncmp(at, "LISTEN \"", 8) == 0) {
                char ident[PG_IDENT_LEN];
                snprintf(ident, sizeof ident, "%s", at + 8);
                char un[PG_IDENT_LEN + 16];
                snprintf(un, sizeof un, "UNLISTEN \"%s", ident);
                if ((next == NULL || strstr(next, un) == NULL) && !unlisten_waiting(p, ident))
                    mg__pg_on_listening(p, ident);
            }
            at = next != NULL ? next + 2 : NULL;
        }
        free(cmd);
        PQclear(res);
        if (c->state == PC_READY)
            pc_send_listen(c);
        return;
    }
    PQclear(res); /* not reached: READY command connections use the pipeline below */
}

/* The oldest operation in the pipeline has all its results (c->res): hand them on. */
static void pipe_finish_head(pgconn_t *c)
{
    mg_pg_t *p = c->p;
    pgq_t *q = c->fhead;
    PGresult *res = c->res;
    c->res = NULL;
    c->fhead = q->next;
    if (c->fhead == NULL)
        c->ftail = NULL;
    c->nflight--;
    q->next = NULL;
    int drop = 0;
    if (res != NULL && !mg__pg_ok(res)) {
        set_error(c, "statement failed: ", PQresultErrorMessage(res));
        const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        /* read-only (a standby after failover), the schema vanished, the prepared statement is
         * gone (a connection pooler): a new connection sorts it out */
        if (code != NULL && (strcmp(code, "25006") == 0 || strcmp(code, "26000") == 0 ||
                             strcmp(code, "42883") == 0 || strcmp(code, "42P01") == 0)) {
            if (strcmp(code, "42883") == 0 || strcmp(code, "42P01") == 0)
                p->schema = 0;
            drop = 1;
        }
    }
    q_finish(p, q, res);
    PQclear(res);
    if (drop && c->state == PC_READY)
        pc_drop(c, NULL, NULL);
}

/* Takes the pipeline's results: per statement its result, NULL, then the sync's result. */
static void pipe_results(pgconn_t *c)
{
    while (c->state == PC_READY && c->nflight > 0 && !PQisBusy(c->conn)) {
        PGresult *r = PQgetResult(c->conn);
        if (r == NULL) {
            if (c->phase == 0 && c->res != NULL) {
                c->phase = 1;
                continue;
            }
            break;
        }
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            c->phase = 0;
            pipe_finish_head(c);
            continue;
        }
        if (c->res != NULL && !mg__pg_ok(c->res)) { /* keep the first error */
            PQclear(r);
        } else {
            PQclear(c->res);
            c->res = r;
        }
    }
    if (c->state == PC_READY)
        pc_next(c);
}

static void pc_notifies(pgconn_t *c)
{
    mg_pg_t *p = c->p;
    PGnotify *n;
    while (c->conn != NULL && (n = PQnotifies(c->conn)) != NULL) {
        if (strcmp(n->relname, p->ping_ident) == 0)
            p->last_ping_rx = now(p);
        else
            mg__pg_on_notify(p, n->relname, n->extra, strlen(n->extra));
        PQfreemem(n);
    }
}

static void pc_read(pgconn_t *c)
{
    if (!PQconsumeInput(c->conn)) {
        pc_drop(c, "lost: ", PQerrorMessage(c->conn));
        return;
    }
    c->last_rx = now(c->p);
    if (c->listener)
        pc_notifies(c);
    if (!c->listener && c->state == PC_READY) {
        pipe_results(c);
        return;
    }
    while (c->conn != NULL && c->busy && !PQisBusy(c->conn)) {
        PGresult *r = PQgetResult(c->conn);
        if (r == NULL) {
            pc_complete(c);
            continue;
        }
        /* several statements in one text (schema steps): keep the first error, else the last */
        if (c->res != NULL && !mg__pg_ok(c->res)) {
            PQclear(r);
        } else {
            PQclear(c->res);
            c->res = r;
        }
    }
    if (c->conn != NULL && c->listener)
        pc_notifies(c);
}

static void pc_connect_poll(pgconn_t *c)
{
    /* libpq may close the socket and open another (the next host, or a retry without TLS), and
     * the new one may get the same number: stop watching first, start again afterwards, so
     * libuv registers whatever socket it is then (the kernel dropped the closed one). */
    if (c->poll != NULL) {
        uv_poll_stop(c->poll);
        c->events = 0;
    }
    PostgresPollingStatusType st = PQconnectPoll(c->conn);
    switch (st) {
    case PGRES_POLLING_READING:
    case PGRES_POLLING_WRITING:
        if (poll_watch(c, st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE) != 0)
            pc_drop(c, "cannot watch the socket", NULL);
        break;
    case PGRES_POLLING_OK: {
        mg_pg_t *p = c->p;
        if (PQsetnonblocking(c->conn, 1) != 0) {
            pc_drop(c, "cannot make the connection nonblocking: ", PQerrorMessage(c->conn));
            return;
        }
        c->last_rx = now(p);
        if (!c->listener && p->schema != 1 && !p->schema_busy) {
            p->schema_busy = 1;
            c->state = PC_SCHEMA;
            c->since = now(p);
            c->step = 0;
            pc_sent(c, PQsendQuery(c->conn, p->migrate ? mg__pg_schema_begin : mg__pg_schema_check));
            return;
        }
        if (!c->listener && p->schema != 1) {
            /* another connection is at the schema step: wait for it (the tick retries) */
            c->state = PC_SCHEMA;
            c->since = now(p);
            c->step = -1;
            poll_watch(c, UV_READABLE);
            return;
        }
        pc_setup(c);
        break;
    }
    default:
        pc_drop(c, "cannot connect: ", PQerrorMessage(c->conn));
        break;
    }
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    pgconn_t *c = h->data;
    if (c == NULL || c->conn == NULL)
        return;
    /* an error (refused, reset) comes as status < 0 with no events: let libpq find it */
    int ev = status < 0 ? (c->events ? c->events : UV_READABLE) : events;
    if (c->state == PC_CONNECTING) {
        pc_connect_poll(c);
        return;
    }
    if (ev & UV_WRITABLE) {
        if (pc_flush(c) != 0)
            return;
    }
    if (ev & UV_READABLE)
        pc_read(c);
}

static void pc_start(pgconn_t *c)
{
    mg_pg_t *p = c->p;
    const char *keys[5], *vals[5];
    int n = 0;
    if (strcmp(p->spec, "postgres") != 0) {
        keys[n] = "dbname";
        vals[n++] = p->spec;
    }
    if (p->password != NULL) {
        keys[n] = "password";
        vals[n++] = p->password;
    }
    keys[n] = "fallback_application_name";
    vals[n++] = "mcpgate";
    keys[n] = NULL;
    vals[n] = NULL;
    c->state = PC_CONNECTING;
    c->since = now(p);
    c->conn = PQconnectStartParams(keys, vals, 1);
    if (c->conn == NULL) {
        pc_drop(c, "out of memory", NULL);
        return;
    }
    if (PQstatus(c->conn) == CONNECTION_BAD) {
        pc_drop(c, "cannot connect: ", PQerrorMessage(c->conn));
        return;
    }
    PQsetNoticeProcessor(c->conn, mg__pg_notice_cb, NULL);
    /* as if PQconnectPoll had answered PGRES_POLLING_WRITING */
    if (poll_watch(c, UV_WRITABLE) != 0)
        pc_drop(c, "cannot watch the socket", NULL);
}

/* ---- the pool ---- */

/* A READY command connection fills its pipeline with the oldest waiting operations it may run. */
static void pc_next(pgconn_t *c)
{
    mg_pg_t *p = c->p;
    int idx = (int)(c - p->cmd), sent = 0;
    while (c->state == PC_READY && c->nflight < PG_PIPELINE) {
        pgq_t *q = p->qhead, *prev = NULL;
        while (q != NULL && q->conn != -1 && q->conn != idx && q->cb != NULL) {
            prev = q;
            q = q->next;
        }
        if (q == NULL)
            break;
        if (prev != NULL)
            prev->next = q->next;
        else
            p->qhead = q->next;
        if (p->qtail == q)
            p->qtail = prev;
        p->qlen--;
        q->next = NULL;
        if (q->cb == NULL) { /* answered at its deadline while waiting */
            q_free(q);
            continue;
        }
        char name[16];
        snprintf(name, sizeof name, "mg%d", q->stmt);
        if (PQsendQueryPrepared(c->conn, name, q->n, (const char *const *)q->vals, NULL, NULL, 0) != 1 ||
            PQpipelineSync(c->conn) != 1) {
            q_finish(p, q, NULL);
            pc_drop(c, "cannot send: ", PQerrorMessage(c->conn));
            return;
        }
        q->sent = now(p);
        if (c->ftail != NULL)
            c->ftail->next = q;
        else
            c->fhead = q;
        c->ftail = q;
        c->nflight++;
        sent = 1;
    }
    if (sent)
        pc_flush(c);
}

int mg__pg_ready(const mg_pg_t *p)
{
    if (p->lis.state != PC_READY || p->schema != 1)
        return 0;
    for (int i = 0; i < PG_POOL; i++)
        if (p->cmd[i].state == PC_READY)
            return 1;
    return 0;
}

int mg__pg_query_keyed(mg_pg_t *p, const char *order, int stmt, int n, const char *const *vals,
                       pg_result_cb cb, void *data)
{
    /* no command connection ready (or the schema unchecked): fail at once. The listener's own
     * reconnect does not stop operations; readiness (/readyz) waits for it. */
    int any = 0;
    for (int i = 0; i < PG_POOL; i++)
        any |= p->cmd[i].state == PC_READY;
    if (!any || p->schema != 1 || p->closing)
        return MG_EIO;
    if (n > MAX_PARAMS)
        return MG_EINVAL;
    pgq_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return MG_ENOMEM;
    q->stmt = stmt;
    q->cb = cb;
    q->data = data;
    q->queued = now(p);
    q->conn = -1;
    for (int i = 0; i < n; i++) {
        if (vals[i] != NULL && (q->vals[i] = strdup(vals[i])) == NULL) {
            q->n = i;
            q_free(q);
            return MG_ENOMEM;
        }
    }
    q->n = n;
    if (order != NULL) { /* FNV-1a: the same key always goes to the same ready connection */
        uint32_t h = 2166136261u;
        for (const char *s = order; *s; s++)
            h = (h ^ (unsigned char)*s) * 16777619u;
        for (int k = 0; k < PG_POOL; k++) {
            int i = (int)((h + (uint32_t)k) % PG_POOL);
            if (p->cmd[i].state == PC_READY) {
                q->conn = i;
                break;
            }
        }
    }
    if (p->qtail != NULL)
        p->qtail->next = q;
    else
        p->qhead = q;
    p->qtail = q;
    p->qlen++;
    if (q->conn >= 0) {
        pc_next(&p->cmd[q->conn]);
    } else { /* the ready connection with the fewest statements in flight */
        pgconn_t *best = NULL;
        for (int i = 0; i < PG_POOL; i++)
            if (p->cmd[i].state == PC_READY && (best == NULL || p->cmd[i].nflight < best->nflight))
                best = &p->cmd[i];
        if (best != NULL)
            pc_next(best);
    }
    return 0;
}

int mg__pg_query(mg_pg_t *p, int stmt, int n, const char *const *vals, pg_result_cb cb, void *data)
{
    return mg__pg_query_keyed(p, NULL, stmt, n, vals, cb, data);
}

/* ---- the listener ---- */

static void pc_send_listen(pgconn_t *c)
{
    mg_pg_t *p = c->p;
    if (c->state != PC_READY || c->busy || p->lq_len == 0)
        return;
    /* One round trip for many: the backend delivers notifications only between commands, so a
     * stream of single LISTENs would hold them back. */
    size_t n = p->lq_len < LISTEN_BATCH ? p->lq_len : LISTEN_BATCH, len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(p->lq[i]) + 2;
    char *batch = malloc(len);
    if (batch == NULL) {
        pc_drop(c, "out of memory", NULL);
        return;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        off += (size_t)snprintf(batch + off, len - off, "%s;\n", p->lq[i]);
        free(p->lq[i]);
    }
    memmove(p->lq, p->lq + n, (p->lq_len - n) * sizeof(*p->lq));
    p->lq_len -= n;
    c->lcmd = batch;
    pc_sent(c, PQsendQuery(c->conn, c->lcmd));
}

void mg__pg_listen(mg_pg_t *p, const char *ident, int on)
{
    if (p->lis.state != PC_READY)
        return; /* listened to with the others once connected */
    if (p->lq_len == p->lq_cap) {
        size_t ncap = p->lq_cap ? p->lq_cap * 2 : 16;
        char **n = realloc(p->lq, ncap * sizeof(*n));
        if (n == NULL) {
            pc_drop(&p->lis, "out of memory", NULL);
            return;
        }
        p->lq = n;
        p->lq_cap = ncap;
    }
    char cmd[80];
    snprintf(cmd, sizeof cmd, "%s \"%s\"", on ? "LISTEN" : "UNLISTEN", ident);
    char *s = strdup(cmd);
    if (s == NULL) {
        pc_drop(&p->lis, "out of memory", NULL);
        return;
    }
    p->lq[p->lq_len++] = s;
    pc_send_listen(&p->lis);
}

/* ---- the tick: connect attempts, deadlines, ping, sweep ---- */

static void expire_queue(mg_pg_t *p, uint64_t t)
{
    for (pgq_t *q = p->qhead; q != NULL; q = q->next) {
        if (t - q->queued <= p->timeout_ms)
            break;
        if (q->cb != NULL) {
            pg_result_cb cb = q->cb;
            q->cb = NULL; /* freed when a connection takes it */
            p->ops_failed++;
            p->timeouts++;
            cb(p, NULL, q->data);
        }
    }
}

static void pc_tick(pgconn_t *c, uint64_t t)
{
    mg_pg_t *p = c->p;
    switch (c->state) {
    case PC_WAIT:
        if (t >= c->retry_at && !p->closing)
            pc_start(c);
        break;
    case PC_CONNECTING:
        if (t - c->since > p->timeout_ms)
            pc_drop(c, "timed out while connecting", NULL);
        break;
    case PC_SCHEMA:
        if (c->step == -1) { /* waiting for another connection's schema step */
            if (p->schema == 1)
                pc_setup(c);
            else if (!p->schema_busy) {
                p->schema_busy = 1;
                c->step = 0;
                pc_sent(c, PQsendQuery(c->conn, p->migrate ? mg__pg_schema_begin : mg__pg_schema_check));
            }
            break;
        }
        /* migrations may wait for another replica's lock: the hard deadline */
        if (t - c->since > hard_deadline(p))
            pc_drop(c, "timed out at the schema step", NULL);
        break;
    case PC_SETUP:
        if (t - c->since > p->timeout_ms)
            pc_drop(c, "timed out while preparing", NULL);
        break;
    case PC_READY: {
        if (c->listener) {
            if (c->busy && t - c->sent > hard_deadline(p) && t - c->last_rx > hard_deadline(p))
                pc_drop(c, "no reply within the hard deadline", NULL);
            break;
        }
        if (c->nflight == 0)
            break;
        if (t - c->fhead->sent > p->timeout_ms && c->conn != NULL) {
            pc_read(c); /* timers run before I/O: read what may already be here */
            if (c->state != PC_READY || c->nflight == 0)
                break;
        }
        for (;;) { /* no caller waits longer than the deadline; late results are dropped */
            pgq_t *q = c->fhead;
            while (q != NULL && (q->cb == NULL || t - q->queued <= p->timeout_ms))
                q = q->next;
            if (q == NULL)
                break;
            pg_result_cb cb = q->cb;
            q->cb = NULL;
            p->ops_failed++;
            p->timeouts++;
            cb(p, NULL, q->data);
            if (c->state != PC_READY)
                break;
        }
        if (c->state == PC_READY && c->nflight > 0 && t - c->fhead->sent > hard_deadline(p) &&
            t - c->last_rx > hard_deadline(p)) {
            char d[48];
            snprintf(d, sizeof d, "%llu ms", (unsigned long long)hard_deadline(p));
            pc_drop(c, "no reply within ", d);
        }
        break;
    }
    }
}

static void ping_done(mg_pg_t *p, PGresult *res, void *data)
{
}

static void sweep_done(mg_pg_t *p, PGresult *res, void *data)
{
    if (mg__pg_ok(res) && PQntuples(res) > 0 && atoi(PQgetvalue(res, 0, 0)) >= 0)
        p->sweeps++;
}

static void tick_cb(uv_timer_t *tm)
{
    mg_pg_t *p = tm->data;
    uint64_t t = now(p);
    for (int i = 0; i < PG_POOL; i++)
        pc_tick(&p->cmd[i], t);
    pc_tick(&p->lis, t);
    expire_queue(p, t);
    if (p->timeouts > p->timeouts_logged && t - p->last_timeout_log >= 10000) {
        mg_log_json(MG_LOG_WARN, "session store: postgresql operations failed their deadline (timeoutMs)",
                    json_pack("{s:I,s:I,s:I}", "count", (json_int_t)(p->timeouts - p->timeouts_logged),
                              "total", (json_int_t)p->timeouts, "waiting", (json_int_t)p->qlen));
        p->timeouts_logged = p->timeouts;
        p->last_timeout_log = t;
    }
    if (!mg__pg_ready(p))
        return;
    if (t - p->last_ping_tx >= PING_EVERY_MS) {
        const char *v[] = {p->ping_ident, "p"};
        p->last_ping_tx = t;
        mg__pg_query(p, S_PUBLISH, 2, v, ping_done, NULL);
    }
    if (t - p->last_ping_rx > PING_SILENT_MS && t - p->lis.since > PING_SILENT_MS && p->lis.conn != NULL)
        pc_read(&p->lis); /* a busy loop may not have read it yet */
    if (p->lis.state == PC_READY && t - p->last_ping_rx > PING_SILENT_MS && t - p->lis.since > PING_SILENT_MS)
        pc_drop(&p->lis, "silent (no ping through LISTEN)", NULL);
    /* expiry: any replica may sweep; an advisory lock in mcpgate_sweep() lets one at a time do it */
    if (t - p->last_sweep >= SWEEP_EVERY_MS) {
        p->last_sweep = t;
        mg__pg_query(p, S_SWEEP, 0, NULL, sweep_done, NULL);
    }
}

int mg__pg_conn_init(mg_pg_t *p)
{
    for (int i = 0; i < PG_POOL; i++) {
        p->cmd[i].p = p;
        p->cmd[i].label = "command";
        p->cmd[i].poll_fd = -1;
    }
    p->lis.p = p;
    p->lis.listener = 1;
    p->lis.label = "listen";
    p->lis.poll_fd = -1;
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return MG_EINTERNAL;
    srand((unsigned)(rnd[0] | rnd[1] << 8 | rnd[2] << 16)); /* backoff jitter only */
    char rndhex[2 * sizeof rnd + 1], ch[128];
    mg_hex_encode(rnd, sizeof rnd, rndhex);
    snprintf(ch, sizeof ch, "%sping:%s", p->prefix, rndhex);
    mg__pg_ident(ch, p->ping_ident);
    p->tick = malloc(sizeof(*p->tick));
    if (p->tick == NULL)
        return MG_ENOMEM;
    uv_timer_init(p->loop, p->tick);
    p->tick->data = p;
    uv_timer_start(p->tick, tick_cb, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)p->tick);
    snprintf(p->error, sizeof p->error, "connecting");
    p->last_sweep = now(p) - SWEEP_EVERY_MS + 1000; /* the first sweep a second after start */
    for (int i = 0; i < PG_POOL; i++)
        pc_start(&p->cmd[i]);
    pc_start(&p->lis);
    return 0;
}

void mg__pg_conn_close(mg_pg_t *p)
{
    p->closing = 1;
    if (p->cmd[0].p == NULL)
        return; /* never started */
    for (int i = 0; i < PG_POOL; i++)
        pc_drop(&p->cmd[i], NULL, NULL);
    pc_drop(&p->lis, NULL, NULL);
    while (p->qhead != NULL) {
        pgq_t *q = p->qhead;
        p->qhead = q->next;
        q_finish(p, q, NULL);
    }
    p->qtail = NULL;
    p->qlen = 0;
    for (size_t i = 0; i < p->lq_len; i++)
        free(p->lq[i]);
    free(p->lq);
    p->lq = NULL;
    p->lq_len = p->lq_cap = 0;
    if (p->tick != NULL) {
        uv_timer_stop(p->tick);
        uv_close((uv_handle_t *)p->tick, (uv_close_cb)free);
        p->tick = NULL;
    }
}

static const char *state_name(pc_state_t s)
{
    static const char *names[] = {"waiting to reconnect", "connecting", "schema", "preparing", "ready"};
    return names[s];
}

json_t *mg__pg_status(mg_pg_t *p)
{
    int ready_conns = 0;
    const char *host = NULL, *port = NULL, *db = NULL;
    for (int i = 0; i < PG_POOL; i++) {
        if (p->cmd[i].state == PC_READY) {
            ready_conns++;
            if (host == NULL) {
                host = PQhost(p->cmd[i].conn);
                port = PQport(p->cmd[i].conn);
                db = PQdb(p->cmd[i].conn);
            }
        }
    }
    json_t *s = json_pack("{s:s,s:b,s:i,s:i,s:s,s:I,s:I,s:I,s:I,s:i}", "backend", "postgres", "ready",
                          mg__pg_ready(p), "pool", PG_POOL, "poolReady", ready_conns, "listen",
                          state_name(p->lis.state), "reconnects", (json_int_t)p->reconnects, "waiting",
                          (json_int_t)p->qlen, "timeouts", (json_int_t)p->timeouts, "sweeps",
                          (json_int_t)p->sweeps, "schema", p->schema == 1 ? PG_SCHEMA_LATEST : 0);
    if (host != NULL) {
        char target[400];
        snprintf(target, sizeof target, "%s:%s/%s", host, port ? port : "", db ? db : "");
        json_object_set_new(s, "server", json_string(target));
    }
    if (p->schema == -1)
        json_object_set_new(s, "error", json_string(p->schema_error));
    else if (!mg__pg_ready(p) && p->error[0])
        json_object_set_new(s, "error", json_string(p->error));
    return s;
}
