/*
 * table.c - the per-child in-flight table: upstream id -> request.
 *
 * Open addressing with linear probing and backward-shift deletion; the layout and the rules are
 * the "In-flight table" table in upstream_int.h. Read next: upstream.c (who inserts and removes).
 */
#include "upstream_int.h"

#include <stdlib.h>
#include <string.h>

#include "../common/err.h"

#define MIN_CAP 16u

static size_t slot_of(const mg__idtable_t *t, int64_t id)
{
    return (size_t)(((uint64_t)id * UINT64_C(0x9E3779B97F4A7C15)) >> t->shift);
}

void mg__idtable_init(mg__idtable_t *t)
{
    memset(t, 0, sizeof *t);
}

void mg__idtable_dispose(mg__idtable_t *t)
{
    free(t->e);
    memset(t, 0, sizeof *t);
}

static void insert_raw(mg__idtable_t *t, int64_t id, mg_upstream_req_t *req)
{
    size_t mask = t->cap - 1;
    size_t i = slot_of(t, id);
    while (t->e[i].req != NULL)
        i = (i + 1) & mask;
    t->e[i].id = id;
    t->e[i].req = req;
    t->count++;
}

static int grow(mg__idtable_t *t)
{
    size_t ncap = t->cap ? t->cap * 2 : MIN_CAP;
    mg__idtable_entry_t *ne = calloc(ncap, sizeof *ne);
    if (ne == NULL)
        return MG_ENOMEM;
    unsigned bits = 0;
    while (((size_t)1 << bits) < ncap)
        bits++;
    mg__idtable_entry_t *old = t->e;
    size_t ocap = t->cap;
    t->e = ne;
    t->cap = ncap;
    t->shift = 64 - bits;
    t->count = 0;
    for (size_t i = 0; i < ocap; i++) {
        if (old[i].req != NULL)
            insert_raw(t, old[i].id, old[i].req);
    }
    free(old);
    return 0;
}

int mg__idtable_put(mg__idtable_t *t, int64_t id, mg_upstream_req_t *req)
{
    if ((t->count + 1) * 2 > t->cap) {
        int rc = grow(t);
        if (rc != 0)
            return rc;
    }
    insert_raw(t, id, req);
    return 0;
}

static size_t find(const mg__idtable_t *t, int64_t id)
{
    if (t->cap == 0)
        return SIZE_MAX;
    size_t mask = t->cap - 1;
    for (size_t i = slot_of(t, id);; i = (i + 1) & mask) {
        if (t->e[i].req == NULL)
            return SIZE_MAX;
        if (t->e[i].id == id)
            return i;
    }
}

mg_upstream_req_t *mg__idtable_get(const mg__idtable_t *t, int64_t id)
{
    size_t i = find(t, id);
    return i == SIZE_MAX ? NULL : t->e[i].req;
}

mg_upstream_req_t *mg__idtable_del(mg__idtable_t *t, int64_t id)
{
    size_t i = find(t, id);
    if (i == SIZE_MAX)
        return NULL;
    mg_upstream_req_t *req = t->e[i].req;
    size_t mask = t->cap - 1;
    /* Backward shift: move later members of the probe chain into the hole when their home slot
     * does not lie cyclically in (hole, j]. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; t->e[j].req != NULL; j = (j + 1) & mask) {
        size_t home = slot_of(t, t->e[j].id);
        int stays = (hole <= j) ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            t->e[hole] = t->e[j];
            hole = j;
        }
    }
    t->e[hole].req = NULL;
    t->e[hole].id = 0;
    t->count--;
    return req;
}

void mg__idtable_clear(mg__idtable_t *t)
{
    if (t->e != NULL)
        memset(t->e, 0, t->cap * sizeof *t->e);
    t->count = 0;
}
