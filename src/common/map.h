/*
 * map.h - a small string -> pointer hash map (open addressing, linear probing, tombstones).
 *
 * Keys are copied; values are borrowed pointers the caller owns. Used for the session table and
 * other id lookups on the hot path. Not thread-safe (one loop per process).
 */
#ifndef MG_MAP_H
#define MG_MAP_H

#include <stddef.h>

typedef struct mg_map_slot {
    char *key; /* NULL = empty; MG__MAP_TOMB = deleted */
    void *value;
} mg_map_slot_t;

typedef struct mg_map {
    mg_map_slot_t *slots;
    size_t cap;   /* power of two */
    size_t count; /* live keys */
    size_t used;  /* live + tombstones */
} mg_map_t;

void mg_map_init(mg_map_t *m);
void mg_map_dispose(mg_map_t *m);
/* Returns the value or NULL. */
void *mg_map_get(const mg_map_t *m, const char *key);
/* Inserts or replaces. Returns 0 or MG_ENOMEM. */
int mg_map_set(mg_map_t *m, const char *key, void *value);
/* Removes; returns the old value or NULL. */
void *mg_map_del(mg_map_t *m, const char *key);
/* Iteration: *pos starts at 0; returns 1 and fills key/value while entries remain. Deleting the
 * current key during iteration is allowed. */
int mg_map_next(const mg_map_t *m, size_t *pos, const char **key, void **value);

#endif
