/*
 * lock.c - canonical hashing, the lock document (CONFIG.lock), which file holds a config's pins
 * (its own lock, or the shared mcpgate.lock of older versions), and diffs between two snapshots of
 * an upstream. Pure functions of JSON values and files; no loop. Format: lock.h.
 * Read next: pin.c.
 */
#include "lock.h"
#include "../common/codec.h"
#include "../common/err.h"
#include "../config/config.h"
#include "policy.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const mg_lock_kinds[MG_LOCK_KINDS] = {"tools", "prompts", "resourceTemplates"};
const char *const mg_lock_kind_item[MG_LOCK_KINDS] = {"tool", "prompt", "resource template"};

int mg_lock_kind_index(const char *list_key)
{
    for (int k = 0; k < MG_LOCK_KINDS; k++)
        if (list_key != NULL && strcmp(list_key, mg_lock_kinds[k]) == 0)
            return k;
    return -1;
}

const char *mg_lock_item_key(int k, const json_t *item)
{
    return json_string_value(json_object_get(item, k == 2 ? "uriTemplate" : "name"));
}

int mg_lock_hash(const json_t *v, char out[65])
{
    char *text = NULL;
    size_t len;
    if (json_is_string(v)) {
        len = json_string_length(v);
    } else {
        text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        if (text == NULL)
            return MG_ENOMEM;
        len = strlen(text);
    }
    mg_sha256_hex(text ? text : json_string_value(v), len, out);
    free(text);
    return 0;
}

static json_t *pin_of(const json_t *def)
{
    char h[65];
    if (mg_lock_hash(def, h) != 0)
        return NULL;
    return json_pack("{s:s,s:O}", "sha256", h, "definition", def);
}

json_t *mg_lock_server_entry(const json_t *tools, const json_t *prompts, const json_t *templates,
                             const char *instructions)
{
    json_t *e = json_object();
    const json_t *lists[MG_LOCK_KINDS] = {tools, prompts, templates};
    for (int k = 0; k < MG_LOCK_KINDS; k++) {
        json_t *m = json_object();
        size_t i;
        const json_t *item;
        json_array_foreach(lists[k], i, item)
        {
            const char *key = mg_lock_item_key(k, item);
            if (key == NULL || json_object_get(m, key) != NULL)
                continue; /* unnamed or duplicate: the first one is what clients see */
            json_object_set_new(m, key, pin_of(item));
        }
        json_object_set_new(e, mg_lock_kinds[k], m);
    }
    if (instructions != NULL && instructions[0] != '\0') {
        json_t *s = json_string(instructions);
        char h[65];
        mg_lock_hash(s, h);
        json_object_set_new(e, "instructions", json_pack("{s:s,s:o}", "sha256", h, "text", s));
    } else {
        json_object_set_new(e, "instructions", json_null());
    }
    return e;
}

json_t *mg_lock_new(void)
{
    return json_pack("{s:i,s:s,s:{}}", "lockfileVersion", MG_LOCK_VERSION, "generatedBy",
                     "mcpgate " MG_VERSION, "servers");
}

static int entry_ok(const json_t *e, char *why, size_t n, const char *server)
{
    if (!json_is_object(e)) {
        snprintf(why, n, "server '%s' is not an object", server);
        return 0;
    }
    for (int k = 0; k < MG_LOCK_KINDS; k++) {
        const json_t *m = json_object_get(e, mg_lock_kinds[k]);
        if (m == NULL)
            continue;
        const char *name;
        const json_t *pin;
        if (!json_is_object(m)) {
            snprintf(why, n, "server '%s': %s is not an object", server, mg_lock_kinds[k]);
            return 0;
        }
        json_object_foreach((json_t *)m, name, pin)
        {
            const char *h = json_string_value(json_object_get(pin, "sha256"));
            if (h == NULL || strlen(h) != 64) {
                snprintf(why, n, "server '%s': %s '%.80s' has no sha256", server, mg_lock_kind_item[k], name);
                return 0;
            }
        }
    }
    const json_t *in = json_object_get(e, "instructions");
    if (in != NULL && !json_is_null(in) && json_string_value(json_object_get(in, "sha256")) == NULL) {
        snprintf(why, n, "server '%s': instructions has no sha256", server);
        return 0;
    }
    return 1;
}

json_t *mg_lock_load(const char *path, int *missing, char *why, size_t n)
{
    *missing = 0;
    why[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT)
            *missing = 1;
        snprintf(why, n, "%s cannot be read: %s", path, strerror(errno));
        return NULL;
    }
    json_error_t je;
    json_t *lock = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (lock == NULL) {
        snprintf(why, n, "%s: line %d: not valid JSON: %s", path, je.line, je.text);
        return NULL;
    }
    if (json_integer_value(json_object_get(lock, "lockfileVersion")) != MG_LOCK_VERSION) {
        snprintf(why, n, "%s: lockfileVersion must be %d (written by a different mcpgate?)", path,
                 MG_LOCK_VERSION);
        json_decref(lock);
        return NULL;
    }
    json_t *servers = json_object_get(lock, "servers");
    if (!json_is_object(servers)) {
        snprintf(why, n, "%s: \"servers\" must be an object", path);
        json_decref(lock);
        return NULL;
    }
    const char *name;
    json_t *e;
    json_object_foreach(servers, name, e)
    {
        char w[200];
        if (!entry_ok(e, w, sizeof w, name)) {
            snprintf(why, n, "%s: %s", path, w);
            json_decref(lock);
            return NULL;
        }
    }
    return lock;
}

json_t *mg_lock_load_for(const mg_config_t *cfg, const char *explicit_path, mg_lock_source_t *src,
                         int *missing, char *why, size_t n)
{
    src->path = explicit_path ? strdup(explicit_path) : mg_policy_lock_path(cfg);
    src->legacy = NULL;
    *missing = 0;
    why[0] = '\0';
    if (src->path == NULL) {
        *missing = 1;
        return NULL;
    }
    json_t *lock = mg_lock_load(src->path, missing, why, n);
    if (lock != NULL || !*missing || explicit_path != NULL)
        return lock;
    char *legacy = mg_policy_lock_legacy_path(cfg);
    if (legacy == NULL || access(legacy, F_OK) != 0) {
        free(legacy);
        return NULL; /* *missing and why are about src->path */
    }
    int lmissing = 0;
    lock = mg_lock_load(legacy, &lmissing, why, n);
    if (lock == NULL) {
        *missing = lmissing;
        free(legacy);
        return NULL;
    }
    *missing = 0;
    src->legacy = legacy;
    /* Only this config's servers: the others' entries belong to the other configs. */
    json_t *servers = json_object_get(lock, "servers");
    json_t *mine = json_object();
    for (size_t i = 0; i < cfg->nservers; i++) {
        json_t *e = json_object_get(servers, cfg->servers[i].name);
        if (e != NULL)
            json_object_set(mine, cfg->servers[i].name, e);
    }
    json_object_set_new(lock, "servers", mine);
    return lock;
}

void mg_lock_source_dispose(mg_lock_source_t *src)
{
    free(src->path);
    free(src->legacy);
    src->path = src->legacy = NULL;
}

int mg_lock_write(const char *path, const json_t *lock)
{
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (tmp == NULL)
        return MG_ENOMEM;
    snprintf(tmp, len + 16, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        free(tmp);
        return MG_EIO;
    }
    int ok = json_dumpf(lock, f, JSON_INDENT(2) | JSON_SORT_KEYS) == 0 && fputc('\n', f) != EOF;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        free(tmp);
        return MG_EIO;
    }
    free(tmp);
    return 0;
}

/* Top-level fields of two definitions that differ (added, removed or changed). */
static json_t *changed_fields(const json_t *a, const json_t *b)
{
    json_t *out = json_array();
    if (!json_is_object(a) || !json_is_object(b))
        return out;
    json_t *keys = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) json_object_set_new(keys, k, json_true());
    json_object_foreach((json_t *)b, k, v) json_object_set_new(keys, k, json_true());
    const char **sorted = calloc(json_object_size(keys) + 1, sizeof *sorted);
    size_t n = 0;
    json_object_foreach(keys, k, v) sorted[n++] = k;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(sorted[j - 1], sorted[j]) > 0; j--) {
            const char *t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++)
        if (!json_equal(json_object_get(a, sorted[i]), json_object_get(b, sorted[i])))
            json_array_append_new(out, json_string(sorted[i]));
    free(sorted);
    json_decref(keys);
    return out;
}

json_t *mg_lock_diff(const json_t *old_entry, const json_t *new_entry)
{
    json_t *out = json_array();
    for (int k = 0; k < MG_LOCK_KINDS; k++) {
        const json_t *om = json_object_get(old_entry, mg_lock_kinds[k]);
        const json_t *nm = json_object_get(new_entry, mg_lock_kinds[k]);
        const char *name;
        json_t *pin;
        json_object_foreach((json_t *)nm, name, pin)
        {
            const json_t *op = json_object_get(om, name);
            if (op == NULL) {
                json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "kind", mg_lock_kinds[k], "name", name,
                                                     "change", "added"));
            } else if (!json_equal(json_object_get(op, "sha256"), json_object_get(pin, "sha256"))) {
                json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:o}", "kind", mg_lock_kinds[k], "name",
                                                     name, "change", "changed", "fields",
                                                     changed_fields(json_object_get(op, "definition"),
                                                                    json_object_get(pin, "definition"))));
            }
        }
        json_object_foreach((json_t *)om, name, pin)
        {
            if (json_object_get(nm, name) == NULL)
                json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "kind", mg_lock_kinds[k], "name", name,
                                                     "change", "removed"));
        }
    }
    const json_t *oi = json_object_get(old_entry, "instructions");
    const json_t *ni = json_object_get(new_entry, "instructions");
    int had = json_is_object(oi), has = json_is_object(ni);
    if (had || has) {
        const char *change = !had ? "added" : !has ? "removed" : NULL;
        if (change == NULL && !json_equal(json_object_get(oi, "sha256"), json_object_get(ni, "sha256")))
            change = "changed";
        if (change != NULL)
            json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "kind", "instructions", "name",
                                                 "instructions", "change", change));
    }
    return out;
}

void mg_lock_diff_summary(const json_t *change, char *buf, size_t n)
{
    const char *c = json_string_value(json_object_get(change, "change"));
    const json_t *fields = json_object_get(change, "fields");
    if (c == NULL || strcmp(c, "changed") != 0 || json_array_size(fields) == 0) {
        snprintf(buf, n, "%s",
                 c != NULL && strcmp(c, "added") == 0     ? "new, not in the lock"
                 : c != NULL && strcmp(c, "removed") == 0 ? "removed since the lock"
                                                          : "changed");
        return;
    }
    size_t o = 0;
    size_t i;
    const json_t *f;
    buf[0] = '\0';
    json_array_foreach(fields, i, f)
    {
        if (o < n)
            o += (size_t)snprintf(buf + o, n - o, "%s%s changed", i ? ", " : "", json_string_value(f));
    }
}

static void print_text(FILE *f, const char *label, const char *s)
{
    fprintf(f, "      %s \"", label);
    size_t i = 0;
    for (; s != NULL && s[i] != '\0' && i < 300; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n')
            fputs("\\n", f);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\x%02x", ch);
        else
            fputc(ch, f);
    }
    fprintf(f, "\"%s\n", s != NULL && s[i] != '\0' ? "..." : "");
}

static const char *item_word(const char *kind)
{
    int k = mg_lock_kind_index(kind);
    return k >= 0 ? mg_lock_kind_item[k] : "instructions";
}

void mg_lock_diff_print(FILE *f, const char *server, const json_t *diff, const json_t *old_entry,
                        const json_t *new_entry)
{
    size_t i;
    const json_t *c;
    json_array_foreach(diff, i, c)
    {
        const char *kind = json_string_value(json_object_get(c, "kind"));
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *change = json_string_value(json_object_get(c, "change"));
        char summary[300];
        mg_lock_diff_summary(c, summary, sizeof summary);
        char mark = change[0] == 'a' ? '+' : change[0] == 'r' ? '-' : '~';
        if (strcmp(kind, "instructions") == 0)
            fprintf(f, "  %c %s: instructions %s\n", mark, server, change);
        else
            fprintf(f, "  %c %s: %s %s: %s\n", mark, server, item_word(kind), name, summary);
        const json_t *od, *nd;
        if (strcmp(kind, "instructions") == 0) {
            od = json_object_get(json_object_get(old_entry, "instructions"), "text");
            nd = json_object_get(json_object_get(new_entry, "instructions"), "text");
        } else {
            od = json_object_get(
                json_object_get(json_object_get(json_object_get(old_entry, kind), name), "definition"),
                "description");
            nd = json_object_get(
                json_object_get(json_object_get(json_object_get(new_entry, kind), name), "definition"),
                "description");
        }
        if (json_is_string(od) && json_is_string(nd) && !json_equal(od, nd)) {
            print_text(f, "was:", json_string_value(od));
            print_text(f, "now:", json_string_value(nd));
        } else if (mark == '+' && json_is_string(nd)) {
            print_text(f, "text:", json_string_value(nd));
        }
    }
}
