/*
 * rpcraw.h - a JSON-RPC message kept as bytes: the envelope read without building a tree, for
 * what the gateway only forwards (an upstream's tools/call result on its way to the client).
 *
 * mg_rpc_raw_scan accepts a text only when it is in canonical form, i.e. exactly the bytes that
 * mg_json_dump(mg_json_loadb(text, 0)) would write (whitespace around the object aside):
 *
 *   | rule                 | canonical                                   | anything else      |
 *   |----------------------|---------------------------------------------|--------------------|
 *   | top level            | one object                                  | refused            |
 *   | whitespace           | none inside the object                      | refused            |
 *   | strings, keys        | strict UTF-8 as is; escapes only \" \\ \b   | refused (\/, \u0041,|
 *   |                      | \f \n \r \t and \u00XX (uppercase) for the  | \u00e9, lower hex)  |
 *   |                      | other controls (not \u0000)                 |                    |
 *   | numbers              | integers within int64, not -0               | refused (reals)    |
 *   | keys of one object   | distinct, at most MG_RPC_RAW_MAX_KEYS       | refused            |
 *   | nesting              | at most MG_RPC_RAW_MAX_DEPTH                | refused            |
 *
 * "Refused" is not an error of the text: the caller parses it into a tree as before (every text
 * refused here that jansson accepts still works). A canonical text is one jansson accepts, and its
 * tree dumps to the same bytes; so replacing the "id" value's bytes with the dump of another id
 * gives exactly what the tree path writes after json_object_set(msg, "id", id). Keys are compared
 * as bytes, which is exact because a canonical key has one spelling (an escaped "i\u0064" is
 * refused, so it can never hide a second "id").
 *
 * Who calls: upstream/child.c on each line a child writes, upstream/remote.c on each answer of a
 * remote upstream (a JSON body or one SSE event); gateway/dispatch.c and reply.c write the
 * client's answer with mg_rpc_raw_put_with_id. Tests: test/unit/test_jsonrpc.c (hostile texts),
 * fuzz/fuzz_json.c (differential against mg_json_loadb + mg_json_dump). Read next: jsonrpc.h.
 */
#ifndef MG_RPCRAW_H
#define MG_RPCRAW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/json.h"

#define MG_RPC_RAW_MAX_DEPTH 32 /* deeper texts are refused (the tree path takes them) */
#define MG_RPC_RAW_MAX_KEYS  32 /* members of one object; more: refused */

/* Spans are offsets into p, valid as long as the scanned bytes are. */
typedef struct mg_rpc_raw {
    const char *p;     /* the object's first byte ('{') */
    size_t len;        /* through its '}' */
    size_t id_off;     /* the top-level "id" value (has_id) */
    size_t id_len;     /* */
    size_t result_off; /* the top-level "result" value (has_result) */
    size_t result_len; /* */
    int64_t id;        /* the id's value when id_is_int */
    unsigned has_id : 1, has_result : 1, has_error : 1, has_method : 1;
    unsigned id_is_int : 1; /* "id" is an integer */
    unsigned is_error : 1;  /* "result" is an object whose "isError" member is true */
} mg_rpc_raw_t;

/* Scans text[0..len) (leading and trailing spaces, tabs, CR and LF allowed). Returns 0 and fills
 * *out when the text is a canonical object (table above); MG_EINVAL otherwise (*out undefined). */
int mg_rpc_raw_scan(const char *text, size_t len, mg_rpc_raw_t *out);

/* Appends raw's object to b with its "id" value replaced by id's compact text (borrowed; NULL is
 * written as null). raw must have has_id. Errors are b's (sticky b->err). */
void mg_rpc_raw_put_with_id(mg_jbuf_t *b, const mg_rpc_raw_t *raw, const json_t *id);

#endif
