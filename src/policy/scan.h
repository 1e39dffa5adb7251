/*
 * scan.h - the description scanner: looks for poisoning in what an upstream tells the model
 * (tool, prompt and resource names and descriptions, descriptions inside schemas and arguments,
 * and the server's instructions).
 *
 * Rules are data (src/policy/scan-rules.json, compiled in; gateway.scan.rules adds or replaces
 * rules by id). Text is normalised before regex rules run: confusable letters (Cyrillic "а",
 * fullwidth forms...) become ASCII and invisible characters are dropped, so "іgnore previous
 * instructions" written with a Cyrillic "і" or with zero-width spaces still matches. Code-point
 * rules look at the raw text. A finding is {"rule","severity","field","excerpt","message"}; an
 * excerpt is at most 80 bytes with control characters escaped. Scanning is bounded: at most the
 * first 64 KiB of each text are matched (the length rule still sees the full length).
 * Read next: scan.c, docs/security.md#description-scanning.
 */
#ifndef MG_POLICY_SCAN_H
#define MG_POLICY_SCAN_H

#include <jansson.h>
#include <stddef.h>

#include "policy.h"

typedef struct mg_scanner mg_scanner_t;

/* The built-in rules document (scan-rules.json, NUL-terminated; generated at build time). */
extern const char mg_scan_default_rules[];

/*
 * Builds a scanner from the built-in rules, then the rules of extra_file (NULL = none; a rule with
 * the id of a built-in one replaces it), minus the ids in disable. Returns 0, or MG_EINVAL with a
 * sentence in why (bad rules file, bad regex, unknown kind) / MG_ENOMEM.
 */
int mg_scanner_new(const char *extra_file, char *const *disable, size_t ndisable, mg_scanner_t **out,
                   char *why, size_t n);
/* Same from rules JSON text (tests). base_builtin: start from the built-in rules first. */
int mg_scanner_new_from_text(const char *rules_json, int base_builtin, mg_scanner_t **out, char *why,
                             size_t n);
void mg_scanner_free(mg_scanner_t *sc);
/* Number of active rules. */
size_t mg_scanner_rule_count(const mg_scanner_t *sc);

/*
 * Scans one list item. kind: "tools", "prompts", "resources", "resourceTemplates". others:
 * object {"<tool name>": "<server>"} of the OTHER servers' tools (shadowing and look-alike names),
 * may be NULL. Returns a NEW array of findings (empty when clean).
 */
json_t *mg_scan_item(const mg_scanner_t *sc, const char *kind, const json_t *item, const json_t *others);
/* Scans server instructions. NEW array. */
json_t *mg_scan_instructions(const mg_scanner_t *sc, const char *text, const json_t *others);
/* Highest severity in findings, or -1 when there are none. */
int mg_scan_max_severity(const json_t *findings);

#endif
