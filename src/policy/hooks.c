/*
 * hooks.c - the policy runtime inside the gateway (hooks.h): pinning and scanning state per
 * upstream, rate-limit keys and answers, CORS headers and preflights, /readyz detail, metrics.
 *
 * Per upstream (index = gateway server index; every pool of a server shares it):
 *   state[kind]  {name: {"pin": "added"|"changed"|"removed", "fields": [...], "findings": [...],
 *                 "severity": "high", "blocked": bool}} for the entries of the latest fetched list
 *                 that differ from the lock or have findings; rebuilt on every fetch, so an upstream
 *                 that reverts a change is unblocked by its next list.
 *   seen         "pin|scan/<kind>/<name>/<sha256>" -> logged once, counted once in the metrics.
 * Read next: lock.h (what is compared), scan.h (findings), ratelimit.h (buckets).
 */
#include "hooks.h"
#include "../common/err.h"
#include "../common/log.h"
#include "../http/status.h"
#include "../session/shared.h"
#include "../obs/metrics.h"
#include "../upstream/sandbox.h"
#include "cors.h"
#include "lock.h"
#include "policy.h"
#include "ratelimit.h"
#include "scan.h"

#define H2O_USE_LIBUV 1
#include <arpa/inet.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BUCKETS 100000

typedef struct pin_server {
    const char *name;
    mg_pin_mode_t pin;   /* effective: OFF, WARN or BLOCK */
    mg_scan_mode_t scan; /* effective: OFF, WARN or BLOCK */
    const json_t *lock;  /* this server's entry in the lockfile (borrowed), NULL = absent */
    json_t *state[MG_LIST_COUNT];
    json_t *tool_names; /* {"<name>": true}: this server's tools, for other servers' shadowing checks */
    const char *instr;  /* instructions vs lock: "ok", "added", "changed", "removed", "none" */
    int instr_blocked;
    json_t *instr_findings;
    uint64_t drift_total;
    int removed; /* a reload removed the server: no shadowing, no metrics */
} pin_server_t;

struct mg_policy {
    const mg_config_t *cfg;
    json_t *lock;
    char *lock_path;
    char *lock_legacy;     /* the pins came from this shared mcpgate.lock (lock_path does not exist yet) */
    mg_scanner_t *scanner; /* use scanner(): with the built-in rules only, compiled on first use */
    int scanner_lazy;      /* 1 until that first use */
    mg_severity_t block_at;
    pin_server_t *servers;
    size_t n, cap;
    json_t *seen;
    mg_rl_store_t *rl;
    int rl_shared;           /* rl is the Redis store of every replica */
    int rl_failing;          /* the shared store's last take failed (logged once per outage) */
    uint64_t rl_rejected[3]; /* principal, tenant, tool */
    uint64_t rl_unavailable; /* refused with 503: the shared store did not answer */
    uint64_t preflights[2];  /* allowed, refused */
};

/* ---- startup ---- */

/* Loads the lockfile for cfg: *lock NEW or NULL (no file). *path_out is the config's lockfile;
 * *legacy_out, when set, the shared mcpgate.lock the pins were read from (mg_lock_load_for).
 * Returns 0 or MG_ECONFIG with why. */
static int load_lock(const mg_config_t *cfg, json_t **lock, char **path_out, char **legacy_out, char *why,
                     size_t n)
{
    *lock = NULL;
    *path_out = *legacy_out = NULL;
    int explicit_block = cfg->policy && cfg->policy->pinning == MG_PIN_BLOCK;
    for (size_t i = 0; i < cfg->nservers; i++)
        explicit_block |= cfg->servers[i].policy && cfg->servers[i].policy->pinning == MG_PIN_BLOCK &&
                          !cfg->servers[i].disabled;
    mg_lock_source_t src;
    int missing = 0;
    char w[400];
    *lock = mg_lock_load_for(cfg, NULL, &src, &missing, w, sizeof w);
    if (src.path == NULL) {
        if (explicit_block) {
            snprintf(why, n,
                     "pinning is \"block\" but the embedded config has no lockfile: use --config FILE "
                     "and run mcpgate lock --config FILE");
            return MG_ECONFIG;
        }
        return 0;
    }
    if (*lock == NULL && !missing) {
        snprintf(why, n, "lockfile %s (fix it, or delete it and run mcpgate lock again)", w);
        mg_lock_source_dispose(&src);
        return MG_ECONFIG;
    }
    if (*lock == NULL && explicit_block) {
        snprintf(why, n,
                 "pinning is \"block\" but %s does not exist: create it with mcpgate lock --config %s",
                 src.path, cfg->path);
        mg_lock_source_dispose(&src);
        return MG_ECONFIG;
    }
    *path_out = src.path;
    *legacy_out = src.legacy;
    return 0;
}

static int need_scanner(const mg_config_t *cfg)
{
    for (size_t i = 0; i < cfg->nservers; i++)
        if (!cfg->servers[i].disabled && mg_policy_scan_mode(cfg, &cfg->servers[i]) != MG_SCAN_OFF)
            return 1;
    return 0;
}

static int make_scanner(const mg_config_t *cfg, mg_scanner_t **out, char *why, size_t n)
{
    *out = NULL;
    if (!need_scanner(cfg))
        return 0;
    const mg_scan_config_t *s = cfg->policy ? &cfg->policy->scan : NULL;
    int rc =
        mg_scanner_new(s ? s->rules_file : NULL, s ? s->disable : NULL, s ? s->ndisable : 0, out, why, n);
    return rc == 0 ? 0 : MG_ECONFIG;
}

/* The compiled scanner (NULL when scanning is off), compiling the built-in rules on first use. */
static mg_scanner_t *scanner(mg_policy_t *pol)
{
    if (pol->scanner_lazy) {
        pol->scanner_lazy = 0;
        char why[600];
        if (make_scanner(pol->cfg, &pol->scanner, why, sizeof why) != 0)
            mg_log_json(MG_LOG_ERROR, "description scanner unavailable", json_pack("{s:s}", "error", why));
    }
    return pol->scanner;
}

/* The scanner mg_policy_validate() compiled, kept for mg_policy_new() with the same config: serve
 * validates then starts at once, and compiling the rules' regexes is ~6 M instructions (about 2 ms
 * before the gateway listens; bench/results/2026-11-21-perf.md). */
static mg_scanner_t *validated_scanner;
static char *validated_key; /* the scan settings it was compiled from (scan_key()) */

/* 1 when scanning uses only the built-in rules (no rules file, nothing disabled): they cannot fail
 * to compile, so their ~6 M instructions of regcomp wait for the first list to scan (after the
 * gateway listens) instead of delaying the start. */
static int builtin_rules_only(const mg_config_t *cfg)
{
    const mg_scan_config_t *s = cfg->policy ? &cfg->policy->scan : NULL;
    return s == NULL || (s->rules_file == NULL && s->ndisable == 0);
}

/* The settings a scanner depends on, as one malloc'd string: rules file, then each disabled id. */
static char *scan_key(const mg_config_t *cfg)
{
    const mg_scan_config_t *s = cfg->policy ? &cfg->policy->scan : NULL;
    size_t len = 2 + (s && s->rules_file ? strlen(s->rules_file) : 0);
    for (size_t i = 0; s && i < s->ndisable; i++)
        len += strlen(s->disable[i]) + 1;
    char *k = malloc(len);
    if (k == NULL)
        return NULL;
    size_t o = (size_t)snprintf(k, len, "%s\n", s && s->rules_file ? s->rules_file : "");
    for (size_t i = 0; s && i < s->ndisable && o < len; i++)
        o += (size_t)snprintf(k + o, len - o, "%s\n", s->disable[i]);
    return k;
}

int mg_policy_validate(const mg_config_t *cfg, char *why, size_t n)
{
    json_t *lock = NULL;
    char *path = NULL, *legacy = NULL;
    if (load_lock(cfg, &lock, &path, &legacy, why, n) != 0)
        return MG_ECONFIG;
    json_decref(lock);
    free(path);
    free(legacy);
    if (builtin_rules_only(cfg))
        return 0; /* the built-in rules are compiled into the binary and by the unit tests */
    mg_scanner_t *sc = NULL;
    if (make_scanner(cfg, &sc, why, n) != 0)
        return MG_ECONFIG;
    mg_scanner_free(validated_scanner);
    free(validated_key);
    validated_key = sc != NULL ? scan_key(cfg) : NULL;
    validated_scanner = validated_key != NULL ? sc : NULL;
    if (validated_key == NULL)
        mg_scanner_free(sc);
    return 0;
}

/* make_scanner(), or the one mg_policy_validate() compiled from the same scan settings. */
static int take_scanner(const mg_config_t *cfg, mg_scanner_t **out, char *why, size_t n)
{
    char *key = validated_scanner != NULL && need_scanner(cfg) ? scan_key(cfg) : NULL;
    int same = key != NULL && strcmp(key, validated_key) == 0;
    free(key);
    if (same) {
        *out = validated_scanner;
        validated_scanner = NULL;
        free(validated_key);
        validated_key = NULL;
        return 0;
    }
    return make_scanner(cfg, out, why, n);
}

static void collect_cb(mg_metrics_out_t *out, void *data);

/* Server sc's effective pinning and scanning under cfg and lock (legacy: the lock is a shared
 * mcpgate.lock), and its entry in the lock (borrowed from lock, NULL = absent). */
static void server_modes(const mg_config_t *cfg, const json_t *lock, const char *legacy,
                         const mg_server_config_t *sc, mg_pin_mode_t *pin, mg_scan_mode_t *scan,
                         const json_t **entry)
{
    mg_pin_mode_t m = mg_policy_pin_mode(cfg, sc);
    *entry = lock ? json_object_get(json_object_get(lock, "servers"), sc->name) : NULL;
    /* A shared legacy mcpgate.lock says nothing about a server it does not list (another
     * config's lock run wrote it): such a server is unpinned, as without a lockfile. */
    int locked = lock != NULL && (legacy == NULL || *entry != NULL);
    *pin = m == MG_PIN_UNSET ? (locked ? MG_PIN_BLOCK : MG_PIN_OFF) : m;
    if (lock == NULL && *pin == MG_PIN_WARN)
        *pin = MG_PIN_OFF; /* nothing to compare with; said in the policy log line */
    *scan = mg_policy_scan_mode(cfg, sc);
}

static void server_log(mg_policy_t *pol, const mg_server_config_t *sc, size_t i);

/* Fills pol->servers[i] for server entry sc and logs its policy line. */
static void server_init(mg_policy_t *pol, size_t i, const mg_server_config_t *sc)
{
    pin_server_t *ps = &pol->servers[i];
    ps->name = sc->name;
    server_modes(pol->cfg, pol->lock, pol->lock_legacy, sc, &ps->pin, &ps->scan, &ps->lock);
    ps->tool_names = json_object();
    ps->instr = "unchecked";
    server_log(pol, sc, i);
}

/* The "policy" log line of server i (or the warning that the lock does not list it). */
static void server_log(mg_policy_t *pol, const mg_server_config_t *sc, size_t i)
{
    pin_server_t *ps = &pol->servers[i];
    json_t *f =
        json_pack("{s:s,s:s,s:s,s:s}", "upstream", sc->name, "pinning", mg_pin_mode_name(ps->pin), "lock",
                  pol->lock == NULL  ? "no lockfile"
                  : ps->lock != NULL ? (pol->lock_legacy ? pol->lock_legacy : pol->lock_path)
                                     : "not in the lock",
                  "scan", mg_scan_mode_name(ps->scan));
    if (sc->sandbox != NULL) {
        char *d = mg_sandbox_describe(sc->sandbox);
        json_object_set_new(f, "sandbox", json_string(d ? d : "?"));
        free(d);
    }
    mg_log_json(pol->lock != NULL && ps->lock == NULL && ps->pin == MG_PIN_BLOCK ? MG_LOG_WARN : MG_LOG_INFO,
                pol->lock != NULL && ps->lock == NULL && ps->pin == MG_PIN_BLOCK
                    ? "upstream is not in the lockfile: every tool, prompt and template it lists is blocked "
                      "until mcpgate lock --update"
                    : "policy",
                f);
}

int mg_policy_new(const mg_config_t *cfg, size_t cap, mg_policy_t **out)
{
    mg_policy_t *pol = calloc(1, sizeof *pol);
    if (pol == NULL)
        return MG_ENOMEM;
    pol->cfg = cfg;
    pol->seen = json_object();
    pol->block_at = cfg->policy ? cfg->policy->scan.block_at : MG_SEV_HIGH;
    char why[600];
    pol->scanner_lazy = builtin_rules_only(cfg) && need_scanner(cfg); /* see scanner() */
    if (load_lock(cfg, &pol->lock, &pol->lock_path, &pol->lock_legacy, why, sizeof why) != 0 ||
        (!builtin_rules_only(cfg) && take_scanner(cfg, &pol->scanner, why, sizeof why) != 0)) {
        mg_log_json(MG_LOG_ERROR, "policy cannot start", json_pack("{s:s}", "error", why));
        mg_policy_free(pol);
        return MG_ECONFIG;
    }
    if (pol->lock_legacy != NULL) {
        char m[1500];
        snprintf(m, sizeof m,
                 "lockfile %s does not exist: this config's pins are read from %s, the lockfile older "
                 "versions shared between every config of the directory (left as it is); write this "
                 "config's own with mcpgate lock --config %s",
                 pol->lock_path, pol->lock_legacy, cfg->path);
        mg_log_json(MG_LOG_WARN, m,
                    json_pack("{s:s,s:s,s:s,s:I}", "lockfile", pol->lock_path, "read_from", pol->lock_legacy,
                              "config", cfg->path ? cfg->path : "", "servers_pinned",
                              (json_int_t)json_object_size(json_object_get(pol->lock, "servers"))));
    }
    pol->cap = cap ? cap : 1;
    pol->servers = calloc(pol->cap, sizeof *pol->servers); /* mg_policy_server_added fills them */
    if (pol->servers == NULL) {
        mg_policy_free(pol);
        return MG_ENOMEM;
    }
    const mg_rate_config_t *rc = cfg->policy ? &cfg->policy->rate : NULL;
    if (rc != NULL && rc->enabled && (pol->rl = mg_rl_store_local_new(MAX_BUCKETS)) == NULL) {
        mg_policy_free(pol);
        return MG_ENOMEM;
    }
    mg_metrics_register(collect_cb, pol);
    *out = pol;
    return 0;
}

int mg_policy_server_added(mg_policy_t *pol, size_t i, const mg_server_config_t *sc)
{
    if (pol == NULL)
        return 0;
    if (i != pol->n || i >= pol->cap || sc == NULL)
        return MG_EINVAL;
    server_init(pol, i, sc);
    pol->n = i + 1;
    return 0;
}

void mg_policy_server_removed(mg_policy_t *pol, size_t i)
{
    if (pol != NULL && i < pol->n)
        pol->servers[i].removed = 1;
}

/* "local" or "shared": where next's rate limits would count (cluster: a shared session store). */
static int rate_wants_shared(const mg_rate_config_t *rc, int cluster)
{
    return rc->store != NULL ? strcmp(rc->store, "local") != 0 : cluster;
}

int mg_policy_rate_reloadable(const mg_policy_t *pol, const mg_config_t *next, int cluster)
{
    if (pol == NULL)
        return 0;
    const mg_rate_config_t *rc = next->policy ? &next->policy->rate : NULL;
    if (rc == NULL || !rc->enabled)
        return 1;        /* off from the next request */
    if (pol->rl == NULL) /* turned on: a local store can be made now, a shared one is built at start */
        return !rate_wants_shared(rc, cluster);
    return rate_wants_shared(rc, cluster) == pol->rl_shared;
}

int mg_policy_set_config(mg_policy_t *pol, const mg_config_t *cfg)
{
    if (pol == NULL)
        return 0;
    const mg_rate_config_t *rc = cfg->policy ? &cfg->policy->rate : NULL;
    if (rc != NULL && rc->enabled && pol->rl == NULL &&
        (pol->rl = mg_rl_store_local_new(MAX_BUCKETS)) == NULL)
        return MG_ENOMEM;
    pol->cfg = cfg;
    return 0;
}

int mg_policy_reload_pins(mg_policy_t *pol, const mg_config_t *next, const mg_server_config_t *const *entries,
                          unsigned char *changed, int *any, char *why, size_t n)
{
    *any = 0;
    if (pol == NULL)
        return 0;
    json_t *lock = NULL;
    char *path = NULL, *legacy = NULL;
    if (load_lock(next, &lock, &path, &legacy, why, n) != 0)
        return MG_ECONFIG;
    char *ka = scan_key(pol->cfg), *kb = scan_key(next);
    if (ka == NULL || kb == NULL) {
        free(ka);
        free(kb);
        json_decref(lock);
        free(path);
        free(legacy);
        snprintf(why, n, "out of memory");
        return MG_ENOMEM;
    }
    int scan_same = strcmp(ka, kb) == 0 && need_scanner(pol->cfg) == need_scanner(next);
    free(ka);
    free(kb);
    /* a new scanner first: the only step that can fail on a valid config (the rules file changed) */
    mg_scanner_t *sc = NULL;
    int lazy = 0;
    if (!scan_same) {
        lazy = builtin_rules_only(next) && need_scanner(next);
        if (!lazy && make_scanner(next, &sc, why, n) != 0) {
            json_decref(lock);
            free(path);
            free(legacy);
            return MG_ECONFIG;
        }
    }
    if ((lock == NULL) != (pol->lock == NULL) || (lock != NULL && !json_equal(lock, pol->lock)) ||
        (path == NULL) != (pol->lock_path == NULL) || (path != NULL && strcmp(path, pol->lock_path) != 0))
        *any |= MG_POLICY_PINS_LOCKFILE;
    mg_severity_t block_at = next->policy ? next->policy->scan.block_at : MG_SEV_HIGH;
    int scanning_changed = !scan_same || block_at != pol->block_at;
    for (size_t i = 0; i < pol->n; i++) {
        changed[i] = 0;
        if (pol->servers[i].removed || entries[i] == NULL)
            continue;
        pin_server_t *ps = &pol->servers[i];
        mg_pin_mode_t pin;
        mg_scan_mode_t scan;
        const json_t *entry;
        server_modes(next, lock, legacy, entries[i], &pin, &scan, &entry);
        changed[i] = pin != ps->pin || scan != ps->scan || (scanning_changed && scan != MG_SCAN_OFF) ||
                     (entry == NULL) != (ps->lock == NULL) || (entry != NULL && !json_equal(entry, ps->lock));
        ps->pin = pin;
        ps->scan = scan;
        ps->lock = entry; /* into lock, which replaces pol->lock below */
        if (changed[i])
            *any |= MG_POLICY_PINS_SERVERS;
    }
    json_decref(pol->lock);
    free(pol->lock_path);
    free(pol->lock_legacy);
    pol->lock = lock;
    pol->lock_path = path;
    pol->lock_legacy = legacy;
    if (!scan_same) {
        mg_scanner_free(pol->scanner);
        pol->scanner = sc;
        pol->scanner_lazy = lazy;
    }
    pol->block_at = block_at;
    for (size_t i = 0; i < pol->n; i++)
        if (changed[i])
            server_log(pol, entries[i], i);
    return 0;
}

int mg_policy_rate_shared(mg_policy_t *pol, mg_store_t *session_store, char *why, size_t n)
{
    const mg_rate_config_t *rc = pol && pol->cfg->policy ? &pol->cfg->policy->rate : NULL;
    if (rc == NULL || !rc->enabled)
        return 0;
    int want = rc->store != NULL ? strcmp(rc->store, "local") != 0 : session_store != NULL;
    if (want && session_store == NULL) {
        snprintf(why, n,
                 "gateway.rateLimits.store is \"%s\": it uses the session store, so set "
                 "gateway.sessions.store (or MCPGATE_SESSION_STORE) to a redis:// or postgres:// URL, or use "
                 "\"local\"",
                 rc->store);
        return MG_ECONFIG;
    }
    if (want) {
        mg_rl_store_t *shared = mg_shared_rl_new(session_store);
        if (shared == NULL) {
            snprintf(why, n, "gateway.rateLimits.store \"%s\": the session store is not a shared store",
                     rc->store ? rc->store : "shared");
            return MG_ECONFIG;
        }
        pol->rl->ops->free(pol->rl);
        pol->rl = shared;
        pol->rl_shared = 1;
    }
    char what[80];
    snprintf(what, sizeof what, "%s (shared by every replica)", want ? session_store->ops->name : "");
    mg_log_json(MG_LOG_INFO, "rate limits",
                json_pack("{s:s}", "store", want ? what : "local (each replica counts on its own)"));
    return 0;
}

void mg_policy_free(mg_policy_t *pol)
{
    if (pol == NULL)
        return;
    mg_metrics_unregister(collect_cb, pol);
    for (size_t i = 0; i < pol->n; i++) {
        for (int k = 0; k < MG_LIST_COUNT; k++)
            json_decref(pol->servers[i].state[k]);
        json_decref(pol->servers[i].tool_names);
        json_decref(pol->servers[i].instr_findings);
    }
    free(pol->servers);
    json_decref(pol->lock);
    free(pol->lock_path);
    free(pol->lock_legacy);
    mg_scanner_free(pol->scanner);
    json_decref(pol->seen);
    if (pol->rl != NULL)
        pol->rl->ops->free(pol->rl);
    free(pol);
}

/* ---- pinning and scanning of lists ---- */

/* Other servers' tool names -> server, minus the names server i has itself. NEW. */
static json_t *others_for(mg_policy_t *pol, size_t i)
{
    json_t *o = json_object();
    for (size_t j = 0; j < pol->n; j++) {
        if (j == i || pol->servers[j].removed)
            continue;
        const char *name;
        json_t *v;
        json_object_foreach(pol->servers[j].tool_names, name, v)
        {
            if (json_object_get(pol->servers[i].tool_names, name) == NULL)
                json_object_set_new(o, name, json_string(pol->servers[j].name));
        }
    }
    return o;
}

/* Returns 1 the first time key is seen. */
static int first_time(mg_policy_t *pol, const char *key)
{
    if (json_object_get(pol->seen, key) != NULL)
        return 0;
    if (json_object_size(pol->seen) > 100000)
        json_object_clear(pol->seen); /* bounded: the worst case is a repeated log line */
    json_object_set_new(pol->seen, key, json_true());
    return 1;
}

static const char *kind_word(mg_list_kind_t k)
{
    return k == MG_LIST_TOOLS       ? "tool"
           : k == MG_LIST_PROMPTS   ? "prompt"
           : k == MG_LIST_RESOURCES ? "resource"
                                    : "resource template";
}

static const char *item_id(mg_list_kind_t k, const json_t *item)
{
    return json_string_value(json_object_get(item, k == MG_LIST_TEMPLATES   ? "uriTemplate"
                                                   : k == MG_LIST_RESOURCES ? "uri"
                                                                            : "name"));
}

void mg_policy_list_fetched(mg_policy_t *pol, size_t si, mg_list_kind_t kind, json_t *items)
{
    if (pol == NULL || si >= pol->n || !json_is_array(items))
        return;
    pin_server_t *ps = &pol->servers[si];
    const char *key = mg_list_key(kind);
    int lk = mg_lock_kind_index(key);
    int pinning = lk >= 0 && ps->pin != MG_PIN_OFF;
    int scanning = ps->scan != MG_SCAN_OFF && scanner(pol) != NULL;
    if (kind == MG_LIST_TOOLS) {
        json_object_clear(ps->tool_names);
        size_t i;
        json_t *t;
        json_array_foreach(items, i, t)
        {
            const char *n = json_string_value(json_object_get(t, "name"));
            if (n != NULL)
                json_object_set_new(ps->tool_names, n, json_true());
        }
    }
    if (!pinning && !scanning) {
        json_decref(ps->state[kind]);
        ps->state[kind] = NULL;
        return;
    }
    json_t *others = scanning ? others_for(pol, si) : NULL;
    const json_t *pins = pinning ? json_object_get(ps->lock, key) : NULL;
    json_t *state = json_object();
    json_t *kept = json_array();
    json_t *present = json_object();
    size_t i;
    json_t *item;
    json_array_foreach(items, i, item)
    {
        const char *id = item_id(kind, item);
        if (id == NULL) {
            json_array_append(kept, item);
            continue;
        }
        json_object_set_new(present, id, json_true());
        json_t *problem = NULL;
        int block = 0;
        char sha[65] = "";
        if (pinning || scanning)
            mg_lock_hash(item, sha);
        if (pinning) {
            const json_t *pin = json_object_get(pins, id);
            const char *change = pin == NULL ? "added"
                                 : strcmp(json_string_value(json_object_get(pin, "sha256")) ?: "", sha) != 0
                                     ? "changed"
                                     : NULL;
            if (change != NULL) {
                problem = json_pack("{s:s}", "pin", change);
                json_t *fields = json_array();
                if (pin != NULL) { /* which fields changed: diff the lock's entry with this one */
                    json_t *one = json_pack("[O]", item);
                    json_t *old_e = json_pack("{s:{s:O}}", key, id, pin);
                    json_t *new_e = mg_lock_server_entry(kind == MG_LIST_TOOLS ? one : NULL,
                                                         kind == MG_LIST_PROMPTS ? one : NULL,
                                                         kind == MG_LIST_TEMPLATES ? one : NULL, NULL);
                    json_t *d = mg_lock_diff(old_e, new_e);
                    json_t *c0 = json_array_get(d, 0);
                    if (json_is_array(json_object_get(c0, "fields")))
                        json_array_extend(fields, json_object_get(c0, "fields"));
                    json_decref(d);
                    json_decref(old_e);
                    json_decref(new_e);
                    json_decref(one);
                }
                json_object_set_new(problem, "fields", fields);
                block = ps->pin == MG_PIN_BLOCK;
                char seen[600];
                snprintf(seen, sizeof seen, "pin|%s|%s|%s|%s", ps->name, key, id, sha);
                if (first_time(pol, seen)) {
                    ps->drift_total++;
                    json_t *c = json_pack("{s:s,s:s,s:O}", "change", change, "name", id, "fields", fields);
                    char summary[300];
                    mg_lock_diff_summary(c, summary, sizeof summary);
                    json_decref(c);
                    mg_log_json(
                        MG_LOG_WARN,
                        block ? "upstream definition differs from the lockfile: blocked (review with "
                                "mcpgate lock --diff, accept with mcpgate lock --update)"
                              : "upstream definition differs from the lockfile (pinning: warn, still served)",
                        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "upstream", ps->name, "kind", kind_word(kind),
                                  "name", id, "change", change, "diff", summary, "sha256", sha));
                }
            }
        }
        if (scanning) {
            json_t *f = mg_scan_item(scanner(pol), key, item, others);
            if (json_array_size(f) > 0) {
                int sev = mg_scan_max_severity(f);
                if (problem == NULL)
                    problem = json_object();
                json_object_set(problem, "findings", f);
                json_object_set_new(problem, "severity", json_string(mg_severity_name((mg_severity_t)sev)));
                int sblock = ps->scan == MG_SCAN_BLOCK && sev >= (int)pol->block_at;
                block |= sblock;
                char seen[600];
                snprintf(seen, sizeof seen, "scan|%s|%s|%s|%s", ps->name, key, id, sha);
                if (first_time(pol, seen))
                    mg_log_json(sblock                 ? MG_LOG_WARN
                                : sev >= MG_SEV_MEDIUM ? MG_LOG_WARN
                                                       : MG_LOG_INFO,
                                sblock ? "description scan: blocked" : "description scan findings",
                                json_pack("{s:s,s:s,s:s,s:s,s:O}", "upstream", ps->name, "kind",
                                          kind_word(kind), "name", id, "severity",
                                          mg_severity_name((mg_severity_t)sev), "findings", f));
            }
            json_decref(f);
        }
        if (problem != NULL) {
            json_object_set_new(problem, "blocked", json_boolean(block));
            json_object_set_new(state, id, problem);
        }
        if (!block)
            json_array_append(kept, item);
    }
    /* Entries of the lock the upstream no longer lists: reported, nothing to block. */
    const char *id;
    json_t *pin;
    json_object_foreach((json_t *)pins, id, pin)
    {
        if (json_object_get(present, id) != NULL)
            continue;
        json_object_set_new(state, id, json_pack("{s:s,s:b}", "pin", "removed", "blocked", 0));
        char seen[600];
        snprintf(seen, sizeof seen, "pin|%s|%s|%s|removed", ps->name, key, id);
        if (first_time(pol, seen))
            mg_log_json(
                MG_LOG_INFO, "an entry of the lockfile is no longer listed by its upstream",
                json_pack("{s:s,s:s,s:s}", "upstream", ps->name, "kind", kind_word(kind), "name", id));
    }
    json_decref(present);
    json_decref(others);
    json_array_clear(items);
    json_array_extend(items, kept);
    json_decref(kept);
    json_decref(ps->state[kind]);
    ps->state[kind] = state;
}

void mg_policy_upstream_ready(mg_policy_t *pol, size_t si, const json_t *init_result)
{
    if (pol == NULL || si >= pol->n)
        return;
    pin_server_t *ps = &pol->servers[si];
    const char *text = json_string_value(json_object_get(init_result, "instructions"));
    if (text != NULL && text[0] == '\0')
        text = NULL;
    ps->instr_blocked = 0;
    ps->instr = "ok";
    char sha[65] = "none";
    if (text != NULL) {
        json_t *s = json_string(text);
        mg_lock_hash(s, sha);
        json_decref(s);
    }
    if (ps->pin != MG_PIN_OFF) {
        const json_t *li = json_object_get(ps->lock, "instructions");
        const char *lsha = json_string_value(json_object_get(li, "sha256"));
        ps->instr = text == NULL        ? (lsha != NULL ? "removed" : "none")
                    : lsha == NULL      ? "added"
                    : strcmp(lsha, sha) ? "changed"
                                        : "ok";
        int drift = strcmp(ps->instr, "added") == 0 || strcmp(ps->instr, "changed") == 0;
        ps->instr_blocked = drift && ps->pin == MG_PIN_BLOCK;
        char seen[300];
        snprintf(seen, sizeof seen, "pin|%s|instructions|%s", ps->name, sha);
        if ((drift || strcmp(ps->instr, "removed") == 0) && first_time(pol, seen)) {
            if (drift)
                ps->drift_total++;
            mg_log_json(drift ? MG_LOG_WARN : MG_LOG_INFO,
                        ps->instr_blocked
                            ? "server instructions differ from the lockfile: left out of initialize"
                        : drift ? "server instructions differ from the lockfile (pinning: warn)"
                                : "server instructions in the lockfile are no longer sent",
                        json_pack("{s:s,s:s,s:s}", "upstream", ps->name, "change", ps->instr, "sha256", sha));
        }
    }
    json_decref(ps->instr_findings);
    ps->instr_findings = NULL;
    if (text != NULL && ps->scan != MG_SCAN_OFF && scanner(pol) != NULL) {
        json_t *others = others_for(pol, si);
        json_t *f = mg_scan_instructions(scanner(pol), text, others);
        json_decref(others);
        if (json_array_size(f) > 0) {
            int sev = mg_scan_max_severity(f);
            int sblock = ps->scan == MG_SCAN_BLOCK && sev >= (int)pol->block_at;
            ps->instr_blocked |= sblock;
            char seen[300];
            snprintf(seen, sizeof seen, "scan|%s|instructions|%s", ps->name, sha);
            if (first_time(pol, seen))
                mg_log_json(MG_LOG_WARN,
                            sblock ? "description scan: server instructions blocked"
                                   : "description scan findings in server instructions",
                            json_pack("{s:s,s:s,s:O}", "upstream", ps->name, "severity",
                                      mg_severity_name((mg_severity_t)sev), "findings", f));
            ps->instr_findings = f;
        } else {
            json_decref(f);
        }
    }
}

int mg_policy_instructions_allowed(const mg_policy_t *pol, size_t i)
{
    return pol == NULL || i >= pol->n || !pol->servers[i].instr_blocked;
}

int mg_policy_gates_calls(const mg_policy_t *pol, size_t i)
{
    return pol != NULL && i < pol->n &&
           (pol->servers[i].pin == MG_PIN_BLOCK || pol->servers[i].scan == MG_SCAN_BLOCK);
}

int mg_policy_call_verified(mg_policy_t *pol, size_t i, mg_list_kind_t kind, const json_t *items,
                            const char *original, char *why, size_t n, json_t **data)
{
    *data = NULL;
    pin_server_t *ps = &pol->servers[i];
    size_t k;
    const json_t *item;
    json_array_foreach(items, k, item)
    {
        const char *id = item_id(kind, item);
        if (id != NULL && original != NULL && strcmp(id, original) == 0)
            return 1;
    }
    const json_t *st = json_object_get(ps->state[kind], original ? original : "");
    const char *pin = json_string_value(json_object_get(st, "pin"));
    const char *sev = json_string_value(json_object_get(st, "severity"));
    if (items == NULL) {
        snprintf(
            why, n,
            "%s '%s' of upstream '%s' cannot be verified: its %s list is unavailable (pinning/scanning is "
            "\"block\")",
            kind_word(kind), original ? original : "", ps->name, mg_list_key(kind));
        *data = json_pack("{s:s,s:s,s:s}", "upstream", ps->name, "name", original ? original : "", "reason",
                          "unverified");
    } else if (json_is_true(json_object_get(st, "blocked")) && pin != NULL) {
        json_t *c = json_pack("{s:s,s:s,s:O}", "change", pin, "name", original, "fields",
                              json_object_get(st, "fields") ?: json_array());
        char summary[300];
        mg_lock_diff_summary(c, summary, sizeof summary);
        json_decref(c);
        snprintf(
            why, n,
            "%s '%s' of upstream '%s' is blocked: its definition differs from the lockfile (%s). An operator "
            "can review it with `mcpgate lock --diff` and accept it with `mcpgate lock --update`",
            kind_word(kind), original, ps->name, summary);
        *data = json_pack("{s:s,s:s,s:s,s:s}", "upstream", ps->name, "name", original, "reason", "pinning",
                          "change", pin);
    } else if (json_is_true(json_object_get(st, "blocked"))) {
        const json_t *f0 = json_array_get(json_object_get(st, "findings"), 0);
        snprintf(why, n, "%s '%s' of upstream '%s' is blocked by the description scanner (%s: %s)",
                 kind_word(kind), original, ps->name, sev ? sev : "?",
                 json_string_value(json_object_get(f0, "rule")) ?: "?");
        *data = json_pack("{s:s,s:s,s:s,s:O}", "upstream", ps->name, "name", original, "reason", "scan",
                          "findings", json_object_get(st, "findings"));
    } else {
        snprintf(why, n,
                 "unknown %s '%s': upstream '%s' does not list it (only listed, verified %ss can be used "
                 "while pinning or scanning is \"block\")",
                 kind_word(kind), original ? original : "", ps->name, kind_word(kind));
        *data = json_pack("{s:s,s:s,s:s}", "upstream", ps->name, "name", original ? original : "", "reason",
                          "unlisted");
    }
    return 0;
}

void mg_policy_item_state(const mg_policy_t *pol, size_t i, mg_list_kind_t kind, const char *name,
                          const char **pin, int *blocked, unsigned *findings)
{
    *pin = NULL;
    *blocked = 0;
    *findings = 0;
    if (pol == NULL || i >= pol->n || name == NULL)
        return;
    const json_t *st = json_object_get(pol->servers[i].state[kind], name);
    *pin = json_string_value(json_object_get(st, "pin"));
    *blocked = json_is_true(json_object_get(st, "blocked"));
    *findings = (unsigned)json_array_size(json_object_get(st, "findings"));
}

const char *mg_policy_pin_state(const mg_policy_t *pol, size_t i, int *locked)
{
    *locked = 0;
    if (pol == NULL || i >= pol->n)
        return "off";
    *locked = pol->servers[i].lock != NULL;
    return pol->servers[i].pin == MG_PIN_OFF ? "off" : mg_pin_mode_name(pol->servers[i].pin);
}

void mg_policy_readyz(mg_policy_t *pol, size_t i, json_t *u)
{
    if (pol == NULL || i >= pol->n)
        return;
    pin_server_t *ps = &pol->servers[i];
    json_t *blocked = json_array(), *scan_blocked = json_array();
    unsigned counts[3] = {0, 0, 0}; /* added, changed, removed */
    unsigned findings = 0;
    int maxsev = -1;
    for (int k = 0; k < MG_LIST_COUNT; k++) {
        const char *id;
        json_t *st;
        json_object_foreach(ps->state[k], id, st)
        {
            const char *pin = json_string_value(json_object_get(st, "pin"));
            if (pin != NULL)
                counts[pin[0] == 'a' ? 0 : pin[0] == 'c' ? 1 : 2]++;
            const json_t *f = json_object_get(st, "findings");
            if (f != NULL) {
                findings += (unsigned)json_array_size(f);
                int s = mg_scan_max_severity(f);
                maxsev = s > maxsev ? s : maxsev;
            }
            if (json_is_true(json_object_get(st, "blocked"))) {
                char e[300];
                snprintf(e, sizeof e, "%s:%s", kind_word((mg_list_kind_t)k), id);
                json_array_append_new(pin != NULL && pin[0] != 'r' ? blocked : scan_blocked, json_string(e));
            }
        }
    }
    if (ps->instr_findings != NULL) {
        findings += (unsigned)json_array_size(ps->instr_findings);
        int s = mg_scan_max_severity(ps->instr_findings);
        maxsev = s > maxsev ? s : maxsev;
    }
    if (ps->instr_blocked)
        json_array_append_new(blocked, json_string("instructions"));
    if (ps->pin != MG_PIN_OFF) {
        int drift =
            counts[0] + counts[1] > 0 || strcmp(ps->instr, "added") == 0 || strcmp(ps->instr, "changed") == 0;
        json_object_set_new(u, "pinning",
                            json_pack("{s:s,s:s,s:i,s:i,s:i,s:s,s:o}", "mode", mg_pin_mode_name(ps->pin),
                                      "lock",
                                      ps->lock == NULL ? "not in lock"
                                      : drift          ? "drift"
                                                       : "ok",
                                      "added", counts[0], "changed", counts[1], "removed", counts[2],
                                      "instructions", ps->instr, "blocked", blocked));
    } else {
        json_decref(blocked);
    }
    if (ps->scan != MG_SCAN_OFF && (pol->scanner != NULL || pol->scanner_lazy)) {
        json_t *s = json_pack("{s:s,s:i,s:o}", "mode", mg_scan_mode_name(ps->scan), "findings", findings,
                              "blocked", scan_blocked);
        if (maxsev >= 0)
            json_object_set_new(s, "maxSeverity", json_string(mg_severity_name((mg_severity_t)maxsev)));
        json_object_set_new(u, "scan", s);
    } else {
        json_decref(scan_blocked);
    }
}

/* ---- rate limits ---- */

typedef struct mg_policy_rate_job {
    mg_policy_rate_job_t **slot; /* the caller's handle; NULL once cancelled (mg_policy_rate_cancel) */
    mg_policy_t *pol;
    char *method; /* for the log lines */
    mg_policy_rate_done_cb done;
    void *data;
    mg_rl_key_t keys[3];
    char *keybufs[3];
    size_t n;
} rate_job_t;

/* Appends one header to a decision's list (dropped past its capacity, cut at 255 bytes). */
static void headers_add(mg_policy_headers_t *hs, const char *name, const char *value, size_t vlen)
{
    if (hs->n < sizeof hs->h / sizeof hs->h[0]) {
        snprintf(hs->h[hs->n][0], sizeof hs->h[0][0], "%s", name);
        snprintf(hs->h[hs->n][1], sizeof hs->h[0][1], "%.*s", (int)vlen, value);
        hs->n++;
    }
}

/* RateLimit-Policy / RateLimit (draft-ietf-httpapi-ratelimit-headers), plus Retry-After when refused. */
static void rate_headers(mg_policy_rate_decision_t *d, const mg_rl_key_t *k, const mg_rl_result_t *r)
{
    char v[160];
    snprintf(v, sizeof v, "\"%s\";q=%llu;w=%llu", k->label, (unsigned long long)k->rule->burst,
             (unsigned long long)(k->rule->per_ms / 1000));
    headers_add(&d->headers, "ratelimit-policy", v, strlen(v));
    uint64_t t = r->allowed ? (r->reset_ms + 999) / 1000 : (r->retry_after_ms + 999) / 1000;
    snprintf(v, sizeof v, "\"%s\";r=%llu;t=%llu", k->label, (unsigned long long)r->remaining,
             (unsigned long long)t);
    headers_add(&d->headers, "ratelimit", v, strlen(v));
    if (!r->allowed) {
        snprintf(v, sizeof v, "%llu", (unsigned long long)(t ? t : 1));
        headers_add(&d->headers, "retry-after", v, strlen(v));
        d->status = mg_err_http_status(MG_ERATELIMIT);
    }
}

static void rate_job_free(rate_job_t *j)
{
    free(j->method);
    for (size_t i = 0; i < j->n; i++)
        free(j->keybufs[i]);
    free(j);
}

/* The shared store did not answer: refuse with 503 + Retry-After (fail closed, as sessions do). */
static void rate_unavailable(rate_job_t *j)
{
    mg_policy_t *pol = j->pol;
    pol->rl_unavailable++;
    if (!pol->rl_failing) {
        pol->rl_failing = 1;
        mg_log_json(MG_LOG_WARN,
                    "rate-limit store unavailable: limited calls get 503 until Redis answers again "
                    "(see /readyz for the session store's state)",
                    json_pack("{s:s}", "method", j->method));
    }
    mg_policy_rate_decision_t d = {0};
    d.err = MG_ERATELIMIT;
    d.status = 503;
    headers_add(&d.headers, "retry-after", "1", 1);
    d.message = "Service Unavailable: the shared rate-limit store (Redis) did not answer; retry in 1 s";
    d.data = json_pack("{s:s,s:I}", "limit", "store", "retryAfterMs", (json_int_t)1000);
    j->done(j->data, &d);
}

static void rate_done(void *data, const mg_rl_result_t *r)
{
    rate_job_t *j = data;
    if (j->slot == NULL) { /* the caller ended meanwhile: nothing to answer */
        rate_job_free(j);
        return;
    }
    *j->slot = NULL;
    mg_policy_t *pol = j->pol;
    if (r->error != 0) {
        rate_unavailable(j);
        rate_job_free(j);
        return;
    }
    if (pol->rl_failing) {
        pol->rl_failing = 0;
        mg_log_json(MG_LOG_INFO, "rate-limit store answers again", NULL);
    }
    const mg_rl_key_t *k = &j->keys[r->limiting < j->n ? r->limiting : 0];
    mg_policy_rate_decision_t d = {0};
    rate_headers(&d, k, r);
    if (r->allowed) {
        d.allowed = 1;
        j->done(j->data, &d);
    } else {
        int which = strcmp(k->label, "tenant") == 0 ? 1 : strcmp(k->label, "tool") == 0 ? 2 : 0;
        pol->rl_rejected[which]++;
        char m[300];
        uint64_t secs = (r->retry_after_ms + 999) / 1000;
        snprintf(m, sizeof m,
                 "Too Many Requests: the %s rate limit (%llu per %llu s) is used up; retry in %llu s",
                 k->label, (unsigned long long)k->rule->requests,
                 (unsigned long long)(k->rule->per_ms / 1000), (unsigned long long)(secs ? secs : 1));
        mg_log_json(MG_LOG_INFO, "rate limited",
                    json_pack("{s:s,s:s,s:I}", "limit", k->label, "method", j->method, "retry_after_ms",
                              (json_int_t)r->retry_after_ms));
        d.err = MG_ERATELIMIT;
        d.message = m;
        d.data = json_pack("{s:s,s:I,s:I,s:I}", "limit", k->label, "retryAfterMs",
                           (json_int_t)r->retry_after_ms, "requests", (json_int_t)k->rule->requests,
                           "perSeconds", (json_int_t)(k->rule->per_ms / 1000));
        j->done(j->data, &d);
    }
    rate_job_free(j);
}

void mg_policy_rate_cancel(mg_policy_rate_job_t **job)
{
    rate_job_t *j = *job;
    *job = NULL;
    if (j != NULL)
        j->slot = NULL; /* rate_done frees the job when the store answers */
}

static char *keyf(const char *prefix, const char *v)
{
    size_t n = strlen(prefix) + strlen(v) + 1;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, "%s%s", prefix, v);
    return s;
}

int mg_policy_rate_limited(const mg_policy_t *pol, const char *method)
{
    if (pol == NULL || pol->rl == NULL || pol->cfg->policy == NULL || !pol->cfg->policy->rate.enabled)
        return 0; /* off, or turned off by a reload (the store stays for a reload turning it on) */
    const mg_rate_config_t *rc = &pol->cfg->policy->rate;
    for (size_t i = 0; i < rc->nmethods; i++)
        if (strcmp(rc->methods[i], method) == 0)
            return 1;
    return 0;
}

int mg_policy_rate_take(mg_policy_t *pol, const mg_policy_rate_call_t *call, mg_policy_rate_done_cb done,
                        void *data, mg_policy_rate_job_t **job)
{
    if (!mg_policy_rate_limited(pol, call->method))
        return 1;
    const mg_rate_config_t *rc = &pol->cfg->policy->rate;
    rate_job_t *j = calloc(1, sizeof *j);
    if (j == NULL)
        return 1;
    const char *who = call->principal, *peer = call->peer;
    if (rc->has_principal) {
        j->keybufs[j->n] = who != NULL ? keyf("p:", who) : keyf("ip:", peer != NULL ? peer : "unknown");
        j->keys[j->n] = (mg_rl_key_t){j->keybufs[j->n], &rc->principal, who != NULL ? "principal" : "client"};
        j->n++;
    }
    if (rc->has_tenant && who != NULL && call->tenant != NULL) {
        j->keybufs[j->n] = keyf("t:", call->tenant);
        j->keys[j->n] = (mg_rl_key_t){j->keybufs[j->n], &rc->tenant, "tenant"};
        j->n++;
    }
    const char *tool = call->tool;
    if (rc->ntools > 0 && strcmp(call->method, "tools/call") == 0 && tool != NULL) {
        for (size_t i = 0; i < rc->ntools; i++) {
            if (fnmatch(rc->tools[i].glob, tool, 0) != 0)
                continue;
            j->keybufs[j->n] = keyf("tool:", tool);
            j->keys[j->n] = (mg_rl_key_t){j->keybufs[j->n], &rc->tools[i], "tool"};
            j->n++;
            break;
        }
    }
    for (size_t i = 0; i < j->n; i++) {
        if (j->keybufs[i] == NULL) { /* out of memory: do not limit */
            for (size_t k = 0; k < j->n; k++)
                free(j->keybufs[k]);
            free(j);
            return 1;
        }
    }
    if (j->n == 0 || (j->method = strdup(call->method)) == NULL) { /* out of memory: do not limit */
        for (size_t k = 0; k < j->n; k++)
            free(j->keybufs[k]);
        free(j);
        return 1;
    }
    j->pol = pol;
    j->done = done;
    j->data = data;
    j->slot = job;
    *job = j; /* cleared by rate_done, which may run before take returns */
    pol->rl->ops->take(pol->rl, j->keys, j->n, call->now_ms, rate_done, j);
    return 0;
}

/* ---- CORS ---- */

int mg_policy_cors_enabled(const mg_policy_t *pol)
{
    return pol != NULL && pol->cfg->policy != NULL && pol->cfg->policy->cors.enabled;
}

int mg_policy_cors(mg_policy_t *pol, const char *origin, size_t origin_len, int is_options,
                   const char *acr_method, size_t acr_method_len, const char *acr_headers,
                   size_t acr_headers_len, mg_policy_cors_decision_t *d)
{
    d->headers.n = 0;
    d->status = 0;
    d->body[0] = '\0';
    if (!mg_policy_cors_enabled(pol))
        return 0;
    const mg_cors_config_t *cc = &pol->cfg->policy->cors;
    int preflight = is_options && acr_method != NULL;
    headers_add(&d->headers, "vary", "origin", 6);
    int allowed = mg_cors_origin_allowed(cc, origin, origin_len);
    if (allowed) {
        if (cc->any && !cc->allow_credentials)
            headers_add(&d->headers, "access-control-allow-origin", "*", 1);
        else
            headers_add(&d->headers, "access-control-allow-origin", origin, origin_len);
        if (cc->allow_credentials)
            headers_add(&d->headers, "access-control-allow-credentials", "true", 4);
        if (!preflight)
            headers_add(&d->headers, "access-control-expose-headers", mg_cors_exposed_headers,
                        strlen(mg_cors_exposed_headers));
    }
    if (!preflight)
        return 0;
    const char *refusal =
        !allowed                                         ? "Origin is not in gateway.cors.allowedOrigins"
        : !mg_cors_method_ok(acr_method, acr_method_len) ? "method not allowed (GET, POST, DELETE)"
        : !mg_cors_request_headers_ok(acr_headers, acr_headers_len) ? "a requested header is not allowed"
                                                                    : NULL;
    if (refusal != NULL) {
        pol->preflights[1]++;
        d->status = 403;
        snprintf(d->body, sizeof d->body, "{\"error\":\"CORS preflight refused: %s\"}", refusal);
        return 1;
    }
    pol->preflights[0]++;
    headers_add(&d->headers, "access-control-allow-methods", "GET, POST, DELETE", 17);
    if (acr_headers != NULL && acr_headers_len > 0)
        headers_add(&d->headers, "access-control-allow-headers", acr_headers, acr_headers_len);
    char age[24];
    snprintf(age, sizeof age, "%u", cc->max_age_s);
    headers_add(&d->headers, "access-control-max-age", age, strlen(age));
    d->status = 204;
    return 1;
}

/* ---- metrics ---- */

static void collect_cb(mg_metrics_out_t *out, void *data)
{
    mg_policy_t *pol = data;
    mg_metrics_family(out, "mcpgate_pinning_drift_total", "counter",
                      "Distinct definitions (or instructions) seen that differ from the lockfile");
    for (size_t i = 0; i < pol->n; i++) {
        if (pol->servers[i].removed) /* a reload removed it */
            continue;
        const char *l[] = {"upstream", pol->servers[i].name, NULL};
        mg_metrics_sample(out, "mcpgate_pinning_drift_total", l, (double)pol->servers[i].drift_total);
    }
    mg_metrics_family(out, "mcpgate_policy_blocked", "gauge",
                      "Entries of the latest lists withheld by pinning or scanning (block mode)");
    for (size_t i = 0; i < pol->n; i++) {
        if (pol->servers[i].removed) /* a reload removed it */
            continue;
        unsigned n = pol->servers[i].instr_blocked;
        for (int k = 0; k < MG_LIST_COUNT; k++) {
            const char *id;
            json_t *st;
            json_object_foreach(pol->servers[i].state[k], id, st) n +=
                json_is_true(json_object_get(st, "blocked"));
        }
        const char *l[] = {"upstream", pol->servers[i].name, NULL};
        mg_metrics_sample(out, "mcpgate_policy_blocked", l, n);
    }
    mg_metrics_family(out, "mcpgate_scan_findings", "gauge", "Description-scan findings in the latest lists");
    for (size_t i = 0; i < pol->n; i++) {
        if (pol->servers[i].removed) /* a reload removed it */
            continue;
        unsigned n = (unsigned)json_array_size(pol->servers[i].instr_findings);
        for (int k = 0; k < MG_LIST_COUNT; k++) {
            const char *id;
            json_t *st;
            json_object_foreach(pol->servers[i].state[k], id, st) n +=
                (unsigned)json_array_size(json_object_get(st, "findings"));
        }
        const char *l[] = {"upstream", pol->servers[i].name, NULL};
        mg_metrics_sample(out, "mcpgate_scan_findings", l, n);
    }
    if (pol->rl != NULL) {
        static const char *const names[3] = {"principal", "tenant", "tool"};
        mg_metrics_family(out, "mcpgate_ratelimit_rejected_total", "counter",
                          "Requests refused by a rate limit");
        for (int i = 0; i < 3; i++) {
            const char *l[] = {"limit", names[i], NULL};
            mg_metrics_sample(out, "mcpgate_ratelimit_rejected_total", l, (double)pol->rl_rejected[i]);
        }
        mg_metrics_family(out, "mcpgate_ratelimit_store_unavailable_total", "counter",
                          "Limited calls refused with 503 because the shared (Redis) store did not answer");
        mg_metrics_sample(out, "mcpgate_ratelimit_store_unavailable_total", NULL,
                          (double)pol->rl_unavailable);
    }
    if (pol->cfg->policy != NULL && pol->cfg->policy->cors.enabled) {
        mg_metrics_family(out, "mcpgate_cors_preflights_total", "counter", "CORS preflights answered");
        for (int i = 0; i < 2; i++) {
            const char *l[] = {"result", i == 0 ? "allowed" : "refused", NULL};
            mg_metrics_sample(out, "mcpgate_cors_preflights_total", l, (double)pol->preflights[i]);
        }
    }
}
