/*
 * fuzz_config.c - libFuzzer target: the config file parser (mg_config_parse: JSONC pre-pass,
 * jansson, every key table and validator, ${env:}/${file:}/${self_dir} expansion) with a fixed
 * environment and a sandbox of secret files.
 * Oracles: a valid result has every field the runtime relies on (limits in range, servers with
 * a command, args never NULL); no problem message ever contains the value of a variable or a
 * secret file (the README's promise) unless the input itself spelled it out.
 * ${file:} paths outside the sandbox fail as EACCES (see __wrap_open below, linked with
 * -Wl,--wrap=open). Read next: src/config/config.h, docs/configuration.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "config/config.h"

#define SANDBOX "/tmp/mgfuzz-config"
#define SECRET1 "Zq9Xw-envsecret-7f3a91c2"
#define SECRET2 "Kp2Lm-filesecret-0be47d11"

int __real_open(const char *path, int flags, ...);

int __wrap_open(const char *path, int flags, ...)
{
    if (strncmp(path, SANDBOX "/", sizeof SANDBOX) != 0 || strstr(path, "..") != NULL) {
        errno = EACCES;
        return -1;
    }
    return __real_open(path, flags & ~(O_CREAT | O_TRUNC | O_WRONLY | O_RDWR));
}

static void put(const char *name, const char *text, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, SANDBOX "/%s", name);
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return;
    fwrite(text, 1, len, f);
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setenv("MG_FUZZ_TOKEN", SECRET1, 1);
    setenv("MG_FUZZ_EMPTY", "", 1);
    setenv("HOME", "/home/fuzz", 1);
    mkdir(SANDBOX, 0700);
    mkdir(SANDBOX "/dir", 0700);
    put("secret", SECRET2 "\n", strlen(SECRET2) + 1);
    put("crlf", SECRET2 "\r\n", strlen(SECRET2) + 2);
    put("empty", "", 0);
    put("nl", "\n", 1);
    put("nul", "a\0b", 3);
    static char big[70 * 1024];
    memset(big, 'x', sizeof big);
    put("big", big, sizeof big);
    return 0;
}

static void check_valid(const mg_config_t *c)
{
    mg_limits_t d;
    mg_limits_default(&d);
    const mg_limits_t *l = &c->limits;
    if (l->max_body_bytes < 1024 || l->max_json_depth < 2 || l->max_sessions < 1 ||
        l->max_inflight_per_session < 1 || l->max_inflight_per_upstream < 1 || l->max_line_bytes < 1024 ||
        l->request_timeout_ms < 100 || l->max_request_ms < l->request_timeout_ms)
        abort();
    for (size_t i = 0; i < c->nservers; i++) {
        const mg_server_config_t *s = &c->servers[i];
        /* a stdio server has its command; a remote one ("url", s->remote) has none */
        if (s->name == NULL || (s->command == NULL && s->remote == NULL) || s->args == NULL ||
            s->instances < 1 || s->instances > 64)
            abort();
        for (size_t k = 0; k < s->nargs; k++)
            if (s->args[k] == NULL)
                abort();
        if (s->args[s->nargs] != NULL)
            abort();
        for (size_t k = 0; k < s->nenv; k++)
            if (s->env[k].key == NULL || s->env[k].value == NULL || s->env[k].source == NULL ||
                strstr(s->env[k].source, SECRET1) || strstr(s->env[k].source, SECRET2))
                abort(); /* a source names where a value came from, never the value */
    }
    (void)mg_config_enabled_count(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024)
        return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    mg_config_t cfg;
    mg_config_errors_t errs;
    int r = mg_config_parse(text, "fuzz.json", "/opt/mcpgate/bin", &cfg, &errs);
    int spelled = memmem(data, size, "Zq9Xw", 5) != NULL || memmem(data, size, "Kp2Lm", 5) != NULL;
    if (r == 0) {
        check_valid(&cfg);
        mg_config_dispose(&cfg);
    } else if (r != MG_ECONFIG && r != MG_ENOMEM) {
        abort();
    } else if (r == MG_ECONFIG && errs.count == 0) {
        abort(); /* rejected without saying why */
    }
    for (size_t i = 0; i < errs.count; i++) {
        if (errs.msgs[i] == NULL || strncmp(errs.msgs[i], "fuzz.json: ", 11) != 0)
            abort();
        if (!spelled && (strstr(errs.msgs[i], SECRET1) || strstr(errs.msgs[i], SECRET2)))
            abort(); /* a secret leaked into a message */
    }
    mg_config_errors_dispose(&errs);
    free(text);
    return 0;
}
