/*
 * test_common.c - the hash map, hex/SHA-256/base64 (codec.h), globs, the typed config
 * readers (cfgval.h), SSE framing, the memory session store, the log rate limit, the jansson block
 * cache (json_alloc.h) and mg_zalloc (mem.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cfgval.h"
#include "common/codec.h"
#include "common/err.h"
#include "common/glob.h"
#include "common/json_alloc.h"
#include "common/log.h"
#include "common/map.h"
#include "common/mem.h"
#include "http/sse.h"
#include "memory_backends.h"
#include "session/store.h"

static void test_map(void **state)
{
    mg_map_t m;
    mg_map_init(&m);
    char key[32];
    static int values[5000];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(mg_map_set(&m, key, &values[i]), 0);
    }
    assert_int_equal(m.count, 5000);
    for (int i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof key, "k%d", i);
        assert_ptr_equal(mg_map_del(&m, key), &values[i]);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_ptr_equal(mg_map_get(&m, key), i % 2 ? &values[i] : NULL);
    }
    size_t pos = 0, n = 0;
    const char *k;
    void *v;
    while (mg_map_next(&m, &pos, &k, &v))
        n++;
    assert_int_equal(n, 2500);
    /* reinsert over tombstones */
    for (int i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(mg_map_set(&m, key, &values[i]), 0);
    }
    assert_int_equal(m.count, 5000);
    mg_map_dispose(&m);
}

static void test_sse_format(void **state)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    assert_int_equal(mg_sse_format(&buf, &len, &cap, "1-1", "{\"a\":1}", 7, 0), 0);
    assert_int_equal(mg_sse_format(&buf, &len, &cap, "1-2", "", 0, 0), 0);
    assert_int_equal(mg_sse_format(&buf, &len, &cap, NULL, "x\ny\r\nz", 6, 500), 0);
    const char *want = "id: 1-1\ndata: {\"a\":1}\n\n"
                       "id: 1-2\ndata: \n\n"
                       "retry: 500\ndata: x\ndata: y\ndata: z\n\n";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
    free(buf);
}

static uint64_t fake_now;
static uint64_t now_fn(void)
{
    return fake_now;
}

static int got_calls;
static json_t *got_record;
static void get_cb(int err, json_t *record, void *data)
{
    got_calls++;
    got_record = record;
}

static void test_store_memory(void **state)
{
    fake_now = 1000;
    mg_store_t *st = mg_store_memory_new(now_fn);
    json_t *rec = json_pack("{s:s,s:s}", "id", "abc", "version", "2025-11-25");
    assert_int_equal(st->ops->put(st, "abc", rec, 100, NULL, NULL), 0);
    json_decref(rec);
    assert_int_equal(st->ops->get(st, "abc", get_cb, NULL), 0);
    assert_int_equal(got_calls, 1);
    assert_non_null(got_record);
    assert_string_equal(json_string_value(json_object_get(got_record, "version")), "2025-11-25");
    fake_now = 1090;
    st->ops->touch(st, "abc", 100, NULL, NULL);
    fake_now = 1150; /* would have expired without the touch */
    st->ops->get(st, "abc", get_cb, NULL);
    assert_non_null(got_record);
    fake_now = 1300;
    assert_int_equal(mg_store_memory_sweep(st), 1);
    st->ops->get(st, "abc", get_cb, NULL);
    assert_null(got_record);
    assert_int_equal(st->ops->count(st), 0);
    st->ops->free(st);
}

/* The log rate limit: `burst` lines per window, the rest counted and reported once. */
static void test_log_limit(void **state)
{
    (void)state;
    mg_log_limit_t l;
    mg_log_limit_init(&l, 3, 1000);
    uint64_t dropped = 99;
    unsigned written = 0;
    /* a flood of 100000 lines inside one window: 3 written */
    for (int i = 0; i < 100000; i++)
        written += (unsigned)mg_log_limit_take(&l, 5000 + (uint64_t)(i % 1000), &dropped);
    assert_int_equal(written, 3);
    assert_int_equal(dropped, 0); /* nothing dropped before the first three */
    assert_int_equal(l.suppressed, 100000 - 3);
    /* next window: the first line reports what the previous window dropped, once */
    assert_int_equal(mg_log_limit_take(&l, 6000, &dropped), 1);
    assert_int_equal(dropped, 100000 - 3);
    assert_int_equal(mg_log_limit_take(&l, 6001, &dropped), 1);
    assert_int_equal(dropped, 0);
    assert_int_equal(mg_log_limit_take(&l, 6002, &dropped), 1);
    assert_int_equal(mg_log_limit_take(&l, 6003, &dropped), 0);
    assert_int_equal(l.suppressed, 1);
    /* flush reports and clears the count; a second flush writes nothing */
    mg_log_limit_flush(&l, MG_LOG_ERROR, "test: lines suppressed", json_pack("{s:s}", "source", "unit"));
    assert_int_equal(l.suppressed, 0);
    /* a clock that goes backwards starts a new window rather than suppressing forever */
    for (int i = 0; i < 10; i++)
        mg_log_limit_take(&l, 6500, NULL);
    assert_int_equal(mg_log_limit_take(&l, 100, &dropped), 1);
    assert_int_equal(dropped, 10); /* the window of 6000 was full: all ten were dropped */
    /* mg_log_limited: a level below the minimum is neither written nor counted */
    mg_log_set_level(MG_LOG_ERROR);
    mg_log_limit_init(&l, 1, 1000);
    assert_int_equal(mg_log_limited(&l, 0, MG_LOG_INFO, "not shown", json_object()), 0);
    assert_int_equal(l.suppressed, 0);
    assert_int_equal(mg_log_limited(&l, 0, MG_LOG_ERROR, "test: shown once", json_object()), 1);
    assert_int_equal(mg_log_limited(&l, 1, MG_LOG_ERROR, "test: dropped", json_object()), 0);
    assert_int_equal(l.suppressed, 1);
    mg_log_set_level(MG_LOG_INFO);
}

/* The glob of tool filters and auth rules (docs/configuration.md "Globs"). */
static void test_glob(void **state)
{
    assert_true(mg_glob_match("*", ""));
    assert_true(mg_glob_match("*", "anything"));
    assert_true(mg_glob_match("github__*", "github__create_issue"));
    assert_false(mg_glob_match("github__*", "gitlab__create_issue"));
    assert_true(mg_glob_match("*__create_*", "gitlab__create_issue"));
    assert_true(mg_glob_match("get_?ssue", "get_issue"));
    assert_false(mg_glob_match("get_?ssue", "get_ssue"));
    assert_true(mg_glob_match("exact", "exact"));
    assert_false(mg_glob_match("exact", "exactly"));
    assert_false(mg_glob_match("Exact", "exact")); /* case-sensitive, like tool names */
    assert_true(mg_glob_match("a*b*c", "a__b__c"));
    assert_false(mg_glob_match("a*b*c", "a__c__b"));
    assert_true(mg_glob_match("**x", "x"));
    /* Pathological patterns stay linear-ish (one backtrack point). */
    char s[4001];
    memset(s, 'a', 4000);
    s[4000] = '\0';
    assert_false(mg_glob_match("*a*a*a*a*a*a*a*a*a*b", s));
    char *pats[] = {"x_*", "get_*"};
    assert_true(mg_glob_any(pats, 2, "get_me"));
    assert_false(mg_glob_any(pats, 2, "put_me"));
    assert_false(mg_glob_any(NULL, 0, "x"));
}

static void test_hex_sha256(void **state)
{
    char hex[MG_SHA256_HEX];
    mg_hex_encode((const unsigned char *)"\x00\x01\xab\xff", 4, hex);
    assert_string_equal(hex, "0001abff");
    mg_hex_encode(NULL, 0, hex);
    assert_string_equal(hex, "");
    /* every byte value at every place of a four-byte step, and every length up to 40 */
    unsigned char in[40];
    char out[2 * sizeof in + 1], want[2 * sizeof in + 1];
    for (int round = 0; round < 256; round++) {
        for (size_t i = 0; i < sizeof in; i++)
            in[i] = (unsigned char)(round + 37 * i);
        for (size_t n = 0; n <= sizeof in; n++) {
            for (size_t i = 0; i < n; i++)
                snprintf(want + 2 * i, 3, "%02x", in[i]);
            want[2 * n] = '\0';
            mg_hex_encode(in, n, out);
            assert_string_equal(out, want);
        }
    }
    mg_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    mg_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    unsigned char md[MG_SHA256_BYTES];
    mg_sha256("abc", 3, md);
    assert_int_equal(md[0], 0xba);
    assert_int_equal(md[31], 0xad);
}

/* RFC 4648 section 10 vectors, then each alphabet, padding rule and invalid input. */
static void test_base64(void **state)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    static const char *const padded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char enc[16];
    unsigned char dec[16];
    for (int i = 0; i < 7; i++) {
        size_t n = strlen(plain[i]);
        assert_int_equal(mg_base64url_encode((const unsigned char *)plain[i], n, enc), strlen(url[i]));
        assert_int_equal(MG_BASE64URL_LEN(n), strlen(url[i]));
        assert_string_equal(enc, url[i]);
        /* unpadded: every mode */
        assert_int_equal(mg_base64_decode(url[i], strlen(url[i]), dec, sizeof dec, MG_B64_URL), (long)n);
        assert_memory_equal(dec, plain[i], n);
        /* padded: only with MG_B64_PAD */
        assert_int_equal(
            mg_base64_decode(padded[i], strlen(padded[i]), dec, sizeof dec, MG_B64_STD | MG_B64_PAD),
            (long)n);
        assert_memory_equal(dec, plain[i], n);
        if (strchr(padded[i], '=') != NULL)
            assert_int_equal(mg_base64_decode(padded[i], strlen(padded[i]), dec, sizeof dec, MG_B64_URL), -1);
    }
    /* the two 62/63 characters per alphabet */
    unsigned char ff[3] = {0xfb, 0xff, 0xbf};
    assert_int_equal(mg_base64url_encode(ff, 3, enc), 4);
    assert_string_equal(enc, "-_-_");
    assert_int_equal(mg_base64_decode("-_-_", 4, dec, sizeof dec, MG_B64_URL), 3);
    assert_memory_equal(dec, ff, 3);
    assert_int_equal(mg_base64_decode("+/+/", 4, dec, sizeof dec, MG_B64_STD), 3);
    assert_memory_equal(dec, ff, 3);
    assert_int_equal(mg_base64_decode("+/+/", 4, dec, sizeof dec, MG_B64_URL), -1);
    assert_int_equal(mg_base64_decode("-_-_", 4, dec, sizeof dec, MG_B64_STD), -1);
    /* invalid: foreign characters, '=' inside, a lone last character, non-zero leftover bits */
    assert_int_equal(mg_base64_decode("Zm9v.", 5, dec, sizeof dec, MG_B64_URL | MG_B64_STD), -1);
    assert_int_equal(mg_base64_decode("Zm 9v", 5, dec, sizeof dec, MG_B64_URL | MG_B64_STD), -1);
    assert_int_equal(mg_base64_decode("Zg=a", 4, dec, sizeof dec, MG_B64_STD | MG_B64_PAD), -1);
    assert_int_equal(mg_base64_decode("Zm9vA", 5, dec, sizeof dec, MG_B64_URL), -1);
    assert_int_equal(mg_base64_decode("Zh", 2, dec, sizeof dec, MG_B64_URL), -1);
    assert_int_equal(mg_base64_decode("Zm9", 3, dec, sizeof dec, MG_B64_URL), -1);
    /* the length bounds the input, not a NUL; cap bounds the output */
    assert_int_equal(mg_base64_decode("Zm9vYmFy", 4, dec, sizeof dec, MG_B64_URL), 3);
    assert_int_equal(mg_base64_decode("Zm9vYmFy", 8, dec, 5, MG_B64_URL), -1);
    assert_int_equal(mg_base64_decode("Zm9vYmFy", 8, dec, 6, MG_B64_URL), 6);
}

/* ---- the typed config readers: every message as the parsers have always printed it ---- */

static char cfg_msgs[8][256];
static int cfg_nmsgs;

static void cfg_err(void *ctx, const char *msg)
{
    if (cfg_nmsgs < 8)
        snprintf(cfg_msgs[cfg_nmsgs++], sizeof cfg_msgs[0], "%s", msg);
}

/* ${X} expands to "ex"; "${bad}" fails (as if reported by the expander). */
static int cfg_expand(void *ctx, const char *in, const char *where, int lenient, char **out)
{
    if (strcmp(in, "${bad}") == 0)
        return -1;
    *out = strdup(strcmp(in, "${X}") == 0 ? (lenient ? "lenient" : "ex") : in);
    return 0;
}

static json_t *J(const char *text)
{
    return json_loads(text, JSON_DECODE_ANY, NULL);
}

#define CFG_EXPECT(msg)                                                                                      \
    do {                                                                                                     \
        assert_int_equal(cfg_nmsgs, 1);                                                                      \
        assert_string_equal(cfg_msgs[0], msg);                                                               \
        cfg_nmsgs = 0;                                                                                       \
    } while (0)

static void test_cfg_readers(void **state)
{
    mg_cfg_t c = {NULL, cfg_err, cfg_expand, NULL, 0, 0};
    json_t *v;
    char *s = NULL;
    /* strings */
    assert_int_equal(mg_cfg_string(&c, "a.b", v = J("\"${X}\""), 0, &s), 0);
    assert_string_equal(s, "ex");
    json_decref(v);
    assert_int_equal(mg_cfg_string(&c, "a.b", v = J("\"${X}\""), MG_CFG_LENIENT, &s), 0);
    assert_string_equal(s, "lenient");
    json_decref(v);
    assert_int_equal(mg_cfg_string(&c, "a.b", v = J("\"${X}\""), MG_CFG_RAW, &s), 0);
    assert_string_equal(s, "${X}");
    json_decref(v);
    assert_int_equal(c.bad, 0);
    assert_int_equal(mg_cfg_string(&c, "a.b", v = J("5"), 0, &s), -1);
    CFG_EXPECT("a.b: must be a string, not a number");
    assert_string_equal(s, "${X}"); /* untouched on failure */
    json_decref(v);
    assert_int_equal(c.bad, 1);
    c.bad = 0;
    assert_int_equal(mg_cfg_string(&c, "a.b", v = J("\"${bad}\""), 0, &s), -1);
    assert_int_equal(cfg_nmsgs, 0); /* the expander reported it */
    assert_int_equal(c.bad, 1);
    json_decref(v);
    assert_int_equal(mg_cfg_string(&c, "a.b", v = J("\"\""), MG_CFG_NONEMPTY, &s), -1);
    CFG_EXPECT("a.b: must not be empty");
    json_decref(v);
    free(s);
    /* arrays of strings */
    char **vec = NULL;
    size_t n = 0;
    assert_int_equal(mg_cfg_string_array(&c, "l", v = J("[\"a\", 1, \"${X}\"]"), MG_CFG_HINT, &vec, &n), -1);
    CFG_EXPECT("l[1]: must be a string, not a number (put it in quotes)");
    assert_int_equal(n, 2);
    assert_string_equal(vec[0], "a");
    assert_string_equal(vec[1], "ex");
    assert_null(vec[2]);
    for (size_t i = 0; i < n; i++)
        free(vec[i]);
    free(vec);
    json_decref(v);
    assert_int_equal(mg_cfg_string_array(&c, "l", v = J("[1]"), 0, &vec, &n), -1);
    CFG_EXPECT("l[0]: must be a string, not a number");
    free(vec);
    json_decref(v);
    vec = NULL;
    assert_int_equal(mg_cfg_string_array(&c, "l", v = J("{}"), 0, &vec, &n), -1);
    CFG_EXPECT("l: must be an array of strings, not an object");
    assert_null(vec);
    json_decref(v);
    assert_int_equal(mg_cfg_string_array(&c, "l", v = J("\"one\""), MG_CFG_LONE, &vec, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(vec[0], "one");
    free(vec[0]);
    free(vec);
    json_decref(v);
    /* whole numbers */
    uint64_t x = 0;
    assert_int_equal(mg_cfg_uint(&c, "n", v = J("7"), 1, 10, 0, &x), 0);
    assert_int_equal(x, 7);
    json_decref(v);
    assert_int_equal(mg_cfg_uint(&c, "n", v = J("\"7\""), 1, 10, MG_CFG_HINT, &x), -1);
    CFG_EXPECT("n: must be a whole number from 1 to 10 (remove the quotes)");
    json_decref(v);
    assert_int_equal(mg_cfg_uint(&c, "n", v = J("-1"), 0, 10, MG_CFG_SECONDS, &x), -1);
    CFG_EXPECT("n: must be a whole number of seconds from 0 to 10");
    json_decref(v);
    assert_int_equal(mg_cfg_uint_range(&c, "n", v = J("11"), 1, 10, "1 ms..10 ms", &x), -1);
    CFG_EXPECT("n: 11 is out of range (allowed: 1..10, i.e. 1 ms..10 ms)");
    json_decref(v);
    assert_int_equal(mg_cfg_uint_range(&c, "n", v = J("\"3\""), 1, 10, NULL, &x), -1);
    CFG_EXPECT("n: must be a whole number, not a string (remove the quotes)");
    json_decref(v);
    assert_int_equal(mg_cfg_uint_range(&c, "n", v = J("1.5"), 1, 10, NULL, &x), -1);
    CFG_EXPECT("n: must be a whole number, not a number");
    json_decref(v);
    /* booleans */
    int b = 0;
    assert_int_equal(mg_cfg_bool(&c, "f", v = J("true"), 0, &b), 0);
    assert_int_equal(b, 1);
    json_decref(v);
    assert_int_equal(mg_cfg_bool(&c, "f", v = J("null"), MG_CFG_KIND, &b), -1);
    CFG_EXPECT("f: must be true or false, not null");
    json_decref(v);
    assert_int_equal(mg_cfg_bool(&c, "f", v = J("1"), 0, &b), -1);
    CFG_EXPECT("f: must be true or false");
    json_decref(v);
    /* unknown keys */
    static const char *const known[] = {"limits", "listen", "logLevel", NULL};
    mg_cfg_unknown_key(&c, "gateway", "limts", known, 3, 512, MG_CFG_SUGGEST);
    CFG_EXPECT("gateway: unknown key \"limts\"; did you mean \"limits\"?");
    mg_cfg_unknown_key(&c, "gateway", "limts", known, 3, 512, 0);
    CFG_EXPECT("gateway: unknown key \"limts\" (known keys: limits, listen, logLevel)");
    mg_cfg_unknown_key(&c, "gateway", "zz\"\n", known, 2, 512, MG_CFG_SUGGEST);
    CFG_EXPECT("gateway: unknown key \"zz??\" (known keys: limits, listen)");
    assert_string_equal(mg_cfg_kind(NULL), "null");
}

/* ---- mg_cfg_walk: one object section read by its table ---- */

typedef struct walk_sec {
    char *name;
    char **tags;
    size_t ntags;
    int on;
    uint64_t ms;
    unsigned count;
    size_t bytes;
    double ratio;
    int checked, ok_seen, custom;
} walk_sec_t;

static void walk_name_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    walk_sec_t *w = dst;
    w->checked++;
    w->ok_seen = ok;
    assert_ptr_equal(arg, &cfg_nmsgs); /* the walk's arg reaches every check */
    if (ok && strcmp(w->name, "bad") == 0)
        mg_cfg_errf(c, "%s: must not be \"bad\"", where);
}

static void walk_custom(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    ((walk_sec_t *)dst)->custom = (int)json_integer_value(v) * 2;
}

static void walk_ratio(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    if (!ok)
        mg_cfg_errf(c, "%s: must be a number from 0 to 1", where);
}

#define W(f) MG_CFG_AT(walk_sec_t, f)
static const mg_cfg_field_t walk_fields[] = {
    {"name", MG_CFG_T_STRING, W(name), 0, 0, 0, MG_CFG_NONEMPTY, walk_name_check},
    {"tags", MG_CFG_T_STRINGS, W(tags), W(ntags), 0, 0, MG_CFG_LONE, NULL},
    {"on", MG_CFG_T_BOOL, W(on), 0, 0, 0, MG_CFG_KIND, NULL},
    {"ms", MG_CFG_T_U64, W(ms), 0, 10, 1000, 0, NULL},
    {"count", MG_CFG_T_UNSIGNED, W(count), 0, 1, 9, MG_CFG_HINT, NULL},
    {"bytes", MG_CFG_T_SIZE, W(bytes), 0, 0, 4096, 0, NULL},
    {"ratio", MG_CFG_T_NUMBER, W(ratio), 0, 0, 1, 0, walk_ratio},
    {"custom", MG_CFG_T_NONE, 0, 0, 0, 0, 0, walk_custom},
    MG_CFG_FIELD_END,
};
#undef W

static void walk_sec_free(walk_sec_t *w)
{
    free(w->name);
    mg_cfg_strings_free(w->tags, w->ntags);
    memset(w, 0, sizeof *w);
}

static void test_cfg_walk(void **state)
{
    mg_cfg_t c = {NULL, cfg_err, cfg_expand, NULL, 0, 0};
    mg_cfg_object_t o = {"sec", walk_fields, "name, tags, ...", 0, MG_CFG_SUGGEST, 0, 0};
    walk_sec_t w = {0};
    json_t *v;
    cfg_nmsgs = 0;

    /* every type read into its field, checks run after the read */
    v = J("{\"name\": \"${X}\", \"tags\": \"solo\", \"on\": true, \"ms\": 20, \"count\": 3, \"bytes\": 4096,"
          " \"ratio\": 0.5, \"custom\": 21}");
    assert_int_equal(mg_cfg_walk(&c, &o, v, &w, &cfg_nmsgs), 0);
    json_decref(v);
    assert_int_equal(cfg_nmsgs, 0);
    assert_false(c.bad);
    assert_string_equal(w.name, "ex");
    assert_int_equal(w.ntags, 1);
    assert_string_equal(w.tags[0], "solo");
    assert_true(w.on);
    assert_int_equal(w.ms, 20);
    assert_int_equal(w.count, 3);
    assert_int_equal(w.bytes, 4096);
    assert_true(w.ratio == 0.5);
    assert_int_equal(w.custom, 42);
    assert_int_equal(w.checked, 1);
    assert_true(w.ok_seen);
    walk_sec_free(&w);

    /* problems: reported with "<section>.<key>", the walk goes on; a failed read leaves the field and
     * still runs the check with ok 0 */
    w.ms = 7;
    v = J("{\"ms\": 5}");
    mg_cfg_walk(&c, &o, v, &w, &cfg_nmsgs);
    json_decref(v);
    CFG_EXPECT("sec.ms: must be a whole number from 10 to 1000");
    assert_int_equal(w.ms, 7);
    v = J("{\"count\": \"3\"}");
    mg_cfg_walk(&c, &o, v, &w, &cfg_nmsgs);
    json_decref(v);
    CFG_EXPECT("sec.count: must be a whole number from 1 to 9 (remove the quotes)");
    v = J("{\"on\": 1}");
    mg_cfg_walk(&c, &o, v, &w, &cfg_nmsgs);
    json_decref(v);
    CFG_EXPECT("sec.on: must be true or false, not a number");
    v = J("{\"ratio\": 2}");
    mg_cfg_walk(&c, &o, v, &w, &cfg_nmsgs);
    json_decref(v);
    CFG_EXPECT("sec.ratio: must be a number from 0 to 1");
    v = J("{\"name\": \"\"}");
    mg_cfg_walk(&c, &o, v, &w, &cfg_nmsgs);
    json_decref(v);
    CFG_EXPECT("sec.name: must not be empty");
    assert_int_equal(w.checked, 1);
    assert_false(w.ok_seen);
    v = J("{\"name\": \"bad\"}");
    mg_cfg_walk(&c, &o, v, &w, &cfg_nmsgs);
    json_decref(v);
    CFG_EXPECT("sec.name: must not be \"bad\"");
    walk_sec_free(&w);

    /* unknown keys: did you mean, else the section's own list, else the table's keys */
    v = J("{\"nmae\": 1}");
    mg_cfg_walk(&c, &o, v, &w, &cfg_nmsgs);
    json_decref(v);
    CFG_EXPECT("sec: unknown key \"nmae\"; did you mean \"name\"?");
    v = J("{\"zzzzzzzz\": 1}");
    mg_cfg_walk(&c, &o, v, &w, &cfg_nmsgs);
    json_decref(v);
    CFG_EXPECT("sec: unknown key \"zzzzzzzz\" (known: name, tags, ...)");
    o.known = NULL;
    o.nlisted = 2;
    v = J("{\"zzzzzzzz\": 1}");
    mg_cfg_walk(&c, &o, v, &w, &cfg_nmsgs);
    json_decref(v);
    CFG_EXPECT("sec: unknown key \"zzzzzzzz\" (known keys: name, tags)");
    o.flags = 0; /* no suggestion */
    v = J("{\"nmae\": 1}");
    mg_cfg_walk(&c, &o, v, &w, &cfg_nmsgs);
    json_decref(v);
    CFG_EXPECT("sec: unknown key \"nmae\" (known keys: name, tags)");

    /* extra flags reach every field: lenient expansion */
    o.extra = MG_CFG_LENIENT;
    v = J("{\"name\": \"${X}\"}");
    mg_cfg_walk(&c, &o, v, &w, &cfg_nmsgs);
    json_decref(v);
    assert_string_equal(w.name, "lenient");
    walk_sec_free(&w);

    /* not an object: -1 and nothing reported (the caller names the shape it wants) */
    v = J("[1]");
    assert_int_equal(mg_cfg_walk(&c, &o, v, &w, &cfg_nmsgs), -1);
    json_decref(v);
    assert_int_equal(cfg_nmsgs, 0);
}

/* ---- json_alloc.h: every block fits its request, reuse, the bound, libc interplay, threads ---- */

static void *free_on_thread(void *arg)
{
    mg_json_free(arg); /* kept on this thread's list, not the caller's */
    size_t *kept = malloc(sizeof *kept);
    *kept = mg_json_alloc_kept();
    return kept;
}

static void test_json_alloc(void **state)
{
    (void)state;
    size_t base = mg_json_alloc_kept();
    /* every size, small and big: the block is at least as large as asked, and writable */
    void *b[300];
    for (size_t n = 0; n < 300; n++) {
        b[n] = mg_json_alloc(n);
        assert_non_null(b[n]);
        assert_true(malloc_usable_size(b[n]) >= n);
        memset(b[n], 0xA5, n);
    }
    /* kept: the blocks whose usable size has a class (glibc rounds sizes up, AddressSanitizer
     * does not: the count is taken from what the allocator says) */
    size_t want = 0;
    for (size_t n = 0; n < 300; n++) {
        size_t u = malloc_usable_size(b[n]);
        want += u >= 24 && (u - 24) / 16 < MG_JSON_ALLOC_CLASSES;
        mg_json_free(b[n]);
    }
    assert_true(want > 0);
    assert_int_equal(mg_json_alloc_kept() - base, want); /* the bigger ones were freed */
    /* reuse: a freed block comes back for a request of its class, and it fits */
    void *p = mg_json_alloc(40);
    mg_json_free(p);
    size_t k1 = mg_json_alloc_kept();
    void *q = mg_json_alloc(33);
    assert_ptr_equal(p, q);
    assert_int_equal(mg_json_alloc_kept(), k1 - 1);
    assert_true(malloc_usable_size(q) >= 33);
    memset(q, 0, 33);
    free(q); /* a block handed out is a plain malloc block: libc may free it */
    /* a plain malloc block may be given back, and is reused only where it fits */
    char *m = malloc(100);
    mg_json_free(m);
    for (size_t n = 0; n <= 136; n += 8) {
        void *r = mg_json_alloc(n);
        assert_true(malloc_usable_size(r) >= n);
        mg_json_free(r);
    }
    /* the bound: at most MG_JSON_ALLOC_KEEP blocks per class */
    enum { MANY = MG_JSON_ALLOC_KEEP * 2 };
    void *many[MANY];
    size_t before = mg_json_alloc_kept();
    for (size_t i = 0; i < MANY; i++)
        many[i] = malloc(24);
    for (size_t i = 0; i < MANY; i++)
        mg_json_free(many[i]);
    assert_true(mg_json_alloc_kept() - before <= MG_JSON_ALLOC_KEEP);
    mg_json_free(NULL);
    /* lists are per thread */
    void *t = mg_json_alloc(24);
    size_t here = mg_json_alloc_kept();
    pthread_t th;
    void *ret = NULL;
    assert_int_equal(pthread_create(&th, NULL, free_on_thread, t), 0);
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_int_equal(*(size_t *)ret, 1);
    free(ret);
    assert_int_equal(mg_json_alloc_kept(), here);
}

/* jansson through the cache (what main() installs): trees built, copied and freed; json_dumps'
 * text freed with free(), as its callers do */
static void test_json_alloc_jansson(void **state)
{
    (void)state;
    json_set_alloc_funcs(mg_json_alloc, mg_json_free);
    for (int round = 0; round < 50; round++) {
        json_t *v = json_pack("{s:s,s:I,s:{s:s,s:[s,i,o]}}", "jsonrpc", "2.0", "id", (json_int_t)round,
                              "params", "name", "echo", "arguments",
                              "a string long enough to need a bigger block", round, json_object());
        assert_non_null(v);
        json_t *c = json_deep_copy(v);
        assert_true(json_equal(v, c));
        char *text = json_dumps(c, JSON_COMPACT);
        assert_non_null(text);
        json_t *back = json_loads(text, 0, NULL);
        assert_true(json_equal(back, v));
        free(text);
        json_decref(back);
        json_decref(c);
        json_decref(v);
    }
    json_set_alloc_funcs(malloc, free); /* blocks kept by the list stay valid malloc blocks */
}

static void test_zalloc(void **state)
{
    (void)state;
    for (size_t n = 1; n < 2000; n += 97) {
        unsigned char *p = malloc(n);
        memset(p, 0xFF, n);
        free(p); /* likely reused next: mg_zalloc must clear what it gets */
        unsigned char *z = mg_zalloc(n);
        assert_non_null(z);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(z[i], 0);
        free(z);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_map),
                                       cmocka_unit_test(test_sse_format),
                                       cmocka_unit_test(test_store_memory),
                                       cmocka_unit_test(test_log_limit),
                                       cmocka_unit_test(test_hex_sha256),
                                       cmocka_unit_test(test_base64),
                                       cmocka_unit_test(test_glob),
                                       cmocka_unit_test(test_cfg_readers),
                                       cmocka_unit_test(test_cfg_walk),
                                       cmocka_unit_test(test_json_alloc),
                                       cmocka_unit_test(test_json_alloc_jansson),
                                       cmocka_unit_test(test_zalloc)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
