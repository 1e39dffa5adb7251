/*
 * rawspawn.c - a stdio server with plain pipes (contract in rawspawn.h). The same checks and the
 * same wrapping as child.c's spawn, through posix_spawn instead of uv_spawn: the caller has no
 * loop, only descriptors. Read next: rawspawn.h, child.c.
 */
#include "rawspawn.h"
#include "sandbox.h"
#include "upstream.h"
#include "upstream_int.h"
#include "../common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int mg_upstream_raw_start(const mg_server_config_t *s, mg_upstream_raw_t *r, char *why, size_t n)
{
    r->pid = -1;
    r->in = r->out = -1;
    if (s->command == NULL) {
        snprintf(why, n, "not a stdio server");
        return MG_EINVAL;
    }
    int rc = mg_upstream_command_check(s, why, n);
    char *path = NULL;
    if (rc == 0 && (rc = mg__command_resolve(s, &path)) != 0)
        snprintf(why, n, "%s not found on its PATH", s->command);
    if (rc != 0)
        return rc;
    char **argv = calloc(s->nargs + 2, sizeof *argv), **env = NULL;
    char *sb_file = NULL, **sb_argv = NULL;
    int pin[2] = {-1, -1}, pout[2] = {-1, -1};
    rc = MG_ENOMEM;
    if (argv == NULL || mg__env_build(s, &env) != 0) {
        snprintf(why, n, "out of memory");
        goto out;
    }
    argv[0] = s->command;
    for (size_t i = 0; i < s->nargs; i++)
        argv[i + 1] = s->args[i];
    if (s->sandbox != NULL) {
        char sw[400];
        if (mg_sandbox_probe(s->sandbox, sw, sizeof sw) != 0 ||
            mg_sandbox_wrap(s->sandbox, path, argv, &sb_file, &sb_argv) != 0) {
            snprintf(why, n, "sandbox: %s; the server is not started without it", sw);
            rc = MG_ESPAWN;
            goto out;
        }
    }
    if (pipe2(pin, O_CLOEXEC) != 0 || pipe2(pout, O_CLOEXEC) != 0) {
        snprintf(why, n, "pipe: %s", strerror(errno));
        rc = MG_EIO;
        goto out;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (s->cwd != NULL)
        posix_spawn_file_actions_addchdir_np(&fa, s->cwd);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID);
    pid_t pid;
    int e = posix_spawn(&pid, sb_file ? sb_file : path, &fa, &at, sb_argv ? sb_argv : argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (e != 0) {
        snprintf(why, n, "cannot start %s: %s", s->command, strerror(e));
        rc = MG_ESPAWN;
        goto out;
    }
    r->pid = pid;
    r->in = pin[1];
    r->out = pout[0];
    pin[1] = pout[0] = -1;
    rc = 0;
out:
    for (int i = 0; i < 2; i++) {
        if (pin[i] >= 0)
            close(pin[i]);
        if (pout[i] >= 0)
            close(pout[i]);
    }
    free(argv);
    free(path);
    mg__env_free(env);
    free(sb_file);
    if (sb_argv != NULL)
        mg_sandbox_argv_free(sb_argv);
    return rc;
}

void mg_upstream_raw_stop(mg_upstream_raw_t *r, unsigned grace_ms)
{
    if (r->in >= 0)
        close(r->in);
    if (r->out >= 0)
        close(r->out);
    r->in = r->out = -1;
    if (r->pid <= 0)
        return;
    kill(-r->pid, SIGTERM);
    for (unsigned waited = 0; waited < grace_ms; waited += 20) {
        if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
            r->pid = -1;
            return;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(-r->pid, SIGKILL);
    waitpid(r->pid, NULL, 0);
    r->pid = -1;
}
