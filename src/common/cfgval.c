/*
 * cfgval.c - the typed config readers of cfgval.h, the quoting of user text in messages and the
 * nearest-key suggestion. No state: everything goes through the caller's mg_cfg_t.
 */
#include "cfgval.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mg_cfg_errf(mg_cfg_t *c, const char *fmt, ...)
{
    char *m = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&m, fmt, ap);
    va_end(ap);
    c->bad = 1;
    if (n < 0) {
        c->nomem = 1;
        return;
    }
    if (c->err != NULL)
        c->err(c->ctx, m);
    free(m);
}

const char *mg_cfg_kind(const json_t *v)
{
    switch (v != NULL ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

int mg_cfg_string(mg_cfg_t *c, const char *where, const json_t *v, int flags, char **out)
{
    if (!json_is_string(v)) {
        mg_cfg_errf(c, "%s: must be a string, not %s", where, mg_cfg_kind(v));
        return -1;
    }
    char *val = NULL;
    if (c->expand != NULL && !(flags & MG_CFG_RAW)) {
        if (c->expand(c->ctx, json_string_value(v), where, (flags & MG_CFG_LENIENT) != 0, &val) != 0) {
            c->bad = 1;
            return -1;
        }
    } else if ((val = strdup(json_string_value(v))) == NULL) {
        c->nomem = 1;
        return -1;
    }
    if ((flags & MG_CFG_NONEMPTY) && val != NULL && val[0] == '\0') {
        mg_cfg_errf(c, "%s: must not be empty", where);
        free(val);
        return -1;
    }
    free(*out);
    *out = val;
    return 0;
}

int mg_cfg_string_array(mg_cfg_t *c, const char *where, const json_t *v, int flags, char ***vec, size_t *n)
{
    if ((flags & MG_CFG_LONE) && json_is_string(v)) {
        char **one = calloc(2, sizeof *one);
        if (one == NULL) {
            c->nomem = 1;
            return -1;
        }
        *vec = one;
        *n = 0;
        if (mg_cfg_string(c, where, v, flags, &one[0]) != 0)
            return -1;
        *n = 1;
        return 0;
    }
    if (!json_is_array(v)) {
        mg_cfg_errf(c, "%s: must be an array of strings, not %s", where, mg_cfg_kind(v));
        return -1;
    }
    size_t count = json_array_size(v);
    char **vals = calloc(count + 1, sizeof *vals);
    if (vals == NULL) {
        c->nomem = 1;
        return -1;
    }
    *vec = vals;
    *n = 0;
    int rc = 0;
    for (size_t i = 0; i < count; i++) {
        char w[192];
        snprintf(w, sizeof w, "%s[%zu]", where, i);
        const json_t *item = json_array_get(v, i);
        if (!json_is_string(item)) {
            mg_cfg_errf(c, "%s: must be a string, not %s%s", w, mg_cfg_kind(item),
                        (flags & MG_CFG_HINT) && json_is_number(item) ? " (put it in quotes)" : "");
            rc = -1;
            continue;
        }
        char *s = NULL;
        if (mg_cfg_string(c, w, item, flags, &s) != 0) {
            rc = -1;
            continue;
        }
        vals[(*n)++] = s;
    }
    return rc;
}

void mg_cfg_strings_free(char **vec, size_t n)
{
    if (vec == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(vec[i]);
    free(vec);
}

int mg_cfg_uint(mg_cfg_t *c, const char *where, const json_t *v, uint64_t lo, uint64_t hi, int flags,
                uint64_t *out)
{
    json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
    if (!json_is_integer(v) || x < 0 || (uint64_t)x < lo || (uint64_t)x > hi) {
        mg_cfg_errf(c, "%s: must be a whole number%s from %" PRIu64 " to %" PRIu64 "%s", where,
                    (flags & MG_CFG_SECONDS) ? " of seconds" : "", lo, hi,
                    (flags & MG_CFG_HINT) && json_is_string(v) ? " (remove the quotes)" : "");
        return -1;
    }
    *out = (uint64_t)x;
    return 0;
}

int mg_cfg_uint_range(mg_cfg_t *c, const char *where, const json_t *v, uint64_t lo, uint64_t hi,
                      const char *range, uint64_t *out)
{
    if (!json_is_integer(v)) {
        mg_cfg_errf(c, "%s: must be a whole number, not %s%s", where, mg_cfg_kind(v),
                    json_is_string(v) ? " (remove the quotes)" : "");
        return -1;
    }
    json_int_t x = json_integer_value(v);
    if (x < 0 || (uint64_t)x < lo || (uint64_t)x > hi) {
        mg_cfg_errf(c, "%s: %" JSON_INTEGER_FORMAT " is out of range (allowed: %" PRIu64 "..%" PRIu64 "%s%s)",
                    where, x, lo, hi, range != NULL ? ", i.e. " : "", range != NULL ? range : "");
        return -1;
    }
    *out = (uint64_t)x;
    return 0;
}

int mg_cfg_bool(mg_cfg_t *c, const char *where, const json_t *v, int flags, int *out)
{
    if (!json_is_boolean(v)) {
        if (flags & MG_CFG_KIND)
            mg_cfg_errf(c, "%s: must be true or false, not %s", where, mg_cfg_kind(v));
        else
            mg_cfg_errf(c, "%s: must be true or false", where);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

void mg_cfg_unknown_key(mg_cfg_t *c, const char *where, const char *key, const char *const *known,
                        size_t nlisted, size_t listcap, int flags)
{
    char q[80], list[512];
    (c->quote != NULL ? c->quote : mg_cfg_quote)(key, q, sizeof q);
    const char *near = (flags & MG_CFG_SUGGEST) ? mg_cfg_suggest(key, known) : NULL;
    if (near != NULL) {
        mg_cfg_errf(c, "%s: unknown key \"%s\"; did you mean \"%s\"?", where, q, near);
        return;
    }
    size_t o = 0, cap = listcap < sizeof list ? listcap : sizeof list;
    list[0] = '\0';
    for (size_t i = 0; known[i] != NULL && i < nlisted && o < cap; i++)
        o += (size_t)snprintf(list + o, cap - o, "%s%s", i ? ", " : "", known[i]);
    mg_cfg_errf(c, "%s: unknown key \"%s\" (known keys: %s)", where, q, list);
}

/* ---- quoting and suggestions ---- */

const char *mg_cfg_quote(const char *s, char *buf, size_t cap)
{
    const size_t keep = 60;
    size_t o = 0;
    if (cap == 0) {
        return buf;
    }
    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        /* Stop before `keep` bytes, but never inside a UTF-8 sequence. */
        if (i >= keep && (c & 0xC0) != 0x80) {
            if (o + 4 <= cap) {
                memcpy(buf + o, "...", 3);
                o += 3;
            }
            break;
        }
        if (o + 1 >= cap) {
            break;
        }
        buf[o++] = (c < 0x20 || c == 0x7f || c == '\'' || c == '"' || c == '\\') ? '?' : (char)c;
    }
    buf[o] = '\0';
    return buf;
}

/* ---------------------------------------------------------------- suggestions */

/* Case-insensitive Levenshtein distance; both strings at most 64 bytes (callers check). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[65];
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *mg_cfg_suggest(const char *key, const char *const *known)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    if (strlen(key) > 64) {
        return NULL;
    }
    for (size_t i = 0; known[i] != NULL; i++) {
        size_t len = strlen(known[i]);
        if (len > 64) {
            continue;
        }
        size_t d = edit_distance(key, known[i]);
        /* A plausible typo: few edits, and not a rewrite of a short word. */
        size_t allowed = len / 3 > 2 ? len / 3 : 2;
        if (d <= allowed && d < len && d < best_d) {
            best = known[i];
            best_d = d;
        }
    }
    return best;
}

/* ---- walking one object by a table ---- */

static void unknown(mg_cfg_t *c, const mg_cfg_object_t *o, const char *key)
{
    const char *known[64];
    size_t n = 0;
    for (const mg_cfg_field_t *f = o->fields; f->key != NULL && n < 63; f++)
        known[n++] = f->key;
    known[n] = NULL;
    const char *near = (o->flags & MG_CFG_SUGGEST) ? mg_cfg_suggest(key, known) : NULL;
    if (o->known == NULL || near != NULL) {
        mg_cfg_unknown_key(c, o->where, key, known, o->nlisted ? o->nlisted : n,
                           o->listcap ? o->listcap : 512, o->flags);
        return;
    }
    char q[80];
    (c->quote != NULL ? c->quote : mg_cfg_quote)(key, q, sizeof q);
    mg_cfg_errf(c, "%s: unknown key \"%s\" (known: %s)", o->where, q, o->known);
}

/* Reads v by f's type into dst; 0 or -1 (reported). */
static int read_field(mg_cfg_t *c, const mg_cfg_field_t *f, int extra, const char *where, const json_t *v,
                      void *dst)
{
    char *base = dst;
    uint64_t n;
    int flags = f->flags | extra;
    switch (f->type) {
    case MG_CFG_T_NONE:
        return 0;
    case MG_CFG_T_STRING:
        return mg_cfg_string(c, where, v, flags, (char **)(base + f->off));
    case MG_CFG_T_STRINGS:
        return mg_cfg_string_array(c, where, v, flags, (char ***)(base + f->off),
                                   (size_t *)(base + f->off_n));
    case MG_CFG_T_BOOL:
        return mg_cfg_bool(c, where, v, flags, (int *)(base + f->off));
    case MG_CFG_T_U64:
        return mg_cfg_uint(c, where, v, f->lo, f->hi, flags, (uint64_t *)(base + f->off));
    case MG_CFG_T_UNSIGNED:
        if (mg_cfg_uint(c, where, v, f->lo, f->hi, flags, &n) != 0)
            return -1;
        *(unsigned *)(base + f->off) = (unsigned)n;
        return 0;
    case MG_CFG_T_SIZE:
        if (mg_cfg_uint(c, where, v, f->lo, f->hi, flags, &n) != 0)
            return -1;
        *(size_t *)(base + f->off) = (size_t)n;
        return 0;
    case MG_CFG_T_NUMBER:
        if (!json_is_number(v) || json_number_value(v) < (double)f->lo ||
            json_number_value(v) > (double)f->hi)
            return -1; /* the check says what is wanted */
        *(double *)(base + f->off) = json_number_value(v);
        return 0;
    }
    return -1;
}

int mg_cfg_walk(mg_cfg_t *c, const mg_cfg_object_t *o, const json_t *obj, void *dst, void *arg)
{
    if (!json_is_object(obj))
        return -1;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        const mg_cfg_field_t *f = o->fields;
        while (f->key != NULL && strcmp(f->key, key) != 0)
            f++;
        if (f->key == NULL) {
            unknown(c, o, key);
            continue;
        }
        char where[256];
        snprintf(where, sizeof where, "%s.%s", o->where, f->key);
        int ok = read_field(c, f, o->extra, where, v, dst) == 0;
        if (f->check != NULL)
            f->check(c, where, v, ok, dst, arg);
    }
    return 0;
}
