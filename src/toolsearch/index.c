/*
 * index.c - the tool search index (toolsearch.h): SQLite FTS5 in an in-memory database, ranked by
 * FTS5's built-in BM25 with per-column weights.
 *
 * One row per tool, rowid = position in the array it was built from. Text is split the way tool
 * names are written (snake_case and kebab-case by the unicode61 tokenizer, camelCase here) and
 * stemmed (porter), so "list issues" finds list_issues and "issue listing" too. A query is reduced
 * to its content words, OR-ed: BM25 rewards tools matching more and rarer words.
 * The index is immutable: the runtime builds a new one when the catalog changes.
 * Read next: runtime.c (when indexes are built and reused).
 */
#include "toolsearch.h"
#include "../common/err.h"

#include <ctype.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define MAX_QUERY_WORDS 32

struct mg_toolsearch_index {
    sqlite3 *db;
    sqlite3_stmt *query;
    size_t count;
    size_t bytes;
};

/* Column weights for bm25(): name, title, description, parameter names, parameter descriptions. */
static const char rank_sql[] = "SELECT rowid FROM tools WHERE tools MATCH ?1 "
                               "ORDER BY bm25(tools, 6.0, 4.0, 1.5, 1.5, 0.5) LIMIT ?2";

typedef struct text {
    char *p;
    size_t len, cap;
    int oom;
} text_t;

static void add(text_t *t, const char *s, size_t n)
{
    if (t->oom || s == NULL)
        return;
    if (t->len + n + 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        while (cap < t->len + n + 2)
            cap *= 2;
        char *g = realloc(t->p, cap);
        if (g == NULL) {
            t->oom = 1;
            return;
        }
        t->p = g;
        t->cap = cap;
    }
    /* camelCase -> "camel Case": the tokenizer does not split humps itself. */
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && isupper((unsigned char)s[i]) && islower((unsigned char)s[i - 1])) {
            if (t->len + (n - i) + 3 > t->cap) {
                size_t cap = t->cap * 2;
                char *g = realloc(t->p, cap);
                if (g == NULL) {
                    t->oom = 1;
                    return;
                }
                t->p = g;
                t->cap = cap;
            }
            t->p[t->len++] = ' ';
        }
        t->p[t->len++] = s[i];
    }
    t->p[t->len++] = ' ';
    t->p[t->len] = '\0';
}

static void add_str(text_t *t, const json_t *v)
{
    const char *s = json_string_value(v);
    if (s != NULL)
        add(t, s, strlen(s));
}

/* Parameter names and descriptions of a schema, nested objects and array items included. */
static void add_params(text_t *names, text_t *descs, const json_t *schema, int depth)
{
    if (!json_is_object(schema) || depth > 8)
        return;
    const char *k;
    json_t *sub;
    json_object_foreach((json_t *)json_object_get(schema, "properties"), k, sub)
    {
        add(names, k, strlen(k));
        add_str(descs, json_object_get(sub, "description"));
        add_str(descs, json_object_get(sub, "title"));
        add_params(names, descs, sub, depth + 1);
        add_params(names, descs, json_object_get(sub, "items"), depth + 1);
    }
}

static void hash_cstr(uint64_t *h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p != '\0'; p++) {
        *h ^= *p;
        *h *= 1099511628211ull;
    }
    *h ^= 0xff; /* field separator: ("ab","c") and ("a","bc") differ */
    *h *= 1099511628211ull;
}

static void hash_str(uint64_t *h, const json_t *v)
{
    hash_cstr(h, json_string_value(v));
}

static void hash_params(uint64_t *h, const json_t *schema, int depth)
{
    if (!json_is_object(schema) || depth > 8)
        return;
    const char *k;
    json_t *sub;
    json_object_foreach((json_t *)json_object_get(schema, "properties"), k, sub)
    {
        hash_cstr(h, k);
        hash_str(h, json_object_get(sub, "description"));
        hash_str(h, json_object_get(sub, "title"));
        hash_params(h, sub, depth + 1);
        hash_params(h, json_object_get(sub, "items"), depth + 1);
    }
}

uint64_t mg_toolsearch_index_key(const json_t *tools)
{
    uint64_t h = 1469598103934665603ull;
    size_t i;
    json_t *tool;
    json_array_foreach((json_t *)tools, i, tool)
    {
        hash_str(&h, json_object_get(tool, "name"));
        hash_str(&h, json_object_get(tool, "title"));
        hash_str(&h, json_object_get(json_object_get(tool, "annotations"), "title"));
        hash_str(&h, json_object_get(tool, "description"));
        hash_params(&h, json_object_get(tool, "inputSchema"), 0);
        h ^= 0xfe; /* tool separator */
        h *= 1099511628211ull;
    }
    h ^= json_array_size(tools);
    return h ? h : 1;
}

static void index_dispose(mg_toolsearch_index_t *ix)
{
    sqlite3_finalize(ix->query);
    sqlite3_close(ix->db);
    free(ix);
}

int mg_toolsearch_index_new(const json_t *tools, const json_t *servers, mg_toolsearch_index_t **out)
{
    (void)servers;
    sqlite3_int64 mem0 = sqlite3_memory_used();
    *out = NULL;
    mg_toolsearch_index_t *ix = calloc(1, sizeof *ix);
    if (ix == NULL)
        return MG_ENOMEM;
    sqlite3_stmt *ins = NULL;
    if (sqlite3_open_v2(":memory:", &ix->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
        sqlite3_exec(ix->db,
                     "CREATE VIRTUAL TABLE tools USING fts5(name, title, description, params, pdesc, "
                     "tokenize = 'porter unicode61 remove_diacritics 2');"
                     "BEGIN;",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(ix->db,
                           "INSERT INTO tools(rowid, name, title, description, params, pdesc) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           -1, &ins, NULL) != SQLITE_OK) {
        sqlite3_finalize(ins);
        index_dispose(ix);
        return MG_EINTERNAL;
    }
    int rc = 0;
    size_t i;
    json_t *tool;
    json_array_foreach((json_t *)tools, i, tool)
    {
        text_t f[5] = {{0}};
        add_str(&f[0], json_object_get(tool, "name"));
        add_str(&f[1], json_object_get(tool, "title"));
        add_str(&f[1], json_object_get(json_object_get(tool, "annotations"), "title"));
        add_str(&f[2], json_object_get(tool, "description"));
        add_params(&f[3], &f[4], json_object_get(tool, "inputSchema"), 0);
        sqlite3_bind_int64(ins, 1, (sqlite3_int64)i);
        for (int k = 0; k < 5; k++) {
            rc = rc ? rc : f[k].oom ? MG_ENOMEM : 0;
            sqlite3_bind_text(ins, k + 2, f[k].p ? f[k].p : "", -1, SQLITE_TRANSIENT);
        }
        if (rc == 0 && sqlite3_step(ins) != SQLITE_DONE)
            rc = MG_EINTERNAL;
        sqlite3_reset(ins);
        for (int k = 0; k < 5; k++)
            free(f[k].p);
        if (rc != 0)
            break;
    }
    sqlite3_finalize(ins);
    if (rc == 0 && (sqlite3_exec(ix->db, "COMMIT;", NULL, NULL, NULL) != SQLITE_OK ||
                    sqlite3_prepare_v2(ix->db, rank_sql, -1, &ix->query, NULL) != SQLITE_OK))
        rc = MG_EINTERNAL;
    if (rc != 0) {
        index_dispose(ix);
        return rc;
    }
    ix->count = json_array_size(tools);
    ix->bytes = (size_t)(sqlite3_memory_used() - mem0);
    *out = ix;
    return 0;
}

/* Words that say nothing about which tool is wanted. */
static const char *const stop_words[] = {
    "a",     "about", "all",  "an",    "and",   "any",  "are",  "as",    "at",   "be",    "by",    "can",
    "could", "do",    "does", "for",   "from",  "have", "how",  "i",     "if",   "in",    "into",  "is",
    "it",    "its",   "let",  "me",    "my",    "need", "of",   "on",    "one",  "or",    "our",   "please",
    "so",    "some",  "that", "the",   "their", "them", "then", "there", "this", "those", "to",    "tool",
    "tools", "up",    "us",   "use",   "using", "want", "was",  "we",    "what", "when",  "where", "which",
    "who",   "will",  "with", "would", "you",   "your", NULL};

static int is_stop(const char *w)
{
    for (size_t i = 0; stop_words[i] != NULL; i++)
        if (strcmp(stop_words[i], w) == 0)
            return 1;
    return 0;
}

/* Builds the MATCH expression: "w1" OR "w2" ... from the query's content words. */
static char *match_expr(const char *query)
{
    size_t qlen = strlen(query);
    size_t cap = qlen * 2 + 16 + MAX_QUERY_WORDS * 8;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    unsigned words = 0;
    char w[64];
    const unsigned char *p = (const unsigned char *)query;
    while (*p != '\0' && words < MAX_QUERY_WORDS) {
        while (*p != '\0' && !isalnum(*p))
            p++;
        size_t n = 0;
        while (*p != '\0' && isalnum(*p)) {
            /* camelCase in a query too ("getFileContents") */
            if (n > 0 && isupper(*p) && islower(p[-1]))
                break;
            if (n + 1 < sizeof w)
                w[n++] = (char)tolower(*p);
            p++;
        }
        w[n] = '\0';
        if (n < 2 || is_stop(w))
            continue;
        o += (size_t)snprintf(out + o, cap - o, "%s\"%s\"", words ? " OR " : "", w);
        words++;
    }
    out[o] = '\0';
    if (words == 0) {
        free(out);
        return strdup("");
    }
    return out;
}

int mg_toolsearch_index_search(mg_toolsearch_index_t *ix, const char *query, size_t *out, size_t cap)
{
    if (ix == NULL || query == NULL || cap == 0)
        return 0;
    char *expr = match_expr(query);
    if (expr == NULL)
        return MG_ENOMEM;
    if (expr[0] == '\0') {
        free(expr);
        return 0;
    }
    sqlite3_bind_text(ix->query, 1, expr, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(ix->query, 2, (sqlite3_int64)cap);
    free(expr);
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(ix->query)) == SQLITE_ROW && n < cap) {
        sqlite3_int64 id = sqlite3_column_int64(ix->query, 0);
        if (id >= 0 && (size_t)id < ix->count)
            out[n++] = (size_t)id;
    }
    sqlite3_reset(ix->query);
    sqlite3_clear_bindings(ix->query);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return MG_EINTERNAL;
    return (int)n;
}

size_t mg_toolsearch_index_size(const mg_toolsearch_index_t *ix)
{
    return ix ? ix->count : 0;
}

size_t mg_toolsearch_index_bytes(const mg_toolsearch_index_t *ix)
{
    return ix ? ix->bytes : 0;
}

void mg_toolsearch_index_free(mg_toolsearch_index_t *ix)
{
    if (ix != NULL)
        index_dispose(ix);
}
