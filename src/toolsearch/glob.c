/*
 * glob.c - tool-name globs for allow/deny lists and "always" (toolsearch.h).
 *
 * '*' matches any run of bytes (also empty), '?' exactly one byte, everything else itself,
 * case-sensitive (tool names are). Iterative with one backtrack point: linear in practice, never
 * exponential, whatever the pattern. Read next: policy.c.
 */
#include "toolsearch.h"

int mg_toolsearch_glob_match(const char *p, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s != '\0') {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == '?' || *p == *s) {
            p++;
            s++;
        } else if (star != NULL) {
            p = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

int mg_toolsearch_glob_any(char *const *patterns, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (patterns[i] != NULL && mg_toolsearch_glob_match(patterns[i], name))
            return 1;
    return 0;
}
