/*
 * fuzz_audit.c - the parsers `mcpgate audit` runs on what a target answers (src/audit/parse.c:
 * JSON or SSE bodies, JWT payloads, WWW-Authenticate parameters, HTML/trace detection, session-id
 * entropy) and the verdicts on an arbitrary recording (a target controls every string in one).
 * Input: byte 0 picks the content type; the rest is the body. Must never crash, leak or hang.
 */
#include "audit/audit_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    static const char *const ctypes[] = {NULL, "application/json", "text/event-stream", "text/html"};
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    json_t *m = mg_audit_messages(ctypes[data[0] & 3], body, len);
    size_t i;
    json_t *e;
    json_array_foreach(m, i, e)(void) mg_audit_find_id(m, (json_int_t)i);
    json_decref(m);
    (void)mg_audit_body_leaky(body, len);

    char *s = malloc(len + 1);
    if (s == NULL)
        return 0;
    memcpy(s, body, len);
    s[len] = '\0';
    json_decref(mg_audit_jwt_payload(s));
    char out[64];
    (void)mg_audit_auth_param(s, "resource_metadata", out, sizeof out);
    (void)mg_audit_auth_param(s, "error", out, 1);

    /* The input as a recording, and as a list of session ids. */
    json_t *rec = json_loadb(body, len, 0, NULL);
    if (json_is_object(rec)) {
        mg_audit_report_t rep;
        if (mg_audit_report_init(&rep, "http://127.0.0.1:1/mcp") == 0) {
            mg_audit_verdict_url(rec, &rep);
            json_decref(mg_audit_report_json(&rep));
            json_decref(mg_audit_report_sarif(&rep));
            mg_audit_report_dispose(&rep);
        }
    } else if (json_is_array(rec)) {
        (void)mg_audit_id_bits(rec);
    }
    json_decref(rec);
    free(s);
    return 0;
}
