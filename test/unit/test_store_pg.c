/*
 * test_store_pg.c - the PostgreSQL backend (src/session/pg*.c, store_pg.c, ratelimit_pg.c) against a
 * real server started here: initdb in a temporary directory, postgres on a free loopback port (as
 * the unprivileged user "nobody" when the tests run as root: initdb refuses root), stopped at the
 * end. Skipped, with a message, only when the server binaries are missing (scripts/install-deps.sh
 * installs Debian's postgresql). Covers the spec check, the store and bus contract of
 * store_contract.c, owner liveness through the replica registry, NOTIFY payloads over the 8000-byte
 * limit, deadlines (a locked table), expiry and the sweep, the schema step (migrate at start,
 * refusing an unmigrated database, `mcpgate store migrate`), a multi-host spec whose first host
 * refuses (the socket changes while connecting), a server restart under a subscription,
 * the shared rate-limit buckets taken by two clients at once, and the task records
 * (task_contract.h, the dead-owner case, the per-principal limit under concurrency, the sweep). Every test
 * closes its loop. Read next: src/session/pg.h, test/unit/support/store_contract.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glob.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <uv.h>

#include "common/err.h"
#include "session/pg.h"
#include "session/rl_store.h"
#include "session/shared.h"
#include "session/task_store.h"
#include "store_contract.h"
#include "task_contract.h"

/* ---- a real postgres ---- */

static char bindir[512];
static char pgdir[256];
static int pgport;
static pid_t pgpid;

static int find_bindir(void)
{
    FILE *f = popen("pg_config --bindir 2>/dev/null", "r");
    if (f != NULL) {
        if (fgets(bindir, sizeof bindir, f) != NULL)
            bindir[strcspn(bindir, "\r\n")] = '\0';
        pclose(f);
    }
    char probe[600];
    snprintf(probe, sizeof probe, "%s/initdb", bindir);
    if (bindir[0] && access(probe, X_OK) == 0)
        return 1;
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
        snprintf(bindir, sizeof bindir, "%s", g.gl_pathv[g.gl_pathc - 1]);
        *strrchr(bindir, '/') = '\0';
        globfree(&g);
        return 1;
    }
    return 0;
}

/* In a child: become "nobody" when root (initdb and postgres refuse to run as root). */
static void drop_root(void)
{
    if (getuid() != 0)
        return;
    struct passwd *pw = getpwnam("nobody");
    if (pw == NULL || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0)
        _exit(126);
}

static pid_t spawn(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        drop_root();
        int devnull = open("/dev/null", 1);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static char *conninfo(char *buf, size_t n, const char *db)
{
    snprintf(buf, n, "postgresql://mcpgate@127.0.0.1:%d/%s", pgport, db);
    return buf;
}

static void pg_start(void)
{
    char data[300], port[16], exe[600];
    snprintf(data, sizeof data, "%s/data", pgdir);
    snprintf(port, sizeof port, "%d", pgport);
    snprintf(exe, sizeof exe, "%s/postgres", bindir);
    char *argv[] = {exe,  "-D", data,        "-k", pgdir, "-p",
                    port, "-h", "127.0.0.1", "-F", "-c",  "full_page_writes=off",
                    NULL};
    pgpid = spawn(argv);
    char ci[200];
    for (int i = 0; i < 300; i++) {
        if (PQping(conninfo(ci, sizeof ci, "postgres")) == PQPING_OK)
            return;
        usleep(50000);
    }
    fail_msg("postgres did not start on port %d", pgport);
}

static void pg_kill(int sig)
{
    kill(pgpid, sig);
    waitpid(pgpid, NULL, 0);
}

static int setup(void **state)
{
    if (!find_bindir()) {
        fprintf(stderr, "test_store_pg: skipped: PostgreSQL's server binaries (initdb, postgres) are not "
                        "installed (scripts/install-deps.sh installs Debian's postgresql)\n");
        return 0;
    }
    snprintf(pgdir, sizeof pgdir, "/tmp/mg-pgtest-XXXXXX");
    if (mkdtemp(pgdir) == NULL)
        return -1;
    struct passwd *pw = getuid() == 0 ? getpwnam("nobody") : NULL;
    if (pw != NULL && chown(pgdir, pw->pw_uid, pw->pw_gid) != 0)
        return -1;
    char data[300], exe[600];
    snprintf(data, sizeof data, "%s/data", pgdir);
    snprintf(exe, sizeof exe, "%s/initdb", bindir);
    char *argv[] = {exe, "-D", data, "-A", "trust", "-U", "mcpgate", "-E", "UTF8", "--no-sync", NULL};
    pid_t pid = spawn(argv);
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "test_store_pg: initdb failed (status %d)\n", st);
        return -1;
    }
    pgport = free_port();
    pg_start();
    /* the databases the tests use */
    char ci[200];
    PGconn *c = PQconnectdb(conninfo(ci, sizeof ci, "postgres"));
    PQclear(PQexec(c, "CREATE DATABASE t"));
    PQclear(PQexec(c, "CREATE DATABASE fresh"));
    PQfinish(c);
    return 0;
}

static int teardown(void **state)
{
    if (pgpid > 0)
        pg_kill(SIGINT);
    if (pgdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", pgdir);
        if (system(cmd) != 0)
            fprintf(stderr, "test_store_pg: could not remove %s\n", pgdir);
    }
    return 0;
}

#define NEED_PG()                                                                                            \
    do {                                                                                                     \
        if (pgpid <= 0)                                                                                      \
            skip();                                                                                          \
    } while (0)

/* A synchronous connection to the test database (for checks behind the client's back). */
static PGconn *sync_conn(const char *db)
{
    char ci[200];
    PGconn *c = PQconnectdb(conninfo(ci, sizeof ci, db));
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static long long sql_int(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    long long v =
        PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 ? atoll(PQgetvalue(r, 0, 0)) : -999;
    PQclear(r);
    return v;
}

/* Waits until no command connection is ready (every one noticed the server is gone). */
static int wait_pool_down(uv_loop_t *loop, mg_store_t *st, uint64_t ms)
{
    uint64_t end = uv_now(loop) + ms;
    for (;;) {
        json_t *s = st->ops->status(st);
        int n = (int)json_integer_value(json_object_get(s, "poolReady"));
        json_decref(s);
        if (n == 0)
            return 1;
        if (uv_now(loop) >= end)
            return 0;
        int never = 0;
        run_until(loop, &never, 20);
    }
}

static void new_client(uv_loop_t *loop, const char *db, int migrate, mg_store_t **st, mg_bus_t **b)
{
    char ci[200], why[300] = "";
    mg_pg_opts_t o = {conninfo(ci, sizeof ci, db), NULL, "mgtest:", 1000, migrate, loop_now};
    assert_int_equal(mg_pg_new(loop, &o, st, b, why, sizeof why), 0);
}

/* ---- tests ---- */

static void test_pg_spec(void **state)
{
    char why[300];
    assert_true(mg_pg_spec_is("postgres://h/db"));
    assert_true(mg_pg_spec_is("postgresql://u@h1:5432,h2:5433/db?target_session_attrs=read-write"));
    assert_true(mg_pg_spec_is("postgres"));
    assert_true(mg_pg_spec_is("host=db dbname=mcpgate"));
    assert_false(mg_pg_spec_is("redis://h:6379/0"));
    assert_false(mg_pg_spec_is("memory"));
    assert_int_equal(mg_session_store_check("postgres://u:pw@h/db?sslmode=verify-full", why, sizeof why), 0);
    assert_int_equal(
        mg_session_store_check("postgresql://h1,h2/db?target_session_attrs=read-write", why, sizeof why), 0);
    assert_int_equal(mg_session_store_check("host=db dbname=mcpgate sslmode=verify-full", why, sizeof why),
                     0);
    assert_int_equal(mg_session_store_check("postgres", why, sizeof why), 0);
    /* libpq's complaint is shown, except when the spec carries a password */
    assert_int_equal(mg_session_store_check("postgres://h/db?nosuchoption=1", why, sizeof why), MG_EINVAL);
    assert_non_null(strstr(why, "nosuchoption"));
    assert_int_equal(mg_session_store_check("host=db password=hunter2 nosuch=1", why, sizeof why), MG_EINVAL);
    assert_null(strstr(why, "hunter2"));
    assert_null(strstr(why, "nosuch"));
    /* a redis spec still parses as before */
    assert_int_equal(mg_session_store_check("redis://127.0.0.1:6379/0", why, sizeof why), 0);
}

static void test_pg_backend(void **state)
{
    NEED_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    cur_loop = &loop;
    mg_store_t *st = NULL;
    mg_bus_t *b = NULL;
    new_client(&loop, "t", 1, &st, &b);
    assert_string_equal(st->ops->name, "postgres");
    assert_true(wait_ready(&loop, st, 1, 10000));
    json_t *status = st->ops->status(st);
    assert_true(json_is_true(json_object_get(status, "ready")));
    assert_int_equal(json_integer_value(json_object_get(status, "schema")), 2);
    json_decref(status);

    store_contract(&loop, st);
    bus_contract(&loop, b);

    /* load marks a dead owner lost: the registry key of replA is absent */
    res_t r = {0};
    json_t *rec = sample_record();
    json_object_set_new(rec, "owner", json_string("replA"));
    CALL(&loop, r, st->ops->put(st, "t1:own", rec, 60000, done_cb, &r));
    json_decref(rec);
    CALL(&loop, r, b->ops->set(b, "r:replA", "127.0.0.1:1", 60000, done_cb, &r));
    mg_store_load_opts_t lo = {60000, "replB", 1};
    CALL(&loop, r, st->ops->load(st, "t1:own", &lo, get_cb, &r));
    assert_string_equal(json_string_value(json_object_get(r.rec, "owner")), "replA"); /* alive */
    CALL(&loop, r, b->ops->set(b, "r:replA", "127.0.0.1:1", 1, done_cb, &r));         /* expires at once */
    usleep(5000);
    CALL(&loop, r, st->ops->load(st, "t1:own", &lo, get_cb, &r));
    assert_string_equal(json_string_value(json_object_get(r.rec, "owner")), "!replA"); /* gone: lost */
    CALL(&loop, r, st->ops->owner_cas(st, "t1:own", "!replA", "", done_cb, &r));
    assert_int_equal(r.err, 0);
    CALL(&loop, r, st->ops->load(st, "t1:own", &lo, get_cb, &r));
    assert_string_equal(json_string_value(json_object_get(r.rec, "owner")), "replB");

    /* messages longer than NOTIFY's 8000 bytes go through a table; the order holds */
    inbox_t in = {json_array()};
    mg_bus_sub_t *sub = NULL;
    assert_int_equal(b->ops->subscribe(b, "i:big", msg_cb, &in, &sub), 0);
    assert_true(inbox_wait(&loop, &in, 1, 3000));
    size_t big_len = 20000;
    char *big = malloc(big_len + 1);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('a' + i % 26);
    big[big_len] = '\0';
    assert_int_equal(b->ops->publish(b, "i:big", big, big_len), 0);
    assert_int_equal(b->ops->publish(b, "i:big", "small", 5), 0);
    assert_true(inbox_wait(&loop, &in, 3, 3000));
    assert_int_equal(json_string_length(json_array_get(in.msgs, 1)), big_len);
    assert_memory_equal(json_string_value(json_array_get(in.msgs, 1)), big, big_len);
    assert_string_equal(json_string_value(json_array_get(in.msgs, 2)), "small");
    /* and an event of a log: stored whole, delivered whole */
    mg_bus_sub_t *esub = NULL;
    inbox_t ein = {json_array()};
    assert_int_equal(b->ops->subscribe(b, "e:t:s:big", msg_cb, &ein, &esub), 0);
    assert_true(inbox_wait(&loop, &ein, 1, 3000));
    CALL(&loop, r, b->ops->append(b, "x:t:s:big", "e:t:s:big", 0, big, big_len, 0, 8, 60000, seq_cb, &r));
    assert_int_equal(r.seq, 1);
    assert_true(inbox_wait(&loop, &ein, 2, 3000));
    assert_int_equal(json_string_length(json_array_get(ein.msgs, 1)), big_len + 4); /* "1 d\n" */
    CALL(&loop, r, b->ops->range(b, "x:t:s:big", 0, 0, range_cb, &r));
    assert_int_equal(json_string_length(json_array_get(json_array_get(r.events, 0), 1)), big_len);
    b->ops->unsubscribe(b, esub);
    json_decref(ein.msgs);
    free(big);

    /* a channel dropped and taken again before its LISTEN completed: the newcomer is confirmed
     * only once the LISTEN after the UNLISTEN took effect, so what is published then arrives */
    for (int round = 0; round < 5; round++) {
        inbox_t cin = {json_array()};
        mg_bus_sub_t *c1 = NULL, *c2 = NULL;
        assert_int_equal(b->ops->subscribe(b, "i:churn", msg_cb, &cin, &c1), 0);
        b->ops->unsubscribe(b, c1);
        assert_int_equal(b->ops->subscribe(b, "i:churn", msg_cb, &cin, &c2), 0);
        assert_true(inbox_wait(&loop, &cin, 1, 3000));
        assert_string_equal(json_string_value(json_array_get(cin.msgs, 0)), "<subscribed>");
        assert_int_equal(b->ops->publish(b, "i:churn", "after churn", 11), 0);
        assert_true(inbox_wait(&loop, &cin, 2, 3000));
        assert_string_equal(json_string_value(json_array_get(cin.msgs, 1)), "after churn");
        b->ops->unsubscribe(b, c2);
        json_decref(cin.msgs);
    }

    /* expiry: reads ignore expired rows at once; the sweep deletes them */
    rec = sample_record();
    CALL(&loop, r, st->ops->put(st, "t1:short", rec, 50, done_cb, &r));
    json_decref(rec);
    CALL(&loop, r, b->ops->set(b, "m:short", "v", 50, done_cb, &r));
    usleep(100000);
    CALL(&loop, r, st->ops->get(st, "t1:short", get_cb, &r));
    assert_null(r.rec);
    CALL(&loop, r, b->ops->get(b, "m:short", value_cb, &r));
    assert_false(r.has_value);
    PGconn *c = sync_conn("t");
    /* (the client's own sweep, every 10 s, may have been first) */
    assert_true(sql_int(c, "SELECT mcpgate_sweep()") >= 0);
    assert_int_equal(sql_int(c, "SELECT count(*) FROM mcpgate_sessions WHERE k = 'mgtest:s:t1:short'"), 0);
    assert_int_equal(sql_int(c, "SELECT count(*) FROM mcpgate_values WHERE k = 'mgtest:m:short'"), 0);
    /* one sweeper at a time: another transaction holding the lock makes it step aside */
    PQclear(PQexec(c, "BEGIN"));
    assert_true(sql_int(c, "SELECT mcpgate_sweep()") >= 0); /* holds the lock until COMMIT */
    PGconn *c2 = sync_conn("t");
    assert_int_equal(sql_int(c2, "SELECT mcpgate_sweep()"), -1);
    PQclear(PQexec(c, "COMMIT"));
    PQfinish(c2);

    /* a deadline: a locked table makes the operation fail after timeoutMs (1 s), not hang; the
     * connection is kept and the next operation works once the lock is gone */
    PQclear(PQexec(c, "BEGIN"));
    PQclear(PQexec(c, "LOCK TABLE mcpgate_sessions IN ACCESS EXCLUSIVE MODE"));
    uint64_t t0 = uv_now(&loop);
    CALL(&loop, r, st->ops->get(st, "t1:own", get_cb, &r));
    uint64_t waited = uv_now(&loop) - t0;
    assert_int_equal(r.err, MG_EIO);
    assert_true(waited >= 900 && waited < 2500);
    PQclear(PQexec(c, "COMMIT"));
    CALL(&loop, r, st->ops->get(st, "t1:own", get_cb, &r));
    assert_int_equal(r.err, 0);
    assert_non_null(r.rec);
    PQfinish(c);

    /* a subscription survives a server restart; operations fail fast while it is down */
    json_array_clear(in.msgs);
    pg_kill(SIGKILL);
    assert_true(wait_ready(&loop, st, 0, 5000));
    assert_true(wait_pool_down(&loop, st, 5000));
    res_reset(&r);
    assert_int_equal(st->ops->get(st, "t1:own", get_cb, &r), MG_EIO); /* at once, no callback */
    assert_false(r.done);
    status = st->ops->status(st);
    assert_non_null(json_object_get(status, "error"));
    json_decref(status);
    pg_start();
    assert_true(wait_ready(&loop, st, 1, 15000));
    assert_true(inbox_wait(&loop, &in, 1, 3000)); /* listened again: catch-up signal */
    assert_string_equal(json_string_value(json_array_get(in.msgs, 0)), "<subscribed>");
    assert_int_equal(b->ops->publish(b, "i:big", "after", 5), 0);
    assert_true(inbox_wait(&loop, &in, 2, 3000));
    assert_string_equal(json_string_value(json_array_get(in.msgs, 1)), "after");
    CALL(&loop, r, st->ops->get(st, "t1:own", get_cb, &r)); /* the records survived */
    assert_non_null(r.rec);
    status = st->ops->status(st);
    assert_true(json_integer_value(json_object_get(status, "reconnects")) >= 1);
    json_decref(status);
    b->ops->unsubscribe(b, sub);
    json_decref(in.msgs);
    res_reset(&r);
    st->ops->free(st);
    b->ops->free(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_pg_schema(void **state)
{
    NEED_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    cur_loop = &loop;
    /* migrate off, database never migrated: not ready, and the status says what to run */
    mg_store_t *st = NULL;
    mg_bus_t *b = NULL;
    new_client(&loop, "fresh", 0, &st, &b);
    int never = 0;
    run_until(&loop, &never, 1500);
    assert_false(st->ops->ready(st));
    json_t *status = st->ops->status(st);
    char *text = json_dumps(status, JSON_COMPACT);
    assert_non_null(strstr(text, "mcpgate store migrate"));
    free(text);
    json_decref(status);
    /* `mcpgate store migrate`, twice: the second finds nothing to do */
    char ci[200], out[200] = "", why[300] = "";
    assert_int_equal(mg_pg_migrate(conninfo(ci, sizeof ci, "fresh"), NULL, out, sizeof out, why, sizeof why),
                     0);
    assert_non_null(strstr(out, "was 0"));
    assert_int_equal(mg_pg_migrate(conninfo(ci, sizeof ci, "fresh"), NULL, out, sizeof out, why, sizeof why),
                     0);
    assert_non_null(strstr(out, "up to date"));
    /* a database left at version 1 (before the task records) is upgraded to 2 */
    PGconn *c = sync_conn("fresh");
    PQclear(PQexec(c, "DROP TABLE mcpgate_tasks; DROP FUNCTION mcpgate_task_create, mcpgate_task_get,"
                      " mcpgate_task_update, mcpgate_task_owner_alive, mcpgate_task_final; DELETE FROM "
                      "mcpgate_schema WHERE version = 2"));
    assert_int_equal(sql_int(c, "SELECT max(version) FROM mcpgate_schema"), 1);
    assert_int_equal(mg_pg_migrate(conninfo(ci, sizeof ci, "fresh"), NULL, out, sizeof out, why, sizeof why),
                     0);
    assert_non_null(strstr(out, "schema at version 2 (was 1)"));
    assert_int_equal(sql_int(c, "SELECT count(*) FROM mcpgate_tasks"), 0);
    assert_true(sql_int(c, "SELECT mcpgate_sweep()") >= 0);
    PQfinish(c);
    /* the client notices by itself */
    assert_true(wait_ready(&loop, st, 1, 10000));
    st->ops->free(st);
    b->ops->free(b);
    /* an unreachable server: an error sentence, no password */
    snprintf(ci, sizeof ci, "postgresql://mcpgate:pw-secret@127.0.0.1:%d/t", free_port());
    assert_int_equal(mg_pg_migrate(ci, NULL, out, sizeof out, why, sizeof why), MG_EIO);
    assert_non_null(strstr(why, "cannot connect"));
    assert_null(strstr(why, "pw-secret"));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* libpq tries the hosts in turn (the socket changes during the connect): the first refuses, the
 * second is the server; target_session_attrs=read-write accepts only a primary. */
static void test_pg_multihost(void **state)
{
    NEED_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    cur_loop = &loop;
    char spec[256], why[300] = "";
    snprintf(
        spec, sizeof spec,
        "postgresql://mcpgate@127.0.0.1:%d,127.0.0.1:%d/t?target_session_attrs=read-write&connect_timeout=2",
        free_port(), pgport);
    mg_pg_opts_t o = {spec, NULL, "mgtest:", 1000, 1, loop_now};
    mg_store_t *st = NULL;
    mg_bus_t *b = NULL;
    assert_int_equal(mg_pg_new(&loop, &o, &st, &b, why, sizeof why), 0);
    assert_true(wait_ready(&loop, st, 1, 10000));
    json_t *status = st->ops->status(st);
    char port[16];
    snprintf(port, sizeof port, ":%d/", pgport);
    assert_non_null(strstr(json_string_value(json_object_get(status, "server")), port));
    json_decref(status);
    res_t r = {0};
    CALL(&loop, r, b->ops->set(b, "m:multi", "v", 60000, done_cb, &r));
    assert_int_equal(r.err, 0);
    res_reset(&r);
    st->ops->free(st);
    b->ops->free(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_pg_ratelimit(void **state)
{
    NEED_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    cur_loop = &loop;
    mg_store_t *st[2] = {NULL, NULL};
    mg_bus_t *b[2] = {NULL, NULL};
    mg_rl_store_t *rl[2];
    for (int i = 0; i < 2; i++) { /* two replicas: two clients of one database */
        new_client(&loop, "t", 1, &st[i], &b[i]);
        assert_true(wait_ready(&loop, st[i], 1, 10000));
        rl[i] = mg_shared_rl_new(st[i]);
        assert_non_null(rl[i]);
    }
    assert_null(mg_pg_rl_new(NULL));

    /* 40 takes in flight at once from both clients against 5 per hour: exactly 5 pass */
    mg_rate_rule_t hourly = {NULL, 5, 3600000, 5};
    rl_res_t t[40] = {{0}};
    for (int i = 0; i < 40; i++) {
        mg_rl_key_t k = {"p:shared", &hourly, "principal"};
        rl[i % 2]->ops->take(rl[i % 2], &k, 1, 0, rl_cb, &t[i]);
        assert_int_equal(t[i].calls, 0); /* asynchronous */
    }
    assert_true(rl_wait(&loop, t, 40, 5000));
    int allowed = 0;
    for (int i = 0; i < 40; i++) {
        assert_int_equal(t[i].r.error, 0);
        allowed += t[i].r.allowed;
        if (!t[i].r.allowed) {
            assert_true(t[i].r.retry_after_ms > 719000 && t[i].r.retry_after_ms <= 720000);
            assert_int_equal(t[i].r.remaining, 0);
        }
    }
    assert_int_equal(allowed, 5);
    PGconn *c = sync_conn("t");
    long long left_ms = sql_int(c, "SELECT (extract(epoch FROM expires - now()) * 1000)::bigint FROM "
                                   "mcpgate_buckets WHERE k = 'mgtest:rl:p:shared'");
    assert_true(left_ms > 3590000 && left_ms <= 3601000);

    /* all or none: a refusal by the tenant bucket spends no principal token */
    mg_rate_rule_t per_principal = {NULL, 3, 60000, 3}, per_tenant = {NULL, 4, 60000, 4};
    allowed = 0;
    for (int i = 0; i < 10; i++) {
        mg_rl_key_t keys[2] = {{i % 2 ? "p:alice" : "p:bob", &per_principal, "principal"},
                               {"t:acme", &per_tenant, "tenant"}};
        rl_res_t one = {0};
        rl[i % 2]->ops->take(rl[i % 2], keys, 2, 0, rl_cb, &one);
        assert_true(rl_wait(&loop, &one, 1, 3000));
        allowed += one.r.allowed;
        if (one.r.allowed) {
            static const uint64_t left[4] = {2, 2, 1, 0};
            assert_int_equal(one.r.remaining, left[i]);
        } else {
            assert_int_equal(one.r.limiting, 1);
            assert_true(one.r.retry_after_ms > 14000 && one.r.retry_after_ms <= 15000);
        }
    }
    assert_int_equal(allowed, 4);
    long long units = sql_int(c, "SELECT units FROM mcpgate_buckets WHERE k = 'mgtest:rl:p:alice'");
    assert_true(units >= 60000 && units < 61000);
    PQfinish(c);

    /* the database down: the take fails closed, synchronously, exactly once */
    pg_kill(SIGKILL);
    assert_true(wait_ready(&loop, st[0], 0, 5000));
    assert_true(wait_pool_down(&loop, st[0], 5000));
    {
        mg_rl_key_t k = {"p:fresh", &hourly, "principal"};
        rl_res_t one = {0};
        rl[0]->ops->take(rl[0], &k, 1, 0, rl_cb, &one);
        assert_int_equal(one.calls, 1);
        assert_int_equal(one.r.error, MG_EIO);
        assert_false(one.r.allowed);
    }
    pg_start();
    for (int i = 0; i < 2; i++) {
        st[i]->ops->free(st[i]);
        b[i]->ops->free(b[i]);
        rl[i]->ops->free(rl[i]);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_pg_tasks(void **state)
{
    NEED_PG();
    uv_loop_t loop;
    uv_loop_init(&loop);
    cur_loop = &loop;
    mg_store_t *st[2] = {NULL, NULL};
    mg_bus_t *b[2] = {NULL, NULL};
    mg_task_store_t *ts[2];
    for (int i = 0; i < 2; i++) { /* two replicas: two clients of one database */
        new_client(&loop, "t", 1, &st[i], &b[i]);
        assert_true(wait_ready(&loop, st[i], 1, 10000));
        ts[i] = mg_shared_task_new(st[i]);
        assert_non_null(ts[i]);
    }
    assert_null(mg_pg_task_store_new(NULL));

    /* an alive owner (registry row present): the contract of every task store */
    res_t r = {0};
    CALL(&loop, r, b[0]->ops->set(b[0], "r:alive", "127.0.0.1:1", 60000, done_cb, &r));
    assert_int_equal(r.err, 0);
    res_reset(&r);
    task_contract(&loop, ts[0], "alive", NULL);
    /* the other client reads what the first wrote */
    task_res_t tr = {0};
    OP(&loop, tr, ts[1]->ops->get(ts[1], "a0000000000000000000000000000001", "gone", task_contract_cb, &tr));
    assert_int_equal(tr.err, 0);
    assert_string_equal(json_string_value(json_object_get(tr.rec, "status")), "completed");
    /* a gone owner: failed with the reason, for good */
    task_contract_dead_owner(&loop, ts[1]);
    /* ... also when its result holds a NUL character (jsonb would refuse the record) */
    json_t *nul = task_contract_record("d0000000000000000000000000000009", "nul", "working", "dead");
    json_object_set_new(json_array_get(json_object_get(json_object_get(nul, "result"), "content"), 0), "text",
                        json_stringn("a\0b", 3));
    OP(&loop, tr, ts[0]->ops->create(ts[0], nul, 1, 60000, task_contract_cb, &tr));
    assert_int_equal(tr.err, 0);
    OP(&loop, tr,
       ts[1]->ops->get(ts[1], "d0000000000000000000000000000009", "its replica stopped", task_contract_cb,
                       &tr));
    assert_int_equal(tr.err, 0);
    assert_string_equal(json_string_value(json_object_get(tr.rec, "status")), "failed");
    assert_string_equal(json_string_value(json_object_get(tr.rec, "principal")), "nul");
    json_decref(nul);

    /* 24 creates in flight at once from both clients, limit 5: exactly 5 pass */
    task_res_t many[24];
    memset(many, 0, sizeof many);
    for (int i = 0; i < 24; i++) {
        char id[40];
        snprintf(id, sizeof id, "%032x", 0x7000 + i);
        json_t *rec = task_contract_record(id, "zed", "working", "alive");
        assert_int_equal(ts[i % 2]->ops->create(ts[i % 2], rec, 5, 60000, task_contract_cb, &many[i]), 0);
        json_decref(rec);
    }
    int created = 0, busy = 0;
    for (int i = 0; i < 24; i++) {
        task_contract_run_for(&loop, &many[i].done, 5000);
        assert_true(many[i].done);
        created += many[i].err == 0;
        busy += many[i].err == MG_EBUSY;
        json_decref(many[i].rec);
    }
    assert_int_equal(created, 5);
    assert_int_equal(busy, 19);

    /* the sweep removes expired records. The contract left one of 200 ms, but the store's own
     * periodic sweep may have taken it already on a slow run: one more, expired, is written here. */
    PGconn *c = sync_conn("t");
    PQclear(PQexec(c, "INSERT INTO mcpgate_tasks (k, pk, rec, head, status, fin, expires) VALUES "
                      "('mgtest:t:expired-probe', 'mgtest:tp:probe', '{}', '{}', 'completed', true, "
                      "now() - interval '1 second')"));
    assert_true(sql_int(c, "SELECT count(*) FROM mcpgate_tasks WHERE expires <= now()") >= 1);
    assert_true(sql_int(c, "SELECT mcpgate_sweep()") >= 1);
    assert_int_equal(sql_int(c, "SELECT count(*) FROM mcpgate_tasks WHERE expires <= now()"), 0);
    /* no token, only what the record holds: the principal's key */
    assert_int_equal(sql_int(c, "SELECT count(*) FROM mcpgate_tasks WHERE pk = 'mgtest:tp:zed'"), 5);
    PQfinish(c);

    /* the database down: an operation fails at once (MG_EIO), its callback never runs */
    pg_kill(SIGKILL);
    assert_true(wait_ready(&loop, st[0], 0, 5000));
    assert_true(wait_pool_down(&loop, st[0], 5000));
    tr.done = 0;
    assert_int_equal(
        ts[0]->ops->get(ts[0], "a0000000000000000000000000000001", "gone", task_contract_cb, &tr), MG_EIO);
    assert_false(tr.done);
    json_decref(tr.rec);
    pg_start();
    for (int i = 0; i < 2; i++) {
        ts[i]->ops->free(ts[i]);
        st[i]->ops->free(st[i]);
        b[i]->ops->free(b[i]);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_spec),      cmocka_unit_test(test_pg_backend),
        cmocka_unit_test(test_pg_schema),    cmocka_unit_test(test_pg_multihost),
        cmocka_unit_test(test_pg_ratelimit), cmocka_unit_test(test_pg_tasks),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
