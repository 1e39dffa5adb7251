/*
 * config_int.h - shared by the config module's own files; nothing outside src/config includes it.
 *
 * config.c walks the JSON tree and fills mg_config_t; config_expand.c expands ${...} inside string
 * values and reads ${file:} secrets; config_check.c holds the pure helpers: the problem collector,
 * the validators (listen address, names, origins) and the JSONC pre-pass. Values are read with the
 * typed readers of common/cfgval.h on ctx->rd (as auth/ and policy/ read their keys). A problem is
 * reported with mg__config_errf() and the walk goes on: nothing here stops at the first problem.
 * Read next: config.c (the walk), then config_expand.c.
 */
#ifndef MG_CONFIG_INT_H
#define MG_CONFIG_INT_H

#include <jansson.h>
#include <stddef.h>

#include "../common/cfgval.h"
#include "config.h"

#define MG__CONFIG_MAX_ERRORS     100                 /* messages kept; the rest are counted */
#define MG__CONFIG_MAX_FILE_BYTES (16u * 1024 * 1024) /* the config file itself */
#define MG__CONFIG_MAX_SECRET     (64u * 1024)        /* one ${file:} after the newline is stripped */
#define MG__CONFIG_MAX_VALUE      (1024u * 1024)      /* one string value after expansion */
#define MG__CONFIG_MAX_SERVERS    1000
#define MG__CONFIG_MAX_NAME       64 /* server name length */
#define MG__CONFIG_MAX_SEPARATOR  8  /* namespaceSeparator length */

/* One parse: where messages go and whether memory ran out. */
typedef struct mg__config_ctx {
    const char *origin;       /* prefix of every message ("servers.json", "<embedded>") */
    const char *self_dir;     /* value of ${self_dir}; NULL makes ${self_dir} an error */
    mg_config_errors_t *errs; /* never NULL */
    size_t dropped;           /* problems beyond MG__CONFIG_MAX_ERRORS */
    int nomem;                /* set by any failed allocation; the parse then returns MG_ENOMEM */
    /* --env-file: ${env:NAME} falls back to it (envfile.h); NULL = none */
    struct mg_envfile *envfile;
    mg_cfg_t rd; /* the typed readers' sink (common/cfgval.h): set by mg__config_ctx_init */
} mg__config_ctx_t;

/* Points ctx->rd at ctx: problems through mg__config_errf, strings through mg__config_expand. */
void mg__config_ctx_init(mg__config_ctx_t *ctx);

/* Records "<origin>: <formatted text>" as one problem. Never fails (sets ctx->nomem instead). */
void mg__config_errf(mg__config_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends "... and N more problems" when some were dropped. */
void mg__config_errs_finish(mg__config_ctx_t *ctx);

/* strdup that sets ctx->nomem on failure (returns NULL then). */
char *mg__config_strdup(mg__config_ctx_t *ctx, const char *s);

/*
 * Replaces // and block comments (outside strings) with spaces, keeping newlines so JSON error
 * positions stay right, and turns a comma directly before '}' or ']' into a space (JSONC, as VS Code
 * writes). In place; len bytes. Returns 0, or the 1-based line of an unterminated block comment.
 */
int mg__config_jsonc_strip(char *text, size_t len);

/*
 * Validates "host:port" (IPv4, [IPv6]:port, hostname:port; port 1..65535). Returns 0, or -1 with a
 * reason (no trailing period) in why. host/port may be NULL; host receives the address without
 * brackets when it fits in hostcap.
 */
int mg__config_listen_check(const char *s, char *host, size_t hostcap, unsigned *port, char *why,
                            size_t whylen);

/* 1 when name is 1..MG__CONFIG_MAX_NAME bytes of [A-Za-z0-9_.-]. */
int mg__config_name_ok(const char *name);

/* Checks an allowedOrigins entry: scheme "http" or "https", a host, an optional port, no path. */
int mg__config_origin_check(const char *s, char *why, size_t whylen);
/* Checks an allowedHosts entry: a hostname, IPv4 or [IPv6] address with an optional :port. */
int mg__config_host_check(const char *s, char *why, size_t whylen);

/*
 * Reads a whole file of at most max bytes (the result is NUL-terminated; *len excludes the NUL).
 * Returns 0; MG_EIO with *err_no set (directories give EISDIR); MG_ETOOBIG when larger than max;
 * MG_ENOMEM.
 */
int mg__config_read_file(const char *path, size_t max, char **out, size_t *len, int *err_no);

/*
 * Expands ${env:NAME}, ${file:/path}, ${self_dir} and the $${ escape in `in`. `where` names the value
 * in messages ("server 'github': env GITHUB_TOKEN"). On success returns 0 with *out and, when source
 * is non-NULL, *source ("literal", "env:NAME", "file:/path", "self_dir", joined with '+' for mixed
 * strings) newly allocated. A problem is reported through ctx and returns MG_ECONFIG (*out NULL);
 * running out of memory returns MG_ENOMEM.
 * lenient (disabled servers): a missing or empty variable or an unreadable file is not a problem and
 * *out is the text as written; malformed ${...} is reported all the same.
 */
int mg__config_expand(mg__config_ctx_t *ctx, const char *in, const char *where, int lenient, char **out,
                      char **source);

/* What a headers map may hold (mg__config_headers). */
typedef struct mg__headers_rules {
    const char *const *reserved; /* names the gateway sets itself (any case), NULL-terminated */
    const char *taken;           /* why a reserved name is refused ("is set by ...; remove it") */
    const char *example;         /* the shape shown when the value is not an object */
    size_t max;                  /* most headers accepted; 0: no bound */
} mg__headers_rules_t;

/* A {"Name": "value with ${env:X} / ${file:/path}"} map at `at` (e.g. "gateway.tracing.headers")
 * into *out / *n (NEW array of expanded values kept with their source). Names must be RFC 9110
 * tokens and not reserved; values are secrets: expanded like env values, never quoted in a message,
 * refused when empty or holding a line break. lenient: as mg__config_expand. Problems go through
 * ctx and the walk goes on. */
void mg__config_headers(mg__config_ctx_t *ctx, const char *at, const json_t *v, int lenient,
                        const mg__headers_rules_t *rules, mg_kv_t **out, size_t *n);

/* ---- config_tools.c ---- */
/* "gateway.tools" into cfg->tools (including the defaultProfile check). */
void mg__config_parse_tools(mg__config_ctx_t *ctx, mg_config_t *cfg, const json_t *v);
/* A server's "tools" object, or one of the aliases "includeTools" (allow), "excludeTools" and
 * "disabledTools" (deny), given as `key`; sw names the server in messages. */
void mg__config_parse_server_tools(mg__config_ctx_t *ctx, const char *sw, const char *key, const json_t *v,
                                   mg_tool_filter_t *f);
void mg__config_tool_filter_dispose(mg_tool_filter_t *f);
void mg__config_tools_dispose(mg_tools_config_t *t);

/* ---- config_sessions.c ---- */
/* "gateway.sessions" into cfg->sessions. */
void mg__config_parse_sessions(mg__config_ctx_t *ctx, mg_config_t *cfg, const json_t *v);
/* Reports (and returns -1) when spec is not "memory" or a valid shared store spec; where names it. */
int mg__config_sessions_check(mg__config_ctx_t *ctx, const char *where, const char *spec);
void mg__config_sessions_dispose(mg_sessions_config_t *s);
/* config_tasks.c: "gateway.tasks" (defaults, then the object's keys). */
void mg__config_tasks_default(mg_tasks_config_t *t);
void mg__config_parse_tasks(mg__config_ctx_t *ctx, mg_config_t *cfg, const json_t *v);

/* "gateway.tracing" (config_tracing.c). */
void mg__config_parse_tracing(mg__config_ctx_t *ctx, mg_config_t *cfg, const json_t *obj);
void mg__config_tracing_dispose(mg_tracing_config_t *t);
/* ---- config_ops.c ---- */
/* "gateway.journal", "gateway.metrics", "gateway.watchConfig": key is the gateway key, v its value. */
void mg__config_parse_ops(mg__config_ctx_t *ctx, mg_config_t *cfg, const char *key, const json_t *v);
void mg__config_ops_dispose(mg_config_t *cfg);

/* ---- remote_config.c ---- */
/* A remote server entry's own keys (remote_config.h) into s->remote (allocated here); sw names the
 * server in messages; s->isolation must already be parsed. Returns 0, or -1 when out of memory. */
int mg__config_parse_remote(mg__config_ctx_t *ctx, mg_server_config_t *s, const char *sw, const json_t *obj,
                            int lenient);
/* 1 when key is read by mg__config_parse_remote (remote keys, and stdio keys it refuses there). */
int mg__config_remote_key(const char *key);
/* "gateway.egress" into cfg->egress. */
void mg__config_parse_egress(mg__config_ctx_t *ctx, mg_config_t *cfg, const json_t *v);

#endif
