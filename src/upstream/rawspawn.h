/*
 * rawspawn.h - one stdio server started the way `serve` starts it (command checked and resolved on
 * its PATH, its declared env plus PATH/HOME/LANG, its cwd, its sandbox through `mcpgate
 * __sandbox-exec`, its own session and process group) but with plain pipes the caller reads and
 * writes line by line: for `mcpgate audit --config`'s stdio robustness probes, which must send
 * what the upstream module never sends (a malformed line, an oversized one).
 *
 * Ownership: the caller owns the two descriptors and the process (mg_upstream_raw_stop kills its
 * process group and reaps it). Stderr goes to /dev/null. Read next: child.c (the real spawn).
 */
#ifndef MG_UPSTREAM_RAWSPAWN_H
#define MG_UPSTREAM_RAWSPAWN_H

#include <stddef.h>
#include <sys/types.h>

#include "../config/config.h"

typedef struct mg_upstream_raw {
    pid_t pid;
    int in;  /* the child's stdin (we write) */
    int out; /* the child's stdout (we read) */
} mg_upstream_raw_t;

/* Starts s. Returns 0, or an MG_E* code with the reason (a sentence, no trailing period) in why. */
int mg_upstream_raw_start(const mg_server_config_t *s, mg_upstream_raw_t *r, char *why, size_t n);
/* Closes the pipes, kills the process group (SIGTERM, then SIGKILL after grace_ms) and reaps it. */
void mg_upstream_raw_stop(mg_upstream_raw_t *r, unsigned grace_ms);

#endif
