/*
 * journal.h - the tamper-evident call journal (gateway.journal): one JSON line per record, each
 * line carrying the SHA-256 of the line before it, HMAC checkpoints, rotation by size with the
 * chain continued across files, written off the loop.
 *
 * The gateway (gateway/journal_hooks.c) builds one record per completed call and hands it to
 * mg_journal_append(); this module knows nothing of MCP. `mcpgate journal verify` (cli/journal_cmd.c)
 * checks files with mg_journal_verify(). docs/operations.md "Call journal" is the user's view.
 *
 * Line format (one JSON object per line, '\n'-terminated, compact, in this key order):
 *
 *   key     value
 *   seq     1, 2, 3 ... across every file of the journal (never reset by rotation or restart)
 *   prev    64 hex digits: SHA-256 of the bytes of the previous line (without its '\n');
 *           64 zeros for seq 1
 *   time    UTC, RFC 3339 with milliseconds
 *   kind    "call" | "open" (a gateway started appending) | "checkpoint" | "gap" (records dropped)
 *   ...     the record's own members (calls: gateway/journal_hooks.c)
 *
 *   checkpoint members: "reason" ("count" | "interval" | "rotate" | "close"), and "hmac": hex
 *   HMAC-SHA256(key, "mcpgate-journal-v1\n<seq>\n<prev>") when a key is configured. prev chains
 *   every earlier line, so a valid HMAC vouches for all of them.
 *   gap members: "dropped": records refused while the write queue was full (never in the chain).
 *
 * Files: PATH is the live file. Rotation (PATH over max_bytes) writes a checkpoint as the file's
 * last line, renames PATH to PATH.<seq of its first line, 12 digits> and opens a new PATH whose
 * first line continues the chain. Lexical order of the rotated names is chain order.
 *
 * Writing: lines are formatted on the loop (so chain order is the order of mg_journal_append
 * calls) and queued; one libuv work item at a time fills in their prev hashes and checkpoint HMACs
 * (in queue order), writes the queue, renames and reopens on the threadpool. The queue is bounded
 * (queue_bytes): a record that does not fit is dropped, counted (mcpgate_journal_dropped_total), logged
 * (rate-limited), and the next accepted record is preceded by a "gap" line. A failed write (disk full, I/O
 * error) is counted and retried every second from where it stopped; new records queue meanwhile up to the
 * bound. Nothing here ever blocks a request.
 */
#ifndef MG_JOURNAL_H
#define MG_JOURNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

typedef struct mg_journal mg_journal_t;

typedef struct mg_journal_opts {
    const char *path;          /* the live file (copied) */
    const unsigned char *key;  /* HMAC key of the checkpoints (copied); NULL = unkeyed checkpoints */
    size_t keylen;             /* 1..1024 */
    uint64_t max_bytes;        /* rotate when the live file passes this; 0 = never */
    unsigned checkpoint_every; /* a checkpoint after this many lines; 0 = 1000 */
    uint64_t checkpoint_ms;    /* and when lines were written this long after the last one; 0 = 10 s */
    size_t queue_bytes;        /* lines formatted but not yet written; 0 = 16 MiB */
} mg_journal_opts_t;

/* Statistics for /metrics and /status. */
typedef struct mg_journal_stats {
    uint64_t records;       /* lines accepted into the chain */
    uint64_t dropped;       /* records refused (queue full) */
    uint64_t write_errors;  /* failed write attempts */
    uint64_t rotations;     /* files rotated */
    uint64_t bytes_written; /* bytes written to disk */
    size_t queued_bytes;    /* formatted, not yet written */
    uint64_t seq;           /* last seq in the chain */
    int failing;            /* the last write failed (retrying) */
} mg_journal_stats_t;

/*
 * Opens (creates, 0600) opts->path for appending and continues the chain found there (or in the
 * newest rotated file), then appends an "open" record carrying `open_fields` (borrowed, may be
 * NULL). Synchronous: call at startup. Returns 0, or MG_EIO / MG_EINVAL / MG_ENOMEM with a
 * sentence in why. Registers the metrics collector.
 */
int mg_journal_open(uv_loop_t *loop, const mg_journal_opts_t *opts, json_t *open_fields, mg_journal_t **out,
                    char *why, size_t whylen);
/*
 * Appends one record: kind (e.g. "call") and the members of `fields` (a JSON object, borrowed).
 * Never blocks. Returns 0 when queued, MG_EBUSY when dropped (queue full: counted and logged),
 * MG_ECLOSED after mg_journal_close, MG_ENOMEM.
 */
int mg_journal_append(mg_journal_t *j, const char *kind, const json_t *fields);
/* The same with the members already written as JSON text: `"a":1,"b":"x"` (len bytes, no braces;
 * the caller guarantees valid JSON). The cheap path for a record per call. */
int mg_journal_append_text(mg_journal_t *j, const char *kind, const char *members, size_t len);
void mg_journal_get_stats(const mg_journal_t *j, mg_journal_stats_t *out);
/*
 * Writes a "close" checkpoint, waits for the queue to reach the disk (at most wait_ms while writes
 * fail), closes the file, frees j and calls done_cb(data) once (from the loop, never inside this
 * call). j is invalid afterwards.
 */
void mg_journal_close(mg_journal_t *j, uint64_t wait_ms, void (*done_cb)(void *data), void *data);

/* ---- verification (journal_verify.c) ---- */

/* HMAC-SHA256 hex (65 bytes with the NUL) of a checkpoint at seq whose prev is prev_hex. */
void mg_journal_checkpoint_mac(const unsigned char *key, size_t keylen, uint64_t seq, const char *prev_hex,
                               char out[65]);

typedef struct mg_journal_verify_opts {
    const unsigned char *key; /* NULL: checkpoints' HMACs are not checked (reported) */
    size_t keylen;
    int partial; /* the first line may continue an older, pruned chain (seq > 1) */
    int single;  /* only the files given, not PATH's rotated siblings */
    FILE *out;   /* the report (problems, summary) */
} mg_journal_verify_opts_t;

/*
 * Verifies the journal whose live file is path: its rotated siblings PATH.<digits> in order, then
 * PATH (or only path with single). Reports the first broken or missing line as
 * "FILE:LINE: what" and returns 1; returns 0 when the chain is intact (warnings, e.g. lines after
 * the last checkpoint or gaps, are printed); 2 when a file cannot be read.
 */
int mg_journal_verify(const char *path, const mg_journal_verify_opts_t *o);

#endif
