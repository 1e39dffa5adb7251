/*
 * audit.h - `mcpgate audit`: the production checklist (the field report's 15 checks plus the spec's
 * MUSTs) run against a live MCP endpoint (`mcpgate audit URL`) or a config (`--config FILE`).
 *
 * Three parts, each usable alone:
 *   - the registry (registry.c): every check with its stable id, group, title, reference and fix;
 *   - the verdicts (verdict.c, verdict_config.c): pure functions from a *recording* (a JSON object
 *     holding every exchange the probes made, format in audit_int.h) to pass/warn/fail/skip with
 *     evidence, so unit tests feed recorded responses and never need a server;
 *   - the probes (probe.c, probe_url.c, config_audit.c): the bounded, read-only HTTP and stdio
 *     exchanges that fill a recording.
 * A report (report.c) prints as a table, JSON or SARIF 2.1.0. A check that could not be run is
 * `skip` with the reason, never `pass`.
 * Read next: audit_int.h (recording format), docs/audit.md (every check, its reference and fix).
 */
#ifndef MG_AUDIT_H
#define MG_AUDIT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

typedef enum { MG_AUDIT_PASS = 0, MG_AUDIT_WARN, MG_AUDIT_FAIL, MG_AUDIT_SKIP } mg_audit_status_t;

/* One check of the registry. Every string is static. */
typedef struct mg_audit_check {
    const char *id;    /* stable across versions: "transport.cors" */
    const char *group; /* "Transport", "Auth", ... (the checklist's groups, in its order) */
    const char *title; /* one line */
    const char *ref;   /* where the rule comes from: spec section, RFC, field-report checklist item */
    const char *fix;   /* one line: what to change when it does not pass */
    const char *docs;  /* docs/audit.md anchor, e.g. "docs/audit.md#transportcors" */
} mg_audit_check_t;

/* The registry, in report order; NULL-terminated on id. */
extern const mg_audit_check_t mg_audit_checks[];
/* The check with that id, or NULL. */
const mg_audit_check_t *mg_audit_check_find(const char *id);
/* "pass" / "warn" / "fail" / "skip". */
const char *mg_audit_status_name(mg_audit_status_t s);

/* A report under construction: results in order, one per (check, server). */
typedef struct mg_audit_report {
    char *target;   /* the URL or the config path, owned */
    json_t *checks; /* array of {"id","group","title","status","evidence","fix"[,"server"]} */
} mg_audit_report_t;

/* Returns 0 or MG_ENOMEM. */
int mg_audit_report_init(mg_audit_report_t *rep, const char *target);
void mg_audit_report_dispose(mg_audit_report_t *rep);
/*
 * Adds the result of check `id` (must be in the registry: an unknown id aborts in debug builds and is
 * dropped otherwise). server: NULL for the target itself, else the config's server name. The evidence
 * is formatted (at most 1 KiB; control characters become spaces) and never holds a token: the callers
 * only ever format status codes, header names, figures and server text.
 */
void mg_audit_add(mg_audit_report_t *rep, const char *id, const char *server, mg_audit_status_t st,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The status recorded for id (first match, any server), or -1 when absent. */
int mg_audit_report_status(const mg_audit_report_t *rep, const char *id);
/* Counts per status into n[4] (indexed by mg_audit_status_t). */
void mg_audit_report_counts(const mg_audit_report_t *rep, size_t n[4]);

/* The JSON document: {"target","checks":[...],"summary":{"pass","warn","fail","skip"}}. NEW. */
json_t *mg_audit_report_json(const mg_audit_report_t *rep);
/* A SARIF 2.1.0 log with one run: every registry check as a rule, every result as a result
 * (fail: error, warn: warning, pass: kind "pass", skip: kind "notApplicable"). NEW. */
json_t *mg_audit_report_sarif(const mg_audit_report_t *rep);
/* The table grouped like the checklist: status, id, evidence, then fix and docs for warn/fail. */
void mg_audit_report_print(const mg_audit_report_t *rep, FILE *f);
/* Exit status for --fail-on: fail_on "fail" (1 when a check failed), "warn" (1 when one warned or
 * failed), NULL or "never" (0). */
int mg_audit_report_exit(const mg_audit_report_t *rep, const char *fail_on);

/* Runs every URL verdict over a recording (audit_int.h) into rep. */
void mg_audit_verdict_url(const json_t *rec, mg_audit_report_t *rep);

/* The subcommand (cli.h contract): argv[0] is "audit". */
int mg_cli_audit(int argc, char **argv);

#endif
