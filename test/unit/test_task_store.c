/*
 * test_task_store.c - the task record stores (src/session/task_store.h): one contract run against
 * the process's own store and the Redis one (a redis-server started here on a free loopback
 * port; skipped with a message when it is not installed). The contract: create within the
 * principal's limit (MG_EBUSY past it; a terminal record frees its slot), get, update that never
 * replaces a terminal record (MG_EBUSY with the stored one), expiry by TTL. Redis only: a record
 * whose owner replica has no registry key is reported failed, with the reason, by get.
 * Also: gateway.tasks in the configuration (config/config_tasks.c).
 * Read next: src/session/task_store.h, src/gateway/tasks.c.
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
#include "session/bus.h"
#include "session/redis.h"
#include "session/store.h"
#include "session/task_store.h"
#include "task_contract.h"

static uv_loop_t *cur_loop;
static uint64_t fake_ms = 1000000;

static uint64_t fake_now(void)
{
    return fake_ms;
}

static uint64_t loop_now(void)
{
    return uv_now(cur_loop);
}

static void test_memory_store(void **state)
{
    mg_task_store_t *st = mg_task_store_mem_new(fake_now, 1 << 20);
    assert_non_null(st);
    task_contract(NULL, st, "", &fake_ms);
    st->ops->free(st);

    /* the bytes bound: finished records go first (those expiring first), unfinished ones stay */
    st = mg_task_store_mem_new(fake_now, 600);
    task_res_t r = {0};
    json_t *done = task_contract_record("f0000000000000000000000000000001", "erin", "completed", "");
    json_t *run = task_contract_record("f0000000000000000000000000000002", "erin", "working", "");
    json_t *run2 = task_contract_record("f0000000000000000000000000000003", "erin", "working", "");
    OP(NULL, r, st->ops->create(st, done, 9, 60000, task_contract_cb, &r));
    OP(NULL, r, st->ops->create(st, run, 9, 60000, task_contract_cb, &r));
    OP(NULL, r, st->ops->create(st, run2, 9, 60000, task_contract_cb, &r)); /* 3 x ~254 bytes: over 600 */
    OP(NULL, r, st->ops->get(st, "f0000000000000000000000000000001", "", task_contract_cb, &r));
    assert_null(r.rec); /* the finished one made room */
    OP(NULL, r, st->ops->get(st, "f0000000000000000000000000000002", "", task_contract_cb, &r));
    assert_non_null(r.rec);
    OP(NULL, r, st->ops->get(st, "f0000000000000000000000000000003", "", task_contract_cb, &r));
    assert_non_null(r.rec);
    json_decref(done);
    json_decref(run);
    json_decref(run2);
    json_decref(r.rec);
    st->ops->free(st);
    assert_int_equal(mg_task_status_terminal("failed"), 1);
    assert_int_equal(mg_task_status_terminal("input_required"), 0);
    assert_int_equal(mg_task_status_terminal(NULL), 0);
}

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

static void set_cb(int err, void *data)
{
    task_res_t *r = data;
    r->err = err;
    r->done = 1;
}

static void test_redis_store(void **state)
{
    if (redis_server() == NULL) {
        fprintf(stderr,
                "test_redis_store: skipped: redis-server is not installed (scripts/install-deps.sh)\n");
        skip();
    }
    int port = free_port();
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", 1);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(redis_server(), "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    cur_loop = &loop;
    char url[128], why[300] = "";
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", port);
    mg_redis_opts_t o = {url, NULL, NULL, "mgtask:", 1000, loop_now};
    mg_store_t *sess = NULL;
    mg_bus_t *bus = NULL;
    assert_int_equal(mg_redis_new(&loop, &o, &sess, &bus, why, sizeof why), 0);
    uint64_t end = uv_now(&loop) + 5000;
    while (!sess->ops->ready(sess) && uv_now(&loop) < end)
        task_contract_run_for(&loop, NULL, 20);
    assert_true(sess->ops->ready(sess));
    mg_task_store_t *st = mg_redis_task_store_new(sess);
    assert_non_null(st);
    assert_null(mg_redis_task_store_new(NULL) /* not a redis store */);

    /* an alive owner (registry key present): the contract as in one process */
    task_res_t r = {0};
    OP(&loop, r, bus->ops->set(bus, "r:alive", "127.0.0.1:1", 60000, set_cb, &r));
    task_contract(&loop, st, "alive", &fake_ms);

    task_contract_dead_owner(&loop, st);
    st->ops->free(st);
    bus->ops->free(bus);
    sess->ops->free(sess);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    task_contract_run_for(&loop, NULL, 50);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* gateway.tasks: defaults, values, and every kind of mistake named with its key. */
static void test_config_tasks(void **state)
{
    const char *servers = "\"mcpServers\": {\"a\": {\"command\": \"/bin/true\"}}";
    char json[600];
    mg_config_t cfg;
    mg_config_errors_t errs;
    snprintf(json, sizeof json, "{%s}", servers);
    assert_int_equal(mg_config_parse(json, "t.json", "/opt/mg", &cfg, &errs), 0);
    assert_int_equal(cfg.tasks.enabled, 1);
    assert_int_equal(cfg.tasks.ttl_ms, 3600000);
    assert_int_equal(cfg.tasks.poll_interval_ms, 1000);
    assert_int_equal(cfg.tasks.max_per_principal, 16);
    assert_int_equal(cfg.tasks.max_result_bytes, 1048576);
    assert_int_equal(cfg.tasks.call_timeout_ms, 3600000);
    assert_int_equal(cfg.tasks.max_stored_bytes, 256u << 20);
    mg_config_errors_dispose(&errs);
    mg_config_dispose(&cfg);

    snprintf(json, sizeof json,
             "{%s, \"gateway\": {\"tasks\": {\"enabled\": false, \"ttlMs\": 5000, \"pollIntervalMs\": 250, "
             "\"maxPerPrincipal\": 3, \"maxResultBytes\": 4096, \"callTimeoutMs\": 2000, "
             "\"maxStoredBytes\": 2097152}}}",
             servers);
    assert_int_equal(mg_config_parse(json, "t.json", "/opt/mg", &cfg, &errs), 0);
    assert_int_equal(cfg.tasks.enabled, 0);
    assert_int_equal(cfg.tasks.ttl_ms, 5000);
    assert_int_equal(cfg.tasks.poll_interval_ms, 250);
    assert_int_equal(cfg.tasks.max_per_principal, 3);
    assert_int_equal(cfg.tasks.max_result_bytes, 4096);
    assert_int_equal(cfg.tasks.call_timeout_ms, 2000);
    assert_int_equal(cfg.tasks.max_stored_bytes, 2097152);
    mg_config_errors_dispose(&errs);
    mg_config_dispose(&cfg);

    snprintf(
        json, sizeof json,
        "{%s, \"gateway\": {\"tasks\": {\"ttl\": 5, \"maxPerPrincipal\": 0, \"maxResultBytes\": \"1\"}}}",
        servers);
    assert_int_equal(mg_config_parse(json, "t.json", "/opt/mg", &cfg, &errs), MG_ECONFIG);
    assert_int_equal(errs.count, 3);
    char all[2000] = "";
    for (size_t i = 0; i < errs.count; i++) {
        strncat(all, errs.msgs[i], sizeof all - strlen(all) - 2);
        strcat(all, "\n");
    }
    assert_non_null(strstr(all, "gateway.tasks: unknown key \"ttl\"; did you mean \"ttlMs\"?"));
    assert_non_null(strstr(all, "gateway.tasks.maxPerPrincipal"));
    assert_non_null(strstr(all, "gateway.tasks.maxResultBytes"));
    mg_config_errors_dispose(&errs);
    snprintf(json, sizeof json, "{%s, \"gateway\": {\"tasks\": []}}", servers);
    assert_int_equal(mg_config_parse(json, "t.json", "/opt/mg", &cfg, &errs), MG_ECONFIG);
    assert_non_null(strstr(errs.msgs[0], "gateway.tasks: must be an object"));
    mg_config_errors_dispose(&errs);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_tasks),
        cmocka_unit_test(test_memory_store),
        cmocka_unit_test(test_redis_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
