/*
 * report.c - the results of one audit and their three renderings: the table (grouped like the
 * checklist, evidence under each check, fix and docs pointer for what did not pass), the JSON
 * document whose shape is fixed by the issue (target, checks[], summary), and SARIF 2.1.0 for
 * code-scanning dashboards (one rule per registry check, one result per check run).
 * Read next: registry.c (the checks), docs/audit.md (output formats).
 */
#include "audit.h"
#include "../common/err.h"
#include "../common/json.h"

#include <assert.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int mg_audit_report_init(mg_audit_report_t *rep, const char *target)
{
    rep->target = strdup(target ? target : "");
    rep->checks = json_array();
    if (rep->target == NULL || rep->checks == NULL) {
        mg_audit_report_dispose(rep);
        return MG_ENOMEM;
    }
    return 0;
}

void mg_audit_report_dispose(mg_audit_report_t *rep)
{
    free(rep->target);
    json_decref(rep->checks);
    rep->target = NULL;
    rep->checks = NULL;
}

void mg_audit_add(mg_audit_report_t *rep, const char *id, const char *server, mg_audit_status_t st,
                  const char *fmt, ...)
{
    const mg_audit_check_t *c = mg_audit_check_find(id);
    assert(c != NULL);
    if (c == NULL)
        return;
    char ev[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev, sizeof ev, fmt, ap);
    va_end(ap);
    for (char *p = ev; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    if (!mg_json_utf8_valid(ev, strlen(ev)))
        for (char *p = ev; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "id", c->id, "group", c->group, "title", c->title, "status",
                  mg_audit_status_name(st), "evidence", ev, "fix", st == MG_AUDIT_PASS ? "" : c->fix);
    if (o != NULL && server != NULL)
        json_object_set_new(o, "server", json_string(server));
    if (o != NULL)
        json_array_append_new(rep->checks, o);
}

static mg_audit_status_t status_of(const json_t *o)
{
    const char *s = json_string_value(json_object_get(o, "status"));
    for (int i = 0; i < 4; i++)
        if (s != NULL && strcmp(s, mg_audit_status_name((mg_audit_status_t)i)) == 0)
            return (mg_audit_status_t)i;
    return MG_AUDIT_SKIP;
}

int mg_audit_report_status(const mg_audit_report_t *rep, const char *id)
{
    size_t i;
    json_t *o;
    json_array_foreach(rep->checks, i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "id")), id) == 0)
            return (int)status_of(o);
    }
    return -1;
}

void mg_audit_report_counts(const mg_audit_report_t *rep, size_t n[4])
{
    memset(n, 0, 4 * sizeof n[0]);
    size_t i;
    json_t *o;
    json_array_foreach(rep->checks, i, o) n[status_of(o)]++;
}

json_t *mg_audit_report_json(const mg_audit_report_t *rep)
{
    size_t n[4];
    mg_audit_report_counts(rep, n);
    return json_pack("{s:s,s:O,s:{s:I,s:I,s:I,s:I}}", "target", rep->target, "checks", rep->checks, "summary",
                     "pass", (json_int_t)n[0], "warn", (json_int_t)n[1], "fail", (json_int_t)n[2], "skip",
                     (json_int_t)n[3]);
}

json_t *mg_audit_report_sarif(const mg_audit_report_t *rep)
{
    static const char *const levels[] = {"none", "warning", "error", "none"};
    static const char *const kinds[] = {"pass", "fail", "fail", "notApplicable"};
    json_t *rules = json_array(), *results = json_array();
    size_t nrules = 0;
    for (const mg_audit_check_t *c = mg_audit_checks; c->id != NULL; c++, nrules++) {
        char help[512];
        snprintf(help, sizeof help, "%s (%s)", c->fix, c->docs);
        json_array_append_new(rules, json_pack("{s:s,s:s,s:{s:s},s:{s:s},s:{s:s},s:{s:s},s:{s:s,s:[s]}}",
                                               "id", c->id, "name", c->id, "shortDescription", "text",
                                               c->title, "fullDescription", "text", c->ref, "help", "text",
                                               help, "defaultConfiguration", "level", "warning", "properties",
                                               "group", c->group, "tags", "mcp"));
    }
    size_t i;
    json_t *o;
    json_array_foreach(rep->checks, i, o)
    {
        const char *id = json_string_value(json_object_get(o, "id"));
        long idx = 0;
        for (const mg_audit_check_t *c = mg_audit_checks; c->id != NULL; c++, idx++)
            if (strcmp(c->id, id) == 0)
                break;
        mg_audit_status_t st = status_of(o);
        const char *server = json_string_value(json_object_get(o, "server"));
        const char *fix = json_string_value(json_object_get(o, "fix"));
        char msg[1600];
        snprintf(msg, sizeof msg, "%s%s%s: %s%s%s", server ? "server " : "", server ? server : "",
                 server ? ": " : "", json_string_value(json_object_get(o, "evidence")),
                 fix && *fix ? ". Fix: " : "", fix ? fix : "");
        json_t *r = json_pack("{s:s,s:I,s:s,s:s,s:{s:s},s:[{s:{s:{s:s}}}],s:{s:s}}", "ruleId", id,
                              "ruleIndex", (json_int_t)idx, "kind", kinds[st], "level", levels[st], "message",
                              "text", msg, "locations", "physicalLocation", "artifactLocation", "uri",
                              rep->target, "properties", "status", mg_audit_status_name(st));
        if (r != NULL)
            json_array_append_new(results, r);
    }
    (void)nrules;
    return json_pack("{s:s,s:s,s:[{s:{s:{s:s,s:s,s:o}},s:o,s:[{s:b}]}]}", "$schema",
                     "https://json.schemastore.org/sarif-2.1.0.json", "version", "2.1.0", "runs", "tool",
                     "driver", "name", "mcpgate audit", "version", MG_VERSION, "rules", rules, "results",
                     results, "invocations", "executionSuccessful", 1);
}

void mg_audit_report_print(const mg_audit_report_t *rep, FILE *f)
{
    static const char *const marks[] = {"PASS", "WARN", "FAIL", "SKIP"};
    fprintf(f, "mcpgate audit %s\n", rep->target);
    const char *group = NULL;
    for (const mg_audit_check_t *c = mg_audit_checks; c->id != NULL; c++) {
        size_t i;
        json_t *o;
        json_array_foreach(rep->checks, i, o)
        {
            if (strcmp(json_string_value(json_object_get(o, "id")), c->id) != 0)
                continue;
            if (group == NULL || strcmp(group, c->group) != 0) {
                group = c->group;
                fprintf(f, "\n%s\n", group);
            }
            mg_audit_status_t st = status_of(o);
            const char *server = json_string_value(json_object_get(o, "server"));
            if (server != NULL)
                fprintf(f, "  %s  %-26s [%s]\n", marks[st], c->id, server);
            else
                fprintf(f, "  %s  %s\n", marks[st], c->id);
            fprintf(f, "        %s\n", json_string_value(json_object_get(o, "evidence")));
            if (st == MG_AUDIT_WARN || st == MG_AUDIT_FAIL)
                fprintf(f, "        fix: %s (%s)\n", c->fix, c->docs);
        }
    }
    size_t n[4];
    mg_audit_report_counts(rep, n);
    fprintf(f, "\n%zu pass, %zu warn, %zu fail, %zu skip\n", n[0], n[1], n[2], n[3]);
}

int mg_audit_report_exit(const mg_audit_report_t *rep, const char *fail_on)
{
    size_t n[4];
    mg_audit_report_counts(rep, n);
    if (fail_on == NULL || strcmp(fail_on, "never") == 0)
        return 0;
    if (strcmp(fail_on, "warn") == 0)
        return n[MG_AUDIT_WARN] + n[MG_AUDIT_FAIL] > 0;
    return n[MG_AUDIT_FAIL] > 0;
}
