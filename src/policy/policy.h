/*
 * policy.h - what upstreams may say and what clients may do: tool pinning against a lockfile,
 * description scanning, per-principal/tenant/tool rate limits, CORS, and the config of those.
 *
 * Config parsing (src/config/policy_config.c, policy_config.h) is apart from the runtime (lock.c,
 * scan.c, ratelimit.c, cors.c, hooks.c); the gateway reaches the runtime only through hooks.h. Pure
 * pieces with their own headers: lock.h (canonical hashing, the lockfile format), scan.h (the
 * scanner), ratelimit.h (token buckets behind an async store interface).
 * Read next: docs/security.md (what each control does and does not do), policy_int.h.
 */
#ifndef MG_POLICY_H
#define MG_POLICY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../config/policy_config.h" /* the policy keys of the config file, as parsed */

/*
 * `mcpgate check` additions: pinning (mode, lockfile, entries per server), scanning (findings over
 * the definitions recorded in the lockfile), credential sources (--env-file), sandbox (what this
 * kernel can apply), rate limits and CORS. Writes to f; returns the number of problems found
 * (e.g. a configured sandbox control this kernel cannot apply), which make check exit 1.
 */
int mg_policy_check_report(const struct mg_config *cfg, const char *env_file, FILE *f);

/* `mcpgate lock --config F [--diff | --update] [--lock FILE] [--env-file FILE]` (cli.h contract). */
int mg_cli_lock(int argc, char **argv);

#endif
