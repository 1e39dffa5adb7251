/*
 * codec.h - the byte encodings the gateway writes and reads: lowercase hex, SHA-256 digests in
 * hex, and base64 (base64url out; base64 or base64url in). One implementation for session ids,
 * token hashes, sealed request state, JWT parts, lock-file hashes and Redis names.
 *
 * Pure functions: no allocation, no global state. Read next: codec.c; test/unit/test_common.c.
 */
#ifndef MG_CODEC_H
#define MG_CODEC_H

#include <stddef.h>

#define MG_SHA256_BYTES 32
#define MG_SHA256_HEX   (2 * MG_SHA256_BYTES + 1) /* 64 hex digits and the NUL */

/* The value of hex digit c (0-9, a-f, A-F), or -1 for any other character. */
static inline int mg_hex_digit(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Writes the 2*n lowercase hex digits of in[0..n) and a NUL into out (2*n + 1 bytes). */
void mg_hex_encode(const unsigned char *in, size_t n, char *out);

/* SHA-256 of data[0..len) into md. */
void mg_sha256(const void *data, size_t len, unsigned char md[MG_SHA256_BYTES]);

/* SHA-256 of data[0..len) as 64 lowercase hex digits and a NUL. The digest is wiped from the stack
 * afterwards (the input may be a secret). */
void mg_sha256_hex(const void *data, size_t len, char out[MG_SHA256_HEX]);

/* Characters mg_base64url_encode writes for n bytes (no padding), without the NUL. */
#define MG_BASE64URL_LEN(n) (((n)*4 + 2) / 3)

/* Encodes in[0..n) as base64url without padding (RFC 4648 section 5) into out, which holds
 * MG_BASE64URL_LEN(n) + 1 bytes; NUL-terminates. Returns the length written. */
size_t mg_base64url_encode(const unsigned char *in, size_t n, char *out);

/* Alphabets mg_base64_decode accepts (one or both). */
#define MG_B64_STD 1 /* '+' and '/' (RFC 4648 section 4) */
#define MG_B64_URL 2 /* '-' and '_' (RFC 4648 section 5) */
#define MG_B64_PAD 4 /* trailing '=' padding allowed (never required) */

/* Decodes in[0..n) into out (cap bytes) in the alphabets flags names. Canonical input only: no
 * character outside the alphabet, no lone final character, no non-zero leftover bits, '=' only
 * at the end and only with MG_B64_PAD. Returns the number of bytes decoded, or -1 when the input
 * is invalid or does not fit in cap. */
long mg_base64_decode(const char *in, size_t n, unsigned char *out, size_t cap, int flags);

#endif
