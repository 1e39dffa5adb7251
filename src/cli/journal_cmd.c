/*
 * journal_cmd.c - `mcpgate journal verify`: checks the call journal's chain (obs/journal.h) and
 * its checkpoints' HMACs. Exit 0 intact, 1 with the first broken or missing line, 2 usage or an
 * unreadable file / config.
 * Read next: obs/journal_verify.c.
 */
#include "cli.h"
#include "../common/str.h"
#include "../config/config.h"
#include "../obs/journal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: mcpgate journal verify [--key FILE | --config FILE] [--partial] [--only] [JOURNAL]\n"
    "\n"
    "Checks the call journal JOURNAL (gateway.journal.path) and its rotated files JOURNAL.<seq>:\n"
    "every line chains to the one before it (SHA-256), seq counts up without a gap, and, with the\n"
    "key, every checkpoint's HMAC is right. Exit 0 when intact, 1 at the first broken or missing\n"
    "line (printed as FILE:LINE), 2 when a file cannot be read.\n"
    "\n"
    "  --key FILE     the HMAC key file (what gateway.journal.hmacKey reads with ${file:...})\n"
    "  --config FILE  take the journal's path and key from the gateway's config\n"
    "  --partial      the oldest files were deleted on purpose: the chain may start after seq 1\n"
    "  --only         check JOURNAL alone, not its rotated files\n";

static int verify(int argc, char **argv)
{
    const char *keyfile = NULL, *config = NULL, *path = NULL;
    mg_journal_verify_opts_t o = {.out = stdout};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "--key") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            *(a[2] == 'k' ? &keyfile : &config) = argv[++i];
        } else if (strcmp(a, "--partial") == 0) {
            o.partial = 1;
        } else if (strcmp(a, "--only") == 0) {
            o.single = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (a[0] != '-' && path == NULL) {
            path = a;
        } else {
            fprintf(stderr, "mcpgate journal verify: unknown argument '%s'\n%s", a, usage);
            return 2;
        }
    }
    char *key = NULL;
    mg_config_t cfg;
    int have_cfg = 0;
    if (config != NULL) {
        char dir[PATH_MAX];
        mg_config_self_dir(dir, sizeof dir);
        mg_config_errors_t errs = {0};
        if (mg_config_load(config, dir, &cfg, &errs) != 0) {
            mg_config_errors_print(stderr, "mcpgate journal verify", config, &errs);
            mg_config_errors_dispose(&errs);
            return 2;
        }
        mg_config_errors_dispose(&errs);
        have_cfg = 1;
        if (cfg.journal.path == NULL) {
            fprintf(stderr, "mcpgate journal verify: %s has no gateway.journal\n", config);
            mg_config_dispose(&cfg);
            return 2;
        }
        if (path == NULL)
            path = cfg.journal.path;
        if (cfg.journal.hmac_key != NULL)
            key = strdup(cfg.journal.hmac_key);
    }
    if (keyfile != NULL) {
        FILE *f = fopen(keyfile, "re");
        char buf[1100];
        size_t n = f != NULL ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f != NULL)
            fclose(f);
        if (f == NULL || n == 0) {
            fprintf(stderr, "mcpgate journal verify: cannot read the key file %s\n", keyfile);
            if (have_cfg)
                mg_config_dispose(&cfg);
            return 2;
        }
        buf[n] = '\0';
        if (n > 0 && buf[n - 1] == '\n') /* as ${file:...} reads it: one final newline stripped */
            buf[--n] = '\0';
        if (n > 0 && buf[n - 1] == '\r')
            buf[--n] = '\0';
        free(key);
        key = strdup(buf);
        memset(buf, 0, sizeof buf);
    }
    if (path == NULL) {
        fputs(usage, stderr);
        if (have_cfg)
            mg_config_dispose(&cfg);
        free(key);
        return 2;
    }
    o.key = (const unsigned char *)key;
    o.keylen = key ? strlen(key) : 0;
    int rc = mg_journal_verify(path, &o);
    if (key != NULL) {
        memset(key, 0, strlen(key));
        free(key);
    }
    if (have_cfg)
        mg_config_dispose(&cfg);
    return rc;
}

int mg_cli_journal(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "verify") == 0)
        return verify(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    fputs(usage, stderr);
    return 2;
}
