/*
 * map.c - string -> pointer hash map (map.h). FNV-1a hashing, load factor <= 1/2.
 */
#include "map.h"
#include "err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static char tomb_marker;
#define TOMB (&tomb_marker)

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

void mg_map_init(mg_map_t *m)
{
    memset(m, 0, sizeof(*m));
}

void mg_map_dispose(mg_map_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key != NULL && m->slots[i].key != TOMB)
            free(m->slots[i].key);
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

static mg_map_slot_t *find(const mg_map_t *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
        mg_map_slot_t *s = &m->slots[i];
        if (s->key == NULL)
            return NULL;
        if (s->key != TOMB && strcmp(s->key, key) == 0)
            return s;
    }
}

void *mg_map_get(const mg_map_t *m, const char *key)
{
    mg_map_slot_t *s = find(m, key);
    return s ? s->value : NULL;
}

static int grow(mg_map_t *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    while (m->count * 2 >= ncap)
        ncap *= 2;
    mg_map_slot_t *ns = calloc(ncap, sizeof(*ns));
    if (ns == NULL)
        return MG_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        mg_map_slot_t *s = &m->slots[i];
        if (s->key == NULL || s->key == TOMB)
            continue;
        size_t j = hash(s->key) & (ncap - 1);
        while (ns[j].key != NULL)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    m->used = m->count;
    return 0;
}

int mg_map_set(mg_map_t *m, const char *key, void *value)
{
    mg_map_slot_t *s = find(m, key);
    if (s != NULL) {
        s->value = value;
        return 0;
    }
    if ((m->used + 1) * 2 > m->cap && grow(m) != 0)
        return MG_ENOMEM;
    char *k = strdup(key);
    if (k == NULL)
        return MG_ENOMEM;
    size_t mask = m->cap - 1;
    size_t i = hash(key) & mask;
    while (m->slots[i].key != NULL && m->slots[i].key != TOMB)
        i = (i + 1) & mask;
    if (m->slots[i].key == NULL)
        m->used++;
    m->slots[i].key = k;
    m->slots[i].value = value;
    m->count++;
    return 0;
}

void *mg_map_del(mg_map_t *m, const char *key)
{
    mg_map_slot_t *s = find(m, key);
    if (s == NULL)
        return NULL;
    void *v = s->value;
    free(s->key);
    s->key = TOMB;
    s->value = NULL;
    m->count--;
    return v;
}

int mg_map_next(const mg_map_t *m, size_t *pos, const char **key, void **value)
{
    for (; *pos < m->cap; (*pos)++) {
        mg_map_slot_t *s = &m->slots[*pos];
        if (s->key != NULL && s->key != TOMB) {
            *key = s->key;
            *value = s->value;
            (*pos)++;
            return 1;
        }
    }
    return 0;
}
