/*
 * run.c - the load driver of mcpgate-bench: setup, measure, teardown over N sessions (bench.h).
 *
 * Contract: at most --setup-concurrency sessions in setup (and hold teardown) at once; the measured
 * phase starts when all are ready (barrier). Closed loop: next call on answer, --calls or
 * --duration. Open loop (--rate R): call i is due at t0 + i/R, handed to an idle session by a 1 ms
 * tick or on answer; latency runs from the due time (no coordinated omission). --hold S: idle S s,
 * RSS of --rss-pid sampled 1 s after setup. SIGINT finishes in-flight calls (twice: stop at once).
 * Read next: mcp.c (a session), stats.c (the report), tools/bench/README.md.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

typedef struct load {
    mg_bench_run_t run;
    uv_timer_t tick;
    uv_timer_t hold;
    uv_signal_t sigint;
    unsigned next_start, in_setup, ready, done;
    int starting;
    int measuring;
    int ending;
    int hold_sampled;
    int releasing; /* hold over: DELETEs go out, --setup-concurrency at a time */
    unsigned next_release, in_release;
    int interrupted;
    uint64_t t0, deadline;
    uint64_t total;      /* open loop: calls to schedule */
    uint64_t dispatched; /* open loop: calls handed out */
    mg_bench_session_t **idle;
    unsigned n_idle;
} load_t;

static load_t *load_of(mg_bench_session_t *s)
{
    return s->run->driver;
}

static void all_ready(load_t *l);
static void maybe_end(load_t *l);

static void start_more(load_t *l)
{
    const mg_bench_opts_t *o = l->run.opts;
    if (l->starting)
        return;
    l->starting = 1;
    while (l->next_start < l->run.n_sessions && l->in_setup < o->setup_concurrency && !l->ending) {
        mg_bench_session_t *s = &l->run.sessions[l->next_start++];
        l->in_setup++;
        mg_bench_session_start(s);
    }
    l->starting = 0;
    if (l->ending && l->next_start < l->run.n_sessions) {
        /* interrupted during setup: the rest never start */
        unsigned left = l->run.n_sessions - l->next_start;
        l->run.st->sessions_failed += left;
        l->done += left;
        l->ready += left;
        l->next_start = l->run.n_sessions;
    }
    if (l->ready == l->run.n_sessions && !l->measuring)
        all_ready(l);
    maybe_end(l);
}

static uint64_t due_now(load_t *l, uint64_t now)
{
    double due = floor((double)(now - l->t0) * l->run.opts->rate / 1e9) + 1;
    uint64_t d = due < 0 ? 0 : (uint64_t)due;
    return d < l->total ? d : l->total;
}

static void open_loop_give(load_t *l, mg_bench_session_t *s)
{
    uint64_t sched = l->t0 + (uint64_t)((double)l->dispatched * 1e9 / l->run.opts->rate);
    l->dispatched++;
    mg_bench_session_call(s, sched);
}

static void flush_idle(load_t *l)
{
    while (l->n_idle > 0) {
        mg_bench_session_t *s = l->idle[--l->n_idle];
        mg_bench_session_finish(s);
    }
}

static void on_tick(uv_timer_t *t)
{
    load_t *l = t->data;
    uint64_t due = due_now(l, uv_hrtime());
    while (l->dispatched < due && l->n_idle > 0)
        open_loop_give(l, l->idle[--l->n_idle]);
    if (l->dispatched >= l->total || l->ending) {
        uv_timer_stop(&l->tick);
        flush_idle(l);
    }
}

/* Ends held sessions, at most --setup-concurrency at a time: 10,000 DELETEs at the same instant
 * would measure the target's burst allocations instead of its steady state. */
static void release_more(load_t *l)
{
    while (l->next_release < l->run.n_sessions && l->in_release < l->run.opts->setup_concurrency) {
        mg_bench_session_t *s = &l->run.sessions[l->next_release++];
        if (s->step == MG_BENCH_STEP_READY) {
            l->in_release++;
            mg_bench_session_finish(s);
        }
    }
}

static void on_hold(uv_timer_t *t)
{
    load_t *l = t->data;
    const mg_bench_opts_t *o = l->run.opts;
    mg_bench_stats_t *st = l->run.st;
    if (!l->hold_sampled) {
        l->hold_sampled = 1;
        if (o->rss_pid > 0)
            st->rss_setup_kb = mg_bench_proc_rss_tree(o->rss_pid, &st->rss_procs);
        double rest = o->hold - 1.0;
        if (rest > 0 && !l->ending) {
            uv_timer_start(&l->hold, on_hold, (uint64_t)(rest * 1000), 0);
            return;
        }
    }
    l->releasing = 1;
    release_more(l);
}

static void all_ready(load_t *l)
{
    const mg_bench_opts_t *o = l->run.opts;
    mg_bench_stats_t *st = l->run.st;
    l->measuring = 1;
    st->t_setup_end = uv_hrtime();
    unsigned ok = 0;
    for (unsigned i = 0; i < l->run.n_sessions; i++)
        ok += l->run.sessions[i].step == MG_BENCH_STEP_READY;
    if (!o->json)
        fprintf(stderr, "mcpgate-bench: %u/%u sessions ready in %.3f s\n", ok, l->run.n_sessions,
                (double)(st->t_setup_end - st->t_setup_start) / 1e9);
    if (o->hold > 0) {
        if (!o->json)
            fprintf(stderr, "mcpgate-bench: holding %u idle sessions for %.1f s\n", ok, o->hold);
        uv_timer_start(&l->hold, on_hold, (uint64_t)((o->hold < 1.0 ? o->hold : 1.0) * 1000), 0);
        return;
    }
    if (o->rss_pid > 0)
        st->rss_setup_kb = mg_bench_proc_rss_tree(o->rss_pid, &st->rss_procs);
    l->t0 = uv_hrtime();
    st->t_measure_start = l->t0;
    st->t_measure_end = l->t0;
    if (o->duration > 0)
        l->deadline = l->t0 + (uint64_t)(o->duration * 1e9);
    if (o->rate > 0) {
        l->total = o->duration > 0 ? (uint64_t)(o->rate * o->duration) : o->calls * l->run.n_sessions;
        for (unsigned i = 0; i < l->run.n_sessions; i++) {
            mg_bench_session_t *s = &l->run.sessions[i];
            if (s->step == MG_BENCH_STEP_READY)
                l->idle[l->n_idle++] = s;
        }
        if (l->n_idle > 0)
            uv_timer_start(&l->tick, on_tick, 0, 1);
        return;
    }
    for (unsigned i = 0; i < l->run.n_sessions; i++) {
        mg_bench_session_t *s = &l->run.sessions[i];
        if (s->step == MG_BENCH_STEP_READY)
            mg_bench_session_call(s, 0);
    }
}

static void on_ready(mg_bench_session_t *s)
{
    load_t *l = load_of(s);
    l->in_setup--;
    l->ready++;
    if (s->failed) {
        if (l->run.opts->rate <= 0 && l->run.opts->calls > 0 && l->run.opts->hold <= 0)
            l->run.st->calls_unsent += l->run.opts->calls;
        mg_bench_session_finish(s);
    }
    start_more(l);
}

static void on_answer(mg_bench_session_t *s, int ok)
{
    load_t *l = load_of(s);
    const mg_bench_opts_t *o = l->run.opts;
    uint64_t now = uv_hrtime();
    l->run.st->t_measure_end = now;
    if (o->rate > 0) {
        if (s->aborted || l->ending) {
            mg_bench_session_finish(s);
        } else if (l->dispatched < due_now(l, now)) {
            open_loop_give(l, s);
        } else if (l->dispatched >= l->total) {
            mg_bench_session_finish(s);
        } else {
            l->idle[l->n_idle++] = s;
        }
        return;
    }
    int more = o->duration > 0 ? now < l->deadline : s->calls_sent < o->calls;
    if (s->aborted || l->ending || !more) {
        if (o->duration <= 0 && s->calls_sent < o->calls)
            l->run.st->calls_unsent += o->calls - s->calls_sent;
        mg_bench_session_finish(s);
        return;
    }
    mg_bench_session_call(s, 0);
}

/* Once every session is closed: count what was never sent, stop the timers, let the loop end. */
static void maybe_end(load_t *l)
{
    if (l->done < l->run.n_sessions || uv_is_closing((uv_handle_t *)&l->sigint))
        return;
    if (l->run.opts->rate > 0 && l->dispatched < l->total)
        l->run.st->calls_unsent += l->total - l->dispatched;
    uv_timer_stop(&l->tick);
    uv_timer_stop(&l->hold);
    uv_close((uv_handle_t *)&l->sigint, NULL);
}

static void on_done(mg_bench_session_t *s)
{
    load_t *l = load_of(s);
    l->done++;
    if (l->releasing && l->in_release > 0) {
        l->in_release--;
        release_more(l);
    }
    maybe_end(l);
}

static void on_sigint(uv_signal_t *h, int signum)
{
    load_t *l = h->data;
    if (l->interrupted++) {
        uv_stop(h->loop);
        return;
    }
    fprintf(stderr, "mcpgate-bench: interrupted, finishing the calls in flight (again to stop at once)\n");
    l->ending = 1;
    if (l->run.opts->hold > 0 && l->measuring) {
        uv_timer_stop(&l->hold);
        l->hold_sampled = 1;
        on_hold(&l->hold);
    }
}

int mg_bench_run_load(const mg_bench_opts_t *o, mg_bench_stats_t *st)
{
    uv_loop_t *loop = uv_default_loop();
    load_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return -1;
    l->run.loop = loop;
    l->run.opts = o;
    l->run.st = st;
    l->run.driver = l;
    l->run.on_ready = on_ready;
    l->run.on_answer = on_answer;
    l->run.on_done = on_done;
    if (mg_bench_calltpl_init(&l->run.tpl, o) != 0) {
        free(l);
        return -1;
    }
    l->run.n_sessions = o->sessions;
    l->run.sessions = calloc(o->sessions, sizeof *l->run.sessions);
    l->idle = calloc(o->sessions, sizeof *l->idle);
    if (l->run.sessions == NULL || l->idle == NULL) {
        fprintf(stderr, "mcpgate-bench: out of memory for %u sessions\n", o->sessions);
        return -1;
    }
    for (unsigned i = 0; i < o->sessions; i++)
        mg_bench_session_init(&l->run.sessions[i], &l->run, i);
    uv_timer_init(loop, &l->tick);
    uv_timer_init(loop, &l->hold);
    l->tick.data = l->hold.data = l;
    uv_signal_init(loop, &l->sigint);
    l->sigint.data = l;
    uv_signal_start(&l->sigint, on_sigint, SIGINT);

    if (o->rss_pid > 0) {
        st->rss_before_kb = mg_bench_proc_rss_tree(o->rss_pid, &st->rss_procs);
        if (st->rss_before_kb < 0)
            fprintf(stderr, "mcpgate-bench: --rss-pid %d: no such process\n", o->rss_pid);
    }
    st->t_setup_start = uv_hrtime();
    start_more(l);
    uv_run(loop, UV_RUN_DEFAULT);

    if (o->rss_pid > 0 && st->rss_before_kb >= 0) {
        unsigned n;
        st->rss_after_kb = mg_bench_proc_rss_tree(o->rss_pid, &n);
    }
    for (unsigned i = 0; i < o->sessions; i++)
        mg_bench_session_dispose(&l->run.sessions[i]);
    uv_close((uv_handle_t *)&l->tick, NULL);
    uv_close((uv_handle_t *)&l->hold, NULL);
    if (!uv_is_closing((uv_handle_t *)&l->sigint))
        uv_close((uv_handle_t *)&l->sigint, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(loop);
    if (rc != 0 && !l->interrupted)
        fprintf(stderr, "mcpgate-bench: loop did not close cleanly (%s)\n", uv_err_name(rc));
    mg_bench_calltpl_dispose(&l->run.tpl);
    free(l->run.sessions);
    free(l->idle);
    free(l);
    return 0;
}
