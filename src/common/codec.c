/*
 * codec.c - hex, SHA-256 (OpenSSL's SHA256_* functions) and base64 (codec.h). The base64 codec is a small
 * table implementation: OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock speak standard base64 with padding only,
 * and accept '=' inside the data.
 */
#include "codec.h"

#include <stdint.h>
#include <string.h>

/* SHA256_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, but EVP_DigestInit_ex2
 * frees and allocates its provider context on every digest in 3.0 (even on a kept EVP_MD_CTX): two
 * allocations and the allocator's consolidation per digest, more than hashing a journal line. The
 * SHA256_* functions run the same code (SHA extensions when the CPU has them) with the state on the
 * stack. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>

static const char hexdig[] = "0123456789abcdef";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Four bytes as eight hex digits in one 64-bit word (little-endian): each byte spread to two, its
 * high nibble first, then every nibble n made '0' + n, plus 39 more ('a' - '0' - 10) when n >= 10. */
static inline void hex4(const unsigned char *in, char *out)
{
    uint32_t w;
    memcpy(&w, in, 4);
    uint64_t v = w;
    v = (v | (v << 16)) & 0x0000ffff0000ffffull;
    v = (v | (v << 8)) & 0x00ff00ff00ff00ffull; /* byte i at bits 16i..16i+7 */
    uint64_t nib = ((v >> 4) & 0x000f000f000f000full) | ((v & 0x000f000f000f000full) << 8);
    uint64_t ge10 = ((nib + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
    uint64_t text = nib + 0x3030303030303030ull + ge10 * 39;
    memcpy(out, &text, 8);
}

void mg_hex_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    for (; i + 4 <= n; i += 4) /* ids and digests: 8, 16, 32 bytes */
        hex4(in + i, out + 2 * i);
#endif
    for (; i < n; i++) {
        out[2 * i] = hexdig[in[i] >> 4];
        out[2 * i + 1] = hexdig[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void mg_sha256(const void *data, size_t len, unsigned char md[MG_SHA256_BYTES])
{
    SHA256_CTX ctx;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, data, len);
    SHA256_Final(md, &ctx);
    OPENSSL_cleanse(&ctx, sizeof ctx);
}

void mg_sha256_hex(const void *data, size_t len, char out[MG_SHA256_HEX])
{
    unsigned char md[MG_SHA256_BYTES];
    mg_sha256(data, len, md);
    mg_hex_encode(md, sizeof md, out);
    OPENSSL_cleanse(md, sizeof md);
}

size_t mg_base64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            out[o++] = b64url[(acc >> (bits - 6)) & 63];
            bits -= 6;
        }
    }
    if (bits > 0)
        out[o++] = b64url[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return o;
}

/* Value of c in the alphabets of flags, or -1. */
static int b64val(char c, int flags)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if ((c == '+' && (flags & MG_B64_STD)) || (c == '-' && (flags & MG_B64_URL)))
        return 62;
    if ((c == '/' && (flags & MG_B64_STD)) || (c == '_' && (flags & MG_B64_URL)))
        return 63;
    return -1;
}

long mg_base64_decode(const char *in, size_t n, unsigned char *out, size_t cap, int flags)
{
    size_t o = 0, i = 0, data = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; i < n && in[i] != '='; i++) {
        int v = b64val(in[i], flags);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        data++;
        if (bits >= 8) {
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char)((acc >> (bits - 8)) & 0xff);
            bits -= 8;
        }
    }
    if (i < n) { /* '=' from here on, and nothing else */
        if (!(flags & MG_B64_PAD))
            return -1;
        for (; i < n; i++)
            if (in[i] != '=')
                return -1;
    }
    /* A lone final character carries fewer than 8 bits; leftover bits must be zero, so no two
     * strings decode alike. */
    if (data % 4 == 1 || (bits > 0 && (acc & ((1u << bits) - 1)) != 0))
        return -1;
    return (long)o;
}
