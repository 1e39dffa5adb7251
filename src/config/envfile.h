/*
 * envfile.h - the --env-file (e.g. .env.mcp): credentials kept out of the config file.
 *
 * Format: one `KEY=VALUE` per line; `export KEY=VALUE` accepted; blank lines and lines starting
 * with '#' ignored. VALUE is taken as written after trimming spaces (an unquoted value ends at " #"),
 * or quoted: '...' literally, "..." with \n \r \t \" \\ escapes. No ${...} interpolation. A key
 * defined twice, a malformed line or a file over 1 MiB is a problem naming the line, never a value.
 *
 * Two uses (config/config.c): ${env:NAME} falls back to the file when NAME is unset in the gateway's
 * environment, and `{SERVICE}_MCP_{KEY}` entries add KEY to server SERVICE's env (SERVICE = the
 * server name upper-cased, '-' and '.' as '_'; the longest matching server wins). The precedence
 * is in docs/configuration.md#credentials. Read next: envfile.c.
 */
#ifndef MG_ENVFILE_H
#define MG_ENVFILE_H

#include <stddef.h>

typedef struct mg_envfile_entry {
    char *key;
    char *value;
    unsigned line;
    int used; /* set when a ${env:} reference or the convention consumed it */
} mg_envfile_entry_t;

typedef struct mg_envfile {
    char *path;
    mg_envfile_entry_t *e;
    size_t n;
} mg_envfile_t;

typedef void (*mg_envfile_err_cb)(void *ctx, const char *msg);

/* Parses text (len bytes). origin prefixes messages. Returns 0, or -1 when a problem was reported
 * through err (out then holds the entries that parsed). */
int mg_envfile_parse(const char *text, size_t len, const char *origin, mg_envfile_t *out,
                     mg_envfile_err_cb err, void *ctx);
/* Reads and parses path. */
int mg_envfile_load(const char *path, mg_envfile_t *out, mg_envfile_err_cb err, void *ctx);
void mg_envfile_dispose(mg_envfile_t *ef);
/* The entry named key, or NULL. */
mg_envfile_entry_t *mg_envfile_get(const mg_envfile_t *ef, const char *key);
/* "{SERVICE}_MCP_" for a server name into out (truncated to n). */
void mg_envfile_service_prefix(const char *server, char *out, size_t n);

struct mg_config;
/* Adds every {SERVICE}_MCP_{KEY} entry to its enabled server's env (source "envfile:ENTRY").
 * Problems (KEY also set in the config, empty value, two servers with one prefix) go to err. */
void mg_envfile_apply(mg_envfile_t *ef, struct mg_config *cfg, mg_envfile_err_cb err, void *ctx);

#endif
