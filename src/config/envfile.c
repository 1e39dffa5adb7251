/*
 * envfile.c - reads the --env-file and applies the {SERVICE}_MCP_{KEY} convention (envfile.h).
 * Messages name the file, the line and the key, never a value. Read next: config/config_expand.c
 * (the ${env:} fallback), docs/configuration.md#credentials.
 */
#include "envfile.h"
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE    (1024u * 1024)
#define MAX_ENTRIES 10000

static void errf(mg_envfile_err_cb err, void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(mg_envfile_err_cb err, void *ctx, const char *fmt, ...)
{
    char m[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    if (err != NULL)
        err(ctx, m);
}

static int key_ok(const char *k, size_t n)
{
    if (n == 0 || n > 255 || isdigit((unsigned char)k[0]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)k[i]) && k[i] != '_')
            return 0;
    return 1;
}

mg_envfile_entry_t *mg_envfile_get(const mg_envfile_t *ef, const char *key)
{
    for (size_t i = 0; ef != NULL && i < ef->n; i++)
        if (strcmp(ef->e[i].key, key) == 0)
            return &ef->e[i];
    return NULL;
}

/* Parses the value starting at p (line ends at end). Returns malloc'd value or NULL with *why. */
static char *parse_value(const char *p, const char *end, const char **why)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p < end && (*p == '\'' || *p == '"')) {
        char q = *p++;
        char *out = malloc((size_t)(end - p) + 1);
        size_t o = 0;
        if (out == NULL) {
            *why = "out of memory";
            return NULL;
        }
        for (; p < end && *p != q; p++) {
            if (q == '"' && *p == '\\' && p + 1 < end) {
                p++;
                out[o++] = *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p == 't' ? '\t' : *p;
            } else {
                out[o++] = *p;
            }
        }
        if (p >= end) {
            free(out);
            *why = "the quoted value is not closed on this line";
            return NULL;
        }
        for (p++; p < end && (*p == ' ' || *p == '\t'); p++)
            ;
        if (p < end && *p != '#') {
            free(out);
            *why = "text after the closing quote";
            return NULL;
        }
        out[o] = '\0';
        return out;
    }
    const char *e = p;
    while (e < end && !(e[0] == '#' && e > p && (e[-1] == ' ' || e[-1] == '\t')))
        e++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    char *out = strndup(p, (size_t)(e - p));
    if (out == NULL)
        *why = "out of memory";
    return out;
}

int mg_envfile_parse(const char *text, size_t len, const char *origin, mg_envfile_t *out,
                     mg_envfile_err_cb err, void *ctx)
{
    memset(out, 0, sizeof *out);
    out->path = strdup(origin ? origin : "<env-file>");
    int rc = 0;
    unsigned line = 0;
    const char *p = text, *stop = text + len;
    while (p < stop) {
        const char *eol = memchr(p, '\n', (size_t)(stop - p));
        const char *end = eol ? eol : stop;
        line++;
        const char *s = p;
        p = eol ? eol + 1 : stop;
        while (s < end && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        if (s == end || *s == '#')
            continue;
        if ((size_t)(end - s) > 7 && strncmp(s, "export ", 7) == 0)
            for (s += 7; s < end && *s == ' '; s++)
                ;
        const char *eq = memchr(s, '=', (size_t)(end - s));
        size_t klen = eq ? (size_t)(eq - s) : 0;
        while (klen > 0 && (s[klen - 1] == ' ' || s[klen - 1] == '\t'))
            klen--;
        if (eq == NULL || !key_ok(s, klen)) {
            errf(err, ctx, "%s: line %u: expected KEY=VALUE with KEY made of letters, digits and '_'",
                 out->path, line);
            rc = -1;
            continue;
        }
        char key[256];
        memcpy(key, s, klen);
        key[klen] = '\0';
        if (mg_envfile_get(out, key) != NULL) {
            errf(err, ctx, "%s: line %u: %s is defined twice (line %u): keep one", out->path, line, key,
                 mg_envfile_get(out, key)->line);
            rc = -1;
            continue;
        }
        const char *why = NULL;
        char *val = parse_value(eq + 1, end, &why);
        if (val == NULL) {
            errf(err, ctx, "%s: line %u: %s: %s", out->path, line, key, why);
            rc = -1;
            continue;
        }
        if (out->n >= MAX_ENTRIES) {
            free(val);
            errf(err, ctx, "%s: more than %u entries", out->path, MAX_ENTRIES);
            return -1;
        }
        mg_envfile_entry_t *g = realloc(out->e, (out->n + 1) * sizeof *g);
        if (g == NULL) {
            free(val);
            return -1;
        }
        out->e = g;
        out->e[out->n].key = strdup(key);
        out->e[out->n].value = val;
        out->e[out->n].line = line;
        out->e[out->n].used = 0;
        out->n++;
    }
    return rc;
}

int mg_envfile_load(const char *path, mg_envfile_t *out, mg_envfile_err_cb err, void *ctx)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        errf(err, ctx, "--env-file %s: cannot be read: %s", path, strerror(errno));
        return -1;
    }
    char *buf = malloc(MAX_FILE + 1);
    size_t n = buf ? fread(buf, 1, MAX_FILE + 1, f) : 0;
    fclose(f);
    if (buf == NULL)
        return -1;
    if (n > MAX_FILE) {
        free(buf);
        errf(err, ctx, "--env-file %s: larger than 1 MiB", path);
        return -1;
    }
    if (memchr(buf, '\0', n) != NULL) {
        free(buf);
        errf(err, ctx, "--env-file %s: contains a NUL byte: not a text file", path);
        return -1;
    }
    int rc = mg_envfile_parse(buf, n, path, out, err, ctx);
    memset(buf, 0, n); /* it held secrets */
    free(buf);
    return rc;
}

void mg_envfile_dispose(mg_envfile_t *ef)
{
    if (ef == NULL)
        return;
    for (size_t i = 0; i < ef->n; i++) {
        free(ef->e[i].key);
        if (ef->e[i].value != NULL)
            memset(ef->e[i].value, 0, strlen(ef->e[i].value));
        free(ef->e[i].value);
    }
    free(ef->e);
    free(ef->path);
    memset(ef, 0, sizeof *ef);
}

void mg_envfile_service_prefix(const char *server, char *out, size_t n)
{
    size_t o = 0;
    for (const char *s = server; *s && o + 1 < n; s++)
        out[o++] = *s == '-' || *s == '.' ? '_' : (char)toupper((unsigned char)*s);
    snprintf(out + o, n - o, "_MCP_");
}

void mg_envfile_apply(mg_envfile_t *ef, mg_config_t *cfg, mg_envfile_err_cb err, void *ctx)
{
    if (ef == NULL)
        return;
    for (size_t i = 0; i < ef->n; i++) {
        mg_envfile_entry_t *en = &ef->e[i];
        long best = -1, tie = -1;
        size_t best_len = 0;
        for (size_t s = 0; s < cfg->nservers; s++) {
            char pre[160];
            mg_envfile_service_prefix(cfg->servers[s].name, pre, sizeof pre);
            size_t pl = strlen(pre);
            if (strncmp(en->key, pre, pl) != 0)
                continue;
            if (best >= 0 && pl == best_len)
                tie = (long)s;
            else if (pl > best_len)
                best = (long)s, best_len = pl, tie = -1;
        }
        if (best < 0)
            continue;
        mg_server_config_t *s = &cfg->servers[best];
        if (tie >= 0) {
            errf(err, ctx,
                 "%s: line %u: %s matches both server '%s' and server '%s' ({SERVICE}_MCP_{KEY} upper-cases "
                 "the "
                 "name and turns '-' and '.' into '_'): rename one server or set the variable under its env",
                 ef->path, en->line, en->key, s->name, cfg->servers[tie].name);
            continue;
        }
        if (s->disabled)
            continue;
        const char *key = en->key + best_len;
        if (key[0] == '\0') {
            errf(err, ctx, "%s: line %u: %s names no variable after the %.*s prefix", ef->path, en->line,
                 en->key, (int)best_len, en->key);
            continue;
        }
        int declared = 0;
        for (size_t k = 0; k < s->nenv; k++)
            declared |= s->env[k].key != NULL && strcmp(s->env[k].key, key) == 0;
        if (declared) {
            errf(err, ctx,
                 "server '%s': env %s is set both in the config and by %s (%s line %u): keep one, so the "
                 "value "
                 "the server gets is never a surprise",
                 s->name, key, en->key, ef->path, en->line);
            continue;
        }
        if (en->value[0] == '\0') {
            errf(err, ctx,
                 "server '%s': env %s: %s is empty in %s (line %u): give it a value or remove the line "
                 "(mcpgate never starts a server with an empty credential)",
                 s->name, key, en->key, ef->path, en->line);
            continue;
        }
        mg_kv_t *g = realloc(s->env, (s->nenv + 2) * sizeof *g);
        if (g == NULL)
            return;
        s->env = g;
        mg_kv_t *kv = &s->env[s->nenv];
        memset(kv, 0, sizeof *kv);
        size_t sl = strlen(en->key) + sizeof "envfile:";
        kv->key = strdup(key);
        kv->value = strdup(en->value);
        kv->source = malloc(sl);
        if (kv->key == NULL || kv->value == NULL || kv->source == NULL) {
            free(kv->key);
            free(kv->value);
            free(kv->source);
            return;
        }
        snprintf(kv->source, sl, "envfile:%s", en->key);
        s->nenv++;
        memset(&s->env[s->nenv], 0, sizeof *kv);
        en->used = 1;
    }
}
