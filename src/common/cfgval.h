/*
 * cfgval.h - typed readers of config values that collect problems instead of stopping: a string
 * (expanded), an array of strings, a whole number in a range, a boolean, and the "unknown key"
 * message. Every config parser (config/, auth/auth_config.c, policy/policy_config.c) reads
 * through these, so one value type is read, checked and reported the same way everywhere.
 *
 * A reader reports "<where>: <problem>" through the sink, sets bad, and returns -1; the walk goes
 * on. The texts are those the parsers have always printed (tests and users rely on them): where
 * a parser's wording differs, a flag names the variant. Values are never put in messages, only
 * their JSON kind, so a secret cannot leak. mg_cfg_walk() walks one object section by a table of
 * its keys (type, offset, bounds, check), so a parser states its keys instead of looping over them.
 * Read next: cfgval.c; config/config_int.h.
 */
#ifndef MG_CFGVAL_H
#define MG_CFGVAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Where problems go and how strings are expanded: one per parse. */
typedef struct mg_cfg {
    void *ctx;
    /* Records one problem (a full sentence). */
    void (*err)(void *ctx, const char *msg);
    /* Expands ${...} in `in` into *out (NEW); non-zero when it failed (already reported). NULL:
     * strings are copied as written. */
    int (*expand)(void *ctx, const char *in, const char *where, int lenient, char **out);
    /* Shows user text (a key) safely in a message; NULL: mg_cfg_quote. */
    const char *(*quote)(const char *s, char *buf, size_t cap);
    int bad;   /* a problem was reported (or an expansion failed) */
    int nomem; /* an allocation failed */
} mg_cfg_t;

/* Flags of the readers. */
#define MG_CFG_LENIENT  0x01 /* expansion: a missing variable or file is not a problem */
#define MG_CFG_RAW      0x02 /* no ${...} expansion: copied as written */
#define MG_CFG_NONEMPTY 0x04 /* string (after expansion): "must not be empty" */
#define MG_CFG_HINT     0x08 /* wrong type: " (remove the quotes)" / " (put it in quotes)" */
#define MG_CFG_KIND     0x10 /* boolean: "must be true or false, not <kind>" */
#define MG_CFG_SECONDS  0x20 /* whole number: "a whole number of seconds from lo to hi" */
#define MG_CFG_LONE     0x40 /* array of strings: a lone string is an array of one */
#define MG_CFG_SUGGEST  0x80 /* unknown key: "did you mean" the nearest known key */

/* Reports "<formatted text>" as one problem and sets c->bad (c->nomem when it cannot). */
void mg_cfg_errf(mg_cfg_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "an object", "an array", "a string", "a number", "a boolean" or "null" (NULL: "null"). */
const char *mg_cfg_kind(const json_t *v);

/* Copies s into buf for a message: at most ~60 bytes (then "...", never inside a UTF-8
 * sequence), control characters, quotes and backslashes replaced by '?'. Returns buf. */
const char *mg_cfg_quote(const char *s, char *buf, size_t cap);

/* A string, expanded unless MG_CFG_RAW (MG_CFG_LENIENT, MG_CFG_NONEMPTY apply). On success *out
 * is replaced by the NEW value (the old one freed) and 0 returned; else -1 (*out untouched). */
int mg_cfg_string(mg_cfg_t *c, const char *where, const json_t *v, int flags, char **out);

/* An array of strings into a NEW NULL-terminated vector *vec of *n entries (the old *vec is not
 * freed). Entries are read as mg_cfg_string with flags and named "<where>[i]"; MG_CFG_HINT adds
 * " (put it in quotes)" to a number entry; a bad entry is reported and left out. Returns 0, or -1
 * when anything was reported (*vec untouched when v is not an array). */
int mg_cfg_string_array(mg_cfg_t *c, const char *where, const json_t *v, int flags, char ***vec, size_t *n);

/* Frees the n strings of vec (NULL entries allowed) and vec itself (NULL: nothing). */
void mg_cfg_strings_free(char **vec, size_t n);

/* A whole number lo..hi: "<where>: must be a whole number[ of seconds] from lo to hi" (flags
 * MG_CFG_SECONDS, MG_CFG_HINT). Returns 0 with *out, or -1. */
int mg_cfg_uint(mg_cfg_t *c, const char *where, const json_t *v, uint64_t lo, uint64_t hi, int flags,
                uint64_t *out);

/* A whole number lo..hi with two messages: "must be a whole number, not <kind>" and "<n> is out
 * of range (allowed: lo..hi[, i.e. range])". Returns 0 with *out, or -1. */
int mg_cfg_uint_range(mg_cfg_t *c, const char *where, const json_t *v, uint64_t lo, uint64_t hi,
                      const char *range, uint64_t *out);

/* true or false (MG_CFG_KIND: the message names what was given). Returns 0 with *out 0/1, or -1. */
int mg_cfg_bool(mg_cfg_t *c, const char *where, const json_t *v, int flags, int *out);

/* "<where>: unknown key "<key>"; did you mean "<near>"?" (MG_CFG_SUGGEST and a near key), else
 * "<where>: unknown key "<key>" (known keys: <the first nlisted of known>)" (list at most listcap
 * bytes). */
void mg_cfg_unknown_key(mg_cfg_t *c, const char *where, const char *key, const char *const *known,
                        size_t nlisted, size_t listcap, int flags);

/* Nearest of known (NULL-terminated) to key by case-insensitive edit distance, or NULL when none
 * is close enough to be a plausible typo. */
const char *mg_cfg_suggest(const char *key, const char *const *known);

/* ---- walking one object by a table of its keys ---- */

/* What a key's value is read as (the reader above that reads it), into the field at off of dst. */
typedef enum mg_cfg_type {
    MG_CFG_T_NONE = 0, /* no typed read: only check runs (a key the section reads its own way) */
    MG_CFG_T_STRING,   /* char *: mg_cfg_string (flags) */
    MG_CFG_T_STRINGS,  /* char ** at off, size_t count at off_n: mg_cfg_string_array (flags) */
    MG_CFG_T_BOOL,     /* int: mg_cfg_bool (flags) */
    MG_CFG_T_U64,      /* uint64_t: mg_cfg_uint lo..hi (flags) */
    MG_CFG_T_UNSIGNED, /* unsigned: mg_cfg_uint lo..hi (flags); hi must fit */
    MG_CFG_T_SIZE,     /* size_t: mg_cfg_uint lo..hi (flags) */
    MG_CFG_T_NUMBER,   /* double in lo..hi: any JSON number; check reports the problem when not one */
} mg_cfg_type_t;

/* One key of an object section. where is "<section>.<key>" (the readers' and check's prefix). */
typedef struct mg_cfg_field {
    const char *key;
    mg_cfg_type_t type;
    size_t off, off_n;
    uint64_t lo, hi;
    int flags;
    /*
     * NULL, or runs after the typed read succeeded (ok 1) or failed (ok 0; for MG_CFG_T_NONE always
     * 1): further rules on the value (v: the JSON value, dst: the section's struct, arg: the walk's).
     */
    void (*check)(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg);
} mg_cfg_field_t;

/* An object section: its name, its keys (ended by a NULL key) and how an unknown key is told. */
typedef struct mg_cfg_object {
    const char *where;
    const mg_cfg_field_t *fields;
    /* Unknown key with no near known key (MG_CFG_SUGGEST in flags): known != NULL gives
     * " (known: <known>)"; else mg_cfg_unknown_key's "(known keys: <first nlisted>)". */
    const char *known;
    size_t nlisted; /* 0 = every key */
    int flags;      /* MG_CFG_SUGGEST: "did you mean" the nearest known key */
    size_t listcap; /* bytes of the "(known keys: ...)" list; 0 = 512 */
    int extra;      /* flags added to every field's (MG_CFG_LENIENT for a lenient parse) */
} mg_cfg_object_t;

/* Helpers for a table: a field of struct type T. */
#define MG_CFG_AT(T, f) offsetof(T, f)
#define MG_CFG_FIELD_END                                                                                     \
    {                                                                                                        \
        NULL, MG_CFG_T_NONE, 0, 0, 0, 0, 0, NULL                                                             \
    }

/*
 * Walks object obj by table o: every key found in o->fields is read into dst by its type and then
 * checked; any other key is reported as unknown. Problems are reported and the walk goes on, in
 * obj's key order. Returns 0, or -1 when obj is not an object (nothing reported: the caller's
 * message names the shape it expects).
 */
int mg_cfg_walk(mg_cfg_t *c, const mg_cfg_object_t *o, const json_t *obj, void *dst, void *arg);

#endif
