/*
 * main.c - build/mcpgate-bench: command line of the MCP load generator (bench.h).
 *
 * Contract: parses and checks the options, raises RLIMIT_NOFILE to its hard limit, runs one of
 * the modes (load: closed or open loop; --hold; --raw-post; --cold-start) and prints the report.
 * Exit status: 0 when every session and call succeeded, 1 when some failed, 2 on a usage error.
 * Traffic goes only to the IPv4 address of --url (meant for 127.0.0.1).
 * Read next: run.c (the phases), tools/bench/README.md (how bench/run.sh uses this).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: mcpgate-bench --url http://127.0.0.1:PORT/mcp [options]\n"
        "       mcpgate-bench --cold-start --url URL --health-url URL [options] -- CMD [ARGS...]\n"
        "MCP Streamable HTTP load generator: N sessions, each its own keep-alive connection, each doing\n"
        "initialize, notifications/initialized, tools/list, K tools/call, DELETE.\n"
        "  --sessions N            concurrent sessions (default 1)\n"
        "  --calls K               tool calls per session, closed loop (default 100)\n"
        "  --duration S            run calls for S seconds instead of --calls\n"
        "  --rate R                open loop: R calls/s in total, latency from each scheduled time\n"
        "  --tool NAME             tool to call (default echo; <server>__echo also matches tools/list)\n"
        "  --args JSON             arguments template (default {\"message\":\"hello\"}); \"{n}\" in a "
        "string\n"
        "                          is replaced by a per-call counter, else one is appended to message;\n"
        "                          an echo result must equal the message sent\n"
        "  --bearer TOKEN          send Authorization: Bearer TOKEN\n"
        "  --protocol V            protocolVersion / MCP-Protocol-Version (default 2025-11-25)\n"
        "  --stateless             the 2026-07-28 stateless form (not implemented yet)\n"
        "  --connect-timeout S     TCP connect timeout (default 5)\n"
        "  --timeout S             per-request timeout (default 30)\n"
        "  --setup-concurrency N   sessions being set up at once (default 256)\n"
        "  --hold S                open the sessions, keep them idle S seconds, then DELETE\n"
        "  --rss-pid PID           sample VmRSS of PID and its descendants (before, with sessions, after)\n"
        "  --raw-post              no MCP lifecycle: POST a constant tools/call, count HTTP 200s\n"
        "  --cold-start            spawn CMD, time exec->--health-url 200 and exec->first tool call\n"
        "  --health-url URL        health endpoint for --cold-start (default: /healthz on --url's host)\n"
        "  --label TEXT            echoed in the report\n"
        "  --json                  print one JSON object instead of the table\n");
}

int mg_bench_url_parse(const char *url, struct sockaddr_in *addr, char *hostport, size_t hpn, char *path,
                       size_t pn)
{
    if (url == NULL || strncmp(url, "http://", 7) != 0)
        return -1;
    const char *h = url + 7;
    const char *slash = strchr(h, '/');
    size_t alen = slash ? (size_t)(slash - h) : strlen(h);
    char auth[128], host[128];
    if (alen == 0 || alen >= sizeof auth)
        return -1;
    memcpy(auth, h, alen);
    auth[alen] = '\0';
    int port = 80;
    char *colon = strrchr(auth, ':');
    if (colon != NULL) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end != '\0' || p <= 0 || p > 65535)
            return -1;
        port = (int)p;
        *colon = '\0';
    }
    snprintf(host, sizeof host, "%s", strcmp(auth, "localhost") == 0 ? "127.0.0.1" : auth);
    if (uv_ip4_addr(host, port, addr) != 0)
        return -1;
    snprintf(hostport, hpn, "%s:%d", host, port);
    snprintf(path, pn, "%s", slash ? slash : "/");
    return 0;
}

static int parse_double(const char *s, double min, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || v < min)
        return -1;
    *out = v;
    return 0;
}

static int parse_u64(const char *s, uint64_t min, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v < min)
        return -1;
    *out = v;
    return 0;
}

enum {
    O_URL = 256,
    O_SESSIONS,
    O_CALLS,
    O_RATE,
    O_DURATION,
    O_TOOL,
    O_ARGS,
    O_BEARER,
    O_PROTOCOL,
    O_STATELESS,
    O_CONNECT_TIMEOUT,
    O_TIMEOUT,
    O_JSON,
    O_HOLD,
    O_RAW,
    O_SETUP,
    O_RSS,
    O_COLD,
    O_HEALTH,
    O_LABEL,
    O_HELP
};

static const struct option longopts[] = {{"url", required_argument, NULL, O_URL},
                                         {"sessions", required_argument, NULL, O_SESSIONS},
                                         {"calls", required_argument, NULL, O_CALLS},
                                         {"rate", required_argument, NULL, O_RATE},
                                         {"duration", required_argument, NULL, O_DURATION},
                                         {"tool", required_argument, NULL, O_TOOL},
                                         {"args", required_argument, NULL, O_ARGS},
                                         {"bearer", required_argument, NULL, O_BEARER},
                                         {"protocol", required_argument, NULL, O_PROTOCOL},
                                         {"stateless", no_argument, NULL, O_STATELESS},
                                         {"connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT},
                                         {"timeout", required_argument, NULL, O_TIMEOUT},
                                         {"json", no_argument, NULL, O_JSON},
                                         {"hold", required_argument, NULL, O_HOLD},
                                         {"raw-post", no_argument, NULL, O_RAW},
                                         {"setup-concurrency", required_argument, NULL, O_SETUP},
                                         {"rss-pid", required_argument, NULL, O_RSS},
                                         {"cold-start", no_argument, NULL, O_COLD},
                                         {"health-url", required_argument, NULL, O_HEALTH},
                                         {"label", required_argument, NULL, O_LABEL},
                                         {"help", no_argument, NULL, O_HELP},
                                         {NULL, 0, NULL, 0}};

static int bad(const char *what)
{
    fprintf(stderr, "mcpgate-bench: %s (see --help)\n", what);
    return 2;
}

int main(int argc, char **argv)
{
    mg_bench_opts_t o = {0};
    o.sessions = 1;
    o.tool = "echo";
    o.args = "{\"message\":\"hello\"}";
    o.protocol = "2025-11-25";
    o.connect_timeout = 5;
    o.timeout = 30;
    o.setup_concurrency = 256;
    o.max_body = 16u << 20;
    uint64_t u;
    char health_default[600];
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_URL:
            o.url = optarg;
            break;
        case O_SESSIONS:
            if (parse_u64(optarg, 1, &u) != 0 || u > 1000000)
                return bad("--sessions must be an integer in [1, 1000000]");
            o.sessions = (unsigned)u;
            break;
        case O_CALLS:
            if (parse_u64(optarg, 1, &o.calls) != 0)
                return bad("--calls must be an integer >= 1");
            break;
        case O_RATE:
            if (parse_double(optarg, 0.001, &o.rate) != 0)
                return bad("--rate must be a number of calls/s > 0");
            break;
        case O_DURATION:
            if (parse_double(optarg, 0.001, &o.duration) != 0)
                return bad("--duration must be a number of seconds > 0");
            break;
        case O_TOOL:
            o.tool = optarg;
            break;
        case O_ARGS:
            o.args = optarg;
            break;
        case O_BEARER:
            o.bearer = optarg;
            break;
        case O_PROTOCOL:
            o.protocol = optarg;
            break;
        case O_STATELESS:
            o.stateless = 1;
            break;
        case O_CONNECT_TIMEOUT:
            if (parse_double(optarg, 0.001, &o.connect_timeout) != 0)
                return bad("--connect-timeout must be a number of seconds > 0");
            break;
        case O_TIMEOUT:
            if (parse_double(optarg, 0.001, &o.timeout) != 0)
                return bad("--timeout must be a number of seconds > 0");
            break;
        case O_JSON:
            o.json = 1;
            break;
        case O_HOLD:
            if (parse_double(optarg, 0.001, &o.hold) != 0)
                return bad("--hold must be a number of seconds > 0");
            break;
        case O_RAW:
            o.raw_post = 1;
            break;
        case O_SETUP:
            if (parse_u64(optarg, 1, &u) != 0 || u > 1000000)
                return bad("--setup-concurrency must be an integer >= 1");
            o.setup_concurrency = (unsigned)u;
            break;
        case O_RSS:
            if (parse_u64(optarg, 1, &u) != 0 || u > 0x7fffffff)
                return bad("--rss-pid must be a process id");
            o.rss_pid = (int)u;
            break;
        case O_COLD:
            o.cold_start = 1;
            break;
        case O_HEALTH:
            o.health_url = optarg;
            break;
        case O_LABEL:
            o.label = optarg;
            break;
        case 'h':
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (o.stateless) {
        fprintf(stderr,
                "mcpgate-bench: --stateless (the 2026-07-28 stateless form: server/discover, per-request "
                "_meta and Mcp-Method/Mcp-Name headers) is not implemented yet; use the session form "
                "(--protocol 2025-11-25)\n");
        return 2;
    }
    if (o.url == NULL)
        return bad("--url http://127.0.0.1:PORT/mcp is required");
    if (mg_bench_url_parse(o.url, &o.addr, o.hostport, sizeof o.hostport, o.path, sizeof o.path) != 0)
        return bad("--url must be http://IPv4:PORT/path (plain HTTP, numeric address or localhost)");
    for (const char *p = o.protocol; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '-'))
            return bad("--protocol must look like 2025-11-25");
    }
    if (o.calls > 0 && o.duration > 0)
        return bad("--calls and --duration exclude each other");
    if (o.calls == 0 && o.duration <= 0)
        o.calls = 100;
    if (o.hold > 0 && (o.rate > 0 || o.raw_post))
        return bad("--hold opens idle sessions: it excludes --rate and --raw-post");
    if (o.cold_start) {
        if (optind >= argc)
            return bad("--cold-start needs the command after --");
        o.cold_argv = argv + optind;
        o.sessions = 1;
        o.calls = 1;
        if (o.health_url == NULL) {
            snprintf(health_default, sizeof health_default, "http://%s/healthz", o.hostport);
            o.health_url = health_default;
        }
    } else if (optind < argc) {
        return bad("unexpected arguments (a command after -- is only for --cold-start)");
    }

    long nofile = mg_bench_proc_raise_nofile();
    if (nofile > 0 && (unsigned long)nofile < o.sessions + 64UL)
        fprintf(stderr,
                "mcpgate-bench: warning: RLIMIT_NOFILE is %ld (hard limit), below --sessions %u + 64; "
                "connections past it fail with EMFILE\n",
                nofile, o.sessions);

    mg_bench_stats_t st;
    mg_bench_stats_init(&st);
    const char *mode;
    int rc;
    if (o.cold_start) {
        mode = "cold-start";
        rc = mg_bench_run_cold_start(&o, &st);
    } else {
        mode = o.hold > 0   ? "hold"
               : o.raw_post ? (o.rate > 0 ? "raw-open" : "raw-closed")
               : o.rate > 0 ? "open"
                            : "closed";
        rc = mg_bench_run_load(&o, &st);
    }
    if (rc != 0 && o.cold_start == 0)
        return 2;
    mg_bench_stats_report(&st, &o, mode);
    if (rc != 0)
        return 1;
    return st.sessions_failed || st.calls_failed || st.calls_unsent ? 1 : 0;
}
