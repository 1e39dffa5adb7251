/*
 * config_audit.c - `mcpgate audit --config FILE`: the checks a config answers by itself (listen
 * address, gateway.auth, credentials, package pins and publishers, lockfile, lazy mode) and, for
 * every enabled server, the ones its tools answer: each server is started the way `serve` starts it
 * (sandbox rules apply; upstream/listall.h), its tools are listed twice in one session (definitions
 * stable?), scanned and costed, and it is stopped. Then every stdio server that listed gets the
 * robustness probes over stdio (stdio_probe.c), and every remote entry its own checks, the SSRF
 * guard (both before the listing: an entry that must not be reached is disabled in this private
 * copy of the config) and the URL probes (config_remote.c).
 * The package rules (mg_audit_package_of, mg_audit_publisher_trusted, mg_audit_placeholder) are
 * pure and unit-tested. Read next: verdict.c (context and supply verdicts), docs/audit.md.
 */
#include "audit_int.h"
#include "../common/err.h"
#include "../config/config.h"
#include "../config/remote_config.h"
#include "../http/server.h"
#include "../policy/lock.h"
#include "../upstream/listall.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Is a npm spec pinned? "@scope/pkg@1.2.3" / "pkg@1.2.3" yes; no version, a tag, a range: no. */
static int npm_pinned(const char *spec, char *pkg, size_t n, char *why, size_t wn)
{
    const char *at = strchr(spec + (spec[0] == '@' ? 1 : 0), '@');
    snprintf(pkg, n, "%.*s", (int)(at ? (size_t)(at - spec) : strlen(spec)), spec);
    if (at == NULL) {
        snprintf(why, wn, "%s without a version", spec);
        return 0;
    }
    const char *ver = at + 1;
    if (!isdigit((unsigned char)ver[0])) {
        snprintf(why, wn, "%s: \"%s\" is a tag or a range, not a version", spec, ver);
        return 0;
    }
    for (const char *q = ver; *q; q++)
        if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != '+') {
            snprintf(why, wn, "%s: \"%s\" is a range, not one version", spec, ver);
            return 0;
        }
    snprintf(why, wn, "%s", spec);
    return 1;
}

int mg_audit_package_of(const char *command, char *const *args, size_t nargs, char *pkg, size_t n, char *why,
                        size_t whyn)
{
    const char *cmd = base_name(command);
    pkg[0] = '\0';
    why[0] = '\0';
    size_t i = 0;
    if (strcmp(cmd, "npx") == 0 || strcmp(cmd, "bunx") == 0 || strcmp(cmd, "pnpx") == 0 ||
        (strcmp(cmd, "pnpm") == 0 && nargs > 0 && strcmp(args[0], "dlx") == 0) ||
        (strcmp(cmd, "npm") == 0 && nargs > 0 &&
         (strcmp(args[0], "exec") == 0 || strcmp(args[0], "x") == 0))) {
        if (strcmp(cmd, "pnpm") == 0 || strcmp(cmd, "npm") == 0)
            i = 1;
        for (; i < nargs; i++) {
            const char *a = args[i];
            if (strcmp(a, "--") == 0)
                continue;
            if (strncmp(a, "--package=", 10) == 0 || strncmp(a, "-p=", 3) == 0)
                return npm_pinned(strchr(a, '=') + 1, pkg, n, why, whyn);
            if ((strcmp(a, "--package") == 0 || strcmp(a, "-p") == 0) && i + 1 < nargs)
                return npm_pinned(args[i + 1], pkg, n, why, whyn);
            if (a[0] == '-')
                continue;
            return npm_pinned(a, pkg, n, why, whyn);
        }
        snprintf(why, whyn, "%s without a package", cmd);
        return -1;
    }
    if (strcmp(cmd, "uvx") == 0 || strcmp(cmd, "pipx") == 0 ||
        (strcmp(cmd, "uv") == 0 && nargs > 1 && strcmp(args[0], "tool") == 0)) {
        if (strcmp(cmd, "pipx") == 0 || strcmp(cmd, "uv") == 0)
            i = strcmp(cmd, "uv") == 0 ? 2 : (nargs > 0 && strcmp(args[0], "run") == 0 ? 1 : 0);
        const char *from = NULL;
        for (; i < nargs; i++) {
            const char *a = args[i];
            if (strcmp(a, "--from") == 0 && i + 1 < nargs) {
                from = args[++i];
                continue;
            }
            if (strncmp(a, "--from=", 7) == 0) {
                from = a + 7;
                continue;
            }
            if (a[0] == '-')
                continue;
            const char *spec = from ? from : a;
            const char *eq = strstr(spec, "==");
            const char *at = strchr(spec, '@');
            size_t nl = eq ? (size_t)(eq - spec) : at ? (size_t)(at - spec) : strlen(spec);
            snprintf(pkg, n, "%.*s", (int)nl, spec);
            if (eq != NULL && isdigit((unsigned char)eq[2])) {
                snprintf(why, whyn, "%s", spec);
                return 1;
            }
            if (at != NULL && isdigit((unsigned char)at[1])) {
                snprintf(why, whyn, "%s", spec);
                return 1;
            }
            snprintf(why, whyn, "%s without ==VERSION", spec);
            return 0;
        }
        snprintf(why, whyn, "%s without a package", cmd);
        return -1;
    }
    if (strcmp(cmd, "docker") == 0 || strcmp(cmd, "podman") == 0) {
        for (i = 0; i < nargs; i++) {
            const char *a = args[i];
            if (strcmp(a, "run") == 0 || a[0] == '-')
                continue;
            if (i > 0 && (strcmp(args[i - 1], "-e") == 0 || strcmp(args[i - 1], "-v") == 0 ||
                          strcmp(args[i - 1], "--env") == 0 || strcmp(args[i - 1], "--name") == 0 ||
                          strcmp(args[i - 1], "--network") == 0))
                continue;
            const char *dig = strstr(a, "@sha256:");
            const char *colon = strrchr(a, ':');
            const char *slash = strrchr(a, '/');
            int tagged = colon && (!slash || colon > slash);
            snprintf(pkg, n, "%.*s",
                     (int)(dig      ? (size_t)(dig - a)
                           : tagged ? (size_t)(colon - a)
                                    : strlen(a)),
                     a);
            if (dig) {
                snprintf(why, whyn, "%s (digest)", a);
                return 1;
            }
            snprintf(why, whyn, "image %s%s", a, tagged ? " by tag, not digest" : " without a tag");
            return tagged && strcmp(colon + 1, "latest") != 0 ? 1 : 0;
        }
        return -1;
    }
    return -1;
}

int mg_audit_publisher_trusted(const char *pkg, char *const *publishers, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = publishers[i];
        size_t pl = strlen(p);
        if (pl == 0)
            continue;
        if (p[pl - 1] == '/' ? strncmp(pkg, p, pl) == 0 : strcmp(pkg, p) == 0)
            return 1;
    }
    return 0;
}

int mg_audit_placeholder(const char *value)
{
    static const char *const words[] = {
        "changeme", "change-me",   "change_me", "your-", "your_",  "<your", "replace", "todo",
        "fixme",    "placeholder", "example",   "dummy", "insert", "xxx",   "${",      NULL};
    if (value == NULL || *value == '\0')
        return 1;
    char low[256];
    size_t n = strlen(value);
    if (n >= sizeof low)
        n = sizeof low - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)value[i]);
    low[n] = '\0';
    for (int i = 0; words[i]; i++)
        if (strstr(low, words[i]))
            return 1;
    if (low[0] == '<' && low[n - 1] == '>')
        return 1;
    /* one character repeated ("aaaa", "0000", "****") */
    size_t same = 1;
    while (same < n && low[same] == low[0])
        same++;
    return same == n && n > 1;
}

/* Env keys that carry credentials. */
static int secret_key(const char *k)
{
    static const char *const marks[] = {"KEY", "TOKEN",      "SECRET", "PASSWORD", "PASS",
                                        "PAT", "CREDENTIAL", "AUTH",   NULL};
    for (int i = 0; marks[i]; i++)
        if (strcasestr(k, marks[i]))
            return 1;
    return 0;
}

static char *const default_publishers[] = {"@modelcontextprotocol/"};

int mg_audit_config(const char *path, const char *env_file, unsigned long timeout_ms,
                    const mg_audit_limits_t *probe_lim, unsigned burst, mg_audit_report_t *rep)
{
    char dir[PATH_MAX];
    mg_config_self_dir(dir, sizeof dir);
    mg_config_t cfg;
    mg_config_errors_t errs = {0};
    mg_config_opts_t copts = {env_file};
    if (mg_config_load_opts(path, dir, &copts, &cfg, &errs) != 0) {
        mg_config_errors_print(stderr, "mcpgate audit", path, &errs);
        mg_config_errors_dispose(&errs);
        return 2;
    }
    mg_config_errors_dispose(&errs);

    /* Listen address and auth. */
    struct sockaddr_storage addr;
    int loopback = 0;
    const char *why = NULL;
    const char *listen = cfg.listen ? cfg.listen : "127.0.0.1:8080";
    if (mg_server_resolve(listen, &addr, &loopback, &why) != 0)
        mg_audit_add(rep, "transport.bind", NULL, MG_AUDIT_SKIP, "gateway.listen %s does not resolve: %s",
                     listen, why ? why : "?");
    else if (loopback)
        mg_audit_add(rep, "transport.bind", NULL, MG_AUDIT_PASS,
                     "gateway.listen %s: loopback only (in a container, bind 0.0.0.0 with gateway.auth)",
                     listen);
    else
        mg_audit_add(rep, "transport.bind", NULL, cfg.auth_configured ? MG_AUDIT_PASS : MG_AUDIT_FAIL,
                     "gateway.listen %s: reachable beyond loopback, gateway.auth %s", listen,
                     cfg.auth_configured ? "on" : "off");
    if (cfg.auth_configured)
        mg_audit_add(rep, "auth.required", NULL, MG_AUDIT_PASS, "gateway.auth configured");
    else
        mg_audit_add(rep, "auth.required", NULL, loopback ? MG_AUDIT_WARN : MG_AUDIT_FAIL,
                     "no gateway.auth: every client that reaches %s is served", listen);

    /* Credentials. */
    size_t checked = 0;
    char bad[600] = "";
    for (size_t i = 0; i < cfg.nservers; i++) {
        const mg_server_config_t *s = &cfg.servers[i];
        for (size_t k = 0; k < s->nenv; k++) {
            if (!secret_key(s->env[k].key))
                continue;
            checked++;
            if (mg_audit_placeholder(s->env[k].value)) {
                size_t o = strlen(bad);
                snprintf(bad + o, sizeof bad - o, "%s%s.env.%s", o ? ", " : "", s->name, s->env[k].key);
            }
        }
        for (size_t k = 0; s->remote != NULL && k < s->remote->nheaders; k++) {
            const mg_kv_t *h = &s->remote->headers[k];
            if (!secret_key(h->key))
                continue;
            checked++;
            /* "Bearer <your-token>": the scheme word is not the credential */
            const char *v = strncasecmp(h->value, "Bearer ", 7) == 0 ? h->value + 7 : h->value;
            if (mg_audit_placeholder(v)) {
                size_t o = strlen(bad);
                snprintf(bad + o, sizeof bad - o, "%s%s.headers.%s", o ? ", " : "", s->name, h->key);
            }
        }
    }
    if (bad[0])
        mg_audit_add(rep, "env.credentials", NULL, MG_AUDIT_FAIL,
                     "empty or placeholder values (not shown): %s", bad);
    else
        mg_audit_add(rep, "env.credentials", NULL, MG_AUDIT_PASS,
                     "%zu credential values present, none a placeholder (the parser refuses empty ones)",
                     checked);

    /* Lockfile. */
    mg_lock_source_t src = {0};
    int missing = 0;
    char lwhy[512];
    json_t *lock = mg_lock_load_for(&cfg, NULL, &src, &missing, lwhy, sizeof lwhy);
    if (lock != NULL)
        mg_audit_add(rep, "supply.lockfile", NULL, MG_AUDIT_PASS, "%s pins %zu servers",
                     src.legacy ? src.legacy : src.path,
                     json_object_size(json_object_get(lock, "servers"))
                         ? json_object_size(json_object_get(lock, "servers"))
                         : json_object_size(lock));
    else if (missing)
        mg_audit_add(rep, "supply.lockfile", NULL, MG_AUDIT_WARN,
                     "no lockfile (%s): tool definitions are not pinned",
                     src.path ? src.path : "embedded config");
    else
        mg_audit_add(rep, "supply.lockfile", NULL, MG_AUDIT_FAIL, "lockfile unreadable: %s", lwhy);
    json_decref(lock);
    mg_lock_source_dispose(&src);

    /* Packages. */
    char *const *pubs = cfg.audit_publishers ? cfg.audit_publishers : default_publishers;
    size_t npubs = cfg.audit_publishers ? cfg.naudit_publishers : 1;
    for (size_t i = 0; i < cfg.nservers; i++) {
        const mg_server_config_t *s = &cfg.servers[i];
        if (s->disabled)
            continue;
        if (s->remote != NULL) {
            mg_audit_add(rep, "supply.pinned", s->name, MG_AUDIT_SKIP,
                         "a remote server: what it runs is its operator's (the lockfile pins its tools)");
            mg_audit_add(rep, "supply.publishers", s->name, MG_AUDIT_SKIP, "a remote server: no package");
            continue;
        }
        char pkg[256], pw[512];
        int pinned = mg_audit_package_of(s->command, s->args, s->nargs, pkg, sizeof pkg, pw, sizeof pw);
        if (pinned < 0) {
            mg_audit_add(
                rep, "supply.pinned", s->name, MG_AUDIT_SKIP,
                "%s is a local command, not a package runner (npx, uvx, docker): pin it by path/version "
                "yourself",
                base_name(s->command));
            mg_audit_add(rep, "supply.publishers", s->name, MG_AUDIT_SKIP,
                         "no package named on the command line");
            continue;
        }
        mg_audit_add(rep, "supply.pinned", s->name, pinned ? MG_AUDIT_PASS : MG_AUDIT_FAIL, "%s", pw);
        int ok = mg_audit_publisher_trusted(pkg, pubs, npubs);
        mg_audit_add(rep, "supply.publishers", s->name, ok ? MG_AUDIT_PASS : MG_AUDIT_WARN, "%s %s %s", pkg,
                     ok ? "is from" : "is not from",
                     cfg.audit_publishers ? "gateway.audit.trustedPublishers"
                                          : "the official @modelcontextprotocol/ scope");
    }

    /* Remote servers: the entry itself and the SSRF guard. One that must not be reached (a credential
     * in its URL's query, an address the gateway refuses) is neither listed nor probed: it is
     * disabled in this private copy of the config. */
    for (size_t i = 0; i < cfg.nservers; i++) {
        mg_server_config_t *s = &cfg.servers[i];
        if (s->disabled || s->remote == NULL)
            continue;
        int probe = 1;
        mg_audit_remote_config(rep, s, &probe);
        int refused = mg_audit_remote_egress(rep, s, &cfg.egress) != 0;
        if (!probe || refused) {
            mg_audit_add(rep, "transport.streamable-http", s->name, MG_AUDIT_SKIP,
                         "not reached: see transport.egress or auth.query-token");
            s->disabled = 1;
        }
    }

    /* Servers over stdio and remote ones: two listings of tools in one session each. */
    int lazy = cfg.tools.mode == MG_TOOLS_LAZY;
    mg_upstream_list_opts_t lo = {"mcpgate-audit",
                                  2,
                                  {"tools/list", "tools/list"},
                                  {"tools", "tools"},
                                  {"tools", "tools"},
                                  20,
                                  timeout_ms,
                                  "the result has no tools array",
                                  "did not list its tools before --timeout"};
    mg_upstream_listing_t *l = NULL;
    size_t nl = 0;
    size_t total_tools = 0, big = 0;
    if (mg_upstream_list_all(&cfg, &lo, &l, &nl) != 0) {
        mg_config_dispose(&cfg);
        return 1;
    }
    for (size_t i = 0; i < nl; i++) {
        const char *err = l[i].error;
        json_t *t1 = err ? NULL : l[i].lists[0], *t2 = err ? NULL : l[i].lists[1];
        mg__audit_context(rep, l[i].cfg->name, t1, err, 1);
        mg__audit_supply(rep, l[i].cfg->name, t1, t2, err);
        total_tools += json_array_size(t1);
        big |= json_array_size(t1) > 30;
        if (l[i].cfg->remote != NULL)
            continue;
        /* Robustness over stdio: a fresh child, raw lines (stdio_probe.c). */
        json_t *srec =
            err ? json_pack("{s:s}", "error", err) : mg_audit_probe_stdio(l[i].cfg, probe_lim->timeout_ms);
        if (srec != NULL)
            mg_audit_stdio_verdict(rep, l[i].cfg->name, srec);
        json_decref(srec);
    }
    if (lazy)
        mg_audit_add(rep, "context.lazy", NULL, MG_AUDIT_PASS,
                     "gateway.tools.mode \"lazy\": clients see search_tools");
    else
        mg_audit_add(rep, "context.lazy", NULL, big || total_tools > 30 ? MG_AUDIT_WARN : MG_AUDIT_PASS,
                     "gateway.tools.mode \"all\" with %zu tools in the catalog%s", total_tools,
                     big || total_tools > 30 ? "" : " (not needed at this size)");
    mg_upstream_listings_free(l, nl);

    /* Remote servers the checks above allow: the URL probes. */
    for (size_t i = 0; i < cfg.nservers; i++) {
        const mg_server_config_t *s = &cfg.servers[i];
        if (s->disabled || s->remote == NULL)
            continue;
        if (mg_audit_remote_probe(rep, s, probe_lim, burst) != 0) {
            mg_config_dispose(&cfg);
            return 1;
        }
    }
    mg_config_dispose(&cfg);
    return 0;
}
