/*
 * sandbox.c - the "sandbox" of a stdio server: kernel probes, the policy handed to the exec
 * wrapper, and the wrapper itself (`mcpgate __sandbox-exec`), which applies the policy to its own
 * process and then becomes the server with execv(). Contract and order: sandbox.h.
 *
 * The wrapper's policy (argv[1]) is compact JSON, built by the gateway and never by a user:
 *   {"uid":N,"gid":N,"nnp":true,"rlimits":{"openFiles":N,...},
 *    "landlock":{"ro":[paths],"rw":[paths],"connect":[ports]},"seccomp":{"denyNetwork":bool}}
 * Every key is optional; a key present is a control that must be applied or the wrapper exits 126.
 * Read next: child.c (where spawns are wrapped), docs/security.md#sandbox.
 */
#include "sandbox.h"
#include "../common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const int rlimit_res[MG_SANDBOX_NRLIMITS] = {RLIMIT_AS,  RLIMIT_NPROC, RLIMIT_NOFILE,
                                                    RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_CORE};

/* System paths granted by landlock.systemPaths (read-only; missing ones are skipped). */
static const char *const system_ro[] = {"/usr",  "/lib", "/lib32", "/lib64", "/libx32", "/bin",
                                        "/sbin", "/etc", "/proc",  "/sys",   "/dev",    NULL};
static const char *const system_rw[] = {"/dev/null", NULL};

/* ---- Landlock (constants from the kernel's uapi, for headers older than the running kernel) ---- */

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule       445
#define __NR_landlock_restrict_self  446
#endif
#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH      1
#define LL_RULE_NET_PORT          2
#define LL_FS_EXECUTE             (1ULL << 0)
#define LL_FS_WRITE_FILE          (1ULL << 1)
#define LL_FS_READ_FILE           (1ULL << 2)
#define LL_FS_READ_DIR            (1ULL << 3)
#define LL_FS_REMOVE_DIR          (1ULL << 4)
#define LL_FS_REMOVE_FILE         (1ULL << 5)
#define LL_FS_MAKE_CHAR           (1ULL << 6)
#define LL_FS_MAKE_DIR            (1ULL << 7)
#define LL_FS_MAKE_REG            (1ULL << 8)
#define LL_FS_MAKE_SOCK           (1ULL << 9)
#define LL_FS_MAKE_FIFO           (1ULL << 10)
#define LL_FS_MAKE_BLOCK          (1ULL << 11)
#define LL_FS_MAKE_SYM            (1ULL << 12)
#define LL_FS_REFER               (1ULL << 13) /* ABI 2 */
#define LL_FS_TRUNCATE            (1ULL << 14) /* ABI 3 */
#define LL_FS_IOCTL_DEV           (1ULL << 15) /* ABI 5 */
#define LL_NET_BIND_TCP           (1ULL << 0)  /* ABI 4 */
#define LL_NET_CONNECT_TCP        (1ULL << 1)  /* ABI 4 */
#define LL_SCOPE_ABSTRACT_UNIX    (1ULL << 0)  /* ABI 6 */
#define LL_SCOPE_SIGNAL           (1ULL << 1)  /* ABI 6 */

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

struct ll_net_port_attr {
    uint64_t allowed_access;
    uint64_t port;
};

int mg_sandbox_landlock_abi(void)
{
    long v = syscall(__NR_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    return v > 0 ? (int)v : 0;
}

static uint64_t fs_handled(int abi)
{
    uint64_t m = (1ULL << 13) - 1; /* ABI 1: EXECUTE .. MAKE_SYM */
    if (abi >= 2)
        m |= LL_FS_REFER;
    if (abi >= 3)
        m |= LL_FS_TRUNCATE;
    if (abi >= 5)
        m |= LL_FS_IOCTL_DEV;
    return m;
}

/* Rights beneath a "read" path and beneath a "write" path; what a regular file may carry. */
static uint64_t ro_rights(void)
{
    return LL_FS_EXECUTE | LL_FS_READ_FILE | LL_FS_READ_DIR;
}

static uint64_t rw_rights(int abi)
{
    uint64_t m = LL_FS_READ_FILE | LL_FS_READ_DIR | LL_FS_WRITE_FILE | LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE |
                 LL_FS_MAKE_DIR | LL_FS_MAKE_REG | LL_FS_MAKE_SOCK | LL_FS_MAKE_FIFO | LL_FS_MAKE_SYM;
    return m | (fs_handled(abi) & (LL_FS_REFER | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV));
}

static const uint64_t file_rights =
    LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV;

/* ---- seccomp ---- */

#if defined(__x86_64__)
#define MG_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define MG_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

int mg_sandbox_seccomp_available(void)
{
#ifdef MG_AUDIT_ARCH
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0)
        return 0;
    uint32_t action = SECCOMP_RET_ERRNO;
    return syscall(__NR_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
#else
    return 0;
#endif
}

/* Kernel administration, tracing and namespace syscalls a server has no business making. */
static const long denied_syscalls[] = {
#ifdef __NR_ptrace
    __NR_ptrace,
#endif
#ifdef __NR_process_vm_readv
    __NR_process_vm_readv,
    __NR_process_vm_writev,
#endif
#ifdef __NR_kexec_load
    __NR_kexec_load,
#endif
#ifdef __NR_kexec_file_load
    __NR_kexec_file_load,
#endif
    __NR_init_module,
    __NR_finit_module,
    __NR_delete_module,
    __NR_reboot,
    __NR_swapon,
    __NR_swapoff,
    __NR_mount,
    __NR_umount2,
    __NR_pivot_root,
    __NR_chroot,
    __NR_unshare,
    __NR_setns,
#ifdef __NR_bpf
    __NR_bpf,
#endif
#ifdef __NR_perf_event_open
    __NR_perf_event_open,
#endif
    __NR_keyctl,
    __NR_add_key,
    __NR_request_key,
    __NR_acct,
    __NR_quotactl,
    __NR_syslog,
    __NR_settimeofday,
    __NR_clock_settime,
    __NR_clock_adjtime,
    __NR_adjtimex,
    __NR_sethostname,
    __NR_setdomainname,
    __NR_open_by_handle_at,
    __NR_name_to_handle_at,
    __NR_vhangup,
    __NR_fanotify_init,
#ifdef __NR_userfaultfd
    __NR_userfaultfd,
#endif
#ifdef __NR_kcmp
    __NR_kcmp,
#endif
#ifdef __NR_iopl
    __NR_iopl,
    __NR_ioperm,
#endif
#ifdef __NR_lookup_dcookie
    __NR_lookup_dcookie,
#endif
#ifdef __NR_io_uring_setup
    __NR_io_uring_setup,
    __NR_io_uring_enter,
    __NR_io_uring_register,
#endif
#ifdef __NR_open_tree
    __NR_open_tree,
    __NR_move_mount,
    __NR_fsopen,
    __NR_fsconfig,
    __NR_fsmount,
    __NR_fspick,
#endif
#ifdef __NR_mount_setattr
    __NR_mount_setattr,
#endif
};
#define NDENIED (sizeof denied_syscalls / sizeof denied_syscalls[0])

#define NS_FLAGS                                                                                             \
    (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |               \
     CLONE_NEWCGROUP)

#ifdef MG_AUDIT_ARCH
static int seccomp_install(int deny_network, const char **why)
{
    struct sock_filter f[NDENIED * 2 + 32];
    size_t n = 0;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    const unsigned arg0 = offsetof(struct seccomp_data, args[0]) + 4;
#else
    const unsigned arg0 = offsetof(struct seccomp_data, args[0]);
#endif
    const unsigned nr = offsetof(struct seccomp_data, nr);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MG_AUDIT_ARCH, 1, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS); /* foreign ABI */
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, nr);
#ifdef __x86_64__
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u /* x32 */, 0, 1);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
#endif
    for (size_t i = 0; i < NDENIED; i++) {
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)denied_syscalls[i], 0, 1);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
    }
#ifdef __NR_clone3
    /* clone3 passes its flags in memory a filter cannot read: ENOSYS makes libc fall back to clone. */
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
#endif
    /* clone with namespace flags (x86_64 and aarch64 both pass flags in the first argument). */
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg0);
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS, 0, 1);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, nr);
    if (deny_network) {
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 5);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg0);
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET, 2, 0);
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, 1, 0);
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_PACKET, 0, 1);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, nr);
    }
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog prog = {(unsigned short)n, f};
    if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
        *why = strerror(errno);
        return -1;
    }
    return 0;
}
#endif

/* ---- parent side ---- */

int mg_sandbox_probe(const mg_sandbox_config_t *sb, char *why, size_t n)
{
    if (sb == NULL)
        return 0;
    int switching = sb->user != NULL && sb->uid != (unsigned)geteuid();
    if (switching && geteuid() != 0) {
        snprintf(why, n, "sandbox.user '%s' needs the gateway to run as root (it runs as uid %u)", sb->user,
                 (unsigned)geteuid());
        return MG_EINVAL;
    }
    unsigned child_uid = sb->user != NULL ? sb->uid : (unsigned)geteuid();
    if (sb->has_rlimit[MG_SANDBOX_RL_PROCESSES] && child_uid == 0) {
        snprintf(why, n,
                 "sandbox.rlimits.processes is not enforced for root (the kernel exempts it): set "
                 "sandbox.user to an unprivileged user");
        return MG_EINVAL;
    }
    for (int i = 0; i < MG_SANDBOX_NRLIMITS; i++) {
        struct rlimit cur;
        if (!sb->has_rlimit[i] || getrlimit(rlimit_res[i], &cur) != 0)
            continue;
        if (cur.rlim_max != RLIM_INFINITY && sb->rlimit[i] > cur.rlim_max && geteuid() != 0) {
            snprintf(why, n, "sandbox.rlimits.%s %llu is above the gateway's own hard limit %llu",
                     mg_sandbox_rlimit_keys[i], (unsigned long long)sb->rlimit[i],
                     (unsigned long long)cur.rlim_max);
            return MG_EINVAL;
        }
    }
    if (sb->landlock) {
        int abi = mg_sandbox_landlock_abi();
        if (abi < 1) {
            snprintf(why, n,
                     "sandbox.landlock: this kernel has no Landlock (not built in, or not in the lsm= "
                     "boot list); remove landlock or run on a kernel >= 5.13 with Landlock enabled");
            return MG_EINVAL;
        }
        if (sb->has_connect && abi < 4) {
            snprintf(why, n,
                     "sandbox.landlock.connectTcp needs Landlock ABI 4 (kernel >= 6.7); this kernel has "
                     "ABI %d",
                     abi);
            return MG_EINVAL;
        }
        for (size_t i = 0; i < sb->nro + sb->nrw; i++) {
            const char *p = i < sb->nro ? sb->ro[i] : sb->rw[i - sb->nro];
            struct stat st;
            if (stat(p, &st) != 0) {
                snprintf(why, n, "sandbox.landlock: path '%s' cannot be used: %s", p, strerror(errno));
                return MG_EINVAL;
            }
        }
    }
    if ((sb->seccomp || sb->deny_network) && !mg_sandbox_seccomp_available()) {
        snprintf(why, n, "sandbox.seccomp: seccomp filters are not available on this kernel or architecture");
        return MG_EINVAL;
    }
    return 0;
}

/* May uid (with gid as its only group) do `bit` (1 search/execute, 4 read) on st? Mode bits only:
 * the owner class applies to the owner even when "other" would allow more, as the kernel does. */
static int may(const struct stat *st, unsigned uid, unsigned gid, unsigned bit)
{
    if (uid == 0) /* CAP_DAC_OVERRIDE: any directory; a file needs some execute bit */
        return S_ISDIR(st->st_mode) || bit != 1 || (st->st_mode & 0111) != 0;
    if (st->st_uid == uid)
        return (st->st_mode >> 6 & bit) != 0;
    if (st->st_gid == gid)
        return (st->st_mode >> 3 & bit) != 0;
    return (st->st_mode & bit) != 0;
}

/* Checks each directory above path (as written, then as resolved: symlinks). */
static int dirs_reachable(const char *path, unsigned uid, unsigned gid, char *bad, size_t n)
{
    char *real = realpath(path, NULL);
    const char *forms[2] = {path, real};
    for (int f = 0; f < 2; f++) {
        const char *p = forms[f];
        if (p == NULL || p[0] != '/')
            continue;
        size_t len = strlen(p);
        char *dir = malloc(len + 2);
        if (dir == NULL)
            break;
        for (size_t i = 1; i <= len; i++) {
            if (p[i] != '/' && p[i] != '\0')
                continue;
            if (p[i] == '\0')
                break; /* the last component is the target itself */
            memcpy(dir, p, i);
            dir[i] = '\0';
            struct stat st;
            if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && !may(&st, uid, gid, 1)) {
                snprintf(bad, n, "%s", dir);
                free(dir);
                free(real);
                return 0;
            }
        }
        struct stat root;
        if (stat("/", &root) == 0 && !may(&root, uid, gid, 1)) {
            snprintf(bad, n, "/");
            free(dir);
            free(real);
            return 0;
        }
        free(dir);
    }
    free(real);
    return 1;
}

int mg_sandbox_reachable(const mg_sandbox_config_t *sb, const char *path, int need_exec, char *why, size_t n)
{
    /* Not root: the switch itself is refused first (mg_sandbox_probe), with its own sentence. */
    if (sb == NULL || sb->user == NULL || sb->uid == 0 || path == NULL || geteuid() != 0)
        return 0;
    char bad[512];
    if (!dirs_reachable(path, sb->uid, sb->gid, bad, sizeof bad)) {
        snprintf(why, n, "is not reachable by user %s (uid %u) (directory '%s' is not searchable)", sb->user,
                 sb->uid, bad);
        return MG_EINVAL;
    }
    struct stat st;
    if (need_exec && stat(path, &st) == 0 && !S_ISDIR(st.st_mode) && !may(&st, sb->uid, sb->gid, 1)) {
        snprintf(why, n, "is not executable by user %s (uid %u) (mode %04o, owner uid %u)", sb->user, sb->uid,
                 (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
        return MG_EINVAL;
    }
    return 0;
}

int mg_sandbox_paths_reachable(const mg_sandbox_config_t *sb, char *why, size_t n)
{
    if (sb == NULL || !sb->landlock)
        return 0;
    for (int rw = 0; rw < 2; rw++) {
        char **paths = rw ? sb->rw : sb->ro;
        size_t np = rw ? sb->nrw : sb->nro;
        for (size_t i = 0; i < np; i++) {
            char w[700];
            if (mg_sandbox_reachable(sb, paths[i], 0, w, sizeof w) != 0) {
                snprintf(why, n, "landlock.%s path '%s' %s", rw ? "write" : "read", paths[i], w);
                return MG_EINVAL;
            }
        }
    }
    return 0;
}

char *mg_sandbox_describe(const mg_sandbox_config_t *sb)
{
    char buf[1024];
    size_t o = 0;
#define ADD(...) o += (size_t)snprintf(buf + o, o < sizeof buf ? sizeof buf - o : 0, __VA_ARGS__)
    buf[0] = '\0';
    if (sb->user != NULL)
        ADD("user %s (%u:%u)", sb->user, sb->uid, sb->gid);
    if (sb->no_new_privs)
        ADD("%sno_new_privs", o ? ", " : "");
    int first = 1;
    for (int i = 0; i < MG_SANDBOX_NRLIMITS; i++) {
        if (!sb->has_rlimit[i])
            continue;
        ADD("%s%s%s=%llu", first ? (o ? ", rlimits " : "rlimits ") : " ", "", mg_sandbox_rlimit_keys[i],
            (unsigned long long)sb->rlimit[i]);
        first = 0;
    }
    if (sb->landlock) {
        int abi = mg_sandbox_landlock_abi();
        ADD("%slandlock ABI %d (read %zu path%s, write %zu%s%s)", o ? ", " : "", abi, sb->nro,
            sb->nro == 1 ? "" : "s", sb->nrw, sb->system_paths ? ", system paths" : "",
            sb->has_connect ? ", TCP connect allowlist" : "");
        if (abi >= 6)
            ADD(", scoped signals and abstract sockets");
    }
    if (sb->seccomp || sb->deny_network)
        ADD("%sseccomp default%s", o ? ", " : "", sb->deny_network ? " + denyNetwork" : "");
    if (o == 0)
        ADD("nothing");
#undef ADD
    return strdup(buf);
}

/* The policy JSON the wrapper receives; system paths and the executable are made explicit here. */
static json_t *policy_json(const mg_sandbox_config_t *sb, const char *file)
{
    json_t *p = json_object();
    if (sb->user != NULL) {
        json_object_set_new(p, "uid", json_integer(sb->uid));
        json_object_set_new(p, "gid", json_integer(sb->gid));
    }
    if (sb->no_new_privs || sb->landlock || sb->seccomp || sb->deny_network)
        json_object_set_new(p, "nnp", json_true());
    json_t *rl = json_object();
    for (int i = 0; i < MG_SANDBOX_NRLIMITS; i++)
        if (sb->has_rlimit[i])
            json_object_set_new(rl, mg_sandbox_rlimit_keys[i], json_integer((json_int_t)sb->rlimit[i]));
    if (json_object_size(rl) > 0)
        json_object_set_new(p, "rlimits", rl);
    else
        json_decref(rl);
    if (sb->landlock) {
        json_t *ro = json_array(), *rw = json_array();
        for (size_t i = 0; i < sb->nro; i++)
            json_array_append_new(ro, json_string(sb->ro[i]));
        for (size_t i = 0; i < sb->nrw; i++)
            json_array_append_new(rw, json_string(sb->rw[i]));
        if (sb->system_paths) {
            struct stat st;
            for (size_t i = 0; system_ro[i] != NULL; i++)
                if (stat(system_ro[i], &st) == 0)
                    json_array_append_new(ro, json_string(system_ro[i]));
            for (size_t i = 0; system_rw[i] != NULL; i++)
                if (stat(system_rw[i], &st) == 0)
                    json_array_append_new(rw, json_string(system_rw[i]));
        }
        if (file != NULL)
            json_array_append_new(ro, json_string(file)); /* the server's own executable */
        json_t *ll = json_pack("{s:o,s:o}", "ro", ro, "rw", rw);
        if (sb->has_connect) {
            json_t *ports = json_array();
            for (size_t i = 0; i < sb->nconnect; i++)
                json_array_append_new(ports, json_integer(sb->connect_ports[i]));
            json_object_set_new(ll, "connect", ports);
        }
        json_object_set_new(p, "landlock", ll);
    }
    if (sb->seccomp || sb->deny_network)
        json_object_set_new(p, "seccomp", json_pack("{s:b}", "denyNetwork", sb->deny_network));
    return p;
}

int mg_sandbox_wrap(const mg_sandbox_config_t *sb, const char *file, char *const *argv, char **out_file,
                    char ***out_argv)
{
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return MG_EIO;
    self[len] = '\0';
    size_t nargs = 0;
    while (argv[nargs] != NULL)
        nargs++;
    char **v = calloc(nargs + 6, sizeof *v);
    json_t *pj = policy_json(sb, file);
    char *policy = pj ? json_dumps(pj, JSON_COMPACT) : NULL;
    json_decref(pj);
    if (v == NULL || policy == NULL) {
        free(v);
        free(policy);
        return MG_ENOMEM;
    }
    size_t k = 0;
    v[k++] = strdup("mcpgate");
    v[k++] = strdup("__sandbox-exec");
    v[k++] = policy;
    v[k++] = strdup(file);
    v[k++] = strdup("--");
    for (size_t i = 0; i < nargs; i++)
        v[k++] = strdup(argv[i]);
    *out_file = strdup(self);
    for (size_t i = 0; i < k; i++) {
        if (v[i] == NULL || *out_file == NULL) {
            mg_sandbox_argv_free(v);
            free(*out_file);
            *out_file = NULL;
            return MG_ENOMEM;
        }
    }
    *out_argv = v;
    return 0;
}

void mg_sandbox_argv_free(char **argv)
{
    if (argv == NULL)
        return;
    for (char **p = argv; *p != NULL; p++)
        free(*p);
    free(argv);
}

/* ---- the wrapper (runs in the child, single-threaded, before exec) ---- */

static int die(const char *control, const char *detail)
{
    fprintf(stderr, "mcpgate-sandbox: cannot apply %s: %s; refusing to start the server without it\n",
            control, detail);
    return 126;
}

static int apply_landlock(const json_t *ll, char *done, size_t n)
{
    int abi = mg_sandbox_landlock_abi();
    if (abi < 1)
        return die("landlock", "this kernel has no Landlock");
    const json_t *connect = json_object_get(ll, "connect");
    if (connect != NULL && abi < 4)
        return die("landlock.connectTcp", "needs Landlock ABI 4");
    struct ll_ruleset_attr attr = {0};
    attr.handled_access_fs = fs_handled(abi);
    if (connect != NULL)
        attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
    if (abi >= 6)
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
    size_t attr_size = abi >= 6 ? sizeof attr : abi >= 4 ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
    int rfd = (int)syscall(__NR_landlock_create_ruleset, &attr, attr_size, 0);
    if (rfd < 0)
        return die("landlock", strerror(errno));
    size_t nrules = 0;
    for (int rw = 0; rw < 2; rw++) {
        const json_t *paths = json_object_get(ll, rw ? "rw" : "ro");
        size_t i;
        const json_t *p;
        json_array_foreach(paths, i, p)
        {
            const char *path = json_string_value(p);
            int fd = open(path, O_PATH | O_CLOEXEC);
            if (fd < 0) {
                char m[600];
                snprintf(m, sizeof m, "path '%s': %s", path, strerror(errno));
                close(rfd);
                return die("landlock", m);
            }
            struct stat st;
            uint64_t rights = rw ? rw_rights(abi) : ro_rights();
            if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
                rights &= file_rights;
            struct ll_path_beneath_attr pb = {rights & attr.handled_access_fs, fd};
            if (syscall(__NR_landlock_add_rule, rfd, LL_RULE_PATH_BENEATH, &pb, 0) != 0) {
                char m[600];
                snprintf(m, sizeof m, "rule for '%s': %s", path, strerror(errno));
                close(fd);
                close(rfd);
                return die("landlock", m);
            }
            close(fd);
            nrules++;
        }
    }
    size_t i;
    const json_t *port;
    json_array_foreach(connect, i, port)
    {
        struct ll_net_port_attr np = {LL_NET_CONNECT_TCP, (uint64_t)json_integer_value(port)};
        if (syscall(__NR_landlock_add_rule, rfd, LL_RULE_NET_PORT, &np, 0) != 0) {
            close(rfd);
            return die("landlock.connectTcp", strerror(errno));
        }
    }
    if (syscall(__NR_landlock_restrict_self, rfd, 0) != 0) {
        close(rfd);
        return die("landlock", strerror(errno));
    }
    close(rfd);
    snprintf(done, n, "landlock ABI %d (%zu path rules%s%s)", abi, nrules,
             connect ? ", TCP connect allowlist" : "", abi >= 6 ? ", scoped" : "");
    return 0;
}

int mg_sandbox_exec_main(int argc, char **argv)
{
    /* argv: __sandbox-exec POLICY FILE -- ARGV0 ARGS... */
    if (argc < 5 || strcmp(argv[3], "--") != 0) {
        fprintf(stderr,
                "mcpgate-sandbox: internal use only: mcpgate __sandbox-exec POLICY FILE -- ARGV...\n");
        return 127;
    }
    json_error_t je;
    json_t *pol = json_loads(argv[1], 0, &je);
    if (!json_is_object(pol))
        return die("policy", "it is not a JSON object");
    const char *file = argv[2];
    char applied[1024];
    size_t o = 0;
    applied[0] = '\0';
#define DONE(...) o += (size_t)snprintf(applied + o, o < sizeof applied ? sizeof applied - o : 0, __VA_ARGS__)

    /* 1. rlimits (lowering needs no privilege; done first so they bind whoever we become). */
    const json_t *rl = json_object_get(pol, "rlimits");
    for (int i = 0; i < MG_SANDBOX_NRLIMITS; i++) {
        const json_t *v = json_object_get(rl, mg_sandbox_rlimit_keys[i]);
        if (v == NULL)
            continue;
        struct rlimit r = {(rlim_t)json_integer_value(v), (rlim_t)json_integer_value(v)};
        if (setrlimit(rlimit_res[i], &r) != 0) {
            char c[64];
            snprintf(c, sizeof c, "rlimits.%s", mg_sandbox_rlimit_keys[i]);
            return die(c, strerror(errno));
        }
        DONE("%s%s=%llu", o ? " " : "rlimits ", mg_sandbox_rlimit_keys[i],
             (unsigned long long)json_integer_value(v));
    }
    /* 2. user: supplementary groups, then gid, then uid (after which nothing can be raised again). */
    const json_t *uid = json_object_get(pol, "uid");
    if (uid != NULL) {
        uid_t u = (uid_t)json_integer_value(uid);
        gid_t g = (gid_t)json_integer_value(json_object_get(pol, "gid"));
        if (setgroups(1, &g) != 0 || setgid(g) != 0 || setuid(u) != 0)
            return die("user", strerror(errno));
        if (getuid() != u || geteuid() != u || getgid() != g || (u != 0 && setuid(0) == 0))
            return die("user", "the switch did not stick");
        DONE("%suser %u:%u", o ? ", " : "", (unsigned)u, (unsigned)g);
    }
    /* 3. no_new_privs: setuid binaries and file capabilities no longer grant anything. */
    if (json_is_true(json_object_get(pol, "nnp"))) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
            return die("noNewPrivileges", strerror(errno));
        DONE("%sno_new_privs", o ? ", " : "");
    }
    /* 4. Landlock. */
    const json_t *ll = json_object_get(pol, "landlock");
    if (ll != NULL) {
        char d[200];
        int r = apply_landlock(ll, d, sizeof d);
        if (r != 0)
            return r;
        DONE("%s%s", o ? ", " : "", d);
    }
    /* 5. seccomp, last: it may deny calls the steps above needed. */
    const json_t *sc = json_object_get(pol, "seccomp");
    if (sc != NULL) {
#ifdef MG_AUDIT_ARCH
        const char *why = NULL;
        int deny_net = json_is_true(json_object_get(sc, "denyNetwork"));
        if (seccomp_install(deny_net, &why) != 0)
            return die("seccomp", why);
        DONE("%sseccomp default%s", o ? ", " : "", deny_net ? " + denyNetwork" : "");
#else
        return die("seccomp", "no filter for this architecture");
#endif
    }
#undef DONE
    json_decref(pol);
    fprintf(stderr, "mcpgate-sandbox: applied %s\n", o ? applied : "nothing");
    fflush(stderr);
    execv(file, argv + 4);
    fprintf(stderr, "mcpgate-sandbox: cannot execute '%s': %s\n", file, strerror(errno));
    return 127;
}
