/*
 * scan.c - description scanner (scan.h): rules from JSON, text normalisation, and the six rule
 * kinds (regex, codepoints, base64, length, shadowing, name). Pure: no loop, no I/O but reading
 * the rules file once. Read next: hooks.c (where the gateway calls it), scan-rules.json.
 */
#include "scan.h"
#include "../common/err.h"

#include <ctype.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SCAN_BYTES (64u * 1024)

enum { F_NAME = 1, F_TITLE = 2, F_DESC = 4, F_INSTR = 8, F_SCHEMA = 16 };
typedef enum { K_REGEX, K_CODEPOINTS, K_BASE64, K_LENGTH, K_SHADOWING, K_NAME } rkind_t;

typedef struct rule {
    char *id;
    char *message;
    mg_severity_t sev;
    rkind_t kind;
    unsigned fields;
    regex_t *re;
    size_t nre;
    uint32_t (*ranges)[2];
    size_t nranges;
    size_t min_len;
    size_t max_bytes;
} rule_t;

typedef struct confusable {
    uint32_t cp;
    char to[8];
} confusable_t;

struct mg_scanner {
    rule_t *rules;
    size_t n;
    confusable_t *conf;
    size_t nconf;
};

/* ---- UTF-8 ---- */

/* Decodes one code point at s (len bytes left); *adv gets its length. Invalid bytes give 0xFFFD. */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *adv)
{
    uint32_t c = s[0];
    size_t need = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 9;
    if (need == 0) {
        *adv = 1;
        return c;
    }
    if (need == 9 || need >= len) {
        *adv = 1;
        return 0xFFFD;
    }
    c &= 0x3Fu >> need;
    for (size_t i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *adv = 1;
            return 0xFFFD;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    *adv = need + 1;
    return c;
}

static void sev_from(const char *s, mg_severity_t *out)
{
    if (mg_severity_parse(s, out) != 0)
        *out = MG_SEV_MEDIUM;
}

static int conf_cmp(const void *a, const void *b)
{
    uint32_t x = ((const confusable_t *)a)->cp, y = ((const confusable_t *)b)->cp;
    return x < y ? -1 : x > y;
}

static const confusable_t *conf_find(const mg_scanner_t *sc, uint32_t cp)
{
    confusable_t key = {cp, ""};
    return sc->nconf > 0 ? bsearch(&key, sc->conf, sc->nconf, sizeof key, conf_cmp) : NULL;
}

/* Invisible: dropped by normalisation (so hidden characters cannot split a phrase). */
static int invisible(uint32_t c)
{
    return (c >= 0x200B && c <= 0x200F) || (c >= 0x2060 && c <= 0x2064) || c == 0xFEFF || c == 0x180E ||
           c == 0x034F || c == 0x00AD || (c >= 0xFE00 && c <= 0xFE0F) || (c >= 0xE0100 && c <= 0xE01EF) ||
           (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069) || c == 0xE0001 || c == 0xE007F;
}

/* Text with confusables mapped to ASCII, fullwidth forms folded, Unicode tag characters decoded to
 * the ASCII they smuggle, invisible characters removed. malloc'd. */
static char *normalise(const mg_scanner_t *sc, const char *text, size_t len)
{
    char *out = malloc(len * 2 + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        size_t adv;
        uint32_t c = utf8_next(s + i, len - i, &adv);
        const confusable_t *m;
        if (c < 0x80) {
            out[o++] = (char)c;
        } else if (invisible(c)) {
            /* dropped */
        } else if (c >= 0xE0020 && c <= 0xE007E) {
            out[o++] = (char)(c - 0xE0000);
        } else if (c >= 0xFF01 && c <= 0xFF5E) {
            out[o++] = (char)(c - 0xFEE0);
        } else if ((m = conf_find(sc, c)) != NULL) {
            size_t l = strlen(m->to);
            memcpy(out + o, m->to, l);
            o += l;
        } else {
            memcpy(out + o, s + i, adv);
            o += adv;
        }
        i += adv;
    }
    out[o] = '\0';
    return out;
}

/* ---- rules ---- */

static void rule_dispose(rule_t *r)
{
    free(r->id);
    free(r->message);
    for (size_t i = 0; i < r->nre; i++)
        regfree(&r->re[i]);
    free(r->re);
    free(r->ranges);
    memset(r, 0, sizeof *r);
}

void mg_scanner_free(mg_scanner_t *sc)
{
    if (sc == NULL)
        return;
    for (size_t i = 0; i < sc->n; i++)
        rule_dispose(&sc->rules[i]);
    free(sc->rules);
    free(sc->conf);
    free(sc);
}

size_t mg_scanner_rule_count(const mg_scanner_t *sc)
{
    return sc ? sc->n : 0;
}

static unsigned parse_fields(const json_t *a, unsigned dflt)
{
    if (!json_is_array(a))
        return dflt;
    unsigned f = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
    {
        const char *s = json_string_value(v);
        if (s == NULL)
            continue;
        f |= strcmp(s, "name") == 0           ? F_NAME
             : strcmp(s, "title") == 0        ? F_TITLE
             : strcmp(s, "description") == 0  ? F_DESC
             : strcmp(s, "instructions") == 0 ? F_INSTR
             : strcmp(s, "schema") == 0       ? F_SCHEMA
                                              : 0;
    }
    return f ? f : dflt;
}

static int parse_rule(const json_t *j, rule_t *r, char *why, size_t n)
{
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *kind = json_string_value(json_object_get(j, "kind"));
    if (id == NULL || kind == NULL) {
        snprintf(why, n, "every rule needs an \"id\" and a \"kind\"");
        return MG_EINVAL;
    }
    r->id = strdup(id);
    const char *msg = json_string_value(json_object_get(j, "message"));
    r->message = strdup(msg ? msg : id);
    sev_from(json_string_value(json_object_get(j, "severity")), &r->sev);
    const unsigned text_fields = F_TITLE | F_DESC | F_INSTR | F_SCHEMA;
    if (strcmp(kind, "regex") == 0) {
        r->kind = K_REGEX;
        r->fields = parse_fields(json_object_get(j, "fields"), text_fields);
        const json_t *pats = json_object_get(j, "patterns");
        r->re = calloc(json_array_size(pats) + 1, sizeof *r->re);
        size_t i;
        const json_t *p;
        json_array_foreach(pats, i, p)
        {
            int rc = json_is_string(p) ? regcomp(&r->re[r->nre], json_string_value(p),
                                                 REG_EXTENDED | REG_ICASE | REG_NEWLINE)
                                       : REG_BADPAT;
            if (rc != 0) {
                char e[120];
                if (json_is_string(p))
                    regerror(rc, &r->re[r->nre], e, sizeof e);
                else
                    snprintf(e, sizeof e, "not a string");
                snprintf(why, n, "rule '%s': pattern %zu: %s", id, i, e);
                return MG_EINVAL;
            }
            r->nre++;
        }
        if (r->nre == 0) {
            snprintf(why, n, "rule '%s': a regex rule needs \"patterns\"", id);
            return MG_EINVAL;
        }
    } else if (strcmp(kind, "codepoints") == 0) {
        r->kind = K_CODEPOINTS;
        r->fields = parse_fields(json_object_get(j, "fields"), text_fields | F_NAME);
        const json_t *rs = json_object_get(j, "ranges");
        r->ranges = calloc(json_array_size(rs) + 1, sizeof *r->ranges);
        size_t i;
        const json_t *pair;
        json_array_foreach(rs, i, pair)
        {
            const char *a = json_string_value(json_array_get(pair, 0));
            const char *b = json_string_value(json_array_get(pair, 1));
            if (a == NULL || b == NULL) {
                snprintf(why, n, "rule '%s': ranges are [\"hex\", \"hex\"] pairs", id);
                return MG_EINVAL;
            }
            r->ranges[r->nranges][0] = (uint32_t)strtoul(a, NULL, 16);
            r->ranges[r->nranges][1] = (uint32_t)strtoul(b, NULL, 16);
            r->nranges++;
        }
    } else if (strcmp(kind, "base64") == 0) {
        r->kind = K_BASE64;
        r->fields = parse_fields(json_object_get(j, "fields"), text_fields);
        json_int_t m = json_integer_value(json_object_get(j, "minLength"));
        r->min_len = m > 16 ? (size_t)m : 64;
    } else if (strcmp(kind, "length") == 0) {
        r->kind = K_LENGTH;
        r->fields = parse_fields(json_object_get(j, "fields"), F_DESC | F_INSTR);
        json_int_t m = json_integer_value(json_object_get(j, "maxBytes"));
        r->max_bytes = m > 0 ? (size_t)m : 8192;
    } else if (strcmp(kind, "shadowing") == 0) {
        r->kind = K_SHADOWING;
        r->fields = parse_fields(json_object_get(j, "fields"), text_fields);
    } else if (strcmp(kind, "name") == 0) {
        r->kind = K_NAME;
        r->fields = F_NAME;
    } else {
        snprintf(why, n,
                 "rule '%s': unknown kind '%.40s' (regex, codepoints, base64, length, shadowing, name)", id,
                 kind);
        return MG_EINVAL;
    }
    return 0;
}

/* Adds the rules and confusables of one rules document. */
static int add_doc(mg_scanner_t *sc, const char *text, char *why, size_t n)
{
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    if (!json_is_object(doc)) {
        snprintf(why, n, "line %d: %s", je.line, doc ? "the top level must be an object" : je.text);
        json_decref(doc);
        return MG_EINVAL;
    }
    const json_t *conf = json_object_get(doc, "confusables");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)conf, k, v)
    {
        size_t adv;
        const char *to = json_string_value(v);
        if (to == NULL || strlen(to) >= 8 || k[0] == '\0')
            continue;
        uint32_t cp = utf8_next((const unsigned char *)k, strlen(k), &adv);
        confusable_t *g = realloc(sc->conf, (sc->nconf + 1) * sizeof *g);
        if (g == NULL)
            break;
        sc->conf = g;
        sc->conf[sc->nconf].cp = cp;
        snprintf(sc->conf[sc->nconf].to, sizeof sc->conf[sc->nconf].to, "%s", to);
        sc->nconf++;
    }
    if (sc->nconf > 1)
        qsort(sc->conf, sc->nconf, sizeof *sc->conf, conf_cmp);
    const json_t *rules = json_object_get(doc, "rules");
    size_t i;
    const json_t *rj;
    int rc = 0;
    json_array_foreach(rules, i, rj)
    {
        rule_t r;
        memset(&r, 0, sizeof r);
        if ((rc = parse_rule(rj, &r, why, n)) != 0) {
            rule_dispose(&r);
            break;
        }
        size_t at = sc->n;
        for (size_t x = 0; x < sc->n; x++)
            if (strcmp(sc->rules[x].id, r.id) == 0)
                at = x;
        if (at == sc->n) {
            rule_t *g = realloc(sc->rules, (sc->n + 1) * sizeof *g);
            if (g == NULL) {
                rule_dispose(&r);
                rc = MG_ENOMEM;
                break;
            }
            sc->rules = g;
            sc->n++;
        } else {
            rule_dispose(&sc->rules[at]);
        }
        sc->rules[at] = r;
    }
    json_decref(doc);
    return rc;
}

int mg_scanner_new_from_text(const char *rules_json, int base_builtin, mg_scanner_t **out, char *why,
                             size_t n)
{
    mg_scanner_t *sc = calloc(1, sizeof *sc);
    if (sc == NULL)
        return MG_ENOMEM;
    int rc = base_builtin ? add_doc(sc, mg_scan_default_rules, why, n) : 0;
    if (rc == 0 && rules_json != NULL)
        rc = add_doc(sc, rules_json, why, n);
    if (rc != 0) {
        mg_scanner_free(sc);
        return rc;
    }
    *out = sc;
    return 0;
}

int mg_scanner_new(const char *extra_file, char *const *disable, size_t ndisable, mg_scanner_t **out,
                   char *why, size_t n)
{
    char *extra = NULL;
    if (extra_file != NULL) {
        FILE *f = fopen(extra_file, "rb");
        if (f == NULL) {
            snprintf(why, n, "gateway.scan.rules: %s cannot be read", extra_file);
            return MG_EINVAL;
        }
        extra = calloc(1, 1024 * 1024 + 1);
        size_t got = extra ? fread(extra, 1, 1024 * 1024, f) : 0;
        fclose(f);
        (void)got;
        if (extra == NULL)
            return MG_ENOMEM;
    }
    char w[300];
    int rc = mg_scanner_new_from_text(extra, 1, out, w, sizeof w);
    free(extra);
    if (rc != 0) {
        snprintf(why, n, "%s: %s", extra_file ? extra_file : "built-in scan rules", w);
        return rc;
    }
    mg_scanner_t *sc = *out;
    for (size_t d = 0; d < ndisable; d++) {
        for (size_t i = 0; i < sc->n; i++) {
            if (strcmp(sc->rules[i].id, disable[d]) != 0)
                continue;
            rule_dispose(&sc->rules[i]);
            sc->rules[i] = sc->rules[--sc->n];
            break;
        }
    }
    return 0;
}

/* ---- scanning ---- */

typedef struct scan_ctx {
    const mg_scanner_t *sc;
    const json_t *others;
    const char *self_name;
    json_t *findings;
} scan_ctx_t;

static void excerpt(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
}

static void add_finding(scan_ctx_t *x, const rule_t *r, const char *field, const char *ex, const char *extra)
{
    char msg[300];
    snprintf(msg, sizeof msg, "%s%s", r->message, extra ? extra : "");
    json_array_append_new(x->findings,
                          json_pack("{s:s,s:s,s:s,s:s,s:s}", "rule", r->id, "severity",
                                    mg_severity_name(r->sev), "field", field, "excerpt", ex, "message", msg));
}

static int distinctive(const char *name)
{
    size_t len = strlen(name);
    int sep = strchr(name, '_') != NULL || strchr(name, '-') != NULL;
    int lower = 0, upper = 0;
    for (const char *p = name; *p; p++) {
        lower |= islower((unsigned char)*p) != 0;
        upper |= isupper((unsigned char)*p) != 0;
    }
    return len >= 5 && (sep || (lower && upper));
}

static int word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* Case-folded skeleton for look-alike names: confusables mapped, '-' as '_', '1' as 'l', '0' as 'o'. */
static void skeleton(const mg_scanner_t *sc, const char *name, char *out, size_t cap)
{
    char *norm = normalise(sc, name, strlen(name));
    size_t o = 0;
    for (const char *p = norm ? norm : name; *p && o + 1 < cap; p++) {
        char c = (char)tolower((unsigned char)*p);
        out[o++] = c == '-' ? '_' : c == '1' ? 'l' : c == '0' ? 'o' : c;
    }
    out[o] = '\0';
    free(norm);
}

static void run_rule(scan_ctx_t *x, const rule_t *r, unsigned fclass, const char *field, const char *text,
                     const char *norm)
{
    char ex[100];
    size_t len = strlen(text);
    size_t slen = len < MAX_SCAN_BYTES ? len : MAX_SCAN_BYTES;
    switch (r->kind) {
    case K_REGEX:
        for (size_t i = 0; i < r->nre; i++) {
            regmatch_t m;
            if (regexec(&r->re[i], norm, 1, &m, 0) == 0) {
                size_t ml = (size_t)(m.rm_eo - m.rm_so);
                excerpt(norm + m.rm_so, ml < 80 ? ml : 80, ex, sizeof ex);
                add_finding(x, r, field, ex, NULL);
                return;
            }
        }
        return;
    case K_CODEPOINTS: {
        const unsigned char *s = (const unsigned char *)text;
        size_t hits = 0, first = 0;
        uint32_t first_cp = 0;
        for (size_t i = 0; i < slen;) {
            size_t adv;
            uint32_t c = utf8_next(s + i, slen - i, &adv);
            for (size_t k = 0; k < r->nranges; k++) {
                if (c >= r->ranges[k][0] && c <= r->ranges[k][1]) {
                    if (hits++ == 0) {
                        first = i;
                        first_cp = c;
                    }
                    break;
                }
            }
            i += adv;
        }
        if (hits > 0) {
            snprintf(ex, sizeof ex, "U+%04X at byte %zu (%zu such character%s)", (unsigned)first_cp, first,
                     hits, hits == 1 ? "" : "s");
            add_finding(x, r, field, ex, NULL);
        }
        return;
    }
    case K_BASE64: {
        size_t run = 0, start = 0;
        int d = 0, u = 0, l = 0;
        for (size_t i = 0; i <= slen; i++) {
            char c = i < slen ? text[i] : ' ';
            if (isalnum((unsigned char)c) || c == '+' || c == '/' || c == '=' || c == '-' || c == '_') {
                if (run++ == 0) {
                    start = i;
                    d = u = l = 0;
                }
                d |= isdigit((unsigned char)c) != 0;
                u |= isupper((unsigned char)c) != 0;
                l |= islower((unsigned char)c) != 0;
                continue;
            }
            if (run >= r->min_len && d && u && l) {
                char e2[64];
                excerpt(text + start, run < 40 ? run : 40, e2, sizeof e2);
                snprintf(ex, sizeof ex, "%s... (%zu characters)", e2, run);
                add_finding(x, r, field, ex, NULL);
                return;
            }
            run = 0;
        }
        return;
    }
    case K_LENGTH:
        if (len > r->max_bytes) {
            snprintf(ex, sizeof ex, "%zu bytes (limit %zu)", len, r->max_bytes);
            add_finding(x, r, field, ex, NULL);
        }
        return;
    case K_SHADOWING: {
        const char *name;
        json_t *srv;
        json_object_foreach((json_t *)x->others, name, srv)
        {
            if (!distinctive(name) || (x->self_name != NULL && strcmp(name, x->self_name) == 0))
                continue;
            size_t nl = strlen(name);
            for (const char *p = strstr(norm, name); p != NULL; p = strstr(p + 1, name)) {
                if ((p == norm || !word_char(p[-1])) && !word_char(p[nl])) {
                    char extra[160];
                    snprintf(extra, sizeof extra, " (tool '%.60s' of server '%.40s')", name,
                             json_string_value(srv) ? json_string_value(srv) : "?");
                    excerpt(name, nl < 80 ? nl : 80, ex, sizeof ex);
                    add_finding(x, r, field, ex, extra);
                    return;
                }
            }
        }
        return;
    }
    case K_NAME: {
        if (fclass != F_NAME)
            return;
        for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
            if (*p >= 0x80 || *p <= 0x20 || *p == 0x7f) {
                excerpt(text, len < 80 ? len : 80, ex, sizeof ex);
                add_finding(x, r, field, ex, " (non-ASCII or control characters in a name)");
                return;
            }
        }
        char mine[200], theirs[200];
        skeleton(x->sc, text, mine, sizeof mine);
        const char *name;
        json_t *srv;
        json_object_foreach((json_t *)x->others, name, srv)
        {
            if (strcmp(name, text) == 0)
                continue; /* the same name on two servers is a collision, which namespacing handles */
            skeleton(x->sc, name, theirs, sizeof theirs);
            if (strcmp(mine, theirs) == 0) {
                char extra[160];
                snprintf(extra, sizeof extra, " (looks like tool '%.60s' of server '%.40s')", name,
                         json_string_value(srv) ? json_string_value(srv) : "?");
                excerpt(text, len < 80 ? len : 80, ex, sizeof ex);
                add_finding(x, r, field, ex, extra);
                return;
            }
        }
        return;
    }
    }
}

static void scan_text(scan_ctx_t *x, unsigned fclass, const char *field, const char *text)
{
    if (text == NULL || text[0] == '\0')
        return;
    size_t len = strlen(text);
    char *norm = normalise(x->sc, text, len < MAX_SCAN_BYTES ? len : MAX_SCAN_BYTES);
    if (norm == NULL)
        return;
    for (size_t i = 0; i < x->sc->n; i++)
        if (x->sc->rules[i].fields & fclass)
            run_rule(x, &x->sc->rules[i], fclass, field, text, norm);
    free(norm);
}

/* Every "description" and "title" string inside a schema (bounded depth). */
static void scan_schema(scan_ctx_t *x, const json_t *v, char *path, size_t plen, size_t cap, int depth)
{
    if (depth > 12 || v == NULL)
        return;
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c)
        {
            size_t l = (size_t)snprintf(path + plen, cap - plen, ".%s", k);
            size_t np = plen + l < cap ? plen + l : cap - 1;
            if ((strcmp(k, "description") == 0 || strcmp(k, "title") == 0) && json_is_string(c))
                scan_text(x, F_SCHEMA, path, json_string_value(c));
            else
                scan_schema(x, c, path, np, cap, depth + 1);
            path[plen] = '\0';
        }
    } else if (json_is_array(v)) {
        size_t i;
        const json_t *c;
        json_array_foreach(v, i, c)
        {
            size_t l = (size_t)snprintf(path + plen, cap - plen, "[%zu]", i);
            scan_schema(x, c, path, plen + l < cap ? plen + l : cap - 1, cap, depth + 1);
            path[plen] = '\0';
        }
    }
}

json_t *mg_scan_item(const mg_scanner_t *sc, const char *kind, const json_t *item, const json_t *others)
{
    scan_ctx_t x = {sc, others, NULL, json_array()};
    if (sc == NULL || !json_is_object(item))
        return x.findings;
    const char *name = json_string_value(json_object_get(item, "name"));
    x.self_name = name;
    int named = strcmp(kind, "tools") == 0 || strcmp(kind, "prompts") == 0;
    if (name != NULL && named)
        scan_text(&x, F_NAME, "name", name);
    scan_text(&x, F_TITLE, "title", json_string_value(json_object_get(item, "title")));
    scan_text(&x, F_TITLE, "annotations.title",
              json_string_value(json_object_get(json_object_get(item, "annotations"), "title")));
    scan_text(&x, F_DESC, "description", json_string_value(json_object_get(item, "description")));
    char path[256];
    static const char *const schema_keys[] = {"inputSchema", "outputSchema", "arguments", NULL};
    for (size_t i = 0; schema_keys[i] != NULL; i++) {
        size_t l = (size_t)snprintf(path, sizeof path, "%s", schema_keys[i]);
        scan_schema(&x, json_object_get(item, schema_keys[i]), path, l, sizeof path, 0);
    }
    return x.findings;
}

json_t *mg_scan_instructions(const mg_scanner_t *sc, const char *text, const json_t *others)
{
    scan_ctx_t x = {sc, others, NULL, json_array()};
    if (sc != NULL)
        scan_text(&x, F_INSTR, "instructions", text);
    return x.findings;
}

int mg_scan_max_severity(const json_t *findings)
{
    int max = -1;
    size_t i;
    const json_t *f;
    json_array_foreach(findings, i, f)
    {
        mg_severity_t s;
        if (mg_severity_parse(json_string_value(json_object_get(f, "severity")), &s) == 0 && (int)s > max)
            max = (int)s;
    }
    return max;
}
