/*
 * main.c - the mcpgate command line: serve, check, --version, --help.
 *
 * `serve` validates the config (every problem reported, exit 2), refuses a non-loopback bind
 * without auth unless --allow-unauthenticated, listens, then starts upstreams in the background
 * (visible in /readyz). SIGTERM/SIGINT: drain (the listener stays open: /readyz 503, /healthz 200,
 * new /mcp requests 503 + Retry-After), let in-flight requests finish (limits.shutdownGraceMs), stop
 * children, exit 0.
 * Read next: http/server.h, gateway/gateway.h, config/config.h.
 */
#include "config/auth_config.h"
#include "cli/cli.h"
#include "common/err.h"
#include "common/json_alloc.h"
#include "common/log.h"
#include "config/config.h"
#include "gateway/gateway.h"
#include "http/server.h"
#include "session/shared.h"
#include "policy/hooks.h"
#include "policy/policy.h"
#include "upstream/sandbox.h"
#include "config/remote_config.h"
#include "upstream/listall.h"
#include "upstream/upstream.h"

#include <libgen.h>
#ifdef MG_SANITIZE
#include <sanitizer/lsan_interface.h>
#endif
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "mcpgate " MG_VERSION " - a production gateway for MCP servers\n"
    "\n"
    "Usage:\n"
    "  mcpgate serve [--config FILE] [--listen HOST:PORT] [--allow-unauthenticated] [--log-level LEVEL]\n"
    "                [--pid-file FILE]\n"
    "  mcpgate check [--config FILE] [--env-file FILE] [--probe]\n"
    "  mcpgate lock --config FILE [--diff | --update]\n"
    "  mcpgate --version | --help\n"
    "\n"
    "serve   Serve every MCP server of FILE (stdio and remote; Claude Desktop / Cursor / VS Code JSON)\n"
    "        as one Streamable HTTP endpoint at http://HOST:PORT/mcp. Without --config, an embedded\n"
    "        config fronts the bundled mcpgate-testserver. Default listen: 127.0.0.1:8080.\n"
    "check   Validate FILE and report every problem at once (exit 1 when there are problems).\n"
    "        --probe also starts every enabled server (children, remote sessions) and prints its\n"
    "        state, protocol era and tools count.\n"
    "SIGHUP (or `mcpgate reload`) re-reads FILE: see docs/operations.md \"Reload\".\n"
    "\n"
    "Options:\n"
    "  --config FILE             config file (env MCPGATE_CONFIG)\n"
    "  --listen HOST:PORT        listen address (env MCPGATE_LISTEN; overrides gateway.listen)\n"
    "  --allow-unauthenticated   allow a non-loopback listen address without auth configured\n"
    "  --log-level LEVEL         debug | info | warn | error (overrides gateway.logLevel)\n"
    "  --pid-file FILE           write the process id there (for `mcpgate reload --pid-file FILE`)\n"
    "  --env-file FILE           KEY=VALUE credentials, e.g. .env.mcp (env MCPGATE_ENV_FILE):\n"
    "                            ${env:X} falls back to it; GITHUB_MCP_TOKEN gives server github TOKEN\n"
    "\n"
    "Endpoints: /mcp (MCP), /healthz (alive), /readyz (upstream states), /metrics and /status (scope\n"
    "mcpgate:admin with auth, loopback clients without; gateway.metrics.listen moves them). Docs:\n"
    "docs/configuration.md, docs/operations.md\n";

typedef struct opts {
    const char *cmd;
    const char *config;
    const char *listen;
    const char *log_level;
    const char *env_file;
    const char *pid_file;
    int allow_unauth;
    int probe; /* check --probe */
} opts_t;

static uv_loop_t *loop;
static mg_gateway_t *gateway;
static mg_server_t *server;
static mg_server_t *admin_server; /* gateway.metrics.listen: /metrics and /status, NULL = on server */
static uv_signal_t sig_term, sig_int, sig_hup;
static const opts_t *serve_opts;   /* what `serve` was started with: a reload reads the same file */
static uv_fs_event_t config_watch; /* gateway.watchConfig */
static uv_timer_t config_settle;   /* a burst of file events becomes one reload */
static int watching;
static uv_fs_event_t lock_watch; /* the lockfile's directory, when it is not the config's */
static int lock_watching;
static char lock_dir[PATH_MAX]; /* the lockfile's directory and name ("" = no lockfile) */
static char lock_base[NAME_MAX + 1];
static int listen_loopback;      /* the main listener is on a loopback address (the auth rule of serve) */
static uv_prepare_t log_flusher; /* writes the deferred log lines before the loop blocks */

static void log_flush_cb(uv_prepare_t *h)
{
    mg_log_flush();
}
static int exit_code;

static int parse_args(int argc, char **argv, opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->config = getenv("MCPGATE_CONFIG");
    o->listen = getenv("MCPGATE_LISTEN");
    o->env_file = getenv("MCPGATE_ENV_FILE");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            if (mg_cli_commands[0].name != NULL) {
                fputs("\nMore commands (mcpgate COMMAND --help):\n", stdout);
                for (const mg_cli_command_t *c = mg_cli_commands; c->name != NULL; c++)
                    printf("  %-8s %s\n", c->name, c->summary);
            }
            exit(0);
        }
        if (strcmp(a, "--version") == 0) {
            printf("mcpgate %s\n", MG_VERSION);
            exit(0);
        }
        if (strcmp(a, "--allow-unauthenticated") == 0) {
            o->allow_unauth = 1;
            continue;
        }
        if (strcmp(a, "--probe") == 0) {
            o->probe = 1;
            continue;
        }
        const char *names[] = {"--config", "--listen", "--log-level", "--env-file", "--pid-file"};
        const char **slots[] = {&o->config, &o->listen, &o->log_level, &o->env_file, &o->pid_file};
        int matched = 0;
        for (int k = 0; k < 5; k++) {
            size_t n = strlen(names[k]);
            if (strncmp(a, names[k], n) == 0 && (a[n] == '\0' || a[n] == '=')) {
                if (a[n] == '=')
                    val = a + n + 1;
                else if (i + 1 < argc)
                    val = argv[++i];
                else {
                    fprintf(stderr, "mcpgate: %s needs a value (see mcpgate --help)\n", names[k]);
                    return 2;
                }
                *slots[k] = val;
                matched = 1;
                break;
            }
        }
        if (matched)
            continue;
        if (a[0] != '-' && o->cmd == NULL) {
            o->cmd = a;
            continue;
        }
        fprintf(stderr, "mcpgate: unknown argument '%s' (see mcpgate --help)\n", a);
        return 2;
    }
    if (o->cmd == NULL) {
        fputs(usage, stderr);
        return 2;
    }
    if (strcmp(o->cmd, "serve") != 0 && strcmp(o->cmd, "check") != 0) {
        fprintf(stderr, "mcpgate: unknown command '%s' (see mcpgate --help)\n", o->cmd);
        return 2;
    }
    return 0;
}

/* Why `serve` could not listen on LISTEN (a libuv error), and what to do about it. */
static void print_listen_error(const char *listen, int err, const char *why)
{
    const char *colon = strrchr(listen, ':');
    const char *port = colon ? colon + 1 : listen;
    fprintf(stderr, "mcpgate: cannot listen on %s: %s", listen, why);
    if (err == UV_EADDRINUSE)
        fprintf(stderr,
                " (another process listens there; `ss -ltnp 'sport = :%s'` shows which).\n"
                "  Stop it, or give mcpgate another address: --listen 127.0.0.1:8081, "
                "MCPGATE_LISTEN=127.0.0.1:8081 or \"gateway\": {\"listen\": ...}\n",
                port);
    else if (err == UV_EACCES)
        fprintf(stderr,
                " (ports below 1024 need privileges).\n  Use a port from 1024 up (--listen 127.0.0.1:8080), "
                "or grant CAP_NET_BIND_SERVICE (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE)\n");
    else if (err == UV_EADDRNOTAVAIL)
        fprintf(stderr,
                " (no interface of this machine has that address).\n  Listen on 127.0.0.1, 0.0.0.0 or "
                "an address `ip -brief address` lists (--listen or MCPGATE_LISTEN)\n");
    else
        fputc('\n', stderr);
}

static int load_config(const opts_t *o, mg_config_t *cfg)
{
    char dir[PATH_MAX];
    mg_config_self_dir(dir, sizeof dir);
    mg_config_errors_t errs = {0};
    mg_config_opts_t copts = {o->env_file};
    int r = o->config
                ? mg_config_load_opts(o->config, dir, &copts, cfg, &errs)
                : mg_config_parse_opts(mg_config_embedded_json(), "<embedded>", dir, &copts, cfg, &errs);
    if (r != 0) {
        mg_config_errors_print(stderr, "mcpgate", o->config ? o->config : "the embedded config", &errs);
        mg_config_errors_dispose(&errs);
        return 1;
    }
    mg_config_errors_dispose(&errs);
    return 0;
}

/* check --probe: starts every enabled server (listall.c), lists its tools, prints what it found.
 * Returns the number of servers that could not be listed. */
static int probe_servers(const mg_config_t *cfg)
{
    mg_upstream_list_opts_t lo = {"mcpgate-check",
                                  1,
                                  {"tools/list"},
                                  {"tools"},
                                  {"tools"},
                                  20,
                                  30000,
                                  "the result has no tools array",
                                  "did not answer within 30 s"};
    mg_upstream_listing_t *l = NULL;
    size_t n = 0;
    if (mg_upstream_list_all(cfg, &lo, &l, &n) != 0) {
        printf("  probe: out of memory\n");
        return 1;
    }
    int failed = 0;
    printf("  probe:\n");
    for (size_t i = 0; i < n; i++) {
        const char *kind = l[i].cfg->remote != NULL ? "remote" : "stdio";
        if (l[i].error != NULL) {
            printf("    %s: %s, state down: PROBLEM: %s\n", l[i].cfg->name, kind, l[i].error);
            failed++;
        } else {
            printf("    %s: %s, state ready, era %s%s%s, %zu tools\n", l[i].cfg->name, kind,
                   l[i].era ? l[i].era : "unknown", l[i].http ? ", over " : "", l[i].http ? l[i].http : "",
                   json_array_size(l[i].lists[0]));
        }
    }
    mg_upstream_listings_free(l, n);
    return failed;
}

static int cmd_check(const opts_t *o)
{
    mg_config_t cfg;
    if (load_config(o, &cfg) != 0)
        return 1;
    const char *name = o->config ? o->config : "<embedded>";
    printf("%s: parsed, %zu server%s (%zu enabled)\n", name, cfg.nservers, cfg.nservers == 1 ? "" : "s",
           mg_config_enabled_count(&cfg));
    int problems = 0;
    for (size_t i = 0; i < cfg.nservers; i++) {
        const mg_server_config_t *s = &cfg.servers[i];
        if (s->remote != NULL) { /* header values are secrets: their source and length only */
            const mg_remote_config_t *r = s->remote;
            int shown = (int)strcspn(r->url, "?#"); /* a query may hold a key: never printed */
            printf("  %s: remote %.*s%s%s, %s, isolation %s\n", s->name, shown, r->url,
                   r->url[shown] != '\0' ? "?..." : "", s->disabled ? " (disabled)" : "",
                   r->transport == MG_REMOTE_SSE    ? "HTTP+SSE (2024-11-05)"
                   : r->transport == MG_REMOTE_HTTP ? "Streamable HTTP"
                                                    : "transport probed",
                   mg_isolation_name(s->isolation));
            for (size_t k = 0; k < r->nheaders; k++)
                printf("    header %s: from %s, %zu bytes\n", r->headers[k].key, r->headers[k].source,
                       strlen(r->headers[k].value));
            for (size_t t = 0; t < r->ntenants; t++)
                for (size_t k = 0; k < r->tenants[t].nheaders; k++)
                    printf("    tenant %s header %s: from %s, %zu bytes\n", r->tenants[t].tenant,
                           r->tenants[t].headers[k].key, r->tenants[t].headers[k].source,
                           strlen(r->tenants[t].headers[k].value));
            if (r->auth != NULL) /* the secret: its source and length only */
                printf("    auth %s, token from %s, client %s, clientSecret from %s, %zu "
                       "bytes\n",
                       r->auth->exchange ? "token_exchange" : "client_credentials",
                       r->auth->token_url ? r->auth->token_url : r->auth->issuer, r->auth->client_id,
                       r->auth->secret_source ? r->auth->secret_source : "?",
                       r->auth->client_secret ? strlen(r->auth->client_secret) : 0);
            if (r->ca != NULL)
                printf("    ca %s\n", r->ca);
            continue;
        }
        printf("  %s: %s%s, isolation %s, instances %u\n", s->name, s->command,
               s->disabled ? " (disabled)" : "", mg_isolation_name(s->isolation), s->instances);
        /* The command as the spawner will resolve it (src/upstream/spawn_env.c): an error here is an
         * upstream that serve would not start (the others would). */
        char cwhy[1200];
        if (!s->disabled && mg_upstream_command_check(s, cwhy, sizeof cwhy) != 0) {
            printf("    PROBLEM: server '%s': %s\n", s->name, cwhy);
            problems++;
        }
        for (size_t k = 0; k < s->nenv; k++)
            printf("    env %s: from %s, %zu bytes\n", s->env[k].key, s->env[k].source,
                   strlen(s->env[k].value));
    }
    if (cfg.auth != NULL) /* never a hash or a secret */
        printf("  auth: %zu static token%s%s%s%s, %zu rule%s\n", cfg.auth->ntokens,
               cfg.auth->ntokens == 1 ? "" : "s", cfg.auth->oauth ? ", oauth issuer " : "",
               cfg.auth->oauth ? cfg.auth->oauth->issuer : "",
               cfg.auth->oauth && cfg.auth->oauth->introspection ? " (+ introspection)" : "",
               cfg.auth->nrules, cfg.auth->nrules == 1 ? "" : "s");
    printf("  transports: /mcp (Streamable HTTP)%s\n",
           cfg.legacy_sse ? " and the deprecated 2024-11-05 HTTP+SSE on /sse + /messages (gateway.legacySse)"
                          : "");
    if (cfg.tracing.endpoint != NULL) { /* the endpoint without any user:password@ part */
        const char *e = cfg.tracing.endpoint, *sep = strstr(e, "://");
        int scheme = sep ? (int)(sep - e) + 3 : 0;
        const char *host = e + scheme, *at = strchr(host, '@'), *slash = strchr(host, '/');
        if (at != NULL && (slash == NULL || at < slash))
            host = at + 1;
        printf("  tracing: OTLP/HTTP JSON to %.*s%s, sampleRatio %g\n", scheme, e, host,
               cfg.tracing.sample_ratio);
    }
    if (cfg.egress.nallow > 0) {
        printf("  egress: upstreams may reach");
        for (size_t k = 0; k < cfg.egress.nallow; k++)
            printf(" %s", cfg.egress.allow_text[k]);
        printf(" besides public addresses\n");
    }
    /* Pinning, scanning, credential sources, sandbox, rate limits, CORS (src/policy/check.c). */
    problems += mg_policy_check_report(&cfg, o->env_file, stdout);
    if (o->probe)
        problems += probe_servers(&cfg);
    if (problems > 0)
        printf("%s: %d problem%s (the lines marked PROBLEM above)\n", name, problems,
               problems == 1 ? "" : "s");
    else
        printf("%s: OK\n", name);
    mg_config_dispose(&cfg);
    return problems > 0 ? 1 : 0;
}

static void watch_lock(uv_loop_t *l, const mg_config_t *cfg);

/* SIGHUP, `mcpgate reload`, gateway.watchConfig: the file is read and validated whole; on any problem
 * the running configuration stays (gateway/reload.c logs and counts it). */
static void reload_config(const char *trigger)
{
    mg_log_json(MG_LOG_INFO, "reloading the configuration", json_pack("{s:s}", "trigger", trigger));
    mg_config_t *next = calloc(1, sizeof *next);
    char dir[PATH_MAX];
    mg_config_self_dir(dir, sizeof dir);
    mg_config_errors_t errs = {0};
    mg_config_opts_t copts = {serve_opts->env_file};
    int r = next == NULL ? MG_ENOMEM
            : serve_opts->config
                ? mg_config_load_opts(serve_opts->config, dir, &copts, next, &errs)
                : mg_config_parse_opts(mg_config_embedded_json(), "<embedded>", dir, &copts, next, &errs);
    const char *path = serve_opts->config ? serve_opts->config : "<embedded>";
    if (r != 0) {
        mg_gateway_reload_failed(gateway, path, &errs, r == MG_ENOMEM ? "out of memory" : NULL);
        mg_config_errors_dispose(&errs);
        free(next);
        return;
    }
    mg_config_errors_dispose(&errs);
    if (!listen_loopback && !serve_opts->allow_unauth && !next->allow_unauthenticated && next->auth == NULL) {
        /* the start's rule holds for a reload: a reload never opens the gateway to everyone */
        mg_gateway_reload_failed(gateway, path, NULL,
                                 "gateway.auth is gone but the gateway listens on a non-loopback address: "
                                 "anyone who can reach it could call every tool; keep gateway.auth, or "
                                 "restart with --allow-unauthenticated if something in front authenticates");
        mg_config_dispose(next);
        free(next);
        return;
    }
    char pwhy[600];
    if (mg_policy_validate(next, pwhy, sizeof pwhy) != 0) { /* lockfile, scan rules */
        mg_gateway_reload_failed(gateway, path, NULL, pwhy);
        mg_config_dispose(next);
        free(next);
        return;
    }
    mg_log_level_t lvl;
    if (serve_opts->log_level == NULL && next->log_level != NULL &&
        mg_log_level_parse(next->log_level, &lvl) == 0)
        mg_log_set_level(lvl);
    if (watching)
        watch_lock(loop, next);
    mg_gateway_reload(gateway, next); /* takes next */
}

static void on_hup(uv_signal_t *h, int signum)
{
    reload_config("SIGHUP");
}

static void settle_cb(uv_timer_t *t)
{
    reload_config("file changed");
}

static void watch_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
    const char *base = strrchr(serve_opts->config, '/');
    base = base ? base + 1 : serve_opts->config;
    if (status == 0 && filename != NULL) {
        int is_config = h == &config_watch && strcmp(filename, base) == 0;
        int is_lock = lock_base[0] != '\0' && strcmp(filename, lock_base) == 0 &&
                      (h == &lock_watch || !lock_watching); /* beside the config, or in its own directory */
        if (!is_config && !is_lock)
            return; /* another file of the directory */
    }
    uv_timer_start(&config_settle, settle_cb, 300, 0);
}

/* gateway.watchConfig: the lockfile of cfg is watched too (`mcpgate lock --update` rewrites it by
 * renaming): through the config's directory watch when it sits there, else its own directory's.
 * Called at start and after each reload (gateway.lockFile may have moved it). */
static void watch_lock(uv_loop_t *l, const mg_config_t *cfg)
{
    char *path = mg_policy_lock_path(cfg);
    char dirbuf[PATH_MAX], cdir[PATH_MAX], lbuf[PATH_MAX];
    snprintf(dirbuf, sizeof dirbuf, "%s", serve_opts->config);
    snprintf(cdir, sizeof cdir, "%s", dirname(dirbuf));
    snprintf(lbuf, sizeof lbuf, "%s", path ? path : "");
    const char *ldir = path ? dirname(lbuf) : "";
    if (path != NULL) {
        const char *b = strrchr(path, '/');
        snprintf(lock_base, sizeof lock_base, "%s", b ? b + 1 : path);
    } else {
        lock_base[0] = '\0';
    }
    free(path);
    int elsewhere = lock_base[0] != '\0' && strcmp(ldir, cdir) != 0;
    if (lock_watching && (!elsewhere || strcmp(ldir, lock_dir) != 0)) {
        uv_fs_event_stop(&lock_watch);
        lock_watching = 0;
    }
    if (!elsewhere || lock_watching)
        return;
    snprintf(lock_dir, sizeof lock_dir, "%s", ldir);
    static int inited;
    if (!inited)
        uv_fs_event_init(l, &lock_watch);
    inited = 1;
    int r = uv_fs_event_start(&lock_watch, watch_cb, lock_dir, 0);
    if (r != 0) {
        mg_log_json(MG_LOG_WARN,
                    "gateway.watchConfig: cannot watch the lockfile's directory; reload with SIGHUP after "
                    "mcpgate lock",
                    json_pack("{s:s,s:s}", "directory", lock_dir, "error", uv_strerror(r)));
        return;
    }
    uv_unref((uv_handle_t *)&lock_watch);
    lock_watching = 1;
}

/* gateway.watchConfig: the config's directory is watched (editors replace the file by renaming),
 * and the lockfile's (watch_lock). */
static void watch_config(uv_loop_t *l, const mg_config_t *cfg)
{
    char dirbuf[PATH_MAX];
    snprintf(dirbuf, sizeof dirbuf, "%s", serve_opts->config);
    const char *dir = dirname(dirbuf);
    watch_lock(l, cfg);
    uv_timer_init(l, &config_settle);
    uv_unref((uv_handle_t *)&config_settle);
    uv_fs_event_init(l, &config_watch);
    int r = uv_fs_event_start(&config_watch, watch_cb, dir, 0);
    if (r != 0) {
        mg_log_json(MG_LOG_WARN,
                    "gateway.watchConfig: cannot watch the config's directory; reload with SIGHUP",
                    json_pack("{s:s,s:s}", "directory", dir, "error", uv_strerror(r)));
        return;
    }
    uv_unref((uv_handle_t *)&config_watch);
    watching = 1;
}

static void shutdown_done_cb(mg_gateway_t *gw, void *data)
{
    mg_log(MG_LOG_INFO, "stopped");
    if (serve_opts != NULL && serve_opts->pid_file != NULL)
        unlink(serve_opts->pid_file);
    uv_stop(loop);
}

static void on_signal(uv_signal_t *h, int signum)
{
    static int count;
    if (++count > 1) {
        mg_log(MG_LOG_WARN, "second signal: exiting now");
        exit(1);
    }
    mg_log_json(MG_LOG_INFO, "shutting down",
                json_pack("{s:s}", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"));
    uv_signal_stop(&sig_hup); /* no reload while stopping */
    if (watching)
        uv_fs_event_stop(&config_watch);
    if (lock_watching)
        uv_fs_event_stop(&lock_watch);
    mg_server_drain(server); /* keeps accepting: /readyz 503, /healthz 200, /mcp 503 until exit */
    if (admin_server != NULL)
        mg_server_drain(admin_server);
    const mg_config_t *cfg = h->data;
    mg_gateway_shutdown(gateway, cfg->limits.shutdown_grace_ms, shutdown_done_cb, NULL);
}

static int cmd_serve(const opts_t *o)
{
    mg_config_t cfg;
    if (load_config(o, &cfg) != 0)
        return 2;
    if (o->log_level != NULL || cfg.log_level != NULL) {
        mg_log_level_t lvl;
        const char *l = o->log_level ? o->log_level : cfg.log_level;
        if (mg_log_level_parse(l, &lvl) != 0) {
            fprintf(stderr, "mcpgate: --log-level must be debug, info, warn or error (got '%s')\n", l);
            mg_config_dispose(&cfg);
            return 2;
        }
        mg_log_set_level(lvl);
    }
    const char *listen = o->listen ? o->listen : cfg.listen ? cfg.listen : "127.0.0.1:8080";
    struct sockaddr_storage addr;
    int loopback = 0;
    const char *why = NULL;
    if (mg_server_resolve(listen, &addr, &loopback, &why) != 0) {
        fprintf(stderr, "mcpgate: --listen %s: %s\n", listen, why);
        mg_config_dispose(&cfg); /* ASan builds report what is not freed at exit, and exit 1 */
        return 2;
    }
    listen_loopback = loopback;
    /* A valid gateway.auth (checked by the config parser) authenticates every request. */
    if (!loopback && !o->allow_unauth && !cfg.allow_unauthenticated && cfg.auth == NULL) {
        fprintf(
            stderr,
            "mcpgate: refusing to listen on %s without authentication: anyone who can reach it could call "
            "every tool.\n  Configure gateway.auth, listen on 127.0.0.1, or pass --allow-unauthenticated if "
            "something in front of mcpgate authenticates.\n",
            listen);
        mg_config_dispose(&cfg);
        return 2;
    }
    /* gateway.sessions.store, overridden by MCPGATE_SESSION_STORE: "memory", a redis URL or a
     * PostgreSQL spec (session/shared.h). */
    const char *store = getenv("MCPGATE_SESSION_STORE");
    if (store == NULL || store[0] == '\0')
        store = cfg.sessions.store;
    char swhy[400];
    if (store != NULL && mg_session_store_check(store, swhy, sizeof swhy) != 0) {
        fprintf(stderr, "mcpgate: %s: not a valid session store: %s\n",
                getenv("MCPGATE_SESSION_STORE") && getenv("MCPGATE_SESSION_STORE")[0]
                    ? "MCPGATE_SESSION_STORE"
                    : "gateway.sessions.store",
                swhy);
        mg_config_dispose(&cfg);
        return 2;
    }
    char pwhy[600];
    if (mg_policy_validate(&cfg, pwhy, sizeof pwhy) != 0) { /* lockfile, scan rules (src/policy/) */
        fprintf(stderr, "mcpgate: %s\n", pwhy);
        mg_config_dispose(&cfg);
        return 2;
    }
    if (o->pid_file != NULL) { /* for `mcpgate reload --pid-file`; removed at exit */
        FILE *pf = fopen(o->pid_file, "w");
        int bad = pf == NULL || fprintf(pf, "%d\n", (int)getpid()) < 0;
        if (pf != NULL && fclose(pf) != 0)
            bad = 1;
        if (bad) {
            fprintf(stderr, "mcpgate: --pid-file %s: cannot write it (does its directory exist?)\n",
                    o->pid_file);
            mg_config_dispose(&cfg);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    if (mg_gateway_new(loop, &cfg, &gateway) != 0) {
        fprintf(stderr, "mcpgate: out of memory\n");
        if (o->pid_file != NULL)
            unlink(o->pid_file);
        return 1;
    }
    char jwhy[600];
    if (mg_gateway_journal_open(gateway, jwhy, sizeof jwhy) != 0) { /* gateway.journal */
        fprintf(stderr, "mcpgate: gateway.journal: %s\n", jwhy);
        mg_config_dispose(&cfg); /* a refusal exits 2, leak-free (LeakSanitizer would make it 1) */
        if (o->pid_file != NULL)
            unlink(o->pid_file);
        return 2;
    }
    mg_server_opts_t sopts = mg_gateway_server_opts(gateway, &cfg);
    if (cfg.metrics_listen != NULL) { /* gateway.metrics.listen: the admin routes move there */
        struct sockaddr_storage aaddr;
        int aloop = 0;
        if (mg_server_resolve(cfg.metrics_listen, &aaddr, &aloop, &why) != 0) {
            fprintf(stderr, "mcpgate: gateway.metrics.listen %s: %s\n", cfg.metrics_listen, why);
            mg_config_dispose(&cfg);
            if (o->pid_file != NULL)
                unlink(o->pid_file);
            return 2;
        }
        mg_server_opts_t aopts = sopts;
        aopts.routes = MG_SERVER_ROUTES_ADMIN;
        sopts.routes = MG_SERVER_ROUTES_PUBLIC;
        int ar = mg_server_start(loop, &aopts, (struct sockaddr *)&aaddr, aloop, &admin_server, &why);
        if (ar != 0) {
            print_listen_error(cfg.metrics_listen, ar, why);
            if (o->pid_file != NULL)
                unlink(o->pid_file);
            return 1;
        }
        mg_log_json(MG_LOG_INFO, "admin listener",
                    json_pack("{s:s,s:i,s:s}", "address", cfg.metrics_listen, "port",
                              mg_server_port(admin_server), "routes", "/metrics /status /healthz /readyz"));
    }
    int r = mg_server_start(loop, &sopts, (struct sockaddr *)&addr, loopback, &server, &why);
    if (r != 0) {
        print_listen_error(listen, r, why);
        if (o->pid_file != NULL)
            unlink(o->pid_file);
        return 1;
    }
    char bound[300];
    const char *colon = strrchr(listen, ':');
    snprintf(bound, sizeof bound, "%.*s:%d", colon ? (int)(colon - listen) : 0, listen,
             mg_server_port(server));
    /* a shared store: sessions shared with other replicas (advertised at the bound address by default) */
    if (mg_gateway_sessions_init(gateway, store, bound, swhy, sizeof swhy) != 0) {
        fprintf(stderr, "mcpgate: session store: %s\n", swhy);
        mg_config_dispose(&cfg); /* a refusal exits 2, leak-free (LeakSanitizer would make it 1) */
        if (o->pid_file != NULL)
            unlink(o->pid_file);
        return 2;
    }
    mg_log_json(MG_LOG_INFO, "listening",
                json_pack("{s:s,s:i,s:s,s:I}", "address", listen, "port", mg_server_port(server), "endpoint",
                          "/mcp", "upstreams", (json_int_t)mg_config_enabled_count(&cfg)));
    mg_gateway_start(gateway);
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    sig_term.data = sig_int.data = &cfg;
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    serve_opts = o;
    uv_signal_init(loop, &sig_hup);
    uv_signal_start(&sig_hup, on_hup, SIGHUP);
    uv_unref((uv_handle_t *)&sig_hup);
    if (cfg.watch_config && o->config != NULL)
        watch_config(loop, &cfg);

    /* Log lines of one loop iteration go out in one write(2) (common/log.h), flushed before the
     * loop waits for events, at exit() and below. */
    uv_prepare_init(loop, &log_flusher);
    uv_prepare_start(&log_flusher, log_flush_cb);
    uv_unref((uv_handle_t *)&log_flusher);
    atexit(mg_log_flush);
    mg_log_defer(1);
    uv_run(loop, UV_RUN_DEFAULT);
    mg_log_defer(0);
    fflush(stdout);
#ifdef MG_SANITIZE
    /* _exit() skips LeakSanitizer's atexit check: run it here. What is still reachable (h2o's
     * context, the loop, the config on this stack) is not a leak; anything unreachable is, and
     * makes the process exit non-zero (ASan: 1) so a test that stops it fails. */
    fflush(stderr);
    __lsan_do_leak_check();
#endif
    /* Children are reaped and every response is flushed; the process exits without tearing down
     * h2o's internal state (it has no public dispose for a libuv context in this version). */
    _exit(exit_code);
}

int main(int argc, char **argv)
{
    mg_json_alloc_install(); /* before anything uses jansson (common/json_alloc.h) */
    /* Internal: the exec wrapper of sandboxed children (src/upstream/sandbox.h), not a user command. */
    if (argc > 1 && strcmp(argv[1], "__sandbox-exec") == 0)
        return mg_sandbox_exec_main(argc - 1, argv + 1);
    if (argc > 1) {
        for (const mg_cli_command_t *c = mg_cli_commands; c->name != NULL; c++)
            if (strcmp(argv[1], c->name) == 0)
                return c->run(argc - 1, argv + 1);
    }
    opts_t o;
    int r = parse_args(argc, argv, &o);
    if (r != 0)
        return r;
    if (strcmp(o.cmd, "check") == 0)
        return cmd_check(&o);
    return cmd_serve(&o);
}
