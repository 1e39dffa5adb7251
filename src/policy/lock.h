/*
 * lock.h - the lockfile (CONFIG.lock beside CONFIG.json): what each upstream said when someone
 * reviewed it, pinned by hash.
 *
 * Format (reviewable JSON, keys sorted, 2-space indent, meant to be committed beside the config):
 *
 *   {
 *     "lockfileVersion": 1,
 *     "generatedBy": "mcpgate 0.1.0",
 *     "servers": {
 *       "<server>": {
 *         "instructions": {"sha256": "<hex>", "text": "..."} | null,
 *         "tools":             {"<name>":        {"sha256": "<hex>", "definition": {...}}},
 *         "prompts":           {"<name>":        {"sha256": "<hex>", "definition": {...}}},
 *         "resourceTemplates": {"<uriTemplate>": {"sha256": "<hex>", "definition": {...}}}
 *       }
 *     }
 *   }
 *
 * | field       | meaning                                                                          |
 * |-------------|----------------------------------------------------------------------------------|
 * | sha256      | SHA-256 (hex) of the definition's canonical JSON: the pin; only this is compared  |
 * | definition  | the object the upstream sent, for review and for field-level diffs                |
 * | canonical   | object keys sorted by bytes, no whitespace, UTF-8 as is (not \u-escaped),         |
 * | JSON        | numbers as jansson prints them; the instructions hash is over the string itself  |
 *
 * The whole definition is pinned (name, title, description, schemas, annotations, _meta): any
 * change is a change. Concrete resources are not pinned (they come and go); templates are.
 * Read next: pin.c (the runtime check), lock_cmd.c (`mcpgate lock`).
 */
#ifndef MG_POLICY_LOCK_H
#define MG_POLICY_LOCK_H

#include <jansson.h>
#include <stdio.h>

#define MG_LOCK_VERSION 1

/* The three pinned lists, by their MCP result keys; MG_LOCK_KINDS entries. */
#define MG_LOCK_KINDS 3
extern const char *const mg_lock_kinds[MG_LOCK_KINDS];     /* "tools", "prompts", "resourceTemplates" */
extern const char *const mg_lock_kind_item[MG_LOCK_KINDS]; /* "tool", "prompt", "resource template" */
/* Index in mg_lock_kinds of a list key, or -1 ("resources" is not pinned). */
int mg_lock_kind_index(const char *list_key);
/* The identifying field of an item of kind k ("name" or "uriTemplate"); NULL when it has none. */
const char *mg_lock_item_key(int k, const json_t *item);

/* SHA-256 hex (65 bytes with NUL) of v's canonical JSON (a string: of its UTF-8 bytes). 0 or MG_ENOMEM. */
int mg_lock_hash(const json_t *v, char out[65]);

/* NEW server entry from what an upstream said. Lists may be NULL (= empty); instructions may be NULL. */
json_t *mg_lock_server_entry(const json_t *tools, const json_t *prompts, const json_t *templates,
                             const char *instructions);

/* NEW empty lock document. */
json_t *mg_lock_new(void);

/*
 * Reads path. Returns a NEW reference, or NULL: *missing = 1 when the file does not exist, else
 * why holds a sentence (unreadable, not JSON, wrong version, malformed entry).
 */
json_t *mg_lock_load(const char *path, int *missing, char *why, size_t n);

struct mg_config;

/* Where the pins of a config were read from (mg_lock_load_for). Free with mg_lock_source_dispose. */
typedef struct mg_lock_source {
    char *path;   /* the config's own lockfile, which `mcpgate lock` writes; NULL = embedded config */
    char *legacy; /* non-NULL: path did not exist and the pins came from this shared mcpgate.lock */
} mg_lock_source_t;

/*
 * The lock of cfg: explicit (--lock) when given, else mg_policy_lock_path(cfg). When that file does
 * not exist and an "mcpgate.lock" from before locks were named after their config sits beside the
 * config (mg_policy_lock_legacy_path), it is read instead, keeping only the entries of cfg's servers;
 * src->legacy names it. That file is never written or removed here: other configs of the directory
 * may still read it. Returns a NEW lock or NULL, with *missing and why as mg_lock_load.
 */
json_t *mg_lock_load_for(const struct mg_config *cfg, const char *explicit_path, mg_lock_source_t *src,
                         int *missing, char *why, size_t n);
void mg_lock_source_dispose(mg_lock_source_t *src);

/* Writes lock to path atomically (temporary file + rename), sorted keys, 2-space indent. 0 or MG_EIO. */
int mg_lock_write(const char *path, const json_t *lock);

/*
 * Changes from old to new server entry (either may be NULL = empty). NEW array of
 * {"kind": "tools"|..|"instructions", "name": "...", "change": "added"|"removed"|"changed",
 *  "fields": ["description", ...] (changed only)}.
 */
json_t *mg_lock_diff(const json_t *old_entry, const json_t *new_entry);

/* Prints one server's diff for people: "  ~ tool echo: description changed" plus old/new text of a
 * changed description or instructions (at most 300 bytes each, control characters escaped). */
void mg_lock_diff_print(FILE *f, const char *server, const json_t *diff, const json_t *old_entry,
                        const json_t *new_entry);

/* "description changed; inputSchema changed" style summary of one diff item into buf. */
void mg_lock_diff_summary(const json_t *change, char *buf, size_t n);

#endif
