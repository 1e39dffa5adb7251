/*
 * seal.h - integrity-protected, encrypted request state for 2026-07-28 MRTR (requestState).
 *
 * requestState travels through the client, so it is attacker-controlled input. mcpgate seals a
 * small JSON payload with AES-256-GCM under a 32-byte key (gateway.requestStateKey, or random per
 * process when unset). Wire format (base64url, no padding):
 *
 *   | bytes | field                                   |
 *   |-------|-----------------------------------------|
 *   | 1     | format version, 0x01                    |
 *   | 12    | GCM nonce (random per seal)             |
 *   | n     | ciphertext of the compact JSON payload  |
 *   | 16    | GCM tag                                 |
 *
 * The version byte is authenticated as associated data. Replicas that share the key accept each
 * other's state. Anything that fails to decode or authenticate is rejected as a whole.
 * Read next: gateway/era_modern.c (what goes in the payload and how it is checked).
 */
#ifndef MG_SEAL_H
#define MG_SEAL_H

#include <jansson.h>
#include <stddef.h>

#define MG_SEAL_KEY_BYTES 32

/* Decodes a key given as 64 hex digits or base64/base64url of 32 bytes. Returns 0 or MG_EINVAL. */
int mg_seal_key_parse(const char *text, unsigned char key[MG_SEAL_KEY_BYTES]);
/* Fills key with CSPRNG bytes. */
void mg_seal_key_random(unsigned char key[MG_SEAL_KEY_BYTES]);

/* Seals payload (borrowed). Returns a malloc'd NUL-terminated string, or NULL on failure. */
char *mg_seal_json(const unsigned char key[MG_SEAL_KEY_BYTES], const json_t *payload);
/* Opens a sealed string. Returns a NEW reference to the payload object, or NULL when the text is
 * malformed, was sealed under another key, or was modified. */
json_t *mg_seal_open(const unsigned char key[MG_SEAL_KEY_BYTES], const char *text);

#endif
