/*
 * json.h - fast JSON text <-> jansson trees for the request path, byte-for-byte and
 * accept-for-accept the same as jansson 2.14's json_dumps(JSON_COMPACT) and json_loadb().
 *
 * Why: jansson's dumper keeps a hash set of the containers being dumped (loop detection: one
 * snprintf("%p") and a hashtable insert/delete per object or array) and its lexer reads one byte
 * through a callback at a time; on a tools/call they were ~60% of the gateway's instructions
 * (bench/results/2026-11-21-perf.md). These functions produce the same trees and the same bytes.
 *
 * Contract:
 * - mg_json_dump: compact text ("," and ":" without spaces), object members in insertion order,
 *   strings as jansson writes them (\" \\ \b \f \n \r \t, other controls \u00XX uppercase, UTF-8
 *   as is, "/" not escaped), integers %lld, reals exactly as jansson (delegated). Fails (NULL)
 *   where json_dumps fails: a top-level value that is neither object nor array, a string or key
 *   that is not valid UTF-8, a cycle (reported as nesting deeper than MG_JSON_MAX_DEPTH).
 * - mg_json_loadb: accepts exactly what json_loadb(flags) accepts, for flags 0 and
 *   JSON_REJECT_DUPLICATES (RFC 8259 plus jansson's rules: top level object or array, no \u0000,
 *   no lone surrogate escape, integers within int64, reals that do not overflow, strict UTF-8,
 *   nesting <= JSON_PARSER_MAX_DEPTH values, later duplicate keys replace earlier ones unless
 *   rejected). No error text: callers that report jansson's message keep using jansson.
 * - mg_jbuf_t: a growable output buffer with a hard cap; every failure is sticky (err != 0) so a
 *   sequence of puts is checked once at the end.
 * Tests: test/unit/test_json.c (differential against jansson), fuzz/fuzz_json.c.
 */
#ifndef MG_JSON_H
#define MG_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define MG_JSON_MAX_DEPTH 2048 /* dumper nesting limit (also catches cycles) */

typedef struct mg_jbuf {
    char *p;    /* malloc'd, or the caller's initial storage */
    size_t len; /* bytes written */
    size_t cap; /* bytes available at p */
    size_t max; /* hard cap on len */
    int heap;   /* p was allocated here */
    int err;    /* sticky: MG_ENOMEM, MG_ETOOBIG or MG_EINVAL (invalid UTF-8, bad value) */
} mg_jbuf_t;

/* Starts an empty buffer on caller storage (may be NULL/0), growing on the heap up to max bytes. */
void mg_jbuf_init(mg_jbuf_t *b, char *storage, size_t n, size_t max);
/* Frees what the buffer allocated. */
void mg_jbuf_dispose(mg_jbuf_t *b);
/* Appends raw bytes. */
void mg_jbuf_put(mg_jbuf_t *b, const char *p, size_t n);
/* Makes room for n more bytes at b->p + b->len (written by the caller, who then adds n to b->len,
 * keeping the spare bytes mg_jbuf_steal needs). Returns 0, or -1 with b->err set. */
int mg_jbuf_reserve(mg_jbuf_t *b, size_t n);
/* Appends a JSON string literal (quotes, escapes) of s[0..n); invalid UTF-8 sets err MG_EINVAL. */
void mg_jbuf_put_str(mg_jbuf_t *b, const char *s, size_t n);
/* Appends a decimal integer. */
void mg_jbuf_put_int(mg_jbuf_t *b, int64_t v);
/* Appends the compact text of any value (scalars too). */
void mg_jbuf_put_json(mg_jbuf_t *b, const json_t *v);
/* Returns the bytes as a NEW malloc'd string: NUL at [len] and room for one more byte (so the NUL
 * slot may become a "\n"). The buffer is left empty. NULL when err is set or on ENOMEM. */
char *mg_jbuf_steal(mg_jbuf_t *b, size_t *len);

/* json_dumps(v, JSON_COMPACT) (see the contract above). Returns a NEW malloc'd NUL-terminated
 * string with *len its length (len may be NULL); free() it. NULL on failure. */
char *mg_json_dump(const json_t *v, size_t *len);

/* 1 when s[0..n) is valid UTF-8 by jansson's rules (what json_string() accepts, NUL aside). */
int mg_json_utf8_valid(const char *s, size_t n);

#define MG_JSON_REJECT_DUPLICATES 0x1

/* json_loadb(buf, len, flags) (see the contract above); flags: 0 or MG_JSON_REJECT_DUPLICATES.
 * Returns a NEW reference, or NULL when jansson would have failed (or on ENOMEM). */
json_t *mg_json_loadb(const char *buf, size_t len, int flags);

/* Bounds for mg_json_loadb_bounded (jsonrpc.h's mg_rpc_limits_t, gateway.limits). */
typedef struct mg_json_bounds {
    unsigned max_depth; /* objects and arrays open at once */
    size_t max_items;   /* elements of a top-level array */
    size_t max_values;  /* opening brackets + commas + 1 */
} mg_json_bounds_t;

/*
 * A member of the top-level object whose value's text mg_json_loadb_bounded reports when it is
 * canonical: exactly the bytes mg_json_dump (mg_jbuf_put_json for a scalar) writes for the value
 * read from it, so that a writer may copy them instead of dumping the tree. Canonical means: no
 * whitespace inside, no escape in any string or key, integers only (no fraction or exponent) and
 * never "-0"; the reader's NUL quirk (below) also disqualifies. Object members then dump in the
 * order they were read, and strings without escapes dump as they are (common/json.c str_class).
 */
typedef struct mg_json_span {
    const char *key; /* in: the member's name (NUL-terminated, no escapes) */
    const char *p;   /* out: its value's first byte in the buffer read, or NULL: absent, not
                      * canonical, the top level is not an object, or the read failed */
    size_t len;      /* out: the value's length in bytes (0 when p is NULL) */
    const json_t *v; /* out: the value read from them (borrowed from the tree returned), or NULL */
} mg_json_span_t;

/*
 * The value's bytes of member key of a canonical object text (an mg_json_span_t's bytes: no
 * whitespace, no escape anywhere, so a string runs from its '"' to the next '"'): *vp and *vlen.
 * Since the text is what the dumper writes for the object read from it, the bytes are what
 * mg_jbuf_put_json writes for that member's value. Returns 1 found, 0 absent, -1 when the text is
 * not an object of that shape (the caller then takes the tree). O(len); reads no tree.
 */
int mg_json_text_member(const char *text, size_t len, const char *key, const char **vp, size_t *vlen);

/*
 * mg_json_loadb, counting while it reads what mg_rpc_scan (jsonrpc.h) counts in a separate pass:
 * containers open, elements of a top-level array (*items) and values (*values). NULL as soon as a
 * count passes its bound (nothing more is built) and wherever mg_json_loadb returns NULL; no error
 * says which: callers that report it run mg_rpc_scan then. A text it accepts is one mg_rpc_scan
 * passes with the same counts and mg_json_loadb reads to the same tree (fuzz/fuzz_jsonrpc.c).
 * span (may be NULL): see mg_json_span_t; reported only with MG_JSON_REJECT_DUPLICATES (a later
 * duplicate key would leave fewer members in the tree than in the text).
 */
json_t *mg_json_loadb_bounded(const char *buf, size_t len, int flags, const mg_json_bounds_t *bounds,
                              size_t *items, size_t *values, mg_json_span_t *span);

/* json_copy / json_deep_copy that never return a partial value: jansson's copies skip members whose
 * insertion failed for lack of memory. Returns a NEW reference, or NULL on ENOMEM. Use these, not
 * jansson's, in the gateway (scripts/checksrc.sh). */
json_t *mg_json_copy(json_t *v);
json_t *mg_json_deep_copy(const json_t *v);

#endif
