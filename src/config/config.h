/*
 * config.h - the configuration file, parsed and validated before anything starts.
 *
 * Input is the `mcpServers` JSON that Claude Desktop, Cursor and VS Code users already have
 * (command, args, env, cwd, disabled; VS Code's top-level "servers" key is accepted too) plus an
 * optional "gateway" object with mcpgate's own settings. Strings may contain ${env:NAME} and
 * ${file:/path}; a missing or empty expansion is an error naming server, key and variable.
 * Parsing never stops at the first problem: every problem is collected in mg_config_errors_t so
 * `mcpgate check` can report them all at once. The runtime never re-reads the file.
 * Read next: docs/configuration.md (the reference for every key below).
 */
#ifndef MG_CONFIG_H
#define MG_CONFIG_H

#include <jansson.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

/* "isolation": who shares a server's children. "tenant": one pool per tenant (gateway.auth). */
typedef enum mg_isolation {
    MG_ISOLATION_SHARED = 0,
    MG_ISOLATION_SESSION,
    MG_ISOLATION_TENANT
} mg_isolation_t;

/* "shared" / "session" / "tenant". */
const char *mg_isolation_name(mg_isolation_t iso);

typedef struct mg_kv {
    char *key;
    char *value;
    /* Where the value came from: "literal", "env:NAME", "file:/path", "self_dir", or several joined
     * by '+' for a mixed string ("literal+env:TOKEN"); never the value itself. */
    char *source;
} mg_kv_t;

/* Tool allow/deny globs ('*' any run of characters, '?' one character; case-sensitive). A name
 * passes when allow is empty or one allow glob matches, and no deny glob matches (deny wins).
 * See docs/tool-search.md. Vectors are NULL-terminated when non-NULL. */
typedef struct mg_tool_filter {
    char **allow;
    size_t nallow;
    char **deny;
    size_t ndeny;
} mg_tool_filter_t;

typedef enum mg_tools_mode { MG_TOOLS_ALL = 0, MG_TOOLS_LAZY = 1, MG_TOOLS_INHERIT = -1 } mg_tools_mode_t;

/* "gateway.tools.profiles.NAME": selected per session at initialize (docs/tool-search.md). */
typedef struct mg_tool_profile {
    char *name;
    mg_tool_filter_t filter; /* on exposed names, on top of gateway.tools allow/deny */
    mg_tools_mode_t mode;    /* MG_TOOLS_INHERIT = gateway.tools.mode */
    char **always;           /* replaces gateway.tools.always when has_always */
    size_t nalways;
    int has_always;
} mg_tool_profile_t;

/* One entry of "gateway.tools.tenants" or "gateway.tools.scopes" (key "*" = tenants without one). */
typedef struct mg_tool_rule {
    char *key;
    mg_tool_filter_t filter;
} mg_tool_rule_t;

/* "gateway.tools": what the catalog exposes and how (src/toolsearch/, docs/tool-search.md). */
typedef struct mg_tools_config {
    mg_tools_mode_t mode;        /* "mode": "all" (default) | "lazy" */
    char **always;               /* "always": exposed-name globs listed from the start in lazy mode */
    size_t nalways;              /*   (and marked anthropic/alwaysLoad in both modes) */
    mg_tool_filter_t filter;     /* "allow"/"deny" on exposed names */
    int compact;                 /* "compact": description compaction in lists and search results */
    unsigned search_limit;       /* "searchLimit": default results per search, 1..50; 0 = 5 */
    mg_tool_profile_t *profiles; /* "profiles" */
    size_t nprofiles;
    char *default_profile;   /* "defaultProfile": profile of sessions that select none */
    mg_tool_rule_t *tenants; /* "tenants": per-tenant filters (principal from gateway.auth) */
    size_t ntenants;
    mg_tool_rule_t *scopes; /* "scopes": a scope grants the tools its filter passes */
    size_t nscopes;
} mg_tools_config_t;

typedef struct mg_server_config {
    char *name;    /* key in mcpServers */
    char *command; /* executable; resolved with PATH by the spawner, never through a shell */
    char **args;   /* argv[1..], NULL-terminated; nargs entries (never NULL after a parse) */
    size_t nargs;
    mg_kv_t *env; /* declared env only, in file order (NULL when nenv == 0) */
    size_t nenv;
    char *cwd;                         /* NULL = gateway's cwd */
    int disabled;                      /* "disabled": true -> parsed and checked, never started */
    unsigned instances;                /* "instances": children in the shared pool, 1..64, default 1 */
    mg_isolation_t isolation;          /* "isolation": "shared" (default) | "session" | "tenant" */
    uint64_t request_timeout_ms;       /* "timeoutMs": per-request timeout; the parser fills in
                                          gateway.limits.requestTimeoutMs when absent */
    mg_tool_filter_t tools;            /* "tools": {"allow","deny"} on the server's own tool names
                                          (also "includeTools" / "excludeTools" / "disabledTools") */
    struct mg_server_policy *policy;   /* "pinning" / "scan" overrides (policy_config.h), NULL = none */
    struct mg_sandbox_config *sandbox; /* "sandbox" (sandbox_config.h), NULL = none */
    json_t *raw; /* the entry as written (a reference into the parsed file): what a reload compares,
                    whatever keys it has (mg_config_server_same) */
    struct mg_remote_config *remote; /* "url" & co. (remote_config.h): a remote server, reached over
                                        HTTP (command is then NULL); NULL = a stdio server */
} mg_server_config_t;

typedef struct mg_limits {
    size_t max_body_bytes;              /* "maxBodyBytes", default 4 MiB */
    unsigned max_json_depth;            /* "maxJsonDepth", default 64 */
    unsigned max_batch_items;           /* "maxBatchItems": messages in one JSON-RPC batch, default 100 */
    unsigned max_json_values;           /* "maxJsonValues": elements and members in one body, default
                                           100000 (bounds the memory one request can make jansson use) */
    unsigned max_sessions;              /* "maxSessions", default 10000 */
    uint64_t session_ttl_ms;            /* "sessionIdleTtlMs", default 30 min */
    unsigned max_inflight_per_session;  /* "maxInflightPerSession", default 64 */
    unsigned max_inflight_per_upstream; /* "maxInflightPerUpstream", default 32768 */
    unsigned sse_replay_events;         /* "sseReplayEvents", per stream, default 64 */
    size_t sse_replay_bytes;            /* "sseReplayBytes", per stream, default 1 MiB */
    size_t max_line_bytes;              /* "maxUpstreamLineBytes", default 16 MiB */
    uint64_t request_timeout_ms;        /* "requestTimeoutMs", default 60 s (reset by progress) */
    uint64_t max_request_ms;            /* "maxRequestMs", hard cap even with progress, default 10 min */
    uint64_t shutdown_grace_ms;         /* "shutdownGraceMs", default 10 s */
    uint64_t http_idle_timeout_ms;      /* "httpIdleTimeoutMs": a connection that has not sent a whole
                                           request within this long is closed (slow or idle clients),
                                           default 10 s */
} mg_limits_t;

/* "gateway.sessions": the session record store and replica-to-replica settings (docs/configuration.md,
 * docs/operations.md). Strings are NULL when absent. */
typedef struct mg_sessions_config {
    char *store;             /* "store": "memory" (default), a redis URL or a PostgreSQL spec
                                (src/session/shared.h); MCPGATE_SESSION_STORE overrides it */
    char *password;          /* "password": Redis AUTH / PostgreSQL password (overrides the spec's) */
    char *sentinel_password; /* "sentinelPassword": AUTH for the sentinels */
    char *key_prefix;        /* "keyPrefix": default "mcpgate:" */
    char *advertise;         /* "advertise": host:port other replicas use to reach this one
                                (MCPGATE_ADVERTISE); default: listen, or this host's first address */
    char *secret;            /* "secret": shared by the replicas; authenticates forwarded calls */
    uint64_t timeout_ms;     /* "timeoutMs": connect and per-command deadline, default 2000 */
    int no_migrate;          /* "migrate": false (PostgreSQL: only check the schema version; create
                                and upgrade it with `mcpgate store migrate`); default true */
} mg_sessions_config_t;

/* "gateway.tracing": OpenTelemetry traces over OTLP/HTTP (src/trace/trace.h). endpoint NULL = off. */
typedef struct mg_tracing_config {
    char *endpoint;      /* "endpoint": the collector's OTLP/HTTP traces URL */
    double sample_ratio; /* "sampleRatio": 0..1, share of new traces recorded; default 1 */
    int protobuf;        /* "protocol": "http/protobuf" (1) or "http/json" (0, the default) */
    mg_kv_t *headers;    /* "headers": sent with every export (collector credentials); secrets */
    size_t nheaders;
} mg_tracing_config_t;
/* "gateway.journal": the tamper-evident call journal (obs/journal.h, docs/operations.md). */
typedef struct mg_journal_config {
    char *path;                /* "path": the live file; NULL = no journal */
    int arguments;             /* "arguments": write each call's arguments (default false: only their hash) */
    char *hmac_key;            /* "hmacKey": checkpoint HMAC key, >= 16 bytes (a secret; use ${file:...}) */
    uint64_t max_bytes;        /* "maxBytes": rotate the live file past this, default 100 MiB; 0 = never */
    unsigned checkpoint_every; /* "checkpointEvery": lines between checkpoints, default 1000 */
    uint64_t checkpoint_ms;    /* "checkpointIntervalMs": a checkpoint this long after a line, default 10 s */
    uint64_t queue_bytes;      /* "queueBytes": lines waiting for the disk, default 16 MiB */
} mg_journal_config_t;
/* "gateway.tasks": long tool calls run as tasks (docs/tasks.md, gateway/tasks.c). */
typedef struct mg_tasks_config {
    int enabled;                /* "enabled", default true: the gateway offers tasks to clients */
    uint64_t ttl_ms;            /* "ttlMs": how long a task and its outcome stay readable, default 1 h */
    uint64_t poll_interval_ms;  /* "pollIntervalMs": suggested polling interval, default 1000 */
    unsigned max_per_principal; /* "maxPerPrincipal": unfinished tasks per principal, default 16 */
    size_t max_result_bytes;    /* "maxResultBytes": largest outcome kept, default 1 MiB */
    uint64_t call_timeout_ms;   /* "callTimeoutMs": a task's call's idle timeout, default 1 h */
    size_t max_stored_bytes;    /* "maxStoredBytes": one process's records, default 256 MiB */
} mg_tasks_config_t;

typedef struct mg_config {
    char *path;                  /* file it came from, or "<embedded>" */
    char *listen;                /* "gateway.listen", default "127.0.0.1:8080" */
    int allow_unauthenticated;   /* "gateway.allowUnauthenticated" (CLI flag also sets it) */
    int auth_configured;         /* set when gateway.auth is present and valid */
    int legacy_sse;              /* "gateway.legacySse": serve the 2024-11-05 HTTP+SSE transport on
                                    /sse and /messages (gateway/era_sse.c); default off */
    struct mg_auth_config *auth; /* "gateway.auth" parsed (auth_config.h), NULL = none */
    char **allowed_origins;      /* "gateway.allowedOrigins": extra allowed Origin values */
    size_t nallowed_origins;
    char **allowed_hosts; /* "gateway.allowedHosts": extra allowed Host values */
    size_t nallowed_hosts;
    char *log_level;           /* "gateway.logLevel", default "info" */
    char *namespace_separator; /* "gateway.namespaceSeparator", default "__" */
    char *request_state_key;   /* "gateway.requestStateKey": 32-byte key sealing 2026-07-28 requestState
                                  (hex or base64); NULL = random per process */
    mg_limits_t limits;        /* "gateway.limits" */
    mg_tools_config_t tools;   /* "gateway.tools" */
    /* "gateway.sessions" */
    mg_sessions_config_t sessions;
    mg_tracing_config_t tracing; /* "gateway.tracing" */
    mg_tasks_config_t tasks;     /* "gateway.tasks" */
    mg_server_config_t *servers; /* in file order */
    size_t nservers;
    struct mg_policy_config *policy; /* pinning, scan, cors, rateLimits (policy_config.h); never NULL
                                        after a successful parse */
    char *env_file;                  /* --env-file given to the parse (mg_config_opts_t), NULL = none */
    char **audit_publishers;         /* "gateway.audit.trustedPublishers": package scopes/names
                                        `mcpgate audit --config` trusts; NULL = the default list */
    size_t naudit_publishers;
    mg_journal_config_t journal; /* "gateway.journal" (config_ops.c) */
    char *metrics_listen;        /* "gateway.metrics.listen": /metrics and /status on their own
                                    address (host:port), NULL = on the main listener */
    int watch_config;            /* "gateway.watchConfig": reload when the file changes */
    json_t *raw_gateway;         /* the "gateway" object as written (a reference), NULL = none */
    char digest[20];             /* first 16 hex digits of SHA-256 of the text parsed */
    /* "gateway.egress" (remote_config.h): where remote upstreams may connect */
    struct mg_egress_config {
        struct mg_cidr *allow; /* "allowCidrs" parsed */
        size_t nallow;
        char **allow_text;
    } egress;
} mg_config_t;

typedef struct mg_config_errors {
    char **msgs; /* each a full sentence naming server/key/variable */
    size_t count;
} mg_config_errors_t;

/* Built-in configuration used by `mcpgate serve` without --config: fronts build/mcpgate-testserver
 * found beside the running binary (argv0_dir). */
const char *mg_config_embedded_json(void);

/*
 * Parses JSON text into *out. Returns 0 when valid; MG_ECONFIG when any problem was found, in which
 * case errs lists every problem (caller frees with mg_config_errors_dispose) and *out is disposed.
 * `origin` names the source in messages ("servers.json" or "<embedded>").
 * `self_dir`: directory of the mcpgate binary; "${self_dir}" in strings expands to it.
 * *out and *errs are overwritten (not freed) first; errs may be NULL (problems are then dropped).
 * Comments and trailing commas (JSONC, as VS Code writes) are accepted. MG_ENOMEM when memory ran
 * out (*out disposed; errs may be incomplete and must still be disposed); MG_EINVAL for NULL text/out.
 * Every message starts with "<origin>: " and never contains the value of a variable or file.
 */
int mg_config_parse(const char *json_text, const char *origin, const char *self_dir, mg_config_t *out,
                    mg_config_errors_t *errs);
/* Reads the file then mg_config_parse(). A missing/unreadable file is one error in errs. */
int mg_config_load(const char *path, const char *self_dir, mg_config_t *out, mg_config_errors_t *errs);

/* Options of a parse beyond the file itself. */
typedef struct mg_config_opts {
    /* --env-file: KEY=VALUE lines (envfile.h). ${env:NAME} falls back to it when NAME is
     * unset in the gateway's environment, and {SERVICE}_MCP_{KEY} entries add KEY to that server's env.
     * Precedence and errors: docs/configuration.md#credentials. NULL = none. */
    const char *env_file;
} mg_config_opts_t;

/* mg_config_parse / mg_config_load with options (opts may be NULL). */
int mg_config_parse_opts(const char *json_text, const char *origin, const char *self_dir,
                         const mg_config_opts_t *opts, mg_config_t *out, mg_config_errors_t *errs);
int mg_config_load_opts(const char *path, const char *self_dir, const mg_config_opts_t *opts,
                        mg_config_t *out, mg_config_errors_t *errs);

/* 1 when a and b are the same server entry for a reload: the entries as written are equal (any key,
 * any order) and so are the values their ${...} references expanded to (command, args, env, cwd). */
int mg_config_server_same(const mg_server_config_t *a, const mg_server_config_t *b);

/* Number of servers with disabled == 0. */
size_t mg_config_enabled_count(const mg_config_t *cfg);

void mg_config_dispose(mg_config_t *cfg);
void mg_config_errors_dispose(mg_config_errors_t *errs);
/* Prints "<prefix>: <what> has N problem(s):" and a "  - <problem>" line for each to f (the
 * subcommands' report of a config that does not load). */
void mg_config_errors_print(FILE *f, const char *prefix, const char *what, const mg_config_errors_t *errs);
/* The directory of the running mcpgate binary (what ${self_dir} expands to); "." when unknown. */
void mg_config_self_dir(char *out, size_t n);

/* Defaults applied by the parser; exposed for tests and docs. */
void mg_limits_default(mg_limits_t *l);

/*
 * Splits a listen address as validated by the parser ("127.0.0.1:8080", "[::1]:8080",
 * "localhost:8080") into host (without brackets, NUL-terminated, must fit in hostcap) and port
 * (1..65535). Returns 0 or MG_EINVAL.
 */
int mg_config_listen_parse(const char *listen, char *host, size_t hostcap, unsigned *port);

#endif
