/*
 * check.c - what `mcpgate check` says about the policy of a config, without starting anything:
 * credential precedence, pinning (lockfile and its entries per server), description scanning (run
 * over the definitions recorded in the lockfile), the sandbox of each server and whether this
 * kernel can apply it, rate limits and CORS. Problems (a sandbox this machine cannot apply, a
 * missing or malformed lockfile under "block", bad scan rules) are counted: check exits 1.
 * Read next: main.c (cmd_check), docs/security.md.
 */
#include "../config/config.h"
#include "../upstream/sandbox.h"
#include "lock.h"
#include "policy.h"
#include "scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_rule(FILE *f, const char *what, const mg_rate_rule_t *r)
{
    fprintf(f, "    %s: %llu per %llu s, burst %llu\n", what, (unsigned long long)r->requests,
            (unsigned long long)(r->per_ms / 1000), (unsigned long long)r->burst);
}

int mg_policy_check_report(const mg_config_t *cfg, const char *env_file, FILE *f)
{
    int problems = 0;
    char why[600];
    const mg_policy_config_t *pc = cfg->policy;

    /* Credentials. */
    fprintf(f,
            "  credentials: each server gets only its env above plus PATH, HOME, LANG; precedence per key: "
            "config env value (literal, ${env:} from the gateway's environment, else %s, ${file:}), then "
            "{SERVICE}_MCP_{KEY} from %s; both for one key, or an empty value, is an error\n",
            env_file ? "the --env-file" : "an --env-file",
            env_file ? env_file : "an --env-file (none given)");

    /* Pinning. */
    mg_lock_source_t src;
    int missing = 0;
    json_t *lock = mg_lock_load_for(cfg, NULL, &src, &missing, why, sizeof why);
    const char *path = src.path;
    int explicit_block = pc && pc->pinning == MG_PIN_BLOCK;
    if (path == NULL)
        fprintf(f, "  pinning: no lockfile for the embedded config (nothing is pinned; use --config FILE)\n");
    else if (lock == NULL && !missing) {
        fprintf(f, "  pinning: PROBLEM: %s\n", why);
        problems++;
    } else if (lock == NULL) {
        fprintf(
            f,
            "  pinning: %s does not exist: nothing is pinned (create it with mcpgate lock --config %s)%s\n",
            path, cfg->path, explicit_block ? "; PROBLEM: gateway.pinning is \"block\"" : "");
        problems += explicit_block;
    } else if (src.legacy != NULL) {
        fprintf(f,
                "  pinning: %s does not exist: reading this config's servers from %s, the lockfile older "
                "versions shared between every config of the directory (left as it is); write %s with "
                "mcpgate lock --config %s\n",
                path, src.legacy, path, cfg->path);
    } else {
        fprintf(f, "  pinning: %s\n", path);
    }
    const json_t *lservers = json_object_get(lock, "servers");
    for (size_t i = 0; i < cfg->nservers; i++) {
        const mg_server_config_t *s = &cfg->servers[i];
        if (s->disabled)
            continue;
        mg_pin_mode_t m = mg_policy_pin_mode(cfg, s);
        const json_t *e = json_object_get(lservers, s->name);
        int locked = lock != NULL && (src.legacy == NULL || e != NULL); /* as in hooks.c */
        mg_pin_mode_t eff = m == MG_PIN_UNSET ? (locked ? MG_PIN_BLOCK : MG_PIN_OFF) : m;
        if (lock != NULL && !locked) {
            fprintf(f, "    %s: %s, not in %s (written for another config)\n", s->name,
                    m == MG_PIN_UNSET ? "off" : mg_pin_mode_name(eff), src.legacy);
        } else if (lock == NULL) {
            fprintf(f, "    %s: %s\n", s->name,
                    m == MG_PIN_UNSET ? "off (no lockfile)" : mg_pin_mode_name(eff));
        } else if (e == NULL) {
            fprintf(f, "    %s: %s%s, not in the lockfile: %s\n", s->name, mg_pin_mode_name(eff),
                    m == MG_PIN_UNSET ? " (default with a lockfile)" : "",
                    eff == MG_PIN_BLOCK ? "everything it lists is blocked until mcpgate lock --update"
                                        : "everything it lists is reported");
        } else {
            fprintf(f, "    %s: %s%s, %zu tools, %zu prompts, %zu resource templates, instructions %s\n",
                    s->name, mg_pin_mode_name(eff), m == MG_PIN_UNSET ? " (default with a lockfile)" : "",
                    json_object_size(json_object_get(e, "tools")),
                    json_object_size(json_object_get(e, "prompts")),
                    json_object_size(json_object_get(e, "resourceTemplates")),
                    json_is_object(json_object_get(e, "instructions")) ? "pinned" : "none");
        }
    }

    /* Scanning, over what the lockfile recorded. */
    mg_scanner_t *sc = NULL;
    if (mg_scanner_new(pc ? pc->scan.rules_file : NULL, pc ? pc->scan.disable : NULL,
                       pc ? pc->scan.ndisable : 0, &sc, why, sizeof why) != 0) {
        fprintf(f, "  scanning: PROBLEM: %s\n", why);
        problems++;
    } else {
        fprintf(f, "  scanning: %s, blocks at %s and above in block mode, %zu rules%s%s\n",
                mg_scan_mode_name(mg_policy_scan_mode(cfg, NULL)),
                mg_severity_name(pc ? pc->scan.block_at : MG_SEV_HIGH), mg_scanner_rule_count(sc),
                pc && pc->scan.rules_file ? " (built-in + " : "",
                pc && pc->scan.rules_file ? pc->scan.rules_file : "");
        if (pc && pc->scan.rules_file)
            fputs(")", f);
        size_t total = 0;
        const char *sname;
        json_t *e;
        json_object_foreach((json_t *)lservers, sname, e)
        {
            for (int k = 0; k < MG_LOCK_KINDS; k++) {
                const char *name;
                json_t *pin;
                json_object_foreach(json_object_get(e, mg_lock_kinds[k]), name, pin)
                {
                    json_t *fs = mg_scan_item(sc, mg_lock_kinds[k], json_object_get(pin, "definition"), NULL);
                    size_t x;
                    json_t *fi;
                    json_array_foreach(fs, x, fi)
                    {
                        fprintf(f, "    %s: %s %s: %s %s (%s)\n", sname, mg_lock_kind_item[k], name,
                                json_string_value(json_object_get(fi, "severity")),
                                json_string_value(json_object_get(fi, "rule")),
                                json_string_value(json_object_get(fi, "field")));
                        total++;
                    }
                    json_decref(fs);
                }
            }
        }
        if (lock != NULL)
            fprintf(f, "    findings in the lockfile's definitions: %zu\n", total);
        for (size_t i = 0; i < cfg->nservers; i++) {
            const mg_server_config_t *s = &cfg->servers[i];
            if (!s->disabled && s->policy != NULL && s->policy->scan != MG_SCAN_UNSET)
                fprintf(f, "    %s: %s\n", s->name, mg_scan_mode_name(s->policy->scan));
        }
        mg_scanner_free(sc);
    }
    json_decref(lock);
    mg_lock_source_dispose(&src);

    /* Sandbox. */
    int abi = mg_sandbox_landlock_abi();
    fprintf(f, "  sandbox: this kernel: Landlock %s%.0d, seccomp filters %s\n",
            abi > 0 ? "ABI " : "unavailable", abi,
            mg_sandbox_seccomp_available() ? "available" : "unavailable");
    for (size_t i = 0; i < cfg->nservers; i++) {
        const mg_server_config_t *s = &cfg->servers[i];
        if (s->disabled)
            continue;
        if (s->remote != NULL) { /* nothing runs here: reached over HTTP */
            fprintf(f, "    %s: not applicable (a remote server)\n", s->name);
            continue;
        }
        if (s->sandbox == NULL) {
            fprintf(f, "    %s: none (runs as the gateway's user, with its limits)\n", s->name);
            continue;
        }
        char *d = mg_sandbox_describe(s->sandbox);
        if (mg_sandbox_probe(s->sandbox, why, sizeof why) == 0) {
            fprintf(f, "    %s: %s\n", s->name, d ? d : "?");
        } else {
            fprintf(f, "    %s: PROBLEM: %s (the server would not be started)\n", s->name, why);
            problems++;
        }
        free(d);
    }

    /* Rate limits and CORS. */
    if (pc == NULL || !pc->rate.enabled) {
        fprintf(f, "  rate limits: none\n");
    } else {
        const char *st = pc->rate.store;
        fprintf(f, "  rate limits (store %s), methods:",
                st == NULL ? "unset: shared in the session store when sessions are, else per replica"
                : strcmp(st, "local") != 0 ? "shared: by every replica, in the session store"
                                           : "local: each replica counts on its own");
        for (size_t i = 0; i < pc->rate.nmethods; i++)
            fprintf(f, " %s", pc->rate.methods[i]);
        fputs("\n", f);
        if (pc->rate.has_principal)
            print_rule(f, "principal (client address without auth)", &pc->rate.principal);
        if (pc->rate.has_tenant)
            print_rule(f, "tenant", &pc->rate.tenant);
        for (size_t i = 0; i < pc->rate.ntools; i++) {
            char w[200];
            snprintf(w, sizeof w, "tool %s", pc->rate.tools[i].glob);
            print_rule(f, w, &pc->rate.tools[i]);
        }
    }
    if (pc == NULL || !pc->cors.enabled) {
        fprintf(f, "  cors: off\n");
    } else {
        fprintf(f, "  cors: origins");
        for (size_t i = 0; i < pc->cors.norigins; i++)
            fprintf(f, " %s", pc->cors.origins[i]);
        fprintf(f, ", credentials %s, max-age %u s (requests must also pass gateway.allowedOrigins)\n",
                pc->cors.allow_credentials ? "allowed" : "not allowed", pc->cors.max_age_s);
    }
    return problems;
}
