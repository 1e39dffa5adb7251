/*
 * fuzz_json.c - libFuzzer target, differential: src/common/json.c against jansson 2.14 on the same
 * bytes. Oracles: mg_json_loadb accepts exactly what json_loadb accepts (flags 0 and
 * JSON_REJECT_DUPLICATES), the trees are json_equal, and mg_json_dump writes exactly
 * json_dumps(JSON_COMPACT)'s bytes for them. Any difference aborts with both results printed.
 * Read next: src/common/json.h, test/unit/test_json.c (the same oracles on generated texts).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    for (int dup = 0; dup < 2; dup++) {
        json_t *want = json_loadb(text, size, dup ? JSON_REJECT_DUPLICATES : 0, NULL);
        json_t *got = mg_json_loadb(text, size, dup ? MG_JSON_REJECT_DUPLICATES : 0);
        if ((want == NULL) != (got == NULL)) {
            fprintf(stderr, "accept mismatch (dup=%d): jansson %s, mg_json_loadb %s\n", dup,
                    want ? "ok" : "fails", got ? "ok" : "fails");
            abort();
        }
        if (want != NULL) {
            if (!json_equal(want, got)) {
                fprintf(stderr, "trees differ (dup=%d)\n", dup);
                abort();
            }
            char *a = json_dumps(want, JSON_COMPACT);
            char *b = mg_json_dump(got, NULL);
            if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0)) {
                fprintf(stderr, "dumps differ: jansson '%s', mg '%s'\n", a ? a : "(null)", b ? b : "(null)");
                abort();
            }
            free(a);
            free(b);
        }
        json_decref(want);
        json_decref(got);
    }
    return 0;
}
