/*
 * reload_cmd.c - `mcpgate reload`: sends SIGHUP to the running gateway, found by its pid file
 * (`serve --pid-file FILE`) or by the address it listens on (the process that holds the listening
 * socket, from /proc/net/tcp{,6} and /proc/PID/fd). The gateway logs the reload's result and shows
 * it in /readyz ("config") and /metrics (mcpgate_config_reloads_total).
 * Exit 0 signalled, 1 no such gateway, 2 usage. Read next: gateway/reload.c.
 */
#include "cli.h"
#include "../config/config.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "Usage: mcpgate reload (--pid-file FILE | --listen HOST:PORT)\n"
    "\n"
    "Asks the running gateway to re-read its configuration (SIGHUP). It is validated whole\n"
    "first: on any problem the running configuration stays and the gateway's log lists\n"
    "every problem; /readyz shows the config digest each replica runs.\n";

/* Socket inodes listening on port (IPv4 and IPv6), up to cap. */
static size_t listening_inodes(unsigned port, unsigned long *out, size_t cap)
{
    size_t n = 0;
    const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (int f = 0; f < 2; f++) {
        FILE *fp = fopen(files[f], "re");
        char line[512];
        if (fp == NULL)
            continue;
        while (fgets(line, sizeof line, fp) != NULL && n < cap) {
            char local[80], remote[80];
            unsigned st;
            unsigned long inode;
            if (sscanf(line, " %*d: %79s %79s %x %*s %*s %*s %*s %*s %lu", local, remote, &st, &inode) != 4)
                continue;
            const char *colon = strrchr(local, ':');
            if (st == 0x0A && colon != NULL && strtoul(colon + 1, NULL, 16) == port)
                out[n++] = inode;
        }
        fclose(fp);
    }
    return n;
}

/* The pid of the process holding one of the inodes, or -1. */
static long pid_of_inodes(const unsigned long *inodes, size_t n)
{
    DIR *proc = opendir("/proc");
    struct dirent *e;
    long found = -1;
    while (proc != NULL && found < 0 && (e = readdir(proc)) != NULL) {
        if (strspn(e->d_name, "0123456789") != strlen(e->d_name))
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/%s/fd", e->d_name);
        DIR *fds = opendir(path);
        struct dirent *fd;
        while (fds != NULL && found < 0 && (fd = readdir(fds)) != NULL) {
            char link[600], target[128];
            snprintf(link, sizeof link, "%s/%s", path, fd->d_name);
            ssize_t len = readlink(link, target, sizeof target - 1);
            if (len <= 0)
                continue;
            target[len] = '\0';
            unsigned long ino;
            if (sscanf(target, "socket:[%lu]", &ino) == 1)
                for (size_t i = 0; i < n; i++)
                    if (inodes[i] == ino)
                        found = strtol(e->d_name, NULL, 10);
        }
        if (fds != NULL)
            closedir(fds);
    }
    if (proc != NULL)
        closedir(proc);
    return found;
}

int mg_cli_reload(int argc, char **argv)
{
    const char *pid_file = NULL, *listen = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pid-file") == 0 && i + 1 < argc)
            pid_file = argv[++i];
        else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen = argv[++i];
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "mcpgate reload: unknown argument '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if ((pid_file == NULL) == (listen == NULL)) {
        fputs(usage, stderr);
        return 2;
    }
    long pid = -1;
    if (pid_file != NULL) {
        FILE *f = fopen(pid_file, "re");
        if (f == NULL || fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
            fprintf(stderr,
                    "mcpgate reload: cannot read a process id from %s (is the gateway running with "
                    "--pid-file %s?)\n",
                    pid_file, pid_file);
            if (f != NULL)
                fclose(f);
            return 1;
        }
        fclose(f);
    } else {
        char host[256];
        unsigned port = 0;
        if (mg_config_listen_parse(listen, host, sizeof host, &port) != 0) {
            fprintf(stderr, "mcpgate reload: --listen %s is not host:port\n", listen);
            return 2;
        }
        unsigned long inodes[16];
        size_t n = listening_inodes(port, inodes, 16);
        pid = n > 0 ? pid_of_inodes(inodes, n) : -1;
        if (pid < 0) {
            fprintf(stderr,
                    "mcpgate reload: no process of this user listens on port %u (another user's gateway: run "
                    "as that user, or use --pid-file)\n",
                    port);
            return 1;
        }
    }
    char comm[64] = "", path[64];
    snprintf(path, sizeof path, "/proc/%ld/comm", pid);
    FILE *c = fopen(path, "re");
    if (c != NULL) {
        if (fgets(comm, sizeof comm, c) == NULL)
            comm[0] = '\0';
        fclose(c);
    }
    comm[strcspn(comm, "\n")] = '\0';
    if (strncmp(comm, "mcpgate", 7) != 0) {
        fprintf(stderr, "mcpgate reload: process %ld is %s, not mcpgate; nothing sent\n", pid,
                comm[0] ? comm : "gone");
        return 1;
    }
    if (kill((pid_t)pid, SIGHUP) != 0) {
        fprintf(stderr, "mcpgate reload: cannot signal process %ld: %s\n", pid, strerror(errno));
        return 1;
    }
    printf("mcpgate reload: asked mcpgate (pid %ld) to reload; its log and /readyz (\"config\") tell the "
           "result\n",
           pid);
    return 0;
}
