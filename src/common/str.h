/*
 * str.h - bounded string copies for the request path (snprintf("%s") / "%.*s" without the cost of
 * printf's format machinery: ~600 instructions each, five of them per tools/call).
 * Same results as the snprintf calls they replace: at most size-1 bytes, always NUL-terminated,
 * stopping at a NUL in the source; a NULL source copies "(null)" as glibc's printf does.
 */
#ifndef MG_STR_H
#define MG_STR_H

#include <stddef.h>
#include <string.h>

/* snprintf(dst, size, "%.*s", (int)n, src) */
static inline void mg_strlcpyn(char *dst, size_t size, const char *src, size_t n)
{
    if (size == 0)
        return;
    if (src == NULL) {
        src = "(null)";
        n = 6;
    }
    size_t len = strnlen(src, n < size - 1 ? n : size - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* snprintf(dst, size, "%s", src) */
static inline void mg_strlcpy(char *dst, size_t size, const char *src)
{
    mg_strlcpyn(dst, size, src, (size_t)-1);
}

#endif
