/*
 * proc.c - process facts for mcpgate-bench: RSS of a process tree, the file descriptor limit.
 *
 * Contract: mg_bench_proc_rss_tree() sums VmRSS over a pid and every descendant found by walking
 * /proc/<pid>/stat parent links once (a peer that spawns one child per session, like supergateway's
 * stateful mode, is charged for its children). Shared pages are counted in every process, so the
 * sum is an upper bound; the per-session figure is a difference of two sums and is not affected
 * by what the processes already shared before.
 * Read next: run.c (when the samples are taken).
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench.h"

static long vmrss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long kb = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

static int parent_of(int pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *rp = strrchr(buf, ')'); /* comm may contain spaces and parentheses */
    int ppid = -1;
    char state;
    if (rp == NULL || sscanf(rp + 1, " %c %d", &state, &ppid) != 2)
        return -1;
    return ppid;
}

long mg_bench_proc_rss_tree(int pid, unsigned *nprocs)
{
    *nprocs = 0;
    long root = vmrss_kb(pid);
    if (root < 0)
        return -1;
    size_t cap = 1024, n = 0;
    int(*pairs)[2] = malloc(cap * sizeof *pairs);
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (pairs != NULL && d != NULL && (e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        int p = atoi(e->d_name);
        int pp = parent_of(p);
        if (pp <= 0)
            continue;
        if (n == cap) {
            void *np = realloc(pairs, 2 * cap * sizeof *pairs);
            if (np == NULL)
                break;
            pairs = np;
            cap *= 2;
        }
        pairs[n][0] = p;
        pairs[n][1] = pp;
        n++;
    }
    if (d != NULL)
        closedir(d);
    /* breadth-first over the parent links: tree[] holds the pids found so far */
    size_t tcap = 64, tn = 1;
    int *tree = malloc(tcap * sizeof *tree);
    long total = root;
    if (tree != NULL && pairs != NULL) {
        tree[0] = pid;
        for (size_t i = 0; i < tn; i++) {
            for (size_t j = 0; j < n; j++) {
                if (pairs[j][1] != tree[i])
                    continue;
                if (tn == tcap) {
                    int *nt = realloc(tree, 2 * tcap * sizeof *tree);
                    if (nt == NULL)
                        break;
                    tree = nt;
                    tcap *= 2;
                }
                tree[tn++] = pairs[j][0];
                long kb = vmrss_kb(pairs[j][0]);
                if (kb > 0)
                    total += kb;
            }
        }
    }
    *nprocs = (unsigned)tn;
    free(tree);
    free(pairs);
    return total;
}

long mg_bench_proc_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}
