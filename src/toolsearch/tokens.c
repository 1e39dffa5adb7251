/*
 * tokens.c - the token estimator (toolsearch.h): how many tokens a tool definition costs a model.
 *
 * No tokenizer vocabulary is shipped: the walk below imitates how BPE encoders pre-split text and
 * how their merges treat the pieces (common words and JSON punctuation such as `":"` or `",\"`
 * become one token). Its constants were fitted on the recorded catalogs of test/fixture/catalogs/
 * against o200k_base; bench/tokens/tokens.mjs measures the error against o200k_base and cl100k_base.
 * Read next: compact.c (cutting the count), cli_tools.c (reporting it).
 */
#include "toolsearch.h"

#include <stdlib.h>
#include <string.h>

#define LETTERS_PER_TOKEN 10
#define DIGITS_PER_TOKEN  3
#define PUNCT_PER_TOKEN   4

static int is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static size_t ceil_div(size_t a, size_t b)
{
    return (a + b - 1) / b;
}

size_t mg_toolsearch_tokens_text(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n = 0, i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (is_alpha(c)) {
            /* One word; humps at lower->Upper transitions ("inputSchema" = input|Schema). */
            size_t hump = 0;
            while (i < len && is_alpha(s[i])) {
                if (hump > 0 && s[i] >= 'A' && s[i] <= 'Z' && s[i - 1] >= 'a' && s[i - 1] <= 'z') {
                    n += ceil_div(hump, LETTERS_PER_TOKEN);
                    hump = 0;
                }
                hump++;
                i++;
            }
            n += ceil_div(hump, LETTERS_PER_TOKEN);
            continue;
        }
        if (is_digit(c)) {
            size_t j = i;
            while (j < len && is_digit(s[j]))
                j++;
            n += ceil_div(j - i, DIGITS_PER_TOKEN);
            i = j;
            continue;
        }
        if (c == ' ') {
            i++;
            continue;
        }
        if ((c == '_' || c == '-') && i > 0 && is_alpha(s[i - 1]) && i + 1 < len && is_alpha(s[i + 1])) {
            i++; /* "_update", "-post": the joiner rides on the next word */
            continue;
        }
        if (c >= 0x80) {
            /* One token per code point: skip the continuation bytes. */
            n++;
            i++;
            while (i < len && (s[i] & 0xC0) == 0x80)
                i++;
            continue;
        }
        if (c == '\\' && i + 1 < len && s[i + 1] == 'n') {
            n++;
            i += 2;
            continue;
        }
        size_t j = i;
        while (j < len && !is_alpha(s[j]) && !is_digit(s[j]) && s[j] != ' ' && s[j] < 0x80 &&
               !(s[j] == '\\' && j + 1 < len && s[j + 1] == 'n'))
            j++;
        n += ceil_div(j - i, PUNCT_PER_TOKEN);
        i = j;
    }
    return n;
}

size_t mg_toolsearch_tokens_json(const json_t *v)
{
    if (v == NULL)
        return 0;
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL)
        return 0;
    size_t n = mg_toolsearch_tokens_text(s, strlen(s));
    free(s);
    return n;
}

void mg_toolsearch_tokens_tool(const json_t *tool, mg_toolsearch_cost_t *out)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(tool))
        return;
    out->total = mg_toolsearch_tokens_json(tool);
    out->name = mg_toolsearch_tokens_json(json_object_get(tool, "name")) +
                mg_toolsearch_tokens_json(json_object_get(tool, "title"));
    const json_t *d = json_object_get(tool, "description");
    out->description = mg_toolsearch_tokens_json(d);
    out->desc_chars = json_is_string(d) ? json_string_length(d) : 0;
    out->schema = mg_toolsearch_tokens_json(json_object_get(tool, "inputSchema")) +
                  mg_toolsearch_tokens_json(json_object_get(tool, "outputSchema"));
}
