/*
 * fuzz_jwt.c - libFuzzer target: a bearer token through the JWT validator (src/auth/jwt.c:
 * shape, base64url, header, key selection by kid, signature, claims), the scope extractor and the
 * audience comparison, against a fixed JWK set (one ES256 and one Ed25519 public key).
 * Oracles: a token is accepted only if its signing input (header.payload) is one that the
 * matching private key really signed (two seeds in fuzz/corpus/jwt/): anything else accepted is a
 * forgery (alg confusion, a key named by the token, an empty signature...); a refusal always says
 * why, and the reason never quotes the token.
 * Read next: src/auth/auth_int.h (mg__jwt_validate), docs/testing.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/auth_config.h"
#include "auth/auth_int.h"
#include "common/err.h"

static const char jwks_json[] =
    "{\"keys\":[{\"kty\":\"EC\",\"x\":\"3VnMr35kUVS02KOs99LEZTloOBfZ04Nm-Dbiz4Zam2U\",\"y\":\"Fv-"
    "1e68Z3bJYK9FMtyZU9E-KF_5NHZg_7AFBZGXvrDI\",\"crv\":\"P-256\",\"kid\":\"ec1\",\"alg\":\"ES256\",\"use\":"
    "\"sig\"},{\"crv\":\"Ed25519\",\"x\":\"h9iYKJTbB_snSTBY7gvEAGypnVOOxMm6C3OLDfkTrY8\",\"kty\":\"OKP\","
    "\"kid\":\"ed1\",\"alg\":\"EdDSA\",\"use\":\"sig\"}]}";
/* The signing inputs the private keys signed (fuzz/corpus/jwt/valid-*). */
static const char *const signed_inputs[] = {
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjMSIsInR5cCI6ImF0K2p3dCJ9."
    "eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIiwiYXVkIjoiaHR0cHM6Ly9tY3AuZXhhbXBsZS9tY3AiLCJzdWIiOiJhbGljZSIsImV4"
    "cCI6MTkwMDAwMzYwMCwiaWF0IjoxODk5OTk5OTkwLCJzY29wZSI6InRvb2xzOnJlYWQgdG9vbHM6Y2FsbCIsInRlbmFudCI6InQxIn0",
    "eyJhbGciOiJFZERTQSIsImtpZCI6ImVkMSJ9."
    "eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIiwiYXVkIjpbIngiLCJodHRwczovL01DUC5leGFtcGxlL21jcC8iXSwic3ViIjoiYWxp"
    "Y2UiLCJleHAiOjE5MDAwMDM2MDAsImlhdCI6MTg5OTk5OTk5MCwic2NvcGUiOiJ0b29sczpyZWFkIHRvb2xzOmNhbGwiLCJ0ZW5hbnQi"
    "OiJ0MSIsInNjcCI6WyJhIiwiYiJdfQ",
};

static json_t *jwks;
static const char *const audiences[] = {"https://mcp.example/mcp"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    jwks = json_loads(jwks_json, 0, NULL);
    if (jwks == NULL)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *t = (const char *)data;
    mg_jwt_rules_t rules = {"https://idp.example", audiences, 1, MG_AUTH_ALG_ALL, 60, 0, 1900000000};
    json_t *claims = NULL;
    const char *why = NULL;
    (void)mg__jwt_shaped(t, size);
    int rc = mg__jwt_validate(t, size, jwks, &rules, &claims, &why);
    if (rc == 0) {
        const char *last = memchr(t, '.', size);
        last = last ? memchr(last + 1, '.', size - (size_t)(last + 1 - t)) : NULL;
        size_t in = last ? (size_t)(last - t) : size;
        int known = 0;
        for (size_t i = 0; i < sizeof signed_inputs / sizeof signed_inputs[0]; i++)
            known |= strlen(signed_inputs[i]) == in && memcmp(signed_inputs[i], t, in) == 0;
        if (!known || !json_is_object(claims))
            abort(); /* a token nobody signed was accepted */
        size_t n = 0;
        char **scopes = mg__jwt_scopes(claims, NULL, &n);
        for (size_t i = 0; scopes != NULL && i < n; i++)
            free(scopes[i]);
        free(scopes);
        json_decref(claims);
    } else {
        if (claims != NULL || why == NULL || why[0] == '\0' || (rc != MG_EINVAL && rc != MG_ENOTFOUND))
            abort();
        if (size >= 16 && memmem(why, strlen(why), t, 16) != NULL)
            abort(); /* the reason quotes the token */
    }
    /* The audience comparison, on two halves of the input. */
    size_t h = size / 2;
    char *a = strndup(t, h), *b = strndup(t + h, size - h);
    if (a != NULL && b != NULL) {
        int ab = mg__auth_uri_equal(a, b), ba = mg__auth_uri_equal(b, a);
        if (ab != ba || !mg__auth_uri_equal(a, a))
            abort(); /* equality must be symmetric and reflexive */
    }
    free(a);
    free(b);
    return 0;
}
