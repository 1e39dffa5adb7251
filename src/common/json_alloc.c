/* json_alloc.c - per-thread lists of small freed blocks for jansson (contract in json_alloc.h). */
#include "json_alloc.h"

#include <jansson.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

#define MIN_BLOCK 24 /* the smallest usable size glibc gives on 64-bit; class k holds >= 24 + 16k */

typedef struct kept {
    struct kept *next;
} kept_t;

static __thread kept_t *lists[MG_JSON_ALLOC_CLASSES];
static __thread unsigned counts[MG_JSON_ALLOC_CLASSES];
static __thread int registered; /* this thread's lists are freed when it exits */

static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

/* A thread's exit: its kept blocks go back to malloc. */
static void thread_exit(void *unused)
{
    (void)unused;
    for (size_t k = 0; k < MG_JSON_ALLOC_CLASSES; k++) {
        while (lists[k] != NULL) {
            kept_t *b = lists[k];
            lists[k] = b->next;
            free(b);
        }
        counts[k] = 0;
    }
}

static void exit_key_make(void)
{
    if (pthread_key_create(&exit_key, thread_exit) != 0)
        exit_key = (pthread_key_t)-1;
}

/* 1 when this thread may keep blocks: its exit will free them (asked once per thread). */
static int may_keep(void)
{
    if (registered == 0) {
        pthread_once(&exit_once, exit_key_make);
        registered =
            exit_key != (pthread_key_t)-1 && pthread_setspecific(exit_key, &registered) == 0 ? 1 : -1;
    }
    return registered > 0;
}

void *mg_json_alloc(size_t n)
{
    size_t k = n <= MIN_BLOCK ? 0 : (n - MIN_BLOCK + 15) / 16;
    if (k < MG_JSON_ALLOC_CLASSES && lists[k] != NULL) {
        kept_t *b = lists[k];
        lists[k] = b->next;
        counts[k]--;
        return b;
    }
    /* a miss asks for the class's whole size, so the block comes back to this class when freed */
    return malloc(k < MG_JSON_ALLOC_CLASSES ? MIN_BLOCK + 16 * k : n);
}

void mg_json_free(void *p)
{
    if (p == NULL)
        return;
    size_t u = malloc_usable_size(p);
    if (u >= MIN_BLOCK) {
        size_t k = (u - MIN_BLOCK) / 16; /* rounded down: every request of class k fits */
        if (k < MG_JSON_ALLOC_CLASSES && counts[k] < MG_JSON_ALLOC_KEEP && (registered > 0 || may_keep())) {
            kept_t *b = p;
            b->next = lists[k];
            lists[k] = b;
            counts[k]++;
            return;
        }
    }
    free(p);
}

size_t mg_json_alloc_kept(void)
{
    size_t n = 0;
    for (size_t k = 0; k < MG_JSON_ALLOC_CLASSES; k++)
        n += counts[k];
    return n;
}

void mg_json_alloc_install(void)
{
#if !defined(MG_SANITIZE) && !defined(MG_FUZZING)
    json_set_alloc_funcs(mg_json_alloc, mg_json_free);
#endif
}
