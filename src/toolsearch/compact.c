/*
 * compact.c - description compaction that never changes what a tool means (toolsearch.h).
 *
 * Text: CRLF -> LF, tabs -> spaces, trailing blanks cut, runs of blanks inside a line -> one
 * (leading indentation is kept: Markdown reads it; only 1-3 spaces opening the text go, which
 * Markdown ignores), runs of blank lines -> one, leading/trailing blank lines cut, and a paragraph (block
 * between blank lines) that repeats an earlier one word for word is dropped -- the "duplicated example".
 * Schemas: only keywords that restate a default or a name go ("$schema", additionalProperties: true,
 * required: [], a title equal to its property's or tool's name, a property description identical to the tool
 * description). The walk follows JSON Schema's structure, so a *property* called "$schema" or "title" is
 * never touched. Read next: runtime.c (applied when gateway.tools.compact is true), cli_tools.c (reported).
 */
#include "toolsearch.h"
#include "../common/json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_DUP_PARAGRAPH 16 /* shorter repeated paragraphs are kept ("Returns:", "}") */

typedef struct buf {
    char *p;
    size_t len, cap;
    int oom;
} buf_t;

static void put(buf_t *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *g = realloc(b->p, cap);
        if (g == NULL) {
            b->oom = 1;
            return;
        }
        b->p = g;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/* Whitespace-insensitive equality of two paragraphs. */
static int same_words(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < alen && isspace((unsigned char)a[i]))
            i++;
        while (j < blen && isspace((unsigned char)b[j]))
            j++;
        if (i == alen || j == blen)
            return i == alen && j == blen;
        int sa = 0, sb = 0;
        while (i < alen && !isspace((unsigned char)a[i]) && j < blen && !isspace((unsigned char)b[j])) {
            if (a[i++] != b[j++])
                return 0;
        }
        sa = i < alen && !isspace((unsigned char)a[i]);
        sb = j < blen && !isspace((unsigned char)b[j]);
        if (sa || sb)
            return 0;
    }
}

/* Normalizes one line into out: tabs -> spaces, inner blank runs -> one, trailing blanks cut. */
static void put_line(buf_t *out, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) {
        put(out, " ", 1);
        i++;
    }
    int blank = 0;
    for (; i < n; i++) {
        if (s[i] == ' ' || s[i] == '\t') {
            blank = 1;
            continue;
        }
        if (blank)
            put(out, " ", 1);
        blank = 0;
        put(out, &s[i], 1);
    }
}

/* Returns a NEW malloc'd compacted copy of text, or NULL when out of memory. */
static char *compact_text(const char *text)
{
    size_t n = strlen(text);
    /* Pass 1: lines, normalized, with blank-line runs collapsed. */
    buf_t lines = {0};
    int pending_blank = 0, any = 0;
    size_t i = 0;
    for (;;) {
        size_t j = i;
        while (j < n && text[j] != '\n')
            j++;
        size_t e = j;
        if (e > i && text[e - 1] == '\r')
            e--;
        buf_t one = {0};
        size_t lead = i;
        while (!any && lead < e && (text[lead] == ' ' || text[lead] == '\t'))
            lead++;
        if (lead - i >= 4) /* the text opens with an indented (code) block: keep it */
            lead = i;
        put_line(&one, text + lead, e - lead);
        if (one.oom)
            lines.oom = 1;
        if (one.len == 0 || strspn(one.p, " ") == one.len) {
            pending_blank = any;
        } else {
            if (any)
                put(&lines, "\n\n", pending_blank ? 2 : 1);
            put(&lines, one.p, one.len);
            pending_blank = 0;
            any = 1;
        }
        free(one.p);
        if (j >= n)
            break;
        i = j + 1;
    }
    if (lines.oom) {
        free(lines.p);
        return NULL;
    }
    if (lines.p == NULL)
        return strdup("");
    /* Pass 2: drop paragraphs that repeat an earlier one. */
    buf_t out = {0};
    const char *p = lines.p, *end = lines.p + lines.len;
    while (p < end) {
        const char *q = strstr(p, "\n\n");
        if (q == NULL)
            q = end;
        size_t plen = (size_t)(q - p);
        int dup = 0;
        if (plen >= MIN_DUP_PARAGRAPH) {
            const char *r = lines.p;
            while (r < p && !dup) {
                const char *rq = strstr(r, "\n\n");
                if (rq == NULL || rq > p)
                    rq = p;
                dup = same_words(r, (size_t)(rq - r), p, plen);
                r = rq + 2;
            }
        }
        if (!dup) {
            if (out.len > 0)
                put(&out, "\n\n", 2);
            put(&out, p, plen);
        }
        p = q + (q < end ? 2 : 0);
    }
    free(lines.p);
    if (out.oom) {
        free(out.p);
        return NULL;
    }
    return out.p ? out.p : strdup("");
}

static int set_compacted(json_t *obj, const char *key)
{
    const char *d = json_string_value(json_object_get(obj, key));
    if (d == NULL)
        return 0;
    char *c = compact_text(d);
    if (c == NULL)
        return -1;
    if (strcmp(c, d) != 0)
        json_object_set_new(obj, key, json_string(c));
    free(c);
    return 0;
}

/* Letters and digits only, lower-cased: "Repo Name" ~ "repo_name". */
static int same_name(const char *a, const char *b)
{
    for (;;) {
        while (*a && !isalnum((unsigned char)*a))
            a++;
        while (*b && !isalnum((unsigned char)*b))
            b++;
        if (*a == '\0' || *b == '\0')
            return *a == *b;
        if (tolower((unsigned char)*a++) != tolower((unsigned char)*b++))
            return 0;
    }
}

static void compact_schema(json_t *s, const char *tool_desc, int depth);

static void compact_map(json_t *map, const char *tool_desc, int props, int depth)
{
    const char *name;
    json_t *sub;
    if (!json_is_object(map))
        return;
    json_object_foreach(map, name, sub)
    {
        if (!json_is_object(sub))
            continue;
        if (props) {
            const char *title = json_string_value(json_object_get(sub, "title"));
            if (title != NULL && same_name(title, name))
                json_object_del(sub, "title");
            const char *d = json_string_value(json_object_get(sub, "description"));
            if (d != NULL && tool_desc != NULL && strlen(d) >= MIN_DUP_PARAGRAPH &&
                same_words(d, strlen(d), tool_desc, strlen(tool_desc)))
                json_object_del(sub, "description");
        }
        compact_schema(sub, tool_desc, depth + 1);
    }
}

static void compact_schema(json_t *s, const char *tool_desc, int depth)
{
    static const char *const maps[] = {"properties", "patternProperties", "$defs", "definitions",
                                       "dependentSchemas"};
    static const char *const subs[] = {"items",
                                       "additionalProperties",
                                       "not",
                                       "if",
                                       "then",
                                       "else",
                                       "contains",
                                       "propertyNames",
                                       "unevaluatedItems",
                                       "unevaluatedProperties",
                                       "additionalItems"};
    static const char *const lists[] = {"anyOf", "oneOf", "allOf", "prefixItems", "items"};
    if (!json_is_object(s) || depth > 64)
        return;
    json_object_del(s, "$schema");
    if (json_is_true(json_object_get(s, "additionalProperties")))
        json_object_del(s, "additionalProperties");
    json_t *req = json_object_get(s, "required");
    if (json_is_array(req) && json_array_size(req) == 0)
        json_object_del(s, "required");
    set_compacted(s, "description");
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
        compact_map(json_object_get(s, maps[i]), tool_desc, i == 0, depth);
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        compact_schema(json_object_get(s, subs[i]), tool_desc, depth + 1);
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        json_t *arr = json_object_get(s, lists[i]);
        size_t k;
        json_t *item;
        if (json_is_array(arr))
            json_array_foreach(arr, k, item) compact_schema(item, tool_desc, depth + 1);
    }
}

/* A top-level schema title that only restates the tool name ("create_issueArguments"). */
static void drop_name_title(json_t *schema, const char *tool)
{
    const char *t = json_string_value(json_object_get(schema, "title"));
    if (t == NULL || tool == NULL)
        return;
    static const char *const tails[] = {"",       "arguments",  "args",   "input",
                                        "params", "parameters", "output", "result"};
    char buf[300];
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        snprintf(buf, sizeof buf, "%s%s", tool, tails[i]);
        if (same_name(t, buf)) {
            json_object_del(schema, "title");
            return;
        }
    }
}

json_t *mg_toolsearch_compact_tool(const json_t *tool)
{
    json_t *t = mg_json_deep_copy(tool);
    if (t == NULL || !json_is_object(t))
        return t;
    if (set_compacted(t, "description") != 0) {
        json_decref(t);
        return NULL;
    }
    const char *desc = json_string_value(json_object_get(t, "description"));
    const char *name = json_string_value(json_object_get(t, "name"));
    const char *schemas[] = {"inputSchema", "outputSchema"};
    for (int i = 0; i < 2; i++) {
        json_t *s = json_object_get(t, schemas[i]);
        if (!json_is_object(s))
            continue;
        drop_name_title(s, name);
        compact_schema(s, desc, 0);
    }
    return t;
}
