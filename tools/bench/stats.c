/*
 * stats.c - latency histograms, error counts and the report of mcpgate-bench (bench.h).
 *
 * Contract: the histogram is log-linear (HdrHistogram-like): values below 256 ns are exact, then
 * each power of two holds 128 buckets, so a quantile is off by less than 0.4% (the midpoint of its
 * bucket is reported). Errors are counted by kind "<phase>: <what>" in a fixed table of 64 kinds;
 * more kinds go to "other". The report is a table for people or, with --json, one JSON object
 * (keys documented in tools/bench/README.md) for bench/run.sh.
 * Read next: run.c (who fills the stats).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define SUB_BITS 7
#define SUB      (1u << SUB_BITS) /* 128 buckets per power of two */

static unsigned bucket_of(uint64_t v)
{
    if (v < 2 * SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 8 */
    unsigned shift = e - SUB_BITS;
    unsigned sub = (unsigned)(v >> shift) - SUB; /* 0..127 */
    unsigned idx = 2 * SUB + (e - (SUB_BITS + 1)) * SUB + sub;
    return idx < MG_BENCH_HIST_BUCKETS ? idx : MG_BENCH_HIST_BUCKETS - 1;
}

/* Midpoint of bucket idx. */
static uint64_t value_of(unsigned idx)
{
    if (idx < 2 * SUB)
        return idx;
    unsigned k = idx - 2 * SUB;
    unsigned e = k / SUB + SUB_BITS + 1;
    unsigned sub = k % SUB + SUB;
    unsigned shift = e - SUB_BITS;
    uint64_t lo = (uint64_t)sub << shift;
    return lo + ((uint64_t)1 << shift) / 2;
}

void mg_bench_hist_record(mg_bench_hist_t *h, uint64_t ns)
{
    h->counts[bucket_of(ns)]++;
    h->n++;
    h->sum += (double)ns;
    if (ns > h->max)
        h->max = ns;
}

uint64_t mg_bench_hist_quantile(const mg_bench_hist_t *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->n)
        rank = h->n;
    uint64_t seen = 0;
    for (unsigned i = 0; i < MG_BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = value_of(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

void mg_bench_stats_init(mg_bench_stats_t *st)
{
    memset(st, 0, sizeof *st);
    st->rss_before_kb = st->rss_setup_kb = st->rss_after_kb = -1;
    st->cold_health_ms = st->cold_call_ms = -1;
}

/* Copies detail into out, CR/LF/control bytes as spaces (it is printed on one line). */
static void set_sample(char *out, size_t n, const char *detail)
{
    size_t i = 0;
    for (; detail && detail[i] && i + 1 < n; i++)
        out[i] = (unsigned char)detail[i] < 0x20 ? ' ' : detail[i];
    out[i] = '\0';
}

void mg_bench_stats_error(mg_bench_stats_t *st, const char *phase, const char *what, const char *detail)
{
    char kind[64];
    snprintf(kind, sizeof kind, "%s: %s", phase, what);
    for (unsigned i = 0; i < st->n_errs; i++) {
        if (strcmp(st->errs[i].kind, kind) == 0) {
            st->errs[i].count++;
            if (st->errs[i].sample[0] == '\0')
                set_sample(st->errs[i].sample, sizeof st->errs[i].sample, detail);
            return;
        }
    }
    if (st->n_errs == MG_BENCH_MAX_ERR_KINDS) {
        st->errs_other++;
        return;
    }
    snprintf(st->errs[st->n_errs].kind, sizeof st->errs[0].kind, "%s", kind);
    set_sample(st->errs[st->n_errs].sample, sizeof st->errs[0].sample, detail);
    st->errs[st->n_errs].count = 1;
    st->n_errs++;
}

static json_t *lat_json(const mg_bench_hist_t *h)
{
    return json_pack(
        "{s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "n", (json_int_t)h->n, "p50",
        mg_bench_ms(mg_bench_hist_quantile(h, 0.50)), "p90", mg_bench_ms(mg_bench_hist_quantile(h, 0.90)),
        "p99", mg_bench_ms(mg_bench_hist_quantile(h, 0.99)), "p999",
        mg_bench_ms(mg_bench_hist_quantile(h, 0.999)), "max", mg_bench_ms(h->max), "mean",
        h->n ? h->sum / (double)h->n / 1e6 : 0.0, "min", mg_bench_ms(mg_bench_hist_quantile(h, 0)));
}

static double window_s(const mg_bench_stats_t *st)
{
    if (st->t_measure_end <= st->t_measure_start)
        return 0;
    return (double)(st->t_measure_end - st->t_measure_start) / 1e9;
}

static void report_json(const mg_bench_stats_t *st, const mg_bench_opts_t *o, const char *mode)
{
    double w = window_s(st);
    json_t *errs = json_object(), *samples = json_object();
    for (unsigned i = 0; i < st->n_errs; i++) {
        json_object_set_new(errs, st->errs[i].kind, json_integer((json_int_t)st->errs[i].count));
        if (st->errs[i].sample[0])
            json_object_set_new(samples, st->errs[i].kind, json_string(st->errs[i].sample));
    }
    if (st->errs_other)
        json_object_set_new(errs, "other", json_integer((json_int_t)st->errs_other));
    double setup_s =
        st->t_setup_end > st->t_setup_start ? (double)(st->t_setup_end - st->t_setup_start) / 1e9 : 0;
    json_t *r =
        json_pack("{s:s,s:s,s:s?,s:{s:I,s:I,s:I,s:f,s:o},s:{s:I,s:I,s:I,s:f,s:f,s:o},s:o,s:I}", "url", o->url,
                  "mode", mode, "label", o->label, "sessions", "requested", (json_int_t)o->sessions, "ok",
                  (json_int_t)st->sessions_ok, "failed", (json_int_t)st->sessions_failed, "setup_s", setup_s,
                  "setup_latency_ms", lat_json(&st->setup), "calls", "ok", (json_int_t)st->calls_ok, "failed",
                  (json_int_t)st->calls_failed, "unsent", (json_int_t)st->calls_unsent, "duration_s", w,
                  "per_s", w > 0 ? (double)st->calls_ok / w : 0.0, "latency_ms", lat_json(&st->calls),
                  "errors", errs, "reconnects", (json_int_t)st->reconnects);
    json_object_set_new(r, "error_samples", samples);
    if (o->rate > 0)
        json_object_set_new(r, "rate", json_real(o->rate));
    if (st->rss_before_kb >= 0) {
        json_t *rss = json_pack("{s:i,s:I,s:i}", "pid", o->rss_pid, "before_kb",
                                (json_int_t)st->rss_before_kb, "processes", (int)st->rss_procs);
        if (st->rss_setup_kb >= 0) {
            json_object_set_new(rss, "sessions_kb", json_integer(st->rss_setup_kb));
            if (st->sessions_ok > 0)
                json_object_set_new(
                    rss, "per_session_kb",
                    json_real((double)(st->rss_setup_kb - st->rss_before_kb) / (double)st->sessions_ok));
        }
        if (st->rss_after_kb >= 0)
            json_object_set_new(rss, "after_kb", json_integer(st->rss_after_kb));
        json_object_set_new(r, "rss", rss);
    }
    if (o->cold_start)
        json_object_set_new(
            r, "cold_start_ms",
            json_pack("{s:f,s:f}", "healthz", st->cold_health_ms, "first_call", st->cold_call_ms));
    char *s = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(6));
    printf("%s\n", s ? s : "{}");
    free(s);
    json_decref(r);
}

static void lat_row(const char *name, const mg_bench_hist_t *h)
{
    printf("%-14s p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f  (n=%llu)\n", name,
           mg_bench_ms(mg_bench_hist_quantile(h, 0.50)), mg_bench_ms(mg_bench_hist_quantile(h, 0.90)),
           mg_bench_ms(mg_bench_hist_quantile(h, 0.99)), mg_bench_ms(mg_bench_hist_quantile(h, 0.999)),
           mg_bench_ms(h->max), h->n ? h->sum / (double)h->n / 1e6 : 0.0, (unsigned long long)h->n);
}

void mg_bench_stats_report(const mg_bench_stats_t *st, const mg_bench_opts_t *o, const char *mode)
{
    if (o->json) {
        report_json(st, o, mode);
        return;
    }
    double w = window_s(st);
    printf("mcpgate-bench %s  %s  mode=%s%s%s\n", MG_BENCH_VERSION, o->url, mode, o->label ? "  label=" : "",
           o->label ? o->label : "");
    if (o->cold_start) {
        printf("%-14s exec->healthz %.1f ms  exec->first tool call %.1f ms\n", "cold start",
               st->cold_health_ms, st->cold_call_ms);
    } else {
        printf("%-14s requested %u  ok %llu  failed %llu  setup %.3f s  reconnects %llu\n", "sessions",
               o->sessions, (unsigned long long)st->sessions_ok, (unsigned long long)st->sessions_failed,
               st->t_setup_end > st->t_setup_start ? (double)(st->t_setup_end - st->t_setup_start) / 1e9
                                                   : 0.0,
               (unsigned long long)st->reconnects);
        lat_row("setup ms", &st->setup);
        if (o->hold <= 0) {
            printf("%-14s ok %llu  failed %llu  unsent %llu  in %.3f s  =>  %.1f calls/s\n", "calls",
                   (unsigned long long)st->calls_ok, (unsigned long long)st->calls_failed,
                   (unsigned long long)st->calls_unsent, w, w > 0 ? (double)st->calls_ok / w : 0.0);
            lat_row(o->rate > 0 ? "latency ms*" : "latency ms", &st->calls);
            if (o->rate > 0)
                printf("%-14s (*open loop at %.1f calls/s: measured from each call's scheduled time)\n", "",
                       o->rate);
        }
    }
    if (st->rss_before_kb >= 0) {
        printf("%-14s pid %d (+%u descendants)  before %.1f MiB", "rss", o->rss_pid,
               st->rss_procs ? st->rss_procs - 1 : 0, (double)st->rss_before_kb / 1024);
        if (st->rss_setup_kb >= 0)
            printf("  with sessions %.1f MiB  per session %.1f KiB", (double)st->rss_setup_kb / 1024,
                   st->sessions_ok ? (double)(st->rss_setup_kb - st->rss_before_kb) / (double)st->sessions_ok
                                   : 0.0);
        if (st->rss_after_kb >= 0)
            printf("  after %.1f MiB", (double)st->rss_after_kb / 1024);
        printf("\n");
    }
    if (st->n_errs == 0 && st->errs_other == 0) {
        printf("%-14s none\n", "errors");
    } else {
        printf("%-14s\n", "errors");
        for (unsigned i = 0; i < st->n_errs; i++)
            printf("  %-40s %llu%s%s\n", st->errs[i].kind, (unsigned long long)st->errs[i].count,
                   st->errs[i].sample[0] ? "  first: " : "", st->errs[i].sample);
        if (st->errs_other)
            printf("  %-40s %llu\n", "other", (unsigned long long)st->errs_other);
    }
}
