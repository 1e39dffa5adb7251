/*
 * mem.h - zeroed allocation for the request path.
 *
 * glibc (2.36, Debian 12) serves calloc() without its per-thread cache: every calloc takes the
 * arena's slow path (~300 instructions for a 300-700 byte struct), where malloc() from the cache
 * and a memset cost ~60. mg_zalloc is calloc(1, n) for the few structs made once per request
 * (bench/results/2026-12-06-pipeline-speed-4.md); elsewhere calloc stays.
 */
#ifndef MG_MEM_H
#define MG_MEM_H

#include <stdlib.h>
#include <string.h>

/* calloc(1, n): n zeroed bytes, NULL on ENOMEM; free() it. */
static inline void *mg_zalloc(size_t n)
{
    void *p = malloc(n);
    if (p != NULL) {
        __asm__ volatile("" : : "r"(p) : "memory"); /* keeps GCC from folding this back into calloc */
        memset(p, 0, n);
    }
    return p;
}

#endif
