/*
 * spawn_env.c - what a child gets from us: its environment block and the path of its command.
 *
 * Contract: a child sees ONLY its declared env plus PATH, HOME and LANG copied from the gateway
 * (never anything else: the gateway's own secrets stay in the gateway). A command without '/' is
 * looked up here, before spawning, so "not found" is a clear sentence instead of a failed exec;
 * mg_upstream_command_check() turns the usual mistakes (a typo, arguments inside "command", a
 * Windows `cmd /c` entry, a command another sandbox user cannot reach) into that sentence.
 * Read next: child.c (mg__child_spawn, the spawner), main.c (cmd_check, the other caller).
 */
#include "upstream_int.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/err.h"
#include "sandbox.h"

static const char *const inherited[] = {"PATH", "HOME", "LANG"};

static int declared(const mg_server_config_t *s, const char *key)
{
    for (size_t i = 0; i < s->nenv; i++) {
        if (s->env[i].key != NULL && strcmp(s->env[i].key, key) == 0)
            return 1;
    }
    return 0;
}

static char *kv(const char *k, const char *v)
{
    size_t lk = strlen(k), lv = strlen(v);
    char *s = malloc(lk + lv + 2);
    if (s == NULL)
        return NULL;
    memcpy(s, k, lk);
    s[lk] = '=';
    memcpy(s + lk + 1, v, lv + 1);
    return s;
}

int mg__env_build(const mg_server_config_t *server, char ***out)
{
    size_t n = server->nenv + sizeof inherited / sizeof inherited[0];
    char **env = calloc(n + 1, sizeof *env);
    if (env == NULL)
        return MG_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < server->nenv; i++) {
        if (server->env[i].key == NULL || server->env[i].value == NULL)
            continue;
        if ((env[k++] = kv(server->env[i].key, server->env[i].value)) == NULL)
            goto nomem;
    }
    for (size_t i = 0; i < sizeof inherited / sizeof inherited[0]; i++) {
        const char *v = getenv(inherited[i]);
        if (v == NULL || declared(server, inherited[i]))
            continue;
        if ((env[k++] = kv(inherited[i], v)) == NULL)
            goto nomem;
    }
    *out = env;
    return 0;
nomem:
    mg__env_free(env);
    return MG_ENOMEM;
}

void mg__env_free(char **env)
{
    if (env == NULL)
        return;
    for (char **p = env; *p != NULL; p++) {
        /* Values may be secrets: clear before handing the memory back. */
        memset(*p, 0, strlen(*p));
        free(*p);
    }
    free(env);
}

static int executable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int mg__command_resolve(const mg_server_config_t *server, char **out)
{
    const char *cmd = server->command;
    *out = NULL;
    if (cmd == NULL || cmd[0] == '\0')
        return MG_ENOTFOUND;
    if (strchr(cmd, '/') != NULL) {
        *out = strdup(cmd);
        return *out ? 0 : MG_ENOMEM;
    }
    const char *path = NULL;
    for (size_t i = 0; i < server->nenv; i++) {
        if (server->env[i].key != NULL && strcmp(server->env[i].key, "PATH") == 0)
            path = server->env[i].value;
    }
    if (path == NULL)
        path = getenv("PATH");
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    size_t lc = strlen(cmd);
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t ld = end ? (size_t)(end - p) : strlen(p);
        char cwd[4096];
        const char *dir = p;
        if (ld == 0 || p[0] != '/') { /* "" means "."; relative entries are the gateway's cwd */
            if (getcwd(cwd, sizeof cwd) == NULL)
                goto next;
            size_t lw = strlen(cwd);
            if (ld > 0 && lw + 1 + ld >= sizeof cwd)
                goto next;
            if (ld > 0) {
                cwd[lw] = '/';
                memcpy(cwd + lw + 1, p, ld);
                cwd[lw + 1 + ld] = '\0';
            }
            dir = cwd;
            ld = strlen(cwd);
        }
        char *cand = malloc(ld + 1 + lc + 1);
        if (cand == NULL)
            return MG_ENOMEM;
        memcpy(cand, dir, ld);
        cand[ld] = '/';
        memcpy(cand + ld + 1, cmd, lc + 1);
        if (executable_file(cand)) {
            *out = cand;
            return 0;
        }
        free(cand);
    next:
        if (end == NULL)
            break;
        p = end;
    }
    return MG_ENOTFOUND;
}

/* "cmd", "cmd.exe", "C:\Windows\System32\cmd.exe" (any case) as the first word of s. */
static int is_windows_shell(const char *s, size_t len)
{
    const char *base = s;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\\' || s[i] == '/')
            base = s + i + 1;
    size_t bl = len - (size_t)(base - s);
    return (bl == 3 && strncasecmp(base, "cmd", 3) == 0) || (bl == 7 && strncasecmp(base, "cmd.exe", 7) == 0);
}

/* How many blank-separated words s has. The words themselves are never quoted in a message: an
 * argument may carry a secret (a token, or an expanded ${env:}), and these sentences are logged and
 * shown in /readyz. */
static size_t count_words(const char *s)
{
    size_t k = 0;
    for (const char *p = s; *p != '\0';) {
        p += strspn(p, " \t");
        if (*p == '\0')
            break;
        k++;
        p += strcspn(p, " \t");
    }
    return k;
}

int mg_upstream_command_check(const mg_server_config_t *s, char *why, size_t n)
{
    const char *cmd = s->command;
    if (cmd == NULL || cmd[0] == '\0') {
        snprintf(why, n, "has no command");
        return MG_EINVAL;
    }
    size_t w0 = strcspn(cmd, " \t");
    /* Windows configs: "cmd /c npx -y pkg", or command "cmd" with args ["/c", "npx", ...]. */
    if (is_windows_shell(cmd, w0)) {
        const char *rest = cmd + w0;
        rest += strspn(rest, " \t");
        int inline_c = (rest[0] == '/' && strchr("cCkK", rest[1]) != NULL && rest[1] != '\0' &&
                        (rest[2] == ' ' || rest[2] == '\t' || rest[2] == '\0'));
        int args_c = rest[0] == '\0' && s->nargs > 0 && strcasecmp(s->args[0], "/c") == 0;
        char *probe = NULL;
        if (inline_c || args_c || mg__command_resolve(s, &probe) != 0) {
            free(probe);
            char prog[200], how[400];
            size_t nrest = 0;
            prog[0] = '\0';
            if (inline_c) {
                rest += 2;
                rest += strspn(rest, " \t");
                size_t w = strcspn(rest, " \t");
                snprintf(prog, sizeof prog, "%.*s", (int)w, rest);
                nrest = count_words(rest + w);
            } else if (args_c && s->nargs > 1) {
                snprintf(prog, sizeof prog, "%s", s->args[1]);
                nrest = s->nargs - 2;
            }
            if (prog[0] != '\0')
                snprintf(how, sizeof how, "\"command\": \"%s\" and, as \"args\", the %zu argument%s after it",
                         prog, nrest, nrest == 1 ? "" : "s");
            else
                snprintf(how, sizeof how, "the program itself in \"command\", its arguments in \"args\"");
            snprintf(
                why, n,
                "command '%.*s%s'%s is a Windows cmd.exe entry (from a Windows config?): there is no cmd "
                "here; run the program directly: %s",
                (int)w0, cmd, cmd[w0] != '\0' ? " /c ..." : "", args_c ? " with args [\"/c\", ...]" : "",
                how);
            return MG_EINVAL;
        }
        free(probe);
    }
    const char *declared_path = NULL;
    for (size_t i = 0; i < s->nenv; i++)
        if (s->env[i].key != NULL && strcmp(s->env[i].key, "PATH") == 0)
            declared_path = s->env[i].value;
    char *path = NULL;
    int rc = mg__command_resolve(s, &path);
    if (rc == MG_ENOMEM)
        return rc;
    if (rc == 0 && cmd[0] != '/' && strchr(cmd, '/') != NULL && s->cwd != NULL) {
        /* a relative path runs from the server's cwd */
        size_t jn = strlen(s->cwd) + strlen(cmd) + 2;
        char *joined = malloc(jn);
        if (joined == NULL) {
            free(path);
            return MG_ENOMEM;
        }
        snprintf(joined, jn, "%s/%s", s->cwd, cmd);
        free(path);
        path = joined;
    }
    if (rc == 0 && strchr(cmd, '/') != NULL && !executable_file(path)) {
        free(path);
        path = NULL;
        rc = MG_ENOTFOUND;
    }
    if (rc != 0) {
        if (w0 < strlen(cmd)) {
            size_t nw = count_words(cmd + w0);
            snprintf(why, n,
                     "command '%.*s ...' has its arguments inside it (no program has that whole name): move "
                     "the arguments into args: \"command\": \"%.*s\" and, as \"args\", the %zu word%s "
                     "after it, one item each",
                     (int)w0, cmd, (int)w0, cmd, nw, nw == 1 ? "" : "s");
        } else if (strchr(cmd, '/') != NULL) {
            snprintf(why, n, "command '%s' does not exist or is not an executable file%s%s%s", cmd,
                     cmd[0] != '/' ? " (relative to " : "",
                     cmd[0] != '/' ? (s->cwd ? s->cwd : "the gateway's cwd") : "", cmd[0] != '/' ? ")" : "");
        } else {
            snprintf(why, n, "command '%s' is not on the PATH the server gets (%s)", cmd,
                     declared_path ? "the PATH in its env" : "the gateway's PATH");
        }
        return MG_ENOTFOUND;
    }
    char w[700];
    if (mg_sandbox_reachable(s->sandbox, path, 1, w, sizeof w) != 0) {
        snprintf(why, n, "command '%s' %s", path, w);
        free(path);
        return MG_EINVAL;
    }
    free(path);
    if (mg_sandbox_paths_reachable(s->sandbox, why, n) != 0)
        return MG_EINVAL;
    return 0;
}

/* ---- masking secrets in what a child prints ---- */

static int token_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=';
}

static int b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Length of a JWT-shaped string at p ("eyJ" + base64url '.' base64url '.' base64url), or 0. */
static size_t jwt_at(const char *p)
{
    if (strncmp(p, "eyJ", 3) != 0)
        return 0;
    size_t i = 0;
    int dots = 0;
    while (b64url_char((unsigned char)p[i]) || (p[i] == '.' && dots < 2)) {
        dots += p[i] == '.';
        i++;
    }
    return dots == 2 && i >= 20 ? i : 0;
}

char *mg__mask_secrets(const mg_server_config_t *server, const char *text)
{
    size_t n = strlen(text);
    /* "***" is never longer than what it replaces (values and tokens of 4+ bytes) */
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t skip = 0;
        for (size_t k = 0; server != NULL && k < server->nenv && skip == 0; k++) {
            const char *v = server->env[k].value;
            size_t lv = v != NULL ? strlen(v) : 0;
            if (lv >= 4 && lv <= n - i && memcmp(text + i, v, lv) == 0)
                skip = lv;
        }
        if (skip == 0 && n - i > 7 && strncasecmp(text + i, "bearer ", 7) == 0) {
            size_t j = i + 7;
            while (text[j] == ' ')
                j++;
            size_t t = j;
            while (token_char((unsigned char)text[t]))
                t++;
            if (t - j >= 4) {
                memcpy(out + o, text + i, j - i); /* keep "Bearer " */
                o += j - i;
                skip = t - j;
                i = j;
            }
        }
        if (skip == 0)
            skip = jwt_at(text + i);
        if (skip > 0) {
            memcpy(out + o, "***", 3);
            o += 3;
            i += skip;
            continue;
        }
        out[o++] = text[i++];
    }
    out[o] = '\0';
    return out;
}
