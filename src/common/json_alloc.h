/*
 * json_alloc.h - a per-thread cache of small blocks for jansson's allocations (its nodes, keys and
 * strings), installed with json_set_alloc_funcs() at start.
 *
 * Why: a tools/call builds and frees ~28 small jansson blocks (objects, their hashtables, members,
 * strings). glibc keeps at most 7 blocks per size in its per-thread cache, so most of these frees
 * and the next request's mallocs take its slower paths: ~100 instructions per free and ~70 per
 * malloc, ~5k per call (bench/results/2026-12-06-pipeline-speed-4.md). Reusing freed blocks from a
 * deeper list costs ~15 each.
 *
 * Contract:
 * - Every block handed out is a real malloc() block and every block taken back may be one from
 *   malloc() (what jansson's callers free with free(), e.g. json_dumps' text, and what libraries
 *   sharing libjansson do, are both right). A block is kept by the size malloc_usable_size() says
 *   it has (rounded down to a class: 24 + 16k bytes, k < MG_JSON_ALLOC_CLASSES) and reused only
 *   for a request that fits it; bigger ones go straight to malloc()/free().
 * - Lists are per thread (no locks); each holds at most MG_JSON_ALLOC_KEEP blocks, the rest are
 *   freed: at most classes x keep x 136 bytes per thread (~140 KiB). A thread's blocks are freed
 *   when it exits (a pthread key's destructor); the loop thread's stay until the process ends.
 * - mg_json_alloc_install() is called once, first thing in main(). With MG_SANITIZE or MG_FUZZING
 *   it installs nothing, so AddressSanitizer sees every jansson free as it happens.
 * Tests: test/unit/test_json_alloc.c.
 */
#ifndef MG_JSON_ALLOC_H
#define MG_JSON_ALLOC_H

#include <stddef.h>

#define MG_JSON_ALLOC_CLASSES 8   /* usable sizes 24, 40, ..., 136 */
#define MG_JSON_ALLOC_KEEP    128 /* blocks kept per class and thread */

/* Makes jansson allocate through mg_json_alloc/mg_json_free (nothing with sanitizers or fuzzing). */
void mg_json_alloc_install(void);

/* malloc(n), from this thread's list when a kept block fits. */
void *mg_json_alloc(size_t n);
/* free(p) (p may be NULL), keeping p on this thread's list when there is room. */
void mg_json_free(void *p);
/* Blocks this thread keeps now (tests). */
size_t mg_json_alloc_kept(void);

#endif
