/*
 * test_store.c - the session store and bus (src/session/): store spec parsing, the memory
 * backends, and the redis backend against a real redis-server started here on a free loopback
 * port (skipped, with a message, when redis-server is not installed: scripts/install-deps.sh
 * installs it). The redis tests cover AUTH, the db index, record encoding, the Lua scripts (load
 * with owner liveness and claim, patch, compare-and-set, append/range/last), pub/sub, failing fast
 * while Redis is down and reconnecting by itself when it is back, and the shared rate-limit
 * buckets (ratelimit_redis.c) taken by two clients at once. Every test closes its loop.
 * The contract both backends keep is test/unit/support/store_contract.c (test_store_pg.c runs it
 * against PostgreSQL). Read next: src/session/store.h, src/session/bus.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "common/err.h"
#include "config/config.h"
#include "policy/ratelimit.h"
#include "session/bus.h"
#include "session/redis.h"
#include "session/shared.h"
#include "memory_backends.h"
#include "session/store.h"

/* ---- spec parsing ---- */

static void test_url_parse(void **state)
{
    mg_redis_target_t t;
    char why[300];
    assert_int_equal(mg_redis_url_parse("redis://127.0.0.1:6380/3", &t, why, sizeof why), 0);
    assert_int_equal(t.sentinel, 0);
    assert_int_equal(t.nhosts, 1);
    assert_string_equal(t.hosts[0], "127.0.0.1");
    assert_int_equal(t.ports[0], 6380);
    assert_int_equal(t.db, 3);
    assert_null(t.password);
    mg_redis_target_dispose(&t);

    assert_int_equal(mg_redis_url_parse("redis://:p%40ss%3Aw@redis", &t, why, sizeof why), 0);
    assert_string_equal(t.password, "p@ss:w");
    assert_null(t.username);
    assert_int_equal(t.ports[0], 6379);
    assert_int_equal(t.db, 0);
    mg_redis_target_dispose(&t);

    assert_int_equal(mg_redis_url_parse("valkey://app:pw@[::1]:7000/1", &t, why, sizeof why), 0);
    assert_string_equal(t.username, "app");
    assert_string_equal(t.password, "pw");
    assert_string_equal(t.hosts[0], "::1");
    assert_int_equal(t.ports[0], 7000);
    mg_redis_target_dispose(&t);

    assert_int_equal(
        mg_redis_url_parse("redis-sentinel://:pw@s1:26380,s2,10.0.0.3:1/mymaster/2", &t, why, sizeof why), 0);
    assert_int_equal(t.sentinel, 1);
    assert_int_equal(t.nhosts, 3);
    assert_string_equal(t.hosts[1], "s2");
    assert_int_equal(t.ports[1], 26379);
    assert_int_equal(t.ports[2], 1);
    assert_string_equal(t.master, "mymaster");
    assert_int_equal(t.db, 2);
    mg_redis_target_dispose(&t);

    static const char *const bad[] = {
        "redis://",       "redis://h:0", "redis://h:70000",    "redis://h/x",
        "redis://h/2000", "redis://a,b", "redis-sentinel://h", "redis-sentinel://h/",
        "redis://:%zz@h", "http://h",    "redis://h/0?x=1",    "redis://h:/0",
        "redis://h h",    NULL};
    for (int i = 0; bad[i] != NULL; i++) {
        why[0] = '\0';
        assert_int_not_equal(mg_redis_url_parse(bad[i], &t, why, sizeof why), 0);
        assert_true(why[0] != '\0');
        mg_redis_target_dispose(&t);
    }
    /* TLS: refused with the sidecar explanation, never silently downgraded. */
    assert_int_equal(mg_session_store_check("rediss://:secret@h:6380/0", why, sizeof why), MG_EINVAL);
    assert_non_null(strstr(why, "sidecar"));
    assert_null(strstr(why, "secret"));
    assert_int_equal(mg_session_store_check("memory", why, sizeof why), 0);
    assert_int_equal(mg_session_store_check("redis://127.0.0.1:6379/0", why, sizeof why), 0);
}

/* "gateway.sessions": valid keys, and every problem reported without the secret in it. */
static void test_config_sessions(void **state)
{
    mg_config_t cfg;
    mg_config_errors_t errs;
    const char *ok =
        "{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\"sessions\": {"
        "\"store\": \"redis-sentinel://s1,s2:26380/mymaster/1\", \"password\": \"pw\", "
        "\"sentinelPassword\": \"spw\", \"keyPrefix\": \"{mcp}:\", \"advertise\": \"10.0.0.5:8080\", "
        "\"secret\": \"0123456789abcdef\", \"timeoutMs\": 500}}}";
    assert_int_equal(mg_config_parse(ok, "t.json", "/", &cfg, &errs), 0);
    assert_string_equal(cfg.sessions.store, "redis-sentinel://s1,s2:26380/mymaster/1");
    assert_string_equal(cfg.sessions.key_prefix, "{mcp}:");
    assert_string_equal(cfg.sessions.advertise, "10.0.0.5:8080");
    assert_int_equal(cfg.sessions.timeout_ms, 500);
    mg_config_dispose(&cfg);
    mg_config_errors_dispose(&errs);

    const char *bad =
        "{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\"sessions\": {"
        "\"store\": \"rediss://:hunter2@h/0\", \"secret\": \"short-hunter3\", \"advertise\": \"nohost\", "
        "\"timeoutMs\": 5, \"keyPrefix\": \"a b\", \"stor\": 1}}}";
    assert_int_not_equal(mg_config_parse(bad, "t.json", "/", &cfg, &errs), 0);
    assert_int_equal(errs.count, 6);
    for (size_t i = 0; i < errs.count; i++) {
        assert_null(strstr(errs.msgs[i], "hunter2"));
        assert_null(strstr(errs.msgs[i], "hunter3"));
    }
    int sidecar = 0, suggestion = 0;
    for (size_t i = 0; i < errs.count; i++) {
        sidecar |= strstr(errs.msgs[i], "sidecar") != NULL;
        suggestion |= strstr(errs.msgs[i], "did you mean \"store\"") != NULL;
    }
    assert_true(sidecar && suggestion);
    mg_config_errors_dispose(&errs);
}

#include "store_contract.h"

static void test_memory_backends(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    cur_loop = &loop;
    mg_store_t *st = mg_store_memory_new(loop_now);
    store_contract(&loop, st);
    st->ops->free(st);
    mg_bus_t *b = mg_bus_memory_new(&loop, loop_now);
    bus_contract(&loop, b);
    b->ops->free(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- a real redis-server ---- */

static const char *redis_server(void)
{
    static const char *const paths[] = {"/usr/bin/redis-server", "/usr/local/bin/redis-server",
                                        "/usr/bin/valkey-server", NULL};
    for (int i = 0; paths[i]; i++)
        if (access(paths[i], X_OK) == 0)
            return paths[i];
    return NULL;
}

static pid_t start_redis(int port, const char *password)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", 1);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(redis_server(), "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", "--requirepass", password, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop_redis(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

static void test_redis_backend(void **state)
{
    if (redis_server() == NULL) {
        fprintf(stderr,
                "test_redis_backend: skipped: redis-server is not installed (scripts/install-deps.sh)\n");
        skip();
    }
    int port = free_port();
    pid_t pid = start_redis(port, "s3cret");
    uv_loop_t loop;
    uv_loop_init(&loop);
    cur_loop = &loop;
    char url[128], why[300] = "";
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/2", port);
    mg_redis_opts_t o = {url, "s3cret", NULL, "mgtest:", 1000, loop_now};
    mg_store_t *st = NULL;
    mg_bus_t *b = NULL;
    assert_int_equal(mg_redis_new(&loop, &o, &st, &b, why, sizeof why), 0);
    assert_true(wait_ready(&loop, st, 1, 5000));
    assert_true(b->ops->ready(b));
    json_t *status = st->ops->status(st);
    char *text = json_dumps(status, JSON_COMPACT);
    assert_null(strstr(text, "s3cret"));
    free(text);
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
    const char *k[] = {"r:replA"};
    CALL(&loop, r, b->ops->del(b, k, 1, done_cb, &r));
    CALL(&loop, r, st->ops->load(st, "t1:own", &lo, get_cb, &r));
    assert_string_equal(json_string_value(json_object_get(r.rec, "owner")), "!replA"); /* gone: lost */
    CALL(&loop, r, st->ops->owner_cas(st, "t1:own", "!replA", "", done_cb, &r));
    assert_int_equal(r.err, 0);
    CALL(&loop, r, st->ops->load(st, "t1:own", &lo, get_cb, &r));
    assert_string_equal(json_string_value(json_object_get(r.rec, "owner")), "replB"); /* next call: fresh */

    /* a stall shorter than the connection's hard deadline: waiting commands fail at the command
     * deadline (1 s here), the connection stays, and the next commands work */
    char pause[160];
    snprintf(pause, sizeof pause,
             "redis-cli -p %d -a s3cret --no-auth-warning CLIENT PAUSE 2500 ALL >/dev/null", port);
    if (system(pause) == 0) {
        uint64_t t0 = uv_now(&loop);
        CALL(&loop, r, st->ops->get(st, "t1:own", get_cb, &r));
        uint64_t waited = uv_now(&loop) - t0;
        assert_int_equal(r.err, MG_EIO);
        assert_true(waited >= 900 && waited < 2000);
        int wait_pause = 0;
        run_until(&loop, &wait_pause, 2000);
        CALL(&loop, r, st->ops->get(st, "t1:own", get_cb, &r));
        assert_int_equal(r.err, 0);
        assert_non_null(r.rec);
        json_t *stt = st->ops->status(st);
        assert_int_equal(json_integer_value(json_object_get(stt, "reconnects")), 0);
        json_decref(stt);
    }

    /* a subscription survives a Redis restart; operations fail fast while it is down */
    inbox_t in = {json_array()};
    mg_bus_sub_t *sub = NULL;
    assert_int_equal(b->ops->subscribe(b, "i:replB", msg_cb, &in, &sub), 0);
    assert_true(inbox_wait(&loop, &in, 1, 3000));
    stop_redis(pid);
    assert_true(wait_ready(&loop, st, 0, 5000));
    res_reset(&r);
    assert_int_equal(st->ops->get(st, "t1:own", get_cb, &r), MG_EIO); /* at once, no callback */
    assert_false(r.done);
    status = st->ops->status(st);
    assert_non_null(json_object_get(status, "error"));
    json_decref(status);
    pid = start_redis(port, "s3cret");
    assert_true(wait_ready(&loop, st, 1, 10000));
    assert_true(inbox_wait(&loop, &in, 2, 3000)); /* re-subscribed: catch-up signal */
    assert_string_equal(json_string_value(json_array_get(in.msgs, 1)), "<subscribed>");
    assert_int_equal(b->ops->publish(b, "i:replB", "after", 5), 0);
    assert_true(inbox_wait(&loop, &in, 3, 3000));
    assert_string_equal(json_string_value(json_array_get(in.msgs, 2)), "after");
    b->ops->unsubscribe(b, sub);
    json_decref(in.msgs);
    res_reset(&r);
    st->ops->free(st);
    b->ops->free(b);

    /* a wrong password: not ready, the error says why, no secret in it */
    mg_redis_opts_t bad = {url, "wrong-password", NULL, "mgtest:", 1000, loop_now};
    assert_int_equal(mg_redis_new(&loop, &bad, &st, &b, why, sizeof why), 0);
    int never = 0;
    run_until(&loop, &never, 500);
    assert_false(st->ops->ready(st));
    status = st->ops->status(st);
    text = json_dumps(status, JSON_COMPACT);
    assert_non_null(strstr(text, "handshake"));
    assert_null(strstr(text, "wrong-password"));
    free(text);
    json_decref(status);
    st->ops->free(st);
    b->ops->free(b);

    stop_redis(pid);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- the shared rate-limit store (ratelimit_redis.c) ---- */

static long long redis_cli_int(int port, const char *cmd)
{
    char line[256];
    snprintf(line, sizeof line, "redis-cli -p %d -a s3cret --no-auth-warning -n 2 %s", port, cmd);
    FILE *f = popen(line, "r");
    if (f == NULL)
        return -999;
    long long v = -999;
    if (fscanf(f, "%lld", &v) != 1)
        v = -999;
    pclose(f);
    return v;
}

static void test_redis_ratelimit(void **state)
{
    if (redis_server() == NULL) {
        fprintf(stderr, "test_redis_ratelimit: skipped: redis-server is not installed\n");
        skip();
    }
    int port = free_port();
    pid_t pid = start_redis(port, "s3cret");
    uv_loop_t loop;
    uv_loop_init(&loop);
    cur_loop = &loop;
    char url[128], why[300] = "";
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/2", port);
    mg_redis_opts_t o = {url, "s3cret", NULL, "mgtest:", 1000, loop_now};
    /* two replicas: two clients of one Redis */
    mg_store_t *st[2] = {NULL, NULL};
    mg_bus_t *b[2] = {NULL, NULL};
    mg_rl_store_t *rl[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(mg_redis_new(&loop, &o, &st[i], &b[i], why, sizeof why), 0);
        assert_true(wait_ready(&loop, st[i], 1, 5000));
        rl[i] = mg_redis_rl_new(st[i]);
        assert_non_null(rl[i]);
    }
    mg_store_t *mem = mg_store_memory_new(loop_now);
    assert_null(mg_redis_rl_new(mem)); /* only over a redis store */
    mem->ops->free(mem);

    /* 40 takes in flight at once from both clients against 5 per hour: exactly 5 pass */
    mg_rate_rule_t hourly = {NULL, 5, 3600000, 5};
    rl_res_t t[40] = {{0}};
    for (int i = 0; i < 40; i++) {
        mg_rl_key_t k = {"p:shared", &hourly, "principal"};
        rl[i % 2]->ops->take(rl[i % 2], &k, 1, 0, rl_cb, &t[i]);
        assert_int_equal(t[i].calls, 0); /* asynchronous: the answer comes later */
    }
    assert_true(rl_wait(&loop, t, 40, 3000));
    int allowed = 0;
    for (int i = 0; i < 40; i++) {
        assert_int_equal(t[i].r.error, 0);
        allowed += t[i].r.allowed;
        if (!t[i].r.allowed) {
            assert_true(t[i].r.retry_after_ms > 719000 && t[i].r.retry_after_ms <= 720000); /* 1 h / 5 */
            assert_int_equal(t[i].r.remaining, 0);
        }
    }
    assert_int_equal(allowed, 5);
    /* the bucket expires when it would be full again (5 tokens x 12 min) */
    long long pttl = redis_cli_int(port, "PTTL mgtest:rl:p:shared");
    if (pttl != -999)
        assert_true(pttl > 3590000 && pttl <= 3601000);

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
            static const uint64_t left[4] = {2, 2, 1, 0}; /* min(principal, tenant) */
            assert_int_equal(one.r.remaining, left[i]);
        } else {
            assert_int_equal(one.r.limiting, 1);
            assert_true(one.r.retry_after_ms > 14000 && one.r.retry_after_ms <= 15000);
        }
    }
    assert_int_equal(allowed, 4);
    long long units = redis_cli_int(port, "HGET mgtest:rl:p:alice u"); /* 3 - 2 tokens, + a few ms x 3 */
    if (units != -999)
        assert_true(units >= 60000 && units < 61000);

    /* the server lost its scripts: EVALSHA falls back to EVAL */
    char flush[160];
    snprintf(flush, sizeof flush, "redis-cli -p %d -a s3cret --no-auth-warning SCRIPT FLUSH >/dev/null",
             port);
    if (system(flush) == 0) {
        mg_rl_key_t k = {"p:fresh", &hourly, "principal"};
        rl_res_t one = {0};
        rl[0]->ops->take(rl[0], &k, 1, 0, rl_cb, &one);
        assert_true(rl_wait(&loop, &one, 1, 3000));
        assert_int_equal(one.r.error, 0);
        assert_true(one.r.allowed);
        assert_int_equal(one.r.remaining, 4);
    }

    /* Redis down: the take fails closed, synchronously, exactly once */
    stop_redis(pid);
    assert_true(wait_ready(&loop, st[0], 0, 5000));
    {
        mg_rl_key_t k = {"p:fresh", &hourly, "principal"};
        rl_res_t one = {0};
        rl[0]->ops->take(rl[0], &k, 1, 0, rl_cb, &one);
        assert_int_equal(one.calls, 1);
        assert_int_equal(one.r.error, MG_EIO);
        assert_false(one.r.allowed);
    }
    /* the views go in any order: the client goes with the last one */
    for (int i = 0; i < 2; i++) {
        st[i]->ops->free(st[i]);
        b[i]->ops->free(b[i]);
        rl[i]->ops->free(rl[i]);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),       cmocka_unit_test(test_config_sessions),
        cmocka_unit_test(test_memory_backends), cmocka_unit_test(test_redis_backend),
        cmocka_unit_test(test_redis_ratelimit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
