/*
 * glob.h - name globs as docs/configuration.md promises them: '*' matches any run of bytes (also
 * empty), '?' exactly one byte, every other byte itself, case-sensitive. Used for tool filters
 * (gateway.tools, a server's tools) and authorization rules (gateway.auth.rules).
 * Read next: glob.c.
 */
#ifndef MG_GLOB_H
#define MG_GLOB_H

#include <stddef.h>

/* 1 when name matches pattern, else 0. Never exponential, whatever the pattern. */
int mg_glob_match(const char *pattern, const char *name);
/* 1 when any of the n patterns (NULL entries skipped) matches name. */
int mg_glob_any(char *const *patterns, size_t n, const char *name);

#endif
