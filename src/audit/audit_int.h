/*
 * audit_int.h - the audit's internals shared between its files: the recording format, the response
 * parsers and the bounded HTTP prober.
 *
 * Recording (a JSON object; the probes write it, the verdicts only read it):
 *
 *   key            type     meaning
 *   target         string   the URL audited
 *   loopback       bool     the target's host is a loopback address or "localhost"
 *   https          bool     the target's scheme is https
 *   token          bool     --token / --token-file given
 *   token2         bool     --token2 given (a second principal)
 *   replica        bool     --replica given
 *   x              object   exchanges by probe name (below): {"status": N (0: none), "headers":
 *                           {"lower-case-name": "value", ...}, "body": "text (at most 64 KiB)",
 *                           "error": "why no answer" (absent when one arrived), "sent": "what was sent"}
 *   session_ids    array    Mcp-Session-Id values of several initializes
 *   eras           array    protocolVersion answered to each initialize revision offered
 *   discover       array    2026-07-28 server/discover supportedVersions (absent: not offered)
 *   tools, tools2  array    two tools/list results of one session (all pages); absent: not listed
 *   tools_error    string   why the tools could not be listed
 *   burst          object   {"sent": N, "limit": N, "first429": K (absent: none), "retryAfter": "v"}
 *   bind           object   {"address": "10.0.0.5", "reachable": bool} (local targets only)
 *   tenant         object   {"leaked": N (answers), "notes": N (notifications naming A's
 *                           progress tokens), "seen": N, "stream": bool, "why": "..."}
 *   jwt            object   the --token's payload when it is a JWT (never the token itself)
 *   jwt2           object   the same for --token-other-audience
 *   mrtr           object   --call: {"tool", "status", "why" (no input_required to tamper with)}
 *
 * Probe names in x: init (the first initialize), noauth (initialize without token; the same as
 * init without --token), host_foreign, origin_foreign, preflight, query_token, unknown_session,
 * other_principal, replica, oversize, malformed, prm, asm, legacy_sse, discover, modern_mismatch,
 * modern_state, modern_list, modern_list2, mrtr_tampered (--call), other_audience, burst429,
 * cors_post.
 *
 * Read next: verdict.c (reads it), probe_url.c (writes it).
 */
#ifndef MG_AUDIT_INT_H
#define MG_AUDIT_INT_H

#include "audit.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* ---- parse.c: pure, bounded parsers of what a target answers (fuzzed: fuzz/fuzz_audit.c) ---- */

/* JSON-RPC messages of a response body: the JSON value (an array's items, or the object) of an
 * application/json body, or the data of every SSE event of a text/event-stream body (ctype NULL:
 * guessed from the body). Returns a NEW array (empty when nothing parsed); never NULL but on ENOMEM. */
json_t *mg_audit_messages(const char *ctype, const char *body, size_t len);
/* The message of msgs with that id (integer ids compare as numbers), borrowed, or NULL. */
json_t *mg_audit_find_id(const json_t *msgs, json_int_t id);
/* Payload of a JWT (three base64url segments), NEW object, or NULL when tok is not a JWT. */
json_t *mg_audit_jwt_payload(const char *tok);
/* Estimated bits of randomness of the ids (strings): the smallest per-id estimate, length times
 * log2 of the alphabet their characters come from (hex 16, base64url 64, ...), minus what all ids
 * share as a common prefix. 0 when fewer than two ids or any two are equal. */
double mg_audit_id_bits(const json_t *ids);
/* The value of parameter `name` in a WWW-Authenticate header (Bearer realm="x", resource_metadata="u"),
 * copied into out (at most n - 1 bytes). Returns 0 or -1 when absent. */
int mg_audit_auth_param(const char *header, const char *name, char *out, size_t n);
/* 1 when the body looks like HTML or carries a stack trace (Node, Python, Java, Go, .NET). */
int mg_audit_body_leaky(const char *body, size_t len);

/* ---- probe.c: one HTTP exchange at a time on a private loop, bounded ---- */

typedef struct mg_audit_probe mg_audit_probe_t;

typedef struct mg_audit_limits {
    unsigned max_requests;    /* budget for the whole audit */
    unsigned long time_ms;    /* total time limit */
    unsigned rate;            /* requests per second of our own (the burst probe excepted) */
    unsigned long timeout_ms; /* one exchange */
    int progress;             /* print the progress line on stderr */
} mg_audit_limits_t;

/* One request. The token, when set, is sent as "Authorization: Bearer" to the given URL only (the
 * caller passes it only for the target and its replicas). */
typedef struct mg_audit_req {
    const char *url;
    const char *method; /* NULL: POST when body, else GET */
    const char *body;
    size_t len;
    const char *headers[24]; /* name, value pairs */
    size_t nheaders;
    const char *token;
    long timeout_ms; /* 0: the limits' */
    int stream;      /* 1: an SSE stream: keep what arrives and stop after stream_ms;
                        2: the same, but stop at the first complete event */
    long stream_ms;
    int unmetered; /* 1: not spaced by the rate (the burst probe) */
} mg_audit_req_t;

int mg_audit_probe_new(const mg_audit_limits_t *lim, mg_audit_probe_t **out);
void mg_audit_probe_free(mg_audit_probe_t *p);
/* Sets the progress label ("probing cors"). */
void mg_audit_probe_phase(mg_audit_probe_t *p, const char *what);
/* 1 when the request budget or the time limit is spent (further exchanges are refused). */
int mg_audit_probe_spent(const mg_audit_probe_t *p);
/* Requests made so far and milliseconds since the start. */
unsigned mg_audit_probe_count(const mg_audit_probe_t *p);
uint64_t mg_audit_probe_elapsed(const mg_audit_probe_t *p);
/* Runs one exchange to completion (blocking the caller; the loop is private). Returns a NEW object
 * in the recording's exchange format; on a spent budget {"status":0,"error":"..."}. NULL on ENOMEM. */
json_t *mg_audit_probe_do(mg_audit_probe_t *p, const mg_audit_req_t *r);
/* Runs n exchanges at once (at most 16), unmetered; out[i] as mg_audit_probe_do. */
void mg_audit_probe_many(mg_audit_probe_t *p, const mg_audit_req_t *r, size_t n, json_t **out);
/* Starts a stream (r->stream) in the background; mg_audit_probe_collect() waits at most grace_ms
 * more (or until it ended), ends it and returns its exchange (NEW). Exchanges done in between run
 * alongside. */
typedef struct mg_audit_bg mg_audit_bg_t;
mg_audit_bg_t *mg_audit_probe_start(mg_audit_probe_t *p, const mg_audit_req_t *r);
json_t *mg_audit_probe_collect(mg_audit_probe_t *p, mg_audit_bg_t *bg, long grace_ms);

/* ---- probe_url.c ---- */

typedef struct mg_audit_url_opts {
    const char *url;
    const char *token, *token2, *token_other_aud;
    const char *replica;
    const char *call;      /* --call TOOL: the only tool ever called (2026-07-28 MRTR probe) */
    const char *call_args; /* --call-args JSON object, NULL = {} */
    const char **headers;  /* extra --header pairs (name, value), sent to the target only */
    size_t nheaders;
    unsigned burst; /* requests of the rate-limit probe */
    mg_audit_limits_t limits;
} mg_audit_url_opts_t;

/* Probes the target and returns a NEW recording (NULL on ENOMEM). */
json_t *mg_audit_probe_url(const mg_audit_url_opts_t *o);

/* ---- verdict.c: verdicts shared by URL and config audits (server: NULL or the config's name) ---- */

/* context.tool-count, context.token-cost and (unless lazy_configured) context.lazy over a tools array
 * (borrowed; not an array: every one skips with why). */
void mg__audit_context(mg_audit_report_t *rep, const char *server, const json_t *tools, const char *why,
                       int lazy_configured);
/* supply.description-scan (the built-in scan rules) and supply.definitions-stable (tools vs tools2). */
void mg__audit_supply(mg_audit_report_t *rep, const char *server, const json_t *tools, const json_t *tools2,
                      const char *why);

/* ---- config_audit.c ---- */

/* Audits a config file into rep (stdio servers started and listed twice; remote ones judged, then
 * probed over HTTP within probe_lim, burst as --burst). Returns 0, or 2 when the config does not load (errors
 * printed on stderr). */
int mg_audit_config(const char *path, const char *env_file, unsigned long timeout_ms,
                    const mg_audit_limits_t *probe_lim, unsigned burst, mg_audit_report_t *rep);

/* Pure config verdicts (unit-tested): packages of one server's command line. */
/* Is the package spec pinned? "pkg@1.2.3" yes, "pkg", "pkg@latest", "pkg@^1" no. runner: "npx",
 * "uvx", "pipx", "docker"... Returns 1 pinned, 0 not, and names the package in pkg. -1 when argv
 * names no package (a plain command). */
int mg_audit_package_of(const char *command, char *const *args, size_t nargs, char *pkg, size_t n, char *why,
                        size_t whyn);
/* 1 when pkg (as mg_audit_package_of names it) is from one of the publishers (scope prefixes like
 * "@modelcontextprotocol/", or exact names). */
int mg_audit_publisher_trusted(const char *pkg, char *const *publishers, size_t n);
/* 1 when a credential value looks like a placeholder ("xxx", "<your-token>", "changeme", ...). */
int mg_audit_placeholder(const char *value);

/* ---- stdio_probe.c: the robustness probes over stdio ---- */

struct mg_server_config;

/* Starts s (rawspawn: as serve does), initializes it, then sends a malformed line, an unknown method
 * and one 2 MiB line, each followed by a ping; every wait at most timeout_ms. Returns a NEW
 * recording: {"malformed": {"answered", "code", "alive"}, "unknown": {"answered", "code"},
 * "oversize": {"bytes", "sent", "answered", "code", "alive"}} or {"error": "why not probed"}. */
json_t *mg_audit_probe_stdio(const struct mg_server_config *s, unsigned long timeout_ms);
/* robust.malformed-json, robust.unknown-method and robust.body-limit for server from that recording. */
void mg_audit_stdio_verdict(mg_audit_report_t *rep, const char *server, const json_t *rec);

/* ---- config_remote.c: a remote (url) entry of a config ---- */

struct mg_server_config;
struct mg_egress_config;
/* 1 when the URL's query has a parameter whose name looks like a credential (token, key, secret,
 * auth, sig, ...); its name (never its value) goes to name. 0 otherwise. */
int mg_audit_url_query_secret(const char *url, char *name, size_t n);
/* The host of an http(s) URL (no brackets, no userinfo, no port) and whether it is https. 0 or -1. */
int mg_audit_url_host(const char *url, char *host, size_t n, int *https);
/* 1 for "localhost", 127.0.0.0/8 and ::1. */
int mg_audit_host_loopback(const char *host);
/* The SSRF guard's verdict on one resolved address: NULL when the gateway may connect (a public
 * address, or one inside egress's allowCidrs), else the refused class ("loopback", "private", ...). */
const char *mg_audit_egress_refused(int family, const uint8_t *addr, const struct mg_egress_config *eg);
/* The entry's own checks: transport.plain-http, auth.query-token (fail only: a URL that carries a
 * credential in its query; the parser refuses user:password@), auth.upstream-credentials. *probe: 0 when the
 * entry must not be probed. */
void mg_audit_remote_config(mg_audit_report_t *rep, const struct mg_server_config *s, int *probe);
/* transport.egress: resolves the URL's host and judges its addresses. 0 when the gateway may connect
 * (then the entry may be probed), -1 otherwise. */
int mg_audit_remote_egress(mg_audit_report_t *rep, const struct mg_server_config *s,
                           const struct mg_egress_config *eg);
/* The URL probes against the entry with its static headers (an Authorization bearer as the token);
 * their verdicts join rep with "server", but for the context and supply checks (the gateway's own
 * listing answers those) and transport.plain-http (the config answered it). 0 or MG_ENOMEM. */
int mg_audit_remote_probe(mg_audit_report_t *rep, const struct mg_server_config *s,
                          const mg_audit_limits_t *lim, unsigned burst);

#endif
