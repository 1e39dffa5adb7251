/*
 * test_journal.c - the call journal (src/obs/journal.c, journal_verify.c): the chain across
 * rotated files and restarts, HMAC checkpoints, every kind of tampering verify must catch, a full
 * queue (gap line), a failing disk (counted, never blocking, close within its deadline), and the
 * chain filled in by the writer across failed and retried writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "obs/journal.h"

static const unsigned char KEY[] = "0123456789abcdef-journal-key";

typedef struct fixture {
    char dir[128];
    char path[200];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mg-journal-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/journal.jsonl", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char p[400];
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void closed_cb(void *data)
{
    (*(int *)data)++;
}

/* Opens, appends n call records (each ~120 bytes), closes and runs the loop until it is done. */
static void write_journal(const char *path, int n, uint64_t max_bytes, unsigned every, size_t queue)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_journal_opts_t o = {.path = path,
                           .key = KEY,
                           .keylen = sizeof KEY - 1,
                           .max_bytes = max_bytes,
                           .checkpoint_every = every,
                           .queue_bytes = queue};
    mg_journal_t *j = NULL;
    char why[300];
    assert_int_equal(mg_journal_open(&loop, &o, NULL, &j, why, sizeof why), 0);
    for (int i = 0; i < n; i++) {
        json_t *r = json_pack("{s:s,s:s,s:i}", "method", "tools/call", "name", "echo", "i", i);
        assert_int_equal(mg_journal_append(j, "call", r), 0);
        json_decref(r);
        if (i % 7 == 0)
            uv_run(&loop, UV_RUN_NOWAIT); /* writes overlap appends */
    }
    int done = 0;
    mg_journal_close(j, 2000, closed_cb, &done);
    assert_int_equal(done, 0); /* never from inside close */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static int verify(const char *path, const unsigned char *key, int partial, char *out, size_t cap)
{
    FILE *f = tmpfile();
    mg_journal_verify_opts_t o = {
        .key = key, .keylen = key ? strlen((const char *)key) : 0, .partial = partial, .out = f};
    int rc = mg_journal_verify(path, &o);
    rewind(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
    return rc;
}

/* Rewrites file through edit(lines, n) (lines are malloc'd, may be freed / reordered). */
static void edit_file(const char *file, void (*edit)(char **lines, size_t *n))
{
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    char *lines[20000];
    size_t n = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0 && n < 20000) {
        lines[n++] = line;
        line = NULL;
        cap = 0;
    }
    free(line);
    fclose(f);
    edit(lines, &n);
    f = fopen(file, "w");
    for (size_t i = 0; i < n; i++) {
        fputs(lines[i], f);
        free(lines[i]);
    }
    fclose(f);
}

static void change_one_char(char **l, size_t *n)
{
    char *p = strstr(l[*n / 2], "echo");
    if (p == NULL)
        p = strstr(l[*n / 2 + 1], "echo");
    assert_non_null(p);
    p[0] = 'E';
}
static void delete_one(char **l, size_t *n)
{
    free(l[3]);
    memmove(&l[3], &l[4], (*n - 4) * sizeof *l);
    (*n)--;
}
static void swap_two(char **l, size_t *n)
{
    char *t = l[5];
    l[5] = l[6];
    l[6] = t;
}
static void drop_last(char **l, size_t *n)
{
    free(l[--*n]);
}

static void count_files(const fixture_t *f, int *n)
{
    DIR *d = opendir(f->dir);
    struct dirent *e;
    *n = 0;
    while ((e = readdir(d)) != NULL)
        *n += e->d_name[0] != '.';
    closedir(d);
}

static void test_chain_rotation_restart(void **state)
{
    fixture_t *f = *state;
    char out[4096];
    write_journal(f->path, 300, 8192, 50, 0);
    int files;
    count_files(f, &files);
    assert_true(files >= 4); /* ~40 KiB in 8 KiB files */
    assert_int_equal(verify(f->path, KEY, 0, out, sizeof out), 0);
    assert_non_null(strstr(out, "intact"));
    assert_non_null(strstr(out, "every HMAC verified"));
    /* a restart continues the chain: seq and prev carry on */
    write_journal(f->path, 20, 8192, 50, 0);
    assert_int_equal(verify(f->path, KEY, 0, out, sizeof out), 0);
    assert_null(strstr(out, "warning")); /* a clean close ends with a checkpoint */
    /* the wrong key fails at the first checkpoint */
    assert_int_equal(verify(f->path, (const unsigned char *)"another-key-of-16-bytes", 0, out, sizeof out),
                     1);
    assert_non_null(strstr(out, "wrong HMAC"));
    /* without a key the chain is still checked */
    assert_int_equal(verify(f->path, NULL, 0, out, sizeof out), 0);
    assert_non_null(strstr(out, "not checked"));
}

/* Many batches through one live file (~1 MiB: written chunks are reused for later lines): every line
 * is there, in order, and the chain holds. */
static void test_many_batches(void **state)
{
    fixture_t *f = *state;
    char out[4096];
    write_journal(f->path, 4000, 0, 1000, 0);
    FILE *fp = fopen(f->path, "r");
    assert_non_null(fp);
    int lines = 0, c;
    while ((c = fgetc(fp)) != EOF)
        lines += c == '\n';
    fclose(fp);
    assert_int_equal(lines, 4000 + 1 + 4 + 1); /* open, a checkpoint per 1000 lines, close */
    assert_int_equal(verify(f->path, KEY, 0, out, sizeof out), 0);
    assert_non_null(strstr(out, "intact"));
}

static void tamper_case(fixture_t *f, const char *file_suffix, void (*edit)(char **, size_t *),
                        const char *expect)
{
    char out[4096], file[300];
    write_journal(f->path, 120, 6000, 25, 0);
    char rotated[300] = "";
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) /* the first rotated file */
        if (strncmp(e->d_name, "journal.jsonl.", 14) == 0 &&
            (rotated[0] == '\0' || strcmp(e->d_name, rotated) < 0))
            snprintf(rotated, sizeof rotated, "%s", e->d_name);
    closedir(d);
    assert_true(rotated[0] != '\0');
    if (strcmp(file_suffix, "rotated") == 0)
        snprintf(file, sizeof file, "%s/%s", f->dir, rotated);
    else
        snprintf(file, sizeof file, "%s", f->path);
    assert_int_equal(verify(f->path, KEY, 0, out, sizeof out), 0);
    edit_file(file, edit);
    assert_int_equal(verify(f->path, KEY, 0, out, sizeof out), 1);
    assert_non_null(strstr(out, expect));
}

static void test_tamper_edit(void **state)
{
    tamper_case(*state, "live", change_one_char, "broken");
}
static void test_tamper_delete(void **state)
{
    tamper_case(*state, "rotated", delete_one, "does not chain");
}
static void test_tamper_reorder(void **state)
{
    tamper_case(*state, "live", swap_two, "does not chain");
}
static void test_tamper_truncate_rotated(void **state)
{
    /* the rotated file loses its last line: the next file no longer chains to it */
    tamper_case(*state, "rotated", drop_last, "broken");
}

static void test_missing_files(void **state)
{
    fixture_t *f = *state;
    char out[4096], first[300] = "", second[300] = "";
    write_journal(f->path, 200, 6000, 25, 0);
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "journal.jsonl.", 14) != 0)
            continue;
        if (first[0] == '\0' || strcmp(e->d_name, first) < 0) {
            snprintf(second, sizeof second, "%s", first);
            snprintf(first, sizeof first, "%s", e->d_name);
        } else if (second[0] == '\0' || strcmp(e->d_name, second) < 0) {
            snprintf(second, sizeof second, "%s", e->d_name);
        }
    }
    closedir(d);
    char p[400];
    /* a file in the middle removed */
    snprintf(p, sizeof p, "%s/%s", f->dir, second);
    char saved[400];
    snprintf(saved, sizeof saved, "%s/saved", f->dir);
    assert_int_equal(rename(p, saved), 0);
    assert_int_equal(verify(f->path, KEY, 0, out, sizeof out), 1);
    assert_int_equal(rename(saved, p), 0);
    assert_int_equal(verify(f->path, KEY, 0, out, sizeof out), 0);
    /* the oldest removed: broken, unless --partial says it was pruned on purpose */
    snprintf(p, sizeof p, "%s/%s", f->dir, first);
    unlink(p);
    assert_int_equal(verify(f->path, KEY, 0, out, sizeof out), 1);
    assert_non_null(strstr(out, "starts at seq"));
    assert_int_equal(verify(f->path, KEY, 1, out, sizeof out), 0);
}

static void test_queue_full_gap(void **state)
{
    fixture_t *f = *state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_journal_opts_t o = {.path = f->path, .key = KEY, .keylen = sizeof KEY - 1, .queue_bytes = 65536};
    mg_journal_t *j;
    char why[200], out[4096];
    assert_int_equal(mg_journal_open(&loop, &o, NULL, &j, why, sizeof why), 0);
    json_t *big = json_pack(
        "{s:s%}", "pad",
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        (size_t)150);
    int dropped = 0;
    for (int i = 0; i < 1000; i++) /* the loop does not run: nothing is written meanwhile */
        dropped += mg_journal_append(j, "call", big) != 0;
    assert_true(dropped > 0);
    mg_journal_stats_t st;
    mg_journal_get_stats(j, &st);
    assert_int_equal(st.dropped, (uint64_t)dropped);
    uv_run(&loop, UV_RUN_NOWAIT);
    while (mg_journal_get_stats(j, &st), st.queued_bytes > 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(mg_journal_append(j, "call", big), 0); /* after a "gap" line */
    json_decref(big);
    int done = 0;
    mg_journal_close(j, 2000, closed_cb, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(verify(f->path, KEY, 0, out, sizeof out), 0);
    assert_non_null(strstr(out, "were dropped"));
    assert_non_null(strstr(out, "gap"));
}

static void test_disk_full(void **state)
{
    /* /dev/full: every write fails with ENOSPC */
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_journal_opts_t o = {.path = "/dev/full", .queue_bytes = 65536};
    mg_journal_t *j;
    char why[200];
    if (access("/dev/full", W_OK) != 0)
        skip();
    assert_int_equal(mg_journal_open(&loop, &o, NULL, &j, why, sizeof why), 0);
    json_t *r = json_pack("{s:s}", "name", "x");
    uint64_t t0 = uv_now(&loop);
    for (int i = 0; i < 50; i++) {
        mg_journal_append(j, "call", r);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    mg_journal_stats_t st;
    for (int i = 0; i < 200 && (mg_journal_get_stats(j, &st), st.write_errors == 0); i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(st.write_errors > 0);
    assert_int_equal(st.failing, 1);
    json_decref(r);
    int done = 0;
    mg_journal_close(j, 300, closed_cb, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    uv_update_time(&loop);
    assert_true(uv_now(&loop) - t0 < 5000);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The writer fills in prev hashes and HMACs (journal.c chain_lines): writes that fail halfway
 * (a file size limit: EFBIG), lines appended to the chunk the failed write gave back, then writes
 * that work again must still give a chain that verifies, each line chained once. */
static void test_chain_across_failed_writes(void **state)
{
    fixture_t *f = *state;
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    mg_journal_opts_t o = {
        .path = f->path, .key = KEY, .keylen = sizeof KEY - 1, .checkpoint_every = 5, .queue_bytes = 1 << 20};
    mg_journal_t *j = NULL;
    char why[300];
    assert_int_equal(mg_journal_open(&loop, &o, NULL, &j, why, sizeof why), 0);
    lim = old;
    lim.rlim_cur = 1500; /* a few lines fit, then writes fail */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    json_t *r = json_pack("{s:s,s:s}", "method", "tools/call", "name", "echo");
    for (int i = 0; i < 30; i++)
        assert_int_equal(mg_journal_append(j, "call", r), 0);
    mg_journal_stats_t st;
    for (int i = 0; i < 500 && (mg_journal_get_stats(j, &st), st.write_errors == 0); i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(st.write_errors > 0);
    assert_true(st.bytes_written > 0); /* some lines made it before the limit */
    for (int i = 0; i < 20; i++)       /* into the chunk the failed write gave back */
        assert_int_equal(mg_journal_append(j, "call", r), 0);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    for (int i = 0; i < 500 && (mg_journal_get_stats(j, &st), st.failing || st.queued_bytes > 0); i++)
        uv_run(&loop, UV_RUN_ONCE); /* the retry (1 s) writes the rest */
    assert_int_equal(st.failing, 0);
    json_decref(r);
    int done = 0;
    mg_journal_close(j, 2000, closed_cb, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(done, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    signal(SIGXFSZ, was);
    char out[4096];
    assert_int_equal(verify(f->path, KEY, 0, out, sizeof out), 0);
    assert_non_null(strstr(out, "intact: "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_rotation_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_edit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_reorder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_truncate_rotated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full_gap, setup, teardown),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test_setup_teardown(test_chain_across_failed_writes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
