/*
 * test_store.c - the session store and bus (src/session/): store spec parsing, the memory
 * backends, and the redis backend against a real redis-server started here on a free loopback
 * port (skipped, with a message, when redis-server is not installed: scripts/install-deps.sh
 * installs it). The redis tests cover AUTH, the db index, record encoding, the Lua scripts (load
 * with owner liveness and claim, patch, compare-and-set, append/range/last), pub/sub, failing fast
 * while Redis is down and reconnecting by itself when it is back, and the shared rate-limit
 * buckets (ratelimit_redis.c) taken by two clients at once. Every test closes its loop.
 * Read next: src/session/store.h, src/session/bus.h.
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

/* ---- loop helpers ---- */

static uint64_t loop_now(void);
static uv_loop_t *cur_loop;

static uint64_t loop_now(void)
{
    return uv_now(cur_loop);
}

static void wake_cb(uv_timer_t *t)
{
}

/* Runs the loop until *flag is non-zero or ms pass; returns *flag. */
static int run_until(uv_loop_t *loop, volatile int *flag, uint64_t ms)
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

static int store_ready_flag(mg_store_t *st)
{
    return st->ops->ready(st);
}

static int wait_ready(uv_loop_t *loop, mg_store_t *st, int want, uint64_t ms)
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

typedef struct res {
    int done;
    int err;
    json_t *rec;
    uint64_t seq;
    char value[256];
    int has_value;
    json_t *events; /* [[seq, data, end]] */
} res_t;

static void get_cb(int err, json_t *record, void *data)
{
    res_t *r = data;
    r->err = err;
    r->rec = record ? json_deep_copy(record) : NULL;
    r->done = 1;
}

static void done_cb(int err, void *data)
{
    res_t *r = data;
    r->err = err;
    r->done = 1;
}

static void seq_cb(int err, uint64_t seq, void *data)
{
    res_t *r = data;
    r->err = err;
    r->seq = seq;
    r->done = 1;
}

static void range_cb(int err, const mg_bus_event_t *ev, size_t n, void *data)
{
    res_t *r = data;
    r->err = err;
    r->events = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(r->events,
                              json_pack("[I,s%,b]", (json_int_t)ev[i].seq, ev[i].data, ev[i].len, ev[i].end));
    r->done = 1;
}

static void value_cb(int err, const char *value, void *data)
{
    res_t *r = data;
    r->err = err;
    r->has_value = value != NULL;
    snprintf(r->value, sizeof r->value, "%s", value ? value : "");
    r->done = 1;
}

static void res_reset(res_t *r)
{
    json_decref(r->rec);
    json_decref(r->events);
    memset(r, 0, sizeof(*r));
}

typedef struct inbox {
    json_t *msgs; /* strings; "<subscribed>" for a NULL payload */
} inbox_t;

static void msg_cb(const char *channel, const char *payload, size_t len, void *data)
{
    inbox_t *in = data;
    json_array_append_new(in->msgs, payload ? json_stringn(payload, len) : json_string("<subscribed>"));
}

static int inbox_wait(uv_loop_t *loop, inbox_t *in, size_t n, uint64_t ms)
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

static json_t *sample_record(void)
{
    return json_pack("{s:s,s:s,s:{s:{}},s:{s:s},s:{s:s,s:s},s:s,s:I,s:i,s:{s:i}}", "id", "abc", "version",
                     "2025-11-25", "caps", "sampling", "clientInfo", "name", "c", "principal", "key", "k1",
                     "tenant", "t1", "profile", "", "created", (json_int_t)1, "logLevel", 2, "subs",
                     "test://a", 0);
}

#define CALL(loop, res, expr)                                                                                \
    do {                                                                                                     \
        res_reset(&(res));                                                                                   \
        assert_int_equal((expr), 0);                                                                         \
        assert_true(run_until((loop), &(res).done, 3000));                                                   \
    } while (0)

static void store_contract(uv_loop_t *loop, mg_store_t *st)
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

static void bus_contract(uv_loop_t *loop, mg_bus_t *b)
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

static int free_port(void)
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

typedef struct rl_res {
    int calls;
    mg_rl_result_t r;
} rl_res_t;

static void rl_cb(void *data, const mg_rl_result_t *r)
{
    rl_res_t *t = data;
    t->calls++;
    t->r = *r;
}

static int rl_wait(uv_loop_t *loop, rl_res_t *t, size_t n, uint64_t ms)
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
