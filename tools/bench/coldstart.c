/*
 * coldstart.c - --cold-start: time a target from exec to /healthz 200 and to its first tool call.
 *
 * Contract: spawns the command after "--" in its own process group (stdout and stderr go to our
 * stderr), then polls --health-url with GET every 2 ms (connection refused is expected at first).
 * Once it answers 200, one session runs the whole lifecycle with one tool call, retried every 2 ms
 * until the call succeeds or --timeout passes (errors on the way are counted and reported). Both
 * times run from just before exec. Then SIGTERM to the group, SIGKILL after 5 s, and the loop ends.
 * Read next: run.c (the ordinary load driver), mcp.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

typedef struct cold {
    mg_bench_run_t run;
    mg_bench_session_t session;
    mg_bench_conn_t health;
    mg_bench_opts_t hopts;
    uv_process_t proc;
    uv_timer_t poll, deadline, kill;
    uint64_t t0;
    int phase; /* 0 health, 1 tool call, 2 stopping */
    int session_busy;
    int exited;
} cold_t;

static void stop_target(cold_t *c);

static void on_health(mg_bench_conn_t *h, int err)
{
    cold_t *c = h->data;
    if (c->phase != 0)
        return;
    if (err == 0 && h->status == 200) {
        c->run.st->cold_health_ms = mg_bench_ms(uv_hrtime() - c->t0);
        c->phase = 1;
        mg_bench_conn_close(h);
    }
}

static void on_poll(uv_timer_t *t)
{
    cold_t *c = t->data;
    if (c->phase == 0 && !c->health.busy) {
        mg_bench_buf_t *b = mg_bench_conn_begin(&c->health);
        mg_bench_buf_printf(b, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", c->hopts.path, c->hopts.hostport);
        mg_bench_conn_send(&c->health, 0, on_health, NULL);
    } else if (c->phase == 1 && !c->session_busy) {
        c->session_busy = 1;
        mg_bench_session_start(&c->session);
    }
}

static void on_ready(mg_bench_session_t *s)
{
    if (s->failed) {
        mg_bench_session_finish(s);
        return;
    }
    mg_bench_session_call(s, 0);
}

static void on_answer(mg_bench_session_t *s, int ok)
{
    cold_t *c = s->run->driver;
    if (ok && c->run.st->cold_call_ms < 0)
        c->run.st->cold_call_ms = mg_bench_ms(uv_hrtime() - c->t0);
    mg_bench_session_finish(s);
}

static void on_done(mg_bench_session_t *s)
{
    cold_t *c = s->run->driver;
    c->session_busy = 0;
    if (c->run.st->cold_call_ms >= 0)
        stop_target(c);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    cold_t *c = p->data;
    c->exited = 1;
    uv_kill(-c->proc.pid, SIGKILL); /* leftovers of the group, if any */
    uv_close((uv_handle_t *)p, NULL);
    uv_close((uv_handle_t *)&c->poll, NULL);
    uv_close((uv_handle_t *)&c->deadline, NULL);
    uv_close((uv_handle_t *)&c->kill, NULL);
    mg_bench_conn_dispose(&c->health);
    mg_bench_session_dispose(&c->session);
    if (c->phase != 2)
        fprintf(stderr, "mcpgate-bench: the target exited early (status %lld, signal %d)\n",
                (long long)status, sig);
}

static void on_kill(uv_timer_t *t)
{
    cold_t *c = t->data;
    if (!c->exited)
        uv_kill(-c->proc.pid, SIGKILL);
}

static void stop_target(cold_t *c)
{
    if (c->phase == 2)
        return;
    c->phase = 2;
    uv_timer_stop(&c->poll);
    uv_timer_stop(&c->deadline);
    if (!c->exited) {
        uv_kill(-c->proc.pid, SIGTERM);
        uv_timer_start(&c->kill, on_kill, 5000, 0);
    }
}

static void on_deadline(uv_timer_t *t)
{
    cold_t *c = t->data;
    fprintf(stderr, "mcpgate-bench: --cold-start gave up after %.0f s (%s)\n", c->run.opts->timeout,
            c->run.st->cold_health_ms < 0 ? "health never answered 200" : "no successful tool call");
    stop_target(c);
}

int mg_bench_run_cold_start(const mg_bench_opts_t *o, mg_bench_stats_t *st)
{
    uv_loop_t *loop = uv_default_loop();
    cold_t *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    c->run.loop = loop;
    c->run.opts = o;
    c->run.st = st;
    c->run.driver = c;
    c->run.on_ready = on_ready;
    c->run.on_answer = on_answer;
    c->run.on_done = on_done;
    c->run.n_sessions = 1;
    c->run.sessions = &c->session;
    if (mg_bench_calltpl_init(&c->run.tpl, o) != 0) {
        free(c);
        return -1;
    }
    c->hopts = *o;
    if (mg_bench_url_parse(o->health_url, &c->hopts.addr, c->hopts.hostport, sizeof c->hopts.hostport,
                           c->hopts.path, sizeof c->hopts.path) != 0) {
        fprintf(stderr, "mcpgate-bench: --health-url must be http://IPv4:PORT/path\n");
        return -1;
    }
    c->hopts.connect_timeout = 1;
    c->hopts.timeout = 2;
    mg_bench_session_init(&c->session, &c->run, 0);
    mg_bench_conn_init(&c->health, loop, &c->hopts);
    c->health.data = c;
    uv_timer_init(loop, &c->poll);
    uv_timer_init(loop, &c->deadline);
    uv_timer_init(loop, &c->kill);
    c->poll.data = c->deadline.data = c->kill.data = c;

    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE}, {.flags = UV_INHERIT_FD, .data.fd = 2}, {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t po = {0};
    po.file = o->cold_argv[0];
    po.args = o->cold_argv;
    po.exit_cb = on_exit_cb;
    po.flags = UV_PROCESS_DETACHED; /* own process group: the group is signalled at the end */
    po.stdio_count = 3;
    po.stdio = stdio;
    c->proc.data = c;
    c->t0 = uv_hrtime();
    int r = uv_spawn(loop, &c->proc, &po);
    if (r != 0) {
        fprintf(stderr, "mcpgate-bench: cannot run %s: %s\n", o->cold_argv[0], uv_strerror(r));
        return -1;
    }
    uv_timer_start(&c->poll, on_poll, 0, 2);
    uv_timer_start(&c->deadline, on_deadline, (uint64_t)(o->timeout * 1000), 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    mg_bench_calltpl_dispose(&c->run.tpl);
    free(c);
    return st->cold_call_ms >= 0 ? 0 : -1;
}
