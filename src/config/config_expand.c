/*
 * config_expand.c - ${...} expansion inside config string values.
 *
 *   ${env:NAME}    the gateway's environment variable NAME ([A-Za-z_][A-Za-z0-9_]*)
 *   ${file:/path}  the file's contents (absolute path, at most 64 KiB, trailing CR/LF stripped)
 *   ${self_dir}    the directory of the mcpgate binary (mg_config_parse's self_dir)
 *   $${            a literal "${"
 * Unset, empty, unreadable and malformed references are problems that name the value and the
 * variable, never the value's contents. Contract: mg__config_expand() in config_int.h.
 */
#include "config_int.h"

#include "../common/err.h"
#include "envfile.h"

#include <ctype.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Growable string with a hard cap. */
typedef struct sbuf {
    char *p;
    size_t len, cap, max;
    int nomem, toobig;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *s, size_t n)
{
    if (b->nomem || b->toobig) {
        return;
    }
    if (b->len + n > b->max) {
        b->toobig = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < b->len + n + 1) {
            ncap *= 2;
        }
        char *g = realloc(b->p, ncap);
        if (g == NULL) {
            b->nomem = 1;
            return;
        }
        b->p = g;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_adds(sbuf_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* Source description: parts joined by '+', consecutive literal parts merged into one. */
typedef struct source {
    sbuf_t b;
    int last_literal;
} source_t;

static void src_part(source_t *s, const char *kind, const char *name, size_t nlen)
{
    int literal = strcmp(kind, "literal") == 0;
    if (literal && s->last_literal) {
        return;
    }
    if (s->b.len > 0) {
        sb_adds(&s->b, "+");
    }
    sb_adds(&s->b, kind);
    if (name != NULL) {
        sb_adds(&s->b, ":");
        sb_add(&s->b, name, nlen);
    }
    s->last_literal = literal;
}

static int env_name_ok(const char *s)
{
    if (!isalpha((unsigned char)s[0]) && s[0] != '_') {
        return 0;
    }
    for (size_t i = 1; s[i] != '\0'; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '_') {
            return 0;
        }
    }
    return 1;
}

/* Result of one reference: appended to val, or a problem (hard: always reported; soft: reported
 * unless lenient). */
enum { REF_OK = 0, REF_SOFT, REF_HARD };

/* Unset in the gateway's environment: the --env-file may have it (set-but-empty never falls back). */
static int ref_env(mg__config_ctx_t *ctx, const char *name, const char *where, int lenient, sbuf_t *val,
                   int *from_file)
{
    char q[80];
    if (!env_name_ok(name)) {
        mg__config_errf(ctx,
                        "%s: ${env:%s}: not a valid environment variable name (letters, digits and '_', not "
                        "starting with a digit)",
                        where, mg_cfg_quote(name, q, sizeof q));
        return REF_HARD;
    }
    const char *v = getenv(name);
    mg_envfile_entry_t *fe = v == NULL && ctx->envfile != NULL ? mg_envfile_get(ctx->envfile, name) : NULL;
    if (fe != NULL) {
        v = fe->value;
        fe->used = 1;
        *from_file = 1;
    }
    if (v == NULL || v[0] == '\0') {
        if (!lenient) {
            mg__config_errf(
                ctx, "%s: ${env:%s} is %s", where, name,
                fe != NULL  ? "empty in the --env-file"
                : v == NULL ? (ctx->envfile != NULL ? "not set in the gateway's environment nor "
                                                      "in the --env-file"
                                                    : "not set in the gateway's environment")
                : ctx->envfile != NULL && mg_envfile_get(ctx->envfile, name) != NULL
                    ? "set but empty in the gateway's environment (which wins over the --env-file: "
                      "unset it to use the file's value)"
                    : "set but empty");
        }
        return REF_SOFT;
    }
    sb_adds(val, v);
    return REF_OK;
}

static int ref_file(mg__config_ctx_t *ctx, const char *path, const char *where, int lenient, sbuf_t *val)
{
    char q[80];
    mg_cfg_quote(path, q, sizeof q);
    if (path[0] != '/') {
        mg__config_errf(ctx, "%s: ${file:%s}: the path must be absolute (start with '/')", where, q);
        return REF_HARD;
    }
    char *data = NULL;
    size_t len = 0;
    int err_no = 0;
    /* +2: the limit applies after a trailing "\r\n" is stripped. */
    int rc = mg__config_read_file(path, MG__CONFIG_MAX_SECRET + 2, &data, &len, &err_no);
    if (rc == MG_ENOMEM) {
        ctx->nomem = 1;
        return REF_HARD;
    }
    const char *problem = NULL;
    if (rc == MG_EIO) {
        problem = strerror(err_no);
    } else if (rc == MG_ETOOBIG) {
        problem = "larger than 64 KiB";
    } else {
        while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r')) {
            len--;
        }
        if (len > MG__CONFIG_MAX_SECRET) {
            problem = "larger than 64 KiB";
        } else if (memchr(data, '\0', len) != NULL) {
            problem = "contains a NUL byte, which no string value can hold";
        } else if (len == 0) {
            problem = "empty";
        }
    }
    if (problem != NULL) {
        if (!lenient) {
            if (rc == MG_EIO) {
                mg__config_errf(ctx, "%s: ${file:%s} cannot be read: %s", where, q, problem);
            } else {
                mg__config_errf(ctx, "%s: ${file:%s} is %s", where, q, problem);
            }
        }
        free(data);
        return REF_SOFT;
    }
    sb_add(val, data, len);
    free(data);
    return REF_OK;
}

static int ref_self_dir(mg__config_ctx_t *ctx, const char *where, int lenient, sbuf_t *val)
{
    if (ctx->self_dir == NULL || ctx->self_dir[0] == '\0') {
        if (!lenient) {
            mg__config_errf(
                ctx, "%s: ${self_dir} is not known here (no directory of the mcpgate binary was given)",
                where);
        }
        return REF_SOFT;
    }
    sb_adds(val, ctx->self_dir);
    return REF_OK;
}

int mg__config_expand(mg__config_ctx_t *ctx, const char *in, const char *where, int lenient, char **out,
                      char **source)
{
    sbuf_t val = {.max = MG__CONFIG_MAX_VALUE};
    source_t src = {.b = {.max = MG__CONFIG_MAX_VALUE}};
    int hard = 0, soft = 0;
    char q[80];

    *out = NULL;
    if (source != NULL) {
        *source = NULL;
    }
    sb_add(&val, "", 0); /* "" expands to "" */
    size_t i = 0;
    while (in[i] != '\0') {
        if (in[i] == '$' && in[i + 1] == '$' && in[i + 2] == '{') {
            sb_adds(&val, "${");
            src_part(&src, "literal", NULL, 0);
            i += 3;
            continue;
        }
        if (in[i] == '$' && in[i + 1] == '{') {
            const char *ref = in + i + 2;
            const char *end = strchr(ref, '}');
            if (end == NULL) {
                mg__config_errf(ctx, "%s: '${' at offset %zu has no closing '}' (write $${ for a literal ${)",
                                where, i);
                hard = 1;
                break;
            }
            size_t n = (size_t)(end - ref);
            char *r = strndup(ref, n);
            if (r == NULL) {
                ctx->nomem = 1;
                hard = 1;
                break;
            }
            int res;
            if (strncmp(r, "env:", 4) == 0) {
                int from_file = 0;
                res = ref_env(ctx, r + 4, where, lenient, &val, &from_file);
                src_part(&src, from_file ? "envfile" : "env", r + 4, n - 4);
            } else if (strncmp(r, "file:", 5) == 0) {
                res = ref_file(ctx, r + 5, where, lenient, &val);
                src_part(&src, "file", r + 5, n - 5);
            } else if (strcmp(r, "self_dir") == 0) {
                res = ref_self_dir(ctx, where, lenient, &val);
                src_part(&src, "self_dir", NULL, 0);
            } else if (strncmp(r, "input:", 6) == 0) {
                mg__config_errf(ctx,
                                "%s: ${%s} is a VS Code input prompt, which a gateway cannot answer: use "
                                "${env:NAME} or ${file:/path} instead",
                                where, mg_cfg_quote(r, q, sizeof q));
                res = REF_HARD;
            } else {
                mg__config_errf(ctx,
                                "%s: unknown reference ${%s}: use ${env:NAME}, ${file:/path} or ${self_dir} "
                                "(write $${ for a literal ${)",
                                where, mg_cfg_quote(r, q, sizeof q));
                res = REF_HARD;
            }
            free(r);
            hard |= res == REF_HARD;
            soft |= res == REF_SOFT;
            i = (size_t)(end - in) + 1;
            continue;
        }
        /* A literal run up to the next "${" or "$${". */
        size_t j = i + 1;
        while (in[j] != '\0' &&
               !(in[j] == '$' && (in[j + 1] == '{' || (in[j + 1] == '$' && in[j + 2] == '{')))) {
            j++;
        }
        sb_add(&val, in + i, j - i);
        src_part(&src, "literal", NULL, 0);
        i = j;
    }
    if (src.b.len == 0) {
        src_part(&src, "literal", NULL, 0);
    }
    if (val.toobig && !hard) {
        mg__config_errf(ctx, "%s: the value is larger than 1 MiB once expanded", where);
        hard = 1;
    }
    if (src.b.toobig && !hard) {
        mg__config_errf(ctx, "%s: too many ${...} references in one value", where);
        hard = 1;
    }
    if (val.nomem || src.b.nomem) {
        ctx->nomem = 1;
        hard = 1;
    }
    if (hard || (soft && !lenient)) {
        free(val.p);
        free(src.b.p);
        return ctx->nomem ? MG_ENOMEM : MG_ECONFIG;
    }
    if (soft) { /* lenient: keep the text as written */
        free(val.p);
        val.p = strdup(in);
        if (val.p == NULL) {
            ctx->nomem = 1;
            free(src.b.p);
            return MG_ENOMEM;
        }
    }
    *out = val.p;
    if (source != NULL) {
        *source = src.b.p;
    } else {
        free(src.b.p);
    }
    return 0;
}

static int header_token(const char *n)
{
    if (n[0] == '\0')
        return 0;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *p) != NULL))
            return 0;
    return 1;
}

void mg__config_headers(mg__config_ctx_t *ctx, const char *at, const json_t *v, int lenient,
                        const mg__headers_rules_t *rules, mg_kv_t **out, size_t *n)
{
    if (!json_is_object(v)) {
        mg__config_errf(ctx, "%s: must be an object like %s, not %s", at, rules->example, mg_cfg_kind(v));
        return;
    }
    size_t cap = json_object_size(v);
    if (cap == 0)
        return;
    if (rules->max > 0 && cap > rules->max) {
        mg__config_errf(ctx, "%s: at most %zu headers, not %zu", at, rules->max, cap);
        return;
    }
    *out = calloc(cap, sizeof **out);
    if (*out == NULL) {
        ctx->nomem = 1;
        return;
    }
    const char *name;
    json_t *hv;
    json_object_foreach((json_t *)v, name, hv)
    {
        char where[256], q[80];
        snprintf(where, sizeof where, "%s \"%s\"", at, mg_cfg_quote(name, q, sizeof q));
        if (!header_token(name)) {
            mg__config_errf(ctx, "%s: not a valid header name (letters, digits and -_. only)", where);
            continue;
        }
        int taken = 0;
        for (size_t i = 0; rules->reserved[i] != NULL; i++)
            taken |= strcasecmp(name, rules->reserved[i]) == 0;
        if (taken) {
            mg__config_errf(ctx, "%s: %s", where, rules->taken);
            continue;
        }
        if (!json_is_string(hv)) {
            mg__config_errf(ctx, "%s: must be a string, not %s", where, mg_cfg_kind(hv));
            continue;
        }
        mg_kv_t *kv = &(*out)[*n];
        if (mg__config_expand(ctx, json_string_value(hv), where, lenient, &kv->value, &kv->source) != 0)
            continue;
        int bad = strpbrk(kv->value, "\r\n") != NULL || kv->value[0] == '\0';
        if (bad) /* a secret: say where it came from, never what it is */
            mg__config_errf(ctx, "%s: the value (from %s) is empty or holds a line break", where, kv->source);
        if (bad || (kv->key = mg__config_strdup(ctx, name)) == NULL) {
            free(kv->value);
            free(kv->source);
            kv->value = kv->source = NULL;
            continue;
        }
        (*n)++;
    }
}
