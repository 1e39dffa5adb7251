/*
 * searchbench.c - mcpgate-searchbench: the quality and cost of the tool search index
 * (src/toolsearch/index.c) in process, on the recorded catalogs of test/fixture/catalogs/.
 *
 *   mcpgate-searchbench [--catalogs DIR] [--scale N] [--runs N] [--json] [--check] [--verbose]
 *
 * Loads every recorded catalog (files with a "tools" array; tools exposed as <server>__<tool>, as a
 * gateway fronting all of them lists them), then scores the query sets: queries.json ("project",
 * 85 queries) and phrasings.json ("tune" and "heldout"): top-5 and top-1 hit rates. Misses are
 * printed for "project" and "tune" only: the held-out half is scored in aggregate, never studied.
 * Then the cost: index build time (median and worst of --runs builds), index memory, and the
 * latency of each search (p50, p99, max over every query of every set, --runs rounds), all in
 * CPU time of the thread (the machine's load does not count).
 * --scale N adds N-tool figures. The scale set is the recorded catalogs plus the real catalogs of
 * DIR/more/ (recorded the same way: record-catalogs.mjs --more); the query sets are scored on it
 * too (strict: only the expected tools count, though a distractor may do the job as well). When
 * that is fewer than N tools, copies under other server names (<server>-2, ...) fill the rest, as a
 * gateway fronting several instances of the same servers would list them: for timing and memory
 * only (duplicates make hit rates meaningless).
 * --without PART (stem, exact, thesaurus, fields, server, clauses, shell, quotes, questions,
 * phrases, fallback; repeatable): the same
 * with one part of the search off, to measure what it contributes. --with prf turns on the one part
 * that is off by default (pseudo-relevance feedback, measured and not kept).
 * --check: exit 1 unless the held-out half reaches MIN_TOP5 / MIN_TOP1 (CTest toolsearch_quality).
 * Exit status: 0, 1 (check failed), 2 (usage or unreadable fixture).
 */
#include "toolsearch/toolsearch.h"
#include "toolsearch/toolsearch_int.h"

#include <dirent.h>
#include <jansson.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIN_TOP5 90.0
#define MIN_TOP1 60.0
#define TOPK     5

typedef struct qset {
    const char *name;
    json_t *queries; /* [{q, expect:[...]}] borrowed from the loaded file */
    int studied;     /* misses may be printed */
    size_t top5, top1, n;
} qset_t;

/* CPU time of this thread: on a shared, loaded machine wall time measures the neighbours. */
static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the recorded catalogs of dir to tools (exposed names) and servers (tools[i]'s server). */
static int load_catalogs(const char *dir, json_t *tools, json_t *servers)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "searchbench: cannot open %s\n", dir);
        return -1;
    }
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 256) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".json") == 0)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        json_t *cat = json_load_file(path, 0, NULL);
        const char *server = json_string_value(json_object_get(cat, "server"));
        size_t k;
        json_t *t;
        json_array_foreach(json_object_get(cat, "tools"), k, t)
        {
            if (server == NULL)
                break;
            json_t *c = json_deep_copy(t);
            char exposed[512];
            snprintf(exposed, sizeof exposed, "%s__%s", server,
                     json_string_value(json_object_get(t, "name")));
            json_object_set_new(c, "name", json_string(exposed));
            json_array_append_new(tools, c);
            json_array_append_new(servers, json_string(server));
        }
        json_decref(cat);
        free(names[i]);
    }
    return 0;
}

/* tools repeated under <server>-2, -3, ... until n tools, or cut to n (NEW refs). */
static void scale_catalog(const json_t *tools, const json_t *servers, size_t n, json_t **t_out,
                          json_t **s_out)
{
    json_t *t = json_array(), *s = json_array();
    size_t base = json_array_size(tools);
    for (size_t i = 0; i < n && base > 0; i++) {
        size_t copy = i / base, k = i % base;
        const char *server = json_string_value(json_array_get(servers, k));
        const char *name = json_string_value(json_object_get(json_array_get(tools, k), "name"));
        char srv[256], exposed[512];
        if (copy == 0)
            snprintf(srv, sizeof srv, "%s", server);
        else
            snprintf(srv, sizeof srv, "%s-%zu", server, copy + 1);
        snprintf(exposed, sizeof exposed, "%s%s", srv, name + strlen(server));
        json_t *c = json_deep_copy(json_array_get(tools, k));
        json_object_set_new(c, "name", json_string(exposed));
        json_array_append_new(t, c);
        json_array_append_new(s, json_string(srv));
    }
    *t_out = t;
    *s_out = s;
}

static int expected(const json_t *expect, const char *name)
{
    size_t i;
    json_t *e;
    json_array_foreach((json_t *)expect, i, e)
    {
        if (name != NULL && strcmp(json_string_value(e), name) == 0)
            return 1;
    }
    return 0;
}

static void score(mg_toolsearch_index_t *ix, const json_t *tools, qset_t *qs, int print, int verbose)
{
    size_t i;
    json_t *q;
    json_array_foreach(qs->queries, i, q)
    {
        const char *text = json_string_value(json_object_get(q, "q"));
        const json_t *expect = json_object_get(q, "expect");
        size_t pos[TOPK];
        int n = mg_toolsearch_index_search(ix, text, pos, TOPK);
        int hit = 0, first = 0;
        for (int k = 0; k < n; k++) {
            const char *name = json_string_value(json_object_get(json_array_get(tools, pos[k]), "name"));
            if (expected(expect, name)) {
                hit = 1;
                first |= k == 0;
            }
        }
        qs->n++;
        qs->top5 += hit;
        qs->top1 += first;
        if (print && qs->studied && (verbose || !hit)) {
            printf("  %s %-4s \"%s\" ->", qs->name, hit ? (first ? "TOP1" : "HIT") : "MISS", text);
            for (int k = 0; k < n; k++)
                printf(" %s", json_string_value(json_object_get(json_array_get(tools, pos[k]), "name")));
            printf("%s\n", n == 0 ? " (nothing)" : "");
        }
    }
}

typedef struct cost {
    size_t tools;
    size_t lazy_tokens; /* the first tools/list of lazy mode: search_tools naming every server */
    double build_cold, build_med, build_max, p50, p99, max;
    size_t bytes, heap;
} cost_t;

static int measure(const json_t *tools, const json_t *servers, qset_t *sets, size_t nsets, int runs,
                   cost_t *c)
{
    double *builds = calloc((size_t)runs, sizeof *builds);
    mg_toolsearch_index_t *ix = NULL, *warm = NULL;
    /* The first index of a process also parses the thesaurus (shared by later ones): timed apart. */
    double t_cold = now_ms();
    if (mg_toolsearch_index_new(tools, servers, &warm) != 0)
        return -1;
    c->build_cold = now_ms() - t_cold;
    for (int r = 0; r < runs; r++) {
        double t0 = now_ms();
        size_t heap0 = mallinfo2().uordblks;
        if (mg_toolsearch_index_new(tools, servers, &ix) != 0)
            return -1;
        builds[r] = now_ms() - t0;
        /* The heap the index holds, allocator overhead included (glibc; not under ASan). */
        size_t heap1 = mallinfo2().uordblks;
        c->heap = heap1 > heap0 ? heap1 - heap0 : 0;
        if (r + 1 < runs)
            mg_toolsearch_index_free(ix);
    }
    qsort(builds, (size_t)runs, sizeof *builds, cmp_double);
    c->tools = json_array_size(tools);
    /* The search tool's definition as the gateway builds it: [{name, tools}] per server, in order. */
    json_t *counts = json_array();
    size_t si;
    json_t *sv;
    json_array_foreach((json_t *)servers, si, sv)
    {
        json_t *last = json_array_get(counts, json_array_size(counts) - 1);
        if (last != NULL && json_equal(json_object_get(last, "name"), sv))
            json_object_set_new(last, "tools",
                                json_integer(json_integer_value(json_object_get(last, "tools")) + 1));
        else
            json_array_append_new(counts, json_pack("{s:O,s:i}", "name", sv, "tools", 1));
    }
    json_t *def = mg_toolsearch_tool_def(counts, c->tools);
    json_t *list = json_pack("[o]", def);
    c->lazy_tokens = mg_toolsearch_tokens_json(list);
    json_decref(list);
    json_decref(counts);
    c->build_med = builds[runs / 2];
    c->build_max = builds[runs - 1];
    c->bytes = mg_toolsearch_index_bytes(ix);
    size_t total = 0;
    for (size_t s = 0; s < nsets; s++)
        total += json_array_size(sets[s].queries);
    double *lat = calloc(total * (size_t)runs + 1, sizeof *lat);
    size_t m = 0;
    for (int r = 0; r < runs; r++)
        for (size_t s = 0; s < nsets; s++) {
            size_t i;
            json_t *q;
            json_array_foreach(sets[s].queries, i, q)
            {
                size_t pos[TOPK];
                double t0 = now_ms();
                mg_toolsearch_index_search(ix, json_string_value(json_object_get(q, "q")), pos, TOPK);
                lat[m++] = now_ms() - t0;
            }
        }
    qsort(lat, m, sizeof *lat, cmp_double);
    c->p50 = m ? lat[m / 2] : 0;
    c->p99 = m ? lat[(m * 99) / 100] : 0;
    c->max = m ? lat[m - 1] : 0;
    mg_toolsearch_index_free(ix);
    mg_toolsearch_index_free(warm);
    free(lat);
    free(builds);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = "test/fixture/catalogs";
    size_t scale = 0;
    int runs = 20, as_json = 0, check = 0, verbose = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--catalogs") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc)
            scale = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0)
            as_json = 1;
        else if (strcmp(argv[i], "--check") == 0)
            check = 1;
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = 1;
        else if ((strcmp(argv[i], "--without") == 0 || strcmp(argv[i], "--with") == 0) && i + 1 < argc) {
            int on = strcmp(argv[i], "--with") == 0;
            /* Ablation: turn one part of the search off (toolsearch_int.h). */
            const char *w = argv[++i];
            int *part = strcmp(w, "stem") == 0        ? &mg__ts_parts.stem
                        : strcmp(w, "thesaurus") == 0 ? &mg__ts_parts.thesaurus
                        : strcmp(w, "fields") == 0    ? &mg__ts_parts.fields
                        : strcmp(w, "server") == 0    ? &mg__ts_parts.server
                        : strcmp(w, "clauses") == 0   ? &mg__ts_parts.clauses
                        : strcmp(w, "shell") == 0     ? &mg__ts_parts.shell
                        : strcmp(w, "fallback") == 0  ? &mg__ts_parts.fallback
                        : strcmp(w, "exact") == 0     ? &mg__ts_parts.exact
                        : strcmp(w, "quotes") == 0    ? &mg__ts_parts.quotes
                        : strcmp(w, "questions") == 0 ? &mg__ts_parts.questions
                        : strcmp(w, "phrases") == 0   ? &mg__ts_parts.phrases
                        : strcmp(w, "prf") == 0       ? &mg__ts_parts.prf
                                                      : NULL;
            if (part == NULL) {
                fprintf(stderr, "searchbench: --without|--with "
                                "stem|exact|thesaurus|fields|server|clauses|shell|quotes|questions|phrases|"
                                "fallback|prf\n");
                return 2;
            }
            *part = on;
        } else {
            fprintf(stderr, "usage: mcpgate-searchbench [--catalogs DIR] [--scale N] [--runs N] [--json] "
                            "[--check] [--verbose] [--without PART]...\n");
            return 2;
        }
    }
    if (runs < 1)
        runs = 1;
    json_t *tools = json_array(), *servers = json_array();
    if (load_catalogs(dir, tools, servers) != 0 || json_array_size(tools) == 0) {
        fprintf(stderr, "searchbench: no recorded catalog in %s\n", dir);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/queries.json", dir);
    json_t *project = json_load_file(path, 0, NULL);
    snprintf(path, sizeof path, "%s/phrasings.json", dir);
    json_t *phr = json_load_file(path, 0, NULL);
    if (phr == NULL || !json_is_array(json_object_get(phr, "heldout"))) {
        fprintf(stderr, "searchbench: %s is missing or has no \"heldout\" array\n", path);
        return 2;
    }
    qset_t sets[] = {
        {"project", json_object_get(project, "queries"), 1, 0, 0, 0},
        {"tune", json_object_get(phr, "tune"), 1, 0, 0, 0},
        {"heldout", json_object_get(phr, "heldout"), 0, 0, 0, 0},
    };
    size_t nsets = sizeof sets / sizeof *sets;
    mg_toolsearch_index_t *ix = NULL;
    if (mg_toolsearch_index_new(tools, servers, &ix) != 0) {
        fprintf(stderr, "searchbench: the index could not be built\n");
        return 2;
    }
    for (size_t s = 0; s < nsets; s++)
        if (sets[s].queries != NULL)
            score(ix, tools, &sets[s], !as_json, verbose);
    mg_toolsearch_index_free(ix);
    cost_t costs[2] = {{0}};
    size_t ncosts = 0;
    if (measure(tools, servers, sets, nsets, runs, &costs[ncosts++]) != 0)
        return 2;
    json_t *real = NULL, *real_servers = NULL;
    qset_t wide[3];
    size_t nreal = 0;
    if (scale > 0) {
        /* The scale set: the recorded catalogs plus the real ones of DIR/more/, then, only if that
         * is not yet N tools, copies under other server names. */
        char more[4096];
        snprintf(more, sizeof more, "%s/more", dir);
        real = json_deep_copy(tools);
        real_servers = json_deep_copy(servers);
        load_catalogs(more, real, real_servers);
        nreal = json_array_size(real);
        /* Quality with the real distractors (strict: only the expected names count). */
        if (mg_toolsearch_index_new(real, real_servers, &ix) != 0)
            return 2;
        for (size_t s = 0; s < nsets; s++) {
            wide[s] = sets[s];
            wide[s].studied = sets[s].studied; /* with --verbose, the studied sets' misses */
            wide[s].top5 = wide[s].top1 = wide[s].n = 0;
            if (wide[s].queries != NULL)
                score(ix, real, &wide[s], verbose && !as_json && wide[s].studied, 0);
        }
        mg_toolsearch_index_free(ix);
        json_t *st, *ss;
        scale_catalog(real, real_servers, scale, &st, &ss);
        if (measure(st, ss, sets, nsets, runs, &costs[ncosts++]) != 0)
            return 2;
        json_decref(st);
        json_decref(ss);
    }
    const qset_t *held = &sets[2];
    double h5 = held->n ? 100.0 * (double)held->top5 / (double)held->n : 0,
           h1 = held->n ? 100.0 * (double)held->top1 / (double)held->n : 0;
    int ok = h5 >= MIN_TOP5 && h1 >= MIN_TOP1;
    if (as_json) {
        json_t *out = json_object(), *q = json_object(), *cs = json_array();
        for (size_t s = 0; s < nsets; s++)
            json_object_set_new(
                q, sets[s].name,
                json_pack("{s:I,s:I,s:I,s:f,s:f}", "queries", (json_int_t)sets[s].n, "top5",
                          (json_int_t)sets[s].top5, "top1", (json_int_t)sets[s].top1, "top5Percent",
                          sets[s].n ? 100.0 * (double)sets[s].top5 / (double)sets[s].n : 0.0, "top1Percent",
                          sets[s].n ? 100.0 * (double)sets[s].top1 / (double)sets[s].n : 0.0));
        for (size_t i = 0; i < ncosts; i++)
            json_array_append_new(
                cs, json_pack("{s:I,s:I,s:f,s:f,s:f,s:I,s:I,s:f,s:f,s:f}", "tools",
                              (json_int_t)costs[i].tools, "lazyListTokens", (json_int_t)costs[i].lazy_tokens,
                              "buildFirstMs", costs[i].build_cold, "buildMedianMs", costs[i].build_med,
                              "buildMaxMs", costs[i].build_max, "indexBytes", (json_int_t)costs[i].bytes,
                              "indexHeapBytes", (json_int_t)costs[i].heap, "searchP50Ms", costs[i].p50,
                              "searchP99Ms", costs[i].p99, "searchMaxMs", costs[i].max));
        json_object_set_new(out, "quality", q);
        if (real != NULL) {
            json_t *w = json_object();
            for (size_t s = 0; s < nsets; s++)
                json_object_set_new(w, wide[s].name,
                                    json_pack("{s:I,s:I,s:I}", "queries", (json_int_t)wide[s].n, "top5",
                                              (json_int_t)wide[s].top5, "top1", (json_int_t)wide[s].top1));
            json_object_set_new(out, "qualityWithDistractors",
                                json_pack("{s:I,s:o}", "tools", (json_int_t)nreal, "sets", w));
        }
        json_object_set_new(out, "cost", cs);
        json_object_set_new(out, "heldoutTarget",
                            json_pack("{s:f,s:f,s:b}", "top5", MIN_TOP5, "top1", MIN_TOP1, "met", ok));
        char *s = json_dumps(out, JSON_INDENT(2));
        puts(s);
        free(s);
        json_decref(out);
    } else {
        for (size_t s = 0; s < nsets; s++)
            printf("%-8s %3zu queries: top-5 %3zu (%5.1f%%)  top-1 %3zu (%5.1f%%)\n", sets[s].name, sets[s].n,
                   sets[s].top5, sets[s].n ? 100.0 * (double)sets[s].top5 / (double)sets[s].n : 0.0,
                   sets[s].top1, sets[s].n ? 100.0 * (double)sets[s].top1 / (double)sets[s].n : 0.0);
        if (real != NULL)
            for (size_t s = 0; s < nsets; s++)
                printf("%-8s with the %zu real tools of %s and %s/more: top-5 %5.1f%%  top-1 %5.1f%%\n",
                       wide[s].name, nreal, dir, dir,
                       wide[s].n ? 100.0 * (double)wide[s].top5 / (double)wide[s].n : 0.0,
                       wide[s].n ? 100.0 * (double)wide[s].top1 / (double)wide[s].n : 0.0);
        if (real != NULL)
            printf("scale set: %zu real tools%s\n", nreal < scale ? nreal : scale,
                   nreal < scale ? ", the rest copies of them under other server names" : "");
        for (size_t i = 0; i < ncosts; i++)
            printf(
                "%5zu tools: build %.2f ms (median of %d, worst %.2f; first of the process %.2f), index "
                "%.2f MB (heap %.2f MB), "
                "search p50 %.3f ms, p99 %.3f ms, max %.3f ms (CPU time); lazy first tools/list %zu tokens\n",
                costs[i].tools, costs[i].build_med, runs, costs[i].build_max, costs[i].build_cold,
                (double)costs[i].bytes / (1024.0 * 1024.0), (double)costs[i].heap / (1024.0 * 1024.0),
                costs[i].p50, costs[i].p99, costs[i].max, costs[i].lazy_tokens);
        printf("held-out half: top-5 %.1f%% (target %.0f%%), top-1 %.1f%% (target %.0f%%): %s\n", h5,
               MIN_TOP5, h1, MIN_TOP1, ok ? "MET" : "NOT MET");
    }
    json_decref(project);
    json_decref(phr);
    json_decref(tools);
    json_decref(servers);
    json_decref(real);
    json_decref(real_servers);
    return check && !ok ? 1 : 0;
}
