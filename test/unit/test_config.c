/*
 * test_config.c - unit tests of the config module (src/config): client configs read as they are,
 * ${...} expansion and its errors, every problem reported at once, defaults and limits.
 * Each test parses a JSON text embedded here with origin "t.json" and self_dir "/opt/mg", so every
 * message starts with "t.json: ". Read next: src/config/config.h, docs/configuration.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "config/config.h"

/* ---------------------------------------------------------------- helpers */

static int parse(const char *json, mg_config_t *cfg, mg_config_errors_t *errs)
{
    return mg_config_parse(json, "t.json", "/opt/mg", cfg, errs);
}

static void dump(const mg_config_errors_t *e)
{
    for (size_t i = 0; i < e->count; i++) {
        fprintf(stderr, "    [%zu] %s\n", i, e->msgs[i]);
    }
}

/* Parses text that must be valid; the caller disposes cfg. */
static void parse_ok(const char *json, mg_config_t *cfg)
{
    mg_config_errors_t errs;
    int rc = parse(json, cfg, &errs);
    if (rc != 0) {
        dump(&errs);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(errs.count, 0);
    mg_config_errors_dispose(&errs);
}

/* Parses text that must be invalid; returns the number of problems (errs kept for the caller). */
static size_t parse_bad(const char *json, mg_config_errors_t *errs)
{
    mg_config_t cfg;
    int rc = parse(json, &cfg, errs);
    assert_int_equal(rc, MG_ECONFIG);
    assert_null(cfg.servers); /* disposed */
    assert_null(cfg.path);
    assert_true(errs->count > 0);
    return errs->count;
}

/* Messages containing every one of the given substrings (NULL-terminated list). */
static size_t count_with(const mg_config_errors_t *e, ...)
{
    size_t n = 0;
    for (size_t i = 0; i < e->count; i++) {
        va_list ap;
        va_start(ap, e);
        int all = 1;
        for (const char *s = va_arg(ap, const char *); s != NULL; s = va_arg(ap, const char *)) {
            all &= strstr(e->msgs[i], s) != NULL;
        }
        va_end(ap);
        n += (size_t)all;
    }
    return n;
}

/* Asserts exactly `count` problems, each found by count_with with the substrings; dumps otherwise. */
#define assert_one_error(json, ...)                                                                          \
    do {                                                                                                     \
        mg_config_errors_t errs_;                                                                            \
        size_t n_ = parse_bad((json), &errs_);                                                               \
        size_t hit_ = count_with(&errs_, __VA_ARGS__, (const char *)NULL);                                   \
        if (n_ != 1 || hit_ != 1) {                                                                          \
            dump(&errs_);                                                                                    \
        }                                                                                                    \
        assert_int_equal(n_, 1);                                                                             \
        assert_int_equal(hit_, 1);                                                                           \
        mg_config_errors_dispose(&errs_);                                                                    \
    } while (0)

static char *write_temp(const char *content)
{
    char tmpl[] = "/tmp/mg-test-config-XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    size_t len = strlen(content);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return strdup(tmpl);
}

static const mg_kv_t *env_get(const mg_server_config_t *s, const char *key)
{
    for (size_t i = 0; i < s->nenv; i++) {
        if (strcmp(s->env[i].key, key) == 0) {
            return &s->env[i];
        }
    }
    fail_msg("env %s not found", key);
    return NULL;
}

/* ---------------------------------------------------------------- client configs as they are */

static void test_claude_desktop_example(void **state)
{
    const char *json =
        "{\n"
        "  \"globalShortcut\": \"Alt+Space\",\n"
        "  \"mcpServers\": {\n"
        "    \"filesystem\": {\n"
        "      \"command\": \"npx\",\n"
        "      \"args\": [\"-y\", \"@modelcontextprotocol/server-filesystem\",\n"
        "               \"/Users/username/Desktop\", \"/Users/username/Downloads\"]\n"
        "    },\n"
        "    \"github\": {\n"
        "      \"command\": \"npx\",\n"
        "      \"args\": [\"-y\", \"@modelcontextprotocol/server-github\"],\n"
        "      \"env\": {\"GITHUB_PERSONAL_ACCESS_TOKEN\": \"<YOUR_TOKEN>\"}\n"
        "    },\n"
        "    \"roo.style\": {\"command\": \"node\", \"args\": [\"/srv/x.js\"], \"disabled\": false,\n"
        "      \"alwaysAllow\": [\"read\"], \"autoApprove\": [], \"timeout\": 60, \"type\": \"stdio\",\n"
        "      \"description\": \"from Cline/Roo\", \"cwd\": \"/srv\"}\n"
        "  }\n"
        "}\n";
    mg_config_t cfg;
    parse_ok(json, &cfg);
    assert_string_equal(cfg.path, "t.json");
    assert_int_equal(cfg.nservers, 3);
    assert_int_equal(mg_config_enabled_count(&cfg), 3);

    const mg_server_config_t *fs = &cfg.servers[0];
    assert_string_equal(fs->name, "filesystem");
    assert_string_equal(fs->command, "npx");
    assert_int_equal(fs->nargs, 4);
    assert_string_equal(fs->args[1], "@modelcontextprotocol/server-filesystem");
    assert_null(fs->args[4]);
    assert_int_equal(fs->nenv, 0);
    assert_null(fs->cwd);
    assert_int_equal(fs->instances, 1);
    assert_int_equal(fs->isolation, MG_ISOLATION_SHARED);
    assert_int_equal(fs->request_timeout_ms, 60000);

    const mg_server_config_t *gh = &cfg.servers[1];
    assert_string_equal(gh->name, "github");
    assert_int_equal(gh->nenv, 1);
    assert_string_equal(gh->env[0].key, "GITHUB_PERSONAL_ACCESS_TOKEN");
    assert_string_equal(gh->env[0].value, "<YOUR_TOKEN>");
    assert_string_equal(gh->env[0].source, "literal");

    assert_string_equal(cfg.servers[2].name, "roo.style");
    assert_string_equal(cfg.servers[2].cwd, "/srv");

    /* gateway defaults */
    assert_string_equal(cfg.listen, "127.0.0.1:8080");
    assert_string_equal(cfg.log_level, "info");
    assert_string_equal(cfg.namespace_separator, "__");
    assert_int_equal(cfg.allow_unauthenticated, 0);
    assert_int_equal(cfg.auth_configured, 0);
    assert_int_equal(cfg.nallowed_origins, 0);
    assert_int_equal(cfg.nallowed_hosts, 0);
    mg_config_dispose(&cfg);
    mg_config_dispose(&cfg); /* idempotent */
}

static void test_vscode_servers(void **state)
{
    setenv("MG_T_VSC", "vsc-token", 1);
    const char *json = "// .vscode/mcp.json\n"
                       "{\n"
                       "  \"inputs\": [{\"type\": \"promptString\", \"id\": \"x\", \"password\": true}],\n"
                       "  \"servers\": {\n"
                       "    /* a stdio server */\n"
                       "    \"memory\": {\n"
                       "      \"type\": \"stdio\",\n"
                       "      \"command\": \"npx\",\n"
                       "      \"args\": [\"-y\", \"@modelcontextprotocol/server-memory\",],\n"
                       "      \"env\": {\"TOKEN\": \"${env:MG_T_VSC}\", \"URL\": \"http://x//y\"},\n"
                       "    },\n"
                       "  },\n"
                       "}\n";
    mg_config_t cfg;
    parse_ok(json, &cfg);
    assert_int_equal(cfg.nservers, 1);
    assert_string_equal(cfg.servers[0].name, "memory");
    assert_int_equal(cfg.servers[0].nargs, 2);
    assert_string_equal(env_get(&cfg.servers[0], "TOKEN")->value, "vsc-token");
    assert_string_equal(env_get(&cfg.servers[0], "URL")->value, "http://x//y"); /* not a comment */
    mg_config_dispose(&cfg);

    assert_one_error(
        "{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"servers\": {\"b\": {\"command\": \"y\"}}}",
        "both \"mcpServers\" and \"servers\"");
    assert_one_error("{\"servers\": {\"a\": {\"command\": \"x\", \"env\": {\"T\": \"${input:tok}\"}}}}",
                     "server 'a': env T: ${input:tok} is a VS Code input prompt");
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\"}} /* open",
                     "line 1: a /* comment is never closed");
    unsetenv("MG_T_VSC");
}

/* Remote entries (remote_config.c): accepted with their keys; stdio keys and bad values refused. */
static void test_remote_entries(void **state)
{
    setenv("MG_T_RKEY", "rk-secret-1", 1);
    mg_config_t cfg;
    parse_ok("{\"mcpServers\": {\"ok\": {\"command\": \"x\"}, \"r\": {\"url\": \"https://x/mcp\", \"type\": "
             "\"http\", \"headers\": {\"X-Key\": \"${env:MG_T_RKEY}\"}, \"connectTimeoutMs\": 2000}, "
             "\"s\": {\"serverUrl\": \"http://y/sse\", \"type\": \"sse\"}}, "
             "\"gateway\": {\"egress\": {\"allowCidrs\": [\"10.1.0.0/16\", \"fd00::/8\"]}}}",
             &cfg);
    assert_int_equal(cfg.nservers, 3);
    assert_null(cfg.servers[0].remote);
    const struct mg_server_config *r = &cfg.servers[1];
    assert_non_null(r->remote);
    assert_null(r->command);
    assert_int_equal(cfg.egress.nallow, 2);
    mg_config_dispose(&cfg);
    assert_one_error("{\"servers\": {\"ok\": {\"command\": \"x\"}, \"r\": {\"type\": \"sse\", \"url\": "
                     "\"http://x/sse\", \"command\": \"x\"}}}",
                     "server 'r': command: belongs to a stdio server");
    assert_one_error("{\"servers\": {\"r\": {\"type\": \"http\"}}}",
                     "server 'r': a remote server needs \"url\"");
    assert_one_error(
        "{\"servers\": {\"r\": {\"url\": \"https://x/mcp\", \"headers\": {\"X\": \"${env:MG_T_RKEY}\\n\"}}}}",
        "server 'r': headers \"X\": the value (from env:MG_T_RKEY+literal) is empty or holds a line break");
    assert_one_error(
        "{\"servers\": {\"r\": {\"url\": \"https://x/mcp\", \"auth\": {\"type\": \"password\"}}}}",
        "server 'r': auth: type must be \"client_credentials\" or \"token_exchange\"");
    assert_one_error(
        "{\"servers\": {\"r\": {\"url\": \"https://x/mcp\", \"auth\": {\"type\": \"client_credentials\", "
        "\"tokenUrl\": \"https://idp/token\", \"issuer\": \"https://idp\", \"clientId\": \"c\", "
        "\"clientSecret\": \"s\"}}}}",
        "server 'r': auth: give either tokenUrl", "not both");
    assert_one_error(
        "{\"servers\": {\"r\": {\"url\": \"https://x/mcp\", \"headers\": {\"Authorization\": \"x\"}, "
        "\"auth\": {\"type\": \"client_credentials\", \"tokenUrl\": \"https://idp/token\", "
        "\"clientId\": \"c\", \"clientSecret\": \"s\"}}}}",
        "server 'r': headers \"Authorization\" and auth both give the credential");
    /* One headers reader (config_expand.c) for remote servers, tenants' credentials and the tracer. */
    assert_one_error(
        "{\"servers\": {\"r\": {\"url\": \"https://x/mcp\", \"headers\": {\"Mcp-Session-Id\": \"x\"}}}}",
        "server 'r': headers \"Mcp-Session-Id\": is set by the gateway itself");
    assert_one_error("{\"servers\": {\"r\": {\"url\": \"https://x/mcp\", \"headers\": {\"a b\": \"x\"}}}}",
                     "server 'r': headers \"a b\": not a valid header name");
    assert_one_error("{\"servers\": {\"r\": {\"url\": \"https://x/mcp\", \"headers\": [\"X: y\"]}}}",
                     "server 'r': headers: must be an object like", "not an array");
    assert_one_error("{\"servers\": {\"r\": {\"url\": \"https://x/mcp\", \"isolation\": \"tenant\", "
                     "\"tenantCredentials\": {\"a\": "
                     "{\"headers\": {\"X\": 1}}}}}}",
                     "server 'r': tenantCredentials \"a\" headers \"X\": must be a string, not a number");
    assert_one_error("{\"servers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\"tracing\": {\"endpoint\": "
                     "\"http://c/v1/traces\", \"headers\": {\"User-Agent\": \"x\"}}}}",
                     "gateway.tracing.headers \"User-Agent\": is set by the exporter itself");
    char many[2048] =
        "{\"servers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\"tracing\": {\"endpoint\": "
        "\"http://c/v1/traces\", \"headers\": {";
    for (int i = 0; i < 17; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s\"X-%d\": \"v\"", i ? ", " : "", i);
    strcat(many, "}}}}");
    assert_one_error(many, "gateway.tracing.headers: at most 16 headers, not 17");
    assert_one_error(
        "{\"servers\": {\"r\": {\"url\": \"https://x/mcp\"}}, \"gateway\": {\"egress\": {\"allowCidrs\": "
        "[\"localhost\"]}}}",
        "gateway.egress.allowCidrs[0]: 'localhost' is not an IPv4 or IPv6 address");
}

static void test_unsupported_client_keys(void **state)
{
    assert_one_error("{\"servers\": {\"a\": {\"command\": \"x\", \"envFile\": \"${workspaceFolder}/.env\"}}}",
                     "server 'a': envFile: is not supported");
    /* excludeTools (Gemini CLI) is a deny list now (config_tools.c); a wrong type is still an error. */
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\", \"excludeTools\": \"rm\"}}}",
                     "server 'a': excludeTools: must be an array of tool-name globs");
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\", \"type\": 3}}}",
                     "server 'a': type: must be \"stdio\"");
}

/* ---------------------------------------------------------------- expansion */

static void test_env_expansion_ok(void **state)
{
    setenv("MG_T_TOKEN", "tok-123", 1);
    setenv("MG_T_HOST", "api.example.com", 1);
    const char *json =
        "{\"mcpServers\": {\"github\": {\n"
        "  \"command\": \"${self_dir}/bin/gh\",\n"
        "  \"args\": [\"--host=${env:MG_T_HOST}\", \"--plain\"],\n"
        "  \"cwd\": \"${self_dir}\",\n"
        "  \"env\": {\"TOKEN\": \"${env:MG_T_TOKEN}\", \"AUTH\": \"Bearer ${env:MG_T_TOKEN}\",\n"
        "           \"BOTH\": \"${env:MG_T_HOST}:${env:MG_T_TOKEN}\", \"PLAIN\": \"x\"}}},\n"
        " \"gateway\": {\"listen\": \"${env:MG_T_HOST}:9000\"}}";
    mg_config_t cfg;
    parse_ok(json, &cfg);
    const mg_server_config_t *s = &cfg.servers[0];
    assert_string_equal(s->command, "/opt/mg/bin/gh");
    assert_string_equal(s->args[0], "--host=api.example.com");
    assert_string_equal(s->cwd, "/opt/mg");
    assert_string_equal(env_get(s, "TOKEN")->value, "tok-123");
    assert_string_equal(env_get(s, "TOKEN")->source, "env:MG_T_TOKEN");
    assert_string_equal(env_get(s, "AUTH")->value, "Bearer tok-123");
    assert_string_equal(env_get(s, "AUTH")->source, "literal+env:MG_T_TOKEN");
    assert_string_equal(env_get(s, "BOTH")->value, "api.example.com:tok-123");
    assert_string_equal(env_get(s, "BOTH")->source, "env:MG_T_HOST+literal+env:MG_T_TOKEN");
    assert_string_equal(env_get(s, "PLAIN")->source, "literal");
    assert_string_equal(cfg.listen, "api.example.com:9000");
    mg_config_dispose(&cfg);
    unsetenv("MG_T_TOKEN");
    unsetenv("MG_T_HOST");
}

static void test_env_missing(void **state)
{
    unsetenv("MG_T_MISSING");
    mg_config_errors_t errs;
    parse_bad("{\"mcpServers\": {\"github\": {\"command\": \"x\", \"env\": {\"GITHUB_TOKEN\": "
              "\"${env:MG_T_MISSING}\"}}}}",
              &errs);
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.msgs[0],
                        "t.json: server 'github': env GITHUB_TOKEN: ${env:MG_T_MISSING} is not set in "
                        "the gateway's environment");
    mg_config_errors_dispose(&errs);

    /* In args and in a gateway value too. */
    assert_one_error(
        "{\"mcpServers\": {\"a\": {\"command\": \"x\", \"args\": [\"a\", \"${env:MG_T_MISSING}\"]}}}",
        "server 'a': args[1]: ${env:MG_T_MISSING} is not set");
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\"listen\": "
                     "\"${env:MG_T_MISSING}\"}}",
                     "gateway.listen: ${env:MG_T_MISSING} is not set");
}

static void test_env_empty(void **state)
{
    setenv("MG_T_EMPTY", "", 1);
    assert_one_error("{\"mcpServers\": {\"github\": {\"command\": \"x\", \"env\": {\"GITHUB_TOKEN\": "
                     "\"${env:MG_T_EMPTY}\"}}}}",
                     "t.json: server 'github': env GITHUB_TOKEN: ${env:MG_T_EMPTY} is set but empty");
    /* Even inside a longer string: "Bearer " alone is not a credential. */
    assert_one_error("{\"mcpServers\": {\"github\": {\"command\": \"x\", \"env\": {\"AUTH\": \"Bearer "
                     "${env:MG_T_EMPTY}\"}}}}",
                     "server 'github': env AUTH: ${env:MG_T_EMPTY} is set but empty");
    unsetenv("MG_T_EMPTY");
}

static void test_env_literal_empty(void **state)
{
    assert_one_error(
        "{\"mcpServers\": {\"github\": {\"command\": \"x\", \"env\": {\"GITHUB_TOKEN\": \"\"}}}}",
        "server 'github': env GITHUB_TOKEN: the value is an empty string",
        "remove the key or give it a value");
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\", \"env\": {\"PORT\": 3000}}}}",
                     "server 'a': env PORT: must be a string, not a number (put the value in quotes)");
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\", \"env\": {\"K\": null}}}}",
                     "server 'a': env K: must be a string, not null (remove the key or give it a value)");
}

static void test_file_expansion(void **state)
{
    char *path = write_temp("s3cret-value\r\n\n");
    char json[512];
    snprintf(json, sizeof json,
             "{\"mcpServers\": {\"db\": {\"command\": \"x\", \"env\": {\"PASSWORD\": \"${file:%s}\"}}}}",
             path);
    mg_config_t cfg;
    parse_ok(json, &cfg);
    const mg_kv_t *kv = env_get(&cfg.servers[0], "PASSWORD");
    assert_string_equal(kv->value, "s3cret-value");
    char want[256];
    snprintf(want, sizeof want, "file:%s", path);
    assert_string_equal(kv->source, want);
    mg_config_dispose(&cfg);

    /* Missing file: names server, key and path; the error text comes from errno. */
    unlink(path);
    mg_config_errors_t errs;
    assert_int_equal(parse_bad(json, &errs), 1);
    snprintf(want, sizeof want,
             "t.json: server 'db': env PASSWORD: ${file:%s} cannot be read: No such file or directory", path);
    assert_string_equal(errs.msgs[0], want);
    mg_config_errors_dispose(&errs);
    free(path);

    /* Empty file (only a newline) and a relative path. */
    path = write_temp("\n");
    snprintf(json, sizeof json,
             "{\"mcpServers\": {\"db\": {\"command\": \"x\", \"env\": {\"P\": \"${file:%s}\"}}}}", path);
    assert_one_error(json, "server 'db': env P: ${file:", "} is empty");
    unlink(path);
    free(path);
    assert_one_error(
        "{\"mcpServers\": {\"db\": {\"command\": \"x\", \"env\": {\"P\": \"${file:secret.txt}\"}}}}",
        "server 'db': env P: ${file:secret.txt}: the path must be absolute");

    /* Larger than 64 KiB. */
    char *big = malloc(70 * 1024);
    memset(big, 'a', 70 * 1024 - 1);
    big[70 * 1024 - 1] = '\0';
    path = write_temp(big);
    free(big);
    snprintf(json, sizeof json,
             "{\"mcpServers\": {\"db\": {\"command\": \"x\", \"env\": {\"P\": \"${file:%s}\"}}}}", path);
    assert_one_error(json, "is larger than 64 KiB");
    unlink(path);
    free(path);
}

static void test_dollar_escape(void **state)
{
    setenv("MG_T_TOKEN", "tok", 1);
    const char *json =
        "{\"mcpServers\": {\"a\": {\"command\": \"x\", \"args\": [\"$${env:MG_T_TOKEN}\", \"a$b$$c$\", "
        "\"$${}\", \"pre$${self_dir}${env:MG_T_TOKEN}\"], \"env\": {\"E\": \"$${not_a_ref}\"}}}}";
    mg_config_t cfg;
    parse_ok(json, &cfg);
    const mg_server_config_t *s = &cfg.servers[0];
    assert_string_equal(s->args[0], "${env:MG_T_TOKEN}");
    assert_string_equal(s->args[1], "a$b$$c$");
    assert_string_equal(s->args[2], "${}");
    assert_string_equal(s->args[3], "pre${self_dir}tok");
    assert_string_equal(env_get(s, "E")->value, "${not_a_ref}");
    assert_string_equal(env_get(s, "E")->source, "literal");
    mg_config_dispose(&cfg);
    unsetenv("MG_T_TOKEN");
}

static void test_malformed_references(void **state)
{
    mg_config_errors_t errs;
    size_t n = parse_bad("{\"mcpServers\": {\"a\": {\"command\": \"x\", \"args\": [\"${env:X\", \"${nope}\", "
                         "\"${env:1BAD}\", \"${workspaceFolder}/x\", \"${file:}\"]}}}",
                         &errs);
    if (n != 5) {
        dump(&errs);
    }
    assert_int_equal(n, 5);
    assert_int_equal(count_with(&errs, "server 'a': args[0]: '${' at offset 0 has no closing '}'", NULL), 1);
    assert_int_equal(count_with(&errs, "server 'a': args[1]: unknown reference ${nope}", NULL), 1);
    assert_int_equal(
        count_with(&errs, "server 'a': args[2]: ${env:1BAD}: not a valid environment variable name", NULL),
        1);
    assert_int_equal(count_with(&errs, "server 'a': args[3]: unknown reference ${workspaceFolder}", NULL), 1);
    assert_int_equal(count_with(&errs, "server 'a': args[4]: ${file:}: the path must be absolute", NULL), 1);
    mg_config_errors_dispose(&errs);
}

static void test_secrets_never_in_messages(void **state)
{
    setenv("MG_T_SECRET", "TOPSECRET-env", 1);
    unsetenv("MG_T_MISSING");
    char *path = write_temp("TOPSECRET-file\n");
    char json[1024];
    snprintf(json, sizeof json,
             "{\"mcpServers\": {\"a\": {\"command\": \"x\", \"args\": "
             "[\"--t=${env:MG_T_SECRET}${env:MG_T_MISSING}\"],"
             " \"env\": {\"K\": \"${file:%s}${nope}\", \"L\": \"${env:MG_T_SECRET}\", \"M\": \"\"}},"
             " \"b\": {\"command\": \"x\", \"env\": {\"K\": \"${file:%s}\"}, \"bogus\": 1}}}",
             path, path);
    mg_config_errors_t errs;
    size_t n = parse_bad(json, &errs);
    if (n != 4) {
        dump(&errs);
    }
    assert_int_equal(n, 4);
    assert_int_equal(count_with(&errs, "TOPSECRET", NULL), 0);
    mg_config_errors_dispose(&errs);

    /* jansson's "near '...'" excerpt is dropped: it could quote a secret written in the file. */
    assert_int_equal(
        parse_bad("{\"mcpServers\": {\"a\": {\"command\": \"x\", \"env\": {\"K\": \"TOPSECRET-lit", &errs),
        1);
    assert_int_equal(count_with(&errs, "TOPSECRET", NULL), 0);
    assert_int_equal(count_with(&errs, "t.json: line 1, column ", "invalid JSON", NULL), 1);
    mg_config_errors_dispose(&errs);

    /* Found by fuzz/fuzz_config.c: invalid gateway strings were quoted after expansion, so a
     * reference in listen, allowedOrigins/allowedHosts, logLevel or namespaceSeparator put the
     * variable's or the file's value in the message. They now show the text as written. */
    snprintf(json, sizeof json,
             "{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {"
             "\"listen\": \"x${env:MG_T_SECRET}\", \"allowedOrigins\": [\"${file:%s}\"],"
             " \"allowedHosts\": [\"h/${env:MG_T_SECRET}\"], \"logLevel\": \"${env:MG_T_SECRET}\","
             " \"namespaceSeparator\": \"${file:%s}\"}}",
             path, path);
    n = parse_bad(json, &errs);
    if (n != 5) {
        dump(&errs);
    }
    assert_int_equal(n, 5);
    assert_int_equal(count_with(&errs, "TOPSECRET", NULL), 0);
    assert_int_equal(count_with(&errs, "gateway.listen: 'x${env:MG_T_SECRET}' is not host:port", NULL), 1);
    assert_int_equal(count_with(&errs, "gateway.logLevel: '${env:MG_T_SECRET}'", NULL), 1);
    mg_config_errors_dispose(&errs);
    unlink(path);
    free(path);
    unsetenv("MG_T_SECRET");
}

static void test_disabled_server_is_lenient(void **state)
{
    unsetenv("MG_T_MISSING");
    const char *json =
        "{\"mcpServers\": {\"on\": {\"command\": \"x\"},\n"
        " \"off\": {\"command\": \"y\", \"disabled\": true, \"env\": {\"T\": \"${env:MG_T_MISSING}\", "
        "\"E\": \"\"}}}}";
    mg_config_t cfg;
    parse_ok(json, &cfg);
    assert_int_equal(cfg.nservers, 2);
    assert_int_equal(mg_config_enabled_count(&cfg), 1);
    assert_int_equal(cfg.servers[1].disabled, 1);
    assert_string_equal(env_get(&cfg.servers[1], "T")->value, "${env:MG_T_MISSING}"); /* as written */
    mg_config_dispose(&cfg);

    /* Structure is still checked: malformed references and unknown keys. */
    assert_one_error("{\"mcpServers\": {\"on\": {\"command\": \"x\"}, \"off\": {\"command\": \"${env:X\", "
                     "\"disabled\": true}}}",
                     "server 'off': command: '${' at offset 0 has no closing '}'");
    assert_one_error(
        "{\"mcpServers\": {\"a\": {\"command\": \"x\", \"disabled\": true}, \"b\": {\"command\": "
        "\"x\", \"disabled\": true}}}",
        "t.json: every server is disabled");
}

/* ---------------------------------------------------------------- validation */

static void test_many_errors_at_once(void **state)
{
    const char *json =
        "{\"mcpServers\": {\n"
        "  \"a\": {\"args\": [\"x\"]},\n"
        "  \"b\": {\"command\": \"x\", \"args\": \"--verbose\"},\n"
        "  \"c\": {\"command\": \"x\", \"args\": [\"ok\", 7], \"env\": {\"K\": 5}},\n"
        "  \"d\": {\"command\": \"\", \"cwd\": \"\"},\n"
        "  \"e\": {\"command\": \"x\", \"instances\": 2, \"isolation\": \"session\"},\n"
        "  \"f\": {\"command\": [\"npx\"], \"instances\": 65, \"isolation\": \"pool\", \"timeoutMs\": "
        "\"5000\"},\n"
        "  \"g\": \"npx foo\"\n"
        "}}";
    mg_config_errors_t errs;
    size_t n = parse_bad(json, &errs);
    if (n != 12) {
        dump(&errs);
    }
    assert_int_equal(n, 12);
    assert_int_equal(count_with(&errs, "server 'a': command is missing", NULL), 1);
    assert_int_equal(count_with(&errs, "server 'b': args: must be an array of strings, not a string", NULL),
                     1);
    assert_int_equal(count_with(&errs, "server 'c': args[1]: must be a string, not a number", NULL), 1);
    assert_int_equal(count_with(&errs, "server 'c': env K: must be a string", NULL), 1);
    assert_int_equal(count_with(&errs, "server 'd': command: is empty", NULL), 1);
    assert_int_equal(count_with(&errs, "server 'd': cwd: is empty", NULL), 1);
    assert_int_equal(
        count_with(&errs, "server 'e': instances 2 cannot be combined with isolation \"session\"", NULL), 1);
    assert_int_equal(count_with(&errs, "server 'f': command: must be a string, not an array", NULL), 1);
    assert_int_equal(count_with(&errs, "server 'f': instances: 65 is out of range (allowed: 1..64)", NULL),
                     1);
    assert_int_equal(count_with(&errs, "server 'f': isolation: must be \"shared\"", NULL), 1);
    assert_int_equal(
        count_with(&errs, "server 'f': timeoutMs: must be a whole number, not a string (remove the quotes)",
                   NULL),
        1);
    assert_int_equal(count_with(&errs, "server 'g': must be an object", NULL), 1);
    /* file order */
    assert_non_null(strstr(errs.msgs[0], "server 'a'"));
    assert_non_null(strstr(errs.msgs[n - 1], "server 'g'"));
    mg_config_errors_dispose(&errs);
}

static void test_syntax_and_shape(void **state)
{
    mg_config_errors_t errs;
    assert_int_equal(parse_bad("{\n  \"mcpServers\": {\n    \"a\": {\"command\": x}\n  }\n}", &errs), 1);
    assert_string_equal(errs.msgs[0], "t.json: line 3, column 22: invalid JSON: invalid token");
    mg_config_errors_dispose(&errs);
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\"}, \"a\": {\"command\": \"y\"}}}",
                     "duplicate object key", "\"a\"");
    assert_one_error("[1, 2]", "t.json: the top level must be an object", "not an array");
    assert_one_error("", "t.json: line 1, column 1: invalid JSON");
    assert_one_error("{}", "t.json: no servers configured: add an entry under mcpServers");
    assert_one_error("{\"mcpServers\": {}}", "no servers configured: add an entry under mcpServers");
    assert_one_error("{\"mcpServers\": []}", "mcpServers: must be an object mapping server names");
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": 1}",
                     "gateway: must be an object, not a number");
}

static void test_bad_listen(void **state)
{
    static const char *const bad[] = {"8080",
                                      "localhost",
                                      ":8080",
                                      "127.0.0.1:0",
                                      "127.0.0.1:65536",
                                      "127.0.0.1:80a",
                                      "256.1.1.1:80",
                                      "::1:8080",
                                      "[::1]8080",
                                      "[::g]:80",
                                      "[::1",
                                      "-bad.host:80",
                                      "bad_host:80",
                                      "host:",
                                      "a..b:80",
                                      ""};
    char json[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(json, sizeof json,
                 "{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\"listen\": \"%s\"}}",
                 bad[i]);
        mg_config_errors_t errs;
        mg_config_t cfg;
        int rc = parse(json, &cfg, &errs);
        if (rc != MG_ECONFIG || errs.count != 1 || strstr(errs.msgs[0], "gateway.listen") == NULL) {
            fprintf(stderr, "listen '%s' was not refused as expected\n", bad[i]);
            dump(&errs);
        }
        assert_int_equal(rc, MG_ECONFIG);
        assert_int_equal(errs.count, 1);
        assert_non_null(strstr(errs.msgs[0], "gateway.listen"));
        mg_config_errors_dispose(&errs);
    }
    assert_one_error(
        "{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\"listen\": \"127.0.0.1:99999\"}}",
        "gateway.listen: '127.0.0.1:99999' is not host:port: the port must be a number from 1 to 65535");
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\"listen\": \"::1:80\"}}",
                     "brackets, e.g. [::1]:8080");
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\"listen\": 8080}}",
                     "gateway.listen: must be a string, not a number");

    static const char *const good[] = {"127.0.0.1:8080", "0.0.0.0:65535", "[::1]:9000",
                                       "[::]:1",         "localhost:1",   "mcp-gw.example.com:443"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(json, sizeof json,
                 "{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\"listen\": \"%s\"}}",
                 good[i]);
        mg_config_t cfg;
        parse_ok(json, &cfg);
        assert_string_equal(cfg.listen, good[i]);
        mg_config_dispose(&cfg);
    }

    char host[64];
    unsigned port = 0;
    assert_int_equal(mg_config_listen_parse("[::1]:9000", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 9000);
    assert_int_equal(mg_config_listen_parse("localhost:80", host, sizeof host, &port), 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 80);
    assert_int_equal(mg_config_listen_parse("localhost", host, sizeof host, &port), MG_EINVAL);
    assert_int_equal(mg_config_listen_parse("localhost:80", host, 4, &port), MG_EINVAL); /* host too long */
}

static void test_unknown_key_suggestion(void **state)
{
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gatway\": {}}",
                     "t.json: top level: unknown key \"gatway\"; did you mean \"gateway\"?");
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\"lsten\": \"x\"}}",
                     "t.json: gateway: unknown key \"lsten\"; did you mean \"listen\"?");
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\", \"arg\": []}}}",
                     "t.json: server 'a': unknown key \"arg\"; did you mean \"args\"?");
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\", \"Env\": {}}}}", "did you mean \"env\"?");
    assert_one_error(
        "{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\"limits\": {\"maxBodyByte\": 1}}}",
        "t.json: gateway.limits: unknown key \"maxBodyByte\"; did you mean \"maxBodyBytes\"?");
    assert_one_error(
        "{\"mcpServers\": {\"a\": {\"command\": \"x\", \"zzzzzzzz\": 1}}}",
        "server 'a': unknown key \"zzzzzzzz\" (known keys: command, args, env, cwd, disabled, instances, "
        "isolation, timeoutMs, tools, pinning, scan, sandbox)");
    /* "mcpServer" alone: the typo and the consequence are both reported. */
    mg_config_errors_t errs;
    assert_int_equal(parse_bad("{\"mcpServer\": {\"a\": {\"command\": \"x\"}}}", &errs), 2);
    assert_int_equal(count_with(&errs, "did you mean \"mcpServers\"?", NULL), 1);
    assert_int_equal(count_with(&errs, "no servers configured", NULL), 1);
    mg_config_errors_dispose(&errs);
    /* Control characters in a key never reach the message. */
    assert_one_error("{\"mcpServers\": {\"a\": {\"command\": \"x\", \"bad\\nkey\\u001b[31m\": 1}}}",
                     "\"bad?key?[31m\"");
}

static void test_bad_server_name(void **state)
{
    mg_config_errors_t errs;
    size_t n = parse_bad("{\"mcpServers\": {\"my server\": {\"command\": \"x\"}, \"\": {\"command\": \"x\"}, "
                         "\"a/b\": {\"command\": \"x\"}, \"ok-1.2_3\": {\"command\": \"x\"}}}",
                         &errs);
    assert_int_equal(n, 3);
    assert_int_equal(count_with(&errs, "A-Z a-z 0-9 _ . -", "tool-name prefixes", NULL), 3);
    assert_int_equal(count_with(&errs, "server 'my server'", NULL), 1);
    assert_int_equal(count_with(&errs, "server ''", NULL), 1);
    assert_int_equal(count_with(&errs, "server 'a/b'", NULL), 1);
    mg_config_errors_dispose(&errs);

    assert_one_error("{\"mcpServers\": {\"GitHub\": {\"command\": \"x\"}, \"github\": {\"command\": \"y\"}}}",
                     "servers 'GitHub' and 'github' differ only in case");
    assert_one_error("{\"mcpServers\": {\"my__gh\": {\"command\": \"x\"}}}",
                     "server 'my__gh': the name contains the namespace separator '__'");
    /* With another separator the same name is fine. */
    mg_config_t cfg;
    parse_ok(
        "{\"mcpServers\": {\"my__gh\": {\"command\": \"x\"}}, \"gateway\": {\"namespaceSeparator\": \".\"}}",
        &cfg);
    assert_string_equal(cfg.namespace_separator, ".");
    mg_config_dispose(&cfg);
}

static void test_gateway_keys(void **state)
{
    const char *json =
        "{\"mcpServers\": {\"a\": {\"command\": \"x\", \"instances\": 4, \"timeoutMs\": 2500},\n"
        "                 \"b\": {\"command\": \"x\", \"isolation\": \"session\"},\n"
        "                 \"c\": {\"command\": \"x\", \"isolation\": \"tenant\", \"instances\": 2}},\n"
        " \"gateway\": {\"listen\": \"0.0.0.0:9090\", \"allowUnauthenticated\": true,\n"
        "   \"allowedOrigins\": [\"https://app.example.com\", \"http://localhost:3000\"],\n"
        "   \"allowedHosts\": [\"mcp.example.com\", \"[::1]:8080\", \"10.0.0.1\"],\n"
        "   \"logLevel\": \"debug\", \"namespaceSeparator\": \"-\", \"auth\": {\"tokens\": [{\"name\": "
        "\"ci\", \"sha256\": "
        "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}]}}}";
    mg_config_t cfg;
    parse_ok(json, &cfg);
    assert_string_equal(cfg.listen, "0.0.0.0:9090");
    assert_int_equal(cfg.allow_unauthenticated, 1);
    assert_int_equal(cfg.auth_configured, 1);
    assert_non_null(cfg.auth); /* parsed by src/config/auth_config.c; its own tests: test_auth.c */
    assert_int_equal(cfg.nallowed_origins, 2);
    assert_string_equal(cfg.allowed_origins[1], "http://localhost:3000");
    assert_null(cfg.allowed_origins[2]);
    assert_int_equal(cfg.nallowed_hosts, 3);
    assert_string_equal(cfg.allowed_hosts[1], "[::1]:8080");
    assert_string_equal(cfg.log_level, "debug");
    assert_string_equal(cfg.namespace_separator, "-");
    assert_int_equal(cfg.servers[0].instances, 4);
    assert_int_equal(cfg.servers[0].request_timeout_ms, 2500);
    assert_int_equal(cfg.servers[1].isolation, MG_ISOLATION_SESSION);
    assert_int_equal(cfg.servers[2].isolation, MG_ISOLATION_TENANT);
    assert_int_equal(cfg.servers[2].instances, 2);
    assert_string_equal(mg_isolation_name(cfg.servers[2].isolation), "tenant");
    mg_config_dispose(&cfg);

    mg_config_errors_t errs;
    size_t n =
        parse_bad("{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\n"
                  " \"allowedOrigins\": [\"https://x.com/\", \"x.com\", 3], \"allowedHosts\": [\"a b\"],\n"
                  " \"logLevel\": \"verbose\", \"namespaceSeparator\": \"::\", \"auth\": {},\n"
                  " \"allowUnauthenticated\": \"yes\"}}",
                  &errs);
    if (n != 8) {
        dump(&errs);
    }
    assert_int_equal(n, 8);
    assert_int_equal(
        count_with(&errs, "gateway.allowedOrigins: 'https://x.com/' is not valid: an origin has no path",
                   NULL),
        1);
    assert_int_equal(count_with(&errs, "gateway.allowedOrigins: 'x.com' is not valid", NULL), 1);
    assert_int_equal(count_with(&errs, "gateway.allowedOrigins[2]: must be a string", NULL), 1);
    assert_int_equal(count_with(&errs, "gateway.allowedHosts: 'a b' is not valid", NULL), 1);
    assert_int_equal(
        count_with(&errs, "gateway.logLevel: 'verbose' is not one of debug, info, warn, error", NULL), 1);
    assert_int_equal(count_with(&errs, "gateway.namespaceSeparator: '::' is not valid", NULL), 1);
    assert_int_equal(count_with(&errs, "gateway.auth: must be a non-empty object", NULL), 1);
    assert_int_equal(count_with(&errs, "gateway.allowUnauthenticated: must be true or false", NULL), 1);
    mg_config_errors_dispose(&errs);
}

static void test_limits_defaults_and_overrides(void **state)
{
    mg_limits_t l;
    memset(&l, 0, sizeof l); /* padding, for assert_memory_equal below */
    mg_limits_default(&l);
    assert_int_equal(l.max_body_bytes, 4 * 1024 * 1024);
    assert_int_equal(l.max_json_depth, 64);
    assert_int_equal(l.max_sessions, 10000);
    assert_int_equal(l.session_ttl_ms, 30 * 60 * 1000);
    assert_int_equal(l.max_inflight_per_session, 64);
    assert_int_equal(l.max_inflight_per_upstream, 32768);
    assert_int_equal(l.sse_replay_events, 64);
    assert_int_equal(l.sse_replay_bytes, 1024 * 1024);
    assert_int_equal(l.max_line_bytes, 16 * 1024 * 1024);
    assert_int_equal(l.request_timeout_ms, 60000);
    assert_int_equal(l.max_request_ms, 600000);
    assert_int_equal(l.shutdown_grace_ms, 10000);
    assert_int_equal(l.http_idle_timeout_ms, 10000);

    mg_config_t cfg;
    parse_ok("{\"mcpServers\": {\"a\": {\"command\": \"x\"}}}", &cfg);
    assert_memory_equal(&cfg.limits, &l, sizeof l);
    mg_config_dispose(&cfg);

    parse_ok(
        "{\"mcpServers\": {\"a\": {\"command\": \"x\"}, \"b\": {\"command\": \"x\", \"timeoutMs\": 1000}},\n"
        " \"gateway\": {\"limits\": {\"maxBodyBytes\": 1048576, \"maxJsonDepth\": 10, \"maxSessions\": 5,\n"
        "  \"sessionIdleTtlMs\": 60000, \"maxInflightPerSession\": 2, \"maxInflightPerUpstream\": 3,\n"
        "  \"sseReplayEvents\": 0, \"sseReplayBytes\": 0, \"maxUpstreamLineBytes\": 2048,\n"
        "  \"requestTimeoutMs\": 5000, \"maxRequestMs\": 7000, \"shutdownGraceMs\": 0,\n"
        "  \"httpIdleTimeoutMs\": 2500}}}",
        &cfg);
    assert_int_equal(cfg.limits.http_idle_timeout_ms, 2500);
    assert_int_equal(cfg.limits.max_body_bytes, 1048576);
    assert_int_equal(cfg.limits.max_json_depth, 10);
    assert_int_equal(cfg.limits.max_sessions, 5);
    assert_int_equal(cfg.limits.session_ttl_ms, 60000);
    assert_int_equal(cfg.limits.max_inflight_per_session, 2);
    assert_int_equal(cfg.limits.max_inflight_per_upstream, 3);
    assert_int_equal(cfg.limits.sse_replay_events, 0);
    assert_int_equal(cfg.limits.sse_replay_bytes, 0);
    assert_int_equal(cfg.limits.max_line_bytes, 2048);
    assert_int_equal(cfg.limits.request_timeout_ms, 5000);
    assert_int_equal(cfg.limits.max_request_ms, 7000);
    assert_int_equal(cfg.limits.shutdown_grace_ms, 0);
    assert_int_equal(cfg.servers[0].request_timeout_ms, 5000); /* the gateway's default */
    assert_int_equal(cfg.servers[1].request_timeout_ms, 1000);
    mg_config_dispose(&cfg);

    mg_config_errors_t errs;
    size_t n =
        parse_bad("{\"mcpServers\": {\"a\": {\"command\": \"x\", \"timeoutMs\": 900000}},\n"
                  " \"gateway\": {\"limits\": {\"maxBodyBytes\": 100, \"maxJsonDepth\": 1001,\n"
                  "  \"maxSessions\": -1, \"maxUpstreamLineBytes\": 1.5, \"shutdownGraceMs\": \"10\",\n"
                  "  \"httpIdleTimeoutMs\": 99}}}",
                  &errs);
    if (n != 7) {
        dump(&errs);
    }
    assert_int_equal(n, 7);
    assert_int_equal(count_with(&errs, "gateway.limits.httpIdleTimeoutMs: 99 is out of range", NULL), 1);
    assert_int_equal(
        count_with(&errs,
                   "gateway.limits.maxBodyBytes: 100 is out of range (allowed: 1024..1073741824, i.e. "
                   "1 KiB..1 GiB)",
                   NULL),
        1);
    assert_int_equal(count_with(&errs, "gateway.limits.maxJsonDepth: 1001 is out of range", NULL), 1);
    assert_int_equal(count_with(&errs, "gateway.limits.maxSessions: -1 is out of range", NULL), 1);
    assert_int_equal(count_with(&errs, "gateway.limits.maxUpstreamLineBytes: must be a whole number", NULL),
                     1);
    assert_int_equal(
        count_with(&errs, "gateway.limits.shutdownGraceMs: must be a whole number, not a string", NULL), 1);
    assert_int_equal(count_with(&errs,
                                "server 'a': timeoutMs (900000) exceeds gateway.limits.maxRequestMs (600000)",
                                NULL),
                     1);
    mg_config_errors_dispose(&errs);

    assert_one_error(
        "{\"mcpServers\": {\"a\": {\"command\": \"x\"}}, \"gateway\": {\"limits\": {\"requestTimeoutMs\": "
        "5000, \"maxRequestMs\": 1000}}}",
        "maxRequestMs (1000) is below requestTimeoutMs (5000)");
}

static void test_embedded_config(void **state)
{
    const char *json = mg_config_embedded_json();
    assert_non_null(strstr(json, "mcpServers"));
    mg_config_t cfg;
    mg_config_errors_t errs;
    assert_int_equal(mg_config_parse(json, "<embedded>", "/usr/local/bin", &cfg, &errs), 0);
    assert_int_equal(errs.count, 0);
    assert_string_equal(cfg.path, "<embedded>");
    assert_int_equal(cfg.nservers, 1);
    assert_string_equal(cfg.servers[0].name, "testserver");
    assert_string_equal(cfg.servers[0].command, "/usr/local/bin/mcpgate-testserver");
    assert_int_equal(cfg.servers[0].nargs, 0);
    assert_non_null(cfg.servers[0].args);
    assert_null(cfg.servers[0].args[0]);
    mg_config_dispose(&cfg);

    /* Without a binary directory ${self_dir} cannot be expanded. */
    assert_int_equal(mg_config_parse(json, "<embedded>", NULL, &cfg, &errs), MG_ECONFIG);
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.msgs[0],
                        "<embedded>: server 'testserver': command: ${self_dir} is not known here (no "
                        "directory of the mcpgate binary was given)");
    mg_config_errors_dispose(&errs);

    /* errs may be NULL. */
    assert_int_equal(mg_config_parse(json, "<embedded>", NULL, &cfg, NULL), MG_ECONFIG);
    assert_int_equal(mg_config_parse(NULL, "<embedded>", NULL, &cfg, NULL), MG_EINVAL);
}

static void test_load(void **state)
{
    mg_config_t cfg;
    mg_config_errors_t errs;
    assert_int_equal(mg_config_load("/nonexistent/mcpgate.json", "/opt/mg", &cfg, &errs), MG_ECONFIG);
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.msgs[0],
                        "/nonexistent/mcpgate.json: cannot read the config file: No such file or directory");
    mg_config_errors_dispose(&errs);

    assert_int_equal(mg_config_load("/tmp", "/opt/mg", &cfg, &errs), MG_ECONFIG);
    assert_int_equal(count_with(&errs, "Is a directory", NULL), 1);
    mg_config_errors_dispose(&errs);

    char *path = write_temp("{\"mcpServers\": {\"a\": {\"command\": \"${self_dir}/a\"}}}\n");
    assert_int_equal(mg_config_load(path, "/opt/mg", &cfg, &errs), 0);
    assert_int_equal(errs.count, 0);
    assert_string_equal(cfg.path, path);
    assert_string_equal(cfg.servers[0].command, "/opt/mg/a");
    mg_config_dispose(&cfg);
    mg_config_errors_dispose(&errs);
    unlink(path);
    free(path);

    path = write_temp("{\"mcpServers\": {}}");
    assert_int_equal(mg_config_load(path, "/opt/mg", &cfg, &errs), MG_ECONFIG);
    assert_int_equal(errs.count, 1);
    assert_true(strncmp(errs.msgs[0], path, strlen(path)) == 0); /* messages name the file */
    mg_config_errors_dispose(&errs);
    unlink(path);
    free(path);
}

static void test_error_count_is_bounded(void **state)
{
    /* 150 unknown keys: 100 messages and one that counts the rest. */
    size_t cap = 64 + 150 * 16;
    char *json = malloc(cap);
    size_t o = (size_t)snprintf(json, cap, "{\"mcpServers\": {\"a\": {\"command\": \"x\"");
    for (int i = 0; i < 150; i++) {
        o += (size_t)snprintf(json + o, cap - o, ", \"k%03d\": 1", i);
    }
    snprintf(json + o, cap - o, "}}}");
    mg_config_errors_t errs;
    assert_int_equal(parse_bad(json, &errs), 101);
    assert_non_null(strstr(errs.msgs[100], "... and 50 more problems not shown"));
    mg_config_errors_dispose(&errs);
    free(json);
}

/* gateway.journal, gateway.metrics, gateway.watchConfig (config_ops.c) and the reload diff's
 * mg_config_server_same. */
static void test_ops_keys(void **state)
{
    mg_config_t cfg;
    parse_ok(
        "{\"mcpServers\":{\"a\":{\"command\":\"x\"}},\"gateway\":{\"watchConfig\":true,"
        "\"metrics\":{\"listen\":\"127.0.0.1:9090\"},\"journal\":{\"path\":\"/var/j.jsonl\","
        "\"arguments\":true,\"hmacKey\":\"0123456789abcdef0123\",\"maxBytes\":0,\"checkpointEvery\":5}}}",
        &cfg);
    assert_int_equal(cfg.watch_config, 1);
    assert_string_equal(cfg.metrics_listen, "127.0.0.1:9090");
    assert_string_equal(cfg.journal.path, "/var/j.jsonl");
    assert_int_equal(cfg.journal.arguments, 1);
    assert_int_equal(cfg.journal.max_bytes, 0);
    assert_int_equal(cfg.journal.checkpoint_every, 5);
    assert_int_equal(cfg.journal.checkpoint_ms, 10000);
    assert_int_equal(cfg.journal.queue_bytes, 16u * 1024 * 1024);
    assert_int_equal(strlen(cfg.digest), 16);
    mg_config_dispose(&cfg);

    mg_config_errors_t errs;
    parse_bad(
        "{\"mcpServers\":{\"a\":{\"command\":\"x\"}},\"gateway\":{\"journal\":{\"hmacKey\":\"short-secret\","
        "\"maxBytes\":10,\"pth\":1},\"metrics\":{\"listen\":\"nope\"},\"watchConfig\":\"yes\"}}",
        &errs);
    assert_int_equal(count_with(&errs, "gateway.journal.hmacKey", "16 to 1024 bytes", NULL), 1);
    assert_int_equal(count_with(&errs, "short-secret", NULL), 0); /* a secret is never echoed */
    assert_int_equal(count_with(&errs, "gateway.journal.maxBytes", NULL), 1);
    assert_int_equal(count_with(&errs, "gateway.journal", "\"pth\"", "path", NULL), 1);
    assert_int_equal(count_with(&errs, "gateway.journal", "\"path\" is required", NULL), 1);
    assert_int_equal(count_with(&errs, "gateway.metrics.listen", "host:port", NULL), 1);
    assert_int_equal(count_with(&errs, "gateway.watchConfig", NULL), 1);
    mg_config_errors_dispose(&errs);

    /* reload: entries compared whole, whatever their keys; order of keys does not matter */
    mg_config_t a, b, c;
    parse_ok("{\"mcpServers\":{\"s\":{\"command\":\"x\",\"args\":[\"1\"],\"timeoutMs\":5000}}}", &a);
    parse_ok("{\"mcpServers\":{\"s\":{\"timeoutMs\":5000,\"args\":[\"1\"],\"command\":\"x\"}}}", &b);
    parse_ok("{\"mcpServers\":{\"s\":{\"command\":\"x\",\"args\":[\"1\"],\"timeoutMs\":6000}}}", &c);
    assert_true(mg_config_server_same(&a.servers[0], &b.servers[0]));
    assert_false(mg_config_server_same(&a.servers[0], &c.servers[0]));
    assert_string_not_equal(a.digest, b.digest);
    mg_config_dispose(&a);
    mg_config_dispose(&b);
    mg_config_dispose(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_keys),
        cmocka_unit_test(test_claude_desktop_example),
        cmocka_unit_test(test_vscode_servers),
        cmocka_unit_test(test_remote_entries),
        cmocka_unit_test(test_unsupported_client_keys),
        cmocka_unit_test(test_env_expansion_ok),
        cmocka_unit_test(test_env_missing),
        cmocka_unit_test(test_env_empty),
        cmocka_unit_test(test_env_literal_empty),
        cmocka_unit_test(test_file_expansion),
        cmocka_unit_test(test_dollar_escape),
        cmocka_unit_test(test_malformed_references),
        cmocka_unit_test(test_secrets_never_in_messages),
        cmocka_unit_test(test_disabled_server_is_lenient),
        cmocka_unit_test(test_many_errors_at_once),
        cmocka_unit_test(test_syntax_and_shape),
        cmocka_unit_test(test_bad_listen),
        cmocka_unit_test(test_unknown_key_suggestion),
        cmocka_unit_test(test_bad_server_name),
        cmocka_unit_test(test_gateway_keys),
        cmocka_unit_test(test_limits_defaults_and_overrides),
        cmocka_unit_test(test_embedded_config),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_error_count_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
