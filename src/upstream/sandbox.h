/*
 * sandbox.h - least privilege for stdio children, without Docker: a server's optional "sandbox"
 * (another user, no_new_privs, rlimits, Landlock filesystem and TCP rules, a seccomp profile).
 *
 * libuv's uv_spawn() has no hook between fork and exec, so a sandboxed child is started through
 * the mcpgate binary itself: `mcpgate __sandbox-exec POLICY FILE -- ARGV...` applies POLICY (the
 * JSON of mg_sandbox_policy_json()) to itself, in a fixed order, then execv()s FILE. Any control it
 * cannot apply ends it with status 126 and one stderr line naming the control: it never runs the
 * server with less than was configured. The gateway probes the kernel first (mg_sandbox_probe) and
 * refuses to spawn when a configured control is unavailable, so the failure is a clear
 * last_error in /readyz, not a crash loop.
 *
 * Order in the child: rlimits -> setgroups/setgid/setuid -> no_new_privs -> Landlock -> seccomp ->
 * execv. What this is and is not: docs/security.md#sandbox. Read next: sandbox.c.
 */
#ifndef MG_SANDBOX_H
#define MG_SANDBOX_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../config/sandbox_config.h" /* mg_sandbox_config_t, as parsed */

/* Landlock ABI version of the running kernel (0 = unsupported or disabled). */
int mg_sandbox_landlock_abi(void);
/* 1 when seccomp filters can be installed (CONFIG_SECCOMP_FILTER). */
int mg_sandbox_seccomp_available(void);

/*
 * Parent side, before spawning: 0 when every configured control can be applied here; otherwise
 * MG_EINVAL with a sentence in why (e.g. "landlock.connectTcp needs Landlock ABI 4; this kernel has
 * 3"). Never touches the calling process.
 */
int mg_sandbox_probe(const mg_sandbox_config_t *sb, char *why, size_t n);

/*
 * Parent side, before spawning: can the user the child runs as (sandbox.user) reach path? Every
 * directory above it must be searchable by that uid (its gid as the only group, as the wrapper sets
 * it), and with need_exec the file itself executable. Classic mode bits only (no ACLs); root, or no
 * sandbox.user, reaches everything; so does any path when the gateway is not root (then the switch
 * is refused by mg_sandbox_probe). 0, or MG_EINVAL with "is not reachable by user nobody (65534)
 * (directory '/root' is not searchable)" (the caller names the path first) in why.
 */
int mg_sandbox_reachable(const mg_sandbox_config_t *sb, const char *path, int need_exec, char *why, size_t n);

/* The same for each landlock.read / landlock.write path (the wrapper opens them after switching
 * user): 0, or MG_EINVAL with "landlock path '...' is not reachable by user ..." in why. */
int mg_sandbox_paths_reachable(const mg_sandbox_config_t *sb, char *why, size_t n);

/* One line: what will be applied ("user nobody (65534:65534), no_new_privs, rlimits openFiles=64,
 * landlock ABI 7 (read 9 paths, write 2), seccomp default"). malloc'd. */
char *mg_sandbox_describe(const mg_sandbox_config_t *sb);

/*
 * Wraps a spawn: *out_file is this binary (/proc/self/exe), *out_argv is
 * {"mcpgate", "__sandbox-exec", POLICY, file, "--", argv...} (NULL-terminated). Free with
 * mg_sandbox_argv_free(). Returns 0 or MG_ENOMEM / MG_EIO (cannot find this binary).
 */
int mg_sandbox_wrap(const mg_sandbox_config_t *sb, const char *file, char *const *argv, char **out_file,
                    char ***out_argv);
void mg_sandbox_argv_free(char **argv);

/* `mcpgate __sandbox-exec POLICY FILE -- ARGV...`: applies POLICY then execv(FILE, ARGV). Returns
 * (126 or 127) only on failure. argv[0] is "__sandbox-exec". */
int mg_sandbox_exec_main(int argc, char **argv);

#endif
