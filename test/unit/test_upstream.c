/*
 * test_upstream.c - upstream/ against real child processes on a real libuv loop.
 *
 * Most tests drive build/mcpgate-testserver (path in $MG_TESTSERVER, else next to this binary);
 * framing edge cases use a small /bin/sh fake written inline below. Every test ends by stopping
 * the upstream and asserting uv_loop_close() == 0. Pure parts (id table, id scanner, line
 * splitter, UTF-8 cleanup) are tested directly through upstream_int.h.
 * Read next: src/upstream/upstream.h (the contract tested here).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "common/err.h"
#include "common/log.h"
#include "upstream/listall.h"
#include "upstream/upstream.h"
#include "upstream/sandbox.h"
#include "upstream/upstream_int.h"

/* ---- harness ---- */

static int in_api; /* set around mg_upstream_request/start: done_cb must never see it */
static char testserver[PATH_MAX];

typedef struct h {
    uv_loop_t loop;
    mg_server_config_t srv;
    mg_limits_t lim;
    char *args[8];
    mg_kv_t env[4];
    mg_upstream_t *up;
    int stopped;
    int nmsg;
    json_t *msgs[32];
    mg_upstream_origin_t msg_origin[32];
    int nstate;
    int exclusive; /* opts.exclusive for h_new */
} h_t;

typedef struct call {
    h_t *h;
    int idx;
    int done, err;
    char *message;
    json_t *response;
    uint64_t t_start, t_done;
    int nrelated;
    json_t *related[16];
    mg_upstream_origin_t rel_origin;
    mg_upstream_req_t *req;
    const char *expect_text;
    int answer_sampling; /* related_cb answers sampling/createMessage */
} call_t;

static void on_message_cb(mg_upstream_t *up, mg_upstream_origin_t origin, json_t *msg, void *data)
{
    h_t *h = data;
    if (h->nmsg < 32) {
        h->msg_origin[h->nmsg] = origin;
        h->msgs[h->nmsg++] = json_incref(msg);
    }
}

static void on_state_cb(mg_upstream_t *up, mg_upstream_state_t state, void *data)
{
    ((h_t *)data)->nstate++;
}

static void h_init(h_t *h, const char *name, const char *command, unsigned instances)
{
    memset(h, 0, sizeof *h);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    h->srv.name = (char *)name;
    h->srv.command = (char *)command;
    h->srv.args = h->args;
    h->srv.env = h->env;
    h->srv.instances = instances;
    h->lim.max_inflight_per_upstream = 1024;
    h->lim.max_line_bytes = 16u * 1024u * 1024u;
    h->lim.request_timeout_ms = 10000;
    h->lim.max_request_ms = 600000;
    h->lim.shutdown_grace_ms = 2000;
}

static void h_arg(h_t *h, const char *a)
{
    h->args[h->srv.nargs++] = (char *)a;
    h->args[h->srv.nargs] = NULL;
}

static void h_env(h_t *h, const char *k, const char *v)
{
    h->env[h->srv.nenv].key = (char *)k;
    h->env[h->srv.nenv].value = (char *)v;
    h->env[h->srv.nenv].source = (char *)"literal";
    h->srv.nenv++;
}

/* The sh command line of a test server behind `tee`: every line the child is sent is also written
 * to the file $MG_TEE (h_init_tee). Server arguments may follow. */
#define TEE_TS "tee \"$MG_TEE\" | exec \"$MG_TS\""

/* h as that test server: tee is a mkstemp template ("/tmp/...-XXXXXX"), filled in and created
 * empty here; the caller unlinks it. */
static void h_init_tee(h_t *h, const char *name, char *tee, const char *script)
{
    int fd = mkstemp(tee);
    assert_true(fd >= 0);
    close(fd);
    h_init(h, name, "sh", 1);
    h_arg(h, "-c");
    h_arg(h, script);
    h_env(h, "MG_TEE", tee);
    h_env(h, "MG_TS", testserver);
}

static void h_new(h_t *h)
{
    mg_upstream_opts_t o = {&h->srv, &h->lim, "mcpgate-test", "0.0.1", h->exclusive, NULL, NULL};
    mg_upstream_hooks_t hooks = {on_message_cb, on_state_cb};
    assert_int_equal(mg_upstream_new(&h->loop, &o, &hooks, h, &h->up), 0);
}

static void h_start(h_t *h)
{
    in_api = 1;
    mg_upstream_start(h->up);
    in_api = 0;
}

static void tick_cb(uv_timer_t *t)
{
}

/* Runs the loop until fn(arg) or timeout_ms; returns fn(arg). */
static int run_until(h_t *h, int (*fn)(void *), void *arg, uint64_t timeout_ms)
{
    uv_timer_t tick;
    uv_timer_init(&h->loop, &tick);
    uv_timer_start(&tick, tick_cb, 5, 5);
    uint64_t deadline = uv_hrtime() + timeout_ms * 1000000u;
    while (!fn(arg) && uv_hrtime() < deadline)
        uv_run(&h->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&h->loop, UV_RUN_NOWAIT);
    return fn(arg);
}

static int int_nonzero(void *p)
{
    return *(int *)p != 0;
}

typedef struct counter {
    int *n;
    int target;
} counter_t;

static int counter_reached(void *p)
{
    counter_t *c = p;
    return *c->n >= c->target;
}

static int wait_int(h_t *h, int *n, int target, uint64_t ms)
{
    counter_t c = {n, target};
    return run_until(h, counter_reached, &c, ms);
}

static int all_ready(void *p)
{
    h_t *h = p;
    return mg_upstream_ready_count(h->up) == (h->srv.instances ? h->srv.instances : 1);
}

static int never(void *p)
{
    return 0;
}

static void run_for(h_t *h, uint64_t ms)
{
    run_until(h, never, NULL, ms);
}

static void stopped_cb(mg_upstream_t *up, void *data)
{
    h_t *h = data;
    h->stopped = 1;
    mg_upstream_free(up); /* allowed from stopped_cb */
    h->up = NULL;
}

/* Stops, frees, and checks the loop closes cleanly. */
static void h_finish(h_t *h, uint64_t grace_ms)
{
    if (h->up != NULL) {
        mg_upstream_stop(h->up, grace_ms, stopped_cb, h);
        assert_true(run_until(h, int_nonzero, &h->stopped, grace_ms + 5000));
    }
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
    for (int i = 0; i < h->nmsg; i++)
        json_decref(h->msgs[i]);
}

static void done_cb(mg_upstream_req_t *req, int err, json_t *response, const char *message, void *data)
{
    call_t *c = data;
    assert_false(in_api);
    assert_int_equal(c->done, 0);
    c->done = 1;
    c->err = err;
    c->message = strdup(message ? message : "");
    c->response = json_incref(response);
    c->t_done = uv_hrtime();
    if (err == 0)
        assert_non_null(response);
    else
        assert_null(response);
}

static void related_cb(mg_upstream_req_t *req, mg_upstream_origin_t origin, json_t *msg, void *data)
{
    call_t *c = data;
    assert_int_equal(c->done, 0);
    c->rel_origin = origin;
    if (c->nrelated < 16)
        c->related[c->nrelated] = json_incref(msg);
    c->nrelated++;
    const char *m = json_string_value(json_object_get(msg, "method"));
    if (c->answer_sampling && m != NULL && strcmp(m, "sampling/createMessage") == 0) {
        json_t *r = json_pack("{s:s, s:O, s:{s:s, s:{s:s, s:s}, s:s}}", "jsonrpc", "2.0", "id",
                              json_object_get(msg, "id"), "result", "role", "assistant", "content", "type",
                              "text", "text", "sampled!", "model", "test-model");
        assert_int_equal(mg_upstream_send(c->h->up, origin, r), 0);
        json_decref(r);
    }
}

static void call_reset(call_t *c)
{
    free(c->message);
    json_decref(c->response);
    for (int i = 0; i < c->nrelated && i < 16; i++)
        json_decref(c->related[i]);
    memset(c, 0, sizeof *c);
}

static json_t *tool_call(const char *tool, json_t *args)
{
    return json_pack("{s:s, s:{s:s, s:o}}", "method", "tools/call", "params", "name", tool, "arguments",
                     args ? args : json_object());
}

static int submit(h_t *h, call_t *c, json_t *msg, uint64_t timeout_ms)
{
    c->h = h;
    c->t_start = uv_hrtime();
    in_api = 1;
    int rc = mg_upstream_request(h->up, msg, timeout_ms, done_cb, related_cb, c, &c->req);
    in_api = 0;
    return rc;
}

/* submit() with the caller lending msg's params as text (their dump: canonical), as the gateway
 * does for a client's canonical params (mg_upstream_caller_t.params_text). */
static int submit_lent(h_t *h, call_t *c, json_t *msg, uint64_t timeout_ms)
{
    json_t *params = json_object_get(msg, "params");
    size_t len = 0;
    char *text = mg_json_dump(params, &len);
    assert_non_null(text);
    mg_upstream_caller_t as = {.params_of = params, .params_text = text, .params_len = len};
    c->h = h;
    c->t_start = uv_hrtime();
    in_api = 1;
    int rc = mg_upstream_request_as(h->up, &as, msg, timeout_ms, done_cb, related_cb, c, &c->req);
    in_api = 0;
    free(text); /* lent for the call only */
    return rc;
}

static const char *result_text(const json_t *response)
{
    return json_string_value(json_object_get(
        json_array_get(json_object_get(json_object_get(response, "result"), "content"), 0), "text"));
}

static double ms_since(uint64_t t0, uint64_t t1)
{
    return (double)(t1 - t0) / 1e6;
}

/* Dead: gone, or a zombie (an orphan waits for its reaper; this sandbox's PID 1 never reaps). */
static int process_dead(int pid)
{
    if (kill(pid, 0) == -1 && errno == ESRCH)
        return 1;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return rp != NULL && rp[1] == ' ' && rp[2] == 'Z';
}

static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/* ---- pure parts ---- */

static void test_idtable(void **state)
{
    mg__idtable_t t;
    mg__idtable_init(&t);
    static char marks[5000];
    /* Interleaved inserts and deletes against a reference array. */
    for (int64_t i = 1; i < 5000; i++) {
        assert_int_equal(mg__idtable_put(&t, i, (mg_upstream_req_t *)&marks[i]), 0);
        if (i % 3 == 0)
            assert_ptr_equal(mg__idtable_del(&t, i - 2), &marks[i - 2]);
    }
    for (int64_t i = 1; i < 5000; i++) {
        int deleted = (i + 2) % 3 == 0 && i + 2 < 5000 && i + 2 >= 3;
        mg_upstream_req_t *r = mg__idtable_get(&t, i);
        if (deleted)
            assert_null(r);
        else
            assert_ptr_equal(r, &marks[i]);
    }
    assert_null(mg__idtable_get(&t, 0));
    assert_null(mg__idtable_del(&t, 99999));
    for (int64_t i = 1; i < 5000; i++)
        mg__idtable_del(&t, i);
    assert_int_equal(t.count, 0);
    for (size_t i = 0; i < t.cap; i++)
        assert_null(t.e[i].req);
    mg__idtable_dispose(&t);
}

static int scan_id(const char *s, size_t chunk, int64_t *id)
{
    mg__idscan_t sc;
    mg__idscan_init(&sc);
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i += chunk)
        mg__idscan_feed(&sc, s + i, n - i < chunk ? n - i : chunk);
    return mg__idscan_result(&sc, id);
}

static void test_idscan(void **state)
{
    int64_t id = 0;
    for (size_t chunk = 1; chunk <= 64; chunk *= 4) {
        assert_true(scan_id("{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{\"x\":\"aaaa", chunk, &id));
        assert_int_equal(id, 42);
        assert_true(scan_id(
            "{\"result\":{\"id\":7,\"s\":\"\\\"id\\\":9\"},\"jsonrpc\":\"2.0\", \"id\" : 1234}", chunk, &id));
        assert_int_equal(id, 1234);
        assert_true(scan_id("{\"result\":[1,{\"id\":3}],\"id\":-5", chunk, &id));
        assert_int_equal(id, -5);
        assert_false(scan_id("{\"result\":{\"id\":7}}", chunk, &id));
        assert_false(scan_id("{\"id\":\"str\"}", chunk, &id));
        assert_false(scan_id("{\"id\":1.5}", chunk, &id));
        assert_false(scan_id("[{\"id\":1}]", chunk, &id));
        assert_false(scan_id("{\"i\\u0064\":3}", chunk, &id));
    }
}

typedef struct lines {
    int n;
    char got[8][64];
    int truncated[8];
    int overlong;
    size_t overlong_len;
    int have_id;
    int64_t id;
} lines_t;

static void lines_line(void *ctx, const char *line, size_t len, int truncated)
{
    lines_t *l = ctx;
    if (l->n < 8) {
        snprintf(l->got[l->n], sizeof l->got[0], "%.*s", (int)len, line);
        l->truncated[l->n] = truncated;
    }
    l->n++;
}

static void lines_overlong(void *ctx, size_t len, int have_id, int64_t id)
{
    lines_t *l = ctx;
    l->overlong++;
    l->overlong_len = len;
    l->have_id = have_id;
    l->id = id;
}

static void test_linebuf(void **state)
{
    static const mg__line_ops_t ops = {lines_line, lines_overlong};
    const char *in = "abc\r\n\n{\"id\":77,\"x\":\"0123456789012345678901234567890\"}\nshort\nlast";
    for (size_t chunk = 1; chunk <= strlen(in); chunk++) {
        mg__linebuf_t lb;
        lines_t l;
        memset(&l, 0, sizeof l);
        mg__linebuf_init(&lb, 16, 0);
        for (size_t i = 0; i < strlen(in); i += chunk)
            mg__linebuf_feed(&lb, in + i, strlen(in) - i < chunk ? strlen(in) - i : chunk, &ops, &l);
        mg__linebuf_finish(&lb, &ops, &l);
        mg__linebuf_dispose(&lb);
        assert_int_equal(l.n, 4);
        assert_string_equal(l.got[0], "abc");
        assert_string_equal(l.got[1], "");
        assert_string_equal(l.got[2], "short");
        assert_string_equal(l.got[3], "last");
        assert_int_equal(l.overlong, 1);
        assert_int_equal(l.overlong_len, 47);
        assert_true(l.have_id);
        assert_int_equal(l.id, 77);
    }
    /* cut mode: the first max bytes come through flagged. */
    mg__linebuf_t lb;
    lines_t l;
    memset(&l, 0, sizeof l);
    mg__linebuf_init(&lb, 4, 1);
    mg__linebuf_feed(&lb, "ab", 2, &ops, &l);
    mg__linebuf_feed(&lb, "cdefgh\nij\n", 10, &ops, &l);
    mg__linebuf_finish(&lb, &ops, &l);
    mg__linebuf_dispose(&lb);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.got[0], "abcd");
    assert_true(l.truncated[0]);
    assert_string_equal(l.got[1], "ij");
    assert_false(l.truncated[1]);
    assert_int_equal(l.overlong, 0);
}

static void test_utf8_clean(void **state)
{
    int cut = 0;
    char *s = mg__utf8_clean("a\xff"
                             "b\xc3\xa9"
                             "c\0d\xed\xa0\x80",
                             11, 100, &cut);
    assert_string_equal(s, "a\xEF\xBF\xBD"
                           "b\xc3\xa9"
                           "c\xEF\xBF\xBD"
                           "d\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    assert_false(cut);
    free(s);
    s = mg__utf8_clean("h\xc3\xa9llo", 6, 2, &cut); /* cut inside a sequence: replaced, never split */
    assert_string_equal(s, "h\xEF\xBF\xBD");
    assert_true(cut);
    free(s);
}

static void test_command_resolve(void **state)
{
    mg_server_config_t s;
    memset(&s, 0, sizeof s);
    char *out = NULL;
    s.command = (char *)"sh";
    assert_int_equal(mg__command_resolve(&s, &out), 0);
    assert_true(out[0] == '/');
    free(out);
    s.command = (char *)"mcpgate-no-such-command-xyz";
    assert_int_equal(mg__command_resolve(&s, &out), MG_ENOTFOUND);
    assert_null(out);
    s.command = (char *)"./relative/with/slash";
    assert_int_equal(mg__command_resolve(&s, &out), 0);
    assert_string_equal(out, "./relative/with/slash");
    free(out);
}

/* What `mcpgate check` and the spawner say about a command (mg_upstream_command_check). */
static void test_command_check(void **state)
{
    mg_server_config_t s;
    memset(&s, 0, sizeof s);
    char why[1200];
    s.command = (char *)"sh";
    assert_int_equal(mg_upstream_command_check(&s, why, sizeof why), 0);
    /* A typo: not on the PATH the child gets. */
    s.command = (char *)"npxx-mcpgate-test";
    assert_int_equal(mg_upstream_command_check(&s, why, sizeof why), MG_ENOTFOUND);
    assert_non_null(
        strstr(why, "command 'npxx-mcpgate-test' is not on the PATH the server gets (the gateway's PATH)"));
    /* The server's env PATH is the one searched: sh is not in /nonexistent. */
    mg_kv_t env = {(char *)"PATH", (char *)"/nonexistent", (char *)"literal"};
    s.env = &env;
    s.nenv = 1;
    s.command = (char *)"sh";
    assert_int_equal(mg_upstream_command_check(&s, why, sizeof why), MG_ENOTFOUND);
    assert_non_null(strstr(why, "(the PATH in its env)"));
    s.env = NULL;
    s.nenv = 0;
    /* Arguments inside the command (counted, never quoted: one may be a secret). */
    s.command = (char *)"npx -y @modelcontextprotocol/server-memory --token=s3cr3t";
    assert_int_equal(mg_upstream_command_check(&s, why, sizeof why), MG_ENOTFOUND);
    assert_non_null(strstr(why, "command 'npx ...' has its arguments inside it"));
    assert_non_null(strstr(why, "move the arguments into args: \"command\": \"npx\" and, as \"args\", the 3 "
                                "words after it"));
    assert_null(strstr(why, "s3cr3t"));
    /* ... unless the whole string names an existing file. */
    char dir[] = "/tmp/mcpgate-cmdcheck-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char file[128];
    snprintf(file, sizeof file, "%s/my server", dir);
    FILE *f = fopen(file, "w");
    fputs("#!/bin/sh\n", f);
    fclose(f);
    chmod(file, 0755);
    s.command = file;
    assert_int_equal(mg_upstream_command_check(&s, why, sizeof why), 0);
    /* A path that does not exist. */
    s.command = (char *)"/nonexistent/server";
    assert_int_equal(mg_upstream_command_check(&s, why, sizeof why), MG_ENOTFOUND);
    assert_non_null(strstr(why, "does not exist or is not an executable file"));
    /* Windows entries: "cmd /c ..." in the command, or cmd.exe with "/c" in args. */
    s.command = (char *)"cmd /c npx -y pkg --key=s3cr3t";
    assert_int_equal(mg_upstream_command_check(&s, why, sizeof why), MG_EINVAL);
    assert_non_null(strstr(why, "command 'cmd /c ...' is a Windows cmd.exe entry"));
    assert_non_null(strstr(why, "\"command\": \"npx\" and, as \"args\", the 3 arguments after it"));
    assert_null(strstr(why, "s3cr3t"));
    char *wargs[] = {(char *)"/c", (char *)"npx", (char *)"-y", (char *)"pkg", NULL};
    s.command = (char *)"cmd.exe";
    s.args = wargs;
    s.nargs = 4;
    assert_int_equal(mg_upstream_command_check(&s, why, sizeof why), MG_EINVAL);
    assert_non_null(strstr(why, "command 'cmd.exe' with args [\"/c\", ...] is a Windows cmd.exe entry"));
    assert_non_null(strstr(why, "\"command\": \"npx\" and, as \"args\", the 2 arguments after it"));
    s.args = NULL;
    s.nargs = 0;
    /* sandbox.user: a command beneath a directory that user cannot search (a mode-bit computation;
     * only as root: otherwise switching user is refused before any path matters). */
    mg_sandbox_config_t sb;
    memset(&sb, 0, sizeof sb);
    sb.user = (char *)"nobody";
    sb.uid = 65534;
    sb.gid = 65534;
    s.sandbox = &sb;
    s.command = file;
    chmod(dir, 0700);
    if (geteuid() != 0) {
        assert_int_equal(mg_upstream_command_check(&s, why, sizeof why), 0);
        unlink(file);
        rmdir(dir);
        return;
    }
    assert_int_equal(mg_upstream_command_check(&s, why, sizeof why), MG_EINVAL);
    char want[300];
    snprintf(want, sizeof want,
             "is not reachable by user nobody (uid 65534) (directory '%s' is not searchable)", dir);
    assert_non_null(strstr(why, want));
    chmod(dir, 0755);
    assert_int_equal(mg_upstream_command_check(&s, why, sizeof why), 0);
    chmod(file, 0700); /* reachable, not executable by that user */
    assert_int_equal(mg_upstream_command_check(&s, why, sizeof why), MG_EINVAL);
    assert_non_null(strstr(why, "is not executable by user nobody"));
    chmod(file, 0755);
    /* The landlock paths are opened after the switch too. */
    char sub[128];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    char *ro[] = {sub};
    sb.landlock = 1;
    sb.ro = ro;
    sb.nro = 1;
    chmod(dir, 0700);
    s.command = (char *)"sh";
    assert_int_equal(mg_upstream_command_check(&s, why, sizeof why), MG_EINVAL);
    assert_non_null(strstr(why, "landlock.read path"));
    chmod(dir, 0755);
    assert_int_equal(mg_upstream_command_check(&s, why, sizeof why), 0);
    rmdir(sub);
    unlink(file);
    rmdir(dir);
}

/* ---- against the fixture ---- */

static void test_echo_1000(void **state)
{
    enum { N = 1000 };
    h_t h;
    h_init(&h, "echo", testserver, 2);
    h.lim.max_inflight_per_upstream = 2 * N;
    h_new(&h);
    static call_t calls[2 * N];
    static char texts[2 * N][32];
    int ndone = 0;

    /* Round 1: submitted before start, so all of them wait in the queue. */
    uint64_t t0 = uv_hrtime();
    for (int i = 0; i < N; i++) {
        snprintf(texts[i], sizeof texts[i], "message-%d", i);
        calls[i].expect_text = texts[i];
        assert_int_equal(submit(&h, &calls[i], tool_call("echo", json_pack("{s:s}", "message", texts[i])), 0),
                         0);
    }
    assert_int_equal(mg_upstream_inflight(h.up), N);
    assert_int_equal(mg_upstream_state(h.up), MG_UPSTREAM_STARTING);
    h_start(&h);
    uint64_t deadline = uv_hrtime() + 20000000000ull;
    while (uv_hrtime() < deadline) {
        ndone = 0;
        for (int i = 0; i < N; i++)
            ndone += calls[i].done;
        if (ndone == N)
            break;
        uv_run(&h.loop, UV_RUN_ONCE);
    }
    uint64_t t1 = uv_hrtime();
    assert_int_equal(ndone, N);
    assert_true(run_until(&h, all_ready, &h, 10000));
    assert_int_equal(mg_upstream_state(h.up), MG_UPSTREAM_READY);
    assert_non_null(mg_upstream_init_result(h.up));

    /* Round 2: both children ready; least-loaded spreads the burst. */
    uint64_t t2 = uv_hrtime();
    for (int i = N; i < 2 * N; i++) {
        snprintf(texts[i], sizeof texts[i], "second-%d \xc3\xa9\\\"", i);
        calls[i].expect_text = texts[i];
        assert_int_equal(submit(&h, &calls[i], tool_call("echo", json_pack("{s:s}", "message", texts[i])), 0),
                         0);
    }
    deadline = uv_hrtime() + 20000000000ull;
    while (uv_hrtime() < deadline) {
        ndone = 0;
        for (int i = N; i < 2 * N; i++)
            ndone += calls[i].done;
        if (ndone == N)
            break;
        uv_run(&h.loop, UV_RUN_ONCE);
    }
    uint64_t t3 = uv_hrtime();
    assert_int_equal(ndone, N);

    int per_child[2] = {0, 0};
    for (int i = 0; i < 2 * N; i++) {
        assert_int_equal(calls[i].err, 0);
        const char *txt = result_text(calls[i].response);
        assert_non_null(txt);
        assert_string_equal(txt, calls[i].expect_text);
    }
    /* Where requests go: a burst on two idle children, origins read while the handles are valid. */
    static call_t burst[64];
    for (int i = 0; i < 64; i++)
        assert_int_equal(submit(&h, &burst[i], tool_call("echo", json_pack("{s:s}", "message", "b")), 0), 0);
    for (int i = 0; i < 64; i++) {
        mg_upstream_origin_t o;
        assert_int_equal(mg_upstream_req_origin(burst[i].req, &o), 0);
        assert_true(o.child < 2);
        assert_int_equal(o.generation, 1);
        per_child[o.child]++;
    }
    int nb = 0;
    while (nb < 64) {
        uv_run(&h.loop, UV_RUN_ONCE);
        nb = 0;
        for (int i = 0; i < 64; i++)
            nb += burst[i].done;
    }
    assert_true(per_child[0] >= 16 && per_child[1] >= 16);
    assert_int_equal(mg_upstream_inflight(h.up), 0);
    print_message("1000 echoes queued before start (2 instances, incl. spawn+initialize): %.1f ms\n",
                  ms_since(t0, t1));
    print_message("1000 concurrent echoes, 2 ready instances: %.1f ms (%.0f req/s); burst split %d/%d\n",
                  ms_since(t2, t3), N / (ms_since(t2, t3) / 1000.0), per_child[0], per_child[1]);
    for (int i = 0; i < 2 * N; i++)
        call_reset(&calls[i]);
    for (int i = 0; i < 64; i++)
        call_reset(&burst[i]);
    assert_int_equal(mg_upstream_restarts(h.up), 0);
    h_finish(&h, 2000);
}

/* Messages far above the pipe buffer: partial uv_try_write + queued uv_write, line buffer growth. */
static void test_large_messages(void **state)
{
    h_t h;
    h_init(&h, "large", testserver, 1);
    h_new(&h);
    h_start(&h);
    assert_true(run_until(&h, all_ready, &h, 10000));
    enum { SIZE = 3 * 1024 * 1024, NCALLS = 4 };
    static char big[SIZE + 1];
    for (size_t i = 0; i < SIZE; i++)
        big[i] = (char)('a' + i % 26);
    big[SIZE] = '\0';
    call_t c[NCALLS];
    memset(c, 0, sizeof c);
    for (int i = 0; i < NCALLS; i++) {
        big[0] = (char)('A' + i);
        assert_int_equal(submit(&h, &c[i], tool_call("echo", json_pack("{s:s}", "message", big)), 0), 0);
    }
    int n = 0;
    for (int k = 0; k < 500 && n < NCALLS; k++) {
        run_for(&h, 10);
        n = 0;
        for (int i = 0; i < NCALLS; i++)
            n += c[i].done;
    }
    assert_int_equal(n, NCALLS);
    for (int i = 0; i < NCALLS; i++) {
        assert_int_equal(c[i].err, 0);
        const char *t = result_text(c[i].response);
        assert_non_null(t);
        assert_int_equal(strlen(t), SIZE);
        assert_int_equal(t[0], 'A' + i);
        assert_memory_equal(t + 1, big + 1, SIZE - 1);
        call_reset(&c[i]);
    }
    h_finish(&h, 2000);
}

static void test_sleep_timeout_and_progress(void **state)
{
    char tee[] = "/tmp/mg-upstream-tee-XXXXXX";
    h_t h;
    h_init_tee(&h, "sleepy", tee, TEE_TS);
    h.lim.max_request_ms = 1500;
    h_new(&h);
    h_start(&h);
    assert_true(run_until(&h, all_ready, &h, 10000));

    /* 1. plain timeout -> MG_ETIMEOUT, notifications/cancelled sent, the child stays usable */
    call_t a = {0};
    assert_int_equal(submit(&h, &a, tool_call("sleep", json_pack("{s:i}", "ms", 5000)), 200), 0);
    assert_true(wait_int(&h, &a.done, 1, 3000));
    assert_int_equal(a.err, MG_ETIMEOUT);
    assert_string_equal(a.message, "upstream 'sleepy' did not answer within 200 ms");
    double el = ms_since(a.t_start, a.t_done);
    assert_true(el >= 190 && el < 1000);
    run_for(&h, 100);
    assert_true(file_contains(tee,
                              "\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":2,\"reason\":"
                              "\"timeout\"}"));

    /* 2. progress resets the idle timeout and comes back with the caller's token */
    call_t b = {0};
    json_t *m =
        json_pack("{s:s, s:{s:s, s:{s:i, s:i}, s:{s:s}}}", "method", "tools/call", "params", "name", "sleep",
                  "arguments", "ms", 700, "progressEveryMs", 100, "_meta", "progressToken", "tok-B");
    assert_int_equal(submit(&h, &b, m, 300), 0);
    assert_true(wait_int(&h, &b.done, 1, 3000));
    assert_int_equal(b.err, 0);
    assert_string_equal(result_text(b.response), "slept 700");
    assert_true(b.nrelated >= 3);
    for (int i = 0; i < b.nrelated && i < 16; i++) {
        assert_string_equal(json_string_value(json_object_get(b.related[i], "method")),
                            "notifications/progress");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(b.related[i], "params"), "progressToken")),
            "tok-B");
    }
    /* the child saw our token (its upstream id), not the caller's */
    assert_true(file_contains(tee, "\"progressToken\":3"));
    assert_false(file_contains(tee, "tok-B"));

    /* 2b. the same with the params lent as text: the token is still replaced (the text holds
     * "_meta", so the line is built, not copied) */
    call_t b2 = {0};
    m = json_pack("{s:s, s:{s:s, s:{s:i, s:i}, s:{s:s}}}", "method", "tools/call", "params", "name", "sleep",
                  "arguments", "ms", 300, "progressEveryMs", 100, "_meta", "progressToken", "tok-L");
    assert_int_equal(submit_lent(&h, &b2, m, 1000), 0);
    assert_true(wait_int(&h, &b2.done, 1, 3000));
    assert_int_equal(b2.err, 0);
    assert_true(b2.nrelated >= 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(b2.related[0], "params"), "progressToken")),
        "tok-L");
    assert_true(file_contains(tee, "\"progressToken\":4"));
    assert_false(file_contains(tee, "tok-L"));
    call_reset(&b2);

    /* 3. progress never extends past limits.max_request_ms */
    call_t c = {0};
    m = json_pack("{s:s, s:{s:s, s:{s:i, s:i}, s:{s:i}}}", "method", "tools/call", "params", "name", "sleep",
                  "arguments", "ms", 5000, "progressEveryMs", 100, "_meta", "progressToken", 1);
    assert_int_equal(submit(&h, &c, m, 300), 0);
    assert_true(wait_int(&h, &c.done, 1, 4000));
    assert_int_equal(c.err, MG_ETIMEOUT);
    assert_string_equal(c.message, "upstream 'sleepy' did not finish within 1500 ms (limits.maxRequestMs)");
    el = ms_since(c.t_start, c.t_done);
    assert_true(el >= 1450 && el < 2500);

    /* 4. the same caller token on two concurrent requests stays apart */
    call_t p1 = {0}, p2 = {0};
    assert_int_equal(
        submit(&h, &p1,
               json_pack("{s:s, s:{s:s, s:{}, s:{s:s}}}", "method", "tools/call", "params", "name",
                         "test_tool_with_progress", "arguments", "_meta", "progressToken", "same"),
               0),
        0);
    assert_int_equal(
        submit(&h, &p2,
               json_pack("{s:s, s:{s:s, s:{}, s:{s:s}}}", "method", "tools/call", "params", "name",
                         "test_tool_with_progress", "arguments", "_meta", "progressToken", "same"),
               0),
        0);
    assert_true(wait_int(&h, &p2.done, 1, 3000));
    assert_true(wait_int(&h, &p1.done, 1, 3000));
    assert_int_equal(p1.nrelated, 3);
    assert_int_equal(p2.nrelated, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(p1.related[i], "params"), "progressToken")),
            "same");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(p2.related[i], "params"), "progressToken")),
            "same");
    }
    call_reset(&a);
    call_reset(&b);
    call_reset(&c);
    call_reset(&p1);
    call_reset(&p2);
    h_finish(&h, 2000);
    unlink(tee);
}

/* mg_upstream_call(): the request given by its parts reaches the child as the same line a message
 * would have made, on each of its paths: queued before the child is ready (the message is built),
 * written at once from the parts (lent text or dumped params), NULL params, a progress token to
 * replace (the message is built); no method is refused without a callback. */
static int submit_call(h_t *h, call_t *c, const char *method, json_t *params, const mg_upstream_caller_t *as)
{
    c->h = h;
    c->t_start = uv_hrtime();
    in_api = 1;
    int rc = mg_upstream_call(h->up, as, method, params, 0, done_cb, related_cb, c, &c->req);
    in_api = 0;
    return rc;
}

static void test_call_parts(void **state)
{
    (void)state;
    char tee[] = "/tmp/mg-upstream-tee-XXXXXX";
    h_t h;
    h_init_tee(&h, "parts", tee, TEE_TS);
    h_new(&h);
    /* queued: no child yet */
    call_t q = {0};
    q.expect_text = "queued";
    assert_int_equal(submit_call(&h, &q, "tools/call",
                                 json_pack("{s:s,s:{s:s}}", "name", "echo", "arguments", "message", "queued"),
                                 NULL),
                     0);
    h_start(&h);
    assert_true(wait_int(&h, &q.done, 1, 10000));
    assert_int_equal(q.err, 0);
    assert_string_equal(result_text(q.response), "queued");
    /* written at once from the parts, the params dumped */
    call_t d = {0};
    assert_int_equal(
        submit_call(&h, &d, "tools/call",
                    json_pack("{s:s,s:{s:s}}", "name", "echo", "arguments", "message", "dumped \"q\""), NULL),
        0);
    assert_true(wait_int(&h, &d.done, 1, 5000));
    assert_int_equal(d.err, 0);
    assert_string_equal(result_text(d.response), "dumped \"q\"");
    /* written at once, the params lent as text (what the gateway lends: their dump) */
    call_t l = {0};
    json_t *lp = json_pack("{s:s,s:{s:s}}", "name", "echo", "arguments", "message", "lent");
    size_t len = 0;
    char *text = mg_json_dump(lp, &len);
    mg_upstream_caller_t as = {.params_of = lp, .params_text = text, .params_len = len, .params_no_meta = 1};
    assert_int_equal(submit_call(&h, &l, "tools/call", lp, &as), 0);
    free(text); /* lent for the call only */
    assert_true(wait_int(&h, &l.done, 1, 5000));
    assert_int_equal(l.err, 0);
    assert_string_equal(result_text(l.response), "lent");
    /* NULL params: {} */
    call_t n = {0};
    assert_int_equal(submit_call(&h, &n, "tools/list", NULL, NULL), 0);
    assert_true(wait_int(&h, &n.done, 1, 5000));
    assert_int_equal(n.err, 0);
    assert_non_null(json_object_get(json_object_get(n.response, "result"), "tools"));
    /* a progress token: replaced by ours in the line, the caller's on the way back */
    call_t p = {0};
    assert_int_equal(submit_call(&h, &p, "tools/call",
                                 json_pack("{s:s,s:{},s:{s:s}}", "name", "test_tool_with_progress",
                                           "arguments", "_meta", "progressToken", "tok-P"),
                                 NULL),
                     0);
    assert_true(wait_int(&h, &p.done, 1, 5000));
    assert_int_equal(p.err, 0);
    assert_true(p.nrelated >= 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(p.related[0], "params"), "progressToken")),
        "tok-P");
    /* no method: refused, params released, no callback */
    call_t bad = {0};
    assert_int_equal(submit_call(&h, &bad, NULL, json_object(), NULL), MG_EINVAL);
    run_for(&h, 50);
    assert_int_equal(bad.done, 0);
    /* the lines the child got: the message's bytes in each case (ids 2.. after initialize's 1) */
    assert_true(file_contains(tee, "{\"jsonrpc\":\"2.0\",\"method\":\"tools/"
                                   "call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":"
                                   "\"queued\"}},\"id\":"));
    assert_true(file_contains(tee, "\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"dumped "
                                   "\\\"q\\\"\"}},\"id\":"));
    assert_true(file_contains(tee, "{\"jsonrpc\":\"2.0\",\"method\":\"tools/"
                                   "call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":"
                                   "\"lent\"}},\"id\":"));
    assert_true(file_contains(tee, "{\"jsonrpc\":\"2.0\",\"method\":\"tools/list\",\"params\":{},\"id\":"));
    assert_false(file_contains(tee, "tok-P"));
    call_reset(&q);
    call_reset(&d);
    call_reset(&l);
    call_reset(&n);
    call_reset(&p);
    h_finish(&h, 2000);
    unlink(tee);
}

static void test_crash_then_restart(void **state)
{
    h_t h;
    h_init(&h, "crashy", testserver, 1);
    h_new(&h);
    h_start(&h);
    assert_true(run_until(&h, all_ready, &h, 10000));
    int pids[2];
    assert_int_equal(mg_upstream_pids(h.up, pids, 2), 1);

    call_t slow = {0}, boom = {0};
    assert_int_equal(submit(&h, &slow, tool_call("sleep", json_pack("{s:i}", "ms", 5000)), 0), 0);
    assert_int_equal(submit(&h, &boom, tool_call("crash", NULL), 0), 0);
    assert_true(wait_int(&h, &slow.done, 1, 3000));
    assert_true(boom.done);
    assert_int_equal(slow.err, MG_EUPSTREAM);
    assert_int_equal(boom.err, MG_EUPSTREAM);
    assert_string_equal(slow.message, "upstream 'crashy' exited with status 3 while handling this request");
    assert_string_equal(boom.message, slow.message);
    assert_true(ms_since(slow.t_start, slow.t_done) < 1000);
    assert_true(mg_upstream_state(h.up) == MG_UPSTREAM_BACKOFF ||
                mg_upstream_state(h.up) == MG_UPSTREAM_STARTING);
    assert_string_equal(mg_upstream_last_error(h.up), "upstream 'crashy' exited with status 3");
    assert_int_equal(kill(pids[0], 0), -1);

    /* Sent during backoff: queued, then answered by the restarted child. */
    call_t next = {0};
    next.expect_text = "after";
    assert_int_equal(submit(&h, &next, tool_call("echo", json_pack("{s:s}", "message", "after")), 0), 0);
    assert_true(wait_int(&h, &next.done, 1, 5000));
    assert_int_equal(next.err, 0);
    assert_string_equal(result_text(next.response), "after");
    assert_int_equal(mg_upstream_restarts(h.up), 1);
    call_t again = {0};
    assert_int_equal(submit(&h, &again, tool_call("echo", json_pack("{s:s}", "message", "x")), 0), 0);
    mg_upstream_origin_t o;
    assert_int_equal(mg_upstream_req_origin(again.req, &o), 0);
    assert_int_equal(o.child, 0);
    assert_int_equal(o.generation, 2);
    assert_true(wait_int(&h, &again.done, 1, 3000));
    call_reset(&slow);
    call_reset(&boom);
    call_reset(&next);
    call_reset(&again);
    h_finish(&h, 2000);
}

static void test_command_not_found(void **state)
{
    h_t h;
    h_init(&h, "ghost", "mcpgate-no-such-command-xyz", 1);
    h_new(&h);
    call_t a = {0}, b = {0}, c = {0};
    assert_int_equal(submit(&h, &a, tool_call("echo", NULL), 0), 0);
    assert_int_equal(submit(&h, &b, tool_call("echo", NULL), 0), 0);
    h_start(&h); /* fails inside start: completions are deferred, never inside the call */
    assert_false(a.done);
    assert_true(wait_int(&h, &b.done, 1, 1000));
    /* the client is told in its terms; the operator's detail is in last_error (and the log) */
    const char *want = "the 'ghost' server could not be started; ask the gateway's operator";
    assert_int_equal(a.err, MG_ESPAWN);
    assert_string_equal(a.message, want);
    assert_string_equal(b.message, want);
    assert_string_equal(
        mg_upstream_last_error(h.up),
        "upstream 'ghost': command 'mcpgate-no-such-command-xyz' is not on the PATH the server "
        "gets (the gateway's PATH)");
    assert_int_equal(mg_upstream_state(h.up), MG_UPSTREAM_BACKOFF);
    /* During backoff: queued until the next attempt (100 ms later) fails too. */
    assert_int_equal(submit(&h, &c, tool_call("echo", NULL), 0), 0);
    assert_false(c.done);
    assert_true(wait_int(&h, &c.done, 1, 2000));
    assert_int_equal(c.err, MG_ESPAWN);
    assert_true(ms_since(c.t_start, c.t_done) < 1000);
    assert_true(mg_upstream_restarts(h.up) >= 1);
    call_reset(&a);
    call_reset(&b);
    call_reset(&c);
    h_finish(&h, 500);
}

static void test_bad_cwd(void **state)
{
    h_t h;
    h_init(&h, "nocwd", testserver, 1);
    h.srv.cwd = (char *)"/nonexistent/dir";
    h_new(&h);
    call_t a = {0};
    assert_int_equal(submit(&h, &a, tool_call("echo", NULL), 0), 0);
    h_start(&h);
    assert_true(wait_int(&h, &a.done, 1, 1000));
    assert_int_equal(a.err, MG_ESPAWN);
    assert_string_equal(a.message, "the 'nocwd' server could not be started; ask the gateway's operator");
    assert_non_null(strstr(mg_upstream_last_error(h.up), "(cwd '/nonexistent/dir')"));
    call_reset(&a);
    h_finish(&h, 500);
}

static void test_fail_init(void **state)
{
    h_t h;
    h_init(&h, "failer", testserver, 1);
    h_arg(&h, "--fail-init");
    h_new(&h);
    call_t a = {0}, b = {0};
    assert_int_equal(submit(&h, &a, tool_call("echo", NULL), 0), 0);
    assert_int_equal(submit(&h, &b, tool_call("echo", NULL), 0), 0);
    h_start(&h);
    assert_true(wait_int(&h, &b.done, 1, 3000));
    assert_true(a.done);
    /* the client hears what happened in its terms; the operator's sentence is in last_error */
    const char *want = "the 'failer' server failed to start (exit status 2); ask the gateway's operator";
    assert_int_equal(a.err, MG_EUPSTREAMDOWN);
    assert_string_equal(a.message, want);
    assert_string_equal(b.message, want);
    assert_string_equal(mg_upstream_client_error(h.up), want);
    assert_string_equal(mg_upstream_last_error(h.up),
                        "upstream 'failer' exited with status 2 during initialize");
    /* its last stderr lines are kept for /readyz */
    json_t *tail = mg_upstream_last_stderr(h.up);
    assert_true(json_is_array(tail) && json_array_size(tail) >= 1);
    assert_non_null(
        strstr(json_string_value(json_array_get(tail, json_array_size(tail) - 1)), "--fail-init"));
    assert_null(mg_upstream_init_result(h.up));
    call_reset(&a);
    call_reset(&b);
    h_finish(&h, 500);
}

static void test_stop_kills_children(void **state)
{
    h_t h;
    h_init(&h, "stoppy", testserver, 2);
    h_new(&h);
    h_start(&h);
    assert_true(run_until(&h, all_ready, &h, 10000));
    int pids[4];
    assert_int_equal(mg_upstream_pids(h.up, pids, 4), 2);
    call_t a = {0}, q = {0};
    assert_int_equal(submit(&h, &a, tool_call("sleep", json_pack("{s:i}", "ms", 60000)), 0), 0);
    run_for(&h, 50);
    uint64_t t0 = uv_hrtime();
    mg_upstream_stop(h.up, 3000, stopped_cb, &h);
    assert_true(a.done); /* failed inside stop */
    assert_int_equal(a.err, MG_ESHUTDOWN);
    assert_string_equal(a.message, "gateway is shutting down");
    assert_int_equal(mg_upstream_state(h.up), MG_UPSTREAM_STOPPED);
    assert_int_equal(submit(&h, &q, tool_call("echo", NULL), 0), MG_ECLOSED);
    assert_true(run_until(&h, int_nonzero, &h.stopped, 5000));
    assert_true(ms_since(t0, uv_hrtime()) < 1500); /* SIGTERM was enough */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(kill(pids[i], 0), -1);
        assert_int_equal(errno, ESRCH);
    }
    assert_false(q.done);
    call_reset(&a);
    h_finish(&h, 0);
}

static void test_sigterm_ignored(void **state)
{
    char pidfile[] = "/tmp/mg-upstream-pid-XXXXXX";
    int fd = mkstemp(pidfile);
    assert_true(fd >= 0);
    close(fd);
    h_t h;
    h_init(&h, "stubborn", "sh", 1);
    h_arg(&h, "-c");
    h_arg(&h, "trap '' TERM; sleep 100 & echo $! > \"$MG_PIDFILE\"; wait; wait");
    h_env(&h, "MG_PIDFILE", pidfile);
    h_new(&h);
    h_start(&h);
    int pids[1];
    assert_int_equal(mg_upstream_pids(h.up, pids, 1), 1);
    int grandchild = 0;
    for (int i = 0; i < 200 && grandchild == 0; i++) {
        run_for(&h, 10);
        FILE *f = fopen(pidfile, "r");
        if (f != NULL) {
            if (fscanf(f, "%d", &grandchild) != 1)
                grandchild = 0;
            fclose(f);
        }
    }
    assert_true(grandchild > 0);
    assert_int_equal(kill(grandchild, 0), 0);
    uint64_t t0 = uv_hrtime();
    mg_upstream_stop(h.up, 300, stopped_cb, &h);
    assert_true(run_until(&h, int_nonzero, &h.stopped, 5000));
    double el = ms_since(t0, uv_hrtime());
    assert_true(el >= 290 && el < 2000);
    assert_int_equal(kill(pids[0], 0), -1);
    for (int i = 0; i < 100 && !process_dead(grandchild); i++)
        usleep(10000);
    assert_true(process_dead(grandchild));
    print_message("SIGTERM-ignoring child and grandchild killed after %.0f ms (grace 300 ms)\n", el);
    h_finish(&h, 0);
    unlink(pidfile);
}

static void test_env_isolation(void **state)
{
    setenv("MG_SECRET_TEST", "hunter2", 1);
    h_t h;
    h_init(&h, "envy", testserver, 1);
    h_env(&h, "MG_DECLARED_TEST", "visible");
    h_new(&h);
    h_start(&h);
    call_t a = {0};
    assert_int_equal(submit(&h, &a, tool_call("get_env", NULL), 0), 0);
    assert_true(wait_int(&h, &a.done, 1, 5000));
    assert_int_equal(a.err, 0);
    json_t *env = json_loads(result_text(a.response), 0, NULL);
    assert_non_null(env);
    assert_string_equal(json_string_value(json_object_get(env, "MG_DECLARED_TEST")), "visible");
    assert_null(json_object_get(env, "MG_SECRET_TEST"));
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v)
    {
        int ok =
            !strcmp(k, "MG_DECLARED_TEST") || !strcmp(k, "PATH") || !strcmp(k, "HOME") || !strcmp(k, "LANG");
        if (!ok)
            print_error("unexpected variable in child env: %s\n", k);
        assert_true(ok);
    }
    if (getenv("PATH") != NULL)
        assert_string_equal(json_string_value(json_object_get(env, "PATH")), getenv("PATH"));
    json_decref(env);
    call_reset(&a);
    unsetenv("MG_SECRET_TEST");
    h_finish(&h, 2000);
}

static void test_busy_and_cancel(void **state)
{
    char tee[] = "/tmp/mg-upstream-tee-XXXXXX";
    h_t h;
    h_init_tee(&h, "busy", tee, TEE_TS);
    h.lim.max_inflight_per_upstream = 3;
    h_new(&h);
    call_t q = {0}; /* queued before start, cancelled while queued */
    assert_int_equal(submit(&h, &q, tool_call("echo", NULL), 0), 0);
    mg_upstream_cancel(q.req, NULL);
    assert_true(q.done);
    assert_int_equal(q.err, MG_ECANCELLED);
    h_start(&h);
    assert_true(run_until(&h, all_ready, &h, 10000));
    call_t c[4];
    memset(c, 0, sizeof c);
    for (int i = 0; i < 3; i++)
        assert_int_equal(submit(&h, &c[i], tool_call("sleep", json_pack("{s:i}", "ms", 10000)), 0), 0);
    assert_int_equal(submit(&h, &c[3], tool_call("echo", NULL), 0), MG_EBUSY);
    assert_null(c[3].req);
    mg_upstream_cancel(c[1].req, "user gave up");
    assert_true(c[1].done);
    assert_int_equal(c[1].err, MG_ECANCELLED);
    mg_upstream_cancel(NULL, NULL); /* NULL is a no-op */
    memset(&c[3], 0, sizeof c[3]);
    assert_int_equal(submit(&h, &c[3], tool_call("echo", json_pack("{s:s}", "message", "fits")), 0), 0);
    assert_true(wait_int(&h, &c[3].done, 1, 3000));
    assert_int_equal(c[3].err, 0);
    run_for(&h, 100);
    assert_true(file_contains(tee,
                              "\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":3,\"reason\":"
                              "\"user gave up\"}"));
    assert_false(c[0].done);
    h_finish(&h, 2000); /* fails c[0] and c[2] with MG_ESHUTDOWN */
    assert_int_equal(c[0].err, MG_ESHUTDOWN);
    assert_int_equal(c[2].err, MG_ESHUTDOWN);
    for (int i = 0; i < 4; i++)
        call_reset(&c[i]);
    call_reset(&q);
    unlink(tee);
}

static void test_server_requests(void **state)
{
    h_t h;
    h_init(&h, "sampler", testserver, 1);
    h_new(&h);
    h_start(&h);
    assert_true(run_until(&h, all_ready, &h, 10000));
    /* The child names its request (relatedRequestId hint): its related_cb gets it and answers. */
    call_t a = {0};
    a.answer_sampling = 1;
    assert_int_equal(submit(&h, &a, tool_call("test_sampling", json_pack("{s:s}", "prompt", "hi")), 0), 0);
    assert_true(wait_int(&h, &a.done, 1, 3000));
    assert_int_equal(a.err, 0);
    assert_true(a.nrelated >= 1);
    assert_string_equal(json_string_value(json_object_get(a.related[0], "method")), "sampling/createMessage");
    assert_non_null(json_object_get(a.response, "result"));
    /* Two in flight, and the child names the request it serves (io.mcpgate/relatedRequestId):
     * attributed exactly. */
    call_t s = {0}, b = {0};
    b.answer_sampling = 1;
    assert_int_equal(submit(&h, &s, tool_call("sleep", json_pack("{s:i}", "ms", 10000)), 0), 0);
    assert_int_equal(submit(&h, &b, tool_call("test_sampling", json_pack("{s:s}", "prompt", "hi")), 0), 0);
    assert_true(wait_int(&h, &b.done, 1, 3000));
    assert_true(b.nrelated >= 1);
    assert_int_equal(s.nrelated, 0);
    assert_int_equal(h.nmsg, 0);
    h_finish(&h, 2000);
    call_reset(&a);
    call_reset(&s);
    call_reset(&b);

    /* A plain 2025 child gives no hint: with two in flight it cannot be attributed, so it goes to
     * on_message_cb; a request marked as waiting for client input does not count. */
    h_init(&h, "sampler", testserver, 1);
    h_arg(&h, "--no-hints");
    h_new(&h);
    h_start(&h);
    assert_true(run_until(&h, all_ready, &h, 10000));
    memset(&s, 0, sizeof s);
    memset(&b, 0, sizeof b);
    assert_int_equal(submit(&h, &s, tool_call("sleep", json_pack("{s:i}", "ms", 10000)), 0), 0);
    assert_int_equal(submit(&h, &b, tool_call("test_sampling", json_pack("{s:s}", "prompt", "hi")), 0), 0);
    assert_true(wait_int(&h, &h.nmsg, 1, 3000));
    assert_string_equal(json_string_value(json_object_get(h.msgs[0], "method")), "sampling/createMessage");
    assert_int_equal(b.nrelated, 0);
    assert_int_equal(s.nrelated, 0);
    /* A stale origin is refused. */
    mg_upstream_origin_t stale = h.msg_origin[0];
    stale.generation++;
    assert_int_equal(mg_upstream_send(h.up, stale, h.msgs[0]), MG_ECLOSED);
    h_finish(&h, 2000);
    assert_true(s.done && b.done);
    call_reset(&a);
    call_reset(&s);
    call_reset(&b);
}

/* Without a hint, "the only request in flight" is evidence on an exclusive pool (one client) and
 * not on a shared one: there a timer in the server may speak for another client. Initialize
 * declares roots.listChanged only to an exclusive pool (one client's roots). */
static void test_attribution_evidence(void **state)
{
    for (int exclusive = 0; exclusive <= 1; exclusive++) {
        char tee[] = "/tmp/mg-upstream-tee-XXXXXX";
        h_t h;
        h_init_tee(&h, "sampler", tee, TEE_TS " --no-hints");
        h.exclusive = exclusive;
        h_new(&h);
        h_start(&h);
        assert_true(run_until(&h, all_ready, &h, 10000));
        for (int i = 0; i < 50 && !file_contains(tee, "\"clientInfo\""); i++)
            run_for(&h, 20); /* tee writes the file after passing the line on */
        assert_true(file_contains(tee, "\"sampling\":{}"));
        assert_true(file_contains(tee, "\"elicitation\":{"));
        assert_true(file_contains(tee, "\"roots\":{"));
        assert_int_equal(file_contains(tee, "\"roots\":{\"listChanged\":true}"), exclusive);
        call_t a = {0};
        a.answer_sampling = 1;
        assert_int_equal(submit(&h, &a, tool_call("test_sampling", json_pack("{s:s}", "prompt", "hi")), 0),
                         0);
        if (exclusive) {
            assert_true(wait_int(&h, &a.done, 1, 3000));
            assert_true(a.nrelated >= 1);
            assert_int_equal(h.nmsg, 0);
        } else {
            assert_true(wait_int(&h, &h.nmsg, 1, 3000));
            assert_string_equal(json_string_value(json_object_get(h.msgs[0], "method")),
                                "sampling/createMessage");
            assert_int_equal(a.nrelated, 0);
        }
        h_finish(&h, 2000);
        call_reset(&a);
        unlink(tee);
    }
}

/* Secrets never reach the log or /readyz through a child's stderr. */
static void test_mask_secrets(void **state)
{
    mg_server_config_t srv;
    memset(&srv, 0, sizeof srv);
    mg_kv_t env[2] = {{(char *)"API_KEY", (char *)"s3cr3t-value", (char *)"literal"},
                      {(char *)"DEBUG", (char *)"1", (char *)"literal"}};
    srv.env = env;
    srv.nenv = 2;
    char *m = mg__mask_secrets(&srv, "key=s3cr3t-value debug=1 auth: Bearer abc.def-ghi x");
    assert_string_equal(m, "key=*** debug=1 auth: Bearer *** x");
    free(m);
    m = mg__mask_secrets(&srv, "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl end");
    assert_string_equal(m, "token *** end");
    free(m);
    m = mg__mask_secrets(NULL, "nothing secret here");
    assert_string_equal(m, "nothing secret here");
    free(m);
}

/* ---- framing edge cases against a /bin/sh fake ---- */

static const char fake_script[] =
    "while IFS= read -r line; do\n"
    "  id=$(printf '%s\\n' \"$line\" | sed -n 's/.*\"id\":\\([0-9][0-9]*\\).*/\\1/p')\n"
    "  case \"$line\" in\n"
    "  *'\"method\":\"initialize\"'*)\n"
    "    printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"protocolVersion\":\"2025-11-25\","
    "\"capabilities\":{},\"serverInfo\":{\"name\":\"fake\",\"version\":\"1\"}}}\\n' \"$id\";;\n"
    "  *'\"method\":\"big\"'*)\n"
    "    printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"x\":\"' \"$id\"; head -c 200000 /dev/zero | tr "
    "'\\0' a;"
    " printf '\"}}\\n';;\n"
    "  *'\"method\":\"bigtail\"'*)\n"
    "    printf '{\"result\":{\"x\":\"'; head -c 200000 /dev/zero | tr '\\0' a;"
    " printf '\"},\"jsonrpc\":\"2.0\",\"id\":%s}\\n' \"$id\";;\n"
    "  *'\"method\":\"junk\"'*)\n"
    "    printf 'this is not "
    "json\\n[1,2]\\n\\n{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"ok\":true}}\\r\\n' \"$id\";;\n"
    "  *'\"method\":\"notify\"'*)\n"
    "    printf '{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\","
    "\"data\":\"hi\"}}\\n{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}\\n' \"$id\";;\n"
    "  *'\"method\":\"pingme\"'*)\n"
    "    printf '{\"jsonrpc\":\"2.0\",\"id\":\"srv-1\",\"method\":\"ping\"}\\n'; IFS= read -r answer;\n"
    "    case \"$answer\" in *'\"id\":\"srv-1\",\"result\":{}'*) ok=true;; *) ok=false;; esac\n"
    "    printf '{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"pong\":%s}}\\n' \"$id\" \"$ok\";;\n"
    "  *'\"method\":\"stderr\"'*)\n"
    "    printf 'line one\\nline \\377 two\\n' >&2; printf "
    "'{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{}}\\n' \"$id\";;\n"
    "  *'\"method\":\"closeout\"'*)\n"
    "    exec >&-; sleep 100;;\n"
    "  esac\n"
    "done\n";

static void test_fake_framing(void **state)
{
    h_t h;
    h_init(&h, "fake", "sh", 1);
    h_arg(&h, "-c");
    h_arg(&h, fake_script);
    h.lim.max_line_bytes = 65536;
    h.exclusive = 1; /* one client: an unrelated notification goes to the only request in flight */
    h_new(&h);
    h_start(&h);
    assert_true(run_until(&h, all_ready, &h, 5000));

    /* over-long response, id first (Python SDK order) and id last (TypeScript SDK order): the
     * request fails at once instead of at its timeout */
    const char *big[] = {"big", "bigtail"};
    for (int i = 0; i < 2; i++) {
        call_t a = {0};
        assert_int_equal(submit(&h, &a, json_pack("{s:s}", "method", big[i]), 5000), 0);
        assert_true(wait_int(&h, &a.done, 1, 3000));
        assert_int_equal(a.err, MG_ETOOBIG);
        assert_non_null(strstr(a.message, "more than limits.maxUpstreamLineBytes (65536)"));
        assert_true(ms_since(a.t_start, a.t_done) < 2000);
        call_reset(&a);
    }
    /* non-JSON and non-object lines are skipped; CRLF accepted */
    call_t j = {0};
    assert_int_equal(submit(&h, &j, json_pack("{s:s}", "method", "junk"), 0), 0);
    assert_true(wait_int(&h, &j.done, 1, 3000));
    assert_int_equal(j.err, 0);
    assert_true(json_is_true(json_object_get(json_object_get(j.response, "result"), "ok")));
    /* notification while exactly one request is in flight -> related_cb */
    call_t n = {0};
    assert_int_equal(submit(&h, &n, json_pack("{s:s}", "method", "notify"), 0), 0);
    assert_true(wait_int(&h, &n.done, 1, 3000));
    assert_int_equal(n.nrelated, 1);
    assert_string_equal(json_string_value(json_object_get(n.related[0], "method")), "notifications/message");
    assert_int_equal(h.nmsg, 0);
    /* the child's ping is answered by the gateway itself */
    call_t p = {0};
    assert_int_equal(submit(&h, &p, json_pack("{s:s}", "method", "pingme"), 0), 0);
    assert_true(wait_int(&h, &p.done, 1, 3000));
    assert_true(json_is_true(json_object_get(json_object_get(p.response, "result"), "pong")));
    assert_int_equal(p.nrelated, 0);

    /* stderr lines are logged as JSON tagged with the upstream, invalid UTF-8 replaced */
    char logf[] = "/tmp/mg-upstream-log-XXXXXX";
    int lfd = mkstemp(logf);
    assert_true(lfd >= 0);
    int saved = dup(STDERR_FILENO);
    dup2(lfd, STDERR_FILENO);
    mg_log_set_level(MG_LOG_INFO);
    call_t e = {0};
    assert_int_equal(submit(&h, &e, json_pack("{s:s}", "method", "stderr"), 0), 0);
    wait_int(&h, &e.done, 1, 3000);
    run_for(&h, 100);
    mg_log_set_level(getenv("MG_TEST_DEBUG") ? MG_LOG_DEBUG : MG_LOG_WARN);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(lfd);
    assert_true(e.done);
    assert_true(file_contains(
        logf, "\"level\":\"info\",\"msg\":\"line one\",\"upstream\":\"fake\",\"stream\":\"stderr\""));
    assert_true(file_contains(logf, "\"msg\":\"line \xEF\xBF\xBD two\""));
    unlink(logf);

    /* stdout closed while a request is in flight: it fails within ~MG__EOF_KILL_MS, not its timeout */
    call_t x = {0};
    assert_int_equal(submit(&h, &x, json_pack("{s:s}", "method", "closeout"), 30000), 0);
    assert_true(wait_int(&h, &x.done, 1, 3000));
    assert_int_equal(x.err, MG_EUPSTREAM);
    assert_string_equal(x.message, "upstream 'fake' was killed by signal 9 while handling this request");
    assert_true(ms_since(x.t_start, x.t_done) < 1500);

    call_reset(&j);
    call_reset(&n);
    call_reset(&p);
    call_reset(&e);
    call_reset(&x);
    h_finish(&h, 1000);
}

/* Stop with nothing ever started: the queued request fails inside stop, stopped_cb comes from a
 * later loop callback, the loop closes. */
static void test_stop_before_start(void **state)
{
    h_t h;
    h_init(&h, "idle", testserver, 3);
    h_new(&h);
    call_t a = {0};
    assert_int_equal(submit(&h, &a, tool_call("echo", NULL), 0), 0);
    mg_upstream_stop(h.up, 100, stopped_cb, &h);
    assert_true(a.done);
    assert_int_equal(a.err, MG_ESHUTDOWN);
    assert_false(h.stopped);
    mg_upstream_start(h.up); /* no-op after stop */
    assert_int_equal(mg_upstream_pids(h.up, (int[4]){0}, 4), 0);
    assert_true(run_until(&h, int_nonzero, &h.stopped, 1000));
    call_reset(&a);
    h_finish(&h, 0);
}

static void test_init_timeout(void **state)
{
    h_t h;
    h_init(&h, "mute", "sh", 1);
    h_arg(&h, "-c");
    h_arg(&h, "exec sleep 100");
    h.lim.request_timeout_ms = 200; /* also the initialize timeout */
    h_new(&h);
    call_t a = {0};
    assert_int_equal(submit(&h, &a, tool_call("echo", NULL), 10000), 0);
    h_start(&h);
    assert_true(wait_int(&h, &a.done, 1, 3000));
    assert_int_equal(a.err, MG_EUPSTREAMDOWN);
    assert_string_equal(a.message,
                        "the 'mute' server failed to start (no answer to initialize within 200 ms); "
                        "ask the gateway's operator");
    assert_string_equal(mg_upstream_last_error(h.up),
                        "upstream 'mute' did not answer initialize within 200 ms; killed it");
    call_reset(&a);
    h_finish(&h, 500);
}

/* ---- listall.c: the runner of `mcpgate lock` and `mcpgate tools` ---- */

static void test_list_all(void **state)
{
    char json[PATH_MAX + 512];
    snprintf(
        json, sizeof json,
        "{\"mcpServers\": {\"ts\": {\"command\": \"%s\"}, \"off\": {\"command\": \"x\", \"disabled\": true},"
        " \"bad\": {\"command\": \"/bin/false\"}, \"mute\": {\"command\": \"sh\", \"args\": [\"-c\", \"sleep "
        "30\"]}}}",
        testserver);
    mg_config_t cfg;
    mg_config_errors_t errs = {0};
    assert_int_equal(mg_config_parse(json, "t.json", "/x", &cfg, &errs), 0);
    mg_upstream_list_opts_t o = {"mcpgate-test",
                                 3,
                                 {"tools/list", "prompts/list", "resources/templates/list"},
                                 {"tools", "prompts", "resourceTemplates"},
                                 {"tools", "prompts", "resources"},
                                 100,
                                 1500,
                                 "the result has no list",
                                 "did not answer before the timeout"};
    mg_upstream_listing_t *l = NULL;
    size_t n = 0;
    assert_int_equal(mg_upstream_list_all(&cfg, &o, &l, &n), 0);
    assert_int_equal(n, 3); /* enabled servers only, in config order */
    assert_string_equal(l[0].cfg->name, "ts");
    assert_null(l[0].error);
    assert_true(json_array_size(l[0].lists[0]) > 0);
    assert_non_null(l[0].lists[1]);
    assert_non_null(l[0].lists[2]);
    assert_string_equal(l[1].cfg->name, "bad");
    assert_non_null(l[1].error);
    assert_true(l[1].error[0] != '\0'); /* why it did not start */
    assert_string_equal(l[2].cfg->name, "mute");
    assert_string_equal(l[2].error, "did not answer before the timeout");
    mg_upstream_listings_free(l, n);
    mg_config_dispose(&cfg);
}

/* mg__request_line writes what setting "jsonrpc" and "id" on the message and dumping it wrote
 * (the tree path it replaces), and leaves the message as it was. */
static void test_request_line(void **state)
{
    (void)state;
    static const char *const msgs[] = {
        "{\"method\":\"tools/"
        "call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"id\":3,\"s\":\"\\u00e9\\n\"}}}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"x\",\"arguments\":{}}}",
        "{\"id\":\"client\",\"method\":\"ping\",\"jsonrpc\":\"1.0\"}",
        "{\"method\":\"m\",\"params\":[1,2.5,null,true,{\"a\":[]}],\"id\":null}",
        "{\"method\":\"m\"}",
    };
    const int64_t ids[] = {0, 1, -7, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
        for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
            json_t *msg = json_loads(msgs[i], 0, NULL);
            assert_non_null(msg);
            char *before = json_dumps(msg, JSON_COMPACT);
            size_t len = 0;
            char *line = mg__request_line(msg, ids[k], NULL, &len);
            assert_non_null(line);
            char *after = json_dumps(msg, JSON_COMPACT);
            assert_string_equal(before, after); /* msg untouched */
            json_t *t = json_deep_copy(msg);
            json_object_set_new(t, "jsonrpc", json_string("2.0"));
            json_object_set_new(t, "id", json_integer(ids[k]));
            char *want = json_dumps(t, JSON_COMPACT);
            assert_int_equal(len, strlen(want) + 1);
            assert_memory_equal(line, want, len - 1);
            assert_int_equal(line[len - 1], '\n');
            free(want);
            json_decref(t);
            free(line);
            free(before);
            free(after);
            json_decref(msg);
        }
    }
    /* a string that is not UTF-8 cannot be written: NULL, as mg_json_dump */
    json_t *bad = json_object();
    json_object_set_new(bad, "method", json_stringn_nocheck("\xff", 1));
    size_t len = 0;
    assert_null(mg__request_line(bad, 1, NULL, &len));
    json_decref(bad);
}

/* The line with the client's params text lent (mg_upstream_caller_t.params_text, read by
 * mg_json_loadb_bounded as the gateway reads a body) is the line dumped from the tree, byte for
 * byte; the text is used only for the very object it stands for. */
static void test_request_line_params_text(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/"
        "call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"bench-1\"}}}",
        "{\"method\":\"tools/"
        "call\",\"params\":{\"name\":\"x\",\"arguments\":{\"n\":-12,\"z\":0,\"b\":[true,false,null,{}],\"u\":"
        "\"\xc3\xa9/\x7f\"}},\"id\":\"s\"}",
        "{\"params\":{},\"method\":\"m\",\"id\":2}",
        "{\"method\":\"m\",\"params\":[1,2,[],{\"a\":{\"b\":[]}}],\"id\":3}",
    };
    const mg_json_bounds_t bounds = {64, 100, 10000};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        size_t items = 0, values = 0;
        mg_json_span_t span = {.key = "params"};
        json_t *msg = mg_json_loadb_bounded(bodies[i], strlen(bodies[i]), MG_JSON_REJECT_DUPLICATES, &bounds,
                                            &items, &values, &span);
        assert_non_null(msg);
        assert_non_null(span.p); /* all canonical */
        json_t *params = json_object_get(msg, "params");
        mg_upstream_caller_t as = {.params_of = params, .params_text = span.p, .params_len = span.len};
        size_t len = 0, tlen = 0;
        char *line = mg__request_line(msg, 42, &as, &len);
        char *tree = mg__request_line(msg, 42, NULL, &tlen);
        assert_non_null(line);
        assert_non_null(tree);
        assert_int_equal(len, tlen);
        assert_memory_equal(line, tree, len);
        free(line);
        /* the text is what gets written (not a dump that happens to match) ... */
        as.params_text = "[\"lent\"]";
        as.params_len = 8;
        line = mg__request_line(msg, 42, &as, &len);
        assert_non_null(strstr(line, "\"params\":[\"lent\"]"));
        free(line);
        /* ... and only for the object it stands for */
        json_t *other = json_object();
        as.params_of = other;
        line = mg__request_line(msg, 42, &as, &len);
        assert_int_equal(len, tlen);
        assert_memory_equal(line, tree, len);
        free(line);
        json_decref(other);
        free(tree);
        json_decref(msg);
    }
}

/* mg__request_line_parts (mg_upstream_call's line) writes the very bytes mg__request_line writes for
 * the message mg_upstream_msg makes of the same parts: params of every shape, NULL params, lent
 * text, methods with escapes and UTF-8. */
static void test_request_line_parts(void **state)
{
    (void)state;
    static const char *const params_texts[] = {
        "{\"name\":\"echo\",\"arguments\":{\"message\":\"bench-1\"}}",
        "{\"name\":\"x\",\"arguments\":{\"n\":-12,\"r\":1.5,\"b\":[true,false,null,{}],\"u\":"
        "\"\\u00e9\\n\\\"\"}}",
        "{}",
        "{\"_meta\":{\"progressToken\":\"t\"},\"name\":\"y\"}",
        "[1,2,[],{\"a\":{\"b\":[]}}]",
        NULL, /* no params: {} */
    };
    static const char *const methods[] = {"tools/call", "m", "x/\"q\"\\", "caf\xc3\xa9"};
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
        for (size_t i = 0; i < sizeof params_texts / sizeof params_texts[0]; i++) {
            json_t *params = params_texts[i] != NULL ? json_loads(params_texts[i], 0, NULL) : NULL;
            assert_true(params_texts[i] == NULL || params != NULL);
            json_t *msg = mg_upstream_msg(methods[m], json_incref(params));
            assert_non_null(msg);
            size_t len = 0, plen = 0;
            char *want = mg__request_line(msg, 7, NULL, &len);
            char *got = mg__request_line_parts(methods[m], params, 7, NULL, &plen);
            assert_non_null(want);
            assert_non_null(got);
            assert_int_equal(plen, len);
            assert_memory_equal(got, want, len);
            free(got);
            if (json_is_object(params) && json_object_get(params, "_meta") == NULL) {
                /* with a trace context: the message's line with it, lent text or not */
                const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
                size_t dlen = 0;
                char *pt = mg_json_dump(params, &dlen);
                mg_upstream_caller_t ts = {.traceparent = tp, .tracestate = i % 2 ? "v=1" : NULL};
                for (int lent = 0; lent < 2; lent++) {
                    ts.params_of = lent ? params : NULL;
                    ts.params_text = lent ? pt : NULL;
                    ts.params_len = lent ? dlen : 0;
                    size_t tl = 0, pl = 0;
                    char *tw = mg__request_line(msg, 7, &ts, &tl);
                    char *tg = mg__request_line_parts(methods[m], params, 7, &ts, &pl);
                    assert_non_null(tw);
                    assert_non_null(tg);
                    assert_int_equal(pl, tl);
                    assert_memory_equal(tg, tw, tl);
                    assert_non_null(memmem(tg, pl, tp, strlen(tp)));
                    free(tw);
                    free(tg);
                }
                free(pt);
            }
            if (params != NULL) { /* a lent text is written for its own object only */
                mg_upstream_caller_t as = {.params_of = params, .params_text = "[\"lent\"]", .params_len = 8};
                got = mg__request_line_parts(methods[m], params, 7, &as, &plen);
                assert_non_null(strstr(got, ",\"params\":[\"lent\"],\"id\":7}"));
                free(got);
                json_t *other = json_object();
                as.params_of = other;
                got = mg__request_line_parts(methods[m], params, 7, &as, &plen);
                assert_int_equal(plen, len);
                assert_memory_equal(got, want, len);
                free(got);
                json_decref(other);
            }
            free(want);
            json_decref(msg);
            json_decref(params);
        }
    }
}

/* The trace context written into a line's text (mg__request_line with as->traceparent, when
 * mg__trace_splices says so) against the tree path (mg__upstream_trace_tree, then the line): the same
 * bytes, for lent text and for a dumped params, over params shapes and tracestates; shapes with a
 * _meta (or no object) take the tree, which keeps the client's keys and never changes its objects. */
static void test_trace_meta_splice(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/"
        "call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"bench-1\"}}}",
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{}}",
        "{\"method\":\"tools/call\",\"params\":{\"name\":\"x\"},\"id\":\"s\"}",
        "{\"method\":\"tools/call\",\"params\":{\"arguments\":{},\"name\":\"x\"},\"id\":3}",
        "{\"method\":\"tools/"
        "call\",\"params\":{\"name\":\"x\",\"arguments\":{\"n\":-12,\"b\":[true,null,{}],\"u\":\"\xc3\xa9/"
        "\x7f\"},"
        "\"z\":{}},\"id\":4}",
        "{\"method\":\"resources/read\",\"params\":{\"uri\":\"file:///a\"},\"id\":5}",
        /* with a _meta: the tree path */
        "{\"method\":\"tools/"
        "call\",\"params\":{\"name\":\"echo\",\"_meta\":{\"progressToken\":\"p1\"},\"arguments\":{}},\"id\":"
        "6}",
        "{\"method\":\"tools/call\",\"params\":{\"_meta\":{\"traceparent\":\"00-"
        "0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\",\"tracestate\":\"old=1\",\"x\":2},\"name\":"
        "\"echo\"},\"id\":7}",
        "{\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"_meta\":{}},\"id\":8}",
        "{\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"_meta\":5},\"id\":9}",
        "{\"method\":\"tools/"
        "call\",\"params\":{\"name\":\"echo\",\"_meta\":{\"tracestate\":\"c=1\"}},\"id\":10}",
        /* no object to write into */
        "{\"method\":\"m\",\"params\":[1,{\"a\":[]}],\"id\":11}",
        "{\"method\":\"ping\",\"id\":12}",
    };
    static const char *const states[] = {NULL, "vendor=abc", "a=x\"y\\\\z,b=1"};
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const mg_json_bounds_t bounds = {64, 100, 10000};
    int spliced = 0;
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        for (size_t j = 0; j < sizeof states / sizeof states[0]; j++) {
            size_t items = 0, values = 0;
            mg_json_span_t span = {.key = "params"};
            json_t *msg = mg_json_loadb_bounded(bodies[i], strlen(bodies[i]), MG_JSON_REJECT_DUPLICATES,
                                                &bounds, &items, &values, &span);
            assert_non_null(msg);
            json_t *params = json_object_get(msg, "params");
            size_t blen = 0;
            char *before = mg_json_dump(msg, &blen); /* the caller's objects, never changed */
            assert_non_null(before);
            /* the tree path: a copy of the message (the upstream's own), merged, then its line */
            json_t *copy = mg_json_copy(msg);
            assert_int_equal(mg__upstream_trace_tree(copy, tp, states[j]), 0);
            size_t tlen = 0;
            char *tree = mg__request_line(copy, 42, NULL, &tlen);
            assert_non_null(tree);
            char *tz = realloc(tree, tlen + 1); /* the line ends in its newline: a string for strstr */
            assert_non_null(tz);
            tree = tz;
            tree[tlen] = '\0';
            mg_upstream_caller_t as = {.params_of = params,
                                       .params_text = span.p,
                                       .params_len = span.len,
                                       .params_no_meta = json_object_get(params, "_meta") == NULL,
                                       .traceparent = tp,
                                       .tracestate = states[j]};
            int has_meta = json_is_object(params) && json_object_get(params, "_meta") != NULL;
            assert_int_equal(mg__trace_splices(json_object_get(msg, "params"), &as),
                             json_is_object(params) && !has_meta);
            if (mg__trace_splices(json_object_get(msg, "params"), &as)) {
                spliced++;
                assert_non_null(span.p); /* all canonical */
                size_t len = 0;
                char *line = mg__request_line(msg, 42, &as, &len); /* the lent text, spliced */
                assert_non_null(line);
                assert_int_equal(len, tlen);
                assert_memory_equal(line, tree, len);
                free(line);
                as.params_text = NULL; /* dumped, then spliced */
                line = mg__request_line(msg, 42, &as, &len);
                assert_non_null(line);
                assert_int_equal(len, tlen);
                assert_memory_equal(line, tree, len);
                free(line);
            }
            /* what the upstream gets, written out for the shapes whose answer is known */
            char want[512];
            const char *ts = states[j] != NULL ? ",\"tracestate\":\"vendor=abc\"" : "";
            if (j <= 1 && i == 1) {
                snprintf(want, sizeof want, "\"params\":{\"_meta\":{\"traceparent\":\"%s\"%s}}", tp, ts);
                assert_non_null(strstr(tree, want));
            } else if (j <= 1 && i == 0) {
                snprintf(want, sizeof want,
                         "\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"bench-1\"},\"_meta\":{"
                         "\"traceparent\":\"%s\"%s}}",
                         tp, ts);
                assert_non_null(strstr(tree, want));
            } else if (j <= 1 && i == 6) { /* the client's keys first, in their order */
                snprintf(want, sizeof want,
                         "\"_meta\":{\"progressToken\":\"p1\",\"traceparent\":\"%s\"%s},\"arguments\":{}}",
                         tp, ts);
                assert_non_null(strstr(tree, want));
            } else if (j <= 1 && i == 7) { /* ours replace the client's; its stale tracestate goes */
                snprintf(want, sizeof want, "\"_meta\":{\"traceparent\":\"%s\"%s,\"x\":2}", tp,
                         states[j] != NULL ? ",\"tracestate\":\"vendor=abc\"" : "");
                assert_non_null(strstr(tree, want));
            } else if (j == 0 && i == 10) {
                snprintf(want, sizeof want, "\"_meta\":{\"traceparent\":\"%s\"}", tp);
                assert_non_null(strstr(tree, want));
            } else if (j == 2 && i == 2) { /* a tracestate's quote and backslash escaped */
                assert_non_null(strstr(tree, "\"tracestate\":\"a=x\\\"y\\\\\\\\z,b=1\"}}"));
            } else if (i == 11) {
                assert_null(strstr(tree, "traceparent"));
            } else if (i == 12) {
                snprintf(want, sizeof want, "\"params\":{\"_meta\":{\"traceparent\":\"%s\"", tp);
                assert_non_null(strstr(tree, want));
            }
            size_t alen = 0;
            char *after = mg_json_dump(msg, &alen);
            assert_non_null(after);
            assert_string_equal(before, after);
            free(before);
            free(after);
            free(tree);
            json_decref(copy);
            json_decref(msg);
        }
    }
    assert_int_equal(spliced, 6 * 3);
    /* no traceparent: nothing to do */
    json_t *m = json_pack("{s:s,s:{}}", "method", "m", "params");
    json_t *p = json_object_get(m, "params");
    assert_int_equal(mg__upstream_trace_tree(m, NULL, "x=1"), 0);
    assert_ptr_equal(json_object_get(m, "params"), p);
    assert_int_equal(json_object_size(p), 0);
    json_decref(m);
}

/* A traced request through the pool: sent at once (params without _meta: the line's text gets the
 * context) and queued before the child is ready (merged into the message), the same bytes reach the
 * child; with a client's progressToken the context is merged and the token still replaced. */
static void test_trace_meta_requests(void **state)
{
    (void)state;
    char tee[] = "/tmp/mg-upstream-tee-XXXXXX";
    h_t h;
    h_init_tee(&h, "traced", tee, TEE_TS);
    h_new(&h);
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    call_t c[3] = {{0}};
    for (int i = 0; i < 2; i++) {
        /* 0: queued (not started yet), 1: sent at once (after ready); both lent as text */
        if (i == 1) {
            h_start(&h);
            assert_true(wait_int(&h, &c[0].done, 1, 10000));
            assert_true(run_until(&h, all_ready, &h, 10000));
        }
        char arg[32];
        snprintf(arg, sizeof arg, "traced-%d", i);
        json_t *msg = tool_call("echo", json_pack("{s:s}", "message", arg));
        json_t *params = json_object_get(msg, "params");
        size_t len = 0;
        char *text = mg_json_dump(params, &len);
        assert_non_null(text);
        mg_upstream_caller_t as = {.params_of = params,
                                   .params_text = text,
                                   .params_len = len,
                                   .params_no_meta = 1,
                                   .traceparent = tp,
                                   .tracestate = "v=1"};
        c[i].h = &h;
        c[i].expect_text = i == 0 ? "traced-0" : "traced-1";
        in_api = 1;
        assert_int_equal(mg_upstream_request_as(h.up, &as, msg, 5000, done_cb, related_cb, &c[i], &c[i].req),
                         0);
        in_api = 0;
        free(text);
    }
    assert_true(wait_int(&h, &c[1].done, 1, 5000));
    run_for(&h, 50);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(c[i].err, 0);
        assert_string_equal(result_text(c[i].response), i == 0 ? "traced-0" : "traced-1");
        char want[256];
        snprintf(want, sizeof want,
                 "\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"traced-%d\"},\"_meta\":{"
                 "\"traceparent\":\"%s\",\"tracestate\":\"v=1\"}}",
                 i, tp);
        assert_true(file_contains(tee, want));
    }
    /* a client's _meta: merged (its progress token kept, then replaced by ours on the wire) */
    json_t *m = json_pack("{s:s, s:{s:s, s:{s:s}, s:{s:s}}}", "method", "tools/call", "params", "name",
                          "echo", "arguments", "message", "traced-2", "_meta", "progressToken", "tok-T");
    mg_upstream_caller_t as = {.traceparent = tp};
    c[2].h = &h;
    in_api = 1;
    assert_int_equal(mg_upstream_request_as(h.up, &as, m, 5000, done_cb, related_cb, &c[2], &c[2].req), 0);
    in_api = 0;
    assert_true(wait_int(&h, &c[2].done, 1, 5000));
    assert_int_equal(c[2].err, 0);
    run_for(&h, 50);
    char want[256];
    snprintf(want, sizeof want, "\"_meta\":{\"progressToken\":4,\"traceparent\":\"%s\"}}", tp);
    assert_true(file_contains(tee, want));
    assert_false(file_contains(tee, "tok-T"));
    for (int i = 0; i < 3; i++)
        call_reset(&c[i]);
    h_finish(&h, 2000);
    unlink(tee);
}

int main(void)
{
    const char *ts = getenv("MG_TESTSERVER");
    if (ts != NULL) {
        snprintf(testserver, sizeof testserver, "%s", ts);
    } else {
        char self[PATH_MAX - 64];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = '\0';
            char *slash = strrchr(self, '/');
            if (slash != NULL)
                *slash = '\0';
            snprintf(testserver, sizeof testserver, "%s/mcpgate-testserver", self);
        }
    }
    mg_log_set_level(getenv("MG_TEST_DEBUG") ? MG_LOG_DEBUG : MG_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_all),
        cmocka_unit_test(test_idtable),
        cmocka_unit_test(test_idscan),
        cmocka_unit_test(test_request_line),
        cmocka_unit_test(test_request_line_params_text),
        cmocka_unit_test(test_request_line_parts),
        cmocka_unit_test(test_trace_meta_splice),
        cmocka_unit_test(test_trace_meta_requests),
        cmocka_unit_test(test_linebuf),
        cmocka_unit_test(test_utf8_clean),
        cmocka_unit_test(test_command_resolve),
        cmocka_unit_test(test_command_check),
        cmocka_unit_test(test_echo_1000),
        cmocka_unit_test(test_large_messages),
        cmocka_unit_test(test_sleep_timeout_and_progress),
        cmocka_unit_test(test_call_parts),
        cmocka_unit_test(test_crash_then_restart),
        cmocka_unit_test(test_command_not_found),
        cmocka_unit_test(test_bad_cwd),
        cmocka_unit_test(test_fail_init),
        cmocka_unit_test(test_stop_kills_children),
        cmocka_unit_test(test_sigterm_ignored),
        cmocka_unit_test(test_env_isolation),
        cmocka_unit_test(test_busy_and_cancel),
        cmocka_unit_test(test_server_requests),
        cmocka_unit_test(test_attribution_evidence),
        cmocka_unit_test(test_mask_secrets),
        cmocka_unit_test(test_fake_framing),
        cmocka_unit_test(test_init_timeout),
        cmocka_unit_test(test_stop_before_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
