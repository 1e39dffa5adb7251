/*
 * sandbox_config.h - a server entry's "sandbox" object of the config file, as plain data (parsed by
 * policy_config.c). What each control does and how the child applies it: src/upstream/sandbox.h.
 * Read next: src/upstream/sandbox.h, docs/security.md#sandbox.
 */
#ifndef MG_CONFIG_SANDBOX_CONFIG_H
#define MG_CONFIG_SANDBOX_CONFIG_H

#include <stddef.h>
#include <stdint.h>

enum {
    MG_SANDBOX_RL_MEMORY = 0, /* "memoryBytes"   RLIMIT_AS */
    MG_SANDBOX_RL_PROCESSES,  /* "processes"     RLIMIT_NPROC (counts every process of the user) */
    MG_SANDBOX_RL_OPEN_FILES, /* "openFiles"     RLIMIT_NOFILE */
    MG_SANDBOX_RL_CPU,        /* "cpuSeconds"    RLIMIT_CPU */
    MG_SANDBOX_RL_FILE_SIZE,  /* "fileSizeBytes" RLIMIT_FSIZE */
    MG_SANDBOX_RL_CORE,       /* "coreBytes"     RLIMIT_CORE */
    MG_SANDBOX_NRLIMITS
};

/* A server entry's "sandbox" object, as parsed (policy_config.c). */
typedef struct mg_sandbox_config {
    char *user; /* "user": name or "uid[:gid]"; NULL = stay who the gateway is */
    unsigned uid, gid;
    int no_new_privs; /* "noNewPrivileges" (default true; forced by landlock/seccomp) */
    int has_rlimit[MG_SANDBOX_NRLIMITS];
    uint64_t rlimit[MG_SANDBOX_NRLIMITS];
    int landlock; /* a "landlock" object is present */
    char **ro;    /* "landlock.read": read + execute beneath these paths */
    size_t nro;
    char **rw; /* "landlock.write": read + write + create + remove beneath these */
    size_t nrw;
    int system_paths; /* "landlock.systemPaths" (default true): /usr /lib* /bin /sbin /etc /proc /sys /dev
                         read-only, /dev/null writable */
    int has_connect;  /* "landlock.connectTcp" present: TCP connect only to these ports, bind to none */
    unsigned *connect_ports;
    size_t nconnect;
    int seccomp;      /* "seccomp": "default" (deny list of kernel-administration syscalls) */
    int deny_network; /* "seccomp": {"denyNetwork": true}: socket(AF_INET/AF_INET6/AF_PACKET) fails */
} mg_sandbox_config_t;

/* The "rlimits" keys in enum order, NULL-terminated. */
extern const char *const mg_sandbox_rlimit_keys[MG_SANDBOX_NRLIMITS + 1];

void mg_sandbox_config_free(mg_sandbox_config_t *sb);

#endif
