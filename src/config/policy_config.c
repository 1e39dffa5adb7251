/*
 * policy_config.c - parses the policy keys of the config file: gateway.pinning, gateway.lockFile,
 * gateway.scan, gateway.cors, gateway.rateLimits, and a server entry's "pinning", "scan" and
 * "sandbox". config.c hands each of these keys here (policy_config.h); every problem is reported
 * through ops->err and the walk goes on. Defaults are applied here; the runtime never re-reads.
 * The sandbox config's rlimit key names and its free are here too (sandbox_config.h).
 * Read next: docs/configuration.md (the keys), docs/security.md (what they do).
 */
#include "policy_config.h"
#include "config.h"
#include "sandbox_config.h"
#include "../common/cfgval.h"

#include <ctype.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

const char *const mg_policy_gateway_keys[] = {"pinning", "lockFile", "scan", "cors", "rateLimits", NULL};
const char *const mg_policy_server_keys[] = {"pinning", "scan", "sandbox", NULL};

static const char *const sev_names[] = {"info", "low", "medium", "high", "critical"};

const char *mg_severity_name(mg_severity_t s)
{
    return (unsigned)s < 5 ? sev_names[s] : "?";
}

int mg_severity_parse(const char *s, mg_severity_t *out)
{
    for (int i = 0; s != NULL && i < 5; i++) {
        if (strcmp(s, sev_names[i]) == 0) {
            *out = (mg_severity_t)i;
            return 0;
        }
    }
    return -1;
}

const char *mg_pin_mode_name(mg_pin_mode_t m)
{
    return m == MG_PIN_OFF ? "off" : m == MG_PIN_WARN ? "warn" : m == MG_PIN_BLOCK ? "block" : "default";
}

const char *mg_scan_mode_name(mg_scan_mode_t m)
{
    return m == MG_SCAN_OFF ? "off" : m == MG_SCAN_BLOCK ? "block" : "warn";
}

static void errf(const mg_policy_config_ops_t *ops, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void errf(const mg_policy_config_ops_t *ops, const char *fmt, ...)
{
    char m[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    ops->err(ops->ctx, m);
}

/* Key names and other user text in messages: printable ASCII only, at most ~60 bytes. */
static const char *quote(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 4 < cap && o < 60; s++)
        buf[o++] =
            (unsigned char)*s < 0x20 || *s == '"' || *s == '\'' || (unsigned char)*s >= 0x7f ? '?' : *s;
    if (*s)
        memcpy(buf + o, "...", 3), o += 3;
    buf[o] = '\0';
    return buf;
}

static int in_list(const char *k, const char *const *l)
{
    for (size_t i = 0; l[i] != NULL; i++)
        if (strcmp(k, l[i]) == 0)
            return 1;
    return 0;
}

/* The typed readers' sink (common/cfgval.h) over ops, for one read. */
static mg_cfg_t reader(const mg_policy_config_ops_t *ops)
{
    return (mg_cfg_t){ops->ctx, ops->err, ops->expand, quote, 0, 0};
}

static void unknown(const mg_policy_config_ops_t *ops, const char *where, const char *key,
                    const char *const *known)
{
    mg_cfg_t c = reader(ops);
    mg_cfg_unknown_key(&c, where, key, known, (size_t)-1, 300, 0);
}

static int get_uint(const mg_policy_config_ops_t *ops, const char *where, const json_t *v, uint64_t lo,
                    uint64_t hi, uint64_t *out)
{
    mg_cfg_t c = reader(ops);
    return mg_cfg_uint(&c, where, v, lo, hi, MG_CFG_HINT, out);
}

static int get_bool(const mg_policy_config_ops_t *ops, const char *where, const json_t *v, int *out)
{
    mg_cfg_t c = reader(ops);
    return mg_cfg_bool(&c, where, v, MG_CFG_KIND, out);
}

/* A string, expanded. Returns malloc'd text or NULL (reported). */
static char *get_str(const mg_policy_config_ops_t *ops, const char *where, const json_t *v, int lenient)
{
    mg_cfg_t c = reader(ops);
    char *out = NULL;
    mg_cfg_string(&c, where, v, lenient ? MG_CFG_LENIENT : 0, &out);
    return out;
}

static int get_str_array(const mg_policy_config_ops_t *ops, const char *where, const json_t *v, int lenient,
                         char ***vec, size_t *n)
{
    mg_cfg_t c = reader(ops);
    return mg_cfg_string_array(&c, where, v, lenient ? MG_CFG_LENIENT : 0, vec, n);
}

static int parse_pin_mode(const mg_policy_config_ops_t *ops, const char *where, const json_t *v,
                          mg_pin_mode_t *out)
{
    const char *s = json_string_value(v);
    if (s != NULL && strcmp(s, "block") == 0)
        *out = MG_PIN_BLOCK;
    else if (s != NULL && strcmp(s, "warn") == 0)
        *out = MG_PIN_WARN;
    else if (s != NULL && strcmp(s, "off") == 0)
        *out = MG_PIN_OFF;
    else {
        errf(ops,
             "%s: must be \"block\" (refuse definitions that differ from mcpgate.lock), \"warn\" (log them) "
             "or \"off\"",
             where);
        return -1;
    }
    return 0;
}

static int parse_scan_mode(const mg_policy_config_ops_t *ops, const char *where, const json_t *v,
                           mg_scan_mode_t *out)
{
    const char *s = json_string_value(v);
    if (s != NULL && strcmp(s, "block") == 0)
        *out = MG_SCAN_BLOCK;
    else if (s != NULL && strcmp(s, "warn") == 0)
        *out = MG_SCAN_WARN;
    else if (s != NULL && strcmp(s, "off") == 0)
        *out = MG_SCAN_OFF;
    else {
        errf(ops, "%s: must be \"block\", \"warn\" or \"off\"", where);
        return -1;
    }
    return 0;
}

/* ---- gateway.scan ---- */

static void scan_mode_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    parse_scan_mode(arg, where, v, &((mg_policy_config_t *)dst)->scan.mode);
}

static void block_at_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    if (mg_severity_parse(json_string_value(v), &((mg_policy_config_t *)dst)->scan.block_at) != 0)
        mg_cfg_errf(c, "%s: must be one of info, low, medium, high, critical", where);
}

static void rules_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    mg_policy_config_t *pc = dst;
    free(pc->scan.rules_file);
    pc->scan.rules_file = get_str(arg, where, v, 0);
    struct stat st;
    if (pc->scan.rules_file != NULL && stat(pc->scan.rules_file, &st) != 0)
        mg_cfg_errf(c, "%s: the rules file cannot be read", where);
}

static const mg_cfg_field_t scan_fields[] = {
    {"mode", MG_CFG_T_NONE, 0, 0, 0, 0, 0, scan_mode_read},
    {"blockSeverity", MG_CFG_T_NONE, 0, 0, 0, 0, 0, block_at_read},
    {"rules", MG_CFG_T_NONE, 0, 0, 0, 0, 0, rules_read},
    {"disable", MG_CFG_T_STRINGS, MG_CFG_AT(mg_policy_config_t, scan.disable),
     MG_CFG_AT(mg_policy_config_t, scan.ndisable), 0, 0, 0, NULL},
    MG_CFG_FIELD_END,
};
static const mg_cfg_object_t scan_object = {"gateway.scan", scan_fields, NULL, (size_t)-1, 0, 300, 0};

static void parse_scan(mg_policy_config_t *pc, const json_t *v, const mg_policy_config_ops_t *ops)
{
    if (json_is_string(v)) {
        parse_scan_mode(ops, "gateway.scan", v, &pc->scan.mode);
        return;
    }
    if (!json_is_object(v)) {
        errf(ops, "gateway.scan: must be \"block\", \"warn\", \"off\" or an object, not %s", mg_cfg_kind(v));
        return;
    }
    mg_cfg_t rd = reader(ops);
    mg_cfg_walk(&rd, &scan_object, v, pc, (void *)ops);
}

/* ---- gateway.cors ---- */

static int origin_ok(const char *s)
{
    const char *p = strncasecmp(s, "https://", 8) == 0  ? s + 8
                    : strncasecmp(s, "http://", 7) == 0 ? s + 7
                                                        : NULL;
    if (p == NULL || *p == '\0')
        return 0;
    for (; *p; p++)
        if (*p == '/' || *p == '?' || *p == '#' || *p == ' ' || *p == '*')
            return 0;
    return 1;
}

#define C(f) MG_CFG_AT(mg_cors_config_t, f)
static const mg_cfg_field_t cors_fields[] = {
    {"allowedOrigins", MG_CFG_T_STRINGS, C(origins), C(norigins), 0, 0, 0, NULL},
    {"allowCredentials", MG_CFG_T_BOOL, C(allow_credentials), 0, 0, 0, MG_CFG_KIND, NULL},
    {"maxAgeSeconds", MG_CFG_T_UNSIGNED, C(max_age_s), 0, 0, 86400, MG_CFG_HINT, NULL},
    MG_CFG_FIELD_END,
};
#undef C
static const mg_cfg_object_t cors_object = {"gateway.cors", cors_fields, NULL, 0, 0, 300, 0};

static void parse_cors(mg_policy_config_t *pc, const json_t *v, const mg_policy_config_ops_t *ops)
{
    mg_cors_config_t *c = &pc->cors;
    if (!json_is_object(v)) {
        errf(ops,
             "gateway.cors: must be an object like {\"allowedOrigins\": [\"https://app.example.com\"]}, "
             "not %s",
             mg_cfg_kind(v));
        return;
    }
    c->enabled = 1;
    mg_cfg_t rd = reader(ops);
    mg_cfg_walk(&rd, &cors_object, v, c, NULL);
    if (c->norigins == 0) {
        errf(ops, "gateway.cors.allowedOrigins: list at least one origin (e.g. \"https://app.example.com\"); "
                  "remove gateway.cors to keep CORS off");
    }
    for (size_t i = 0; i < c->norigins; i++) {
        char q[80];
        if (strcmp(c->origins[i], "*") == 0) {
            c->any = 1;
            if (c->allow_credentials)
                errf(ops,
                     "gateway.cors: \"*\" cannot be combined with allowCredentials: true (any site could "
                     "make credentialed requests): list the origins");
        } else if (!origin_ok(c->origins[i])) {
            errf(ops,
                 "gateway.cors.allowedOrigins[%zu]: '%s' is not an origin: use scheme://host[:port] with "
                 "no path, e.g. https://app.example.com",
                 i, quote(c->origins[i], q, sizeof q));
        }
    }
}

/* ---- gateway.rateLimits ---- */

/* A limit as written: perSeconds becomes the rule's per_ms. */
typedef struct rule_in {
    uint64_t requests, per, burst;
} rule_in_t;

static const mg_cfg_field_t rule_fields[] = {
    {"requests", MG_CFG_T_U64, MG_CFG_AT(rule_in_t, requests), 0, 1, 1000000, MG_CFG_HINT, NULL},
    {"perSeconds", MG_CFG_T_U64, MG_CFG_AT(rule_in_t, per), 0, 1, 86400, MG_CFG_HINT, NULL},
    {"burst", MG_CFG_T_U64, MG_CFG_AT(rule_in_t, burst), 0, 1, 1000000, MG_CFG_HINT, NULL},
    MG_CFG_FIELD_END,
};

static int parse_rule(const mg_policy_config_ops_t *ops, const char *where, const json_t *v,
                      mg_rate_rule_t *r)
{
    if (!json_is_object(v)) {
        errf(ops, "%s: must be an object like {\"requests\": 60, \"perSeconds\": 60}, not %s", where,
             mg_cfg_kind(v));
        return -1;
    }
    rule_in_t in = {0, 1, 0};
    mg_cfg_t rd = reader(ops);
    mg_cfg_object_t o = {where, rule_fields, NULL, 0, 0, 300, 0};
    mg_cfg_walk(&rd, &o, v, &in, NULL);
    int rc = rd.bad ? -1 : 0;
    r->requests = in.requests;
    r->burst = in.burst;
    uint64_t per = in.per;
    if (r->requests == 0) {
        errf(ops, "%s: \"requests\" is required (tokens per perSeconds)", where);
        return -1;
    }
    r->per_ms = per * 1000;
    if (r->burst == 0)
        r->burst = r->requests;
    return rc;
}

static void principal_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    mg_rate_config_t *rc = dst;
    rc->has_principal = parse_rule(arg, where, v, &rc->principal) == 0;
}

static void tenant_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    mg_rate_config_t *rc = dst;
    rc->has_tenant = parse_rule(arg, where, v, &rc->tenant) == 0;
}

static void tools_read(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    mg_rate_config_t *rc = dst;
    if (!json_is_object(v)) {
        mg_cfg_errf(c,
                    "%s: must be an object mapping tool-name globs to limits, e.g. {\"github__*\": "
                    "{\"requests\": 30, \"perSeconds\": 60}}",
                    where);
        return;
    }
    rc->tools = calloc(json_object_size(v) + 1, sizeof *rc->tools);
    const char *glob;
    json_t *r;
    json_object_foreach((json_t *)v, glob, r)
    {
        char w2[200], q[80];
        snprintf(w2, sizeof w2, "%s.%s", where, quote(glob, q, sizeof q));
        mg_rate_rule_t *t = &rc->tools[rc->ntools];
        if (parse_rule(arg, w2, r, t) == 0) {
            t->glob = strdup(glob);
            rc->ntools++;
        }
    }
}

static void store_check(mg_cfg_t *c, const char *where, const json_t *v, int ok, void *dst, void *arg)
{
    const char *st = ((mg_rate_config_t *)dst)->store;
    if (ok && strcmp(st, "local") != 0 && strcmp(st, "redis") != 0 && strcmp(st, "shared") != 0)
        mg_cfg_errf(c,
                    "%s: must be \"local\" (each replica counts on its own) or \"shared\" (buckets shared by "
                    "every replica, in the Redis or PostgreSQL of gateway.sessions.store; \"redis\" is the "
                    "same); unset = \"shared\" when sessions are shared, else \"local\"",
                    where);
}

static const mg_cfg_field_t rate_fields[] = {
    {"methods", MG_CFG_T_STRINGS, MG_CFG_AT(mg_rate_config_t, methods), MG_CFG_AT(mg_rate_config_t, nmethods),
     0, 0, 0, NULL},
    {"principal", MG_CFG_T_NONE, 0, 0, 0, 0, 0, principal_read},
    {"tenant", MG_CFG_T_NONE, 0, 0, 0, 0, 0, tenant_read},
    {"tools", MG_CFG_T_NONE, 0, 0, 0, 0, 0, tools_read},
    {"store", MG_CFG_T_STRING, MG_CFG_AT(mg_rate_config_t, store), 0, 0, 0, 0, store_check},
    MG_CFG_FIELD_END,
};
static const mg_cfg_object_t rate_object = {"gateway.rateLimits", rate_fields, NULL, (size_t)-1, 0, 300, 0};

static void parse_rate(mg_policy_config_t *pc, const json_t *v, const mg_policy_config_ops_t *ops)
{
    mg_rate_config_t *rc = &pc->rate;
    if (!json_is_object(v)) {
        errf(ops, "gateway.rateLimits: must be an object, not %s", mg_cfg_kind(v));
        return;
    }
    rc->enabled = 1;
    mg_cfg_t rd = reader(ops);
    mg_cfg_walk(&rd, &rate_object, v, rc, (void *)ops);
    if (rc->methods == NULL) {
        rc->methods = calloc(2, sizeof *rc->methods);
        if (rc->methods != NULL && (rc->methods[0] = strdup("tools/call")) != NULL)
            rc->nmethods = 1;
    }
    if (!rc->has_principal && !rc->has_tenant && rc->ntools == 0)
        errf(ops, "gateway.rateLimits: set at least one of principal, tenant, tools (or remove rateLimits)");
}

/* ---- entry points ---- */

static mg_policy_config_t *alloc_pc(mg_policy_config_t **pc)
{
    if (*pc == NULL) {
        *pc = calloc(1, sizeof **pc);
        if (*pc != NULL) {
            (*pc)->scan.mode = MG_SCAN_WARN;
            (*pc)->scan.block_at = MG_SEV_HIGH;
            (*pc)->cors.max_age_s = 600;
        }
    }
    return *pc;
}

int mg_policy_config_gateway_key(mg_policy_config_t **pcp, const char *key, const json_t *v,
                                 const mg_policy_config_ops_t *ops)
{
    if (!in_list(key, mg_policy_gateway_keys))
        return 0;
    mg_policy_config_t *pc = alloc_pc(pcp);
    if (pc == NULL)
        return 1;
    if (strcmp(key, "pinning") == 0) {
        parse_pin_mode(ops, "gateway.pinning", v, &pc->pinning);
    } else if (strcmp(key, "lockFile") == 0) {
        free(pc->lock_file);
        pc->lock_file = get_str(ops, "gateway.lockFile", v, 0);
        if (pc->lock_file != NULL && pc->lock_file[0] == '\0')
            errf(ops, "gateway.lockFile: must not be empty (remove it to use the lockfile named after the "
                      "config, beside it)");
    } else if (strcmp(key, "scan") == 0) {
        parse_scan(pc, v, ops);
    } else if (strcmp(key, "cors") == 0) {
        parse_cors(pc, v, ops);
    } else if (strcmp(key, "rateLimits") == 0) {
        parse_rate(pc, v, ops);
    }
    return 1;
}

/* "user": a name (looked up now), "uid" or "uid:gid". */
static int parse_user(const mg_policy_config_ops_t *ops, const char *where, const char *s, int lenient,
                      mg_sandbox_config_t *sb)
{
    char q[80];
    if (isdigit((unsigned char)s[0])) {
        char *end;
        unsigned long u = strtoul(s, &end, 10), g = u;
        if (*end == ':')
            g = strtoul(end + 1, &end, 10);
        if (*end != '\0' || u > 0xfffffffeul || g > 0xfffffffeul) {
            errf(ops, "%s: '%s' is not a user name, uid or uid:gid", where, quote(s, q, sizeof q));
            return -1;
        }
        sb->uid = (unsigned)u;
        sb->gid = (unsigned)g;
        return 0;
    }
    struct passwd *pw = getpwnam(s);
    if (pw == NULL) {
        if (!lenient)
            errf(ops, "%s: user '%s' does not exist on this machine (create it, or give uid:gid)", where,
                 quote(s, q, sizeof q));
        return -1;
    }
    sb->uid = pw->pw_uid;
    sb->gid = pw->pw_gid;
    return 0;
}

static void parse_sandbox(mg_server_config_t *s, const char *sw, const json_t *v, int lenient,
                          const mg_policy_config_ops_t *ops)
{
    static const char *const keys[] = {"user", "noNewPrivileges", "rlimits", "landlock", "seccomp", NULL};
    static const char *const ll_keys[] = {"read", "write", "systemPaths", "connectTcp", NULL};
    char where[200];
    snprintf(where, sizeof where, "%s: sandbox", sw);
    if (!json_is_object(v)) {
        errf(ops,
             "%s: must be an object, e.g. {\"user\": \"nobody\", \"rlimits\": {\"openFiles\": 256}}, not %s",
             where, mg_cfg_kind(v));
        return;
    }
    mg_sandbox_config_t *sb = calloc(1, sizeof *sb);
    if (sb == NULL)
        return;
    mg_sandbox_config_free(s->sandbox);
    s->sandbox = sb;
    sb->no_new_privs = 1;
    int nnp_explicit = -1;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        char w[240];
        snprintf(w, sizeof w, "%s.%s", where, k);
        if (strcmp(k, "user") == 0) {
            sb->user = get_str(ops, w, x, lenient);
            if (sb->user != NULL && parse_user(ops, w, sb->user, lenient, sb) != 0 && lenient) {
                free(sb->user);
                sb->user = NULL;
            }
        } else if (strcmp(k, "noNewPrivileges") == 0) {
            if (get_bool(ops, w, x, &sb->no_new_privs) == 0)
                nnp_explicit = sb->no_new_privs;
        } else if (strcmp(k, "rlimits") == 0) {
            if (!json_is_object(x)) {
                errf(ops, "%s: must be an object, e.g. {\"openFiles\": 256, \"memoryBytes\": 1073741824}", w);
                continue;
            }
            const char *rk;
            json_t *rv;
            json_object_foreach(x, rk, rv)
            {
                char w2[280], q[80];
                if (snprintf(w2, sizeof w2, "%s.%s", w, quote(rk, q, sizeof q)) >= (int)sizeof w2)
                    w2[sizeof w2 - 1] = '\0'; /* a long name is cut short in messages */
                int found = -1;
                for (int i = 0; i < MG_SANDBOX_NRLIMITS; i++)
                    if (strcmp(rk, mg_sandbox_rlimit_keys[i]) == 0)
                        found = i;
                if (found < 0) {
                    unknown(ops, w, rk, mg_sandbox_rlimit_keys);
                    continue;
                }
                uint64_t lo = found == MG_SANDBOX_RL_MEMORY ? 1048576 : found == MG_SANDBOX_RL_CORE ? 0 : 1;
                if (get_uint(ops, w2, rv, lo, (uint64_t)1 << 62, &sb->rlimit[found]) == 0)
                    sb->has_rlimit[found] = 1;
            }
        } else if (strcmp(k, "landlock") == 0) {
            if (!json_is_object(x)) {
                errf(ops,
                     "%s: must be an object, e.g. {\"read\": [\"/srv/data\"], \"write\": [\"/tmp/mcp\"]}", w);
                continue;
            }
            sb->landlock = 1;
            sb->system_paths = 1;
            const char *lk;
            json_t *lv;
            json_object_foreach(x, lk, lv)
            {
                char w2[280];
                snprintf(w2, sizeof w2, "%s.%s", w, lk);
                if (strcmp(lk, "read") == 0 || strcmp(lk, "write") == 0) {
                    int rw = lk[0] == 'w';
                    char ***vec = rw ? &sb->rw : &sb->ro;
                    size_t *n = rw ? &sb->nrw : &sb->nro;
                    get_str_array(ops, w2, lv, lenient, vec, n);
                    for (size_t i = 0; i < *n; i++)
                        if ((*vec)[i][0] != '/')
                            errf(ops, "%s[%zu]: must be an absolute path", w2, i);
                } else if (strcmp(lk, "systemPaths") == 0) {
                    get_bool(ops, w2, lv, &sb->system_paths);
                } else if (strcmp(lk, "connectTcp") == 0) {
                    if (!json_is_array(lv)) {
                        errf(ops, "%s: must be an array of TCP ports ([] = no TCP at all)", w2);
                        continue;
                    }
                    sb->has_connect = 1;
                    sb->connect_ports = calloc(json_array_size(lv) + 1, sizeof *sb->connect_ports);
                    size_t i;
                    json_t *p;
                    json_array_foreach(lv, i, p)
                    {
                        char w3[320];
                        snprintf(w3, sizeof w3, "%s[%zu]", w2, i);
                        uint64_t port;
                        if (get_uint(ops, w3, p, 1, 65535, &port) == 0)
                            sb->connect_ports[sb->nconnect++] = (unsigned)port;
                    }
                } else {
                    unknown(ops, w, lk, ll_keys);
                }
            }
        } else if (strcmp(k, "seccomp") == 0) {
            if (json_is_string(x) && strcmp(json_string_value(x), "default") == 0) {
                sb->seccomp = 1;
            } else if (json_is_object(x)) {
                sb->seccomp = 1;
                const char *sk;
                json_t *sv;
                json_object_foreach(x, sk, sv)
                {
                    char w2[280];
                    snprintf(w2, sizeof w2, "%s.%s", w, sk);
                    if (strcmp(sk, "profile") == 0) {
                        if (!json_is_string(sv) || strcmp(json_string_value(sv), "default") != 0)
                            errf(ops, "%s: the only profile is \"default\"", w2);
                    } else if (strcmp(sk, "denyNetwork") == 0) {
                        get_bool(ops, w2, sv, &sb->deny_network);
                    } else {
                        static const char *const sc_keys[] = {"profile", "denyNetwork", NULL};
                        unknown(ops, w, sk, sc_keys);
                    }
                }
            } else {
                errf(ops, "%s: must be \"default\" or {\"profile\": \"default\", \"denyNetwork\": true}", w);
            }
        } else {
            unknown(ops, where, k, keys);
        }
    }
    if (nnp_explicit == 0 && (sb->landlock || sb->seccomp))
        errf(ops, "%s: noNewPrivileges false cannot be combined with landlock or seccomp (both need it)",
             where);
}

int mg_policy_config_server_key(mg_server_config_t *s, const char *sw, const char *key, const json_t *v,
                                int lenient, const mg_policy_config_ops_t *ops)
{
    if (!in_list(key, mg_policy_server_keys))
        return 0;
    char where[200];
    snprintf(where, sizeof where, "%s: %s", sw, key);
    if (strcmp(key, "sandbox") == 0) {
        parse_sandbox(s, sw, v, lenient, ops);
        return 1;
    }
    if (s->policy == NULL && (s->policy = calloc(1, sizeof *s->policy)) == NULL)
        return 1;
    if (strcmp(key, "pinning") == 0)
        parse_pin_mode(ops, where, v, &s->policy->pinning);
    else
        parse_scan_mode(ops, where, v, &s->policy->scan);
    return 1;
}

void mg_policy_config_finish(mg_config_t *cfg, const mg_policy_config_ops_t *ops)
{
    (void)ops;
    alloc_pc(&cfg->policy);
}

void mg_policy_config_free(mg_policy_config_t *pc)
{
    if (pc == NULL)
        return;
    free(pc->lock_file);
    free(pc->scan.rules_file);
    mg_cfg_strings_free(pc->scan.disable, pc->scan.ndisable);
    mg_cfg_strings_free(pc->cors.origins, pc->cors.norigins);
    mg_cfg_strings_free(pc->rate.methods, pc->rate.nmethods);
    for (size_t i = 0; i < pc->rate.ntools; i++)
        free(pc->rate.tools[i].glob);
    free(pc->rate.tools);
    free(pc->rate.store);
    free(pc);
}

const char *const mg_sandbox_rlimit_keys[MG_SANDBOX_NRLIMITS + 1] = {
    "memoryBytes", "processes", "openFiles", "cpuSeconds", "fileSizeBytes", "coreBytes", NULL};

void mg_sandbox_config_free(mg_sandbox_config_t *sb)
{
    if (sb == NULL)
        return;
    free(sb->user);
    for (size_t i = 0; sb->ro != NULL && i < sb->nro; i++)
        free(sb->ro[i]);
    free(sb->ro);
    for (size_t i = 0; sb->rw != NULL && i < sb->nrw; i++)
        free(sb->rw[i]);
    free(sb->rw);
    free(sb->connect_ports);
    free(sb);
}

void mg_server_policy_free(mg_server_policy_t *sp)
{
    free(sp);
}

mg_pin_mode_t mg_policy_pin_mode(const mg_config_t *cfg, const mg_server_config_t *s)
{
    if (s != NULL && s->policy != NULL && s->policy->pinning != MG_PIN_UNSET)
        return s->policy->pinning;
    return cfg->policy != NULL ? cfg->policy->pinning : MG_PIN_UNSET;
}

mg_scan_mode_t mg_policy_scan_mode(const mg_config_t *cfg, const mg_server_config_t *s)
{
    if (s != NULL && s->policy != NULL && s->policy->scan != MG_SCAN_UNSET)
        return s->policy->scan;
    return cfg->policy != NULL && cfg->policy->scan.mode != MG_SCAN_UNSET ? cfg->policy->scan.mode
                                                                          : MG_SCAN_WARN;
}

/* Directory part of cfg->path (with its '/') and the file name's stem: "a/servers.json" -> "a/",
 * "servers". A name ending in ".lock" keeps it whole, so the lockfile never is the config itself. */
static void split_config_path(const char *p, size_t *dir, size_t *stem_end)
{
    const char *slash = strrchr(p, '/');
    *dir = slash ? (size_t)(slash - p) + 1 : 0;
    const char *base = p + *dir;
    const char *dot = strrchr(base, '.');
    size_t bl = strlen(base);
    int is_lock = bl >= 5 && strcmp(base + bl - 5, ".lock") == 0;
    *stem_end = dot != NULL && dot != base && !is_lock ? (size_t)(dot - p) : *dir + bl;
}

char *mg_policy_lock_path(const mg_config_t *cfg)
{
    if (cfg->policy != NULL && cfg->policy->lock_file != NULL)
        return strdup(cfg->policy->lock_file);
    if (cfg->path == NULL || cfg->path[0] == '<')
        return NULL;
    size_t dir, stem_end;
    split_config_path(cfg->path, &dir, &stem_end);
    char *out = malloc(stem_end + sizeof ".lock");
    if (out == NULL)
        return NULL;
    memcpy(out, cfg->path, stem_end);
    memcpy(out + stem_end, ".lock", sizeof ".lock");
    return out;
}

char *mg_policy_lock_legacy_path(const mg_config_t *cfg)
{
    if ((cfg->policy != NULL && cfg->policy->lock_file != NULL) || cfg->path == NULL || cfg->path[0] == '<')
        return NULL;
    size_t dir, stem_end;
    split_config_path(cfg->path, &dir, &stem_end);
    if (stem_end - dir == strlen("mcpgate") && strncmp(cfg->path + dir, "mcpgate", 7) == 0)
        return NULL; /* mcpgate.json: its lock has always been mcpgate.lock */
    char *out = malloc(dir + sizeof "mcpgate.lock");
    if (out == NULL)
        return NULL;
    memcpy(out, cfg->path, dir);
    memcpy(out + dir, "mcpgate.lock", sizeof "mcpgate.lock");
    return out;
}
