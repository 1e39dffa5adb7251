/*
 * lock_cmd.c - `mcpgate lock --config F [--diff | --update]`: starts every enabled upstream of F
 * (sandboxed as configured), lists its tools, prompts and resource templates (all pages) and reads
 * its instructions, then compares with F's lockfile: F's name with ".lock" beside it (servers.json
 * -> servers.lock), or gateway.lockFile, or --lock.
 *
 *   (no flag)  no lockfile yet: write it. A lockfile that matches: "up to date". One that differs:
 *              print the diff, write nothing, exit 1 (accepting a change is --update's job).
 *   --diff     print what changed; exit 1 when anything did. Never writes.
 *   --update   accept what the upstreams say now: write the lockfile, print what changed.
 * A server that cannot be listed is an error (exit 1) and nothing is written, so its pins are never
 * lost by accident. Entries of disabled servers are kept. Scanner findings are printed for review.
 * Migration: when F's lockfile does not exist but the mcpgate.lock older versions shared between the
 * configs of a directory does, F's servers' entries in it are the old pins (compared like a lockfile
 * of F's; servers it does not list are pinned fresh) and F's own lockfile is written from them.
 * mcpgate.lock itself is never changed or removed (other configs may still read it).
 * Read next: lock.h (format), hooks.c (the runtime check).
 */
#include "../common/err.h"
#include "../common/log.h"
#include "../config/config.h"
#include "../upstream/listall.h"
#include "lock.h"
#include "policy.h"
#include "scan.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: mcpgate lock --config FILE [--diff | --update] [--lock FILE] [--env-file FILE] [--timeout MS]\n"
    "                    [--log-level LEVEL]\n"
    "\n"
    "Starts every enabled server of FILE and pins what it says -- each tool, prompt and resource\n"
    "template (SHA-256 of its canonical JSON) and its instructions -- in FILE's lockfile: its name with\n"
    "\".lock\" for the extension, beside it (servers.json -> servers.lock; or gateway.lockFile, or --lock).\n"
    "Commit the lockfile next to the config: at runtime a definition that differs from it is blocked\n"
    "(gateway.pinning \"block\", the default once it exists) or logged. A mcpgate.lock of an older\n"
    "version in the same directory is read for FILE's servers until FILE's own lockfile is written.\n"
    "\n"
    "  (no flag)   write the lockfile if there is none; otherwise compare (exit 1 on changes)\n"
    "  --diff      show what changed since the lockfile; exit 1 when something did\n"
    "  --update    accept the current definitions and rewrite the lockfile\n"
    "  --timeout   how long to wait for the servers, ms (default 60000)\n"
    "Exit status: 0 written or up to date, 1 changes found or a server could not be listed, 2 usage\n"
    "or config error.\n";

/* What `lock` lists, in mg_lock_kinds order: tools, prompts, resource templates. */
static const mg_upstream_list_opts_t list_opts = {
    "mcpgate-lock",
    MG_LOCK_KINDS,
    {"tools/list", "prompts/list", "resources/templates/list"},
    {"tools", "prompts", "resourceTemplates"},
    {"tools", "prompts", "resources"},
    1000,
    60000,
    "the result has no list",
    "did not answer its list requests before --timeout",
};

/* Scanner findings over a server entry, printed for review. Returns the number of findings. */
static size_t print_findings(FILE *f, const mg_scanner_t *sc, const char *server, const json_t *entry,
                             const json_t *others)
{
    size_t count = 0;
    for (int k = 0; k < MG_LOCK_KINDS; k++) {
        const char *name;
        json_t *pin;
        json_object_foreach(json_object_get(entry, mg_lock_kinds[k]), name, pin)
        {
            json_t *fs = mg_scan_item(sc, mg_lock_kinds[k], json_object_get(pin, "definition"), others);
            size_t i;
            json_t *x;
            json_array_foreach(fs, i, x)
            {
                fprintf(f, "  ! %s: %s %s: %s %s: %s (%s: \"%s\")\n", server, mg_lock_kind_item[k], name,
                        json_string_value(json_object_get(x, "severity")),
                        json_string_value(json_object_get(x, "rule")),
                        json_string_value(json_object_get(x, "message")),
                        json_string_value(json_object_get(x, "field")),
                        json_string_value(json_object_get(x, "excerpt")));
                count++;
            }
            json_decref(fs);
        }
    }
    const char *text = json_string_value(json_object_get(json_object_get(entry, "instructions"), "text"));
    if (text != NULL) {
        json_t *fs = mg_scan_instructions(sc, text, others);
        size_t i;
        json_t *x;
        json_array_foreach(fs, i, x)
        {
            fprintf(f, "  ! %s: instructions: %s %s: %s (\"%s\")\n", server,
                    json_string_value(json_object_get(x, "severity")),
                    json_string_value(json_object_get(x, "rule")),
                    json_string_value(json_object_get(x, "message")),
                    json_string_value(json_object_get(x, "excerpt")));
            count++;
        }
        json_decref(fs);
    }
    return count;
}

/* Tool names of every server entry in servers but `self` (minus self's own names). NEW. */
static json_t *others_of(const json_t *servers, const char *self)
{
    json_t *o = json_object();
    const json_t *mine = json_object_get(json_object_get(servers, self), "tools");
    const char *sname;
    json_t *e;
    json_object_foreach((json_t *)servers, sname, e)
    {
        if (strcmp(sname, self) == 0)
            continue;
        const char *tname;
        json_t *pin;
        json_object_foreach(json_object_get(e, "tools"), tname, pin)
        {
            if (json_object_get(mine, tname) == NULL)
                json_object_set_new(o, tname, json_string(sname));
        }
    }
    return o;
}

int mg_cli_lock(int argc, char **argv)
{
    const char *config = getenv("MCPGATE_CONFIG"), *lock_arg = NULL, *env_file = getenv("MCPGATE_ENV_FILE");
    const char *log_level = NULL;
    unsigned long timeout_ms = 60000;
    int diff_only = 0, update = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "--diff") == 0) {
            diff_only = 1;
            continue;
        }
        if (strcmp(a, "--update") == 0) {
            update = 1;
            continue;
        }
        static const char *const names[] = {"--config", "--lock", "--env-file", "--timeout", "--log-level"};
        int k = -1;
        const char *val = NULL;
        for (int j = 0; j < 5 && k < 0; j++) {
            size_t n = strlen(names[j]);
            if (strncmp(a, names[j], n) == 0 && (a[n] == '\0' || a[n] == '=')) {
                k = j;
                val = a[n] == '=' ? a + n + 1 : i + 1 < argc ? argv[++i] : NULL;
            }
        }
        if (k < 0 || val == NULL) {
            fprintf(stderr, "mcpgate lock: %s '%s'\n%s", k < 0 ? "unknown argument" : "missing value for", a,
                    usage);
            return 2;
        }
        if (k == 0)
            config = val;
        else if (k == 1)
            lock_arg = val;
        else if (k == 2)
            env_file = val;
        else if (k == 3)
            timeout_ms = strtoul(val, NULL, 10);
        else
            log_level = val;
    }
    if (diff_only && update) {
        fprintf(stderr, "mcpgate lock: --diff and --update exclude each other\n");
        return 2;
    }
    if (config == NULL) {
        fprintf(stderr, "mcpgate lock: --config FILE is required (the lockfile is written beside it)\n");
        return 2;
    }
    mg_log_level_t lvl = MG_LOG_WARN;
    if (log_level != NULL && mg_log_level_parse(log_level, &lvl) != 0) {
        fprintf(stderr, "mcpgate lock: --log-level must be debug, info, warn or error\n");
        return 2;
    }
    mg_log_set_level(lvl);
    char dir[PATH_MAX];
    mg_config_self_dir(dir, sizeof dir);
    mg_config_t cfg;
    mg_config_errors_t errs = {0};
    mg_config_opts_t copts = {env_file};
    if (mg_config_load_opts(config, dir, &copts, &cfg, &errs) != 0) {
        mg_config_errors_print(stderr, "mcpgate", config, &errs);
        mg_config_errors_dispose(&errs);
        return 2;
    }
    mg_config_errors_dispose(&errs);
    mg_lock_source_t src;
    int missing = 0;
    char why[600];
    json_t *old = mg_lock_load_for(&cfg, lock_arg, &src, &missing, why, sizeof why);
    char *path = src.path;
    if (path == NULL || (old == NULL && !missing)) {
        fprintf(stderr, "mcpgate lock: %s\n", path ? why : "out of memory");
        mg_lock_source_dispose(&src);
        mg_config_dispose(&cfg);
        return 2;
    }
    if (src.legacy != NULL)
        fprintf(stdout,
                "%s does not exist yet: comparing with the pins of this config's servers in %s (the lockfile "
                "older versions shared between the configs of this directory; it is left as it is)\n",
                path, src.legacy);
    if (lock_arg != NULL) {
        char *served = mg_policy_lock_path(&cfg);
        if (served != NULL && strcmp(served, lock_arg) != 0)
            fprintf(stderr,
                    "mcpgate lock: note: serve --config %s reads %s, not %s (set gateway.lockFile to use "
                    "this one)\n",
                    config, served, lock_arg);
        free(served);
    }

    mg_upstream_list_opts_t lo = list_opts;
    lo.timeout_ms = timeout_ms;
    mg_upstream_listing_t *srv = NULL;
    size_t nsrv = 0;
    if (mg_upstream_list_all(&cfg, &lo, &srv, &nsrv) != 0) {
        fprintf(stderr, "mcpgate lock: out of memory\n");
        json_decref(old);
        mg_lock_source_dispose(&src);
        mg_config_dispose(&cfg);
        return 1;
    }

    /* The new document: entries of disabled servers are kept as they were. */
    json_t *fresh = mg_lock_new();
    json_t *servers = json_object_get(fresh, "servers");
    const json_t *old_servers = json_object_get(old, "servers");
    int failed = 0;
    for (size_t i = 0; i < cfg.nservers; i++) {
        const mg_server_config_t *sc = &cfg.servers[i];
        if (sc->disabled && json_object_get(old_servers, sc->name) != NULL)
            json_object_set(servers, sc->name, json_object_get(old_servers, sc->name));
    }
    for (size_t i = 0; i < nsrv; i++) {
        const mg_upstream_listing_t *s = &srv[i];
        if (s->error != NULL) {
            fprintf(stderr, "mcpgate lock: server '%s' could not be listed: %s\n", s->cfg->name, s->error);
            failed = 1;
            if (json_object_get(old_servers, s->cfg->name) != NULL)
                json_object_set(servers, s->cfg->name, json_object_get(old_servers, s->cfg->name));
            continue;
        }
        json_object_set_new(servers, s->cfg->name,
                            mg_lock_server_entry(s->lists[0], s->lists[1], s->lists[2], s->instructions));
    }

    /* What changed. */
    size_t changes = 0;
    FILE *out = stdout;
    const char *sname;
    json_t *e;
    json_object_foreach(servers, sname, e)
    {
        json_t *d = mg_lock_diff(json_object_get(old_servers, sname), e);
        if (src.legacy != NULL && json_object_get(old_servers, sname) == NULL)
            json_array_clear(d); /* not in the shared legacy lock: pinned for the first time */
        if (old != NULL && json_array_size(d) > 0) {
            if (changes == 0)
                fprintf(out, "%s: changes since it was written:\n", src.legacy ? src.legacy : path);
            mg_lock_diff_print(out, sname, d, json_object_get(old_servers, sname), e);
        }
        changes += old != NULL ? json_array_size(d) : 0;
        json_decref(d);
    }
    json_object_foreach((json_t *)old_servers, sname, e)
    {
        if (json_object_get(servers, sname) == NULL) {
            if (changes == 0)
                fprintf(out, "%s: changes since it was written:\n", src.legacy ? src.legacy : path);
            fprintf(out, "  - %s: server removed from the config\n", sname);
            changes++;
        }
    }

    /* Scanner findings, for whoever reviews this lock. */
    mg_scanner_t *sc = NULL;
    if (mg_scanner_new(cfg.policy ? cfg.policy->scan.rules_file : NULL,
                       cfg.policy ? cfg.policy->scan.disable : NULL,
                       cfg.policy ? cfg.policy->scan.ndisable : 0, &sc, why, sizeof why) == 0) {
        size_t nf = 0;
        json_object_foreach(servers, sname, e)
        {
            json_t *others = others_of(servers, sname);
            nf += print_findings(out, sc, sname, e, others);
            json_decref(others);
        }
        if (nf > 0)
            fprintf(out,
                    "description scan: %zu finding%s above (see docs/security.md#description-scanning)\n", nf,
                    nf == 1 ? "" : "s");
        mg_scanner_free(sc);
    } else {
        fprintf(stderr, "mcpgate lock: scan rules: %s\n", why);
    }

    int rc = 0;
    if (diff_only) {
        if (old == NULL)
            fprintf(out, "%s does not exist yet: run mcpgate lock --config %s to create it\n", path, config);
        else if (changes == 0 && !failed && src.legacy != NULL)
            fprintf(out, "%s: no changes; write %s with mcpgate lock --config %s\n", src.legacy, path,
                    config);
        else if (changes == 0 && !failed)
            fprintf(out, "%s: no changes\n", path);
        rc = changes > 0 || failed || old == NULL ? 1 : 0;
    } else if (failed) {
        fprintf(stderr, "mcpgate lock: %s not written: every enabled server must be listed\n", path);
        rc = 1;
    } else if (old != NULL && changes > 0 && !update) {
        fprintf(out,
                "%s not written: review the changes above, then accept them with mcpgate lock --config %s "
                "--update\n",
                path, config);
        rc = 1;
    } else if (old != NULL && changes == 0 && src.legacy == NULL) {
        fprintf(out, "%s is up to date (%zu server%s)\n", path, json_object_size(servers),
                json_object_size(servers) == 1 ? "" : "s");
    } else if (mg_lock_write(path, fresh) != 0) {
        fprintf(stderr, "mcpgate lock: cannot write %s\n", path);
        rc = 1;
    } else {
        if (src.legacy != NULL)
            fprintf(out,
                    "wrote %s: the pins of %zu server%s carried over from %s, which is left as it is (other "
                    "configs of this directory may still read it: delete it once each has its own "
                    "lockfile):\n",
                    path, json_object_size(old_servers), json_object_size(old_servers) == 1 ? "" : "s",
                    src.legacy);
        else
            fprintf(out, "%s %s:\n", old ? "updated" : "wrote", path);
        json_object_foreach(servers, sname, e)
        {
            fprintf(out, "  %s: %zu tools, %zu prompts, %zu resource templates, instructions: %s\n", sname,
                    json_object_size(json_object_get(e, "tools")),
                    json_object_size(json_object_get(e, "prompts")),
                    json_object_size(json_object_get(e, "resourceTemplates")),
                    json_is_object(json_object_get(e, "instructions")) ? "pinned" : "none");
        }
    }
    mg_upstream_listings_free(srv, nsrv);
    json_decref(fresh);
    json_decref(old);
    mg_lock_source_dispose(&src);
    mg_config_dispose(&cfg);
    return rc;
}
