/*
 * store_cmd.c - `mcpgate store migrate`: creates or upgrades the PostgreSQL session store's schema
 * (session/pg.h, mg_pg_migrate) before the replicas start, for deployments that run them with
 * gateway.sessions.migrate false (a database user without CREATE for the gateway itself).
 *
 * The store is --store SPEC, else MCPGATE_SESSION_STORE, else gateway.sessions.store of --config
 * (or MCPGATE_CONFIG); the password is gateway.sessions.password of that config, else the spec's
 * or libpq's (PGPASSWORD, ~/.pgpass). Exit 0 done, 1 the database refused or could not be reached,
 * 2 a usage or configuration error. Read next: src/session/pg_schema.c.
 */
#include "cli.h"
#include "../config/config.h"
#include "../session/pg.h"
#include "../session/shared.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: mcpgate store migrate [--store SPEC | --config FILE] [--env-file FILE]\n"
    "\n"
    "Creates or upgrades the schema of the PostgreSQL session store (tables and functions, versioned\n"
    "in mcpgate_schema) under an advisory lock; safe to run again and while replicas run.\n"
    "  --store SPEC     postgres://user@host:5432/db?sslmode=verify-full, a libpq key=value string,\n"
    "                   or \"postgres\" (everything from PG* variables); default: MCPGATE_SESSION_STORE,\n"
    "                   else gateway.sessions.store of the config\n"
    "  --config FILE    the gateway's config (default: MCPGATE_CONFIG)\n"
    "  --env-file FILE  KEY=VALUE lines for ${env:...} in the config\n";

int mg_cli_store(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "migrate") != 0) {
        fprintf(stderr, "mcpgate store: unknown action '%s' (known: migrate)\n%s", argv[1], usage);
        return 2;
    }
    const char *spec = getenv("MCPGATE_SESSION_STORE"), *config = getenv("MCPGATE_CONFIG");
    const char *env_file = getenv("MCPGATE_ENV_FILE");
    if (spec != NULL && spec[0] == '\0')
        spec = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        static const char *const names[] = {"--store", "--config", "--env-file"};
        int k = -1;
        for (int j = 0; j < 3 && k < 0; j++) {
            size_t n = strlen(names[j]);
            if (strncmp(a, names[j], n) == 0 && (a[n] == '\0' || a[n] == '=')) {
                k = j;
                val = a[n] == '=' ? a + n + 1 : i + 1 < argc ? argv[++i] : NULL;
            }
        }
        if (k < 0 || val == NULL) {
            fprintf(stderr, "mcpgate store migrate: %s '%s'\n%s",
                    k < 0 ? "unknown option" : "missing value for", a, usage);
            return 2;
        }
        if (k == 0)
            spec = val;
        else if (k == 1)
            config = val;
        else
            env_file = val;
    }
    mg_config_t cfg;
    int have_cfg = 0;
    if (config != NULL) {
        char dir[PATH_MAX];
        mg_config_self_dir(dir, sizeof dir);
        mg_config_errors_t errs = {0};
        mg_config_opts_t copts = {env_file};
        if (mg_config_load_opts(config, dir, &copts, &cfg, &errs) != 0) {
            mg_config_errors_print(stderr, "mcpgate", config, &errs);
            mg_config_errors_dispose(&errs);
            return 2;
        }
        mg_config_errors_dispose(&errs);
        have_cfg = 1;
        if (spec == NULL)
            spec = cfg.sessions.store;
    }
    int rc = 2;
    char why[400], out[200];
    if (spec == NULL || !mg_pg_spec_is(spec)) {
        fprintf(stderr,
                "mcpgate store migrate: no PostgreSQL store given: pass --store postgres://..., set "
                "MCPGATE_SESSION_STORE, or point --config at a config whose gateway.sessions.store is one "
                "(Redis and the memory store need no migration)\n");
    } else if (mg_session_store_check(spec, why, sizeof why) != 0) {
        fprintf(stderr, "mcpgate store migrate: not a valid session store: %s\n", why);
    } else if (mg_pg_migrate(spec, have_cfg ? cfg.sessions.password : NULL, out, sizeof out, why,
                             sizeof why) != 0) {
        fprintf(stderr, "mcpgate store migrate: %s\n", why);
        rc = 1;
    } else {
        printf("mcpgate store migrate: %s\n", out);
        rc = 0;
    }
    if (have_cfg)
        mg_config_dispose(&cfg);
    return rc;
}
