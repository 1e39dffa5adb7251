/*
 * cli_audit.c - `mcpgate audit`: arguments, then probes (probe_url.c or config_audit.c), verdicts
 * (verdict.c) and one rendering (report.c). --record writes the recording (token-free) and
 * --replay judges a recording without sending anything: how a run is reproduced or attached to a
 * bug report. Exit status: 0, or 1 when --fail-on is met (default: a check failed), 2 usage error.
 * Read next: audit.h, docs/audit.md.
 */
#include "audit_int.h"
#include "../common/err.h"
#include "../common/json.h"
#include "../common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: mcpgate audit URL [--token T | --token-file F] [--header 'K: V']... [options]\n"
    "       mcpgate audit --config FILE [--env-file F] [options]\n"
    "\n"
    "Runs the production checklist (transport, auth, sessions, context, env, tenant isolation, supply "
    "chain,\n"
    "robustness, 2026-07-28) against a live MCP endpoint or every server of a config, and prints each check\n"
    "as pass / warn / fail / skip with its evidence and a one-line fix (docs/audit.md).\n"
    "Probes are read-only and bounded: initialize, tools/list, ping, server/discover, DELETE of the "
    "sessions\n"
    "it opened, and deliberate misbehaviour (foreign Host/Origin, a fake query credential, an unknown "
    "session,\n"
    "a 5 MiB and a malformed body, a short burst). It calls no tool but --call's. The token goes to URL "
    "(and\n"
    "--replica) only, in the Authorization header, never in a query string.\n"
    "With --config, stdio servers also get a malformed line, an unknown method and a 2 MiB line over\n"
    "stdio, and remote (url) entries are judged (TLS, query credentials, header sources, the SSRF guard)\n"
    "and then probed like a URL with their own static headers, sent to their URL only.\n"
    "\n"
    "  --token T | --token-file F   bearer token (or env MCPGATE_AUDIT_TOKEN; a file keeps it out of ps)\n"
    "  --token2 T | --token2-file F a second principal's token: session binding, per-user lists\n"
    "  --token-other-audience T     a token issued for another resource: must be refused\n"
    "  --header 'K: V'              extra header for the target (repeatable, at most 6)\n"
    "  --replica URL                another replica of the same service: sessions must work there\n"
    "  --call TOOL [--call-args J]  the one tool the audit may call (2026-07-28, once or twice): a harmless\n"
    "                               tool that asks for input; its requestState is tampered with\n"
    "  --json | --sarif             JSON report (target, checks, summary) or SARIF 2.1.0\n"
    "  --fail-on fail|warn|never    exit 1 when a check failed (default) / warned or failed / never\n"
    "  --max-requests N             request budget (default 300; --config: per remote entry)\n"
    "  --time-limit S               total time limit in seconds (default 120)\n"
    "  --rate N                     own request rate per second, the burst excepted (default 20)\n"
    "  --burst N                    requests of the rate-limit burst (default 40, at most 200)\n"
    "  --timeout MS                 one exchange (default 10000); --config: also listing servers (default\n"
    "                               60000)\n"
    "  --progress | --no-progress   progress line on stderr (default: when stderr is a terminal)\n"
    "  --record FILE                write what was observed (never the token) to FILE\n"
    "  --replay FILE                judge a recording instead of probing (URL audits)\n"
    "Exit status: 0, 1 when --fail-on is met, 2 usage or config error.\n";

static char *read_secret(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    char *s = n ? strdup(buf) : NULL;
    memset(buf, 0, sizeof buf);
    return s;
}

static int parse_num(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int mg_cli_audit(int argc, char **argv)
{
    const char *url = NULL, *config = NULL, *env_file = NULL, *fail_on = "fail", *record = NULL,
               *replay = NULL;
    const char *token = getenv("MCPGATE_AUDIT_TOKEN"), *token2 = NULL, *other = NULL, *replica = NULL;
    const char *call = NULL, *call_args = NULL;
    char *owned[3] = {NULL, NULL, NULL};
    int json = 0, sarif = 0, progress = isatty(2);
    unsigned long max_req = 300, time_s = 120, rate = 20, burst = 40, timeout = 0;
    const char *hdrs[12];
    char hbuf[6][512];
    size_t nh = 0;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKE()                                                                                               \
    do {                                                                                                     \
        if (val == NULL) {                                                                                   \
            fprintf(stderr, "mcpgate audit: %s needs a value (mcpgate audit --help)\n", a);                  \
            goto out;                                                                                        \
        }                                                                                                    \
        i++;                                                                                                 \
    } while (0)
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            rc = 0;
            goto out;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--sarif") == 0) {
            sarif = 1;
        } else if (strcmp(a, "--progress") == 0) {
            progress = 1;
        } else if (strcmp(a, "--no-progress") == 0) {
            progress = 0;
        } else if (strcmp(a, "--config") == 0) {
            TAKE();
            config = val;
        } else if (strcmp(a, "--env-file") == 0) {
            TAKE();
            env_file = val;
        } else if (strcmp(a, "--token") == 0) {
            TAKE();
            token = val;
        } else if (strcmp(a, "--token2") == 0) {
            TAKE();
            token2 = val;
        } else if (strcmp(a, "--token-other-audience") == 0) {
            TAKE();
            other = val;
        } else if (strcmp(a, "--token-file") == 0 || strcmp(a, "--token2-file") == 0) {
            TAKE();
            int second = a[7] == '2';
            char *s = read_secret(val);
            if (s == NULL) {
                fprintf(stderr, "mcpgate audit: %s %s: cannot read it, or it is empty\n", a, val);
                goto out;
            }
            free(owned[second]);
            owned[second] = s;
            if (second)
                token2 = s;
            else
                token = s;
        } else if (strcmp(a, "--header") == 0) {
            TAKE();
            const char *colon = strchr(val, ':');
            if (colon == NULL || colon == val || nh >= 6) {
                fprintf(stderr, "mcpgate audit: --header needs 'Name: value' (at most 6), got '%s'\n", val);
                goto out;
            }
            snprintf(hbuf[nh], sizeof hbuf[nh], "%s", val);
            hbuf[nh][colon - val] = '\0';
            const char *v = hbuf[nh] + (colon - val) + 1;
            while (*v == ' ')
                v++;
            hdrs[2 * nh] = hbuf[nh];
            hdrs[2 * nh + 1] = v;
            nh++;
        } else if (strcmp(a, "--call") == 0) {
            TAKE();
            call = val;
        } else if (strcmp(a, "--call-args") == 0) {
            TAKE();
            call_args = val;
        } else if (strcmp(a, "--replica") == 0) {
            TAKE();
            replica = val;
        } else if (strcmp(a, "--fail-on") == 0) {
            TAKE();
            if (strcmp(val, "fail") != 0 && strcmp(val, "warn") != 0 && strcmp(val, "never") != 0) {
                fprintf(stderr, "mcpgate audit: --fail-on takes fail, warn or never, got '%s'\n", val);
                goto out;
            }
            fail_on = val;
        } else if (strcmp(a, "--record") == 0) {
            TAKE();
            record = val;
        } else if (strcmp(a, "--replay") == 0) {
            TAKE();
            replay = val;
        } else if (strcmp(a, "--max-requests") == 0 || strcmp(a, "--time-limit") == 0 ||
                   strcmp(a, "--rate") == 0 || strcmp(a, "--burst") == 0 || strcmp(a, "--timeout") == 0) {
            TAKE();
            unsigned long *slot = strcmp(a, "--max-requests") == 0 ? &max_req
                                  : strcmp(a, "--time-limit") == 0 ? &time_s
                                  : strcmp(a, "--rate") == 0       ? &rate
                                  : strcmp(a, "--burst") == 0      ? &burst
                                                                   : &timeout;
            unsigned long hi = slot == &burst ? 200 : slot == &max_req ? 5000 : 3600000;
            if (parse_num(val, slot == &timeout ? 100 : 1, hi, slot) != 0) {
                fprintf(stderr, "mcpgate audit: %s needs a whole number from %d to %lu, got '%s'\n", a,
                        slot == &timeout ? 100 : 1, hi, val);
                goto out;
            }
        } else if (a[0] != '-' && url == NULL) {
            url = a;
        } else {
            fprintf(stderr, "mcpgate audit: unknown argument '%s' (mcpgate audit --help)\n", a);
            goto out;
        }
#undef TAKE
    }
    if ((url == NULL) == (config == NULL) && replay == NULL) {
        fprintf(stderr, "mcpgate audit: give a URL or --config FILE (one of them)\n%s", usage);
        goto out;
    }
    if (json && sarif) {
        fprintf(stderr, "mcpgate audit: --json and --sarif exclude each other\n");
        goto out;
    }
    if (url != NULL && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        fprintf(stderr, "mcpgate audit: %s is not an http:// or https:// URL\n", url);
        goto out;
    }
    if (url != NULL && strchr(url, '?') != NULL &&
        (strcasestr(url, "token") || strcasestr(url, "key") || strcasestr(url, "auth") ||
         strcasestr(url, "secret") || strcasestr(url, "password"))) {
        /* The query is sent with every probe; a credential there would leak to logs. */
        fprintf(stderr,
                "mcpgate audit: the URL's query looks like it holds a credential: give it with --token "
                "(or --header) instead\n");
        goto out;
    }
    mg_log_set_level(MG_LOG_ERROR);

    mg_audit_report_t rep;
    if (mg_audit_report_init(&rep, config ? config : url ? url : replay) != 0) {
        fprintf(stderr, "mcpgate audit: out of memory\n");
        rc = 1;
        goto out;
    }
    if (config != NULL) {
        mg_audit_limits_t lim = {(unsigned)max_req, time_s * 1000, (unsigned)rate, timeout ? timeout : 10000,
                                 progress};
        rc = mg_audit_config(config, env_file, timeout ? timeout : 60000, &lim, (unsigned)burst, &rep);
        if (rc != 0) {
            mg_audit_report_dispose(&rep);
            goto out;
        }
    } else {
        json_t *rec = NULL;
        if (replay != NULL) {
            json_error_t je;
            rec = json_load_file(replay, 0, &je);
            if (rec == NULL) {
                fprintf(stderr, "mcpgate audit: --replay %s: %s (line %d)\n", replay, je.text, je.line);
                mg_audit_report_dispose(&rep);
                goto out;
            }
            if (url == NULL && json_is_string(json_object_get(rec, "target"))) {
                free(rep.target);
                rep.target = strdup(json_string_value(json_object_get(rec, "target")));
            }
        } else {
            mg_audit_url_opts_t o = {0};
            o.url = url;
            o.token = token;
            o.token2 = token2;
            o.token_other_aud = other;
            o.replica = replica;
            o.call = call;
            o.call_args = call_args;
            o.headers = hdrs;
            o.nheaders = nh;
            o.burst = (unsigned)burst;
            o.limits = (mg_audit_limits_t){(unsigned)max_req, time_s * 1000, (unsigned)rate,
                                           timeout ? timeout : 10000, progress};
            rec = mg_audit_probe_url(&o);
        }
        if (rec == NULL) {
            fprintf(stderr, "mcpgate audit: out of memory\n");
            mg_audit_report_dispose(&rep);
            rc = 1;
            goto out;
        }
        if (record != NULL && json_dump_file(rec, record, JSON_INDENT(1)) != 0)
            fprintf(stderr, "mcpgate audit: --record %s: cannot write it\n", record);
        mg_audit_verdict_url(rec, &rep);
        json_decref(rec);
    }
    json_t *doc = json ? mg_audit_report_json(&rep) : sarif ? mg_audit_report_sarif(&rep) : NULL;
    if (doc != NULL) {
        char *text = json_dumps(doc, JSON_INDENT(2));
        if (text != NULL)
            puts(text);
        free(text);
        json_decref(doc);
    } else {
        mg_audit_report_print(&rep, stdout);
    }
    fflush(stdout);
    rc = mg_audit_report_exit(&rep, fail_on);
    mg_audit_report_dispose(&rep);
out:
    for (int k = 0; k < 3; k++) {
        if (owned[k] != NULL)
            memset(owned[k], 0, strlen(owned[k]));
        free(owned[k]);
    }
    return rc;
}
