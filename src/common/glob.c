/*
 * glob.c - the gateway's one glob (glob.h): tool allow/deny lists and "always" (toolsearch/), the
 * server and item patterns of gateway.auth.rules (auth/policy.c).
 *
 * '*' matches any run of bytes (also empty), '?' exactly one byte, everything else itself,
 * case-sensitive (tool names are). Iterative with one backtrack point: linear in practice, never
 * exponential, whatever the pattern. Not fnmatch(3): no [...] classes and no \\ escapes, so
 * every character but * and ? is literal. Read next: toolsearch/policy.c, auth/policy.c.
 */
#include "glob.h"

int mg_glob_match(const char *p, const char *s)
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

int mg_glob_any(char *const *patterns, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (patterns[i] != NULL && mg_glob_match(patterns[i], name))
            return 1;
    return 0;
}
