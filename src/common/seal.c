/*
 * seal.c - AES-256-GCM sealing of request state (seal.h), with OpenSSL's EVP interface.
 */
#include "seal.h"
#include "codec.h"
#include "err.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define VERSION    0x01
#define NONCE      12
#define TAG        16
#define MAX_SEALED 65536

/* Sealed state and keys: base64 or base64url, padding optional. */
#define B64_ANY (MG_B64_STD | MG_B64_URL | MG_B64_PAD)

static char *b64url_encode(const unsigned char *in, size_t n)
{
    char *out = malloc(MG_BASE64URL_LEN(n) + 1);
    if (out != NULL)
        mg_base64url_encode(in, n, out);
    return out;
}

int mg_seal_key_parse(const char *text, unsigned char key[MG_SEAL_KEY_BYTES])
{
    size_t n = strlen(text);
    if (n == 64) {
        for (size_t i = 0; i < 32; i++) {
            unsigned v;
            char hex[3] = {text[2 * i], text[2 * i + 1], 0};
            char *end;
            v = (unsigned)strtoul(hex, &end, 16);
            if (*end != '\0')
                goto try_b64;
            key[i] = (unsigned char)v;
        }
        return 0;
    }
try_b64:;
    unsigned char buf[64];
    long len = mg_base64_decode(text, n, buf, sizeof buf, B64_ANY);
    if (len != MG_SEAL_KEY_BYTES)
        return MG_EINVAL;
    memcpy(key, buf, MG_SEAL_KEY_BYTES);
    return 0;
}

void mg_seal_key_random(unsigned char key[MG_SEAL_KEY_BYTES])
{
    if (RAND_bytes(key, MG_SEAL_KEY_BYTES) != 1)
        abort();
}

char *mg_seal_json(const unsigned char key[MG_SEAL_KEY_BYTES], const json_t *payload)
{
    char *plain = json_dumps(payload, JSON_COMPACT);
    if (plain == NULL)
        return NULL;
    size_t plen = strlen(plain);
    unsigned char *buf = malloc(1 + NONCE + plen + TAG);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    char *out = NULL;
    int len = 0, ok = buf != NULL && ctx != NULL;
    if (ok) {
        buf[0] = VERSION;
        ok = RAND_bytes(buf + 1, NONCE) == 1 &&
             EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL) == 1 &&
             EVP_EncryptInit_ex(ctx, NULL, NULL, key, buf + 1) == 1 &&
             EVP_EncryptUpdate(ctx, NULL, &len, buf, 1) == 1 &&
             EVP_EncryptUpdate(ctx, buf + 1 + NONCE, &len, (unsigned char *)plain, (int)plen) == 1 &&
             EVP_EncryptFinal_ex(ctx, buf + 1 + NONCE + len, &len) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, buf + 1 + NONCE + plen) == 1;
    }
    if (ok)
        out = b64url_encode(buf, 1 + NONCE + plen + TAG);
    EVP_CIPHER_CTX_free(ctx);
    free(buf);
    free(plain);
    return out;
}

json_t *mg_seal_open(const unsigned char key[MG_SEAL_KEY_BYTES], const char *text)
{
    if (text == NULL || strlen(text) > MAX_SEALED)
        return NULL;
    unsigned char *buf = malloc(MAX_SEALED);
    if (buf == NULL)
        return NULL;
    long n = mg_base64_decode(text, strlen(text), buf, MAX_SEALED, B64_ANY);
    json_t *res = NULL;
    if (n < 1 + NONCE + TAG + 2 || buf[0] != VERSION) {
        free(buf);
        return NULL;
    }
    size_t clen = (size_t)n - 1 - NONCE - TAG;
    unsigned char *plain = malloc(clen + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0;
    int ok = plain != NULL && ctx != NULL &&
             EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL) == 1 &&
             EVP_DecryptInit_ex(ctx, NULL, NULL, key, buf + 1) == 1 &&
             EVP_DecryptUpdate(ctx, NULL, &len, buf, 1) == 1 &&
             EVP_DecryptUpdate(ctx, plain, &len, buf + 1 + NONCE, (int)clen) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, buf + 1 + NONCE + clen) == 1 &&
             EVP_DecryptFinal_ex(ctx, plain + len, &len) == 1;
    if (ok) {
        res = json_loadb((char *)plain, clen, 0, NULL);
        if (!json_is_object(res)) {
            json_decref(res);
            res = NULL;
        }
    }
    EVP_CIPHER_CTX_free(ctx);
    free(plain);
    free(buf);
    return res;
}
